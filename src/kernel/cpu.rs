//! CPU accounting: where the one simulated CPU spends its time, kept as
//! FreeBSD's `kern.cp_time` (user, nice, sys, intr, idle).
//!
//! FreeBSD samples the state at `stathz`; we measure instead: each switch
//! of state charges the span since the last switch to the state left, so
//! the totals add up exactly to the elapsed time.

use super::time::Nanos;

/// A CPU state, in `kern.cp_time` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuState {
    /// User processes: the apps (and the `-w` reporter, a user process too).
    User = 0,
    /// Niced user processes (unused, kept for the cp_time layout).
    Nice = 1,
    /// Kernel: netisr, protocol processing, polling.
    Sys = 2,
    /// Interrupt handlers: the NIC ISR and hardclock.
    Intr = 3,
    /// Nothing to do: blocked waiting for an event.
    Idle = 4,
}

/// Names of the states, in `kern.cp_time` order.
pub const CP_STATES: [&str; 5] = ["user", "nice", "sys", "intr", "idle"];

/// Time spent per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpTime(pub [u64; 5]);

impl CpTime {
    /// Total time accounted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The difference `self - earlier`, per state.
    pub fn delta(&self, earlier: &CpTime) -> CpTime {
        let mut d = [0; 5];
        for (i, v) in d.iter_mut().enumerate() {
            *v = self.0[i].saturating_sub(earlier.0[i]);
        }
        CpTime(d)
    }

    /// Percent of the total per state (0 if nothing was accounted).
    pub fn percent(&self) -> [f64; 5] {
        let total = self.total();
        let mut p = [0.0; 5];
        if total > 0 {
            for (i, v) in p.iter_mut().enumerate() {
                *v = self.0[i] as f64 * 100.0 / total as f64;
            }
        }
        p
    }
}

/// The running account.
#[derive(Debug, Clone)]
pub struct Cpu {
    state: CpuState,
    since: Nanos,
    time: CpTime,
}

impl Cpu {
    /// Start accounting at `now`, idle.
    pub fn new(now: Nanos) -> Cpu {
        Cpu {
            state: CpuState::Idle,
            since: now,
            time: CpTime::default(),
        }
    }

    /// Charge the time since the last switch to the current state and
    /// enter `state`. Returns the state left.
    pub fn switch(&mut self, now: Nanos, state: CpuState) -> CpuState {
        let left = self.state;
        self.time.0[left as usize] += now.since(self.since).0;
        self.since = now;
        self.state = state;
        left
    }

    /// When the state last changed: totals up to here are final.
    pub fn last_switch(&self) -> Nanos {
        self.since
    }

    /// The current state.
    pub fn state(&self) -> CpuState {
        self.state
    }

    /// Totals up to `now` (the current state's open span included).
    pub fn cp_time(&self, now: Nanos) -> CpTime {
        let mut t = self.time;
        t.0[self.state as usize] += now.since(self.since).0;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_add_up_to_elapsed_time() {
        let mut cpu = Cpu::new(Nanos(100));
        cpu.switch(Nanos(150), CpuState::Intr);
        cpu.switch(Nanos(170), CpuState::Sys);
        cpu.switch(Nanos(200), CpuState::User);
        let t = cpu.cp_time(Nanos(260));
        assert_eq!(t.0, [60, 0, 30, 20, 50]);
        assert_eq!(t.total(), 160);
        let p = t.percent();
        assert!((p[0] - 37.5).abs() < 1e-9);
    }
}
