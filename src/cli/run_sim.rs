//! `pollsim run --sim`: the same kernel, apps, `-w` lines and final summary
//! as `pollsim run`, on virtual time against a simulated NIC fed by a
//! seeded flood, marked simulated. No tap, no root, no control socket (the
//! run is faster than real time; knobs are set with `--sysctl`). With
//! `--pcap`, frames are timestamped with virtual time (shown as time since
//! the UNIX epoch: the simulation starts at 1 s).

use anyhow::Context as _;

use super::RunArgs;
use crate::compare::experiment::parse_rate;
use crate::kernel::sched::RunOptions;
use crate::kernel::time::Nanos;
use crate::kernel::{Kernel, KernelConfig};
use crate::report::{self, Snapshot};
use crate::sim::{Sim, SimConfig};

/// Virtual seconds simulated when `--duration` is not given.
const DEFAULT_SECS: u64 = 10;

/// Run the simulated instance and print what `pollsim run` prints.
pub fn run(args: &RunArgs, cfg: &KernelConfig, opts: RunOptions) -> anyhow::Result<()> {
    let pps: f64 = parse_rate(&args.sim_rate)?.parse().context("--sim-rate")?;
    let costs = crate::compare::profile::Costs::resolve(args.profile.as_deref())?;
    eprintln!("pollsim: {}", costs.describe());
    let mut sysctls = costs.sysctl_lines();
    sysctls.extend(args.sysctls.iter().cloned());
    let scfg = SimConfig {
        mode: cfg.mode,
        hz: cfg.hz,
        pattern: args.arrivals.pattern(pps),
        seed: args.seed,
        apps: cfg.apps.clone(),
        sysctls,
        probe: args.sim_probe,
        conns: args.conns,
    };
    if args.sim_probe.is_some() && !cfg.apps.contains(&crate::apps::AppKind::Http) {
        anyhow::bail!("--sim-probe needs the http app (--apps ...,http)");
    }
    let capture = super::pcap::create(args, std::time::Duration::ZERO)?;
    let mut sim = match &capture {
        Some(c) => Sim::new_wrapped(&scfg, |nic| Box::new(c.wrap(nic)))?,
        None => Sim::new(&scfg)?,
    };
    let duration = opts.duration.unwrap_or(Nanos::from_secs(DEFAULT_SECS));
    eprintln!(
        "pollsim: simulating {} (flooded) and {} (quiet) on virtual time ({}), kern.hz={}, \
         {:?} flood of {} pps to udp-sink, seed {}, {} virtual s",
        crate::sim::IFNAME,
        crate::sim::QUIET_IFNAME,
        cfg.mode.name(),
        cfg.hz.get(),
        args.arrivals,
        pps,
        args.seed,
        duration.as_secs_f64()
    );
    let mut prev = Snapshot::take(&sim.k, &sim.mib, sim.now());
    let mut lines = 0u32;
    let mib = crate::kernel::mib::build(&sim.k);
    let mut observe = |k: &mut Kernel, now: Nanos| {
        if lines.is_multiple_of(20) {
            println!("{}  (simulated)", report::header_for(&prev));
        }
        lines += 1;
        k.check_status();
        let snap = Snapshot::take(k, &mib, now);
        println!("{}", report::line(&prev, &snap));
        prev = snap;
    };
    if let Some(every) = opts.report_every {
        sim.report_every(every);
    }
    let end = sim.now() + duration;
    sim.run_until(end, &mut observe);
    println!("simulated: {} s of virtual time", duration.as_secs_f64());
    print!("{}", report::summary(&mut sim.k, &sim.mib));
    if let Some(link) = args.sim_probe {
        let r = sim.take_probe_results();
        let mut ms = r.latencies_ms.clone();
        ms.sort_by(f64::total_cmp);
        // The value of rank ceil(pct % of n), as compare's probe columns.
        let q = |pct: usize| {
            ms.get((ms.len() * pct).div_ceil(100).saturating_sub(1))
                .map_or("-".to_string(), |v| format!("{v:.2} ms"))
        };
        println!(
            "\nprobe ({} link, every {} ms): {} answered, {} timeouts; latency p50 {}, p99 {}",
            link.name(),
            crate::sim::probe::EVERY.0 / 1_000_000,
            ms.len(),
            r.timeouts,
            q(50),
            q(99)
        );
    }
    drop(sim);
    super::pcap::finish(args, capture)
}
