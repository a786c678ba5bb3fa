//! Linux DIM, dynamic interrupt moderation (`lib/dim/net_dim.c`,
//! `lib/dim/dim.c`, `include/linux/dim.h`): the adaptive half of
//! [`super::moderation`] (`ethtool -C <if> adaptive-rx on`).
//!
//! Mirrors one to one: `net_dim()`'s measure states (a decision every
//! `DIM_NEVENTS` = 64 interrupts), `dim_calc_stats()` (packets, bytes and
//! events per ms), `net_dim_stats_compare()` (bytes/ms, then packets/ms,
//! then fewer events/ms; a difference counts over 10 %),
//! `net_dim_decision()` with its tune states (parked on top, parked tired,
//! going right = more moderation, going left), `net_dim_step()`,
//! `dim_turn()`, `dim_on_top()`, and the RX profile table of
//! `DIM_CQ_PERIOD_MODE_START_FROM_EQE` (a timer from the first event, the
//! ethtool rule [`super::moderation`] applies), default index 1.
//!
//! Differs: the driver's work item that applies a new profile
//! (`DIM_APPLY_NEW_PROFILE` → `schedule_work`) runs at once, so the next
//! call starts the next measurement; counters are 64-bit (Linux wraps
//! 16- and 32-bit ones with `BIT_GAP`).

use crate::kernel::time::Nanos;

/// `DIM_NEVENTS`: interrupts per decision.
pub const DIM_NEVENTS: u64 = 64;
/// `NET_DIM_PARAMS_NUM_PROFILES`.
pub const NUM_PROFILES: usize = 5;
/// `NET_DIM_DEF_PROFILE_EQE`: the index at start.
pub const DEFAULT_PROFILE: usize = 1;
/// `NET_DIM_RX_EQE_PROFILES`: (usec, pkts) from least to most moderation.
pub const RX_EQE_PROFILES: [(u32, u32); NUM_PROFILES] =
    [(1, 256), (8, 256), (64, 256), (128, 256), (256, 256)];

/// `enum dim_tune_state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tune {
    /// `DIM_PARKING_ON_TOP` (0, the state at start).
    #[default]
    ParkingOnTop,
    /// `DIM_PARKING_TIRED`.
    ParkingTired,
    /// `DIM_GOING_RIGHT`: towards more moderation.
    GoingRight,
    /// `DIM_GOING_LEFT`: towards less.
    GoingLeft,
}

/// `struct dim_sample`: cumulative counters at an instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// When.
    pub time: Nanos,
    /// Packets received so far.
    pub pkts: u64,
    /// Bytes received so far.
    pub bytes: u64,
    /// Interrupts so far.
    pub events: u64,
}

/// `struct dim_stats`: rates over a measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets per ms.
    pub ppms: u64,
    /// Bytes per ms.
    pub bpms: u64,
    /// Events (interrupts) per ms.
    pub epms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Better,
    Worse,
    Same,
}

/// `struct dim` (the RX side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim {
    /// `profile_ix`.
    pub ix: usize,
    /// `tune_state`.
    pub tune: Tune,
    steps_left: u32,
    steps_right: u32,
    tired: u32,
    prev: Stats,
    start: Option<Sample>,
    /// Decisions taken (windows of 64 events measured).
    pub decisions: u64,
}

impl Default for Dim {
    fn default() -> Self {
        Dim {
            ix: DEFAULT_PROFILE,
            tune: Tune::ParkingOnTop,
            steps_left: 0,
            steps_right: 0,
            tired: 0,
            prev: Stats::default(),
            start: None,
            decisions: 0,
        }
    }
}

/// `IS_SIGNIFICANT_DIFF`: more than 10 % of a non-zero reference.
fn significant(val: u64, reference: u64) -> bool {
    reference != 0 && 100 * val.abs_diff(reference) / reference > 10
}

