//! Nicira extension actions (`nx_action_*`, vendor/experimenter
//! `NX_VENDOR_ID`), shared by the OpenFlow 1.0 and 1.3/1.4/1.5 codecs, as
//! Open vSwitch `lib/ofp-actions.c` lays them out. The action header is the
//! same in every version (`OFPAT10_VENDOR` = `OFPAT_EXPERIMENTER` =
//! 0xffff, length, vendor, 16-bit subtype).
//!
//! Decoded here: `RESUBMIT` (1), `SET_TUNNEL` (2), `SET_QUEUE` (4, 1.0),
//! `PUSH_MPLS`/`POP_MPLS`/`SET_MPLS_TTL`/`DEC_MPLS_TTL` (23-26, 1.0),
//! `REG_MOVE` (6, 1.0–1.4), `REG_LOAD` (7, 1.0–1.4, one `Load` each; the
//! 1.0 codec gathers whole-field runs into a set-field first), `NOTE` (8),
//! `SET_TUNNEL64` (9), `RESUBMIT_TABLE` (14), `OUTPUT_REG` (15), `EXIT`
//! (17), `DEC_TTL` (18, 1.0), `CONTROLLER` (20), `DEC_TTL_CNT_IDS` (21),
//! `STACK_PUSH`/`POP` (27/28), `SAMPLE` (29), `OUTPUT_REG2` (32),
//! `REG_LOAD2` (33, 1.0–1.4), `CONTROLLER2` (37), `GROUP` (40, 1.0),
//! `CLONE` (42), `CT_CLEAR` (43), `CONJUNCTION` (34), `MULTIPATH` (10), `BUNDLE`/`BUNDLE_LOAD`
//! (12/13), `RESUBMIT_TABLE_CT` (44), `CT` (35) with
//! `NAT` (36) inside it, `LEARN`/`LEARN2` (16/45), `CHECK_PKT_LARGER`
//! (49), `FIN_TIMEOUT` (19). Which versions accept which subtype follows OVS's
//! raw action table (`NX1.0(4)`, `NX1.0-1.4(7)`, …); a subtype outside its
//! versions, or not implemented (`SAMPLE2/3`,
//! `OUTPUT_TRUNC`, …), is `OFPBAC_BAD_EXP_TYPE`.
//!
//! Errors follow OVS's decoders: a length other than the structure's is
//! `BAD_LEN`; an unknown field in a header `BAD_SET_TYPE`; a subfield
//! beyond its field `BAD_SET_LEN` (`mf_check_src/dst`); a read-only
//! destination `BAD_SET_ARGUMENT`; a load value wider than its subfield or
//! a sample probability of 0 `BAD_ARGUMENT`. Where OVS answers
//! `NXBRC_MUST_BE_ZERO` (nonzero reserved bytes) xennet answers
//! `OFPBAC_BAD_ARGUMENT`: the codec has no Nicira vendor errors.

use crate::error::{DecodeError, OfError};
use crate::header::{OFP10_VERSION, OFP15_VERSION};
use crate::model::{
    Action, Bundle, Controller, Ct, CtZone, EncodeError, Learn, LearnDst, LearnSpec, LearnSrc,
    MfField, Multipath, OxmField, Subfield, NX_LEARN_F_DELETE_LEARNED, NX_LEARN_F_SEND_FLOW_REM,
    NX_LEARN_F_WRITE_RESULT,
};
use crate::nicira::*;
use crate::oxm::{self, Flavor};
use crate::port::{port_from_ofp10, port_to_ofp10};
use crate::wire::{ones, Put};

/// `NXAST_SET_TUNNEL`.
pub const NXAST_SET_TUNNEL: u16 = 2;
/// `NXAST_REG_MOVE`.
pub const NXAST_REG_MOVE: u16 = 6;
/// `NXAST_NOTE`.
pub const NXAST_NOTE: u16 = 8;
/// `NXAST_SET_TUNNEL64`.
pub const NXAST_SET_TUNNEL64: u16 = 9;
/// `NXAST_OUTPUT_REG`.
pub const NXAST_OUTPUT_REG: u16 = 15;
/// `NXAST_EXIT`.
pub const NXAST_EXIT: u16 = 17;
/// `NXAST_CONTROLLER`.
pub const NXAST_CONTROLLER: u16 = 20;
/// `NXAST_DEC_TTL_CNT_IDS`.
pub const NXAST_DEC_TTL_CNT_IDS: u16 = 21;
/// `NXAST_STACK_PUSH`.
pub const NXAST_STACK_PUSH: u16 = 27;
/// `NXAST_STACK_POP`.
pub const NXAST_STACK_POP: u16 = 28;
/// `NXAST_SAMPLE`.
pub const NXAST_SAMPLE: u16 = 29;
/// `NXAST_OUTPUT_REG2`.
pub const NXAST_OUTPUT_REG2: u16 = 32;
/// `NXAST_CONTROLLER2`.
pub const NXAST_CONTROLLER2: u16 = 37;
/// `NXAST_CLONE`.
pub const NXAST_CLONE: u16 = 42;
/// `NXAST_CT_CLEAR`.
pub const NXAST_CT_CLEAR: u16 = 43;
/// `NXAST_CONJUNCTION`.
pub const NXAST_CONJUNCTION: u16 = 34;
/// `NXAST_MULTIPATH`.
pub const NXAST_MULTIPATH: u16 = 10;
/// `NXAST_BUNDLE`.
pub const NXAST_BUNDLE: u16 = 12;
/// `NXAST_BUNDLE_LOAD`.
pub const NXAST_BUNDLE_LOAD: u16 = 13;
/// `BUNDLE_MAX_MEMBERS`.
pub const BUNDLE_MAX_MEMBERS: usize = 2048;
/// The `NXM_OF_IN_PORT` header, the only bundle member type.
const NXM_OF_IN_PORT: u32 = 0x0000_0002;
/// `NXAST_RESUBMIT_TABLE_CT`.
pub const NXAST_RESUBMIT_TABLE_CT: u16 = 44;
/// `NXAST_CT`.
pub const NXAST_CT: u16 = 35;
/// `NXAST_LEARN`.
pub const NXAST_LEARN: u16 = 16;
/// `NXAST_LEARN2`.
pub const NXAST_LEARN2: u16 = 45;
/// `NXAST_CHECK_PKT_LARGER`.
pub const NXAST_CHECK_PKT_LARGER: u16 = 49;
/// `NXAST_FIN_TIMEOUT`.
pub const NXAST_FIN_TIMEOUT: u16 = 19;
/// `NX_LEARN_N_BITS_MASK`: the bits of a `flow_mod_spec` header that
/// count bits.
const NX_LEARN_N_BITS_MASK: u16 = 0x3ff;
/// `NX_LEARN_SRC_IMMEDIATE`.
const NX_LEARN_SRC_IMMEDIATE: u16 = 1 << 13;
/// `NX_LEARN_DST_MASK`.
const NX_LEARN_DST_MASK: u16 = 3 << 11;
/// `NX_LEARN_DST_LOAD`.
const NX_LEARN_DST_LOAD: u16 = 1 << 11;
/// `NX_LEARN_DST_OUTPUT`.
const NX_LEARN_DST_OUTPUT: u16 = 2 << 11;
/// `NXAST_NAT`.
pub const NXAST_NAT: u16 = 36;
/// `NX_CT_F_COMMIT`.
pub const NX_CT_F_COMMIT: u16 = 1;
/// `NX_CT_F_FORCE`.
pub const NX_CT_F_FORCE: u16 = 2;
/// `NX_NAT_F_*`: src 1, dst 2, persistent 4, hash 8, random 16.
pub const NX_NAT_F_MASK: u16 = 0x1f;
/// `OFPAT_COPY_FIELD` (OpenFlow 1.5 `move`).
pub const OFPAT15_COPY_FIELD: u16 = 28;
/// `OFPAT_SET_FIELD`.
const OFPAT_SET_FIELD: u16 = 25;
/// Decodes a nested action list (`clone`) in the enclosing version.
pub type NestedDecode<'a> = dyn Fn(&[u8]) -> Result<Vec<Action>, DecodeError> + 'a;
/// Appends a nested action list (`clone`) in the enclosing version.
pub type NestedEncode<'a> = dyn Fn(&[Action], &mut Vec<u8>) -> Result<(), EncodeError> + 'a;

