//! `QueueGroup`: the receive queues of one device that one CPU serves, as
//! one [`Nic`].
//!
//! With more queues than CPUs, a CPU serves several: DragonFly's ring map
//! puts ring `i` on CPU `(offset + i) % ncpus` (`if_ringmap`; DragonFly
//! itself clamps the ring count to the CPUs, `if_ringcnt_fixup`), and
//! Linux steers several queues' interrupts to one CPU (`smp_affinity`).
//! The kernel above sees one interface with one interrupt line and one
//! discipline; the group keeps the queues apart below it:
//!
//! - **Each queue keeps its own ring** (its own `RING_LEN` on virtual time,
//!   its own tap queue on the real clock) and its own counters:
//!   [`Nic::rx_queue_stats`] reads queue `r` of the group, and
//!   [`Nic::stats`] is their sum.
//! - **`rx` takes from the queues round robin within its `count` bound**:
//!   one frame from each queue in turn, starting after the queue the last
//!   frame came from, so that a full queue cannot starve the others. A
//!   queue found empty is not asked again in the same call.
//! - **The interrupt line is raised while any queue's is**: masking and
//!   unmasking the group masks and unmasks every queue, and its fd is an
//!   epoll instance holding each queue's line (made on the first
//!   [`Nic::irq_fd`] call, so virtual time makes none).
//! - **Transmit goes out on the group's first queue.** On a real tap, Linux
//!   then sends a flow's replies back to that queue ("tx follows rx"),
//!   which is on the same CPU.
//!
//! A group of no queue is a device a CPU has no queue of (fewer queues
//! than CPUs): it receives nothing, its line never rises, and what is sent
//! through it is dropped and counted (`tx_dropped`).

use std::cell::OnceCell;
use std::os::fd::BorrowedFd;

use crate::sys::LineSet;
use crate::{MAX_TAP_QUEUES, Nic, NicError, NicStats, NicStatus, RxQueueStats};

/// Most queues one group holds: as many as a tap can have.
pub const MAX_GROUP_QUEUES: usize = MAX_TAP_QUEUES;

/// Words of the bitset of queues found empty in one `rx` call.
const DRY_WORDS: usize = MAX_GROUP_QUEUES.div_ceil(64);

/// Several receive queues of one device, served by one CPU, as one NIC.
#[derive(Debug)]
pub struct QueueGroup<N> {
    name: String,
    mac: [u8; 6],
    queues: Vec<N>,
    /// The queue the next `rx` asks first.
    next: usize,
    /// Whether the line is unmasked (kept here too, for a group of none).
    enabled: bool,
    /// Frames sent through a group of no queue, dropped.
    tx_dropped: u64,
    /// The queues' lines as one fd, made on the first `irq_fd` call.
    lines: OnceCell<LineSet>,
}

impl<N: Nic> QueueGroup<N> {
    /// The queues `queues` (0..=[`MAX_GROUP_QUEUES`], all of the device
    /// `name` with MAC `mac`) as one NIC; queue `r` of the group is
    /// `queues[r]`. Their lines are masked, as a NIC's line starts.
    pub fn new(name: &str, mac: [u8; 6], mut queues: Vec<N>) -> Result<QueueGroup<N>, NicError> {
        if queues.len() > MAX_GROUP_QUEUES {
            return Err(NicError::QueueCount {
                name: name.to_string(),
                asked: queues.len(),
                max: MAX_GROUP_QUEUES,
            });
        }
        debug_assert!(queues.iter().all(|q| q.name() == name));
        for q in &mut queues {
            q.set_intr_enabled(false);
        }
        Ok(QueueGroup {
            name: name.to_string(),
            mac,
            queues,
            next: 0,
            enabled: false,
            tx_dropped: 0,
            lines: OnceCell::new(),
        })
    }

    /// The queues, queue 0 of the group first.
    pub fn queues(&self) -> &[N] {
        &self.queues
    }
}

