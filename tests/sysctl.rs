//! `pollsim sysctl`, `ifconfig` and `stat` against running instances, and
//! the control socket under abuse and load. Root, private namespaces.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddrV4;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use util::{MAC, Running, lab, require_root_or_skip, run_pollsim, unique_name, with_tap};

fn flood(secs: u64) -> lab::Blast {
    let dst: SocketAddrV4 = "198.18.0.2:9".parse().unwrap();
    lab::udp_blast(dst, 18, u64::MAX, None, Duration::from_secs(secs)).expect("blast")
}

fn user_share(a: &[u64], b: &[u64]) -> f64 {
    let d: Vec<u64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    d[0] as f64 * 100.0 / d.iter().sum::<u64>().max(1) as f64
}

/// The middle value (the upper one of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Windows of a second at user_frac=20 and =80, alternated this many times,
/// so that a moment of host noise moves one window, not the verdict.
const PAIRS: usize = 3;

#[test]
fn knobs_change_what_a_flooded_kernel_does() {
    if !require_root_or_skip("knobs_change_what_a_flooded_kernel_does") {
        return;
    }
    let _serial = util::serial();
    with_tap(|| {
        lab::static_neigh("tap0", "198.18.0.2", MAC).unwrap();
        // A spinning idle loop and the stall compensation (the default)
        // keep the host's share out of kern.cp_time.
        let run = Running::start(&[
            "--apps",
            "udp-sink",
            "--sysctl",
            "user.udp_sink.work_ns=20000",
            "--sysctl",
            "kern.polling.burst_max=1000",
            "--sysctl",
            "machdep.idle=spin",
        ]);
        std::thread::scope(|s| {
            let sender = s.spawn(|| flood(2 + PAIRS as u64 * 3));
            // (user share, burst) over a second at `user_frac`.
            let window = |frac: &str| {
                assert_eq!(
                    run.sysctl(&[&format!("kern.polling.user_frac={frac}")]).0,
                    0
                );
                std::thread::sleep(Duration::from_millis(400));
                let a = run.cp_time();
                std::thread::sleep(Duration::from_millis(1000));
                (
                    user_share(&a, &run.cp_time()),
                    run.int("kern.polling.burst") as f64,
                )
            };
            let (mut low, mut high) = (Vec::new(), Vec::new());
            for _ in 0..PAIRS {
                low.push(window("20"));
                high.push(window("80"));
            }
            let med =
                |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(v.iter().map(f).collect());
            let (low_user, burst_low) = (med(&low, |w| w.0), med(&low, |w| w.1));
            let (high_user, burst_high) = (med(&high, |w| w.0), med(&high, |w| w.1));
            // With 80% reserved for the user, the kernel may take only 20%
            // of each tick: burst falls and the user gets more.
            assert!(
                high_user > low_user + 5.0 && burst_high * 2.0 < burst_low,
                "medians of {PAIRS}: user share {low_user:.1}% / burst {burst_low} at user_frac=20, \
                 {high_user:.1}% / {burst_high} at 80 (windows: {low:?} / {high:?})"
            );
            // Interrupts take over when polling is switched off.
            let (i0, p0) = (run.int("dev.tap0.interrupts"), run.int("dev.tap0.polls"));
            assert_eq!(
                run.sysctl(&["dev.tap0.polling=0"]).1,
                "dev.tap0.polling: 1 -> 0\n"
            );
            std::thread::sleep(Duration::from_millis(500));
            let (i1, p1) = (run.int("dev.tap0.interrupts"), run.int("dev.tap0.polls"));
            assert!(i1 > i0, "no interrupts after dev.tap0.polling=0");
            assert!(p1 - p0 < 2_000, "polls went on: {p0} -> {p1}");
            sender.join().unwrap();
        });
        let s = run.stop();
        assert!(s.text.contains("balance: ok"), "{}", s.text);
    });
}

/// Node names in the knob table of docs/knobs.md, with `a, b, c`
/// shorthand expanded.
fn knob_table_nodes() -> Vec<String> {
    let knobs = include_str!("../docs/knobs.md");
    let mut names = Vec::new();
    for line in knobs
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains('.'))
    {
        let cell = line
            .split('|')
            .nth(1)
            .unwrap_or_default()
            .trim()
            .replace("\\<if\\>", "tap0");
        let mut parts = cell.split(", ");
        let Some(first) = parts.next().filter(|f| f.contains('.') && !f.contains(' ')) else {
            continue;
        };
        let prefix = &first[..first.rfind('.').unwrap()];
        names.push(first.to_string());
        names.extend(parts.map(|p| format!("{prefix}.{p}")));
    }
    names
}

