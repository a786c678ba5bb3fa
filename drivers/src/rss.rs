//! Receive side scaling: the Toeplitz hash a multiqueue NIC computes over a
//! frame's addresses and ports, and the 128-entry indirection table that
//! turns the hash into a receive queue.
//!
//! Mirrors Microsoft's "RSS Hashing Functions" (the Toeplitz pseudocode and
//! its input layout: source address, destination address, source port,
//! destination port, in network byte order) and Linux's
//! Documentation/networking/scaling.rst (queue = `table[hash & 127]`, the
//! table spread evenly over the queues at init, changed with `ethtool -X
//! equal N` or `ethtool -X weight W0 W1 ...`). Pinned by every published
//! verification vector (five IPv4 and three IPv6 flows, each as the 2-tuple
//! and the 4-tuple) in the tests below.
//!
//! What a NIC does that [`Rss::steer`] does too: TCP and UDP over IPv4 or
//! IPv6 hash the 4-tuple, other IP (and IP fragments, whose later pieces
//! carry no ports) the 2-tuple, and a frame it cannot parse (not IP, or
//! truncated) is not hashed and goes to queue 0. One 802.1Q tag is
//! skipped. Not modelled: the IPv6 `_EX` hash types (home address and
//! routing header addresses), per-flow-type field selection (`ethtool -N
//! rx-flow-hash`: UDP is always hashed on its ports here) and RSS contexts.
//!
//! Cost: [`Toeplitz`] precomputes, per input byte position and byte value,
//! the XOR of the key windows that byte selects (36 × 256 words, built once
//! per key), so a hash is one table lookup per input byte (12 for an IPv4
//! 4-tuple) and nothing is allocated per frame.

use std::fmt;

/// Bytes of an RSS key: 320 bits, enough for the longest input (an IPv6
/// 4-tuple, 36 bytes) plus the 32-bit window.
pub const KEY_LEN: usize = 40;
/// Entries of the indirection table: the low 7 bits of the hash index it.
pub const INDIR_LEN: usize = 128;
/// Most receive queues a table may name (Linux's `MAX_TAP_QUEUES`, the
/// limit of a multiqueue tap).
pub const MAX_QUEUES: u16 = 256;
/// Longest hash input: IPv6 source and destination, two ports.
const MAX_INPUT: usize = 36;

/// A 40-byte Toeplitz key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RssKey(pub [u8; KEY_LEN]);

impl RssKey {
    /// The Microsoft sample key of the RSS verification suite (also Intel's
    /// in the 82599 datasheet): results are reproducible from published
    /// tables, unlike Linux's per-boot random `netdev_rss_key`.
    pub const MICROSOFT: RssKey = RssKey([
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ]);

    /// The symmetric key: `0x6d5a` repeated, as DragonFly's `toeplitz.c`
    /// builds it from its two seed bytes, so that both directions of a
    /// flow hash alike (the key is periodic with 16 bits, and swapping the
    /// addresses and the ports shifts the input by a multiple of 16 bits).
    /// The price: the 32-bit hash is two copies of one 16-bit value.
    pub const SYMMETRIC: RssKey = RssKey([
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
        0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    ]);

    /// The name of a built-in key, if this is one.
    pub fn builtin_name(&self) -> Option<&'static str> {
        match *self {
            RssKey::MICROSOFT => Some("microsoft"),
            RssKey::SYMMETRIC => Some("symmetric"),
            _ => None,
        }
    }
}

impl Default for RssKey {
    fn default() -> RssKey {
        RssKey::MICROSOFT
    }
}

impl fmt::Debug for RssKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RssKey({self})")
    }
}

