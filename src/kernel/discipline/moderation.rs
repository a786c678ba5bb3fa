//! NIC interrupt moderation (coalescing): when a raised receive line
//! actually interrupts the CPU. A property of the interface's interrupt
//! line, so it works under every discipline that takes interrupts
//! (`interrupt`, `napi`, `mr`).
//!
//! Mirrors the ethtool contract (`include/uapi/linux/ethtool.h`, the
//! comment on `struct ethtool_coalesce`): interrupts are held until
//! `(rx_usecs > 0 && time_since_first_completion >= rx_usecs) ||
//! (rx_frames > 0 && completed_frames >= rx_frames)`; the timer is absolute
//! from the first frame not yet signalled, not a gap timer; both may not be
//! 0; `rx_usecs = 0, rx_frames = 1` is no coalescing (the default). With
//! `adaptive_rx` the pair comes from Linux DIM's profile table
//! ([`super::dim`]), which moves one profile per 64 interrupts.
//!
//! Differs: the frame count needs the ring's fill, which a tap cannot tell
//! ([`pollsim_drivers::Nic::rx_pending`]); there only the timer applies
//! (the header allows it: "some implementations ignore max_frames").
//! `rx-usecs-irq`, the `_low`/`_high` pairs and Intel's gap timer and ITR
//! are not modelled.

use pollsim_drivers::NicStats;
use pollsim_sysctl::Mib;

use super::dim::{Dim, Sample};
use super::knobs::{self, Counter, Knob, u32_of};
use crate::kernel::time::Nanos;

/// Largest accepted `rx_usecs`: 100 ms.
pub const MAX_RX_USECS: u32 = 100_000;
/// Largest accepted `rx_frames`.
pub const MAX_RX_FRAMES: u32 = 65_535;

/// Counters. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModStats {
    /// Interrupts raised because rx_usecs passed since the first frame
    pub timer_fires: u64,
    /// Interrupts raised because rx_frames frames were waiting
    pub frame_fires: u64,
}

/// One interface's moderation: knobs, the pending timer, DIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moderation {
    /// `dev.<if>.rx_usecs` (ethtool `rx-usecs`).
    pub rx_usecs: u32,
    /// `dev.<if>.rx_frames` (ethtool `rx-frames`).
    pub rx_frames: u32,
    /// `dev.<if>.adaptive_rx` (ethtool `adaptive-rx`): DIM picks the pair.
    pub adaptive_rx: bool,
    /// When the first frame not yet signalled was seen.
    first_at: Option<Nanos>,
    /// Interrupts taken (DIM's `event_ctr`).
    events: u64,
    /// Linux DIM.
    pub dim: Dim,
    /// Counters.
    pub stats: ModStats,
}

impl Default for Moderation {
    fn default() -> Self {
        Moderation {
            rx_usecs: 0,
            rx_frames: 1,
            adaptive_rx: false,
            first_at: None,
            events: 0,
            dim: Dim::default(),
            stats: ModStats::default(),
        }
    }
}

impl Moderation {
    /// The (usecs, frames) pair in force.
    pub fn pair(&self) -> (u32, u32) {
        if self.adaptive_rx {
            self.dim.profile()
        } else {
            (self.rx_usecs, self.rx_frames)
        }
    }

    /// The line is raised at `now` with `pending` frames in the ring
    /// (`None`: unknown): whether it interrupts the CPU now. O(1).
    pub fn fire(&mut self, now: Nanos, pending: Option<usize>) -> bool {
        let (usecs, frames) = self.pair();
        let first = *self.first_at.get_or_insert(now);
        let by_time = usecs > 0 && now.since(first) >= Nanos::from_micros(u64::from(usecs));
        let fire = if usecs == 0 {
            // No timer: the count decides; an unknown count fires at once.
            pending.is_none_or(|p| p >= frames.max(1) as usize)
        } else {
            by_time || (frames > 0 && pending.is_some_and(|p| p >= frames as usize))
        };
        if fire {
            if by_time {
                self.stats.timer_fires += 1;
            } else if usecs > 0 {
                self.stats.frame_fires += 1;
            }
            self.first_at = None;
        }
        fire
    }

    /// The line is not raised (masked, or the ring is empty): nothing is
    /// waiting to be signalled.
    pub fn idle(&mut self) {
        self.first_at = None;
    }

    /// When the timer of a held interrupt expires, if one is held.
    pub fn deadline(&self) -> Option<Nanos> {
        let (usecs, _) = self.pair();
        (usecs > 0)
            .then_some(self.first_at)
            .flatten()
            .map(|t| t + Nanos::from_micros(u64::from(usecs)))
    }

    /// An interrupt was taken (DIM's event counter).
    pub fn on_irq(&mut self) {
        self.events += 1;
    }

    /// The driver finished a poll or an interrupt's work at `now`, the
    /// NIC's counters then `stats`: DIM's `net_dim()` call.
    pub fn on_completion(&mut self, now: Nanos, stats: &NicStats) {
        if self.adaptive_rx {
            self.dim.net_dim(Sample {
                time: now,
                pkts: stats.rx_packets,
                bytes: stats.rx_bytes,
                events: self.events,
            });
        }
    }

