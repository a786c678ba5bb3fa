//! The flood's frames, built once with pnet's packet builders (Ethernet,
//! IPv4, then UDP, TCP SYN or ICMP echo request, all checksums filled in),
//! into one contiguous ring that the send loop only reads.
//!
//! Mirrors what a packet generator such as netmap's pkt-gen does: pre-build
//! the frames, vary a flow key (here the source port, or the ICMP
//! identifier) across the ring, and never touch a frame on the data path.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context as _, bail};
use pnet::packet::MutablePacket as _;
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::packet::icmp::{IcmpCode, IcmpTypes, MutableIcmpPacket};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv4::{self, MutableIpv4Packet};
use pnet::packet::tcp::{self, MutableTcpPacket, TcpFlags};
use pnet::packet::udp::{self, MutableUdpPacket};
use pnet::util::MacAddr;

use super::parse::PortRange;

/// Ethernet header bytes.
const ETH_LEN: usize = 14;
/// IPv4 header bytes (no options).
const IP_LEN: usize = 20;
/// TCP header bytes (no options).
const TCP_LEN: usize = 20;
/// Upper bound of the pre-built ring: flat memory whatever `--src-ports` says.
pub const RING_MAX_BYTES: usize = 64 << 20;

/// The protocol of the flood.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// UDP datagrams to the destination port.
    Udp,
    /// TCP SYNs to the destination port (no payload; `--size` pads the frame).
    Syn,
    /// ICMP echo requests (`--src-ports` spreads the identifier).
    Icmp,
}

impl Proto {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Syn => "syn",
            Proto::Icmp => "icmp",
        }
    }
}

/// Everything that makes a frame, except the flow key.
#[derive(Clone, Copy, Debug)]
pub struct FrameSpec {
    /// Protocol.
    pub proto: Proto,
    /// Frame bytes, without FCS (60..=1514).
    pub size: usize,
    /// Source MAC (the tap's kernel side).
    pub src_mac: [u8; 6],
    /// Destination MAC (pollsim's).
    pub dst_mac: [u8; 6],
    /// Source IPv4 address (the tap's kernel side).
    pub src: Ipv4Addr,
    /// Destination address and port.
    pub dst: SocketAddrV4,
}

/// `spec`'s frame with flow key `key` (source port or ICMP identifier) into
/// `buf`, which must be `spec.size` bytes and is fully overwritten.
pub fn build_into(spec: &FrameSpec, key: u16, buf: &mut [u8]) -> anyhow::Result<()> {
    buf.fill(0);
    let ip_total = match spec.proto {
        Proto::Syn => IP_LEN + TCP_LEN,
        Proto::Udp | Proto::Icmp => spec.size - ETH_LEN,
    };
    if spec.size < ETH_LEN + ip_total || buf.len() != spec.size {
        bail!(
            "frame of {} bytes cannot hold {ip_total} IP bytes",
            spec.size
        );
    }
    let mut eth = MutableEthernetPacket::new(buf).context("ethernet header")?;
    eth.set_destination(mac(spec.dst_mac));
    eth.set_source(mac(spec.src_mac));
    eth.set_ethertype(EtherTypes::Ipv4);
    let mut ip = MutableIpv4Packet::new(&mut eth.payload_mut()[..ip_total]).context("ipv4")?;
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length(u16::try_from(ip_total)?);
    ip.set_flags(ipv4::Ipv4Flags::DontFragment);
    ip.set_ttl(64);
    ip.set_source(spec.src);
    ip.set_destination(*spec.dst.ip());
    match spec.proto {
        Proto::Udp => {
            ip.set_next_level_protocol(IpNextHeaderProtocols::Udp);
            fill_udp(spec, key, ip.payload_mut())?;
        }
        Proto::Syn => {
            ip.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
            fill_syn(spec, key, ip.payload_mut())?;
        }
        Proto::Icmp => {
            ip.set_next_level_protocol(IpNextHeaderProtocols::Icmp);
            fill_icmp(key, ip.payload_mut())?;
        }
    }
    let sum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(sum);
    Ok(())
}

