//! The hardware profile: the `hw.sim.*` costs `pollsim calibrate` measured
//! on one host, written as TOML (`~/.config/pollsim/hw.toml` or
//! `--profile FILE`), and loaded by every `--sim` command so that the
//! simulation charges this host's costs instead of the built-in ones.
//!
//! Which costs a command uses, first match wins: `--profile FILE` (or
//! `--profile builtin`), then `$POLLSIM_PROFILE` (same values), then the
//! default path if the file exists, then the built-in reference costs of
//! `src/kernel/cost.rs`. Every `--sim` command says on stderr which one it
//! used, and results.json records it (`meta.cost_source`,
//! `meta.cost_model`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::kernel::cost::{CostKnob, CostModel};

/// The environment variable that names a profile (or `builtin`).
pub const ENV: &str = "POLLSIM_PROFILE";
/// The value of `--profile` or `$POLLSIM_PROFILE` that asks for the
/// built-in costs, whatever profile exists.
pub const BUILTIN: &str = "builtin";
/// Where the built-in costs come from, as `--sim` says it.
pub const BUILTIN_ORIGIN: &str = "measured with `pollsim calibrate` on the 2-core development \
     machine on 2026-11-23 (src/kernel/cost.rs)";

/// The host a profile was measured on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs of the host (`processor` lines of /proc/cpuinfo).
    pub cpus: usize,
    /// Kernel release (uname -r).
    pub kernel: String,
    /// When the calibration ran (RFC 3339, UTC).
    pub calibrated: String,
    /// The host's steal during the real sweep's host check, %.
    pub steal_pct: f64,
    /// The pollsim version that measured it.
    pub pollsim: String,
}

impl HostInfo {
    /// This host, now, with `steal_pct`.
    pub fn this_host(steal_pct: f64) -> HostInfo {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        HostInfo {
            cpu_model,
            // Not available_parallelism: calibrate pins itself to one CPU.
            cpus: cpuinfo
                .lines()
                .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
                .count()
                .max(1),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            calibrated: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            steal_pct,
            pollsim: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// A cost model as read from a profile: each value checked against the
/// knob's bounds (a file may hold anything).
fn checked(m: &CostModel) -> anyhow::Result<CostModel> {
    let mut out = CostModel::default();
    for knob in CostKnob::ALL {
        out.set(knob, i64::try_from(m.get(knob)).unwrap_or(i64::MAX))?;
    }
    Ok(out)
}

/// What `pollsim calibrate` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The host.
    pub host: HostInfo,
    /// The costs `--sim` charges (in-situ fit, refined), named as their
    /// sysctls' last component.
    pub costs: CostModel,
    /// The micro-measured costs, for reference (not loaded).
    pub isolated: Option<CostModel>,
}

impl Profile {
    /// Read and check the profile at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the profile {}", path.display()))?;
        let p: Profile = toml::from_str(&text)
            .with_context(|| format!("parsing the profile {}", path.display()))?;
        checked(&p.costs).with_context(|| format!("the profile {}", path.display()))?;
        Ok(p)
    }

    /// Write the profile to `path`, creating its directory.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = format!(
            "# pollsim hardware profile: the hw.sim costs of this host, written by\n\
             # `pollsim calibrate`; every --sim command loads it (see docs/simulation.md).\n{}",
            toml::to_string_pretty(self).context("the profile as TOML")?
        );
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// The default profile path: `$XDG_CONFIG_HOME/pollsim/hw.toml`, else
/// `$HOME/.config/pollsim/hw.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("pollsim").join("hw.toml"))
}

/// The costs a `--sim` command charges, and where they come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Costs {
    /// The built-in reference costs.
    Builtin,
    /// A model being tried (by `pollsim calibrate`'s refinement).
    Candidate(CostModel),
    /// A profile read from a file.
    File {
        /// Where it was read.
        path: PathBuf,
        /// What it holds (boxed: a profile is several times a cost model).
        profile: Box<Profile>,
    },
}

impl Costs {
    /// Resolve `--profile` (`flag`), `$POLLSIM_PROFILE`, the default path,
    /// the built-in costs, in that order. A profile that is named but
    /// missing or invalid is an error, never silently replaced.
    pub fn resolve(flag: Option<&str>) -> anyhow::Result<Costs> {
        let env = std::env::var(ENV).ok().filter(|v| !v.is_empty());
        let named = flag.map(str::to_string).or(env);
        match named.as_deref() {
            Some(BUILTIN) => Ok(Costs::Builtin),
            Some(p) => Costs::from_file(Path::new(p)),
            None => match default_path().filter(|p| p.exists()) {
                Some(p) => Costs::from_file(&p),
                None => Ok(Costs::Builtin),
            },
        }
    }

    fn from_file(path: &Path) -> anyhow::Result<Costs> {
        Ok(Costs::File {
            path: path.to_path_buf(),
            profile: Box::new(Profile::load(path)?),
        })
    }

    /// The model charged.
    pub fn model(&self) -> CostModel {
        match self {
            Costs::Builtin => CostModel::default(),
            Costs::Candidate(m) => *m,
            // Checked when loaded.
            Costs::File { profile, .. } => profile.costs,
        }
    }

    /// The `hw.sim.*=value` lines a simulated instance is started with
    /// (none for the built-in costs, which are the knobs' defaults).
    pub fn sysctl_lines(&self) -> Vec<String> {
        match self {
            Costs::Builtin => Vec::new(),
            Costs::Candidate(_) | Costs::File { .. } => self.model().sysctl_lines(),
        }
    }

