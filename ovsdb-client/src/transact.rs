//! Building `transact` operations (RFC 7047 §5.2) and reading their results.
//!
//! ```
//! use xennet_ovsdb::{Datum, Txn, Uuid};
//! let ovs: Uuid = "042d67fa-f050-41a2-bbd8-cdf6ad2fa133".parse().unwrap();
//! let iface: Uuid = "e613bdcd-4bf2-4d0b-ae07-db6ebf691736".parse().unwrap();
//! let mut txn = Txn::with_lock("ovs_vswitchd");
//! txn.update(
//!     "Interface",
//!     iface,
//!     [("ofport", Datum::set([1])), ("statistics", Datum::map([("rx_packets", 0)]))],
//! )
//! .update("Open_vSwitch", ovs, [("cur_cfg", Datum::Scalar(2.into()))]);
//! let ops = txn.into_ops();
//! assert_eq!(ops.len(), 3);
//! assert_eq!(ops[2], serde_json::json!({"op": "assert", "lock": "ovs_vswitchd"}));
//! ```

use serde_json::{json, Map, Value};

use crate::datum::{Datum, Uuid};
use crate::error::TxnError;

/// `["_uuid", "==", ["uuid", <uuid>]]`.
pub fn where_uuid(uuid: Uuid) -> Value {
    json!(["_uuid", "==", uuid.to_json()])
}

/// `[<column>, <function>, <value>]`, e.g. `cond("name", "==", &"br0".into())`.
pub fn cond(column: &str, function: &str, value: &Datum) -> Value {
    json!([column, function, value.to_json()])
}

/// `[<column>, <mutator>, <value>]`, e.g. `mutation("next_cfg", "+=", &1.into())`.
pub fn mutation(column: &str, mutator: &str, value: &Datum) -> Value {
    json!([column, mutator, value.to_json()])
}

fn row_json<'a>(cols: impl IntoIterator<Item = (&'a str, Datum)>) -> Value {
    let mut m = Map::new();
    for (c, d) in cols {
        m.insert(c.to_owned(), d.to_json());
    }
    Value::Object(m)
}

