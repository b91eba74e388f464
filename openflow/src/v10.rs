//! OpenFlow 1.0 message dispatch (OpenFlow Switch Specification 1.0.0,
//! Open vSwitch `include/openflow/openflow-1.0.h`), with the Nicira vendor
//! extensions that plain `ovs-ofctl` uses (`include/openflow/nicira-ext.h`,
//! message numbers from `include/openvswitch/ofp-msgs.h`): the `ofp_type`
//! numbers, the message and `nicira_header`s, the connection's
//! [`DecodeOptions`] and [`EncodeOptions`], and which family codec reads
//! and writes each body (see the crate documentation). What is particular
//! to 1.0 lives in the families too, with Open vSwitch's translations:
//! 16-bit ports ([`crate::port`]), `ofp_match` ([`crate::ofp_match`]),
//! 1.0 actions ([`crate::actions`]) and instructions as actions
//! ([`crate::instructions`]), 1.0 and Nicira error numbering
//! ([`crate::error`]).
//!
//! Nicira messages (`OFPT_VENDOR`, vendor 0x00002320): those every
//! version shares ([`crate::nicira`]), and the 1.0-only
//! `NXT_ROLE_REQUEST`/`REPLY` ([`crate::switch`]), `NXT_SET_FLOW_FORMAT`,
//! `NXT_FLOW_MOD` ([`crate::flow_mod`]), `NXT_FLOW_REMOVED`
//! ([`crate::flow`]), `NXT_PACKET_IN` ([`crate::packet`]),
//! `NXT_SET_ASYNC_CONFIG` ([`crate::async_config`]), and the vendor
//! statistics `NXST_FLOW` and `NXST_AGGREGATE` ([`crate::multipart`]).
//! Flow monitors ([`crate::monitor`]) and conntrack flushes
//! ([`crate::ct_flush`]) have their own codecs, which the connection
//! consults before this one. Other Nicira subtypes (groups, `NXT_RESUME`,
//! …) are `BAD_EXP_TYPE`, sent as 1.0 `OFPBRC_BAD_SUBTYPE`.
//!
//! Statistics replies are decoded one message at a time (`OFPSF_REPLY_MORE`
//! stays in `flags`); the encoder splits replies past 64 KiB.
//!
//! The decoder is stateless; what depends on the connection's Nicira
//! settings is passed in [`DecodeOptions`] (flow-mod table ids) and
//! [`EncodeOptions`] (flow format and packet-in format for the messages
//! the switch sends). The functions and numbers re-exported here live in
//! their families.

pub use crate::actions::{
    decode_actions_ofp10 as decode_actions, encode_actions_ofp10 as encode_actions,
};
use crate::error::{decode_error_ofp10, encode_error_ofp10};
use crate::error::{DecodeError, OfError};
use crate::flow::{
    decode_flow_removed, decode_nx_flow_removed, encode_flow_removed, encode_nx_flow_removed,
};
use crate::flow_mod::{decode_flow_mod, decode_nx_flow_mod, encode_flow_mod, encode_nx_flow_mod};
use crate::header::{self, Header, HEADER_LEN, OFP10_VERSION};
use crate::model::{EncodeError, Msg, PortStatus};
use crate::multipart::{
    decode_stats_reply, decode_stats_request, encode_stats_reply, encode_stats_request,
};
pub use crate::multipart::{
    OFPSF_REPLY_MORE, OFPST_AGGREGATE, OFPST_DESC, OFPST_FLOW, OFPST_PORT, OFPST_PORT_DESC,
    OFPST_QUEUE, OFPST_TABLE, OFPST_VENDOR,
};
pub use crate::nicira::*;
pub use crate::ofp_match::{match_fits_ofp10, wildcards};
use crate::packet::{
    decode_nx_packet_in, decode_packet_in, decode_packet_out, encode_nx_packet_in,
    encode_packet_in, encode_packet_out,
};
use crate::port::{decode_phy_port, decode_port_mod, encode_phy_port, encode_port_mod};
pub use crate::port::{features_from_ofp10, features_to_ofp10, port_from_ofp10, port_to_ofp10};
use crate::switch::{
    decode_features_reply, encode_features_reply, get_nx_role, get_switch_config, put_nx_role,
    put_switch_config,
};
pub use crate::switch::{OFP10_ACTIONS_BITMAP, OFPC10_ARP_MATCH_IP};
pub use crate::table::TABLE_MAX_ENTRIES;
use crate::wire::{self, err, finish, unsupported, Put, Rd};

