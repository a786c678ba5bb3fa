//! What the host takes from the CPUs pollsim runs on: the hypervisor's
//! steal, read from `/proc/stat` (the eighth field of each `cpuN` line, in
//! USER_HZ ticks), for the CPUs of pollsim's affinity mask.
//!
//! Stalls and tick lateness are measured by the scheduler itself
//! ([`super::clock`], [`super::sched`]) and kept in
//! [`crate::kernel::host::HostStats`]; steal is the host's own account of
//! the same thing, seen from outside the guest's scheduler.

use pollsim_sysctl::Mib;

use crate::kernel::Kernel;
use crate::sat;

/// Steal per CPU so far, in microseconds, indexed by CPU number (empty if
/// `/proc/stat` cannot be read).
pub fn steal_per_cpu() -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    parse_steal(&text, clk_tck())
}

/// USER_HZ, the unit of `/proc/stat`.
fn clk_tck() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

/// The steal column of every `cpuN` line of `/proc/stat` text, in
/// microseconds, indexed by N.
pub fn parse_steal(text: &str, ticks_per_sec: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(n) = f
            .next()
            .and_then(|c| c.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let steal: u64 = f.nth(7).and_then(|v| v.parse().ok()).unwrap_or(0);
        if out.len() <= n {
            out.resize(n + 1, 0);
        }
        out[n] = steal * 1_000_000 / ticks_per_sec;
    }
    out
}

/// The CPUs this thread may run on.
pub fn affinity() -> Vec<usize> {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect()
}

/// Register `kern.sched.steal_us` and `kern.sched.steal_cpus`, read from
/// the host when read; the count starts now.
pub fn register_sysctl(mib: &mut Mib<Kernel>) {
    let base = steal_per_cpu();
    mib.add_ro(
        "kern.sched.steal_us",
        "Time the host's hypervisor took from the CPUs pollsim may run on \
         since start (/proc/stat steal, summed over kern.sched.steal_cpus), \
         in microseconds",
        move |_| {
            let now = steal_per_cpu();
            sat(affinity()
                .iter()
                .map(|&c| {
                    let (a, b) = (base.get(c), now.get(c));
                    b.unwrap_or(&0).saturating_sub(*a.unwrap_or(&0))
                })
                .sum())
        },
    );
    mib.add_ro(
        "kern.sched.steal_cpus",
        "CPUs pollsim may run on (its affinity mask), over which steal_us sums",
        |_| sat(affinity().len() as u64),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_column_of_each_cpu_line() {
        let text = "cpu  9309 0 2018 78415 188 0 26 189 0 0\n\
                    cpu0 4467 0 876 39612 32 0 7 83 0 0\n\
                    cpu1 4841 0 1141 38803 156 0 19 105 0 0\n\
                    intr 12345\n";
        assert_eq!(parse_steal(text, 100), [830_000, 1_050_000]);
    }

    #[test]
    fn this_machine_has_an_account_for_every_cpu_of_the_mask() {
        let steal = steal_per_cpu();
        for c in affinity() {
            assert!(c < steal.len(), "no /proc/stat line for cpu{c}");
        }
    }
}
