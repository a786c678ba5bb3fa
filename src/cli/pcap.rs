//! `pollsim run --pcap FILE [--pcap-limit SIZE]`: the capture's set-up and
//! its one-line report. The capture itself wraps the NIC
//! (`pollsim_drivers::pcap`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use pollsim_drivers::Capture;

use super::RunArgs;
use crate::kernel::time::Nanos;

/// Parse a size in bytes: a number with an optional k, M or G suffix
/// (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{s}' is not a size in bytes above 0 (e.g. 4096, 512k, 64M, 1G)"))
}

/// The UNIX time of the kernel clock's zero, given its reading `now`, so
/// that a real run's capture shows wall-clock times.
pub fn unix_base(now: Nanos) -> Duration {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    wall.saturating_sub(Duration::from_nanos(now.0))
}

/// The capture `--pcap` asks for, if any.
pub fn create(args: &RunArgs, base: Duration) -> anyhow::Result<Option<Capture>> {
    args.pcap
        .as_deref()
        .map(|path| Capture::create(path, args.pcap_limit, base))
        .transpose()
        .context("--pcap")
}

/// Close the capture (every NIC wrapper must be gone) and say what it holds.
pub fn finish(args: &RunArgs, capture: Option<Capture>) -> anyhow::Result<()> {
    let (Some(c), Some(path)) = (capture, args.pcap.as_deref()) else {
        return Ok(());
    };
    let s = c.finish().context("--pcap")?;
    eprintln!(
        "pollsim: captured {} frames ({} bytes) to {}; not captured: {} over --pcap-limit, {} with the writer behind",
        s.captured,
        s.bytes,
        path.display(),
        s.over_limit,
        s.writer_behind
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
