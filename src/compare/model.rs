//! The results of a `pollsim compare` sweep, in the JSON schema of the
//! CLI contract (`runs`, `summary`; fields may be added, never renamed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Drops by stage, in frames per second over the measurement window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Drops {
    /// Dropped by the NIC: its receive ring (the tap queue) was full.
    pub rx_missed: f64,
    /// Dropped at a full `ipintrq`.
    pub ipintrq: f64,
    /// Dropped at a full app socket buffer.
    pub socket: f64,
    /// Left unread by the app (still queued at the end of the window).
    pub app: f64,
}

/// CPU share per state over the window, in percent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuPct {
    /// User processes (the apps).
    pub user: f64,
    /// Kernel: netisr and polling.
    pub sys: f64,
    /// Interrupt handlers.
    pub intr: f64,
    /// Idle.
    pub idle: f64,
}

impl CpuPct {
    /// The shares over a window from `kern.cp_time` (user nice sys intr
    /// idle) at its start `a` and end `b`.
    pub fn between(a: &[i64; 5], b: &[i64; 5]) -> CpuPct {
        let total: i64 = (0..5).map(|j| b[j] - a[j]).sum();
        let pct = |i: usize| (b[i] - a[i]) as f64 * 100.0 / total.max(1) as f64;
        CpuPct {
            user: pct(0),
            sys: pct(2),
            intr: pct(3),
            idle: pct(4),
        }
    }
}

/// Latency of the HTTP probe made every 100 ms during the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Median latency of the answered probes, ms (None if none answered).
    pub p50: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// Probes that got no answer within the timeout.
    pub timeouts: u32,
    /// Probes made.
    pub sent: u32,
}

impl Probe {
    /// The summary of a window's probes: answered ones' latencies (ms, any
    /// order) and the number that timed out.
    pub fn from_latencies(mut latencies_ms: Vec<f64>, timeouts: u32) -> Probe {
        latencies_ms.sort_by(f64::total_cmp);
        Probe {
            p50: percentile(&latencies_ms, 0.5),
            p99: percentile(&latencies_ms, 0.99),
            timeouts,
            sent: u32::try_from(latencies_ms.len()).unwrap_or(u32::MAX) + timeouts,
        }
    }
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank; `None` if empty.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    #[expect(clippy::cast_sign_loss, reason = "p is clamped to 0..=1")]
    let i = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted.get(i).copied()
}

