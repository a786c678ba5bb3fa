//! The stack's sockets, per NIC and sharded: for every interface, its
//! smoltcp `Interface` bundled with the socket sets only it is ever lent
//! ([`NicSockets`]), and within those, several `SocketSet`s, one chosen per
//! frame by a hash of its flow, so smoltcp's demux scans one shard.
//!
//! # One Interface per family of shards
//!
//! smoltcp 0.14 has no notion of a socket's interface: an egress pass
//! dispatches every socket of the set it is handed
//! (`Interface::socket_egress`). Two Interfaces over one set go wrong in
//! two ways, read in its source: a TCP socket with a 4-tuple whose local
//! address the polling Interface does not own is silently reset
//! (`tcp::Socket::dispatch` checks `cx.has_ip_addr(tuple.local)`, since
//! PR #1113), so a connection taken on tap0 dies in tap1's pass and the
//! client's next segment draws a RST; and a route failure on the wrong
//! Interface marks the socket `neighbor_missing` in metadata kept beside
//! the socket in the set (`socket_meta.rs`), silencing it for a second on
//! the right one too. Its maintainers' model is one Interface for one set
//! (smoltcp #779). So each NIC gets its own Interface and its own family
//! of shards, in one struct whose methods lend a shard only to the
//! Interface beside it: no API takes an Interface from outside or hands a
//! raw set out, so the types cannot mix them up. Neighbour caches, their
//! one-ARP-a-second limit, `poll_at` and the egress bookkeeping are per NIC
//! as a consequence, and a flood on one NIC cannot silence the other's
//! sockets. Apps listen on every NIC by opening their listeners in every
//! family, bound to that NIC's address; the listen backlog is per NIC
//! (unlike one BSD `INADDR_ANY` socket), and a reply leaves by the NIC
//! whose Interface owns its socket, which is the one the request came in
//! on. The alternative, one Interface with both addresses over a device
//! that multiplexes the taps, would share the ARP rate limit between NICs
//! (smoltcp #1101), exactly when a flood stresses one of them.
//!
//! # Shards
//!
//! smoltcp finds the socket of an incoming segment by scanning every socket
//! of the set it is handed (`process_tcp`/`process_udp` iterate
//! `SocketSet::items_mut`; its maintainers note the cost in PR #934), so
//! per-frame cost grows with the number of connections. Mirrors what a NIC
//! does with RSS and Linux with `SO_REUSEPORT` groups: the netisr hashes a
//! TCP frame's 4-tuple (a UDP frame's destination port) to one of
//! [`SHARDS`] sets of its NIC and lends only that set to
//! `poll_ingress_single`. A connection's socket lives in the shard its
//! 4-tuple hashes to, because it was the listener in that shard that took
//! its SYN; servers therefore keep listeners in every shard (see
//! `apps/pool.rs`). Frames that are neither TCP nor UDP (ARP, ICMP) go to
//! shard 0.
//!
//! A SYN to a served port whose shard has no listener left (the app has
//! not yet opened new ones after a burst of SYNs) and no socket of its
//! flow is dropped, not answered with smoltcp's RST: a real kernel drops a
//! SYN when its listen queue overflows (Linux's `ListenOverflows`,
//! FreeBSD's `sonewconn` failure), and the client's retransmission finds
//! the listeners the app has opened since. A RST would fail the client's
//! `connect` (see [`Sockets::listen_overflow`]).
//!
//! Egress visits only shards that may have something to send: one that
//! took a frame or whose sockets an app touched since its last egress
//! (`dirty`), or whose earliest timer (smoltcp's `poll_at`) is due, so an
//! egress pass costs O(active shards) rather than O(sockets).

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{AnySocket, Socket, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpCidr, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket,
    UdpPacket,
};

/// Socket sets of each NIC.
pub const SHARDS: usize = 256;
/// Interfaces a kernel may have (a [`SockRef`] names its NIC in a byte).
pub const MAX_NICS: usize = 256;

/// A socket: its NIC, its shard there and its handle in that shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockRef {
    nic: u8,
    shard: u16,
    handle: SocketHandle,
}

impl SockRef {
    /// The shard it lives in (within its NIC's family).
    pub fn shard(self) -> usize {
        usize::from(self.shard)
    }

