//! The kernel's clocks: the only place that knows a real clock.
//!
//! Mirrors FreeBSD's `hardclock()` driven by the timer interrupt at `hz`,
//! and `microuptime()`. Differs: the engines never read a clock; the
//! scheduler reads it here and passes `now` down (STYLE.md, point 3), so a
//! virtual clock can replace [`RealClock`] without touching the engines.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::time::{Hz, Nanos};

/// A source of `now` that can also consume CPU time on behalf of a user
/// process (the per-datagram work of an app).
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Nanos;
    /// Spend `span` of CPU time; returns the instant when done.
    fn burn(&mut self, span: Nanos) -> Nanos;
}

/// CLOCK_MONOTONIC, with burning done by spinning on the CPU.
#[derive(Debug, Clone)]
pub struct RealClock {
    epoch: Instant,
}

impl RealClock {
    /// A clock whose epoch is now.
    pub fn new() -> RealClock {
        RealClock {
            epoch: Instant::now(),
        }
    }

    /// The `std` instant of the clock's epoch.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Nanos {
        Nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn burn(&mut self, span: Nanos) -> Nanos {
        let end = self.now() + span;
        loop {
            let now = self.now();
            if now >= end {
                return now;
            }
            std::hint::spin_loop();
        }
    }
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

/// The clock interrupt: a periodic timerfd at `kern.hz` on CLOCK_MONOTONIC.
///
/// The scheduler compares `now` with [`TickTimer::deadline`] (no system
/// call) and only then reads the timerfd, whose expiration count says how
/// many ticks have passed, so late or missed ticks are seen as they are.
#[derive(Debug)]
pub struct TickTimer {
    fd: TimerFd,
    period: Nanos,
    start: Nanos,
    expirations: u64,
}

impl TickTimer {
    /// Start ticking at `hz`, the first tick one period after `now`.
    pub fn start(hz: Hz, now: Nanos) -> nix::Result<TickTimer> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let period = hz.tick();
        let ts = TimeSpec::from_duration(std::time::Duration::from_nanos(period.0));
        fd.set(Expiration::Interval(ts), TimerSetTimeFlags::empty())?;
        Ok(TickTimer {
            fd,
            period,
            start: now,
            expirations: 0,
        })
    }

    /// When the next tick is due, on the clock that started the timer.
    pub fn deadline(&self) -> Nanos {
        Nanos(self.start.0 + (self.expirations + 1) * self.period.0)
    }

    /// Ticks that expired since the last call (0 if none yet).
    pub fn take_expired(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        match nix::unistd::read(&self.fd, &mut buf) {
            Ok(8) => {
                let n = u64::from_ne_bytes(buf);
                self.expirations += n;
                n
            }
            _ => 0,
        }
    }

    /// Ticks taken so far.
    pub fn ticks(&self) -> u64 {
        self.expirations
    }
}

impl AsFd for TickTimer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
