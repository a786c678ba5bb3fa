//! A pool of TCP sockets on one port: the listen backlog smoltcp lacks.
//!
//! smoltcp has no `accept`: a listening socket *becomes* the connection
//! when a SYN arrives, and a SYN finding no listener is answered with a
//! RST (the netisr drops instead a SYN to a served port whose shard has no
//! free listener, as a full listen queue does; see `kernel/sockets.rs`).
//! So a server keeps [`LISTEN_PER_SHARD`] listening sockets on its port in
//! every socket shard of every NIC (a SYN is demultiplexed in the shard its
//! 4-tuple hashes to, among the sockets of the NIC it came in on, see
//! `kernel/sockets.rs`; as an `SO_REUSEPORT` group), each bound to its
//! NIC's address, so that a connection's local address is always one its
//! Interface owns; it opens a new one each time one of them takes a
//! connection, and
//! bounds the connections it serves at once by `max_conns`
//! (`user.<app>.max_conns`): a connection beyond it is aborted and counted
//! as refused. A finished connection's socket listens again if its shard's
//! backlog is short, and is otherwise removed from the socket set and its
//! token freed, so that at rest the pool holds its backlog
//! (`LISTEN_PER_SHARD` × shards) and sockets never accumulate.
//!
//! # Half-open connections (SYN floods)
//!
//! As a real kernel's TCP does (Linux's `tcp_max_syn_backlog`, FreeBSD's
//! syncache), half-open connections are bounded apart from established
//! ones: a listener that took a SYN (SYN-RECEIVED) is *half-open*, counted
//! in `half_open`, not in `active`, and at most `user.<app>.syn_backlog` of
//! them are kept: when a new one would exceed it, the oldest is aborted
//! (`syn_dropped`). A half-open connection gives up after
//! `user.<app>.syn_timeout_ms` (smoltcp's socket timeout, counted from the
//! SYN; it retransmits the SYN-ACK after 1 s, then doubling, so the default
//! 3 s allows two retransmits) and its slot is freed (`timeouts`). A
//! RST in SYN-RECEIVED takes smoltcp's socket back to LISTEN; the reactor
//! reports any change of state of a half-open socket, so the slot is freed
//! at once (`resets`); a RST on an established connection closes it,
//! which the reactor reports too. Only a completed handshake counts against
//! `max_conns`, and an established connection is never evicted to make room
//! for a half-open one.
//!
//! # Triggers (`user.<app>.trigger`)
//!
//! Every socket of the pool, listener or connection, is registered with
//! the pool's [`Trigger`] (set before start). Under `oneshot` the app
//! re-arms after every event ([`Pool::rearm`], an `EPOLL_CTL_MOD`, each
//! counted in `kern.reactor.rearms` and charged `hw.sim.reactor_rearm_ns`);
//! under `level` and `edge` a registration stays armed, and an app changes
//! it only when what it asks for changes ([`Pool::keep`]: read only, or
//! read and write while its send buffer is full) or when the socket
//! changes role (a listener took a SYN, a handshake completed, a
//! connection entered TIME-WAIT or listens again): there it re-registers,
//! as a real server adds an accepted descriptor (`EPOLL_CTL_ADD`) and
//! deletes a closed one.
//!
//! smoltcp has no accept queue: each listener *is* one pending connection,
//! registered on its own, so a change of state of one listener is one
//! arrival, whatever the trigger. Under `edge` a server therefore cannot
//! leave connections in a backlog by accepting one per wake-up, as an
//! epoll server that does not `accept` until `EAGAIN` does: every
//! connection is its own edge. What an edge-triggered app must drain is
//! each connection's receive buffer (tcp-echo's `user.tcp_echo.drain`).
//!
//! Tokens: the pool's slot `i` is the reactor token `base + i`.

use std::collections::VecDeque;

use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpListenEndpoint, Ipv4Address};

use crate::kernel::reactor::{Interest, Reactor, Token, Trigger};
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
/// Default of `user.<app>.syn_backlog` (Linux's `tcp_max_syn_backlog`
/// floor is 128; a little more, as the pool's listeners take SYNs in 256
/// shards).
pub const SYN_BACKLOG_DEFAULT: u64 = 256;
/// Largest accepted `user.<app>.syn_backlog`.
pub const SYN_BACKLOG_MAX: u64 = 16_384;
/// Default of `user.<app>.syn_timeout_ms`: two SYN-ACK retransmits.
pub const SYN_TIMEOUT_MS_DEFAULT: u64 = 3_000;
/// Bounds of `user.<app>.syn_timeout_ms`.
pub const SYN_TIMEOUT_MS_RANGE: (u64, u64) = (100, 60_000);

