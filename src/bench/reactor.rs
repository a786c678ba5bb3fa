//! `pollsim bench reactor`: the cost of delivering one readiness event with
//! kernel polling (`ready`) and user polling (`scan`), against the number
//! of registered sockets: the select-vs-epoll experiment.
//!
//! For each N, a [`Rig`] of N UDP sockets (oneshot, readable); each round
//! makes 1% of them ready (at least one) by feeding datagrams through the
//! netisr, then times one [`Reactor::poll`], which must deliver exactly
//! those sockets; the app's part (read, re-arm) is not timed. Reported per
//! N and backend: nanoseconds of poll per delivered event, and sockets the
//! poll examined per event (`kern.reactor.scanned`). The app's re-arms are
//! timed apart (`rearm_ns_per_event`), and `ns_per_call` is one poll with
//! the re-arms of its events: what a process pays per call of its event
//! loop (epoll_wait and the epoll_ctl MODs of a oneshot app, or a select).
//!
//! [`costs`] measures the reactor's `hw.sim.reactor_*` costs (`pollsim
//! bench reactor --costs`; `pollsim calibrate` runs it too).

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use super::rig::Rig;
use crate::kernel::reactor::{Backend, Event, Token, Trigger};

/// The socket counts of the experiment.
pub const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
/// Share of the sockets made ready before each poll, in percent.
pub const READY_PCT: usize = 1;

/// One point of the experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// `ready` or `scan`.
    pub backend: &'static str,
    /// Registered sockets.
    pub sockets: usize,
    /// Sockets ready at each poll.
    pub ready_per_poll: usize,
    /// Polls timed.
    pub polls: u64,
    /// Events delivered by them.
    pub events: u64,
    /// Poll time per delivered event.
    pub ns_per_event: f64,
    /// Sockets examined per delivered event.
    pub scanned_per_event: f64,
    /// Re-arm time per delivered event (`rearm` after handling it).
    pub rearm_ns_per_event: f64,
    /// One poll and the re-arms of its events, per poll.
    pub ns_per_call: f64,
}

/// Sockets made ready per poll for `n` registered.
pub fn ready_for(n: usize) -> usize {
    (n * READY_PCT / 100).max(1)
}

/// Measure `backend` with `n` sockets, `ready` of them made ready before
/// each poll (default: [`ready_for`]), over about `events` delivered
/// events (at least 20 polls). Panics if a poll delivers other than the
/// sockets made ready: the bench measures only correct delivery.
pub fn measure(n: usize, backend: Backend, events: u64, ready: Option<usize>) -> Point {
    let mut rig = Rig::new(n, Trigger::Oneshot);
    rig.reactor.set_backend(&mut rig.netisr.sockets, backend);
    let ready = ready.unwrap_or_else(|| ready_for(n)).clamp(1, n);
    let rounds = (events / ready as u64).max(20);
    let warmup = (rounds / 10).max(2);
    let mut buf: Vec<Event> = Vec::with_capacity(ready * 2);
    let frames: Vec<Vec<u8>> = (0..n).map(Rig::frame).collect();
    let (mut ns, mut rearm_ns, mut delivered) = (0u128, 0u128, 0u64);
    let mut scanned0 = 0;
    for round in 0..warmup + rounds {
        if round == warmup {
            scanned0 = rig.reactor.stats.scanned;
        }
        // Distinct sockets: 97 is prime to every N of the experiment.
        let pick = |k: usize| (round as usize * 7919 + k * 97) % n;
        for k in 0..ready {
            rig.ingress(&frames[pick(k)]);
        }
        let t = Instant::now();
        rig.reactor
            .poll(&mut rig.netisr.sockets, &mut buf, ready * 2);
        let el = t.elapsed();
        assert_eq!(
            buf.len(),
            ready,
            "{} N={n}: events lost or spurious",
            backend.name()
        );
        for e in &buf {
            assert_eq!(
                rig.drain(e.token.0),
                1,
                "an event for a socket not made ready"
            );
        }
        let t = Instant::now();
        for e in &buf {
            rig.reactor
                .rearm(&mut rig.netisr.sockets, Token(e.token.0))
                .expect("a rig token");
        }
        let rearm = t.elapsed();
        if round >= warmup {
            ns += el.as_nanos();
            rearm_ns += rearm.as_nanos();
            delivered += buf.len() as u64;
        }
    }
    let scanned = rig.reactor.stats.scanned - scanned0;
    Point {
        backend: backend.name(),
        sockets: n,
        ready_per_poll: ready,
        polls: rounds,
        events: delivered,
        ns_per_event: ns as f64 / delivered as f64,
        scanned_per_event: scanned as f64 / delivered as f64,
        rearm_ns_per_event: rearm_ns as f64 / delivered as f64,
        ns_per_call: (ns + rearm_ns) as f64 / rounds as f64,
    }
}

