//! An in-memory replica of the `Open_vSwitch` tables xennet uses.
//!
//! Rows are stored generically (table → UUID → column → [`Datum`]) holding
//! only the columns the server sent: `update2`/`update3` `initial` and
//! `insert` omit columns at their default value, so reads go through the
//! schema and fill defaults in ([`Replica::get`]). Typed views
//! ([`Replica::bridges`], [`Replica::ports`], ...) are built on top.
//!
//! Updates are applied exactly as RFC 7047 §4.1.6 (`update`: `new` is the
//! whole monitored row, no `new` means deleted) and the OVS `update2`/
//! `update3` extension (ovsdb-server(7)): `initial`/`insert` rows replace,
//! `modify` applies columns that can hold several elements (`max` > 1) as a
//! difference ([`Datum::apply_diff`]) and replaces the others (scalars and
//! optional values such as `Port.tag`, `Interface.ofport`: the new value,
//! `["set",[]]` when cleared), `delete` removes. Columns missing from the
//! schema are guessed from the JSON: `["set",..]`/`["map",..]` diff, a bare
//! atom replaces.
//!
//! An update that fails to parse may leave the replica partly updated; the
//! [`crate::Session`] treats that as fatal and resynchronises from scratch.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::datum::{Datum, Uuid};
use crate::error::Error;
use crate::schema::Schema;

/// The tables and columns xennet monitors.
pub const MONITORED: &[(&str, &[&str])] = &[
    (
        "Open_vSwitch",
        &[
            "bridges",
            "cur_cfg",
            "next_cfg",
            "other_config",
            "external_ids",
            "iface_types",
            "datapath_types",
            "datapaths",
        ],
    ),
    (
        "Bridge",
        &[
            "name",
            "ports",
            "controller",
            "fail_mode",
            "datapath_id",
            "datapath_type",
            "protocols",
            "other_config",
            "external_ids",
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
            "status",
        ],
    ),
    (
        "Port",
        &[
            "name",
            "interfaces",
            "tag",
            "trunks",
            "vlan_mode",
            "qos",
            "external_ids",
            "bond_mode",
            "lacp",
            "cvlans",
            "protected",
            "fake_bridge",
            "status",
            "bond_updelay",
            "bond_downdelay",
            "bond_fake_iface",
        ],
    ),
    (
        "Interface",
        &[
            "name",
            "type",
            "options",
            "ofport",
            "ofport_request",
            "external_ids",
            "ingress_policing_rate",
            "ingress_policing_burst",
            "link_state",
            "mac",
            "error",
            "status",
            "statistics",
            "other_config",
            "mtu_request",
            "bfd",
            "cfm_mpid",
            "lldp",
            "ingress_policing_kpkts_rate",
            "ingress_policing_kpkts_burst",
        ],
    ),
    (
        "Controller",
        &[
            "target",
            "role",
            "is_connected",
            "connection_mode",
            "inactivity_probe",
            "max_backoff",
            "controller_rate_limit",
            "controller_burst_limit",
        ],
    ),
    ("QoS", &["type", "queues", "other_config"]),
    ("Queue", &["other_config", "dscp"]),
    ("Datapath", &["capabilities", "ct_zones"]),
    ("CT_Zone", &["timeout_policy"]),
    ("CT_Timeout_Policy", &["timeouts"]),
];

/// The `<monitor-requests>` object for [`MONITORED`]:
/// `{"Bridge":[{"columns":[...]}], ...}`, valid for `monitor`,
/// `monitor_cond` and `monitor_cond_since`.
pub fn monitor_request() -> Value {
    let mut m = Map::new();
    for (table, cols) in MONITORED {
        m.insert((*table).to_owned(), json!([{ "columns": cols }]));
    }
    Value::Object(m)
}

/// Which monitor method produced an update, hence its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMethod {
    /// `monitor_cond_since` (replies `[found, last_txn_id, updates2]`,
    /// notifications `update3`).
    CondSince,
    /// `monitor_cond` (`<table-updates2>`, notifications `update2`).
    Cond,
    /// RFC 7047 `monitor` (`<table-updates>`, notifications `update`).
    Plain,
}

