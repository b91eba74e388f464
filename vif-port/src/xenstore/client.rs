//! A blocking xenstore client.
//!
//! One connection (Unix socket or `/dev/xen/xenbus`, same framing), read
//! by whichever thread needs it: a thread waiting for a reply reads the
//! connection itself (no hand-over from another thread, one wake-up less
//! per round trip), and a reader thread reads it whenever nobody else
//! does, so watch events are taken as they come. Both split what the
//! daemon sends into replies and watch events: watch events may arrive at
//! any time, also between a request and its reply, and are queued for
//! [`Client::next_event`]. Requests are serialized: one outstanding
//! request per client, like libxenstore without threads. A [`Client`] is
//! `Send + Sync`.
//!
//! Against the real daemons (C `xenstored` of Xen 4.17, Debian's default,
//! or `oxenstored`): errors arrive as `XS_ERROR` with the errno name
//! (`"ENOENT\0"`, [`ErrorCode`]); a new watch fires once right away
//! (handled like any event); transactions may end in `EAGAIN`
//! ([`Client::transaction`] retries). Through `/dev/xen/xenbus` the
//! kernel (`drivers/xen/xenbus/xenbus_dev_frontend.c`) takes one whole
//! message per `write` (we send each in one `write_all`), queues replies
//! and watch events for `read` in arrival order and allows partial
//! reads; it registers watches itself and forwards their events with the
//! same `XS_WATCH_EVENT` framing. A device connection's reader thread
//! cannot be woken on drop and ends with the process.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::wire::{
    join_strings, split_strings, ErrorCode, Message, MsgType, Perm, XENSTORE_PAYLOAD_MAX,
};
use super::XsError;

/// Default socket of the C xenstored (`/var/run` is `/run` on current
/// distributions; [`SOCKETS`] tries both).
pub const DEFAULT_SOCKET: &str = "/var/run/xenstored/socket";
/// Where [`Client::open`] looks for xenstored's socket, in order.
pub const SOCKETS: [&str; 2] = ["/run/xenstored/socket", DEFAULT_SOCKET];
/// The kernel's xenbus device (same framing as the socket).
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";
/// How often `XS_DIRECTORY_PART` restarts a listing whose generation
/// changed between chunks before giving up.
pub const MAX_TRANSACTION_RETRIES: usize = 64;
/// How long [`Client::transaction`] keeps retrying a transaction that
/// ends in `EAGAIN` before giving up with that error. libxl retries
/// without limit; a bound keeps a caller from spinning for ever on a
/// store that never lets it commit.
pub const TRANSACTION_RETRY_BUDGET: Duration = Duration::from_secs(60);
/// Longest pause between two attempts of a transaction (the cap of the
/// exponential backoff), ms.
pub const TRANSACTION_BACKOFF_MAX_MS: u64 = 100;

/// Writes [`Client::write_no_wait`] leaves unanswered at most; beyond,
/// it waits for the reply as [`Client::write`] does.
pub const MAX_UNACKED_WRITES: usize = 64;

/// Watch events a [`Client`] holds unread before it drops further ones
/// (see [`Client::next_event`]): about 100 bytes each.
pub const MAX_QUEUED_EVENTS: usize = 65_536;

/// A watch event: the path that changed (as the daemon reports it,
/// relative if the watch was registered with a relative path) and the
/// token given to [`Client::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The changed node (or the watched path, for the initial event).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

#[derive(Debug)]
struct Conn {
    writer: Box<dyn WriteDebug>,
    replies: Receiver<Message>,
    next_req_id: u32,
}

/// The bound on a client's unread events.
#[derive(Debug)]
struct EventQueue {
    queued: AtomicUsize,
    max: AtomicUsize,
    lost: AtomicBool,
}

/// Writes sent without waiting for their replies, which the reader
/// thread checks (see [`Client::write_no_wait`]).
#[derive(Debug, Default)]
struct Unacked {
    /// Request id -> path, of the writes not answered yet.
    pending: Mutex<std::collections::HashMap<u32, String>>,
    /// Writes the daemon refused.
    failures: AtomicU64,
}

