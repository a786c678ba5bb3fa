//! `http`: a small HTTP/1.1 web server on TCP port 80, the responsiveness
//! probe.
//!
//! Serves one page (showing a request counter) to `GET` and `HEAD`.
//! Connections are persistent as HTTP/1.1 says (RFC 9112 §9.3): kept open
//! by default, closed after a response to a request that asked for
//! `Connection: close` (or an HTTP/1.0 request without `Connection:
//! keep-alive`), after `user.http.keepalive_max` requests, or when the peer
//! has been silent for `user.http.keepalive_timeout_ms` (smoltcp's socket
//! timeout, which aborts). Pipelined requests are answered in order, at
//! most [`PIPELINE_PER_STEP`] per step. Requests are parsed with
//! `httparse`; errors are answered with 400 (malformed, or a body where
//! none is served), 405 (a method other than GET and HEAD), 414 (a target
//! longer than [`MAX_TARGET`], or a request line longer than [`MAX_HEAD`])
//! and 431 (more than [`MAX_HEADERS`] header fields, or a head longer than
//! [`MAX_HEAD`]), each followed by a close, since what follows the bad
//! request cannot be framed. As Apache's and nginx's keep-alive settings.
//!
//! Its [`Pool`] keeps a listen backlog and serves up to
//! `user.http.max_conns` connections; finished sockets are reclaimed. Its
//! sockets are reported as `user.http.trigger` says; it always drains (it
//! reads until would-block or a whole head is held, and answers pipelined
//! requests until none is left), so it delivers everything edge-triggered.

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
/// Socket buffer sizes (request heads, pages).
const BUF: usize = 4096;
/// Longest request head accepted (request line and header fields).
pub const MAX_HEAD: usize = 4096;
/// Longest request target accepted.
pub const MAX_TARGET: usize = 2048;
/// Header fields accepted in one request.
pub const MAX_HEADERS: usize = 32;
/// Pipelined requests answered in one step, at most; then the step yields.
pub const PIPELINE_PER_STEP: usize = 8;
/// Send-buffer room a response needs (the page and its head fit well in it).
const MAX_RESPONSE: usize = 1024;
/// Default of `user.http.keepalive_max` (Apache's MaxKeepAliveRequests).
pub const KEEPALIVE_MAX_DEFAULT: u64 = 100;
/// Largest accepted `user.http.keepalive_max`.
pub const KEEPALIVE_MAX_MAX: u64 = 1_000_000;
/// Default of `user.http.keepalive_timeout_ms` (Apache's KeepAliveTimeout).
pub const KEEPALIVE_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Bounds of `user.http.keepalive_timeout_ms`.
pub const KEEPALIVE_TIMEOUT_MS_RANGE: (u64, u64) = (100, 300_000);

#[derive(Debug, Default)]
struct Conn {
    /// Bytes received and not yet parsed into a request (at most `MAX_HEAD`).
    buf: Vec<u8>,
    /// Requests answered on this connection.
    served: u64,
    /// The last response is queued and the FIN follows it: input is discarded.
    closing: bool,
}

/// The status of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 400: malformed, or a body where none is served.
    BadRequest,
    /// 405: not GET or HEAD.
    MethodNotAllowed,
    /// 414: target or request line too long.
    UriTooLong,
    /// 431: too many or too long header fields.
    HeaderFieldsTooLarge,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::UriTooLong => "414 URI Too Long",
            Status::HeaderFieldsTooLarge => "431 Request Header Fields Too Large",
        }
    }
}

/// What the bytes received so far hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not yet a whole request head.
    Partial,
    /// A GET or HEAD request of `len` bytes.
    Request {
        /// Bytes of the head, consumed once answered.
        len: usize,
        /// HEAD: the response has no body.
        head: bool,
        /// The client wants the connection kept open afterwards.
        keep_alive: bool,
    },
    /// A request refused with `status`; the connection closes after it.
    Refused(Status),
}

