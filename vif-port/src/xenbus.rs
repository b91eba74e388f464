//! The xenbus handshake of a vif (Xen's `io/xenbus.h` states and the
//! `io/netif.h` keys), over any xenstore [`Client`].
//!
//! Three parties meet in xenstore, as on Xen:
//!
//! - the toolstack ([`create_vif_nodes`], what libxl does for `vif=[...]`)
//!   creates `<backend home>/backend/vif/<domid>/<handle>` and
//!   `/local/domain/<domid>/device/vif/<handle>`, both in state
//!   Initialising;
//! - the backend ([`BackendDevice`], driven by watches) advertises its
//!   features and goes to InitWait, waits for `hotplug-status = connected`,
//!   reads and validates the frontend's keys ([`read_frontend`]) once the
//!   frontend is Initialised or Connected, connects the vif through a
//!   [`VifHooks`] and goes Connected; it follows the frontend to
//!   Closing/Closed and back to InitWait when the frontend re-initialises;
//! - the frontend (xennet-guest) writes its ring references and event
//!   channel and moves Initialising → Initialised → Connected.
//!
//! The backend never trusts a frontend key: every value is bounded in
//! length, parsed strictly and, when wrong, logged, recorded under
//! `<backend home>/error/backend/vif/<domid>/<handle>/error` (as Linux's
//! `xenbus_dev_fatal`) and answered with state Closing, never a panic.

use crate::grant::{DomId, GrantRef};
use crate::netback::FrontendConfig;
use crate::xenstore::{Access, Client, ErrorCode, Perm, XsError};

/// `enum xenbus_state` of `io/xenbus.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum XenbusState {
    /// `XenbusStateUnknown` (0), also what a missing `state` node means.
    Unknown = 0,
    /// `XenbusStateInitialising` (1).
    Initialising = 1,
    /// `XenbusStateInitWait` (2): backend waiting for the frontend's keys.
    InitWait = 2,
    /// `XenbusStateInitialised` (3): frontend keys written.
    Initialised = 3,
    /// `XenbusStateConnected` (4).
    Connected = 4,
    /// `XenbusStateClosing` (5).
    Closing = 5,
    /// `XenbusStateClosed` (6).
    Closed = 6,
    /// `XenbusStateReconfiguring` (7).
    Reconfiguring = 7,
    /// `XenbusStateReconfigured` (8).
    Reconfigured = 8,
}

impl XenbusState {
    /// Parses a `state` node's value (decimal); `None` for anything else.
    pub fn parse(v: &[u8]) -> Option<XenbusState> {
        Some(match parse_uint(v)? {
            0 => XenbusState::Unknown,
            1 => XenbusState::Initialising,
            2 => XenbusState::InitWait,
            3 => XenbusState::Initialised,
            4 => XenbusState::Connected,
            5 => XenbusState::Closing,
            6 => XenbusState::Closed,
            7 => XenbusState::Reconfiguring,
            8 => XenbusState::Reconfigured,
            _ => return None,
        })
    }

    /// The value written to a `state` node.
    pub fn as_str(self) -> &'static str {
        match self {
            XenbusState::Unknown => "0",
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
            XenbusState::Reconfigured => "8",
        }
    }
}

/// Longest frontend value parsed: every `io/netif.h` key we read is a
/// small decimal number, so anything longer is refused before parsing.
const MAX_VALUE_LEN: usize = 20;

/// Strict unsigned decimal (what `xenbus_scanf("%u")` accepts, minus
/// signs, blanks and trailing junk).
fn parse_uint(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > MAX_VALUE_LEN || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Queues the backend supports (`multi-queue-max-queues`).
pub const MAX_QUEUES: u32 = crate::netback::MAX_QUEUES as u32;

/// The feature keys the backend writes before InitWait (`io/netif.h`):
/// what this netback implements: split event channels, up to
/// [`MAX_QUEUES`] queues, the control ring (Toeplitz hash requests) and
/// multicast control (`XEN_NETIF_EXTRA_TYPE_MCAST_ADD/DEL`, read once at
/// connection: `feature-dynamic-multicast-control` is not offered).
pub const BACKEND_FEATURES: &[(&str, &str)] = &[
    ("feature-sg", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "1"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-split-event-channels", "1"),
    ("multi-queue-max-queues", "8"),
    ("feature-multicast-control", "1"),
    ("feature-ctrl-ring", "1"),
];

/// Errors of the handshake.
#[derive(Debug, thiserror::Error)]
pub enum XenbusError {
    /// The frontend wrote a missing, malformed or unsupported value.
    #[error("frontend: {0}")]
    Frontend(String),
    /// A xenstore request failed.
    #[error(transparent)]
    Store(#[from] XsError),
}

fn fe_err(msg: impl Into<String>) -> XenbusError {
    XenbusError::Frontend(msg.into())
}

/// Reads a node; `None` when it does not exist.
fn read_opt(xs: &Client, path: &str) -> Result<Option<Vec<u8>>, XsError> {
    match xs.read(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is(&ErrorCode::Enoent) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `state` node under `dir`: [`XenbusState::Unknown`] when missing or
/// malformed (as Linux's `xenbus_read_driver_state`).
pub fn read_state(xs: &Client, dir: &str) -> Result<XenbusState, XsError> {
    Ok(read_opt(xs, &format!("{dir}/state"))?
        .and_then(|v| XenbusState::parse(&v))
        .unwrap_or(XenbusState::Unknown))
}

/// Writes `state` under `dir`.
pub fn write_state(xs: &Client, dir: &str, state: XenbusState) -> Result<(), XsError> {
    xs.write(&format!("{dir}/state"), state.as_str())
}

/// The frontend keys [`read_frontend`] reads ahead in one round trip
/// ([`Client::read_many`]): every top-level key of `io/netif.h` it may
/// need. A multi-queue frontend's `queue-N/` keys are read one by one.
const FRONTEND_KEYS: &[&str] = &[
    "multi-queue-num-queues",
    "tx-ring-ref",
    "rx-ring-ref",
    "event-channel-tx",
    "event-channel-rx",
    "event-channel",
    "ctrl-ring-ref",
    "event-channel-ctrl",
    "request-rx-copy",
    "feature-sg",
    "feature-gso-tcpv4",
    "feature-gso-tcpv6",
    "feature-ipv6-csum-offload",
    "feature-no-csum-offload",
    "feature-rx-notify",
    "request-multicast-control",
];

/// A frontend directory's keys: those of [`FRONTEND_KEYS`] read ahead,
/// any other read when asked for.
struct FrontendDir<'a> {
    xs: &'a Client,
    fe: &'a str,
    ahead: Vec<Option<Vec<u8>>>,
}

impl<'a> FrontendDir<'a> {
    /// Reads [`FRONTEND_KEYS`] under `fe` in one round trip.
    fn read(xs: &'a Client, fe: &'a str) -> Result<Self, XsError> {
        let paths: Vec<String> = FRONTEND_KEYS.iter().map(|k| format!("{fe}/{k}")).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let ahead = xs.read_many(&refs)?;
        Ok(FrontendDir { xs, fe, ahead })
    }

    /// Key `key` (relative to the frontend directory); `None` when missing.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, XsError> {
        match FRONTEND_KEYS.iter().position(|k| *k == key) {
            Some(i) => Ok(self.ahead.get(i).cloned().flatten()),
            None => read_opt(self.xs, &format!("{}/{key}", self.fe)),
        }
    }
}

/// An unsigned frontend key: `default` when missing, an error when not a
/// decimal number no larger than `max`.
fn read_uint(
    fe: &FrontendDir<'_>,
    key: &str,
    default: Option<u64>,
    max: u64,
) -> Result<u64, XenbusError> {
    match fe.get(key)? {
        None => default.ok_or_else(|| fe_err(format!("{key} is missing"))),
        Some(v) => match parse_uint(&v) {
            Some(n) if n <= max => Ok(n),
            _ => Err(fe_err(format!(
                "{key} = {:?} is not a number up to {max}",
                String::from_utf8_lossy(v.get(..MAX_VALUE_LEN.min(v.len())).unwrap_or(&[]))
            ))),
        },
    }
}

/// A boolean feature key (`feature-*`): missing means false, any non-zero
/// number true (as `xenbus_read_unsigned`), anything else an error.
fn read_flag(fe: &FrontendDir<'_>, key: &str) -> Result<bool, XenbusError> {
    Ok(read_uint(fe, key, Some(0), u64::MAX)? != 0)
}

/// The event channel(s) a frontend gave (`event-channel`, or
/// `event-channel-tx` and `event-channel-rx` with
/// `feature-split-event-channels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventChannels {
    /// One port for both directions (`event-channel`).
    Single(u32),
    /// Split channels (`event-channel-tx`, `event-channel-rx`).
    Split {
        /// `event-channel-tx`.
        tx: u32,
        /// `event-channel-rx`.
        rx: u32,
    },
}

/// One queue's keys: under `queue-N/` with several queues, at the top of
/// the frontend directory with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueKeys {
    /// `tx-ring-ref`.
    pub tx_ring_ref: GrantRef,
    /// `rx-ring-ref`.
    pub rx_ring_ref: GrantRef,
    /// `event-channel`, or `event-channel-tx` and `event-channel-rx`.
    pub evtchn: EventChannels,
}

/// Everything the backend needs from the frontend's `io/netif.h` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendKeys {
    /// Features for [`crate::Vif::connect_queues`] (its ring references
    /// are queue 0's).
    pub config: FrontendConfig,
    /// Every queue, 1 to [`MAX_QUEUES`] (`multi-queue-num-queues`).
    pub queues: Vec<QueueKeys>,
    /// The control ring: (`ctrl-ring-ref`, `event-channel-ctrl`), when
    /// the frontend gave one.
    pub ctrl: Option<(GrantRef, u32)>,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum_offload: bool,
}

