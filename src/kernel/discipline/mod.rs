//! Input disciplines: how frames get from a NIC's ring into the stack, and
//! at which priority that work runs.
//!
//! Each discipline is one module implementing [`Discipline`]; every
//! interface names its own (`dev.<if>.discipline`, [`Kind`]). The kernel
//! owns one engine per discipline ([`Disciplines`]), as a real kernel has
//! one `kern_poll.c`, one `softnet_data` per CPU and one polling thread,
//! and routes an interface's interrupt to the engine its discipline names.
//! The schedulers (real and virtual clock) never look at a discipline:
//! they ask the kernel, which asks the engines, what runs next at each
//! priority (interrupt, kernel, a thread of the fair class, idle).
//!
//! | discipline | module | mirrors |
//! |---|---|---|
//! | `interrupt` | [`interrupt`] | 4.4BSD `if_input` → `ipintrq` → `ipintr` |
//! | `polling` | [`polling`] | FreeBSD `kern_poll.c` (engine in [`super::poll`]) |
//! | `napi` | [`napi`] | Linux `napi_schedule`, `net_rx_action`, `__do_softirq`, ksoftirqd, threaded NAPI |
//! | `mr` | [`mr`] | Mogul & Ramakrishnan's modified kernel (polling thread, quota, feedback, cycle limit) |
//!
//! Interrupt moderation ([`moderation`], with Linux DIM in [`dim`]) is not a
//! discipline but a property of the NIC's interrupt line, so it works under
//! `interrupt` and `napi` (and `mr`) alike.

pub mod dim;
pub mod interrupt;
pub mod knobs;
pub mod moderation;
pub mod mr;
pub mod napi;
pub mod polling;

use super::intr::IpIntrQ;
use super::netisr::Netisr;
use super::poll::PollEngine;
use super::time::Nanos;
use super::{IfNet, NetisrWork};

/// The input discipline of an interface (`dev.<if>.discipline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// 4.4BSD interrupts through `ipintrq`.
    #[default]
    Interrupt,
    /// FreeBSD device polling.
    Polling,
    /// Linux NAPI.
    Napi,
    /// Mogul & Ramakrishnan's polling thread.
    Mr,
}

impl Kind {
    /// Every discipline, in the order of [`Kind::NAMES`] and of the
    /// kernel-priority work (polling's chunk first, as FreeBSD's netisr
    /// runs `netisr_poll` before the other queues).
    pub const ALL: [Kind; 4] = [Kind::Interrupt, Kind::Polling, Kind::Napi, Kind::Mr];
    /// The names `dev.<if>.discipline` takes.
    pub const NAMES: [&'static str; 4] = ["interrupt", "polling", "napi", "mr"];

    /// The sysctl name.
    pub fn name(self) -> &'static str {
        Kind::NAMES[self.index()]
    }

    /// Position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        match self {
            Kind::Interrupt => 0,
            Kind::Polling => 1,
            Kind::Napi => 2,
            Kind::Mr => 3,
        }
    }

    /// The discipline called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Kind::ALL[i])
    }
}

/// A kernel thread of the fair class: it competes with the user process
/// for the CPU like any task (CFS, nice 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Thread {
    /// `ksoftirqd/0`: pending softirqs the interrupt exits left over.
    Ksoftirqd,
    /// `napi/<if>`: threaded NAPI of interface `i`.
    Napi(usize),
}

/// A runnable thread, and whether it must keep the CPU until its current
/// unit of work ends (a softirq run has bottom halves disabled: nothing
/// preempts it but interrupts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runnable {
    /// The thread.
    pub thread: Thread,
    /// It may not be switched away from now.
    pub atomic: bool,
}

/// What a discipline may touch: the interfaces, the stack, `ipintrq`,
/// `kern_poll.c`'s engine, the clock and the scheduler's view.
pub struct Cx<'a> {
    /// The interfaces.
    pub ifs: &'a mut [IfNet],
    /// The protocol stack.
    pub netisr: &'a mut Netisr,
    /// `ipintrq`.
    pub ipintrq: &'a mut IpIntrQ,
    /// `net.isr.dispatch`: whether polled frames go through `ipintrq`.
    pub dispatch: super::intr::Dispatch,
    /// kern_poll.c.
    pub poll: &'a mut PollEngine,
    /// Interfaces registered with kern_poll, in registration order.
    pub poll_list: &'a mut Vec<usize>,
    /// The time of the unit of work.
    pub now: Nanos,
    /// Clock ticks since boot (Linux's `jiffies`, FreeBSD's `ticks`).
    pub jiffies: u64,
    /// The fair class wants another task on the CPU (`need_resched()`).
    pub need_resched: bool,
    /// How full the user process's socket buffer is, percent (`None`
    /// without one): Mogul & Ramakrishnan's queue-state feedback.
    pub app_fill_pct: Option<u32>,
}

