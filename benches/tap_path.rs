//! What polling mode delivers against what a bare tap read loop reads,
//! under the same flood, in one private namespace and one run.
//!
//! `cargo bench --bench tap_path [-- SECONDS]` (as root). The flood is
//! pollsim's own (AF_PACKET `sendmmsg`, `pollsim flood --rate max`) on the
//! second CPU, so it offers more than a reader on the first CPU can take;
//! the bare loop and pollsim run on the first CPU.
//!
//! Polling runs with `work_ns=0`, `burst_max=20000` and `user_frac=10`, so
//! the app costs little and the kernel may use 90 % of each tick: the
//! figure is the overhead of the simulated kernel and smoltcp over a bare
//! read loop. It runs with clock-driven polling only (`idle_poll=0`) under
//! both idle loops (`machdep.idle=spin`, as compare uses, and `hlt`), and
//! with `idle_poll=1` (FreeBSD's answer for full throughput). For each:
//! the median over the flooded seconds of pollsim's `-w 1` lines: datagrams
//! to the app, idle share, lost polls, burst, rx_missed, and the host's
//! steal and stalls in the same seconds; and the host's steal of the
//! flood's CPU (a sender that the host stops offers its load in bursts:
//! the ring overflows, then the ticks find it empty).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pollsim::compare::sweep::flood_for;
use pollsim::lab;
use pollsim_drivers::{Nic, TapNic};

const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];
/// The CPU of the reader (bare loop or pollsim); the flood takes the other.
const READER_CPU: usize = 0;

fn pin_self(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// The flood's CPU.
const FLOOD_CPU: usize = 1;

/// Run `f` while a flood at the maximum rate runs for `secs` on the other
/// CPU; returns what `f` returned, the offered rate and the host's steal of
/// the flood's CPU in percent (a stolen sender offers its load in bursts).
fn flooded<T: Send>(secs: f64, f: impl FnOnce(&AtomicBool) -> T + Send) -> (T, f64, f64) {
    let steal = || {
        pollsim::rt::host::steal_per_cpu()
            .get(FLOOD_CPU)
            .copied()
            .unwrap_or(0)
    };
    let steal0 = steal();
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let r = flood_for("max", secs, Default::default(), (&stop, &sent));
            done.store(true, Ordering::Relaxed);
            r.expect("flood")
        });
        let out = s.spawn(|| f(&done)).join().expect("reader thread");
        let (n, el) = flood.join().expect("flood thread");
        let stolen = steal().saturating_sub(steal0) as f64 / (el * 1e4);
        (out, n as f64 / el, stolen)
    })
}

/// Frames per second a bare non-blocking read loop takes.
fn bare_loop(secs: f64) -> (f64, f64, f64) {
    let mut nic = TapNic::open("tap0", MAC).expect("open tap0");
    flooded(secs, |done| {
        // Only the reader is pinned: a thread spawned from a pinned one
        // would inherit its CPU, and the flood must stay on the other.
        pin_self(READER_CPU);
        let start = Instant::now();
        let mut n = 0u64;
        while !done.load(Ordering::Relaxed) {
            n += nic.rx(64, &mut |_| {}) as u64;
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

/// Medians over the flooded seconds of one polling run.
#[derive(Debug, Default)]
struct Polling {
    app: f64,
    missed: f64,
    idle: f64,
    burst: f64,
    lost: f64,
    steal: f64,
    stall: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Polling mode with the given extra knobs, its `-w 1` lines read while the
/// flood runs.
fn polling(secs: f64, knobs: &[&str]) -> (Polling, f64, f64) {
    let bin = env!("CARGO_BIN_EXE_pollsim");
    let mut cmd = Command::new(bin);
    cmd.args([
        "run", "--if", "tap0", "--mode", "polling", "--apps", "udp-sink",
    ])
    .args(["--name", "tap-path", "-w", "1"])
    .args(["--duration", &format!("{}", secs + 3.0)]);
    for k in [
        "user.udp_sink.work_ns=0",
        "user.udp_sink.rcvbuf=4096",
        "kern.polling.burst_max=20000",
        "kern.polling.user_frac=10",
    ]
    .iter()
    .chain(knobs)
    {
        cmd.args(["--sysctl", k]);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pollsim");
    let mut set = nix::sched::CpuSet::new();
    set.set(READER_CPU).expect("cpu");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sched::sched_setaffinity(pid, &set).expect("pin pollsim");
    std::thread::sleep(Duration::from_millis(1500));
    let ((), offered, sender_steal) = flooded(secs, |_| ());
    let out = child.wait_with_output().expect("pollsim output");
    let text = String::from_utf8_lossy(&out.stdout);
    // input/s missed/s ipdrop/s deliver/s app/s user sys intr idle burst lost steal stall late99
    let rows: Vec<Vec<f64>> = text
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .filter(|r: &Vec<f64>| r.len() == 14 && r[1] > 0.0)
        .collect();
    let col = |i: usize| median(rows.iter().map(|r| r[i]).collect());
    let p = Polling {
        app: col(4),
        missed: col(1),
        idle: col(8),
        burst: col(9),
        lost: col(10),
        steal: col(11),
        stall: col(12),
    };
    (p, offered, sender_steal)
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5.0);
    if !lab::is_root() {
        println!("tap_path bench skipped: needs root to create a network namespace and a tap");
        return;
    }
    lab::in_new_netns(|| {
        lab::setup_tap("tap0", "198.18.0.1/24").expect("tap set-up");
        lab::static_neigh("tap0", "198.18.0.2", MAC).expect("neighbour");
        let (bare, offered, sender_steal) = bare_loop(secs);
        println!(
            "flood: pollsim's AF_PACKET sendmmsg injector at max on CPU 1, 60-byte frames, {secs} s each; reader on CPU {READER_CPU}"
        );
        println!(
            "  bare tap read loop: {bare:>8.0} frames/s read (offered {offered:.0}/s, sender's CPU stolen {sender_steal:.1}%)"
        );
        println!(
            "  {:<26} {:>9} {:>7} {:>9} {:>6} {:>6} {:>5} {:>6} {:>6} {:>9} {:>7}",
            "polling (medians/s)",
            "app/s",
            "of bare",
            "missed/s",
            "idle%",
            "burst",
            "lost",
            "steal%",
            "stall%",
            "offered/s",
            "sndstl%"
        );
        for (label, knobs) in [
            ("idle_poll=0, idle=spin", ["kern.polling.idle_poll=0", "machdep.idle=spin"]),
            ("idle_poll=0, idle=hlt", ["kern.polling.idle_poll=0", "machdep.idle=hlt"]),
            ("idle_poll=1, idle=spin", ["kern.polling.idle_poll=1", "machdep.idle=spin"]),
        ] {
            let (p, offered, sender_steal) = polling(secs, &knobs);
            println!(
                "  {label:<26} {:>9.0} {:>6.1}% {:>9.0} {:>6.1} {:>6.0} {:>5.0} {:>6.1} {:>6.1} {offered:>9.0} {sender_steal:>7.1}",
                p.app,
                p.app * 100.0 / bare,
                p.missed,
                p.idle,
                p.burst,
                p.lost,
                p.steal,
                p.stall
            );
        }
    })
    .expect("netns");
}
