//! The flood's link layer: the interface's kernel-side addresses, the
//! destination MAC from the kernel's neighbour table, and an AF_PACKET
//! socket bound to the interface that sends the ring in `sendmmsg` batches.
//!
//! A frame written to an AF_PACKET socket bound to a tap goes down the
//! kernel side of the tap (`dev_queue_xmit`, the tap's qdisc, then
//! `tun_net_xmit`) and comes out of the tap's fd as a received frame: to
//! pollsim it is wire input. When the tap's queue is full, tun drops the
//! frame itself and counts it in the tap's `tx_dropped` (pollsim's
//! `rx_missed`) without telling the sender, as a wire would: the send still
//! succeeds, so the offered load never depends on the receiver (measured
//! on Linux 6.18: frames sent = tap `tx_packets` + `tx_dropped`, exactly).
//! So do frames sent while the tap has no carrier (no reader yet: its
//! qdisc is the no-op one), hence [`wait_running`]. A send that does fail
//! (ENOBUFS, EAGAIN: the frame never left the socket) is retried.
//!
//! All system calls go through nix; this module has no `unsafe`.

use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{
    self, AddressFamily, LinkAddr, MsgFlags, MultiHeaders, SockFlag, SockType, sockopt,
};

use super::frames::Ring;
use crate::lab::is_bench_addr;

/// Largest batch of one `sendmmsg` (the kernel's UIO_MAXIOV).
pub const MAX_BURST: usize = 1024;

/// An interface as the flood needs it: where to bind, and the kernel
/// side's own addresses, which are the frames' source.
#[derive(Clone, Debug)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// The AF_PACKET address to bind (interface index).
    pub addr: LinkAddr,
    /// The kernel side's MAC.
    pub mac: [u8; 6],
    /// The kernel side's IPv4 address in 198.18.0.0/15.
    pub ipv4: Ipv4Addr,
    /// Up with a carrier: for a tap, some process has it open to read.
    pub running: bool,
}

impl Link {
    /// Look `name` up in the calling thread's network namespace.
    pub fn lookup(name: &str) -> anyhow::Result<Link> {
        let mut addr = None;
        let mut ipv4 = None;
        let mut running = false;
        for ifa in nix::ifaddrs::getifaddrs().context("listing interfaces (getifaddrs)")? {
            if ifa.interface_name != name {
                continue;
            }
            running = ifa
                .flags
                .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING);
            let Some(a) = ifa.address else { continue };
            if let Some(l) = a.as_link_addr() {
                addr = Some(*l);
            } else if let Some(sin) = a.as_sockaddr_in() {
                ipv4 = ipv4.or(Some(sin.ip()).filter(|ip| is_bench_addr(*ip)));
            }
        }
        let addr = addr.with_context(|| {
            format!(
                "no interface {name} in this network namespace \
                 (create it: ip tuntap add dev {name} mode tap && ip link set {name} up)"
            )
        })?;
        let ipv4 = ipv4.with_context(|| {
            format!(
                "{name} has no IPv4 address in 198.18.0.0/15 \
                 (give its kernel side one: ip addr add 198.18.0.1/24 dev {name})"
            )
        })?;
        let mac = addr.addr().context("interface without a MAC")?;
        Ok(Link {
            name: name.to_string(),
            addr,
            mac,
            ipv4,
            running,
        })
    }
}

