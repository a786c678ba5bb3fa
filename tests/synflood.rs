//! SYN floods against the TCP apps, on a real tap in a private network
//! namespace: from spoofed sources that never answer (198.19.0.0/16, off
//! the tap's subnet, so their SYN-ACKs go nowhere) and from a real source
//! whose kernel answers every SYN-ACK with a RST (`pollsim flood --proto
//! syn`). Afterwards http and tcp-echo answer within 1 s, no slot leaks,
//! and half-open connections are gone within the half-open timeout; during
//! a flood an established echo connection keeps echoing.

mod util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pnet::datalink::{self, Channel};
use pollsim::flood::frames::{FrameSpec, Proto, build_into};
use util::{ADDR, MAC, Running, lab, require_root_or_skip, run_pollsim, with_tap};

/// Spoofed SYNs cycled by the sender: distinct sources and ports.
const SPOOFED: usize = 8192;

fn sock(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(lab::bench_addr(ADDR), port)
}

/// SYN frames to `ports` from random addresses of 198.19.0.0/16.
fn spoofed_syns(ports: &[u16], tap_mac: [u8; 6]) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..SPOOFED)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            let src = Ipv4Addr::new(198, 19, b[0], b[1].max(1));
            assert!(lab::is_bench_addr(src));
            let spec = FrameSpec {
                proto: Proto::Syn,
                size: 60,
                src_mac: tap_mac,
                dst_mac: MAC,
                src,
                dst: sock(ports[i % ports.len()]),
            };
            let mut frame = vec![0; 60];
            build_into(
                &spec,
                1024 + (u16::from(b[2]) << 6 | u16::from(b[3] & 63)),
                &mut frame,
            )
            .expect("a SYN frame");
            frame
        })
        .collect()
}

