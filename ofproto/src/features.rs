//! OpenFlow table features (`OFPMP_TABLE_FEATURES`, OpenFlow 1.3.5
//! §7.3.5.5): what xennet's tables support, and table-features *set*
//! requests handled as OVS `handle_table_features_change`
//! (`ofproto/ofproto.c`) does for a switch that cannot change its
//! features:
//!
//! - the request lists every table, each once (OpenFlow 1.3 replaces the
//!   whole pipeline), with every required property and no unknown one;
//! - `max_entries` is read-only;
//! - each table may ask for a subset of what it supports
//!   (`ofputil_table_features_are_superset`): instructions, next tables,
//!   actions, set-fields, match and wildcard fields; xennet keeps
//!   supporting everything (OpenFlow allows a superset to stay enabled);
//! - table names are taken (shown in later features replies, 1.0 table
//!   stats and `ovs-ofctl dump-tables`); an empty name restores the
//!   default, `table<N>`.
//!
//! Errors: `OFPTFFC_BAD_TABLE` for table 255 (`OFPTT_ALL`) or a table given
//! twice (OVS sends the Nicira `NXTFFC_DUP_TABLE`, which xennet does not
//! encode); `OFPTFFC_BAD_TYPE` for an unknown property (experimenter ones
//! included, as OVS's strict decoding); `OFPTFFC_EPERM` for anything else
//! xennet cannot do: a missing table or one beyond the last, a missing or
//! repeated property (OVS: the 1.5-only `OFPTFFC_BAD_FEATURES`), another
//! `max_entries`, a feature not supported.

use std::collections::BTreeSet;

use xennet_openflow::model::{OxmField, TableFeatureProp, TableFeatures};
use xennet_openflow::oxm::{self, Flavor};
use xennet_openflow::OfError;

/// `OFPTT_ALL`.
const OFPTT_ALL: u8 = 0xff;

/// Instruction types every table supports: goto-table, write-metadata,
/// write-, apply- and clear-actions, meter (`ofp_instruction_type` 1-6).
const INSTRUCTIONS: [u16; 6] = [1, 2, 3, 4, 5, 6];
/// Action types every table supports (`ofp_action_type`): output,
/// push/pop VLAN, set-queue, group, set/dec TTL, set-field.
const ACTIONS: [u16; 8] = [0, 17, 18, 21, 22, 23, 24, 25];

/// The name table `t` has when none was set.
pub fn default_name(t: u8) -> String {
    format!("table{t}")
}

/// The features of tables `0..names.len()`, named `names`, holding at most
/// `max_entries` flows each: every table takes every instruction, action
/// and field xennet implements and may go to any later table.
pub fn table_features(names: &[String], max_entries: u32) -> Vec<TableFeatures> {
    let n = u8::try_from(names.len()).unwrap_or(u8::MAX);
    let headers = |keep: &dyn Fn(&OxmField) -> bool| -> Vec<u32> {
        OxmField::ALL
            .iter()
            .filter(|f| keep(f))
            .map(|f| oxm::header(*f, Flavor::Oxm, false))
            .collect()
    };
    let fields = headers(&|_| true);
    let wildcards = headers(&|f| *f != OxmField::InPort);
    let set_fields = headers(&|f| f.is_writable());
    names
        .iter()
        .zip(0..n)
        .map(|(name, t)| {
            let tables: Vec<u8> = (t.saturating_add(1)..n).collect();
            let mut properties: Vec<TableFeatureProp> = [false, true]
                .into_iter()
                .flat_map(|miss| {
                    [
                        TableFeatureProp::Instructions {
                            miss,
                            ids: INSTRUCTIONS.to_vec(),
                        },
                        TableFeatureProp::NextTables {
                            miss,
                            tables: tables.clone(),
                        },
                        TableFeatureProp::WriteActions {
                            miss,
                            ids: ACTIONS.to_vec(),
                        },
                        TableFeatureProp::ApplyActions {
                            miss,
                            ids: ACTIONS.to_vec(),
                        },
                        TableFeatureProp::WriteSetField {
                            miss,
                            fields: set_fields.clone(),
                        },
                        TableFeatureProp::ApplySetField {
                            miss,
                            fields: set_fields.clone(),
                        },
                    ]
                })
                .collect();
            properties.push(TableFeatureProp::Match(fields.clone()));
            properties.push(TableFeatureProp::Wildcards(wildcards.clone()));
            TableFeatures {
                table_id: t,
                name: name.clone(),
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                config: 0,
                max_entries,
                properties,
            }
        })
        .collect()
}

