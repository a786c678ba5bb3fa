//! `pollsim compare --sim` (and the default without root): the simulated
//! sweep, printed and written exactly as the real one, marked simulated.

use anyhow::Context as _;

use crate::compare::experiment::CompareArgs;
use crate::compare::profile::Costs;
use crate::compare::{output, sim};

/// Entry point of the simulated `compare`.
pub fn main(args: &CompareArgs) -> anyhow::Result<()> {
    let costs = Costs::resolve(args.profile.as_deref())?;
    if args.vs_real {
        return vs_real(args, &costs);
    }
    eprintln!("pollsim compare: {}", costs.describe());
    eprintln!(
        "pollsim compare: simulated on virtual time (seed {}, {:?} arrivals); calibrating...",
        args.seed, args.arrivals
    );
    let results = sim::run(args, &costs, &mut |run| {
        eprintln!("{}", output::progress_line(run))
    })?;
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

/// `--sim --vs-real`, as root: the real sweep, then the simulation of the
/// same points; both tables, both result sets (`real/`, `sim/`), and per
/// mode the relative difference of the peak and of the delivered rate at
/// the highest offered load (`fidelity.json`).
fn vs_real(args: &CompareArgs, costs: &Costs) -> anyhow::Result<()> {
    if !crate::lab::is_root() {
        anyhow::bail!("--vs-real needs root: the real half runs on a tap in a private namespace");
    }
    crate::compare::sweep::enter_lab()?;
    let stop = super::signals::stop_flag()?;
    eprintln!("pollsim compare --vs-real: the real sweep first...");
    let mut bar = super::compare::Progress::new(args.json);
    let real = crate::compare::experiment::run(args, &stop, &mut |e| bar.event(e))?;
    bar.finish();
    eprintln!("pollsim compare --vs-real: now the same points on virtual time...");
    eprintln!("pollsim compare --vs-real: {}", costs.describe());
    let mut simr = sim::mirror(&real, args, costs, &mut |run| {
        eprintln!("{}", output::progress_line(run))
    })?;
    simr.summary = output::summarize(&simr.runs);
    let dir = args.out.clone().unwrap_or_else(super::compare::default_out);
    output::write_all(&real, &dir.join("real"))?;
    output::write_all(&simr, &dir.join("sim"))?;
    let fid = sim::fidelity(&real, &simr);
    let json = serde_json::to_string_pretty(&fid).context("fidelity as JSON")?;
    std::fs::write(dir.join("fidelity.json"), json + "\n").context("writing fidelity.json")?;
    print!("{}\n{}", output::table(&real), output::table(&simr));
    println!(
        "\nfidelity (simulated vs real, (sim - real) / real; agrees: peak and plateau within {:.0}%):",
        sim::AGREEMENT * 100.0
    );
    for f in &fid {
        let plateau = if f.at_max_collapsed {
            "both collapsed".to_string()
        } else {
            format!("{:+.1}%", f.at_max_diff * 100.0)
        };
        println!(
            "  {:<12} peak {:>9} vs {:>9} ({:+.1}%)   at max offered {:>9} vs {:>9} ({plateau})   {}",
            f.mode,
            output::human(f.peak_pps.1),
            output::human(f.peak_pps.0),
            f.peak_diff * 100.0,
            output::human(f.at_max_pps.1),
            output::human(f.at_max_pps.0),
            if f.agrees { "agrees" } else { "DIFFERS" },
        );
    }
    eprintln!(
        "pollsim compare: wrote {0}/real/, {0}/sim/ (results.csv, results.json, livelock.svg) and {0}/fidelity.json",
        dir.display()
    );
    Ok(())
}
