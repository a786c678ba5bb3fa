//! `VirtNic`: an in-memory NIC with a bounded receive ring, the twin of
//! `TapNic` for tests and for virtual time (as smoltcp's `phy::Loopback`).
//!
//! Frames are injected by the caller; a full ring drops and counts
//! `rx_missed`, exactly where a tap's queue would. The interrupt line is
//! plain memory ([`VirtNic::irq_asserted`]: unmasked, with a frame
//! waiting), which is what the virtual-time scheduler reads. Only when a
//! real scheduler asks for a file descriptor to wait on ([`Nic::irq_fd`])
//! is an eventfd made, and from then on kept readable while the line is
//! raised; without one, raising and lowering the line costs no system call
//! (with one, two per interrupt).
//!
//! For virtual time, an [`Arrivals`] source can be wired to the NIC: the
//! scheduler asks [`VirtNic::next_arrival`] when the wire will next deliver
//! and calls [`VirtNic::arrive_until`] as its clock passes arrival times.
//! [`SharedVirtNic`] lets the kernel own the NIC as a `Box<dyn Nic>` while
//! the simulation keeps a handle on the same one (one thread, `Rc`).

use std::cell::{Cell, OnceCell, RefCell};
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
    /// The eventfd mirroring the line, made on the first `irq_fd` call.
    irq: OnceCell<EventFd>,
    irq_enabled: bool,
    /// The eventfd is readable (set where it is made, under `&self`).
    irq_raised: Cell<bool>,
    /// The wire: when frames arrive, and the frame each one carries.
    source: Option<Wire>,
}

/// The frames of a flood, one per flow, the order the flows send in, and
/// which of them reach this NIC (one queue of a multiqueue NIC keeps the
/// flows its RSS steers to it; a single-queue NIC keeps all).
#[derive(Clone, Debug)]
pub struct Flows {
    frames: Vec<Vec<u8>>,
    /// The flow of each arrival, cycled; `None`: each flow in turn.
    schedule: Option<Vec<u32>>,
    keep: Vec<bool>,
}

impl Flows {
    /// One flow: every arrival brings a copy of `frame`.
    pub fn one(frame: Vec<u8>) -> Flows {
        Flows {
            frames: vec![frame],
            schedule: None,
            keep: vec![true],
        }
    }

    /// `frames`, one per flow, sent each in turn or in the order of
    /// `schedule` (flow indices, cycled); this NIC keeps flow `i` iff
    /// `keep(i)`. `None` if there is no frame, a schedule entry names no
    /// flow, or no arrival would ever be kept.
    pub fn new(
        frames: Vec<Vec<u8>>,
        schedule: Option<Vec<u32>>,
        keep: impl Fn(usize) -> bool,
    ) -> Option<Flows> {
        let keep: Vec<bool> = (0..frames.len()).map(keep).collect();
        let sent: Box<dyn Iterator<Item = usize>> = match &schedule {
            Some(s) if s.iter().any(|&f| f as usize >= frames.len()) || s.is_empty() => {
                return None;
            }
            Some(s) => Box::new(s.iter().map(|&f| f as usize)),
            None => Box::new(0..frames.len()),
        };
        let any = sent.into_iter().any(|f| keep[f]);
        any.then_some(Flows {
            frames,
            schedule,
            keep,
        })
    }

    /// The flow of the `n`th arrival (from 0).
    fn flow(&self, n: u64) -> usize {
        match &self.schedule {
            Some(s) => s[(n % s.len() as u64) as usize] as usize,
            None => (n % self.frames.len() as u64) as usize,
        }
    }
}

/// An arrival source and the flows it carries, with the arrivals of flows
/// this NIC does not keep skipped ahead, so that the next arrival is
/// always one of its own.
#[derive(Debug)]
struct Wire {
    arrivals: Arrivals,
    flows: Flows,
    /// Arrivals drawn so far (kept or not): the flow cursor.
    drawn: u64,
    /// Arrivals kept so far.
    kept: u64,
}

impl Wire {
    fn new(arrivals: Arrivals, flows: Flows) -> Wire {
        let mut w = Wire {
            arrivals,
            flows,
            drawn: 0,
            kept: 0,
        };
        w.skip_foreign();
        w
    }

