//! OpenFlow 1.3, 1.4 and 1.5 messages (ONF TS-006 1.3.5 §7, TS-024
//! 1.4.1 §7, TS-025 1.5.1 §7), both directions, with the wire version as
//! a parameter. What the three share (header, match, actions,
//! instructions, meters, table features, most multiparts) is here; the
//! message families whose layout changed after 1.3 live in their own
//! modules and take the version: [`crate::port`] (port descriptions,
//! port statistics, port-mod: properties in 1.4+), [`crate::flow`] (flow
//! statistics, aggregate and flow-removed: OXS statistics in 1.5),
//! [`crate::group`] (group-mod and group descriptions: bucket properties
//! in 1.5), [`crate::async_config`] (properties in 1.4+). Also by
//! version: 1.5 packet-out carries an `ofp_match` instead of `in_port`;
//! 1.5 port-desc and group-desc requests carry a port / group filter;
//! 1.5 meter is an action (`OFPAT_METER`, first in apply-actions), not an
//! instruction; 1.4 queue statistics are length-prefixed; 1.4 table-mod
//! carries properties (refused: xennet has no eviction or vacancy
//! events). Bundles (`OFPT_BUNDLE_*` in 1.4+, the ONF extension in 1.3)
//! are [`crate::bundle`]'s. Flow monitors, table and queue
//! descriptions are answered `BAD_TYPE` / `BAD_MULTIPART`, as by a
//! switch without them; xennet never sends role-status, table-status or
//! request-forward messages (Open vSwitch sends none by default either).
//!
//! Decoding checks every length field against the bytes that are really
//! there (never indexing past them, never allocating more than the input
//! holds) and answers with the 1.3 error the spec (or Open vSwitch, where
//! the spec is silent) gives. Encoding appends whole messages; multipart
//! replies whose body would exceed 65535 bytes are split into several
//! messages, all but the last with `OFPMPF_REPLY_MORE` (§7.3.5).
//!
//! Not supported (decode error): `OFPT_QUEUE_GET_CONFIG_*` (`BAD_TYPE`),
//! experimenter messages other than Nicira `NXT_SET_PACKET_IN_FORMAT`,
//! `NXT_PACKET_IN2` ([`crate::packet_in2`]), `NXT_SET_CONTROLLER_ID`,
//! `NXT_FLOW_MOD_TABLE_ID` and the ONF bundle
//! messages (`BAD_EXPERIMENTER`
//! / `BAD_EXP_TYPE`), experimenter multiparts (`BAD_EXPERIMENTER`), MPLS,
//! PBB and TTL-copy actions (`BAD_ACTION_TYPE`), experimenter meter bands
//! (`METER_BAD_BAND`), standard (`OFPMT_STANDARD`) matches
//! (`BAD_MATCH_TYPE`). Lossy on purpose: `SwitchFeatures::ports` (1.0
//! only) is not sent in 1.3, `FlowStats::idle_age`/`hard_age` (Nicira
//! only) decode as `None`, queue statistics replies decode as the empty
//! [`MpReply::Queue`], the reserved fields are sent as zero.

pub use crate::actions::{decode_actions, decode_actions_version, encode_actions_version};
use crate::error::{get_error, put_error};
use crate::error::{DecodeError, OfError};
use crate::flow::{get_flow_stats_request, put_flow_stats_request};
use crate::flow_mod::{get_flow_mod, put_flow_mod};
use crate::group::{get_group_features, get_group_stats, put_group_features, put_group_stats};
use crate::header::{self, Header, HEADER_LEN, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION};
pub use crate::instructions::decode_instructions;
use crate::meter::{
    get_meter_config, get_meter_features, get_meter_mod, get_meter_stats, put_meter_config,
    put_meter_features, put_meter_mod, put_meter_stats,
};
use crate::model::*;
pub use crate::nicira::NX_VENDOR_ID;
use crate::nicira::{NXT_FLOW_MOD_TABLE_ID, NXT_SET_CONTROLLER_ID, NXT_SET_PACKET_IN_FORMAT};
use crate::oxm;
use crate::packet::{get_packet_in, get_packet_out, put_packet_in, put_packet_out};
use crate::switch::{
    get_features_reply, get_role, get_switch_config, put_features_reply, put_role,
    put_switch_config,
};
use crate::table::{
    get_table_features, get_table_mod, get_table_stats, put_table_features, put_table_mod,
    put_table_stats,
};
use crate::wire::{self, err, put_split_reply, Put, Rd};
use crate::{async_config, bundle, flow, group, port};