impl Unacked {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u32, String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The reading side of the connection, shared by the reader thread and
/// the threads waiting for replies (whoever holds `reader` reads).
struct Io {
    reader: Mutex<std::io::BufReader<Box<dyn Read + Send>>>,
    /// The connection's descriptor, polled by the reader thread.
    fd: std::os::fd::RawFd,
    /// Where events go; taken when the reader thread ends, so that
    /// [`Client::next_event`] sees the connection closed.
    events: Mutex<Option<Sender<WatchEvent>>>,
    /// Replies read after the one the reading requester waited for.
    replies: Sender<Message>,
    queue: Arc<EventQueue>,
    unacked: Arc<Unacked>,
    /// Rate limit of the log lines about refused unacknowledged writes.
    log: Mutex<crate::ratelimit::LogLimit>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("fd", &self.fd)
            .finish_non_exhaustive()
    }
}

impl Io {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::io::BufReader<Box<dyn Read + Send>>> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handle one message: a watch event is queued (or dropped at the
    /// bound), the reply to a write nobody waits for is checked; any
    /// other reply is returned.
    fn dispatch(&self, msg: Message) -> Option<Message> {
        if msg.msg_type == MsgType::WatchEvent {
            let parts = to_strings(&msg.payload);
            if let [path, token, ..] = parts.as_slice() {
                let queue = &self.queue;
                if queue.queued.load(Ordering::SeqCst) >= queue.max.load(Ordering::Relaxed) {
                    queue.lost.store(true, Ordering::SeqCst);
                    return None;
                }
                let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tx) = events.as_ref() {
                    queue.queued.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(WatchEvent {
                        path: path.clone(),
                        token: token.clone(),
                    });
                }
            }
            return None;
        }
        let Some(path) = self.unacked.lock().remove(&msg.req_id) else {
            return Some(msg);
        };
        // The reply to a write nobody waits for.
        if msg.msg_type != MsgType::Write {
            self.unacked.failures.fetch_add(1, Ordering::Relaxed);
            let why = match msg.msg_type {
                MsgType::Error => format!("{:?}", ErrorCode::from_payload(&msg.payload)),
                t => format!("reply type {t:?}"),
            };
            let allowed = self.log.lock().unwrap_or_else(|e| e.into_inner()).allow();
            if let Some(held) = allowed {
                tracing::warn!(
                    "xenstore: writing {path} failed: {why} ({held} more such failures not logged; rate-limited)"
                );
            }
        }
        None
    }
}

/// Whether `fd` has something to read (or hung up) within `timeout_ms`
/// (-1: no limit); false on timeout or a poll error other than EINTR.
fn readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> Option<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n >= 0 {
            return Some(n > 0);
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
}

trait WriteDebug: Write + Send + std::fmt::Debug {}
impl<T: Write + Send + std::fmt::Debug> WriteDebug for T {}

/// A blocking xenstore connection.
#[derive(Debug)]
pub struct Client {
    conn: Mutex<Conn>,
    events: Mutex<Receiver<WatchEvent>>,
    /// Shared with the reader: events queued, and whether some were
    /// dropped at the bound.
    queue: Arc<EventQueue>,
    /// The watches registered (path, token), for the events that stand
    /// in for dropped ones.
    watches: Mutex<Vec<(String, String)>>,
    /// Events standing in for dropped ones, delivered first.
    pending: Mutex<std::collections::VecDeque<WatchEvent>>,
    /// A handle to shut the socket down on drop (wakes the reader).
    socket: Option<UnixStream>,
    /// Writes sent without waiting, shared with the reader.
    unacked: Arc<Unacked>,
    /// The reading side.
    io: Arc<Io>,
}

