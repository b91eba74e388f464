//! The group family (Open vSwitch `lib/ofp-group.c`) for OpenFlow 1.3, 1.4
//! and 1.5 (OpenFlow 1.0 has no groups; its Nicira group action is
//! [`crate::actions`]'): group-mod, group descriptions, statistics and
//! features, with the version as a parameter.
//!
//! - 1.3/1.4 (§7.3.4.2): `ofp_group_mod` = `command`, `type`, `group_id`,
//!   then `ofp_bucket`s (`len`, `weight`, `watch_port`, `watch_group`,
//!   4 pad bytes, actions); `ofp_group_desc` = `length`, `type`,
//!   `group_id`, buckets.
//! - 1.5 (1.5.1 §7.3.4.2): `ofp_group_mod` adds `bucket_array_len` and
//!   `command_bucket_id` (16 fixed bytes, then buckets, then group
//!   properties); `ofp_group_desc` adds `bucket_list_len` (16 fixed
//!   bytes). A 1.5 `ofp_bucket` is `len`, `action_array_len`,
//!   `bucket_id`, actions, then properties: `OFPGBPT_WEIGHT` (type 0,
//!   u16 and 2 pad bytes, length 8), `OFPGBPT_WATCH_PORT` (1, u32), `OFPGBPT_WATCH_GROUP` (2, u32).
//!   Buckets are numbered by position (xennet does not keep bucket ids);
//!   `INSERT_BUCKET`/`REMOVE_BUCKET` are refused with
//!   `GROUP_MOD_FAILED/BAD_COMMAND`.
//! - The one group property Open vSwitch knows, its selection method
//!   ([`SelectionMethod`]; OVS `parse_group_prop_ntr_selection_method`,
//!   `ofputil_put_group_prop_ntr_selection_method`): an experimenter
//!   property (type 0xffff, experimenter `NTR_VENDOR_ID` 0x0000154d or
//!   OVS 2.4's 0x00001540, exp_type 1), 4 pad bytes, the method name in 16
//!   NUL-padded bytes, `selection_method_param` (u64), then the hashed
//!   fields as unmasked OXM entries whose values are the masks, padded to 8
//!   bytes. As OVS: only on select groups (else `BAD_PROPERTY/BAD_VALUE`)
//!   and add/modify; method `hash` or `dp_hash` (else `BAD_VALUE`); fields
//!   only with `hash`; an unknown field is `BAD_MATCH/BAD_FIELD`, a repeated
//!   one `DUP_FIELD`, a masked entry `BAD_MASK`; other properties
//!   `BAD_PROPERTY/BAD_TYPE` (`BAD_EXPERIMENTER` for other experimenters).
//!   Weight, watch port and watch group default as in Open vSwitch (1
//!   for select groups, else 0; `OFPP_ANY`; `OFPG_ANY`), and are written
//!   as Open vSwitch writes them (weight for select groups or when not
//!   zero; watches when not "any").

use crate::error::{DecodeError, OfError};
use crate::header::OFP15_VERSION;
use crate::model::{
    Bucket, EncodeError, GroupDesc, GroupFeatures, GroupMod, GroupModCommand, GroupStats,
    GroupType, HashField, SelectionKind, SelectionMethod, OFPP_ANY,
};
use crate::oxm::{decode_wire_set_field, encode_wire_set_field, Flavor};
use crate::port::props;
// Bucket actions are in the group-mod's version (OVS
// `ofputil_pull_ofp15_buckets` uses the message's): a 1.5 bucket may
// hold a masked set-field, as OVN's load balancer groups do
// (`ct(commit,nat(..),exec(set_field:0x2/0x2->ct_mark))`).
use crate::actions::{decode_actions_version, put_actions_version};
use crate::wire::{end_record, err, get_counters, Put, Rd};

/// `OFPG_ANY`.
const OFPG_ANY: u32 = 0xffff_ffff;
/// `OFPG_BUCKET_ALL`.
const BUCKET_ALL: u32 = 0xffff_ffff;

