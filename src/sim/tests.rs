//! The simulation's promises, on virtual time (no root, no sleeps, and
//! deterministic, so asserting on simulated figures is exact): the shape of
//! the livelock curves, the effect of the polling knobs, the accounting of
//! every frame, and determinism.

use super::{ProbeLink, Sim, SimConfig};
use crate::apps::AppKind;
use crate::compare::experiment::{ModeSpec, parse_modes};
use crate::compare::model::Run;
use crate::compare::sim::{ArrivalKind, PointSpec, measure};
use crate::kernel::Mode;
use crate::kernel::time::{Hz, Nanos};
use crate::report::Accounting;

/// A sink about as costly per datagram as the kernel's own path (rx +
/// proto = 0.87 us by default), with a socket buffer that outlasts a
/// tick's burst. Then polling's plateau under overload (user gets
/// `user_frac`, delivered = user_frac / work) is close to its pre-overload
/// peak (1 / (work + kernel cost)): 0.5 * 1.77 / 0.9 = 98 %. With a sink
/// much costlier than the kernel, the plateau is ~half the peak by design.
const SHAPE: &str = "user.udp_sink.rcvbuf=4096";
const WORK_NS: u64 = 900;
const RATES: [f64; 7] = [100e3, 200e3, 300e3, 400e3, 600e3, 1e6, 2e6];

fn mode(text: &str) -> ModeSpec {
    parse_modes(text).unwrap().remove(0)
}

fn point(m: &ModeSpec, pps: f64, work_ns: u64, seed: u64) -> Run {
    point_on(ProbeLink::Quiet, m, pps, work_ns, seed)
}

fn point_on(link: ProbeLink, m: &ModeSpec, pps: f64, work_ns: u64, seed: u64) -> Run {
    measure(&PointSpec {
        mode: m,
        pps,
        work_ns,
        secs: 0.5,
        warmup: 1.0,
        seed,
        arrivals: ArrivalKind::Poisson,
        extra: &[],
        probe_link: link,
        axes: crate::compare::model::Axes::default(),
        flows: crate::sim::FlowSpec::default(),
    })
    .unwrap()
}

fn sweep(text: &str) -> Vec<Run> {
    let m = mode(text);
    RATES.iter().map(|&r| point(&m, r, WORK_NS, 1)).collect()
}

fn peak(runs: &[Run]) -> &Run {
    runs.iter()
        .max_by(|a, b| a.delivered_pps.total_cmp(&b.delivered_pps))
        .unwrap()
}

#[test]
fn interrupt_mode_rises_peaks_and_collapses() {
    let runs = sweep(&format!("interrupt:{SHAPE}"));
    let top = peak(&runs);
    let first = &runs[0];
    assert!(
        first.delivered_pps < 0.8 * top.delivered_pps,
        "no rise: {runs:#?}"
    );
    let last = runs.last().unwrap();
    assert!(
        last.offered_pps >= 5.0 * top.offered_pps,
        "the sweep must reach 5x the peak's input: {} vs {}",
        last.offered_pps,
        top.offered_pps
    );
    assert!(
        last.delivered_pps < 0.2 * top.delivered_pps,
        "no collapse: {} at {} vs peak {}",
        last.delivered_pps,
        last.offered_pps,
        top.delivered_pps
    );
    assert!(
        last.cp_time_pct.user < 5.0,
        "user {}",
        last.cp_time_pct.user
    );
    assert!(
        last.cp_time_pct.intr > 90.0,
        "intr {}",
        last.cp_time_pct.intr
    );
}

