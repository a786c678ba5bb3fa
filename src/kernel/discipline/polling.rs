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
//! FreeBSD does by default since 5.x), so polling never touches `ipintrq`
//! unless `net.isr.dispatch` says otherwise ([`Dispatch`]): deferred, each
//! frame goes to `ipintrq` (`ether_input` → `netisr_dispatch` →
//! `netisr_queue`), and, as FreeBSD 4/5's software interrupt ran
//! `netisr_poll`, then the other netisrs (`ipintr` draining `ipintrq`),
//! then `netisr_pollmore`, the next chunk and `netisr_pollmore` wait until
//! `ipintrq` is empty. That is what `each_burst` is for (kern_poll.c: "It
//! is very bad to fetch large bursts of packets from a single card at
//! once, because the burst could [...] saturate the intermediate queue
//! (ipintrq or similar) leading to losses or unfairness"): a chunk of
//! `each_burst` frames per handler must fit in `ipintrq`, or the first
//! interface's frames fill it and the next ones' are dropped.
//!
//! Differs: the hard interrupt of a polled interface cannot happen (its
//! line is masked); if it did, it would be a no-op.

use super::{Cx, Discipline, Kind};
use crate::kernel::intr::{Dispatch, IpIntrQ};
use crate::kernel::{NetisrWork, poll_handler_via};

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

    /// Scheduled, and under deferred or hybrid dispatch only once the
    /// other netisrs emptied `ipintrq` ("giving control to the other
    /// netisr's between chunks").
    fn kernel_pending(&mut self, cx: &Cx<'_>) -> bool {
        cx.poll.is_scheduled() && !waits_for_ipintr(cx)
    }

    /// `netisr_poll`: every registered handler gets the same chunk. Bound:
    /// `handlers` calls of at most `each_burst` frames; then the pending
    /// egress, in the same unit.
    fn kernel_step(&mut self, cx: &mut Cx<'_>) -> NetisrWork {
        let checks = |cx: &Cx<'_>| cx.ifs.iter().map(|f| f.counters.status_checks).sum::<u64>();
        let before = checks(cx);
        let queued_before = offered_to(cx.ipintrq);
        let (ifs, netisr, list, now) = (&mut *cx.ifs, &mut *cx.netisr, &*cx.poll_list, cx.now);
        let mut via = Some((&mut *cx.ipintrq, cx.dispatch));
        let taken = cx.poll.netisr_poll(now, |h, cmd, count| {
            poll_handler_via(ifs, list[h], netisr, &mut via, now, cmd, count)
        });
        let queued = queued_since(cx.ipintrq, queued_before);
        NetisrWork {
            polled: taken - queued,
            queued,
            status_checks: u32::try_from(checks(cx) - before).unwrap_or(u32::MAX),
            then_egress: true,
            ..NetisrWork::default()
        }
    }

    /// `netisr_pollmore`, at the time the unit before it ended: the tick's
    /// kernel load must include its last chunk (and under deferred
    /// dispatch the `ipintr` work on it: pollmore waits for it).
    fn unit_done(&mut self, cx: &mut Cx<'_>) {
        if !waits_for_ipintr(cx) {
            cx.poll.netisr_pollmore(cx.now);
        }
    }

    fn idle_pending(&self, cx: &Cx<'_>) -> bool {
        !cx.poll.idlepoll_sleeping() && !cx.poll_list.is_empty()
    }

    /// `ether_poll` of `each_burst` from the idle loop. Bound: as
    /// `netisr_poll`'s chunk.
    fn idle_step(&mut self, cx: &mut Cx<'_>) -> u32 {
        let count = cx.poll.each_burst();
        let (ifs, netisr, list, now) = (&mut *cx.ifs, &mut *cx.netisr, &*cx.poll_list, cx.now);
        let mut via = Some((&mut *cx.ipintrq, cx.dispatch));
        cx.poll.ether_poll(count, |h, cmd, count| {
            poll_handler_via(ifs, list[h], netisr, &mut via, now, cmd, count)
        })
    }
}

/// Whether polling's next step waits for `ipintr` to empty `ipintrq`
/// (never under direct dispatch, today's and FreeBSD's default).
fn waits_for_ipintr(cx: &Cx<'_>) -> bool {
    cx.dispatch != Dispatch::Direct && !cx.ipintrq.is_empty()
}

/// Frames ever offered to `q`: queued or dropped.
fn offered_to(q: &IpIntrQ) -> u64 {
    q.enqueued + q.drops
}

/// Frames offered to `q` since it read `before`.
fn queued_since(q: &IpIntrQ, before: u64) -> u32 {
    u32::try_from(offered_to(q) - before).unwrap_or(u32::MAX)
}
