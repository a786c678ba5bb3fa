//! The scheduler of the one simulated CPU on a virtual clock: the
//! discrete-event counterpart of [`super::sched::run_real`].
//!
//! Same priority order, checked before every unit of work, and the same
//! [`Kernel`] methods: the clock interrupt (hardclock) > NIC interrupts
//! (ISR) > the observer > netisr > user (app steps, CPU burn in slices of
//! [`super::USER_SLICE`]) > idle polling > idle. What differs is where time
//! comes from:
//!
//! - instead of a timerfd, the next tick deadline is known; instead of
//!   epoll, the [`World`] (the NICs' arrival sources, simulated clients)
//!   says which interrupt lines are raised and when its next event is due;
//! - instead of measuring CPU time, each unit of work advances the
//!   [`VirtualClock`] by the kernel's [`CostModel`] (`hw.sim.*`), and an
//!   app's `work_ns` by `Clock::burn`;
//! - instead of blocking in `epoll_wait`, idle time is skipped to the next
//!   event; an idle poll that finds nothing spins, in sys, until then.
//!
//! Arrivals that fall inside a unit of work are delivered when the clock
//! passes them (at the next unit boundary, in order, a full ring counting
//! `rx_missed`), and an interrupt raised during netisr or user work
//! preempts at the next boundary, exactly as on the real clock.

use super::clock::{Clock, VirtualClock};
use super::cost::CostModel;
use super::cpu::CpuState;
use super::sched::{Hooks, preempting};
use super::time::Nanos;
use super::{Kernel, NetisrWork, Unit};

/// Everything outside the simulated CPU that makes events happen.
pub trait World {
    /// Deliver every external event due at or before `now` (frames reach
    /// NIC rings, clients react to what the kernel sent).
    fn advance(&mut self, now: Nanos);
    /// When the next external event is due, if any (after `advance(now)`,
    /// strictly later than `now`).
    fn next_event(&self) -> Option<Nanos>;
    /// Interfaces whose interrupt line is raised, as a bit mask (bit `i`
    /// for `k.ifs[i]`), as `Selector::pending_irqs` on the real clock.
    fn pending_irqs(&self) -> u64;
}

/// The virtual scheduler's own state: the tick and report deadlines, kept
/// across calls so that a run can be cut into windows.
#[derive(Debug, Clone)]
pub struct VirtualSched {
    next_tick: Nanos,
    period: Nanos,
    next_report: Option<Nanos>,
    report_every: Option<Nanos>,
}

impl VirtualSched {
    /// Start ticking at `k.hz`, the first tick one period after `start`;
    /// call the observer every `report_every`.
    pub fn new(k: &mut Kernel, start: Nanos, report_every: Option<Nanos>) -> VirtualSched {
        VirtualSched::staggered(k, start, Nanos(0), report_every)
    }

    /// As [`VirtualSched::new`], the first tick `phase` later: CPU `c` of
    /// `n` ticks `c/n` of a period after CPU 0, so that the CPUs' clock
    /// interrupts (and the polling they drive) do not fire together.
    pub fn staggered(
        k: &mut Kernel,
        start: Nanos,
        phase: Nanos,
        report_every: Option<Nanos>,
    ) -> VirtualSched {
        k.cpu.switch(start, CpuState::Idle);
        let period = k.hz.tick();
        VirtualSched {
            next_tick: start + period + phase,
            period,
            next_report: report_every.map(|p| start + p),
            report_every,
        }
    }

    /// Call the observer every `every`, the first time one interval after
    /// `now`.
    pub fn set_report_every(&mut self, now: Nanos, every: Option<Nanos>) {
        self.report_every = every;
        self.next_report = every.map(|p| now + p);
    }

    /// Run `k` until the clock reaches `end` (a unit under way when it is
    /// reached completes first, as on the real clock). The span of the
    /// current CPU state is closed at the end, so `kern.cp_time` is exact.
    pub fn run_until(
        &mut self,
        k: &mut Kernel,
        clock: &mut VirtualClock,
        world: &mut dyn World,
        end: Nanos,
        hooks: &mut Hooks<'_>,
    ) {
        loop {
            // Read each time round: a sysctl may change it mid-run.
            let cost = k.cost.unwrap_or_default();
            let now = clock.now();
            world.advance(now);
            if now >= end {
                let state = k.cpu.state();
                k.cpu.switch(now, state);
                return;
            }
            if now >= self.next_tick {
                self.tick(k, clock, &cost, hooks);
                continue;
            }
            if self.interrupts(k, clock, world, &cost) {
                continue;
            }
            if let Some(r) = self.next_report
                && now >= r
            {
                k.cpu.switch(now, CpuState::User);
                (hooks.observe)(k, now);
                self.next_report = self.report_every.map(|p| r + p);
                continue;
            }
            self.lower_priorities(k, clock, world, end, &cost);
        }
    }

