//! The Linux discipline: NAPI, the `NET_RX` softirq, ksoftirqd and threaded
//! NAPI.
//!
//! Mirrors, from `net/core/dev.c` and `kernel/softirq.c`:
//!
//! | Linux | here |
//! |---|---|
//! | a driver's ISR: mask the queue's IRQ, `napi_schedule()` | [`Napi::hardirq`] |
//! | `__irq_exit_rcu` → `invoke_softirq()` | [`Napi::irq_exit`] |
//! | `handle_softirqs()`: restart while pending, `< MAX_SOFTIRQ_TIME` (2 ms), `!need_resched()`, `--max_restart` (10); else `wakeup_softirqd()` | [`Napi::softirq_step`]'s tail |
//! | `net_rx_action()`: `netdev_budget`, `netdev_budget_usecs` in jiffies, each NAPI polled once a pass (the `repoll` list), `time_squeeze` | [`Napi::softirq_step`] |
//! | `__napi_poll()`: `work = poll(weight)`, `work == weight` → repoll | [`Napi::napi_poll`] |
//! | `napi_complete_done()`: `napi_defer_hard_irqs` and `gro_flush_timeout` keep the IRQ masked and arm the watchdog | [`Napi::complete_done`] |
//! | `napi_watchdog()` (hrtimer) → `__napi_schedule_irqoff()` | [`Napi::timer`] |
//! | `run_ksoftirqd()` as a `SCHED_OTHER` task | [`Thread::Ksoftirqd`] in the fair class |
//! | `napi_threaded_poll()` (`threaded = 1`) | [`Thread::Napi`] in the fair class |
//! | `__napi_poll()` under `NAPI_STATE_PREFER_BUSY_POLL`: a full poll completes (deferring) instead of repolling | [`Napi::napi_poll`] |
//! | `napi_busy_loop()`, `busy_poll_stop()`, `napi_suspend_irqs()`, `napi_resume_irqs()` | `napi_busy.rs` ([`Napi::busy_acquire`] and after) |
//!
//! Two rules for softirqs at interrupt exit, a knob
//! (`kern.softirq.defer_to_ksoftirqd`): 1 is "softirq: Let ksoftirqd do its
//! job" (4.9 to 6.4: nothing runs inline while ksoftirqd is runnable), 0 is
//! today's (Paolo Abeni's revert, d15121be7485, 6.5: inline at every
//! interrupt exit, the clock's included, bounded by 2 ms, 10 restarts and
//! `need_resched()`).
//!
//! Differs, and why: one unit of work is one NAPI poll (interrupts and the
//! clock preempt between polls, as they would preempt a softirq); there is
//! no GRO (smoltcp has none), so `gro_flush_timeout` matters only through
//! `napi_defer_hard_irqs`, as in Linux without GRO state; one NAPI per
//! interface, its weight `net.core.dev_weight` (Linux drivers pass
//! `NAPI_POLL_WEIGHT`, 64, the same default); softirq time is charged to
//! the interrupted task, as Linux does without `IRQ_TIME_ACCOUNTING`; only
//! `NET_RX` is modelled (egress runs as the kernel's netisr work).

use std::collections::VecDeque;

use pollsim_drivers::PollCmd;
use pollsim_sysctl::Mib;

use super::knobs::{self, Counter, Knob, u32_of};
use super::{Cx, Discipline, Kind, Runnable, Thread};
use crate::kernel::time::{Hz, Nanos};
use crate::kernel::{NetisrWork, poll_handler};

