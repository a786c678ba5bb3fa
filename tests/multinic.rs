//! Several interfaces, as root in a private network namespace with tap0
//! (198.18.0.0/24) and tap1 (198.18.1.0/24): polling's round robin splits
//! its budget evenly between two flooded interfaces, with the frame
//! accounting balanced per interface and in total; tcp-echo and http answer
//! on both interfaces at once, in both modes, while `dev.tap1.polling` is
//! switched at run time, with no reset and no lost connection; and
//! `kern.polling.handlers` counts the polling interfaces.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use util::{Running, lab, require_root_or_skip, run_pollsim, serial};

/// The two interfaces: (tap, pollsim's CIDR, kernel side, pollsim's MAC).
const IFS: [(&str, &str, &str, [u8; 6]); 2] = [
    (
        "tap0",
        "198.18.0.2/24",
        "198.18.0.1/24",
        [2, 0, 198, 18, 0, 2],
    ),
    (
        "tap1",
        "198.18.1.2/24",
        "198.18.1.1/24",
        [2, 0, 198, 18, 1, 2],
    ),
];

fn addr(i: usize) -> &'static str {
    IFS[i].1.split('/').next().unwrap()
}

/// Run `f` in a fresh private namespace with tap0 and tap1 set up, each
/// with a permanent neighbour entry for pollsim (no ARP in the counts).
fn with_two_taps<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    lab::in_new_netns(|| {
        for (tap, cidr, kernel, mac) in IFS {
            lab::setup_tap(tap, kernel).expect("tap set-up in the private namespace");
            lab::static_neigh(tap, cidr.split('/').next().unwrap(), mac).expect("neighbour");
        }
        f()
    })
    .expect("a private network namespace")
}

fn both_ifs() -> Vec<String> {
    IFS.iter()
        .flat_map(|(tap, cidr, ..)| ["--if".to_string(), format!("{tap}={cidr}")])
        .collect()
}

fn start(extra: &[&str]) -> Running {
    let ifs = both_ifs();
    let mut args: Vec<&str> = ifs.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    Running::start(&args)
}

#[test]
fn two_flooded_interfaces_split_polling_evenly_and_every_frame_is_accounted_for() {
    if !require_root_or_skip("two_flooded_interfaces_split_polling_evenly") {
        return;
    }
    let _guard = serial();
    with_two_taps(|| {
        // burst_max at its minimum: at most 10 frames per handler per tick,
        // 10k/s each, far below what each flood offers, so both rings stay
        // full and what each interface gets is what the round robin gives.
        let run = start(&[
            "--mode",
            "polling",
            "--apps",
            "udp-sink",
            "--sysctl",
            "kern.polling.burst_max=10",
        ]);
        assert_eq!(run.int("kern.polling.handlers"), 2);
        let floods: Vec<_> = (0..2)
            .map(|i| {
                let mac = IFS[i].3.map(|b| format!("{b:02x}")).join(":");
                let dst = format!("{}:9", addr(i));
                Command::new(env!("CARGO_BIN_EXE_pollsim"))
                    .env(util::PROFILE_ENV.0, util::PROFILE_ENV.1)
                    .args([
                        "flood",
                        "--if",
                        IFS[i].0,
                        "--rate",
                        "60k",
                        "--duration",
                        "2s",
                    ])
                    .args(["--dst", &dst, "--dst-mac", &mac])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn pollsim flood")
            })
            .collect();
        for f in floods {
            let out = f.wait_with_output().expect("flood");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(300)); // rings drain
        let s = run.stop();
        let taken = |t: &str| s.int(&format!("dev.{t}.rx_packets"));
        let (a, b) = (taken("tap0"), taken("tap1"));
        for t in ["tap0", "tap1"] {
            assert!(
                s.int(&format!("dev.{t}.rx_missed")) > 0,
                "{t} was not overloaded:\n{}",
                s.text
            );
        }
        eprintln!("polling took {a} frames from tap0, {b} from tap1");
        assert!(a > 1000 && b > 1000, "{a} {b}");
        assert!(
            a.abs_diff(b) * 10 <= a.max(b),
            "polling split {a} (tap0) vs {b} (tap1): more than 10 % apart"
        );
        // The accounting balances in total and per interface, and the
        // interfaces' shares add up to the total.
        assert!(
            s.text.contains("balance: ok (every frame accounted for)"),
            "{}",
            s.text
        );
        let rows: Vec<Vec<&str>> = s
            .text
            .lines()
            .skip_while(|l| !l.starts_with("per interface:"))
            .skip(1)
            .take(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 2, "{}", s.text);
        for (row, (tap, ..)) in rows.iter().zip(IFS) {
            assert_eq!(row[0], tap, "{}", s.text);
            assert_eq!(*row.last().unwrap(), "ok", "{tap}:\n{}", s.text);
        }
        let offered: u64 = rows.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
        let total = s
            .text
            .lines()
            .find(|l| l.trim_start().starts_with("offered to the NICs"))
            .and_then(|l| l.split_whitespace().nth(4))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("the total offered");
        assert_eq!(offered, total, "{}", s.text);
        for t in ["tap0", "tap1"] {
            let p = |n: &str| s.int(&format!("dev.{t}.{n}"));
            assert_eq!(
                p("rx_packets"),
                p("ipintrq_drops") + p("ipintrq_len") + p("stack_frames"),
                "{t}"
            );
        }
    });
}

