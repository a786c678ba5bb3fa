//! The real-clock sweep of `pollsim compare`, as root: a private network
//! namespace, two taps (tap0 flooded, tap1 quiet), a `pollsim run` per
//! mode on both, pinned to one CPU, the pnet flood on tap0 pinned to the
//! other (at several CPUs, `run --cpus N --queues N` on a multiqueue tap0,
//! its kernel threads on host CPUs 0..N: see [`super::cpus`]), and an
//! HTTP probe, point by point: on the quiet tap1 by default
//! (is the machine still responsive while one link is flooded?), or on
//! the flooded tap0 (`--probe-link flooded`: then the probe's SYN competes
//! with the flood in the same full tap queue and is lost before any CPU is
//! spent, in either mode). Every instance also runs the interactive user
//! process, whose lateness each point records.
//!
//! Mirrors the method of Mogul & Ramakrishnan's measurements: offered load
//! swept from below to several times the maximum loss-free receive rate,
//! delivered rate and CPU share recorded per point. All traffic stays in
//! the namespace this process made, to 198.18.0.0/15, bounded in time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pollsim_sysctl::Value;
use pollsim_sysctl::client::Client;
use pollsim_sysctl::proto::Request;

use super::cpus::Cpus;
use super::model::{
    Axes, CpuPct, Frames, HostDiag, InteractiveDiag, Measured, PollingDiag, Probe, Run,
};
use crate::flood::frames::FlowDist;
use crate::flood::{self, FloodArgs};
use crate::kernel::time::Nanos;
use crate::{lab, report};

/// pollsim's address in the namespace, on the flooded tap0.
pub const ADDR: &str = crate::sim::ADDR;
/// The kernel side of tap0.
pub const KERNEL_CIDR: &str = "198.18.0.1/24";
/// pollsim's MAC on tap0 (as `pollsim run` derives it from its address).
pub const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];
/// pollsim's address on the quiet tap1.
pub const QUIET_ADDR: &str = crate::sim::QUIET_ADDR;
/// The kernel side of tap1.
pub const QUIET_KERNEL_CIDR: &str = "198.18.1.1/24";
/// pollsim's MAC on tap1.
pub const QUIET_MAC: [u8; 6] = crate::sim::QUIET_MAC;

pub use crate::sim::ProbeLink;

/// The idle loop of every instance compare (and calibrate) starts.
pub const IDLE: &str = "machdep.idle=spin";
/// The idle loop at as many CPUs as the host has (a mode's own settings
/// may still override it): no host CPU is left for the flood, which
/// shares host CPU 1 with CPU 1's kernel thread, and a thread spinning
/// when idle would take half of that CPU from the sender at any load.
pub const IDLE_SHARED: &str = "machdep.idle=hlt";

/// The idle loop of an instance of `cpus` CPUs on a host of `host`:
/// [`IDLE`], or [`IDLE_SHARED`] once its kernel threads take every host
/// CPU.
pub fn idle_for(cpus: usize, host: usize) -> &'static str {
    if cpus > 1 && cpus >= host {
        IDLE_SHARED
    } else {
        IDLE
    }
}
/// Interval of the HTTP probe.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Interval of the `kern.polling.burst` samples.
const BURST_EVERY: Duration = Duration::from_millis(20);
/// The node that counts the idle connections of `--conns` on the real
/// tap: those tcp-echo serves (accepted from the connector).
pub const CONNS_NODE: &str = "user.tcp_echo.active";
/// The node that counts them on virtual time: the synthetic connections
/// registered with the reactor (no tcp-echo step serves them).
pub const SIM_CONNS_NODE: &str = "kern.conns.synthetic";
/// How long an instance may take to open its `--conns` idle connections.
const CONNS_DEADLINE: Duration = Duration::from_secs(60);
/// A probe unanswered after this long is a timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Enter a fresh network namespace (the calling thread, before any other
/// thread exists, so everything started later is inside) and set up tap0
/// and tap1.
pub fn enter_lab() -> anyhow::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
    lab::setup_tap("tap0", KERNEL_CIDR).context("creating tap0 in the private namespace")?;
    lab::static_neigh("tap0", ADDR, MAC).context("neighbour entry")?;
    lab::setup_tap("tap1", QUIET_KERNEL_CIDR).context("creating tap1 in the private namespace")?;
    lab::static_neigh("tap1", QUIET_ADDR, QUIET_MAC).context("neighbour entry")?;
    keep_off_kernel_cpu();
    Ok(())
}

