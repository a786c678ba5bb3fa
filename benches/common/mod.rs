//! What the benchmarks share.

/// The host's stolen and total jiffies so far (/proc/stat's cpu line):
/// the steal over a run is the difference of two readings.
pub fn steal() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    (v.get(7).copied().unwrap_or(0), v.iter().sum())
}
