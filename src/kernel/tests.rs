//! Scripted runs of the whole kernel on a `VirtNic` and a fake clock: the
//! priorities of interrupt mode, the burst of polling mode, the accounting,
//! and every counter moving. No root, no sleeps.

use std::net::SocketAddrV4;

use pollsim_drivers::VirtNic;
use smoltcp::wire::Ipv4Cidr;

use super::clock::Clock;
use super::time::{Hz, Nanos};
use super::{Kernel, KernelConfig, Mode, mib};
use crate::apps::AppKind;
use crate::lab::udp_frame;
use crate::report::Accounting;

const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];
const PEER: [u8; 6] = [2, 0, 198, 18, 0, 1];

/// Time passes only when user work burns it.
struct FakeClock(Nanos);

impl Clock for FakeClock {
    fn now(&self) -> Nanos {
        self.0
    }
    fn burn(&mut self, span: Nanos) -> Nanos {
        self.0 += span;
        self.0
    }
}

fn frames(n: usize) -> Vec<Vec<u8>> {
    let src: SocketAddrV4 = "198.18.0.1:40000".parse().unwrap();
    let dst: SocketAddrV4 = "198.18.0.2:9".parse().unwrap();
    (0..n)
        .map(|i| udp_frame((PEER, src), (MAC, dst), &[i as u8; 18]))
        .collect()
}

fn kernel(mode: Mode, injected: &[Vec<u8>]) -> (Kernel, FakeClock) {
    let cfg = KernelConfig {
        hz: Hz::DEFAULT,
        addr: Ipv4Cidr::new("198.18.0.2".parse().unwrap(), 24),
        mode,
        apps: vec![AppKind::UdpSink],
        seed: 7,
    };
    let mut nic = VirtNic::new("virt0", MAC, 512).unwrap();
    for f in injected {
        assert!(nic.inject(f));
    }
    let clock = FakeClock(Nanos::from_secs(1));
    let mut k = Kernel::new(&cfg, clock.now());
    k.attach(Box::new(nic), &cfg, clock.now());
    k.start_apps();
    (k, clock)
}

/// One scheduling decision, by the kernel's priorities; false when idle.
fn step(k: &mut Kernel, clock: &mut FakeClock, ring: &mut usize) -> bool {
    use super::cpu::CpuState;
    let now = clock.now();
    if k.ifs[0].nic.intr_enabled() && *ring > 0 {
        k.cpu.switch(now, CpuState::Intr);
        let before = k.ifs[0].nic.stats().rx_packets;
        k.isr(0);
        *ring -= usize::try_from(k.ifs[0].nic.stats().rx_packets - before).unwrap();
    } else if k.netisr_pending() {
        k.cpu.switch(now, CpuState::Sys);
        k.netisr_step(now);
        k.netisr_pollmore(clock.now());
    } else if k.user_runnable(now) {
        k.cpu.switch(now, CpuState::User);
        k.user_step(now, clock);
    } else {
        k.cpu.switch(now, CpuState::Idle);
        return false;
    }
    true
}

#[test]
fn interrupts_fill_ipintrq_before_netisr_or_user_run() {
    let (mut k, mut clock) = kernel(Mode::Interrupt, &frames(300));
    let mut ring = 300;
    while step(&mut k, &mut clock, &mut ring) {}
    // The ISR took the whole ring before netisr ran once: 256 frames, then
    // the remaining 44, into a 50-frame ipintrq.
    assert_eq!(k.ifs[0].counters.interrupts, 2);
    assert_eq!(k.ipintrq.drops, 250);
    assert_eq!(k.apps.udp_sink.as_ref().unwrap().datagrams, 50);
    let a = Accounting::of(&k);
    assert_eq!(a.offered, 300);
    assert!(a.balanced(), "{a:?}");
}

