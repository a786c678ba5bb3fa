//! Busy polling on virtual time: shapes and accounting, never timings.

use crate::apps::AppKind;
use crate::compare::sim::ArrivalKind;
use crate::kernel::Mode;
use crate::kernel::time::{Hz, Nanos};
use crate::sim::{ProbeLink, Sim, SimConfig};

/// A two-link system under NAPI (tap0 flooded at `pps`, tap1 carrying the
/// HTTP probe) with `sysctls`, run for `ms` of virtual time.
fn two_links(pps: f64, sysctls: &[&str], ms: u64) -> Sim {
    let mut s = Sim::new(&SimConfig {
        mode: Mode::Napi,
        hz: Hz::DEFAULT,
        pattern: ArrivalKind::Poisson.pattern(pps),
        seed: 3,
        apps: vec![AppKind::UdpSink, AppKind::Http, AppKind::Interactive],
        sysctls: sysctls.iter().map(|s| s.to_string()).collect(),
        probe: Some(ProbeLink::Quiet),
        conns: 0,
    })
    .unwrap();
    s.run_for(Nanos::from_millis(ms));
    s
}

fn get(s: &Sim, name: &str) -> u64 {
    s.mib.get(&s.k, name).unwrap().to_string().parse().unwrap()
}

/// The busy poller of the probe's link: http spins up to 100 ms (across
/// the gap between probes) on tap1's NAPI; `prefer` adds
/// `prefer_busy_poll` with DPDK's deferral (2 polls, 200 µs).
fn busy(prefer: bool) -> Vec<&'static str> {
    let mut v = vec!["user.http.busy_poll=100000"];
    if prefer {
        v.extend([
            "user.http.prefer_busy_poll=1",
            "dev.tap1.napi_defer_hard_irqs=2",
            "dev.tap1.gro_flush_timeout=200000",
        ]);
    }
    v
}

/// Light load on the flooded link.
const LIGHT: f64 = 40e3;

#[test]
fn the_busy_polling_app_takes_its_frames_itself() {
    let base = two_links(LIGHT, &[], 600);
    let s = two_links(LIGHT, &busy(false), 600);
    for sim in [&base, &s] {
        let total = crate::report::Accounting::of(&sim.k);
        assert!(total.balanced(), "{total:?}");
    }
    assert_eq!(get(&base, "user.http.busy_poll_frames"), 0);
    assert_eq!(get(&base, "dev.tap1.napi_busy_polls"), 0);
    let frames = get(&s, "user.http.busy_poll_frames");
    assert!(frames > 0, "http polled the probe's frames in: {frames}");
    assert!(get(&s, "user.http.busy_loops") > 0);
    assert!(get(&s, "dev.tap1.napi_busy_polls") >= get(&s, "user.http.busy_polls"));
    assert!(get(&s, "user.http.requests") > 0, "the probe is answered");
    // Frames the app took itself are frames the softirq did not.
    let quiet = crate::report::Accounting::of_if(&s.k, 1);
    assert!(frames <= quiet.received, "{frames} vs {quiet:?}");
    assert!(
        get(&s, "dev.tap1.interrupts") < get(&base, "dev.tap1.interrupts"),
        "the spinning app catches frames before their interrupt"
    );
    // tap0, not busy-polled by anyone, is untouched.
    assert_eq!(get(&s, "dev.tap0.napi_busy_polls"), 0);
    assert_eq!(get(&s, "user.udp_sink.busy_loops"), 0);
}

