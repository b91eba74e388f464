//! The connection manager of one bridge (OVS `connmgr`): the management
//! socket `<rundir>/<bridge>.mgmt` that `ovs-ofctl <bridge>` uses, and the
//! bridge's controllers (OVS `Controller:target`): active `tcp:IP[:PORT]`
//! and `unix:PATH`, reconnected with exponential backoff from 1 s to
//! `max_backoff` (8 s by default), and passive `ptcp:PORT[:IP]` and
//! `punix:PATH` listeners. Each controller's `inactivity_probe`,
//! `max_backoff` and packet-in rate limit apply as in OVS
//! ([`ControllerConfig`]); management connections are probed too (every
//! [`DEFAULT_PROBE`], as OVS probes idle connections), so silent ones do
//! not hold the socket's [`MAX_ACCEPTED`] slots for ever.
//!
//! Fail mode (OVS `Bridge:fail_mode`): a `standalone` bridge with
//! controllers of which none is connected is in fail-open: the pipeline is
//! bypassed for NORMAL switching (OVS adds a hidden fail-open flow); a
//! `secure` bridge keeps its flow tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::ratelimit::LogLimit;

use super::conn::{self, ConnKind, ConnOptions, ConnStatus, Event, Handler, Roles};

/// Default OpenFlow port when a `tcp:`/`ptcp:` target names none.
pub const DEFAULT_PORT: u16 = 6653;
/// Default inactivity probe for controllers (OVS `inactivity_probe`).
pub const DEFAULT_PROBE: Duration = Duration::from_secs(5);
/// Longest reconnection backoff (OVS `Controller:max_backoff` default).
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Asynchronous messages buffered per bridge before slow connections lose
/// some (each drop is counted and logged).
const EVENT_QUEUE: usize = 1024;
/// Most bytes of packet-in data one bridge holds for its connections (a
/// packet-in stays held until every connection has taken it).
pub const PACKET_IN_BUDGET: usize = 4 << 20;
/// Most connections at once on one listening socket (`ptcp:`, `punix:`,
/// the management socket); further ones are closed at once, counted and
/// logged at most once a second. Each costs up to about
/// [`conn::MAX_OUT`] plus 128 KiB.
pub const MAX_ACCEPTED: usize = 64;
/// A controller connection shorter than this does not reset the
/// reconnection backoff (a controller that accepts and closes at once is
/// retried at most every [`MAX_BACKOFF`], not in a tight loop).
const STABLE_CONNECTION: Duration = Duration::from_secs(1);

/// One controller's settings (OVS `Controller` columns, with OVS's
/// bounds: vswitchd/bridge.c, lib/rconn.c, ofproto/pinsched.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// The connection method (`Controller:target`).
    pub target: String,
    /// `inactivity_probe`: ECHO_REQUEST after this long idle, drop after
    /// twice as long; the column is in ms, 0 turns probing off, and OVS
    /// (`rconn_set_probe_interval`) probes no more often than every 5 s.
    pub probe: Option<Duration>,
    /// `max_backoff`: the longest wait between reconnection attempts
    /// (ms in the column, at least 1 s).
    pub max_backoff: Duration,
    /// `controller_rate_limit` (packets/s) and `controller_burst_limit`
    /// (packets; default a quarter of the rate, at least 1).
    pub packet_in_limit: Option<conn::PacketInLimit>,
}

impl ControllerConfig {
    /// `target` with OVS's defaults (5 s probe, 8 s backoff, no rate
    /// limit).
    pub fn new(target: &str) -> ControllerConfig {
        ControllerConfig {
            target: target.to_owned(),
            probe: Some(DEFAULT_PROBE),
            max_backoff: MAX_BACKOFF,
            packet_in_limit: None,
        }
    }