/// Whether a count is zero (a field left out of the JSON then).
fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Frame counts over the measurement window, from pollsim's own counters.
/// They balance exactly: `received = ipintrq_drops + ipintrq_queued +
/// socket_drops + socket_queued + delivered + other`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frames {
    /// Taken from the NIC's ring.
    pub received: i64,
    /// Dropped by the NIC (ring full).
    pub rx_missed: i64,
    /// Dropped at `ipintrq` (with RPS or RFS, also at the CPUs' backlogs,
    /// the same stage: the software input queue).
    pub ipintrq_drops: i64,
    /// Change of `ipintrq`'s length over the window (and the backlogs').
    pub ipintrq_queued: i64,
    /// Of `ipintrq_drops`, those at the backlogs of CPUs that other CPUs
    /// handed frames to (RPS, RFS; several CPUs only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backlog_drops: i64,
    /// Dropped at the app's socket buffer.
    pub socket_drops: i64,
    /// Change of the datagrams waiting on the app's socket over the window.
    pub socket_queued: i64,
    /// Read by the app.
    pub delivered: i64,
    /// Consumed by the stack otherwise (the probe's TCP, ARP, frames
    /// refused for a cause).
    pub other: i64,
    /// The stack's per-cause counters over the window, as `pollsim
    /// netstat -s --json` shows them (`{"ip": {"badsum": n, ...}, ...}`).
    #[serde(default)]
    pub netstat: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Frames {
    /// The counts of a window from the instance's counters: `d(name)` is a
    /// node's change over the window, `nic(suffix)` a NIC counter's change
    /// (e.g. `.rx_packets`), summed over the NICs that are counted.
    pub fn from_counters(d: impl Fn(&str) -> i64, nic: impl Fn(&str) -> i64) -> Frames {
        let queued = d("net.netisr.udp_delivered");
        let read = d("user.udp_sink.datagrams");
        let sockbuf = d("net.netisr.udp_sockbuf_drops");
        let mut netstat: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for f in crate::kernel::netstat::FIELDS {
            netstat.entry(f.group.to_string()).or_default().insert(
                f.name.to_string(),
                d(&crate::kernel::netstat::sysctl_name(f)),
            );
        }
        Frames {
            received: nic(".rx_packets"),
            rx_missed: nic(".rx_missed"),
            ipintrq_drops: d("net.inet.ip.intr_queue_drops") + d("net.rps.backlog_drops"),
            ipintrq_queued: d("net.inet.ip.intr_queue_len") + d("net.rps.backlog_len"),
            backlog_drops: d("net.rps.backlog_drops"),
            socket_drops: sockbuf,
            socket_queued: queued - read,
            delivered: read,
            other: d("net.netisr.frames") - queued - sockbuf,
            netstat,
        }
    }

    /// The terminal per-cause counts other than the app socket's: what
    /// `other` splits into (zero ones left out), as `group.name`.
    pub fn other_causes(&self) -> Vec<(String, i64)> {
        crate::kernel::netstat::FIELDS
            .iter()
            .filter(|f| {
                f.terminal && !(f.group == "udp" && matches!(f.name, "fullsock" | "delivered"))
            })
            .filter_map(|f| {
                let v = *self.netstat.get(f.group)?.get(f.name)?;
                (v != 0).then(|| (format!("{}.{}", f.group, f.name), v))
            })
            .collect()
    }

    /// Whether the counts balance, and `other` is the sum of its causes
    /// (when the window has them).
    pub fn balanced(&self) -> bool {
        (self.netstat.is_empty()
            || self.other == self.other_causes().iter().map(|(_, v)| v).sum::<i64>())
            && self.received
                == self.ipintrq_drops
                    + self.ipintrq_queued
                    + self.socket_drops
                    + self.socket_queued
                    + self.delivered
                    + self.other
    }
}

/// Clock-interrupt lateness over a window (upper bounds of log-histogram
/// buckets, so within 19 %), µs; `None` when no tick ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TickLate {
    /// Median lateness.
    pub p50: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// Latest.
    pub max: Option<u64>,
}

/// Lost polls, short ticks and `ipintrq` drops counted in a tick that
/// followed a host stall (`kern.sched.stall_*`), over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AfterStall {
    /// `kern.sched.stall_lost_polls`.
    pub lost_polls: u64,
    /// `kern.sched.stall_short_ticks`.
    pub short_ticks: u64,
    /// `kern.sched.stall_ipintrq_drops`.
    pub ipintrq_drops: u64,
}

/// What the host took from pollsim's CPU over a window: the instance's
/// `kern.sched.*` account, through [`crate::report::HostWindow`]. Real
/// clock only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostDiag {
    /// Steal of pollsim's CPU (`/proc/stat`), % of the window.
    pub steal_pct: f64,
    /// Time in host stalls (the CPU's thread not running although not
    /// blocked), % of the window.
    pub stall_pct: f64,
    /// Host stalls.
    pub stalls: u64,
    /// Longest stall, µs (bucket upper bound); `None` without stalls.
    pub stall_max_us: Option<u64>,
    /// Time the kernel's clock stood still for stalls, µs.
    pub stolen_us: u64,
    /// How late the clock interrupt ran.
    pub tick_late_us: TickLate,
    /// Kernel events that followed a stall in the same tick.
    pub after_stall: AfterStall,
}

impl HostDiag {
    /// The diagnostics of a host window.
    pub fn from_window(w: &crate::report::HostWindow) -> HostDiag {
        let [p50, p99, max] = w.tick_late_us;
        let [lost_polls, short_ticks, ipintrq_drops] = w.after_stall;
        HostDiag {
            steal_pct: w.steal_pct,
            stall_pct: w.stall_pct,
            stalls: w.stalls,
            stall_max_us: w.stall_max_us,
            stolen_us: w.stolen_us,
            tick_late_us: TickLate { p50, p99, max },
            after_stall: AfterStall {
                lost_polls,
                short_ticks,
                ipintrq_drops,
            },
        }
    }

