//! The simulated kernel: one CPU, strict priority intr > netisr > user > idle.
//!
//! Mirrors the 4.4BSD/FreeBSD receive path: a NIC interrupt (`*_intr`)
//! moving frames to `ipintrq`, the IP netisr (`ipintr`), device polling
//! (`kern_poll.c`: `hardclock_device_poll`, `netisr_poll`,
//! `netisr_pollmore`, `ether_poll` from the idle loop), and user processes.
//! Each method here does one bounded unit of work at one priority and takes
//! `now` as a parameter; the scheduler in [`sched`] decides what runs next
//! and reads the clock. The same methods run under a virtual clock.

pub mod busy_poll;
pub mod clock;
pub mod cost;
pub mod cpu;
pub mod discipline;
pub mod fair;
pub mod host;
pub mod intr;
pub mod mib;
pub mod netisr;
pub mod netstat;
pub mod poll;
pub mod pollers;
pub mod reactor;
pub mod rps;
pub mod runq;
pub mod sched;
pub mod sockets;
pub mod time;
pub mod vsched;

#[cfg(test)]
mod tests;
#[cfg(test)]
#[path = "threads_tests.rs"]
mod threads_tests;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use pollsim_drivers::{Nic, PollCmd};
use smoltcp::iface::{Config as IfConfig, Interface};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

use crate::apps::{self, AppKind, Apps, UserCx};
use clock::Clock;
use cpu::Cpu;
use discipline::{Cx, Discipline as _, Disciplines, Kind, Runnable, Thread};
use fair::{Fair, Task};
use intr::IpIntrQ;
use netisr::Netisr;
use poll::PollEngine;
use reactor::{Event, Reactor, Token};
use runq::{Pid, RunQueue};
use time::{Hz, Nanos};

/// How an interface delivers frames at start: its initial
/// `dev.<if>.discipline`.
pub type Mode = Kind;

/// Longest slice of user CPU burn between checks for interrupts and ticks.
pub const USER_SLICE: Nanos = Nanos::from_micros(5);
/// Events the user scheduler takes from the reactor at once.
const EVENT_BATCH: usize = 64;

/// Per-interface counters kept by the kernel (the driver keeps its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfCounters {
    /// Interrupts serviced
    pub interrupts: u64,
    /// Calls of the poll handler
    pub polls: u64,
    /// Status checks (POLL_AND_CHECK_STATUS and status reads)
    pub status_checks: u64,
    /// Link state at the last status check (1 up, 0 down)
    pub link_up: bool,
    /// Frames of this interface dropped because `ipintrq` was full
    pub ipintrq_drops: u64,
}

/// One interface: the NIC and its polling state. Its smoltcp `Interface`
/// and sockets are in the netisr, at the same index (`sockets.rs` says why
/// they are bundled there).
pub struct IfNet {
    /// The driver.
    pub nic: Box<dyn Nic>,
    /// `dev.<if>.discipline`.
    pub discipline: Kind,
    /// `dev.<if>.rx_ring`: frames one interrupt may move.
    pub rx_ring: usize,
    /// Counters.
    pub counters: IfCounters,
    /// Interrupt moderation of its receive line (`rx_usecs`, `rx_frames`,
    /// `adaptive_rx`).
    pub moderation: discipline::moderation::Moderation,
}

/// What the scheduler did. Each doc line is the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStats {
    /// Clock interrupts (hardclock) taken
    pub ticks: u64,
    /// Units of netisr work (one frame or one polling chunk)
    pub netisr_runs: u64,
    /// User steps run
    pub user_steps: u64,
    /// Times user work was cut short by an interrupt or a tick
    pub preemptions: u64,
    /// Idle-loop polls (kern.polling.idle_poll)
    pub idle_polls: u64,
}

/// What one unit of netisr work did, so that a cost model can charge it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetisrWork {
    /// Frames poll handlers took from rings straight into the stack.
    pub polled: u32,
    /// Frames taken from `ipintrq` into the stack.
    pub dispatched: u32,
    /// Frames poll handlers took from rings into `ipintrq` (or dropped
    /// there, full) under `net.isr.dispatch` deferred or hybrid: the
    /// driver's part of their cost now, the protocol's when dispatched.
    pub queued: u32,
    /// Status checks made (`POLL_AND_CHECK_STATUS`).
    pub status_checks: u32,
    /// The pending egress runs in the same unit, after this work (as
    /// FreeBSD's netisr runs its other queues after `netisr_poll`).
    pub then_egress: bool,
}

/// What runs next below the interrupts, highest priority first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Kernel work above user processes ([`Kernel::kernel_step`]).
    Kernel,
    /// A kernel thread of the fair class ([`Kernel::thread_step`]).
    Thread(Thread),
    /// The user process ([`Kernel::user_step`]).
    User,
    /// A poll from the idle loop ([`Kernel::idle_poll`]).
    IdlePoll,
    /// Nothing: idle until the next event.
    Idle,
}