#[test]
fn polling_holds_its_peak_and_user_frac() {
    let runs = sweep(&format!("polling:burst_max=1000,{SHAPE}"));
    let top = peak(&runs).clone();
    // From the first point with loss on: the overload.
    let first_lossy = runs
        .iter()
        .position(|r| r.delivered_pps < 0.99 * r.offered_pps)
        .unwrap();
    let overloaded: Vec<&Run> = runs[first_lossy..].iter().collect();
    assert!(overloaded.len() >= 3, "{runs:#?}");
    for r in &overloaded {
        assert!(
            r.delivered_pps >= 0.9 * top.delivered_pps,
            "{} at {} vs peak {}",
            r.delivered_pps,
            r.offered_pps,
            top.delivered_pps
        );
    }
    let last = runs.last().unwrap();
    assert!(
        (last.cp_time_pct.user - 50.0).abs() <= 5.0,
        "user {} vs user_frac 50",
        last.cp_time_pct.user
    );
    // Drop early: the overload is shed at the NIC, before any CPU is spent.
    assert!(last.drops.rx_missed > 0.5 * last.offered_pps);
    assert_eq!(last.drops.ipintrq, 0.0);
}

#[test]
fn idle_poll_lowers_probe_latency_at_light_load() {
    // On the flooded link, where the probe's frames queue in the ring
    // with the flood's until a tick polls them.
    let on = ProbeLink::Flooded;
    let plain = point_on(on, &mode("polling"), 20e3, 2_000, 3);
    let idle = point_on(on, &mode("polling:idle_poll=1"), 20e3, 2_000, 3);
    let (a, b) = (plain.probe_ms.p50.unwrap(), idle.probe_ms.p50.unwrap());
    assert_eq!((plain.probe_ms.timeouts, idle.probe_ms.timeouts), (0, 0));
    // Without idle polling a frame waits for the next tick (up to 1 ms).
    assert!(a > 0.5, "p50 {a} ms without idle_poll");
    assert!(b < 0.5 * a, "p50 {b} ms with idle_poll vs {a} ms without");
    assert!(
        idle.cp_time_pct.idle < 1.0,
        "the idle loop polls: no idle time"
    );
}

/// Raising user_frac moves CPU from the kernel to the sink: the user share
/// rises and the frames the kernel takes in fall, monotonically. (The
/// datagrams the sink reads rise with its share: each costs it work_ns.)
#[test]
fn raising_user_frac_moves_cpu_from_kernel_to_user() {
    let runs: Vec<Run> = [20, 50, 80]
        .iter()
        .map(|uf| {
            let m = mode(&format!("polling:burst_max=1000,user_frac={uf}"));
            point(&m, 1.5e6, 10_000, 5)
        })
        .collect();
    for w in runs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            b.cp_time_pct.user > a.cp_time_pct.user + 10.0,
            "{a:#?} {b:#?}"
        );
        assert!(b.received_pps < a.received_pps, "{a:#?} {b:#?}");
        assert!(b.delivered_pps > a.delivered_pps, "{a:#?} {b:#?}");
    }
    for (r, uf) in runs.iter().zip([20.0, 50.0, 80.0]) {
        assert!((r.cp_time_pct.user - uf).abs() <= 5.0, "{uf}: {r:#?}");
    }
}

fn sim(mode: Mode, pps: f64, sysctls: &[&str]) -> Sim {
    Sim::new(&SimConfig {
        mode,
        hz: Hz::DEFAULT,
        pattern: ArrivalKind::Poisson.pattern(pps),
        seed: 11,
        apps: vec![AppKind::UdpSink, AppKind::Http],
        sysctls: sysctls.iter().map(|s| s.to_string()).collect(),
        probe: Some(ProbeLink::Quiet),
        conns: 0,
    })
    .unwrap()
}

#[test]
fn every_frame_is_accounted_for() {
    for (mode, pps) in [
        (Mode::Interrupt, 150e3),
        (Mode::Interrupt, 1.5e6),
        (Mode::Polling, 1.5e6),
    ] {
        let mut s = sim(mode, pps, &["user.udp_sink.work_ns=5000"]);
        s.run_for(Nanos::from_millis(700));
        s.k.check_status();
        let a = Accounting::of(&s.k);
        assert!(a.balanced(), "{mode:?} {pps}: {a:?}");
        // Offered to the NIC = what the wire brought (flood and probe) less
        // what still waits in the ring, exactly.
        assert_eq!(
            a.offered + s.ring_pending(),
            s.arrived() + s.probe_frames(),
            "{mode:?} {pps}: {a:?}"
        );
        assert!(a.offered > 100_000 / 2, "{a:?}");
    }
    // The windows the sweep reports balance too.
    for text in ["interrupt", "polling"] {
        for pps in [50e3, 1e6] {
            let r = point(&mode(text), pps, 5_000, 2);
            assert!(r.frames.balanced(), "{text} {pps}: {:?}", r.frames);
        }
    }
}

