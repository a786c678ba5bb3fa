use super::*;

/// A toy kernel: two dependent knobs and a counter.
#[derive(Default)]
struct Ctx {
    burst_max: i64,
    each_burst: i64,
    ticks: u64,
    refuse: bool,
}

fn ctx() -> Ctx {
    Ctx {
        burst_max: 150,
        each_burst: 5,
        ..Ctx::default()
    }
}

fn mib() -> Mib<Ctx> {
    let mut mib: Mib<Ctx> = Mib::new();
    mib.add_rw_uint(
        "kern.polling.burst_max",
        "Max Polling burst size",
        (10, 20_000),
        |_| (10, 20_000),
        |c| c.burst_max,
        |c, v| {
            c.burst_max = v;
            if c.each_burst > v {
                c.each_burst = 10;
            }
            Ok(())
        },
    );
    mib.add_rw(
        "kern.polling.each_burst",
        "Max size of each burst",
        (1, 20_000),
        |c| (1, c.burst_max),
        |c| c.each_burst,
        |c, v| {
            if c.refuse {
                return Err("device busy".to_string());
            }
            c.each_burst = v;
            Ok(())
        },
    );
    mib.add_ro_uint("kern.polling.ticks", "Ticks seen", |c| c.ticks);
    mib.add_ro("kern.pollingx", "Not below kern.polling", |_| -1);
    mib.add_ro_list("kern.cp_time", "CPU time per state", |_| vec![1, 2, 3]);
    mib.add_ro_str("dev.tap0.name", "Interface name", |_| "tap0".into());
    mib
}

#[test]
fn get_reads_leaves() {
    let (m, c) = (mib(), ctx());
    assert_eq!(m.get(&c, "kern.polling.burst_max"), Ok(Value::Int(150)));
    assert_eq!(m.get(&c, "kern.cp_time"), Ok(Value::List(vec![1, 2, 3])));
    assert_eq!(m.get(&c, "dev.tap0.name"), Ok(Value::Str("tap0".into())));
    assert_eq!(m.len(), 6);
    assert!(!m.is_empty());
}

#[test]
fn set_accepts_both_bounds_and_returns_old_and_new() {
    let (m, mut c) = (mib(), ctx());
    let r = m.set(&mut c, "kern.polling.burst_max", "10");
    assert_eq!(r, Ok((Value::Int(150), Value::Int(10))));
    let r = m.set(&mut c, "kern.polling.burst_max", "20000");
    assert_eq!(r, Ok((Value::Int(10), Value::Int(20_000))));
}

#[test]
fn set_rejects_just_outside_and_keeps_value() {
    let (m, mut c) = (mib(), ctx());
    for bad in ["9", "20001"] {
        let err = m.set(&mut c, "kern.polling.burst_max", bad).unwrap_err();
        assert!(matches!(
            err,
            SysctlError::OutOfRange {
                min: 10,
                max: 20_000,
                ..
            }
        ));
        assert_eq!(c.burst_max, 150);
    }
}

#[test]
fn bounds_depend_on_context() {
    let (m, mut c) = (mib(), ctx());
    assert!(m.set(&mut c, "kern.polling.each_burst", "150").is_ok());
    assert!(m.set(&mut c, "kern.polling.each_burst", "151").is_err());
    m.set(&mut c, "kern.polling.burst_max", "20").unwrap();
    assert_eq!(c.each_burst, 10, "dependent state applied by the setter");
    let err = m.set(&mut c, "kern.polling.each_burst", "21").unwrap_err();
    assert_eq!(
        err.to_string(),
        "kern.polling.each_burst=21: Invalid argument (1..20)"
    );
    assert!(m.set(&mut c, "kern.polling.each_burst", "20").is_ok());
    assert!(m.set(&mut c, "kern.polling.each_burst", "0").is_err());
    assert_eq!(c.each_burst, 20);
}

#[test]
fn read_only_refuses_writes() {
    let (m, mut c) = (mib(), ctx());
    let err = m.set(&mut c, "kern.polling.ticks", "5").unwrap_err();
    assert_eq!(err, SysctlError::ReadOnly("kern.polling.ticks".into()));
    assert_eq!(c.ticks, 0);
}

