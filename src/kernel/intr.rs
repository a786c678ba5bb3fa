//! Interrupt-driven input, as in 4.4BSD: the NIC's interrupt service
//! routine moves frames from the receive ring to `ipintrq`, and the IP
//! netisr later drains `ipintrq` into the protocol stack.
//!
//! Mirrors `if_input` → `IF_ENQUEUE(&ipintrq)` / `IF_DROP` (counted in
//! `net.inet.ip.intr_queue_drops`) and `schednetisr(NETISR_IP)`. This is
//! the path Mogul & Ramakrishnan show livelocking: the ISR runs at the
//! highest priority and, under overload, spends the CPU reading frames
//! that `ipintrq` then drops. The ISR's drain is the one deliberate
//! unbounded-looking loop of the kernel; it is still bounded by
//! `dev.<if>.rx_ring` frames per interrupt and by `intr_queue_maxlen`.

/// Default `net.inet.ip.intr_queue_maxlen`: 50, as IFQ_MAXLEN in 4.4BSD.
pub const IPINTRQ_MAXLEN_DEFAULT: usize = 50;
/// Largest accepted `intr_queue_maxlen` (FreeBSD's `netisr_maxqlimit`).
pub const IPINTRQ_MAXLEN_MAX: usize = 10_240;
/// Default `dev.<if>.rx_ring`: frames one interrupt may move.
pub const RX_RING_DEFAULT: usize = 256;
/// Largest accepted `dev.<if>.rx_ring`.
pub const RX_RING_MAX: usize = 4096;

/// `net.isr.dispatch`: how a frame a driver's poll handler takes reaches
/// the protocol (FreeBSD's netisr dispatch policy, `netisr_dispatch_src`,
/// a string node taking these names).
///
/// The policy applies where FreeBSD's `ether_input` → `netisr_dispatch`
/// does for the disciplines pollsim mirrors from FreeBSD: the polling
/// handlers (`netisr_poll` and `ether_poll`). The 4.4BSD interrupt path
/// always queues (its ISR runs at interrupt level, where the protocol
/// cannot), and NAPI and M&R are other kernels' paths, always direct.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dispatch {
    /// Straight into the stack in the poll handler's context (FreeBSD's
    /// default since 5.x, `NETISR_DISPATCH_DIRECT`).
    #[default]
    Direct,
    /// Direct unless frames wait in `ipintrq`, then queued behind them
    /// (`NETISR_DISPATCH_HYBRID`: direct when the netisr has no work
    /// pending on this CPU, so nothing is reordered).
    Hybrid,
    /// Always through `ipintrq`, drained by the IP netisr after the
    /// polling chunk (`NETISR_DISPATCH_DEFERRED`; FreeBSD 4's only way).
    Deferred,
}

impl Dispatch {
    /// The names `net.isr.dispatch` takes, by [`Dispatch::index`].
    pub const NAMES: [&'static str; 3] = ["direct", "hybrid", "deferred"];
    /// Every policy, by index.
    pub const ALL: [Dispatch; 3] = [Dispatch::Direct, Dispatch::Hybrid, Dispatch::Deferred];

    /// Its index in [`Dispatch::NAMES`].
    pub fn index(self) -> usize {
        match self {
            Dispatch::Direct => 0,
            Dispatch::Hybrid => 1,
            Dispatch::Deferred => 2,
        }
    }

    /// Whether a frame goes to `ipintrq` now, `queued` frames waiting there.
    pub fn queues(self, queued: usize) -> bool {
        match self {
            Dispatch::Direct => false,
            Dispatch::Hybrid => queued > 0,
            Dispatch::Deferred => true,
        }
    }
}

/// Capacity a slot starts with: any Ethernet frame without jumbo MTU.
const SLOT_LEN: usize = 1536;

/// `ipintrq`: a bounded FIFO of frames, each tagged with its interface.
/// Slots are allocated once and reused, so a flood allocates nothing.
#[derive(Debug)]
pub struct IpIntrQ {
    slots: Vec<(usize, Vec<u8>)>,
    head: usize,
    len: usize,
    maxlen: usize,
    /// Frames dropped because the queue was full (`intr_queue_drops`).
    pub drops: u64,
    /// Frames enqueued.
    pub enqueued: u64,
}

impl IpIntrQ {
    /// An empty queue of at most `maxlen` frames.
    pub fn new(maxlen: usize) -> IpIntrQ {
        let mut q = IpIntrQ {
            slots: Vec::new(),
            head: 0,
            len: 0,
            maxlen: 0,
            drops: 0,
            enqueued: 0,
        };
        q.set_maxlen(maxlen);
        q
    }

