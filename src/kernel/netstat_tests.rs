//! The classifier, on frames crafted with smoltcp's wire types: one cause
//! each, and agreement with smoltcp through a real `Interface`.

use std::net::SocketAddrV4;

use proptest::prelude::*;
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::udp;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, HardwareAddress, Icmpv4Packet,
    Icmpv4Repr, IpAddress, IpCidr, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::*;
use crate::kernel::netisr::{Netisr, capabilities_device, instant};
use crate::kernel::time::Nanos;

const OURS: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const IP_OFF: usize = 14;
const L4_OFF: usize = 34;

fn addrs() -> Vec<IpCidr> {
    vec![IpCidr::Ipv4(Ipv4Cidr::new(
        Ipv4Address::new(198, 18, 0, 2),
        24,
    ))]
}

fn run(frame: &[u8]) -> (InetStats, Verdict) {
    let a = addrs();
    let local = Local {
        mac: EthernetAddress(OURS),
        addrs: &a,
    };
    let mut s = InetStats::default();
    let v = classify(&mut s, &local, frame);
    (s, v)
}

fn udp(dst: &str, payload: &[u8]) -> Vec<u8> {
    let src: SocketAddrV4 = "198.18.0.1:40000".parse().unwrap();
    let dst: SocketAddrV4 = dst.parse().unwrap();
    crate::lab::udp_frame((PEER, src), (OURS, dst), payload)
}

/// An Ethernet/IPv4 frame carrying `payload` as protocol `proto`, valid
/// header checksum.
fn ip_frame(proto: IpProtocol, dst: Ipv4Address, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: Ipv4Address::new(198, 18, 0, 1),
        dst_addr: dst,
        next_header: proto,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(PEER),
        dst_addr: EthernetAddress(OURS),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0; eth.buffer_len() + ip.buffer_len() + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &ChecksumCapabilities::default());
    p.payload_mut().copy_from_slice(payload);
    buf
}

fn ours() -> Ipv4Address {
    Ipv4Address::new(198, 18, 0, 2)
}

fn tcp(syn: bool, sport: u16) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: sport,
        dst_port: 80,
        control: if syn {
            TcpControl::Syn
        } else {
            TcpControl::None
        },
        seq_number: TcpSeqNumber(1),
        ack_number: None,
        window_len: 1024,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let mut seg = vec![0; repr.buffer_len()];
    let (src, dst) = (
        IpAddress::Ipv4(Ipv4Address::new(198, 18, 0, 1)),
        IpAddress::Ipv4(ours()),
    );
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut seg[..]),
        &src,
        &dst,
        &ChecksumCapabilities::default(),
    );
    ip_frame(IpProtocol::Tcp, ours(), &seg)
}

fn echo(data: &[u8]) -> Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data,
    };
    let mut m = vec![0; repr.buffer_len()];
    repr.emit(
        &mut Icmpv4Packet::new_unchecked(&mut m[..]),
        &ChecksumCapabilities::default(),
    );
    ip_frame(IpProtocol::Icmp, ours(), &m)
}

/// Fix the IPv4 header checksum after editing the header.
fn refill_ip(f: &mut [u8]) {
    Ipv4Packet::new_unchecked(&mut f[IP_OFF..]).fill_checksum();
}

fn only(s: &InetStats, name: &str) {
    for f in FIELDS.iter().filter(|f| f.terminal) {
        let v = (f.get)(s);
        let want = u64::from(format!("{}.{}", f.group, f.name) == name);
        assert_eq!(
            v, want,
            "{}.{} (expected only {name}): {s:?}",
            f.group, f.name
        );
    }
}

#[test]
fn the_fields_table_and_from_fn_agree() {
    let s = InetStats::from_fn(|i| i as u64 + 1);
    assert_eq!(s.to_vec(), (1..=FIELDS.len() as u64).collect::<Vec<_>>());
    let mut names: Vec<_> = FIELDS.iter().map(sysctl_name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), FIELDS.len(), "sysctl names are unique");
}

#[test]
fn a_good_datagram_passes_to_its_socket() {
    let (s, v) = run(&udp("198.18.0.2:9", b"hello"));
    assert_eq!(
        v,
        Verdict::Udp {
            unreachable: true,
            dst: ours(),
            port: 9,
            payload: 5,
            bcast: false
        }
    );
    assert_eq!((s.ip_total, s.ip_delivered, s.udp_ipackets), (1, 1, 1));
    assert_eq!(s.terminal_sum(), 0, "the netisr counts its end");
}

#[test]
fn a_bad_udp_checksum_is_udp_badsum() {
    let mut f = udp("198.18.0.2:9", b"hello");
    f[L4_OFF + 6] ^= 0x5a;
    let (s, v) = run(&f);
    assert_eq!(v, Verdict::Refused);
    only(&s, "udp.badsum");
    assert_eq!((s.ip_total, s.udp_ipackets), (1, 1));
}

