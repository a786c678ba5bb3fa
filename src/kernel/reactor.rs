//! The reactor: delivers socket readiness to the apps, either as kernel
//! polling does (epoll, kqueue, the Erlang VM's `check_io` with `+K true`)
//! or as user polling does (select/poll), switchable at run time.
//!
//! API shaped like mio: a [`Token`] per registration, an [`Interest`]
//! bitset, a [`Trigger`], and a caller-owned events buffer that
//! [`Reactor::poll`] fills up to a budget. Unlike mio, `poll` takes the
//! socket set, because readiness is a property of smoltcp's sockets and the
//! reactor reads it there (smoltcp's own entry points take the set the
//! same way).
//!
//! # Backends (`kern.reactor.backend`)
//! - [`Backend::Ready`] (0, kernel polling): smoltcp's socket wakers
//!   (`register_recv_waker`, `register_send_waker`) fire while the netisr
//!   processes a frame and push the registration onto a ready list; a poll
//!   examines only what is on that list, so it costs O(ready).
//! - [`Backend::Scan`] (1, user polling): no wakers; every poll examines
//!   every armed registration, as select/poll hand the whole descriptor set
//!   to the kernel on each call, so it costs O(registered).
//!
//! Switching keeps every registration; a switch to `ready` arms the wakers
//! of every armed registration and queues those already ready, so no
//! readiness is lost either way (the switch costs O(registered) once).
//!
//! # Readiness contract
//! - A registration is *ready* when its socket can be read (data, or for a
//!   TCP socket a close to answer or reclaim: CLOSE-WAIT, TIME-WAIT,
//!   CLOSED, or a change of state of a socket that was listening or
//!   half-open (SYN-RECEIVED) when armed: a connection arrived, completed,
//!   was reset or timed out) and [`Interest::READABLE`] was asked, or can be written and
//!   [`Interest::WRITABLE`] was asked. Both backends use this one
//!   predicate, checked at poll time, so they deliver the same events.
//! - **Oneshot** ([`Trigger::Oneshot`], as ERTS `check_io` and
//!   `EPOLLONESHOT`): delivering an event disarms the registration until
//!   [`Reactor::rearm`] (or [`Reactor::reregister`]). Re-arming checks the
//!   socket at once, so readiness that arrived while disarmed is not lost.
//! - **Level** ([`Trigger::Level`]): the registration stays armed; it is
//!   delivered again on every poll while it is ready, at most once per poll.
//! - **Edge** ([`Trigger::Edge`], as `EPOLLET`): the registration stays
//!   armed and is delivered once per *arrival* of readiness: when armed
//!   while ready, and when its socket's waker fires (a datagram or segment
//!   queued, a change of state) and the socket is then ready; arrivals
//!   between two polls make one event. Readiness that remains after an
//!   event makes no further event, so the app must drain (read until would
//!   block): an app that reads one datagram per event leaves the rest in
//!   the socket buffer, with no event until a new frame arrives. The
//!   `ready` backend has this from its wakers. select/poll have no edge
//!   triggering; the `scan` backend emulates it as a library over select
//!   would with the kernel's help: it keeps the wakers of edge
//!   registrations armed as a latch ("an arrival since the last scan"),
//!   and a scan delivers an edge registration only if ready and latched.
//!   The scan still examines every registration, so its cost stays O(n).
//!   As in Linux (whose `ep_poll_callback` runs on every `sk_data_ready`),
//!   data arriving while earlier data is unread is an arrival too, not only
//!   the transition from empty; smoltcp wakes a receive waker for new
//!   in-order data and for a change of state, and a send waker (asked for
//!   by [`Interest::WRITABLE`] only) for acknowledged bytes.
//! - [`Reactor::rearm`] and [`Reactor::reregister`] are `EPOLL_CTL_MOD`
//!   whatever the trigger: readiness present at once is reported by the
//!   next poll (edge included), and each counts in `rearms`.
//! - **A server's listen backlog is one descriptor.** smoltcp has no
//!   `accept`, so a server (the apps' pool) keeps many listening sockets
//!   per port, each registered: without care a `scan` would examine
//!   hundreds of them per poll where select examines one listen
//!   descriptor. The pool registers its listeners as such ([`Reactor::register_listener`])
//!   and counts its listen descriptors ([`Reactor::add_listen_fds`], one
//!   per port and NIC). Under `scan` a marked registration, while its
//!   socket listens, is examined only when its waker latched a change
//!   (a SYN taken: the kernel's accept queue is kept as segments arrive,
//!   not by select), and every scan examines each listen descriptor once.
//!   `ready` is unchanged (it examines what its wakers queued).
//! - **Spurious events can occur**, though rarely: an event says the socket
//!   was ready when polled; by the time the app handles it, another step
//!   may have consumed or changed it (a timeout may close a connection).
//!   An app must treat "would block" after an event as normal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use smoltcp::socket::{tcp, udp};