/// The reactor's costs as the cost model charges them (`hw.sim.reactor_*`),
/// each the median of [`COST_ROUNDS`] rounds, ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Costs {
    /// `hw.sim.reactor_call_ns`: an empty poll of the `ready` backend.
    pub call_ns: u64,
    /// `hw.sim.reactor_scan_ns`: a `scan` poll of [`COST_SOCKETS`] idle
    /// registrations, less the call, per registration.
    pub scan_ns: u64,
    /// `hw.sim.reactor_ready_ns`: a `ready` poll delivering
    /// [`COST_READY`] events, less the call, per event.
    pub ready_ns: u64,
    /// `hw.sim.reactor_reg_ns`: one `register` with the `ready` backend.
    pub reg_ns: u64,
    /// `hw.sim.reactor_rearm_ns`: one `rearm` of a oneshot registration
    /// with the `ready` backend.
    pub rearm_ns: u64,
}

/// Rounds of [`costs`]; the median is kept.
pub const COST_ROUNDS: usize = 5;
/// Registrations of the rig [`costs`] measures.
pub const COST_SOCKETS: usize = 4_096;
/// Events per poll of the `ready` figure (the kernel's event batch).
pub const COST_READY: usize = 64;
/// Empty polls timed per round of the call figure.
const COST_CALLS: u32 = 20_000;

impl Costs {
    /// Set the reactor's knobs of `m` to these figures.
    pub fn apply(&self, m: &mut crate::kernel::cost::CostModel) {
        m.reactor_call_ns = self.call_ns;
        m.reactor_scan_ns = self.scan_ns;
        m.reactor_ready_ns = self.ready_ns;
        m.reactor_reg_ns = self.reg_ns;
        m.reactor_rearm_ns = self.rearm_ns;
    }
}

fn median(mut v: Vec<f64>) -> u64 {
    v.sort_by(f64::total_cmp);
    // Non-negative by construction (times, and differences floored at 0).
    let m = v[v.len() / 2].round().max(0.0);
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let ns = m as u64;
    ns
}

/// One round of every cost, ns (fractions kept for the median).
fn cost_round() -> [f64; 5] {
    let n = COST_SOCKETS;
    let mut buf: Vec<Event> = Vec::with_capacity(n);
    let mut rig = Rig::new(n, Trigger::Oneshot);
    // call: nothing ready, nothing pending.
    let t = Instant::now();
    for _ in 0..COST_CALLS {
        rig.reactor.poll(&mut rig.netisr.sockets, &mut buf, n);
    }
    let call = t.elapsed().as_nanos() as f64 / f64::from(COST_CALLS);
    // ready: COST_READY delivered per poll, re-armed (untimed) after.
    let frames: Vec<Vec<u8>> = (0..n).map(Rig::frame).collect();
    let (mut ready_ns, mut polls) = (0u128, 0u32);
    for round in 0..n / COST_READY {
        for k in 0..COST_READY {
            rig.ingress(&frames[round * COST_READY + k]);
        }
        let t = Instant::now();
        rig.reactor.poll(&mut rig.netisr.sockets, &mut buf, n);
        ready_ns += t.elapsed().as_nanos();
        polls += 1;
        assert_eq!(buf.len(), COST_READY, "the cost rig's events");
        for e in &buf {
            rig.drain(e.token.0);
        }
        for e in &buf {
            let _ = rig.reactor.rearm(&mut rig.netisr.sockets, e.token);
        }
    }
    let ready = (ready_ns as f64 / f64::from(polls) - call).max(0.0) / COST_READY as f64;
    // rearm: every registration, none ready.
    let t = Instant::now();
    for i in 0..n {
        let _ = rig.reactor.rearm(&mut rig.netisr.sockets, Token(i));
    }
    let rearm = t.elapsed().as_nanos() as f64 / n as f64;
    // reg: every registration again, after its deregistration (untimed).
    let mut reg_ns = 0u128;
    for i in 0..n {
        let _ = rig.reactor.deregister(Token(i));
        let h = rig.handle(i);
        let t = Instant::now();
        let _ = rig.reactor.register(
            &mut rig.netisr.sockets,
            h,
            crate::kernel::reactor::SockKind::Udp,
            Token(i),
            crate::kernel::reactor::Interest::READABLE,
            Trigger::Oneshot,
        );
        reg_ns += t.elapsed().as_nanos();
    }
    let reg = reg_ns as f64 / n as f64;
    // scan: n idle registrations, one empty scan per round of 20.
    rig.reactor
        .set_backend(&mut rig.netisr.sockets, Backend::Scan);
    let t = Instant::now();
    for _ in 0..20 {
        rig.reactor.poll(&mut rig.netisr.sockets, &mut buf, n);
    }
    let scan = (t.elapsed().as_nanos() as f64 / 20.0 - call).max(0.0) / n as f64;
    [call, scan, ready, reg, rearm]
}