/// The kernel's state. Fields are public to the crate's engines and to the
/// MIB; every change goes through the methods below or a sysctl handler.
pub struct Kernel {
    /// `kern.hz`.
    pub hz: Hz,
    /// Interfaces, in attach order.
    pub ifs: Vec<IfNet>,
    /// Interfaces registered for polling, in registration order.
    pub poll_list: Vec<usize>,
    /// kern_poll.c.
    pub poll: PollEngine,
    /// The engines of the input disciplines.
    pub disc: Disciplines,
    /// The fair class (the user process and kernel threads).
    pub fair: Fair,
    /// `ipintrq`.
    pub ipintrq: IpIntrQ,
    /// `net.isr.dispatch`.
    pub dispatch: intr::Dispatch,
    /// The protocol stack: every NIC's smoltcp Interface and sockets, and
    /// the accounting.
    pub netisr: Netisr,
    /// Socket readiness for the apps.
    pub reactor: Reactor,
    /// The user processes.
    pub apps: Apps,
    /// CPU accounting.
    pub cpu: Cpu,
    /// Scheduler counters.
    pub sched: SchedStats,
    /// The virtual clock's cost model (`hw.sim.*`); `None` on the real clock.
    pub cost: Option<cost::CostModel>,
    /// What the real-clock scheduler saw of the host (`kern.sched.*` host
    /// nodes, `machdep.idle`); untouched on virtual time.
    pub host: host::HostStats,
    /// The user processes' run queue (`kern.sched.quantum`, `user.<app>.*`
    /// scheduling nodes).
    pub runq: RunQueue,
    /// What each process (by pid) is and has pending.
    procs: Vec<UserProc>,
    /// Processes made at start (the apps): pids below this.
    n_apps: usize,
    /// The sleep queue of tcp-echo's connection threads: pids their
    /// sockets woke.
    sleepq: Arc<SleepQ>,
    /// Connection threads with work (pending or burning).
    runnable_threads: usize,
    /// tcp-echo's connection threads (`user.tcp_echo.threads*`, `stack_kb`).
    pub threads: ThreadStats,
    events: Vec<Event>,
    egress_pending: bool,
    /// The socket process the reactor's next empty poll is charged to.
    reactor_caller: Option<Pid>,
    /// Synthetic idle connections registered by `--conns` on virtual time
    /// (`kern.conns.synthetic`, see [`crate::conns::add_synthetic`]).
    pub synthetic_conns: usize,
    /// `hw.ncpu`: the CPUs of the system this kernel is one CPU of (each
    /// simulated CPU is a kernel of its own, docs/smp.md).
    pub ncpu: usize,
    /// The socket apps' busy polling (`user.<app>.busy_poll*`).
    pub busy: busy_poll::BusyPoll,
}

/// How to build a kernel.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// `kern.hz`.
    pub hz: Hz,
    /// The address of the stack (198.18.0.2/24).
    pub addr: Ipv4Cidr,
    /// Initial `dev.<if>.polling` of every interface.
    pub mode: Mode,
    /// Apps to start.
    pub apps: Vec<AppKind>,
    /// Seed of smoltcp's randomness (ISNs, ports).
    pub seed: u64,
}

impl Kernel {
    /// A kernel with no interface yet and its apps not started, idle at `now`.
    pub fn new(cfg: &KernelConfig, now: Nanos) -> Kernel {
        let apps = Apps::new(&cfg.apps);
        let (runq, procs) = user_procs(&apps);
        Kernel {
            hz: cfg.hz,
            ifs: Vec::new(),
            poll_list: Vec::new(),
            poll: PollEngine::new(cfg.hz),
            disc: Disciplines::new(cfg.hz),
            fair: Fair::default(),
            ipintrq: IpIntrQ::new(intr::IPINTRQ_MAXLEN_DEFAULT),
            dispatch: intr::Dispatch::default(),
            netisr: Netisr::new(),
            reactor: Reactor::new(),
            apps,
            cpu: Cpu::new(now),
            sched: SchedStats::default(),
            cost: None,
            host: host::HostStats::default(),
            runq,
            n_apps: procs.len(),
            procs,
            sleepq: Arc::default(),
            runnable_threads: 0,
            threads: ThreadStats::default(),
            events: Vec::with_capacity(EVENT_BATCH),
            egress_pending: false,
            synthetic_conns: 0,
            ncpu: 1,
            reactor_caller: None,
            busy: busy_poll::BusyPoll::default(),
        }
    }

    /// Start the apps (after start-time tunables are set), at the time of
    /// the CPU's last switch.
    pub fn start_apps(&mut self) {
        let now = self.cpu.last_switch();
        self.apps.start(&mut self.netisr, &mut self.reactor, now);
    }

    /// Attach `nic` with the address `cfg.addr`, in `cfg.mode`. Returns its
    /// index.
    pub fn attach(&mut self, nic: Box<dyn Nic>, cfg: &KernelConfig, now: Nanos) -> usize {
        self.attach_at(nic, cfg.addr, cfg, now)
    }