#[test]
fn polling_takes_burst_frames_per_tick_and_burst_grows() {
    let (mut k, mut clock) = kernel(Mode::Polling, &frames(300));
    let mut ring = 0; // interrupts are masked: the ISR never runs
    for _ in 0..10 {
        clock.burn(Hz::DEFAULT.tick());
        k.hardclock(clock.now());
        while step(&mut k, &mut clock, &mut ring) {}
    }
    // burst starts at 5 and grows by one per light tick: 5 + 6 + ... + 14.
    assert_eq!(k.apps.udp_sink.as_ref().unwrap().datagrams, 95);
    assert_eq!(k.poll.burst(), 15);
    assert_eq!(k.ifs[0].counters.interrupts, 0);
    assert_eq!(k.ipintrq.enqueued, 0, "polling dispatches directly");
    let a = Accounting::of(&k);
    assert_eq!(a.offered, 95);
    assert!(a.balanced(), "{a:?}");
}

#[test]
fn late_ticks_read_at_once_are_one_clock_interrupt() {
    // As FreeBSD's hardclock(cnt, ...): three expirations read at once
    // advance ticks by three and run hardclock_device_poll once, so no
    // poll is lost and burst keeps climbing.
    let (mut k, mut clock) = kernel(Mode::Polling, &frames(100));
    clock.burn(Nanos(Hz::DEFAULT.tick().0 * 3));
    k.hardclock_cnt(clock.now(), 3);
    assert_eq!(k.sched.ticks, 3);
    assert_eq!(k.poll.pending_polls(), 1);
    while step(&mut k, &mut clock, &mut 0) {}
    assert_eq!((k.poll.lost_polls(), k.poll.pending_polls()), (0, 0));
    assert_eq!(k.poll.burst(), 6, "a light tick: burst + 1");
    // The same three ticks as three interrupts back to back, with no
    // netisr between them: two of them find the first still pending.
    let (mut k, mut clock) = kernel(Mode::Polling, &frames(100));
    clock.burn(Nanos(Hz::DEFAULT.tick().0 * 3));
    for _ in 0..3 {
        k.hardclock(clock.now());
    }
    while step(&mut k, &mut clock, &mut 0) {}
    assert_eq!(k.poll.lost_polls(), 2);
}

#[test]
fn kern_load_includes_the_ticks_last_chunk() {
    // burst 5 = each_burst 5: the tick is one chunk. When that chunk took
    // 60% of the tick, netisr_pollmore, timed after it, finds kern_load
    // above 100 - user_frac = 50 and lowers burst; timed before it (the
    // old mistake), it would have found 0% and raised burst.
    for (chunk, want) in [(60, 4), (0, 6)] {
        let (mut k, clock) = kernel(Mode::Polling, &frames(20));
        let now = clock.now();
        k.hardclock(now);
        k.netisr_step(now);
        k.netisr_pollmore(now + Nanos(Hz::DEFAULT.tick().0 * chunk / 100));
        assert_eq!(k.poll.burst(), want, "chunk took {chunk}% of the tick");
        assert!(!k.poll.is_scheduled());
    }
}

