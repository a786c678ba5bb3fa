//! Several pollers over one set of sockets, and the thundering herd.
//!
//! Mirrors the Erlang VM's poll threads and pollsets (`+IOt N` poll
//! threads, `+IOp M` pollsets; an fd goes to pollset `fd % M`, poll thread
//! `j` waits in pollset `j % M`; erts/emulator/internal_doc/CheckIO.md) and
//! Linux's two ways of waking pollers that wait for the same descriptors:
//!
//! - [`Wakeup::All`] (`kern.reactor.wakeup=all`): every poller waiting in
//!   the socket's pollset is woken by one arrival of readiness. This is
//!   what several epoll instances holding the same descriptor do without
//!   `EPOLLEXCLUSIVE` (epoll_ctl(2): "the default ... is for all epoll file
//!   descriptors to receive an event"; `ep_ptable_queue_proc` adds a plain,
//!   non-exclusive entry to the socket's wait queue), and what select and
//!   poll do (`selwakeup` wakes every thread selecting on the socket).
//! - [`Wakeup::Exclusive`] (`=exclusive`, `EPOLLEXCLUSIVE`, Linux 4.5): one
//!   waiting poller per arrival (`add_wait_queue_exclusive`; "one or more of
//!   the epoll file descriptors will receive an event"; the kernel wakes
//!   one when one waits). It is also what threads sharing one epoll
//!   instance get from its wait queue (`ep_poll` waits exclusively), and
//!   what ERTS's poll threads sharing a pollset get with their one-shot
//!   registrations.
//!
//! The poller that polls first takes the events; every other poller woken
//! for the same arrival finds nothing (a *wasted* wake-up) unless the
//! registration is level-triggered and still ready, when it is delivered
//! again (the accept herd: each woken thread is told, one succeeds).
//!
//! What an arrival is (`kern.reactor.ready_events`): with the `ready`
//! backend, a registration's socket waker firing while it is armed
//! (`sk_data_ready` → `ep_poll_callback`), and a registration armed (ADD,
//! MOD) while already ready (`ep_insert`/`ep_modify` wake the waiters:
//! a one-shot registration re-armed by the app with data left in its
//! socket); with `scan`, the netisr's first run since a pollset's last
//! scan (`selwakeup`; pollsim's scan has no per-socket wake-up, so any
//! netisr run counts). Every arrival wakes by the rule above.
//!
//! What differs, and why: pollers are not processes of the run queue.
//! With one poller (the default) it is the apps' own loop, polling when
//! they have handled every event, exactly as before; its wake-ups are
//! counted and cost nothing (the model charges no switch among the apps).
//! With several, they are dedicated poll threads: each woken one polls at
//! the next user step, in index order (readiness left over, with no
//! arrival, is polled when the apps have handled every event, as the one
//! poller does), and pays a switch-in
//! (`hw.sim.ctxsw_ns`, in sys) and its poll (`hw.sim.reactor_*`, in user),
//! both charged to the process its first event goes to (or to the last
//! poll's caller). Linux's re-wake of another waiter of one shared epoll
//! instance while a level-triggered item stays on its ready list
//! (`ep_scan_ready_list`) is not modelled: [`Wakeup::Exclusive`] wakes one
//! poller per arrival, as `EPOLLEXCLUSIVE` across instances does.

use super::Kernel;

/// Most pollers (`kern.reactor.pollers`): ERTS's bound on `+IOt`.
pub const POLLERS_MAX: usize = 1024;
/// Most pollsets (`kern.reactor.pollsets`): ERTS's bound on `+IOp`; never
/// more than the pollers, so that every pollset has a poller waiting in it.
pub const POLLSETS_MAX: usize = POLLERS_MAX;

/// How an arrival of readiness wakes the pollers waiting in its pollset
/// (`kern.reactor.wakeup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    /// Every waiting poller (no `EPOLLEXCLUSIVE`; select, poll).
    All,
    /// One waiting poller (`EPOLLEXCLUSIVE`).
    Exclusive,
}

