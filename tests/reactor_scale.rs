//! The reactor at scale, against a real tap in a private namespace:
//! 10,000 concurrent TCP connections from kernel sockets to tcp-echo, each
//! echoing its own bytes while `kern.reactor.backend` flips between `ready`
//! and `scan`, then all closed, after which the app's pool is back to its
//! backlog. Bounded: 10,000 connections, each step with a timeout.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use util::{ADDR, MAC, Running, eventually, lab, require_root_or_skip, with_tap};

const CONNS: usize = 10_000;
const THREADS: usize = 8;

fn echo_addr() -> SocketAddrV4 {
    SocketAddrV4::new(lab::bench_addr(ADDR), 7)
}

/// The bytes connection `i` sends: its own number, so a mix-up shows.
fn message(i: usize) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&(i as u64).to_be_bytes());
    m[8..].copy_from_slice(&(!(i as u64)).to_be_bytes());
    m
}

/// Connect, retrying a refusal (a SYN that found the backlog momentarily
/// empty is answered with a RST, as a full listen queue may be).
fn connect(i: usize) -> TcpStream {
    for _ in 0..20 {
        match TcpStream::connect_timeout(&echo_addr().into(), Duration::from_secs(5)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    panic!("connection {i}: refused 20 times");
}

/// Open this thread's share of the connections and keep them open.
fn open(t: usize) -> Vec<(usize, TcpStream)> {
    (t..CONNS)
        .step_by(THREADS)
        .map(|i| (i, connect(i)))
        .collect()
}

/// Every connection sends its message, then reads back its own.
fn echo_all(conns: &mut [(usize, TcpStream)]) {
    for (i, s) in conns.iter_mut() {
        s.write_all(&message(*i))
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    for (i, s) in conns.iter_mut() {
        let mut got = [0u8; 16];
        s.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("read the echo of {i}: {e}"));
        assert_eq!(got, message(*i), "connection {i} got another's bytes");
    }
}

#[test]
fn ten_thousand_connections_echo_their_own_bytes_and_the_pool_returns() {
    if !require_root_or_skip("ten_thousand_connections") {
        return;
    }
    rlimit::increase_nofile_limit(4 * CONNS as u64).expect("raise RLIMIT_NOFILE");
    let (soft, _) = rlimit::Resource::NOFILE.get().expect("RLIMIT_NOFILE");
    assert!(soft > CONNS as u64 + 100, "RLIMIT_NOFILE {soft} is too low");
    with_tap(|| {
        lab::static_neigh("tap0", ADDR, MAC).expect("neighbour");
        // Room for bursts of 10,000 segments at the tap and in ipintrq.
        lab::sh("ip", &["link", "set", "tap0", "txqueuelen", "10000"]).expect("txqueuelen");
        let run = Running::start(&[
            "--apps",
            "tcp-echo",
            "--mode",
            "interrupt",
            "--sysctl",
            "user.tcp_echo.max_conns=16384",
            "--sysctl",
            "net.inet.ip.intr_queue_maxlen=10240",
        ]);
        let t0 = std::time::Instant::now();
        let backlog = run.int("user.tcp_echo.backlog");
        assert!(backlog > 0);
        assert_eq!(run.int("user.tcp_echo.sockets"), backlog);
        let mut all: Vec<Vec<(usize, TcpStream)>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS).map(|t| s.spawn(move || open(t))).collect();
            hs.into_iter().map(|h| h.join().expect("opener")).collect()
        });
        assert_eq!(all.iter().map(Vec::len).sum::<usize>(), CONNS);
        eprintln!("{CONNS} connections open after {:?}", t0.elapsed());
        // All open at once: served, plus a full backlog. A connect returns
        // when the kernel's side has the SYN-ACK; the app accepts it on a
        // later tick (on a busy host, seconds later): wait for it.
        let mut seen = (0, 0);
        let served = eventually(Duration::from_secs(120), || {
            seen = (
                run.int("user.tcp_echo.active"),
                run.int("user.tcp_echo.sockets"),
            );
            (seen == (CONNS as u64, CONNS as u64 + backlog)).then_some(())
        });
        assert!(
            served.is_some(),
            "120 s after the connects: active {}, sockets {} (want {CONNS}, {})",
            seen.0,
            seen.1,
            CONNS as u64 + backlog
        );
        eprintln!("{CONNS} connections served after {:?}", t0.elapsed());
        // Echo on every connection while the backend flips.
        let done = AtomicBool::new(false);
        let flips = std::thread::scope(|s| {
            let flipper = s.spawn(|| {
                let mut flips = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let v = if flips.is_multiple_of(2) { "1" } else { "0" };
                    let (code, _, err) = run.sysctl(&[&format!("kern.reactor.backend={v}")]);
                    assert_eq!(code, 0, "{err}");
                    flips += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                flips
            });
            for h in all
                .iter_mut()
                .map(|c| s.spawn(move || echo_all(c)))
                .collect::<Vec<_>>()
            {
                h.join().expect("echo thread");
            }
            done.store(true, Ordering::Relaxed);
            flipper.join().expect("flipper")
        });
        eprintln!("all echoed after {:?}, {flips} backend flips", t0.elapsed());
        assert!(flips >= 2, "the backend flipped {flips} times");
        assert!(run.int("kern.reactor.scanned") > 0);
        drop(all);
        // All closed: the pool returns to its backlog; nothing accumulates.
        let mut seen = (0, 0, 0);
        let settled = eventually(Duration::from_secs(120), || {
            seen = (
                run.int("user.tcp_echo.sockets"),
                run.int("user.tcp_echo.active"),
                run.int("kern.reactor.registered"),
            );
            (seen == (backlog, 0, backlog)).then_some(())
        });
        assert!(
            settled.is_some(),
            "120 s after closing: sockets {}, active {}, registered {} (want {backlog}, 0, {backlog})",
            seen.0,
            seen.1,
            seen.2
        );
        eprintln!("pool back to its backlog after {:?}", t0.elapsed());
        let s = run.stop();
        assert_eq!(s.int("user.tcp_echo.connections"), CONNS as u64);
        assert_eq!(s.int("user.tcp_echo.bytes"), 16 * CONNS as u64);
        assert_eq!(s.int("user.tcp_echo.refused"), 0);
        assert_eq!(s.int("user.tcp_echo.reclaimed"), CONNS as u64);
    });
}