#[test]
fn every_counter_moves_in_a_scripted_run() {
    let (mut k, mut clock) = kernel(Mode::Interrupt, &frames(300));
    // The fake clock does not move by itself: the reactor's charges do.
    k.cost = Some(super::cost::CostModel::default());
    let mib = mib::build(&k);
    let before = mib.dump(&k, "").unwrap();
    let mut ring = 300;
    while step(&mut k, &mut clock, &mut ring) {}
    mib.set(&mut k, "dev.virt0.polling", "1").unwrap();
    for _ in 0..30 {
        clock.burn(Hz::DEFAULT.tick());
        k.hardclock(clock.now());
        while step(&mut k, &mut clock, &mut 0) {}
    }
    let after = mib.dump(&k, "").unwrap();
    // Counters this script cannot move: TCP/ICMP/ARP traffic, transmit
    // trouble, kern_poll's anomaly detectors, idle polling, and knobs.
    let still = [
        "net.netisr.arp",
        "net.netisr.listen_drops",
        "net.netisr.tcp",
        "net.netisr.icmp",
        "net.netisr.other",
        "net.netisr.txq_drops",
        "net.netisr.tx_frames",
        "dev.virt0.tx_packets",
        "dev.virt0.tx_dropped",
        "dev.virt0.errors",
        "dev.virt0.rx_missed",
        "net.netisr.udp_sockbuf_drops",
        "kern.polling.suspect",
        "kern.polling.stalled",
        "kern.polling.lost_polls",
        "kern.polling.pending_polls",
        "kern.polling.phase",
        "kern.polling.residual_burst",
        "kern.polling.short_ticks",
        "kern.sched.idle_polls",
        "kern.sched.preemptions",
        "kern.polling.idlepoll_sleeping",
        "net.inet.ip.intr_queue_len",
        // The other disciplines' counters (their tests move them), and
        // moderation's (off by default).
        "net.core.softnet.time_squeeze",
        "net.core.softnet.processed",
        "net.core.softnet.watchdogs",
        "kern.softirq.inline_runs",
        "kern.softirq.restarts",
        "kern.softirq.ksoftirqd_wakeups",
        "kern.softirq.ksoftirqd_running",
        "dev.virt0.napi_polls",
        "dev.virt0.napi_unmasks",
        "dev.virt0.napi_deferred",
        "dev.virt0.napi_busy_polls",
        "dev.virt0.napi_suspends",
        "dev.virt0.napi_resumes",
        // Busy polling is off by default (kernel::busy_poll's tests).
        "user.udp_sink.busy_loops",
        "user.udp_sink.busy_polls",
        "user.udp_sink.busy_poll_frames",
        "user.udp_sink.busy_poll_ns",
        "user.udp_sink.busy_poll_timeouts",
        "user.udp_sink.busy_poll_contended",
        "net.mr.callbacks",
        "net.mr.frames",
        "net.mr.feedback_stops",
        "net.mr.cycle_stops",
        "dev.virt0.dim_profile",
        "dev.virt0.dim_decisions",
        "dev.virt0.moderation_timer_fires",
        "dev.virt0.moderation_frame_fires",
        "dev.virt0.ipintrq_len",
        "dev.virt0.udp_sockbuf_drops",
        "dev.virt0.stack_tx",
        "kern.reactor.registered",
        // Registrations are made when the apps start, before the run.
        "kern.reactor.registers",
        "kern.reactor.watched",
        // One poller (the apps' own loop) wastes no wake-up and pays no
        // switch; src/kernel/pollers.rs and the sim's herd test move them.
        "kern.reactor.wasted_wakeups",
        "kern.reactor.wakeup_ns",
        // Synthetic idle connections are added before a run, on --sim only.
        "kern.conns.synthetic",
        // A lone process never waits behind another, nor is switched out;
        // the script is shorter than a quantum.
        "user.udp_sink.wait_ns",
        "user.udp_sink.wait_mean_us",
        "user.udp_sink.wait_p99_us",
        "user.udp_sink.wait_max_us",
        "user.udp_sink.expiries",
        "user.udp_sink.preempted",
        // The real-clock scheduler's account of the host.
        "kern.sched.stalls",
        "kern.sched.hiccups",
        "kern.sched.hiccup_us",
        "kern.sched.stall_us",
        "kern.sched.stall_max_us",
        "kern.sched.stolen_us",
        "kern.sched.tick_late_max_us",
        "kern.sched.stall_lost_polls",
        "kern.sched.stall_short_ticks",
        "kern.sched.stall_ipintrq_drops",
        "kern.sched.stall_hist",
        "kern.sched.tick_late_hist",
        "kern.sched.hist_us",
    ];
    // Of the per-cause counters, valid UDP to udp-sink moves these only.
    let netstat_moving = [
        "net.inet.ip.stats.total",
        "net.inet.ip.stats.delivered",
        "net.inet.udp.stats.ipackets",
        "net.inet.udp.stats.delivered",
    ];
    let netstat_node = |n: &str| {
        crate::kernel::netstat::FIELDS
            .iter()
            .any(|f| crate::kernel::netstat::sysctl_name(f) == n)
    };
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        if netstat_node(name) && !netstat_moving.contains(&name.as_str()) {
            continue;
        }
        let info = mib.info(name).unwrap();
        let knob = info.access == pollsim_sysctl::Access::ReadWrite;
        if knob
            || info.kind == pollsim_sysctl::Kind::Str
            || still.contains(&name.as_str())
            || name == "kern.hz"
            || name == "hw.ncpu"
        {
            continue;
        }
        assert_ne!(a, b, "{name} did not move");
    }
}

