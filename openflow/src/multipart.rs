//! The statistics / multipart family (Open vSwitch `lib/ofp-msgs.c`'s
//! statistics framing and the dispatch of `lib/ofp-*.c`'s statistics
//! codecs) for OpenFlow 1.0, 1.3, 1.4 and 1.5: `OFPT_STATS_REQUEST`/
//! `REPLY` (1.0, with the Nicira `NXST_FLOW`/`NXST_AGGREGATE` vendor
//! statistics) and `OFPT_MULTIPART_REQUEST`/`REPLY` (1.3 §7.3.5). The
//! entries themselves are their families' (flow, port, table, group,
//! meter); here are the type numbers, the request/reply headers, and the
//! split of replies past 64 KiB into several messages, all but the last
//! with `OFPSF_REPLY_MORE` / `OFPMPF_REPLY_MORE`.
//!
//! Replies are decoded one message at a time (the flag stays in `flags`).
//! Not supported: experimenter multiparts other than the Nicira 1.0
//! flow statistics (`BAD_EXPERIMENTER` / `BAD_EXP_TYPE`), 1.0 queue
//! statistics entries and 1.3 queue statistics entries (decoded as the
//! empty [`MpReply::Queue`]: xennet has no queues).

use crate::error::{DecodeError, OfError};
use crate::flow::{
    decode_flow_stats, decode_flow_stats_request, decode_nx_flow_stats,
    decode_nx_flow_stats_request, encode_flow_stats, encode_flow_stats_request,
    encode_nx_flow_stats, encode_nx_flow_stats_request, get_flow_stats_request,
    put_flow_stats_request,
};
use crate::group::{get_group_features, get_group_stats, put_group_features, put_group_stats};
use crate::header::{OFP10_VERSION, OFP14_VERSION, OFP15_VERSION};
use crate::meter::{
    get_meter_config, get_meter_features, get_meter_stats, put_meter_config, put_meter_features,
    put_meter_stats,
};
use crate::model::{EncodeError, MpReply, MpRequest, Msg, OFPG_ALL, OFPP_ANY};
use crate::nicira::{NXST_AGGREGATE, NXST_FLOW, NX_VENDOR_ID};
use crate::port::{
    decode_phy_port, decode_port_stats, encode_phy_port, encode_port_stats, port10,
    port_from_ofp10, PHY_PORT_LEN,
};
use crate::table::{
    decode_table_stats, encode_table_stats, get_table_features, get_table_stats,
    put_table_features, put_table_stats,
};
use crate::v10::{OFPT_STATS_REPLY, OFPT_STATS_REQUEST};
use crate::v13::t;
use crate::wire::{
    self, decode_entries, decode_fixed, err, finish, put_split_reply, unsupported, Put, Rd,
};
use crate::{flow, group, port};

// ---------------------------------------------------------------------------
// OpenFlow 1.0 statistics (`ofp_stats_request`, `ofp_stats_reply`).

/// `OFPST_DESC`.
pub const OFPST_DESC: u16 = 0;

/// `OFPST_FLOW`.
pub const OFPST_FLOW: u16 = 1;

/// `OFPST_AGGREGATE`.
pub const OFPST_AGGREGATE: u16 = 2;

/// `OFPST_TABLE`.
pub const OFPST_TABLE: u16 = 3;

/// `OFPST_PORT`.
pub const OFPST_PORT: u16 = 4;

/// `OFPST_QUEUE`.
pub const OFPST_QUEUE: u16 = 5;

/// `OFPST_PORT_DESC` (Open vSwitch extension to 1.0, as in 1.3).
pub const OFPST_PORT_DESC: u16 = 13;

/// `OFPST_VENDOR`.
pub const OFPST_VENDOR: u16 = 0xffff;

/// `OFPSF_REPLY_MORE`.
pub const OFPSF_REPLY_MORE: u16 = 1;

