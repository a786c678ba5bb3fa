//! tap0's receive queues over the CPUs: which CPU serves which queue
//! ([`RingMap`]), and the per-queue nodes of the MIB of the CPU that
//! serves them ([`register_sysctl`]).
//!
//! Mirrors DragonFly's ring map (`if_ringmap`, sys/net/if.c): ring `i` is
//! served by CPU `(offset + i) % ncpus`, with offset 0 (pollsim has one
//! multiqueue NIC; DragonFly moves the offset by a grid per NIC unit to
//! spread several NICs). DragonFly clamps the ring count to the CPUs
//! (`if_ringcnt_fixup`); pollsim does not, so with more queues than CPUs a
//! CPU serves several, as Linux does when several queues' interrupts are
//! steered to one CPU (`/proc/irq/N/smp_affinity`). With fewer, CPUs
//! `M..N` serve none: their tap0 has no queue (a
//! [`pollsim_drivers::QueueGroup`] of none) and receives nothing from the
//! wire, while their scheduler, `kern.cp_time`, stack and apps run.
//!
//! Per-queue nodes are `dev.<if>.queue_rx_<q>.*`, the name FreeBSD's
//! iflib drivers give each receive queue's node (`queue_rx_%d` in
//! em(4)/igc(4)'s `*_add_hw_stats`), so that `sysctl dev.tap0` lists them
//! beside the device's own counters.

use pollsim_drivers::RxQueueStats;
use pollsim_sysctl::Mib;

use crate::kernel::Kernel;
use crate::sat;

/// Most receive queues of tap0: as many as a tap (and RSS's indirection
/// table) can have.
pub const MAX_QUEUES: usize = pollsim_drivers::MAX_TAP_QUEUES;

/// The ring map's offset: ring `i` on CPU `(OFFSET + i) % ncpu`.
pub const OFFSET: usize = 0;

/// Which CPU serves which of tap0's receive queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingMap {
    ncpu: usize,
    nqueues: usize,
}

impl RingMap {
    /// One CPU with one queue: the system as it always was.
    pub const SINGLE: RingMap = RingMap {
        ncpu: 1,
        nqueues: 1,
    };

    /// `nqueues` queues (1..=[`MAX_QUEUES`]) over `ncpu` CPUs (at least
    /// one; the caller bounds it by what it can run).
    pub fn new(ncpu: usize, nqueues: usize) -> Result<RingMap, String> {
        if ncpu == 0 {
            return Err("--cpus 0: at least 1".to_string());
        }
        if !(1..=MAX_QUEUES).contains(&nqueues) {
            return Err(format!("--queues {nqueues}: between 1 and {MAX_QUEUES}"));
        }
        Ok(RingMap { ncpu, nqueues })
    }

    /// The CPUs.
    pub fn ncpu(&self) -> usize {
        self.ncpu
    }

    /// The queues.
    pub fn nqueues(&self) -> usize {
        self.nqueues
    }

    /// The CPU that serves queue `q`.
    pub fn cpu_of(&self, q: usize) -> usize {
        (OFFSET + q) % self.ncpu
    }

    /// The queues CPU `c` serves, in order (none if `c` is past the last
    /// queue).
    pub fn queues_of(&self, c: usize) -> Vec<usize> {
        (0..self.nqueues).filter(|&q| self.cpu_of(q) == c).collect()
    }

    /// Whether the MIBs show per-queue nodes: anything but one CPU with
    /// one queue, whose MIB stays as it always was.
    pub fn per_queue_nodes(&self) -> bool {
        self.ncpu != 1 || self.nqueues != 1
    }

    /// `0..4 on CPUs 0,1,0,1`-like text for start-up lines.
    pub fn describe(&self) -> String {
        let cpus: Vec<String> = (0..self.nqueues.min(16))
            .map(|q| self.cpu_of(q).to_string())
            .collect();
        let more = if self.nqueues > 16 { ",..." } else { "" };
        format!(
            "{} receive queues, queue q on CPU q % {} (CPUs {}{more})",
            self.nqueues,
            self.ncpu,
            cpus.join(",")
        )
    }
}

