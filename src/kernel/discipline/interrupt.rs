//! The 4.4BSD discipline: the NIC's interrupt service routine moves frames
//! from the ring to `ipintrq` at interrupt level, and the IP netisr drains
//! `ipintrq` into the stack one frame at a time, above user processes.
//!
//! Mirrors `if_input` → `IF_ENQUEUE(&ipintrq)` / `IF_DROP` and
//! `schednetisr(NETISR_IP)` → `ipintr` (the queue itself is
//! [`crate::kernel::intr::IpIntrQ`]). This is the path Mogul &
//! Ramakrishnan show livelocking: the ISR has the highest priority and,
//! under overload, spends the CPU reading frames that `ipintrq` then drops.
//! Bound of the ISR: `dev.<if>.rx_ring` frames (the one deliberate drain of
//! the kernel, still bounded by the ring and `intr_queue_maxlen`).
//!
//! Differs: `ipintrq` is drained whatever the interfaces' disciplines, so
//! frames queued before a switch of `dev.<if>.discipline` are not lost.

use super::{Cx, Discipline, Kind};
use crate::kernel::NetisrWork;

/// The interrupt discipline. Its state is `ipintrq` and each interface's
/// `rx_ring`, both the kernel's.
#[derive(Debug, Default)]
pub struct Interrupt;

impl Discipline for Interrupt {
    fn kind(&self) -> Kind {
        Kind::Interrupt
    }

    fn attach(&mut self, cx: &mut Cx<'_>, i: usize) -> bool {
        cx.ifs[i].nic.set_intr_enabled(true);
        true
    }

    fn detach(&mut self, _cx: &mut Cx<'_>, _i: usize) {}

    /// Bound: `rx_ring` frames, each copied to `ipintrq` or dropped.
    fn hardirq(&mut self, cx: &mut Cx<'_>, i: usize) -> u32 {
        let ipintrq = &mut *cx.ipintrq;
        let ifn = &mut cx.ifs[i];
        let drops = &mut ifn.counters.ipintrq_drops;
        let n = ifn.nic.rx(ifn.rx_ring, &mut |frame| {
            if !ipintrq.enqueue(i, frame) {
                *drops += 1;
            }
        });
        let stats = ifn.nic.stats();
        ifn.moderation.on_completion(cx.now, &stats);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn kernel_pending(&mut self, cx: &Cx<'_>) -> bool {
        !cx.ipintrq.is_empty()
    }

    /// Bound: one frame from `ipintrq` into the stack.
    fn kernel_step(&mut self, cx: &mut Cx<'_>) -> NetisrWork {
        let (ifs, netisr, now) = (&mut *cx.ifs, &mut *cx.netisr, cx.now);
        cx.ipintrq.dequeue_with(|i, frame| {
            netisr.ingress(i, now, frame);
            netisr.flush(i, ifs[i].nic.as_mut());
        });
        NetisrWork {
            dispatched: 1,
            ..NetisrWork::default()
        }
    }
}
