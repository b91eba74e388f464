//! Configuration from an `Open_vSwitch` database (`xennetd --db`), as
//! ovs-vswitchd takes it: a [`Session`] holding the `ovs_vswitchd` lock
//! keeps a replica; on every change (and every [`STATS_INTERVAL`]) the
//! reconciler makes the switch match it and writes the results back in one
//! transaction that asserts the lock.
//!
//! * Bridges: one per row in `Open_vSwitch:bridges`, created and removed
//!   as the database says. The interface named like its bridge (the
//!   `internal` interface `ovs-vsctl add-br` makes) is a tap device of
//!   that name on OFPP_LOCAL (ofport 65534), with the bridge's MAC.
//! * A bridge's datapath id and MAC (see [`crate::identity`]): its
//!   `other_config:datapath-id` and `other_config:hwaddr` when set and
//!   valid (else a warning), otherwise derived from the host's
//!   `Open_vSwitch:external_ids:system-id` (or machine id) and the bridge
//!   name; `datapath_id` is written back.
//! * Types `internal` and `tap`: a tap device xennetd creates or attaches
//!   to (`Netdev::open_tap`), as OVS's userspace datapath does for both.
//! * Types `""` and `system` (other than vifs): an existing Linux device,
//!   through an AF_PACKET socket (`Netdev::open`). `options:rx-ring=true`
//!   makes it receive through a `TPACKET_V3` ring of blocks instead of the
//!   default `TPACKET_V2` ring of frames (see `netdev`: less CPU at low
//!   rates, up to 1 ms more latency per frame). The key is xennet's own: OVS defines no `options` for system
//!   devices (ovs-vswitchd warns "arguments provided to device that is
//!   not configurable", lib/netdev.c, and ignores them; so a database
//!   with the key still works with OVS). Like OVS's `smap_get_bool`, only
//!   `true` (any case) turns it on; values other than `true` and `false`
//!   are logged once. Changing it re-opens the port with the new receive
//!   path under the same ofport (controllers see the port deleted and
//!   added; its MACs are forgotten).
//! * Vifs: an Interface named `vif<D>.<H>` of type `""` or `xennet-vif` is
//!   Xen vif H of domain D. Guests attach whenever they like (on Xen the
//!   backend device exists before the hotplug script runs `ovs-vsctl
//!   add-port`); an attached vif joins the bridge whose Port lists its
//!   interface, under `ofport_request` if set and free, else its previous
//!   ofport (from the database, remembered after this process wrote -1
//!   for a vif whose guest is away, e.g. after a restart, or from this
//!   process) if free, else the lowest free number no other interface
//!   had. Until the guest attaches, the Interface gets ofport -1 and
//!   `error` "no such vif: waiting for domain D handle H to attach", as OVS
//!   writes for a missing network device (ovs-vsctl then logs "Error
//!   detected while setting up" but succeeds). A Port deleted from the
//!   database takes the vif off its bridge; the guest stays attached and
//!   the vif rejoins when a Port lists it again.
//! * Type `patch` with `options:peer`: one end of a patch port pair
//!   ([`xennet_ports::patch`]); options OVS refuses (no `peer`, other keys,
//!   `peer` naming itself) get ofport -1 and OVS's message in `error`. An
//!   end whose peer is missing or does not name it back gets an ofport and
//!   link state down, as in OVS. Changing `peer` re-opens the port.
//! * Any other interface gets ofport -1 and `error` "xennetd: interface
//!   type '<type>' is not supported yet".
//! * A vif whose hotplug script failed (`hotplug-status = error`, see
//!   [`note_hotplug`]) shows "hotplug script failed: <hotplug-error>" in
//!   `error` until a script reports `connected`.
//! * Port VLAN columns `tag`, `trunks` and `vlan_mode` are applied to the
//!   port's vifs on every change, as ovs-vswitchd's `port_configure` does
//!   (see `xennet_ofproto::normal::PortVlan`); a change makes NORMAL forget
//!   the MACs learned on the port. Settings xennet cannot apply (a value
//!   outside 0-4095, which the schema forbids anyway, or `vlan_mode`
//!   `dot1q-tunnel`) are logged once, block the port (it forwards nothing)
//!   and are reported in each of its Interfaces' `error`; `tag` with
//!   `trunks` and no `vlan_mode` logs OVS's "ignoring trunks in favor of
//!   implicit vlan".
//! * Written back: every Interface's `ofport`, `error` and `mac_in_use`
//!   (a vif's is netback's `fe:ff:ff:ff:ff:ff`, a device's its address)
//!   when they differ from the replica, `statistics` of attached vifs (at
//!   most every [`STATS_INTERVAL`]), and `Open_vSwitch:cur_cfg := next_cfg`
//!   in the same transaction, so a waiting `ovs-vsctl` sees the ofports.
//! * Without the lock (another switch owns the database) or while
//!   disconnected, the switch keeps running as last configured.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use xennet_datapath::conntrack::TimeoutPolicy;
use xennet_datapath::{OfPort, Port, PortStats};
use xennet_ofproto::FailMode;
use xennet_ovsdb::{Atom, Datum, OpenVSwitch, Replica, Session, Txn, Uuid};
use xennet_vif::netback::PortSecurity;

use xennet_ofproto::normal::PortVlan;

use crate::bridge::{Bridge, Limits, PortEntry, PortVlans, Switch, MAX_OFPORT};
use crate::identity::Identity;
use crate::isolation::IsolationConfig;
use crate::ofconn::ControllerConfig;

/// The lock ovs-vswitchd takes.
pub const LOCK: &str = "ovs_vswitchd";
/// OFPP_LOCAL, the ofport of a bridge's own interface, as the database
/// shows it (OpenFlow 1.0 numbering).
pub const OFPP_LOCAL: i64 = 65534;
/// OFPP_LOCAL in the datapath (OpenFlow 1.3 numbering).
const OFPP_LOCAL_DP: OfPort = xennet_datapath::buffer::OFPP_LOCAL;
/// How often attached vifs' `statistics` are refreshed (as ovs-vswitchd).
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// Delay before retrying a failed write.
const RETRY: Duration = Duration::from_millis(500);
/// `mac_in_use` of a vif: the fixed address of Xen's netback devices.
const VIF_MAC: &str = "fe:ff:ff:ff:ff:ff";

/// A vif whose guest is attached.
#[derive(Debug)]
struct Attached {
    entry: PortEntry,
    /// The port while it is on no bridge.
    port: Option<Box<dyn Port>>,
    /// The bridge and number it is on.
    placed: Option<(Arc<Bridge>, OfPort)>,
    /// Its last number in this process.
    last_ofport: Option<OfPort>,
}

/// Attached vifs, by name (`vif1.0`), on a bridge or waiting for one.
#[derive(Debug, Default)]
pub struct VifRegistry {
    vifs: Mutex<BTreeMap<String, Attached>>,
    /// The `hotplug-error` of vifs whose hotplug script failed, by name,
    /// until a script reports `connected` for them.
    hotplug_errors: Mutex<BTreeMap<String, String>>,
    /// Each connected vif's port security, by name, for the Interface
    /// `other_config:xennet-port-security` opt-out.
    security: Mutex<BTreeMap<String, Arc<PortSecurity>>>,
    changed: Notify,
}

/// Look at the hotplug outcome in backend directory `be` of vif `name`
/// (`hotplug-status`, `hotplug-error`, written by the hotplug script as
/// Xen's `xen-hotplug-common.sh` does): a failure is logged with its cause
/// and shown in the vif's Interface `error` column ("hotplug script
/// failed: <hotplug-error>") until a script reports `connected`.
pub fn note_hotplug(xs: &xennet_vif::xenstore::Client, be: &str, vifs: &VifRegistry, name: &str) {
    // The message first, then the status: scripts write both in one
    // transaction, and a toolstack removing the directory in between
    // leaves no status, so a missing message is never taken for a script
    // that gave none.
    let message = xs.read_string(&format!("{be}/hotplug-error")).ok();
    let status = xs.read_string(&format!("{be}/hotplug-status")).ok();
    let mut errors = vifs
        .hotplug_errors
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let changed = match status.as_deref() {
        Some("error") => {
            let why = message
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "no hotplug-error given".into());
            let why: String = why.chars().take(1024).collect();
            if errors.get(name) != Some(&why) {
                tracing::warn!(
                    "{name}: hotplug script failed: {why} (hotplug-status = error in {be}); \
                     the backend refuses the vif"
                );
                errors.insert(name.to_owned(), why);
                true
            } else {
                false
            }
        }
        Some("connected") => errors.remove(name).is_some(),
        _ => false,
    };
    drop(errors);
    if changed {
        vifs.changed.notify_one();
    }
}

