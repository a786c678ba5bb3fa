//! A tap opened as M receive queues, each its own [`Nic`].
//!
//! Linux (since 3.8) makes a tap multiqueue with `IFF_MULTI_QUEUE`: each
//! fd of `/dev/net/tun` attached to the device with `TUNSETIFF`, the same
//! name and that flag, is one queue (`struct tun_file`), up to
//! `MAX_TAP_QUEUES` (256) of them (Documentation/networking/tuntap.rst,
//! "Multiqueue tuntap interface"; `tun_set_iff`, `tun_attach` in
//! drivers/net/tun.c). The tun-tap crate cannot do this (it knows no
//! `IFF_MULTI_QUEUE`), so [`MqTapQueue`] attaches its fds itself
//! (`sys::attach_tap_queue`, the raw ioctl), while one queue stays the
//! [`TapNic`] over tun-tap exactly as before: [`TapQueue::open_queues`]
//! with M = 1 is `TapNic::open`.
//!
//! What the kernel does with the queues, and so what pollsim sees:
//!
//! - **Steering (frames the kernel sends, which the queues receive).**
//!   Without an eBPF steering program, `tun_automq_select_queue` takes a
//!   symmetric flow hash of the frame (`__skb_get_hash_symmetric`: both
//!   directions of a flow hash alike), looks it up in the tap's flow table
//!   and, for a flow it has not learnt, picks queue `(hash * numqueues) >>
//!   32`. The hash is keyed at random per boot: which queue a flow lands on
//!   cannot be predicted from userspace, only that a flow stays on one
//!   queue. pollsim's own Toeplitz (`rss.rs`) steers the virtual NIC, not
//!   this one.
//! - **"Tx follows rx" (frames a queue writes).** A frame written on queue
//!   i records its flow's hash with queue i (`tun_flow_update`, entries
//!   age out after 3 s), so the kernel's replies to it come back on the
//!   queue that wrote it. A stack that answers a flow from the queue that
//!   received it therefore keeps the flow on one queue both ways.
//! - **Drops.** A full queue (its ring holds `txqueuelen` frames) drops
//!   the frame and counts it in the device's `tx_dropped`, one counter for
//!   all queues: which queue missed a frame cannot be read. Queue 0 does
//!   the device's status check (as DragonFly's ifpoll runs the status poll
//!   on CPU 0) and reports the device's drops as its `rx_missed`; the other
//!   queues report 0, so the queues' sum is the device's
//!   ([`TapQueue::reports_device_drops`]).
//! - **Ring fill**: a tap's queue cannot tell its depth without being read
//!   (`rx_pending` is `None`), as for the single-queue tap.

use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd};

use crate::sys::{self, IrqLine, KernelSideStats, LinkFlags, StatusRegs};
use crate::tap::{count_tx, is_tap_of_kind, rx_frames};
use crate::{Nic, NicError, NicStats, NicStatus, TapNic};

/// Most queues one tap holds (`MAX_TAP_QUEUES` in drivers/net/tun.c,
/// "chosen to allow rx/tx queues to be equal to max number of VCPUs in
/// guest"), counting those other processes attached.
pub const MAX_TAP_QUEUES: usize = 256;

// The RSS indirection table may name any queue a tap can have, no more.
const _: () = assert!(MAX_TAP_QUEUES == crate::rss::MAX_QUEUES as usize);

/// Largest frame read, as for the single-queue tap: any MTU fits.
const RX_BUF_LEN: usize = 65_536;

/// How a tap of M queues is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TapPath {
    /// One queue: `TapNic` over tun-tap, the single-queue path.
    TunTap,
    /// M ≥ 2 fds, each attached with `IFF_MULTI_QUEUE`.
    MultiQueue(usize),
}

impl TapPath {
    /// The path for `queues` queues of `name`, or why there is none: 0 and
    /// more than [`MAX_TAP_QUEUES`] are refused before any system call.
    pub(crate) fn for_queues(name: &str, queues: usize) -> Result<TapPath, NicError> {
        match queues {
            1 => Ok(TapPath::TunTap),
            2..=MAX_TAP_QUEUES => Ok(TapPath::MultiQueue(queues)),
            _ => Err(NicError::QueueCount {
                name: name.to_string(),
                asked: queues,
                max: MAX_TAP_QUEUES,
            }),
        }
    }
}

/// One receive queue of a tap, as a `Nic`: the whole single-queue tap, or
/// one queue of a multiqueue one.
#[derive(Debug)]
pub enum TapQueue {
    /// The only queue of a single-queue tap (tun-tap).
    Single(TapNic),
    /// One queue of a multiqueue tap.
    Multi(MqTapQueue),
}

// Each queue is meant to be read by its own thread (one per CPU).
const _: fn() = || {
    fn send<T: Send>() {}
    send::<TapQueue>();
};