#[test]
fn same_seed_same_point_other_seed_other_point() {
    let m = mode("interrupt");
    let a = point(&m, 300e3, 2_000, 9);
    assert_eq!(a, point(&m, 300e3, 2_000, 9));
    assert_ne!(a, point(&m, 300e3, 2_000, 10));
}

#[test]
fn hw_sim_knobs_are_in_the_mib_and_refuse_out_of_range() {
    let mut s = sim(Mode::Polling, 10e3, &["hw.sim.rx_cost_ns=700"]);
    assert_eq!(s.k.cost.unwrap().rx_cost_ns, 700);
    for name in [
        "hw.sim.intr_cost_ns",
        "hw.sim.rx_cost_ns",
        "hw.sim.proto_cost_ns",
        "hw.sim.tick_cost_ns",
        "hw.sim.status_cost_ns",
        "hw.sim.sched_cost_ns",
    ] {
        let (lo, hi) = s.mib.bounds(&s.k, name).unwrap().unwrap();
        assert_eq!((lo, hi), (0, 10_000_000), "{name}");
        assert!(s.mib.set(&mut s.k, name, &(hi + 1).to_string()).is_err());
        s.mib.set(&mut s.k, name, "0").unwrap();
    }
    // Costs drive the clock: with every cost zero the kernel takes no CPU.
    s.run_for(Nanos::from_millis(200));
    let busy = s.k.cpu.cp_time(s.now()).0;
    assert_eq!((busy[2], busy[3]), (0, 0), "{busy:?}");
}