/// `name`, once it is up with a carrier (a tap: once a reader has it open
/// and the kernel has activated its queue), or as it is after `within`.
pub fn wait_running(name: &str, within: Duration) -> anyhow::Result<Link> {
    let start = Instant::now();
    loop {
        let link = Link::lookup(name)?;
        if link.running || start.elapsed() >= within {
            return Ok(link);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The MAC of `ip` on `dev` from the kernel's neighbour table
/// (`/proc/thread-self/net/arp`, per network namespace), complete entries only.
pub fn neighbour_mac(dev: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string("/proc/thread-self/net/arp").ok()?;
    parse_arp(&text, dev, ip)
}

/// Parse the format of /proc/net/arp:
/// `IP address  HW type  Flags  HW address  Mask  Device`.
fn parse_arp(text: &str, dev: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    const ATF_COM: u32 = 0x2;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let flags = u32::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()?;
        let mac = super::parse::parse_mac(f.get(3)?).ok()?;
        let ok = f.len() >= 6
            && f[5] == dev
            && f[0].parse() == Ok(ip)
            && flags & ATF_COM != 0
            && mac != [0; 6];
        ok.then_some(mac)
    })
}

/// The MAC of `dst` on `link`: from the neighbour table, or else after
/// making the kernel ARP for it with one UDP datagram from a kernel socket
/// bound to the interface (waits up to 2 s for the answer).
pub fn resolve_mac(link: &Link, dst: SocketAddrV4) -> anyhow::Result<[u8; 6]> {
    if !is_bench_addr(*dst.ip()) {
        bail!("{dst} is outside 198.18.0.0/15: refused");
    }
    if let Some(mac) = neighbour_mac(&link.name, *dst.ip()) {
        return Ok(mac);
    }
    let sock = UdpSocket::bind(SocketAddrV4::new(link.ipv4, 0)).context("ARP probe socket")?;
    socket::setsockopt(&sock, sockopt::BindToDevice, &link.name.clone().into())
        .context("binding the ARP probe to the interface")?;
    let start = Instant::now();
    let mut next_probe = start;
    while start.elapsed() < Duration::from_secs(2) {
        if Instant::now() >= next_probe {
            // Failure (EHOSTUNREACH after a failed resolution) only means no answer yet.
            let _ = sock.send_to(b"pollsim flood: ARP probe", dst);
            next_probe += Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(10));
        if let Some(mac) = neighbour_mac(&link.name, *dst.ip()) {
            return Ok(mac);
        }
    }
    bail!(
        "cannot resolve the MAC of {} on {} (no ARP answer within 2 s): \
         start pollsim run on {} first, or give --dst-mac",
        dst.ip(),
        link.name,
        link.name
    )
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Frames handed to the interface.
    pub offered: usize,
    /// The batch stopped early on ENOBUFS, EAGAIN or EINTR: the frames not
    /// offered are still next, to be retried.
    pub retry: bool,
}

/// An AF_PACKET socket bound to one interface, sending the frames of a
/// [`Ring`] in order, cyclically, in batches of at most `burst` frames.
pub struct Sender<'r> {
    fd: OwnedFd,
    /// `sequence_len + burst - 1` slices, the ring's sending order repeated, so that any batch
    /// starting in the ring is contiguous here.
    slices: Vec<[IoSlice<'r>; 1]>,
    addrs: Vec<Option<LinkAddr>>,
    hdrs: MultiHeaders<LinkAddr>,
    ring_len: usize,
    pos: usize,
    burst: usize,
}

impl<'r> Sender<'r> {
    /// Open a raw AF_PACKET socket (protocol 0: it receives nothing) bound
    /// to `link`, to send `ring` in batches of up to `burst` frames.
    pub fn open(link: &Link, ring: &'r Ring, burst: usize) -> anyhow::Result<Sender<'r>> {
        if !(1..=MAX_BURST).contains(&burst) || ring.is_empty() {
            bail!("--burst {burst} is out of range 1..={MAX_BURST}");
        }
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .context("opening an AF_PACKET socket (needs root or CAP_NET_RAW)")?;
        socket::bind(fd.as_raw_fd(), &link.addr)
            .with_context(|| format!("binding the AF_PACKET socket to {}", link.name))?;
        let cycle = ring.sequence_len();
        let seq: Vec<&'r [u8]> = ring.sequence().collect();
        let slices = seq
            .iter()
            .cycle()
            .take(cycle + burst - 1)
            .map(|f| [IoSlice::new(f)])
            .collect();
        Ok(Sender {
            fd,
            slices,
            addrs: vec![None; burst],
            hdrs: MultiHeaders::preallocate(burst, None),
            ring_len: cycle,
            pos: 0,
            burst,
        })
    }

    /// The largest batch.
    pub fn burst(&self) -> usize {
        self.burst
    }

    /// Send the next `n` frames (1..=burst) with one `sendmmsg`. Bound: one
    /// system call, no allocation. Errors other than ENOBUFS, EAGAIN and
    /// EINTR are returned (the interface went away or down).
    pub fn send(&mut self, n: usize) -> Result<Outcome, Errno> {
        let n = n.clamp(1, self.burst);
        let batch = &self.slices[self.pos..self.pos + n];
        let cmsgs: [socket::ControlMessage<'_>; 0] = [];
        let res = socket::sendmmsg(
            self.fd.as_raw_fd(),
            &mut self.hdrs,
            batch,
            &self.addrs[..n],
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(|r| r.count());
        let out = match res {
            // sendmmsg stops at the first frame that fails, and loses its
            // error when some went before it.
            Ok(k) => Outcome {
                offered: k.min(n),
                retry: k < n,
            },
            Err(Errno::ENOBUFS | Errno::EAGAIN | Errno::EINTR) => Outcome {
                offered: 0,
                retry: true,
            },
            Err(e) => return Err(e),
        };
        self.pos = (self.pos + out.offered) % self.ring_len;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table_lines() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    198.18.0.2       0x1         0x2         02:00:c6:12:00:02     *        tap0\n\
                    198.18.0.3       0x1         0x0         00:00:00:00:00:00     *        tap0\n\
                    198.18.0.4       0x1         0x6         02:00:c6:12:00:04     *        tap1\n";
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(
            parse_arp(text, "tap0", ip("198.18.0.2")),
            Some([2, 0, 198, 18, 0, 2])
        );
        assert_eq!(parse_arp(text, "tap0", ip("198.18.0.3")), None);
        assert_eq!(parse_arp(text, "tap0", ip("198.18.0.4")), None);
        assert_eq!(
            parse_arp(text, "tap1", ip("198.18.0.4")),
            Some([2, 0, 198, 18, 0, 4])
        );
    }
}