/// Send spoofed SYNs on tap0 as fast as one AF_PACKET socket can (or at
/// `pps`), until `stop` or `limit`. Returns the frames sent.
fn spoofed_flood(ports: &[u16], pps: Option<u64>, stop: &AtomicBool, limit: Duration) -> u64 {
    let iface = datalink::interfaces()
        .into_iter()
        .find(|i| i.name == "tap0")
        .expect("tap0");
    let mac = iface.mac.expect("tap0 has a MAC").octets();
    let frames = spoofed_syns(ports, mac);
    let Ok(Channel::Ethernet(mut tx, _rx)) = datalink::channel(&iface, Default::default()) else {
        panic!("an AF_PACKET channel on tap0");
    };
    let start = Instant::now();
    let end = start + limit;
    let mut sent = 0u64;
    'outer: loop {
        for f in &frames {
            if sent.is_multiple_of(256) && (stop.load(Ordering::Relaxed) || Instant::now() >= end) {
                break 'outer;
            }
            if let Some(pps) = pps
                && sent.is_multiple_of(64)
            {
                let due = start + Duration::from_secs_f64(sent as f64 / pps as f64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            if let Some(Ok(())) = tx.send_to(f, None) {
                sent += 1;
            }
        }
    }
    sent
}

/// The flood of a real source: the tap's kernel side sends SYNs from
/// 1000 ports and answers the SYN-ACKs with RSTs (no socket there).
fn real_flood(port: u16, secs: &str) -> String {
    real_flood_at(port, "max", secs)
}

/// As [`real_flood`], at `rate`.
fn real_flood_at(port: u16, rate: &str, secs: &str) -> String {
    let (code, out, err) = run_pollsim(&[
        "flood",
        "--if",
        "tap0",
        "--proto",
        "syn",
        "--dst",
        &format!("{ADDR}:{port}"),
        "--src-ports",
        "1000-1999",
        "--rate",
        rate,
        "--duration",
        secs,
        // The spoofed flood already fills the tap's queue: an ARP request
        // for the MAC would be lost in it.
        "--dst-mac",
        "02:00:c6:12:00:02",
    ]);
    assert_eq!(code, 0, "flood: {err}");
    out
}

fn try_http() -> Option<()> {
    let mut s = TcpStream::connect_timeout(&sock(80).into(), Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    page.starts_with("HTTP/1.1 200").then_some(())
}

fn try_echo() -> Option<()> {
    let mut s = TcpStream::connect_timeout(&sock(7).into(), Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"still here").ok()?;
    let mut got = [0u8; 10];
    s.read_exact(&mut got).ok()?;
    (&got == b"still here").then_some(())
}

/// Within `within` of now, `f` succeeds: the time it took.
#[track_caller]
fn answers_within(what: &str, within: Duration, f: impl Fn() -> Option<()>) -> Duration {
    let t = Instant::now();
    while t.elapsed() < within {
        if f().is_some() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what} did not answer within {within:?}");
}

fn flood_then_serve(mode: &str) {
    let run = Running::start(&["--apps", "tcp-echo,http", "--mode", mode]);
    let syn_timeout = Duration::from_millis(run.int("user.http.syn_timeout_ms"));
    // The server knows its client's MAC before the flood, as a server
    // knows its gateway's: smoltcp learns neighbors from ARP only, and an
    // ARP reply sent during the flood shares the tap's full queue with it.
    // Lost, it is asked again only after a second (smoltcp's
    // `NeighborCache::SILENT_TIME`, as Linux's `retrans_time_ms`), which
    // would be measured here instead of the SYN backlog.
    answers_within("http before the flood", Duration::from_secs(1), try_http);
    assert!(run.int("net.netisr.arp") >= 1, "an ARP reply taken");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let spoofed = s.spawn(|| spoofed_flood(&[80, 7], None, &stop, Duration::from_secs(2)));
        let real = real_flood(80, "2s");
        let sent = spoofed.join().expect("spoofed flood");
        assert!(sent > 10_000, "spoofed flood too slow: {sent} frames");
        println!("{mode}: spoofed {sent} SYNs; real: {real}");
    });
    let t_http = answers_within("http after the flood", Duration::from_secs(1), try_http);
    let t_echo = answers_within("tcp-echo after the flood", Duration::from_secs(1), try_echo);
    println!("{mode}: http answered {t_http:?}, echo {t_echo:?} after the flood");
    // Half-open connections are gone within the half-open timeout, and no
    // slot leaked: nothing is counted as served any more.
    let settled = util::eventually(syn_timeout + Duration::from_millis(1500), || {
        let held = run.int("user.http.half_open") + run.int("user.tcp_echo.half_open");
        let active = run.int("user.http.active") + run.int("user.tcp_echo.active");
        (held == 0 && active == 0).then_some(())
    });
    assert!(
        settled.is_some(),
        "{mode}: half_open {} / {}, active {} / {} after {syn_timeout:?}",
        run.int("user.http.half_open"),
        run.int("user.tcp_echo.half_open"),
        run.int("user.http.active"),
        run.int("user.tcp_echo.active"),
    );
    // The real source answers a SYN-ACK for a connection it never opened
    // with a RST, which frees the half-open slot. Under the flood those
    // RSTs share the tap's full queue with it and may all be lost (in
    // interrupt mode they often are), so a few more SYNs from the real
    // source follow on the quiet link, and the test waits for their RSTs:
    // up to three such bursts, since on a loaded host (the suite's other
    // floods) the replies of one burst can still be lost.
    let reset = (0..3).find_map(|_| {
        real_flood_at(80, "200", "500ms");
        util::eventually(Duration::from_secs(5), || {
            (run.int("user.http.resets") > 0).then_some(())
        })
    });
    let s = run.stop();
    for app in ["http", "tcp_echo"] {
        let n = |c: &str| s.int(&format!("user.{app}.{c}"));
        assert!(n("syn_received") > 100, "{mode} {app}:\n{}", s.text);
        assert!(
            n("syn_dropped") + n("timeouts") > 0,
            "{mode} {app}: spoofed half-opens neither dropped nor timed out:\n{}",
            s.text
        );
        assert!(
            n("sockets") <= n("backlog") + n("syn_backlog") + n("max_conns"),
            "{mode} {app}: sockets unbounded"
        );
    }
    assert!(
        reset.is_some() && s.int("user.http.resets") > 0,
        "{mode}: the real source's RSTs freed no half-open slot:\n{}",
        s.text
    );
    assert!(s.text.contains("balance: ok"), "{}", s.text);
}

#[test]
fn after_a_syn_flood_http_and_echo_answer_at_once_in_interrupt_mode() {
    if require_root_or_skip("after_a_syn_flood_http_and_echo_answer_at_once_in_interrupt_mode") {
        let _serial = util::serial();
        with_tap(|| flood_then_serve("interrupt"));
    }
}

