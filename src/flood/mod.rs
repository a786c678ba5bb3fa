//! `pollsim flood`: a bounded, paced flood of Ethernet frames injected into
//! the kernel side of a tap, so that they come out of the tap's fd as
//! received frames: the offered load of the livelock experiment (the
//! "input rate" axis of Mogul & Ramakrishnan's figures).
//!
//! - [`frames`]: the frames, built once with pnet's packet builders.
//! - [`link`]: the interface's addresses, ARP resolution, and an AF_PACKET
//!   socket that sends them with `sendmmsg` in batches of `--burst`.
//! - [`pace`]: the absolute-deadline pacer and the per-second meter.
//!
//! Why not pnet's datalink channel for sending: its `send_to` is one
//! `sendto` per frame (~300 kpps here); one `sendmmsg` per batch on the
//! same kind of socket reaches more than twice that.
//!
//! Safety by construction (docs/design.md, principle 6): the destination must be
//! in 198.18.0.0/15, and every flood is bounded by `--duration` or
//! `--count`; frames go only to the interface named, in the caller's
//! network namespace.

pub mod frames;
pub mod link;
pub mod pace;
pub mod parse;

use std::io::Write;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

use crate::lab::is_bench_addr;
use frames::{FlowDist, FrameSpec, MAX_FLOWS, Proto, Ring, parse_flow_dist};
use link::{Link, MAX_BURST, Sender};
use pace::{Meter, Pacer, Totals, rates};
use parse::{PortRange, Rate, fmt_mac, parse_duration, parse_mac, parse_ports, parse_rate};

/// Smallest frame (bytes, without FCS): Ethernet's minimum.
pub const MIN_SIZE: u16 = 60;
/// Largest frame (bytes, without FCS): a 1500-byte MTU.
pub const MAX_SIZE: u16 = 1514;
/// The source port when `--src-ports` is not given (the first dynamic port).
pub const DEFAULT_SRC_PORT: u16 = 49_152;
/// How long `--bench` runs the plain `sendmmsg` loop.
pub const BENCH_TIME: Duration = Duration::from_secs(1);
/// How long to wait for the tap's carrier (a reader) before flooding anyway.
pub const CARRIER_WAIT: Duration = Duration::from_secs(2);
/// Longest sleep between checks of the clock, `stop` and the meter.
const MAX_NAP: Duration = Duration::from_millis(20);
/// Waits shorter than this spin instead of sleeping (timer slack is ~50 µs).
const SPIN_BELOW: Duration = Duration::from_millis(2);

/// Arguments of `pollsim flood`.
#[derive(clap::Args, Debug, Clone)]
pub struct FloodArgs {
    /// The tap to inject into (its kernel side must have an address in 198.18.0.0/15).
    #[arg(long = "if", default_value = "tap0", value_name = "IF")]
    pub ifname: String,
    /// Frames per second, with k or M suffix (100k, 1.5M), or max.
    #[arg(long, default_value = "max", value_parser = parse_rate)]
    pub rate: Rate,
    /// Frame bytes without FCS, 60..=1514.
    #[arg(long, default_value_t = MIN_SIZE)]
    pub size: u16,
    /// Stop after this long (500ms, 10s, 2m); required unless --count.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after N frames; required unless --duration.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Destination address and port, in 198.18.0.0/15.
    #[arg(long, default_value = "198.18.0.2:9", value_name = "IP:PORT")]
    pub dst: SocketAddrV4,
    /// Destination MAC (default: from the kernel's neighbour table, by ARP).
    #[arg(long, value_parser = parse_mac, value_name = "MAC")]
    pub dst_mac: Option<[u8; 6]>,
    /// What to send: UDP datagrams, TCP SYNs or ICMP echo requests.
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    /// Spread flows over source ports LO-HI (default: one port, 49152).
    #[arg(long, value_parser = parse_ports, value_name = "LO-HI")]
    pub src_ports: Option<PortRange>,
    /// Distinct 4-tuples to send, 1..=65536 (default: one per --src-ports
    /// port). The source port varies fastest over --src-ports; each time
    /// it wraps, the source address moves to the next of 198.19.0.0/16
    /// (the first --src-ports flows keep the interface's own address).
    #[arg(long, value_name = "K")]
    pub flows: Option<usize>,
    /// How the flows share the frames: rr (each in turn) or zipf:S (flow i
    /// with probability proportional to 1/(i+1)^S, S in 0..=10, from a
    /// fixed seed).
    #[arg(long, default_value = "rr", value_parser = parse_flow_dist, value_name = "rr|zipf:S")]
    pub flow_dist: FlowDist,
    /// Largest batch of frames per sendmmsg, 1..=1024.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub burst: usize,
    /// A sender more than this behind its schedule (its CPU was taken
    /// away) drops the frames it owes beyond it instead of sending them
    /// back to back, so the offered load keeps its shape; they are counted
    /// as skipped and are not offered. Default: catch up in full.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub max_lag: Option<Duration>,
    /// First measure a plain sendmmsg loop for 1 s (traffic on top of the
    /// bounded flood), and report both rates.
    #[arg(long)]
    pub bench: bool,
}

