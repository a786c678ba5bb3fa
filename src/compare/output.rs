//! What `pollsim compare` prints and writes: the table on stdout, a
//! progress line per point, `results.csv`, `results.json` and
//! `livelock.svg`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::model::{Results, Run, Summary};
pub use super::summary::summarize;

/// A rate or count in a short human form: `950`, `12.5`, `123.4k`, `1.23M`;
/// `-` for a non-finite value.
pub fn human(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a >= 999_950.0 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 999.95 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 99.95 || x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A percentage with one decimal.
fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-".into()
    }
}

/// Milliseconds, or `-` when there is no value.
fn ms(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() && v >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "-".into(),
    }
}

/// `(simulated)`-style marker for a set of runs: empty when none is
/// simulated.
fn sim_marker(runs: &[Run]) -> &'static str {
    let sim = runs.iter().filter(|r| r.simulated).count();
    if sim == 0 {
        ""
    } else if sim == runs.len() {
        " (simulated)"
    } else {
        " (partly simulated: rows marked *)"
    }
}

/// The summary to show: the one in `results`, or computed from its runs
/// when it is empty.
fn summary_of(results: &Results) -> Vec<Summary> {
    if results.summary.is_empty() {
        summarize(&results.runs)
    } else {
        results.summary.clone()
    }
}

/// Right-aligned columns after the mode: (header, width).
const COLS: [(&str, usize); 16] = [
    ("offered", 8),
    ("received", 8),
    ("delivered", 9),
    ("rx_missed", 9),
    ("ipintrq", 8),
    ("socket", 8),
    ("app", 8),
    ("user", 5),
    ("sys", 5),
    ("intr", 5),
    ("idle", 5),
    ("p50", 7),
    ("p99", 7),
    ("timeouts", 8),
    ("late99", 7),
    ("missed", 6),
];

/// Columns of measured rows (trials): the delivered rate's min-max over
/// the kept trials, kept/tries (`*` when noisy), and the most the host
/// took of pollsim's CPU in a kept trial, %.
const TRIAL_COLS: [(&str, usize); 3] = [("dlv min-max", 13), ("trials", 6), ("host%", 5)];

/// `lo-hi` in [`human`] form, the unit suffix once: `139.1-141.0k`.
fn range(lo: f64, hi: f64) -> String {
    let (a, b) = (human(lo), human(hi));
    if a == "-" || b == "-" {
        return "-".into();
    }
    let suffix = |t: &str| t.chars().last().filter(char::is_ascii_alphabetic);
    let a = match (suffix(&a), suffix(&b)) {
        (Some(x), Some(y)) if x == y => a[..a.len() - 1].to_string(),
        _ => a,
    };
    format!("{a}-{b}")
}

/// The trial cells of a row: delivered min-max, kept/tries, host %.
fn trial_cells(r: &Run) -> [String; 3] {
    let dlv = r.spread.as_ref().map_or("-".into(), |s| {
        range(s.delivered_pps[0], s.delivered_pps[1])
    });
    let host = r
        .trials
        .iter()
        .map(super::trials::noise)
        .reduce(f64::max)
        .map_or("-".into(), pct);
    let mark = if r.noisy { "*" } else { "" };
    [dlv, format!("{}/{}{mark}", r.trials.len(), r.tries), host]
}