    /// Change the bound. Frames beyond a lowered bound stay queued and
    /// drain normally; new frames are dropped until below it.
    pub fn set_maxlen(&mut self, maxlen: usize) {
        let maxlen = maxlen.max(1);
        if maxlen > self.slots.len() {
            // Re-linearise so the ring can grow without reordering.
            let mut slots: Vec<(usize, Vec<u8>)> = Vec::with_capacity(maxlen);
            for i in 0..self.slots.len() {
                let j = (self.head + i) % self.slots.len();
                slots.push(std::mem::take(&mut self.slots[j]));
            }
            slots.resize_with(maxlen, || (0, Vec::with_capacity(SLOT_LEN)));
            self.slots = slots;
            self.head = 0;
        }
        self.maxlen = maxlen;
    }

    /// The bound (`intr_queue_maxlen`).
    pub fn maxlen(&self) -> usize {
        self.maxlen
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Frames of interface `ifidx` queued. O(len).
    pub fn len_of(&self, ifidx: usize) -> usize {
        let cap = self.slots.len();
        (0..self.len)
            .filter(|j| self.slots[(self.head + j) % cap].0 == ifidx)
            .count()
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Enqueue a copy of `frame` from interface `ifidx`, or drop it and
    /// count the drop if the queue is full. Bound: one copy.
    pub fn enqueue(&mut self, ifidx: usize, frame: &[u8]) -> bool {
        if self.len >= self.maxlen {
            self.drops += 1;
            return false;
        }
        let cap = self.slots.len();
        let slot = &mut self.slots[(self.head + self.len) % cap];
        slot.0 = ifidx;
        slot.1.clear();
        slot.1.extend_from_slice(frame);
        self.len += 1;
        self.enqueued += 1;
        true
    }

    /// Lend the oldest frame to `f` and dequeue it. Bound: one frame.
    pub fn dequeue_with<R>(&mut self, f: impl FnOnce(usize, &[u8]) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        let cap = self.slots.len();
        let (ifidx, frame) = &self.slots[self.head];
        let r = f(*ifidx, frame);
        self.head = (self.head + 1) % cap;
        self.len -= 1;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo_counts_drops() {
        let mut q = IpIntrQ::new(2);
        assert!(q.enqueue(0, &[1]));
        assert!(q.enqueue(1, &[2, 2]));
        assert!(!q.enqueue(0, &[3]));
        assert_eq!(q.drops, 1);
        assert_eq!(q.dequeue_with(|i, f| (i, f.to_vec())), Some((0, vec![1])));
        assert!(q.enqueue(0, &[4]));
        assert_eq!(q.dequeue_with(|i, f| (i, f.len())), Some((1, 2)));
        assert_eq!(q.dequeue_with(|_, f| f[0]), Some(4));
        assert_eq!(q.dequeue_with(|_, f| f[0]), None);
    }

    #[test]
    fn growing_keeps_order() {
        let mut q = IpIntrQ::new(3);
        for i in 0..3 {
            q.enqueue(0, &[i]);
        }
        q.dequeue_with(|_, _| ());
        q.enqueue(0, &[3]);
        q.set_maxlen(5);
        q.enqueue(0, &[4]);
        let mut out = Vec::new();
        while let Some(v) = q.dequeue_with(|_, f| f[0]) {
            out.push(v);
        }
        assert_eq!(out, [1, 2, 3, 4]);
    }
}
