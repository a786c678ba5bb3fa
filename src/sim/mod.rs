//! A whole simulated system on virtual time: the same [`Kernel`] (interrupt
//! and polling engines, netisr, smoltcp, reactor, apps) on two
//! [`VirtNic`]s, as the real sweep's two taps: `tap0` fed by a seeded
//! arrival source (the flood), `tap1` quiet, with an HTTP probe client on
//! the wire of either (the quiet one by default), driven by
//! [`VirtualSched`] and charged by the `hw.sim.*` cost model.
//!
//! Deterministic: the arrival times, smoltcp's randomness and the probe's
//! come from seeds, the scheduler reads no clock, and nothing depends on
//! the host, so the same configuration gives the same counters everywhere.

pub mod probe;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;

use pollsim_drivers::{Arrivals, Pattern, SharedVirtNic, VirtNic};
use pollsim_sysctl::Mib;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::apps::AppKind;
use crate::kernel::clock::{Clock, VirtualClock};
use crate::kernel::cost::CostModel;
use crate::kernel::sched::Hooks;
use crate::kernel::time::{Hz, Nanos};
use crate::kernel::vsched::{VirtualSched, World};
use crate::kernel::{Kernel, KernelConfig, Mode, mib};
use probe::{ProbeClient, ProbeResults};

/// pollsim's address on the flooded wire (tap0).
pub const ADDR: &str = "198.18.0.2";
/// The peer's (the flood's) address on tap0.
pub const PEER_ADDR: &str = "198.18.0.1";
/// pollsim's MAC on tap0 (as `pollsim run` derives it from its address).
pub const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];
/// The peer's MAC on tap0.
pub const PEER_MAC: [u8; 6] = [2, 0, 198, 18, 0, 1];
/// pollsim's address on the quiet wire (tap1).
pub const QUIET_ADDR: &str = "198.18.1.2";
/// The peer's address on tap1.
pub const QUIET_PEER_ADDR: &str = "198.18.1.1";
/// pollsim's MAC on tap1.
pub const QUIET_MAC: [u8; 6] = [2, 0, 198, 18, 1, 2];
/// The peer's MAC on tap1.
pub const QUIET_PEER_MAC: [u8; 6] = [2, 0, 198, 18, 1, 1];
/// The quiet NIC's name.
pub const QUIET_IFNAME: &str = "tap1";

/// Which link the HTTP probe uses (`--probe-link`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeLink {
    /// tap1, which no flood reaches: the machine's responsiveness.
    #[default]
    Quiet,
    /// tap0, the flooded link: the probe's frames share its full queue.
    Flooded,
}

impl ProbeLink {
    /// pollsim's address on that link.
    pub fn addr(self) -> &'static str {
        match self {
            ProbeLink::Quiet => QUIET_ADDR,
            ProbeLink::Flooded => ADDR,
        }
    }

    /// Its name in results (`quiet`, `flooded`).
    pub fn name(self) -> &'static str {
        match self {
            ProbeLink::Quiet => "quiet",
            ProbeLink::Flooded => "flooded",
        }
    }
}
impl ProbeLink {
    /// The simulated NIC it is on (an index of `Kernel::ifs`).
    pub fn nic(self) -> usize {
        match self {
            ProbeLink::Flooded => 0,
            ProbeLink::Quiet => 1,
        }
    }

    /// The peer's MAC and address on that link.
    fn peer(self) -> ([u8; 6], &'static str) {
        match self {
            ProbeLink::Flooded => (PEER_MAC, PEER_ADDR),
            ProbeLink::Quiet => (QUIET_PEER_MAC, QUIET_PEER_ADDR),
        }
    }
}
/// Frames the simulated NIC's ring holds: a tap's queue (`txqueuelen`
/// 1000 on Linux), which is the ring of the real runs.
pub const RING_LEN: usize = 1000;
/// The simulated NIC takes the name of the real runs' tap, so that both
/// runs have the same `dev.tap0.*` nodes.
pub const IFNAME: &str = "tap0";
/// When the simulation starts (not zero, so no span starts at the epoch).
pub const START: Nanos = Nanos::from_secs(1);