impl VifRegistry {
    /// Forget vif `name`'s hotplug failure: a new backend device for it
    /// (say a domain id reused) starts without the old message.
    pub fn forget_hotplug(&self, name: &str) {
        let mut errors = self
            .hotplug_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if errors.remove(name).is_some() {
            drop(errors);
            self.changed.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Attached>> {
        self.vifs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True if a guest has attached vif `name`.
    pub fn is_attached(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// Whether vif `name` is on a bridge (polled by its forwarding
    /// thread), not waiting for the database to place it.
    pub fn is_placed(&self, name: &str) -> bool {
        self.lock().get(name).is_some_and(|a| a.placed.is_some())
    }

    /// A guest attached vif `entry.name`; the reconciler places it.
    pub fn attach(&self, entry: PortEntry, port: Box<dyn Port>) -> anyhow::Result<()> {
        let mut vifs = self.lock();
        anyhow::ensure!(
            !vifs.contains_key(&entry.name),
            "{} is already attached",
            entry.name
        );
        tracing::info!(
            "{}: attached, waiting for the database to place it",
            entry.name
        );
        vifs.insert(
            entry.name.clone(),
            Attached {
                entry,
                port: Some(port),
                placed: None,
                last_ofport: None,
            },
        );
        drop(vifs);
        self.changed.notify_one();
        Ok(())
    }

    /// The guest of vif `name` went away: drop it, from its bridge too.
    /// Note vif `name`'s port security, so that its Interface can turn
    /// it off (replaces what an earlier connection of the vif left).
    pub fn note_security(&self, name: &str, security: Arc<PortSecurity>) {
        self.security
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), security);
        self.changed.notify_one();
    }

    pub fn detach(&self, name: &str) {
        self.security
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let removed = self.lock().remove(name);
        if let Some(Attached {
            placed: Some((b, ofport)),
            ..
        }) = removed
        {
            b.take_port(ofport);
        }
        self.changed.notify_one();
    }
}

/// What an Interface row is to us.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The bridge's own interface (a tap device named after the bridge, on
    /// OFPP_LOCAL).
    Local,
    /// A Xen vif.
    Vif { domid: u16, handle: u16 },
    /// A Linux network device (type ""), attached with AF_PACKET, or a
    /// tap device xennetd opens (types `internal` and `tap`).
    Netdev,
    /// Something we cannot do; the `error` to write.
    Bad(String),
}

/// One Interface row of a bridge in the database.
#[derive(Debug, Clone)]
struct PlannedIface {
    uuid: Uuid,
    name: String,
    bridge: String,
    kind: Kind,
    ofport: Option<i64>,
    error: Option<String>,
    link_state: Option<String>,
    status: BTreeMap<String, String>,
    /// `ingress_policing_rate` (kbit/s) and `ingress_policing_burst` (kbit).
    policing: (i64, i64),
    statistics: BTreeMap<String, i64>,
    /// Why its Port's VLAN settings are not applied.
    vlan_error: Option<String>,
    /// Its [`NOT_APPLIED`] columns that are set.
    not_applied: Vec<&'static str>,
    /// Port security (vifs): `other_config:xennet-port-security` is not
    /// `false`.
    port_security: bool,
    /// Port security's guards (vifs): `other_config:xennet-allow-dhcp-server`
    /// and `xennet-allow-ra`, when `true` or `false` (else the
    /// configuration file's `allow_dhcp_server`, `allow_ra`).
    allow_dhcp_server: Option<bool>,
    allow_ra: Option<bool>,
    /// `external_ids:attached-mac` (vifs), if a unicast MAC: port
    /// security's MAC when the backend has no `mac` key.
    attached_mac: Option<[u8; 6]>,
}

/// How a Linux device port is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DevKind {
    /// An existing device, through AF_PACKET (type "" or `system`),
    /// receiving through the TPACKET_V3 block ring if `rx_ring`
    /// (`options:rx-ring`), else through the TPACKET_V2 frame ring.
    System { rx_ring: bool },
    /// A tap device xennetd creates or attaches to (types `internal` and
    /// `tap`: the same netdev-linux tap class in OVS's userspace datapath).
    Tap,
    /// The bridge's LOCAL port: a tap named after the bridge, OFPP_LOCAL,
    /// with the bridge's MAC address ([`Bridge::hwaddr`]).
    Local,
    /// A patch port (type `patch`) whose peer is `peer`
    /// ([`xennet_ports::patch`]).
    Patch { peer: String },
    /// A tunnel port (types `vxlan`, `geneve`; see
    /// [`xennet_ports::tunnel::vport`]).
    Tunnel(xennet_ports::tunnel::config::TunnelConfig),
}

impl DevKind {
    /// What a software port is configured with (a change re-opens it).
    fn soft_config(&self) -> Option<String> {
        match self {
            DevKind::Patch { peer } => Some(format!("patch:{peer}")),
            DevKind::Tunnel(c) => Some(format!("{c:?}")),
            _ => None,
        }
    }
}

/// [`DevKind::soft_config`] of an open port.
fn link_config(l: &xennet_ports::SoftLink) -> String {
    match l {
        xennet_ports::SoftLink::Patch(p) => format!("patch:{}", p.peer_name()),
        xennet_ports::SoftLink::Tunnel(c) => format!("{c:?}"),
    }
}

/// The configuration the database asks for.
#[derive(Debug, Default)]
struct Plan {
    bridges: BTreeSet<String>,
    ifaces: Vec<PlannedIface>,
    /// Vif name -> (bridge, preferred ofports).
    vifs: BTreeMap<String, (String, Vec<OfPort>)>,
    /// Linux device name -> (bridge, preferred ofports, how it is opened).
    netdevs: BTreeMap<String, (String, Vec<OfPort>, DevKind)>,
    /// Bridge -> VLAN settings of its ports' interfaces, by interface name.
    vlans: BTreeMap<String, PortVlans>,
    /// Bridge -> fail mode, controllers and `protocols`.
    openflow: BTreeMap<String, (FailMode, Vec<ControllerConfig>, Vec<String>)>,
    /// Bridge rows: (uuid, name, datapath_id) as the database has them.
    bridge_rows: Vec<(Uuid, String, Option<String>)>,
    /// Controller rows: (uuid, bridge, target, is_connected, role) as the
    /// database has them.
    controllers: Vec<(Uuid, String, String, bool, Option<String>)>,
    /// Bridge -> datapath and MAC-learning limits from `other_config`.
    limits: BTreeMap<String, Limits>,
    /// Bridge -> datapath id and MAC address (see [`Identity`]).
    identities: BTreeMap<String, Identity>,
    /// Bridge -> isolation check settings (see [`isolation_config`]).
    isolation: BTreeMap<String, IsolationConfig>,
    /// Bridge and Port rows whose `status` must change: (table, row,
    /// new status), for their [`NOT_APPLIED`] columns.
    row_status: Vec<(&'static str, Uuid, BTreeMap<String, String>)>,
    /// What xennet can do, where the database says otherwise
    /// (`Open_vSwitch` `iface_types` and `datapath_types`, every
    /// `Datapath` row's `capabilities`): (table, row, column, value).
    capabilities: Vec<(&'static str, Uuid, &'static str, Datum)>,
    /// The numbers interfaces had (and want back): not given to others.
    reserved: BTreeSet<OfPort>,
    /// Attached vifs wait to join their bridges ([`RestartHold`]).
    hold_vifs: bool,
    /// Zone -> timeout policy (see [`ct_zone_policies`]).
    ct_zones: BTreeMap<u16, TimeoutPolicy>,
    /// VLAN tags flow keys hold (see [`vlan_limit`]).
    vlan_limit: u64,
}

impl Plan {
    /// Note the [`NOT_APPLIED`] columns of row `uuid` of `table` in its
    /// `status` (written back if that changes it).
    fn report_not_applied(
        &mut self,
        r: &Replica,
        table: &'static str,
        uuid: Uuid,
        what: &str,
        log: &mut LogOnce,
    ) {
        let cols = not_applied(r, table, uuid, what, log);
        let old = r
            .get(table, uuid, "status")
            .map(|d| d.string_map())
            .unwrap_or_default();
        let new = with_not_applied(&old, &cols);
        if new != old {
            self.row_status.push((table, uuid, new));
        }
    }
}

/// An unsigned `other_config` value of `what` (OVS `smap_get_uint`):
/// `default` when missing, and when not a number, with a warning.
fn config_uint(
    map: &BTreeMap<String, String>,
    key: &str,
    default: u64,
    what: &str,
    log: &mut LogOnce,
) -> u64 {
    match map.get(key) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            log.warn(format!(
                "{what}: other_config:{key}={v:?} is not a number, using {default}"
            ));
            default
        }),
    }
}

/// Largest `flow-limit` and `mac-table-size` taken from the database:
/// guests fill both, so a typo must not let them take all memory.
const MAX_TABLE: u64 = 1_000_000;

/// The limits of bridge `br` (see [`Limits`]): `flow-limit` and
/// `max-idle` (ms, at least 100) from the Open_vSwitch row,
/// `mac-table-size` and `mac-aging-time` (s, clamped to 15..3600 as OVS
/// does) from the bridge's; both table sizes at most [`MAX_TABLE`].
fn limits(ovs: &OpenVSwitch, br: &xennet_ovsdb::Bridge, log: &mut LogOnce) -> Limits {
    let d = Limits::default();
    let oc = &ovs.other_config;
    let bc = &br.other_config;
    let what = format!("bridge {}", br.name);
    Limits {
        flow_limit: config_uint(oc, "flow-limit", d.flow_limit as u64, "Open_vSwitch", log)
            .clamp(1, MAX_TABLE) as usize,
        max_idle: Duration::from_millis(
            config_uint(
                oc,
                "max-idle",
                d.max_idle.as_millis() as u64,
                "Open_vSwitch",
                log,
            )
            .max(100),
        ),
        mac_table_size: config_uint(bc, "mac-table-size", d.mac_table_size as u64, &what, log)
            .clamp(1, MAX_TABLE) as usize,
        mac_aging: Duration::from_secs(
            config_uint(bc, "mac-aging-time", d.mac_aging.as_secs(), &what, log).clamp(15, 3600),
        ),
    }
}

