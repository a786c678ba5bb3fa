//! Busy polling: an app's busy loop polling a NAPI from user context,
//! preferred busy polling and IRQ suspension (the NAPI side; the app side
//! is `kernel/busy_poll.rs`).
//!
//! Mirrors, from `net/core/dev.c` (Linux 6.13):
//!
//! | Linux | here |
//! |---|---|
//! | `napi_busy_loop()`: take the NAPI unless it is scheduled (`NAPIF_STATE_SCHED`); if it is, and the caller prefers busy polling, set `NAPI_STATE_PREFER_BUSY_POLL` and spin | [`Napi::busy_acquire`] |
//! | its `napi_poll(napi, budget)` with `NAPIF_STATE_IN_BUSY_POLL` set, so `napi_complete_done()` keeps the IRQ masked | [`Napi::busy_poll`] |
//! | `busy_poll_stop()`: under prefer, reload `defer_hard_irqs_count` and arm the watchdog for `gro_flush_timeout`; one more poll "to re-enable device interrupts"; a full one hands the NAPI to the softirq (or, deferred, just releases it) | [`Napi::busy_poll_stop`] |
//! | `__napi_poll()` with `PREFER_BUSY_POLL`: a full poll completes instead of repolling | [`Napi::prefer_done`] |
//! | `napi_suspend_irqs()`: the watchdog re-armed for `irq_suspend_timeout` | [`Napi::suspend_irqs`] |
//! | `napi_resume_irqs()`: with `irq_suspend_timeout` set, `napi_schedule()` under `local_bh_disable`/`enable` (the softirq runs at once) | [`Napi::resume_irqs`] |
//!
//! Differs: the NAPI id is the interface index (one NAPI per interface);
//! the softirq `local_bh_enable` runs in [`Napi::resume_irqs`] starts as
//! an inline run, the kernel's next unit of work, above the app.

use super::{Cx, Napi, poll_handler};
use crate::kernel::time::Nanos;
use pollsim_drivers::PollCmd;

impl Napi {
    /// Whether interface `i` has a NAPI an app may busy-poll (it is
    /// attached to this discipline: `napi_id_valid`).
    pub fn busy_pollable(&self, i: usize) -> bool {
        self.napi(i).attached
    }

    /// Whether an app's busy loop owns NAPI `i`.
    pub fn busy_owned(&self, i: usize) -> bool {
        self.napi(i).busy
    }

    /// `napi_busy_loop`'s acquisition of NAPI `i`: taken (and owned until
    /// [`Napi::busy_poll_stop`]) unless the softirq or an interrupt has it
    /// scheduled; then a caller that prefers busy polling marks it
    /// (`NAPI_STATE_PREFER_BUSY_POLL`) so the softirq hands it over.
    /// Returns whether the caller owns it. O(1).
    pub fn busy_acquire(&mut self, i: usize, prefer: bool) -> bool {
        let st = self.napi_mut(i);
        if !st.attached {
            return false;
        }
        if st.sched {
            if prefer {
                st.prefer = true;
            }
            return false;
        }
        st.sched = true;
        st.busy = true;
        st.prefer = prefer;
        true
    }

    /// One poll of NAPI `i` from the busy loop that owns it, `budget`
    /// frames at most; `napi_complete_done` returns early while it is
    /// owned, so the IRQ stays as it is (masked once a frame raised it).
    /// Returns the frames taken. Bound: `budget` frames.
    pub fn busy_poll(&mut self, cx: &mut Cx<'_>, i: usize, budget: u32) -> u32 {
        debug_assert!(self.napi(i).busy, "busy_poll without owning the NAPI");
        let work = poll_handler(cx.ifs, i, cx.netisr, cx.now, PollCmd::PollOnly, budget);
        self.napi_mut(i).busy_polls += 1;
        work
    }

    /// `busy_poll_stop`: the busy loop releases NAPI `i`. Under prefer,
    /// with `napi_defer_hard_irqs` and `gro_flush_timeout` set, the
    /// deferral count is reloaded and the watchdog armed, so the IRQ stays
    /// masked for the app's next loop; then one last poll, through the
    /// usual completion (which unmasks unless deferring); a poll that took
    /// the whole budget leaves the NAPI to the softirq, unless deferred.
    /// Returns the frames that poll took. Bound: `budget` frames.
    pub fn busy_poll_stop(&mut self, cx: &mut Cx<'_>, i: usize, prefer: bool, budget: u32) -> u32 {
        let now = cx.now;
        let st = self.napi_mut(i);
        st.busy = false;
        let mut skip_schedule = false;
        if prefer {
            st.defer_count = st.defer_hard_irqs;
            if st.defer_count > 0 && st.gro_flush_timeout > 0 {
                st.timer = Some(now + Nanos(st.gro_flush_timeout));
                skip_schedule = true;
            }
        }
        let work = poll_handler(cx.ifs, i, cx.netisr, cx.now, PollCmd::PollOnly, budget);
        self.napi_mut(i).busy_polls += 1;
        if work < budget {
            self.complete_done(cx, i, work);
        } else {
            self.napi_mut(i).sched = false;
            if !skip_schedule {
                self.schedule(i);
            }
        }
        work
    }

    /// `__napi_poll` of a NAPI marked `PREFER_BUSY_POLL` that used its
    /// whole weight: `napi_complete_done` without the driver's unmask.
    /// Deferring (a count left and `gro_flush_timeout` set), the NAPI is
    /// released with the IRQ masked and the watchdog armed, for the busy
    /// poller to take; otherwise it stays scheduled and is repolled.
    pub(super) fn prefer_done(&mut self, now: Nanos, n: usize, work: u32) {
        let st = self.napi_mut(n);
        st.prefer = false;
        if work > 0 {
            st.defer_count = st.defer_hard_irqs;
        }
        if st.defer_count > 0 && st.gro_flush_timeout > 0 {
            st.defer_count -= 1;
            st.timer = Some(now + Nanos(st.gro_flush_timeout));
            st.sched = false;
            st.deferred += 1;
        }
    }

    /// `napi_suspend_irqs`: an app that prefers busy polling got events
    /// from NAPI `i`: with `irq_suspend_timeout` set, the watchdog is
    /// pushed out to it, so neither the IRQ (masked by the deferral) nor
    /// the softirq comes back while the app keeps finding work. O(1).
    pub fn suspend_irqs(&mut self, i: usize, now: Nanos) {
        let st = self.napi_mut(i);
        if st.attached && st.irq_suspend_timeout > 0 {
            st.timer = Some(now + Nanos(st.irq_suspend_timeout));
            st.suspends += 1;
        }
    }

    /// `napi_resume_irqs`: the app's busy poll found nothing and it goes
    /// to sleep: with `irq_suspend_timeout` set, NAPI `i` is scheduled and
    /// the softirq runs at once (`local_bh_enable`), so its completion
    /// goes back to the `napi_defer_hard_irqs` / `gro_flush_timeout`
    /// regime. O(1).
    pub fn resume_irqs(&mut self, i: usize, jiffies: u64) {
        let st = self.napi_mut(i);
        if !st.attached || st.irq_suspend_timeout == 0 {
            return;
        }
        st.resumes += 1;
        self.schedule(i);
        if self.may_run_inline() {
            self.start_run(super::Ctx::Inline, jiffies);
        }
    }
}