/// The results as a fixed-width table: a title line (and the host check's
/// verdict, if any), a header, one row per mode × axes × rate (series
/// separated by a blank line, named by their mode and each axis that takes
/// more than one value), then a summary line per series. Rates in frames/s, CPU in
/// %, probe latency in ms. Rows measured in trials show their medians, with
/// a trials group of columns.
pub fn table(results: &Results) -> String {
    let runs = &results.runs;
    let mixed = runs.iter().any(|r| r.simulated) && !runs.iter().all(|r| r.simulated);
    let star = |r: &Run| if mixed && r.simulated { "*" } else { "" };
    let summary = summary_of(results);
    let labels = super::summary::Labels::of_runs(runs);
    let name = |r: &Run| labels.of_run(r);
    let mode_w = runs
        .iter()
        .map(|r| name(r).chars().count() + star(r).len())
        .chain(
            summary
                .iter()
                .map(|s| labels.label(&s.mode, s.axes).chars().count()),
        )
        .chain([4])
        .max()
        .unwrap_or(4);

    let mut out = String::new();
    let modes = summary.len();
    let secs: Vec<f64> = runs
        .iter()
        .map(|r| r.seconds)
        .filter(|s| s.is_finite())
        .collect();
    let window = match (
        secs.iter().copied().reduce(f64::min),
        secs.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) if (hi - lo).abs() < 1e-9 => format!(", {lo:.1} s per point"),
        (Some(lo), Some(hi)) => format!(", {lo:.1}-{hi:.1} s per point"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "pollsim compare: {} point{}, {modes} mode{}{window}{}",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        if modes == 1 { "" } else { "s" },
        sim_marker(runs),
    );
    if let Some(check) = super::hostcheck::HostCheck::from_meta(&results.meta) {
        let _ = writeln!(out, "{}", check.line());
    }
    let with_trials = runs.iter().any(|r| !r.trials.is_empty());

    // Group header over the column groups.
    let w = |i: usize| COLS[i].1;
    let span = |a: usize, b: usize| (a..=b).map(w).sum::<usize>() + 2 * (b - a);
    let group = |label: &str, width: usize| {
        let fill = width.saturating_sub(label.len() + 2);
        let left = fill / 2;
        format!("{} {label} {}", "-".repeat(left), "-".repeat(fill - left))
    };
    let mut groups = format!(
        "{:mode_w$}  {}  {}  {}  {}  {}",
        "",
        group("rates (pps)", span(0, 2)),
        group("drops (pps)", span(3, 6)),
        group("cpu %", span(7, 10)),
        group("probe (ms)", span(11, 13)),
        group("interactive", span(14, 15)),
    );
    let trial_cols = if with_trials { &TRIAL_COLS[..] } else { &[] };
    if with_trials {
        let width = TRIAL_COLS.iter().map(|c| c.1).sum::<usize>() + 4;
        let _ = write!(groups, "  {}", group("trials", width));
    }
    let _ = writeln!(out, "{groups}");
    let mut header = format!("{:<mode_w$}", "mode");
    for (name, width) in COLS.iter().chain(trial_cols) {
        let _ = write!(header, "  {name:>width$}");
    }
    out.push_str(header.trim_end());
    out.push('\n');

    let mut prev = None;
    for r in runs {
        if prev.is_some_and(|p| p != r.series()) {
            out.push('\n');
        }
        prev = Some(r.series());
        let p = &r.probe_ms;
        let probe = [
            ms(p.p50),
            ms(p.p99),
            if p.sent == 0 {
                "-".into()
            } else {
                format!("{}/{}", p.timeouts, p.sent)
            },
        ];
        let i = r.interactive.as_ref();
        let interactive = [
            ms(i.and_then(|i| i.late_p99_ms)),
            i.map_or("-".into(), |i| i.missed.to_string()),
        ];
        let trial = if with_trials {
            trial_cells(r).to_vec()
        } else {
            Vec::new()
        };
        let cells = (r.rate_columns().into_iter().map(human))
            .chain(r.cpu_columns().into_iter().map(pct))
            .chain(probe)
            .chain(interactive)
            .chain(trial);
        let mut line = format!("{:<mode_w$}", format!("{}{}", name(r), star(r)));
        for (cell, (_, width)) in cells.zip(COLS.iter().chain(trial_cols)) {
            let _ = write!(line, "  {cell:>width$}");
        }
        out.push_str(&line);
        out.push('\n');
    }

    if runs.iter().any(|r| r.noisy) {
        let (n, max) = (
            results
                .meta
                .get("trials")
                .and_then(serde_json::Value::as_u64),
            results
                .meta
                .get("max_steal_pct")
                .and_then(serde_json::Value::as_f64),
        );
        let _ = writeln!(
            out,
            "* noisy: fewer than {} in which the host took at most {}% of pollsim's CPU; \
             the least noisy kept (trials: kept/tries)",
            match n {
                Some(1) => "1 trial".to_string(),
                Some(n) => format!("{n} trials"),
                None => "the trials asked for".to_string(),
            },
            max.map_or("--max-steal".into(), human),
        );
    }

    if !summary.is_empty() {
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<mode_w$}  {:>8}  {:>7}  {:>8}  {:>14}  {:>8}",
            "summary", "MLFRR", "+-", "peak", "at max offered", "% of peak"
        );
        for s in &summary {
            let of_peak = if s.peak_delivered_pps > 0.0 {
                format!(
                    "{:.1}%",
                    100.0 * s.delivered_at_max_offered_pps / s.peak_delivered_pps
                )
            } else {
                "-".into()
            };
            let _ = writeln!(
                out,
                "{:<mode_w$}  {:>8}  {:>7}  {:>8}  {:>14}  {:>8}",
                labels.label(&s.mode, s.axes),
                human(s.mlfrr_pps),
                s.mlfrr_resolution_pps.map_or("-".into(), human),
                human(s.peak_delivered_pps),
                human(s.delivered_at_max_offered_pps),
                of_peak,
            );
        }
        let _ = writeln!(
            out,
            "(MLFRR: highest offered rate with loss < 0.1 %, searched by bisection between the last loss-free \
             and the first lossy point, +- half the final interval; peak: highest delivered rate; pps = frames/s)"
        );
    }
    out
}