/// Whether tap0 is now a multiqueue tap (it is made single-queue by
/// [`enter_lab`]). Only the sweep's thread changes it, between instances.
static TAP0_MULTI_QUEUE: AtomicBool = AtomicBool::new(false);

/// Make tap0 the kind an instance of `cpus` CPUs opens: single-queue for
/// one (`TapNic` refuses a multiqueue tap), multiqueue for several (one
/// queue per CPU). A tap cannot change its kind, so it is deleted and made
/// again, in the sweep's own namespace, with its neighbour entry; a
/// multiqueue tap0 is left down until its queues are attached
/// ([`lab::add_mq_tap`]): the caller brings it up once the instance runs.
/// Nothing is done when tap0 already is of that kind (a sweep at one CPU
/// never touches it).
fn tap0_for(cpus: usize) -> anyhow::Result<()> {
    let multi = cpus > 1;
    if TAP0_MULTI_QUEUE.load(Ordering::Relaxed) == multi {
        return Ok(());
    }
    lab::sh("ip", &["link", "del", "tap0"]).context("deleting tap0 to change its kind")?;
    if multi {
        lab::add_mq_tap("tap0", KERNEL_CIDR).context("making tap0 multiqueue")?;
    } else {
        lab::setup_tap("tap0", KERNEL_CIDR).context("making tap0 single-queue again")?;
    }
    lab::static_neigh("tap0", ADDR, MAC).context("neighbour entry")?;
    TAP0_MULTI_QUEUE.store(multi, Ordering::Relaxed);
    Ok(())
}

/// Keep the calling thread, and every thread it starts later (the probes,
/// the `burst` sampler, the Ctrl-C handler), off the kernel's CPU when
/// there is another: with `machdep.idle=spin` any other thread there
/// stalls the simulated CPU and is counted as host noise. The flood pins
/// itself, and each instance is pinned to the kernel's CPU once started.
fn keep_off_kernel_cpu() {
    let (n, kernel) = (cpu_count(), cpus().0);
    let mut set = nix::sched::CpuSet::new();
    for cpu in (0..n.min(nix::sched::CpuSet::count())).filter(|&c| c != kernel) {
        let _ = set.set(cpu);
    }
    if n >= 2 {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Pin the calling thread (pid 0) or process `pid` to `cpu`, if it exists.
fn pin(pid: i32, cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if cpu < nix::sched::CpuSet::count() && set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set);
    }
}

/// Run `f` with the calling thread allowed on every CPU this process
/// first had ([`cpu_count`]), then give it back its own mask: a child
/// forked in `f` inherits all of them ([`keep_off_kernel_cpu`] narrowed
/// the sweep's threads to the flood's side).
fn with_all_cpus<T>(f: impl FnOnce() -> T) -> T {
    let me = nix::unistd::Pid::from_raw(0);
    let own = nix::sched::sched_getaffinity(me).ok();
    let mut all = nix::sched::CpuSet::new();
    for cpu in 0..cpu_count().min(nix::sched::CpuSet::count()) {
        let _ = all.set(cpu);
    }
    let _ = nix::sched::sched_setaffinity(me, &all);
    let out = f();
    if let Some(own) = own {
        let _ = nix::sched::sched_setaffinity(me, &own);
    }
    out
}

/// CPUs this process may use, as first seen (before
/// [`keep_off_kernel_cpu`] narrows the mask that `available_parallelism`
/// reads).
pub fn cpu_count() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The CPUs of the kernel and of the flood: different ones if there are two.
fn cpus() -> (usize, usize) {
    if cpu_count() >= 2 { (0, 1) } else { (0, 0) }
}

/// A `pollsim run` for one mode, pinned to the kernel's CPU (at several
/// CPUs, each kernel thread pinned to its own).
pub struct Instance {
    child: Child,
    /// CPU 0's control socket.
    client: Client,
    /// The control sockets of CPUs 1.. (`NAME-cpuC`), none at one CPU.
    others: Vec<Client>,
    name: String,
    /// The point of the other axes it runs at.
    axes: Axes,
}

