//! The control-socket protocol, version [`VERSION`].
//!
//! Newline-delimited JSON over a Unix stream socket: the client writes one
//! [`Request`] per line, the server answers each with exactly one [`Reply`]
//! line, in order. A request line holds at most [`MAX_REQUEST`] bytes
//! (without its newline); a longer one is answered with a
//! [`ErrorKind::TooLarge`] reply and skipped up to its newline.
//!
//! ```text
//! {"v":1,"op":"get","name":"kern.polling.burst_max"}
//! {"v":1,"ok":true,"nodes":[{"name":"kern.polling.burst_max",...}],"set":[],"error":null}
//! {"v":1,"op":"set","name":"kern.polling.user_frac","value":"150"}
//! {"v":1,"ok":false,"nodes":[...current...],"set":[],"error":{"kind":"out_of_range",...}}
//! {"v":1,"op":"set_many","assignments":[["kern.polling.burst_max","300"],["kern.hz","1"]]}
//! ```
//!
//! Every field of a reply is always present, so a client never guesses. The
//! version is checked before anything else: a request with another `v` gets
//! [`ErrorKind::UnsupportedVersion`], whatever the rest of it says.

use serde::{Deserialize, Serialize};

use crate::{Access, NodeInfo, SysctlError, Value};

/// The protocol version this crate speaks, carried in every message as `v`.
pub const VERSION: u32 = 1;

/// The longest request line a server reads, in bytes, without its newline.
pub const MAX_REQUEST: usize = 64 * 1024;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Reads the leaf `name`, or every leaf below the prefix `name`, sorted
    /// by name; `""` reads the whole MIB.
    Get {
        /// A leaf or a prefix of whole components.
        name: String,
    },
    /// Writes the leaf `name` from sysctl(8) text (decimal or `0x` hex).
    Set {
        /// The leaf to write.
        name: String,
        /// The new value as typed, e.g. `"300"`.
        value: String,
    },
    /// Writes several leaves in order, stopping at the first failure:
    /// nothing after the failing assignment is applied.
    SetMany {
        /// `(name, value)` pairs, applied first to last.
        assignments: Vec<(String, String)>,
    },
}

/// One request line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version; must be [`VERSION`].
    pub v: u32,
    /// The operation, flattened into the same object (`"op": "get"`, ...).
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    /// A `get` of a leaf or prefix (`""` for all) at this [`VERSION`].
    pub fn get(name: &str) -> Request {
        let name = name.to_string();
        Request {
            v: VERSION,
            op: Op::Get { name },
        }
    }

    /// A `set` of one leaf at this [`VERSION`].
    pub fn set(name: &str, value: &str) -> Request {
        let (name, value) = (name.to_string(), value.to_string());
        Request {
            v: VERSION,
            op: Op::Set { name, value },
        }
    }

    /// A `set_many` of `(name, value)` pairs at this [`VERSION`].
    pub fn set_many(assignments: Vec<(String, String)>) -> Request {
        Request {
            v: VERSION,
            op: Op::SetMany { assignments },
        }
    }

    /// The request as one line: JSON followed by `\n`.
    pub fn to_line(&self) -> String {
        to_line(self)
    }
}

/// A node as a reply shows it: its value and everything `sysctl -d`/`-t`
/// need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Full dotted name.
    pub name: String,
    /// `"integer"`, `"unsigned integer"`, `"string"` or `"opaque"`, as
    /// `sysctl -t` prints it.
    pub r#type: String,
    /// `"RO"` or `"RW"`.
    pub access: String,
    /// A JSON number, a string, or an array of numbers (opaque nodes).
    pub value: serde_json::Value,
    /// One-line description, as `sysctl -d` prints it.
    pub description: String,
    /// Lowest value ever accepted (documentation); `None` when read-only.
    pub min: Option<i64>,
    /// Highest value ever accepted (documentation); `None` when read-only.
    pub max: Option<i64>,
}