    /// From the database columns (ms, ms, packets/s, packets).
    pub fn from_columns(
        target: &str,
        inactivity_probe: Option<i64>,
        max_backoff: Option<i64>,
        rate_limit: Option<i64>,
        burst_limit: Option<i64>,
    ) -> ControllerConfig {
        let secs = |ms: i64| Duration::from_secs(u64::try_from(ms / 1000).unwrap_or(0));
        let probe = match inactivity_probe {
            None => Some(DEFAULT_PROBE),
            Some(0) => None,
            Some(ms) => Some(secs(ms).max(Duration::from_secs(5))),
        };
        let rate = rate_limit
            .filter(|r| *r > 0)
            .map(|r| u32::try_from(r).unwrap_or(u32::MAX));
        ControllerConfig {
            target: target.to_owned(),
            probe,
            max_backoff: max_backoff.map_or(MAX_BACKOFF, |ms| secs(ms).max(Duration::from_secs(1))),
            packet_in_limit: rate.map(|rate| conn::PacketInLimit {
                rate,
                burst: burst_limit
                    .filter(|b| *b > 0)
                    .map_or(rate / 4, |b| u32::try_from(b).unwrap_or(u32::MAX))
                    .max(1),
            }),
        }
    }
}

/// A parsed controller target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `tcp:IP[:PORT]`: connect out.
    Tcp(String),
    /// `unix:PATH`: connect out.
    Unix(PathBuf),
    /// `ptcp:[PORT][:IP]`: listen.
    Ptcp(String),
    /// `punix:PATH`: listen.
    Punix(PathBuf),
}

impl Target {
    /// Parse an OVS connection method (ovs-vswitchd.conf.db(5),
    /// Controller `target`).
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| format!("{s}: no method"))?;
        match kind {
            "tcp" => {
                let (ip, port) = split_ip_port(rest, true)?;
                Ok(Target::Tcp(format!("{ip}:{port}")))
            }
            "ptcp" => {
                // ptcp:[PORT][:IP]
                let (port, ip) = match rest.split_once(':') {
                    Some((p, ip)) => (p, ip.trim_matches(['[', ']'])),
                    None => (rest, "0.0.0.0"),
                };
                let port: u16 = if port.is_empty() {
                    DEFAULT_PORT
                } else {
                    port.parse().map_err(|_| format!("{s}: bad port"))?
                };
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                Ok(Target::Ptcp(format!("{ip}:{port}")))
            }
            "unix" if !rest.is_empty() => Ok(Target::Unix(rest.into())),
            "punix" if !rest.is_empty() => Ok(Target::Punix(rest.into())),
            _ => Err(format!("{s}: unsupported connection method")),
        }
    }
}

fn split_ip_port(s: &str, need_ip: bool) -> Result<(String, u16), String> {
    let (ip, port) = if let Some(stripped) = s.strip_prefix('[') {
        let (ip, rest) = stripped.split_once(']').ok_or("unterminated [")?;
        (format!("[{ip}]"), rest.strip_prefix(':').unwrap_or(""))
    } else {
        match s.split_once(':') {
            Some((ip, port)) => (ip.to_string(), port),
            None => (s.to_string(), ""),
        }
    };
    if need_ip && ip.is_empty() {
        return Err(format!("{s}: no address"));
    }
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        port.parse().map_err(|_| format!("{s}: bad port"))?
    };
    Ok((ip, port))
}

/// Status of one controller, for the OVSDB `Controller` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerStatus {
    /// At least one connection is up (for passive targets: any accepted).
    pub is_connected: bool,
    /// `master`, `slave` or `other` (OVS `Controller:role`).
    pub role: &'static str,
}

struct ControllerTask {
    config: ControllerConfig,
    task: JoinHandle<()>,
    conns: Arc<Mutex<Vec<Arc<ConnStatus>>>>,
}

/// The connections of one bridge.
pub struct ConnMgr {
    bridge: String,
    handler: Arc<dyn Handler>,
    roles: Arc<Roles>,
    events: broadcast::Sender<Event>,
    controllers: Mutex<BTreeMap<String, ControllerTask>>,
    mgmt: Mutex<Option<(JoinHandle<()>, PathBuf)>>,
    /// The `<bridge>.snoop` listener ([`super::snoop`]).
    snoop: Mutex<Option<(JoinHandle<()>, PathBuf)>>,
    /// Controller connections, for snoopers.
    primaries: super::snoop::Primaries,
    primary_connected: Arc<AtomicUsize>,
    /// Versions offered to new connections (see [`ConnMgr::set_protocols`]).
    versions: Arc<AtomicU32>,
    /// Bytes of packet-in data queued and not yet taken by every connection.
    packet_in_bytes: Arc<std::sync::atomic::AtomicUsize>,
    packet_ins_dropped: std::sync::atomic::AtomicU64,
    packet_in_log: Mutex<LogLimit>,
}