/// Default `net.core.netdev_budget`: frames one `net_rx_action` may take.
pub const NETDEV_BUDGET: u32 = 300;
/// Default `net.core.dev_weight` (and `NAPI_POLL_WEIGHT`): frames one poll
/// of one NAPI may take.
pub const NAPI_POLL_WEIGHT: u32 = 64;
/// `MAX_SOFTIRQ_RESTART`: passes of one `handle_softirqs` at most.
pub const MAX_SOFTIRQ_RESTART: u32 = 10;
/// `MAX_SOFTIRQ_TIME`: `msecs_to_jiffies(2)`, in ms.
pub const MAX_SOFTIRQ_TIME_MS: u64 = 2;
/// Largest accepted `netdev_budget` and `dev_weight` (Linux takes any
/// positive int; a bound keeps one unit of work bounded).
pub const MAX_BUDGET: u32 = 100_000;
/// The index of this CPU's backlog NAPI (`softnet_data.backlog`, RPS's
/// frames from other CPUs) among the NAPIs: past every interface's.
pub const BACKLOG_NAPI: usize = 64;
/// Largest accepted `netdev_budget_usecs`: one second.
pub const MAX_BUDGET_USECS: u32 = 1_000_000;
/// Largest accepted `napi_defer_hard_irqs` (Linux: `S32_MAX`).
pub const MAX_DEFER_HARD_IRQS: u32 = i32::MAX as u32;
/// Largest accepted `gro_flush_timeout`, ns: one second.
pub const MAX_GRO_FLUSH_TIMEOUT: u64 = 1_000_000_000;
/// Largest accepted `irq_suspend_timeout`, ns: ten seconds (Linux takes
/// any u64; a safety net longer than that is no net).
pub const MAX_IRQ_SUSPEND_TIMEOUT: u64 = 10_000_000_000;

#[path = "napi_busy.rs"]
mod busy;

/// Where a softirq run executes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    /// At interrupt exit, above every task.
    Inline,
    /// In ksoftirqd, a task of the fair class.
    Ksoftirqd,
}

/// One `net_rx_action` pass.
#[derive(Clone, Debug)]
struct Pass {
    budget: i64,
    time_limit: u64,
    list: VecDeque<usize>,
    repoll: Vec<usize>,
}

/// One `handle_softirqs` call.
#[derive(Clone, Debug)]
struct Run {
    ctx: Ctx,
    end: u64,
    max_restart: u32,
    pass: Option<Pass>,
}

/// One NAPI instance (one per interface) and its `dev.<if>.*` knobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NapiState {
    attached: bool,
    /// `NAPI_STATE_SCHED`: on the poll list, being polled, or its thread woken.
    sched: bool,
    /// `defer_hard_irqs_count`.
    defer_count: u32,
    /// The watchdog hrtimer's expiry.
    timer: Option<Nanos>,
    /// `dev.<if>.napi_defer_hard_irqs`.
    pub defer_hard_irqs: u32,
    /// `dev.<if>.gro_flush_timeout`, ns.
    pub gro_flush_timeout: u64,
    /// `dev.<if>.threaded`.
    pub threaded: bool,
    /// `NAPI_STATE_IN_BUSY_POLL`: an app's busy loop owns it.
    busy: bool,
    /// `NAPI_STATE_PREFER_BUSY_POLL`: an app that prefers busy polling
    /// wants it; a full softirq poll hands it over instead of repolling.
    prefer: bool,
    /// `dev.<if>.irq_suspend_timeout`, ns.
    pub irq_suspend_timeout: u64,
    /// Polls of this NAPI
    pub polls: u64,
    /// Completions (`napi_complete_done`) that unmasked the IRQ
    pub unmasks: u64,
    /// Completions that kept the IRQ masked (deferral)
    pub deferred: u64,
    /// Polls of this NAPI from an app's busy loop (user context)
    pub busy_polls: u64,
    /// IRQ suspensions (an app preferring busy polling got events)
    pub suspends: u64,
    /// Suspensions ended because an app's busy poll found nothing
    pub resumes: u64,
}

/// The softirq engine's counters. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NapiStats {
    /// net_rx_action passes cut short by netdev_budget or netdev_budget_usecs with work left
    pub time_squeeze: u64,
    /// Frames NAPI polls took into the stack
    pub processed: u64,
    /// Softirq runs started at an interrupt exit
    pub inline_runs: u64,
    /// Restarts of handle_softirqs with NET_RX still pending
    pub restarts: u64,
    /// Times the restart limits handed NET_RX to ksoftirqd
    pub ksoftirqd_wakeups: u64,
    /// Watchdog (gro_flush_timeout) expiries that scheduled a NAPI
    pub watchdogs: u64,
}

