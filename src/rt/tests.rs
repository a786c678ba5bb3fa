//! The real-clock scheduler's account of the host, on a NIC with nothing
//! to receive: a hook that sleeps is a stall (the thread did not run and
//! was not blocked in the idle loop), a NIC read that spins is a hiccup,
//! and with `kern.sched.stall_compensate` neither reaches the kernel's
//! clock. Lower bounds only: real host noise may add stalls, never remove
//! the ones made here.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use pollsim_drivers::{Nic, NicStats, NicStatus};
use smoltcp::wire::Ipv4Cidr;

use super::clock::RealClock;
use super::sched::run_real;
use crate::apps::AppKind;
use crate::kernel::clock::Clock;
use crate::kernel::host::Idle;
use crate::kernel::sched::{Hooks, RunOptions};
use crate::kernel::time::{Hz, Nanos};
use crate::kernel::{Kernel, KernelConfig, Mode};

/// A NIC whose ring is always empty; its `slow_call`-th read spins for
/// `slow` first (the host's time charged to the reader).
struct QuietNic {
    irq: EventFd,
    reads: u64,
    slow_call: u64,
    slow: Duration,
}

impl Nic for QuietNic {
    fn name(&self) -> &str {
        "quiet0"
    }
    fn mac(&self) -> [u8; 6] {
        [2, 0, 198, 18, 0, 2]
    }
    fn rx(&mut self, _count: usize, _f: &mut dyn FnMut(&[u8])) -> usize {
        self.reads += 1;
        if self.reads == self.slow_call {
            let until = Instant::now() + self.slow;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        0
    }
    fn tx(&mut self, _frame: &[u8]) {}
    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.irq.as_fd()
    }
    fn set_intr_enabled(&mut self, _enabled: bool) {}
    fn intr_enabled(&self) -> bool {
        false
    }
    fn check_status(&mut self) -> NicStatus {
        NicStatus {
            link_up: true,
            stats: NicStats::default(),
        }
    }
    fn stats(&self) -> NicStats {
        NicStats::default()
    }
}

/// A polling kernel on a [`QuietNic`], spinning when idle.
fn kernel(clock: &RealClock, slow_call: u64, slow: Duration, compensate: bool) -> Kernel {
    let cfg = KernelConfig {
        hz: Hz::DEFAULT,
        addr: Ipv4Cidr::new("198.18.0.2".parse().unwrap(), 24),
        mode: Mode::Polling,
        apps: vec![AppKind::UdpSink],
        seed: 1,
    };
    let nic = QuietNic {
        irq: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).unwrap(),
        reads: 0,
        slow_call,
        slow,
    };
    let mut k = Kernel::new(&cfg, clock.now());
    k.attach(Box::new(nic), &cfg, clock.now());
    k.start_apps();
    k.host.idle = Idle::Spin;
    k.host.compensate = compensate;
    k
}

/// Run `k` for `ms` milliseconds, calling `observe` every 50 ms; returns the wall time.
fn run(k: &mut Kernel, clock: &mut RealClock, ms: u64, observe: &mut dyn FnMut()) -> Nanos {
    let stop = AtomicBool::new(false);
    let opts = RunOptions {
        duration: Some(Nanos::from_millis(ms)),
        report_every: Some(Nanos::from_millis(50)),
    };
    let start = clock.wall();
    let mut obs = |_: &mut Kernel, _: Nanos| observe();
    let hooks = Hooks {
        observe: &mut obs,
        on_tick: &mut |_| {},
    };
    run_real(k, clock, &stop, opts, hooks).unwrap();
    clock.wall().since(start)
}

#[test]
fn a_sleeping_hook_is_a_stall_the_kernels_clock_does_not_see() {
    let mut clock = RealClock::new();
    let mut k = kernel(&clock, 0, Duration::ZERO, true);
    run(&mut k, &mut clock, 400, &mut || {
        std::thread::sleep(Duration::from_millis(5));
    });
    // The wall time since the clock began (the kernel began with it), and
    // the kernel's time since its last switch; a stall the host made
    // before or after the run (on a loaded host, several ms) is in both.
    // Read as a pair the host did not come between (it may, for several
    // ms, on a loaded host): the wall time on both sides within 0.1 ms.
    let (tail, wall) = loop {
        let before = clock.wall();
        let now = clock.now();
        let after = clock.wall();
        if after.since(before) < Nanos::from_micros(100) {
            break (now.since(k.cpu.last_switch()), before);
        }
    };
    clock.take_stalls(|d, stolen| k.host.record_stall(d, stolen));
    let h = &k.host;
    assert!(h.stalls >= 5, "{h:?}");
    assert!(h.stolen >= Nanos::from_millis(25), "{h:?}");
    // The kernel's CPU account plus the stolen time is the wall time.
    let cp = k.cpu.cp_time(k.cpu.last_switch()).total();
    let gap = (cp + tail.0 + h.stolen.0).abs_diff(wall.0);
    assert!(
        gap < Nanos::from_millis(2).0,
        "cp_time {cp} + {tail:?} since the last switch + stolen {:?} vs wall {wall:?}",
        h.stolen
    );
    // The grid moved with the stalls: no tick came as late as a stall.
    assert!(h.tick_late_max < Nanos::from_millis(4), "{h:?}");
}

#[test]
fn without_compensation_the_stall_shows_as_late_ticks() {
    let mut clock = RealClock::new();
    clock.configure(&crate::kernel::host::HostStats {
        compensate: false,
        ..Default::default()
    });
    let mut k = kernel(&clock, 0, Duration::ZERO, false);
    run(&mut k, &mut clock, 300, &mut || {
        std::thread::sleep(Duration::from_millis(5));
    });
    let h = &k.host;
    assert!(h.stalls >= 3, "{h:?}");
    assert_eq!(h.stolen, Nanos::ZERO);
    assert!(h.tick_late_max >= Nanos::from_millis(4), "{h:?}");
}

#[test]
fn a_slow_read_is_a_hiccup_and_no_lost_poll_when_compensated() {
    for compensate in [true, false] {
        let mut clock = RealClock::new();
        let mut k = kernel(&clock, 50, Duration::from_millis(3), compensate);
        run(&mut k, &mut clock, 200, &mut || {});
        let h = &k.host;
        // The spin is a hiccup while the thread runs, a stall if the host
        // also takes the CPU away in the middle of it (on a loaded host it
        // may take most of it, and what is left is within the read's
        // bound): either way the 3 ms are off the CPU's account.
        assert!(h.stall >= Nanos::from_millis(2), "{h:?}");
        let host_took = Nanos(h.stall.0.saturating_sub(h.hiccup.0));
        assert!(
            h.hiccups >= 1 || host_took >= Nanos::from_millis(1),
            "neither a hiccup nor a host stall: {h:?}"
        );
        // A 3 ms poll handler overruns the tick: kern_poll counts a lost
        // poll, unless the hiccup is taken off the kernel's clock.
        let lost = k.poll.lost_polls();
        if compensate {
            assert_eq!(h.stall_lost_polls, 0, "{h:?}");
            assert!(h.stolen >= Nanos::from_millis(2), "{h:?}");
        } else {
            assert!(lost >= 1 && h.stall_lost_polls >= 1, "lost {lost}, {h:?}");
        }
    }
}
