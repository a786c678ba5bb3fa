//! What `pollsim run` prints: the `-w` line (netstat -w style, rates over
//! the interval) and the final summary (every MIB node, then the frame
//! accounting: where every offered frame ended).

use std::fmt::Write as _;

use pollsim_sysctl::{Mib, Value, format_line};

use crate::kernel::Kernel;
use crate::kernel::cpu::CpTime;
use crate::kernel::host::Hist;
use crate::kernel::netstat::{self, InetStats};
use crate::kernel::time::Nanos;

/// The host's account at one instant (the `kern.sched.*` host nodes; only
/// on the real clock).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostSnapshot {
    /// `kern.sched.steal_us`.
    pub steal_us: u64,
    /// `kern.sched.steal_cpus`.
    pub steal_cpus: u64,
    /// `kern.sched.stalls`.
    pub stalls: u64,
    /// `kern.sched.stall_us`.
    pub stall_us: u64,
    /// `kern.sched.hiccups`.
    pub hiccups: u64,
    /// `kern.sched.hiccup_us`.
    pub hiccup_us: u64,
    /// `kern.sched.stolen_us`.
    pub stolen_us: u64,
    /// `kern.sched.stall_hist`.
    pub stall_hist: Hist,
    /// `kern.sched.tick_late_hist`.
    pub tick_late_hist: Hist,
    /// `kern.sched.stall_lost_polls`.
    pub stall_lost_polls: u64,
    /// `kern.sched.stall_short_ticks`.
    pub stall_short_ticks: u64,
    /// `kern.sched.stall_ipintrq_drops`.
    pub stall_ipintrq_drops: u64,
}

/// The `kern.sched.*` nodes of the host's account (present on the real
/// clock only; `kern.sched.ticks` and the like exist on both).
const HOST_NODES: [&str; 12] = [
    "steal_us",
    "steal_cpus",
    "stalls",
    "stall_us",
    "hiccups",
    "hiccup_us",
    "stolen_us",
    "stall_hist",
    "tick_late_hist",
    "stall_lost_polls",
    "stall_short_ticks",
    "stall_ipintrq_drops",
];

/// What the host did over a window: the difference of two
/// [`HostSnapshot`]s, over `seconds` of wall time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostWindow {
    /// Steal, in percent of the window (per CPU of the mask).
    pub steal_pct: f64,
    /// Stalls (hiccups included).
    pub stalls: u64,
    /// Hiccups: units of work that ran past their bound while running.
    pub hiccups: u64,
    /// Time in stalls, in percent of the window.
    pub stall_pct: f64,
    /// Longest stall (upper bound of its histogram bucket), µs.
    pub stall_max_us: Option<u64>,
    /// Time the kernel's clock stood still, µs.
    pub stolen_us: u64,
    /// Clock-interrupt lateness p50, p99, max (bucket upper bounds), µs.
    pub tick_late_us: [Option<u64>; 3],
    /// Lost polls, short ticks and ipintrq drops that followed a stall in
    /// the same tick.
    pub after_stall: [u64; 3],
}

impl HostWindow {
    /// The window from `a` to `b`, `seconds` long.
    pub fn between(a: &HostSnapshot, b: &HostSnapshot, seconds: f64) -> HostWindow {
        let secs = seconds.max(1e-9);
        let late = b.tick_late_hist.delta(&a.tick_late_hist);
        let q = |h: &Hist, p: f64| h.quantile(p).map(|ns| ns / 1_000);
        HostWindow {
            steal_pct: b.steal_us.saturating_sub(a.steal_us) as f64
                / (secs * 1e4 * b.steal_cpus.max(1) as f64),
            stalls: b.stalls.saturating_sub(a.stalls),
            hiccups: b.hiccups.saturating_sub(a.hiccups),
            stall_pct: b.stall_us.saturating_sub(a.stall_us) as f64 / (secs * 1e4),
            stall_max_us: q(&b.stall_hist.delta(&a.stall_hist), 1.0),
            stolen_us: b.stolen_us.saturating_sub(a.stolen_us),
            tick_late_us: [q(&late, 0.5), q(&late, 0.99), q(&late, 1.0)],
            after_stall: [
                b.stall_lost_polls.saturating_sub(a.stall_lost_polls),
                b.stall_short_ticks.saturating_sub(a.stall_short_ticks),
                b.stall_ipintrq_drops.saturating_sub(a.stall_ipintrq_drops),
            ],
        }
    }
}

