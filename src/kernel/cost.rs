//! The cost model of the virtual clock: how much CPU time each unit of
//! kernel work takes when nothing is measured (`hw.sim.*`).
//!
//! On the real clock, CPU time is whatever the work took. Under virtual
//! time ([`super::vsched`]) the same kernel methods run, and the clock is
//! advanced by these charges instead:
//!
//! | unit of work | charge |
//! |---|---|
//! | an interrupt (ISR) moving `n` frames | `intr_cost_ns + n * rx_cost_ns` |
//! | a netisr frame from `ipintrq` | `proto_cost_ns` |
//! | a polling chunk taking `n` frames | `n * (rx_cost_ns + proto_cost_ns)`, plus `status_cost_ns` on `POLL_AND_CHECK_STATUS` |
//! | an idle-loop poll taking `n` frames | `n * (rx_cost_ns + proto_cost_ns)` |
//! | a clock interrupt (`hardclock`) | `tick_cost_ns` |
//! | the scheduler's check for raised interrupts before a unit of netisr or user work, while a line is unmasked | `sched_cost_ns` |
//! | a once-a-second status read, per NIC | `status_cost_ns` |
//! | an app's step | its own `work_ns` (`Clock::burn`) |
//! | a reactor poll examining `n` registrations | `reactor_call_ns + n * reactor_scan_ns` (`scan`) or `reactor_call_ns + n * reactor_ready_ns` (`ready`) |
//! | a registration, a re-arm (`ready` backend only: `epoll_ctl` ADD, MOD) | `reactor_reg_ns`, `reactor_rearm_ns` |
//! | switching in a connection thread of tcp-echo's threads model (a wake-up) | `ctxsw_ns`, in sys |
//! | an app's busy poll taking `n` frames (`user.<app>.busy_poll`) | `n * (rx_cost_ns + proto_cost_ns)`, in sys, the app's; an empty one spins to the next event, at most a user slice |
//!
//! The defaults are this project's own costs on its tap path, measured with
//! `pollsim calibrate` on the 2-core development machine (2026-11-23):
//! `tick`, `status` and `sched` are medians of micro-measurements (timerfd
//! tick 7.2-11.5 us cold, procfs status read 18.4-23.1 us, empty
//! `epoll_wait` 102-111 ns); `rx`, `proto` and `intr` are the mean of two
//! in-situ fits to real quick sweeps' CPU shares (rx 298 / 356 ns, proto
//! 402 / 678 ns, intr 1587 / 1071 ns). The isolated figures split the
//! per-frame cost differently (a tap read alone 440-670 ns, smoltcp's
//! ingress of a small datagram alone 45-80 ns): under a flood, caches, the
//! scheduler's per-unit work and the host's share of the tap path move
//! cost between the stages; see `compare::calibrate`.
//!
//! The reactor's costs are charged to the user process on whose behalf the
//! reactor works (`Kernel::user_step`: the poll to the process that runs
//! after it, a registration or re-arm to the app that makes it), and shown
//! as `user.<app>.reactor_ns`. Their defaults are pollsim's own reactor
//! (`src/kernel/reactor.rs`) measured by `pollsim bench reactor --costs`
//! (release build, this 2-core machine, 2026-12-07, medians of 5 runs):
//! three runs gave call 15 / 23 / 15 ns, scan 6 / 6 / 7 ns per
//! registration, ready 11 / 12 / 10 ns per event, reg 109 / 110 / 106 ns,
//! rearm 39 / 38 / 36 ns (host steal 0.0 % over the runs); the defaults are
//! the medians. Each figure is pollsim's reactor on smoltcp sockets, not
//! Linux's epoll or select: it is what the real clock pays for the same
//! work, so that both clocks charge the same model.
//! The `scan` backend pays no registration or re-arm cost (select/poll
//! pass the descriptor set on every call; setting a bit is free), the
//! `ready` backend pays both (epoll_ctl ADD and MOD). Knobs follow STYLE.md
//! point 5: declared here beside their state, bounds as named consts,
//! out-of-range writes refused with the bounds.

use pollsim_sysctl::Mib;

use super::reactor::Backend;

/// Highest accepted cost of any unit, ns (10 ms: a tick at the lowest hz).
pub const MAX_COST_NS: u64 = 10_000_000;