/// Parse the first request head in `buf`. Bound: `httparse` over at most
/// `buf.len()` bytes and [`MAX_HEADERS`] fields.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        Ok(httparse::Status::Partial) if !buf.contains(&b'\n') => {
            return Parsed::Refused(Status::UriTooLong);
        }
        Ok(httparse::Status::Partial) => return Parsed::Refused(Status::HeaderFieldsTooLarge),
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(Status::HeaderFieldsTooLarge);
        }
        Err(_) => return Parsed::Refused(Status::BadRequest),
    };
    if req.path.map_or(0, str::len) > MAX_TARGET {
        return Parsed::Refused(Status::UriTooLong);
    }
    let head = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Parsed::Refused(Status::MethodNotAllowed),
    };
    let mut keep_alive = req.version == Some(1);
    let mut close = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let value = String::from_utf8_lossy(h.value);
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .map(|v| v.trim().parse::<u64>())
            {
                Some(Ok(0)) => {}
                // A body this server does not serve, or a malformed length:
                // the next request could not be framed.
                _ => return Parsed::Refused(Status::BadRequest),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Refused(Status::BadRequest);
        }
    }
    Parsed::Request {
        len,
        head,
        keep_alive: keep_alive && !close,
    }
}

/// The web server.
#[derive(Debug)]
pub struct Http {
    /// Requests answered
    pub requests: u64,
    /// Requests refused as malformed or too long
    pub bad_requests: u64,
    /// Requests answered on a connection that had already served one
    pub reused: u64,
    /// Requests per connection, at most (`user.http.keepalive_max`).
    pub keepalive_max: u64,
    /// Idle time after which a connection is aborted, ms
    /// (`user.http.keepalive_timeout_ms`).
    pub keepalive_timeout_ms: u64,
    pool: Pool<Conn>,
    page: String,
}

