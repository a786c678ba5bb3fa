//! What the real-clock scheduler saw of the host it runs on: host stalls
//! (spans in which the simulated CPU's thread did not run although it was
//! not blocked), the lateness of the clock interrupt, and the knobs that
//! govern how the scheduler idles and whether it hides stalls from the
//! kernel. Plain counters and knobs beside each other (STYLE.md point 5);
//! nothing here reads a clock or the host: `crate::rt` measures and
//! records into [`HostStats`].
//!
//! Not in FreeBSD, whose CPU is not time-shared under it, except
//! `machdep.idle`, FreeBSD's own choice of idle loop (`hlt` blocks, `spin`
//! busy-waits), kept with its name and its two portable values. The other
//! names are new, under `kern.sched.` (FreeBSD has no such node there).

use pollsim_sysctl::Mib;

use super::time::Nanos;
use crate::sat;

/// Buckets per octave of a [`Hist`] (so a quantile is read to within a
/// factor 2^(1/4), about 19 %).
pub const HIST_PER_OCTAVE: usize = 4;
/// Octaves a [`Hist`] spans, from 1 µs up (the last bucket is open).
const HIST_OCTAVES: usize = 21;
/// Buckets of a [`Hist`]: one below 1 µs, four per octave from 1 µs to
/// about 2 s, and one above.
pub const HIST_BUCKETS: usize = 2 + HIST_PER_OCTAVE * HIST_OCTAVES;

/// Upper bound, in nanoseconds, of bucket `i` (`u64::MAX` for the last).
pub fn hist_upper_ns(i: usize) -> u64 {
    if i == 0 {
        return 1_000;
    }
    if i >= HIST_BUCKETS - 1 {
        return u64::MAX;
    }
    let octave = (i - 1) / HIST_PER_OCTAVE;
    let step = (i - 1) % HIST_PER_OCTAVE + 1;
    let base = 1_000u64 << octave;
    base + base * step as u64 / HIST_PER_OCTAVE as u64
}

/// A log-scale histogram of durations, cumulative since start: two reads
/// of it give the distribution of any window in between ([`Hist::delta`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hist {
    counts: Vec<u64>,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; HIST_BUCKETS],
        }
    }
}

impl Hist {
    /// A histogram with these bucket counts (missing buckets are empty).
    pub fn from_counts(counts: &[u64]) -> Hist {
        let mut h = Hist::default();
        for (c, v) in h.counts.iter_mut().zip(counts) {
            *c = *v;
        }
        h
    }

    /// Count one duration.
    pub fn record(&mut self, d: Nanos) {
        let i = (0..HIST_BUCKETS)
            .find(|&i| d.0 <= hist_upper_ns(i))
            .unwrap_or(HIST_BUCKETS - 1);
        self.counts[i] += 1;
    }

    /// Counts per bucket.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Durations counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was counted after `earlier` was read.
    pub fn delta(&self, earlier: &Hist) -> Hist {
        Hist {
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        }
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1), in
    /// nanoseconds; `None` if empty. `q = 1` gives the bucket of the
    /// largest duration; the open last bucket reads as its lower bound.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "q is clamped to 0..=1, so the rank is within 1..=total"
        )]
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(if i == HIST_BUCKETS - 1 {
                    hist_upper_ns(i - 1)
                } else {
                    hist_upper_ns(i)
                });
            }
        }
        None
    }
}

/// `machdep.idle`: what the simulated CPU's idle loop does on the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Idle {
    /// Block in `epoll_wait` until a tick or an interrupt (FreeBSD's `hlt`):
    /// costs the host nothing, but a hypervisor may take the core away
    /// while it sleeps and give it back late.
    #[default]
    Hlt,
    /// Busy-wait, checking the tick deadline and the interrupt lines
    /// without blocking (FreeBSD's `spin`): keeps the host core, still
    /// counted as idle.
    Spin,
}

/// Names of [`Idle`] as `machdep.idle` shows them, in order.
pub const IDLE_CHOICES: &[&str] = &["hlt", "spin"];

