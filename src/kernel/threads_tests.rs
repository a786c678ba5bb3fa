//! tcp-echo's two models on virtual time: N clients of their own smoltcp
//! stack on the wire echo their bytes through the reactor's one process,
//! or through a process per connection that exits when its connection
//! closes. No root, no sleeps, deterministic.

use std::cell::RefCell;
use std::rc::Rc;

use pollsim_drivers::{SharedVirtNic, VirtNic};
use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Cidr};

use super::clock::{Clock, VirtualClock};
use super::cost::CostModel;
use super::netisr::instant;
use super::sched::Hooks;
use super::time::{Hz, Nanos};
use super::vsched::{VirtualSched, World};
use super::{Kernel, KernelConfig, Mode, mib};
use crate::apps::AppKind;
use crate::report::Accounting;
use crate::sim::probe::Wire;

const MAC: [u8; 6] = [2, 0, 198, 18, 0, 2];
const PEER: [u8; 6] = [2, 0, 198, 18, 0, 1];
const START: Nanos = Nanos::from_secs(1);
/// Bytes each client sends (and must get back).
const MSG: usize = 3000;

/// N echo clients on the NIC's wire: each connects, sends [`MSG`] bytes,
/// reads them back; once every client has its echo, all close.
struct Clients {
    nic: Rc<RefCell<VirtNic>>,
    wire: Wire,
    iface: Interface,
    set: SocketSet<'static>,
    socks: Vec<(SocketHandle, usize, usize)>,
    closing: bool,
    /// Keep every connection open (idle) once echoed.
    hold: bool,
}

impl Clients {
    fn new(nic: Rc<RefCell<VirtNic>>, n: usize, hold: bool) -> Clients {
        let mut wire = Wire::default();
        let mut cfg = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(PEER)));
        cfg.random_seed = 3;
        let mut iface = Interface::new(cfg, &mut wire, instant(START));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new([198, 18, 0, 1].into(), 24)));
        });
        let mut set = SocketSet::new(Vec::new());
        let mut socks = Vec::new();
        for i in 0..n {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 8192]),
                tcp::SocketBuffer::new(vec![0; 8192]),
            );
            let port = 50_000 + u16::try_from(i).unwrap();
            s.connect(iface.context(), (IpAddress::v4(198, 18, 0, 2), 7), port)
                .unwrap();
            socks.push((set.add(s), 0, 0));
        }
        Clients {
            nic,
            wire,
            iface,
            set,
            socks,
            closing: false,
            hold,
        }
    }

    fn echoed(&self) -> usize {
        self.socks.iter().filter(|(_, _, got)| *got == MSG).count()
    }

    fn all_closed(&self) -> bool {
        self.socks.iter().all(|(h, ..)| {
            matches!(
                self.set.get::<tcp::Socket>(*h).state(),
                tcp::State::Closed | tcp::State::TimeWait
            )
        })
    }
}

impl World for Clients {
    fn advance(&mut self, now: Nanos) {
        self.wire.rx.extend(self.nic.borrow_mut().take_sent());
        let ts = instant(now);
        self.iface.poll(ts, &mut self.wire, &mut self.set);
        let all = self.echoed() == self.socks.len();
        for (h, sent, got) in &mut self.socks {
            let s = self.set.get_mut::<tcp::Socket>(*h);
            if s.can_send() && *sent < MSG {
                let chunk: Vec<u8> = (*sent..MSG).map(|i| (i % 251) as u8).collect();
                *sent += s.send_slice(&chunk).unwrap_or(0);
            }
            while s.can_recv() {
                let mut buf = [0u8; 2048];
                let n = s.recv_slice(&mut buf).unwrap_or(0);
                assert!(
                    buf[..n]
                        .iter()
                        .enumerate()
                        .all(|(k, b)| *b == ((*got + k) % 251) as u8)
                );
                *got += n;
                if n == 0 {
                    break;
                }
            }
            if all && !self.hold && s.state() == tcp::State::Established {
                s.close();
            }
        }
        self.closing |= all;
        self.iface.poll(ts, &mut self.wire, &mut self.set);
        let mut nic = self.nic.borrow_mut();
        for f in self.wire.tx.drain(..) {
            assert!(nic.inject(&f), "the NIC's ring has room");
        }
    }

