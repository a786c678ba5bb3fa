//! OS specifics of the devices: the tap's kernel-side statistics, link
//! flags, and the interrupt line built on epoll. The only module of this
//! crate allowed to use `unsafe`, each block with a `SAFETY:` line.
//!
//! Statistics come from `/proc/thread-self/net/dev`, not `/sys/class/net`:
//! sysfs shows the namespace of whoever mounted it, while procfs follows the
//! calling thread's network namespace, which is the one the tap lives in
//! when pollsim runs under `unshare -n`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// The kernel side's view of one interface, from `/proc/<self>/net/dev`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelSideStats {
    /// Frames the kernel received from the interface (our transmits).
    pub rx_packets: u64,
    /// Frames the kernel handed to the interface and the reader took.
    pub tx_packets: u64,
    /// Frames the kernel dropped on the way to the reader (the tap's queue
    /// was full): for the NIC, frames missed by its receive ring.
    pub tx_dropped: u64,
}

/// A tap's status registers: the kernel side's counters and the link
/// flags, read through a file and a socket opened once. A status check
/// then costs two system calls (about 10 µs here, against over 100 µs to
/// open `/proc/thread-self/net/dev` and a socket each time), which keeps it
/// cheap beside the data path, as a NIC's register reads are.
#[derive(Debug)]
pub struct StatusRegs {
    dev: std::fs::File,
    sock: std::os::fd::OwnedFd,
    buf: Vec<u8>,
}

impl StatusRegs {
    /// Open them in the caller's network namespace (`/proc/thread-self`
    /// follows the thread that opens it).
    pub fn open() -> io::Result<StatusRegs> {
        let sock = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        Ok(StatusRegs {
            dev: std::fs::File::open("/proc/thread-self/net/dev")?,
            sock,
            buf: Vec::with_capacity(4096),
        })
    }

    /// The kernel-side counters of `name`; `Ok(None)` if there is no such
    /// interface.
    pub fn stats(&mut self, name: &str) -> io::Result<Option<KernelSideStats>> {
        use std::os::unix::fs::FileExt as _;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.dev.read_at(&mut chunk, self.buf.len() as u64)?;
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&self.buf);
        Ok(parse_proc_net_dev(&text, name))
    }

    /// Whether `name` is administratively up and running (IFF_UP |
    /// IFF_RUNNING).
    pub fn link_up(&self, name: &str) -> io::Result<bool> {
        link_up(self.sock.as_fd(), name)
    }
}

/// Parse the line of `name` in the format of /proc/net/dev.
fn parse_proc_net_dev(text: &str, name: &str) -> Option<KernelSideStats> {
    text.lines().skip(2).find_map(|line| {
        let (ifname, rest) = line.split_once(':')?;
        if ifname.trim() != name {
            return None;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // receive: bytes packets errs drop fifo frame compressed multicast
        // transmit: bytes packets errs drop fifo colls carrier compressed
        (f.len() >= 16).then(|| KernelSideStats {
            rx_packets: f[1],
            tx_packets: f[9],
            tx_dropped: f[11],
        })
    })
}

/// Whether `name` is administratively up and running (IFF_UP | IFF_RUNNING),
/// asked of `sock`, a datagram socket in the caller's network namespace.
fn link_up(sock: BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    let mut ifr = ifreq_named(name)?;
    // SAFETY: SIOCGIFFLAGS reads ifr_name (NUL terminated above, since the
    // struct was zeroed and the name is shorter) and writes ifru_flags of a
    // valid, exclusively borrowed ifreq; the fd is a live socket.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFFLAGS the union holds ifru_flags.
    let flags = i32::from(unsafe { ifr.ifr_ifru.ifru_flags });
    Ok(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
}

/// The interrupt lines of several queues as one: an epoll instance holding
/// each queue's line fd (level triggered), so its own fd is readable
/// exactly while one of them is. The lines are epoll instances or eventfds
/// themselves; epoll nests.
#[derive(Debug)]
pub struct LineSet {
    epoll: Epoll,
}

impl LineSet {
    /// A set of `lines`. Bound: one `epoll_ctl` per line.
    pub fn new<'a>(lines: impl IntoIterator<Item = BorrowedFd<'a>>) -> io::Result<LineSet> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        for (i, fd) in lines.into_iter().enumerate() {
            epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))?;
        }
        Ok(LineSet { epoll })
    }

    /// The fd to wait on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }
}

