//! OpenFlow 1.3, 1.4 and 1.5 message dispatch (ONF TS-006 1.3.5 §7,
//! TS-024 1.4.1 §7, TS-025 1.5.1 §7), both directions, with the wire
//! version as a parameter: the `ofp_type` numbers, the message header, and
//! which family codec reads and writes each body. The bodies are the
//! families' (see the crate documentation): [`crate::switch`],
//! [`crate::flow_mod`], [`crate::flow`], [`crate::packet`],
//! [`crate::port`], [`crate::group`], [`crate::meter`], [`crate::table`],
//! [`crate::multipart`], [`crate::async_config`], [`crate::bundle`],
//! [`crate::error`], and the Nicira experimenter messages
//! ([`crate::nicira`]). What changed after 1.3 is decided inside each
//! family by the version: 1.4+ properties (ports, port-mod, async config,
//! table-mod), 1.5 OXS statistics (flow statistics, aggregate,
//! flow-removed), 1.5 group bucket properties, 1.5 packet-out with an
//! `ofp_match` instead of `in_port`, 1.5 port-desc and group-desc request
//! filters, the 1.5 meter action (`OFPAT_METER`, first in apply-actions)
//! instead of the meter instruction, 1.4 length-prefixed queue
//! statistics. Bundles are `OFPT_BUNDLE_*` in 1.4+ and the ONF
//! experimenter messages in 1.3. Flow monitors, table and queue
//! descriptions are answered `BAD_TYPE` / `BAD_MULTIPART`, as by a switch
//! without them; xennet never sends role-status, table-status or
//! request-forward messages (Open vSwitch sends none by default either).
//!
//! Decoding checks every length field against the bytes that are really
//! there (never indexing past them, never allocating more than the input
//! holds) and answers with the 1.3 error the spec (or Open vSwitch, where
//! the spec is silent) gives. Encoding appends whole messages (nothing on
//! error); multipart replies whose body would exceed 65535 bytes are split
//! into several messages, all but the last with `OFPMPF_REPLY_MORE`
//! (§7.3.5).
//!
//! Not supported (decode error): `OFPT_QUEUE_GET_CONFIG_*` (`BAD_TYPE`),
//! experimenter messages other than the Nicira ones every version shares
//! ([`crate::nicira`]: `NXT_SET_PACKET_IN_FORMAT`, `NXT_PACKET_IN2`,
//! `NXT_SET_CONTROLLER_ID`, `NXT_CT_FLUSH_ZONE`, `NXT_FLOW_MOD_TABLE_ID`,
//! `NXT_TLV_TABLE_*`) and the ONF bundle messages (`BAD_EXPERIMENTER` /
//! `BAD_EXP_TYPE`), experimenter multiparts (`BAD_EXPERIMENTER`), PBB and
//! TTL-copy actions (`BAD_ACTION_TYPE`), experimenter meter bands
//! (`METER_BAD_BAND`), standard (`OFPMT_STANDARD`) matches
//! (`BAD_MATCH_TYPE`). Lossy on purpose: `SwitchFeatures::ports` (1.0
//! only) is not sent in 1.3, `FlowStats::idle_age`/`hard_age` (Nicira
//! only) decode as `None`, queue statistics replies decode as the empty
//! [`MpReply::Queue`], the reserved fields are sent as zero.
//!
//! The functions re-exported here ([`decode_actions`],
//! [`decode_actions_version`], [`encode_actions_version`],
//! [`decode_instructions`], [`OFPMPF_MORE`]) live in their families.

pub use crate::actions::{decode_actions, decode_actions_version, encode_actions_version};
use crate::error::{get_error, put_error};
use crate::error::{DecodeError, OfError};
use crate::flow_mod::{get_flow_mod, put_flow_mod};
use crate::header::{self, Header, HEADER_LEN, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION};
pub use crate::instructions::decode_instructions;
use crate::meter::{get_meter_mod, put_meter_mod};
use crate::model::*;
pub use crate::multipart::OFPMPF_MORE;
use crate::multipart::{get_mp_reply, get_mp_request, put_mp_reply, put_mp_request};
pub use crate::nicira::NX_VENDOR_ID;
use crate::packet::{get_packet_in, get_packet_out, put_packet_in, put_packet_out};
use crate::switch::{
    get_features_reply, get_role, get_switch_config, put_features_reply, put_role,
    put_switch_config,
};
use crate::table::{get_table_mod, put_table_mod};
use crate::wire::message;
use crate::wire::{err, Put, Rd};
use crate::{async_config, bundle, flow, group, port};