fn mac(m: [u8; 6]) -> MacAddr {
    MacAddr::new(m[0], m[1], m[2], m[3], m[4], m[5])
}

fn fill_udp(spec: &FrameSpec, src_port: u16, seg: &mut [u8]) -> anyhow::Result<()> {
    let len = u16::try_from(seg.len())?;
    let mut u = MutableUdpPacket::new(seg).context("udp header")?;
    u.set_source(src_port);
    u.set_destination(spec.dst.port());
    u.set_length(len);
    // A recognisable, non-zero payload: the byte index, as pkt-gen does.
    for (i, b) in u.payload_mut().iter_mut().enumerate() {
        *b = i.to_le_bytes()[0];
    }
    let sum = udp::ipv4_checksum(&u.to_immutable(), &spec.src, spec.dst.ip());
    u.set_checksum(sum);
    Ok(())
}

fn fill_syn(spec: &FrameSpec, src_port: u16, seg: &mut [u8]) -> anyhow::Result<()> {
    let mut t = MutableTcpPacket::new(seg).context("tcp header")?;
    t.set_source(src_port);
    t.set_destination(spec.dst.port());
    // A distinct initial sequence number per flow.
    t.set_sequence(u32::from(src_port).wrapping_mul(2_654_435_761));
    t.set_data_offset(5);
    t.set_flags(TcpFlags::SYN);
    t.set_window(64_240);
    let sum = tcp::ipv4_checksum(&t.to_immutable(), &spec.src, spec.dst.ip());
    t.set_checksum(sum);
    Ok(())
}

fn fill_icmp(ident: u16, seg: &mut [u8]) -> anyhow::Result<()> {
    let mut p = MutableIcmpPacket::new(seg).context("icmp header")?;
    p.set_icmp_type(IcmpTypes::EchoRequest);
    p.set_icmp_code(IcmpCode::new(0));
    // Echo header after type, code, checksum: identifier, then sequence 0.
    p.payload_mut()[..2].copy_from_slice(&ident.to_be_bytes());
    let sum = pnet::packet::icmp::checksum(&p.to_immutable());
    p.set_checksum(sum);
    Ok(())
}

/// Most flows of `--flows`.
pub const MAX_FLOWS: usize = 65_536;
/// Frames of the precomputed Zipf schedule, cycled: long enough that its
/// proportions are those of the distribution to within a few per mille
/// for the heavy flows.
pub const ZIPF_SCHEDULE_LEN: usize = 1 << 16;
/// The seed of the Zipf schedule: the same flood every time.
pub const ZIPF_SEED: u64 = 0x5eed_f10e;
/// The network the extra source addresses of `--flows` come from: off the
/// kernel side's and pollsim's subnet (198.18.0.0/24 in the tests), inside
/// the benchmarking range.
pub const FLOW_NET: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);

/// The source (address, port) of flow `i` of `keys`: the port varies
/// fastest over `keys`; every `keys.len()` flows the address moves to the
/// next one of 198.19.0.0/16 (flow 0.. keep the kernel side's own
/// address `src`, so that one flow is today's flood byte for byte).
pub fn flow_source(src: Ipv4Addr, keys: PortRange, i: usize) -> (Ipv4Addr, u16) {
    let p = keys.len();
    let port = keys.lo + u16::try_from(i % p).unwrap_or(0);
    let block = u32::try_from(i / p).unwrap_or(u32::MAX);
    let addr = match block {
        0 => src,
        b => Ipv4Addr::from(u32::from(FLOW_NET) + b.min(0xffff)),
    };
    (addr, port)
}

/// How the flows share the frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlowDist {
    /// Each flow in turn.
    RoundRobin,
    /// Flow `i` (from 0) with probability proportional to `1 / (i+1)^s`.
    Zipf(f64),
}

