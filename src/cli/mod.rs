//! The command line (the CLI contract of docs/design.md): `pollsim run`,
//! and the commands that talk to a running instance (`sysctl`, `ifconfig`,
//! `stat`, in `admin`). Errors are one line on stderr; exit status 2 for bad
//! input, except `sysctl`, which keeps sysctl(8)'s exit codes.

mod admin;
mod bench;
mod calibrate;
mod compare;
mod compare_sim;
mod cpu_line;
mod pcap;
mod rss;
mod run_sim;
mod run_smp;
pub use run_smp::cpu_name;
pub mod signals;

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use smoltcp::wire::Ipv4Cidr;

use crate::apps::AppKind;
use crate::ctl::Control;
use crate::kernel::clock::Clock;
use crate::kernel::sched::{Hooks, RunOptions};
use crate::kernel::time::{Hz, Nanos};
use crate::kernel::{Kernel, KernelConfig, Mode, mib};
use crate::lab;
use crate::report::{self, Snapshot};
use crate::rt::clock::RealClock;
use crate::rt::sched::run_real;
use pollsim_drivers::TapNic;

#[derive(Parser, Debug)]
#[command(
    name = "pollsim",
    version,
    about = "Receive livelock, interrupts and device polling, on a real tap"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the simulated kernel against a tap device.
    Run(RunArgs),
    /// Read and set knobs of a running instance, in FreeBSD sysctl(8) syntax:
    /// [--name NAME] [-adeNnqtw] [-f FILE] [--json] [name[=value] ...]
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Sysctl {
        /// sysctl(8) arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Show an interface of a running instance, or switch its polling on or
    /// off (sugar for dev.IF.polling).
    Ifconfig {
        /// Instance name.
        #[arg(long, default_value = "default")]
        name: String,
        /// The interface.
        ifname: String,
        /// `polling` or `-polling`.
        #[arg(allow_hyphen_values = true)]
        action: Option<String>,
    },
    /// Inject a bounded flood of Ethernet frames into the kernel side of a
    /// tap (AF_PACKET), only to 198.18.0.0/15.
    Flood(crate::flood::FloodArgs),
    /// The livelock experiment: sweep offered load over every mode, in a
    /// private network namespace; a table, results.csv/json, livelock.svg.
    Compare(crate::compare::experiment::CompareArgs),
    /// In-process benchmarks (no tap, no root): `bench reactor`.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Measure the hw.sim.* costs of the virtual-time simulation on this
    /// machine's tap path (root, private namespace) and write them as the
    /// hardware profile every --sim command loads.
    Calibrate(calibrate::CalibrateArgs),
    /// The Toeplitz RSS hash of a flow and the receive queue it selects
    /// (no tap, no root).
    RssHash(rss::RssHashArgs),
    /// netstat -w style view of a running instance.
    Stat {
        /// Instance name.
        #[arg(long, default_value = "default")]
        name: String,
        /// Seconds between lines.
        #[arg(short = 'w', default_value_t = 1.0)]
        wait: f64,
        /// Stop after N lines.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Per-cause input counters of a running instance, as FreeBSD's
    /// netstat -s prints them (ip, icmp, udp, tcp, arp, below IP).
    Netstat {
        /// Protocol statistics (the only view; as FreeBSD's -s).
        #[arg(short = 's', required = true)]
        stats: bool,
        /// Instance name.
        #[arg(long, default_value = "default")]
        name: String,
        /// JSON: {"ip": {"badsum": n, ...}, "udp": {...}, ...}.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `pollsim run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// A tap device, as IF or IF=ADDR/LEN (repeatable: one per interface,
    /// e.g. --if tap0=198.18.0.2/24 --if tap1=198.18.1.2/24; create them
    /// first: ip tuntap add dev tap0 mode tap). An IF without its address
    /// takes --addr.
    #[arg(long = "if", default_value = "tap0", value_name = "IF[=ADDR/LEN]")]
    pub ifnames: Vec<String>,
    /// The stack's address and prefix on the one --if given without its
    /// own, in 198.18.0.0/15 (the RFC 2544 benchmarking range) unless
    /// --allow-any-addr is given.
    #[arg(long, default_value = "198.18.0.2/24", value_parser = parse_cidr)]
    pub addr: Ipv4Cidr,
    /// Accept an --addr outside 198.18.0.0/15: the stack then answers on
    /// whatever network the tap is bridged to. Off by default, so a typo
    /// cannot put pollsim on a production network.
    #[arg(long)]
    pub allow_any_addr: bool,
    /// Initial input discipline of the interface (dev.<if>.discipline):
    /// interrupt, polling, napi or mr.
    #[arg(long, default_value = "polling", value_parser = parse_mode)]
    pub mode: Mode,
    /// Clock interrupts per second (kern.hz), 100..10000.
    #[arg(long, default_value_t = 1000, value_parser = parse_hz)]
    pub hz: u32,
    /// Apps to run, comma separated: udp-sink, tcp-echo, http, interactive.
    #[arg(long, default_value = "udp-sink,tcp-echo,http,interactive", value_delimiter = ',', value_parser = parse_app)]
    pub apps: Vec<AppKind>,
    /// Instance name: its MIB is served on /run/pollsim/NAME.sock for
    /// `pollsim sysctl`, `ifconfig` and `stat`.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Print a stats line every SECONDS.
    #[arg(short = 'w', value_name = "SECONDS")]
    pub wait: Option<f64>,
    /// Stop by itself after SECONDS (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Set a knob before starting, as NAME=VALUE (repeatable), e.g.
    /// kern.polling.user_frac=30 or user.udp_sink.work_ns=20000.
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    pub sysctls: Vec<String>,
    /// Make a private network namespace and the tap in it (kernel side
    /// 198.18.x.1), instead of attaching to an existing tap. Root only.
    #[arg(long)]
    pub private_netns: bool,
    /// Seed of the stack's randomness (TCP initial sequence numbers), and
    /// with --sim of the arrivals.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Run on virtual time against a simulated NIC fed by a seeded flood to
    /// udp-sink (no tap, no root); --duration is then virtual seconds
    /// (default 10) and the hw.sim.* cost model applies.
    #[arg(long)]
    pub sim: bool,
    /// With --sim: the flood's mean rate (pps, k/M suffixes).
    #[arg(long, default_value = "100k", requires = "sim")]
    pub sim_rate: String,
    /// With --sim: the hardware profile whose hw.sim costs to charge (a
    /// file `pollsim calibrate` wrote, or `builtin`; default as for
    /// `compare --profile`). --sysctl hw.sim.* still overrides it.
    #[arg(long, value_name = "FILE|builtin", requires = "sim")]
    pub profile: Option<String>,
    /// Capture every frame the NIC took and every frame the stack sent to
    /// FILE (pcapng, one interface block per NIC, kernel-clock timestamps;
    /// virtual time with --sim).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// Bound of the capture, bytes (k, M, G suffixes: powers of 1024);
    /// frames beyond are not recorded, and counted.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = pcap::parse_size)]
    pub pcap_limit: u64,
    /// With --sim: the flood's arrival process.
    #[arg(long, value_enum, default_value = "poisson", requires = "sim")]
    pub arrivals: crate::compare::sim::ArrivalKind,
    /// With --sim: run the HTTP probe client (a GET to the http app every
    /// 100 ms of virtual time, as compare's probe) on this link.
    #[arg(long, value_enum, value_name = "LINK", requires = "sim")]
    pub sim_probe: Option<crate::sim::ProbeLink>,
    /// Idle TCP connections to tcp-echo, held for the run (real: opened
    /// from the tap's Linux side; --sim: synthetic), at most 16320.
    #[arg(long, default_value_t = 0, value_parser = parse_conns)]
    pub conns: usize,
    /// CPUs (hw.ncpu), each a kernel of its own with its own discipline,
    /// stack and apps, serving its receive queues (docs/smp.md). With --sim
    /// 1..=64, RSS spreading the flood's flows over tap0's queues; on the
    /// real clock at most the host's CPUs, one pinned kernel thread per CPU
    /// reading its queues of a multiqueue tap.
    #[arg(long, default_value_t = 1)]
    pub cpus: usize,
    /// Receive queues of the tap, 1..=256 (default: --cpus). Queue q is
    /// served by CPU q % cpus (DragonFly's ring map): with more queues than
    /// CPUs a CPU serves several, with fewer some CPUs serve none.
    #[arg(long, value_name = "M")]
    pub queues: Option<usize>,
    /// With --sim: distinct flows of the flood (1..=65536), as `pollsim
    /// flood --flows`.
    #[arg(long, default_value_t = 1, requires = "sim", value_name = "K")]
    pub flows: usize,
    /// With --sim: how the flows share the frames, rr or zipf:S.
    #[arg(long, default_value = "rr", requires = "sim",
          value_parser = crate::flood::frames::parse_flow_dist, value_name = "rr|zipf:S")]
    pub flow_dist: crate::flood::frames::FlowDist,
    /// With --sim: the Toeplitz key of tap0's RSS: microsoft, symmetric,
    /// or 40 bytes in hex.
    #[arg(long, default_value = "microsoft", requires = "sim", value_parser = parse_rss_key, value_name = "KEY")]
    pub rss_key: pollsim_drivers::RssKey,
    /// With --sim: indirection-table weights, one per queue, as `ethtool -X
    /// weight`. Default: equal.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "sim",
        value_name = "W0,W1,..."
    )]
    pub rss_weight: Option<Vec<u32>>,
}

