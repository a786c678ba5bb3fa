//! `pollsim calibrate`: the `hw.sim.*` cost model measured on this machine,
//! on this project's own code and tap path.
//!
//! Two sources:
//!
//! - **micro-measurements**, each timed on the real code the simulation
//!   charges it for, medians of several rounds: `tick_cost_ns` (`epoll_wait`
//!   finding the timerfd, its read), `status_cost_ns` (`TapNic::check_status`,
//!   the tap's statistics from procfs), `sched_cost_ns` (the scheduler's
//!   `epoll_wait` finding no raised line), and for reference the isolated
//!   per-frame costs of a tap read, of smoltcp's ingress ([`proto_ns`]) and
//!   of an interrupt around one frame;
//! - **a real quick sweep** (interrupt and polling), whose CPU shares divide
//!   into the per-frame costs as the project actually pays them under a
//!   flood ([`fit`]): polling's sys share over the frames it took is `rx +
//!   proto`; interrupt mode's sys share over the frames that reached the
//!   stack is `proto + sched` (each netisr unit pays the epoll check); its
//!   intr share over the frames of its lightest point, where each
//!   frame brings its own interrupt, is `intr + rx` (after the ticks' share).
//!
//! The in-situ figures are larger than the isolated ones (cold caches, the
//! host's own work on the tap path, the process descheduled on a shared
//! machine), and they are what makes the simulated curves track the real
//! ones, so they are the ones printed for `rx`, `proto` and `intr`.

use std::net::SocketAddrV4;
use std::time::Instant;

use pollsim_drivers::VirtNic;

use anyhow::Context as _;

use super::model::{Results, Run};
use crate::apps::AppKind;
use crate::kernel::cost::{CostKnob, CostModel, MAX_COST_NS};
use crate::kernel::cpu::CpuState;
use crate::kernel::time::{Hz, Nanos};
use crate::kernel::{Kernel, KernelConfig, Mode, mib};
use crate::sim::{ADDR, MAC, START, flood_frame};

/// Rounds of each measurement; the median is kept.
pub const ROUNDS: usize = 15;

/// The median of `v` (0 if empty).
pub fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Elapsed ns of `f`, divided by `per`.
pub fn timed(per: u64, f: impl FnOnce()) -> u64 {
    let t = Instant::now();
    f();
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX) / per.max(1)
}

/// The netisr's cost per UDP frame: `netisr_step` from `ipintrq` into
/// smoltcp and udp-sink's socket buffer, on a kernel with a `VirtNic`.
pub fn proto_ns() -> u64 {
    const BATCH: usize = 200;
    let cfg = KernelConfig {
        hz: Hz::DEFAULT,
        addr: smoltcp::wire::Ipv4Cidr::new(
            ADDR.parse()
                .unwrap_or(smoltcp::wire::Ipv4Address::UNSPECIFIED),
            24,
        ),
        mode: Mode::Interrupt,
        apps: vec![AppKind::UdpSink],
        seed: 1,
    };
    let Ok(nic) = VirtNic::new("cal0", MAC, BATCH) else {
        return 0;
    };
    let (nic, handle) = match pollsim_drivers::SharedVirtNic::new(nic) {
        Ok(x) => x,
        Err(_) => return 0,
    };
    let mut k = Kernel::new(&cfg, START);
    k.attach(Box::new(nic), &cfg, START);
    k.ipintrq.set_maxlen(BATCH);
    let _ = mib::build(&k).set(&mut k, "user.udp_sink.rcvbuf", "1024");
    k.start_apps();
    let frame = flood_frame();
    let mut clock = crate::kernel::clock::VirtualClock::new(START);
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        for _ in 0..BATCH {
            handle.borrow_mut().inject(&frame);
        }
        k.isr(0);
        let now = Nanos(START.0);
        rounds.push(timed(BATCH as u64, || {
            while !k.ipintrq.is_empty() {
                k.netisr_step(now);
            }
        }));
        // Let the sink drain its socket (untimed), so no round sees it full.
        k.cpu.switch(now, CpuState::User);
        while k.user_runnable(now) {
            k.user_step(now, &mut clock);
        }
    }
    debug_assert_eq!(
        k.netisr.stats().udp_delivered + k.netisr.stats().udp_sockbuf_drops,
        (ROUNDS * BATCH) as u64,
        "{:?}",
        k.netisr.stats()
    );
    median(rounds)
}

