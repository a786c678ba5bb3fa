//! Per-cause input counters, named after FreeBSD's `netstat -s`: the
//! classifier that looks at every frame the netisr hands to smoltcp.
//!
//! Mirrors the checks of FreeBSD's `ether_input`, `ip_input`,
//! `udp_input`, `tcp_input` and `icmp_input` (`struct ipstat` in
//! `netinet/ip_var.h`, `udpstat` in `udp_var.h`, `tcpstat` in `tcp_var.h`,
//! `icmpstat` in `icmp_var.h`, `arpstat` in `if_arp.h`), in their order,
//! and counts each frame once per layer it reaches; a frame refused by a
//! check is counted under that check's cause only.
//!
//! # Agreeing with smoltcp
//!
//! smoltcp 0.14 verifies the IPv4, UDP, TCP and ICMP checksums itself when
//! the device's `ChecksumCapabilities` say `rx` (`Ipv4Repr::parse`,
//! `UdpRepr::parse`, ...), and drops a bad one without a trace. Here the
//! netisr's device says `Tx` only (see `netisr.rs`), so the checksums are
//! computed once per frame, by this classifier, and a frame that fails any
//! check that smoltcp would also fail (the length checks of its
//! `new_checked`, the version, fragments, the checks of its `*Repr::parse`
//! with checksums off) is not handed to smoltcp at all: smoltcp would drop
//! it silently, so nothing is lost, and it is counted here only, so
//! nothing is counted twice. Frames that smoltcp answers (a UDP datagram
//! to no socket, an unknown protocol: ICMP unreachable) or takes are
//! handed on, and their fate is read afterwards (`fullsock` against
//! `delivered`, see `Netisr::ingress`).
//!
//! Every frame ends in exactly one *terminal* counter (see
//! [`FIELDS`]`.terminal`); the frame accounting sums them.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol,
    IPV4_MULTICAST_ALL_SYSTEMS, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpProtocol,
    Ipv4Address, Ipv4Packet, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

/// The input counters, by layer. Each doc line names FreeBSD's field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InetStats {
    /// Ethernet frames shorter than their header (our extension).
    pub ether_tooshort: u64,
    /// Ethernet frames for another unicast hardware address (our extension).
    pub ether_otherhost: u64,
    /// Frames of another ethertype than IPv4 and ARP.
    pub nonip_total: u64,
    /// Of those, IPv6 (the stack is built without IPv6).
    pub nonip_ipv6: u64,
    /// `arpstat.received`.
    pub arp_received: u64,
    /// `arpstat.rxrequests`.
    pub arp_rxrequests: u64,
    /// `arpstat.rxreplies`.
    pub arp_rxreplies: u64,
    /// `ips_total`.
    pub ip_total: u64,
    /// `ips_badsum`.
    pub ip_badsum: u64,
    /// `ips_tooshort`.
    pub ip_tooshort: u64,
    /// `ips_toosmall`.
    pub ip_toosmall: u64,
    /// `ips_badhlen`.
    pub ip_badhlen: u64,
    /// `ips_badlen`.
    pub ip_badlen: u64,
    /// `ips_badvers`.
    pub ip_badvers: u64,
    /// `ips_fragments`.
    pub ip_fragments: u64,
    /// `ips_fragdropped`.
    pub ip_fragdropped: u64,
    /// `ips_reassembled`.
    pub ip_reassembled: u64,
    /// `ips_delivered`.
    pub ip_delivered: u64,
    /// `ips_noproto`.
    pub ip_noproto: u64,
    /// `ips_cantforward`.
    pub ip_cantforward: u64,
    /// `ips_notmember`.
    pub ip_notmember: u64,
    /// `ips_badaddr`.
    pub ip_badaddr: u64,
    /// `icps_badcode`.
    pub icmp_badcode: u64,
    /// `icps_tooshort`.
    pub icmp_tooshort: u64,
    /// `icps_checksum`.
    pub icmp_checksum: u64,
    /// `icps_error`: ICMP errors smoltcp sends (port and protocol
    /// unreachable).
    pub icmp_error: u64,
    /// `icps_reflect`: stays 0, smoltcp (built without
    /// `auto-icmp-echo-reply`) answers no ICMP message.
    pub icmp_reflect: u64,
    /// ICMP messages taken by the stack (FreeBSD: the sum of `icps_inhist`).
    pub icmp_delivered: u64,
    /// `udps_ipackets`.
    pub udp_ipackets: u64,
    /// `udps_hdrops`.
    pub udp_hdrops: u64,
    /// `udps_badsum`.
    pub udp_badsum: u64,
    /// `udps_badlen`.
    pub udp_badlen: u64,
    /// `udps_noport`.
    pub udp_noport: u64,
    /// `udps_noportbcast`.
    pub udp_noportbcast: u64,
    /// `udps_fullsock`.
    pub udp_fullsock: u64,
    /// Delivered (netstat derives it: ipackets less the drops).
    pub udp_delivered: u64,
    /// `tcps_rcvtotal`.
    pub tcp_rcvtotal: u64,
    /// `tcps_rcvbadsum`.
    pub tcp_rcvbadsum: u64,
    /// `tcps_rcvbadoff`.
    pub tcp_rcvbadoff: u64,
    /// `tcps_rcvshort`.
    pub tcp_rcvshort: u64,
    /// Segments whose header smoltcp refuses (our extension).
    pub tcp_rcvbadhdr: u64,
    /// `tcps_listendrop`.
    pub tcp_listendrop: u64,
    /// `tcps_sc_added`.
    pub tcp_sc_added: u64,
    /// `tcps_sc_dupsyn`.
    pub tcp_sc_dupsyn: u64,
    /// Segments taken by TCP (our extension).
    pub tcp_delivered: u64,
}

