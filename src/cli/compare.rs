//! `pollsim compare`: run the experiment, print the table (or JSON), write
//! results.csv, results.json and livelock.svg.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

use crate::compare::experiment::{self, CompareArgs};
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
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    ctrlc::set_handler(move || s2.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    eprintln!("pollsim compare: calibrating (polling mode at the flood's maximum rate)...");
    let mut results = experiment::run(args, &stop, &mut |run| {
        eprintln!("{}", output::progress_line(run))
    })?;
    results.summary = output::summarize(&results.runs);
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