/// Smallest and largest Zipf exponent.
pub const ZIPF_S_RANGE: (f64, f64) = (0.0, 10.0);

/// `rr` or `zipf:S` with S in 0..=10.
pub fn parse_flow_dist(s: &str) -> Result<FlowDist, String> {
    let bad = || {
        format!(
            "'{s}' is not a flow distribution: rr, or zipf:S with S in {}..={}",
            ZIPF_S_RANGE.0, ZIPF_S_RANGE.1
        )
    };
    if s == "rr" {
        return Ok(FlowDist::RoundRobin);
    }
    let v: f64 = s
        .strip_prefix("zipf:")
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    if !(ZIPF_S_RANGE.0..=ZIPF_S_RANGE.1).contains(&v) {
        return Err(bad());
    }
    Ok(FlowDist::Zipf(v))
}

/// The Zipf schedule: [`ZIPF_SCHEDULE_LEN`] flow indices drawn by
/// inverting the cumulative distribution with a seeded splitmix64.
pub fn zipf_schedule(flows: usize, s: f64, seed: u64) -> Vec<u32> {
    let mut cdf: Vec<f64> = Vec::with_capacity(flows);
    let mut acc = 0.0;
    for i in 0..flows {
        acc += 1.0 / ((i + 1) as f64).powf(s);
        cdf.push(acc);
    }
    let mut state = seed;
    (0..ZIPF_SCHEDULE_LEN)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64 * acc;
            let i = cdf.partition_point(|&c| c <= u).min(flows - 1);
            u32::try_from(i).unwrap_or(0)
        })
        .collect()
}

/// The pre-built frames: one per flow, back to back in one buffer, and
/// the order they are sent in.
#[derive(Debug)]
pub struct Ring {
    buf: Vec<u8>,
    size: usize,
    /// The order of sending (cycled), or `None` for each frame in turn.
    schedule: Option<Vec<u32>>,
}

impl Ring {
    /// One frame per key of `keys`. Refuses a ring above [`RING_MAX_BYTES`].
    pub fn build(spec: &FrameSpec, keys: PortRange) -> anyhow::Result<Ring> {
        Ring::build_flows(spec, keys, keys.len(), FlowDist::RoundRobin)
    }

    /// `flows` frames, flow `i` from [`flow_source`], sent as `dist` says.
    /// Refuses more than [`MAX_FLOWS`] or a ring above [`RING_MAX_BYTES`].
    pub fn build_flows(
        spec: &FrameSpec,
        keys: PortRange,
        flows: usize,
        dist: FlowDist,
    ) -> anyhow::Result<Ring> {
        if !(1..=MAX_FLOWS).contains(&flows) {
            bail!("--flows {flows} is out of range 1..={MAX_FLOWS}");
        }
        let bytes = flows * spec.size;
        if bytes > RING_MAX_BYTES {
            bail!(
                "{flows} flows: at --size {} at most {} fit in the {} MiB frame ring",
                spec.size,
                RING_MAX_BYTES / spec.size,
                RING_MAX_BYTES >> 20
            );
        }
        let mut buf = vec![0u8; bytes];
        for (i, frame) in buf.chunks_exact_mut(spec.size).enumerate() {
            let (src, key) = flow_source(spec.src, keys, i);
            build_into(&FrameSpec { src, ..*spec }, key, frame)?;
        }
        let schedule = match dist {
            FlowDist::RoundRobin => None,
            FlowDist::Zipf(s) => Some(zipf_schedule(flows, s, ZIPF_SEED)),
        };
        Ok(Ring {
            buf,
            size: spec.size,
            schedule,
        })
    }

    /// The frames in the order they are sent, one cycle of it.
    pub fn sequence(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match &self.schedule {
            None => Box::new(self.frames()),
            Some(order) => Box::new(order.iter().map(|&i| {
                let at = i as usize * self.size;
                &self.buf[at..at + self.size]
            })),
        }
    }

