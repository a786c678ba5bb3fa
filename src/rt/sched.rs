//! The scheduler of the one simulated CPU on the real clock.
//!
//! Strict priority, checked before every unit of work, as described in
//! [`crate::kernel::sched`]: hardclock > NIC interrupts > netisr > user >
//! idle. The idle loop follows `machdep.idle`: `hlt` blocks in epoll until
//! the next tick or interrupt; `spin` goes round the loop without blocking,
//! so the host core stays with pollsim (a hypervisor takes an idle vCPU
//! away and gives it back late), still counted as idle.
//!
//! Besides running the kernel it measures the host (see [`super::clock`]):
//! every stall the clock detects, and every hiccup (a unit of work that ran
//! past its bound while the thread ran, [`unit_done`]), is recorded with
//! the tick in which it came, every clock interrupt with how late it ran, and the lost polls,
//! short ticks and `ipintrq` drops that follow a stall in the same tick are
//! counted apart, so a reader can tell a host effect from a kernel effect.

use std::sync::atomic::{AtomicBool, Ordering};

use super::clock::{RealClock, TickTimer};
use super::os::Selector;
use crate::kernel::clock::Clock;
use crate::kernel::cpu::CpuState;
use crate::kernel::host::Idle;
use crate::kernel::sched::{Hooks, RunOptions, preempting};
use crate::kernel::time::Nanos;
use crate::kernel::{Kernel, Unit};

/// Run `k` on the real clock until `stop` is set or the duration (of wall
/// time) passes. Once a second (every `kern.hz` ticks) the NICs' status is
/// read, as a status interrupt would, so `rx_missed` stays current in
/// every mode. The observer gets the wall time (rates are per second of
/// the outside world); the kernel gets the clock's `now`.
pub fn run_real(
    k: &mut Kernel,
    clock: &mut RealClock,
    stop: &AtomicBool,
    opts: RunOptions,
    hooks: Hooks<'_>,
) -> nix::Result<()> {
    clock.configure(&k.host);
    let start = clock.now();
    let wall_start = clock.wall();
    let mut timer = TickTimer::start(k.hz, start)?;
    let mut sel = Selector::new()?;
    sel.add_timer(std::os::fd::AsFd::as_fd(&timer))?;
    for (i, ifn) in k.ifs.iter().enumerate() {
        sel.add_irq(ifn.nic.irq_fd(), i)?;
    }
    let end = opts.duration.map(|d| wall_start + d);
    let mut next_report = opts.report_every.map(|p| wall_start + p);
    k.cpu.switch(start, CpuState::Idle);
    loop {
        let now = clock.now();
        clock.take_stalls(|d, stolen| k.host.record_stall(d, stolen));
        timer.arm(k.host.idle == Idle::Hlt, clock)?;
        timer.rephase(clock)?;
        let wall = clock.wall();
        if stop.load(Ordering::Relaxed) || end.is_some_and(|e| wall >= e) {
            k.cpu.switch(now, CpuState::Idle);
            return Ok(());
        }
        if now >= timer.deadline() && tick(k, clock, &mut timer, now) {
            (hooks.on_tick)(k);
            clock.configure(&k.host);
            continue;
        }
        let raised = if k.any_intr_enabled() {
            sel.pending_irqs()
        } else {
            0
        };
        let mut mask = k.irq_lines(raised, now);
        let timer = k.timer_due(now);
        if mask != 0 || timer {
            preempting(k, now, CpuState::Intr);
            let drops = k.ipintrq.drops;
            let mut frames = 0;
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                frames += k.isr(i) as u64;
            }
            if timer {
                k.timers(clock.now());
            }
            k.irq_exit(clock.now());
            unit_done(k, clock, now, frames);
            if k.host.stalled_this_tick {
                k.host.stall_ipintrq_drops += k.ipintrq.drops - drops;
            }
            continue;
        }
        if let Some(r) = next_report
            && wall >= r
        {
            k.cpu.switch(now, CpuState::User);
            (hooks.observe)(k, wall);
            next_report = opts.report_every.map(|p| r + p);
            continue;
        }
        match k.next_unit(now) {
            Unit::Kernel => {
                preempting(k, now, CpuState::Sys);
                let w = k.netisr_step(now);
                unit_done(
                    k,
                    clock,
                    now,
                    u64::from(w.polled) + u64::from(w.queued) + u64::from(w.dispatched),
                );
                k.unit_done(clock.now());
            }
            Unit::Thread(t) => {
                preempting(k, now, CpuState::Sys);
                let w = k.thread_step(now, t);
                unit_done(k, clock, now, u64::from(w.polled) + u64::from(w.dispatched));
                k.unit_done(clock.now());
            }
            Unit::User => {
                k.cpu.switch(now, CpuState::User);
                k.user_step(now, clock);
                unit_done(k, clock, now, 0);
            }
            Unit::IdlePoll => {
                k.cpu.switch(now, CpuState::Sys);
                let w = k.idle_poll(now);
                unit_done(k, clock, now, u64::from(w.polled) + u64::from(w.queued));
            }
            Unit::Idle => {
                k.cpu.switch(now, CpuState::Idle);
                match k.host.idle {
                    Idle::Spin => {
                        std::hint::spin_loop();
                        unit_done(k, clock, now, 0);
                    }
                    Idle::Hlt => {
                        let mut until = next_report.unwrap_or(wall + Nanos::from_secs(1));
                        if let Some(d) = k.next_deadline() {
                            // A kernel timer (on the kernel's clock) comes first.
                            until = until.min(wall + d.since(now));
                        }
                        let ms = until.since(wall).0.div_ceil(1_000_000).min(1000);
                        sel.wait(u16::try_from(ms).unwrap_or(1000));
                        clock.resume();
                    }
                }
            }
        }
    }
}