/// NAPI's state: the knobs, the per-CPU `softnet_data`, the NAPIs.
#[derive(Clone, Debug)]
pub struct Napi {
    hz: Hz,
    /// `net.core.netdev_budget`.
    pub budget: u32,
    /// `net.core.netdev_budget_usecs`.
    pub budget_usecs: u32,
    /// `net.core.dev_weight`: every NAPI's weight.
    pub weight: u32,
    /// `kern.softirq.defer_to_ksoftirqd`.
    pub defer_to_ksoftirqd: bool,
    napis: Vec<NapiState>,
    /// `softnet_data.poll_list`.
    poll_list: VecDeque<usize>,
    /// `NET_RX_SOFTIRQ` is raised.
    pending: bool,
    run: Option<Run>,
    /// ksoftirqd is runnable (`TASK_RUNNING`).
    ksoftirqd: bool,
    /// Counters.
    pub stats: NapiStats,
}

impl Default for Napi {
    fn default() -> Self {
        Napi::new(Hz::DEFAULT)
    }
}

impl Napi {
    /// Linux's defaults at `hz`: `netdev_budget_usecs` is two jiffies.
    pub fn new(hz: Hz) -> Napi {
        Napi {
            hz,
            budget: NETDEV_BUDGET,
            budget_usecs: 2 * 1_000_000 / hz.get(),
            weight: NAPI_POLL_WEIGHT,
            defer_to_ksoftirqd: false,
            napis: Vec::new(),
            poll_list: VecDeque::new(),
            pending: false,
            run: None,
            ksoftirqd: false,
            stats: NapiStats::default(),
        }
    }

    /// The NAPI of interface `i` (defaults if never touched).
    pub fn napi(&self, i: usize) -> NapiState {
        self.napis.get(i).copied().unwrap_or_default()
    }

    /// The NAPI of interface `i`, for writing.
    pub fn napi_mut(&mut self, i: usize) -> &mut NapiState {
        if self.napis.len() <= i {
            self.napis.resize(i + 1, NapiState::default());
        }
        &mut self.napis[i]
    }

    /// `usecs_to_jiffies`, rounding up as Linux does.
    fn usecs_to_jiffies(&self, us: u64) -> u64 {
        (us * u64::from(self.hz.get())).div_ceil(1_000_000)
    }

    /// Schedule this CPU's backlog NAPI (`rps_trigger_softirq`, after an
    /// IPI: frames another CPU handed). O(1).
    pub fn schedule_backlog(&mut self) {
        self.schedule(BACKLOG_NAPI);
    }

    /// `napi_schedule()`: unless already scheduled, put the NAPI on the
    /// poll list and raise `NET_RX` (or wake its thread). O(1).
    fn schedule(&mut self, i: usize) {
        let st = self.napi_mut(i);
        if st.sched {
            return;
        }
        st.sched = true;
        if !st.threaded {
            self.poll_list.push_back(i);
            self.pending = true;
        }
    }

    /// Whether softirq work may start now at an interrupt exit.
    fn may_run_inline(&self) -> bool {
        self.pending && self.run.is_none() && !(self.defer_to_ksoftirqd && self.ksoftirqd)
    }

    /// One poll of NAPI `n` with its weight (`__napi_poll` and the
    /// driver's poll: frames into the stack, then `napi_complete_done` if
    /// it took less than its weight). Returns the frames taken. Bound:
    /// `weight` frames.
    fn napi_poll(&mut self, cx: &mut Cx<'_>, n: usize) -> u32 {
        let weight = self.weight;
        if n == BACKLOG_NAPI {
            return self.backlog_poll(cx, weight);
        }
        let work = poll_handler(cx.ifs, n, cx.netisr, cx.now, PollCmd::PollOnly, weight);
        self.napi_mut(n).polls += 1;
        self.stats.processed += u64::from(work);
        if work < weight {
            self.complete_done(cx, n, work);
        } else if self.napi(n).prefer {
            // A busy poller waits for it: complete (the IRQ stays masked,
            // the watchdog armed) so that its busy loop can take it; with
            // no deferral to arm, it stays scheduled (the repoll).
            self.prefer_done(cx.now, n, work);
        }
        work
    }

