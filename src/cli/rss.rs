//! `pollsim rss-hash`: the Toeplitz hash a multiqueue NIC computes for one
//! flow, and the receive queue its indirection table picks
//! (`pollsim_drivers::rss`). Pure computation: no tap, no root.

use std::net::{IpAddr, SocketAddr};

use anyhow::bail;
use pollsim_drivers::rss::{HashType, INDIR_LEN, IndirTable, RssKey, Toeplitz, index_of};

/// Arguments of `pollsim rss-hash`.
#[derive(clap::Args, Debug, Clone)]
pub struct RssHashArgs {
    /// The key: microsoft (the verification suite's sample key), symmetric
    /// (0x6d5a repeated: both directions of a flow hash alike), or 40
    /// bytes in hex (colons allowed, as ethtool -x prints them).
    #[arg(long, default_value = "microsoft", value_parser = parse_key)]
    pub key: RssKey,
    /// Receive queues the indirection table spreads over evenly
    /// (ethtool -X equal M), 1..=256.
    #[arg(long, default_value_t = 1, value_name = "M", conflicts_with = "weight")]
    pub queues: usize,
    /// Instead of --queues: queue weights, comma separated (ethtool -X
    /// weight W0 W1 ...), summing to 1..=128.
    #[arg(long, value_delimiter = ',', value_name = "W0,W1,...")]
    pub weight: Option<Vec<u32>>,
    /// Source: IP:PORT, [IPv6]:PORT, or an address alone (the 2-tuple).
    #[arg(value_name = "SRC", value_parser = parse_endpoint)]
    pub src: Endpoint,
    /// Destination, written as the source.
    #[arg(value_name = "DST", value_parser = parse_endpoint)]
    pub dst: Endpoint,
}

/// An address with or without a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub ip: IpAddr,
    /// The port, if given.
    pub port: Option<u16>,
}

fn parse_key(s: &str) -> Result<RssKey, String> {
    super::parse_rss_key(s)
}

/// `1.2.3.4:80`, `[::1]:80`, `1.2.3.4`, `::1` or `[::1]`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(Endpoint {
            ip: sa.ip(),
            port: Some(sa.port()),
        });
    }
    let bare = s.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    match bare.unwrap_or(s).parse::<IpAddr>() {
        Ok(ip) => Ok(Endpoint { ip, port: None }),
        Err(_) => Err(format!(
            "'{s}' is not an address: use IP:PORT, [IPv6]:PORT, or an address alone"
        )),
    }
}

/// The hash input of a flow (addresses, then ports, network byte order)
/// and what it covers; refuses mixed families or one port without the other.
pub fn input(src: Endpoint, dst: Endpoint) -> anyhow::Result<(Vec<u8>, HashType)> {
    let mut v = Vec::with_capacity(36);
    let v6 = match (src.ip, dst.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            v.extend(s.octets());
            v.extend(d.octets());
            false
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            v.extend(s.octets());
            v.extend(d.octets());
            true
        }
        _ => bail!("source and destination must both be IPv4 or both IPv6"),
    };
    let kind = match (src.port, dst.port, v6) {
        (Some(sp), Some(dp), _) => {
            v.extend(sp.to_be_bytes());
            v.extend(dp.to_be_bytes());
            if v6 {
                HashType::Ipv6L4
            } else {
                HashType::Ipv4L4
            }
        }
        (None, None, false) => HashType::Ipv4,
        (None, None, true) => HashType::Ipv6,
        _ => bail!("give both ports (the 4-tuple) or neither (the 2-tuple)"),
    };
    Ok((v, kind))
}

/// The report `pollsim rss-hash` prints.
pub fn report(args: &RssHashArgs) -> anyhow::Result<String> {
    let (bytes, kind) = input(args.src, args.dst)?;
    let (table, spread) = match &args.weight {
        Some(w) => {
            let list: Vec<String> = w.iter().map(u32::to_string).collect();
            (
                IndirTable::weighted(w)?,
                format!("weight {}", list.join(" ")),
            )
        }
        None => (
            IndirTable::equal(args.queues)?,
            format!("equal {}", args.queues),
        ),
    };
    let hash = Toeplitz::new(args.key).hash(&bytes);
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = match args.key.builtin_name() {
        Some(name) => format!("{name} ({})", args.key),
        None => args.key.to_string(),
    };
    Ok(format!(
        "hash: 0x{hash:08x}\n\
         input: {} ({} bytes): {}\n\
         key: {key}\n\
         index: {} (hash & {})\n\
         queue: {} (indirection table: {spread})\n",
        kind.name(),
        bytes.len(),
        hex.join(" "),
        index_of(hash),
        INDIR_LEN - 1,
        table.queue(hash),
    ))
}

/// Run `pollsim rss-hash`.
pub fn main(args: &RssHashArgs) -> anyhow::Result<()> {
    print!("{}", report(args)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        parse_endpoint(s).unwrap()
    }

    #[test]
    fn endpoints_parse_with_and_without_ports() {
        assert_eq!(ep("1.2.3.4:80").port, Some(80));
        assert_eq!(ep("1.2.3.4").port, None);
        assert_eq!(ep("[::1]:80").port, Some(80));
        assert_eq!(ep("[::1]").port, None);
        assert_eq!(ep("ff02::1").port, None);
        assert!(parse_endpoint("1.2.3:80").is_err());
    }

    #[test]
    fn inputs_refuse_mixtures() {
        assert!(input(ep("1.2.3.4:1"), ep("[::1]:1")).is_err());
        assert!(input(ep("1.2.3.4:1"), ep("1.2.3.4")).is_err());
        let (v, k) = input(ep("[::1]:1"), ep("[::2]:2")).unwrap();
        assert_eq!((v.len(), k), (36, HashType::Ipv6L4));
    }
}
