//! Device polling: a port of FreeBSD 14's `sys/kern/kern_poll.c` as a pure
//! state machine.
//!
//! Mirrors, one to one:
//!
//! | FreeBSD                       | here                          |
//! |-------------------------------|-------------------------------|
//! | `hardclock_device_poll()`     | [`PollEngine::hardclock`]     |
//! | `netisr_poll()`               | [`PollEngine::netisr_poll`]   |
//! | `netisr_pollmore()`           | [`PollEngine::netisr_pollmore`] |
//! | `ether_poll()`                | [`PollEngine::ether_poll`]    |
//! | body of `poll_idle()`'s loop  | [`PollEngine::poll_idle`]     |
//! | `ether_poll_register()` / `ether_poll_deregister()` | [`PollEngine::register`] / [`PollEngine::deregister`] |
//! | `poll_burst_max_sysctl()` and the other handlers | [`PollEngine::set`] |
//! | the `kern.polling.*` OIDs     | [`register_sysctl`]           |
//!
//! The adaptation is FreeBSD's: each tick `netisr_poll` hands `burst` frames
//! of budget to the handlers in chunks of `each_burst`; when the tick's work
//! is done `netisr_pollmore` measures the share of the tick it took
//! (`kern_load`) and moves `burst` by one toward the budget that leaves
//! `user_frac` percent of the CPU to user processes.
//!
//! What differs, and why:
//!
//! - **Time is a parameter** (STYLE.md point 3): every entry point takes
//!   `now` where FreeBSD calls `microuptime()`, so the same engine runs under
//!   the real clock and the virtual one, and tests need no sleeps. Times are
//!   in nanoseconds instead of microseconds; the thresholds are the same
//!   (half a tick for `short_ticks`, percent of a tick for `kern_load`).
//! - **No `poll_mtx`**: the simulated kernel is one thread, and every method
//!   takes `&mut self`.
//! - **The caller owns the handler list.** FreeBSD keeps `pr[]` of
//!   `(handler, ifp)`; here the engine keeps only the count (`handlers`) and
//!   calls back `poll(index, cmd, count)` for `index` in `0..handlers`, so
//!   the kernel can keep its NICs in its own `Vec` and give each poll the
//!   context it needs (netisr queue, stack). [`PollEngine::deregister`]
//!   mirrors FreeBSD's "last entry replaces this one", which the caller
//!   reproduces with `Vec::swap_remove`.
//! - **The netisr is the caller's.** FreeBSD's `netisr_sched_poll()` wakes
//!   the software interrupt thread; here it only sets the two flags, and the
//!   scheduler asks [`PollEngine::is_scheduled`], then calls `netisr_poll`,
//!   runs the other netisr work, and calls `netisr_pollmore`, in that order.
//! - **Counters are 64-bit** (FreeBSD's are `uint32_t` and wrap).
//! - `poll_shutting_down` (set at shutdown) is not modelled: the kernel
//!   deregisters its handlers instead.

use pollsim_drivers::PollCmd;
use pollsim_sysctl::Mib;

use super::time::{Hz, Nanos};

/// Lowest accepted `kern.polling.burst_max` (FreeBSD's `MIN_POLL_BURST_MAX`);
/// also the value `each_burst` falls back to when `burst_max` is lowered
/// below it.
pub const MIN_POLL_BURST_MAX: u32 = 10;
/// Highest accepted `kern.polling.burst_max` (FreeBSD 14's
/// `MAX_POLL_BURST_MAX`, raised from 1000 for fast NICs).
pub const MAX_POLL_BURST_MAX: u32 = 20_000;
/// Most handlers that can register (FreeBSD's `POLL_LIST_LEN`).
pub const POLL_LIST_LEN: u32 = 128;
/// Initial `burst`: small, so polling starts gently and climbs.
pub const DEFAULT_BURST: u32 = 5;
/// Default `burst_max`: "good for 100Mbit net and HZ=1000" (FreeBSD).
pub const DEFAULT_BURST_MAX: u32 = 150;
/// Default `each_burst`: small chunks let other netisr work run between
/// them, so one NIC cannot fill the ipintrq in one go.
pub const DEFAULT_EACH_BURST: u32 = 5;
/// Default `user_frac`: half the CPU for user processes.
pub const DEFAULT_USER_FRAC: u32 = 50;
/// Highest `user_frac`: at 100 the kernel would get no share at all.
pub const MAX_USER_FRAC: u32 = 99;
/// Default `reg_frac`: status registers are costly, check them every 20th
/// tick.
pub const DEFAULT_REG_FRAC: u32 = 20;
/// More pending polls than this at a hardclock means netisr is stuck:
/// forget them and start over (counted in `stalled`).
pub const STALL_PENDING_POLLS: u32 = 100;

/// Where the engine is in its tick (`kern.polling.phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Phase {
    /// 0: nothing pending; the next hardclock schedules netisr.
    Idle = 0,
    /// 1: hardclock is scheduling netisr (never seen outside `hardclock`).
    Scheduling = 1,
    /// 2: netisr scheduled by hardclock, `netisr_poll` not yet run.
    Scheduled = 2,
    /// 3: inside `netisr_poll`, calling the handlers.
    Polling = 3,
    /// 4: `netisr_poll` done, `netisr_pollmore` not yet run.
    Polled = 4,
    /// 5: `netisr_pollmore` ran with budget left in this tick.
    PollingMore = 5,
    /// 6: ticks were lost; polling restarted at once with a smaller burst.
    Restarted = 6,
}

impl Phase {
    /// The number `sysctl kern.polling.phase` shows.
    pub fn number(self) -> u32 {
        u32::from(self as u8)
    }
}

/// A device's poll handler (FreeBSD's `poll_handler_t`): move up to `count`
/// frames and return how many were taken.
pub trait PollHandler {
    /// Polls the device once; bounded by `count` frames.
    fn poll(&mut self, cmd: PollCmd, count: u32) -> u32;
}

