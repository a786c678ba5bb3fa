//! `pollsim run --pcap FILE`: what the kernel saw, in a file tshark reads.
//! A real run in a private namespace (an HTTP request, a TCP echo, a UDP
//! burst that overflows the NIC's ring), and a `--sim` run on virtual time.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use util::{ADDR, MAC, Running, lab, require_root_or_skip, run_pollsim, with_tap};

fn sock(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(lab::bench_addr(ADDR), port)
}

/// `tshark -r FILE -Y FILTER`: the packet lines it prints.
#[track_caller]
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-Y", filter]);
    if !fields.is_empty() {
        cmd.args(["-T", "fields"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
    }
    let out = cmd.output().expect("tshark (apt-get install tshark)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark -Y {filter}: {err}");
    assert!(!err.contains("appears to be damaged"), "{err}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn temp_file(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("pollsim-{tag}-{}.pcapng", std::process::id()))
}

#[test]
fn a_capture_of_http_echo_and_a_udp_burst_decodes_in_tshark() {
    let test = "a_capture_of_http_echo_and_a_udp_burst_decodes_in_tshark";
    if !require_root_or_skip(test) || !util::require_tool_or_skip(test, "tshark", "tshark") {
        return;
    }
    let _serial = util::serial();
    let file = temp_file("run");
    let file_arg = file.to_str().expect("a UTF-8 temp path").to_string();
    with_tap(|| {
        lab::static_neigh("tap0", ADDR, MAC).expect("neighbour");
        let run = Running::start(&[
            "--mode",
            "interrupt",
            "--pcap",
            &file_arg,
            "--sysctl",
            "user.udp_sink.work_ns=20000",
        ]);
        let mut s = TcpStream::connect_timeout(&sock(80).into(), Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /captured HTTP/1.0\r\nHost: 198.18.0.2\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        let mut e = TcpStream::connect_timeout(&sock(7).into(), Duration::from_secs(5)).unwrap();
        e.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        e.write_all(b"echo through the capture").unwrap();
        let mut got = [0u8; 24];
        e.read_exact(&mut got).unwrap();
        drop(e);
        std::thread::sleep(Duration::from_millis(200));
        const N: u64 = 30_000;
        let b = lab::udp_blast(sock(9), 18, N, None, Duration::from_secs(20)).expect("blast");
        assert_eq!(b.sent, N);
        std::thread::sleep(Duration::from_millis(500));
        let sum = run.stop();
        let missed = sum.int("dev.tap0.rx_missed");
        let udp_in = sum.int("net.netisr.udp");
        let later =
            sum.int("net.inet.ip.intr_queue_drops") + sum.int("net.netisr.udp_sockbuf_drops");
        assert!(
            missed > 0,
            "the burst must overflow the NIC's ring:\n{}",
            sum.text
        );
        assert!(
            later > 0,
            "the burst must be dropped after the NIC too:\n{}",
            sum.text
        );

        // HTTP: the request and the response, decoded.
        let req = tshark(
            &file,
            "http.request",
            &["http.request.method", "http.request.uri"],
        );
        assert_eq!(req, ["GET\t/captured"], "{req:?}");
        let resp = tshark(&file, "http.response", &["http.response.code"]);
        assert_eq!(resp, ["200"]);
        // TCP echo: the bytes both ways.
        let echo = tshark(&file, "tcp.port == 7 && tcp.len > 0", &["tcp.payload"]);
        let hex: String = b"echo through the capture"
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(echo.len(), 2, "{echo:?}");
        assert!(echo.iter().all(|p| p.replace(':', "") == hex), "{echo:?}");
        // UDP: every datagram the NIC took, those dropped later included;
        // none of those the NIC dropped itself.
        let udp = tshark(&file, "udp.dstport == 9", &["frame.interface_name"]).len() as u64;
        // net.netisr.udp counts what reached the stack; ipintrq dropped
        // the rest of what the NIC took, and those frames are in the file.
        let ipq = sum.int("net.inet.ip.intr_queue_drops");
        assert_eq!(udp, udp_in + ipq, "captured UDP vs taken from the ring");
        assert_eq!(udp + missed, N, "captured + dropped by the NIC = offered");
        // Directions and totals: everything taken in, everything sent out.
        let inbound = tshark(&file, "frame.packet_flags_direction == 1", &[]).len() as u64;
        let outbound = tshark(&file, "frame.packet_flags_direction == 2", &[]).len() as u64;
        assert_eq!(inbound, sum.int("dev.tap0.rx_packets"));
        assert_eq!(outbound, sum.int("dev.tap0.tx_packets"));
        let names = tshark(&file, "frame.number == 1", &["frame.interface_name"]);
        assert_eq!(names, ["tap0"]);
    });
    let _ = std::fs::remove_file(&file);
}

/// Whether `resp` holds a whole response (head and Content-Length bytes).
fn complete(resp: &[u8]) -> bool {
    let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    resp.len() >= end + 4 + len
}

/// Connections end as TCP says, whoever closes first: the server acknowledges
/// the client's FIN before it forgets the connection (TIME-WAIT is cut
/// short, not the last ACK), so no FIN is retransmitted and no RST is sent.
#[test]
fn connections_close_without_a_reset_or_a_retransmitted_fin() {
    let test = "connections_close_without_a_reset_or_a_retransmitted_fin";
    if !require_root_or_skip(test) || !util::require_tool_or_skip(test, "tshark", "tshark") {
        return;
    }
    let _serial = util::serial();
    let file = temp_file("close");
    let file_arg = file.to_str().expect("a UTF-8 temp path").to_string();
    with_tap(|| {
        lab::static_neigh("tap0", ADDR, MAC).expect("neighbour");
        for mode in ["interrupt", "polling"] {
            let run = Running::start(&["--mode", mode, "--pcap", &file_arg]);
            for i in 0..10 {
                // The server closes first (HTTP/1.0, no keep-alive).
                let mut s =
                    TcpStream::connect_timeout(&sock(80).into(), Duration::from_secs(5)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(format!("GET /{i} HTTP/1.0\r\n\r\n").as_bytes())
                    .unwrap();
                let mut page = String::new();
                s.read_to_string(&mut page).unwrap();
                assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
                drop(s);
                // The client closes first (keep-alive, then echo).
                let mut s =
                    TcpStream::connect_timeout(&sock(80).into(), Duration::from_secs(5)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                // All of the response: unread data would make the close a RST.
                let mut resp = Vec::new();
                let mut buf = [0u8; 4096];
                while !complete(&resp) {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "closed mid-response");
                    resp.extend_from_slice(&buf[..n]);
                }
                assert!(resp.starts_with(b"HTTP/1.1 200 OK"));
                drop(s);
                let mut e =
                    TcpStream::connect_timeout(&sock(7).into(), Duration::from_secs(5)).unwrap();
                e.write_all(b"bye").unwrap();
                let mut got = [0u8; 3];
                e.read_exact(&mut got).unwrap();
                drop(e);
            }
            // A lost last ACK shows as the client's FIN sent again after
            // its RTO (200 ms at least), and answered with a RST.
            std::thread::sleep(Duration::from_millis(700));
            let mut active = 0;
            let closed = util::eventually(Duration::from_secs(30), || {
                active = run.int("user.http.active");
                (active == 0).then_some(())
            });
            assert!(
                closed.is_some(),
                "{mode}: {active} http connections still active"
            );
            let sum = run.stop();
            assert_eq!(sum.int("user.http.active"), 0, "{}", sum.text);
            let rst = tshark(
                &file,
                "tcp.flags.reset == 1",
                &["tcp.srcport", "tcp.dstport"],
            );
            let again = tshark(&file, "tcp.analysis.retransmission", &["tcp.srcport"]);
            let fins = tshark(&file, "tcp.flags.fin == 1", &[]).len();
            assert!(fins >= 60, "{mode}: {fins} FINs captured");
            assert!(rst.is_empty(), "{mode}: resets {rst:?}");
            assert!(again.is_empty(), "{mode}: retransmissions {again:?}");
        }
    });
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_sim_capture_is_on_virtual_time_and_bounded() {
    let test = "a_sim_capture_is_on_virtual_time_and_bounded";
    if !util::require_tool_or_skip(test, "tshark", "tshark") {
        return;
    }
    let file = temp_file("sim");
    let path = file.to_str().expect("a UTF-8 temp path");
    let (code, out, err) = run_pollsim(&[
        "run",
        "--sim",
        "--sim-rate",
        "100k",
        "--duration",
        "0.05",
        "--pcap",
        path,
    ]);
    assert_eq!(code, 0, "{err}");
    let s = util::Summary::parse(&out);
    let frames = tshark(&file, "udp.dstport == 9", &["frame.time_epoch"]);
    assert_eq!(frames.len() as u64, s.int("dev.tap0.rx_packets"));
    // The simulation starts at 1 s of virtual time and ran 0.05 s.
    let t: Vec<f64> = frames.iter().map(|l| l.parse().expect("a time")).collect();
    assert!(t.iter().all(|&x| (1.0..1.06).contains(&x)), "{:?}", &t[..3]);
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "timestamps go back");
    assert!(
        err.contains(&format!("captured {} frames", frames.len())),
        "{err}"
    );

    // A small limit: the file stays under it, the rest is counted.
    let (code, _, err) = run_pollsim(&[
        "run",
        "--sim",
        "--sim-rate",
        "100k",
        "--duration",
        "0.05",
        "--pcap",
        path,
        "--pcap-limit",
        "8k",
    ]);
    assert_eq!(code, 0, "{err}");
    let size = std::fs::metadata(&file).expect("the capture").len();
    assert!(size <= 8 * 1024 + 1024, "{size} bytes for an 8k limit");
    assert!(!err.contains(" 0 over --pcap-limit"), "{err}");
    let kept = tshark(&file, "frame", &[]).len();
    assert!(
        kept > 10 && (kept as u64) < s.int("dev.tap0.rx_packets"),
        "{kept}"
    );
    let _ = std::fs::remove_file(&file);
}
