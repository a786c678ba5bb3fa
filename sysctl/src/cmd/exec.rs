//! Running an [`Invocation`]: requests, output lines and error lines.

use std::io::Write;

use super::{Arg, Invocation, JsonError, JsonOutput};
use crate::client::Transport;
use crate::proto::{
    ErrorBody, ErrorKind, MAX_REQUEST, NodeView, Reply, Request, SetResult, VERSION,
};

/// The prefix of every error line, as sysctl(8) prefixes its own name.
const PREFIX: &str = "pollsim sysctl: ";

/// A transport failure: no reply at all, so the run stops.
struct Fatal(String);

/// Runs `inv` against `t`, printing results on `out` and errors on `err`.
///
/// Returns the exit status: the number of failed arguments (a `-f` file
/// counts as one argument). A transport failure prints the transport's
/// message on `err` as is and returns 1. Write errors on `out` and `err`
/// (a closed pipe) are ignored, as the status already says what failed.
pub fn execute(
    inv: &Invocation,
    t: &mut dyn Transport,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut run = Run {
        inv,
        t,
        out,
        err,
        failures: 0,
        json: JsonOutput {
            v: VERSION,
            ..JsonOutput::default()
        },
    };
    if let Err(Fatal(message)) = run.all() {
        let _ = writeln!(run.err, "{message}");
        return 1;
    }
    if inv.json {
        run.json.ok = run.json.errors.is_empty();
        let text = serde_json::to_string_pretty(&run.json).unwrap_or_default();
        let _ = writeln!(run.out, "{text}");
    }
    i32::try_from(run.failures).unwrap_or(i32::MAX)
}

/// The state of one run.
struct Run<'a> {
    inv: &'a Invocation,
    t: &'a mut dyn Transport,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    failures: usize,
    json: JsonOutput,
}

impl Run<'_> {
    /// The file first, then `-a` (when no name is given), then each name.
    fn all(&mut self) -> Result<(), Fatal> {
        if let Some(path) = &self.inv.file {
            match std::fs::read_to_string(path) {
                Ok(text) => self.file(&text)?,
                Err(e) => {
                    let message = format!("{}: {e}", path.display());
                    self.report(&ErrorBody::new(ErrorKind::BadRequest, message), None);
                }
            }
        }
        if self.inv.args.is_empty() && self.inv.all {
            self.get("")?;
        }
        for arg in &self.inv.args {
            match arg {
                Arg::Get(name) if name.is_empty() => self.unknown(name),
                Arg::Get(name) => self.get(name)?,
                Arg::Set { name, value } => self.set(name, value)?,
            }
        }
        Ok(())
    }

    fn call(&mut self, req: &Request) -> Result<Reply, Fatal> {
        self.t.call(req).map_err(Fatal)
    }

    /// `name`: prints the leaf or every leaf below the prefix.
    fn get(&mut self, name: &str) -> Result<(), Fatal> {
        let reply = self.call(&Request::get(name))?;
        self.nodes(&reply.nodes);
        if let Some(error) = failure(&reply) {
            self.report(&error, None);
        }
        Ok(())
    }

    /// `name=value`: prints `name: old -> new`, or the current value (when
    /// the write reached the node) and the error.
    fn set(&mut self, name: &str, value: &str) -> Result<(), Fatal> {
        if name.is_empty() {
            self.unknown(name);
            return Ok(());
        }
        let reply = self.call(&Request::set(name, value))?;
        self.changes(&reply.set);
        self.nodes(&reply.nodes);
        if let Some(error) = failure(&reply) {
            self.report(&error, None);
        }
        Ok(())
    }

    /// `-f`: applies the `name=value` lines of `text` in order, in
    /// requests of at most [`MAX_REQUEST`] bytes, up to the first bad line.
    fn file(&mut self, text: &str) -> Result<(), Fatal> {
        let (lines, bad) = parse_file(text);
        for batch in batches(&lines) {
            let pairs = batch.iter().map(|a| (a.name.clone(), a.value.clone()));
            let reply = self.call(&Request::set_many(pairs.collect()))?;
            self.changes(&reply.set);
            self.nodes(&reply.nodes);
            if let Some(error) = failure(&reply) {
                let at = error.index.unwrap_or(reply.set.len()).min(batch.len() - 1);
                self.report(&error, Some(batch[at].line));
                return Ok(());
            }
        }
        if let Some((line, message)) = bad {
            self.report(&ErrorBody::new(ErrorKind::BadRequest, message), Some(line));
        }
        Ok(())
    }

    fn unknown(&mut self, name: &str) {
        let error = crate::SysctlError::UnknownOid(name.to_string());
        self.report(&ErrorBody::from_sysctl(&error), None);
    }

    /// Prints nodes read, in the form the flags ask for.
    fn nodes(&mut self, nodes: &[NodeView]) {
        if self.inv.json {
            self.json.nodes.extend_from_slice(nodes);
            return;
        }
        for node in nodes {
            let line = node_line(self.inv, node);
            let _ = writeln!(self.out, "{line}");
        }
    }

    /// Prints writes applied: `name: old -> new`.
    fn changes(&mut self, changes: &[SetResult]) {
        if self.inv.json {
            self.json.set.extend_from_slice(changes);
            return;
        }
        for change in changes {
            let line = change_line(self.inv, change);
            let _ = writeln!(self.out, "{line}");
        }
    }

    /// Counts a failed argument and prints its error line, unless `-q`
    /// hides an unknown name.
    fn report(&mut self, error: &ErrorBody, line: Option<usize>) {
        self.failures += 1;
        self.json.errors.push(JsonError {
            kind: error.kind,
            message: error.message.clone(),
            name: error.name.clone(),
            line,
        });
        if self.inv.quiet && error.kind == ErrorKind::UnknownOid {
            return;
        }
        let at = line.map(|n| format!(" at line {n}")).unwrap_or_default();
        let _ = writeln!(self.err, "{PREFIX}{}{at}", error.message);
    }
}