/// Default of `kern.sched.unit_max_us`: no unit of the simulated CPU's
/// work without frames (a user slice of 5 µs, a status check of about
/// 40 µs, an egress pass) takes this long on a CPU of its own.
pub const DEFAULT_UNIT_MAX_US: u32 = 100;
/// Default of `kern.sched.frame_max_us`: ten times what a frame costs
/// pollsim here (about 1 µs from the tap into smoltcp).
pub const DEFAULT_FRAME_MAX_US: u32 = 10;
/// Highest `kern.sched.unit_max_us` and `kern.sched.frame_max_us`.
pub const MAX_UNIT_US: u32 = 1_000_000;

/// Default of `kern.sched.stall_min_us`: shorter gaps are noise of the
/// guest kernel (its own timer interrupt takes a few microseconds).
pub const DEFAULT_STALL_MIN_US: u32 = 20;
/// Highest `kern.sched.stall_min_us`: a tick at the lowest `kern.hz`.
pub const MAX_STALL_MIN_US: u32 = 10_000;

/// What the scheduler saw of the host, and the knobs of how it copes.
/// Each doc line of a counter is its sysctl description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStats {
    /// `machdep.idle`.
    pub idle: Idle,
    /// `kern.sched.stall_compensate`: stop the kernel's clock for a host
    /// stall and re-phase the tick grid after it.
    pub compensate: bool,
    /// `kern.sched.stall_min_us`: shortest gap counted as a stall.
    pub stall_min: Nanos,
    /// `kern.sched.unit_max_us`: bound of a unit of work without frames
    /// (0: units are not checked).
    pub unit_max: Nanos,
    /// `kern.sched.frame_max_us`: what each frame a unit moved adds to its
    /// bound.
    pub frame_max: Nanos,
    /// Hiccups: units of work that ran past their bound while the thread ran
    pub hiccups: u64,
    /// Time units of work ran past their bound
    pub hiccup: Nanos,
    /// Host stalls: spans while not blocked in which the CPU's thread did not run
    pub stalls: u64,
    /// Total time of host stalls
    pub stall: Nanos,
    /// Longest host stall
    pub stall_max: Nanos,
    /// Host stall durations (log histogram, buckets of kern.sched.hist_us)
    pub stall_hist: Hist,
    /// Time the kernel's clock stood still for host stalls (not in kern.cp_time)
    pub stolen: Nanos,
    /// How late the clock interrupt ran behind its deadline (log histogram)
    pub tick_late_hist: Hist,
    /// Latest a clock interrupt ran behind its deadline
    pub tick_late_max: Nanos,
    /// Lost polls counted at a clock interrupt after a host stall in that tick
    pub stall_lost_polls: u64,
    /// Short ticks counted at a clock interrupt after a host stall in that tick
    pub stall_short_ticks: u64,
    /// ipintrq drops in an interrupt after a host stall in that tick
    pub stall_ipintrq_drops: u64,
    /// A stall was seen since the last clock interrupt.
    pub stalled_this_tick: bool,
}

impl Default for HostStats {
    fn default() -> Self {
        HostStats {
            idle: Idle::Hlt,
            compensate: true,
            stall_min: Nanos::from_micros(u64::from(DEFAULT_STALL_MIN_US)),
            unit_max: Nanos::from_micros(u64::from(DEFAULT_UNIT_MAX_US)),
            frame_max: Nanos::from_micros(u64::from(DEFAULT_FRAME_MAX_US)),
            hiccups: 0,
            hiccup: Nanos::ZERO,
            stalls: 0,
            stall: Nanos::ZERO,
            stall_max: Nanos::ZERO,
            stall_hist: Hist::default(),
            stolen: Nanos::ZERO,
            tick_late_hist: Hist::default(),
            tick_late_max: Nanos::ZERO,
            stall_lost_polls: 0,
            stall_short_ticks: 0,
            stall_ipintrq_drops: 0,
            stalled_this_tick: false,
        }
    }
}

impl HostStats {
    /// Count a host stall of `d`; `stolen` says whether the kernel's clock
    /// stood still for it.
    pub fn record_stall(&mut self, d: Nanos, stolen: bool) {
        self.stalls += 1;
        self.stall += d;
        self.stall_max = self.stall_max.max(d);
        self.stall_hist.record(d);
        if stolen {
            self.stolen += d;
        }
        self.stalled_this_tick = true;
    }

    /// The longest a unit of work that moved `frames` frames may take on a
    /// CPU of its own; `None` when units are not checked.
    pub fn unit_bound(&self, frames: u64) -> Option<Nanos> {
        (self.unit_max > Nanos::ZERO)
            .then(|| Nanos(self.unit_max.0 + self.frame_max.0.saturating_mul(frames)))
    }