/// Default `hw.sim.intr_cost_ns`: entering and leaving the ISR (an
/// `epoll_wait` wake-up on the tap's fd and the dispatch).
pub const DEFAULT_INTR_COST_NS: u64 = 1_330;
/// Default `hw.sim.rx_cost_ns`: the driver taking one frame from the ring
/// (a tap `read(2)` of a 60-byte frame).
pub const DEFAULT_RX_COST_NS: u64 = 330;
/// Default `hw.sim.proto_cost_ns`: one frame through the netisr (smoltcp's
/// ingress of a UDP datagram, the socket-buffer accounting).
pub const DEFAULT_PROTO_COST_NS: u64 = 540;
/// Default `hw.sim.tick_cost_ns`: one `hardclock` (timerfd read included).
pub const DEFAULT_TICK_COST_NS: u64 = 7_400;
/// Default `hw.sim.sched_cost_ns`: the real scheduler's `epoll_wait` for
/// raised interrupt lines, paid before every unit of work while a NIC's
/// interrupts are unmasked (interrupt mode only).
pub const DEFAULT_SCHED_COST_NS: u64 = 110;
/// Default `hw.sim.status_cost_ns`: one status check of a NIC (reading the
/// tap's statistics from procfs).
pub const DEFAULT_STATUS_COST_NS: u64 = 18_800;
/// Default `hw.sim.reactor_call_ns`: the fixed part of one reactor poll
/// (the syscall of epoll_wait or select, the events buffer).
pub const DEFAULT_REACTOR_CALL_NS: u64 = 15;
/// Default `hw.sim.reactor_scan_ns`: one registration a `scan` poll
/// examines (select copying and checking one descriptor).
pub const DEFAULT_REACTOR_SCAN_NS: u64 = 6;
/// Default `hw.sim.reactor_ready_ns`: one ready-list entry a `ready` poll
/// examines.
pub const DEFAULT_REACTOR_READY_NS: u64 = 11;
/// Default `hw.sim.reactor_reg_ns`: one registration with the `ready`
/// backend (epoll_ctl ADD: the wakers set on the socket).
pub const DEFAULT_REACTOR_REG_NS: u64 = 109;
/// Default `hw.sim.reactor_rearm_ns`: one re-arm with the `ready` backend
/// (epoll_ctl MOD of a oneshot registration).
pub const DEFAULT_REACTOR_REARM_NS: u64 = 38;

/// Default `hw.sim.ctxsw_ns`: one context switch, measured on the 2-core
/// development machine (2026-12-07) by a pipe ping-pong between two
/// threads pinned to one CPU: a round trip (two switches, two 1-byte
/// writes and reads) took 2934-3242 ns, the writes and reads alone
/// 400-780 ns, so 841-1082 ns a switch over three runs (the middle one
/// taken), steal 0 %. The process switches among the apps themselves are
/// not charged: the calibrated costs were measured with every simulated
/// process in one host thread, where no switch happens.
pub const DEFAULT_CTXSW_NS: u64 = 920;

/// One `hw.sim` knob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CostKnob {
    /// `intr_cost_ns`.
    Intr,
    /// `rx_cost_ns`.
    Rx,
    /// `proto_cost_ns`.
    Proto,
    /// `tick_cost_ns`.
    Tick,
    /// `status_cost_ns`.
    Status,
    /// `sched_cost_ns`.
    Sched,
    /// `reactor_call_ns`.
    ReactorCall,
    /// `reactor_scan_ns`.
    ReactorScan,
    /// `reactor_ready_ns`.
    ReactorReady,
    /// `reactor_reg_ns`.
    ReactorReg,
    /// `reactor_rearm_ns`.
    ReactorRearm,
    /// `ctxsw_ns`.
    Ctxsw,
}

impl CostKnob {
    /// Every knob, in the order the MIB shows them.
    pub const ALL: [CostKnob; 12] = [
        CostKnob::Intr,
        CostKnob::Rx,
        CostKnob::Proto,
        CostKnob::Tick,
        CostKnob::Status,
        CostKnob::Sched,
        CostKnob::ReactorCall,
        CostKnob::ReactorScan,
        CostKnob::ReactorReady,
        CostKnob::ReactorReg,
        CostKnob::ReactorRearm,
        CostKnob::Ctxsw,
    ];

    /// The reactor's knobs (measured by `pollsim bench reactor --costs`,
    /// not fitted by calibrate's sweeps).
    pub const REACTOR: [CostKnob; 5] = [
        CostKnob::ReactorCall,
        CostKnob::ReactorScan,
        CostKnob::ReactorReady,
        CostKnob::ReactorReg,
        CostKnob::ReactorRearm,
    ];

