//! `pollsim bench ...`: in-process benchmarks of the kernel's parts.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::bench::{demux, reactor, reactor_plot};

/// What `pollsim bench` measures.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCmd {
    /// Cost per delivered event of the reactor's two backends (kernel
    /// polling `ready` vs user polling `scan`) at 10..10,000 sockets.
    Reactor(ReactorArgs),
    /// The netisr's cost per TCP frame at 10, 1,000 and 10,000 established
    /// connections, with smoltcp's linear demux (1 shard) and sharded.
    Demux(DemuxArgs),
}

/// Arguments of `pollsim bench demux`.
#[derive(clap::Args, Debug)]
pub struct DemuxArgs {
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Frames timed per point.
    #[arg(long, default_value_t = 20_000)]
    pub frames: u64,
    /// Connection counts, comma separated (default 10,1000,10000).
    #[arg(long, value_delimiter = ',')]
    pub conns: Vec<usize>,
    /// Socket shards of the sharded series (default: the kernel's).
    #[arg(long, default_value_t = crate::kernel::sockets::SHARDS)]
    pub shards: usize,
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
    /// Sockets made ready before each poll, the same for every N (default:
    /// 1% of N, at least one). `--ready 1` is the classic select-vs-epoll
    /// setting: a fixed number of active connections among N.
    #[arg(long)]
    pub ready: Option<usize>,
    /// Measure the reactor's hw.sim.reactor_* costs instead (printed as
    /// sysctl lines, or JSON with --json).
    #[arg(long)]
    pub costs: bool,
}

/// Entry point of `pollsim bench`.
pub fn main(cmd: &BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Reactor(a) => bench_reactor(a),
        BenchCmd::Demux(a) => bench_demux(a),
    }
}

fn bench_demux(a: &DemuxArgs) -> anyhow::Result<()> {
    let conns = if a.conns.is_empty() {
        demux::CONNS.to_vec()
    } else {
        a.conns.clone()
    };
    if let Some(&bad) = conns.iter().find(|&&n| n == 0 || n > demux::MAX_CONNS) {
        bail!("--conns: {bad} is out of range (1..{})", demux::MAX_CONNS);
    }
    if a.frames == 0 || a.frames > 10_000_000 {
        bail!("--frames {}: out of range (1..10000000)", a.frames);
    }
    if a.shards == 0 || a.shards > 65_536 {
        bail!("--shards {}: out of range (1..65536)", a.shards);
    }
    let points = demux::run(&conns, a.shards, a.frames, &mut |p| {
        eprintln!(
            "pollsim bench demux: shards={:<4} connections={:<6} {:>10.1} ns/frame",
            p.shards, p.connections, p.ns_per_frame
        );
    });
    if a.json {
        println!("{}", demux::json(&points));
    } else {
        print!("{}", demux::table(&points));
    }
    Ok(())
}

fn bench_reactor(a: &ReactorArgs) -> anyhow::Result<()> {
    if a.costs {
        let c = reactor::costs();
        if a.json {
            println!("{}", serde_json::json!({ "reactor_costs": c }));
        } else {
            let mut m = crate::kernel::cost::CostModel::default();
            c.apply(&mut m);
            for k in crate::kernel::cost::CostKnob::REACTOR {
                println!("{}={}", k.name(), m.get(k));
            }
        }
        return Ok(());
    }
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
    if let Some(r) = a.ready
        && sizes.iter().any(|&n| r == 0 || r > n)
    {
        bail!("--ready {r}: must be 1..N for every N of --sizes");
    }
    let points = reactor::run(&sizes, a.events, a.ready, &mut |p| {
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
