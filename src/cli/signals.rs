//! SIGINT, SIGTERM and SIGHUP, all three the same way: the first one asks
//! the command to stop (it stops its children, writes its summary or
//! results and removes its socket and namespace on the way out), and the
//! command then exits with 128 + the signal's number (of the latest, if
//! several came), as a shell reports a process killed by it (130, 143,
//! 129). Later ones do not cut the cleanup short. (A second signal that killed at once would
//! break it twice over: timeout(1) sends its signal to the command and
//! again to its process group, and an instance that compare is stopping
//! gets SIGINT from compare and then, if compare dies, SIGTERM from
//! PR_SET_PDEATHSIG. SIGKILL still ends a command at once, and its
//! children with it: see [`crate::lab::die_with_parent`].)
//!
//! signal-hook rather than ctrlc: ctrlc (even with its `termination`
//! feature) runs one callback and does not say which signal came, and the
//! exit status needs it; signal-hook's flags record it from the handler
//! itself, without a thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signals that stop a command.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The stop flag and the number of the latest signal (0 before one came).
struct Installed {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Install the handlers (once per process; later calls return the same
/// flag) and return the flag that the first of [`STOP_SIGNALS`] sets.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    if let Some(i) = INSTALLED.get() {
        return Ok(Arc::clone(&i.stop));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for sig in STOP_SIGNALS {
        let n = usize::try_from(sig).unwrap_or_default();
        signal_hook::flag::register_usize(sig, Arc::clone(&which), n)
            .context("installing the signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the signal handlers")?;
    }
    let _ = INSTALLED.set(Installed {
        stop: Arc::clone(&stop),
        which,
    });
    Ok(stop)
}

/// The signal that stopped the command, if one did (the latest, if
/// several came).
pub fn received() -> Option<i32> {
    let n = INSTALLED.get()?.which.load(Ordering::SeqCst);
    i32::try_from(n).ok().filter(|&n| n > 0)
}

/// The exit status a shell gives a process that `sig` ended: 128 + its
/// number.
pub fn exit_status(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_status_is_128_plus_the_signal() {
        assert_eq!(exit_status(SIGINT), 130);
        assert_eq!(exit_status(SIGTERM), 143);
        assert_eq!(exit_status(SIGHUP), 129);
    }

    #[test]
    fn a_raised_signal_sets_the_flag_and_is_named() {
        let stop = stop_flag().unwrap();
        assert!(!stop.load(Ordering::SeqCst));
        assert_eq!(received(), None);
        signal_hook::low_level::raise(SIGHUP).unwrap();
        assert!(stop.load(Ordering::SeqCst));
        assert_eq!(received(), Some(SIGHUP));
        // A second one (as timeout(1) sends) does not kill.
        signal_hook::low_level::raise(SIGHUP).unwrap();
        assert_eq!(received(), Some(SIGHUP));
        assert!(Arc::ptr_eq(&stop, &stop_flag().unwrap()));
    }
}
