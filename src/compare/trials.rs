//! Trials of a point: each point of the real sweep is measured `--trials`
//! times; a trial in which the host took more than `--max-steal` percent
//! of pollsim's CPU is discarded and measured again, at most twice as many
//! tries as trials in all; the row is the median of the trials kept, with
//! their min–max.
//!
//! The host's share of a trial is the larger of its steal and stall time
//! ([`HostDiag::noise_pct`]): both are time the simulated CPU did not have,
//! seen from the hypervisor and from the scheduler. The flood's CPU counts
//! too: a paced flood that offered less than it was asked for lost its CPU
//! to someone else, and its shortfall, in percent of the rate asked for,
//! counts as the host's share when it is larger. A point that ends with
//! fewer clean trials than asked keeps its least noisy ones to make up the
//! number and is marked `noisy`.

use super::model::{HostDiag, Run, Spread};

/// How a point is measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Trials to keep per point (at least 1).
    pub trials: usize,
    /// Highest host share of a clean trial, %.
    pub max_steal_pct: f64,
}

impl Plan {
    /// The most trials a point may take: twice the trials asked for.
    pub fn max_tries(&self) -> usize {
        2 * self.trials.max(1)
    }

    /// Whether `run` is too noisy to keep (a run without a host account,
    /// on virtual time, never is).
    pub fn is_noisy(&self, run: &Run) -> bool {
        noise(run) > self.max_steal_pct
    }
}

/// The host's share of a run, %: what it took from pollsim's CPU, or the
/// paced flood's shortfall if larger (0 on virtual time).
pub fn noise(run: &Run) -> f64 {
    let host = run.host.as_ref().map_or(0.0, HostDiag::noise_pct);
    let short = run
        .requested_pps
        .filter(|q| *q > 0.0 && run.offered_pps.is_finite())
        .map_or(0.0, |q| 100.0 * (1.0 - run.offered_pps / q));
    host.max(short)
}

/// Measure a point by `plan`: call `measure` until `plan.trials` clean
/// trials are in hand or `plan.max_tries()` tries were made, or until
/// `stopped()` says to stop between tries. `None` if stopped before any
/// trial; otherwise the aggregate row ([`aggregate`]). Bound: at most
/// `max_tries` calls of `measure`.
pub fn measure_point(
    plan: &Plan,
    stopped: impl Fn() -> bool,
    mut measure: impl FnMut() -> anyhow::Result<Run>,
) -> anyhow::Result<Option<Run>> {
    let want = plan.trials.max(1);
    let (mut clean, mut dirty) = (Vec::new(), Vec::new());
    let mut tries = 0;
    while clean.len() < want && tries < plan.max_tries() && !stopped() {
        let mut run = measure()?;
        tries += 1;
        run.noisy = plan.is_noisy(&run);
        if run.noisy {
            dirty.push(run);
        } else {
            clean.push(run);
        }
    }
    if tries == 0 {
        return Ok(None);
    }
    // Too few clean trials: the least noisy of the others make up the number.
    dirty.sort_by(|a, b| noise(a).total_cmp(&noise(b)));
    let mut kept = clean;
    let missing = want.saturating_sub(kept.len());
    kept.extend(dirty.into_iter().take(missing));
    let discarded = tries - kept.len();
    Ok(Some(aggregate(kept, tries, discarded)))
}

/// The median of `v` (the mean of the two middle values for an even
/// count); NaN if empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// `[min, max]` of `v` (NaN if empty).
pub fn min_max(v: &[f64]) -> [f64; 2] {
    let lo = v.iter().copied().reduce(f64::min).unwrap_or(f64::NAN);
    let hi = v.iter().copied().reduce(f64::max).unwrap_or(f64::NAN);
    [lo, hi]
}

