//! `tcp-echo`: the echo service on TCP port 7 (RFC 862), many connections
//! at once.
//!
//! smoltcp has no listen backlog: one socket per connection. The app's
//! [`Pool`] keeps a backlog of listening sockets on the port, replenished
//! as they connect, and serves up to `user.tcp_echo.max_conns` connections.

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
/// Bytes echoed per step.
const CHUNK: usize = 4096;

/// The echo service.
#[derive(Debug)]
pub struct TcpEcho {
    /// Bytes echoed
    pub bytes: u64,
    /// The port's sockets.
    pub pool: Pool<()>,
    buf: Vec<u8>,
}

impl TcpEcho {
    /// A service with no sockets yet.
    pub fn new() -> TcpEcho {
        TcpEcho {
            bytes: 0,
            pool: Pool::new(PORT, BUF),
            buf: vec![0; CHUNK],
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
            let want = room.min(CHUNK);
            if let Ok(n) = s.recv_slice(&mut self.buf[..want]) {
                let sent = s.send_slice(&self.buf[..n]).unwrap_or(0);
                self.bytes += sent as u64;
                cx.wrote = true;
                return Step {
                    work: crate::kernel::time::Nanos::ZERO,
                    more: true,
                };
            }
        }
        if !s.may_recv() && s.state() == tcp::State::CloseWait {
            s.close();
            cx.wrote = true;
        }
        let interest = if s.can_recv() {
            Interest::BOTH // blocked on a full send buffer
        } else {
            Interest::READABLE
        };
        self.pool.rearm(cx.sockets, cx.reactor, token, interest);
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