    /// Frames in one cycle of [`Ring::sequence`].
    pub fn sequence_len(&self) -> usize {
        self.schedule.as_ref().map_or(self.len(), Vec::len)
    }

    /// The frames, in order.
    pub fn frames(&self) -> std::slice::ChunksExact<'_, u8> {
        self.buf.chunks_exact(self.size)
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.buf.len() / self.size
    }

    /// Whether there are no frames (never, once built).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet::packet::Packet as _;
    use pnet::packet::ethernet::EthernetPacket;
    use pnet::packet::ipv4::Ipv4Packet;

    fn spec(proto: Proto, size: usize) -> FrameSpec {
        FrameSpec {
            proto,
            size,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 198, 18, 0, 2],
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: "198.18.0.2:9".parse().unwrap(),
        }
    }

    /// The frame parsed back with pnet: IPv4 header and L4 checksums verify.
    fn check(proto: Proto, size: usize, key: u16) {
        let s = spec(proto, size);
        let mut buf = vec![0; size];
        build_into(&s, key, &mut buf).unwrap();
        let eth = EthernetPacket::new(&buf).unwrap();
        assert_eq!(eth.get_ethertype(), EtherTypes::Ipv4);
        let ip = Ipv4Packet::new(eth.payload()).unwrap();
        let ip_len = usize::from(ip.get_total_length());
        let ip = Ipv4Packet::new(&eth.payload()[..ip_len]).unwrap();
        assert_eq!(ip.get_checksum(), ipv4::checksum(&ip));
        let (src, dst) = (ip.get_source(), ip.get_destination());
        match proto {
            Proto::Udp => {
                let u = udp::UdpPacket::new(ip.payload()).unwrap();
                assert_eq!(u.get_source(), key);
                assert_eq!(u.get_checksum(), udp::ipv4_checksum(&u, &src, &dst));
                assert_eq!(ETH_LEN + ip_len, size);
            }
            Proto::Syn => {
                let t = tcp::TcpPacket::new(ip.payload()).unwrap();
                assert_eq!(t.get_flags(), TcpFlags::SYN);
                assert_eq!(t.get_checksum(), tcp::ipv4_checksum(&t, &src, &dst));
            }
            Proto::Icmp => {
                let p = pnet::packet::icmp::IcmpPacket::new(ip.payload()).unwrap();
                assert_eq!(p.get_icmp_type(), IcmpTypes::EchoRequest);
                assert_eq!(p.get_checksum(), pnet::packet::icmp::checksum(&p));
                assert_eq!(ETH_LEN + ip_len, size);
            }
        }
    }

    #[test]
    fn every_protocol_and_size_checksums() {
        for proto in [Proto::Udp, Proto::Syn, Proto::Icmp] {
            for size in [60, 61, 128, 1514] {
                check(proto, size, 40_000);
            }
        }
    }

    #[test]
    fn ring_spreads_the_flow_key_and_is_bounded() {
        let r = Ring::build(&spec(Proto::Udp, 60), PortRange { lo: 1000, hi: 1003 }).unwrap();
        assert_eq!(r.len(), 4);
        let ports: Vec<u16> = r
            .frames()
            .map(|f| u16::from_be_bytes([f[34], f[35]]))
            .collect();
        assert_eq!(ports, [1000, 1001, 1002, 1003]);
        let all = PortRange { lo: 1, hi: 65535 };
        let err = Ring::build(&spec(Proto::Udp, 1514), all).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[test]
    fn one_flow_is_todays_frame_byte_for_byte() {
        let sp = spec(Proto::Udp, 60);
        let mut today = vec![0; 60];
        build_into(&sp, 49_152, &mut today).unwrap();
        let r = Ring::build_flows(&sp, PortRange::single(49_152), 1, FlowDist::RoundRobin).unwrap();
        assert_eq!(r.sequence().collect::<Vec<_>>(), [&today[..]]);
        assert_eq!(r.sequence_len(), 1);
    }

    /// (source address, source port) of each frame.
    fn sources(r: &Ring) -> Vec<(Ipv4Addr, u16)> {
        r.frames()
            .map(|f| {
                let a = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
                (a, u16::from_be_bytes([f[34], f[35]]))
            })
            .collect()
    }

    #[test]
    fn flows_are_distinct_in_range_and_spread_by_rss() {
        use pollsim_drivers::rss::{IndirTable, Rss, RssKey};
        let sp = spec(Proto::Udp, 60);
        let r = Ring::build_flows(
            &sp,
            PortRange { lo: 1000, hi: 1003 },
            256,
            FlowDist::RoundRobin,
        )
        .unwrap();
        let src = sources(&r);
        let distinct: std::collections::HashSet<_> = src.iter().collect();
        assert_eq!(distinct.len(), 256);
        assert!(src.iter().all(|(a, _)| crate::lab::is_bench_addr(*a)));
        assert_eq!(
            src[..4],
            [
                (sp.src, 1000),
                (sp.src, 1001),
                (sp.src, 1002),
                (sp.src, 1003)
            ]
        );
        assert_eq!(src[4], (Ipv4Addr::new(198, 19, 0, 1), 1000));
        let rss = Rss::new(RssKey::MICROSOFT, IndirTable::equal(4).unwrap());
        let mut per_queue = [0usize; 4];
        for f in r.frames() {
            let st = rss.steer(f);
            assert!(st.hash.is_some(), "a UDP frame is hashed");
            per_queue[usize::from(st.queue)] += 1;
        }
        // 256 flows over 4 queues: 64 each on average; a hash that did
        // not depend on the varied fields would put them all on one.
        assert!(
            per_queue.iter().all(|&n| (32..=96).contains(&n)),
            "{per_queue:?}"
        );
        // One flow: one queue, every frame.
        let one = Ring::build(&sp, PortRange::single(9)).unwrap();
        assert_eq!(one.len(), 1);
        // The largest flow count reaches the end of 198.19.0.0/16 and no further.
        let (a, _) = flow_source(sp.src, PortRange::single(9), MAX_FLOWS - 1);
        assert_eq!(a, Ipv4Addr::new(198, 19, 255, 255));
        assert!(
            Ring::build_flows(
                &sp,
                PortRange::single(9),
                MAX_FLOWS + 1,
                FlowDist::RoundRobin
            )
            .is_err()
        );
    }

    #[test]
    fn zipf_shares_are_as_expected() {
        let (k, s) = (16usize, 1.0f64);
        let order = zipf_schedule(k, s, ZIPF_SEED);
        assert_eq!(order.len(), ZIPF_SCHEDULE_LEN);
        assert_eq!(order, zipf_schedule(k, s, ZIPF_SEED), "seeded");
        let h: f64 = (1..=k).map(|i| 1.0 / (i as f64).powf(s)).sum();
        let mut counts = vec![0usize; k];
        for &i in &order {
            counts[i as usize] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let want = 1.0 / ((i + 1) as f64).powf(s) / h;
            let got = c as f64 / order.len() as f64;
            // 65536 draws: one standard deviation is under 0.002.
            assert!((got - want).abs() < 0.01, "flow {i}: {got:.4} vs {want:.4}");
        }
        let r = Ring::build_flows(
            &spec(Proto::Udp, 60),
            PortRange::single(9),
            k,
            FlowDist::Zipf(s),
        )
        .unwrap();
        assert_eq!(r.sequence_len(), ZIPF_SCHEDULE_LEN);
        assert_eq!(r.len(), k);
    }

    #[test]
    fn flow_dists_parse() {
        assert_eq!(parse_flow_dist("rr"), Ok(FlowDist::RoundRobin));
        assert_eq!(parse_flow_dist("zipf:1.2"), Ok(FlowDist::Zipf(1.2)));
        for bad in ["zipf", "zipf:-1", "zipf:11", "uniform", "zipf:x"] {
            assert!(parse_flow_dist(bad).is_err(), "{bad}");
        }
    }
}
