//! `interactive`: a user process that wants the CPU for a short slice at a
//! fixed period, and records how late each slice starts.
//!
//! The user-process progress of Mogul & Ramakrishnan (their measure of
//! livelock besides throughput is whether user processes still run), made
//! independent of the network: the process needs no packet, it only wants
//! `user.interactive.slice_us` of CPU every `user.interactive.period_us`
//! (100 µs every 10 ms by default, an editor or a shell echoing keys). It
//! runs at user priority, so it competes with the kernel's interrupt and
//! netisr work exactly as the other apps do; among user processes it is
//! one process of the run queue ([`crate::kernel::runq`]): when a slice is
//! due it wakes at its sleep priority and runs next, cutting in between
//! the 5 µs slices of another app's work (a Unix scheduler favours a
//! process that slept).
//!
//! Each slice's *lateness* is the time from when it was due to when it
//! started, kept in a histogram (`user.interactive.late_hist`, with p50,
//! p99 and max nodes). A slice that has not started by the time the next
//! one is due is *missed* (`user.interactive.missed`): the next due time
//! moves to the next period boundary, as a periodic task that overran.
//! Missed slices are counted as soon as they are missed, even while the
//! process still waits for the CPU, so a fully starved process shows.
//!
//! An idle CPU wakes for it: the virtual scheduler skips idle time only up
//! to its next due time; on the real clock with `machdep.idle=hlt` the idle
//! loop wakes at the next tick (the timerfd stays armed), so a slice due in
//! an idle stretch starts up to a tick late there; with `spin` (compare's
//! setting) at once.

use pollsim_sysctl::Mib;

use super::Apps;
use crate::kernel::host::Hist;
use crate::kernel::time::Nanos;
use crate::sat;

/// Default `user.interactive.period_us`.
pub const PERIOD_US_DEFAULT: u64 = 10_000;
/// Bounds of `user.interactive.period_us` (1 ms .. 10 s).
pub const PERIOD_US_RANGE: (u64, u64) = (1_000, 10_000_000);
/// Default `user.interactive.slice_us`.
pub const SLICE_US_DEFAULT: u64 = 100;
/// Bounds of `user.interactive.slice_us` (at most half of the period
/// bound's minimum, so a slice always fits its period by default).
pub const SLICE_US_RANGE: (u64, u64) = (1, 500);

/// The interactive process.
#[derive(Clone, Debug)]
pub struct Interactive {
    /// Period between slices, µs.
    pub period_us: u64,
    /// CPU wanted per slice, µs.
    pub slice_us: u64,
    /// When the next slice is due (None before start).
    due: Option<Nanos>,
    /// CPU left of the slice under way.
    burn_left: Nanos,
    /// Slices started.
    pub slices: u64,
    /// Slices missed (not started before the next one was due), counted
    /// up to the last time the process ran or was looked at.
    missed: u64,
    /// Lateness of every slice started.
    pub late: Hist,
    /// Largest lateness, ns.
    pub late_max: Nanos,
}

impl Default for Interactive {
    fn default() -> Self {
        Interactive::new()
    }
}

impl Interactive {
    /// With the defaults, not started.
    pub fn new() -> Interactive {
        Interactive {
            period_us: PERIOD_US_DEFAULT,
            slice_us: SLICE_US_DEFAULT,
            due: None,
            burn_left: Nanos::ZERO,
            slices: 0,
            missed: 0,
            late: Hist::default(),
            late_max: Nanos::ZERO,
        }
    }

    fn period(&self) -> Nanos {
        Nanos::from_micros(self.period_us)
    }

    /// Start: the first slice is due one period after `now`.
    pub fn start(&mut self, now: Nanos) {
        self.due = Some(now + self.period());
    }

    /// Whether it wants the CPU at `now` (a slice due, or one under way).
    pub fn runnable(&self, now: Nanos) -> bool {
        self.burn_left > Nanos::ZERO || self.due.is_some_and(|d| d <= now)
    }

    /// Whether a slice is under way (cut by an interrupt or a tick).
    pub fn mid_slice(&self) -> bool {
        self.burn_left > Nanos::ZERO
    }

    /// When it next wants the CPU, if it is waiting for a due time.
    pub fn next_due(&self) -> Option<Nanos> {
        self.due
    }

    /// Slices missed up to `now`: those counted, plus those whose time
    /// passed while a due slice still waits for the CPU.
    pub fn missed(&self, now: Nanos) -> u64 {
        let waiting = match self.due {
            Some(d) if self.burn_left == Nanos::ZERO && now > d => now.since(d).0 / self.period().0,
            _ => 0,
        };
        self.missed + waiting
    }