impl Instance {
    /// Start it with the given `--mode` and `--sysctl` settings, after
    /// `machdep.idle=spin` (which a mode's own settings may override): an
    /// idle loop that blocks gives the host's hypervisor the core, and it
    /// gives it back late (see `kern.sched.*`).
    pub fn start(name: &str, mode: &str, sysctls: &[String]) -> anyhow::Result<Instance> {
        Instance::start_at(name, mode, sysctls, None)
    }

    /// Start it as [`Instance::start`] at a point of the sweep's other
    /// axes, if given: `--hz H`, `--sysctl kern.reactor.backend=B` before
    /// the mode's settings, and with idle connections `--conns N` and
    /// tcp-echo among the apps (with none, the command line is
    /// [`Instance::start`]'s but for `--hz` and the backend), and at
    /// several CPUs `--cpus N --queues N` on a multiqueue tap0
    /// ([`tap0_for`]). The values are read back from the running
    /// instance: a point records what ran.
    pub fn start_at(
        name: &str,
        mode: &str,
        sysctls: &[String],
        axes: Option<Axes>,
    ) -> anyhow::Result<Instance> {
        let exe = std::env::current_exe().context("finding the pollsim binary")?;
        let ncpu = axes.map_or(1, |a| a.cpus);
        tap0_for(ncpu)?;
        let mut cmd = Command::new(exe);
        let apps = match axes {
            Some(a) if a.conns > 0 => "udp-sink,http,interactive,tcp-echo",
            _ => "udp-sink,http,interactive",
        };
        cmd.args([
            "run",
            "--if",
            "tap0=198.18.0.2/24",
            "--if",
            "tap1=198.18.1.2/24",
            "--apps",
            apps,
        ])
        .args(["--name", name, "--mode", mode, "--duration", "3600"])
        .args(["--sysctl", idle_for(ncpu, cpu_count())]);
        if let Some(a) = axes {
            cmd.args(["--hz", &a.hz.to_string()]);
            cmd.args(["--sysctl", &a.reactor.sysctl()]);
            if a.conns > 0 {
                cmd.args(["--conns", &a.conns.to_string()]);
            }
            if a.cpus > 1 {
                let n = a.cpus.to_string();
                cmd.args(["--cpus", &n, "--queues", &n]);
            }
        }
        for s in sysctls {
            cmd.args(["--sysctl", s]);
        }
        // A process group of its own: Ctrl-C in the terminal reaches only
        // compare, which stops its instances itself and still writes what
        // it measured. And stopped with compare however compare ends (even
        // by SIGKILL; an orphaned instance would spin on a CPU for an
        // hour): SIGTERM, so that it still removes its control socket.
        lab::die_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = if ncpu > 1 {
            // Its kernel threads pin themselves, one per host CPU: it
            // starts with them all, not with this thread's mask.
            with_all_cpus(|| cmd.spawn())
        } else {
            let child = cmd.spawn();
            if let Ok(c) = &child {
                pin(i32::try_from(c.id()).unwrap_or(0), cpus().0);
            }
            child
        }
        .context("starting pollsim run")?;
        let mut err = BufReader::new(child.stderr.take().context("stderr")?);
        // Notices (`run --hz` under 1000 warns; `--conns` raises
        // max_conns) may come before the line that says it runs; an
        // instance that fails says why and exits (end of its stderr).
        let mut said = String::new();
        loop {
            let mut line = String::new();
            let n = err
                .read_line(&mut line)
                .context("reading pollsim run's first lines")?;
            if line.contains("running on") {
                break;
            }
            said.push_str(line.trim_start_matches("pollsim: "));
            if n == 0 {
                let _ = child.kill();
                let _ = child.wait();
                bail!("pollsim run did not start: {}", said.trim());
            }
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        if ncpu > 1 {
            // Its queues are attached (it said it runs): bring tap0 up.
            lab::link_up("tap0").context("bringing tap0 up")?;
        }
        let connect = |c: usize| {
            let n = crate::cli::cpu_name(name, c);
            Client::connect(&crate::ctl::socket_path(&n))
                .map_err(|e| anyhow::anyhow!("connecting to pollsim run's CPU {c}: {e}"))
        };
        let mut inst = Instance {
            child,
            client: connect(0)?,
            others: (1..ncpu).map(connect).collect::<anyhow::Result<_>>()?,
            name: name.to_string(),
            axes: axes.unwrap_or_default(),
        };
        if let Some(a) = axes {
            let snap = inst.snapshot()?;
            let (hz, backend) = (snap.int("kern.hz"), snap.int("kern.reactor.backend"));
            let ncpu = snap.int("hw.ncpu");
            if hz != i64::from(a.hz)
                || backend != a.reactor.backend().code()
                || ncpu != i64::try_from(a.cpus).unwrap_or(0)
            {
                bail!(
                    "pollsim run runs at kern.hz={hz}, kern.reactor.backend={backend}, \
                     hw.ncpu={ncpu}, not at the point asked for ({} Hz, {}, {} CPUs)",
                    a.hz,
                    a.reactor.name(),
                    a.cpus
                );
            }
            inst.wait_for_conns(a.conns)?;
        }
        Ok(inst)
    }

    /// Wait until the instance holds `conns` idle connections: until
    /// tcp-echo serves at least that many (`user.tcp_echo.active`), polled
    /// every 50 ms, at most [`CONNS_DEADLINE`].
    fn wait_for_conns(&mut self, conns: usize) -> anyhow::Result<()> {
        let want = i64::try_from(conns).unwrap_or(i64::MAX);
        let deadline = Instant::now() + CONNS_DEADLINE;
        loop {
            let held = self.snapshot()?.int(CONNS_NODE);
            if held >= want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "--conns {conns}: tcp-echo serves {held} connections after {} s \
                     ({CONNS_NODE}), not the {conns} idle ones asked for",
                    CONNS_DEADLINE.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node of the instance (of its CPU 0), integers and lists.
    pub fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        read_mib(&mut self.client)
    }

    /// Every CPU's MIB, CPU 0 first, read one after the other (one
    /// snapshot at one CPU).
    pub fn snapshots(&mut self) -> anyhow::Result<Cpus> {
        let mut all = vec![read_mib(&mut self.client)?];
        for c in &mut self.others {
            all.push(read_mib(c)?);
        }
        Ok(Cpus::new(all))
    }

    /// Set a knob of the running instance.
    pub fn set(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        let reply = self
            .client
            .call(&Request::set(name, value))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match reply.error {
            Some(e) if !reply.ok => bail!("{name}={value}: {}", e.message),
            _ => Ok(()),
        }
    }

    /// Stop it (as Ctrl-C would) and wait for it to exit.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Instance {
    /// An instance never outlives its experiment, on any path out.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGINT);
        let _ = self.child.wait();
    }
}

/// Every node a control socket serves, integers and lists, as of now.
fn read_mib(client: &mut Client) -> anyhow::Result<Snapshot> {
    let reply = client
        .call(&Request::get(""))
        .map_err(|e| anyhow::anyhow!("reading the instance's MIB: {e}"))?;
    let at = Instant::now();
    let dump: Vec<(String, Value)> = reply
        .nodes
        .into_iter()
        .map(|n| {
            let v = value_of(&n.value);
            (n.name, v)
        })
        .collect();
    Ok(Snapshot::from_dump(at, dump))
}

/// A node's value as the control socket sends it (JSON) back into a
/// [`Value`]: a number, a list of numbers, or a string.
fn value_of(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Number(n) => Value::Int(n.as_i64().unwrap_or(0)),
        serde_json::Value::Array(a) => Value::List(a.iter().filter_map(|x| x.as_u64()).collect()),
        other => Value::Str(other.as_str().unwrap_or_default().to_string()),
    }
}