/// 1.3 message types (`ofp_type`).
pub(crate) mod t {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PORT_MOD: u8 = 16;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const GET_ASYNC_REQUEST: u8 = 26;
    pub const GET_ASYNC_REPLY: u8 = 27;
    pub const SET_ASYNC: u8 = 28;
    pub const METER_MOD: u8 = 29;
}

// ---------------------------------------------------------------------------
// Writing.

// ---------------------------------------------------------------------------
// Messages.

// ---------------------------------------------------------------------------
// Multipart (§7.3.5).

// ---------------------------------------------------------------------------
// Entry points.

/// Decode one OpenFlow 1.3, 1.4 or 1.5 message (`buf` is the whole
/// message, header included, exactly `h.length` bytes; the version is
/// `h.version`).
///
/// # Errors
/// The [`OfError`] to send back.
pub fn decode(h: &Header, buf: &[u8]) -> Result<Msg, DecodeError> {
    let v = h.version;
    let body = buf.get(HEADER_LEN..).unwrap_or(&[]);
    let mut rd = Rd::new(body, OfError::BAD_LEN);
    let rd = &mut rd;
    let empty = |rd: &Rd<'_>, m: Msg| rd.end().map(|()| m);
    Ok(match h.typ {
        t::HELLO => header::decode_hello(buf)?,
        t::ERROR => get_error(rd, v)?,
        t::ECHO_REQUEST => Msg::EchoRequest(rd.rest().to_vec()),
        t::ECHO_REPLY => Msg::EchoReply(rd.rest().to_vec()),
        t::EXPERIMENTER => decode_experimenter(h, rd)?,
        t::FEATURES_REQUEST => empty(rd, Msg::FeaturesRequest)?,
        t::FEATURES_REPLY => Msg::FeaturesReply(get_features_reply(rd)?),
        t::GET_CONFIG_REQUEST => empty(rd, Msg::GetConfigRequest)?,
        t::GET_CONFIG_REPLY | t::SET_CONFIG => {
            let c = get_switch_config(rd)?;
            rd.end()?;
            if h.typ == t::SET_CONFIG {
                Msg::SetConfig(c)
            } else {
                Msg::GetConfigReply(c)
            }
        }
        t::PACKET_IN => Msg::PacketIn(get_packet_in(rd)?),
        t::FLOW_REMOVED => Msg::FlowRemoved(flow::get_flow_removed(rd, v)?),
        t::PORT_STATUS => {
            let reason = rd.u8()?;
            rd.skip(7)?;
            let desc = port::get_port(rd, v)?;
            rd.end()?;
            Msg::PortStatus(PortStatus { reason, desc })
        }
        t::PACKET_OUT => Msg::PacketOut(get_packet_out(rd, v)?),
        t::FLOW_MOD => Msg::FlowMod(get_flow_mod(rd, v)?),
        t::GROUP_MOD => Msg::GroupMod(group::get_group_mod(rd, v)?),
        t::PORT_MOD => Msg::PortMod(port::get_port_mod(rd, v)?),
        t::TABLE_MOD => {
            let (table_id, config) = get_table_mod(rd, v)?;
            Msg::TableMod { table_id, config }
        }
        t::MULTIPART_REQUEST | t::MULTIPART_REPLY => {
            let typ = rd.u16()?;
            let flags = rd.u16()?;
            rd.skip(4)?;
            if h.typ == t::MULTIPART_REQUEST {
                Msg::MultipartRequest {
                    flags,
                    body: get_mp_request(typ, rd, v)?,
                }
            } else {
                Msg::MultipartReply {
                    flags,
                    body: get_mp_reply(typ, rd, v)?,
                }
            }
        }
        t::BARRIER_REQUEST => empty(rd, Msg::BarrierRequest)?,
        t::BARRIER_REPLY => empty(rd, Msg::BarrierReply)?,
        t::ROLE_REQUEST => Msg::RoleRequest(get_role(rd)?),
        t::ROLE_REPLY => Msg::RoleReply(get_role(rd)?),
        t::GET_ASYNC_REQUEST => empty(rd, Msg::GetAsyncRequest)?,
        t::GET_ASYNC_REPLY => Msg::GetAsyncReply(async_config::get_config(rd, v)?),
        t::SET_ASYNC if v >= OFP14_VERSION => Msg::SetAsyncProps(async_config::get_props(rd)?),
        t::SET_ASYNC => Msg::SetAsync(async_config::get_config(rd, v)?),
        t::METER_MOD => Msg::MeterMod(get_meter_mod(rd)?),
        bundle::OFPT_BUNDLE_CONTROL if v >= OFP14_VERSION => {
            Msg::BundleControl(bundle::get_ctrl(rd, v)?)
        }
        bundle::OFPT_BUNDLE_ADD_MESSAGE if v >= OFP14_VERSION => {
            Msg::BundleAdd(bundle::get_add(rd, h, HEADER_LEN)?)
        }
        _ => return Err(err(OfError::BAD_TYPE, "unsupported message type")),
    })
}

