//! The user processes: apps that serve real clients through smoltcp
//! sockets, learning readiness from the reactor.
//!
//! Each app does its work in steps; a step handles one datagram or one
//! read/write on one connection and says how much extra CPU the user
//! process then spends (`work_ns`, the model of application processing).
//! The scheduler runs steps only at user priority and may preempt the CPU
//! burn in slices, as an interrupt would.

mod http;
pub mod interactive;
pub mod pool;
pub mod tcp_echo;
#[cfg(test)]
mod trigger_tests;
mod udp_sink;

use std::str::FromStr;

use pollsim_sysctl::Mib;

use crate::kernel::netisr::Netisr;
use crate::kernel::reactor::{Reactor, Token, Trigger};
use crate::kernel::time::Nanos;

pub use http::Http;
pub use interactive::Interactive;
pub use tcp_echo::TcpEcho;
pub use udp_sink::{PORT as UDP_SINK_PORT, UdpSink};

/// What an app may touch during a step.
pub struct UserCx<'a> {
    /// The stack's sockets.
    pub sockets: &'a mut crate::kernel::sockets::Sockets,
    /// Readiness.
    pub reactor: &'a mut Reactor,
    /// Set when the step queued data to send, so the netisr runs egress.
    pub wrote: bool,
    /// Set by tcp-echo in the threads model when a connection is
    /// established: the kernel makes it a process of its own.
    pub spawn: Option<Token>,
    /// The current instant.
    pub now: Nanos,
}

impl<'a> UserCx<'a> {
    /// A step's context at `now`: nothing written or spawned yet.
    pub fn new(
        sockets: &'a mut crate::kernel::sockets::Sockets,
        reactor: &'a mut Reactor,
        now: Nanos,
    ) -> UserCx<'a> {
        UserCx {
            sockets,
            reactor,
            wrote: false,
            spawn: None,
            now,
        }
    }
}

/// The outcome of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Extra CPU time the process spends after the step.
    pub work: Nanos,
    /// The token has more to do: step it again (after the work).
    pub more: bool,
}

impl Step {
    /// Nothing more to do for now; the app has re-armed its registration.
    pub const DONE: Step = Step {
        work: Nanos::ZERO,
        more: false,
    };
}

/// A user process.
pub trait App {
    /// Its name in `--apps` and `user.<name>.*` (with `-` as `_`).
    fn name(&self) -> &'static str;
    /// Create and register its sockets, with tokens from `first_token` up
    /// to (not including) `first_token + TOKEN_SPACE`.
    fn start(&mut self, netisr: &mut Netisr, reactor: &mut Reactor, first_token: usize);
    /// Handle readiness of `token` (one of its own), one unit of work.
    fn step(&mut self, cx: &mut UserCx<'_>, token: Token) -> Step;
}

/// The apps `--apps` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    /// `udp-sink` on port 9.
    UdpSink,
    /// `tcp-echo` on port 7.
    TcpEcho,
    /// `http` on port 80.
    Http,
    /// `interactive`: a slice of CPU at a fixed period, no socket.
    Interactive,
}

impl std::fmt::Display for AppKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppKind::UdpSink => "udp-sink",
            AppKind::TcpEcho => "tcp-echo",
            AppKind::Http => "http",
            AppKind::Interactive => "interactive",
        })
    }
}

impl FromStr for AppKind {
    type Err = String;
    fn from_str(s: &str) -> Result<AppKind, String> {
        match s {
            "udp-sink" => Ok(AppKind::UdpSink),
            "tcp-echo" => Ok(AppKind::TcpEcho),
            "http" => Ok(AppKind::Http),
            "interactive" => Ok(AppKind::Interactive),
            other => Err(format!(
                "unknown app '{other}' (known: udp-sink, tcp-echo, http, interactive)"
            )),
        }
    }
}

/// The apps of one kernel, with their sysctl knobs and counters.
#[derive(Default)]
pub struct Apps {
    /// udp-sink, if running.
    pub udp_sink: Option<UdpSink>,
    /// tcp-echo, if running.
    pub tcp_echo: Option<TcpEcho>,
    /// http, if running.
    pub http: Option<Http>,
    /// interactive, if running (no socket: the scheduler runs it when due).
    pub interactive: Option<Interactive>,
}