#[test]
fn every_rw_node_accepts_its_bounds_and_refuses_beyond_them() {
    let (mut k, _) = kernel(Mode::Polling, &[]);
    let mib = mib::build(&k);
    let rw: Vec<String> = mib
        .list("")
        .unwrap()
        .into_iter()
        .filter(|i| i.access == pollsim_sysctl::Access::ReadWrite)
        .filter(|i| i.kind != pollsim_sysctl::Kind::Str) // choices: see below
        .map(|i| i.name)
        .collect();
    assert!(rw.len() >= 10, "{rw:?}");
    for name in &rw {
        if name == "user.udp_sink.rcvbuf" {
            continue; // a start-time tunable: refused once the app runs
        }
        let (lo, hi) = mib.bounds(&k, name).unwrap().unwrap();
        for v in [lo, hi] {
            mib.set(&mut k, name, &v.to_string())
                .unwrap_or_else(|e| panic!("{name}={v} refused: {e}"));
            assert_eq!(
                mib.get(&k, name).unwrap().to_string(),
                v.to_string(),
                "{name}"
            );
        }
        let before = mib.get(&k, name).unwrap();
        for v in [lo - 1, hi + 1] {
            assert!(
                matches!(
                    mib.set(&mut k, name, &v.to_string()),
                    Err(pollsim_sysctl::SysctlError::OutOfRange { .. })
                ),
                "{name}={v} accepted"
            );
            assert_eq!(
                mib.get(&k, name).unwrap(),
                before,
                "{name} changed by a refused write"
            );
        }
    }
    // The FreeBSD quirk: lowering burst_max below each_burst sets it to 10.
    mib.set(&mut k, "kern.polling.burst_max", "500").unwrap();
    mib.set(&mut k, "kern.polling.each_burst", "300").unwrap();
    mib.set(&mut k, "kern.polling.burst_max", "200").unwrap();
    assert_eq!(k.poll.each_burst(), 10);
    // A choice knob takes its names and nothing else.
    mib.set(&mut k, "machdep.idle", "spin").unwrap();
    assert_eq!(k.host.idle, super::host::Idle::Spin);
    assert!(mib.set(&mut k, "machdep.idle", "mwait").is_err());
    // Read-only nodes refuse writes.
    assert!(matches!(
        mib.set(&mut k, "kern.polling.burst", "7"),
        Err(pollsim_sysctl::SysctlError::ReadOnly(_))
    ));
    assert!(matches!(
        mib.set(&mut k, "user.udp_sink.rcvbuf", "16"),
        Err(pollsim_sysctl::SysctlError::Rejected { .. })
    ));
    // The trigger reads and takes its names, and is a start-time tunable.
    assert_eq!(
        mib.get(&k, "user.udp_sink.trigger").unwrap().to_string(),
        "oneshot"
    );
    let err = mib
        .set(&mut k, "user.udp_sink.trigger", "edge")
        .unwrap_err();
    assert!(err.to_string().contains("read-only once"), "{err}");
    assert!(
        mib.set(&mut k, "user.udp_sink.trigger", "1").is_err(),
        "names only"
    );
    assert!(
        mib.set(&mut k, "user.udp_sink.read_packets", "65537")
            .is_err(),
        "0..65536"
    );
}
