//! Busy polling from user context: a socket app that finds no readiness
//! spins polling the NIC's NAPI itself instead of sleeping
//! (`user.<app>.busy_poll`, `busy_poll_budget`, `prefer_busy_poll`).
//!
//! Mirrors epoll's busy poll (`fs/eventpoll.c`, Linux 6.13), the path of
//! an app that waits in epoll, as pollsim's apps wait in the reactor:
//!
//! | Linux | here |
//! |---|---|
//! | `ep_set_busy_poll_napi_id()`: the epoll set records the NAPI id of a socket that became ready (non-NAPI ids rejected) | [`BusyApp::napi`], set when the reactor delivers an event from an interface under `napi` |
//! | `ep_busy_loop_on()`: `busy_poll_usecs`, or `prefer_busy_poll` | [`BusyApp::enabled`] |
//! | `ep_busy_loop()` → `napi_busy_loop(napi_id, ep_busy_loop_end, prefer, budget)`: poll, until events are available or `busy_poll_usecs` passed (at least one poll) | [`Kernel::busy_step`], one poll a unit of work |
//! | `need_resched()` in the loop: `busy_poll_stop()`, `cond_resched()`, then take the NAPI again | [`Kernel::busy_release`] when another process gets the CPU, [`Kernel::busy_release_for_thread`] when a kernel thread does |
//! | the loop timed out: `napi_resume_irqs()` if prefer, and the NAPI id dropped until a socket is ready again | [`Kernel::busy_step`]'s timeout |
//! | `ep_poll()` returns events: `ep_suspend_napi_irqs()` if prefer | [`Kernel::busy_woke`] |
//!
//! The spin is the app's CPU time in the kernel: its polls, the frames
//! they take into the stack and the time it spins on an empty ring are
//! `sys` in `kern.cp_time`, part of `user.<app>.cpu_ns` and counted in
//! `user.<app>.busy_poll_ns`, as Linux charges a busy poll to the task's
//! system time. On virtual time an empty poll spins until the next thing
//! that can happen (an arrival, a tick, a timer), at most a user slice
//! ([`super::USER_SLICE`]) so that the run queue and the fair class
//! decide as often as for a CPU burn; the frames a poll takes cost what a
//! NAPI poll's cost (`hw.sim.rx_cost_ns + proto_cost_ns` each). On the
//! real clock the spin is real.
//!
//! Differs: the knob is per app (the process), as `EPIOCSPARAMS` is per
//! epoll instance; `SO_BUSY_POLL` on a blocking `read` is not modelled
//! (tcp-echo's connection threads block without busy polling); an
//! interface under another discipline has no NAPI, so an app's events
//! from it do not start a loop, as a socket without a NAPI id does not.

use pollsim_sysctl::Mib;

use super::Kernel;
use super::clock::Clock;
use super::cpu::CpuState;
use super::discipline::Kind;
use super::discipline::knobs::{self, Counter, Knob, u32_of};
use super::runq::Pid;
use super::time::Nanos;

/// Largest `user.<app>.busy_poll`, µs: one second (Linux takes up to
/// `S32_MAX`; one app spinning a second at a time is already the CPU).
pub const BUSY_POLL_MAX_USECS: u64 = 1_000_000;
/// Default `user.<app>.busy_poll_budget`: `BUSY_POLL_BUDGET`, what Linux
/// uses when `SO_BUSY_POLL_BUDGET` is unset.
pub const BUSY_POLL_BUDGET_DEFAULT: u32 = 8;
/// Largest `user.<app>.busy_poll_budget`: the `u16` of `SO_BUSY_POLL_BUDGET`
/// and `epoll_params` (above `NAPI_POLL_WEIGHT`, 64, Linux asks for
/// `CAP_NET_ADMIN`; pollsim runs as root).
pub const BUSY_POLL_BUDGET_MAX: u32 = 65_535;
/// Socket apps, by their index in token space (`apps::TOKEN_SPACE`).
const SOCKET_APPS: [&str; 3] = ["udp_sink", "tcp_echo", "http"];

/// One app's busy-poll counters. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusyStats {
    /// Busy loops started (waits for readiness that busy-polled first)
    pub loops: u64,
    /// NAPI polls the app's busy loops made (the final poll of each stop included)
    pub polls: u64,
    /// Frames the app's busy polls took into the stack itself
    pub frames: u64,
    /// CPU time spent in busy loops (polls and spinning on an empty ring), ns, in sys
    pub ns: u64,
    /// Busy loops that ended with no event (busy_poll passed): the app sleeps, the NAPI id dropped
    pub timeouts: u64,
    /// Loop iterations that found the NAPI scheduled by an interrupt or the softirq
    pub contended: u64,
}