/// `Open_vSwitch:other_config:vlan-limit` as OVS `bridge_reconfigure`
/// reads it (`smap_get_int`, default 1; 0 or less: as many tags as the
/// key holds, 2); xennet's keys hold 2 tags, so a larger value is
/// logged and taken as 2; a value that is not a number is logged and
/// taken as the default.
fn vlan_limit(ovs: &OpenVSwitch, log: &mut LogOnce) -> u64 {
    let max = u64::from(xennet_datapath::flow::MAX_VLAN_HEADERS);
    match ovs.other_config.get("vlan-limit") {
        None => 1,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n <= 0 => 0,
            Ok(n) if n as u64 > max => {
                log.warn(format!(
                    "Open_vSwitch: other_config:vlan-limit={n}: xennet tracks at most {max} VLAN tags; using {max}"
                ));
                max
            }
            Ok(n) => n as u64,
            Err(_) => {
                log.warn(format!(
                    "Open_vSwitch: other_config:vlan-limit={v:?} is not a number, using 1"
                ));
                1
            }
        },
    }
}

/// The isolation settings of bridge `br` (see `crate::isolation`):
/// `other_config` `xennet-essential-services`, `xennet-gateway` and
/// `xennet-isolation-guard` (`true` or `false`). A value that does not
/// parse is warned about once and the default used instead.
fn isolation_config(br: &xennet_ovsdb::Bridge, log: &mut LogOnce) -> IsolationConfig {
    let bc = &br.other_config;
    let guard = match bc.get("xennet-isolation-guard").map(|s| s.as_str()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            log.warn(format!(
                "bridge {}: other_config:xennet-isolation-guard={v:?} is not true or false: guard off",
                br.name
            ));
            false
        }
    };
    IsolationConfig::from_settings(
        bc.get("xennet-essential-services").map(|s| s.as_str()),
        bc.get("xennet-gateway").map(|s| s.as_str()),
        guard,
    )
    .unwrap_or_else(|e| {
        log.warn(format!(
            "bridge {}: other_config: {e}: checking the default services",
            br.name
        ));
        IsolationConfig {
            guard,
            ..IsolationConfig::default()
        }
    })
}

/// Put each bridge's isolation alerts into its Bridge row's `status`
/// (keys `isolation_alerts` and `isolation:<port>:<service>`, see
/// `crate::isolation`), next to what the plan already writes there.
fn isolation_status(plan: &mut Plan, r: &Replica, switch: &Switch) {
    for (uuid, name, _) in &plan.bridge_rows {
        let old = r
            .get("Bridge", *uuid, "status")
            .map(|d| d.string_map())
            .unwrap_or_default();
        let idx = plan
            .row_status
            .iter()
            .position(|(t, u, _)| *t == "Bridge" && u == uuid);
        let mut new = match idx {
            Some(i) => plan.row_status[i].2.clone(),
            None => old.clone(),
        };
        new.retain(|k, _| {
            k != crate::isolation::STATUS_COUNT_KEY
                && !k.starts_with(crate::isolation::STATUS_KEY_PREFIX)
        });
        if let Some(b) = switch.bridge(name) {
            new.extend(b.isolation.status_keys());
        }
        match idx {
            Some(i) => plan.row_status[i].2 = new,
            None if new != old => plan.row_status.push(("Bridge", *uuid, new)),
            None => {}
        }
    }
}

/// The VLAN settings of Port `port` (OVS `port_configure`), or the
/// `Interface:error` text saying why they cannot be applied.
fn port_vlan(port: &xennet_ovsdb::Port, log: &mut LogOnce) -> Result<PortVlan, String> {
    match PortVlan::from_columns(port.tag, &port.trunks, port.vlan_mode.as_deref()) {
        Ok(v) => {
            if v.ignores_trunks() {
                log.warn(format!(
                    "port {}: ignoring trunks in favor of implicit vlan",
                    port.name
                ));
            }
            Ok(v)
        }
        Err(e) => {
            let msg = format!(
                "xennetd: port {}: {e}; the port forwards nothing until its VLAN settings are fixed",
                port.name
            );
            log.warn(msg.clone());
            Err(msg)
        }
    }
}

/// `Open_vSwitch:iface_types`: the Interface types xennet can open (a vif
/// is type `""` or xennet's own `xennet-vif`; `internal` and `tap` are tap
/// devices, `system` an existing device through AF_PACKET, `patch` a
/// patch port).
const IFACE_TYPES: &[&str] = &[
    "geneve",
    "gre",
    "internal",
    "patch",
    "system",
    "tap",
    "vxlan",
    "xennet-vif",
];
/// `Open_vSwitch:datapath_types`: both mean xennet's one userspace
/// datapath (`Bridge:datapath_type` selects nothing else).
const DATAPATH_TYPES: &[&str] = &["netdev", "system"];
/// `Datapath:capabilities` (OVS `dpif_show_support`'s keys), as xennet's
/// datapath has them today: one VLAN header, no MPLS, recirculation and
/// connection tracking (`ct_state` with the NAT bits, `ct_zone`,
/// `ct_mark`, `ct_label`, the original tuple, `ct_clear`; no event masks,
/// per-`ct` timeouts, zero-address SNAT or `NXT_CT_FLUSH`), no tunnel
/// push/pop, no clone, truncate, sample or check_pkt_len actions.
/// ovn-controller reads these to choose its flows.
const DP_CAPABILITIES: &[(&str, &str)] = &[
    ("add_mpls", "false"),
    ("check_pkt_len", "false"),
    ("clone", "false"),
    ("ct_clear", "true"),
    ("ct_eventmask", "false"),
    ("ct_flush", "false"),
    ("ct_label", "true"),
    ("ct_mark", "true"),
    ("ct_orig_tuple", "true"),
    ("ct_orig_tuple6", "true"),
    ("ct_state", "true"),
    ("ct_state_nat", "true"),
    ("ct_timeout", "false"),
    ("ct_zero_snat", "false"),
    ("ct_zone", "true"),
    ("explicit_drop_action", "false"),
    ("lb_output_action", "false"),
    ("masked_set_action", "false"),
    ("max_hash_alg", "0"),
    ("max_mpls_depth", "0"),
    ("max_vlan_headers", "2"),
    ("nd_ext", "false"),
    ("recirc", "true"),
    ("sample_nesting", "0"),
    ("tnl_push_pop", "false"),
    ("trunc", "false"),
    ("ufid", "false"),
];

/// Columns xennet does not apply, by table: a row with any of them at a
/// non-default value gets a warning (once) and the column names under
/// `not_applied` in its `status` map (docs/ovsdb-columns.md lists every
/// column of the schema and what xennet does with it).
const NOT_APPLIED: &[(&str, &[&str])] = &[
    (
        "Bridge",
        &[
            "mirrors",
            "stp_enable",
            "rstp_enable",
            "sflow",
            "netflow",
            "ipfix",
            "mcast_snooping_enable",
            "flood_vlans",
            "auto_attach",
            "flow_tables",
        ],
    ),
    (
        "Port",
        &[
            "qos",
            "bond_mode",
            "bond_updelay",
            "bond_downdelay",
            "bond_fake_iface",
            "cvlans",
            "protected",
        ],
    ),
    (
        "Interface",
        &[
            "mtu_request",
            "bfd",
            "cfm_mpid",
            "lldp",
            "ingress_policing_kpkts_rate",
            "ingress_policing_kpkts_burst",
        ],
    ),
];

/// The key of a row's `status` map that lists its [`NOT_APPLIED`] columns.
const NOT_APPLIED_KEY: &str = "not_applied";

/// The columns of row `uuid` of `table` that are set (not at their schema
/// default) but not applied, logged once with `what` naming the row.
fn not_applied(
    r: &Replica,
    table: &'static str,
    uuid: Uuid,
    what: &str,
    log: &mut LogOnce,
) -> Vec<&'static str> {
    let cols = NOT_APPLIED
        .iter()
        .find(|(t, _)| *t == table)
        .map_or(&[][..], |(_, c)| c);
    let set: Vec<&'static str> = cols
        .iter()
        .copied()
        .filter(|c| {
            let default = r.schema().column(table, c).map(|t| t.default_datum());
            r.get(table, uuid, c)
                .is_some_and(|v| Some(v.as_ref()) != default.as_ref())
        })
        .collect();
    if !set.is_empty() {
        log.warn(format!(
            "{what}: {} set, but xennetd does not apply {} (reported in its status:{NOT_APPLIED_KEY})",
            set.join(", "),
            if set.len() == 1 { "it" } else { "them" }
        ));
    }
    set
}

/// The `status` map wanted for a Bridge or Port row: `old` without
/// [`NOT_APPLIED_KEY`], plus that key listing `cols` if any.
fn with_not_applied(
    old: &BTreeMap<String, String>,
    cols: &[&'static str],
) -> BTreeMap<String, String> {
    let mut s = old.clone();
    s.remove(NOT_APPLIED_KEY);
    if !cols.is_empty() {
        s.insert(NOT_APPLIED_KEY.to_owned(), cols.join(","));
    }
    s
}

/// Why the interfaces of `port` cannot be used, if it is a bond (several
/// interfaces, or LACP): xennet has no bonding yet, and bond members used
/// as independent ports would loop frames between them.
fn bond_refusal(port: &xennet_ovsdb::Port, r: &Replica) -> Option<String> {
    let lacp = r
        .get("Port", port.uuid, "lacp")
        .and_then(|d| d.as_str().map(str::to_owned));
    let n = port.interfaces.len();
    let why = if n > 1 {
        format!("has {n} interfaces (a bond)")
    } else if let Some(l) = lacp.filter(|l| l != "off") {
        format!("has lacp={l}")
    } else {
        return None;
    };
    Some(format!(
        "xennetd: port {} {why}, but bonds and LACP are not supported yet: its interfaces forward nothing",
        port.name
    ))
}

/// Parses `vif<D>.<H>`.
pub(crate) fn parse_vif(name: &str) -> Option<(u16, u16)> {
    let (d, h) = name.strip_prefix("vif")?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(d) || !digits(h) {
        return None;
    }
    let domid: u16 = d.parse().ok()?;
    // DOMID_FIRST_RESERVED: no guest has a larger id.
    (domid < 0x7ff0).then_some((domid, h.parse().ok()?))
}

fn valid_bridge_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && !name.contains('/')
}

