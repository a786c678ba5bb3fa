//! The MIB proper: registration, lookup, reads and bounded writes.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Access, Kind, NodeInfo, SysctlError, Value, name, parse_int};

type IntGetter<C> = Box<dyn Fn(&C) -> i64>;
type ListGetter<C> = Box<dyn Fn(&C) -> Vec<u64>>;
type StrGetter<C> = Box<dyn Fn(&C) -> String>;
type BoundsFn<C> = Box<dyn Fn(&C) -> (i64, i64)>;
type SetFn<C> = Box<dyn Fn(&mut C, i64) -> Result<(), String>>;

/// How a node reads its value from the context.
enum Getter<C> {
    Int(IntGetter<C>),
    List(ListGetter<C>),
    Str(StrGetter<C>),
}

impl<C> Getter<C> {
    fn read(&self, ctx: &C) -> Value {
        match self {
            Getter::Int(get) => Value::Int(get(ctx)),
            Getter::List(get) => Value::List(get(ctx)),
            Getter::Str(get) => Value::Str(get(ctx)),
        }
    }
}

/// How a read-write node checks and applies a new value.
struct Writer<C> {
    /// Bounds for documentation, valid whatever the context.
    static_bounds: (i64, i64),
    /// Bounds checked at the time of the write.
    bounds: BoundsFn<C>,
    set: SetFn<C>,
    /// For a string knob with a fixed set of values (FreeBSD's
    /// `machdep.idle`): the names, whose index is the value `set` gets.
    choices: Option<&'static [&'static str]>,
}

impl<C> Writer<C> {
    /// The value `text` stands for: an integer, or the index of a choice.
    fn parse(&self, name: &str, text: &str) -> Result<i64, SysctlError> {
        let Some(choices) = self.choices else {
            return parse_int(text);
        };
        match choices.iter().position(|c| *c == text) {
            Some(i) => Ok(i64::try_from(i).unwrap_or(i64::MAX)),
            None => Err(SysctlError::Rejected {
                name: name.to_string(),
                reason: format!("invalid value '{text}' ({})", choices.join(", ")),
            }),
        }
    }
}

/// One leaf of the tree.
struct Node<C> {
    kind: Kind,
    description: String,
    get: Getter<C>,
    write: Option<Writer<C>>,
}

impl<C> Node<C> {
    fn info(&self, name: &str) -> NodeInfo {
        let bounds = self
            .write
            .as_ref()
            .filter(|w| w.choices.is_none())
            .map(|w| w.static_bounds);
        NodeInfo {
            name: name.to_string(),
            kind: self.kind,
            access: if self.write.is_some() {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            },
            description: self.description.clone(),
            min: bounds.map(|b| b.0),
            max: bounds.map(|b| b.1),
        }
    }
}

/// A tree of named, typed nodes whose values live in a context `C`.
///
/// Only leaves are stored (sorted by name); an interior node such as
/// `kern.polling` exists as long as some leaf lies below it. Registering a
/// name twice, a name with invalid components, or a leaf above or below
/// another leaf is a programming error and panics.
pub struct Mib<C> {
    nodes: BTreeMap<String, Node<C>>,
}

