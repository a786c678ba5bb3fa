//! The rules of NAPI and of Mogul & Ramakrishnan's kernel, pinned on a
//! kernel with in-memory NICs and a hand-driven clock (as `poll.rs`'s
//! tests pin kern_poll.c's).

use std::net::SocketAddrV4;

use pollsim_drivers::VirtNic;
use smoltcp::wire::Ipv4Cidr;

use super::{Discipline as _, Kind, Thread};
use crate::apps::AppKind;
use crate::kernel::clock::Clock;
use crate::kernel::time::{Hz, Nanos};
use crate::kernel::{Kernel, KernelConfig, Unit};
use crate::lab::udp_frame;

const PEER: [u8; 6] = [2, 0, 198, 18, 0, 1];

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

/// A kernel with one NIC per entry of `rings` (that many frames waiting
/// in it), all in `kind`, the udp-sink with a socket buffer of `rcvbuf`.
fn kernel(kind: Kind, rings: &[usize], rcvbuf: u64) -> Kernel {
    let cfg = KernelConfig {
        hz: Hz::DEFAULT,
        addr: Ipv4Cidr::new("198.18.0.2".parse().unwrap(), 24),
        mode: kind,
        apps: vec![AppKind::UdpSink],
        seed: 7,
    };
    let now = Nanos::from_secs(1);
    let mut k = Kernel::new(&cfg, now);
    for (n, &frames) in rings.iter().enumerate() {
        let mac = [2, 0, 198, 18, 0, 2 + n as u8];
        let mut nic = VirtNic::new(&format!("virt{n}"), mac, 1000).unwrap();
        let src: SocketAddrV4 = "198.18.0.1:40000".parse().unwrap();
        let dst: SocketAddrV4 = "198.18.0.2:9".parse().unwrap();
        for i in 0..frames {
            assert!(nic.inject(&udp_frame((PEER, src), (mac, dst), &[i as u8; 18])));
        }
        k.attach(Box::new(nic), &cfg, now);
    }
    k.apps.udp_sink.as_mut().unwrap().rcvbuf = rcvbuf;
    k.start_apps();
    k
}

fn at_us(us: u64) -> Nanos {
    Nanos::from_secs(1) + Nanos::from_micros(us)
}

/// Every NIC interrupts, then the interrupt exits.
fn interrupt_all(k: &mut Kernel, now: Nanos) {
    k.cpu.switch(now, crate::kernel::cpu::CpuState::Intr);
    for i in 0..k.ifs.len() {
        k.isr(i);
    }
    k.irq_exit(now);
}

/// Run kernel-priority units at `now` until none is left; the frames each
/// took.
fn drain_kernel(k: &mut Kernel, now: Nanos) -> Vec<u32> {
    let mut polls = Vec::new();
    while k.next_unit(now) == Unit::Kernel {
        let w = k.netisr_step(now);
        k.unit_done(now);
        if w.polled > 0 || w.dispatched == 0 {
            polls.push(w.polled);
        }
    }
    polls
}

#[test]
fn napi_budget_and_weight_overshoot_squeeze_the_pass() {
    // Five NAPIs of weight 64 against a budget of 300: the fifth poll
    // takes the budget to -20, and the pass ends with a time_squeeze.
    let mut k = kernel(Kind::Napi, &[100; 5], 256);
    interrupt_all(&mut k, at_us(0));
    assert!(!k.any_intr_enabled(), "each ISR masks its line");
    k.netisr_step(at_us(0));
    for _ in 0..4 {
        assert_eq!(k.disc.napi.stats.time_squeeze, 0);
        let w = k.netisr_step(at_us(0));
        assert_eq!(w.polled, 64, "a poll takes its weight, no more");
    }
    assert_eq!(k.disc.napi.stats.time_squeeze, 1, "300 - 5 x 64 < 0");
    // Four NAPIs stay within the budget: no squeeze.
    let mut k = kernel(Kind::Napi, &[100; 4], 256);
    interrupt_all(&mut k, at_us(0));
    for _ in 0..4 {
        k.netisr_step(at_us(0));
    }
    assert_eq!(k.disc.napi.stats.time_squeeze, 0);
}

