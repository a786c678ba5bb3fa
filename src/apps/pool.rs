//! A pool of TCP sockets on one port: the listen backlog smoltcp lacks.
//!
//! smoltcp has no `accept`: a listening socket *becomes* the connection
//! when a SYN arrives, and a SYN finding no listener is answered with a
//! RST. So a server keeps [`LISTEN_PER_SHARD`] listening sockets on its
//! port in every socket shard (a SYN is demultiplexed in the shard its
//! 4-tuple hashes to, see `kernel/sockets.rs`; as an `SO_REUSEPORT`
//! group), opens a new one each time one of them takes a connection, and
//! bounds the connections it serves at once by `max_conns`
//! (`user.<app>.max_conns`): a connection beyond it is aborted and counted
//! as refused. A finished connection's socket listens again if its shard's
//! backlog is short, and is otherwise removed from the socket set and its
//! token freed, so that at rest the pool holds its backlog
//! (`LISTEN_PER_SHARD` × shards) and sockets never accumulate.
//!
//! Tokens: the pool's slot `i` is the reactor token `base + i`.

use smoltcp::socket::tcp;

use crate::kernel::reactor::{Interest, Reactor, SockKind, Token, Trigger};
use crate::kernel::sockets::{SockRef, Sockets};

/// Listening sockets kept per port in each socket shard: two, so that a
/// second SYN to a shard finds a listener before the app replenishes.
pub const LISTEN_PER_SHARD: usize = 2;
/// Default of `user.<app>.max_conns`.
pub const MAX_CONNS_DEFAULT: u64 = 1024;
/// Largest accepted `user.<app>.max_conns`.
pub const MAX_CONNS_MAX: u64 = 16_384;
/// Idle time after which smoltcp aborts a connection, so a silent peer
/// cannot hold a slot for ever.
const TIMEOUT_SECS: u64 = 30;

/// What an event on a pool socket means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A listener with nothing yet (a spurious event).
    Listening,
    /// A connection just taken (the app serves it now).
    New,
    /// A connection beyond `max_conns`, aborted.
    Refused,
    /// A connection being served.
    Open,
    /// A connection that ended; its slot is recycled.
    Done,
}

/// Counters of one pool. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections accepted
    pub accepted: u64,
    /// Connections refused because max_conns were being served
    pub refused: u64,
    /// Finished connections whose socket was removed (the backlog was full)
    pub reclaimed: u64,
}

#[derive(Debug)]
struct Slot<T> {
    handle: SockRef,
    listening: bool,
    data: T,
}

/// The sockets of one server port.
#[derive(Debug)]
pub struct Pool<T> {
    port: u16,
    buf: usize,
    base: usize,
    /// Connections served at once, at most (`user.<app>.max_conns`).
    pub max_conns: u64,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<usize>,
    /// Listening sockets per shard.
    listening: Vec<usize>,
    active: u64,
    /// Counters.
    pub stats: PoolStats,
}

impl<T: Default> Pool<T> {
    /// An empty pool for `port`, sockets with `buf`-byte buffers.
    pub fn new(port: u16, buf: usize) -> Pool<T> {
        Pool {
            port,
            buf,
            base: 0,
            max_conns: MAX_CONNS_DEFAULT,
            slots: Vec::new(),
            free: Vec::new(),
            listening: Vec::new(),
            active: 0,
            stats: PoolStats::default(),
        }
    }

    /// Open the backlog in every shard, with tokens from `base`.
    pub fn start(&mut self, sockets: &mut Sockets, reactor: &mut Reactor, base: usize) {
        self.base = base;
        self.listening = vec![0; sockets.shards()];
        for k in 0..sockets.shards() {
            self.replenish(sockets, reactor, k);
        }
    }

    /// Listening sockets kept (over all shards).
    pub fn backlog(&self) -> usize {
        LISTEN_PER_SHARD * self.listening.len()
    }

    /// Sockets held (listening and connected).
    pub fn sockets(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Connections being served.
    pub fn active(&self) -> u64 {
        self.active
    }

    /// The socket and app data of `token`, if it is one of the pool's.
    pub fn get(&mut self, token: Token) -> Option<(SockRef, &mut T)> {
        let slot = self.slots.get_mut(token.0.checked_sub(self.base)?)?;
        slot.as_mut().map(|s| (s.handle, &mut s.data))
    }

    /// Classify an event on `token`: take a new connection (opening a
    /// listener in its place) or refuse it, or recycle a finished one.
    /// Bound: O(1) sockets opened or closed.
    pub fn on_event(
        &mut self,
        sockets: &mut Sockets,
        reactor: &mut Reactor,
        token: Token,
    ) -> Phase {
        let Some(i) = token.0.checked_sub(self.base) else {
            return Phase::Done;
        };
        let Some(slot) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return Phase::Done;
        };
        let s = sockets.get_mut::<tcp::Socket>(slot.handle);
        if slot.listening {
            if s.state() == tcp::State::Listen {
                return Phase::Listening;
            }
            slot.listening = false;
            let shard = slot.handle.shard();
            self.listening[shard] -= 1;
            if self.active >= self.max_conns {
                s.abort();
                self.stats.refused += 1;
                self.recycle(sockets, reactor, i, false);
                return Phase::Refused;
            }
            self.active += 1;
            self.stats.accepted += 1;
            self.replenish(sockets, reactor, shard);
            return Phase::New;
        }
        if s.state() == tcp::State::TimeWait {
            // The peer is gone: 2 MSL per connection would drain the pool.
            s.abort();
        }
        // A RST in SYN-RECEIVED takes a socket back to LISTEN by itself.
        if matches!(s.state(), tcp::State::Closed | tcp::State::Listen) {
            self.recycle(sockets, reactor, i, true);
            return Phase::Done;
        }
        Phase::Open
    }

