//! `tcp-echo`: the echo service on TCP port 7 (RFC 862), many connections
//! at once.
//!
//! smoltcp has no listen backlog: one socket per connection. The app's
//! [`Pool`] keeps a backlog of listening sockets on the port, replenished
//! as they connect, and serves up to `user.tcp_echo.max_conns` connections.
//!
//! How it is told of data is `user.tcp_echo.trigger` (level, edge or
//! oneshot, for every socket of its pool); what it does with an event is
//! `user.tcp_echo.drain`: 1 (default) reads and echoes until would-block,
//! 0 reads one chunk of at most `user.tcp_echo.chunk` bytes per event (the
//! naive app). A naive oneshot app re-arms after its read and a level one
//! is told again while bytes remain, so both echo everything; a naive
//! edge-triggered app stalls with bytes left in its receive buffer until
//! the peer sends more (the last bytes of a request are never echoed).

use pollsim_sysctl::Mib;
use smoltcp::socket::tcp;

use super::pool::{Phase, Pool};
use super::{App, Apps, Step, UserCx};
use crate::kernel::netisr::Netisr;
use crate::kernel::reactor::{Interest, Reactor, Token};
use crate::sat;

/// The port.
pub const PORT: u16 = 7;
/// Socket buffer sizes: small, so that 16384 connections fit in memory.
const BUF: usize = 4096;
/// Default (and largest) `user.tcp_echo.chunk`: bytes read per read call,
/// the socket buffer's size.
pub const CHUNK_MAX: usize = BUF;
/// Smallest accepted `user.tcp_echo.chunk`.
pub const CHUNK_MIN: usize = 1;

/// The echo service.
#[derive(Debug)]
pub struct TcpEcho {
    /// Bytes echoed
    pub bytes: u64,
    /// The port's sockets.
    pub pool: Pool<()>,
    /// Read until would-block on an event (true), or one chunk (false).
    pub drain: bool,
    /// Bytes read (and echoed) per read call, at most.
    pub chunk: usize,
    buf: Vec<u8>,
}

impl TcpEcho {
    /// A service with no sockets yet.
    pub fn new() -> TcpEcho {
        TcpEcho {
            bytes: 0,
            pool: Pool::new(PORT, BUF),
            drain: true,
            chunk: CHUNK_MAX,
            buf: vec![0; CHUNK_MAX],
        }
    }
}

impl Default for TcpEcho {
    fn default() -> Self {
        TcpEcho::new()
    }
}

impl App for TcpEcho {
    fn name(&self) -> &'static str {
        "tcp-echo"
    }

    fn start(&mut self, netisr: &mut Netisr, reactor: &mut Reactor, first_token: usize) {
        self.pool.start(&mut netisr.sockets, reactor, first_token);
    }

    fn step(&mut self, cx: &mut UserCx<'_>, token: Token) -> Step {
        let phase = self.pool.on_event(cx.sockets, cx.reactor, token);
        if matches!(
            phase,
            Phase::HalfOpen | Phase::New | Phase::Refused | Phase::Closing | Phase::Done
        ) {
            cx.wrote = true; // a SYN-ACK, a RST or a new listener's state
        }
        if matches!(phase, Phase::HalfOpen | Phase::Closing) {
            // Nothing to serve before the handshake completes, nor in
            // TIME-WAIT (the pool reclaims it after the last ACK is sent).
            self.pool
                .rearm(cx.sockets, cx.reactor, token, Interest::READABLE);
            return Step::DONE;
        }
        let Some((h, ())) = self.pool.get(token) else {
            return Step::DONE;
        };
        let s = cx.sockets.get_mut::<tcp::Socket>(h);
        let room = s.send_capacity() - s.send_queue();
        if s.can_recv() && room > 0 {
            let want = room.min(self.chunk);
            if let Ok(n) = s.recv_slice(&mut self.buf[..want]) {
                let sent = s.send_slice(&self.buf[..n]).unwrap_or(0);
                self.bytes += sent as u64;
                cx.wrote = true;
                if self.drain {
                    return Step {
                        work: crate::kernel::time::Nanos::ZERO,
                        more: true,
                    };
                }
                // Naive: one read per event, whatever is left.
            }
        }
        if !s.may_recv() && s.state() == tcp::State::CloseWait {
            s.close();
            cx.wrote = true;
        }
        let interest = if s.can_recv() && s.send_capacity() == s.send_queue() {
            Interest::BOTH // blocked on a full send buffer
        } else {
            Interest::READABLE
        };
        if phase == Phase::Open {
            self.pool.keep(cx.sockets, cx.reactor, token, interest);
        } else {
            // A new connection, or a slot that listens again.
            self.pool.rearm(cx.sockets, cx.reactor, token, interest);
        }
        Step::DONE
    }
}

pub(super) fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &Apps,
    get_mut: fn(&mut C) -> &mut Apps,
) {
    super::pool::register_sysctl(
        mib,
        "tcp_echo",
        move |c| get(c).tcp_echo.as_ref().map(|a| &a.pool),
        move |c| get_mut(c).tcp_echo.as_mut().map(|a| &mut a.pool),
    );
    mib.add_rw(
        "user.tcp_echo.drain",
        "On an event, 1 read and echo until would-block, 0 one chunk (naive)",
        (0, 1),
        |_| (0, 1),
        move |c| get(c).tcp_echo.as_ref().map_or(0, |a| i64::from(a.drain)),
        move |c, v| {
            if let Some(a) = get_mut(c).tcp_echo.as_mut() {
                a.drain = v == 1;
            }
            Ok(())
        },
    );
    let (lo, hi) = (sat(CHUNK_MIN as u64), sat(CHUNK_MAX as u64));
    mib.add_rw(
        "user.tcp_echo.chunk",
        "Bytes the echo reads (and writes back) per read call, at most",
        (lo, hi),
        move |_| (lo, hi),
        move |c| get(c).tcp_echo.as_ref().map_or(0, |a| sat(a.chunk as u64)),
        move |c, v| {
            if let Some(a) = get_mut(c).tcp_echo.as_mut() {
                a.chunk = usize::try_from(v).unwrap_or(CHUNK_MAX);
            }
            Ok(())
        },
    );
    mib.add_ro(
        "user.tcp_echo.connections",
        "Connections accepted",
        move |c| {
            get(c)
                .tcp_echo
                .as_ref()
                .map_or(0, |a| sat(a.pool.stats.accepted))
        },
    );
    mib.add_ro("user.tcp_echo.bytes", "Bytes echoed", move |c| {
        get(c).tcp_echo.as_ref().map_or(0, |a| sat(a.bytes))
    });
}