/// The nodes of an instance at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    at: Instant,
    ints: BTreeMap<String, i64>,
    lists: BTreeMap<String, Vec<i64>>,
    strs: BTreeMap<String, String>,
    /// The totals `pollsim stat` reads, the host's account among them.
    report: report::Snapshot,
}

impl Snapshot {
    /// The snapshot of a MIB dump taken at `at`.
    pub fn from_dump(at: Instant, dump: Vec<(String, Value)>) -> Snapshot {
        let report = report::Snapshot::from_dump(Nanos::ZERO, &dump);
        let (mut ints, mut lists, mut strs) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (name, v) in dump {
            match v {
                Value::Int(i) => {
                    ints.insert(name, i);
                }
                Value::List(l) => {
                    lists.insert(name, l.into_iter().map(crate::sat).collect());
                }
                Value::Str(t) => {
                    strs.insert(name, t);
                }
            }
        }
        Snapshot {
            at,
            ints,
            lists,
            strs,
            report,
        }
    }

    /// Seconds from `earlier` to this snapshot.
    pub fn seconds_since(&self, earlier: &Snapshot) -> f64 {
        self.at.duration_since(earlier.at).as_secs_f64()
    }

    /// An integer node (0 if absent).
    pub fn int(&self, name: &str) -> i64 {
        self.ints.get(name).copied().unwrap_or(0)
    }