impl<H: PollHandler + ?Sized> PollHandler for Box<H> {
    fn poll(&mut self, cmd: PollCmd, count: u32) -> u32 {
        (**self).poll(cmd, count)
    }
}

impl<H: PollHandler + ?Sized> PollHandler for &mut H {
    fn poll(&mut self, cmd: PollCmd, count: u32) -> u32 {
        (**self).poll(cmd, count)
    }
}

/// Adapts a caller-owned handler list to the `poll(index, cmd, count)`
/// callback of [`PollEngine::netisr_poll`] and [`PollEngine::ether_poll`].
/// Panics if the engine counts more handlers than `list` holds.
pub fn poll_list<H: PollHandler>(list: &mut [H]) -> impl FnMut(usize, PollCmd, u32) -> u32 + '_ {
    move |index, cmd, count| list[index].poll(cmd, count)
}

/// A refused knob write or (de)registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The value is outside the knob's accepted range at this moment
    /// (FreeBSD's handlers return `EINVAL`); nothing changed.
    #[error("kern.polling.{knob}={value}: Invalid argument ({min}..{max})")]
    OutOfRange {
        /// The knob's name below `kern.polling`.
        knob: &'static str,
        /// The value refused.
        value: i64,
        /// Lowest accepted value, inclusive.
        min: i64,
        /// Highest accepted value, inclusive.
        max: i64,
    },
    /// All `POLL_LIST_LEN` slots are taken (`ENOMEM`).
    #[error("poll handlers list full ({POLL_LIST_LEN}), maybe a broken driver?")]
    ListFull,
    /// No registered handler has this index (`ENOENT`).
    #[error("poll handler {0} is not registered")]
    NotRegistered(usize),
}

/// A read-write `kern.polling` knob. Each carries its FreeBSD name,
/// description, default and documented bounds; [`PollEngine::bounds`] gives
/// the bounds in force, which for `each_burst` and `reg_frac` depend on
/// other state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Knob {
    /// `burst_max`: upper bound of `burst`; 10..=20000. Lowering it lowers
    /// `burst` to it and resets an `each_burst` above it to 10.
    BurstMax,
    /// `each_burst`: chunk handed to every handler per `netisr_poll`;
    /// 1..=`burst_max`.
    EachBurst,
    /// `user_frac`: percent of each tick left to user processes; 0..=99.
    UserFrac,
    /// `reg_frac`: every this many ticks the poll also checks status;
    /// 1..=`kern.hz`. Resets the tick count if it is not below the new value.
    RegFrac,
    /// `idle_poll`: also poll from the idle loop; 0 or 1.
    IdlePoll,
}

impl Knob {
    /// Every knob, in FreeBSD's declaration order.
    pub const ALL: [Knob; 5] = [
        Knob::BurstMax,
        Knob::EachBurst,
        Knob::IdlePoll,
        Knob::UserFrac,
        Knob::RegFrac,
    ];

    /// Name below `kern.polling`.
    pub fn name(self) -> &'static str {
        match self {
            Knob::BurstMax => "burst_max",
            Knob::EachBurst => "each_burst",
            Knob::UserFrac => "user_frac",
            Knob::RegFrac => "reg_frac",
            Knob::IdlePoll => "idle_poll",
        }
    }

    /// FreeBSD's description of the OID.
    pub fn description(self) -> &'static str {
        match self {
            Knob::BurstMax => "Max Polling burst size",
            Knob::EachBurst => "Max size of each burst",
            Knob::UserFrac => "Desired user fraction of cpu time",
            Knob::RegFrac => "Every this many cycles check registers",
            Knob::IdlePoll => "Enable device polling in idle loop",
        }
    }

    /// Value at boot.
    pub fn default_value(self) -> u32 {
        match self {
            Knob::BurstMax => DEFAULT_BURST_MAX,
            Knob::EachBurst => DEFAULT_EACH_BURST,
            Knob::UserFrac => DEFAULT_USER_FRAC,
            Knob::RegFrac => DEFAULT_REG_FRAC,
            Knob::IdlePoll => 0,
        }
    }

    /// Widest bounds, whatever the other state: for documentation.
    pub fn static_bounds(self) -> (i64, i64) {
        match self {
            Knob::BurstMax => (MIN_POLL_BURST_MAX.into(), MAX_POLL_BURST_MAX.into()),
            Knob::EachBurst => (1, MAX_POLL_BURST_MAX.into()),
            Knob::UserFrac => (0, MAX_USER_FRAC.into()),
            Knob::RegFrac => (1, Hz::MAX.into()),
            Knob::IdlePoll => (0, 1),
        }
    }
}

/// The state of `kern_poll.c`: knobs, the adaptive burst, the tick's
/// progress and the diagnostics. Field docs are the sysctl descriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollEngine {
    /// `kern.hz`, fixed at boot; bounds `reg_frac` and scales `kern_load`.
    hz: Hz,
    /// Current polling burst size (RO): frames of budget per handler per
    /// tick, moved by one each tick between 1 and `burst_max`.
    burst: u32,
    /// Max Polling burst size (RW, [`Knob::BurstMax`]).
    burst_max: u32,
    /// Max size of each burst (RW, [`Knob::EachBurst`]).
    each_burst: u32,
    /// Enable device polling in idle loop (RW, [`Knob::IdlePoll`]).
    idle_poll: bool,
    /// Desired user fraction of cpu time (RW, [`Knob::UserFrac`]).
    user_frac: u32,
    /// Every this many cycles check registers (RW, [`Knob::RegFrac`]).
    reg_frac: u32,
    /// Ticks since the last status check; always below `reg_frac`.
    reg_frac_count: u32,
    /// Whether this CPU's polls check status every `reg_frac` ticks: with
    /// several CPUs only CPU 0's do (DragonFly's ifpoll polls status on
    /// CPU 0 alone); the others poll their rings only.
    pub status_poll: bool,
    /// # of residual cycles in burst (RO): budget left in this tick.
    residual_burst: u32,
    /// Number of registered poll handlers (RO).
    handlers: u32,
    /// Polling phase (RO).
    phase: Phase,
    /// Do we need to poll again (RO): hardclocks not yet answered by a
    /// completed `netisr_pollmore`.
    pending_polls: u32,
    /// How many times we would have lost a poll tick (RO).
    lost_polls: u64,
    /// Hardclock ticks shorter than they should be (RO).
    short_ticks: u64,
    /// suspect event (RO): a hardclock found netisr scheduled but not run.
    suspect: u64,
    /// potential stalls (RO): `pending_polls` went over 100.
    stalled: u64,
    /// `netisr_poll` is due (FreeBSD's `netisr_poll_scheduled`).
    poll_scheduled: bool,
    /// `netisr_pollmore` is due (FreeBSD's `netisr_pollmore_scheduled`).
    pollmore_scheduled: bool,
    /// Last hardclock that was not short.
    prev_t: Nanos,
    /// Start of this tick's polling, for `kern_load`.
    poll_start_t: Nanos,
}

