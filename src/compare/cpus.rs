//! The real sweep at several CPUs (`compare --cpus 1,2` without `--sim`):
//! which counts this host can run, and a window read from every CPU's
//! control socket.
//!
//! At `N` CPUs the instance is `pollsim run --cpus N --queues N`: a
//! kernel thread per CPU, pinned to host CPU `c`, on queue `c` of a
//! multiqueue tap0, CPU 0 also serving the quiet tap1 (the probe) and the
//! interactive process, each CPU answering on its own control socket
//! (`NAME`, `NAME-cpuC`; `src/cli/run_smp.rs`). A window sums the CPUs'
//! counters and `kern.cp_time`, as the simulated CPUs' window does
//! (`compare::sim`), so its [`Run`](super::model::Run) has the shape of a
//! simulated row at several CPUs: `cpus` and a [`QueueLoad`] per queue.
//! What differs from the simulation: Linux's tun picks each frame's queue
//! by its own flow hash (no RSS key or table to set), and it counts the
//! frames it drops for the whole device, which queue 0 reports
//! (`rx_missed` of the other queues stays 0); the flood's sender has no
//! CPU of its own once every host CPU runs a kernel thread.

use super::model::{CpuPct, HostDiag, QueueLoad, TickLate};
use super::sweep::{Snapshot, host_window};

/// Why a CPU count above the host's is not run on the real tap.
pub const SKIP_REASON: &str = "each simulated CPU is a kernel thread pinned to a host CPU of its \
own, and this host has fewer: run it on virtual time (--sim)";

/// What `compare` says once, before the first series whose kernel
/// threads take every host CPU.
pub const SHARED_FLOOD: &str = "every host CPU now runs a kernel thread: the flood's sender, the \
probes and compare share host CPU 1 with CPU 1's kernel thread (its idle loop blocks: \
machdep.idle=hlt), whose lost time the host account counts as stalls, and such trials are marked \
noisy (--max-steal)";

/// How the real sweep's flood relates to the CPU counts, in `meta`.
pub const FLOOD_MAX_RULE: &str = "one flood thread, on host CPU 1: every CPU count is offered the \
same rates (calibration makes the flood's maximum at least 4x one CPU's polling capacity, so at \
least 2x two CPUs'); at as many CPUs as the host has, the sender shares host CPU 1 with a kernel \
thread, and the offered rate is what it managed to send";

/// How frames are spread over tap0's queues on the real tap, in `meta`.
pub const REAL_STEERING: &str = "Linux tun's own flow hash of each frame (or the queue that wrote \
the flow last): no RSS key or indirection table to set; the tap counts its drops for the whole \
device, so queue 0's rx_missed is the device's and the other queues' is 0";

/// The real sweep's `meta` at several CPUs or flows: the counts run
/// (`axes.cpus`), those skipped and why, the host's CPUs, the flows and
/// how the queues are chosen.
pub fn insert_meta(
    meta: &mut serde_json::Map<String, serde_json::Value>,
    args: &super::experiment::CompareArgs,
    (run, skipped): (&[usize], &[usize]),
    host: usize,
) {
    if let Some(axes) = meta.get_mut("axes").and_then(|a| a.as_object_mut()) {
        axes.insert("cpus".into(), run.into());
    }
    meta.insert("host_cpus".into(), host.into());
    meta.insert("cpus_skipped".into(), skipped.into());
    if !skipped.is_empty() {
        meta.insert("cpus_skip_reason".into(), SKIP_REASON.into());
    }
    meta.insert("flows".into(), args.flows.into());
    meta.insert(
        "flow_dist".into(),
        super::sweep::flow_dist_name(args.flow_dist).into(),
    );
    meta.insert("rss".into(), REAL_STEERING.into());
    meta.insert("idle_shared".into(), super::sweep::IDLE_SHARED.into());
    meta.insert(
        "idle_rule".into(),
        "idle at fewer CPUs than the host has; idle_shared at as many (no host CPU left for the \
         flood's sender, which a spinning idle loop would starve)"
            .into(),
    );
    meta.insert("flood_max_rule".into(), FLOOD_MAX_RULE.into());
}

/// The CPU counts of `--cpus` split by what a host of `host` CPUs can run
/// on the real tap: (run, skipped), each in the order given.
pub fn cap(cpus: &[usize], host: usize) -> (Vec<usize>, Vec<usize>) {
    cpus.iter().partition(|&&n| n <= host)
}

