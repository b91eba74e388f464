//! The table family (Open vSwitch `lib/ofp-table.c`) for OpenFlow 1.0,
//! 1.3, 1.4 and 1.5: table statistics, table features and table-mod.
//!
//! - Table statistics: 1.0 `ofp_table_stats` (64 bytes, with the table's
//!   name, wildcards and `max_entries`); 1.3 to 1.5 (1.3 §7.3.5.3, 24
//!   bytes, no name).
//! - Table features (1.3 §7.3.5.5; unchanged in 1.4 and 1.5): properties
//!   xennet knows are decoded into [`TableFeatureProp`]s, others are kept
//!   raw.
//! - Table-mod (1.3 §7.3.3): `table_id` and `config`; 1.4+ properties
//!   (eviction, vacancy) are refused, xennet supports neither.

use crate::error::{DecodeError, OfError};
use crate::header::OFP14_VERSION;
use crate::model::{EncodeError, TableFeatureProp, TableFeatures, TableStats};
use crate::ofp_match::wildcards;
use crate::oxm;
use crate::port::props;
use crate::wire::{end_record, err, get_str, Put, Rd};

// ---------------------------------------------------------------------------
// Table statistics.

/// `max_entries` the 1.0 table-stats encoder reports (as Open vSwitch).
pub const TABLE_MAX_ENTRIES: u32 = 1_000_000;

/// 1.0 `ofp_table_stats` (64 bytes): wildcards and max_entries are not
/// kept.
pub(crate) fn decode_table_stats(b: &[u8]) -> Result<TableStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let table_id = r.u8()?;
    r.skip(3)?;
    let name = get_str(r.take(32)?);
    r.skip(4 + 4)?;
    Ok(TableStats {
        table_id,
        name,
        active_count: r.u32()?,
        lookup_count: r.u64()?,
        matched_count: r.u64()?,
    })
}

/// 1.0 `ofp_table_stats`: the table's name, `table<N>` if it has none (OVS
/// names unnamed tables so), wildcards `OFPFW10_ALL`, max_entries
/// [`TABLE_MAX_ENTRIES`].
pub(crate) fn encode_table_stats(out: &mut Vec<u8>, t: &TableStats) -> Result<(), EncodeError> {
    out.u8(t.table_id);
    out.zeros(3);
    if t.name.is_empty() {
        out.str(&format!("table{}", t.table_id), 32);
    } else {
        out.str(&t.name, 32);
    }
    out.u32(wildcards::ALL);
    out.u32(TABLE_MAX_ENTRIES);
    out.u32(t.active_count);
    out.u64(t.lookup_count);
    out.u64(t.matched_count);
    Ok(())
}

/// 1.3 to 1.5 `ofp_table_stats` (24 bytes): no name.
pub(crate) fn get_table_stats(r: &mut Rd<'_>) -> Result<TableStats, DecodeError> {
    let table_id = r.u8()?;
    r.skip(3)?;
    Ok(TableStats {
        table_id,
        name: String::new(),
        active_count: r.u32()?,
        lookup_count: r.u64()?,
        matched_count: r.u64()?,
    })
}

/// Append a 1.3 to 1.5 `ofp_table_stats`.
pub(crate) fn put_table_stats(out: &mut Vec<u8>, s: &TableStats) {
    out.u8(s.table_id);
    out.zeros(3);
    out.u32(s.active_count);
    out.u64(s.lookup_count);
    out.u64(s.matched_count);
}

// ---------------------------------------------------------------------------
// Table features (1.3 §7.3.5.5).

/// `ofp_table_features` (§7.3.5.5), variable length.
pub(crate) fn get_table_features(rd: &mut Rd<'_>) -> Result<TableFeatures, DecodeError> {
    let len = rd.peek_len(0)?;
    if len % 8 != 0 {
        return Err(err(
            OfError::BAD_LEN,
            "table features length not a multiple of 8",
        ));
    }
    let mut r = rd.record(len, 64)?;
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(5)?;
    let name = get_str(r.take(32)?);
    let metadata_match = r.u64()?;
    let metadata_write = r.u64()?;
    let config = r.u32()?;
    let max_entries = r.u32()?;
    let mut properties = Vec::new();
    while !r.is_empty() {
        let typ = r.peek_len(0)? as u16;
        let plen = r.peek_len(2)?;
        if plen < 4 {
            return Err(err(OfError::BAD_LEN, "bad table feature property length"));
        }
        let padded = r.take(plen.next_multiple_of(8))?;
        properties.push(table_prop(typ, &padded[4..plen]));
    }
    Ok(TableFeatures {
        table_id,
        name,
        metadata_match,
        metadata_write,
        config,
        max_entries,
        properties,
    })
}

/// A list of 4-byte `(type, len = 4)` ids, or `None` if the body holds
/// anything else (then the property is kept raw).
pub(crate) fn prop_ids(body: &[u8]) -> Option<Vec<u16>> {
    if body.len() % 4 != 0 {
        return None;
    }
    body.chunks_exact(4)
        .map(|c| (u16::from_be_bytes([c[2], c[3]]) == 4).then(|| u16::from_be_bytes([c[0], c[1]])))
        .collect()
}