// ---------------------------------------------------------------------------
// Wire numbers.

/// `OFPT_ECHO_REQUEST`.
pub const OFPT_ECHO_REQUEST: u8 = 2;
/// `OFPT_ECHO_REPLY`.
pub const OFPT_ECHO_REPLY: u8 = 3;
/// `OFPT_VENDOR`.
pub const OFPT_VENDOR: u8 = 4;
/// `OFPT_FEATURES_REQUEST`.
pub const OFPT_FEATURES_REQUEST: u8 = 5;
/// `OFPT_FEATURES_REPLY`.
pub const OFPT_FEATURES_REPLY: u8 = 6;
/// `OFPT_GET_CONFIG_REQUEST`.
pub const OFPT_GET_CONFIG_REQUEST: u8 = 7;
/// `OFPT_GET_CONFIG_REPLY`.
pub const OFPT_GET_CONFIG_REPLY: u8 = 8;
/// `OFPT_SET_CONFIG`.
pub const OFPT_SET_CONFIG: u8 = 9;
/// `OFPT_PACKET_IN`.
pub const OFPT_PACKET_IN: u8 = 10;
/// `OFPT_FLOW_REMOVED`.
pub const OFPT_FLOW_REMOVED: u8 = 11;
/// `OFPT_PORT_STATUS`.
pub const OFPT_PORT_STATUS: u8 = 12;
/// `OFPT_PACKET_OUT`.
pub const OFPT_PACKET_OUT: u8 = 13;
/// `OFPT_FLOW_MOD`.
pub const OFPT_FLOW_MOD: u8 = 14;
/// `OFPT_PORT_MOD`.
pub const OFPT_PORT_MOD: u8 = 15;
/// `OFPT_STATS_REQUEST`.
pub const OFPT_STATS_REQUEST: u8 = 16;
/// `OFPT_STATS_REPLY`.
pub const OFPT_STATS_REPLY: u8 = 17;
/// `OFPT_BARRIER_REQUEST`.
pub const OFPT_BARRIER_REQUEST: u8 = 18;
/// `OFPT_BARRIER_REPLY`.
pub const OFPT_BARRIER_REPLY: u8 = 19;

// ---------------------------------------------------------------------------
// Options.

/// Connection state the 1.0 decoder needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    /// `NXT_FLOW_MOD_TABLE_ID` was enabled: the high byte of a flow-mod
    /// command is always the table id (so 0 means table 0). When false, a
    /// nonzero high byte is still taken as the table id (lenient), and a
    /// zero one means table 0 for adds and every table (`OFPTT_ALL`) for
    /// modify/delete, which is what Open vSwitch does without the
    /// extension.
    pub flow_mod_table_id: bool,
}

/// Formats for the messages that exist both as 1.0 and Nicira messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// `NXT_SET_FLOW_FORMAT` chose `NXFF_NXM`: flow-mods become
    /// `NXT_FLOW_MOD` and flow-removeds `NXT_FLOW_REMOVED`, with NXM
    /// matches (which can express every model match).
    pub nxm: bool,
    /// `NXT_SET_PACKET_IN_FORMAT` chose `NXPIF_NXT_PACKET_IN` (1):
    /// packet-ins become `NXT_PACKET_IN`.
    pub nx_packet_in: bool,
}

// ---------------------------------------------------------------------------
// Reading and writing helpers.

fn short() -> DecodeError {
    err(OfError::BAD_LEN, "message truncated")
}

/// Start a message: header with a placeholder length. Returns its offset.
fn begin(out: &mut Vec<u8>, typ: u8, xid: u32) -> usize {
    wire::begin(out, OFP10_VERSION, typ, xid)
}

/// Start a Nicira vendor message (`nicira_header`).
fn begin_nx(out: &mut Vec<u8>, subtype: u32, xid: u32) -> usize {
    let start = begin(out, OFPT_VENDOR, xid);
    out.u32(NX_VENDOR_ID);
    out.u32(subtype);
    start
}

// ---------------------------------------------------------------------------
// Errors.

// ---------------------------------------------------------------------------
// Flow removed, packet in/out, ports, config.

// ---------------------------------------------------------------------------
// Statistics.

