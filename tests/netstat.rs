//! `pollsim netstat -s` against a running instance on a real tap, in a
//! private network namespace: crafted frames with a bad UDP checksum, a
//! bad IPv4 header checksum and a bad UDP length, sent on the tap's kernel
//! side to udp-sink's port, are counted under their FreeBSD causes, none
//! as a full socket buffer, and the frame accounting still balances.

mod util;

use std::net::SocketAddrV4;
use std::time::Duration;

use pnet::datalink::{self, Channel};
use util::{ADDR, MAC, Running, eventually, lab, require_root_or_skip, run_pollsim, with_tap};

const BAD_UDP_SUM: u64 = 50;
const BAD_IP_SUM: u64 = 20;
const BAD_UDP_LEN: u64 = 10;
const GOOD: u64 = 5;
/// Offsets in an Ethernet/IPv4 (no options)/UDP frame.
const IP_SUM: usize = 14 + 10;
const UDP_LEN: usize = 34 + 4;
const UDP_SUM: usize = 34 + 6;

/// The frames, to udp-sink's port 9 from the tap's kernel side.
fn frames(tap_mac: [u8; 6]) -> Vec<Vec<u8>> {
    let src: SocketAddrV4 = "198.18.0.1:40000".parse().unwrap();
    let dst = SocketAddrV4::new(lab::bench_addr(ADDR), 9);
    let good = |i: u64| lab::udp_frame((tap_mac, src), (MAC, dst), &i.to_be_bytes());
    let mut out = Vec::new();
    for i in 0..BAD_UDP_SUM {
        let mut f = good(i);
        f[UDP_SUM] ^= 0x5a;
        out.push(f);
    }
    for i in 0..BAD_IP_SUM {
        let mut f = good(i);
        f[IP_SUM] ^= 0xff;
        out.push(f);
    }
    for i in 0..BAD_UDP_LEN {
        let mut f = good(i);
        f[UDP_LEN..UDP_LEN + 2].copy_from_slice(&200u16.to_be_bytes());
        out.push(f);
    }
    for i in 0..GOOD {
        out.push(good(i));
    }
    out
}

/// Send every frame once on tap0 (AF_PACKET).
fn send(frames: &[Vec<u8>]) {
    let iface = datalink::interfaces()
        .into_iter()
        .find(|i| i.name == "tap0")
        .expect("tap0");
    let Ok(Channel::Ethernet(mut tx, _rx)) = datalink::channel(&iface, Default::default()) else {
        panic!("an AF_PACKET channel on tap0");
    };
    for f in frames {
        tx.send_to(f, None)
            .expect("a send slot")
            .expect("the frame is sent");
    }
}

fn netstat_json(run: &Running) -> serde_json::Value {
    let (code, out, err) = run_pollsim(&["netstat", "-s", "--json", "--name", &run.name]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn at(v: &serde_json::Value, group: &str, name: &str) -> u64 {
    v[group][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {group}.{name} in {v}"))
}

#[test]
fn bad_checksums_and_lengths_are_counted_under_their_causes_not_as_full_sockets() {
    if !require_root_or_skip("bad_checksums_and_lengths_are_counted_under_their_causes") {
        return;
    }
    with_tap(|| {
        let run = Running::start(&[]);
        let tap_mac = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == "tap0")
            .and_then(|i| i.mac)
            .expect("tap0's MAC")
            .octets();
        send(&frames(tap_mac));
        let want = |v: &serde_json::Value| {
            at(v, "udp", "badsum") == BAD_UDP_SUM
                && at(v, "ip", "badsum") == BAD_IP_SUM
                && at(v, "udp", "badlen") == BAD_UDP_LEN
                && at(v, "udp", "delivered") == GOOD
        };
        let v = eventually(Duration::from_secs(20), || {
            let v = netstat_json(&run);
            want(&v).then_some(v)
        })
        .unwrap_or_else(|| panic!("counters never reached: {}", netstat_json(&run)));
        assert_eq!(at(&v, "udp", "fullsock"), 0, "{v}");
        assert_eq!(
            at(&v, "udp", "ipackets"),
            BAD_UDP_SUM + BAD_UDP_LEN + GOOD,
            "an IP header refused never reaches UDP: {v}"
        );
        assert!(at(&v, "ip", "total") >= BAD_UDP_SUM + BAD_IP_SUM + BAD_UDP_LEN + GOOD);
        assert_eq!(
            run.int("net.netisr.udp_sockbuf_drops"),
            0,
            "no socket-buffer drop"
        );
        assert_eq!(run.int("net.inet.udp.stats.badsum"), BAD_UDP_SUM);

        let (code, text, err) = run_pollsim(&["netstat", "-s", "--name", &run.name]);
        assert_eq!(code, 0, "{err}");
        assert!(text.contains("udp:\n\t"), "{text}");
        assert!(text.contains("\t\t50 with bad checksum\n"), "{text}");
        assert!(text.contains("\t20 bad header checksums\n"), "{text}");
        assert!(
            text.contains("\t\t10 with bad data length field\n"),
            "{text}"
        );
        assert!(
            text.contains("\t\t0 dropped due to full socket buffers\n"),
            "{text}"
        );

        let s = run.stop();
        assert!(s.text.contains("balance: ok"), "{}", s.text);
        let line = |label: &str| {
            s.text
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .and_then(|l| l.split_whitespace().rev().nth(1)?.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no '{label}' line in:\n{}", s.text))
        };
        assert_eq!(line("udp.badsum"), BAD_UDP_SUM);
        assert_eq!(line("ip.badsum"), BAD_IP_SUM);
        assert_eq!(line("udp.badlen"), BAD_UDP_LEN);
        assert_eq!(line("dropped: socket buffer full"), 0);
    });
}