/// `--rss-key`: microsoft, symmetric, or 40 bytes in hex.
pub fn parse_rss_key(s: &str) -> Result<pollsim_drivers::RssKey, String> {
    s.parse()
        .map_err(|e: pollsim_drivers::rss::RssError| e.to_string())
}

fn parse_conns(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of connections"))?;
    if n > crate::conns::CONNS_MAX {
        return Err(format!(
            "{n}: out of range (0..{})",
            crate::conns::CONNS_MAX
        ));
    }
    Ok(n)
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' is not an IPv4 CIDR like 198.18.0.2/24"))?;
    let ip: std::net::Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("'{ip}' is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("'/{len}' is not a prefix length 0..32"))?;
    Ok(Ipv4Cidr::new(ip, len))
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::from_name(s).ok_or_else(|| format!("unknown mode '{s}' ({})", Mode::NAMES.join(", ")))
}

fn parse_hz(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    Hz::new(v).map(|h| h.get()).map_err(|e| e.to_string())
}

/// The lowest `kern.hz` polling(4) advises for polling (its synopsis:
/// `options HZ=1000`).
pub const POLLING_MIN_HZ: u32 = 1000;

/// The warning `pollsim run` gives at a `kern.hz` polling(4) advises
/// against (any interface may be switched to polling while it runs), or
/// `None`.
pub fn hz_warning(hz: Hz) -> Option<String> {
    (hz.get() < POLLING_MIN_HZ).then(|| {
        format!(
            "--hz {}: polling(4) advises HZ={POLLING_MIN_HZ} or more for polling: a polled \
             interface is served once per tick, so frames wait up to {:.1} ms and at most \
             kern.polling.burst_max of them are taken per tick",
            hz.get(),
            1000.0 / f64::from(hz.get())
        )
    })
}

fn parse_app(s: &str) -> Result<AppKind, String> {
    s.parse()
}

/// One interface of `pollsim run`: the tap's name and the stack's
/// address on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfSpec {
    /// The tap.
    pub name: String,
    /// The stack's address and prefix on it.
    pub addr: Ipv4Cidr,
}