    /// One unit of its work at `now`: start the due slice (recording its
    /// lateness and the slices missed meanwhile), then return the CPU time
    /// to burn now, at most `max`. Bound: O(1).
    pub fn step(&mut self, now: Nanos, max: Nanos) -> Nanos {
        if self.burn_left == Nanos::ZERO
            && let Some(d) = self.due.filter(|d| *d <= now)
        {
            let late = now.since(d);
            let period = self.period().0;
            let skipped = late.0 / period;
            self.missed += skipped;
            self.due = Some(Nanos(d.0 + (skipped + 1) * period));
            self.late.record(late);
            self.late_max = self.late_max.max(late);
            self.slices += 1;
            self.burn_left = Nanos::from_micros(self.slice_us);
        }
        let burn = Nanos(self.burn_left.0.min(max.0));
        self.burn_left = Nanos(self.burn_left.0 - burn.0);
        burn
    }
}

pub(super) fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &Apps,
    get_mut: fn(&mut C) -> &mut Apps,
    now: fn(&C) -> Nanos,
) {
    let (lo, hi) = (sat(PERIOD_US_RANGE.0), sat(PERIOD_US_RANGE.1));
    mib.add_rw(
        "user.interactive.period_us",
        "Period of the interactive process's slices, in us",
        (lo, hi),
        move |_| (lo, hi),
        move |c| get(c).interactive.as_ref().map_or(0, |a| sat(a.period_us)),
        move |c, v| {
            if let Some(a) = get_mut(c).interactive.as_mut() {
                a.period_us = v.unsigned_abs();
            }
            Ok(())
        },
    );
    let (lo, hi) = (sat(SLICE_US_RANGE.0), sat(SLICE_US_RANGE.1));
    mib.add_rw(
        "user.interactive.slice_us",
        "CPU the interactive process wants each period, in us",
        (lo, hi),
        move |_| (lo, hi),
        move |c| get(c).interactive.as_ref().map_or(0, |a| sat(a.slice_us)),
        move |c, v| {
            if let Some(a) = get_mut(c).interactive.as_mut() {
                a.slice_us = v.unsigned_abs();
            }
            Ok(())
        },
    );
    mib.add_ro("user.interactive.slices", "Slices started", move |c| {
        get(c).interactive.as_ref().map_or(0, |a| sat(a.slices))
    });
    mib.add_ro(
        "user.interactive.missed",
        "Slices missed: not started before the next one was due",
        move |c| {
            get(c)
                .interactive
                .as_ref()
                .map_or(0, |a| sat(a.missed(now(c))))
        },
    );
    type Q = (&'static str, &'static str, f64);
    let quantiles: [Q; 3] = [
        (
            "late_p50_us",
            "Median lateness of a slice's start, us (to within 19 %)",
            0.5,
        ),
        (
            "late_p99_us",
            "99th percentile of a slice's lateness, us (to within 19 %)",
            0.99,
        ),
        (
            "late_max_us",
            "Largest lateness of a slice's start, us",
            1.0,
        ),
    ];
    for (name, descr, q) in quantiles {
        mib.add_ro(&format!("user.interactive.{name}"), descr, move |c| {
            get(c).interactive.as_ref().map_or(0, |a| {
                if q >= 1.0 {
                    sat(a.late_max.0 / 1_000)
                } else {
                    sat(a.late.quantile(q).unwrap_or(0) / 1_000)
                }
            })
        });
    }
    mib.add_ro_list(
        "user.interactive.late_hist",
        "Slices by lateness: log buckets, 4 per octave from 1 us (as kern.sched.tick_late_hist)",
        move |c| {
            get(c)
                .interactive
                .as_ref()
                .map_or_else(Vec::new, |a| a.late.counts().to_vec())
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = Nanos::from_millis(1);

    #[test]
    fn a_slice_on_time_is_not_late_and_burns_its_slice_in_pieces() {
        let mut a = Interactive::new();
        a.start(Nanos::ZERO);
        assert!(!a.runnable(Nanos(9 * MS.0)));
        let due = Nanos(10 * MS.0);
        assert!(a.runnable(due));
        assert_eq!(a.step(due, Nanos::from_micros(5)), Nanos::from_micros(5));
        assert!(a.mid_slice());
        let mut burnt = 5;
        while a.mid_slice() {
            burnt += a.step(due, Nanos::from_micros(5)).as_micros();
        }
        assert_eq!(burnt, 100);
        assert_eq!((a.slices, a.missed(due), a.late_max), (1, 0, Nanos::ZERO));
        assert_eq!(a.next_due(), Some(Nanos(20 * MS.0)));
    }

    #[test]
    fn a_starved_process_counts_missed_slices_and_its_lateness() {
        let mut a = Interactive::new();
        a.start(Nanos::ZERO);
        // Due at 10 ms; the CPU comes back at 45 ms: three periods passed.
        let back = Nanos(45 * MS.0);
        assert_eq!(a.missed(back), 3, "counted while still waiting");
        a.step(back, Nanos::from_micros(100));
        assert_eq!(a.missed(back), 3);
        assert_eq!(a.late_max, Nanos(35 * MS.0));
        assert_eq!(a.next_due(), Some(Nanos(50 * MS.0)));
        assert_eq!(a.late.total(), 1);
        let p99 = a.late.quantile(0.99).unwrap();
        assert!((35_000_000..=42_000_000).contains(&p99), "{p99}");
    }
}