impl Default for PollEngine {
    fn default() -> Self {
        Self::new(Hz::DEFAULT)
    }
}

impl PollEngine {
    /// The engine at boot with FreeBSD's defaults and no handlers.
    pub fn new(hz: Hz) -> Self {
        let engine = PollEngine {
            hz,
            burst: DEFAULT_BURST,
            burst_max: DEFAULT_BURST_MAX,
            each_burst: DEFAULT_EACH_BURST,
            idle_poll: false,
            user_frac: DEFAULT_USER_FRAC,
            reg_frac: DEFAULT_REG_FRAC.min(hz.get()),
            reg_frac_count: 0,
            status_poll: true,
            residual_burst: 0,
            handlers: 0,
            phase: Phase::Idle,
            pending_polls: 0,
            lost_polls: 0,
            short_ticks: 0,
            suspect: 0,
            stalled: 0,
            poll_scheduled: false,
            pollmore_scheduled: false,
            prev_t: Nanos::ZERO,
            poll_start_t: Nanos::ZERO,
        };
        engine.check_invariants();
        engine
    }

    /// The clock interrupt's hook (`hardclock_device_poll`): schedules
    /// netisr polling unless it is already under way, and counts short
    /// ticks, lost ticks, suspect events and stalls. O(1).
    pub fn hardclock(&mut self, now: Nanos) {
        if self.handlers == 0 {
            return;
        }
        let delta = u128::from(now.since(self.prev_t).0);
        if delta * u128::from(self.hz.get()) < 500_000_000 {
            self.short_ticks += 1;
        } else {
            self.prev_t = now;
        }
        if self.pending_polls > STALL_PENDING_POLLS {
            self.stalled += 1;
            self.pending_polls = 0;
            self.phase = Phase::Idle;
        }
        if self.phase <= Phase::Scheduled {
            if self.phase != Phase::Idle {
                self.suspect += 1;
            }
            self.phase = Phase::Scheduling;
            self.schedule();
            self.phase = Phase::Scheduled;
        }
        if self.pending_polls > 0 {
            self.lost_polls += 1;
        }
        self.pending_polls += 1;
        self.check_invariants();
    }

    /// One chunk of the tick's polling (`netisr_poll`): if scheduled, calls
    /// `poll(index, cmd, count)` once for every registered handler in
    /// registration order, with `count = min(residual_burst, each_burst)`.
    /// The first chunk of a tick starts the tick's clock and, every
    /// `reg_frac` ticks, asks for a status check. Returns the frames taken.
    ///
    /// Bound: `handlers` calls, each bounded by `each_burst` frames.
    pub fn netisr_poll(
        &mut self,
        now: Nanos,
        mut poll: impl FnMut(usize, PollCmd, u32) -> u32,
    ) -> u32 {
        if !self.poll_scheduled {
            return 0;
        }
        self.poll_scheduled = false;
        self.phase = Phase::Polling;
        let mut cmd = PollCmd::PollOnly;
        if self.residual_burst == 0 {
            self.poll_start_t = now;
            self.reg_frac_count += 1;
            if self.reg_frac_count == self.reg_frac {
                if self.status_poll {
                    cmd = PollCmd::PollAndCheckStatus;
                }
                self.reg_frac_count = 0;
            }
            self.residual_burst = self.burst;
        }
        let cycles = self.residual_burst.min(self.each_burst);
        self.residual_burst -= cycles;
        let taken = self.call_handlers(cmd, cycles, &mut poll);
        self.phase = Phase::Polled;
        self.check_invariants();
        taken
    }

    /// End of a chunk (`netisr_pollmore`), run after the other netisr work:
    /// if budget is left, schedules the next chunk; otherwise measures the
    /// tick's kernel load, moves `burst` by one, and either finishes the
    /// tick or, if hardclocks came meanwhile, restarts at once with `burst`
    /// cut by an eighth. O(1).
    pub fn netisr_pollmore(&mut self, now: Nanos) {
        if !self.pollmore_scheduled {
            return;
        }
        self.pollmore_scheduled = false;
        self.phase = Phase::PollingMore;
        if self.residual_burst > 0 {
            self.schedule();
            self.check_invariants();
            return;
        }
        if self.kern_load(now) > u64::from(100 - self.user_frac) {
            if self.burst > 1 {
                self.burst -= 1;
            }
        } else if self.burst < self.burst_max {
            self.burst += 1;
        }
        // pollmore is scheduled only with a hardclock pending, so this
        // never goes below zero (FreeBSD's unsigned counter would wrap).
        debug_assert!(self.pending_polls > 0);
        self.pending_polls = self.pending_polls.saturating_sub(1);
        if self.pending_polls == 0 {
            self.phase = Phase::Idle;
        } else {
            self.burst -= self.burst / 8;
            self.burst = self.burst.max(1);
            self.schedule();
            self.phase = Phase::Restarted;
        }
        self.check_invariants();
    }