    /// The share of the window pollsim's CPU did not have, %: the larger
    /// of steal and stall time (two views of the same loss; a stall the
    /// hypervisor does not report as steal is still time lost).
    pub fn noise_pct(&self) -> f64 {
        self.steal_pct.max(self.stall_pct)
    }
}

/// The interactive user process over a window (`user.interactive.*`):
/// how late its slices started (upper bounds of log-histogram buckets, so
/// within 19 %), ms, and the slices it missed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InteractiveDiag {
    /// Median lateness; `None` if no slice started.
    pub late_p50_ms: Option<f64>,
    /// 99th percentile.
    pub late_p99_ms: Option<f64>,
    /// Latest.
    pub late_max_ms: Option<f64>,
    /// Slices started.
    pub slices: u64,
    /// Slices missed (not started before the next was due).
    pub missed: u64,
}

impl InteractiveDiag {
    /// From the window of the instance's account.
    pub fn from_window(w: &crate::report::InteractiveWindow) -> InteractiveDiag {
        let ms = |v: Option<u64>| v.map(|us| us as f64 / 1e3);
        InteractiveDiag {
            late_p50_ms: ms(w.late_us[0]),
            late_p99_ms: ms(w.late_us[1]),
            late_max_ms: ms(w.late_us[2]),
            slices: w.slices,
            missed: w.missed,
        }
    }

    /// Whether it was starved: a slice missed, or p99 lateness of at least
    /// `ms`.
    pub fn starved(&self, ms: f64) -> bool {
        self.missed > 0 || self.late_p99_ms.is_some_and(|p| p >= ms)
    }
}

/// A user process over a window (`user.<name>.*`): its part of the CPU
/// and how it waited on the run queue (the run summary's and `-w`'s
/// [`crate::report::ProcWindow`]).
pub type ProcDiag = crate::report::ProcWindow;

/// Every process's diagnostics between two accounts, `seconds` apart.
pub fn procs_between(
    a: &[crate::report::ProcSnapshot],
    b: &[crate::report::ProcSnapshot],
    seconds: f64,
) -> Vec<ProcDiag> {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a window's length in ns fits a u64"
    )]
    let window_ns = (seconds.max(0.0) * 1e9) as u64;
    crate::report::ProcWindow::between(a, b, window_ns)
}

/// `kern.polling.burst` sampled over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BurstStats {
    /// Mean of the samples.
    pub mean: f64,
    /// Smallest sample.
    pub min: u64,
    /// Largest sample.
    pub max: u64,
    /// Samples taken.
    pub samples: u32,
}

impl BurstStats {
    /// The statistics of `samples`; `None` if there are none.
    pub fn of(samples: &[u64]) -> Option<BurstStats> {
        let n = samples.len();
        (n > 0).then(|| BurstStats {
            mean: samples.iter().map(|&b| b as f64).sum::<f64>() / n as f64,
            min: samples.iter().copied().min().unwrap_or(0),
            max: samples.iter().copied().max().unwrap_or(0),
            samples: u32::try_from(n).unwrap_or(u32::MAX),
        })
    }
}

/// The polling engine's diagnostics over a window (kern_poll.c's
/// counters, as deltas; `burst` sampled about every 20 ms).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PollingDiag {
    /// `kern.polling.burst` over the window; `None` without samples.
    pub burst: Option<BurstStats>,
    /// `kern.polling.lost_polls`.
    pub lost_polls: i64,
    /// `kern.polling.short_ticks`.
    pub short_ticks: i64,
    /// `kern.polling.suspect`.
    pub suspect: i64,
}

impl PollingDiag {
    /// The diagnostics of a window: `d(name)` is a node's change over it,
    /// `burst` the samples of `kern.polling.burst` taken in it.
    pub fn from_counters(d: impl Fn(&str) -> i64, burst: &[u64]) -> PollingDiag {
        PollingDiag {
            burst: BurstStats::of(burst),
            lost_polls: d("kern.polling.lost_polls"),
            short_ticks: d("kern.polling.short_ticks"),
            suspect: d("kern.polling.suspect"),
        }
    }
}