/// One counter: where it is shown and what it means.
pub struct Field {
    /// Its group: `ether`, `nonip`, `arp`, `ip`, `icmp`, `udp`, `tcp`.
    pub group: &'static str,
    /// Its name in the group (the sysctl leaf and the JSON key).
    pub name: &'static str,
    /// FreeBSD's field, or `None` for our extensions.
    pub freebsd: Option<&'static str>,
    /// The `netstat -s` line after the count (FreeBSD's wording).
    pub text: &'static str,
    /// Indented under the group's total in the text form.
    pub sub: bool,
    /// Whether a frame ends here (the terminal counters partition the
    /// frames handed to the stack).
    pub terminal: bool,
    /// Its value.
    pub get: fn(&InetStats) -> u64,
}

macro_rules! fields {
    ($( $group:literal $name:ident $field:ident $fb:expr, $sub:literal, $term:literal, $text:literal; )*) => {
        /// Every counter, in `netstat -s` order.
        pub const FIELDS: &[Field] = &[$(
            Field {
                group: $group,
                name: stringify!($name),
                freebsd: $fb,
                text: $text,
                sub: $sub,
                terminal: $term,
                get: |s| s.$field,
            },
        )*];
    };
}

fields! {
    "ether" tooshort ether_tooshort None, false, true, "frames shorter than an Ethernet header";
    "ether" otherhost ether_otherhost None, false, true, "frames for another hardware address";
    "nonip" total nonip_total None, false, true, "frames of another ethertype than IPv4 and ARP";
    "nonip" ipv6 nonip_ipv6 None, true, false, "IPv6 (no IPv6 in this stack)";
    "arp" received arp_received Some("received"), false, true, "ARP packets received";
    "arp" rxrequests arp_rxrequests Some("rxrequests"), true, false, "ARP requests received";
    "arp" rxreplies arp_rxreplies Some("rxreplies"), true, false, "ARP replies received";
    "ip" total ip_total Some("ips_total"), false, false, "total packets received";
    "ip" badsum ip_badsum Some("ips_badsum"), false, true, "bad header checksums";
    "ip" toosmall ip_toosmall Some("ips_toosmall"), false, true, "with size smaller than minimum";
    "ip" tooshort ip_tooshort Some("ips_tooshort"), false, true, "with data size < data length";
    "ip" badhlen ip_badhlen Some("ips_badhlen"), false, true, "with header length < data size";
    "ip" badlen ip_badlen Some("ips_badlen"), false, true, "with data length < header length";
    "ip" badvers ip_badvers Some("ips_badvers"), false, true, "with incorrect version number";
    "ip" fragments ip_fragments Some("ips_fragments"), false, false, "fragments received";
    "ip" fragdropped ip_fragdropped Some("ips_fragdropped"), false, true, "fragments dropped (dup or out of space)";
    "ip" reassembled ip_reassembled Some("ips_reassembled"), false, false, "packets reassembled ok";
    "ip" delivered ip_delivered Some("ips_delivered"), false, false, "packets for this host";
    "ip" noproto ip_noproto Some("ips_noproto"), false, true, "packets for unknown/unsupported protocol";
    "ip" cantforward ip_cantforward Some("ips_cantforward"), false, true, "packets not forwardable";
    "ip" notmember ip_notmember Some("ips_notmember"), false, true, "packets received for unknown multicast group";
    "ip" badaddr ip_badaddr Some("ips_badaddr"), false, true, "datagrams with bad address in header";
    "icmp" error icmp_error Some("icps_error"), false, false, "calls to icmp_error";
    "icmp" badcode icmp_badcode Some("icps_badcode"), false, true, "messages with bad code fields";
    "icmp" tooshort icmp_tooshort Some("icps_tooshort"), false, true, "messages less than the minimum length";
    "icmp" checksum icmp_checksum Some("icps_checksum"), false, true, "messages with bad checksum";
    "icmp" delivered icmp_delivered None, false, true, "messages taken by the stack";
    "icmp" reflect icmp_reflect Some("icps_reflect"), false, false, "message responses generated";
    "udp" ipackets udp_ipackets Some("udps_ipackets"), false, false, "datagrams received";
    "udp" hdrops udp_hdrops Some("udps_hdrops"), true, true, "with incomplete header";
    "udp" badlen udp_badlen Some("udps_badlen"), true, true, "with bad data length field";
    "udp" badsum udp_badsum Some("udps_badsum"), true, true, "with bad checksum";
    "udp" noport udp_noport Some("udps_noport"), true, true, "dropped due to no socket";
    "udp" noportbcast udp_noportbcast Some("udps_noportbcast"), true, true, "broadcast/multicast datagrams undelivered";
    "udp" fullsock udp_fullsock Some("udps_fullsock"), true, true, "dropped due to full socket buffers";
    "udp" delivered udp_delivered None, true, true, "delivered";
    "tcp" rcvtotal tcp_rcvtotal Some("tcps_rcvtotal"), false, false, "packets received";
    "tcp" rcvbadsum tcp_rcvbadsum Some("tcps_rcvbadsum"), true, true, "discarded for bad checksums";
    "tcp" rcvbadoff tcp_rcvbadoff Some("tcps_rcvbadoff"), true, true, "discarded for bad header offset fields";
    "tcp" rcvshort tcp_rcvshort Some("tcps_rcvshort"), true, true, "discarded because packet too short";
    "tcp" rcvbadhdr tcp_rcvbadhdr None, true, true, "discarded for a header smoltcp refuses (port 0, flags, options)";
    "tcp" listendrop tcp_listendrop Some("tcps_listendrop"), true, true, "listen queue overflows";
    "tcp" sc_added tcp_sc_added Some("tcps_sc_added"), true, false, "syncache entries added";
    "tcp" sc_dupsyn tcp_sc_dupsyn Some("tcps_sc_dupsyn"), true, false, "dupsyn";
    "tcp" delivered tcp_delivered None, true, true, "taken by TCP";
}