/// Messages logged once each (bad rows would otherwise be logged on every
/// reconcile).
#[derive(Debug, Default)]
struct LogOnce(HashSet<String>);

impl LogOnce {
    fn warn(&mut self, msg: String) {
        if self.0.len() > 4096 {
            self.0.clear();
        }
        if !self.0.contains(&msg) {
            tracing::warn!("{msg}");
            self.0.insert(msg);
        }
    }

    fn info(&mut self, msg: String) {
        if self.0.len() > 4096 {
            self.0.clear();
        }
        if !self.0.contains(&msg) {
            tracing::info!("{msg}");
            self.0.insert(msg);
        }
    }
}

/// `CT_Timeout_Policy:timeouts` keys OVS's userspace datapath ignores
/// (OVS lib/conntrack-tp.c maps no timeout to them), and so does
/// xennet's tracker: refused (logged), the zone's other keys applied.
const CT_TIMEOUTS_UNSUPPORTED: &[&str] = &[
    "tcp_close_wait",
    "tcp_last_ack",
    "tcp_syn_sent2",
    "tcp_retransmit",
    "tcp_unack",
];

/// The per-zone timeout policies the database asks for (OVS
/// vswitchd/vswitch.xml: `Open_vSwitch:datapaths`, keyed by datapath
/// type, -> `Datapath:ct_zones`, zone -> `CT_Zone:timeout_policy` ->
/// `CT_Timeout_Policy:timeouts`, seconds by name). Both datapath types
/// xennet lists (`netdev`, `system`) mean its one tracker; a zone both
/// give different policies keeps `netdev`'s (logged). A zone without a
/// policy, or a key the policy leaves out, gets OVS's userspace default;
/// keys the userspace tracker has no timeout for are refused and logged.
fn ct_zone_policies(
    r: &Replica,
    ovs: &OpenVSwitch,
    log: &mut LogOnce,
) -> BTreeMap<u16, TimeoutPolicy> {
    let mut out: BTreeMap<u16, TimeoutPolicy> = BTreeMap::new();
    let Some(dps) = r.get("Open_vSwitch", ovs.uuid, "datapaths") else {
        return out;
    };
    let Datum::Map(dps) = dps.as_ref() else {
        return out;
    };
    let mut dps: Vec<(&str, Uuid)> = dps
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_uuid()?)))
        .collect();
    // `netdev` first: it wins a conflict.
    dps.sort_by_key(|(t, _)| *t != "netdev");
    for (dp_type, dp) in dps {
        if !DATAPATH_TYPES.contains(&dp_type) {
            log.warn(format!(
                "database: datapath type {dp_type:?}: its ct zones are not applied \
                 (xennet's datapath types are netdev and system)"
            ));
            continue;
        }
        let Some(zones) = r.get("Datapath", dp, "ct_zones") else {
            continue;
        };
        let Datum::Map(zones) = zones.as_ref() else {
            continue;
        };
        for (z, zuuid) in zones {
            let (Some(z), Some(zuuid)) = (z.as_i64(), zuuid.as_uuid()) else {
                continue;
            };
            let Ok(zone) = u16::try_from(z) else {
                log.warn(format!("database: ct zone {z} is not a zone (0 to 65535)"));
                continue;
            };
            let mut policy = TimeoutPolicy::default();
            let tp = r
                .get("CT_Zone", zuuid, "timeout_policy")
                .and_then(|d| d.as_uuid());
            if let Some(tp) = tp {
                let timeouts = r
                    .get("CT_Timeout_Policy", tp, "timeouts")
                    .map(|d| d.integer_map())
                    .unwrap_or_default();
                for (k, v) in timeouts {
                    let Ok(secs) = u32::try_from(v) else {
                        log.warn(format!(
                            "database: ct zone {zone}: timeout {k}={v} is out of range (0 to 4294967295 s)"
                        ));
                        continue;
                    };
                    if CT_TIMEOUTS_UNSUPPORTED.contains(&k.as_str()) || !policy.set(&k, secs) {
                        log.warn(format!(
                            "database: ct zone {zone}: timeout {k} is not supported by the \
                             userspace connection tracker: ignored"
                        ));
                    }
                }
            }
            match out.get(&zone) {
                Some(have) if *have != policy => log.warn(format!(
                    "database: ct zone {zone}: datapath type {dp_type} gives another timeout \
                     policy than netdev: netdev's applies"
                )),
                Some(_) => {}
                None => {
                    out.insert(zone, policy);
                }
            }
        }
    }
    out
}

/// Set the tracker's per-zone timeout policies to `want`; `applied` is
/// what the last call set (zones no longer in `want` get the default).
fn apply_ct_zones(
    want: &BTreeMap<u16, TimeoutPolicy>,
    switch: &Switch,
    applied: &mut BTreeMap<u16, TimeoutPolicy>,
) {
    if want == applied {
        return;
    }
    let ct = switch.conntrack();
    for zone in applied.keys().filter(|z| !want.contains_key(z)) {
        ct.set_zone_timeout_policy(*zone, None);
        tracing::info!("ct zone {zone}: default timeout policy");
    }
    for (zone, p) in want {
        if applied.get(zone) != Some(p) {
            ct.set_zone_timeout_policy(*zone, Some(*p));
            tracing::info!("ct zone {zone}: timeout policy {p:?}");
        }
    }
    *applied = want.clone();
}

/// The `capabilities` writes of [`Plan`].
fn capabilities(r: &Replica, ovs: &OpenVSwitch) -> Vec<(&'static str, Uuid, &'static str, Datum)> {
    let mut out = Vec::new();
    for (col, want) in [
        ("iface_types", IFACE_TYPES),
        ("datapath_types", DATAPATH_TYPES),
    ] {
        let have = r
            .get("Open_vSwitch", ovs.uuid, col)
            .map(|d| d.strings())
            .unwrap_or_default();
        if have.iter().map(String::as_str).ne(want.iter().copied()) {
            out.push((
                "Open_vSwitch",
                ovs.uuid,
                col,
                Datum::set(want.iter().copied()),
            ));
        }
    }
    let caps: BTreeMap<String, String> = DP_CAPABILITIES
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (uuid, _) in r.rows("Datapath") {
        let have = r
            .get("Datapath", *uuid, "capabilities")
            .map(|d| d.string_map())
            .unwrap_or_default();
        if have != caps {
            out.push((
                "Datapath",
                *uuid,
                "capabilities",
                Datum::map(DP_CAPABILITIES.iter().copied()),
            ));
        }
    }
    out
}

