//! The kernel's notion of a clock, and the virtual one.
//!
//! Mirrors FreeBSD's `microuptime()`. Differs: the engines never read a
//! clock; a scheduler reads one and passes `now` down (STYLE.md, point 3).
//! The real clock (CLOCK_MONOTONIC, the timerfd of the clock interrupt)
//! lives with the rest of the host-facing runtime in `crate::rt`, so that
//! nothing under `kernel/` touches the host.

use super::time::Nanos;

/// A source of `now` that can also consume CPU time on behalf of a user
/// process (the per-datagram work of an app).
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Nanos;
    /// Spend `span` of CPU time; returns the instant when done.
    fn burn(&mut self, span: Nanos) -> Nanos;
}

/// Virtual time: `now` moves only when the scheduler charges work to it
/// (the cost model) or skips idle time, and burning CPU for a user process
/// is just advancing it. Used by [`super::vsched`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtualClock {
    now: Nanos,
}

impl VirtualClock {
    /// A virtual clock reading `start`.
    pub fn new(start: Nanos) -> VirtualClock {
        VirtualClock { now: start }
    }

    /// Charge `span` of CPU time: the clock moves on by it.
    pub fn advance(&mut self, span: Nanos) {
        self.now += span;
    }

    /// Skip to `t` (idle time); never moves backwards.
    pub fn skip_to(&mut self, t: Nanos) {
        self.now = self.now.max(t);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Nanos {
        self.now
    }

    fn burn(&mut self, span: Nanos) -> Nanos {
        self.now += span;
        self.now
    }
}
