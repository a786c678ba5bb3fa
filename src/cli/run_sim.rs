//! `pollsim run --sim`: the same kernel, apps, `-w` lines and final summary
//! as `pollsim run`, on virtual time against a simulated NIC fed by a
//! seeded flood, marked simulated. No tap, no root, no control socket (the
//! run is faster than real time; knobs are set with `--sysctl`). With
//! `--pcap`, frames are timestamped with virtual time (shown as time since
//! the UNIX epoch: the simulation starts at 1 s).

use anyhow::Context as _;

use super::RunArgs;
use super::cpu_line::CpuLine;
use crate::compare::experiment::parse_rate;
use crate::kernel::sched::RunOptions;
use crate::kernel::time::Nanos;
use crate::kernel::{Kernel, KernelConfig};
use crate::report::{self, Snapshot};
use crate::sim::smp::SmpSim;
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
    if args.cpus != 1
        || args.queues.is_some_and(|m| m != 1)
        || args.flows != 1
        || args.rss_weight.is_some()
    {
        return run_smp(args, &scfg, opts);
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
        print_probe(link, &sim.take_probe_results());
    }
    drop(sim);
    super::pcap::finish(args, capture)
}

/// `run --sim --cpus N` (or `--queues M`, `--flows K`): every CPU's line
/// each report interval, then each CPU's accounting and the whole
/// system's.
fn run_smp(args: &RunArgs, scfg: &SimConfig, opts: RunOptions) -> anyhow::Result<()> {
    if args.pcap.is_some() {
        anyhow::bail!(
            "--pcap takes one CPU, one queue and one flow for now (no --cpus, --queues, --flows)"
        );
    }
    if args.sim_probe.is_some() && !scfg.apps.contains(&crate::apps::AppKind::Http) {
        anyhow::bail!("--sim-probe needs the http app (--apps ...,http)");
    }
    let spec = crate::sim::FlowSpec {
        flows: args.flows,
        dist: args.flow_dist,
        key: args.rss_key,
        weights: args.rss_weight.clone(),
        queues: args.queues,
    };
    let mut sim = SmpSim::new(scfg, args.cpus, &spec)?;
    let duration = opts.duration.unwrap_or(Nanos::from_secs(DEFAULT_SECS));
    let place = crate::sim::Placement::new(0, args.cpus, &spec)?;
    let mut flows_per = vec![0usize; place.map.nqueues()];
    for q in place.queues() {
        flows_per[q] += 1;
    }
    eprintln!(
        "pollsim: simulating {} CPUs on virtual time ({}), kern.hz={}: {} with {} \
         (Toeplitz RSS, key {}; flows per queue {:?}), {} (quiet) on CPU 0; {:?} flood of \
         {} pps in {} flows, seed {}, {} virtual s",
        args.cpus,
        scfg.mode.name(),
        scfg.hz.get(),
        crate::sim::IFNAME,
        place.map.describe(),
        args.rss_key
            .builtin_name()
            .map_or_else(|| args.rss_key.to_string(), str::to_string),
        flows_per,
        crate::sim::QUIET_IFNAME,
        args.arrivals,
        scfg.pattern.mean_pps(),
        args.flows,
        args.seed,
        duration.as_secs_f64()
    );
    let end = sim.now() + duration;
    let every = opts.report_every.unwrap_or(duration);
    let mut prev: Vec<CpuLine> = sim.cpus.iter().map(CpuLine::of_sim).collect();
    let mut lines = 0u32;
    while sim.now() < end {
        let left = Nanos(end.0 - sim.now().0);
        sim.run_for(if left.0 < every.0 { left } else { every });
        if opts.report_every.is_none() {
            continue;
        }
        if lines.is_multiple_of(20) {
            println!("{}  (simulated)", CpuLine::HEADER);
        }
        lines += 1;
        let now: Vec<CpuLine> = sim.cpus.iter().map(CpuLine::of_sim).collect();
        for (c, (a, b)) in prev.iter().zip(&now).enumerate() {
            println!("{}", b.line(&c.to_string(), a, 1));
        }
        prev = now;
    }
    println!(
        "simulated: {} s of virtual time on {} CPUs",
        duration.as_secs_f64(),
        args.cpus
    );
    let ends: Vec<(String, report::Accounting)> = sim
        .cpus
        .iter_mut()
        .map(|s| {
            let text = report::summary(&mut s.k, &s.mib);
            (text, report::Accounting::of(&s.k))
        })
        .collect();
    print_cpus_summary(&ends);
    if let Some(link) = args.sim_probe {
        print_probe(link, &sim.take_probe_results());
    }
    Ok(())
}

/// The probe's line of the final summary.
fn print_probe(link: crate::sim::ProbeLink, r: &crate::sim::probe::ProbeResults) {
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

/// Each CPU's summary (its MIB and accounting), then all CPUs' totals and
/// whether each CPU balances.
pub(super) fn print_cpus_summary(ends: &[(String, report::Accounting)]) {
    let mut total = report::Accounting::default();
    let mut balanced = true;
    for (c, (text, a)) in ends.iter().enumerate() {
        println!("\n== cpu {c} ==");
        print!("{text}");
        balanced &= a.balanced();
        total.add(a);
    }
    println!(
        "\nall {} CPUs: offered {}, rx_missed {}, ipintrq drops {}, socket drops {}, \
         read by udp-sink {}; balance: {}",
        ends.len(),
        total.offered,
        total.rx_missed,
        total.ipintrq_drops,
        total.socket_drops,
        total.app_read,
        if balanced {
            "ok on every CPU (every frame accounted for)"
        } else {
            "MISMATCH"
        }
    );
}
