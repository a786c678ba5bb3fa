//! Busy polling on the real clock: `pollsim run` against a real tap in a
//! private network namespace, udp-sink busy-polling its NAPI while a
//! bounded, paced trickle of datagrams arrives.

mod util;

use std::net::SocketAddrV4;
use std::time::Duration;

use util::{ADDR, MAC, Running, lab, require_root_or_skip, with_tap};

fn busy_polling_sink() {
    let _serial = util::serial();
    lab::static_neigh("tap0", ADDR, MAC).expect("neighbour");
    let run = Running::start(&[
        "--mode",
        "napi",
        "--apps",
        "udp-sink",
        "--sysctl",
        "user.udp_sink.busy_poll=2000",
    ]);
    // 2,000 datagrams at 2,000 pps: each arrives within the sink's 2 ms
    // loop after the one before.
    const N: u64 = 2_000;
    let dst = SocketAddrV4::new(ADDR.parse().expect("an IPv4 address"), 9);
    let b = lab::udp_blast(dst, 18, N, Some(2_000), Duration::from_secs(20)).expect("blast");
    assert_eq!(b.sent, N, "the sender was cut short: {b:?}");
    let mut seen = 0;
    let drained = util::eventually(Duration::from_secs(30), || {
        seen = run.int("user.udp_sink.datagrams") + run.int("net.netisr.udp_sockbuf_drops");
        (seen + run.int("dev.tap0.rx_missed") >= N).then_some(())
    });
    assert!(drained.is_some(), "{seen} of {N} datagrams read or dropped");
    let s = run.stop();
    let frames = s.int("user.udp_sink.busy_poll_frames");
    eprintln!(
        "busy-polling sink: {frames} of {} datagrams polled in by the sink, {} loops, \
         {} ns spinning, {} tap0 interrupts",
        s.int("user.udp_sink.datagrams"),
        s.int("user.udp_sink.busy_loops"),
        s.int("user.udp_sink.busy_poll_ns"),
        s.int("dev.tap0.interrupts"),
    );
    assert!(frames > 0, "the sink polled frames in itself:\n{}", s.text);
    assert!(s.int("user.udp_sink.busy_loops") > 0);
    assert!(s.int("dev.tap0.napi_busy_polls") >= s.int("user.udp_sink.busy_polls"));
    assert!(
        s.int("user.udp_sink.cpu_ns") >= s.int("user.udp_sink.busy_poll_ns"),
        "the spin is the sink's CPU time:\n{}",
        s.text
    );
    assert!(s.text.contains("balance: ok"), "{}", s.text);
}

#[test]
fn a_busy_polling_sink_takes_frames_itself_on_the_real_tap() {
    if require_root_or_skip("a_busy_polling_sink_takes_frames_itself_on_the_real_tap") {
        with_tap(busy_polling_sink);
    }
}