impl NodeView {
    /// The view of a node from its [`NodeInfo`] and current [`Value`].
    pub fn new(info: NodeInfo, value: &Value) -> NodeView {
        NodeView {
            name: info.name,
            r#type: info.kind.type_name().to_string(),
            access: match info.access {
                Access::ReadOnly => "RO",
                Access::ReadWrite => "RW",
            }
            .to_string(),
            value: value_to_json(value),
            description: info.description,
            min: info.min,
            max: info.max,
        }
    }

    /// The value as sysctl(8) prints it: `150`, the string as is, or the
    /// numbers of an opaque node separated by spaces.
    pub fn value_text(&self) -> String {
        json_text(&self.value)
    }
}

/// One write that was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetResult {
    /// The leaf written.
    pub name: String,
    /// The value before the write.
    pub old: serde_json::Value,
    /// The value read back after the write.
    pub new: serde_json::Value,
}

impl SetResult {
    /// sysctl(8)'s `old -> new` text.
    pub fn change_text(&self) -> String {
        format!("{} -> {}", json_text(&self.old), json_text(&self.new))
    }
}

/// What went wrong, in a form a program can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No node has this name and none lies below it.
    UnknownOid,
    /// A write to a read-only node.
    ReadOnly,
    /// A write to an interior node.
    NotALeaf,
    /// A write outside the node's bounds; the node kept its value.
    OutOfRange,
    /// The value is not an integer.
    InvalidInteger,
    /// The node's handler refused the value.
    Rejected,
    /// The line is not a valid request (bad UTF-8, bad JSON, bad fields).
    BadRequest,
    /// The line exceeds [`MAX_REQUEST`] bytes.
    TooLarge,
    /// The request's `v` is not [`VERSION`].
    UnsupportedVersion,
}

/// The error of a failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Its class.
    pub kind: ErrorKind,
    /// sysctl(8)'s message, e.g. `unknown oid 'kern.polling.foo'`.
    pub message: String,
    /// The node concerned, when there is one.
    pub name: Option<String>,
    /// For `set_many`: the index of the assignment that failed.
    pub index: Option<usize>,
}

impl ErrorBody {
    /// An error with no node and no index.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            kind,
            message: message.into(),
            name: None,
            index: None,
        }
    }

    /// The error for a [`SysctlError`], naming its node.
    pub fn from_sysctl(err: &SysctlError) -> ErrorBody {
        let (kind, name) = match err {
            SysctlError::UnknownOid(n) => (ErrorKind::UnknownOid, Some(n)),
            SysctlError::ReadOnly(n) => (ErrorKind::ReadOnly, Some(n)),
            SysctlError::NotALeaf(n) => (ErrorKind::NotALeaf, Some(n)),
            SysctlError::OutOfRange { name, .. } => (ErrorKind::OutOfRange, Some(name)),
            SysctlError::InvalidInteger(_) => (ErrorKind::InvalidInteger, None),
            SysctlError::Rejected { name, .. } => (ErrorKind::Rejected, Some(name)),
        };
        ErrorBody {
            kind,
            message: err.to_string(),
            name: name.cloned(),
            index: None,
        }
    }
}

/// One reply line. Every field is always present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version of the server, [`VERSION`].
    pub v: u32,
    /// Whether the whole request succeeded.
    pub ok: bool,
    /// `get`: the nodes read. A failed write that reached the node
    /// ([`ErrorKind::OutOfRange`], [`ErrorKind::Rejected`]): the node with
    /// its current, unchanged value, which sysctl(8) prints before the error.
    #[serde(default)]
    pub nodes: Vec<NodeView>,
    /// `set`, `set_many`: the writes applied, in order.
    #[serde(default)]
    pub set: Vec<SetResult>,
    /// Why the request failed, when `ok` is false.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

impl Reply {
    /// A successful, empty reply.
    pub fn ok() -> Reply {
        Reply {
            v: VERSION,
            ok: true,
            nodes: Vec::new(),
            set: Vec::new(),
            error: None,
        }
    }

    /// A failed reply carrying `error` and nothing else.
    pub fn failed(error: ErrorBody) -> Reply {
        Reply {
            ok: false,
            error: Some(error),
            ..Reply::ok()
        }
    }