/// The row of a point from its kept trials (at least one): every rate and
/// CPU column is the median over the trials, with its `[min, max]` in
/// `spread`; the frame counts, probe, host and polling diagnostics are
/// those of the median trial by delivered rate (exact counts that
/// balance, from one window). `noisy` if any kept trial is; the trials
/// themselves go into `trials`.
pub fn aggregate(kept: Vec<Run>, tries: usize, discarded: usize) -> Run {
    let n = kept.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| kept[a].delivered_pps.total_cmp(&kept[b].delivered_pps));
    let mut row = kept
        .get(order.get(n.saturating_sub(1) / 2).copied().unwrap_or(0))
        .cloned()
        .unwrap_or_default();
    let col = |f: &dyn Fn(&Run) -> f64| kept.iter().map(f).collect::<Vec<f64>>();
    let rates: [Vec<f64>; 7] = std::array::from_fn(|i| col(&|r: &Run| r.rate_columns()[i]));
    let cpu: [Vec<f64>; 4] = std::array::from_fn(|i| col(&|r: &Run| r.cpu_columns()[i]));
    row.set_rate_columns(std::array::from_fn(|i| median(&rates[i])));
    row.set_cpu_columns(std::array::from_fn(|i| median(&cpu[i])));
    row.spread = Some(Spread::from_columns(
        std::array::from_fn(|i| min_max(&rates[i])),
        std::array::from_fn(|i| min_max(&cpu[i])),
    ));
    row.noisy = kept.iter().any(|r| r.noisy);
    row.tries = u32::try_from(tries).unwrap_or(u32::MAX);
    row.discarded = u32::try_from(discarded).unwrap_or(u32::MAX);
    row.trials = kept;
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::{CpuPct, HostDiag};

    fn trial(delivered: f64, user: f64, stall_pct: f64) -> Run {
        Run {
            mode: "polling".into(),
            offered_pps: 20e3,
            received_pps: 20e3,
            delivered_pps: delivered,
            cp_time_pct: CpuPct {
                user,
                ..CpuPct::default()
            },
            host: Some(HostDiag {
                stall_pct,
                ..HostDiag::default()
            }),
            ..Run::default()
        }
    }

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(min_max(&[3.0, 1.0, 2.0]), [1.0, 3.0]);
    }

    #[test]
    fn a_row_is_the_median_of_its_trials_with_min_max() {
        let kept = vec![
            trial(19e3, 30.0, 0.0),
            trial(20e3, 10.0, 0.0),
            trial(18e3, 20.0, 0.0),
        ];
        let row = aggregate(kept, 3, 0);
        assert_eq!(row.delivered_pps, 19e3);
        assert_eq!(row.cp_time_pct.user, 20.0, "each column its own median");
        let s = row.spread.as_ref().unwrap();
        assert_eq!(s.delivered_pps, [18e3, 20e3]);
        assert_eq!(s.cpu_user, [10.0, 30.0]);
        assert_eq!((row.tries, row.discarded, row.noisy), (3, 0, false));
        assert_eq!(row.trials.len(), 3);
        assert!(row.trials.iter().all(|t| t.trials.is_empty()));
    }

    #[test]
    fn noisy_trials_are_rerun_then_the_least_noisy_kept() {
        let plan = Plan {
            trials: 2,
            max_steal_pct: 5.0,
        };
        // Noisy, clean, noisy, clean: two clean after four tries.
        let mut stalls = [40.0, 1.0, 9.0, 2.0].into_iter();
        let row = measure_point(
            &plan,
            || false,
            || Ok(trial(1.0, 0.0, stalls.next().unwrap())),
        )
        .unwrap()
        .unwrap();
        assert_eq!((row.tries, row.discarded, row.noisy), (4, 2, false));
        assert!(row.trials.iter().all(|t| !t.noisy));

        // Never clean: four tries, the two least noisy kept, marked.
        let mut stalls = [40.0, 30.0, 9.0, 50.0].into_iter();
        let row = measure_point(
            &plan,
            || false,
            || Ok(trial(1.0, 0.0, stalls.next().unwrap())),
        )
        .unwrap()
        .unwrap();
        assert_eq!((row.tries, row.discarded, row.noisy), (4, 2, true));
        let kept: Vec<f64> = row.trials.iter().map(noise).collect();
        assert_eq!(kept, [9.0, 30.0]);

        // Clean at once: no extra tries.
        let row = measure_point(&plan, || false, || Ok(trial(1.0, 0.0, 0.5)))
            .unwrap()
            .unwrap();
        assert_eq!((row.tries, row.discarded, row.noisy), (2, 0, false));

        // Stopped before the first try; errors pass through.
        assert!(
            measure_point(&plan, || true, || Ok(trial(1.0, 0.0, 0.0)))
                .unwrap()
                .is_none()
        );
        assert!(measure_point(&plan, || false, || anyhow::bail!("no tap")).is_err());
    }

    #[test]
    fn steal_counts_as_much_as_stalls() {
        let plan = Plan {
            trials: 1,
            max_steal_pct: 5.0,
        };
        let mut r = trial(1.0, 0.0, 0.0);
        assert!(!plan.is_noisy(&r));
        r.host.as_mut().unwrap().steal_pct = 6.0;
        assert!(plan.is_noisy(&r));
        r.host = None;
        assert!(!plan.is_noisy(&r), "virtual time has no host");
        // A paced flood 10 % short of its rate lost its CPU: noisy.
        r.requested_pps = Some(22_222.0);
        assert!(plan.is_noisy(&r) && (noise(&r) - 10.0).abs() < 0.01);
        r.requested_pps = Some(20_500.0);
        assert!(!plan.is_noisy(&r), "2.4 % short is pacing");
        assert_eq!(plan.max_tries(), 2);
    }
}