/// One row: column → value, default-valued columns possibly absent.
pub type Row = BTreeMap<String, Datum>;

/// The replica.
#[derive(Debug, Clone)]
pub struct Replica {
    schema: Schema,
    tables: BTreeMap<String, BTreeMap<Uuid, Row>>,
    last_txn_id: Option<String>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica::new()
    }
}

fn proto(msg: impl Into<String>) -> Error {
    Error::Protocol(msg.into())
}

fn parse_uuid_key(s: &str) -> Result<Uuid, Error> {
    Ok(s.parse::<Uuid>()?)
}

impl Replica {
    /// An empty replica using [`Schema::vswitch_subset`].
    pub fn new() -> Self {
        Replica::with_schema(Schema::vswitch_subset())
    }

    /// An empty replica interpreting columns with `schema`.
    pub fn with_schema(schema: Schema) -> Self {
        Replica {
            schema,
            tables: BTreeMap::new(),
            last_txn_id: None,
        }
    }

    /// The schema in use.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Forgets every row (and the last transaction id).
    pub fn clear(&mut self) {
        self.tables.clear();
        self.last_txn_id = None;
    }

    /// The last transaction id seen in a `monitor_cond_since` reply or an
    /// `update3`, to pass to `monitor_cond_since` after a reconnect.
    pub fn last_txn_id(&self) -> Option<&str> {
        self.last_txn_id.as_deref()
    }

    /// Every row of `table`.
    pub fn rows(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.tables.get(table).into_iter().flat_map(|t| t.iter())
    }

    /// Number of rows in `table`.
    pub fn len(&self, table: &str) -> usize {
        self.tables.get(table).map_or(0, BTreeMap::len)
    }