    /// Time since this tick's first `netisr_poll`, in percent of a tick
    /// (may exceed 100).
    fn kern_load(&self, now: Nanos) -> u64 {
        let elapsed = u128::from(now.since(self.poll_start_t).0);
        let load = elapsed * u128::from(self.hz.get()) / 10_000_000;
        u64::try_from(load).unwrap_or(u64::MAX)
    }

    /// Polling from the idle loop or a trap (`ether_poll`): every handler
    /// gets `(PollOnly, min(count, each_burst))`. Returns the frames taken.
    ///
    /// Bound: `handlers` calls, each bounded by `each_burst` frames.
    pub fn ether_poll(
        &mut self,
        count: u32,
        mut poll: impl FnMut(usize, PollCmd, u32) -> u32,
    ) -> u32 {
        let count = count.min(self.each_burst);
        self.call_handlers(PollCmd::PollOnly, count, &mut poll)
    }

    /// One pass of the idle-polling thread's loop (`poll_idle`): when
    /// `idle_poll` is on and handlers are registered, an `ether_poll` of
    /// `each_burst`; otherwise `None` (the thread sleeps).
    ///
    /// Bound: as [`PollEngine::ether_poll`].
    pub fn poll_idle(&mut self, poll: impl FnMut(usize, PollCmd, u32) -> u32) -> Option<u32> {
        if self.idlepoll_sleeping() {
            return None;
        }
        Some(self.ether_poll(self.each_burst, poll))
    }

    fn call_handlers(
        &self,
        cmd: PollCmd,
        count: u32,
        poll: &mut impl FnMut(usize, PollCmd, u32) -> u32,
    ) -> u32 {
        (0..self.handlers as usize).fold(0, |taken, index| {
            taken.saturating_add(poll(index, cmd, count))
        })
    }

    /// Sets both netisr flags (FreeBSD's `netisr_sched_poll()` wakeup is the
    /// caller's scheduler noticing [`PollEngine::is_scheduled`]).
    fn schedule(&mut self) {
        self.poll_scheduled = true;
        self.pollmore_scheduled = true;
    }

    /// Adds a handler at the end of the list (`ether_poll_register`) and
    /// returns its index, or [`PollError::ListFull`].
    pub fn register(&mut self) -> Result<usize, PollError> {
        if self.handlers >= POLL_LIST_LEN {
            return Err(PollError::ListFull);
        }
        self.handlers += 1;
        Ok(self.handlers as usize - 1)
    }

    /// Removes the handler at `index` (`ether_poll_deregister`). As in
    /// FreeBSD the last entry takes its place: the caller must mirror this
    /// with `Vec::swap_remove(index)`.
    pub fn deregister(&mut self, index: usize) -> Result<(), PollError> {
        if index >= self.handlers as usize {
            return Err(PollError::NotRegistered(index));
        }
        self.handlers -= 1;
        Ok(())
    }

    /// The accepted range of `knob` right now, inclusive.
    pub fn bounds(&self, knob: Knob) -> (i64, i64) {
        match knob {
            Knob::EachBurst => (1, self.burst_max.into()),
            Knob::RegFrac => (1, self.hz.get().into()),
            Knob::BurstMax | Knob::UserFrac | Knob::IdlePoll => knob.static_bounds(),
        }
    }

    /// The value of `knob`.
    pub fn knob(&self, knob: Knob) -> u32 {
        match knob {
            Knob::BurstMax => self.burst_max,
            Knob::EachBurst => self.each_burst,
            Knob::UserFrac => self.user_frac,
            Knob::RegFrac => self.reg_frac,
            Knob::IdlePoll => u32::from(self.idle_poll),
        }
    }

    /// Writes `knob` as FreeBSD's sysctl handler does: a value outside
    /// [`PollEngine::bounds`] is refused and nothing changes; an accepted one
    /// is applied with its dependent state (see [`Knob`]).
    pub fn set(&mut self, knob: Knob, value: i64) -> Result<(), PollError> {
        let (min, max) = self.bounds(knob);
        let v = u32::try_from(value)
            .ok()
            .filter(|_| (min..=max).contains(&value))
            .ok_or(PollError::OutOfRange {
                knob: knob.name(),
                value,
                min,
                max,
            })?;
        match knob {
            Knob::BurstMax => {
                self.burst_max = v;
                self.burst = self.burst.min(v);
                if self.each_burst > v {
                    // FreeBSD resets to MIN_POLL_BURST_MAX, not to burst_max.
                    self.each_burst = MIN_POLL_BURST_MAX;
                }
            }
            Knob::EachBurst => self.each_burst = v,
            Knob::UserFrac => self.user_frac = v,
            Knob::RegFrac => {
                self.reg_frac = v;
                if self.reg_frac_count >= v {
                    self.reg_frac_count = 0;
                }
            }
            Knob::IdlePoll => self.idle_poll = v != 0,
        }
        self.check_invariants();
        Ok(())
    }

    /// Asserts (in debug builds) the relations kern_poll.c maintains.
    fn check_invariants(&self) {
        let s = self;
        debug_assert!((1..=s.burst_max).contains(&s.burst), "burst {s:?}");
        debug_assert!(
            (1..=s.burst_max).contains(&s.each_burst),
            "each_burst {s:?}"
        );
        debug_assert!(
            (MIN_POLL_BURST_MAX..=MAX_POLL_BURST_MAX).contains(&s.burst_max),
            "burst_max {s:?}"
        );
        debug_assert!(s.user_frac <= MAX_USER_FRAC, "user_frac {s:?}");
        debug_assert!((1..=s.hz.get()).contains(&s.reg_frac), "reg_frac {s:?}");
        debug_assert!(s.reg_frac_count < s.reg_frac, "reg_frac_count {s:?}");
        // Not `<= burst_max`: lowering burst_max mid-tick leaves the
        // residual as FreeBSD does; it only ever shrinks from there.
        debug_assert!(s.residual_burst <= MAX_POLL_BURST_MAX, "residual {s:?}");
        debug_assert!(s.handlers <= POLL_LIST_LEN, "handlers {s:?}");
        debug_assert!(
            !s.pollmore_scheduled || s.pending_polls > 0,
            "pollmore without pending poll {s:?}"
        );
        debug_assert!(s.phase != Phase::Scheduling && s.phase != Phase::Polling);
    }
}