    /// `process_backlog()`: up to `weight` frames from this CPU's RPS
    /// backlog into the stack (their driver's part was paid by the CPU
    /// that handed them); complete when it is empty. Bound: `weight` frames.
    fn backlog_poll(&mut self, cx: &mut Cx<'_>, weight: u32) -> u32 {
        let mut work = 0;
        while work < weight && cx.netisr.backlog_one(cx.now) {
            work += 1;
        }
        if let Some(ifn) = cx.ifs.first_mut() {
            cx.netisr.flush(0, ifn.nic.as_mut());
        }
        let st = self.napi_mut(BACKLOG_NAPI);
        st.polls += 1;
        self.stats.processed += u64::from(work);
        if cx.netisr.backlog_len() == 0 {
            self.napi_mut(BACKLOG_NAPI).sched = false;
        }
        work
    }

    /// `napi_complete_done(n, work)`: clear `SCHED`; with work, reload the
    /// deferral count; while it is positive (and `gro_flush_timeout` set),
    /// count it down, keep the IRQ masked and arm the watchdog; else
    /// unmask. O(1).
    fn complete_done(&mut self, cx: &mut Cx<'_>, n: usize, work: u32) {
        let now = cx.now;
        let st = self.napi_mut(n);
        if st.busy {
            // NAPIF_STATE_IN_BUSY_POLL: the busy loop owns it; the IRQ
            // stays masked until busy_poll_stop.
            return;
        }
        st.prefer = false;
        if work > 0 {
            st.defer_count = st.defer_hard_irqs;
        }
        let mut unmask = true;
        if st.defer_count > 0 {
            st.defer_count -= 1;
            if st.gro_flush_timeout > 0 {
                unmask = false;
                st.timer = Some(now + Nanos(st.gro_flush_timeout));
            }
        }
        st.sched = false;
        if unmask {
            st.unmasks += 1;
        } else {
            st.deferred += 1;
        }
        if unmask && st.attached {
            // The driver's DIM sample, then the unmask (e1000e_poll's order).
            let ifn = &mut cx.ifs[n];
            let stats = ifn.nic.stats();
            ifn.moderation.on_completion(now, &stats);
            ifn.nic.set_intr_enabled(true);
        }
    }

    /// One unit of a softirq run: one NAPI poll of the current
    /// `net_rx_action` pass (starting a pass first if none is under way),
    /// and at the end of a pass `handle_softirqs`' decision to restart,
    /// stop, or hand over to ksoftirqd. Bound: one poll of `weight` frames.
    fn softirq_step(&mut self, cx: &mut Cx<'_>) -> NetisrWork {
        let Some(mut run) = self.run.take() else {
            return NetisrWork::default();
        };
        let mut pass = run.pass.take().unwrap_or_else(|| {
            // __do_softirq: pending is cleared, then net_rx_action begins.
            self.pending = false;
            Pass {
                budget: i64::from(self.budget),
                time_limit: cx.jiffies + self.usecs_to_jiffies(u64::from(self.budget_usecs)),
                list: std::mem::take(&mut self.poll_list),
                repoll: Vec::new(),
            }
        });
        let mut work = NetisrWork::default();
        let mut done = true;
        if let Some(n) = pass.list.pop_front() {
            let w = self.napi_poll(cx, n);
            if w >= self.weight && self.napi(n).sched {
                pass.repoll.push(n);
            }
            if n == BACKLOG_NAPI {
                // The protocol only: the handing CPU took them from its ring.
                work.dispatched = w;
            } else {
                work.polled = w;
            }
            pass.budget -= i64::from(w);
            if pass.budget <= 0 || cx.jiffies >= pass.time_limit {
                self.stats.time_squeeze += 1;
            } else {
                done = pass.list.is_empty();
            }
        }
        if !done {
            run.pass = Some(pass);
            self.run = Some(run);
            return work;
        }
        // The pass ends: what is left, what was scheduled meanwhile, then
        // the repolls, become the poll list.
        let mut list = pass.list;
        list.extend(self.poll_list.drain(..));
        list.extend(pass.repoll);
        self.poll_list = list;
        if !self.poll_list.is_empty() {
            self.pending = true;
        }
        if !self.pending {
            if run.ctx == Ctx::Ksoftirqd {
                self.ksoftirqd = false;
            }
            return work;
        }
        if cx.jiffies < run.end && !cx.need_resched && {
            run.max_restart -= 1;
            run.max_restart > 0
        } {
            self.stats.restarts += 1;
            self.run = Some(run);
        } else if !self.ksoftirqd {
            self.ksoftirqd = true;
            self.stats.ksoftirqd_wakeups += 1;
        }
        work
    }

