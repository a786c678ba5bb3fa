//! `pollsim compare` end to end, as root: the quick sweep in the private
//! namespace compare makes for itself, its JSON, its accounting, its plot
//! and the livelock shape; and its refusals, which need no root.

mod util;

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use util::{require_root_or_skip, run_pollsim, serial};

#[track_caller]
fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur
            .get(key)
            .unwrap_or_else(|| panic!("missing field {path} in {v}"));
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

#[test]
fn bad_arguments_are_refused_with_status_2() {
    for (args, needle) in [
        (&["compare", "--modes", "bsd"][..], "unknown mode 'bsd'"),
        (
            &["compare", "--modes", "napi:budget=3"][..],
            "'budget': unknown knob",
        ),
        (&["compare", "--rates", "0"][..], "at least 1 pps"),
        (&["compare", "--rates", "fast"][..], "not a number"),
        (
            &["compare", "--duration", "0s"][..],
            "between 1 ms and 600 s",
        ),
        (
            &["compare", "--modes", "polling:user_frac"][..],
            "expected name=value",
        ),
        (&["compare", "--trials", "0"][..], "between 1 and 20"),
        (&["compare", "--max-steal", "101"][..], "between 0 and 100"),
        (&["compare", "--mlfrr-steps", "11"][..], "at most 10"),
        (&["compare", "--hz", "50"][..], "out of range (100..10000)"),
        (
            &["compare", "--hz", "1000,100,1000"][..],
            "1000 is given twice",
        ),
        (
            &["compare", "--reactor", "epoll"][..],
            "invalid value 'epoll'",
        ),
        (
            &["compare", "--reactor", "scan,scan"][..],
            "scan is given twice",
        ),
        (&["compare", "--conns", "16321"][..], "at most 16320"),
        (
            &["compare", "--sim", "--vs-real", "--hz", "100"][..],
            "--vs-real compares one configuration",
        ),
        (
            &["compare", "--sim", "--vs-real", "--conns", "10"][..],
            "it does not take --hz, --reactor, --conns, --cpus, --queues or --flows",
        ),
        (
            &["compare", "--sim", "--vs-real", "--queues", "2"][..],
            "--vs-real compares one configuration",
        ),
        (
            &["compare", "--sim", "--vs-real", "--cpus", "2"][..],
            "--vs-real compares one configuration",
        ),
        (&["compare", "--sim", "--cpus", "0"][..], "between 1 and 64"),
        (
            &["compare", "--sim", "--cpus", "65"][..],
            "between 1 and 64",
        ),
        (
            &["compare", "--sim", "--cpus", "2,2"][..],
            "2 is given twice",
        ),
        (
            &["compare", "--cpus", "2", "--rss-weight", "3,1"][..],
            "its own flow hash",
        ),
        (
            &["compare", "--rss-key", "symmetric"][..],
            "set the simulated NIC's RSS (add --sim)",
        ),
        (
            &["compare", "--sim", "--flows", "0"][..],
            "between 1 and 65536",
        ),
        (
            &[
                "compare",
                "--sim",
                "--cpus",
                "1,4",
                "--rss-weight",
                "1,1,1,1",
            ][..],
            "one weight per queue",
        ),
        (
            &[
                "compare",
                "--sim",
                "--cpus",
                "1,4",
                "--queues",
                "2",
                "--rss-weight",
                "1,1,1",
            ][..],
            "for --queues 2: one weight per queue",
        ),
        (
            &["compare", "--sim", "--queues", "0"][..],
            "--queues 0: between 1 and 256",
        ),
        (
            &["compare", "--sim", "--queues", "257"][..],
            "between 1 and 256",
        ),
        (
            &["compare", "--queues", "2"][..],
            "--queues sets the simulated NIC's queue count",
        ),
        (
            &["compare", "--modes", "polling:kern.reactor.backend=1"][..],
            "which --reactor sweeps",
        ),
    ] {
        let (code, _, err) = run_pollsim(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    }
}

/// The fields the CLI contract names, in every run and summary entry.
fn check_schema(doc: &Value) {
    let runs = doc["runs"].as_array().expect("runs");
    let summary = doc["summary"].as_array().expect("summary");
    assert!(runs.len() >= 10, "5 rates x 2 modes: {}", runs.len());
    for r in runs {
        assert!(r["mode"].is_string() && r["params"].is_object(), "{r}");
        for f in [
            "offered_pps",
            "received_pps",
            "delivered_pps",
            "drops.rx_missed",
            "drops.ipintrq",
            "drops.socket",
            "drops.app",
            "cp_time_pct.user",
            "cp_time_pct.sys",
            "cp_time_pct.intr",
            "cp_time_pct.idle",
            "probe_ms.timeouts",
        ] {
            num(r, f);
        }
        let p = &r["probe_ms"];
        assert!(p.get("p50").is_some() && p.get("p99").is_some(), "{r}");
        // The interactive process ran in every window.
        assert!(num(r, "interactive.slices") > 0.0, "{r}");
        num(r, "interactive.missed");
        assert!(r["interactive"].get("late_p99_ms").is_some(), "{r}");
        assert_eq!(
            r["params"]["dev.tap1.polling"], r["params"]["dev.tap0.polling"],
            "{r}"
        );
        assert_eq!(r["simulated"], Value::Bool(false));
        assert_eq!(r["params"]["machdep.idle"], "spin", "{r}");
        assert!(
            r["params"]["kern.sched.stall_compensate"].is_number(),
            "{r}"
        );
        check_diagnostics(r);
        // Trials: the row, its spread and the trials kept.
        assert!(r["noisy"].is_boolean(), "{r}");
        let trials = r["trials"].as_array().expect("trials");
        assert!(!trials.is_empty(), "{r}");
        assert!(num(r, "tries") >= trials.len() as f64, "{r}");
        assert_eq!(num(r, "tries") - num(r, "discarded"), trials.len() as f64);
        for col in ["offered_pps", "delivered_pps", "cpu_user", "cpu_idle"] {
            let [lo, hi] = [0, 1].map(|i| r["spread"][col][i].as_f64().expect("[min, max]"));
            assert!(lo <= hi, "{col}: {r}");
        }
        for t in trials {
            check_diagnostics(t);
        }
    }
    assert_eq!(
        doc["meta"]["probe_link"], "quiet",
        "the probe's default link"
    );
    let host = &doc["meta"]["host"];
    assert!(host["quiet"].is_boolean(), "{host}");
    num(host, "host.steal_pct");
    num(host, "host.stall_pct");
    assert_eq!(summary.len(), 2);
    for s in summary {
        for f in [
            "mlfrr_pps",
            "peak_delivered_pps",
            "delivered_at_max_offered_pps",
        ] {
            num(s, f);
        }
        assert!(s.get("mlfrr_resolution_pps").is_some(), "{s}");
        if let Some(search) = s.get("mlfrr_search") {
            assert!(num(search, "lo_pps") <= num(search, "hi_pps"), "{s}");
            assert_eq!(num(s, "mlfrr_pps"), num(search, "lo_pps"));
            for step in search["steps"].as_array().expect("steps") {
                check_diagnostics(step);
            }
        }
    }
}

/// The host's account and the polling diagnostics of a window.
#[track_caller]
fn check_diagnostics(r: &Value) {
    for f in [
        "host.steal_pct",
        "host.stall_pct",
        "host.stalls",
        "host.stolen_us",
        "host.after_stall.lost_polls",
        "host.after_stall.short_ticks",
        "host.after_stall.ipintrq_drops",
        "polling.lost_polls",
        "polling.short_ticks",
        "polling.suspect",
        "polling.burst.mean",
        "polling.burst.min",
        "polling.burst.max",
    ] {
        num(r, f);
    }
    let h = &r["host"];
    assert!(h.get("stall_max_us").is_some(), "{r}");
    for q in ["p50", "p99", "max"] {
        // Ticks ran in every window: lateness is known.
        num(h, &format!("tick_late_us.{q}"));
    }
    let b = &r["polling"]["burst"];
    assert!(
        num(b, "min") <= num(b, "mean") && num(b, "mean") <= num(b, "max"),
        "{b}"
    );
}

/// offered = received + rx_missed within 1 % (received less the probe's
/// own frames, which the flood did not offer), and received splits exactly
/// into the drops by stage, what is still queued and what was delivered.
///
/// The two sides are counted by two processes: the sender's count is read
/// just before pollsim answers a snapshot, so a stall of pollsim at either
/// end of the window lets the flood send frames the other side counts in
/// the next window. Up to the longest stall at each end is allowed beyond
/// the 1 % (on a busy host, 41 ms stalls made a 1.3 % gap in a 1 s window).
fn check_accounting(doc: &Value) {
    for r in doc["runs"].as_array().unwrap() {
        let offered = num(r, "offered_pps");
        let seconds = num(r, "seconds");
        let probe = num(r, "frames.other") / seconds;
        let seen = num(r, "received_pps") - probe + num(r, "drops.rx_missed");
        let stall = r["host"]["stall_max_us"].as_f64().unwrap_or(0.0) / 1e6;
        assert!(
            (offered - seen).abs() <= (0.01 + 2.0 * stall / seconds) * offered,
            "offered {offered} vs received + rx_missed {seen}: {r}"
        );
        let f = &r["frames"];
        let parts = [
            "ipintrq_drops",
            "ipintrq_queued",
            "socket_drops",
            "socket_queued",
            "delivered",
            "other",
        ]
        .iter()
        .map(|k| num(f, k))
        .sum::<f64>();
        assert_eq!(num(f, "received"), parts, "frames do not balance: {f}");
        assert!(num(f, "delivered") > 0.0, "{r}");
    }
}

/// Per mode: (peak delivered, delivered at the highest offered rate).
fn shape(doc: &Value, mode: &str) -> (f64, f64) {
    let runs: Vec<&Value> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mode"] == mode)
        .collect();
    let peak = runs
        .iter()
        .map(|r| num(r, "delivered_pps"))
        .fold(0.0, f64::max);
    let top = runs
        .iter()
        .max_by(|a, b| num(a, "offered_pps").total_cmp(&num(b, "offered_pps")))
        .map(|r| num(r, "delivered_pps"))
        .unwrap();
    (peak, top)
}

#[test]
fn quick_sweep_shows_livelock_and_accounts_for_every_frame() {
    if !require_root_or_skip("quick_sweep_shows_livelock_and_accounts_for_every_frame") {
        return;
    }
    let _serial = serial();
    let out = std::env::temp_dir().join(format!("pollsim-compare-{}", std::process::id()));
    let dir = out.to_str().unwrap();
    // One trial a point and a short MLFRR search: the shape and the
    // schema are tested here, not the spread of the figures.
    let (code, stdout, stderr) = run_pollsim(&[
        "compare",
        "--quick",
        "--json",
        "--trials",
        "1",
        "--mlfrr-steps",
        "2",
        "--out",
        dir,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("host: steal "),
        "the host verdict: {stderr}"
    );
    // One progress line per point on stderr.
    assert!(
        stderr.lines().filter(|l| l.contains("delivered")).count() >= 10,
        "{stderr}"
    );
    let doc: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    check_schema(&doc);
    check_accounting(&doc);
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(file, doc, "results.json is what --json printed");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + doc["runs"].as_array().unwrap().len()
    );

    let svg = std::fs::read_to_string(out.join("livelock.svg")).unwrap();
    let svg = roxmltree::Document::parse(&svg).expect("a well-formed SVG");
    assert_eq!(svg.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = svg
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for mode in ["interrupt", "polling"] {
        assert!(texts.contains(&mode), "legend entry for {mode}: {texts:?}");
    }
    let series = svg
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split_whitespace().count() >= 5)
        })
        .count();
    assert!(
        series >= 4,
        "two series in each of the first two panels: {series}"
    );
    assert!(
        texts.contains(&"(c) responsiveness vs offered"),
        "the responsiveness panel: {texts:?}"
    );

    let (ipeak, itop) = shape(&doc, "interrupt");
    let (ppeak, ptop) = shape(&doc, "polling");
    assert!(
        itop < 0.5 * ipeak,
        "interrupt livelocks: {itop} at max vs peak {ipeak}"
    );
    assert!(
        ptop >= 0.8 * ppeak,
        "polling holds: {ptop} at max vs peak {ppeak}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Keep CPU 0, pollsim's CPU, busy from a thread of this process until
/// the returned flag is set: the host, as pollsim sees it, turns noisy.
fn hog_cpu0(stop: &AtomicBool) {
    let mut set = nix::sched::CpuSet::new();
    set.set(0).expect("cpu 0");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pin to cpu 0");
    while !stop.load(Ordering::Relaxed) {
        std::hint::spin_loop();
    }
}

#[test]
fn a_noisy_trial_is_measured_again_and_marked() {
    if !require_root_or_skip("a_noisy_trial_is_measured_again_and_marked") {
        return;
    }
    let _serial = serial();
    let out = std::env::temp_dir().join(format!("pollsim-compare-noisy-{}", std::process::id()));
    let dir = out.to_str().unwrap();
    let stop = AtomicBool::new(false);
    let (code, stdout, stderr) = std::thread::scope(|s| {
        s.spawn(|| hog_cpu0(&stop));
        let r = run_pollsim(&[
            "compare",
            "--quick",
            "--json",
            "--modes",
            "polling",
            "--rates",
            "20k",
            "--trials",
            "1",
            "--work-ns",
            "2000",
            "--mlfrr-steps",
            "0",
            "--out",
            dir,
        ]);
        stop.store(true, Ordering::Relaxed);
        r
    });
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    // A thread spinning on the same CPU takes about half of it: far over
    // the default --max-steal of 5 %.
    assert_eq!(doc["meta"]["host"]["quiet"], false, "{}", doc["meta"]);
    assert!(stderr.contains("noisy"), "{stderr}");
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    check_diagnostics(r);
    assert_eq!(num(r, "tries"), 2.0, "re-run once (2 x 1 trial): {r}");
    assert_eq!(num(r, "discarded"), 1.0, "{r}");
    assert_eq!(r["noisy"], true, "{r}");
    let kept = &r["trials"].as_array().unwrap()[0];
    assert_eq!(kept["noisy"], true, "{kept}");
    let noise = num(kept, "host.stall_pct").max(num(kept, "host.steal_pct"));
    assert!(noise > 5.0, "{kept}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let noisy = header
        .iter()
        .position(|h| *h == "noisy")
        .expect("noisy column");
    assert_eq!(row[noisy], "true", "{csv}");
    let _ = std::fs::remove_dir_all(&out);
}

/// On the real tap a sweep with `--conns` starts its instance (which, at
/// 1000, says it raised tcp-echo's max_conns of 1024 to 1064 before it
/// says it runs), holds the
/// idle connections at the point, and records them and the backend.
#[test]
fn a_real_sweep_with_idle_connections_holds_them() {
    if !require_root_or_skip("a_real_sweep_with_idle_connections_holds_them") {
        return;
    }
    let _serial = serial();
    let out = std::env::temp_dir().join(format!("pollsim-compare-rconns-{}", std::process::id()));
    let dir = out.to_str().unwrap();
    let (code, stdout, stderr) = run_pollsim(&[
        "compare",
        "--json",
        "--modes",
        "polling",
        "--reactor",
        "scan",
        "--conns",
        "1000",
        "--rates",
        "20k",
        "--duration",
        "500ms",
        "--trials",
        "1",
        "--work-ns",
        "2000",
        "--mlfrr-steps",
        "0",
        "--out",
        dir,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{stdout}");
    let r = &runs[0];
    assert_eq!(num(r, "conns"), 1000.0, "{r}");
    assert_eq!(r["reactor"], "scan", "{r}");
    assert_eq!(
        r["params"]["kern.reactor.backend"].as_f64(),
        Some(1.0),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// A simulated sweep with idle connections runs at each `--conns` point
/// (the synthetic connections are counted where compare checks them) and
/// its rows carry the count they ran with.
#[test]
fn a_sim_sweep_with_idle_connections_runs_at_each_count() {
    let out = std::env::temp_dir().join(format!("pollsim-compare-conns-{}", std::process::id()));
    let dir = out.to_str().unwrap();
    let args = [
        "compare",
        "--sim",
        "--modes",
        "polling",
        "--reactor",
        "scan",
        "--conns",
        "0,300",
        "--rates",
        "20k",
        "--duration",
        "100ms",
        "--work-ns",
        "2000",
        "--mlfrr-steps",
        "0",
        "--out",
        dir,
    ];
    let (code, table, stderr) = run_pollsim(&args);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let conns: Vec<f64> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| num(r, "conns"))
        .collect();
    assert_eq!(conns, [0.0, 300.0], "{table}");
    assert!(table.contains("conns=300"), "{table}");
    let _ = std::fs::remove_dir_all(&out);
}

/// A small simulated sweep over two axes: every row carries its `hz`,
/// `reactor` and `conns` (and ran at them: `params` read back), the
/// summary has one entry per mode x hz x reactor, results.csv ends with
/// the three columns, and the table names each series by the two axes
/// that vary (not by conns, which does not).
#[test]
fn a_sim_sweep_over_hz_and_reactor_has_a_series_per_combination() {
    let out = std::env::temp_dir().join(format!("pollsim-compare-axes-{}", std::process::id()));
    let dir = out.to_str().unwrap();
    let args = [
        "compare",
        "--sim",
        "--modes",
        "polling,interrupt",
        "--hz",
        "100,1000",
        "--reactor",
        "scan,ready",
        "--rates",
        "20k,300k",
        "--duration",
        "200ms",
        "--work-ns",
        "2000",
        "--mlfrr-steps",
        "0",
        "--out",
        dir,
    ];
    let (code, table, stderr) = run_pollsim(&args);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2 * 2 * 2 * 2, "mode x hz x reactor x rate");
    let mut seen = Vec::new();
    for r in runs {
        let hz = r["hz"].as_u64().expect("hz");
        let reactor = r["reactor"].as_str().expect("reactor");
        assert_eq!(num(r, "conns"), 0.0, "{r}");
        let param = |k: &str| r["params"][k].as_f64().unwrap_or(f64::NAN);
        assert_eq!(param("kern.hz"), hz as f64, "ran at its hz: {r}");
        let backend = if reactor == "scan" { 1.0 } else { 0.0 };
        assert_eq!(param("kern.reactor.backend"), backend, "{r}");
        seen.push((r["mode"].as_str().unwrap().to_string(), hz, reactor));
    }
    // The product, mode by mode, hz then reactor, rates ascending.
    let mut want = Vec::new();
    for mode in ["polling", "interrupt"] {
        for hz in [100, 1000] {
            for reactor in ["scan", "ready"] {
                for _rate in 0..2 {
                    want.push((mode.to_string(), hz, reactor));
                }
            }
        }
    }
    assert_eq!(seen, want);
    let summary = doc["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2 * 2 * 2, "one per mode x hz x reactor");
    for (s, w) in summary.iter().zip(want.iter().step_by(2)) {
        assert_eq!(s["mode"], w.0.as_str(), "{s}");
        assert_eq!(s["hz"].as_u64(), Some(w.1), "{s}");
        assert_eq!(s["reactor"], w.2, "{s}");
        assert_eq!(num(s, "conns"), 0.0, "{s}");
    }
    assert_eq!(doc["meta"]["axes"]["hz"], serde_json::json!([100, 1000]));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",hz,reactor,conns,cpus")
    );
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",100,scan,0,1"),
        "{csv}"
    );
    for label in [
        "polling hz=100 reactor=scan",
        "interrupt hz=1000 reactor=ready",
    ] {
        let rows = table.lines().filter(|l| l.starts_with(label)).count();
        assert_eq!(
            rows,
            2 + 1,
            "{label}: two rates and its summary line: {table}"
        );
    }
    assert!(!table.contains("conns="), "{table}");
    let svg = std::fs::read_to_string(out.join("livelock.svg")).unwrap();
    let svg = roxmltree::Document::parse(&svg).expect("a well-formed SVG");
    let texts: Vec<&str> = svg
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for label in [
        "polling hz=100 reactor=scan",
        "interrupt hz=1000 reactor=ready",
    ] {
        assert!(texts.contains(&label), "legend entry {label}: {texts:?}");
    }
    // Polling serves a polled interface once per tick, at most burst_max
    // (150) frames a tick: at 100 Hz it cannot deliver more than 15k/s.
    for r in runs
        .iter()
        .filter(|r| r["mode"] == "polling" && num(r, "hz") == 100.0)
    {
        assert!(num(r, "delivered_pps") <= 150.0 * 100.0 * 1.01, "{r}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// A simulated sweep over CPUs: with 256 flows RSS spreads the flood over
/// the four queues, polling's capacity grows with the CPUs and interrupt
/// mode still livelocks on each; with one flow, one queue carries it all.
/// Rows and the summary carry `cpus`, rows at 4 CPUs a load per queue.
#[test]
fn a_sim_sweep_over_cpus_spreads_flows_over_the_queues() {
    let out = std::env::temp_dir().join(format!("pollsim-compare-cpus-{}", std::process::id()));
    let sweep = |modes: &str, rates: &str, flows: &str| -> Value {
        let dir = out.join(flows);
        let args = [
            "compare",
            "--sim",
            "--modes",
            modes,
            "--cpus",
            "1,4",
            "--flows",
            flows,
            "--rates",
            rates,
            "--duration",
            "200ms",
            "--work-ns",
            "2000",
            "--mlfrr-steps",
            "0",
            "--out",
            dir.to_str().unwrap(),
        ];
        let (code, table, stderr) = run_pollsim(&args);
        assert_eq!(code, 0, "{stderr}");
        assert!(table.contains("cpus=4"), "{table}");
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
    };
    let at = |doc: &Value, mode: &str, cpus: f64| -> Vec<Value> {
        doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["mode"] == mode && num(r, "cpus") == cpus)
            .cloned()
            .collect()
    };
    let doc = sweep("polling,interrupt", "300k,2.4M", "256");
    assert_eq!(doc["summary"].as_array().unwrap().len(), 4, "mode x cpus");
    let svg = std::fs::read_to_string(out.join("256").join("livelock.svg")).unwrap();
    let svg = roxmltree::Document::parse(&svg).expect("a well-formed SVG");
    let texts: Vec<&str> = svg
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for caption in ["(d) peak delivered vs CPUs", "(e) load per queue"] {
        assert!(
            texts.iter().any(|t| t.starts_with(caption)),
            "{caption}: {texts:?}"
        );
    }
    assert_eq!(doc["meta"]["axes"]["cpus"], serde_json::json!([1, 4]));
    for r in at(&doc, "polling", 1.0) {
        assert!(r.get("queues").is_none(), "one CPU: the row is the queue");
    }
    for r in at(&doc, "polling", 4.0)
        .iter()
        .chain(&at(&doc, "interrupt", 4.0))
    {
        let q = r["queues"].as_array().unwrap();
        assert_eq!(q.len(), 4, "{r}");
        assert!(q.iter().all(|q| num(q, "offered_pps") > 0.0), "{r}");
        // The queues took what the rows say tap0 took (tap1 adds the probe).
        let rx: f64 = q.iter().map(|q| num(q, "received_pps")).sum();
        assert!(rx <= num(r, "received_pps") + 1e-6, "{r}");
    }
    let delivered =
        |rows: &[Value]| -> Vec<f64> { rows.iter().map(|r| num(r, "delivered_pps")).collect() };
    let (p1, p4) = (
        delivered(&at(&doc, "polling", 1.0)),
        delivered(&at(&doc, "polling", 4.0)),
    );
    assert!(p4[1] >= 3.0 * p1[1], "polling at 2.4M: {p1:?} vs {p4:?}");
    let i4 = delivered(&at(&doc, "interrupt", 4.0));
    assert!(i4[1] < 0.2 * i4[0], "interrupt at 4 CPUs livelocks: {i4:?}");

    let doc = sweep("polling", "2.4M", "1");
    let r = &at(&doc, "polling", 4.0)[0];
    let busy: Vec<f64> = r["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| num(q, "offered_pps"))
        .filter(|&o| o > 0.0)
        .collect();
    assert_eq!(busy.len(), 1, "one flow, one queue: {r}");
    let one = delivered(&at(&doc, "polling", 1.0))[0];
    assert!(num(r, "delivered_pps") <= 1.3 * one, "{one} vs {r}");
    let _ = std::fs::remove_dir_all(&out);
}

/// A real sweep over CPUs (`run --cpus N --queues N` at each count, in
/// the private namespace compare makes; tap0 made multiqueue for 2 and
/// single-queue again for 1) under 64 flows: a row per mode and count,
/// each balancing with its frames summed over the CPUs, rows at 2 CPUs a
/// load per queue with frames on both queues, the summary and the CSV
/// carrying `cpus`. On a host of one CPU the count 2 is skipped, and meta
/// says so.
#[test]
fn a_real_sweep_over_cpus_takes_frames_on_both_queues_and_balances() {
    if !require_root_or_skip("a_real_sweep_over_cpus_takes_frames_on_both_queues_and_balances") {
        return;
    }
    let _serial = serial();
    let out = std::env::temp_dir().join(format!("pollsim-compare-rcpus-{}", std::process::id()));
    let dir = out.to_str().unwrap();
    // One light rate, one trial, no search: shapes and accounting, not
    // figures. --max-steal 100: a trial at 2 CPUs shares host CPU 1 with
    // the flood, and re-running it would only take longer.
    let (code, stdout, stderr) = run_pollsim(&[
        "compare",
        "--json",
        "--modes",
        "interrupt,polling",
        "--cpus",
        "1,2",
        "--flows",
        "64",
        "--rates",
        "20k",
        "--duration",
        "500ms",
        "--trials",
        "1",
        "--max-steal",
        "100",
        "--work-ns",
        "2000",
        "--mlfrr-steps",
        "0",
        "--out",
        dir,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    let meta = &doc["meta"];
    assert_eq!(meta["flows"], 64, "{meta}");
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    let counts: Vec<u64> = if host >= 2 {
        assert_eq!(meta["cpus_skipped"], serde_json::json!([]), "{meta}");
        vec![1, 2]
    } else {
        assert_eq!(meta["cpus_skipped"], serde_json::json!([2]), "{meta}");
        assert!(
            stderr.contains("--cpus 2 skipped on the real tap"),
            "{stderr}"
        );
        vec![1]
    };
    assert_eq!(meta["axes"]["cpus"], serde_json::json!(counts), "{meta}");
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        2 * counts.len(),
        "a row per mode and count: {stdout}"
    );
    check_accounting(&doc);
    for mode in ["interrupt", "polling"] {
        for &n in &counts {
            let rows: Vec<&Value> = runs
                .iter()
                .filter(|r| r["mode"] == mode && r["cpus"].as_u64() == Some(n))
                .collect();
            assert_eq!(rows.len(), 1, "{mode} at {n} CPUs: {stdout}");
            let r = rows[0];
            assert_eq!(r["simulated"], false, "{r}");
            if n == 1 {
                assert!(
                    r.get("queues").is_none(),
                    "one CPU: the row is the queue: {r}"
                );
                assert_eq!(r["params"]["machdep.idle"], "spin", "{r}");
                continue;
            }
            assert_eq!(r["params"]["machdep.idle"], "hlt", "{r}");
            let q = r["queues"].as_array().expect("queues at 2 CPUs");
            assert_eq!(q.len(), 2, "{r}");
            for (i, q) in q.iter().enumerate() {
                assert_eq!(num(q, "queue"), i as f64, "{r}");
                assert!(
                    num(q, "received_pps") > 0.0,
                    "64 flows, queue {i} idle: {r}"
                );
                assert!(num(q, "delivered_pps") > 0.0, "CPU {i}'s udp-sink: {r}");
                let cpu: f64 = ["user", "sys", "intr", "idle"]
                    .iter()
                    .map(|k| num(&q["cp_time_pct"], k))
                    .sum();
                assert!((cpu - 100.0).abs() < 0.5, "CPU {i}'s shares: {r}");
            }
            // The queues took what the row says tap0 took (tap1, CPU 0's
            // quiet NIC, adds the probe's frames).
            let rx: f64 = q.iter().map(|q| num(q, "received_pps")).sum();
            assert!(rx <= num(r, "received_pps") + 1e-6, "{r}");
            let read: f64 = q.iter().map(|q| num(q, "delivered_pps")).sum();
            assert!((read - num(r, "delivered_pps")).abs() < 1e-6, "{r}");
            // The probe ran on the quiet tap1, which CPU 0 serves.
            // Answered at least once (a timeout is a matter of the host's
            // load, not of the shape under test).
            let sent = num(r, "probe_ms.sent");
            assert!(sent > num(r, "probe_ms.timeouts"), "{r}");
        }
    }
    let summary = doc["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2 * counts.len(), "mode x cpus: {stdout}");
    assert!(summary.iter().all(|s| s["cpus"].is_number()), "{stdout}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"cpus"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + runs.len());
    let _ = std::fs::remove_dir_all(&out);
}
