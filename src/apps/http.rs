//! `http`: a small web server on TCP port 80, the responsiveness probe.
//!
//! Serves one page per connection (`Connection: close`) showing a request
//! counter, then closes. Its [`Pool`] keeps a listen backlog and serves up
//! to `user.http.max_conns` connections; finished sockets are reclaimed.

use std::fmt::Write as _;

use pollsim_sysctl::Mib;
use smoltcp::socket::tcp;

use super::pool::{Phase, Pool};
use super::{App, Apps, Step, UserCx};
use crate::kernel::netisr::Netisr;
use crate::kernel::reactor::{Interest, Reactor, Token};
use crate::sat;

/// The port.
pub const PORT: u16 = 80;
/// Socket buffer sizes (a request head, a page).
const BUF: usize = 4096;
/// Longest request head accepted.
const MAX_REQUEST: usize = 4096;

#[derive(Debug, Default)]
struct Conn {
    req: Vec<u8>,
    answered: bool,
}

/// The web server.
#[derive(Debug)]
pub struct Http {
    /// Requests answered
    pub requests: u64,
    /// Requests refused as malformed or too long
    pub bad_requests: u64,
    pool: Pool<Conn>,
    page: String,
}

impl Http {
    /// A server with no sockets yet.
    pub fn new() -> Http {
        Http {
            requests: 0,
            bad_requests: 0,
            pool: Pool::new(PORT, BUF),
            page: String::new(),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

fn head_end(req: &[u8]) -> bool {
    req.windows(4).any(|w| w == b"\r\n\r\n") || req.windows(2).any(|w| w == b"\n\n")
}

impl App for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn start(&mut self, netisr: &mut Netisr, reactor: &mut Reactor, first_token: usize) {
        self.pool.start(&mut netisr.sockets, reactor, first_token);
    }

    fn step(&mut self, cx: &mut UserCx<'_>, token: Token) -> Step {
        let phase = self.pool.on_event(cx.sockets, cx.reactor, token);
        if matches!(phase, Phase::New | Phase::Refused | Phase::Done) {
            cx.wrote = true;
        }
        let Some((h, conn)) = self.pool.get(token) else {
            return Step::DONE;
        };
        let s = cx.sockets.get_mut::<tcp::Socket>(h);
        while s.can_recv() && !conn.answered {
            let room = MAX_REQUEST - conn.req.len();
            let got = s.recv(|data| {
                let n = data.len().min(room);
                (n, data[..n].to_vec())
            });
            match got {
                Ok(bytes) if !bytes.is_empty() => conn.req.extend_from_slice(&bytes),
                _ => break,
            }
            if head_end(&conn.req) || conn.req.len() >= MAX_REQUEST {
                break;
            }
        }
        if !conn.answered && (head_end(&conn.req) || conn.req.len() >= MAX_REQUEST) {
            let ok = conn.req.starts_with(b"GET ") || conn.req.starts_with(b"HEAD ");
            if ok {
                self.requests += 1;
            } else {
                self.bad_requests += 1;
            }
            self.page.clear();
            render(&mut self.page, ok, self.requests);
            // The page is far smaller than the send buffer.
            let _ = s.send_slice(self.page.as_bytes());
            // Connection: close. The FIN follows the page.
            s.close();
            conn.answered = true;
            cx.wrote = true;
        }
        if !s.may_recv() && matches!(s.state(), tcp::State::CloseWait) {
            s.close();
            cx.wrote = true;
        }
        self.pool
            .rearm(cx.sockets, cx.reactor, token, Interest::READABLE);
        Step::DONE
    }
}

fn render(out: &mut String, ok: bool, requests: u64) {
    let (status, body) = if ok {
        (
            "200 OK",
            format!(
                "<!doctype html>\n<html><head><title>pollsim</title></head><body>\n\
                 <h1>pollsim</h1>\n<p>Served by a simulated kernel on smoltcp.</p>\n\
                 <p>requests: {requests}</p>\n</body></html>\n"
            ),
        )
    } else {
        ("400 Bad Request", "bad request\n".to_string())
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

pub(super) fn register_sysctl<C: 'static>(
    mib: &mut Mib<C>,
    get: fn(&C) -> &Apps,
    get_mut: fn(&mut C) -> &mut Apps,
) {
    super::pool::register_sysctl(
        mib,
        "http",
        move |c| get(c).http.as_ref().map(|a| &a.pool),
        move |c| get_mut(c).http.as_mut().map(|a| &mut a.pool),
    );
    mib.add_ro("user.http.requests", "Requests answered", move |c| {
        get(c).http.as_ref().map_or(0, |a| sat(a.requests))
    });
    mib.add_ro(
        "user.http.bad_requests",
        "Requests refused as malformed or too long",
        move |c| get(c).http.as_ref().map_or(0, |a| sat(a.bad_requests)),
    );
}