/// As `ethtool -x` prints a key: bytes in hex, colon-separated.
impl fmt::Display for RssKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a key, a table or a table entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RssError {
    /// A key that is not 40 bytes of hex.
    #[error(
        "'{0}' is not an RSS key: give microsoft, symmetric, or {KEY_LEN} bytes in hex (80 digits, colons allowed)"
    )]
    BadKey(String),
    /// A queue count out of range.
    #[error("{0} queues is out of range 1..={MAX_QUEUES}")]
    Queues(usize),
    /// An entry index out of range.
    #[error("indirection table index {0} is out of range 0..={max}", max = INDIR_LEN - 1)]
    Index(usize),
    /// An entry naming a queue out of range.
    #[error("queue {0} is out of range 0..={max}", max = MAX_QUEUES - 1)]
    Queue(u16),
    /// Weights that cannot fill the table (as `ethtool -X weight` refuses them).
    #[error(
        "weights must name 1..={MAX_QUEUES} queues and sum to 1..={INDIR_LEN} (they sum to {sum})"
    )]
    Weights {
        /// Their sum.
        sum: u64,
    },
}

impl std::str::FromStr for RssKey {
    type Err = RssError;

    /// `microsoft`, `symmetric`, or 40 bytes in hex, with or without colons
    /// (`ethtool -X hkey` writes them colon-separated).
    fn from_str(s: &str) -> Result<RssKey, RssError> {
        match s {
            "microsoft" => return Ok(RssKey::MICROSOFT),
            "symmetric" => return Ok(RssKey::SYMMETRIC),
            _ => {}
        }
        let bad = || RssError::BadKey(s.to_string());
        let digits: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 2 * KEY_LEN {
            return Err(bad());
        }
        let mut key = [0u8; KEY_LEN];
        for (k, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *k = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(RssKey(key))
    }
}

/// The Toeplitz hash under one key, table-driven.
#[derive(Clone)]
pub struct Toeplitz {
    key: RssKey,
    /// `lut[p][v]`: the hash contribution of byte value `v` at input byte `p`.
    lut: Box<[[u32; 256]; MAX_INPUT]>,
}

impl fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Toeplitz").field("key", &self.key).finish()
    }
}

impl Toeplitz {
    /// Precompute the tables of `key` (36 KiB, once per key).
    pub fn new(key: RssKey) -> Toeplitz {
        let mut lut = Box::new([[0u32; 256]; MAX_INPUT]);
        for (p, row) in lut.iter_mut().enumerate() {
            // The 32-bit window of the key at each bit of byte p.
            let mut window = [0u32; 8];
            for (bit, w) in window.iter_mut().enumerate() {
                *w = key_window(&key, 8 * p + bit);
            }
            for (v, slot) in row.iter_mut().enumerate() {
                *slot = (0..8)
                    .filter(|bit| v & (0x80 >> bit) != 0)
                    .fold(0, |acc, bit| acc ^ window[bit]);
            }
        }
        Toeplitz { key, lut }
    }

    /// The key.
    pub fn key(&self) -> RssKey {
        self.key
    }

    /// The hash of `input` (at most 36 bytes: longer input is not a
    /// standard RSS input and only its first 36 bytes count). Bound: one
    /// lookup per byte, no allocation.
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.lut.iter())
            .fold(0, |acc, (&b, row)| acc ^ row[usize::from(b)])
    }
}

/// The 32 bits of `key` starting at bit `bit` (MSB first); bits past the
/// end of the key are 0.
fn key_window(key: &RssKey, bit: usize) -> u32 {
    (0..32).fold(0u32, |acc, i| {
        let b = bit + i;
        let set = b < 8 * KEY_LEN && key.0[b / 8] & (0x80 >> (b % 8)) != 0;
        (acc << 1) | u32::from(set)
    })
}

/// The indirection table: entry `hash & 127` names the receive queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndirTable {
    entries: [u16; INDIR_LEN],
}

impl IndirTable {
    /// Spread evenly over queues `0..m`, as drivers initialise it and as
    /// `ethtool -X equal m` sets it: entry `i` is queue `i % m` (with more
    /// than 128 queues, queues 128 and above get no entry).
    pub fn equal(m: usize) -> Result<IndirTable, RssError> {
        if !(1..=usize::from(MAX_QUEUES)).contains(&m) {
            return Err(RssError::Queues(m));
        }
        let mut entries = [0u16; INDIR_LEN];
        for (i, e) in entries.iter_mut().enumerate() {
            *e = u16::try_from(i % m).unwrap_or(0);
        }
        Ok(IndirTable { entries })
    }