fn decode_experimenter(h: &Header, rd: &mut Rd<'_>) -> Result<Msg, DecodeError> {
    let experimenter = rd.u32()?;
    let exp_type = rd.u32()?;
    if experimenter == bundle::ONF_EXPERIMENTER_ID {
        // Open vSwitch knows these in 1.3 only (`ONFT 1.3 (2300)`); other
        // ONF types, or these in 1.4+, are `OFPBRC_BAD_EXP_TYPE` there.
        return match exp_type {
            bundle::ONFT_BUNDLE_CONTROL if h.version == OFP13_VERSION => {
                Ok(Msg::BundleControl(bundle::get_ctrl(rd, h.version)?))
            }
            bundle::ONFT_BUNDLE_ADD_MESSAGE if h.version == OFP13_VERSION => {
                Ok(Msg::BundleAdd(bundle::get_add(rd, h, HEADER_LEN + 8)?))
            }
            _ => Err(err(OfError::BAD_EXP_TYPE, "unsupported ONF message")),
        };
    }
    if experimenter != NX_VENDOR_ID {
        return Err(err(OfError::BAD_EXPERIMENTER, "unknown experimenter"));
    }
    crate::nicira::get_common(exp_type, rd, h.version)?
        .ok_or_else(|| err(OfError::BAD_EXP_TYPE, "unsupported Nicira message"))
}

/// Encode one message as OpenFlow 1.3 (several messages for a multipart
/// reply beyond 64 KiB). On error nothing is appended.
///
/// # Errors
/// As [`encode_version`].
pub fn encode(msg: &Msg, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_version(msg, OFP13_VERSION, xid, out)
}

