//! `pollsim calibrate`: measure the `hw.sim.*` costs of this machine (see
//! `compare::calibrate`), as root, in a private network namespace: the
//! micro-measurements, the in-situ fit to a real quick sweep, then a
//! refinement of `intr_cost_ns` and `rx_cost_ns` against that sweep's
//! interrupt-mode peak and polling plateau; print them as sysctl lines and
//! write them as the hardware profile (`compare::profile`) that every
//! `--sim` command then loads.

use std::time::Duration;

use anyhow::bail;
use pollsim_drivers::{Nic, TapNic};

use crate::compare::calibrate::{
    Figure, ROUNDS, Refined, fit, median, proto_ns, refine, sink, timed,
};
use crate::compare::experiment::{self, CompareArgs, Event};
use crate::compare::model::Results;
use crate::compare::profile::{Costs, HostInfo, Profile, default_path};
use crate::compare::sim::ArrivalKind;
use crate::compare::{sim, sweep};
use crate::kernel::clock::Clock;
use crate::kernel::cost::{CostKnob, CostModel};
use crate::kernel::time::Hz;
use crate::lab::udp_blast;
use crate::rt::clock::{RealClock, TickTimer};
use crate::rt::os::Selector;

/// Frames per rx batch (the tap's queue holds 1000).
const BATCH: u64 = 500;
/// Single-frame interrupts timed per round.
const SINGLES: usize = 100;

/// Trials per point of the calibration's real sweep (medians).
const TRIALS: usize = 3;

/// Arguments of `pollsim calibrate`.
#[derive(clap::Args, Debug, Clone)]
pub struct CalibrateArgs {
    /// Where to write the profile (default: ~/.config/pollsim/hw.toml, or
    /// $XDG_CONFIG_HOME/pollsim/hw.toml).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<std::path::PathBuf>,
    /// Print the costs only; write no profile.
    #[arg(long)]
    pub no_write: bool,
}

/// Entry point of `pollsim calibrate`.
pub fn main(args: &CalibrateArgs) -> anyhow::Result<()> {
    if !crate::lab::is_root() {
        bail!("calibrate needs root: it measures the real tap path in a private network namespace");
    }
    let path = match (&args.profile, args.no_write) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => Some(default_path().ok_or_else(|| {
            anyhow::anyhow!("neither $XDG_CONFIG_HOME nor $HOME is set: give --profile FILE")
        })?),
    };
    sweep::enter_lab()?;
    let mut m = isolated()?;
    let isolated = m;
    println!("# isolated (micro-measured, medians of {ROUNDS}+ rounds):");
    for line in m.sysctl_lines() {
        println!("#   {line}");
    }
    eprintln!("pollsim calibrate: now a real quick sweep, for the in-situ per-frame costs...");
    let (real, steal) = real_sweep_fit(&mut m)?;
    println!("# in situ (rx, proto, intr fitted to a real quick sweep's CPU shares):");
    for line in m.sysctl_lines() {
        println!("#   {line}");
    }
    eprintln!("pollsim calibrate: refining against the same sweep on virtual time...");
    let mut simulate = |points: &Results, cand: &CostModel| {
        let args = sweep_args();
        sim::mirror(points, &args, &Costs::Candidate(*cand), &mut |_| {})
    };
    for (mode, figure, knob) in [
        ("interrupt", Figure::Peak, CostKnob::Intr),
        ("polling", Figure::AtMax, CostKnob::Rx),
    ] {
        let r = refine(&real, mode, figure, knob, &mut m, &mut simulate)?;
        println!("# {}", refined_line(mode, figure, &r));
    }
    println!("# refined (what --sim charges):");
    for line in m.sysctl_lines() {
        println!("{line}");
    }
    let Some(path) = path else { return Ok(()) };
    let profile = Profile {
        host: HostInfo::this_host(steal),
        costs: m,
        isolated: Some(isolated),
    };
    profile.save(&path)?;
    eprintln!(
        "pollsim calibrate: wrote {} (host steal {:.1}% during the sweep); every --sim command now loads it (--profile builtin for the reference costs)",
        path.display(),
        steal
    );
    Ok(())
}

/// `# interrupt peak: hw.sim.intr_cost_ns 1369 -> 1520 (simulated 140.1k vs real 139.3k, +0.6%)`.
fn refined_line(mode: &str, figure: Figure, r: &Refined) -> String {
    use crate::compare::output::human;
    format!(
        "{mode} {}: {} {} -> {} (simulated {} vs real {}, {:+.1}%)",
        match figure {
            Figure::Peak => "peak",
            Figure::AtMax => "plateau",
        },
        r.knob.name(),
        r.from_ns,
        r.to_ns,
        human(r.sim_pps),
        human(r.real_pps),
        crate::compare::calibrate::rel_diff(r.sim_pps, r.real_pps) * 100.0
    )
}

/// The median of `ROUNDS` timings of `n` calls of `f`, per call.
fn per_call(n: u32, mut f: impl FnMut()) -> u64 {
    median(
        (0..ROUNDS)
            .map(|_| timed(u64::from(n), || (0..n).for_each(|_| f())))
            .collect(),
    )
}