    /// Re-arm `token` with `interest`, unless its slot was recycled away.
    pub fn rearm(
        &mut self,
        sockets: &mut Sockets,
        reactor: &mut Reactor,
        token: Token,
        interest: Interest,
    ) {
        if self.get(token).is_some() {
            reactor
                .reregister(sockets, token, interest)
                .expect("a pool token is registered");
        }
    }

    /// Slot `i` finished a connection (`served`: one counted in `active`):
    /// listen again if its shard's backlog is short, else remove the socket
    /// and free the slot.
    fn recycle(&mut self, sockets: &mut Sockets, reactor: &mut Reactor, i: usize, served: bool) {
        if served {
            self.active -= 1;
        }
        let Some(slot) = self.slots[i].as_mut() else {
            return;
        };
        slot.data = T::default();
        let shard = slot.handle.shard();
        if self.listening[shard] < LISTEN_PER_SHARD {
            let s = sockets.get_mut::<tcp::Socket>(slot.handle);
            if s.state() == tcp::State::Listen || s.listen(self.port).is_ok() {
                slot.listening = true;
                self.listening[shard] += 1;
                return;
            }
        }
        sockets.remove(slot.handle);
        let _ = reactor.deregister(Token(self.base + i));
        self.slots[i] = None;
        self.free.push(i);
        self.stats.reclaimed += 1;
    }

    /// Open listeners in `shard` until its backlog is full. Bound:
    /// `LISTEN_PER_SHARD` sockets.
    fn replenish(&mut self, sockets: &mut Sockets, reactor: &mut Reactor, shard: usize) {
        while self.listening[shard] < LISTEN_PER_SHARD {
            let i = self.free.pop().unwrap_or(self.slots.len());
            if i == self.slots.len() {
                self.slots.push(None);
            }
            let handle = sockets.add(shard, listener(self.port, self.buf));
            self.slots[i] = Some(Slot {
                handle,
                listening: true,
                data: T::default(),
            });
            self.listening[shard] += 1;
            reactor
                .register(
                    sockets,
                    handle,
                    SockKind::Tcp,
                    Token(self.base + i),
                    Interest::READABLE,
                    Trigger::Oneshot,
                )
                .expect("a free pool slot has an unused token");
        }
    }
}

/// A fresh listening TCP socket with `buf`-byte buffers and an idle timeout.
fn listener(port: u16, buf: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    );
    s.set_timeout(Some(smoltcp::time::Duration::from_secs(TIMEOUT_SECS)));
    s.listen(port).expect("a fresh socket can listen");
    s
}

/// Declare `user.<app>.max_conns` and the pool's counters.
pub fn register_sysctl<C: 'static, T: Default + 'static>(
    mib: &mut pollsim_sysctl::Mib<C>,
    app: &'static str,
    get: impl Fn(&C) -> Option<&Pool<T>> + Copy + 'static,
    get_mut: impl Fn(&mut C) -> Option<&mut Pool<T>> + 'static,
) {
    use crate::sat;
    let max = sat(MAX_CONNS_MAX);
    mib.add_rw(
        &format!("user.{app}.max_conns"),
        "Connections served at once; more are refused",
        (1, max),
        move |_| (1, max),
        move |c| get(c).map_or(0, |p| sat(p.max_conns)),
        move |c, v| {
            if let Some(p) = get_mut(c) {
                p.max_conns = v.unsigned_abs();
            }
            Ok(())
        },
    );
    type Get<T> = fn(&Pool<T>) -> u64;
    let nodes: [(&str, &str, Get<T>); 6] = [
        ("accepted", "Connections accepted", |p| p.stats.accepted),
        (
            "refused",
            "Connections refused because max_conns were being served",
            |p| p.stats.refused,
        ),
        (
            "reclaimed",
            "Finished connections whose socket was removed",
            |p| p.stats.reclaimed,
        ),
        ("active", "Connections being served", |p| p.active),
        ("backlog", "Listening sockets kept, over all shards", |p| {
            p.backlog() as u64
        }),
        ("sockets", "Sockets held (listening and connected)", |p| {
            p.sockets() as u64
        }),
    ];
    for (name, descr, f) in nodes {
        mib.add_ro(&format!("user.{app}.{name}"), descr, move |c| {
            get(c).map_or(0, |p| sat(f(p)))
        });
    }
}
