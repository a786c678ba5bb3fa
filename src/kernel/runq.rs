//! The user level of the one CPU as a time-sharing scheduler: every app is
//! a process of its own, and the processes share the user CPU by round
//! robin with a quantum (`kern.sched.quantum`).
//!
//! Mirrors FreeBSD's `sched_4bsd.c` (4.4BSD's scheduler):
//!
//! - **Quantum.** A process keeps the CPU until it blocks or has been on it
//!   for `kern.sched.quantum` since it was switched in (`sched_clock`:
//!   `ticks - switchticks >= sched_quantum`, wall time, interrupts and
//!   kernel work included); then it goes to the tail of its priority's
//!   queue and the head of the best queue runs (round robin among equals).
//!   The default is 4BSD's `SCHED_QUANTUM` (`hz / 10` ticks), which
//!   `kern.sched.quantum` reads as 100000 µs at any `kern.hz` (ULE's
//!   default slice is close: `realstathz / 10`, 12 ticks of 127 Hz, ~94 ms).
//! - **Blocking and waking.** A process with nothing to do gives up the
//!   rest of its quantum. When it has work again it wakes at its sleep
//!   priority, a kernel priority better than any user priority (4.4BSD's
//!   `tsleep(..., PSOCK, ...)`; the priority a thread sleeps at in
//!   FreeBSD's sleep queues): it joins the run queue behind the other
//!   woken processes and ahead of every process at a user priority, and
//!   the process on the CPU is switched out at the next unit boundary
//!   (`maybe_resched`: `TDF_NEEDRESCHED`), to the tail of its priority's
//!   queue. Once switched in, the woken process is back at its user
//!   priority (`userret`).
//! - **Priority.** `td_estcpu` grows with the CPU a process uses (one per
//!   `stathz` tick on the CPU, here measured: one per 1/128 s of CPU), up
//!   to `ESTCPULIM` (295); once a second every process's is decayed by
//!   `2·load / (2·load + 1)` (`schedcpu`); the user priority is
//!   `estcpu / INVERSE_ESTCPU_WEIGHT` (8), all at nice 0. It orders the
//!   processes whose quantum ran out: one that used less CPU lately goes
//!   first, and round robin runs among processes of one priority.
//!
//! So a process that sleeps and wakes (the interactive process, the http
//! app serving the probe) gets the CPU soon after it has work, and one that
//! never sleeps (udp-sink under flood) gets what the others leave of the
//! user share, in quanta.
//!
//! Differs, and why: CPU time is measured, not sampled at `stathz` (as
//! `kern.cp_time` is); decisions are taken at unit boundaries (a 5 µs
//! slice, an app step), not at arbitrary instructions; the load in the
//! decay is the number of runnable user processes at that second, not the
//! load average; one queue per priority, not four priorities per queue
//! (`RQ_PPQ`). With a single process nothing changes: it always runs.

use std::collections::VecDeque;

use pollsim_sysctl::Mib;

use super::host::Hist;
use super::time::Nanos;
use crate::sat;

/// `SCHED_QUANTUM`: `hz / 10` ticks, 100 ms.
pub const QUANTUM_DEFAULT: Nanos = Nanos::from_millis(100);
/// Bounds of `kern.sched.quantum`, µs (1 µs .. 10 s).
pub const QUANTUM_US_RANGE: (u64, u64) = (1, 10_000_000);
/// CPU time of one `estcpu` unit: a `stathz` tick at 128 Hz.
pub const ESTCPU_NS: u64 = 1_000_000_000 / 128;
/// `INVERSE_ESTCPU_WEIGHT`: `estcpu` units per priority.
pub const INVERSE_ESTCPU_WEIGHT: u64 = 8;
/// `ESTCPULIM`: `8 * (1 * 40 - 4) + 8 - 1` units.
pub const ESTCPU_MAX: u64 = 295;
/// How often every process's `estcpu` decays (`schedcpu`).
pub const DECAY_EVERY: Nanos = Nanos::from_secs(1);

/// A process's index in the run queue.
pub type Pid = usize;

/// Where a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Blocked: nothing to do.
    Sleeping,
    /// On the run queue since then.
    Queued(Nanos),
    /// On the CPU.
    Running,
}