    /// The integer nodes, by name.
    pub fn ints(&self) -> impl Iterator<Item = (&str, i64)> {
        self.ints.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// `kern.cp_time` (user nice sys intr idle; zeros if absent).
    pub fn cp_time(&self) -> [i64; 5] {
        let mut t = [0; 5];
        if let Some(l) = self.lists.get("kern.cp_time") {
            for (i, v) in l.iter().take(5).enumerate() {
                t[i] = *v;
            }
        }
        t
    }

    /// When it was taken.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// A node as it ran, for `params`: an integer, a string, or `None` if
    /// absent.
    pub fn param(&self, name: &str) -> Option<serde_json::Value> {
        self.ints
            .get(name)
            .map(|&i| i.into())
            .or_else(|| self.strs.get(name).map(|t| t.as_str().into()))
    }

    /// The host's account (`kern.sched.*`), if the instance keeps one.
    pub fn host(&self) -> Option<&report::HostSnapshot> {
        self.report.host.as_ref()
    }

    /// The interactive process's account, if it runs.
    pub fn interactive(&self) -> Option<&report::InteractiveSnapshot> {
        self.report.interactive.as_ref()
    }
}

/// The flows of the sweep's flood (`compare --flows K --flow-dist D`,
/// passed to `pollsim flood` as given): one flow, round robin, by default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodFlows {
    /// Distinct flows, 1..=`MAX_FLOWS`.
    pub flows: usize,
    /// How they share the frames.
    pub dist: FlowDist,
}

impl Default for FloodFlows {
    fn default() -> FloodFlows {
        FloodFlows {
            flows: 1,
            dist: FlowDist::RoundRobin,
        }
    }
}

impl FloodFlows {
    /// `--flows K --flow-dist D` for `pollsim flood`; nothing for the
    /// default, whose flood is the one flow it always was.
    pub fn flood_args(&self) -> Vec<String> {
        if *self == FloodFlows::default() {
            return Vec::new();
        }
        vec![
            "--flows".into(),
            self.flows.to_string(),
            "--flow-dist".into(),
            flow_dist_name(self.dist),
        ]
    }
}

/// `rr` or `zipf:S`, as `--flow-dist` takes it.
pub fn flow_dist_name(d: FlowDist) -> String {
    match d {
        FlowDist::RoundRobin => "rr".to_string(),
        FlowDist::Zipf(s) => format!("zipf:{s}"),
    }
}

/// Run a bounded flood of `flows` at `rate` ("max" or pps) for `secs` on
/// the flood's CPU, keeping `sent` current. Returns (frames sent, seconds).
pub fn flood_for(
    rate: &str,
    secs: f64,
    flows: FloodFlows,
    (stop, sent): (&AtomicBool, &AtomicU64),
) -> anyhow::Result<(u64, f64)> {
    let dur = format!("{}ms", (secs * 1000.0).round());
    let mut argv: Vec<String> = [
        "--if",
        "tap0",
        "--rate",
        rate,
        "--duration",
        &dur,
        "--dst",
        "198.18.0.2:9",
        "--dst-mac",
        "02:00:c6:12:00:02",
        // A flood whose CPU the host took away skips what it owes instead
        // of sending it back to back: such bursts, not the kernel, made
        // most of interrupt mode's ipintrq drops at light load.
        "--max-lag",
        "0.2ms",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    argv.extend(flows.flood_args());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = FloodArgs::from_args(&argv).map_err(|e| anyhow::anyhow!("flood arguments: {e}"))?;
    pin(0, cpus().1);
    let r = flood::run_counted(&args, stop, &mut std::io::sink(), sent)?;
    Ok((r.sent, r.elapsed.as_secs_f64()))
}

/// HTTP probes started every 100 ms until `stop`, each in its own thread so
/// that a slow or lost one does not delay the next; returns when every probe
/// has answered or timed out: latencies (ms) and timeouts. Bound: one probe
/// per [`PROBE_EVERY`], each at most [`PROBE_TIMEOUT`].
fn probe_until(link: ProbeLink, stop: &AtomicBool) -> (Vec<f64>, u32) {
    let dst = SocketAddrV4::new(lab::bench_addr(link.addr()), 80);
    let start = Instant::now();
    std::thread::scope(|s| {
        let mut probes = Vec::new();
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            probes.push(s.spawn(move || {
                let t = Instant::now();
                http_get(dst).map(|()| t.elapsed().as_secs_f64() * 1000.0)
            }));
            n += 1;
            let next = start + PROBE_EVERY * n;
            while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (mut lat, mut timeouts) = (Vec::new(), 0);
        for p in probes {
            match p.join().ok().flatten() {
                Some(ms) => lat.push(ms),
                None => timeouts += 1,
            }
        }
        (lat, timeouts)
    })
}

/// One GET; `None` on timeout or a bad answer.
fn http_get(dst: SocketAddrV4) -> Option<()> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut s = TcpStream::connect_timeout(&dst.into(), PROBE_TIMEOUT).ok()?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).ok()?;
    let req = format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", dst.ip());
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    buf.starts_with(b"HTTP/1.1 200").then_some(())
}

