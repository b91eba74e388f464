//! An emulated xenstored.
//!
//! Design, simplest thing that is correct:
//! - **Store**: one `Tree` of absolute paths → nodes (value, permission
//!   list, child names, generation), under one mutex with everything else
//!   (transactions, watches, quota buckets). Every change gets a fresh
//!   generation from a global counter; a parent's generation changes when
//!   its set of children does.
//! - **Permissions** (Xen semantics): a node's first entry names its owner
//!   and the access of every domain not listed after it. Dom0 is
//!   privileged and may do anything; the owner may do anything; other
//!   domains get their own entry's access or the default. Reads
//!   (`READ`, `DIRECTORY`, `GET_PERMS`) need `r`, changes need `w`;
//!   creating a node needs `w` on its nearest existing ancestor. New nodes
//!   copy that ancestor's permissions and, when an unprivileged domain
//!   creates them, get it as owner (as C xenstored's `construct_node`).
//!   `SET_PERMS` needs ownership, and only dom0 may change the owner
//!   (`EPERM`). Denials are `EACCES`.
//! - **Watches** fire on a change to the watched path or any descendant
//!   (and, on `RM`, for watches below the removed node, with the watch's
//!   own path), with the path in the form it was registered (relative
//!   paths stay relative). Unprivileged watchers only see events for nodes
//!   they may read. `WATCH` queues the initial event right after its `OK`.
//!   `@introduceDomain`/`@releaseDomain` are accepted and fired by
//!   `INTRODUCE`/`RELEASE`.
//! - **Transactions** copy nothing at `TRANSACTION_START`, as C xenstored
//!   since Xen 4.9: a transaction holds an overlay of the nodes it
//!   created, changed or removed (a node is copied when the transaction
//!   first changes it) and reads everything else from the live store.
//!   Every node a transaction looks at or changes is recorded with its
//!   generation at first access; `TRANSACTION_END "T"` commits only if
//!   none of those changed in the store meanwhile, by moving the overlay's
//!   nodes in and firing their watches, else answers `EAGAIN` and applies
//!   nothing. So a transaction sees its own writes, others see them only
//!   at commit, and one that read a value changed since cannot commit.
//!   Memory is proportional to what transactions touched
//!   ([`XenstoreServer::transaction_nodes`]), and each connection may
//!   have [`ServerConfig::max_transactions_per_conn`] open (`EQUOTA`).
//! - **Quotas**: a token bucket of requests per second per unprivileged
//!   domain (over quota: `EQUOTA` reply, the request is not executed),
//!   per-connection caps on watches (for unprivileged domains: dom0
//!   holds a watch per vif) and on open transactions (every connection),
//!   and a cap on
//!   the nodes each unprivileged domain owns (`EQUOTA`, checked when it
//!   creates nodes and when it commits a transaction that does).
//! - **Connections** are served by one event-loop thread per server
//!   (`xenstored`, epoll over nonblocking sockets, see `evloop`): one
//!   descriptor per connection, plus the loop's epoll and wake-up
//!   descriptors; the listening sockets are served by the same loop.
//!   Requests of a connection are executed in order. At most
//!   [`ServerConfig::max_connections`] are open; beyond, a socket
//!   connection is accepted and closed (a counter, a log line at most
//!   once a second). Each connection's output (replies and watch events)
//!   is queued up to [`ServerConfig::max_queued_messages`] and
//!   [`ServerConfig::max_queued_bytes`] (dom0's, a backend watching
//!   every device, [`PRIVILEGED_QUEUE_FACTOR`] times that): past half of either the loop
//!   stops reading its requests (a client not reading its replies only
//!   stalls itself), and a watch event that does not fit drops the
//!   connection (a peer not reading its events). A malformed header
//!   (payload over `XENSTORE_PAYLOAD_MAX`) drops the connection;
//!   malformed payloads get `EINVAL`. Nothing a peer sends can panic the
//!   daemon. [`XenstoreServer::stats`] counts all this.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::client::Client;
use super::wire::{
    join_strings, split_strings, Access, ErrorCode, Message, MsgType, Perm, HEADER_LEN,
    XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX,
};
use super::XsError;

mod evloop;

/// Limits of the emulated daemon.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests per second allowed to each unprivileged domain (all its
    /// connections together); 0 disables the limit. Dom0 is never limited.
    pub quota_rate: u32,
    /// Token-bucket size: how many requests a domain may burst.
    pub quota_burst: u32,
    /// Watches one connection of an unprivileged domain may hold (dom0,
    /// the backend with a watch per vif, is never limited, as in C
    /// xenstored).
    pub max_watches_per_conn: usize,
    /// Transactions one connection may have open, dom0's included;
    /// `TRANSACTION_START` beyond answers `EQUOTA`. C xenstored's
    /// `quota-max-transaction` (default 10) counts per domain, exempts
    /// dom0 and answers `ENOSPC`; here every connection (the dom0 socket's
    /// too) is capped, and `EQUOTA` is what all our quotas answer.
    pub max_transactions_per_conn: usize,
    /// Watch events and replies queued per connection before a peer that
    /// does not read them is disconnected; requests stop being read at
    /// half of it (at least 2). Dom0's connections get
    /// [`PRIVILEGED_QUEUE_FACTOR`] times as much.
    pub max_queued_messages: usize,
    /// Bytes queued per connection (headers included) before a peer that
    /// does not read them is disconnected; requests stop being read at
    /// half of it (at least two messages of `XENSTORE_PAYLOAD_MAX`).
    /// Dom0's connections get [`PRIVILEGED_QUEUE_FACTOR`] times as much.
    pub max_queued_bytes: usize,
    /// Connections served at once, in-process ones included; beyond, a
    /// socket connection is accepted and closed, an in-process one is
    /// refused ([`ServeError::TooManyConnections`]). C xenstored has no
    /// such cap; each connection costs a descriptor and its buffers.
    pub max_connections: usize,
    /// Nodes an unprivileged domain may own (as C xenstored's entry
    /// quota); 0 disables the limit. Dom0 is never limited.
    pub max_nodes_per_domain: usize,
}

