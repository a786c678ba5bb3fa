//! `pollsim compare --sim`: the livelock experiment on virtual time.
//!
//! The same sweep as the real one ([`super::experiment`]): calibrate
//! `work_ns` so that the highest offered rate is at least 4x polling mode's
//! capacity, then every mode over log-spaced rates up to the flood's
//! maximum, with the HTTP probe. Each point is a fresh [`Sim`] (seeded from
//! `--seed`, the mode and the rate), run for a warm-up and then measured
//! over the window from its own MIB, so the results are the same
//! [`Results`] and the same table, CSV, JSON and plot, marked `simulated`,
//! and identical from run to run.

use anyhow::Context as _;
use pollsim_drivers::Pattern;

use super::experiment::{
    CompareArgs, ModeSpec, WORK_NS_REASON, WORK_NS_START, insert_axes, log_rates, next_work_ns,
    parse_modes, parse_rate, parse_secs,
};
use super::mlfrr;
use super::model::{
    Axes, CpuPct, Frames, InteractiveDiag, Measured, PollingDiag, Probe, QueueLoad, Results, Run,
};
use super::profile::Costs;
use super::sweep::RECORDED_PARAMS;
use crate::apps::AppKind;
use crate::flood::frames::FlowDist;
use crate::kernel::time::{Hz, Nanos};
use crate::report::InteractiveWindow;
use crate::sim::smp::SmpSim;
use crate::sim::{FlowSpec, ProbeLink, Sim, SimConfig};

/// The flood's maximum rate in the simulation, frames/s: what `pollsim
/// flood --rate max` reaches on the development machine
/// (docs/simulation.md), so that the simulated sweep spans the same loads
/// as the real one.
pub const SIM_FLOOD_MAX_PPS: f64 = 1_100_000.0;
/// Warm-up before each window, s of virtual time: `kern.polling.burst`
/// climbs by one per tick, so from 5 to a `burst_max` of 1000 takes 1 s.
/// (The real sweep keeps one instance per mode, so its burst carries over
/// from the previous rate; each simulated point starts afresh.)
const WARMUP_SECS: f64 = 1.0;

/// Seeds of the MLFRR search's steps start here (grid points use their
/// index), so a step never repeats a grid point's arrivals.
const SEARCH_SEED: usize = 1 << 20;

/// The arrival process of the simulated flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrivalKind {
    /// Evenly spaced frames (a paced flood).
    Constant,
    /// Exponential gaps (many independent senders).
    Poisson,
    /// Poisson bursts of 10 ms at twice the rate, then 10 ms of silence.
    Onoff,
}

impl ArrivalKind {
    /// The pattern with mean rate `pps`.
    pub fn pattern(self, pps: f64) -> Pattern {
        match self {
            ArrivalKind::Constant => Pattern::Constant { pps },
            ArrivalKind::Poisson => Pattern::Poisson { pps },
            ArrivalKind::Onoff => Pattern::OnOff {
                pps: 2.0 * pps,
                on_ns: 10_000_000,
                off_ns: 10_000_000,
            },
        }
    }
}

/// One point to simulate.
#[derive(Clone, Debug)]
pub struct PointSpec<'a> {
    /// The mode.
    pub mode: &'a ModeSpec,
    /// Mean offered rate, frames/s.
    pub pps: f64,
    /// user.udp_sink.work_ns.
    pub work_ns: u64,
    /// Measurement window, s.
    pub secs: f64,
    /// Warm-up, s.
    pub warmup: f64,
    /// Seed of the point.
    pub seed: u64,
    /// The arrival process.
    pub arrivals: ArrivalKind,
    /// Extra knobs for every point (e.g. `hw.sim.*` from calibration).
    pub extra: &'a [String],
    /// The link of the HTTP probe.
    pub probe_link: ProbeLink,
    /// The point of the other axes: `kern.hz`, the reactor backend, the
    /// idle connections, the CPUs.
    pub axes: Axes,
    /// The flood's flows and tap0's RSS.
    pub flows: FlowSpec,
}