/// Where the calibration's frames go: udp-sink on pollsim's address.
pub fn sink() -> SocketAddrV4 {
    SocketAddrV4::new(crate::lab::bench_addr(ADDR), 9)
}

/// What the fit could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    /// A mode the fit needs has no usable point.
    #[error("the real sweep has no usable {0} point")]
    Missing(&'static str),
}

fn base(run: &Run) -> &str {
    run.mode.split(':').next().unwrap_or("")
}

fn ns_per_frame(share_pct: f64, pps: f64) -> Option<f64> {
    (share_pct > 0.0 && pps > 0.0).then(|| share_pct / 100.0 / pps * 1e9)
}

/// Fit `rx_cost_ns`, `proto_cost_ns` and `intr_cost_ns` of `m` to a real
/// sweep of `interrupt` and `polling` at `hz`, given `m`'s measured tick
/// and scheduler costs.
pub fn fit(real: &Results, hz: u32, m: &mut CostModel) -> Result<(), FitError> {
    let of = |b: &'static str| real.runs.iter().filter(move |r| base(r) == b);
    // Polling: the point that took the most frames.
    let p = of("polling")
        .filter(|r| r.received_pps > 0.0)
        .max_by(|x, y| x.received_pps.total_cmp(&y.received_pps))
        .ok_or(FitError::Missing("polling"))?;
    let rx_proto =
        ns_per_frame(p.cp_time_pct.sys, p.received_pps).ok_or(FitError::Missing("polling"))?;
    // Interrupt: the point that put the most frames into the stack.
    let stack = |r: &Run| r.received_pps - r.drops.ipintrq;
    let i = of("interrupt")
        .filter(|r| stack(r) > 0.0)
        .max_by(|x, y| stack(x).total_cmp(&stack(y)))
        .ok_or(FitError::Missing("interrupt"))?;
    let proto = ns_per_frame(i.cp_time_pct.sys, stack(i)).ok_or(FitError::Missing("interrupt"))?
        - m.sched_cost_ns as f64;
    let rx = rx_proto - proto;
    // Interrupt, lightest point with traffic: one interrupt a frame.
    let light = of("interrupt")
        .filter(|r| r.received_pps >= 1000.0)
        .min_by(|x, y| x.offered_pps.total_cmp(&y.offered_pps))
        .ok_or(FitError::Missing("interrupt"))?;
    let tick_pct = f64::from(hz) * m.tick_cost_ns as f64 / 1e9 * 100.0;
    let intr_rx = ns_per_frame(
        (light.cp_time_pct.intr - tick_pct).max(0.0),
        light.received_pps,
    )
    .unwrap_or(0.0);
    let round = |x: f64| {
        #[expect(clippy::cast_sign_loss, reason = "x is clamped to be non-negative")]
        let v = x.max(0.0).round() as u64;
        v.min(crate::kernel::cost::MAX_COST_NS)
    };
    m.rx_cost_ns = round(rx);
    m.proto_cost_ns = round(proto);
    m.intr_cost_ns = round(intr_rx - rx);
    Ok(())
}

/// Relative difference `(sim - real) / real` (NaN without a real figure).
pub fn rel_diff(sim: f64, real: f64) -> f64 {
    if real > 0.0 {
        (sim - real) / real
    } else {
        f64::NAN
    }
}

/// What a refinement reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refined {
    /// The knob.
    pub knob: CostKnob,
    /// Its value before and after, ns.
    pub from_ns: u64,
    /// After.
    pub to_ns: u64,
    /// The real figure it was fitted to, pps.
    pub real_pps: f64,
    /// The simulated figure at the value kept, pps.
    pub sim_pps: f64,
}

/// Refinement stops once the simulated figure is this close to the real one.
pub const REFINE_TOLERANCE: f64 = 0.03;
/// At most this many simulations per refinement.
pub const REFINE_STEPS: usize = 10;

