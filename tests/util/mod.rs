//! Shared helpers of the integration tests (as mio's tests/util).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use pollsim::lab;

/// The kernel side of every test tap.
pub const KERNEL_CIDR: &str = "198.18.0.1/24";
/// pollsim's address.
pub const ADDR: &str = "198.18.0.2";
/// pollsim's MAC (derived from its address by `pollsim run`).
pub const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];

/// Every pollsim a test starts charges the built-in simulated costs, never
/// a hardware profile `pollsim calibrate` may have left in this host's
/// ~/.config (the snapshots and shapes are of the built-in model).
pub const PROFILE_ENV: (&str, &str) = ("POLLSIM_PROFILE", "builtin");

/// True if `tool` is on PATH and the test may use it; otherwise prints why
/// it skips. Fails instead when `POLLSIM_REQUIRE_ROOT=1` (CI, whose
/// `.ci/run` installs every tool), so a skip cannot pass unnoticed there.
#[track_caller]
pub fn require_tool_or_skip(test: &str, tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
    if found {
        return true;
    }
    let why = format!("needs {tool} (apt-get install {package}; .ci/run installs it)");
    if std::env::var("POLLSIM_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: {why}, and POLLSIM_REQUIRE_ROOT=1 forbids skipping");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// True if the test may run; otherwise prints why it skips. Fails instead
/// when `POLLSIM_REQUIRE_ROOT=1` (CI), so a skip cannot pass unnoticed.
#[track_caller]
pub fn require_root_or_skip(test: &str) -> bool {
    if lab::is_root() {
        return true;
    }
    let why = "needs root for a private network namespace and a tap device";
    if std::env::var("POLLSIM_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: {why}, and POLLSIM_REQUIRE_ROOT=1 forbids skipping");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// Serialise the tests of one test binary that measure CPU shares or rates:
/// on a 2-core machine, parallel floods would measure each other. (Cargo
/// runs test binaries one after another, so a per-binary lock suffices.)
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `f` in a fresh private network namespace with tap0 set up
/// (kernel side 198.18.0.1/24, IPv6 off).
#[track_caller]
pub fn with_tap<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    lab::in_new_netns(|| {
        lab::setup_tap("tap0", KERNEL_CIDR).expect("tap set-up in the private namespace");
        f()
    })
    .expect("a private network namespace")
}

/// `pollsim` with `args`, run to completion: (exit code, stdout, stderr).
pub fn run_pollsim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pollsim"))
        .env(PROFILE_ENV.0, PROFILE_ENV.1)
        .args(args)
        .output()
        .expect("spawn pollsim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `pollsim run` in the background, started on tap0.
pub struct Running {
    child: Child,
    /// Its instance name (unique per test, since /run/pollsim is shared).
    pub name: String,
}

/// An instance name no other test of this run uses.
pub fn unique_name(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("test-{}-{tag}-{n}", std::process::id())
}

impl Running {
    /// Start `pollsim run --if tap0` with `extra` arguments (bounded by a
    /// 60 s `--duration`) and wait until it says it is running.
    #[track_caller]
    pub fn start(extra: &[&str]) -> Running {
        Running::start_named(&unique_name("run"), extra)
    }

    /// As [`Running::start`], with instance name `name`.
    #[track_caller]
    pub fn start_named(name: &str, extra: &[&str]) -> Running {
        let mut args = vec!["run", "--duration", "60", "--name", name];
        if !extra.contains(&"--if") {
            args.extend(["--if", "tap0", "--addr", "198.18.0.2/24"]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_pollsim"))
            .env(PROFILE_ENV.0, PROFILE_ENV.1)
            .args(&args)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pollsim run");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        // Warnings (`pollsim: warning: ...`, e.g. for `--hz` under 1000) may
        // come before the line that says it is running; anything else is a
        // failure to start.
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = err.read_line(&mut line).expect("read pollsim's stderr");
            seen.push_str(&line);
            if line.contains("running on") {
                break;
            }
            assert!(
                n > 0 && line.starts_with("pollsim: warning:"),
                "pollsim did not start: {seen}"
            );
        }
        std::thread::spawn(move || {
            let _ = err.read_to_string(&mut String::new());
        });
        Running {
            child,
            name: name.to_string(),
        }
    }

    /// `pollsim sysctl --name <this instance> ARGS`: (exit code, stdout, stderr).
    pub fn sysctl(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["sysctl", "--name", &self.name];
        all.extend_from_slice(args);
        run_pollsim(&all)
    }

    /// The integer value of node `name`, read through `pollsim sysctl -n`.
    #[track_caller]
    pub fn int(&self, name: &str) -> u64 {
        let (code, out, err) = self.sysctl(&["-n", name]);
        assert_eq!(code, 0, "sysctl -n {name}: {err}");
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not an integer: {out}"))
    }

    /// `kern.cp_time` through `pollsim sysctl -n`.
    #[track_caller]
    pub fn cp_time(&self) -> Vec<u64> {
        let (code, out, err) = self.sysctl(&["-n", "kern.cp_time"]);
        assert_eq!(code, 0, "{err}");
        out.split_whitespace()
            .map(|v| v.parse().expect("cp_time number"))
            .collect()
    }

    /// Ctrl-C it and return its stdout, which must end in a summary; it
    /// must exit with 130, as a shell reports a process SIGINT ended.
    #[track_caller]
    pub fn stop(self) -> Summary {
        let (code, summary) = self.stop_with(nix::sys::signal::Signal::SIGINT);
        assert_eq!(
            code,
            Some(130),
            "pollsim run after SIGINT:\n{}",
            summary.text
        );
        summary
    }

    /// Send it `sig`, wait for it to exit and return its exit code (None
    /// if a signal killed it) and its stdout as a summary.
    #[track_caller]
    pub fn stop_with(mut self, sig: nix::sys::signal::Signal) -> (Option<i32>, Summary) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().cast_signed());
        nix::sys::signal::kill(pid, sig).expect("kill");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        let status = self.child.wait().expect("wait");
        (status.code(), Summary::parse(&out))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The final summary of `pollsim run`: `name: value` lines.
#[derive(Debug)]
pub struct Summary {
    pub values: HashMap<String, String>,
    pub text: String,
}

impl Summary {
    pub fn parse(text: &str) -> Summary {
        let values = text
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Summary {
            values,
            text: text.to_string(),
        }
    }

    /// An integer node; panics with the whole summary if it is missing.
    #[track_caller]
    pub fn int(&self, name: &str) -> u64 {
        self.values
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no integer {name} in summary:\n{}", self.text))
    }
}

/// Retry `f` until it returns Some or `within` passes.
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
