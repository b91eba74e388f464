//! The event loop serving the emulated xenstored's sockets: one thread
//! (`xenstored`), level-triggered epoll over nonblocking Unix sockets,
//! in the manner of C xenstored's single `poll` loop.
//!
//! Tokens (epoll data): [`WAKE`] is the eventfd through which
//! [`LoopCtl::send`] hands over commands (new connections and listeners,
//! listener removal, shutdown); listeners and connections use ids from
//! `Shared::next_conn`.
//!
//! Each time a connection is serviced (readable, writable, or given
//! output by another connection's request through the ready list):
//! 1. a queue that overflowed (a watch event did not fit) drops it;
//! 2. queued output is written as far as the socket takes it;
//! 3. unless backlogged (output queue half full) or at EOF, one read of
//!    up to [`READ_CHUNK`] bytes, then complete requests are executed in
//!    order while not backlogged; the input buffer so holds at most one
//!    partial request plus one chunk;
//! 4. output is written again; at EOF with nothing left to write the
//!    connection is closed;
//! 5. interest: `EPOLLIN` unless backlogged or at EOF, `EPOLLOUT` while
//!    output is queued.
//!
//! Lock order: the store (`Shared::state`), then a connection's output
//! queue, then the ready list.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;

use crate::ratelimit::LogLimit;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::MsgFlags;

/// Most queued messages one `sendmsg` of [`Conn::flush`] carries.
const FLUSH_IOVECS: usize = 64;

use super::{ConnHandle, Shared, XenstoreServer};
use crate::xenstore::wire::{Message, WireError};

/// The wake-up eventfd's token.
const WAKE: u64 = 0;
/// Bytes read from a connection per turn.
const READ_CHUNK: usize = 16 * 1024;
/// Connections accepted from one listener per turn.
const ACCEPT_BURST: usize = 64;

/// What other threads ask of the loop.
#[derive(Debug)]
pub(super) enum Cmd {
    /// Serve a connected nonblocking stream (its slot is already taken).
    Serve {
        id: u64,
        stream: UnixStream,
        domid: u32,
    },
    /// Accept connections (as dom0) on a nonblocking listener.
    Listen { id: u64, listener: UnixListener },
    /// Close a listener; `done` is signalled once it is closed.
    Unlisten { id: u64, done: mpsc::Sender<()> },
    /// Close everything and end the thread.
    Shutdown,
}

/// The handle other threads hold on the loop.
#[derive(Debug)]
pub(super) struct LoopCtl {
    /// Commands for the loop; `None` once the loop has ended, so a
    /// command sent later is dropped at once (its reply channel with it)
    /// instead of waiting forever.
    cmds: Mutex<Option<Vec<Cmd>>>,
    wake: EventFd,
    /// Connections given output since the loop last looked (see
    /// `ConnHandle::push`).
    ready: Arc<Mutex<Vec<u64>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LoopCtl {
    /// Queues `cmd` and wakes the loop.
    pub(super) fn send(&self, cmd: Cmd) {
        match lock(&self.cmds).as_mut() {
            Some(q) => q.push(cmd),
            None => return,
        }
        if let Err(e) = self.wake.write(1) {
            tracing::error!("xenstore: waking the event loop: {e}");
        }
    }
}

/// Starts the loop thread for the server behind `shared`; it ends on
/// [`Cmd::Shutdown`] or once `shared` is gone.
pub(super) fn start(shared: Weak<Shared>) -> io::Result<Arc<LoopCtl>> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
    epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
    let ctl = Arc::new(LoopCtl {
        cmds: Mutex::new(Some(Vec::new())),
        wake,
        ready: Arc::default(),
    });
    let mut lp = Loop {
        shared,
        epoll,
        ctl: ctl.clone(),
        conns: HashMap::new(),
        listeners: HashMap::new(),
        paused: Vec::new(),
        rejects: LogLimit::new(),
        accept_errors: LogLimit::new(),
    };
    thread::Builder::new()
        .name("xenstored".into())
        .spawn(move || {
            lp.run();
            // Whatever is queued (and its reply channels) goes now, and
            // later commands are dropped as they come.
            lock(&lp.ctl.cmds).take();
        })?;
    Ok(ctl)
}

/// Why a connection is closed.
#[derive(Debug)]
enum Close {
    /// The peer closed and everything was written.
    Done,
    /// Its output queue overflowed.
    SlowReader,
    /// A malformed header.
    Malformed(WireError),
    /// The socket failed.
    Io(io::Error),
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    handle: Arc<ConnHandle>,
    /// Bytes read and not yet executed.
    inbuf: Vec<u8>,
    /// The peer will send nothing more.
    eof: bool,
    interest: EpollFlags,
}

