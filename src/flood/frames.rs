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

/// The pre-built frames: one per flow key, back to back in one buffer.
#[derive(Debug)]
pub struct Ring {
    buf: Vec<u8>,
    size: usize,
}

impl Ring {
    /// One frame per key of `keys`. Refuses a ring above [`RING_MAX_BYTES`].
    pub fn build(spec: &FrameSpec, keys: PortRange) -> anyhow::Result<Ring> {
        let bytes = keys.len() * spec.size;
        if bytes > RING_MAX_BYTES {
            bail!(
                "--src-ports spans {} ports: at --size {} at most {} fit in the {} MiB frame ring",
                keys.len(),
                spec.size,
                RING_MAX_BYTES / spec.size,
                RING_MAX_BYTES >> 20
            );
        }
        let mut buf = vec![0u8; bytes];
        for (key, frame) in keys.ports().zip(buf.chunks_exact_mut(spec.size)) {
            build_into(spec, key, frame)?;
        }
        Ok(Ring {
            buf,
            size: spec.size,
        })
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
}
