//! The maximum loss-free receive rate of a mode, searched by bisection on
//! the offered rate between the sweep's last loss-free point and its first
//! lossy one, in the manner of RFC 2544 §26.1 (throughput: the highest
//! rate at which no frame is lost, found by a binary search).
//!
//! The sweep's grid brackets the MLFRR; each step measures the middle of
//! the bracket (with its trials, as any point) and keeps the half that
//! still brackets it: a loss-free step raises the lower end, a lossy one
//! lowers the upper end. The search stops after [`MAX_STEPS`] steps or
//! when the bracket is within [`RESOLUTION`] of its upper end. The MLFRR
//! is the lower end (the highest offered rate measured loss-free), and the
//! resolution half the bracket: the MLFRR lies in `[lo, lo + 2 ×
//! resolution)`.
//!
//! A mode with no loss-free point is searched between 0 and its lightest
//! point: its MLFRR stays 0 if no step is loss-free. A mode with no lossy
//! point is not searched (its MLFRR is at least the highest rate offered).
//! "Loss-free" is [`super::summary::LOSS_FREE`] (loss under 0.1 %).

use super::model::{Run, Search};
use super::summary::{LOSS_FREE, loss};

/// Steps of a search, at most.
pub const MAX_STEPS: usize = 4;
/// The search stops once `hi - lo` is within this fraction of `hi`.
pub const RESOLUTION: f64 = 0.05;

/// Whether a point is loss-free.
pub fn loss_free(run: &Run) -> bool {
    loss(run).is_some_and(|l| l < LOSS_FREE)
}

/// The bracket of one mode's sweep points: `(lo, hi)` with `hi` the
/// offered rate of the lightest lossy point and `lo` that of the heaviest
/// loss-free point below it (0 if none). `None` if no point is lossy.
pub fn bracket(points: &[&Run]) -> Option<(f64, f64)> {
    let mut by_rate: Vec<&Run> = points
        .iter()
        .copied()
        .filter(|r| r.offered_pps.is_finite() && r.offered_pps > 0.0)
        .collect();
    by_rate.sort_by(|a, b| a.offered_pps.total_cmp(&b.offered_pps));
    let first_lossy = by_rate.iter().position(|r| !loss_free(r))?;
    let lo = first_lossy
        .checked_sub(1)
        .map_or(0.0, |i| by_rate[i].offered_pps);
    Some((lo, by_rate[first_lossy].offered_pps))
}

/// Whether the bracket is narrow enough to stop.
fn narrow(lo: f64, hi: f64) -> bool {
    hi - lo <= RESOLUTION * hi
}

/// Bisect `(lo, hi)`: `measure(rate)` measures a step at `rate` frames/s
/// (`None` when the experiment was stopped). Bound: at most `max_steps`
/// calls of `measure`.
pub fn bisect(
    (mut lo, mut hi): (f64, f64),
    max_steps: usize,
    mut measure: impl FnMut(f64) -> anyhow::Result<Option<Run>>,
) -> anyhow::Result<Search> {
    let mut steps = Vec::new();
    while steps.len() < max_steps && !narrow(lo, hi) {
        let mid = ((lo + hi) / 2.0).round().max(1.0);
        let Some(run) = measure(mid)? else { break };
        // The rate the flood really offered decides, if it is inside the
        // bracket; a paced flood is within a few percent of the request.
        let at = if run.offered_pps > lo && run.offered_pps < hi {
            run.offered_pps
        } else {
            mid
        };
        if loss_free(&run) {
            lo = at;
        } else {
            hi = at;
        }
        steps.push(run);
    }
    Ok(Search {
        lo_pps: lo,
        hi_pps: hi,
        resolution_pps: (hi - lo) / 2.0,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(offered: f64, delivered: f64) -> Run {
        Run {
            mode: "interrupt".into(),
            offered_pps: offered,
            delivered_pps: delivered,
            ..Run::default()
        }
    }

    /// A system that loses nothing up to `mlfrr` and a tenth above it.
    fn system(mlfrr: f64) -> impl FnMut(f64) -> anyhow::Result<Option<Run>> {
        move |rate| {
            let d = if rate <= mlfrr { rate } else { rate * 0.9 };
            Ok(Some(run(rate, d)))
        }
    }

    #[test]
    fn the_bracket_is_the_last_loss_free_and_first_lossy_point() {
        let pts = [run(10e3, 10e3), run(40e3, 30e3), run(20e3, 20e3)];
        let refs: Vec<&Run> = pts.iter().collect();
        assert_eq!(bracket(&refs), Some((20e3, 40e3)));
        let all_lossy = [run(10e3, 5e3), run(20e3, 5e3)];
        let refs: Vec<&Run> = all_lossy.iter().collect();
        assert_eq!(bracket(&refs), Some((0.0, 10e3)));
        let none_lossy = [run(10e3, 10e3)];
        let refs: Vec<&Run> = none_lossy.iter().collect();
        assert_eq!(bracket(&refs), None);
    }

    #[test]
    fn bisection_narrows_the_bracket_within_its_bound() {
        // 20k..40k, true MLFRR 33k: 30k free, 35k lossy, 32.5k free, 33.75k lossy.
        let s = bisect((20e3, 40e3), MAX_STEPS, system(33e3)).unwrap();
        let rates: Vec<f64> = s.steps.iter().map(|r| r.offered_pps).collect();
        assert_eq!(rates, [30e3, 35e3, 32.5e3, 33_750.0]);
        assert_eq!((s.lo_pps, s.hi_pps), (32.5e3, 33_750.0));
        assert_eq!(s.resolution_pps, 625.0);
        assert!(s.lo_pps <= 33e3 && 33e3 < s.hi_pps);
        // Narrow already: no step.
        let s = bisect((99e3, 100e3), MAX_STEPS, system(0.0)).unwrap();
        assert!(s.steps.is_empty());
        // Stops at 5 % of the rate before the step bound.
        let s = bisect((90e3, 100e3), 10, system(96e3)).unwrap();
        assert_eq!(s.steps.len(), 1);
        assert!(narrow(s.lo_pps, s.hi_pps));
        // Nothing loss-free: the lower end stays 0.
        let s = bisect((0.0, 16e3), MAX_STEPS, system(0.0)).unwrap();
        assert_eq!((s.lo_pps, s.hi_pps, s.steps.len()), (0.0, 1e3, 4));
        // Stopped: the bracket so far.
        let s = bisect((20e3, 40e3), MAX_STEPS, |_| Ok(None)).unwrap();
        assert_eq!((s.lo_pps, s.hi_pps), (20e3, 40e3));
    }
}
