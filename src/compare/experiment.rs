//! The experiment of `pollsim compare`: calibrate, then sweep every mode
//! over the offered rates, and collect [`Results`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::hostcheck::HostCheck;
use super::mlfrr;
use super::model::{Axes, Reactor, Results, Run, Search};
use super::sweep::{Instance, measure};
use super::trials::{Plan, measure_point};

/// The default user work per datagram to start calibrating from (ns).
pub const WORK_NS_START: u64 = 2_000;
/// The largest work_ns calibration will go to.
pub const WORK_NS_MAX: u64 = 1_000_000;

/// Arguments of `pollsim compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Modes to compare: interrupt, polling, or variants such as
    /// polling:user_frac=20,burst_max=300 (comma-separated list; use ';' between
    /// modes when variants have commas), or the presets paper, all and busy.
    #[arg(long, default_value = "interrupt,polling")]
    pub modes: String,
    /// Offered rates (pps, k/M suffixes, or max), comma separated. Default:
    /// log-spaced from a quarter of the measured capacity to the flood's maximum.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<String>,
    /// Measurement window per point, e.g. 3s or 1500ms.
    #[arg(long, default_value = "3s")]
    pub duration: String,
    /// Output directory (default ./pollsim-results/<timestamp>).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Reduced sweep (5 rates x 1 s per mode) for a first look and for CI.
    #[arg(long)]
    pub quick: bool,
    /// Print the JSON results on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// User work per datagram (ns); default: calibrated so that the highest
    /// offered rate is at least 4x polling mode's capacity.
    #[arg(long)]
    pub work_ns: Option<u64>,
    /// Run the virtual-time simulation instead of the real tap (no root
    /// needed; the default without root).
    #[arg(long)]
    pub sim: bool,
    /// With --sim, as root: run the real sweep too and report, per mode, how
    /// far the simulation is from it.
    #[arg(long, requires = "sim")]
    pub vs_real: bool,
    /// Seed of the simulation (arrivals, TCP, probe): same seed and knobs,
    /// identical results.json.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Arrival process of the simulated flood.
    #[arg(long, value_enum, default_value = "poisson")]
    pub arrivals: super::sim::ArrivalKind,
    /// Trials per point (real clock): the row is their median, with
    /// min-max. The simulation is deterministic and measures each point once.
    #[arg(long, default_value_t = 3)]
    pub trials: usize,
    /// A trial in which the host took more than this percent of pollsim's
    /// CPU (steal or stalls) is discarded and measured again, at most twice
    /// as many tries as trials.
    #[arg(long, default_value_t = 5.0)]
    pub max_steal: f64,
    /// The link of the HTTP probe: `quiet` (tap1, which the flood does not
    /// reach: does the machine still answer?) or `flooded` (tap0, where the
    /// probe's frames share the flood's full queue).
    #[arg(long, value_enum, default_value = "quiet")]
    pub probe_link: super::sweep::ProbeLink,
    /// Steps of each mode's MLFRR search (bisection between the last
    /// loss-free and the first lossy point; 0: no search).
    #[arg(long, default_value_t = mlfrr::MAX_STEPS)]
    pub mlfrr_steps: usize,
    /// With --sim: the hardware profile whose hw.sim costs to charge (a
    /// file `pollsim calibrate` wrote, or `builtin`). Default:
    /// $POLLSIM_PROFILE, else ~/.config/pollsim/hw.toml if it exists, else
    /// the built-in reference costs.
    #[arg(long, value_name = "FILE|builtin")]
    pub profile: Option<String>,
    /// Clock interrupts per second to sweep (kern.hz, 100..10000), comma
    /// separated: each mode runs at each (`pollsim run --hz H`).
    #[arg(long, value_delimiter = ',', default_value = "1000", value_parser = parse_hz)]
    pub hz: Vec<u32>,
    /// Reactor backends to sweep, comma separated: ready (epoll-like,
    /// kern.reactor.backend=0) and scan (select-like, 1).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ready")]
    pub reactor: Vec<Reactor>,
    /// Idle TCP connections to hold open to tcp-echo during each point,
    /// comma separated (0..=100000 each; more than 0 adds tcp-echo to the
    /// instance's apps): many watched sockets, few ready.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub conns: Vec<usize>,
    /// CPUs to sweep, comma separated (1..=64): tap0 gets one receive
    /// queue per CPU, spread over by the flood's flows. With --sim RSS
    /// spreads them and the default offered rates scale with the count; on
    /// the real tap each CPU is a pinned kernel thread (`run --cpus N
    /// --queues N`), and counts above the host's CPUs are skipped.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub cpus: Vec<usize>,
    /// Distinct flows of the flood (1..=65536): what RSS (or, on the real
    /// tap, Linux's flow hash) can spread. As `pollsim flood --flows`.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub flows: usize,
    /// How the flows share the frames: rr or zipf:S (as `pollsim flood
    /// --flow-dist`).
    #[arg(long, default_value = "rr", value_parser = crate::flood::frames::parse_flow_dist, value_name = "rr|zipf:S")]
    pub flow_dist: crate::flood::frames::FlowDist,
    /// The Toeplitz key of tap0's RSS (--sim, several CPUs): microsoft,
    /// symmetric, or 40 bytes in hex.
    #[arg(long, default_value = "microsoft", value_parser = crate::cli::parse_rss_key, value_name = "KEY")]
    pub rss_key: pollsim_drivers::RssKey,
    /// Indirection-table weights, one per CPU, as `ethtool -X weight`
    /// (--sim; every --cpus count must have that many). Default: equal.
    #[arg(long, value_delimiter = ',', value_name = "W0,W1,...")]
    pub rss_weight: Option<Vec<u32>>,
    /// Receive queues of tap0 at every --cpus count (1..=256, --sim only);
    /// default: one per CPU at each count. Queue q is served by CPU q %
    /// cpus (DragonFly's ring map).
    #[arg(long, value_name = "M")]
    pub queues: Option<usize>,
}

