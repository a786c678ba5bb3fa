//! Idle connections (`--conns N`): many watched sockets, few ready, so that
//! the reactor's `scan` backend pays O(watched) per poll while `ready`
//! pays O(ready): the C10k setting of select vs epoll.
//!
//! - On the real clock ([`Connector`]): N real TCP connections from the
//!   Linux side of the tap (the namespace pollsim runs in) to tcp-echo,
//!   opened in batches under a deadline after the instance is up, held
//!   open (never written to) for the run, closed at the end. tcp-echo
//!   accepts each and registers it with the reactor.
//! - On virtual time ([`add_synthetic`]): N synthetic idle connections.
//!   Each is a real smoltcp TCP socket really registered with the reactor
//!   (readable, oneshot, in tcp-echo's token space), listening on
//!   [`IDLE_PORT`], which nothing sends to: it is examined by every scan
//!   exactly as an idle established connection is (its state and receive
//!   queue), and never ready unless a segment arrives for it. What is
//!   synthetic is the handshake that did not happen, and its state
//!   (LISTEN instead of ESTABLISHED). With `user.tcp_echo.model=threads`
//!   each is not registered with the reactor but gets a connection thread
//!   of its own, blocked in read on it ([`Kernel::thread_park`]): no CPU
//!   while blocked, its stack in `user.tcp_echo.thread_mem_kb`.

use std::net::{SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use smoltcp::socket::tcp;

use crate::apps::TOKEN_SPACE;
use crate::kernel::Kernel;
use crate::kernel::reactor::{Interest, SockKind, Token, Trigger};

/// Largest `--conns` (`user.tcp_echo.max_conns`' bound less the headroom).
pub const CONNS_MAX: usize = crate::apps::pool::MAX_CONNS_MAX as usize - CONNS_HEADROOM;
/// Connections tcp-echo keeps free beside the idle ones (other clients).
pub const CONNS_HEADROOM: usize = 64;
/// The port the synthetic connections listen on (nothing sends to it).
pub const IDLE_PORT: u16 = 7007;
/// The first token of the synthetic connections: the upper half of
/// tcp-echo's token space (index 1), which its pool never reaches.
pub const IDLE_TOKEN_BASE: usize = TOKEN_SPACE + TOKEN_SPACE / 2;
/// Bytes of each synthetic socket's buffers (it never carries data).
const IDLE_BUF: usize = 64;
/// Connections opened concurrently by the real connector.
const BATCH: usize = 8;
/// Time allowed for each real connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for all of them.
const DEADLINE: Duration = Duration::from_secs(30);

/// Add `n` (at most [`CONNS_MAX`]) synthetic idle connections to NIC 0 of
/// `k`, registered with its reactor. Bound: O(n).
pub fn add_synthetic(k: &mut Kernel, n: usize) {
    let Some(addr) = k.netisr.sockets.nic(0).ipv4_addr() else {
        return;
    };
    let n = n.min(CONNS_MAX);
    for i in 0..n {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; IDLE_BUF]),
            tcp::SocketBuffer::new(vec![0; IDLE_BUF]),
        );
        s.listen((addr, IDLE_PORT))
            .expect("a fresh socket can listen");
        // Spread as established connections' 4-tuples are.
        let sport = 20_000u16.wrapping_add(i as u16);
        let shard = k
            .netisr
            .sockets
            .tcp_shard([198, 18, 0, 1], sport, addr.octets(), IDLE_PORT);
        let h = k.netisr.sockets.add(0, shard, s);
        k.synthetic_conns += 1;
        if k.echo_threads() {
            // The threads model: its own thread, blocked in read on it.
            k.thread_park(h, Token(IDLE_TOKEN_BASE + i));
            continue;
        }
        k.reactor
            .register(
                &mut k.netisr.sockets,
                h,
                SockKind::Tcp,
                Token(IDLE_TOKEN_BASE + i),
                Interest::READABLE,
                Trigger::Oneshot,
            )
            .expect("the idle connections' tokens are unused");
    }
}

/// The node of the synthetic connections: `kern.conns.synthetic` (RO).
pub fn register_sysctl(mib: &mut pollsim_sysctl::Mib<Kernel>) {
    mib.add_ro(
        "kern.conns.synthetic",
        "Synthetic idle connections registered by --conns (virtual time only)",
        |k: &Kernel| i64::try_from(k.synthetic_conns).unwrap_or(i64::MAX),
    );
}

/// What the real connector did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectReport {
    /// Connections asked for.
    pub wanted: usize,
    /// Connections established.
    pub open: usize,
    /// Connections that failed or timed out.
    pub failed: usize,
    /// Time taken to open them.
    pub took: Duration,
}

/// N real idle TCP connections, opened from a thread while the instance
/// runs, held until [`Connector::close`].
pub struct Connector {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<ConnectReport>>,
}

impl Connector {
    /// Start opening `n` connections to `to` (the instance must be running
    /// for them to complete). `ready` is called once they are all open or
    /// failed, with the report.
    pub fn start(
        n: usize,
        to: SocketAddrV4,
        ready: impl FnOnce(&ConnectReport) + Send + 'static,
    ) -> std::io::Result<Connector> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pollsim-conns".into())
            .spawn(move || {
                let t0 = Instant::now();
                let streams = open(n, to, &flag, t0 + DEADLINE);
                let report = ConnectReport {
                    wanted: n,
                    open: streams.len(),
                    failed: n - streams.len(),
                    took: t0.elapsed(),
                };
                ready(&report);
                // Held open, never written to, until the run ends.
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                drop(streams);
                report
            })?;
        Ok(Connector {
            stop,
            thread: Some(thread),
        })
    }

    /// Close every connection; the report.
    pub fn close(mut self) -> ConnectReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// Open up to `n` connections, [`BATCH`] at a time, until `deadline` or
/// `stop`. Bound: `n` connections, [`DEADLINE`].
fn open(n: usize, to: SocketAddrV4, stop: &AtomicBool, deadline: Instant) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    // The instance's first ticks: give it a moment to serve.
    std::thread::sleep(Duration::from_millis(100));
    while out.len() < n && Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let batch = BATCH.min(n - out.len());
        let got: Vec<Option<TcpStream>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..batch).map(|_| s.spawn(move || connect(to))).collect();
            hs.into_iter().map(|h| h.join().ok().flatten()).collect()
        });
        let ok = got.iter().filter(|s| s.is_some()).count();
        out.extend(got.into_iter().flatten());
        if ok == 0 {
            // Refused or timed out: the server is full or not serving.
            break;
        }
    }
    out
}

/// One connection to `to` (the route picks the tap's Linux side as the
/// source), within [`CONNECT_TIMEOUT`].
fn connect(to: SocketAddrV4) -> Option<TcpStream> {
    TcpStream::connect_timeout(&to.into(), CONNECT_TIMEOUT).ok()
}