    /// The NIC whose Interface owns it.
    pub fn nic(self) -> usize {
        usize::from(self.nic)
    }
}

/// One NIC's Interface and the socket sets only it is lent.
pub struct NicSockets {
    iface: Interface,
    sets: Vec<SocketSet<'static>>,
    dirty: Vec<bool>,
    /// Per shard: when smoltcp next needs an egress pass (None: never).
    next_at: Vec<Option<Instant>>,
    /// Per shard: egress passes that visited it (wrapping).
    visits: Vec<u32>,
}

impl NicSockets {
    fn new(iface: Interface, shards: usize) -> NicSockets {
        NicSockets {
            iface,
            sets: (0..shards).map(|_| SocketSet::new(Vec::new())).collect(),
            dirty: vec![false; shards],
            next_at: vec![None; shards],
            visits: vec![0; shards],
        }
    }

    /// The addresses of its Interface.
    pub fn ip_addrs(&self) -> &[IpCidr] {
        self.iface.ip_addrs()
    }

    /// The hardware address of its Interface.
    pub fn hardware_addr(&self) -> smoltcp::wire::HardwareAddress {
        self.iface.hardware_addr()
    }

    /// Its first IPv4 address (what its listeners bind to).
    pub fn ipv4_addr(&self) -> Option<Ipv4Address> {
        self.iface.ipv4_addr()
    }

    /// Feed one frame to this NIC's Interface, lending it shard `k` of
    /// this NIC. Bound: one frame (`poll_ingress_single`, which scans the
    /// sockets of that shard).
    pub fn ingress<D: Device>(&mut self, k: usize, now: Instant, dev: &mut D) {
        self.dirty[k] = true;
        self.iface.poll_ingress_single(now, dev, &mut self.sets[k]);
    }

    /// Give every shard an egress pass (after an ARP frame: a socket in
    /// any shard may have been waiting for that neighbour). O(shards).
    pub fn mark_all_dirty(&mut self) {
        self.dirty.iter_mut().for_each(|d| *d = true);
    }

    /// Run one `poll_egress` of this NIC's Interface over every shard of
    /// this NIC that is dirty or whose timer is due, calling `after` after
    /// each (to flush the frames), then note when each visited shard next
    /// needs a pass. Bound: the shards (a flag check each) plus the sockets
    /// of the shards visited, each emitting at most one segment.
    pub fn egress_due<D: Device>(
        &mut self,
        now: Instant,
        dev: &mut D,
        mut after: impl FnMut(&mut D),
    ) {
        for k in 0..self.sets.len() {
            if !(self.dirty[k] || self.next_at[k].is_some_and(|t| t <= now)) {
                continue;
            }
            self.dirty[k] = false;
            self.visits[k] = self.visits[k].wrapping_add(1);
            self.iface.poll_egress(now, dev, &mut self.sets[k]);
            after(dev);
            self.next_at[k] = self.iface.poll_at(now, &self.sets[k]);
        }
    }
}

/// What a SYN finds in its shard ([`Sockets::syn_fate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynFate {
    /// Not a served port: smoltcp answers it (a listener or a RST).
    NotServed,
    /// Served, but no listener of the shard is free: dropped.
    Overflow,
    /// A listener takes it (a new half-open connection).
    Listener,
    /// A retransmitted SYN, for the half-open socket of its flow.
    HalfOpen,
}

/// Every NIC's sockets, addressed by [`SockRef`].
pub struct Sockets {
    nics: Vec<NicSockets>,
    shards: usize,
    len: usize,
    /// TCP ports whose server keeps listeners in every shard (of every NIC).
    served: Vec<u16>,
}

impl Sockets {
    /// No NIC yet; each NIC added gets `shards` sets (1..=65536).
    pub fn new(shards: usize) -> Sockets {
        assert!((1..=1 << 16).contains(&shards), "1..65536 shards");
        Sockets {
            nics: Vec::new(),
            shards,
            len: 0,
            served: Vec::new(),
        }
    }

