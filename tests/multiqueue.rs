//! A tap opened as several queues (`TapQueue::open_queues`), each test in
//! its own private network namespace: the kernel spreads flows over the
//! queues by its own flow hash, every frame sent arrives on exactly one
//! queue, a flow's replies come back on the queue that wrote it, one queue
//! is still the tun-tap `TapNic`, and the tap's limits are refused with
//! what to do.

mod util;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use pollsim_drivers::{MAX_TAP_QUEUES, Nic, NicError, TapQueue};
use util::{KERNEL_CIDR, MAC, lab, require_root_or_skip, with_tap};

/// The kernel side's MAC, set so that frames written to the tap can name it.
const KERNEL_MAC: [u8; 6] = [2, 0, 198, 18, 0, 1];
// The tests run one at a time (`util::serial`): a child another test forks
// (`ip`) holds a copy of every fd of this process until it execs, close-on-
// exec or not, so a queue one test lets go could stay attached for a moment
// and be refused to the next attach as busy.

/// How long frames the kernel has accepted may take to reach the queues.
const DEADLINE: Duration = Duration::from_secs(10);

/// tap0 as a multiqueue tap in the current (private) namespace, still
/// down (`lab::add_mq_tap`: bring it up once its queues are attached, or
/// the kernel drops what it sends for a moment): kernel side 198.18.0.1/24
/// with MAC `KERNEL_MAC`, IPv6 off, and `neigh` as permanent neighbours at
/// `MAC` (no ARP crosses the tap).
fn setup_mq_tap(neigh: &[Ipv4Addr]) {
    lab::add_mq_tap("tap0", KERNEL_CIDR).unwrap();
    let mac = KERNEL_MAC.map(|b| format!("{b:02x}")).join(":");
    lab::sh("ip", &["link", "set", "tap0", "address", &mac]).unwrap();
    for ip in neigh {
        lab::static_neigh("tap0", &ip.to_string(), MAC).unwrap();
    }
}

/// Bring tap0 up, after its queues are attached.
fn link_up() {
    lab::link_up("tap0").unwrap();
}

/// The destination of an Ethernet/IPv4/UDP frame (no IP options), if it is one.
fn udp_dst(f: &[u8]) -> Option<SocketAddrV4> {
    let ipv4 = f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[14] == 0x45 && f[23] == 17;
    ipv4.then(|| {
        let ip = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        SocketAddrV4::new(ip, u16::from_be_bytes([f[36], f[37]]))
    })
}