/// How many times [`ServerConfig::max_queued_messages`] and
/// [`ServerConfig::max_queued_bytes`] a dom0 connection may have queued.
/// A backend in dom0 watches every device: guests created together fire
/// thousands of events at it at once (one per node their toolstack
/// transaction wrote), and dropping it would strand every device. C
/// xenstored exempts dom0 from its per-domain limits altogether; here it
/// stays bounded (64 × 1024 events, 16 MiB by default).
pub const PRIVILEGED_QUEUE_FACTOR: usize = 64;

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            quota_rate: 1000,
            quota_burst: 1000,
            max_watches_per_conn: 128,
            max_transactions_per_conn: 10,
            max_queued_messages: 1024,
            max_queued_bytes: 256 * 1024,
            max_connections: 1024,
            max_nodes_per_domain: 1000,
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
    children: BTreeSet<String>,
    gen: u64,
}

/// The store: absolute path → node. `/` always exists.
#[derive(Debug)]
struct Tree {
    nodes: HashMap<String, Node>,
    /// Owner (first permission's domain) → nodes it owns; kept by
    /// [`Tree::insert`] and [`Tree::remove`].
    owned: HashMap<u32, usize>,
}

impl Tree {
    fn new() -> Tree {
        let mut t = Tree {
            nodes: HashMap::new(),
            owned: HashMap::new(),
        };
        let n0 = vec![Perm::new(Access::None, 0)];
        t.insert(
            "/".into(),
            Node {
                value: Vec::new(),
                perms: n0.clone(),
                children: BTreeSet::new(),
                gen: 0,
            },
        );
        for p in ["/local", "/local/domain", "/local/domain/0", "/tool"] {
            let parent = parent_of(p).to_owned();
            if let Some(par) = t.nodes.get_mut(&parent) {
                par.children.insert(basename(p).to_owned());
            }
            t.insert(
                p.into(),
                Node {
                    value: Vec::new(),
                    perms: n0.clone(),
                    children: BTreeSet::new(),
                    gen: 0,
                },
            );
        }
        t
    }

    fn owner(node: &Node) -> Option<u32> {
        node.perms.first().map(|p| p.domid)
    }

    fn count(&mut self, node: &Node, up: bool) {
        let Some(owner) = Tree::owner(node) else {
            return;
        };
        let n = self.owned.entry(owner).or_insert(0);
        if up {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owned.remove(&owner);
            }
        }
    }
}

/// Access to nodes: the store itself ([`Tree`]) or a transaction's view
/// of it ([`TxView`]). Changes keep the per-owner node counts.
trait Nodes {
    fn node(&self, path: &str) -> Option<&Node>;
    /// The node, to change it (a transaction takes its own copy first).
    fn node_mut(&mut self, path: &str) -> Option<&mut Node>;
    fn insert(&mut self, path: String, node: Node);
    fn remove(&mut self, path: &str);
    /// Nodes `domid` owns.
    fn owned_by(&self, domid: u32) -> usize;
    /// Changes a node's permissions (and so maybe its owner).
    fn set_perms(&mut self, path: &str, perms: Vec<Perm>) -> Option<&mut Node>;
}

impl Nodes for Tree {
    fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }

    fn insert(&mut self, path: String, node: Node) {
        self.count(&node, true);
        if let Some(old) = self.nodes.insert(path, node) {
            self.count(&old, false);
        }
    }

    fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.count(&old, false);
        }
    }

    fn owned_by(&self, domid: u32) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    fn set_perms(&mut self, path: &str, perms: Vec<Perm>) -> Option<&mut Node> {
        let mut node = self.nodes.remove(path)?;
        self.count(&node, false);
        node.perms = perms;
        self.insert(path.to_owned(), node);
        self.nodes.get_mut(path)
    }
}

/// What a transaction changed: its own copies of the nodes it created,
/// changed or removed, nothing else (C xenstored's transaction-specific
/// nodes, since Xen 4.9).
#[derive(Debug, Default)]
struct Overlay {
    /// Path → the transaction's version (`None`: removed in it).
    nodes: HashMap<String, Option<Node>>,
    /// Owner → nodes owned in the transaction minus in the store.
    owned: HashMap<u32, isize>,
}

impl Overlay {
    fn count(&mut self, owner: Option<u32>, delta: isize) {
        if let Some(owner) = owner {
            *self.owned.entry(owner).or_insert(0) += delta;
        }
    }
}

/// A transaction's view: its [`Overlay`] over the live store. Nodes it
/// did not change are read from the store; conflicts with changes made
/// there meanwhile are caught at commit by generation ([`Log::accessed`]).
struct TxView<'a> {
    base: &'a Tree,
    over: &'a mut Overlay,
}