/// One short line for a finished point, for progress while the sweep runs.
pub fn progress_line(run: &Run) -> String {
    let share = if run.offered_pps > 0.0 {
        format!(" ({:.1}%)", 100.0 * run.delivered_pps / run.offered_pps)
    } else {
        String::new()
    };
    let trials = match (run.trials.len(), run.noisy) {
        (0, _) => String::new(),
        (n, false) => format!(", median of {n} (tries {})", run.tries),
        (n, true) => format!(", median of {n} (tries {}; noisy)", run.tries),
    };
    format!(
        "{}: offered {} pps, delivered {} pps{share}, user {}%{trials}{}",
        run.mode,
        human(run.offered_pps),
        human(run.delivered_pps),
        pct(run.cp_time_pct.user),
        if run.simulated { " (simulated)" } else { "" },
    )
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line
/// break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A number for CSV: shortest exact form, empty when non-finite.
fn csv_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

/// The CSV header, one flattened column per field.
pub const CSV_HEADER: &str = "mode,offered_pps,received_pps,delivered_pps,drops_rx_missed,drops_ipintrq,\
drops_socket,drops_app,cpu_user,cpu_sys,cpu_intr,cpu_idle,probe_p50_ms,probe_p99_ms,probe_timeouts,\
probe_sent,seconds,simulated,delivered_pps_min,delivered_pps_max,trials,tries,discarded,noisy,\
host_steal_pct,host_stall_pct,tick_late_p99_us,burst_mean,lost_polls,short_ticks,suspect,\
interactive_late_p50_ms,interactive_late_p99_ms,interactive_late_max_ms,interactive_slices,\
interactive_missed,hz,reactor,conns,cpus";

/// The runs as CSV: the header and one row per run (an absent probe
/// latency is an empty field).
pub fn csv(results: &Results) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in &results.runs {
        let p = &r.probe_ms;
        let row: Vec<String> = std::iter::once(csv_field(&r.mode))
            .chain(r.rate_columns().into_iter().map(csv_num))
            .chain(r.cpu_columns().into_iter().map(csv_num))
            .chain([
                p.p50.map(csv_num).unwrap_or_default(),
                p.p99.map(csv_num).unwrap_or_default(),
                p.timeouts.to_string(),
                p.sent.to_string(),
                csv_num(r.seconds),
                r.simulated.to_string(),
            ])
            .chain(csv_extra(r))
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// The CSV fields after `simulated`: the delivered rate's min and max over
/// the trials, the trial counts, the host's and the polling engine's
/// diagnostics (empty when absent), then the point's axes (hz, reactor,
/// conns).
fn csv_extra(r: &Run) -> Vec<String> {
    let opt = |v: Option<f64>| v.map(csv_num).unwrap_or_default();
    let s = r.spread.as_ref();
    let h = r.host.as_ref();
    let p = r.polling.as_ref();
    vec![
        opt(s.map(|s| s.delivered_pps[0])),
        opt(s.map(|s| s.delivered_pps[1])),
        r.trials.len().to_string(),
        r.tries.to_string(),
        r.discarded.to_string(),
        r.noisy.to_string(),
        opt(h.map(|h| h.steal_pct)),
        opt(h.map(|h| h.stall_pct)),
        h.and_then(|h| h.tick_late_us.p99)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        opt(p.and_then(|p| p.burst.as_ref()).map(|b| b.mean)),
        p.map(|p| p.lost_polls.to_string()).unwrap_or_default(),
        p.map(|p| p.short_ticks.to_string()).unwrap_or_default(),
        p.map(|p| p.suspect.to_string()).unwrap_or_default(),
        opt(r.interactive.as_ref().and_then(|i| i.late_p50_ms)),
        opt(r.interactive.as_ref().and_then(|i| i.late_p99_ms)),
        opt(r.interactive.as_ref().and_then(|i| i.late_max_ms)),
        r.interactive
            .as_ref()
            .map(|i| i.slices.to_string())
            .unwrap_or_default(),
        r.interactive
            .as_ref()
            .map(|i| i.missed.to_string())
            .unwrap_or_default(),
        r.axes.hz.to_string(),
        r.axes.reactor.name().to_string(),
        r.axes.conns.to_string(),
        r.axes.cpus.to_string(),
    ]
}

/// The results as pretty-printed JSON (the CLI contract's schema). A
/// non-finite number is written as `null`, as serde_json does.
pub fn json(results: &Results) -> String {
    serde_json::to_string_pretty(results).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Write `results.csv`, `results.json` and `livelock.svg` into `dir`,
/// creating it (and its parents) if needed.
pub fn write_all(results: &Results, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let svg = super::plot::livelock_svg(results).context("plotting livelock.svg")?;
    for (name, text) in [
        ("results.csv", csv(results)),
        ("results.json", json(results) + "\n"),
        ("livelock.svg", svg),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::model::{CpuPct, Drops, Probe};

    /// A livelock-shaped sweep: interrupt rises, peaks and collapses,
    /// polling plateaus, and a polling variant with a comma in its label.
    pub(crate) fn sample(simulated: bool) -> Results {
        let rates: [f64; 6] = [10e3, 20e3, 40e3, 80e3, 160e3, 320e3];
        let shapes: [(&str, [f64; 6], [f64; 6]); 3] = [
            (
                "interrupt",
                [10e3, 20e3, 38e3, 22e3, 6e3, 800.0],
                [80.0, 60.0, 20.0, 8.0, 2.0, 0.1],
            ),
            (
                "polling",
                [10e3, 20e3, 40e3, 55e3, 54e3, 53e3],
                [85.0, 70.0, 45.0, 50.0, 50.0, 50.0],
            ),
            (
                "polling:user_frac=20,burst_max=300",
                [10e3, 20e3, 40e3, 70e3, 69e3, 68e3],
                [85.0, 70.0, 40.0, 20.0, 20.0, 20.0],
            ),
        ];
        let mut runs = Vec::new();
        for (mode, delivered, user) in shapes {
            for ((o, d), u) in rates.into_iter().zip(delivered).zip(user) {
                let received = o.min(d * 1.5 + 1e3);
                let mut params = serde_json::Map::new();
                params.insert("work_ns".into(), 20_000.into());
                runs.push(Run {
                    mode: mode.into(),
                    params,
                    offered_pps: o,
                    received_pps: received,
                    delivered_pps: d,
                    drops: Drops {
                        rx_missed: o - received,
                        ipintrq: (received - d) * 0.75,
                        socket: (received - d) * 0.25,
                        app: 0.0,
                    },
                    cp_time_pct: CpuPct {
                        user: u,
                        sys: (100.0 - u) * 0.5,
                        intr: (100.0 - u) * 0.4,
                        idle: (100.0 - u) * 0.1,
                    },
                    probe_ms: Probe {
                        p50: (d > 1e3).then_some(1.5),
                        p99: (d > 1e3).then_some(12.25),
                        timeouts: if d > 1e3 { 0 } else { 30 },
                        sent: 30,
                    },
                    seconds: 3.0,
                    simulated,
                    ..Run::default()
                });
            }
        }
        let summary = summarize(&runs);
        let mut meta = serde_json::Map::new();
        meta.insert("machine".into(), "test".into());
        Results {
            runs,
            summary,
            meta,
        }
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(0.0), "0");
        assert_eq!(human(950.0), "950");
        assert_eq!(human(12.25), "12.2");
        assert_eq!(human(123_449.0), "123.4k");
        assert_eq!(human(999_999.0), "1.00M");
        assert_eq!(human(1_234_567.0), "1.23M");
        assert_eq!(human(f64::NAN), "-");
    }

    #[test]
    fn table_has_rows_summary_and_marker() {
        let res = sample(true);
        let t = table(&res);
        print!("{t}");
        assert!(t.lines().next().unwrap().contains("(simulated)"));
        assert!(t.contains("offered") && t.contains("rx_missed") && t.contains("timeouts"));
        let rows = t
            .lines()
            .filter(|l| l.starts_with("interrupt ") || l.starts_with("polling"))
            .count();
        // 18 rows + 3 summary lines.
        assert_eq!(rows, 18 + 3);
        assert!(t.contains("320.0k"));
        // Interrupt at max: 800 of a 38k peak.
        assert!(t.contains("2.1%"));
        // Probe with no answers shows "-" and the timeouts.
        assert!(t.contains("30/30"));
        let row = t
            .lines()
            .find(|l| l.starts_with("interrupt") && l.contains("30/30"))
            .unwrap();
        assert!(row.split_whitespace().any(|c| c == "-"));
        // All data rows have the same width as the header.
        let hw = t.lines().nth(2).unwrap().len();
        assert!(
            t.lines()
                .filter(|l| l.ends_with("/30"))
                .all(|l| l.len() == hw),
            "{hw}"
        );
        assert!(!table(&sample(false)).contains("simulated"));
        let mut mixed = sample(false);
        mixed.runs[0].simulated = true;
        let t = table(&mixed);
        assert!(t.contains("partly simulated") && t.contains("interrupt*"));
        // Empty results still make a table.
        assert!(table(&Results::default()).contains("0 points"));
    }

    /// `sample`, each row measured in three trials (delivered ×0.9, ×1,
    /// ×1.1), the first row noisy, with a host check in `meta`.
    pub(crate) fn sample_in_trials() -> Results {
        let mut res = sample(false);
        for r in &mut res.runs {
            let trials = [0.9, 1.0, 1.1].map(|f| Run {
                delivered_pps: r.delivered_pps * f,
                ..r.clone()
            });
            *r = crate::compare::trials::aggregate(trials.to_vec(), 3, 0);
        }
        res.runs[0].noisy = true;
        res.runs[0].tries = 6;
        res.meta.insert("trials".into(), 3.into());
        res.meta.insert("max_steal_pct".into(), 5.0.into());
        let check = crate::compare::hostcheck::HostCheck::new(
            crate::compare::model::HostDiag::default(),
            1.0,
            5.0,
        );
        res.meta
            .insert("host".into(), serde_json::to_value(&check).unwrap());
        res
    }

    #[test]
    fn rows_in_trials_show_their_range_tries_and_noise() {
        let res = sample_in_trials();
        let t = table(&res);
        print!("{t}");
        assert!(t.lines().nth(1).unwrap().starts_with("host: steal 0.0%"));
        assert!(t.contains("dlv min-max") && t.contains("trials") && t.contains("host%"));
        let first = t.lines().find(|l| l.starts_with("interrupt ")).unwrap();
        assert!(
            first.contains("9.0-11.0k") && first.contains("3/6*"),
            "{first}"
        );
        assert!(t.contains("* noisy: fewer than 3 trials"));
        let hw = t.lines().nth(3).unwrap().len();
        assert!(
            t.lines()
                .filter(|l| l.contains("/3 ") || l.contains("/6*"))
                .all(|l| l.len() == hw),
            "{hw}"
        );
        assert!(!table(&sample(false)).contains("noisy"));
        let c = csv(&res);
        let row: Vec<&str> = c.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(&row[18..24], ["9000", "11000", "3", "6", "0", "true"]);
        let back: Results = serde_json::from_str(&json(&res)).unwrap();
        assert_eq!(back, res);
    }

    #[test]
    fn progress() {
        let res = sample(true);
        let l = progress_line(&res.runs[5]);
        assert_eq!(
            l,
            "interrupt: offered 320.0k pps, delivered 800 pps (0.2%), user 0.1% (simulated)"
        );
        assert!(!l.contains('\n'));
    }

    const CSV_FIELDS: usize = 40;

    #[test]
    fn csv_rows_and_quoting() {
        let res = sample(false);
        let c = csv(&res);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines.len(), 1 + res.runs.len());
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[0].split(',').count(), CSV_FIELDS);
        let variant = lines.iter().find(|l| l.contains("user_frac")).unwrap();
        assert!(variant.starts_with("\"polling:user_frac=20,burst_max=300\","));
        // Unquoted rows have exactly as many fields as the header; the quoted
        // one has one more raw comma-separated part.
        assert_eq!(lines[1].split(',').count(), CSV_FIELDS);
        assert_eq!(variant.split(',').count(), CSV_FIELDS + 1);
        assert!(lines[1].starts_with("interrupt,10000,10000,10000,0,"));
        // None latency is an empty field.
        assert!(lines[6].contains(",,,30,30,3,false"));
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn json_round_trips_with_contract_names() {
        let res = sample(true);
        let j = json(&res);
        let back: Results = serde_json::from_str(&j).unwrap();
        assert_eq!(back, res);
        for name in [
            "runs",
            "mode",
            "params",
            "offered_pps",
            "received_pps",
            "delivered_pps",
            "drops",
            "rx_missed",
            "ipintrq",
            "socket",
            "app",
            "cp_time_pct",
            "user",
            "sys",
            "intr",
            "idle",
            "probe_ms",
            "p50",
            "p99",
            "timeouts",
            "summary",
            "mlfrr_pps",
            "peak_delivered_pps",
            "delivered_at_max_offered_pps",
        ] {
            assert!(j.contains(&format!("\"{name}\":")), "missing {name}");
        }
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert!(v["runs"][0]["drops"]["rx_missed"].is_number());
        assert!(v["runs"][0]["cp_time_pct"]["user"].is_number());
        assert!(v["summary"][0]["mlfrr_pps"].is_number());
    }

    #[test]
    fn write_all_writes_three_files() {
        let dir = std::env::temp_dir()
            .join(format!("pollsim-output-test-{}", std::process::id()))
            .join("nested");
        let res = sample(true);
        write_all(&res, &dir).unwrap();
        let csv_text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
        assert_eq!(csv_text, csv(&res));
        let back: Results =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(back, res);
        let svg = std::fs::read_to_string(dir.join("livelock.svg")).unwrap();
        assert!(roxmltree::Document::parse(&svg).is_ok());
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}