/// Reads one queue's ring references and event channel(s) under `fe`,
/// with key names prefixed by `dir` (`""` or `"queue-N/"`), as Linux
/// netback's `connect_data_rings`: `event-channel-tx` (then
/// `event-channel-rx` is required) or else `event-channel`.
fn read_queue(fe: &FrontendDir<'_>, dir: &str) -> Result<QueueKeys, XenbusError> {
    let gref_max = u64::from(GrantRef::MAX);
    let port_max = u64::from(u32::MAX);
    let tx_ring_ref = read_uint(fe, &format!("{dir}tx-ring-ref"), None, gref_max)? as GrantRef;
    let rx_ring_ref = read_uint(fe, &format!("{dir}rx-ring-ref"), None, gref_max)? as GrantRef;
    let tx_key = format!("{dir}event-channel-tx");
    let evtchn = if fe.get(&tx_key)?.is_some() {
        let tx = read_uint(fe, &tx_key, None, port_max)? as u32;
        let rx = read_uint(fe, &format!("{dir}event-channel-rx"), None, port_max)? as u32;
        if tx == rx {
            return Err(fe_err(format!(
                "{dir}event-channel-tx and -rx are the same port {tx}"
            )));
        }
        EventChannels::Split { tx, rx }
    } else {
        EventChannels::Single(read_uint(fe, &format!("{dir}event-channel"), None, port_max)? as u32)
    };
    Ok(QueueKeys {
        tx_ring_ref,
        rx_ring_ref,
        evtchn,
    })
}

/// Reads and validates the frontend's keys under `fe` (its
/// `device/vif/<handle>` directory), for guest `domid`'s vif `handle`:
/// `multi-queue-num-queues` (missing = 1; 0 or more than [`MAX_QUEUES`]
/// refused); per queue (`queue-N/` with several queues, else the top
/// level) `tx-ring-ref` and `rx-ring-ref` (grant references) and
/// `event-channel` or split `event-channel-tx`/`event-channel-rx`;
/// optionally `ctrl-ring-ref` with `event-channel-ctrl`; every ring
/// reference and port distinct; `request-rx-copy` (must be 1: page
/// flipping is gone), and the `feature-sg`, `feature-gso-tcpv4`,
/// `feature-gso-tcpv6`, `feature-no-csum-offload`,
/// `feature-ipv6-csum-offload`, `feature-rx-notify` and
/// `request-multicast-control` flags. The top-level keys are read in
/// one round trip ([`Client::read_many`]).
pub fn read_frontend(
    xs: &Client,
    fe: &str,
    domid: DomId,
    handle: u16,
) -> Result<FrontendKeys, XenbusError> {
    parse_frontend(&FrontendDir::read(xs, fe)?, domid, handle)
}

