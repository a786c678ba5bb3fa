//! pollsim: a userspace network stack that makes receive livelock visible.
//!
//! A simulated kernel ([`kernel`]) with one CPU, interrupt-driven and
//! FreeBSD-style polled input, smoltcp as its TCP/IP stack, and user
//! processes ([`apps`]), runs against a real tap device
//! ([`pollsim_drivers::TapNic`]). See docs/design.md for the architecture.
#![deny(unsafe_code)]

pub mod apps;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod conns;
pub mod ctl;
pub mod flood;
pub mod kernel;
pub mod lab;
pub mod queues;
pub mod report;
pub mod rt;
pub mod sim;

/// A counter as a sysctl integer (saturating at `i64::MAX`).
pub fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
