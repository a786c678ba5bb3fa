//! `pollsim bench ...`: in-process benchmarks of the kernel's parts.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::bench::{reactor, reactor_plot};

/// What `pollsim bench` measures.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCmd {
    /// Cost per delivered event of the reactor's two backends (kernel
    /// polling `ready` vs user polling `scan`) at 10..10,000 sockets.
    Reactor(ReactorArgs),
}

/// Arguments of `pollsim bench reactor`.
#[derive(clap::Args, Debug)]
pub struct ReactorArgs {
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write reactor.svg (and reactor.json) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Events timed per point (more: steadier figures, longer run).
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Socket counts, comma separated (default 10,100,1000,10000).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
}

/// Entry point of `pollsim bench`.
pub fn main(cmd: &BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Reactor(a) => bench_reactor(a),
    }
}

fn bench_reactor(a: &ReactorArgs) -> anyhow::Result<()> {
    let sizes = if a.sizes.is_empty() {
        reactor::SIZES.to_vec()
    } else {
        a.sizes.clone()
    };
    if let Some(&bad) = sizes
        .iter()
        .find(|&&n| n == 0 || n > crate::bench::rig::MAX_SOCKETS)
    {
        bail!(
            "--sizes: {bad} is out of range (1..{})",
            crate::bench::rig::MAX_SOCKETS
        );
    }
    if a.events == 0 || a.events > 100_000_000 {
        bail!("--events {}: out of range (1..100000000)", a.events);
    }
    let points = reactor::run(&sizes, a.events, &mut |p| {
        eprintln!(
            "pollsim bench reactor: {:<5} N={:<6} {:>10.1} ns/event {:>10.2} scanned/event",
            p.backend, p.sockets, p.ns_per_event, p.scanned_per_event
        );
    });
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let svg = reactor_plot::reactor_svg(&points)?;
        std::fs::write(dir.join("reactor.svg"), svg).context("writing reactor.svg")?;
        std::fs::write(dir.join("reactor.json"), reactor::json(&points))
            .context("writing reactor.json")?;
        eprintln!(
            "pollsim bench reactor: wrote {0}/reactor.svg, {0}/reactor.json",
            dir.display()
        );
    }
    if a.json {
        println!("{}", reactor::json(&points));
    } else {
        print!("{}", reactor::table(&points));
    }
    Ok(())
}
