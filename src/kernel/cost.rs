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
//! cost between the stages; see `compare::calibrate`. Knobs follow STYLE.md
//! point 5: declared here beside their state, bounds as named consts,
//! out-of-range writes refused with the bounds.

use pollsim_sysctl::Mib;

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
}

impl CostKnob {
    /// Every knob, in the order the MIB shows them.
    pub const ALL: [CostKnob; 6] = [
        CostKnob::Intr,
        CostKnob::Rx,
        CostKnob::Proto,
        CostKnob::Tick,
        CostKnob::Status,
        CostKnob::Sched,
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
        }
    }
}

/// The charges, in ns. Field docs name the sysctl (a hardware profile,
/// `compare::profile`, stores them under these names).
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
        };
        *slot = v;
        Ok(())
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
    }
}
