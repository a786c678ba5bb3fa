//! What both schedulers of the one simulated CPU share: the real-clock one
//! (`crate::rt::sched::run_real`) and the virtual-clock one
//! ([`super::vsched`]).
//!
//! Strict priority, checked before every unit of work: the clock
//! interrupt (hardclock) > NIC interrupts (ISR) > netisr (polling chunks,
//! `ipintrq`, egress) > user (app steps, CPU burn in slices of
//! [`super::USER_SLICE`]) > idle (idle polling, or block in epoll until the
//! next interrupt). A raised interrupt is thus served before the next
//! netisr frame and before the next user slice: interrupts preempt.
//! Within the user level, which process runs is the run queue's choice
//! ([`super::runq`]: round robin with `kern.sched.quantum`, as 4BSD).
//!
//! Mirrors the priority levels of a BSD kernel (splimp/splnet/spl0) and the
//! idle loop; differs in that "preemption" happens at unit boundaries (a
//! frame, a 5 µs slice), not at an arbitrary instruction.

use super::Kernel;
use super::cpu::CpuState;
use super::time::Nanos;

/// When a run ends and how often the observer is called.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Stop after this long (None: until `stop` is set).
    pub duration: Option<Nanos>,
    /// Call the observer this often (the `-w` interval).
    pub report_every: Option<Nanos>,
}

/// What the scheduler calls besides the kernel's own work.
pub struct Hooks<'a> {
    /// Every `report_every`, as a user process (its time is charged to user).
    pub observe: &'a mut dyn FnMut(&mut Kernel, Nanos),
    /// After every clock tick, in the kernel (sys): the control socket. It
    /// must bound its own work per call.
    pub on_tick: &'a mut dyn FnMut(&mut Kernel),
}

/// Switch to a higher-priority state, counting a preemption if user work
/// was cut in the middle.
pub fn preempting(k: &mut Kernel, now: Nanos, state: CpuState) {
    if k.cpu.switch(now, state) == CpuState::User && k.user_mid_work() {
        k.sched.preemptions += 1;
    }
}
