//! `VirtNic`: an in-memory NIC with a bounded receive ring, the twin of
//! `TapNic` for tests and for virtual time (as smoltcp's `phy::Loopback`).
//!
//! Frames are injected by the caller; a full ring drops and counts
//! `rx_missed`, exactly where a tap's queue would. The interrupt line is an
//! eventfd kept readable while the line is unmasked and the ring holds a
//! frame.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::{Nic, NicStats, NicStatus};

/// An in-memory NIC.
#[derive(Debug)]
pub struct VirtNic {
    name: String,
    mac: [u8; 6],
    ring: VecDeque<Vec<u8>>,
    ring_len: usize,
    /// Frames the kernel transmitted, oldest first, at most `ring_len` kept.
    sent: VecDeque<Vec<u8>>,
    stats: NicStats,
    irq: EventFd,
    irq_enabled: bool,
    irq_raised: bool,
}

impl VirtNic {
    /// A NIC named `name` whose receive ring holds `ring_len` frames.
    pub fn new(name: &str, mac: [u8; 6], ring_len: usize) -> std::io::Result<VirtNic> {
        let irq = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(VirtNic {
            name: name.to_string(),
            mac,
            ring: VecDeque::with_capacity(ring_len),
            ring_len,
            sent: VecDeque::new(),
            stats: NicStats::default(),
            irq,
            irq_enabled: false,
            irq_raised: false,
        })
    }

    /// A frame arrives from the wire. Returns false if the ring was full
    /// (counted as `rx_missed`).
    pub fn inject(&mut self, frame: &[u8]) -> bool {
        if self.ring.len() >= self.ring_len {
            self.stats.rx_missed += 1;
            return false;
        }
        self.ring.push_back(frame.to_vec());
        self.sync_irq();
        true
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

#[cfg(test)]
mod tests {
    use super::*;

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
