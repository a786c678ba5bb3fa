//! The network software interrupt: frames into smoltcp, one at a time.
//!
//! Mirrors FreeBSD's netisr dispatch of `ether_input` → `ip_input` →
//! `udp_input`/`tcp_input` → `sbappend` (drop if the socket buffer is
//! full). The protocol code is smoltcp's; this module is the glue: a
//! one-frame `phy::Device` lent to `Interface::poll_ingress_single` (never
//! the unbounded `Interface::poll`), a bounded transmit queue flushed to the
//! NIC, and the accounting of where each frame went.
//!
//! Differs from FreeBSD: smoltcp does not report a socket-buffer drop, so
//! the netisr classifies each frame itself and compares the bound UDP
//! socket's receive queue before and after (see [`Netisr::ingress`]).

use std::collections::VecDeque;

use pollsim_drivers::Nic;
use smoltcp::iface::Interface;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::udp;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, UdpPacket};

use super::sockets::{SHARDS, SockRef, Sockets};
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
    /// ARP frames
    pub arp: u64,
    /// IPv4 UDP frames
    pub udp: u64,
    /// IPv4 TCP frames
    pub tcp: u64,
    /// IPv4 ICMP frames
    pub icmp: u64,
    /// Other frames (IPv6, unknown ethertypes, malformed)
    pub other: u64,
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

/// The netisr's state: smoltcp's sockets and where frames went.
pub struct Netisr {
    /// Every socket of every app, sharded by flow.
    pub sockets: Sockets,
    udp_ports: Vec<(u16, SockRef)>,
    /// Where frames went.
    pub stats: NetisrStats,
    /// Frames on their way to the NIC.
    pub txq: TxQueue,
}

impl Default for Netisr {
    fn default() -> Self {
        Netisr::new()
    }
}

impl Netisr {
    /// An empty netisr with [`SHARDS`] socket sets.
    pub fn new() -> Netisr {
        Netisr::with_shards(SHARDS)
    }

    /// An empty netisr with `shards` socket sets (1: smoltcp's own demux).
    pub fn with_shards(shards: usize) -> Netisr {
        Netisr {
            sockets: Sockets::new(shards),
            udp_ports: Vec::new(),
            stats: NetisrStats::default(),
            txq: TxQueue::default(),
        }
    }

    /// Account datagrams to UDP `port` against the socket `handle`.
    pub fn watch_udp_port(&mut self, port: u16, handle: SockRef) {
        self.udp_ports.push((port, handle));
    }

    /// Feed one frame to smoltcp, lending it the one socket set its flow
    /// hashes to. Bound: one frame, through `poll_ingress_single`, which
    /// scans the sockets of that shard; replies go to the transmit queue.
    pub fn ingress(&mut self, iface: &mut Interface, now: Nanos, frame: &[u8]) {
        self.stats.frames += 1;
        let arp_before = self.stats.arp;
        let watched = self.classify(frame);
        let before = watched.map(|h| self.sockets.get::<udp::Socket>(h).recv_queue());
        let mut dev = OneFrame {
            rx: Some(frame),
            txq: &mut self.txq,
        };
        let shard = self.sockets.shard_of(frame);
        if self.stats.arp != arp_before {
            self.sockets.mark_all_dirty();
        }
        if self.sockets.listen_overflow(shard, frame) {
            self.stats.listen_drops += 1;
            return;
        }
        let set = self.sockets.set_for_ingress(shard);
        iface.poll_ingress_single(instant(now), &mut dev, set);
        if let (Some(h), Some(before)) = (watched, before) {
            // A datagram that fits grows the queue by its payload; one that
            // does not is dropped by smoltcp without a trace.
            let sock = self.sockets.get::<udp::Socket>(h);
            if sock.recv_queue() > before || udp_payload_len(frame) == Some(0) && sock.can_recv() {
                self.stats.udp_delivered += 1;
            } else {
                self.stats.udp_sockbuf_drops += 1;
            }
        }
        self.stats.txq_drops = self.txq.drops;
    }

    /// Run smoltcp's egress: replies, app writes, TCP timers, and hand the
    /// frames to `nic` after each shard, so that a pass over many
    /// connections does not overflow the transmit queue. Bound: one pass
    /// over the shards that may send (see [`Sockets::egress_due`]), each
    /// socket emitting at most one segment.
    pub fn egress(&mut self, iface: &mut Interface, nic: &mut dyn Nic, now: Nanos) {
        self.stats.egress_runs += 1;
        let (txq, stats) = (&mut self.txq, &mut self.stats);
        self.sockets.egress_due(iface, instant(now), |iface, set| {
            let mut dev = OneFrame { rx: None, txq };
            iface.poll_egress(instant(now), &mut dev, set);
            stats.tx_frames += txq.flush(nic);
        });
        self.stats.txq_drops = self.txq.drops;
    }

    /// Send queued frames out of `nic`.
    pub fn flush(&mut self, nic: &mut dyn Nic) {
        self.stats.tx_frames += self.txq.flush(nic);
    }

    /// Count the frame by class; return the watched UDP socket it targets.
    fn classify(&mut self, frame: &[u8]) -> Option<SockRef> {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.other += 1;
            return None;
        };
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                self.stats.arp += 1;
                return None;
            }
            EthernetProtocol::Ipv4 => {}
            _ => {
                self.stats.other += 1;
                return None;
            }
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            self.stats.other += 1;
            return None;
        };
        match ip.next_header() {
            IpProtocol::Tcp => self.stats.tcp += 1,
            IpProtocol::Icmp => self.stats.icmp += 1,
            IpProtocol::Udp => {
                self.stats.udp += 1;
                let udp = UdpPacket::new_checked(ip.payload()).ok()?;
                let port = udp.dst_port();
                return self
                    .udp_ports
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map(|(_, h)| *h);
            }
            _ => self.stats.other += 1,
        }
        None
    }
}

fn udp_payload_len(frame: &[u8]) -> Option<usize> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    Some(udp.payload().len())
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