/// Register, in the MIB of the CPU whose interface `i` (named `ifname`)
/// serves the device queues `queues` (its queue `r` being device queue
/// `queues[r]`), each queue's read-only nodes `dev.<if>.queue_rx_<q>.*`:
/// `cpu`, `rx_packets`, `rx_bytes`, `rx_missed`, and `rx_pending` where
/// the device can tell its ring's fill (a virtual ring can, a tap cannot).
pub fn register_sysctl(
    mib: &mut Mib<Kernel>,
    k: &Kernel,
    i: usize,
    queues: &[usize],
    map: &RingMap,
) {
    let ifname = k.ifs[i].nic.name().to_string();
    for (r, &q) in queues.iter().enumerate() {
        let p = format!("dev.{ifname}.queue_rx_{q}");
        let cpu = sat(map.cpu_of(q) as u64);
        mib.add_ro(
            &format!("{p}.cpu"),
            "The CPU that serves this receive queue (ring q on CPU q % hw.ncpu)",
            move |_: &Kernel| cpu,
        );
        type Get = fn(&RxQueueStats) -> u64;
        let nodes: [(&str, &str, Get); 3] = [
            ("rx_packets", "Frames taken from this queue's ring", |s| {
                s.stats.rx_packets
            }),
            ("rx_bytes", "Bytes taken from this queue's ring", |s| {
                s.stats.rx_bytes
            }),
            (
                "rx_missed",
                "Frames dropped because this queue's ring was full (a tap: the device's, on queue 0)",
                |s| s.stats.rx_missed,
            ),
        ];
        for (name, descr, get) in nodes {
            mib.add_ro(&format!("{p}.{name}"), descr, move |k: &Kernel| {
                k.ifs[i].nic.rx_queue_stats(r).map_or(0, |s| sat(get(&s)))
            });
        }
        let tells = k.ifs[i]
            .nic
            .rx_queue_stats(r)
            .is_some_and(|s| s.pending.is_some());
        if tells {
            mib.add_ro(
                &format!("{p}.rx_pending"),
                "Frames waiting in this queue's ring (its fill)",
                move |k: &Kernel| {
                    k.ifs[i]
                        .nic
                        .rx_queue_stats(r)
                        .and_then(|s| s.pending)
                        .map_or(0, |n| sat(n as u64))
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_i_is_served_by_cpu_i_modulo_the_cpus() {
        let m = RingMap::new(2, 4).unwrap();
        assert_eq!(
            (0..4).map(|q| m.cpu_of(q)).collect::<Vec<_>>(),
            [0, 1, 0, 1]
        );
        assert_eq!(m.queues_of(0), [0, 2]);
        assert_eq!(m.queues_of(1), [1, 3]);
        let m = RingMap::new(4, 2).unwrap();
        assert_eq!(m.queues_of(0), [0]);
        assert_eq!(m.queues_of(1), [1]);
        assert!(m.queues_of(2).is_empty() && m.queues_of(3).is_empty());
        let m = RingMap::new(4, 4).unwrap();
        assert!((0..4).all(|c| m.queues_of(c) == [c]));
        assert!(!RingMap::new(1, 1).unwrap().per_queue_nodes());
        assert!(RingMap::new(1, 2).unwrap().per_queue_nodes());
        assert!(RingMap::new(2, 1).unwrap().per_queue_nodes());
    }

    #[test]
    fn counts_out_of_range_are_refused_with_the_bound() {
        assert!(RingMap::new(0, 1).unwrap_err().contains("at least 1"));
        assert!(
            RingMap::new(1, 0)
                .unwrap_err()
                .contains("between 1 and 256")
        );
        let e = RingMap::new(1, MAX_QUEUES + 1).unwrap_err();
        assert!(e.contains("--queues 257"), "{e}");
        assert!(RingMap::new(64, MAX_QUEUES).is_ok());
    }
}
