//! Per-series summary of a sweep (a series: one mode at one point of the
//! `--hz`, `--reactor` and `--conns` axes): MLFRR, peak and delivered rate
//! at the highest offered load; and the labels that name a series.

use super::model::{Axes, Run, Search, Summary};

/// How series are named in the table and the plot: by their mode, and by
/// the value of each axis that takes more than one value in the sweep
/// (`polling hz=100`, `polling reactor=scan conns=10000`), so a sweep at
/// the defaults reads as it always did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    hz: bool,
    reactor: bool,
    conns: bool,
    cpus: bool,
}

impl Labels {
    /// The labels of a sweep whose series lie at `axes`.
    pub fn of(axes: impl IntoIterator<Item = Axes>) -> Labels {
        let mut first: Option<Axes> = None;
        let mut l = Labels::default();
        for a in axes {
            let f = *first.get_or_insert(a);
            l.hz |= a.hz != f.hz;
            l.reactor |= a.reactor != f.reactor;
            l.conns |= a.conns != f.conns;
            l.cpus |= a.cpus != f.cpus;
        }
        l
    }

    /// The labels of the series of `runs`.
    pub fn of_runs(runs: &[Run]) -> Labels {
        Labels::of(runs.iter().map(|r| r.axes))
    }

    /// The name of the series of `mode` at `a`.
    pub fn label(&self, mode: &str, a: Axes) -> String {
        let mut s = mode.to_string();
        if self.hz {
            s.push_str(&format!(" hz={}", a.hz));
        }
        if self.reactor {
            s.push_str(&format!(" reactor={}", a.reactor.name()));
        }
        if self.conns {
            s.push_str(&format!(" conns={}", a.conns));
        }
        if self.cpus {
            s.push_str(&format!(" cpus={}", a.cpus));
        }
        s
    }

    /// The name of a row's series.
    pub fn of_run(&self, r: &Run) -> String {
        self.label(&r.mode, r.axes)
    }
}

/// Loss under which a point counts as loss-free (0.1 %).
pub const LOSS_FREE: f64 = 0.001;

/// Fraction of the offered load that was not delivered to the app
/// (`1 - delivered/offered`); `None` when nothing was offered.
pub fn loss(run: &Run) -> Option<f64> {
    (run.offered_pps.is_finite() && run.offered_pps > 0.0 && run.delivered_pps.is_finite())
        .then(|| 1.0 - run.delivered_pps / run.offered_pps)
}

/// One [`Summary`] per series (mode and axes), in order of first
/// appearance in `runs`.
///
/// - `mlfrr_pps`: the highest offered rate whose loss is under 0.1 %
///   (0 if no point is loss-free);
/// - `peak_delivered_pps`: the highest delivered rate;
/// - `delivered_at_max_offered_pps`: the delivered rate of the point with
///   the highest offered rate (the later point on a tie).
///
/// Points with a non-finite offered or delivered rate are ignored.
pub fn summarize(runs: &[Run]) -> Vec<Summary> {
    let mut series: Vec<(&str, Axes)> = Vec::new();
    for run in runs {
        if !series.contains(&run.series()) {
            series.push(run.series());
        }
    }
    series
        .into_iter()
        .map(|(mode, axes)| {
            let points = runs.iter().filter(|r| {
                r.series() == (mode, axes)
                    && r.offered_pps.is_finite()
                    && r.delivered_pps.is_finite()
            });
            let mut s = Summary {
                mode: mode.to_owned(),
                axes,
                ..Summary::default()
            };
            let mut max_offered = f64::NEG_INFINITY;
            for r in points {
                if loss(r).is_some_and(|l| l < LOSS_FREE) && r.offered_pps > s.mlfrr_pps {
                    s.mlfrr_pps = r.offered_pps;
                }
                s.peak_delivered_pps = s.peak_delivered_pps.max(r.delivered_pps);
                if r.offered_pps >= max_offered {
                    max_offered = r.offered_pps;
                    s.delivered_at_max_offered_pps = r.delivered_pps;
                }
            }
            s
        })
        .collect()
}

