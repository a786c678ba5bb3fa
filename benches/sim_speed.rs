//! How fast virtual time runs: offered frames simulated per wall second,
//! at one CPU (polling and interrupt mode) and at 4 CPUs with 256 flows,
//! each the median of a few runs, with the host's steal over them. No
//! root, no tap; a benchmark, not a test (nothing here is asserted).
//!
//! `cargo bench --bench sim_speed [-- RUNS]` (default 3).

mod common;
use common::steal;

use std::time::Instant;

use pollsim::apps::AppKind;
use pollsim::kernel::Mode;
use pollsim::kernel::time::{Hz, Nanos};
use pollsim::sim::smp::SmpSim;
use pollsim::sim::{FlowSpec, SimConfig};
use pollsim_drivers::Pattern;

/// Virtual seconds per run.
const SECS: u64 = 3;
/// The offered rate per CPU, frames/s.
const PPS_PER_CPU: f64 = 1_000_000.0;

/// One run: (offered frames, wall seconds).
fn run(mode: Mode, cpus: usize, flows: usize) -> (u64, f64) {
    let cfg = SimConfig {
        mode,
        hz: Hz::DEFAULT,
        pattern: Pattern::Poisson {
            pps: PPS_PER_CPU * cpus as f64,
        },
        seed: 1,
        apps: vec![AppKind::UdpSink, AppKind::Http, AppKind::Interactive],
        sysctls: Vec::new(),
        probe: None,
        conns: 0,
    };
    let spec = FlowSpec {
        flows,
        ..FlowSpec::default()
    };
    let mut sim = SmpSim::new(&cfg, cpus, &spec).expect("a simulated system");
    let t = Instant::now();
    sim.run_for(Nanos::from_secs(SECS));
    (sim.arrived(), t.elapsed().as_secs_f64())
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3)
        .max(1);
    let before = steal();
    println!(
        "sim_speed: {SECS} virtual s per run, {PPS_PER_CPU} offered frames/s per CPU, median of {runs}"
    );
    for (label, mode, cpus, flows) in [
        ("1 CPU, polling", Mode::Polling, 1, 1),
        ("1 CPU, interrupt", Mode::Interrupt, 1, 1),
        ("4 CPUs, polling, 256 flows", Mode::Polling, 4, 256),
        ("4 CPUs, interrupt, 256 flows", Mode::Interrupt, 4, 256),
    ] {
        let mut rates: Vec<(f64, u64, f64)> = (0..runs)
            .map(|_| {
                let (frames, wall) = run(mode, cpus, flows);
                (frames as f64 / wall.max(1e-9), frames, wall)
            })
            .collect();
        rates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rate, frames, wall) = rates[rates.len() / 2];
        println!(
            "  {label:<30} {:>6.2} M offered frames per wall second ({frames} frames in {wall:.2} s)",
            rate / 1e6
        );
    }
    let after = steal();
    let total = after.1.saturating_sub(before.1).max(1);
    println!(
        "  host steal over the runs: {:.2} %",
        100.0 * after.0.saturating_sub(before.0) as f64 / total as f64
    );
}
