//! Bridges: one datapath (forwarding thread) per bridge, its NORMAL
//! handler, its ports, and the `ovs-appctl` commands that show them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use xennet_datapath::buffer::OFPP_LOCAL;
use xennet_datapath::conntrack::{self, Conntrack};
use xennet_datapath::dpif::{Datapath, DpHandle, PortInfo};
use xennet_datapath::packet::MacAddr;
use xennet_datapath::{OfPort, Port};
use xennet_ofproto::normal::{FdbHandle, PortVlan};
use xennet_vif::VifMetrics;

use xennet_ofproto::{FailMode, OfEvent, Ofproto};
use xennet_openflow::model::{self, MpReply, MpRequest, Msg, PortStatus};
use xennet_openflow::OfError;

use crate::config::{Config, FailMode as ConfigFailMode};
use crate::identity::Identity;
use crate::ofbridge::{port_desc, OfBridge};
use crate::ofconn::{ConnCtx, ConnMgr, ControllerConfig, Event};
use crate::unixctl::Commands;

/// What the control plane keeps about a port.
#[derive(Debug, Clone)]
pub struct PortEntry {
    /// Interface name (`vif1.0`).
    pub name: String,
    /// For vifs: the frontend's domain id and the netback counters.
    pub vif: Option<(u16, Arc<VifMetrics>)>,
    /// For system devices: opened asking for a TPACKET_V3 receive ring
    /// (`options:rx-ring`, TOML `rx_ring`).
    pub rx_ring: bool,
    /// For vifs: port security (its MAC and IPv4 addresses source the
    /// isolation checker's probes).
    pub security: Option<Arc<xennet_vif::netback::PortSecurity>>,
    /// For patch and tunnel ports: their link state and configuration.
    pub link: Option<xennet_ports::SoftLink>,
}

/// VLAN settings of a bridge's ports by port name (OVS `Port:tag`,
/// `trunks`, `vlan_mode`); `None` blocks a port whose settings are invalid.
/// A port without an entry is OVS's default port, a trunk of every VLAN.
pub type PortVlans = BTreeMap<String, Option<PortVlan>>;

/// One bridge.
#[derive(Debug)]
pub struct Bridge {
    /// Bridge name.
    pub name: String,
    /// The bridge's forwarding thread.
    pub dp: DpHandle,
    /// NORMAL's MAC learning table.
    pub fdb: FdbHandle,
    ports: Mutex<BTreeMap<OfPort, PortEntry>>,
    /// Configured VLAN settings, applied to a port when it joins and
    /// whenever they change.
    vlans: Mutex<PortVlans>,
    /// OpenFlow connections (management socket, controllers).
    pub conns: ConnMgr,
    /// The OpenFlow pipeline.
    pub of: Arc<Ofproto>,
    fail_mode: Mutex<FailMode>,
    /// The limits last applied ([`Bridge::set_limits`]).
    limits: Mutex<Limits>,
    /// Each port's link as last reported ([`Bridge::refresh_links`]).
    links: Mutex<BTreeMap<OfPort, bool>>,
    /// The bridge's MAC address (its LOCAL port's; see [`Identity`]).
    hwaddr: Mutex<[u8; 6]>,
    /// The isolation checker's settings and alerts.
    pub isolation: crate::isolation::Isolation,
    /// The daemon's one connection tracker ([`Switch::conntrack`]), which
    /// this bridge's `ct` actions use and `NXT_CT_FLUSH_ZONE` flushes.
    pub conntrack: Conntrack,
}

/// A bridge's datapath and MAC-learning limits (OVS
/// `Open_vSwitch:other_config` `flow-limit` and `max-idle`,
/// `Bridge:other_config` `mac-table-size` and `mac-aging-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most megaflows cached.
    pub flow_limit: usize,
    /// Idle time after which megaflows go.
    pub max_idle: std::time::Duration,
    /// Most learned MACs.
    pub mac_table_size: usize,
    /// Time after which a MAC not seen again is forgotten.
    pub mac_aging: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            flow_limit: xennet_datapath::dpif::FLOW_LIMIT,
            max_idle: xennet_datapath::dpif::MAX_IDLE,
            mac_table_size: xennet_ofproto::normal::DEFAULT_MAX_ENTRIES,
            mac_aging: xennet_ofproto::normal::DEFAULT_AGING,
        }
    }
}

impl Bridge {
    /// Apply `l` to the datapath and the MAC table, if it differs from
    /// what they have (the database reconciles often; the forwarding
    /// thread is asked only for a change).
    pub fn set_limits(&self, l: &Limits) {
        let mut cur = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if *cur == *l {
            return;
        }
        let _ = self.dp.set_flow_limit(l.flow_limit);
        let _ = self.dp.set_max_idle(l.max_idle);
        self.fdb.set_limits(l.mac_table_size, l.mac_aging);
        *cur = *l;
    }

