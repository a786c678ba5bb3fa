//! A MIB in the manner of FreeBSD's sysctl(9): a tree of named, typed nodes
//! whose values live in a context `C` (for pollsim, the simulated kernel).
//!
//! Mirrors the parts of `sys/kern/kern_sysctl.c` that a user of sysctl(8)
//! sees: dotted names (`kern.polling.burst`), read-only and read-write
//! nodes, a description per node (`sysctl -d`), a type (`sysctl -t`),
//! handlers that refuse a bad value with `EINVAL` rather than clamp it, and
//! the `name: value` output form. It differs in that nodes are addressed by
//! name only (no numeric OIDs), interior nodes are implied by their leaves,
//! and a node's getter and setter are closures over `C` instead of pointers
//! into kernel memory, so one MIB can serve any number of kernels.
//!
//! Around the MIB: [`proto`], the versioned newline-delimited JSON protocol
//! of an instance's control socket; [`serve`], its server side without I/O
//! (a request line in, a reply line out, never a panic); [`client`], a
//! blocking client and the [`client::Transport`] seam; and [`cmd`], the
//! sysctl(8) front end with FreeBSD's flags, output and exit status.
//!
//! This crate knows nothing of networking.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod cmd;
mod mib;
mod name;
pub mod proto;
pub mod serve;

pub use mib::Mib;

use std::fmt;

/// Whether a node accepts writes (`CTLFLAG_RD` or `CTLFLAG_RW`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reads only; a write is refused with [`SysctlError::ReadOnly`].
    ReadOnly,
    /// Reads and writes, within the node's bounds.
    ReadWrite,
}

/// The type of a node's value, as `sysctl -t` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A signed integer (`CTLTYPE_INT`).
    Int,
    /// An unsigned integer (`CTLTYPE_UINT`).
    UInt,
    /// A string (`CTLTYPE_STRING`).
    Str,
    /// A structure or array shown as a list of numbers (`CTLTYPE_OPAQUE`).
    Opaque,
}

impl Kind {
    /// The name `sysctl -t` prints for this type.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Int => "integer",
            Kind::UInt => "unsigned integer",
            Kind::Str => "string",
            Kind::Opaque => "opaque",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// The value of a node as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer (signed or unsigned node).
    Int(i64),
    /// A string.
    Str(String),
    /// A list of numbers, e.g. `kern.cp_time`.
    List(Vec<u64>),
}

impl fmt::Display for Value {
    /// `150`, the string as is, or a list as `1 2 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Str(s) => f.write_str(s),
            Value::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
        }
    }
}

/// What [`Mib::list`] tells about a node (everything but its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Full dotted name, e.g. `kern.polling.burst_max`.
    pub name: String,
    /// Type of the value.
    pub kind: Kind,
    /// Whether writes are accepted.
    pub access: Access,
    /// One-line description, as `sysctl -d` prints it.
    pub description: String,
    /// Lowest value ever accepted, for documentation; `None` for read-only
    /// nodes. The bound checked at write time may be narrower.
    pub min: Option<i64>,
    /// Highest value ever accepted, for documentation; `None` for read-only
    /// nodes. The bound checked at write time may be narrower (it may depend
    /// on other nodes, e.g. `each_burst <= burst_max`).
    pub max: Option<i64>,
}

/// Why a read or a write of the MIB failed. The message is sysctl(8)'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    /// No node has this name and no node lies below it.
    #[error("unknown oid '{0}'")]
    UnknownOid(String),
    /// A write to a read-only node.
    #[error("oid '{0}' is read only")]
    ReadOnly(String),
    /// A read or write of an interior node (a prefix of other nodes).
    #[error("oid '{0}' isn't a leaf node")]
    NotALeaf(String),
    /// A write outside the accepted range at the time of the write; the
    /// node keeps its value (`EINVAL`, never clamped).
    #[error("{name}={value}: Invalid argument ({min}..{max})")]
    OutOfRange {
        /// The node written.
        name: String,
        /// The value refused.
        value: i64,
        /// Lowest accepted value, inclusive.
        min: i64,
        /// Highest accepted value, inclusive.
        max: i64,
    },
    /// The new value is not a decimal or `0x` hexadecimal integer.
    #[error("invalid integer '{0}'")]
    InvalidInteger(String),
    /// The node's handler refused the value for a reason other than range.
    #[error("{name}: {reason}")]
    Rejected {
        /// The node written.
        name: String,
        /// The handler's reason.
        reason: String,
    },
}

/// A line of sysctl(8) output: `name: value`.
pub fn format_line(name: &str, value: &Value) -> String {
    format!("{name}: {value}")
}

/// Parses a value given to sysctl(8): a decimal integer with optional sign,
/// or `0x`/`0X` hexadecimal (also with optional sign).
pub fn parse_int(text: &str) -> Result<i64, SysctlError> {
    let invalid = || SysctlError::InvalidInteger(text.to_string());
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = match unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        Some(hex) => (16, hex),
        None => (10, unsigned),
    };
    // from_str_radix would accept a second sign ("-+5", "0x-5"): refuse it.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let magnitude = i128::from_str_radix(digits, radix).map_err(|_| invalid())?;
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).map_err(|_| invalid())
}

#[cfg(test)]
mod testmib;
#[cfg(test)]
mod tests;