#[test]
fn napi_time_limit_squeezes_in_jiffies() {
    let mut k = kernel(Kind::Napi, &[10, 10], 256);
    k.disc.napi.budget_usecs = 1000; // one jiffy at HZ=1000
    interrupt_all(&mut k, at_us(0));
    k.netisr_step(at_us(0));
    assert_eq!(k.disc.napi.stats.time_squeeze, 0);
    k.sched.ticks += 1; // a jiffy passes inside the pass
    k.netisr_step(at_us(1000));
    assert_eq!(k.disc.napi.stats.time_squeeze, 1);
}

#[test]
fn napi_completion_unmasks_only_below_weight() {
    let mut k = kernel(Kind::Napi, &[100], 256);
    interrupt_all(&mut k, at_us(0));
    assert_eq!(k.netisr_step(at_us(0)).polled, 64);
    assert!(!k.ifs[0].nic.intr_enabled(), "a full-weight poll repolls");
    // The restart polls the rest: 36 < 64, the NAPI completes.
    assert_eq!(k.netisr_step(at_us(0)).polled, 36);
    assert!(k.ifs[0].nic.intr_enabled());
    assert_eq!(k.disc.napi.napi(0).unmasks, 1);
}

#[test]
fn napi_restart_limit_hands_over_to_ksoftirqd() {
    for rule_2016 in [false, true] {
        let mut k = kernel(Kind::Napi, &[1000], 256);
        k.disc.napi.defer_to_ksoftirqd = rule_2016;
        interrupt_all(&mut k, at_us(0));
        let polls = drain_kernel(&mut k, at_us(0));
        // MAX_SOFTIRQ_RESTART passes of one poll each, then ksoftirqd.
        assert_eq!(polls, [64; 10]);
        let s = k.disc.napi.stats;
        assert_eq!((s.restarts, s.ksoftirqd_wakeups), (9, 1));
        assert_ne!(k.next_unit(at_us(1)), Unit::Kernel, "no more inline work");
        let mut threads = Vec::new();
        k.disc.napi.runnable_threads(&mut threads);
        assert_eq!(
            threads[0].thread,
            Thread::Ksoftirqd,
            "ksoftirqd is runnable"
        );
        // The next interrupt exit (a clock tick) runs NET_RX inline again
        // under today's rule, not under 2016-2023's.
        k.hardclock(at_us(1000));
        assert_eq!(k.disc.napi.stats.inline_runs, if rule_2016 { 1 } else { 2 });
    }
}

#[test]
fn napi_restarts_stop_at_need_resched_or_two_ms() {
    let mut k = kernel(Kind::Napi, &[1000], 256);
    interrupt_all(&mut k, at_us(0));
    k.netisr_step(at_us(0));
    k.sched.ticks += 2; // MAX_SOFTIRQ_TIME
    k.netisr_step(at_us(2000));
    assert_eq!(k.disc.napi.stats.ksoftirqd_wakeups, 1);
    assert_eq!(k.disc.napi.stats.restarts, 1);
}

#[test]
fn napi_deferral_keeps_the_irq_masked_for_n_empty_polls() {
    let mut k = kernel(Kind::Napi, &[10], 256);
    k.disc.napi.napi_mut(0).defer_hard_irqs = 2;
    k.disc.napi.napi_mut(0).gro_flush_timeout = 20_000;
    interrupt_all(&mut k, at_us(0));
    assert_eq!(drain_kernel(&mut k, at_us(0)), [10]);
    assert!(
        !k.ifs[0].nic.intr_enabled(),
        "work: the count reloads, masked"
    );
    assert_eq!(k.next_deadline(), Some(at_us(20)));
    for (empty, masked) in [(1, true), (2, false)] {
        let t = k.next_deadline().unwrap();
        assert!(k.timer_due(t));
        k.timers(t);
        k.irq_exit(t);
        assert_eq!(drain_kernel(&mut k, t), [0], "empty poll {empty}");
        assert_eq!(
            !k.ifs[0].nic.intr_enabled(),
            masked,
            "after {empty} empty polls"
        );
    }
    assert_eq!(k.next_deadline(), None);
    let st = k.disc.napi.napi(0);
    assert_eq!((st.deferred, st.unmasks), (2, 1));
}