/// What an event on a pool socket means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A listener with nothing yet (a spurious event).
    Listening,
    /// A half-open connection (SYN-RECEIVED): nothing to serve yet.
    HalfOpen,
    /// A connection just established (the app serves it now).
    New,
    /// A connection beyond `max_conns`, aborted.
    Refused,
    /// A connection being served.
    Open,
    /// A connection in TIME-WAIT whose last ACK is not yet sent: nothing
    /// to serve; the app re-arms it and makes the stack send.
    Closing,
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
    /// SYNs taken by a listener (connections that became half-open)
    pub syn_received: u64,
    /// Half-open connections aborted, oldest first, because syn_backlog were held
    pub syn_dropped: u64,
    /// Half-open connections that timed out in SYN-RECEIVED (syn_timeout_ms)
    pub timeouts: u64,
    /// Half-open connections reset by the peer, their slot freed at once
    pub resets: u64,
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A listener of its shard's backlog.
    Listening,
    /// A half-open connection (in the pool's `half_open` queue).
    HalfOpen,
    /// An established connection, counted in `active`.
    Open,
    /// A connection in TIME-WAIT, waiting for its shard's next egress pass
    /// (the one that acknowledges the peer's FIN) at this count of passes.
    TimeWait(u32),
}

#[derive(Debug)]
struct Slot<T> {
    handle: SockRef,
    role: Role,
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
    /// Half-open connections kept, at most (`user.<app>.syn_backlog`).
    pub syn_backlog: u64,
    /// Time a half-open connection is given, ms (`user.<app>.syn_timeout_ms`).
    pub syn_timeout_ms: u64,
    /// How the reactor reports the pool's sockets (`user.<app>.trigger`,
    /// set before start).
    pub trigger: Trigger,
    /// Half-open slots, oldest first.
    half_open: VecDeque<usize>,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<usize>,
    /// Listening sockets per (NIC, shard), at `nic * shards + shard`.
    listening: Vec<usize>,
    /// Shards per NIC.
    shards: usize,
    /// Each NIC's address, the listeners' local address.
    addrs: Vec<Option<Ipv4Address>>,
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
            syn_backlog: SYN_BACKLOG_DEFAULT,
            syn_timeout_ms: SYN_TIMEOUT_MS_DEFAULT,
            trigger: Trigger::Oneshot,
            half_open: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            listening: Vec::new(),
            shards: 1,
            addrs: Vec::new(),
            active: 0,
            stats: PoolStats::default(),
        }
    }

    /// Open the backlog in every shard of every NIC, with tokens from
    /// `base`.
    pub fn start(&mut self, sockets: &mut Sockets, reactor: &mut Reactor, base: usize) {
        self.base = base;
        sockets.serve_tcp_port(self.port);
        self.shards = sockets.shards();
        self.addrs = (0..sockets.nics())
            .map(|n| sockets.nic(n).ipv4_addr())
            .collect();
        self.listening = vec![0; sockets.nics() * self.shards];
        // Its listeners are, to a select-like scan, one listen descriptor
        // per NIC (the port's accept queue).
        reactor.add_listen_fds(sockets.nics());
        for k in 0..self.listening.len() {
            self.replenish(sockets, reactor, k);
        }
    }

    /// The backlog index of a socket: its (NIC, shard).
    fn group(&self, r: SockRef) -> usize {
        r.nic() * self.shards + r.shard()
    }

    /// What a listener of backlog `group` listens on: the port, at its
    /// NIC's address.
    fn endpoint(&self, group: usize) -> IpListenEndpoint {
        IpListenEndpoint {
            addr: self.addrs[group / self.shards].map(IpAddress::Ipv4),
            port: self.port,
        }
    }

    /// Listening sockets kept (over all NICs and shards).
    pub fn backlog(&self) -> usize {
        LISTEN_PER_SHARD * self.listening.len()
    }

    /// Sockets held (listening and connected).
    pub fn sockets(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Connections being served (established).
    pub fn active(&self) -> u64 {
        self.active
    }

    /// Half-open connections held.
    pub fn half_open(&self) -> usize {
        self.half_open.len()
    }

    /// The socket and app data of `token`, if it is one of the pool's.
    pub fn get(&mut self, token: Token) -> Option<(SockRef, &mut T)> {
        let slot = self.slots.get_mut(token.0.checked_sub(self.base)?)?;
        slot.as_mut().map(|s| (s.handle, &mut s.data))
    }

    /// Classify an event on `token`: a SYN taken by a listener (a new
    /// half-open connection, opening a listener in its place and dropping
    /// the oldest half-open one beyond `syn_backlog`), a handshake
    /// completed (served, or refused beyond `max_conns`), a half-open
    /// connection reset or timed out, or a finished connection; recycle
    /// what ended. Bound: O(1) sockets opened or closed, plus O(syn_backlog)
    /// to take a slot out of the half-open queue.
    pub fn on_event(
        &mut self,
        sockets: &mut Sockets,
        reactor: &mut Reactor,
        token: Token,
    ) -> Phase {
        let Some(i) = token.0.checked_sub(self.base) else {
            return Phase::Done;
        };
        let Some(slot) = self.slots.get(i).and_then(Option::as_ref) else {
            return Phase::Done;
        };
        let (role, handle) = (slot.role, slot.handle);
        let shard = self.group(handle);
        let state = sockets.get::<tcp::Socket>(handle).state();
        match (role, state) {
            (Role::Listening, tcp::State::Listen) => Phase::Listening,
            (Role::Listening, tcp::State::SynReceived) => {
                self.listening[shard] -= 1;
                self.stats.syn_received += 1;
                self.set_role(i, Role::HalfOpen);
                let timeout = Duration::from_millis(self.syn_timeout_ms);
                sockets
                    .get_mut::<tcp::Socket>(slot_handle(&self.slots, i))
                    .set_timeout(Some(timeout));
                self.half_open.push_back(i);
                self.replenish(sockets, reactor, shard);
                self.drop_oldest_half_open(sockets, reactor);
                Phase::HalfOpen
            }
            (Role::Listening, tcp::State::Closed) => {
                // Reset or timed out before the app saw the SYN.
                self.listening[shard] -= 1;
                self.set_role(i, Role::HalfOpen);
                self.stats.timeouts += 1;
                self.replenish(sockets, reactor, shard);
                self.recycle(sockets, reactor, i);
                Phase::Done
            }
            (Role::Listening, _) => {
                self.listening[shard] -= 1;
                self.set_role(i, Role::HalfOpen);
                self.replenish(sockets, reactor, shard);
                self.establish(sockets, reactor, i)
            }
            (Role::HalfOpen, tcp::State::SynReceived) => Phase::HalfOpen,
            (Role::HalfOpen, tcp::State::Listen) => {
                self.stats.resets += 1;
                self.recycle(sockets, reactor, i);
                Phase::Done
            }
            (Role::HalfOpen, tcp::State::Closed) => {
                self.stats.timeouts += 1;
                self.recycle(sockets, reactor, i);
                Phase::Done
            }
            (Role::HalfOpen, _) => self.establish(sockets, reactor, i),
            (Role::Open, tcp::State::TimeWait) => {
                // The peer's FIN is acknowledged by the next egress pass of
                // the shard; the socket goes after it (aborted now, the ACK
                // would never leave, and the peer's retransmitted FIN would
                // meet a RST). Not counted in `active` meanwhile.
                self.set_role(i, Role::TimeWait(sockets.egress_visits(handle)));
                // Marks the shard for that pass.
                sockets.get_mut::<tcp::Socket>(handle);
                Phase::Closing
            }
            (Role::TimeWait(at), tcp::State::TimeWait) if sockets.egress_visits(handle) == at => {
                sockets.get_mut::<tcp::Socket>(handle);
                Phase::Closing
            }
            (Role::TimeWait(_), _) => {
                // 2 MSL per connection would drain the pool: the peer has
                // its ACK, the socket goes now.
                sockets
                    .get_mut::<tcp::Socket>(slot_handle(&self.slots, i))
                    .abort();
                self.recycle(sockets, reactor, i);
                Phase::Done
            }
            (Role::Open, _) => {
                let s = sockets.get_mut::<tcp::Socket>(slot_handle(&self.slots, i));
                // A RST on an established connection closes it (CLOSED).
                if matches!(s.state(), tcp::State::Closed | tcp::State::Listen) {
                    self.recycle(sockets, reactor, i);
                    return Phase::Done;
                }
                Phase::Open
            }
        }
    }

    /// Half-open slot `i` completed its handshake: serve it, or refuse it
    /// if `max_conns` are being served (an established connection is never
    /// evicted for a new one).
    fn establish(&mut self, sockets: &mut Sockets, reactor: &mut Reactor, i: usize) -> Phase {
        let s = sockets.get_mut::<tcp::Socket>(slot_handle(&self.slots, i));
        if self.active >= self.max_conns {
            s.abort();
            self.stats.refused += 1;
            self.recycle(sockets, reactor, i);
            return Phase::Refused;
        }
        s.set_timeout(Some(Duration::from_secs(TIMEOUT_SECS)));
        self.set_role(i, Role::Open);
        self.active += 1;
        self.stats.accepted += 1;
        Phase::New
    }

    /// Abort the oldest half-open connections while more than
    /// `syn_backlog` are held. Bound: the excess (one after a SYN, more
    /// only right after `syn_backlog` was lowered).
    fn drop_oldest_half_open(&mut self, sockets: &mut Sockets, reactor: &mut Reactor) {
        while self.half_open.len() as u64 > self.syn_backlog {
            let Some(&oldest) = self.half_open.front() else {
                return;
            };
            sockets
                .get_mut::<tcp::Socket>(slot_handle(&self.slots, oldest))
                .abort();
            self.stats.syn_dropped += 1;
            self.recycle(sockets, reactor, oldest);
        }
    }

    /// Change slot `i`'s role, keeping `active` and the half-open queue in
    /// step. Bound: O(syn_backlog) to leave the half-open queue.
    fn set_role(&mut self, i: usize, role: Role) {
        let Some(slot) = self.slots[i].as_mut() else {
            return;
        };
        match slot.role {
            Role::Open => self.active -= 1,
            Role::HalfOpen => {
                if let Some(pos) = self.half_open.iter().position(|&h| h == i) {
                    self.half_open.remove(pos);
                }
            }
            Role::Listening | Role::TimeWait(_) => {}
        }
        slot.role = role;
    }

    /// Whether the pool has opened its sockets (its trigger is fixed).
    pub fn started(&self) -> bool {
        !self.listening.is_empty()
    }

    /// After serving an open connection: re-arm `token` if it is oneshot,
    /// re-register it if `interest` differs from what it asks for, and
    /// otherwise leave it be (a level or edge registration stays armed, at
    /// no cost). Bound: O(1).
    pub fn keep(
        &mut self,
        sockets: &mut Sockets,
        reactor: &mut Reactor,
        token: Token,
        interest: Interest,
    ) {
        if self.trigger == Trigger::Oneshot || reactor.interest(token).ok() != Some(interest) {
            self.rearm(sockets, reactor, token, interest);
        }
    }

    /// Re-arm `token` with `interest` (`EPOLL_CTL_MOD`: readiness it has
    /// now is reported, whatever the trigger), unless its slot was recycled
    /// away.
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

    /// Slot `i`'s connection ended (or never was): listen again if its
    /// shard's backlog is short, else remove the socket and free the slot.
    fn recycle(&mut self, sockets: &mut Sockets, reactor: &mut Reactor, i: usize) {
        self.set_role(i, Role::Listening);
        let timeout = Duration::from_millis(self.syn_timeout_ms);
        let Some(slot) = self.slots[i].as_mut() else {
            return;
        };
        slot.data = T::default();
        let handle = slot.handle;
        // (slot's borrow ends here: the backlog is found from the handle.)
        let shard = self.group(handle);
        let endpoint = self.endpoint(shard);
        if self.listening[shard] < LISTEN_PER_SHARD {
            let s = sockets.get_mut::<tcp::Socket>(handle);
            if s.state() == tcp::State::Listen || s.listen(endpoint).is_ok() {
                s.set_timeout(Some(timeout));
                self.listening[shard] += 1;
                return;
            }
        }
        sockets.remove(handle);
        let _ = reactor.deregister(Token(self.base + i));
        self.slots[i] = None;
        self.free.push(i);
        self.stats.reclaimed += 1;
    }

    /// Open listeners in backlog `shard` (a NIC's shard, see
    /// [`Pool::group`]) until it is full. Bound: `LISTEN_PER_SHARD` sockets.
    fn replenish(&mut self, sockets: &mut Sockets, reactor: &mut Reactor, shard: usize) {
        let (nic, k) = (shard / self.shards, shard % self.shards);
        while self.listening[shard] < LISTEN_PER_SHARD {
            let i = self.free.pop().unwrap_or(self.slots.len());
            if i == self.slots.len() {
                self.slots.push(None);
            }
            let timeout = Duration::from_millis(self.syn_timeout_ms);
            let l = listener(self.endpoint(shard), self.buf, timeout);
            let handle = sockets.add(nic, k, l);
            self.slots[i] = Some(Slot {
                handle,
                role: Role::Listening,
                data: T::default(),
            });
            self.listening[shard] += 1;
            reactor
                .register_listener(
                    sockets,
                    handle,
                    Token(self.base + i),
                    Interest::READABLE,
                    self.trigger,
                )
                .expect("a free pool slot has an unused token");
        }
    }
}