#[test]
fn handler_may_reject() {
    let (m, mut c) = (mib(), ctx());
    c.refuse = true;
    let err = m.set(&mut c, "kern.polling.each_burst", "7").unwrap_err();
    assert_eq!(err.to_string(), "kern.polling.each_burst: device busy");
    assert_eq!(c.each_burst, 5);
}

#[test]
fn error_messages_are_sysctls() {
    let (m, mut c) = (mib(), ctx());
    let msg = |e: SysctlError| e.to_string();
    assert_eq!(
        msg(m.get(&c, "kern.polling.foo").unwrap_err()),
        "unknown oid 'kern.polling.foo'"
    );
    assert_eq!(
        msg(m.set(&mut c, "kern.polling.ticks", "1").unwrap_err()),
        "oid 'kern.polling.ticks' is read only"
    );
    assert_eq!(
        msg(m.get(&c, "kern.polling").unwrap_err()),
        "oid 'kern.polling' isn't a leaf node"
    );
    assert_eq!(
        msg(m.set(&mut c, "kern.polling.burst_max", "9").unwrap_err()),
        "kern.polling.burst_max=9: Invalid argument (10..20000)"
    );
    assert_eq!(
        msg(m.set(&mut c, "kern.polling.burst_max", "lots").unwrap_err()),
        "invalid integer 'lots'"
    );
}

#[test]
fn not_a_leaf_and_unknown() {
    let (m, mut c) = (mib(), ctx());
    assert_eq!(m.get(&c, "kern"), Err(SysctlError::NotALeaf("kern".into())));
    assert_eq!(
        m.set(&mut c, "kern.polling", "1"),
        Err(SysctlError::NotALeaf("kern.polling".into()))
    );
    assert_eq!(
        m.get(&c, "kern.poll"),
        Err(SysctlError::UnknownOid("kern.poll".into()))
    );
    assert_eq!(m.get(&c, ""), Err(SysctlError::UnknownOid(String::new())));
}

#[test]
fn list_by_whole_components() {
    let m = mib();
    let names =
        |p: &str| -> Vec<String> { m.list(p).unwrap().into_iter().map(|i| i.name).collect() };
    assert_eq!(
        names("kern.polling"),
        [
            "kern.polling.burst_max",
            "kern.polling.each_burst",
            "kern.polling.ticks"
        ]
    );
    assert_eq!(names("kern.pollingx"), ["kern.pollingx"]);
    assert_eq!(names("").len(), 6);
    assert_eq!(
        m.list("kern.poll"),
        Err(SysctlError::UnknownOid("kern.poll".into()))
    );
}

#[test]
fn list_reports_kind_access_and_static_bounds() {
    let m = mib();
    let info = m.info("kern.polling.each_burst").unwrap();
    assert_eq!(info.kind, Kind::Int);
    assert_eq!(info.access, Access::ReadWrite);
    assert_eq!((info.min, info.max), (Some(1), Some(20_000)));
    assert_eq!(info.description, "Max size of each burst");
    let ticks = m.info("kern.polling.ticks").unwrap();
    assert_eq!(ticks.kind.type_name(), "unsigned integer");
    assert_eq!((ticks.access, ticks.min), (Access::ReadOnly, None));
    assert_eq!(m.info("kern.cp_time").unwrap().kind.type_name(), "opaque");
    assert_eq!(m.info("dev.tap0.name").unwrap().kind.type_name(), "string");
    assert_eq!(Kind::Int.type_name(), "integer");
}

#[test]
fn dump_is_sorted_with_values() {
    let (m, c) = (mib(), ctx());
    let lines: Vec<String> = m
        .dump(&c, "kern")
        .unwrap()
        .iter()
        .map(|(n, v)| format_line(n, v))
        .collect();
    assert_eq!(
        lines,
        [
            "kern.cp_time: 1 2 3",
            "kern.polling.burst_max: 150",
            "kern.polling.each_burst: 5",
            "kern.polling.ticks: 0",
            "kern.pollingx: -1",
        ]
    );
    assert!(m.dump(&c, "net").is_err());
}

#[test]
fn empty_mib_lists_nothing() {
    let m: Mib<Ctx> = Mib::default();
    assert!(m.is_empty());
    assert_eq!(m.list(""), Ok(vec![]));
    assert!(m.list("kern").is_err());
}

