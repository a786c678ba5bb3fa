//! Frames handed from one simulated CPU to another: Linux's receive packet
//! steering (RPS), receive flow steering (RFS), and a datagram for a socket
//! whose app runs on another CPU (`user.<app>.cpu`).
//!
//! Mirrors `get_rps_cpu()` and `enqueue_to_backlog()`
//! (Documentation/networking/scaling.rst): the CPU that took a frame from
//! its queue hashes it (the NIC's RSS hash, as `skb->hash`) and, if the
//! flow belongs to another CPU, appends it to that CPU's backlog instead of
//! running the protocol itself; the target learns of it by an IPI and runs
//! the protocol in its own softirq. With RPS (`net.rps.cpus`, a CPU mask)
//! the CPU is `cpus[hash * len >> 32]` (`reciprocal_scale`); with RFS
//! (`net.rfs.entries`) a global table indexed by the hash holds the CPU
//! where the flow's app last read, and wins over the mask. A datagram whose
//! protocol ran on a CPU other than its socket's pays a cross-CPU cost
//! there (`hw.sim.xcpu_cost_ns`: the socket and the buffer's cache lines
//! move, the reader is woken remotely), the cost RFS and Affinity-Accept
//! exist to avoid.
//!
//! On virtual time each CPU is a kernel of its own ([`crate::sim::smp`]);
//! what crosses between them waits in the target's outbox of the shared
//! [`Handoff`] until the CPUs meet at the end of a turn
//! (`hw.sim.smp_quantum_ns`), then enters the target's backlog (frames) or
//! its socket (datagrams).
//!
//! Differs from Linux: one RPS mask for every queue (Linux's is per queue,
//! `rx-<n>/rps_cpus`); one table stands for RFS's two
//! (`rps_sock_flow_entries` and the per-queue `rps_flow_cnt`), and a flow
//! moves to its app's CPU at once (Linux waits until the old CPU's backlog
//! has passed the flow's last frame, so as not to reorder); no flow limit;
//! the backlog is drained at netisr priority one frame per unit, not by a
//! NAPI instance of weight 64 inside `net_rx_action`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use pollsim_drivers::Rss;
use pollsim_sysctl::Mib;

use super::Kernel;
use super::discipline::knobs::{self, Counter, Knob};
use super::intr::IpIntrQ;

/// Default `net.core.netdev_max_backlog` (Linux's).
pub const BACKLOG_DEFAULT: usize = 1000;
/// Highest `net.core.netdev_max_backlog`.
pub const BACKLOG_MAX: i64 = 1_000_000;
/// Highest `net.rfs.entries` (rounded up to a power of two).
pub const RFS_ENTRIES_MAX: i64 = 1 << 22;
/// Highest of the cross-CPU costs, ns.
pub const XCPU_COST_MAX: i64 = 1_000_000;
/// Bounds of `hw.sim.smp_quantum_ns`.
pub const QUANTUM_BOUNDS: (i64, i64) = (1_000, 1_000_000);
/// Default `hw.sim.smp_quantum_ns`: 10 µs turns.
pub const QUANTUM_DEFAULT_NS: u64 = 10_000;
/// Default `hw.sim.rps_cost_ns`: a 60-byte frame handed through a locked
/// queue to a thread draining it on the other host CPU, the producer's ns
/// per frame (`cargo bench --bench xcpu`, 2-core development machine,
/// 2026-12-07, host steal 0.04-0.05 %, two other builds running: medians
/// of 5, 5 and 9 runs gave 151, 265 and 344 ns; the middle one taken; the
/// same on one CPU is 12 ns, so nearly all of it is the cache lines
/// crossing).
pub const RPS_COST_DEFAULT_NS: u64 = 265;
/// Default `hw.sim.xcpu_cost_ns`: the same measurement, the datagram
/// appended to a socket buffer another CPU reads being the same handoff.
pub const XCPU_COST_DEFAULT_NS: u64 = 265;
/// Default `hw.sim.ipi_cost_ns`: an interrupt's entry and exit on the
/// target, as `hw.sim.intr_cost_ns`'s default. Not the wake-up of an idle
/// CPU: on this VM an eventfd wake of a thread blocked on the other vCPU
/// takes 29-30 µs (benches/xcpu.rs), which the model does not charge (an
/// idle simulated CPU wakes for free, as for every interrupt).
pub const IPI_COST_DEFAULT_NS: u64 = super::cost::DEFAULT_INTR_COST_NS;