/// Parse a `--hz` value: `kern.hz`'s range.
fn parse_hz(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    crate::kernel::time::Hz::new(v)
        .map(|h| h.get())
        .map_err(|e| e.to_string())
}

/// The most idle connections a point of `--conns` may hold: what `run
/// --conns` takes (tcp-echo's largest `max_conns` less its headroom).
pub const MAX_CONNS: usize = crate::conns::CONNS_MAX;

impl CompareArgs {
    /// Refuse bad arguments before anything is set up: unknown modes or
    /// knobs, rates that are not rates, a duration out of range.
    pub fn check(&self) -> anyhow::Result<()> {
        parse_modes(&self.modes)?;
        for r in &self.rates {
            parse_rate(r)?;
        }
        parse_secs(&self.duration)?;
        if !(1..=MAX_TRIALS).contains(&self.trials) {
            bail!(
                "--trials {}: must be between 1 and {MAX_TRIALS}",
                self.trials
            );
        }
        if self.mlfrr_steps > MAX_MLFRR_STEPS {
            bail!(
                "--mlfrr-steps {}: at most {MAX_MLFRR_STEPS}",
                self.mlfrr_steps
            );
        }
        if !(0.0..=100.0).contains(&self.max_steal) {
            bail!("--max-steal {}: must be between 0 and 100", self.max_steal);
        }
        self.check_axes()
    }

