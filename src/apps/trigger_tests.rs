//! tcp-echo under each trigger, end to end through two smoltcp stacks in
//! memory: the server (a [`Netisr`] with the app's pool, its [`Reactor`])
//! and a client, joined by two `VirtNic`s whose transmitted frames are
//! handed to the other side. Each round moves the frames both ways and
//! lets the app handle every event of one reactor poll, as the kernel's
//! user step does; no clock is read.

use pollsim_drivers::VirtNic;
use smoltcp::iface::{Config as IfConfig, Interface};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use super::tcp_echo::PORT;
use super::{App, TcpEcho, UserCx};
use crate::kernel::netisr::{self, Netisr};
use crate::kernel::reactor::{Backend, Event, Reactor, Token, Trigger};
use crate::kernel::sockets::SockRef;
use crate::kernel::time::Nanos;

const SERVER: ([u8; 6], [u8; 4]) = ([2, 0, 198, 18, 0, 2], [198, 18, 0, 2]);
const CLIENT: ([u8; 6], [u8; 4]) = ([2, 0, 198, 18, 0, 1], [198, 18, 0, 1]);
const CLIENT_PORT: u16 = 40_000;
/// Bytes the client sends in one write (three segments, arriving together).
const SENT: usize = 3_000;
/// `user.tcp_echo.chunk` of the naive app: a third of a write.
const CHUNK: usize = 1_000;
/// Steps of one token in a row, at most (a draining app's loop).
const STEPS_MAX: usize = 64;

struct Side {
    netisr: Netisr,
    nic: VirtNic,
}

impl Side {
    fn new((mac, ip): ([u8; 6], [u8; 4])) -> Side {
        let ic = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(ic, &mut netisr::capabilities_device(), instant(0));
        iface.update_ip_addrs(|a| {
            let [a0, a1, a2, a3] = ip;
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(
                Ipv4Address::new(a0, a1, a2, a3),
                24,
            )));
        });
        let mut netisr = Netisr::with_shards(1);
        netisr.attach(iface);
        Side {
            netisr,
            nic: VirtNic::new("trig", mac, 1 << 17).expect("an in-memory NIC"),
        }
    }

    fn egress(&mut self, t: u64) -> Vec<Vec<u8>> {
        self.netisr.egress(0, &mut self.nic, Nanos(t));
        self.nic.take_sent()
    }

    fn ingress(&mut self, frames: &[Vec<u8>], t: u64) {
        for f in frames {
            self.netisr.ingress(0, Nanos(t), f);
        }
        self.netisr.flush(0, &mut self.nic);
    }
}

fn instant(t: u64) -> smoltcp::time::Instant {
    netisr::instant(Nanos(t))
}

/// The server with tcp-echo (`trigger`, `drain`, `chunk`), a client
/// connection to it, and the clock (ns).
struct Rig {
    server: Side,
    reactor: Reactor,
    app: TcpEcho,
    client: Side,
    conn: SockRef,
    t: u64,
    echoed: Vec<u8>,
}

