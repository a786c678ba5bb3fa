//! `VirtNic`: an in-memory NIC with a bounded receive ring, the twin of
//! `TapNic` for tests and for virtual time (as smoltcp's `phy::Loopback`).
//!
//! Frames are injected by the caller; a full ring drops and counts
//! `rx_missed`, exactly where a tap's queue would. The interrupt line is an
//! eventfd kept readable while the line is unmasked and the ring holds a
//! frame.
//!
//! For virtual time, an [`Arrivals`] source can be wired to the NIC: the
//! scheduler asks [`VirtNic::next_arrival`] when the wire will next deliver
//! and calls [`VirtNic::arrive_until`] as its clock passes arrival times.
//! [`SharedVirtNic`] lets the kernel own the NIC as a `Box<dyn Nic>` while
//! the simulation keeps a handle on the same one (one thread, `Rc`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::arrivals::Arrivals;
use crate::{Nic, NicStats, NicStatus};

/// An in-memory NIC.
#[derive(Debug)]
pub struct VirtNic {
    name: String,
    mac: [u8; 6],
    ring: VecDeque<Vec<u8>>,
    /// Buffers of frames already taken, reused by later arrivals.
    free: Vec<Vec<u8>>,
    ring_len: usize,
    /// Frames the kernel transmitted, oldest first, at most `ring_len` kept.
    sent: VecDeque<Vec<u8>>,
    stats: NicStats,
    irq: EventFd,
    irq_enabled: bool,
    irq_raised: bool,
    /// The wire: when frames arrive, and the frame each one carries.
    source: Option<(Arrivals, Vec<u8>)>,
}

impl VirtNic {
    /// A NIC named `name` whose receive ring holds `ring_len` frames.
    pub fn new(name: &str, mac: [u8; 6], ring_len: usize) -> std::io::Result<VirtNic> {
        let irq = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(VirtNic {
            name: name.to_string(),
            mac,
            ring: VecDeque::with_capacity(ring_len),
            free: Vec::new(),
            ring_len,
            sent: VecDeque::new(),
            stats: NicStats::default(),
            irq,
            irq_enabled: false,
            irq_raised: false,
            source: None,
        })
    }

    /// A frame arrives from the wire. Returns false if the ring was full
    /// (counted as `rx_missed`).
    pub fn inject(&mut self, frame: &[u8]) -> bool {
        if self.ring.len() >= self.ring_len {
            self.stats.rx_missed += 1;
            return false;
        }
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.ring.push_back(buf);
        self.sync_irq();
        true
    }

    /// Wire `arrivals` to the NIC: each arrival brings a copy of `frame`.
    pub fn set_source(&mut self, arrivals: Arrivals, frame: Vec<u8>) {
        self.source = Some((arrivals, frame));
    }

    /// When the wire next delivers a frame, ns (None without a source).
    pub fn next_arrival(&self) -> Option<u64> {
        self.source.as_ref().map(|(a, _)| a.peek())
    }

    /// Frames the source has delivered so far (received or missed).
    pub fn arrived(&self) -> u64 {
        self.source.as_ref().map_or(0, |(a, _)| a.produced())
    }

    /// Deliver every arrival due at or before `now_ns`, in order; a full
    /// ring drops (`rx_missed`). Returns the frames delivered. Bound: the
    /// arrivals due, each O(1).
    pub fn arrive_until(&mut self, now_ns: u64) -> u64 {
        let Some((mut arrivals, frame)) = self.source.take() else {
            return 0;
        };
        let mut n = 0;
        while arrivals.take_due(now_ns).is_some() {
            self.inject(&frame);
            n += 1;
        }
        self.source = Some((arrivals, frame));
        n
    }

    /// Whether the interrupt line is raised: unmasked, with a frame waiting.
    pub fn irq_asserted(&self) -> bool {
        self.irq_enabled && !self.ring.is_empty()
    }

    /// Frames waiting in the receive ring.
    pub fn pending(&self) -> usize {
        self.ring.len()
    }

    /// Take the frames the kernel transmitted so far.
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        self.sent.drain(..).collect()
    }

    /// Keep the eventfd readable iff the line is unmasked and a frame waits.
    fn sync_irq(&mut self) {
        let want = self.irq_enabled && !self.ring.is_empty();
        if want && !self.irq_raised {
            self.irq_raised = self.irq.write(1).is_ok();
        } else if !want && self.irq_raised {
            self.irq_raised = self.irq.read().is_err();
        }
    }
}

