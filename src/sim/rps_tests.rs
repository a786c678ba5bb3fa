//! Frames handed between simulated CPUs: RPS, RFS, a socket on one CPU.

use super::*;
use crate::kernel::Mode;
use crate::kernel::time::Hz;
use crate::report::Accounting;
use pollsim_drivers::Pattern;
use pollsim_sysctl::Value;

fn cfg(mode: Mode, pps: f64, sysctls: &[&str]) -> SimConfig {
    SimConfig {
        mode,
        hz: Hz::DEFAULT,
        pattern: Pattern::Poisson { pps },
        seed: 3,
        apps: vec![AppKind::UdpSink, AppKind::Http],
        sysctls: sysctls.iter().map(|s| s.to_string()).collect(),
        probe: None,
        conns: 0,
    }
}

/// 64 flows, every one steered to queue 0 by the table (weights 1, 0):
/// without RPS, CPU 1 receives nothing.
fn all_on_queue_0() -> FlowSpec {
    FlowSpec {
        flows: 64,
        weights: Some(vec![1, 0]),
        ..FlowSpec::default()
    }
}

fn int(s: &Sim, name: &str) -> i64 {
    match s.mib.get(&s.k, name) {
        Ok(Value::Int(v)) => v,
        other => panic!("{name}: {other:?}"),
    }
}

/// Every CPU balances, what was handed out was handed in, and every frame
/// the flood sent is offered to a queue or still in a ring.
fn assert_accounted(s: &mut SmpSim) {
    let mut total = Accounting::default();
    for (c, cpu) in s.cpus.iter_mut().enumerate() {
        cpu.k.check_status();
        let a = Accounting::of(&cpu.k);
        assert!(a.balanced(), "CPU {c}: {a:?}");
        total.add(&a);
    }
    assert_eq!(total.handed_out, total.handed_in, "{total:?}");
    let pending: u64 = s.cpus.iter().map(Sim::ring_pending).sum();
    assert_eq!(total.offered + pending, s.arrived());
}

#[test]
fn rps_hands_frames_to_the_other_cpu_in_every_discipline() {
    for mode in [Mode::Interrupt, Mode::Polling, Mode::Napi] {
        let c = cfg(mode, 100_000.0, &["net.rps.cpus=3"]);
        let mut s = SmpSim::new(&c, 2, &all_on_queue_0()).unwrap();
        s.run_for(Nanos::from_millis(200));
        let (c0, c1) = (&s.cpus[0], &s.cpus[1]);
        assert_eq!(int(c1, "dev.tap0.rx_packets"), 0, "{mode:?}");
        let out = int(c0, "net.rps.handed_out");
        assert!(out > 1000, "{mode:?}: CPU 0 handed {out}");
        assert_eq!(int(c1, "net.rps.handed_in"), out, "{mode:?}");
        assert!(int(c1, "net.rps.ipis") > 0, "{mode:?}");
        assert!(int(c1, "user.udp_sink.datagrams") > 0, "{mode:?}");
        assert!(int(c0, "user.udp_sink.datagrams") > 0, "{mode:?}");
        assert_accounted(&mut s);
    }
}

#[test]
fn without_a_mask_nothing_crosses() {
    let mut s = SmpSim::new(&cfg(Mode::Napi, 100_000.0, &[]), 2, &all_on_queue_0()).unwrap();
    s.run_for(Nanos::from_millis(100));
    assert_eq!(int(&s.cpus[0], "net.rps.handed_out"), 0);
    assert_eq!(int(&s.cpus[1], "user.udp_sink.datagrams"), 0);
    assert_accounted(&mut s);
}

#[test]
fn handing_moves_the_protocol_to_the_target_cpu() {
    // The handing CPU pays the driver and the handing, the target the
    // protocol: with RPS, CPU 0's system time falls and CPU 1's rises.
    let sys = |sysctls: &[&str]| {
        let c = cfg(Mode::Interrupt, 100_000.0, sysctls);
        let mut s = SmpSim::new(&c, 2, &all_on_queue_0()).unwrap();
        s.run_for(Nanos::from_millis(200));
        let cp = |cpu: &Sim| match cpu.mib.get(&cpu.k, "kern.cp_time") {
            Ok(Value::List(l)) => l[2] + l[3],
            other => panic!("{other:?}"),
        };
        (cp(&s.cpus[0]), cp(&s.cpus[1]))
    };
    let (alone0, alone1) = sys(&[]);
    let (rps0, rps1) = sys(&["net.rps.cpus=2"]);
    assert!(rps0 < alone0, "CPU 0: {rps0} with RPS, {alone0} without");
    assert!(rps1 > alone1, "CPU 1: {rps1} with RPS, {alone1} without");
}