    fn next_event(&self) -> Option<Nanos> {
        None
    }

    fn pending_irqs(&self) -> u64 {
        u64::from(self.nic.borrow().irq_asserted())
    }
}

/// tcp-echo in `model` on one virtual NIC (polling, so the ring is read
/// each tick), started, and the NIC's other end.
fn kernel(model: &str) -> (Kernel, Rc<RefCell<VirtNic>>) {
    let cfg = KernelConfig {
        hz: Hz::DEFAULT,
        addr: Ipv4Cidr::new([198, 18, 0, 2].into(), 24),
        mode: Mode::Polling,
        apps: vec![AppKind::TcpEcho],
        seed: 9,
    };
    let (shared, handle) = SharedVirtNic::new(VirtNic::new("tap0", MAC, 4096).unwrap()).unwrap();
    let mut k = Kernel::new(&cfg, START);
    k.cost = Some(CostModel::default());
    k.attach(Box::new(shared), &cfg, START);
    let m = mib::build(&k);
    m.set(&mut k, "user.tcp_echo.model", model).unwrap();
    k.start_apps();
    assert!(
        m.set(&mut k, "user.tcp_echo.model", "reactor").is_err(),
        "a start-time tunable"
    );
    (k, handle)
}

/// Run `k` on `clock` until `end`.
fn run_to(
    k: &mut Kernel,
    sched: &mut VirtualSched,
    clock: &mut VirtualClock,
    world: &mut Clients,
    end: Nanos,
) {
    let mut hooks = Hooks {
        observe: &mut |_, _| {},
        on_tick: &mut |_| {},
    };
    sched.run_until(k, clock, world, end, &mut hooks);
}

/// Run `n` echo clients against tcp-echo in `model` until they are all
/// closed; returns the kernel, and the tcp-echo processes (acceptor and
/// threads) alive once every client had its echo. Then, every connection
/// gone, the CPU idles: no user time in the 100 ms after.
fn run(model: &str, n: usize) -> (Kernel, usize) {
    let (mut k, handle) = kernel(model);
    let mut clock = VirtualClock::new(START);
    let mut sched = VirtualSched::new(&mut k, START, None);
    let mut world = Clients::new(handle, n, false);
    let mut live_when_echoed = None;
    let mut closed_at = None;
    for ms in 1..=3_000 {
        run_to(
            &mut k,
            &mut sched,
            &mut clock,
            &mut world,
            START + Nanos::from_millis(ms),
        );
        if live_when_echoed.is_none() && world.echoed() == n {
            live_when_echoed = Some(k.runq.live("tcp_echo"));
        }
        if world.all_closed() && k.threads.now == 0 && ms > 10 {
            closed_at = Some(START + Nanos::from_millis(ms));
            break;
        }
    }
    assert_eq!(world.echoed(), n, "every client got its bytes back");
    assert!(world.all_closed());
    let at = closed_at.expect("every thread exited");
    // A thread's exit must take it off the runnable count: a count left
    // over kept the user "runnable" with nothing to run, a spin at one
    // instant that cost no virtual time (the hang of the first attempt).
    assert!(!k.user_runnable(at), "nothing left to run");
    let before = k.cpu.cp_time(clock.now());
    run_to(
        &mut k,
        &mut sched,
        &mut clock,
        &mut world,
        at + Nanos::from_millis(100),
    );
    let d = k.cpu.cp_time(clock.now()).delta(&before);
    // (A timer's reclaim may run a step or two, never a busy CPU.)
    assert!(d.0[0] * 100 <= d.total(), "{model}: no user spin: {d:?}");
    (k, live_when_echoed.expect("every client echoed"))
}