/// The groups, in `netstat -s` order.
pub const GROUPS: [&str; 7] = ["ether", "nonip", "arp", "ip", "icmp", "udp", "tcp"];

impl InetStats {
    /// Add `o`'s counts to these.
    pub fn add(&mut self, o: &InetStats) {
        let mut v = self.to_vec();
        for (a, b) in v.iter_mut().zip(o.to_vec()) {
            *a += b;
        }
        *self = InetStats::from_fn(|i| v[i]);
    }

    /// The counters in [`FIELDS`] order.
    pub fn to_vec(&self) -> Vec<u64> {
        FIELDS.iter().map(|f| (f.get)(self)).collect()
    }

    /// Frames that ended in a terminal counter (every frame handed to the
    /// stack, if the classifier partitions them).
    pub fn terminal_sum(&self) -> u64 {
        FIELDS
            .iter()
            .filter(|f| f.terminal)
            .map(|f| (f.get)(self))
            .sum()
    }

    /// Counters from their values in [`FIELDS`] order (`at(i)`).
    pub fn from_fn(at: impl Fn(usize) -> u64) -> InetStats {
        let mut s = InetStats::default();
        let mut i = 0;
        let mut next = || {
            let v = at(i);
            i += 1;
            v
        };
        // The same order as FIELDS (checked by a test).
        s.ether_tooshort = next();
        s.ether_otherhost = next();
        s.nonip_total = next();
        s.nonip_ipv6 = next();
        s.arp_received = next();
        s.arp_rxrequests = next();
        s.arp_rxreplies = next();
        s.ip_total = next();
        s.ip_badsum = next();
        s.ip_toosmall = next();
        s.ip_tooshort = next();
        s.ip_badhlen = next();
        s.ip_badlen = next();
        s.ip_badvers = next();
        s.ip_fragments = next();
        s.ip_fragdropped = next();
        s.ip_reassembled = next();
        s.ip_delivered = next();
        s.ip_noproto = next();
        s.ip_cantforward = next();
        s.ip_notmember = next();
        s.ip_badaddr = next();
        s.icmp_error = next();
        s.icmp_badcode = next();
        s.icmp_tooshort = next();
        s.icmp_checksum = next();
        s.icmp_delivered = next();
        s.icmp_reflect = next();
        s.udp_ipackets = next();
        s.udp_hdrops = next();
        s.udp_badlen = next();
        s.udp_badsum = next();
        s.udp_noport = next();
        s.udp_noportbcast = next();
        s.udp_fullsock = next();
        s.udp_delivered = next();
        s.tcp_rcvtotal = next();
        s.tcp_rcvbadsum = next();
        s.tcp_rcvbadoff = next();
        s.tcp_rcvshort = next();
        s.tcp_rcvbadhdr = next();
        s.tcp_listendrop = next();
        s.tcp_sc_added = next();
        s.tcp_sc_dupsyn = next();
        s.tcp_delivered = next();
        s
    }
}