    /// True if no table has rows.
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(BTreeMap::is_empty)
    }

    /// The stored columns of one row.
    pub fn row(&self, table: &str, uuid: Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(&uuid)
    }

    /// A column of an existing row, its schema default if absent. `None` if
    /// the row does not exist, or the column is absent and not in the schema.
    pub fn get(&self, table: &str, uuid: Uuid, column: &str) -> Option<Cow<'_, Datum>> {
        let row = self.row(table, uuid)?;
        match row.get(column) {
            Some(d) => Some(Cow::Borrowed(d)),
            None => Some(Cow::Owned(
                self.schema.column(table, column)?.default_datum(),
            )),
        }
    }

    fn parse_datum(&self, table: &str, column: &str, v: &Value) -> Result<Datum, Error> {
        Ok(Datum::from_json(v, self.schema.column(table, column))?)
    }

    fn parse_row(&self, table: &str, v: &Value) -> Result<Row, Error> {
        let obj = v
            .as_object()
            .ok_or_else(|| proto(format!("{table} row is not an object: {v}")))?;
        obj.iter()
            .map(|(c, d)| Ok((c.clone(), self.parse_datum(table, c, d)?)))
            .collect()
    }

    fn each_row_update(updates: &Value) -> Result<Vec<(&str, &str, &Value)>, Error> {
        let tables = updates
            .as_object()
            .ok_or_else(|| proto(format!("table-updates not an object: {updates}")))?;
        let mut out = Vec::new();
        for (t, rows) in tables {
            let rows = rows
                .as_object()
                .ok_or_else(|| proto(format!("{t} updates not an object")))?;
            for (u, ru) in rows {
                out.push((t.as_str(), u.as_str(), ru));
            }
        }
        Ok(out)
    }

    /// Applies RFC 7047 `<table-updates>` (a `monitor` reply or an `update`
    /// notification's second parameter).
    pub fn apply_update(&mut self, updates: &Value) -> Result<(), Error> {
        for (table, uuid, ru) in Self::each_row_update(updates)? {
            let uuid = parse_uuid_key(uuid)?;
            match ru.get("new") {
                Some(new) if !new.is_null() => {
                    let row = self.parse_row(table, new)?;
                    self.tables
                        .entry(table.to_owned())
                        .or_default()
                        .insert(uuid, row);
                }
                _ => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.remove(&uuid);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies `<table-updates2>` (a `monitor_cond` reply, the third element
    /// of a `monitor_cond_since` reply, or an `update2`/`update3` notification).
    pub fn apply_update2(&mut self, updates: &Value) -> Result<(), Error> {
        for (table, uuid_s, ru) in Self::each_row_update(updates)? {
            let uuid = parse_uuid_key(uuid_s)?;
            let obj = ru
                .as_object()
                .ok_or_else(|| proto(format!("row-update2 not an object: {ru}")))?;
            let (op, body) = match obj.iter().next() {
                Some(x) if obj.len() == 1 => x,
                _ => return Err(proto(format!("row-update2 must have one member: {ru}"))),
            };
            match op.as_str() {
                "initial" | "insert" => {
                    let row = self.parse_row(table, body)?;
                    self.tables
                        .entry(table.to_owned())
                        .or_default()
                        .insert(uuid, row);
                }
                "delete" => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.remove(&uuid);
                    }
                }
                "modify" => {
                    let cols = body
                        .as_object()
                        .ok_or_else(|| proto(format!("modify not an object: {body}")))?;
                    let mut changes = Vec::with_capacity(cols.len());
                    for (c, v) in cols {
                        changes.push((c, self.parse_datum(table, c, v)?));
                    }
                    let composite: Vec<bool> = changes
                        .iter()
                        .map(|(c, d)| match self.schema.column(table, c) {
                            Some(t) => t.is_composite(),
                            None => !matches!(d, Datum::Scalar(_)),
                        })
                        .collect();
                    let row = self
                        .tables
                        .get_mut(table)
                        .and_then(|t| t.get_mut(&uuid))
                        .ok_or_else(|| proto(format!("modify of unknown row {table} {uuid_s}")))?;
                    for ((c, d), composite) in changes.into_iter().zip(composite) {
                        if composite {
                            let cur = row.entry(c.clone()).or_insert_with(|| match d {
                                Datum::Map(_) => Datum::Map(BTreeMap::new()),
                                _ => Datum::empty_set(),
                            });
                            cur.apply_diff(&d)?;
                        } else {
                            row.insert(c.clone(), d);
                        }
                    }
                }
                other => return Err(proto(format!("unknown row-update2 member {other:?}"))),
            }
        }
        Ok(())
    }

    /// Loads a monitor reply: clears the replica unless it is a
    /// `monitor_cond_since` reply with `found` true (then the reply holds
    /// only changes since our last transaction id), then applies it.
    pub fn apply_monitor_reply(
        &mut self,
        method: MonitorMethod,
        result: &Value,
    ) -> Result<(), Error> {
        match method {
            MonitorMethod::Plain => {
                self.clear();
                self.apply_update(result)
            }
            MonitorMethod::Cond => {
                self.clear();
                self.apply_update2(result)
            }
            MonitorMethod::CondSince => {
                let a = result
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .ok_or_else(|| proto(format!("monitor_cond_since result: {result}")))?;
                let found = a[0].as_bool().unwrap_or(false);
                if !found {
                    self.clear();
                }
                self.apply_update2(&a[2])?;
                self.last_txn_id = a[1].as_str().map(str::to_owned);
                Ok(())
            }
        }
    }

    /// Applies an `update3` notification: `<table-updates2>` and the id of
    /// the transaction that produced them.
    pub fn apply_update3(&mut self, last_txn_id: &str, updates: &Value) -> Result<(), Error> {
        self.apply_update2(updates)?;
        self.last_txn_id = Some(last_txn_id.to_owned());
        Ok(())
    }

    /// Applies a server notification. Returns `Ok(true)` for `update`,
    /// `update2` and `update3`, `Ok(false)` for other methods (ignored).
    pub fn apply_notification(&mut self, method: &str, params: &Value) -> Result<bool, Error> {
        let p = |i: usize| {
            params
                .get(i)
                .ok_or_else(|| proto(format!("{method} params: {params}")))
        };
        match method {
            "update" => self.apply_update(p(1)?).map(|()| true),
            "update2" => self.apply_update2(p(1)?).map(|()| true),
            "update3" => {
                let id = p(1)?
                    .as_str()
                    .ok_or_else(|| proto(format!("update3 txn id: {params}")))?;
                self.apply_update3(id, p(2)?).map(|()| true)
            }
            _ => Ok(false),
        }
    }

    fn view(&self, table: &'static str, uuid: Uuid) -> Option<View<'_>> {
        Some(View {
            replica: self,
            table,
            uuid,
            row: self.row(table, uuid)?,
        })
    }

    fn views(&self, table: &'static str) -> impl Iterator<Item = View<'_>> {
        self.rows(table).map(move |(u, row)| View {
            replica: self,
            table,
            uuid: *u,
            row,
        })
    }

    /// The `Open_vSwitch` row (there is one).
    pub fn open_vswitch(&self) -> Option<OpenVSwitch> {
        self.views("Open_vSwitch").next().map(|v| v.into())
    }

    /// All bridges, by name.
    pub fn bridges(&self) -> Vec<Bridge> {
        let mut v: Vec<Bridge> = self.views("Bridge").map(Into::into).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One bridge.
    pub fn bridge(&self, uuid: Uuid) -> Option<Bridge> {
        self.view("Bridge", uuid).map(Into::into)
    }

    /// The bridge named `name`.
    pub fn bridge_by_name(&self, name: &str) -> Option<Bridge> {
        self.bridges().into_iter().find(|b| b.name == name)
    }

    /// All ports, by name.
    pub fn ports(&self) -> Vec<Port> {
        let mut v: Vec<Port> = self.views("Port").map(Into::into).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One port.
    pub fn port(&self, uuid: Uuid) -> Option<Port> {
        self.view("Port", uuid).map(Into::into)
    }

    /// The port named `name`.
    pub fn port_by_name(&self, name: &str) -> Option<Port> {
        self.ports().into_iter().find(|p| p.name == name)
    }

    /// All interfaces, by name.
    pub fn interfaces(&self) -> Vec<Interface> {
        let mut v: Vec<Interface> = self.views("Interface").map(Into::into).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One interface.
    pub fn interface(&self, uuid: Uuid) -> Option<Interface> {
        self.view("Interface", uuid).map(Into::into)
    }

    /// The interface named `name`.
    pub fn interface_by_name(&self, name: &str) -> Option<Interface> {
        self.interfaces().into_iter().find(|i| i.name == name)
    }

    /// All controllers.
    pub fn controllers(&self) -> Vec<Controller> {
        self.views("Controller").map(Into::into).collect()
    }

    /// One controller.
    pub fn controller(&self, uuid: Uuid) -> Option<Controller> {
        self.view("Controller", uuid).map(Into::into)
    }

    /// All QoS rows.
    pub fn qoses(&self) -> Vec<Qos> {
        self.views("QoS").map(Into::into).collect()
    }

    /// One QoS row.
    pub fn qos(&self, uuid: Uuid) -> Option<Qos> {
        self.view("QoS", uuid).map(Into::into)
    }

    /// All queues.
    pub fn queues(&self) -> Vec<Queue> {
        self.views("Queue").map(Into::into).collect()
    }

    /// One queue.
    pub fn queue(&self, uuid: Uuid) -> Option<Queue> {
        self.view("Queue", uuid).map(Into::into)
    }
}

/// A row with defaults from the schema.
struct View<'a> {
    replica: &'a Replica,
    table: &'static str,
    uuid: Uuid,
    row: &'a Row,
}

impl View<'_> {
    fn get(&self, col: &str) -> Cow<'_, Datum> {
        match self.row.get(col) {
            Some(d) => Cow::Borrowed(d),
            None => Cow::Owned(
                self.replica
                    .schema
                    .column(self.table, col)
                    .map_or_else(Datum::empty_set, |t| t.default_datum()),
            ),
        }
    }
    fn string(&self, col: &str) -> String {
        self.get(col).as_str().unwrap_or_default().to_owned()
    }
    fn opt_string(&self, col: &str) -> Option<String> {
        self.get(col).as_str().map(str::to_owned)
    }
    fn int(&self, col: &str) -> i64 {
        self.get(col).as_i64().unwrap_or_default()
    }
    fn opt_int(&self, col: &str) -> Option<i64> {
        self.get(col).as_i64()
    }
    fn uuids(&self, col: &str) -> Vec<Uuid> {
        self.get(col).uuids()
    }
    fn smap(&self, col: &str) -> BTreeMap<String, String> {
        self.get(col).string_map()
    }
}

/// The `Open_vSwitch` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenVSwitch {
    /// Row UUID.
    pub uuid: Uuid,
    /// Bridges.
    pub bridges: Vec<Uuid>,
    /// Configuration generation the switch has applied.
    pub cur_cfg: i64,
    /// Configuration generation requested by clients.
    pub next_cfg: i64,
    /// `other_config`.
    pub other_config: BTreeMap<String, String>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

impl From<View<'_>> for OpenVSwitch {
    fn from(v: View<'_>) -> Self {
        OpenVSwitch {
            uuid: v.uuid,
            bridges: v.uuids("bridges"),
            cur_cfg: v.int("cur_cfg"),
            next_cfg: v.int("next_cfg"),
            other_config: v.smap("other_config"),
            external_ids: v.smap("external_ids"),
        }
    }
}

/// A `Bridge` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// Row UUID.
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Ports.
    pub ports: Vec<Uuid>,
    /// Controllers.
    pub controller: Vec<Uuid>,
    /// `standalone` or `secure`.
    pub fail_mode: Option<String>,
    /// Datapath id, 16 hex digits (written by the switch).
    pub datapath_id: Option<String>,
    /// Datapath type (`""` = default).
    pub datapath_type: String,
    /// Allowed OpenFlow versions (empty = default).
    pub protocols: Vec<String>,
    /// `other_config`.
    pub other_config: BTreeMap<String, String>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

impl From<View<'_>> for Bridge {
    fn from(v: View<'_>) -> Self {
        Bridge {
            uuid: v.uuid,
            name: v.string("name"),
            ports: v.uuids("ports"),
            controller: v.uuids("controller"),
            fail_mode: v.opt_string("fail_mode"),
            datapath_id: v.opt_string("datapath_id"),
            datapath_type: v.string("datapath_type"),
            protocols: v.get("protocols").strings(),
            other_config: v.smap("other_config"),
            external_ids: v.smap("external_ids"),
        }
    }
}

/// A `Port` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Row UUID.
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Interfaces (one unless bonded).
    pub interfaces: Vec<Uuid>,
    /// Access VLAN.
    pub tag: Option<i64>,
    /// Trunked VLANs (empty = all).
    pub trunks: Vec<i64>,
    /// `access`, `trunk`, `native-tagged`, ...
    pub vlan_mode: Option<String>,
    /// QoS row.
    pub qos: Option<Uuid>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

impl From<View<'_>> for Port {
    fn from(v: View<'_>) -> Self {
        Port {
            uuid: v.uuid,
            name: v.string("name"),
            interfaces: v.uuids("interfaces"),
            tag: v.opt_int("tag"),
            trunks: v.get("trunks").integers(),
            vlan_mode: v.opt_string("vlan_mode"),
            qos: v.get("qos").as_uuid(),
            external_ids: v.smap("external_ids"),
        }
    }
}

