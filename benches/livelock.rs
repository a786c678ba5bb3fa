//! The livelock demonstration of the foundation issue, on the real clock:
//! in a private network namespace, `pollsim run -w 1` on a tap under a
//! sustained UDP flood from a kernel socket, once per mode.
//!
//! `cargo bench --bench livelock [-- SECONDS RATE WORK_NS]` (as root).
//! Without root it prints why and does nothing.

use std::io::{BufRead, BufReader};
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::time::Duration;

use pollsim::lab;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(6);
    let rate: Option<u64> = args.get(1).and_then(|s| s.parse().ok()).filter(|r| *r > 0);
    let work_ns: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    if !lab::is_root() {
        println!("livelock bench skipped: needs root to create a network namespace and a tap");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_pollsim");
    // Extra `--sysctl` settings per mode, e.g.
    // LIVELOCK_POLLING="kern.polling.user_frac=10 user.udp_sink.rcvbuf=4096".
    let extra_for = |mode: &str, default: &str| -> Vec<String> {
        let var = format!("LIVELOCK_{}", mode.to_uppercase());
        let text = std::env::var(var).unwrap_or_else(|_| default.to_string());
        text.split_whitespace()
            .flat_map(|kv| ["--sysctl".to_string(), kv.to_string()])
            .collect()
    };
    let modes = [
        ("interrupt", extra_for("interrupt", "")),
        (
            "polling",
            extra_for(
                "polling",
                "kern.polling.user_frac=50 kern.polling.burst_max=1000",
            ),
        ),
    ];
    for (mode, extra) in modes {
        println!(
            "== mode {mode}, flood {}s at {} pps, work_ns={work_ns}",
            secs,
            rate.map_or("max".into(), |r| r.to_string())
        );
        lab::in_new_netns(|| {
            lab::setup_tap("tap0", "198.18.0.1/24").expect("tap set-up");
            lab::static_neigh("tap0", "198.18.0.2", [2, 0, 198, 18, 0, 2]).expect("neighbour");
            let work = format!("user.udp_sink.work_ns={work_ns}");
            let dur = (secs + 3).to_string();
            let mut child = Command::new(bin)
                .args([
                    "run",
                    "--if",
                    "tap0",
                    "--addr",
                    "198.18.0.2/24",
                    "--mode",
                    mode,
                    "-w",
                    "1",
                    "--duration",
                    &dur,
                    "--sysctl",
                    &work,
                    // Measurements spin in the idle loop (docs/experiment.md, "Host noise").
                    "--sysctl",
                    "machdep.idle=spin",
                ])
                .args(&extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn pollsim");
            let out = child.stdout.take().expect("stdout");
            let printer = std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    println!("{line}");
                }
            });
            std::thread::sleep(Duration::from_millis(1500));
            let dst: SocketAddrV4 = "198.18.0.2:9".parse().expect("addr");
            let b =
                lab::udp_blast(dst, 18, u64::MAX, rate, Duration::from_secs(secs)).expect("blast");
            println!(
                "-- sender: {} datagrams in {:.2}s = {:.0} pps ({} failed)",
                b.sent,
                b.elapsed.as_secs_f64(),
                b.sent as f64 / b.elapsed.as_secs_f64(),
                b.failed
            );
            let _ = child.wait();
            let _ = printer.join();
        })
        .expect("netns");
    }
}