impl RunArgs {
    /// `--apps` as given: `udp-sink,http,...`.
    pub fn apps_list(&self) -> String {
        self.apps
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The interfaces, in `--if` order: `IF=ADDR/LEN`, or `IF` with
    /// `--addr` (for at most one of them). Names and subnets must differ.
    pub fn interfaces(&self) -> anyhow::Result<Vec<IfSpec>> {
        let mut out: Vec<IfSpec> = Vec::new();
        let mut bare = 0;
        for spec in &self.ifnames {
            let (name, addr) = match spec.split_once('=') {
                Some((n, a)) => (
                    n,
                    parse_cidr(a).map_err(|e| anyhow::anyhow!("--if {spec}: {e}"))?,
                ),
                None => {
                    bare += 1;
                    (spec.as_str(), self.addr)
                }
            };
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '.']) {
                bail!("--if {spec}: '{name}' is not an interface name");
            }
            if bare > 1 {
                bail!(
                    "--if {spec}: only one --if may take --addr; give the others theirs (--if {name}=198.18.1.2/24)"
                );
            }
            if let Some(o) = out.iter().find(|o| o.name == name) {
                bail!("--if {spec}: {} is given twice", o.name);
            }
            if let Some(o) = out.iter().find(|o| o.addr.network() == addr.network()) {
                bail!(
                    "--if {spec}: {addr} is in the subnet of {} ({}): each interface needs its own",
                    o.name,
                    o.addr
                );
            }
            out.push(IfSpec {
                name: name.to_string(),
                addr,
            });
        }
        if out.len() > crate::kernel::sockets::MAX_NICS.min(64) {
            bail!("--if: at most 64 interfaces");
        }
        Ok(out)
    }
}

