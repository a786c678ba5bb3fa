//! The simulated kernel: one CPU, strict priority intr > netisr > user > idle.
//!
//! Mirrors the 4.4BSD/FreeBSD receive path: a NIC interrupt (`*_intr`)
//! moving frames to `ipintrq`, the IP netisr (`ipintr`), device polling
//! (`kern_poll.c`: `hardclock_device_poll`, `netisr_poll`,
//! `netisr_pollmore`, `ether_poll` from the idle loop), and user processes.
//! Each method here does one bounded unit of work at one priority and takes
//! `now` as a parameter; the scheduler in [`sched`] decides what runs next
//! and reads the clock. The same methods run under a virtual clock.

pub mod clock;
pub mod cost;
pub mod cpu;
pub mod host;
pub mod intr;
pub mod mib;
pub mod netisr;
pub mod poll;
pub mod reactor;
pub mod sched;
pub mod sockets;
pub mod time;
pub mod vsched;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use pollsim_drivers::{Nic, PollCmd};
use smoltcp::iface::{Config as IfConfig, Interface};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

use crate::apps::{AppKind, Apps, UserCx};
use clock::Clock;
use cpu::Cpu;
use intr::IpIntrQ;
use netisr::Netisr;
use poll::PollEngine;
use reactor::{Event, Reactor, Token};
use time::{Hz, Nanos};

