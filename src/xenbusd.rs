//! The backend half of the xenbus handshake inside xennetd: a thread that
//! watches `/local/domain/<backend>/backend/vif` in xenstore and runs one
//! [`BackendDevice`] state machine per vif (see `xennet_vif::xenbus`). One
//! code path serves both Xens; what differs is behind [`Hypervisor`]:
//!
//! - emulated Xen: the in-process emulated xenstored, and the frontend's
//!   grant references and `event-channel` port resolved through the
//!   domains registered with the emulated hypervisor
//!   ([`crate::emulxen::Domains`]);
//! - real Xen ([`RealXen`], `[xen] mode = "real"`): the real xenstored
//!   (its socket, else `/dev/xen/xenbus`), grants through
//!   `/dev/xen/gntdev` ([`Gntdev`], one open per vif) and the event
//!   channel bound through `/dev/xen/evtchn` ([`EvtchnDev`]). When the
//!   toolstack removes a destroyed domain's backend directory the vif is
//!   taken off its bridge and dropped, which unmaps its ring grants and
//!   unbinds its event channel.
//!
//! By default (`hotplug = "self"`) no hotplug script is needed: xennetd
//! puts the vif on its bridge itself when it connects it and then writes
//! `hotplug-status = connected`, what `vif-openvswitch online` would have
//! written. With `hotplug = "script"` the backend waits, as Linux netback
//! does, for a hotplug script (`scripts/vif-xennet`) to write it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use xennet_datapath::OfPort;
use xennet_vif::evtchn::EventChannel;
use xennet_vif::grant::{DomId, GrantOps};
use xennet_vif::netback::{PortSecurity, Relink, Rings, TxRate};
use xennet_vif::xen::{EvtchnDev, Gntdev};
use xennet_vif::xenbus::{BackendDevice, FrontendKeys, Progress, VifHooks};
use xennet_vif::xenstore::{Client, XenstoreServer};
use xennet_vif::{Vif, VifError};

use crate::config::Hotplug;
use crate::emulxen::{place, unplace, Placement};

/// Watch token of the backend directory.
const BACKEND_TOKEN: &str = "backend";
/// With `hotplug = "script"`: how long a vif may go without
/// `hotplug-status` after its backend directory appeared before xennetd
/// says that no hotplug script ran (once per vif). libxl runs the script
/// as soon as the backend is in InitWait, and gives it 40 s
/// (`LIBXL_HOTPLUG_TIMEOUT`) to finish.
pub const HOTPLUG_WARN_AFTER: Duration = Duration::from_secs(45);
/// Prefix of the frontend `state` watch tokens (`fe:<domid>:<handle>`).
const FRONTEND_TOKEN: &str = "fe:";

/// What the hypervisor gives a backend for one vif. Errors are messages
/// for the log and the frontend's `error` node.
pub trait Hypervisor: Send + Sync + std::fmt::Debug {
    /// Grant access to domain `domid`'s pages, for backend domain
    /// `backend`.
    fn grants(&self, backend: DomId, domid: DomId) -> Result<Box<dyn GrantOps + Send>, String>;

    /// Our end of the event channel whose other end is `domid`'s port
    /// `remote_port` (`EVTCHNOP_bind_interdomain`).
    fn bind(
        &self,
        backend: DomId,
        domid: DomId,
        remote_port: u32,
    ) -> Result<Box<dyn EventChannel + Send>, String>;

    /// Whether domain `domid` exists. A toolstack makes the domain before
    /// its devices (libxl), so a vif directory of a domain that does not
    /// exist is ignored (counted as `xenbus_unknown_domain`). The default,
    /// for real Xen, says yes: there the hypervisor is asked only when
    /// connecting the rings.
    fn domain_exists(&self, _domid: DomId) -> bool {
        true
    }
}

/// Real Xen through Linux's devices.
#[derive(Debug, Default)]
pub struct RealXen;

impl Hypervisor for RealXen {
    fn grants(&self, _backend: DomId, _domid: DomId) -> Result<Box<dyn GrantOps + Send>, String> {
        Ok(Box::new(Gntdev::open().map_err(|e| e.to_string())?))
    }