    fn start_run(&mut self, ctx: Ctx, jiffies: u64) {
        self.run = Some(Run {
            ctx,
            end: jiffies + MAX_SOFTIRQ_TIME_MS * u64::from(self.hz.get()) / 1000,
            max_restart: MAX_SOFTIRQ_RESTART,
            pass: None,
        });
    }

    fn forget(&mut self, i: usize) {
        self.poll_list.retain(|&n| n != i);
        if let Some(p) = self.run.as_mut().and_then(|r| r.pass.as_mut()) {
            p.list.retain(|&n| n != i);
            p.repoll.retain(|&n| n != i);
        }
    }
}

impl Discipline for Napi {
    fn kind(&self) -> Kind {
        Kind::Napi
    }

    fn attach(&mut self, cx: &mut Cx<'_>, i: usize) -> bool {
        let st = self.napi_mut(i);
        st.attached = true;
        st.sched = false;
        st.busy = false;
        st.prefer = false;
        st.defer_count = 0;
        st.timer = None;
        cx.ifs[i].nic.set_intr_enabled(true);
        true
    }

    fn detach(&mut self, _cx: &mut Cx<'_>, i: usize) {
        self.forget(i);
        let st = self.napi_mut(i);
        st.attached = false;
        st.sched = false;
        st.busy = false;
        st.prefer = false;
        st.timer = None;
    }

    /// The driver's ISR: mask the queue's interrupt, `napi_schedule()`.
    /// Moves no frame. O(1).
    fn hardirq(&mut self, cx: &mut Cx<'_>, i: usize) -> u32 {
        cx.ifs[i].nic.set_intr_enabled(false);
        self.schedule(i);
        0
    }

    /// `invoke_softirq()`: start a softirq run if `NET_RX` is pending and
    /// none is under way (`in_interrupt()`), unless the 2016–2023 rule
    /// leaves it to a runnable ksoftirqd.
    fn irq_exit(&mut self, cx: &mut Cx<'_>) {
        if self.may_run_inline() {
            self.stats.inline_runs += 1;
            self.start_run(Ctx::Inline, cx.jiffies);
        }
    }

    fn next_timer(&self) -> Option<Nanos> {
        self.napis.iter().filter_map(|n| n.timer).min()
    }

    /// `napi_watchdog()`: every expired timer schedules its NAPI (unless
    /// already scheduled).
    fn timer(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.napis.len() {
            if self.napis[i].timer.is_some_and(|t| t <= cx.now) {
                self.napis[i].timer = None;
                if self.napis[i].attached && !self.napis[i].sched {
                    self.stats.watchdogs += 1;
                    self.napis[i].prefer = false;
                    self.schedule(i);
                }
            }
        }
    }

    fn kernel_pending(&mut self, _cx: &Cx<'_>) -> bool {
        self.run.as_ref().is_some_and(|r| r.ctx == Ctx::Inline)
    }

    fn kernel_step(&mut self, cx: &mut Cx<'_>) -> NetisrWork {
        self.softirq_step(cx)
    }