pub(crate) fn group_type(v: u8) -> Result<GroupType, DecodeError> {
    Ok(match v {
        0 => GroupType::All,
        1 => GroupType::Select,
        2 => GroupType::Indirect,
        3 => GroupType::FastFailover,
        _ => return Err(err(OfError::BAD_GROUP_TYPE, "unknown group type")),
    })
}

pub(crate) fn group_type_num(g: GroupType) -> u8 {
    match g {
        GroupType::All => 0,
        GroupType::Select => 1,
        GroupType::Indirect => 2,
        GroupType::FastFailover => 3,
    }
}

/// A bucket list of `version`.
fn get_buckets(buf: &[u8], gt: GroupType, version: u8) -> Result<Vec<Bucket>, DecodeError> {
    let mut rd = Rd::new(buf, OfError::BAD_BUCKET);
    let mut v = Vec::new();
    while !rd.is_empty() {
        let len = rd.peek_len(0)?;
        if len % 8 != 0 {
            return Err(err(
                OfError::BAD_BUCKET,
                "bucket length not a multiple of 8",
            ));
        }
        if version >= OFP15_VERSION {
            let mut b = rd.record(len, 8)?;
            b.skip(2)?;
            let actions_len = usize::from(b.u16()?);
            b.skip(4)?;
            let actions = decode_actions_version(b.take(actions_len)?, version)?;
            let mut bucket = Bucket {
                weight: u16::from(gt == GroupType::Select),
                watch_port: OFPP_ANY,
                watch_group: OFPG_ANY,
                actions,
            };
            props(&mut b, |typ, mut p| {
                match typ {
                    // A 16-bit property is 8 bytes long on the wire (two
                    // of padding); as Open vSwitch, accept any length
                    // that holds the value.
                    0 => bucket.weight = p.u16()?,
                    1 => bucket.watch_port = p.u32()?,
                    2 => bucket.watch_group = p.u32()?,
                    _ => return Err(err(OfError::BAD_PROPERTY_TYPE, "unknown bucket property")),
                }
                Ok(())
            })
            .map_err(|e| {
                if e.err == OfError::BAD_LEN {
                    err(OfError::BAD_BUCKET, "bad bucket property")
                } else {
                    e
                }
            })?;
            v.push(bucket);
            continue;
        }
        let mut b = rd.record(len, 16)?;
        b.skip(2)?;
        v.push(Bucket {
            weight: b.u16()?,
            watch_port: b.u32()?,
            watch_group: b.u32()?,
            actions: {
                b.skip(4)?;
                decode_actions_version(b.rest(), version)?
            },
        });
    }
    Ok(v)
}

fn put_buckets(
    out: &mut Vec<u8>,
    buckets: &[Bucket],
    gt: GroupType,
    version: u8,
) -> Result<(), EncodeError> {
    for (i, b) in buckets.iter().enumerate() {
        let start = out.len();
        if version >= OFP15_VERSION {
            out.u16(0);
            out.u16(0);
            out.u32(u32::try_from(i).unwrap_or(u32::MAX));
            let acts = out.len();
            put_actions_version(out, &b.actions, version)?;
            end_record(out, acts, start + 2)?;
            if gt == GroupType::Select || b.weight != 0 {
                out.u16(0);
                out.u16(8);
                out.u16(b.weight);
                out.zeros(2);
            }
            if b.watch_port != OFPP_ANY {
                out.u16(1);
                out.u16(8);
                out.u32(b.watch_port);
            }
            if b.watch_group != OFPG_ANY {
                out.u16(2);
                out.u16(8);
                out.u32(b.watch_group);
            }
        } else {
            out.u16(0);
            out.u16(b.weight);
            out.u32(b.watch_port);
            out.u32(b.watch_group);
            out.zeros(4);
            put_actions_version(out, &b.actions, version)?;
        }
        end_record(out, start, start)?;
    }
    Ok(())
}

