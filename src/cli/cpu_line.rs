//! The line of one CPU in `run --cpus N -w` and `pollsim stat` of an
//! instance of several CPUs: its queue's offered, received and missed
//! rates, what its udp-sink read, and its CPU shares, from its MIB.

use pollsim_sysctl::{Mib, Value};

use crate::kernel::Kernel;

/// One CPU's counters at an instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuLine {
    rx: i64,
    missed: i64,
    read: i64,
    cp_time: [i64; 5],
}

impl CpuLine {
    /// The columns of [`CpuLine::line`].
    pub const HEADER: &str =
        "cpu   offered/s  received/s   missed/s  delivered/s   user%   sys%  intr%  idle%";

    /// From node values: `get(name)` reads one. `nic` is the interface
    /// whose queue the CPU serves.
    pub fn from_nodes(get: &dyn Fn(&str) -> Option<Value>, nic: &str) -> CpuLine {
        let int = |n: &str| match get(n) {
            Some(Value::Int(v)) => v,
            _ => 0,
        };
        let mut cp_time = [0; 5];
        if let Some(Value::List(l)) = get("kern.cp_time") {
            for (i, v) in l.iter().take(5).enumerate() {
                cp_time[i] = crate::sat(*v);
            }
        }
        CpuLine {
            rx: int(&format!("dev.{nic}.rx_packets")),
            missed: int(&format!("dev.{nic}.rx_missed")),
            read: int("user.udp_sink.datagrams"),
            cp_time,
        }
    }

    /// CPU `k`'s counters, its queue being of `nic`.
    pub fn of_kernel(k: &Kernel, mib: &Mib<Kernel>, nic: &str) -> CpuLine {
        CpuLine::from_nodes(&|n| mib.get(k, n).ok(), nic)
    }

    /// A simulated CPU's counters (its queue of tap0).
    pub fn of_sim(s: &crate::sim::Sim) -> CpuLine {
        CpuLine::of_kernel(&s.k, &s.mib, crate::sim::IFNAME)
    }

    /// Several CPUs' counters together: their line is the whole system's
    /// rates, and its shares are of all of them.
    pub fn sum(lines: &[CpuLine]) -> CpuLine {
        let mut t = CpuLine::default();
        for l in lines {
            t.rx += l.rx;
            t.missed += l.missed;
            t.read += l.read;
            for i in 0..5 {
                t.cp_time[i] += l.cp_time[i];
            }
        }
        t
    }

    /// The line since `a`, labelled `label`: rates over the CPUs' own time
    /// (for a sum, over the time of one of them).
    pub fn line(&self, label: &str, a: &CpuLine, cpus: usize) -> String {
        let us: i64 = (0..5).map(|i| self.cp_time[i] - a.cp_time[i]).sum();
        let pct = |i: usize| 100.0 * (self.cp_time[i] - a.cp_time[i]) as f64 / us.max(1) as f64;
        // kern.cp_time is in microseconds, each CPU's own.
        let secs = us as f64 / 1e6 / cpus.max(1) as f64;
        let rate = |v: i64| v as f64 / secs.max(1e-9);
        let (rx, missed) = (self.rx - a.rx, self.missed - a.missed);
        format!(
            "{label:<4} {:>10.0} {:>11.0} {:>10.0} {:>12.0} {:>7.1} {:>6.1} {:>6.1} {:>6.1}",
            rate(rx + missed),
            rate(rx),
            rate(missed),
            rate(self.read - a.read),
            pct(0) + pct(1),
            pct(2),
            pct(3),
            pct(4)
        )
    }
}
