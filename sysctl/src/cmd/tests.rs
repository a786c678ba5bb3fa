use std::path::Path;

use super::*;
use crate::client::{Local, Transport};
use crate::proto::{Reply, Request};
use crate::testmib::{Ctx, mib};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn parse(args: &[&str]) -> Invocation {
    parse_args(&strings(args)).expect("valid arguments")
}

/// Runs `pollsim sysctl ARGS` against the test MIB: (status, stdout, stderr).
fn run(ctx: &mut Ctx, args: &[&str]) -> (i32, String, String) {
    let inv = parse(args);
    let m = mib();
    let mut t = Local::new(&m, ctx);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = execute(&inv, &mut t, &mut out, &mut err);
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (status, text(out), text(err))
}

fn ok(ctx: &mut Ctx, args: &[&str]) -> String {
    let (status, out, err) = run(ctx, args);
    assert_eq!((status, err.as_str()), (0, ""), "{args:?}");
    out
}

/// A `-f` file under the temp directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        let name = format!("pollsim-sysctl-{}-{tag}.conf", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn parses_every_argument_form() {
    let inv = parse(&["kern.hz", "kern.polling.burst_max=300", "a=b=c", "x="]);
    assert_eq!(
        inv.args,
        [
            Arg::Get("kern.hz".into()),
            Arg::Set {
                name: "kern.polling.burst_max".into(),
                value: "300".into()
            },
            Arg::Set {
                name: "a".into(),
                value: "b=c".into()
            },
            Arg::Set {
                name: "x".into(),
                value: String::new()
            },
        ]
    );
    assert_eq!(inv.instance, "default");
    assert!(!inv.json && inv.file.is_none());
}

#[test]
fn parses_combined_flags() {
    let inv = parse(&["-adeNnqtw"]);
    assert!(inv.all && inv.descriptions && inv.equals && inv.names_only);
    assert!(inv.values_only && inv.quiet && inv.types && inv.args.is_empty());
    let inv = parse(&["-n", "kern.hz", "-d", "--json", "--name", "lab"]);
    assert!(inv.values_only && inv.descriptions && inv.json);
    assert_eq!((inv.instance.as_str(), inv.args.len()), ("lab", 1));
    assert_eq!(parse(&["--name=x", "-a"]).instance, "x");
    let inv = parse(&["--", "-a"]);
    assert!(!inv.all);
    assert_eq!(inv.args, [Arg::Get("-a".into())]);
}

#[test]
fn parses_file_flags() {
    let file = |args: &[&str]| parse(args).file.unwrap();
    assert_eq!(file(&["-f", "a.conf"]), Path::new("a.conf"));
    assert_eq!(file(&["-fa.conf"]), Path::new("a.conf"));
    assert_eq!(file(&["-nfa.conf"]), Path::new("a.conf"));
    assert_eq!(file(&["-p", "b.conf"]), Path::new("b.conf"));
    assert_eq!(file(&["-pb.conf"]), Path::new("b.conf"));
    let inv = parse(&["-qf", "c.conf", "kern.hz"]);
    assert!(inv.quiet);
    assert_eq!(inv.args, [Arg::Get("kern.hz".into())]);
}

#[test]
fn usage_errors() {
    let err = |args: &[&str]| parse_args(&strings(args)).unwrap_err();
    assert_eq!(err(&[]), USAGE);
    assert_eq!(err(&["-n"]), USAGE);
    assert!(err(&["-h", "kern.hz"]).starts_with("pollsim sysctl: illegal option -- h\nusage: "));
    assert!(err(&["-V"]).contains("illegal option -- V"));
    assert!(err(&["-f"]).starts_with("pollsim sysctl: option requires an argument -- f\n"));
    assert!(err(&["kern.hz", "--name"]).contains("option requires an argument -- name"));
    assert!(err(&["--help"]).contains("unrecognized option '--help'"));
    assert!(err(&["--name", "../x", "-a"]).contains("invalid instance name"));
    assert!(err(&["--name=", "-a"]).contains("invalid instance name"));
}

