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
//!
//! # Two models (`user.tcp_echo.model`, set before start)
//!
//! - `reactor` (0, the default): one process serves every connection from
//!   the reactor's events (epoll, `kern.reactor.backend`), many per
//!   wake-up.
//! - `threads` (1): the blocking baseline of the C10k argument, a thread
//!   per connection. The app's process is the acceptor (blocked in
//!   `accept`: the pool's listeners, through the reactor); each connection
//!   it accepts becomes a process of the run queue of its own, which
//!   blocks in `read` on its socket and is woken by that socket (the
//!   socket's wakers, a sleep queue: not the reactor), echoes what it
//!   reads, blocks again, and exits when the connection ends. Threads are
//!   bounded by `max_conns` (a connection beyond is refused before it has
//!   one); each holds a stack of `thread_stack_kb` (counted in
//!   `user.tcp_echo.thread_mem_kb`), and each wake-up is a context switch
//!   (`hw.sim.ctxsw_ns`). Virtual time only: `pollsim run` on the real
//!   clock refuses it, every simulated process being one host thread
//!   there. The kernel side is in `kernel/mod.rs` (the threads, their
//!   sleep queue and their account).

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

/// Default `user.tcp_echo.thread_stack_kb`: FreeBSD libthr's default
/// thread stack on 64-bit (`THR_STACK_DEFAULT`, 2 MiB).
pub const THREAD_STACK_KB_DEFAULT: u64 = 2048;
/// Bounds of `user.tcp_echo.thread_stack_kb` (16 KiB, glibc's
/// `PTHREAD_STACK_MIN`, to 1 GiB).
pub const THREAD_STACK_KB_RANGE: (u64, u64) = (16, 1 << 20);

/// How tcp-echo serves its connections (`user.tcp_echo.model`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Model {
    /// One process, readiness from the reactor.
    #[default]
    Reactor,
    /// A process per connection, blocked in read on its socket.
    Threads,
}

impl Model {
    /// The names the knob takes, by index.
    pub const NAMES: [&'static str; 2] = ["reactor", "threads"];
}

/// What a connection's thread does after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadStep {
    /// Runs on: `work` of CPU, then another step.
    Run(crate::kernel::time::Nanos),
    /// Blocks until its socket is ready for `Interest`.
    Block(Interest),
    /// The connection ended: the thread exits.
    Exit,
}

