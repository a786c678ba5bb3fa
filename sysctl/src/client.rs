//! The client side of the control socket, and the [`Transport`] seam that
//! lets the sysctl(8) front end run against a socket or an in-memory MIB.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Mib;
use crate::proto::{Reply, Request, VERSION};
use crate::serve;

/// The directory of the instances' control sockets.
pub const SOCKET_DIR: &str = "/run/pollsim";

/// The control socket of the instance `name`: `/run/pollsim/NAME.sock`.
pub fn socket_path(name: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{name}.sock"))
}

/// How long a client waits for the server to take a request or answer it.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The longest reply line a client reads, in bytes: far above what any MIB
/// of this project dumps, and a bound against a misbehaving peer.
pub const MAX_REPLY: u64 = 16 * 1024 * 1024;

/// Why talking to an instance failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket: it is missing, or left by an instance
    /// that is gone (connection refused).
    #[error("no instance listens on {}", path.display())]
    NoInstance {
        /// The socket tried.
        path: PathBuf,
    },
    /// The socket exists but reading or writing it failed or timed out.
    #[error("control socket {}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The peer answered something that is not a reply of this protocol.
    #[error("control socket {}: protocol error: {reason}", path.display())]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// A blocking connection to one instance's control socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the socket at `path`, with read and write timeouts of
    /// [`TIMEOUT`].
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let path = path.to_path_buf();
        let stream = match UnixStream::connect(&path) {
            Ok(stream) => stream,
            Err(e) if is_no_instance(&e) => return Err(ClientError::NoInstance { path }),
            Err(source) => return Err(ClientError::Io { path, source }),
        };
        let setup = || -> io::Result<UnixStream> {
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.set_write_timeout(Some(TIMEOUT))?;
            stream.try_clone()
        };
        match setup() {
            Ok(writer) => Ok(Client {
                path,
                reader: BufReader::new(stream),
                writer,
            }),
            Err(source) => Err(ClientError::Io { path, source }),
        }
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and waits for its reply.
    pub fn call(&mut self, req: &Request) -> Result<Reply, ClientError> {
        let io_err = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let line = req.to_line();
        self.writer.write_all(line.as_bytes()).map_err(io_err)?;
        let mut buf = Vec::new();
        let mut limited = (&mut self.reader).take(MAX_REPLY);
        limited.read_until(b'\n', &mut buf).map_err(io_err)?;
        if buf.last() != Some(&b'\n') {
            let reason = if buf.is_empty() {
                "connection closed without a reply".to_string()
            } else {
                format!("reply truncated after {} bytes", buf.len())
            };
            return Err(self.protocol(reason));
        }
        let reply: Reply =
            serde_json::from_slice(&buf).map_err(|e| self.protocol(format!("bad reply: {e}")))?;
        if reply.v != VERSION {
            let reason = format!("instance speaks version {}, not {VERSION}", reply.v);
            return Err(self.protocol(reason));
        }
        Ok(reply)
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Whether a connect error means no instance is there.
fn is_no_instance(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Something that answers requests: a socket, or a MIB in this process.
/// The sysctl(8) front end ([`crate::cmd`]) talks only to this.
pub trait Transport {
    /// Sends `req` and returns the reply, or a message saying why no reply
    /// came (printed to the user as is).
    fn call(&mut self, req: &Request) -> Result<Reply, String>;
}

impl Transport for Client {
    fn call(&mut self, req: &Request) -> Result<Reply, String> {
        Client::call(self, req).map_err(|e| e.to_string())
    }
}

/// A transport to a MIB in this process: each request goes through the
/// same encoding and [`serve::handle_line`] as over the socket.
pub struct Local<'a, C> {
    mib: &'a Mib<C>,
    ctx: &'a mut C,
}

impl<'a, C> Local<'a, C> {
    /// A transport serving `mib` over `ctx`.
    pub fn new(mib: &'a Mib<C>, ctx: &'a mut C) -> Local<'a, C> {
        Local { mib, ctx }
    }
}

impl<C> Transport for Local<'_, C> {
    fn call(&mut self, req: &Request) -> Result<Reply, String> {
        let reply = serve::handle_line(self.mib, self.ctx, req.to_line().as_bytes());
        serde_json::from_str(&reply).map_err(|e| format!("bad reply: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::thread;

    use super::*;
    use crate::proto::ErrorKind;
    use crate::serve::LineBuffer;
    use crate::testmib::{Ctx, mib};

    fn temp_socket(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir();
        dir.join(format!("pollsim-sysctl-{tag}-{}.sock", std::process::id()))
    }

    /// Serves one connection with the MIB until the peer hangs up.
    fn serve_one(listener: &UnixListener) {
        let (mut conn, _) = listener.accept().unwrap();
        let (m, mut c) = (mib(), Ctx::default());
        let mut lines = LineBuffer::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).unwrap();
            if n == 0 {
                return;
            }
            lines.push(&chunk[..n]);
            while let Some(frame) = lines.next_frame() {
                let reply = serve::handle_frame(&m, &mut c, &frame);
                conn.write_all(reply.as_bytes()).unwrap();
            }
        }
    }

    #[test]
    fn round_trip_over_a_socket() {
        let path = temp_socket("rt");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || serve_one(&listener));
        let mut client = Client::connect(&path).unwrap();
        assert_eq!(client.path(), path);
        let r = client
            .call(&Request::get("kern.polling.burst_max"))
            .unwrap();
        assert_eq!(r.nodes[0].value_text(), "150");
        let r = client.call(&Request::set("kern.polling.burst_max", "300"));
        assert_eq!(r.unwrap().set[0].change_text(), "150 -> 300");
        let big = Request::get(&"x".repeat(crate::proto::MAX_REQUEST * 2));
        let r = Transport::call(&mut client, &big).unwrap();
        assert_eq!(r.error.unwrap().kind, ErrorKind::TooLarge);
        let r = Transport::call(&mut client, &Request::get("kern.polling.burst_max"));
        assert_eq!(r.unwrap().nodes[0].value_text(), "300", "still serving");
        drop(client);
        server.join().unwrap();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_or_dead_socket_is_no_instance() {
        let path = temp_socket("missing");
        let _ = std::fs::remove_file(&path);
        let err = Client::connect(&path).unwrap_err();
        assert!(matches!(err, ClientError::NoInstance { .. }), "{err}");
        // A stale socket file whose listener is gone: connection refused.
        drop(UnixListener::bind(&path).unwrap());
        let err = Client::connect(&path).unwrap_err();
        assert!(matches!(err, ClientError::NoInstance { .. }), "{err}");
        assert!(err.to_string().starts_with("no instance listens on "));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn peer_hanging_up_is_a_protocol_error() {
        let path = temp_socket("hangup");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let _ = conn.read(&mut buf).unwrap();
            conn.write_all(b"{\"v\":1,\"ok\"").unwrap();
        });
        let mut client = Client::connect(&path).unwrap();
        let err = client.call(&Request::get("")).unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn socket_paths() {
        assert_eq!(
            socket_path("default"),
            Path::new("/run/pollsim/default.sock")
        );
    }

    #[test]
    fn local_goes_through_the_wire_format() {
        let (m, mut c) = (mib(), Ctx::default());
        let mut local = Local::new(&m, &mut c);
        let r = local.call(&Request::set("kern.offset", "-5")).unwrap();
        assert!(r.ok);
        assert_eq!(c.offset, -5);
    }
}
