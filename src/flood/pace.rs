//! Pacing and metering of the flood, free of any clock: the caller passes
//! the time elapsed since the start (principle 3 of STYLE.md), so both are
//! tested without sleeping.
//!
//! The pacer is a token bucket on an absolute schedule: frame `k` is due
//! at `k / rate` after the start, and a batch takes every frame already
//! due, at most `burst`. A late sender (preempted, or slower than the rate)
//! catches up in back-to-back batches of at most `burst` instead of losing
//! the time, which is what keeps the average within a fraction of a
//! percent of the request, up to the generator's maximum.

use std::time::Duration;

use super::parse::Rate;

/// Femto-units per unit: rates are in milli-frames per second and times in
/// nanoseconds, so `frames = ns * mpps / 10^12`.
const NS_MPPS: u128 = 1_000_000_000_000;

/// When frames are due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacer {
    rate: Rate,
    burst: usize,
}

impl Pacer {
    /// A pacer for `rate` with batches of at most `burst` (>= 1) frames.
    pub fn new(rate: Rate, burst: usize) -> Pacer {
        Pacer {
            rate,
            burst: burst.max(1),
        }
    }

    /// How many frames to send now, `elapsed` after the start, with `sent`
    /// already sent: those due and not yet sent, at most `burst`.
    pub fn due(&self, elapsed: Duration, sent: u64) -> usize {
        match self.rate {
            Rate::Max => self.burst,
            Rate::MilliPps(mpps) => {
                // Frames 0..=floor(elapsed * rate) are due.
                let due = elapsed.as_nanos().saturating_mul(mpps) / NS_MPPS + 1;
                let owed = due.saturating_sub(u128::from(sent));
                usize::try_from(owed).unwrap_or(usize::MAX).min(self.burst)
            }
        }
    }

    /// Frames due more than `lag` ago and not yet `done`: what a sender
    /// that has fallen more than `lag` behind its schedule drops, instead of
    /// sending them back to back (none at `max`).
    pub fn behind(&self, elapsed: Duration, done: u64, lag: Duration) -> u64 {
        match self.rate {
            Rate::Max => 0,
            Rate::MilliPps(mpps) => {
                let Some(then) = elapsed.checked_sub(lag) else {
                    return 0;
                };
                // Frames k with k / rate < then: more than `lag` overdue.
                let due = then.as_nanos().saturating_mul(mpps).div_ceil(NS_MPPS);
                u64::try_from(due.saturating_sub(u128::from(done))).unwrap_or(u64::MAX)
            }
        }
    }

    /// When frame `k` is due, from the start (zero at `max`).
    pub fn deadline(&self, k: u64) -> Duration {
        match self.rate {
            Rate::Max | Rate::MilliPps(0) => Duration::ZERO,
            Rate::MilliPps(mpps) => {
                let ns = (u128::from(k) * NS_MPPS).div_ceil(mpps);
                u64::try_from(ns).map_or(Duration::MAX, Duration::from_nanos)
            }
        }
    }
}

/// Running totals of a flood.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Frames handed to the interface (offered to the NIC).
    pub sent: u64,
    /// Batches cut short by ENOBUFS, EAGAIN or EINTR, whose rest was retried.
    pub retries: u64,
    /// Frames dropped from the schedule because the sender was more than
    /// `--max-lag` behind it (never sent, not offered).
    pub skipped: u64,
}

/// Rates over an interval, `frames` of `size` bytes in `secs`: (frames per
/// second, Mbit/s of frame bytes, without FCS, preamble or gap).
pub fn rates(frames: u64, size: usize, secs: f64) -> (f64, f64) {
    if secs <= 0.0 {
        return (0.0, 0.0);
    }
    let pps = frames as f64 / secs;
    (pps, pps * size as f64 * 8.0 / 1e6)
}

/// The per-second lines.
#[derive(Clone, Debug)]
pub struct Meter {
    size: usize,
    next: Duration,
    last_at: Duration,
    last: Totals,
}