/// One input discipline. Every method does a bounded amount of work (its
/// doc says the bound) and takes time from [`Cx::now`]; none reads a clock.
pub trait Discipline {
    /// Which discipline this is.
    fn kind(&self) -> Kind;

    /// Interface `i` now uses this discipline: set its interrupt line and
    /// register it. Frames in its ring stay there. False if refused (a
    /// full list): nothing changed.
    fn attach(&mut self, cx: &mut Cx<'_>, i: usize) -> bool;

    /// Interface `i` leaves this discipline: forget it. Frames in its ring
    /// and in the stack's queues stay there, for the next discipline.
    fn detach(&mut self, cx: &mut Cx<'_>, i: usize);

    /// The hard interrupt of interface `i`. Returns the frames moved from
    /// the ring at interrupt level (charged `rx_cost_ns` each).
    fn hardirq(&mut self, cx: &mut Cx<'_>, i: usize) -> u32;

    /// The clock interrupt (after `ticks` advanced).
    fn hardclock(&mut self, _cx: &mut Cx<'_>) {}

    /// Leaving a hard interrupt, the clock's included (Linux's `irq_exit`).
    fn irq_exit(&mut self, _cx: &mut Cx<'_>) {}

    /// When this discipline's own timer fires next, if armed.
    fn next_timer(&self) -> Option<Nanos> {
        None
    }

    /// The timer's interrupt, at or after [`Discipline::next_timer`].
    fn timer(&mut self, _cx: &mut Cx<'_>) {}

    /// Whether it has work at kernel priority (above user processes).
    fn kernel_pending(&mut self, cx: &Cx<'_>) -> bool;

    /// One unit of that work.
    fn kernel_step(&mut self, cx: &mut Cx<'_>) -> NetisrWork;

    /// The unit of work that ran last (of any discipline) ended at
    /// `cx.now`.
    fn unit_done(&mut self, _cx: &mut Cx<'_>) {}

    /// Its runnable threads of the fair class.
    fn runnable_threads(&self, _out: &mut Vec<Runnable>) {}

    /// One unit of work of its thread `t`.
    fn thread_step(&mut self, _cx: &mut Cx<'_>, _t: Thread) -> NetisrWork {
        NetisrWork::default()
    }

    /// Whether it polls from the idle loop.
    fn idle_pending(&self, _cx: &Cx<'_>) -> bool {
        false
    }

    /// One poll from the idle loop. Returns the frames taken.
    fn idle_step(&mut self, _cx: &mut Cx<'_>) -> u32 {
        0
    }
}

/// The engines, one per discipline.
#[derive(Debug)]
pub struct Disciplines {
    /// 4.4BSD interrupts.
    pub interrupt: interrupt::Interrupt,
    /// FreeBSD polling.
    pub polling: polling::Polling,
    /// Linux NAPI.
    pub napi: napi::Napi,
    /// Mogul & Ramakrishnan.
    pub mr: mr::Mr,
}

impl Disciplines {
    /// The engines at boot, for a kernel ticking at `hz`.
    pub fn new(hz: super::time::Hz) -> Disciplines {
        Disciplines {
            interrupt: interrupt::Interrupt,
            polling: polling::Polling,
            napi: napi::Napi::new(hz),
            mr: mr::Mr::new(hz),
        }
    }

    /// The engine of `kind`.
    pub fn get_mut(&mut self, kind: Kind) -> &mut dyn Discipline {
        match kind {
            Kind::Interrupt => &mut self.interrupt,
            Kind::Polling => &mut self.polling,
            Kind::Napi => &mut self.napi,
            Kind::Mr => &mut self.mr,
        }
    }

    /// Every engine, in kernel-priority order.
    pub fn all(&self) -> [&dyn Discipline; 4] {
        [&self.polling, &self.interrupt, &self.napi, &self.mr]
    }

    /// Every engine, in kernel-priority order.
    pub fn all_mut(&mut self) -> [&mut dyn Discipline; 4] {
        [
            &mut self.polling,
            &mut self.interrupt,
            &mut self.napi,
            &mut self.mr,
        ]
    }
}

#[cfg(test)]
mod tests;