/// The kernel side's address on a tap whose stack side is `addr`: .1, or
/// .2 if the stack is .1.
pub fn kernel_side(addr: &Ipv4Cidr) -> std::net::Ipv4Addr {
    let o = addr.address().octets();
    std::net::Ipv4Addr::new(o[0], o[1], o[2], if o[3] == 1 { 2 } else { 1 })
}

/// Make a private network namespace and enter it, for `ifs` (root, every
/// address in the benchmarking range; before any other thread exists, so
/// all later threads inherit it), with no tap in it yet.
fn enter_private_netns_bare(ifs: &[IfSpec]) -> anyhow::Result<()> {
    if !lab::is_root() {
        bail!("--private-netns needs root (to create a network namespace and a tap)");
    }
    for f in ifs {
        if !lab::is_bench_addr(f.addr.address()) {
            bail!(
                "--private-netns: {} {} is outside 198.18.0.0/15, the benchmarking range",
                f.name,
                f.addr
            );
        }
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
    Ok(())
}

/// `--private-netns`: unshare the network namespace and create every tap
/// in it.
fn enter_private_netns(ifs: &[IfSpec]) -> anyhow::Result<()> {
    enter_private_netns_bare(ifs)?;
    for f in ifs {
        let kernel_ip = kernel_side(&f.addr);
        lab::setup_tap(&f.name, &format!("{kernel_ip}/{}", f.addr.prefix_len()))
            .with_context(|| format!("creating {} in the private namespace", f.name))?;
        eprintln!(
            "pollsim: private network namespace with {} (kernel side {kernel_ip}); from another shell:\n\
             pollsim:   nsenter --net=/proc/{}/ns/net curl http://{}/",
            f.name,
            std::process::id(),
            f.addr.address()
        );
    }
    Ok(())
}

/// The MAC of the simulated NIC: locally administered, from the address.
pub fn mac_for(addr: &Ipv4Cidr) -> [u8; 6] {
    let o = addr.address().octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            eprintln!("pollsim: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.cmd {
        Cmd::Run(args) => run(&args),
        Cmd::Sysctl { args } => return admin::sysctl(&args),
        Cmd::Ifconfig {
            name,
            ifname,
            action,
        } => admin::ifconfig(&name, &ifname, action.as_deref()),
        Cmd::Stat { name, wait, count } => admin::stat(&name, wait, count),
        Cmd::Netstat { name, json, .. } => admin::netstat(&name, json),
        Cmd::Flood(args) => flood(&args),
        Cmd::Compare(args) => compare::main(&args),
        Cmd::Bench(cmd) => bench::main(&cmd),
        Cmd::Calibrate(args) => calibrate::main(&args),
        Cmd::RssHash(args) => rss::main(&args),
    };
    if let Err(e) = &result {
        eprintln!("pollsim: {e:#}");
    }
    // Stopped by a signal, after the cleanup: the status a shell expects.
    match (signals::received(), result) {
        (Some(sig), _) => ExitCode::from(signals::exit_status(sig)),
        (None, Ok(())) => ExitCode::SUCCESS,
        (None, Err(_)) => ExitCode::from(2),
    }
}

/// `pollsim flood`: Ctrl-C (or SIGTERM, SIGHUP) stops it early; the
/// summary is printed anyway.
fn flood(args: &crate::flood::FloodArgs) -> anyhow::Result<()> {
    args.check()?;
    let stop = signals::stop_flag()?;
    crate::flood::main(args, &stop).map(|_| ())
}

/// Refuse an address outside 198.18.0.0/15 unless `--allow-any-addr`.
fn check_addr(args: &RunArgs, ifs: &[IfSpec]) -> anyhow::Result<()> {
    for f in ifs {
        if !args.allow_any_addr && !lab::is_bench_addr(f.addr.address()) {
            let what = if args.ifnames.iter().any(|s| s.contains('=')) {
                format!("--if {}={}", f.name, f.addr)
            } else {
                format!("--addr {}", f.addr)
            };
            bail!(
                "{what} is outside 198.18.0.0/15, the benchmarking range: refused \
                 (pass --allow-any-addr to use it anyway)"
            );
        }
    }
    Ok(())
}

/// `--conns N`: tcp-echo must run, with room for N connections (its
/// `max_conns` is raised to N + [`crate::conns::CONNS_HEADROOM`] if lower).
fn prepare_conns(
    args: &RunArgs,
    k: &mut Kernel,
    mib: &pollsim_sysctl::Mib<Kernel>,
) -> anyhow::Result<()> {
    if args.conns == 0 {
        return Ok(());
    }
    if !args.apps.contains(&AppKind::TcpEcho) {
        bail!("--conns needs the tcp-echo app (--apps ...,tcp-echo)");
    }
    let want = args.conns + crate::conns::CONNS_HEADROOM;
    let node = "user.tcp_echo.max_conns";
    let have: usize = mib
        .get(k, node)
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .unwrap_or(0);
    if have < want {
        mib.set(k, node, &want.to_string())
            .map_err(|e| anyhow::anyhow!("--conns {}: {e}", args.conns))?;
        eprintln!(
            "pollsim: --conns {}: {node} raised from {have} to {want}",
            args.conns
        );
    }
    Ok(())
}

/// tcp-echo's port (RFC 862).
const ECHO_PORT: u16 = 7;

/// Start the connector of `--conns` to tcp-echo on the first interface.
fn start_conns(args: &RunArgs, f: &IfSpec) -> anyhow::Result<Option<crate::conns::Connector>> {
    if args.conns == 0 {
        return Ok(None);
    }
    let to = std::net::SocketAddrV4::new(f.addr.address(), ECHO_PORT);
    let c = crate::conns::Connector::start(args.conns, to, move |r| {
        eprintln!(
            "pollsim: --conns: {} of {} idle connections to {to} open in {:.2} s ({} failed); held until the end",
            r.open,
            r.wanted,
            r.took.as_secs_f64(),
            r.failed
        );
    })
    .context("starting the --conns connector")?;
    Ok(Some(c))
}

/// `pollsim run`.
/// Why the real clock refuses `user.tcp_echo.model=threads`.
const THREADS_NEED_SIM: &str = "user.tcp_echo.model=threads needs --sim: on the real clock \
     pollsim runs every simulated process in one host thread, so no context switch or thread \
     stack would be measured (see docs/simulation.md#the-blocking-baseline)";

/// Refuse the threads model before a tap is opened: the `--sysctl`
/// settings of `user.tcp_echo.model` applied, as the MIB reads them, to a
/// kernel with no interface (the run checks its own kernel again).
fn refuse_threads_model(cfg: &KernelConfig, sysctls: &[String]) -> anyhow::Result<()> {
    const NODE: &str = "user.tcp_echo.model";
    let model: Vec<&str> = sysctls
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(name, _)| name.trim() == NODE)
        .map(|(_, v)| v)
        .collect();
    if model.is_empty() {
        return Ok(());
    }
    let mut k = Kernel::new(cfg, Nanos::ZERO);
    let mib = mib::build(&k);
    for v in model {
        mib.set(&mut k, NODE, v)
            .map_err(|e| anyhow::anyhow!("--sysctl: {e}"))?;
    }
    if k.echo_threads() {
        bail!(THREADS_NEED_SIM);
    }
    Ok(())
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let ifs = args.interfaces()?;
    check_addr(args, &ifs)?;
    let cfg = KernelConfig {
        hz: Hz::new(args.hz)?,
        addr: ifs[0].addr,
        mode: args.mode,
        apps: args.apps.clone(),
        seed: args.seed,
    };
    let secs = |what: &str, v: Option<f64>| -> anyhow::Result<Option<Nanos>> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 && s < 1e6 => Ok(Some(Nanos(
                std::time::Duration::from_secs_f64(s).as_nanos() as u64,
            ))),
            Some(s) => bail!("{what} {s}: must be a positive number of seconds"),
        }
    };
    let opts = RunOptions {
        duration: secs("--duration", args.duration)?,
        report_every: secs("-w", args.wait)?,
    };
    if let Some(w) = hz_warning(cfg.hz) {
        eprintln!("pollsim: warning: {w}");
    }
    if args.sim {
        return run_sim::run(args, &cfg, opts);
    }
    if args.cpus != 1 || args.queues.is_some_and(|m| m != 1) {
        refuse_threads_model(&cfg, &args.sysctls)?;
        return run_smp::run(args, &cfg, opts);
    }
    refuse_threads_model(&cfg, &args.sysctls)?;
    // Before the socket exists: a signal from now on removes it on the way
    // out (one before leaves nothing behind).
    let stop = signals::stop_flag()?;
    // The name is checked first: a second instance must not get any further.
    let mut control = Control::bind(&args.name)?;
    if args.private_netns {
        enter_private_netns(&ifs)?;
    }
    let mut clock = RealClock::new();
    let mut k = Kernel::new(&cfg, clock.now());
    let capture = pcap::create(args, pcap::unix_base(clock.now()))?;
    for f in &ifs {
        let nic = TapNic::open(&f.name, mac_for(&f.addr))?;
        match &capture {
            Some(c) => k.attach_at(Box::new(c.wrap(nic)), f.addr, &cfg, clock.now()),
            None => k.attach_at(Box::new(nic), f.addr, &cfg, clock.now()),
        };
    }
    let mut mib = mib::build(&k);
    crate::rt::host::register_sysctl(&mut mib);
    mib::apply(&mib, &mut k, &args.sysctls, false)?;
    if k.echo_threads() {
        bail!(THREADS_NEED_SIM);
    }
    prepare_conns(args, &mut k, &mib)?;
    k.start_apps();
    eprintln!(
        "pollsim: running on {} ({}), kern.hz={}, apps {}; Ctrl-C to stop",
        ifs.iter()
            .map(|f| format!("{} as {}", f.name, f.addr))
            .collect::<Vec<_>>()
            .join(", "),
        args.mode.name(),
        args.hz,
        args.apps_list()
    );
    k.check_status();
    let mut prev = Snapshot::take(&k, &mib, clock.wall());
    let mut lines = 0u32;
    let mut observe = |k: &mut Kernel, now: Nanos| {
        k.check_status();
        let snap = Snapshot::take(k, &mib, now);
        if lines.is_multiple_of(20) {
            println!("{}", report::header_for(&snap));
        }
        lines += 1;
        println!("{}", report::line(&prev, &snap));
        prev = snap;
    };
    // Both schedulers switch the CPU's state at the tick just before this
    // hook, so the last switch is the tick's time on the kernel's clock.
    let mut on_tick = |k: &mut Kernel| {
        let now = k.cpu.last_switch();
        control.serve(&mib, k, now);
    };
    let hooks = Hooks {
        observe: &mut observe,
        on_tick: &mut on_tick,
    };
    let conns = start_conns(args, &ifs[0])?;
    run_real(&mut k, &mut clock, &stop, opts, hooks)
        .context("the scheduler's clock or epoll failed")?;
    if let Some(c) = conns {
        let r = c.close();
        eprintln!(
            "pollsim: --conns: {} of {} idle connections were open; closed",
            r.open, r.wanted
        );
    }
    print!("{}", report::summary(&mut k, &mib));
    drop(k);
    pcap::finish(args, capture)
}