    /// Refuse axes that cannot be swept: a value given twice, too many
    /// connections, a mode that sets the reactor backend itself (its rows
    /// would say a backend that did not run), and axes with `--vs-real`
    /// (which compares one configuration, real against simulated).
    fn check_axes(&self) -> anyhow::Result<()> {
        fn once<T: PartialEq>(
            flag: &str,
            v: &[T],
            show: impl Fn(&T) -> String,
        ) -> anyhow::Result<()> {
            for (i, x) in v.iter().enumerate() {
                if v[..i].contains(x) {
                    bail!("--{flag}: {} is given twice", show(x));
                }
            }
            Ok(())
        }
        once("hz", &self.hz, u32::to_string)?;
        once("reactor", &self.reactor, |r| r.name().to_string())?;
        once("conns", &self.conns, usize::to_string)?;
        if let Some(n) = self.conns.iter().find(|&&n| n > MAX_CONNS) {
            bail!("--conns {n}: at most {MAX_CONNS}");
        }
        once("cpus", &self.cpus, usize::to_string)?;
        let max_cpus = crate::sim::smp::MAX_CPUS;
        if let Some(n) = self.cpus.iter().find(|&&n| !(1..=max_cpus).contains(&n)) {
            bail!("--cpus {n}: between 1 and {max_cpus}");
        }
        let max_flows = crate::flood::frames::MAX_FLOWS;
        if !(1..=max_flows).contains(&self.flows) {
            bail!("--flows {}: between 1 and {max_flows}", self.flows);
        }
        let max_queues = crate::queues::MAX_QUEUES;
        if let Some(m) = self.queues
            && !(1..=max_queues).contains(&m)
        {
            bail!("--queues {m}: between 1 and {max_queues}");
        }
        if let Some(w) = &self.rss_weight {
            match self.queues {
                Some(m) if m != w.len() => bail!(
                    "--rss-weight gives {} weights for --queues {m}: one weight per queue",
                    w.len()
                ),
                Some(_) => {}
                None => {
                    if let Some(n) = self.cpus.iter().find(|&&n| n != w.len()) {
                        bail!(
                            "--rss-weight gives {} weights, --cpus {n} has {n} queues (one per \
                             CPU without --queues): one weight per queue",
                            w.len()
                        );
                    }
                }
            }
        }
        if !self.sim && self.queues.is_some() {
            bail!(
                "--queues sets the simulated NIC's queue count (add --sim): the real sweep runs                  one queue of tap0 per CPU"
            );
        }
        if !self.sim
            && (self.rss_weight.is_some() || self.rss_key != pollsim_drivers::RssKey::MICROSOFT)
        {
            bail!(
                "--rss-key and --rss-weight set the simulated NIC's RSS (add --sim): on the real \
                 tap Linux's tun picks each frame's queue by its own flow hash, which has no key \
                 or table to set"
            );
        }
        if let Some(m) = parse_modes(&self.modes)?.iter().find(|m| {
            m.sysctls
                .iter()
                .any(|s| s.starts_with("kern.reactor.backend="))
        }) {
            bail!(
                "mode '{}' sets kern.reactor.backend, which --reactor sweeps: give --reactor scan or ready instead",
                m.label
            );
        }
        if self.vs_real
            && (self.axes() != [Axes::default()] || self.flows != 1 || self.queues.is_some())
        {
            bail!(
                "--vs-real compares one configuration (1000 Hz, ready, no idle connections, \
                 one CPU, one queue, one flow): it does not take --hz, --reactor, --conns, \
                 --cpus, --queues or --flows"
            );
        }
        Ok(())
    }

    /// The points of the other axes every mode is swept at: the product
    /// hz x reactor x conns x cpus, in that order (cpus varying fastest).
    pub fn axes(&self) -> Vec<Axes> {
        let mut out = Vec::new();
        for &hz in &self.hz {
            for &reactor in &self.reactor {
                for &conns in &self.conns {
                    for &cpus in &self.cpus {
                        out.push(Axes {
                            hz,
                            reactor,
                            conns,
                            cpus,
                        });
                    }
                }
            }
        }
        out
    }

    /// The flood's flows and tap0's RSS, as the flags give them.
    pub fn flow_spec(&self) -> crate::sim::FlowSpec {
        crate::sim::FlowSpec {
            flows: self.flows,
            dist: self.flow_dist,
            key: self.rss_key,
            weights: self.rss_weight.clone(),
            queues: self.queues,
        }
    }

    /// The flood's flows on the real tap.
    pub fn flood_flows(&self) -> super::sweep::FloodFlows {
        super::sweep::FloodFlows {
            flows: self.flows,
            dist: self.flow_dist,
        }
    }

    /// How each point is measured.
    pub fn plan(&self) -> Plan {
        Plan {
            trials: self.trials,
            max_steal_pct: self.max_steal,
        }
    }
}

