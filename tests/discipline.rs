//! Switching `dev.tap0.discipline` of a running, flooded instance with
//! `pollsim sysctl`, through every discipline and back: the node reads what
//! was set, an established TCP echo connection keeps echoing across every
//! switch, and at the end every frame offered is accounted for.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;

use util::{ADDR, MAC, Running, lab, require_root_or_skip, with_tap};

#[test]
fn a_flooded_instance_switches_discipline_without_losing_a_frame() {
    if !require_root_or_skip("a_flooded_instance_switches_discipline_without_losing_a_frame") {
        return;
    }
    let _serial = util::serial();
    with_tap(|| {
        lab::static_neigh("tap0", ADDR, MAC).expect("neighbour");
        let run = Running::start(&["--apps", "udp-sink,tcp-echo", "--mode", "interrupt"]);
        let echo: SocketAddrV4 = format!("{ADDR}:7").parse().unwrap();
        let mut conn =
            TcpStream::connect_timeout(&echo.into(), Duration::from_secs(5)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut talk = |tag: &str| {
            let msg = format!("still echoing under {tag}\n");
            conn.write_all(msg.as_bytes()).expect("write");
            let mut got = vec![0; msg.len()];
            conn.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("echo under {tag}: {e}"));
            assert_eq!(got, msg.as_bytes());
        };
        talk("interrupt");
        let order = [
            "napi",
            "mr",
            "polling",
            "napi",
            "interrupt",
            "mr",
            "polling",
        ];
        std::thread::scope(|s| {
            // A bounded flood (count and time) at a rate the echo survives
            // in every discipline: the switches happen under load.
            let dst: SocketAddrV4 = format!("{ADDR}:9").parse().unwrap();
            let flood = s.spawn(move || {
                lab::udp_blast(dst, 18, 400_000, Some(100_000), Duration::from_secs(6))
                    .expect("blast")
            });
            std::thread::sleep(Duration::from_millis(300));
            for d in order {
                let (code, out, err) = run.sysctl(&[&format!("dev.tap0.discipline={d}")]);
                assert_eq!(code, 0, "{d}: {out}{err}");
                let (_, now, _) = run.sysctl(&["-n", "dev.tap0.discipline"]);
                assert_eq!(now.trim(), d);
                std::thread::sleep(Duration::from_millis(300));
                talk(d);
            }
            let b = flood.join().expect("flood thread");
            assert!(b.sent > 10_000, "flood too small: {}", b.sent);
        });
        drop(conn);
        // A switch to polling and back reaches `dev.tap0.polling` too.
        assert_eq!(run.int("dev.tap0.polling"), 1);
        std::thread::sleep(Duration::from_millis(300));
        let s = run.stop();
        assert!(s.int("net.netisr.udp") > 10_000, "{}", s.text);
        assert!(s.text.contains("balance: ok"), "{}", s.text);
    });
}