#[test]
fn after_a_syn_flood_http_and_echo_answer_at_once_in_polling_mode() {
    if require_root_or_skip("after_a_syn_flood_http_and_echo_answer_at_once_in_polling_mode") {
        let _serial = util::serial();
        with_tap(|| flood_then_serve("polling"));
    }
}

/// The rate of the flood an established connection must survive: enough to
/// keep the SYN backlog full (so half-open connections are dropped all
/// along), not so much that the tap's queue overflows, since a NIC that
/// drops frames drops the echo's segments with the SYNs and no server
/// design can help that.
const FLOOD_PPS: u64 = 40_000;

#[test]
fn an_established_echo_connection_keeps_echoing_during_a_syn_flood() {
    if !require_root_or_skip("an_established_echo_connection_keeps_echoing_during_a_syn_flood") {
        return;
    }
    let _serial = util::serial();
    with_tap(|| {
        let run = Running::start(&["--apps", "tcp-echo", "--mode", "polling"]);
        let mut conn = TcpStream::connect_timeout(&sock(7).into(), Duration::from_secs(5))
            .expect("connect before the flood");
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let stop = AtomicBool::new(false);
        let limit = Duration::from_secs(60);
        std::thread::scope(|s| {
            let flood = s.spawn(|| spoofed_flood(&[7], Some(FLOOD_PPS), &stop, limit));
            let t = Instant::now();
            std::thread::sleep(Duration::from_millis(300));
            let half_open_seen = run.int("user.tcp_echo.half_open");
            for i in 0..20u32 {
                let msg = format!("message {i:04}");
                conn.write_all(msg.as_bytes())
                    .expect("write during the flood");
                let mut got = vec![0; msg.len()];
                conn.read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("echo {i} during the flood: {e}"));
                assert_eq!(got, msg.as_bytes());
                std::thread::sleep(Duration::from_millis(50));
            }
            let dropped = run.int("user.tcp_echo.syn_dropped");
            let missed = run.int("dev.tap0.rx_missed");
            assert!(t.elapsed() < limit, "the flood ended before the echoes");
            stop.store(true, Ordering::Relaxed);
            let sent = flood.join().expect("flood");
            println!(
                "{sent} SYNs in {:?}, {half_open_seen} half-open seen, {dropped} dropped, \
                 {missed} frames missed by the NIC",
                t.elapsed()
            );
            assert!(sent > 10_000, "flood too slow: {sent}");
            assert!(
                dropped > 0,
                "the flood never filled the SYN backlog: nothing was tested"
            );
            assert!(
                run.int("user.tcp_echo.syn_backlog") >= half_open_seen,
                "half-open connections beyond syn_backlog"
            );
        });
        assert_eq!(run.int("user.tcp_echo.active"), 1, "the echo connection");
        drop(conn);
        let s = run.stop();
        assert!(s.int("user.tcp_echo.syn_received") > 100, "{}", s.text);
        assert_eq!(s.int("user.tcp_echo.accepted"), 1, "{}", s.text);
    });
}

#[test]
fn a_half_open_connection_gives_up_after_syn_timeout() {
    if !require_root_or_skip("a_half_open_connection_gives_up_after_syn_timeout") {
        return;
    }
    with_tap(|| {
        // Two seconds: time enough, on a loaded host, to see them held.
        let run = Running::start(&[
            "--apps",
            "http",
            "--sysctl",
            "user.http.syn_timeout_ms=2000",
        ]);
        let stop = AtomicBool::new(false);
        // Ten spoofed SYNs, paced: ten half-open connections nobody completes.
        let sent = spoofed_flood(&[80], Some(100), &stop, Duration::from_millis(95));
        assert!(sent >= 5, "{sent}");
        let held = util::eventually(Duration::from_millis(1500), || {
            let n = run.int("user.http.half_open");
            (n > 0).then_some(n)
        });
        assert!(held.is_some(), "no half-open connection seen");
        // They go (without the timeout they would stay): the timing is
        // not what is tested, so the deadline is generous.
        let gone = util::eventually(Duration::from_secs(20), || {
            (run.int("user.http.half_open") == 0).then_some(())
        });
        assert!(
            gone.is_some(),
            "half-open connections outlived syn_timeout_ms"
        );
        assert_eq!(
            run.int("user.http.timeouts"),
            run.int("user.http.syn_received")
        );
        assert_eq!(run.int("user.http.active"), 0);
        run.stop();
    });
}