/// Read every queue into `state` with `f` (given each frame and its
/// queue's index) until `done(state)` or `DEADLINE` passes.
fn drain_until<S>(
    queues: &mut [TapQueue],
    state: &mut S,
    mut f: impl FnMut(&mut S, usize, &[u8]),
    done: impl Fn(&S) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done(state) && Instant::now() < deadline {
        for q in queues.iter_mut() {
            let i = q.index();
            q.rx(64, &mut |frame: &[u8]| f(state, i, frame));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What the queues read of a set of flows.
#[derive(Default)]
struct Seen {
    /// Frames of the flows, per queue.
    ours: [u64; 2],
    /// All frames, per queue.
    all: [u64; 2],
    /// The queue each flow arrived on.
    queue_of: HashMap<SocketAddrV4, usize>,
    /// Flows seen on more than one queue.
    moved: Vec<SocketAddrV4>,
}

#[test]
fn sixty_four_flows_reach_both_queues_and_balance() {
    if !require_root_or_skip("sixty_four_flows_reach_both_queues_and_balance") {
        return;
    }
    let _one = util::serial();
    // 64 flows: 8 destination addresses × 8 ports, 4 datagrams each.
    let dsts: Vec<Ipv4Addr> = (2..10).map(|h| Ipv4Addr::new(198, 18, 0, h)).collect();
    let flows: Vec<SocketAddrV4> = dsts
        .iter()
        .flat_map(|&ip| (0..8).map(move |p| SocketAddrV4::new(ip, 9000 + p)))
        .collect();
    assert_eq!(flows.len(), 64);
    lab::in_new_netns(|| {
        setup_mq_tap(&dsts);
        let mut queues = TapQueue::open_queues("tap0", 2, MAC).expect("two queues of tap0");
        link_up();
        assert_eq!(queues.len(), 2);
        assert!(queues.iter().all(|q| matches!(q, TapQueue::Multi(_))));
        assert_eq!(
            queues.iter().map(TapQueue::index).collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(queues.iter().all(|q| q.name() == "tap0" && q.mac() == MAC));
        assert!(queues[0].reports_device_drops() && !queues[1].reports_device_drops());

        let sock = UdpSocket::bind("198.18.0.1:0").unwrap();
        let mut sent = 0u64;
        for _ in 0..4 {
            for dst in &flows {
                sock.send_to(b"pollsim multiqueue test", dst).unwrap();
                sent += 1;
            }
        }

        let mut seen = Seen::default();
        drain_until(
            &mut queues,
            &mut seen,
            |s, q, f| {
                s.all[q] += 1;
                let Some(dst) = udp_dst(f).filter(|d| flows.contains(d)) else {
                    return;
                };
                s.ours[q] += 1;
                if *s.queue_of.entry(dst).or_insert(q) != q {
                    s.moved.push(dst);
                }
            },
            |s| s.ours.iter().sum::<u64>() >= sent,
        );
        let Seen {
            ours,
            all,
            queue_of,
            moved,
        } = seen;
        assert_eq!(ours.iter().sum::<u64>(), sent, "per queue: {ours:?}");
        assert!(
            ours.iter().all(|&n| n > 0),
            "64 flows, one queue got them all: {ours:?}"
        );
        assert!(moved.is_empty(), "flows seen on both queues: {moved:?}");
        assert_eq!(queue_of.len(), 64);
        for (q, nic) in queues.iter_mut().enumerate() {
            let st = nic.check_status();
            assert!(st.link_up, "queue {q}: link down");
            assert_eq!(
                st.stats.rx_packets, all[q],
                "queue {q} counted what it read"
            );
            assert_eq!(st.stats.rx_missed, 0, "queue {q}: the tap dropped frames");
            assert_eq!(st.stats.errors, 0, "queue {q}");
        }
    })
    .expect("a private network namespace");
}

/// "Tx follows rx": a flow written from queue i has its replies sent to
/// queue i, whatever its hash would pick. 16 flows, alternately written
/// from queue 0 and 1: were the kernel not to follow, each would match
/// only by chance (one in two).
#[test]
fn replies_come_back_on_the_queue_that_wrote_the_flow() {
    if !require_root_or_skip("replies_come_back_on_the_queue_that_wrote_the_flow") {
        return;
    }
    let _one = util::serial();
    let us = Ipv4Addr::new(198, 18, 0, 2);
    lab::in_new_netns(|| {
        setup_mq_tap(&[us]);
        let mut queues = TapQueue::open_queues("tap0", 2, MAC).expect("two queues of tap0");
        link_up();
        let server = UdpSocket::bind("198.18.0.1:7").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let flows: Vec<SocketAddrV4> = (0..16).map(|i| SocketAddrV4::new(us, 20_000 + i)).collect();
        let mut writer: HashMap<SocketAddrV4, usize> = HashMap::new();
        for (i, &src) in flows.iter().enumerate() {
            let q = i % 2;
            let frame = lab::udp_frame(
                (MAC, src),
                (
                    KERNEL_MAC,
                    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 7),
                ),
                b"ping",
            );
            queues[q].tx(&frame);
            let (_, from) = server
                .recv_from(&mut [0u8; 64])
                .expect("the kernel got the frame");
            assert_eq!(from, std::net::SocketAddr::V4(src));
            server.send_to(b"pong", from).unwrap();
            writer.insert(src, q);
        }
        let mut replied: HashMap<SocketAddrV4, usize> = HashMap::new();
        drain_until(
            &mut queues,
            &mut replied,
            |r, q, f| {
                if let Some(dst) = udp_dst(f).filter(|d| writer.contains_key(d)) {
                    r.insert(dst, q);
                }
            },
            |r| r.len() == writer.len(),
        );
        assert_eq!(replied, writer, "reply queue per flow vs writing queue");
        let tx: u64 = queues.iter().map(|q| q.stats().tx_packets).sum();
        assert_eq!(tx, 16);
    })
    .expect("a private network namespace");
}

/// One queue is the single-queue `TapNic` over tun-tap, as before; the
/// kinds of tap and the counts are refused with what to do.
#[test]
fn one_queue_is_the_tun_tap_nic_and_kinds_are_told_apart() {
    let e = TapQueue::open_queues("tap0", MAX_TAP_QUEUES + 1, MAC).unwrap_err();
    assert!(
        matches!(
            e,
            NicError::QueueCount {
                asked: 257,
                max: 256,
                ..
            }
        ),
        "{e}"
    );
    if !require_root_or_skip("one_queue_is_the_tun_tap_nic_and_kinds_are_told_apart") {
        return;
    }
    let _one = util::serial();
    with_tap(|| {
        let e = TapQueue::open_queues("tap0", 2, MAC).unwrap_err();
        assert!(matches!(e, NicError::SingleQueueTap { .. }), "{e}");
        let mut one = TapQueue::open_queues("tap0", 1, MAC).expect("one queue");
        // with_tap brought it up before it had a reader: cycle it, for the
        // reason lab::add_mq_tap gives.
        lab::sh("ip", &["link", "set", "tap0", "down"]).unwrap();
        link_up();
        assert_eq!(one.len(), 1);
        assert!(matches!(one[0], TapQueue::Single(_)), "{:?}", one[0]);
        // It is the tap's one reader: a second is refused as before.
        let e = TapQueue::open_queues("tap0", 1, MAC).unwrap_err();
        assert!(matches!(e, NicError::Busy { .. }), "{e}");
        lab::static_neigh("tap0", "198.18.0.2", MAC).unwrap();
        let sock = UdpSocket::bind("198.18.0.1:0").unwrap();
        sock.send_to(b"one queue", "198.18.0.2:9").unwrap();
        let mut got = 0;
        drain_until(
            &mut one,
            &mut got,
            |g, _, f| {
                if udp_dst(f) == Some("198.18.0.2:9".parse().unwrap()) {
                    *g += 1;
                }
            },
            |g| *g > 0,
        );
        assert_eq!(got, 1);
    });
    lab::in_new_netns(|| {
        setup_mq_tap(&[]);
        let e = TapQueue::open_queues("tap0", 1, MAC).unwrap_err();
        assert!(matches!(e, NicError::MultiQueueTap { .. }), "{e}");
        // The tap's own limit: all 256 queues, then none is left.
        let all = TapQueue::open_queues("tap0", MAX_TAP_QUEUES, MAC).expect("256 queues");
        assert_eq!(all.len(), MAX_TAP_QUEUES);
        let e = TapQueue::open_queues("tap0", 2, MAC).unwrap_err();
        assert!(matches!(e, NicError::NoFreeQueue { max: 256, .. }), "{e}");
        drop(all);
        TapQueue::open_queues("tap0", 2, MAC).expect("queues free again once let go");
    })
    .expect("a private network namespace");
}

/// The sections `== cpu N ==` of a `run --cpus` summary, and one
/// integer node of each.
fn per_cpu(text: &str, node: &str) -> Vec<u64> {
    text.split("\n== cpu ")
        .skip(1)
        .map(|sec| {
            sec.lines()
                .find_map(|l| l.strip_prefix(&format!("{node}: ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {node} in a CPU's summary:\n{text}"))
        })
        .collect()
}

/// 20000 frames at 40k/s in 64 flows to udp-sink on tap0 (bounded: 5 s).
fn flood_64_flows() {
    let (code, _, err) = util::run_pollsim(&[
        "flood",
        "--if",
        "tap0",
        "--dst",
        "198.18.0.2:9",
        "--flows",
        "64",
        "--count",
        "20000",
        "--rate",
        "40k",
        "--duration",
        "5s",
    ]);
    assert_eq!(code, 0, "{err}");
}

/// `pollsim run --cpus 2 --queues 2` on a multiqueue tap under `pollsim
/// flood --flows 64`: both kernel threads take frames from their queue,
/// each CPU has its own cp_time (its -w lines, and its summary), hw.ncpu
/// says 2, and every frame is accounted for on every CPU.
#[test]
fn run_on_two_cpus_takes_frames_on_both_queues_and_balances() {
    if !require_root_or_skip("run_on_two_cpus_takes_frames_on_both_queues_and_balances") {
        return;
    }
    let _one = util::serial();
    lab::in_new_netns(|| {
        setup_mq_tap(&[Ipv4Addr::new(198, 18, 0, 2)]);
        let run = util::Running::start(&["--cpus", "2", "--queues", "2", "-w", "0.5"]);
        link_up();
        assert_eq!(run.int("hw.ncpu"), 2);
        flood_64_flows();
        // Wait until CPU 0's queue has taken something (the control
        // socket serves CPU 0), then let the last frames drain.
        assert!(
            util::eventually(DEADLINE, || (run.int("dev.tap0.rx_packets") > 0)
                .then_some(()))
            .is_some(),
            "CPU 0's queue took no frame"
        );
        // CPU 1 answers on its own control socket, NAME-cpu1.
        let cpu1 = |node: &str| -> u64 {
            let name = format!("{}-cpu1", run.name);
            let (code, out, err) = util::run_pollsim(&["sysctl", "--name", &name, "-n", node]);
            assert_eq!(code, 0, "{err}");
            out.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{node}: {out}"))
        };
        assert_eq!(cpu1("hw.ncpu"), 2);
        assert!(
            util::eventually(DEADLINE, || (cpu1("dev.tap0.rx_packets") > 0).then_some(()))
                .is_some(),
            "CPU 1's queue took no frame"
        );
        // pollsim stat reads every CPU's socket: a line per CPU and one
        // for all of them, each interval.
        let (code, out, err) =
            util::run_pollsim(&["stat", "--name", &run.name, "-w", "0.2", "--count", "2"]);
        assert_eq!(code, 0, "{err}");
        for label in ["0 ", "1 ", "all "] {
            let n = out.lines().filter(|l| l.starts_with(label)).count();
            assert_eq!(n, 2, "{label:?} lines of pollsim stat:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(300));
        let s = run.stop();
        let received = per_cpu(&s.text, "dev.tap0.rx_packets");
        assert_eq!(received.len(), 2, "{}", s.text);
        assert!(
            received.iter().all(|&n| n > 0),
            "per queue {received:?}:\n{}",
            s.text
        );
        assert!(s.text.contains("balance: ok on every CPU"), "{}", s.text);
        // The flood's 20000 frames (and whatever else the kernel sent) were
        // offered to the two queues.
        let offered: u64 = per_cpu(&s.text, "dev.tap0.rx_packets")
            .iter()
            .zip(per_cpu(&s.text, "dev.tap0.rx_missed"))
            .map(|(r, m)| r + m)
            .sum();
        assert!(offered >= 20_000, "{offered}:\n{}", s.text);
        // Each CPU's own -w lines: `0 ...` and `1 ...` with its shares.
        for cpu in ["0 ", "1 "] {
            assert!(s.text.lines().any(|l| l.starts_with(cpu)), "{}", s.text);
        }
    })
    .expect("a private network namespace");
}

/// `run --cpus 2` with a second `--if`: the quiet single-queue tap1 is
/// CPU 0's alone. An HTTP GET to its address is answered (CPU 0's http
/// listens there), CPU 0's MIB has tap1 and CPU 1's has not, and every
/// CPU balances.
#[test]
fn a_second_interface_is_cpu_0s_quiet_nic() {
    if !require_root_or_skip("a_second_interface_is_cpu_0s_quiet_nic") {
        return;
    }
    let _one = util::serial();
    lab::in_new_netns(|| {
        setup_mq_tap(&[]);
        lab::setup_tap("tap1", "198.18.1.1/24").unwrap();
        let run = util::Running::start(&[
            "--cpus",
            "2",
            "--queues",
            "2",
            "--if",
            "tap0=198.18.0.2/24",
            "--if",
            "tap1=198.18.1.2/24",
        ]);
        link_up();
        let get = || -> Option<String> {
            use std::io::{Read as _, Write as _};
            let dst: std::net::SocketAddr = "198.18.1.2:80".parse().unwrap();
            let mut s = std::net::TcpStream::connect_timeout(&dst, Duration::from_secs(1)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: 198.18.1.2\r\n\r\n")
                .ok()?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).ok()?;
            buf.starts_with("HTTP/1.1 200").then_some(buf)
        };
        assert!(
            util::eventually(DEADLINE, get).is_some(),
            "no answer on the quiet tap1"
        );
        assert!(
            run.int("dev.tap1.rx_packets") > 0,
            "CPU 0 took tap1's frames"
        );
        let name = format!("{}-cpu1", run.name);
        let (code, _, _) =
            util::run_pollsim(&["sysctl", "--name", &name, "-n", "dev.tap1.rx_packets"]);
        assert_ne!(code, 0, "CPU 1 has no tap1");
        let s = run.stop();
        assert!(s.text.contains("balance: ok on every CPU"), "{}", s.text);
    })
    .expect("a private network namespace");
}

/// `run --cpus 2 --queues 4` on a multiqueue tap under `pollsim flood
/// --flows 64`: CPU 0 serves queues 0 and 2, CPU 1 queues 1 and 3 (ring q
/// on CPU q % 2), each queue's own counters (`dev.tap0.queue_rx_<q>.*`)
/// sum to its CPU's tap0, and every frame is accounted for on every CPU.
#[test]
fn four_queues_on_two_cpus_each_serve_two_and_balance() {
    if !require_root_or_skip("four_queues_on_two_cpus_each_serve_two_and_balance") {
        return;
    }
    let _one = util::serial();
    lab::in_new_netns(|| {
        setup_mq_tap(&[Ipv4Addr::new(198, 18, 0, 2)]);
        let run = util::Running::start(&["--cpus", "2", "--queues", "4"]);
        link_up();
        flood_64_flows();
        assert!(
            util::eventually(DEADLINE, || (run.int("dev.tap0.rx_packets") > 0)
                .then_some(()))
            .is_some(),
            "CPU 0's queues took no frame"
        );
        std::thread::sleep(Duration::from_millis(500));
        let s = run.stop();
        assert!(s.text.contains("balance: ok on every CPU"), "{}", s.text);
        let cpus = per_cpu(&s.text, "dev.tap0.rx_packets");
        assert_eq!(cpus.len(), 2, "{}", s.text);
        // Each queue's node is in the summary of the CPU that serves it.
        let queue = |q: usize| -> u64 {
            let node = format!("dev.tap0.queue_rx_{q}.rx_packets: ");
            s.text
                .lines()
                .find_map(|l| l.strip_prefix(&node))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {node}in the summary:\n{}", s.text))
        };
        let served: Vec<u64> = (0..4).map(queue).collect();
        assert!(
            served.iter().all(|&n| n > 0),
            "per queue {served:?}:\n{}",
            s.text
        );
        assert_eq!(served[0] + served[2], cpus[0], "CPU 0's queues: {served:?}");
        assert_eq!(served[1] + served[3], cpus[1], "CPU 1's queues: {served:?}");
    })
    .expect("a private network namespace");
}