/// [`read_frontend`] on keys already (partly) read.
fn parse_frontend(
    fe: &FrontendDir<'_>,
    domid: DomId,
    handle: u16,
) -> Result<FrontendKeys, XenbusError> {
    let n = read_uint(fe, "multi-queue-num-queues", Some(1), u64::from(u32::MAX))?;
    if n == 0 {
        return Err(fe_err("multi-queue-num-queues = 0: a vif needs a queue"));
    }
    if n > u64::from(MAX_QUEUES) {
        return Err(fe_err(format!(
            "guest requested {n} queues, exceeding the maximum of {MAX_QUEUES}"
        )));
    }
    let mut queues = Vec::with_capacity(n as usize);
    for q in 0..n {
        let dir = if n == 1 {
            String::new()
        } else {
            format!("queue-{q}/")
        };
        queues.push(read_queue(fe, &dir)?);
    }
    let ctrl = match fe.get("ctrl-ring-ref")? {
        None => None,
        Some(_) => Some((
            read_uint(fe, "ctrl-ring-ref", None, u64::from(GrantRef::MAX))? as GrantRef,
            read_uint(fe, "event-channel-ctrl", None, u64::from(u32::MAX))? as u32,
        )),
    };
    let mut refs: Vec<GrantRef> = ctrl.iter().map(|c| c.0).collect();
    let mut ports: Vec<u32> = ctrl.iter().map(|c| c.1).collect();
    for q in &queues {
        for r in [q.tx_ring_ref, q.rx_ring_ref] {
            if refs.contains(&r) {
                return Err(fe_err(format!("ring reference {r} used twice")));
            }
            refs.push(r);
        }
        let (a, b) = match q.evtchn {
            EventChannels::Single(p) => (p, None),
            EventChannels::Split { tx, rx } => (tx, Some(rx)),
        };
        for p in std::iter::once(a).chain(b) {
            if ports.contains(&p) {
                return Err(fe_err(format!("event channel port {p} used twice")));
            }
            ports.push(p);
        }
    }
    if read_uint(fe, "request-rx-copy", None, u64::MAX)? == 0 {
        return Err(fe_err(
            "request-rx-copy = 0: the frontend must support rx-copy",
        ));
    }
    let (tx0, rx0) = queues
        .first()
        .map_or((0, 0), |q| (q.tx_ring_ref, q.rx_ring_ref));
    let mut config = FrontendConfig::new(domid, handle, tx0, rx0);
    config.sg = read_flag(fe, "feature-sg")?;
    config.gso_tcpv4 = read_flag(fe, "feature-gso-tcpv4")?;
    config.gso_tcpv6 = read_flag(fe, "feature-gso-tcpv6")?;
    let ipv6_csum_offload = read_flag(fe, "feature-ipv6-csum-offload")?;
    // The datapath has one checksum-offload flag per port: a frontend
    // that cannot take IPv6 packets with blank checksums (Linux clears
    // NETIF_F_IPV6_CSUM then) gets every checksum filled in.
    config.rx_csum_blank = !read_flag(fe, "feature-no-csum-offload")? && ipv6_csum_offload;
    config.rx_notify = read_flag(fe, "feature-rx-notify")?;
    config.multicast_control = read_flag(fe, "request-multicast-control")?;
    Ok(FrontendKeys {
        config,
        queues,
        ctrl,
        ipv6_csum_offload,
    })
}

/// What the toolstack knows about a new vif (libxl's `libxl_device_nic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifSpec {
    /// The guest's domain id.
    pub domid: DomId,
    /// The device handle (`handle`, the `N` of `vifD.N`).
    pub handle: u16,
    /// The backend's domain id (0 for dom0, else a driver domain).
    pub backend_domid: DomId,
    /// `mac`, as `00:16:3e:..`.
    pub mac: String,
    /// `bridge`.
    pub bridge: String,
    /// `script` (the hotplug script; empty: none).
    pub script: String,
}

/// The backend directory of a vif: `/local/domain/<backend>/backend/vif/<domid>/<handle>`.
pub fn backend_path(backend_domid: DomId, domid: DomId, handle: u16) -> String {
    format!("/local/domain/{backend_domid}/backend/vif/{domid}/{handle}")
}

/// Where the backend explains why it refused a vif (`xenbus_dev_fatal`):
/// `/local/domain/<backend>/error/backend/vif/<domid>/<handle>/error`.
pub fn error_path(backend_domid: DomId, domid: DomId, handle: u16) -> String {
    format!("/local/domain/{backend_domid}/error/backend/vif/{domid}/{handle}/error")
}

/// The frontend directory of a vif: `/local/domain/<domid>/device/vif/<handle>`.
pub fn frontend_path(domid: DomId, handle: u16) -> String {
    format!("/local/domain/{domid}/device/vif/{handle}")
}

/// The toolstack's part (what libxl's `libxl__device_nic_add` writes), in
/// one transaction: the backend directory (`frontend`, `frontend-id`,
/// `online` = 1, `state` = 1 (Initialising), `handle`, `mac`, `bridge`,
/// `script`), owned by the backend domain and readable by the guest, and
/// the frontend directory (`backend`, `backend-id`, `state` = 1, `handle`,
/// `mac`), owned by the guest and readable by the backend. Any stale
/// directories of the same vif are replaced. Needs a privileged client.
///
/// The domain's own directories above them (`/local/domain/<backend>/
/// backend/vif/<domid>` and `/local/domain/<domid>/device/vif`) are made
/// first, each by one `MKDIR` outside the transaction, as libxl makes a
/// domain's directories when it creates the domain, before its devices.
/// So the transaction changes only this domain's nodes: domains created
/// together do not all add a child to `/local/domain` and `.../backend/vif`
/// inside their transactions, where every commit would make all the
/// others' fail with `EAGAIN`.
pub fn create_vif_nodes(xs: &Client, spec: &VifSpec) -> Result<(), XsError> {
    let be = backend_path(spec.backend_domid, spec.domid, spec.handle);
    let fe = frontend_path(spec.domid, spec.handle);
    for dir in [&be, &fe] {
        if let Some((parent, _)) = dir.rsplit_once('/') {
            xs.mkdir(parent)?;
        }
    }
    let be_perms = [
        Perm::new(Access::None, u32::from(spec.backend_domid)),
        Perm::new(Access::Read, u32::from(spec.domid)),
    ];
    let fe_perms = [
        Perm::new(Access::None, u32::from(spec.domid)),
        Perm::new(Access::Read, u32::from(spec.backend_domid)),
    ];
    xs.transaction(|tx| {
        for dir in [&be, &fe] {
            match tx.rm(dir) {
                Err(e) if !e.is(&ErrorCode::Enoent) => return Err(e),
                _ => {}
            }
        }
        tx.mkdir(&be)?;
        tx.set_perms(&be, &be_perms)?;
        tx.mkdir(&fe)?;
        tx.set_perms(&fe, &fe_perms)?;
        let handle = spec.handle.to_string();
        let domid = spec.domid.to_string();
        let backend_id = spec.backend_domid.to_string();
        let init = XenbusState::Initialising.as_str();
        for (k, v) in [
            ("frontend", fe.as_str()),
            ("frontend-id", &domid),
            ("online", "1"),
            ("state", init),
            ("handle", &handle),
            ("mac", &spec.mac),
            ("bridge", &spec.bridge),
            ("script", &spec.script),
        ] {
            tx.write(&format!("{be}/{k}"), v)?;
            tx.set_perms(&format!("{be}/{k}"), &be_perms)?;
        }
        for (k, v) in [
            ("backend", be.as_str()),
            ("backend-id", &backend_id),
            ("state", init),
            ("handle", &handle),
            ("mac", &spec.mac),
        ] {
            tx.write(&format!("{fe}/{k}"), v)?;
            tx.set_perms(&format!("{fe}/{k}"), &fe_perms)?;
        }
        Ok(())
    })
}