/// An ordered list of operations for one `transact`.
///
/// A transaction built with [`Txn::with_lock`] ends with
/// `{"op":"assert","lock":NAME}`, as ovs-vswitchd adds to each of its
/// writes, so it aborts with `"not owner"` unless this client holds the lock.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    ops: Vec<Value>,
    lock: Option<String>,
    comment: Option<String>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Txn::default()
    }

    /// An empty transaction that asserts ownership of `lock`.
    pub fn with_lock(lock: &str) -> Self {
        Txn {
            lock: Some(lock.to_owned()),
            ..Txn::default()
        }
    }

    /// Appends a raw operation.
    pub fn op(&mut self, op: Value) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// `insert`; `uuid_name` lets later operations refer to the new row as
    /// `["named-uuid", uuid_name]` ([`crate::Atom::NamedUuid`]).
    pub fn insert<'a>(
        &mut self,
        table: &str,
        uuid_name: Option<&str>,
        row: impl IntoIterator<Item = (&'a str, Datum)>,
    ) -> &mut Self {
        let mut op = json!({"op": "insert", "table": table, "row": row_json(row)});
        if let Some(n) = uuid_name {
            op["uuid-name"] = json!(n);
        }
        self.op(op)
    }

    /// `update` of one row by UUID.
    pub fn update<'a>(
        &mut self,
        table: &str,
        uuid: Uuid,
        row: impl IntoIterator<Item = (&'a str, Datum)>,
    ) -> &mut Self {
        self.update_where(table, vec![where_uuid(uuid)], row)
    }

    /// `update` of the rows matching `conditions`.
    pub fn update_where<'a>(
        &mut self,
        table: &str,
        conditions: Vec<Value>,
        row: impl IntoIterator<Item = (&'a str, Datum)>,
    ) -> &mut Self {
        self.op(json!({"op": "update", "table": table, "where": conditions, "row": row_json(row)}))
    }

    /// `mutate` (see [`mutation`]).
    pub fn mutate(
        &mut self,
        table: &str,
        conditions: Vec<Value>,
        mutations: Vec<Value>,
    ) -> &mut Self {
        self.op(
            json!({"op": "mutate", "table": table, "where": conditions, "mutations": mutations}),
        )
    }

    /// `delete`.
    pub fn delete(&mut self, table: &str, conditions: Vec<Value>) -> &mut Self {
        self.op(json!({"op": "delete", "table": table, "where": conditions}))
    }

    /// `select`; `columns` `None` selects all.
    pub fn select(
        &mut self,
        table: &str,
        conditions: Vec<Value>,
        columns: Option<&[&str]>,
    ) -> &mut Self {
        let mut op = json!({"op": "select", "table": table, "where": conditions});
        if let Some(c) = columns {
            op["columns"] = json!(c);
        }
        self.op(op)
    }

    /// `wait` until the selected `columns` of the rows matching `conditions`
    /// are (`until` `"=="`) or are not (`"!="`) exactly `rows`; `timeout` 0
    /// makes it an optimistic-concurrency check, as ovs-vsctl uses it.
    pub fn wait(
        &mut self,
        table: &str,
        conditions: Vec<Value>,
        columns: &[&str],
        until: &str,
        rows: Vec<Value>,
        timeout_ms: Option<u64>,
    ) -> &mut Self {
        let mut op = json!({"op": "wait", "table": table, "where": conditions,
            "columns": columns, "until": until, "rows": rows});
        if let Some(t) = timeout_ms {
            op["timeout"] = json!(t);
        }
        self.op(op)
    }

    /// `{"op":"assert","lock":lock}` at this point.
    pub fn assert_lock(&mut self, lock: &str) -> &mut Self {
        self.op(json!({"op": "assert", "lock": lock}))
    }

    /// A `comment` op (logged by the server), added at the end.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        self.comment = Some(text.to_owned());
        self
    }

    /// Number of operations so far (without the lock assertion and comment).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if no operations were added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, with the lock assertion and comment appended.
    pub fn into_ops(self) -> Vec<Value> {
        let mut ops = self.ops;
        if let Some(l) = self.lock {
            ops.push(json!({"op": "assert", "lock": l}));
        }
        if let Some(c) = self.comment {
            ops.push(json!({"op": "comment", "comment": c}));
        }
        ops
    }

    /// Write-back of what a switch reports for one interface: `ofport`
    /// (`None` writes `[]`; OVS writes -1 on failure), `error` (`None` clears
    /// it), and optionally the whole `statistics` map.
    pub fn interface_status(
        &mut self,
        iface: Uuid,
        ofport: Option<i64>,
        error: Option<&str>,
        statistics: Option<&std::collections::BTreeMap<String, i64>>,
    ) -> &mut Self {
        let mut cols = vec![
            ("ofport", Datum::optional(ofport)),
            ("error", Datum::optional(error)),
        ];
        if let Some(s) = statistics {
            cols.push((
                "statistics",
                Datum::map(s.iter().map(|(k, v)| (k.as_str(), *v))),
            ));
        }
        self.update("Interface", iface, cols)
    }

    /// `Open_vSwitch.cur_cfg := cur_cfg` (tells waiting `ovs-vsctl`s that
    /// configuration generation `cur_cfg` is applied).
    pub fn cur_cfg(&mut self, ovs: Uuid, cur_cfg: i64) -> &mut Self {
        self.update(
            "Open_vSwitch",
            ovs,
            [("cur_cfg", Datum::Scalar(cur_cfg.into()))],
        )
    }
}

/// Checks `transact` results (RFC 7047 §5.2.1): the first result holding
/// an `"error"`, or a trailing extra result (a commit failure), becomes a
/// [`TxnError`].
pub fn check_results(n_ops: usize, results: Vec<Value>) -> Result<Vec<Value>, TxnError> {
    let bad = results.iter().enumerate().find_map(|(i, r)| {
        let e = r.get("error")?;
        if e.is_null() {
            return None;
        }
        Some((
            i,
            e.as_str().unwrap_or("error").to_owned(),
            r.get("details").and_then(Value::as_str).map(str::to_owned),
        ))
    });
    if let Some((index, error, details)) = bad {
        return Err(TxnError {
            index,
            error,
            details,
            results,
        });
    }
    if results.len() > n_ops {
        return Err(TxnError {
            index: n_ops,
            error: "unexpected extra result".into(),
            details: Some(results[n_ops].to_string()),
            results,
        });
    }
    Ok(results)
}