// ---------------------------------------------------------------------------
// Vendor messages.

fn decode_vendor(r: &mut Rd, opts: &DecodeOptions) -> Result<Msg, DecodeError> {
    if r.u32()? != NX_VENDOR_ID {
        return Err(err(OfError::BAD_EXPERIMENTER, "unknown vendor"));
    }
    let subtype = r.u32()?;
    if let Some(m) = crate::nicira::get_common(subtype, r, header::OFP10_VERSION)? {
        return Ok(m);
    }
    let msg = match subtype {
        NXT_SET_FLOW_FORMAT => Msg::NxSetFlowFormat(r.u32()?),
        NXT_FLOW_MOD => return Ok(Msg::FlowMod(decode_nx_flow_mod(r, opts)?)),
        NXT_FLOW_REMOVED => return Ok(Msg::FlowRemoved(decode_nx_flow_removed(r)?)),
        NXT_PACKET_IN => return Ok(Msg::PacketIn(decode_nx_packet_in(r)?)),
        // nx_async_config is laid out as 1.3's ofp_async_config.
        NXT_SET_ASYNC_CONFIG => {
            Msg::SetAsync(crate::async_config::get_config(r, header::OFP13_VERSION)?)
        }
        NXT_ROLE_REQUEST | NXT_ROLE_REPLY => {
            let m = get_nx_role(r)?;
            if subtype == NXT_ROLE_REQUEST {
                Msg::RoleRequest(m)
            } else {
                Msg::RoleReply(m)
            }
        }
        _ => return Err(err(OfError::BAD_EXP_TYPE, "unknown Nicira subtype")),
    };
    r.end()?;
    Ok(msg)
}

// ---------------------------------------------------------------------------
// Entry points.

/// Decode one OpenFlow 1.0 message (`buf` is the whole message, `h` its
/// parsed header), with [`DecodeOptions::default`].
///
/// # Errors
/// The [`OfError`] to send back (1.3 numbering; [`encode`] maps it to 1.0).
pub fn decode(h: &Header, buf: &[u8]) -> Result<Msg, DecodeError> {
    decode_with(h, buf, &DecodeOptions::default())
}

/// Decode one OpenFlow 1.0 message under the connection's options.
///
/// # Errors
/// The [`OfError`] to send back: `BAD_REQUEST/BAD_LEN` for truncated or
/// over-long fixed-size messages, `BAD_TYPE` for unknown types,
/// `BAD_EXPERIMENTER`/`BAD_EXP_TYPE` for unknown vendors and Nicira
/// subtypes, `BAD_MULTIPART` for unknown statistics types, match and action
/// errors.
pub fn decode_with(h: &Header, buf: &[u8], opts: &DecodeOptions) -> Result<Msg, DecodeError> {
    let len = usize::from(h.length);
    if len < HEADER_LEN || buf.len() < len {
        return Err(short());
    }
    let mut r = Rd::new(&buf[HEADER_LEN..len], OfError::BAD_LEN);
    // Fixed-size bodies must be exact.
    let exact = |r: &Rd, n: usize| {
        if r.len() == n {
            Ok(())
        } else {
            Err(err(OfError::BAD_LEN, "bad message length"))
        }
    };
    let at_least = |r: &Rd, n: usize| {
        if r.len() >= n {
            Ok(())
        } else {
            Err(short())
        }
    };
    Ok(match h.typ {
        header::OFPT_HELLO => header::decode_hello(&buf[..len])?,
        header::OFPT_ERROR => {
            at_least(&r, 4)?;
            decode_error_ofp10(&mut r)?
        }
        OFPT_ECHO_REQUEST => Msg::EchoRequest(r.rest().to_vec()),
        OFPT_ECHO_REPLY => Msg::EchoReply(r.rest().to_vec()),
        OFPT_VENDOR => decode_vendor(&mut r, opts)?,
        OFPT_FEATURES_REQUEST => {
            exact(&r, 0)?;
            Msg::FeaturesRequest
        }
        OFPT_FEATURES_REPLY => {
            at_least(&r, 24)?;
            Msg::FeaturesReply(decode_features_reply(&mut r)?)
        }
        OFPT_GET_CONFIG_REQUEST => {
            exact(&r, 0)?;
            Msg::GetConfigRequest
        }
        OFPT_GET_CONFIG_REPLY => {
            exact(&r, 4)?;
            Msg::GetConfigReply(get_switch_config(&mut r)?)
        }
        OFPT_SET_CONFIG => {
            exact(&r, 4)?;
            Msg::SetConfig(get_switch_config(&mut r)?)
        }
        OFPT_PACKET_IN => {
            at_least(&r, 10)?;
            Msg::PacketIn(decode_packet_in(&mut r)?)
        }
        OFPT_FLOW_REMOVED => {
            exact(&r, 80)?;
            Msg::FlowRemoved(decode_flow_removed(&mut r)?)
        }
        OFPT_PORT_STATUS => {
            exact(&r, 56)?;
            let reason = r.u8()?;
            r.skip(7)?;
            Msg::PortStatus(PortStatus {
                reason,
                desc: decode_phy_port(r.rest())?,
            })
        }
        OFPT_PACKET_OUT => {
            at_least(&r, 8)?;
            Msg::PacketOut(decode_packet_out(&mut r)?)
        }
        OFPT_FLOW_MOD => {
            at_least(&r, 64)?;
            Msg::FlowMod(decode_flow_mod(&mut r, opts)?)
        }
        OFPT_PORT_MOD => {
            exact(&r, 24)?;
            Msg::PortMod(decode_port_mod(&mut r)?)
        }
        OFPT_STATS_REQUEST => decode_stats_request(&mut r)?,
        OFPT_STATS_REPLY => decode_stats_reply(&mut r)?,
        OFPT_BARRIER_REQUEST => {
            exact(&r, 0)?;
            Msg::BarrierRequest
        }
        OFPT_BARRIER_REPLY => {
            exact(&r, 0)?;
            Msg::BarrierReply
        }
        _ => return Err(err(OfError::BAD_TYPE, "unknown message type")),
    })
}