#[test]
fn reads_a_leaf() {
    let mut c = Ctx::default();
    assert_eq!(
        ok(&mut c, &["kern.polling.burst_max"]),
        "kern.polling.burst_max: 150\n"
    );
    assert_eq!(ok(&mut c, &["kern.cp_time"]), "kern.cp_time: 1 0 2 3 4\n");
    assert_eq!(ok(&mut c, &["dev.tap0.name"]), "dev.tap0.name: tap0\n");
}

#[test]
fn writes_a_leaf() {
    let mut c = Ctx::default();
    let out = ok(&mut c, &["kern.polling.burst_max=300"]);
    assert_eq!(out, "kern.polling.burst_max: 150 -> 300\n");
    assert_eq!(c.burst_max, 300);
    assert_eq!(
        ok(&mut c, &["kern.offset=-0x10"]),
        "kern.offset: 0 -> -16\n"
    );
}

#[test]
fn prefix_and_all() {
    let mut c = Ctx::default();
    let out = ok(&mut c, &["kern.polling"]);
    assert_eq!(
        out,
        "kern.polling.burst: 5\nkern.polling.burst_max: 150\nkern.polling.each_burst: 5\n\
         kern.polling.idle_poll: 0\nkern.polling.user_frac: 50\n"
    );
    let all = ok(&mut c, &["-a"]);
    assert_eq!(all.lines().count(), mib().len());
    assert!(all.starts_with("dev.tap0.name: tap0\nkern.cp_time: 1 0 2 3 4\n"));
    assert_eq!(ok(&mut c, &["-a", "kern.offset"]), "kern.offset: 0\n");
}

#[test]
fn error_lines_are_sysctls() {
    let mut c = Ctx::default();
    let cases = [
        ("kern.polling.foo", "unknown oid 'kern.polling.foo'"),
        ("kern.polling.foo=1", "unknown oid 'kern.polling.foo'"),
        (
            "kern.polling.burst=1",
            "oid 'kern.polling.burst' is read only",
        ),
        ("kern.polling=1", "oid 'kern.polling' isn't a leaf node"),
        (
            "kern.polling.user_frac=abc",
            "invalid unsigned integer 'abc'",
        ),
        ("kern.offset=abc", "invalid integer 'abc'"),
        ("=5", "unknown oid ''"),
        ("", "unknown oid ''"),
    ];
    for (arg, message) in cases {
        let (status, out, err) = run(&mut c, &[arg]);
        assert_eq!(status, 1, "{arg}");
        assert_eq!(out, "", "{arg}");
        assert_eq!(err, format!("pollsim sysctl: {message}\n"), "{arg}");
    }
    assert_eq!(c, Ctx::default());
}

#[test]
fn out_of_range_prints_the_current_value_first() {
    let mut c = Ctx::default();
    let (status, out, err) = run(&mut c, &["kern.polling.user_frac=150"]);
    assert_eq!(status, 1);
    assert_eq!(out, "kern.polling.user_frac: 50\n");
    assert_eq!(
        err,
        "pollsim sysctl: kern.polling.user_frac=150: Invalid argument (0..99)\n"
    );
    c.busy = true;
    let (status, out, err) = run(&mut c, &["kern.polling.idle_poll=1"]);
    assert_eq!((status, out.as_str()), (1, "kern.polling.idle_poll: 0\n"));
    assert_eq!(err, "pollsim sysctl: kern.polling.idle_poll: Device busy\n");
}

#[test]
fn status_counts_failed_arguments() {
    let mut c = Ctx::default();
    let args = [
        "kern.nope",
        "kern.hz",
        "kern.polling.burst_max=20",
        "kern.polling.burst=1",
    ];
    let (status, out, err) = run(&mut c, &args);
    assert_eq!(status, 3);
    assert_eq!(out, "kern.polling.burst_max: 150 -> 20\n");
    assert_eq!(err.lines().count(), 3);
    assert_eq!(c.burst_max, 20, "the good argument was still applied");
}