/// The sysctl name of a counter: `net.inet.<group>.stats.<name>` for the
/// IP protocols (FreeBSD's `net.inet.ip.stats` etc. are opaque structs;
/// a node per field is our extension), `net.link.ether.arp.stats.<name>`
/// for ARP (FreeBSD's `net.link.ether.arp.stats`), and
/// `net.link.ether.stats.<name>` / `net.link.ether.nonip.<name>` for the
/// frames below IP (ours).
pub fn sysctl_name(f: &Field) -> String {
    match f.group {
        "arp" => format!("net.link.ether.arp.stats.{}", f.name),
        "ether" => format!("net.link.ether.stats.{}", f.name),
        "nonip" => format!("net.link.ether.nonip.{}", f.name),
        g => format!("net.inet.{g}.stats.{}", f.name),
    }
}

/// What the classifier found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refused here, counted under its cause; smoltcp would drop it
    /// silently, so it is not handed on.
    Refused,
    /// ARP: handed to smoltcp.
    Arp,
    /// ICMP or an unknown protocol, counted: handed to smoltcp (which
    /// answers).
    Counted,
    /// A UDP datagram with a valid header, handed to smoltcp; the netisr
    /// finds its socket and counts `noport`, `fullsock` or `delivered`.
    Udp {
        /// Whether smoltcp answers it with an ICMP port unreachable if no
        /// socket takes it (a unicast source and destination).
        unreachable: bool,
        /// Destination address.
        dst: Ipv4Address,
        /// Destination port.
        port: u16,
        /// Bytes of payload.
        payload: usize,
        /// Sent to a broadcast or multicast address.
        bcast: bool,
    },
    /// A TCP segment with a valid header, handed to smoltcp; the netisr
    /// checks the listen queue and counts `listendrop` or `delivered`.
    Tcp {
        /// Source address.
        src: Ipv4Address,
        /// Destination address.
        dst: Ipv4Address,
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// A SYN without ACK.
        syn: bool,
    },
}

/// The checksum capabilities the netisr's device reports to smoltcp:
/// compute on transmit, never verify on receive (this classifier does).
pub fn device_checksums() -> ChecksumCapabilities {
    let mut c = ChecksumCapabilities::default();
    c.ipv4 = smoltcp::phy::Checksum::Tx;
    c.udp = smoltcp::phy::Checksum::Tx;
    c.tcp = smoltcp::phy::Checksum::Tx;
    c.icmpv4 = smoltcp::phy::Checksum::Tx;
    c
}

/// The addresses of the NIC a frame came in on.
pub struct Local<'a> {
    /// Its hardware address.
    pub mac: EthernetAddress,
    /// Its IPv4 addresses.
    pub addrs: &'a [IpCidr],
}