#[test]
fn threaded_napi_wakes_its_thread_not_the_softirq() {
    let mut k = kernel(Kind::Napi, &[100], 256);
    k.disc.napi.napi_mut(0).threaded = true;
    interrupt_all(&mut k, at_us(0));
    assert_eq!(k.disc.napi.stats.inline_runs, 0);
    assert_eq!(k.next_unit(at_us(0)), Unit::Thread(Thread::Napi(0)));
    assert_eq!(k.thread_step(at_us(0), Thread::Napi(0)).polled, 64);
    assert_eq!(k.thread_step(at_us(0), Thread::Napi(0)).polled, 36);
    assert!(k.ifs[0].nic.intr_enabled());
    assert_ne!(k.next_unit(at_us(0)), Unit::Thread(Thread::Napi(0)));
}

#[test]
fn mr_quota_bounds_each_callback_and_the_ring_reenables_the_irq() {
    let mut k = kernel(Kind::Mr, &[12], 256);
    k.disc.mr.quota = 5;
    interrupt_all(&mut k, at_us(0));
    assert!(!k.ifs[0].nic.intr_enabled());
    let mut takes = Vec::new();
    while k.next_unit(at_us(0)) == Unit::Kernel {
        let w = k.netisr_step(at_us(0));
        assert!(w.then_egress, "each callback ends the turn: transmit next");
        takes.push(w.polled);
        k.unit_done(at_us(0));
    }
    assert_eq!(takes, [5, 5, 2]);
    assert!(
        k.ifs[0].nic.intr_enabled(),
        "ring empty: interrupts back on"
    );
    assert_eq!(k.disc.mr.stats.callbacks, 3);
}

#[test]
fn mr_without_quota_drains_the_ring_before_transmitting() {
    let mut k = kernel(Kind::Mr, &[200], 256);
    k.disc.mr.quota = 0;
    k.disc.mr.feedback = false;
    interrupt_all(&mut k, at_us(0));
    let mut egress = Vec::new();
    while k.next_unit(at_us(0)) == Unit::Kernel {
        let w = k.netisr_step(at_us(0));
        egress.push((w.polled, w.then_egress));
        k.unit_done(at_us(0));
    }
    assert_eq!(egress, [(64, false), (64, false), (64, false), (8, true)]);
    assert_eq!(k.disc.mr.stats.callbacks, 1);
}

#[test]
fn mr_feedback_stops_input_when_the_socket_fills_and_resumes_as_it_drains() {
    let mut k = kernel(Kind::Mr, &[100], 8);
    let mut clock = FakeClock(at_us(0));
    interrupt_all(&mut k, at_us(0));
    drain_kernel(&mut k, at_us(0));
    // 75 % of 8 datagrams: input stops at 6 queued (quota 10 lets one
    // callback overshoot up to the buffer's end).
    let queued = k.netisr.stats().udp_delivered;
    assert!((6..=8).contains(&queued), "queued {queued}");
    assert_eq!(k.disc.mr.stats.feedback_stops, 1);
    assert!(
        !k.ifs[0].nic.intr_enabled(),
        "input stays off, interrupts too"
    );
    // The user process reads; at 25 % input resumes.
    let mut resumed_at = None;
    for _ in 0..1000 {
        match k.next_unit(clock.now()) {
            Unit::User => k.user_step(clock.now(), &mut clock),
            Unit::Kernel => {
                resumed_at = Some(k.apps.udp_sink.as_ref().unwrap().datagrams);
                break;
            }
            u => panic!("{u:?}"),
        }
    }
    let read = resumed_at.expect("input resumed");
    assert!(queued - read <= 2, "resumed with {} queued", queued - read);
}