/// `net_dim_stats_compare(curr, prev)`.
fn compare(curr: &Stats, prev: &Stats) -> Cmp {
    let higher = |c: u64, p: u64| if c > p { Cmp::Better } else { Cmp::Worse };
    if prev.bpms == 0 {
        return if curr.bpms > 0 {
            Cmp::Better
        } else {
            Cmp::Same
        };
    }
    if significant(curr.bpms, prev.bpms) {
        return higher(curr.bpms, prev.bpms);
    }
    if prev.ppms == 0 {
        return if curr.ppms > 0 {
            Cmp::Better
        } else {
            Cmp::Same
        };
    }
    if significant(curr.ppms, prev.ppms) {
        return higher(curr.ppms, prev.ppms);
    }
    if prev.epms == 0 {
        return Cmp::Same;
    }
    if significant(curr.epms, prev.epms) {
        return if curr.epms < prev.epms {
            Cmp::Better
        } else {
            Cmp::Worse
        };
    }
    Cmp::Same
}

/// What `net_dim_step` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Stepped,
    TooTired,
    OnEdge,
}

impl Dim {
    /// The profile in force: (usec, pkts).
    pub fn profile(&self) -> (u32, u32) {
        RX_EQE_PROFILES[self.ix]
    }

    /// `net_dim(dim, end_sample)`, called at each completion of a poll
    /// (or interrupt). Returns whether the profile changed. O(1).
    pub fn net_dim(&mut self, end: Sample) -> bool {
        let Some(start) = self.start else {
            self.start = Some(end);
            return false;
        };
        if end.events - start.events < DIM_NEVENTS {
            return false;
        }
        let us = end.time.since(start.time).0 / 1000;
        if us == 0 {
            return false;
        }
        let per_ms = |n: u64| (n * 1000).div_ceil(us);
        let curr = Stats {
            ppms: per_ms(end.pkts - start.pkts),
            bpms: per_ms(end.bytes - start.bytes),
            epms: per_ms(DIM_NEVENTS),
        };
        if self.decision(&curr) {
            // DIM_APPLY_NEW_PROFILE; the work sets DIM_START_MEASURE.
            self.start = None;
            true
        } else {
            self.start = Some(end);
            false
        }
    }

    /// `net_dim_decision`.
    fn decision(&mut self, curr: &Stats) -> bool {
        self.decisions += 1;
        let (prev_tune, prev_ix) = (self.tune, self.ix);
        match self.tune {
            Tune::ParkingOnTop => {
                if compare(curr, &self.prev) != Cmp::Same {
                    self.exit_parking();
                }
            }
            Tune::ParkingTired => {
                self.tired -= 1;
                if self.tired == 0 {
                    self.exit_parking();
                }
            }
            Tune::GoingRight | Tune::GoingLeft => {
                if compare(curr, &self.prev) != Cmp::Better {
                    self.turn();
                }
                if self.on_top() {
                    self.park_on_top();
                } else {
                    match self.step() {
                        Step::OnEdge => self.park_on_top(),
                        Step::TooTired => self.park_tired(),
                        Step::Stepped => {}
                    }
                }
            }
        }
        if prev_tune != Tune::ParkingOnTop || self.tune != Tune::ParkingOnTop {
            self.prev = *curr;
        }
        self.ix != prev_ix
    }

    fn exit_parking(&mut self) {
        self.tune = if self.ix > 0 {
            Tune::GoingLeft
        } else {
            Tune::GoingRight
        };
        self.step();
    }

    fn step(&mut self) -> Step {
        if self.tired == 2 * NUM_PROFILES as u32 {
            return Step::TooTired;
        }
        match self.tune {
            Tune::ParkingOnTop | Tune::ParkingTired => {}
            Tune::GoingRight => {
                if self.ix == NUM_PROFILES - 1 {
                    return Step::OnEdge;
                }
                self.ix += 1;
                self.steps_right += 1;
            }
            Tune::GoingLeft => {
                if self.ix == 0 {
                    return Step::OnEdge;
                }
                self.ix -= 1;
                self.steps_left += 1;
            }
        }
        self.tired += 1;
        Step::Stepped
    }

    fn turn(&mut self) {
        match self.tune {
            Tune::GoingRight => {
                self.tune = Tune::GoingLeft;
                self.steps_left = 0;
            }
            Tune::GoingLeft => {
                self.tune = Tune::GoingRight;
                self.steps_right = 0;
            }
            Tune::ParkingOnTop | Tune::ParkingTired => {}
        }
    }