    /// Stop or resume reading the bridge's ports
    /// ([`DpHandle::set_paused`]); whether the forwarding thread took it.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.dp.set_paused(paused).is_ok()
    }

    /// The bridge's MAC address (its LOCAL port's).
    pub fn hwaddr(&self) -> [u8; 6] {
        *self.hwaddr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply a new datapath id and MAC address (OVS `other_config`
    /// `datapath-id` and `hwaddr`). A new MAC is set on the LOCAL port's
    /// device (named like the bridge) if it exists. Controllers see a new
    /// datapath id in their next FEATURES_REPLY.
    pub fn set_identity(&self, id: Identity) {
        if self.of.set_datapath_id(id.datapath_id) {
            tracing::info!("bridge {}: datapath id {:016x}", self.name, id.datapath_id);
        }
        let old = std::mem::replace(
            &mut *self.hwaddr.lock().unwrap_or_else(|e| e.into_inner()),
            id.hwaddr,
        );
        let mac = MacAddr(id.hwaddr);
        if old != id.hwaddr && self.port_entries().contains_key(&OFPP_LOCAL) {
            match crate::tap::set_mac(&self.name, id.hwaddr) {
                Ok(()) => tracing::info!("bridge {}: MAC address {mac}", self.name),
                Err(e) => tracing::warn!(
                    "bridge {}: setting MAC address {mac} on its LOCAL port: {e}",
                    self.name
                ),
            }
        }
    }

    /// Start bridge `name` with identity `id`: its forwarding thread, and
    /// its OpenFlow management socket `<rundir>/<name>.mgmt`.
    fn new(
        name: &str,
        rundir: &Path,
        fail_mode: FailMode,
        id: Identity,
        conntrack: &Conntrack,
    ) -> anyhow::Result<Arc<Bridge>> {
        let dpid = id.datapath_id;
        let of = Ofproto::new(name, dpid, fail_mode);
        let dp = Datapath::spawn_with_conntrack(name, of.upcall_handler(), conntrack.clone())
            .with_context(|| format!("starting the datapath of bridge {name}"))?;
        of.attach_datapath(dp.clone());
        let events = of.events();
        let b = Arc::new_cyclic(|weak| Bridge {
            name: name.to_string(),
            dp,
            fdb: of.fdb().clone(),
            ports: Mutex::new(BTreeMap::new()),
            vlans: Mutex::new(BTreeMap::new()),
            conns: ConnMgr::new(name, Arc::new(OfBridge::new(weak.clone()))),
            of,
            fail_mode: Mutex::new(fail_mode),
            limits: Mutex::new(Limits::default()),
            links: Mutex::new(BTreeMap::new()),
            hwaddr: Mutex::new(id.hwaddr),
            isolation: crate::isolation::Isolation::default(),
            conntrack: conntrack.clone(),
        });
        let path = b
            .conns
            .listen_mgmt(rundir)
            .with_context(|| format!("binding the OpenFlow management socket of {name}"))?;
        if let Some(events) = events {
            let weak = Arc::downgrade(&b);
            std::thread::Builder::new()
                .name(format!("of-{name}"))
                .spawn(move || of_housekeeping(weak, events))
                .context("starting the OpenFlow housekeeping thread")?;
        }
        let weak = Arc::downgrade(&b);
        std::thread::Builder::new()
            .name(format!("iso-{name}"))
            .spawn(move || crate::isolation::run(weak))
            .context("starting the isolation checker thread")?;
        tracing::info!(
            "bridge {name}: datapath id {dpid:016x}, fail_mode {fail_mode:?}, OpenFlow on {}",
            path.display()
        );
        Ok(b)
    }

    /// Set the fail mode and the controllers (OVS `Bridge:fail_mode`,
    /// `Bridge:controller`). As OVS's connmgr does, a change of fail mode
    /// on a bridge without controllers, or a change between having
    /// controllers and not, flushes the flow tables; a standalone bridge
    /// without controllers then gets `priority=0 actions=NORMAL` again.
    /// Returns the targets that could not be parsed, with why.
    pub fn configure_openflow(
        &self,
        fail_mode: FailMode,
        controllers: &[ControllerConfig],
    ) -> Vec<(String, String)> {
        let had = self.conns.has_controllers();
        let bad = self.conns.set_controllers(controllers);
        let has = self.conns.has_controllers();
        let old = std::mem::replace(
            &mut *self.fail_mode.lock().unwrap_or_else(|e| e.into_inner()),
            fail_mode,
        );
        if had != has || (old != fail_mode && !has) {
            tracing::info!(
                "{}: fail_mode {fail_mode:?}, {} controller(s): flushing flows",
                self.name,
                controllers.len()
            );
            self.of
                .flush_flows(fail_mode == FailMode::Standalone && !has);
        }
        bad
    }

    /// Requests for the OpenFlow pipeline (flow, group, meter, packet-out).
    pub fn ofproto_request(&self, _ctx: &ConnCtx, msg: Msg) -> Result<Vec<Msg>, OfError> {
        match msg {
            Msg::FlowMod(fm) => self.of.handle_flow_mod(&fm).map(|()| Vec::new()),
            Msg::GroupMod(gm) => self.of.handle_group_mod(&gm).map(|()| Vec::new()),
            Msg::MeterMod(mm) => self.of.handle_meter_mod(&mm).map(|()| Vec::new()),
            Msg::PacketOut(po) => self.of.packet_out(&po, &self.dp).map(|()| Vec::new()),
            Msg::NxResume(pin) => self.of.nxt_resume(&pin, &self.dp).map(|()| Vec::new()),
            Msg::NxTlvTableMod(m) => self.of.handle_tlv_table_mod(&m).map(|()| Vec::new()),
            Msg::NxTlvTableRequest => Ok(vec![Msg::NxTlvTableReply(self.of.tlv_table_reply())]),
            _ => Err(OfError::BAD_TYPE),
        }
    }

    /// Statistics of the OpenFlow pipeline.
    pub fn ofproto_multipart(&self, _ctx: &ConnCtx, req: MpRequest) -> Result<MpReply, OfError> {
        self.of
            .multipart(&req)
            .unwrap_or(Err(OfError::BAD_MULTIPART))
    }

    /// The `ofp_port` of a port as it is now (MAC, link, OpenFlow config).
    pub fn port_desc(&self, info: &PortInfo) -> model::PortDesc {
        let kind = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&info.ofport)
            .map_or(LinkKind::Device, LinkKind::of);
        self.port_desc_of(info, &kind)
    }

    fn port_desc_of(&self, info: &PortInfo, kind: &LinkKind) -> model::PortDesc {
        port_desc(
            info.ofport,
            &info.name,
            port_hw_addr(&info.name, matches!(kind, LinkKind::Vif)),
            info.enabled && kind.link_up(&info.name),
            self.of.port_config(info.ofport),
        )
    }

    /// Whether port `ofport`'s link is up ([`Bridge::refresh_links`]'s
    /// view; the Interface `link_state`).
    pub fn port_link_up(&self, ofport: OfPort) -> bool {
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ofport)
            .copied()
            .unwrap_or(true)
    }

    /// Follow every port's link (OVS watches carrier through rtnetlink;
    /// xennet polls the device flags, once a second from the bridge's
    /// housekeeping): a change is logged, taken out of (or back into)
    /// NORMAL's flooding and FLOOD/ALL outputs, and announced as
    /// `OFPT_PORT_STATUS` (`OFPPR_MODIFY`).
    pub fn refresh_links(&self) {
        let infos = self.port_infos();
        let kinds: BTreeMap<OfPort, LinkKind> = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, e)| (*p, LinkKind::of(e)))
            .collect();
        let present: std::collections::BTreeSet<OfPort> = infos.iter().map(|i| i.ofport).collect();
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|p, _| present.contains(p));
        for info in &infos {
            // O(log n) per port: this runs every second over every port.
            let kind = kinds.get(&info.ofport).unwrap_or(&LinkKind::Device);
            let up = info.enabled && kind.link_up(&info.name);
            // A port is announced live when added.
            if links.insert(info.ofport, up).unwrap_or(true) == up {
                continue;
            }
            tracing::info!(
                "{}: port {} (ofport {}): link {}",
                self.name,
                info.name,
                info.ofport,
                if up { "up" } else { "down" }
            );
            self.of.set_port_live(info.ofport, up);
            let _ = self.conns.events().send(Event::PortStatus(PortStatus {
                reason: model::OFPPR_MODIFY,
                desc: self.port_desc_of(info, kind),
            }));
        }
    }

    /// Tell the pipeline and the controllers about a port.
    fn port_status(&self, reason: u8, ofport: OfPort, entry: &PortEntry, enabled: bool) {
        if reason == model::OFPPR_DELETE {
            self.of.port_deleted(ofport);
        } else {
            self.of.set_port_live(ofport, enabled);
        }
        let config = self.of.port_config(ofport);
        let is_vif = entry.vif.is_some();
        let _ = self.conns.events().send(Event::PortStatus(PortStatus {
            reason,
            desc: port_desc(
                ofport,
                &entry.name,
                port_hw_addr(&entry.name, is_vif),
                enabled,
                config,
            ),
        }));
    }

    /// `OFPT_PORT_MOD` (OpenFlow 1.3.5 §7.3.4.3, 1.0 §5.3.3): set the
    /// config bits of `pm.port_no` under `pm.mask` (`PORT_DOWN`,
    /// `NO_RECV`, `NO_FWD`, `NO_PACKET_IN`, and 1.0's `NO_FLOOD`; see
    /// [`xennet_ofproto::xlate`] for what each does). A change flushes the
    /// megaflows and is announced as `OFPT_PORT_STATUS` (`OFPPR_MODIFY`).
    /// `advertise` is ignored (vifs have no PHY to advertise).
    ///
    /// # Errors
    /// `OFPPMFC_BAD_PORT` for a port not on the bridge,
    /// `OFPPMFC_BAD_HW_ADDR` when `pm.hw_addr` is not the port's address
    /// (checked in that order, as OVS's `port_mod_start`).
    pub fn port_mod(&self, pm: &model::PortMod) -> Result<(), OfError> {
        let info = self.check_port_mod(pm)?;
        if let Some((old, new)) = self.of.set_port_config(pm.port_no, pm.config, pm.mask) {
            tracing::info!(
                "{}: port {} (ofport {}): OpenFlow config {old:#x} -> {new:#x}",
                self.name,
                info.name,
                info.ofport
            );
            let _ = self.conns.events().send(Event::PortStatus(PortStatus {
                reason: model::OFPPR_MODIFY,
                desc: self.port_desc(&info),
            }));
        }
        Ok(())
    }

    /// The checks of [`Bridge::port_mod`]; the port's info.
    fn check_port_mod(&self, pm: &model::PortMod) -> Result<PortInfo, OfError> {
        let info = self
            .port_infos()
            .into_iter()
            .find(|p| p.ofport == pm.port_no)
            .ok_or(OfError::PORT_MOD_BAD_PORT)?;
        if pm.hw_addr != self.port_desc(&info).hw_addr {
            return Err(OfError::PORT_MOD_BAD_HW_ADDR);
        }
        Ok(info)
    }

    /// Apply a committed bundle (OpenFlow 1.4.1 §6.8.5, OVS
    /// `do_bundle_commit`): flow-mods, group-mods and packet-out checks
    /// all or nothing and in order ([`xennet_ofproto::Ofproto::commit_bundle`]);
    /// then, in message order, the port-mods and the packet-outs. As in
    /// OVS, port-mods are not atomic with the tables, so a port-mod in an
    /// `OFPBF_ATOMIC` bundle fails it with `OFPBFC_MSG_FAILED`; in other
    /// bundles port-mods are checked with the rest and applied after
    /// them. Packet-outs run after the tables changed (what fails then
    /// is logged: the commit has succeeded).
    ///
    /// # Errors
    /// The index of the failing message and its error; nothing changed.
    pub fn commit_bundle(
        &self,
        flags: u16,
        msgs: Vec<xennet_ofproto::Bundled>,
    ) -> Result<(), (usize, OfError)> {
        let atomic = flags & model::bundle_flags::ATOMIC != 0;
        let mut fail_at = None;
        for (i, m) in msgs.iter().enumerate() {
            if let Some(Msg::PortMod(pm)) = m.as_msg() {
                let r = if atomic {
                    Err(OfError::BUNDLE_MSG_FAILED)
                } else {
                    self.check_port_mod(pm).map(|_| ())
                };
                if let Err(e) = r {
                    fail_at = Some((i, e));
                    break;
                }
            }
        }
        let msgs = msgs.into_iter().map(xennet_ofproto::Bundled::expand);
        for (_, m) in self.of.commit_bundle(msgs, fail_at)? {
            let r = match &m {
                Msg::PortMod(pm) => self.port_mod(pm),
                Msg::PacketOut(po) => self.of.packet_out(po, &self.dp),
                _ => Ok(()),
            };
            if let Err(e) = r {
                tracing::info!("{}: after a bundle commit: {e}", self.name);
            }
        }
        Ok(())
    }

    fn apply_vlan(&self, ofport: OfPort, setting: Option<&Option<PortVlan>>) {
        let changed = match setting {
            None => self.fdb.clear_port_vlan(ofport),
            Some(Some(v)) => self.fdb.set_port_vlan(ofport, v),
            Some(None) => self.fdb.block_port(ofport),
        };
        if changed {
            let what = match setting {
                None => PortVlan::default().to_string(),
                Some(Some(v)) => v.to_string(),
                Some(None) => "blocked (invalid VLAN settings)".to_owned(),
            };
            tracing::info!("{}: ofport {ofport}: VLANs: {what}", self.name);
        }
    }

    /// Set every port's VLAN settings (ports not named get the default):
    /// ports on the bridge change at once (forgetting their MACs and
    /// flushing megaflows when their behaviour changes), ports added later
    /// start with them.
    pub fn configure_vlans(&self, vlans: PortVlans) {
        let ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let mut cur = self.vlans.lock().unwrap_or_else(|e| e.into_inner());
        if *cur == vlans {
            return;
        }
        for (ofport, entry) in ports.iter() {
            if cur.get(&entry.name) != vlans.get(&entry.name) {
                self.apply_vlan(*ofport, vlans.get(&entry.name));
            }
        }
        *cur = vlans;
    }

    /// Add a port under the lowest free OpenFlow port number (from 1).
    pub fn add_port(&self, entry: PortEntry, port: Box<dyn Port>) -> anyhow::Result<OfPort> {
        self.add_port_at(entry, port, &[], &BTreeSet::new())
    }

    /// Add a port under the first free number of `preferred` (ignoring
    /// numbers outside 1..=MAX_OFPORT), else the lowest free one that is
    /// not `reserved` (numbers other ports had before a restart and will
    /// want back), else the lowest free one. On error the port is dropped.
    pub fn add_port_at(
        &self,
        entry: PortEntry,
        port: Box<dyn Port>,
        preferred: &[OfPort],
        reserved: &BTreeSet<OfPort>,
    ) -> anyhow::Result<OfPort> {
        let ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let free = |n: &OfPort| !ports.contains_key(n);
        let ofport = preferred
            .iter()
            .copied()
            .find(|n| (1..=MAX_OFPORT).contains(n) && free(n))
            .or_else(|| (1..=MAX_OFPORT).find(|n| free(n) && !reserved.contains(n)))
            .or_else(|| (1..=MAX_OFPORT).find(free))
            .context("no free OpenFlow port number")?;
        self.insert_port(ports, ofport, entry, port)
    }

    fn insert_port(
        &self,
        mut ports: std::sync::MutexGuard<'_, BTreeMap<OfPort, PortEntry>>,
        ofport: OfPort,
        entry: PortEntry,
        port: Box<dyn Port>,
    ) -> anyhow::Result<OfPort> {
        anyhow::ensure!(
            !ports.contains_key(&ofport) && !ports.values().any(|p| p.name == entry.name),
            "port {} (ofport {ofport}) already exists on bridge {}",
            entry.name,
            self.name
        );
        // VLAN settings first, so that no packet sees the port without them.
        {
            let vlans = self.vlans.lock().unwrap_or_else(|e| e.into_inner());
            self.apply_vlan(ofport, vlans.get(&entry.name));
        }
        if let Err(e) = self.dp.add_port(ofport, port) {
            self.fdb.remove_port(ofport);
            return Err(e).with_context(|| format!("adding {} to {}", entry.name, self.name));
        }
        tracing::info!(
            "{}: added port {} as ofport {ofport}",
            self.name,
            entry.name
        );
        self.port_status(model::OFPPR_ADD, ofport, &entry, true);
        ports.insert(ofport, entry);
        Ok(ofport)
    }

    /// Add the bridge's own port (an `internal` tap named after the bridge)
    /// as OFPP_LOCAL.
    pub fn add_local_port(&self, entry: PortEntry, port: Box<dyn Port>) -> anyhow::Result<OfPort> {
        let ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        self.insert_port(ports, OFPP_LOCAL, entry, port)
    }

    /// Remove a port.
    pub fn del_port(&self, ofport: OfPort) {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = ports.remove(&ofport) {
            if let Err(e) = self.dp.del_port(ofport) {
                tracing::warn!("{}: removing {}: {e}", self.name, entry.name);
            }
            // After the datapath let go of it: no packet sees the port
            // without its VLAN settings.
            self.fdb.remove_port(ofport);
            tracing::info!(
                "{}: removed port {} (ofport {ofport})",
                self.name,
                entry.name
            );
            self.port_status(model::OFPPR_DELETE, ofport, &entry, false);
        }
    }

    /// Detach port `ofport` and hand it back with its entry.
    pub fn take_port(&self, ofport: OfPort) -> Option<(PortEntry, Box<dyn Port>)> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let entry = ports.remove(&ofport)?;
        let taken = self.dp.take_port(ofport);
        self.fdb.remove_port(ofport);
        match taken {
            Ok(port) => {
                tracing::info!(
                    "{}: removed port {} (ofport {ofport})",
                    self.name,
                    entry.name
                );
                self.port_status(model::OFPPR_DELETE, ofport, &entry, false);
                Some((entry, port))
            }
            Err(e) => {
                tracing::warn!("{}: removing {}: {e}", self.name, entry.name);
                None
            }
        }
    }

    /// The datapath's view of every port (numbers, counters).
    pub fn port_infos(&self) -> Vec<PortInfo> {
        self.dp.ports()
    }

    /// The control plane's view of every port, by ofport.
    pub fn port_entries(&self) -> BTreeMap<OfPort, PortEntry> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The OpenFlow side of a bridge, once a second and on every event:
