//! Nicira (Open vSwitch) extension numbers shared by the OpenFlow 1.0
//! vendor and 1.3 experimenter codecs (OVS `include/openflow/nicira-ext.h`,
//! `lib/ofp-msgs.h`, `lib/ofp-actions.c`), and the codec of the Nicira
//! messages that are the same in every OpenFlow version.

use crate::error::{DecodeError, OfError};
use crate::model::Msg;
use crate::wire::{err, Put, Rd};

/// `NX_VENDOR_ID` (Nicira).
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// `NXT_ROLE_REQUEST`.
pub const NXT_ROLE_REQUEST: u32 = 10;
/// `NXT_ROLE_REPLY`.
pub const NXT_ROLE_REPLY: u32 = 11;
/// `NXT_SET_FLOW_FORMAT`.
pub const NXT_SET_FLOW_FORMAT: u32 = 12;
/// `NXT_FLOW_MOD`.
pub const NXT_FLOW_MOD: u32 = 13;
/// `NXT_FLOW_REMOVED`.
pub const NXT_FLOW_REMOVED: u32 = 14;
/// `NXT_FLOW_MOD_TABLE_ID`.
pub const NXT_FLOW_MOD_TABLE_ID: u32 = 15;
/// `NXT_SET_PACKET_IN_FORMAT`.
pub const NXT_SET_PACKET_IN_FORMAT: u32 = 16;
/// `NXT_PACKET_IN`.
pub const NXT_PACKET_IN: u32 = 17;
/// `NXT_SET_ASYNC_CONFIG`.
pub const NXT_SET_ASYNC_CONFIG: u32 = 19;
/// `NXT_SET_CONTROLLER_ID`.
pub const NXT_SET_CONTROLLER_ID: u32 = 20;
/// `NXT_CT_FLUSH_ZONE` (`struct nx_zone_id`: 6 zero bytes, the zone).
pub const NXT_CT_FLUSH_ZONE: u32 = 29;
/// `NXST_FLOW`.
pub const NXST_FLOW: u32 = 0;
/// `NXST_AGGREGATE`.
pub const NXST_AGGREGATE: u32 = 1;
/// `NXFF_OPENFLOW10`: flow format with `ofp_match`.
pub const NXFF_OPENFLOW10: u32 = 0;
/// `NXFF_NXM`: flow format with NXM matches.
pub const NXFF_NXM: u32 = 2;

/// `NXET_VENDOR`: error type of Nicira vendor errors in OpenFlow 1.0.
pub const NXET_VENDOR: u16 = 0xb0c2;
/// `NXVC_VENDOR_ERROR`: its only code; `nx_vendor_error` follows.
pub const NXVC_VENDOR_ERROR: u16 = 0;
/// `NXAST_RESUBMIT` (Nicira action subtype).
pub const NXAST_RESUBMIT: u16 = 1;
/// `NXAST_SET_QUEUE` (Nicira action subtype).
pub const NXAST_SET_QUEUE: u16 = 4;
/// `NXAST_REG_LOAD` (Nicira action subtype).
pub const NXAST_REG_LOAD: u16 = 7;
/// `NXAST_RESUBMIT_TABLE` (Nicira action subtype).
pub const NXAST_RESUBMIT_TABLE: u16 = 14;
/// `NXAST_DEC_TTL` (Nicira action subtype).
pub const NXAST_DEC_TTL: u16 = 18;
/// `NXAST_WRITE_METADATA` (Nicira action subtype).
pub const NXAST_WRITE_METADATA: u16 = 22;
/// `NXAST_REG_LOAD2` (Nicira action subtype).
pub const NXAST_REG_LOAD2: u16 = 33;
/// `NXAST_GROUP` (Nicira action subtype).
pub const NXAST_GROUP: u16 = 40;
/// `NXAST_PUSH_MPLS` (Nicira action subtype).
pub const NXAST_PUSH_MPLS: u16 = 23;
/// `NXAST_POP_MPLS` (Nicira action subtype).
pub const NXAST_POP_MPLS: u16 = 24;
/// `NXAST_SET_MPLS_TTL` (Nicira action subtype).
pub const NXAST_SET_MPLS_TTL: u16 = 25;
/// `NXAST_DEC_MPLS_TTL` (Nicira action subtype).
pub const NXAST_DEC_MPLS_TTL: u16 = 26;

// ---------------------------------------------------------------------------
// The Nicira messages that are the same in every OpenFlow version (OVS
// `lib/ofp-msgs.h`, `NXT 1.0+`): their bodies after the `nicira_header`
// (1.0 `OFPT_VENDOR`) or the experimenter header (1.3+ `OFPT_EXPERIMENTER`).
// The version codecs handle the others (1.0: flow format, flow-mod,
// flow-removed, packet-in, async config, roles).