/// The line `compare` prints for the counts it skips (`None` if none).
pub fn skip_line(skipped: &[usize], host: usize) -> Option<String> {
    (!skipped.is_empty()).then(|| {
        let list: Vec<String> = skipped.iter().map(usize::to_string).collect();
        format!(
            "pollsim compare: --cpus {} skipped on the real tap: this host has {host} CPU{}; \
             {SKIP_REASON}",
            list.join(","),
            if host == 1 { "" } else { "s" }
        )
    })
}

/// Every CPU's MIB at one moment, CPU 0 first.
#[derive(Clone, Debug)]
pub struct Cpus(Vec<Snapshot>);

impl Cpus {
    /// From the snapshots of CPUs 0, 1, ... (at least CPU 0's).
    pub fn new(cpus: Vec<Snapshot>) -> Cpus {
        assert!(!cpus.is_empty(), "a window has at least CPU 0");
        Cpus(cpus)
    }

    /// CPU 0's: its knobs, its processes (it runs every app), the
    /// interactive process, the quiet NIC.
    pub fn first(&self) -> &Snapshot {
        &self.0[0]
    }

    /// How many CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never: CPU 0 is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// An integer node summed over the CPUs that have it.
    pub fn int(&self, name: &str) -> i64 {
        self.0.iter().map(|s| s.int(name)).sum()
    }

    /// The change since `earlier` of every NIC counter ending in `suffix`
    /// (`dev.<if>.rx_packets`), summed over NICs and CPUs: CPU 0's tap0
    /// queue and tap1, the other CPUs' tap0 queues.
    pub fn nic_delta(&self, earlier: &Cpus, suffix: &str) -> i64 {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|(b, a)| {
                b.ints()
                    // `dev.<if><suffix>` only: not a queue's own node
                    // (`dev.tap0.queue_rx_<q><suffix>`), counted in its NIC's.
                    .filter(|(k, _)| crate::report::nic_node(k, suffix))
                    .map(|(k, v)| v - a.int(k))
                    .sum::<i64>()
            })
            .sum()
    }

    /// `kern.cp_time` summed over the CPUs: shares of it are of all CPUs.
    pub fn cp_time(&self) -> [i64; 5] {
        let mut t = [0; 5];
        for s in &self.0 {
            for (i, v) in s.cp_time().iter().enumerate() {
                t[i] += v;
            }
        }
        t
    }

    /// What the host took from every CPU since `earlier`, `seconds` long
    /// ([`combine_hosts`] of each CPU's; `None` if a CPU keeps no host
    /// account).
    pub fn host_window(&self, earlier: &Cpus, seconds: f64) -> Option<HostDiag> {
        let each: Option<Vec<HostDiag>> = self
            .0
            .iter()
            .zip(&earlier.0)
            .map(|(b, a)| host_window(a, b, seconds))
            .collect();
        combine_hosts(&each?)
    }

    /// Each queue of tap0 since `earlier` (`seconds`), with several CPUs
    /// (none with one: the row is the queue): queue `c` is CPU `c`'s.
    pub fn queue_loads(&self, earlier: &Cpus, seconds: f64) -> Vec<QueueLoad> {
        if self.len() < 2 {
            return Vec::new();
        }
        let secs = seconds.max(1e-9);
        let nic = crate::sim::IFNAME;
        self.0
            .iter()
            .zip(&earlier.0)
            .enumerate()
            .map(|(c, (b, a))| {
                let d = |n: &str| (b.int(n) - a.int(n)) as f64 / secs;
                let rx = d(&format!("dev.{nic}.rx_packets"));
                let missed = d(&format!("dev.{nic}.rx_missed"));
                QueueLoad {
                    queue: c,
                    cpu: Some(c),
                    offered_pps: rx + missed,
                    received_pps: rx,
                    rx_missed_pps: missed,
                    delivered_pps: d("user.udp_sink.datagrams"),
                    cp_time_pct: CpuPct::between(&a.cp_time(), &b.cp_time()),
                }
            })
            .collect()
    }
}