/// The reactor backend of a sweep axis (`--reactor`): how the apps learn
/// which sockets are ready (`kern.reactor.backend`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Reactor {
    /// Kernel polling: a ready list, O(ready) per call (epoll-like);
    /// `kern.reactor.backend=0`, the default.
    #[default]
    Ready,
    /// User polling: every registration examined per call, O(watched)
    /// (select-like); `kern.reactor.backend=1`.
    Scan,
}

impl Reactor {
    /// The backend it selects.
    pub fn backend(self) -> crate::kernel::reactor::Backend {
        match self {
            Reactor::Ready => crate::kernel::reactor::Backend::Ready,
            Reactor::Scan => crate::kernel::reactor::Backend::Scan,
        }
    }

    /// Its name (`ready`, `scan`), as `kern.reactor.backend_name` says it.
    pub fn name(self) -> &'static str {
        self.backend().name()
    }

    /// The `kern.reactor.backend` assignment that selects it.
    pub fn sysctl(self) -> String {
        format!("kern.reactor.backend={}", self.backend().code())
    }
}

/// Where on the sweep's axes other than the mode and the rate a point
/// lies: `--hz`, `--reactor`, `--conns`, `--cpus`. Serialised flat into
/// its row (`"hz": 1000, "reactor": "ready", "conns": 0, "cpus": 1`); a
/// row of an older results.json without them is at the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Axes {
    /// `kern.hz` the point ran at.
    pub hz: u32,
    /// The reactor backend the apps ran on.
    pub reactor: Reactor,
    /// Idle TCP connections held open to tcp-echo during the point.
    pub conns: usize,
    /// Simulated CPUs (tap0 with one receive queue per CPU).
    pub cpus: usize,
}

impl Default for Axes {
    /// Today's single point: 1000 Hz, `ready`, no idle connections.
    fn default() -> Axes {
        Axes {
            hz: crate::kernel::time::Hz::DEFAULT.get(),
            reactor: Reactor::Ready,
            conns: 0,
            cpus: 1,
        }
    }
}

/// One point of the sweep: one mode at one offered rate, at one point of
/// the other axes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Mode label: `interrupt`, `polling`, or a variant such as
    /// `polling:user_frac=20,burst_max=300`.
    pub mode: String,
    /// `hz`, `reactor` and `conns` of the point (flattened into the row).
    #[serde(flatten)]
    pub axes: Axes,
    /// Knobs that ran (name → value, as read back from the instance).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Offered load the flood actually sent, frames/s.
    pub offered_pps: f64,
    /// The paced rate the flood was asked for (absent for `max` and on
    /// virtual time), frames/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_pps: Option<f64>,
    /// Frames the NIC took (received + missed = offered, within the tap).
    pub received_pps: f64,
    /// UDP datagrams the app read, per second.
    pub delivered_pps: f64,
    /// Drops by stage.
    pub drops: Drops,
    /// CPU shares.
    pub cp_time_pct: CpuPct,
    /// Probe latency.
    pub probe_ms: Probe,
    /// Length of the measurement window, s.
    pub seconds: f64,
    /// Whether the numbers come from the virtual-time simulation.
    pub simulated: bool,
    /// Exact frame counts over the window.
    #[serde(default)]
    pub frames: Frames,
    /// What the host took over the window (`null` on virtual time).
    #[serde(default)]
    pub host: Option<HostDiag>,
    /// The polling engine's diagnostics over the window.
    #[serde(default)]
    pub polling: Option<PollingDiag>,
    /// The interactive user process over the window (`null` without it).
    #[serde(default)]
    pub interactive: Option<InteractiveDiag>,
    /// Every user process over the window, as the run queue shared the
    /// user CPU among them (`user.<name>.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub procs: Vec<ProcDiag>,
    /// A row: fewer clean trials than asked for, the least noisy others
    /// kept. A trial: the host took more than `--max-steal` of the CPU.
    #[serde(default)]
    pub noisy: bool,
    /// Trials measured for the row, discarded ones included (0 in a trial).
    #[serde(default)]
    pub tries: u32,
    /// Trials measured and not kept (too noisy).
    #[serde(default)]
    pub discarded: u32,
    /// `[min, max]` over the kept trials of every rate and CPU column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// The kept trials, whose medians the row shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Run>,
    /// Per receive queue of tap0 (queue `q` on CPU `q % cpus`), with
    /// several CPUs or queues: what RSS gave each queue and what its CPU
    /// did with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueLoad>,
}

