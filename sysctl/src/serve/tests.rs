use proptest::prelude::*;

use super::*;
use crate::testmib::{Ctx, mib};

fn ask(ctx: &mut Ctx, line: &str) -> Reply {
    let reply = handle_line(&mib(), ctx, line.as_bytes());
    assert!(reply.ends_with('\n') && reply.matches('\n').count() == 1);
    serde_json::from_str(&reply).expect("reply is JSON")
}

fn kind(reply: &Reply) -> ErrorKind {
    assert!(!reply.ok);
    reply.error.as_ref().expect("error").kind
}

#[test]
fn get_leaf_prefix_and_all() {
    let mut c = Ctx::default();
    let r = ask(
        &mut c,
        r#"{"v":1,"op":"get","name":"kern.polling.burst_max"}"#,
    );
    assert!(r.ok && r.error.is_none());
    assert_eq!(r.nodes.len(), 1);
    let n = &r.nodes[0];
    assert_eq!(
        (n.name.as_str(), n.value_text()),
        ("kern.polling.burst_max", "150".into())
    );
    assert_eq!(
        (n.r#type.as_str(), n.access.as_str()),
        ("unsigned integer", "RW")
    );
    assert_eq!((n.min, n.max), (Some(10), Some(20_000)));
    let names = |r: &Reply| r.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
    let r = ask(&mut c, r#"{"v":1,"op":"get","name":"kern.polling"}"#);
    assert_eq!(
        names(&r),
        [
            "kern.polling.burst",
            "kern.polling.burst_max",
            "kern.polling.each_burst",
            "kern.polling.idle_poll",
            "kern.polling.user_frac"
        ]
    );
    let all = ask(&mut c, r#"{"v":1,"op":"get","name":""}"#);
    assert_eq!(all.nodes.len(), mib().len());
    assert_eq!(all.nodes[0].name, "dev.tap0.name");
    assert_eq!(all.nodes[0].value, serde_json::json!("tap0"));
    let cp = all.nodes.iter().find(|n| n.name == "kern.cp_time").unwrap();
    assert_eq!(cp.value, serde_json::json!([1, 0, 2, 3, 4]));
}

#[test]
fn get_unknown() {
    let r = ask(
        &mut Ctx::default(),
        r#"{"v":1,"op":"get","name":"kern.polling.foo"}"#,
    );
    assert_eq!(kind(&r), ErrorKind::UnknownOid);
    let e = r.error.unwrap();
    assert_eq!(e.message, "unknown oid 'kern.polling.foo'");
    assert_eq!(e.name.as_deref(), Some("kern.polling.foo"));
}

#[test]
fn set_reports_old_and_new() {
    let mut c = Ctx::default();
    let r = ask(
        &mut c,
        r#"{"v":1,"op":"set","name":"kern.polling.burst_max","value":"300"}"#,
    );
    assert!(r.ok);
    assert_eq!(r.set[0].change_text(), "150 -> 300");
    assert_eq!(c.burst_max, 300);
}

#[test]
fn set_errors() {
    let mut c = Ctx::default();
    let set = |c: &mut Ctx, name: &str, value: &str| {
        let req = Request::set(name, value).to_line();
        ask(c, &req)
    };
    let r = set(&mut c, "kern.polling.burst", "1");
    assert_eq!(kind(&r), ErrorKind::ReadOnly);
    assert_eq!(
        r.error.unwrap().message,
        "oid 'kern.polling.burst' is read only"
    );
    let r = set(&mut c, "kern.polling", "1");
    assert_eq!(
        r.error.unwrap().message,
        "oid 'kern.polling' isn't a leaf node"
    );
    let r = set(&mut c, "kern.polling.user_frac", "abc");
    assert_eq!(kind(&r), ErrorKind::InvalidInteger);
    assert_eq!(r.error.unwrap().message, "invalid unsigned integer 'abc'");
    let r = set(&mut c, "kern.offset", "abc");
    assert_eq!(r.error.unwrap().message, "invalid integer 'abc'");
    assert!(r.nodes.is_empty());
    assert_eq!(c, Ctx::default());
}

#[test]
fn out_of_range_and_rejected_show_the_current_node() {
    let mut c = Ctx::default();
    let r = ask(
        &mut c,
        &Request::set("kern.polling.user_frac", "150").to_line(),
    );
    assert_eq!(kind(&r), ErrorKind::OutOfRange);
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].value_text(), "50");
    let e = r.error.unwrap();
    assert_eq!(
        e.message,
        "kern.polling.user_frac=150: Invalid argument (0..99)"
    );
    assert_eq!(
        (e.name.as_deref(), e.index),
        (Some("kern.polling.user_frac"), None)
    );
    c.busy = true;
    let r = ask(
        &mut c,
        &Request::set("kern.polling.idle_poll", "1").to_line(),
    );
    assert_eq!(kind(&r), ErrorKind::Rejected);
    assert_eq!(r.nodes[0].value_text(), "0");
    assert_eq!(
        r.error.unwrap().message,
        "kern.polling.idle_poll: Device busy"
    );
}

#[test]
fn set_many_stops_at_first_error() {
    let mut c = Ctx::default();
    let pairs = [
        ("kern.polling.burst_max", "300"),
        ("kern.polling.each_burst", "20"),
        ("kern.polling.user_frac", "100"),
        ("kern.offset", "7"),
    ];
    let pairs = pairs.map(|(n, v)| (n.to_string(), v.to_string())).to_vec();
    let r = ask(&mut c, &Request::set_many(pairs).to_line());
    assert_eq!(kind(&r), ErrorKind::OutOfRange);
    assert_eq!(r.set.len(), 2);
    assert_eq!(r.error.as_ref().unwrap().index, Some(2));
    assert_eq!(r.nodes[0].name, "kern.polling.user_frac");
    assert_eq!(
        (c.burst_max, c.each_burst, c.user_frac, c.offset),
        (300, 20, 50, 0)
    );
    let r = ask(&mut c, &Request::set_many(vec![]).to_line());
    assert!(r.ok && r.set.is_empty());
}

#[test]
fn malformed_requests_get_bad_request() {
    let mut c = Ctx::default();
    for line in [
        "",
        "   ",
        "{",
        "null",
        "[1,2]",
        "\"v\"",
        r#"{"op":"get","name":""}"#,
        r#"{"v":1}"#,
        r#"{"v":1,"op":"frobnicate"}"#,
        r#"{"v":1,"op":"get"}"#,
        r#"{"v":1,"op":"get","name":5}"#,
        r#"{"v":1,"op":"set","name":"kern.offset","value":5}"#,
        r#"{"v":1,"op":"set_many","assignments":[["a"]]}"#,
        r#"{"v":1,"op":"get","name":"kern.hz""#,
    ] {
        assert_eq!(kind(&ask(&mut c, line)), ErrorKind::BadRequest, "{line}");
    }
    let reply = handle_line(&mib(), &mut c, b"\xff\xfe{\"v\":1}\n");
    let reply: Reply = serde_json::from_str(&reply).unwrap();
    assert_eq!(kind(&reply), ErrorKind::BadRequest);
    assert_eq!(c, Ctx::default());
}

#[test]
fn other_versions_are_refused_first() {
    let mut c = Ctx::default();
    for line in [
        r#"{"v":2,"op":"get","name":""}"#,
        r#"{"v":0,"op":"whatever"}"#,
        r#"{"v":-1}"#,
        r#"{"v":1e400}"#,
        r#"{"v":"1","op":"get","name":""}"#,
        r#"{"v":18446744073709551616,"op":"get","name":""}"#,
    ] {
        let r = ask(&mut c, line);
        let k = kind(&r);
        assert!(
            k == ErrorKind::UnsupportedVersion || k == ErrorKind::BadRequest,
            "{line}: {k:?}"
        );
    }
    let r = ask(&mut c, r#"{"v":2,"op":"get","name":""}"#);
    assert_eq!(
        r.error.unwrap().message,
        "unsupported protocol version 2 (this instance speaks 1)"
    );
    let req = Request {
        v: 7,
        op: Op::Get {
            name: String::new(),
        },
    };
    assert_eq!(
        kind(&execute(&mib(), &mut c, &req)),
        ErrorKind::UnsupportedVersion
    );
}

#[test]
fn crlf_and_deep_nesting() {
    let mut c = Ctx::default();
    assert!(
        ask(&mut c, "{\"v\":1,\"op\":\"get\",\"name\":\"kern.hz\"}\r\n")
            .error
            .unwrap()
            .kind
            == ErrorKind::UnknownOid
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = handle_line(&mib(), &mut c, deep.as_bytes());
    assert_eq!(
        kind(&serde_json::from_str(&r).unwrap()),
        ErrorKind::TooLarge
    );
    let deep = "[".repeat(50_000);
    assert_eq!(kind(&ask(&mut c, &deep)), ErrorKind::BadRequest);
}

#[test]
fn too_large() {
    let r: Reply = serde_json::from_str(&too_large_reply()).unwrap();
    assert_eq!(kind(&r), ErrorKind::TooLarge);
    let mut c = Ctx::default();
    let big = vec![b' '; MAX_REQUEST + 1];
    let r: Reply = serde_json::from_str(&handle_line(&mib(), &mut c, &big)).unwrap();
    assert_eq!(kind(&r), ErrorKind::TooLarge);
}

/// Near-valid requests: real ones, mangled.
fn near_valid() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just(String::new()),
        Just("kern.polling.burst_max".to_string()),
        Just("kern.polling".to_string()),
        Just("kern.offset".to_string()),
        "[a-z._]{0,24}",
        any::<String>(),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        Just("18446744073709551616".to_string()),
        any::<String>(),
    ];
    let request = (name, value, any::<u32>(), 0..4u8).prop_map(|(n, v, version, op)| {
        let version = if version % 4 == 0 { version } else { VERSION };
        let op = match op {
            0 => Op::Get { name: n },
            1 => Op::Set { name: n, value: v },
            _ => Op::SetMany {
                assignments: vec![(n, v.clone()), ("kern.offset".into(), v)],
            },
        };
        Request { v: version, op }.to_line().into_bytes()
    });
    (request, any::<usize>(), any::<u8>(), 0..4u8).prop_map(|(mut line, at, byte, how)| {
        let at = at % line.len().max(1);
        match how {
            0 => {}
            1 => line.truncate(at),
            2 => line[at] = byte,
            _ => line.insert(at, byte),
        }
        line
    })
}

proptest! {
    #[test]
    fn random_bytes_get_an_error_reply(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut c = Ctx::default();
        let line = handle_line(&mib(), &mut c, &bytes);
        let reply: Reply = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(reply.v, VERSION);
        prop_assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        // Random bytes make a valid request only by a miracle.
        if reply.ok {
            prop_assert!(serde_json::from_slice::<Request>(&bytes).is_ok());
        }
    }

    #[test]
    fn near_valid_requests_get_a_consistent_reply(line in near_valid()) {
        let mut c = Ctx::default();
        let text = handle_line(&mib(), &mut c, &line);
        let reply: Reply = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(reply.v, VERSION);
        prop_assert_eq!(reply.ok, reply.error.is_none());
        if !reply.ok && reply.set.is_empty() {
            prop_assert_eq!(&c, &Ctx::default(), "a failed request changed nothing");
        }
    }
}