    fn runnable_threads(&self, out: &mut Vec<Runnable>) {
        if self.ksoftirqd {
            out.push(Runnable {
                thread: Thread::Ksoftirqd,
                atomic: self.run.as_ref().is_some_and(|r| r.ctx == Ctx::Ksoftirqd),
            });
        }
        for (i, n) in self.napis.iter().enumerate() {
            if n.threaded && n.sched && n.attached {
                out.push(Runnable {
                    thread: Thread::Napi(i),
                    atomic: false,
                });
            }
        }
    }

    /// ksoftirqd: one unit of `handle_softirqs`, or sleep when nothing is
    /// pending. A NAPI thread: one `__napi_poll` (`napi_threaded_poll`;
    /// `cond_resched()` is the fair class's decision at the next unit).
    /// Bound: one poll of `weight` frames.
    fn thread_step(&mut self, cx: &mut Cx<'_>, t: Thread) -> NetisrWork {
        match t {
            Thread::Ksoftirqd => {
                if self.run.is_none() {
                    if !self.pending {
                        self.ksoftirqd = false;
                        return NetisrWork::default();
                    }
                    self.start_run(Ctx::Ksoftirqd, cx.jiffies);
                }
                self.softirq_step(cx)
            }
            Thread::Napi(i) => NetisrWork {
                polled: self.napi_poll(cx, i),
                ..NetisrWork::default()
            },
        }
    }
}

/// `net.core.*` and `kern.softirq.*` knobs.
const KNOBS: [Knob<Napi>; 4] = [
    Knob::new(
        "net.core.netdev_budget",
        "Maximum number of packets taken from all interfaces in one polling cycle (NET_RX action)",
        (1, MAX_BUDGET as i64),
        |n| n.budget.into(),
        |n, v| n.budget = u32_of(v),
    ),
    Knob::new(
        "net.core.netdev_budget_usecs",
        "Maximum number of microseconds in one NAPI polling cycle",
        (0, MAX_BUDGET_USECS as i64),
        |n| n.budget_usecs.into(),
        |n, v| n.budget_usecs = u32_of(v),
    ),
    Knob::new(
        "net.core.dev_weight",
        "The weight of a NAPI: frames one poll may take",
        (1, MAX_BUDGET as i64),
        |n| n.weight.into(),
        |n, v| n.weight = u32_of(v),
    ),
    Knob::new(
        "kern.softirq.defer_to_ksoftirqd",
        "1: softirqs wait for a runnable ksoftirqd (Linux 4.9-6.4); 0: run at every interrupt exit (6.5 on)",
        (0, 1),
        |n| n.defer_to_ksoftirqd.into(),
        |n, v| n.defer_to_ksoftirqd = v == 1,
    ),
];

/// The softnet and softirq counters.
const COUNTERS: [Counter<Napi>; 7] = [
    Counter {
        name: "net.core.softnet.time_squeeze",
        descr: "net_rx_action passes cut short by netdev_budget or netdev_budget_usecs with work left",
        read: |n| n.stats.time_squeeze,
    },
    Counter {
        name: "net.core.softnet.processed",
        descr: "Frames NAPI polls took into the stack",
        read: |n| n.stats.processed,
    },
    Counter {
        name: "kern.softirq.inline_runs",
        descr: "Softirq runs started at an interrupt exit",
        read: |n| n.stats.inline_runs,
    },
    Counter {
        name: "kern.softirq.restarts",
        descr: "Restarts of handle_softirqs with NET_RX still pending",
        read: |n| n.stats.restarts,
    },
    Counter {
        name: "kern.softirq.ksoftirqd_wakeups",
        descr: "Times the restart limits handed NET_RX to ksoftirqd",
        read: |n| n.stats.ksoftirqd_wakeups,
    },
    Counter {
        name: "net.core.softnet.watchdogs",
        descr: "Watchdog (gro_flush_timeout) expiries that scheduled a NAPI",
        read: |n| n.stats.watchdogs,
    },
    Counter {
        name: "kern.softirq.ksoftirqd_running",
        descr: "ksoftirqd is runnable (1) or asleep (0)",
        read: |n| n.ksoftirqd.into(),
    },
];

