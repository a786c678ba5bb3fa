//! The reactor: delivers socket readiness to the apps, as kernel polling
//! (epoll, kqueue, the Erlang VM's `check_io`) does, rather than having
//! every app scan every socket (select/poll).
//!
//! API shaped like mio: a [`Token`] per registration, an [`Interest`]
//! bitset, and a caller-owned events buffer filled in O(ready).
//!
//! # Readiness contract
//! - **Oneshot.** Delivering an event disarms its registration; the app
//!   re-arms it with [`Reactor::rearm`] once it has consumed what it wants
//!   (as ERTS `check_io` and `EPOLLONESHOT`).
//! - **No lost wake-up.** [`Reactor::rearm`] checks the socket's state and
//!   queues an event at once if it is still readable (or writable, when
//!   asked), so data that arrived while disarmed is never missed.
//! - **Spurious events can occur.** smoltcp wakes a socket on any change
//!   that might affect `recv`/`send` (a dropped datagram, a state change),
//!   so an app must treat "would block" after an event as normal.
//!
//! Readiness is recorded by smoltcp's socket wakers (`register_recv_waker`,
//! `register_send_waker`), which fire while the netisr processes a frame;
//! the waker pushes its token onto a ready list, so a poll costs O(ready).

use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};

/// Names a registration; chosen by the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// What readiness a registration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest(u8);

impl Interest {
    /// Data (or a connection, or a close) to receive.
    pub const READABLE: Interest = Interest(1);
    /// Room to send.
    pub const WRITABLE: Interest = Interest(2);
    /// Both.
    pub const BOTH: Interest = Interest(3);

    /// Whether `self` includes readable.
    pub fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether `self` includes writable.
    pub fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

/// One readiness event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The registration.
    pub token: Token,
}

/// The kind of socket registered, so the reactor can check its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockKind {
    /// A TCP socket.
    Tcp,
    /// A UDP socket.
    Udp,
}

#[derive(Debug)]
struct Registration {
    handle: SocketHandle,
    kind: SockKind,
    interest: Interest,
    armed: bool,
    waker: Waker,
}

/// The list wakers push onto; shared with the wakers smoltcp holds.
#[derive(Debug, Default)]
struct ReadyList(Mutex<Vec<Token>>);

#[derive(Debug)]
struct TokenWaker {
    token: Token,
    ready: Arc<ReadyList>,
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Ok(mut list) = self.ready.0.lock() {
            list.push(self.token);
        }
    }
}

/// Counters of the reactor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Calls to poll
    pub polls: u64,
    /// Events delivered
    pub events: u64,
    /// Registrations re-armed
    pub rearms: u64,
}

/// Socket readiness for the apps.
#[derive(Debug, Default)]
pub struct Reactor {
    regs: Vec<Option<Registration>>,
    ready: Arc<ReadyList>,
    scratch: Vec<Token>,
    /// Counters.
    pub stats: ReactorStats,
}

impl Reactor {
    /// An empty reactor.
    pub fn new() -> Reactor {
        Reactor::default()
    }

    /// Register `handle` under `token` (which must be unused) and arm it.
    pub fn register(
        &mut self,
        sockets: &mut SocketSet<'_>,
        handle: SocketHandle,
        kind: SockKind,
        token: Token,
        interest: Interest,
    ) {
        let waker = Waker::from(Arc::new(TokenWaker {
            token,
            ready: Arc::clone(&self.ready),
        }));
        if self.regs.len() <= token.0 {
            self.regs.resize_with(token.0 + 1, || None);
        }
        assert!(
            self.regs[token.0].is_none(),
            "token {token:?} registered twice"
        );
        self.regs[token.0] = Some(Registration {
            handle,
            kind,
            interest,
            armed: false,
            waker,
        });
        self.rearm(sockets, token);
    }

    /// Re-arm a oneshot registration after its event was handled. If the
    /// socket is ready already, an event is queued at once.
    pub fn rearm(&mut self, sockets: &mut SocketSet<'_>, token: Token) {
        let Some(Some(reg)) = self.regs.get_mut(token.0) else {
            return;
        };
        self.stats.rearms += 1;
        reg.armed = true;
        let (r, w) = (reg.interest.is_readable(), reg.interest.is_writable());
        let ready_now = match reg.kind {
            SockKind::Tcp => {
                let s = sockets.get_mut::<tcp::Socket>(reg.handle);
                if r {
                    s.register_recv_waker(&reg.waker);
                }
                if w {
                    s.register_send_waker(&reg.waker);
                }
                // The app must act on data, or on a close it has to answer
                // (CLOSE-WAIT) or reclaim (TIME-WAIT, CLOSED); other
                // states wait for the peer, and the waker.
                let act = matches!(
                    s.state(),
                    tcp::State::CloseWait | tcp::State::TimeWait | tcp::State::Closed
                );
                (r && (s.can_recv() || act)) || (w && s.can_send())
            }
            SockKind::Udp => {
                let s = sockets.get_mut::<udp::Socket>(reg.handle);
                if r {
                    s.register_recv_waker(&reg.waker);
                }
                if w {
                    s.register_send_waker(&reg.waker);
                }
                (r && s.can_recv()) || (w && s.can_send())
            }
        };
        if ready_now {
            self.ready.0.lock().map(|mut l| l.push(token)).ok();
        }
    }

    /// Change what a registration asks for, and re-arm it.
    pub fn reregister(&mut self, sockets: &mut SocketSet<'_>, token: Token, interest: Interest) {
        if let Some(Some(reg)) = self.regs.get_mut(token.0) {
            reg.interest = interest;
        }
        self.rearm(sockets, token);
    }

    /// Whether any event is waiting (cheap: no socket is examined).
    pub fn has_events(&self) -> bool {
        self.ready.0.lock().map(|l| !l.is_empty()).unwrap_or(false)
    }

    /// Move up to `budget` events into `events` (cleared first), each
    /// disarming its registration. Duplicate wake-ups of a disarmed
    /// registration are dropped. Bound: O(ready), at most `budget` events.
    pub fn poll(&mut self, events: &mut Vec<Event>, budget: usize) {
        self.stats.polls += 1;
        events.clear();
        {
            let Ok(mut list) = self.ready.0.lock() else {
                return;
            };
            std::mem::swap(&mut *list, &mut self.scratch);
        }
        let mut rest = Vec::new();
        for (i, &token) in self.scratch.iter().enumerate() {
            if events.len() >= budget {
                rest.extend_from_slice(&self.scratch[i..]);
                break;
            }
            if let Some(Some(reg)) = self.regs.get_mut(token.0)
                && reg.armed
            {
                reg.armed = false;
                events.push(Event { token });
            }
        }
        self.scratch.clear();
        if !rest.is_empty() {
            self.ready.0.lock().map(|mut l| l.extend(rest)).ok();
        }
        self.stats.events += events.len() as u64;
    }
}
