//! `udp-sink`: the discard service on UDP port 9, with a cost per datagram.
//!
//! The model of a user process that must do work for every packet it
//! receives (Mogul & Ramakrishnan's screend): each datagram costs
//! `user.udp_sink.work_ns` of CPU. Under livelock it is the one starved.
//! It has one socket per NIC (each bound to port 9 among that NIC's
//! sockets), each with its own token and `rcvbuf`.
//!
//! How it is told of datagrams is `user.udp_sink.trigger` (level, edge or
//! oneshot, the reactor's [`Trigger`]); what it does with an event is
//! `user.udp_sink.read_packets`: it reads at most that many datagrams
//! (0: until would-block), then goes back to the reactor. The default, 5,
//! is the Erlang VM's: `inet:setopts/2`'s `read_packets` for UDP sockets
//! reads at most that many datagrams per notification of available data,
//! because reading more lets a UDP flood make the system unresponsive.
//! It is also what makes the reactor's cost visible: an app that drains
//! (0) pays one poll per batch, however large, so a select-like scan of
//! thousands of idle descriptors is amortised to nothing, while one that
//! reads 5 (or 1, the classic select loop's one read per ready
//! descriptor) pays a poll every few datagrams.
//!
//! A oneshot app that stops with datagrams left re-arms, and a level one
//! is told again while data remains, so both still deliver everything; an
//! edge-triggered app must drain (0): with a budget it stalls with
//! datagrams left in its socket buffer until a new one arrives.

use pollsim_sysctl::Mib;
use smoltcp::socket::udp;

use super::{App, Apps, Step, UserCx};
use crate::kernel::netisr::Netisr;
use crate::kernel::reactor::{Interest, Reactor, SockKind, Token, Trigger};
use crate::kernel::time::Nanos;
use crate::sat;

/// The port (RFC 863, discard).
pub const PORT: u16 = 9;
/// Default CPU time per datagram.
pub const WORK_NS_DEFAULT: u64 = 2_000;
/// Largest accepted `work_ns` (10 ms: beyond that one datagram spans ticks).
pub const WORK_NS_MAX: u64 = 10_000_000;
/// Default datagrams the socket buffer holds: about what FreeBSD's 42 KB
/// `net.inet.udp.recvspace` holds of small datagrams, counting mbufs.
pub const RCVBUF_DEFAULT: u64 = 256;
/// Largest accepted `user.udp_sink.rcvbuf`.
pub const RCVBUF_MAX: u64 = 16_384;
/// Payload bytes reserved per datagram of `rcvbuf` (a full-size one fits).
const RCVBUF_BYTES_PER_DATAGRAM: usize = 1500;
/// Default `user.udp_sink.read_packets`: the Erlang VM's `read_packets`.
pub const READ_PACKETS_DEFAULT: u64 = 5;
/// Largest `user.udp_sink.read_packets` (0 means until would-block).
pub const READ_PACKETS_MAX: u64 = 65_536;

/// The discard service.
#[derive(Debug)]
pub struct UdpSink {
    /// CPU time spent per datagram.
    pub work_ns: u64,
    /// Socket buffer size in datagrams (set before start).
    pub rcvbuf: u64,
    /// Datagrams received by the app
    pub datagrams: u64,
    /// Payload bytes received by the app
    pub bytes: u64,
    /// How the reactor reports its sockets (set before start).
    pub trigger: Trigger,
    /// Datagrams read per event at most (0: until would-block).
    pub read_packets: u64,
    /// Datagrams received, per NIC (attach order).
    pub datagrams_by_nic: Vec<u64>,
    handles: Vec<crate::kernel::sockets::SockRef>,
    /// Datagrams read in the event being handled, per NIC.
    in_event: Vec<u64>,
    first_token: usize,
    buf: Vec<u8>,
}

impl UdpSink {
    /// With the default `work_ns`.
    pub fn new() -> UdpSink {
        UdpSink {
            work_ns: WORK_NS_DEFAULT,
            rcvbuf: RCVBUF_DEFAULT,
            datagrams: 0,
            bytes: 0,
            trigger: Trigger::Oneshot,
            read_packets: READ_PACKETS_DEFAULT,
            datagrams_by_nic: Vec::new(),
            handles: Vec::new(),
            in_event: Vec::new(),
            first_token: 0,
            buf: vec![0; 65_536],
        }
    }
}

impl Default for UdpSink {
    fn default() -> Self {
        UdpSink::new()
    }
}

