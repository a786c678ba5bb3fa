//! The fair class of the one CPU: the user process and the kernel threads
//! that compete with it as ordinary tasks (Linux's ksoftirqd and threaded
//! NAPI run as `SCHED_OTHER`, nice 0).
//!
//! Mirrors the core rule of Linux's CFS (`kernel/sched/fair.c`): every
//! task accrues virtual runtime while it runs (all at nice 0, so at wall
//! rate); the runnable task with the least runs next; a task that wakes is
//! placed no further back than `min_vruntime - sysctl_sched_latency / 2`
//! (`place_entity` with `GENTLE_FAIR_SLEEPERS`); the running task keeps
//! the CPU until another's virtual runtime is behind it by more than
//! `sysctl_sched_wakeup_granularity` (`check_preempt_wakeup`,
//! `wakeup_preempt_entity`).
//!
//! Differs, and why: the decision is taken at unit boundaries (a frame, a
//! poll, a 5 µs slice of user work), not at ticks and wake-ups; the time
//! between two decisions is charged to the task picked at the first,
//! interrupts and inline softirqs included, as Linux does without
//! `IRQ_TIME_ACCOUNTING`. With only the user process runnable (4.4BSD and
//! FreeBSD disciplines) the class always picks it: no behaviour changes.

use super::discipline::{Runnable, Thread};
use super::time::Nanos;

/// `sysctl_sched_latency`: 6 ms (for one CPU).
pub const SCHED_LATENCY: Nanos = Nanos::from_millis(6);
/// `sysctl_sched_wakeup_granularity`: 1 ms (for one CPU).
pub const WAKEUP_GRANULARITY: Nanos = Nanos::from_millis(1);

/// A task of the fair class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// The user process (every app, as one process).
    User,
    /// A kernel thread.
    Thread(Thread),
}

#[derive(Clone, Copy, Debug)]
struct Entity {
    task: Task,
    vruntime: u64,
    runnable: bool,
}

/// The state of the fair class.
#[derive(Clone, Debug, Default)]
pub struct Fair {
    entities: Vec<Entity>,
    curr: Option<Task>,
    since: Nanos,
    min_vruntime: u64,
    /// Switches from one task to another.
    pub switches: u64,
}

impl Fair {
    fn slot(&mut self, task: Task) -> usize {
        if let Some(i) = self.entities.iter().position(|e| e.task == task) {
            return i;
        }
        self.entities.push(Entity {
            task,
            vruntime: self.min_vruntime,
            runnable: false,
        });
        self.entities.len() - 1
    }

    /// Charge the time since the last decision to the task then chosen.
    fn charge(&mut self, now: Nanos) {
        if let Some(t) = self.curr {
            let i = self.slot(t);
            self.entities[i].vruntime += now.since(self.since).0;
        }
        self.since = now;
    }

    /// Record which tasks are runnable now (`user` and `threads`), placing
    /// those that just woke. O(tasks).
    fn update(&mut self, now: Nanos, user: bool, threads: &[Runnable]) {
        self.charge(now);
        for e in &mut self.entities {
            e.runnable = false;
        }
        let wake_floor = self.min_vruntime.saturating_sub(SCHED_LATENCY.0 / 2);
        let mark = |fair: &mut Fair, task: Task| {
            let i = fair.slot(task);
            let e = &mut fair.entities[i];
            if !e.runnable && Some(task) != fair.curr {
                e.vruntime = e.vruntime.max(wake_floor);
            }
            e.runnable = true;
        };
        if user {
            mark(self, Task::User);
        }
        for r in threads {
            mark(self, Task::Thread(r.thread));
        }
        if let Some(min) = self
            .entities
            .iter()
            .filter(|e| e.runnable)
            .map(|e| e.vruntime)
            .min()
        {
            self.min_vruntime = self.min_vruntime.max(min);
        }
    }

    /// The task with the least virtual runtime among the runnable ones.
    fn leftmost(&self) -> Option<Entity> {
        self.entities
            .iter()
            .filter(|e| e.runnable)
            .min_by_key(|e| e.vruntime)
            .copied()
    }