#[test]
fn mr_cycle_limit_stops_input_until_the_tick_ends() {
    let mut k = kernel(Kind::Mr, &[1000], 256);
    k.disc.mr.feedback = false;
    k.disc.mr.cycle_limit = 50;
    interrupt_all(&mut k, at_us(0));
    let mut t = 0;
    while k.next_unit(at_us(t)) == Unit::Kernel {
        k.netisr_step(at_us(t));
        t += 100; // each callback takes 100 us
        k.unit_done(at_us(t));
    }
    assert_eq!(t, 500, "half of a 1 ms tick");
    assert_eq!(k.disc.mr.stats.cycle_stops, 1);
    k.hardclock(at_us(1000));
    assert_eq!(k.next_unit(at_us(1000)), Unit::Kernel, "a new period");
}

#[test]
fn switching_disciplines_loses_no_frame() {
    let mut k = kernel(Kind::Interrupt, &[600], 256);
    let mut clock = FakeClock(at_us(0));
    let kinds = [
        Kind::Napi,
        Kind::Mr,
        Kind::Polling,
        Kind::Interrupt,
        Kind::Napi,
    ];
    for (n, kind) in kinds.iter().cycle().take(40).enumerate() {
        let now = clock.now();
        if k.any_intr_enabled() && n % 3 == 0 {
            interrupt_all(&mut k, now);
        }
        if n % 5 == 0 {
            k.hardclock(now);
        }
        for _ in 0..3 {
            match k.next_unit(clock.now()) {
                Unit::Kernel => {
                    k.netisr_step(clock.now());
                    k.unit_done(clock.now());
                }
                Unit::Thread(t) => {
                    k.thread_step(clock.now(), t);
                }
                Unit::User => k.user_step(clock.now(), &mut clock),
                _ => {}
            }
        }
        assert!(k.set_discipline(0, *kind));
        clock.burn(Nanos::from_micros(50));
    }
    let s = k.netisr.stats();
    let rx = k.ifs[0].nic.stats().rx_packets;
    let queued = k.ipintrq.len() as u64;
    assert_eq!(
        rx,
        s.frames + k.ipintrq.drops + queued,
        "every frame taken from the ring is in the stack, dropped at ipintrq or queued"
    );
    assert_eq!(s.frames, s.udp_delivered + s.udp_sockbuf_drops);
    assert!(rx > 0);
}

#[test]
fn kern_polling_enable_switches_every_interface_and_reads_whether_any_polls() {
    let mut k = kernel(Kind::Interrupt, &[3, 3, 3], 256);
    let mib = crate::kernel::mib::build(&k);
    let read = |k: &Kernel| mib.get(k, "kern.polling.enable").unwrap().to_string();
    let kinds = |k: &Kernel| k.ifs.iter().map(|f| f.discipline).collect::<Vec<_>>();
    assert_eq!(read(&k), "0");
    // One interface polls: the legacy node reads 1 (FreeBSD 5's `polling`
    // was on while any handler was registered).
    mib.set(&mut k, "dev.virt1.polling", "1").unwrap();
    assert_eq!(read(&k), "1");
    mib.set(&mut k, "dev.virt2.discipline", "napi").unwrap();
    // 1: every interface polls, whatever its discipline was.
    mib.set(&mut k, "kern.polling.enable", "1").unwrap();
    assert_eq!(kinds(&k), [Kind::Polling; 3]);
    assert_eq!(k.poll_list.len(), 3);
    assert!(k.ifs.iter().all(|f| !f.nic.intr_enabled()));
    // 0: every polling interface back to interrupts; a NAPI one stays.
    mib.set(&mut k, "dev.virt2.discipline", "napi").unwrap();
    mib.set(&mut k, "kern.polling.enable", "0").unwrap();
    assert_eq!(kinds(&k), [Kind::Interrupt, Kind::Interrupt, Kind::Napi]);
    assert!(k.poll_list.is_empty());
    assert_eq!(read(&k), "0");
    // The frames waiting were not lost by the switches: interrupt mode takes them.
    interrupt_all(&mut k, at_us(0));
    drain_kernel(&mut k, at_us(0));
    assert_eq!(k.netisr.stats().frames, 9);
    assert!(matches!(
        mib.set(&mut k, "kern.polling.enable", "2"),
        Err(pollsim_sysctl::SysctlError::OutOfRange { .. })
    ));
}