/// Encode one message as OpenFlow `v` (1.3, 1.4 or 1.5; several messages
/// for a multipart reply beyond 64 KiB). On error nothing is appended.
///
/// # Errors
/// When the message has no form in `v` (`NXT_SET_FLOW_FORMAT`, Nicira flow
/// statistics, 1.4 async properties in 1.3), `v` is not 1.3..=1.5, or it
/// does not fit in 65535 bytes.
pub fn encode_version(msg: &Msg, v: u8, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if !(OFP13_VERSION..=OFP15_VERSION).contains(&v) {
        return Err(EncodeError::Version(v));
    }
    let m = |out: &mut Vec<u8>, typ: u8, f: &dyn Fn(&mut Vec<u8>) -> Result<(), EncodeError>| {
        message(out, v, typ, xid, f)
    };
    let nothing = |_: &mut Vec<u8>| Ok(());
    match msg {
        Msg::Hello { versions } => {
            header::encode_hello(v, *versions, xid, out);
            Ok(())
        }
        Msg::Error { err, data } => m(out, t::ERROR, &|out| {
            put_error(out, *err, data, v);
            Ok(())
        }),
        Msg::EchoRequest(d) => m(out, t::ECHO_REQUEST, &|out| {
            out.extend_from_slice(d);
            Ok(())
        }),
        Msg::EchoReply(d) => m(out, t::ECHO_REPLY, &|out| {
            out.extend_from_slice(d);
            Ok(())
        }),
        Msg::FeaturesRequest => m(out, t::FEATURES_REQUEST, &nothing),
        Msg::FeaturesReply(f) => m(out, t::FEATURES_REPLY, &|out| {
            put_features_reply(out, f);
            Ok(())
        }),
        Msg::GetConfigRequest => m(out, t::GET_CONFIG_REQUEST, &nothing),
        Msg::GetConfigReply(c) | Msg::SetConfig(c) => {
            let typ = if matches!(msg, Msg::SetConfig(_)) {
                t::SET_CONFIG
            } else {
                t::GET_CONFIG_REPLY
            };
            m(out, typ, &|out| {
                put_switch_config(out, c);
                Ok(())
            })
        }
        Msg::PacketIn(p) => m(out, t::PACKET_IN, &|out| {
            put_packet_in(out, p);
            Ok(())
        }),
        Msg::FlowRemoved(f) => m(out, t::FLOW_REMOVED, &|out| {
            flow::put_flow_removed(out, f, v);
            Ok(())
        }),
        Msg::PortStatus(p) => m(out, t::PORT_STATUS, &|out| {
            out.u8(p.reason);
            out.zeros(7);
            port::put_port(out, &p.desc, v);
            Ok(())
        }),
        Msg::PacketOut(p) => m(out, t::PACKET_OUT, &|out| put_packet_out(out, p, v)),
        Msg::FlowMod(f) => m(out, t::FLOW_MOD, &|out| put_flow_mod(out, f, v)),
        Msg::GroupMod(g) => m(out, t::GROUP_MOD, &|out| group::put_group_mod(out, g, v)),
        Msg::PortMod(p) => m(out, t::PORT_MOD, &|out| {
            port::put_port_mod(out, p, v);
            Ok(())
        }),
        Msg::TableMod { table_id, config } => m(out, t::TABLE_MOD, &|out| {
            put_table_mod(out, *table_id, *config);
            Ok(())
        }),
        Msg::MultipartRequest { flags, body } => m(out, t::MULTIPART_REQUEST, &|out| {
            put_mp_request(out, *flags, body, v)
        }),
        Msg::MultipartReply { flags, body } => put_mp_reply(out, (v, xid), *flags, body),
        Msg::BarrierRequest => m(out, t::BARRIER_REQUEST, &nothing),
        Msg::BarrierReply => m(out, t::BARRIER_REPLY, &nothing),
        Msg::RoleRequest(r) => m(out, t::ROLE_REQUEST, &|out| {
            put_role(out, r);
            Ok(())
        }),
        Msg::RoleReply(r) => m(out, t::ROLE_REPLY, &|out| {
            put_role(out, r);
            Ok(())
        }),
        Msg::GetAsyncRequest => m(out, t::GET_ASYNC_REQUEST, &nothing),
        Msg::GetAsyncReply(c) => m(out, t::GET_ASYNC_REPLY, &|out| {
            async_config::put_config(out, c, v);
            Ok(())
        }),
        Msg::SetAsync(c) => m(out, t::SET_ASYNC, &|out| {
            async_config::put_config(out, c, v);
            Ok(())
        }),
        Msg::SetAsyncProps(_) if v < OFP14_VERSION => {
            Err(EncodeError::Unsupported("async-config properties"))
        }
        Msg::SetAsyncProps(p) => m(out, t::SET_ASYNC, &|out| {
            async_config::put_props(out, p);
            Ok(())
        }),
        Msg::MeterMod(mm) => m(out, t::METER_MOD, &|out| {
            put_meter_mod(out, mm);
            Ok(())
        }),
        Msg::NxSetFlowFormat(_) => Err(EncodeError::Unsupported("NXT_SET_FLOW_FORMAT")),
        Msg::NxSetPacketInFormat(_)
        | Msg::NxFlowModTableId(_)
        | Msg::NxPacketIn2(_)
        | Msg::NxResume(_)
        | Msg::NxSetControllerId(_)
        | Msg::NxTlvTableMod(_)
        | Msg::NxTlvTableRequest
        | Msg::NxTlvTableReply(_)
        | Msg::NxCtFlushZone(_) => {
            let sub = crate::nicira::common_subtype(msg)
                .ok_or(EncodeError::Unsupported("Nicira message"))?;
            message(out, v, t::EXPERIMENTER, xid, |out| {
                out.u32(NX_VENDOR_ID);
                out.u32(sub);
                crate::nicira::put_common(out, msg, v);
                Ok(())
            })
        }
        Msg::BundleControl(c) => bundle::put_msg(out, v, xid, false, &|out| {
            bundle::put_ctrl(out, c);
            Ok(())
        }),
        Msg::BundleAdd(a) => {
            bundle::put_msg(out, v, xid, true, &|out| bundle::put_add(out, a, v, xid))
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_of14_of15;