    /// One unit below the interrupts, highest first: netisr, user, idle
    /// polling, idle.
    fn lower_priorities(
        &mut self,
        k: &mut Kernel,
        clock: &mut VirtualClock,
        world: &dyn World,
        end: Nanos,
        cost: &CostModel,
    ) {
        let now = clock.now();
        // run_real asks epoll for raised lines before each unit while
        // one is unmasked; that check is charged to the unit.
        let check = if k.any_intr_enabled() {
            cost.sched_cost_ns
        } else {
            0
        };
        match k.next_unit(now) {
            Unit::Kernel => {
                preempting(k, now, CpuState::Sys);
                let w = k.netisr_step(now);
                let ns = k.charge_handoff(work_ns(cost, &w), cost.proto_cost_ns);
                clock.advance(Nanos(ns + check));
                k.unit_done(clock.now());
            }
            Unit::Thread(t) => {
                preempting(k, now, CpuState::Sys);
                let w = k.thread_step(now, t);
                let ns = k.charge_handoff(work_ns(cost, &w), cost.proto_cost_ns);
                clock.advance(Nanos(ns + check));
                k.unit_done(clock.now());
            }
            Unit::User => {
                k.cpu.switch(now, CpuState::User);
                if k.busy.any() {
                    // An empty busy poll spins until something can happen.
                    k.busy.horizon = Some(self.wake_at(k, world, now, end));
                }
                k.user_step(now, clock);
                clock.advance(Nanos(check));
            }
            Unit::IdlePoll => {
                k.cpu.switch(now, CpuState::Sys);
                let w = k.idle_poll(now);
                if w.polled + w.queued == 0 {
                    // The idle poller spins on empty rings until something
                    // happens: skip there, the time charged to sys.
                    clock.skip_to(self.wake_at(k, world, now, end));
                } else {
                    let ns = k.charge_handoff(work_ns(cost, &w), cost.proto_cost_ns);
                    clock.advance(Nanos(ns));
                }
            }
            Unit::Idle => {
                k.cpu.switch(now, CpuState::Idle);
                clock.skip_to(self.wake_at(k, world, now, end));
            }
        }
    }

    /// The clock interrupt: every tick due, then once a second a status
    /// read of every NIC, then the `on_tick` hook in sys.
    fn tick(
        &mut self,
        k: &mut Kernel,
        clock: &mut VirtualClock,
        cost: &CostModel,
        hooks: &mut Hooks<'_>,
    ) {
        let now = clock.now();
        let n = now.since(self.next_tick).0 / self.period.0 + 1;
        self.next_tick = Nanos(self.next_tick.0 + n * self.period.0);
        preempting(k, now, CpuState::Intr);
        for _ in 0..n {
            k.hardclock(now);
        }
        clock.advance(Nanos(n * cost.tick_cost_ns));
        let hz = u64::from(k.hz.get());
        if k.sched.ticks / hz != (k.sched.ticks - n) / hz {
            k.check_status();
            clock.advance(Nanos(k.ifs.len() as u64 * cost.status_cost_ns));
        }
        k.cpu.switch(clock.now(), CpuState::Sys);
        (hooks.on_tick)(k);
    }

    /// Serve every raised interrupt line the CPU takes now, and every
    /// discipline timer due; false if there was none.
    fn interrupts(
        &mut self,
        k: &mut Kernel,
        clock: &mut VirtualClock,
        world: &dyn World,
        cost: &CostModel,
    ) -> bool {
        let now = clock.now();
        let raised = if k.any_intr_enabled() {
            world.pending_irqs()
        } else {
            0
        };
        let mut mask = k.irq_lines(raised, now);
        let timer = k.timer_due(now);
        let ipi = k.ipi_pending();
        if mask == 0 && !timer && !ipi {
            return false;
        }
        preempting(k, now, CpuState::Intr);
        if ipi {
            // Another CPU handed frames to this one's backlog.
            let ns = k.take_ipis();
            clock.advance(Nanos(ns));
        }
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let frames = k.isr(i) as u64;
            clock.advance(Nanos(cost.intr_cost_ns + frames * cost.rx_cost_ns));
        }
        if timer {
            let n = u64::from(k.timers(clock.now()));
            clock.advance(Nanos(n * cost.intr_cost_ns));
        }
        k.irq_exit(clock.now());
        true
    }

    /// When an idle CPU next has something to do: a tick, a kernel timer,
    /// a sleeping user process's wake-up, an external event, a report.
    fn wake_at(&self, k: &Kernel, world: &dyn World, now: Nanos, end: Nanos) -> Nanos {
        let mut t = self.next_tick.min(end);
        if let Some(d) = k.next_deadline() {
            t = t.min(d);
        }
        if let Some(e) = world.next_event() {
            t = t.min(e);
        }
        if let Some(r) = self.next_report {
            t = t.min(r);
        }
        t.max(Nanos(now.0 + 1))
    }
}

/// The cost of a unit of kernel work: frames polled into the stack pay the
/// driver and the protocol, frames polled into `ipintrq` (deferred
/// dispatch) the driver now, frames from `ipintrq` the protocol only.
fn work_ns(cost: &CostModel, w: &NetisrWork) -> u64 {
    u64::from(w.polled) * (cost.rx_cost_ns + cost.proto_cost_ns)
        + u64::from(w.queued) * cost.rx_cost_ns
        + u64::from(w.dispatched) * cost.proto_cost_ns
        + u64::from(w.status_checks) * cost.status_cost_ns
}
