//! What polling mode delivers against what a bare tap read loop reads, under
//! the same kernel-side UDP flood, in one private namespace and one run.
//!
//! `cargo bench --bench tap_path [-- SECONDS]` (as root). Polling runs with
//! `work_ns=0`, `burst_max=20000` and `user_frac=10`, so the app costs
//! little and the kernel may use most of each tick: the figure is the
//! overhead of the simulated kernel and smoltcp over a bare read loop. It
//! runs twice: clock-driven polling only (`idle_poll=0`: between ticks the
//! CPU idles while the tap queue fills), and with `idle_poll=1` (FreeBSD's
//! answer for full throughput: the idle loop polls too).

use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pollsim::lab;
use pollsim_drivers::{Nic, TapNic};

const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];

fn dst() -> SocketAddrV4 {
    "198.18.0.2:9".parse().expect("address")
}

/// Frames a bare non-blocking read loop takes while the flood runs.
fn bare_loop(secs: u64) -> (f64, f64) {
    let mut nic = TapNic::open("tap0", MAC).expect("open tap0");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let b = lab::udp_blast(dst(), 18, u64::MAX, None, Duration::from_secs(secs));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            b.expect("blast")
        });
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            n += nic.rx(64, &mut |_| {}) as u64;
        }
        let el = start.elapsed().as_secs_f64();
        let b = sender.join().expect("sender");
        (n as f64 / el, b.sent as f64 / b.elapsed.as_secs_f64())
    })
}

/// Datagrams pollsim's udp-sink gets per second of flood, in polling mode.
fn polling(secs: u64, idle_poll: bool) -> (f64, f64) {
    let bin = env!("CARGO_BIN_EXE_pollsim");
    let dur = (secs + 3).to_string();
    let child = Command::new(bin)
        .args([
            "run",
            "--if",
            "tap0",
            "--mode",
            "polling",
            "--duration",
            &dur,
            "--apps",
            "udp-sink",
        ])
        .args([
            "--sysctl",
            "user.udp_sink.work_ns=0",
            "--sysctl",
            "user.udp_sink.rcvbuf=4096",
        ])
        .args([
            "--sysctl",
            "kern.polling.burst_max=20000",
            "--sysctl",
            "kern.polling.user_frac=10",
        ])
        .args([
            "--sysctl",
            if idle_poll {
                "kern.polling.idle_poll=1"
            } else {
                "kern.polling.idle_poll=0"
            },
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pollsim");
    std::thread::sleep(Duration::from_millis(1500));
    let b = lab::udp_blast(dst(), 18, u64::MAX, None, Duration::from_secs(secs)).expect("blast");
    let out = child.wait_with_output().expect("pollsim output");
    let text = String::from_utf8_lossy(&out.stdout);
    let got: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("user.udp_sink.datagrams: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("summary has user.udp_sink.datagrams");
    let el = b.elapsed.as_secs_f64();
    (got as f64 / el, b.sent as f64 / el)
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    if !lab::is_root() {
        println!("tap_path bench skipped: needs root to create a network namespace and a tap");
        return;
    }
    lab::in_new_netns(|| {
        lab::setup_tap("tap0", "198.18.0.1/24").expect("tap set-up");
        lab::static_neigh("tap0", "198.18.0.2", MAC).expect("neighbour");
        let (bare, offered_a) = bare_loop(secs);
        let (poll, offered_b) = polling(secs, false);
        let (idle, offered_c) = polling(secs, true);
        let pct = |x: f64| x * 100.0 / bare;
        println!("flood from a kernel UDP socket (sendmmsg), 60-byte frames, {secs} s each:");
        println!("  bare tap read loop  : {bare:>8.0} frames/s read (offered {offered_a:.0}/s)");
        println!(
            "  polling, idle_poll=0: {poll:>8.0} datagrams/s to the app (offered {offered_b:.0}/s) = {:.1}% of bare",
            pct(poll)
        );
        println!(
            "  polling, idle_poll=1: {idle:>8.0} datagrams/s to the app (offered {offered_c:.0}/s) = {:.1}% of bare",
            pct(idle)
        );
    })
    .expect("netns");
}