/// The socket of slot `i` (which must hold one).
fn slot_handle<T>(slots: &[Option<Slot<T>>], i: usize) -> SockRef {
    slots[i]
        .as_ref()
        .map(|s| s.handle)
        .expect("a live pool slot")
}

/// A fresh listening TCP socket with `buf`-byte buffers and the half-open
/// timeout (the time a SYN it takes is given to complete).
fn listener(at: IpListenEndpoint, buf: usize, syn_timeout: Duration) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    );
    s.set_timeout(Some(syn_timeout));
    s.listen(at).expect("a fresh socket can listen");
    s
}

/// Declare `user.<app>.trigger`, `user.<app>.max_conns` and the pool's counters.
pub fn register_sysctl<C: 'static, T: Default + 'static>(
    mib: &mut pollsim_sysctl::Mib<C>,
    app: &'static str,
    get: impl Fn(&C) -> Option<&Pool<T>> + Copy + 'static,
    get_mut: impl Fn(&mut C) -> Option<&mut Pool<T>> + Copy + 'static,
) {
    use crate::sat;
    super::register_trigger(
        mib,
        app,
        "the app's sockets (listeners and connections)",
        move |c| get(c).map(|p| p.trigger),
        move |c, t| match get_mut(c) {
            Some(p) if !p.started() => {
                p.trigger = t;
                Ok(())
            }
            _ => Err(super::STARTED.into()),
        },
    );
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
    let max = sat(SYN_BACKLOG_MAX);
    mib.add_rw(
        &format!("user.{app}.syn_backlog"),
        "Half-open connections kept; beyond, the oldest is dropped",
        (1, max),
        move |_| (1, max),
        move |c| get(c).map_or(0, |p| sat(p.syn_backlog)),
        move |c, v| {
            if let Some(p) = get_mut(c) {
                p.syn_backlog = v.unsigned_abs();
            }
            Ok(())
        },
    );
    let (lo, hi) = (sat(SYN_TIMEOUT_MS_RANGE.0), sat(SYN_TIMEOUT_MS_RANGE.1));
    mib.add_rw(
        &format!("user.{app}.syn_timeout_ms"),
        "Time a half-open connection is given to complete its handshake, ms",
        (lo, hi),
        move |_| (lo, hi),
        move |c| get(c).map_or(0, |p| sat(p.syn_timeout_ms)),
        move |c, v| {
            if let Some(p) = get_mut(c) {
                p.syn_timeout_ms = v.unsigned_abs();
            }
            Ok(())
        },
    );
    type Get<T> = fn(&Pool<T>) -> u64;
    let nodes: [(&str, &str, Get<T>); 11] = [
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
        ("active", "Established connections being served", |p| {
            p.active
        }),
        (
            "half_open",
            "Half-open connections held (SYN-RECEIVED)",
            |p| p.half_open() as u64,
        ),
        ("syn_received", "SYNs taken by a listener", |p| {
            p.stats.syn_received
        }),
        (
            "syn_dropped",
            "Half-open connections dropped, oldest first, because syn_backlog were held",
            |p| p.stats.syn_dropped,
        ),
        (
            "timeouts",
            "Half-open connections that gave up after syn_timeout_ms",
            |p| p.stats.timeouts,
        ),
        (
            "resets",
            "Half-open connections reset by the peer, their slot freed at once",
            |p| p.stats.resets,
        ),
        (
            "backlog",
            "Listening sockets kept, over all NICs and shards",
            |p| p.backlog() as u64,
        ),
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