/// A unit of work that began at `start` and moved `frames` frames is
/// done: if it ran past the longest it could take on a CPU of its own
/// ([`crate::kernel::host::HostStats::unit_bound`]) although the thread
/// was running (a stall in which it did not run is already off the clock),
/// the excess is a hiccup: the host's time charged to the thread (on this
/// kind of VM: a guest interrupt's VM exits, a tap read that takes 0.3 to
/// 2 ms for five frames). It is recorded as a stall and, when compensating,
/// taken off the kernel's clock before anything reads it, so that neither
/// kern_poll's `kern_load` nor the tick grid sees it.
fn unit_done(k: &mut Kernel, clock: &RealClock, start: Nanos, frames: u64) {
    // Reading the clock first takes a stall in the unit off it and queues
    // it, so the stall is recorded (and seen by the caller) at once.
    let took = clock.now().since(start);
    clock.take_stalls(|d, stolen| k.host.record_stall(d, stolen));
    let Some(bound) = k.host.unit_bound(frames) else {
        return;
    };
    if took > bound {
        let excess = Nanos(took.0 - bound.0);
        k.host.record_hiccup(excess, k.host.compensate);
        if k.host.compensate {
            clock.forgive(excess);
        }
    }
}

/// The clock interrupt, if the timer has expired: hardclock for every tick
/// that passed, a status check at each second, and the host's account of
/// the tick (its lateness; lost polls and short ticks after a stall).
/// Returns whether a tick was taken.
fn tick(k: &mut Kernel, clock: &RealClock, timer: &mut TickTimer, now: Nanos) -> bool {
    let due = timer.deadline();
    let n = timer.take_expired(now);
    if n == 0 {
        return false;
    }
    k.host.record_tick(now.since(due));
    preempting(k, now, CpuState::Intr);
    let (lost, short) = (k.poll.lost_polls(), k.poll.short_ticks());
    k.hardclock_cnt(now, n);
    if k.host.stalled_this_tick {
        k.host.stall_lost_polls += k.poll.lost_polls() - lost;
        k.host.stall_short_ticks += k.poll.short_ticks() - short;
    }
    k.host.stalled_this_tick = false;
    let hz = u64::from(k.hz.get());
    if k.sched.ticks / hz != (k.sched.ticks - n) / hz {
        k.check_status();
    }
    k.cpu.switch(clock.now(), CpuState::Sys);
    true
}
