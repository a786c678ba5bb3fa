//! Several pollers over one set of sockets: the thundering herd on virtual
//! time. N pollers without `EPOLLEXCLUSIVE` are all woken by each ready
//! socket, one of them finds the event and the others nothing; with it,
//! one is woken. Counters, not timings; the herd's switches show in
//! `kern.cp_time`'s sys.

mod util;

use pollsim::apps::AppKind;
use pollsim::compare::sim::ArrivalKind;
use pollsim::kernel::Mode;
use pollsim::kernel::pollers::WakeStats;
use pollsim::kernel::time::{Hz, Nanos};
use pollsim::report::Accounting;
use pollsim::sim::{Sim, SimConfig};
use std::time::Duration;
use util::{Running, eventually, require_root_or_skip, run_pollsim, with_tap};

/// Pollers in the herd runs.
const N: u64 = 4;

/// What one run of 200 virtual ms shows: the pollers' counters, the
/// datagrams udp-sink read, the CPU's sys time (µs) and the switch's cost.
struct Herd {
    wake: WakeStats,
    events: u64,
    read: u64,
    sys_us: u64,
    ctxsw_ns: u64,
}

/// udp-sink under a light flood (20 kpps, interrupt mode: each datagram
/// its own arrival, the pollers asleep when it comes) with `sysctls`.
fn herd(sysctls: &[&str]) -> Herd {
    let mut s = Sim::new(&SimConfig {
        mode: Mode::Interrupt,
        hz: Hz::DEFAULT,
        pattern: ArrivalKind::Constant.pattern(20e3),
        seed: 11,
        apps: vec![AppKind::UdpSink],
        sysctls: sysctls.iter().map(|s| s.to_string()).collect(),
        probe: None,
        conns: 0,
    })
    .unwrap();
    s.run_for(Nanos::from_millis(200));
    let a = Accounting::of(&s.k);
    assert!(a.balanced(), "{a:?}");
    let cp = s.k.cpu.cp_time(s.now());
    Herd {
        wake: s.k.reactor.pollers().stats,
        events: s.k.reactor.stats.events,
        read: a.app_read,
        sys_us: cp.0[2] / 1000,
        ctxsw_ns: s.k.cost.map_or(0, |c| c.ctxsw_ns),
    }
}

fn ratio(w: &WakeStats) -> f64 {
    w.wakeups as f64 / w.ready_events as f64
}

#[test]
fn n_pollers_without_exclusive_wake_n_per_ready_event_and_with_it_one() {
    let n = format!("kern.reactor.pollers={N}");
    let one = herd(&[]);
    let all = herd(&[&n, "kern.reactor.wakeup=all"]);
    let excl = herd(&[&n, "kern.reactor.wakeup=exclusive"]);
    for (name, h) in [("one", &one), ("all", &all), ("exclusive", &excl)] {
        assert!(
            h.wake.ready_events > 1000,
            "{name}: the flood made arrivals: {:?}",
            h.wake
        );
        assert!(h.read > 3000, "{name}: udp-sink read {}", h.read);
    }
    // The herd: every poller woken per ready socket, one finds it.
    let r = ratio(&all.wake);
    assert!(
        (N as f64 - 0.5..=N as f64).contains(&r),
        "all: {r:.2} wake-ups per ready event: {:?}",
        all.wake
    );
    assert!(
        all.wake.wasted_wakeups >= (N - 1) * all.events * 9 / 10,
        "all: the others find nothing: {:?}, {} events",
        all.wake,
        all.events
    );
    // EPOLLEXCLUSIVE: one.
    let r = ratio(&excl.wake);
    assert!(
        r <= 1.1,
        "exclusive: {r:.2} wake-ups per ready event: {:?}",
        excl.wake
    );
    assert!(
        excl.wake.wasted_wakeups * 10 <= excl.wake.wakeups,
        "{:?}",
        excl.wake
    );
    // One poller (the apps' own loop) is never more than woken once.
    assert!(ratio(&one.wake) <= 1.0, "{:?}", one.wake);
    assert_eq!((one.wake.wasted_wakeups, one.wake.wakeup_ns), (0, 0));
    // Each dedicated poller's switch-in costs hw.sim.ctxsw_ns, in sys: the
    // herd's waste is CPU, not only a counter.
    for h in [&all, &excl] {
        assert_eq!(h.wake.wakeup_ns, h.wake.wakeups * h.ctxsw_ns);
    }
    assert!(all.ctxsw_ns > 0);
    let extra_us = (all.wake.wakeup_ns - excl.wake.wakeup_ns) / 1000;
    assert!(
        all.sys_us >= excl.sys_us + extra_us * 9 / 10,
        "sys {} µs vs {} µs, the herd's switches {} µs more",
        all.sys_us,
        excl.sys_us,
        extra_us
    );
}