impl Rig {
    fn new(trigger: Trigger, drain: bool, backend: Backend) -> Rig {
        let mut server = Side::new(SERVER);
        let mut reactor = Reactor::new();
        reactor.set_backend(&mut server.netisr.sockets, backend);
        let mut app = TcpEcho::new();
        app.pool.trigger = trigger;
        app.drain = drain;
        app.chunk = CHUNK;
        app.start(&mut server.netisr, &mut reactor, 0);
        let mut client = Side::new(CLIENT);
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 8192]),
            tcp::SocketBuffer::new(vec![0; 8192]),
        );
        s.set_ack_delay(None);
        let conn = client.netisr.sockets.add(0, 0, s);
        client
            .netisr
            .sockets
            .connect_tcp(conn, (Ipv4Address::from(SERVER.1), PORT), CLIENT_PORT)
            .expect("connect");
        let mut rig = Rig {
            server,
            reactor,
            app,
            client,
            conn,
            t: 1_000_000_000,
            echoed: Vec::new(),
        };
        let up = rig.rounds_until(50, |r| r.app.pool.active() == 1 && r.established());
        assert!(up, "{trigger:?}: the connection was accepted");
        // Quiet: the handshake's events are handled.
        rig.rounds(5);
        rig
    }

    fn established(&mut self) -> bool {
        let s = self.client.netisr.sockets.get::<tcp::Socket>(self.conn);
        s.state() == tcp::State::Established
    }

    /// One round: client to server, one poll's events handled, server to
    /// client, echoes read. Returns the events the poll delivered.
    fn round(&mut self) -> usize {
        self.t += 1_000_000;
        let t = self.t;
        // Everything the client has to send arrives before the poll
        // (smoltcp sends one segment per socket per egress pass).
        for _ in 0..STEPS_MAX {
            let to_server = self.client.egress(t);
            if to_server.is_empty() {
                break;
            }
            self.server.ingress(&to_server, t);
        }
        let mut events: Vec<Event> = Vec::new();
        self.reactor
            .poll(&mut self.server.netisr.sockets, &mut events, 64);
        for e in &events {
            for _ in 0..STEPS_MAX {
                let mut cx =
                    UserCx::new(&mut self.server.netisr.sockets, &mut self.reactor, Nanos(t));
                if !self.app.step(&mut cx, e.token).more {
                    break;
                }
            }
        }
        let to_client = self.server.egress(t);
        self.client.ingress(&to_client, t);
        let s = self.client.netisr.sockets.get_mut::<tcp::Socket>(self.conn);
        while s.can_recv() {
            let echoed = &mut self.echoed;
            let _ = s.recv(|d| {
                echoed.extend_from_slice(d);
                (d.len(), ())
            });
        }
        events.len()
    }

    fn rounds(&mut self, n: usize) -> usize {
        (0..n).map(|_| self.round()).sum()
    }

    fn rounds_until(&mut self, n: usize, done: impl Fn(&mut Rig) -> bool) -> bool {
        for _ in 0..n {
            self.round();
            if done(self) {
                return true;
            }
        }
        false
    }

    /// The client writes `bytes` in one call (segments leave together).
    fn send(&mut self, bytes: &[u8]) {
        let s = self.client.netisr.sockets.get_mut::<tcp::Socket>(self.conn);
        assert_eq!(s.send_slice(bytes), Ok(bytes.len()));
    }

    /// Bytes waiting in the server's receive buffers (its pool's slots).
    fn unread(&mut self) -> usize {
        let mut n = 0;
        for i in 0..STEPS_MAX {
            if let Some((h, ())) = self.app.pool.get(Token(i)) {
                n += self
                    .server
                    .netisr
                    .sockets
                    .get::<tcp::Socket>(h)
                    .recv_queue();
            }
        }
        n
    }
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// A naive edge-triggered echo (one chunk per event) stalls with bytes in
/// its receive buffer and no event while the peer is silent; a new arrival
/// is a new edge (as Linux's EPOLLET, which reports each arrival, not only
/// empty to non-empty), and gets one more chunk echoed.
#[test]
fn a_naive_edge_triggered_echo_stalls_with_bytes_left() {
    for backend in [Backend::Ready, Backend::Scan] {
        let mut r = Rig::new(Trigger::Edge, false, backend);
        let data = payload(SENT, 1);
        r.send(&data);
        let events = r.rounds(10);
        let quiet = r.rounds(20);
        assert_eq!(quiet, 0, "{backend:?}: no event while the peer is silent");
        assert!(events >= 1, "{backend:?}: the data made an event");
        let echoed = r.echoed.len();
        assert_eq!(echoed, CHUNK * events, "{backend:?}: one chunk per event");
        assert!(echoed < SENT, "{backend:?}: stalled ({echoed} of {SENT})");
        assert!(r.echoed == data[..echoed], "{backend:?}: in order");
        assert_eq!(r.unread(), SENT - echoed, "{backend:?}: the rest waits");
        assert_eq!(r.app.bytes, echoed as u64);
        // One more byte: one more edge, one more chunk (old bytes first).
        r.send(b"!");
        assert_eq!(r.rounds(10), 1, "{backend:?}: one arrival, one edge");
        assert_eq!(r.echoed.len(), echoed + CHUNK, "{backend:?}: a new edge");
        assert!(r.echoed == data[..echoed + CHUNK], "{backend:?}: in order");
        assert_eq!(r.unread(), SENT - echoed - CHUNK + 1, "{backend:?}");
    }
}

/// Draining (edge), or level or oneshot whether draining or not: every
/// byte is echoed, in order. Under level and edge the registration stays
/// armed, so serving data costs no re-arm; under oneshot each event is
/// followed by one (`EPOLL_CTL_MOD`, charged `hw.sim.reactor_rearm_ns`).
#[test]
fn draining_edge_and_level_and_oneshot_echo_everything() {
    let cases = [
        (Trigger::Edge, true),
        (Trigger::Level, true),
        (Trigger::Level, false),
        (Trigger::Oneshot, true),
        (Trigger::Oneshot, false),
    ];
    for backend in [Backend::Ready, Backend::Scan] {
        for (trigger, drain) in cases {
            let mut r = Rig::new(trigger, drain, backend);
            let what = format!("{backend:?} {trigger:?} drain {drain}");
            let rearms = r.reactor.stats.rearms;
            let mut data = payload(SENT, 2);
            r.send(&data);
            r.rounds(20);
            let second = payload(SENT, 3);
            r.send(&second);
            data.extend_from_slice(&second);
            r.rounds(20);
            assert_eq!(r.echoed.len(), data.len(), "{what}: everything echoed");
            assert!(r.echoed == data, "{what}: in order");
            assert_eq!(r.unread(), 0, "{what}");
            assert_eq!(r.rounds(10), 0, "{what}: quiet when served");
            let rearms = r.reactor.stats.rearms - rearms;
            if trigger == Trigger::Oneshot {
                assert!(rearms >= 2, "{what}: a re-arm per event ({rearms})");
            } else {
                assert_eq!(rearms, 0, "{what}: stays armed, no re-arm");
            }
        }
    }
}