/// `OFPT_STATS_REQUEST` body (after the header).
pub(crate) fn decode_stats_request(r: &mut Rd) -> Result<Msg, DecodeError> {
    let typ = r.u16()?;
    let flags = r.u16()?;
    let body = match typ {
        OFPST_DESC => {
            r.end()?;
            MpRequest::Desc
        }
        OFPST_FLOW | OFPST_AGGREGATE => {
            let q = decode_flow_stats_request(r)?;
            r.end()?;
            if typ == OFPST_FLOW {
                MpRequest::Flow(q)
            } else {
                MpRequest::Aggregate(q)
            }
        }
        OFPST_TABLE => {
            r.end()?;
            MpRequest::Table
        }
        OFPST_PORT => {
            let p = port_from_ofp10(r.u16()?);
            r.skip(6)?;
            r.end()?;
            MpRequest::PortStats(p)
        }
        OFPST_QUEUE => {
            let port_no = port_from_ofp10(r.u16()?);
            r.skip(2)?;
            let queue_id = r.u32()?;
            r.end()?;
            MpRequest::Queue { port_no, queue_id }
        }
        OFPST_PORT_DESC => {
            r.end()?;
            MpRequest::PortDesc(crate::model::OFPP_ANY)
        }
        OFPST_VENDOR => {
            let subtype = nx_stats_header(r)?;
            let q = decode_nx_flow_stats_request(r)?;
            match subtype {
                NXST_FLOW => MpRequest::NxFlow(q),
                _ => MpRequest::NxAggregate(q),
            }
        }
        _ => return Err(err(OfError::BAD_MULTIPART, "unknown stats type")),
    };
    Ok(Msg::MultipartRequest { flags, body })
}

/// The vendor id, subtype and padding of a `nicira10_stats_msg`; only
/// `NXST_FLOW` and `NXST_AGGREGATE` are accepted.
pub(crate) fn nx_stats_header(r: &mut Rd) -> Result<u32, DecodeError> {
    if r.u32()? != NX_VENDOR_ID {
        return Err(err(OfError::BAD_EXPERIMENTER, "unknown stats vendor"));
    }
    let subtype = r.u32()?;
    r.skip(4)?;
    if subtype != NXST_FLOW && subtype != NXST_AGGREGATE {
        return Err(err(OfError::BAD_EXP_TYPE, "unknown Nicira stats subtype"));
    }
    Ok(subtype)
}

/// `OFPT_STATS_REPLY` body (after the header).
pub(crate) fn decode_stats_reply(r: &mut Rd) -> Result<Msg, DecodeError> {
    let typ = r.u16()?;
    let flags = r.u16()?;
    let body = match typ {
        OFPST_DESC => MpReply::Desc(wire::get_desc(r)?),
        OFPST_FLOW => MpReply::Flow(decode_entries(r.rest(), 88, decode_flow_stats)?),
        OFPST_AGGREGATE => {
            let (packet_count, byte_count, flow_count) = wire::get_aggregate(r)?;
            MpReply::Aggregate {
                packet_count,
                byte_count,
                flow_count,
            }
        }
        OFPST_TABLE => MpReply::Table(decode_fixed(r.rest(), 64, decode_table_stats)?),
        OFPST_PORT => MpReply::PortStats(decode_fixed(r.rest(), 104, decode_port_stats)?),
        OFPST_QUEUE => {
            // xennet has no queues; entries (ofp_queue_stats) are not kept.
            decode_fixed(r.rest(), 32, |_| Ok(()))?;
            MpReply::Queue
        }
        OFPST_PORT_DESC => {
            MpReply::PortDesc(decode_fixed(r.rest(), PHY_PORT_LEN, decode_phy_port)?)
        }
        OFPST_VENDOR => match nx_stats_header(r)? {
            NXST_FLOW => MpReply::NxFlow(decode_entries(r.rest(), 48, decode_nx_flow_stats)?),
            _ => {
                let (packet_count, byte_count, flow_count) = wire::get_aggregate(r)?;
                MpReply::NxAggregate {
                    packet_count,
                    byte_count,
                    flow_count,
                }
            }
        },
        _ => return Err(err(OfError::BAD_MULTIPART, "unknown stats type")),
    };
    Ok(Msg::MultipartReply { flags, body })
}