impl TapQueue {
    /// Attach `queues` queues (1..=[`MAX_TAP_QUEUES`]) of the existing tap
    /// `name`, each non-blocking with its interrupt line masked. One queue
    /// is `TapNic::open` (a tap made with `ip tuntap add dev NAME mode
    /// tap`); more need a multiqueue tap (`... mode tap multi_queue`), and
    /// each is an [`MqTapQueue`] with its own fd, interrupt line and
    /// counters. All share the name `name` and the MAC `mac`; queue `i` of
    /// the result has [`index`](TapQueue::index) `i`. On an error no queue
    /// stays attached.
    pub fn open_queues(name: &str, queues: usize, mac: [u8; 6]) -> Result<Vec<TapQueue>, NicError> {
        match TapPath::for_queues(name, queues)? {
            TapPath::TunTap => Ok(vec![TapQueue::Single(TapNic::open(name, mac)?)]),
            TapPath::MultiQueue(m) => Ok(MqTapQueue::open_all(name, m, mac)?
                .into_iter()
                .map(TapQueue::Multi)
                .collect()),
        }
    }

    /// This queue's place among the queues opened together (0 for a
    /// single-queue tap). The kernel's own index can differ when other
    /// processes hold queues of the same tap.
    pub fn index(&self) -> usize {
        match self {
            TapQueue::Single(_) => 0,
            TapQueue::Multi(q) => q.index(),
        }
    }

    /// Whether this queue's `rx_missed` carries the device's drops (the
    /// single queue, or queue 0 of a multiqueue tap): a tap counts its
    /// drops per device, not per queue.
    pub fn reports_device_drops(&self) -> bool {
        self.index() == 0
    }

    /// The queue's own file descriptor (the device, not the interrupt line).
    pub fn device_fd(&self) -> BorrowedFd<'_> {
        match self {
            TapQueue::Single(t) => t.device_fd(),
            TapQueue::Multi(q) => q.device_fd(),
        }
    }

    fn nic(&self) -> &dyn Nic {
        match self {
            TapQueue::Single(t) => t,
            TapQueue::Multi(q) => q,
        }
    }

    fn nic_mut(&mut self) -> &mut dyn Nic {
        match self {
            TapQueue::Single(t) => t,
            TapQueue::Multi(q) => q,
        }
    }
}

impl Nic for TapQueue {
    fn name(&self) -> &str {
        self.nic().name()
    }

    fn mac(&self) -> [u8; 6] {
        self.nic().mac()
    }

    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        self.nic_mut().rx(count, f)
    }

    fn tx(&mut self, frame: &[u8]) {
        self.nic_mut().tx(frame);
    }

    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.nic().irq_fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        self.nic_mut().set_intr_enabled(enabled);
    }

    fn intr_enabled(&self) -> bool {
        self.nic().intr_enabled()
    }

    fn check_status(&mut self) -> NicStatus {
        self.nic_mut().check_status()
    }

    fn stats(&self) -> NicStats {
        self.nic().stats()
    }

    fn rx_pending(&self) -> Option<usize> {
        self.nic().rx_pending()
    }
}

impl AsFd for TapQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.device_fd()
    }
}

/// The device-wide status registers, held by queue 0.
#[derive(Debug)]
struct DeviceRegs {
    regs: StatusRegs,
    /// Kernel-side counters when the queues attached: drops before then
    /// are not ours.
    baseline: KernelSideStats,
}

/// One queue of a multiqueue tap: its own non-blocking fd, interrupt line
/// and counters. Frames of a flow arrive on one queue (the kernel's
/// choice); frames it writes teach the kernel to send the flow's replies
/// back to it.
#[derive(Debug)]
pub struct MqTapQueue {
    dev: std::fs::File,
    name: String,
    index: usize,
    mac: [u8; 6],
    buf: Box<[u8]>,
    stats: NicStats,
    irq: IrqLine,
    link: LinkFlags,
    /// Queue 0 only: the device's drop counter.
    device: Option<DeviceRegs>,
}

impl MqTapQueue {
    /// Attach `m` (1..=[`MAX_TAP_QUEUES`]) queues of the multiqueue tap
    /// `name`, in the caller's network namespace. Bound: `m` opens and
    /// ioctls, one epoll instance per queue.
    fn open_all(name: &str, m: usize, mac: [u8; 6]) -> Result<Vec<MqTapQueue>, NicError> {
        if !(1..=MAX_TAP_QUEUES).contains(&m) {
            return Err(NicError::QueueCount {
                name: name.to_string(),
                asked: m,
                max: MAX_TAP_QUEUES,
            });
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err(NicError::NoTunDevice(io::Error::from(
                io::ErrorKind::NotFound,
            )));
        }
        let os = |what, source| NicError::Os {
            what,
            name: name.to_string(),
            source,
        };
        let mut regs = StatusRegs::open()
            .map_err(|e| os("opening /proc/thread-self/net/dev and a socket", e))?;
        let baseline = regs
            .stats(name)
            .map_err(|e| os("reading /proc/thread-self/net/dev", e))?
            .ok_or_else(|| NicError::NoSuchInterface {
                name: name.to_string(),
            })?;
        let link = LinkFlags::open().map_err(|e| os("opening a socket", e))?;
        let mut device = Some(DeviceRegs { regs, baseline });
        let mut out = Vec::with_capacity(m);
        for index in 0..m {
            let dev =
                sys::attach_tap_queue(name, true).map_err(|e| classify_attach_error(name, e))?;
            let irq = IrqLine::new().map_err(|e| os("creating the interrupt line", e))?;
            out.push(MqTapQueue {
                dev,
                name: name.to_string(),
                index,
                mac,
                buf: vec![0; RX_BUF_LEN].into_boxed_slice(),
                stats: NicStats::default(),
                irq,
                link: link.clone(),
                device: device.take(),
            });
        }
        Ok(out)
    }

