//! `pollsim compare` end to end, as root: the quick sweep in the private
//! namespace compare makes for itself, its JSON, its accounting, its plot
//! and the livelock shape; and its refusals, which need no root.

mod util;

use serde_json::Value;
use util::{require_root_or_skip, run_pollsim};

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
        (&["compare", "--modes", "napi"][..], "unknown mode 'napi'"),
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
        assert_eq!(r["simulated"], Value::Bool(false));
    }
    assert_eq!(summary.len(), 2);
    for s in summary {
        for f in [
            "mlfrr_pps",
            "peak_delivered_pps",
            "delivered_at_max_offered_pps",
        ] {
            num(s, f);
        }
    }
}

/// offered = received + rx_missed within 1 %, and received splits exactly
/// into the drops by stage, what is still queued and what was delivered.
fn check_accounting(doc: &Value) {
    for r in doc["runs"].as_array().unwrap() {
        let offered = num(r, "offered_pps");
        let seen = num(r, "received_pps") + num(r, "drops.rx_missed");
        assert!(
            (offered - seen).abs() <= 0.01 * offered,
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
    let out = std::env::temp_dir().join(format!("pollsim-compare-{}", std::process::id()));
    let dir = out.to_str().unwrap();
    let (code, stdout, stderr) = run_pollsim(&["compare", "--quick", "--json", "--out", dir]);
    assert_eq!(code, 0, "{stderr}");
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
        "two series in each of the two panels: {series}"
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