/// A client of one link: a persistent echo connection and a persistent
/// HTTP/1.1 connection, used in turn, plus a fresh connection of each kind
/// every round; any error, short answer or reset fails.
fn client(i: usize, stop: &AtomicBool) -> Result<u32, String> {
    let at = |port| SocketAddrV4::new(lab::bench_addr(addr(i)), port);
    let connect = |port| -> Result<TcpStream, String> {
        let s = TcpStream::connect_timeout(&at(port).into(), Duration::from_secs(2))
            .map_err(|e| format!("{}:{port} connect: {e}", addr(i)))?;
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        Ok(s)
    };
    let echo = |s: &mut TcpStream, n: u32| -> Result<(), String> {
        let line = format!("link {i} line {n}\n");
        s.write_all(line.as_bytes())
            .map_err(|e| format!("echo write: {e}"))?;
        let mut back = vec![0; line.len()];
        s.read_exact(&mut back)
            .map_err(|e| format!("echo read: {e}"))?;
        (back == line.as_bytes())
            .then_some(())
            .ok_or_else(|| format!("echo mismatch: {back:?}"))
    };
    let get = |r: &mut BufReader<TcpStream>, close: bool| -> Result<(), String> {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\n{}\r\n",
            addr(i),
            if close { "Connection: close\r\n" } else { "" }
        );
        r.get_mut()
            .write_all(req.as_bytes())
            .map_err(|e| format!("http write: {e}"))?;
        let mut status = String::new();
        r.read_line(&mut status)
            .map_err(|e| format!("http read: {e}"))?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!("http status: {status:?}"));
        }
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).map_err(|e| format!("http head: {e}"))?;
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().map_err(|_| format!("length {h:?}"))?;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)
            .map_err(|e| format!("http body: {e}"))
    };
    let mut echo_conn = connect(7)?;
    let mut http_conn = BufReader::new(connect(80)?);
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) {
        echo(&mut echo_conn, rounds)?;
        get(&mut http_conn, false)?;
        echo(&mut connect(7)?, rounds)?;
        get(&mut BufReader::new(connect(80)?), true)?;
        rounds += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(rounds)
}

fn serve_both_links_while_tap1_switches(mode: &str) {
    with_two_taps(|| {
        // Keep-alive without a request limit: the persistent connection
        // lasts the whole test.
        let run = start(&[
            "--mode",
            mode,
            "--apps",
            "tcp-echo,http",
            "--sysctl",
            "user.http.keepalive_max=1000000",
        ]);
        let stop = &AtomicBool::new(false);
        let results = std::thread::scope(|s| {
            let clients: Vec<_> = (0..2).map(|i| s.spawn(move || client(i, stop))).collect();
            let until = Instant::now() + Duration::from_secs(3);
            let mut on = mode == "interrupt";
            while Instant::now() < until {
                let action = if on { "polling" } else { "-polling" };
                let (code, _, err) =
                    run_pollsim(&["ifconfig", "--name", &run.name, "tap1", action]);
                assert_eq!(code, 0, "ifconfig tap1 {action}: {err}");
                assert_eq!(run.int("dev.tap1.polling"), u64::from(on));
                on = !on;
                std::thread::sleep(Duration::from_millis(150));
            }
            stop.store(true, Ordering::Relaxed);
            clients
                .into_iter()
                .map(|c| c.join().expect("client"))
                .collect::<Vec<_>>()
        });
        let s = run.stop();
        for (i, r) in results.into_iter().enumerate() {
            let rounds = r.unwrap_or_else(|e| panic!("{mode}, link {i}: {e}\n{}", s.text));
            eprintln!("{mode}, link {i}: {rounds} rounds");
            assert!(rounds >= 5, "{mode}, link {i}: only {rounds} rounds");
        }
        for app in ["tcp_echo", "http"] {
            assert_eq!(s.int(&format!("user.{app}.refused")), 0, "{app}");
            assert_eq!(s.int(&format!("user.{app}.resets")), 0, "{app}");
        }
        for t in ["tap0", "tap1"] {
            assert!(s.int(&format!("dev.{t}.stack_tx")) > 0, "{t} sent nothing");
        }
    });
}

#[test]
fn tcp_echo_and_http_answer_on_both_links_while_tap1_polling_switches() {
    if !require_root_or_skip("tcp_echo_and_http_answer_on_both_links") {
        return;
    }
    let _guard = serial();
    for mode in ["polling", "interrupt"] {
        serve_both_links_while_tap1_switches(mode);
    }
}

#[test]
fn polling_handlers_count_the_polling_interfaces() {
    if !require_root_or_skip("polling_handlers_count_the_polling_interfaces") {
        return;
    }
    with_two_taps(|| {
        let run = start(&["--mode", "polling", "--apps", "http"]);
        assert_eq!(run.int("kern.polling.handlers"), 2);
        let (code, out, err) = run_pollsim(&["ifconfig", "--name", &run.name, "tap1", "-polling"]);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains("POLLING"), "{out}");
        assert_eq!(run.int("kern.polling.handlers"), 1);
        assert_eq!(run.int("dev.tap0.polling"), 1);
        assert_eq!(run.int("dev.tap1.polling"), 0);
        let (code, _, err) = run_pollsim(&["ifconfig", "--name", &run.name, "tap0", "-polling"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(run.int("kern.polling.handlers"), 0);
        run.stop();
    });
}