impl Local<'_> {
    fn has_addr(&self, a: Ipv4Address) -> bool {
        self.addrs.iter().any(|c| c.address() == IpAddress::Ipv4(a))
    }

    /// 255.255.255.255 or the broadcast address of one of its subnets
    /// (smoltcp's `is_broadcast_v4`).
    fn is_broadcast(&self, a: Ipv4Address) -> bool {
        a.is_broadcast()
            || self.addrs.iter().any(|c| match c {
                IpCidr::Ipv4(c) => c.broadcast() == Some(a),
            })
    }
}

/// Classify one frame received on the NIC with addresses `local`, and
/// count it in `s` under every layer it reaches. Bound: one parse of each
/// header and one pass over the bytes a checksum covers.
pub fn classify(s: &mut InetStats, local: &Local<'_>, frame: &[u8]) -> Verdict {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        s.ether_tooshort += 1;
        return Verdict::Refused;
    };
    let dst = eth.dst_addr();
    if !dst.is_broadcast() && !dst.is_multicast() && dst != local.mac {
        s.ether_otherhost += 1;
        return Verdict::Refused;
    }
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            s.arp_received += 1;
            if let Ok(a) = ArpPacket::new_checked(eth.payload()) {
                match a.operation() {
                    ArpOperation::Request => s.arp_rxrequests += 1,
                    ArpOperation::Reply => s.arp_rxreplies += 1,
                    ArpOperation::Unknown(_) => {}
                }
            }
            Verdict::Arp
        }
        EthernetProtocol::Ipv4 => ip_input(s, local, eth.payload()),
        t => {
            s.nonip_total += 1;
            if t == EthernetProtocol::Ipv6 {
                s.nonip_ipv6 += 1;
            }
            Verdict::Refused
        }
    }
}

/// Neither broadcast, multicast nor 0.0.0.0 (smoltcp's `x_is_unicast`).
fn unicast(a: Ipv4Address) -> bool {
    !(a.is_broadcast() || a.is_multicast() || a.is_unspecified())
}