/// How to build a simulated system.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Initial input mode.
    pub mode: Mode,
    /// `kern.hz`.
    pub hz: Hz,
    /// The flood's arrival process (UDP to udp-sink, port 9).
    pub pattern: Pattern,
    /// Seed of everything random (arrivals, smoltcp, the probe).
    pub seed: u64,
    /// Apps to run.
    pub apps: Vec<AppKind>,
    /// Knobs set before the apps start, as `name=value`.
    pub sysctls: Vec<String>,
    /// Run the HTTP probe client on this link (needs the http app).
    pub probe: Option<ProbeLink>,
    /// Synthetic idle connections the reactor watches (`--conns`; at most
    /// [`crate::conns::CONNS_MAX`]; see [`crate::conns::add_synthetic`]).
    pub conns: usize,
}

/// Why a simulated system could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The arrival pattern was refused.
    #[error("{0}")]
    Pattern(#[from] pollsim_drivers::arrivals::PatternError),
    /// A `--sysctl` was malformed or refused.
    #[error("--sysctl {0}")]
    Sysctl(String),
    /// The simulated NIC could not be made (it holds no OS resource on
    /// virtual time, so this does not happen today).
    #[error("creating the simulated NIC: {0}")]
    Nic(#[from] std::io::Error),
}

/// The world outside the simulated CPU: the wires into the NICs (tap0 with
/// the flood, tap1 quiet) and the probe on one of them.
pub struct SimWorld {
    nics: [Rc<RefCell<VirtNic>>; 2],
    probe: Option<(ProbeClient, usize)>,
    probe_next: Option<Nanos>,
    /// Frames the probe client put on the wire.
    probe_frames: u64,
}

impl World for SimWorld {
    fn advance(&mut self, now: Nanos) {
        for nic in &self.nics {
            nic.borrow_mut().arrive_until(now.0);
        }
        if let Some((p, i)) = self.probe.as_mut() {
            let mut nic = self.nics[*i].borrow_mut();
            let sent = nic.take_sent();
            for frame in p.advance(now, sent) {
                nic.inject(&frame);
                self.probe_frames += 1;
            }
            self.probe_next = Some(p.next_event(now));
        }
    }

    fn next_event(&self) -> Option<Nanos> {
        self.nics
            .iter()
            .filter_map(|n| n.borrow().next_arrival().map(Nanos))
            .chain(self.probe_next)
            .min()
    }

    fn pending_irqs(&self) -> u64 {
        self.nics
            .iter()
            .enumerate()
            .map(|(i, n)| u64::from(n.borrow().irq_asserted()) << i)
            .fold(0, |m, b| m | b)
    }
}

/// A simulated system, ready to run.
pub struct Sim {
    /// The kernel.
    pub k: Kernel,
    /// Its MIB.
    pub mib: Mib<Kernel>,
    /// The virtual clock.
    pub clock: VirtualClock,
    sched: VirtualSched,
    world: SimWorld,
}

impl Sim {
    /// Build the system at [`START`]: kernel, NIC, apps, knobs, probe.
    pub fn new(cfg: &SimConfig) -> Result<Sim, SimError> {
        Sim::new_wrapped(cfg, |nic| Box::new(nic))
    }

    /// As [`Sim::new`], each of the kernel's NICs being `wrap` of the
    /// simulated one (a capture, say: STYLE.md's wrappers, not flags).
    pub fn new_wrapped(
        cfg: &SimConfig,
        mut wrap: impl FnMut(SharedVirtNic) -> Box<dyn pollsim_drivers::Nic>,
    ) -> Result<Sim, SimError> {
        let cidr = |a: &str| Ipv4Cidr::new(a.parse().unwrap_or(Ipv4Address::UNSPECIFIED), 24);
        let addr = cidr(ADDR);
        let kcfg = KernelConfig {
            hz: cfg.hz,
            addr,
            mode: cfg.mode,
            apps: cfg.apps.clone(),
            seed: cfg.seed,
        };
        let mut nic = VirtNic::new(IFNAME, MAC, RING_LEN)?;
        let arrivals = Arrivals::new(cfg.pattern, cfg.seed, START.0)?;
        nic.set_source(arrivals, flood_frame());
        let (shared, nic) = SharedVirtNic::new(nic)?;
        let (quiet_shared, quiet) =
            SharedVirtNic::new(VirtNic::new(QUIET_IFNAME, QUIET_MAC, RING_LEN)?)?;
        let clock = VirtualClock::new(START);
        let mut k = Kernel::new(&kcfg, START);
        k.cost = Some(CostModel::default());
        k.attach(wrap(shared), &kcfg, START);
        k.attach_at(wrap(quiet_shared), cidr(QUIET_ADDR), &kcfg, START);
        let mib = mib::build(&k);
        for kv in &cfg.sysctls {
            let (name, value) = kv
                .split_once('=')
                .ok_or_else(|| SimError::Sysctl(format!("{kv}: expected NAME=VALUE")))?;
            mib.set(&mut k, name, value)
                .map_err(|e| SimError::Sysctl(e.to_string()))?;
        }
        k.start_apps();
        crate::conns::add_synthetic(&mut k, cfg.conns);
        let probe = cfg.probe.map(|link| {
            let (mac, peer) = link.peer();
            let server = cidr(link.addr()).address();
            let client = ProbeClient::new(mac, cidr(peer), (server, 80), cfg.seed ^ 0x9e37, START);
            (client, link.nic())
        });
        let sched = VirtualSched::new(&mut k, START, None);
        Ok(Sim {
            k,
            mib,
            clock,
            sched,
            world: SimWorld {
                nics: [nic, quiet],
                probe,
                probe_next: None,
                probe_frames: 0,
            },
        })
    }

    /// Run for `span` of virtual time.
    pub fn run_for(&mut self, span: Nanos) {
        let end = self.clock.now() + span;
        self.run_until(end, &mut |_, _| {});
    }

    /// Run until the virtual clock reads `end`, calling `observe` every
    /// report interval set with [`Sim::report_every`].
    pub fn run_until(&mut self, end: Nanos, observe: &mut dyn FnMut(&mut Kernel, Nanos)) {
        let mut hooks = Hooks {
            observe,
            on_tick: &mut |_| {},
        };
        self.sched.run_until(
            &mut self.k,
            &mut self.clock,
            &mut self.world,
            end,
            &mut hooks,
        );
    }

    /// Call the observer every `every` from now on.
    pub fn report_every(&mut self, every: Nanos) {
        self.sched.set_report_every(self.clock.now(), Some(every));
    }

    /// The virtual clock's reading.
    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// Frames the arrival source has put on the wire so far.
    pub fn arrived(&self) -> u64 {
        self.world.nics.iter().map(|n| n.borrow().arrived()).sum()
    }

    /// Frames the probe client has put on the wire so far.
    pub fn probe_frames(&self) -> u64 {
        self.world.probe_frames
    }

    /// Frames waiting in the NICs' rings.
    pub fn ring_pending(&self) -> u64 {
        self.world
            .nics
            .iter()
            .map(|n| n.borrow().pending() as u64)
            .sum()
    }

    /// The probe's results since the last call (empty without a probe).
    pub fn take_probe_results(&mut self) -> ProbeResults {
        self.world
            .probe
            .as_mut()
            .map(|(p, _)| p.take_results())
            .unwrap_or_default()
    }
}

/// The flood's frame: 60 bytes of Ethernet/IPv4/UDP to udp-sink, as
/// `pollsim flood --size 64` sends (64 with the FCS the tap does not carry).
pub fn flood_frame() -> Vec<u8> {
    let src = SocketAddrV4::new(crate::lab::bench_addr(PEER_ADDR), 40_000);
    let dst = SocketAddrV4::new(crate::lab::bench_addr(ADDR), 9);
    crate::lab::udp_frame((PEER_MAC, src), (MAC, dst), &[0; 18])
}