impl std::fmt::Debug for ConnMgr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnMgr")
            .field("bridge", &self.bridge)
            .finish()
    }
}

impl ConnMgr {
    /// A manager for `bridge` whose requests go to `handler`.
    pub fn new(bridge: &str, handler: Arc<dyn Handler>) -> ConnMgr {
        ConnMgr {
            bridge: bridge.to_string(),
            handler,
            roles: Arc::new(Roles::default()),
            events: broadcast::channel(EVENT_QUEUE).0,
            packet_in_bytes: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            packet_ins_dropped: std::sync::atomic::AtomicU64::new(0),
            packet_in_log: Mutex::new(LogLimit::default()),
            controllers: Mutex::new(BTreeMap::new()),
            mgmt: Mutex::new(None),
            snoop: Mutex::new(None),
            primaries: Arc::new(Mutex::new(Vec::new())),
            primary_connected: Arc::new(AtomicUsize::new(0)),
            versions: Arc::new(AtomicU32::new(xennet_openflow::header::SUPPORTED_BITMAP)),
        }
    }

    /// The OpenFlow versions new connections may use (OVS
    /// `Bridge:protocols`, e.g. `["OpenFlow13"]`; empty = every version
    /// xennet speaks: 1.0, 1.3, 1.4, 1.5). Versions xennet does not speak
    /// (1.1, 1.2) are ignored; returns them. If nothing is left, every
    /// supported version is offered.
    pub fn set_protocols(&self, protocols: &[String]) -> Vec<String> {
        let mut bitmap = 0u32;
        let mut ignored = Vec::new();
        for p in protocols {
            match p.as_str() {
                "OpenFlow10" => bitmap |= 1 << xennet_openflow::header::OFP10_VERSION,
                "OpenFlow13" => bitmap |= 1 << xennet_openflow::header::OFP13_VERSION,
                "OpenFlow14" => bitmap |= 1 << xennet_openflow::header::OFP14_VERSION,
                "OpenFlow15" => bitmap |= 1 << xennet_openflow::header::OFP15_VERSION,
                other => ignored.push(other.to_string()),
            }
        }
        if bitmap == 0 {
            bitmap = xennet_openflow::header::SUPPORTED_BITMAP;
        }
        self.versions.store(bitmap, Ordering::Relaxed);
        ignored
    }

    /// The sender for asynchronous messages (flow removed, port status;
    /// packet-ins go through [`ConnMgr::send_packet_in`]); messages sent
    /// while nobody listens are dropped.
    pub fn events(&self) -> broadcast::Sender<Event> {
        self.events.clone()
    }

    /// Queue a packet-in for the connections, unless the packet-ins the
    /// bridge still holds for slow connections already amount to
    /// [`PACKET_IN_BUDGET`] bytes: then it is dropped, counted and logged
    /// at most once a second (OVS likewise bounds queued packet-ins).
    /// Only connections whose controller id (`NXT_SET_CONTROLLER_ID`) is
    /// `controller_id` receive it. Returns whether it was queued.
    pub fn send_packet_in(
        &self,
        msg: xennet_openflow::model::PacketIn,
        controller_id: u16,
    ) -> bool {
        let len = msg.data.len();
        let held = self.packet_in_bytes.fetch_add(len, Ordering::Relaxed);
        if held.saturating_add(len) > PACKET_IN_BUDGET {
            self.packet_in_bytes.fetch_sub(len, Ordering::Relaxed);
            let n = self.packet_ins_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if self
                .packet_in_log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ready()
            {
                tracing::warn!(
                    "{}: packet-in dropped: {held} bytes held for slow connections ({n} dropped so far)",
                    self.bridge
                );
            }
            return false;
        }
        let shared =
            conn::SharedPacketIn::charged(msg, self.packet_in_bytes.clone(), controller_id);
        // With nobody listening the message comes back and is dropped,
        // giving its bytes back.
        let _ = self.events.send(Event::PacketIn(shared));
        true
    }

