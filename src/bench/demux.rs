//! `pollsim bench demux`: the netisr's cost per TCP frame against the
//! number of established connections, with smoltcp's own demux (one
//! socket set, scanned linearly) and with the netisr's sharded sets.
//!
//! Two stacks in memory: a server (a [`Netisr`] with N connections on port
//! 7) and a client (N sockets), joined by two `VirtNic`s whose transmitted
//! frames are handed to the other side. After the N handshakes, each round
//! 64 client connections send 32 bytes; only the server's
//! `Netisr::ingress` of those data segments is timed. Reading the data and
//! the ACKs back to the client are not.
//!
//! Two traffic patterns: `spread` rotates over all N connections, so at
//! 10,000 each frame meets a socket last touched long ago (its state is
//! out of the CPU caches, whatever the demux); `hot` sends on the same 64
//! connections every round (64 active among N idle), which isolates the
//! demux: what grows with N is then only the scan for the socket.

use std::time::Instant;

use pollsim_drivers::VirtNic;
use serde::Serialize;
use smoltcp::iface::{Config as IfConfig, Interface};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::kernel::netisr::{self, Netisr};
use crate::kernel::sockets::{SHARDS, SockRef};
use crate::kernel::time::Nanos;

/// Connection counts of the experiment.
pub const CONNS: [usize; 3] = [10, 1_000, 10_000];
/// Largest count accepted (client ports 20000..).
pub const MAX_CONNS: usize = 40_000;
const SERVER: ([u8; 6], [u8; 4]) = ([2, 0, 198, 18, 0, 2], [198, 18, 0, 2]);
const CLIENT: ([u8; 6], [u8; 4]) = ([2, 0, 198, 18, 0, 1], [198, 18, 0, 1]);
const PORT: u16 = 7;
const FIRST_CLIENT_PORT: u16 = 20_000;
/// Connections that send in one round.
const PER_ROUND: usize = 64;

/// One point of the experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// `spread` (all connections in turn) or `hot` (64 active among N).
    pub traffic: &'static str,
    /// Socket sets the server's netisr dispatches to (1: smoltcp's demux).
    pub shards: usize,
    /// Established connections.
    pub connections: usize,
    /// Frames timed.
    pub frames: u64,
    /// Netisr time per frame.
    pub ns_per_frame: f64,
}

struct Side {
    netisr: Netisr,
    nic: VirtNic,
    socks: Vec<SockRef>,
}

impl Side {
    fn new((mac, ip): ([u8; 6], [u8; 4]), shards: usize) -> Side {
        let ic = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(ic, &mut netisr::capabilities_device(), now(0));
        iface.update_ip_addrs(|a| {
            let [a0, a1, a2, a3] = ip;
            let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(
                Ipv4Address::new(a0, a1, a2, a3),
                24,
            )));
        });
        let mut netisr = Netisr::with_shards(shards);
        netisr.attach(iface);
        Side {
            netisr,
            nic: VirtNic::new("demux", mac, 1 << 17).expect("an in-memory NIC"),
            socks: Vec::new(),
        }
    }

    /// Egress; returns what it sent.
    fn egress(&mut self, t: u64) -> Vec<Vec<u8>> {
        self.netisr.egress(0, &mut self.nic, Nanos(t));
        self.nic.take_sent()
    }

    fn ingress_all(&mut self, frames: &[Vec<u8>], t: u64) {
        for f in frames {
            self.netisr.ingress(0, Nanos(t), f);
        }
        self.netisr.flush(0, &mut self.nic);
    }

    fn tcp(&mut self, i: usize) -> &mut tcp::Socket<'static> {
        self.netisr.sockets.get_mut::<tcp::Socket>(self.socks[i])
    }
}

fn now(t: u64) -> smoltcp::time::Instant {
    netisr::instant(Nanos(t))
}

fn socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 1024]),
        tcp::SocketBuffer::new(vec![0; 1024]),
    );
    s.set_ack_delay(None);
    s
}