    /// Attach `nic` with address `addr`, in `cfg.mode`, with an Interface
    /// and sockets of its own. Returns its index. Apps started later
    /// listen on it too.
    pub fn attach_at(
        &mut self,
        nic: Box<dyn Nic>,
        addr: Ipv4Cidr,
        cfg: &KernelConfig,
        now: Nanos,
    ) -> usize {
        let mac = nic.mac();
        let mut ic = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // A seed of its own per NIC: two Interfaces must not pick the same ISNs.
        ic.random_seed = cfg.seed ^ (self.ifs.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut iface =
            Interface::new(ic, &mut netisr::capabilities_device(), netisr::instant(now));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(addr));
        });
        let at = self.netisr.attach(iface);
        debug_assert_eq!(at, self.ifs.len());
        self.ifs.push(IfNet {
            nic,
            discipline: Kind::Interrupt,
            rx_ring: intr::RX_RING_DEFAULT,
            counters: IfCounters::default(),
            moderation: discipline::moderation::Moderation::default(),
        });
        let i = self.ifs.len() - 1;
        let (disc, mut cx) = self.split(now);
        if !disc.get_mut(cfg.mode).attach(&mut cx, i) {
            disc.interrupt.attach(&mut cx, i);
        } else {
            self.ifs[i].discipline = cfg.mode;
        }
        i
    }

    /// The discipline engines, and the context they work in at `now`.
    fn split(&mut self, now: Nanos) -> (&mut Disciplines, Cx<'_>) {
        let need_resched = self.fair.need_resched();
        let app_fill_pct = self.app_fill_pct();
        (
            &mut self.disc,
            Cx {
                ifs: &mut self.ifs,
                netisr: &mut self.netisr,
                ipintrq: &mut self.ipintrq,
                dispatch: self.dispatch,
                poll: &mut self.poll,
                poll_list: &mut self.poll_list,
                now,
                jiffies: self.sched.ticks,
                need_resched,
                app_fill_pct,
            },
        )
    }

    /// How full the udp-sink's socket buffer is, percent of `rcvbuf`
    /// datagrams (`None` without the app).
    fn app_fill_pct(&self) -> Option<u32> {
        let sink = self.apps.udp_sink.as_ref()?;
        let queued = self.netisr.udp_delivered().saturating_sub(sink.datagrams);
        let pct = queued * 100 / sink.rcvbuf.max(1);
        Some(u32::try_from(pct).unwrap_or(u32::MAX))
    }

    /// `dev.<if>.discipline`: leave the current discipline and join
    /// `kind`, as `ifconfig polling` does for FreeBSD's. Frames in the ring
    /// and in `ipintrq` stay where they are. If `kind` refuses the
    /// interface (a full polling list), it stays where it was; returns
    /// whether it switched.
    pub fn set_discipline(&mut self, i: usize, kind: Kind) -> bool {
        let old = self.ifs[i].discipline;
        if old == kind {
            return true;
        }
        let now = self.cpu.last_switch();
        let (disc, mut cx) = self.split(now);
        disc.get_mut(old).detach(&mut cx, i);
        if disc.get_mut(kind).attach(&mut cx, i) {
            self.ifs[i].discipline = kind;
            true
        } else {
            disc.get_mut(old).attach(&mut cx, i);
            false
        }
    }

    /// `dev.<if>.polling`, FreeBSD's sugar for the discipline: on, polling;
    /// off, interrupts.
    pub fn set_polling(&mut self, i: usize, on: bool) {
        let kind = if on { Kind::Polling } else { Kind::Interrupt };
        if on || self.ifs[i].discipline == Kind::Polling {
            self.set_discipline(i, kind);
        }
    }

    /// `kern.polling.enable`, the legacy global switch (FreeBSD <= 5's
    /// `polling` variable; FreeBSD 6's `poll_switch`, "Legacy interface for
    /// turning polling on all interfaces at one time", deprecated for
    /// `ifconfig polling`): on puts every interface in polling, whatever its
    /// discipline; off puts every polling interface back to interrupts
    /// (NAPI and M&R interfaces are not polling(4)'s and stay). Returns the
    /// interfaces that refused (a full polling list); the others switched,
    /// as `poll_switch` ignores a driver's refusal and goes on.
    pub fn set_polling_all(&mut self, on: bool) -> Vec<usize> {
        (0..self.ifs.len())
            .filter(|&i| {
                if on {
                    !self.set_discipline(i, Kind::Polling)
                } else {
                    self.set_polling(i, false);
                    false
                }
            })
            .collect()
    }

    /// What `kern.polling.enable` reads: whether any interface polls (in
    /// FreeBSD 5 the variable was on exactly while polling ran, that is
    /// while handlers were registered; reading it derived from the
    /// interfaces keeps it true after `dev.<if>.polling` writes, where
    /// FreeBSD 6's copy went stale).
    pub fn polling_enabled(&self) -> bool {
        self.ifs.iter().any(|f| f.discipline == Kind::Polling)
    }

    /// The clock interrupt for one tick: [`Kernel::hardclock_cnt`] with 1.
    pub fn hardclock(&mut self, now: Nanos) {
        self.hardclock_cnt(now, 1);
    }

    /// The clock interrupt, standing for `cnt` ticks (FreeBSD's
    /// `hardclock(cnt, usermode)`, formerly `hardclock_cnt`): `ticks`
    /// advances by `cnt`, every discipline's clock hook runs once
    /// (`hardclock_device_poll` for polling), the protocol timers
    /// (softclock) need an egress pass, and the interrupt exits.
    ///
    /// When the timer is delivered late (the host was busy, or woke this
    /// process late from idle), several expirations are read at once; as in
    /// FreeBSD, they are one interrupt, not `cnt` interrupts back to back,
    /// which would count a lost poll per extra tick and cut `burst` although
    /// the kernel never overran a tick.
    pub fn hardclock_cnt(&mut self, now: Nanos, cnt: u64) {
        self.sched.ticks += cnt;
        let (disc, mut cx) = self.split(now);
        for d in disc.all_mut() {
            d.hardclock(&mut cx);
        }
        self.egress_pending = true;
        self.irq_exit(now);
    }

    /// The hard interrupt of interface `i`, as its discipline handles it.
    /// Returns the frames moved from the ring at interrupt level. Bound:
    /// the discipline's (`rx_ring` frames for `interrupt`, none for the
    /// others).
    pub fn isr(&mut self, i: usize) -> usize {
        // The scheduler switched to intr at the interrupt's time.
        let now = self.cpu.last_switch();
        let ifn = &mut self.ifs[i];
        ifn.counters.interrupts += 1;
        ifn.moderation.on_irq();
        ifn.nic.set_now(now.0);
        let kind = ifn.discipline;
        let (disc, mut cx) = self.split(now);
        disc.get_mut(kind).hardirq(&mut cx, i) as usize
    }

    /// Leaving a hard interrupt (Linux's `irq_exit`): a discipline may
    /// start pending softirq work here.
    pub fn irq_exit(&mut self, now: Nanos) {
        let (disc, mut cx) = self.split(now);
        for d in disc.all_mut() {
            d.irq_exit(&mut cx);
        }
    }

    /// Which of the raised lines in `raised` (bit `i` for `ifs[i]`) the
    /// CPU takes now: each interface's moderation may hold its line.
    pub fn irq_lines(&mut self, raised: u64, now: Nanos) -> u64 {
        let mut take = 0;
        for (i, ifn) in self.ifs.iter_mut().enumerate().take(64) {
            if raised & (1 << i) == 0 {
                ifn.moderation.idle();
            } else if ifn.moderation.fire(now, ifn.nic.rx_pending()) {
                take |= 1 << i;
            }
        }
        take
    }

    /// Whether a discipline's timer is due at `now`.
    pub fn timer_due(&self, now: Nanos) -> bool {
        self.next_timer().is_some_and(|t| t <= now)
    }

    /// The earliest armed timer of any discipline.
    fn next_timer(&self) -> Option<Nanos> {
        self.disc.all().iter().filter_map(|d| d.next_timer()).min()
    }

    /// Run every discipline timer due at `now` (an interrupt). Returns
    /// how many fired.
    pub fn timers(&mut self, now: Nanos) -> u32 {
        let (disc, mut cx) = self.split(now);
        let mut n = 0;
        for d in disc.all_mut() {
            if d.next_timer().is_some_and(|t| t <= now) {
                d.timer(&mut cx);
                n += 1;
            }
        }
        n
    }

    /// When the CPU is next needed for a timer (a discipline's, or a held
    /// interrupt line's) or a sleeping user process's wake-up (the
    /// interactive process), if any: an idle CPU must wake by then.
    pub fn next_deadline(&self) -> Option<Nanos> {
        let held = self.ifs.iter().filter_map(|f| f.moderation.deadline());
        held.chain(self.next_timer())
            .chain(self.user_next_due())
            .min()
    }

    /// Whether any interface's interrupt line is unmasked.
    pub fn any_intr_enabled(&self) -> bool {
        self.ifs.iter().any(|f| f.nic.intr_enabled())
    }

    /// Whether there is kernel work above the user processes.
    pub fn netisr_pending(&mut self) -> bool {
        if self.egress_pending || self.backlog_pending() {
            return true;
        }
        let now = self.cpu.last_switch();
        let (disc, cx) = self.split(now);
        disc.all_mut().into_iter().any(|d| d.kernel_pending(&cx))
    }

    /// What runs next below the interrupts: kernel work, else the fair
    /// class's pick (the user process or a kernel thread), else the idle
    /// loop's poll, else idle. The schedulers ask this and never look at
    /// a discipline.
    pub fn next_unit(&mut self, now: Nanos) -> Unit {
        if self.netisr_pending() {
            return Unit::Kernel;
        }
        let mut threads: Vec<Runnable> = Vec::new();
        for d in self.disc.all_mut() {
            d.runnable_threads(&mut threads);
        }
        match self.fair.pick(now, self.user_runnable(now), &threads) {
            Some(Task::User) => Unit::User,
            Some(Task::Thread(t)) => Unit::Thread(t),
            None => {
                let (disc, cx) = self.split(now);
                if disc.all_mut().iter().any(|d| d.idle_pending(&cx)) {
                    Unit::IdlePoll
                } else {
                    Unit::Idle
                }
            }
        }
    }

    /// One unit of kernel work, highest first: a discipline's (a polling
    /// chunk, one `ipintrq` frame, ...), or an egress pass. The caller then
    /// runs [`Kernel::unit_done`] at the time the unit ended. Returns what
    /// it did.
    pub fn netisr_step(&mut self, now: Nanos) -> NetisrWork {
        self.sched.netisr_runs += 1;
        self.reactor.note_activity();
        self.set_nic_time(now);
        if self.backlog_pending() {
            return self.backlog_step(now);
        }
        let (disc, mut cx) = self.split(now);
        let mut work = None;
        for d in disc.all_mut() {
            if d.kernel_pending(&cx) {
                work = Some(d.kernel_step(&mut cx));
                break;
            }
        }
        match work {
            Some(w) => {
                if w.then_egress && self.egress_pending {
                    self.egress(now);
                }
                w
            }
            None => {
                if self.egress_pending {
                    self.egress(now);
                }
                NetisrWork::default()
            }
        }
    }

    /// Whether frames other CPUs handed wait in this CPU's backlog for
    /// the netisr: under NAPI, the backlog is a NAPI instance of the
    /// softirq instead (Linux's `process_backlog`).
    fn backlog_pending(&self) -> bool {
        self.netisr.backlog_len() > 0 && self.ifs.first().is_none_or(|f| f.discipline != Kind::Napi)
    }

    /// One frame from this CPU's backlog into its stack (the protocol of
    /// a frame another CPU took from its queue: RPS, RFS), as `ipintr`
    /// takes one from `ipintrq`.
    fn backlog_step(&mut self, now: Nanos) -> NetisrWork {
        let took = self.netisr.backlog_one(now);
        if let Some(ifn) = self.ifs.first_mut() {
            self.netisr.flush(0, ifn.nic.as_mut());
        }
        NetisrWork {
            dispatched: u32::from(took),
            ..NetisrWork::default()
        }
    }

    /// What the units of work since the last call cost, `base` being their
    /// charge with every frame's protocol run here: frames handed to other
    /// CPUs' backlogs pay the handing instead of the protocol, datagrams
    /// handed to sockets on other CPUs the cross-CPU cost besides.
    pub fn charge_handoff(&mut self, base: u64, proto_cost_ns: u64) -> u64 {
        match self.netisr.rps.as_deref_mut() {
            Some(r) => r.charge(base, proto_cost_ns),
            None => base,
        }
    }

    /// Whether an IPI is raised for this CPU (frames in its backlog).
    pub fn ipi_pending(&self) -> bool {
        self.netisr.rps.as_ref().is_some_and(|r| r.ipi_pending > 0)
    }

    /// Take the raised IPIs; returns their cost at interrupt level.
    pub fn take_ipis(&mut self) -> u64 {
        let Some(r) = self.netisr.rps.as_deref_mut() else {
            return 0;
        };
        let n = std::mem::take(&mut r.ipi_pending);
        r.stats.ipis += n;
        let ns = n * r.ipi_cost_ns;
        if self.ifs.first().is_some_and(|f| f.discipline == Kind::Napi) {
            // rps_trigger_softirq: the backlog's NAPI is scheduled, and
            // NET_RX runs at the interrupt's exit.
            self.disc.napi.schedule_backlog();
        }
        ns
    }

    /// What other CPUs handed to this one, at `now` (the end of a turn):
    /// frames into the backlog (a full one drops them; an IPI is raised if
    /// any entered), datagrams into udp-sink's socket here.
    pub fn receive_handed(
        &mut self,
        items: impl IntoIterator<Item = (rps::Handed, Vec<u8>)>,
        now: Nanos,
    ) {
        let Some(r) = self.netisr.rps.as_deref_mut() else {
            return;
        };
        // An IPI only for a backlog that was idle (NAPI_STATE_SCHED clear).
        let mut queued = false;
        let was_idle = r.backlog.is_empty();
        let mut datagrams = Vec::new();
        for (kind, frame) in items {
            match kind {
                rps::Handed::Backlog => {
                    r.stats.handed_in += 1;
                    if r.backlog.enqueue(0, &frame) {
                        queued = true;
                    } else {
                        r.stats.backlog_drops += 1;
                    }
                }
                rps::Handed::Socket => {
                    r.stats.socket_in += 1;
                    r.note_read(&frame);
                    datagrams.push(frame);
                }
            }
        }
        r.ipi_pending += u64::from(queued && was_idle);
        for frame in &datagrams {
            self.netisr.ingress_here(0, now, frame);
        }
        if !datagrams.is_empty() {
            self.reactor.note_activity();
        }
    }

    /// One unit of work of the kernel thread `t`. The caller then runs
    /// [`Kernel::unit_done`].
    pub fn thread_step(&mut self, now: Nanos, t: Thread) -> NetisrWork {
        self.sched.netisr_runs += 1;
        self.reactor.note_activity();
        self.set_nic_time(now);
        let released = if self.busy.any() {
            self.busy_release_for_thread(now)
        } else {
            0
        };
        let (disc, mut cx) = self.split(now);
        let mut work = NetisrWork::default();
        for d in disc.all_mut() {
            let mut mine = Vec::new();
            d.runnable_threads(&mut mine);
            if mine.iter().any(|r| r.thread == t) {
                work = d.thread_step(&mut cx, t);
                break;
            }
        }
        if work.then_egress && self.egress_pending {
            self.egress(now);
        }
        work.polled += released;
        work
    }

    /// The unit of kernel work before ended at `now` (FreeBSD's
    /// `netisr_pollmore` reads the clock itself: the tick's kernel load
    /// must include its last chunk, so the caller passes the time after
    /// that chunk, not before).
    pub fn unit_done(&mut self, now: Nanos) {
        let (disc, mut cx) = self.split(now);
        for d in disc.all_mut() {
            d.unit_done(&mut cx);
        }
    }

    /// [`Kernel::unit_done`] under its FreeBSD name.
    pub fn netisr_pollmore(&mut self, now: Nanos) {
        self.unit_done(now);
    }

    fn egress(&mut self, now: Nanos) {
        self.egress_pending = false;
        for (i, ifn) in self.ifs.iter_mut().enumerate() {
            self.netisr.egress(i, ifn.nic.as_mut(), now);
            self.netisr.flush(i, ifn.nic.as_mut());
        }
    }

    /// A poll from the idle loop (`ether_poll`, `kern.polling.idle_poll`).
    /// Returns the frames taken: into the stack (`polled`), or into
    /// `ipintrq` under deferred dispatch (`queued`).
    pub fn idle_poll(&mut self, now: Nanos) -> NetisrWork {
        self.sched.idle_polls += 1;
        self.set_nic_time(now);
        let offered = |q: &IpIntrQ| q.enqueued + q.drops;
        let before = offered(&self.ipintrq);
        let (disc, mut cx) = self.split(now);
        let mut taken = 0;
        for d in disc.all_mut() {
            if d.idle_pending(&cx) {
                taken += d.idle_step(&mut cx);
            }
        }
        let queued = u32::try_from(offered(&self.ipintrq) - before).unwrap_or(u32::MAX);
        NetisrWork {
            polled: taken - queued,
            queued,
            ..NetisrWork::default()
        }
    }

    /// Tell every NIC the kernel's time (for a capture's timestamps).
    fn set_nic_time(&mut self, now: Nanos) {
        for ifn in &mut self.ifs {
            ifn.nic.set_now(now.0);
        }
    }

    /// Whether a user process has work at `now` (or may have: readiness
    /// the reactor has not delivered yet).
    pub fn user_runnable(&self, now: Nanos) -> bool {
        self.reactor.has_events()
            || (self.reactor.pollers().count() > 1 && self.reactor.pollers().any_woken())
            || self.runnable_threads > 0
            || self.sleepq.has_wakeups()
            || (0..self.n_apps).any(|p| proc_runnable(self.procs_view(), p, now))
    }

    /// Whether the process on the CPU is half way through its work (a burn
    /// or a slice in progress).
    pub fn user_mid_work(&self) -> bool {
        self.runq
            .current()
            .is_some_and(|p| match self.procs[p].kind {
                ProcKind::Interactive => self
                    .apps
                    .interactive
                    .as_ref()
                    .is_some_and(|a| a.mid_slice()),
                ProcKind::Sockets(app) => {
                    self.procs[p].burn_left > Nanos::ZERO
                        || self.busy.app(app).is_some_and(|b| b.looping())
                }
                ProcKind::Thread(_) => self.procs[p].burn_left > Nanos::ZERO,
                ProcKind::Exited => false,
            })
    }

    /// When a user process that sleeps now next wants the CPU (the
    /// interactive process's next slice), for an idle CPU to wake.
    pub fn user_next_due(&self) -> Option<Nanos> {
        self.apps.interactive.as_ref().and_then(|a| a.next_due())
    }

    /// One unit of user work: the processes that have work join the run
    /// queue ([`Kernel::user_wake`]), the run queue picks one
    /// ([`RunQueue::pick`]: round robin with a quantum, a waking process of
    /// better priority first), and it does one unit: a slice of CPU burn
    /// (the interactive process's, or what an app's last step costs), or
    /// one app step. The CPU time it took is charged to it.
    ///
    /// The reactor is one pollset shared by the socket apps (as ERTS's
    /// `check_io`): a poll is charged to the process it delivers its first
    /// event to, or, if it delivers none, to the one that took the last
    /// poll's first event (the first socket app before any). Registrations
    /// and re-arms are charged to the app whose step made them. On virtual
    /// time the charges are the cost model's `hw.sim.reactor_*`; on the
    /// real clock the poll is timed, and its registrations and re-arms are
    /// inside the step's measured time (not split out of `cpu_ns` into
    /// `reactor_ns`).
    pub fn user_step(&mut self, now: Nanos, clock: &mut dyn Clock) {
        self.sched.user_steps += 1;
        let start = clock.now();
        if let Some(caller) = self.user_wake(now, clock) {
            let used = clock.now().since(start);
            self.runq.charge(caller, used);
            self.runq.note_reactor(caller, used);
        }
        let view = ProcsView {
            procs: &self.procs,
            apps: &self.apps,
            busy: &self.busy,
        };
        let switches = self.runq.switches;
        let Some(pid) = self.runq.pick(now, &|p| proc_runnable(view, p, now)) else {
            return;
        };
        if self.busy.any() {
            self.busy_release(pid, now, clock);
        }
        let start = clock.now();
        if self.runq.switches != switches && matches!(self.procs[pid].kind, ProcKind::Thread(_)) {
            self.ctxsw(now, clock);
        }
        let ctl = (self.reactor.stats.registers, self.reactor.stats.rearms);
        let exit = self.proc_step(pid, now, clock);
        if let Some(cost) = self.cost {
            let ns = cost.reactor_ctl_ns(
                self.reactor.backend(),
                self.reactor.stats.registers - ctl.0,
                self.reactor.stats.rearms - ctl.1,
            );
            if ns > 0 {
                clock.burn(Nanos(ns));
                self.runq.note_reactor(pid, Nanos(ns));
            }
        }
        self.runq.charge(pid, clock.now().since(start));
        if exit {
            self.thread_exit(pid);
        }
    }

    /// A connection thread woken from its socket was switched in: on
    /// virtual time, the context switch (`hw.sim.ctxsw_ns`), in sys (the
    /// real clock refuses the threads model: `pollsim run` without `--sim` exits).
    fn ctxsw(&mut self, now: Nanos, clock: &mut dyn Clock) {
        let Some(ns) = self.cost.map(|c| c.ctxsw_ns).filter(|&ns| ns > 0) else {
            return;
        };
        self.cpu.switch(now, cpu::CpuState::Sys);
        let end = clock.burn(Nanos(ns));
        self.cpu.switch(end, cpu::CpuState::User);
    }

    /// Make connection `token` of tcp-echo a process of its own, runnable
    /// at `now` (its first read). Bound: O(1); threads are bounded by
    /// tcp-echo's `max_conns`, since only accepted connections get one.
    fn thread_spawn(&mut self, token: Token, now: Nanos) {
        let pid = self.thread_new(token, true);
        self.runnable_threads += 1;
        self.runq.wake(pid, now);
    }

    /// Whether tcp-echo serves its connections with a thread each
    /// (`user.tcp_echo.model=threads`).
    pub fn echo_threads(&self) -> bool {
        self.apps
            .tcp_echo
            .as_ref()
            .is_some_and(|a| a.model == apps::tcp_echo::Model::Threads)
    }

    /// A connection thread of tcp-echo's threads model blocked in read on
    /// socket `h` from the start: the thread of a synthetic idle
    /// connection (`--conns` on virtual time, [`crate::conns`]). It costs
    /// no CPU until the socket wakes it (nothing sends to it), and holds
    /// its stack. Bound: O(1).
    pub fn thread_park(&mut self, h: sockets::SockRef, token: Token) {
        let pid = self.thread_new(token, false);
        if let Some(w) = self.procs[pid].waker.as_ref() {
            self.netisr
                .sockets
                .get_mut_quiet::<smoltcp::socket::tcp::Socket>(h)
                .register_recv_waker(w);
        }
    }

    /// A new connection thread serving `token`, sleeping, with a step
    /// `pending` or not; its stack counted. Returns its pid.
    fn thread_new(&mut self, token: Token, pending: bool) -> Pid {
        let stack_kb = self.apps.tcp_echo.as_ref().map_or(0, |a| a.thread_stack_kb);
        let pid = self.runq.spawn("tcp_echo");
        let waker = Waker::from(Arc::new(ThreadWaker {
            pid,
            q: Arc::clone(&self.sleepq),
        }));
        let p = UserProc {
            kind: ProcKind::Thread(token),
            tokens: VecDeque::new(),
            burn_left: Nanos::ZERO,
            pending,
            stack_kb,
            waker: Some(waker),
        };
        if pid == self.procs.len() {
            self.procs.push(p);
        } else {
            self.procs[pid] = p;
        }
        self.threads.created += 1;
        self.threads.now += 1;
        self.threads.max = self.threads.max.max(self.threads.now);
        self.threads.stack_kb += stack_kb;
        pid
    }

    /// Connection thread `pid` returns: it leaves the run queue and its
    /// stack is freed.
    fn thread_exit(&mut self, pid: Pid) {
        let p = &mut self.procs[pid];
        if thread_has_work(p) {
            self.runnable_threads -= 1;
        }
        p.kind = ProcKind::Exited;
        p.pending = false;
        p.burn_left = Nanos::ZERO;
        p.waker = None;
        self.threads.now -= 1;
        self.threads.exited += 1;
        self.threads.stack_kb -= p.stack_kb;
        self.runq.exit(pid);
    }

    /// Deliver readiness to the processes and put every sleeping process
    /// that has work on the run queue. The reactor is polled when no socket
    /// app has anything left to do, as a lone process calls epoll only
    /// when it has handled every event, or, with several socket apps, when
    /// it has events: each app blocks in its own epoll, and the one whose
    /// socket is ready wakes while another runs.
    ///
    /// Returns the process a reactor poll is charged to, if one ran (on
    /// virtual time its cost is burnt on `clock` here).
    fn user_wake(&mut self, now: Nanos, clock: &mut dyn Clock) -> Option<Pid> {
        let socket_procs = self.procs[..self.n_apps]
            .iter()
            .filter(|p| matches!(p.kind, ProcKind::Sockets(_)))
            .count();
        let idle = self.procs[..self.n_apps]
            .iter()
            .all(|p| p.tokens.is_empty() && p.burn_left == Nanos::ZERO);
        let mut caller = None;
        let due = idle || (socket_procs > 1 && self.reactor.has_events());
        if socket_procs > 0 && self.reactor.pollers().count() > 1 {
            // Dedicated pollers: each charges its own poll.
            self.poller_round(due, clock);
        } else if socket_procs > 0 && due {
            let examined =
                self.reactor
                    .poll(&mut self.netisr.sockets, &mut self.events, EVENT_BATCH);
            if let Some(cost) = self.cost {
                clock.burn(Nanos(
                    cost.reactor_poll_ns(self.reactor.backend(), examined),
                ));
            }
            // The one poller is the apps' own loop: a wake-up is counted,
            // and costs no switch (the model charges none among the apps).
            let woken = self.reactor.pollers_mut().take_woken(0);
            let n = self.events.len();
            self.reactor.pollers_mut().note_poll(woken, n);
            caller = self.dispatch_events();
        }
        for pid in self.sleepq.take() {
            // A wake-up can outlive its thread (a socket's waker fires
            // once, later): only a live thread's counts.
            let p = &mut self.procs[pid];
            if matches!(p.kind, ProcKind::Thread(_)) {
                if !thread_has_work(p) {
                    self.runnable_threads += 1;
                }
                p.pending = true;
                self.runq.wake(pid, now);
            }
        }
        for pid in 0..self.n_apps {
            if self.runq.is_sleeping(pid) && proc_runnable(self.procs_view(), pid, now) {
                // The interactive process became runnable when its slice
                // was due, though the CPU sees it only now.
                let at = match self.procs[pid].kind {
                    ProcKind::Interactive => self.user_next_due().map_or(now, |d| d.min(now)),
                    _ => now,
                };
                self.runq.wake(pid, at);
            }
        }
        caller
    }

    /// Hand the events of the last reactor poll to their processes.
    /// Returns the process the poll is charged to: the one of its first
    /// event, or, with none, the last poll's (the first socket app before
    /// any), which it remembers. Bound: O(events).
    fn dispatch_events(&mut self) -> Option<Pid> {
        let mut caller = None;
        for i in 0..self.events.len() {
            let token = self.events[i].token;
            let app = token.0 / crate::apps::TOKEN_SPACE;
            if let Some(pid) = self.socket_pid(app) {
                self.procs[pid].tokens.push_back(token);
                caller = caller.or(Some(pid));
                self.busy_event(app, token);
            }
        }
        let first_socket = self
            .procs
            .iter()
            .position(|p| matches!(p.kind, ProcKind::Sockets(_)));
        caller = caller.or(self.reactor_caller).or(first_socket);
        self.reactor_caller = caller;
        caller
    }

    /// One unit of work of process `pid`. Returns whether it exits (a
    /// connection thread whose connection ended).
    fn proc_step(&mut self, pid: Pid, now: Nanos, clock: &mut dyn Clock) -> bool {
        let p = &mut self.procs[pid];
        if p.kind == ProcKind::Interactive {
            if let Some(a) = self.apps.interactive.as_mut() {
                clock.burn(a.step(now, USER_SLICE));
            }
            return false;
        }
        if let ProcKind::Thread(token) = p.kind {
            return self.conn_thread_step(pid, token, now, clock);
        }
        if p.burn_left > Nanos::ZERO {
            let slice = Nanos(p.burn_left.0.min(USER_SLICE.0));
            clock.burn(slice);
            p.burn_left = Nanos(p.burn_left.0 - slice.0);
            return false;
        }
        let ProcKind::Sockets(app) = p.kind else {
            return false;
        };
        if p.tokens.is_empty() {
            if self.busy.app(app).is_some_and(|b| b.wants_cpu()) {
                self.busy_step(app, now, clock);
            }
            return false;
        }
        self.busy_woke(app, now, clock);
        let p = &mut self.procs[pid];
        let Some(token) = p.tokens.pop_front() else {
            return false;
        };
        let mut cx = UserCx::new(&mut self.netisr.sockets, &mut self.reactor, now);
        let step = self.apps.step(&mut cx, token);
        let spawn = cx.spawn;
        if cx.wrote {
            self.egress_pending = true;
        }
        let p = &mut self.procs[pid];
        if step.more {
            p.tokens.push_front(token);
        }
        p.burn_left = step.work;
        if let Some(t) = spawn {
            self.thread_spawn(t, now);
        }
        false
    }

    /// One unit of connection thread `pid` (serving `token`): a slice of
    /// its burn, or one step; blocking registers its waker on the socket
    /// (its sleep queue entry) and checks the socket once more, so a
    /// wake-up between the step and the sleep is not lost.
    fn conn_thread_step(
        &mut self,
        pid: Pid,
        token: Token,
        now: Nanos,
        clock: &mut dyn Clock,
    ) -> bool {
        let p = &mut self.procs[pid];
        let had = thread_has_work(p);
        let mut exit = false;
        if p.burn_left > Nanos::ZERO {
            let slice = Nanos(p.burn_left.0.min(USER_SLICE.0));
            clock.burn(slice);
            p.burn_left = Nanos(p.burn_left.0 - slice.0);
        } else if p.pending {
            p.pending = false;
            let Some(echo) = self.apps.tcp_echo.as_mut() else {
                unreachable!("a connection thread without tcp-echo");
            };
            let mut cx = UserCx::new(&mut self.netisr.sockets, &mut self.reactor, now);
            let step = echo.thread_step(&mut cx, token);
            if cx.wrote {
                self.egress_pending = true;
            }
            match step {
                // Not returned from here: the thread had work, and the
                // count of runnable threads must lose it (a count left at
                // one kept the user runnable with nothing to run, a spin at
                // one instant where nothing costs virtual time).
                apps::tcp_echo::ThreadStep::Exit => exit = true,
                apps::tcp_echo::ThreadStep::Run(work) => {
                    let p = &mut self.procs[pid];
                    p.pending = true;
                    p.burn_left = work;
                }
                apps::tcp_echo::ThreadStep::Block(interest) => {
                    let ready = match (echo.socket_of(token), self.procs[pid].waker.as_ref()) {
                        (Some(h), Some(w)) => {
                            let s = self
                                .netisr
                                .sockets
                                .get_mut_quiet::<smoltcp::socket::tcp::Socket>(h);
                            if interest.is_readable() {
                                s.register_recv_waker(w);
                            }
                            if interest.is_writable() {
                                s.register_send_waker(w);
                            }
                            apps::tcp_echo::thread_ready(s, interest)
                        }
                        _ => false,
                    };
                    self.procs[pid].pending = ready;
                }
            }
        }
        let has = thread_has_work(&self.procs[pid]);
        match (had, has) {
            (false, true) => self.runnable_threads += 1,
            (true, false) => self.runnable_threads -= 1,
            _ => {}
        }
        exit
    }

    /// The pid of socket app `app` (its index in token space), if it runs.
    fn socket_pid(&self, app: usize) -> Option<Pid> {
        self.procs
            .iter()
            .position(|p| p.kind == ProcKind::Sockets(app))
    }

    /// What [`proc_runnable`] reads.
    fn procs_view(&self) -> ProcsView<'_> {
        ProcsView {
            procs: &self.procs,
            apps: &self.apps,
            busy: &self.busy,
        }
    }

    /// The pid of the user process named `name` (`udp_sink`, `tcp_echo`,
    /// `http`, `interactive`).
    pub fn user_pid(&self, name: &str) -> Option<Pid> {
        self.runq.pid(name)
    }

    /// Refresh every NIC's status (link, `rx_missed`), as a status interrupt.
    pub fn check_status(&mut self) {
        for ifn in &mut self.ifs {
            let st = ifn.nic.check_status();
            ifn.counters.status_checks += 1;
            ifn.counters.link_up = st.link_up;
        }
    }
}