impl Http {
    /// A server with no sockets yet.
    pub fn new() -> Http {
        Http {
            requests: 0,
            bad_requests: 0,
            reused: 0,
            keepalive_max: KEEPALIVE_MAX_DEFAULT,
            keepalive_timeout_ms: KEEPALIVE_TIMEOUT_MS_DEFAULT,
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

/// Move received bytes into `conn.buf`, up to [`MAX_HEAD`] held.
fn fill(s: &mut tcp::Socket<'_>, conn: &mut Conn) {
    while s.can_recv() && conn.buf.len() < MAX_HEAD {
        let room = MAX_HEAD - conn.buf.len();
        let got = s.recv(|data| {
            let n = data.len().min(room);
            conn.buf.extend_from_slice(&data[..n]);
            (n, n)
        });
        if !matches!(got, Ok(n) if n > 0) {
            break;
        }
    }
}

/// Drop everything received (after the last response).
fn discard(s: &mut tcp::Socket<'_>) {
    while s.can_recv() {
        if s.recv(|data| (data.len(), ())).is_err() {
            break;
        }
    }
}

impl App for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn start(&mut self, netisr: &mut Netisr, reactor: &mut Reactor, first_token: usize) {
        self.pool.start(&mut netisr.sockets, reactor, first_token);
    }

    /// Answer up to [`PIPELINE_PER_STEP`] requests of one connection.
    fn step(&mut self, cx: &mut UserCx<'_>, token: Token) -> Step {
        let phase = self.pool.on_event(cx.sockets, cx.reactor, token);
        if matches!(
            phase,
            Phase::HalfOpen | Phase::New | Phase::Refused | Phase::Closing | Phase::Done
        ) {
            cx.wrote = true;
        }
        if matches!(phase, Phase::HalfOpen | Phase::Closing) {
            // Nothing to serve before the handshake completes, nor in
            // TIME-WAIT (the pool reclaims it after the last ACK is sent).
            self.pool
                .rearm(cx.sockets, cx.reactor, token, Interest::READABLE);
            return Step::DONE;
        }
        let timeout = smoltcp::time::Duration::from_millis(self.keepalive_timeout_ms);
        let Some((h, conn)) = self.pool.get(token) else {
            return Step::DONE;
        };
        let s = cx.sockets.get_mut::<tcp::Socket>(h);
        if phase == Phase::New {
            s.set_timeout(Some(timeout));
        }
        let mut answered = 0;
        let mut blocked = false;
        if conn.closing {
            discard(s);
        } else {
            fill(s, conn);
            while answered < PIPELINE_PER_STEP && !conn.closing {
                let parsed = parse(&conn.buf);
                if parsed == Parsed::Partial {
                    break;
                }
                if s.send_capacity() - s.send_queue() < MAX_RESPONSE {
                    blocked = true;
                    break;
                }
                let (status, head, keep) = match parsed {
                    Parsed::Request {
                        len,
                        head,
                        keep_alive,
                    } => {
                        conn.buf.drain(..len);
                        conn.served += 1;
                        self.requests += 1;
                        if conn.served > 1 {
                            self.reused += 1;
                        }
                        (
                            Status::Ok,
                            head,
                            keep_alive && conn.served < self.keepalive_max,
                        )
                    }
                    Parsed::Refused(status) => {
                        conn.buf.clear();
                        self.bad_requests += 1;
                        (status, false, false)
                    }
                    Parsed::Partial => break,
                };
                self.page.clear();
                render(&mut self.page, status, head, keep, self.requests);
                // MAX_RESPONSE bytes of room were checked above.
                let _ = s.send_slice(self.page.as_bytes());
                if !keep {
                    s.close(); // the FIN follows the response
                    conn.closing = true;
                    discard(s);
                }
                answered += 1;
                cx.wrote = true;
                fill(s, conn);
            }
        }
        if answered == PIPELINE_PER_STEP && !conn.closing && parse(&conn.buf) != Parsed::Partial {
            return Step {
                work: crate::kernel::time::Nanos::ZERO,
                more: true,
            };
        }
        // The peer has finished sending: close once nothing is left to answer.
        if s.state() == tcp::State::CloseWait && !s.can_recv() && !blocked {
            s.close();
            cx.wrote = true;
        }
        let interest = if blocked {
            Interest::BOTH
        } else {
            Interest::READABLE
        };
        if phase == Phase::Open {
            self.pool.keep(cx.sockets, cx.reactor, token, interest);
        } else {
            // A new connection, or a slot that listens again.
            self.pool.rearm(cx.sockets, cx.reactor, token, interest);
        }
        Step::DONE
    }
}

fn render(out: &mut String, status: Status, head: bool, keep: bool, requests: u64) {
    let body = match status {
        Status::Ok => format!(
            "<!doctype html>\n<html><head><title>pollsim</title></head><body>\n\
             <h1>pollsim</h1>\n<p>Served by a simulated kernel on smoltcp.</p>\n\
             <p>requests: {requests}</p>\n</body></html>\n"
        ),
        other => format!("{}\n", &other.line()[4..]),
    };
    let _ = write!(
        out,
        "HTTP/1.1 {}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: {}\r\n",
        status.line(),
        body.len(),
        if keep { "keep-alive" } else { "close" }
    );
    if status == Status::MethodNotAllowed {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head {
        out.push_str(&body);
    }
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
    let max = sat(KEEPALIVE_MAX_MAX);
    mib.add_rw(
        "user.http.keepalive_max",
        "Requests served on one connection, at most; the last one closes it",
        (1, max),
        move |_| (1, max),
        move |c| get(c).http.as_ref().map_or(0, |a| sat(a.keepalive_max)),
        move |c, v| {
            if let Some(a) = get_mut(c).http.as_mut() {
                a.keepalive_max = v.unsigned_abs();
            }
            Ok(())
        },
    );
    let (lo, hi) = (
        sat(KEEPALIVE_TIMEOUT_MS_RANGE.0),
        sat(KEEPALIVE_TIMEOUT_MS_RANGE.1),
    );
    mib.add_rw(
        "user.http.keepalive_timeout_ms",
        "Idle time after which a connection is aborted, ms (applies to new connections)",
        (lo, hi),
        move |_| (lo, hi),
        move |c| {
            get(c)
                .http
                .as_ref()
                .map_or(0, |a| sat(a.keepalive_timeout_ms))
        },
        move |c, v| {
            if let Some(a) = get_mut(c).http.as_mut() {
                a.keepalive_timeout_ms = v.unsigned_abs();
            }
            Ok(())
        },
    );
    mib.add_ro("user.http.requests", "Requests answered", move |c| {
        get(c).http.as_ref().map_or(0, |a| sat(a.requests))
    });
    mib.add_ro(
        "user.http.bad_requests",
        "Requests refused as malformed or too long",
        move |c| get(c).http.as_ref().map_or(0, |a| sat(a.bad_requests)),
    );
    mib.add_ro(
        "user.http.reused",
        "Requests answered on a connection that had already served one",
        move |c| get(c).http.as_ref().map_or(0, |a| sat(a.reused)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(p: Parsed) -> (usize, bool, bool) {
        match p {
            Parsed::Request {
                len,
                head,
                keep_alive,
            } => (len, head, keep_alive),
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let r = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(request(parse(r)), (r.len(), false, true));
        let r = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        assert!(!request(parse(r)).2);
        let r = b"HEAD / HTTP/1.0\r\n\r\n";
        assert_eq!(request(parse(r)), (r.len(), true, false));
        let r = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
        assert!(request(parse(r)).2);
        let r = b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n";
        assert!(!request(parse(r)).2);
    }

    #[test]
    fn pipelined_requests_are_cut_one_at_a_time() {
        let one = b"GET /a HTTP/1.1\r\n\r\n";
        let mut two = one.to_vec();
        two.extend_from_slice(b"GET /b HTTP/1.1\r\n\r\nGET /c HT");
        let (len, _, _) = request(parse(&two));
        assert_eq!(len, one.len());
        let (len, _, _) = request(parse(&two[len..]));
        assert_eq!(parse(&two[one.len() + len..]), Parsed::Partial);
    }

    #[test]
    fn errors_get_their_status() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Partial);
        assert_eq!(
            parse(b"\x00\x01 garbage\r\n\r\n"),
            Parsed::Refused(Status::BadRequest)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            Parsed::Refused(Status::MethodNotAllowed)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            Parsed::Refused(Status::BadRequest)
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET));
        assert_eq!(parse(long.as_bytes()), Parsed::Refused(Status::UriTooLong));
        let endless = format!("GET /{}", "a".repeat(MAX_HEAD));
        assert_eq!(
            parse(endless.as_bytes()),
            Parsed::Refused(Status::UriTooLong)
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let r = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse(r.as_bytes()),
            Parsed::Refused(Status::HeaderFieldsTooLarge)
        );
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}", "v".repeat(MAX_HEAD));
        assert_eq!(
            parse(big.as_bytes()),
            Parsed::Refused(Status::HeaderFieldsTooLarge)
        );
    }

    #[test]
    fn responses_say_whether_the_connection_stays() {
        let mut out = String::new();
        render(&mut out, Status::Ok, false, true, 7);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Connection: keep-alive\r\n"));
        assert!(out.contains("requests: 7"));
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        out.clear();
        render(&mut out, Status::MethodNotAllowed, false, false, 7);
        assert!(out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(out.contains("Allow: GET, HEAD\r\n") && out.contains("Connection: close"));
        out.clear();
        render(&mut out, Status::Ok, true, true, 7);
        assert!(out.ends_with("\r\n\r\n"), "HEAD has no body: {out}");
        assert!(out.len() < MAX_RESPONSE);
    }
}