/// `kern.polling.burst` of instance `name`, read about every
/// [`BURST_EVERY`] from a control-socket client of its own until `stop`
/// (the instance's main client stays free for the window's snapshots).
/// Bound: one request per interval.
fn sample_burst(name: &str, stop: &AtomicBool) -> Vec<u64> {
    let mut out = Vec::new();
    let Ok(mut c) = Client::connect(&crate::ctl::socket_path(name)) else {
        return out;
    };
    let req = Request::get("kern.polling.burst");
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match c.call(&req) {
            Ok(reply) => out.extend(
                reply
                    .nodes
                    .iter()
                    .filter(|n| n.name == "kern.polling.burst")
                    .filter_map(|n| n.value.as_u64()),
            ),
            Err(_) => break,
        }
        std::thread::sleep(BURST_EVERY.saturating_sub(t.elapsed()));
    }
    out
}

/// Measure one point: flood `flows` at `rate` for `warmup + secs`,
/// recording over the last `secs` seconds. The offered rate is what the
/// flood sent between the two snapshots, so it covers the same window as
/// the counters (CPU 0's, whose MIB is read first).
pub fn measure(
    inst: &mut Instance,
    mode: &str,
    rate: &str,
    (warmup, secs): (f64, f64),
    (link, flows): (ProbeLink, FloodFlows),
) -> anyhow::Result<Run> {
    let stop_flood = AtomicBool::new(false);
    let stop_probe = AtomicBool::new(false);
    let stop_sampler = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let name = inst.name.clone();
    let axes = inst.axes;
    std::thread::scope(|s| -> anyhow::Result<Run> {
        // The flood outlasts the window by the probe timeout, so that every
        // probe started in the window runs under load until it ends.
        let total = warmup + secs + PROBE_TIMEOUT.as_secs_f64() + 0.1;
        let (stop_f, sent_f) = (&stop_flood, &sent);
        let flood = s.spawn(move || flood_for(rate, total, flows, (stop_f, sent_f)));
        std::thread::sleep(Duration::from_secs_f64(warmup));
        let sent_a = sent.load(Ordering::Relaxed);
        let a = inst.snapshots();
        let probe = s.spawn(|| probe_until(link, &stop_probe));
        let sampler = s.spawn(|| sample_burst(&name, &stop_sampler));
        std::thread::sleep(Duration::from_secs_f64(secs));
        let sent_b = sent.load(Ordering::Relaxed);
        let b = inst.snapshots();
        stop_sampler.store(true, Ordering::Relaxed);
        stop_probe.store(true, Ordering::Relaxed);
        let burst = sampler
            .join()
            .map_err(|_| anyhow::anyhow!("burst sampler panicked"))?;
        let (lat, timeouts) = probe
            .join()
            .map_err(|_| anyhow::anyhow!("probe panicked"))?;
        stop_flood.store(true, Ordering::Relaxed);
        let flood = flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))?;
        let (a, b) = (a?, b?);
        flood?;
        let probe_ms = Probe::from_latencies(lat, timeouts);
        let window = b.first().seconds_since(a.first()).max(1e-9);
        let offered = (sent_b - sent_a) as f64 / window;
        let mut run = point((mode, axes), &a, &b, offered, probe_ms, &burst);
        run.requested_pps = rate.parse().ok();
        Ok(run)
    })
}