/// The configuration `r` asks for. `known` remembers the OpenFlow port
/// number each interface had (see [`preferred_ofports`]); interfaces no
/// longer in the database are forgotten.
fn plan(
    r: &Replica,
    ovs: &OpenVSwitch,
    known: &mut BTreeMap<String, OfPort>,
    log: &mut LogOnce,
) -> Plan {
    let mut plan = Plan {
        capabilities: capabilities(r, ovs),
        ct_zones: ct_zone_policies(r, ovs, log),
        vlan_limit: vlan_limit(ovs, log),
        ..Plan::default()
    };
    // Tunnel ports by what selects them on receive: two alike are refused,
    // as OVS's `tnl_port_add` refuses them.
    let mut tunnel_matches: BTreeMap<String, String> = BTreeMap::new();
    for buuid in &ovs.bridges {
        let Some(br) = r.bridge(*buuid) else {
            continue;
        };
        if !valid_bridge_name(&br.name) {
            log.warn(format!(
                "database: bridge name {:?} must be 1-15 characters without '/': ignored",
                br.name
            ));
            continue;
        }
        if !plan.bridges.insert(br.name.clone()) {
            log.warn(format!("database: bridge {} listed twice", br.name));
            continue;
        }
        let fail_mode = match br.fail_mode.as_deref() {
            Some("secure") => FailMode::Secure,
            Some("standalone") | None => FailMode::Standalone,
            Some(other) => {
                log.warn(format!(
                    "bridge {}: unknown fail_mode {other:?}, using standalone",
                    br.name
                ));
                FailMode::Standalone
            }
        };
        plan.bridge_rows
            .push((br.uuid, br.name.clone(), br.datapath_id.clone()));
        let mut targets = Vec::new();
        for cuuid in &br.controller {
            if let Some(c) = r.controller(*cuuid) {
                if c.connection_mode.as_deref() == Some("in-band") {
                    log.warn(format!(
                        "bridge {}: controller {}: connection_mode in-band is not supported: \
                         xennetd reaches controllers out-of-band (through the host's routes)",
                        br.name, c.target
                    ));
                }
                targets.push(ControllerConfig::from_columns(
                    &c.target,
                    c.inactivity_probe,
                    c.max_backoff,
                    c.controller_rate_limit,
                    c.controller_burst_limit,
                ));
                plan.controllers.push((
                    c.uuid,
                    br.name.clone(),
                    c.target.clone(),
                    c.is_connected,
                    c.role.clone(),
                ));
            }
        }
        plan.openflow
            .insert(br.name.clone(), (fail_mode, targets, br.protocols.clone()));
        plan.limits.insert(br.name.clone(), limits(ovs, &br, log));
        plan.isolation
            .insert(br.name.clone(), isolation_config(&br, log));
        let host: &str = match ovs.external_ids.get("system-id") {
            Some(s) => s,
            None => crate::identity::host_id(),
        };
        let (id, warnings) = Identity::configured(host, &br.name, &br.other_config);
        warnings.into_iter().for_each(|w| log.warn(w));
        plan.identities.insert(br.name.clone(), id);
        plan.report_not_applied(r, "Bridge", br.uuid, &format!("bridge {}", br.name), log);
        for puuid in &br.ports {
            let Some(port) = r.port(*puuid) else {
                continue;
            };
            let vlan = port_vlan(&port, log);
            plan.report_not_applied(r, "Port", port.uuid, &format!("port {}", port.name), log);
            let bond = bond_refusal(&port, r);
            for iuuid in &port.interfaces {
                let Some(iface) = r.interface(*iuuid) else {
                    continue;
                };
                let iface_not_applied = not_applied(
                    r,
                    "Interface",
                    iface.uuid,
                    &format!("interface {}", iface.name),
                    log,
                );
                let kind = if let Some(e) = &bond {
                    Kind::Bad(e.clone())
                } else if iface.name == br.name {
                    if plan.netdevs.contains_key(&iface.name) {
                        Kind::Bad(format!("xennetd: {} is on more than one port", iface.name))
                    } else {
                        plan.netdevs.insert(
                            iface.name.clone(),
                            (br.name.clone(), Vec::new(), DevKind::Local),
                        );
                        Kind::Local
                    }
                } else if let Some((domid, handle)) = parse_vif(&iface.name) {
                    if !matches!(iface.iface_type.as_str(), "" | "xennet-vif") {
                        Kind::Bad(format!(
                            "xennetd: interface type '{}' is not supported yet",
                            iface.iface_type
                        ))
                    } else if plan.vifs.contains_key(&iface.name) {
                        Kind::Bad(format!("xennetd: {} is on more than one port", iface.name))
                    } else {
                        ignored_rx_ring(&iface, log);
                        plan.vifs.insert(
                            iface.name.clone(),
                            (br.name.clone(), preferred_ofports(&iface, known)),
                        );
                        Kind::Vif { domid, handle }
                    }
                } else if let Some(tk) = match iface.iface_type.as_str() {
                    "vxlan" => Some(xennet_ports::tunnel::TunnelKind::Vxlan),
                    "geneve" => Some(xennet_ports::tunnel::TunnelKind::Geneve),
                    "gre" => Some(xennet_ports::tunnel::TunnelKind::Gre),
                    _ => None,
                } {
                    match xennet_ports::tunnel::config::parse_options(
                        &iface.name,
                        tk,
                        &iface.options,
                    ) {
                        Err(e) => Kind::Bad(e),
                        Ok(_) if plan.netdevs.contains_key(&iface.name) => {
                            Kind::Bad(format!("xennetd: {} is on more than one port", iface.name))
                        }
                        Ok(cfg) => match tunnel_matches.entry(cfg.receive_key()) {
                            std::collections::btree_map::Entry::Occupied(mut other) => {
                                // The one already running keeps its place
                                // (the database lists ports in no order).
                                let holder = other.get().clone();
                                let running = |p: Option<i64>| p.is_some_and(|o| o > 0);
                                let holder_running = plan
                                    .ifaces
                                    .iter()
                                    .any(|p| p.name == holder && running(p.ofport));
                                if running(iface.ofport) && !holder_running {
                                    plan.netdevs.remove(&holder);
                                    if let Some(p) =
                                        plan.ifaces.iter_mut().find(|p| p.name == holder)
                                    {
                                        p.kind = Kind::Bad(format!(
                                            "{holder}: attempting to add tunnel port with same config as port '{}'",
                                            iface.name
                                        ));
                                    }
                                    other.insert(iface.name.clone());
                                    plan.netdevs.insert(
                                        iface.name.clone(),
                                        (
                                            br.name.clone(),
                                            preferred_ofports(&iface, known),
                                            DevKind::Tunnel(cfg),
                                        ),
                                    );
                                    Kind::Netdev
                                } else {
                                    Kind::Bad(format!(
                                        "{}: attempting to add tunnel port with same config as port '{holder}'",
                                        iface.name,
                                    ))
                                }
                            }
                            std::collections::btree_map::Entry::Vacant(v) => {
                                v.insert(iface.name.clone());
                                plan.netdevs.insert(
                                    iface.name.clone(),
                                    (
                                        br.name.clone(),
                                        preferred_ofports(&iface, known),
                                        DevKind::Tunnel(cfg),
                                    ),
                                );
                                Kind::Netdev
                            }
                        },
                    }
                } else if iface.iface_type == "patch" {
                    match xennet_ports::patch::parse_options(&iface.name, &iface.options) {
                        Err(e) => Kind::Bad(e.to_string()),
                        Ok(_) if plan.netdevs.contains_key(&iface.name) => {
                            Kind::Bad(format!("xennetd: {} is on more than one port", iface.name))
                        }
                        Ok(peer) => {
                            plan.netdevs.insert(
                                iface.name.clone(),
                                (
                                    br.name.clone(),
                                    preferred_ofports(&iface, known),
                                    DevKind::Patch { peer },
                                ),
                            );
                            Kind::Netdev
                        }
                    }
                } else if matches!(
                    iface.iface_type.as_str(),
                    "" | "system" | "internal" | "tap"
                ) {
                    let dev = match iface.iface_type.as_str() {
                        "internal" | "tap" => {
                            ignored_rx_ring(&iface, log);
                            DevKind::Tap
                        }
                        _ => DevKind::System {
                            rx_ring: rx_ring_option(&iface, log),
                        },
                    };
                    if plan.netdevs.contains_key(&iface.name) {
                        Kind::Bad(format!("xennetd: {} is on more than one port", iface.name))
                    } else {
                        plan.netdevs.insert(
                            iface.name.clone(),
                            (br.name.clone(), preferred_ofports(&iface, known), dev),
                        );
                        Kind::Netdev
                    }
                } else {
                    let t = match iface.iface_type.as_str() {
                        "" => "system",
                        t => t,
                    };
                    Kind::Bad(format!(
                        "xennetd: interface type '{t}' is not supported yet"
                    ))
                };
                if let Kind::Bad(e) = &kind {
                    log.warn(format!("{}: {e}", iface.name));
                }
                let vlan_error = match (&kind, &vlan) {
                    (Kind::Vif { .. } | Kind::Netdev | Kind::Local, Err(e)) => Some(e.clone()),
                    _ => None,
                };
                if let Kind::Vif { .. } | Kind::Netdev | Kind::Local = kind {
                    let settings = match &vlan {
                        Ok(v) if *v == PortVlan::default() => None,
                        Ok(v) => Some(Some(v.clone())),
                        Err(_) => Some(None),
                    };
                    if let Some(s) = settings {
                        plan.vlans
                            .entry(br.name.clone())
                            .or_default()
                            .insert(iface.name.clone(), s);
                    }
                }
                let allow_dhcp_server = other_config_bool(&iface, "xennet-allow-dhcp-server", log);
                let allow_ra = other_config_bool(&iface, "xennet-allow-ra", log);
                let attached_mac = attached_mac(&iface, log);
                plan.ifaces.push(PlannedIface {
                    uuid: iface.uuid,
                    name: iface.name,
                    bridge: br.name.clone(),
                    kind,
                    ofport: iface.ofport,
                    error: iface.error,
                    link_state: iface.link_state,
                    status: iface.status,
                    policing: (iface.ingress_policing_rate, iface.ingress_policing_burst),
                    statistics: iface.statistics,
                    vlan_error,
                    not_applied: iface_not_applied,
                    port_security: iface
                        .other_config
                        .get("xennet-port-security")
                        .map_or(true, |v| !v.eq_ignore_ascii_case("false")),
                    allow_dhcp_server,
                    allow_ra,
                    attached_mac,
                });
            }
        }
    }
    known.retain(|name, _| plan.ifaces.iter().any(|i| i.name == *name));
    plan.reserved = known.values().copied().collect();
    plan
}

/// Interface `options:rx-ring` of a system device (xennet's own key, see
/// the module doc): true only for `true` (any case), as OVS's
/// `smap_get_bool` with default false; other values than `true` and
/// `false` are logged once.
fn rx_ring_option(iface: &xennet_ovsdb::Interface, log: &mut LogOnce) -> bool {
    match iface.options.get("rx-ring") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) => {
            if !v.eq_ignore_ascii_case("false") {
                log.warn(format!(
                    "{}: options:rx-ring={v:?} is not true or false, receiving through the TPACKET_V2 frame ring",
                    iface.name
                ));
            }
            false
        }
    }
}

/// `options:rx-ring` on an interface that is not a system device (a vif,
/// an internal or tap port) does nothing: say so once.
/// Interface `other_config:KEY` as a boolean: `true` or `false` (any
/// case, as OVS `smap_get_bool` reads them); missing: `None`; another
/// value is logged and read as missing.
fn other_config_bool(
    iface: &xennet_ovsdb::Interface,
    key: &str,
    log: &mut LogOnce,
) -> Option<bool> {
    let v = iface.other_config.get(key)?;
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        log.warn(format!(
            "{}: other_config:{key}={v:?} is neither true nor false; ignored",
            iface.name
        ));
        None
    }
}

