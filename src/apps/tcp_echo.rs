//! `tcp-echo`: the echo service on TCP port 7 (RFC 862), several
//! connections at once.
//!
//! smoltcp has no listen backlog: one socket per connection. The app keeps
//! a fixed pool of `LISTENERS` sockets on the port; each serves one
//! connection and listens again once closed.

use pollsim_sysctl::Mib;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::{App, Apps, Step, UserCx};
use crate::kernel::netisr::Netisr;
use crate::kernel::reactor::{Interest, Reactor, SockKind, Token};
use crate::sat;

/// The port.
pub const PORT: u16 = 7;
/// Concurrent connections served.
pub const LISTENERS: usize = 16;
/// Socket buffer sizes.
const BUF: usize = 16 * 1024;
/// Bytes echoed per step.
const CHUNK: usize = 4096;

/// The echo service.
#[derive(Debug)]
pub struct TcpEcho {
    /// Connections accepted
    pub connections: u64,
    /// Bytes echoed
    pub bytes: u64,
    socks: Vec<(SocketHandle, bool)>,
    first: usize,
    buf: Vec<u8>,
}

impl TcpEcho {
    /// A service with no sockets yet.
    pub fn new() -> TcpEcho {
        TcpEcho {
            connections: 0,
            bytes: 0,
            socks: Vec::new(),
            first: 0,
            buf: vec![0; CHUNK],
        }
    }
}

impl Default for TcpEcho {
    fn default() -> Self {
        TcpEcho::new()
    }
}

/// A fresh listening TCP socket with `BUF`-byte buffers and a timeout, so a
/// silent peer cannot hold a pool slot for ever.
pub(super) fn listener(port: u16) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; BUF]),
        tcp::SocketBuffer::new(vec![0; BUF]),
    );
    s.set_timeout(Some(smoltcp::time::Duration::from_secs(30)));
    s.listen(port).expect("a fresh socket can listen");
    s
}

/// Put a finished pool socket back to listening. A socket in TIME-WAIT
/// (we closed first and the peer has closed too) is aborted at once: its
/// peer is gone, and 10 s of TIME-WAIT per connection would drain a fixed
/// pool. Returns true if the socket listens again.
pub(super) fn relisten(s: &mut tcp::Socket<'static>, port: u16) -> bool {
    if s.state() == tcp::State::TimeWait {
        s.abort();
    }
    s.state() == tcp::State::Closed && s.listen(port).is_ok()
}

impl App for TcpEcho {
    fn name(&self) -> &'static str {
        "tcp-echo"
    }

    fn start(&mut self, netisr: &mut Netisr, reactor: &mut Reactor, first_token: usize) -> usize {
        self.first = first_token;
        for i in 0..LISTENERS {
            let h = netisr.sockets.add(listener(PORT));
            self.socks.push((h, false));
            let t = Token(first_token + i);
            reactor.register(&mut netisr.sockets, h, SockKind::Tcp, t, Interest::READABLE);
        }
        LISTENERS
    }

    fn step(&mut self, cx: &mut UserCx<'_>, token: Token) -> Step {
        let Some((h, counted)) = self.socks.get_mut(token.0 - self.first) else {
            return Step::DONE;
        };
        let s = cx.sockets.get_mut::<tcp::Socket>(*h);
        if s.is_active() && !*counted && s.state() != tcp::State::SynReceived {
            *counted = true;
            self.connections += 1;
        }
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
        if relisten(s, PORT) {
            cx.wrote = true;
            *counted = false;
        }
        let interest = if s.can_recv() {
            Interest::BOTH // blocked on a full send buffer
        } else {
            Interest::READABLE
        };
        cx.reactor.reregister(cx.sockets, token, interest);
        Step::DONE
    }
}

pub(super) fn register_sysctl<C: 'static>(mib: &mut Mib<C>, get: fn(&C) -> &Apps) {
    mib.add_ro(
        "user.tcp_echo.connections",
        "Connections accepted",
        move |c| get(c).tcp_echo.as_ref().map_or(0, |a| sat(a.connections)),
    );
    mib.add_ro("user.tcp_echo.bytes", "Bytes echoed", move |c| {
        get(c).tcp_echo.as_ref().map_or(0, |a| sat(a.bytes))
    });
}