#[test]
fn sysctl_a_lists_every_node_of_the_knob_table_and_no_other() {
    if !require_root_or_skip("sysctl_a_lists_every_node_of_the_knob_table") {
        return;
    }
    with_tap(|| {
        let run = Running::start(&[]);
        let (code, out, err) = run.sysctl(&["-aN"]);
        assert_eq!(code, 0, "{err}");
        let live: Vec<&str> = out.lines().collect();
        let documented = knob_table_nodes();
        for n in &live {
            assert!(
                documented.iter().any(|d| d == n),
                "{n} is not in the table of docs/knobs.md"
            );
        }
        // hw.sim.* exist only on virtual time (tests/sim.rs checks them).
        for d in documented.iter().filter(|d| !d.starts_with("hw.sim.")) {
            assert!(
                live.contains(&d.as_str()),
                "docs/knobs.md documents {d}, which does not exist"
            );
        }
        // Descriptions are FreeBSD's.
        let (_, d, _) = run.sysctl(&["-d", "kern.polling.burst_max", "kern.polling.reg_frac"]);
        assert_eq!(
            d,
            "kern.polling.burst_max: Max Polling burst size\n\
             kern.polling.reg_frac: Every this many cycles check registers\n"
        );
        run.stop();
    });
}

#[test]
fn two_named_instances_coexist_and_a_live_name_is_refused() {
    if !require_root_or_skip("two_named_instances_coexist") {
        return;
    }
    with_tap(|| {
        lab::setup_tap("tap1", "198.18.1.1/24").unwrap();
        let a = Running::start(&["--hz", "500"]);
        let b = Running::start_named(
            &unique_name("b"),
            &["--if", "tap1", "--addr", "198.18.1.2/24", "--hz", "2000"],
        );
        assert_eq!(a.int("kern.hz"), 500);
        assert_eq!(b.int("kern.hz"), 2000);
        let (code, _, err) = run_pollsim(&["run", "--if", "tap1", "--name", &a.name]);
        assert_eq!(code, 2);
        assert!(err.contains("already running"), "{err}");
        assert_eq!(
            a.int("kern.hz"),
            500,
            "the refused start must not disturb the live one"
        );
        a.stop();
        b.stop();
    });
}

#[test]
fn a_stale_socket_is_replaced() {
    if !require_root_or_skip("a_stale_socket_is_replaced") {
        return;
    }
    with_tap(|| {
        let name = unique_name("stale");
        let path = pollsim::ctl::socket_path(&name);
        std::fs::create_dir_all(pollsim::ctl::RUN_DIR).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // a crashed run's leftover
        assert!(path.exists());
        let run = Running::start_named(&name, &[]);
        assert_eq!(run.int("kern.hz"), 1000);
        let mode = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        run.stop();
        assert!(!path.exists(), "the socket must be removed on a clean exit");
    });
}

fn reply(r: &mut BufReader<UnixStream>) -> serde_json::Value {
    let mut line = String::new();
    r.read_line(&mut line).expect("a reply line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn malformed_requests_get_errors_and_the_instance_keeps_serving() {
    if !require_root_or_skip("malformed_requests_get_errors") {
        return;
    }
    with_tap(|| {
        let run = Running::start(&[]);
        let path = pollsim::ctl::socket_path(&run.name);
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let bad: [&[u8]; 5] = [
            b"\x00\xff\xfe garbage \x01\n",
            b"{\"v\":1,\"op\":\"get\",\"name\":\n",
            b"{\"v\":9,\"op\":\"get\",\"name\":\"kern.hz\"}\n",
            b"{\"v\":1,\"op\":\"explode\"}\n",
            b"not json at all\n",
        ];
        for req in bad {
            s.write_all(req).unwrap();
            let v = reply(&mut r);
            assert_eq!(v["ok"], false, "{req:?} -> {v}");
        }
        let mut huge = vec![b'x'; 1 << 20];
        huge.push(b'\n');
        s.write_all(&huge).unwrap();
        assert_eq!(reply(&mut r)["error"]["kind"], "too_large");
        s.write_all(b"{\"v\":1,\"op\":\"get\",\"name\":\"kern.hz\"}\n")
            .unwrap();
        let v = reply(&mut r);
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["nodes"][0]["value"], 1000);
        run.stop();
    });
}