/// What a process's scheduling was. Each doc line is the sysctl description.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// CPU time the process used, in ns
    pub cpu_ns: u64,
    /// Times the process was switched in
    pub runs: u64,
    /// Waits on the run queue (from becoming runnable to being switched in)
    pub waits: u64,
    /// Time spent waiting on the run queue, in ns
    pub wait_ns: u64,
    /// Waits by length (log buckets, as kern.sched.hist_us)
    pub wait_hist: Hist,
    /// Longest wait, ns
    pub wait_max_ns: u64,
    /// Quanta that ran out while the process was on the CPU
    pub expiries: u64,
    /// Times a waking process of better priority switched it out
    pub preempted: u64,
    /// CPU time spent in the reactor on its behalf (polls, registrations, re-arms), in ns
    pub reactor_ns: u64,
}

impl ProcStats {
    /// Add `o`'s account to this one (the longest wait is the longer).
    pub fn add(&mut self, o: &ProcStats) {
        // Destructured: a field added to the account must be added here.
        let ProcStats {
            cpu_ns,
            runs,
            waits,
            wait_ns,
            wait_hist,
            wait_max_ns,
            expiries,
            preempted,
            reactor_ns,
        } = o;
        self.cpu_ns += cpu_ns;
        self.runs += runs;
        self.waits += waits;
        self.wait_ns += wait_ns;
        let sum: Vec<u64> = (self.wait_hist.counts().iter())
            .zip(wait_hist.counts())
            .map(|(a, b)| a + b)
            .collect();
        self.wait_hist = Hist::from_counts(&sum);
        self.wait_max_ns = self.wait_max_ns.max(*wait_max_ns);
        self.expiries += expiries;
        self.preempted += preempted;
        self.reactor_ns += reactor_ns;
    }
}

#[derive(Clone, Debug)]
struct Proc {
    name: &'static str,
    /// Made by [`RunQueue::spawn`] or [`RunQueue::add`] and not exited.
    alive: bool,
    state: State,
    /// CPU used, ns, decayed (`td_estcpu` times [`ESTCPU_NS`]).
    estcpu_ns: u64,
    /// Woken and not switched in since: at the sleep priority.
    woken: bool,
    stats: ProcStats,
}

impl Proc {
    /// A new process `name`, sleeping, with no history.
    fn new(name: &'static str) -> Proc {
        Proc {
            name,
            alive: true,
            state: State::Sleeping,
            estcpu_ns: 0,
            woken: false,
            stats: ProcStats::default(),
        }
    }

    /// 0 at the sleep priority, else 1 + the user priority.
    fn priority(&self) -> u64 {
        if self.woken {
            return 0;
        }
        1 + (self.estcpu_ns / ESTCPU_NS).min(ESTCPU_MAX) / INVERSE_ESTCPU_WEIGHT
    }
}

/// The run queue of the user processes.
#[derive(Clone, Debug)]
pub struct RunQueue {
    procs: Vec<Proc>,
    /// Queued processes, best priority first, FIFO within a priority.
    queue: VecDeque<Pid>,
    curr: Option<Pid>,
    switched_in: Nanos,
    need_resched: bool,
    next_decay: Option<Nanos>,
    /// Slots of exited processes, for [`RunQueue::spawn`] to reuse.
    free: Vec<Pid>,
    /// The accounts of exited processes, summed by name.
    exited: Vec<(&'static str, ProcStats)>,
    /// `kern.sched.quantum`.
    pub quantum: Nanos,
    /// Switches from one process to another.
    pub switches: u64,
}

impl Default for RunQueue {
    fn default() -> Self {
        RunQueue::new()
    }
}

impl RunQueue {
    /// No process yet, the default quantum.
    pub fn new() -> RunQueue {
        RunQueue {
            procs: Vec::new(),
            queue: VecDeque::new(),
            curr: None,
            switched_in: Nanos::ZERO,
            need_resched: false,
            next_decay: None,
            free: Vec::new(),
            exited: Vec::new(),
            quantum: QUANTUM_DEFAULT,
            switches: 0,
        }
    }