/// Where an app's socket is: on every CPU (one socket per CPU, as a
/// `SO_REUSEPORT` server has: the default) or on one.
pub type AppCpu = Option<usize>;

/// What crosses to another CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handed {
    /// A frame for the target's backlog: the protocol runs there.
    Backlog,
    /// A datagram whose protocol ran here, for the target's socket.
    Socket,
}

/// What every CPU of a system shares: the RFS table and the outboxes.
#[derive(Debug, Default)]
struct Shared {
    /// RFS: the CPU + 1 where each hash's flow was last read (0: none).
    rfs: Vec<u16>,
    /// Frames and datagrams waiting for each CPU.
    outbox: Vec<VecDeque<(Handed, Vec<u8>)>>,
}

/// The handoff between the CPUs of one system: cloned, one per CPU.
#[derive(Clone, Debug)]
pub struct Handoff {
    shared: Arc<Mutex<Shared>>,
}

impl Handoff {
    /// The handoff of a system of `ncpu` CPUs.
    pub fn new(ncpu: usize) -> Handoff {
        let shared = Shared {
            rfs: Vec::new(),
            outbox: vec![VecDeque::new(); ncpu],
        };
        Handoff {
            shared: Arc::new(Mutex::new(shared)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What waits for CPU `cpu`, in the order it was handed.
    pub fn take_for(&self, cpu: usize) -> VecDeque<(Handed, Vec<u8>)> {
        std::mem::take(&mut self.lock().outbox[cpu])
    }

    /// Whether anything waits for any CPU.
    pub fn is_empty(&self) -> bool {
        self.lock().outbox.iter().all(VecDeque::is_empty)
    }
}

/// Counters of one CPU's handoffs. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpsStats {
    /// Frames this CPU took from its queue and handed to another CPU's backlog
    pub handed_out: u64,
    /// Datagrams whose protocol ran here, handed to a socket on another CPU
    pub socket_out: u64,
    /// Frames other CPUs handed to this CPU's backlog (queued or dropped)
    pub handed_in: u64,
    /// Datagrams other CPUs handed to a socket on this CPU
    pub socket_in: u64,
    /// Frames handed to this CPU dropped because its backlog was full
    pub backlog_drops: u64,
    /// Frames taken from this CPU's backlog into its stack
    pub backlog_dispatched: u64,
    /// Inter-processor interrupts this CPU took for frames in its backlog
    pub ipis: u64,
    /// Frames steered by an RFS table entry (the rest by the mask, or not at all)
    pub rfs_steered: u64,
}

/// One CPU's side of RPS/RFS: its knobs, its backlog, its counters.
#[derive(Debug)]
pub struct Rps {
    /// This CPU.
    pub cpu: usize,
    /// CPUs in the system.
    pub ncpu: usize,
    /// `net.rps.cpus`, as set (bits of absent CPUs are ignored).
    pub mask: u64,
    /// `net.rfs.entries` (0: off; a power of two).
    pub rfs_entries: usize,
    /// The backlog (`net.core.netdev_max_backlog`).
    pub backlog: IpIntrQ,
    /// Where udp-sink's socket is (`user.udp_sink.cpu`).
    pub sink_cpu: AppCpu,
    /// `hw.sim.rps_cost_ns`: hashing a frame and appending it to another
    /// CPU's backlog, paid by the CPU that hands it, instead of the protocol.
    pub rps_cost_ns: u64,
    /// `hw.sim.xcpu_cost_ns`: a datagram delivered to a socket on another
    /// CPU, paid by the CPU that ran its protocol.
    pub xcpu_cost_ns: u64,
    /// `hw.sim.ipi_cost_ns`: the IPI that tells a CPU its backlog has frames.
    pub ipi_cost_ns: u64,
    /// `hw.sim.smp_quantum_ns`: the turn after which handed frames arrive.
    pub quantum_ns: u64,
    /// The counters.
    pub stats: RpsStats,
    /// IPIs raised and not yet taken.
    pub ipi_pending: u64,
    /// Handed frames and datagrams not charged yet: (backlog, socket).
    uncharged: (u32, u32),
    /// A frame's buffer, reused, while it goes from the backlog to the stack.
    pub scratch: Vec<u8>,
    rss: Rss,
    handoff: Handoff,
}

/// UDP port of udp-sink (the flood's destination).
const SINK_PORT: u16 = crate::apps::UDP_SINK_PORT;

impl Rps {
    /// CPU `cpu` of `ncpu`, hashing with `rss` (tap0's), sharing `handoff`.
    pub fn new(cpu: usize, ncpu: usize, rss: Rss, handoff: Handoff, sink_cpu: AppCpu) -> Rps {
        Rps {
            cpu,
            ncpu,
            mask: 0,
            rfs_entries: 0,
            backlog: IpIntrQ::new(BACKLOG_DEFAULT),
            sink_cpu,
            rps_cost_ns: RPS_COST_DEFAULT_NS,
            xcpu_cost_ns: XCPU_COST_DEFAULT_NS,
            ipi_cost_ns: IPI_COST_DEFAULT_NS,
            quantum_ns: QUANTUM_DEFAULT_NS,
            stats: RpsStats::default(),
            ipi_pending: 0,
            uncharged: (0, 0),
            scratch: Vec::new(),
            rss,
            handoff,
        }
    }

    /// Whether frames can cross between CPUs (RPS, RFS, or a socket on
    /// one CPU): then the CPUs must run in turns.
    pub fn active(&self) -> bool {
        self.effective_mask() != 0 || self.rfs_entries > 0 || self.sink_cpu.is_some()
    }

    /// The mask with the absent CPUs' bits cleared (Linux ands the mask
    /// with the online CPUs).
    pub fn effective_mask(&self) -> u64 {
        match self.ncpu {
            64.. => self.mask,
            n => self.mask & ((1u64 << n) - 1),
        }
    }

    /// Set `net.rfs.entries`: 0, or rounded up to a power of two.
    fn set_rfs_entries(&mut self, v: usize) {
        self.rfs_entries = if v == 0 { 0 } else { v.next_power_of_two() };
        let mut s = self.handoff.lock();
        if s.rfs.len() != self.rfs_entries {
            s.rfs = vec![0; self.rfs_entries];
        }
    }

    /// Frames and datagrams handed since the last call, to be charged:
    /// (to backlogs, to sockets).
    pub fn take_uncharged(&mut self) -> (u32, u32) {
        std::mem::take(&mut self.uncharged)
    }

    /// The charge of what was handed since the last call: `base` (what
    /// the unit's frames would cost with the protocol run here) less the
    /// protocol of frames handed to backlogs, plus the handing.
    pub fn charge(&mut self, base: u64, proto_cost_ns: u64) -> u64 {
        let (b, s) = self.take_uncharged();
        let (b, s) = (u64::from(b), u64::from(s));
        base.saturating_sub(b * proto_cost_ns) + b * self.rps_cost_ns + s * self.xcpu_cost_ns
    }

    /// Decide where a frame tap0 received goes before the stack sees it:
    /// true if it was handed to another CPU: to its backlog by RFS's table
    /// or RPS's mask (not if `may_hand` is false: the frame came from this
    /// CPU's backlog), else, a datagram for udp-sink whose socket is on
    /// another CPU, to that socket (its protocol charged here). A datagram
    /// for udp-sink's socket here records this CPU in the RFS table, as
    /// the app's read does.
    pub fn steer(&mut self, frame: &[u8], may_hand: bool) -> bool {
        // Nothing crosses and no table records: no hash, no lock per frame.
        if !self.active() {
            return false;
        }
        let Some((hash, _)) = self.rss.steer(frame).hash else {
            return false;
        };
        let for_sink = udp_dst_port(frame) == Some(SINK_PORT);
        let mut s = self.handoff.lock();
        if may_hand {
            let rfs = (!s.rfs.is_empty())
                .then(|| s.rfs[hash as usize & (s.rfs.len() - 1)])
                .filter(|&e| e > 0)
                .map(|e| usize::from(e - 1));
            let target = rfs.or_else(|| rps_cpu(self.effective_mask(), hash));
            if rfs.is_some() {
                self.stats.rfs_steered += 1;
            }
            if let Some(t) = target.filter(|&t| t != self.cpu && t < self.ncpu) {
                s.outbox[t].push_back((Handed::Backlog, frame.to_vec()));
                self.stats.handed_out += 1;
                self.uncharged.0 += 1;
                return true;
            }
        }
        if !for_sink {
            return false;
        }
        match self.sink_cpu {
            Some(k) if k != self.cpu => {
                s.outbox[k].push_back((Handed::Socket, frame.to_vec()));
                self.stats.socket_out += 1;
                self.uncharged.1 += 1;
                true
            }
            _ => {
                record(&mut s.rfs, hash, self.cpu);
                false
            }
        }
    }

    /// Record in the RFS table that udp-sink on this CPU read the flow of
    /// `frame` (a datagram another CPU handed to its socket).
    pub fn note_read(&mut self, frame: &[u8]) {
        if let Some((hash, _)) = self.rss.steer(frame).hash {
            record(&mut self.handoff.lock().rfs, hash, self.cpu);
        }
    }
}

/// RFS's table entry for `hash` now says `cpu` (no table: nothing).
fn record(rfs: &mut [u16], hash: u32, cpu: usize) {
    if !rfs.is_empty() {
        let n = rfs.len();
        rfs[hash as usize & (n - 1)] = u16::try_from(cpu + 1).unwrap_or(u16::MAX);
    }
}

/// RPS's CPU for `hash` under `mask`: the `hash * len >> 32`-th CPU of
/// the mask (`reciprocal_scale`), or `None` with an empty mask.
pub fn rps_cpu(mask: u64, hash: u32) -> Option<usize> {
    let len = u64::from(mask.count_ones());
    if len == 0 {
        return None;
    }
    let nth = (u64::from(hash) * len) >> 32;
    (0..64).filter(|b| mask & (1 << b) != 0).nth(nth as usize)
}

/// The UDP destination port of an Ethernet/IPv4 frame, if it is one.
fn udp_dst_port(frame: &[u8]) -> Option<u16> {
    const ETH: usize = 14;
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(frame.get(ETH)? & 0x0f) * 4;
    if *frame.get(ETH + 9)? != 17 || ihl < 20 {
        return None;
    }
    let p = frame.get(ETH + ihl + 2..ETH + ihl + 4)?;
    Some(u16::from_be_bytes([p[0], p[1]]))
}

fn rps_of(k: &Kernel) -> &Rps {
    k.netisr
        .rps
        .as_deref()
        .expect("RPS nodes are registered with RPS")
}

fn rps_mut(k: &mut Kernel) -> &mut Rps {
    k.netisr
        .rps
        .as_deref_mut()
        .expect("RPS nodes are registered with RPS")
}

fn clamp(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The knobs of handing between CPUs.
static KNOBS: [Knob<Rps>; 6] = [
    Knob::new(
        "net.rps.cpus",
        "RPS: CPUs (a mask) whose backlogs tap0's frames are spread over by flow hash; 0: off (bits of absent CPUs ignored)",
        (0, i64::MAX),
        |r| i64::try_from(r.mask).unwrap_or(i64::MAX),
        |r, v| r.mask = clamp(v),
    ),
    Knob::new(
        "net.rfs.entries",
        "RFS: entries of the flow table that steers a flow to the CPU where its app reads (rounded up to a power of two); 0: off",
        (0, RFS_ENTRIES_MAX),
        |r| i64::try_from(r.rfs_entries).unwrap_or(i64::MAX),
        |r, v| r.set_rfs_entries(usize::try_from(v).unwrap_or(0)),
    ),
    Knob::new(
        "net.core.netdev_max_backlog",
        "Frames this CPU's backlog holds (frames other CPUs hand to it)",
        (1, BACKLOG_MAX),
        |r| i64::try_from(r.backlog.maxlen()).unwrap_or(i64::MAX),
        |r, v| r.backlog.set_maxlen(usize::try_from(v).unwrap_or(1)),
    ),
    Knob::new(
        "hw.sim.rps_cost_ns",
        "Virtual cost of hashing a frame and appending it to another CPU's backlog, paid instead of its protocol",
        (0, XCPU_COST_MAX),
        |r| i64::try_from(r.rps_cost_ns).unwrap_or(i64::MAX),
        |r, v| r.rps_cost_ns = clamp(v),
    ),
    Knob::new(
        "hw.sim.xcpu_cost_ns",
        "Virtual cost of delivering a datagram to a socket on another CPU, paid by the CPU that ran its protocol",
        (0, XCPU_COST_MAX),
        |r| i64::try_from(r.xcpu_cost_ns).unwrap_or(i64::MAX),
        |r, v| r.xcpu_cost_ns = clamp(v),
    ),
    Knob::new(
        "hw.sim.ipi_cost_ns",
        "Virtual cost, at interrupt level, of the IPI that tells a CPU its backlog has frames",
        (0, XCPU_COST_MAX),
        |r| i64::try_from(r.ipi_cost_ns).unwrap_or(i64::MAX),
        |r, v| r.ipi_cost_ns = clamp(v),
    ),
];

/// The turn length, apart: its bounds differ.
static QUANTUM: [Knob<Rps>; 1] = [Knob::new(
    "hw.sim.smp_quantum_ns",
    "Virtual time the CPUs run in turns while frames cross between them; a handed frame arrives at the end of its turn",
    QUANTUM_BOUNDS,
    |r| i64::try_from(r.quantum_ns).unwrap_or(i64::MAX),
    |r, v| r.quantum_ns = clamp(v),
)];

/// The counters, as `net.rps.*`.
static COUNTERS: [Counter<Rps>; 9] = [
    Counter {
        name: "net.rps.handed_out",
        descr: "Frames this CPU took from its queue and handed to another CPU's backlog",
        read: |r| r.stats.handed_out,
    },
    Counter {
        name: "net.rps.socket_out",
        descr: "Datagrams whose protocol ran here, handed to a socket on another CPU",
        read: |r| r.stats.socket_out,
    },
    Counter {
        name: "net.rps.handed_in",
        descr: "Frames other CPUs handed to this CPU's backlog (queued or dropped)",
        read: |r| r.stats.handed_in,
    },
    Counter {
        name: "net.rps.socket_in",
        descr: "Datagrams other CPUs handed to a socket on this CPU",
        read: |r| r.stats.socket_in,
    },
    Counter {
        name: "net.rps.backlog_drops",
        descr: "Frames handed to this CPU dropped because its backlog was full",
        read: |r| r.stats.backlog_drops,
    },
    Counter {
        name: "net.rps.backlog_len",
        descr: "Frames waiting in this CPU's backlog",
        read: |r| r.backlog.len() as u64,
    },
    Counter {
        name: "net.rps.backlog_dispatched",
        descr: "Frames taken from this CPU's backlog into its stack",
        read: |r| r.stats.backlog_dispatched,
    },
    Counter {
        name: "net.rps.ipis",
        descr: "Inter-processor interrupts this CPU took for frames in its backlog",
        read: |r| r.stats.ipis,
    },
    Counter {
        name: "net.rfs.steered",
        descr: "Frames steered by an RFS table entry (the others by the mask, or not at all)",
        read: |r| r.stats.rfs_steered,
    },
];

/// Register the nodes of RPS/RFS on a kernel that has them
/// ([`Kernel::netisr`]'s `rps`), and `user.<app>.cpu` for its apps.
pub fn register_sysctl(mib: &mut Mib<Kernel>, k: &Kernel) {
    let Some(r) = k.netisr.rps.as_deref() else {
        return;
    };
    knobs::register(mib, "", &KNOBS, &COUNTERS, rps_of, rps_mut);
    knobs::register(mib, "", &QUANTUM, &[], rps_of, rps_mut);
    let sink = r
        .sink_cpu
        .map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX));
    mib.add_ro(
        "user.udp_sink.cpu",
        "The CPU udp-sink and its socket run on (-1: a socket on every CPU); set with --sysctl at start",
        move |_: &Kernel| sink,
    );
    let others = [
        ("tcp_echo", k.apps.tcp_echo.is_some()),
        ("http", k.apps.http.is_some()),
        ("interactive", k.apps.interactive.is_some()),
    ];
    for (name, _) in others.iter().filter(|(_, running)| *running) {
        mib.add_ro(
            &format!("user.{name}.cpu"),
            "The CPU this app runs on (CPU 0, with tap1 and the probe)",
            |_: &Kernel| 0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rps_picks_the_cpus_of_the_mask_by_reciprocal_scale() {
        assert_eq!(rps_cpu(0, 123), None);
        assert_eq!(rps_cpu(0b1010, 0), Some(1));
        assert_eq!(rps_cpu(0b1010, u32::MAX), Some(3));
        assert_eq!(rps_cpu(0b1010, 1 << 31), Some(3));
        assert_eq!(rps_cpu(0b1010, (1 << 31) - 1), Some(1));
        assert_eq!(rps_cpu(1 << 63, 77), Some(63));
    }

    #[test]
    fn udp_ports_are_read_from_ipv4_frames_only() {
        let f = crate::sim::flood_frame();
        assert_eq!(udp_dst_port(&f), Some(SINK_PORT));
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(udp_dst_port(&arp), None);
        assert_eq!(udp_dst_port(&f[..20]), None);
    }
}