#[test]
fn idle_and_half_line_clients_cannot_lock_out_sysctl() {
    if !require_root_or_skip("idle_and_half_line_clients_cannot_lock_out_sysctl") {
        return;
    }
    let _serial = util::serial();
    with_tap(|| {
        let run = Running::start(&["--apps", "udp-sink"]);
        let path = pollsim::ctl::socket_path(&run.name);
        // 200 clients that send nothing and 50 that send half a line, all
        // held open: far more than the control socket's slots.
        let mut held = Vec::new();
        for i in 0..250 {
            let mut s = UnixStream::connect(&path).expect("connect");
            if i >= 200 {
                s.write_all(b"{\"v\":1,\"op\":\"get\",\"na").unwrap();
            }
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(200));
        for round in 0..3 {
            let t = Instant::now();
            let (code, out, err) = run.sysctl(&["kern.polling.user_frac"]);
            let took = t.elapsed();
            assert_eq!(code, 0, "round {round}: {err}");
            assert_eq!(out, "kern.polling.user_frac: 50\n");
            assert!(
                took < Duration::from_secs(1),
                "round {round}: sysctl took {took:?} with 250 idle clients"
            );
        }
        // A client silent for longer than CLIENT_IDLE is closed: its read
        // ends (EOF or reset) instead of blocking.
        let mut s = UnixStream::connect(&path).expect("connect");
        s.write_all(b"{\"v\":1,").unwrap();
        let limit = pollsim::ctl::CLIENT_IDLE.as_secs_f64() + 2.0;
        s.set_read_timeout(Some(Duration::from_secs_f64(limit)))
            .unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("a half line got a reply: {:?}", &buf[..n]),
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "the idle client was not closed within {limit} s: {e}"
            ),
        }
        assert!(t.elapsed() >= Duration::from_secs_f64(limit - 2.5));
        drop(held);
        let s = run.stop();
        assert!(s.text.contains("balance: ok"), "{}", s.text);
    });
}

#[test]
fn a_thousand_requests_a_second_from_four_clients_all_answered() {
    if !require_root_or_skip("a_thousand_requests_a_second") {
        return;
    }
    let _serial = util::serial();
    with_tap(|| {
        lab::static_neigh("tap0", "198.18.0.2", MAC).unwrap();
        let run = Running::start(&["--apps", "udp-sink"]);
        let path = pollsim::ctl::socket_path(&run.name);
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                let dst: SocketAddrV4 = "198.18.0.2:9".parse().unwrap();
                lab::udp_blast(dst, 18, 200_000, Some(40_000), Duration::from_secs(6)).unwrap()
            });
            let clients: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    s.spawn(move || {
                        let mut c = pollsim_sysctl::client::Client::connect(&path).unwrap();
                        let start = Instant::now();
                        let mut n = 0u32;
                        while start.elapsed() < Duration::from_secs(5) {
                            let due = start + Duration::from_millis(4) * n;
                            std::thread::sleep(due.saturating_duration_since(Instant::now()));
                            let req = pollsim_sysctl::proto::Request::get("kern.polling");
                            let rep = c.call(&req).expect("every request answered");
                            assert!(rep.ok && !rep.nodes.is_empty());
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let total: u32 = clients.into_iter().map(|c| c.join().unwrap()).sum();
            assert!(total >= 4_500, "only {total} requests in 5 s");
            sender.join().unwrap();
        });
        std::thread::sleep(Duration::from_millis(300));
        let s = run.stop();
        assert!(s.text.contains("balance: ok"), "{}", s.text);
        assert_eq!(
            s.int("dev.tap0.rx_packets") + s.int("dev.tap0.rx_missed"),
            200_000
        );
    });
}

#[test]
fn ifconfig_and_stat_read_a_running_instance() {
    if !require_root_or_skip("ifconfig_and_stat") {
        return;
    }
    with_tap(|| {
        let run = Running::start(&[]);
        let (code, out, err) = run_pollsim(&["ifconfig", "--name", &run.name, "tap0", "-polling"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with("tap0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>"),
            "{out}"
        );
        assert!(!out.contains("POLLING"), "{out}");
        assert_eq!(run.int("dev.tap0.polling"), 0);
        let (_, out, _) = run_pollsim(&["ifconfig", "--name", &run.name, "tap0", "polling"]);
        assert!(out.contains("options=40<POLLING>"), "{out}");
        assert!(out.contains("inet 198.18.0.2 netmask 0xffffff00"), "{out}");
        let (code, out, err) =
            run_pollsim(&["stat", "--name", &run.name, "-w", "0.2", "--count", "3"]);
        assert_eq!(code, 0, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].contains("input/s") && lines[0].contains("lost"));
        // Idle: rates are deltas, so they are zero although totals are not.
        assert!(lines[1].trim_start().starts_with("0 "), "{out}");
        run.stop();
    });
}

#[test]
fn no_instance_is_one_clear_line() {
    let (code, _, err) = run_pollsim(&["sysctl", "--name", "nobody-runs-this", "kern.hz"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "pollsim: no instance 'nobody-runs-this' (is pollsim run running? socket /run/pollsim/nobody-runs-this.sock)\n"
    );
}
