//! The network software interrupt: frames into smoltcp, one at a time.
//!
//! Mirrors FreeBSD's netisr dispatch of `ether_input` → `ip_input` →
//! `udp_input`/`tcp_input` → `sbappend` (drop if the socket buffer is
//! full). The protocol code is smoltcp's; this module is the glue: a
//! one-frame `phy::Device` lent to `Interface::poll_ingress_single` (never
//! the unbounded `Interface::poll`), a bounded transmit queue flushed to the
//! NIC, and the accounting of where each frame went, all per NIC: a frame
//! is fed to the Interface of the NIC it came in on, with that NIC's
//! sockets (see `sockets.rs`), and replies leave through that NIC's queue.
//!
//! Differs from FreeBSD: smoltcp does not report why it dropped a frame,
//! so the netisr classifies each frame itself before smoltcp sees it
//! (`netstat.rs`: FreeBSD's `ipstat`/`udpstat`/`tcpstat`/`icmpstat`
//! causes, checksums verified there instead of in smoltcp), and compares
//! the bound UDP socket's receive queue before and after to tell a
//! delivered datagram from one dropped at a full socket buffer (see
//! [`Netisr::ingress`]).

use std::collections::VecDeque;

use pollsim_drivers::Nic;
use smoltcp::iface::Interface;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::udp;
use smoltcp::wire::{EthernetAddress, HardwareAddress};

use super::netstat::{self, InetStats, Local, Verdict};
use super::sockets::{SHARDS, SockRef, Sockets, SynFate};
use super::time::Nanos;

/// Largest Ethernet frame the stack sends (1500-byte MTU plus header).
pub const MAX_FRAME: usize = 1514;
/// Bound of the transmit queue between smoltcp and the NIC.
const TXQ_LEN: usize = 256;

/// Where the netisr sent frames. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetisrStats {
    /// Frames handed to the protocol stack
    pub frames: u64,
    /// UDP datagrams queued on an app's socket buffer
    pub udp_delivered: u64,
    /// UDP datagrams for an app dropped because its socket buffer was full
    pub udp_sockbuf_drops: u64,
    /// SYNs dropped because no listener of their shard was free (listen queue overflow)
    pub listen_drops: u64,
    /// Frames the stack sent to the NIC
    pub tx_frames: u64,
    /// Frames the stack could not send because the transmit queue was full
    pub txq_drops: u64,
    /// Runs of egress processing (timers, replies, app writes)
    pub egress_runs: u64,
    /// The input counters by cause (`netstat -s`).
    pub inet: InetStats,
}

impl NetisrStats {
    /// Add `o`'s counts to these.
    pub fn add(&mut self, o: &NetisrStats) {
        self.frames += o.frames;
        self.udp_delivered += o.udp_delivered;
        self.udp_sockbuf_drops += o.udp_sockbuf_drops;
        self.listen_drops += o.listen_drops;
        self.tx_frames += o.tx_frames;
        self.txq_drops += o.txq_drops;
        self.egress_runs += o.egress_runs;
        self.inet.add(&o.inet);
    }

    /// ARP frames.
    pub fn arp(&self) -> u64 {
        self.inet.arp_received
    }

    /// IPv4 UDP datagrams (with a valid IP header, for this host).
    pub fn udp(&self) -> u64 {
        self.inet.udp_ipackets
    }

    /// IPv4 TCP segments (with a valid IP header, for this host).
    pub fn tcp(&self) -> u64 {
        self.inet.tcp_rcvtotal
    }

    /// IPv4 ICMP messages (with a valid IP header, for this host).
    pub fn icmp(&self) -> u64 {
        let i = &self.inet;
        i.icmp_tooshort + i.icmp_checksum + i.icmp_badcode + i.icmp_delivered
    }

    /// Every other frame: refused below UDP, TCP and ICMP, or another
    /// protocol.
    pub fn other(&self) -> u64 {
        self.frames - self.arp() - self.udp() - self.tcp() - self.icmp()
    }
}