    /// Add a process, sleeping. Returns its pid.
    pub fn add(&mut self, name: &'static str) -> Pid {
        self.procs.push(Proc::new(name));
        self.procs.len() - 1
    }

    /// Create a process at run time (`fork`/`thr_new`), sleeping, in the
    /// slot of an exited one if there is one (pids are reused, as Unix
    /// reuses them). Returns its pid. O(1).
    pub fn spawn(&mut self, name: &'static str) -> Pid {
        let Some(pid) = self.free.pop() else {
            return self.add(name);
        };
        self.procs[pid] = Proc::new(name);
        pid
    }

    /// `pid` exits: it leaves the CPU and the queue, its account is added
    /// to its name's total of exited processes, and its slot is freed.
    /// O(queued processes).
    pub fn exit(&mut self, pid: Pid) {
        let p = &mut self.procs[pid];
        if !p.alive {
            return;
        }
        p.alive = false;
        p.state = State::Sleeping;
        let (name, stats) = (p.name, std::mem::take(&mut p.stats));
        if self.curr == Some(pid) {
            self.curr = None;
        }
        self.queue.retain(|&q| q != pid);
        match self.exited.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => total.add(&stats),
            None => self.exited.push((name, stats)),
        }
        self.free.push(pid);
    }

    /// Live processes named `name`. O(processes).
    pub fn live(&self, name: &str) -> usize {
        self.procs
            .iter()
            .filter(|p| p.alive && p.name == name)
            .count()
    }