/// An `Interface` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Row UUID.
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// `type` (`""` = system, `internal`, `tap`, `patch`, ...).
    pub iface_type: String,
    /// `options`.
    pub options: BTreeMap<String, String>,
    /// OpenFlow port number assigned by the switch (-1 on failure).
    pub ofport: Option<i64>,
    /// Requested OpenFlow port number.
    pub ofport_request: Option<i64>,
    /// `external_ids` (e.g. `attached-mac`, `iface-id`, `xs-vm-uuid`).
    pub external_ids: BTreeMap<String, String>,
    /// `other_config` (xennet reads `xennet-port-security`).
    pub other_config: BTreeMap<String, String>,
    /// Policing rate, kbit/s (0 = off).
    pub ingress_policing_rate: i64,
    /// Policing burst, kbit.
    pub ingress_policing_burst: i64,
    /// Requested MAC.
    pub mac: Option<String>,
    /// Error message set by the switch.
    pub error: Option<String>,
    /// `up` or `down` (written by the switch).
    pub link_state: Option<String>,
    /// `status`.
    pub status: BTreeMap<String, String>,
    /// `statistics`.
    pub statistics: BTreeMap<String, i64>,
}

impl From<View<'_>> for Interface {
    fn from(v: View<'_>) -> Self {
        Interface {
            uuid: v.uuid,
            name: v.string("name"),
            iface_type: v.string("type"),
            options: v.smap("options"),
            ofport: v.opt_int("ofport"),
            ofport_request: v.opt_int("ofport_request"),
            external_ids: v.smap("external_ids"),
            other_config: v.smap("other_config"),
            ingress_policing_rate: v.int("ingress_policing_rate"),
            ingress_policing_burst: v.int("ingress_policing_burst"),
            mac: v.opt_string("mac"),
            error: v.opt_string("error"),
            link_state: v.opt_string("link_state"),
            status: v.smap("status"),
            statistics: v.get("statistics").integer_map(),
        }
    }
}