/// What the backend does to the data path when the handshake says so.
pub trait VifHooks {
    /// Map the rings, bind the event channel and put vif `vif<domid>.<handle>`
    /// on its bridge; an error refuses the frontend (state Closing).
    fn connect(&mut self, keys: &FrontendKeys) -> Result<(), String>;
    /// Take the vif off its bridge and release the rings (idempotent).
    fn disconnect(&mut self);
    /// Release the rings and event channels but keep the vif's port for
    /// the frontend's reconnection, as Linux netback's
    /// `xenvif_disconnect_data` keeps its netdev (the next
    /// [`VifHooks::connect`] then swaps fresh rings in). By default the
    /// same as [`VifHooks::disconnect`].
    fn disconnect_rings(&mut self) {
        self.disconnect();
    }
    /// The backend's `state = Connected` write has gone to xenstore
    /// after a successful [`VifHooks::connect`]: finish what need not
    /// delay the frontend (logging, waking the forwarding thread). An
    /// error disconnects and refuses the frontend (state Closing).
    fn connected(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// What [`BackendDevice::update`] left the device in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The backend state now (after this update).
    State(XenbusState),
    /// The backend directory is gone (the toolstack removed the vif): the
    /// device is disconnected and may be dropped.
    Removed,
}

/// The backend of one vif, `backend/vif/<domid>/<handle>`: Linux
/// xen-netback's `frontend_changed`/`hotplug_status_changed` logic, made
/// level-triggered: [`BackendDevice::update`] re-reads the states and
/// acts, so call it on every watch event of the backend directory, its
/// `hotplug-status` or the frontend's `state`, coalesced or not.
#[derive(Debug)]
pub struct BackendDevice {
    /// The guest.
    pub domid: DomId,
    /// The device handle.
    pub handle: u16,
    backend_domid: DomId,
    be: String,
    fe: Option<String>,
    state: XenbusState,
    connected: bool,
    /// The frontend was refused; wait for it to re-initialise.
    failed: bool,
    /// Write `hotplug-status = connected` ourselves once the vif is on
    /// its bridge (no hotplug script runs in emulation).
    self_hotplug: bool,
    /// We wrote `hotplug-status = connected` (with `self_hotplug`).
    hotplug_written: bool,
    /// When the last `state = Connected` write went to xenstore.
    connected_at: Option<std::time::Instant>,
}

impl BackendDevice {
    /// A device for `backend/vif/<domid>/<handle>` of `backend_domid`;
    /// with `self_hotplug` the backend writes `hotplug-status = connected`
    /// itself once [`VifHooks::connect`] succeeded, else it waits for a
    /// hotplug script to write it.
    pub fn new(backend_domid: DomId, domid: DomId, handle: u16, self_hotplug: bool) -> Self {
        BackendDevice {
            domid,
            handle,
            backend_domid,
            be: backend_path(backend_domid, domid, handle),
            fe: None,
            state: XenbusState::Unknown,
            connected: false,
            failed: false,
            self_hotplug,
            hotplug_written: false,
            connected_at: None,
        }
    }

    /// When the backend last sent its `state = Connected` write (the end
    /// of its share of a connection).
    pub fn connected_at(&self) -> Option<std::time::Instant> {
        self.connected_at
    }

    /// The backend directory.
    pub fn backend_dir(&self) -> &str {
        &self.be
    }

    /// The frontend directory, once read from the backend's `frontend`.
    pub fn frontend_dir(&self) -> Option<&str> {
        self.fe.as_deref()
    }

    /// The interface name, `vif<domid>.<handle>`.
    pub fn name(&self) -> String {
        format!("vif{}.{}", self.domid, self.handle)
    }

    /// Whether the data path is connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    fn set_state(&mut self, xs: &Client, s: XenbusState) -> Result<(), XsError> {
        if self.state != s {
            tracing::info!("{}: backend state {:?} -> {:?}", self.name(), self.state, s);
            write_state(xs, &self.be, s)?;
            self.state = s;
        }
        Ok(())
    }

    /// Refuse the frontend: log, write the error node as
    /// `xenbus_dev_fatal` does, and go Closing.
    fn fatal(&mut self, xs: &Client, msg: &str) -> Result<(), XsError> {
        tracing::warn!("{}: {msg}", self.name());
        self.failed = true;
        let node = error_path(self.backend_domid, self.domid, self.handle);
        if let Err(e) = xs.write(&node, msg) {
            tracing::warn!("{}: cannot write {node}: {e}", self.name());
        }
        self.set_state(xs, XenbusState::Closing)
    }

    /// Disconnect the data path: with `keep_port` (the frontend closes
    /// or starts over) only the rings ([`VifHooks::disconnect_rings`]),
    /// else (the device is gone) the port too, also one kept from an
    /// earlier disconnection.
    fn disconnect(&mut self, hooks: &mut dyn VifHooks, keep_port: bool) {
        if self.connected {
            tracing::info!("{}: disconnecting", self.name());
            if keep_port {
                hooks.disconnect_rings();
            } else {
                hooks.disconnect();
            }
            self.connected = false;
        } else if !keep_port {
            hooks.disconnect();
        }
    }

    /// Advertise the features ([`BACKEND_FEATURES`]) and go InitWait
    /// (Linux's `netback_probe`); reads `frontend` from the backend
    /// directory.
    fn probe(&mut self, xs: &Client) -> Result<(), XenbusError> {
        let fe = read_opt(xs, &format!("{}/frontend", self.be))?
            .ok_or_else(|| fe_err("the backend directory has no frontend key"))?;
        let fe = String::from_utf8(fe)
            .ok()
            .filter(|p| p.starts_with('/') && p.len() <= 256)
            .ok_or_else(|| fe_err("bad frontend path"))?;
        self.fe = Some(fe);
        xs.transaction(|tx| {
            for (k, v) in BACKEND_FEATURES {
                tx.write(&format!("{}/{k}", self.be), v)?;
            }
            Ok(())
        })?;
        self.set_state(xs, XenbusState::InitWait)?;
        Ok(())
    }

