//! The readiness contract, on real smoltcp sockets fed through the netisr.

use super::*;
use crate::bench::rig::Rig;

fn poll(rig: &mut Rig, budget: usize) -> Vec<usize> {
    let mut ev = Vec::new();
    rig.reactor.poll(&mut rig.netisr.sockets, &mut ev, budget);
    let mut t: Vec<usize> = ev.iter().map(|e| e.token.0).collect();
    t.sort_unstable();
    t
}

fn rig(n: usize, trigger: Trigger, backend: Backend) -> Rig {
    let mut r = Rig::new(n, trigger);
    r.reactor.set_backend(&mut r.netisr.sockets, backend);
    r
}

const BOTH: [Backend; 2] = [Backend::Ready, Backend::Scan];

#[test]
fn oneshot_gives_one_event_per_edge_until_rearmed() {
    for b in BOTH {
        let mut r = rig(8, Trigger::Oneshot, b);
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: nothing is ready yet");
        r.inject(3);
        r.inject(3);
        r.inject(5);
        assert_eq!(poll(&mut r, 64), vec![3, 5], "{b:?}");
        // Data remains on 3 but it is disarmed: no event, even on new data.
        r.inject(3);
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: disarmed");
        r.reactor.rearm(&mut r.netisr.sockets, Token(3)).unwrap();
        assert_eq!(poll(&mut r, 64), vec![3], "{b:?}: re-armed while ready");
        assert_eq!(r.drain(3), 3);
        r.reactor.rearm(&mut r.netisr.sockets, Token(3)).unwrap();
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: re-armed, drained");
        r.inject(3);
        assert_eq!(poll(&mut r, 64), vec![3], "{b:?}: the next edge");
        assert_eq!(r.reactor.stats.rearms, 2);
    }
}

#[test]
fn level_repeats_while_data_remains() {
    for b in BOTH {
        let mut r = rig(8, Trigger::Level, b);
        r.inject(2);
        r.inject(2);
        for _ in 0..3 {
            assert_eq!(poll(&mut r, 64), vec![2], "{b:?}: still ready");
        }
        assert_eq!(r.drain(2), 2);
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: drained");
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: drained");
        r.inject(2);
        r.inject(6);
        assert_eq!(poll(&mut r, 64), vec![2, 6], "{b:?}: ready again");
        assert_eq!(poll(&mut r, 64), vec![2, 6], "{b:?}: and again");
    }
}

#[test]
fn a_budget_defers_events_to_the_next_poll() {
    for b in BOTH {
        let mut r = rig(20, Trigger::Oneshot, b);
        for i in 0..10 {
            r.inject(i * 2);
        }
        let mut got = poll(&mut r, 4);
        assert_eq!(got.len(), 4, "{b:?}");
        got.extend(poll(&mut r, 4));
        got.extend(poll(&mut r, 4));
        got.sort_unstable();
        assert_eq!(got, (0..10).map(|i| i * 2).collect::<Vec<_>>(), "{b:?}");
        assert!(poll(&mut r, 4).is_empty());
    }
}

#[test]
fn scanned_counts_what_each_backend_examines() {
    let mut r = rig(50, Trigger::Oneshot, Backend::Ready);
    r.inject(7);
    poll(&mut r, 64);
    assert_eq!(r.reactor.stats.scanned, 1, "ready examines the ready list");
    r.reactor.set_backend(&mut r.netisr.sockets, Backend::Scan);
    r.inject(9);
    poll(&mut r, 64);
    // 49 armed registrations (7 was delivered and not re-armed).
    assert_eq!(r.reactor.stats.scanned, 1 + 49, "scan examines all armed");
    assert_eq!(r.reactor.stats.events, 2);
    assert_eq!(r.reactor.stats.polls, 2);
}

#[test]
fn deregistered_tokens_get_no_events_and_can_be_reused() {
    for b in BOTH {
        let mut r = rig(4, Trigger::Oneshot, b);
        r.reactor.deregister(Token(1)).unwrap();
        assert_eq!(
            r.reactor.deregister(Token(1)),
            Err(ReactorError::UnknownToken(Token(1)))
        );
        r.inject(1);
        assert!(poll(&mut r, 64).is_empty(), "{b:?}");
        assert_eq!(r.reactor.registered(), 3);
        // Register socket 1 again under a new token: the data is found.
        let h = r.handle(1);
        let err = r.reactor.register(
            &mut r.netisr.sockets,
            h,
            SockKind::Udp,
            Token(2),
            Interest::READABLE,
            Trigger::Oneshot,
        );
        assert_eq!(err, Err(ReactorError::TokenInUse(Token(2))));
        r.reactor
            .register(
                &mut r.netisr.sockets,
                h,
                SockKind::Udp,
                Token(100),
                Interest::READABLE,
                Trigger::Oneshot,
            )
            .unwrap();
        assert_eq!(poll(&mut r, 64), vec![100], "{b:?}");
    }
}

/// Traffic keeps arriving while the backend flips every few polls: every
/// datagram is read, through events only.
#[test]
fn no_event_is_lost_across_backend_switches_under_traffic() {
    for trigger in [Trigger::Oneshot, Trigger::Level] {
        let n = 200;
        let mut r = rig(n, trigger, Backend::Ready);
        let (mut sent, mut read) = (0usize, 0usize);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..400 {
            for _ in 0..(round % 7) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = usize::try_from(x % n as u64).unwrap();
                // At most 8 queued per socket (its buffer): keep below.
                if sent - read < 4 {
                    r.inject(i);
                    sent += 1;
                }
            }
            if round % 5 == 0 {
                let b = if r.reactor.backend() == Backend::Ready {
                    Backend::Scan
                } else {
                    Backend::Ready
                };
                r.reactor.set_backend(&mut r.netisr.sockets, b);
            }
            for t in poll(&mut r, 3) {
                read += r.drain(t);
                if trigger == Trigger::Oneshot {
                    r.reactor.rearm(&mut r.netisr.sockets, Token(t)).unwrap();
                }
            }
        }
        for _ in 0..100 {
            for t in poll(&mut r, 3) {
                read += r.drain(t);
                if trigger == Trigger::Oneshot {
                    r.reactor.rearm(&mut r.netisr.sockets, Token(t)).unwrap();
                }
            }
        }
        assert!(sent > 300, "{trigger:?}: traffic was sent ({sent})");
        assert_eq!(read, sent, "{trigger:?}: datagrams left unseen");
        assert_eq!(r.reactor.registered(), n);
    }
}