/// One receive queue of tap0 over a point's window, and its CPU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueLoad {
    /// The queue.
    pub queue: usize,
    /// The CPU that serves it (`queue % cpus`; results written before
    /// `--queues` had one queue per CPU, and read as `queue` by
    /// [`QueueLoad::serving_cpu`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<usize>,
    /// Frames RSS steered to the queue (received + missed), per second.
    pub offered_pps: f64,
    /// Frames its CPU took from the queue's ring, per second.
    pub received_pps: f64,
    /// Frames dropped at its full ring, per second.
    pub rx_missed_pps: f64,
    /// Datagrams its CPU's udp-sink read, per second: the CPU's, shared
    /// by every queue the CPU serves.
    pub delivered_pps: f64,
    /// Its CPU's shares over the window (likewise the CPU's).
    pub cp_time_pct: CpuPct,
}

impl QueueLoad {
    /// The CPU that served the queue.
    pub fn serving_cpu(&self) -> usize {
        self.cpu.unwrap_or(self.queue)
    }
}

/// `[min, max]` over a point's trials of each rate (frames/s) and CPU
/// share (%) column, named as the CSV columns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Offered rate.
    pub offered_pps: [f64; 2],
    /// Received rate.
    pub received_pps: [f64; 2],
    /// Delivered rate.
    pub delivered_pps: [f64; 2],
    /// Drops at the NIC.
    pub drops_rx_missed: [f64; 2],
    /// Drops at `ipintrq`.
    pub drops_ipintrq: [f64; 2],
    /// Drops at the socket buffer.
    pub drops_socket: [f64; 2],
    /// Left unread by the app.
    pub drops_app: [f64; 2],
    /// User share.
    pub cpu_user: [f64; 2],
    /// Sys share.
    pub cpu_sys: [f64; 2],
    /// Intr share.
    pub cpu_intr: [f64; 2],
    /// Idle share.
    pub cpu_idle: [f64; 2],
}

impl Spread {
    /// From the ranges of [`Run::rate_columns`] and [`Run::cpu_columns`],
    /// in their order.
    pub fn from_columns(rates: [[f64; 2]; 7], cpu: [[f64; 2]; 4]) -> Spread {
        let [
            offered_pps,
            received_pps,
            delivered_pps,
            drops_rx_missed,
            drops_ipintrq,
            drops_socket,
            drops_app,
        ] = rates;
        let [cpu_user, cpu_sys, cpu_intr, cpu_idle] = cpu;
        Spread {
            offered_pps,
            received_pps,
            delivered_pps,
            drops_rx_missed,
            drops_ipintrq,
            drops_socket,
            drops_app,
            cpu_user,
            cpu_sys,
            cpu_intr,
            cpu_idle,
        }
    }
}

/// What one measurement window gives, before it becomes a [`Run`].
#[derive(Clone, Debug)]
pub struct Measured {
    /// Mode label.
    pub mode: String,
    /// The point on the other axes.
    pub axes: Axes,
    /// Knobs that ran.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Offered rate over the window, frames/s.
    pub offered_pps: f64,
    /// Exact frame counts over the window.
    pub frames: Frames,
    /// CPU shares over the window.
    pub cpu: CpuPct,
    /// Probe latency.
    pub probe_ms: Probe,
    /// Length of the window, s.
    pub seconds: f64,
    /// Whether it ran on virtual time.
    pub simulated: bool,
    /// What the host took (real clock only).
    pub host: Option<HostDiag>,
    /// The polling engine's diagnostics.
    pub polling: Option<PollingDiag>,
    /// The interactive user process.
    pub interactive: Option<InteractiveDiag>,
    /// Every user process.
    pub procs: Vec<ProcDiag>,
}

