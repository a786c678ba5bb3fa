//! `pollsim compare --sim` (and the default without root): the simulated
//! sweep, printed and written exactly as the real one, marked simulated.

use anyhow::Context as _;

use crate::compare::experiment::CompareArgs;
use crate::compare::{output, sim};

/// Entry point of the simulated `compare`.
pub fn main(args: &CompareArgs) -> anyhow::Result<()> {
    if args.vs_real {
        anyhow::bail!("--vs-real is not available yet");
    }
    eprintln!(
        "pollsim compare: simulated on virtual time (seed {}, {:?} arrivals); calibrating...",
        args.seed, args.arrivals
    );
    let mut results = sim::run(args, &mut |run| eprintln!("{}", output::progress_line(run)))?;
    results.summary = output::summarize(&results.runs);
    let dir = args.out.clone().unwrap_or_else(super::compare::default_out);
    output::write_all(&results, &dir).context("writing the results")?;
    if args.json {
        println!("{}", output::json(&results));
    } else {
        print!("{}", output::table(&results));
    }
    eprintln!(
        "pollsim compare: wrote {0}/results.csv, {0}/results.json, {0}/livelock.svg (simulated)",
        dir.display()
    );
    Ok(())
}