/// Measure the reactor's `hw.sim.reactor_*` costs on this host.
pub fn costs() -> Costs {
    let rounds: Vec<[f64; 5]> = (0..COST_ROUNDS).map(|_| cost_round()).collect();
    let m = |i: usize| median(rounds.iter().map(|r| r[i]).collect());
    Costs {
        call_ns: m(0),
        scan_ns: m(1),
        ready_ns: m(2),
        reg_ns: m(3),
        rearm_ns: m(4),
    }
}

/// The whole experiment: every size, both backends; `ready` fixes the
/// sockets ready per poll (default: 1% of N).
pub fn run(
    sizes: &[usize],
    events: u64,
    ready: Option<usize>,
    progress: &mut dyn FnMut(&Point),
) -> Vec<Point> {
    let mut out = Vec::new();
    for &n in sizes {
        for b in [Backend::Ready, Backend::Scan] {
            let p = measure(n, b, events, ready);
            progress(&p);
            out.push(p);
        }
    }
    out
}

/// The points as a table, and the growth of each backend from the
/// smallest N to the largest.
pub fn table(points: &[Point]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:>8} {:>8} {:>14} {:>18} {:>14} {:>12}",
        "backend", "sockets", "ready", "ns/event", "scanned/event", "rearm ns/ev", "ns/call"
    );
    for p in points {
        let _ = writeln!(
            s,
            "{:<8} {:>8} {:>8} {:>14.1} {:>18.2} {:>14.1} {:>12.1}",
            p.backend,
            p.sockets,
            p.ready_per_poll,
            p.ns_per_event,
            p.scanned_per_event,
            p.rearm_ns_per_event,
            p.ns_per_call
        );
    }
    for b in ["ready", "scan"] {
        let mine: Vec<&Point> = points.iter().filter(|p| p.backend == b).collect();
        if let (Some(lo), Some(hi)) = (mine.first(), mine.last())
            && hi.sockets > lo.sockets
        {
            let _ = writeln!(
                s,
                "{b}: ns/event x{:.2} from N={} to N={}",
                hi.ns_per_event / lo.ns_per_event,
                lo.sockets,
                hi.sockets
            );
        }
    }
    s
}

/// The contract's JSON: `{"reactor":[{"backend":…,"sockets":…,…},…]}`.
pub fn json(points: &[Point]) -> String {
    serde_json::json!({ "reactor": points }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanned_per_event_is_one_for_ready_and_n_over_ready_for_scan() {
        for n in [10, 300] {
            let r = measure(n, Backend::Ready, 200, None);
            assert!(
                (r.scanned_per_event - 1.0).abs() < 1e-9,
                "ready N={n}: {r:?}"
            );
            let s = measure(n, Backend::Scan, 200, None);
            let expect = n as f64 / ready_for(n) as f64;
            assert!(
                (s.scanned_per_event - expect).abs() < 1e-9,
                "scan N={n}: {s:?} (expected {expect})"
            );
            assert_eq!(r.events, s.events);
        }
        // A fixed count: scan examines all N per poll, ready only those.
        let s = measure(500, Backend::Scan, 100, Some(5));
        assert!((s.scanned_per_event - 100.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.ready_per_poll, 5);
    }

    #[test]
    fn table_and_json_have_every_point() {
        let pts = run(&[10, 100], 50, None, &mut |_| {});
        assert_eq!(pts.len(), 4);
        let v: serde_json::Value = serde_json::from_str(&json(&pts)).unwrap();
        let arr = v["reactor"].as_array().unwrap();
        assert_eq!(arr.len(), 4);
        assert_eq!(arr[3]["backend"], "scan");
        assert_eq!(arr[3]["sockets"], 100);
        assert!(arr[3]["ns_per_event"].as_f64().unwrap() > 0.0);
        assert!(arr[3]["scanned_per_event"].as_f64().unwrap() > 0.0);
        let t = table(&pts);
        assert_eq!(t.lines().filter(|l| l.starts_with("scan ")).count(), 2);
        assert!(t.contains("ready: ns/event x"));
    }
}