    fn bind(
        &self,
        _backend: DomId,
        domid: DomId,
        remote_port: u32,
    ) -> Result<Box<dyn EventChannel + Send>, String> {
        let evtchn = EvtchnDev::bind_interdomain(domid, remote_port).map_err(|e| e.to_string())?;
        tracing::debug!(
            "domain {domid} port {remote_port} bound to local port {}",
            evtchn.local_port()
        );
        Ok(Box::new(evtchn))
    }
}

/// Where the backend is and how vifs join the switch.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Our domain id (0 in dom0).
    pub backend_domid: DomId,
    /// The bridge vifs join (with [`Placement::Static`]).
    pub bridge: String,
    /// Who writes `hotplug-status = connected`.
    pub hotplug: Hotplug,
    /// Whether each vif gets a representor device.
    pub representors: bool,
    /// Spurious events accepted per second per event channel
    /// (`Vif::set_event_rate`).
    pub event_rate: u32,
    /// Adaptive coalescing window, µs (`Vif::set_coalesce`).
    pub coalesce_usecs: u32,
    /// Port security: drop guest frames from another source MAC than the
    /// backend `mac` key's (`Vif::set_allowed_mac`), from addresses not in
    /// its `ip` key, and DHCP server and router messages.
    pub port_security: bool,
    /// Port security: guests may send DHCP server messages (unless their
    /// Interface says otherwise).
    pub allow_dhcp_server: bool,
    /// Port security: guests may send router advertisements and
    /// redirects (unless their Interface says otherwise).
    pub allow_ra: bool,
    /// Control frames overtake a full guest-RX backlog
    /// (`Vif::set_rx_control_first`).
    pub rx_control_first: bool,
}

/// Connects vifs for the state machine: rings and event channel through
/// the hypervisor, port on the bridge.
struct Hooks {
    hv: Arc<dyn Hypervisor>,
    switch: Placement,
    cfg: BackendConfig,
    domid: DomId,
    name: String,
    placed: Option<(String, OfPort)>,
    /// The placed vif's hand-over point for fresh rings across a reset
    /// (its port stays on its bridge, as Linux netback keeps its netdev).
    relink: Option<Arc<Relink>>,
    /// The placed vif has rings (false between a frontend's Closing and
    /// its reconnection).
    rings_up: bool,
    /// A reset's fresh rings, mapped and bound, handed to the port once
    /// the Connected write is out ([`VifHooks::connected`]).
    staged: Option<Rings>,
    /// What the last connection connected to, logged once the Connected
    /// write is out.
    connected_log: Option<String>,
    /// The vif's representor device, for as long as the backend device
    /// exists (`[emulated_xen] representors`).
    _representor: Option<std::sync::Arc<crate::representor::Representor>>,
    /// Guest TX rate from the backend's `rate` key, shared with the vif.
    rate: Arc<TxRate>,
    /// The `rate` value last applied (None: no key).
    rate_text: Option<String>,
    /// The backend `mac` key, once read (port security).
    mac: Option<[u8; 6]>,
    /// The backend `ip` key as last read (port security's addresses).
    ip_text: Option<String>,
    /// The connected vif's port security.
    security: Option<Arc<PortSecurity>>,
    /// When the backend device was made (its directory appeared).
    created: std::time::Instant,
    /// The missing hotplug script was reported (`warn_missing_hotplug`).
    hotplug_warned: bool,
}

/// The vif's MAC from the backend directory's `mac` key (the toolstack
/// writes it from the guest's configuration, as libxl does), if valid.
fn backend_mac(xs: &Client, be: &str) -> Option<[u8; 6]> {
    let text = xs.read_string(&format!("{be}/mac")).ok()?;
    crate::identity::parse_mac(text.trim()).filter(|m| m[0] & 1 == 0)
}

