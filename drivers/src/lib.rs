//! The NIC boundary of pollsim: one small [`Nic`] trait and its drivers.
//!
//! Mirrors FreeBSD's driver contract for device polling (`poll_handler_t(ifp,
//! cmd, count)` returning the packets taken, `enum poll_cmd`) and the
//! interrupt line a driver masks when it registers for polling. Like smoltcp's
//! `phy::Device`, frames are lent to a closure, never copied into a fresh
//! allocation by the trait.
//!
//! - [`TapNic`]: a real Linux tap device (tun-tap crate). OS specifics live in
//!   `sys/`, the only place where `unsafe` is allowed.
//! - [`TapQueue`] ([`mqtap`]): the tap opened as M queues, each a `Nic`;
//!   one queue is the `TapNic` above, more are [`MqTapQueue`]s, one fd each
//!   attached with `TUNSETIFF` and `IFF_MULTI_QUEUE`.
//! - [`PcapNic`]: a wrapper around any `Nic` that captures its frames to a
//!   pcapng file ([`Capture`]), off the per-frame path.
//! - [`rss`]: receive side scaling, the Toeplitz hash and the indirection
//!   table a multiqueue NIC steers frames with.
//! - [`VirtNic`]: an in-memory twin with a bounded ring, for tests and for
//!   virtual time, fed by a seeded [`Arrivals`] source.
//! - [`QueueGroup`] ([`group`]): several receive queues of one device served
//!   by one CPU, as one `Nic`, each queue keeping its own ring and counters.
#![deny(unsafe_code)]

pub mod arrivals;
pub mod group;
pub mod mqtap;
pub mod pcap;
pub mod rss;
mod sys;
mod tap;
mod virt;

use std::os::fd::BorrowedFd;

pub use arrivals::{Arrivals, Pattern};
pub use group::{MAX_GROUP_QUEUES, QueueGroup};
pub use mqtap::{MAX_TAP_QUEUES, MqTapQueue, TapQueue};
pub use pcap::{Capture, PcapNic, PcapStats};
pub use rss::{IndirTable, Rss, RssKey, Steer, Toeplitz};
pub use tap::TapNic;
pub use virt::{Flows, SharedVirtNic, VirtNic};

/// What a poll handler is asked to do, as FreeBSD's `enum poll_cmd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PollCmd {
    /// Quick move of up to `count` frames from the receive ring.
    PollOnly,
    /// As `PollOnly`, plus the more expensive status check
    /// ([`Nic::check_status`]); issued every `kern.polling.reg_frac` ticks.
    PollAndCheckStatus,
}

/// Counters kept by a driver. Each doc line doubles as the description of
/// the `dev.<if>.<name>` sysctl that shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Frames taken from the receive ring
    pub rx_packets: u64,
    /// Bytes taken from the receive ring
    pub rx_bytes: u64,
    /// Receive attempts that found the ring empty
    pub rx_empty: u64,
    /// Frames the device dropped because its receive ring was full
    pub rx_missed: u64,
    /// Frames transmitted
    pub tx_packets: u64,
    /// Bytes transmitted
    pub tx_bytes: u64,
    /// Frames dropped on transmit because the device was busy (EAGAIN, ENOBUFS)
    pub tx_dropped: u64,
    /// Receive or transmit errors other than an empty ring or a busy device
    pub errors: u64,
}

/// One receive queue's counters, as [`Nic::rx_queue_stats`] reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxQueueStats {
    /// The queue's own counters (its `rx_missed` as the device can tell:
    /// see [`TapQueue::reports_device_drops`]).
    pub stats: NicStats,
    /// Frames waiting in its ring, if the device can tell
    /// ([`Nic::rx_pending`]).
    pub pending: Option<usize>,
}

/// Link state and statistics, as read by [`Nic::check_status`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStatus {
    /// The link is up (for a tap: the kernel side is up and a reader is attached).
    pub link_up: bool,
    /// The driver's counters, with `rx_missed` refreshed from the device.
    pub stats: NicStats,
}

/// One network interface as the simulated kernel sees it.
///
/// Every method does a bounded amount of work: `rx` at most `count` frames,
/// `tx` one frame, the others a constant number of system calls.
pub trait Nic {
    /// The interface name (`tap0`), used in `dev.<if>.*`.
    fn name(&self) -> &str;

    /// The device's own MAC address.
    fn mac(&self) -> [u8; 6];

    /// Take up to `count` frames from the receive ring, lending each to `f`
    /// in arrival order. Returns the number of frames taken (as a FreeBSD
    /// poll handler does). An empty ring is not an error: it ends the call.
    /// Bound: at most `count` frames, `count + 1` receive attempts.
    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize;

    /// Transmit one frame. A busy device drops it and counts
    /// `tx_dropped`; this never blocks and never fails loudly.
    fn tx(&mut self, frame: &[u8]);

    /// The interrupt line: a file descriptor that is readable (level
    /// triggered) while interrupts are enabled and frames are waiting.
    fn irq_fd(&self) -> BorrowedFd<'_>;

    /// Unmask (`true`) or mask (`false`) the interrupt line. A driver masks
    /// it when it registers for polling, as FreeBSD drivers do.
    fn set_intr_enabled(&mut self, enabled: bool);

    /// Whether the interrupt line is unmasked.
    fn intr_enabled(&self) -> bool;