    /// Entries in proportion to `weights` (queue `j` gets about `128 *
    /// w_j / sum` consecutive entries), as `ethtool -X weight W0 W1 ...`;
    /// a weight of 0 gives that queue none. Like ethtool, refuses weights
    /// that sum to 0 or to more than the table holds.
    pub fn weighted(weights: &[u32]) -> Result<IndirTable, RssError> {
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if weights.is_empty()
            || weights.len() > usize::from(MAX_QUEUES)
            || sum == 0
            || sum > INDIR_LEN as u64
        {
            return Err(RssError::Weights { sum });
        }
        let mut entries = [0u16; INDIR_LEN];
        let (mut queue, mut upto) = (0usize, 0u64);
        for (i, e) in entries.iter_mut().enumerate() {
            // Entry i belongs to the first queue whose cumulative share of
            // the table reaches past it.
            while (i as u64) * sum >= upto * INDIR_LEN as u64 {
                upto += u64::from(weights[queue]);
                queue += 1;
            }
            *e = u16::try_from(queue - 1).unwrap_or(0);
        }
        Ok(IndirTable { entries })
    }

    /// Set entry `index` to `queue`.
    pub fn set(&mut self, index: usize, queue: u16) -> Result<(), RssError> {
        if queue >= MAX_QUEUES {
            return Err(RssError::Queue(queue));
        }
        let e = self.entries.get_mut(index).ok_or(RssError::Index(index))?;
        *e = queue;
        Ok(())
    }

    /// The queue of a hash: entry `hash & 127`.
    pub fn queue(&self, hash: u32) -> u16 {
        self.entries[index_of(hash)]
    }

    /// The entries, in index order (as `ethtool -x` lists them).
    pub fn entries(&self) -> &[u16; INDIR_LEN] {
        &self.entries
    }

    /// One more than the highest queue an entry names.
    pub fn queues_used(&self) -> usize {
        self.entries
            .iter()
            .map(|&q| usize::from(q) + 1)
            .max()
            .unwrap_or(1)
    }
}

impl Default for IndirTable {
    /// One queue: every entry 0.
    fn default() -> IndirTable {
        IndirTable {
            entries: [0; INDIR_LEN],
        }
    }
}

/// The table index of a hash: its low 7 bits.
pub fn index_of(hash: u32) -> usize {
    (hash & (INDIR_LEN as u32 - 1)) as usize
}

/// Which fields a hash covered (Microsoft's NDIS hash types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashType {
    /// IPv4 source and destination (`NDIS_HASH_IPV4`), 8 bytes.
    Ipv4,
    /// IPv4 addresses and TCP or UDP ports, 12 bytes.
    Ipv4L4,
    /// IPv6 source and destination (`NDIS_HASH_IPV6`), 32 bytes.
    Ipv6,
    /// IPv6 addresses and TCP or UDP ports, 36 bytes.
    Ipv6L4,
}

impl HashType {
    /// A short name: `IPv4 2-tuple`, `IPv6 4-tuple`.
    pub fn name(self) -> &'static str {
        match self {
            HashType::Ipv4 => "IPv4 2-tuple",
            HashType::Ipv4L4 => "IPv4 4-tuple",
            HashType::Ipv6 => "IPv6 2-tuple",
            HashType::Ipv6L4 => "IPv6 4-tuple",
        }
    }
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steer {
    /// The hash and what it covered; `None` for a frame the NIC does not hash.
    pub hash: Option<(u32, HashType)>,
    /// The receive queue: `table[hash & 127]`, or 0 without a hash.
    pub queue: u16,
}

/// A NIC's RSS state: the hash under its key and the indirection table.
#[derive(Clone, Debug)]
pub struct Rss {
    toeplitz: Toeplitz,
    table: IndirTable,
}

