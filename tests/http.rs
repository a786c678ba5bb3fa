//! The http app as HTTP/1.1 clients see it, against a real tap in a private
//! network namespace: persistent connections (curl reuses one for two
//! URLs), pipelined requests answered in order, error statuses, and wrk
//! without socket errors in both modes.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::process::Command;
use std::time::Duration;

use util::{ADDR, Running, lab, require_root_or_skip, with_tap};

fn connect() -> TcpStream {
    let addr = SocketAddrV4::new(lab::bench_addr(ADDR), 80);
    let s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

/// One response: (status line, headers lower-cased, body).
fn response(r: &mut BufReader<TcpStream>) -> (String, Vec<(String, String)>, String) {
    let mut status = String::new();
    r.read_line(&mut status).expect("a status line");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("a header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("name: value");
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    (status.trim_end().to_string(), headers, String::new())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A response with its body (GET): Content-Length bytes.
fn full_response(r: &mut BufReader<TcpStream>) -> (String, Vec<(String, String)>, String) {
    let (status, headers, _) = response(r);
    let len: usize = header(&headers, "content-length").parse().expect("length");
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("the body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn requests_shown(body: &str) -> u64 {
    body.split("requests: ")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {body}"))
}

/// Reads until the server closes (EOF): nothing more may come.
#[track_caller]
fn expect_eof(r: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("the server closes");
    assert!(
        rest.is_empty(),
        "after close: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn keep_alive_pipelining_and_errors() {
    if !require_root_or_skip("keep_alive_pipelining_and_errors") {
        return;
    }
    // Not beside the wrk test: its figures are about one instance's CPU.
    let _serial = util::serial();
    with_tap(|| {
        let run = Running::start(&["--apps", "http"]);

        // curl with two URLs on one command line reuses the connection.
        let out = Command::new("curl")
            .args(["-sv", "-m", "5", "-o", "/dev/null", "-o", "/dev/null"])
            .args(["http://198.18.0.2/", "http://198.18.0.2/two"])
            .output()
            .expect("curl");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("existing connection"), "no reuse: {err}");
        assert_eq!(run.int("user.http.accepted"), 1, "{err}");
        assert_eq!(run.int("user.http.requests"), 2);
        assert_eq!(run.int("user.http.reused"), 1);

        // Three pipelined requests in one write: answered in order, the
        // HEAD without a body, the last closing as asked.
        let s = connect();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let (st1, h1, b1) = full_response(&mut r);
        assert_eq!(st1, "HTTP/1.1 200 OK");
        assert_eq!(header(&h1, "connection"), "keep-alive");
        let (st2, h2, _) = response(&mut r);
        assert_eq!(st2, "HTTP/1.1 200 OK");
        assert!(header(&h2, "content-length").parse::<usize>().unwrap() > 0);
        let (st3, h3, b3) = full_response(&mut r);
        assert_eq!(st3, "HTTP/1.1 200 OK");
        assert_eq!(header(&h3, "connection"), "close");
        assert_eq!(requests_shown(&b3), requests_shown(&b1) + 2, "out of order");
        expect_eof(&mut r);

        // Error statuses, each closing the connection.
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(3000));
        let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
        let many_headers = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let cases: [(&[u8], &str); 4] = [
            (b"\x16\x03\x01 not http\r\n\r\n", "400"),
            (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", "405"),
            (long_target.as_bytes(), "414"),
            (many_headers.as_bytes(), "431"),
        ];
        for (req, code) in cases {
            let s = connect();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            w.write_all(req).unwrap();
            let (status, headers, _) = full_response(&mut r);
            assert!(status.starts_with(&format!("HTTP/1.1 {code} ")), "{status}");
            assert_eq!(header(&headers, "connection"), "close");
            if code == "405" {
                assert_eq!(header(&headers, "allow"), "GET, HEAD");
            }
            expect_eof(&mut r);
        }
        assert_eq!(run.int("user.http.bad_requests"), 4);

        // keepalive_max bounds the requests of one connection.
        assert_eq!(run.sysctl(&["user.http.keepalive_max=2"]).0, 0);
        let s = connect();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
            .unwrap();
        assert_eq!(header(&full_response(&mut r).1, "connection"), "keep-alive");
        assert_eq!(header(&full_response(&mut r).1, "connection"), "close");
        expect_eof(&mut r);

        // An idle connection is aborted after keepalive_timeout_ms.
        assert_eq!(run.sysctl(&["user.http.keepalive_timeout_ms=300"]).0, 0);
        let mut s = connect();
        let mut buf = [0u8; 16];
        let t = std::time::Instant::now();
        let got = s.read(&mut buf);
        assert!(
            matches!(got, Ok(0) | Err(_)) && t.elapsed() < Duration::from_secs(4),
            "an idle connection stayed open: {got:?} after {:?}",
            t.elapsed()
        );
        let sum = run.stop();
        assert!(sum.text.contains("balance: ok"), "{}", sum.text);
    });
}

/// wrk for 4 s against an instance in `mode` with `extra` arguments: no
/// socket error at all (a SYN that finds its shard's listeners taken is
/// dropped as a real kernel's listen queue does, and retransmitted, never
/// reset: wrk would count the RST as a write error).
fn wrk_in(mode: &str, extra: &[&str]) {
    let mut args = vec!["--apps", "http", "--mode", mode];
    args.extend_from_slice(extra);
    let run = Running::start(&args);
    let out = Command::new("wrk")
        .args(["-t1", "-c16", "-d4s", "http://198.18.0.2/"])
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Requests/sec"), "{text}");
    assert!(
        !text.contains("Socket errors") && !text.contains("Non-2xx"),
        "{mode} {extra:?}: {text}"
    );
    println!("{mode} {extra:?}: {text}");
    let s = run.stop();
    assert!(
        s.int("user.http.reused") > s.int("user.http.accepted") / 2,
        "{}",
        s.text
    );
    println!(
        "{mode} {extra:?}: listen_drops {}",
        s.int("net.netisr.listen_drops")
    );
}

#[test]
fn wrk_sees_no_socket_errors_in_either_mode() {
    if !require_root_or_skip("wrk_sees_no_socket_errors_in_either_mode")
        || !util::require_tool_or_skip("wrk_sees_no_socket_errors_in_either_mode", "wrk", "wrk")
    {
        return;
    }
    let _serial = util::serial();
    with_tap(|| {
        wrk_in("interrupt", &[]);
        wrk_in("polling", &[]);
        // A new connection every other request: about 18,000 SYNs, in
        // bursts of 16 that outrun the app's replenishing of listeners.
        wrk_in("polling", &["--sysctl", "user.http.keepalive_max=2"]);
    });
}