impl Client {
    /// Connects the way libxenstore does: `XENSTORED_PATH` if set (a
    /// socket, or a character device such as `/dev/xen/xenbus`), else the
    /// first of [`SOCKETS`] that accepts a connection, else
    /// [`XENBUS_DEVICE`] (xenstored in another domain, or not reachable
    /// by socket).
    pub fn open() -> Result<Client, XsError> {
        if let Some(p) = std::env::var_os("XENSTORED_PATH") {
            use std::os::unix::fs::FileTypeExt;
            let is_dev = std::fs::metadata(&p).is_ok_and(|m| m.file_type().is_char_device());
            return if is_dev {
                Client::open_xenbus(p)
            } else {
                Client::connect(p)
            };
        }
        for s in SOCKETS {
            if Path::new(s).exists() {
                match Client::connect(s) {
                    Ok(c) => return Ok(c),
                    Err(e) => tracing::debug!("{e}; trying the next"),
                }
            }
        }
        Client::open_xenbus(XENBUS_DEVICE)
    }

    /// Connects to a xenstored Unix socket.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, XsError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|source| XsError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        Client::from_stream(stream)
    }

    /// Opens the xenbus device (`/dev/xen/xenbus`).
    pub fn open_xenbus(path: impl AsRef<Path>) -> Result<Client, XsError> {
        let path = path.as_ref();
        let connect_err = |source| XsError::Connect {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(connect_err)?;
        let reader = file.try_clone().map_err(connect_err)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
        Ok(Client::from_parts(
            Box::new(reader),
            fd,
            Box::new(file),
            None,
        ))
    }

    /// Uses an already connected stream (e.g. one end of a socketpair).
    pub fn from_stream(stream: UnixStream) -> Result<Client, XsError> {
        let io_err = |source| XsError::Connect {
            path: "<stream>".into(),
            source,
        };
        let reader = stream.try_clone().map_err(io_err)?;
        let shutdown = stream.try_clone().map_err(io_err)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
        Ok(Client::from_parts(
            Box::new(reader),
            fd,
            Box::new(stream),
            Some(shutdown),
        ))
    }

    fn from_parts(
        reader: Box<dyn Read + Send>,
        fd: std::os::fd::RawFd,
        writer: Box<dyn WriteDebug>,
        socket: Option<UnixStream>,
    ) -> Client {
        let (reply_tx, replies) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        let queue = Arc::new(EventQueue {
            queued: AtomicUsize::new(0),
            max: AtomicUsize::new(MAX_QUEUED_EVENTS),
            lost: AtomicBool::new(false),
        });
        let unacked = Arc::new(Unacked::default());
        let io = Arc::new(Io {
            // Buffered: the replies to pipelined requests
            // ([`Client::read_many`]) and bursts of events arrive together
            // and are split without a system call per header and payload.
            reader: Mutex::new(std::io::BufReader::with_capacity(16 * 1024, reader)),
            fd,
            events: Mutex::new(Some(event_tx)),
            replies: reply_tx.clone(),
            queue: queue.clone(),
            unacked: unacked.clone(),
            log: Mutex::new(crate::ratelimit::LogLimit::new()),
        });
        let shared = io.clone();
        // Detached: it ends when the connection does (EOF, error, or our
        // shutdown in Drop).
        let _ = thread::Builder::new()
            .name("xenstore-reader".into())
            .spawn(move || {
                reader_loop(&shared, reply_tx);
                // The connection is gone: no more events.
                shared
                    .events
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
            });
        Client {
            conn: Mutex::new(Conn {
                writer,
                replies,
                next_req_id: 1,
            }),
            events: Mutex::new(events),
            queue,
            watches: Mutex::default(),
            pending: Mutex::default(),
            socket,
            unacked,
            io,
        }
    }

    /// The next reply: one the reader thread took, else read from the
    /// connection here (events and unacknowledged writes' replies met on
    /// the way are handled as the reader thread would).
    fn next_reply(&self, replies: &Receiver<Message>) -> Result<Message, XsError> {
        loop {
            if let Ok(m) = replies.try_recv() {
                return Ok(m);
            }
            let mut reader = self.io.lock();
            // Taken by the reader thread while we waited for the lock?
            if let Ok(m) = replies.try_recv() {
                return Ok(m);
            }
            let read = |reader: &mut std::io::BufReader<Box<dyn Read + Send>>| {
                Message::read_from(reader).map_err(|e| match e {
                    super::wire::WireError::Closed => XsError::Closed,
                    e => XsError::from(e),
                })
            };
            let Some(reply) = self.io.dispatch(read(&mut reader)?) else {
                continue;
            };
            // What came with it is handled now: nobody would read it from
            // the buffer before more arrives on the connection.
            while !reader.buffer().is_empty() {
                if let Some(later) = self.io.dispatch(read(&mut reader)?) {
                    let _ = self.io.replies.send(later);
                }
            }
            return Ok(reply);
        }
    }

    /// Sends one request and waits for its reply's payload.
    fn request(&self, op: MsgType, tx_id: u32, payload: Vec<u8>) -> Result<Vec<u8>, XsError> {
        if payload.len() > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::TooLong(payload.len()));
        }
        let first_arg = || {
            let arg = split_strings(&payload).first().copied().unwrap_or_default();
            String::from_utf8_lossy(arg).into_owned()
        };
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let req_id = conn.next_req_id;
        conn.next_req_id = conn.next_req_id.wrapping_add(1);
        let msg = Message::new(op, req_id, tx_id, payload.clone());
        msg.write_to(&mut conn.writer)?;
        loop {
            let reply = self.next_reply(&conn.replies)?;
            if reply.req_id != req_id {
                continue; // a stale reply to an abandoned request
            }
            return match reply.msg_type {
                MsgType::Error => Err(XsError::Remote {
                    code: ErrorCode::from_payload(&reply.payload),
                    op,
                    path: first_arg(),
                }),
                t if t == op => Ok(reply.payload),
                t => Err(XsError::Protocol(format!("reply type {t:?} to {op:?}"))),
            };
        }
    }

    fn request_ok(&self, op: MsgType, tx_id: u32, payload: Vec<u8>) -> Result<(), XsError> {
        self.request(op, tx_id, payload).map(|_| ())
    }

    fn do_read(&self, tx: u32, path: &str) -> Result<Vec<u8>, XsError> {
        self.request(MsgType::Read, tx, join_strings(&[path]))
    }

    fn do_read_string(&self, tx: u32, path: &str) -> Result<String, XsError> {
        String::from_utf8(self.do_read(tx, path)?)
            .map_err(|_| XsError::Protocol(format!("value of {path} is not UTF-8")))
    }

    fn do_exists(&self, tx: u32, path: &str) -> Result<bool, XsError> {
        match self.do_read(tx, path) {
            Ok(_) => Ok(true),
            Err(e) if e.is(&ErrorCode::Enoent) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn do_write(&self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        let mut payload = join_strings(&[path]);
        payload.extend_from_slice(value);
        self.request_ok(MsgType::Write, tx, payload)
    }

    fn do_directory(&self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        match self.request(MsgType::Directory, tx, join_strings(&[path])) {
            Ok(p) => Ok(to_strings(&p)),
            Err(e) if e.is(&ErrorCode::E2big) => self.directory_part(tx, path),
            Err(e) => Err(e),
        }
    }

    /// `XS_DIRECTORY_PART`: the reply is `gen\0child\0...` and ends with an
    /// extra NUL once the listing is complete. If the generation changes
    /// between chunks the listing is restarted.
    fn directory_part(&self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        'restart: for _ in 0..MAX_TRANSACTION_RETRIES {
            let mut gen: Option<Vec<u8>> = None;
            let mut listing: Vec<u8> = Vec::new();
            loop {
                let off = listing.len().to_string();
                let reply =
                    self.request(MsgType::DirectoryPart, tx, join_strings(&[path, &off]))?;
                let Some(nul) = reply.iter().position(|&b| b == 0) else {
                    return Err(XsError::Protocol(
                        "DIRECTORY_PART without generation".into(),
                    ));
                };
                let this_gen = reply[..nul].to_vec();
                if gen.as_ref().is_some_and(|g| *g != this_gen) {
                    continue 'restart;
                }
                gen = Some(this_gen);
                let body = &reply[nul + 1..];
                if body.is_empty() || body == [0] {
                    return Ok(to_strings(&listing));
                }
                if body.ends_with(&[0, 0]) {
                    listing.extend_from_slice(&body[..body.len() - 1]);
                    return Ok(to_strings(&listing));
                }
                listing.extend_from_slice(body);
            }
        }
        Err(XsError::Protocol(format!(
            "{path}: directory keeps changing"
        )))
    }

    fn do_mkdir(&self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request_ok(MsgType::Mkdir, tx, join_strings(&[path]))
    }

    fn do_rm(&self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request_ok(MsgType::Rm, tx, join_strings(&[path]))
    }

    fn do_get_perms(&self, tx: u32, path: &str) -> Result<Vec<Perm>, XsError> {
        let reply = self.request(MsgType::GetPerms, tx, join_strings(&[path]))?;
        split_strings(&reply)
            .into_iter()
            .map(|p| {
                let s = String::from_utf8_lossy(p);
                Perm::parse(&s).ok_or_else(|| XsError::Protocol(format!("bad permission {s:?}")))
            })
            .collect()
    }

    fn do_set_perms(&self, tx: u32, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        let mut parts = vec![path.to_owned()];
        parts.extend(perms.iter().map(Perm::to_string));
        self.request_ok(MsgType::SetPerms, tx, join_strings(&parts))
    }

    /// Reads a node's value.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        self.do_read(0, path)
    }

    /// Reads several nodes. On a xenstored socket in one round trip:
    /// every request is sent, in one write, before the first reply is
    /// awaited (xenstored answers a connection's requests in order), so
    /// the cost is about one round trip rather than `paths.len()`. On the
    /// kernel's xenbus device (a driver domain, or any domain without
    /// xenstored's socket) one request at a time: Linux sends a request's
    /// body from the open file's single message buffer after `write`
    /// returned (`xenbus_dev_request_and_reply` queues a pointer into
    /// it), so a second request written before the first one's reply can
    /// overwrite what the first sends. `None` for a node that does not
    /// exist (`ENOENT`); any other error fails the whole call.
    pub fn read_many(&self, paths: &[&str]) -> Result<Vec<Option<Vec<u8>>>, XsError> {
        if self.socket.is_none() {
            return paths
                .iter()
                .map(|p| match self.do_read(0, p) {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.is(&ErrorCode::Enoent) => Ok(None),
                    Err(e) => Err(e),
                })
                .collect();
        }
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let first = conn.next_req_id;
        // Every request in one write: the daemon reads and answers them
        // in one turn.
        let mut batch = Vec::new();
        for p in paths {
            let payload = join_strings(&[p]);
            if payload.len() > XENSTORE_PAYLOAD_MAX {
                return Err(XsError::TooLong(payload.len()));
            }
            let req_id = conn.next_req_id;
            conn.next_req_id = conn.next_req_id.wrapping_add(1);
            let msg = Message::new(MsgType::Read, req_id, 0, payload);
            batch.extend_from_slice(&msg.encode()?);
        }
        if !batch.is_empty() {
            conn.writer
                .write_all(&batch)
                .map_err(|e| XsError::from(super::wire::WireError::Io(e)))?;
        }
        let mut out: Vec<Option<Result<Option<Vec<u8>>, XsError>>> =
            (0..paths.len()).map(|_| None).collect();
        let mut left = paths.len();
        while left > 0 {
            let reply = self.next_reply(&conn.replies)?;
            let k = reply.req_id.wrapping_sub(first) as usize;
            let (Some(slot), Some(path)) = (out.get_mut(k), paths.get(k)) else {
                continue; // a stale reply to an abandoned request
            };
            if slot.is_some() {
                continue;
            }
            *slot = Some(match reply.msg_type {
                MsgType::Error => {
                    let code = ErrorCode::from_payload(&reply.payload);
                    if code == ErrorCode::Enoent {
                        Ok(None)
                    } else {
                        Err(XsError::Remote {
                            code,
                            op: MsgType::Read,
                            path: (*path).to_owned(),
                        })
                    }
                }
                MsgType::Read => Ok(Some(reply.payload)),
                t => Err(XsError::Protocol(format!("reply type {t:?} to Read"))),
            });
            left -= 1;
        }
        out.into_iter()
            .map(|r| r.unwrap_or(Err(XsError::Closed)))
            .collect()
    }

    /// Reads a node's value as UTF-8.
    pub fn read_string(&self, path: &str) -> Result<String, XsError> {
        self.do_read_string(0, path)
    }

    /// Whether a node exists (`ENOENT` → false; other errors are errors).
    pub fn exists(&self, path: &str) -> Result<bool, XsError> {
        self.do_exists(0, path)
    }

    /// Writes a node's value, creating it and missing parents.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        self.do_write(0, path, value.as_ref())
    }

    /// Writes a node's value as [`Client::write`] does, without waiting for
    /// the reply: the daemon answers a connection's requests in order, so
    /// every later request of this client sees the value. The reply is
    /// checked when it comes: a refusal is logged (a warning naming the
    /// path and the error, at most one a second) and counted ([`Client::unacked_failures`]).
    /// With [`MAX_UNACKED_WRITES`] writes unanswered it waits as
    /// [`Client::write`] does. On the kernel's xenbus device it always
    /// waits: a request written before the previous one was sent can
    /// overwrite it there (see [`Client::read_many`]). Errors: sending
    /// failed, or (when it waited) the daemon refused.
    pub fn write_no_wait(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        let value = value.as_ref();
        if self.socket.is_none() {
            return self.write(path, value);
        }
        let mut payload = join_strings(&[path]);
        payload.extend_from_slice(value);
        if payload.len() > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::TooLong(payload.len()));
        }
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let req_id = conn.next_req_id;
        {
            let mut unacked = self.unacked.lock();
            if unacked.len() >= MAX_UNACKED_WRITES {
                drop(unacked);
                drop(conn);
                return self.write(path, value);
            }
            // Before the request goes: the reply may come at once.
            unacked.insert(req_id, path.to_owned());
        }
        conn.next_req_id = conn.next_req_id.wrapping_add(1);
        let msg = Message::new(MsgType::Write, req_id, 0, payload);
        if let Err(e) = msg.write_to(&mut conn.writer) {
            self.unacked.lock().remove(&req_id);
            return Err(e.into());
        }
        Ok(())
    }

    /// Writes of [`Client::write_no_wait`] the daemon refused so far.
    pub fn unacked_failures(&self) -> u64 {
        self.unacked.failures.load(Ordering::Relaxed)
    }

    /// Lists a node's children (names, not paths).
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.do_directory(0, path)
    }

    /// Creates a node (and missing parents); OK if it exists.
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.do_mkdir(0, path)
    }

    /// Removes a node and its subtree.
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        self.do_rm(0, path)
    }

    /// A node's permissions: owner and default first.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.do_get_perms(0, path)
    }

    /// Sets a node's permissions: owner and default first.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.do_set_perms(0, path, perms)
    }

    /// Registers a watch on `path` and its descendants. The daemon sends
    /// an initial event for `path` right away.
    pub fn watch(&self, path: &str, token: &str) -> Result<(), XsError> {
        self.request_ok(MsgType::Watch, 0, join_strings(&[path, token]))?;
        self.lock_watches()
            .push((path.to_owned(), token.to_owned()));
        Ok(())
    }

    /// Removes a watch registered with the same path and token.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<(), XsError> {
        self.request_ok(MsgType::Unwatch, 0, join_strings(&[path, token]))?;
        self.lock_watches().retain(|(p, t)| p != path || t != token);
        Ok(())
    }

    /// Removes all of this connection's watches (`XS_RESET_WATCHES`).
    pub fn reset_watches(&self) -> Result<(), XsError> {
        self.request_ok(MsgType::ResetWatches, 0, join_strings(&[""]))?;
        self.lock_watches().clear();
        Ok(())
    }

    fn lock_watches(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set how many unread watch events this client holds (default
    /// [`MAX_QUEUED_EVENTS`], at least 1).
    pub fn set_max_queued_events(&self, max: usize) {
        self.queue.max.store(max.max(1), Ordering::Relaxed);
    }

    /// The next queued watch event, waiting up to `timeout`; `Ok(None)` on
    /// timeout, [`XsError::Closed`] once the connection is gone and the
    /// queue is empty.
    ///
    /// At most [`MAX_QUEUED_EVENTS`] events wait unread; further ones are
    /// dropped, and then every registered watch gets one event with its
    /// own path (what `XS_WATCH`'s initial event says: look at everything
    /// under it again), delivered before the rest of the queue, so that a
    /// caller that fell behind loses no change, only their detail.
    pub fn next_event(&self, timeout: Duration) -> Result<Option<WatchEvent>, XsError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if self.queue.lost.swap(false, Ordering::SeqCst) {
            pending.extend(self.lock_watches().iter().map(|(p, t)| WatchEvent {
                path: p.clone(),
                token: t.clone(),
            }));
        }
        if let Some(ev) = pending.pop_front() {
            return Ok(Some(ev));
        }
        drop(pending);
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        match events.recv_timeout(timeout) {
            Ok(ev) => {
                self.queue.queued.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(ev))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(XsError::Closed),
        }
    }

    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    pub fn get_domain_path(&self, domid: u32) -> Result<String, XsError> {
        let reply = self.request(
            MsgType::GetDomainPath,
            0,
            join_strings(&[domid.to_string()]),
        )?;
        to_strings(&reply)
            .into_iter()
            .next()
            .ok_or_else(|| XsError::Protocol("empty GET_DOMAIN_PATH reply".into()))
    }

    /// Starts a transaction. It aborts on drop unless committed.
    pub fn transaction_start(&self) -> Result<Transaction<'_>, XsError> {
        let reply = self.request(MsgType::TransactionStart, 0, join_strings(&[""]))?;
        let id = to_strings(&reply)
            .first()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|&id| id != 0)
            .ok_or_else(|| XsError::Protocol("bad TRANSACTION_START reply".into()))?;
        Ok(Transaction {
            client: self,
            id,
            done: false,
        })
    }

    /// Runs `f` in a transaction and commits it, retrying the whole thing
    /// when the commit or an operation inside fails with `EAGAIN` (another
    /// client changed a node it touched), for up to
    /// [`TRANSACTION_RETRY_BUDGET`] (libxl's callers retry without limit).
    /// Between attempts it backs off exponentially with full jitter: a
    /// random pause in `[0, min(2^attempt, 100)]` ms, so that many clients
    /// conflicting with each other (guests created together all add a
    /// child to `/local/domain/0/backend/vif`) spread out instead of
    /// retrying in step. Any other error from `f` aborts the transaction
    /// and is returned.
    pub fn transaction<T, F>(&self, mut f: F) -> Result<T, XsError>
    where
        F: FnMut(&Transaction<'_>) -> Result<T, XsError>,
    {
        let mut attempt = 0;
        let start = std::time::Instant::now();
        let mut jitter = Jitter::new();
        loop {
            attempt += 1;
            let tx = self.transaction_start()?;
            let result = match f(&tx) {
                Ok(v) => tx.commit().map(|()| v),
                Err(e) => {
                    let _ = tx.abort();
                    Err(e)
                }
            };
            match result {
                Err(e)
                    if e.is(&ErrorCode::Eagain) && start.elapsed() < TRANSACTION_RETRY_BUDGET =>
                {
                    std::thread::sleep(retry_pause(attempt, &mut jitter));
                }
                other => return other,
            }
        }
    }
}

