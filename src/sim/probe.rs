//! The HTTP probe of the simulation: a client on the wire, with its own
//! smoltcp stack, that opens a connection to the http app every 100 ms of
//! virtual time, sends `GET /`, reads the page to the server's FIN and
//! records the latency — what `compare`'s real probe does with a kernel
//! `TcpStream`, here as real TCP frames through the simulated NIC's ring
//! (where they may be missed), pollsim's smoltcp and the http app.
//!
//! Each probe starts at a seeded random offset within [`PHASE_SPREAD`] of
//! its 100 ms slot. Without it every probe would start at the same phase
//! of the clock tick (100 ms is a whole number of ticks at every HZ), so
//! at a low HZ polling's wait for the next tick would be the same for all
//! of them instead of spread over the tick, as the real probe's are.
//!
//! The client is ideal apart from its protocol: it spends no CPU and sees
//! pollsim's transmitted frames at the next unit boundary. Unanswered
//! attempts are aborted (RST) after [`TIMEOUT`], as the real probe gives up
//! after 1 s.

use std::collections::VecDeque;

use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::kernel::netisr::{MAX_FRAME, instant};
use crate::kernel::time::Nanos;

/// A probe's start within its slot: uniform in `[0, PHASE_SPREAD)`.
fn phase(rng: &mut Pcg64Mcg) -> Nanos {
    Nanos(rng.random_range(0..PHASE_SPREAD.0))
}

/// Interval between probes.
pub const EVERY: Nanos = Nanos::from_millis(100);
/// A probe starts at a uniform random offset below this after its slot:
/// the tick at the lowest `kern.hz` (100), so the start is uniform over
/// the tick's phase at every HZ.
pub const PHASE_SPREAD: Nanos = Nanos::from_millis(10);
/// A probe unanswered after this long is a timeout.
pub const TIMEOUT: Nanos = Nanos::from_secs(1);
/// The request, as the real probe sends it.
const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: 198.18.0.2\r\n\r\n";
/// First local port; probes use the next ones in turn.
const FIRST_PORT: u16 = 40_000;
/// Local ports used in turn.
const PORTS: u16 = 20_000;

/// The frames between a client stack of its own and the wire: a smoltcp
/// device (also the clients' of `kernel::threads_tests`).
#[derive(Debug, Default)]
pub(crate) struct Wire {
    /// Frames for the client, in arrival order.
    pub(crate) rx: VecDeque<Vec<u8>>,
    /// Frames the client sent.
    pub(crate) tx: Vec<Vec<u8>>,
}

pub(crate) struct RxTok(Vec<u8>);
pub(crate) struct TxTok<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl phy::Device for Wire {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxTok, TxTok<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxTok(frame), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}

/// One probe under way.
#[derive(Debug)]
struct Attempt {
    handle: SocketHandle,
    started: Nanos,
    sent_request: bool,
    reply: Vec<u8>,
}

/// What the probes saw since the last [`ProbeClient::take_results`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProbeResults {
    /// Latencies of the answered probes, ms, in order.
    pub latencies_ms: Vec<f64>,
    /// Probes not answered within [`TIMEOUT`].
    pub timeouts: u32,
}

/// The simulated HTTP client.
pub struct ProbeClient {
    iface: Interface,
    sockets: SocketSet<'static>,
    wire: Wire,
    server: (Ipv4Address, u16),
    /// The 100 ms slot of the next probe, and its start within it.
    slot: Nanos,
    next_start: Nanos,
    rng: Pcg64Mcg,
    current: Option<Attempt>,
    closing: Vec<SocketHandle>,
    port: u16,
    results: ProbeResults,
}