    /// The full sysctl name.
    pub fn name(self) -> &'static str {
        match self {
            CostKnob::Intr => "hw.sim.intr_cost_ns",
            CostKnob::Rx => "hw.sim.rx_cost_ns",
            CostKnob::Proto => "hw.sim.proto_cost_ns",
            CostKnob::Tick => "hw.sim.tick_cost_ns",
            CostKnob::Status => "hw.sim.status_cost_ns",
            CostKnob::Sched => "hw.sim.sched_cost_ns",
            CostKnob::ReactorCall => "hw.sim.reactor_call_ns",
            CostKnob::ReactorScan => "hw.sim.reactor_scan_ns",
            CostKnob::ReactorReady => "hw.sim.reactor_ready_ns",
            CostKnob::ReactorReg => "hw.sim.reactor_reg_ns",
            CostKnob::ReactorRearm => "hw.sim.reactor_rearm_ns",
            CostKnob::Ctxsw => "hw.sim.ctxsw_ns",
        }
    }

    /// The sysctl description.
    pub fn description(self) -> &'static str {
        match self {
            CostKnob::Intr => "Simulated CPU time to enter and leave a NIC interrupt, ns",
            CostKnob::Rx => "Simulated CPU time for the driver to take one frame, ns",
            CostKnob::Proto => "Simulated CPU time for the netisr to process one frame, ns",
            CostKnob::Tick => "Simulated CPU time of one clock interrupt (hardclock), ns",
            CostKnob::Status => "Simulated CPU time of one NIC status check, ns",
            CostKnob::Sched => {
                "Simulated CPU time of the scheduler's check for interrupts before a unit of work, ns"
            }
            CostKnob::ReactorCall => "Simulated CPU time of one reactor poll, fixed part, ns",
            CostKnob::ReactorScan => {
                "Simulated CPU time per registration a scan poll examines (select/poll), ns"
            }
            CostKnob::ReactorReady => {
                "Simulated CPU time per ready-list entry a ready poll examines (epoll), ns"
            }
            CostKnob::ReactorReg => {
                "Simulated CPU time of one registration, ready backend (epoll_ctl ADD), ns"
            }
            CostKnob::ReactorRearm => {
                "Simulated CPU time of one re-arm, ready backend (epoll_ctl MOD), ns"
            }
            CostKnob::Ctxsw => {
                "Simulated CPU time of a context switch to a woken connection thread (tcp-echo threads model), ns"
            }
        }
    }

    /// The default.
    pub fn default_value(self) -> u64 {
        match self {
            CostKnob::Intr => DEFAULT_INTR_COST_NS,
            CostKnob::Rx => DEFAULT_RX_COST_NS,
            CostKnob::Proto => DEFAULT_PROTO_COST_NS,
            CostKnob::Tick => DEFAULT_TICK_COST_NS,
            CostKnob::Status => DEFAULT_STATUS_COST_NS,
            CostKnob::Sched => DEFAULT_SCHED_COST_NS,
            CostKnob::ReactorCall => DEFAULT_REACTOR_CALL_NS,
            CostKnob::ReactorScan => DEFAULT_REACTOR_SCAN_NS,
            CostKnob::ReactorReady => DEFAULT_REACTOR_READY_NS,
            CostKnob::ReactorReg => DEFAULT_REACTOR_REG_NS,
            CostKnob::ReactorRearm => DEFAULT_REACTOR_REARM_NS,
            CostKnob::Ctxsw => DEFAULT_CTXSW_NS,
        }
    }
}

