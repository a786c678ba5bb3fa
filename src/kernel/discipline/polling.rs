//! The FreeBSD discipline: device polling, `polling(4)`.
//!
//! The engine is [`crate::kernel::poll::PollEngine`], a port of
//! `sys/kern/kern_poll.c` (its knobs, `kern.polling.*`, are declared
//! there). This module is its place among the disciplines: `ifconfig
//! polling` (`ether_poll_register`: the driver masks its interrupts),
//! `hardclock_device_poll` at every clock interrupt, `netisr_poll` as a
//! unit of kernel work followed by the other netisr work and
//! `netisr_pollmore`, and `ether_poll` from the idle loop. A driver's poll
//! handler takes frames straight into the stack (direct dispatch, as
//! FreeBSD does since 5.x), so polling never touches `ipintrq`.
//!
//! Differs: the hard interrupt of a polled interface cannot happen (its
//! line is masked); if it did, it would be a no-op.

use super::{Cx, Discipline, Kind};
use crate::kernel::{NetisrWork, poll_handler};

/// The polling discipline; its state is the kernel's `PollEngine` and
/// `poll_list`.
#[derive(Debug, Default)]
pub struct Polling;

impl Discipline for Polling {
    fn kind(&self) -> Kind {
        Kind::Polling
    }

    /// `ether_poll_register`: refused (false) when the list is full.
    fn attach(&mut self, cx: &mut Cx<'_>, i: usize) -> bool {
        if cx.poll.register().is_err() {
            return false;
        }
        cx.ifs[i].nic.set_intr_enabled(false);
        cx.poll_list.push(i);
        true
    }

    /// `ether_poll_deregister`: the last entry takes the slot.
    fn detach(&mut self, cx: &mut Cx<'_>, i: usize) {
        if let Some(pos) = cx.poll_list.iter().position(|&x| x == i) {
            let _ = cx.poll.deregister(pos);
            cx.poll_list.swap_remove(pos);
        }
    }

    fn hardirq(&mut self, _cx: &mut Cx<'_>, _i: usize) -> u32 {
        0
    }

    fn hardclock(&mut self, cx: &mut Cx<'_>) {
        cx.poll.hardclock(cx.now);
    }

    fn kernel_pending(&mut self, cx: &Cx<'_>) -> bool {
        cx.poll.is_scheduled()
    }

    /// `netisr_poll`: every registered handler gets the same chunk. Bound:
    /// `handlers` calls of at most `each_burst` frames; then the pending
    /// egress, in the same unit.
    fn kernel_step(&mut self, cx: &mut Cx<'_>) -> NetisrWork {
        let checks = |cx: &Cx<'_>| cx.ifs.iter().map(|f| f.counters.status_checks).sum::<u64>();
        let before = checks(cx);
        let (ifs, netisr, list, now) = (&mut *cx.ifs, &mut *cx.netisr, &*cx.poll_list, cx.now);
        let polled = cx.poll.netisr_poll(now, |h, cmd, count| {
            poll_handler(ifs, list[h], netisr, now, cmd, count)
        });
        NetisrWork {
            polled,
            status_checks: u32::try_from(checks(cx) - before).unwrap_or(u32::MAX),
            then_egress: true,
            ..NetisrWork::default()
        }
    }

    /// `netisr_pollmore`, at the time the unit before it ended: the tick's
    /// kernel load must include its last chunk.
    fn unit_done(&mut self, cx: &mut Cx<'_>) {
        cx.poll.netisr_pollmore(cx.now);
    }

    fn idle_pending(&self, cx: &Cx<'_>) -> bool {
        !cx.poll.idlepoll_sleeping() && !cx.poll_list.is_empty()
    }

    /// `ether_poll` of `each_burst` from the idle loop. Bound: as
    /// `netisr_poll`'s chunk.
    fn idle_step(&mut self, cx: &mut Cx<'_>) -> u32 {
        let count = cx.poll.each_burst();
        let (ifs, netisr, list, now) = (&mut *cx.ifs, &mut *cx.netisr, &*cx.poll_list, cx.now);
        cx.poll.ether_poll(count, |h, cmd, count| {
            poll_handler(ifs, list[h], netisr, now, cmd, count)
        })
    }
}