#[test]
fn quiet_hides_unknown_names_only() {
    let mut c = Ctx::default();
    let (status, out, err) = run(&mut c, &["-q", "kern.nope", "kern.offset"]);
    assert_eq!(
        (status, out.as_str(), err.as_str()),
        (1, "kern.offset: 0\n", "")
    );
    let (status, _, err) = run(&mut c, &["-q", "kern.polling.burst=1"]);
    assert_eq!(
        (status, err.as_str()),
        (1, "pollsim sysctl: oid 'kern.polling.burst' is read only\n")
    );
}

#[test]
fn output_flags() {
    let mut c = Ctx::default();
    let leaf = "kern.polling.user_frac";
    assert_eq!(ok(&mut c, &["-e", leaf]), "kern.polling.user_frac=50\n");
    assert_eq!(ok(&mut c, &["-N", leaf]), "kern.polling.user_frac\n");
    assert_eq!(ok(&mut c, &["-n", leaf]), "50\n");
    assert_eq!(
        ok(&mut c, &["-t", leaf]),
        "kern.polling.user_frac: unsigned integer\n"
    );
    assert_eq!(ok(&mut c, &["-t", "kern.offset"]), "kern.offset: integer\n");
    assert_eq!(ok(&mut c, &["-nt", "kern.cp_time"]), "opaque\n");
    assert_eq!(
        ok(&mut c, &["-d", leaf]),
        "kern.polling.user_frac: Desired user fraction of cpu time\n"
    );
    assert_eq!(
        ok(&mut c, &["-nd", leaf]),
        "Desired user fraction of cpu time\n"
    );
    assert_eq!(
        ok(&mut c, &["-dt", "dev.tap0.name"]),
        "dev.tap0.name: string: Interface name\n"
    );
    assert_eq!(
        ok(&mut c, &["-de", "kern.offset"]),
        "kern.offset=A signed knob\n"
    );
    assert_eq!(ok(&mut c, &["-Na"]).lines().next(), Some("dev.tap0.name"));
    assert_eq!(ok(&mut c, &["-w", leaf]), "kern.polling.user_frac: 50\n");
}

#[test]
fn output_flags_on_writes() {
    let mut c = Ctx::default();
    assert_eq!(ok(&mut c, &["-n", "kern.offset=1"]), "0 -> 1\n");
    assert_eq!(ok(&mut c, &["-e", "kern.offset=2"]), "kern.offset=1 -> 2\n");
    assert_eq!(ok(&mut c, &["-N", "kern.offset=3"]), "kern.offset\n");
    assert_eq!(
        ok(&mut c, &["-w", "kern.offset=4"]),
        "kern.offset: 3 -> 4\n"
    );
}

#[test]
fn file_applies_lines_up_to_the_first_error() {
    let mut c = Ctx::default();
    let text = "# tuning\nkern.polling.burst_max=300\n\nkern.polling.each_burst = 20 # why\n\
                kern.polling.user_frac=150\nkern.offset=7\n";
    let f = TempFile::new("range", text);
    let (status, out, err) = run(&mut c, &["-f", f.path()]);
    assert_eq!(status, 1);
    assert_eq!(
        out,
        "kern.polling.burst_max: 150 -> 300\nkern.polling.each_burst: 5 -> 20\n\
         kern.polling.user_frac: 50\n"
    );
    assert_eq!(
        err,
        "pollsim sysctl: kern.polling.user_frac=150: Invalid argument (0..99) at line 5\n"
    );
    assert_eq!(
        (c.burst_max, c.each_burst, c.user_frac, c.offset),
        (300, 20, 50, 0)
    );
}