/// Interface `external_ids:attached-mac` (written by Xen's
/// `vif-openvswitch` hotplug script, OpenStack, XAPI) if a unicast MAC;
/// another value is logged and read as missing.
fn attached_mac(iface: &xennet_ovsdb::Interface, log: &mut LogOnce) -> Option<[u8; 6]> {
    let v = iface.external_ids.get("attached-mac")?;
    let mac = crate::identity::parse_mac(v.trim()).filter(|m| m[0] & 1 == 0);
    if mac.is_none() {
        log.warn(format!(
            "{}: external_ids:attached-mac={v:?} is not a unicast MAC; ignored",
            iface.name
        ));
    }
    mac
}

fn ignored_rx_ring(iface: &xennet_ovsdb::Interface, log: &mut LogOnce) {
    if iface.options.contains_key("rx-ring") {
        log.warn(format!(
            "{}: options:rx-ring applies only to system devices; ignored",
            iface.name
        ));
    }
}

/// `ofport_request`, else the current `ofport`, when in range.
/// `ofport_request`, then the number the interface had: its `ofport`
/// column, or, once this process has written -1 there (a vif whose guest
/// has not re-attached since a restart), the number `known` remembers
/// from the database or from this process.
fn preferred_ofports(
    iface: &xennet_ovsdb::Interface,
    known: &mut BTreeMap<String, OfPort>,
) -> Vec<OfPort> {
    let valid = |p: i64| {
        OfPort::try_from(p)
            .ok()
            .filter(|p| (1..=MAX_OFPORT).contains(p))
    };
    if let Some(p) = iface.ofport.and_then(valid) {
        known.insert(iface.name.clone(), p);
    }
    iface
        .ofport_request
        .and_then(valid)
        .into_iter()
        .chain(known.get(&iface.name).copied())
        .collect()
}

/// Makes the switch match `plan` (blocking: talks to forwarding threads).
/// Returns why Linux devices could not be attached, by name.
fn apply(
    plan: &Plan,
    switch: &Switch,
    vifs: &mut BTreeMap<String, Attached>,
    log: &mut LogOnce,
) -> BTreeMap<String, String> {
    // Vifs leaving their bridge.
    for (name, a) in vifs.iter_mut() {
        let Some((b, ofport)) = &a.placed else {
            continue;
        };
        let stays = plan.vifs.get(name).is_some_and(|(bn, _)| *bn == b.name);
        if !stays {
            if let Some((entry, port)) = b.take_port(*ofport) {
                a.entry = entry;
                a.port = Some(port);
            }
            a.placed = None;
        }
    }
    // VLAN tags in flow keys: a change makes every cached megaflow stale.
    if xennet_datapath::flow::set_vlan_limit(plan.vlan_limit) {
        tracing::info!(
            "vlan-limit: flow keys hold {} VLAN tag(s)",
            xennet_datapath::flow::vlan_limit()
        );
        for b in switch.bridges() {
            b.of.revalidate();
        }
    }
    // Bridges.
    for name in switch.bridge_names() {
        if !plan.bridges.contains(&name) {
            switch.remove_bridge(&name);
        }
    }
    for name in &plan.bridges {
        let (fail_mode, targets, protocols) = plan.openflow.get(name).cloned().unwrap_or((
            FailMode::Standalone,
            Vec::new(),
            Vec::new(),
        ));
        let id = plan
            .identities
            .get(name)
            .copied()
            .unwrap_or_else(|| Identity::derived(crate::identity::host_id(), name));
        let b = match switch.bridge(name) {
            Some(b) => {
                b.set_identity(id);
                b
            }
            None => match switch.add_bridge(name, fail_mode, id) {
                Ok(b) => {
                    tracing::info!("bridge {name}: created");
                    b
                }
                Err(e) => {
                    log.warn(format!("bridge {name}: {e:#}"));
                    continue;
                }
            },
        };
        for p in b.conns.set_protocols(&protocols) {
            log.warn(format!(
                "bridge {name}: protocols: {p} is not supported (xennet speaks OpenFlow10, OpenFlow13, OpenFlow14 and OpenFlow15)"
            ));
        }
        for (t, why) in b.configure_openflow(fail_mode, &targets) {
            log.warn(format!("bridge {name}: controller {t}: {why}"));
        }
        b.set_limits(&plan.limits.get(name).copied().unwrap_or_default());
    }
    // VLAN settings, for the vifs on a bridge and those about to join.
    for b in switch.bridges() {
        b.configure_vlans(plan.vlans.get(&b.name).cloned().unwrap_or_default());
        b.isolation.configure(
            &b.name,
            plan.isolation.get(&b.name).cloned().unwrap_or_default(),
        );
    }
    // Vifs joining a bridge (not while a restart holds them: see
    // RestartHold). Several at once join together: their bridges read no
    // port until all are there, so that frames one of them queued for
    // another are not flooded before the other's port exists.
    let joining = vifs
        .iter()
        .filter(|(n, a)| a.placed.is_none() && a.port.is_some() && plan.vifs.contains_key(*n))
        .count();
    let paused: Vec<Arc<Bridge>> = match (plan.hold_vifs, joining > 1) {
        (false, true) => switch
            .bridges()
            .into_iter()
            .filter(|b| b.set_paused(true))
            .collect(),
        _ => Vec::new(),
    };
    for (name, a) in vifs.iter_mut().filter(|_| !plan.hold_vifs) {
        if a.placed.is_some() {
            continue;
        }
        let Some((bn, prefs)) = plan.vifs.get(name) else {
            continue;
        };
        let Some(b) = switch.bridge(bn) else {
            continue;
        };
        let Some(port) = a.port.take() else {
            continue;
        };
        let mut prefs = prefs.clone();
        prefs.extend(a.last_ofport);
        match b.add_port_at(a.entry.clone(), port, &prefs, &plan.reserved) {
            Ok(p) => {
                a.placed = Some((b, p));
                a.last_ofport = Some(p);
            }
            Err(e) => log.warn(format!("{name}: {e:#}")),
        }
    }
    for b in paused {
        b.set_paused(false);
    }
    let errors = apply_netdevs(plan, switch, log);
    apply_policing(plan, switch);
    errors
}

/// Interface `other_config:xennet-port-security=false` turns a vif's port
/// security off (a guest that bridges or routes other MACs); removing the
/// key turns it back on. `external_ids:attached-mac` is the MAC checked
/// when the backend has no `mac` key. `xennet-allow-dhcp-server` and `xennet-allow-ra`
/// (`true` or `false`) override the configuration file's guard defaults
/// for the port.
fn apply_port_security(plan: &Plan, vifs: &VifRegistry) {
    let security = vifs.security.lock().unwrap_or_else(|e| e.into_inner());
    for pi in &plan.ifaces {
        if let (Kind::Vif { .. }, Some(s)) = (&pi.kind, security.get(&pi.name)) {
            s.set_enabled(pi.port_security);
            s.set_guard_overrides(pi.allow_dhcp_server, pi.allow_ra);
            s.set_attached_mac(pi.attached_mac);
        }
    }
}

/// Ingress policing (Interface `ingress_policing_rate`/`_burst`) of every
/// port that is on its bridge.
fn apply_policing(plan: &Plan, switch: &Switch) {
    for b in switch.bridges() {
        let entries = b.port_entries();
        for pi in plan.ifaces.iter().filter(|pi| pi.bridge == b.name) {
            let Some((&ofport, _)) = entries.iter().find(|(_, e)| e.name == pi.name) else {
                continue;
            };
            let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
            let (rate, burst) = (clamp(pi.policing.0), clamp(pi.policing.1));
            if b.of.set_ingress_policing(ofport, rate, burst) {
                tracing::info!(
                    "{}: ingress policing of {}: {}",
                    b.name,
                    pi.name,
                    if rate == 0 {
                        "off".to_string()
                    } else {
                        format!("{rate} kbit/s, burst {burst} kbit")
                    }
                );
            }
        }
    }
}

/// Linux devices: detach those no longer planned on their bridge, attach
/// the new ones, re-open those whose `options:rx-ring` changed.
fn apply_netdevs(plan: &Plan, switch: &Switch, log: &mut LogOnce) -> BTreeMap<String, String> {
    let mut errors = BTreeMap::new();
    for b in switch.bridges() {
        let mut present = BTreeSet::new();
        for (ofport, entry) in b.port_entries() {
            if entry.vif.is_some() {
                continue;
            }
            match plan.netdevs.get(&entry.name) {
                Some((bn, _, kind)) if *bn == b.name => {
                    if entry.link.as_ref().map(link_config) != kind.soft_config() {
                        tracing::info!(
                            "{}: {}: type or options changed: re-opening the port",
                            b.name,
                            entry.name
                        );
                        b.del_port(ofport);
                        continue;
                    }
                    if let DevKind::System { rx_ring } = kind {
                        if *rx_ring != entry.rx_ring {
                            tracing::info!(
                                "{}: {}: options:rx-ring is now {rx_ring}: re-opening the port",
                                b.name,
                                entry.name
                            );
                            // Re-added below under the same ofport (the
                            // database's `ofport` column prefers it).
                            b.del_port(ofport);
                            continue;
                        }
                    }
                    present.insert(entry.name);
                }
                _ => b.del_port(ofport),
            }
        }
        for (name, (bn, prefs, kind)) in &plan.netdevs {
            if *bn != b.name || present.contains(name) {
                continue;
            }
            let mut entry = PortEntry {
                name: name.clone(),
                vif: None,
                rx_ring: matches!(kind, DevKind::System { rx_ring: true }),
                security: None,
                link: None,
            };
            let opened: std::io::Result<Box<dyn xennet_datapath::Port>> = match kind {
                DevKind::System { rx_ring } => {
                    crate::netdev::Netdev::open(name, *rx_ring).map(|d| Box::new(d) as _)
                }
                DevKind::Tap => {
                    crate::netdev::Netdev::open_tap(name, None).map(|d| Box::new(d) as _)
                }
                // Every bridge's LOCAL port can be a tunnel underlay.
                DevKind::Local => crate::netdev::Netdev::open_tap(name, Some(b.hwaddr()))
                    .and_then(|d| switch.tunnels.wrap_local(&b.name, Box::new(d), b.hwaddr()))
                    .map(|d| Box::new(d) as _),
                DevKind::Patch { peer } => switch.patches.open(name, peer).map(|p| {
                    entry.link = Some(xennet_ports::SoftLink::Patch(p.link()));
                    Box::new(p) as _
                }),
                DevKind::Tunnel(cfg) => switch
                    .tunnels
                    .open_with_map(
                        name,
                        cfg.clone(),
                        Some(Arc::new(crate::bridge::BridgeGeneveMap::of(&b.of))),
                    )
                    .map(|p| {
                        entry.link = Some(p.link());
                        Box::new(p) as _
                    }),
            };
            let r = opened.map_err(anyhow::Error::from).and_then(|dev| {
                if *kind == DevKind::Local {
                    b.add_local_port(entry, dev)
                } else {
                    b.add_port_at(entry, dev, prefs, &plan.reserved)
                }
            });
            if let Err(e) = r {
                let msg = format!("could not open network device {name} ({e:#})");
                log.warn(format!("bridge {bn}: {msg}"));
                errors.insert(name.clone(), msg);
            }
        }
    }
    errors
}