/// Registers `net.core.*`, `kern.softirq.*` and the softnet counters.
pub fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &Napi,
    get_mut: fn(&mut C) -> &mut Napi,
) {
    knobs::register(mib, "", &KNOBS, &COUNTERS, get, get_mut);
}

/// A NAPI never touched: what `dev.<if>.*` shows before the first write.
const UNTOUCHED: NapiState = NapiState {
    attached: false,
    sched: false,
    defer_count: 0,
    timer: None,
    defer_hard_irqs: 0,
    gro_flush_timeout: 0,
    threaded: false,
    busy: false,
    prefer: false,
    irq_suspend_timeout: 0,
    polls: 0,
    unmasks: 0,
    deferred: 0,
    busy_polls: 0,
    suspends: 0,
    resumes: 0,
};

/// `dev.<if>.*` NAPI knobs.
const IF_KNOBS: [Knob<NapiState>; 4] = [
    Knob::new(
        "napi_defer_hard_irqs",
        "NAPI completions with work that keep the IRQ masked and re-poll after gro_flush_timeout",
        (0, MAX_DEFER_HARD_IRQS as i64),
        |n| n.defer_hard_irqs.into(),
        |n, v| n.defer_hard_irqs = u32_of(v),
    ),
    Knob::new(
        "gro_flush_timeout",
        "Delay of the NAPI re-poll while hard IRQs are deferred, ns",
        (0, MAX_GRO_FLUSH_TIMEOUT.cast_signed()),
        |n| crate::sat(n.gro_flush_timeout),
        |n, v| n.gro_flush_timeout = v.unsigned_abs(),
    ),
    Knob {
        refuse: Some(|n| n.sched.then_some("busy: the NAPI is scheduled; retry")),
        ..Knob::new(
            "threaded",
            "NAPI polls in a kernel thread of its own (1) or in the NET_RX softirq (0)",
            (0, 1),
            |n| n.threaded.into(),
            |n, v| n.threaded = v == 1,
        )
    },
    Knob::new(
        "irq_suspend_timeout",
        "While an app preferring busy polling gets events, the NAPI's IRQ and softirq stay suspended this long at most, ns (0: no suspension)",
        (0, MAX_IRQ_SUSPEND_TIMEOUT.cast_signed()),
        |n| crate::sat(n.irq_suspend_timeout),
        |n, v| n.irq_suspend_timeout = v.unsigned_abs(),
    ),
];

/// `dev.<if>.*` NAPI counters.
const IF_COUNTERS: [Counter<NapiState>; 6] = [
    Counter {
        name: "napi_polls",
        descr: "Polls of this interface's NAPI",
        read: |n| n.polls,
    },
    Counter {
        name: "napi_unmasks",
        descr: "NAPI completions that unmasked the IRQ",
        read: |n| n.unmasks,
    },
    Counter {
        name: "napi_deferred",
        descr: "NAPI completions that kept the IRQ masked (deferral)",
        read: |n| n.deferred,
    },
    Counter {
        name: "napi_busy_polls",
        descr: "Polls of this interface's NAPI from an app's busy loop (user context)",
        read: |n| n.busy_polls,
    },
    Counter {
        name: "napi_suspends",
        descr: "IRQ suspensions: an app preferring busy polling got events (irq_suspend_timeout armed)",
        read: |n| n.suspends,
    },
    Counter {
        name: "napi_resumes",
        descr: "IRQ suspensions ended: an app's busy poll found nothing (the NAPI scheduled, deferral resumes)",
        read: |n| n.resumes,
    },
];

/// Registers `dev.<if>.napi_defer_hard_irqs`, `gro_flush_timeout`,
/// `threaded`, `irq_suspend_timeout` and the NAPI's counters for interface `i` under `prefix`.
pub fn register_if_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    prefix: &str,
    i: usize,
    get: fn(&C) -> &Napi,
    get_mut: fn(&mut C) -> &mut Napi,
) {
    knobs::register(
        mib,
        prefix,
        &IF_KNOBS,
        &IF_COUNTERS,
        move |c| get(c).napis.get(i).unwrap_or(&UNTOUCHED),
        move |c| get_mut(c).napi_mut(i),
    );
}
