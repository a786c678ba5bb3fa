//! Seeded arrival processes for [`crate::VirtNic`]: when frames reach the
//! wire, in nanoseconds of virtual time.
//!
//! Three patterns, as a traffic generator offers them: a constant rate
//! (evenly spaced frames, like a paced `pollsim flood`), a Poisson process
//! (exponential gaps, many independent senders), and on/off bursts (a
//! Poisson process during `on`, silence during `off`). Randomness comes from
//! `rand_pcg`'s PCG-64 (MCG variant), seeded: the same seed gives the same
//! times on every machine, which is what makes the simulation's results
//! byte-identical across runs. Exponential gaps come from `rand_distr`'s
//! `Exp`, which uses portable (libm) math.

use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use rand_pcg::Pcg64Mcg;

/// Nanoseconds per second.
const NS_PER_SEC: f64 = 1e9;

/// The shape of an arrival process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pattern {
    /// Evenly spaced frames at `pps` frames per second.
    Constant {
        /// Frames per second.
        pps: f64,
    },
    /// A Poisson process of mean rate `pps`.
    Poisson {
        /// Mean frames per second.
        pps: f64,
    },
    /// A Poisson process at `pps` during `on_ns`, then `off_ns` of silence,
    /// repeated; the mean rate is `pps * on / (on + off)`.
    OnOff {
        /// Frames per second while on.
        pps: f64,
        /// Length of a burst, ns.
        on_ns: u64,
        /// Length of a silence, ns.
        off_ns: u64,
    },
}

/// A refused pattern: the message names the bound.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum PatternError {
    /// The rate is not a finite number in 1..=1e9 frames per second.
    #[error("arrival rate {0} pps: must be between 1 and 1e9")]
    Rate(f64),
    /// An on/off pattern with an empty `on` period.
    #[error("on/off arrivals: the on period must be at least 1 ns")]
    EmptyOn,
}

impl Pattern {
    /// The mean rate in frames per second.
    pub fn mean_pps(&self) -> f64 {
        match *self {
            Pattern::Constant { pps } | Pattern::Poisson { pps } => pps,
            Pattern::OnOff { pps, on_ns, off_ns } => {
                pps * on_ns as f64 / (on_ns as f64 + off_ns as f64)
            }
        }
    }

    fn rate(&self) -> f64 {
        match *self {
            Pattern::Constant { pps } | Pattern::Poisson { pps } | Pattern::OnOff { pps, .. } => {
                pps
            }
        }
    }
}

/// A deterministic stream of arrival times, ascending.
#[derive(Clone, Debug)]
pub struct Arrivals {
    pattern: Pattern,
    rng: Pcg64Mcg,
    exp: Exp<f64>,
    /// Start of the stream, ns.
    start: u64,
    /// The next arrival, ns (absolute).
    next: u64,
    /// Arrivals produced so far.
    produced: u64,
    /// Exact position in the Poisson process, ns since `start`, as a float
    /// so that sub-nanosecond gaps do not round away the rate.
    t: f64,
}

impl Arrivals {
    /// A stream of `pattern` whose first arrival follows `start_ns`, drawn
    /// from `seed`.
    pub fn new(pattern: Pattern, seed: u64, start_ns: u64) -> Result<Arrivals, PatternError> {
        let pps = pattern.rate();
        if !(pps.is_finite() && (1.0..=1e9).contains(&pps)) {
            return Err(PatternError::Rate(pps));
        }
        if let Pattern::OnOff { on_ns: 0, .. } = pattern {
            return Err(PatternError::EmptyOn);
        }
        let exp = Exp::new(pps / NS_PER_SEC).map_err(|_| PatternError::Rate(pps))?;
        let mut a = Arrivals {
            pattern,
            rng: Pcg64Mcg::seed_from_u64(seed),
            exp,
            start: start_ns,
            next: start_ns,
            produced: 0,
            t: 0.0,
        };
        a.next = a.draw();
        Ok(a)
    }

    /// The pattern.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// When the next frame arrives, ns.
    pub fn peek(&self) -> u64 {
        self.next
    }

    /// Arrivals taken so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Take the next arrival if it is due at or before `now`. O(1).
    pub fn take_due(&mut self, now: u64) -> Option<u64> {
        if self.next > now {
            return None;
        }
        let t = self.next;
        self.produced += 1;
        self.next = self.draw().max(t);
        Some(t)
    }

    /// The time of the arrival after the current position.
    fn draw(&mut self) -> u64 {
        match self.pattern {
            Pattern::Constant { pps } => {
                // The n-th frame at exactly n / pps: no drift over long runs.
                let n = (self.produced + 1) as f64;
                self.at(n * NS_PER_SEC / pps)
            }
            Pattern::Poisson { .. } => {
                self.t += self.exp.sample(&mut self.rng);
                self.at(self.t)
            }
            Pattern::OnOff { on_ns, off_ns, .. } => {
                self.t += self.exp.sample(&mut self.rng);
                // Time spent in bursts maps onto the wall: skip the silences.
                let (on, period) = (on_ns as f64, (on_ns + off_ns) as f64);
                let bursts = (self.t / on).floor();
                self.at(bursts * period + (self.t - bursts * on))
            }
        }
    }

    fn at(&self, offset_ns: f64) -> u64 {
        // Offsets are non-negative and far below 2^64 ns (584 years).
        #[expect(clippy::cast_sign_loss, reason = "offset is non-negative")]
        let off = offset_ns.round() as u64;
        self.start.saturating_add(off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(mut a: Arrivals, until: u64) -> u64 {
        let mut n = 0;
        let mut last = 0;
        while let Some(t) = a.take_due(until) {
            assert!(t >= last, "arrivals must ascend");
            last = t;
            n += 1;
        }
        n
    }

    #[test]
    fn constant_rate_is_exact() {
        let a = Arrivals::new(Pattern::Constant { pps: 1000.0 }, 1, 0).unwrap();
        assert_eq!(a.peek(), 1_000_000);
        assert_eq!(count(a, 1_000_000_000), 1000);
    }

    #[test]
    fn poisson_is_seeded_and_near_its_mean() {
        let p = Pattern::Poisson { pps: 100_000.0 };
        let n = count(Arrivals::new(p, 7, 0).unwrap(), 1_000_000_000);
        assert_eq!(n, count(Arrivals::new(p, 7, 0).unwrap(), 1_000_000_000));
        assert_ne!(n, count(Arrivals::new(p, 8, 0).unwrap(), 1_000_000_000));
        // 100k expected, sd ~316: 5 sd either way.
        assert!((98_400..=101_600).contains(&n), "{n}");
    }

    #[test]
    fn on_off_is_silent_when_off() {
        let p = Pattern::OnOff {
            pps: 1e6,
            on_ns: 1_000_000,
            off_ns: 3_000_000,
        };
        assert!((p.mean_pps() - 250_000.0).abs() < 1e-6);
        let mut a = Arrivals::new(p, 3, 0).unwrap();
        while let Some(t) = a.take_due(40_000_000) {
            assert!(t % 4_000_000 <= 1_000_000, "{t} falls in a silence");
        }
        let n = a.produced();
        assert!((9_000..=11_000).contains(&n), "{n}");
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Arrivals::new(Pattern::Poisson { pps: 0.0 }, 1, 0).is_err());
        assert!(Arrivals::new(Pattern::Constant { pps: f64::NAN }, 1, 0).is_err());
        let p = Pattern::OnOff {
            pps: 10.0,
            on_ns: 0,
            off_ns: 5,
        };
        assert_eq!(Arrivals::new(p, 1, 0).unwrap_err(), PatternError::EmptyOn);
    }
}
