//! Switching `dev.tap0.polling` at run time, through the MIB, while a TCP
//! echo conversation goes on: no byte lost, both input paths used.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pollsim::apps::AppKind;
use pollsim::kernel::clock::Clock;
use pollsim::kernel::sched::{Hooks, RunOptions};
use pollsim::kernel::time::{Hz, Nanos};
use pollsim::kernel::{Kernel, KernelConfig, Mode, mib};
use pollsim::rt::clock::RealClock;
use pollsim::rt::sched::run_real;
use pollsim_drivers::TapNic;
use smoltcp::wire::Ipv4Cidr;
use util::{MAC, lab, require_root_or_skip, with_tap};

/// (interrupts, polls, flips, bytes echoed) of a kernel whose polling
/// switch flips every 50 ms until `stop`.
fn flipping_kernel(stop: &AtomicBool) -> (u64, u64, u32, u64) {
    let cfg = KernelConfig {
        hz: Hz::DEFAULT,
        addr: Ipv4Cidr::new(lab::bench_addr("198.18.0.2"), 24),
        mode: Mode::Interrupt,
        apps: vec![AppKind::TcpEcho],
        seed: 1,
    };
    let mut clock = RealClock::new();
    let mut k = Kernel::new(&cfg, clock.now());
    k.attach(
        Box::new(TapNic::open("tap0", MAC).expect("open tap0")),
        &cfg,
        clock.now(),
    );
    k.start_apps();
    let mib = mib::build(&k);
    let mut flips = 0;
    let opts = RunOptions {
        duration: Some(Nanos::from_secs(30)),
        report_every: Some(Nanos::from_millis(50)),
    };
    let mut observe = |k: &mut Kernel, _: Nanos| {
        let on = mib.get(k, "dev.tap0.polling").expect("node").to_string() == "1";
        mib.set(k, "dev.tap0.polling", if on { "0" } else { "1" })
            .expect("flip");
        assert_eq!(
            k.ifs[0].nic.intr_enabled(),
            on,
            "interrupts must follow the switch"
        );
        flips += 1;
    };
    let hooks = Hooks {
        observe: &mut observe,
        on_tick: &mut |_| {},
    };
    run_real(&mut k, &mut clock, stop, opts, hooks).expect("scheduler");
    let c = k.ifs[0].counters;
    (
        c.interrupts,
        c.polls,
        flips,
        k.apps.tcp_echo.as_ref().map_or(0, |a| a.bytes),
    )
}

#[test]
fn echo_survives_switching_polling_on_and_off() {
    if !require_root_or_skip("echo_survives_switching_polling_on_and_off") {
        return;
    }
    with_tap(|| {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let kernel = s.spawn(|| flipping_kernel(&stop));
            let addr = (lab::bench_addr("198.18.0.2"), 7);
            let mut conn =
                util::eventually(Duration::from_secs(5), || TcpStream::connect(addr).ok())
                    .expect("connect to tcp-echo");
            conn.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let start = Instant::now();
            let mut sent = 0u64;
            let mut i = 0u32;
            while start.elapsed() < Duration::from_millis(1500) {
                let msg = format!("message {i} through whatever input path is on\n");
                conn.write_all(msg.as_bytes()).expect("write");
                let mut got = vec![0; msg.len()];
                conn.read_exact(&mut got).expect("echo during a switch");
                assert_eq!(got, msg.as_bytes());
                sent += msg.len() as u64;
                i += 1;
            }
            drop(conn);
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
            let (interrupts, polls, flips, bytes) = kernel.join().expect("kernel thread");
            assert!(flips >= 10, "only {flips} switches");
            assert!(
                interrupts > 0 && polls > 0,
                "both paths must have run: {interrupts} {polls}"
            );
            assert_eq!(bytes, sent);
        });
    });
}