#[test]
fn both_models_echo_and_threads_are_one_process_per_connection() {
    const N: usize = 40;
    let (reactor, live) = run("reactor", N);
    assert_eq!(live, 1, "the reactor model is one process");
    assert_eq!(reactor.threads.created, 0);
    let echo = reactor.apps.tcp_echo.as_ref().unwrap();
    assert_eq!(echo.bytes, (N * MSG) as u64);
    assert_eq!(echo.pool.stats.accepted, N as u64);

    let (threads, live) = run("threads", N);
    let echo = threads.apps.tcp_echo.as_ref().unwrap();
    assert_eq!(echo.bytes, (N * MSG) as u64);
    assert_eq!(echo.pool.stats.accepted, N as u64);
    // One process per connection besides the acceptor, while they were
    // all open; every one exited with its connection.
    assert_eq!(live, N + 1);
    let t = threads.threads;
    assert_eq!(
        (t.created, t.exited, t.now, t.max),
        (N as u64, N as u64, 0, N as u64)
    );
    assert_eq!(t.stack_kb, 0, "every stack freed");
    assert_eq!(threads.runq.live("tcp_echo"), 1, "the acceptor is left");
    // The user.tcp_echo.* nodes are the totals of the acceptor and every
    // thread, exited ones included; each thread's switch-in cost a context
    // switch.
    let m = mib::build(&threads);
    let node = |name: &str| -> u64 { m.get(&threads, name).unwrap().to_string().parse().unwrap() };
    let all = threads.runq.named_stats("tcp_echo");
    let acceptor = threads
        .runq
        .stats(threads.user_pid("tcp_echo").unwrap())
        .clone();
    assert_eq!(node("user.tcp_echo.cpu_ns"), all.cpu_ns);
    assert_eq!(node("user.tcp_echo.runs"), all.runs);
    assert_eq!(node("user.tcp_echo.threads_max"), N as u64);
    assert_eq!(node("user.tcp_echo.share_pct"), 100);
    let thread_runs = all.runs - acceptor.runs;
    assert!(thread_runs >= N as u64, "each thread ran: {all:?}");
    let ctxsw = threads.cost.unwrap().ctxsw_ns;
    assert!(
        all.cpu_ns - acceptor.cpu_ns >= thread_runs * ctxsw,
        "a switch per wake-up: {all:?} vs {acceptor:?}"
    );
    // The reactor model paid none: its one process's CPU is its steps'.
    let r = reactor.runq.named_stats("tcp_echo");
    assert!(r.cpu_ns < thread_runs * ctxsw, "{r:?}");
    for k in [&reactor, &threads] {
        let a = Accounting::of(k);
        assert!(a.balanced(), "{a:?}");
        assert_eq!(a.ipintrq_drops + a.rx_missed, 0, "{a:?}");
    }
}

#[test]
fn thread_stack_kb_is_counted_per_thread_and_bounded() {
    let cfg = KernelConfig {
        hz: Hz::DEFAULT,
        addr: Ipv4Cidr::new([198, 18, 0, 2].into(), 24),
        mode: Mode::Polling,
        apps: vec![AppKind::TcpEcho],
        seed: 9,
    };
    let mut k = Kernel::new(&cfg, START);
    let m = mib::build(&k);
    assert_eq!(
        m.get(&k, "user.tcp_echo.model").unwrap().to_string(),
        "reactor"
    );
    assert_eq!(
        m.get(&k, "user.tcp_echo.thread_stack_kb")
            .unwrap()
            .to_string(),
        "2048"
    );
    assert!(m.set(&mut k, "user.tcp_echo.model", "fibers").is_err());
    assert!(
        m.set(&mut k, "user.tcp_echo.thread_stack_kb", "15")
            .is_err()
    );
    m.set(&mut k, "user.tcp_echo.thread_stack_kb", "64")
        .unwrap();
    m.set(&mut k, "user.tcp_echo.model", "threads").unwrap();
    assert_eq!(
        m.get(&k, "user.tcp_echo.model").unwrap().to_string(),
        "threads"
    );
}