impl ProbeClient {
    /// A client at `(mac, addr)` probing `server`, the first probe in the
    /// slot at `start`.
    pub fn new(
        mac: [u8; 6],
        addr: Ipv4Cidr,
        server: (Ipv4Address, u16),
        seed: u64,
        start: Nanos,
    ) -> ProbeClient {
        let mut wire = Wire::default();
        let mut cfg = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut wire, instant(start));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(addr));
        });
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let next_start = start + phase(&mut rng);
        ProbeClient {
            iface,
            sockets: SocketSet::new(Vec::new()),
            wire,
            server,
            slot: start,
            next_start,
            rng,
            current: None,
            closing: Vec::new(),
            port: 0,
            results: ProbeResults::default(),
        }
    }

    /// Take the results so far and start counting afresh.
    pub fn take_results(&mut self) -> ProbeResults {
        std::mem::take(&mut self.results)
    }

    /// Probes started since the last [`ProbeClient::take_results`] that
    /// are still waiting.
    pub fn in_flight(&self) -> bool {
        self.current.is_some()
    }

    /// React to everything up to `now`: `sent` are the frames pollsim
    /// transmitted since the last call; returns the frames the client puts
    /// on the wire. Bound: the frames given, one probe's work.
    pub fn advance(&mut self, now: Nanos, sent: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        self.wire.rx.extend(sent);
        if self.current.is_none() && now >= self.next_start {
            self.start_attempt(now);
        }
        let t = instant(now);
        self.iface.poll(t, &mut self.wire, &mut self.sockets);
        self.serve_attempt(now);
        self.iface.poll(t, &mut self.wire, &mut self.sockets);
        self.reap();
        std::mem::take(&mut self.wire.tx)
    }

    /// When the client next needs to run.
    pub fn next_event(&mut self, now: Nanos) -> Nanos {
        let mut t = match &self.current {
            Some(a) => a.started + TIMEOUT,
            None => self.next_start,
        };
        if let Some(at) = self.iface.poll_at(instant(now), &self.sockets) {
            let at = Nanos(u64::try_from(at.total_micros()).unwrap_or(0) * 1_000);
            t = t.min(at);
        }
        t.max(Nanos(now.0 + 1))
    }

    /// Move to the next slot and draw the start within it.
    fn next_slot(&mut self) {
        self.slot += EVERY;
        self.next_start = self.slot + phase(&mut self.rng);
    }

    fn start_attempt(&mut self, now: Nanos) {
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 4096]),
            tcp::SocketBuffer::new(vec![0; 1024]),
        );
        let port = FIRST_PORT + self.port;
        self.port = (self.port + 1) % PORTS;
        let remote = (IpAddress::Ipv4(self.server.0), self.server.1);
        if sock.connect(self.iface.context(), remote, port).is_err() {
            self.results.timeouts += 1;
            self.next_slot();
            return;
        }
        let handle = self.sockets.add(sock);
        self.current = Some(Attempt {
            handle,
            started: now,
            sent_request: false,
            reply: Vec::new(),
        });
        self.next_slot();
    }

    /// Send the request once connected, read the reply, finish on the
    /// server's FIN or give up at the timeout.
    fn serve_attempt(&mut self, now: Nanos) {
        let Some(a) = self.current.as_mut() else {
            return;
        };
        let s = self.sockets.get_mut::<tcp::Socket>(a.handle);
        if !a.sent_request && s.may_send() {
            a.sent_request = s.send_slice(REQUEST).is_ok_and(|n| n == REQUEST.len());
        }
        while s.can_recv() {
            let _ = s.recv(|d| {
                a.reply.extend_from_slice(d);
                (d.len(), ())
            });
        }
        let done = a.sent_request && !s.may_recv() && s.state() != tcp::State::Closed;
        if done {
            if a.reply.starts_with(b"HTTP/1.1 200") {
                let ms = now.since(a.started).0 as f64 / 1e6;
                self.results.latencies_ms.push(ms);
            } else {
                self.results.timeouts += 1;
            }
            s.close();
        } else if now.since(a.started) >= TIMEOUT || s.state() == tcp::State::Closed {
            self.results.timeouts += 1;
            s.abort();
        } else {
            return;
        }
        self.closing.push(a.handle);
        self.current = None;
    }

    /// Forget connections that have closed (TIME-WAIT is cut short).
    fn reap(&mut self) {
        let sockets = &mut self.sockets;
        self.closing.retain(|&h| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.state() == tcp::State::TimeWait {
                s.abort();
            }
            let closed = s.state() == tcp::State::Closed;
            if closed {
                sockets.remove(h);
            }
            !closed
        });
    }
}