impl Conn {
    fn overflowed(&self) -> bool {
        self.handle.lock_out().overflow
    }

    /// One servicing turn (steps 1-5 of the module doc); the interest to
    /// register, or why to close.
    fn step(&mut self, server: &XenstoreServer, flags: EpollFlags) -> Result<EpollFlags, Close> {
        if self.overflowed() {
            return Err(Close::SlowReader);
        }
        self.flush().map_err(Close::Io)?;
        let readable =
            flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
        if readable && !self.eof && !self.handle.backlogged() {
            self.read_some().map_err(Close::Io)?;
        }
        self.execute(server)?;
        if self.overflowed() {
            return Err(Close::SlowReader);
        }
        self.flush().map_err(Close::Io)?;
        let pending = !self.handle.lock_out().msgs.is_empty();
        if self.eof && !pending {
            return Err(Close::Done);
        }
        let mut interest = EpollFlags::empty();
        if !self.eof && !self.handle.backlogged() {
            interest |= EpollFlags::EPOLLIN;
        }
        if pending {
            interest |= EpollFlags::EPOLLOUT;
        }
        Ok(interest)
    }

    fn read_some(&mut self) -> io::Result<()> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            return match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    Ok(())
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            };
        }
    }

    /// Executes the complete requests buffered, in order, while the
    /// output queue has room.
    fn execute(&mut self, server: &XenstoreServer) -> Result<(), Close> {
        let mut used = 0;
        while !self.handle.backlogged() {
            match Message::decode(&self.inbuf[used..]) {
                Ok(Some((msg, n))) => {
                    used += n;
                    server.dispatch(&self.handle, msg);
                }
                Ok(None) => break,
                Err(e) => return Err(Close::Malformed(e)),
            }
        }
        self.inbuf.drain(..used);
        Ok(())
    }

    /// Writes queued output until the socket would block: every queued
    /// message in one `sendmsg` (up to [`FLUSH_IOVECS`]), so that the
    /// replies to a client's pipelined requests reach it together (one
    /// wake-up, not one per reply).
    fn flush(&mut self) -> io::Result<()> {
        let fd = self.stream.as_raw_fd();
        let mut q = self.handle.lock_out();
        loop {
            let res = {
                let mut iov: Vec<std::io::IoSlice<'_>> = Vec::with_capacity(FLUSH_IOVECS);
                for (i, m) in q.msgs.iter().take(FLUSH_IOVECS).enumerate() {
                    let part = if i == 0 {
                        m.get(q.written..).unwrap_or_default()
                    } else {
                        m.as_slice()
                    };
                    iov.push(std::io::IoSlice::new(part));
                }
                if iov.is_empty() {
                    return Ok(());
                }
                nix::sys::socket::sendmsg::<()>(
                    fd,
                    &iov,
                    &[],
                    MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                    None,
                )
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    q.bytes = q.bytes.saturating_sub(n);
                    while n > 0 {
                        let Some(front) = q.msgs.front() else { break };
                        let left = front.len().saturating_sub(q.written);
                        if n >= left {
                            n -= left;
                            q.msgs.pop_front();
                            q.written = 0;
                        } else {
                            q.written += n;
                            n = 0;
                        }
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

struct Loop {
    shared: Weak<Shared>,
    epoll: Epoll,
    ctl: Arc<LoopCtl>,
    conns: HashMap<u64, Conn>,
    listeners: HashMap<u64, UnixListener>,
    /// Listeners taken out of epoll because accept ran out of
    /// descriptors; put back when a connection closes.
    paused: Vec<u64>,
    rejects: LogLimit,
    accept_errors: LogLimit,
}

impl Loop {
    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("xenstore: epoll_wait: {e}; the event loop stops");
                    break;
                }
            };
            let Some(shared) = self.shared.upgrade() else {
                break;
            };
            let server = XenstoreServer { shared };
            for ev in &events[..n] {
                match ev.data() {
                    WAKE => {
                        // EAGAIN if another turn already reset it.
                        let _ = self.ctl.wake.read();
                        if !self.commands(&server) {
                            return;
                        }
                    }
                    id if self.listeners.contains_key(&id) => self.accept(&server, id),
                    id => {
                        self.service(&server, id, ev.events());
                        // The watchers its requests gave events to get
                        // them now, not after every other connection
                        // of this turn has added its own.
                        self.serve_ready(&server);
                    }
                }
            }
            self.serve_ready(&server);
        }
    }

    /// Runs the queued commands; false on [`Cmd::Shutdown`].
    fn commands(&mut self, server: &XenstoreServer) -> bool {
        let cmds = lock(&self.ctl.cmds)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for cmd in cmds {
            match cmd {
                Cmd::Serve { id, stream, domid } => self.register(server, id, stream, domid),
                Cmd::Listen { id, listener } => {
                    let ev = EpollEvent::new(EpollFlags::EPOLLIN, id);
                    match self.epoll.add(listener.as_fd(), ev) {
                        Ok(()) => {
                            self.listeners.insert(id, listener);
                        }
                        Err(e) => tracing::error!("xenstore: cannot poll a listener: {e}"),
                    }
                }
                Cmd::Unlisten { id, done } => {
                    if let Some(l) = self.listeners.remove(&id) {
                        let _ = self.epoll.delete(l.as_fd());
                    }
                    self.paused.retain(|&p| p != id);
                    let _ = done.send(());
                }
                Cmd::Shutdown => return false,
            }
        }
        true
    }

    fn register(&mut self, server: &XenstoreServer, id: u64, stream: UnixStream, domid: u32) {
        let interest = EpollFlags::EPOLLIN;
        if let Err(e) = self
            .epoll
            .add(stream.as_fd(), EpollEvent::new(interest, id))
        {
            tracing::error!("xenstore: cannot poll a connection: {e}");
            server.release_slot();
            return;
        }
        let handle = server.handle_for(id, domid, self.ctl.ready.clone());
        self.conns.insert(
            id,
            Conn {
                stream,
                handle,
                inbuf: Vec::new(),
                eof: false,
                interest,
            },
        );
    }

    fn accept(&mut self, server: &XenstoreServer, id: u64) {
        for _ in 0..ACCEPT_BURST {
            let Some(l) = self.listeners.get(&id) else {
                return;
            };
            match l.accept() {
                Ok((stream, _)) => {
                    if !server.admit() {
                        // Accepted and closed: the peer sees EOF at once
                        // rather than hanging in the backlog.
                        drop(stream);
                        if let Some(more) = self.rejects.allow() {
                            tracing::warn!(
                                max = server.shared.config.max_connections,
                                "xenstore: too many connections, closing a new one \
                                 ({more} more since the last message)"
                            );
                        }
                        continue;
                    }
                    if let Err(e) = stream.set_nonblocking(true) {
                        tracing::warn!("xenstore: accepted connection: {e}");
                        server.release_slot();
                        continue;
                    }
                    self.register(server, server.next_id(), stream, 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(more) = self.accept_errors.allow() {
                        tracing::warn!("xenstore: accept: {e} ({more} more since)");
                    }
                    // Out of descriptors: the listener would stay
                    // readable; stop polling it until a connection closes.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        let _ = self.epoll.delete(l.as_fd());
                        self.paused.push(id);
                    }
                    return;
                }
            }
        }
    }

    fn service(&mut self, server: &XenstoreServer, id: u64, flags: EpollFlags) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match c.step(server, flags) {
            Ok(interest) => {
                if interest != c.interest {
                    let mut ev = EpollEvent::new(interest, id);
                    match self.epoll.modify(c.stream.as_fd(), &mut ev) {
                        Ok(()) => c.interest = interest,
                        Err(e) => self.close(server, id, Close::Io(e.into())),
                    }
                }
            }
            Err(why) => self.close(server, id, why),
        }
    }

    /// Services the connections given output by other connections'
    /// requests (watch events).
    fn serve_ready(&mut self, server: &XenstoreServer) {
        loop {
            let ready = std::mem::take(&mut *lock(&self.ctl.ready));
            if ready.is_empty() {
                return;
            }
            for id in ready {
                self.service(server, id, EpollFlags::empty());
            }
        }
    }

    fn close(&mut self, server: &XenstoreServer, id: u64, why: Close) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.epoll.delete(c.stream.as_fd());
        let sh = &server.shared;
        match why {
            Close::Done => {}
            Close::SlowReader => {
                // Logged when the queue overflowed.
                sh.dropped_slow_readers
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Close::Malformed(e) => {
                tracing::info!(conn = id, "xenstore: dropping connection: {e}");
                sh.dropped_malformed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Close::Io(e) => tracing::debug!(conn = id, "xenstore: connection closed: {e}"),
        }
        drop(c);
        server.disconnect(id);
        server.release_slot();
        for l in std::mem::take(&mut self.paused) {
            if let Some(listener) = self.listeners.get(&l) {
                let ev = EpollEvent::new(EpollFlags::EPOLLIN, l);
                if let Err(e) = self.epoll.add(listener.as_fd(), ev) {
                    tracing::error!("xenstore: cannot poll a listener again: {e}");
                }
            }
        }
    }
}