/// The charges, in ns. Field docs name the sysctl (a hardware profile,
/// `compare::profile`, stores them under these names; a profile written
/// before the reactor's costs existed loads with their defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CostModel {
    /// `hw.sim.intr_cost_ns`.
    pub intr_cost_ns: u64,
    /// `hw.sim.rx_cost_ns`.
    pub rx_cost_ns: u64,
    /// `hw.sim.proto_cost_ns`.
    pub proto_cost_ns: u64,
    /// `hw.sim.tick_cost_ns`.
    pub tick_cost_ns: u64,
    /// `hw.sim.status_cost_ns`.
    pub status_cost_ns: u64,
    /// `hw.sim.sched_cost_ns`.
    pub sched_cost_ns: u64,
    /// `hw.sim.reactor_call_ns`.
    #[serde(default = "default_reactor_call")]
    pub reactor_call_ns: u64,
    /// `hw.sim.reactor_scan_ns`.
    #[serde(default = "default_reactor_scan")]
    pub reactor_scan_ns: u64,
    /// `hw.sim.reactor_ready_ns`.
    #[serde(default = "default_reactor_ready")]
    pub reactor_ready_ns: u64,
    /// `hw.sim.reactor_reg_ns`.
    #[serde(default = "default_reactor_reg")]
    pub reactor_reg_ns: u64,
    /// `hw.sim.reactor_rearm_ns`.
    #[serde(default = "default_reactor_rearm")]
    pub reactor_rearm_ns: u64,
    /// `hw.sim.ctxsw_ns` (a profile written before it existed loads with
    /// the default).
    #[serde(default = "default_ctxsw_ns")]
    pub ctxsw_ns: u64,
}

fn default_reactor_call() -> u64 {
    DEFAULT_REACTOR_CALL_NS
}
fn default_reactor_scan() -> u64 {
    DEFAULT_REACTOR_SCAN_NS
}
fn default_reactor_ready() -> u64 {
    DEFAULT_REACTOR_READY_NS
}
fn default_reactor_reg() -> u64 {
    DEFAULT_REACTOR_REG_NS
}
fn default_reactor_rearm() -> u64 {
    DEFAULT_REACTOR_REARM_NS
}

fn default_ctxsw_ns() -> u64 {
    DEFAULT_CTXSW_NS
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            intr_cost_ns: DEFAULT_INTR_COST_NS,
            rx_cost_ns: DEFAULT_RX_COST_NS,
            proto_cost_ns: DEFAULT_PROTO_COST_NS,
            tick_cost_ns: DEFAULT_TICK_COST_NS,
            status_cost_ns: DEFAULT_STATUS_COST_NS,
            sched_cost_ns: DEFAULT_SCHED_COST_NS,
            reactor_call_ns: DEFAULT_REACTOR_CALL_NS,
            reactor_scan_ns: DEFAULT_REACTOR_SCAN_NS,
            reactor_ready_ns: DEFAULT_REACTOR_READY_NS,
            reactor_reg_ns: DEFAULT_REACTOR_REG_NS,
            reactor_rearm_ns: DEFAULT_REACTOR_REARM_NS,
            ctxsw_ns: DEFAULT_CTXSW_NS,
        }
    }
}

/// A refused write: the value and the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value}: Invalid argument (0..{max})", max = MAX_COST_NS)]
pub struct CostError {
    /// The knob.
    pub name: &'static str,
    /// The value refused.
    pub value: i64,
}

impl CostModel {
    /// The value of `knob`.
    pub fn get(&self, knob: CostKnob) -> u64 {
        match knob {
            CostKnob::Intr => self.intr_cost_ns,
            CostKnob::Rx => self.rx_cost_ns,
            CostKnob::Proto => self.proto_cost_ns,
            CostKnob::Tick => self.tick_cost_ns,
            CostKnob::Status => self.status_cost_ns,
            CostKnob::Sched => self.sched_cost_ns,
            CostKnob::ReactorCall => self.reactor_call_ns,
            CostKnob::ReactorScan => self.reactor_scan_ns,
            CostKnob::ReactorReady => self.reactor_ready_ns,
            CostKnob::ReactorReg => self.reactor_reg_ns,
            CostKnob::ReactorRearm => self.reactor_rearm_ns,
            CostKnob::Ctxsw => self.ctxsw_ns,
        }
    }

    /// Set `knob`, refusing (never clamping) a value outside 0..=MAX_COST_NS.
    pub fn set(&mut self, knob: CostKnob, value: i64) -> Result<(), CostError> {
        let v = u64::try_from(value)
            .ok()
            .filter(|v| *v <= MAX_COST_NS)
            .ok_or(CostError {
                name: knob.name(),
                value,
            })?;
        let slot = match knob {
            CostKnob::Intr => &mut self.intr_cost_ns,
            CostKnob::Rx => &mut self.rx_cost_ns,
            CostKnob::Proto => &mut self.proto_cost_ns,
            CostKnob::Tick => &mut self.tick_cost_ns,
            CostKnob::Status => &mut self.status_cost_ns,
            CostKnob::Sched => &mut self.sched_cost_ns,
            CostKnob::ReactorCall => &mut self.reactor_call_ns,
            CostKnob::ReactorScan => &mut self.reactor_scan_ns,
            CostKnob::ReactorReady => &mut self.reactor_ready_ns,
            CostKnob::ReactorReg => &mut self.reactor_reg_ns,
            CostKnob::ReactorRearm => &mut self.reactor_rearm_ns,
            CostKnob::Ctxsw => &mut self.ctxsw_ns,
        };
        *slot = v;
        Ok(())
    }

