//! `pollsim compare --sim` end to end, through the binary: the table of a
//! fixed seed (a snapshot), byte-identical results.json from two runs, and
//! the default for users without root.

mod util;

use std::path::Path;

use util::run_pollsim;

/// The snapshot of `compare --sim --quick --seed 1`; rewrite it on purpose
/// with `POLLSIM_UPDATE_SNAPSHOTS=1 cargo test --test sim`.
const SNAPSHOT: &str = "tests/snapshots/compare_sim_quick.txt";

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pollsim-sim-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn quick(out: &Path) -> (i32, String, String) {
    let t = std::time::Instant::now();
    let r = run_pollsim(&[
        "compare",
        "--sim",
        "--quick",
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    eprintln!("compare --sim --quick took {:?} (wall)", t.elapsed());
    r
}

#[test]
fn quick_table_matches_its_snapshot_and_results_are_byte_identical() {
    let (a, b) = (tempdir("a"), tempdir("b"));
    let (code, table, err) = quick(&a);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.lines().next().unwrap().contains("(simulated)"),
        "{table}"
    );
    let snap = Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var("POLLSIM_UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&snap, &table).unwrap();
    }
    let want = std::fs::read_to_string(&snap).expect("the snapshot (see SNAPSHOT)");
    assert_eq!(table, want, "the --sim --quick table changed");
    let (code, table2, err) = quick(&b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(table, table2);
    for f in ["results.json", "results.csv", "livelock.svg"] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs of the same seed");
    }
    let json = std::fs::read_to_string(a.join("results.json")).unwrap();
    assert!(json.contains("\"simulated\": true") && !json.contains("\"date\""));
    check_netstat(&serde_json::from_str(&json).unwrap());
    let _ = (std::fs::remove_dir_all(&a), std::fs::remove_dir_all(&b));
}

/// Every row of results.json has the stack's per-cause counters
/// (`frames.netstat`, as `pollsim netstat -s --json`): the simulation's
/// valid frames are all IP and UDP for this host, none refused for a
/// cause, `udp.fullsock` is the row's socket drops, and `frames.other` is
/// the sum of the other terminal causes (here the probe's TCP and ARP).
fn check_netstat(doc: &serde_json::Value) {
    for r in doc["runs"].as_array().unwrap() {
        let f = &r["frames"];
        let n = &f["netstat"];
        let get = |g: &str, k: &str| {
            n[g][k]
                .as_i64()
                .unwrap_or_else(|| panic!("no frames.netstat.{g}.{k} in {r}"))
        };
        assert_eq!(
            get("udp", "fullsock"),
            f["socket_drops"].as_i64().unwrap(),
            "{r}"
        );
        for (g, k) in [("udp", "badsum"), ("ip", "badsum"), ("udp", "badlen")] {
            assert_eq!(get(g, k), 0, "{g}.{k}: {r}");
        }
        let others = get("arp", "received") + get("tcp", "delivered") + get("tcp", "listendrop");
        assert_eq!(f["other"].as_i64().unwrap(), others, "{r}");
        assert!(get("udp", "ipackets") > 0, "{r}");
    }
}

#[test]
fn another_seed_gives_other_results() {
    let (a, b) = (tempdir("s1"), tempdir("s2"));
    for (dir, seed) in [(&a, "1"), (&b, "2")] {
        let (code, _, err) = run_pollsim(&[
            "compare",
            "--sim",
            "--quick",
            "--modes",
            "interrupt",
            "--rates",
            "300k",
            "--work-ns",
            "2000",
            "--seed",
            seed,
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let (x, y) = (
        std::fs::read(a.join("results.json")).unwrap(),
        std::fs::read(b.join("results.json")).unwrap(),
    );
    assert!(x != y);
    let _ = (std::fs::remove_dir_all(&a), std::fs::remove_dir_all(&b));
}

/// Without root, `pollsim compare` says it cannot open a tap and simulates.
/// As root the test drops to `nobody` with setpriv(1).
#[test]
fn compare_without_root_runs_the_simulation_and_says_so() {
    let out = tempdir("nobody");
    let exe = env!("CARGO_BIN_EXE_pollsim");
    let args = [
        "compare",
        "--quick",
        "--modes",
        "interrupt",
        "--rates",
        "100k,1M",
    ];
    let output = if util::lab::is_root() {
        // nobody must be able to write the output directory.
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        std::process::Command::new("setpriv")
            .env(util::PROFILE_ENV.0, util::PROFILE_ENV.1)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", exe])
            .args(args)
            .args(["--out", out.to_str().unwrap()])
            .output()
            .expect("setpriv (util-linux)")
    } else {
        std::process::Command::new(exe)
            .env(util::PROFILE_ENV.0, util::PROFILE_ENV.1)
            .args(args)
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let err = String::from_utf8_lossy(&output.stderr);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("cannot open a tap device without root"),
        "{err}"
    );
    assert!(err.contains("--sim"), "{err}");
    assert!(
        table.lines().next().unwrap().contains("(simulated)"),
        "{table}"
    );
    assert!(out.join("results.json").exists() && out.join("livelock.svg").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// `pollsim run --sim` shows the `hw.sim.*` nodes (which a real run does
/// not have), and the knob table of docs/knobs.md documents each of them.
#[test]
fn run_sim_has_the_hw_sim_nodes_the_knob_table_documents() {
    let (code, out, err) = run_pollsim(&[
        "run",
        "--sim",
        "--mode",
        "interrupt",
        "--sim-rate",
        "50k",
        "--duration",
        "0.2",
        "--apps",
        "udp-sink",
        "--sysctl",
        "hw.sim.rx_cost_ns=400",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("virtual time"), "{err}");
    let knobs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/knobs.md"))
            .unwrap();
    // The table's first cell names the nodes, `hw.sim.a, b, c` for
    // `hw.sim.a`, `hw.sim.b` and `hw.sim.c`.
    let documented: Vec<String> = knobs
        .lines()
        .filter(|l| l.starts_with("| hw.sim."))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap_or_default().trim();
            cell.split(", ")
                .map(|p| format!("hw.sim.{}", p.trim_start_matches("hw.sim.")))
                .collect::<Vec<_>>()
        })
        .collect();
    let nodes: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| n.starts_with("hw.sim."))
        .collect();
    assert_eq!(nodes.len(), 12, "{out}"); // ctxsw_ns the 12th
    for n in nodes {
        assert!(
            documented.iter().any(|d| d == n),
            "{n} not in the knob table of docs/knobs.md ({documented:?})"
        );
    }
    assert!(out.contains("hw.sim.rx_cost_ns: 400"), "{out}");
    assert!(out.contains("balance: ok"), "{out}");
    // A refused knob is an error that names the bounds, never a clamp.
    let (code, _, err) = run_pollsim(&[
        "run",
        "--sim",
        "--duration",
        "0.1",
        "--sysctl",
        "hw.sim.rx_cost_ns=99999999",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("0..10000000"), "{err}");
}

/// On virtual time the NIC's interrupt line is plain memory: a simulated
/// second of 1 Mpps in interrupt mode (hundreds of thousands of
/// interrupts) makes no system call per interrupt.
#[test]
fn an_interrupt_mode_simulation_makes_no_system_call_per_interrupt() {
    let trace = std::env::temp_dir().join(format!("pollsim-strace-{}.txt", std::process::id()));
    let out = std::process::Command::new("strace")
        .env(util::PROFILE_ENV.0, util::PROFILE_ENV.1)
        .args(["-c", "-f", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_pollsim"))
        .args([
            "run",
            "--sim",
            "--mode",
            "interrupt",
            "--sim-rate",
            "1M",
            "--duration",
            "1",
        ])
        .output()
        .expect("strace (apt-get install strace)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s = util::Summary::parse(&stdout);
    assert!(s.int("dev.tap0.interrupts") > 100_000, "{}", s.text);
    let report = std::fs::read_to_string(&trace).expect("strace's report");
    let _ = std::fs::remove_file(&trace);
    let total: u64 = report
        .lines()
        .find(|l| l.trim_end().ends_with("total"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in strace's report:\n{report}"));
    assert!(total < 1_000, "{total} system calls:\n{report}");
}

/// `run --sim` loads the profile it is given, says so, and charges its
/// costs; `--profile builtin` says where the reference costs come from.
#[test]
fn run_sim_loads_a_profile_and_says_which_costs_it_uses() {
    let dir = tempdir("profile");
    let path = dir.join("hw.toml");
    // Every frame costs 50 us in the netisr: at most 20k frames/s.
    std::fs::write(
        &path,
        "[host]\ncpu_model = \"Test CPU\"\ncpus = 2\nkernel = \"6.1\"\n\
         calibrated = \"2026-12-07T00:00:00Z\"\nsteal_pct = 0.0\npollsim = \"0.1.0\"\n\
         [costs]\nintr_cost_ns = 1300\nrx_cost_ns = 300\nproto_cost_ns = 50000\n\
         tick_cost_ns = 7000\nstatus_cost_ns = 18000\nsched_cost_ns = 100\n",
    )
    .unwrap();
    let delivered = |profile: &str| {
        let (code, out, err) = run_pollsim(&[
            "run",
            "--sim",
            "--profile",
            profile,
            "--mode",
            "polling",
            "--sim-rate",
            "100k",
            "--duration",
            "1",
            "--apps",
            "udp-sink",
        ]);
        assert_eq!(code, 0, "{err}");
        let line = out
            .lines()
            .find(|l| l.contains("delivered: read by udp-sink"))
            .unwrap_or_else(|| panic!("no delivered line in {out}"))
            .to_string();
        let words: Vec<&str> = line.split_whitespace().collect();
        let n: u64 = words[words.len() - 2].parse().unwrap();
        (n, err)
    };
    let (slow, err) = delivered(path.to_str().unwrap());
    assert!(
        err.contains(&format!("profile {}", path.display())),
        "{err}"
    );
    assert!(err.contains("Test CPU"), "{err}");
    let (fast, err) = delivered("builtin");
    assert!(err.contains("built-in reference costs"), "{err}");
    assert!(
        slow < 25_000 && fast > 4 * slow,
        "profile {slow}, builtin {fast}"
    );
    let (code, _, err) = run_pollsim(&["run", "--sim", "--profile", "/nonexistent/hw.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/hw.toml"), "{err}");
}

/// `run --sim --cpus 2 --flows 64`: a line per CPU each interval, each
/// CPU's summary, and every frame accounted for on every CPU; both queues
/// carry frames.
#[test]
fn run_sim_on_two_cpus_reports_each_cpu_and_balances() {
    let (code, out, err) = run_pollsim(&[
        "run",
        "--sim",
        "--cpus",
        "2",
        "--flows",
        "64",
        "--sim-rate",
        "300k",
        "--duration",
        "0.3",
        "-w",
        "0.1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("simulating 2 CPUs"), "{err}");
    assert!(out.contains("== cpu 1 =="), "{out}");
    assert!(out.contains("balance: ok on every CPU"), "{out}");
    // Three intervals, a line per CPU each: both queues took frames.
    let lines: Vec<Vec<f64>> = out
        .lines()
        .filter(|l| l.starts_with("0 ") || l.starts_with("1 "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .collect();
    assert_eq!(lines.len(), 6, "{out}");
    for cpu in 0..2 {
        let received: f64 = lines.iter().skip(cpu).step_by(2).map(|l| l[2]).sum();
        assert!(received > 0.0, "CPU {cpu} received nothing: {out}");
    }
    let (code, _, err) = run_pollsim(&["run", "--sim", "--cpus", "65"]);
    assert_ne!(code, 0);
    assert!(err.contains("between 1 and 64"), "{err}");
}