/// Totals at one instant; two of them make a `-w` line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// When.
    pub at: Nanos,
    /// Frames taken from the NICs' rings.
    pub input: u64,
    /// Frames the NICs dropped (ring full).
    pub rx_missed: u64,
    /// `ipintrq` drops.
    pub ipintrq_drops: u64,
    /// UDP datagrams queued on app sockets.
    pub delivered: u64,
    /// Datagrams read by udp-sink.
    pub app_datagrams: u64,
    /// CPU time per state.
    pub cp_time: CpTime,
    /// `kern.polling.burst`.
    pub burst: u32,
    /// `kern.polling.lost_polls`.
    pub lost_polls: u64,
    /// The host's account (real clock only).
    pub host: Option<HostSnapshot>,
    /// The interactive process's account, if it runs.
    pub interactive: Option<InteractiveSnapshot>,
    /// Every user process's account on the run queue, in pid order.
    pub procs: Vec<ProcSnapshot>,
}

/// A user process's account at one instant (`user.<name>.cpu_ns`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcSnapshot {
    /// Its name under `user.`.
    pub name: String,
    /// `cpu_ns`.
    pub cpu_ns: u64,
    /// `runs`.
    pub runs: u64,
    /// `waits`.
    pub waits: u64,
    /// `wait_ns`.
    pub wait_ns: u64,
    /// `wait_hist`.
    pub wait_hist: Hist,
    /// `expiries`.
    pub expiries: u64,
    /// `preempted`.
    pub preempted: u64,
    /// `reactor_ns`.
    pub reactor_ns: u64,
}

/// What a user process got over a window (also a row's `procs` entry in
/// compare's results.json, without `cpu_ns`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcWindow {
    /// Its name under `user.`.
    pub name: String,
    /// CPU time it used, ns.
    #[serde(skip)]
    pub cpu_ns: u64,
    /// Percent of the window.
    pub cpu_pct: f64,
    /// Percent of every user process's CPU time in the window.
    pub share_pct: f64,
    /// Waits on the run queue.
    pub waits: u64,
    /// Mean wait, µs (`None` without a wait).
    pub wait_mean_us: Option<f64>,
    /// p99 wait (bucket upper bound, within 19 %), µs.
    pub wait_p99_us: Option<u64>,
    /// Quanta that ran out.
    pub expiries: u64,
    /// Times a waking process switched it out.
    pub preempted: u64,
    /// CPU time spent in the reactor on its behalf, ns (part of its CPU).
    #[serde(default)]
    pub reactor_ns: u64,
}

impl ProcWindow {
    /// Every process's window from `a` to `b`, `window_ns` long, matched by
    /// name.
    pub fn between(a: &[ProcSnapshot], b: &[ProcSnapshot], window_ns: u64) -> Vec<ProcWindow> {
        let deltas: Vec<(&ProcSnapshot, ProcSnapshot)> = b
            .iter()
            .map(|pb| {
                let pa = a
                    .iter()
                    .find(|p| p.name == pb.name)
                    .cloned()
                    .unwrap_or_default();
                (pb, pa)
            })
            .collect();
        let total: u64 = deltas
            .iter()
            .map(|(b, a)| b.cpu_ns.saturating_sub(a.cpu_ns))
            .sum();
        deltas
            .into_iter()
            .map(|(b, a)| {
                let cpu_ns = b.cpu_ns.saturating_sub(a.cpu_ns);
                let waits = b.waits.saturating_sub(a.waits);
                let wait_ns = b.wait_ns.saturating_sub(a.wait_ns);
                let pct = |x: u64, of: u64| {
                    if of == 0 {
                        0.0
                    } else {
                        x as f64 * 100.0 / of as f64
                    }
                };
                ProcWindow {
                    name: b.name.clone(),
                    cpu_ns,
                    cpu_pct: pct(cpu_ns, window_ns),
                    share_pct: pct(cpu_ns, total),
                    waits,
                    wait_mean_us: (waits > 0).then(|| wait_ns as f64 / waits as f64 / 1e3),
                    wait_p99_us: b
                        .wait_hist
                        .delta(&a.wait_hist)
                        .quantile(0.99)
                        .map(|ns| ns / 1_000),
                    expiries: b.expiries.saturating_sub(a.expiries),
                    preempted: b.preempted.saturating_sub(a.preempted),
                    reactor_ns: b.reactor_ns.saturating_sub(a.reactor_ns),
                }
            })
            .collect()
    }
}

