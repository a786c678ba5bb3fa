//! Units of simulated time: [`Nanos`] (an instant or a span on the kernel's
//! clock, in nanoseconds) and [`Hz`] (the rate of `hardclock`, `kern.hz`).
//!
//! Mirrors FreeBSD's `hz` and `microuptime()`; differs in that every engine
//! takes `now` as a parameter instead of reading a clock (STYLE.md, point 3),
//! so the same code runs on the real clock and on a virtual one.

use std::fmt;

/// An instant or a span on the kernel's clock, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    /// Zero: the epoch of the clock or an empty span.
    pub const ZERO: Nanos = Nanos(0);

    /// A span of `us` microseconds.
    pub const fn from_micros(us: u64) -> Nanos {
        Nanos(us * 1_000)
    }

    /// A span of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Nanos {
        Nanos(ms * 1_000_000)
    }

    /// A span of `s` seconds.
    pub const fn from_secs(s: u64) -> Nanos {
        Nanos(s * 1_000_000_000)
    }

    /// The span from `earlier` to `self`, zero if `earlier` is later.
    pub const fn since(self, earlier: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(earlier.0))
    }

    /// This span in whole microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// This span in seconds, as a float (for display and rates only).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl std::ops::Add for Nanos {
    type Output = Nanos;
    fn add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign for Nanos {
    fn add_assign(&mut self, rhs: Nanos) {
        self.0 += rhs.0;
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

/// The rate of the simulated clock interrupt (`kern.hz`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hz(u32);

impl Hz {
    /// Lowest accepted `kern.hz`.
    pub const MIN: u32 = 100;
    /// Highest accepted `kern.hz`.
    pub const MAX: u32 = 10_000;
    /// FreeBSD's default since 2004, and ours.
    pub const DEFAULT: Hz = Hz(1000);

    /// `kern.hz = hz`, or an error naming the accepted range.
    pub fn new(hz: u32) -> Result<Hz, HzError> {
        if (Self::MIN..=Self::MAX).contains(&hz) {
            Ok(Hz(hz))
        } else {
            Err(HzError(hz))
        }
    }

    /// The rate in ticks per second.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The length of one tick.
    pub const fn tick(self) -> Nanos {
        Nanos(1_000_000_000 / self.0 as u64)
    }
}

impl Default for Hz {
    fn default() -> Hz {
        Hz::DEFAULT
    }
}

/// `kern.hz` outside 100..=10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("kern.hz={0}: out of range ({min}..{max})", min = Hz::MIN, max = Hz::MAX)]
pub struct HzError(pub u32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hz_bounds_are_inclusive() {
        assert!(Hz::new(99).is_err());
        assert_eq!(Hz::new(100).unwrap().tick(), Nanos::from_millis(10));
        assert_eq!(Hz::new(10_000).unwrap().tick(), Nanos::from_micros(100));
        assert!(Hz::new(10_001).is_err());
    }

    #[test]
    fn since_saturates() {
        assert_eq!(Nanos(5).since(Nanos(7)), Nanos::ZERO);
        assert_eq!(Nanos(7).since(Nanos(5)), Nanos(2));
    }
}
