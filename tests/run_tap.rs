//! `pollsim run` against a real tap in a private network namespace: real
//! kernel clients (TCP echo, HTTP, UDP) in both modes, and the frame
//! accounting of a bounded burst.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream, UdpSocket};
use std::time::Duration;

use util::{ADDR, MAC, Running, lab, require_root_or_skip, with_tap};

fn sock(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(lab::bench_addr(ADDR), port)
}

/// Echo `msg` through tcp-echo on one connection.
#[track_caller]
fn echo(msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&sock(7).into(), Duration::from_secs(5))
        .expect("connect to tcp-echo");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(msg).expect("write");
    let mut got = vec![0; msg.len()];
    s.read_exact(&mut got).expect("read the echo");
    got
}

/// GET / from the http app.
#[track_caller]
fn http_get() -> String {
    let mut s = TcpStream::connect_timeout(&sock(80).into(), Duration::from_secs(5))
        .expect("connect to http");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.0\r\nHost: 198.18.0.2\r\n\r\n")
        .expect("write");
    let mut page = String::new();
    s.read_to_string(&mut page).expect("read the page");
    page
}

fn serve_in(mode: &str) {
    let run = Running::start(&["--mode", mode]);
    // Several connections at once, each with its own bytes.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let msg: Vec<u8> = (0..3000u32).map(|b| (b * 7 + i) as u8).collect();
                assert_eq!(echo(&msg), msg, "connection {i} got another's bytes");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("echo thread");
    }
    let page = http_get();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("<h1>pollsim</h1>"), "{page}");
    let udp = UdpSocket::bind("0.0.0.0:0").expect("udp");
    for _ in 0..200 {
        udp.send_to(b"counted", sock(9)).expect("send");
        std::thread::sleep(Duration::from_micros(200));
    }
    // Sent is not yet read: wait until the sink has them all.
    let mut read = 0;
    let all = util::eventually(Duration::from_secs(30), || {
        read = run.int("user.udp_sink.datagrams");
        (read == 200).then_some(())
    });
    assert!(all.is_some(), "the sink read {read} of 200 datagrams");
    let s = run.stop();
    assert_eq!(s.int("user.udp_sink.datagrams"), 200, "{}", s.text);
    assert_eq!(s.int("user.tcp_echo.connections"), 4);
    assert_eq!(s.int("user.tcp_echo.bytes"), 4 * 3000);
    assert_eq!(s.int("user.http.requests"), 1);
    assert!(s.text.contains("balance: ok"), "{}", s.text);
    if mode == "polling" {
        assert!(s.int("dev.tap0.polls") > 0);
        assert_eq!(
            s.int("dev.tap0.interrupts"),
            0,
            "interrupts must be masked while polling"
        );
    } else {
        assert!(s.int("dev.tap0.interrupts") > 0);
        assert_eq!(s.int("dev.tap0.polls"), 0);
    }
}

#[test]
fn echo_http_and_udp_in_interrupt_mode() {
    if require_root_or_skip("echo_http_and_udp_in_interrupt_mode") {
        with_tap(|| serve_in("interrupt"));
    }
}

#[test]
fn echo_http_and_udp_in_polling_mode() {
    if require_root_or_skip("echo_http_and_udp_in_polling_mode") {
        with_tap(|| serve_in("polling"));
    }
}

/// Offered = delivered + drops by stage, for a bounded burst sent faster
/// than the sink can take it.
fn account_burst(mode: &str) {
    let _serial = util::serial();
    lab::static_neigh("tap0", ADDR, MAC).expect("neighbour");
    let run = Running::start(&[
        "--mode",
        mode,
        "--apps",
        "udp-sink",
        "--sysctl",
        "user.udp_sink.work_ns=20000",
    ]);
    const N: u64 = 30_000;
    let b = lab::udp_blast(sock(9), 18, N, None, Duration::from_secs(20)).expect("blast");
    assert_eq!(b.sent, N, "the sender was cut short: {b:?}");
    // Every frame is taken from the tap or dropped at it, once the ring
    // has drained (slower on a loaded host): wait for it.
    let mut seen = 0;
    let drained = util::eventually(Duration::from_secs(30), || {
        seen = run.int("dev.tap0.rx_packets") + run.int("dev.tap0.rx_missed");
        (seen >= N).then_some(())
    });
    assert!(drained.is_some(), "{seen} of {N} frames taken or missed");
    let s = run.stop();
    let missed = s.int("dev.tap0.rx_missed");
    let received = s.int("dev.tap0.rx_packets");
    let ipq = s.int("net.inet.ip.intr_queue_drops");
    let sockbuf = s.int("net.netisr.udp_sockbuf_drops");
    let queued = s.int("net.netisr.udp_delivered");
    let read = s.int("user.udp_sink.datagrams");
    assert_eq!(
        received + missed,
        N,
        "offered frames not all seen:\n{}",
        s.text
    );
    assert_eq!(
        ipq + sockbuf + queued,
        received,
        "received frames lost between stages:\n{}",
        s.text
    );
    assert!(read <= queued);
    assert!(
        ipq + sockbuf + missed > 0,
        "a burst at 20 us/datagram must overflow somewhere"
    );
    assert!(s.text.contains("balance: ok"), "{}", s.text);
}

#[test]
fn every_frame_of_a_burst_is_accounted_for_in_interrupt_mode() {
    if require_root_or_skip("accounting in interrupt mode") {
        with_tap(|| account_burst("interrupt"));
    }
}

#[test]
fn every_frame_of_a_burst_is_accounted_for_in_polling_mode() {
    if require_root_or_skip("accounting in polling mode") {
        with_tap(|| account_burst("polling"));
    }
}