impl Rss {
    /// RSS with `key`, spread by `table`.
    pub fn new(key: RssKey, table: IndirTable) -> Rss {
        Rss {
            toeplitz: Toeplitz::new(key),
            table,
        }
    }

    /// The Toeplitz hash.
    pub fn toeplitz(&self) -> &Toeplitz {
        &self.toeplitz
    }

    /// The indirection table.
    pub fn table(&self) -> &IndirTable {
        &self.table
    }

    /// Replace the indirection table (as `ethtool -X` does).
    pub fn set_table(&mut self, table: IndirTable) {
        self.table = table;
    }

    /// Hash and steer one Ethernet frame. Bound: a constant amount of
    /// parsing (at most 8 IPv6 extension headers) and one hash of at most
    /// 36 bytes; no allocation.
    pub fn steer(&self, frame: &[u8]) -> Steer {
        let mut input = [0u8; MAX_INPUT];
        match hash_input(frame, &mut input) {
            Some((len, kind)) => {
                let hash = self.toeplitz.hash(&input[..len]);
                Steer {
                    hash: Some((hash, kind)),
                    queue: self.table.queue(hash),
                }
            }
            None => Steer {
                hash: None,
                queue: 0,
            },
        }
    }
}

/// Ethernet header bytes.
const ETH_HDR: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// IPv6 extension headers walked past (hop-by-hop, routing, destination options).
const IPV6_SKIPPABLE: [u8; 3] = [0, 43, 60];
/// IPv6 fragment header.
const IPV6_FRAGMENT: u8 = 44;
/// Most IPv6 extension headers walked before giving up on the ports.
const IPV6_MAX_EXT: usize = 8;

/// Write the hash input of `frame` into `input`: (its length, its type), or
/// `None` if the frame is not IP or is cut short.
fn hash_input(frame: &[u8], input: &mut [u8; MAX_INPUT]) -> Option<(usize, HashType)> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut l3 = ETH_HDR;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        l3 += 4;
    }
    let ip = frame.get(l3..)?;
    match ethertype {
        ETHERTYPE_IPV4 => ipv4_input(ip, input),
        ETHERTYPE_IPV6 => ipv6_input(ip, input),
        _ => None,
    }
}

fn ipv4_input(ip: &[u8], input: &mut [u8; MAX_INPUT]) -> Option<(usize, HashType)> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if *ip.first()? >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    input[..8].copy_from_slice(&ip[12..20]);
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    // More fragments, or an offset: no ports in this piece (or not all).
    let fragment = frag & 0x3fff != 0;
    match ports(ip[9], fragment, &ip[ihl..]) {
        Some(p) => {
            input[8..12].copy_from_slice(p);
            Some((12, HashType::Ipv4L4))
        }
        None => Some((8, HashType::Ipv4)),
    }
}

fn ipv6_input(ip: &[u8], input: &mut [u8; MAX_INPUT]) -> Option<(usize, HashType)> {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    input[..32].copy_from_slice(&ip[8..40]);
    let (mut next, mut at) = (ip[6], 40usize);
    let mut fragment = false;
    for _ in 0..IPV6_MAX_EXT {
        if IPV6_SKIPPABLE.contains(&next) {
            let len = usize::from(*ip.get(at + 1).unwrap_or(&0)) * 8 + 8;
            next = *ip.get(at).unwrap_or(&59);
            at += len;
        } else if next == IPV6_FRAGMENT {
            fragment = true;
            next = *ip.get(at).unwrap_or(&59);
            at += 8;
        } else {
            break;
        }
    }
    match ports(next, fragment, ip.get(at..).unwrap_or(&[])) {
        Some(p) => {
            input[32..36].copy_from_slice(p);
            Some((36, HashType::Ipv6L4))
        }
        None => Some((32, HashType::Ipv6)),
    }
}