/// A `Controller` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Row UUID.
    pub uuid: Uuid,
    /// e.g. `tcp:127.0.0.1:6653`, `ptcp:6653`.
    pub target: String,
    /// `master`, `slave`, `other`.
    pub role: Option<String>,
    /// Connected (written by the switch).
    pub is_connected: bool,
    /// `in-band`/`out-of-band`.
    pub connection_mode: Option<String>,
    /// Inactivity probe, ms.
    pub inactivity_probe: Option<i64>,
    /// Max reconnect backoff, ms.
    pub max_backoff: Option<i64>,
    /// Packet-ins per second at most.
    pub controller_rate_limit: Option<i64>,
    /// Packet-in burst, packets.
    pub controller_burst_limit: Option<i64>,
}

impl From<View<'_>> for Controller {
    fn from(v: View<'_>) -> Self {
        Controller {
            uuid: v.uuid,
            target: v.string("target"),
            role: v.opt_string("role"),
            is_connected: v.get("is_connected").as_bool().unwrap_or(false),
            connection_mode: v.opt_string("connection_mode"),
            inactivity_probe: v.opt_int("inactivity_probe"),
            max_backoff: v.opt_int("max_backoff"),
            controller_rate_limit: v.opt_int("controller_rate_limit"),
            controller_burst_limit: v.opt_int("controller_burst_limit"),
        }
    }
}