/// `NX_CTLR_NO_METER`: no controller meter.
pub const NX_CTLR_NO_METER: u32 = u32::MAX;

/// Most `clone`s nested in one another (the pipeline's own depth bound,
/// `MAX_DEPTH` in `ofproto::xlate`, is 64 too); deeper is
/// `BAD_ARGUMENT`, so decoding recursion stays bounded.
pub const MAX_CLONE_NESTING: u32 = 64;

thread_local! {
    /// Clones being decoded on this thread (the decoders recurse).
    static CLONE_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Whether a `ct`'s nested actions are being decoded (they may write
    /// `ct_mark` and `ct_label`; `ct` does not nest).
    static IN_CT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the actions being decoded are a `ct`'s nested actions.
pub fn in_ct() -> bool {
    IN_CT.with(|c| c.get())
}

/// `NXAC2PT_*` properties of `NXAST_CONTROLLER2`.
mod prop {
    pub const MAX_LEN: u16 = 0;
    pub const CONTROLLER_ID: u16 = 1;
    pub const REASON: u16 = 2;
    pub const USERDATA: u16 = 3;
    pub const PAUSE: u16 = 4;
    pub const METER_ID: u16 = 5;
}

fn bad(e: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(e, what)
}

fn bad_len() -> DecodeError {
    bad(OfError::BAD_ACTION_LEN, "bad Nicira action length")
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

fn zeros(b: &[u8]) -> Result<(), DecodeError> {
    if b.iter().all(|&x| x == 0) {
        Ok(())
    } else {
        Err(bad(
            OfError::BAD_ACTION_ARGUMENT,
            "nonzero reserved bytes (NXBRC_MUST_BE_ZERO)",
        ))
    }
}

/// Whether a subfield action may write `f` (OVS `mf_field.writable`, and
/// implemented in the pipeline).
pub fn mf_writable(f: MfField) -> Result<(), DecodeError> {
    match f {
        MfField::Oxm(OxmField::InPort) | MfField::InPort16 => Ok(()),
        MfField::VlanTci | MfField::IpTos => Ok(()),
        MfField::Oxm(OxmField::CtMark | OxmField::CtLabel) if in_ct() => Ok(()),
        MfField::Oxm(f) if !f.is_writable() => {
            Err(bad(OfError::BAD_SET_ARGUMENT, "read-only destination"))
        }
        MfField::Oxm(f) if !f.is_settable() => Err(bad(
            OfError::BAD_SET_TYPE,
            "writing this field is not implemented",
        )),
        MfField::Oxm(_) => Ok(()),
    }
}

/// OVS `mf_check_src`: the bits lie within the field.
///
/// # Errors
/// `BAD_SET_LEN`.
pub fn check_subfield(sf: &Subfield) -> Result<(), DecodeError> {
    let n = sf.field.n_bits();
    if sf.n_bits == 0 || u32::from(sf.ofs) >= n || u32::from(sf.ofs) + u32::from(sf.n_bits) > n {
        return Err(bad(OfError::BAD_SET_LEN, "subfield beyond its field"));
    }
    Ok(())
}

/// OVS `mf_check_dst`: as [`check_subfield`], and the field is writable.
///
/// # Errors
/// `BAD_SET_LEN`, `BAD_SET_ARGUMENT`, `BAD_SET_TYPE`.
pub fn check_dst(sf: &Subfield) -> Result<(), DecodeError> {
    check_subfield(sf)?;
    mf_writable(sf.field)
}

/// A subfield from an NXM `ofs_nbits` (`ofs << 6 | (n_bits - 1)`).
fn ofs_nbits(field: MfField, v: u16) -> Subfield {
    Subfield {
        field,
        ofs: v >> 6,
        n_bits: (v & 0x3f) + 1,
    }
}

fn enc_ofs_nbits(sf: &Subfield) -> Result<u16, EncodeError> {
    if sf.n_bits == 0 || sf.n_bits > 64 || sf.ofs > 0x3ff {
        return Err(EncodeError::Unsupported("subfield has no ofs_nbits form"));
    }
    Ok((sf.ofs << 6) | (sf.n_bits - 1))
}

/// The field header at the start of `b`, refusing a masked one.
fn field_header(b: &[u8]) -> Result<(MfField, usize), DecodeError> {
    let (f, masked, used) = oxm::pull_mf_header(b)?;
    if masked {
        return Err(bad(OfError::BAD_SET_ARGUMENT, "masked field header"));
    }
    Ok((f, used))
}

/// Decode the Nicira action `a` (whole action, vendor already
/// `NX_VENDOR_ID`) in OpenFlow `version`. `nested` decodes a nested action
/// list (`clone`) in the same version.
///
/// # Errors
/// See the module documentation.
pub fn decode(a: &[u8], version: u8, nested: &NestedDecode<'_>) -> Result<Action, DecodeError> {
    if a.len() < 16 {
        return Err(bad_len());
    }
    let subtype = be16(a, 8);
    let fixed = |n: usize| if a.len() == n { Ok(()) } else { Err(bad_len()) };
    let v10 = version == OFP10_VERSION;
    let upto14 = version < OFP15_VERSION;
    Ok(match subtype {
        NXAST_RESUBMIT => {
            fixed(16)?;
            Action::Resubmit {
                in_port: port_from_ofp10(be16(a, 10)),
                table: 0xff,
            }
        }
        NXAST_RESUBMIT_TABLE => {
            fixed(16)?;
            zeros(&a[13..16])?;
            Action::Resubmit {
                in_port: port_from_ofp10(be16(a, 10)),
                table: a[12],
            }
        }
        NXAST_RESUBMIT_TABLE_CT => {
            fixed(16)?;
            zeros(&a[13..16])?;
            Action::ResubmitCt {
                in_port: port_from_ofp10(be16(a, 10)),
                table: a[12],
            }
        }
        NXAST_CT => decode_ct(a, nested)?,
        NXAST_LEARN | NXAST_LEARN2 => decode_learn(a, subtype == NXAST_LEARN2)?,
        NXAST_FIN_TIMEOUT => {
            fixed(16)?;
            Action::FinTimeout {
                idle: be16(a, 10),
                hard: be16(a, 12),
            }
        }
        NXAST_CHECK_PKT_LARGER => {
            // OVS `decode_NXAST_RAW_CHECK_PKT_LARGER`.
            fixed(24)?;
            let (field, used) = field_header(&a[14..])?;
            zeros(&a[14 + used..])?;
            let dst = Subfield {
                field,
                ofs: be16(a, 12),
                n_bits: 1,
            };
            check_dst(&dst)?;
            Action::CheckPktLarger {
                len: be16(a, 10),
                dst,
            }
        }
        NXAST_MULTIPATH => {
            fixed(32)?;
            let (field, _) = field_header(&a[28..32])?;
            let dst = ofs_nbits(field, be16(a, 26));
            let mp = Multipath {
                fields: be16(a, 10),
                basis: be16(a, 12),
                algorithm: be16(a, 16),
                max_link: be16(a, 18),
                arg: be32(a, 20),
                dst,
            };
            let n_links = u32::from(mp.max_link) + 1;
            let min_bits = 32 - (n_links - 1).leading_zeros();
            if mp.fields > 6 || mp.algorithm > 3 || u32::from(dst.n_bits) < min_bits {
                return Err(bad(OfError::BAD_ACTION_ARGUMENT, "bad multipath arguments"));
            }
            check_dst(&dst)?;
            Action::Multipath(Box::new(mp))
        }
        NXAST_BUNDLE | NXAST_BUNDLE_LOAD => decode_bundle(a, subtype == NXAST_BUNDLE_LOAD)?,
        NXAST_NAT => {
            if !in_ct() {
                return Err(bad(OfError::BAD_ACTION_ARGUMENT, "nat outside ct"));
            }
            check_nat(a)?;
            Action::Nat(a[10..].to_vec())
        }
        NXAST_SET_QUEUE if v10 => {
            fixed(16)?;
            Action::SetQueue(be32(a, 12))
        }
        NXAST_GROUP if v10 => {
            fixed(16)?;
            Action::Group(be32(a, 12))
        }
        NXAST_DEC_TTL if v10 => {
            fixed(16)?;
            Action::DecNwTtl
        }
        NXAST_PUSH_MPLS | NXAST_POP_MPLS if v10 => {
            fixed(16)?;
            let eth = be16(a, 10);
            if subtype == NXAST_PUSH_MPLS {
                if eth != 0x8847 && eth != 0x8848 {
                    return Err(bad(OfError::BAD_ACTION_ARGUMENT, "bad push_mpls ethertype"));
                }
                Action::PushMpls(eth)
            } else {
                Action::PopMpls(eth)
            }
        }
        NXAST_SET_MPLS_TTL if v10 => {
            fixed(16)?;
            Action::SetMplsTtl(a[10])
        }
        NXAST_DEC_MPLS_TTL if v10 => {
            fixed(16)?;
            Action::DecMplsTtl
        }
        NXAST_SET_TUNNEL => {
            fixed(16)?;
            Action::SetTunnel {
                id: u64::from(be32(a, 12)),
                wide: false,
            }
        }
        NXAST_SET_TUNNEL64 => {
            fixed(24)?;
            Action::SetTunnel {
                id: be64(a, 16),
                wide: true,
            }
        }
        NXAST_NOTE => Action::Note(a[10..].to_vec()),
        NXAST_EXIT => {
            fixed(16)?;
            Action::Exit
        }
        NXAST_CT_CLEAR => {
            fixed(16)?;
            Action::CtClear
        }
        NXAST_CONJUNCTION => {
            // OVS `decode_NXAST_RAW_CONJUNCTION` answers
            // `NXBAC_BAD_CONJUNCTION`; see the module docs.
            fixed(16)?;
            let (clause, n_clauses) = (a[10], a[11]);
            if !(2..=64).contains(&n_clauses) || clause >= n_clauses {
                return Err(bad(OfError::BAD_ACTION_ARGUMENT, "bad conjunction clause"));
            }
            Action::Conjunction {
                id: be32(a, 12),
                clause,
                n_clauses,
            }
        }
        NXAST_REG_LOAD if upto14 => {
            fixed(24)?;
            let (field, _) = field_header(&a[12..16])?;
            let dst = ofs_nbits(field, be16(a, 10));
            check_dst(&dst)?;
            let value = u128::from(be64(a, 16));
            if value >> dst.n_bits != 0 {
                return Err(bad(OfError::BAD_ACTION_ARGUMENT, "load value too wide"));
            }
            Action::Load { dst, value }
        }
        NXAST_REG_LOAD2 if upto14 => {
            let (field, value, mask, used) = oxm::decode_wire_set_field(&a[10..])?;
            let tail = a.get(10 + used..).ok_or_else(bad_len)?;
            if tail.iter().any(|&b| b != 0) {
                return Err(bad(OfError::BAD_SET_ARGUMENT, "nonzero reg_load2 padding"));
            }
            set_field_action(field, value, mask)?
        }
        NXAST_REG_MOVE if upto14 => {
            let n_bits = be16(a, 10);
            let (src_ofs, dst_ofs) = (be16(a, 12), be16(a, 14));
            decode_move(n_bits, src_ofs, dst_ofs, &a[16..])?
        }
        NXAST_OUTPUT_REG => {
            fixed(24)?;
            zeros(&a[18..24])?;
            let (field, _) = field_header(&a[12..16])?;
            let src = ofs_nbits(field, be16(a, 10));
            check_subfield(&src)?;
            Action::OutputReg {
                src,
                max_len: be16(a, 16),
            }
        }
        NXAST_OUTPUT_REG2 => {
            fixed(24)?;
            let (field, used) = field_header(&a[14..])?;
            zeros(&a[14 + used..])?;
            let src = ofs_nbits(field, be16(a, 10));
            check_subfield(&src)?;
            Action::OutputReg {
                src,
                max_len: be16(a, 12),
            }
        }
        NXAST_STACK_PUSH | NXAST_STACK_POP => {
            fixed(24)?;
            let (field, used) = field_header(&a[12..])?;
            let at = 12 + used;
            let n_bits = be16(a, at);
            zeros(&a[at + 2..])?;
            let sf = Subfield {
                field,
                ofs: be16(a, 10),
                n_bits,
            };
            if subtype == NXAST_STACK_PUSH {
                check_subfield(&sf)?;
                Action::StackPush(sf)
            } else {
                check_dst(&sf)?;
                Action::StackPop(sf)
            }
        }
        NXAST_DEC_TTL_CNT_IDS => {
            let n = usize::from(be16(a, 10));
            zeros(&a[12..16])?;
            if a.len() - 16 < 2 * n {
                return Err(bad_len());
            }
            Action::DecTtlIds((0..n).map(|i| be16(a, 16 + 2 * i)).collect())
        }
        NXAST_CONTROLLER => {
            fixed(16)?;
            zeros(&a[15..16])?;
            Action::Controller(Box::new(Controller {
                max_len: be16(a, 10),
                controller_id: be16(a, 12),
                reason: a[14],
                userdata: Vec::new(),
                pause: false,
                meter_id: NX_CTLR_NO_METER,
                v2: false,
            }))
        }
        NXAST_CONTROLLER2 => decode_controller2(a)?,
        NXAST_SAMPLE => {
            fixed(24)?;
            let probability = be16(a, 10);
            if probability == 0 {
                return Err(bad(OfError::BAD_ACTION_ARGUMENT, "sample probability 0"));
            }
            Action::Sample {
                probability,
                collector_set_id: be32(a, 12),
                obs_domain_id: be32(a, 16),
                obs_point_id: be32(a, 20),
            }
        }
        NXAST_CLONE => {
            zeros(&a[10..16])?;
            let depth = CLONE_DEPTH.with(|d| d.get());
            if depth >= MAX_CLONE_NESTING {
                return Err(bad(OfError::BAD_ACTION_ARGUMENT, "clone nested too deeply"));
            }
            CLONE_DEPTH.with(|d| d.set(depth + 1));
            let r = nested(&a[16..]);
            CLONE_DEPTH.with(|d| d.set(depth));
            Action::Clone(r?)
        }
        _ => {
            return Err(bad(
                OfError::BAD_ACTION_EXP_TYPE,
                "unsupported Nicira action",
            ))
        }
    })
}

/// `NXAST_LEARN` / `NXAST_LEARN2` (OVS `decode_NXAST_RAW_LEARN(2)`,
/// `decode_LEARN_specs`): zero pad bytes, a table other than 0xff, known
/// flags (`write_result` only in `LEARN2`, with a writable destination;
/// without it a zero result offset), each spec a defined source and
/// destination pair whose arguments fit in the action, and only zero
/// bytes after the terminating all-zero spec header. The bit ranges
/// are checked as `move`'s are (`BAD_SET_LEN`); the prerequisites against
/// the flow's match at flow-mod time (OVS `learn_check`).
fn decode_learn(a: &[u8], v2: bool) -> Result<Action, DecodeError> {
    let arg = |what| bad(OfError::BAD_ACTION_ARGUMENT, what);
    let head = if v2 { 40 } else { 32 };
    if a.len() < head {
        return Err(bad_len());
    }
    if a[27] != 0 {
        return Err(arg("nonzero learn pad"));
    }
    let mut l = Learn {
        idle_timeout: be16(a, 10),
        hard_timeout: be16(a, 12),
        priority: be16(a, 14),
        cookie: be64(a, 16),
        flags: be16(a, 24),
        table_id: a[26],
        fin_idle_timeout: be16(a, 28),
        fin_hard_timeout: be16(a, 30),
        limit: 0,
        result_dst: None,
        v2,
        specs: Vec::new(),
    };
    if l.table_id == 0xff {
        return Err(arg("learn into table 255"));
    }
    let mut pos = head;
    if v2 {
        zeros(&a[38..40])?;
        let known = NX_LEARN_F_SEND_FLOW_REM | NX_LEARN_F_DELETE_LEARNED | NX_LEARN_F_WRITE_RESULT;
        if l.flags & !known != 0 {
            return Err(arg("unknown learn flags"));
        }
        l.limit = be32(a, 32);
        let ofs = be16(a, 36);
        if l.flags & NX_LEARN_F_WRITE_RESULT != 0 {
            let (field, used) = field_header(&a[40..])?;
            let dst = Subfield {
                field,
                ofs,
                n_bits: 1,
            };
            check_dst(&dst)?;
            l.result_dst = Some(dst);
            pos += used;
        } else if ofs != 0 {
            return Err(arg("learn result offset without write_result"));
        }
    } else if l.flags & !(NX_LEARN_F_SEND_FLOW_REM | NX_LEARN_F_DELETE_LEARNED) != 0 {
        return Err(arg("unknown learn flags"));
    }
    while pos + 2 <= a.len() {
        let header = be16(a, pos);
        pos += 2;
        if header == 0 {
            break;
        }
        let n_bits = header & NX_LEARN_N_BITS_MASK;
        let imm = header & NX_LEARN_SRC_IMMEDIATE != 0;
        let dst_type = header & NX_LEARN_DST_MASK;
        if dst_type == NX_LEARN_DST_MASK || (dst_type == NX_LEARN_DST_OUTPUT && imm) {
            return Err(arg("undefined learn spec"));
        }
        let src_len = if imm {
            2 * usize::from(n_bits).div_ceil(16)
        } else {
            6
        };
        let dst_len = if dst_type == NX_LEARN_DST_OUTPUT {
            0
        } else {
            6
        };
        if a.len() - pos < src_len + dst_len {
            return Err(bad_len());
        }
        let subfield = |at: usize| -> Result<(Subfield, usize), DecodeError> {
            let (field, used) = field_header(&a[at..])?;
            let ofs = a
                .get(at + used..at + used + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(bad_len)?;
            let sf = Subfield { field, ofs, n_bits };
            check_subfield(&sf)?;
            Ok((sf, used + 2))
        };
        let src = if imm {
            let bytes = &a[pos..pos + src_len];
            // At most 128 bits: every field is (so a wider immediate
            // fails the destination check below anyway).
            let lead = bytes.len().saturating_sub(16);
            if bytes[..lead].iter().any(|&b| b != 0) {
                return Err(bad(
                    OfError::BAD_SET_LEN,
                    "learn immediate wider than 128 bits",
                ));
            }
            let v = bytes[lead..]
                .iter()
                .fold(0u128, |v, &b| (v << 8) | u128::from(b));
            if u32::from(n_bits) < 128 && v >> n_bits != 0 {
                return Err(arg("learn immediate wider than its bits"));
            }
            pos += src_len;
            LearnSrc::Imm(v)
        } else {
            let (sf, used) = subfield(pos)?;
            pos += used;
            LearnSrc::Field(sf)
        };
        let dst = if dst_type == NX_LEARN_DST_OUTPUT {
            LearnDst::Output
        } else {
            let (sf, used) = subfield(pos)?;
            pos += used;
            if dst_type == NX_LEARN_DST_LOAD {
                mf_writable(sf.field)?;
                LearnDst::Load(sf)
            } else {
                LearnDst::Match(sf)
            }
        };
        l.specs.push(LearnSpec { src, dst, n_bits });
    }
    if a.get(pos..).is_some_and(|t| t.iter().any(|&b| b != 0)) {
        return Err(arg("nonzero bytes after the learn specs"));
    }
    // `result_dst` carries the flag.
    l.flags &= !NX_LEARN_F_WRITE_RESULT;
    Ok(Action::Learn(Box::new(l)))
}

/// Append `learn` (OVS `encode_LEARN`): `NXAST_LEARN2` when it has a
/// limit or a result destination (or came as one), else `NXAST_LEARN`;
/// field headers in NXM form.
fn encode_learn(l: &Learn, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let v2 = l.v2 || l.limit != 0 || l.result_dst.is_some();
    let s = begin(out, if v2 { NXAST_LEARN2 } else { NXAST_LEARN });
    out.u16(l.idle_timeout);
    out.u16(l.hard_timeout);
    out.u16(l.priority);
    out.u64(l.cookie);
    let mut flags = l.flags & !NX_LEARN_F_WRITE_RESULT;
    if l.result_dst.is_some() {
        flags |= NX_LEARN_F_WRITE_RESULT;
    }
    out.u16(flags);
    out.u8(l.table_id);
    out.u8(0);
    out.u16(l.fin_idle_timeout);
    out.u16(l.fin_hard_timeout);
    if v2 {
        out.u32(l.limit);
        out.u16(l.result_dst.map_or(0, |d| d.ofs));
        out.u16(0);
        if let Some(d) = &l.result_dst {
            oxm::put_mf_header(d.field, Flavor::Nxm, out);
        }
    }
    let put_sf = |out: &mut Vec<u8>, sf: &Subfield| {
        oxm::put_mf_header(sf.field, Flavor::Nxm, out);
        out.u16(sf.ofs);
    };
    for spec in &l.specs {
        if spec.n_bits > NX_LEARN_N_BITS_MASK {
            return Err(EncodeError::Unsupported("learn spec over 1023 bits"));
        }
        let (src_bit, dst_bits) = (
            match spec.src {
                LearnSrc::Field(_) => 0,
                LearnSrc::Imm(_) => NX_LEARN_SRC_IMMEDIATE,
            },
            match spec.dst {
                LearnDst::Match(_) => 0,
                LearnDst::Load(_) => NX_LEARN_DST_LOAD,
                LearnDst::Output => NX_LEARN_DST_OUTPUT,
            },
        );
        out.u16(spec.n_bits | src_bit | dst_bits);
        match &spec.src {
            LearnSrc::Field(sf) => put_sf(out, sf),
            LearnSrc::Imm(v) => {
                let n = 2 * usize::from(spec.n_bits).div_ceil(16);
                for i in (0..n).rev() {
                    out.u8(if i < 16 { (v >> (8 * i)) as u8 } else { 0 });
                }
            }
        }
        match &spec.dst {
            LearnDst::Match(sf) | LearnDst::Load(sf) => put_sf(out, sf),
            LearnDst::Output => {}
        }
    }
    finish(out, s, if v2 { 40 } else { 32 })
}

/// `NXAST_BUNDLE(_LOAD)` (OVS `decode_bundle`): known fields and
/// algorithm, at most 2048 members of type `NXM_OF_IN_PORT`, each a port
/// one may output to, zero reserved bytes, a destination of at least 16
/// bits for `bundle_load` (and none for `bundle`).
fn decode_bundle(a: &[u8], load: bool) -> Result<Action, DecodeError> {
    if a.len() < 32 {
        return Err(bad_len());
    }
    let arg = |what| bad(OfError::BAD_ACTION_ARGUMENT, what);
    let (algorithm, fields, basis) = (be16(a, 10), be16(a, 12), be16(a, 14));
    let n = usize::from(be16(a, 20));
    if fields > 6 || n > BUNDLE_MAX_MEMBERS || algorithm > 1 || be32(a, 16) != NXM_OF_IN_PORT {
        return Err(arg("bad bundle arguments"));
    }
    zeros(&a[28..32])?;
    let dst = if load {
        let (field, _) = field_header(&a[24..28])?;
        let dst = ofs_nbits(field, be16(a, 22));
        if dst.n_bits < 16 {
            return Err(arg("bundle_load destination under 16 bits"));
        }
        check_dst(&dst)?;
        Some(dst)
    } else {
        if be16(a, 22) != 0 || be32(a, 24) != 0 {
            return Err(arg("bundle with a destination"));
        }
        None
    };
    if a.len() - 32 < 2 * n {
        return Err(bad_len());
    }
    let members: Vec<u16> = (0..n).map(|i| be16(a, 32 + 2 * i)).collect();
    // OVS `bundle_check`: each member is a port one may output to.
    for &m in &members {
        if (0xff00..0xfff8).contains(&m) || m == 0 || m == 0xffff {
            return Err(bad(OfError::BAD_OUT_PORT, "bad bundle member"));
        }
    }
    Ok(Action::Bundle(Box::new(Bundle {
        algorithm,
        fields,
        basis,
        members,
        dst,
    })))
}

/// `NXAST_CT` (OVS `decode_NXAST_RAW_CT`): `force` needs `commit`; a zone
/// field must be 16 bits; the nested actions may only be `nat` and writes
/// of `ct_mark`/`ct_label`, and without `commit` only a `nat` without
/// arguments.
fn decode_ct(a: &[u8], nested: &NestedDecode<'_>) -> Result<Action, DecodeError> {
    if a.len() < 24 {
        return Err(bad_len());
    }
    if in_ct() {
        return Err(bad(OfError::BAD_ACTION_ARGUMENT, "ct inside ct"));
    }
    let flags = be16(a, 10);
    if flags & NX_CT_F_FORCE != 0 && flags & NX_CT_F_COMMIT == 0 {
        return Err(bad(OfError::BAD_ACTION_ARGUMENT, "ct force without commit"));
    }
    let zone_src = be32(a, 12);
    let zone = if zone_src != 0 {
        let (field, _) = field_header(&a[12..16])?;
        let sf = ofs_nbits(field, be16(a, 16));
        check_subfield(&sf)?;
        if sf.n_bits != 16 {
            return Err(bad(OfError::BAD_SET_LEN, "ct zone field not 16 bits"));
        }
        CtZone::Field(sf)
    } else {
        CtZone::Imm(be16(a, 16))
    };
    let recirc_table = a[18];
    let alg = be16(a, 22);
    IN_CT.with(|c| c.set(true));
    let acts = nested(&a[24..]);
    IN_CT.with(|c| c.set(false));
    let acts = acts?;
    for n in &acts {
        let ok = match n {
            Action::Nat(body) => {
                flags & NX_CT_F_COMMIT != 0 || (be16(body, 2) == 0 && be16(body, 4) == 0)
            }
            // OVS `ofpact_get_mf_dst`: set_field, load and move (as OVN
            // writes `move:NXM_NX_XXREG0[0..31]->NXM_NX_CT_LABEL[96..127]`).
            Action::Load { dst, .. } | Action::Move { dst, .. } => {
                flags & NX_CT_F_COMMIT != 0
                    && matches!(
                        dst.field,
                        MfField::Oxm(OxmField::CtMark | OxmField::CtLabel)
                    )
            }
            Action::SetField { field, .. } => {
                flags & NX_CT_F_COMMIT != 0 && matches!(field, OxmField::CtMark | OxmField::CtLabel)
            }
            _ => false,
        };
        if !ok {
            return Err(bad(
                OfError::BAD_ACTION_ARGUMENT,
                "ct nested action other than nat or a ct_mark/ct_label write (or without commit)",
            ));
        }
    }
    Ok(Action::Ct(Box::new(Ct {
        flags,
        zone,
        recirc_table,
        alg,
        actions: acts,
    })))
}

/// The checks of OVS `decode_NXAST_RAW_NAT` on a whole `NXAST_NAT`
/// action: zero padding, known and compatible flags, options present for
/// every `range_present` bit, minima not zero, maxima not below minima.
fn check_nat(a: &[u8]) -> Result<(), DecodeError> {
    let arg = |what| Err(bad(OfError::BAD_ACTION_ARGUMENT, what));
    zeros(&a[10..12])?;
    let flags = be16(a, 12);
    let range = be16(a, 14);
    if flags & !NX_NAT_F_MASK != 0 || flags & 3 == 3 || flags & 0x18 == 0x18 {
        return arg("bad nat flags");
    }
    let mut opts = &a[16..];
    let mut take = |n: usize| -> Option<&[u8]> {
        let (h, t) = (opts.get(..n)?, opts.get(n..)?);
        opts = t;
        Some(h)
    };
    let mut af = false;
    if range & 1 != 0 {
        if range & 0xc != 0 {
            return arg("nat with IPv4 and IPv6 ranges");
        }
        let Some(min) = take(4).map(|b| be32(b, 0)) else {
            return arg("nat range truncated");
        };
        if min == 0 {
            return arg("nat IPv4 minimum 0");
        }
        af = true;
        if range & 2 != 0 {
            match take(4).map(|b| be32(b, 0)) {
                Some(max) if max >= min => {}
                _ => return arg("bad nat IPv4 maximum"),
            }
        }
    } else if range & 2 != 0 {
        return arg("nat IPv4 maximum without minimum");
    } else if range & 4 != 0 {
        let Some(min) = take(16).map(<[u8]>::to_vec) else {
            return arg("nat range truncated");
        };
        if min.iter().all(|&b| b == 0) {
            return arg("nat IPv6 minimum ::");
        }
        af = true;
        if range & 8 != 0 {
            match take(16) {
                Some(max) if max >= &min[..] => {}
                _ => return arg("bad nat IPv6 maximum"),
            }
        }
    } else if range & 8 != 0 {
        return arg("nat IPv6 maximum without minimum");
    }
    if range & 0x10 != 0 {
        if !af {
            return arg("nat port range without addresses");
        }
        let Some(min) = take(2).map(|b| be16(b, 0)) else {
            return arg("nat range truncated");
        };
        if min == 0 {
            return arg("nat port minimum 0");
        }
        if range & 0x20 != 0 {
            match take(2).map(|b| be16(b, 0)) {
                Some(max) if max >= min => {}
                _ => return arg("bad nat port maximum"),
            }
        }
    } else if range & 0x20 != 0 {
        return arg("nat port maximum without minimum");
    }
    Ok(())
}

/// Merge runs of `Load`s into one field whose bits follow on (OVS splits
/// loads wider than 64 bits into several `NXAST_REG_LOAD`s); with
/// `whole_to_set_field` (OpenFlow 1.0, where a set-field is sent as
/// `NXAST_REG_LOAD`s anyway), a load of a whole model field becomes a
/// set-field.
pub fn merge_loads(acts: &mut Vec<Action>, whole_to_set_field: bool) {
    // Only loads change: most action lists (every flow-mod's) have none,
    // and need no copy.
    if !acts.iter().any(|a| matches!(a, Action::Load { .. })) {
        return;
    }
    let mut out: Vec<Action> = Vec::with_capacity(acts.len());
    for a in acts.drain(..) {
        if let (
            Action::Load { dst, value },
            Some(Action::Load {
                dst: pdst,
                value: pvalue,
            }),
        ) = (&a, out.last_mut())
        {
            if pdst.field == dst.field
                && u32::from(pdst.ofs) + u32::from(pdst.n_bits) == u32::from(dst.ofs)
                && u32::from(pdst.n_bits) + u32::from(dst.n_bits) <= 128
            {
                *pvalue |= value << pdst.n_bits;
                pdst.n_bits += dst.n_bits;
                continue;
            }
        }
        out.push(a);
    }
    if whole_to_set_field {
        for a in &mut out {
            // NXM_OF_IP_TOS with the ECN bits clear is the DSCP.
            if let Action::Load {
                dst:
                    Subfield {
                        field: MfField::IpTos,
                        ofs: 0,
                        n_bits: 8,
                    },
                value,
            } = a
            {
                if *value & 3 == 0 {
                    *a = Action::SetField {
                        field: OxmField::IpDscp,
                        value: *value >> 2,
                    };
                }
                continue;
            }
            if let Action::Load {
                dst:
                    Subfield {
                        field: MfField::Oxm(f),
                        ofs: 0,
                        n_bits,
                    },
                value,
            } = a
            {
                let f = *f;
                let whole = u32::from(*n_bits) == MfField::Oxm(f).n_bits();
                let vlan_ok = f != OxmField::VlanVid || *value & 0x1000 != 0;
                if whole && vlan_ok && f.is_settable() && f != OxmField::InPort {
                    *a = Action::SetField {
                        field: f,
                        value: *value,
                    };
                }
            }
        }
    }
    *acts = out;
}

/// `move` from its parts (`NXAST_REG_MOVE`, `OFPAT_COPY_FIELD`): `hdrs` is
/// the source header, the destination header, then zero padding.
///
/// # Errors
/// As OVS `nxm_reg_move_check`.
pub fn decode_move(
    n_bits: u16,
    src_ofs: u16,
    dst_ofs: u16,
    hdrs: &[u8],
) -> Result<Action, DecodeError> {
    let (sf, used) = field_header(hdrs)?;
    let (df, used2) = field_header(&hdrs[used..])?;
    zeros(&hdrs[used + used2..])?;
    let src = Subfield {
        field: sf,
        ofs: src_ofs,
        n_bits,
    };
    let dst = Subfield {
        field: df,
        ofs: dst_ofs,
        n_bits,
    };
    check_subfield(&src)?;
    check_dst(&dst)?;
    Ok(Action::Move { src, dst })
}

/// A (possibly masked) set-field as the model holds it: a whole-field
/// model set-field, else a `Load` (contiguous masks only).
///
/// # Errors
/// `BAD_SET_ARGUMENT` for a value outside the mask or a mask that is not
/// one run of bits (xennet has no arbitrary-mask write), and the
/// destination checks.
pub fn set_field_action(field: MfField, value: u128, mask: u128) -> Result<Action, DecodeError> {
    if value & !mask != 0 {
        return Err(bad(
            OfError::BAD_SET_ARGUMENT,
            "set-field value outside its mask",
        ));
    }
    if mask == 0 {
        return Err(bad(
            OfError::BAD_SET_ARGUMENT,
            "set-field with an all-zero mask",
        ));
    }
    let ofs = mask.trailing_zeros();
    let n = 128 - mask.leading_zeros() - ofs;
    if mask >> ofs != ones(n) {
        return Err(bad(
            OfError::BAD_SET_ARGUMENT,
            "set-field mask is not one run of bits",
        ));
    }
    let dst = Subfield {
        field,
        ofs: ofs as u16,
        n_bits: n as u16,
    };
    check_dst(&dst)?;
    Ok(Action::Load {
        dst,
        value: value >> ofs,
    })
}

fn decode_controller2(a: &[u8]) -> Result<Action, DecodeError> {
    zeros(&a[10..16])?;
    let mut c = Controller {
        max_len: u16::MAX,
        reason: 1,
        controller_id: 0,
        userdata: Vec::new(),
        pause: false,
        meter_id: NX_CTLR_NO_METER,
        v2: true,
    };
    let mut rest = &a[16..];
    let prop_len = || bad(OfError::BAD_ACTION_LEN, "bad controller2 property length");
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(prop_len());
        }
        let typ = be16(rest, 0);
        let len = usize::from(be16(rest, 2));
        let padded = len.div_ceil(8) * 8;
        if len < 4 || padded > rest.len() {
            return Err(prop_len());
        }
        let body = &rest[4..len];
        let exact = |n: usize| {
            if body.len() == n {
                Ok(())
            } else {
                Err(prop_len())
            }
        };
        match typ {
            // 16-bit properties are 8 bytes long (value, 2 pad bytes) as
            // OVS `ofpprop_put_be16` writes them; 6 is accepted too.
            prop::MAX_LEN => {
                exact(2).or_else(|_| exact(4))?;
                c.max_len = be16(body, 0);
            }
            prop::CONTROLLER_ID => {
                exact(2).or_else(|_| exact(4))?;
                c.controller_id = be16(body, 0);
            }
            prop::REASON => {
                exact(1)?;
                c.reason = body[0];
            }
            prop::USERDATA => c.userdata = body.to_vec(),
            prop::PAUSE => c.pause = true,
            prop::METER_ID => {
                exact(4)?;
                c.meter_id = be32(body, 0);
            }
            // OVS `OFPPROP_UNKNOWN`: OFPBPC_BAD_TYPE, which xennet's
            // error set lacks; the nearest action error.
            _ => {
                return Err(bad(
                    OfError::BAD_ACTION_ARGUMENT,
                    "unknown controller2 property",
                ))
            }
        }
        rest = &rest[padded..];
    }
    Ok(Action::Controller(Box::new(c)))
}

/// Whether `f` is a variable-length field (`tun_metadata<n>`).
pub fn is_variable_len(f: MfField) -> bool {
    matches!(f, MfField::Oxm(OxmField::TunMetadata { .. }))
}

/// Append `NXAST_REG_LOAD2`: `f = value/mask` as one NXM TLV (masked when
/// `mask` does not cover the field).
///
/// # Errors
/// `Unsupported` when too long.
pub fn put_reg_load2(
    f: MfField,
    value: u128,
    mask: u128,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let s = begin(out, NXAST_REG_LOAD2);
    oxm::encode_wire_set_field(f, value & mask, mask, Flavor::Nxm, out);
    finish(out, s, 16)
}

/// Append a Nicira action header (type 0xffff, placeholder length,
/// vendor, subtype); returns its offset.
fn begin(out: &mut Vec<u8>, subtype: u16) -> usize {
    let start = out.len();
    out.u16(0xffff);
    out.u16(0);
    out.u32(NX_VENDOR_ID);
    out.u16(subtype);
    start
}

/// Pad the action that starts at `start` to 8 bytes (at least `min`) and
/// set its length.
fn finish(out: &mut Vec<u8>, start: usize, min: usize) -> Result<(), EncodeError> {
    while out.len() - start < min {
        out.u8(0);
    }
    out.pad8(start);
    let len = u16::try_from(out.len() - start)
        .map_err(|_| EncodeError::Unsupported("action too long"))?;
    out.patch16(start + 2, len);
    Ok(())
}

/// Encode `a` if it is one of the Nicira-only actions (everything this
/// module decodes except those the version codecs have a standard form
/// for); returns whether it did. `version` picks the forms OVS sends
/// (`REG_LOAD`/`REG_MOVE` up to 1.4, masked `OFPAT_SET_FIELD` and
/// `OFPAT_COPY_FIELD` in 1.5); `nested` encodes a nested action list.
///
/// # Errors
/// `Unsupported` for a value or subfield the wire cannot carry.
pub fn encode(
    a: &Action,
    version: u8,
    out: &mut Vec<u8>,
    nested: &NestedEncode<'_>,
) -> Result<bool, EncodeError> {
    let flavor = if version >= OFP15_VERSION {
        Flavor::Oxm
    } else {
        Flavor::Nxm
    };
    match a {
        Action::Resubmit { in_port, table } => {
            // Always the _TABLE form (0xff = current table), as OVS
            // encodes resubmits it did not decode from NXAST_RESUBMIT.
            let p = port_to_ofp10(*in_port)
                .ok_or(EncodeError::Unsupported("resubmit port beyond 16 bits"))?;
            let s = begin(out, NXAST_RESUBMIT_TABLE);
            out.u16(p);
            out.u8(*table);
            out.zeros(3);
            finish(out, s, 16)?;
        }
        Action::Load { dst, value } => {
            if u32::from(dst.n_bits) < 128 && value >> dst.n_bits != 0 {
                return Err(EncodeError::Unsupported(
                    "load value wider than its subfield",
                ));
            }
            if version >= OFP15_VERSION {
                let s = out.len();
                out.u16(OFPAT_SET_FIELD);
                out.u16(0);
                let mask = ones(u32::from(dst.n_bits)) << dst.ofs;
                oxm::encode_wire_set_field(dst.field, value << dst.ofs, mask, flavor, out);
                finish(out, s, 8)?;
            } else if is_variable_len(dst.field) {
                // OVS `set_field_to_nxast`: variable-length fields go as
                // NXAST_REG_LOAD2.
                let mask = ones(u32::from(dst.n_bits)) << dst.ofs;
                put_reg_load2(dst.field, value << dst.ofs, mask, out)?;
            } else {
                // One NXAST_REG_LOAD per 64 bits, low bits first.
                let mut done = 0u16;
                while done < dst.n_bits {
                    let n = (dst.n_bits - done).min(64);
                    let seg = Subfield {
                        field: dst.field,
                        ofs: dst.ofs + done,
                        n_bits: n,
                    };
                    let (h, exp) = dst.field.header(flavor);
                    if exp.is_some() {
                        return Err(EncodeError::Unsupported("load into an experimenter field"));
                    }
                    let s = begin(out, NXAST_REG_LOAD);
                    out.u16(enc_ofs_nbits(&seg)?);
                    out.u32(h);
                    out.u64(((value >> done) & ones(u32::from(n))) as u64);
                    finish(out, s, 24)?;
                    done += n;
                }
            }
        }
        Action::Move { src, dst } => {
            let s = out.len();
            if version >= OFP15_VERSION {
                out.u16(OFPAT15_COPY_FIELD);
                out.u16(0);
                out.u16(dst.n_bits);
                out.u16(src.ofs);
                out.u16(dst.ofs);
                out.zeros(2);
            } else {
                begin(out, NXAST_REG_MOVE);
                out.u16(dst.n_bits);
                out.u16(src.ofs);
                out.u16(dst.ofs);
            }
            oxm::put_mf_header(src.field, flavor, out);
            oxm::put_mf_header(dst.field, flavor, out);
            finish(out, s, 16)?;
        }
        Action::ResubmitCt { in_port, table } => {
            let p = port_to_ofp10(*in_port)
                .ok_or(EncodeError::Unsupported("resubmit port beyond 16 bits"))?;
            let s = begin(out, NXAST_RESUBMIT_TABLE_CT);
            out.u16(p);
            out.u8(*table);
            out.zeros(3);
            finish(out, s, 16)?;
        }
        Action::Ct(ct) => {
            let s = begin(out, NXAST_CT);
            out.u16(ct.flags);
            match ct.zone {
                CtZone::Imm(z) => {
                    out.u32(0);
                    out.u16(z);
                }
                CtZone::Field(sf) => {
                    let (h, exp) = sf.field.header(Flavor::Nxm);
                    if exp.is_some() {
                        return Err(EncodeError::Unsupported("ct zone in an experimenter field"));
                    }
                    out.u32(h);
                    out.u16(enc_ofs_nbits(&sf)?);
                }
            }
            out.u8(ct.recirc_table);
            out.zeros(3);
            out.u16(ct.alg);
            nested(&ct.actions, out)?;
            finish(out, s, 24)?;
        }
        Action::Multipath(mp) => {
            let (h, exp) = mp.dst.field.header(Flavor::Nxm);
            if exp.is_some() {
                return Err(EncodeError::Unsupported(
                    "multipath into an experimenter field",
                ));
            }
            let s = begin(out, NXAST_MULTIPATH);
            out.u16(mp.fields);
            out.u16(mp.basis);
            out.zeros(2);
            out.u16(mp.algorithm);
            out.u16(mp.max_link);
            out.u32(mp.arg);
            out.zeros(2);
            out.u16(enc_ofs_nbits(&mp.dst)?);
            out.u32(h);
            finish(out, s, 32)?;
        }
        Action::Bundle(b) => {
            let n = u16::try_from(b.members.len())
                .map_err(|_| EncodeError::Unsupported("too many bundle members"))?;
            let s = begin(
                out,
                if b.dst.is_some() {
                    NXAST_BUNDLE_LOAD
                } else {
                    NXAST_BUNDLE
                },
            );
            out.u16(b.algorithm);
            out.u16(b.fields);
            out.u16(b.basis);
            out.u32(NXM_OF_IN_PORT);
            out.u16(n);
            match &b.dst {
                Some(d) => {
                    let (h, exp) = d.field.header(Flavor::Nxm);
                    if exp.is_some() {
                        return Err(EncodeError::Unsupported(
                            "bundle_load into an experimenter field",
                        ));
                    }
                    out.u16(enc_ofs_nbits(d)?);
                    out.u32(h);
                }
                None => {
                    out.u16(0);
                    out.u32(0);
                }
            }
            out.zeros(4);
            for m in &b.members {
                out.u16(*m);
            }
            finish(out, s, 32)?;
        }
        Action::Learn(l) => encode_learn(l, out)?,
        Action::FinTimeout { idle, hard } => {
            let s = begin(out, NXAST_FIN_TIMEOUT);
            out.u16(*idle);
            out.u16(*hard);
            finish(out, s, 16)?;
        }
        Action::CheckPktLarger { len, dst } => {
            let s = begin(out, NXAST_CHECK_PKT_LARGER);
            out.u16(*len);
            out.u16(dst.ofs);
            oxm::put_mf_header(dst.field, Flavor::Nxm, out);
            finish(out, s, 24)?;
        }
        Action::Nat(body) => {
            let s = begin(out, NXAST_NAT);
            out.extend_from_slice(body);
            finish(out, s, 16)?;
        }
        Action::Note(bytes) => {
            let s = begin(out, NXAST_NOTE);
            out.extend_from_slice(bytes);
            finish(out, s, 16)?;
        }
        Action::Exit => {
            let s = begin(out, NXAST_EXIT);
            finish(out, s, 16)?;
        }
        Action::CtClear => {
            let s = begin(out, NXAST_CT_CLEAR);
            finish(out, s, 16)?;
        }
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            let s = begin(out, NXAST_CONJUNCTION);
            out.push(*clause);
            out.push(*n_clauses);
            out.u32(*id);
            finish(out, s, 16)?;
        }
        Action::DecTtlIds(ids) => {
            let n = u16::try_from(ids.len())
                .map_err(|_| EncodeError::Unsupported("too many controller ids"))?;
            let s = begin(out, NXAST_DEC_TTL_CNT_IDS);
            out.u16(n);
            out.zeros(4);
            for id in ids {
                out.u16(*id);
            }
            finish(out, s, 16)?;
        }
        Action::SetTunnel { id, wide } => {
            if let (false, Ok(id32)) = (*wide, u32::try_from(*id)) {
                let s = begin(out, NXAST_SET_TUNNEL);
                out.zeros(2);
                out.u32(id32);
                finish(out, s, 16)?;
            } else {
                let s = begin(out, NXAST_SET_TUNNEL64);
                out.zeros(6);
                out.u64(*id);
                finish(out, s, 24)?;
            }
        }
        Action::OutputReg { src, max_len } => {
            let (h, exp) = src.field.header(Flavor::Nxm);
            if exp.is_none() {
                let s = begin(out, NXAST_OUTPUT_REG);
                out.u16(enc_ofs_nbits(src)?);
                out.u32(h);
                out.u16(*max_len);
                finish(out, s, 24)?;
            } else {
                let s = begin(out, NXAST_OUTPUT_REG2);
                out.u16(enc_ofs_nbits(src)?);
                out.u16(*max_len);
                oxm::put_mf_header(src.field, Flavor::Nxm, out);
                finish(out, s, 24)?;
            }
        }
        Action::StackPush(sf) | Action::StackPop(sf) => {
            let sub = if matches!(a, Action::StackPush(_)) {
                NXAST_STACK_PUSH
            } else {
                NXAST_STACK_POP
            };
            let s = begin(out, sub);
            out.u16(sf.ofs);
            oxm::put_mf_header(sf.field, Flavor::Nxm, out);
            out.u16(sf.n_bits);
            finish(out, s, 24)?;
        }
        Action::Clone(acts) => {
            let s = begin(out, NXAST_CLONE);
            out.zeros(6);
            nested(acts, out)?;
            finish(out, s, 16)?;
        }
        Action::Controller(c) => {
            let v2 = c.v2 || !c.userdata.is_empty() || c.pause || c.meter_id != NX_CTLR_NO_METER;
            if v2 {
                let s = begin(out, NXAST_CONTROLLER2);
                out.zeros(6);
                let prop =
                    |out: &mut Vec<u8>, typ: u16, body: &[u8]| -> Result<(), EncodeError> {
                        let p = out.len();
                        out.u16(typ);
                        out.u16(u16::try_from(4 + body.len()).map_err(|_| {
                            EncodeError::Unsupported("controller userdata too long")
                        })?);
                        out.extend_from_slice(body);
                        out.pad8(p);
                        Ok(())
                    };
                // 16-bit values with 2 pad bytes (OVS `ofpprop_put_be16`).
                let be16p = |v: u16| [(v >> 8) as u8, v as u8, 0, 0];
                if c.max_len != u16::MAX {
                    prop(out, prop::MAX_LEN, &be16p(c.max_len))?;
                }
                if c.controller_id != 0 {
                    prop(out, prop::CONTROLLER_ID, &be16p(c.controller_id))?;
                }
                if c.reason != 1 {
                    prop(out, prop::REASON, &[c.reason])?;
                }
                if !c.userdata.is_empty() {
                    prop(out, prop::USERDATA, &c.userdata)?;
                }
                if c.pause {
                    prop(out, prop::PAUSE, &[])?;
                }
                if c.meter_id != NX_CTLR_NO_METER {
                    prop(out, prop::METER_ID, &c.meter_id.to_be_bytes())?;
                }
                finish(out, s, 16)?;
            } else {
                let s = begin(out, NXAST_CONTROLLER);
                out.u16(c.max_len);
                out.u16(c.controller_id);
                out.u8(c.reason);
                out.u8(0);
                finish(out, s, 16)?;
            }
        }
        Action::Sample {
            probability,
            collector_set_id,
            obs_domain_id,
            obs_point_id,
        } => {
            let s = begin(out, NXAST_SAMPLE);
            out.u16(*probability);
            out.u32(*collector_set_id);
            out.u32(*obs_domain_id);
            out.u32(*obs_point_id);
            finish(out, s, 24)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