impl Nic for VirtNic {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut taken = 0;
        while taken < count {
            let Some(frame) = self.ring.pop_front() else {
                self.stats.rx_empty += 1;
                break;
            };
            taken += 1;
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += frame.len() as u64;
            f(&frame);
            self.free.push(frame);
        }
        self.sync_irq();
        taken
    }

    fn tx(&mut self, frame: &[u8]) {
        if self.sent.len() >= self.ring_len {
            self.sent.pop_front();
        }
        self.sent.push_back(frame.to_vec());
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += frame.len() as u64;
    }

    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.irq.as_fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        self.irq_enabled = enabled;
        self.sync_irq();
    }

    fn intr_enabled(&self) -> bool {
        self.irq_enabled
    }

    fn check_status(&mut self) -> NicStatus {
        NicStatus {
            link_up: true,
            stats: self.stats,
        }
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

/// A [`VirtNic`] shared between the kernel (which owns this as its
/// `Box<dyn Nic>`) and the simulation (which keeps the `Rc` to inject
/// arrivals and read what was sent). Single-threaded by construction.
#[derive(Debug)]
pub struct SharedVirtNic {
    inner: Rc<RefCell<VirtNic>>,
    name: String,
    irq: OwnedFd,
}

impl SharedVirtNic {
    /// Share `nic`: the kernel's side, and the simulation's handle.
    pub fn new(nic: VirtNic) -> std::io::Result<(SharedVirtNic, Rc<RefCell<VirtNic>>)> {
        let irq = nic.irq.as_fd().try_clone_to_owned()?;
        let name = nic.name.clone();
        let inner = Rc::new(RefCell::new(nic));
        let handle = Rc::clone(&inner);
        Ok((SharedVirtNic { inner, name, irq }, handle))
    }
}

impl Nic for SharedVirtNic {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.borrow().mac
    }

    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        self.inner.borrow_mut().rx(count, f)
    }

    fn tx(&mut self, frame: &[u8]) {
        self.inner.borrow_mut().tx(frame);
    }

    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.irq.as_fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        self.inner.borrow_mut().set_intr_enabled(enabled);
    }

    fn intr_enabled(&self) -> bool {
        self.inner.borrow().irq_enabled
    }

    fn check_status(&mut self) -> NicStatus {
        self.inner.borrow_mut().check_status()
    }

    fn stats(&self) -> NicStats {
        self.inner.borrow().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrivals::Pattern;

    #[test]
    fn source_fills_the_ring_and_overflows_into_rx_missed() {
        let mut nic = VirtNic::new("virt0", [2, 0, 0, 0, 0, 1], 4).unwrap();
        let a = Arrivals::new(Pattern::Constant { pps: 1e6 }, 1, 0).unwrap();
        nic.set_source(a, vec![9; 60]);
        assert_eq!(nic.next_arrival(), Some(1_000));
        assert_eq!(nic.arrive_until(999), 0);
        assert_eq!(nic.arrive_until(10_000), 10);
        assert_eq!(nic.pending(), 4);
        assert_eq!(nic.stats().rx_missed, 6);
        assert_eq!(nic.arrived(), 10);
        assert_eq!(nic.next_arrival(), Some(11_000));
        nic.set_intr_enabled(true);
        assert!(nic.irq_asserted());
        let (mut shared, handle) = SharedVirtNic::new(nic).unwrap();
        let mut seen = 0;
        assert_eq!(shared.rx(10, &mut |f| seen += f.len()), 4);
        assert_eq!(seen, 240);
        assert!(!handle.borrow().irq_asserted());
        assert_eq!(shared.stats().rx_packets, 4);
    }

    #[test]
    fn full_ring_counts_rx_missed() {
        let mut nic = VirtNic::new("virt0", [2, 0, 0, 0, 0, 1], 2).unwrap();
        assert!(nic.inject(&[1]));
        assert!(nic.inject(&[2]));
        assert!(!nic.inject(&[3]));
        let mut seen = Vec::new();
        assert_eq!(nic.rx(10, &mut |f| seen.push(f[0])), 2);
        assert_eq!(seen, [1, 2]);
        let s = nic.stats();
        assert_eq!((s.rx_packets, s.rx_missed, s.rx_empty), (2, 1, 1));
    }

    #[test]
    fn rx_respects_count() {
        let mut nic = VirtNic::new("virt0", [2, 0, 0, 0, 0, 1], 8).unwrap();
        for i in 0..5 {
            nic.inject(&[i]);
        }
        assert_eq!(nic.rx(3, &mut |_| {}), 3);
        assert_eq!(nic.pending(), 2);
    }

    #[test]
    fn irq_line_follows_mask_and_ring() {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let readable = |nic: &VirtNic| {
            let mut fds = [PollFd::new(nic.irq_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
        };
        let mut nic = VirtNic::new("virt0", [2, 0, 0, 0, 0, 1], 8).unwrap();
        nic.inject(&[1]);
        assert!(!readable(&nic), "masked line must stay quiet");
        nic.set_intr_enabled(true);
        assert!(readable(&nic));
        nic.rx(1, &mut |_| {});
        assert!(!readable(&nic), "empty ring must lower the line");
    }
}
