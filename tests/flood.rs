//! `pollsim flood`: refusals (no root needed), and, as root in a private
//! network namespace with tap0, pacing accuracy counted at the tap reader,
//! exact `--count`, ARP resolution from the neighbour table, Ctrl-C, and
//! `--bench` against a plain sendmmsg loop.

mod util;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pollsim::flood::{self, FloodArgs, FloodReport};
use pollsim_drivers::{Nic, TapNic};
use util::{MAC, lab, require_root_or_skip, with_tap};

const MAC_STR: &str = "02:00:c6:12:00:02";

#[track_caller]
fn refused(args: &[&str], why: &str) {
    let a = FloodArgs::from_args(args).expect("the arguments parse");
    let err = flood::main(&a, &AtomicBool::new(false))
        .expect_err("the flood must be refused")
        .to_string();
    assert!(err.contains(why), "{args:?}: error '{err}' lacks '{why}'");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
}

#[test]
fn refuses_what_must_not_run() {
    refused(
        &["--dst", "10.0.0.1:9", "--count", "10"],
        "outside 198.18.0.0/15",
    );
    refused(
        &["--dst", "198.20.0.1:9", "--count", "10"],
        "outside 198.18.0.0/15",
    );
    refused(
        &["--rate", "10k"],
        "give --duration (e.g. 10s) or --count N",
    );
    refused(&["--rate", "0", "--count", "10"], "--rate must be above 0");
    refused(
        &["--size", "59", "--count", "10"],
        "--size 59 is out of range",
    );
    refused(
        &["--size", "1515", "--count", "10"],
        "--size 1515 is out of range",
    );
    refused(&["--count", "0"], "--count must be at least 1");
    refused(&["--duration", "0s"], "--duration must be above 0");
    refused(
        &["--burst", "0", "--count", "1"],
        "--burst 0 is out of range",
    );
    assert!(FloodArgs::from_args(&["--rate", "fast"]).is_err());
    assert!(FloodArgs::from_args(&["--dst", "198.18.0.2"]).is_err());
}

#[test]
fn defaults_follow_the_contract() {
    let a = FloodArgs::from_args(&["--count", "1"]).unwrap();
    assert_eq!(a.ifname, "tap0");
    assert_eq!(a.rate, flood::parse::Rate::Max);
    assert_eq!((a.size, a.burst, a.bench), (60, 32, false));
    assert_eq!(a.dst.to_string(), "198.18.0.2:9");
    assert_eq!(a.proto, flood::frames::Proto::Udp);
    assert_eq!((a.dst_mac, a.src_ports), (None, None));
}

/// Kernel-side counters of tap0: (tx_packets, tx_dropped) — frames the
/// reader took and frames the full queue dropped.
fn tap_counters() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("tap0:"))
        .expect("tap0 in net/dev");
    let f: Vec<u64> = line
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (f[9], f[11])
}

/// A reader on tap0 counting the flood's frames (to pollsim's MAC), and
/// the source ports it saw.
struct Reader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, HashSet<u16>)>,
}

impl Reader {
    fn start() -> Reader {
        let mut nic = TapNic::open("tap0", MAC).expect("open tap0");
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut n, mut ports) = (0u64, HashSet::new());
            let mut count = |f: &[u8]| {
                if f.len() >= 36 && f[..6] == MAC {
                    n += 1;
                    ports.insert(u16::from_be_bytes([f[34], f[35]]));
                }
            };
            loop {
                if nic.rx(256, &mut count) == 0 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut fds = [PollFd::new(nic.device_fd(), PollFlags::POLLIN)];
                    poll(&mut fds, PollTimeout::from(10u8)).expect("poll tap0");
                }
            }
            (n, ports)
        });
        Reader { stop, thread }
    }

    /// Let the last frames arrive, then stop: (frames, distinct source ports).
    fn stop(self) -> (u64, HashSet<u16>) {
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("reader thread")
    }
}