/// What a user process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcKind {
    /// A socket app, by its index in token space (`token / TOKEN_SPACE`).
    Sockets(usize),
    /// The interactive process (no socket: runnable when a slice is due).
    Interactive,
    /// A connection thread of tcp-echo (threads model), serving the
    /// connection of this token, blocked in read on its socket.
    Thread(Token),
    /// A thread that exited; its slot waits for the next one.
    Exited,
}

/// A user process: what it is and the work it has pending.
#[derive(Debug)]
struct UserProc {
    kind: ProcKind,
    /// Readiness delivered to it and not handled yet.
    tokens: VecDeque<Token>,
    /// CPU left of what its last step costs.
    burn_left: Nanos,
    /// A thread: its socket woke it (or it runs on), a step is due.
    pending: bool,
    /// A thread: its stack, KiB.
    stack_kb: u64,
    /// A thread: what its socket wakes (its sleep queue entry).
    waker: Option<Waker>,
}

/// Whether a connection thread has work.
fn thread_has_work(p: &UserProc) -> bool {
    p.pending || p.burn_left > Nanos::ZERO
}

/// tcp-echo's connection threads (the threads model). Each doc line is
/// the sysctl description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Connection threads now
    pub now: u64,
    /// Most connection threads at once
    pub max: u64,
    /// Connection threads made
    pub created: u64,
    /// Connection threads that exited
    pub exited: u64,
    /// Memory the threads' stacks hold now, KiB
    pub stack_kb: u64,
}