/// The host's share of several CPUs over one window, from each CPU's
/// (`None` for none; one CPU's is itself): steal and stall time as shares
/// of all CPUs together (their mean, as the row's CPU shares are of all
/// CPUs), stalls, stolen time and the events after stalls summed, the
/// longest stall and each tick-lateness quantile the worst CPU's.
pub fn combine_hosts(each: &[HostDiag]) -> Option<HostDiag> {
    let [first, rest @ ..] = each else {
        return None;
    };
    if rest.is_empty() {
        return Some(first.clone());
    }
    let n = each.len() as f64;
    let mean = |f: fn(&HostDiag) -> f64| each.iter().map(f).sum::<f64>() / n;
    let worst = |f: fn(&HostDiag) -> Option<u64>| each.iter().filter_map(f).max();
    let sum = |f: fn(&HostDiag) -> u64| each.iter().map(f).sum::<u64>();
    let mut out = HostDiag {
        steal_pct: mean(|h| h.steal_pct),
        stall_pct: mean(|h| h.stall_pct),
        stalls: sum(|h| h.stalls),
        stall_max_us: worst(|h| h.stall_max_us),
        stolen_us: sum(|h| h.stolen_us),
        tick_late_us: TickLate {
            p50: worst(|h| h.tick_late_us.p50),
            p99: worst(|h| h.tick_late_us.p99),
            max: worst(|h| h.tick_late_us.max),
        },
        ..HostDiag::default()
    };
    let a = &mut out.after_stall;
    a.lost_polls = sum(|h| h.after_stall.lost_polls);
    a.short_ticks = sum(|h| h.after_stall.short_ticks);
    a.ipintrq_drops = sum(|h| h.after_stall.ipintrq_drops);
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use pollsim_sysctl::Value;

    use super::*;
    use crate::compare::model::{AfterStall, Frames};

    /// A CPU's snapshot at `at` with these integer nodes and a cp_time.
    fn snap(at: Instant, ints: &[(&str, i64)], cp: [u64; 5]) -> Snapshot {
        let mut dump: Vec<(String, Value)> = ints
            .iter()
            .map(|&(k, v)| (k.to_string(), Value::Int(v)))
            .collect();
        dump.push(("kern.cp_time".into(), Value::List(cp.to_vec())));
        Snapshot::from_dump(at, dump)
    }

    #[test]
    fn a_queues_own_nodes_are_not_counted_twice() {
        use crate::report::nic_node;
        assert!(nic_node("dev.tap0.rx_packets", ".rx_packets"));
        assert!(nic_node("dev.tap1.rx_missed", ".rx_missed"));
        assert!(!nic_node("dev.tap0.queue_rx_2.rx_packets", ".rx_packets"));
        assert!(!nic_node("net.tap0.rx_packets", ".rx_packets"));
    }

    #[test]
    fn counts_above_the_host_are_skipped_and_said_why() {
        assert_eq!(cap(&[1, 2, 4], 2), (vec![1, 2], vec![4]));
        assert_eq!(cap(&[4, 1], 1), (vec![1], vec![4]));
        assert_eq!(cap(&[1], 2), (vec![1], vec![]));
        assert_eq!(skip_line(&[], 2), None);
        let l = skip_line(&[4, 8], 2).unwrap();
        assert!(
            l.contains("--cpus 4,8 skipped") && l.contains("has 2 CPUs"),
            "{l}"
        );
        assert!(
            l.contains("pinned to a host CPU") && l.contains("--sim"),
            "{l}"
        );
        assert!(skip_line(&[2], 1).unwrap().contains("has 1 CPU;"));
    }

    #[test]
    fn a_window_sums_the_cpus_and_keeps_a_queue_each() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        // CPU 0: tap0 queue 0 and the quiet tap1 (the probe's frames);
        // the device's drops land on queue 0, as the tap counts them.
        let a = Cpus::new(vec![
            snap(
                t0,
                &[
                    ("dev.tap0.rx_packets", 100),
                    ("dev.tap0.rx_missed", 0),
                    ("dev.tap1.rx_packets", 5),
                    ("net.inet.tcp.stats.delivered", 5),
                    ("user.udp_sink.datagrams", 90),
                    ("net.netisr.udp_delivered", 95),
                    ("net.netisr.frames", 105),
                ],
                [10, 0, 10, 0, 80],
            ),
            snap(
                t0,
                &[
                    ("dev.tap0.rx_packets", 50),
                    ("user.udp_sink.datagrams", 50),
                    ("net.netisr.udp_delivered", 50),
                    ("net.netisr.frames", 50),
                ],
                [0, 0, 0, 0, 100],
            ),
        ]);
        let b = Cpus::new(vec![
            snap(
                t1,
                &[
                    ("dev.tap0.rx_packets", 1100),
                    ("dev.tap0.rx_missed", 400),
                    ("dev.tap1.rx_packets", 25),
                    ("net.inet.tcp.stats.delivered", 25),
                    ("user.udp_sink.datagrams", 1090),
                    ("net.netisr.udp_delivered", 1095),
                    ("net.netisr.frames", 1125),
                ],
                [60, 0, 60, 0, 80],
            ),
            snap(
                t1,
                &[
                    ("dev.tap0.rx_packets", 650),
                    ("user.udp_sink.datagrams", 640),
                    ("net.netisr.udp_delivered", 650),
                    ("net.netisr.frames", 650),
                ],
                [50, 0, 50, 0, 100],
            ),
        ]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.int("user.udp_sink.datagrams"), 1730);
        assert_eq!(b.nic_delta(&a, ".rx_packets"), 1000 + 20 + 600);
        assert_eq!(b.nic_delta(&a, ".rx_missed"), 400);
        assert_eq!(b.cp_time(), [110, 0, 110, 0, 180]);
        // The frames of the two CPUs together balance: 1620 received =
        // 1000 + 590 read + 10 queued on CPU 1's socket + 20 other (the
        // probe on tap1).
        let f = Frames::from_counters(|n| b.int(n) - a.int(n), |s| b.nic_delta(&a, s));
        assert_eq!((f.received, f.delivered, f.socket_queued), (1620, 1590, 10));
        assert_eq!(f.other, 20);
        assert!(f.balanced(), "{f:?}");
        let q = b.queue_loads(&a, 2.0);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].queue, 0);
        assert_eq!((q[0].received_pps, q[0].rx_missed_pps), (500.0, 200.0));
        assert_eq!(q[0].offered_pps, 700.0);
        assert_eq!(q[0].delivered_pps, 500.0);
        assert_eq!((q[1].queue, q[1].received_pps), (1, 300.0));
        assert_eq!((q[1].rx_missed_pps, q[1].delivered_pps), (0.0, 295.0));
        assert_eq!(q[0].cp_time_pct.user, 50.0);
        assert_eq!(q[1].cp_time_pct.sys, 50.0);
        // One CPU: no queues, the row is the queue.
        let one = |c: &Cpus| Cpus::new(vec![c.first().clone()]);
        assert!(one(&b).queue_loads(&one(&a), 2.0).is_empty());
        assert_eq!(one(&b).int("user.udp_sink.datagrams"), 1090);
    }

    #[test]
    fn hosts_combine_as_shares_of_all_cpus() {
        let h = |steal, stall, stalls, max| HostDiag {
            steal_pct: steal,
            stall_pct: stall,
            stalls,
            stall_max_us: max,
            stolen_us: stalls * 10,
            tick_late_us: TickLate {
                p50: Some(2),
                p99: max,
                max,
            },
            after_stall: AfterStall {
                lost_polls: stalls,
                short_ticks: 1,
                ipintrq_drops: 0,
            },
        };
        assert_eq!(combine_hosts(&[]), None);
        let one = h(1.0, 2.0, 3, Some(40));
        assert_eq!(combine_hosts(std::slice::from_ref(&one)), Some(one.clone()));
        let c = combine_hosts(&[one, h(3.0, 40.0, 7, Some(900))]).unwrap();
        assert_eq!((c.steal_pct, c.stall_pct), (2.0, 21.0));
        assert_eq!(
            (c.stalls, c.stolen_us, c.stall_max_us),
            (10, 100, Some(900))
        );
        assert_eq!(c.tick_late_us.p99, Some(900));
        assert_eq!(c.after_stall.lost_polls, 10);
        assert_eq!(c.after_stall.short_ticks, 2);
        // A CPU without stalls does not hide another's longest.
        let c = combine_hosts(&[h(0.0, 0.0, 0, None), h(0.0, 1.0, 1, Some(50))]).unwrap();
        assert_eq!(c.stall_max_us, Some(50));
    }
}
