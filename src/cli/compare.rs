//! `pollsim compare`: run the experiment, print the table (or JSON), write
//! results.csv, results.json and livelock.svg.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::compare::experiment::{self, CompareArgs, Event};
use crate::compare::{output, sweep};
use crate::lab;

/// The default output directory: ./pollsim-results/<UTC timestamp>.
pub(super) fn default_out() -> PathBuf {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    PathBuf::from("pollsim-results").join(ts)
}

/// Entry point of `pollsim compare`.
pub fn main(args: &CompareArgs) -> anyhow::Result<()> {
    args.check()?;
    if args.sim || !lab::is_root() {
        if !args.sim {
            eprintln!(
                "pollsim compare: cannot open a tap device without root (it needs a private \
                 network namespace and /dev/net/tun); running the virtual-time simulation \
                 instead (--sim)"
            );
        }
        return super::compare_sim::main(args);
    }
    // Before any thread exists, so that every later thread and child is inside.
    sweep::enter_lab()?;
    let stop = super::signals::stop_flag()?;
    eprintln!("pollsim compare: watching the host for a second, then calibrating...");
    let mut bar = Progress::new(args.json);
    let results = experiment::run(args, &stop, &mut |e| bar.event(e))?;
    bar.finish();
    let dir = args.out.clone().unwrap_or_else(default_out);
    output::write_all(&results, &dir)?;
    if args.json {
        println!("{}", output::json(&results));
    } else {
        print!("{}", output::table(&results));
    }
    if stop.load(Ordering::Relaxed) {
        eprintln!(
            "pollsim compare: interrupted; the {} points measured are kept",
            results.runs.len()
        );
    }
    eprintln!(
        "pollsim compare: wrote {0}/results.csv, {0}/results.json, {0}/livelock.svg",
        dir.display()
    );
    Ok(())
}

/// The progress of a sweep on stderr: a line per point and per search
/// step, and under them a bar with the point number, the total and an ETA
/// (indicatif; hidden when stderr is not a terminal, and with `--json`).
pub(super) struct Progress {
    bar: indicatif::ProgressBar,
    quiet: bool,
}

impl Progress {
    /// A bar that stays hidden when `quiet`, and until the sweep's points
    /// are known (not during the host check and the calibration).
    pub(super) fn new(quiet: bool) -> Progress {
        let bar = indicatif::ProgressBar::hidden();
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "point {pos}/{len} [{elapsed_precise}, ETA {eta}] {wide_msg}",
        ) {
            bar.set_style(style);
        }
        Progress { bar, quiet }
    }

    /// Show an event of the experiment.
    pub(super) fn event(&mut self, e: Event<'_>) {
        let line = match e {
            Event::Host(check) => Some(format!("pollsim compare: {}", check.line())),
            Event::Planned(n) => {
                if !self.quiet && self.bar.is_hidden() {
                    self.bar.reset_elapsed();
                    self.bar
                        .set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                self.bar.set_length(n as u64);
                None
            }
            Event::Point(run) => {
                self.bar.inc(1);
                self.bar.set_message(run.mode.clone());
                Some(output::progress_line(run))
            }
            Event::Step(run) => {
                self.bar.inc(1);
                Some(format!("MLFRR search: {}", output::progress_line(run)))
            }
        };
        // Printed around the bar, and printed even when the bar is hidden.
        if let Some(l) = line {
            self.bar.suspend(|| eprintln!("{l}"));
        }
    }

    /// Remove the bar.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