/// Encode one message as OpenFlow 1.0 with [`EncodeOptions::default`]
/// (1.0 flow format and packet-ins).
///
/// # Errors
/// When the message has no 1.0 form.
pub fn encode(msg: &Msg, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_with(msg, xid, &EncodeOptions::default(), out)
}

/// Encode one message as OpenFlow 1.0 under the connection's options.
/// On error nothing is appended to `out`.
///
/// `FlowMod`, `FlowRemoved` and `PacketIn` become their Nicira forms as
/// `opts` says; `MpRequest::NxFlow`/`NxAggregate` and `MpReply::NxFlow`/
/// `NxAggregate` are always `NXST_*`. Stats replies over 64 KiB are split
/// into several messages with `OFPSF_REPLY_MORE`.
///
/// # Errors
/// `Unsupported` when the message, or a part of it (a match, an action, a
/// port number, an instruction), has no 1.0 form.
pub fn encode_with(
    msg: &Msg,
    xid: u32,
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let r = encode_inner(msg, xid, opts, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn encode_inner(
    msg: &Msg,
    xid: u32,
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let bare = |out: &mut Vec<u8>, typ: u8| {
        let s = begin(out, typ, xid);
        finish(out, s)
    };
    match msg {
        Msg::Hello { versions } => {
            header::encode_hello(OFP10_VERSION, *versions, xid, out);
            Ok(())
        }
        Msg::Error { err, data } => {
            let s = begin(out, header::OFPT_ERROR, xid);
            encode_error_ofp10(*err, data, out);
            finish(out, s)
        }
        Msg::EchoRequest(d) | Msg::EchoReply(d) => {
            let t = if matches!(msg, Msg::EchoRequest(_)) {
                OFPT_ECHO_REQUEST
            } else {
                OFPT_ECHO_REPLY
            };
            let s = begin(out, t, xid);
            out.extend_from_slice(d);
            finish(out, s)
        }
        Msg::FeaturesRequest => bare(out, OFPT_FEATURES_REQUEST),
        Msg::FeaturesReply(f) => {
            let s = begin(out, OFPT_FEATURES_REPLY, xid);
            encode_features_reply(f, out)?;
            finish(out, s)
        }
        Msg::GetConfigRequest => bare(out, OFPT_GET_CONFIG_REQUEST),
        Msg::GetConfigReply(c) | Msg::SetConfig(c) => {
            let t = if matches!(msg, Msg::SetConfig(_)) {
                OFPT_SET_CONFIG
            } else {
                OFPT_GET_CONFIG_REPLY
            };
            let s = begin(out, t, xid);
            put_switch_config(out, c);
            finish(out, s)
        }
        Msg::PacketIn(pi) => {
            let s = if opts.nx_packet_in {
                let s = begin_nx(out, NXT_PACKET_IN, xid);
                encode_nx_packet_in(pi, out)?;
                s
            } else {
                let s = begin(out, OFPT_PACKET_IN, xid);
                encode_packet_in(pi, out)?;
                s
            };
            finish(out, s)
        }
        Msg::FlowRemoved(fr) => {
            let s = if opts.nxm {
                let s = begin_nx(out, NXT_FLOW_REMOVED, xid);
                encode_nx_flow_removed(fr, out)?;
                s
            } else {
                let s = begin(out, OFPT_FLOW_REMOVED, xid);
                encode_flow_removed(fr, out)?;
                s
            };
            finish(out, s)
        }
        Msg::PortStatus(ps) => {
            let s = begin(out, OFPT_PORT_STATUS, xid);
            out.u8(ps.reason);
            out.zeros(7);
            encode_phy_port(&ps.desc, out)?;
            finish(out, s)
        }
        Msg::PacketOut(po) => {
            let s = begin(out, OFPT_PACKET_OUT, xid);
            encode_packet_out(po, out)?;
            finish(out, s)
        }
        Msg::FlowMod(fm) => {
            let s = if opts.nxm {
                let s = begin_nx(out, NXT_FLOW_MOD, xid);
                encode_nx_flow_mod(fm, out)?;
                s
            } else {
                let s = begin(out, OFPT_FLOW_MOD, xid);
                encode_flow_mod(fm, out)?;
                s
            };
            finish(out, s)
        }
        Msg::PortMod(pm) => {
            let s = begin(out, OFPT_PORT_MOD, xid);
            encode_port_mod(pm, out)?;
            finish(out, s)
        }
        Msg::MultipartRequest { flags, body } => encode_stats_request(*flags, body, xid, out),
        Msg::MultipartReply { flags, body } => encode_stats_reply(*flags, body, xid, out),
        Msg::BarrierRequest => bare(out, OFPT_BARRIER_REQUEST),
        Msg::BarrierReply => bare(out, OFPT_BARRIER_REPLY),
        Msg::SetAsync(a) => {
            let s = begin_nx(out, NXT_SET_ASYNC_CONFIG, xid);
            crate::async_config::put_config(out, a, header::OFP13_VERSION);
            finish(out, s)
        }
        Msg::NxSetFlowFormat(f) => {
            let s = begin_nx(out, NXT_SET_FLOW_FORMAT, xid);
            out.u32(*f);
            finish(out, s)
        }
        Msg::NxSetPacketInFormat(_)
        | Msg::NxFlowModTableId(_)
        | Msg::NxPacketIn2(_)
        | Msg::NxResume(_)
        | Msg::NxSetControllerId(_)
        | Msg::NxTlvTableMod(_)
        | Msg::NxTlvTableRequest
        | Msg::NxTlvTableReply(_)
        | Msg::NxCtFlushZone(_) => {
            let sub = crate::nicira::common_subtype(msg).ok_or(unsupported("Nicira message"))?;
            let s = begin_nx(out, sub, xid);
            crate::nicira::put_common(out, msg, header::OFP10_VERSION);
            finish(out, s)
        }
        Msg::GroupMod(_) => Err(unsupported("group-mod")),
        Msg::TableMod { .. } => Err(unsupported("table-mod")),
        Msg::RoleRequest(m) | Msg::RoleReply(m) => {
            let sub = if matches!(msg, Msg::RoleRequest(_)) {
                NXT_ROLE_REQUEST
            } else {
                NXT_ROLE_REPLY
            };
            let s = begin_nx(out, sub, xid);
            put_nx_role(out, m)?;
            finish(out, s)
        }
        Msg::GetAsyncRequest | Msg::GetAsyncReply(_) => Err(unsupported("get-async")),
        Msg::SetAsyncProps(_) => Err(unsupported("async-config properties")),
        Msg::MeterMod(_) => Err(unsupported("meter-mod")),
        Msg::BundleControl(_) | Msg::BundleAdd(_) => Err(unsupported("bundles (1.3+)")),
    }
}

#[cfg(test)]
mod tests;
