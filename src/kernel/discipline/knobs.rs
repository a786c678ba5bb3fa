//! One table-driven registration for the disciplines' sysctl nodes: each
//! discipline declares its knobs and counters as tables over its own state
//! (`Knob<T>`, `Counter<T>`) and [`register`] adds them to the MIB, with
//! the same bounds, descriptions and read/write paths for all.

use pollsim_sysctl::Mib;

/// Bounds of a knob, `(min, max)`.
pub type Bounds = (i64, i64);

/// A read-write unsigned knob of a discipline's state `T`.
pub struct Knob<T> {
    /// Name, absolute or under the prefix given to [`register`].
    pub name: &'static str,
    /// The sysctl description.
    pub descr: &'static str,
    /// The widest bounds (what `sysctl -d` shows).
    pub bounds: (i64, i64),
    /// The bounds in force now, when they depend on other knobs.
    pub live: Option<fn(&T) -> Bounds>,
    /// The value.
    pub read: fn(&T) -> i64,
    /// Set the value (within the bounds, checked by the MIB).
    pub write: fn(&mut T, i64),
    /// Why a write is refused now, if it is (e.g. busy).
    pub refuse: Option<fn(&T) -> Option<&'static str>>,
}

impl<T> Knob<T> {
    /// A knob with static bounds, always writable.
    pub const fn new(
        name: &'static str,
        descr: &'static str,
        bounds: (i64, i64),
        read: fn(&T) -> i64,
        write: fn(&mut T, i64),
    ) -> Knob<T> {
        Knob {
            name,
            descr,
            bounds,
            live: None,
            read,
            write,
            refuse: None,
        }
    }
}

/// A read-only counter of a discipline's state `T`.
pub struct Counter<T> {
    /// Name, absolute or under the prefix given to [`register`].
    pub name: &'static str,
    /// The sysctl description.
    pub descr: &'static str,
    /// The value.
    pub read: fn(&T) -> u64,
}

/// A knob's value as the `u32` its field holds (the MIB has checked the
/// bounds, which are all within `u32`).
pub fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Register `knobs` and `counters` under `prefix` (`""`: names are
/// absolute), reading the state with `get` and writing it with `get_mut`.
pub fn register<C: 'static, T: 'static>(
    mib: &mut Mib<C>,
    prefix: &str,
    knobs: &'static [Knob<T>],
    counters: &'static [Counter<T>],
    get: impl Fn(&C) -> &T + Copy + 'static,
    get_mut: impl Fn(&mut C) -> &mut T + Copy + 'static,
) {
    let full = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    for k in knobs {
        let bounds = k.bounds;
        mib.add_rw_uint(
            &full(k.name),
            k.descr,
            bounds,
            move |c| k.live.map_or(bounds, |f| f(get(c))),
            move |c| (k.read)(get(c)),
            move |c, v| {
                if let Some(why) = k.refuse.and_then(|f| f(get(c))) {
                    return Err(why.into());
                }
                (k.write)(get_mut(c), v);
                Ok(())
            },
        );
    }
    for n in counters {
        mib.add_ro_uint(&full(n.name), n.descr, move |c| (n.read)(get(c)));
    }
}