/// Append the header of a statistics (1.0) or multipart (1.3+) message of
/// `version`: the OpenFlow header (message type `typ`), the statistics
/// type `st` and `flags`, then 4 pad bytes in 1.3+, or for a Nicira 1.0
/// statistics message (`nx`: its subtype) the rest of
/// `nicira10_stats_msg`. Returns the message's offset.
pub(crate) fn begin_stats(
    out: &mut Vec<u8>,
    (version, xid): (u8, u32),
    typ: u8,
    st: u16,
    flags: u16,
    nx: Option<u32>,
) -> usize {
    let start = wire::begin(out, version, typ, xid);
    out.u16(st);
    out.u16(flags);
    if version != OFP10_VERSION {
        out.zeros(4);
    }
    if let Some(sub) = nx {
        out.u32(NX_VENDOR_ID);
        out.u32(sub);
        out.zeros(4);
    }
    start
}

/// The reply message type of `version`: `OFPT_STATS_REPLY` (1.0) or
/// `OFPT_MULTIPART_REPLY`.
fn reply_type(version: u8) -> u8 {
    if version == OFP10_VERSION {
        OFPT_STATS_REPLY
    } else {
        t::MULTIPART_REPLY
    }
}

/// Append a statistics or multipart reply of `version` whose body is
/// `entries`, split into as few messages as fit 65535 bytes; every message
/// but the last gets `OFPSF_REPLY_MORE` / `OFPMPF_REPLY_MORE` on top of
/// `flags`.
pub(crate) fn put_split<T>(
    out: &mut Vec<u8>,
    (v, xid): (u8, u32),
    flags: u16,
    st: u16,
    nx: Option<u32>,
    entries: &[T],
    put: impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let begin = |out: &mut Vec<u8>| begin_stats(out, (v, xid), reply_type(v), st, flags, nx);
    put_split_reply(out, flags, begin, entries, put)
}