/// The pause before retry `attempt` (1-based) of a transaction that ended
/// in `EAGAIN`: exponential backoff with full jitter, uniform in
/// `[0, min(2^attempt, TRANSACTION_BACKOFF_MAX_MS)]` ms.
fn retry_pause(attempt: usize, jitter: &mut Jitter) -> Duration {
    let cap_us = 1000 * (1u64 << attempt.min(16)).min(TRANSACTION_BACKOFF_MAX_MS);
    Duration::from_micros(jitter.next() % (cap_us + 1))
}

/// Pseudo-random numbers for backoff jitter (xorshift64*), seeded from
/// the standard library's per-process random hash keys, the time and the
/// thread, so that processes started together do not draw the same
/// pauses. Not for anything that needs unpredictability.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Jitter(h.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(s) = &self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// An open transaction: the same operations as [`Client`], isolated until
/// [`commit`](Transaction::commit). Dropping it aborts.
#[derive(Debug)]
pub struct Transaction<'a> {
    client: &'a Client,
    id: u32,
    done: bool,
}

impl Transaction<'_> {
    /// The transaction id (`tx_id` on the wire).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Reads a node's value.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        self.client.do_read(self.id, path)
    }

    /// Reads a node's value as UTF-8.
    pub fn read_string(&self, path: &str) -> Result<String, XsError> {
        self.client.do_read_string(self.id, path)
    }

    /// Whether a node exists.
    pub fn exists(&self, path: &str) -> Result<bool, XsError> {
        self.client.do_exists(self.id, path)
    }

    /// Writes a node's value.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        self.client.do_write(self.id, path, value.as_ref())
    }

    /// Lists a node's children.
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.client.do_directory(self.id, path)
    }

    /// Creates a node.
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.client.do_mkdir(self.id, path)
    }

    /// Removes a node and its subtree.
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        self.client.do_rm(self.id, path)
    }

    /// A node's permissions.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.client.do_get_perms(self.id, path)
    }

    /// Sets a node's permissions.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.client.do_set_perms(self.id, path, perms)
    }

    /// Commits; `EAGAIN` means another change conflicted and nothing was
    /// applied.
    pub fn commit(mut self) -> Result<(), XsError> {
        self.end(true)
    }

    /// Discards the transaction's changes.
    pub fn abort(mut self) -> Result<(), XsError> {
        self.end(false)
    }

    fn end(&mut self, commit: bool) -> Result<(), XsError> {
        self.done = true;
        let arg = if commit { "T" } else { "F" };
        self.client
            .request_ok(MsgType::TransactionEnd, self.id, join_strings(&[arg]))
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.end(false);
        }
    }
}

fn to_strings(payload: &[u8]) -> Vec<String> {
    split_strings(payload)
        .into_iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Reads the connection whenever it has something and nobody else is
/// reading it (a thread waiting for its reply reads it itself): events
/// are queued, replies passed to the requester. Ends with the connection.
fn reader_loop(io: &Io, replies: Sender<Message>) {
    loop {
        match readable(io.fd, -1) {
            Some(true) => {}
            Some(false) => continue,
            None => return,
        }
        let mut reader = io.lock();
        // What a requester left for us (or nothing: it read it all).
        while !reader.buffer().is_empty() || readable(io.fd, 0) == Some(true) {
            match Message::read_from(&mut *reader) {
                Ok(msg) => {
                    if let Some(reply) = io.dispatch(msg) {
                        if replies.send(reply).is_err() {
                            return;
                        }
                    }
                }
                Err(_) => return,
            }
        }
    }
}