/// Both sides with `n` connections established; `t` is the clock (ns).
fn establish(n: usize, shards: usize, t: &mut u64) -> (Side, Side) {
    let mut server = Side::new(SERVER, shards);
    let mut client = Side::new(CLIENT, SHARDS);
    for i in 0..n {
        let cport = FIRST_CLIENT_PORT + u16::try_from(i).expect("a client port");
        // The listener sits where the server's netisr will look for the flow.
        let k = server
            .netisr
            .sockets
            .tcp_shard(CLIENT.1, cport, SERVER.1, PORT);
        let mut l = socket();
        l.listen(PORT).expect("listen");
        server.socks.push(server.netisr.sockets.add(0, k, l));
        let k = client
            .netisr
            .sockets
            .tcp_shard(SERVER.1, PORT, CLIENT.1, cport);
        client.socks.push(client.netisr.sockets.add(0, k, socket()));
    }
    // Handshakes in chunks that fit the transmit queue, so none is lost
    // and no retransmission timer slows the set-up.
    let remote = (Ipv4Address::from(SERVER.1), PORT);
    for chunk in (0..n).collect::<Vec<_>>().chunks(128) {
        for &i in chunk {
            let cport = FIRST_CLIENT_PORT + u16::try_from(i).expect("a client port");
            client
                .netisr
                .sockets
                .connect_tcp(client.socks[i], remote, cport)
                .expect("connect");
        }
        for _ in 0..100 {
            *t += 1_000_000;
            let to_server = client.egress(*t);
            server.ingress_all(&to_server, *t);
            let to_client = server.egress(*t);
            client.ingress_all(&to_client, *t);
            if chunk
                .iter()
                .all(|&i| server.tcp(i).state() == tcp::State::Established)
            {
                break;
            }
        }
    }
    let up = (0..n)
        .filter(|&i| server.tcp(i).state() == tcp::State::Established)
        .count();
    assert_eq!(up, n, "connections not established");
    // Any listener of a shard takes any SYN there: index the server's
    // sockets by their peer, so that server socket i talks to client i.
    let mut by_peer = server.socks.clone();
    for &r in &server.socks {
        let s = server.netisr.sockets.get::<tcp::Socket>(r);
        let peer = s.remote_endpoint().expect("established").port;
        by_peer[usize::from(peer - FIRST_CLIENT_PORT)] = r;
    }
    server.socks = by_peer;
    (server, client)
}

/// The server's netisr cost per data frame with `n` connections and
/// `shards` socket sets, over about `frames` frames.
pub fn measure(n: usize, shards: usize, frames: u64, hot: bool) -> Point {
    let mut t = 1_000_000_000;
    let (mut server, mut client) = establish(n, shards, &mut t);
    let per_round = PER_ROUND.min(n);
    let rounds = (frames / per_round as u64).max(10);
    let (mut ns, mut timed) = (0u128, 0u64);
    let mut buf = [0u8; 64];
    for round in 0..rounds {
        t += 1_000_000;
        // Hot: the same connections, evenly spaced over the socket order
        // (smoltcp's scan stops at the first match: no favoured front).
        let first = (round as usize * per_round) % n;
        let conn = |k: usize| {
            if hot {
                k * n / per_round
            } else {
                (first + k) % n
            }
        };
        for k in 0..per_round {
            client.tcp(conn(k)).send_slice(&[0x5a; 32]).expect("send");
        }
        let data = client.egress(t);
        let start = Instant::now();
        for f in &data {
            server.netisr.ingress(0, Nanos(t), f);
        }
        ns += start.elapsed().as_nanos();
        timed += data.len() as u64;
        server.netisr.flush(0, &mut server.nic);
        let mut got = 0;
        for k in 0..per_round {
            let i = conn(k);
            loop {
                match server.tcp(i).recv_slice(&mut buf) {
                    Ok(m) if m > 0 => got += m,
                    _ => break,
                }
            }
        }
        assert_eq!(got, 32 * per_round, "data lost in round {round}");
        let acks = server.egress(t);
        client.ingress_all(&acks, t);
    }
    Point {
        traffic: if hot { "hot" } else { "spread" },
        shards,
        connections: n,
        frames: timed,
        ns_per_frame: ns as f64 / timed.max(1) as f64,
    }
}

/// Every count, with one socket set (before) and with `shards` (after;
/// the kernel uses [`SHARDS`]).
pub fn run(
    conns: &[usize],
    shards: usize,
    frames: u64,
    progress: &mut dyn FnMut(&Point),
) -> Vec<Point> {
    let mut out = Vec::new();
    for hot in [false, true] {
        for shards in [1, shards] {
            for &n in conns {
                let p = measure(n, shards, frames, hot);
                progress(&p);
                out.push(p);
            }
        }
    }
    out
}

/// The points as a table, with each series' ratio to its smallest count.
pub fn table(points: &[Point]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "{:<7} {:>7} {:>12} {:>14} {:>10}\n",
        "traffic", "shards", "connections", "ns/frame", "vs first"
    );
    for p in points {
        let base = points
            .iter()
            .find(|q| q.shards == p.shards && q.traffic == p.traffic)
            .map_or(1.0, |q| q.ns_per_frame);
        let _ = writeln!(
            s,
            "{:<7} {:>7} {:>12} {:>14.1} {:>9.2}x",
            p.traffic,
            p.shards,
            p.connections,
            p.ns_per_frame,
            p.ns_per_frame / base
        );
    }
    s
}

/// `{"demux":[{"traffic":…,"shards":…,"connections":…,"frames":…,"ns_per_frame":…},…]}`.
pub fn json(points: &[Point]) -> String {
    serde_json::json!({ "demux": points }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_reach_their_connections_with_and_without_shards() {
        for shards in [1, 16] {
            let p = measure(40, shards, 100, shards == 1);
            // Every round's 40 sends became 40 timed frames, none lost.
            assert_eq!(p.frames % 40, 0, "{p:?}");
            assert!(p.frames >= 400, "{p:?}");
            assert!(p.ns_per_frame > 0.0);
        }
        let t = table(&run(&[10, 20], 8, 20, &mut |_| {}));
        assert_eq!(t.lines().count(), 9, "{t}");
    }
}