#[test]
fn parses_decimal_and_hex() {
    assert_eq!(parse_int("150"), Ok(150));
    assert_eq!(parse_int("-3"), Ok(-3));
    assert_eq!(parse_int("+3"), Ok(3));
    assert_eq!(parse_int("0x1F"), Ok(31));
    assert_eq!(parse_int("0X10"), Ok(16));
    assert_eq!(parse_int("-0x10"), Ok(-16));
    assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
    for bad in [
        "",
        "-",
        "0x",
        "0x-5",
        "--5",
        "12a",
        "1.5",
        "9223372036854775808",
    ] {
        assert_eq!(parse_int(bad), Err(SysctlError::InvalidInteger(bad.into())));
    }
}

#[test]
fn set_accepts_hex_and_surrounding_blanks() {
    let (m, mut c) = (mib(), ctx());
    m.set(&mut c, "kern.polling.burst_max", " 0x20 ").unwrap();
    assert_eq!(c.burst_max, 32);
}

#[test]
fn value_display() {
    assert_eq!(Value::Int(150).to_string(), "150");
    assert_eq!(Value::Str("x y".into()).to_string(), "x y");
    assert_eq!(Value::List(vec![]).to_string(), "");
    assert_eq!(format_line("kern.hz", &Value::Int(1000)), "kern.hz: 1000");
}

#[test]
#[should_panic(expected = "registered twice")]
fn duplicate_panics() {
    let mut m = mib();
    m.add_ro("kern.polling.ticks", "again", |_| 0);
}

#[test]
#[should_panic(expected = "'a.b' is a leaf")]
fn leaf_then_child_panics() {
    let mut m: Mib<Ctx> = Mib::new();
    m.add_ro("a.b", "leaf", |_| 0);
    m.add_ro("a.b.c", "child", |_| 0);
}

#[test]
#[should_panic(expected = "'a.b.c' lies below it")]
fn child_then_leaf_panics() {
    let mut m: Mib<Ctx> = Mib::new();
    m.add_ro("a.b.c", "child", |_| 0);
    m.add_ro("a.b", "leaf", |_| 0);
}

#[test]
#[should_panic(expected = "invalid oid name")]
fn bad_name_panics() {
    let mut m: Mib<Ctx> = Mib::new();
    m.add_ro("Kern.Hz", "upper case", |_| 0);
}

#[test]
fn a_checked_choice_knob_may_refuse_a_valid_name() {
    // (value, started): a tunable read-only once started.
    let mut m: Mib<(usize, bool)> = Mib::new();
    m.add_rw_choice_checked(
        "user.app.trigger",
        "how the app is told",
        &["level", "edge", "oneshot"],
        |c| c.0,
        |c, i| {
            if c.1 {
                return Err("read-only once the app has started".into());
            }
            c.0 = i;
            Ok(())
        },
    );
    let mut c = (2, false);
    m.set(&mut c, "user.app.trigger", "edge").unwrap();
    assert_eq!(m.get(&c, "user.app.trigger"), Ok(Value::Str("edge".into())));
    assert!(matches!(
        m.set(&mut c, "user.app.trigger", "lvl"),
        Err(SysctlError::Rejected { .. })
    ));
    c.1 = true;
    let err = m.set(&mut c, "user.app.trigger", "level").unwrap_err();
    assert_eq!(
        err.to_string(),
        "user.app.trigger: read-only once the app has started"
    );
    assert_eq!(c.0, 1, "a refused write changes nothing");
}

#[test]
fn a_choice_knob_takes_only_its_names() {
    let mut m: Mib<usize> = Mib::new();
    m.add_rw_choice(
        "machdep.idle",
        "currently selected idle function",
        &["hlt", "spin"],
        |c| *c,
        |c, i| *c = i,
    );
    let mut c = 0usize;
    assert_eq!(m.get(&c, "machdep.idle"), Ok(Value::Str("hlt".into())));
    let (old, new) = m.set(&mut c, "machdep.idle", " spin ").unwrap();
    assert_eq!(
        (old, new, c),
        (Value::Str("hlt".into()), Value::Str("spin".into()), 1)
    );
    let err = m.set(&mut c, "machdep.idle", "1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "machdep.idle: invalid value '1' (hlt, spin)"
    );
    assert_eq!(c, 1, "a refused write changes nothing");
    let info = m.info("machdep.idle").unwrap();
    assert_eq!((info.kind, info.min, info.max), (Kind::Str, None, None));
}
