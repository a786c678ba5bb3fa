//! A small MIB shared by the tests of the protocol, server, client and
//! command: RW nodes with fixed and dependent bounds, RO nodes of every type.

use crate::Mib;

/// A toy kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctx {
    pub burst_max: i64,
    pub each_burst: i64,
    pub user_frac: i64,
    pub idle_poll: i64,
    pub offset: i64,
    /// When set, the idle_poll handler refuses every write.
    pub busy: bool,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx {
            burst_max: 150,
            each_burst: 5,
            user_frac: 50,
            idle_poll: 0,
            offset: 0,
            busy: false,
        }
    }
}

/// The MIB over [`Ctx`]: eight leaves under `dev` and `kern`.
pub(crate) fn mib() -> Mib<Ctx> {
    let mut m: Mib<Ctx> = Mib::new();
    m.add_rw_uint(
        "kern.polling.burst_max",
        "Max Polling burst size",
        (10, 20_000),
        |_| (10, 20_000),
        |c| c.burst_max,
        |c, v| {
            c.burst_max = v;
            c.each_burst = c.each_burst.min(v);
            Ok(())
        },
    );
    m.add_rw_uint(
        "kern.polling.each_burst",
        "Max size of each burst",
        (1, 20_000),
        |c| (1, c.burst_max),
        |c| c.each_burst,
        |c, v| {
            c.each_burst = v;
            Ok(())
        },
    );
    m.add_rw_uint(
        "kern.polling.user_frac",
        "Desired user fraction of cpu time",
        (0, 99),
        |_| (0, 99),
        |c| c.user_frac,
        |c, v| {
            c.user_frac = v;
            Ok(())
        },
    );
    m.add_rw(
        "kern.polling.idle_poll",
        "Enable device polling in idle loop",
        (0, 1),
        |_| (0, 1),
        |c| c.idle_poll,
        |c, v| {
            if c.busy {
                return Err("Device busy".to_string());
            }
            c.idle_poll = v;
            Ok(())
        },
    );
    m.add_rw(
        "kern.offset",
        "A signed knob",
        (-100, 100),
        |_| (-100, 100),
        |c| c.offset,
        |c, v| {
            c.offset = v;
            Ok(())
        },
    );
    m.add_ro_uint("kern.polling.burst", "Current polling burst size", |_| 5);
    m.add_ro_list("kern.cp_time", "CPU time per state", |_| {
        vec![1, 0, 2, 3, 4]
    });
    m.add_ro_str("dev.tap0.name", "Interface name", |_| "tap0".into());
    m
}
