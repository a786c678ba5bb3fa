//! The host-facing runtime: everything that touches the machine pollsim
//! runs on, apart from the NIC drivers (`pollsim-drivers`). The real clock
//! and the timerfd of the clock interrupt ([`clock`]), epoll ([`os`]), the
//! scheduler that drives the kernel on them ([`sched`]), and the
//! measurement of what the host takes from the simulated CPU ([`host`]:
//! steal from `/proc/stat`, the thread's CPU time).
//!
//! The engines under `crate::kernel` never read a clock or the host; they
//! get `now` and report work, so the same code runs here and on virtual
//! time (`crate::kernel::vsched`).

pub mod clock;
pub mod host;
pub mod os;
pub mod sched;

#[cfg(test)]
mod tests;