#[test]
fn a_socket_on_one_cpu_takes_every_datagram_and_costs_the_others() {
    let run = |xcpu: &str| {
        let spec = FlowSpec {
            flows: 64,
            ..FlowSpec::default()
        };
        let c = cfg(Mode::Napi, 100_000.0, &["user.udp_sink.cpu=1", xcpu]);
        let mut s = SmpSim::new(&c, 2, &spec).unwrap();
        s.run_for(Nanos::from_millis(200));
        assert_accounted(&mut s);
        s
    };
    let s = run("hw.sim.xcpu_cost_ns=150");
    let (c0, c1) = (&s.cpus[0], &s.cpus[1]);
    assert!(c0.mib.get(&c0.k, "user.udp_sink.datagrams").is_err());
    assert_eq!(int(c0, "user.udp_sink.cpu"), 1);
    let out = int(c0, "net.rps.socket_out");
    assert!(out > 1000, "{out}");
    assert_eq!(int(c1, "net.rps.socket_in"), out);
    let queued = int(c1, "net.netisr.udp_delivered");
    assert!(queued >= out, "CPU 1 queued {queued}, CPU 0 handed {out}");
    // The cost is paid by the CPU that ran the protocol.
    let sys0 = |s: &SmpSim| match s.cpus[0].mib.get(&s.cpus[0].k, "kern.cp_time") {
        Ok(Value::List(l)) => l[2],
        other => panic!("{other:?}"),
    };
    assert!(sys0(&s) > sys0(&run("hw.sim.xcpu_cost_ns=0")));
}

#[test]
fn rfs_steers_flows_to_the_cpu_where_their_app_reads() {
    let spec = FlowSpec {
        flows: 64,
        ..FlowSpec::default()
    };
    let c = cfg(
        Mode::Napi,
        100_000.0,
        &["user.udp_sink.cpu=1", "net.rfs.entries=4096"],
    );
    let mut s = SmpSim::new(&c, 2, &spec).unwrap();
    s.run_for(Nanos::from_millis(200));
    let c0 = &s.cpus[0];
    // The first datagram of each flow goes to the socket; then its flow is
    // known, and its frames go to CPU 1's backlog.
    let (backlog, socket) = (int(c0, "net.rps.handed_out"), int(c0, "net.rps.socket_out"));
    assert!(socket > 0 && socket <= 64, "{socket}");
    assert!(
        backlog > 100 * socket,
        "{backlog} to the backlog, {socket} to the socket"
    );
    assert!(int(c0, "net.rfs.steered") >= backlog);
    assert_eq!(int(c0, "net.rfs.entries"), 4096);
    assert_accounted(&mut s);
}

#[test]
fn a_full_backlog_drops_and_the_drops_are_counted() {
    let c = cfg(
        Mode::Interrupt,
        800_000.0,
        &["net.rps.cpus=2", "net.core.netdev_max_backlog=8"],
    );
    let mut s = SmpSim::new(&c, 2, &all_on_queue_0()).unwrap();
    s.run_for(Nanos::from_millis(100));
    assert!(int(&s.cpus[1], "net.rps.backlog_drops") > 0);
    assert_accounted(&mut s);
}

#[test]
fn app_cpus_are_checked_and_one_cpu_leaves_the_knobs_between_cpus_out() {
    let spec = FlowSpec::default();
    let new = |n: usize, kv: &[&str]| SmpSim::new(&cfg(Mode::Napi, 1000.0, kv), n, &spec);
    assert!(new(4, &["user.udp_sink.cpu=4"]).is_err());
    assert!(new(4, &["user.udp_sink.cpu=-2"]).is_err());
    assert!(new(4, &["user.http.cpu=1"]).is_err());
    assert!(new(4, &["user.http.cpu=0", "user.udp_sink.cpu=-1"]).is_ok());
    assert!(new(2, &["net.rps.cpus=-1"]).is_err());
    let one = new(1, &["net.rps.cpus=15", "user.udp_sink.cpu=0"]).unwrap();
    let first = one.first();
    assert!(first.mib.get(&first.k, "net.rps.cpus").is_err());
    // An unknown knob is still refused at one CPU.
    assert!(new(1, &["net.rps.nonesuch=1"]).is_err());
}

#[test]
fn rps_spreads_one_queue_over_every_cpu() {
    let spec = FlowSpec {
        flows: 64,
        queues: Some(1),
        ..FlowSpec::default()
    };
    let c = cfg(Mode::Napi, 200_000.0, &["net.rps.cpus=15"]);
    let mut s = SmpSim::new(&c, 4, &spec).unwrap();
    s.run_for(Nanos::from_millis(200));
    for (i, cpu) in s.cpus.iter().enumerate().skip(1) {
        assert_eq!(int(cpu, "dev.tap0.rx_packets"), 0, "CPU {i} has no queue");
        assert!(int(cpu, "net.rps.handed_in") > 0, "CPU {i}");
        assert!(int(cpu, "user.udp_sink.datagrams") > 0, "CPU {i}");
    }
    assert_accounted(&mut s);
}

#[test]
fn only_cpu_0_polls_status() {
    let spec = FlowSpec {
        flows: 64,
        ..FlowSpec::default()
    };
    let mut s = SmpSim::new(&cfg(Mode::Polling, 100_000.0, &[]), 2, &spec).unwrap();
    s.run_for(Nanos::from_millis(200));
    // reg_frac 20 at 1000 Hz: CPU 0 checks every 20 ticks, CPU 1 never
    // (its once-a-second statistics read aside, which is not a poll).
    let polls = |c: &Sim| {
        let ifn = &c.k.ifs[0];
        (ifn.counters.polls, ifn.counters.status_checks)
    };
    let (p0, s0) = polls(&s.cpus[0]);
    let (p1, s1) = polls(&s.cpus[1]);
    assert!(p0 > 0 && p1 > 0, "{p0} {p1}");
    assert!(s0 > 0, "CPU 0 polled status {s0} times");
    assert_eq!(s1, 0, "CPU 1 polled status");
}