    /// Re-read the states and act; see the type's documentation.
    pub fn update(
        &mut self,
        xs: &Client,
        hooks: &mut dyn VifHooks,
    ) -> Result<Progress, XenbusError> {
        // Our directory, its state and (once known) the frontend's
        // state, in one round trip.
        // With the frontend's keys too when this update may connect: a
        // (re)connection costs one round trip for every read.
        let known_fe = self.fe.clone();
        let mut paths = vec![self.be.clone(), format!("{}/state", self.be)];
        paths.extend(known_fe.as_ref().map(|fe| format!("{fe}/state")));
        let may_connect = known_fe.is_some() && !self.connected && !self.failed;
        if let (true, Some(fe)) = (may_connect, &known_fe) {
            paths.extend(FRONTEND_KEYS.iter().map(|k| format!("{fe}/{k}")));
        }
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let mut vals = match xs.read_many(&refs) {
            Ok(v) => v.into_iter(),
            // Xen's xenstored answers EACCES rather than ENOENT for a
            // node that is gone when its parents are not ours to read: a
            // driver domain reading the frontend of a destroyed domain.
            // Our own two keys alone then, and the frontend's state is
            // Unknown, as Linux's `xenbus_read_driver_state` makes any
            // failed read (so the vif disconnects, and goes once the
            // toolstack removes our directory).
            Err(e) if e.is(&ErrorCode::Eacces) && known_fe.is_some() => {
                tracing::debug!("{}: frontend not readable ({e}): Unknown", self.name());
                let mut own = xs.read_many(&refs[..2])?;
                own.resize(refs.len(), None);
                own.into_iter()
            }
            Err(e) => return Err(e.into()),
        };
        let state_of = |v: Option<Option<Vec<u8>>>| {
            v.flatten()
                .and_then(|v| XenbusState::parse(&v))
                .unwrap_or(XenbusState::Unknown)
        };
        if vals.next().flatten().is_none() {
            self.disconnect(hooks, false);
            return Ok(Progress::Removed);
        }
        let be_state = state_of(vals.next());
        let mut fe_state = known_fe.as_ref().map(|_| state_of(vals.next()));
        let mut ahead: Option<Vec<Option<Vec<u8>>>> = may_connect.then(|| vals.collect());
        // Our directory says Initialising although we moved on: the
        // toolstack removed it and wrote it anew before we saw it go.
        // Start over as the new device it is.
        if self.state != XenbusState::Unknown && be_state == XenbusState::Initialising {
            tracing::info!(
                "{}: backend directory re-created: starting over",
                self.name()
            );
            self.disconnect(hooks, false);
            self.state = XenbusState::Unknown;
            self.fe = None;
            self.failed = false;
            self.hotplug_written = false;
        }
        if self.fe.is_none() {
            fe_state = None;
            ahead = None;
            if let Err(e) = self.probe(xs) {
                self.fatal(xs, &format!("probe: {e}"))?;
                return Ok(Progress::State(self.state));
            }
        }
        let fe = self.fe.clone().unwrap_or_default();
        let fe_state = match fe_state {
            Some(s) => s,
            None => read_state(xs, &fe)?,
        };
        match fe_state {
            XenbusState::Initialising | XenbusState::InitWait => {
                // A frontend (re)starting: drop any old connection and
                // offer the features again.
                self.failed = false;
                self.walk(xs, XenbusState::InitWait, hooks)?;
            }
            XenbusState::Initialised | XenbusState::Connected => {
                if !self.connected && !self.failed {
                    self.walk(xs, XenbusState::InitWait, hooks)?;
                    let dir = match ahead.take() {
                        Some(ahead) => FrontendDir { xs, fe: &fe, ahead },
                        None => FrontendDir::read(xs, &fe)?,
                    };
                    self.try_connect(xs, &dir, hooks)?;
                }
            }
            XenbusState::Closing => self.walk(xs, XenbusState::Closing, hooks)?,
            XenbusState::Closed | XenbusState::Unknown => {
                self.walk(xs, XenbusState::Closed, hooks)?
            }
            XenbusState::Reconfiguring | XenbusState::Reconfigured => {
                tracing::debug!("{}: frontend state {fe_state:?} ignored", self.name());
            }
        }
        Ok(Progress::State(self.state))
    }

    /// Move the backend to `target` (InitWait, Closing or Closed) along
    /// the transitions Linux netback allows (`set_backend_state`):
    /// Initialising → InitWait → Connected, Connected → Closing (after
    /// disconnecting), InitWait → Closing, Closing → Closed, Closed →
    /// InitWait or Closing. So a connected backend whose frontend starts
    /// over goes Closing, Closed, then InitWait.
    fn walk(
        &mut self,
        xs: &Client,
        target: XenbusState,
        hooks: &mut dyn VifHooks,
    ) -> Result<(), XsError> {
        use XenbusState::*;
        // Every path is at most four steps; the bound only guards against
        // a mistake in the table.
        for _ in 0..6 {
            if self.state == target {
                break;
            }
            let next = match (self.state, target) {
                (Connected, _) => {
                    self.disconnect(hooks, true);
                    Closing
                }
                (Closed, Closing) => Closing,
                (Closed, _) => InitWait,
                (InitWait, _) => Closing,
                (Closing, _) => Closed,
                (_, Closed) => Closed,
                (_, _) => InitWait,
            };
            self.set_state(xs, next)?;
        }
        self.disconnect(hooks, true);
        Ok(())
    }

