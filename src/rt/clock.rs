//! The real clock, which also detects host stalls and can hide them from
//! the kernel, and the clock interrupt's timerfd.
//!
//! Mirrors FreeBSD's `microuptime()` and the timer that drives
//! `hardclock()` at `hz`. Differs in one deliberate way, behind
//! `kern.sched.stall_compensate` (on by default): pollsim's "CPU" is a
//! thread that the host may stop at any moment (a hypervisor's steal,
//! another process of the guest). A real CPU is never stopped under its
//! kernel, so a stall is made invisible to it: the clock the kernel reads
//! stands still for the stall ([`RealClock::now`] is CLOCK_MONOTONIC less
//! the time stolen), and the tick grid is re-phased after it
//! (the grid of [`TickTimer`] is on the kernel's clock). Without that, a stall in the middle of a
//! polling tick looks to kern_poll.c like a tick overrun (a lost poll that
//! cuts `burst` by an eighth) and like kernel load (`kern_load` above its
//! share, `burst` falls), and the kernel gives up input it could have
//! taken.
//!
//! How a stall is seen: the thread's CPU time (CLOCK_THREAD_CPUTIME_ID;
//! with paravirtual steal accounting it excludes the hypervisor's steal)
//! advances with wall time while the thread runs. When two successive
//! reads of the clock are more than [`CHECK_GAP`] apart, the clock reads
//! the thread's CPU time too: wall time minus CPU time since the previous
//! such read is time the thread did not run. The scheduler tells the clock
//! when it blocks ([`RealClock::resume`]), so idling in `epoll_wait` is not
//! a stall.

use std::cell::Cell;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::ClockId;

use crate::kernel::clock::Clock;
use crate::kernel::host::HostStats;
use crate::kernel::time::{Hz, Nanos};

/// Reads of the clock closer together than this are not checked for a
/// stall (reading the thread's CPU time costs a system call, about
/// 0.5 µs here, against 0.04 µs for the wall clock).
pub const CHECK_GAP: Nanos = Nanos::from_micros(10);
/// Stalls detected between two drains that are kept one by one (the rest
/// still count in the totals).
const PENDING: usize = 8;

fn read(id: ClockId) -> u64 {
    nix::time::clock_gettime(id).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// Stall detection state: the last read, and the last (wall, CPU) anchor.
#[derive(Clone, Copy, Debug, Default)]
struct Detector {
    last_wall: u64,
    anchor_wall: u64,
    anchor_cpu: u64,
    min: u64,
    compensate: bool,
}

/// Stalls seen and not yet drained.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    n: usize,
    stalls: [(u64, u64); PENDING],
}

/// CLOCK_MONOTONIC less the time the host stole (when compensating), with
/// burning done by spinning on the CPU.
#[derive(Debug, Clone)]
pub struct RealClock {
    epoch: u64,
    stolen: Cell<u64>,
    det: Cell<Detector>,
    pending: Cell<Pending>,
}

impl RealClock {
    /// A clock whose epoch is now, detecting stalls with the defaults of
    /// [`HostStats`].
    pub fn new() -> RealClock {
        let c = RealClock {
            epoch: read(ClockId::CLOCK_MONOTONIC),
            stolen: Cell::new(0),
            det: Cell::new(Detector::default()),
            pending: Cell::new(Pending::default()),
        };
        c.configure(&HostStats::default());
        c.resume();
        c
    }

    /// Wall time since the epoch (CLOCK_MONOTONIC), stalls included: for
    /// rates as the outside world sees them and for the run's duration.
    pub fn wall(&self) -> Nanos {
        Nanos(read(ClockId::CLOCK_MONOTONIC).saturating_sub(self.epoch))
    }

    /// Time the clock has stood still for host stalls.
    pub fn stolen(&self) -> Nanos {
        Nanos(self.stolen.get())
    }

    /// Take the knobs `kern.sched.stall_min_us` and
    /// `kern.sched.stall_compensate` from `h`.
    pub fn configure(&self, h: &HostStats) {
        let mut d = self.det.get();
        d.min = h.stall_min.0;
        d.compensate = h.compensate;
        self.det.set(d);
    }

    /// The thread is about to run again after blocking: the time it spent
    /// blocked is not a stall.
    pub fn resume(&self) {
        let wall = self.wall().0;
        let mut d = self.det.get();
        d.last_wall = wall;
        d.anchor_wall = wall;
        d.anchor_cpu = read(ClockId::CLOCK_THREAD_CPUTIME_ID);
        self.det.set(d);
    }

    /// Hand every stall seen since the last call to `f(duration, stolen)`.
    pub fn take_stalls(&self, mut f: impl FnMut(Nanos, bool)) {
        let p = self.pending.replace(Pending::default());
        for &(d, stolen) in &p.stalls[..p.n.min(PENDING)] {
            f(Nanos(d), stolen == 1);
        }
    }

    /// Take `d` more off the kernel's clock: a unit of work ran `d` past
    /// what it could take on a CPU of its own (a hiccup, see
    /// [`super::sched`]). The caller guarantees that no reading handed to
    /// the kernel since the unit began is later than the clock after this.
    pub fn forgive(&self, d: Nanos) {
        self.stolen.set(self.stolen.get() + d.0);
    }

