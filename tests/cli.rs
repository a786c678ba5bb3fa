//! Bad input: one clear line on stderr, exit status 2, no panic.

mod util;

use util::run_pollsim;

#[track_caller]
fn refused(args: &[&str], needle: &str) {
    let (code, out, err) = run_pollsim(args);
    assert_eq!(code, 2, "args {args:?}: stdout {out} stderr {err}");
    assert_eq!(err.lines().count(), 1, "one line expected, got: {err}");
    assert!(err.starts_with("pollsim: "), "{err}");
    assert!(err.contains(needle), "'{needle}' not in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn unknown_mode_is_refused() {
    refused(
        &["run", "--mode", "bsd"],
        "unknown mode 'bsd' (interrupt, polling, napi, mr)",
    );
}

#[test]
fn bad_cidr_is_refused() {
    refused(&["run", "--addr", "198.18.0.2"], "not an IPv4 CIDR");
    refused(&["run", "--addr", "198.18.0.300/24"], "not an IPv4 address");
    refused(&["run", "--addr", "198.18.0.2/33"], "prefix length");
}

#[test]
fn hz_out_of_range_is_refused() {
    refused(&["run", "--hz", "99"], "100..10000");
    refused(&["run", "--hz", "10001"], "100..10000");
}

/// Under 1000 Hz `run` warns first, as polling(4) advises, and runs; at
/// 1000 Hz and above it does not warn.
#[test]
fn run_under_1000_hz_warns_as_polling_4_advises() {
    for (hz, warns) in [
        ("100", true),
        ("999", true),
        ("1000", false),
        ("10000", false),
    ] {
        let (code, _, err) = run_pollsim(&["run", "--sim", "--hz", hz, "--duration", "0.05"]);
        assert_eq!(code, 0, "--hz {hz}: {err}");
        let warning = err.lines().find(|l| l.starts_with("pollsim: warning:"));
        assert_eq!(warning.is_some(), warns, "--hz {hz}: {err}");
        if let Some(w) = warning {
            assert!(
                w.contains(&format!("--hz {hz}")) && w.contains("polling(4)") && w.contains("1000"),
                "{w}"
            );
        }
        assert!(err.contains(&format!("kern.hz={hz}")), "it ran: {err}");
    }
}

#[test]
fn unknown_app_is_refused() {
    refused(&["run", "--apps", "udp-sink,ftp"], "unknown app 'ftp'");
}

#[test]
fn the_threads_model_is_refused_on_the_real_clock() {
    // Before any tap is opened: no root needed.
    refused(
        &[
            "run",
            "--apps",
            "tcp-echo",
            "--sysctl",
            "user.tcp_echo.model=threads",
        ],
        "user.tcp_echo.model=threads needs --sim",
    );
    refused(
        &["run", "--sysctl", "user.tcp_echo.model=fibers"],
        "invalid value 'fibers' (reactor, threads)",
    );
}

#[test]
fn bad_sysctl_is_refused_before_running() {
    if !util::lab::is_root() {
        // Without root the tap cannot be opened, which is refused first.
        refused(&["run", "--if", "tap0"], "tap0");
        return;
    }
    util::with_tap(|| {
        refused(
            &["run", "--sysctl", "kern.polling.user_frac=150"],
            "kern.polling.user_frac=150: Invalid argument (0..99)",
        );
        refused(&["run", "--sysctl", "kern.polling.burst=3"], "read only");
        refused(&["run", "--if", "nosuch0"], "no interface nosuch0");
    });
}

#[test]
fn an_unprivileged_run_says_to_run_as_root() {
    // Needs root only to become someone else (nobody) for the run.
    if !util::require_root_or_skip("an_unprivileged_run_says_to_run_as_root") {
        return;
    }
    let out = std::process::Command::new("setpriv")
        .env(util::PROFILE_ENV.0, util::PROFILE_ENV.1)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pollsim"))
        .args(["run", "--if", "tap0", "--addr", "198.18.0.2/24"])
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run pollsim as root"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_address_outside_the_benchmarking_range_is_refused() {
    // Refused before anything else (no tap, no socket, no root needed).
    for addr in [
        "10.0.0.2/24",
        "192.168.1.2/24",
        "198.20.0.2/24",
        "198.17.255.2/24",
    ] {
        refused(
            &["run", "--addr", addr, "--if", "nosuch0"],
            "outside 198.18.0.0/15",
        );
    }
    refused(
        &["run", "--sim", "--addr", "10.0.0.2/24"],
        "--allow-any-addr",
    );
}

#[test]
fn allow_any_addr_lets_an_address_outside_the_range_through() {
    // With the opt-in, the address check passes and the run gets as far as
    // the tap, which does not exist: the error is about the tap, not the
    // address.
    let (code, _, err) = run_pollsim(&[
        "run",
        "--addr",
        "10.0.0.2/24",
        "--allow-any-addr",
        "--if",
        "nosuch0",
        "--name",
        &format!("any-addr-{}", std::process::id()),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("198.18.0.0/15"), "{err}");
    assert!(err.contains("nosuch0") || err.contains("root"), "{err}");
}

/// `pollsim rss-hash` prints the published Toeplitz values: the first
/// Microsoft verification vector, its 2-tuple, an IPv6 flow and the queue
/// the indirection table picks.
#[test]
fn rss_hash_prints_the_published_values() {
    let (code, out, err) = run_pollsim(&[
        "rss-hash",
        "--key",
        "microsoft",
        "66.9.149.187:2794",
        "161.142.100.80:1766",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hash: 0x51ccc178\n"), "{out}");
    assert!(out.contains("index: 120 (hash & 127)"), "{out}");
    assert!(
        out.contains("queue: 0 (indirection table: equal 1)"),
        "{out}"
    );
    let (code, out, _) = run_pollsim(&["rss-hash", "66.9.149.187", "161.142.100.80"]);
    assert_eq!(code, 0);
    assert!(out.contains("hash: 0x323e8fc2\n"), "{out}");
    assert!(out.contains("IPv4 2-tuple (8 bytes)"), "{out}");
    let (code, out, _) = run_pollsim(&[
        "rss-hash",
        "--queues",
        "7",
        "[3ffe:501:8::260:97ff:fe40:efab]:14230",
        "[ff02::1]:4739",
    ]);
    assert_eq!(code, 0);
    // 0xdde51bbf & 127 = 63, entry 63 of `equal 7` is queue 63 % 7 = 0.
    assert!(out.contains("hash: 0xdde51bbf\n"), "{out}");
    assert!(out.contains("index: 63 "), "{out}");
    assert!(out.contains("queue: 0 "), "{out}");
    let (code, out, _) = run_pollsim(&[
        "rss-hash",
        "--key",
        "symmetric",
        "--weight",
        "1,3",
        "161.142.100.80:1766",
        "66.9.149.187:2794",
    ]);
    assert_eq!(code, 0);
    // Symmetric: 0x9fcc9fcc both ways; index 76 is in queue 1's 96 entries.
    assert!(out.contains("hash: 0x9fcc9fcc\n"), "{out}");
    assert!(
        out.contains("queue: 1 (indirection table: weight 1 3)"),
        "{out}"
    );
}

#[test]
fn rss_hash_refuses_bad_input() {
    let flow = ["1.2.3.4:1", "5.6.7.8:2"];
    refused(
        &["rss-hash", "--queues", "0", flow[0], flow[1]],
        "out of range 1..=256",
    );
    refused(
        &["rss-hash", "--queues", "257", flow[0], flow[1]],
        "out of range 1..=256",
    );
    refused(
        &["rss-hash", "--key", "6d5a", flow[0], flow[1]],
        "not an RSS key",
    );
    refused(
        &["rss-hash", "--weight", "100,29", flow[0], flow[1]],
        "sum to 1..=128",
    );
    refused(
        &["rss-hash", "1.2.3.4:1", "[::1]:2"],
        "both be IPv4 or both IPv6",
    );
    refused(&["rss-hash", "1.2.3.4:1", "5.6.7.8"], "both ports");
    refused(&["rss-hash", "1.2.3:1", "5.6.7.8:2"], "not an address");
}

#[test]
fn flood_flows_out_of_range_are_refused() {
    refused(
        &["flood", "--count", "1", "--flows", "0"],
        "--flows 0 is out of range 1..=65536",
    );
    refused(
        &["flood", "--count", "1", "--flows", "65537"],
        "out of range 1..=65536",
    );
    refused(
        &["flood", "--count", "1", "--flow-dist", "zipf:11"],
        "not a flow distribution",
    );
}
