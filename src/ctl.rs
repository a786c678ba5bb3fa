//! The control socket of a running instance: its MIB served on
//! `/run/pollsim/NAME.sock` to `pollsim sysctl`, `ifconfig` and `stat`.
//!
//! Mirrors sysctl(2) as a service of the kernel: requests are answered from
//! the kernel's own event loop (no lock around the data path), on the clock
//! tick, with a budget of requests per tick so that control traffic can
//! never take more than a bounded slice of the CPU, whatever the load.
//! The protocol (versioned, newline-delimited JSON) is `pollsim_sysctl::proto`.
//!
//! Slots are few ([`MAX_CLIENTS`]) and must not be held by clients that do
//! nothing: one that has sent no complete request line for
//! [`CLIENT_IDLE`] (nothing at all, or half a line) is closed, and when
//! every slot is taken a new client takes the slot of the longest-idle one,
//! as an HTTP server's idle timeout and connection reuse do. Time is a
//! parameter ([`Control::serve`] takes `now`), so the same code runs on the
//! kernel's real or virtual clock.

use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use pollsim_sysctl::Mib;
use pollsim_sysctl::serve::{LineBuffer, handle_frame};

use crate::kernel::Kernel;
use crate::kernel::time::Nanos;

pub use pollsim_sysctl::client::{SOCKET_DIR as RUN_DIR, socket_path};

/// Requests answered per clock tick at most (1000 Hz: 8000/s).
pub const REQUESTS_PER_TICK: usize = 8;
/// Clients served at once; a new one beyond takes the longest-idle slot.
pub const MAX_CLIENTS: usize = 32;
/// A client that sends no complete request line for this long is closed.
pub const CLIENT_IDLE: Nanos = Nanos::from_secs(3);
/// Bytes read from one client per tick at most.
const READ_PER_TICK: usize = 64 * 1024;
/// Replies buffered for a client that does not read; beyond, it is dropped.
const MAX_PENDING_OUT: usize = 4 * 1024 * 1024;

/// Whether `name` is a valid instance name (it becomes a file name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The name cannot be a file name.
    #[error("invalid instance name '{0}' (letters, digits, '-' and '_', at most 64)")]
    BadName(String),
    /// Another live instance has the name.
    #[error("an instance named '{name}' is already running (socket {path}); pick another --name")]
    InUse {
        /// Instance name.
        name: String,
        /// Its socket.
        path: String,
    },
    /// No permission to make the socket under /run/pollsim.
    #[error("{what} {path}: permission denied (run pollsim as root)")]
    PermissionDenied {
        /// What was attempted.
        what: &'static str,
        /// The path.
        path: String,
    },
    /// Any other failure, with what was attempted.
    #[error("{what} {path}: {err}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The path.
        path: String,
        /// The error (in the message, not a `source`, so that it is shown once).
        err: io::Error,
    },
}

struct Client {
    stream: UnixStream,
    lines: LineBuffer,
    out: Vec<u8>,
    /// The peer has shut its side: answer what it sent, then close.
    eof: bool,
    /// The connection failed or misbehaved: drop it.
    broken: bool,
    /// When it was accepted or last sent a complete request line.
    last_request: Nanos,
}

/// Counters of the control service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtlStats {
    /// Requests answered
    pub requests: u64,
    /// Requests answered with an error
    pub errors: u64,
    /// Clients accepted
    pub clients: u64,
    /// Clients refused or dropped (too many, or not reading replies)
    pub refused: u64,
    /// Clients closed after CLIENT_IDLE without a complete request line
    pub idle_closed: u64,
    /// Idle clients closed early to make room for a new one (all slots taken)
    pub evicted: u64,
}

/// The listening socket and its clients. Removes the socket file on drop.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    /// Counters.
    pub stats: CtlStats,
}