impl Hooks {
    /// Apply the backend directory `be`'s `rate` key (`bytes,usecs`, as
    /// libxl writes it; Linux `xen_net_read_rate`): missing or unparsable
    /// means unlimited, the latter with a warning. Called on every watch
    /// event of the vif, so a change applies at once (Linux watches the
    /// key too).
    fn refresh_rate(&mut self, xs: &Client, be: &str) {
        let text = xs.read_string(&format!("{be}/rate")).ok();
        if text == self.rate_text {
            return;
        }
        let rate = match text.as_deref().map(TxRate::parse) {
            None => None,
            Some(Ok(r)) => {
                tracing::info!("{}: rate {} bytes per {} µs", self.name, r.0, r.1);
                Some(r)
            }
            Some(Err(e)) => {
                tracing::warn!("{}: {e}; traffic unlimited", self.name);
                None
            }
        };
        self.rate.set(rate);
        self.rate_text = text;
    }
}

impl Hooks {
    /// Re-read the backend `ip` key (libxl writes the vif spec's `ip=`,
    /// space-separated) and, if it changed, apply it to the vif's port
    /// security.
    fn refresh_ip(&mut self, xs: &Client, be: &str) {
        let text = xs.read_string(&format!("{be}/ip")).ok();
        if text != self.ip_text {
            self.ip_text = text;
            self.apply_ips();
        }
    }

    /// Give the connected vif's port security the IPv4 and IPv6 addresses
    /// of the `ip` key (words that are neither are logged and not
    /// checked).
    fn apply_ips(&self) {
        let Some(sec) = &self.security else { return };
        let text = self.ip_text.as_deref().unwrap_or("");
        let (ips, other) = parse_ip_key(text);
        if !other.is_empty() {
            tracing::warn!(
                "{}: ip key: {other:?} not IPv4 or IPv6 addresses: not checked",
                self.name
            );
        }
        if !sec.set_ips(&ips) {
            tracing::warn!(
                "{}: ip key: only the first {} addresses of each family are checked",
                self.name,
                xennet_vif::netback::PORT_SECURITY_MAX_IPS
            );
        }
        if !ips.is_empty() {
            let (v4, v6): (Vec<std::net::IpAddr>, Vec<_>) = ips.iter().partition(|a| a.is_ipv4());
            tracing::info!("{}: port security: IPv4 {v4:?}, IPv6 {v6:?}", self.name);
        }
    }
}

/// The backend `ip` key's addresses (libxl writes `ip=` of the vif spec
/// as is: space-separated; IPv4 and IPv6 may be mixed), and the words
/// that are not addresses.
fn parse_ip_key(text: &str) -> (Vec<std::net::IpAddr>, Vec<&str>) {
    let mut ips = Vec::new();
    let mut other = Vec::new();
    for w in text.split_whitespace() {
        match w.parse() {
            Ok(a) => ips.push(a),
            Err(_) => other.push(w),
        }
    }
    (ips, other)
}

impl VifHooks for Hooks {
    fn connect(&mut self, keys: &FrontendKeys) -> Result<(), String> {
        self.disconnect_rings();
        let hv = &self.hv;
        let (backend, domid) = (self.cfg.backend_domid, self.domid);
        let grants = hv.grants(backend, domid)?;
        // Every queue's channel(s) (one or split) and the control ring,
        // bound by port; the rings mapped.
        let rings = Rings::connect_frontend(self.name.clone(), keys, grants, |port| {
            hv.bind(backend, domid, port).map_err(VifError::Attach)
        })
        .map_err(|e| format!("connecting the rings: {e}{}", grant_hint(&e, backend)))?;
        self.connected_log = Some(rings.describe());
        // A reset: the port the vif kept takes the fresh rings once the
        // Connected write is out (`connected`); until the forwarding
        // thread takes them, the frontend's requests wait in the ring.
        if let (Some(_), Some(relink)) = (&self.placed, &self.relink) {
            if !relink.is_dead() {
                self.staged = Some(rings);
                return Ok(());
            }
            self.disconnect();
        }
        self.place_new(rings)
    }