/// Only for [`FloodArgs::from_args`].
#[derive(Parser, Debug)]
#[command(name = "flood")]
struct Standalone {
    #[command(flatten)]
    args: FloodArgs,
}

impl FloodArgs {
    /// Parse `pollsim flood` arguments (without the program and subcommand
    /// names), as the command line would.
    pub fn from_args(args: &[&str]) -> Result<FloodArgs, clap::Error> {
        let argv = std::iter::once("flood").chain(args.iter().copied());
        Standalone::try_parse_from(argv).map(|s| s.args)
    }

    /// Refuse what must never run: a destination outside 198.18.0.0/15, an
    /// unbounded flood, a rate of 0, a size or burst out of range.
    pub fn check(&self) -> anyhow::Result<()> {
        if !is_bench_addr(*self.dst.ip()) {
            bail!(
                "destination {} is outside 198.18.0.0/15, the benchmarking range: refused",
                self.dst
            );
        }
        match (self.duration, self.count) {
            (None, None) => {
                bail!("an unbounded flood is refused: give --duration (e.g. 10s) or --count N")
            }
            (Some(Duration::ZERO), _) => bail!("--duration must be above 0"),
            (_, Some(0)) => bail!("--count must be at least 1"),
            _ => {}
        }
        if self.rate == Rate::MilliPps(0) {
            bail!("--rate must be above 0 (e.g. 100k, 1.5M or max)");
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            let size = self.size;
            bail!("--size {size} is out of range: frames are {MIN_SIZE}..={MAX_SIZE} bytes");
        }
        if let Some(k) = self.flows
            && !(1..=MAX_FLOWS).contains(&k)
        {
            bail!("--flows {k} is out of range 1..={MAX_FLOWS}");
        }
        if !(1..=MAX_BURST).contains(&self.burst) {
            bail!("--burst {} is out of range 1..={MAX_BURST}", self.burst);
        }
        Ok(())
    }
}

/// What a flood did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodReport {
    /// Frames handed to the interface: the offered load. It includes the
    /// frames the tap then dropped because its queue was full (its
    /// `tx_dropped`, pollsim's `rx_missed`), as a wire would lose them.
    pub sent: u64,
    /// From the first frame to the end.
    pub elapsed: Duration,
    /// Sends that failed with ENOBUFS or EAGAIN (or EINTR) and were retried;
    /// a retried frame is counted once in `sent`.
    pub errors: u64,
    /// Frames dropped from the schedule (`--max-lag`), never sent.
    pub skipped: u64,
}

/// Run `pollsim flood`, printing a line per second and a summary to stdout.
/// Setting `stop` (Ctrl-C) ends it early, still with the summary.
pub fn main(args: &FloodArgs, stop: &AtomicBool) -> anyhow::Result<FloodReport> {
    run(args, stop, &mut std::io::stdout().lock())
}