    /// Count a hiccup: a unit of work ran `excess` past its bound while the
    /// thread was charged for it. It is a stall too (time the simulated CPU
    /// did not have); `stolen` as in [`HostStats::record_stall`].
    pub fn record_hiccup(&mut self, excess: Nanos, stolen: bool) {
        self.hiccups += 1;
        self.hiccup += excess;
        self.record_stall(excess, stolen);
    }

    /// Count a clock interrupt that ran `late` behind its deadline.
    pub fn record_tick(&mut self, late: Nanos) {
        self.tick_late_hist.record(late);
        self.tick_late_max = self.tick_late_max.max(late);
    }
}

fn us(d: Nanos) -> i64 {
    sat(d.0 / 1_000)
}

/// Register `machdep.idle` and the `kern.sched.*` host nodes, reached
/// through `get` and `get_mut`.
pub fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &HostStats,
    get_mut: fn(&mut C) -> &mut HostStats,
) {
    mib.add_rw_choice(
        "machdep.idle",
        "currently selected idle function (hlt: block until a tick or an \
         interrupt; spin: busy-wait, keeping the host core)",
        IDLE_CHOICES,
        move |c| get(c).idle as usize,
        move |c, i| get_mut(c).idle = if i == 1 { Idle::Spin } else { Idle::Hlt },
    );
    mib.add_rw(
        "kern.sched.stall_compensate",
        "Stop the kernel's clock during a host stall and re-phase the tick \
         grid after it, so the kernel does not see time it did not have (1), \
         or let host stalls count as the state they interrupted (0)",
        (0, 1),
        |_| (0, 1),
        move |c| i64::from(get(c).compensate),
        move |c, v| {
            get_mut(c).compensate = v == 1;
            Ok(())
        },
    );
    // The duration knobs, in microseconds: (name, description, bounds,
    // the field).
    type Field = (fn(&HostStats) -> Nanos, fn(&mut HostStats) -> &mut Nanos);
    let knobs: [(&str, &str, (i64, i64), Field); 3] = [
        (
            "stall_min_us",
            "Shortest gap in which the CPU's thread did not run that counts \
             as a host stall, in microseconds",
            (1, i64::from(MAX_STALL_MIN_US)),
            (|h| h.stall_min, |h| &mut h.stall_min),
        ),
        (
            "unit_max_us",
            "Longest a unit of work without frames may take; the excess of a \
             longer one is a hiccup (a host stall charged to the thread), in \
             microseconds (0: units are not checked)",
            (0, i64::from(MAX_UNIT_US)),
            (|h| h.unit_max, |h| &mut h.unit_max),
        ),
        (
            "frame_max_us",
            "What each frame a unit of work moved adds to its bound, in microseconds",
            (0, i64::from(MAX_UNIT_US)),
            (|h| h.frame_max, |h| &mut h.frame_max),
        ),
    ];
    for (name, descr, bounds, (read, field)) in knobs {
        mib.add_rw(
            &format!("kern.sched.{name}"),
            descr,
            bounds,
            move |_| bounds,
            move |c| us(read(get(c))),
            move |c, v| {
                *field(get_mut(c)) = Nanos::from_micros(v.unsigned_abs());
                Ok(())
            },
        );
    }
    type Get = fn(&HostStats) -> i64;
    let nodes: [(&str, &str, Get); 10] = [
        (
            "hiccups",
            "Hiccups: units of work that ran past their bound while the thread ran",
            |h| sat(h.hiccups),
        ),
        (
            "hiccup_us",
            "Time units of work ran past their bound, in microseconds (part of stall_us)",
            |h| us(h.hiccup),
        ),
        (
            "stalls",
            "Host stalls: spans while not blocked in which the CPU's thread did not run",
            |h| sat(h.stalls),
        ),
        (
            "stall_us",
            "Total time of host stalls, in microseconds",
            |h| us(h.stall),
        ),
        ("stall_max_us", "Longest host stall, in microseconds", |h| {
            us(h.stall_max)
        }),
        (
            "stolen_us",
            "Time the kernel's clock stood still for host stalls, in \
             microseconds (not in kern.cp_time)",
            |h| us(h.stolen),
        ),
        (
            "tick_late_max_us",
            "Latest a clock interrupt ran behind its deadline, in microseconds",
            |h| us(h.tick_late_max),
        ),
        (
            "stall_lost_polls",
            "Lost polls counted at a clock interrupt after a host stall in that tick",
            |h| sat(h.stall_lost_polls),
        ),
        (
            "stall_short_ticks",
            "Short ticks counted at a clock interrupt after a host stall in that tick",
            |h| sat(h.stall_short_ticks),
        ),
        (
            "stall_ipintrq_drops",
            "ipintrq drops in an interrupt after a host stall in that tick",
            |h| sat(h.stall_ipintrq_drops),
        ),
    ];
    for (name, descr, f) in nodes {
        mib.add_ro(&format!("kern.sched.{name}"), descr, move |c| f(get(c)));
    }
    mib.add_ro_list(
        "kern.sched.hist_us",
        "Upper bounds of the buckets of the kern.sched histograms, in \
         microseconds (the last bucket is open)",
        |_| {
            (0..HIST_BUCKETS)
                .map(|i| hist_upper_ns(i) / 1_000)
                .collect()
        },
    );
    mib.add_ro_list(
        "kern.sched.stall_hist",
        "Host stalls per duration bucket (bounds in kern.sched.hist_us)",
        move |c| get(c).stall_hist.counts().to_vec(),
    );
    mib.add_ro_list(
        "kern.sched.tick_late_hist",
        "Clock interrupts per lateness bucket (bounds in kern.sched.hist_us)",
        move |c| get(c).tick_late_hist.counts().to_vec(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_four_per_octave_and_increasing() {
        assert_eq!(hist_upper_ns(0), 1_000);
        assert_eq!(
            (1..=4).map(hist_upper_ns).collect::<Vec<_>>(),
            [1_250, 1_500, 1_750, 2_000]
        );
        assert_eq!(hist_upper_ns(8), 4_000);
        for i in 1..HIST_BUCKETS {
            assert!(hist_upper_ns(i) > hist_upper_ns(i - 1), "bucket {i}");
        }
        assert!(hist_upper_ns(HIST_BUCKETS - 2) >= 2_000_000_000);
    }

    #[test]
    fn quantiles_of_a_window_come_from_the_delta() {
        let mut h = Hist::default();
        for _ in 0..90 {
            h.record(Nanos::from_micros(3));
        }
        let before = h.clone();
        for _ in 0..98 {
            h.record(Nanos::from_micros(10));
        }
        h.record(Nanos::from_micros(300));
        h.record(Nanos::from_millis(5));
        let w = h.delta(&before);
        assert_eq!(w.total(), 100);
        assert_eq!(w.quantile(0.5), Some(10_000));
        assert_eq!(w.quantile(0.99), Some(320_000));
        assert_eq!(w.quantile(1.0), Some(5_120_000));
        assert_eq!(Hist::default().quantile(0.5), None);
        assert_eq!(Hist::from_counts(w.counts()), w);
    }

    #[test]
    fn a_stall_counts_as_stolen_only_when_compensated() {
        let mut h = HostStats::default();
        h.record_stall(Nanos::from_micros(500), true);
        h.record_stall(Nanos::from_micros(200), false);
        assert_eq!(h.stalls, 2);
        assert_eq!(h.stall, Nanos::from_micros(700));
        assert_eq!(h.stall_max, Nanos::from_micros(500));
        assert_eq!(h.stolen, Nanos::from_micros(500));
        assert!(h.stalled_this_tick);
        assert_eq!(h.stall_hist.total(), 2);
    }

    #[test]
    fn a_units_bound_grows_with_its_frames_and_a_hiccup_is_a_stall() {
        let mut h = HostStats::default();
        assert_eq!(h.unit_bound(0), Some(Nanos::from_micros(100)));
        assert_eq!(h.unit_bound(5), Some(Nanos::from_micros(150)));
        h.record_hiccup(Nanos::from_micros(300), true);
        assert_eq!((h.hiccups, h.stalls), (1, 1));
        assert_eq!(
            (h.hiccup, h.stolen),
            (Nanos::from_micros(300), Nanos::from_micros(300))
        );
        h.unit_max = Nanos::ZERO;
        assert_eq!(h.unit_bound(5), None, "0 turns the check off");
    }
}