    fn on_top(&self) -> bool {
        match self.tune {
            Tune::ParkingOnTop | Tune::ParkingTired => true,
            Tune::GoingLeft => self.steps_left > 1 && self.steps_right == 1,
            Tune::GoingRight => self.steps_right > 1 && self.steps_left == 1,
        }
    }

    fn park_on_top(&mut self) {
        self.steps_right = 0;
        self.steps_left = 0;
        self.tired = 0;
        self.tune = Tune::ParkingOnTop;
    }

    fn park_tired(&mut self) {
        self.steps_right = 0;
        self.steps_left = 0;
        self.tune = Tune::ParkingTired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed windows of 64 events, each with `pkts` packets of 60 bytes over
    /// `us` microseconds; return the profile index after each decision.
    fn windows(d: &mut Dim, loads: &[(u64, u64)]) -> Vec<usize> {
        let mut s = Sample::default();
        d.net_dim(s);
        let mut out = Vec::new();
        for &(pkts, us) in loads {
            s.time += Nanos::from_micros(us);
            s.pkts += pkts;
            s.bytes += pkts * 60;
            s.events += DIM_NEVENTS;
            let before = d.decisions;
            d.net_dim(s);
            assert_eq!(d.decisions, before + 1, "one decision per 64 events");
            out.push(d.ix);
            if d.start.is_none() {
                d.net_dim(s); // the new measurement starts here
            }
        }
        out
    }

    #[test]
    fn no_decision_before_64_events() {
        let mut d = Dim::default();
        let mut s = Sample::default();
        d.net_dim(s);
        for _ in 0..63 {
            s.events += 1;
            s.time += Nanos::from_micros(10);
            assert!(!d.net_dim(s));
        }
        assert_eq!((d.decisions, d.ix), (0, DEFAULT_PROFILE));
    }

    #[test]
    fn steps_one_profile_per_decision() {
        let mut d = Dim::default();
        // Rising throughput keeps each step BETTER: DIM walks on, one index
        // at a time, and parks at the edge of the table.
        let loads: Vec<(u64, u64)> = (1..=12).map(|k| (1000 * k, 1000)).collect();
        let ix = windows(&mut d, &loads);
        let mut prev = DEFAULT_PROFILE;
        for i in &ix {
            assert!(i.abs_diff(prev) <= 1, "jumped from {prev} to {i}: {ix:?}");
            prev = *i;
        }
        // From parking at start: left first (index 1 > 0), then it turns.
        assert_eq!(ix[0], 0, "{ix:?}");
        assert!(ix.contains(&2), "{ix:?}");
    }

    #[test]
    fn steady_traffic_wanders_until_tired_then_parks_ten_windows() {
        let mut d = Dim::default();
        let ix = windows(&mut d, &[(5000, 1000); 21]);
        // Never BETTER: every decision turns and steps, one index each.
        for w in ix[..10].windows(2) {
            assert_eq!(w[0].abs_diff(w[1]), 1, "{ix:?}");
        }
        // tired reaches 2 x 5 steps: parked tired, the index held for 10
        // windows, then parking ends with a step.
        assert!(ix[9..20].iter().all(|&i| i == ix[9]), "{ix:?}");
        assert_ne!(ix[20], ix[19], "{ix:?}");
    }

    #[test]
    fn the_comparison_is_bytes_then_packets_then_fewer_events() {
        let s = |bpms, ppms, epms| Stats { ppms, bpms, epms };
        assert_eq!(compare(&s(120, 1, 1), &s(100, 1, 1)), Cmp::Better);
        assert_eq!(compare(&s(105, 1, 1), &s(100, 1, 1)), Cmp::Same);
        assert_eq!(compare(&s(100, 80, 1), &s(100, 100, 1)), Cmp::Worse);
        assert_eq!(compare(&s(100, 100, 50), &s(100, 100, 100)), Cmp::Better);
        assert_eq!(compare(&s(1, 1, 1), &s(0, 0, 0)), Cmp::Better);
    }
}