/// 1.3 message types (`ofp_type`).
mod t {
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

/// Multipart types (`ofp_multipart_type`).
mod mp {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// `OFPMPF_REPLY_MORE` / `OFPMPF_REQ_MORE`: more messages follow.
pub const OFPMPF_MORE: u16 = 1;
// ---------------------------------------------------------------------------
// Writing.

/// Append one message of type `typ`: header, then what `body` writes.
/// On error nothing is appended.
fn message(
    out: &mut Vec<u8>,
    version: u8,
    typ: u8,
    xid: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = wire::begin(out, version, typ, xid);
    let r = body(out).and_then(|()| wire::finish(out, start));
    if r.is_err() {
        out.truncate(start);
    }
    r
}

// ---------------------------------------------------------------------------
// Messages.

// ---------------------------------------------------------------------------
// Multipart (§7.3.5).

/// `port_no`/`group_id`/`meter_id` followed by 4 pad bytes.
fn get_id_pad(rd: &mut Rd<'_>) -> Result<u32, DecodeError> {
    let id = rd.u32()?;
    rd.skip(4)?;
    rd.end()?;
    Ok(id)
}

fn get_mp_request(typ: u16, rd: &mut Rd<'_>, version: u8) -> Result<MpRequest, DecodeError> {
    let v15 = version >= OFP15_VERSION;
    let empty = |rd: &Rd<'_>, r: MpRequest| rd.end().map(|()| r);
    Ok(match typ {
        mp::DESC => empty(rd, MpRequest::Desc)?,
        mp::FLOW => MpRequest::Flow(get_flow_stats_request(rd)?),
        mp::AGGREGATE => MpRequest::Aggregate(get_flow_stats_request(rd)?),
        mp::TABLE => empty(rd, MpRequest::Table)?,
        mp::PORT_STATS => MpRequest::PortStats(get_id_pad(rd)?),
        mp::QUEUE => {
            let port_no = rd.u32()?;
            let queue_id = rd.u32()?;
            rd.end()?;
            MpRequest::Queue { port_no, queue_id }
        }
        mp::GROUP => MpRequest::Group(get_id_pad(rd)?),
        mp::GROUP_DESC if v15 => MpRequest::GroupDesc(get_id_pad(rd)?),
        mp::GROUP_DESC => empty(rd, MpRequest::GroupDesc(OFPG_ALL))?,
        mp::GROUP_FEATURES => empty(rd, MpRequest::GroupFeatures)?,
        mp::METER => MpRequest::Meter(get_id_pad(rd)?),
        mp::METER_CONFIG => MpRequest::MeterConfig(get_id_pad(rd)?),
        mp::METER_FEATURES => empty(rd, MpRequest::MeterFeatures)?,
        mp::TABLE_FEATURES => {
            let mut v = Vec::new();
            while !rd.is_empty() {
                v.push(get_table_features(rd)?);
            }
            MpRequest::TableFeatures(v)
        }
        mp::PORT_DESC if v15 => MpRequest::PortDesc(get_id_pad(rd)?),
        mp::PORT_DESC => empty(rd, MpRequest::PortDesc(OFPP_ANY))?,
        mp::EXPERIMENTER => return Err(err(OfError::BAD_EXPERIMENTER, "experimenter multipart")),
        _ => return Err(err(OfError::BAD_MULTIPART, "unknown multipart type")),
    })
}

fn put_mp_request(
    out: &mut Vec<u8>,
    flags: u16,
    r: &MpRequest,
    version: u8,
) -> Result<(), EncodeError> {
    let typ = match r {
        MpRequest::Desc => mp::DESC,
        MpRequest::Flow(_) => mp::FLOW,
        MpRequest::Aggregate(_) => mp::AGGREGATE,
        MpRequest::Table => mp::TABLE,
        MpRequest::TableFeatures(_) => mp::TABLE_FEATURES,
        MpRequest::PortStats(_) => mp::PORT_STATS,
        MpRequest::PortDesc(_) => mp::PORT_DESC,
        MpRequest::Queue { .. } => mp::QUEUE,
        MpRequest::Group(_) => mp::GROUP,
        MpRequest::GroupDesc(_) => mp::GROUP_DESC,
        MpRequest::GroupFeatures => mp::GROUP_FEATURES,
        MpRequest::Meter(_) => mp::METER,
        MpRequest::MeterConfig(_) => mp::METER_CONFIG,
        MpRequest::MeterFeatures => mp::METER_FEATURES,
        MpRequest::NxFlow(_) | MpRequest::NxAggregate(_) => {
            return Err(EncodeError::Unsupported("Nicira flow statistics request"))
        }
    };
    out.u16(typ);
    out.u16(flags);
    out.zeros(4);
    match r {
        MpRequest::Flow(f) | MpRequest::Aggregate(f) => put_flow_stats_request(out, f),
        MpRequest::PortStats(id) | MpRequest::Group(id) | MpRequest::Meter(id) => {
            out.u32(*id);
            out.zeros(4);
        }
        MpRequest::MeterConfig(id) => {
            out.u32(*id);
            out.zeros(4);
        }
        MpRequest::PortDesc(id) | MpRequest::GroupDesc(id) if version >= OFP15_VERSION => {
            out.u32(*id);
            out.zeros(4);
        }
        MpRequest::Queue { port_no, queue_id } => {
            out.u32(*port_no);
            out.u32(*queue_id);
        }
        MpRequest::TableFeatures(v) => {
            for f in v {
                put_table_features(out, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Decode records until the body is used up.
fn get_list<'a, T>(
    rd: &mut Rd<'a>,
    mut f: impl FnMut(&mut Rd<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut v = Vec::new();
    while !rd.is_empty() {
        v.push(f(rd)?);
    }
    Ok(v)
}

/// Fixed-size records of `size` bytes.
fn get_fixed_list<'a, T>(
    rd: &mut Rd<'a>,
    size: usize,
    f: impl Fn(&mut Rd<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    if rd.b.len() % size != 0 {
        return Err(err(OfError::BAD_LEN, "bad multipart body length"));
    }
    get_list(rd, f)
}

fn get_mp_reply(typ: u16, rd: &mut Rd<'_>, v: u8) -> Result<MpReply, DecodeError> {
    Ok(match typ {
        mp::DESC => MpReply::Desc(wire::get_desc(rd)?),
        mp::FLOW => MpReply::Flow(get_list(rd, |r| flow::get_flow_stats(r, v))?),
        mp::AGGREGATE => {
            let (packet_count, byte_count, flow_count) = flow::get_aggregate(rd, v)?;
            MpReply::Aggregate {
                packet_count,
                byte_count,
                flow_count,
            }
        }
        mp::TABLE => MpReply::Table(get_fixed_list(rd, 24, get_table_stats)?),
        mp::PORT_STATS => MpReply::PortStats(get_list(rd, |r| port::get_port_stats(r, v))?),
        mp::QUEUE if v >= OFP14_VERSION => {
            // ofp_queue_stats with properties (1.4 §7.3.5.8): skipped.
            get_list(rd, |r| {
                let len = r.peek_len(0)?;
                r.record(len, 48).map(|_| ())
            })?;
            MpReply::Queue
        }
        mp::QUEUE => {
            // ofp_queue_stats (40 bytes each); xennet has no queues and
            // the model keeps none.
            get_fixed_list(rd, 40, |r| r.skip(40))?;
            MpReply::Queue
        }
        mp::GROUP => MpReply::Group(get_list(rd, get_group_stats)?),
        mp::GROUP_DESC => MpReply::GroupDesc(get_list(rd, |r| group::get_group_desc(r, v))?),
        mp::GROUP_FEATURES => MpReply::GroupFeatures(get_group_features(rd)?),
        mp::METER => MpReply::Meter(get_list(rd, get_meter_stats)?),
        mp::METER_CONFIG => MpReply::MeterConfig(get_list(rd, get_meter_config)?),
        mp::METER_FEATURES => MpReply::MeterFeatures(get_meter_features(rd)?),
        mp::TABLE_FEATURES => MpReply::TableFeatures(get_list(rd, get_table_features)?),
        mp::PORT_DESC => MpReply::PortDesc(get_list(rd, |r| port::get_port(r, v))?),
        mp::EXPERIMENTER => return Err(err(OfError::BAD_EXPERIMENTER, "experimenter multipart")),
        _ => return Err(err(OfError::BAD_MULTIPART, "unknown multipart type")),
    })
}

/// Append a multipart reply of type `typ` whose body is `items`, split
/// into as few messages as fit 65535 bytes; every message but the last
/// gets `OFPMPF_REPLY_MORE` on top of `flags`.
fn put_mp_list<T>(
    out: &mut Vec<u8>,
    (v, xid): (u8, u32),
    typ: u16,
    flags: u16,
    items: &[T],
    put: impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    put_split_reply(
        out,
        flags,
        |out| {
            let start = wire::begin(out, v, t::MULTIPART_REPLY, xid);
            out.u16(typ);
            out.u16(flags);
            out.zeros(4);
            start
        },
        items,
        put,
    )
}

/// An item writer that cannot fail.
fn infallible<T>(
    f: impl Fn(&mut Vec<u8>, &T),
) -> impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError> {
    move |out, x| {
        f(out, x);
        Ok(())
    }
}

fn put_mp_reply(
    out: &mut Vec<u8>,
    (v, xid): (u8, u32),
    flags: u16,
    body: &MpReply,
) -> Result<(), EncodeError> {
    let single = |out: &mut Vec<u8>, typ: u16, f: &dyn Fn(&mut Vec<u8>)| {
        message(out, v, t::MULTIPART_REPLY, xid, |out| {
            out.u16(typ);
            out.u16(flags);
            out.zeros(4);
            f(out);
            Ok(())
        })
    };
    let vx = (v, xid);
    match body {
        MpReply::Desc(d) => single(out, mp::DESC, &|out| wire::put_desc(out, d)),
        MpReply::Flow(l) => put_mp_list(out, vx, mp::FLOW, flags, l, |out, f| {
            flow::put_flow_stats(out, f, v)
        }),
        MpReply::Aggregate {
            packet_count,
            byte_count,
            flow_count,
        } => single(out, mp::AGGREGATE, &|out| {
            flow::put_aggregate(out, *packet_count, *byte_count, *flow_count, v)
        }),
        MpReply::Table(l) => put_mp_list(out, vx, mp::TABLE, flags, l, infallible(put_table_stats)),
        MpReply::TableFeatures(l) => {
            put_mp_list(out, vx, mp::TABLE_FEATURES, flags, l, put_table_features)
        }
        MpReply::PortStats(l) => put_mp_list(
            out,
            vx,
            mp::PORT_STATS,
            flags,
            l,
            infallible(|out, s| port::put_port_stats(out, s, v)),
        ),
        MpReply::PortDesc(l) => put_mp_list(
            out,
            vx,
            mp::PORT_DESC,
            flags,
            l,
            infallible(|out, p| port::put_port(out, p, v)),
        ),
        MpReply::Queue => single(out, mp::QUEUE, &|_| {}),
        MpReply::Group(l) => put_mp_list(out, vx, mp::GROUP, flags, l, put_group_stats),
        MpReply::GroupDesc(l) => put_mp_list(out, vx, mp::GROUP_DESC, flags, l, |out, g| {
            group::put_group_desc(out, g, v)
        }),
        MpReply::GroupFeatures(g) => single(out, mp::GROUP_FEATURES, &|out| {
            put_group_features(out, g);
        }),
        MpReply::Meter(l) => put_mp_list(out, vx, mp::METER, flags, l, put_meter_stats),
        MpReply::MeterConfig(l) => {
            put_mp_list(out, vx, mp::METER_CONFIG, flags, l, put_meter_config)
        }
        MpReply::MeterFeatures(f) => single(out, mp::METER_FEATURES, &|out| {
            put_meter_features(out, f);
        }),
        MpReply::NxFlow(_) | MpReply::NxAggregate { .. } => {
            Err(EncodeError::Unsupported("Nicira flow statistics reply"))
        }
    }
}

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
    let m = match exp_type {
        NXT_SET_PACKET_IN_FORMAT => Msg::NxSetPacketInFormat(rd.u32()?),
        crate::packet_in2::NXT_PACKET_IN2 => {
            return Ok(Msg::NxPacketIn2(crate::packet_in2::get_body(rd.rest())?));
        }
        NXT_SET_CONTROLLER_ID => {
            rd.skip(6)?;
            Msg::NxSetControllerId(rd.u16()?)
        }
        crate::nicira::NXT_CT_FLUSH_ZONE => Msg::NxCtFlushZone(get_nx_zone_id(rd)?),
        NXT_FLOW_MOD_TABLE_ID => {
            let set = rd.u8()?;
            rd.skip(7)?;
            Msg::NxFlowModTableId(set != 0)
        }
        crate::tlv::NXT_TLV_TABLE_MOD => Msg::NxTlvTableMod(crate::tlv::get_table_mod(rd)?),
        crate::tlv::NXT_TLV_TABLE_REQUEST => Msg::NxTlvTableRequest,
        crate::tlv::NXT_TLV_TABLE_REPLY => Msg::NxTlvTableReply(crate::tlv::get_table_reply(rd)?),
        _ => return Err(err(OfError::BAD_EXP_TYPE, "unsupported Nicira message")),
    };
    rd.end()?;
    Ok(m)
}

/// Append a bundle message (`add`: add-message, else control) in version
/// `v`: `OFPT_BUNDLE_*` in 1.4+, the ONF experimenter message in 1.3.
fn bundle_msg(
    out: &mut Vec<u8>,
    v: u8,
    xid: u32,
    add: bool,
    body: &dyn Fn(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    if v >= OFP14_VERSION {
        let typ = if add {
            bundle::OFPT_BUNDLE_ADD_MESSAGE
        } else {
            bundle::OFPT_BUNDLE_CONTROL
        };
        return message(out, v, typ, xid, body);
    }
    message(out, v, t::EXPERIMENTER, xid, |out| {
        out.u32(bundle::ONF_EXPERIMENTER_ID);
        out.u32(if add {
            bundle::ONFT_BUNDLE_ADD_MESSAGE
        } else {
            bundle::ONFT_BUNDLE_CONTROL
        });
        body(out)
    })
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
    let nx = |out: &mut Vec<u8>, subtype: u32, f: &dyn Fn(&mut Vec<u8>)| {
        message(out, v, t::EXPERIMENTER, xid, |out| {
            out.u32(NX_VENDOR_ID);
            out.u32(subtype);
            f(out);
            Ok(())
        })
    };
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
        Msg::NxSetPacketInFormat(f) => nx(out, NXT_SET_PACKET_IN_FORMAT, &|out| out.u32(*f)),
        Msg::NxPacketIn2(p) => nx(out, crate::packet_in2::NXT_PACKET_IN2, &|out| {
            crate::packet_in2::put_body(p, oxm::Flavor::Oxm, out);
        }),
        Msg::NxFlowModTableId(set) => nx(out, NXT_FLOW_MOD_TABLE_ID, &|out| {
            out.u8(u8::from(*set));
            out.zeros(7);
        }),
        Msg::NxSetControllerId(id) => nx(out, NXT_SET_CONTROLLER_ID, &|out| {
            out.zeros(6);
            out.u16(*id);
        }),
        Msg::NxTlvTableMod(tm) => nx(out, crate::tlv::NXT_TLV_TABLE_MOD, &|out| {
            crate::tlv::put_table_mod(out, tm);
        }),
        Msg::NxTlvTableRequest => nx(out, crate::tlv::NXT_TLV_TABLE_REQUEST, &|_| {}),
        Msg::NxTlvTableReply(r) => nx(out, crate::tlv::NXT_TLV_TABLE_REPLY, &|out| {
            crate::tlv::put_table_reply(out, r);
        }),
        Msg::NxCtFlushZone(zone) => nx(out, crate::nicira::NXT_CT_FLUSH_ZONE, &|out| {
            out.zeros(6);
            out.u16(*zone);
        }),
        Msg::BundleControl(c) => bundle_msg(out, v, xid, false, &|out| {
            bundle::put_ctrl(out, c);
            Ok(())
        }),
        Msg::BundleAdd(a) => bundle_msg(out, v, xid, true, &|out| bundle::put_add(out, a, v, xid)),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_of14_of15;
