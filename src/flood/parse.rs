//! Parsers of the `pollsim flood` options: rates with k/M suffixes, durations
//! with units, port ranges and MAC addresses.
//!
//! Numbers are parsed as exact decimals into integers (milli-packets per
//! second, nanoseconds), so no float is ever cast and `1.5M` is exactly
//! 1 500 000 pps. Parsers only check syntax; range checks (rate 0, size
//! 59) are done by [`super::FloodArgs::check`], so a program that builds
//! `FloodArgs` by hand gets the same refusals as the command line.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A requested sending rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// As fast as the generator can go.
    Max,
    /// A paced rate, in milli-frames per second (so `2.5` pps is exact).
    MilliPps(u128),
}

impl Rate {
    /// A rate of `pps` frames per second.
    pub fn pps(pps: u64) -> Rate {
        Rate::MilliPps(u128::from(pps) * 1000)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rate::Max => f.write_str("max"),
            Rate::MilliPps(m) if m % 1000 == 0 => write!(f, "{} pps", m / 1000),
            Rate::MilliPps(m) => write!(f, "{}.{:03} pps", m / 1000, m % 1000),
        }
    }
}

/// An inclusive range of source ports (or ICMP identifiers) to spread flows over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (>= `lo`).
    pub hi: u16,
}

impl PortRange {
    /// One port.
    pub fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// The ports, in order.
    pub fn ports(self) -> RangeInclusive<u16> {
        self.lo..=self.hi
    }

    /// How many ports.
    pub fn len(self) -> usize {
        usize::from(self.hi.saturating_sub(self.lo)) + 1
    }

    /// Never: a range holds at least one port.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// `s` times `mult`, rounded down, for a plain decimal `s` ("12", "1.5",
/// ".25"). None if `s` is not one or the result overflows.
fn decimal_times(s: &str, mult: u128) -> Option<u128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || frac.len() > 18 {
        return None;
    }
    let int_v: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_v: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let whole = int_v.checked_mul(mult)?;
    let part = frac_v.checked_mul(mult)? / scale;
    whole.checked_add(part)
}

/// `max`, or frames per second with an optional `k` (10^3) or `M` (10^6)
/// suffix: `100k`, `1.5M`, `20000`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    let (num, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1_000),
        Some(b'M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    decimal_times(num, mult * 1000)
        .map(Rate::MilliPps)
        .ok_or_else(|| format!("'{s}' is not a rate: use pps like 20000, 100k, 1.5M, or max"))
}

/// A duration with a unit: `500ms`, `10s`, `1.5s`, `2m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let units: [(&str, u128); 4] = [
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|&(u, m)| s.strip_suffix(u).map(|n| (n, m)))
        .unwrap_or((s, 1_000_000_000));
    decimal_times(num, mult)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("'{s}' is not a duration: use e.g. 500ms, 10s or 2m"))
}

/// `LO-HI` (inclusive) or a single port `N`; ports 1..=65535.
pub fn parse_ports(s: &str) -> Result<PortRange, String> {
    let bad = || format!("'{s}' is not a port range: use LO-HI like 1024-2047, or one port");
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok(PortRange { lo, hi })
}

/// A MAC address written `02:00:c6:12:00:02` (or with dashes).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("'{s}' is not a MAC address like 02:00:c6:12:00:02");
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next().ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    match parts.next() {
        None => Ok(mac),
        Some(_) => Err(bad()),
    }
}

/// `02:00:c6:12:00:02`.
pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("100k"), Ok(Rate::pps(100_000)));
        assert_eq!(parse_rate("1.5M"), Ok(Rate::pps(1_500_000)));
        assert_eq!(parse_rate("20000"), Ok(Rate::pps(20_000)));
        assert_eq!(parse_rate("2.5"), Ok(Rate::MilliPps(2500)));
        assert_eq!(parse_rate("0"), Ok(Rate::MilliPps(0)));
        for bad in ["", "k", "1.2.3k", "-5", "fast", "10x", "1e6"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(Rate::MilliPps(2500).to_string(), "2.500 pps");
        assert_eq!(Rate::pps(7).to_string(), "7 pps");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn ports_and_macs() {
        assert_eq!(parse_ports("1024-2047").map(PortRange::len), Ok(1024));
        assert_eq!(parse_ports("9"), Ok(PortRange::single(9)));
        assert!(parse_ports("10-9").is_err());
        assert!(parse_ports("0-9").is_err());
        assert_eq!(parse_mac("02:00:c6:12:00:02"), Ok([2, 0, 198, 18, 0, 2]));
        assert!(parse_mac("02:00:c6:12:00").is_err());
        assert!(parse_mac("02:00:c6:12:00:02:03").is_err());
        assert_eq!(fmt_mac([2, 0, 198, 18, 0, 2]), "02:00:c6:12:00:02");
    }
}