/// A property's wire type (`ofp_table_feature_prop_type`).
fn prop_type(p: &TableFeatureProp) -> u16 {
    use TableFeatureProp as P;
    let m = |miss: &bool| u16::from(*miss);
    match p {
        P::Instructions { miss, .. } => m(miss),
        P::NextTables { miss, .. } => 2 + m(miss),
        P::WriteActions { miss, .. } => 4 + m(miss),
        P::ApplyActions { miss, .. } => 6 + m(miss),
        P::Match(_) => 8,
        P::Wildcards(_) => 10,
        P::WriteSetField { miss, .. } => 12 + m(miss),
        P::ApplySetField { miss, .. } => 14 + m(miss),
        P::Other { typ, .. } => *typ,
    }
}

/// Property types OpenFlow 1.3 requires in every table (OVS
/// `OFPTFPT13_REQUIRED`): the non-miss instructions, next tables, write
/// and apply actions, match, wildcards, write and apply set-field.
const REQUIRED: [u16; 8] = [0, 2, 4, 6, 8, 10, 12, 14];

/// An OXM header without its has-mask bit and length: the field.
fn oxm_field(h: u32) -> u32 {
    h >> 9
}

/// The property's items, comparable across tables: ids, next tables or
/// OXM fields. `None` for an unknown property.
fn prop_items(p: &TableFeatureProp) -> Option<BTreeSet<u32>> {
    use TableFeatureProp as P;
    Some(match p {
        P::Instructions { ids, .. } | P::WriteActions { ids, .. } | P::ApplyActions { ids, .. } => {
            ids.iter().map(|i| u32::from(*i)).collect()
        }
        P::NextTables { tables, .. } => tables.iter().map(|t| u32::from(*t)).collect(),
        // xennet's matches take any mask on every matchable field, so a
        // has-mask header asks for nothing more than the field.
        P::Match(hs) | P::Wildcards(hs) => hs.iter().map(|h| oxm_field(*h)).collect(),
        P::WriteSetField { fields, .. } | P::ApplySetField { fields, .. } => {
            fields.iter().map(|h| oxm_field(*h)).collect()
        }
        P::Other { .. } => return None,
    })
}