/// tap0 in a fresh namespace, with a queue deep enough (100 ms at
/// 200 kpps) that a reader preempted by the other processes of a 2-core
/// machine loses nothing.
#[track_caller]
fn with_deep_tap<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    with_tap(|| {
        lab::sh("ip", &["link", "set", "tap0", "txqueuelen", "20000"]).expect("txqueuelen");
        f()
    })
}

/// What one flood did, seen from the generator, the reader and the kernel.
struct Seen {
    report: FloodReport,
    out: String,
    read: u64,
    ports: HashSet<u16>,
    /// Frames the tap's full queue dropped (its tx_dropped).
    dropped: u64,
}

/// Flood tap0 with `args` while a reader counts; checks the accounting:
/// every frame the generator counts as sent reached the tap, and was
/// either read or dropped by its full queue.
#[track_caller]
fn flood_with_reader(args: &[&str], stop: &AtomicBool) -> Seen {
    let a = FloodArgs::from_args(args).expect("arguments");
    let reader = Reader::start();
    let before = tap_counters();
    let mut out = Vec::new();
    let report = flood::run(&a, stop, &mut out).expect("the flood runs");
    let (read, ports) = reader.stop();
    let after = tap_counters();
    let out = String::from_utf8(out).unwrap();
    println!("{out}");
    let taken = after.0 - before.0;
    let dropped = after.1 - before.1;
    // --bench sends for a second before the flood proper.
    if !args.contains(&"--bench") {
        assert_eq!(taken + dropped, report.sent, "tap saw another count\n{out}");
    }
    assert_eq!(read, taken, "the reader got frames not ours\n{out}");
    Seen {
        report,
        out,
        read,
        ports,
        dropped,
    }
}

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want
}

#[test]
fn paced_rates_are_within_two_percent() {
    if !require_root_or_skip("paced_rates_are_within_two_percent") {
        return;
    }
    let _one = util::serial();
    with_deep_tap(|| {
        for pps in [20_000u32, 50_000, 100_000] {
            let rate = pps.to_string();
            let args = ["--rate", &rate, "--duration", "1s", "--dst-mac", MAC_STR];
            let s = flood_with_reader(&args, &AtomicBool::new(false));
            let want = f64::from(pps) * s.report.elapsed.as_secs_f64();
            let sent_err = rel_err(s.report.sent as f64, want);
            let read_err = rel_err(s.read as f64, want);
            println!(
                "rate {pps}: sent {} in {:?} (error {:.3}%), read {} (error {:.3}%), dropped {}",
                s.report.sent,
                s.report.elapsed,
                100.0 * sent_err,
                s.read,
                100.0 * read_err,
                s.dropped
            );
            assert!(sent_err < 0.02, "rate {pps}: sent off by {sent_err}");
            assert!(s.out.contains("average pps: "), "{}", s.out);
            if s.dropped == 0 {
                assert!(read_err < 0.02, "rate {pps}: read off by {read_err}");
            }
        }
    });
}

#[test]
fn count_sends_exactly_n_frames_over_the_flows() {
    if !require_root_or_skip("count_sends_exactly_n_frames_over_the_flows") {
        return;
    }
    let _one = util::serial();
    with_deep_tap(|| {
        let s = flood_with_reader(
            &["--count", "12345", "--rate", "200k", "--dst-mac", MAC_STR],
            &AtomicBool::new(false),
        );
        assert_eq!(s.report.sent, 12_345, "{}", s.out);
        assert!(s.out.contains("frames sent: 12345"), "{}", s.out);
        for proto in ["syn", "udp", "icmp"] {
            let args = [
                "--count",
                "1000",
                "--proto",
                proto,
                "--src-ports",
                "2000-2099",
                "--size",
                "128",
                "--rate",
                "50k",
                "--dst-mac",
                MAC_STR,
            ];
            let s = flood_with_reader(&args, &AtomicBool::new(false));
            assert_eq!(s.report.sent, 1000, "{}", s.out);
            if proto != "icmp" && s.dropped == 0 {
                assert_eq!(s.ports.len(), 100, "{proto}: flows {:?}", s.ports);
            }
        }
    });
}