impl Wakeup {
    /// The names `kern.reactor.wakeup` takes, in [`Wakeup::index`] order.
    pub const NAMES: [&'static str; 2] = ["all", "exclusive"];

    /// Its index in [`Wakeup::NAMES`].
    pub fn index(self) -> usize {
        match self {
            Wakeup::All => 0,
            Wakeup::Exclusive => 1,
        }
    }

    /// From its index in [`Wakeup::NAMES`].
    pub fn from_index(i: usize) -> Option<Wakeup> {
        match i {
            0 => Some(Wakeup::All),
            1 => Some(Wakeup::Exclusive),
            _ => None,
        }
    }
}

/// Counters of the pollers' wake-ups. Each doc line is the sysctl
/// description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeStats {
    /// Arrivals of readiness that may wake a poller (a socket's waker firing while armed, a registration armed while ready; under scan, the netisr's first run since a pollset's scan)
    pub ready_events: u64,
    /// Pollers woken from their wait by an arrival
    pub wakeups: u64,
    /// Woken pollers whose poll delivered no event
    pub wasted_wakeups: u64,
    /// Simulated CPU time of the pollers' switch-ins (hw.sim.ctxsw_ns each when pollers > 1; 0 on the real clock), ns
    pub wakeup_ns: u64,
}

/// The pollers, their pollsets and who is woken.
#[derive(Debug)]
pub struct Pollers {
    wakeup: Wakeup,
    sets: usize,
    /// One per poller: woken by an arrival, not polled since.
    woken: Vec<bool>,
    woken_n: usize,
    /// Counters.
    pub stats: WakeStats,
}

impl Default for Pollers {
    fn default() -> Self {
        Pollers::new()
    }
}

impl Pollers {
    /// One poller in one pollset, woken by every arrival.
    pub fn new() -> Pollers {
        Pollers {
            wakeup: Wakeup::All,
            sets: 1,
            woken: vec![false],
            woken_n: 0,
            stats: WakeStats::default(),
        }
    }

    /// `kern.reactor.pollers`.
    pub fn count(&self) -> usize {
        self.woken.len()
    }

    /// `kern.reactor.pollsets`.
    pub fn sets(&self) -> usize {
        self.sets
    }

    /// `kern.reactor.wakeup`.
    pub fn wakeup(&self) -> Wakeup {
        self.wakeup
    }

    /// Set `kern.reactor.wakeup`.
    pub fn set_wakeup(&mut self, w: Wakeup) {
        self.wakeup = w;
    }

    /// Set the number of pollers, `sets()..=POLLERS_MAX`; a poller
    /// removed forgets its wake-up.
    pub fn set_count(&mut self, n: usize) -> Result<(), String> {
        if !(self.sets..=POLLERS_MAX).contains(&n) {
            return Err(format!(
                "{n}: pollers must be in {}..={POLLERS_MAX} (at least kern.reactor.pollsets)",
                self.sets
            ));
        }
        self.woken.resize(n, false);
        self.woken_n = self.woken.iter().filter(|&&w| w).count();
        Ok(())
    }

    /// Set the number of pollsets, `1..=count()` (the reactor resizes its
    /// per-pollset state: [`super::reactor::Reactor::set_pollsets`]).
    pub(super) fn set_sets(&mut self, m: usize) -> Result<(), String> {
        if !(1..=self.count().min(POLLSETS_MAX)).contains(&m) {
            return Err(format!(
                "{m}: pollsets must be in 1..={} (at most kern.reactor.pollers)",
                self.count().min(POLLSETS_MAX)
            ));
        }
        self.sets = m;
        Ok(())
    }

    /// The pollset of the registration in `slot` (ERTS: `fd % pollsets`).
    pub fn set_of(&self, slot: usize) -> usize {
        slot % self.sets
    }

    /// An arrival of readiness in pollset `set`: wake the pollers waiting
    /// there by the rule. Bound: O(pollers / sets).
    pub fn arrive(&mut self, set: usize) {
        self.stats.ready_events += 1;
        let one = self.wakeup == Wakeup::Exclusive;
        for j in (set..self.woken.len()).step_by(self.sets) {
            if !self.woken[j] {
                self.woken[j] = true;
                self.woken_n += 1;
                self.stats.wakeups += 1;
                if one {
                    break;
                }
            }
        }
    }

    /// Whether any poller is woken and has not polled yet.
    pub fn any_woken(&self) -> bool {
        self.woken_n > 0
    }

    /// Poller `j` is about to poll: whether an arrival woke it (cleared).
    pub fn take_woken(&mut self, j: usize) -> bool {
        let w = std::mem::take(&mut self.woken[j]);
        self.woken_n -= usize::from(w);
        w
    }

    /// A poller polled and found `events`; `woken` if an arrival woke it.
    pub fn note_poll(&mut self, woken: bool, events: usize) {
        if woken && events == 0 {
            self.stats.wasted_wakeups += 1;
        }
    }
}