/// forwards packet-ins and flow-removed messages to the connections,
/// expires flows (idle and hard timeouts), and keeps a standalone bridge
/// whose controllers are all disconnected in fail-open (NORMAL). Ends
/// with the bridge.
fn of_housekeeping(bridge: std::sync::Weak<Bridge>, events: std::sync::mpsc::Receiver<OfEvent>) {
    use std::sync::mpsc::RecvTimeoutError;
    let tick = std::time::Duration::from_secs(1);
    let mut next = std::time::Instant::now() + tick;
    loop {
        let wait = next.saturating_duration_since(std::time::Instant::now());
        let ev = events.recv_timeout(wait);
        let Some(b) = bridge.upgrade() else { return };
        match ev {
            Ok(OfEvent::PacketIn(p, controller_id)) => {
                b.conns.send_packet_in(p, controller_id);
            }
            Ok(OfEvent::FlowRemoved(f)) => {
                let _ = b.conns.events().send(Event::FlowRemoved(f));
            }
            Ok(OfEvent::FlowChanges(c)) => {
                let _ = b.conns.events().send(Event::FlowChanges(c));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = std::time::Instant::now();
        if now >= next {
            next = now + tick;
            b.of.expire(now);
            b.refresh_links();
            let standalone =
                *b.fail_mode.lock().unwrap_or_else(|e| e.into_inner()) == FailMode::Standalone;
            let fail_open =
                standalone && b.conns.has_controllers() && b.conns.connected_controllers() == 0;
            if fail_open != b.of.fail_open() {
                tracing::info!(
                    "{}: {} fail-open mode",
                    b.name,
                    if fail_open { "entering" } else { "leaving" }
                );
                b.of.set_fail_open(fail_open);
            }
        }
    }
}

/// Where a port's link state comes from.
#[derive(Debug, Clone)]
enum LinkKind {
    /// A vif: up while its frontend is enabled (the caller checks that).
    Vif,
    /// A patch port (up while linked to its peer) or a tunnel port.
    Soft(xennet_ports::SoftLink),
    /// A Linux device (and LOCAL): up while up with a carrier.
    Device,
}

impl LinkKind {
    fn of(e: &PortEntry) -> LinkKind {
        match (&e.vif, &e.link) {
            (Some(_), _) => LinkKind::Vif,
            (None, Some(l)) => LinkKind::Soft(l.clone()),
            (None, None) => LinkKind::Device,
        }
    }

    fn link_up(&self, name: &str) -> bool {
        match self {
            LinkKind::Vif => true,
            LinkKind::Soft(l) => l.is_up(),
            LinkKind::Device => crate::tap::link_up(name).unwrap_or(false),
        }
    }
}

/// The MAC address of a port: netback's fixed address for a vif (its
/// representor keeps it too), the device's own for anything else.
fn port_hw_addr(name: &str, is_vif: bool) -> [u8; 6] {
    match is_vif {
        true => crate::ofbridge::VIF_MAC,
        false => crate::tap::get_mac(name).unwrap_or([0; 6]),
    }
}

/// The userspace-tunnelling commands of OVS: `ovs/route/{show,add,del,lookup}`,
/// `tnl/neigh/{show,set,flush}` (and `tnl/arp/*`), `tnl/ports/show`.
fn tunnel_commands(c: &mut Commands, t: &Arc<xennet_ports::TunnelSwitch>) {
    let s = t.clone();
    c.add(
        "ovs/route/show",
        "",
        0,
        0,
        Box::new(move |_| Ok(s.route_show())),
    );
    let s = t.clone();
    c.add(
        "ovs/route/add",
        "ip/plen output_bridge [gw] [src=ip]",
        2,
        4,
        Box::new(move |args| s.route_add(args)),
    );
    let s = t.clone();
    c.add(
        "ovs/route/lookup",
        "ip_addr",
        1,
        1,
        Box::new(move |args| s.route_lookup(args)),
    );
    let s = t.clone();
    c.add(
        "ovs/route/del",
        "ip/plen",
        1,
        1,
        Box::new(move |args| s.route_del(args)),
    );
    // OVS keeps the older `tnl/arp/*` names too.
    for (show, set, flush) in [
        ("tnl/neigh/show", "tnl/neigh/set", "tnl/neigh/flush"),
        ("tnl/arp/show", "tnl/arp/set", "tnl/arp/flush"),
    ] {
        let s = t.clone();
        c.add(show, "", 0, 0, Box::new(move |_| Ok(s.neigh_show())));
        let s = t.clone();
        c.add(
            set,
            "BRIDGE IP MAC",
            3,
            3,
            Box::new(move |args| s.neigh_set(args)),
        );
        let s = t.clone();
        c.add(flush, "", 0, 0, Box::new(move |_| Ok(s.neigh_flush())));
    }
    let s = t.clone();
    c.add(
        "tnl/ports/show",
        "[-v]",
        0,
        1,
        Box::new(move |args| Ok(s.ports_show(args.first().is_some_and(|a| a == "-v")))),
    );
}

/// Highest OpenFlow port number a port may get (OFPP_MAX).
pub const MAX_OFPORT: OfPort = 0xfeff;

/// Every bridge of this daemon; bridges come and go at run time when the
/// configuration is a database.
#[derive(Debug)]
pub struct Switch {
    bridges: RwLock<BTreeMap<String, Arc<Bridge>>>,
    rundir: PathBuf,
    /// The daemon's one connection tracker, shared by every bridge's
    /// datapath (as OVS's userspace datapath has one conntrack for all
    /// its bridges): zones, not bridges, separate connections.
    conntrack: Conntrack,
    /// Every patch port end, by name (they link across bridges).
    pub patches: Arc<xennet_ports::PatchRegistry>,
    /// Tunnel ports, underlays (every bridge's LOCAL port), routes and
    /// neighbours.
    pub tunnels: Arc<xennet_ports::TunnelSwitch>,
}

impl Switch {
    /// A switch without bridges whose management sockets go in `rundir`.
    pub fn empty(rundir: &Path) -> Switch {
        Switch {
            bridges: RwLock::new(BTreeMap::new()),
            rundir: rundir.to_path_buf(),
            conntrack: Conntrack::new(),
            patches: xennet_ports::PatchRegistry::new(),
            tunnels: xennet_ports::TunnelSwitch::new(),
        }
    }

    /// The connection tracker every bridge's `ct` actions use (for the
    /// `dpctl/*conntrack*` commands).
    pub fn conntrack(&self) -> &Conntrack {
        &self.conntrack
    }

    /// Start the bridges of `config`.
    pub fn new(config: &Config, rundir: &Path) -> anyhow::Result<Switch> {
        let switch = Switch::empty(rundir);
        for b in &config.bridges {
            let fail_mode = match b.fail_mode {
                ConfigFailMode::Standalone => FailMode::Standalone,
                ConfigFailMode::Secure => FailMode::Secure,
            };
            let id = Identity::derived(crate::identity::host_id(), &b.name);
            let br = switch.add_bridge(&b.name, fail_mode, id)?;
            br.configure_vlans(b.port_vlans());
            // Checked by Config::parse.
            if let Ok(iso) = b.isolation() {
                br.isolation.configure(&b.name, iso);
            }
            let controllers: Vec<_> = b
                .controller
                .iter()
                .map(|t| ControllerConfig::new(t))
                .collect();
            br.configure_openflow(fail_mode, &controllers);
            // Ports that are not vifs are Linux devices (OVS type "").
            for p in b
                .ports
                .iter()
                .filter(|p| crate::dbsync::parse_vif(&p.name).is_none())
            {
                let dev = crate::netdev::Netdev::open(&p.name, p.rx_ring).with_context(|| {
                    format!("bridge {}: opening network device {}", b.name, p.name)
                })?;
                let entry = PortEntry {
                    name: p.name.clone(),
                    vif: None,
                    rx_ring: p.rx_ring,
                    security: None,
                    link: None,
                };
                br.add_port(entry, Box::new(dev))?;
            }
            tracing::info!("bridge {}: created (fail_mode {:?})", b.name, b.fail_mode);
        }
        Ok(switch)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Bridge>>> {
        self.bridges.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Bridge>>> {
        self.bridges.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A bridge by name.
    pub fn bridge(&self, name: &str) -> Option<Arc<Bridge>> {
        self.read().get(name).cloned()
    }

    /// Every bridge, by name.
    pub fn bridges(&self) -> Vec<Arc<Bridge>> {
        self.read().values().cloned().collect()
    }

    /// Names of every bridge.
    pub fn bridge_names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Create bridge `name` with identity `id` (starting its forwarding
    /// thread); an existing bridge of that name is returned as is.
    pub fn add_bridge(
        &self,
        name: &str,
        fail_mode: FailMode,
        id: Identity,
    ) -> anyhow::Result<Arc<Bridge>> {
        if let Some(b) = self.bridge(name) {
            return Ok(b);
        }
        let b = Bridge::new(name, &self.rundir, fail_mode, id, &self.conntrack)?;
        self.write().insert(name.to_owned(), b.clone());
        Ok(b)
    }

    /// Remove bridge `name` and stop its forwarding thread (dropping the
    /// ports still on it).
    pub fn remove_bridge(&self, name: &str) {
        let b = self.write().remove(name);
        if let Some(b) = b {
            b.conns.shutdown();
            b.dp.shutdown();
            tracing::info!("bridge {name}: removed");
        }
    }

    /// [`Switch::bridge_arg`] for a `dpctl/*` command, a refusal as OVS
    /// `opt_dpif_open` writes it in ovs-vswitchd (lib/dpctl.c
    /// `get_one_dp`, `dpctl_error`): `ovs-vswitchd: datapath not found
    /// (Invalid argument)`, after `ovs-vswitchd: no datapaths exist` or
    /// `ovs-vswitchd: multiple datapaths, specify one` when none was
    /// named.
    fn dpctl_bridge_arg(&self, args: &[String]) -> Result<Arc<Bridge>, String> {
        self.bridge_arg(args).map_err(|_| {
            let why = match (args.is_empty(), self.read().is_empty()) {
                (false, _) => "",
                (true, true) => "ovs-vswitchd: no datapaths exist\n",
                (true, false) => "ovs-vswitchd: multiple datapaths, specify one\n",
            };
            format!("{why}ovs-vswitchd: datapath not found (Invalid argument)")
        })
    }

    fn bridge_arg(&self, args: &[String]) -> Result<Arc<Bridge>, String> {
        let bridges = self.read();
        match args.first() {
            Some(name) => bridges
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no such bridge: {name}")),
            None if bridges.len() == 1 => bridges
                .values()
                .next()
                .cloned()
                .ok_or_else(|| "no bridge".to_string()),
            None if bridges.is_empty() => Err("no bridges".into()),
            None => Err("more than one bridge: name one".into()),
        }
    }

    /// Stop every forwarding thread.
    pub fn shutdown(&self) {
        for b in self.bridges() {
            b.conns.shutdown();
            b.dp.shutdown();
        }
    }
}

/// The per-vif counters table (`ovs-appctl xennet/vif-show`).
fn vif_show(switch: &Switch) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<10} {:>6} {:>5} {:<8} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8} {:>7}",
        "bridge",
        "port",
        "ofport",
        "domid",
        "state",
        "from-guest",
        "bytes",
        "to-guest",
        "bytes",
        "rx-drop",
        "tx-drop",
        "errors"
    );
    for b in switch.bridges() {
        let entries = b.port_entries();
        for info in b.dp.ports() {
            let Some(entry) = entries.get(&info.ofport) else {
                continue;
            };
            let s = info.stats;
            let domid = entry
                .vif
                .as_ref()
                .map_or("-".to_string(), |(d, _)| d.to_string());
            let _ = writeln!(
                out,
                "{:<8} {:<10} {:>6} {:>5} {:<8} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8} {:>7}",
                b.name,
                entry.name,
                info.ofport,
                domid,
                if info.enabled { "up" } else { "disabled" },
                s.rx_packets,
                s.rx_bytes,
                s.tx_packets,
                s.tx_bytes,
                s.rx_dropped,
                s.tx_dropped,
                s.rx_errors + s.tx_errors
            );
        }
    }
    out
}

/// The `ovs-appctl` command table.
pub fn commands(switch: Arc<Switch>, shutdown: Arc<tokio::sync::Notify>) -> Commands {
    let mut c = Commands::default();
    crate::opcmds::add(&mut c, switch.clone());
    c.add(
        "version",
        "",
        0,
        0,
        Box::new(|_| Ok(format!("xennetd {}\n", env!("CARGO_PKG_VERSION")))),
    );
    c.add(
        "coverage/show",
        "",
        0,
        0,
        Box::new(|_| Ok(crate::coverage::show())),
    );
    c.add(
        "exit",
        "",
        0,
        1,
        Box::new(move |_| {
            shutdown.notify_one();
            Ok(String::new())
        }),
    );
    let s = switch.clone();
    c.add(
        "xennet/isolation-show",
        "[BRIDGE]",
        0,
        1,
        Box::new(move |args| {
            let all = match args.first() {
                Some(name) => vec![s
                    .bridge(name)
                    .ok_or_else(|| format!("no such bridge: {name}"))?],
                None => s.bridges(),
            };
            Ok(all.iter().map(|b| b.isolation.show(b)).collect())
        }),
    );
    tunnel_commands(&mut c, &switch.tunnels);
    let s = switch.clone();
    c.add(
        "xennet/vif-show",
        "",
        0,
        0,
        Box::new(move |_| Ok(vif_show(&s))),
    );
    let s = switch.clone();
    c.add(
        "xennet/vif-stats",
        "PORT",
        1,
        1,
        Box::new(move |args| {
            for b in s.bridges() {
                for entry in b.port_entries().values() {
                    if entry.name == args[0] {
                        return match &entry.vif {
                            Some((_, m)) => Ok(format!("{:#}\n", m.to_json())),
                            None => Err(format!("{} is not a vif", args[0])),
                        };
                    }
                }
            }
            Err(format!("no such port: {}", args[0]))
        }),
    );
    c.add(
        "xennet/representor-show",
        "",
        0,
        0,
        Box::new(|_| Ok(crate::representor::show())),
    );
    let s = switch.clone();
    c.add(
        "fdb/show",
        "BRIDGE",
        1,
        1,
        Box::new(move |args| Ok(s.bridge_arg(args)?.fdb.show())),
    );
    let s = switch.clone();
    c.add(
        "fdb/stats-show",
        "BRIDGE",
        1,
        1,
        Box::new(move |args| {
            let b = s.bridge_arg(args)?;
            let (n, max, aging) = b.fdb.limits();
            Ok(format!(
                "Statistics for bridge \"{}\":\n  Current/maximum MAC entries in the table: {n}/{max}\n  MAC aging time: {} s\n",
                b.name,
                aging.as_secs()
            ))
        }),
    );
    let s = switch.clone();
    c.add(
        "ofproto/trace",
        "BRIDGE FLOW [--ct-next FLAGS]... [PACKET]",
        2,
        2 + 2 * MAX_CT_NEXT + 1,
        Box::new(move |args| {
            // OVS `ofproto_unixctl_trace`: options anywhere; each
            // `--ct-next` is the ct_state after one more `ct`.
            let mut ct_next = Vec::new();
            let mut pos = Vec::new();
            let mut it = args.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--ct-next" => {
                        let v = it
                            .next()
                            .ok_or_else(|| "Missing argument for option --ct-next".to_string())?;
                        ct_next.push(xennet_ofproto::ofproto::parse_ct_next(v)?);
                    }
                    "-generate" | "--l7" | "--l7-len" => {
                        return Err(format!("{a}: not supported by xennet's ofproto/trace"))
                    }
                    o if o.starts_with('-') => return Err(format!("{o}: unknown option")),
                    _ => pos.push(a.clone()),
                }
            }
            if !(2..=3).contains(&pos.len()) {
                return Err("ofproto/trace: expected BRIDGE FLOW [PACKET]".into());
            }
            let b = s.bridge_arg(&pos[..1])?;
            let m = crate::flowtext::parse_match(&pos[1])?;
            // As OVS `ofproto/trace BRIDGE in_port=N HEX`: the frame's
            // headers (hex digits) with the flow's in_port.
            match pos.get(2) {
                None => Ok(b.of.trace_ct(&m.key, None, &ct_next)),
                Some(hex) => {
                    let frame = parse_hex_frame(hex)?;
                    let mut pkt = xennet_datapath::Packet::from_slice(&frame);
                    pkt.in_port = m.key.in_port();
                    let key = xennet_datapath::flow::extract(&pkt);
                    Ok(b.of.trace_ct(&key, Some(&pkt), &ct_next))
                }
            }
        }),
    );
    let s = switch.clone();
    c.add(
        "bridge/dump-flows",
        "BRIDGE",
        1,
        1,
        Box::new(move |args| Ok(s.bridge_arg(args)?.of.dump_flows())),
    );
    let s = switch.clone();
    c.add(
        "dpctl/dump-flows",
        "[-m] [BRIDGE]",
        0,
        2,
        Box::new(move |args| {
            let verbose = args.first().is_some_and(|a| a == "-m");
            let args = &args[usize::from(verbose)..];
            let b = s.dpctl_bridge_arg(args)?;
            let flows = match verbose {
                true => b.dp.dump_flows_verbose(),
                false => b.dp.dump_flows(),
            };
            let mut out = String::new();
            for line in flows {
                out.push_str(&line);
                out.push('\n');
            }
            Ok(out)
        }),
    );
    let s = switch.clone();
    c.add(
        "dpctl/del-flows",
        "[BRIDGE]",
        0,
        1,
        Box::new(move |args| {
            // OVS has one userspace datapath for every bridge, so no
            // argument flushes them all.
            let bridges = match args.is_empty() {
                true => s.bridges(),
                false => vec![s.dpctl_bridge_arg(args)?],
            };
            for b in bridges {
                b.dp.del_flows().map_err(|e| format!("{}: {e}", b.name))?;
            }
            Ok(String::new())
        }),
    );
    // The conntrack commands (OVS lib/dpctl.c) act on the one tracker
    // every bridge shares, as OVS's on its one userspace datapath.
    for &(name, usage, min, max) in conntrack::appctl::COMMANDS {
        let ct = switch.conntrack().clone();
        c.add(
            name,
            usage,
            min,
            max,
            Box::new(move |args| conntrack::appctl::run(&ct, name, args)),
        );
    }
    let s = switch;
    c.add(
        "dpif-netdev/pmd-stats-show",
        "",
        0,
        0,
        Box::new(move |_| {
            let mut out = String::new();
            for b in s.bridges() {
                let st = b.dp.stats();
                let _ = writeln!(out, "bridge {}:", b.name);
                let _ = writeln!(out, "  packets received: {}", st.packets);
                let _ = writeln!(out, "  packet recirculations: {}", st.recirc);
                let _ = writeln!(
                    out,
                    "  recirculations dropped (too deep or too many): {}",
                    st.recirc_drops
                );
                let _ = writeln!(out, "  recirculation ids: {}", b.of.recirc_ids());
                let _ = writeln!(out, "  emc hits: {}", st.emc_hits);
                let _ = writeln!(out, "  megaflow hits: {}", st.megaflow_hits);
                let _ = writeln!(
                    out,
                    "  avg. subtable lookups per megaflow hit: {:.2}",
                    st.avg_subtable_lookups_per_hit
                );
                let _ = writeln!(out, "  miss with success upcall: {}", st.upcalls);
                let _ = writeln!(out, "  miss with failed upcall: {}", st.lost);
                let _ = writeln!(
                    out,
                    "  frames shorter than an Ethernet header dropped: {}",
                    st.rx_invalid
                );
                let _ = writeln!(out, "  megaflows: {} in {} masks", st.n_flows, st.n_masks);
                let _ = writeln!(
                    out,
                    "  flow limit: {} (misses not cached at the limit: {}), max idle: {} ms",
                    st.flow_limit,
                    st.flow_limit_hits,
                    st.max_idle.as_millis()
                );
                let _ = writeln!(out, "  GSO frames not segmentable: {}", st.gso_drops);
                let _ = writeln!(
                    out,
                    "  reassembled datagrams refragmented: {}, not fragmentable: {}",
                    st.refragmented, st.frag_drops
                );
                let _ = writeln!(
                    out,
                    "  packet-ins dropped (slow controllers): {}",
                    b.conns.packet_ins_dropped()
                );
            }
            // One tracker serves every bridge.
            let ct = s.conntrack().stats();
            let _ = writeln!(
                out,
                "conntrack (all bridges): {} packets, {} connections",
                ct.packets, ct.connections
            );
            let a = ct.alg;
            let _ = writeln!(
                out,
                "conntrack ALG: {} expectations held ({} made, {} refused at the bound, \
                 {} replaced, {} expired), {} related connections, {} bad FTP messages, \
                 {} FTP NAT rewrites failed",
                a.held,
                a.created,
                a.refused,
                a.replaced,
                a.expired,
                a.related,
                a.ftp_invalid,
                a.nat_rewrite_failed
            );
            Ok(out)
        }),
    );
    c
}