/// Append a statistics or multipart reply of `version` with the one body
/// `body` writes. On error nothing is appended.
pub(crate) fn put_single(
    out: &mut Vec<u8>,
    (v, xid): (u8, u32),
    flags: u16,
    st: u16,
    nx: Option<u32>,
    body: &dyn Fn(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let start = begin_stats(out, (v, xid), reply_type(v), st, flags, nx);
    body(out);
    let r = finish(out, start);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

pub(crate) fn encode_stats_request(
    flags: u16,
    body: &MpRequest,
    xid: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let t = OFPT_STATS_REQUEST;
    let start = match body {
        MpRequest::Desc => begin_stats(out, (OFP10_VERSION, xid), t, OFPST_DESC, flags, None),
        MpRequest::Flow(q) | MpRequest::Aggregate(q) => {
            let st = if matches!(body, MpRequest::Flow(_)) {
                OFPST_FLOW
            } else {
                OFPST_AGGREGATE
            };
            let s = begin_stats(out, (OFP10_VERSION, xid), t, st, flags, None);
            encode_flow_stats_request(q, out)?;
            s
        }
        MpRequest::Table => begin_stats(out, (OFP10_VERSION, xid), t, OFPST_TABLE, flags, None),
        MpRequest::PortStats(p) => {
            let s = begin_stats(out, (OFP10_VERSION, xid), t, OFPST_PORT, flags, None);
            out.u16(port10(*p)?);
            out.zeros(6);
            s
        }
        MpRequest::Queue { port_no, queue_id } => {
            let s = begin_stats(out, (OFP10_VERSION, xid), t, OFPST_QUEUE, flags, None);
            out.u16(port10(*port_no)?);
            out.zeros(2);
            out.u32(*queue_id);
            s
        }
        MpRequest::PortDesc(_) => {
            begin_stats(out, (OFP10_VERSION, xid), t, OFPST_PORT_DESC, flags, None)
        }
        MpRequest::NxFlow(q) | MpRequest::NxAggregate(q) => {
            let sub = if matches!(body, MpRequest::NxFlow(_)) {
                NXST_FLOW
            } else {
                NXST_AGGREGATE
            };
            let s = begin_stats(out, (OFP10_VERSION, xid), t, OFPST_VENDOR, flags, Some(sub));
            encode_nx_flow_stats_request(q, out)?;
            s
        }
        MpRequest::TableFeatures(_)
        | MpRequest::Group(_)
        | MpRequest::GroupDesc(_)
        | MpRequest::GroupFeatures
        | MpRequest::Meter(_)
        | MpRequest::MeterConfig(_)
        | MpRequest::MeterFeatures => {
            return Err(unsupported("1.3-only multipart request"));
        }
    };
    finish(out, start)
}

pub(crate) fn encode_stats_reply(
    flags: u16,
    body: &MpReply,
    xid: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let single = |out: &mut Vec<u8>, st: u16, nx: Option<u32>, body: &dyn Fn(&mut Vec<u8>)| {
        put_single(out, (OFP10_VERSION, xid), flags, st, nx, body)
    };
    match body {
        MpReply::Desc(d) => single(out, OFPST_DESC, None, &|out| wire::put_desc(out, d)),
        MpReply::Flow(fs) => put_split(
            out,
            (OFP10_VERSION, xid),
            flags,
            OFPST_FLOW,
            None,
            fs,
            encode_flow_stats,
        ),
        MpReply::Aggregate {
            packet_count,
            byte_count,
            flow_count,
        } => single(out, OFPST_AGGREGATE, None, &|out| {
            wire::put_aggregate(out, *packet_count, *byte_count, *flow_count)
        }),
        MpReply::Table(ts) => put_split(
            out,
            (OFP10_VERSION, xid),
            flags,
            OFPST_TABLE,
            None,
            ts,
            encode_table_stats,
        ),
        MpReply::PortStats(ps) => put_split(
            out,
            (OFP10_VERSION, xid),
            flags,
            OFPST_PORT,
            None,
            ps,
            encode_port_stats,
        ),
        MpReply::PortDesc(ps) => put_split(
            out,
            (OFP10_VERSION, xid),
            flags,
            OFPST_PORT_DESC,
            None,
            ps,
            |out, p| encode_phy_port(p, out),
        ),
        MpReply::Queue => single(out, OFPST_QUEUE, None, &|_| {}),
        MpReply::NxFlow(fs) => put_split(
            out,
            (OFP10_VERSION, xid),
            flags,
            OFPST_VENDOR,
            Some(NXST_FLOW),
            fs,
            encode_nx_flow_stats,
        ),
        MpReply::NxAggregate {
            packet_count,
            byte_count,
            flow_count,
        } => single(out, OFPST_VENDOR, Some(NXST_AGGREGATE), &|out| {
            wire::put_aggregate(out, *packet_count, *byte_count, *flow_count)
        }),
        MpReply::TableFeatures(_)
        | MpReply::Group(_)
        | MpReply::GroupDesc(_)
        | MpReply::GroupFeatures(_)
        | MpReply::Meter(_)
        | MpReply::MeterConfig(_)
        | MpReply::MeterFeatures(_) => Err(unsupported("1.3-only multipart reply")),
    }
}

// ---------------------------------------------------------------------------
// OpenFlow 1.3 to 1.5 multiparts (1.3 §7.3.5).

/// Multipart types (`ofp_multipart_type`).
pub(crate) mod mp {
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

/// `port_no`/`group_id`/`meter_id` followed by 4 pad bytes.
pub(crate) fn get_id_pad(rd: &mut Rd<'_>) -> Result<u32, DecodeError> {
    let id = rd.u32()?;
    rd.skip(4)?;
    rd.end()?;
    Ok(id)
}

pub(crate) fn get_mp_request(
    typ: u16,
    rd: &mut Rd<'_>,
    version: u8,
) -> Result<MpRequest, DecodeError> {
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

pub(crate) fn put_mp_request(
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
pub(crate) fn get_list<'a, T>(
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
pub(crate) fn get_fixed_list<'a, T>(
    rd: &mut Rd<'a>,
    size: usize,
    f: impl Fn(&mut Rd<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    if rd.b.len() % size != 0 {
        return Err(err(OfError::BAD_LEN, "bad multipart body length"));
    }
    get_list(rd, f)
}

pub(crate) fn get_mp_reply(typ: u16, rd: &mut Rd<'_>, v: u8) -> Result<MpReply, DecodeError> {
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

/// An item writer that cannot fail.
pub(crate) fn infallible<T>(
    f: impl Fn(&mut Vec<u8>, &T),
) -> impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError> {
    move |out, x| {
        f(out, x);
        Ok(())
    }
}

pub(crate) fn put_mp_reply(
    out: &mut Vec<u8>,
    (v, xid): (u8, u32),
    flags: u16,
    body: &MpReply,
) -> Result<(), EncodeError> {
    let single = |out: &mut Vec<u8>, typ: u16, f: &dyn Fn(&mut Vec<u8>)| {
        put_single(out, (v, xid), flags, typ, None, f)
    };
    let vx = (v, xid);
    match body {
        MpReply::Desc(d) => single(out, mp::DESC, &|out| wire::put_desc(out, d)),
        MpReply::Flow(l) => put_split(out, vx, flags, mp::FLOW, None, l, |out, f| {
            flow::put_flow_stats(out, f, v)
        }),
        MpReply::Aggregate {
            packet_count,
            byte_count,
            flow_count,
        } => single(out, mp::AGGREGATE, &|out| {
            flow::put_aggregate(out, *packet_count, *byte_count, *flow_count, v)
        }),
        MpReply::Table(l) => put_split(
            out,
            vx,
            flags,
            mp::TABLE,
            None,
            l,
            infallible(put_table_stats),
        ),
        MpReply::TableFeatures(l) => put_split(
            out,
            vx,
            flags,
            mp::TABLE_FEATURES,
            None,
            l,
            put_table_features,
        ),
        MpReply::PortStats(l) => put_split(
            out,
            vx,
            flags,
            mp::PORT_STATS,
            None,
            l,
            infallible(|out, s| port::put_port_stats(out, s, v)),
        ),
        MpReply::PortDesc(l) => put_split(
            out,
            vx,
            flags,
            mp::PORT_DESC,
            None,
            l,
            infallible(|out, p| port::put_port(out, p, v)),
        ),
        MpReply::Queue => single(out, mp::QUEUE, &|_| {}),
        MpReply::Group(l) => put_split(out, vx, flags, mp::GROUP, None, l, put_group_stats),
        MpReply::GroupDesc(l) => put_split(out, vx, flags, mp::GROUP_DESC, None, l, |out, g| {
            group::put_group_desc(out, g, v)
        }),
        MpReply::GroupFeatures(g) => single(out, mp::GROUP_FEATURES, &|out| {
            put_group_features(out, g);
        }),
        MpReply::Meter(l) => put_split(out, vx, flags, mp::METER, None, l, put_meter_stats),
        MpReply::MeterConfig(l) => {
            put_split(out, vx, flags, mp::METER_CONFIG, None, l, put_meter_config)
        }
        MpReply::MeterFeatures(f) => single(out, mp::METER_FEATURES, &|out| {
            put_meter_features(out, f);
        }),
        MpReply::NxFlow(_) | MpReply::NxAggregate { .. } => {
            Err(EncodeError::Unsupported("Nicira flow statistics reply"))
        }
    }
}