/// The interactive process's account at one instant (`user.interactive.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InteractiveSnapshot {
    /// `user.interactive.late_hist`.
    pub late_hist: Hist,
    /// `user.interactive.missed`.
    pub missed: u64,
    /// `user.interactive.slices`.
    pub slices: u64,
}

/// What the interactive process saw over a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InteractiveWindow {
    /// Slices started.
    pub slices: u64,
    /// Slices missed.
    pub missed: u64,
    /// Lateness p50, p99, max (bucket upper bounds), µs.
    pub late_us: [Option<u64>; 3],
}

impl InteractiveWindow {
    /// The window from `a` to `b`.
    pub fn between(a: &InteractiveSnapshot, b: &InteractiveSnapshot) -> InteractiveWindow {
        let late = b.late_hist.delta(&a.late_hist);
        let q = |p: f64| late.quantile(p).map(|ns| ns / 1_000);
        InteractiveWindow {
            slices: b.slices.saturating_sub(a.slices),
            missed: b.missed.saturating_sub(a.missed),
            late_us: [q(0.5), q(0.99), q(1.0)],
        }
    }
}

impl Snapshot {
    /// Read the totals of `k` at `now` through its MIB, as `pollsim stat`
    /// reads them through the control socket.
    pub fn take(k: &Kernel, mib: &Mib<Kernel>, now: Nanos) -> Snapshot {
        Snapshot::from_dump(now, &mib.dump(k, "").unwrap_or_default())
    }

    /// The totals in a MIB dump (`name`, value), summed over interfaces.
    pub fn from_dump(at: Nanos, nodes: &[(String, Value)]) -> Snapshot {
        let int = |v: &Value| match v {
            Value::Int(i) => u64::try_from(*i).unwrap_or(0),
            _ => 0,
        };
        let mut s = Snapshot {
            at,
            ..Snapshot::default()
        };
        let list = |v: &Value| match v {
            Value::List(l) => Hist::from_counts(l),
            _ => Hist::default(),
        };
        for (name, v) in nodes {
            if let Some(leaf) = name.strip_prefix("kern.sched.")
                && HOST_NODES.contains(&leaf)
            {
                let h = s.host.get_or_insert_with(HostSnapshot::default);
                match leaf {
                    "steal_us" => h.steal_us = int(v),
                    "steal_cpus" => h.steal_cpus = int(v),
                    "stalls" => h.stalls = int(v),
                    "stall_us" => h.stall_us = int(v),
                    "hiccups" => h.hiccups = int(v),
                    "hiccup_us" => h.hiccup_us = int(v),
                    "stolen_us" => h.stolen_us = int(v),
                    "stall_hist" => h.stall_hist = list(v),
                    "tick_late_hist" => h.tick_late_hist = list(v),
                    "stall_lost_polls" => h.stall_lost_polls = int(v),
                    "stall_short_ticks" => h.stall_short_ticks = int(v),
                    "stall_ipintrq_drops" => h.stall_ipintrq_drops = int(v),
                    _ => {}
                }
                continue;
            }
            if let Some((proc_name, leaf)) =
                name.strip_prefix("user.").and_then(|n| n.split_once('.'))
                && PROC_LEAVES.contains(&leaf)
            {
                let p = match s.procs.iter().position(|p| p.name == proc_name) {
                    Some(i) => &mut s.procs[i],
                    None => {
                        s.procs.push(ProcSnapshot {
                            name: proc_name.to_string(),
                            ..ProcSnapshot::default()
                        });
                        s.procs.last_mut().expect("just pushed")
                    }
                };
                match leaf {
                    "cpu_ns" => p.cpu_ns = int(v),
                    "runs" => p.runs = int(v),
                    "waits" => p.waits = int(v),
                    "wait_ns" => p.wait_ns = int(v),
                    "wait_hist" => p.wait_hist = list(v),
                    "expiries" => p.expiries = int(v),
                    "reactor_ns" => p.reactor_ns = int(v),
                    _ => p.preempted = int(v),
                }
                continue;
            }
            if let Some(leaf) = name.strip_prefix("user.interactive.") {
                let i = s
                    .interactive
                    .get_or_insert_with(InteractiveSnapshot::default);
                match leaf {
                    "late_hist" => i.late_hist = list(v),
                    "missed" => i.missed = int(v),
                    "slices" => i.slices = int(v),
                    _ => {}
                }
                continue;
            }
            match name.as_str() {
                "net.inet.ip.intr_queue_drops" => s.ipintrq_drops = int(v),
                "net.netisr.udp_delivered" => s.delivered = int(v),
                "user.udp_sink.datagrams" => s.app_datagrams = int(v),
                "kern.polling.burst" => s.burst = u32::try_from(int(v)).unwrap_or(u32::MAX),
                "kern.polling.lost_polls" => s.lost_polls = int(v),
                "kern.cp_time" => {
                    if let Value::List(l) = v {
                        for (i, t) in l.iter().take(5).enumerate() {
                            s.cp_time.0[i] = *t;
                        }
                    }
                }
                n if nic_node(n, ".rx_packets") => s.input += int(v),
                n if nic_node(n, ".rx_missed") => s.rx_missed += int(v),
                _ => {}
            }
        }
        s
    }
}