impl<C> Default for Mib<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> fmt::Debug for Mib<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mib")
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<C> Mib<C> {
    /// An empty MIB.
    pub fn new() -> Self {
        Mib {
            nodes: BTreeMap::new(),
        }
    }

    /// Registers a read-only signed integer node (a counter or a state).
    pub fn add_ro(&mut self, name: &str, description: &str, get: impl Fn(&C) -> i64 + 'static) {
        self.insert(
            name,
            Kind::Int,
            description,
            Getter::Int(Box::new(get)),
            None,
        );
    }

    /// Registers a read-only unsigned integer node (`sysctl -t` says
    /// "unsigned integer"). Values above `i64::MAX` read as `i64::MAX`.
    pub fn add_ro_uint(
        &mut self,
        name: &str,
        description: &str,
        get: impl Fn(&C) -> u64 + 'static,
    ) {
        let get = move |ctx: &C| i64::try_from(get(ctx)).unwrap_or(i64::MAX);
        self.insert(
            name,
            Kind::UInt,
            description,
            Getter::Int(Box::new(get)),
            None,
        );
    }

    /// Registers a read-only opaque list, e.g. `kern.cp_time`
    /// (`user nice sys intr idle`).
    pub fn add_ro_list(
        &mut self,
        name: &str,
        description: &str,
        get: impl Fn(&C) -> Vec<u64> + 'static,
    ) {
        let getter = Getter::List(Box::new(get));
        self.insert(name, Kind::Opaque, description, getter, None);
    }

    /// Registers a read-only string node.
    pub fn add_ro_str(
        &mut self,
        name: &str,
        description: &str,
        get: impl Fn(&C) -> String + 'static,
    ) {
        let getter = Getter::Str(Box::new(get));
        self.insert(name, Kind::Str, description, getter, None);
    }

    /// Registers a read-write signed integer knob.
    ///
    /// `static_bounds` is documentation (shown by [`Mib::list`]);
    /// `bounds(ctx)` is the inclusive range accepted at the time of a write,
    /// which may depend on other knobs. `set(ctx, v)` is called only with
    /// `v` inside those bounds and must apply `v` with its dependent state at
    /// once; it may still refuse with a reason ([`SysctlError::Rejected`]).
    pub fn add_rw(
        &mut self,
        name: &str,
        description: &str,
        static_bounds: (i64, i64),
        bounds: impl Fn(&C) -> (i64, i64) + 'static,
        get: impl Fn(&C) -> i64 + 'static,
        set: impl Fn(&mut C, i64) -> Result<(), String> + 'static,
    ) {
        let writer = Writer {
            static_bounds,
            bounds: Box::new(bounds),
            set: Box::new(set),
            choices: None,
        };
        self.insert_rw(name, Kind::Int, description, Box::new(get), writer);
    }

    /// Registers a read-write string knob that takes one of `choices`
    /// (as FreeBSD's `machdep.idle` takes `hlt` or `spin`). `get` and `set`
    /// speak the index of the choice; any other text is refused with the
    /// list of choices.
    pub fn add_rw_choice(
        &mut self,
        name: &str,
        description: &str,
        choices: &'static [&'static str],
        get: impl Fn(&C) -> usize + 'static,
        set: impl Fn(&mut C, usize) + 'static,
    ) {
        assert!(!choices.is_empty(), "sysctl: '{name}' has no choices");
        let last = i64::try_from(choices.len() - 1).unwrap_or(i64::MAX);
        let writer = Writer {
            static_bounds: (0, last),
            bounds: Box::new(move |_| (0, last)),
            set: Box::new(move |ctx, v| {
                set(ctx, usize::try_from(v).unwrap_or(0));
                Ok(())
            }),
            choices: Some(choices),
        };
        let get = move |ctx: &C| choices.get(get(ctx)).copied().unwrap_or("?").to_string();
        self.insert(
            name,
            Kind::Str,
            description,
            Getter::Str(Box::new(get)),
            Some(writer),
        );
    }

    /// As [`Mib::add_rw_choice`], with a `set` that may still refuse the
    /// value with a reason ([`SysctlError::Rejected`]), as a start-time
    /// tunable does once the system runs.
    pub fn add_rw_choice_checked(
        &mut self,
        name: &str,
        description: &str,
        choices: &'static [&'static str],
        get: impl Fn(&C) -> usize + 'static,
        set: impl Fn(&mut C, usize) -> Result<(), String> + 'static,
    ) {
        assert!(!choices.is_empty(), "sysctl: '{name}' has no choices");
        let last = i64::try_from(choices.len() - 1).unwrap_or(i64::MAX);
        let writer = Writer {
            static_bounds: (0, last),
            bounds: Box::new(move |_| (0, last)),
            set: Box::new(move |ctx, v| set(ctx, usize::try_from(v).unwrap_or(0))),
            choices: Some(choices),
        };
        let get = move |ctx: &C| choices.get(get(ctx)).copied().unwrap_or("?").to_string();
        self.insert(
            name,
            Kind::Str,
            description,
            Getter::Str(Box::new(get)),
            Some(writer),
        );
    }

    /// As [`Mib::add_rw`], for a knob `sysctl -t` shows as
    /// "unsigned integer". Panics if `static_bounds` admits negatives.
    pub fn add_rw_uint(
        &mut self,
        name: &str,
        description: &str,
        static_bounds: (i64, i64),
        bounds: impl Fn(&C) -> (i64, i64) + 'static,
        get: impl Fn(&C) -> i64 + 'static,
        set: impl Fn(&mut C, i64) -> Result<(), String> + 'static,
    ) {
        assert!(
            static_bounds.0 >= 0,
            "sysctl: unsigned node '{name}' with a negative lower bound"
        );
        let writer = Writer {
            static_bounds,
            bounds: Box::new(bounds),
            set: Box::new(set),
            choices: None,
        };
        self.insert_rw(name, Kind::UInt, description, Box::new(get), writer);
    }

    fn insert_rw(
        &mut self,
        name: &str,
        kind: Kind,
        description: &str,
        get: IntGetter<C>,
        writer: Writer<C>,
    ) {
        let (min, max) = writer.static_bounds;
        assert!(min <= max, "sysctl: '{name}' has bounds {min}..{max}");
        self.insert(name, kind, description, Getter::Int(get), Some(writer));
    }

    /// Adds a leaf; panics on a bad name, a duplicate, or a leaf/interior
    /// conflict, all of which are programming errors.
    fn insert(
        &mut self,
        name: &str,
        kind: Kind,
        description: &str,
        get: Getter<C>,
        write: Option<Writer<C>>,
    ) {
        assert!(name::is_valid(name), "sysctl: invalid oid name '{name}'");
        assert!(
            !self.nodes.contains_key(name),
            "sysctl: oid '{name}' registered twice"
        );
        if let Some(leaf) = name::ancestors(name).find(|a| self.nodes.contains_key(*a)) {
            panic!("sysctl: cannot add '{name}': '{leaf}' is a leaf");
        }
        if let Some(below) = self.first_below(name) {
            panic!("sysctl: cannot add leaf '{name}': '{below}' lies below it");
        }
        let node = Node {
            kind,
            description: description.to_string(),
            get,
            write,
        };
        self.nodes.insert(name.to_string(), node);
    }

    /// The first leaf strictly below `name`, if any.
    fn first_below(&self, name: &str) -> Option<&str> {
        let start = format!("{name}.");
        self.nodes
            .range::<str, _>((
                std::ops::Bound::Included(start.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with(&start))
    }

    /// The leaf `name`, or why there is none.
    fn leaf(&self, name: &str) -> Result<&Node<C>, SysctlError> {
        if let Some(node) = self.nodes.get(name) {
            Ok(node)
        } else if !name.is_empty() && self.first_below(name).is_some() {
            Err(SysctlError::NotALeaf(name.to_string()))
        } else {
            Err(SysctlError::UnknownOid(name.to_string()))
        }
    }

    /// The description, type, access and static bounds of the leaf `name`.
    pub fn info(&self, name: &str) -> Result<NodeInfo, SysctlError> {
        self.leaf(name).map(|node| node.info(name))
    }

    /// The inclusive range a write to `name` accepts right now (bounds may
    /// depend on other knobs); `None` for a read-only node.
    pub fn bounds(&self, ctx: &C, name: &str) -> Result<Option<(i64, i64)>, SysctlError> {
        self.leaf(name)
            .map(|node| node.write.as_ref().map(|w| (w.bounds)(ctx)))
    }

    /// Reads the leaf `name`. An interior node gives
    /// [`SysctlError::NotALeaf`], anything else [`SysctlError::UnknownOid`].
    pub fn get(&self, ctx: &C, name: &str) -> Result<Value, SysctlError> {
        self.leaf(name).map(|node| node.get.read(ctx))
    }

    /// Writes the leaf `name` from sysctl(8) text (decimal, or `0x` hex).
    ///
    /// Checks, in order: the node exists and is a leaf, it is writable, the
    /// text is an integer, the value is within the bounds at this moment.
    /// A value out of range is refused, never clamped, and the node keeps its
    /// value. Returns the value before and the value read back after.
    pub fn set(&self, ctx: &mut C, name: &str, value: &str) -> Result<(Value, Value), SysctlError> {
        let node = self.leaf(name)?;
        let Some(writer) = &node.write else {
            return Err(SysctlError::ReadOnly(name.to_string()));
        };
        let v = writer.parse(name, value.trim())?;
        let (min, max) = (writer.bounds)(ctx);
        if v < min || v > max {
            return Err(SysctlError::OutOfRange {
                name: name.to_string(),
                value: v,
                min,
                max,
            });
        }
        let old = node.get.read(ctx);
        (writer.set)(ctx, v).map_err(|reason| SysctlError::Rejected {
            name: name.to_string(),
            reason,
        })?;
        Ok((old, node.get.read(ctx)))
    }

    /// Every leaf at or below `prefix` by whole dot-separated components,
    /// sorted by name (`""` lists all). Nothing there gives
    /// [`SysctlError::UnknownOid`].
    pub fn list(&self, prefix: &str) -> Result<Vec<NodeInfo>, SysctlError> {
        let found: Vec<NodeInfo> = self
            .below(prefix)
            .map(|(name, node)| node.info(name))
            .collect();
        if found.is_empty() && !(prefix.is_empty() && self.nodes.is_empty()) {
            return Err(SysctlError::UnknownOid(prefix.to_string()));
        }
        Ok(found)
    }

    /// `(name, value)` of every leaf at or below `prefix`, sorted by name.
    pub fn dump(&self, ctx: &C, prefix: &str) -> Result<Vec<(String, Value)>, SysctlError> {
        let found: Vec<(String, Value)> = self
            .below(prefix)
            .map(|(name, node)| (name.clone(), node.get.read(ctx)))
            .collect();
        if found.is_empty() && !(prefix.is_empty() && self.nodes.is_empty()) {
            return Err(SysctlError::UnknownOid(prefix.to_string()));
        }
        Ok(found)
    }

    /// The leaves at or below `prefix`, in name order.
    fn below<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Node<C>)> {
        self.nodes
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(name, _)| name.starts_with(prefix))
            .filter(move |(name, _)| name::is_at_or_below(name, prefix))
    }

    /// Whether `name` is a leaf of this MIB.
    pub fn contains(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the MIB has no leaves.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