/// Decode a group-mod body of `version`.
///
/// # Errors
/// `GROUP_MOD_FAILED/*`, `BAD_ACTION/*`, `BAD_PROPERTY/BAD_TYPE`.
pub(crate) fn get_group_mod(rd: &mut Rd<'_>, version: u8) -> Result<GroupMod, DecodeError> {
    let command = match rd.u16()? {
        0 => GroupModCommand::Add,
        1 => GroupModCommand::Modify,
        2 => GroupModCommand::Delete,
        _ => {
            return Err(err(
                OfError::BAD_GROUP_COMMAND,
                "unsupported group-mod command",
            ))
        }
    };
    let group_type = group_type(rd.u8()?)?;
    rd.skip(1)?;
    let group_id = rd.u32()?;
    let buckets = if version >= OFP15_VERSION {
        let len = usize::from(rd.u16()?);
        rd.skip(2)?;
        let command_bucket_id = rd.u32()?;
        if command_bucket_id != BUCKET_ALL && command != GroupModCommand::Delete {
            // Meaningful only for the bucket commands xennet refuses.
        }
        let b = get_buckets(rd.take(len)?, group_type, version)?;
        (b, get_group_props(rd, group_type, Some(command))?)
    } else {
        (get_buckets(rd.rest(), group_type, version)?, None)
    };
    let (buckets, selection) = buckets;
    Ok(GroupMod {
        command,
        group_type,
        group_id,
        buckets,
        selection,
    })
}

/// Append a group-mod body of `version`.
pub(crate) fn put_group_mod(
    out: &mut Vec<u8>,
    g: &GroupMod,
    version: u8,
) -> Result<(), EncodeError> {
    out.u16(match g.command {
        GroupModCommand::Add => 0,
        GroupModCommand::Modify => 1,
        GroupModCommand::Delete => 2,
    });
    out.u8(group_type_num(g.group_type));
    out.u8(0);
    out.u32(g.group_id);
    if version >= OFP15_VERSION {
        let at = out.len();
        out.u16(0);
        out.zeros(2);
        out.u32(BUCKET_ALL);
        let start = out.len();
        put_buckets(out, &g.buckets, g.group_type, version)?;
        end_record(out, start, at)?;
        if let Some(s) = &g.selection {
            put_selection_method(out, s);
        }
        Ok(())
    } else {
        put_buckets(out, &g.buckets, g.group_type, version)
    }
}

/// Decode one group description of `version`.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN`, `GROUP_MOD_FAILED/*`, `BAD_ACTION/*`.
pub(crate) fn get_group_desc(rd: &mut Rd<'_>, version: u8) -> Result<GroupDesc, DecodeError> {
    let len = rd.peek_len(0)?;
    let v15 = version >= OFP15_VERSION;
    let mut r = rd.record(len, if v15 { 16 } else { 8 })?;
    r.skip(2)?;
    let group_type = group_type(r.u8()?)?;
    r.skip(1)?;
    let group_id = r.u32()?;
    let buckets = if v15 {
        let blen = usize::from(r.u16()?);
        r.skip(6)?;
        let b = get_buckets(r.take(blen)?, group_type, version)?;
        (b, get_group_props(&mut r, group_type, None)?)
    } else {
        (get_buckets(r.rest(), group_type, version)?, None)
    };
    let (buckets, selection) = buckets;
    Ok(GroupDesc {
        group_type,
        group_id,
        buckets,
        selection,
    })
}

/// Append one group description of `version`.
pub(crate) fn put_group_desc(
    out: &mut Vec<u8>,
    g: &GroupDesc,
    version: u8,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u8(group_type_num(g.group_type));
    out.u8(0);
    out.u32(g.group_id);
    if version >= OFP15_VERSION {
        let at = out.len();
        out.u16(0);
        out.zeros(6);
        let b = out.len();
        put_buckets(out, &g.buckets, g.group_type, version)?;
        end_record(out, b, at)?;
        if let Some(s) = &g.selection {
            put_selection_method(out, s);
        }
    } else {
        put_buckets(out, &g.buckets, g.group_type, version)?;
    }
    end_record(out, start, start)
}