/// Decode the body of Nicira message `subtype` if it is one that every
/// version shares (`NXT_SET_PACKET_IN_FORMAT`, `NXT_PACKET_IN2`,
/// `NXT_RESUME`, `NXT_SET_CONTROLLER_ID`, `NXT_CT_FLUSH_ZONE`, `NXT_FLOW_MOD_TABLE_ID`,
/// `NXT_TLV_TABLE_*`); `None` for other subtypes.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN` for a body of the wrong length, the messages'
/// own errors.
pub(crate) fn get_common(
    subtype: u32,
    r: &mut Rd<'_>,
    version: u8,
) -> Result<Option<Msg>, DecodeError> {
    let m = match subtype {
        NXT_SET_PACKET_IN_FORMAT => Msg::NxSetPacketInFormat(r.u32()?),
        crate::packet_in2::NXT_PACKET_IN2 => {
            return Ok(Some(Msg::NxPacketIn2(crate::packet_in2::get_body(
                r.rest(),
                version,
            )?)));
        }
        crate::packet_in2::NXT_RESUME => {
            return Ok(Some(Msg::NxResume(crate::packet_in2::get_resume(
                r.rest(),
                version,
            )?)));
        }
        NXT_SET_CONTROLLER_ID => {
            r.skip(6)?;
            Msg::NxSetControllerId(r.u16()?)
        }
        NXT_CT_FLUSH_ZONE => Msg::NxCtFlushZone(get_nx_zone_id(r)?),
        NXT_FLOW_MOD_TABLE_ID => {
            let set = r.u8()? != 0;
            r.skip(7)?;
            Msg::NxFlowModTableId(set)
        }
        crate::tlv::NXT_TLV_TABLE_MOD => Msg::NxTlvTableMod(crate::tlv::get_table_mod(r)?),
        crate::tlv::NXT_TLV_TABLE_REQUEST => Msg::NxTlvTableRequest,
        crate::tlv::NXT_TLV_TABLE_REPLY => Msg::NxTlvTableReply(crate::tlv::get_table_reply(r)?),
        _ => return Ok(None),
    };
    r.end()?;
    Ok(Some(m))
}

/// The subtype of `msg` if it is one of the Nicira messages every version
/// shares ([`get_common`]).
pub(crate) fn common_subtype(msg: &Msg) -> Option<u32> {
    Some(match msg {
        Msg::NxSetPacketInFormat(_) => NXT_SET_PACKET_IN_FORMAT,
        Msg::NxPacketIn2(_) => crate::packet_in2::NXT_PACKET_IN2,
        Msg::NxResume(_) => crate::packet_in2::NXT_RESUME,
        Msg::NxSetControllerId(_) => NXT_SET_CONTROLLER_ID,
        Msg::NxCtFlushZone(_) => NXT_CT_FLUSH_ZONE,
        Msg::NxFlowModTableId(_) => NXT_FLOW_MOD_TABLE_ID,
        Msg::NxTlvTableMod(_) => crate::tlv::NXT_TLV_TABLE_MOD,
        Msg::NxTlvTableRequest => crate::tlv::NXT_TLV_TABLE_REQUEST,
        Msg::NxTlvTableReply(_) => crate::tlv::NXT_TLV_TABLE_REPLY,
        _ => return None,
    })
}

/// Append the body of `msg`, one of the messages [`common_subtype`]
/// names (nothing for others), in OpenFlow `version` (the match flavor
/// of `NXT_PACKET_IN2`'s and `NXT_RESUME`'s pipeline fields: NXM in 1.0,
/// OXM in 1.3+).
pub(crate) fn put_common(out: &mut Vec<u8>, msg: &Msg, version: u8) {
    match msg {
        Msg::NxSetPacketInFormat(f) => out.u32(*f),
        Msg::NxPacketIn2(p) | Msg::NxResume(p) => crate::packet_in2::put_body(p, version, out),
        Msg::NxSetControllerId(id) | Msg::NxCtFlushZone(id) => {
            out.zeros(6);
            out.u16(*id);
        }
        Msg::NxFlowModTableId(set) => {
            out.u8(u8::from(*set));
            out.zeros(7);
        }
        Msg::NxTlvTableMod(m) => crate::tlv::put_table_mod(out, m),
        Msg::NxTlvTableReply(r) => crate::tlv::put_table_reply(out, r),
        _ => {}
    }
}

/// `struct nx_zone_id` (OVS `nicira-ext.h`): 6 reserved bytes, which must
/// be zero (OVS: `NXBRC_MUST_BE_ZERO`; xennet's codec has no Nicira
/// vendor errors and answers `OFPBRC_EPERM`), then the zone.
pub(crate) fn get_nx_zone_id(rd: &mut Rd<'_>) -> Result<u16, DecodeError> {
    for _ in 0..6 {
        if rd.u8()? != 0 {
            return Err(err(
                OfError::BAD_REQUEST_EPERM,
                "nonzero reserved bytes in nx_zone_id (NXBRC_MUST_BE_ZERO)",
            ));
        }
    }
    rd.u16()
}