/// A point from two snapshots of every CPU and the `burst` samples (CPU
/// 0's) taken between them: the counters and `kern.cp_time` summed over
/// the CPUs, the knobs, processes and the interactive one as CPU 0 has
/// them, and at several CPUs a [`super::model::QueueLoad`] per queue.
fn point(
    (mode, axes): (&str, Axes),
    a: &Cpus,
    b: &Cpus,
    offered_pps: f64,
    probe_ms: Probe,
    burst: &[u64],
) -> Run {
    let seconds = b.first().seconds_since(a.first());
    let d = |n: &str| b.int(n) - a.int(n);
    let nics = |suffix: &str| b.nic_delta(a, suffix);
    let (a0, b0) = (a.first(), b.first());
    let mut params = serde_json::Map::new();
    for k in RECORDED_PARAMS {
        params.insert(k.to_string(), b0.param(k).unwrap_or(0.into()));
    }
    for k in super::modes::knob_names(mode) {
        if let Some(v) = b0.param(&k) {
            params.insert(k, v);
        }
    }
    let mut run = Run::from_window(Measured {
        mode: mode.to_string(),
        axes,
        params,
        offered_pps,
        frames: Frames::from_counters(d, nics),
        cpu: CpuPct::between(&a.cp_time(), &b.cp_time()),
        probe_ms,
        seconds,
        simulated: false,
        host: b.host_window(a, seconds),
        polling: Some(PollingDiag::from_counters(d, burst)),
        interactive: interactive_window(a0, b0),
        procs: super::model::procs_between(&a0.report.procs, &b0.report.procs, seconds),
    });
    run.queues = b.queue_loads(a, seconds);
    run
}

/// What the interactive process saw between two snapshots (`None` if the
/// instance does not run it).
pub fn interactive_window(a: &Snapshot, b: &Snapshot) -> Option<InteractiveDiag> {
    Some(InteractiveDiag::from_window(
        &report::InteractiveWindow::between(a.interactive()?, b.interactive()?),
    ))
}

/// What the host took between two snapshots (`None` if the instance keeps
/// no host account).
pub fn host_window(a: &Snapshot, b: &Snapshot, seconds: f64) -> Option<HostDiag> {
    let (ha, hb) = (a.host()?, b.host()?);
    Some(HostDiag::from_window(&report::HostWindow::between(
        ha, hb, seconds,
    )))
}

/// The knobs recorded in every run's `params`, as read back from the
/// instance (the value that ran).
pub const RECORDED_PARAMS: [&str; 38] = [
    "kern.hz",
    "kern.reactor.backend",
    "machdep.idle",
    "kern.sched.stall_compensate",
    "kern.sched.quantum",
    "dev.tap0.discipline",
    "dev.tap1.discipline",
    "kern.polling.user_frac",
    "kern.polling.burst_max",
    "kern.polling.each_burst",
    "kern.polling.reg_frac",
    "kern.polling.idle_poll",
    "dev.tap0.polling",
    "dev.tap1.polling",
    "dev.tap0.rx_ring",
    "dev.tap0.rx_usecs",
    "dev.tap0.rx_frames",
    "dev.tap0.adaptive_rx",
    "dev.tap0.napi_defer_hard_irqs",
    "dev.tap0.gro_flush_timeout",
    "dev.tap0.threaded",
    "net.core.netdev_budget",
    "net.core.netdev_budget_usecs",
    "net.core.dev_weight",
    "kern.softirq.defer_to_ksoftirqd",
    "net.mr.quota",
    "net.mr.feedback",
    "net.mr.feedback_hiwat",
    "net.mr.feedback_lowat",
    "net.mr.cycle_limit",
    "net.inet.ip.intr_queue_maxlen",
    "user.udp_sink.work_ns",
    "user.udp_sink.rcvbuf",
    "user.udp_sink.trigger",
    "user.udp_sink.read_packets",
    "user.http.trigger",
    "user.interactive.period_us",
    "user.interactive.slice_us",
];