impl Kernel {
    /// One round of the dedicated pollers (`kern.reactor.pollers` > 1):
    /// every poller an arrival woke polls its pollset once, in index order,
    /// each paying a switch-in and its poll. Then, if `leftovers` (the
    /// apps have handled every event, when the one poller would poll),
    /// each pollset that has readiness left (a budget cut, a level
    /// registration still queued, a re-arm under `scan`) and that no
    /// poller polled in this round is polled by its first poller, which
    /// had not gone to sleep (no switch); gated so, a level registration
    /// that stays ready is delivered again once per batch the apps
    /// handle, not at every step (their queues stay bounded). Each poll
    /// is charged to the process of its first event, or to the last
    /// poll's. Bound: pollers + pollsets polls of at most `EVENT_BATCH`
    /// events each.
    pub(super) fn poller_round(&mut self, leftovers: bool, clock: &mut dyn super::clock::Clock) {
        self.reactor.collect_arrivals();
        let sets = self.reactor.pollers().sets();
        let mut polled = vec![false; sets];
        if self.reactor.pollers().any_woken() {
            for j in 0..self.reactor.pollers().count() {
                if self.reactor.pollers_mut().take_woken(j) {
                    self.poller_poll(j % sets, true, clock);
                    polled[j % sets] = true;
                }
            }
        }
        if leftovers && self.reactor.has_events() {
            let mut left = vec![false; sets];
            self.reactor.sets_with_events(&mut left);
            for set in (0..sets).filter(|&p| left[p] && !polled[p]) {
                self.poller_poll(set, false, clock);
            }
        }
    }

    /// A poller of pollset `set` polls it (after a switch-in if `woken`),
    /// hands the events to their processes and charges the poll.
    fn poller_poll(&mut self, set: usize, woken: bool, clock: &mut dyn super::clock::Clock) {
        let start = clock.now();
        if woken {
            // On virtual time only: on the real clock every poller is the
            // one host thread, and no switch happens to be timed.
            self.ctxsw(start, clock);
            let ns = self.cost.map_or(0, |c| c.ctxsw_ns);
            self.reactor.pollers_mut().stats.wakeup_ns += ns;
        }
        let examined = self.reactor.poll_set(
            &mut self.netisr.sockets,
            &mut self.events,
            super::EVENT_BATCH,
            set,
        );
        if let Some(cost) = self.cost {
            clock.burn(super::time::Nanos(
                cost.reactor_poll_ns(self.reactor.backend(), examined),
            ));
        }
        let n = self.events.len();
        self.reactor.pollers_mut().note_poll(woken, n);
        if let Some(pid) = self.dispatch_events() {
            let used = clock.now().since(start);
            self.runq.charge(pid, used);
            self.runq.note_reactor(pid, used);
        }
    }
}