    /// Whether the running task should give way (`need_resched()`): another
    /// is runnable and behind it by more than the wake-up granularity.
    pub fn need_resched(&self) -> bool {
        let Some(curr) = self.curr else {
            return false;
        };
        let Some(c) = self.entities.iter().find(|e| e.task == curr) else {
            return false;
        };
        self.leftmost()
            .is_some_and(|l| l.task != curr && l.vruntime + WAKEUP_GRANULARITY.0 < c.vruntime)
    }

    /// The task to run at `now`, given which are runnable; `None` if none
    /// is. A thread in an atomic section keeps the CPU. O(tasks).
    pub fn pick(&mut self, now: Nanos, user: bool, threads: &[Runnable]) -> Option<Task> {
        self.update(now, user, threads);
        let atomic = threads
            .iter()
            .find(|r| r.atomic)
            .map(|r| Task::Thread(r.thread));
        let curr_runnable = self
            .curr
            .is_some_and(|c| self.entities.iter().any(|e| e.task == c && e.runnable));
        let next = if atomic.is_some() {
            atomic
        } else if curr_runnable && !self.need_resched() {
            self.curr
        } else {
            self.leftmost().map(|e| e.task)
        };
        if next.is_some() && next != self.curr && self.curr.is_some() {
            self.switches += 1;
        }
        if next.is_some() {
            self.curr = next;
        }
        next
    }

    /// The task on the CPU (or last on it before the CPU went idle).
    pub fn current(&self) -> Option<Task> {
        self.curr
    }

    /// Virtual runtime of `task`, ns (0 if it never ran).
    pub fn vruntime(&self, task: Task) -> u64 {
        self.entities
            .iter()
            .find(|e| e.task == task)
            .map_or(0, |e| e.vruntime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Runnable = Runnable {
        thread: Thread::Ksoftirqd,
        atomic: false,
    };

    #[test]
    fn alone_the_user_always_runs() {
        let mut f = Fair::default();
        for n in 0..100 {
            assert_eq!(
                f.pick(Nanos::from_micros(n * 5), true, &[]),
                Some(Task::User)
            );
        }
        assert_eq!(f.pick(Nanos::from_millis(1), false, &[]), None);
        assert_eq!(f.switches, 0);
    }

    #[test]
    fn two_busy_tasks_share_the_cpu_in_granularity_slices() {
        let mut f = Fair::default();
        let (mut user, mut kthread) = (0u64, 0u64);
        let step = Nanos::from_micros(10);
        let mut now = Nanos::from_secs(1);
        for _ in 0..100_000 {
            match f.pick(now, true, &[K]) {
                Some(Task::User) => user += step.0,
                Some(Task::Thread(_)) => kthread += step.0,
                None => unreachable!(),
            }
            now += step;
        }
        let share = user as f64 / (user + kthread) as f64;
        assert!((0.48..=0.52).contains(&share), "user share {share}");
        // Slices of about the granularity: 1 s / 1 ms, not one per step.
        assert!(
            (400..=1100).contains(&f.switches),
            "switches {}",
            f.switches
        );
    }

    #[test]
    fn an_atomic_thread_keeps_the_cpu() {
        let mut f = Fair::default();
        let atomic = Runnable { atomic: true, ..K };
        let mut now = Nanos::from_secs(1);
        for _ in 0..1000 {
            assert_eq!(
                f.pick(now, true, &[atomic]),
                Some(Task::Thread(Thread::Ksoftirqd))
            );
            now += Nanos::from_micros(10);
        }
        assert_eq!(f.pick(now, true, &[K]), Some(Task::User));
    }

    #[test]
    fn a_waking_task_gets_at_most_half_a_latency_of_credit() {
        let mut f = Fair::default();
        let mut now = Nanos::from_secs(1);
        for _ in 0..1000 {
            f.pick(now, true, &[]);
            now += Nanos::from_micros(100);
        }
        f.pick(now, true, &[K]);
        let lag = f.vruntime(Task::User) - f.vruntime(Task::Thread(Thread::Ksoftirqd));
        assert!(lag <= SCHED_LATENCY.0 / 2 + 100_000, "lag {lag}");
    }
}
