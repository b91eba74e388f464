//! Database schemas (RFC 7047 §3.2), reduced to what a client needs to
//! interpret datums: each column's type (`key`, optional `value`, `min`,
//! `max`). Constraints such as `enum` or `minInteger` are the server's
//! business and are not kept.
//!
//! [`Schema::vswitch_subset`] is a built-in copy of the columns xennet
//! monitors, taken from Open vSwitch 3.1's `vswitch.ovsschema` (8.3.1), so a
//! [`crate::Replica`] works without fetching the 26 KB schema first.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::datum::{Atom, Datum};
use crate::error::DatumError;

/// The five atomic types (RFC 7047 §3.2 `<atomic-type>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    /// `"integer"`: 64-bit signed.
    Integer,
    /// `"real"`: IEEE double.
    Real,
    /// `"boolean"`.
    Boolean,
    /// `"string"`: UTF-8.
    String,
    /// `"uuid"`: a row reference or plain UUID.
    Uuid,
}

impl AtomicType {
    fn parse(v: &Value) -> Result<Self, DatumError> {
        Ok(match v.as_str() {
            Some("integer") => AtomicType::Integer,
            Some("real") => AtomicType::Real,
            Some("boolean") => AtomicType::Boolean,
            Some("string") => AtomicType::String,
            Some("uuid") => AtomicType::Uuid,
            _ => return Err(DatumError::new("atomic type", v)),
        })
    }

    /// The default atom of this type (RFC 7047 §5.1: 0, 0.0, false, "",
    /// all-zero UUID).
    pub fn default_atom(self) -> Atom {
        match self {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(crate::datum::Uuid::nil()),
        }
    }
}

/// `<base-type>` without constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseType {
    /// Atomic type.
    pub atomic: AtomicType,
    /// `refTable` for UUIDs.
    pub ref_table: Option<String>,
}

impl BaseType {
    fn parse(v: &Value) -> Result<Self, DatumError> {
        match v {
            Value::String(_) => Ok(BaseType {
                atomic: AtomicType::parse(v)?,
                ref_table: None,
            }),
            Value::Object(o) => Ok(BaseType {
                atomic: AtomicType::parse(o.get("type").unwrap_or(&Value::Null))?,
                ref_table: o.get("refTable").and_then(Value::as_str).map(str::to_owned),
            }),
            _ => Err(DatumError::new("base type", v)),
        }
    }
}

/// How a column's values are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Exactly one atom (`min` = `max` = 1, no `value`).
    Scalar,
    /// A set of atoms (anything else without `value`), including optional
    /// columns (`min` 0, `max` 1). See [`ColumnType::is_composite`] for what
    /// `modify` carries.
    Set,
    /// A map (`value` present).
    Map,
}

/// `<type>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    /// Key (or only) type.
    pub key: BaseType,
    /// Value type, for maps.
    pub value: Option<BaseType>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements; `None` for `"unlimited"`.
    pub max: Option<u64>,
}

impl ColumnType {
    /// A scalar of the given type.
    pub fn scalar(atomic: AtomicType) -> Self {
        ColumnType {
            key: BaseType {
                atomic,
                ref_table: None,
            },
            value: None,
            min: 1,
            max: Some(1),
        }
    }

    /// Parses the `"type"` member of a column schema.
    pub fn parse(v: &Value) -> Result<Self, DatumError> {
        match v {
            Value::String(_) => Ok(ColumnType::scalar(AtomicType::parse(v)?)),
            Value::Object(o) => {
                let key = BaseType::parse(o.get("key").ok_or_else(|| DatumError::new("type", v))?)?;
                let value = o.get("value").map(BaseType::parse).transpose()?;
                let min = match o.get("min") {
                    None => 1,
                    Some(m) => m.as_u64().ok_or_else(|| DatumError::new("type min", m))?,
                };
                let max = match o.get("max") {
                    None => Some(1),
                    Some(Value::String(s)) if s == "unlimited" => None,
                    Some(m) => Some(m.as_u64().ok_or_else(|| DatumError::new("type max", m))?),
                };
                Ok(ColumnType {
                    key,
                    value,
                    min,
                    max,
                })
            }
            _ => Err(DatumError::new("type", v)),
        }
    }

