//! `pollsim sysctl`: the sysctl(8) front end, with FreeBSD's flags, output
//! and error manners, talking to a MIB through any [`Transport`].
//!
//! Mirrors `sbin/sysctl/sysctl.c`: combined flags (`-adN`, `-fFILE`), the
//! `name: value` and `name: old -> new` lines, `-d`/`-t`/`-n`/`-N`/`-e`/`-q`,
//! `-f` files with ` at line N` in their errors, and an exit status equal
//! to the number of arguments that failed (1 for a usage error). It differs
//! in that `-f` stops at the first bad line (nothing after it is applied,
//! using one `set_many` request), `--json` prints one JSON document
//! ([`JsonOutput`]) instead of text, and `--name` picks the instance, whose
//! socket the caller opens.
//!
//! [`Transport`]: crate::client::Transport

mod exec;

pub use exec::execute;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::proto::{ErrorKind, NodeView, SetResult};

/// The instance `--name` picks when not given.
pub const DEFAULT_INSTANCE: &str = "default";

/// The usage text, as printed on a usage error.
pub const USAGE: &str = "\
usage: pollsim sysctl [--name NAME] [-deNnqtw] [--json] [-f file] name[=value] ...
       pollsim sysctl [--name NAME] [-deNnqtw] [--json] -a";

/// One positional argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// `name`: read a leaf, or every leaf below a prefix.
    Get(String),
    /// `name=value`: write a leaf.
    Set {
        /// The leaf.
        name: String,
        /// The new value as typed.
        value: String,
    },
}

impl Arg {
    /// `name=value` (split at the first `=`) or `name`.
    pub fn parse(text: &str) -> Arg {
        match text.split_once('=') {
            Some((name, value)) => Arg::Set {
                name: name.to_string(),
                value: value.to_string(),
            },
            None => Arg::Get(text.to_string()),
        }
    }
}

/// A parsed command line of `pollsim sysctl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `-a`: print every node (when no name is given).
    pub all: bool,
    /// `-d`: print descriptions, `name: description`.
    pub descriptions: bool,
    /// `-e`: separate name and value with `=` instead of `: `.
    pub equals: bool,
    /// `-N`: print names only.
    pub names_only: bool,
    /// `-n`: print values only.
    pub values_only: bool,
    /// `-q`: say nothing about unknown names (they still count as failed).
    pub quiet: bool,
    /// `-t`: print types, `name: type`.
    pub types: bool,
    /// `-f FILE` or `-p FILE`: apply the `name=value` lines of a file.
    pub file: Option<PathBuf>,
    /// `--json`: print one [`JsonOutput`] document on stdout.
    pub json: bool,
    /// `--name NAME`: the instance to talk to.
    pub instance: String,
    /// The positional arguments, in order.
    pub args: Vec<Arg>,
}

impl Default for Invocation {
    fn default() -> Self {
        Invocation {
            all: false,
            descriptions: false,
            equals: false,
            names_only: false,
            values_only: false,
            quiet: false,
            types: false,
            file: None,
            json: false,
            instance: DEFAULT_INSTANCE.to_string(),
            args: Vec::new(),
        }
    }
}

/// What `--json` prints: everything read, written and refused, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonOutput {
    /// The protocol version of the node and result views.
    pub v: u32,
    /// Whether every argument succeeded.
    pub ok: bool,
    /// The nodes read, and the current node of each write refused as out
    /// of range or by its handler.
    pub nodes: Vec<NodeView>,
    /// The writes applied.
    pub set: Vec<SetResult>,
    /// The failures, one per failed argument, also printed on stderr.
    pub errors: Vec<JsonError>,
}

/// One failure in [`JsonOutput`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonError {
    /// Its class.
    pub kind: ErrorKind,
    /// The message as on stderr, without the `pollsim sysctl: ` prefix.
    pub message: String,
    /// The node concerned, when there is one.
    pub name: Option<String>,
    /// For a `-f` file: the line (from 1).
    pub line: Option<usize>,
}

/// Parses the arguments after `pollsim sysctl`.
///
/// Flags combine (`-adN`), a file follows `-f`/`-p` attached or as the next
/// argument, `--` ends the flags, and flags may follow names. `-w` is
/// accepted and ignored. On error, returns the text to print on stderr
/// (lines without a final newline): the reason and [`USAGE`]; the exit
/// status is then 1.
pub fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let mut it = args.iter();
    let mut flags_done = false;
    while let Some(arg) = it.next() {
        if flags_done || arg == "-" || !arg.starts_with('-') {
            inv.args.push(Arg::parse(arg));
        } else if arg == "--" {
            flags_done = true;
        } else if arg == "--json" {
            inv.json = true;
        } else if arg == "--name" {
            let name = it
                .next()
                .ok_or_else(|| usage("option requires an argument -- name"))?;
            inv.instance = instance_name(name)?;
        } else if let Some(name) = arg.strip_prefix("--name=") {
            inv.instance = instance_name(name)?;
        } else if arg.starts_with("--") {
            return Err(usage(&format!("unrecognized option '{arg}'")));
        } else {
            short_flags(&mut inv, &arg[1..], &mut it)?;
        }
    }
    if inv.args.is_empty() && !inv.all && inv.file.is_none() {
        return Err(USAGE.to_string());
    }
    Ok(inv)
}

/// Applies one group of short flags, e.g. `adN` or `fFILE`.
fn short_flags<'a>(
    inv: &mut Invocation,
    group: &str,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<(), String> {
    for (i, flag) in group.char_indices() {
        match flag {
            'a' => inv.all = true,
            'd' => inv.descriptions = true,
            'e' => inv.equals = true,
            'N' => inv.names_only = true,
            'n' => inv.values_only = true,
            'q' => inv.quiet = true,
            't' => inv.types = true,
            'w' => {}
            'f' | 'p' => {
                let attached = &group[i + flag.len_utf8()..];
                let file = if attached.is_empty() {
                    rest.next()
                        .ok_or_else(|| usage(&format!("option requires an argument -- {flag}")))?
                } else {
                    attached
                };
                inv.file = Some(PathBuf::from(file));
                return Ok(());
            }
            other => return Err(usage(&format!("illegal option -- {other}"))),
        }
    }
    Ok(())
}

/// An instance name: non-empty, no `/`, so that it names a socket file.
fn instance_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(usage(&format!("invalid instance name '{name}'")));
    }
    Ok(name.to_string())
}

fn usage(reason: &str) -> String {
    format!("pollsim sysctl: {reason}\n{USAGE}")
}

#[cfg(test)]
mod tests;