/// A bounded queue of frames from smoltcp to the NIC; buffers are reused.
#[derive(Debug, Default)]
pub struct TxQueue {
    frames: VecDeque<Vec<u8>>,
    free: Vec<Vec<u8>>,
    drops: u64,
}

impl TxQueue {
    fn slot(&mut self, len: usize) -> Option<&mut Vec<u8>> {
        if self.frames.len() >= TXQ_LEN {
            self.drops += 1;
            return None;
        }
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.resize(len, 0);
        self.frames.push_back(buf);
        self.frames.back_mut()
    }

    /// Hand every queued frame to `nic`. Bound: the queue length.
    pub fn flush(&mut self, nic: &mut dyn Nic) -> u64 {
        let mut n = 0;
        while let Some(buf) = self.frames.pop_front() {
            nic.tx(&buf);
            self.free.push(buf);
            n += 1;
        }
        n
    }
}

/// One NIC's part of the netisr: its transmit queue, the UDP ports whose
/// socket-buffer drops it counts, and where its frames went.
#[derive(Debug)]
struct PerNic {
    mac: EthernetAddress,
    udp_ports: Vec<(u16, SockRef)>,
    stats: NetisrStats,
    txq: TxQueue,
}

/// The netisr's state: smoltcp's Interfaces and sockets (one family per
/// NIC, see `sockets.rs`), and per NIC its transmit queue and where frames
/// went.
pub struct Netisr {
    /// Every NIC's Interface and sockets, sharded by flow.
    pub sockets: Sockets,
    nics: Vec<PerNic>,
    /// This CPU's side of handing frames between CPUs (RPS/RFS, a socket
    /// on another CPU): several simulated CPUs only.
    pub rps: Option<Box<super::rps::Rps>>,
}

impl Default for Netisr {
    fn default() -> Self {
        Netisr::new()
    }
}

impl Netisr {
    /// No NIC yet; [`SHARDS`] socket sets per NIC.
    pub fn new() -> Netisr {
        Netisr::with_shards(SHARDS)
    }

    /// No NIC yet; `shards` socket sets per NIC (1: smoltcp's own demux).
    pub fn with_shards(shards: usize) -> Netisr {
        Netisr {
            sockets: Sockets::new(shards),
            nics: Vec::new(),
            rps: None,
        }
    }