/// A `QoS` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qos {
    /// Row UUID.
    pub uuid: Uuid,
    /// `type` (e.g. `linux-htb`, `egress-policer`).
    pub qos_type: String,
    /// Queue number → Queue row.
    pub queues: BTreeMap<i64, Uuid>,
    /// `other_config`.
    pub other_config: BTreeMap<String, String>,
}

impl From<View<'_>> for Qos {
    fn from(v: View<'_>) -> Self {
        let queues = match &*v.get("queues") {
            Datum::Map(m) => m
                .iter()
                .filter_map(|(k, u)| Some((k.as_i64()?, u.as_uuid()?)))
                .collect(),
            _ => BTreeMap::new(),
        };
        Qos {
            uuid: v.uuid,
            qos_type: v.string("type"),
            queues,
            other_config: v.smap("other_config"),
        }
    }
}

/// A `Queue` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Row UUID.
    pub uuid: Uuid,
    /// `other_config` (`min-rate`, `max-rate`, ...).
    pub other_config: BTreeMap<String, String>,
    /// DSCP to mark.
    pub dscp: Option<i64>,
}

impl From<View<'_>> for Queue {
    fn from(v: View<'_>) -> Self {
        Queue {
            uuid: v.uuid,
            other_config: v.smap("other_config"),
            dscp: v.opt_int("dscp"),
        }
    }
}

#[cfg(test)]
#[path = "replica_tests.rs"]
mod tests;