fn nanos(secs: f64) -> Nanos {
    Nanos(std::time::Duration::from_secs_f64(secs.max(0.0)).as_nanos() as u64)
}

/// A seed for one point: mixes the sweep's seed, the mode and the rate.
fn point_seed(seed: u64, mode: usize, rate: usize) -> u64 {
    let mut x = seed ^ ((mode as u64) << 32) ^ rate as u64;
    // splitmix64's finaliser: neighbouring inputs give unrelated seeds.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Simulate one point.
pub fn measure(p: &PointSpec<'_>) -> anyhow::Result<Run> {
    let mut sysctls = vec![format!("user.udp_sink.work_ns={}", p.work_ns)];
    sysctls.extend(p.extra.iter().cloned());
    sysctls.push(p.axes.reactor.sysctl());
    sysctls.extend(p.mode.sysctls.iter().cloned());
    let mut apps = vec![AppKind::UdpSink, AppKind::Http, AppKind::Interactive];
    // tcp-echo holds the idle connections, and runs for a mode that sets
    // one of its knobs (`polling:user.tcp_echo.model=threads`).
    let echo_knob = p
        .mode
        .sysctls
        .iter()
        .any(|s| s.starts_with("user.tcp_echo."));
    if p.axes.conns > 0 || echo_knob {
        apps.push(AppKind::TcpEcho);
    }
    let hz = Hz::new(p.axes.hz)?;
    let cfg = SimConfig {
        mode: p.mode.kind(),
        hz,
        pattern: p.arrivals.pattern(p.pps),
        seed: p.seed,
        apps,
        sysctls,
        probe: Some(p.probe_link),
        conns: p.axes.conns,
    };
    let mut sim = SmpSim::new(&cfg, p.axes.cpus, &p.flows)
        .with_context(|| format!("mode {}", p.mode.label))?;
    sim.run_for(warmup(sim.first(), hz, nanos(p.warmup)));
    let a = Window::take(&mut sim);
    let held = a.int(super::sweep::SIM_CONNS_NODE);
    if held < i64::try_from(p.axes.conns).unwrap_or(i64::MAX) {
        anyhow::bail!(
            "--conns {}: {held} synthetic connections after the warm-up ({}), not the \
             {} idle ones asked for",
            p.axes.conns,
            super::sweep::SIM_CONNS_NODE,
            p.axes.conns
        );
    }
    let _ = sim.take_probe_results();
    let burst = run_sampling_burst(&mut sim, nanos(p.secs));
    let b = Window::take(&mut sim);
    let probe = sim.take_probe_results();
    let probe_ms = Probe::from_latencies(probe.latencies_ms, probe.timeouts);
    let mut run = point((&p.mode.label, p.axes), &a, &b, probe_ms, &burst);
    run.tries = 1;
    Ok(run)
}

/// The warm-up of a point: `at_least`, or longer if `kern.polling.burst`
/// needs longer to climb to `burst_max` at one per tick (at 100 Hz the
/// default 150 takes 1.45 s: a point measured before would count a
/// polling engine still ramping up as its plateau). At 1000 Hz and above
/// with the default knobs it is `at_least`.
fn warmup(sim: &Sim, hz: Hz, at_least: Nanos) -> Nanos {
    let int = |n: &str| match sim.mib.get(&sim.k, n) {
        Ok(pollsim_sysctl::Value::Int(v)) => u64::try_from(v).unwrap_or(0),
        _ => 0,
    };
    let ticks = int("kern.polling.burst_max").saturating_sub(int("kern.polling.burst"));
    Nanos(at_least.0.max(ticks.saturating_mul(hz.tick().0)))
}

/// Run `sim` for `span`, reading `kern.polling.burst` (CPU 0's) every 20
/// ms of virtual time, as the real sweep samples it; returns the samples.
fn run_sampling_burst(sim: &mut SmpSim, span: Nanos) -> Vec<u64> {
    let step = Nanos::from_millis(20);
    let end = sim.now() + span;
    let mut out = Vec::new();
    while sim.now() < end {
        let left = Nanos(end.0 - sim.now().0);
        sim.run_for(if left.0 < step.0 { left } else { step });
        let s = sim.first();
        if let Ok(pollsim_sysctl::Value::Int(b)) = s.mib.get(&s.k, "kern.polling.burst") {
            out.push(u64::try_from(b).unwrap_or(0));
        }
    }
    out
}

type Nodes = std::collections::BTreeMap<String, pollsim_sysctl::Value>;

/// The state of a simulated system at one instant: every CPU's MIB.
struct Window {
    at: Nanos,
    arrived: u64,
    /// The nodes of each CPU, CPU 0 first.
    cpus: Vec<Nodes>,
    interactive: Option<crate::report::InteractiveSnapshot>,
    procs: Vec<crate::report::ProcSnapshot>,
}

impl Window {
    /// Every CPU's MIB; the processes and the interactive one as CPU 0
    /// sees them (it runs every app; the others run a udp-sink each).
    fn take(sim: &mut SmpSim) -> Window {
        let cpus: Vec<Nodes> = sim
            .cpus
            .iter()
            .map(|s| {
                s.mib
                    .dump(&s.k, "")
                    .unwrap_or_default()
                    .into_iter()
                    .collect()
            })
            .collect();
        let first: Vec<(String, pollsim_sysctl::Value)> = cpus[0]
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let snap = crate::report::Snapshot::from_dump(sim.now(), &first);
        Window {
            at: sim.now(),
            arrived: sim.arrived(),
            cpus,
            interactive: snap.interactive,
            procs: snap.procs,
        }
    }

    /// A counter summed over the CPUs that have it.
    fn int(&self, name: &str) -> i64 {
        (0..self.cpus.len()).map(|c| self.int_of(c, name)).sum()
    }

    /// A node of CPU `c` (0 if it has none).
    fn int_of(&self, c: usize, name: &str) -> i64 {
        match self.cpus[c].get(name) {
            Some(pollsim_sysctl::Value::Int(v)) => *v,
            _ => 0,
        }
    }

    /// `kern.cp_time` summed over the CPUs: shares of it are of all CPUs.
    fn cp_time(&self) -> [i64; 5] {
        let mut t = [0; 5];
        for c in 0..self.cpus.len() {
            for (i, v) in self.cp_time_of(c).iter().enumerate() {
                t[i] += v;
            }
        }
        t
    }

    /// CPU `c`'s `kern.cp_time`.
    fn cp_time_of(&self, c: usize) -> [i64; 5] {
        let mut t = [0; 5];
        if let Some(pollsim_sysctl::Value::List(l)) = self.cpus[c].get("kern.cp_time") {
            for (i, v) in l.iter().take(5).enumerate() {
                t[i] = crate::sat(*v);
            }
        }
        t
    }

    /// The knobs and state as CPU 0 has them (every CPU is set alike).
    fn first(&self) -> &Nodes {
        &self.cpus[0]
    }
}

/// Each receive queue of tap0 over the window, read from the per-queue
/// nodes of the CPU that serves it (`dev.tap0.queue_rx_<q>.*`; none with
/// one CPU and one queue: the row is the queue). Its delivered rate and
/// shares are its CPU's, shared with the CPU's other queues.
fn queue_loads(a: &Window, b: &Window, secs: f64) -> Vec<QueueLoad> {
    let prefix = format!("dev.{}.queue_rx_", crate::sim::IFNAME);
    let mut out = Vec::new();
    for (c, nodes) in b.cpus.iter().enumerate() {
        let queues = nodes.keys().filter_map(|k| {
            k.strip_prefix(&prefix)?
                .strip_suffix(".rx_packets")?
                .parse::<usize>()
                .ok()
        });
        for q in queues {
            let d = |n: &str| (b.int_of(c, n) - a.int_of(c, n)) as f64 / secs;
            let rx = d(&format!("{prefix}{q}.rx_packets"));
            let missed = d(&format!("{prefix}{q}.rx_missed"));
            out.push(QueueLoad {
                queue: q,
                cpu: Some(c),
                offered_pps: rx + missed,
                received_pps: rx,
                rx_missed_pps: missed,
                delivered_pps: d("user.udp_sink.datagrams"),
                cp_time_pct: CpuPct::between(&a.cp_time_of(c), &b.cp_time_of(c)),
            });
        }
    }
    out.sort_by_key(|l| l.queue);
    out
}

/// A point from two windows, as the real sweep computes it from two MIB
/// snapshots of a running instance. No host diagnostics: virtual time has
/// no host.
fn point(
    (mode, axes): (&str, Axes),
    a: &Window,
    b: &Window,
    probe_ms: Probe,
    burst: &[u64],
) -> Run {
    let secs = b.at.since(a.at).as_secs_f64().max(1e-9);
    let d = |n: &str| b.int(n) - a.int(n);
    let nic = |suffix: &str| {
        [crate::sim::IFNAME, crate::sim::QUIET_IFNAME]
            .iter()
            .map(|n| d(&format!("dev.{n}{suffix}")))
            .sum()
    };
    let mut params = serde_json::Map::new();
    let given = super::modes::knob_names(mode);
    for (k, v) in b.first() {
        let recorded = k.starts_with("hw.sim.")
            || k.starts_with("kern.polling.") && !is_counter(k)
            || RECORDED_PARAMS.contains(&k.as_str())
            || given.contains(k);
        match (recorded, v) {
            (true, pollsim_sysctl::Value::Int(i)) => {
                params.insert(k.clone(), (*i).into());
            }
            (true, pollsim_sysctl::Value::Str(t)) => {
                params.insert(k.clone(), t.as_str().into());
            }
            _ => {}
        }
    }
    let mut run = Run::from_window(Measured {
        mode: mode.to_string(),
        axes,
        params,
        offered_pps: crate::sat(b.arrived - a.arrived) as f64 / secs,
        frames: Frames::from_counters(d, nic),
        cpu: CpuPct::between(&a.cp_time(), &b.cp_time()),
        probe_ms,
        seconds: secs,
        simulated: true,
        host: None,
        polling: Some(PollingDiag::from_counters(d, burst)),
        interactive: a
            .interactive
            .as_ref()
            .zip(b.interactive.as_ref())
            .map(|(a, b)| InteractiveDiag::from_window(&InteractiveWindow::between(a, b))),
        procs: super::model::procs_between(&a.procs, &b.procs, secs),
    });
    run.queues = queue_loads(a, b, secs);
    run
}

/// The knobs among `kern.polling.*` (the rest are counters and state).
fn is_counter(name: &str) -> bool {
    !matches!(
        name.trim_start_matches("kern.polling."),
        "burst_max" | "each_burst" | "user_frac" | "reg_frac" | "idle_poll"
    )
}

/// Calibrate as the real experiment does: polling's capacity at the
/// flood's maximum, raising work_ns until the maximum is at least 4x it.
/// Returns (work_ns, capacity pps).
fn calibrate(
    max_pps: f64,
    fixed: Option<u64>,
    seed: u64,
    arrivals: ArrivalKind,
    probe_link: ProbeLink,
    extra: &[String],
) -> anyhow::Result<(u64, f64)> {
    let polling = parse_modes("polling")?.remove(0);
    let mut work = fixed.unwrap_or(WORK_NS_START);
    loop {
        let run = measure(&PointSpec {
            mode: &polling,
            pps: max_pps,
            work_ns: work,
            secs: 0.5,
            warmup: WARMUP_SECS,
            seed,
            arrivals,
            extra,
            probe_link,
            axes: Axes::default(),
            flows: FlowSpec::default(),
        })?;
        let cap = run.delivered_pps;
        match next_work_ns(work, cap, max_pps, fixed.is_some()) {
            None => return Ok((work, cap)),
            Some(next) => work = next,
        }
    }
}

/// Simulate the points of a real sweep: every real run's mode at the rate
/// it actually offered, with the real sweep's `work_ns` and window, so the
/// two [`Results`] can be compared point by point (`--vs-real`).
pub fn mirror(
    real: &Results,
    args: &CompareArgs,
    costs: &Costs,
    progress: &mut dyn FnMut(&Run),
) -> anyhow::Result<Results> {
    let modes = parse_modes(&args.modes)?;
    let extra = costs.sysctl_lines();
    let work = real
        .meta
        .get("work_ns")
        .and_then(serde_json::Value::as_u64)
        .context("the real results have no work_ns")?;
    let mut specs = Vec::new();
    for (j, r) in real.runs.iter().enumerate() {
        let (i, m) = modes
            .iter()
            .enumerate()
            .find(|(_, m)| m.label == r.mode)
            .with_context(|| format!("mode {} of the real sweep", r.mode))?;
        specs.push(PointSpec {
            mode: m,
            pps: r.offered_pps.max(1.0),
            work_ns: work,
            secs: r.seconds,
            warmup: WARMUP_SECS,
            seed: point_seed(args.seed, i, j),
            arrivals: args.arrivals,
            extra: &extra,
            probe_link: args.probe_link,
            axes: r.axes,
            flows: args.flow_spec(),
        });
    }
    let mut results = Results {
        runs: measure_all(&specs, progress)?,
        ..Results::default()
    };
    results.meta = sim_meta(args, work, 0.0, args.arrivals, costs);
    Ok(results)
}

/// How far the simulation is from the real runs, per mode: relative
/// differences `(sim - real) / real` of the peak delivered rate and of the
/// delivered rate at the highest offered load.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fidelity {
    /// Mode label.
    pub mode: String,
    /// Real and simulated peak delivered rate, pps.
    pub peak_pps: (f64, f64),
    /// Relative difference of the peak.
    pub peak_diff: f64,
    /// Real and simulated delivered rate at the highest offered load, pps.
    pub at_max_pps: (f64, f64),
    /// Relative difference at the highest offered load.
    pub at_max_diff: f64,
    /// Both delivered rates at the highest offered load are under
    /// [`COLLAPSED_FRACTION`] of their peaks: the mode livelocked in both,
    /// and the relative difference of two near-zero rates says nothing.
    pub at_max_collapsed: bool,
    /// Peak and plateau within [`AGREEMENT`] of the real ones (the plateau
    /// counts as agreeing when both collapsed).
    pub agrees: bool,
}