/// A list of 32-bit OXM headers (no experimenter ones), or `None`.
pub(crate) fn prop_oxms(body: &[u8]) -> Option<Vec<u32>> {
    if body.len() % 4 != 0 {
        return None;
    }
    body.chunks_exact(4)
        .map(|c| {
            let h = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            (h >> 16 != u32::from(oxm::EXPERIMENTER)).then_some(h)
        })
        .collect()
}

pub(crate) fn table_prop(typ: u16, body: &[u8]) -> TableFeatureProp {
    use TableFeatureProp as P;
    let miss = typ & 1 == 1;
    let p = match typ {
        0 | 1 => prop_ids(body).map(|ids| P::Instructions { miss, ids }),
        2 | 3 => Some(P::NextTables {
            miss,
            tables: body.to_vec(),
        }),
        4 | 5 => prop_ids(body).map(|ids| P::WriteActions { miss, ids }),
        6 | 7 => prop_ids(body).map(|ids| P::ApplyActions { miss, ids }),
        8 => prop_oxms(body).map(P::Match),
        10 => prop_oxms(body).map(P::Wildcards),
        12 | 13 => prop_oxms(body).map(|fields| P::WriteSetField { miss, fields }),
        14 | 15 => prop_oxms(body).map(|fields| P::ApplySetField { miss, fields }),
        _ => None,
    };
    p.unwrap_or_else(|| P::Other {
        typ,
        body: body.to_vec(),
    })
}

pub(crate) fn put_table_prop(out: &mut Vec<u8>, p: &TableFeatureProp) -> Result<(), EncodeError> {
    use TableFeatureProp as P;
    let start = out.len();
    let ids = |out: &mut Vec<u8>, ids: &[u16]| {
        for id in ids {
            out.u16(*id);
            out.u16(4);
        }
    };
    let oxms = |out: &mut Vec<u8>, hs: &[u32]| hs.iter().for_each(|h| out.u32(*h));
    let m = |miss: bool| u16::from(miss);
    let typ = match p {
        P::Instructions { miss, .. } => m(*miss),
        P::NextTables { miss, .. } => 2 + m(*miss),
        P::WriteActions { miss, .. } => 4 + m(*miss),
        P::ApplyActions { miss, .. } => 6 + m(*miss),
        P::Match(_) => 8,
        P::Wildcards(_) => 10,
        P::WriteSetField { miss, .. } => 12 + m(*miss),
        P::ApplySetField { miss, .. } => 14 + m(*miss),
        P::Other { typ, .. } => *typ,
    };
    out.u16(typ);
    out.u16(0);
    match p {
        P::Instructions { ids: v, .. }
        | P::WriteActions { ids: v, .. }
        | P::ApplyActions { ids: v, .. } => ids(out, v),
        P::NextTables { tables, .. } => out.extend_from_slice(tables),
        P::Match(v) | P::Wildcards(v) => oxms(out, v),
        P::WriteSetField { fields, .. } | P::ApplySetField { fields, .. } => oxms(out, fields),
        P::Other { body, .. } => out.extend_from_slice(body),
    }
    end_record(out, start, start + 2)?;
    out.pad8(start);
    Ok(())
}

pub(crate) fn put_table_features(out: &mut Vec<u8>, f: &TableFeatures) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u8(f.table_id);
    out.zeros(5);
    out.str(&f.name, 32);
    out.u64(f.metadata_match);
    out.u64(f.metadata_write);
    out.u32(f.config);
    out.u32(f.max_entries);
    for p in &f.properties {
        put_table_prop(out, p)?;
    }
    end_record(out, start, start)
}

// ---------------------------------------------------------------------------
// Table-mod (1.3 §7.3.3).

/// Decode an `ofp_table_mod` body of `version`: `(table_id, config)`.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN`; `TABLE_MOD_FAILED/BAD_CONFIG` for any 1.4+
/// property.
pub(crate) fn get_table_mod(rd: &mut Rd<'_>, version: u8) -> Result<(u8, u32), DecodeError> {
    let table_id = rd.u8()?;
    rd.skip(3)?;
    let config = rd.u32()?;
    if version >= OFP14_VERSION {
        check_table_mod_props(rd)?;
    }
    rd.end()?;
    Ok((table_id, config))
}

/// Append an `ofp_table_mod` body (no properties).
pub(crate) fn put_table_mod(out: &mut Vec<u8>, table_id: u8, config: u32) {
    out.u8(table_id);
    out.zeros(3);
    out.u32(config);
}

/// Check an `ofp_table_mod` (1.4+ §7.3.3) property list: xennet supports
/// neither eviction nor vacancy events, so any property is refused with
/// `TABLE_MOD_FAILED/BAD_CONFIG`.
pub(crate) fn check_table_mod_props(rd: &mut Rd<'_>) -> Result<(), DecodeError> {
    props(rd, |_, _| {
        Err(err(
            OfError::TABLE_MOD_BAD_CONFIG,
            "table-mod properties are not supported",
        ))
    })
}