/// Most `--ct-next` options one `ofproto/trace` takes (a trace follows
/// at most 16 recirculations).
const MAX_CT_NEXT: usize = 16;

/// A frame given as hex digits (`ofproto/trace`'s packet argument; at
/// most 65535 bytes, at least an Ethernet header).
fn parse_hex_frame(hex: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 || digits.len() > 2 * 65535 {
        return Err(format!(
            "packet {hex:?}: odd number of hex digits or too long"
        ));
    }
    let frame = digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| format!("packet {hex:?}: not hex digits"))
        })
        .collect::<Result<Vec<u8>, String>>()?;
    if frame.len() < 14 {
        return Err(format!("packet {hex:?}: shorter than an Ethernet header"));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use xennet_datapath::memport::{mem_port, MemPortPeer};
    use xennet_datapath::PortFeatures;

    fn bcast(src: u8, tag: Option<u16>) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x50, 0x54, 0, 0, 0, src]);
        if let Some(t) = tag {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&t.to_be_bytes());
        }
        f.extend_from_slice(&[0x88, 0xb5]);
        f.resize(f.len() + 46, 0);
        f
    }

    /// Frames sent out of `peer`'s port, waiting (up to 60 s: a loaded
    /// machine can stall the datapath thread) for `n`.
    fn sent(peer: &MemPortPeer, n: usize) -> Vec<Vec<u8>> {
        let got = peer.wait_sent(n, Duration::from_secs(60));
        got.iter().map(|p| p.data().to_vec()).collect()
    }

    fn add(b: &Bridge, name: &str) -> (OfPort, MemPortPeer) {
        let (p, peer) = mem_port(name, PortFeatures::default()).unwrap();
        let entry = PortEntry {
            name: name.into(),
            vif: None,
            rx_ring: false,
            security: None,
            link: None,
        };
        (b.add_port(entry, Box::new(p)).unwrap(), peer)
    }

    #[test]
    fn port_vlans_from_the_config_follow_ports_by_name() {
        let cfg = Config::parse(
            "[[bridge]]\nname = \"brv\"\n[[bridge.port]]\nname = \"vif1.0\"\ntag = 10\n",
        )
        .unwrap();
        // Bridges serve OpenFlow on a tokio runtime, from a run directory.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _rt = rt.enter();
        let rundir = std::env::temp_dir().join(format!("xennet-brv-{}", std::process::id()));
        std::fs::create_dir_all(&rundir).unwrap();
        let switch = Switch::new(&cfg, &rundir).unwrap();
        let b = switch.bridge("brv").unwrap();
        let (_, p1) = add(&b, "vif1.0");
        let (of2, p2) = add(&b, "vif2.0");
        let (_, p3) = add(&b, "vif3.0");
        // vif1.0 is an access port on VLAN 10 from its first packet.
        p1.inject_frame(&bcast(1, None));
        assert_eq!(sent(&p2, 1), vec![bcast(1, Some(10))]);
        assert_eq!(sent(&p3, 1), vec![bcast(1, Some(10))]);
        p2.inject_frame(&bcast(2, None));
        assert_eq!(sent(&p3, 1), vec![bcast(2, None)]);
        // Reconfigured: vif3.0 access 10 too, vif1.0 back to the default.
        let mut vlans = PortVlans::new();
        vlans.insert("vif3.0".into(), Some(PortVlan::access(10)));
        b.configure_vlans(vlans);
        p3.inject_frame(&bcast(3, None));
        assert_eq!(sent(&p2, 1), vec![bcast(3, Some(10))]);
        assert_eq!(sent(&p1, 1), vec![bcast(3, Some(10))]);
        let _cleanup = scopeguard_dir(rundir);
        // Blocked: vif2.0 neither sends nor receives.
        let mut vlans = PortVlans::new();
        vlans.insert("vif2.0".into(), None);
        b.configure_vlans(vlans.clone());
        p1.inject_frame(&bcast(1, None));
        assert_eq!(sent(&p3, 1), vec![bcast(1, None)]);
        p2.inject_frame(&bcast(2, None));
        std::thread::sleep(Duration::from_millis(20));
        assert!(p1.take_sent().is_empty() && p2.take_sent().is_empty());
        assert!(p3.take_sent().is_empty());
        // A port leaving and coming back under its name keeps the setting.
        b.del_port(of2);
        let (_, p2) = add(&b, "vif2.0");
        p2.inject_frame(&bcast(2, None));
        std::thread::sleep(Duration::from_millis(20));
        assert!(p1.take_sent().is_empty() && p3.take_sent().is_empty());
        switch.shutdown();
    }

    /// Removes a directory when dropped.
    struct DirGuard(std::path::PathBuf);

    impl Drop for DirGuard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scopeguard_dir(p: std::path::PathBuf) -> DirGuard {
        DirGuard(p)
    }

    /// A tunnel port's Geneve map follows `NXT_TLV_TABLE_MOD` from the
    /// next packet on, and knows no options once its bridge is gone.
    #[test]
    fn geneve_map_follows_tlv_table_mods() {
        use xennet_openflow::tlv::{TlvMapping, TlvTableMod, NXTTMC_ADD, NXTTMC_CLEAR};
        use xennet_ports::tunnel::DecapError;
        use xennet_ports::GeneveMap;
        let of = Ofproto::new("br-tlv", 1, FailMode::Secure);
        let map = BridgeGeneveMap::of(&of);
        // Class 0x0102, type 0x80 (critical), 4 bytes of data.
        let opt = [0x01, 0x02, 0x80, 0x01, 1, 2, 3, 4];
        assert!(matches!(map.decode(&opt), Err(DecapError::GeneveCritical)));
        let add = TlvTableMod {
            command: NXTTMC_ADD,
            mappings: vec![TlvMapping {
                option_class: 0x0102,
                option_type: 0x80,
                option_len: 4,
                index: 3,
            }],
        };
        of.handle_tlv_table_mod(&add).unwrap();
        let (words, present) = map.decode(&opt).unwrap();
        assert_eq!(present, 1 << 3);
        let mut back = Vec::new();
        map.encode(&words, present, &mut back);
        assert_eq!(back, opt);
        of.handle_tlv_table_mod(&TlvTableMod {
            command: NXTTMC_CLEAR,
            mappings: Vec::new(),
        })
        .unwrap();
        assert!(matches!(map.decode(&opt), Err(DecapError::GeneveCritical)));
        of.handle_tlv_table_mod(&add).unwrap();
        assert!(map.decode(&opt).is_ok());
        drop(of);
        assert!(matches!(map.decode(&opt), Err(DecapError::GeneveCritical)));
        let mut none = Vec::new();
        map.encode(&words, present, &mut none);
        assert!(none.is_empty());
    }
}