    /// Add a NIC's Interface; returns its index (attach order).
    pub fn attach(&mut self, iface: Interface) -> usize {
        #[expect(
            irrefutable_let_patterns,
            reason = "smoltcp is built with medium-ethernet alone"
        )]
        let HardwareAddress::Ethernet(mac) = iface.hardware_addr() else {
            panic!("an Ethernet interface");
        };
        self.nics.push(PerNic {
            mac,
            udp_ports: Vec::new(),
            stats: NetisrStats::default(),
            txq: TxQueue::default(),
        });
        self.sockets.add_nic(iface)
    }

    /// Account datagrams to UDP `port` on the NIC of `handle` against it.
    pub fn watch_udp_port(&mut self, port: u16, handle: SockRef) {
        self.nics[handle.nic()].udp_ports.push((port, handle));
    }

    /// Where NIC `nic`'s frames went.
    pub fn nic_stats(&self, nic: usize) -> &NetisrStats {
        &self.nics[nic].stats
    }

    /// UDP datagrams queued on app sockets, every NIC's: `stats()`'s
    /// `udp_delivered` without summing the rest (it is read by every unit
    /// of work, through the app's socket fill).
    pub fn udp_delivered(&self) -> u64 {
        self.nics.iter().map(|n| n.stats.udp_delivered).sum()
    }

    /// Where frames went, over all NICs.
    pub fn stats(&self) -> NetisrStats {
        self.nics.iter().fold(NetisrStats::default(), |mut t, n| {
            t.add(&n.stats);
            t
        })
    }

    /// Feed one frame that NIC `nic` received to that NIC's Interface,
    /// lending it the one socket set of that NIC its flow hashes to.
    /// The frame is classified first, once ([`netstat::classify`]: every
    /// header parsed once, the checksums verified here and not again by
    /// smoltcp); one it refuses is counted under its cause and not handed
    /// on. Bound: one frame, through `poll_ingress_single`, which scans the
    /// sockets of that shard; replies go to the NIC's transmit queue.
    ///
    /// With several CPUs, a frame of tap0 (NIC 0) may instead be handed to
    /// another CPU ([`super::rps::Rps::steer`]): it does not enter this
    /// CPU's stack.
    pub fn ingress(&mut self, nic: usize, now: Nanos, frame: &[u8]) {
        if nic == 0
            && let Some(r) = self.rps.as_deref_mut()
            && r.steer(frame, true)
        {
            return;
        }
        self.ingress_here(nic, now, frame);
    }

    /// A frame from this CPU's backlog: into this CPU's stack, not to
    /// another backlog (a datagram for a socket on another CPU goes there).
    pub fn ingress_backlog(&mut self, nic: usize, now: Nanos, frame: &[u8]) {
        if let Some(r) = self.rps.as_deref_mut()
            && r.steer(frame, false)
        {
            return;
        }
        self.ingress_here(nic, now, frame);
    }

    /// One frame from this CPU's RPS backlog into its stack
    /// ([`Netisr::ingress_backlog`]); false if the backlog was empty.
    pub fn backlog_one(&mut self, now: Nanos) -> bool {
        let Some(r) = self.rps.as_deref_mut() else {
            return false;
        };
        let mut frame = std::mem::take(&mut r.scratch);
        frame.clear();
        let nic = r.backlog.dequeue_with(|i, f| {
            frame.extend_from_slice(f);
            i
        });
        if nic.is_some() {
            r.stats.backlog_dispatched += 1;
        }
        if let Some(i) = nic {
            self.ingress_backlog(i, now, &frame);
        }
        if let Some(r) = self.rps.as_deref_mut() {
            r.scratch = frame;
        }
        nic.is_some()
    }

    /// Frames waiting in this CPU's RPS backlog.
    pub fn backlog_len(&self) -> usize {
        self.rps.as_ref().map_or(0, |r| r.backlog.len())
    }

    /// [`Netisr::ingress`] into this CPU's stack, whatever the flow.
    pub fn ingress_here(&mut self, nic: usize, now: Nanos, frame: &[u8]) {
        let pn = &mut self.nics[nic];
        pn.stats.frames += 1;
        let local = Local {
            mac: pn.mac,
            addrs: self.sockets.nic(nic).ip_addrs(),
        };
        let verdict = netstat::classify(&mut pn.stats.inet, &local, frame);
        let inet = &mut pn.stats.inet;
        let mut watched = None;
        let shard = match verdict {
            Verdict::Refused => return,
            Verdict::Arp => {
                self.sockets.nic_mut(nic).mark_all_dirty();
                0
            }
            Verdict::Counted => 0,
            Verdict::Udp {
                unreachable,
                dst,
                port,
                payload,
                bcast,
            } => {
                let shard = self.sockets.udp_shard(port);
                let h = pn
                    .udp_ports
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map(|(_, h)| *h)
                    .or_else(|| self.sockets.find_udp(nic, shard, port, dst, bcast));
                match h {
                    Some(h) => {
                        let q = self.sockets.get::<udp::Socket>(h).recv_queue();
                        watched = Some((h, q, payload));
                    }
                    // smoltcp answers with an ICMP port unreachable.
                    None if bcast => inet.udp_noportbcast += 1,
                    None => {
                        inet.udp_noport += 1;
                        inet.icmp_error += u64::from(unreachable);
                    }
                }
                shard
            }
            Verdict::Tcp {
                src,
                dst,
                sport,
                dport,
                syn,
            } => {
                let shard = self
                    .sockets
                    .tcp_shard(src.octets(), sport, dst.octets(), dport);
                if syn {
                    match self.sockets.syn_fate(nic, shard, src, sport, dport) {
                        SynFate::Overflow => {
                            inet.tcp_listendrop += 1;
                            pn.stats.listen_drops += 1;
                            return;
                        }
                        SynFate::Listener => inet.tcp_sc_added += 1,
                        SynFate::HalfOpen => inet.tcp_sc_dupsyn += 1,
                        SynFate::NotServed => {}
                    }
                }
                inet.tcp_delivered += 1;
                shard
            }
        };
        let ns = self.sockets.nic_mut(nic);
        let mut dev = OneFrame {
            rx: Some(frame),
            txq: &mut pn.txq,
        };
        ns.ingress(shard, instant(now), &mut dev);
        if let Some((h, before, payload)) = watched {
            // A datagram that fits grows the queue by its payload; one that
            // does not is dropped by smoltcp without a trace.
            let sock = self.sockets.get::<udp::Socket>(h);
            if sock.recv_queue() > before || payload == 0 && sock.can_recv() {
                pn.stats.udp_delivered += 1;
                pn.stats.inet.udp_delivered += 1;
            } else {
                pn.stats.udp_sockbuf_drops += 1;
                pn.stats.inet.udp_fullsock += 1;
            }
        }
        pn.stats.txq_drops = pn.txq.drops;
    }

    /// Run NIC `nic`'s egress: replies, app writes, TCP timers, and hand
    /// the frames to `dev` (that NIC's driver) after each shard, so that a
    /// pass over many connections does not overflow the transmit queue.
    /// Bound: one pass over the NIC's shards that may send (see
    /// [`super::sockets::NicSockets::egress_due`]), each socket emitting at most one
    /// segment.
    pub fn egress(&mut self, nic: usize, dev: &mut dyn Nic, now: Nanos) {
        let pn = &mut self.nics[nic];
        pn.stats.egress_runs += 1;
        let mut tx = 0;
        let mut one = OneFrame {
            rx: None,
            txq: &mut pn.txq,
        };
        self.sockets
            .nic_mut(nic)
            .egress_due(instant(now), &mut one, |one| tx += one.txq.flush(dev));
        pn.stats.tx_frames += tx;
        pn.stats.txq_drops = pn.txq.drops;
    }

    /// Send NIC `nic`'s queued frames out of `dev`, its driver.
    pub fn flush(&mut self, nic: usize, dev: &mut dyn Nic) {
        let pn = &mut self.nics[nic];
        pn.stats.tx_frames += pn.txq.flush(dev);
    }
}