/// Defines trivial read-only accessors, one per field.
macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        /// Read-only views of the state, for sysctl and the scheduler.
        impl PollEngine {
            $($(#[$doc])* pub fn $name(&self) -> $ty { self.$name })*
        }
    };
}

getters! {
    /// `kern.hz` the engine was built for.
    hz: Hz;
    /// `kern.polling.burst`.
    burst: u32;
    /// `kern.polling.burst_max`.
    burst_max: u32;
    /// `kern.polling.each_burst`.
    each_burst: u32;
    /// `kern.polling.user_frac`.
    user_frac: u32;
    /// `kern.polling.reg_frac`.
    reg_frac: u32;
    /// Ticks since the last `PollAndCheckStatus` (no sysctl in FreeBSD).
    reg_frac_count: u32;
    /// `kern.polling.idle_poll`.
    idle_poll: bool;
    /// `kern.polling.residual_burst`.
    residual_burst: u32;
    /// `kern.polling.handlers`.
    handlers: u32;
    /// `kern.polling.phase`.
    phase: Phase;
    /// `kern.polling.suspect`.
    suspect: u64;
    /// `kern.polling.stalled`.
    stalled: u64;
    /// `kern.polling.pending_polls`.
    pending_polls: u32;
    /// `kern.polling.lost_polls`.
    lost_polls: u64;
    /// `kern.polling.short_ticks`.
    short_ticks: u64;
    /// `netisr_poll` is due.
    poll_scheduled: bool;
    /// `netisr_pollmore` is due.
    pollmore_scheduled: bool;
}

impl PollEngine {
    /// `kern.polling.idlepoll_sleeping`: the idle poller has nothing to do
    /// (`idle_poll` off or no handlers).
    pub fn idlepoll_sleeping(&self) -> bool {
        !self.idle_poll || self.handlers == 0
    }

    /// Netisr has polling work: `netisr_poll` or `netisr_pollmore` is due.
    pub fn is_scheduled(&self) -> bool {
        self.poll_scheduled || self.pollmore_scheduled
    }
}

/// A read-only, unsigned `kern.polling` node: name, FreeBSD's description,
/// reader. (`residual_burst`, FreeBSD's one signed node, is apart.)
type RoNode = (&'static str, &'static str, fn(&PollEngine) -> u64);

/// The read-only `kern.polling` nodes, in FreeBSD's declaration order.
#[rustfmt::skip]
const RO_NODES: [RoNode; 9] = [
    ("burst", "Current polling burst size", |p| p.burst.into()),
    ("short_ticks", "Hardclock ticks shorter than they should be", |p| p.short_ticks),
    ("lost_polls", "How many times we would have lost a poll tick", |p| p.lost_polls),
    ("pending_polls", "Do we need to poll again", |p| p.pending_polls.into()),
    ("handlers", "Number of registered poll handlers", |p| p.handlers.into()),
    ("phase", "Polling phase", |p| p.phase.number().into()),
    ("suspect", "suspect event", |p| p.suspect),
    ("stalled", "potential stalls", |p| p.stalled),
    ("idlepoll_sleeping", "idlepoll is sleeping", |p| p.idlepoll_sleeping().into()),
];

