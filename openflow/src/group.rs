//! The group family for OpenFlow 1.3, 1.4 and 1.5: group-mod and group
//! descriptions, with the version as a parameter.
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
//!   `INSERT_BUCKET`/`REMOVE_BUCKET` and group properties are refused
//!   with `GROUP_MOD_FAILED/BAD_COMMAND` and `BAD_PROPERTY/BAD_TYPE`.
//!   Weight, watch port and watch group default as in Open vSwitch (1
//!   for select groups, else 0; `OFPP_ANY`; `OFPG_ANY`), and are written
//!   as Open vSwitch writes them (weight for select groups or when not
//!   zero; watches when not "any").

use crate::error::{DecodeError, OfError};
use crate::header::OFP15_VERSION;
use crate::model::{
    Bucket, EncodeError, GroupDesc, GroupMod, GroupModCommand, GroupType, OFPP_ANY,
};
use crate::port::props;
// Bucket actions are in the group-mod's version (OVS
// `ofputil_pull_ofp15_buckets` uses the message's): a 1.5 bucket may
// hold a masked set-field, as OVN's load balancer groups do
// (`ct(commit,nat(..),exec(set_field:0x2/0x2->ct_mark))`).
use crate::v13::{decode_actions_version, put_actions_version};
use crate::wire::{end_record, Put, Rd};

/// `OFPG_ANY`.
const OFPG_ANY: u32 = 0xffff_ffff;
/// `OFPG_BUCKET_ALL`.
const BUCKET_ALL: u32 = 0xffff_ffff;

fn err(e: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(e, what)
}

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
        props(rd, |_, _| {
            Err(err(
                OfError::BAD_PROPERTY_TYPE,
                "group properties are not supported",
            ))
        })?;
        b
    } else {
        get_buckets(rd.rest(), group_type, version)?
    };
    Ok(GroupMod {
        command,
        group_type,
        group_id,
        buckets,
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
        // Group properties (selection method) after the buckets are
        // ignored, as a controller ignores what it does not know.
        get_buckets(r.take(blen)?, group_type, version)?
    } else {
        get_buckets(r.rest(), group_type, version)?
    };
    Ok(GroupDesc {
        group_type,
        group_id,
        buckets,
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
    } else {
        put_buckets(out, &g.buckets, g.group_type, version)?;
    }
    end_record(out, start, start)
}