    /// The reply as one line: JSON followed by `\n`.
    pub fn to_line(&self) -> String {
        to_line(self)
    }
}

/// Serializes a protocol message as one line. Our types hold only strings,
/// numbers and JSON values, so serialization cannot fail.
fn to_line<T: Serialize>(msg: &T) -> String {
    let mut line = serde_json::to_string(msg).unwrap_or_else(|e| {
        // Unreachable with our types; still answer with valid JSON.
        let body = ErrorBody::new(ErrorKind::BadRequest, format!("internal error: {e}"));
        format!(
            "{{\"v\":{VERSION},\"ok\":false,\"nodes\":[],\"set\":[],\"error\":{}}}",
            serde_json::to_string(&body).unwrap_or_else(|_| "null".into())
        )
    });
    line.push('\n');
    line
}

/// A node value as JSON: a number, a string, or an array of numbers.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Int(v) => serde_json::Value::from(*v),
        Value::Str(s) => serde_json::Value::from(s.as_str()),
        Value::List(items) => serde_json::Value::from(items.clone()),
    }
}

/// A JSON value as sysctl(8) prints it: strings without quotes, arrays as
/// their items separated by spaces.
fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            items.iter().map(json_text).collect::<Vec<_>>().join(" ")
        }
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[test]
    fn request_wire_form() {
        let line = Request::get("kern.hz").to_line();
        assert_eq!(line, "{\"v\":1,\"op\":\"get\",\"name\":\"kern.hz\"}\n");
        let set = Request::set("a.b", "5").to_line();
        assert_eq!(
            set,
            "{\"v\":1,\"op\":\"set\",\"name\":\"a.b\",\"value\":\"5\"}\n"
        );
        let many = Request::set_many(vec![("a.b".into(), "1".into())]);
        let back: Request = serde_json::from_str(&many.to_line()).unwrap();
        assert_eq!(back, many);
        assert!(many.to_line().contains("\"op\":\"set_many\""));
    }

    #[test]
    fn reply_round_trips_and_kinds_are_snake_case() {
        let mut reply = Reply::failed(ErrorBody::new(ErrorKind::UnsupportedVersion, "v2"));
        reply.nodes.push(NodeView::new(
            NodeInfo {
                name: "kern.cp_time".into(),
                kind: Kind::Opaque,
                access: Access::ReadOnly,
                description: "CPU time".into(),
                min: None,
                max: None,
            },
            &Value::List(vec![1, 2]),
        ));
        let line = reply.to_line();
        assert!(line.ends_with('\n'));
        assert!(line.contains("\"unsupported_version\""));
        assert!(line.contains("\"access\":\"RO\""));
        assert!(line.contains("\"type\":\"opaque\""));
        let back: Reply = serde_json::from_str(&line).unwrap();
        assert_eq!(back, reply);
        assert_eq!(back.nodes[0].value_text(), "1 2");
    }

    #[test]
    fn missing_lists_default_to_empty() {
        let r: Reply = serde_json::from_str("{\"v\":1,\"ok\":true}").unwrap();
        assert_eq!(r, Reply::ok());
    }

    #[test]
    fn value_texts() {
        assert_eq!(json_text(&value_to_json(&Value::Int(-3))), "-3");
        assert_eq!(json_text(&value_to_json(&Value::Str("x y".into()))), "x y");
        let change = SetResult {
            name: "a".into(),
            old: 150.into(),
            new: 300.into(),
        };
        assert_eq!(change.change_text(), "150 -> 300");
    }

    #[test]
    fn errors_name_their_node() {
        let err = SysctlError::OutOfRange {
            name: "a.b".into(),
            value: 150,
            min: 0,
            max: 99,
        };
        let body = ErrorBody::from_sysctl(&err);
        assert_eq!(body.kind, ErrorKind::OutOfRange);
        assert_eq!(body.name.as_deref(), Some("a.b"));
        assert_eq!(body.message, "a.b=150: Invalid argument (0..99)");
        let inv = ErrorBody::from_sysctl(&SysctlError::InvalidInteger("x".into()));
        assert_eq!((inv.kind, inv.name), (ErrorKind::InvalidInteger, None));
    }
}
