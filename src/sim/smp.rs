//! Several simulated CPUs on virtual time: one [`Sim`] per CPU, sharing
//! nothing but the flood.
//!
//! tap0 is a multiqueue NIC with one receive queue per CPU. Its Toeplitz
//! RSS ([`pollsim_drivers::Rss`], the Microsoft key, an equal
//! indirection table) steers each flow of the flood to one queue, and
//! queue `q` is served by CPU `q` (DragonFly's ring map at offset 0): its
//! interrupt, its NAPI instance or its ifpoll context, its netisr, its
//! protocol stack and its udp-sink socket (one socket per CPU, as a
//! `SO_REUSEPORT` server has, the way DragonFly partitions its stack by
//! netisr CPU). CPU 0 also has the quiet NIC, the HTTP probe, the other
//! apps and the idle connections, as ifpoll's status poll is on CPU 0.
//! Each CPU's clock interrupt is `c/n` of a tick after CPU 0's.
//!
//! Every CPU draws the same seeded flood and keeps the arrivals of its own
//! flows ([`pollsim_drivers::Flows`]). While nothing crosses between the
//! CPUs, they run one after the other over each window, and the result is
//! that of running them side by side. With RPS or RFS (`net.rps.cpus`,
//! `net.rfs.entries`) or udp-sink on one CPU (`user.udp_sink.cpu`), frames
//! cross ([`crate::kernel::rps`]): the CPUs then run in turns of
//! `hw.sim.smp_quantum_ns`, and what one handed to another during a turn
//! reaches it at the turn's end. What is not modelled yet: a shared socket
//! (one socket read by several CPUs), and more queues than CPUs.

use crate::kernel::time::Nanos;

use super::probe::ProbeResults;
use super::{FlowSpec, Placement, Sim, SimConfig, SimError};
use crate::apps::AppKind;
use crate::kernel::rps::{AppCpu, Handoff};

/// The most simulated CPUs.
pub const MAX_CPUS: usize = 64;

/// A simulated system of one or more CPUs.
pub struct SmpSim {
    /// The CPUs, CPU 0 first.
    pub cpus: Vec<Sim>,
    /// What crosses between them (several CPUs only).
    handoff: Option<Handoff>,
    /// The end of the last turn: every CPU has run to it.
    turn: Nanos,
}

/// Knobs that act between CPUs: with one CPU they have nothing to act on
/// and are left out, so that one `--sysctl` list serves every CPU count of
/// a sweep.
const BETWEEN_CPUS: [&str; 8] = [
    "net.rps.cpus",
    "net.rfs.entries",
    "net.core.netdev_max_backlog",
    "hw.sim.rps_cost_ns",
    "hw.sim.xcpu_cost_ns",
    "hw.sim.ipi_cost_ns",
    "hw.sim.smp_quantum_ns",
    "user.udp_sink.cpu",
];

/// The apps' CPUs given as `user.<app>.cpu=K` among `sysctls`, which
/// are set at start (the app is built on its CPU): udp-sink's (`-1`, the
/// default: a socket on every CPU), checked against `ncpu`; the other apps
/// run on CPU 0, the only value they take. Returns the CPU of udp-sink and
/// the other knobs.
fn app_cpus(
    sysctls: &[String],
    ncpu: usize,
    apps: &[AppKind],
) -> Result<(AppCpu, Vec<String>), SimError> {
    let mut sink = None;
    let mut rest = Vec::new();
    for kv in sysctls {
        let Some((name, value)) = kv.split_once('=') else {
            rest.push(kv.clone());
            continue;
        };
        let Some(app) = name
            .strip_prefix("user.")
            .and_then(|n| n.strip_suffix(".cpu"))
        else {
            if ncpu > 1 || !BETWEEN_CPUS.contains(&name) {
                rest.push(kv.clone());
            }
            continue;
        };
        let v: i64 = value
            .trim()
            .parse()
            .map_err(|_| SimError::Sysctl(format!("{kv}: expected an integer")))?;
        let max = i64::try_from(ncpu).unwrap_or(i64::MAX) - 1;
        match app {
            "udp_sink" if !apps.contains(&AppKind::UdpSink) => {
                return Err(SimError::Sysctl(format!("{kv}: udp-sink does not run")));
            }
            "udp_sink" if (-1..=max).contains(&v) => {
                sink = usize::try_from(v).ok().filter(|_| ncpu > 1);
            }
            "udp_sink" => {
                return Err(SimError::Sysctl(format!(
                    "{kv}: Invalid argument (-1..{max}: a CPU, or -1 for a socket on every CPU)"
                )));
            }
            "tcp_echo" | "http" | "interactive" if v == 0 => {}
            "tcp_echo" | "http" | "interactive" => {
                return Err(SimError::Sysctl(format!(
                    "{kv}: {app} runs on CPU 0, with tap1 and the probe (only udp-sink moves)"
                )));
            }
            _ => rest.push(kv.clone()),
        }
    }
    Ok((sink, rest))
}