impl Nodes for TxView<'_> {
    fn node(&self, path: &str) -> Option<&Node> {
        match self.over.nodes.get(path) {
            Some(n) => n.as_ref(),
            None => self.base.nodes.get(path),
        }
    }

    fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        if !self.over.nodes.contains_key(path) {
            let copy = self.base.nodes.get(path)?.clone();
            self.over.nodes.insert(path.to_owned(), Some(copy));
        }
        self.over.nodes.get_mut(path)?.as_mut()
    }

    fn insert(&mut self, path: String, node: Node) {
        if let Some(old) = self.node(&path).map(Tree::owner) {
            self.over.count(old, -1);
        }
        self.over.count(Tree::owner(&node), 1);
        self.over.nodes.insert(path, Some(node));
    }

    fn remove(&mut self, path: &str) {
        if let Some(old) = self.node(path).map(Tree::owner) {
            self.over.count(old, -1);
            self.over.nodes.insert(path.to_owned(), None);
        }
    }

    fn owned_by(&self, domid: u32) -> usize {
        let delta = self.over.owned.get(&domid).copied().unwrap_or(0);
        self.base.owned_by(domid).saturating_add_signed(delta)
    }

    fn set_perms(&mut self, path: &str, perms: Vec<Perm>) -> Option<&mut Node> {
        let old = Tree::owner(self.node(path)?);
        self.over.count(old, -1);
        self.over.count(perms.first().map(|p| p.domid), 1);
        let node = self.node_mut(path)?;
        node.perms = perms;
        Some(node)
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// What `domid` may do on a node with `perms`.
fn access_for(domid: u32, perms: &[Perm]) -> Access {
    if domid == 0 {
        return Access::Both;
    }
    let Some(first) = perms.first() else {
        return Access::None;
    };
    if first.domid == domid {
        return Access::Both;
    }
    perms[1..]
        .iter()
        .find(|p| p.domid == domid)
        .map_or(first.access, |p| p.access)
}

/// A change that may fire watches.
#[derive(Debug, Clone)]
struct Event {
    path: String,
    /// The node's permissions (before removal for `RM`), for filtering
    /// unprivileged watchers.
    perms: Vec<Perm>,
    removed: bool,
}

/// What an operation (or a whole transaction) read and changed.
#[derive(Debug, Default)]
struct Log {
    /// Path → generation at first access (`None`: did not exist).
    accessed: HashMap<String, Option<u64>>,
    /// Paths created, changed or removed.
    dirty: BTreeSet<String>,
    events: Vec<Event>,
}

/// Operations on the store or on a transaction's view of it.
struct Op<'a, N: Nodes> {
    tree: &'a mut N,
    gen: &'a mut u64,
    log: &'a mut Log,
    domid: u32,
    /// [`ServerConfig::max_nodes_per_domain`].
    max_nodes: usize,
}

impl<N: Nodes> Op<'_, N> {
    fn touch(&mut self, path: &str) {
        let tree = &*self.tree;
        self.log
            .accessed
            .entry(path.to_owned())
            .or_insert_with(|| tree.node(path).map(|n| n.gen));
    }

    fn next_gen(&mut self) -> u64 {
        *self.gen += 1;
        *self.gen
    }

    /// The node at `path` if `domid` may read it (or write it, if
    /// `need_write`); records the access.
    fn get(&mut self, path: &str, need_write: bool) -> Result<&Node, ErrorCode> {
        self.touch(path);
        let domid = self.domid;
        let node = self.tree.node(path).ok_or(ErrorCode::Enoent)?;
        let acc = access_for(domid, &node.perms);
        let ok = if need_write {
            acc.can_write()
        } else {
            acc.can_read()
        };
        if ok {
            Ok(node)
        } else {
            Err(ErrorCode::Eacces)
        }
    }

    fn read(&mut self, path: &str) -> Result<Vec<u8>, ErrorCode> {
        Ok(self.get(path, false)?.value.clone())
    }

    fn directory(&mut self, path: &str) -> Result<(u64, Vec<u8>), ErrorCode> {
        let node = self.get(path, false)?;
        Ok((
            node.gen,
            join_strings(&node.children.iter().collect::<Vec<_>>()),
        ))
    }

    fn get_perms(&mut self, path: &str) -> Result<Vec<u8>, ErrorCode> {
        let node = self.get(path, false)?;
        let strs: Vec<String> = node.perms.iter().map(Perm::to_string).collect();
        Ok(join_strings(&strs))
    }

    /// Creates `path` and missing parents; `Ok(false)` if it existed.
    fn create(&mut self, path: &str) -> Result<bool, ErrorCode> {
        if self.tree.node(path).is_some() {
            self.get(path, true)?;
            return Ok(false);
        }
        let mut missing = vec![path.to_owned()];
        let mut anc = parent_of(path).to_owned();
        while self.tree.node(&anc).is_none() {
            missing.push(anc.clone());
            anc = parent_of(&anc).to_owned();
        }
        for m in &missing {
            self.touch(m);
        }
        let mut perms = self.get(&anc, true)?.perms.clone();
        if self.domid != 0 {
            if let Some(owner) = perms.first_mut() {
                owner.domid = self.domid;
            }
            if self.max_nodes != 0
                && self.tree.owned_by(self.domid) + missing.len() > self.max_nodes
            {
                return Err(ErrorCode::Equota);
            }
        }
        for m in missing.iter().rev() {
            let gen = self.next_gen();
            let parent = parent_of(m).to_owned();
            if let Some(par) = self.tree.node_mut(&parent) {
                par.children.insert(basename(m).to_owned());
                par.gen = gen;
            }
            self.log.dirty.insert(parent);
            self.tree.insert(
                m.clone(),
                Node {
                    value: Vec::new(),
                    perms: perms.clone(),
                    children: BTreeSet::new(),
                    gen,
                },
            );
            self.log.dirty.insert(m.clone());
        }
        Ok(true)
    }

    fn event(&mut self, path: &str, removed: bool, perms: Vec<Perm>) {
        self.log.events.push(Event {
            path: path.to_owned(),
            perms,
            removed,
        });
    }

    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), ErrorCode> {
        self.create(path)?;
        let gen = self.next_gen();
        self.get(path, true)?;
        let node = self.tree.node_mut(path).ok_or(ErrorCode::Enoent)?;
        node.value = value.to_vec();
        node.gen = gen;
        let perms = node.perms.clone();
        self.log.dirty.insert(path.to_owned());
        self.event(path, false, perms);
        Ok(())
    }

    fn mkdir(&mut self, path: &str) -> Result<(), ErrorCode> {
        if self.create(path)? {
            let perms = self.get(path, false).map(|n| n.perms.clone());
            self.event(path, false, perms.unwrap_or_default());
        }
        Ok(())
    }

    fn rm(&mut self, path: &str) -> Result<(), ErrorCode> {
        if path == "/" {
            return Err(ErrorCode::Einval);
        }
        self.touch(path);
        if self.tree.node(path).is_none() {
            let parent = parent_of(path);
            self.touch(parent);
            return if self.tree.node(parent).is_some() {
                Ok(())
            } else {
                Err(ErrorCode::Enoent)
            };
        }
        let perms = self.get(path, true)?.perms.clone();
        let mut stack = vec![path.to_owned()];
        let mut doomed = Vec::new();
        while let Some(p) = stack.pop() {
            if let Some(n) = self.tree.node(&p) {
                stack.extend(n.children.iter().map(|c| child_path(&p, c)));
            }
            doomed.push(p);
        }
        for p in doomed {
            self.touch(&p);
            self.tree.remove(&p);
            self.log.dirty.insert(p);
        }
        let parent = parent_of(path).to_owned();
        self.touch(&parent);
        let gen = self.next_gen();
        if let Some(par) = self.tree.node_mut(&parent) {
            par.children.remove(basename(path));
            par.gen = gen;
        }
        self.log.dirty.insert(parent);
        self.event(path, true, perms);
        Ok(())
    }

    fn set_perms(&mut self, path: &str, perms: Vec<Perm>) -> Result<(), ErrorCode> {
        let domid = self.domid;
        let gen = self.next_gen();
        self.touch(path);
        let node = self.tree.node(path).ok_or(ErrorCode::Enoent)?;
        let old_owner = node.perms.first().map(|p| p.domid);
        let new_owner = perms.first().map(|p| p.domid);
        if domid != 0 {
            if old_owner != Some(domid) {
                return Err(ErrorCode::Eacces);
            }
            if new_owner != old_owner {
                return Err(ErrorCode::Eperm);
            }
        }
        if let Some(node) = self.tree.set_perms(path, perms.clone()) {
            node.gen = gen;
        }
        self.log.dirty.insert(path.to_owned());
        self.event(path, false, perms);
        Ok(())
    }

    /// Executes a request on a node: `path` is canonical, `rest` the
    /// payload after the path's NUL.
    fn run(&mut self, msg_type: MsgType, path: &str, rest: &[u8]) -> Result<Vec<u8>, ErrorCode> {
        let ok = || Ok(b"OK\0".to_vec());
        match msg_type {
            MsgType::Read => self.read(path),
            MsgType::GetPerms => self.get_perms(path),
            MsgType::Directory => {
                let (_, listing) = self.directory(path)?;
                if listing.len() > XENSTORE_PAYLOAD_MAX {
                    Err(ErrorCode::E2big)
                } else {
                    Ok(listing)
                }
            }
            MsgType::DirectoryPart => {
                let off = split_strings(rest)
                    .first()
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or(ErrorCode::Einval)?;
                let (g, listing) = self.directory(path)?;
                directory_part(g, &listing, off)
            }
            MsgType::Write => self.write(path, rest).and_then(|()| ok()),
            MsgType::Mkdir => self.mkdir(path).and_then(|()| ok()),
            MsgType::Rm => self.rm(path).and_then(|()| ok()),
            MsgType::SetPerms => {
                let perms: Option<Vec<Perm>> = split_strings(rest)
                    .into_iter()
                    .map(|p| std::str::from_utf8(p).ok().and_then(Perm::parse))
                    .collect();
                match perms {
                    Some(p) if !p.is_empty() => self.set_perms(path, p).and_then(|()| ok()),
                    _ => Err(ErrorCode::Einval),
                }
            }
            _ => Err(ErrorCode::Einval),
        }
    }
}