/// The leaves of a process's account that a snapshot reads.
const PROC_LEAVES: [&str; 8] = [
    "cpu_ns",
    "reactor_ns",
    "runs",
    "waits",
    "wait_ns",
    "wait_hist",
    "expiries",
    "preempted",
];

/// The `-w` column of a user process: its CPU, % of the interval.
fn proc_column(name: &str) -> String {
    let short = match name {
        "udp_sink" => "sink",
        "tcp_echo" => "echo",
        "interactive" => "ia",
        other => other,
    };
    format!("{short}%")
}

/// The host columns of the `-w` line: steal and stall time in % of the
/// interval, and the p99 lateness of the clock interrupt in µs.
const HOST_HEADER: &str = "steal stall late99";

/// The interactive process's columns of the `-w` line: p99 of how late
/// its slices started (µs) and the slices it missed, in the interval.
const INTERACTIVE_HEADER: &str = "ilate99 imiss";

/// The header of the `-w` lines, with the interactive process's columns
/// if it runs and the host's columns on the real clock.
pub fn header_for(snap: &Snapshot) -> String {
    let mut h = header();
    if snap.interactive.is_some() {
        h = format!("{h} {INTERACTIVE_HEADER}");
    }
    if snap.host.is_some() {
        h = format!("{h} {HOST_HEADER}");
    }
    if snap.procs.len() > 1 {
        for p in &snap.procs {
            h = format!("{h} {:>5}", proc_column(&p.name));
        }
    }
    h
}

/// The header of the `-w` lines, without the host's columns.
pub fn header() -> String {
    format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5}",
        "input/s",
        "missed/s",
        "ipdrop/s",
        "deliver/s",
        "app/s",
        "user",
        "sys",
        "intr",
        "idle",
        "burst",
        "lost"
    )
}

/// One `-w` line: rates over the interval from `a` to `b`, CPU shares in %.
pub fn line(a: &Snapshot, b: &Snapshot) -> String {
    let secs = b.at.since(a.at).as_secs_f64().max(1e-9);
    let rate = |x: u64, y: u64| (y.saturating_sub(x) as f64 / secs).round();
    let p = b.cp_time.delta(&a.cp_time).percent();
    format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>5.1} {:>5.1} {:>5.1} {:>5.1} {:>5} {:>5}",
        rate(a.input, b.input),
        rate(a.rx_missed, b.rx_missed),
        rate(a.ipintrq_drops, b.ipintrq_drops),
        rate(a.delivered, b.delivered),
        rate(a.app_datagrams, b.app_datagrams),
        p[0],
        p[2],
        p[3],
        p[4],
        b.burst,
        b.lost_polls.saturating_sub(a.lost_polls)
    ) + &interactive_columns(a, b)
        + &host_columns(a, b, secs)
        + &proc_columns(a, b)
}

/// With several user processes, each one's CPU in the interval, %.
fn proc_columns(a: &Snapshot, b: &Snapshot) -> String {
    if b.procs.len() < 2 {
        return String::new();
    }
    let window = b.at.since(a.at).0;
    ProcWindow::between(&a.procs, &b.procs, window)
        .iter()
        .map(|w| format!(" {:>5.1}", w.cpu_pct))
        .collect()
}

fn interactive_columns(a: &Snapshot, b: &Snapshot) -> String {
    let (Some(ia), Some(ib)) = (&a.interactive, &b.interactive) else {
        return String::new();
    };
    let w = InteractiveWindow::between(ia, ib);
    let late = w.late_us[1].map_or("-".to_string(), |v| v.to_string());
    format!(" {late:>7} {:>5}", w.missed)
}