use super::pollers::Pollers;
use super::sockets::{SockRef, Sockets};

#[cfg(test)]
#[path = "reactor_tests.rs"]
mod tests;

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

/// When a registration fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// One event, then disarmed until re-armed.
    Oneshot,
    /// An event on every poll while ready.
    Level,
    /// An event per arrival of readiness; the app must drain.
    Edge,
}

impl Trigger {
    /// The names `user.<app>.trigger` takes, in [`Trigger::index`] order.
    pub const NAMES: [&'static str; 3] = ["level", "edge", "oneshot"];
    /// Every trigger, in [`Trigger::index`] order.
    pub const ALL: [Trigger; 3] = [Trigger::Level, Trigger::Edge, Trigger::Oneshot];

    /// Its index in [`Trigger::NAMES`].
    pub fn index(self) -> usize {
        match self {
            Trigger::Level => 0,
            Trigger::Edge => 1,
            Trigger::Oneshot => 2,
        }
    }

    /// Its name (`level`, `edge`, `oneshot`).
    pub fn name(self) -> &'static str {
        Trigger::NAMES[self.index()]
    }
}

/// How readiness is found (`kern.reactor.backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Kernel polling: a ready list fed by smoltcp's wakers, O(ready).
    Ready,
    /// User polling: every registration examined on every poll, O(n).
    Scan,
}

impl Backend {
    /// Its sysctl value and name.
    pub fn code(self) -> i64 {
        match self {
            Backend::Ready => 0,
            Backend::Scan => 1,
        }
    }

    /// From its sysctl value.
    pub fn from_code(v: i64) -> Option<Backend> {
        match v {
            0 => Some(Backend::Ready),
            1 => Some(Backend::Scan),
            _ => None,
        }
    }

    /// Its name (`ready`, `scan`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Ready => "ready",
            Backend::Scan => "scan",
        }
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
    token: Token,
    handle: SockRef,
    kind: SockKind,
    interest: Interest,
    trigger: Trigger,
    armed: bool,
    /// The socket was listening or half-open (SYN-RECEIVED) when armed, in
    /// that state: any change of state makes it readable.
    opening: Option<tcp::State>,
    /// The poll that last delivered it (one event per poll at most).
    delivered: u64,
    /// Edge under `scan` (and a backlog listener): readiness arrived
    /// (armed, or its waker fired) since the last scan examined it.
    latched: bool,
    /// One of a server's listening sockets ([`Reactor::register_listener`]).
    backlog: bool,
    waker: Waker,
}

/// Slots wakers push onto; shared with the wakers smoltcp holds.
#[derive(Debug, Default)]
struct ReadyList(Mutex<Vec<usize>>);

impl ReadyList {
    fn push(&self, slot: usize) {
        if let Ok(mut l) = self.0.lock() {
            l.push(slot);
        }
    }
}

#[derive(Debug)]
struct SlotWaker {
    slot: usize,
    ready: Arc<ReadyList>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.slot);
    }
}

/// Counters of the reactor. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Reactor polls
    pub polls: u64,
    /// Readiness events delivered to apps
    pub events: u64,
    /// Sockets examined by polls (about one per event for ready, all for scan)
    pub scanned: u64,
    /// Registrations re-armed or modified (epoll_ctl MOD)
    pub rearms: u64,
    /// Registrations made (epoll_ctl ADD)
    pub registers: u64,
}

/// A misuse of the registration API (a programming error of an app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReactorError {
    /// The token is registered already.
    #[error("token {0:?} is registered already")]
    TokenInUse(Token),
    /// The token is not registered.
    #[error("token {0:?} is not registered")]
    UnknownToken(Token),
}