    /// Scalar, set or map.
    pub fn kind(&self) -> ColumnKind {
        if self.value.is_some() {
            ColumnKind::Map
        } else if self.min == 1 && self.max == Some(1) {
            ColumnKind::Scalar
        } else {
            ColumnKind::Set
        }
    }

    /// True if the column can hold more than one element (`max` > 1). Only
    /// such columns carry a difference in an update2 `modify`; for the
    /// others (scalars and optional values, `max` 1) it holds the new value,
    /// as ovsdb-server's `ovsdb_datum_diff` does for non-composite types.
    pub fn is_composite(&self) -> bool {
        !matches!(self.max, Some(m) if m <= 1)
    }

    /// The column's default value, which update2/update3 rows omit: the
    /// type's default atom for scalars, the empty set or map otherwise.
    pub fn default_datum(&self) -> Datum {
        match self.kind() {
            ColumnKind::Scalar => Datum::Scalar(self.key.atomic.default_atom()),
            ColumnKind::Set => Datum::Set(Default::default()),
            ColumnKind::Map => Datum::Map(Default::default()),
        }
    }
}

/// A table: its columns' types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSchema {
    /// Column name → type.
    pub columns: BTreeMap<String, ColumnType>,
}

/// A database schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Database name.
    pub name: String,
    /// Schema version, e.g. `"8.3.1"`.
    pub version: String,
    /// Table name → table.
    pub tables: BTreeMap<String, TableSchema>,
}

impl Schema {
    /// Parses a `<database-schema>` (the `get_schema` result).
    pub fn parse(v: &Value) -> Result<Self, DatumError> {
        let tables_json = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| DatumError::new("schema", v))?;
        let mut tables = BTreeMap::new();
        for (tname, t) in tables_json {
            let cols = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| DatumError::new("table schema", t))?;
            let mut columns = BTreeMap::new();
            for (cname, c) in cols {
                let ty = c
                    .get("type")
                    .ok_or_else(|| DatumError::new("column schema", c))?;
                columns.insert(cname.clone(), ColumnType::parse(ty)?);
            }
            tables.insert(tname.clone(), TableSchema { columns });
        }
        Ok(Schema {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            version: v
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            tables,
        })
    }

    /// The columns of `Open_vSwitch` that xennet uses (see
    /// [`crate::replica::MONITORED`]), with types from OVS 3.1's schema.
    pub fn vswitch_subset() -> Self {
        let v: Value = serde_json::from_str(VSWITCH_SUBSET).expect("built-in schema is valid JSON");
        Schema::parse(&v).expect("built-in schema is valid")
    }

    /// Type of `table.column`, if known.
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnType> {
        self.tables.get(table)?.columns.get(column)
    }
}