    /// Whether `pid` is a live process.
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.procs.get(pid).is_some_and(|p| p.alive)
    }

    /// The account of every process named `name`, live and exited,
    /// together (the one process's own for an app). O(processes).
    pub fn named_stats(&self, name: &str) -> ProcStats {
        let mut total = ProcStats::default();
        for (_, s) in self.exited.iter().filter(|(n, _)| *n == name) {
            total.add(s);
        }
        for p in self.procs.iter().filter(|p| p.alive && p.name == name) {
            total.add(&p.stats);
        }
        total
    }

    /// Process slots, in pid order (exited ones included).
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether there is no process.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The name of `pid`.
    pub fn name(&self, pid: Pid) -> &'static str {
        self.procs[pid].name
    }

    /// The pid of the process named `name`.
    pub fn pid(&self, name: &str) -> Option<Pid> {
        self.procs.iter().position(|p| p.name == name)
    }

    /// The scheduling account of `pid`.
    pub fn stats(&self, pid: Pid) -> &ProcStats {
        &self.procs[pid].stats
    }

    /// CPU time of every process together, exited ones included, ns.
    pub fn total_cpu_ns(&self) -> u64 {
        let live: u64 = self.procs.iter().map(|p| p.stats.cpu_ns).sum();
        live + self.exited.iter().map(|(_, s)| s.cpu_ns).sum::<u64>()
    }

    /// The priority of `pid`: 0 while woken and not yet switched in (the
    /// sleep priority), else 1 + its user priority (`estcpu / 8`).
    pub fn priority(&self, pid: Pid) -> u64 {
        self.procs[pid].priority()
    }

    /// The process on the CPU, if any.
    pub fn current(&self) -> Option<Pid> {
        self.curr
    }

    /// Whether `pid` is on the run queue (not on the CPU).
    pub fn is_queued(&self, pid: Pid) -> bool {
        matches!(self.procs[pid].state, State::Queued(_))
    }

    /// Whether `pid` sleeps.
    pub fn is_sleeping(&self, pid: Pid) -> bool {
        self.procs[pid].state == State::Sleeping
    }

    /// `pid` has become runnable at `at` (`setrunnable`): at its sleep
    /// priority it joins the queue behind the other woken processes, and
    /// the running process is to give way. No-op if it is queued or
    /// running.
    pub fn wake(&mut self, pid: Pid, at: Nanos) {
        if self.procs[pid].state != State::Sleeping {
            return;
        }
        self.procs[pid].woken = true;
        self.enqueue(pid, at);
        if let Some(c) = self.curr
            && self.procs[pid].priority() < self.procs[c].priority()
        {
            self.need_resched = true;
        }
    }

    fn enqueue(&mut self, pid: Pid, at: Nanos) {
        self.procs[pid].state = State::Queued(at);
        let prio = self.procs[pid].priority();
        let at = self
            .queue
            .iter()
            .position(|&q| self.procs[q].priority() > prio)
            .unwrap_or(self.queue.len());
        self.queue.insert(at, pid);
    }

    /// Count `used` of `pid`'s CPU (charged with [`RunQueue::charge`]) as
    /// spent in the reactor.
    pub fn note_reactor(&mut self, pid: Pid, used: Nanos) {
        self.procs[pid].stats.reactor_ns += used.0;
    }

    /// Charge `used` of CPU to `pid`.
    pub fn charge(&mut self, pid: Pid, used: Nanos) {
        let p = &mut self.procs[pid];
        p.stats.cpu_ns += used.0;
        p.estcpu_ns = (p.estcpu_ns + used.0).min((ESTCPU_MAX + 1) * ESTCPU_NS - 1);
    }

    /// Once a [`DECAY_EVERY`]: decay every process's `estcpu` by the load
    /// (`schedcpu`) and re-sort the queue by the new priorities.
    fn decay(&mut self, now: Nanos) {
        let due = *self.next_decay.get_or_insert(now + DECAY_EVERY);
        if now < due {
            return;
        }
        let periods = now.since(due).0 / DECAY_EVERY.0 + 1;
        self.next_decay = Some(Nanos(due.0 + periods * DECAY_EVERY.0));
        let load = (self.queue.len() + usize::from(self.curr.is_some())) as u64;
        let loadfac = 2 * load;
        for p in &mut self.procs {
            for _ in 0..periods.min(64) {
                p.estcpu_ns = p.estcpu_ns * loadfac / (loadfac + 1);
            }
        }
        let procs = &self.procs;
        self.queue
            .make_contiguous()
            .sort_by_key(|&q| procs[q].priority());
    }

    /// The process to run at `now`, `runnable` saying which have work: the
    /// running one unless it blocked, its quantum ran out with another of
    /// no worse priority waiting, or a better one woke; else the head of
    /// the queue. Processes found on the queue with nothing to do go back
    /// to sleep. O(processes).
    pub fn pick(&mut self, now: Nanos, runnable: &dyn Fn(Pid) -> bool) -> Option<Pid> {
        self.decay(now);
        if let Some(c) = self.curr {
            if !runnable(c) {
                self.procs[c].state = State::Sleeping;
                self.curr = None;
            } else if self.need_resched && self.best_waiting(runnable) < self.procs[c].priority() {
                self.procs[c].stats.preempted += 1;
                self.curr = None;
                self.enqueue(c, now);
            } else if now.since(self.switched_in) >= self.quantum {
                self.procs[c].stats.expiries += 1;
                if self.best_waiting(runnable) <= self.procs[c].priority() {
                    self.curr = None;
                    self.enqueue(c, now);
                } else {
                    self.switched_in = now;
                }
            }
        }
        self.need_resched = false;
        if self.curr.is_none() {
            self.switch_in(now, runnable);
        }
        self.curr
    }

    /// The best priority among queued processes that have work (dropping
    /// those that have none back to sleep); `u64::MAX` if none.
    fn best_waiting(&mut self, runnable: &dyn Fn(Pid) -> bool) -> u64 {
        while let Some(&h) = self.queue.front() {
            if runnable(h) {
                return self.procs[h].priority();
            }
            self.queue.pop_front();
            self.procs[h].state = State::Sleeping;
        }
        u64::MAX
    }

    fn switch_in(&mut self, now: Nanos, runnable: &dyn Fn(Pid) -> bool) {
        if self.best_waiting(runnable) == u64::MAX {
            return;
        }
        let Some(pid) = self.queue.pop_front() else {
            return;
        };
        let p = &mut self.procs[pid];
        if let State::Queued(since) = p.state {
            let wait = now.since(since);
            p.stats.waits += 1;
            p.stats.wait_ns += wait.0;
            p.stats.wait_hist.record(wait);
            p.stats.wait_max_ns = p.stats.wait_max_ns.max(wait.0);
        }
        p.state = State::Running;
        p.woken = false;
        p.stats.runs += 1;
        self.switches += 1;
        self.curr = Some(pid);
        self.switched_in = now;
    }
}