/// Registers every `kern.polling.*` node into `mib`, reading and writing the
/// engine that `get`/`get_mut` find in the context.
pub fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &PollEngine,
    get_mut: fn(&mut C) -> &mut PollEngine,
) {
    for knob in Knob::ALL {
        mib.add_rw_uint(
            &format!("kern.polling.{}", knob.name()),
            knob.description(),
            knob.static_bounds(),
            move |c| get(c).bounds(knob),
            move |c| get(c).knob(knob).into(),
            move |c, v| get_mut(c).set(knob, v).map_err(|e| e.to_string()),
        );
    }
    for (name, description, read) in RO_NODES {
        let name = format!("kern.polling.{name}");
        mib.add_ro_uint(&name, description, move |c| read(get(c)));
    }
    mib.add_ro(
        "kern.polling.residual_burst",
        "# of residual cycles in burst",
        move |c| get(c).residual_burst.into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollsim_sysctl::{SysctlError, Value};
    use proptest::prelude::*;

    const HZ: u32 = 1000;

    /// One tick at `HZ`.
    fn tick() -> Nanos {
        hz().tick()
    }

    fn hz() -> Hz {
        Hz::new(HZ).unwrap()
    }

    /// The `n`th tick of the fake clock (starting at 1 s so the first
    /// hardclock is not short).
    fn at(n: u64) -> Nanos {
        Nanos(Nanos::from_secs(1).0 + n * tick().0)
    }

    fn engine(handlers: u32) -> PollEngine {
        let mut e = PollEngine::new(hz());
        for _ in 0..handlers {
            e.register().unwrap();
        }
        e
    }

    /// Handler calls seen: (index, cmd, count).
    type Log = Vec<(usize, PollCmd, u32)>;

    /// One whole tick: hardclock at `now`, then netisr chunks until polling
    /// is done, each `netisr_pollmore` seeing `work` of kernel time since
    /// the tick's first `netisr_poll`.
    fn run_tick(e: &mut PollEngine, now: Nanos, work: Nanos, log: &mut Log) {
        e.hardclock(now);
        while e.is_scheduled() {
            e.netisr_poll(now, |i, cmd, n| {
                log.push((i, cmd, n));
                n
            });
            e.netisr_pollmore(now + work);
        }
    }

    fn climb_to_max(e: &mut PollEngine) -> u64 {
        let mut log = Log::new();
        let mut n = 0;
        while e.burst() < e.burst_max() {
            run_tick(e, at(n), Nanos::ZERO, &mut log);
            n += 1;
        }
        n
    }

    #[test]
    fn defaults_are_freebsds() {
        let e = PollEngine::default();
        assert_eq!((e.burst(), e.burst_max(), e.each_burst()), (5, 150, 5));
        assert_eq!(
            (e.user_frac(), e.reg_frac(), e.idle_poll()),
            (50, 20, false)
        );
        assert_eq!(
            (e.phase(), e.handlers(), e.pending_polls()),
            (Phase::Idle, 0, 0)
        );
        assert!(e.idlepoll_sleeping() && !e.is_scheduled());
    }

    #[test]
    fn burst_climbs_by_one_to_burst_max_under_light_load() {
        let mut e = engine(1);
        let mut log = Log::new();
        for n in 0..300 {
            run_tick(&mut e, at(n), Nanos::from_micros(100), &mut log);
            assert_eq!(e.burst(), (6 + n as u32).min(150), "tick {n}");
            assert_eq!((e.phase(), e.pending_polls()), (Phase::Idle, 0));
        }
        assert_eq!((e.lost_polls(), e.suspect(), e.short_ticks()), (0, 0, 0));
    }

    #[test]
    fn load_at_exactly_the_kernel_share_still_climbs() {
        let mut e = engine(1);
        run_tick(&mut e, at(0), Nanos::from_micros(500), &mut Log::new());
        assert_eq!(e.burst(), 6);
        run_tick(&mut e, at(1), Nanos::from_micros(510), &mut Log::new());
        assert_eq!(e.burst(), 5);
    }

    #[test]
    fn burst_falls_by_one_when_kern_load_exceeds_its_share() {
        let mut e = engine(1);
        let start = climb_to_max(&mut e);
        let mut log = Log::new();
        for n in 0..200 {
            run_tick(&mut e, at(start + n), Nanos::from_micros(600), &mut log);
            assert_eq!(
                e.burst(),
                149u32.saturating_sub(n as u32).max(1),
                "tick {n}"
            );
        }
        e.set(Knob::UserFrac, 30).unwrap();
        run_tick(&mut e, at(start + 200), Nanos::from_micros(600), &mut log);
        assert_eq!(e.burst(), 2, "60% load is within a 70% kernel share");
    }

    #[test]
    fn overrun_counts_a_lost_poll_and_cuts_burst_by_an_eighth() {
        let mut e = engine(1);
        let n = climb_to_max(&mut e);
        e.set(Knob::EachBurst, 150).unwrap();
        let mut log = Log::new();
        let mut poll = |i, cmd, c| {
            log.push((i, cmd, c));
            c
        };
        e.hardclock(at(n));
        assert_eq!(e.netisr_poll(at(n), &mut poll), 150);
        e.hardclock(at(n + 1)); // netisr still busy: no new schedule
        assert_eq!((e.lost_polls(), e.pending_polls(), e.suspect()), (1, 2, 0));
        assert_eq!(e.phase(), Phase::Polled);
        e.netisr_pollmore(at(n + 1) + Nanos::from_micros(200));
        // 1.2 ticks of load: 150 -> 149, then 149 - 149/8 = 131.
        assert_eq!(e.burst(), 131);
        assert_eq!((e.phase(), e.pending_polls()), (Phase::Restarted, 1));
        assert!(e.poll_scheduled() && e.pollmore_scheduled());
        let now = at(n + 1) + Nanos::from_micros(200);
        assert_eq!(e.netisr_poll(now, &mut poll), 131);
        e.netisr_pollmore(now);
        assert_eq!(
            (e.phase(), e.pending_polls(), e.burst()),
            (Phase::Idle, 0, 132)
        );
        assert!(!e.is_scheduled());
    }

    #[test]
    fn reg_frac_checks_status_once_every_reg_frac_ticks() {
        let mut e = engine(1);
        let mut log = Log::new();
        for n in 0..100 {
            run_tick(&mut e, at(n), Nanos::ZERO, &mut log);
        }
        let checks: Vec<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1 == PollCmd::PollAndCheckStatus)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(checks.len(), 5);
        e.set(Knob::RegFrac, 1).unwrap();
        log.clear();
        for n in 100..110 {
            run_tick(&mut e, at(n), Nanos::ZERO, &mut log);
        }
        let per_tick_first = log.iter().filter(|c| c.1 == PollCmd::PollAndCheckStatus);
        assert_eq!(per_tick_first.count(), 10, "reg_frac=1: every tick");
    }

    #[test]
    fn reg_frac_write_resets_a_count_at_or_above_it() {
        let mut e = engine(1);
        for n in 0..15 {
            run_tick(&mut e, at(n), Nanos::ZERO, &mut Log::new());
        }
        assert_eq!(e.reg_frac_count(), 15);
        e.set(Knob::RegFrac, 16).unwrap();
        assert_eq!(e.reg_frac_count(), 15);
        e.set(Knob::RegFrac, 15).unwrap();
        assert_eq!(e.reg_frac_count(), 0);
    }

    #[test]
    fn handlers_share_each_tick_round_robin_in_each_burst_chunks() {
        let mut e = engine(2);
        let mut log = Log::new();
        for n in 0..40 {
            let burst = e.burst();
            log.clear();
            run_tick(&mut e, at(n), Nanos::ZERO, &mut log);
            let counts =
                |h: usize| -> Vec<u32> { log.iter().filter(|c| c.0 == h).map(|c| c.2).collect() };
            assert_eq!(counts(0), counts(1), "tick {n}");
            assert_eq!(counts(0).iter().sum::<u32>(), burst, "tick {n}");
            assert!(counts(0).iter().all(|&c| (1..=5).contains(&c)));
            let order: Vec<usize> = log.iter().map(|c| c.0).collect();
            assert!(order.chunks(2).all(|p| p == [0, 1]), "tick {n}");
        }
    }

    #[test]
    fn last_chunk_is_the_remainder() {
        let mut e = engine(1);
        for n in 0..2 {
            run_tick(&mut e, at(n), Nanos::ZERO, &mut Log::new());
        }
        assert_eq!(e.burst(), 7);
        let mut log = Log::new();
        run_tick(&mut e, at(2), Nanos::ZERO, &mut log);
        let counts: Vec<u32> = log.iter().map(|c| c.2).collect();
        assert_eq!(counts, [5, 2]);
    }

    #[test]
    fn residual_budget_reschedules_without_adapting() {
        let mut e = engine(1);
        e.set(Knob::EachBurst, 2).unwrap();
        e.hardclock(at(0));
        e.netisr_poll(at(0), |_, _, n| n);
        assert_eq!(e.residual_burst(), 3);
        e.netisr_pollmore(at(5));
        assert_eq!(
            (e.phase(), e.burst(), e.pending_polls()),
            (Phase::PollingMore, 5, 1)
        );
        assert!(e.poll_scheduled() && e.pollmore_scheduled());
    }

    #[test]
    fn suspect_when_netisr_never_ran_since_last_hardclock() {
        let mut e = engine(1);
        e.hardclock(at(0));
        e.hardclock(at(1));
        assert_eq!((e.suspect(), e.lost_polls(), e.pending_polls()), (1, 1, 2));
        assert_eq!(e.phase(), Phase::Scheduled);
    }

    #[test]
    fn stalled_after_more_than_100_pending_polls() {
        let mut e = engine(1);
        for n in 0..101 {
            e.hardclock(at(n));
        }
        assert_eq!((e.pending_polls(), e.stalled()), (101, 0));
        e.hardclock(at(101));
        assert_eq!(
            (e.stalled(), e.pending_polls(), e.phase()),
            (1, 1, Phase::Scheduled)
        );
        assert_eq!((e.suspect(), e.lost_polls()), (100, 100));
    }

    #[test]
    fn short_tick_when_hardclocks_come_less_than_half_a_tick_apart() {
        let mut e = engine(1);
        e.hardclock(at(0));
        e.hardclock(at(0) + Nanos(tick().0 / 2 - 1));
        assert_eq!(e.short_ticks(), 1);
        e.hardclock(at(0) + Nanos(tick().0 / 2));
        assert_eq!(e.short_ticks(), 1, "half a tick after the last full one");
    }

    #[test]
    fn nothing_happens_without_handlers_or_schedule() {
        let mut e = engine(0);
        let before = e.clone();
        e.hardclock(at(0));
        assert_eq!(e, before);
        assert_eq!(e.netisr_poll(at(0), |_, _, _| panic!("no handlers")), 0);
        e.netisr_pollmore(at(0));
        assert_eq!(e, before);
        let mut e = engine(1);
        assert_eq!(e.netisr_poll(at(0), |_, _, _| panic!("not scheduled")), 0);
    }

    fn assert_bounds(knob: Knob, min: i64, max: i64) {
        let mut e = engine(1);
        for ok in [min, max] {
            let mut e = e.clone();
            e.set(knob, ok).unwrap();
            assert_eq!(i64::from(e.knob(knob)), ok, "{knob:?}");
        }
        let before = e.clone();
        for bad in [min - 1, max + 1] {
            let err = e.set(knob, bad).unwrap_err();
            let knob = knob.name();
            assert_eq!(
                err,
                PollError::OutOfRange {
                    knob,
                    value: bad,
                    min,
                    max
                }
            );
            assert_eq!(e, before, "{knob}={bad} changed state");
        }
    }

    #[test]
    fn every_knob_accepts_its_bounds_and_rejects_beyond() {
        assert_bounds(Knob::BurstMax, 10, 20_000);
        assert_bounds(Knob::EachBurst, 1, 150);
        assert_bounds(Knob::UserFrac, 0, 99);
        assert_bounds(Knob::RegFrac, 1, 1000);
        assert_bounds(Knob::IdlePoll, 0, 1);
        let err = engine(0).set(Knob::BurstMax, 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kern.polling.burst_max=9: Invalid argument (10..20000)"
        );
    }

    #[test]
    fn reg_frac_bound_follows_hz() {
        let mut e = PollEngine::new(Hz::new(100).unwrap());
        assert_eq!(e.bounds(Knob::RegFrac), (1, 100));
        assert!(e.set(Knob::RegFrac, 101).is_err());
    }

    #[test]
    fn lowering_burst_max_clamps_burst_and_resets_each_burst_to_ten() {
        let mut e = engine(1);
        climb_to_max(&mut e);
        e.set(Knob::EachBurst, 100).unwrap();
        e.set(Knob::BurstMax, 50).unwrap();
        assert_eq!((e.burst_max(), e.burst(), e.each_burst()), (50, 50, 10));
        e.set(Knob::EachBurst, 40).unwrap();
        e.set(Knob::BurstMax, 45).unwrap();
        assert_eq!(
            (e.burst(), e.each_burst()),
            (45, 40),
            "each_burst fits: kept"
        );
    }

    #[test]
    fn ether_poll_and_idle_polling() {
        let mut e = engine(3);
        let mut log = Log::new();
        let taken = e.ether_poll(100, |i, cmd, n| {
            log.push((i, cmd, n));
            n - 1
        });
        assert_eq!(taken, 12);
        assert_eq!(
            log,
            [
                (0, PollCmd::PollOnly, 5),
                (1, PollCmd::PollOnly, 5),
                (2, PollCmd::PollOnly, 5)
            ]
        );
        assert!(e.idlepoll_sleeping());
        assert_eq!(e.poll_idle(|_, _, _| panic!("idle_poll is off")), None);
        e.set(Knob::IdlePoll, 1).unwrap();
        assert!(!e.idlepoll_sleeping());
        assert_eq!(e.poll_idle(|_, _, n| n), Some(15));
        e.ether_poll(2, |_, _, n| {
            assert_eq!(n, 2);
            n
        });
    }

    #[test]
    fn register_up_to_poll_list_len_and_deregister() {
        let mut e = engine(0);
        for i in 0..128 {
            assert_eq!(e.register(), Ok(i));
        }
        assert_eq!(e.register(), Err(PollError::ListFull));
        assert_eq!(e.deregister(128), Err(PollError::NotRegistered(128)));
        e.deregister(0).unwrap();
        assert_eq!(e.handlers(), 127);
    }

    struct Fake(u32);
    impl PollHandler for Fake {
        fn poll(&mut self, _: PollCmd, count: u32) -> u32 {
            self.0 += count;
            count
        }
    }

    #[test]
    fn poll_list_adapts_boxed_handlers() {
        let mut nics: Vec<Box<Fake>> = vec![Box::new(Fake(0)), Box::new(Fake(0))];
        let mut e = engine(2);
        e.hardclock(at(0));
        assert_eq!(e.netisr_poll(at(0), poll_list(&mut nics)), 10);
        assert_eq!((nics[0].0, nics[1].0), (5, 5));
    }

    fn engine_of(e: &PollEngine) -> &PollEngine {
        e
    }

    fn engine_of_mut(e: &mut PollEngine) -> &mut PollEngine {
        e
    }

    #[test]
    fn sysctl_nodes_read_and_write_the_engine() {
        let mut mib = Mib::new();
        register_sysctl(&mut mib, engine_of, engine_of_mut);
        assert_eq!(mib.len(), 15);
        let mut e = engine(1);
        assert_eq!(mib.get(&e, "kern.polling.burst_max"), Ok(Value::Int(150)));
        assert_eq!(
            mib.get(&e, "kern.polling.idlepoll_sleeping"),
            Ok(Value::Int(1))
        );
        let r = mib.set(&mut e, "kern.polling.each_burst", "150");
        assert_eq!(r, Ok((Value::Int(5), Value::Int(150))));
        let err = mib
            .set(&mut e, "kern.polling.each_burst", "151")
            .unwrap_err();
        assert!(matches!(
            err,
            SysctlError::OutOfRange {
                min: 1,
                max: 150,
                ..
            }
        ));
        let err = mib
            .set(&mut e, "kern.polling.reg_frac", "1001")
            .unwrap_err();
        assert!(matches!(
            err,
            SysctlError::OutOfRange {
                min: 1,
                max: 1000,
                ..
            }
        ));
        mib.set(&mut e, "kern.polling.burst_max", "20").unwrap();
        assert_eq!(e.each_burst(), 10);
        let err = mib.set(&mut e, "kern.polling.burst", "7").unwrap_err();
        assert_eq!(err, SysctlError::ReadOnly("kern.polling.burst".into()));
        let info = mib.info("kern.polling.residual_burst").unwrap();
        assert_eq!(info.description, "# of residual cycles in burst");
        assert_eq!(info.kind.type_name(), "integer");
        let info = mib.info("kern.polling.reg_frac").unwrap();
        assert_eq!(info.description, "Every this many cycles check registers");
        assert_eq!(info.kind.type_name(), "unsigned integer");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Hardclock(u64),
        Poll(u64, u32),
        Pollmore(u64),
        Set(usize, i64),
        Register,
        Deregister(usize),
        Ether(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let step = 0..3 * tick().0;
        let value = prop_oneof![-2i64..40, 0i64..25_000, 990i64..1010, 19_990i64..20_010];
        prop_oneof![
            4 => step.clone().prop_map(Op::Hardclock),
            4 => (step.clone(), 0u32..30).prop_map(|(d, t)| Op::Poll(d, t)),
            4 => step.prop_map(Op::Pollmore),
            2 => (0..Knob::ALL.len(), value).prop_map(|(k, v)| Op::Set(k, v)),
            1 => Just(Op::Register),
            1 => (0usize..4).prop_map(Op::Deregister),
            1 => (0u32..200).prop_map(Op::Ether),
        ]
    }

    fn apply(e: &mut PollEngine, now: &mut Nanos, op: Op) {
        let (each_burst, handlers) = (e.each_burst(), e.handlers() as usize);
        let check = move |i: usize, n: u32, take: u32| {
            assert!(i < handlers && n <= each_burst, "poll({i}, {n})");
            take.min(n)
        };
        match op {
            Op::Hardclock(d) => {
                *now += Nanos(d);
                e.hardclock(*now);
            }
            Op::Poll(d, take) => {
                *now += Nanos(d);
                e.netisr_poll(*now, |i, _, n| check(i, n, take));
            }
            Op::Pollmore(d) => {
                *now += Nanos(d);
                e.netisr_pollmore(*now);
            }
            Op::Set(k, v) => {
                let before = e.clone();
                let (min, max) = e.bounds(Knob::ALL[k]);
                let ok = e.set(Knob::ALL[k], v).is_ok();
                assert_eq!(ok, (min..=max).contains(&v));
                assert!(ok || *e == before, "rejected write changed state");
            }
            Op::Register => {
                let _ = e.register();
            }
            Op::Deregister(i) => {
                let _ = e.deregister(i);
            }
            Op::Ether(count) => {
                e.ether_poll(count, |i, _, n| check(i, n, n));
            }
        }
    }

    proptest! {
        #[test]
        fn invariants_hold_under_any_sequence(ops in prop::collection::vec(op(), 1..400)) {
            let mut e = engine(1);
            let mut now = Nanos::from_secs(1);
            for op in ops {
                apply(&mut e, &mut now, op);
                e.check_invariants();
                prop_assert!((1..=e.burst_max()).contains(&e.burst()));
                prop_assert!((1..=e.burst_max()).contains(&e.each_burst()));
                prop_assert!((10..=20_000).contains(&e.burst_max()));
                prop_assert!(e.user_frac() <= 99);
                prop_assert!((1..=HZ).contains(&e.reg_frac()));
                prop_assert!(e.reg_frac_count() < e.reg_frac());
                prop_assert!(e.phase().number() <= 6);
                prop_assert!(e.pending_polls() <= STALL_PENDING_POLLS + 1);
            }
        }
    }
}