fn host_columns(a: &Snapshot, b: &Snapshot, secs: f64) -> String {
    let (Some(ha), Some(hb)) = (&a.host, &b.host) else {
        return String::new();
    };
    let w = HostWindow::between(ha, hb, secs);
    let late = w.tick_late_us[1].map_or("-".to_string(), |v| v.to_string());
    format!(" {:>5.1} {:>5.1} {late:>6}", w.steal_pct, w.stall_pct)
}

/// Whether `name` is a NIC's own `dev.<if><suffix>` node, not one of its
/// queues' (`dev.tap0.queue_rx_<q><suffix>`, counted in the NIC's).
pub fn nic_node(name: &str, suffix: &str) -> bool {
    name.strip_prefix("dev.")
        .and_then(|r| r.strip_suffix(suffix))
        .is_some_and(|ifname| !ifname.contains('.'))
}

/// Where every frame offered to the NICs ended, by stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Frames offered: received by the NICs plus missed by them.
    pub offered: u64,
    /// Dropped by the NICs (ring full).
    pub rx_missed: u64,
    /// Received by the NICs.
    pub received: u64,
    /// Dropped at `ipintrq`.
    pub ipintrq_drops: u64,
    /// Still in `ipintrq` at the end.
    pub ipintrq_queued: u64,
    /// Handed to the stack.
    pub stack: u64,
    /// UDP datagrams for apps dropped at a full socket buffer.
    pub socket_drops: u64,
    /// UDP datagrams queued on app sockets.
    pub socket_queued: u64,
    /// UDP datagrams read by udp-sink.
    pub app_read: u64,
    /// Frames the stack consumed otherwise: the sum of its per-cause
    /// counters other than `udp.fullsock` and `udp.delivered` (counted
    /// apart from `stack`, so the balance checks the classifier).
    pub stack_other: u64,
    /// The per-cause counters (`netstat -s`) the stack's frames ended in.
    pub causes: InetStats,
    /// Frames and datagrams this CPU handed to other CPUs (RPS, RFS, a
    /// socket on another CPU): they left before its stack.
    pub handed_out: u64,
    /// Frames and datagrams other CPUs handed to this one.
    pub handed_in: u64,
    /// Handed frames dropped at this CPU's full backlog.
    pub backlog_drops: u64,
    /// Handed frames still in this CPU's backlog.
    pub backlog_queued: u64,
}

/// The terminal counters of `c` other than the UDP socket's (fullsock,
/// delivered): what the stack consumed otherwise.
fn consumed_otherwise(c: &InetStats) -> u64 {
    c.terminal_sum() - c.udp_fullsock - c.udp_delivered
}