/// The simulation agrees with a real sweep when its peak and its plateau
/// are within this relative difference of the real ones (issue 17: 25 %).
pub const AGREEMENT: f64 = 0.25;
/// A delivered rate under this fraction of its mode's peak has collapsed.
pub const COLLAPSED_FRACTION: f64 = 0.01;

/// Per-mode fidelity of `sim` against `real` (both summarised).
pub fn fidelity(real: &Results, sim: &Results) -> Vec<Fidelity> {
    let rel = super::calibrate::rel_diff;
    let (rs, ss) = (
        super::summary::summarize(&real.runs),
        super::summary::summarize(&sim.runs),
    );
    rs.iter()
        .filter_map(|r| {
            let s = ss.iter().find(|s| s.series() == r.series())?;
            let collapsed = |x: &super::model::Summary| {
                x.delivered_at_max_offered_pps < COLLAPSED_FRACTION * x.peak_delivered_pps
            };
            let peak_diff = rel(s.peak_delivered_pps, r.peak_delivered_pps);
            let at_max_diff = rel(
                s.delivered_at_max_offered_pps,
                r.delivered_at_max_offered_pps,
            );
            let at_max_collapsed = collapsed(r) && collapsed(s);
            Some(Fidelity {
                mode: r.mode.clone(),
                peak_pps: (r.peak_delivered_pps, s.peak_delivered_pps),
                peak_diff,
                at_max_pps: (
                    r.delivered_at_max_offered_pps,
                    s.delivered_at_max_offered_pps,
                ),
                at_max_diff,
                at_max_collapsed,
                agrees: peak_diff.abs() <= AGREEMENT
                    && (at_max_collapsed || at_max_diff.abs() <= AGREEMENT),
            })
        })
        .collect()
}