/// N connections held open and idle after their echo: in the threads
/// model N processes blocked in read, which cost no CPU however long they
/// block, and hold N stacks; each of the echoes woke its thread through
/// at least one context switch.
#[test]
fn blocked_threads_cost_no_cpu_and_hold_their_stacks() {
    const N: usize = 25;
    let (mut k, handle) = kernel("threads");
    let m = mib::build(&k);
    let node =
        |k: &Kernel, name: &str| -> u64 { m.get(k, name).unwrap().to_string().parse().unwrap() };
    let stack = node(&k, "user.tcp_echo.thread_stack_kb");
    let mut clock = VirtualClock::new(START);
    let mut sched = VirtualSched::new(&mut k, START, None);
    let mut world = Clients::new(handle, N, true);
    let mut echoed_at = None;
    for ms in 1..=3_000 {
        run_to(
            &mut k,
            &mut sched,
            &mut clock,
            &mut world,
            START + Nanos::from_millis(ms),
        );
        if world.echoed() == N {
            echoed_at = Some(START + Nanos::from_millis(ms));
            break;
        }
    }
    let at = echoed_at.expect("every client echoed");
    // Let the last ACKs go, then every thread is blocked in read.
    run_to(
        &mut k,
        &mut sched,
        &mut clock,
        &mut world,
        at + Nanos::from_millis(50),
    );
    assert_eq!(node(&k, "user.tcp_echo.threads"), N as u64);
    assert_eq!(node(&k, "user.tcp_echo.thread_mem_kb"), N as u64 * stack);
    assert!(!k.user_runnable(clock.now()), "every thread blocked");
    let before = (
        k.runq.named_stats("tcp_echo"),
        k.cpu.cp_time(clock.now()).0[0],
    );
    run_to(
        &mut k,
        &mut sched,
        &mut clock,
        &mut world,
        at + Nanos::from_secs(2),
    );
    let after = k.runq.named_stats("tcp_echo");
    assert_eq!(after.cpu_ns, before.0.cpu_ns, "blocked threads cost no CPU");
    assert_eq!(after.runs, before.0.runs, "and are never switched in");
    assert_eq!(k.cpu.cp_time(clock.now()).0[0], before.1);
    assert_eq!(node(&k, "user.tcp_echo.threads"), N as u64, "still held");
    // Each echo woke its thread: at least one switch-in each, each a
    // context switch charged in sys.
    let acceptor = k.runq.stats(k.user_pid("tcp_echo").unwrap()).runs;
    assert!(after.runs - acceptor >= N as u64, "{after:?}");
    assert_eq!(k.apps.tcp_echo.as_ref().unwrap().bytes, (N * MSG) as u64);
}

/// `--conns N` on virtual time in the threads model: N threads blocked in
/// read on the synthetic connections instead of N registrations in the
/// reactor; they hold N stacks and cost nothing while the flood runs.
#[test]
fn synthetic_idle_connections_are_parked_threads() {
    use crate::sim::{Sim, SimConfig};
    const N: usize = 300;
    let make = |model: &str| {
        Sim::new(&SimConfig {
            mode: Mode::Polling,
            hz: Hz::DEFAULT,
            pattern: crate::compare::sim::ArrivalKind::Poisson.pattern(50e3),
            seed: 5,
            apps: vec![AppKind::UdpSink, AppKind::TcpEcho],
            sysctls: vec![format!("user.tcp_echo.model={model}")],
            probe: None,
            conns: N,
        })
        .unwrap()
    };
    let int = |s: &Sim, name: &str| -> u64 {
        s.mib.get(&s.k, name).unwrap().to_string().parse().unwrap()
    };
    let mut reactor = make("reactor");
    let mut threads = make("threads");
    for s in [&mut reactor, &mut threads] {
        s.run_for(Nanos::from_millis(300));
        assert_eq!(int(s, "kern.conns.synthetic"), N as u64);
    }
    assert_eq!(int(&reactor, "user.tcp_echo.threads"), 0);
    assert_eq!(int(&reactor, "user.tcp_echo.thread_mem_kb"), 0);
    assert!(int(&reactor, "kern.reactor.watched") >= N as u64);
    assert_eq!(int(&threads, "user.tcp_echo.threads"), N as u64);
    assert_eq!(
        int(&threads, "user.tcp_echo.thread_mem_kb"),
        N as u64 * 2048
    );
    // Not in the reactor: what a scan examines is the other apps' sockets.
    assert!(
        int(&threads, "kern.reactor.watched") + N as u64 <= int(&reactor, "kern.reactor.watched"),
        "threads are not registered"
    );
    let parked = threads.k.runq.named_stats("tcp_echo");
    assert_eq!(
        parked.cpu_ns, 0,
        "blocked threads and an idle acceptor: {parked:?}"
    );
    assert!(
        int(&threads, "user.udp_sink.datagrams") > 0,
        "the flood was served"
    );
}