    /// Packet-ins dropped over [`PACKET_IN_BUDGET`].
    pub fn packet_ins_dropped(&self) -> u64 {
        self.packet_ins_dropped.load(Ordering::Relaxed)
    }

    /// Listen on the management socket `<rundir>/<bridge>.mgmt`, as OVS
    /// does, so `ovs-ofctl <bridge>` finds it.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub fn listen_mgmt(&self, rundir: &Path) -> std::io::Result<PathBuf> {
        let path = rundir.join(format!("{}.mgmt", self.bridge));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let task = tokio::spawn(accept(
            Listener::Unix(listener),
            path.display().to_string(),
            self.spawner(ConnKind::Service, Some(DEFAULT_PROBE), None),
            Arc::new(Mutex::new(Vec::new())),
        ));
        *self.mgmt.lock().unwrap_or_else(|e| e.into_inner()) = Some((task, path.clone()));
        // And `<bridge>.snoop`, as OVS, for `ovs-ofctl snoop`.
        let snoop = rundir.join(format!("{}.snoop", self.bridge));
        let task =
            super::snoop::listen(self.bridge.clone(), snoop.clone(), self.primaries.clone())?;
        *self.snoop.lock().unwrap_or_else(|e| e.into_inner()) = Some((task, snoop));
        Ok(path)
    }

    fn spawner(
        &self,
        kind: ConnKind,
        probe: Option<Duration>,
        packet_in_limit: Option<conn::PacketInLimit>,
    ) -> Spawner {
        Spawner {
            kind,
            probe,
            packet_in_limit,
            handler: self.handler.clone(),
            roles: self.roles.clone(),
            events: self.events.clone(),
            primary_connected: self.primary_connected.clone(),
            bridge: self.bridge.clone(),
            failed: Arc::new(Mutex::new((0, LogLimit::default()))),
            versions: self.versions.clone(),
            primaries: self.primaries.clone(),
        }
    }

    /// Make the controller list exactly `controllers`; unchanged ones
    /// keep their connections, a controller whose settings changed is
    /// reconnected with the new ones. Returns the targets that could not
    /// be parsed, with why.
    pub fn set_controllers(&self, controllers: &[ControllerConfig]) -> Vec<(String, String)> {
        let mut bad = Vec::new();
        let mut ctl = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        ctl.retain(|t, c| {
            let keep = controllers.contains(&c.config);
            if !keep {
                tracing::info!("{}: removing controller {t}", self.bridge);
                c.task.abort();
            }
            keep
        });
        for cfg in controllers {
            let t = &cfg.target;
            if ctl.contains_key(t) {
                continue;
            }
            let target = match Target::parse(t) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("{}: controller {e}", self.bridge);
                    bad.push((t.clone(), e));
                    continue;
                }
            };
            let conns = Arc::new(Mutex::new(Vec::new()));
            let task = self.spawn_target(cfg, target, conns.clone());
            tracing::info!("{}: added controller {t}", self.bridge);
            ctl.insert(
                t.clone(),
                ControllerTask {
                    config: cfg.clone(),
                    task,
                    conns,
                },
            );
        }
        bad
    }

    fn spawn_target(
        &self,
        cfg: &ControllerConfig,
        target: Target,
        conns: Arc<Mutex<Vec<Arc<ConnStatus>>>>,
    ) -> JoinHandle<()> {
        let active = self.spawner(ConnKind::Primary, cfg.probe, cfg.packet_in_limit);
        let bridge = self.bridge.clone();
        let name = cfg.target.clone();
        let max_backoff = cfg.max_backoff;
        match target {
            Target::Tcp(addr) => tokio::spawn(reconnect(
                name,
                bridge,
                active,
                conns,
                max_backoff,
                move || {
                    let addr = addr.clone();
                    async move {
                        let s = TcpStream::connect(&addr).await?;
                        let _ = s.set_nodelay(true);
                        Ok(Box::new(s) as Box<dyn Stream>)
                    }
                },
            )),
            Target::Unix(path) => tokio::spawn(reconnect(
                name,
                bridge,
                active,
                conns,
                max_backoff,
                move || {
                    let path = path.clone();
                    async move { Ok(Box::new(UnixStream::connect(&path).await?) as Box<dyn Stream>) }
                },
            )),
            Target::Ptcp(addr) => tokio::spawn(async move {
                match TcpListener::bind(&addr).await {
                    Ok(l) => accept(Listener::Tcp(l), name, active, conns).await,
                    Err(e) => tracing::warn!("{bridge}: {name}: cannot listen: {e}"),
                }
            }),
            Target::Punix(path) => {
                let _ = std::fs::remove_file(&path);
                tokio::spawn(async move {
                    match UnixListener::bind(&path) {
                        Ok(l) => accept(Listener::Unix(l), name, active, conns).await,
                        Err(e) => tracing::warn!("{bridge}: {name}: cannot listen: {e}"),
                    }
                })
            }
        }
    }

    /// Controller statuses by target.
    pub fn controller_status(&self) -> BTreeMap<String, ControllerStatus> {
        let ctl = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        ctl.iter()
            .map(|(t, c)| {
                let conns = c.conns.lock().unwrap_or_else(|e| e.into_inner());
                let up: Vec<_> = conns
                    .iter()
                    .filter(|s| s.version.load(Ordering::Relaxed) != 0)
                    .collect();
                let role = match up.first().map(|s| s.role.load(Ordering::Relaxed)) {
                    Some(conn::role::MASTER) => "master",
                    Some(conn::role::SLAVE) => "slave",
                    _ => "other",
                };
                (
                    t.clone(),
                    ControllerStatus {
                        is_connected: !up.is_empty(),
                        role,
                    },
                )
            })
            .collect()
    }

    /// Whether the bridge has controllers configured.
    pub fn has_controllers(&self) -> bool {
        !self
            .controllers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Number of controller connections currently up.
    pub fn connected_controllers(&self) -> usize {
        self.primary_connected.load(Ordering::Relaxed)
    }

    /// Stop every listener and connection and remove the management socket.
    pub fn shutdown(&self) {
        self.set_controllers(&[]);
        if let Some((task, path)) = self.mgmt.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
            let _ = std::fs::remove_file(path);
        }
        if let Some((task, path)) = self.snoop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for ConnMgr {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A byte stream a connection runs on.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Everything needed to start a connection task.
#[derive(Clone)]
struct Spawner {
    kind: ConnKind,
    probe: Option<Duration>,
    packet_in_limit: Option<conn::PacketInLimit>,
    handler: Arc<dyn Handler>,
    roles: Arc<Roles>,
    events: broadcast::Sender<Event>,
    primary_connected: Arc<AtomicUsize>,
    bridge: String,
    /// Connections that ended in an error (a peer that sends garbage or
    /// stops answering), and the rate limit of their log lines: a passive
    /// target's peers can open connections as fast as they like.
    failed: Arc<Mutex<(u64, LogLimit)>>,
    /// The bridge's allowed versions, read when a connection starts.
    versions: Arc<AtomicU32>,
    /// Controller connections, for snoopers.
    primaries: super::snoop::Primaries,
}

impl Spawner {
    /// Run one connection to its end.
    async fn run(
        &self,
        stream: Box<dyn Stream>,
        peer: String,
        conns: &Mutex<Vec<Arc<ConnStatus>>>,
    ) {
        let status = Arc::new(ConnStatus::default());
        conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(status.clone());
        let primary = self.kind == ConnKind::Primary;
        if primary {
            self.primary_connected.fetch_add(1, Ordering::Relaxed);
        }
        // Undone however the connection ends, also when its task is
        // aborted (a removed controller): a count left behind kept a
        // standalone bridge out of fail-open for good.
        let _registered = Registered {
            primary_connected: primary.then_some(&*self.primary_connected),
            conns,
            status: &status,
        };
        if primary {
            self.primaries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(status.clone());
        }
        let _snoopable = Registered {
            primary_connected: None,
            conns: &self.primaries,
            status: &status,
        };
        if primary {
            tracing::info!("{}: connected to {peer}", self.bridge);
        } else {
            tracing::debug!("{}: connection on {peer}", self.bridge);
        }
        let r = conn::serve(
            stream,
            ConnOptions {
                kind: self.kind,
                probe_interval: self.probe,
                peer: peer.clone(),
                versions: self.versions.load(Ordering::Relaxed),
                hello_timeout: conn::HELLO_TIMEOUT,
                packet_in_limit: self.packet_in_limit,
            },
            self.handler.clone(),
            self.roles.clone(),
            self.events.subscribe(),
            status.clone(),
        )
        .await;
        match r {
            Ok(()) if primary => tracing::info!("{}: {peer}: connection closed", self.bridge),
            Ok(()) => tracing::debug!("{}: {peer}: connection closed", self.bridge),
            Err(e) => {
                let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                f.0 = f.0.saturating_add(1);
                if f.1.ready() {
                    tracing::warn!(
                        "{}: {peer}: connection dropped: {e} ({} dropped so far)",
                        self.bridge,
                        f.0
                    );
                } else {
                    tracing::debug!("{}: {peer}: connection dropped: {e}", self.bridge);
                }
            }
        }
    }
}

/// A connection's place in the manager's counts, given back on drop.
struct Registered<'a> {
    primary_connected: Option<&'a AtomicUsize>,
    conns: &'a Mutex<Vec<Arc<ConnStatus>>>,
    status: &'a Arc<ConnStatus>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.primary_connected {
            n.fetch_sub(1, Ordering::Relaxed);
        }
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| !Arc::ptr_eq(s, self.status));
    }
}