    /// One line for stderr: which costs, from where.
    pub fn describe(&self) -> String {
        match self {
            Costs::Builtin => format!(
                "simulated costs: the built-in reference costs, {BUILTIN_ORIGIN}; \
                 run `pollsim calibrate` (root) to measure this host's"
            ),
            Costs::Candidate(m) => format!(
                "simulated costs: a calibration candidate ({})",
                m.sysctl_lines().join(" ")
            ),
            Costs::File { path, profile } => format!(
                "simulated costs: profile {} (calibrated {} on {}, {} CPUs, steal {:.1}%)",
                path.display(),
                profile.host.calibrated,
                profile.host.cpu_model,
                profile.host.cpus,
                profile.host.steal_pct
            ),
        }
    }

    /// Record the source and the model in results.json's meta.
    pub fn meta(&self, meta: &mut serde_json::Map<String, serde_json::Value>) {
        let source = match self {
            Costs::Builtin => format!("builtin: {BUILTIN_ORIGIN}"),
            Costs::Candidate(_) => "calibration candidate".into(),
            Costs::File { path, .. } => path.display().to_string(),
        };
        meta.insert("cost_source".into(), source.into());
        meta.insert("cost_model".into(), self.model().sysctl_lines().into());
        if let Costs::File { profile, .. } = self {
            meta.insert(
                "cost_profile_host".into(),
                serde_json::to_value(&profile.host).unwrap_or_default(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Profile {
        Profile {
            host: HostInfo {
                cpu_model: "Test CPU".into(),
                cpus: 2,
                kernel: "6.1.0".into(),
                calibrated: "2026-12-07T01:00:00Z".into(),
                steal_pct: 0.3,
                pollsim: "0.1.0".into(),
            },
            costs: CostModel {
                intr_cost_ns: 1400,
                rx_cost_ns: 240,
                proto_cost_ns: 470,
                tick_cost_ns: 11_000,
                status_cost_ns: 3000,
                sched_cost_ns: 75,
                ctxsw_ns: 1100,
                ..CostModel::default()
            },
            isolated: None,
        }
    }

    #[test]
    fn a_profile_round_trips_and_its_costs_become_sysctl_lines() {
        let dir = std::env::temp_dir().join(format!("pollsim-profile-{}", std::process::id()));
        let path = dir.join("sub").join("hw.toml");
        sample().save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# pollsim hardware profile"), "{text}");
        assert!(text.contains("intr_cost_ns = 1400"), "{text}");
        let c = Costs::resolve(Some(path.to_str().unwrap())).unwrap();
        assert_eq!(
            c,
            Costs::File {
                path: path.clone(),
                profile: Box::new(sample())
            }
        );
        assert_eq!(c.sysctl_lines()[0], "hw.sim.intr_cost_ns=1400");
        assert_eq!(c.sysctl_lines()[5], "hw.sim.sched_cost_ns=75");
        assert!(c.describe().contains("Test CPU"), "{}", c.describe());
        let mut meta = serde_json::Map::new();
        c.meta(&mut meta);
        assert_eq!(meta["cost_source"], path.display().to_string());
        assert_eq!(meta["cost_model"][1], "hw.sim.rx_cost_ns=240");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_profile_from_before_ctxsw_ns_loads_with_its_default() {
        let dir = std::env::temp_dir().join(format!("pollsim-profile-old-{}", std::process::id()));
        let path = dir.join("hw.toml");
        sample().save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("ctxsw_ns = 1100"), "{text}");
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("ctxsw_ns"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, old).unwrap();
        let Costs::File { profile, .. } = Costs::resolve(Some(path.to_str().unwrap())).unwrap()
        else {
            panic!("a file profile");
        };
        assert_eq!(
            profile.costs.ctxsw_ns,
            crate::kernel::cost::DEFAULT_CTXSW_NS
        );
        assert_eq!(profile.costs.sched_cost_ns, 75);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn builtin_is_the_defaults_and_says_where_they_come_from() {
        let c = Costs::resolve(Some(BUILTIN)).unwrap();
        assert_eq!(c, Costs::Builtin);
        assert!(c.sysctl_lines().is_empty());
        assert_eq!(c.model(), CostModel::default());
        assert!(c.describe().contains("2026-11-23"), "{}", c.describe());
        assert!(c.describe().contains("pollsim calibrate"));
    }

    #[test]
    fn a_named_profile_that_is_missing_or_out_of_range_is_an_error() {
        let e = Costs::resolve(Some("/nonexistent/pollsim/hw.toml")).unwrap_err();
        assert!(
            format!("{e:#}").contains("/nonexistent/pollsim/hw.toml"),
            "{e:#}"
        );
        let dir = std::env::temp_dir().join(format!("pollsim-badprof-{}", std::process::id()));
        let path = dir.join("hw.toml");
        let mut p = sample();
        p.costs.proto_cost_ns = crate::kernel::cost::MAX_COST_NS + 1;
        p.save(&path).unwrap();
        let e = Costs::resolve(Some(path.to_str().unwrap())).unwrap_err();
        assert!(format!("{e:#}").contains("Invalid argument"), "{e:#}");
        std::fs::write(&path, "costs = 3\n").unwrap();
        assert!(Costs::resolve(Some(path.to_str().unwrap())).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