/// The error of a failed reply (a reply saying not ok without an error is
/// itself an error).
fn failure(reply: &Reply) -> Option<ErrorBody> {
    match (&reply.error, reply.ok) {
        (Some(error), _) => Some(error.clone()),
        (None, true) => None,
        (None, false) => Some(ErrorBody::new(
            ErrorKind::BadRequest,
            "request failed without a reason",
        )),
    }
}

/// The separator between name and value: `: `, or `=` with `-e`.
fn separator(inv: &Invocation) -> &'static str {
    if inv.equals { "=" } else { ": " }
}

/// A node as sysctl(8) prints it: `-N` name; `-d` [type: ]description;
/// `-t` type; otherwise the value; prefixed by `name: ` unless `-n`.
pub(super) fn node_line(inv: &Invocation, node: &NodeView) -> String {
    if inv.names_only {
        return node.name.clone();
    }
    let sep = separator(inv);
    let mut line = if inv.values_only {
        String::new()
    } else {
        format!("{}{sep}", node.name)
    };
    if inv.descriptions {
        if inv.types {
            line.push_str(&node.r#type);
            line.push_str(sep);
        }
        line.push_str(&node.description);
    } else if inv.types {
        line.push_str(&node.r#type);
    } else {
        line.push_str(&node.value_text());
    }
    line
}

/// A write as sysctl(8) prints it: `name: old -> new` (`-n`: `old -> new`,
/// `-N`: the name).
fn change_line(inv: &Invocation, change: &SetResult) -> String {
    if inv.names_only {
        change.name.clone()
    } else if inv.values_only {
        change.change_text()
    } else {
        format!("{}{}{}", change.name, separator(inv), change.change_text())
    }
}

/// One `name=value` line of a `-f` file.
#[derive(Debug, PartialEq, Eq)]
struct Assignment {
    line: usize,
    name: String,
    value: String,
}

/// The assignments of a `-f` file up to its first line that is not one,
/// and that line's number and message. `#` starts a comment; blank lines
/// and blanks around names and values are ignored.
fn parse_file(text: &str) -> (Vec<Assignment>, Option<(usize, String)>) {
    let mut found = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            let message = format!("invalid line '{line}': expected name=value");
            return (found, Some((i + 1, message)));
        };
        found.push(Assignment {
            line: i + 1,
            name: name.trim().to_string(),
            value: value.trim().to_string(),
        });
    }
    (found, None)
}

/// Splits assignments into runs whose `set_many` request fits in
/// [`MAX_REQUEST`] (an assignment too large alone goes alone, and the
/// server refuses it).
fn batches(all: &[Assignment]) -> Vec<&[Assignment]> {
    const ENVELOPE: usize = 64;
    let mut out = Vec::new();
    let (mut start, mut size) = (0, ENVELOPE);
    for (i, a) in all.iter().enumerate() {
        let pair = serde_json::to_string(&(&a.name, &a.value)).map_or(MAX_REQUEST, |s| s.len() + 1);
        if i > start && size + pair > MAX_REQUEST {
            out.push(&all[start..i]);
            (start, size) = (i, ENVELOPE);
        }
        size += pair;
    }
    if start < all.len() {
        out.push(&all[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_comments_and_blanks() {
        let text = "# header\n\n  a.b = 1 # why\nc.d=0x10\r\nnot an assignment\ne.f=2\n";
        let (found, bad) = parse_file(text);
        let names: Vec<_> = found
            .iter()
            .map(|a| (a.line, a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(names, [(3, "a.b", "1"), (4, "c.d", "0x10")]);
        assert_eq!(
            bad,
            Some((
                5,
                "invalid line 'not an assignment': expected name=value".into()
            ))
        );
    }

    #[test]
    fn batches_fit_in_a_request() {
        let big = "9".repeat(1000);
        let all: Vec<Assignment> = (0..200)
            .map(|i| Assignment {
                line: i,
                name: format!("n.{i}"),
                value: big.clone(),
            })
            .collect();
        let runs = batches(&all);
        assert!(runs.len() > 1);
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), 200);
        for run in &runs {
            let pairs = run
                .iter()
                .map(|a| (a.name.clone(), a.value.clone()))
                .collect();
            assert!(Request::set_many(pairs).to_line().len() <= MAX_REQUEST);
        }
        assert!(batches(&[]).is_empty());
    }
}