/// Why `work_ns` is what it is, in results' `meta`.
pub const WORK_NS_REASON: &str = "chosen so that the highest offered rate is at least 4x polling \
mode's capacity, calibrated once at 1000 Hz, ready, no idle connections: every point of the \
--hz, --reactor and --conns axes is driven over the same offered rates";

/// The swept axes into results' `meta` (`"axes": {"hz": [...],
/// "reactor": [...], "conns": [...]}`).
pub fn insert_axes(meta: &mut serde_json::Map<String, serde_json::Value>, args: &CompareArgs) {
    meta.insert(
        "axes".into(),
        serde_json::json!({
            "hz": args.hz,
            "reactor": args.reactor,
            "conns": args.conns,
            "cpus": args.cpus,
        }),
    );
}

/// The most `--trials`.
pub const MAX_TRIALS: usize = 20;
/// The most `--mlfrr-steps`.
pub const MAX_MLFRR_STEPS: usize = 10;

/// What the experiment reports while it runs.
pub enum Event<'a> {
    /// The host check before the sweep.
    Host(&'a HostCheck),
    /// The number of points to measure (sweep points and search steps at
    /// most), sent at the start and whenever it changes.
    Planned(usize),
    /// A sweep point, after its trials.
    Point(&'a Run),
    /// A step of an MLFRR search, after its trials.
    Step(&'a Run),
}

pub use super::modes::{ModeSpec, parse_modes};

/// Parse a rate: `max`, `250000`, `250k`, `1.2M`.
pub fn parse_rate(text: &str) -> anyhow::Result<String> {
    let t = text.trim();
    if t == "max" {
        return Ok(t.to_string());
    }
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('M' | 'm') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("rate '{t}': not a number"))?;
    if v.is_nan() || v * mult < 1.0 {
        bail!("rate '{t}': must be at least 1 pps");
    }
    Ok(format!("{}", (v * mult).round()))
}

/// Parse a duration such as `3s`, `1500ms`.
pub fn parse_secs(text: &str) -> anyhow::Result<f64> {
    let d: Duration =
        humantime::parse_duration(text).map_err(|e| anyhow::anyhow!("duration '{text}': {e}"))?;
    if d.is_zero() || d > Duration::from_secs(600) {
        bail!("duration '{text}': must be between 1 ms and 600 s");
    }
    Ok(d.as_secs_f64())
}

/// `n` rates spaced geometrically from `lo` to `hi` pps, the last one `max`.
pub fn log_rates(lo: f64, hi: f64, n: usize) -> Vec<String> {
    let n = n.max(2);
    let mut v: Vec<String> = (0..n - 1)
        .map(|i| {
            let r = lo * (hi / lo).powf(i as f64 / (n - 1) as f64);
            format!("{}", r.round().max(1.0))
        })
        .collect();
    v.push("max".to_string());
    v
}

/// Calibrate: polling mode's capacity at the flood's maximum rate, raising
/// work_ns until the flood offers at least 4x that capacity; each
/// measurement in trials as a point (medians; noisy trials re-run). Returns
/// (work_ns, the last calibration row: capacity = its delivered rate,
/// flood max = its offered rate).
fn calibrate(
    secs: f64,
    fixed: Option<u64>,
    name: &str,
    plan: &Plan,
    load: (super::sweep::ProbeLink, super::sweep::FloodFlows),
    stopped: impl Fn() -> bool + Copy,
) -> anyhow::Result<(u64, Run)> {
    let mut work = fixed.unwrap_or(WORK_NS_START);
    loop {
        if stopped() {
            bail!("interrupted while calibrating: nothing measured yet");
        }
        let mut inst =
            Instance::start(name, "polling", &[format!("user.udp_sink.work_ns={work}")])?;
        let run = measure_point(plan, stopped, || {
            measure(&mut inst, "calibration", "max", (0.5, secs), load)
        });
        inst.stop();
        if stopped() {
            bail!("interrupted while calibrating: nothing measured yet");
        }
        let run = run?.context("calibration made no trial")?;
        match next_work_ns(work, run.delivered_pps, run.offered_pps, fixed.is_some()) {
            None => return Ok((work, run)),
            Some(next) => work = next,
        }
    }
}

/// The calibration rule of the real and the simulated sweep: `None` once
/// `work_ns` is settled (given by the user, the flood's maximum `max` is at
/// least 4x polling's capacity `cap`, or the limit is reached), else the
/// larger `work_ns` to try next.
pub fn next_work_ns(work: u64, cap: f64, max: f64, fixed: bool) -> Option<u64> {
    if fixed || max >= 4.0 * cap || work >= WORK_NS_MAX {
        return None;
    }
    let factor = (4.0 * cap / max.max(1.0) * 1.25).ceil().max(2.0);
    #[expect(clippy::cast_sign_loss, reason = "factor is finite and at least 2")]
    let factor = factor as u64;
    Some(work.saturating_mul(factor))
}

/// Run the whole experiment: the host check, calibration, then per mode
/// the sweep and the MLFRR search. `progress` hears of each step.
pub fn run(
    args: &CompareArgs,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<Results> {
    let modes = parse_modes(&args.modes)?;
    let (secs, warmup) = if args.quick {
        (1.0, 0.5)
    } else {
        (parse_secs(&args.duration)?, 1.0)
    };
    let host_cpus = super::sweep::cpu_count();
    let (cpus, skipped) = super::cpus::cap(&args.cpus, host_cpus);
    if let Some(line) = super::cpus::skip_line(&skipped, host_cpus) {
        eprintln!("{line}");
    }
    if cpus.is_empty() {
        bail!(
            "--cpus: no count this host can run on the real tap ({host_cpus} CPUs): {}",
            super::cpus::SKIP_REASON
        );
    }
    let base = format!("compare-{}", std::process::id());
    let stopped = || stop.load(Ordering::Relaxed);
    let check = HostCheck::measure(&format!("{base}-host"), args.max_steal)?;
    progress(Event::Host(&check));
    let plan = args.plan();
    let link = args.probe_link;
    let load = (link, args.flood_flows());
    let (work, cal) = calibrate(
        secs.min(1.5),
        args.work_ns,
        &format!("{base}-cal"),
        &plan,
        load,
        stopped,
    )?;
    let (cap, max) = (cal.delivered_pps, cal.offered_pps);
    let rates: Vec<String> = if args.rates.is_empty() {
        log_rates((cap / 4.0).max(1000.0), max, if args.quick { 5 } else { 8 })
    } else {
        args.rates
            .iter()
            .map(|r| parse_rate(r))
            .collect::<anyhow::Result<_>>()?
    };
    let steps = args.mlfrr_steps;
    let axes: Vec<Axes> = args
        .axes()
        .into_iter()
        .filter(|a| cpus.contains(&a.cpus))
        .collect();
    let mut planned = modes.len() * axes.len() * (rates.len() + steps);
    progress(Event::Planned(planned));
    let mut results = Results::default();
    let mut searches = Vec::new();
    let mut said_shared = false;
    let series = modes.iter().flat_map(|m| axes.iter().map(move |&a| (m, a)));
    for (i, (m, a)) in series.enumerate() {
        if stopped() {
            break;
        }
        let mut sysctls = vec![format!("user.udp_sink.work_ns={work}")];
        sysctls.extend(m.sysctls.iter().cloned());
        if a.cpus >= host_cpus && host_cpus > 1 && !said_shared {
            said_shared = true;
            eprintln!("pollsim compare: {}", super::cpus::SHARED_FLOOD);
        }
        let mut inst = Instance::start_at(&format!("{base}-{i}"), &m.base, &sysctls, Some(a))?;
        let mut point = |rate: &str| {
            measure_point(&plan, stopped, || {
                let run = measure(&mut inst, &m.label, rate, (warmup, secs), load);
                std::thread::sleep(Duration::from_millis(300)); // queues drain
                run
            })
        };
        let first = results.runs.len();
        for rate in &rates {
            let Some(run) = point(rate)? else { break };
            progress(Event::Point(&run));
            results.runs.push(run);
        }
        let swept: Vec<&Run> = results.runs[first..].iter().collect();
        let mut search = Search::default();
        if let Some(b) = mlfrr::bracket(&swept).filter(|_| steps > 0 && !stopped()) {
            search = mlfrr::bisect(b, steps, |pps| {
                let run = point(&format!("{pps}"))?;
                if let Some(r) = &run {
                    progress(Event::Step(r));
                }
                Ok(run)
            })?;
            searches.push(((m.label.clone(), a), search.clone()));
        }
        planned -= steps - search.steps.len();
        progress(Event::Planned(planned));
        inst.stop();
    }
    results.summary = super::summary::summarize(&results.runs);
    super::summary::apply_searches(&mut results.summary, &searches);
    let meta = &mut results.meta;
    if stopped() {
        meta.insert("interrupted".into(), true.into());
    }
    meta.insert("host".into(), serde_json::to_value(&check)?);
    meta.insert("trials".into(), plan.trials.into());
    meta.insert("max_steal_pct".into(), plan.max_steal_pct.into());
    meta.insert("idle".into(), super::sweep::IDLE.into());
    meta.insert("work_ns".into(), work.into());
    meta.insert("probe_link".into(), link.name().into());
    meta.insert("work_ns_reason".into(), WORK_NS_REASON.into());
    insert_axes(meta, args);
    if args.cpus != [1] || args.flood_flows() != super::sweep::FloodFlows::default() {
        super::cpus::insert_meta(meta, args, (&cpus, &skipped), host_cpus);
    }
    meta.insert("polling_capacity_pps".into(), cap.round().into());
    meta.insert("flood_max_pps".into(), max.round().into());
    meta.insert("calibration_noisy".into(), cal.noisy.into());
    meta.insert("seconds_per_point".into(), secs.into());
    meta.insert("warmup_seconds".into(), warmup.into());
    meta.insert("machine".into(), machine().into());
    meta.insert(
        "date".into(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .into(),
    );
    Ok(results)
}

/// A one-line description of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = super::sweep::cpu_count();
    let kernel = nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            )
        })
        .unwrap_or_default();
    format!("{n} x {cpu}, {kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_variants_parse() {
        let m = parse_modes("interrupt,polling:user_frac=20,burst_max=300,polling").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].label, "polling:user_frac=20,burst_max=300");
        assert_eq!(
            m[1].sysctls,
            ["kern.polling.user_frac=20", "kern.polling.burst_max=300"]
        );
        assert_eq!(m[2].base, "polling");
        assert!(parse_modes("bsd").is_err());
        let m = parse_modes("polling:work_ns=5000;interrupt").unwrap();
        assert_eq!(m[0].sysctls, ["user.udp_sink.work_ns=5000"]);
    }

    #[test]
    fn work_ns_grows_until_the_flood_offers_four_times_the_capacity() {
        assert_eq!(next_work_ns(2000, 150e3, 1.1e6, false), None, "already 7x");
        // 4 x 500k / 1.1M x 1.25 = 2.27, rounded up: x3.
        assert_eq!(next_work_ns(2000, 500e3, 1.1e6, false), Some(6000));
        assert_eq!(next_work_ns(2000, 1e6, 1.1e6, false), Some(10_000), "x5");
        assert_eq!(
            next_work_ns(2000, 500e3, 1.1e6, true),
            None,
            "--work-ns given"
        );
        assert_eq!(next_work_ns(WORK_NS_MAX, 500e3, 1.1e6, false), None);
    }

    #[test]
    fn rates_parse_and_space() {
        assert_eq!(parse_rate("250k").unwrap(), "250000");
        assert_eq!(parse_rate("1.5M").unwrap(), "1500000");
        assert_eq!(parse_rate("max").unwrap(), "max");
        assert!(parse_rate("0").is_err() && parse_rate("fast").is_err());
        let r = log_rates(1000.0, 16000.0, 5);
        assert_eq!(r, ["1000", "2000", "4000", "8000", "max"]);
    }
}