/// Put each series' MLFRR search (keyed by mode and axes) into its
/// summary: the MLFRR becomes the search's lower end (the highest rate
/// measured loss-free below the first lossy one), with its resolution; the
/// peak counts the steps too.
pub fn apply_searches(summary: &mut [Summary], searches: &[((String, Axes), Search)]) {
    for ((mode, axes), search) in searches {
        if let Some(s) = summary.iter_mut().find(|s| s.series() == (mode, *axes)) {
            s.mlfrr_pps = search.lo_pps;
            for step in search.steps.iter().filter(|r| r.delivered_pps.is_finite()) {
                s.peak_delivered_pps = s.peak_delivered_pps.max(step.delivered_pps);
            }
            s.mlfrr_resolution_pps = Some(search.resolution_pps);
            s.mlfrr_search = Some(search.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: &str, offered: f64, delivered: f64) -> Run {
        Run {
            mode: mode.into(),
            offered_pps: offered,
            delivered_pps: delivered,
            ..Run::default()
        }
    }

    /// Interrupt rises, peaks at 40k, collapses; polling plateaus at 60k.
    fn livelock() -> Vec<Run> {
        let mut runs = Vec::new();
        for (o, d) in [
            (10e3, 10e3),
            (20e3, 19_995.0),
            (40e3, 39_000.0),
            (80e3, 20e3),
            (160e3, 5e3),
            (320e3, 500.0),
        ] {
            runs.push(run("interrupt", o, d));
        }
        for (o, d) in [
            (10e3, 10e3),
            (20e3, 20e3),
            (40e3, 39_990.0),
            (80e3, 60e3),
            (160e3, 59e3),
            (320e3, 58e3),
        ] {
            runs.push(run("polling", o, d));
        }
        runs.push(run("polling:user_frac=20,burst_max=300", 10e3, 9_000.0));
        runs
    }

    #[test]
    fn livelock_shape() {
        let s = summarize(&livelock());
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].mode, "interrupt");
        // 20k lost 0.025 %: loss-free; 40k lost 2.5 %.
        assert_eq!(s[0].mlfrr_pps, 20e3);
        assert_eq!(s[0].peak_delivered_pps, 39e3);
        assert_eq!(s[0].delivered_at_max_offered_pps, 500.0);
        assert_eq!(s[1].mode, "polling");
        // 40k lost exactly 0.025 %.
        assert_eq!(s[1].mlfrr_pps, 40e3);
        assert_eq!(s[1].peak_delivered_pps, 60e3);
        assert_eq!(s[1].delivered_at_max_offered_pps, 58e3);
        assert_eq!(s[2].mode, "polling:user_frac=20,burst_max=300");
        assert_eq!(s[2].mlfrr_pps, 0.0);
        assert_eq!(s[2].peak_delivered_pps, 9e3);
        assert_eq!(s[2].delivered_at_max_offered_pps, 9e3);
    }

    #[test]
    fn a_search_sets_the_mlfrr_and_may_raise_the_peak() {
        let mut s = summarize(&livelock());
        let search = Search {
            lo_pps: 30e3,
            hi_pps: 35e3,
            resolution_pps: 2.5e3,
            steps: vec![run("interrupt", 30e3, 30e3), run("interrupt", 35e3, 34e3)],
        };
        apply_searches(&mut s, &[(("interrupt".into(), Axes::default()), search)]);
        assert_eq!(s[0].mlfrr_pps, 30e3);
        assert_eq!(s[0].mlfrr_resolution_pps, Some(2.5e3));
        assert_eq!(s[0].peak_delivered_pps, 39e3, "the grid's peak is higher");
        assert_eq!(s[1].mlfrr_resolution_pps, None, "polling was not searched");
        let search = Search {
            steps: vec![run("polling", 70e3, 61e3)],
            ..Search::default()
        };
        apply_searches(&mut s, &[(("polling".into(), Axes::default()), search)]);
        assert_eq!(s[1].peak_delivered_pps, 61e3);
    }

    #[test]
    fn a_series_per_mode_and_axes_named_by_the_axes_that_vary() {
        let mut runs = livelock();
        let at100: Vec<Run> = runs
            .iter()
            .filter(|r| r.mode == "polling")
            .map(|r| Run {
                axes: Axes {
                    hz: 100,
                    ..Axes::default()
                },
                delivered_pps: r.delivered_pps / 10.0,
                ..r.clone()
            })
            .collect();
        runs.extend(at100);
        let s = summarize(&runs);
        assert_eq!(s.len(), 4);
        assert_eq!((s[3].mode.as_str(), s[3].axes.hz), ("polling", 100));
        assert_eq!(s[3].peak_delivered_pps, 6e3);
        assert_eq!(s[1].peak_delivered_pps, 60e3, "the 1000 Hz series apart");
        let l = Labels::of_runs(&runs);
        assert_eq!(l.label("polling", s[3].axes), "polling hz=100");
        assert_eq!(l.of_run(&runs[6]), "polling hz=1000");
        let one = Labels::of_runs(&livelock());
        assert_eq!(one.label("polling", Axes::default()), "polling");
        let scan = Axes {
            reactor: super::super::model::Reactor::Scan,
            conns: 8,
            cpus: 1,
            ..Axes::default()
        };
        assert_eq!(
            Labels::of([Axes::default(), scan]).label("mr", scan),
            "mr reactor=scan conns=8"
        );
        // A search lands in its own series only.
        let search = Search {
            lo_pps: 5e3,
            ..Search::default()
        };
        let (mut s, at100) = (s.clone(), s[3].axes);
        apply_searches(&mut s, &[(("polling".into(), at100), search)]);
        assert_eq!((s[3].mlfrr_pps, s[1].mlfrr_pps), (5e3, 40e3));
    }

    #[test]
    fn rows_carry_the_axes_flat_and_old_rows_read_as_the_defaults() {
        let r = Run {
            mode: "polling".into(),
            axes: Axes {
                hz: 100,
                reactor: super::super::model::Reactor::Scan,
                conns: 10,
                cpus: 4,
            },
            ..Run::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (v["hz"].clone(), v["conns"].clone()),
            (100.into(), 10.into())
        );
        assert_eq!(v["reactor"], "scan");
        assert_eq!(v["cpus"], 4);
        assert_eq!(serde_json::from_value::<Run>(v).unwrap(), r);
        let old: Run = serde_json::from_str(
            r#"{"mode": "polling", "params": {},
            "offered_pps": 1, "received_pps": 1, "delivered_pps": 1,
            "drops": {"rx_missed": 0, "ipintrq": 0, "socket": 0, "app": 0},
            "cp_time_pct": {"user": 0, "sys": 0, "intr": 0, "idle": 100},
            "probe_ms": {"p50": null, "p99": null, "timeouts": 0, "sent": 0},
            "seconds": 1, "simulated": true}"#,
        )
        .unwrap();
        assert_eq!(old.axes, Axes::default());
        assert_eq!(old.axes.hz, 1000);
    }

    #[test]
    fn order_independent_and_threshold() {
        let mut runs = livelock();
        runs.reverse();
        let s = summarize(&runs);
        // First appearance after reversing.
        assert_eq!(s[0].mode, "polling:user_frac=20,burst_max=300");
        assert_eq!(s[2].delivered_at_max_offered_pps, 500.0);
        assert_eq!(s[2].mlfrr_pps, 20e3);
        // Exactly 0.1 % loss is not loss-free.
        let s = summarize(&[run("m", 100e3, 99_900.0)]);
        assert_eq!(s[0].mlfrr_pps, 0.0);
        assert!(summarize(&[]).is_empty());
    }
}