fn stats_map(s: &PortStats) -> BTreeMap<String, i64> {
    let v = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    [
        ("rx_packets", s.rx_packets),
        ("rx_bytes", s.rx_bytes),
        ("rx_dropped", s.rx_dropped),
        ("rx_errors", s.rx_errors),
        ("tx_packets", s.tx_packets),
        ("tx_bytes", s.tx_bytes),
        ("tx_dropped", s.tx_dropped),
        ("tx_errors", s.tx_errors),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), v(n)))
    .collect()
}

/// The write-back for `plan` after [`apply`]; empty if nothing changed.
fn status_txn(
    switch: &Switch,
    plan: &Plan,
    netdev_errors: &BTreeMap<String, String>,
    ovs: &OpenVSwitch,
    vifs: &BTreeMap<String, Attached>,
    hotplug_errors: &BTreeMap<String, String>,
    with_stats: bool,
) -> Txn {
    let mut txn = Txn::with_lock(LOCK);
    // Every bridge's ports (counters, enabled), asked of its datapath once
    // per transaction, not once per interface: with thousands of vifs a
    // per-interface request (each listing every port) made every refresh
    // quadratic.
    let mut ports: BTreeMap<String, BTreeMap<OfPort, (PortStats, bool)>> = BTreeMap::new();
    let mut port_of = |b: &Arc<Bridge>, p: OfPort| -> Option<(PortStats, bool)> {
        ports
            .entry(b.name.clone())
            .or_insert_with(|| {
                b.port_infos()
                    .into_iter()
                    .map(|i| (i.ofport, (i.stats, i.enabled)))
                    .collect()
            })
            .get(&p)
            .cloned()
    };
    for pi in &plan.ifaces {
        let (ofport, error, mac, placed) = match &pi.kind {
            Kind::Bad(e) => (-1, Some(e.clone()), None, None),
            Kind::Netdev | Kind::Local => {
                let found = switch.bridge(&pi.bridge).and_then(|b| {
                    let p = b
                        .port_entries()
                        .into_iter()
                        .find(|(_, e)| e.vif.is_none() && e.name == pi.name)?
                        .0;
                    Some((b, p))
                });
                match found {
                    Some((b, p)) => {
                        let n = if p == OFPP_LOCAL_DP {
                            OFPP_LOCAL
                        } else {
                            i64::from(p)
                        };
                        // The device's address, as OVS reads it.
                        let mac =
                            std::fs::read_to_string(format!("/sys/class/net/{}/address", pi.name))
                                .ok()
                                .map(|s| s.trim().to_owned())
                                .filter(|s| s.len() == 17);
                        (n, pi.vlan_error.clone(), mac, Some((b, p)))
                    }
                    None => (
                        -1,
                        Some(netdev_errors.get(&pi.name).cloned().unwrap_or_else(|| {
                            format!("could not open network device {}", pi.name)
                        })),
                        None,
                        None,
                    ),
                }
            }
            Kind::Vif { domid, handle } => match vifs.get(&pi.name) {
                Some(Attached {
                    placed: Some((b, p)),
                    ..
                }) if b.name == pi.bridge => (
                    i64::from(*p),
                    pi.vlan_error.clone(),
                    Some(VIF_MAC.to_owned()),
                    Some((b.clone(), *p)),
                ),
                Some(_) => (
                    -1,
                    Some(if plan.hold_vifs {
                        format!(
                            "xennetd restarted: {} waits for the other vifs to re-attach",
                            pi.name
                        )
                    } else {
                        format!(
                            "xennetd: could not add {} to bridge {} (see the xennetd log)",
                            pi.name, pi.bridge
                        )
                    }),
                    None,
                    None,
                ),
                None => (
                    -1,
                    Some(match hotplug_errors.get(&pi.name) {
                        Some(why) => format!("hotplug script failed: {why}"),
                        None => format!(
                            "no such vif: waiting for domain {domid} handle {handle} to attach"
                        ),
                    }),
                    None,
                    None,
                ),
            },
        };
        let mut cols = Vec::new();
        if pi.ofport != Some(ofport) || pi.error != error {
            cols.push(("ofport", Datum::optional(Some(ofport))));
            cols.push(("error", Datum::optional(error.as_deref())));
            cols.push(("mac_in_use", Datum::optional(mac.as_deref())));
        }
        if with_stats {
            if let Some((b, p)) = &placed {
                if let Some((s, _)) = port_of(b, *p) {
                    let m = stats_map(&s);
                    if m != pi.statistics {
                        cols.push((
                            "statistics",
                            Datum::map(m.iter().map(|(k, v)| (k.as_str(), *v))),
                        ));
                    }
                }
            }
        }
        // link_state: whether the port is up in the datapath (a vif whose
        // frontend was disabled for misbehaving is down).
        let link = placed.as_ref().map(|(b, p)| {
            let up = port_of(b, *p).is_some_and(|(_, enabled)| enabled) && b.port_link_up(*p);
            if up {
                "up"
            } else {
                "down"
            }
        });
        if pi.link_state.as_deref() != link {
            cols.push(("link_state", Datum::optional(link)));
        }
        // status: what drives the interface (OVS fills driver_name etc.),
        // and the settings xennet does not apply.
        let mut status: BTreeMap<String, String> = match (&pi.kind, &placed) {
            (Kind::Vif { domid, handle }, Some(_)) => [
                ("driver_name", "xennet-netback".to_string()),
                ("xen_domid", domid.to_string()),
                ("xen_handle", handle.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            (Kind::Netdev | Kind::Local, Some(_)) => {
                let driver = match plan.netdevs.get(&pi.name) {
                    Some((_, _, DevKind::System { .. })) => "af_packet",
                    _ => "tun",
                };
                [("driver_name".to_string(), driver.to_string())]
                    .into_iter()
                    .collect()
            }
            _ => BTreeMap::new(),
        };
        if !pi.not_applied.is_empty() {
            status.insert(NOT_APPLIED_KEY.to_owned(), pi.not_applied.join(","));
        }
        if status != pi.status {
            cols.push((
                "status",
                Datum::map(status.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            ));
        }
        if !cols.is_empty() {
            txn.update("Interface", pi.uuid, cols);
        }
    }
    for (uuid, name, old) in &plan.bridge_rows {
        let dpid = switch
            .bridge(name)
            .map(|b| format!("{:016x}", b.of.datapath_id()));
        if dpid.is_some() && *old != dpid {
            txn.update(
                "Bridge",
                *uuid,
                vec![("datapath_id", Datum::optional(dpid))],
            );
        }
    }
    for (table, uuid, col, value) in &plan.capabilities {
        txn.update(table, *uuid, vec![(*col, value.clone())]);
    }
    for (table, uuid, status) in &plan.row_status {
        txn.update(
            table,
            *uuid,
            vec![(
                "status",
                Datum::map(status.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            )],
        );
    }
    for (uuid, bridge, target, was_connected, old_role) in &plan.controllers {
        let Some(status) = switch
            .bridge(bridge)
            .and_then(|b| b.conns.controller_status().remove(target))
        else {
            continue;
        };
        if status.is_connected != *was_connected || old_role.as_deref() != Some(status.role) {
            txn.update(
                "Controller",
                *uuid,
                vec![
                    ("is_connected", Datum::from(Atom::from(status.is_connected))),
                    ("role", Datum::optional(Some(status.role))),
                ],
            );
        }
    }
    if ovs.next_cfg != ovs.cur_cfg {
        txn.cur_cfg(ovs.uuid, ovs.next_cfg);
    }
    txn
}

/// How long vifs that were on a bridge before a restart wait for each
/// other before any of them forwards ([`RestartHold`]).
pub const RESTART_HOLD: Duration = Duration::from_secs(5);

/// After a restart, the vifs whose Interfaces had an ofport (they were on
/// a bridge under the previous xennetd) join their bridges together: until
/// every one of them has re-attached, or [`RESTART_HOLD`] has passed, none
/// joins. A guest that comes back first keeps what it queued in its TX
/// ring (the backend does not read a ring it does not serve) instead of
/// having it flooded to a bridge where its peers are not back yet, so
/// frames queued during the restart reach peers that come back in time.
#[derive(Debug)]
struct RestartHold {
    until: Instant,
    /// The vifs waited for, from the first plan; `None` before it.
    expected: Option<BTreeSet<String>>,
    over: bool,
}

impl RestartHold {
    fn new() -> Self {
        RestartHold {
            until: Instant::now() + RESTART_HOLD,
            expected: None,
            over: false,
        }
    }

    /// Whether vifs must not join their bridges yet, given the first plan
    /// and the vifs attached now. Once false, false for good.
    fn holds(&mut self, plan: &Plan, attached: &BTreeMap<String, Attached>) -> bool {
        if self.over {
            return false;
        }
        let expected = self.expected.get_or_insert_with(|| {
            plan.ifaces
                .iter()
                .filter(|i| matches!(i.kind, Kind::Vif { .. }) && i.ofport.is_some_and(|p| p > 0))
                .map(|i| i.name.clone())
                .collect()
        });
        let missing: Vec<&String> = expected
            .iter()
            .filter(|n| !attached.contains_key(*n))
            .collect();
        if missing.is_empty() {
            if !expected.is_empty() {
                tracing::info!(
                    "restart: the {} vifs that were on bridges are back; forwarding",
                    expected.len()
                );
            }
        } else if Instant::now() >= self.until {
            tracing::warn!(
                "restart: {} not back after {RESTART_HOLD:?}; the others forward without them",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        } else {
            return true;
        }
        self.over = true;
        false
    }
}

/// Reconciles until the session ends. `session` must have been started
/// with the [`LOCK`] lock.
pub async fn run(session: Session, switch: Arc<Switch>, vifs: Arc<VifRegistry>) {
    let mut changes = session.subscribe();
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut log = LogOnce::default();
    let mut known_ofports = BTreeMap::new();
    let mut hold = RestartHold::new();
    let mut retry = false;
    let mut last_write_error: Option<Instant> = None;
    let mut had_lock = false;
    let mut applied_ct_zones = BTreeMap::new();
    loop {
        let poll = retry || !had_lock;
        let with_stats = tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                false
            }
            _ = vifs.changed.notified() => false,
            _ = crate::isolation::changed().notified() => false,
            _ = tick.tick() => true,
            _ = tokio::time::sleep(RETRY), if poll => false,
            _ = tokio::time::sleep_until(hold.until.into()), if !hold.over => false,
        };
        let has_lock = session.has_lock();
        if has_lock != had_lock {
            if has_lock {
                tracing::info!("database: acquired lock {LOCK}, configuring from the database");
            } else {
                tracing::info!("database: lost lock {LOCK} (or the connection)");
            }
            had_lock = has_lock;
        }
        if !has_lock {
            continue;
        }
        let replica = session.replica();
        let Some(ovs) = replica.open_vswitch() else {
            log.info("database: no Open_vSwitch row yet (ovs-vsctl init makes it)".into());
            continue;
        };
        let mut plan = plan(&replica, &ovs, &mut known_ofports, &mut log);
        let txn = tokio::task::block_in_place(|| {
            let mut attached = vifs.lock();
            plan.hold_vifs = hold.holds(&plan, &attached);
            apply_port_security(&plan, &vifs);
            apply_ct_zones(&plan.ct_zones, &switch, &mut applied_ct_zones);
            let netdev_errors = apply(&plan, &switch, &mut attached, &mut log);
            isolation_status(&mut plan, &replica, &switch);
            let hotplug_errors = vifs
                .hotplug_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            status_txn(
                &switch,
                &plan,
                &netdev_errors,
                &ovs,
                &attached,
                &hotplug_errors,
                with_stats,
            )
        });
        if txn.is_empty() {
            retry = false;
            continue;
        }
        match session.transact(txn.into_ops()).await {
            Ok(_) => retry = false,
            Err(e) => {
                if last_write_error.map_or(true, |t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("database: writing the switch's status: {e}");
                    last_write_error = Some(Instant::now());
                }
                retry = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_names() {
        assert_eq!(parse_vif("vif1.0"), Some((1, 0)));
        assert_eq!(parse_vif("vif32752.3"), None);
        assert_eq!(parse_vif("vif7.12"), Some((7, 12)));
        for bad in [
            "vif1",
            "vif.0",
            "vif1.",
            "vifa.0",
            "vif+1.0",
            "eth0",
            "vif99999999.0",
        ] {
            assert_eq!(parse_vif(bad), None, "{bad}");
        }
    }

    /// `other_config:vlan-limit` as OVS reads it: default 1, 0 or less
    /// for as many as the key holds, larger than 2 logged and taken as 2,
    /// not a number logged and taken as the default.
    #[test]
    fn vlan_limit_setting() {
        use serde_json::json;
        for (v, want, logged) in [
            (None, 1, false),
            (Some("1"), 1, false),
            (Some("2"), 2, false),
            (Some("0"), 0, false),
            (Some("-3"), 0, false),
            (Some("5"), 2, true),
            (Some("two"), 1, true),
        ] {
            let mut r = Replica::with_schema(xennet_ovsdb::Schema::vswitch_subset());
            let oc = match v {
                Some(v) => json!(["map", [["vlan-limit", v]]]),
                None => json!(["map", []]),
            };
            r.apply_update(&json!({
                "Open_vSwitch": {"00000000-0000-0000-0000-000000000001": {"new": {
                    "other_config": oc
                }}}
            }))
            .unwrap();
            let ovs = r.open_vswitch().unwrap();
            let mut log = LogOnce::default();
            assert_eq!(vlan_limit(&ovs, &mut log), want, "{v:?}");
            assert_eq!(
                log.0.iter().any(|l| l.contains("vlan-limit")),
                logged,
                "{v:?}: {:?}",
                log.0
            );
        }
    }

    /// `ovs-vsctl add-zone-tp netdev zone=5 ...`'s rows: zone 5's policy
    /// has the given keys and OVS's defaults for the rest; a key the
    /// userspace tracker has no timeout for is refused and logged; zone 6
    /// (no policy) gets the default; a datapath type xennet has not is
    /// logged and skipped.
    #[test]
    fn ct_zone_timeout_policies() {
        use serde_json::json;
        let mut r = Replica::with_schema(xennet_ovsdb::Schema::vswitch_subset());
        let u = |n: u8| format!("00000000-0000-0000-0000-0000000000{n:02x}");
        r.apply_update(&json!({
            "Open_vSwitch": {u(1): {"new": {
                "datapaths": ["map", [["netdev", ["uuid", u(2)]], ["dpdk", ["uuid", u(6)]]]]
            }}},
            "Datapath": {
                u(2): {"new": {"ct_zones": ["map", [
                    [5, ["uuid", u(3)]], [6, ["uuid", u(5)]]
                ]]}},
                u(6): {"new": {"ct_zones": ["map", [[9, ["uuid", u(5)]]]]}}
            },
            "CT_Zone": {
                u(3): {"new": {"timeout_policy": ["uuid", u(4)]}},
                u(5): {"new": {}}
            },
            "CT_Timeout_Policy": {u(4): {"new": {"timeouts": ["map", [
                ["udp_first", 7], ["icmp_reply", 3], ["tcp_unack", 9]
            ]]}}}
        }))
        .unwrap();
        let ovs = r.open_vswitch().unwrap();
        let mut log = LogOnce::default();
        let got = ct_zone_policies(&r, &ovs, &mut log);
        let five = TimeoutPolicy {
            udp_first: 7,
            icmp_reply: 3,
            ..TimeoutPolicy::default()
        };
        assert_eq!(
            got,
            BTreeMap::from([(5, five), (6, TimeoutPolicy::default())])
        );
        assert!(
            log.0
                .iter()
                .any(|m| m.contains("zone 5: timeout tcp_unack is not supported")),
            "{:?}",
            log.0
        );
        assert!(log.0.iter().any(|m| m.contains("\"dpdk\"")), "{:?}", log.0);

        let switch = Switch::empty(std::path::Path::new("/nonexistent"));
        let mut applied = BTreeMap::new();
        apply_ct_zones(&got, &switch, &mut applied);
        assert_eq!(switch.conntrack().zone_timeout_policy(5), five);
        apply_ct_zones(&BTreeMap::new(), &switch, &mut applied);
        assert_eq!(
            switch.conntrack().zone_timeout_policy(5),
            TimeoutPolicy::default()
        );
    }

    #[test]
    fn port_vlan_settings_and_errors() {
        let port = |tag: Option<i64>, trunks: &[i64], mode: Option<&str>| xennet_ovsdb::Port {
            uuid: Uuid::nil(),
            name: "vif3.0".into(),
            interfaces: vec![],
            tag,
            trunks: trunks.to_vec(),
            vlan_mode: mode.map(str::to_owned),
            qos: None,
            external_ids: BTreeMap::new(),
        };
        let mut log = LogOnce::default();
        assert_eq!(
            port_vlan(&port(Some(10), &[], None), &mut log),
            Ok(PortVlan::access(10))
        );
        let v = port_vlan(&port(Some(10), &[20], None), &mut log).unwrap();
        assert!(v.ignores_trunks());
        assert!(log.0.iter().any(|m| m.contains("ignoring trunks")));
        let e = port_vlan(&port(None, &[], Some("dot1q-tunnel")), &mut log).unwrap_err();
        assert!(
            e.starts_with("xennetd: port vif3.0: vlan_mode \"dot1q-tunnel\" is not supported")
                && e.ends_with("the port forwards nothing until its VLAN settings are fixed"),
            "{e}"
        );
        let e = port_vlan(&port(Some(5000), &[], None), &mut log).unwrap_err();
        assert!(e.contains("tag 5000 is not a VLAN ID (0 to 4095)"), "{e}");
    }
}