fn sim_meta(
    args: &CompareArgs,
    work: u64,
    cap: f64,
    arrivals: ArrivalKind,
    costs: &Costs,
) -> serde_json::Map<String, serde_json::Value> {
    let mut meta = serde_json::Map::new();
    meta.insert("clock".into(), "virtual".into());
    meta.insert("seed".into(), args.seed.into());
    meta.insert(
        "arrivals".into(),
        format!("{arrivals:?}").to_lowercase().into(),
    );
    meta.insert("work_ns".into(), work.into());
    meta.insert("work_ns_reason".into(), WORK_NS_REASON.into());
    meta.insert("polling_capacity_pps".into(), cap.round().into());
    meta.insert("flood_max_pps".into(), SIM_FLOOD_MAX_PPS.into());
    meta.insert(
        "flood_max_rule".into(),
        "flood_max_pps per CPU: with the default rates, a point at n CPUs is offered n times the one-CPU rate".into(),
    );
    meta.insert("flows".into(), args.flows.into());
    meta.insert(
        "queues".into(),
        args.queues
            .map_or_else(|| "cpus".into(), serde_json::Value::from),
    );
    meta.insert(
        "flow_dist".into(),
        match args.flow_dist {
            FlowDist::RoundRobin => "rr".to_string(),
            FlowDist::Zipf(s) => format!("zipf:{s}"),
        }
        .into(),
    );
    meta.insert(
        "rss".into(),
        format!(
            "Toeplitz, key {}, {} 128-entry indirection table, queue q on CPU q % cpus",
            args.rss_key
                .builtin_name()
                .map_or_else(|| args.rss_key.to_string(), str::to_string),
            match &args.rss_weight {
                Some(w) => format!("weighted {w:?}"),
                None => "equal".to_string(),
            }
        )
        .into(),
    );
    meta.insert("warmup_seconds".into(), WARMUP_SECS.into());
    meta.insert(
        "warmup_rule".into(),
        "warmup_seconds, or longer: until kern.polling.burst can have climbed to burst_max at one per tick".into(),
    );
    insert_axes(&mut meta, args);
    costs.meta(&mut meta);
    meta
}