    /// Read link state and the device's statistics (the costly part of
    /// `POLL_AND_CHECK_STATUS`).
    fn check_status(&mut self) -> NicStatus;

    /// The counters as of now, without touching the device.
    fn stats(&self) -> NicStats;

    /// The kernel's clock (ns, real or virtual) at the unit of work that
    /// calls `rx` and `tx` next. Drivers have no use for it; a wrapper
    /// that timestamps frames (a capture) keeps it.
    fn set_now(&mut self, _now_ns: u64) {}

    /// Frames waiting in the receive ring, if the device can tell without
    /// taking them (an in-memory ring can; a tap's queue cannot). Used by
    /// interrupt moderation's frame count (`rx_frames`); `None` leaves
    /// only its timer.
    fn rx_pending(&self) -> Option<usize> {
        None
    }

    /// Receive queues this NIC takes frames from: 1, but for a
    /// [`QueueGroup`] (which may have several, or none).
    fn rx_queues(&self) -> usize {
        1
    }

    /// The counters of receive queue `ring` (`0..rx_queues()`) of this NIC,
    /// `None` past the last. A NIC of one queue is its own queue.
    fn rx_queue_stats(&self, ring: usize) -> Option<RxQueueStats> {
        (ring == 0).then(|| RxQueueStats {
            stats: self.stats(),
            pending: self.rx_pending(),
        })
    }
}

/// A boxed NIC is a NIC (a [`QueueGroup`] of boxed queues, a wrapper of
/// one): every method is the box's.
impl<N: Nic + ?Sized> Nic for Box<N> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn mac(&self) -> [u8; 6] {
        (**self).mac()
    }

    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        (**self).rx(count, f)
    }

    fn tx(&mut self, frame: &[u8]) {
        (**self).tx(frame);
    }

    fn irq_fd(&self) -> BorrowedFd<'_> {
        (**self).irq_fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        (**self).set_intr_enabled(enabled);
    }

    fn intr_enabled(&self) -> bool {
        (**self).intr_enabled()
    }

    fn check_status(&mut self) -> NicStatus {
        (**self).check_status()
    }

    fn stats(&self) -> NicStats {
        (**self).stats()
    }

    fn set_now(&mut self, now_ns: u64) {
        (**self).set_now(now_ns);
    }

    fn rx_pending(&self) -> Option<usize> {
        (**self).rx_pending()
    }

    fn rx_queues(&self) -> usize {
        (**self).rx_queues()
    }

    fn rx_queue_stats(&self, ring: usize) -> Option<RxQueueStats> {
        (**self).rx_queue_stats(ring)
    }
}

/// Why a NIC could not be opened. Each message names the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum NicError {
    /// /dev/net/tun is missing.
    #[error("cannot open /dev/net/tun: {0} (load the tun module: modprobe tun)")]
    NoTunDevice(std::io::Error),
    /// The caller lacks CAP_NET_ADMIN.
    #[error("cannot attach to {name}: permission denied (run as root or with CAP_NET_ADMIN)")]
    PermissionDenied {
        /// Interface name.
        name: String,
    },
    /// No interface of that name.
    #[error(
        "no interface {name} (create it first: ip tuntap add dev {name} mode tap && ip link set {name} up)"
    )]
    NoSuchInterface {
        /// Interface name.
        name: String,
    },
    /// The interface exists but is not a tap.
    #[error(
        "{name} exists and is not a tap device (pick another name or delete it: ip link del {name})"
    )]
    NotATap {
        /// Interface name.
        name: String,
    },
    /// The tap is attached to another process (a single-queue tap has one reader).
    #[error("{name} is busy: another process has it open (stop it, or use another tap)")]
    Busy {
        /// Interface name.
        name: String,
    },
    /// A single-queue open of a multiqueue tap.
    #[error(
        "{name} is a multiqueue tap: open it with 2 or more queues, or recreate it as a single-queue one (ip link del {name} && ip tuntap add dev {name} mode tap)"
    )]
    MultiQueueTap {
        /// Interface name.
        name: String,
    },
    /// A multiqueue open of a single-queue tap.
    #[error(
        "{name} is a single-queue tap: open it with 1 queue, or recreate it as a multiqueue one (ip link del {name} && ip tuntap add dev {name} mode tap multi_queue)"
    )]
    SingleQueueTap {
        /// Interface name.
        name: String,
    },
    /// A queue count outside what a tap can have, refused before any system call.
    #[error("{name}: {asked} queues asked for; a tap has 1..={max} (MAX_TAP_QUEUES)")]
    QueueCount {
        /// Interface name.
        name: String,
        /// The count asked for.
        asked: usize,
        /// `MAX_TAP_QUEUES`.
        max: usize,
    },
    /// The kernel refused one more queue (`E2BIG`): the tap already holds
    /// its maximum, counting queues other processes attached.
    #[error(
        "{name} has no free queue: a tap holds at most {max}, counting those other processes have attached"
    )]
    NoFreeQueue {
        /// Interface name.
        name: String,
        /// `MAX_TAP_QUEUES`.
        max: usize,
    },
    /// Any other system error, with the call that failed.
    #[error("{what} on {name}: {source}")]
    Os {
        /// What was attempted.
        what: &'static str,
        /// Interface name.
        name: String,
        /// The system error.
        source: std::io::Error,
    },
}