/// An interrupt line: an epoll instance that holds the device's fd while
/// the line is unmasked. Its own fd is readable (level triggered) exactly
/// when the line is unmasked and the device has a frame, so the kernel can
/// wait on it beside its clock.
#[derive(Debug)]
pub struct IrqLine {
    epoll: Epoll,
    enabled: bool,
}

impl IrqLine {
    /// A masked line.
    pub fn new() -> io::Result<IrqLine> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        Ok(IrqLine {
            epoll,
            enabled: false,
        })
    }

    /// Unmask or mask the line for the device `dev`.
    pub fn set_enabled(&mut self, dev: BorrowedFd<'_>, enabled: bool) -> io::Result<()> {
        if enabled == self.enabled {
            return Ok(());
        }
        if enabled {
            self.epoll
                .add(dev, EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        } else {
            self.epoll.delete(dev)?;
        }
        self.enabled = enabled;
        Ok(())
    }

    /// Whether the line is unmasked.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The fd to wait on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }
}

/// A socket for the link flags of interfaces (`SIOCGIFFLAGS`), shared by
/// the queues of one multiqueue tap: one fd for all of them, not one per
/// queue (256 queues would otherwise take 256 sockets besides their own fds).
/// The ioctl fills a caller-owned `ifreq`, so concurrent use is safe.
#[derive(Clone, Debug)]
pub struct LinkFlags {
    sock: std::sync::Arc<std::os::fd::OwnedFd>,
}

impl LinkFlags {
    /// A datagram socket in the caller's network namespace.
    pub fn open() -> io::Result<LinkFlags> {
        let sock = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        Ok(LinkFlags {
            sock: std::sync::Arc::new(sock),
        })
    }

    /// Whether `name` is administratively up and running.
    pub fn link_up(&self, name: &str) -> io::Result<bool> {
        link_up(self.sock.as_fd(), name)
    }
}

/// An `ifreq` naming `name`, the rest zero; `InvalidInput` if the name is
/// empty or does not fit with its NUL.
fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a plain C struct for which all-zero bytes are valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    Ok(ifr)
}

/// Open `/dev/net/tun` (read-write, non-blocking, close-on-exec) and attach
/// the fd to the tap `name` with `TUNSETIFF`, flags `IFF_TAP | IFF_NO_PI`
/// plus `IFF_MULTI_QUEUE` when `multi_queue`: for a multiqueue tap, one new
/// queue of the device per call (Documentation/networking/tuntap.rst,
/// "Multiqueue tuntap interface"). The kernel's answers are passed on:
/// `EINVAL` for a device that is not a tap or is a tap of the other kind,
/// `EBUSY` for a single-queue tap another fd holds, `E2BIG` past
/// `MAX_TAP_QUEUES`, `EPERM` without CAP_NET_ADMIN.
pub fn attach_tap_queue(name: &str, multi_queue: bool) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut ifr = ifreq_named(name)?;
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    ifr.ifr_ifru.ifru_flags =
        libc::c_short::try_from(flags).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    // SAFETY: TUNSETIFF reads (and may write back the name of) a valid,
    // exclusively borrowed ifreq whose name is NUL terminated (zeroed
    // struct, shorter name); the fd is an open /dev/net/tun that `file`
    // owns for the whole call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Borrow the fd of a tun-tap interface for as long as the interface lives.
pub fn borrow_iface_fd(iface: &tun_tap::Iface) -> BorrowedFd<'_> {
    // SAFETY: `Iface` owns its fd (a `File`) and closes it only on drop; the
    // returned borrow is tied to `iface`'s lifetime, so the fd stays open.
    unsafe { BorrowedFd::borrow_raw(iface.as_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  tap0:  123456     789    0    0    0     0          0         0  6543210   43210    0  777    0     0       0          0
";

    #[test]
    fn parses_the_tap_line() {
        let s = parse_proc_net_dev(SAMPLE, "tap0").unwrap();
        assert_eq!(
            s,
            KernelSideStats {
                rx_packets: 789,
                tx_packets: 43210,
                tx_dropped: 777
            }
        );
        assert!(parse_proc_net_dev(SAMPLE, "tap1").is_none());
        assert!(parse_proc_net_dev(SAMPLE, "tap").is_none());
    }
}