/// Extract of `/usr/share/openvswitch/vswitch.ovsschema` (OVS 3.1.0, schema
/// 8.3.1): the tables and columns in [`crate::replica::MONITORED`].
const VSWITCH_SUBSET: &str = r#"
{"name": "Open_vSwitch", "version": "8.3.1", "tables": {
  "Bridge": {"columns": {
    "auto_attach": {"type":{"key":{"refTable":"AutoAttach","type":"uuid"},"max":1,"min":0}},
    "controller": {"type":{"key":{"refTable":"Controller","type":"uuid"},"max":"unlimited","min":0}},
    "datapath_id": {"ephemeral":true,"type":{"key":"string","max":1,"min":0}},
    "datapath_type": {"type":"string"},
    "external_ids": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "fail_mode": {"type":{"key":{"enum":["set",["standalone","secure"]],"type":"string"},"max":1,"min":0}},
    "flood_vlans": {"type":{"key":{"maxInteger":4095,"minInteger":0,"type":"integer"},"max":4096,"min":0}},
    "flow_tables": {"type":{"key":{"maxInteger":254,"minInteger":0,"type":"integer"},"max":"unlimited","min":0,"value":{"refTable":"Flow_Table","type":"uuid"}}},
    "ipfix": {"type":{"key":{"refTable":"IPFIX","type":"uuid"},"max":1,"min":0}},
    "mcast_snooping_enable": {"type":"boolean"},
    "mirrors": {"type":{"key":{"refTable":"Mirror","type":"uuid"},"max":"unlimited","min":0}},
    "name": {"mutable":false,"type":"string"},
    "netflow": {"type":{"key":{"refTable":"NetFlow","type":"uuid"},"max":1,"min":0}},
    "other_config": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "ports": {"type":{"key":{"refTable":"Port","type":"uuid"},"max":"unlimited","min":0}},
    "protocols": {"type":{"key":{"enum":["set",["OpenFlow10","OpenFlow11","OpenFlow12","OpenFlow13","OpenFlow14","OpenFlow15"]],"type":"string"},"max":"unlimited","min":0}},
    "rstp_enable": {"type":"boolean"},
    "sflow": {"type":{"key":{"refTable":"sFlow","type":"uuid"},"max":1,"min":0}},
    "status": {"ephemeral":true,"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "stp_enable": {"type":"boolean"}
  }},
  "Controller": {"columns": {
    "controller_rate_limit": {"type":{"key":{"minInteger":100,"type":"integer"},"max":1,"min":0}},
    "controller_burst_limit": {"type":{"key":{"minInteger":25,"type":"integer"},"max":1,"min":0}},
    "connection_mode": {"type":{"key":{"enum":["set",["in-band","out-of-band"]],"type":"string"},"max":1,"min":0}},
    "inactivity_probe": {"type":{"key":"integer","max":1,"min":0}},
    "is_connected": {"ephemeral":true,"type":"boolean"},
    "max_backoff": {"type":{"key":{"minInteger":1000,"type":"integer"},"max":1,"min":0}},
    "role": {"ephemeral":true,"type":{"key":{"enum":["set",["other","master","slave"]],"type":"string"},"max":1,"min":0}},
    "target": {"type":"string"}
  }},
  "CT_Timeout_Policy": {"columns": {
    "timeouts": {"type":{"key":{"enum":["set",["tcp_syn_sent","tcp_syn_recv","tcp_established","tcp_fin_wait","tcp_close_wait","tcp_last_ack","tcp_time_wait","tcp_close","tcp_syn_sent2","tcp_retransmit","tcp_unack","udp_first","udp_single","udp_multiple","icmp_first","icmp_reply"]],"type":"string"},"max":"unlimited","min":0,"value":{"maxInteger":4294967295,"minInteger":0,"type":"integer"}}}
  }},
  "CT_Zone": {"columns": {
    "timeout_policy": {"type":{"key":{"refTable":"CT_Timeout_Policy","type":"uuid"},"max":1,"min":0}}
  }},
  "Datapath": {"columns": {
    "capabilities": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "ct_zones": {"type":{"key":{"maxInteger":65535,"minInteger":0,"type":"integer"},"max":"unlimited","min":0,"value":{"refTable":"CT_Zone","type":"uuid"}}}
  }},
  "Interface": {"columns": {
    "bfd": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "cfm_mpid": {"type":{"key":{"type":"integer"},"max":1,"min":0}},
    "error": {"type":{"key":"string","max":1,"min":0}},
    "external_ids": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "ingress_policing_burst": {"type":{"key":{"minInteger":0,"type":"integer"}}},
    "ingress_policing_kpkts_burst": {"type":{"key":{"minInteger":0,"type":"integer"}}},
    "ingress_policing_kpkts_rate": {"type":{"key":{"minInteger":0,"type":"integer"}}},
    "ingress_policing_rate": {"type":{"key":{"minInteger":0,"type":"integer"}}},
    "link_state": {"ephemeral":true,"type":{"key":{"enum":["set",["up","down"]],"type":"string"},"max":1,"min":0}},
    "lldp": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "mac": {"type":{"key":{"type":"string"},"max":1,"min":0}},
    "mtu_request": {"type":{"key":{"minInteger":1,"type":"integer"},"max":1,"min":0}},
    "name": {"mutable":false,"type":"string"},
    "ofport": {"type":{"key":"integer","max":1,"min":0}},
    "ofport_request": {"type":{"key":{"maxInteger":65279,"minInteger":1,"type":"integer"},"max":1,"min":0}},
    "options": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "other_config": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "statistics": {"ephemeral":true,"type":{"key":"string","max":"unlimited","min":0,"value":"integer"}},
    "status": {"ephemeral":true,"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "type": {"type":"string"}
  }},
  "Open_vSwitch": {"columns": {
    "bridges": {"type":{"key":{"refTable":"Bridge","type":"uuid"},"max":"unlimited","min":0}},
    "cur_cfg": {"type":"integer"},
    "datapath_types": {"type":{"key":{"type":"string"},"max":"unlimited","min":0}},
    "datapaths": {"type":{"key":{"type":"string"},"max":"unlimited","min":0,"value":{"refTable":"Datapath","type":"uuid"}}},
    "external_ids": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "iface_types": {"type":{"key":{"type":"string"},"max":"unlimited","min":0}},
    "next_cfg": {"type":"integer"},
    "other_config": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}}
  }},
  "Port": {"columns": {
    "bond_downdelay": {"type":"integer"},
    "bond_fake_iface": {"type":"boolean"},
    "bond_mode": {"type":{"key":{"enum":["set",["balance-tcp","balance-slb","active-backup"]],"type":"string"},"max":1,"min":0}},
    "bond_updelay": {"type":"integer"},
    "cvlans": {"type":{"key":{"maxInteger":4095,"minInteger":0,"type":"integer"},"max":4096,"min":0}},
    "external_ids": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "fake_bridge": {"type":"boolean"},
    "interfaces": {"type":{"key":{"refTable":"Interface","type":"uuid"},"max":"unlimited","min":1}},
    "lacp": {"type":{"key":{"enum":["set",["active","passive","off"]],"type":"string"},"max":1,"min":0}},
    "name": {"mutable":false,"type":"string"},
    "protected": {"type":"boolean"},
    "qos": {"type":{"key":{"refTable":"QoS","type":"uuid"},"max":1,"min":0}},
    "status": {"ephemeral":true,"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "tag": {"type":{"key":{"maxInteger":4095,"minInteger":0,"type":"integer"},"max":1,"min":0}},
    "trunks": {"type":{"key":{"maxInteger":4095,"minInteger":0,"type":"integer"},"max":4096,"min":0}},
    "vlan_mode": {"type":{"key":{"enum":["set",["trunk","access","native-tagged","native-untagged","dot1q-tunnel"]],"type":"string"},"max":1,"min":0}}
  }},
  "QoS": {"columns": {
    "other_config": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}},
    "queues": {"type":{"key":{"maxInteger":4294967295,"minInteger":0,"type":"integer"},"max":"unlimited","min":0,"value":{"refTable":"Queue","type":"uuid"}}},
    "type": {"type":"string"}
  }},
  "Queue": {"columns": {
    "dscp": {"type":{"key":{"maxInteger":63,"minInteger":0,"type":"integer"},"max":1,"min":0}},
    "other_config": {"type":{"key":"string","max":"unlimited","min":0,"value":"string"}}
  }}
}}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds() {
        let s = Schema::vswitch_subset();
        assert_eq!(s.column("Port", "tag").unwrap().kind(), ColumnKind::Set);
        assert!(!s.column("Port", "tag").unwrap().is_composite());
        assert!(s.column("Port", "trunks").unwrap().is_composite());
        assert!(s.column("Bridge", "ports").unwrap().is_composite());
        assert!(!s.column("Bridge", "name").unwrap().is_composite());
        assert_eq!(s.column("Port", "name").unwrap().kind(), ColumnKind::Scalar);
        assert_eq!(
            s.column("Interface", "statistics").unwrap().kind(),
            ColumnKind::Map
        );
        assert_eq!(s.column("Port", "trunks").unwrap().max, Some(4096));
        assert_eq!(s.column("Bridge", "ports").unwrap().max, None);
        assert_eq!(
            s.column("Bridge", "ports")
                .unwrap()
                .key
                .ref_table
                .as_deref(),
            Some("Port")
        );
        assert_eq!(
            s.column("Open_vSwitch", "cur_cfg").unwrap().default_datum(),
            Datum::Scalar(Atom::Integer(0))
        );
    }

    #[test]
    fn subset_matches_recorded_full_schema() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ovsdb-monitor.server-to-client.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("recorded OVSDB traffic in tests/data");
        let reply: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        let full = Schema::parse(&reply["result"]).unwrap();
        assert_eq!(full.version, "8.3.1");
        let sub = Schema::vswitch_subset();
        for (t, ts) in &sub.tables {
            for (c, ty) in &ts.columns {
                assert_eq!(full.column(t, c), Some(ty), "{t}.{c}");
            }
        }
        assert!(ColumnType::parse(&json!({"key": "string", "min": 2})).is_ok());
        assert!(ColumnType::parse(&json!({"key": "blob"})).is_err());
    }
}