/// The UUID an `insert` result reports (`{"uuid":["uuid","..."]}`).
pub fn inserted_uuid(result: &Value) -> Option<Uuid> {
    Datum::from_json(result.get("uuid")?, None).ok()?.as_uuid()
}

/// The `count` of an `update`/`mutate`/`delete` result.
pub fn count(result: &Value) -> Option<u64> {
    result.get("count")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Atom;

    fn captured_ops(line: usize) -> Vec<Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/vswitchd-db.vswitchd-to-server.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("recorded OVSDB traffic in tests/data");
        let msg: Value = serde_json::from_str(text.lines().nth(line).unwrap()).unwrap();
        msg["params"].as_array().unwrap()[1..].to_vec()
    }

    #[test]
    fn builds_what_vswitchd_sent_for_cur_cfg() {
        // Line 11: {"op":"update","table":"Open_vSwitch",...,"row":{"cur_cfg":3}}, assert lock.
        let ovs = "042d67fa-f050-41a2-bbd8-cdf6ad2fa133".parse().unwrap();
        let mut t = Txn::with_lock("ovs_vswitchd");
        t.cur_cfg(ovs, 3);
        assert_eq!(t.into_ops(), captured_ops(11));
    }

    #[test]
    fn builds_interface_status() {
        let iface: Uuid = "e613bdcd-4bf2-4d0b-ae07-db6ebf691736".parse().unwrap();
        let stats = [("rx_bytes".to_owned(), 0), ("tx_packets".to_owned(), 5)]
            .into_iter()
            .collect();
        let mut t = Txn::with_lock("ovs_vswitchd");
        t.interface_status(iface, Some(1), None, Some(&stats))
            .comment("xennet");
        let ops = t.into_ops();
        assert_eq!(
            ops[0],
            json!({"op": "update", "table": "Interface",
                   "where": [["_uuid", "==", ["uuid", "e613bdcd-4bf2-4d0b-ae07-db6ebf691736"]]],
                   "row": {"ofport": 1, "error": ["set", []],
                           "statistics": ["map", [["rx_bytes", 0], ["tx_packets", 5]]]}})
        );
        assert_eq!(ops[2], json!({"op": "comment", "comment": "xennet"}));
    }

    #[test]
    fn insert_with_named_uuid_and_mutate() {
        let mut t = Txn::new();
        t.insert(
            "Port",
            Some("p"),
            [("name", Datum::Scalar("vif1.0".into()))],
        )
        .mutate(
            "Bridge",
            vec![cond("name", "==", &Datum::Scalar("br0".into()))],
            vec![mutation(
                "ports",
                "insert",
                &Datum::set([Atom::NamedUuid("p".into())]),
            )],
        );
        let ops = t.into_ops();
        assert_eq!(ops[0]["uuid-name"], json!("p"));
        assert_eq!(
            ops[1]["mutations"],
            json!([["ports", "insert", ["named-uuid", "p"]]])
        );
    }

    #[test]
    fn result_errors() {
        let ok = check_results(2, vec![json!({"count": 1}), json!({})]).unwrap();
        assert_eq!(count(&ok[0]), Some(1));
        let e = check_results(
            2,
            vec![
                json!({"count": 1}),
                json!({"error": "not owner", "details": "Asserted lock ovs_vswitchd not held."}),
            ],
        )
        .unwrap_err();
        assert_eq!((e.index, e.error.as_str()), (1, "not owner"));
        let e = check_results(
            1,
            vec![
                json!({}),
                json!({"error": "referential integrity violation"}),
            ],
        )
        .unwrap_err();
        assert_eq!(e.index, 1);
        assert_eq!(
            inserted_uuid(&json!({"uuid": ["uuid", "8fe435c2-f652-4ca7-a6dc-89c881259637"]}))
                .unwrap()
                .to_string(),
            "8fe435c2-f652-4ca7-a6dc-89c881259637"
        );
    }
}