/// Socket readiness for the apps.
#[derive(Debug)]
pub struct Reactor {
    slots: Vec<Option<Registration>>,
    free: Vec<usize>,
    by_token: HashMap<Token, usize>,
    shared: Arc<ReadyList>,
    /// Ready backend: slots to examine, in wake order.
    pending: Vec<usize>,
    /// Ready backend: level registrations delivered, examined again.
    level: Vec<usize>,
    backend: Backend,
    /// Scan backend, per pollset: where its next scan starts (fairness
    /// under a budget).
    cursor: Vec<usize>,
    /// Scan backend, per pollset: something may have changed since its
    /// last full scan.
    dirty: Vec<bool>,
    round: u64,
    /// The pollers and their pollsets (`kern.reactor.pollers`, `pollsets`,
    /// `wakeup`; [`super::pollers`]).
    pollers: Pollers,
    /// Listen descriptors of the servers' backlogs (each examined once per
    /// scan; see [`Reactor::add_listen_fds`]).
    listen_fds: usize,
    /// Counters.
    pub stats: ReactorStats,
}

impl Registration {
    /// A backlog listener while it listens: under `scan`, examined only
    /// when latched.
    fn behind_backlog(&self) -> bool {
        self.backlog && self.opening == Some(tcp::State::Listen)
    }
}

impl Default for Reactor {
    fn default() -> Self {
        Reactor::new()
    }
}

impl Reactor {
    /// An empty reactor with the `ready` backend.
    pub fn new() -> Reactor {
        Reactor {
            slots: Vec::new(),
            free: Vec::new(),
            by_token: HashMap::new(),
            shared: Arc::default(),
            pending: Vec::new(),
            level: Vec::new(),
            backend: Backend::Ready,
            cursor: vec![0],
            dirty: vec![false],
            round: 0,
            pollers: Pollers::new(),
            listen_fds: 0,
            stats: ReactorStats::default(),
        }
    }

    /// A server holds `n` more listen descriptors (one per port and NIC),
    /// each examined once by every scan.
    pub fn add_listen_fds(&mut self, n: usize) {
        self.listen_fds += n;
    }

    /// The pollers: their number, pollsets, wake-up rule and counters.
    pub fn pollers(&self) -> &Pollers {
        &self.pollers
    }

    /// The pollers, to change their number or rule, or take a wake-up.
    pub fn pollers_mut(&mut self) -> &mut Pollers {
        &mut self.pollers
    }

