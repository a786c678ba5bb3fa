//! The host check before a sweep: an idle instance (`machdep.idle=spin`, no
//! flood) for about a second, and what the host took from its CPU in that
//! time, with a one-line verdict: quiet if the host took no more than
//! `--max-steal` percent, noisy otherwise.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::HostDiag;
use super::output::human;
use super::sweep::{Instance, host_window};

/// How long the host is watched.
pub const SECONDS: f64 = 1.0;

/// What the host did while an idle instance ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostCheck {
    /// Length of the window, s.
    pub seconds: f64,
    /// The host's account of the window.
    pub host: HostDiag,
    /// The limit a trial is held to (`--max-steal`), %.
    pub max_steal_pct: f64,
    /// Whether the host took no more than the limit.
    pub quiet: bool,
}

impl HostCheck {
    /// The verdict on `host` over `seconds` against `max_steal_pct`.
    pub fn new(host: HostDiag, seconds: f64, max_steal_pct: f64) -> HostCheck {
        HostCheck {
            quiet: host.noise_pct() <= max_steal_pct,
            seconds,
            host,
            max_steal_pct,
        }
    }

    /// Watch the host for [`SECONDS`] through a fresh idle instance named
    /// `name`.
    pub fn measure(name: &str, max_steal_pct: f64) -> anyhow::Result<HostCheck> {
        let mut inst = Instance::start(name, "polling", &[])?;
        // Let the instance settle (its first ticks, the control socket).
        std::thread::sleep(Duration::from_millis(200));
        let a = inst.snapshot()?;
        std::thread::sleep(Duration::from_secs_f64(SECONDS));
        let b = inst.snapshot()?;
        inst.stop();
        let secs = b.seconds_since(&a);
        let host = host_window(&a, &b, secs)
            .ok_or_else(|| anyhow::anyhow!("the instance keeps no host account (kern.sched.*)"))?;
        Ok(HostCheck::new(host, secs, max_steal_pct))
    }

    /// The check recorded in results' `meta.host`, if any.
    pub fn from_meta(meta: &serde_json::Map<String, serde_json::Value>) -> Option<HostCheck> {
        serde_json::from_value(meta.get("host")?.clone()).ok()
    }

    /// One line: `host: steal 0.2%, stalls 0.3% (12, longest 1.8 ms), tick
    /// late p50 40 us p99 110 us — quiet`.
    pub fn line(&self) -> String {
        let h = &self.host;
        let us = |v: Option<u64>| match v {
            Some(v) if v >= 1000 => format!("{:.1} ms", v as f64 / 1000.0),
            Some(v) => format!("{v} us"),
            None => "-".into(),
        };
        let verdict = if self.quiet {
            "quiet".to_string()
        } else {
            format!(
                "noisy (over --max-steal {}%): figures below may measure the host",
                human(self.max_steal_pct)
            )
        };
        format!(
            "host: steal {:.1}%, stalls {:.1}% ({}, longest {}), tick late p50 {} p99 {} \u{2014} {verdict}",
            h.steal_pct,
            h.stall_pct,
            h.stalls,
            us(h.stall_max_us),
            us(h.tick_late_us.p50),
            us(h.tick_late_us.p99),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::TickLate;

    #[test]
    fn verdict_line() {
        let host = HostDiag {
            steal_pct: 0.2,
            stall_pct: 0.3,
            stalls: 12,
            stall_max_us: Some(1_750),
            tick_late_us: TickLate {
                p50: Some(40),
                p99: Some(110),
                max: Some(2_000),
            },
            ..HostDiag::default()
        };
        let c = HostCheck::new(host.clone(), 1.0, 5.0);
        assert!(c.quiet);
        assert_eq!(
            c.line(),
            "host: steal 0.2%, stalls 0.3% (12, longest 1.8 ms), tick late p50 40 us p99 110 us \u{2014} quiet"
        );
        let noisy = HostCheck::new(
            HostDiag {
                steal_pct: 7.5,
                ..host
            },
            1.0,
            5.0,
        );
        assert!(!noisy.quiet);
        assert!(
            noisy
                .line()
                .ends_with("noisy (over --max-steal 5%): figures below may measure the host")
        );
    }
}
