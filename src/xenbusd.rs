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
use xennet_vif::xen::{EvtchnDev, Gntdev};
use xennet_vif::xenbus::{
    read_state, BackendDevice, EventChannels, FrontendKeys, Progress, VifHooks, XenbusState,
};
use xennet_vif::xenstore::{Client, XenstoreServer};
use xennet_vif::Vif;

use crate::config::Hotplug;
use crate::emulxen::{place, unplace, Placement};

/// Watch token of the backend directory.
const BACKEND_TOKEN: &str = "backend";
/// Prefix of the frontend `state` watch tokens (`fe:<domid>:<handle>`).
const FRONTEND_TOKEN: &str = "fe:";

/// A connected vif's grant access and event channel.
pub type VifChannels = (Box<dyn GrantOps + Send>, Box<dyn EventChannel + Send>);

/// What the hypervisor gives a backend for one vif.
pub trait Hypervisor: Send + Sync + std::fmt::Debug {
    /// Grant access to domain `domid`'s pages and our end of the event
    /// channel whose other end is `domid`'s port `remote_port`, for
    /// backend domain `backend`. Errors are messages for the log and the
    /// frontend's `error` node.
    fn connect(
        &self,
        backend: DomId,
        domid: DomId,
        remote_port: u32,
    ) -> Result<VifChannels, String>;
}

/// Real Xen through Linux's devices.
#[derive(Debug, Default)]
pub struct RealXen;

impl Hypervisor for RealXen {
    fn connect(
        &self,
        _backend: DomId,
        domid: DomId,
        remote_port: u32,
    ) -> Result<VifChannels, String> {
        let grants = Gntdev::open().map_err(|e| e.to_string())?;
        let evtchn = EvtchnDev::bind_interdomain(domid, remote_port).map_err(|e| e.to_string())?;
        tracing::debug!(
            "domain {domid} port {remote_port} bound to local port {}",
            evtchn.local_port()
        );
        Ok((Box::new(grants), Box::new(evtchn)))
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
}

impl VifHooks for Hooks {
    fn connect(&mut self, keys: &FrontendKeys) -> Result<(), String> {
        self.disconnect();
        let EventChannels::Single(port) = keys.evtchn else {
            return Err("split event channels are not supported".into());
        };
        let (grants, evtchn) = self.hv.connect(self.cfg.backend_domid, self.domid, port)?;
        let vif = Vif::connect(
            self.name.clone(),
            self.cfg.backend_domid,
            keys.config,
            grants,
            evtchn,
        )
        .map_err(|e| format!("mapping the rings: {e}"))?;
        let placed = place(&self.switch, &self.cfg.bridge, &self.name, self.domid, vif)
            .map_err(|e| format!("{e:#}"))?;
        tracing::info!("{}: connected through xenstore", self.name);
        self.placed = Some(placed);
        Ok(())
    }

    fn disconnect(&mut self) {
        if let Some((bridge, ofport)) = self.placed.take() {
            unplace(&self.switch, &bridge, ofport, &self.name);
            tracing::info!("{}: off its bridge", self.name);
        }
    }
}

/// Parses `<domid>/<handle>` at the start of `rest`.
fn parse_key(rest: &str) -> Option<(DomId, u16)> {
    let mut it = rest.split('/');
    let domid = it.next()?.parse().ok()?;
    let handle = it.next()?.parse().ok()?;
    Some((domid, handle))
}

/// Start the backend side on the store connection `xs` (connected as the
/// backend domain): watch `/local/domain/<backend>/backend/vif` now (so
/// that a toolstack creating a vif after this returns finds us waiting;
/// libxl gives the backend a limited time to reach InitWait), then serve
/// in a thread `xenbus-backend` until the connection fails.
pub fn start(
    xs: Client,
    hv: Arc<dyn Hypervisor>,
    switch: Placement,
    cfg: BackendConfig,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    use anyhow::Context;
    let base = format!("/local/domain/{}/backend/vif", cfg.backend_domid);
    xs.watch(&base, BACKEND_TOKEN)
        .with_context(|| format!("watching {base}"))?;
    std::thread::Builder::new()
        .name("xenbus-backend".into())
        .spawn(move || {
            if let Err(e) = run(&xs, &base, hv, switch, cfg) {
                tracing::error!("xenbus backend stopped: {e}");
            }
        })
        .context("starting the xenbus backend thread")
}

fn run(
    xs: &Client,
    base: &str,
    hv: Arc<dyn Hypervisor>,
    switch: Placement,
    cfg: BackendConfig,
) -> Result<(), xennet_vif::xenstore::XsError> {
    let mut devs: HashMap<(DomId, u16), (BackendDevice, Hooks)> = HashMap::new();
    loop {
        let Some(ev) = xs.next_event(Duration::from_secs(3600))? else {
            continue;
        };
        let keys: Vec<(DomId, u16)> = if ev.token == BACKEND_TOKEN {
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
                                for h in
                                    xs.directory(&format!("{base}/{domid}")).unwrap_or_default()
                                {
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
        };
        for key in keys {
            let (domid, handle) = key;
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
                    },
                )
            });
            let had_fe = dev.frontend_dir().is_some();
            let token = format!("{FRONTEND_TOKEN}{domid}:{handle}");
            match dev.update(xs, hooks) {
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
                Err(e) => tracing::warn!("vif{domid}.{handle}: {e}"),
            }
        }
    }
}

/// What the toolstack does when domain `domid` dies: remove its vif
/// directories (backend and frontend), which makes the backend take the
/// vifs off their bridges. A vif whose frontend had closed cleanly (state
/// Closed) is left as it is, both ends Closed.
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
        if read_state(&xs, &fe).ok() == Some(XenbusState::Closed) {
            continue;
        }
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