/// One socket app's busy polling: its knobs, its counters, the loop under
/// way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyApp {
    /// `user.<app>.busy_poll`, µs (`SO_BUSY_POLL`, `busy_poll_usecs`).
    pub usecs: u64,
    /// `user.<app>.busy_poll_budget` (`SO_BUSY_POLL_BUDGET`).
    pub budget: u32,
    /// `user.<app>.prefer_busy_poll` (`SO_PREFER_BUSY_POLL`).
    pub prefer: bool,
    /// `ep->napi_id`: the interface whose NAPI the next loop polls.
    napi: Option<usize>,
    /// The loop under way, until this instant.
    deadline: Option<Nanos>,
    /// The loop owns the NAPI now (`NAPIF_STATE_IN_BUSY_POLL`).
    owned: bool,
    /// Events reached the app: its wait returns them.
    woke: bool,
    /// Counters.
    pub stats: BusyStats,
}

impl Default for BusyApp {
    fn default() -> Self {
        BusyApp {
            usecs: 0,
            budget: BUSY_POLL_BUDGET_DEFAULT,
            prefer: false,
            napi: None,
            deadline: None,
            owned: false,
            woke: false,
            stats: BusyStats::default(),
        }
    }
}

impl BusyApp {
    /// `ep_busy_loop_on`: a wait busy-polls first.
    pub fn enabled(&self) -> bool {
        self.usecs > 0 || self.prefer
    }

    /// Whether the app wants the CPU to busy-poll (a loop under way, or
    /// one to start at its next wait).
    pub fn wants_cpu(&self) -> bool {
        self.enabled() && (self.deadline.is_some() || self.napi.is_some())
    }

    /// Whether a loop is under way.
    pub fn looping(&self) -> bool {
        self.deadline.is_some()
    }
}

/// Every socket app's busy polling, and what the scheduler tells it.
#[derive(Clone, Debug, Default)]
pub struct BusyPoll {
    /// By the app's index in token space (udp_sink, tcp_echo, http).
    pub apps: [BusyApp; 3],
    /// The virtual scheduler's next event: an empty poll spins to here at
    /// most (`None` on the real clock, where the spin is real).
    pub horizon: Option<Nanos>,
}

impl BusyPoll {
    /// The app `app` (index in token space), if it is a socket app.
    pub fn app(&self, app: usize) -> Option<&BusyApp> {
        self.apps.get(app)
    }

    /// Whether any app busy-polls (byte-identical runs otherwise).
    pub fn any(&self) -> bool {
        self.apps.iter().any(BusyApp::enabled)
    }
}

impl Kernel {
    /// The reactor delivered `token`'s event to socket app `app`: the
    /// epoll set records the NAPI of the socket's interface
    /// (`ep_set_busy_poll_napi_id`), and the app's next wait returns
    /// events. O(1).
    pub(super) fn busy_event(&mut self, app: usize, token: super::reactor::Token) {
        let Some(b) = self.busy.apps.get(app) else {
            return;
        };
        if !b.enabled() {
            return;
        }
        let nic = self.reactor.nic_of(token).filter(|&i| {
            self.ifs.get(i).is_some_and(|f| f.discipline == Kind::Napi)
                && self.disc.napi.busy_pollable(i)
        });
        let b = &mut self.busy.apps[app];
        if nic.is_some() {
            b.napi = nic;
        }
        b.woke = true;
    }

    /// App `app`'s wait returns events (it is about to handle them): a
    /// loop under way stops (`busy_poll_stop`), and an app that prefers
    /// busy polling suspends its NAPI's IRQs (`ep_suspend_napi_irqs`).
    /// Charged to the app, in sys.
    pub(super) fn busy_woke(&mut self, app: usize, now: Nanos, clock: &mut dyn Clock) {
        let Some(b) = self.busy.apps.get_mut(app) else {
            return;
        };
        if !b.woke {
            return;
        }
        b.woke = false;
        let start = clock.now();
        self.cpu.switch(start, CpuState::Sys);
        self.busy_stop(app, now, clock);
        self.busy.apps[app].deadline = None;
        let b = self.busy.apps[app];
        if let (true, Some(nic)) = (b.prefer, b.napi) {
            self.disc.napi.suspend_irqs(nic, clock.now());
        }
        let end = clock.now();
        self.cpu.switch(end, CpuState::User);
        self.busy.apps[app].stats.ns += end.since(start).0;
    }