impl<N: Nic> Nic for QueueGroup<N> {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Round robin over the queues, one frame at a time. Bound: at most
    /// `count` frames, and `count + M` receive attempts over the M queues
    /// (each is asked once more than it gives, at most).
    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let m = self.queues.len();
        let mut dry = [0u64; DRY_WORDS];
        let (mut taken, mut ndry, mut r) = (0, 0, self.next);
        while taken < count && ndry < m {
            if dry[r / 64] & (1 << (r % 64)) == 0 {
                if self.queues[r].rx(1, f) == 1 {
                    taken += 1;
                    self.next = (r + 1) % m;
                } else {
                    dry[r / 64] |= 1 << (r % 64);
                    ndry += 1;
                }
            }
            r = (r + 1) % m;
        }
        taken
    }

    fn tx(&mut self, frame: &[u8]) {
        match self.queues.first_mut() {
            Some(q) => q.tx(frame),
            None => self.tx_dropped += 1,
        }
    }

    /// Panics if the system refuses the epoll instance: this happens at a
    /// real scheduler's set-up, never on the data path.
    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.lines
            .get_or_init(|| {
                LineSet::new(self.queues.iter().map(|q| q.irq_fd())).unwrap_or_else(|e| {
                    panic!("{}: gathering the queues' interrupt lines: {e}", self.name)
                })
            })
            .fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        for q in &mut self.queues {
            q.set_intr_enabled(enabled);
        }
    }

    fn intr_enabled(&self) -> bool {
        self.enabled
    }

    /// Every queue's status: the link is up if every queue says so (a
    /// group of none has nothing to read and says up), and the counters
    /// are their sum.
    fn check_status(&mut self) -> NicStatus {
        let mut link_up = true;
        for q in &mut self.queues {
            link_up &= q.check_status().link_up;
        }
        NicStatus {
            link_up,
            stats: self.stats(),
        }
    }

    fn stats(&self) -> NicStats {
        let mut t = NicStats {
            tx_dropped: self.tx_dropped,
            ..NicStats::default()
        };
        for q in &self.queues {
            let s = q.stats();
            t.rx_packets += s.rx_packets;
            t.rx_bytes += s.rx_bytes;
            t.rx_empty += s.rx_empty;
            t.rx_missed += s.rx_missed;
            t.tx_packets += s.tx_packets;
            t.tx_bytes += s.tx_bytes;
            t.tx_dropped += s.tx_dropped;
            t.errors += s.errors;
        }
        t
    }

    fn set_now(&mut self, now_ns: u64) {
        for q in &mut self.queues {
            q.set_now(now_ns);
        }
    }

    /// The sum of the queues' fills, if every queue can tell its own.
    fn rx_pending(&self) -> Option<usize> {
        self.queues.iter().map(|q| q.rx_pending()).sum()
    }

    fn rx_queues(&self) -> usize {
        self.queues.len()
    }

    fn rx_queue_stats(&self, ring: usize) -> Option<RxQueueStats> {
        let q = self.queues.get(ring)?;
        Some(RxQueueStats {
            stats: q.stats(),
            pending: q.rx_pending(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VirtNic;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// A group of `lens.len()` queues, queue `r` holding `lens[r]` frames
    /// `[r, i]` (its ring holds `ring` frames).
    fn group(lens: &[u8], ring: usize) -> QueueGroup<VirtNic> {
        let queues = lens
            .iter()
            .enumerate()
            .map(|(r, &n)| {
                let mut q = VirtNic::new("virt0", MAC, ring).unwrap();
                for i in 0..n {
                    q.inject(&[r as u8, i]);
                }
                q
            })
            .collect();
        QueueGroup::new("virt0", MAC, queues).unwrap()
    }

    fn take(g: &mut QueueGroup<VirtNic>, count: usize) -> Vec<[u8; 2]> {
        let mut seen = Vec::new();
        let n = g.rx(count, &mut |f| seen.push([f[0], f[1]]));
        assert_eq!(n, seen.len());
        seen
    }

    #[test]
    fn rx_takes_round_robin_within_its_count() {
        let mut g = group(&[3, 1, 2], 8);
        assert_eq!(take(&mut g, 4), [[0, 0], [1, 0], [2, 0], [0, 1]]);
        // The next call starts after the queue of the last frame.
        assert_eq!(take(&mut g, 1), [[2, 1]]);
        // Queue 1 is empty: skipped, not starved for.
        assert_eq!(take(&mut g, 10), [[0, 2]]);
        assert!(take(&mut g, 10).is_empty());
        assert!(take(&mut g, 0).is_empty());
    }

    #[test]
    fn one_call_of_count_one_alternates_between_busy_queues() {
        let mut g = group(&[4, 4], 8);
        let order: Vec<u8> = (0..6).map(|_| take(&mut g, 1)[0][0]).collect();
        assert_eq!(order, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn each_queue_keeps_its_ring_and_counters_and_the_group_sums_them() {
        // Rings of 2: queue 0 offered 5 (3 missed), queue 1 offered 1.
        let mut g = group(&[5, 1], 2);
        assert_eq!(g.rx_queues(), 2);
        assert_eq!(g.rx_pending(), Some(3));
        let q0 = g.rx_queue_stats(0).unwrap();
        assert_eq!((q0.stats.rx_missed, q0.pending), (3, Some(2)));
        assert_eq!(g.rx_queue_stats(1).unwrap().stats.rx_missed, 0);
        assert!(g.rx_queue_stats(2).is_none());
        assert_eq!(take(&mut g, 10).len(), 3);
        let (q0, q1) = (g.rx_queue_stats(0).unwrap(), g.rx_queue_stats(1).unwrap());
        assert_eq!((q0.stats.rx_packets, q1.stats.rx_packets), (2, 1));
        assert_eq!((q0.pending, q1.pending), (Some(0), Some(0)));
        // Accounting: offered = received + missed, per queue and summed.
        let s = g.stats();
        assert_eq!((s.rx_packets, s.rx_missed, s.rx_bytes), (3, 3, 6));
        assert_eq!(s.rx_packets + s.rx_missed, 6);
        assert_eq!(g.check_status().stats, s);
        // Each queue found empty once, in the one call that drained them.
        assert_eq!(s.rx_empty, 2);
    }

    #[test]
    fn the_line_is_raised_while_any_queue_has_a_frame() {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let readable = |g: &QueueGroup<VirtNic>| {
            let mut fds = [PollFd::new(g.irq_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
        };
        let mut g = group(&[0, 1], 8);
        assert!(!g.intr_enabled());
        assert!(!readable(&g), "masked line must stay quiet");
        g.set_intr_enabled(true);
        assert!(g.intr_enabled());
        assert!(g.queues()[1].irq_asserted());
        assert!(readable(&g), "queue 1 has a frame");
        take(&mut g, 1);
        assert!(g.queues().iter().all(|q| !q.irq_asserted()));
        assert!(!readable(&g), "empty queues must lower the line");
    }

    #[test]
    fn transmit_goes_out_on_the_first_queue_and_a_group_of_none_drops_it() {
        let mut g = group(&[0, 0], 8);
        g.tx(&[7; 60]);
        assert_eq!(g.queues()[0].stats().tx_packets, 1);
        assert_eq!(g.stats().tx_packets, 1);
        let mut none = QueueGroup::<VirtNic>::new("virt0", MAC, Vec::new()).unwrap();
        assert_eq!(none.rx(10, &mut |_| {}), 0);
        none.tx(&[7; 60]);
        assert_eq!(none.stats().tx_dropped, 1);
        assert_eq!(none.rx_queues(), 0);
        assert_eq!(none.rx_pending(), Some(0));
        assert!(none.check_status().link_up);
    }

    #[test]
    fn too_many_queues_are_refused_with_the_bound() {
        let queues: Vec<VirtNic> = (0..=MAX_GROUP_QUEUES)
            .map(|_| VirtNic::new("virt0", MAC, 1).unwrap())
            .collect();
        let e = QueueGroup::new("virt0", MAC, queues).unwrap_err();
        assert!(
            matches!(
                e,
                NicError::QueueCount {
                    asked: 257,
                    max: 256,
                    ..
                }
            ),
            "{e}"
        );
    }
}