/// Beyond `user.tcp_echo.max_conns` a connection is refused and counted;
/// once one closes, a new one is served.
#[test]
fn connections_beyond_max_conns_are_refused_and_counted() {
    if !require_root_or_skip("connections_beyond_max_conns") {
        return;
    }
    with_tap(|| {
        lab::static_neigh("tap0", ADDR, MAC).expect("neighbour");
        let run = Running::start(&[
            "--apps",
            "tcp-echo",
            "--sysctl",
            "user.tcp_echo.max_conns=2",
        ]);
        let echo_once = |s: &mut TcpStream, i: usize| -> std::io::Result<()> {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(&message(i))?;
            let mut got = [0u8; 16];
            s.read_exact(&mut got)?;
            assert_eq!(got, message(i));
            Ok(())
        };
        let mut a = connect(0);
        let mut b = connect(1);
        echo_once(&mut a, 0).expect("first connection served");
        echo_once(&mut b, 1).expect("second connection served");
        // The third is aborted by the server: no echo comes back.
        let third = TcpStream::connect_timeout(&echo_addr().into(), Duration::from_secs(3))
            .and_then(|mut c| echo_once(&mut c, 2));
        assert!(third.is_err(), "a third connection was served");
        assert!(run.int("user.tcp_echo.refused") >= 1);
        assert_eq!(run.int("user.tcp_echo.active"), 2);
        drop(a);
        let freed = eventually(Duration::from_secs(5), || {
            (run.int("user.tcp_echo.active") == 1).then_some(())
        });
        assert!(freed.is_some(), "the closed connection was not reclaimed");
        let mut d = connect(3);
        echo_once(&mut d, 3).expect("served after a slot freed");
        let s = run.stop();
        assert_eq!(s.int("user.tcp_echo.connections"), 3);
    });
}
