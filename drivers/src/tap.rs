//! `TapNic`: a real Linux tap device as the simulated NIC.
//!
//! The tap's kernel-side queue plays the NIC's receive ring: when the
//! simulated kernel reads too slowly, Linux drops frames there and counts
//! them as the tap's `tx_dropped`, which is this NIC's `rx_missed` — the
//! cheap, early drop that polling is meant to move losses to.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use tun_tap::{Iface, Mode};

use crate::sys::{self, IrqLine, KernelSideStats};
use crate::{Nic, NicError, NicStats, NicStatus};

/// Largest frame read: a 64 KiB buffer takes any MTU a tap can have, so no
/// frame is ever truncated.
const RX_BUF_LEN: usize = 65_536;

/// A non-blocking tap device opened by name.
#[derive(Debug)]
pub struct TapNic {
    iface: Iface,
    mac: [u8; 6],
    buf: Box<[u8]>,
    stats: NicStats,
    irq: IrqLine,
    /// Kernel-side counters when we attached: drops before then are not ours.
    baseline: KernelSideStats,
    regs: sys::StatusRegs,
}

impl TapNic {
    /// Attach to the existing tap `name` (created with `ip tuntap add`), in
    /// non-blocking mode, with interrupts masked. `mac` is the NIC's own
    /// address (the kernel side has another).
    pub fn open(name: &str, mac: [u8; 6]) -> Result<TapNic, NicError> {
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
        let mut regs = sys::StatusRegs::open()
            .map_err(|e| os("opening /proc/thread-self/net/dev and a socket", e))?;
        let baseline = regs
            .stats(name)
            .map_err(|e| os("reading /proc/thread-self/net/dev", e))?
            .ok_or_else(|| NicError::NoSuchInterface {
                name: name.to_string(),
            })?;
        let iface = Iface::without_packet_info(name, Mode::Tap)
            .map_err(|e| classify_open_error(name, e))?;
        iface
            .set_non_blocking()
            .map_err(|e| os("setting O_NONBLOCK", e))?;
        let irq = IrqLine::new().map_err(|e| os("creating the interrupt line", e))?;
        Ok(TapNic {
            iface,
            mac,
            buf: vec![0; RX_BUF_LEN].into_boxed_slice(),
            stats: NicStats::default(),
            irq,
            baseline,
            regs,
        })
    }

    /// The tap's own file descriptor (the device, not the interrupt line).
    pub fn device_fd(&self) -> BorrowedFd<'_> {
        sys::borrow_iface_fd(&self.iface)
    }
}

fn classify_open_error(name: &str, e: io::Error) -> NicError {
    let name = name.to_string();
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => NicError::PermissionDenied { name },
        Some(libc::EBUSY) => NicError::Busy { name },
        // EINVAL: not a tap, or a multiqueue one (tun_set_iff refuses an
        // attach whose IFF_MULTI_QUEUE differs from the device's); a
        // multiqueue attach tells which.
        Some(libc::EINVAL) if is_tap_of_kind(&name, true) => NicError::MultiQueueTap { name },
        Some(libc::EINVAL) => NicError::NotATap { name },
        Some(libc::ENOENT) | Some(libc::ENODEV) => NicError::NoTunDevice(e),
        _ => NicError::Os {
            what: "attaching (TUNSETIFF)",
            name,
            source: e,
        },
    }
}

/// Whether `name` is a tap of the kind `multi_queue` says: an attach of
/// that kind succeeds (and is let go at once), finds the device held
/// (`EBUSY`) or full (`E2BIG`), or passes the kind check and is refused
/// for want of CAP_NET_ADMIN (`tun_set_iff` checks the kind first). Only asked after the kernel refused an
/// attach of the other kind with `EINVAL`, to name the cause.
pub(crate) fn is_tap_of_kind(name: &str, multi_queue: bool) -> bool {
    match sys::attach_tap_queue(name, multi_queue) {
        Ok(_) => true,
        Err(e) => matches!(
            e.raw_os_error(),
            Some(libc::EBUSY | libc::E2BIG | libc::EPERM | libc::EACCES)
        ),
    }
}

/// Take up to `count` frames with `recv` (one frame per call, as a tap's
/// read is) into `buf`, lending each to `f` and counting it in `stats`: the
/// receive loop of every tap queue. Bound: at most `count` frames;
/// `count + 1` receive calls, plus one per `EINTR`.
pub(crate) fn rx_frames(
    buf: &mut [u8],
    stats: &mut NicStats,
    count: usize,
    f: &mut dyn FnMut(&[u8]),
    mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> usize {
    let mut taken = 0;
    while taken < count {
        match recv(buf) {
            Ok(n) => {
                taken += 1;
                stats.rx_packets += 1;
                stats.rx_bytes += n as u64;
                f(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stats.rx_empty += 1;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                stats.errors += 1;
                break;
            }
        }
    }
    taken
}

/// Count the outcome of one transmit of `len` bytes: sent, dropped because
/// the device was busy (`EAGAIN`, `ENOBUFS`), or an error.
pub(crate) fn count_tx(stats: &mut NicStats, len: usize, sent: io::Result<usize>) {
    match sent {
        Ok(_) => {
            stats.tx_packets += 1;
            stats.tx_bytes += len as u64;
        }
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) =>
        {
            stats.tx_dropped += 1;
        }
        Err(_) => stats.errors += 1,
    }
}

impl Nic for TapNic {
    fn name(&self) -> &str {
        self.iface.name()
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let iface = &self.iface;
        rx_frames(&mut self.buf, &mut self.stats, count, f, |buf| {
            iface.recv(buf)
        })
    }

    fn tx(&mut self, frame: &[u8]) {
        count_tx(&mut self.stats, frame.len(), self.iface.send(frame));
    }

    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.irq.fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        let dev = sys::borrow_iface_fd(&self.iface);
        if self.irq.set_enabled(dev, enabled).is_err() {
            self.stats.errors += 1;
        }
    }

    fn intr_enabled(&self) -> bool {
        self.irq.enabled()
    }

    fn check_status(&mut self) -> NicStatus {
        let name = self.iface.name();
        match self.regs.stats(name) {
            Ok(Some(k)) => {
                self.stats.rx_missed = k.tx_dropped.saturating_sub(self.baseline.tx_dropped);
            }
            _ => self.stats.errors += 1,
        }
        let link_up = self.regs.link_up(name).unwrap_or(false);
        NicStatus {
            link_up,
            stats: self.stats,
        }
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

impl AsFd for TapNic {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.device_fd()
    }
}
