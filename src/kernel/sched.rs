//! The scheduler of the one simulated CPU on the real clock.
//!
//! Strict priority, checked before every unit of work: the clock
//! interrupt (hardclock) > NIC interrupts (ISR) > netisr (polling chunks,
//! `ipintrq`, egress) > user (app steps, CPU burn in slices of
//! [`super::USER_SLICE`]) > idle (idle polling, or block in epoll until the
//! next interrupt). A raised interrupt is thus served before the next
//! netisr frame and before the next user slice: interrupts preempt.
//!
//! Mirrors the priority levels of a BSD kernel (splimp/splnet/spl0) and the
//! idle loop; differs in that "preemption" happens at unit boundaries (a
//! frame, a 5 µs slice), not at an arbitrary instruction.

use std::sync::atomic::{AtomicBool, Ordering};

use super::Kernel;
use super::clock::{Clock, RealClock, TickTimer};
use super::cpu::CpuState;
use super::os::Selector;
use super::time::Nanos;

/// When a run ends and how often the observer is called.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Stop after this long (None: until `stop` is set).
    pub duration: Option<Nanos>,
    /// Call the observer this often (the `-w` interval).
    pub report_every: Option<Nanos>,
}

/// What the scheduler calls besides the kernel's own work.
pub struct Hooks<'a> {
    /// Every `report_every`, as a user process (its time is charged to user).
    pub observe: &'a mut dyn FnMut(&mut Kernel, Nanos),
    /// After every clock tick, in the kernel (sys): the control socket. It
    /// must bound its own work per call.
    pub on_tick: &'a mut dyn FnMut(&mut Kernel),
}

/// Run `k` on the real clock until `stop` is set or the duration passes.
/// Once a second (every `kern.hz` ticks) the NICs' status is read, as a
/// status interrupt would, so `rx_missed` stays current in every mode.
pub fn run_real(
    k: &mut Kernel,
    clock: &mut RealClock,
    stop: &AtomicBool,
    opts: RunOptions,
    hooks: Hooks<'_>,
) -> nix::Result<()> {
    let start = clock.now();
    let mut timer = TickTimer::start(k.hz, start)?;
    let mut sel = Selector::new()?;
    sel.add_timer(std::os::fd::AsFd::as_fd(&timer))?;
    for (i, ifn) in k.ifs.iter().enumerate() {
        sel.add_irq(ifn.nic.irq_fd(), i)?;
    }
    let end = opts.duration.map(|d| start + d);
    let mut next_report = opts.report_every.map(|p| start + p);
    k.cpu.switch(start, CpuState::Idle);
    loop {
        let now = clock.now();
        if stop.load(Ordering::Relaxed) || end.is_some_and(|e| now >= e) {
            k.cpu.switch(now, CpuState::Idle);
            return Ok(());
        }
        if now >= timer.deadline() {
            let n = timer.take_expired();
            if n > 0 {
                preempting(k, now, CpuState::Intr);
                k.hardclock_cnt(now, n);
                if k.sched.ticks / u64::from(k.hz.get())
                    != (k.sched.ticks - n) / u64::from(k.hz.get())
                {
                    k.check_status();
                }
                k.cpu.switch(clock.now(), CpuState::Sys);
                (hooks.on_tick)(k);
                continue;
            }
        }
        if k.any_intr_enabled() {
            let mut mask = sel.pending_irqs();
            if mask != 0 {
                preempting(k, now, CpuState::Intr);
                while mask != 0 {
                    let i = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    k.isr(i);
                }
                continue;
            }
        }
        if let Some(r) = next_report
            && now >= r
        {
            k.cpu.switch(now, CpuState::User);
            (hooks.observe)(k, now);
            next_report = opts.report_every.map(|p| r + p);
            continue;
        }
        if k.netisr_pending() {
            preempting(k, now, CpuState::Sys);
            k.netisr_step(now);
            k.netisr_pollmore(clock.now());
        } else if k.user_runnable() {
            k.cpu.switch(now, CpuState::User);
            k.user_step(now, clock);
        } else if !k.poll.idlepoll_sleeping() && !k.poll_list.is_empty() {
            k.cpu.switch(now, CpuState::Sys);
            k.idle_poll(now);
        } else {
            k.cpu.switch(now, CpuState::Idle);
            let until = next_report.unwrap_or(now + Nanos::from_secs(1));
            let ms = until.since(now).0.div_ceil(1_000_000).min(1000);
            sel.wait(u16::try_from(ms).unwrap_or(1000));
        }
    }
}

/// Switch to a higher-priority state, counting a preemption if user work
/// was cut in the middle.
pub(super) fn preempting(k: &mut Kernel, now: Nanos, state: CpuState) {
    if k.cpu.switch(now, state) == CpuState::User && k.user_mid_work() {
        k.sched.preemptions += 1;
    }
}
