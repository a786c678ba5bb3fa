//! `--modes`: the disciplines and variants a sweep compares, and the
//! presets `paper` and `all`.
//!
//! A mode is a discipline (`dev.tap0.discipline`) and knobs:
//! `mr:quota=10,feedback=1`. Knobs are given by their short name (the
//! last part of the sysctl name, as the source system spells it) or in
//! full; [`KNOBS`] maps the short ones.

use anyhow::{Context as _, bail};

use crate::kernel::discipline::Kind;

/// One mode to run: its label, `--mode`, and `--sysctl` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeSpec {
    /// As given (`polling:user_frac=20`).
    pub label: String,
    /// The discipline: `interrupt`, `polling`, `napi` or `mr`.
    pub base: String,
    /// Full sysctl assignments.
    pub sysctls: Vec<String>,
}

impl ModeSpec {
    /// The discipline.
    pub fn kind(&self) -> Kind {
        Kind::from_name(&self.base).unwrap_or_default()
    }

    /// The family a plot groups it in: the discipline, with interrupt
    /// moderation apart from plain interrupts.
    pub fn family(&self) -> &'static str {
        family(&self.label)
    }
}

/// The family of a mode label (see [`ModeSpec::family`]), or of a series
/// label (`polling hz=100`: a mode label has no spaces).
pub fn family(label: &str) -> &'static str {
    let label = label.split(' ').next().unwrap_or(label);
    let (base, knobs) = label.split_once(':').unwrap_or((label, ""));
    let moderated = ["rx_usecs", "rx_frames", "adaptive_rx"]
        .iter()
        .any(|k| knobs.contains(k));
    match base {
        "interrupt" if moderated => "interrupt + moderation",
        "interrupt" => "interrupt (4.4BSD)",
        "polling" => "polling (FreeBSD)",
        "napi" => "NAPI (Linux)",
        "mr" => "Mogul & Ramakrishnan",
        _ => "other",
    }
}

/// Short knob names and the sysctl each stands for.
pub const KNOBS: [(&str, &str); 26] = [
    ("work_ns", "user.udp_sink.work_ns"),
    ("burst_max", "kern.polling.burst_max"),
    ("each_burst", "kern.polling.each_burst"),
    ("user_frac", "kern.polling.user_frac"),
    ("reg_frac", "kern.polling.reg_frac"),
    ("idle_poll", "kern.polling.idle_poll"),
    ("netdev_budget", "net.core.netdev_budget"),
    ("netdev_budget_usecs", "net.core.netdev_budget_usecs"),
    ("dev_weight", "net.core.dev_weight"),
    ("defer_to_ksoftirqd", "kern.softirq.defer_to_ksoftirqd"),
    ("napi_defer_hard_irqs", "dev.tap0.napi_defer_hard_irqs"),
    ("gro_flush_timeout", "dev.tap0.gro_flush_timeout"),
    ("irq_suspend_timeout", "dev.tap0.irq_suspend_timeout"),
    ("threaded", "dev.tap0.threaded"),
    ("quota", "net.mr.quota"),
    ("feedback", "net.mr.feedback"),
    ("feedback_hiwat", "net.mr.feedback_hiwat"),
    ("feedback_lowat", "net.mr.feedback_lowat"),
    ("cycle_limit", "net.mr.cycle_limit"),
    ("rx_usecs", "dev.tap0.rx_usecs"),
    ("rx_frames", "dev.tap0.rx_frames"),
    ("adaptive_rx", "dev.tap0.adaptive_rx"),
    ("rx_ring", "dev.tap0.rx_ring"),
    ("rps_cpus", "net.rps.cpus"),
    ("rfs_entries", "net.rfs.entries"),
    ("netdev_max_backlog", "net.core.netdev_max_backlog"),
];

/// `--modes paper`: the family of Mogul & Ramakrishnan's figures: the
/// unmodified kernel, polling with no quota, quotas 5, 10 and 20 without
/// and with queue-state feedback, and a 50 % cycle limit.
pub const PAPER: [&str; 9] = [
    "interrupt",
    "mr:quota=0,feedback=0",
    "mr:quota=5,feedback=0",
    "mr:quota=10,feedback=0",
    "mr:quota=20,feedback=0",
    "mr:quota=5,feedback=1",
    "mr:quota=10,feedback=1",
    "mr:quota=20,feedback=1",
    "mr:quota=10,feedback=0,cycle_limit=50",
];

/// `--modes all`: one of each discipline with its source's defaults, and
/// the variants docs/disciplines.md discusses: fixed moderation at em(4)'s 8000
/// interrupts/s, DIM, both softirq rules, threaded NAPI, NAPI with IRQ
/// deferral (the example of the deferral commit: 10 polls, 20 µs), and
/// Mogul & Ramakrishnan without and with quota and feedback.
pub const ALL: [&str; 10] = [
    "interrupt",
    "interrupt:rx_usecs=125,rx_frames=0",
    "interrupt:adaptive_rx=1",
    "polling",
    "napi",
    "napi:defer_to_ksoftirqd=1",
    "napi:threaded=1",
    "napi:napi_defer_hard_irqs=10,gro_flush_timeout=20000",
    "mr:quota=0,feedback=0",
    "mr",
];