    /// One unit of app `app`'s busy loop (process `pid`, nothing else to
    /// do): start the loop if none is under way, take the NAPI if free,
    /// poll it with `busy_poll_budget`; an empty poll spins (on virtual
    /// time, to the next event, the loop's end or a user slice). Once
    /// `busy_poll` has passed with no event, the loop stops: the app
    /// sleeps, its NAPI id dropped, and under prefer the NAPI's IRQs
    /// resume (`napi_resume_irqs`). In sys, charged to the app. Bound:
    /// `busy_poll_budget` frames, twice at the stop.
    pub(super) fn busy_step(&mut self, app: usize, now: Nanos, clock: &mut dyn Clock) {
        let b = self.busy.apps[app];
        let Some(nic) = b.napi.filter(|&i| {
            self.ifs.get(i).is_some_and(|f| f.discipline == Kind::Napi)
                && self.disc.napi.busy_pollable(i)
        }) else {
            // The interface left NAPI: no NAPI id, no loop.
            let b = &mut self.busy.apps[app];
            (b.napi, b.deadline, b.owned) = (None, None, false);
            return;
        };
        let start = clock.now();
        self.cpu.switch(start, CpuState::Sys);
        let deadline = b.deadline.unwrap_or_else(|| {
            self.busy.apps[app].stats.loops += 1;
            now + Nanos::from_micros(b.usecs)
        });
        self.busy.apps[app].deadline = Some(deadline);
        if !self.busy.apps[app].owned {
            let owned = self.disc.napi.busy_acquire(nic, b.prefer);
            self.busy.apps[app].owned = owned;
            if !owned {
                self.busy.apps[app].stats.contended += 1;
            }
        }
        let frames = if self.busy.apps[app].owned {
            self.set_nic_time(clock.now());
            let (disc, mut cx) = self.split(clock.now());
            let n = disc.napi.busy_poll(&mut cx, nic, b.budget);
            self.busy_charge(app, n, clock);
            n
        } else {
            0
        };
        // A poll that took frames may have made events for the app: the
        // next unit's reactor poll tells (`ep_busy_loop_end`), so the loop
        // can only end empty-handed after an empty poll.
        if frames == 0
            && clock.now() < deadline
            && let Some(h) = self.busy.horizon
        {
            let until = h.min(deadline).min(clock.now() + super::USER_SLICE);
            if until > clock.now() {
                clock.burn(until.since(clock.now()));
            }
        }
        if frames == 0 && clock.now() >= deadline {
            let last = self.busy_stop(app, clock.now(), clock);
            let b = &mut self.busy.apps[app];
            b.deadline = None;
            if last == 0 {
                // Timed out: the NAPI id is dropped until a socket is
                // ready again, and under prefer the IRQs resume.
                b.stats.timeouts += 1;
                if let (true, Some(nic)) = (b.prefer, b.napi) {
                    self.disc.napi.resume_irqs(nic, self.sched.ticks);
                }
                self.busy.apps[app].napi = None;
            }
        }
        let end = clock.now();
        self.cpu.switch(end, CpuState::User);
        self.busy.apps[app].stats.ns += end.since(start).0;
    }

    /// The busy loop of app `app`, if it owns its NAPI, releases it
    /// (`busy_poll_stop`, its last poll charged). The loop itself goes on.
    /// Returns the frames that poll took.
    fn busy_stop(&mut self, app: usize, now: Nanos, clock: &mut dyn Clock) -> u32 {
        let n = self.busy_stop_poll(app, now);
        if let Some(n) = n {
            self.busy_charge(app, n, clock);
        }
        n.unwrap_or(0)
    }

    /// [`Kernel::busy_stop`]'s release and last poll, uncharged: the
    /// frames it took, if the loop owned the NAPI.
    fn busy_stop_poll(&mut self, app: usize, now: Nanos) -> Option<u32> {
        let b = self.busy.apps[app];
        self.busy.apps[app].owned = false;
        let (true, Some(nic)) = (b.owned, b.napi) else {
            return None;
        };
        self.set_nic_time(now);
        let (disc, mut cx) = self.split(now);
        Some(disc.napi.busy_poll_stop(&mut cx, nic, b.prefer, b.budget))
    }

    /// A poll of app `app`'s loop took `frames`: count them, and on
    /// virtual time charge what a NAPI poll of as many costs.
    fn busy_charge(&mut self, app: usize, frames: u32, clock: &mut dyn Clock) {
        self.busy_count(app, frames);
        if frames > 0
            && let Some(c) = self.cost
        {
            let base = u64::from(frames) * (c.rx_cost_ns + c.proto_cost_ns);
            clock.burn(Nanos(self.charge_handoff(base, c.proto_cost_ns)));
        }
    }

    /// Count a poll of app `app`'s loop that took `frames` (their replies
    /// need an egress pass).
    fn busy_count(&mut self, app: usize, frames: u32) {
        let s = &mut self.busy.apps[app].stats;
        s.polls += 1;
        s.frames += u64::from(frames);
        if frames > 0 {
            self.egress_pending = true;
        }
    }

