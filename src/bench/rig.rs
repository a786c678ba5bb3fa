//! A test rig of the reactor: one smoltcp interface, its netisr, and `n`
//! UDP sockets registered with a reactor, fed datagrams in memory.

use std::net::SocketAddrV4;

use smoltcp::iface::{Config as IfConfig, Interface};
use smoltcp::socket::udp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::kernel::netisr::{self, Netisr};
use crate::kernel::reactor::{Interest, Reactor, SockKind, Token, Trigger};
use crate::kernel::sockets::{SockRef, Sockets};
use crate::kernel::time::Nanos;
use crate::lab::udp_frame;

/// The rig's MAC and address (the stack's side).
const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];
/// The peer's MAC and address.
const PEER: [u8; 6] = [2, 0, 198, 18, 0, 1];
/// Socket `i` listens on `BASE_PORT + i`.
pub const BASE_PORT: u16 = 10_000;
/// Largest rig (ports must stay below 65536).
pub const MAX_SOCKETS: usize = 50_000;
/// Datagrams a socket holds.
const RX_SLOTS: usize = 8;

/// `n` registered UDP sockets; socket `i` has token `i`.
pub struct Rig {
    /// The netisr and its sockets.
    pub netisr: Netisr,
    /// The reactor under test.
    pub reactor: Reactor,
    handles: Vec<SockRef>,
    buf: Vec<u8>,
}

impl Rig {
    /// A rig of `n` (at most [`MAX_SOCKETS`]) sockets, registered with
    /// `trigger` for readable.
    pub fn new(n: usize, trigger: Trigger) -> Rig {
        assert!(n <= MAX_SOCKETS, "at most {MAX_SOCKETS} sockets");
        let ic = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(MAC)));
        let now = netisr::instant(Nanos::from_secs(1));
        let mut iface = Interface::new(ic, &mut netisr::capabilities_device(), now);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(
                Ipv4Address::new(198, 18, 0, 2),
                24,
            )));
        });
        let mut netisr = Netisr::new();
        netisr.attach(iface);
        let mut reactor = Reactor::new();
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let rx = udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; RX_SLOTS],
                vec![0; RX_SLOTS * 64],
            );
            let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0; 8]);
            let mut s = udp::Socket::new(rx, tx);
            s.bind(port(i)).expect("a fresh socket binds");
            let shard = netisr.sockets.udp_shard(port(i));
            let h = netisr.sockets.add(0, shard, s);
            reactor
                .register(
                    &mut netisr.sockets,
                    h,
                    SockKind::Udp,
                    Token(i),
                    Interest::READABLE,
                    trigger,
                )
                .expect("fresh tokens");
            handles.push(h);
        }
        Rig {
            netisr,
            reactor,
            handles,
            buf: vec![0; 64],
        }
    }

    /// The socket of `i`.
    pub fn handle(&self, i: usize) -> SockRef {
        self.handles[i]
    }

    /// Sockets in the rig.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the rig has no socket.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The frame of one datagram to socket `i`.
    pub fn frame(i: usize) -> Vec<u8> {
        let src: SocketAddrV4 = "198.18.0.1:40000".parse().expect("address");
        let dst = SocketAddrV4::new([198, 18, 0, 2].into(), port(i));
        udp_frame((PEER, src), (MAC, dst), &[0x5a; 16])
    }

    /// Feed `frame` to the netisr, as the NIC would.
    pub fn ingress(&mut self, frame: &[u8]) {
        let now = Nanos::from_secs(1);
        self.netisr.ingress(0, now, frame);
    }

    /// One datagram to socket `i`, through the netisr.
    pub fn inject(&mut self, i: usize) {
        let f = Rig::frame(i);
        self.ingress(&f);
    }

    /// Read every datagram socket `i` holds; returns how many.
    pub fn drain(&mut self, i: usize) -> usize {
        let s = self.netisr.sockets.get_mut::<udp::Socket>(self.handles[i]);
        let mut n = 0;
        while s.recv_slice(&mut self.buf).is_ok() {
            n += 1;
        }
        n
    }

    /// The sockets (for the reactor's calls).
    pub fn sockets(&mut self) -> &mut Sockets {
        &mut self.netisr.sockets
    }
}

fn port(i: usize) -> u16 {
    BASE_PORT + u16::try_from(i).expect("a rig port")
}