/// The pids the connection threads' sockets woke. Shared with their wakers.
#[derive(Debug, Default)]
struct SleepQ(Mutex<Vec<Pid>>);

impl SleepQ {
    fn has_wakeups(&self) -> bool {
        self.0.lock().map(|l| !l.is_empty()).unwrap_or(false)
    }

    fn take(&self) -> Vec<Pid> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// The waker a connection thread leaves on its socket (`sbwait`'s sleep
/// channel): a wake-up puts its pid on the sleep queue.
#[derive(Debug)]
struct ThreadWaker {
    pid: Pid,
    q: Arc<SleepQ>,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Ok(mut l) = self.q.0.lock() {
            l.push(self.pid);
        }
    }
}

/// One process per app, in `Apps::processes` order, all asleep.
fn user_procs(apps: &Apps) -> (RunQueue, Vec<UserProc>) {
    let mut runq = RunQueue::new();
    let procs = apps
        .processes()
        .into_iter()
        .map(|(index, name)| {
            runq.add(name);
            UserProc {
                kind: index.map_or(ProcKind::Interactive, ProcKind::Sockets),
                tokens: VecDeque::new(),
                burn_left: Nanos::ZERO,
                pending: false,
                stack_kb: 0,
                waker: None,
            }
        })
        .collect();
    (runq, procs)
}