#[test]
fn file_with_a_bad_line_3() {
    let cases = [
        ("kern.nope=1", "unknown oid 'kern.nope' at line 3"),
        (
            "kern.polling.user_frac=abc",
            "invalid unsigned integer 'abc' at line 3",
        ),
        (
            "kern.polling.burst=1",
            "oid 'kern.polling.burst' is read only at line 3",
        ),
        (
            "kern.polling",
            "invalid line 'kern.polling': expected name=value at line 3",
        ),
    ];
    for (bad, message) in cases {
        let mut c = Ctx::default();
        let text = format!("kern.offset=1\nkern.polling.user_frac=20\n{bad}\nkern.offset=9\n");
        let f = TempFile::new("bad3", &text);
        let (status, out, err) = run(&mut c, &["-p", f.path()]);
        assert_eq!(status, 1, "{bad}");
        assert_eq!(
            out, "kern.offset: 0 -> 1\nkern.polling.user_frac: 50 -> 20\n",
            "{bad}"
        );
        assert_eq!(err, format!("pollsim sysctl: {message}\n"), "{bad}");
        assert_eq!((c.offset, c.user_frac), (1, 20), "{bad}");
    }
}

#[test]
fn file_then_names_and_a_missing_file() {
    let mut c = Ctx::default();
    let f = TempFile::new("ok", "kern.offset=5\n");
    let out = ok(&mut c, &[&format!("-f{}", f.path()), "kern.offset"]);
    assert_eq!(out, "kern.offset: 0 -> 5\nkern.offset: 5\n");
    let (status, out, err) = run(&mut c, &["-f", "/nonexistent/pollsim.conf"]);
    assert_eq!((status, out.as_str()), (1, ""));
    assert!(
        err.starts_with("pollsim sysctl: /nonexistent/pollsim.conf: "),
        "{err}"
    );
}

#[test]
fn json_output_parses() {
    let mut c = Ctx::default();
    let args = [
        "--json",
        "kern.polling",
        "kern.offset=3",
        "kern.polling.user_frac=150",
        "kern.x",
    ];
    let (status, out, err) = run(&mut c, &args);
    assert_eq!(status, 2);
    assert_eq!(err.lines().count(), 2);
    let doc: JsonOutput = serde_json::from_str(&out).unwrap();
    assert!(!doc.ok);
    assert_eq!(doc.v, crate::proto::VERSION);
    assert_eq!(
        doc.nodes.len(),
        6,
        "five below kern.polling, then user_frac's current value"
    );
    assert_eq!(doc.set[0].change_text(), "0 -> 3");
    let kinds: Vec<_> = doc.errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            crate::proto::ErrorKind::OutOfRange,
            crate::proto::ErrorKind::UnknownOid
        ]
    );
    let all: serde_json::Value = serde_json::from_str(&ok(&mut c, &["--json", "-a"])).unwrap();
    assert_eq!(all["ok"], serde_json::json!(true));
    assert_eq!(all["nodes"].as_array().unwrap().len(), mib().len());
}

#[test]
fn json_reports_file_lines() {
    let mut c = Ctx::default();
    let f = TempFile::new("json", "kern.offset=1\n\nkern.nope=2\n");
    let (status, out, _) = run(&mut c, &["--json", "-f", f.path()]);
    assert_eq!(status, 1);
    let doc: JsonOutput = serde_json::from_str(&out).unwrap();
    assert_eq!((doc.set.len(), doc.errors[0].line), (1, Some(3)));
}

/// A transport with no instance behind it.
struct Nobody;

impl Transport for Nobody {
    fn call(&mut self, _: &Request) -> Result<Reply, String> {
        Err("pollsim: no instance 'default' (is pollsim run running? socket x.sock)".into())
    }
}

#[test]
fn transport_failure_is_printed_as_is() {
    for json in [false, true] {
        let mut inv = parse(&["kern.hz", "kern.offset"]);
        inv.json = json;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(execute(&inv, &mut Nobody, &mut out, &mut err), 1);
        assert!(out.is_empty());
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "pollsim: no instance 'default' (is pollsim run running? socket x.sock)\n"
        );
    }
}

/// A transport answering `ok: false` with no error.
struct Mute;

impl Transport for Mute {
    fn call(&mut self, _: &Request) -> Result<Reply, String> {
        Ok(Reply {
            ok: false,
            ..Reply::ok()
        })
    }
}

#[test]
fn a_failed_reply_without_error_still_fails() {
    let inv = parse(&["kern.hz"]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(execute(&inv, &mut Mute, &mut out, &mut err), 1);
    assert!(!err.is_empty());
}
