//! `pollsim sysctl`, `ifconfig` and `stat` against running instances, and
//! the control socket under abuse and load. Root, private namespaces.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddrV4;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use util::{MAC, Running, lab, require_root_or_skip, run_pollsim, unique_name, with_tap};

/// Flood pollsim's UDP discard port from a kernel socket until `stop`, in
/// bounded blasts of a second, for at most `limit`; returns the datagrams sent.
fn flood_until(stop: &AtomicBool, limit: Duration) -> u64 {
    let dst: SocketAddrV4 = "198.18.0.2:9".parse().unwrap();
    let t = Instant::now();
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) && t.elapsed() < limit {
        sent += lab::udp_blast(dst, 18, u64::MAX, None, Duration::from_secs(1))
            .expect("blast")
            .sent;
    }
    sent
}

/// `kern.polling.burst` of `run`, polled until `ok` holds (or `within`
/// passes): the burst moves by one a tick, so it takes a while to get
/// anywhere, longer on a loaded host. Returns the last value seen and
/// whether it held.
fn burst_until(run: &Running, within: Duration, ok: impl Fn(u64) -> bool) -> (u64, bool) {
    let mut last = 0;
    let held = util::eventually(within, || {
        last = run.int("kern.polling.burst");
        ok(last).then_some(())
    });
    (last, held.is_some())
}

/// Knobs set at run time change what a flooded polling kernel does, in
/// ways that follow from the knobs and not from the host's speed (the
/// flood's rate and the cost of a frame do, so nothing here compares CPU
/// shares: see `user_frac_splits_the_simulated_cpu_under_overload`).
///
/// - `user_frac=0` lets a tick's polling take the whole tick: `burst`
///   climbs towards `burst_max` (1000) as long as 200 frames take less than
///   a tick (5 µs each; a frame costs ~1 µs). `user_frac=99` leaves 1 %,
///   10 µs: once the flood brings more than that a tick, `burst` falls to
///   about 10 µs' worth of frames, far below 100 (a frame would have to
///   cost 0.1 µs). Were `user_frac` ignored (the default 50), it would
///   stay in the hundreds.
/// - Lowering `burst_max` lowers `burst` at once (FreeBSD's
///   `poll_burst_max_sysctl`).
/// - With `dev.tap0.polling=0` interrupts take over and polls stop.
#[test]
fn knobs_change_what_a_flooded_kernel_does() {
    if !require_root_or_skip("knobs_change_what_a_flooded_kernel_does") {
        return;
    }
    let _serial = util::serial();
    with_tap(|| {
        lab::static_neigh("tap0", "198.18.0.2", MAC).unwrap();
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
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let sender = s.spawn(|| flood_until(&stop, Duration::from_secs(150)));
            let set = |kv: &str| {
                let (code, _, err) = run.sysctl(&[kv]);
                assert_eq!(code, 0, "{kv}: {err}");
            };
            let within = Duration::from_secs(30);
            set("kern.polling.user_frac=0");
            let (b0, ok) = burst_until(&run, within, |b| b >= 200);
            assert!(ok, "user_frac=0: burst stayed at {b0} (want >= 200)");
            set("kern.polling.user_frac=99");
            let (b99, ok) = burst_until(&run, within, |b| b <= 100);
            assert!(
                ok,
                "user_frac=99: burst stayed at {b99} (want <= 100; it was {b0} at user_frac=0)"
            );
            eprintln!("burst {b0} at user_frac=0, {b99} at 99");
            set("kern.polling.user_frac=0");
            burst_until(&run, within, |b| b >= 200);
            set("kern.polling.burst_max=50");
            for _ in 0..20 {
                let b = run.int("kern.polling.burst");
                assert!(b <= 50, "burst {b} above burst_max=50");
            }
            // Interrupts take over when polling is switched off.
            let (i0, p0) = (run.int("dev.tap0.interrupts"), run.int("dev.tap0.polls"));
            assert_eq!(
                run.sysctl(&["dev.tap0.polling=0"]).1,
                "dev.tap0.polling: 1 -> 0\n"
            );
            let more = util::eventually(within, || {
                (run.int("dev.tap0.interrupts") > i0).then_some(())
            });
            assert!(more.is_some(), "no interrupts after dev.tap0.polling=0");
            // Polls stop: none after the switch (read once interrupts are
            // seen), however long one waits.
            let p1 = run.int("dev.tap0.polls");
            std::thread::sleep(Duration::from_millis(500));
            let p2 = run.int("dev.tap0.polls");
            assert_eq!(p2, p1, "polls went on: {p0} -> {p1} -> {p2}");
            stop.store(true, Ordering::Relaxed);
            let sent = sender.join().unwrap();
            assert!(sent > 10_000, "the flood sent only {sent}");
        });
        let s = run.stop();
        assert!(s.text.contains("balance: ok"), "{}", s.text);
    });
}