/// Run the whole simulated experiment. `progress` gets every point.
pub fn run(
    args: &CompareArgs,
    costs: &Costs,
    progress: &mut dyn FnMut(&Run),
) -> anyhow::Result<Results> {
    let modes = parse_modes(&args.modes)?;
    let extra = costs.sysctl_lines();
    let secs = if args.quick {
        1.0
    } else {
        parse_secs(&args.duration)?
    };
    let arrivals = args.arrivals;
    let max_pps = SIM_FLOOD_MAX_PPS;
    let (work, cap) = calibrate(
        max_pps,
        args.work_ns,
        args.seed,
        arrivals,
        args.probe_link,
        &extra,
    )?;
    let rates: Vec<f64> = if args.rates.is_empty() {
        log_rates(
            (cap / 4.0).max(1000.0),
            max_pps,
            if args.quick { 5 } else { 8 },
        )
        .iter()
        .map(|r| r.parse().unwrap_or(max_pps))
        .collect()
    } else {
        let mut v = Vec::new();
        for r in &args.rates {
            let r = parse_rate(r)?;
            v.push(r.parse().unwrap_or(max_pps));
        }
        v
    };
    // Mode by mode, each over the other axes, rates ascending. A point's
    // seed depends on the mode and the rate only: every point of the other
    // axes sees the same arrivals (common random numbers), and the
    // default point the seeds it always had.
    let axes = args.axes();
    // The default rates are for one CPU: n CPUs are driven over n times
    // them, each count well past its own overload point.
    let scale = |a: Axes| match args.rates.is_empty() {
        true => a.cpus as f64,
        false => 1.0,
    };
    let mut specs = Vec::new();
    for (i, m) in modes.iter().enumerate() {
        for &a in &axes {
            for (j, &pps) in rates.iter().enumerate() {
                specs.push(PointSpec {
                    mode: m,
                    pps: pps * scale(a),
                    work_ns: work,
                    secs,
                    warmup: WARMUP_SECS,
                    seed: point_seed(args.seed, i, j),
                    arrivals,
                    extra: &extra,
                    probe_link: args.probe_link,
                    axes: a,
                    flows: args.flow_spec(),
                });
            }
        }
    }
    let runs = measure_all(&specs, progress)?;
    // The MLFRR search of each series, sequential steps seeded apart from
    // the grid's points.
    let mut searches = Vec::new();
    for (i, m) in modes.iter().enumerate() {
        for &a in &axes {
            let swept: Vec<&Run> = runs
                .iter()
                .filter(|r| r.series() == (m.label.as_str(), a))
                .collect();
            let Some(b) = mlfrr::bracket(&swept).filter(|_| args.mlfrr_steps > 0) else {
                continue;
            };
            let mut step = 0;
            let search = mlfrr::bisect(b, args.mlfrr_steps, |pps| {
                step += 1;
                let run = measure(&PointSpec {
                    mode: m,
                    pps,
                    work_ns: work,
                    secs,
                    warmup: WARMUP_SECS,
                    seed: point_seed(args.seed, i, SEARCH_SEED + step),
                    arrivals,
                    extra: &extra,
                    probe_link: args.probe_link,
                    axes: a,
                    flows: args.flow_spec(),
                })?;
                progress(&run);
                Ok(Some(run))
            })?;
            searches.push(((m.label.clone(), a), search));
        }
    }
    let mut results = Results {
        summary: super::summary::summarize(&runs),
        runs,
        ..Results::default()
    };
    super::summary::apply_searches(&mut results.summary, &searches);
    results.meta = sim_meta(args, work, cap, arrivals, costs);
    results.meta.insert("seconds_per_point".into(), secs.into());
    Ok(results)
}