    /// Add a NIC's Interface, with its own empty family of shards; returns
    /// its index (the order NICs are added in). At most [`MAX_NICS`].
    pub fn add_nic(&mut self, iface: Interface) -> usize {
        assert!(self.nics.len() < MAX_NICS, "at most {MAX_NICS} NICs");
        self.nics.push(NicSockets::new(iface, self.shards));
        self.nics.len() - 1
    }

    /// NICs added.
    pub fn nics(&self) -> usize {
        self.nics.len()
    }

    /// NIC `i`'s Interface and shards.
    pub fn nic(&self, i: usize) -> &NicSockets {
        &self.nics[i]
    }

    /// NIC `i`'s Interface and shards, to feed or run egress.
    pub fn nic_mut(&mut self, i: usize) -> &mut NicSockets {
        &mut self.nics[i]
    }

    /// Number of shards of each NIC.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Sockets held, over all NICs and shards.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no socket is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add `socket` to NIC `nic`'s `shard` (taken modulo the shard count).
    pub fn add<T: AnySocket<'static>>(&mut self, nic: usize, shard: usize, socket: T) -> SockRef {
        let k = shard % self.shards;
        let n = &mut self.nics[nic];
        let handle = n.sets[k].add(socket);
        n.dirty[k] = true;
        self.len += 1;
        SockRef {
            nic: u8::try_from(nic).expect("at most 256 NICs"),
            shard: u16::try_from(k).expect("at most 65536 shards"),
            handle,
        }
    }

    /// Remove a socket (its handle may be reused by a later `add`).
    pub fn remove(&mut self, r: SockRef) {
        self.nics[r.nic()].sets[r.shard()].remove(r.handle);
        self.len -= 1;
    }

    /// A socket, to read. Panics if `r` is not of type `T` (as smoltcp).
    pub fn get<T: AnySocket<'static>>(&self, r: SockRef) -> &T {
        self.nics[r.nic()].sets[r.shard()].get::<T>(r.handle)
    }

    /// A socket, to change; its shard gets an egress pass.
    pub fn get_mut<T: AnySocket<'static>>(&mut self, r: SockRef) -> &mut T {
        let n = &mut self.nics[r.nic()];
        n.dirty[r.shard()] = true;
        n.sets[r.shard()].get_mut::<T>(r.handle)
    }

    /// Connect TCP socket `r` to `remote` from `local_port`, with the
    /// Interface of its own NIC (whose address becomes its local one).
    pub fn connect_tcp(
        &mut self,
        r: SockRef,
        remote: (Ipv4Address, u16),
        local_port: u16,
    ) -> Result<(), smoltcp::socket::tcp::ConnectError> {
        let n = &mut self.nics[r.nic()];
        n.dirty[r.shard()] = true;
        let cx = n.iface.context();
        n.sets[r.shard()]
            .get_mut::<smoltcp::socket::tcp::Socket>(r.handle)
            .connect(cx, remote, local_port)
    }

    /// A socket, to register wakers on (which sends nothing: no egress).
    pub fn get_mut_quiet<T: AnySocket<'static>>(&mut self, r: SockRef) -> &mut T {
        self.nics[r.nic()].sets[r.shard()].get_mut::<T>(r.handle)
    }

    /// Egress passes that visited the shard of `r` so far (wrapping): a
    /// socket changed since a reading has sent what it owed once this
    /// moves.
    pub fn egress_visits(&self, r: SockRef) -> u32 {
        self.nics[r.nic()].visits[r.shard()]
    }

    /// Note that a server keeps listeners on TCP `port` in every shard.
    pub fn serve_tcp_port(&mut self, port: u16) {
        if !self.served.contains(&port) {
            self.served.push(port);
        }
    }

    /// Whether `frame`, for `shard` of NIC `nic`, is a SYN to a served
    /// port that no socket of the shard can take: none listens on the port
    /// and none holds the SYN's flow (a retransmitted SYN goes to its
    /// half-open socket). Bound: one scan of the shard, as smoltcp's own
    /// demux.
    pub fn listen_overflow(&self, nic: usize, shard: usize, frame: &[u8]) -> bool {
        syn_of(frame).is_some_and(|(src, sport, dport)| {
            self.syn_fate(nic, shard, src, sport, dport) == SynFate::Overflow
        })
    }

    /// What a SYN (without ACK) from `src:sport` to port `dport` finds in
    /// `shard` of NIC `nic` (see [`Sockets::listen_overflow`]). Bound: one
    /// scan of the shard, only for a served port.
    pub fn syn_fate(
        &self,
        nic: usize,
        shard: usize,
        src: Ipv4Address,
        sport: u16,
        dport: u16,
    ) -> SynFate {
        if !self.served.contains(&dport) {
            return SynFate::NotServed;
        }
        let mut fate = SynFate::Overflow;
        for (_, sock) in self.nics[nic].sets[shard].iter() {
            let Socket::Tcp(t) = sock else {
                continue;
            };
            match t.state() {
                tcp::State::Listen if t.listen_endpoint().port == dport => {
                    fate = SynFate::Listener;
                }
                tcp::State::Listen => {}
                _ => {
                    if t.local_endpoint().is_some_and(|l| l.port == dport)
                        && t.remote_endpoint().is_some_and(|r| {
                            r.port == sport && r.addr == smoltcp::wire::IpAddress::Ipv4(src)
                        })
                    {
                        // smoltcp's demux prefers the flow's own socket.
                        return SynFate::HalfOpen;
                    }
                }
            }
        }
        fate
    }

    /// The bound UDP socket of `shard` of NIC `nic` that smoltcp would hand
    /// a datagram to port `port` for `dst` (`bcast`: a broadcast or
    /// multicast destination), as `udp::Socket::accepts` decides: the port
    /// matches and the socket is bound to no address, to `dst`, or `dst`
    /// is broadcast or multicast. Bound: one scan of the shard.
    pub fn find_udp(
        &self,
        nic: usize,
        shard: usize,
        port: u16,
        dst: Ipv4Address,
        bcast: bool,
    ) -> Option<SockRef> {
        self.nics[nic].sets[shard]
            .iter()
            .find(|(_, sock)| {
                let Socket::Udp(u) = sock else {
                    return false;
                };
                let ep = u.endpoint();
                ep.port == port
                    && (ep.addr.is_none()
                        || ep.addr == Some(smoltcp::wire::IpAddress::Ipv4(dst))
                        || bcast)
            })
            .map(|(handle, _)| SockRef {
                nic: u8::try_from(nic).expect("at most 256 NICs"),
                shard: u16::try_from(shard).expect("at most 65536 shards"),
                handle,
            })
    }

    /// The shard of TCP port pair and addresses (a flow's 4-tuple).
    pub fn tcp_shard(&self, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> usize {
        let a = u64::from(u32::from_be_bytes(src)) << 32 | u64::from(u32::from_be_bytes(dst));
        let b = u64::from(sport) << 16 | u64::from(dport);
        self.pick(mix(a ^ mix(b)))
    }

    /// The shard of UDP destination port `port` (a bound socket matches
    /// any source).
    pub fn udp_shard(&self, port: u16) -> usize {
        self.pick(mix(u64::from(port) | 0x1_0000))
    }

    /// The shard of an Ethernet frame: by flow for TCP and UDP over IPv4,
    /// else shard 0.
    pub fn shard_of(&self, frame: &[u8]) -> usize {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return 0;
        };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return 0;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return 0;
        };
        match ip.next_header() {
            IpProtocol::Tcp => TcpPacket::new_checked(ip.payload()).map_or(0, |t| {
                self.tcp_shard(
                    ip.src_addr().octets(),
                    t.src_port(),
                    ip.dst_addr().octets(),
                    t.dst_port(),
                )
            }),
            IpProtocol::Udp => {
                UdpPacket::new_checked(ip.payload()).map_or(0, |u| self.udp_shard(u.dst_port()))
            }
            _ => 0,
        }
    }

    fn pick(&self, h: u64) -> usize {
        // Multiply-shift: the high bits are the well mixed ones.
        usize::try_from((u128::from(h) * self.shards as u128) >> 64).unwrap_or(0)
    }
}