/// The "consumed by the stack" causes of `c` that are not zero: label
/// (`group.name`, FreeBSD's wording) and count.
pub fn consumed_causes(c: &InetStats) -> Vec<(String, u64)> {
    netstat::FIELDS
        .iter()
        .filter(|f| f.terminal && !(f.group == "udp" && matches!(f.name, "fullsock" | "delivered")))
        .map(|f| (format!("{}.{} ({})", f.group, f.name, f.text), (f.get)(c)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

impl Accounting {
    /// Add `b`'s stage counts (not its per-cause counters): two CPUs'
    /// kernels' frames together.
    pub fn add(&mut self, b: &Accounting) {
        self.offered += b.offered;
        self.rx_missed += b.rx_missed;
        self.received += b.received;
        self.ipintrq_drops += b.ipintrq_drops;
        self.ipintrq_queued += b.ipintrq_queued;
        self.stack += b.stack;
        self.socket_drops += b.socket_drops;
        self.socket_queued += b.socket_queued;
        self.app_read += b.app_read;
        self.stack_other += b.stack_other;
        self.handed_out += b.handed_out;
        self.handed_in += b.handed_in;
        self.backlog_drops += b.backlog_drops;
        self.backlog_queued += b.backlog_queued;
    }

    /// The account of `k` (call after a final status check).
    pub fn of(k: &Kernel) -> Accounting {
        let mut a = Accounting::default();
        for ifn in &k.ifs {
            let st = ifn.nic.stats();
            a.received += st.rx_packets;
            a.rx_missed += st.rx_missed;
        }
        a.offered = a.received + a.rx_missed;
        a.ipintrq_drops = k.ipintrq.drops;
        a.ipintrq_queued = k.ipintrq.len() as u64;
        let n = k.netisr.stats();
        a.stack = n.frames;
        a.socket_drops = n.udp_sockbuf_drops;
        a.socket_queued = n.udp_delivered;
        a.app_read = k.apps.udp_sink.as_ref().map_or(0, |s| s.datagrams);
        a.stack_other = consumed_otherwise(&n.inet);
        a.causes = n.inet;
        if let Some(r) = k.netisr.rps.as_deref() {
            a.handed_out = r.stats.handed_out + r.stats.socket_out;
            a.handed_in = r.stats.handed_in + r.stats.socket_in;
            a.backlog_drops = r.stats.backlog_drops;
            a.backlog_queued = r.backlog.len() as u64;
        }
        a
    }

    /// The account of interface `i` alone: its NIC's frames, its share
    /// of `ipintrq` and of the stack, what udp-sink read from its socket.
    pub fn of_if(k: &Kernel, i: usize) -> Accounting {
        let ifn = &k.ifs[i];
        let st = ifn.nic.stats();
        let n = k.netisr.nic_stats(i);
        let mut a = Accounting {
            received: st.rx_packets,
            rx_missed: st.rx_missed,
            ipintrq_drops: ifn.counters.ipintrq_drops,
            ipintrq_queued: k.ipintrq.len_of(i) as u64,
            stack: n.frames,
            socket_drops: n.udp_sockbuf_drops,
            socket_queued: n.udp_delivered,
            stack_other: consumed_otherwise(&n.inet),
            causes: n.inet,
            ..Accounting::default()
        };
        a.offered = a.received + a.rx_missed;
        a.app_read = k
            .apps
            .udp_sink
            .as_ref()
            .and_then(|s| s.datagrams_by_nic.get(i).copied())
            .unwrap_or(0);
        a
    }

    /// Whether every stage adds up: offered = missed + received, received
    /// (+ handed in) = ipintrq drops + queued (+ backlog drops + queued +
    /// handed out) + stack, stack = socket drops + socket queued + other
    /// (the sum of the other per-cause counters), and the socket's counts
    /// are the causes' `udp.fullsock` and `udp.delivered`. Summed over the
    /// CPUs of a system, what was handed out was handed in.
    pub fn balanced(&self) -> bool {
        self.offered == self.rx_missed + self.received
            && self.received + self.handed_in
                == self.ipintrq_drops
                    + self.ipintrq_queued
                    + self.backlog_drops
                    + self.backlog_queued
                    + self.handed_out
                    + self.stack
            && self.stack == self.socket_drops + self.socket_queued + self.stack_other
            && self.socket_drops == self.causes.udp_fullsock
            && self.socket_queued == self.causes.udp_delivered
            && self.app_read <= self.socket_queued
    }
}

/// The final summary: every node of the MIB, then the accounting.
pub fn summary(k: &mut Kernel, mib: &Mib<Kernel>) -> String {
    k.check_status();
    let mut out = String::new();
    if let Ok(nodes) = mib.dump(k, "") {
        for (name, value) in nodes {
            let _ = writeln!(out, "{}", format_line(&name, &value));
        }
    }
    let a = Accounting::of(k);
    let pct = |x: u64| {
        if a.offered == 0 {
            0.0
        } else {
            x as f64 * 100.0 / a.offered as f64
        }
    };
    let rows = [
        ("offered to the NICs", a.offered),
        ("  dropped: rx_missed (NIC ring full)", a.rx_missed),
        ("  dropped: ipintrq full", a.ipintrq_drops),
        ("  dropped: socket buffer full", a.socket_drops),
        ("  left in ipintrq", a.ipintrq_queued),
        (
            "  left in app sockets",
            a.socket_queued - a.app_read.min(a.socket_queued),
        ),
        ("  delivered: read by udp-sink", a.app_read),
        ("  consumed by the stack, by cause:", a.stack_other),
    ];
    let handing = [
        ("  handed to other CPUs (RPS, RFS, sockets)", a.handed_out),
        ("  handed in by other CPUs", a.handed_in),
        ("  dropped: backlog full (handed in)", a.backlog_drops),
        ("  left in the backlog", a.backlog_queued),
    ];
    let mut rows = rows.to_vec();
    if k.netisr.rps.is_some() {
        // After "left in ipintrq": the stages between the queue and the stack.
        rows.splice(5..5, handing);
    }
    let _ = writeln!(out, "\nframe accounting:");
    for (label, v) in rows {
        let _ = writeln!(out, "  {label:<48} {v:>12} {:>6.2}%", pct(v));
    }
    for (label, v) in consumed_causes(&a.causes) {
        let _ = writeln!(out, "      {label:<44} {v:>12} {:>6.2}%", pct(v));
    }
    let _ = writeln!(
        out,
        "  balance: {}",
        if a.balanced() {
            "ok (every frame accounted for)"
        } else {
            "MISMATCH"
        }
    );
    if k.ifs.len() > 1 {
        per_if_accounting(&mut out, k);
    }
    if let Some(i) = &k.apps.interactive {
        let now = k.cpu.last_switch();
        let us = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{} us", v / 1_000));
        let _ = writeln!(
            out,
            "\ninteractive process ({} us every {} us): {} slices, {} missed; late p50 {}, p99 {}, max {} us",
            i.slice_us,
            i.period_us,
            i.slices,
            i.missed(now),
            us(i.late.quantile(0.5)),
            us(i.late.quantile(0.99)),
            i.late_max.0 / 1_000
        );
    }
    let snap = Snapshot::take(k, mib, Nanos::ZERO);
    if snap.procs.len() > 1 {
        procs_summary(&mut out, k, &snap.procs);
    }
    if let Some(h) = snap.host {
        host_summary(&mut out, k, &h);
    }
    out
}

/// The user processes' account of the whole run, one line each.
fn procs_summary(out: &mut String, k: &Kernel, procs: &[ProcSnapshot]) {
    let elapsed = k.cpu.cp_time(k.cpu.last_switch()).total();
    let _ = writeln!(
        out,
        "\nuser processes (kern.sched.quantum {} us; waits on the run queue, p99 within 19 %):",
        k.runq.quantum.0 / 1_000
    );
    let _ = writeln!(
        out,
        "  {:<12} {:>10} {:>10} {:>6} {:>7} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "process",
        "cpu ms",
        "reactor ms",
        "cpu %",
        "share %",
        "waits",
        "mean us",
        "p99 us",
        "expiries",
        "preempted"
    );
    for w in ProcWindow::between(&[], procs, elapsed) {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        let _ = writeln!(
            out,
            "  {:<12} {:>10.1} {:>10.1} {:>6.1} {:>7.1} {:>9} {:>10} {:>10} {:>9} {:>9}",
            w.name,
            w.cpu_ns as f64 / 1e6,
            w.reactor_ns as f64 / 1e6,
            w.cpu_pct,
            w.share_pct,
            w.waits,
            opt(w.wait_mean_us.map(|v| format!("{v:.1}"))),
            opt(w.wait_p99_us.map(|v| v.to_string())),
            w.expiries,
            w.preempted
        );
    }
}

/// The accounting of each interface, one line each, for the summary.
fn per_if_accounting(out: &mut String, k: &Kernel) {
    let _ = writeln!(
        out,
        "\nper interface: {:>6} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  balance",
        "if", "offered", "rx_missed", "ipintrq", "sockbuf", "queued", "app read", "stack"
    );
    for (i, ifn) in k.ifs.iter().enumerate() {
        let a = Accounting::of_if(k, i);
        let _ = writeln!(
            out,
            "               {:>6} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}",
            ifn.nic.name(),
            a.offered,
            a.rx_missed,
            a.ipintrq_drops,
            a.socket_drops,
            a.ipintrq_queued + a.socket_queued - a.app_read.min(a.socket_queued),
            a.app_read,
            a.stack_other,
            if a.balanced() { "ok" } else { "MISMATCH" }
        );
    }
}

/// The host's account of the whole run, for the summary.
fn host_summary(out: &mut String, k: &Kernel, h: &HostSnapshot) {
    let cp = k.cpu.cp_time(k.cpu.last_switch()).total();
    let secs = (cp as f64 + h.stolen_us as f64 * 1e3) / 1e9;
    let w = HostWindow::between(&HostSnapshot::default(), h, secs);
    let us = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} us"));
    let p = &k.poll;
    let _ = writeln!(out, "\nhost ({secs:.1} s; quantiles to within 19 %):");
    let _ = writeln!(
        out,
        "  steal (/proc/stat, {} cpu): {} ms, {:.2}%",
        h.steal_cpus,
        h.steal_us / 1_000,
        w.steal_pct
    );
    let _ = writeln!(
        out,
        "  stalls: {} ({} hiccups, {} ms), {} ms in all ({:.2}%), longest {}; kernel clock stopped {} ms",
        w.stalls,
        w.hiccups,
        h.hiccup_us / 1_000,
        h.stall_us / 1_000,
        w.stall_pct,
        us(w.stall_max_us),
        h.stolen_us / 1_000
    );
    let [p50, p99, max] = w.tick_late_us;
    let _ = writeln!(
        out,
        "  clock interrupt late: p50 {}, p99 {}, max {}",
        us(p50),
        us(p99),
        us(max)
    );
    let [lost, short, drops] = w.after_stall;
    let _ = writeln!(
        out,
        "  after a stall in the same tick: {lost} of {} lost polls, {short} of {} short ticks, {drops} of {} ipintrq drops",
        p.lost_polls(),
        p.short_ticks(),
        k.ipintrq.drops
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_columns_only_with_the_hosts_nodes() {
        let sim = [("kern.sched.ticks".to_string(), Value::Int(5))];
        assert_eq!(Snapshot::from_dump(Nanos::ZERO, &sim).host, None);
        let node = |n: &str, v: i64| (format!("kern.sched.{n}"), Value::Int(v));
        let mut hist = vec![0; crate::kernel::host::HIST_BUCKETS];
        let at = |t: u64, h: &[u64], steal: i64, stall: i64| {
            let mut d = vec![
                node("steal_us", steal),
                node("steal_cpus", 1),
                node("stall_us", stall),
                node("stalls", stall / 1000),
                (
                    "kern.sched.tick_late_hist".to_string(),
                    Value::List(h.to_vec()),
                ),
            ];
            d.push(node("ticks", 1));
            Snapshot::from_dump(Nanos::from_secs(t), &d)
        };
        let a = at(1, &hist, 0, 0);
        hist[8] = 99; // 99 ticks up to 4 us late
        hist[40] = 1; // one up to 1024 us late
        let b = at(2, &hist, 20_000, 50_000);
        let w = HostWindow::between(a.host.as_ref().unwrap(), b.host.as_ref().unwrap(), 1.0);
        assert!((w.steal_pct - 2.0).abs() < 1e-9, "{w:?}");
        assert!((w.stall_pct - 5.0).abs() < 1e-9, "{w:?}");
        assert_eq!(w.stalls, 50);
        assert_eq!(w.tick_late_us, [Some(4), Some(4), Some(1024)]);
        assert!(
            line(&a, &b).ends_with("  2.0   5.0      4"),
            "{}",
            line(&a, &b)
        );
        assert!(header_for(&b).ends_with("steal stall late99"));
    }

    #[test]
    fn process_columns_only_with_two_processes_each_its_cpu_of_the_interval() {
        let at = |t: u64, procs: &[(&str, i64, i64, i64)]| {
            let mut d = vec![("kern.sched.ticks".to_string(), Value::Int(5))];
            for (name, cpu, waits, wait_ns) in procs {
                let n = |leaf: &str| format!("user.{name}.{leaf}");
                d.push((n("cpu_ns"), Value::Int(*cpu)));
                d.push((n("waits"), Value::Int(*waits)));
                d.push((n("wait_ns"), Value::Int(*wait_ns)));
                d.push((n("share_pct"), Value::Int(50)));
            }
            Snapshot::from_dump(Nanos::from_secs(t), &d)
        };
        let lone = [
            at(1, &[("udp_sink", 0, 0, 0)]),
            at(2, &[("udp_sink", 5, 0, 0)]),
        ];
        assert_eq!(lone[1].procs.len(), 1);
        assert_eq!(header_for(&lone[1]), header());
        assert!(!line(&lone[0], &lone[1]).ends_with(' '));
        let a = at(1, &[("http", 0, 0, 0), ("udp_sink", 0, 0, 0)]);
        let b = at(
            2,
            &[
                ("http", 10_000_000, 4, 40_000),
                ("udp_sink", 490_000_000, 1, 0),
            ],
        );
        assert!(
            header_for(&b).ends_with("http% sink%"),
            "{}",
            header_for(&b)
        );
        assert!(line(&a, &b).ends_with("   1.0  49.0"), "{}", line(&a, &b));
        let w = ProcWindow::between(&a.procs, &b.procs, 1_000_000_000);
        assert_eq!(w[0].name, "http");
        assert!((w[0].share_pct - 2.0).abs() < 1e-9, "{w:?}");
        assert_eq!(w[0].wait_mean_us, Some(10.0));
        assert_eq!(w[1].wait_mean_us, Some(0.0));
    }
}