impl Meter {
    /// A meter of `size`-byte frames; the first line is due at 1 s.
    pub fn new(size: usize) -> Meter {
        Meter {
            size,
            next: Duration::from_secs(1),
            last_at: Duration::ZERO,
            last: Totals::default(),
        }
    }

    /// When the next line is due.
    pub fn next(&self) -> Duration {
        self.next
    }

    /// The line for the second just ended, if `elapsed` has reached it.
    pub fn tick(&mut self, elapsed: Duration, now: &Totals) -> Option<String> {
        if elapsed < self.next {
            return None;
        }
        let secs = (elapsed - self.last_at).as_secs_f64();
        let (pps, mbit) = rates(now.sent - self.last.sent, self.size, secs);
        let errors = now.retries - self.last.retries;
        let line = format!(
            "{:>5} s  sent {pps:>10.0} pps  {mbit:>9.1} Mbit/s  errors {errors}",
            self.next.as_secs()
        );
        self.last = *now;
        self.last_at = elapsed;
        while self.next <= elapsed {
            self.next += Duration::from_secs(1);
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn frames_are_due_on_an_absolute_schedule() {
        let p = Pacer::new(Rate::pps(1000), 32);
        assert_eq!(p.due(Duration::ZERO, 0), 1);
        assert_eq!(p.due(Duration::ZERO, 1), 0);
        assert_eq!(p.deadline(1), ms(1));
        assert_eq!(p.due(ms(1), 1), 1);
        // Late by 10 ms: 10 frames owed, sent at once.
        assert_eq!(p.due(ms(11), 1), 11);
        // Never more than a burst.
        assert_eq!(p.due(ms(500), 1), 32);
        // Exactly rate * T frames fall in [0, T).
        let mut sent = 0;
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(1) {
            sent += p.due(t, sent) as u64;
            t = p.deadline(sent);
        }
        assert_eq!(sent, 1000);
    }

    #[test]
    fn a_sender_late_beyond_the_lag_drops_what_it_owes_beyond_it() {
        let p = Pacer::new(Rate::pps(1000), 32);
        // On time, or late by less than the lag: nothing to drop.
        assert_eq!(p.behind(ms(10), 10, ms(1)), 0);
        assert_eq!(p.behind(ms(10), 9, ms(1)), 0);
        // Stalled for 10 ms with 1 frame sent: frames 1..=9 were due 1 ms
        // ago or earlier; the one due in the last millisecond is still sent.
        assert_eq!(p.behind(ms(11), 1, ms(1)), 9);
        assert_eq!(p.due(ms(11), 1 + 9), 2);
        assert_eq!(Pacer::new(Rate::Max, 8).behind(ms(100), 0, ms(1)), 0);
        assert_eq!(p.behind(ms(0), 0, ms(1)), 0, "before the lag has passed");
    }

    #[test]
    fn fractional_and_max_rates() {
        let p = Pacer::new(Rate::MilliPps(2500), 8);
        assert_eq!(p.deadline(5), Duration::from_secs(2));
        assert_eq!(p.due(ms(1999), 1), 4);
        let m = Pacer::new(Rate::Max, 16);
        assert_eq!(m.due(Duration::ZERO, 1_000_000), 16);
        assert_eq!(m.deadline(7), Duration::ZERO);
    }

    #[test]
    fn one_line_per_second() {
        let mut m = Meter::new(60);
        let t = |sent| Totals {
            sent,
            retries: 3,
            skipped: 0,
        };
        assert_eq!(m.tick(ms(999), &t(10)), None);
        let line = m.tick(ms(1000), &t(100_000)).unwrap();
        assert!(line.contains("100000 pps"), "{line}");
        assert!(line.contains("48.0 Mbit/s"), "{line}");
        assert!(line.contains("errors 3"), "{line}");
        assert_eq!(m.next(), ms(2000));
        // A stall skips the seconds it missed.
        assert!(m.tick(ms(3500), &t(100_000)).is_some());
        assert_eq!(m.next(), ms(4000));
    }
}