    fn try_connect(
        &mut self,
        xs: &Client,
        fe: &FrontendDir<'_>,
        hooks: &mut dyn VifHooks,
    ) -> Result<(), XsError> {
        let hp = format!("{}/hotplug-status", self.be);
        if !self.self_hotplug {
            match read_opt(xs, &hp)? {
                Some(v) if v == b"connected" => {}
                Some(v) if v == b"error" => {
                    return self.fatal(xs, "the hotplug script failed (hotplug-status = error)")
                }
                // Wait for the hotplug script: its write fires the watch.
                _ => return Ok(()),
            }
        }
        let keys = match parse_frontend(fe, self.domid, self.handle) {
            Ok(k) => k,
            Err(XenbusError::Store(e)) => return Err(e),
            Err(e) => return self.fatal(xs, &format!("{e}")),
        };
        if let Err(e) = hooks.connect(&keys) {
            return self.fatal(xs, &format!("connecting the rings: {e}"));
        }
        self.connected = true;
        if self.self_hotplug && !self.hotplug_written {
            // No hotplug script in emulation: the vif is on its bridge
            // now, which is what the script would have reported. Once per
            // device, as a hotplug script runs once (a reconnecting
            // frontend finds it written).
            xs.write(&hp, "connected")?;
            self.hotplug_written = true;
        }
        // The frontend waits for this write, we need not: a refusal is
        // logged and counted by the client (`Client::write_no_wait`), and
        // our later requests see the value.
        if self.state != XenbusState::Connected {
            let from = self.state;
            xs.write_no_wait(
                &format!("{}/state", self.be),
                XenbusState::Connected.as_str(),
            )?;
            self.connected_at = Some(std::time::Instant::now());
            self.state = XenbusState::Connected;
            tracing::info!("{}: backend state {from:?} -> Connected", self.name());
        }
        if let Err(e) = hooks.connected() {
            self.disconnect(hooks, true);
            return self.fatal(xs, &format!("connecting the rings: {e}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::XenstoreServer;

    fn spec() -> VifSpec {
        VifSpec {
            domid: 5,
            handle: 0,
            backend_domid: 0,
            mac: "00:16:3e:00:00:05".into(),
            bridge: "br0".into(),
            script: String::new(),
        }
    }

    #[derive(Default)]
    struct Hooks {
        connected: Option<FrontendKeys>,
        connects: u32,
        disconnects: u32,
        refuse: bool,
    }

    impl VifHooks for Hooks {
        fn connect(&mut self, keys: &FrontendKeys) -> Result<(), String> {
            if self.refuse {
                return Err("no such grant".into());
            }
            self.connects += 1;
            self.connected = Some(keys.clone());
            Ok(())
        }
        fn disconnect(&mut self) {
            self.disconnects += 1;
            self.connected = None;
        }
    }

    fn setup() -> (XenstoreServer, Client, String, String) {
        let srv = XenstoreServer::default();
        let xs = srv.connect_as(0).unwrap();
        create_vif_nodes(&xs, &spec()).unwrap();
        (srv, xs, backend_path(0, 5, 0), frontend_path(5, 0))
    }

    fn good_keys(xs: &Client, fe: &str) {
        for (k, v) in [
            ("tx-ring-ref", "8"),
            ("rx-ring-ref", "9"),
            ("event-channel", "3"),
            ("request-rx-copy", "1"),
            ("feature-sg", "1"),
            ("feature-gso-tcpv4", "1"),
            ("feature-rx-notify", "1"),
            ("feature-ipv6-csum-offload", "1"),
        ] {
            xs.write(&format!("{fe}/{k}"), v).unwrap();
        }
    }

    #[test]
    fn multicast_control_and_rx_notify_flags() {
        let (_srv, xs, _be, fe) = setup();
        good_keys(&xs, &fe);
        let c = read_frontend(&xs, &fe, 5, 0).unwrap().config;
        assert!(c.rx_notify && !c.multicast_control);
        xs.write(&format!("{fe}/request-multicast-control"), "1")
            .unwrap();
        xs.rm(&format!("{fe}/feature-rx-notify")).unwrap();
        let c = read_frontend(&xs, &fe, 5, 0).unwrap().config;
        assert!(!c.rx_notify && c.multicast_control);
        assert!(BACKEND_FEATURES.contains(&("feature-multicast-control", "1")));
    }

    #[test]
    fn no_ipv6_checksum_offload_means_no_blank_checksums() {
        let (_srv, xs, _be, fe) = setup();
        good_keys(&xs, &fe);
        assert!(read_frontend(&xs, &fe, 5, 0).unwrap().config.rx_csum_blank);
        xs.write(&format!("{fe}/feature-ipv6-csum-offload"), "0")
            .unwrap();
        let keys = read_frontend(&xs, &fe, 5, 0).unwrap();
        assert!(!keys.ipv6_csum_offload && !keys.config.rx_csum_blank);
    }

    /// [`setup`], then a backend probed (InitWait) and good frontend keys.
    fn probed(
        self_hotplug: bool,
        hooks: &mut Hooks,
    ) -> (XenstoreServer, Client, String, String, BackendDevice) {
        let (srv, xs, be, fe) = setup();
        let mut dev = BackendDevice::new(0, 5, 0, self_hotplug);
        dev.update(&xs, hooks).unwrap();
        good_keys(&xs, &fe);
        (srv, xs, be, fe, dev)
    }

    fn backend_state(xs: &Client, be: &str) -> XenbusState {
        read_state(xs, be).unwrap()
    }

    #[test]
    fn toolstack_nodes_and_permissions() {
        let (srv, xs, be, fe) = setup();
        assert_eq!(xs.read(&format!("{be}/state")).unwrap(), b"1");
        assert_eq!(xs.read(&format!("{be}/frontend")).unwrap(), fe.as_bytes());
        assert_eq!(xs.read(&format!("{fe}/backend-id")).unwrap(), b"0");
        assert_eq!(
            xs.get_perms(&be).unwrap(),
            vec![Perm::new(Access::None, 0), Perm::new(Access::Read, 5)]
        );
        // The guest reads the backend but cannot write it; it writes its own.
        let guest = srv.connect_as(5).unwrap();
        assert_eq!(
            guest.read(&format!("{be}/mac")).unwrap(),
            b"00:16:3e:00:00:05"
        );
        assert!(guest.write(&format!("{be}/state"), "4").is_err());
        guest.write(&format!("{fe}/tx-ring-ref"), "8").unwrap();
        // Another guest sees neither.
        let other = srv.connect_as(6).unwrap();
        assert!(other.read(&format!("{be}/mac")).is_err());
        assert!(other.read(&format!("{fe}/mac")).is_err());
    }

    #[test]
    fn full_handshake_and_close_and_reconnect() {
        let (_srv, xs, be, fe) = setup();
        let mut dev = BackendDevice::new(0, 5, 0, true);
        let mut hooks = Hooks::default();
        assert_eq!(
            dev.update(&xs, &mut hooks).unwrap(),
            Progress::State(XenbusState::InitWait)
        );
        for (k, v) in BACKEND_FEATURES {
            assert_eq!(xs.read(&format!("{be}/{k}")).unwrap(), v.as_bytes(), "{k}");
        }
        good_keys(&xs, &fe);
        write_state(&xs, &fe, XenbusState::Initialised).unwrap();
        assert_eq!(
            dev.update(&xs, &mut hooks).unwrap(),
            Progress::State(XenbusState::Connected)
        );
        assert_eq!(
            xs.read(&format!("{be}/hotplug-status")).unwrap(),
            b"connected"
        );
        let keys = hooks.connected.clone().unwrap();
        assert_eq!(keys.config.tx_ring_ref, 8);
        assert_eq!(keys.config.rx_ring_ref, 9);
        assert_eq!(keys.queues.len(), 1);
        assert_eq!(keys.queues[0].evtchn, EventChannels::Single(3));
        assert!(keys.config.sg && keys.config.gso_tcpv4 && !keys.config.gso_tcpv6);
        assert!(keys.config.rx_csum_blank && keys.config.rx_notify);
        // Frontend Connected: nothing more to do.
        write_state(&xs, &fe, XenbusState::Connected).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(hooks.connects, 1);
        // Frontend closes.
        write_state(&xs, &fe, XenbusState::Closing).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Closing);
        assert_eq!(hooks.disconnects, 1);
        write_state(&xs, &fe, XenbusState::Closed).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Closed);
        // And comes back.
        write_state(&xs, &fe, XenbusState::Initialising).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::InitWait);
        write_state(&xs, &fe, XenbusState::Connected).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Connected);
        assert_eq!(hooks.connects, 2);
        // The toolstack removes the vif.
        xs.rm(&be).unwrap();
        assert_eq!(dev.update(&xs, &mut hooks).unwrap(), Progress::Removed);
        assert_eq!(hooks.disconnects, 2);
        assert!(hooks.connected.is_none());
    }