#[test]
fn cp_time_counts_the_spin_as_the_apps_sys_time() {
    let cp = |s: &Sim| -> Vec<u64> {
        s.mib
            .get(&s.k, "kern.cp_time")
            .unwrap()
            .to_string()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let base = two_links(LIGHT, &[], 600);
    let s = two_links(LIGHT, &busy(false), 600);
    let spin_us = get(&s, "user.http.busy_poll_ns") / 1000;
    let (b, t) = (cp(&base), cp(&s));
    let total: u64 = t.iter().sum();
    assert!(
        spin_us > total / 10,
        "the spin is a real share: {spin_us} of {total} us"
    );
    assert!(t[2] >= spin_us, "sys {} holds the spin {spin_us}", t[2]);
    assert!(
        t[2] - b[2] + 1000 >= spin_us,
        "sys grew by the spin: {} -> {}, spin {spin_us}",
        b[2],
        t[2]
    );
    assert!(
        t[4] < b[4],
        "idle gave way to the spin: {} -> {}",
        b[4],
        t[4]
    );
    assert!(
        get(&s, "user.http.cpu_ns") >= get(&s, "user.http.busy_poll_ns"),
        "the spin is the app's CPU time"
    );
}

#[test]
fn prefer_busy_poll_with_deferral_keeps_the_irq_masked() {
    let plain = two_links(LIGHT, &busy(false), 600);
    let prefer = two_links(LIGHT, &busy(true), 600);
    let (pu, fu) = (
        get(&plain, "dev.tap1.napi_unmasks"),
        get(&prefer, "dev.tap1.napi_unmasks"),
    );
    assert!(get(&prefer, "user.http.busy_poll_frames") > 0);
    assert!(
        fu < pu,
        "each release of a plain busy loop unmasks ({pu}); a preferring one defers ({fu})"
    );
    assert!(
        get(&prefer, "dev.tap1.napi_deferred") > get(&plain, "dev.tap1.napi_deferred"),
        "the stop's completion defers instead"
    );
    assert!(
        get(&prefer, "dev.tap1.interrupts") < get(&plain, "dev.tap1.interrupts"),
        "fewer interrupts with the IRQ held masked"
    );
}

#[test]
fn the_suspension_resumes_when_the_app_goes_idle() {
    let mut s = two_links(
        LIGHT,
        &[
            "user.http.prefer_busy_poll=1",
            "dev.tap1.napi_defer_hard_irqs=100",
            "dev.tap1.gro_flush_timeout=20000",
            "dev.tap1.irq_suspend_timeout=20000000",
        ],
        0,
    );
    // Wait (virtual time, with a deadline) for a probe's events to
    // suspend tap1's IRQs, then for the app's empty poll to resume them
    // and the deferral to run out: the IRQ unmasked again.
    let deadline = s.now() + Nanos::from_secs(2);
    let mut suspended = false;
    while s.now() < deadline {
        s.run_for(Nanos::from_micros(500));
        suspended |= get(&s, "dev.tap1.napi_suspends") > 0;
        if suspended
            && get(&s, "dev.tap1.napi_resumes") > 0
            && s.k.ifs[1].nic.intr_enabled()
            && !s.k.disc.napi.busy_owned(1)
        {
            break;
        }
    }
    assert!(suspended, "a probe's events suspended the IRQs");
    let resumes = get(&s, "dev.tap1.napi_resumes");
    assert!(resumes > 0, "an empty busy poll resumed them");
    assert!(
        s.k.ifs[1].nic.intr_enabled(),
        "back to interrupts once the deferral ran out"
    );
    assert_eq!(
        resumes,
        get(&s, "user.http.busy_poll_timeouts"),
        "each loop that found nothing resumed"
    );
    assert!(get(&s, "user.http.busy_loops") >= resumes);
    assert_eq!(get(&s, "user.http.busy_poll"), 0, "one poll per wait");
}

#[test]
fn out_of_range_busy_poll_knobs_are_refused() {
    let mut s = two_links(LIGHT, &[], 0);
    for bad in [
        ("user.http.busy_poll", "1000001"),
        ("user.http.busy_poll_budget", "0"),
        ("user.http.busy_poll_budget", "65536"),
        ("user.http.prefer_busy_poll", "2"),
        ("dev.tap1.irq_suspend_timeout", "10000000001"),
    ] {
        assert!(s.mib.set(&mut s.k, bad.0, bad.1).is_err(), "{bad:?}");
    }
    assert_eq!(
        get(&s, "user.http.busy_poll_budget"),
        8,
        "SO_BUSY_POLL_BUDGET's default"
    );
    s.mib
        .set(&mut s.k, "user.http.busy_poll_budget", "64")
        .unwrap();
    assert_eq!(get(&s, "user.http.busy_poll_budget"), 64);
}

#[test]
fn a_busy_loop_waits_while_the_napi_thread_has_the_napi() {
    // Threaded NAPI: an interrupt schedules tap1's NAPI for its kernel
    // thread, which the fair class may run after the spinning app; the
    // app's loop then finds the NAPI taken and spins without polling.
    let mut cfg = busy(false);
    cfg.push("dev.tap1.threaded=1");
    let s = two_links(LIGHT, &cfg, 600);
    let total = crate::report::Accounting::of(&s.k);
    assert!(total.balanced(), "{total:?}");
    assert!(get(&s, "user.http.busy_poll_contended") > 0);
    assert!(get(&s, "user.http.requests") > 0, "the probe is answered");
}