impl Run {
    /// The row of a window: its counts turned into rates over its length.
    pub fn from_window(w: Measured) -> Run {
        let secs = w.seconds.max(1e-9);
        let rate = |v: i64| v as f64 / secs;
        let f = &w.frames;
        Run {
            received_pps: rate(f.received),
            delivered_pps: rate(f.delivered),
            drops: Drops {
                rx_missed: rate(f.rx_missed),
                ipintrq: rate(f.ipintrq_drops),
                socket: rate(f.socket_drops),
                app: rate(f.socket_queued.max(0)),
            },
            mode: w.mode,
            axes: w.axes,
            params: w.params,
            offered_pps: w.offered_pps,
            cp_time_pct: w.cpu,
            probe_ms: w.probe_ms,
            seconds: secs,
            simulated: w.simulated,
            frames: w.frames,
            host: w.host,
            polling: w.polling,
            interactive: w.interactive,
            procs: w.procs,
            ..Run::default()
        }
    }

    /// Set the rates, in the order of [`Run::rate_columns`].
    pub fn set_rate_columns(&mut self, v: [f64; 7]) {
        [
            self.offered_pps,
            self.received_pps,
            self.delivered_pps,
            self.drops.rx_missed,
            self.drops.ipintrq,
            self.drops.socket,
            self.drops.app,
        ] = v;
    }

    /// Set the CPU shares, in the order of [`Run::cpu_columns`].
    pub fn set_cpu_columns(&mut self, v: [f64; 4]) {
        let c = &mut self.cp_time_pct;
        [c.user, c.sys, c.intr, c.idle] = v;
    }

    /// The rates of a row, in column order: offered, received, delivered,
    /// then the drops (rx_missed, ipintrq, socket, app), frames/s.
    pub fn rate_columns(&self) -> [f64; 7] {
        let d = &self.drops;
        [
            self.offered_pps,
            self.received_pps,
            self.delivered_pps,
            d.rx_missed,
            d.ipintrq,
            d.socket,
            d.app,
        ]
    }

    /// The CPU shares of a row, in column order: user, sys, intr, idle.
    pub fn cpu_columns(&self) -> [f64; 4] {
        let c = &self.cp_time_pct;
        [c.user, c.sys, c.intr, c.idle]
    }
}

/// Per mode and point of the other axes (a series): where it stops being
/// loss-free, and how it holds under load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mode label.
    pub mode: String,
    /// `hz`, `reactor` and `conns` of the series (flattened).
    #[serde(flatten)]
    pub axes: Axes,
    /// Highest offered rate with loss under 0.1 % (MLFRR), frames/s.
    pub mlfrr_pps: f64,
    /// Highest delivered rate seen.
    pub peak_delivered_pps: f64,
    /// Delivered rate at the highest offered rate.
    pub delivered_at_max_offered_pps: f64,
    /// Half the final bracket of the MLFRR search: the MLFRR lies in
    /// `[mlfrr_pps, mlfrr_pps + 2 × resolution)`. `None` when no search was
    /// made (no lossy point).
    #[serde(default)]
    pub mlfrr_resolution_pps: Option<f64>,
    /// The MLFRR search, if one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlfrr_search: Option<Search>,
}

/// A bisection search of the MLFRR (see `compare::mlfrr`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// Highest offered rate found loss-free (0 if none), frames/s.
    pub lo_pps: f64,
    /// Lowest offered rate found lossy, frames/s.
    pub hi_pps: f64,
    /// Half the bracket, frames/s.
    pub resolution_pps: f64,
    /// Each step, measured as a point, in search order.
    pub steps: Vec<Run>,
}

impl Run {
    /// The series the row belongs to: its mode and axes.
    pub fn series(&self) -> (&str, Axes) {
        (&self.mode, self.axes)
    }
}

impl Summary {
    /// The series it summarises.
    pub fn series(&self) -> (&str, Axes) {
        (&self.mode, self.axes)
    }
}

/// A whole sweep.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Every point, in sweep order (mode by mode, rates ascending).
    pub runs: Vec<Run>,
    /// One entry per series (mode and point of the other axes).
    pub summary: Vec<Summary>,
    /// How the sweep was made: machine, date, duration, work_ns and why.
    pub meta: serde_json::Map<String, serde_json::Value>,
}