#[test]
fn a_zero_udp_checksum_means_none() {
    let mut f = udp("198.18.0.2:9", b"hello");
    f[L4_OFF + 6] = 0;
    f[L4_OFF + 7] = 0;
    assert!(matches!(run(&f).1, Verdict::Udp { .. }));
}

#[test]
fn a_bad_ip_header_checksum_is_ip_badsum_and_never_reaches_udp() {
    let mut f = udp("198.18.0.2:9", b"hello");
    f[IP_OFF + 10] ^= 0xff;
    let (s, v) = run(&f);
    assert_eq!(v, Verdict::Refused);
    only(&s, "ip.badsum");
    assert_eq!(s.udp_ipackets, 0);
}

#[test]
fn bad_udp_lengths_are_udp_badlen() {
    for len in [7u16, 200] {
        let mut f = udp("198.18.0.2:9", b"hello");
        f[L4_OFF + 4..L4_OFF + 6].copy_from_slice(&len.to_be_bytes());
        let (s, v) = run(&f);
        assert_eq!(v, Verdict::Refused, "length {len}");
        only(&s, "udp.badlen");
    }
}

#[test]
fn a_udp_header_cut_short_is_udp_hdrops() {
    let f = ip_frame(IpProtocol::Udp, ours(), &[0, 1, 0, 9]);
    let (s, v) = run(&f);
    assert_eq!(v, Verdict::Refused);
    only(&s, "udp.hdrops");
}

#[test]
fn udp_to_port_zero_is_noport() {
    let f = udp("198.18.0.2:0", b"x");
    only(&run(&f).0, "udp.noport");
}

#[test]
fn each_ip_header_defect_has_its_cause() {
    let good = udp("198.18.0.2:9", b"hello");
    let case = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut f = good.clone();
        edit(&mut f);
        let (s, v) = run(&f);
        assert_eq!(v, Verdict::Refused, "{name}");
        only(&s, name);
        assert_eq!(s.ip_total, 1, "{name}");
    };
    case("ip.toosmall", &|f| f.truncate(IP_OFF + 19));
    case("ip.badvers", &|f| {
        f[IP_OFF] = 0x65;
        refill_ip(f);
    });
    case("ip.badhlen", &|f| {
        f[IP_OFF] = 0x44;
    });
    case("ip.badhlen", &|f| {
        f[IP_OFF] = 0x4f;
        f.truncate(IP_OFF + 40);
    });
    case("ip.badlen", &|f| {
        f[IP_OFF + 2..IP_OFF + 4].copy_from_slice(&19u16.to_be_bytes());
        refill_ip(f);
    });
    case("ip.tooshort", &|f| {
        f[IP_OFF + 2..IP_OFF + 4].copy_from_slice(&100u16.to_be_bytes());
        refill_ip(f);
    });
    case("ip.fragdropped", &|f| {
        f[IP_OFF + 6] = 0x20; // more fragments
        refill_ip(f);
    });
    case("ip.cantforward", &|f| {
        f[IP_OFF + 19] = 7; // 198.18.0.7
        refill_ip(f);
    });
    case("ip.notmember", &|f| {
        f[IP_OFF + 16..IP_OFF + 20].copy_from_slice(&[239, 1, 2, 3]);
        refill_ip(f);
    });
    case("ip.badaddr", &|f| {
        f[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&[198, 18, 0, 255]);
        refill_ip(f);
    });
    let mut f = good.clone();
    f[IP_OFF + 6] = 0x20;
    refill_ip(&mut f);
    assert_eq!(run(&f).0.ip_fragments, 1);
}