    /// Draw past the arrivals of flows other NICs keep. Bound: `Flows::new`
    /// made sure one flow of the cycle is kept, so at most one cycle.
    fn skip_foreign(&mut self) {
        while !self.flows.keep[self.flows.flow(self.drawn)] {
            let t = self.arrivals.peek();
            self.arrivals.take_due(t);
            self.drawn += 1;
        }
    }

    /// The frame of the next arrival if it is due at or before `now`.
    fn take_due(&mut self, now: u64) -> Option<usize> {
        self.arrivals.take_due(now)?;
        let f = self.flows.flow(self.drawn);
        self.drawn += 1;
        self.kept += 1;
        self.skip_foreign();
        Some(f)
    }
}

impl VirtNic {
    /// A NIC named `name` whose receive ring holds `ring_len` frames. It
    /// holds no OS resource (its interrupt line's eventfd is made on
    /// demand), so this does not fail; the `Result` stays for callers.
    pub fn new(name: &str, mac: [u8; 6], ring_len: usize) -> std::io::Result<VirtNic> {
        Ok(VirtNic {
            name: name.to_string(),
            mac,
            ring: VecDeque::with_capacity(ring_len),
            free: Vec::new(),
            ring_len,
            sent: VecDeque::new(),
            stats: NicStats::default(),
            irq: OnceCell::new(),
            irq_enabled: false,
            irq_raised: Cell::new(false),
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
        self.set_flows(arrivals, Flows::one(frame));
    }

    /// Wire `arrivals` to the NIC carrying `flows`: the arrivals of the
    /// flows it keeps reach its ring, the others go to other queues.
    pub fn set_flows(&mut self, arrivals: Arrivals, flows: Flows) {
        self.source = Some(Wire::new(arrivals, flows));
    }

    /// When the wire next delivers a frame, ns (None without a source).
    pub fn next_arrival(&self) -> Option<u64> {
        self.source.as_ref().map(|w| w.arrivals.peek())
    }

    /// Frames the source has delivered to this NIC so far (received or
    /// missed).
    pub fn arrived(&self) -> u64 {
        self.source.as_ref().map_or(0, |w| w.kept)
    }

    /// Deliver every arrival due at or before `now_ns`, in order; a full
    /// ring drops (`rx_missed`). Returns the frames delivered. Bound: the
    /// arrivals due, each O(1).
    pub fn arrive_until(&mut self, now_ns: u64) -> u64 {
        let Some(mut wire) = self.source.take() else {
            return 0;
        };
        let mut n = 0;
        while let Some(f) = wire.take_due(now_ns) {
            self.inject(&wire.flows.frames[f]);
            n += 1;
        }
        self.source = Some(wire);
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

    /// Keep the eventfd, if one was asked for, readable iff the line is
    /// unmasked and a frame waits. Without one: no system call.
    fn sync_irq(&mut self) {
        let Some(irq) = self.irq.get() else {
            return;
        };
        let want = self.irq_enabled && !self.ring.is_empty();
        if want && !self.irq_raised.get() {
            self.irq_raised.set(irq.write(1).is_ok());
        } else if !want && self.irq_raised.get() {
            self.irq_raised.set(irq.read().is_err());
        }
    }

    /// The eventfd of the line, made (and raised if the line is) on the
    /// first call. Panics if the system refuses an eventfd: this happens at
    /// a real scheduler's set-up, never on the data path.
    fn irq_eventfd(&self) -> &EventFd {
        self.irq.get_or_init(|| {
            let fd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .unwrap_or_else(|e| panic!("{}: creating the interrupt eventfd: {e}", self.name));
            if self.irq_asserted() {
                self.irq_raised.set(fd.write(1).is_ok());
            }
            fd
        })
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
        self.irq_eventfd().as_fd()
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

    fn rx_pending(&self) -> Option<usize> {
        Some(self.ring.len())
    }
}

/// A [`VirtNic`] shared between the kernel (which owns this as its
/// `Box<dyn Nic>`) and the simulation (which keeps the `Rc` to inject
/// arrivals and read what was sent). Single-threaded by construction.
#[derive(Debug)]
pub struct SharedVirtNic {
    inner: Rc<RefCell<VirtNic>>,
    name: String,
    /// A duplicate of the inner NIC's eventfd, made on the first `irq_fd`
    /// call (so that it can be lent for as long as `&self`).
    irq: OnceCell<OwnedFd>,
}

impl SharedVirtNic {
    /// Share `nic`: the kernel's side, and the simulation's handle. Makes
    /// no file descriptor (the interrupt line is plain memory until a real
    /// scheduler asks for one), so this does not fail; the `Result` stays
    /// for callers.
    pub fn new(nic: VirtNic) -> std::io::Result<(SharedVirtNic, Rc<RefCell<VirtNic>>)> {
        let name = nic.name.clone();
        let inner = Rc::new(RefCell::new(nic));
        let handle = Rc::clone(&inner);
        let irq = OnceCell::new();
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

    /// Panics if the system refuses the eventfd or its duplicate: this
    /// happens at a real scheduler's set-up, never on the data path.
    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.irq
            .get_or_init(|| {
                self.inner
                    .borrow()
                    .irq_fd()
                    .try_clone_to_owned()
                    .unwrap_or_else(|e| {
                        panic!("{}: duplicating the interrupt eventfd: {e}", self.name)
                    })
            })
            .as_fd()
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

    fn rx_pending(&self) -> Option<usize> {
        Some(self.inner.borrow().ring.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrivals::Pattern;

    #[test]
    fn flows_split_one_flood_between_queues_in_order() {
        let frames: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 60]).collect();
        let pattern = Pattern::Constant { pps: 1e6 };
        let mut queues: Vec<VirtNic> = (0..2)
            .map(|q| {
                let mut nic = VirtNic::new("virt0", [2, 0, 0, 0, 0, 1], 100).unwrap();
                let flows = Flows::new(frames.clone(), None, |f| f % 2 == q).unwrap();
                nic.set_flows(Arrivals::new(pattern, 1, 0).unwrap(), flows);
                nic
            })
            .collect();
        // Queue 1 keeps flows 1 and 3: arrivals 2, 4, ... at 2 us, 4 us.
        assert_eq!(queues[0].next_arrival(), Some(1_000));
        assert_eq!(queues[1].next_arrival(), Some(2_000));
        for q in &mut queues {
            q.arrive_until(10_000);
        }
        assert_eq!(queues[0].arrived() + queues[1].arrived(), 10);
        let mut seen = Vec::new();
        queues[1].rx(10, &mut |f| seen.push(f[0]));
        assert_eq!(seen, [1, 3, 1, 3, 1]);
        // A queue that keeps nothing of the cycle gets no source.
        assert!(Flows::new(frames.clone(), Some(vec![0, 2]), |f| f % 2 == 1).is_none());
        assert!(Flows::new(frames, Some(vec![7]), |_| true).is_none());
    }

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
    fn the_line_is_memory_until_an_fd_is_asked_for() {
        let mut nic = VirtNic::new("virt0", [2, 0, 0, 0, 0, 1], 8).unwrap();
        nic.set_intr_enabled(true);
        nic.inject(&[1]);
        assert!(nic.irq_asserted());
        assert!(nic.irq.get().is_none(), "no eventfd on virtual time");
        nic.rx(1, &mut |_| {});
        assert!(!nic.irq_asserted());
        assert!(nic.irq.get().is_none());
        let (shared, _handle) = SharedVirtNic::new(nic).unwrap();
        assert!(shared.irq.get().is_none());
    }

    #[test]
    fn an_fd_asked_for_while_the_line_is_raised_starts_readable() {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut nic = VirtNic::new("virt0", [2, 0, 0, 0, 0, 1], 8).unwrap();
        nic.set_intr_enabled(true);
        nic.inject(&[1]);
        let (mut shared, _handle) = SharedVirtNic::new(nic).unwrap();
        let readable = |s: &SharedVirtNic| {
            let mut fds = [PollFd::new(s.irq_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
        };
        assert!(readable(&shared));
        shared.rx(1, &mut |_| {});
        assert!(!readable(&shared), "empty ring must lower the line");
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