/// What [`proc_runnable`] reads of the kernel.
#[derive(Clone, Copy)]
struct ProcsView<'a> {
    procs: &'a [UserProc],
    apps: &'a Apps,
    busy: &'a busy_poll::BusyPoll,
}

/// Whether process `pid` has work at `now` (a socket app busy-polling
/// has: it spins).
fn proc_runnable(v: ProcsView<'_>, pid: Pid, now: Nanos) -> bool {
    let p = &v.procs[pid];
    match p.kind {
        ProcKind::Interactive => v.apps.interactive.as_ref().is_some_and(|a| a.runnable(now)),
        ProcKind::Sockets(app) => {
            p.burn_left > Nanos::ZERO
                || !p.tokens.is_empty()
                || v.busy.app(app).is_some_and(|b| b.wants_cpu())
        }
        ProcKind::Thread(_) => thread_has_work(p),
        ProcKind::Exited => false,
    }
}

/// The poll handler of interface `i` (a driver's `*_poll`, a NAPI
/// `->poll`): status check if asked, then up to `count` frames straight
/// into its stack. Bound: `count` frames.
fn poll_handler(
    ifs: &mut [IfNet],
    i: usize,
    netisr: &mut Netisr,
    now: Nanos,
    cmd: PollCmd,
    count: u32,
) -> u32 {
    let mut direct = None;
    poll_handler_via(ifs, i, netisr, &mut direct, now, cmd, count)
}