/// Tokens each app may use: app `i` (in `each` order) owns
/// `i * TOKEN_SPACE ..`, so the owner of a token is a division away.
pub const TOKEN_SPACE: usize = 1 << 24;

impl Apps {
    /// The apps named in `kinds`, with their defaults.
    pub fn new(kinds: &[AppKind]) -> Apps {
        let mut apps = Apps::default();
        for k in kinds {
            match k {
                AppKind::UdpSink => apps.udp_sink = Some(UdpSink::new()),
                AppKind::TcpEcho => apps.tcp_echo = Some(TcpEcho::new()),
                AppKind::Http => apps.http = Some(Http::new()),
                AppKind::Interactive => apps.interactive = Some(Interactive::new()),
            }
        }
        apps
    }

    fn each(&mut self) -> [Option<&mut dyn App>; 3] {
        [
            self.udp_sink.as_mut().map(|a| a as &mut dyn App),
            self.tcp_echo.as_mut().map(|a| a as &mut dyn App),
            self.http.as_mut().map(|a| a as &mut dyn App),
        ]
    }

    /// The user processes: each socket app with its index in token space
    /// (`each` order), then the interactive process (no index), by their
    /// names under `user.`.
    pub fn processes(&self) -> Vec<(Option<usize>, &'static str)> {
        let all = [
            (self.udp_sink.is_some(), Some(0), "udp_sink"),
            (self.tcp_echo.is_some(), Some(1), "tcp_echo"),
            (self.http.is_some(), Some(2), "http"),
            (self.interactive.is_some(), None, "interactive"),
        ];
        all.into_iter()
            .filter(|(present, ..)| *present)
            .map(|(_, i, name)| (i, name))
            .collect()
    }

    /// Start every app at `now`.
    pub fn start(&mut self, netisr: &mut Netisr, reactor: &mut Reactor, now: Nanos) {
        for (i, app) in self.each().into_iter().enumerate() {
            if let Some(app) = app {
                app.start(netisr, reactor, i * TOKEN_SPACE);
            }
        }
        if let Some(a) = self.interactive.as_mut() {
            a.start(now);
        }
    }

    /// Step the app that owns `token`.
    pub fn step(&mut self, cx: &mut UserCx<'_>, token: Token) -> Step {
        match self.each().into_iter().nth(token.0 / TOKEN_SPACE).flatten() {
            Some(app) => app.step(cx, token),
            None => Step::DONE,
        }
    }

    /// Register every app's knobs and counters under `user.` (`now`
    /// reads the kernel's time, for counts that grow while a process waits).
    pub fn register_sysctl<C: 'static>(
        &self,
        mib: &mut Mib<C>,
        get: fn(&C) -> &Apps,
        get_mut: fn(&mut C) -> &mut Apps,
        now: fn(&C) -> Nanos,
    ) {
        if self.interactive.is_some() {
            interactive::register_sysctl(mib, get, get_mut, now);
        }
        if self.udp_sink.is_some() {
            udp_sink::register_sysctl(mib, get, get_mut);
        }
        if self.tcp_echo.is_some() {
            tcp_echo::register_sysctl(mib, get, get_mut);
        }
        if self.http.is_some() {
            http::register_sysctl(mib, get, get_mut);
        }
    }
}

/// Why a start-time tunable refuses a write once its app runs.
pub(crate) const STARTED: &str =
    "read-only once the app has started (set it with pollsim run --sysctl)";

/// Declare `user.<app>.trigger`, a choice of [`Trigger::NAMES`] read and
/// written by name (as `machdep.idle`): how the reactor reports `what`.
/// `set` refuses once the app has registered its sockets ([`STARTED`]).
pub(crate) fn register_trigger<C: 'static>(
    mib: &mut Mib<C>,
    app: &str,
    what: &str,
    get: impl Fn(&C) -> Option<Trigger> + 'static,
    set: impl Fn(&mut C, Trigger) -> Result<(), String> + 'static,
) {
    mib.add_rw_choice_checked(
        &format!("user.{app}.trigger"),
        &format!(
            "How the reactor reports {what}: level (on every poll while ready), \
             edge (once per arrival of readiness: the app must drain), oneshot \
             (once, then disarmed until the app re-arms it) (a tunable: set it with run --sysctl)"
        ),
        &Trigger::NAMES,
        move |c| get(c).unwrap_or(Trigger::Oneshot).index(),
        move |c, i| set(c, Trigger::ALL[i]),
    );
}