/// The source and destination ports of a TCP or UDP segment that is whole
/// enough to hold them.
fn ports(proto: u8, fragment: bool, l4: &[u8]) -> Option<&[u8]> {
    let l4_ok = (proto == PROTO_TCP || proto == PROTO_UDP) && !fragment;
    l4_ok.then(|| l4.get(..4)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, SocketAddr};

    /// The pseudocode as Microsoft writes it, bit by bit: the reference the
    /// table-driven hash must equal.
    fn reference(key: &RssKey, input: &[u8]) -> u32 {
        let mut result = 0u32;
        for (i, byte) in input.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    result ^= key_window(key, 8 * i + bit);
                }
            }
        }
        result
    }

    /// The hash input of a (src, dst) pair, with or without ports.
    fn input_of(src: SocketAddr, dst: SocketAddr, with_ports: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for a in [src.ip(), dst.ip()] {
            match a {
                IpAddr::V4(a) => v.extend(a.octets()),
                IpAddr::V6(a) => v.extend(a.octets()),
            }
        }
        if with_ports {
            v.extend(src.port().to_be_bytes());
            v.extend(dst.port().to_be_bytes());
        }
        v
    }

    /// Every published verification vector: (source, destination, 2-tuple
    /// hash, 4-tuple hash), Microsoft's "Verifying the RSS Hash
    /// Calculation" (also the Intel 82599 datasheet's suite, 7.1.2.8.3).
    const VECTORS: [(&str, &str, u32, u32); 8] = [
        (
            "66.9.149.187:2794",
            "161.142.100.80:1766",
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            "199.92.111.2:14230",
            "65.69.140.83:4739",
            0xd718262a,
            0xc626b0ea,
        ),
        (
            "24.19.198.95:12898",
            "12.22.207.184:38024",
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            "38.27.205.30:48228",
            "209.142.163.6:2217",
            0x82989176,
            0xafc7327f,
        ),
        (
            "153.39.163.191:44251",
            "202.188.127.2:1303",
            0x5d1809c5,
            0x10e828a2,
        ),
        (
            "[3ffe:2501:200:1fff::7]:2794",
            "[3ffe:2501:200:3::1]:1766",
            0x2cc18cd5,
            0x40207d3d,
        ),
        (
            "[3ffe:501:8::260:97ff:fe40:efab]:14230",
            "[ff02::1]:4739",
            0x0f0c461c,
            0xdde51bbf,
        ),
        (
            "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251",
            "[fe80::200:f8ff:fe21:67cf]:38024",
            0x4b61e985,
            0x02d1feef,
        ),
    ];

    #[test]
    fn every_published_vector_both_lengths() {
        let t = Toeplitz::new(RssKey::MICROSOFT);
        for (src, dst, two, four) in VECTORS {
            let (s, d) = (src.parse().unwrap(), dst.parse().unwrap());
            assert_eq!(
                t.hash(&input_of(s, d, false)),
                two,
                "{src} -> {dst} 2-tuple"
            );
            assert_eq!(
                t.hash(&input_of(s, d, true)),
                four,
                "{src} -> {dst} 4-tuple"
            );
            assert_eq!(reference(&RssKey::MICROSOFT, &input_of(s, d, true)), four);
        }
    }

    #[test]
    fn first_vector_selects_index_120() {
        assert_eq!(index_of(0x51ccc178), 120);
        let t = IndirTable::equal(4).unwrap();
        assert_eq!(t.queue(0x51ccc178), 0);
        let t = IndirTable::equal(7).unwrap();
        assert_eq!(t.queue(0x51ccc178), 120 % 7);
    }

    /// A TCP or UDP frame of (src, dst), built by hand.
    fn frame(src: SocketAddr, dst: SocketAddr, proto: u8) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend(ETHERTYPE_IPV4.to_be_bytes());
                let mut ip = [0u8; 20];
                ip[0] = 0x45;
                ip[9] = proto;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                f.extend(ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend(ETHERTYPE_IPV6.to_be_bytes());
                let mut ip = [0u8; 40];
                ip[0] = 0x60;
                ip[6] = proto;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                f.extend(ip);
            }
            _ => unreachable!("one family"),
        }
        f.extend(src.port().to_be_bytes());
        f.extend(dst.port().to_be_bytes());
        f.extend([0u8; 16]);
        f
    }

    #[test]
    fn frames_are_steered_as_a_nic_does() {
        let rss = Rss::new(RssKey::MICROSOFT, IndirTable::equal(8).unwrap());
        for (src, dst, two, four) in VECTORS {
            let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let v6 = s.is_ipv6();
            let l4 = if v6 {
                HashType::Ipv6L4
            } else {
                HashType::Ipv4L4
            };
            let l3 = if v6 { HashType::Ipv6 } else { HashType::Ipv4 };
            for proto in [PROTO_TCP, PROTO_UDP] {
                let st = rss.steer(&frame(s, d, proto));
                assert_eq!(st.hash, Some((four, l4)), "{src} proto {proto}");
                assert_eq!(usize::from(st.queue), index_of(four) % 8);
            }
            // Other IP (ICMP): the 2-tuple.
            assert_eq!(rss.steer(&frame(s, d, 1)).hash, Some((two, l3)));
        }
        // An IPv4 fragment: the 2-tuple.
        let (s, d) = (VECTORS[0].0.parse().unwrap(), VECTORS[0].1.parse().unwrap());
        let mut f = frame(s, d, PROTO_TCP);
        f[ETH_HDR + 6] = 0x20; // more fragments
        assert_eq!(rss.steer(&f).hash, Some((VECTORS[0].2, HashType::Ipv4)));
        // Behind one 802.1Q tag: the same hash.
        let mut tagged = frame(s, d, PROTO_TCP);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(rss.steer(&tagged).hash.map(|h| h.0), Some(VECTORS[0].3));
        // IPv6 behind a destination options header: still the 4-tuple.
        let (s6, d6) = (VECTORS[5].0.parse().unwrap(), VECTORS[5].1.parse().unwrap());
        let mut ext = frame(s6, d6, 60);
        ext.splice(ETH_HDR + 40..ETH_HDR + 40, [PROTO_UDP, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rss.steer(&ext).hash.map(|h| h.0), Some(VECTORS[5].3));
    }

    #[test]
    fn unparsable_frames_go_to_queue_0_unhashed() {
        let rss = Rss::new(RssKey::MICROSOFT, IndirTable::equal(4).unwrap());
        let none = Steer {
            hash: None,
            queue: 0,
        };
        let arp = [&[0xffu8; 12][..], &[0x08, 0x06], &[0u8; 28]].concat();
        assert_eq!(rss.steer(&arp), none);
        assert_eq!(rss.steer(&[0u8; 5]), none);
        let (s, d) = (VECTORS[0].0.parse().unwrap(), VECTORS[0].1.parse().unwrap());
        let f = frame(s, d, PROTO_TCP);
        assert_eq!(rss.steer(&f[..ETH_HDR + 10]), none, "cut in the IP header");
        // Cut in the ports: the 2-tuple, as the addresses are whole.
        let st = rss.steer(&f[..ETH_HDR + 22]);
        assert_eq!(st.hash, Some((VECTORS[0].2, HashType::Ipv4)));
    }

    #[test]
    fn symmetric_key_hashes_both_directions_alike() {
        let t = Toeplitz::new(RssKey::SYMMETRIC);
        let ms = Toeplitz::new(RssKey::MICROSOFT);
        for (src, dst, _, _) in VECTORS {
            let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            for ports in [false, true] {
                let fwd = t.hash(&input_of(s, d, ports));
                assert_eq!(fwd, t.hash(&input_of(d, s, ports)), "{src} {dst}");
                assert_eq!(fwd >> 16, fwd & 0xffff, "two copies of 16 bits");
            }
            assert_ne!(
                ms.hash(&input_of(s, d, true)),
                ms.hash(&input_of(d, s, true))
            );
        }
    }

    #[test]
    fn keys_parse_and_print() {
        let hex = RssKey::MICROSOFT.to_string();
        assert!(hex.starts_with("6d:5a:56:da"), "{hex}");
        assert_eq!(hex.parse::<RssKey>(), Ok(RssKey::MICROSOFT));
        assert_eq!(
            hex.replace(':', "").parse::<RssKey>(),
            Ok(RssKey::MICROSOFT)
        );
        assert_eq!("symmetric".parse::<RssKey>(), Ok(RssKey::SYMMETRIC));
        assert!("6d5a".parse::<RssKey>().is_err());
        assert!("zz".repeat(40).parse::<RssKey>().is_err());
        assert_eq!(RssKey::default().builtin_name(), Some("microsoft"));
    }

    #[test]
    fn tables_refuse_what_ethtool_refuses() {
        assert_eq!(IndirTable::equal(0), Err(RssError::Queues(0)));
        assert_eq!(IndirTable::equal(257), Err(RssError::Queues(257)));
        assert!(IndirTable::equal(256).is_ok());
        assert_eq!(
            IndirTable::weighted(&[0, 0]),
            Err(RssError::Weights { sum: 0 })
        );
        assert_eq!(
            IndirTable::weighted(&[100, 29]),
            Err(RssError::Weights { sum: 129 })
        );
        let mut t = IndirTable::default();
        assert_eq!(t.set(128, 0), Err(RssError::Index(128)));
        assert_eq!(t.set(0, 256), Err(RssError::Queue(256)));
        t.set(5, 3).unwrap();
        assert_eq!(t.queue(5 + 128 * 1000), 3);
        assert_eq!(t.queues_used(), 4);
    }

    #[test]
    fn weights_share_the_table_in_proportion() {
        let t = IndirTable::weighted(&[3, 1]).unwrap();
        let q0 = t.entries().iter().filter(|&&q| q == 0).count();
        assert_eq!(q0, 96);
        let t = IndirTable::weighted(&[1, 0, 1]).unwrap();
        assert!(t.entries().iter().all(|&q| q != 1));
        assert_eq!(t.entries().iter().filter(|&&q| q == 2).count(), 64);
    }

    proptest::proptest! {
        #[test]
        fn equal_spreads_entries_evenly(m in 1usize..=256) {
            let t = IndirTable::equal(m).unwrap();
            let used = m.min(INDIR_LEN);
            let mut counts = vec![0usize; m];
            for &q in t.entries() {
                counts[usize::from(q)] += 1;
            }
            let (lo, hi) = (counts[..used].iter().min().unwrap(), counts[..used].iter().max().unwrap());
            proptest::prop_assert!(hi - lo <= 1, "{m} queues: {lo}..{hi}");
            proptest::prop_assert_eq!(counts.iter().sum::<usize>(), INDIR_LEN);
            proptest::prop_assert!(counts[used..].iter().all(|&c| c == 0));
        }

        #[test]
        fn weights_within_one_entry_of_their_share(w in proptest::collection::vec(0u32..=16, 1..=8)) {
            let sum: u32 = w.iter().sum();
            proptest::prop_assume!(sum > 0);
            let t = IndirTable::weighted(&w).unwrap();
            for (q, &wq) in w.iter().enumerate() {
                let got = t.entries().iter().filter(|&&e| usize::from(e) == q).count() as f64;
                let share = INDIR_LEN as f64 * f64::from(wq) / f64::from(sum);
                proptest::prop_assert!((got - share).abs() <= 1.0, "{w:?}: queue {q} {got} vs {share}");
            }
        }

        #[test]
        fn table_hash_equals_the_pseudocode(key in proptest::array::uniform32(0u8..), tail in proptest::array::uniform8(0u8..),
                                            input in proptest::collection::vec(0u8.., 0..=36)) {
            let mut k = [0u8; KEY_LEN];
            k[..32].copy_from_slice(&key);
            k[32..].copy_from_slice(&tail);
            let key = RssKey(k);
            proptest::prop_assert_eq!(Toeplitz::new(key).hash(&input), reference(&key, &input));
        }
    }
}
