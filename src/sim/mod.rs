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
pub mod smp;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;

use pollsim_drivers::{Arrivals, Nic, Pattern, QueueGroup, SharedVirtNic, VirtNic};
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
    /// Each receive queue's ring, and the kernel's interface it belongs to
    /// (tap0's queues this CPU serves first, then tap1).
    nics: Vec<(usize, Rc<RefCell<VirtNic>>)>,
    /// The probe, and the ring (an index of `nics`) it is on.
    probe: Option<(ProbeClient, usize)>,
    probe_next: Option<Nanos>,
    /// Frames the probe client put on the wire.
    probe_frames: u64,
}

impl World for SimWorld {
    fn advance(&mut self, now: Nanos) {
        for (_, nic) in &self.nics {
            nic.borrow_mut().arrive_until(now.0);
        }
        if let Some((p, i)) = self.probe.as_mut() {
            let mut nic = self.nics[*i].1.borrow_mut();
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
            .filter_map(|(_, n)| n.borrow().next_arrival().map(Nanos))
            .chain(self.probe_next)
            .min()
    }

    /// An interface's line is raised while one of its queues' is.
    fn pending_irqs(&self) -> u64 {
        self.nics
            .iter()
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
        wrap: impl FnMut(SharedVirtNic) -> Box<dyn pollsim_drivers::Nic>,
    ) -> Result<Sim, SimError> {
        Sim::new_placed(cfg, &Placement::single(), wrap)
    }

    /// CPU `place.cpu` of a system of `place.ncpu` (see [`smp`]): the
    /// queues of tap0 it serves (one, several as a [`QueueGroup`], or none
    /// but tap0's stack), each fed the flows RSS steers to it, and its
    /// kernel. CPU 0 also has the quiet NIC, the probe, every app and the
    /// idle connections; the others run udp-sink only (one socket per CPU,
    /// as a `SO_REUSEPORT` server has). One CPU with one flow and one
    /// queue is [`Sim::new`].
    pub fn new_placed(
        cfg: &SimConfig,
        place: &Placement,
        mut wrap: impl FnMut(SharedVirtNic) -> Box<dyn pollsim_drivers::Nic>,
    ) -> Result<Sim, SimError> {
        let cidr = |a: &str| Ipv4Cidr::new(a.parse().unwrap_or(Ipv4Address::UNSPECIFIED), 24);
        let addr = cidr(ADDR);
        let first = place.cpu == 0;
        // udp-sink runs on every CPU, or on its own; the other apps on CPU 0.
        let sink_here = place.sink_cpu.is_none_or(|c| c == place.cpu);
        let apps = cfg
            .apps
            .iter()
            .copied()
            .filter(|a| match a {
                AppKind::UdpSink => sink_here,
                _ => first,
            })
            .collect();
        let kcfg = KernelConfig {
            hz: cfg.hz,
            addr,
            mode: cfg.mode,
            apps,
            seed: place.kernel_seed(cfg.seed),
        };
        let (tap0, mut nics) = place.tap0(cfg, &mut wrap)?;
        let clock = VirtualClock::new(START);
        let mut k = Kernel::new(&kcfg, START);
        k.ncpu = place.ncpu;
        // ifpoll's status poll is CPU 0's.
        k.poll.status_poll = first;
        k.cost = Some(CostModel::default());
        k.attach(tap0, &kcfg, START);
        if first {
            let (quiet_shared, quiet) =
                SharedVirtNic::new(VirtNic::new(QUIET_IFNAME, QUIET_MAC, RING_LEN)?)?;
            let i = k.attach_at(wrap(quiet_shared), cidr(QUIET_ADDR), &kcfg, START);
            nics.push((i, quiet));
        }
        if let Some(h) = &place.handoff {
            let (c, n) = (place.cpu, place.ncpu);
            let rps =
                crate::kernel::rps::Rps::new(c, n, place.rss.clone(), h.clone(), place.sink_cpu);
            k.netisr.rps = Some(Box::new(rps));
        }
        let mut mib = mib::build(&k);
        if !place.is_single() {
            place.register_sysctl(&mut mib);
        }
        if place.map.per_queue_nodes() {
            crate::queues::register_sysctl(&mut mib, &k, 0, &place.served(), &place.map);
        }
        crate::kernel::rps::register_sysctl(&mut mib, &k);
        // CPUs but 0 skip the knobs of the apps and NIC only CPU 0 has.
        mib::apply(&mib, &mut k, &cfg.sysctls, !first).map_err(|e| match e {
            mib::AssignError::Malformed(kv) => {
                SimError::Sysctl(format!("{kv}: expected NAME=VALUE"))
            }
            mib::AssignError::Refused(e) => SimError::Sysctl(e.to_string()),
        })?;
        k.start_apps();
        if first {
            crate::conns::add_synthetic(&mut k, cfg.conns);
        }
        let probe = cfg.probe.filter(|_| first).map(|link| {
            let (mac, peer) = link.peer();
            let server = cidr(link.addr()).address();
            let client = ProbeClient::new(mac, cidr(peer), (server, 80), cfg.seed ^ 0x9e37, START);
            // On tap0, its frames go to queue 0's ring (CPU 0 serves it).
            let ring = nics.iter().position(|(i, _)| *i == link.nic());
            (client, ring.unwrap_or(0))
        });
        let phase = Nanos(cfg.hz.tick().0 * place.cpu as u64 / place.ncpu.max(1) as u64);
        let sched = VirtualSched::staggered(&mut k, START, phase, None);
        Ok(Sim {
            k,
            mib,
            clock,
            sched,
            world: SimWorld {
                nics,
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
        self.world
            .nics
            .iter()
            .map(|(_, n)| n.borrow().arrived())
            .sum()
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
            .map(|(_, n)| n.borrow().pending() as u64)
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

/// Where one simulated CPU sits in a system of several, and the flood's
/// flows (see [`smp`]).
#[derive(Clone, Debug)]
pub struct Placement {
    /// This CPU (0 has the quiet NIC, the probe and every app).
    pub cpu: usize,
    /// CPUs in the system.
    pub ncpu: usize,
    /// tap0's receive queues and the CPU that serves each, queue `q` on
    /// CPU `q % ncpu` (DragonFly's ring map at offset 0).
    pub map: crate::queues::RingMap,
    /// Distinct flows of the flood (`--flows`): flow 0 is [`flood_frame`],
    /// flow `i` as `pollsim flood --flows` makes it.
    pub flows: usize,
    /// How the flows share the frames (`--flow-dist`).
    pub dist: crate::flood::frames::FlowDist,
    /// tap0's RSS: key and indirection table (over the map's queues).
    pub rss: pollsim_drivers::Rss,
    /// The handoff between the CPUs (RPS, RFS, sockets on one CPU):
    /// several CPUs only.
    pub handoff: Option<crate::kernel::rps::Handoff>,
    /// Where udp-sink's socket is (`user.udp_sink.cpu`): `None`, one on
    /// every CPU.
    pub sink_cpu: crate::kernel::rps::AppCpu,
}

impl Placement {
    /// One CPU, one flow: the system as it always was.
    pub fn single() -> Placement {
        Placement {
            cpu: 0,
            ncpu: 1,
            map: crate::queues::RingMap::SINGLE,
            flows: 1,
            dist: crate::flood::frames::FlowDist::RoundRobin,
            rss: pollsim_drivers::Rss::new(
                pollsim_drivers::RssKey::MICROSOFT,
                pollsim_drivers::IndirTable::default(),
            ),
            handoff: None,
            sink_cpu: None,
        }
    }

    /// CPU `cpu` of `ncpu` (1..=[`smp::MAX_CPUS`]), tap0 having
    /// `spec.queues` receive queues (default: one per CPU; at most
    /// [`crate::queues::MAX_QUEUES`]), fed the flows of `spec` and steered
    /// by its RSS key and table. Refuses counts out of range and weights
    /// that are not one per queue.
    pub fn new(cpu: usize, ncpu: usize, spec: &FlowSpec) -> Result<Placement, SimError> {
        use pollsim_drivers::{IndirTable, Rss};
        if !(1..=smp::MAX_CPUS).contains(&ncpu) {
            return Err(SimError::Sysctl(format!(
                "hw.ncpu {ncpu}: between 1 and {}",
                smp::MAX_CPUS
            )));
        }
        let map = crate::queues::RingMap::new(ncpu, spec.queues.unwrap_or(ncpu))
            .map_err(SimError::Sysctl)?;
        let m = map.nqueues();
        let table = match &spec.weights {
            Some(w) if w.len() != m => {
                return Err(SimError::Sysctl(format!(
                    "--rss-weight gives {} weights for {m} queues: one per queue",
                    w.len()
                )));
            }
            Some(w) => IndirTable::weighted(w),
            None => IndirTable::equal(m),
        }
        .map_err(|e| SimError::Sysctl(format!("--rss-weight: {e}")))?;
        Ok(Placement {
            cpu,
            ncpu,
            map,
            flows: spec.flows.max(1),
            dist: spec.dist,
            rss: Rss::new(spec.key, table),
            handoff: None,
            sink_cpu: None,
        })
    }

    /// One CPU with one queue fed one flow: built exactly as before CPUs
    /// were modelled.
    pub fn is_single(&self) -> bool {
        self.ncpu == 1 && self.map.nqueues() == 1 && self.flows == 1
    }

    /// The queues of tap0 this CPU serves.
    pub fn served(&self) -> Vec<usize> {
        self.map.queues_of(self.cpu)
    }

    /// This CPU's tap0, each queue it serves a ring of [`RING_LEN`] fed
    /// the flows RSS steers to that queue and made a NIC by `wrap`: one
    /// queue is its ring itself (as with one CPU), several a
    /// [`QueueGroup`], none a `QueueGroup` of none. Also each ring's
    /// handle, for the world (interface 0).
    #[allow(clippy::type_complexity)]
    fn tap0(
        &self,
        cfg: &SimConfig,
        wrap: &mut impl FnMut(SharedVirtNic) -> Box<dyn Nic>,
    ) -> Result<(Box<dyn Nic>, Vec<(usize, Rc<RefCell<VirtNic>>)>), SimError> {
        let served = self.served();
        let mut rings = Vec::with_capacity(served.len());
        let mut handles = Vec::with_capacity(served.len());
        for &q in &served {
            let mut nic = VirtNic::new(IFNAME, MAC, RING_LEN)?;
            // Every queue draws the same flood (same seed) and keeps its flows.
            let arrivals = Arrivals::new(cfg.pattern, cfg.seed, START.0)?;
            if let Some(flows) = self.flows_of_queue(q) {
                nic.set_flows(arrivals, flows);
            }
            let (shared, handle) = SharedVirtNic::new(nic)?;
            rings.push(wrap(shared));
            handles.push((0, handle));
        }
        let tap0: Box<dyn Nic> = match rings.len() {
            1 => rings.remove(0),
            _ => Box::new(
                QueueGroup::new(IFNAME, MAC, rings).map_err(|e| SimError::Sysctl(e.to_string()))?,
            ),
        };
        Ok((tap0, handles))
    }

    /// The seed of this CPU's kernel (smoltcp's randomness): CPU 0 keeps
    /// the system's.
    fn kernel_seed(&self, seed: u64) -> u64 {
        seed ^ (self.cpu as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// tap0's RSS as this CPU's MIB shows it (several CPUs or flows only:
    /// one CPU with one flow has the nodes it always had).
    fn register_sysctl(&self, mib: &mut Mib<Kernel>) {
        let key = self.rss.toeplitz().key();
        let shown = key
            .builtin_name()
            .map_or_else(|| key.to_string(), |n| format!("{n} ({key})"));
        mib.add_ro_str(
            &format!("dev.{IFNAME}.rss_key"),
            "Toeplitz key of receive side scaling (--rss-key)",
            move |_: &Kernel| shown.clone(),
        );
        let table: Vec<u64> = self
            .rss
            .table()
            .entries()
            .iter()
            .map(|&q| u64::from(q))
            .collect();
        mib.add_ro_list(
            &format!("dev.{IFNAME}.rss_indir"),
            "RSS indirection table: the queue of each of its 128 entries (--rss-weight)",
            move |_: &Kernel| table.clone(),
        );
        let served = self.served();
        let shown: Vec<u64> = served.iter().map(|&q| q as u64).collect();
        mib.add_ro_list(
            &format!("dev.{IFNAME}.rss_queues"),
            "The receive queues of tap0 this CPU serves (queue q on CPU q % hw.ncpu)",
            move |_: &Kernel| shown.clone(),
        );
        let flows = i64::try_from(self.queues().iter().filter(|q| served.contains(q)).count())
            .unwrap_or(i64::MAX);
        mib.add_ro(
            &format!("dev.{IFNAME}.rss_flows"),
            "Flows of the flood RSS steers to the queues this CPU serves",
            move |_: &Kernel| flows,
        );
    }

    /// The RSS queue of each flow (`0..map.nqueues()`).
    pub fn queues(&self) -> Vec<usize> {
        flood_frames(self.flows)
            .iter()
            .map(|f| usize::from(self.rss.steer(f).queue) % self.map.nqueues())
            .collect()
    }

    /// The flood's flows as queue `q` receives them, or `None` if RSS
    /// steers none of them to it.
    fn flows_of_queue(&self, q: usize) -> Option<pollsim_drivers::Flows> {
        use crate::flood::frames::{FlowDist, ZIPF_SEED, zipf_schedule};
        let queues = self.queues();
        let schedule = match self.dist {
            FlowDist::RoundRobin => None,
            FlowDist::Zipf(s) => Some(zipf_schedule(self.flows, s, ZIPF_SEED)),
        };
        pollsim_drivers::Flows::new(flood_frames(self.flows), schedule, |i| queues[i] == q)
    }
}

/// The flood's flows and tap0's RSS (`--flows`, `--flow-dist`,
/// `--rss-key`, `--rss-weight`).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSpec {
    /// Distinct flows (1..=65536).
    pub flows: usize,
    /// How they share the frames.
    pub dist: crate::flood::frames::FlowDist,
    /// The Toeplitz key (`dev.tap0.rss_key`).
    pub key: pollsim_drivers::RssKey,
    /// Indirection-table weights, one per queue (as `ethtool -X weight`);
    /// `None`: equal.
    pub weights: Option<Vec<u32>>,
    /// tap0's receive queues (`--queues`, 1..=[`crate::queues::MAX_QUEUES`]);
    /// `None`: one per CPU.
    pub queues: Option<usize>,
}

impl Default for FlowSpec {
    /// One flow, round robin, Microsoft's key, an equal table.
    fn default() -> FlowSpec {
        FlowSpec {
            flows: 1,
            dist: crate::flood::frames::FlowDist::RoundRobin,
            key: pollsim_drivers::RssKey::MICROSOFT,
            weights: None,
            queues: None,
        }
    }
}

/// The flood's `flows` frames: flow 0 is [`flood_frame`], flow `i` comes
/// from the source `pollsim flood --flows` gives it (the address moves
/// through 198.19.0.0/16, the port stays), all to udp-sink.
pub fn flood_frames(flows: usize) -> Vec<Vec<u8>> {
    (0..flows.max(1)).map(flow_frame).collect()
}

/// The simulated flood's source port.
const FLOOD_SRC_PORT: u16 = 40_000;

/// The flood's frame: 60 bytes of Ethernet/IPv4/UDP to udp-sink, as
/// `pollsim flood --size 64` sends (64 with the FCS the tap does not carry).
pub fn flood_frame() -> Vec<u8> {
    flow_frame(0)
}

/// Flow `i` of the flood: from the source `pollsim flood --flows` gives
/// flow `i` (flow 0: the peer's own address), to udp-sink.
fn flow_frame(i: usize) -> Vec<u8> {
    use crate::flood::frames::flow_source;
    use crate::flood::parse::PortRange;
    let peer = crate::lab::bench_addr(PEER_ADDR);
    let (ip, port) = flow_source(peer, PortRange::single(FLOOD_SRC_PORT), i);
    let dst = SocketAddrV4::new(crate::lab::bench_addr(ADDR), 9);
    crate::lab::udp_frame(
        (PEER_MAC, SocketAddrV4::new(ip, port)),
        (MAC, dst),
        &[0; 18],
    )
}