    #[test]
    fn a_connected_frontend_starting_over_goes_through_closed() {
        let mut hooks = Hooks::default();
        let (_srv, xs, be, fe, mut dev) = probed(true, &mut hooks);
        write_state(&xs, &fe, XenbusState::Connected).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Connected);
        let watcher = _srv.connect_as(0).unwrap();
        watcher.watch(&format!("{be}/state"), "t").unwrap();
        let _initial = watcher.next_event(std::time::Duration::from_secs(60));
        write_state(&xs, &fe, XenbusState::Initialising).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::InitWait);
        assert_eq!(hooks.disconnects, 1);
        // Closing, Closed, InitWait: three writes, three events (each
        // waited for up to 60 s, a loaded machine can stall the server),
        // and no fourth.
        for i in 0..3 {
            assert!(
                watcher
                    .next_event(std::time::Duration::from_secs(60))
                    .unwrap()
                    .is_some(),
                "event {i} of 3 missing"
            );
        }
        assert_eq!(
            watcher
                .next_event(std::time::Duration::from_millis(200))
                .unwrap(),
            None
        );
        // And it connects again.
        write_state(&xs, &fe, XenbusState::Connected).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Connected);
        assert_eq!(hooks.connects, 2);
    }

    #[test]
    fn waits_for_the_hotplug_script() {
        let mut hooks = Hooks::default();
        let (_srv, xs, be, fe, mut dev) = probed(false, &mut hooks);
        write_state(&xs, &fe, XenbusState::Connected).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::InitWait);
        assert!(hooks.connected.is_none());
        xs.write(&format!("{be}/hotplug-status"), "connected")
            .unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Connected);
        assert!(hooks.connected.is_some());
    }

    /// A driver domain (backend domain 7) whose guest was destroyed: Xen's
    /// xenstored then refuses it the frontend's nodes (EACCES rather than
    /// ENOENT, their parents not being readable), made here by taking the
    /// backend's read permission away. The frontend's state is then
    /// Unknown (Linux `xenbus_read_driver_state`): the vif disconnects and
    /// goes Closed, and is Removed once its own directory goes.
    #[test]
    fn a_refused_frontend_is_unknown_and_the_vif_lets_go() {
        let srv = XenstoreServer::default();
        let d0 = srv.connect_as(0).unwrap();
        let mut s = spec();
        s.backend_domid = 7;
        create_vif_nodes(&d0, &s).unwrap();
        let (be, fe) = (backend_path(7, 5, 0), frontend_path(5, 0));
        let nd = srv.connect_as(7).unwrap();
        let mut dev = BackendDevice::new(7, 5, 0, true);
        let mut hooks = Hooks::default();
        assert_eq!(
            dev.update(&nd, &mut hooks).unwrap(),
            Progress::State(XenbusState::InitWait)
        );
        good_keys(&d0, &fe);
        write_state(&d0, &fe, XenbusState::Initialised).unwrap();
        assert_eq!(
            dev.update(&nd, &mut hooks).unwrap(),
            Progress::State(XenbusState::Connected)
        );
        d0.set_perms(&format!("{fe}/state"), &[Perm::new(Access::None, 5)])
            .unwrap();
        let e = nd.read(&format!("{fe}/state")).unwrap_err();
        assert!(e.is(&ErrorCode::Eacces), "{e}");
        assert_eq!(
            dev.update(&nd, &mut hooks).unwrap(),
            Progress::State(XenbusState::Closed)
        );
        assert_eq!(hooks.disconnects, 1);
        assert!(hooks.connected.is_none());
        d0.rm(&be).unwrap();
        assert_eq!(dev.update(&nd, &mut hooks).unwrap(), Progress::Removed);
    }

    #[test]
    fn a_failed_hotplug_script_refuses_the_vif() {
        let mut hooks = Hooks::default();
        let (_srv, xs, be, fe, mut dev) = probed(false, &mut hooks);
        write_state(&xs, &fe, XenbusState::Initialised).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::InitWait);
        xs.write(&format!("{be}/hotplug-status"), "error").unwrap();
        assert_eq!(
            dev.update(&xs, &mut hooks).unwrap(),
            Progress::State(XenbusState::Closing)
        );
        assert_eq!(hooks.connects, 0);
        let err = xs
            .read_string("/local/domain/0/error/backend/vif/5/0/error")
            .unwrap();
        assert!(err.contains("hotplug script failed"), "{err:?}");
    }

    /// Runs the handshake with `edit` applied to good frontend keys and
    /// expects a refusal mentioning `why`.
    fn refused(edit: impl FnOnce(&Client, &str), why: &str) {
        let mut hooks = Hooks::default();
        let (_srv, xs, be, fe, mut dev) = probed(true, &mut hooks);
        edit(&xs, &fe);
        write_state(&xs, &fe, XenbusState::Initialised).unwrap();
        assert_eq!(
            dev.update(&xs, &mut hooks).unwrap(),
            Progress::State(XenbusState::Closing)
        );
        assert_eq!(hooks.connects, 0);
        let err = xs
            .read_string("/local/domain/0/error/backend/vif/5/0/error")
            .unwrap();
        assert!(err.contains(why), "{err:?} lacks {why:?}");
        // Refused once, not retried on every event...
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Closing);
        // ...until the frontend starts over.
        write_state(&xs, &fe, XenbusState::Initialising).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::InitWait);
    }

    fn set(k: &'static str, v: &'static str) -> impl FnOnce(&Client, &str) {
        move |xs, fe| xs.write(&format!("{fe}/{k}"), v).unwrap()
    }

    fn unset(k: &'static str) -> impl FnOnce(&Client, &str) {
        move |xs, fe| xs.rm(&format!("{fe}/{k}")).unwrap()
    }

    #[test]
    fn bad_ring_refs_are_refused() {
        refused(set("tx-ring-ref", "-1"), "tx-ring-ref");
        refused(set("rx-ring-ref", "4294967296"), "rx-ring-ref");
        refused(set("tx-ring-ref", "8 "), "tx-ring-ref");
        refused(set("rx-ring-ref", ""), "rx-ring-ref");
        refused(set("tx-ring-ref", "0x10"), "tx-ring-ref");
        refused(
            set("tx-ring-ref", "999999999999999999999999999999"),
            "tx-ring-ref",
        );
    }

    #[test]
    fn missing_keys_are_refused() {
        refused(unset("tx-ring-ref"), "tx-ring-ref is missing");
        refused(unset("rx-ring-ref"), "rx-ring-ref is missing");
        refused(unset("event-channel"), "event-channel is missing");
        refused(unset("request-rx-copy"), "request-rx-copy is missing");
    }

    #[test]
    fn request_rx_copy_0_is_refused() {
        refused(set("request-rx-copy", "0"), "request-rx-copy = 0");
    }

    #[test]
    fn unsupported_queue_counts_are_refused() {
        refused(set("multi-queue-num-queues", "9"), "maximum of 8");
        refused(set("multi-queue-num-queues", "0"), "needs a queue");
        refused(set("multi-queue-num-queues", "lots"), "multi-queue");
    }

    /// Runs the handshake with `edit` applied to good frontend keys and
    /// expects a connection; returns the keys the backend read.
    fn accepted(edit: impl FnOnce(&Client, &str)) -> FrontendKeys {
        let mut hooks = Hooks::default();
        let (_srv, xs, be, fe, mut dev) = probed(true, &mut hooks);
        edit(&xs, &fe);
        write_state(&xs, &fe, XenbusState::Initialised).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Connected);
        hooks.connected.unwrap()
    }

    fn split(xs: &Client, fe: &str) {
        xs.rm(&format!("{fe}/event-channel")).unwrap();
        xs.write(&format!("{fe}/event-channel-tx"), "3").unwrap();
        xs.write(&format!("{fe}/event-channel-rx"), "4").unwrap();
    }

    /// Four queues under `queue-N/`, split channels on odd queues.
    fn four_queues(xs: &Client, fe: &str) {
        for k in ["tx-ring-ref", "rx-ring-ref", "event-channel"] {
            xs.rm(&format!("{fe}/{k}")).unwrap();
        }
        xs.write(&format!("{fe}/multi-queue-num-queues"), "4")
            .unwrap();
        for q in 0..4u32 {
            let w = |k: &str, v: u32| {
                xs.write(&format!("{fe}/queue-{q}/{k}"), v.to_string())
                    .unwrap()
            };
            w("tx-ring-ref", 100 + 2 * q);
            w("rx-ring-ref", 101 + 2 * q);
            if q % 2 == 1 {
                w("event-channel-tx", 10 + 2 * q);
                w("event-channel-rx", 11 + 2 * q);
            } else {
                w("event-channel", 10 + 2 * q);
            }
        }
    }

    #[test]
    fn split_event_channels_are_accepted() {
        let keys = accepted(split);
        assert_eq!(keys.queues[0].evtchn, EventChannels::Split { tx: 3, rx: 4 });
    }

    #[test]
    fn several_queues_are_read_from_their_directories() {
        let keys = accepted(four_queues);
        assert_eq!(keys.queues.len(), 4);
        assert_eq!(keys.queues[3].tx_ring_ref, 106);
        assert_eq!(keys.queues[3].rx_ring_ref, 107);
        assert_eq!(keys.queues[2].evtchn, EventChannels::Single(14));
        assert_eq!(
            keys.queues[1].evtchn,
            EventChannels::Split { tx: 12, rx: 13 }
        );
        assert_eq!(keys.config.tx_ring_ref, 100);
    }

    #[test]
    fn bad_queue_keys_are_refused() {
        refused(
            |xs, fe| {
                four_queues(xs, fe);
                xs.rm(&format!("{fe}/queue-3/rx-ring-ref")).unwrap();
            },
            "queue-3/rx-ring-ref is missing",
        );
        refused(
            |xs, fe| {
                four_queues(xs, fe);
                xs.rm(&format!("{fe}/queue-1/event-channel-rx")).unwrap();
            },
            "queue-1/event-channel-rx is missing",
        );
        refused(
            |xs, fe| {
                four_queues(xs, fe);
                xs.write(&format!("{fe}/queue-2/tx-ring-ref"), "100")
                    .unwrap();
            },
            "ring reference 100 used twice",
        );
        refused(
            |xs, fe| {
                four_queues(xs, fe);
                xs.write(&format!("{fe}/queue-2/event-channel"), "10")
                    .unwrap();
            },
            "port 10 used twice",
        );
        refused(
            |xs, fe| {
                split(xs, fe);
                xs.write(&format!("{fe}/event-channel-rx"), "3").unwrap();
            },
            "same port",
        );
        // Several queues but the single-queue keys only.
        refused(
            set("multi-queue-num-queues", "2"),
            "queue-0/tx-ring-ref is missing",
        );
    }

    #[test]
    fn the_control_ring_keys_are_read() {
        let keys = accepted(|xs, fe| {
            xs.write(&format!("{fe}/ctrl-ring-ref"), "20").unwrap();
            xs.write(&format!("{fe}/event-channel-ctrl"), "7").unwrap();
        });
        assert_eq!(keys.ctrl, Some((20, 7)));
        refused(set("ctrl-ring-ref", "20"), "event-channel-ctrl is missing");
        refused(
            |xs, fe| {
                xs.write(&format!("{fe}/ctrl-ring-ref"), "8").unwrap();
                xs.write(&format!("{fe}/event-channel-ctrl"), "7").unwrap();
            },
            "ring reference 8 used twice",
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        refused(set("feature-sg", "yes"), "feature-sg");
        refused(set("event-channel", "x"), "event-channel");
    }

    #[test]
    fn a_failing_connect_is_refused() {
        let mut hooks = Hooks {
            refuse: true,
            ..Default::default()
        };
        let (_srv, xs, be, fe, mut dev) = probed(true, &mut hooks);
        write_state(&xs, &fe, XenbusState::Connected).unwrap();
        dev.update(&xs, &mut hooks).unwrap();
        assert_eq!(backend_state(&xs, &be), XenbusState::Closing);
        assert!(!dev.is_connected());
    }

    #[test]
    fn states_parse_strictly() {
        assert_eq!(XenbusState::parse(b"4"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"9"), None);
        assert_eq!(XenbusState::parse(b" 4"), None);
        assert_eq!(XenbusState::parse(b""), None);
        for s in 0..=8u8 {
            let st = XenbusState::parse(s.to_string().as_bytes()).unwrap();
            assert_eq!(st.as_str(), s.to_string());
        }
    }
}