#[test]
fn edge_gives_one_event_per_arrival_and_none_for_readiness_left() {
    for b in BOTH {
        let mut r = rig(8, Trigger::Edge, b);
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: nothing is ready yet");
        // Two arrivals before a poll: one event.
        r.inject(3);
        r.inject(3);
        assert_eq!(poll(&mut r, 64), vec![3], "{b:?}");
        // Data remains, but nothing arrived: no event (level would repeat).
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: no new edge");
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: still none");
        // A new arrival is a new edge, even though the socket was ready.
        r.inject(3);
        r.inject(6);
        assert_eq!(poll(&mut r, 64), vec![3, 6], "{b:?}: new arrivals");
        assert_eq!(r.drain(3), 3, "{b:?}: every datagram was left");
        assert_eq!(r.drain(6), 1);
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: drained");
        // Drained and refilled between two polls: an edge, not lost.
        r.inject(3);
        assert_eq!(poll(&mut r, 64), vec![3], "{b:?}: the next edge");
        assert_eq!(r.drain(3), 1);
        // A waker that fired for data already drained is no event.
        r.inject(5);
        assert_eq!(r.drain(5), 1);
        assert!(poll(&mut r, 64).is_empty(), "{b:?}: spurious wake filtered");
        assert_eq!(r.reactor.stats.rearms, 0, "edge never needs a re-arm");
    }
}

#[test]
fn edge_survives_backend_switches() {
    let mut r = rig(8, Trigger::Edge, Backend::Ready);
    r.inject(1);
    r.reactor.set_backend(&mut r.netisr.sockets, Backend::Scan);
    assert_eq!(poll(&mut r, 64), vec![1], "the arrival before the switch");
    assert!(poll(&mut r, 64).is_empty());
    r.inject(2);
    r.reactor.set_backend(&mut r.netisr.sockets, Backend::Ready);
    assert_eq!(
        poll(&mut r, 64),
        vec![1, 2],
        "a switch re-reports what is ready"
    );
    assert!(poll(&mut r, 64).is_empty());
    r.inject(2);
    assert_eq!(poll(&mut r, 64), vec![2]);
}

#[test]
fn poll_returns_what_it_examined_scan_all_ready_only_the_ready() {
    let mut r = rig(100, Trigger::Oneshot, Backend::Scan);
    r.inject(7);
    let mut ev = Vec::new();
    assert_eq!(r.reactor.poll(&mut r.netisr.sockets, &mut ev, 64), 100);
    assert_eq!(r.reactor.watched(), 99, "7 is disarmed by its event");
    let mut r = rig(100, Trigger::Oneshot, Backend::Ready);
    r.inject(7);
    r.inject(9);
    assert_eq!(r.reactor.poll(&mut r.netisr.sockets, &mut ev, 64), 2);
    assert_eq!(r.reactor.stats.registers, 100);
}

#[test]
fn trigger_names_follow_their_index() {
    for (i, t) in Trigger::ALL.into_iter().enumerate() {
        assert_eq!(t.index(), i);
        assert_eq!(t.name(), Trigger::NAMES[i]);
    }
    assert_eq!(Trigger::Edge.name(), "edge");
}

/// With several pollsets, a registration belongs to pollset `slot %
/// pollsets` and a poll of one pollset delivers only its own, leaving the
/// others' readiness for their pollers; both backends.
#[test]
fn a_pollset_poll_delivers_only_its_own_registrations() {
    for b in BOTH {
        let mut r = rig(8, Trigger::Oneshot, b);
        r.reactor.pollers_mut().set_count(2).unwrap();
        r.reactor.set_pollsets(2).unwrap();
        for i in [1, 2, 5, 6] {
            r.inject(i);
        }
        r.reactor.note_activity();
        let set = |r: &mut Rig, s: usize| {
            let mut ev = Vec::new();
            r.reactor.poll_set(&mut r.netisr.sockets, &mut ev, 64, s);
            let mut t: Vec<usize> = ev.iter().map(|e| e.token.0).collect();
            t.sort_unstable();
            t
        };
        assert!(r.reactor.has_events_in(1), "{b:?}");
        assert_eq!(set(&mut r, 1), vec![1, 5], "{b:?}: odd slots");
        assert!(r.reactor.has_events_in(0), "{b:?}: set 0's wait");
        assert_eq!(set(&mut r, 0), vec![2, 6], "{b:?}: even slots");
        assert!(set(&mut r, 0).is_empty() && set(&mut r, 1).is_empty());
        // Arrivals: under ready, the four wakers that fired; under scan,
        // the netisr's first run after a pollset's scan, one per pollset.
        let before = r.reactor.pollers().stats.ready_events;
        r.reactor.note_activity();
        r.reactor.note_activity();
        let after = r.reactor.pollers().stats.ready_events;
        match b {
            Backend::Ready => assert_eq!((before, after), (4, 4)),
            Backend::Scan => assert_eq!(after - before, 2, "one per pollset"),
        }
    }
}