/// A connection as seen by the store (for watches and transactions).
#[derive(Debug)]
struct ConnHandle {
    id: u64,
    domid: u32,
    /// Encoded messages waiting to be written; the event loop writes
    /// them as the socket takes them.
    out: Mutex<OutQueue>,
    /// The event loop's list of connections with new output.
    ready: Arc<Mutex<Vec<u64>>>,
    max_messages: usize,
    max_bytes: usize,
}

/// A connection's queued output.
#[derive(Debug, Default)]
struct OutQueue {
    msgs: VecDeque<Vec<u8>>,
    /// Bytes of the front message already written.
    written: usize,
    /// Bytes not yet written, all messages together.
    bytes: usize,
    /// A watch event did not fit: the connection is to be dropped.
    overflow: bool,
}

impl ConnHandle {
    fn lock_out(&self) -> MutexGuard<'_, OutQueue> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a reply (or the initial watch event after `WATCH`'s `OK`)
    /// whatever the queue holds: the event loop stops reading requests
    /// from a connection whose queue is half full, so replies cannot
    /// grow it without bound (a client that never reads them only stalls
    /// itself).
    fn reply(&self, msg: &Message) {
        self.push(msg, false);
    }

    /// Queues a watch event; past [`ServerConfig::max_queued_messages`]
    /// or [`ServerConfig::max_queued_bytes`] the connection is dropped
    /// (it is not reading) and its queue freed.
    fn queue(&self, msg: &Message) {
        self.push(msg, true);
    }

    fn push(&self, msg: &Message, limited: bool) {
        let bytes = match msg.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    conn = self.id,
                    "xenstore: cannot send {:?}: {e}",
                    msg.msg_type
                );
                return;
            }
        };
        let mut q = self.lock_out();
        if q.overflow {
            return;
        }
        if limited && (q.msgs.len() >= self.max_messages || q.bytes + bytes.len() > self.max_bytes)
        {
            tracing::warn!(
                conn = self.id,
                domid = self.domid,
                queued = q.msgs.len(),
                bytes = q.bytes,
                "xenstore: output queue full (peer not reading), dropping connection"
            );
            *q = OutQueue {
                overflow: true,
                ..OutQueue::default()
            };
        } else {
            q.bytes += bytes.len();
            q.msgs.push_back(bytes);
            if q.msgs.len() > 1 {
                // Already on the ready list or waiting for the socket.
                return;
            }
        }
        drop(q);
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.id);
    }

    /// Whether the loop should stop reading requests until the peer has
    /// read some output.
    fn backlogged(&self) -> bool {
        let q = self.lock_out();
        q.msgs.len() >= self.max_messages / 2 || q.bytes >= self.max_bytes / 2
    }
}

#[derive(Debug)]
struct Watch {
    conn: Arc<ConnHandle>,
    /// As registered (maybe relative).
    path: String,
    /// Absolute (or `@special`).
    abs: String,
    token: String,
}