/// `NTR_VENDOR_ID` (Netronome).
const NTR_VENDOR_ID: u32 = 0x0000_154d;
/// The experimenter id OVS 2.4 sent by mistake (`NTR_COMPAT_VENDOR_ID`).
const NTR_COMPAT_VENDOR_ID: u32 = 0x0000_1540;
/// `NTRT_SELECTION_METHOD`.
const NTRT_SELECTION_METHOD: u32 = 1;
/// `OFPGPT15_EXPERIMENTER`.
const OFPGPT15_EXPERIMENTER: u16 = 0xffff;
/// `NTR_MAX_SELECTION_METHOD_LEN` (with the terminating NUL).
const SELECTION_METHOD_LEN: usize = 16;

/// Decode the group properties after a 1.5 group-mod's (`command` given)
/// or group description's buckets (see the module docs).
fn get_group_props(
    rd: &mut Rd<'_>,
    group_type: GroupType,
    command: Option<GroupModCommand>,
) -> Result<Option<SelectionMethod>, DecodeError> {
    let mut sel = None;
    props(rd, |typ, mut p| {
        if typ != OFPGPT15_EXPERIMENTER {
            return Err(err(OfError::BAD_PROPERTY_TYPE, "unknown group property"));
        }
        let exp = p.u32()?;
        let exp_type = p.u32()?;
        if !matches!(exp, NTR_VENDOR_ID | NTR_COMPAT_VENDOR_ID) || exp_type != NTRT_SELECTION_METHOD
        {
            return Err(err(
                OfError::BAD_PROPERTY_EXPERIMENTER,
                "unknown experimenter group property",
            ));
        }
        let value = |what| err(OfError::BAD_PROPERTY_VALUE, what);
        if group_type != GroupType::Select {
            return Err(value("selection method on a group that is not select"));
        }
        if command == Some(GroupModCommand::Delete) {
            return Err(value("selection method on a group delete"));
        }
        if p.len() < 4 + SELECTION_METHOD_LEN + 8 {
            return Err(err(
                OfError::BAD_PROPERTY_LEN,
                "short selection method property",
            ));
        }
        p.skip(4)?;
        let name = p.take(SELECTION_METHOD_LEN)?;
        let end = name
            .iter()
            .position(|&b| b == 0)
            .ok_or(value("selection method not NUL-terminated"))?;
        let kind = match &name[..end] {
            b"hash" => SelectionKind::Hash,
            b"dp_hash" => SelectionKind::DpHash,
            _ => return Err(value("unsupported selection method")),
        };
        let param = p.u64()?;
        let mut buf = p.rest();
        if !buf.is_empty() && kind != SelectionKind::Hash {
            return Err(value("selection method dp_hash takes no fields"));
        }
        let mut fields: Vec<HashField> = Vec::new();
        while !buf.is_empty() {
            let (f, hf, used) = get_hash_field(buf)?;
            if fields.iter().any(|x| x.field == f) {
                return Err(err(OfError::DUP_FIELD, "selection method field repeated"));
            }
            fields.push(hf);
            buf = &buf[used..];
        }
        sel = Some(SelectionMethod {
            kind,
            param,
            fields,
        });
        Ok(())
    })
    .map_err(|e| {
        if e.err == OfError::BAD_LEN {
            err(OfError::BAD_PROPERTY_LEN, "bad group property length")
        } else {
            e
        }
    })?;
    Ok(sel)
}