/// The cost model is charged exactly: a constant 1000 frames/s in
/// interrupt mode, each alone in its interrupt, costs intr + rx in intr,
/// proto + sched in sys, per frame, and the CPU states add up to the
/// virtual time elapsed.
#[test]
fn costs_are_charged_exactly_per_unit() {
    let mut s = Sim::new(&SimConfig {
        mode: Mode::Interrupt,
        hz: Hz::DEFAULT,
        pattern: ArrivalKind::Constant.pattern(1000.0),
        seed: 1,
        apps: vec![AppKind::UdpSink],
        sysctls: [
            "hw.sim.intr_cost_ns=1000",
            "hw.sim.rx_cost_ns=300",
            "hw.sim.proto_cost_ns=500",
            "hw.sim.sched_cost_ns=100",
            "hw.sim.tick_cost_ns=0",
            "hw.sim.status_cost_ns=0",
            "user.udp_sink.work_ns=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        probe: None,
        conns: 0,
    })
    .unwrap();
    let start = s.now();
    // The 1000th frame arrives at exactly 1 s: run half a millisecond more.
    s.run_for(Nanos::from_micros(1_000_500));
    let t = s.k.cpu.cp_time(s.now());
    assert_eq!(t.total(), s.now().since(start).0);
    assert_eq!(s.k.ifs[0].counters.interrupts, 1000);
    assert_eq!(t.0[3], 1000 * 1300, "intr: {:?}", t.0);
    // Sys: each frame's netisr unit (proto + the scheduler's check); the
    // egress passes after ticks cost nothing but their check.
    // (Each pass runs every NIC's egress: count the passes on one.)
    let egress = s.k.netisr.nic_stats(0).egress_runs;
    assert_eq!(t.0[2], 1000 * 600 + egress * 100, "sys: {:?}", t.0);
    assert_eq!(s.k.apps.udp_sink.as_ref().unwrap().datagrams, 1000);
}

/// Far above polling's capacity, with tap0 flooded: polling keeps the
/// machine responsive (the probe on the quiet tap1 answers, fast; the
/// interactive process starts on time), while interrupt mode's livelock
/// drowns both (the probe times out, the interactive process misses its
/// slices). On the flooded link itself the probe's frames share the full
/// ring with the flood, and polling loses some of them too.
#[test]
fn the_quiet_link_stays_responsive_under_polling_and_not_in_livelock() {
    let pps = 2e6;
    let polling = point(&mode("polling"), pps, 2_000, 4);
    let interrupt = point(&mode("interrupt"), pps, 2_000, 4);
    assert!(
        polling.drops.rx_missed > 0.5 * polling.offered_pps,
        "overloaded: {polling:#?}"
    );
    let p = &polling.probe_ms;
    assert!(p.sent >= 4, "{p:?}");
    assert!(p.timeouts * 20 <= p.sent, "polling answers >= 95 %: {p:?}");
    assert!(p.p99.is_some_and(|ms| ms <= 50.0), "{p:?}");
    // Round robin: a quiet link's frame waits at most about a tick for its
    // handler's turn, whatever the flood on the other; a probe is three
    // such exchanges (SYN, request, FIN).
    assert!(p.p99.is_some_and(|ms| ms <= 3.0), "{p:?}");
    let pi = polling
        .interactive
        .as_ref()
        .expect("the interactive process");
    assert!(pi.slices >= 40, "{pi:?}");
    assert_eq!(pi.missed, 0, "{pi:?}");
    assert!(pi.late_p99_ms.is_some_and(|ms| ms <= 2.0), "{pi:?}");

    let q = &interrupt.probe_ms;
    assert!(
        q.timeouts * 2 >= q.sent || q.p99.is_some_and(|ms| ms >= 10.0 * p.p99.unwrap()),
        "interrupt mode's probe drowns: {q:?} vs polling {p:?}"
    );
    let ii = interrupt
        .interactive
        .as_ref()
        .expect("the interactive process");
    assert!(ii.starved(100.0), "livelock starves it: {ii:?}");

    // A longer window: a probe lost in the flood is counted once it times
    // out, after a second.
    let flooded = measure(&PointSpec {
        mode: &mode("polling"),
        pps,
        work_ns: 2_000,
        secs: 3.0,
        warmup: 1.0,
        seed: 4,
        arrivals: ArrivalKind::Poisson,
        extra: &[],
        probe_link: ProbeLink::Flooded,
        axes: crate::compare::model::Axes::default(),
        flows: crate::sim::FlowSpec::default(),
    })
    .unwrap();
    assert!(
        flooded.probe_ms.timeouts > p.timeouts,
        "on the flooded link the probe shares the full ring: {:?} vs quiet {p:?}",
        flooded.probe_ms
    );
}

/// The user level under a 400 kpps flood in polling mode, `burst_max`
/// raised to 1000 so that the kernel delivers more than udp-sink can read
/// (about 316k datagrams/s at 2 µs each: 63 % of the CPU, more than the
/// 65 % the kernel leaves) and `rcvbuf` raised so that the sink always has
/// data: the CPU never idles and the sink would take all the user CPU.
/// Each process's CPU time over 4 virtual seconds after a 1 s warm-up, the
/// user time of `kern.cp_time`, and the probe's results.
struct UserLevel {
    sim: Sim,
    /// CPU time per process over the window, ns, by name.
    cpu: Vec<(&'static str, u64)>,
    /// `kern.cp_time` user over the window, ns.
    user_ns: u64,
    /// `kern.cp_time` idle over the window, ns.
    idle_ns: u64,
    window: Nanos,
}

fn user_level(apps: &[AppKind], probe: Option<ProbeLink>) -> UserLevel {
    let mut sim = Sim::new(&SimConfig {
        mode: Mode::Polling,
        hz: Hz::DEFAULT,
        pattern: ArrivalKind::Poisson.pattern(400e3),
        seed: 17,
        apps: apps.to_vec(),
        sysctls: vec![
            "kern.polling.burst_max=1000".to_string(),
            "user.udp_sink.rcvbuf=4096".to_string(),
        ],
        probe,
        conns: 0,
    })
    .unwrap();
    sim.run_for(Nanos::from_secs(1));
    let cpu = |s: &Sim| -> Vec<u64> {
        (0..s.k.runq.len())
            .map(|p| s.k.runq.stats(p).cpu_ns)
            .collect()
    };
    let user = |s: &Sim| s.k.cpu.cp_time(s.now()).0[0];
    let idle = |s: &Sim| s.k.cpu.cp_time(s.now()).0[4];
    let (cpu0, user0, idle0) = (cpu(&sim), user(&sim), idle(&sim));
    sim.take_probe_results();
    let window = Nanos::from_secs(4);
    sim.run_for(window);
    let cpu = cpu(&sim)
        .iter()
        .zip(cpu0)
        .enumerate()
        .map(|(p, (b, a))| (sim.k.runq.name(p), b - a))
        .collect();
    let user_ns = user(&sim) - user0;
    let idle_ns = idle(&sim) - idle0;
    UserLevel {
        sim,
        cpu,
        user_ns,
        idle_ns,
        window,
    }
}

impl UserLevel {
    fn cpu(&self, name: &str) -> u64 {
        self.cpu.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

/// The acceptance of the fair share. A process's *fair slice* of the user
/// CPU is min(its demand, user CPU / runnable processes): a process that
/// wants less than an equal part gets all it wants, one that wants more
/// gets at least an equal part. Demands here: the interactive process
/// wants `slice_us` every `period_us`; udp-sink wants more than the whole
/// user share (its socket buffer overflows); the http app serves the
/// probe's GET every 100 ms (its steps cost no CPU on virtual time, so its
/// slice is that every probe is served).
#[test]
fn under_a_polling_flood_the_interactive_process_and_the_probe_get_their_fair_slice() {
    let apps = [AppKind::UdpSink, AppKind::Http, AppKind::Interactive];
    let mut u = user_level(&apps, Some(ProbeLink::Quiet));
    let w = u.window.0;
    // Overload: the CPU never idles; the user share polling guarantees
    // (user_frac = 50 %) is there, and it is the processes'.
    assert!(u.idle_ns * 1000 < w, "idle {} of {w} ns", u.idle_ns);
    assert!(
        u.user_ns * 100 >= w * 50,
        "user {} of {w} ns: polling leaves user_frac = 50 %",
        u.user_ns
    );
    let procs: u64 = u.cpu.iter().map(|(_, c)| c).sum();
    assert_eq!(procs, u.user_ns, "every user ns is some process's");
    let equal = u.user_ns / 3;
    let ia = u.sim.k.apps.interactive.clone().unwrap();
    let demand = w / (ia.period_us * 1_000) * ia.slice_us * 1_000;
    let fair = demand.min(equal);
    // One slice may be under way at either end of the window.
    let slice = ia.slice_us * 1_000;
    assert!(
        u.cpu("interactive") + slice >= fair,
        "interactive got {} ns, fair slice {fair} ({:?})",
        u.cpu("interactive"),
        u.cpu
    );
    assert_eq!(ia.missed(u.sim.now()), 0, "no slice missed");
    // udp-sink wanted more than everything: the rest is its.
    assert!(u.sim.k.netisr.stats().udp_sockbuf_drops > 0);
    assert!(u.cpu("udp_sink") >= equal, "{:?}", u.cpu);
    // The probe: every GET answered, none timed out.
    let r = u.sim.take_probe_results();
    assert!(r.latencies_ms.len() >= 39, "{r:?}");
    assert_eq!(r.timeouts, 0, "{r:?}");
    let http = u.sim.k.user_pid("http").unwrap();
    assert!(u.sim.k.runq.stats(http).runs >= r.latencies_ms.len() as u64);
}

/// Alone, udp-sink gets all the user CPU under the same flood: every ns
/// of `kern.cp_time` user is its, it never waits behind another process,
/// and its quanta run out with nobody to give way to.
#[test]
fn a_lone_process_gets_all_the_user_cpu() {
    let u = user_level(&[AppKind::UdpSink], None);
    assert_eq!(u.cpu("udp_sink"), u.user_ns);
    assert!(u.user_ns * 100 >= u.window.0 * 50, "{}", u.user_ns);
    assert!(u.idle_ns * 1000 < u.window.0, "{}", u.idle_ns);
    let s = u.sim.k.runq.stats(0);
    assert_eq!((s.wait_ns, s.preempted), (0, 0), "{s:?}");
    assert!(s.expiries >= 39, "a quantum each 100 ms: {s:?}");
    assert_eq!(u.sim.k.runq.switches, s.runs);
}

/// compare's rows carry every user process's part of the CPU: udp-sink,
/// http and the interactive process, whose shares of the user CPU add up
/// to 100 % and whose CPU % add up to the row's user CPU less the `-w`
/// observer's (none on virtual time).
#[test]
fn compare_rows_carry_each_processs_share() {
    let r = point(&mode("polling:burst_max=1000"), 400e3, WORK_NS, 3);
    let names: Vec<&str> = r.procs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{:?}", r.procs);
    for n in ["udp_sink", "http", "interactive"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let share: f64 = r.procs.iter().map(|p| p.share_pct).sum();
    assert!((share - 100.0).abs() < 0.01, "{:?}", r.procs);
    let cpu: f64 = r.procs.iter().map(|p| p.cpu_pct).sum();
    assert!((cpu - r.cp_time_pct.user).abs() < 0.1, "{cpu} vs {r:#?}");
    let ia = r.procs.iter().find(|p| p.name == "interactive").unwrap();
    assert!(ia.waits > 0 && ia.wait_mean_us.is_some(), "{ia:?}");
}

/// One burst of datagrams (about 100, at 100k pps for 1 ms), then silence,
/// to udp-sink with `trigger` and `read_packets` (0: drain): (datagrams
/// put on its socket, read by it, reactor events) 30 ms after the burst
/// began.
fn after_a_burst(trigger: &str, read_packets: u16, backend: u8) -> (u64, u64, u64) {
    let mut s = Sim::new(&SimConfig {
        mode: Mode::Interrupt,
        hz: Hz::DEFAULT,
        pattern: pollsim_drivers::Pattern::OnOff {
            pps: 100e3,
            on_ns: 1_000_000,
            off_ns: 1_000_000_000,
        },
        seed: 3,
        apps: vec![AppKind::UdpSink],
        sysctls: vec![
            format!("user.udp_sink.trigger={trigger}"),
            format!("user.udp_sink.read_packets={read_packets}"),
            format!("kern.reactor.backend={backend}"),
        ],
        probe: None,
        conns: 0,
    })
    .unwrap();
    s.run_for(Nanos::from_millis(20));
    let events = s.k.reactor.stats.events;
    s.run_for(Nanos::from_millis(10));
    assert_eq!(
        s.k.reactor.stats.events, events,
        "trigger {trigger} read_packets {read_packets}: the silence makes no event"
    );
    let a = Accounting::of(&s.k);
    assert!(a.offered > 50, "the burst arrived: {a:?}");
    assert_eq!(a.socket_drops, 0, "{a:?}");
    (a.socket_queued, a.app_read, events)
}

/// Edge vs level vs oneshot, end to end on virtual time: a naive app
/// (one datagram per event) stalls when edge-triggered, datagrams left in
/// its socket buffer and no event while no frame arrives; draining (0), or
/// level or oneshot with any budget, it reads everything. (With the
/// default budget of 5 this burst never leaves 5 datagrams queued between
/// two polls, so the edge app keeps up; a faster burst would stall it.)
#[test]
fn a_naive_edge_triggered_app_stalls_and_a_draining_one_does_not() {
    for backend in [0, 1] {
        let (got, read, _) = after_a_burst("edge", 1, backend);
        assert!(
            read < got,
            "backend {backend}: naive edge left datagrams ({read} of {got} read)"
        );
        for (trigger, budget) in [
            ("edge", 0),
            ("level", 1),
            ("level", 5),
            ("level", 0),
            ("oneshot", 1),
            ("oneshot", 5),
            ("oneshot", 0),
        ] {
            let (got, read, _) = after_a_burst(trigger, budget, backend);
            assert_eq!(
                read, got,
                "backend {backend} trigger {trigger} read_packets {budget}: everything read ({read} of {got})"
            );
        }
    }
}

/// Synthetic idle connections are registered and watched, never ready:
/// scan examines them all on every poll, ready none of them.
#[test]
fn idle_connections_are_watched_and_cost_scan_not_ready() {
    let run = |backend: u8| {
        let mut s = Sim::new(&SimConfig {
            mode: Mode::Polling,
            hz: Hz::DEFAULT,
            pattern: ArrivalKind::Constant.pattern(10e3),
            seed: 5,
            apps: vec![AppKind::UdpSink],
            sysctls: vec![format!("kern.reactor.backend={backend}")],
            probe: None,
            conns: 500,
        })
        .unwrap();
        assert_eq!(
            s.k.reactor.watched(),
            502,
            "500 idle + udp-sink's socket on each NIC"
        );
        s.run_for(Nanos::from_millis(100));
        let pid = s.k.user_pid("udp_sink").unwrap();
        let st = s.k.runq.stats(pid).clone();
        (s.k.reactor.stats, st.reactor_ns, st.cpu_ns)
    };
    let (ready, ready_ns, ready_cpu) = run(0);
    let (scan, scan_ns, scan_cpu) = run(1);
    assert_eq!(ready.events, scan.events, "same deliveries");
    assert_eq!(ready.scanned, ready.events, "ready examines the ready only");
    assert!(scan.scanned >= scan.polls * 500, "{scan:?}");
    assert!(
        scan_ns > ready_ns && ready_ns > 0,
        "{scan_ns} vs {ready_ns}"
    );
    assert!(
        scan_cpu - scan_ns == ready_cpu - ready_ns,
        "the rest is the app's work"
    );
}

/// Two polled interfaces under `net.isr.dispatch`: tap0 flooded at 1 Mpps,
/// tap1 carrying only the probe's frames, for 1.2 virtual seconds (burst
/// reaches burst_max 150 after 145 ticks). Returns the sim after a final
/// status check.
fn two_links(dispatch: &str, each_burst: u32) -> Sim {
    let mut s = Sim::new(&SimConfig {
        mode: Mode::Polling,
        hz: Hz::DEFAULT,
        pattern: ArrivalKind::Constant.pattern(1e6),
        seed: 5,
        apps: vec![AppKind::UdpSink, AppKind::Http],
        sysctls: vec![
            format!("net.isr.dispatch={dispatch}"),
            format!("kern.polling.each_burst={each_burst}"),
        ],
        probe: Some(ProbeLink::Quiet),
        conns: 0,
    })
    .unwrap();
    s.run_for(Nanos::from_millis(1200));
    s.k.check_status();
    s
}

#[test]
fn deferred_dispatch_shows_what_each_burst_is_for() {
    let get = |s: &Sim, name: &str| -> u64 {
        s.mib.get(&s.k, name).unwrap().to_string().parse().unwrap()
    };
    for (dispatch, each_burst) in [("direct", 150), ("deferred", 5), ("deferred", 150)] {
        let s = two_links(dispatch, each_burst);
        let what = format!("{dispatch} each_burst={each_burst}");
        let total = Accounting::of(&s.k);
        assert!(total.balanced(), "{what}: {total:?}");
        let (flooded, quiet) = (Accounting::of_if(&s.k, 0), Accounting::of_if(&s.k, 1));
        assert!(
            flooded.balanced() && quiet.balanced(),
            "{what}: {flooded:?} {quiet:?}"
        );
        assert!(
            flooded.rx_missed > 100_000,
            "{what}: overloaded: {flooded:?}"
        );
        assert!(
            quiet.received > 0,
            "{what}: the probe's frames arrive: {quiet:?}"
        );
        assert_eq!(quiet.rx_missed, 0, "{what}: {quiet:?}");
        assert_eq!(
            get(&s, "dev.tap0.ipintrq_drops") + get(&s, "dev.tap1.ipintrq_drops"),
            get(&s, "net.inet.ip.intr_queue_drops"),
            "{what}: per-interface drops add up"
        );
        let enqueued = get(&s, "net.inet.ip.intr_queue_enqueued");
        match (dispatch, each_burst) {
            ("direct", _) => {
                // Straight into the stack: ipintrq is never used.
                assert_eq!(enqueued + total.ipintrq_drops, 0, "{what}: {total:?}");
            }
            (_, 5) => {
                // Chunks of 5 + 5 frames fit in ipintrq (50): every frame a
                // handler takes reaches the stack, the quiet link's all.
                assert!(
                    enqueued > 100_000,
                    "{what}: polled frames go through ipintrq"
                );
                assert_eq!(total.ipintrq_drops, 0, "{what}: {total:?}");
                assert_eq!(quiet.stack + quiet.ipintrq_queued, quiet.received, "{what}");
            }
            _ => {
                // Chunks of 150 from tap0 fill ipintrq before tap1's handler
                // runs: the overflow is dropped there, and the quiet link's
                // frames with it.
                assert!(flooded.ipintrq_drops > 50_000, "{what}: {flooded:?}");
                assert!(
                    quiet.ipintrq_drops > 0,
                    "{what}: the quiet link starves: {quiet:?}"
                );
                assert!(quiet.stack < quiet.received, "{what}: {quiet:?}");
            }
        }
    }
}

/// A server's listen backlog is one descriptor to a select-like scan: with
/// http's hundreds of listening sockets (smoltcp has no accept), `scan`
/// watches a handful of descriptors, examines about that many per poll,
/// and still answers every probe, as `ready` does.
#[test]
fn a_scan_watches_a_listen_backlog_as_one_descriptor() {
    let run = |backend: &str| {
        let mut s = sim(
            Mode::Polling,
            20e3,
            &[&format!("kern.reactor.backend={backend}")],
        );
        let listeners = s.k.reactor.registered();
        let watched = s.k.reactor.watched();
        s.run_for(Nanos::from_millis(1_000));
        let p = s.take_probe_results();
        (listeners, watched, s.k.reactor.stats, p)
    };
    let (registered, watched, scan, probes) = run("1");
    assert!(
        registered > 500,
        "http's backlog is many sockets: {registered}"
    );
    // udp-sink's socket and http's listen descriptor, on each of 2 NICs.
    assert_eq!(watched, 4);
    assert!(
        scan.scanned <= scan.polls * 4 + scan.events,
        "a scan examines the descriptors and the listeners that took a SYN: {scan:?}"
    );
    assert_eq!(probes.timeouts, 0, "{probes:?}");
    assert!(probes.latencies_ms.len() >= 9, "{probes:?}");
    let (_, _, _, ready_probes) = run("0");
    assert_eq!(ready_probes.latencies_ms.len(), probes.latencies_ms.len());
}

/// Every trigger of the pool apps reads back by name, is fixed once they
/// run, and serves: the HTTP probe is answered whether http's sockets are
/// level-, edge-triggered or oneshot (http drains). (Re-arms per trigger:
/// `apps::trigger_tests`.)
#[test]
fn the_pool_apps_serve_under_every_trigger() {
    for trigger in ["level", "edge", "oneshot"] {
        let mut s = Sim::new(&SimConfig {
            mode: Mode::Polling,
            hz: Hz::DEFAULT,
            pattern: ArrivalKind::Constant.pattern(10e3),
            seed: 11,
            apps: vec![AppKind::TcpEcho, AppKind::Http],
            sysctls: vec![
                format!("user.http.trigger={trigger}"),
                format!("user.tcp_echo.trigger={trigger}"),
            ],
            probe: Some(ProbeLink::Quiet),
            conns: 0,
        })
        .unwrap();
        for app in ["http", "tcp_echo"] {
            let node = format!("user.{app}.trigger");
            assert_eq!(s.mib.get(&s.k, &node).unwrap().to_string(), trigger);
            let err = s.mib.set(&mut s.k, &node, "level").unwrap_err();
            assert!(err.to_string().contains("read-only once"), "{err}");
        }
        s.run_for(Nanos::from_secs(1));
        let p = s.take_probe_results();
        assert_eq!(p.timeouts, 0, "{trigger}: every probe answered");
        assert!(p.latencies_ms.len() >= 8, "{trigger}: {p:?}");
        let requests = s.mib.get(&s.k, "user.http.requests").unwrap().to_string();
        assert_eq!(requests, p.latencies_ms.len().to_string(), "{trigger}");
    }
}