#[derive(Debug)]
struct Tx {
    conn: u64,
    over: Overlay,
    log: Log,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
struct State {
    tree: Tree,
    gen: u64,
    next_tx: u32,
    txs: HashMap<u32, Tx>,
    watches: Vec<Watch>,
    buckets: HashMap<u32, Bucket>,
}

#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    state: Mutex<State>,
    /// Ids of connections and listeners (the event loop's tokens; 0 is
    /// its wake-up descriptor).
    next_conn: AtomicU64,
    /// The event loop, started by the first connection or listener.
    ctl: Mutex<Option<Arc<evloop::LoopCtl>>>,
    /// Connections admitted and not yet closed.
    connections: AtomicUsize,
    rejected_connections: AtomicU64,
    dropped_slow_readers: AtomicU64,
    dropped_malformed: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let ctl = self.ctl.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(ctl) = ctl.take() {
            ctl.send(evloop::Cmd::Shutdown);
        }
    }
}

/// Counters of the emulated daemon ([`XenstoreServer::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections open now, in-process ones ([`XenstoreServer::connect_as`])
    /// included; at most [`ServerConfig::max_connections`].
    pub connections: usize,
    /// Connections refused because `max_connections` were open: socket
    /// connections accepted and closed at once, and in-process ones
    /// refused with [`ServeError::TooManyConnections`].
    pub rejected_connections: u64,
    /// Connections dropped because their queued output passed
    /// [`ServerConfig::max_queued_messages`] or
    /// [`ServerConfig::max_queued_bytes`] (a peer not reading its watch
    /// events).
    pub dropped_slow_readers: u64,
    /// Connections dropped for a malformed header (payload over
    /// `XENSTORE_PAYLOAD_MAX`).
    pub dropped_malformed: u64,
}

/// Why a connection could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// [`ServerConfig::max_connections`] connections are open.
    #[error("xenstored: {max} connections open, refusing another")]
    TooManyConnections {
        /// The configured cap.
        max: usize,
    },
    /// Setting up the socket or the event loop failed.
    #[error("xenstored: {0}")]
    Io(#[from] io::Error),
}

/// The emulated xenstored. Cheap to clone (all clones share one store).
#[derive(Debug, Clone)]
pub struct XenstoreServer {
    shared: Arc<Shared>,
}

/// A listening socket, served by the server's event loop. Dropping it (or
/// [`Listener::stop`]) stops accepting and removes the socket file;
/// connections already open keep being served.
#[derive(Debug)]
pub struct Listener {
    path: PathBuf,
    id: u64,
    ctl: Option<Arc<evloop::LoopCtl>>,
}

