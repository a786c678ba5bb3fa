//! epoll glue of the real-time scheduler (as mio's `sys/unix/selector`):
//! the clock interrupt and the NICs' interrupt lines, waited on together.
//! Device specifics stay in `pollsim-drivers`; this only waits.

use std::os::fd::BorrowedFd;

use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// Token of the clock interrupt.
pub const TIMER: u64 = u64::MAX;

/// Two epoll sets: `irqs` holds only the NICs' interrupt lines (checked
/// without blocking between every unit of lower-priority work), `all`
/// holds those and the clock (blocked on when the CPU is idle).
#[derive(Debug)]
pub struct Selector {
    irqs: Epoll,
    all: Epoll,
    events: Vec<EpollEvent>,
}

impl Selector {
    /// Empty sets.
    pub fn new() -> nix::Result<Selector> {
        Ok(Selector {
            irqs: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            all: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            events: vec![EpollEvent::empty(); 16],
        })
    }

    /// Watch the clock interrupt's fd.
    pub fn add_timer(&self, fd: BorrowedFd<'_>) -> nix::Result<()> {
        self.all
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, TIMER))
    }

    /// Watch interface `ifidx`'s interrupt line (level triggered).
    pub fn add_irq(&self, fd: BorrowedFd<'_>, ifidx: usize) -> nix::Result<()> {
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, ifidx as u64);
        self.irqs.add(fd, ev)?;
        self.all.add(fd, ev)
    }

    /// Interfaces whose interrupt is raised now, as a bitmask (bit i =
    /// interface i; up to 64 interfaces). One system call, never blocks.
    pub fn pending_irqs(&mut self) -> u64 {
        match self.irqs.wait(&mut self.events, PollTimeout::ZERO) {
            Ok(n) => self.events[..n]
                .iter()
                .fold(0, |m, e| m | 1u64.checked_shl(e.data() as u32).unwrap_or(0)),
            Err(_) => 0,
        }
    }

    /// Block until the clock ticks, an interrupt is raised, or
    /// `timeout_ms` passes.
    pub fn wait(&mut self, timeout_ms: u16) {
        let _ = self
            .all
            .wait(&mut self.events, PollTimeout::from(timeout_ms));
    }
}