impl Control {
    /// Bind `/run/pollsim/NAME.sock` (mode 0600). A socket left by a crashed
    /// run is replaced; one with a live instance behind it is refused.
    pub fn bind(name: &str) -> Result<Control, CtlError> {
        if !valid_name(name) {
            return Err(CtlError::BadName(name.to_string()));
        }
        let path = socket_path(name);
        let shown = path.display().to_string();
        let io = |what, err: io::Error| match err.kind() {
            io::ErrorKind::PermissionDenied => CtlError::PermissionDenied {
                what,
                path: shown.clone(),
            },
            _ => CtlError::Io {
                what,
                path: shown.clone(),
                err,
            },
        };
        std::fs::create_dir_all(RUN_DIR).map_err(|e| io("creating", e))?;
        // Held until the socket listens: no other instance's sweep can take
        // it for dead between bind(2) and listen(2).
        let _lock = lock_dir(Path::new(RUN_DIR)).map_err(|e| io("locking", e))?;
        sweep_stale(Path::new(RUN_DIR));
        if path.exists() {
            match UnixStream::connect(&path) {
                Ok(_) => {
                    return Err(CtlError::InUse {
                        name: name.to_string(),
                        path: shown,
                    });
                }
                // Nobody listens: a stale socket from a run that crashed.
                Err(_) => std::fs::remove_file(&path).map_err(|e| io("removing stale", e))?,
            }
        }
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(&path);
        nix::sys::stat::umask(old);
        let listener = bound.map_err(|e| io("binding", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io("configuring", e))?;
        Ok(Control {
            listener,
            path,
            clients: Vec::new(),
            stats: CtlStats::default(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serve at `now`: accept waiting clients (a full table gives the
    /// longest-idle client's slot to the new one), answer up to
    /// `REQUESTS_PER_TICK` requests, flush replies, close clients idle for
    /// [`CLIENT_IDLE`]. Never blocks. Bound: `MAX_CLIENTS` accepts (each
    /// scanning `MAX_CLIENTS` slots), `READ_PER_TICK` bytes per client,
    /// `REQUESTS_PER_TICK` requests, one status read.
    ///
    /// Before the first request of a call, the NICs' status is read, so that
    /// what a client sees of `rx_missed` is current, not as old as the last
    /// status check (up to a second in interrupt mode).
    pub fn serve(&mut self, mib: &Mib<Kernel>, k: &mut Kernel, now: Nanos) {
        self.accept(now);
        let mut budget = REQUESTS_PER_TICK;
        let mut fresh = false;
        for c in &mut self.clients {
            read_some(c);
            let mut idle = true;
            while budget > 0 {
                let frame = match c.lines.next_frame() {
                    Some(f) => f,
                    None if c.eof => match c.lines.finish() {
                        Some(f) => f,
                        None => break,
                    },
                    None => break,
                };
                idle = false;
                c.last_request = now;
                budget -= 1;
                if !fresh {
                    k.check_status();
                    fresh = true;
                }
                let reply = handle_frame(mib, k, &frame);
                self.stats.requests += 1;
                if reply.contains("\"ok\":false") {
                    self.stats.errors += 1;
                }
                c.out.extend_from_slice(reply.as_bytes());
            }
            flush(c);
            if c.out.len() > MAX_PENDING_OUT {
                c.broken = true;
                self.stats.refused += 1;
            }
            if c.eof && idle && c.out.is_empty() {
                c.broken = true; // done: every request answered
            }
            if !c.broken && idle && now.since(c.last_request) >= CLIENT_IDLE {
                c.broken = true;
                self.stats.idle_closed += 1;
            }
        }
        self.clients.retain(|c| !c.broken);
    }

    fn accept(&mut self, now: Nanos) {
        for _ in 0..MAX_CLIENTS {
            let Ok((stream, _)) = self.listener.accept() else {
                return;
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.clients.len() >= MAX_CLIENTS {
                // Every slot is taken: the client that has waited longest
                // without sending a request makes room (closed on drop).
                let oldest = (0..self.clients.len()).min_by_key(|&i| self.clients[i].last_request);
                if let Some(i) = oldest {
                    self.clients.swap_remove(i);
                    self.stats.evicted += 1;
                }
            }
            self.stats.clients += 1;
            self.clients.push(Client {
                stream,
                lines: LineBuffer::new(),
                out: Vec::new(),
                eof: false,
                broken: false,
                last_request: now,
            });
        }
    }
}

fn read_some(c: &mut Client) {
    let mut buf = [0u8; 4096];
    let mut got = 0;
    while got < READ_PER_TICK && !c.eof {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.eof = true;
                return;
            }
            Ok(n) => {
                got += n;
                c.lines.push(&buf[..n]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                c.broken = true;
                return;
            }
        }
    }
}

fn flush(c: &mut Client) {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => break,
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                c.broken = true;
                break;
            }
        }
    }
}

/// Lock `dir` (an exclusive flock(2) on `dir/.lock`) for as long as the
/// guard lives. Every instance takes it to sweep and bind.
fn lock_dir(dir: &Path) -> io::Result<nix::fcntl::Flock<std::fs::File>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))
}

/// Remove the control sockets in `dir` that nobody listens on any more:
/// files that are sockets and refuse a connection (ECONNREFUSED), left by
/// an instance that was killed. Anything else is left alone: a socket
/// that accepts (a live instance), one that cannot be reached for another
/// reason, and files that are not sockets. Returns what it removed.
pub fn sweep_stale(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let is_socket = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket());
        if !is_socket {
            continue;
        }
        let refused = matches!(UnixStream::connect(&path),
            Err(err) if err.kind() == ErrorKind::ConnectionRefused);
        if refused && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_removes_only_sockets_that_refuse_a_connection() {
        let dir = std::env::temp_dir().join(format!("pollsim-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dead = dir.join("dead.sock");
        drop(UnixListener::bind(&dead).unwrap()); // bound, then its owner gone
        let live = dir.join("live.sock");
        let listener = UnixListener::bind(&live).unwrap();
        let plain = dir.join("plain.sock");
        std::fs::write(&plain, b"not a socket").unwrap();
        let removed = sweep_stale(&dir);
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.exists() && plain.exists());
        drop(listener);
        assert_eq!(sweep_stale(&dir), vec![live.clone()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_directory_lock_is_exclusive() {
        let dir = std::env::temp_dir().join(format!("pollsim-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = lock_dir(&dir).unwrap();
        let f = std::fs::File::open(dir.join(".lock")).unwrap();
        let again = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock);
        assert!(
            again.is_err(),
            "a second lock must wait while the first is held"
        );
        drop(held);
        let f = std::fs::File::open(dir.join(".lock")).unwrap();
        assert!(nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
