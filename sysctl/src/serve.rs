//! The server side of the control socket, without any I/O.
//!
//! [`handle_line`] turns one request line into one reply line against a
//! [`Mib`] and its context; [`LineBuffer`] cuts the bytes a non-blocking
//! server reads into request lines, bounded by [`MAX_REQUEST`]. The caller
//! owns the socket, the event loop and the scheduling; nothing here blocks,
//! allocates more than the request it is given, or panics on any input.
//!
//! Bound: one request costs at most one MIB read per node (`get`) or one
//! write per assignment (`set`, `set_many`), after parsing at most
//! [`MAX_REQUEST`] bytes.

mod framer;

pub use framer::{Frame, LineBuffer};

use crate::proto::{
    ErrorBody, ErrorKind, MAX_REQUEST, NodeView, Op, Reply, Request, SetResult, VERSION,
    value_to_json,
};
use crate::{Kind, Mib, SysctlError};

/// Answers one request line (with or without its trailing `\n` or `\r\n`)
/// with one reply line (JSON followed by `\n`).
///
/// Never panics: invalid UTF-8, malformed JSON, a wrong version, unknown
/// operations or fields of the wrong type all get an error reply, and the
/// MIB is left untouched. A line longer than [`MAX_REQUEST`] gets
/// [`too_large_reply`].
pub fn handle_line<C>(mib: &Mib<C>, ctx: &mut C, line: &[u8]) -> String {
    handle(mib, ctx, line).to_line()
}

/// As [`handle_line`], returning the [`Reply`] itself (for a server in the
/// same process).
pub fn handle<C>(mib: &Mib<C>, ctx: &mut C, line: &[u8]) -> Reply {
    let line = strip_eol(line);
    if line.len() > MAX_REQUEST {
        return too_large();
    }
    match parse_request(line) {
        Ok(request) => execute(mib, ctx, &request),
        Err(error) => Reply::failed(error),
    }
}

/// Answers one frame of a [`LineBuffer`]: a line with [`handle_line`], an
/// oversized one with [`too_large_reply`].
pub fn handle_frame<C>(mib: &Mib<C>, ctx: &mut C, frame: &Frame) -> String {
    match frame {
        Frame::Line(line) => handle_line(mib, ctx, line),
        Frame::TooLarge => too_large_reply(),
    }
}

/// The reply line to a request longer than [`MAX_REQUEST`] bytes.
pub fn too_large_reply() -> String {
    too_large().to_line()
}

fn too_large() -> Reply {
    Reply::failed(ErrorBody::new(
        ErrorKind::TooLarge,
        format!("request longer than {MAX_REQUEST} bytes"),
    ))
}

/// Runs a parsed request against the MIB.
pub fn execute<C>(mib: &Mib<C>, ctx: &mut C, request: &Request) -> Reply {
    if request.v != VERSION {
        return Reply::failed(unsupported(&request.v.to_string()));
    }
    match &request.op {
        Op::Get { name } => match views(mib, ctx, name) {
            Ok(nodes) => Reply {
                nodes,
                ..Reply::ok()
            },
            Err(e) => Reply::failed(ErrorBody::from_sysctl(&e)),
        },
        Op::Set { name, value } => set_many(mib, ctx, std::slice::from_ref(&(name, value))),
        Op::SetMany { assignments } => {
            let pairs: Vec<(&String, &String)> = assignments.iter().map(|(n, v)| (n, v)).collect();
            let mut reply = set_many(mib, ctx, &pairs);
            if let Some(error) = &mut reply.error {
                error.index = Some(reply.set.len());
            }
            reply
        }
    }
}

/// Drops one trailing `\n`, then one trailing `\r`.
fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn bad(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorKind::BadRequest, message)
}

fn unsupported(v: &str) -> ErrorBody {
    let shown: String = v.chars().take(32).collect();
    ErrorBody::new(
        ErrorKind::UnsupportedVersion,
        format!("unsupported protocol version {shown} (this instance speaks {VERSION})"),
    )
}

/// Parses a request, checking the version before the rest so that a newer
/// client learns the version is the problem.
fn parse_request(line: &[u8]) -> Result<Request, ErrorBody> {
    let text = std::str::from_utf8(line)
        .map_err(|e| bad(format!("malformed request: not UTF-8 ({e})")))?;
    if text.trim().is_empty() {
        return Err(bad("empty request"));
    }
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("malformed request: {e}")))?;
    let Some(object) = json.as_object() else {
        return Err(bad("malformed request: not a JSON object"));
    };
    match object.get("v") {
        None => return Err(bad("malformed request: missing field `v`")),
        Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
        Some(v) => return Err(unsupported(&v.to_string())),
    }
    serde_json::from_value(json).map_err(|e| bad(format!("malformed request: {e}")))
}

/// The views of every leaf at or below `prefix`, sorted by name.
fn views<C>(mib: &Mib<C>, ctx: &C, prefix: &str) -> Result<Vec<NodeView>, SysctlError> {
    let infos = mib.list(prefix)?;
    let values = mib.dump(ctx, prefix)?;
    Ok(infos
        .into_iter()
        .zip(values)
        .map(|(info, (_, value))| NodeView::new(info, &value))
        .collect())
}

/// Applies `pairs` in order and stops at the first failure; the reply
/// lists the writes applied and, on failure, the error (without index).
fn set_many<C>(mib: &Mib<C>, ctx: &mut C, pairs: &[(&String, &String)]) -> Reply {
    let mut reply = Reply::ok();
    for (name, value) in pairs {
        match mib.set(ctx, name, value) {
            Ok((old, new)) => reply.set.push(SetResult {
                name: (*name).clone(),
                old: value_to_json(&old),
                new: value_to_json(&new),
            }),
            Err(e) => {
                // sysctl(8) shows the value a write reached but did not change.
                if matches!(
                    e,
                    SysctlError::OutOfRange { .. } | SysctlError::Rejected { .. }
                ) {
                    reply.nodes = views(mib, ctx, name).unwrap_or_default();
                }
                reply.ok = false;
                reply.error = Some(write_error(mib, name, &e));
                break;
            }
        }
    }
    reply
}

/// The error of a failed write, with sysctl(8)'s wording for the node's
/// type (`invalid unsigned integer 'abc'`).
fn write_error<C>(mib: &Mib<C>, name: &str, err: &SysctlError) -> ErrorBody {
    let mut body = ErrorBody::from_sysctl(err);
    if let SysctlError::InvalidInteger(text) = err {
        body.name = Some(name.to_string());
        if mib.info(name).is_ok_and(|i| i.kind == Kind::UInt) {
            body.message = format!("invalid unsigned integer '{text}'");
        }
    }
    body
}

#[cfg(test)]
mod tests;