/// The nodes of one process's account, under `user.<name>.`: (leaf,
/// description, value). Shared with the `-w` columns and compare's
/// results, which read them back by these leaves.
type ProcNode = (&'static str, &'static str, fn(&ProcStats) -> u64);

/// Every integer node of a process's account.
pub const PROC_NODES: [ProcNode; 10] = [
    ("cpu_ns", "CPU time the process used, in ns", |s| s.cpu_ns),
    (
        "reactor_ns",
        "CPU time spent in the reactor on its behalf (polls, registrations, re-arms), in ns",
        |s| s.reactor_ns,
    ),
    ("runs", "Times the process was switched in", |s| s.runs),
    (
        "waits",
        "Waits on the run queue (runnable to switched in)",
        |s| s.waits,
    ),
    (
        "wait_ns",
        "Time spent waiting on the run queue, in ns",
        |s| s.wait_ns,
    ),
    ("wait_mean_us", "Mean wait on the run queue, us", |s| {
        s.wait_ns.checked_div(s.waits).unwrap_or(0) / 1_000
    }),
    (
        "wait_p99_us",
        "99th percentile of a wait on the run queue, us (to within 19 %)",
        |s| s.wait_hist.quantile(0.99).unwrap_or(0) / 1_000,
    ),
    ("wait_max_us", "Longest wait on the run queue, us", |s| {
        s.wait_max_ns / 1_000
    }),
    (
        "expiries",
        "Quanta that ran out while the process was on the CPU",
        |s| s.expiries,
    ),
    (
        "preempted",
        "Times a waking process switched it out before its quantum ended",
        |s| s.preempted,
    ),
];