/// smoltcp's clock, from ours.
pub fn instant(now: Nanos) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now.as_micros()).unwrap_or(i64::MAX))
}

/// A device that holds at most one received frame and queues transmits.
struct OneFrame<'f> {
    rx: Option<&'f [u8]>,
    txq: &'f mut TxQueue,
}

struct Rx<'a>(&'a [u8]);
struct Tx<'a>(&'a mut TxQueue);

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self.0.slot(len) {
            Some(buf) => f(buf),
            // Full queue: let smoltcp build the frame into scratch, then drop it.
            None => f(&mut vec![0; len]),
        }
    }
}

impl<'f> phy::Device for OneFrame<'f> {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let frame = self.rx.take()?;
        Some((Rx(frame), Tx(self.txq)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(self.txq))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        // The classifier verifies the checksums of every received frame
        // before smoltcp sees it; smoltcp computes them on transmit.
        caps.checksum = netstat::device_checksums();
        caps
    }
}

/// A device for building an `Interface`: no frames, capabilities only.
pub fn capabilities_device() -> impl phy::Device {
    OwnedNone
}

struct OwnedNone;

impl phy::Device for OwnedNone {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        None
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        OneFrame {
            rx: None,
            txq: &mut TxQueue::default(),
        }
        .capabilities()
    }
}