/// Declare the pollers' knobs and counters under `kern.reactor.*`.
pub fn register_sysctl(mib: &mut pollsim_sysctl::Mib<Kernel>) {
    use crate::sat;
    let max = i64::try_from(POLLERS_MAX).unwrap_or(i64::MAX);
    mib.add_rw_uint(
        "kern.reactor.pollers",
        "Pollers waiting for readiness over the apps' sockets (ERTS +IOt); 1: the apps' own loop, more: dedicated poll threads, each wake-up paying hw.sim.ctxsw_ns",
        (1, max),
        move |k: &Kernel| (sat(k.reactor.pollers().sets() as u64), max),
        |k: &Kernel| sat(k.reactor.pollers().count() as u64),
        |k: &mut Kernel, v| {
            let n = usize::try_from(v).map_err(|e| e.to_string())?;
            k.reactor.pollers_mut().set_count(n)
        },
    );
    let sets_max = i64::try_from(POLLSETS_MAX).unwrap_or(i64::MAX);
    mib.add_rw_uint(
        "kern.reactor.pollsets",
        "Pollsets the registrations are spread over, registration slot % pollsets (ERTS +IOp); poller j waits in pollset j % pollsets",
        (1, sets_max),
        move |k: &Kernel| (1, sat(k.reactor.pollers().count() as u64).min(sets_max)),
        |k: &Kernel| sat(k.reactor.pollers().sets() as u64),
        |k: &mut Kernel, v| {
            let m = usize::try_from(v).map_err(|e| e.to_string())?;
            k.reactor.set_pollsets(m)
        },
    );
    mib.add_rw_choice(
        "kern.reactor.wakeup",
        "How one arrival of readiness wakes the pollers waiting in its pollset: all (no EPOLLEXCLUSIVE; select, poll: the thundering herd) or exclusive (EPOLLEXCLUSIVE: one)",
        &Wakeup::NAMES,
        |k: &Kernel| k.reactor.pollers().wakeup().index(),
        |k: &mut Kernel, i| {
            if let Some(w) = Wakeup::from_index(i) {
                k.reactor.pollers_mut().set_wakeup(w);
            }
        },
    );
    type Get = fn(&WakeStats) -> u64;
    let nodes: [(&str, &str, Get); 4] = [
        (
            "ready_events",
            "Arrivals of readiness that may wake a poller (a socket's waker firing while armed, a registration armed while ready; under scan, the netisr's first run since a pollset's scan)",
            |s| s.ready_events,
        ),
        (
            "wakeups",
            "Pollers woken from their wait by an arrival",
            |s| s.wakeups,
        ),
        (
            "wasted_wakeups",
            "Woken pollers whose poll delivered no event",
            |s| s.wasted_wakeups,
        ),
        (
            "wakeup_ns",
            "Simulated CPU time of the pollers' switch-ins (hw.sim.ctxsw_ns each when pollers > 1; 0 on the real clock), ns",
            |s| s.wakeup_ns,
        ),
    ];
    for (name, descr, get) in nodes {
        mib.add_ro(&format!("kern.reactor.{name}"), descr, move |k: &Kernel| {
            sat(get(&k.reactor.pollers().stats))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pollers(n: usize, sets: usize, w: Wakeup) -> Pollers {
        let mut p = Pollers::new();
        p.set_count(n).unwrap();
        p.set_sets(sets).unwrap();
        p.set_wakeup(w);
        p
    }

    /// Which pollers are woken, taking their wake-ups.
    fn take_all(p: &mut Pollers) -> Vec<usize> {
        (0..p.count()).filter(|&j| p.take_woken(j)).collect()
    }

    #[test]
    fn one_arrival_wakes_every_waiting_poller_or_one() {
        let mut all = pollers(4, 1, Wakeup::All);
        all.arrive(0);
        all.arrive(0);
        assert_eq!(take_all(&mut all), vec![0, 1, 2, 3], "the herd");
        assert_eq!((all.stats.ready_events, all.stats.wakeups), (2, 4));
        let mut one = pollers(4, 1, Wakeup::Exclusive);
        one.arrive(0);
        assert_eq!(take_all(&mut one), vec![0]);
        // Arrivals before any poll wake one waiting poller each.
        for _ in 0..6 {
            one.arrive(0);
        }
        assert_eq!(take_all(&mut one), vec![0, 1, 2, 3], "at most all");
        assert_eq!((one.stats.ready_events, one.stats.wakeups), (7, 5));
        assert!(!one.any_woken());
    }

    #[test]
    fn an_arrival_wakes_only_the_pollers_of_its_pollset() {
        // Poller j waits in pollset j % 2: 0 and 2 in set 0, 1 and 3 in 1.
        let mut p = pollers(4, 2, Wakeup::All);
        assert_eq!((p.set_of(6), p.set_of(7)), (0, 1), "slot % pollsets");
        p.arrive(1);
        assert_eq!(take_all(&mut p), vec![1, 3]);
        p.set_wakeup(Wakeup::Exclusive);
        p.arrive(0);
        assert_eq!(take_all(&mut p), vec![0]);
    }

    #[test]
    fn a_woken_poller_that_finds_nothing_is_wasted() {
        let mut p = pollers(2, 1, Wakeup::All);
        p.arrive(0);
        let (a, b) = (p.take_woken(0), p.take_woken(1));
        p.note_poll(a, 1);
        p.note_poll(b, 0);
        p.note_poll(false, 0); // not woken: a poll, not a wake-up
        assert_eq!(p.stats.wasted_wakeups, 1);
    }

    #[test]
    fn counts_are_bounded_and_pollsets_never_outnumber_pollers() {
        let mut p = Pollers::new();
        assert!(p.set_count(0).is_err());
        assert!(p.set_count(POLLERS_MAX + 1).is_err());
        assert!(p.set_sets(2).is_err(), "one poller, one pollset");
        p.set_count(POLLERS_MAX).unwrap();
        p.set_sets(8).unwrap();
        assert!(p.set_count(7).is_err(), "below the pollsets");
        assert!(p.set_sets(0).is_err());
        assert_eq!((p.count(), p.sets()), (POLLERS_MAX, 8));
        p.arrive(3);
        p.set_count(8).unwrap();
        assert!(p.any_woken(), "poller 3 kept its wake-up");
        p.set_count(8).unwrap();
        assert_eq!(take_all(&mut p), vec![3]);
    }
}
