//! The lab bench for tests and benchmarks: private network namespaces, tap
//! set-up inside them, and a bounded UDP sender from a kernel socket.
//!
//! Safety by construction (docs/design.md, principle 6): every namespace is a
//! fresh one made by `unshare(CLONE_NEWNET)` on a dedicated thread (it
//! vanishes with that thread and its children), and every address must lie
//! in 198.18.0.0/15, the RFC 2544 benchmarking range.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether `ip` is in 198.18.0.0/15.
pub fn is_bench_addr(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 198 && (o[1] == 18 || o[1] == 19)
}

/// `ip`, or a panic if it is outside 198.18.0.0/15.
#[track_caller]
pub fn bench_addr(ip: &str) -> Ipv4Addr {
    let a: Ipv4Addr = ip.parse().expect("an IPv4 address");
    assert!(is_bench_addr(a), "{a} is outside 198.18.0.0/15: refused");
    a
}

/// Whether this process is root (and so may make namespaces and taps).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Run `f` on a new thread inside a fresh, private network namespace. The
/// thread's children (pollsim, `ip`) inherit it; it vanishes when they and
/// the thread are gone.
pub fn in_new_netns<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Make the child that `cmd` will start receive `sig` as soon as its
/// parent dies, however it dies (even by SIGKILL): `PR_SET_PDEATHSIG` in
/// the child before `exec`. SIGKILL for a child that has nothing to clean
/// up; SIGTERM for a `pollsim run`, which then stops as on Ctrl-C and
/// removes its control socket (it installs its handler before it binds). The kernel sends it when the *thread* that forked the child
/// exits, so spawn from a thread that outlives the child (the main thread,
/// or the one that waits for it). A child whose parent died before the
/// `prctl` took effect fails to start instead of running on unowned.
pub fn die_with_parent(cmd: &mut Command, sig: nix::sys::signal::Signal) -> &mut Command {
    let parent = nix::unistd::getpid();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only
    // makes two syscalls, prctl(2) and getppid(2), both async-signal-safe;
    // it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(sig)?;
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other(
                    "the parent exited before the child started",
                ));
            }
            Ok(())
        })
    }
}