/// A bridge's Geneve option map as its tunnel ports use it: the
/// OpenFlow pipeline's current TLV map (`NXT_TLV_TABLE_MOD`, as OVS's
/// `tun_table`), read per packet with options through the pipeline's
/// lock-free cell ([`Ofproto::tlv_handle`]: a load, no lock, no reference
/// count), so a change applies from the next packet on. The pipeline
/// empties the cell when it goes: a port outliving its bridge knows no
/// options.
#[derive(Debug)]
pub struct BridgeGeneveMap(pub Arc<arc_swap::ArcSwap<xennet_openflow::tlv::TlvMap>>);

impl BridgeGeneveMap {
    /// The map of bridge pipeline `of`.
    pub fn of(of: &Ofproto) -> Self {
        BridgeGeneveMap(of.tlv_handle())
    }
}

impl xennet_ports::GeneveMap for BridgeGeneveMap {
    fn decode(&self, opts: &[u8]) -> Result<([u128; 2], u64), xennet_ports::tunnel::DecapError> {
        use xennet_openflow::tlv::GeneveError;
        use xennet_ports::tunnel::DecapError;
        match self.0.load().geneve_to_words(opts) {
            Ok(w) => Ok((w.opts, w.present)),
            Err(GeneveError::UnknownCritical { .. }) => Err(DecapError::GeneveCritical),
            Err(GeneveError::Truncated | GeneveError::BadLength { .. }) => {
                Err(DecapError::GeneveOptions)
            }
        }
    }

    fn encode(&self, metadata: &[u128; 2], present: u64, out: &mut Vec<u8>) {
        let w = xennet_openflow::tlv::TunMetadataWords {
            opts: *metadata,
            present,
        };
        self.0.load().words_to_geneve(&w, out);
    }
}