/// Every cost micro-measured on its own.
fn isolated() -> anyhow::Result<CostModel> {
    let proto = proto_ns();
    let mut nic = TapNic::open("tap0", sweep::MAC)?;
    let mut sel = Selector::new()?;
    sel.add_irq(nic.irq_fd(), 0)?;
    nic.set_intr_enabled(true);
    let rx = rx_ns(&mut nic)?;
    let intr = intr_rx_ns(&mut nic, &mut sel)?.saturating_sub(rx);
    while nic.rx(1024, &mut |_| {}) > 0 {}
    let sched = per_call(100, || {
        let _ = sel.pending_irqs();
    });
    let status = per_call(20, || {
        let _ = nic.check_status();
    });
    drop(nic);
    let mut m = CostModel {
        intr_cost_ns: intr,
        rx_cost_ns: rx,
        proto_cost_ns: proto,
        tick_cost_ns: tick_ns()?,
        status_cost_ns: status,
        sched_cost_ns: sched,
        ..CostModel::default()
    };
    // The reactor's costs are pollsim's own code, measured in memory.
    crate::bench::reactor::costs().apply(&mut m);
    Ok(m)
}

/// A tap read per frame: batches a kernel UDP socket put in the queue.
fn rx_ns(nic: &mut TapNic) -> anyhow::Result<u64> {
    let drain = |nic: &mut TapNic| while nic.rx(1024, &mut |_| {}) > 0 {};
    drain(nic);
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let sent = udp_blast(sink(), 18, BATCH, None, Duration::from_secs(1))?.sent;
        std::thread::sleep(Duration::from_millis(2));
        rounds.push(timed(sent, || {
            nic.rx(usize::try_from(sent).unwrap_or(0), &mut |_| {});
        }));
        drain(nic);
    }
    Ok(median(rounds))
}

/// An interrupt around one frame: epoll finds the tap readable, the ISR
/// reads the frame and the empty read that ends its drain.
fn intr_rx_ns(nic: &mut TapNic, sel: &mut Selector) -> anyhow::Result<u64> {
    let mut singles = Vec::new();
    for _ in 0..ROUNDS * SINGLES / 10 {
        udp_blast(sink(), 18, 1, None, Duration::from_secs(1))?;
        std::thread::sleep(Duration::from_micros(200));
        singles.push(timed(1, || {
            if sel.pending_irqs() != 0 {
                nic.rx(256, &mut |_| {});
            }
        }));
    }
    Ok(median(singles))
}

/// A clock tick: epoll finds the timerfd, its read.
fn tick_ns() -> anyhow::Result<u64> {
    let clock = RealClock::new();
    let mut timer = TickTimer::start(Hz::DEFAULT, clock.now())?;
    timer.arm(true, &clock)?;
    let mut sel = Selector::new()?;
    sel.add_irq(std::os::fd::AsFd::as_fd(&timer), 0)?;
    let mut ticks = Vec::new();
    for _ in 0..ROUNDS * SINGLES / 10 {
        std::thread::sleep(Duration::from_millis(1));
        ticks.push(timed(1, || {
            if sel.pending_irqs() != 0 {
                timer.take_expired(clock.now());
            }
        }));
    }
    Ok(median(ticks))
}

/// The calibration's quick sweep of interrupt and polling.
fn sweep_args() -> CompareArgs {
    CompareArgs {
        modes: "interrupt,polling".into(),
        rates: Vec::new(),
        duration: "1s".into(),
        out: None,
        quick: true,
        json: false,
        work_ns: None,
        sim: false,
        probe_link: crate::compare::sweep::ProbeLink::default(),
        vs_real: false,
        seed: 1,
        arrivals: ArrivalKind::Poisson,
        trials: TRIALS,
        max_steal: 5.0,
        mlfrr_steps: 0,
        profile: None,
        hz: vec![crate::kernel::time::Hz::DEFAULT.get()],
        reactor: vec![crate::compare::model::Reactor::Ready],
        conns: vec![0],
        cpus: vec![1],
        flows: 1,
        flow_dist: crate::flood::frames::FlowDist::RoundRobin,
        rss_key: pollsim_drivers::RssKey::MICROSOFT,
        rss_weight: None,
        queues: None,
    }
}

/// Fit rx, proto and intr to a real quick sweep of interrupt and polling;
/// the sweep and the host's steal during its host check.
fn real_sweep_fit(m: &mut CostModel) -> anyhow::Result<(Results, f64)> {
    let args = sweep_args();
    let stop = super::signals::stop_flag()?;
    let mut steal = 0.0;
    let real = experiment::run(&args, &stop, &mut |e| match e {
        Event::Host(c) => {
            steal = c.host.steal_pct;
            eprintln!("pollsim calibrate: {}", c.line());
        }
        Event::Point(run) | Event::Step(run) => {
            eprintln!("{}", crate::compare::output::progress_line(run))
        }
        Event::Planned(_) => {}
    })?;
    if super::signals::received().is_some() {
        bail!("stopped before the sweep ended: no profile written");
    }
    fit(&real, Hz::DEFAULT.get(), m)?;
    Ok((real, steal))
}
