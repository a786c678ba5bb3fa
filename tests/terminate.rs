//! Termination, as root: SIGTERM and SIGHUP stop `pollsim run` as Ctrl-C
//! does (summary, socket removed, exit 128 + signal); SIGTERM and SIGKILL
//! of a running `pollsim compare` leave none of its `pollsim run` children
//! and none of their control sockets behind; a control socket nobody
//! listens on is removed when the next instance starts.
//!
//! compare makes its own private network namespace (as it always does);
//! the `pollsim run` tests run in the test's own one (`with_tap`).

mod util;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use util::{Running, eventually, require_root_or_skip, unique_name, with_tap};

const BIN: &str = env!("CARGO_BIN_EXE_pollsim");

/// The children of `pid` (all its threads'), and theirs, recursively.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                all.push(k);
                todo.push(k);
            }
        }
    }
    all
}

/// The command line of `pid` if it is alive (not a zombie).
fn live_cmdline(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    if state == 'Z' || state == 'X' {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// Live processes whose command line contains `marker`.
fn live_with(marker: &str) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, live_cmdline(p)?)))
        .filter(|(_, c)| c.contains(marker))
        .collect()
}

/// Control sockets whose file name starts with `prefix`.
fn sockets_with(prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(pollsim::ctl::RUN_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".sock"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Start a short, bounded `pollsim compare --quick` (one mode, five fixed
/// rates, one trial, no MLFRR search, fixed work_ns: one calibration
/// round), wait until its sweep instance runs, send it `sig` twice, and check
/// that its children and their sockets are gone within 20 s. Returns its
/// exit code (None if the signal killed it), its stderr and the output
/// directory.
fn compare_ended_by(sig: Signal) -> (Option<i32>, String, PathBuf) {
    let out = std::env::temp_dir().join(format!(
        "pollsim-terminate-{}-{}",
        std::process::id(),
        sig.as_str()
    ));
    let mut child = Command::new(BIN)
        .args(["compare", "--quick", "--modes", "polling"])
        .args(["--rates", "2k,4k,8k,16k,32k", "--trials", "1"])
        .args(["--mlfrr-steps", "0", "--work-ns", "2000", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pollsim compare");
    let pid = child.id();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // Its instances are named compare-<its pid>-host, -cal, -0.
    let prefix = format!("compare-{pid}-");
    let sweeping = pollsim::ctl::socket_path(&format!("{prefix}0"));
    let started = eventually(Duration::from_secs(180), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("compare exited with {status} before its sweep began");
        }
        sweeping.exists().then_some(())
    });
    assert!(started.is_some(), "compare's sweep instance never started");
    let kids: Vec<(u32, String)> = descendants(pid)
        .into_iter()
        .filter_map(|p| Some((p, live_cmdline(p)?)))
        .collect();
    assert!(
        kids.iter()
            .any(|(_, c)| c.starts_with(BIN) && c.contains(" run ")),
        "no pollsim run among compare's children: {kids:?}"
    );
    // Twice, as timeout(1) sends it (to the command, then to its group):
    // the second must not cut the cleanup short.
    let target = nix::unistd::Pid::from_raw(pid.cast_signed());
    nix::sys::signal::kill(target, sig).unwrap();
    nix::sys::signal::kill(target, sig).unwrap();
    let status = eventually(Duration::from_secs(60), || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        panic!("compare still running 60 s after {sig}");
    };
    let stderr = stderr.join().unwrap();
    let gone = eventually(Duration::from_secs(20), || {
        let left: Vec<_> = kids
            .iter()
            .filter(|(p, c)| live_cmdline(*p).as_ref() == Some(c))
            .collect();
        (left.is_empty() && live_with(&prefix).is_empty() && sockets_with(&prefix).is_empty())
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "20 s after {sig} of compare: processes {:?}, sockets {:?}\n{stderr}",
        live_with(&prefix),
        sockets_with(&prefix)
    );
    (status.code(), stderr, out)
}

#[test]
fn sigterm_stops_compare_its_children_and_their_sockets_and_exits_143() {
    if !require_root_or_skip("sigterm_stops_compare_its_children_and_their_sockets_and_exits_143") {
        return;
    }
    let (code, stderr, out) = compare_ended_by(Signal::SIGTERM);
    assert_eq!(code, Some(143), "{stderr}");
    // Stopped as on Ctrl-C: what was measured is written.
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(out.join("results.json").exists(), "{stderr}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn sigkill_of_compare_leaves_no_child_and_no_socket() {
    if !require_root_or_skip("sigkill_of_compare_leaves_no_child_and_no_socket") {
        return;
    }
    let (code, stderr, out) = compare_ended_by(Signal::SIGKILL);
    assert_eq!(code, None, "SIGKILL cannot be handled: {stderr}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn sigterm_and_sighup_stop_run_like_ctrl_c_with_128_plus_the_signal() {
    if !require_root_or_skip("sigterm_and_sighup_stop_run_like_ctrl_c_with_128_plus_the_signal") {
        return;
    }
    for (sig, want) in [(Signal::SIGTERM, 143), (Signal::SIGHUP, 129)] {
        // Alone, and after a SIGINT (as an instance compare is stopping
        // gets SIGTERM from PR_SET_PDEATHSIG if compare dies): the second
        // signal does not cut the cleanup short (the status is that of
        // whichever came last before the exit).
        for after_sigint in [false, true] {
            with_tap(|| {
                let run = Running::start(&[]);
                let path = pollsim::ctl::socket_path(&run.name);
                assert!(path.exists());
                assert_eq!(run.int("kern.hz"), 1000);
                if after_sigint {
                    let pid = nix::unistd::Pid::from_raw(run.pid().cast_signed());
                    nix::sys::signal::kill(pid, Signal::SIGINT).unwrap();
                }
                let (code, summary) = run.stop_with(sig);
                let ok = code == Some(want) || (after_sigint && code == Some(130));
                assert!(ok, "{sig} (after SIGINT: {after_sigint}): exit {code:?}");
                // The summary of a Ctrl-C, and the socket removed.
                assert!(
                    summary.text.contains("balance: ok"),
                    "{sig}:\n{}",
                    summary.text
                );
                assert!(!path.exists(), "{sig}: {} left behind", path.display());
            });
        }
    }
}

#[test]
fn a_socket_nobody_listens_on_is_removed_when_an_instance_starts() {
    if !require_root_or_skip("a_socket_nobody_listens_on_is_removed_when_an_instance_starts") {
        return;
    }
    with_tap(|| {
        std::fs::create_dir_all(pollsim::ctl::RUN_DIR).unwrap();
        // A killed instance's socket, under a name nobody will start.
        let dead = pollsim::ctl::socket_path(&unique_name("dead"));
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        // A live one (this test listens on it), and a file that is no socket.
        let live = pollsim::ctl::socket_path(&unique_name("live"));
        let listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
        let plain = pollsim::ctl::socket_path(&unique_name("plain"));
        std::fs::write(&plain, b"not a socket").unwrap();
        let run = Running::start(&[]);
        // The sweep runs before the instance binds, so before it says it runs.
        assert!(!dead.exists(), "{} is still there", dead.display());
        assert!(live.exists() && plain.exists());
        run.stop();
        drop(listener);
        std::fs::remove_file(&live).unwrap();
        std::fs::remove_file(&plain).unwrap();
    });
}