/// How an interface delivers frames: the initial `dev.<if>.polling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Interrupt-driven input through `ipintrq` (livelocks under overload).
    Interrupt,
    /// FreeBSD device polling (`kern.polling.*`).
    Polling,
}

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
    /// `dev.<if>.polling`.
    pub polling: bool,
    /// `dev.<if>.rx_ring`: frames one interrupt may move.
    pub rx_ring: usize,
    /// Counters.
    pub counters: IfCounters,
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
    /// Status checks made (`POLL_AND_CHECK_STATUS`).
    pub status_checks: u32,
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
    /// `ipintrq`.
    pub ipintrq: IpIntrQ,
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
    runq: VecDeque<Token>,
    burn_left: Nanos,
    events: Vec<Event>,
    egress_pending: bool,
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
        Kernel {
            hz: cfg.hz,
            ifs: Vec::new(),
            poll_list: Vec::new(),
            poll: PollEngine::new(cfg.hz),
            ipintrq: IpIntrQ::new(intr::IPINTRQ_MAXLEN_DEFAULT),
            netisr: Netisr::new(),
            reactor: Reactor::new(),
            apps: Apps::new(&cfg.apps),
            cpu: Cpu::new(now),
            sched: SchedStats::default(),
            cost: None,
            host: host::HostStats::default(),
            runq: VecDeque::new(),
            burn_left: Nanos::ZERO,
            events: Vec::with_capacity(EVENT_BATCH),
            egress_pending: false,
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
            polling: false,
            rx_ring: intr::RX_RING_DEFAULT,
            counters: IfCounters::default(),
        });
        let i = self.ifs.len() - 1;
        self.set_polling(i, cfg.mode == Mode::Polling);
        self.ifs[i]
            .nic
            .set_intr_enabled(cfg.mode == Mode::Interrupt);
        i
    }

    /// `dev.<if>.polling`: register with kern_poll and mask the NIC's
    /// interrupts, or deregister and unmask, as `ifconfig polling` does.
    pub fn set_polling(&mut self, i: usize, on: bool) {
        let ifn = &mut self.ifs[i];
        if ifn.polling == on {
            return;
        }
        if on {
            if self.poll.register().is_err() {
                return;
            }
            ifn.nic.set_intr_enabled(false);
            self.poll_list.push(i);
        } else {
            if let Some(pos) = self.poll_list.iter().position(|&x| x == i) {
                // As ether_poll_deregister: the last entry takes the slot.
                let _ = self.poll.deregister(pos);
                self.poll_list.swap_remove(pos);
            }
            ifn.nic.set_intr_enabled(true);
        }
        ifn.polling = on;
    }

    /// The clock interrupt for one tick: [`Kernel::hardclock_cnt`] with 1.
    pub fn hardclock(&mut self, now: Nanos) {
        self.hardclock_cnt(now, 1);
    }

    /// The clock interrupt, standing for `cnt` ticks (FreeBSD's
    /// `hardclock(cnt, usermode)`, formerly `hardclock_cnt`): `ticks`
    /// advances by `cnt`, `hardclock_device_poll` runs once, and the
    /// protocol timers (softclock) need an egress pass.
    ///
    /// When the timer is delivered late (the host was busy, or woke this
    /// process late from idle), several expirations are read at once; as in
    /// FreeBSD, they are one interrupt, not `cnt` interrupts back to back,
    /// which would count a lost poll per extra tick and cut `burst` although
    /// the kernel never overran a tick.
    pub fn hardclock_cnt(&mut self, now: Nanos, cnt: u64) {
        self.sched.ticks += cnt;
        self.poll.hardclock(now);
        self.egress_pending = true;
    }

    /// The ISR of interface `i`: move up to `rx_ring` frames to `ipintrq`,
    /// dropping (and counting) what does not fit. Returns the frames taken
    /// from the ring. Bound: `rx_ring` frames.
    pub fn isr(&mut self, i: usize) -> usize {
        let ipintrq = &mut self.ipintrq;
        let ifn = &mut self.ifs[i];
        ifn.counters.interrupts += 1;
        // The scheduler switched to intr at the interrupt's time.
        ifn.nic.set_now(self.cpu.last_switch().0);
        let drops = &mut ifn.counters.ipintrq_drops;
        ifn.nic.rx(ifn.rx_ring, &mut |frame| {
            if !ipintrq.enqueue(i, frame) {
                *drops += 1;
            }
        })
    }

    /// Whether any interface's interrupt line is unmasked.
    pub fn any_intr_enabled(&self) -> bool {
        self.ifs.iter().any(|f| f.nic.intr_enabled())
    }

    /// Whether the netisr has work.
    pub fn netisr_pending(&self) -> bool {
        self.poll.is_scheduled() || !self.ipintrq.is_empty() || self.egress_pending
    }

    /// One unit of netisr work, highest first: a polling chunk (the caller
    /// then runs [`Kernel::netisr_pollmore`] at the time the chunk ended),
    /// one `ipintrq` frame, or an egress pass. Returns what it did.
    pub fn netisr_step(&mut self, now: Nanos) -> NetisrWork {
        self.sched.netisr_runs += 1;
        self.reactor.note_activity();
        self.set_nic_time(now);
        let mut work = NetisrWork::default();
        if self.poll.is_scheduled() {
            let checks = |k: &Kernel| k.ifs.iter().map(|f| f.counters.status_checks).sum::<u64>();
            let before = checks(self);
            work.polled = self.netisr_poll(now);
            work.status_checks = u32::try_from(checks(self) - before).unwrap_or(u32::MAX);
            if self.egress_pending {
                self.egress(now);
            }
        } else if !self.ipintrq.is_empty() {
            let (ifs, netisr) = (&mut self.ifs, &mut self.netisr);
            self.ipintrq.dequeue_with(|i, frame| {
                netisr.ingress(i, now, frame);
                netisr.flush(i, ifs[i].nic.as_mut());
            });
            work.dispatched = 1;
        } else if self.egress_pending {
            self.egress(now);
        }
        work
    }

    /// `netisr_pollmore`, at `now` = when the netisr work before it ended.
    /// The scheduler calls it after every [`Kernel::netisr_step`] (a no-op
    /// unless a polling chunk ran): as in FreeBSD, where `netisr_pollmore`
    /// reads the clock itself, the tick's kernel load must include its last
    /// chunk, so the caller passes the time after that chunk, not before.
    pub fn netisr_pollmore(&mut self, now: Nanos) {
        self.poll.netisr_pollmore(now);
    }

    fn egress(&mut self, now: Nanos) {
        self.egress_pending = false;
        for (i, ifn) in self.ifs.iter_mut().enumerate() {
            self.netisr.egress(i, ifn.nic.as_mut(), now);
            self.netisr.flush(i, ifn.nic.as_mut());
        }
    }

    /// `netisr_poll`: every registered handler gets the same chunk. A
    /// handler takes frames straight into the stack (direct dispatch, as
    /// FreeBSD does since 5.x), so polling never touches `ipintrq`.
    /// Returns the frames taken.
    fn netisr_poll(&mut self, now: Nanos) -> u32 {
        let (ifs, netisr, list) = (&mut self.ifs, &mut self.netisr, &self.poll_list);
        self.poll.netisr_poll(now, |h, cmd, count| {
            poll_handler(ifs, list[h], netisr, now, cmd, count)
        })
    }

    /// `ether_poll` from the idle loop (`kern.polling.idle_poll`). Returns
    /// the frames taken.
    pub fn idle_poll(&mut self, now: Nanos) -> u32 {
        self.sched.idle_polls += 1;
        self.set_nic_time(now);
        let count = self.poll.each_burst();
        let (ifs, netisr, list) = (&mut self.ifs, &mut self.netisr, &self.poll_list);
        self.poll.ether_poll(count, |h, cmd, count| {
            poll_handler(ifs, list[h], netisr, now, cmd, count)
        })
    }

    /// Tell every NIC the kernel's time (for a capture's timestamps).
    fn set_nic_time(&mut self, now: Nanos) {
        for ifn in &mut self.ifs {
            ifn.nic.set_now(now.0);
        }
    }

    /// Whether a user process has work at `now`.
    pub fn user_runnable(&self, now: Nanos) -> bool {
        self.burn_left > Nanos::ZERO
            || !self.runq.is_empty()
            || self.reactor.has_events()
            || self
                .apps
                .interactive
                .as_ref()
                .is_some_and(|a| a.runnable(now))
    }

    /// Whether user work is half done (a burn in progress).
    pub fn user_mid_work(&self) -> bool {
        self.burn_left > Nanos::ZERO
            || self
                .apps
                .interactive
                .as_ref()
                .is_some_and(|a| a.mid_slice())
    }

    /// When a user process that sleeps now next wants the CPU (the
    /// interactive process's next slice), for an idle CPU to wake.
    pub fn user_next_due(&self) -> Option<Nanos> {
        self.apps.interactive.as_ref().and_then(|a| a.next_due())
    }

    /// One unit of user work: a slice of the interactive process when it
    /// is due (it goes first among user processes), else a slice of CPU
    /// burn, or one app step.
    pub fn user_step(&mut self, now: Nanos, clock: &mut dyn Clock) {
        self.sched.user_steps += 1;
        if let Some(a) = self.apps.interactive.as_mut().filter(|a| a.runnable(now)) {
            clock.burn(a.step(now, USER_SLICE));
            return;
        }
        if self.burn_left > Nanos::ZERO {
            let slice = Nanos(self.burn_left.0.min(USER_SLICE.0));
            clock.burn(slice);
            self.burn_left = Nanos(self.burn_left.0 - slice.0);
            return;
        }
        if self.runq.is_empty() {
            self.reactor
                .poll(&mut self.netisr.sockets, &mut self.events, EVENT_BATCH);
            self.runq.extend(self.events.iter().map(|e| e.token));
        }
        let Some(token) = self.runq.pop_front() else {
            return;
        };
        let mut cx = UserCx {
            sockets: &mut self.netisr.sockets,
            reactor: &mut self.reactor,
            wrote: false,
            now,
        };
        let step = self.apps.step(&mut cx, token);
        if cx.wrote {
            self.egress_pending = true;
        }
        if step.more {
            self.runq.push_front(token);
        }
        self.burn_left = step.work;
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

/// The poll handler of interface `i` (a driver's `*_poll`): status check
/// if asked, then up to `count` frames straight into its stack.
fn poll_handler(
    ifs: &mut [IfNet],
    i: usize,
    netisr: &mut Netisr,
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
    let taken = ifn
        .nic
        .rx(count as usize, &mut |frame| netisr.ingress(i, now, frame));
    netisr.flush(i, ifn.nic.as_mut());
    u32::try_from(taken).unwrap_or(u32::MAX)
}