/// `--modes busy`: busy polling against interrupts, Karsten and Damato's
/// comparison ("Suspend IRQs during application busy periods", Linux
/// 6.13) on the two-link system: the probe's server (http, on the quiet
/// tap1) busy-polls tap1's NAPI for 100 ms (across the gaps between
/// probes: their `fullbusy`), plainly and with the pledge
/// (`prefer_busy_poll`, deferral 2 polls / 20 µs), and their `suspend20`
/// (deferral 100 / 20 µs, IRQ suspension 20 ms, one poll per wait).
pub const BUSY: [&str; 5] = [
    "interrupt",
    "napi",
    "napi:user.http.busy_poll=100000",
    "napi:user.http.busy_poll=100000,user.http.prefer_busy_poll=1,dev.tap1.napi_defer_hard_irqs=2,dev.tap1.gro_flush_timeout=20000",
    "napi:user.http.prefer_busy_poll=1,dev.tap1.napi_defer_hard_irqs=100,dev.tap1.gro_flush_timeout=20000,dev.tap1.irq_suspend_timeout=20000000",
];

/// Parse `--modes`: a list of modes (`interrupt`, `napi`,
/// `polling:user_frac=20,burst_max=300`) and presets (`paper`, `all`,
/// `busy`),
/// separated by ',' (or ';' when variants have commas).
pub fn parse_modes(text: &str) -> anyhow::Result<Vec<ModeSpec>> {
    let sep = if text.contains(';') { ';' } else { ',' };
    let mut pieces: Vec<String> = Vec::new();
    // With ',' as separator, `polling:a=1,b=2` keeps its own commas: a piece
    // with '=' and no ':' continues the previous mode.
    for p in text.split(sep).map(str::trim).filter(|p| !p.is_empty()) {
        match (p, pieces.last_mut()) {
            ("paper", _) => pieces.extend(PAPER.iter().map(|m| m.to_string())),
            ("all", _) => pieces.extend(ALL.iter().map(|m| m.to_string())),
            ("busy", _) => pieces.extend(BUSY.iter().map(|m| m.to_string())),
            (p, Some(last)) if sep == ',' && p.contains('=') && !p.contains(':') => {
                last.push(',');
                last.push_str(p);
            }
            (p, _) => pieces.push(p.to_string()),
        }
    }
    let mut out: Vec<ModeSpec> = Vec::new();
    for p in pieces {
        let spec = parse_one(&p)?;
        if !out.iter().any(|m| m.label == spec.label) {
            out.push(spec);
        }
    }
    if out.is_empty() {
        bail!("--modes is empty");
    }
    Ok(out)
}

fn parse_one(p: &str) -> anyhow::Result<ModeSpec> {
    let (base, knobs) = p.split_once(':').unwrap_or((p, ""));
    if Kind::from_name(base).is_none() {
        bail!(
            "unknown mode '{base}' ({}, or the presets paper, all and busy)",
            Kind::NAMES.join(", ")
        );
    }
    let mut sysctls = Vec::new();
    for kv in knobs.split(',').filter(|k| !k.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("'{kv}': expected name=value"))?;
        let name = match KNOBS.iter().find(|(short, _)| *short == k) {
            Some((_, full)) => full.to_string(),
            None if k.contains('.') => k.to_string(),
            None => bail!(
                "'{k}': unknown knob (a sysctl name, or one of {})",
                short_names()
            ),
        };
        sysctls.push(format!("{name}={v}"));
    }
    Ok(ModeSpec {
        label: p.to_string(),
        base: base.to_string(),
        sysctls,
    })
}

/// The sysctls a mode label sets (`napi:user.http.busy_poll=50` →
/// `user.http.busy_poll`), so that a run records in its `params` every
/// knob it was given; none if the label does not parse.
pub fn knob_names(label: &str) -> Vec<String> {
    parse_one(label).map_or_else(
        |_| Vec::new(),
        |m| {
            m.sysctls
                .iter()
                .filter_map(|s| s.split_once('=').map(|(k, _)| k.to_string()))
                .collect()
        },
    )
}

fn short_names() -> String {
    KNOBS.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand_and_knobs_map_to_their_sysctls() {
        let all = parse_modes("all").unwrap();
        assert_eq!(all.len(), ALL.len());
        let mr = all
            .iter()
            .find(|m| m.label == "mr:quota=0,feedback=0")
            .unwrap();
        assert_eq!(mr.sysctls, ["net.mr.quota=0", "net.mr.feedback=0"]);
        assert_eq!(mr.kind(), Kind::Mr);
        let paper = parse_modes("paper,interrupt").unwrap();
        assert_eq!(paper.len(), PAPER.len(), "duplicates are dropped");
        let m = parse_modes("napi:threaded=1,netdev_budget=600,interrupt:rx_usecs=100").unwrap();
        assert_eq!(
            m[0].sysctls,
            ["dev.tap0.threaded=1", "net.core.netdev_budget=600"]
        );
        assert_eq!(m[1].family(), "interrupt + moderation");
        assert!(parse_modes("napi:budget=3").is_err(), "unknown short name");
        assert_eq!(
            knob_names("napi:user.http.busy_poll=50,irq_suspend_timeout=20000000"),
            ["user.http.busy_poll", "dev.tap0.irq_suspend_timeout"]
        );
        assert!(knob_names("interrupt").is_empty());
        let busy = parse_modes("busy").unwrap();
        assert_eq!(busy.len(), BUSY.len());
        assert!(
            busy.iter()
                .all(|m| m.kind() == Kind::Interrupt || m.kind() == Kind::Napi)
        );
        assert!(
            busy[4]
                .sysctls
                .contains(&"dev.tap1.irq_suspend_timeout=20000000".to_string())
        );
        assert!(parse_modes("linux").is_err());
    }
}