async fn reconnect<F, Fut>(
    name: String,
    bridge: String,
    spawner: Spawner,
    conns: Arc<Mutex<Vec<Arc<ConnStatus>>>>,
    max_backoff: Duration,
    connect: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Box<dyn Stream>>>,
{
    let mut backoff = Duration::from_secs(1);
    loop {
        match connect().await {
            Ok(s) => {
                let up = tokio::time::Instant::now();
                spawner.run(s, name.clone(), &conns).await;
                if up.elapsed() >= STABLE_CONNECTION {
                    backoff = Duration::from_secs(1);
                    continue;
                }
                tracing::info!(
                    "{bridge}: {name}: connection lost at once, retrying in {backoff:?}"
                );
            }
            Err(e) => {
                tracing::info!(
                    "{bridge}: {name}: connection failed ({e}), retrying in {backoff:?}"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// A listening socket.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    /// The next connection and, for TCP, the peer's address.
    async fn accept(&self) -> std::io::Result<(Box<dyn Stream>, Option<std::net::SocketAddr>)> {
        match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Box::new(s), None))
            }
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), Some(peer)))
            }
        }
    }
}

/// Serve the connections of `listener`, at most [`MAX_ACCEPTED`] at once,
/// until the listener breaks (transient accept errors are waited out,
/// [`crate::accept::next`]).
/// Aborting this task closes them all (a removed `ptcp:`/`punix:`
/// controller takes its connections with it, as in OVS).
async fn accept(
    listener: Listener,
    name: String,
    spawner: Spawner,
    conns: Arc<Mutex<Vec<Arc<ConnStatus>>>>,
) {
    let mut live = tokio::task::JoinSet::new();
    let mut refused = 0u64;
    let mut refused_log = crate::ratelimit::LogLimit::default();
    let mut errors = crate::accept::AcceptErrors::new(format!("{}: {name}", spawner.bridge));
    loop {
        match crate::accept::next(&mut errors, || listener.accept()).await {
            Ok((s, peer)) => {
                while live.try_join_next().is_some() {}
                if live.len() >= MAX_ACCEPTED {
                    drop(s);
                    refused = refused.saturating_add(1);
                    if refused_log.ready() {
                        tracing::warn!(
                            "{}: {name}: {MAX_ACCEPTED} connections already, refused one ({refused} in all)",
                            spawner.bridge
                        );
                    }
                    continue;
                }
                let sp = spawner.clone();
                let conns = conns.clone();
                let name = match peer {
                    Some(p) => format!("{name} ({p})"),
                    None => name.clone(),
                };
                live.spawn(async move { sp.run(s, name, &conns).await });
            }
            Err(e) => {
                tracing::error!(
                    "{}: {name}: accept: {e}: no longer listening",
                    spawner.bridge
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("tcp:127.0.0.1:6633"),
            Ok(Target::Tcp("127.0.0.1:6633".into()))
        );
        assert_eq!(
            Target::parse("tcp:127.0.0.1"),
            Ok(Target::Tcp("127.0.0.1:6653".into()))
        );
        assert_eq!(
            Target::parse("ptcp:16653:127.0.0.1"),
            Ok(Target::Ptcp("127.0.0.1:16653".into()))
        );
        assert_eq!(
            Target::parse("ptcp:"),
            Ok(Target::Ptcp("0.0.0.0:6653".into()))
        );
        assert_eq!(
            Target::parse("punix:/run/x.sock"),
            Ok(Target::Punix("/run/x.sock".into()))
        );
        assert!(Target::parse("ssl:1.2.3.4").is_err());
        assert!(Target::parse("tcp:").is_err());
        assert!(Target::parse("nonsense").is_err());
    }

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use xennet_openflow::model::Msg;
    use xennet_openflow::OfError;

    /// Accepts everything, answers nothing.
    struct Null;

    impl Handler for Null {
        fn handle(&self, _: &conn::ConnCtx, _: Msg) -> Result<Vec<Msg>, OfError> {
            Ok(Vec::new())
        }
    }

    fn tmp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xennet-mgr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Read the switch's HELLO and answer with a 1.3 one.
    async fn hello(s: &mut UnixStream) {
        let mut hdr = [0u8; 16];
        s.read_exact(&mut hdr).await.unwrap();
        let mut out = Vec::new();
        xennet_openflow::header::encode_hello(4, 1 << 4, 1, &mut out);
        s.write_all(&out).await.unwrap();
    }

    /// Wait (up to 60 s: a loaded machine can stall) until `f` holds.
    async fn eventually(what: &str, f: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}");
    }

    /// Connect to `path` until the switch greets the connection with a
    /// HELLO (a slot freed by a close is free once the listener has seen
    /// the close: up to 60 s on a loaded machine).
    async fn served_again(path: &std::path::Path) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut s = UnixStream::connect(path).await.unwrap();
            let mut b = [0u8; 16];
            if s.read_exact(&mut b).await.is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the listener never served again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn packet_in(len: usize) -> xennet_openflow::model::PacketIn {
        xennet_openflow::model::PacketIn {
            buffer_id: xennet_openflow::header::NO_BUFFER,
            total_len: 0,
            reason: 0,
            table_id: 0,
            cookie: 0,
            in_port: 1,
            metadata: 0,
            data: vec![0; len],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn packet_ins_held_for_a_slow_connection_stay_within_the_budget() {
        let mgr = ConnMgr::new("br0", Arc::new(Null));
        // Nobody listening: nothing is held.
        for _ in 0..200 {
            assert!(mgr.send_packet_in(packet_in(65_535), 0));
        }
        // A connection that never reads holds what it was sent, up to the
        // budget; then packet-ins are dropped and counted.
        let mut slow = mgr.events().subscribe();
        let sent = (0..200)
            .filter(|_| mgr.send_packet_in(packet_in(65_535), 0))
            .count();
        assert_eq!(sent, PACKET_IN_BUDGET / 65_535);
        assert_eq!(mgr.packet_ins_dropped(), 200 - sent as u64);
        // Once it has taken them (or goes away), the budget is free again.
        for _ in 0..sent {
            slow.recv().await.unwrap();
        }
        assert!(mgr.send_packet_in(packet_in(65_535), 0));
        drop(slow);
        assert_eq!(mgr.packet_in_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn controller_columns_follow_ovs_bounds() {
        let c = ControllerConfig::from_columns("tcp:1.2.3.4", None, None, None, None);
        assert_eq!(c, ControllerConfig::new("tcp:1.2.3.4"));
        // inactivity_probe: 0 turns it off, at least 5 s (rconn).
        let c = ControllerConfig::from_columns("t", Some(0), Some(500), Some(100), None);
        assert_eq!(c.probe, None);
        assert_eq!(c.max_backoff, Duration::from_secs(1));
        assert_eq!(
            c.packet_in_limit,
            Some(conn::PacketInLimit {
                rate: 100,
                burst: 25
            })
        );
        let c = ControllerConfig::from_columns("t", Some(1000), Some(30_000), Some(1000), Some(50));
        assert_eq!(c.probe, Some(Duration::from_secs(5)));
        assert_eq!(c.max_backoff, Duration::from_secs(30));
        assert_eq!(
            c.packet_in_limit,
            Some(conn::PacketInLimit {
                rate: 1000,
                burst: 50
            })
        );
        let c = ControllerConfig::from_columns("t", Some(30_000), None, None, None);
        assert_eq!(c.probe, Some(Duration::from_secs(30)));
    }

    #[tokio::test]
    async fn removing_a_connected_controller_gives_back_its_count() {
        let dir = tmp_dir("count");
        let sock = dir.join("ctl.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let mgr = ConnMgr::new("br0", Arc::new(Null));
        let target = format!("unix:{}", sock.display());
        assert!(mgr
            .set_controllers(&[ControllerConfig::new(&target)])
            .is_empty());
        let (mut s, _) = listener.accept().await.unwrap();
        hello(&mut s).await;
        eventually("controller up", || mgr.connected_controllers() == 1).await;
        eventually("is_connected", || {
            mgr.controller_status()[&target].is_connected
        })
        .await;
        // Removing the controller aborts its task mid-connection.
        mgr.set_controllers(&[]);
        eventually("count given back", || mgr.connected_controllers() == 0).await;
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_controller_that_closes_at_once_is_retried_with_backoff() {
        let mgr = ConnMgr::new("br0", Arc::new(Null));
        let spawner = mgr.spawner(ConnKind::Primary, None, None);
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = attempts.clone();
        let task = tokio::spawn(reconnect(
            "test".into(),
            "br0".into(),
            spawner,
            Arc::new(Mutex::new(Vec::new())),
            MAX_BACKOFF,
            move || {
                a.fetch_add(1, Ordering::Relaxed);
                // The peer is gone as soon as we connect.
                let (ours, _theirs) = tokio::io::duplex(64);
                async move { Ok(Box::new(ours) as Box<dyn Stream>) }
            },
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        task.abort();
        // At 0 s and 1 s; it used to reconnect in a tight loop.
        let n = attempts.load(Ordering::Relaxed);
        assert!((1..=3).contains(&n), "{n} attempts in 1.5 s");
    }

    #[tokio::test]
    async fn a_listener_serves_at_most_max_accepted_connections() {
        let dir = tmp_dir("accept");
        let mgr = ConnMgr::new("br0", Arc::new(Null));
        let path = mgr.listen_mgmt(&dir).unwrap();
        let mut kept = Vec::new();
        for _ in 0..MAX_ACCEPTED {
            let mut s = UnixStream::connect(&path).await.unwrap();
            let mut hdr = [0u8; 16];
            s.read_exact(&mut hdr).await.unwrap();
            kept.push(s);
        }
        // One more is closed without a HELLO.
        let mut s = UnixStream::connect(&path).await.unwrap();
        let mut b = [0u8; 16];
        assert_eq!(s.read(&mut b).await.unwrap(), 0);
        // Once one closes, there is room again.
        drop(kept.pop());
        served_again(&path).await;
        mgr.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Management connections that completed HELLO and then went silent
    /// are probed and dropped (after twice [`DEFAULT_PROBE`]), so they
    /// cannot keep `ovs-ofctl` out for as long as they stay.
    #[tokio::test]
    async fn silent_management_connections_are_probed_and_dropped() {
        let dir = tmp_dir("probe");
        let mgr = ConnMgr::new("br0", Arc::new(Null));
        let path = mgr.listen_mgmt(&dir).unwrap();
        let mut silent = Vec::new();
        for _ in 0..MAX_ACCEPTED {
            let mut s = UnixStream::connect(&path).await.unwrap();
            hello(&mut s).await;
            silent.push(s);
        }
        // Full: one more is closed at once.
        let mut s = UnixStream::connect(&path).await.unwrap();
        let mut b = [0u8; 16];
        assert_eq!(s.read(&mut b).await.unwrap(), 0);
        // Each silent one gets an ECHO_REQUEST, then is closed.
        for s in &mut silent {
            let mut got = Vec::new();
            tokio::time::timeout(4 * DEFAULT_PROBE, s.read_to_end(&mut got))
                .await
                .expect("a silent connection was kept")
                .unwrap();
            assert!(
                got.chunks(8).any(|h| h.len() == 8 && h[1] == 2),
                "no echo request: {got:?}"
            );
        }
        // Then the socket serves again.
        served_again(&path).await;
        mgr.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