    fn connected(&mut self) -> Result<(), String> {
        let what = self.connected_log.take().unwrap_or_default();
        let Some(fresh) = self.staged.take() else {
            tracing::info!("{}: connected to {what} through xenstore", self.name);
            return Ok(());
        };
        let relink = self.relink.clone();
        match relink.map(|r| r.attach(fresh)) {
            Some(Ok(())) => {
                self.rings_up = true;
                tracing::info!(
                    "{}: connected to {what} through xenstore: fresh rings swapped into its port",
                    self.name
                );
                Ok(())
            }
            Some(Err((e, fresh))) => {
                // The port went meanwhile: a new one, as on a first
                // connection.
                tracing::info!("{}: {e}: connecting a new port", self.name);
                self.disconnect();
                self.place_new(*fresh)?;
                tracing::info!("{}: connected to {what} through xenstore", self.name);
                Ok(())
            }
            None => Err("no port to swap the rings into".into()),
        }
    }

    fn disconnect_rings(&mut self) {
        self.staged = None;
        if self.placed.is_none() || !self.rings_up {
            return;
        }
        // Only a forwarding thread can swap the rings of the vif it
        // polls; one waiting for the database to place it has none.
        let polled = match &self.switch {
            Placement::Database(vifs) => vifs.is_placed(&self.name),
            Placement::Static(_) => true,
        };
        if let (true, Some(relink)) = (polled, &self.relink) {
            match relink.detach() {
                Ok(()) => {
                    self.rings_up = false;
                    tracing::info!("{}: rings released, port kept", self.name);
                    return;
                }
                Err(e) => tracing::info!("{}: {e}: taking its port off", self.name),
            }
        }
        self.disconnect();
    }

    fn disconnect(&mut self) {
        self.staged = None;
        self.relink = None;
        self.rings_up = false;
        if let Some((bridge, ofport)) = self.placed.take() {
            unplace(&self.switch, &bridge, ofport, &self.name);
            tracing::info!("{}: off its bridge", self.name);
        }
    }
}

impl Hooks {
    /// Configure a freshly connected vif and put it on its bridge (a
    /// first connection, or a reset whose port could not be kept).
    fn place_new(&mut self, rings: Rings) -> Result<(), String> {
        let mut vif = Vif::from_rings(rings).map_err(|e| format!("connecting the rings: {e}"))?;
        vif.set_event_rate(self.cfg.event_rate);
        vif.set_coalesce(std::time::Duration::from_micros(u64::from(
            self.cfg.coalesce_usecs,
        )));
        vif.set_tx_rate(self.rate.clone());
        vif.set_rx_control_first(self.cfg.rx_control_first);
        if let Placement::Database(vifs) = &self.switch {
            vifs.note_security(&self.name, vif.port_security());
        }
        let sec = vif.port_security();
        sec.set_defaults(
            self.cfg.port_security,
            self.cfg.allow_dhcp_server,
            self.cfg.allow_ra,
        );
        if self.cfg.port_security {
            self.security = Some(sec);
            self.apply_ips();
            match (self.mac, &self.switch) {
                (Some(mac), _) => vif.set_allowed_mac(Some(mac)),
                (None, Placement::Database(_)) => tracing::warn!(
                    "{}: no valid `mac` in the backend directory: port security checks its Interface's external_ids:attached-mac, if any",
                    self.name
                ),
                (None, _) => tracing::warn!(
                    "{}: no valid `mac` in the backend directory: no port security on this vif",
                    self.name
                ),
            }
        }
        let relink = vif.relink();
        let placed = place(&self.switch, &self.cfg.bridge, &self.name, self.domid, vif)
            .map_err(|e| format!("{e:#}"))?;
        self.placed = Some(placed);
        self.relink = Some(relink);
        self.rings_up = true;
        Ok(())
    }
}