    /// This queue's place among the queues opened together.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The queue's own file descriptor (the device, not the interrupt line).
    pub fn device_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
}

/// Name the cause of a refused multiqueue attach, with its fix.
fn classify_attach_error(name: &str, e: io::Error) -> NicError {
    let name = name.to_string();
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => NicError::PermissionDenied { name },
        Some(libc::E2BIG) => NicError::NoFreeQueue {
            name,
            max: MAX_TAP_QUEUES,
        },
        Some(libc::EBUSY) => NicError::Busy { name },
        // EINVAL: not a tap, or a single-queue one (the multiqueue flag
        // differs from the device's); a single-queue attach tells which.
        Some(libc::EINVAL) if is_tap_of_kind(&name, false) => NicError::SingleQueueTap { name },
        Some(libc::EINVAL) => NicError::NotATap { name },
        Some(libc::ENOENT) | Some(libc::ENODEV) => NicError::NoTunDevice(e),
        _ => NicError::Os {
            what: "attaching a queue (TUNSETIFF with IFF_MULTI_QUEUE)",
            name,
            source: e,
        },
    }
}

impl Nic for MqTapQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let dev = &mut self.dev;
        rx_frames(&mut self.buf, &mut self.stats, count, f, |buf| {
            dev.read(buf)
        })
    }

    fn tx(&mut self, frame: &[u8]) {
        count_tx(&mut self.stats, frame.len(), self.dev.write(frame));
    }

    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.irq.fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        if self.irq.set_enabled(self.dev.as_fd(), enabled).is_err() {
            self.stats.errors += 1;
        }
    }

    fn intr_enabled(&self) -> bool {
        self.irq.enabled()
    }

    /// Link state for every queue; queue 0 also reads the device's drops.
    fn check_status(&mut self) -> NicStatus {
        if let Some(d) = &mut self.device {
            match d.regs.stats(&self.name) {
                Ok(Some(k)) => {
                    self.stats.rx_missed = k.tx_dropped.saturating_sub(d.baseline.tx_dropped);
                }
                _ => self.stats.errors += 1,
            }
        }
        let link_up = self.link.link_up(&self.name).unwrap_or(false);
        NicStatus {
            link_up,
            stats: self.stats,
        }
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

impl AsFd for MqTapQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.device_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_queue_takes_the_tun_tap_path() {
        assert_eq!(TapPath::for_queues("tap0", 1).unwrap(), TapPath::TunTap);
        assert_eq!(
            TapPath::for_queues("tap0", 2).unwrap(),
            TapPath::MultiQueue(2)
        );
        assert_eq!(
            TapPath::for_queues("tap0", MAX_TAP_QUEUES).unwrap(),
            TapPath::MultiQueue(MAX_TAP_QUEUES)
        );
    }

    #[test]
    fn queue_counts_outside_the_tap_limit_are_refused_before_any_syscall() {
        assert_eq!(MAX_TAP_QUEUES, 256);
        for asked in [0, MAX_TAP_QUEUES + 1, 10_000] {
            // No tap of this name exists: a refusal that names the count
            // can only come from the check, not from the kernel.
            let e = TapQueue::open_queues("pollsim-none", asked, [2, 0, 0, 0, 0, 1]).unwrap_err();
            match &e {
                NicError::QueueCount {
                    name,
                    asked: a,
                    max,
                } => {
                    assert_eq!((name.as_str(), *a, *max), ("pollsim-none", asked, 256));
                }
                other => panic!("{asked} queues: {other}"),
            }
            let msg = e.to_string();
            assert!(msg.contains(&format!("{asked} queues")), "{msg}");
            assert!(msg.contains("1..=256"), "{msg}");
        }
    }

    #[test]
    fn the_tap_kind_errors_say_how_to_recreate_the_tap() {
        let single = NicError::SingleQueueTap {
            name: "tap0".into(),
        }
        .to_string();
        assert!(single.contains("mode tap multi_queue"), "{single}");
        let multi = NicError::MultiQueueTap {
            name: "tap0".into(),
        }
        .to_string();
        assert!(multi.contains("2 or more queues"), "{multi}");
        let full = NicError::NoFreeQueue {
            name: "tap0".into(),
            max: MAX_TAP_QUEUES,
        }
        .to_string();
        assert!(full.contains("at most 256"), "{full}");
    }
}