/// Which figure of a mode's summary a refinement matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// The peak delivered rate.
    Peak,
    /// The delivered rate at the highest offered rate (the plateau).
    AtMax,
}

impl Figure {
    fn of(self, s: &super::model::Summary) -> f64 {
        match self {
            Figure::Peak => s.peak_delivered_pps,
            Figure::AtMax => s.delivered_at_max_offered_pps,
        }
    }
}

/// Bisect `knob` of `m` so that the simulation of `real`'s `mode` points
/// (`simulate`, with the candidate model) reproduces the real `figure`
/// within [`REFINE_TOLERANCE`]. The figure falls as the cost rises, so the
/// search is between 0 and 4x the fitted value; the value whose simulated
/// figure came closest is kept.
pub fn refine(
    real: &Results,
    mode: &str,
    figure: Figure,
    knob: CostKnob,
    m: &mut CostModel,
    simulate: &mut dyn FnMut(&Results, &CostModel) -> anyhow::Result<Results>,
) -> anyhow::Result<Refined> {
    let points = Results {
        runs: real
            .runs
            .iter()
            .filter(|r| base(r) == mode)
            .cloned()
            .collect(),
        meta: real.meta.clone(),
        ..Results::default()
    };
    let of = |r: &Results| {
        super::summary::summarize(&r.runs)
            .iter()
            .find(|s| s.mode.split(':').next() == Some(mode))
            .map(|s| figure.of(s))
    };
    let target = of(&points).with_context(|| format!("the real sweep has no {mode} point"))?;
    let from = m.get(knob);
    let (mut lo, mut hi) = (0u64, from.saturating_mul(4).clamp(1, MAX_COST_NS));
    let mut v = from;
    let mut best: Option<(f64, u64, f64)> = None;
    for _ in 0..REFINE_STEPS {
        let mut cand = *m;
        cand.set(knob, i64::try_from(v).unwrap_or(i64::MAX))?;
        let simulated = of(&simulate(&points, &cand)?).unwrap_or(0.0);
        let d = rel_diff(simulated, target);
        if best.is_none_or(|(bd, _, _)| d.abs() < bd.abs()) {
            best = Some((d, v, simulated));
        }
        if d.abs() <= REFINE_TOLERANCE || hi <= lo + 1 {
            break;
        }
        // Too many frames simulated: the cost is too low.
        if d > 0.0 {
            lo = v;
        } else {
            hi = v;
        }
        v = lo + (hi - lo) / 2;
    }
    let (_, v, sim_pps) = best.unwrap_or((0.0, from, 0.0));
    m.set(knob, i64::try_from(v).unwrap_or(i64::MAX))?;
    Ok(Refined {
        knob,
        from_ns: from,
        to_ns: v,
        real_pps: target,
        sim_pps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::{CpuPct, Drops};

    fn run(mode: &str, o: f64, rcv: f64, dlv: f64, ipq: f64, cpu: (f64, f64, f64)) -> Run {
        Run {
            mode: mode.into(),
            offered_pps: o,
            received_pps: rcv,
            delivered_pps: dlv,
            drops: Drops {
                ipintrq: ipq,
                ..Drops::default()
            },
            cp_time_pct: CpuPct {
                user: cpu.0,
                sys: cpu.1,
                intr: cpu.2,
                idle: 100.0 - cpu.0 - cpu.1 - cpu.2,
            },
            ..Run::default()
        }
    }

    /// Points of a real quick sweep of the development machine (2026-11-23).
    #[test]
    fn fit_recovers_per_frame_costs_from_cpu_shares() {
        let real = Results {
            runs: vec![
                run("interrupt", 700.0, 650.0, 0.0, 0.0, (0.0, 0.1, 0.9)),
                run("interrupt", 37.3e3, 37.4e3, 37.3e3, 30.0, (10.1, 3.0, 7.2)),
                run(
                    "interrupt",
                    497e3,
                    496.8e3,
                    53.8e3,
                    16.9e3,
                    (13.7, 24.1, 61.4),
                ),
                run(
                    "interrupt",
                    873.8e3,
                    880.2e3,
                    603.0,
                    722.8e3,
                    (0.2, 10.3, 89.4),
                ),
                run("polling", 497e3, 150.0e3, 149.9e3, 0.0, (32.8, 10.5, 0.5)),
                run("polling", 1.18e6, 149.4e3, 149.2e3, 0.0, (33.0, 11.5, 0.5)),
            ],
            ..Results::default()
        };
        let mut m = CostModel {
            tick_cost_ns: 1_500,
            sched_cost_ns: 100,
            ..CostModel::default()
        };
        fit(&real, 1000, &mut m).unwrap();
        // proto + sched: 24.1 % over 479.9k frames into the stack = 502 ns.
        assert_eq!(m.proto_cost_ns, 402);
        // rx + proto: 10.5 % over 150k polled frames = 700 ns.
        assert_eq!(m.rx_cost_ns, 298);
        // intr + rx: (7.2 - 0.15) % over 37.4k frames (the 700 pps point
        // has too little traffic) = 1885 ns.
        assert_eq!(m.intr_cost_ns, 1885 - 298);
        let none = Results::default();
        assert_eq!(fit(&none, 1000, &mut m), Err(FitError::Missing("polling")));
    }

    /// A stand-in for the simulation: a mode's delivered rate is its
    /// offered rate up to a capacity that falls as the knob's cost rises.
    fn capped(points: &Results, m: &CostModel) -> anyhow::Result<Results> {
        let cap = 1e9 / (m.intr_cost_ns as f64 + 2_000.0);
        let runs = points
            .runs
            .iter()
            .map(|r| Run {
                delivered_pps: r.offered_pps.min(cap),
                ..r.clone()
            })
            .collect();
        Ok(Results {
            runs,
            ..Results::default()
        })
    }

    #[test]
    fn refine_bisects_a_cost_until_the_simulated_figure_is_the_real_one() {
        let real = Results {
            runs: vec![
                run("interrupt", 100e3, 100e3, 100e3, 0.0, (0.0, 0.0, 0.0)),
                run("interrupt", 400e3, 400e3, 250e3, 0.0, (0.0, 0.0, 0.0)),
                run("polling", 400e3, 150e3, 150e3, 0.0, (0.0, 0.0, 0.0)),
            ],
            ..Results::default()
        };
        // 250k pps is a capacity of 4000 ns per frame: intr 2000 ns.
        let mut m = CostModel {
            intr_cost_ns: 1_000,
            ..CostModel::default()
        };
        let mut calls = 0;
        let r = refine(
            &real,
            "interrupt",
            Figure::Peak,
            CostKnob::Intr,
            &mut m,
            &mut |p, c| {
                calls += 1;
                // Only the mode's own points are simulated.
                assert!(p.runs.iter().all(|r| r.mode == "interrupt"));
                capped(p, c)
            },
        )
        .unwrap();
        assert!(calls <= REFINE_STEPS);
        assert_eq!((r.from_ns, r.real_pps), (1_000, 250e3));
        assert!(
            rel_diff(r.sim_pps, 250e3).abs() <= REFINE_TOLERANCE,
            "{r:?}"
        );
        assert_eq!(m.intr_cost_ns, r.to_ns);
        assert!((1_800..=2_200).contains(&r.to_ns), "{r:?}");
        // A mode the sweep lacks is an error, and the model is untouched.
        let e = refine(
            &real,
            "napi",
            Figure::Peak,
            CostKnob::Intr,
            &mut m,
            &mut capped,
        );
        assert!(e.is_err());
        assert_eq!(m.intr_cost_ns, r.to_ns);
    }

    #[test]
    fn medians_and_the_netisr_cost() {
        assert_eq!(median(vec![5, 1, 9, 3, 7]), 5);
        assert_eq!(median(Vec::new()), 0);
        // A real measurement: positive and far below a millisecond (no
        // bound tighter than that: the machine may be busy).
        let ns = proto_ns();
        assert!(ns > 0 && ns < 1_000_000, "{ns}");
    }
}
