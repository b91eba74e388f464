//! The backend half of the xenbus handshake inside xennetd: a thread that
//! watches `/local/domain/<backend>/backend/vif` in the emulated xenstored
//! and runs one [`BackendDevice`] state machine per vif (see
//! `xennet_vif::xenbus`), resolving the frontend's grant references and
//! `event-channel` port through the domains registered with the emulated
//! hypervisor ([`crate::emulxen::Domains`]).
//!
//! By default (`[emulated_xen] hotplug = "self"`) no hotplug script runs:
//! xennetd puts the vif on its bridge itself when it connects it and then
//! writes `hotplug-status = connected`, what `vif-openvswitch online` would
//! have written. With `hotplug = "script"` the backend waits, as Linux
//! netback does, for a hotplug script (`scripts/vif-xennet`) to write it.

use std::collections::HashMap;
use std::time::Duration;

use xennet_datapath::OfPort;
use xennet_vif::grant::DomId;
use xennet_vif::xenbus::{
    read_state, BackendDevice, FrontendKeys, Progress, VifHooks, XenbusState,
};
use xennet_vif::xenstore::{Client, XenstoreServer};

use crate::config::{EmulatedXenConfig, Hotplug};
use crate::emulxen::{place, unplace, Placement, XenbusCtx};

/// Watch token of the backend directory.
const BACKEND_TOKEN: &str = "backend";
/// Prefix of the frontend `state` watch tokens (`fe:<domid>:<handle>`).
const FRONTEND_TOKEN: &str = "fe:";

/// Connects vifs for the state machine: rings through the registered
/// domain, port on the bridge.
struct Hooks {
    ctx: XenbusCtx,
    switch: Placement,
    cfg: EmulatedXenConfig,
    domid: DomId,
    name: String,
    placed: Option<(String, OfPort)>,
}

impl VifHooks for Hooks {
    fn connect(&mut self, keys: &FrontendKeys) -> Result<(), String> {
        self.disconnect();
        let dom = self.ctx.domains.get(self.domid).ok_or_else(|| {
            format!(
                "domain {} is not registered with the emulated hypervisor",
                self.domid
            )
        })?;
        // Every queue's channel(s) (one or split) and the control ring,
        // bound by port; the rings mapped.
        let mut vif = dom
            .connect_vif(self.name.clone(), self.cfg.backend_domid, keys)
            .map_err(|e| format!("mapping the rings: {e}"))?;
        vif.set_event_rate(self.cfg.event_rate);
        let placed = place(&self.switch, &self.cfg, &self.name, self.domid, vif)
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

/// Run the backend side until the store connection fails.
pub fn run(ctx: XenbusCtx, switch: Placement, cfg: EmulatedXenConfig) {
    if let Err(e) = run_inner(ctx, switch, cfg) {
        tracing::error!("xenbus backend stopped: {e}");
    }
}

fn run_inner(
    ctx: XenbusCtx,
    switch: Placement,
    cfg: EmulatedXenConfig,
) -> Result<(), xennet_vif::xenstore::XsError> {
    let xs = ctx.store.connect_as(u32::from(cfg.backend_domid))?;
    let base = format!("/local/domain/{}/backend/vif", cfg.backend_domid);
    xs.watch(&base, BACKEND_TOKEN)?;
    let mut devs: HashMap<(DomId, u16), (BackendDevice, Hooks)> = HashMap::new();
    loop {
        let Some(ev) = xs.next_event(Duration::from_secs(3600))? else {
            continue;
        };
        let keys: Vec<(DomId, u16)> = if ev.token == BACKEND_TOKEN {
            match ev.path.strip_prefix(&base) {
                Some("") => {
                    // The initial event, or the whole directory changed:
                    // look at every vif there is.
                    let mut all = Vec::new();
                    for d in xs.directory(&base).unwrap_or_default() {
                        for h in xs.directory(&format!("{base}/{d}")).unwrap_or_default() {
                            all.extend(parse_key(&format!("{d}/{h}")));
                        }
                    }
                    all.extend(devs.keys().copied());
                    all
                }
                Some(rest) => rest
                    .strip_prefix('/')
                    .and_then(parse_key)
                    .into_iter()
                    .collect(),
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
                        ctx: ctx.clone(),
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
            match dev.update(&xs, hooks) {
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