#[test]
fn below_ip() {
    let (s, v) = run(&[0u8; 10]);
    assert_eq!(v, Verdict::Refused);
    only(&s, "ether.tooshort");
    let mut f = udp("198.18.0.2:9", b"x");
    f[0..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    only(&run(&f).0, "ether.otherhost");
    let mut f = udp("198.18.0.2:9", b"x");
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let (s, _) = run(&f);
    only(&s, "nonip.total");
    assert_eq!(s.nonip_ipv6, 1);
    let mut f = udp("198.18.0.2:9", b"x");
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let (s, v) = run(&f);
    assert_eq!(v, Verdict::Arp);
    only(&s, "arp.received");
}

#[test]
fn an_unknown_protocol_is_noproto_and_smoltcp_answers_it() {
    let (s, v) = run(&ip_frame(IpProtocol::Unknown(253), ours(), b"abcd"));
    assert_eq!(v, Verdict::Counted);
    only(&s, "ip.noproto");
    assert_eq!(s.icmp_error, 1, "a protocol unreachable");
}

#[test]
fn icmp_causes() {
    let (s, v) = run(&echo(b"ping"));
    assert_eq!(v, Verdict::Counted);
    only(&s, "icmp.delivered");
    assert_eq!(s.icmp_reflect, 0, "smoltcp answers no echo request here");
    let mut f = echo(b"ping");
    f[L4_OFF + 2] ^= 1;
    only(&run(&f).0, "icmp.checksum");
    only(
        &run(&ip_frame(IpProtocol::Icmp, ours(), &[8, 0, 0])).0,
        "icmp.tooshort",
    );
    // Type 42 with a valid checksum: smoltcp knows no such message.
    let mut m = [42u8, 0, 0, 0, 0, 0, 0, 0];
    Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
    only(
        &run(&ip_frame(IpProtocol::Icmp, ours(), &m)).0,
        "icmp.badcode",
    );
}

#[test]
fn tcp_causes() {
    let (s, v) = run(&tcp(true, 4000));
    assert!(
        matches!(
            v,
            Verdict::Tcp {
                syn: true,
                dport: 80,
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!((s.tcp_rcvtotal, s.terminal_sum()), (1, 0));
    let mut f = tcp(false, 4000);
    f[L4_OFF + 16] ^= 1;
    only(&run(&f).0, "tcp.rcvbadsum");
    only(
        &run(&ip_frame(IpProtocol::Tcp, ours(), &[0; 12])).0,
        "tcp.rcvshort",
    );
    let mut f = tcp(false, 4000);
    f[L4_OFF + 12] = 0x40; // 16-byte header
    only(&run(&f).0, "tcp.rcvbadoff");
    only(&run(&tcp(false, 0)).0, "tcp.rcvbadhdr");
}

/// A Netisr with one NIC (198.18.0.2/24) and a UDP socket bound to port
/// 9 with room for `slots` datagrams, watched as udp-sink's is.
fn netisr_with_socket(slots: usize) -> (Netisr, crate::kernel::sockets::SockRef) {
    let ic = Config::new(HardwareAddress::Ethernet(EthernetAddress(OURS)));
    let mut iface = Interface::new(ic, &mut capabilities_device(), instant(Nanos::ZERO));
    iface.update_ip_addrs(|a| {
        let _ = a.push(addrs()[0]);
    });
    let mut n = Netisr::new();
    n.attach(iface);
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; slots], vec![0; 64 * slots]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0; 64]);
    let mut sock = udp::Socket::new(rx, tx);
    sock.bind(9).unwrap();
    let shard = n.sockets.udp_shard(9);
    let h = n.sockets.add(0, shard, sock);
    n.watch_udp_port(9, h);
    (n, h)
}

#[test]
fn through_the_netisr_each_datagram_ends_once() {
    let (mut n, h) = netisr_with_socket(2);
    let t = Nanos::from_secs(1);
    let mut bad_udp = udp("198.18.0.2:9", b"hello");
    bad_udp[L4_OFF + 6] ^= 0x5a;
    let mut bad_ip = udp("198.18.0.2:9", b"hello");
    bad_ip[IP_OFF + 10] ^= 0xff;
    for _ in 0..5 {
        n.ingress(0, t, &bad_udp);
    }
    for _ in 0..3 {
        n.ingress(0, t, &bad_ip);
    }
    assert_eq!(
        n.sockets.get::<udp::Socket>(h).recv_queue(),
        0,
        "smoltcp took none"
    );
    for _ in 0..3 {
        n.ingress(0, t, &udp("198.18.0.2:9", b"hello"));
    }
    n.ingress(0, t, &udp("198.18.0.2:10", b"nobody"));
    let s = n.stats();
    let i = &s.inet;
    assert_eq!((i.udp_badsum, i.ip_badsum), (5, 3));
    assert_eq!((i.udp_delivered, i.udp_fullsock), (2, 1), "two slots");
    assert_eq!(i.udp_noport, 1);
    assert_eq!(i.icmp_error, 1, "a port unreachable for it");
    assert_eq!((s.udp_delivered, s.udp_sockbuf_drops), (2, 1));
    assert_eq!(s.frames, 12);
    assert_eq!(i.terminal_sum(), s.frames, "every frame ends in one cause");
}

#[test]
fn through_the_netisr_syns_and_zero_length_datagrams() {
    let (mut n, h) = netisr_with_socket(4);
    let t = Nanos::from_secs(1);
    n.ingress(0, t, &udp("198.18.0.2:9", b""));
    assert!(n.sockets.get::<udp::Socket>(h).can_recv());
    n.ingress(0, t, &tcp(true, 4000));
    n.ingress(0, t, &echo(b"ping"));
    let s = n.stats();
    assert_eq!(s.inet.udp_delivered, 1);
    assert_eq!(
        s.inet.tcp_delivered, 1,
        "no server: smoltcp answers with a RST"
    );
    assert_eq!(s.inet.icmp_delivered, 1);
    assert_eq!(s.inet.terminal_sum(), s.frames);
}

#[test]
fn smoltcp_takes_the_good_frames() {
    for f in good_frames() {
        assert!(
            smoltcp_takes(&f),
            "the property below would be empty: {:?}",
            run(&f)
        );
    }
    let mut f = udp("198.18.0.2:9", b"hello");
    f[L4_OFF + 6] ^= 0x5a;
    assert!(!smoltcp_takes(&f), "smoltcp verifies UDP checksums itself");
}

#[test]
fn an_unwatched_bound_socket_is_found_in_its_shard() {
    let (mut n, _) = netisr_with_socket(1);
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0; 64]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0; 64]);
    let mut sock = udp::Socket::new(rx, tx);
    sock.bind(11).unwrap();
    let shard = n.sockets.udp_shard(11);
    n.sockets.add(0, shard, sock);
    let t = Nanos::from_secs(1);
    n.ingress(0, t, &udp("198.18.0.2:11", b"a"));
    n.ingress(0, t, &udp("198.18.0.2:11", b"b"));
    let i = n.stats().inet;
    assert_eq!((i.udp_delivered, i.udp_fullsock, i.udp_noport), (1, 1, 0));
}