/// Simulate every point, on as many threads as there are CPUs (each point
/// is an independent, seeded system, so the results do not depend on the
/// order or the threads). `progress` sees the points as they finish; the
/// runs come back in the order of `specs`.
pub fn measure_all(
    specs: &[PointSpec<'_>],
    progress: &mut dyn FnMut(&Run),
) -> anyhow::Result<Vec<Run>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(specs.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut runs: Vec<Option<Run>> = vec![None; specs.len()];
    std::thread::scope(|s| -> anyhow::Result<()> {
        for _ in 0..threads {
            let (tx, next) = (tx.clone(), &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    if tx.send((i, measure(spec))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, run) in rx {
            let run = run?;
            progress(&run);
            runs[i] = Some(run);
        }
        Ok(())
    })?;
    Ok(runs.into_iter().flatten().collect())
}

#[cfg(test)]
mod fidelity_tests {
    use super::*;

    fn runs(mode: &str, pts: &[(f64, f64)]) -> Vec<Run> {
        pts.iter()
            .map(|&(o, d)| Run {
                mode: mode.into(),
                offered_pps: o,
                received_pps: o,
                delivered_pps: d,
                ..Run::default()
            })
            .collect()
    }

    #[test]
    fn fidelity_says_when_the_model_agrees() {
        let real = Results {
            runs: [
                runs("interrupt", &[(100e3, 100e3), (200e3, 140e3), (1e6, 200.0)]),
                runs("polling", &[(100e3, 100e3), (1e6, 150e3)]),
            ]
            .concat(),
            ..Results::default()
        };
        let sim = Results {
            runs: [
                // Peak +20 %, both collapsed at the top: agrees.
                runs("interrupt", &[(100e3, 100e3), (200e3, 168e3), (1e6, 0.0)]),
                // Plateau -30 %: differs.
                runs("polling", &[(100e3, 100e3), (1e6, 105e3)]),
            ]
            .concat(),
            ..Results::default()
        };
        let f = fidelity(&real, &sim);
        assert_eq!(f.len(), 2);
        assert!((f[0].peak_diff - 0.2).abs() < 1e-9, "{f:?}");
        assert!(f[0].at_max_collapsed && f[0].agrees, "{f:?}");
        assert!(!f[1].at_max_collapsed && !f[1].agrees, "{f:?}");
        assert!((f[1].at_max_diff + 0.3).abs() < 1e-9, "{f:?}");
    }
}