    /// Set `kern.reactor.pollsets` (1..=pollers): a registration belongs
    /// to pollset `slot % m`. Every pollset's next scan is a full one.
    /// Bound: O(m).
    pub fn set_pollsets(&mut self, m: usize) -> Result<(), String> {
        self.pollers.set_sets(m)?;
        self.cursor = vec![0; m];
        self.dirty = vec![true; m];
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Registrations held.
    pub fn registered(&self) -> usize {
        self.by_token.len()
    }

    /// Switch backends, keeping every registration and its readiness.
    /// Bound: O(registered).
    pub fn set_backend(&mut self, sockets: &mut Sockets, backend: Backend) {
        if backend == self.backend {
            return;
        }
        self.backend = backend;
        self.pending.clear();
        self.level.clear();
        if let Ok(mut l) = self.shared.0.lock() {
            l.clear();
        }
        match backend {
            // A scan finds whatever the ready list held; an edge
            // registration's next scan checks it (its wakers stay armed).
            Backend::Scan => {
                self.dirty.fill(true);
                for reg in self.slots.iter_mut().flatten() {
                    if (reg.trigger == Trigger::Edge || reg.behind_backlog()) && reg.armed {
                        reg.latched = true;
                        arm_wakers(sockets, reg);
                    }
                }
            }
            Backend::Ready => {
                for slot in 0..self.slots.len() {
                    if let Some(reg) = self.slots[slot].as_mut().filter(|r| r.armed) {
                        arm_wakers(sockets, reg);
                        if is_ready(sockets, reg) {
                            self.pending.push(slot);
                        }
                    }
                }
            }
        }
    }

    /// Register `handle` under `token` and arm it. An unused token only.
    pub fn register(
        &mut self,
        sockets: &mut Sockets,
        handle: SockRef,
        kind: SockKind,
        token: Token,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<(), ReactorError> {
        let slot = self.insert(handle, kind, token, interest, trigger)?;
        self.arm(sockets, slot);
        Ok(())
    }

    /// A new disarmed registration of `handle` under `token`: its slot.
    fn insert(
        &mut self,
        handle: SockRef,
        kind: SockKind,
        token: Token,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<usize, ReactorError> {
        if self.by_token.contains_key(&token) {
            return Err(ReactorError::TokenInUse(token));
        }
        let slot = self.free.pop().unwrap_or(self.slots.len());
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        let waker = Waker::from(Arc::new(SlotWaker {
            slot,
            ready: Arc::clone(&self.shared),
        }));
        self.slots[slot] = Some(Registration {
            token,
            handle,
            kind,
            interest,
            trigger,
            armed: false,
            opening: None,
            delivered: 0,
            latched: false,
            backlog: false,
            waker,
        });
        self.by_token.insert(token, slot);
        self.stats.registers += 1;
        Ok(slot)
    }

    /// As [`Reactor::register`], for one of a server's listening TCP
    /// sockets: while it listens, it is part of its port's listen
    /// descriptor (see the module's doc), and stays so when re-armed
    /// after each connection it carried.
    pub fn register_listener(
        &mut self,
        sockets: &mut Sockets,
        handle: SockRef,
        token: Token,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<(), ReactorError> {
        let slot = self.insert(handle, SockKind::Tcp, token, interest, trigger)?;
        if let Some(reg) = self.slots[slot].as_mut() {
            reg.backlog = true;
        }
        self.arm(sockets, slot);
        Ok(())
    }

    /// Re-arm a registration after its event was handled (a oneshot one is
    /// disarmed by its event). If the socket is ready already, the next
    /// poll delivers it. Bound: O(1).
    pub fn rearm(&mut self, sockets: &mut Sockets, token: Token) -> Result<(), ReactorError> {
        let slot = self.slot(token)?;
        self.stats.rearms += 1;
        self.arm(sockets, slot);
        Ok(())
    }

    /// Change what a registration asks for, and re-arm it. Bound: O(1).
    pub fn reregister(
        &mut self,
        sockets: &mut Sockets,
        token: Token,
        interest: Interest,
    ) -> Result<(), ReactorError> {
        let slot = self.slot(token)?;
        if let Some(reg) = self.slots[slot].as_mut() {
            reg.interest = interest;
        }
        self.rearm(sockets, token)
    }

    /// What a registration asks for (its last `register` or
    /// `reregister`). Bound: O(1).
    pub fn interest(&self, token: Token) -> Result<Interest, ReactorError> {
        let slot = self.slot(token)?;
        Ok(self.slots[slot]
            .as_ref()
            .map_or(Interest::READABLE, |r| r.interest))
    }

    /// The interface of a registration's socket (whose NAPI an app's busy
    /// poll takes, `sk_napi_id`). Bound: O(1).
    pub fn nic_of(&self, token: Token) -> Option<usize> {
        let slot = self.slot(token).ok()?;
        self.slots[slot].as_ref().map(|r| r.handle.nic())
    }

    /// Forget a registration; its token may be used again. A wake-up the
    /// socket still holds is ignored (or, if the slot is reused, costs one
    /// examination). Bound: O(1).
    pub fn deregister(&mut self, token: Token) -> Result<(), ReactorError> {
        let slot = self.slot(token)?;
        self.by_token.remove(&token);
        self.slots[slot] = None;
        self.free.push(slot);
        Ok(())
    }

    /// What a scan watches: the armed registrations, a server's
    /// listening sockets counted as its listen descriptors. Bound:
    /// O(registered).
    pub fn watched(&self) -> usize {
        let armed = self
            .slots
            .iter()
            .flatten()
            .filter(|r| r.armed && !r.behind_backlog())
            .count();
        armed + self.listen_fds
    }

    /// Tell a `scan` reactor that sockets may have changed (the netisr ran),
    /// as `selwakeup` wakes a process blocked in select: under `scan`, the
    /// first since a pollset's last scan is an arrival that wakes its
    /// pollers. O(pollsets).
    pub fn note_activity(&mut self) {
        for (set, dirty) in self.dirty.iter_mut().enumerate() {
            if !std::mem::replace(dirty, true) && self.backend == Backend::Scan {
                self.pollers.arrive(set);
            }
        }
    }

    /// Take what the sockets' wakers pushed since the last poll: under
    /// `ready`, each is an arrival for the registration's pollset (if it
    /// is armed) and joins the ready list; under `scan`, it latches its
    /// (edge or backlog) registration. Bound: O(wake-ups).
    pub fn collect_arrivals(&mut self) {
        let fired = self
            .shared
            .0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        for slot in fired {
            let reg = self.slots.get_mut(slot).and_then(Option::as_mut);
            match self.backend {
                Backend::Ready => {
                    if reg.is_some_and(|r| r.armed) {
                        self.pollers.arrive(self.pollers.set_of(slot));
                    }
                    self.pending.push(slot);
                }
                Backend::Scan => {
                    if let Some(reg) = reg {
                        reg.latched = true;
                    }
                }
            }
        }
    }

    /// Whether a poll may find an event (cheap: no socket is examined).
    pub fn has_events(&self) -> bool {
        match self.backend {
            Backend::Ready => {
                !self.pending.is_empty()
                    || !self.level.is_empty()
                    || self.shared.0.lock().map(|l| !l.is_empty()).unwrap_or(false)
            }
            Backend::Scan => self.dirty.iter().any(|&d| d),
        }
    }

    /// Mark in `sets` (one per pollset) the pollsets a poll may find an
    /// event in. Bound: O(ready + pollsets).
    pub fn sets_with_events(&self, sets: &mut [bool]) {
        let m = self.pollers.sets();
        match self.backend {
            Backend::Ready => {
                let shared = self.shared.0.lock().map(|l| !l.is_empty()).unwrap_or(false);
                if shared {
                    // Not taken yet: any pollset may have an arrival.
                    sets.fill(true);
                }
                for slot in self.pending.iter().chain(&self.level) {
                    if let Some(s) = sets.get_mut(slot % m) {
                        *s = true;
                    }
                }
            }
            Backend::Scan => {
                for (s, &d) in sets.iter_mut().zip(&self.dirty) {
                    *s |= d;
                }
            }
        }
    }

    /// Whether a poll of pollset `set` may find an event (cheap as
    /// [`Reactor::has_events`]; O(ready) with several pollsets).
    pub fn has_events_in(&self, set: usize) -> bool {
        let m = self.pollers.sets();
        let mine = |slot: &usize| slot % m == set;
        match self.backend {
            Backend::Ready => {
                self.pending.iter().any(mine)
                    || self.level.iter().any(mine)
                    || self.shared.0.lock().map(|l| !l.is_empty()).unwrap_or(false)
            }
            Backend::Scan => self.dirty.get(set).copied().unwrap_or(false),
        }
    }

    /// Fill `events` (cleared first) with up to `budget` events; returns
    /// the registrations the poll examined (what the cost model charges,
    /// `hw.sim.reactor_*`). Polls pollset 0: every registration while
    /// `kern.reactor.pollsets` is 1. Bound: O(ready) for `ready` (plus the level
    /// registrations delivered last time), O(registered) for `scan`; at
    /// most `budget` events either way.
    pub fn poll(&mut self, sockets: &mut Sockets, events: &mut Vec<Event>, budget: usize) -> u64 {
        self.poll_set(sockets, events, budget, 0)
    }

    /// As [`Reactor::poll`], for the registrations of pollset `set`
    /// (`slot % pollsets`). Bound: as `poll`, the ready list of every
    /// pollset walked once (`ready`), every slot looked at and those of
    /// `set` examined (`scan`).
    pub fn poll_set(
        &mut self,
        sockets: &mut Sockets,
        events: &mut Vec<Event>,
        budget: usize,
        set: usize,
    ) -> u64 {
        self.stats.polls += 1;
        self.round += 1;
        events.clear();
        self.collect_arrivals();
        let scanned = self.stats.scanned;
        match self.backend {
            Backend::Ready => self.poll_ready(sockets, events, budget, set),
            Backend::Scan => self.poll_scan(sockets, events, budget, set),
        }
        self.stats.events += events.len() as u64;
        self.stats.scanned - scanned
    }

    fn slot(&self, token: Token) -> Result<usize, ReactorError> {
        self.by_token
            .get(&token)
            .copied()
            .ok_or(ReactorError::UnknownToken(token))
    }

    /// Arm `slot`: snapshot whether it listens, and for `ready` register
    /// its wakers and queue it if it is ready already (no lost wake-up).
    fn arm(&mut self, sockets: &mut Sockets, slot: usize) {
        let set = self.pollers.set_of(slot);
        let Some(reg) = self.slots[slot].as_mut() else {
            return;
        };
        reg.armed = true;
        reg.opening = opening_state(sockets, reg);
        match self.backend {
            Backend::Ready => {
                arm_wakers(sockets, reg);
                if is_ready(sockets, reg) {
                    self.pending.push(slot);
                    // ep_insert/ep_modify wake the waiters too.
                    self.pollers.arrive(set);
                }
            }
            Backend::Scan => {
                if reg.trigger == Trigger::Edge || reg.behind_backlog() {
                    // Being armed counts as an arrival (epoll reports a
                    // descriptor ready when added; a SYN may be waiting on
                    // a listener); the wakers latch the next.
                    reg.latched = true;
                    arm_wakers(sockets, reg);
                }
                self.dirty[set] = true;
            }
        }
    }

    /// Examine `slot` for this poll if it is armed and not delivered yet
    /// this poll; deliver it if ready. O(1).
    fn examine(&mut self, sockets: &mut Sockets, slot: usize, events: &mut Vec<Event>) {
        let round = self.round;
        let Some(reg) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if !reg.armed || reg.delivered == round {
            return;
        }
        let backlog = self.backend == Backend::Scan && reg.behind_backlog();
        if backlog && !std::mem::take(&mut reg.latched) {
            // Nothing reached this listener: its accept queue is empty,
            // which the scan's look at the listen descriptor found.
            return;
        }
        self.stats.scanned += 1;
        let edge = reg.trigger == Trigger::Edge;
        if edge && self.backend == Backend::Scan && !backlog && !std::mem::take(&mut reg.latched) {
            // No arrival since the last scan: remaining readiness is old.
            return;
        }
        if !is_ready(sockets, reg) {
            if self.backend == Backend::Ready || edge || backlog {
                // Wakers are taken when they fire: listen again.
                arm_wakers(sockets, reg);
            }
            return;
        }
        reg.delivered = round;
        events.push(Event { token: reg.token });
        match reg.trigger {
            Trigger::Oneshot => reg.armed = false,
            Trigger::Level if self.backend == Backend::Ready => self.level.push(slot),
            Trigger::Level => {
                let set = self.pollers.set_of(slot);
                self.dirty[set] = true;
                // Still ready next scan: look again.
                reg.latched |= backlog;
            }
            Trigger::Edge => {
                // The next arrival is the next edge: a listener's or a
                // half-open socket's state now is the one to change from.
                reg.opening = opening_state(sockets, reg);
                arm_wakers(sockets, reg);
            }
        }
    }

    fn poll_ready(
        &mut self,
        sockets: &mut Sockets,
        events: &mut Vec<Event>,
        budget: usize,
        set: usize,
    ) {
        let m = self.pollers.sets();
        let mut work = std::mem::take(&mut self.pending);
        work.append(&mut self.level);
        let mut keep = Vec::new();
        for slot in work {
            if slot % m != set || events.len() >= budget {
                // Another pollset's, or what the budget cut off: it waits
                // for the next poll of its pollset, first in line.
                keep.push(slot);
                continue;
            }
            self.examine(sockets, slot, events);
        }
        self.pending = keep;
    }

    fn poll_scan(
        &mut self,
        sockets: &mut Sockets,
        events: &mut Vec<Event>,
        budget: usize,
        set: usize,
    ) {
        // select(2) ignores the kernel's ready list (collect_arrivals took
        // it: only edge and backlog registrations arm wakers under scan,
        // as their latch).
        let m = self.pollers.sets();
        self.dirty[set] = false;
        // Each listen descriptor is examined once (its accept queue), by
        // the pollset it belongs to (descriptor i in pollset i % m).
        self.stats.scanned += ((self.listen_fds + m - 1 - set) / m) as u64;
        let n = self.slots.len();
        for i in 0..n {
            let slot = (self.cursor[set] + i) % n;
            if slot % m != set {
                continue;
            }
            if events.len() >= budget {
                // Unexamined slots remain: the next poll resumes there.
                self.cursor[set] = slot;
                self.dirty[set] = true;
                return;
            }
            self.examine(sockets, slot, events);
        }
    }
}

/// The state a TCP registration's change of state is measured from: its
/// socket's, if listening or half-open. O(1).
fn opening_state(sockets: &Sockets, reg: &Registration) -> Option<tcp::State> {
    match reg.kind {
        SockKind::Tcp => Some(sockets.get::<tcp::Socket>(reg.handle).state())
            .filter(|s| matches!(s, tcp::State::Listen | tcp::State::SynReceived)),
        SockKind::Udp => None,
    }
}

/// Register the wakers `reg` asks for on its socket. O(1).
fn arm_wakers(sockets: &mut Sockets, reg: &Registration) {
    let (r, w) = (reg.interest.is_readable(), reg.interest.is_writable());
    match reg.kind {
        SockKind::Tcp => {
            let s = sockets.get_mut_quiet::<tcp::Socket>(reg.handle);
            if r {
                s.register_recv_waker(&reg.waker);
            }
            if w {
                s.register_send_waker(&reg.waker);
            }
        }
        SockKind::Udp => {
            let s = sockets.get_mut_quiet::<udp::Socket>(reg.handle);
            if r {
                s.register_recv_waker(&reg.waker);
            }
            if w {
                s.register_send_waker(&reg.waker);
            }
        }
    }
}

/// The readiness predicate of the contract above. O(1).
fn is_ready(sockets: &Sockets, reg: &Registration) -> bool {
    let (r, w) = (reg.interest.is_readable(), reg.interest.is_writable());
    match reg.kind {
        SockKind::Tcp => {
            let s = sockets.get::<tcp::Socket>(reg.handle);
            let state = s.state();
            // The app must act on data, on a close it has to answer
            // (CLOSE-WAIT) or reclaim (TIME-WAIT, CLOSED), or on a
            // listener or half-open socket that changed state (a SYN
            // arrived, the handshake completed, a RST or a timeout took it
            // back); other states wait for the peer.
            let act = matches!(
                state,
                tcp::State::CloseWait | tcp::State::TimeWait | tcp::State::Closed
            ) || reg.opening.is_some_and(|armed| armed != state);
            (r && (s.can_recv() || act)) || (w && s.can_send())
        }
        SockKind::Udp => {
            let s = sockets.get::<udp::Socket>(reg.handle);
            (r && s.can_recv()) || (w && s.can_send())
        }
    }
}

/// Declare `kern.reactor.*`: the backend knob, the counters, and the
/// pollers' knobs and counters ([`super::pollers::register_sysctl`]).
pub fn register_sysctl(mib: &mut pollsim_sysctl::Mib<super::Kernel>) {
    use super::Kernel;
    use crate::sat;
    super::pollers::register_sysctl(mib);
    mib.add_rw(
        "kern.reactor.backend",
        "Readiness delivery: 0 ready (kernel polling, O(ready)), 1 scan (user polling, O(n))",
        (0, 1),
        |_| (0, 1),
        |k: &Kernel| k.reactor.backend().code(),
        |k: &mut Kernel, v| {
            let b = Backend::from_code(v).ok_or_else(|| format!("{v}: not a backend"))?;
            k.reactor.set_backend(&mut k.netisr.sockets, b);
            Ok(())
        },
    );
    mib.add_ro_str(
        "kern.reactor.backend_name",
        "Name of the backend in use (ready or scan)",
        |k: &Kernel| k.reactor.backend().name().to_string(),
    );
    mib.add_ro(
        "kern.reactor.registered",
        "Sockets registered with the reactor",
        |k: &Kernel| sat(k.reactor.registered() as u64),
    );
    mib.add_ro(
        "kern.reactor.watched",
        "Registrations armed: what a scan examines (idle connections included)",
        |k: &Kernel| sat(k.reactor.watched() as u64),
    );
    type Get = fn(&ReactorStats) -> u64;
    let nodes: [(&str, &str, Get); 5] = [
        ("polls", "Reactor polls", |s| s.polls),
        ("events", "Readiness events delivered to apps", |s| s.events),
        (
            "scanned",
            "Sockets examined by polls (about one per event for ready, all for scan)",
            |s| s.scanned,
        ),
        (
            "rearms",
            "Registrations re-armed or modified (epoll_ctl MOD)",
            |s| s.rearms,
        ),
        ("registers", "Registrations made (epoll_ctl ADD)", |s| {
            s.registers
        }),
    ];
    for (name, descr, get) in nodes {
        mib.add_ro(&format!("kern.reactor.{name}"), descr, move |k: &Kernel| {
            sat(get(&k.reactor.stats))
        });
    }
}