fn good_frames() -> Vec<Vec<u8>> {
    vec![
        udp("198.18.0.2:9", b"hello"),
        tcp(true, 4000),
        ip_frame(IpProtocol::Unknown(253), ours(), b"abcd"),
    ]
}

proptest! {
    /// Whatever bytes a frame is changed to, the classifier ends it in at
    /// most one cause (exactly one when it refuses it), and smoltcp, fed
    /// it with its own checksum verification on, takes no frame the
    /// classifier refuses.
    #[test]
    fn every_frame_ends_in_at_most_one_cause(
        which in 0usize..3,
        edits in proptest::collection::vec((14usize..80, any::<u8>()), 1..4),
        cut in 0usize..100,
    ) {
        let mut f = good_frames()[which].clone();
        for (at, b) in edits {
            if at < f.len() {
                f[at] = b;
            }
        }
        if cut < f.len() && cut > 10 {
            f.truncate(cut);
        }
        let (s, v) = run(&f);
        let ended = s.terminal_sum();
        match v {
            Verdict::Udp { .. } | Verdict::Tcp { .. } => prop_assert_eq!(ended, 0),
            _ => prop_assert_eq!(ended, 1),
        }
        if v == Verdict::Refused {
            prop_assert!(!smoltcp_takes(&f), "refused but smoltcp takes it: {:?}", s);
        }
    }
}

/// A device with one frame to receive and a list of what was sent, with
/// smoltcp's default capabilities (it verifies every checksum).
#[derive(Default)]
struct Wire {
    rx: Option<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct WireRx(Vec<u8>);
struct WireTx<'a>(&'a mut Vec<Vec<u8>>);

impl smoltcp::phy::RxToken for WireRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for WireTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl smoltcp::phy::Device for Wire {
    type RxToken<'a> = WireRx;
    type TxToken<'a> = WireTx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(WireRx, WireTx<'_>)> {
        let f = self.rx.take()?;
        Some((WireRx(f), WireTx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<WireTx<'_>> {
        Some(WireTx(&mut self.tx))
    }

    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        let mut c = smoltcp::phy::DeviceCapabilities::default();
        c.medium = smoltcp::phy::Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// Whether smoltcp, verifying checksums itself, gets past its IP and
/// transport checks with `frame`: a UDP datagram lands in a socket bound
/// to its port, or the frame draws a reply.
fn smoltcp_takes(frame: &[u8]) -> bool {
    use smoltcp::iface::SocketSet;
    let mut dev = Wire::default();
    let ic = Config::new(HardwareAddress::Ethernet(EthernetAddress(OURS)));
    let mut iface = Interface::new(ic, &mut dev, instant(Nanos::ZERO));
    iface.update_ip_addrs(|a| {
        let _ = a.push(addrs()[0]);
    });
    let mut set = SocketSet::new(Vec::new());
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 512]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0; 64]);
    let mut sock = udp::Socket::new(rx, tx);
    let port = frame
        .get(L4_OFF + 2..L4_OFF + 4)
        .map_or(9, |p| u16::from_be_bytes([p[0], p[1]]));
    let _ = sock.bind(port.max(1));
    let h = set.add(sock);
    dev.rx = Some(frame.to_vec());
    let now = instant(Nanos::from_secs(1));
    iface.poll_ingress_single(now, &mut dev, &mut set);
    let _ = iface.poll_egress(now, &mut dev, &mut set);
    set.get::<udp::Socket>(h).can_recv() || !dev.tx.is_empty()
}
