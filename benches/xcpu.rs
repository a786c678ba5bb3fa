//! What handing work to another CPU costs on this host: the measurements
//! behind the defaults of `hw.sim.rps_cost_ns`, `hw.sim.xcpu_cost_ns` and
//! `hw.sim.ipi_cost_ns` (src/kernel/rps.rs). Two threads pinned to host
//! CPUs 0 and 1; medians of a few runs, with the host's steal over them.
//! No root, no tap; a benchmark, not a test (nothing is asserted).
//!
//! - **handoff**: the producer copies 60-byte frames into a locked queue
//!   that a consumer on the other CPU drains as they come (the lock's and
//!   the frame's cache lines move between the CPUs each time), ns per
//!   frame on the producer: what `enqueue_to_backlog` to a remote CPU, or
//!   an append to a socket another CPU reads, costs the CPU that hands.
//! - **local**: the same with the consumer on the producer's CPU, taking
//!   the frames afterwards: the part that is not cross-CPU.
//! - **wake**: an eventfd ping-pong between the two CPUs, half a round
//!   trip: writing the event, and waking a thread blocked on the other CPU
//!   (an upper bound of an IPI: it includes a scheduler wake-up).
//!
//! `cargo bench --bench xcpu [-- RUNS]` (default 5). Needs 2 host CPUs.

mod common;
use common::steal;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::unistd::Pid;

/// Frames handed per run.
const FRAMES: usize = 2_000_000;
/// Ping-pongs per run.
const PINGS: usize = 100_000;
/// A flood frame's length.
const FRAME_LEN: usize = 60;

fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}

type Queue = Arc<Mutex<VecDeque<[u8; FRAME_LEN]>>>;

/// ns per frame the producer (CPU 0) pays to hand `FRAMES` frames to a
/// consumer on CPU `consumer`, draining concurrently (or, on CPU 0,
/// after the producer).
fn handoff(consumer: usize) -> f64 {
    let q: Queue = Arc::new(Mutex::new(VecDeque::with_capacity(4096)));
    let done = Arc::new(AtomicBool::new(false));
    let (cq, cdone) = (q.clone(), done.clone());
    let drain = move || {
        pin(consumer);
        let mut sum = 0u64;
        loop {
            let batch: Vec<_> = cq
                .lock()
                .map(|mut g| g.drain(..).collect())
                .unwrap_or_default();
            sum += batch.iter().map(|f| u64::from(f[0])).sum::<u64>();
            if batch.is_empty() && cdone.load(Ordering::Acquire) {
                return sum;
            }
        }
    };
    let remote = consumer != 0;
    let t = remote.then(|| std::thread::spawn(drain.clone()));
    pin(0);
    let frame = [7u8; FRAME_LEN];
    let start = Instant::now();
    for i in 0..FRAMES {
        let mut g = q.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut f = frame;
        f[1] = i as u8;
        g.push_back(f);
        if !remote && g.len() >= 4096 {
            g.clear();
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / FRAMES as f64;
    done.store(true, Ordering::Release);
    if let Some(t) = t {
        let _ = t.join();
    }
    ns
}

/// Half the round trip of an eventfd ping-pong between CPUs 0 and 1, ns.
fn wake() -> f64 {
    let flags = EfdFlags::EFD_SEMAPHORE;
    let (ping, pong) = (
        Arc::new(EventFd::from_value_and_flags(0, flags).expect("eventfd")),
        Arc::new(EventFd::from_value_and_flags(0, flags).expect("eventfd")),
    );
    let (p2, q2) = (ping.clone(), pong.clone());
    let t = std::thread::spawn(move || {
        pin(1);
        for _ in 0..PINGS {
            let _ = p2.read();
            let _ = q2.write(1);
        }
    });
    pin(0);
    let start = Instant::now();
    for _ in 0..PINGS {
        let _ = ping.write(1);
        let _ = pong.read();
    }
    let ns = start.elapsed().as_nanos() as f64 / PINGS as f64 / 2.0;
    let _ = t.join();
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        println!("xcpu: this host has {cpus} CPU; the handoff needs two");
        return;
    }
    let (s0, t0) = steal();
    let remote = median((0..runs).map(|_| handoff(1)).collect());
    let local = median((0..runs).map(|_| handoff(0)).collect());
    let wake = median((0..runs).map(|_| wake()).collect());
    let (s1, t1) = steal();
    let steal_pct = (s1 - s0) as f64 * 100.0 / (t1 - t0).max(1) as f64;
    println!("xcpu (medians of {runs} runs, host steal {steal_pct:.2} %):");
    println!("  handoff to the other CPU   {remote:8.1} ns per frame (producer)");
    println!("  the same on one CPU        {local:8.1} ns per frame");
    println!(
        "  cross-CPU part             {:8.1} ns per frame",
        remote - local
    );
    println!("  wake-up on the other CPU   {wake:8.1} ns (half an eventfd round trip)");
}