/// The echo service.
#[derive(Debug)]
pub struct TcpEcho {
    /// `user.tcp_echo.model` (set before start).
    pub model: Model,
    /// `user.tcp_echo.thread_stack_kb`: the stack of a connection's thread.
    pub thread_stack_kb: u64,
    started: bool,
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
            model: Model::Reactor,
            thread_stack_kb: THREAD_STACK_KB_DEFAULT,
            started: false,
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
        self.started = true;
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
        if self.model == Model::Threads && phase == Phase::New {
            // accept(2) returned: the connection gets its thread, which
            // owns the socket from now on (its registration stays disarmed).
            cx.spawn = Some(token);
            return Step::DONE;
        }
        let Some((h, ())) = self.pool.get(token) else {
            return Step::DONE;
        };
        let s = cx.sockets.get_mut::<tcp::Socket>(h);
        if self.echo_chunk(s) {
            cx.wrote = true;
            if self.drain {
                return Step {
                    work: crate::kernel::time::Nanos::ZERO,
                    more: true,
                };
            }
            // Naive: one read per event, whatever is left.
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

impl TcpEcho {
    /// Echo one chunk of `s`'s received bytes (at most `chunk`, at most
    /// the send room): whether it read any. Bound: one chunk.
    fn echo_chunk(&mut self, s: &mut tcp::Socket<'_>) -> bool {
        let room = s.send_capacity() - s.send_queue();
        if !s.can_recv() || room == 0 {
            return false;
        }
        let want = room.min(self.chunk);
        let Ok(n) = s.recv_slice(&mut self.buf[..want]) else {
            return false;
        };
        let sent = s.send_slice(&self.buf[..n]).unwrap_or(0);
        self.bytes += sent as u64;
        true
    }

    /// One step of the thread that owns connection `token` (the threads
    /// model): echo a chunk and run on, or block in read (or in write, on
    /// a full send buffer), or exit once the connection ended (its socket
    /// handed back to the acceptor's reactor if the pool listens on it
    /// again). Bound: one chunk.
    pub fn thread_step(&mut self, cx: &mut UserCx<'_>, token: Token) -> ThreadStep {
        let phase = self.pool.on_event(cx.sockets, cx.reactor, token);
        match phase {
            Phase::Open => {}
            Phase::Closing => {
                // TIME-WAIT: the pool reclaims the socket after the shard's
                // next egress pass, which this write asks for.
                cx.wrote = true;
                return ThreadStep::Run(crate::kernel::time::Nanos::ZERO);
            }
            Phase::Done | Phase::Refused | Phase::Listening | Phase::HalfOpen | Phase::New => {
                cx.wrote = true;
                if self.pool.get(token).is_some() {
                    self.pool
                        .rearm(cx.sockets, cx.reactor, token, Interest::READABLE);
                }
                return ThreadStep::Exit;
            }
        }
        let Some((h, ())) = self.pool.get(token) else {
            return ThreadStep::Exit;
        };
        let s = cx.sockets.get_mut::<tcp::Socket>(h);
        if self.echo_chunk(s) {
            cx.wrote = true;
            return ThreadStep::Run(crate::kernel::time::Nanos::ZERO);
        }
        if !s.may_recv() && s.state() == tcp::State::CloseWait {
            s.close();
            cx.wrote = true;
        }
        if s.can_recv() {
            ThreadStep::Block(Interest::WRITABLE)
        } else {
            ThreadStep::Block(Interest::READABLE)
        }
    }

    /// The socket of connection `token`, if the pool still holds it.
    pub fn socket_of(&mut self, token: Token) -> Option<crate::kernel::sockets::SockRef> {
        self.pool.get(token).map(|(h, ())| h)
    }
}

/// Whether a thread blocked on `s` for `interest` has something to do:
/// data, a close to answer or reclaim, room to write (as the reactor's
/// readiness predicate, for one socket).
pub fn thread_ready(s: &tcp::Socket<'_>, interest: Interest) -> bool {
    let act = matches!(
        s.state(),
        tcp::State::CloseWait | tcp::State::TimeWait | tcp::State::Closed | tcp::State::Listen
    );
    (interest.is_readable() && (s.can_recv() || act))
        || (interest.is_writable() && (s.can_send() || act))
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
    mib.add_rw_choice_checked(
        "user.tcp_echo.model",
        "How connections are served: reactor (one process, epoll) or threads (a process per connection, blocked in read); set before start",
        &Model::NAMES,
        move |c| {
            get(c)
                .tcp_echo
                .as_ref()
                .map_or(0, |a| usize::from(a.model == Model::Threads))
        },
        move |c, v| match get_mut(c).tcp_echo.as_mut() {
            Some(a) if !a.started => {
                a.model = if v == 1 { Model::Threads } else { Model::Reactor };
                Ok(())
            }
            _ => Err("read-only once the app has started (set it with pollsim run --sysctl)".into()),
        },
    );
    let (lo, hi) = (sat(THREAD_STACK_KB_RANGE.0), sat(THREAD_STACK_KB_RANGE.1));
    mib.add_rw(
        "user.tcp_echo.thread_stack_kb",
        "Stack of a connection's thread (threads model), KiB; applies to threads made after",
        (lo, hi),
        move |_| (lo, hi),
        move |c| {
            get(c)
                .tcp_echo
                .as_ref()
                .map_or(0, |a| sat(a.thread_stack_kb))
        },
        move |c, v| {
            if let Some(a) = get_mut(c).tcp_echo.as_mut() {
                a.thread_stack_kb = v.unsigned_abs();
            }
            Ok(())
        },
    );
    mib.add_ro("user.tcp_echo.bytes", "Bytes echoed", move |c| {
        get(c).tcp_echo.as_ref().map_or(0, |a| sat(a.bytes))
    });
}