/// `ip_input`'s checks, in its order.
fn ip_input(s: &mut InetStats, local: &Local<'_>, buf: &[u8]) -> Verdict {
    s.ip_total += 1;
    if buf.len() < 20 {
        s.ip_toosmall += 1;
        return Verdict::Refused;
    }
    let ip = Ipv4Packet::new_unchecked(buf);
    if ip.version() != 4 {
        s.ip_badvers += 1;
        return Verdict::Refused;
    }
    let hlen = usize::from(ip.header_len());
    if hlen < 20 || hlen > buf.len() {
        s.ip_badhlen += 1;
        return Verdict::Refused;
    }
    if !ip.verify_checksum() {
        s.ip_badsum += 1;
        return Verdict::Refused;
    }
    let len = usize::from(ip.total_len());
    if len < hlen {
        s.ip_badlen += 1;
        return Verdict::Refused;
    }
    if buf.len() < len {
        s.ip_tooshort += 1;
        return Verdict::Refused;
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        // smoltcp is built without `proto-ipv4-fragmentation`: it drops
        // every fragment, so none is ever reassembled.
        s.ip_fragments += 1;
        s.ip_fragdropped += 1;
        return Verdict::Refused;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    // smoltcp: a source must be unicast (not a broadcast of ours) or 0.0.0.0.
    if !src.is_unspecified() && (!unicast(src) || local.is_broadcast(src)) {
        s.ip_badaddr += 1;
        return Verdict::Refused;
    }
    if !local.has_addr(dst) && dst != IPV4_MULTICAST_ALL_SYSTEMS && !local.is_broadcast(dst) {
        if dst.is_multicast() {
            s.ip_notmember += 1;
        } else {
            s.ip_cantforward += 1;
        }
        return Verdict::Refused;
    }
    s.ip_delivered += 1;
    let payload = ip.payload();
    let bcast = dst.is_multicast() || local.is_broadcast(dst);
    match ip.next_header() {
        IpProtocol::Icmp => icmp_input(s, payload),
        IpProtocol::Udp => udp_input(s, payload, src, dst, bcast),
        IpProtocol::Tcp => tcp_input(s, payload, src, dst),
        _ => {
            s.ip_noproto += 1;
            if !src.is_unspecified() && !bcast {
                // smoltcp's `icmpv4_reply`: protocol unreachable.
                s.icmp_error += 1;
            }
            Verdict::Counted
        }
    }
}

fn icmp_input(s: &mut InetStats, buf: &[u8]) -> Verdict {
    let Ok(p) = Icmpv4Packet::new_checked(buf) else {
        s.icmp_tooshort += 1;
        return Verdict::Refused;
    };
    if !p.verify_checksum() {
        s.icmp_checksum += 1;
        return Verdict::Refused;
    }
    // What smoltcp's `process_icmpv4` accepts, checksums aside.
    if Icmpv4Repr::parse(&p, &device_checksums()).is_err() {
        s.icmp_badcode += 1;
        return Verdict::Refused;
    }
    // No `icmp_reflect`: smoltcp is built without `auto-icmp-echo-reply`,
    // so it answers no ICMP message (an echo request goes unanswered).
    s.icmp_delivered += 1;
    Verdict::Counted
}

fn udp_input(
    s: &mut InetStats,
    buf: &[u8],
    src: Ipv4Address,
    dst: Ipv4Address,
    bcast: bool,
) -> Verdict {
    s.udp_ipackets += 1;
    if buf.len() < 8 {
        s.udp_hdrops += 1;
        return Verdict::Refused;
    }
    let u = UdpPacket::new_unchecked(buf);
    let len = usize::from(u.len());
    if len < 8 || len > buf.len() {
        s.udp_badlen += 1;
        return Verdict::Refused;
    }
    // A zero checksum means none was sent (UDP over IPv4).
    if u.checksum() != 0 && !u.verify_checksum(&src.into(), &dst.into()) {
        s.udp_badsum += 1;
        return Verdict::Refused;
    }
    if UdpRepr::parse(&u, &src.into(), &dst.into(), &device_checksums()).is_err() {
        // Port 0: smoltcp drops it without an ICMP reply; no socket has it.
        s.udp_noport += 1;
        return Verdict::Refused;
    }
    Verdict::Udp {
        unreachable: !src.is_unspecified() && !bcast,
        dst,
        port: u.dst_port(),
        payload: len - 8,
        bcast,
    }
}

fn tcp_input(s: &mut InetStats, buf: &[u8], src: Ipv4Address, dst: Ipv4Address) -> Verdict {
    s.tcp_rcvtotal += 1;
    if buf.len() < 20 {
        s.tcp_rcvshort += 1;
        return Verdict::Refused;
    }
    let t = TcpPacket::new_unchecked(buf);
    let off = usize::from(t.header_len());
    if off < 20 || off > buf.len() {
        s.tcp_rcvbadoff += 1;
        return Verdict::Refused;
    }
    if !t.verify_checksum(&src.into(), &dst.into()) {
        s.tcp_rcvbadsum += 1;
        return Verdict::Refused;
    }
    if TcpRepr::parse(&t, &src.into(), &dst.into(), &device_checksums()).is_err() {
        s.tcp_rcvbadhdr += 1;
        return Verdict::Refused;
    }
    Verdict::Tcp {
        src,
        dst,
        sport: t.src_port(),
        dport: t.dst_port(),
        syn: t.syn() && !t.ack(),
    }
}

/// `netstat -s`'s text: a block per group, a line per counter.
pub fn text(s: &InetStats) -> String {
    let mut out = String::new();
    for g in GROUPS {
        out.push_str(g);
        out.push_str(":\n");
        for f in FIELDS.iter().filter(|f| f.group == g) {
            let tabs = if f.sub { "\t\t" } else { "\t" };
            out.push_str(&format!("{tabs}{} {}\n", (f.get)(s), f.text));
        }
    }
    out
}

/// The JSON form: `{"ip": {"badsum": n, ...}, "udp": {...}, ...}`.
pub fn json(s: &InetStats) -> serde_json::Value {
    let mut top = serde_json::Map::new();
    for g in GROUPS {
        let mut m = serde_json::Map::new();
        for f in FIELDS.iter().filter(|f| f.group == g) {
            m.insert(f.name.to_string(), (f.get)(s).into());
        }
        top.insert(g.to_string(), m.into());
    }
    top.into()
}

/// Counters from a MIB dump's `sysctl_name` nodes (`get(name)`), as
/// `pollsim netstat -s` reads them from a running instance.
pub fn from_nodes(get: impl Fn(&str) -> Option<u64>) -> InetStats {
    InetStats::from_fn(|i| get(&sysctl_name(&FIELDS[i])).unwrap_or(0))
}

#[cfg(test)]
#[path = "netstat_tests.rs"]
mod tests;