/// ERTS's pollsets: a socket belongs to one pollset, poller j waits in
/// pollset j % M, so with `all` a ready socket wakes the N/M pollers of
/// its pollset only.
#[test]
fn pollsets_split_the_herd() {
    let n = format!("kern.reactor.pollers={N}");
    for (m, want) in [(2, 2.0), (4, 1.0)] {
        let sets = format!("kern.reactor.pollsets={m}");
        let h = herd(&[&n, &sets, "kern.reactor.wakeup=all"]);
        let r = ratio(&h.wake);
        assert!(
            (want - 0.5..=want).contains(&r),
            "{m} pollsets: {r:.2} wake-ups per ready event: {:?}",
            h.wake
        );
    }
}

/// The same runs from the command line, the nodes read by name; bad
/// values refused.
#[test]
fn the_herd_is_reachable_from_the_cli() {
    let run = |wakeup: &str| {
        let (code, out, err) = run_pollsim(&[
            "run",
            "--sim",
            "--duration",
            "0.2",
            "--mode",
            "interrupt",
            "--apps",
            "udp-sink",
            "--sim-rate",
            "20k",
            "--sysctl",
            "kern.reactor.pollers=4",
            "--sysctl",
            &format!("kern.reactor.wakeup={wakeup}"),
        ]);
        assert_eq!(code, 0, "{err}");
        let int = |name: &str| -> u64 {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("{name} in {out}"))
                .trim()
                .parse()
                .unwrap()
        };
        assert_eq!(int("kern.reactor.pollers"), 4);
        int("kern.reactor.wakeups") as f64 / int("kern.reactor.ready_events") as f64
    };
    let all = run("all");
    let excl = run("exclusive");
    assert!((3.5..=4.0).contains(&all), "{all}");
    assert!(excl <= 1.1, "{excl}");
    for bad in [
        "kern.reactor.pollers=0",
        "kern.reactor.pollers=1025",
        "kern.reactor.pollsets=2",
        "kern.reactor.wakeup=some",
    ] {
        let (code, _, err) = run_pollsim(&["run", "--sim", "--duration", "0.01", "--sysctl", bad]);
        assert_ne!(code, 0, "{bad} accepted: {err}");
    }
}

/// On the real clock, in a private namespace: a light flood (2 kpps, 600
/// datagrams, each its own arrival) to udp-sink with 4 pollers; the herd's
/// shape holds in the counters (the pollers are one host thread there, so
/// no switch is charged: `wakeup_ns` stays 0). Host stalls may batch
/// arrivals, which only lowers wake-ups per event, so the bound for `all`
/// is looser than on virtual time.
#[test]
fn the_herd_shows_on_the_real_tap() {
    if !require_root_or_skip("the_herd_shows_on_the_real_tap") {
        return;
    }
    let _one = util::serial();
    for (wakeup, lo, hi) in [("all", 2.5, 4.0), ("exclusive", 0.5, 1.0)] {
        let (ratio, wasted, ns) = with_tap(|| {
            let w = format!("kern.reactor.wakeup={wakeup}");
            let run = Running::start(&[
                "--apps",
                "udp-sink",
                "--mode",
                "interrupt",
                "--sysctl",
                "kern.reactor.pollers=4",
                "--sysctl",
                &w,
            ]);
            let (code, mac, err) = run.sysctl(&["-n", "dev.tap0.ether"]);
            assert_eq!(code, 0, "{err}");
            let (code, _, err) = run_pollsim(&[
                "flood",
                "--if",
                "tap0",
                "--rate",
                "2k",
                "--count",
                "600",
                "--dst-mac",
                mac.trim(),
            ]);
            assert_eq!(code, 0, "{err}");
            eventually(Duration::from_secs(5), || {
                (run.int("user.udp_sink.datagrams") >= 590).then_some(())
            })
            .expect("udp-sink read the flood");
            let s = run.stop();
            let ratio =
                s.int("kern.reactor.wakeups") as f64 / s.int("kern.reactor.ready_events") as f64;
            (
                ratio,
                s.int("kern.reactor.wasted_wakeups"),
                s.int("kern.reactor.wakeup_ns"),
            )
        });
        eprintln!("real tap, 4 pollers, {wakeup}: {ratio:.2} wake-ups per ready event");
        assert!((lo..=hi).contains(&ratio), "{wakeup}: {ratio:.2}");
        assert_eq!(ns, 0, "no switch is charged on the real clock");
        if wakeup == "all" {
            assert!(wasted > 0);
        }
    }
}