/// [`poll_handler`] under a dispatch policy: with `via` holding `ipintrq`
/// and `net.isr.dispatch`, each frame the policy queues goes to `ipintrq`
/// (`ether_input` → `netisr_dispatch`; a full queue drops it, counted per
/// interface) instead of into the stack. Bound: `count` frames.
fn poll_handler_via(
    ifs: &mut [IfNet],
    i: usize,
    netisr: &mut Netisr,
    via: &mut Option<(&mut IpIntrQ, intr::Dispatch)>,
    now: Nanos,
    cmd: PollCmd,
    count: u32,
) -> u32 {
    let ifn = &mut ifs[i];
    ifn.counters.polls += 1;
    if cmd == PollCmd::PollAndCheckStatus {
        let st = ifn.nic.check_status();
        ifn.counters.status_checks += 1;
        ifn.counters.link_up = st.link_up;
    }
    let drops = &mut ifn.counters.ipintrq_drops;
    let taken = ifn.nic.rx(count as usize, &mut |frame| match via {
        Some((q, policy)) if policy.queues(q.len()) => {
            if !q.enqueue(i, frame) {
                *drops += 1;
            }
        }
        _ => netisr.ingress(i, now, frame),
    });
    netisr.flush(i, ifn.nic.as_mut());
    u32::try_from(taken).unwrap_or(u32::MAX)
}
