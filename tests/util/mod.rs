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
}

impl Running {
    /// Start `pollsim run --if tap0` with `extra` arguments (bounded by a
    /// 60 s `--duration`) and wait until it says it is running.
    #[track_caller]
    pub fn start(extra: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pollsim"))
            .args([
                "run",
                "--if",
                "tap0",
                "--addr",
                "198.18.0.2/24",
                "--duration",
                "60",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pollsim run");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("read pollsim's first line");
        assert!(
            line.contains("running on tap0"),
            "pollsim did not start: {line}"
        );
        std::thread::spawn(move || {
            let _ = err.read_to_string(&mut String::new());
        });
        Running { child }
    }

    /// Ctrl-C it and return its stdout, which must end in a summary.
    #[track_caller]
    pub fn stop(mut self) -> Summary {
        let pid = nix::unistd::Pid::from_raw(self.child.id().cast_signed());
        nix::sys::signal::kill(pid, nix::sys::signal::SIGINT).expect("SIGINT");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "pollsim run exited with {status}: {out}");
        Summary::parse(&out)
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