    /// A kernel thread of the fair class gets the CPU: every busy loop
    /// that owns its NAPI releases it (`need_resched`). Returns the frames
    /// the last polls took, for the thread's unit of work to be charged
    /// them (they are counted as the app's busy-poll frames).
    pub(super) fn busy_release_for_thread(&mut self, now: Nanos) -> u32 {
        let mut frames = 0;
        for app in 0..self.busy.apps.len() {
            if let Some(n) = self.busy_stop_poll(app, now) {
                self.busy_count(app, n);
                frames += n;
            }
        }
        frames
    }

    /// Another process gets the CPU (`except` is the process that runs
    /// next): a busy loop that owns its NAPI releases it
    /// first (`need_resched` in `napi_busy_loop`), charged to its process.
    pub(super) fn busy_release(&mut self, except: Pid, now: Nanos, clock: &mut dyn Clock) {
        for app in 0..self.busy.apps.len() {
            if !self.busy.apps[app].owned {
                continue;
            }
            let Some(pid) = self.socket_pid(app) else {
                continue;
            };
            if pid == except {
                continue;
            }
            let start = clock.now();
            let state = self.cpu.switch(start, CpuState::Sys);
            self.busy_stop(app, now, clock);
            let end = clock.now();
            self.cpu.switch(end, state);
            self.busy.apps[app].stats.ns += end.since(start).0;
            self.runq.charge(pid, end.since(start));
        }
    }
}

/// The busy-poll state of app `app` (index in token space) of `k`.
fn app_of(k: &Kernel, app: usize) -> &BusyApp {
    &k.busy.apps[app]
}

/// `user.<app>.busy_poll*` knobs.
const KNOBS: [Knob<BusyApp>; 3] = [
    Knob::new(
        "busy_poll",
        "Microseconds the app busy-polls its NAPI when a wait for readiness finds nothing (SO_BUSY_POLL; 0: off)",
        (0, BUSY_POLL_MAX_USECS.cast_signed()),
        |b| crate::sat(b.usecs),
        |b, v| b.usecs = v.unsigned_abs(),
    ),
    Knob::new(
        "busy_poll_budget",
        "Frames one busy poll may take (SO_BUSY_POLL_BUDGET)",
        (1, BUSY_POLL_BUDGET_MAX as i64),
        |b| b.budget.into(),
        |b, v| b.budget = u32_of(v),
    ),
    Knob::new(
        "prefer_busy_poll",
        "The app pledges to busy-poll: with napi_defer_hard_irqs and gro_flush_timeout the NAPI's IRQ stays masked between its loops (SO_PREFER_BUSY_POLL)",
        (0, 1),
        |b| b.prefer.into(),
        |b, v| b.prefer = v == 1,
    ),
];

/// `user.<app>.busy_poll_*` counters.
const COUNTERS: [Counter<BusyApp>; 6] = [
    Counter {
        name: "busy_loops",
        descr: "Busy loops started (waits for readiness that busy-polled first)",
        read: |b| b.stats.loops,
    },
    Counter {
        name: "busy_polls",
        descr: "NAPI polls the app's busy loops made (the final poll of each stop included)",
        read: |b| b.stats.polls,
    },
    Counter {
        name: "busy_poll_frames",
        descr: "Frames the app's busy polls took into the stack itself",
        read: |b| b.stats.frames,
    },
    Counter {
        name: "busy_poll_ns",
        descr: "CPU time spent in busy loops (polls and spinning on an empty ring), ns, in sys",
        read: |b| b.stats.ns,
    },
    Counter {
        name: "busy_poll_timeouts",
        descr: "Busy loops that ended with no event (busy_poll passed): the app sleeps, its NAPI id dropped",
        read: |b| b.stats.timeouts,
    },
    Counter {
        name: "busy_poll_contended",
        descr: "Busy-loop iterations that found the NAPI scheduled by an interrupt or the softirq",
        read: |b| b.stats.contended,
    },
];

/// Registers `user.<app>.busy_poll`, `busy_poll_budget`,
/// `prefer_busy_poll` and the busy-poll counters of each socket app `k`
/// runs.
pub fn register_sysctl(mib: &mut Mib<Kernel>, k: &Kernel) {
    let running = [
        k.apps.udp_sink.is_some(),
        k.apps.tcp_echo.is_some(),
        k.apps.http.is_some(),
    ];
    for (app, name) in SOCKET_APPS.iter().enumerate() {
        if !running[app] {
            continue;
        }
        knobs::register(
            mib,
            &format!("user.{name}"),
            &KNOBS,
            &COUNTERS,
            move |k: &Kernel| app_of(k, app),
            move |k: &mut Kernel| &mut k.busy.apps[app],
        );
    }
}

#[cfg(test)]
#[path = "busy_poll_tests.rs"]
mod tests;