/// [`main`], writing its lines to `out` (a failed write does not stop the flood).
pub fn run(
    args: &FloodArgs,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> anyhow::Result<FloodReport> {
    run_counted(args, stop, out, &AtomicU64::new(0))
}

/// [`run`], keeping `sent` current (frames sent so far) while it floods, so
/// that an experiment can measure the offered rate over its own window.
pub fn run_counted(
    args: &FloodArgs,
    stop: &AtomicBool,
    out: &mut dyn Write,
    sent: &AtomicU64,
) -> anyhow::Result<FloodReport> {
    args.check()?;
    let link = link::wait_running(&args.ifname, CARRIER_WAIT)?;
    let dst_mac = match args.dst_mac {
        Some(mac) => mac,
        None => link::resolve_mac(&link, args.dst)?,
    };
    let spec = FrameSpec {
        proto: args.proto,
        size: usize::from(args.size),
        src_mac: link.mac,
        dst_mac,
        src: link.ipv4,
        dst: args.dst,
    };
    let flows = args
        .src_ports
        .unwrap_or(PortRange::single(DEFAULT_SRC_PORT));
    let ring = Ring::build_flows(
        &spec,
        flows,
        args.flows.unwrap_or(flows.len()),
        args.flow_dist,
    )?;
    let mut tx = Sender::open(&link, &ring, args.burst)?;
    let _ = writeln!(out, "{}", header(args, &spec, &link, ring.len()));
    if !link.running {
        let name = &link.name;
        let _ = writeln!(
            out,
            "warning: {name} is down or has no reader: it drops every frame"
        );
    }
    let plain = match args.bench {
        true => Some(plain_loop(&mut tx, stop)?),
        false => None,
    };
    let limit = Limit {
        duration: args.duration.unwrap_or(Duration::MAX),
        count: args.count.unwrap_or(u64::MAX),
    };
    let pacer = Pacer::new(args.rate, args.burst);
    let meter = Meter::new(spec.size);
    let (t, elapsed) = flood_loop(
        &mut tx,
        (pacer, args.max_lag),
        limit,
        (stop, sent),
        meter,
        out,
    )?;
    let report = FloodReport {
        sent: t.sent,
        elapsed,
        errors: t.retries,
        skipped: t.skipped,
    };
    let _ = write!(out, "{}", summary(&t, elapsed, spec.size));
    if let Some(plain) = plain {
        let _ = writeln!(out, "{}", bench_line(plain, args.rate, &report));
    }
    Ok(report)
}

fn header(args: &FloodArgs, spec: &FrameSpec, link: &Link, flows: usize) -> String {
    let bound = match (args.duration, args.count) {
        (Some(d), Some(n)) => format!("for {d:?} or {n} frames"),
        (Some(d), None) => format!("for {d:?}"),
        (_, n) => format!("for {} frames", n.unwrap_or_default()),
    };
    format!(
        "flood {}: {} {} -> {} {}, {} {}-byte frames, {} flow(s), rate {}, burst {}, {bound}",
        link.name,
        spec.src,
        fmt_mac(spec.src_mac),
        spec.dst,
        fmt_mac(spec.dst_mac),
        spec.proto.name(),
        spec.size,
        flows,
        args.rate,
        args.burst,
    )
}

/// When to stop.
#[derive(Clone, Copy, Debug)]
struct Limit {
    duration: Duration,
    count: u64,
}

/// Send on `pacer`'s schedule until `limit` or `stop`, printing a line per
/// second; frames more than `max_lag` overdue are skipped. Bound:
/// `limit.count` frames (sent or skipped) or `limit.duration`, whichever
/// first.
fn flood_loop(
    tx: &mut Sender<'_>,
    (pacer, max_lag): (Pacer, Option<Duration>),
    limit: Limit,
    (stop, sent): (&AtomicBool, &AtomicU64),
    mut meter: Meter,
    out: &mut dyn Write,
) -> anyhow::Result<(Totals, Duration)> {
    let mut t = Totals::default();
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        let done = t.sent + t.skipped;
        if stop.load(Ordering::Relaxed) || elapsed >= limit.duration || done >= limit.count {
            return Ok((t, elapsed));
        }
        if let Some(line) = meter.tick(elapsed, &t) {
            let _ = writeln!(out, "{line}");
        }
        if let Some(lag) = max_lag {
            t.skipped += pacer.behind(elapsed, done, lag).min(limit.count - done);
        }
        let done = t.sent + t.skipped;
        let left = usize::try_from(limit.count - done).unwrap_or(usize::MAX);
        let n = pacer.due(elapsed, done).min(left);
        if n == 0 {
            let at = pacer.deadline(done).min(limit.duration).min(meter.next());
            nap(at.saturating_sub(start.elapsed()));
            continue;
        }
        send(tx, n, &mut t)?;
        sent.store(t.sent, Ordering::Relaxed);
    }
}

/// One batch, counted into `t`.
fn send(tx: &mut Sender<'_>, n: usize, t: &mut Totals) -> anyhow::Result<()> {
    let o = tx.send(n).context("sendmmsg on the AF_PACKET socket")?;
    t.sent += o.offered as u64;
    t.retries += u64::from(o.retry);
    Ok(())
}

/// Wait about `left`: sleep most of a long wait, spin through a short one
/// (the caller loops until its deadline).
fn nap(left: Duration) {
    if left >= SPIN_BELOW {
        std::thread::sleep((left - SPIN_BELOW / 2).min(MAX_NAP));
    } else {
        std::hint::spin_loop();
    }
}

/// `--bench`: full batches back to back for [`BENCH_TIME`]: (frames per
/// second, retries).
fn plain_loop(tx: &mut Sender<'_>, stop: &AtomicBool) -> anyhow::Result<(f64, u64)> {
    let mut t = Totals::default();
    let start = Instant::now();
    while start.elapsed() < BENCH_TIME && !stop.load(Ordering::Relaxed) {
        send(tx, tx.burst(), &mut t)?;
    }
    Ok((rates(t.sent, 0, start.elapsed().as_secs_f64()).0, t.retries))
}

fn summary(t: &Totals, elapsed: Duration, size: usize) -> String {
    let secs = elapsed.as_secs_f64();
    let (pps, mbit) = rates(t.sent, size, secs);
    format!(
        "frames sent: {}\nseconds: {secs:.3}\naverage pps: {pps:.0}\nMbit/s: {mbit:.1}\n\
         ENOBUFS/EAGAIN retries: {}\nskipped (more than --max-lag late): {}\n",
        t.sent, t.retries, t.skipped
    )
}

fn bench_line((plain_pps, plain_retries): (f64, u64), rate: Rate, r: &FloodReport) -> String {
    let pps = rates(r.sent, 0, r.elapsed.as_secs_f64()).0;
    let pct = if plain_pps > 0.0 {
        100.0 * pps / plain_pps
    } else {
        0.0
    };
    format!(
        "plain sendmmsg loop: {plain_pps:.0} pps; flood --rate {rate}: {pps:.0} pps \
         ({pct:.1}% of plain; retries {plain_retries} and {})",
        r.errors
    )
}