/// Check a table-features set request `req` (all its messages) against
/// the current features `ours` (one per table, in table order), as OVS
/// `handle_table_features_change` (see the module docs); on success, the
/// name each table is to take.
///
/// # Errors
/// `OFPTFFC_BAD_TABLE`, `OFPTFFC_BAD_TYPE`, `OFPTFFC_EPERM` (module docs).
pub fn check_change(
    ours: &[TableFeatures],
    req: &[TableFeatures],
) -> Result<Vec<(u8, String)>, OfError> {
    let mut seen: Vec<Option<&TableFeatures>> = vec![None; ours.len()];
    for f in req {
        if f.table_id == OFPTT_ALL {
            return Err(OfError::TABLE_FEATURES_BAD_TABLE);
        }
        let slot = seen
            .get_mut(usize::from(f.table_id))
            .ok_or(OfError::TABLE_FEATURES_EPERM)?;
        if slot.is_some() {
            return Err(OfError::TABLE_FEATURES_BAD_TABLE);
        }
        *slot = Some(f);
    }
    let mut names = Vec::with_capacity(ours.len());
    for (o, r) in ours.iter().zip(seen) {
        // A table left out would be disabled: not supported.
        let r = r.ok_or(OfError::TABLE_FEATURES_EPERM)?;
        if r.max_entries != o.max_entries
            || r.metadata_match & !o.metadata_match != 0
            || r.metadata_write & !o.metadata_write != 0
        {
            return Err(OfError::TABLE_FEATURES_EPERM);
        }
        let mut types = BTreeSet::new();
        for p in &r.properties {
            let Some(items) = prop_items(p) else {
                return Err(OfError::TABLE_FEATURES_BAD_TYPE);
            };
            let typ = prop_type(p);
            if !types.insert(typ) {
                return Err(OfError::TABLE_FEATURES_EPERM);
            }
            let supported = o
                .properties
                .iter()
                .find(|q| prop_type(q) == typ)
                .and_then(prop_items)
                .unwrap_or_default();
            if !items.is_subset(&supported) {
                return Err(OfError::TABLE_FEATURES_EPERM);
            }
        }
        if REQUIRED.iter().any(|t| !types.contains(t)) {
            return Err(OfError::TABLE_FEATURES_EPERM);
        }
        names.push((o.table_id, r.name.clone()));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<TableFeatures> {
        let names: Vec<String> = (0..4).map(default_name).collect();
        table_features(&names, 1000)
    }

    #[test]
    fn the_features_themselves_are_accepted_with_new_names() {
        let o = ours();
        let mut req = o.clone();
        req[0].name = "acl".into();
        req.reverse();
        let names = check_change(&o, &req).unwrap();
        assert_eq!(names[0], (0, "acl".to_string()));
        assert_eq!(names[3], (3, "table3".to_string()));
    }

    #[test]
    fn subsets_are_accepted() {
        // A Faucet-like pipeline: fewer actions, fields, next tables, and
        // masked match headers; miss properties left out.
        let o = ours();
        let mut req = o.clone();
        for t in &mut req {
            t.properties
                .retain(|p| !matches!(prop_type(p), 1 | 3 | 5 | 7 | 13 | 15));
            for p in &mut t.properties {
                match p {
                    TableFeatureProp::ApplyActions { ids, .. } => ids.truncate(1),
                    TableFeatureProp::NextTables { tables, .. } => tables.truncate(1),
                    TableFeatureProp::Match(hs) => {
                        let eth_dst = oxm::header(OxmField::EthDst, Flavor::Oxm, true);
                        *hs = vec![eth_dst];
                    }
                    _ => {}
                }
            }
        }
        assert!(check_change(&o, &req).is_ok());
    }

    #[test]
    fn what_xennet_cannot_do_is_refused_as_ovs() {
        let o = ours();
        let eperm = Err(OfError::TABLE_FEATURES_EPERM);
        // A table missing, or one beyond the last.
        assert_eq!(check_change(&o, &o[..3]), eperm);
        let mut req = o.clone();
        req[3].table_id = 4;
        assert_eq!(check_change(&o, &req), eperm);
        // Twice the same table; OFPTT_ALL.
        let mut req = o.clone();
        req[3].table_id = 2;
        assert_eq!(
            check_change(&o, &req),
            Err(OfError::TABLE_FEATURES_BAD_TABLE)
        );
        req[3].table_id = 0xff;
        assert_eq!(
            check_change(&o, &req),
            Err(OfError::TABLE_FEATURES_BAD_TABLE)
        );
        // max_entries is read-only.
        let mut req = o.clone();
        req[1].max_entries = 5;
        assert_eq!(check_change(&o, &req), eperm);
        // An action xennet lacks (OFPAT_PUSH_MPLS, 19); a later table as
        // next table of the last one.
        let mut req = o.clone();
        if let Some(TableFeatureProp::ApplyActions { ids, .. }) = req[0].properties.get_mut(3) {
            ids.push(19);
        }
        assert_eq!(check_change(&o, &req), eperm);
        let mut req = o.clone();
        req[3].properties[1] = TableFeatureProp::NextTables {
            miss: false,
            tables: vec![1],
        };
        assert_eq!(check_change(&o, &req), eperm);
        // A required property missing; a property twice; an unknown one.
        let mut req = o.clone();
        req[2].properties.retain(|p| prop_type(p) != 8);
        assert_eq!(check_change(&o, &req), eperm);
        let mut req = o.clone();
        let dup = req[2].properties[0].clone();
        req[2].properties.push(dup);
        assert_eq!(check_change(&o, &req), eperm);
        let mut req = o.clone();
        req[2].properties.push(TableFeatureProp::Other {
            typ: 0xfffe,
            body: vec![0; 8],
        });
        assert_eq!(
            check_change(&o, &req),
            Err(OfError::TABLE_FEATURES_BAD_TYPE)
        );
    }
}