/// Register `kern.sched.quantum`, `kern.sched.user_switches` and every
/// process's account under `user.<name>.` (`share_pct` and `wait_hist`
/// besides [`PROC_NODES`]).
pub fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    rq: &RunQueue,
    get: fn(&C) -> &RunQueue,
    get_mut: fn(&mut C) -> &mut RunQueue,
) {
    let (lo, hi) = (sat(QUANTUM_US_RANGE.0), sat(QUANTUM_US_RANGE.1));
    mib.add_rw(
        "kern.sched.quantum",
        "Roundrobin scheduling quantum in microseconds",
        (lo, hi),
        move |_| (lo, hi),
        move |c| sat(get(c).quantum.0 / 1_000),
        move |c, v| {
            get_mut(c).quantum = Nanos::from_micros(v.unsigned_abs());
            Ok(())
        },
    );
    mib.add_ro(
        "kern.sched.user_switches",
        "Switches from one user process to another",
        move |c| sat(get(c).switches),
    );
    // One set of nodes per name: a process made at run time (a
    // connection's thread of tcp-echo) counts in its app's totals.
    let mut names: Vec<&'static str> = Vec::new();
    for pid in (0..rq.len()).filter(|&p| rq.is_alive(p)) {
        let name = rq.name(pid);
        if names.contains(&name) {
            continue;
        }
        names.push(name);
        for (leaf, descr, value) in PROC_NODES {
            mib.add_ro(&format!("user.{name}.{leaf}"), descr, move |c| {
                sat(value(&get(c).named_stats(name)))
            });
        }
        mib.add_ro(
            &format!("user.{name}.share_pct"),
            "Percent of the user processes' CPU time this one used",
            move |c| {
                let rq = get(c);
                let total = rq.total_cpu_ns();
                let mine = rq.named_stats(name).cpu_ns;
                sat((mine * 100 + total / 2).checked_div(total).unwrap_or(0))
            },
        );
        mib.add_ro_list(
            &format!("user.{name}.wait_hist"),
            "Waits on the run queue by length: log buckets (as kern.sched.hist_us)",
            move |c| get(c).named_stats(name).wait_hist.counts().to_vec(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Nanos = Nanos::from_micros(1);

    /// Run busy processes `busy` for `steps` steps of `step`, charging each
    /// step; returns the pids in the order they ran (one entry per step).
    fn run(
        rq: &mut RunQueue,
        now: &mut Nanos,
        step: Nanos,
        steps: usize,
        busy: &[Pid],
    ) -> Vec<Pid> {
        let mut order = Vec::new();
        for _ in 0..steps {
            let Some(p) = rq.pick(*now, &|p| busy.contains(&p)) else {
                break;
            };
            rq.charge(p, step);
            *now += step;
            order.push(p);
        }
        order
    }

    fn dedup(v: &[Pid]) -> Vec<Pid> {
        let mut d: Vec<Pid> = v.to_vec();
        d.dedup();
        d
    }

    #[test]
    fn equal_processes_take_turns_a_quantum_each_in_order() {
        let mut rq = RunQueue::new();
        rq.quantum = Nanos(100 * US.0);
        let pids: Vec<Pid> = ["a", "b", "c"].iter().map(|n| rq.add(n)).collect();
        let mut now = Nanos::from_secs(1);
        for &p in &pids {
            rq.wake(p, now);
        }
        // 10 µs steps, 100 µs quanta: 10 steps each, in wake order, round
        // and round (well within a second: no decay, no priority change).
        let order = run(&mut rq, &mut now, Nanos(10 * US.0), 90, &pids);
        assert_eq!(dedup(&order), vec![0, 1, 2, 0, 1, 2, 0, 1, 2]);
        assert!(order.chunks(10).all(|c| c.iter().all(|&p| p == c[0])));
        for (&p, expiries) in pids.iter().zip([3, 3, 2]) {
            let s = rq.stats(p);
            assert_eq!(s.cpu_ns, 300 * US.0);
            // c's third quantum ends as the run does: not yet seen.
            assert_eq!((s.runs, s.waits, s.expiries), (3, 3, expiries));
        }
        // b waited a's first quantum, c a's and b's.
        assert_eq!(rq.stats(1).wait_max_ns, 200 * US.0);
        assert_eq!(rq.stats(2).wait_max_ns, 200 * US.0);
    }

    #[test]
    fn a_lone_process_keeps_the_cpu_across_quantum_expiries() {
        let mut rq = RunQueue::new();
        rq.quantum = Nanos(100 * US.0);
        let a = rq.add("a");
        let mut now = Nanos::from_secs(1);
        rq.wake(a, now);
        let order = run(&mut rq, &mut now, Nanos(10 * US.0), 1000, &[a]);
        assert_eq!(order.len(), 1000);
        let s = rq.stats(a);
        assert_eq!((s.runs, s.waits, s.wait_ns), (1, 1, 0));
        assert_eq!(s.expiries, 99);
        assert_eq!(s.cpu_ns, 10_000 * US.0);
        assert_eq!(rq.switches, 1);
    }

    #[test]
    fn a_blocking_process_gives_up_the_rest_of_its_quantum() {
        let mut rq = RunQueue::new();
        let (a, b) = (rq.add("a"), rq.add("b"));
        let mut now = Nanos::from_secs(1);
        rq.wake(a, now);
        rq.wake(b, now);
        assert_eq!(run(&mut rq, &mut now, US, 3, &[a, b]), vec![a, a, a]);
        // a has nothing more: b runs at once, long before a's quantum ends.
        assert_eq!(rq.pick(now, &|p| p == b), Some(b));
        assert!(rq.is_sleeping(a));
        assert_eq!(rq.stats(a).expiries, 0);
        assert_eq!(rq.stats(b).wait_ns, 3 * US.0);
        // Nobody has work: the CPU leaves the user level.
        assert_eq!(rq.pick(now, &|_| false), None);
        assert!(rq.is_sleeping(b));
    }

    #[test]
    fn a_waking_process_runs_next_and_the_one_it_displaced_goes_last() {
        let mut rq = RunQueue::new();
        rq.quantum = Nanos(100 * US.0);
        let (a, b, c) = (rq.add("a"), rq.add("b"), rq.add("c"));
        let mut now = Nanos::from_secs(1);
        rq.wake(a, now);
        rq.wake(b, now);
        // a's quantum, then half of b's.
        run(&mut rq, &mut now, Nanos(10 * US.0), 15, &[a, b]);
        // c wakes during b's quantum: it runs at the next decision, ahead
        // of a, which has waited longer at a user priority; b goes last.
        rq.wake(c, now);
        assert!(rq.is_queued(c));
        assert_eq!(rq.priority(c), 0);
        let order = run(&mut rq, &mut now, Nanos(10 * US.0), 25, &[a, b, c]);
        assert_eq!(dedup(&order), vec![c, a, b]);
        assert_eq!(rq.stats(b).preempted, 1);
        assert_eq!(rq.stats(c).wait_ns, 0);
        assert!(rq.priority(c) > 0, "back at its user priority once in");
        // Waking a queued or running process changes nothing.
        rq.wake(c, now);
        rq.wake(a, now);
        assert_eq!(rq.stats(c).waits, 1);
        assert_eq!(rq.stats(b).preempted, 1);
    }

    #[test]
    fn processes_at_the_sleep_priority_run_in_wake_order() {
        let mut rq = RunQueue::new();
        let (hog, x, y) = (rq.add("hog"), rq.add("x"), rq.add("y"));
        let mut now = Nanos::from_secs(1);
        rq.wake(hog, now);
        run(&mut rq, &mut now, US, 10, &[hog]);
        rq.wake(y, now);
        rq.wake(x, now + US);
        assert_eq!(run(&mut rq, &mut now, US, 3, &[x, y, hog]), vec![y, y, y]);
        assert_eq!(rq.pick(now, &|p| p != y), Some(x));
        assert_eq!(rq.pick(now, &|p| p == hog), Some(hog));
    }

    #[test]
    fn a_waking_process_of_better_priority_switches_a_cpu_hog_out() {
        let mut rq = RunQueue::new();
        let (hog, sleeper) = (rq.add("hog"), rq.add("sleeper"));
        let mut now = Nanos::from_secs(1);
        rq.wake(hog, now);
        // 90 ms of CPU: estcpu 11, user priority 1.
        run(&mut rq, &mut now, Nanos::from_millis(1), 90, &[hog]);
        assert_eq!(rq.priority(hog), 2);
        rq.wake(sleeper, now);
        assert_eq!(rq.priority(sleeper), 0);
        assert_eq!(rq.pick(now, &|_| true), Some(sleeper));
        assert_eq!(rq.stats(hog).preempted, 1);
        assert_eq!(rq.stats(sleeper).wait_ns, 0);
        // The sleeper done, the hog comes back.
        assert_eq!(rq.pick(now, &|p| p == hog), Some(hog));
    }

    #[test]
    fn estcpu_decays_once_a_second_by_the_load() {
        let mut rq = RunQueue::new();
        let a = rq.add("a");
        let mut now = Nanos::from_secs(1);
        rq.wake(a, now);
        rq.pick(now, &|_| true);
        rq.charge(a, Nanos::from_millis(900));
        // estcpu 115 -> user priority 14; one runnable process: decay 2/3.
        assert_eq!(rq.priority(a), 1 + 14);
        now += Nanos::from_secs(1);
        rq.pick(now, &|_| true);
        assert_eq!(rq.priority(a), 1 + 9);
        // Asleep (load 0): forgotten at the next decay.
        rq.pick(now, &|_| false);
        now += Nanos::from_secs(1);
        rq.pick(now, &|_| false);
        assert_eq!(rq.priority(a), 1);
    }

    #[test]
    fn after_a_quantum_the_process_that_used_less_cpu_goes_first() {
        let mut rq = RunQueue::new();
        let (hog, light) = (rq.add("hog"), rq.add("light"));
        let mut now = Nanos::from_secs(1);
        rq.wake(hog, now);
        run(&mut rq, &mut now, Nanos::from_millis(1), 300, &[hog]);
        rq.wake(light, now);
        // light preempts; its quantum runs out with the hog waiting at a
        // worse user priority (estcpu 38 vs 12: 4 vs 1): light keeps the CPU.
        run(&mut rq, &mut now, Nanos::from_millis(1), 150, &[hog, light]);
        assert_eq!(rq.current(), Some(light));
        assert_eq!(rq.stats(light).expiries, 1);
        assert_eq!(rq.stats(light).runs, 1);
    }
}