impl SmpSim {
    /// `ncpu` CPUs (1..=[`MAX_CPUS`]) fed the flows of `spec`, steered
    /// by its RSS. One CPU with one flow is exactly [`Sim::new`].
    pub fn new(cfg: &SimConfig, ncpu: usize, spec: &FlowSpec) -> Result<SmpSim, SimError> {
        let (sink_cpu, sysctls) = app_cpus(&cfg.sysctls, ncpu, &cfg.apps)?;
        let cfg = SimConfig {
            sysctls,
            ..cfg.clone()
        };
        let handoff = (ncpu > 1).then(|| Handoff::new(ncpu));
        let cpus = (0..ncpu)
            .map(|c| {
                let mut place = Placement::new(c, ncpu, spec)?;
                place.handoff.clone_from(&handoff);
                place.sink_cpu = sink_cpu;
                Sim::new_placed(&cfg, &place, |n| Box::new(n))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if cpus.is_empty() {
            return Err(SimError::Sysctl(format!(
                "hw.ncpu {ncpu}: between 1 and {MAX_CPUS}"
            )));
        }
        let turn = cpus[0].now();
        Ok(SmpSim {
            cpus,
            handoff,
            turn,
        })
    }

    /// CPU 0.
    pub fn first(&self) -> &Sim {
        &self.cpus[0]
    }

    /// The virtual clock (CPU 0's; the others stop at the same instant,
    /// each after the unit of work it was in).
    pub fn now(&self) -> Nanos {
        self.cpus[0].now()
    }

    /// Whether frames may cross between the CPUs now (RPS, RFS or a
    /// socket on one CPU is set), and the length of a turn.
    fn handing(&self) -> Option<Nanos> {
        let r = self.cpus[0].k.netisr.rps.as_deref()?;
        r.active().then_some(Nanos(r.quantum_ns.max(1)))
    }

    /// Run every CPU for `span` of virtual time, to the same instant.
    /// While frames may cross between them, the CPUs run in turns
    /// (`hw.sim.smp_quantum_ns`), and what each handed to another during
    /// a turn reaches it at the turn's end; otherwise each runs the whole
    /// span in one go, which is exact since nothing crosses.
    pub fn run_for(&mut self, span: Nanos) {
        let end = self.turn.max(self.now()) + span;
        while self.turn < end {
            let turn = match self.handing() {
                Some(q) => (self.turn + q).min(end),
                None => end,
            };
            for s in &mut self.cpus {
                s.run_until(turn, &mut |_, _| {});
            }
            self.deliver();
            self.turn = turn;
        }
    }

    /// Hand each CPU what the others handed it during the turn.
    fn deliver(&mut self) {
        let Some(h) = &self.handoff else {
            return;
        };
        for (c, s) in self.cpus.iter_mut().enumerate() {
            let items = h.take_for(c);
            if !items.is_empty() {
                let now = s.now();
                s.k.receive_handed(items, now);
            }
        }
    }

    /// Frames the flood has put on the wire so far (every queue's), and
    /// the probe's.
    pub fn arrived(&self) -> u64 {
        self.cpus.iter().map(Sim::arrived).sum()
    }

    /// The probe's results since the last call (it runs on CPU 0).
    pub fn take_probe_results(&mut self) -> ProbeResults {
        self.cpus[0].take_probe_results()
    }
}

#[cfg(test)]
#[path = "rps_tests.rs"]
mod rps_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::time::Hz;
    use pollsim_drivers::Pattern;
    use pollsim_sysctl::Value;

    fn cfg(pps: f64) -> SimConfig {
        SimConfig {
            mode: crate::kernel::Mode::Polling,
            hz: Hz::DEFAULT,
            pattern: Pattern::Poisson { pps },
            seed: 7,
            apps: vec![AppKind::UdpSink, AppKind::Http],
            sysctls: vec!["user.udp_sink.work_ns=2000".into()],
            probe: None,
            conns: 0,
        }
    }

    fn flows(n: usize) -> FlowSpec {
        FlowSpec {
            flows: n,
            ..FlowSpec::default()
        }
    }

    fn int(s: &Sim, name: &str) -> i64 {
        match s.mib.get(&s.k, name) {
            Ok(Value::Int(v)) => v,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// What one CPU's NIC queue saw: received + missed, and read by its
    /// udp-sink.
    fn queue(s: &Sim) -> (i64, i64) {
        (
            int(s, "dev.tap0.rx_packets") + int(s, "dev.tap0.rx_missed"),
            int(s, "user.udp_sink.datagrams"),
        )
    }

    #[test]
    fn one_cpu_one_flow_is_the_single_cpu_system() {
        let mut a = SmpSim::new(&cfg(300_000.0), 1, &flows(1)).unwrap();
        let mut b = Sim::new(&cfg(300_000.0)).unwrap();
        a.run_for(Nanos::from_millis(200));
        b.run_for(Nanos::from_millis(200));
        let (da, db) = (
            a.first().mib.dump(&a.first().k, "").unwrap(),
            b.mib.dump(&b.k, "").unwrap(),
        );
        assert_eq!(da, db);
    }

    #[test]
    fn flows_spread_over_the_cpus_and_every_frame_is_accounted_for() {
        let mut s = SmpSim::new(&cfg(400_000.0), 4, &flows(256)).unwrap();
        s.run_for(Nanos::from_millis(300));
        let per: Vec<(i64, i64)> = s.cpus.iter().map(queue).collect();
        let offered: i64 = per.iter().map(|q| q.0).sum();
        // Frames still in a ring are neither received nor missed yet.
        let pending: i64 = s.cpus.iter().map(|c| crate::sat(c.ring_pending())).sum();
        assert_eq!(offered + pending, crate::sat(s.arrived()));
        for (c, (seen, read)) in per.iter().enumerate() {
            assert!(*seen > 0, "CPU {c}'s queue saw no frame: {per:?}");
            assert!(*read > 0, "CPU {c}'s udp-sink read nothing: {per:?}");
        }
        // Every CPU ran the whole span on its own clock.
        let end = super::super::START + Nanos::from_millis(300);
        assert!(s.cpus.iter().all(|c| c.now() >= end));
    }

    #[test]
    fn one_flow_reaches_one_queue_only() {
        let mut s = SmpSim::new(&cfg(200_000.0), 4, &flows(1)).unwrap();
        s.run_for(Nanos::from_millis(200));
        let busy: Vec<usize> = s
            .cpus
            .iter()
            .enumerate()
            .filter(|(_, c)| queue(c).0 > 0)
            .map(|(i, _)| i)
            .collect();
        let q = Placement::new(0, 4, &flows(1)).unwrap().queues()[0];
        assert_eq!(busy, [q]);
    }

    #[test]
    fn weights_steer_the_flows_and_are_checked_against_the_cpus() {
        let spec = |w: Vec<u32>| FlowSpec {
            flows: 256,
            weights: Some(w),
            ..FlowSpec::default()
        };
        let mut s = SmpSim::new(&cfg(200_000.0), 2, &spec(vec![1, 0])).unwrap();
        s.run_for(Nanos::from_millis(100));
        assert!(queue(&s.cpus[0]).0 > 0);
        assert_eq!(queue(&s.cpus[1]).0, 0, "weight 0: no table entry, no frame");
        let c1 = &s.cpus[1];
        let indir = c1.mib.get(&c1.k, "dev.tap0.rss_indir").unwrap();
        assert_eq!(indir, Value::List(vec![0; 128]));
        assert_eq!(int(c1, "dev.tap0.rss_flows"), 0);
        assert!(SmpSim::new(&cfg(1000.0), 4, &spec(vec![1, 1])).is_err());
        assert!(SmpSim::new(&cfg(1000.0), 2, &spec(vec![0, 0])).is_err());
    }

    fn queues(_ncpu: usize, m: usize) -> FlowSpec {
        FlowSpec {
            flows: 256,
            queues: Some(m),
            ..FlowSpec::default()
        }
    }

    fn list(s: &Sim, name: &str) -> Vec<u64> {
        match s.mib.get(&s.k, name) {
            Ok(Value::List(v)) => v,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// Every frame the flood put on the wire is received, missed or still
    /// in a ring, and each CPU's accounting balances.
    fn assert_accounted(s: &SmpSim) {
        let seen: i64 = s.cpus.iter().map(|c| queue(c).0).sum();
        let pending: i64 = s.cpus.iter().map(|c| crate::sat(c.ring_pending())).sum();
        assert_eq!(seen + pending, crate::sat(s.arrived()));
        for (c, cpu) in s.cpus.iter().enumerate() {
            let a = crate::report::Accounting::of(&cpu.k);
            assert!(a.balanced(), "CPU {c}: {a:?}");
        }
    }

    #[test]
    fn with_more_queues_than_cpus_each_cpu_serves_several() {
        let mut s = SmpSim::new(&cfg(400_000.0), 2, &queues(2, 4)).unwrap();
        s.run_for(Nanos::from_millis(300));
        for (c, cpu) in s.cpus.iter().enumerate() {
            let mine = [c, c + 2];
            assert_eq!(list(cpu, "dev.tap0.rss_queues"), mine.map(|q| q as u64));
            assert_eq!(cpu.k.ifs[0].nic.rx_queues(), 2);
            let (mut rx, mut missed) = (0, 0);
            for q in mine {
                let p = format!("dev.tap0.queue_rx_{q}");
                assert_eq!(int(cpu, &format!("{p}.cpu")), crate::sat(c as u64));
                let got = int(cpu, &format!("{p}.rx_packets"));
                assert!(got > 0, "queue {q} on CPU {c} received nothing");
                rx += got;
                missed += int(cpu, &format!("{p}.rx_missed"));
                assert!(
                    int(cpu, &format!("{p}.rx_pending"))
                        <= crate::sat(super::super::RING_LEN as u64)
                );
            }
            // The CPU's tap0 counters are its queues' sum.
            assert_eq!(rx, int(cpu, "dev.tap0.rx_packets"));
            assert_eq!(missed, int(cpu, "dev.tap0.rx_missed"));
            // The other CPU's queues are not in this CPU's MIB.
            for q in [1 - c, 3 - c] {
                assert!(
                    !cpu.mib
                        .contains(&format!("dev.tap0.queue_rx_{q}.rx_packets"))
                );
            }
            assert!(queue(cpu).1 > 0, "CPU {c}'s udp-sink read nothing");
        }
        assert_accounted(&s);
        // RSS spread the 256 flows over the 4 queues of the table.
        let place = Placement::new(0, 2, &queues(2, 4)).unwrap();
        let mut per = [0; 4];
        for q in place.queues() {
            per[q] += 1;
        }
        assert!(per.iter().all(|&n| n > 0), "{per:?}");
        let flows: i64 = s.cpus.iter().map(|c| int(c, "dev.tap0.rss_flows")).sum();
        assert_eq!(flows, 256);
    }

    #[test]
    fn with_fewer_queues_than_cpus_the_cpus_past_them_receive_nothing() {
        let mut s = SmpSim::new(&cfg(400_000.0), 4, &queues(4, 2)).unwrap();
        s.run_for(Nanos::from_millis(300));
        for (c, cpu) in s.cpus.iter().enumerate() {
            assert_eq!(int(cpu, "hw.ncpu"), 4);
            let served = list(cpu, "dev.tap0.rss_queues");
            if c < 2 {
                assert_eq!(served, [c as u64]);
                assert!(queue(cpu).0 > 0, "CPU {c} received nothing");
                assert!(
                    cpu.mib
                        .contains(&format!("dev.tap0.queue_rx_{c}.rx_packets"))
                );
            } else {
                assert!(served.is_empty(), "CPU {c} serves {served:?}");
                assert_eq!(cpu.k.ifs[0].nic.rx_queues(), 0);
                assert_eq!(queue(cpu), (0, 0), "CPU {c} got frames of tap0");
                assert_eq!(int(cpu, "dev.tap0.rss_flows"), 0);
                let dump = cpu.mib.dump(&cpu.k, "").unwrap();
                assert!(
                    !dump
                        .iter()
                        .any(|(n, _)| n.starts_with("dev.tap0.queue_rx_"))
                );
            }
            // Every CPU still ran the whole span: its clock and cp_time.
            assert!(cpu.now() >= super::super::START + Nanos::from_millis(300));
            let t: u64 = list(cpu, "kern.cp_time").iter().sum();
            assert!(t >= 299_000, "CPU {c}'s cp_time: {t} us");
        }
        assert_accounted(&s);
    }

    #[test]
    fn one_queue_per_cpu_is_the_default_and_is_unchanged() {
        let spec = |m: Option<usize>| FlowSpec {
            flows: 256,
            queues: m,
            ..FlowSpec::default()
        };
        let mut a = SmpSim::new(&cfg(300_000.0), 4, &spec(None)).unwrap();
        let mut b = SmpSim::new(&cfg(300_000.0), 4, &spec(Some(4))).unwrap();
        a.run_for(Nanos::from_millis(100));
        b.run_for(Nanos::from_millis(100));
        for (c, (x, y)) in a.cpus.iter().zip(&b.cpus).enumerate() {
            assert_eq!(x.mib.dump(&x.k, "").unwrap(), y.mib.dump(&y.k, "").unwrap());
            assert_eq!(list(x, "dev.tap0.rss_queues"), [c as u64]);
            assert_eq!(x.k.ifs[0].nic.rx_queues(), 1, "one queue: the ring itself");
            // The queue's node is the CPU's tap0.
            let q = int(x, &format!("dev.tap0.queue_rx_{c}.rx_packets"));
            assert_eq!(q, int(x, "dev.tap0.rx_packets"));
        }
    }

    #[test]
    fn queue_counts_and_weights_are_checked_against_the_queues() {
        assert!(SmpSim::new(&cfg(1000.0), 2, &queues(2, 0)).is_err());
        let e = SmpSim::new(&cfg(1000.0), 2, &queues(2, 257)).err().unwrap();
        assert!(e.to_string().contains("between 1 and 256"), "{e}");
        let spec = |w: Vec<u32>| FlowSpec {
            weights: Some(w),
            ..queues(2, 4)
        };
        let e = SmpSim::new(&cfg(1000.0), 2, &spec(vec![1, 1]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("for 4 queues: one per queue"), "{e}");
        let s = SmpSim::new(&cfg(1000.0), 2, &spec(vec![1, 0, 0, 1])).unwrap();
        let indir = list(&s.cpus[0], "dev.tap0.rss_indir");
        assert!(indir.iter().all(|&q| q == 0 || q == 3), "{indir:?}");
    }

    #[test]
    fn out_of_range_cpu_counts_are_refused() {
        assert!(SmpSim::new(&cfg(1000.0), 0, &flows(1)).is_err());
        assert!(SmpSim::new(&cfg(1000.0), MAX_CPUS + 1, &flows(1)).is_err());
    }
}