    /// The charge of one reactor poll that examined `examined`
    /// registrations with `backend` (`Reactor::poll`'s return).
    pub fn reactor_poll_ns(&self, backend: Backend, examined: u64) -> u64 {
        let per = match backend {
            Backend::Scan => self.reactor_scan_ns,
            Backend::Ready => self.reactor_ready_ns,
        };
        self.reactor_call_ns
            .saturating_add(examined.saturating_mul(per))
    }

    /// The charge of `regs` registrations and `rearms` re-arms with
    /// `backend` (free with `scan`: select sets a bit).
    pub fn reactor_ctl_ns(&self, backend: Backend, regs: u64, rearms: u64) -> u64 {
        match backend {
            Backend::Scan => 0,
            Backend::Ready => regs
                .saturating_mul(self.reactor_reg_ns)
                .saturating_add(rearms.saturating_mul(self.reactor_rearm_ns)),
        }
    }

    /// Every knob as `name=value`, as `--sysctl` and `pollsim calibrate` print.
    pub fn sysctl_lines(&self) -> Vec<String> {
        CostKnob::ALL
            .iter()
            .map(|k| format!("{}={}", k.name(), self.get(*k)))
            .collect()
    }
}

/// Register the `hw.sim.*` nodes of the model `get`/`get_mut` find.
pub fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> Option<&CostModel>,
    get_mut: fn(&mut C) -> Option<&mut CostModel>,
) {
    let max = i64::try_from(MAX_COST_NS).unwrap_or(i64::MAX);
    for knob in CostKnob::ALL {
        mib.add_rw(
            knob.name(),
            knob.description(),
            (0, max),
            move |_| (0, max),
            move |c| get(c).map_or(0, |m| crate::sat(m.get(knob))),
            move |c, v| match get_mut(c) {
                Some(m) => m.set(knob, v).map_err(|e| e.to_string()),
                None => Err("the cost model exists only under virtual time".into()),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_out_of_range_are_refused_not_clamped() {
        let mut m = CostModel::default();
        for k in CostKnob::ALL {
            assert_eq!(m.get(k), k.default_value());
        }
        m.set(CostKnob::Rx, 0).unwrap();
        m.set(CostKnob::Proto, 10_000_000).unwrap();
        let e = m.set(CostKnob::Proto, 10_000_001).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hw.sim.proto_cost_ns=10000001: Invalid argument (0..10000000)"
        );
        assert!(m.set(CostKnob::Tick, -1).is_err());
        assert_eq!((m.rx_cost_ns, m.proto_cost_ns), (0, 10_000_000));
        assert_eq!(m.sysctl_lines()[1], "hw.sim.rx_cost_ns=0");
        assert!(m.set(CostKnob::ReactorScan, 10_000_001).is_err());
    }

    #[test]
    fn a_profile_without_the_reactor_costs_loads_with_their_defaults() {
        let old = r#"{"intr_cost_ns":1,"rx_cost_ns":2,"proto_cost_ns":3,
            "tick_cost_ns":4,"status_cost_ns":5,"sched_cost_ns":6}"#;
        let m: CostModel = serde_json::from_str(old).unwrap();
        assert_eq!((m.intr_cost_ns, m.sched_cost_ns), (1, 6));
        for k in CostKnob::REACTOR {
            assert_eq!(m.get(k), k.default_value(), "{}", k.name());
        }
    }

    #[test]
    fn reactor_charges_follow_the_backend() {
        let mut m = CostModel::default();
        for (k, v) in CostKnob::REACTOR.into_iter().zip([100, 10, 30, 200, 150]) {
            m.set(k, v).unwrap();
        }
        assert_eq!(m.reactor_poll_ns(Backend::Scan, 1_000), 100 + 10_000);
        assert_eq!(m.reactor_poll_ns(Backend::Ready, 4), 100 + 120);
        assert_eq!(m.reactor_ctl_ns(Backend::Scan, 3, 5), 0);
        assert_eq!(m.reactor_ctl_ns(Backend::Ready, 3, 5), 600 + 750);
    }
}