    /// Accepted `rx_usecs` now: not 0 while `rx_frames` is 0.
    pub fn usecs_bounds(&self) -> (i64, i64) {
        (i64::from(self.rx_frames == 0), MAX_RX_USECS.into())
    }

    /// Accepted `rx_frames` now: not 0 while `rx_usecs` is 0.
    pub fn frames_bounds(&self) -> (i64, i64) {
        (i64::from(self.rx_usecs == 0), MAX_RX_FRAMES.into())
    }
}

/// `dev.<if>.*` moderation knobs.
const KNOBS: [Knob<Moderation>; 3] = [
    Knob {
        live: Some(Moderation::usecs_bounds),
        ..Knob::new(
            "rx_usecs",
            "Microseconds an RX interrupt is held after the first frame (ethtool rx-usecs; 0: no timer)",
            (0, MAX_RX_USECS as i64),
            |m| m.rx_usecs.into(),
            |m, v| m.rx_usecs = u32_of(v),
        )
    },
    Knob {
        live: Some(Moderation::frames_bounds),
        ..Knob::new(
            "rx_frames",
            "Frames waiting that raise the RX interrupt at once (ethtool rx-frames; 0: timer only)",
            (0, MAX_RX_FRAMES as i64),
            |m| m.rx_frames.into(),
            |m, v| m.rx_frames = u32_of(v),
        )
    },
    Knob::new(
        "adaptive_rx",
        "Adaptive RX moderation, Linux DIM (ethtool adaptive-rx)",
        (0, 1),
        |m| m.adaptive_rx.into(),
        |m, v| m.adaptive_rx = v == 1,
    ),
];

/// `dev.<if>.*` moderation counters.
const COUNTERS: [Counter<Moderation>; 4] = [
    Counter {
        name: "dim_profile",
        descr: "DIM's profile index in force (0..4)",
        read: |m| m.dim.ix as u64,
    },
    Counter {
        name: "dim_decisions",
        descr: "DIM decisions taken (one per 64 interrupts)",
        read: |m| m.dim.decisions,
    },
    Counter {
        name: "moderation_timer_fires",
        descr: "Interrupts raised because rx_usecs passed since the first frame",
        read: |m| m.stats.timer_fires,
    },
    Counter {
        name: "moderation_frame_fires",
        descr: "Interrupts raised because rx_frames frames were waiting (with a timer set)",
        read: |m| m.stats.frame_fires,
    },
];

/// Registers `dev.<if>.rx_usecs`, `rx_frames`, `adaptive_rx` and the
/// moderation counters of interface `i` under `prefix`.
pub fn register_if_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    prefix: &str,
    get: impl Fn(&C) -> &Moderation + Copy + 'static,
    get_mut: impl Fn(&mut C) -> &mut Moderation + Copy + 'static,
) {
    knobs::register(mib, prefix, &KNOBS, &COUNTERS, get, get_mut);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Nanos {
        Nanos::from_secs(1) + Nanos::from_micros(n)
    }

    #[test]
    fn off_by_default_every_frame_interrupts() {
        let mut m = Moderation::default();
        assert!(m.fire(us(0), Some(1)));
        assert!(m.fire(us(1), None));
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn the_timer_runs_from_the_first_frame_not_the_last() {
        let mut m = Moderation {
            rx_usecs: 100,
            rx_frames: 0,
            ..Moderation::default()
        };
        assert!(!m.fire(us(0), Some(1)));
        assert_eq!(m.deadline(), Some(us(100)));
        // More frames do not restart it (not a gap timer).
        assert!(!m.fire(us(60), Some(20)));
        assert!(!m.fire(us(99), Some(30)));
        assert_eq!(m.deadline(), Some(us(100)));
        assert!(m.fire(us(100), Some(31)));
        assert_eq!((m.stats.timer_fires, m.deadline()), (1, None));
        // The next frame starts a new timer.
        assert!(!m.fire(us(150), Some(1)));
        assert_eq!(m.deadline(), Some(us(250)));
    }

    #[test]
    fn the_frame_count_fires_before_the_timer() {
        let mut m = Moderation {
            rx_usecs: 100,
            rx_frames: 32,
            ..Moderation::default()
        };
        assert!(!m.fire(us(0), Some(1)));
        assert!(!m.fire(us(10), Some(31)));
        assert!(m.fire(us(11), Some(32)));
        assert_eq!(m.stats.frame_fires, 1);
        // A tap cannot count: only the timer holds.
        assert!(!m.fire(us(20), None));
        assert!(m.fire(us(120), None));
    }

    #[test]
    fn both_zero_is_refused_by_the_bounds() {
        let m = Moderation {
            rx_usecs: 50,
            rx_frames: 0,
            ..Moderation::default()
        };
        assert_eq!(
            m.usecs_bounds().0,
            1,
            "rx_usecs may not go to 0 with rx_frames 0"
        );
        assert_eq!(Moderation::default().frames_bounds().0, 1);
    }

    #[test]
    fn adaptive_takes_the_pair_from_dim() {
        let mut m = Moderation {
            adaptive_rx: true,
            ..Moderation::default()
        };
        assert_eq!(m.pair(), (8, 256));
        assert!(!m.fire(us(0), Some(1)));
        assert!(m.fire(us(8), Some(2)));
    }
}