#[test]
fn destination_mac_comes_from_the_neighbour_table() {
    if !require_root_or_skip("destination_mac_comes_from_the_neighbour_table") {
        return;
    }
    let _one = util::serial();
    with_deep_tap(|| {
        // Nobody answers ARP for 198.18.0.3: a clear error, no flood.
        let a = FloodArgs::from_args(&["--count", "10", "--dst", "198.18.0.3:9"]).unwrap();
        let err = flood::run(&a, &AtomicBool::new(false), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("--dst-mac"), "{err}");
        lab::static_neigh("tap0", "198.18.0.2", MAC).expect("neighbour entry");
        let s = flood_with_reader(&["--count", "500"], &AtomicBool::new(false));
        assert_eq!(s.report.sent, 500);
        assert!(s.out.contains(MAC_STR), "{}", s.out);
    });
}

#[test]
fn stop_ends_the_flood_with_a_summary() {
    if !require_root_or_skip("stop_ends_the_flood_with_a_summary") {
        return;
    }
    let _one = util::serial();
    with_deep_tap(|| {
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let s = std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
            });
            let args = ["--rate", "10k", "--duration", "20s", "--dst-mac", MAC_STR];
            flood_with_reader(&args, &stop)
        });
        assert!(start.elapsed() < Duration::from_secs(3), "did not stop");
        assert!(s.report.sent > 0 && s.report.sent < 10_000, "{}", s.out);
        assert!(s.out.contains("frames sent: "), "{}", s.out);
    });
}

/// The percentage of `--bench`'s line, and the flood's output.
fn bench_once() -> (f64, String) {
    let args = ["--bench", "--duration", "1500ms", "--dst-mac", MAC_STR];
    let s = flood_with_reader(&args, &AtomicBool::new(false));
    let line = s
        .out
        .lines()
        .find(|l| l.starts_with("plain sendmmsg loop: "))
        .unwrap_or_else(|| panic!("no bench line in\n{}", s.out));
    let pct: f64 = line
        .rsplit_once('(')
        .and_then(|(_, p)| p.split_once('%'))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or_else(|| panic!("no percentage in {line}"));
    let lines = s
        .out
        .lines()
        .filter(|l| l.contains(" Mbit/s  errors "))
        .count();
    assert!(lines >= 1, "no per-second line in\n{}", s.out);
    (pct, s.out)
}

#[test]
fn max_rate_keeps_up_with_a_plain_sendmmsg_loop() {
    if !require_root_or_skip("max_rate_keeps_up_with_a_plain_sendmmsg_loop") {
        return;
    }
    let _one = util::serial();
    with_deep_tap(|| {
        // Other processes share the two cores: one of three tries must make it.
        let mut outs = Vec::new();
        for _ in 0..3 {
            let (pct, out) = bench_once();
            if pct >= 90.0 {
                return;
            }
            outs.push(out);
        }
        panic!(
            "flood --rate max below 90% of plain in 3 tries:\n{}",
            outs.join("\n")
        );
    });
}

/// `--flows 64` over 8 source ports: every frame arrives and is accounted
/// for, spread over the 8 ports (the addresses vary every 8 flows).
#[test]
fn flows_reach_the_tap_and_balance() {
    if !require_root_or_skip("flows_reach_the_tap_and_balance") {
        return;
    }
    let _one = util::serial();
    with_deep_tap(|| {
        let args = [
            "--rate",
            "50k",
            "--count",
            "6400",
            "--flows",
            "64",
            "--src-ports",
            "1000-1007",
            "--flow-dist",
            "zipf:1",
            "--dst-mac",
            MAC_STR,
        ];
        let s = flood_with_reader(&args, &AtomicBool::new(false));
        assert_eq!(s.report.sent, 6400, "{}", s.out);
        assert_eq!(s.read + s.dropped, 6400, "{}", s.out);
        assert_eq!(s.ports.len(), 8, "{:?}\n{}", s.ports, s.out);
        assert!(s.out.contains("64 flow(s)"), "{}", s.out);
    });
}