impl App for UdpSink {
    fn name(&self) -> &'static str {
        "udp-sink"
    }

    fn start(&mut self, netisr: &mut Netisr, reactor: &mut Reactor, first_token: usize) {
        self.first_token = first_token;
        let n = usize::try_from(self.rcvbuf).unwrap_or(usize::MAX);
        for nic in 0..netisr.sockets.nics() {
            let rx = udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; n],
                vec![0; n * RCVBUF_BYTES_PER_DATAGRAM],
            );
            let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0; 64]);
            let mut sock = udp::Socket::new(rx, tx);
            sock.bind(PORT).expect("binding a fresh socket cannot fail");
            let shard = netisr.sockets.udp_shard(PORT);
            let h = netisr.sockets.add(nic, shard, sock);
            netisr.watch_udp_port(PORT, h);
            self.handles.push(h);
            self.datagrams_by_nic.push(0);
            self.in_event.push(0);
            reactor
                .register(
                    &mut netisr.sockets,
                    h,
                    SockKind::Udp,
                    Token(first_token + nic),
                    Interest::READABLE,
                    self.trigger,
                )
                .expect("the app's tokens are unused");
        }
    }

    fn step(&mut self, cx: &mut UserCx<'_>, token: Token) -> Step {
        let nic = token.0.wrapping_sub(self.first_token);
        let Some(&h) = self.handles.get(nic) else {
            return Step::DONE;
        };
        let sock = cx.sockets.get_mut::<udp::Socket>(h);
        match sock.recv_slice(&mut self.buf) {
            Ok((n, _)) => {
                self.datagrams += 1;
                self.datagrams_by_nic[nic] += 1;
                self.bytes += n as u64;
                self.in_event[nic] += 1;
                let more = self.read_packets == 0 || self.in_event[nic] < self.read_packets;
                if !more {
                    // The event's budget is read: back to the reactor,
                    // asking (oneshot) to be told of what is left.
                    self.in_event[nic] = 0;
                    if self.trigger == Trigger::Oneshot {
                        cx.reactor
                            .rearm(cx.sockets, token)
                            .expect("the sink's token is registered");
                    }
                }
                Step {
                    work: Nanos(self.work_ns),
                    more,
                }
            }
            Err(_) => {
                // Would block: a oneshot registration is re-armed; level
                // and edge ones stay armed.
                self.in_event[nic] = 0;
                if self.trigger == Trigger::Oneshot {
                    cx.reactor
                        .rearm(cx.sockets, token)
                        .expect("the sink's token is registered");
                }
                Step::DONE
            }
        }
    }
}

pub(super) fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &Apps,
    get_mut: fn(&mut C) -> &mut Apps,
) {
    let max = i64::try_from(WORK_NS_MAX).unwrap_or(i64::MAX);
    mib.add_rw(
        "user.udp_sink.work_ns",
        "CPU time the sink spends per datagram, in ns",
        (0, max),
        move |_| (0, max),
        move |c| get(c).udp_sink.as_ref().map_or(0, |a| sat(a.work_ns)),
        move |c, v| {
            if let Some(a) = get_mut(c).udp_sink.as_mut() {
                a.work_ns = v.unsigned_abs();
            }
            Ok(())
        },
    );
    let rmax = sat(RCVBUF_MAX);
    mib.add_rw(
        "user.udp_sink.rcvbuf",
        "Socket buffer of the sink, in datagrams (a tunable: set it with run --sysctl)",
        (1, rmax),
        move |_| (1, rmax),
        move |c| get(c).udp_sink.as_ref().map_or(0, |a| sat(a.rcvbuf)),
        move |c, v| match get_mut(c).udp_sink.as_mut() {
            Some(a) if a.handles.is_empty() => {
                a.rcvbuf = v.unsigned_abs();
                Ok(())
            }
            _ => Err(super::STARTED.into()),
        },
    );
    register_trigger(mib, get, get_mut);
    mib.add_ro(
        "user.udp_sink.datagrams",
        "Datagrams received by the app",
        move |c| get(c).udp_sink.as_ref().map_or(0, |a| sat(a.datagrams)),
    );
    mib.add_ro(
        "user.udp_sink.bytes",
        "Payload bytes received by the app",
        move |c| get(c).udp_sink.as_ref().map_or(0, |a| sat(a.bytes)),
    );
}

/// `user.udp_sink.trigger` and `user.udp_sink.read_packets`.
fn register_trigger<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &Apps,
    get_mut: fn(&mut C) -> &mut Apps,
) {
    super::register_trigger(
        mib,
        "udp_sink",
        "the sink's sockets",
        move |c| get(c).udp_sink.as_ref().map(|a| a.trigger),
        move |c, t| match get_mut(c).udp_sink.as_mut() {
            Some(a) if a.handles.is_empty() => {
                a.trigger = t;
                Ok(())
            }
            _ => Err(super::STARTED.into()),
        },
    );
    let max = sat(READ_PACKETS_MAX);
    mib.add_rw(
        "user.udp_sink.read_packets",
        "Datagrams the sink reads per event at most, then back to the reactor (0: until would-block)",
        (0, max),
        move |_| (0, max),
        move |c| get(c).udp_sink.as_ref().map_or(0, |a| sat(a.read_packets)),
        move |c, v| {
            if let Some(a) = get_mut(c).udp_sink.as_mut() {
                a.read_packets = v.unsigned_abs();
            }
            Ok(())
        },
    );
}
