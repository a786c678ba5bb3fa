//! The results of a `pollsim compare` sweep, in the JSON schema of the
//! CLI contract (`runs`, `summary`; fields may be added, never renamed).

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

/// Frame counts over the measurement window, from pollsim's own counters.
/// They balance exactly: `received = ipintrq_drops + ipintrq_queued +
/// socket_drops + socket_queued + delivered + other`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frames {
    /// Taken from the NIC's ring.
    pub received: i64,
    /// Dropped by the NIC (ring full).
    pub rx_missed: i64,
    /// Dropped at `ipintrq`.
    pub ipintrq_drops: i64,
    /// Change of `ipintrq`'s length over the window.
    pub ipintrq_queued: i64,
    /// Dropped at the app's socket buffer.
    pub socket_drops: i64,
    /// Change of the datagrams waiting on the app's socket over the window.
    pub socket_queued: i64,
    /// Read by the app.
    pub delivered: i64,
    /// Consumed by the stack otherwise (the probe's TCP, ARP).
    pub other: i64,
}

impl Frames {
    /// The counts of a window from the instance's counters: `d(name)` is a
    /// node's change over the window, `nic(suffix)` a NIC counter's change
    /// (e.g. `.rx_packets`), summed over the NICs that are counted.
    pub fn from_counters(d: impl Fn(&str) -> i64, nic: impl Fn(&str) -> i64) -> Frames {
        let queued = d("net.netisr.udp_delivered");
        let read = d("user.udp_sink.datagrams");
        let sockbuf = d("net.netisr.udp_sockbuf_drops");
        Frames {
            received: nic(".rx_packets"),
            rx_missed: nic(".rx_missed"),
            ipintrq_drops: d("net.inet.ip.intr_queue_drops"),
            ipintrq_queued: d("net.inet.ip.intr_queue_len"),
            socket_drops: sockbuf,
            socket_queued: queued - read,
            delivered: read,
            other: d("net.netisr.frames") - queued - sockbuf,
        }
    }

    /// Whether the counts balance.
    pub fn balanced(&self) -> bool {
        self.received
            == self.ipintrq_drops
                + self.ipintrq_queued
                + self.socket_drops
                + self.socket_queued
                + self.delivered
                + self.other
    }
}

/// One point of the sweep: one mode at one offered rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Mode label: `interrupt`, `polling`, or a variant such as
    /// `polling:user_frac=20,burst_max=300`.
    pub mode: String,
    /// Knobs that ran (name → value, as read back from the instance).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Offered load the flood actually sent, frames/s.
    pub offered_pps: f64,
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
}

/// What one measurement window gives, before it becomes a [`Run`].
#[derive(Clone, Debug)]
pub struct Measured {
    /// Mode label.
    pub mode: String,
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
            params: w.params,
            offered_pps: w.offered_pps,
            cp_time_pct: w.cpu,
            probe_ms: w.probe_ms,
            seconds: secs,
            simulated: w.simulated,
            frames: w.frames,
        }
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

/// Per mode: where it stops being loss-free, and how it holds under load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mode label.
    pub mode: String,
    /// Highest offered rate with loss under 0.1 % (MLFRR), frames/s.
    pub mlfrr_pps: f64,
    /// Highest delivered rate seen.
    pub peak_delivered_pps: f64,
    /// Delivered rate at the highest offered rate.
    pub delivered_at_max_offered_pps: f64,
}

/// A whole sweep.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Every point, in sweep order (mode by mode, rates ascending).
    pub runs: Vec<Run>,
    /// One entry per mode.
    pub summary: Vec<Summary>,
    /// How the sweep was made: machine, date, duration, work_ns and why.
    pub meta: serde_json::Map<String, serde_json::Value>,
}