/// A TCP SYN (without ACK) over IPv4: source address and port, and
/// destination port.
fn syn_of(frame: &[u8]) -> Option<(smoltcp::wire::Ipv4Address, u16, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    (t.syn() && !t.ack()).then(|| (ip.src_addr(), t.src_port(), t.dst_port()))
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_spread_over_the_shards() {
        let s = Sockets::new(SHARDS);
        let mut count = vec![0u32; SHARDS];
        for port in 30_000..40_000u16 {
            count[s.tcp_shard([198, 18, 0, 1], port, [198, 18, 0, 2], 7)] += 1;
        }
        let (lo, hi) = (count.iter().min().unwrap(), count.iter().max().unwrap());
        // 10,000 flows over 256 shards: about 39 each.
        assert!(*lo > 15 && *hi < 70, "uneven: {lo}..{hi}");
        assert_eq!(
            Sockets::new(1).tcp_shard([1, 2, 3, 4], 1, [5, 6, 7, 8], 2),
            0
        );
    }

    #[test]
    fn a_frame_goes_to_its_flows_shard() {
        let s = Sockets::new(SHARDS);
        let src: std::net::SocketAddrV4 = "198.18.0.1:40000".parse().unwrap();
        let dst: std::net::SocketAddrV4 = "198.18.0.2:9".parse().unwrap();
        let f = crate::lab::udp_frame(([2; 6], src), ([3; 6], dst), b"x");
        assert_eq!(s.shard_of(&f), s.udp_shard(9));
        assert_eq!(s.shard_of(&[0u8; 10]), 0);
    }

    fn syn_to(port: u16) -> Vec<u8> {
        use crate::flood::frames::{FrameSpec, Proto, build_into};
        let spec = FrameSpec {
            proto: Proto::Syn,
            size: 60,
            src_mac: [2; 6],
            dst_mac: [3; 6],
            src: "198.18.0.1".parse().unwrap(),
            dst: std::net::SocketAddrV4::new("198.18.0.2".parse().unwrap(), port),
        };
        let mut f = vec![0; 60];
        build_into(&spec, 40_000, &mut f).unwrap();
        f
    }

    fn listener(port: u16) -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64]),
            tcp::SocketBuffer::new(vec![0; 64]),
        );
        s.listen(port).unwrap();
        s
    }

    /// Sockets of `nics` NICs (198.18.n.2/24), one shard each.
    fn one_shard(nics: u8) -> Sockets {
        use smoltcp::iface::Config;
        use smoltcp::wire::{EthernetAddress, HardwareAddress, Ipv4Cidr};
        let mut s = Sockets::new(1);
        for n in 0..nics {
            let ic = Config::new(HardwareAddress::Ethernet(EthernetAddress([
                2, 0, 0, 0, 0, n,
            ])));
            let mut dev = crate::kernel::netisr::capabilities_device();
            let mut iface = Interface::new(ic, &mut dev, Instant::from_millis(0));
            iface.update_ip_addrs(|a| {
                let ip = Ipv4Address::new(198, 18, n, 2);
                a.push(IpCidr::Ipv4(Ipv4Cidr::new(ip, 24))).unwrap();
            });
            s.add_nic(iface);
        }
        s
    }

    #[test]
    fn a_syn_to_a_served_port_without_a_free_listener_overflows() {
        let mut s = one_shard(2);
        let syn = syn_to(80);
        assert!(!s.listen_overflow(0, 0, &syn), "no server: smoltcp answers");
        s.serve_tcp_port(80);
        assert!(s.listen_overflow(0, 0, &syn), "served, no listener left");
        assert!(!s.listen_overflow(0, 0, &syn_to(81)), "another port");
        let l = s.add(0, 0, listener(8080));
        assert!(s.listen_overflow(0, 0, &syn), "a listener on another port");
        s.remove(l);
        s.add(1, 0, listener(80));
        assert!(
            s.listen_overflow(0, 0, &syn),
            "a listener of another NIC cannot take it"
        );
        s.add(0, 0, listener(80));
        assert!(!s.listen_overflow(0, 0, &syn), "a free listener takes it");
        let mut ack = syn_to(80);
        // Not a SYN: the flag byte of the TCP header (14 + 20 + 13) is ACK.
        ack[47] = 0x10;
        s = one_shard(1);
        s.serve_tcp_port(80);
        assert!(!s.listen_overflow(0, 0, &ack), "only SYNs overflow");
    }
}