/// `pollsim run --sim` of polling mode under a 1 Mpps flood, udp-sink at
/// 20 µs a datagram (the user could take every cycle, the kernel 87 % at
/// the built-in costs): (user share, sys share, burst) in percent of
/// kern.cp_time.
fn sim_shares(user_frac: u32) -> (f64, f64, u64) {
    let frac = format!("kern.polling.user_frac={user_frac}");
    let (code, out, err) = run_pollsim(&[
        "run",
        "--sim",
        "--mode",
        "polling",
        "--sim-rate",
        "1M",
        "--apps",
        "udp-sink",
        "--duration",
        "2",
        "--sysctl",
        "user.udp_sink.work_ns=20000",
        "--sysctl",
        "kern.polling.burst_max=1000",
        "--sysctl",
        &frac,
    ]);
    assert_eq!(code, 0, "{err}");
    let s = util::Summary::parse(&out);
    let cp: Vec<f64> = s.values["kern.cp_time"]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let total: f64 = cp.iter().sum();
    (
        cp[0] * 100.0 / total,
        cp[2] * 100.0 / total,
        s.int("kern.polling.burst"),
    )
}

/// On the virtual clock, where the flood's rate and a frame's cost are the
/// model's and not the host's: under overload the polling kernel keeps to
/// `100 - user_frac` percent of the CPU, and the user gets the rest.
#[test]
fn user_frac_splits_the_simulated_cpu_under_overload() {
    let (user20, sys20, burst20) = sim_shares(20);
    let (user80, sys80, burst80) = sim_shares(80);
    let shown = format!(
        "user_frac=20: user {user20:.1}% sys {sys20:.1}% burst {burst20}; \
         user_frac=80: user {user80:.1}% sys {sys80:.1}% burst {burst80}"
    );
    // The kernel's share is bounded by the knob (plus the hardclock's and
    // one poll's overrun); the kernel takes more when allowed more.
    assert!(sys80 <= 20.0 + 2.0, "{shown}");
    assert!(sys20 <= 80.0 + 2.0 && sys20 > sys80 + 20.0, "{shown}");
    // The user gets what the kernel leaves: at 80, at least 80 % less the
    // hardclock's share and the start before the flood.
    assert!(user80 >= 80.0 - 3.0 && user80 > user20 + 20.0, "{shown}");
    assert!(burst80 * 2 < burst20, "{shown}");
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

/// `user.<app>.trigger` is read by name (`-n` and `-a`), set by name with
/// `--sysctl` before start, and refused by a running instance.
#[test]
fn triggers_read_and_set_by_name() {
    if !require_root_or_skip("triggers_read_and_set_by_name") {
        return;
    }
    with_tap(|| {
        let run = Running::start(&[
            "--apps",
            "udp-sink,tcp-echo,http",
            "--sysctl",
            "user.tcp_echo.trigger=edge",
            "--sysctl",
            "user.http.trigger=level",
        ]);
        let nodes = [
            "user.udp_sink.trigger",
            "user.tcp_echo.trigger",
            "user.http.trigger",
        ];
        let (code, out, err) = run.sysctl(&["-n", nodes[0], nodes[1], nodes[2]]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "oneshot\nedge\nlevel\n");
        let (code, out, err) = run.sysctl(&["-a"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("\nuser.tcp_echo.trigger: edge\n"), "{out}");
        let (code, _, err) = run.sysctl(&["user.http.trigger=edge"]);
        assert_ne!(code, 0, "a running app's trigger is fixed");
        assert!(err.contains("read-only once the app has started"), "{err}");
        let (code, _, err) = run.sysctl(&["user.udp_sink.trigger=1"]);
        assert_ne!(code, 0);
        assert!(err.contains("level, edge, oneshot"), "{err}");
        assert_eq!(run.sysctl(&["-n", nodes[2]]).1, "level\n");
        run.stop();
    });
}
