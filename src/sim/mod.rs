//! A whole simulated system on virtual time: the same [`Kernel`] (interrupt
//! and polling engines, netisr, smoltcp, reactor, apps) on a [`VirtNic`]
//! fed by a seeded arrival source, with an HTTP probe client on the wire,
//! driven by [`VirtualSched`] and charged by the `hw.sim.*` cost model.
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

/// pollsim's address on the simulated wire.
pub const ADDR: &str = "198.18.0.2";
/// The peer's (the flood's and the probe's) address.
pub const PEER_ADDR: &str = "198.18.0.1";
/// pollsim's MAC (as `pollsim run` derives it from its address).
pub const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];
/// The peer's MAC.
pub const PEER_MAC: [u8; 6] = [2, 0, 198, 18, 0, 1];
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
    /// Run the HTTP probe client (needs the http app).
    pub probe: bool,
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

/// The world outside the simulated CPU: the wire into the NIC and the probe.
pub struct SimWorld {
    nic: Rc<RefCell<VirtNic>>,
    probe: Option<ProbeClient>,
    probe_next: Option<Nanos>,
    /// Frames the probe client put on the wire.
    probe_frames: u64,
}

impl World for SimWorld {
    fn advance(&mut self, now: Nanos) {
        let mut nic = self.nic.borrow_mut();
        nic.arrive_until(now.0);
        if let Some(p) = self.probe.as_mut() {
            let sent = nic.take_sent();
            for frame in p.advance(now, sent) {
                nic.inject(&frame);
                self.probe_frames += 1;
            }
            self.probe_next = Some(p.next_event(now));
        }
    }

    fn next_event(&self) -> Option<Nanos> {
        let arrival = self.nic.borrow().next_arrival().map(Nanos);
        match (arrival, self.probe_next) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    fn pending_irqs(&self) -> u64 {
        u64::from(self.nic.borrow().irq_asserted())
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

    /// As [`Sim::new`], the kernel's NIC being `wrap` of the simulated
    /// one (a capture, say: STYLE.md's wrappers, not flags).
    pub fn new_wrapped(
        cfg: &SimConfig,
        wrap: impl FnOnce(SharedVirtNic) -> Box<dyn pollsim_drivers::Nic>,
    ) -> Result<Sim, SimError> {
        let addr = Ipv4Cidr::new(ADDR.parse().unwrap_or(Ipv4Address::UNSPECIFIED), 24);
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
        let clock = VirtualClock::new(START);
        let mut k = Kernel::new(&kcfg, START);
        k.cost = Some(CostModel::default());
        k.attach(wrap(shared), &kcfg, START);
        let mib = mib::build(&k);
        for kv in &cfg.sysctls {
            let (name, value) = kv
                .split_once('=')
                .ok_or_else(|| SimError::Sysctl(format!("{kv}: expected NAME=VALUE")))?;
            mib.set(&mut k, name, value)
                .map_err(|e| SimError::Sysctl(e.to_string()))?;
        }
        k.start_apps();
        let probe = cfg.probe.then(|| {
            let peer = Ipv4Cidr::new(PEER_ADDR.parse().unwrap_or(Ipv4Address::UNSPECIFIED), 24);
            ProbeClient::new(
                PEER_MAC,
                peer,
                (addr.address(), 80),
                cfg.seed ^ 0x9e37,
                START,
            )
        });
        let sched = VirtualSched::new(&mut k, START, None);
        Ok(Sim {
            k,
            mib,
            clock,
            sched,
            world: SimWorld {
                nic,
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
        self.world.nic.borrow().arrived()
    }

    /// Frames the probe client has put on the wire so far.
    pub fn probe_frames(&self) -> u64 {
        self.world.probe_frames
    }

    /// Frames waiting in the NIC's ring.
    pub fn ring_pending(&self) -> u64 {
        self.world.nic.borrow().pending() as u64
    }

    /// The probe's results since the last call (empty without a probe).
    pub fn take_probe_results(&mut self) -> ProbeResults {
        self.world
            .probe
            .as_mut()
            .map(ProbeClient::take_results)
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