/// Run a command to completion, failing with its stderr.
pub fn sh(cmd: &str, args: &[&str]) -> io::Result<()> {
    let out = die_with_parent(
        Command::new(cmd).args(args),
        nix::sys::signal::Signal::SIGKILL,
    )
    .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Create tap `name` in the current (private) namespace with the kernel
/// side at `kernel_cidr` (198.18.x.y/len), IPv6 off so that only the
/// frames a test sends cross it, and bring it and `lo` up.
pub fn setup_tap(name: &str, kernel_cidr: &str) -> io::Result<()> {
    add_tap(name, kernel_cidr, false)?;
    link_up(name)
}

/// As [`setup_tap`], a multiqueue tap (`mode tap multi_queue`), left down:
/// bring it up with [`link_up`] once its queues are attached. Attached to
/// while already up, a tap drops what the kernel sends it in about the
/// first millisecond (counted in its TX dropped; seen here on 6.18, and
/// most likely the carrier, which comes on at the attach, reaching the
/// transmit path only when the kernel's linkwatch work has run). Brought
/// up with its queues attached, it drops none.
pub fn add_mq_tap(name: &str, kernel_cidr: &str) -> io::Result<()> {
    add_tap(name, kernel_cidr, true)
}

/// A tap for `queues` queues, left down as [`add_mq_tap`] leaves it: a
/// multiqueue tap for two or more, a single-queue one for one (the only
/// kind one queue can attach to).
pub fn add_tap_for_queues(name: &str, kernel_cidr: &str, queues: usize) -> io::Result<()> {
    add_tap(name, kernel_cidr, queues > 1)
}

/// Bring interface `name` of the current namespace up.
pub fn link_up(name: &str) -> io::Result<()> {
    sh("ip", &["link", "set", name, "up"])
}

fn add_tap(name: &str, kernel_cidr: &str, multi_queue: bool) -> io::Result<()> {
    let ip = kernel_cidr.split('/').next().unwrap_or_default();
    bench_addr(ip);
    sh("ip", &["link", "set", "lo", "up"])?;
    let mut add = vec!["tuntap", "add", "dev", name, "mode", "tap"];
    if multi_queue {
        add.push("multi_queue");
    }
    sh("ip", &add)?;
    sh(
        "sysctl",
        &["-qw", &format!("net.ipv6.conf.{name}.disable_ipv6=1")],
    )?;
    sh("ip", &["addr", "add", kernel_cidr, "dev", name])
}

/// A permanent neighbour entry on the kernel side, so no ARP frame crosses
/// the tap during a measurement.
pub fn static_neigh(dev: &str, ip: &str, mac: [u8; 6]) -> io::Result<()> {
    bench_addr(ip);
    let mac = mac.map(|b| format!("{b:02x}")).join(":");
    sh(
        "ip",
        &[
            "neigh",
            "replace",
            ip,
            "lladdr",
            &mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ],
    )
}

/// What a UDP blast did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Blast {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Send calls that failed (ENOBUFS and the like).
    pub failed: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Datagrams per `sendmmsg` call of an unpaced blast.
const BLAST_BATCH: usize = 64;

/// Send up to `count` UDP datagrams of `payload` bytes to `dst` from a
/// kernel socket, as fast as possible (batched with `sendmmsg`) or at
/// `pps`, stopping after `limit` in any case. Bounded in count and time;
/// `dst` must be a bench address.
pub fn udp_blast(
    dst: SocketAddrV4,
    payload: usize,
    count: u64,
    pps: Option<u64>,
    limit: Duration,
) -> io::Result<Blast> {
    assert!(
        is_bench_addr(*dst.ip()),
        "{dst} is outside 198.18.0.0/15: refused"
    );
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(dst)?;
    let buf = vec![0x5a; payload];
    let start = Instant::now();
    let mut b = match pps {
        None => blast_batched(&sock, &buf, count, start + limit),
        Some(pps) => blast_paced(&sock, &buf, count, pps, start + limit),
    };
    b.elapsed = start.elapsed();
    Ok(b)
}

fn blast_batched(sock: &UdpSocket, buf: &[u8], count: u64, end: Instant) -> Blast {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, sendmmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let slices = vec![[IoSlice::new(buf)]; BLAST_BATCH];
    let addrs: Vec<Option<SockaddrIn>> = vec![None; BLAST_BATCH];
    let mut hdrs = MultiHeaders::<SockaddrIn>::preallocate(BLAST_BATCH, None);
    let mut b = Blast::default();
    while b.sent < count && Instant::now() < end {
        let n = usize::try_from(count - b.sent)
            .unwrap_or(usize::MAX)
            .min(BLAST_BATCH);
        let cmsgs: [nix::sys::socket::ControlMessage<'_>; 0] = [];
        match sendmmsg(
            sock.as_raw_fd(),
            &mut hdrs,
            &slices[..n],
            &addrs[..n],
            cmsgs,
            MsgFlags::empty(),
        ) {
            Ok(res) => b.sent += res.count() as u64,
            Err(_) => b.failed += 1,
        }
    }
    b
}

fn blast_paced(sock: &UdpSocket, buf: &[u8], count: u64, pps: u64, end: Instant) -> Blast {
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / pps.max(1) as f64);
    let mut b = Blast::default();
    for i in 0..count {
        if i % 256 == 0 && Instant::now() >= end {
            break;
        }
        let due = start + gap.mul_f64(i as f64);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        match sock.send(buf) {
            Ok(_) => b.sent += 1,
            Err(_) => b.failed += 1,
        }
    }
    b
}

/// An Ethernet/IPv4/UDP frame with valid checksums, as a client on the
/// kernel side would send it (for `VirtNic` and tests). Both addresses must
/// be bench addresses.
pub fn udp_frame(
    src: ([u8; 6], SocketAddrV4),
    dst: ([u8; 6], SocketAddrV4),
    payload: &[u8],
) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
        Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    };
    assert!(
        is_bench_addr(*src.1.ip()) && is_bench_addr(*dst.1.ip()),
        "outside 198.18.0.0/15: refused"
    );
    let udp = UdpRepr {
        src_port: src.1.port(),
        dst_port: dst.1.port(),
    };
    let ip = Ipv4Repr {
        src_addr: *src.1.ip(),
        dst_addr: *dst.1.ip(),
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src.0),
        dst_addr: EthernetAddress(dst.0),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let caps = ChecksumCapabilities::default();
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    let mut u = UdpPacket::new_unchecked(p.payload_mut());
    udp.emit(
        &mut u,
        &IpAddress::Ipv4(ip.src_addr),
        &IpAddress::Ipv4(ip.dst_addr),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_benchmarking_range_is_accepted() {
        assert!(is_bench_addr("198.18.0.1".parse().unwrap()));
        assert!(is_bench_addr("198.19.255.254".parse().unwrap()));
        assert!(!is_bench_addr("198.20.0.1".parse().unwrap()));
        assert!(!is_bench_addr("198.17.255.255".parse().unwrap()));
        assert!(!is_bench_addr("10.0.0.1".parse().unwrap()));
    }

    #[test]
    #[should_panic(expected = "outside 198.18.0.0/15")]
    fn other_addresses_are_refused() {
        bench_addr("192.168.1.1");
    }
}