/// What to do about a ring the hypervisor would not map for us: the
/// usual cause is a frontend that granted it to another domain (a driver
/// domain set-up where the guest's `backend-id` or the vif's `backend=`
/// names another domain). Empty for other errors.
fn grant_hint(e: &VifError, backend: DomId) -> String {
    use xennet_vif::grant::{GrantError, GNTST_GENERAL_ERROR, GNTST_PERMISSION_DENIED};
    match e {
        VifError::Grant(GrantError::Refused { status, .. })
            if *status == GNTST_GENERAL_ERROR || *status == GNTST_PERMISSION_DENIED =>
        {
            format!(
                " (the frontend did not grant it to this backend, domain {backend}: \
                 check that the guest's vif names this domain as its backend \
                 (`backend=` in the vif spec) and that the frontend grants to its `backend-id`)"
            )
        }
        _ => String::new(),
    }
}

/// Parses `<domid>/<handle>` at the start of `rest`.
fn parse_key(rest: &str) -> Option<(DomId, u16)> {
    let mut it = rest.split('/');
    let domid = it.next()?.parse().ok()?;
    let handle = it.next()?.parse().ok()?;
    Some((domid, handle))
}

/// The running xenbus backend ([`start`]).
#[derive(Debug)]
pub struct Backend {
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Disconnected when the backend thread ends.
    ended: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Backend {
    /// The daemon is stopping on request (SIGTERM, SIGINT, `exit`): the
    /// store connection closing from now on is expected, and the backend
    /// says so at info level instead of as an error.
    pub fn stopping(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Wait at most `timeout` for the backend thread to end (after its
    /// store connection closed); whether it did.
    pub fn wait_ended(&self, timeout: Duration) -> bool {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        matches!(
            ended.recv_timeout(timeout),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        )
    }
}

/// Start the backend side on the store connection `xs` (connected as the
/// backend domain): watch `/local/domain/<backend>/backend/vif` now (so
/// that a toolstack creating a vif after this returns finds us waiting;
/// libxl gives the backend a limited time to reach InitWait), then serve
/// in a thread `xenbus-backend` until the connection fails. A failure is
/// an error unless [`Backend::stopping`] was called before it.
pub fn start(
    xs: Client,
    hv: Arc<dyn Hypervisor>,
    switch: Placement,
    cfg: BackendConfig,
) -> anyhow::Result<Backend> {
    use anyhow::Context;
    let base = format!("/local/domain/{}/backend/vif", cfg.backend_domid);
    xs.watch(&base, BACKEND_TOKEN)
        .with_context(|| format!("watching {base}"))?;
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let requested = stopping.clone();
    let (end, ended) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("xenbus-backend".into())
        .spawn(move || {
            let _end = end;
            if let Err(e) = run(&xs, &base, hv, switch, cfg) {
                if requested.load(std::sync::atomic::Ordering::SeqCst) {
                    tracing::info!("xenbus backend stopped: {e} (shutting down)");
                } else {
                    tracing::error!("xenbus backend stopped: {e}");
                }
            }
        })
        .context("starting the xenbus backend thread")?;
    Ok(Backend {
        stopping,
        ended: std::sync::Mutex::new(ended),
    })
}

fn run(
    xs: &Client,
    base: &str,
    hv: Arc<dyn Hypervisor>,
    switch: Placement,
    cfg: BackendConfig,
) -> Result<(), xennet_vif::xenstore::XsError> {
    let mut devs: HashMap<(DomId, u16), (BackendDevice, Hooks)> = HashMap::new();
    let mut unknown_log = crate::ratelimit::LogLimit::new();
    // Refused writes sent without waiting (the Connected state), as the
    // client counted them (it logs each).
    let mut write_failures = 0;
    // With a hotplug script, look at waiting vifs now and then even when
    // nothing happens: a script that never runs fires no watch.
    let idle_wait = match cfg.hotplug {
        Hotplug::Script => HOTPLUG_WARN_AFTER / 3,
        Hotplug::SelfHotplug => Duration::from_secs(3600),
    };
    loop {
        let failed = xs.unacked_failures();
        for _ in write_failures..failed {
            crate::coverage::XENBUS_STATE_WRITE_FAILED.inc();
        }
        write_failures = failed;
        if cfg.hotplug == Hotplug::Script {
            warn_missing_hotplug(xs, &cfg, &mut devs);
        }
        let Some(first) = xs.next_event(idle_wait)? else {
            continue;
        };
        // The backend's own share of a (re)connection is measured from
        // here: the watch event is in our hands.
        let seen_at = std::time::Instant::now();
        // Every event already queued behind it too: a toolstack's
        // transaction fires one event per node it wrote, and guests
        // created together queue thousands. Each vif is then looked at
        // once per batch, in the order its first event came, instead of
        // once per event (each look costs several xenstore requests).
        let mut keys: Vec<(DomId, u16)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Vifs with a backend event in the batch: a frontend `state` event
        // alone leaves the backend directory as it was, so its `rate`,
        // `ip` and `mac` keys need no re-reading.
        let mut backend_changed = std::collections::HashSet::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(ev) = next.take() {
            let frontend = ev.token.starts_with(FRONTEND_TOKEN);
            tracing::debug!("watch event {} (token {})", ev.path, ev.token);
            for key in event_keys(xs, base, &ev, &devs) {
                if !frontend {
                    backend_changed.insert(key);
                }
                if seen.insert(key) {
                    keys.push(key);
                }
            }
            taken += 1;
            if taken < MAX_EVENT_BATCH {
                next = xs.next_event(Duration::ZERO)?;
            }
        }
        for key in keys {
            let (domid, handle) = key;
            let frontend_event = !backend_changed.contains(&key);
            // Anyone who may write under the backend directory could
            // otherwise make a device (and a representor, and log lines)
            // per write for a domain that is not there. Checked first: it
            // costs no xenstore request.
            if !devs.contains_key(&key) && !hv.domain_exists(domid) {
                if let Some(n) = crate::coverage::XENBUS_UNKNOWN_DOMAIN.count(&mut unknown_log) {
                    tracing::warn!(
                        "vif{domid}.{handle}: domain {domid} does not exist: its backend directory is ignored ({n} such events in all)"
                    );
                }
                continue;
            }
            // A late event under a directory already gone (and handled)
            // makes no device (nor a representor to create and remove).
            if !devs.contains_key(&key) {
                match xs.directory(&format!("{base}/{domid}/{handle}")) {
                    Ok(_) => {}
                    Err(e) if e.is(&xennet_vif::xenstore::ErrorCode::Enoent) => continue,
                    Err(e) => {
                        // Not gone, but not ours to read: say so (a
                        // silent skip leaves the toolstack waiting).
                        tracing::warn!(
                            "vif{domid}.{handle}: cannot read {base}/{domid}/{handle}: {e}: the vif is ignored; a toolstack makes a backend directory readable by the domain its backend= names (this is domain {})",
                            cfg.backend_domid
                        );
                        continue;
                    }
                }
            }
            if !devs.contains_key(&key) {
                if let Placement::Database(vifs) = &switch {
                    vifs.forget_hotplug(&format!("vif{domid}.{handle}"));
                }
            }
            let (dev, hooks) = devs.entry(key).or_insert_with(|| {
                (
                    BackendDevice::new(
                        cfg.backend_domid,
                        domid,
                        handle,
                        cfg.hotplug == Hotplug::SelfHotplug,
                    ),
                    Hooks {
                        hv: hv.clone(),
                        switch: switch.clone(),
                        cfg: cfg.clone(),
                        domid,
                        name: format!("vif{domid}.{handle}"),
                        placed: None,
                        relink: None,
                        rings_up: false,
                        staged: None,
                        connected_log: None,
                        _representor: cfg
                            .representors
                            .then(|| {
                                let vif = format!("vif{domid}.{handle}");
                                crate::representor::Representor::create(&vif)
                                    .map_err(|e| {
                                        tracing::warn!("{vif}: no representor device: {e}")
                                    })
                                    .ok()
                            })
                            .flatten(),
                        rate: Arc::default(),
                        rate_text: None,
                        mac: None,
                        ip_text: None,
                        security: None,
                        created: std::time::Instant::now(),
                        hotplug_warned: false,
                    },
                )
            });
            // (A device's first event is always a backend one: its
            // frontend's state is watched only once it exists.)
            if !frontend_event {
                hooks.refresh_rate(xs, &format!("{base}/{domid}/{handle}"));
            }
            if cfg.port_security {
                let be = format!("{base}/{domid}/{handle}");
                if hooks.mac.is_none() {
                    hooks.mac = backend_mac(xs, &be);
                }
                if !frontend_event {
                    hooks.refresh_ip(xs, &be);
                }
            }
            let had_fe = dev.frontend_dir().is_some();
            let token = format!("{FRONTEND_TOKEN}{domid}:{handle}");
            if let (Hotplug::Script, Placement::Database(vifs)) = (cfg.hotplug, &switch) {
                crate::dbsync::note_hotplug(
                    xs,
                    &format!("{base}/{domid}/{handle}"),
                    vifs,
                    &hooks.name,
                );
            }
            let was_connected = dev.is_connected();
            let progress = dev.update(xs, hooks);
            if !was_connected && dev.is_connected() {
                // Up to the Connected write sent: what comes after it (its
                // reply, logging) no longer delays the frontend.
                let sent = dev.connected_at().unwrap_or_else(std::time::Instant::now);
                tracing::info!(
                    "{}: Connected {} us after the frontend's state change (backend share)",
                    hooks.name,
                    sent.saturating_duration_since(seen_at).as_micros()
                );
            }
            match progress {
                Ok(Progress::Removed) => {
                    if let Some(fe) = dev.frontend_dir() {
                        let _ = xs.unwatch(&format!("{fe}/state"), &token);
                    }
                    devs.remove(&key);
                }
                Ok(Progress::State(_)) => {
                    if let (false, Some(fe)) = (had_fe, dev.frontend_dir()) {
                        if let Err(e) = xs.watch(&format!("{fe}/state"), &token) {
                            tracing::warn!("vif{domid}.{handle}: cannot watch {fe}/state: {e}");
                        }
                    }
                }
                Err(e) => {
                    let refused = matches!(&e, xennet_vif::xenbus::XenbusError::Store(s)
                        if s.is(&xennet_vif::xenstore::ErrorCode::Eacces));
                    if refused {
                        tracing::warn!(
                            "vif{domid}.{handle}: {e}: xenstore refused this domain ({}) access; a toolstack gives a backend domain its backend directory and the frontend's device directory only when the vif names it (backend= in the vif spec; a driver domain also needs driver_domain=1), and a driver domain is refused a destroyed frontend's nodes",
                            cfg.backend_domid
                        );
                    } else {
                        tracing::warn!("vif{domid}.{handle}: {e}");
                    }
                }
            }
        }
    }
}

/// With `hotplug = "script"`: say (once per vif, counted as
/// `xenbus_hotplug_missing`) which vifs still have no `hotplug-status`
/// [`HOTPLUG_WARN_AFTER`] after their backend directory appeared, and
/// what to do. Costs a clock read per unconnected vif, and one xenstore
/// read per vif once.
fn warn_missing_hotplug(
    xs: &Client,
    cfg: &BackendConfig,
    devs: &mut HashMap<(DomId, u16), (BackendDevice, Hooks)>,
) {
    use xennet_vif::xenstore::ErrorCode;
    for (dev, hooks) in devs.values_mut() {
        if hooks.hotplug_warned
            || dev.is_connected()
            || hooks.created.elapsed() < HOTPLUG_WARN_AFTER
        {
            continue;
        }
        hooks.hotplug_warned = true;
        let hp = format!("{}/hotplug-status", dev.backend_dir());
        match xs.read_string(&hp) {
            Err(e) if e.is(&ErrorCode::Enoent) => {
                crate::coverage::XENBUS_HOTPLUG_MISSING.inc();
                tracing::warn!(
                    "{}: no {hp} {} s after the backend directory appeared: its hotplug script has not run (or not finished), and with hotplug = \"script\" the vif waits for it. The toolstack runs the vif's script= (script=vif-xennet) in the backend domain: libxl in dom0, `xl devd` in a driver domain ({}: is it running there?); or set hotplug = \"self\"",
                    hooks.name,
                    HOTPLUG_WARN_AFTER.as_secs(),
                    cfg.backend_domid
                );
            }
            Err(e) => tracing::warn!("{}: reading {hp}: {e}", hooks.name),
            Ok(_) => {}
        }
    }
}

/// Most watch events taken off the queue for one batch (see `run`).
const MAX_EVENT_BATCH: usize = 4096;

/// The vifs (domain, handle) a watch event is about.
fn event_keys(
    xs: &Client,
    base: &str,
    ev: &xennet_vif::xenstore::WatchEvent,
    devs: &HashMap<(DomId, u16), (BackendDevice, Hooks)>,
) -> Vec<(DomId, u16)> {
    if ev.token == BACKEND_TOKEN {
        match ev.path.strip_prefix(base) {
            Some("") => {
                // The initial event, or the whole directory changed:
                // look at every vif there is.
                let mut all = Vec::new();
                for d in xs.directory(base).unwrap_or_default() {
                    for h in xs.directory(&format!("{base}/{d}")).unwrap_or_default() {
                        all.extend(parse_key(&format!("{d}/{h}")));
                    }
                }
                all.extend(devs.keys().copied());
                all
            }
            Some(rest) => {
                let rest = rest.strip_prefix('/').unwrap_or_default();
                match parse_key(rest) {
                    Some(key) => vec![key],
                    // A whole domain's directory (`<domid>`) came or
                    // went (a toolstack may remove it in one go):
                    // every vif of that domain, known or listed.
                    None => match rest.parse::<DomId>() {
                        Ok(domid) => {
                            let mut all: Vec<(DomId, u16)> =
                                devs.keys().filter(|(d, _)| *d == domid).copied().collect();
                            for h in xs.directory(&format!("{base}/{domid}")).unwrap_or_default() {
                                all.extend(h.parse().ok().map(|h| (domid, h)));
                            }
                            all.sort_unstable();
                            all.dedup();
                            all
                        }
                        Err(_) => Vec::new(),
                    },
                }
            }
            None => Vec::new(),
        }
    } else if let Some(rest) = ev.token.strip_prefix(FRONTEND_TOKEN) {
        rest.split_once(':')
            .and_then(|(d, h)| Some((d.parse().ok()?, h.parse().ok()?)))
            .into_iter()
            .collect()
    } else {
        Vec::new()
    }
}

/// What the toolstack does when domain `domid` is gone (it died, or shut
/// down after closing its vifs cleanly): remove its vif directories
/// (backend and frontend), which makes the backend take the vifs off
/// their bridges and drop them with their representors, mappings and
/// descriptors (libxl removes a destroyed domain's devices whatever
/// state they are in).
pub fn domain_died(store: &XenstoreServer, domid: DomId) {
    let xs: Client = match store.connect_as(0) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("domain {domid}: cannot clean xenstore up: {e}");
            return;
        }
    };
    let dev = format!("/local/domain/{domid}/device/vif");
    for h in xs.directory(&dev).unwrap_or_default() {
        let fe = format!("{dev}/{h}");
        // Only this domain's own backend directory, whatever the guest
        // wrote in its `backend` key.
        if let Ok(be) = xs.read_string(&format!("{fe}/backend")) {
            let own = be
                .strip_prefix("/local/domain/")
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(bd, rest)| {
                    bd.parse::<DomId>().is_ok() && rest == format!("backend/vif/{domid}/{h}")
                });
            if own {
                let _ = xs.rm(&be);
            }
        }
        let _ = xs.rm(&fe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_key_takes_ipv4_ipv6_and_mixed_lists() {
        let (ips, other) = parse_ip_key(" 10.0.0.1  2001:db8::1\tfe80::1 10.0.0.0/24 x ");
        let want: Vec<std::net::IpAddr> = ["10.0.0.1", "2001:db8::1", "fe80::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(ips, want);
        assert_eq!(other, ["10.0.0.0/24", "x"]);
        assert_eq!(parse_ip_key(""), (vec![], vec![]));
    }
}