/// One field of a selection method's field array: an unmasked OXM/NXM
/// entry whose value is the mask of the bits hashed.
fn get_hash_field(buf: &[u8]) -> Result<(crate::model::MfField, HashField, usize), DecodeError> {
    let masked = buf.get(2).is_some_and(|b| b & 1 != 0);
    if masked {
        return Err(err(OfError::BAD_MASK, "masked selection method field"));
    }
    let (field, mask, _, used) = decode_wire_set_field(buf).map_err(|e| {
        if e.err == OfError::BAD_SET_TYPE {
            err(OfError::BAD_FIELD, "unknown selection method field")
        } else {
            err(
                OfError::BAD_PROPERTY_LEN,
                "bad selection method field length",
            )
        }
    })?;
    let hlen = if buf[..2] == [0xff, 0xff] { 8 } else { 4 };
    let n_bytes = u8::try_from(used - hlen)
        .map_err(|_| err(OfError::BAD_PROPERTY_LEN, "selection method field too long"))?;
    Ok((
        field,
        HashField {
            field,
            mask,
            n_bytes,
        },
        used,
    ))
}

/// Append the selection method property (see the module docs).
fn put_selection_method(out: &mut Vec<u8>, s: &SelectionMethod) {
    let start = out.len();
    out.u16(OFPGPT15_EXPERIMENTER);
    out.u16(0);
    out.u32(NTR_VENDOR_ID);
    out.u32(NTRT_SELECTION_METHOD);
    out.zeros(4);
    let mut name = [0u8; SELECTION_METHOD_LEN];
    let k = s.kind.name().as_bytes();
    name[..k.len()].copy_from_slice(k);
    out.extend_from_slice(&name);
    out.u64(s.param);
    for f in &s.fields {
        let all = match u32::from(f.n_bytes) * 8 {
            b if b >= 128 => u128::MAX,
            b => (1u128 << b) - 1,
        };
        encode_wire_set_field(f.field, f.mask & all, all, Flavor::Oxm, out);
    }
    let len = out.len() - start;
    out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
    out.zeros(len.next_multiple_of(8) - len);
}

// ---------------------------------------------------------------------------
// Group statistics and features (1.3 §7.3.5.9, §7.3.5.11; unchanged in
// 1.4 and 1.5).

pub(crate) fn get_group_stats(rd: &mut Rd<'_>) -> Result<GroupStats, DecodeError> {
    let len = rd.peek_len(0)?;
    let mut r = rd.record(len, 40)?;
    r.skip(4)?;
    let group_id = r.u32()?;
    let ref_count = r.u32()?;
    r.skip(4)?;
    Ok(GroupStats {
        group_id,
        ref_count,
        packet_count: r.u64()?,
        byte_count: r.u64()?,
        duration_sec: r.u32()?,
        duration_nsec: r.u32()?,
        buckets: get_counters(&mut r)?,
    })
}

pub(crate) fn put_group_stats(out: &mut Vec<u8>, g: &GroupStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.zeros(2);
    out.u32(g.group_id);
    out.u32(g.ref_count);
    out.zeros(4);
    out.u64(g.packet_count);
    out.u64(g.byte_count);
    out.u32(g.duration_sec);
    out.u32(g.duration_nsec);
    for (p, b) in &g.buckets {
        out.u64(*p);
        out.u64(*b);
    }
    end_record(out, start, start)
}

/// `ofp_group_features` (1.3 §7.3.5.11, 40 bytes).
pub(crate) fn get_group_features(rd: &mut Rd<'_>) -> Result<GroupFeatures, DecodeError> {
    let types = rd.u32()?;
    let capabilities = rd.u32()?;
    let mut max_groups = [0u32; 4];
    for v in &mut max_groups {
        *v = rd.u32()?;
    }
    let mut actions = [0u32; 4];
    for v in &mut actions {
        *v = rd.u32()?;
    }
    rd.end()?;
    Ok(GroupFeatures {
        types,
        capabilities,
        max_groups,
        actions,
    })
}

pub(crate) fn put_group_features(out: &mut Vec<u8>, g: &GroupFeatures) {
    out.u32(g.types);
    out.u32(g.capabilities);
    g.max_groups
        .iter()
        .chain(&g.actions)
        .for_each(|v| out.u32(*v));
}