    /// Check the span since the last read for a stall; returns the time to
    /// take off the kernel's clock for it.
    fn check(&self, wall: u64) -> u64 {
        let mut d = self.det.get();
        let gap = wall.saturating_sub(d.last_wall);
        d.last_wall = wall;
        if gap < CHECK_GAP.0 {
            self.det.set(d);
            return 0;
        }
        let cpu = read(ClockId::CLOCK_THREAD_CPUTIME_ID);
        let off = wall
            .saturating_sub(d.anchor_wall)
            .saturating_sub(cpu.saturating_sub(d.anchor_cpu));
        d.anchor_wall = wall;
        d.anchor_cpu = cpu;
        self.det.set(d);
        if off < d.min {
            return 0;
        }
        // Time not run since the anchor may include bits of earlier short
        // gaps; the clock never goes back past its previous reading.
        let steal = if d.compensate { off.min(gap) } else { 0 };
        let mut p = self.pending.get();
        if p.n < PENDING {
            p.stalls[p.n] = (off, u64::from(steal > 0));
            p.n += 1;
            self.pending.set(p);
        }
        steal
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Nanos {
        let wall = self.wall().0;
        let steal = self.check(wall);
        if steal > 0 {
            self.stolen.set(self.stolen.get() + steal);
        }
        Nanos(wall.saturating_sub(self.stolen.get()))
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

/// The clock interrupt at `kern.hz`.
///
/// Ticks are due on the kernel's clock ([`RealClock::now`]) at `start + k ×
/// period`; the scheduler compares `now` with [`TickTimer::deadline`] (no
/// system call) and [`TickTimer::take_expired`] counts the ticks that have
/// passed, so late or missed ticks are seen as they are. Since the grid is
/// on the kernel's clock, time stolen by a host stall moves it along.
///
/// A timerfd on CLOCK_MONOTONIC is armed only while the idle loop may block
/// in epoll (`machdep.idle=hlt`), to wake it at the next deadline
/// ([`TickTimer::arm`], [`TickTimer::rephase`] after a stall). A spinning
/// idle loop reads the clock itself, and a disarmed timer spares the guest
/// a timer interrupt per tick (on this VM, about 1,000 a second of VM
/// exits that the thread pays for in CPU time).
#[derive(Debug)]
pub struct TickTimer {
    fd: TimerFd,
    period: Nanos,
    start: Nanos,
    expirations: u64,
    armed: bool,
    shift: Nanos,
}

impl TickTimer {
    /// A tick grid at `hz` whose first tick is one period after `now`,
    /// with its timerfd disarmed.
    pub fn start(hz: Hz, now: Nanos) -> nix::Result<TickTimer> {
        let fd = TimerFd::new(
            nix::sys::timerfd::ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(TickTimer {
            fd,
            period: hz.tick(),
            start: now,
            expirations: 0,
            armed: false,
            shift: Nanos::ZERO,
        })
    }

    /// When the next tick is due, on the kernel's clock.
    pub fn deadline(&self) -> Nanos {
        Nanos(self.start.0 + (self.expirations + 1) * self.period.0)
    }

    /// Ticks due by `now` and not yet taken (0 if none), on the kernel's
    /// clock; drains the timerfd's count when it is armed, so that it stops
    /// being readable.
    pub fn take_expired(&mut self, now: Nanos) -> u64 {
        if self.armed {
            let mut buf = [0u8; 8];
            let _ = nix::unistd::read(&self.fd, &mut buf);
        }
        let due = now.since(self.start).0 / self.period.0;
        let n = due.saturating_sub(self.expirations);
        self.expirations += n;
        n
    }

    /// Ticks taken so far.
    pub fn ticks(&self) -> u64 {
        self.expirations
    }

    /// Arm the timerfd (to wake a blocked idle loop at each deadline) or
    /// disarm it. A no-op if nothing changes.
    pub fn arm(&mut self, on: bool, clock: &RealClock) -> nix::Result<()> {
        if on == self.armed {
            return Ok(());
        }
        self.armed = on;
        if on {
            self.shift = Nanos(u64::MAX);
            self.rephase(clock)
        } else {
            self.fd.unset()
        }
    }

    /// Keep an armed timerfd on the grid when `clock` has stolen time:
    /// the next expiration comes when the kernel's clock reaches
    /// [`TickTimer::deadline`]. A no-op if disarmed or nothing changed.
    pub fn rephase(&mut self, clock: &RealClock) -> nix::Result<()> {
        let stolen = clock.stolen();
        if !self.armed || stolen == self.shift {
            return Ok(());
        }
        self.shift = stolen;
        let at = clock.epoch + self.deadline().0 + stolen.0;
        let ts = |ns: u64| TimeSpec::from_duration(std::time::Duration::from_nanos(ns));
        self.fd.set(
            Expiration::IntervalDelayed(ts(at), ts(self.period.0)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )
    }
}

impl AsFd for TickTimer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