impl Listener {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting (once this returns the event loop has closed the
    /// listening socket) and removes the socket file.
    pub fn stop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            let (done, wait) = mpsc::channel();
            ctl.send(evloop::Cmd::Unlisten { id: self.id, done });
            // An error means the loop is gone, and the socket with it.
            let _ = wait.recv();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Default for XenstoreServer {
    fn default() -> XenstoreServer {
        XenstoreServer::new(ServerConfig::default())
    }
}

impl XenstoreServer {
    /// An empty store (`/`, `/local/domain/0`, `/tool`, all `n0`). The
    /// event loop thread starts with the first connection or listener and
    /// stops, closing every connection, when the last clone of this
    /// handle is dropped.
    pub fn new(config: ServerConfig) -> XenstoreServer {
        XenstoreServer {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    tree: Tree::new(),
                    gen: 0,
                    next_tx: 1,
                    txs: HashMap::new(),
                    watches: Vec::new(),
                    buckets: HashMap::new(),
                }),
                next_conn: AtomicU64::new(1),
                ctl: Mutex::new(None),
                connections: AtomicUsize::new(0),
                rejected_connections: AtomicU64::new(0),
                dropped_slow_readers: AtomicU64::new(0),
                dropped_malformed: AtomicU64::new(0),
            }),
        }
    }

    /// The event loop's control handle, starting the loop if needed.
    fn ctl(&self) -> io::Result<Arc<evloop::LoopCtl>> {
        let mut ctl = self.shared.ctl.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = &*ctl {
            return Ok(c.clone());
        }
        let c = evloop::start(Arc::downgrade(&self.shared))?;
        *ctl = Some(c.clone());
        Ok(c)
    }

    fn next_id(&self) -> u64 {
        self.shared.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes a connection slot: false if [`ServerConfig::max_connections`]
    /// are open (and counts the refusal).
    fn admit(&self) -> bool {
        let max = self.shared.config.max_connections;
        let ok = self
            .shared
            .connections
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !ok {
            self.shared
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Listens on a Unix socket (replacing a stale file, mode 0600);
    /// every connection acts as dom0, like xenstored's socket. Beyond
    /// [`ServerConfig::max_connections`] a connection is accepted and
    /// closed at once (counted in [`ServerStats::rejected_connections`],
    /// logged at most once a second).
    pub fn listen(&self, path: impl AsRef<Path>) -> io::Result<Listener> {
        let path = path.as_ref().to_path_buf();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let ctl = self.ctl()?;
        let id = self.next_id();
        ctl.send(evloop::Cmd::Listen { id, listener });
        Ok(Listener {
            path,
            id,
            ctl: Some(ctl),
        })
    }

    /// Serves one connected stream as domain `domid` on the event loop.
    ///
    /// # Errors
    /// [`ServeError::TooManyConnections`] if
    /// [`ServerConfig::max_connections`] are open (the stream is closed);
    /// [`ServeError::Io`] if the stream cannot be made nonblocking or the
    /// event loop cannot start.
    pub fn serve_stream(&self, stream: UnixStream, domid: u32) -> Result<(), ServeError> {
        if !self.admit() {
            return Err(ServeError::TooManyConnections {
                max: self.shared.config.max_connections,
            });
        }
        let ctl = match stream.set_nonblocking(true).and_then(|()| self.ctl()) {
            Ok(c) => c,
            Err(e) => {
                self.release_slot();
                return Err(e.into());
            }
        };
        ctl.send(evloop::Cmd::Serve {
            id: self.next_id(),
            stream,
            domid,
        });
        Ok(())
    }

    /// Gives back a slot taken by [`XenstoreServer::admit`].
    fn release_slot(&self) {
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
    }

    /// A connection's store-side handle.
    fn handle_for(&self, id: u64, domid: u32, ready: Arc<Mutex<Vec<u64>>>) -> Arc<ConnHandle> {
        let cfg = &self.shared.config;
        let factor = if domid == 0 {
            PRIVILEGED_QUEUE_FACTOR
        } else {
            1
        };
        Arc::new(ConnHandle {
            id,
            domid,
            out: Mutex::new(OutQueue::default()),
            ready,
            max_messages: cfg.max_queued_messages.max(2).saturating_mul(factor),
            max_bytes: cfg
                .max_queued_bytes
                .max(2 * (HEADER_LEN + XENSTORE_PAYLOAD_MAX))
                .saturating_mul(factor),
        })
    }

    /// Stop the event loop now, closing every connection (in-process
    /// ones too, whose clients then see [`XsError::Closed`]) and
    /// listener, as when the last handle goes: for a daemon stopping
    /// while tasks may still hold handles.
    pub fn shutdown(&self) {
        let ctl = self
            .shared
            .ctl
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(ctl) = ctl {
            ctl.send(evloop::Cmd::Shutdown);
        }
    }

    /// An in-process client acting as domain `domid` (0 is privileged),
    /// over a socketpair: the way to test permissions and quotas. It
    /// counts against [`ServerConfig::max_connections`]
    /// ([`XsError::Serve`] beyond).
    pub fn connect_as(&self, domid: u32) -> Result<Client, XsError> {
        let (a, b) = UnixStream::pair().map_err(|source| XsError::Connect {
            path: "<socketpair>".into(),
            source,
        })?;
        self.serve_stream(b, domid)?;
        Client::from_stream(a)
    }

    /// A raw stream served as domain `domid`, for sending arbitrary bytes.
    pub fn connect_raw_as(&self, domid: u32) -> Result<UnixStream, ServeError> {
        let (a, b) = UnixStream::pair()?;
        self.serve_stream(b, domid)?;
        Ok(a)
    }

    /// The connection counters.
    pub fn stats(&self) -> ServerStats {
        let sh = &self.shared;
        ServerStats {
            connections: sh.connections.load(Ordering::SeqCst),
            rejected_connections: sh.rejected_connections.load(Ordering::Relaxed),
            dropped_slow_readers: sh.dropped_slow_readers.load(Ordering::Relaxed),
            dropped_malformed: sh.dropped_malformed.load(Ordering::Relaxed),
        }
    }

    /// Number of nodes in the store.
    pub fn node_count(&self) -> usize {
        self.lock().tree.nodes.len()
    }

    /// Node copies held by open transactions, all connections together:
    /// one per node a transaction created, changed or removed (plus its
    /// parent when the set of children changed). Transactions do not copy
    /// the store, so this is what their memory is proportional to, with
    /// the paths they read.
    pub fn transaction_nodes(&self) -> usize {
        self.lock().txs.values().map(|t| t.over.nodes.len()).sum()
    }

    /// Open transactions, all connections together.
    pub fn open_transactions(&self) -> usize {
        self.lock().txs.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disconnect(&self, conn: u64) {
        let mut st = self.lock();
        st.watches.retain(|w| w.conn.id != conn);
        st.txs.retain(|_, t| t.conn != conn);
    }

    fn dispatch(&self, conn: &Arc<ConnHandle>, msg: Message) {
        let result = self.handle(conn, &msg);
        let ok = result.is_ok();
        let reply = match result {
            Ok(payload) => Message::new(msg.msg_type, msg.req_id, msg.tx_id, payload),
            Err(code) => Message::new(MsgType::Error, msg.req_id, msg.tx_id, code.to_payload()),
        };
        conn.reply(&reply);
        if ok && msg.msg_type == MsgType::Watch {
            // The initial event, right after the OK (as xenstored).
            let args = split_strings(&msg.payload);
            if let [path, token, ..] = args.as_slice() {
                conn.reply(&Message::new(
                    MsgType::WatchEvent,
                    0,
                    0,
                    join_strings(&[path, token]),
                ));
            }
        }
    }

    fn handle(&self, conn: &Arc<ConnHandle>, msg: &Message) -> Result<Vec<u8>, ErrorCode> {
        let ok = || Ok(b"OK\0".to_vec());
        let domid = conn.domid;
        let mut guard = self.lock();
        let st = &mut *guard;
        if domid != 0 && !self.take_token(st, domid) {
            return Err(ErrorCode::Equota);
        }
        let args = split_strings(&msg.payload);
        let arg = |i: usize| -> Result<&str, ErrorCode> {
            let a = args.get(i).ok_or(ErrorCode::Einval)?;
            std::str::from_utf8(a).map_err(|_| ErrorCode::Einval)
        };
        match msg.msg_type {
            MsgType::Read
            | MsgType::Directory
            | MsgType::DirectoryPart
            | MsgType::GetPerms
            | MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::SetPerms => self.node_op(st, conn, msg),
            MsgType::Watch => {
                let (raw, token) = (arg(0)?, arg(1)?);
                let abs = canon(domid, raw, true)?;
                let mine = st.watches.iter().filter(|w| w.conn.id == conn.id);
                if mine.clone().any(|w| w.path == raw && w.token == token) {
                    return Err(ErrorCode::Eexist);
                }
                if domid != 0 && mine.count() >= self.shared.config.max_watches_per_conn {
                    return Err(ErrorCode::Equota);
                }
                st.watches.push(Watch {
                    conn: conn.clone(),
                    path: raw.to_owned(),
                    abs,
                    token: token.to_owned(),
                });
                ok()
            }
            MsgType::Unwatch => {
                let (raw, token) = (arg(0)?, arg(1)?);
                let before = st.watches.len();
                st.watches
                    .retain(|w| !(w.conn.id == conn.id && w.path == raw && w.token == token));
                if st.watches.len() == before {
                    return Err(ErrorCode::Enoent);
                }
                ok()
            }
            MsgType::ResetWatches => {
                st.watches.retain(|w| w.conn.id != conn.id);
                ok()
            }
            MsgType::TransactionStart => {
                if msg.tx_id != 0 {
                    return Err(ErrorCode::Ebusy);
                }
                let open = st.txs.values().filter(|t| t.conn == conn.id).count();
                if open >= self.shared.config.max_transactions_per_conn {
                    return Err(ErrorCode::Equota);
                }
                let mut id = st.next_tx;
                while id == 0 || st.txs.contains_key(&id) {
                    id = id.wrapping_add(1);
                }
                st.next_tx = id.wrapping_add(1);
                let tx = Tx {
                    conn: conn.id,
                    over: Overlay::default(),
                    log: Log::default(),
                };
                st.txs.insert(id, tx);
                Ok(join_strings(&[id.to_string()]))
            }
            MsgType::TransactionEnd => {
                let commit = match arg(0)? {
                    "T" => true,
                    "F" => false,
                    _ => return Err(ErrorCode::Einval),
                };
                match st.txs.get(&msg.tx_id) {
                    Some(t) if t.conn == conn.id => {}
                    _ => return Err(ErrorCode::Enoent),
                }
                let Some(tx) = st.txs.remove(&msg.tx_id) else {
                    return Err(ErrorCode::Enoent);
                };
                if commit {
                    self.commit(st, tx, domid)?;
                }
                ok()
            }
            MsgType::GetDomainPath => {
                let id = arg(0)?;
                let id: u32 = id.parse().map_err(|_| ErrorCode::Einval)?;
                Ok(join_strings(&[format!("/local/domain/{id}")]))
            }
            MsgType::IsDomainIntroduced => Ok(b"T\0".to_vec()),
            MsgType::Introduce | MsgType::Release => {
                if domid != 0 {
                    return Err(ErrorCode::Eacces);
                }
                let special = if msg.msg_type == MsgType::Introduce {
                    "@introduceDomain"
                } else {
                    "@releaseDomain"
                };
                let ev = Event {
                    path: special.into(),
                    perms: Vec::new(),
                    removed: false,
                };
                fire(st, &[ev]);
                ok()
            }
            MsgType::Resume | MsgType::SetTarget => {
                if domid != 0 {
                    return Err(ErrorCode::Eacces);
                }
                ok()
            }
            MsgType::Control => ok(),
            MsgType::WatchEvent | MsgType::Error | MsgType::Unknown(_) => Err(ErrorCode::Einval),
        }
    }

    fn take_token(&self, st: &mut State, domid: u32) -> bool {
        let cfg = &self.shared.config;
        if cfg.quota_rate == 0 {
            return true;
        }
        let now = Instant::now();
        let burst = f64::from(cfg.quota_burst.max(1));
        let b = st.buckets.entry(domid).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * f64::from(cfg.quota_rate)).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Requests on nodes, inside a transaction or not.
    fn node_op(
        &self,
        st: &mut State,
        conn: &Arc<ConnHandle>,
        msg: &Message,
    ) -> Result<Vec<u8>, ErrorCode> {
        let domid = conn.domid;
        let payload = &msg.payload;
        // WRITE is `path\0value`, the rest are NUL-terminated strings.
        let nul = payload
            .iter()
            .position(|&b| b == 0)
            .ok_or(ErrorCode::Einval)?;
        let raw = std::str::from_utf8(&payload[..nul]).map_err(|_| ErrorCode::Einval)?;
        let path = canon(domid, raw, false)?;
        let rest = &payload[nul + 1..];

        let State { tree, gen, txs, .. } = st;
        let max_nodes = self.shared.config.max_nodes_per_domain;
        let mut own_log = Log::default();
        let reply = if msg.tx_id == 0 {
            let mut op = Op {
                tree,
                gen,
                log: &mut own_log,
                domid,
                max_nodes,
            };
            op.run(msg.msg_type, &path, rest)
        } else {
            let tx = match txs.get_mut(&msg.tx_id) {
                Some(tx) if tx.conn == conn.id => tx,
                _ => return Err(ErrorCode::Enoent),
            };
            let mut view = TxView {
                base: tree,
                over: &mut tx.over,
            };
            let mut op = Op {
                tree: &mut view,
                gen,
                log: &mut tx.log,
                domid,
                max_nodes,
            };
            op.run(msg.msg_type, &path, rest)
        };
        if msg.tx_id == 0 {
            let events = std::mem::take(&mut own_log.events);
            fire(st, &events);
        }
        reply
    }

    /// Applies `tx`, run by `domid`: `EAGAIN` (nothing applied) if a
    /// node it accessed changed in the store since, `EQUOTA` if it would
    /// take `domid` over [`ServerConfig::max_nodes_per_domain`].
    fn commit(&self, st: &mut State, mut tx: Tx, domid: u32) -> Result<(), ErrorCode> {
        for (path, gen) in &tx.log.accessed {
            if st.tree.node(path).map(|n| n.gen) != *gen {
                return Err(ErrorCode::Eagain);
            }
        }
        // Each transaction was checked against the store as it was then:
        // check the node quota again, or concurrent transactions could
        // each fill it.
        let max = self.shared.config.max_nodes_per_domain;
        if domid != 0 && max != 0 {
            let mine = |n: Option<&Node>| usize::from(n.and_then(Tree::owner) == Some(domid));
            let (mut added, mut dropped) = (0, 0);
            for path in &tx.log.dirty {
                added += mine(tx.over.nodes.get(path).and_then(Option::as_ref));
                dropped += mine(st.tree.node(path));
            }
            if added > dropped && st.tree.owned_by(domid) + added - dropped > max {
                return Err(ErrorCode::Equota);
            }
        }
        for path in &tx.log.dirty {
            // Every change went through the overlay; a dirty path it does
            // not hold would be a bug, and is left alone.
            match tx.over.nodes.remove(path) {
                Some(Some(mut node)) => {
                    st.gen += 1;
                    node.gen = st.gen;
                    st.tree.insert(path.clone(), node);
                }
                Some(None) => st.tree.remove(path),
                None => {}
            }
        }
        fire(st, &tx.log.events);
        Ok(())
    }
}

/// `XS_DIRECTORY_PART` reply: `gen\0` then as many whole names from byte
/// `off` of the listing as fit, plus a final NUL if that is the end.
fn directory_part(gen: u64, listing: &[u8], off: usize) -> Result<Vec<u8>, ErrorCode> {
    let rest = listing.get(off..).ok_or(ErrorCode::Einval)?;
    let mut out = join_strings(&[gen.to_string()]);
    let room = XENSTORE_PAYLOAD_MAX - out.len() - 1;
    let mut take = 0;
    for name in rest.split_inclusive(|&b| b == 0) {
        if take + name.len() > room {
            break;
        }
        take += name.len();
    }
    out.extend_from_slice(&rest[..take]);
    if take == rest.len() {
        out.push(0);
    }
    Ok(out)
}

/// Sends watch events for `events`.
fn fire(st: &State, events: &[Event]) {
    for ev in events {
        for w in &st.watches {
            let evpath = if ev.path == w.abs
                || w.abs == "/"
                || (ev.path.starts_with(&w.abs)
                    && ev.path.as_bytes().get(w.abs.len()) == Some(&b'/'))
            {
                ev.path.as_str()
            } else if ev.removed
                && w.abs.starts_with(&ev.path)
                && w.abs.as_bytes().get(ev.path.len()) == Some(&b'/')
            {
                w.abs.as_str()
            } else {
                continue;
            };
            if w.abs == "/" && evpath.starts_with('@') {
                continue;
            }
            if !evpath.starts_with('@') && !access_for(w.conn.domid, &ev.perms).can_read() {
                continue;
            }
            let shown = if w.path.starts_with('/') || w.path.starts_with('@') {
                evpath
            } else {
                let home = format!("/local/domain/{}/", w.conn.domid);
                evpath.strip_prefix(&home).unwrap_or(evpath)
            };
            w.conn.queue(&Message::new(
                MsgType::WatchEvent,
                0,
                0,
                join_strings(&[shown, w.token.as_str()]),
            ));
        }
    }
}

/// Validates a path and makes it absolute (relative paths are under
/// `/local/domain/<domid>`). `@special` names only where `special`.
fn canon(domid: u32, raw: &str, special: bool) -> Result<String, ErrorCode> {
    const VALID: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_@";
    if raw.is_empty() || !raw.bytes().all(|b| VALID.contains(&b)) || raw.contains("//") {
        return Err(ErrorCode::Einval);
    }
    if let Some(name) = raw.strip_prefix('@') {
        return if special && !name.is_empty() && !name.contains('/') {
            Ok(raw.to_owned())
        } else {
            Err(ErrorCode::Einval)
        };
    }
    let trimmed = if raw.len() > 1 {
        raw.strip_suffix('/').unwrap_or(raw)
    } else {
        raw
    };
    if trimmed.starts_with('/') {
        if trimmed.len() > XENSTORE_ABS_PATH_MAX {
            return Err(ErrorCode::Einval);
        }
        Ok(trimmed.to_owned())
    } else {
        if trimmed.len() > XENSTORE_REL_PATH_MAX {
            return Err(ErrorCode::Einval);
        }
        Ok(format!("/local/domain/{domid}/{trimmed}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `shutdown` closes in-process connections while handles remain: a
    /// watcher sees the connection closed.
    #[test]
    fn shutdown_closes_connections_while_handles_remain() {
        let server = XenstoreServer::default();
        let keep = server.clone();
        let xs = server.connect_as(0).unwrap();
        xs.watch("/a", "t").unwrap();
        // The watch fires once when set.
        assert!(xs.next_event(Duration::from_secs(5)).unwrap().is_some());
        server.shutdown();
        assert!(matches!(
            xs.next_event(Duration::from_secs(5)),
            Err(XsError::Closed)
        ));
        drop(keep);
    }

    #[test]
    fn test_canon() {
        assert_eq!(canon(3, "a/b", false).unwrap(), "/local/domain/3/a/b");
        assert_eq!(canon(0, "/a/", false).unwrap(), "/a");
        assert_eq!(canon(0, "/", false).unwrap(), "/");
        assert_eq!(canon(0, "@releaseDomain", true).unwrap(), "@releaseDomain");
        for bad in ["", "/a//b", "/a b", "@x", "/a/\u{e9}", "@"] {
            assert!(canon(0, bad, bad == "@").is_err(), "{bad}");
        }
    }

    #[test]
    fn test_access() {
        let p = [
            Perm::new(Access::Read, 1),
            Perm::new(Access::Write, 2),
            Perm::new(Access::None, 3),
        ];
        assert_eq!(access_for(0, &p), Access::Both);
        assert_eq!(access_for(1, &p), Access::Both);
        assert_eq!(access_for(2, &p), Access::Write);
        assert_eq!(access_for(3, &p), Access::None);
        assert_eq!(access_for(4, &p), Access::Read);
        assert_eq!(access_for(4, &[]), Access::None);
    }

    #[test]
    fn test_directory_part() {
        let names: Vec<String> = (0..1000).map(|i| format!("child{i:04}")).collect();
        let listing = join_strings(&names);
        let mut got = Vec::new();
        loop {
            let r = directory_part(7, &listing, got.len()).unwrap();
            assert!(r.len() <= XENSTORE_PAYLOAD_MAX);
            let body = &r[2..];
            if body.ends_with(&[0, 0]) || body == [0] {
                got.extend_from_slice(&body[..body.len() - 1]);
                break;
            }
            got.extend_from_slice(body);
        }
        assert_eq!(got, listing);
        assert!(directory_part(7, &listing, listing.len() + 1).is_err());
    }
}
