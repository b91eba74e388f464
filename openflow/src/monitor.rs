//! Flow monitors: the message family a controller uses to follow the
//! changes of the flow tables (OVS `lib/ofp-monitor.c`,
//! `include/openflow/nicira-ext.h`, `openflow-1.3.h`, `openflow-1.4.h`).
//!
//! One model, three wire forms, as Open vSwitch 3.1 speaks them:
//! - OpenFlow 1.0: Nicira vendor statistics `NXST_FLOW_MONITOR` (subtype 2)
//!   with `nx_flow_monitor_request` / `nx_flow_update_*` and NXM matches,
//!   and the vendor messages `NXT_FLOW_MONITOR_CANCEL` (21), `_PAUSED`
//!   (22), `_RESUMED` (23).
//! - OpenFlow 1.3: the ONF extension, experimenter multipart
//!   `ONFST_FLOW_MONITOR` (ONF id, type 1870) with
//!   `onf_flow_monitor_request` and the Nicira update layout with an
//!   `ofp_match` and instructions, and the experimenter messages
//!   `ONFT_FLOW_MONITOR_CANCEL` (1870), `_PAUSED` (1871), `_RESUMED` (1872).
//! - OpenFlow 1.4 and 1.5: `OFPMP_FLOW_MONITOR` (16) with
//!   `ofp14_flow_monitor_request` (a cancel is a request with command
//!   `OFPFMC_DELETE`) and `ofp_flow_update_*`; paused and resumed are
//!   update events in a reply.
//!
//! Flags and events use the OpenFlow 1.4 numbering in the model
//! ([`flags`], [`UpdateEvent`]); the Nicira/ONF forms are mapped as OVS's
//! `nx_to_ofp_flow_monitor_flags` does.

use crate::bundle::ONF_EXPERIMENTER_ID;
use crate::error::{DecodeError, OfError};
use crate::header::{Header, OFP10_VERSION, OFP13_VERSION};
use crate::model::{EncodeError, Instructions, Match};
use crate::nicira::NX_VENDOR_ID;
use crate::wire::{self, Put, Rd};

/// `NXST_FLOW_MONITOR`: Nicira statistics subtype.
pub const NXST_FLOW_MONITOR: u32 = 2;
/// `NXT_FLOW_MONITOR_CANCEL`.
pub const NXT_FLOW_MONITOR_CANCEL: u32 = 21;
/// `NXT_FLOW_MONITOR_PAUSED`.
pub const NXT_FLOW_MONITOR_PAUSED: u32 = 22;
/// `NXT_FLOW_MONITOR_RESUMED`.
pub const NXT_FLOW_MONITOR_RESUMED: u32 = 23;
/// `ONFST_FLOW_MONITOR` / `ONFT_FLOW_MONITOR_CANCEL` (OpenFlow 1.3, ONF
/// experimenter type).
pub const ONF_FLOW_MONITOR: u32 = 1870;
/// `ONFT_FLOW_MONITOR_PAUSED`.
pub const ONFT_FLOW_MONITOR_PAUSED: u32 = 1871;
/// `ONFT_FLOW_MONITOR_RESUMED`.
pub const ONFT_FLOW_MONITOR_RESUMED: u32 = 1872;
/// `OFPMP_FLOW_MONITOR` (OpenFlow 1.4+ multipart type).
pub const OFPMP_FLOW_MONITOR: u16 = 16;

/// Monitor flags, OpenFlow 1.4 numbering (`enum ofp14_flow_monitor_flags`).
pub mod flags {
    /// `OFPFMF_INITIAL` (`NXFMF_INITIAL`): the request's reply lists the
    /// flows that match now.
    pub const INITIAL: u16 = 1 << 0;
    /// `OFPFMF_ADD` (`NXFMF_ADD`).
    pub const ADD: u16 = 1 << 1;
    /// `OFPFMF_REMOVED` (`NXFMF_DELETE`).
    pub const REMOVED: u16 = 1 << 2;
    /// `OFPFMF_MODIFY` (`NXFMF_MODIFY`).
    pub const MODIFY: u16 = 1 << 3;
    /// `OFPFMF_INSTRUCTIONS` (`NXFMF_ACTIONS`): updates carry the actions.
    pub const INSTRUCTIONS: u16 = 1 << 4;
    /// `OFPFMF_NO_ABBREV` (not accepted, as in OVS).
    pub const NO_ABBREV: u16 = 1 << 5;
    /// `OFPFMF_ONLY_OWN` (`NXFMF_OWN` in OVS's mapping): the connection's
    /// own changes are reported in full, not abbreviated to their xid.
    pub const ONLY_OWN: u16 = 1 << 6;
    /// Every flag a request may carry (OVS `ofputil_decode_flow_monitor_request`).
    pub const VALID: u16 = INITIAL | ADD | REMOVED | MODIFY | INSTRUCTIONS | ONLY_OWN;
}

/// `OFPFMC_ADD`: a new monitor.
pub const OFPFMC_ADD: u8 = 0;
/// `OFPFMC_MODIFY`: replace a monitor.
pub const OFPFMC_MODIFY: u8 = 1;
/// `OFPFMC_DELETE`: cancel a monitor.
pub const OFPFMC_DELETE: u8 = 2;

/// One flow monitor request (OVS `struct ofputil_flow_monitor_request`).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorRequest {
    /// Controller-chosen monitor id, unique per connection.
    pub id: u32,
    /// [`OFPFMC_ADD`], [`OFPFMC_MODIFY`] or [`OFPFMC_DELETE`] (always
    /// add in the Nicira and ONF forms).
    pub command: u8,
    /// [`flags`].
    pub flags: u16,
    /// Only flows that output to this port (`OFPP_ANY`: any), 32-bit port
    /// numbers.
    pub out_port: u32,
    /// Only flows that use this group (`OFPG_ANY`: any).
    pub out_group: u32,
    /// One table, or 0xff for all.
    pub table_id: u8,
    /// Only flows whose match is at least as specific as this one.
    pub matcher: Match,
}

/// The event of a flow update, OpenFlow 1.4 numbering
/// (`enum ofp_flow_update_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateEvent {
    /// `OFPFME_INITIAL`: in the reply to a request (Nicira: `NXFME_ADDED`).
    Initial = 0,
    /// `OFPFME_ADDED` (`NXFME_ADDED`).
    Added = 1,
    /// `OFPFME_REMOVED` (`NXFME_DELETED`).
    Removed = 2,
    /// `OFPFME_MODIFIED` (`NXFME_MODIFIED`).
    Modified = 3,
}

impl UpdateEvent {
    fn nx(self) -> u16 {
        match self {
            UpdateEvent::Initial | UpdateEvent::Added => 0,
            UpdateEvent::Removed => 1,
            UpdateEvent::Modified => 2,
        }
    }
}

/// A full flow update (`nx_flow_update_full` / `ofp_flow_update_full`).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowUpdateFull {
    /// What happened.
    pub event: UpdateEvent,
    /// The flow's table.
    pub table_id: u8,
    /// `OFPRR_*` for a removal, else 0.
    pub reason: u8,
    /// Idle timeout in seconds.
    pub idle_timeout: u16,
    /// Hard timeout in seconds.
    pub hard_timeout: u16,
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// The flow's match.
    pub matcher: Match,
    /// The flow's instructions, when the monitor asked for them.
    pub instructions: Option<Instructions>,
}

/// One element of a flow monitor reply.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowUpdate {
    /// A flow with its match (and actions).
    Full(Box<FlowUpdateFull>),
    /// `NXFME_ABBREV`/`OFPFME_ABBREV`: the connection's own request with
    /// this xid changed matching flows.
    Abbrev(u32),
}

/// `NXT_FLOW_MONITOR_PAUSED` / `OFPFME_PAUSED` or their `RESUMED` twins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Updates stopped: the connection's queue is full.
    Paused,
    /// Updates resumed (after a refresh of what changed).
    Resumed,
}

fn bad(e: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(e, what)
}

/// Decode the body of a flow monitor request (after the multipart
/// header and, for Nicira/ONF, the vendor and subtype words): a list of
/// requests in `version`'s form.
///
/// # Errors
/// `OFPBRC_BAD_LEN` for a short request, `OFPMOFC_BAD_FLAGS` for flags
/// without add/remove/modify or with unknown bits, `NXBRC_MUST_BE_ZERO`
/// for nonzero padding, match errors.
pub fn decode_requests(version: u8, body: &[u8]) -> Result<Vec<MonitorRequest>, DecodeError> {
    let mut rd = Rd::new(body, OfError::BAD_LEN);
    let mut out = Vec::new();
    while !rd.is_empty() {
        if out.len() >= MAX_REQUESTS {
            return Err(bad(OfError::BAD_LEN, "too many monitors in one request"));
        }
        out.push(decode_one(version, &mut rd)?);
    }
    Ok(out)
}

/// Most monitor requests one message may carry (a 64 KiB message holds
/// at most 4095 16-byte requests).
const MAX_REQUESTS: usize = 4096;

fn check_flags(f: u16) -> Result<(), DecodeError> {
    if f & (flags::ADD | flags::REMOVED | flags::MODIFY) == 0 || f & !flags::VALID != 0 {
        return Err(bad(OfError::MONITOR_BAD_FLAGS, "bad flow monitor flags"));
    }
    Ok(())
}

fn decode_one(version: u8, rd: &mut Rd<'_>) -> Result<MonitorRequest, DecodeError> {
    match version {
        OFP10_VERSION => {
            let id = rd.u32()?;
            let nxf = rd.u16()?;
            let out_port = crate::port::port_from_ofp10(rd.u16()?);
            let match_len = usize::from(rd.u16()?);
            let table_id = rd.u8()?;
            if rd.take(5)?.iter().any(|b| *b != 0) {
                return Err(bad(OfError::MONITOR_INVALID, "nonzero padding"));
            }
            let f = nx_to_ofp_flags(nxf)?;
            let m = rd.take(match_len)?;
            rd.skip(match_len.next_multiple_of(8) - match_len)?;
            Ok(MonitorRequest {
                id,
                command: OFPFMC_ADD,
                flags: f,
                out_port,
                out_group: crate::model::OFPG_ANY,
                table_id,
                matcher: crate::oxm::decode_tlvs(m)?,
            })
        }
        OFP13_VERSION => {
            let id = rd.u32()?;
            let nxf = rd.u16()?;
            let _match_len = rd.u16()?;
            let out_port = rd.u32()?;
            let table_id = rd.u8()?;
            if rd.take(3)?.iter().any(|b| *b != 0) {
                return Err(bad(OfError::MONITOR_INVALID, "nonzero padding"));
            }
            let f = nx_to_ofp_flags(nxf)?;
            Ok(MonitorRequest {
                id,
                command: OFPFMC_ADD,
                flags: f,
                out_port,
                out_group: crate::model::OFPG_ANY,
                table_id,
                matcher: crate::ofp_match::get_match(rd)?,
            })
        }
        _ => {
            let id = rd.u32()?;
            let out_port = rd.u32()?;
            let out_group = rd.u32()?;
            let f = rd.u16()?;
            let table_id = rd.u8()?;
            let command = rd.u8()?;
            let matcher = crate::ofp_match::get_match(rd)?;
            match command {
                OFPFMC_DELETE => {}
                OFPFMC_ADD | OFPFMC_MODIFY => check_flags(f)?,
                _ => return Err(bad(OfError::MONITOR_BAD_COMMAND, "bad monitor command")),
            }
            Ok(MonitorRequest {
                id,
                command,
                flags: f,
                out_port,
                out_group,
                table_id,
                matcher,
            })
        }
    }
}

/// `NXFMF_*` to [`flags`] (OVS `nx_to_ofp_flow_monitor_flags`), checked.
fn nx_to_ofp_flags(nx: u16) -> Result<u16, DecodeError> {
    // NXFMF_INITIAL..NXFMF_ACTIONS are bits 0..4 in both; NXFMF_OWN (bit
    // 5) is OFPFMF_ONLY_OWN (bit 6).
    if nx & (2 | 4 | 8) == 0 || nx & !0x3f != 0 {
        return Err(bad(OfError::MONITOR_BAD_FLAGS, "bad flow monitor flags"));
    }
    let own = if nx & 0x20 != 0 { flags::ONLY_OWN } else { 0 };
    Ok((nx & 0x1f) | own)
}

fn ofp_to_nx_flags(f: u16) -> u16 {
    let own = if f & flags::ONLY_OWN != 0 { 0x20 } else { 0 };
    (f & 0x1f) | own
}

/// Decode a cancel's body (`nx_flow_monitor_cancel`: the monitor id).
///
/// # Errors
/// `OFPBRC_BAD_LEN` unless the body is 4 bytes.
pub fn decode_cancel(body: &[u8]) -> Result<u32, DecodeError> {
    let mut rd = Rd::new(body, OfError::BAD_LEN);
    let id = rd.u32()?;
    rd.end()?;
    Ok(id)
}

/// Append the flow monitor request `reqs` for `version` (as `ovs-ofctl
/// monitor` sends it; used by tests).
///
/// # Errors
/// A request that does not fit.
pub fn encode_request(
    version: u8,
    xid: u32,
    reqs: &[MonitorRequest],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = begin_mp(version, xid, true, 0, out);
    for r in reqs {
        match version {
            OFP10_VERSION => {
                out.u32(r.id);
                out.u16(ofp_to_nx_flags(r.flags));
                let p = crate::port::port_to_ofp10(r.out_port)
                    .ok_or(EncodeError::Unsupported("port beyond OpenFlow 1.0"))?;
                out.u16(p);
                let at = out.len();
                out.u16(0);
                out.u8(r.table_id);
                out.zeros(5);
                let m = out.len();
                crate::oxm::encode_tlvs(&r.matcher, crate::oxm::Flavor::Nxm, out);
                let len = out.len() - m;
                out.patch16(at, u16::try_from(len).unwrap_or(u16::MAX));
                out.pad8(m);
            }
            OFP13_VERSION => {
                out.u32(r.id);
                out.u16(ofp_to_nx_flags(r.flags));
                let at = out.len();
                out.u16(0);
                out.u32(r.out_port);
                out.u8(r.table_id);
                out.zeros(3);
                let m = out.len();
                crate::ofp_match::put_match(out, &r.matcher);
                let len = u16::from_be_bytes([out[m + 2], out[m + 3]]);
                out.patch16(at, len);
            }
            _ => {
                out.u32(r.id);
                out.u32(r.out_port);
                out.u32(r.out_group);
                out.u16(r.flags);
                out.u8(r.table_id);
                out.u8(r.command);
                crate::ofp_match::put_match(out, &r.matcher);
            }
        }
    }
    wire::finish(out, start)
}

/// Start a flow monitor multipart message: header, multipart type and
/// flags, and for 1.0/1.3 the vendor words. Returns the message start.
fn begin_mp(version: u8, xid: u32, request: bool, mp_flags: u16, out: &mut Vec<u8>) -> usize {
    // OFPT_STATS_REQUEST/REPLY are 16/17 in 1.0, MULTIPART 18/19 after.
    let typ = match (version, request) {
        (OFP10_VERSION, true) => 16,
        (OFP10_VERSION, false) => 17,
        (_, true) => 18,
        (_, false) => 19,
    };
    let start = wire::begin(out, version, typ, xid);
    match version {
        OFP10_VERSION => {
            out.u16(0xffff);
            out.u16(mp_flags);
            out.u32(NX_VENDOR_ID);
            out.u32(NXST_FLOW_MONITOR);
            out.zeros(4);
        }
        OFP13_VERSION => {
            out.u16(0xffff);
            out.u16(mp_flags);
            out.zeros(4);
            out.u32(ONF_EXPERIMENTER_ID);
            out.u32(ONF_FLOW_MONITOR);
        }
        _ => {
            out.u16(OFPMP_FLOW_MONITOR);
            out.u16(mp_flags);
            out.zeros(4);
        }
    }
    start
}

/// Body bytes per reply message before the rest goes to the next one
/// (OpenFlow messages are at most 64 KiB).
const REPLY_SPLIT: usize = 60 * 1024;

/// Append one update in `version`'s form.
fn put_update(version: u8, u: &FlowUpdate, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    match u {
        FlowUpdate::Abbrev(xid) => {
            out.u16(8);
            out.u16(if version <= OFP13_VERSION { 3 } else { 4 });
            out.u32(*xid);
        }
        FlowUpdate::Full(f) if version <= OFP13_VERSION => {
            out.u16(0);
            out.u16(f.event.nx());
            out.u16(u16::from(f.reason));
            out.u16(f.priority);
            out.u16(f.idle_timeout);
            out.u16(f.hard_timeout);
            let ml = out.len();
            out.u16(0);
            out.u8(f.table_id);
            out.u8(0);
            out.u64(f.cookie);
            let m = out.len();
            let empty = Instructions::default();
            let ins = f.instructions.as_ref().unwrap_or(&empty);
            if version == OFP10_VERSION {
                crate::oxm::encode_tlvs(&f.matcher, crate::oxm::Flavor::Nxm, out);
                let len = out.len() - m;
                out.patch16(ml, u16::try_from(len).unwrap_or(u16::MAX));
                out.pad8(m);
                crate::instructions::encode_instructions_as_actions(ins, out)?;
            } else {
                crate::ofp_match::put_match(out, &f.matcher);
                let len = u16::from_be_bytes([out[m + 2], out[m + 3]]);
                out.patch16(ml, len);
                crate::instructions::put_instructions(out, ins, version)?;
            }
        }
        FlowUpdate::Full(f) => {
            out.u16(0);
            out.u16(f.event as u16);
            out.u8(f.table_id);
            out.u8(f.reason);
            out.u16(f.idle_timeout);
            out.u16(f.hard_timeout);
            out.u16(f.priority);
            out.zeros(4);
            out.u64(f.cookie);
            crate::ofp_match::put_match(out, &f.matcher);
            if let Some(ins) = &f.instructions {
                crate::instructions::put_instructions(out, ins, version)?;
            }
        }
    }
    let len = u16::try_from(out.len() - start)
        .map_err(|_| EncodeError::Unsupported("flow update over 64 KiB"))?;
    out.patch16(start, len);
    Ok(())
}

/// Append a flow monitor reply with `updates` for `version` with `xid`
/// (0 for the updates that follow a request), split into several
/// messages with the `REPLY_MORE` flag when large (OVS
/// `ofputil_append_flow_update`, `ofpmp_postappend`). An empty list is
/// one empty reply.
///
/// # Errors
/// An update that cannot be expressed in `version` (nothing is appended).
pub fn encode_reply(
    version: u8,
    xid: u32,
    updates: &[FlowUpdate],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let first = out.len();
    let r = (|| {
        let mut start = begin_mp(version, xid, false, 0, out);
        let mut body = out.len();
        for u in updates {
            if out.len() - body > REPLY_SPLIT {
                // OFPMPF_REPLY_MORE in the message being closed.
                let flags_at = start + 10;
                out.patch16(flags_at, 1);
                wire::finish(out, start)?;
                start = begin_mp(version, xid, false, 0, out);
                body = out.len();
            }
            put_update(version, u, out)?;
        }
        wire::finish(out, start)
    })();
    if r.is_err() {
        out.truncate(first);
    }
    r
}

/// Append the message telling a monitoring connection that updates are
/// paused or resumed, for `version` (xid 0; OVS
/// `ofputil_encode_flow_monitor_pause`).
///
/// # Errors
/// None in practice (kept for symmetry with the other encoders).
pub fn encode_pause(version: u8, p: Pause, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match version {
        OFP10_VERSION => {
            let start = wire::begin(out, version, 4, 0);
            out.u32(NX_VENDOR_ID);
            out.u32(match p {
                Pause::Paused => NXT_FLOW_MONITOR_PAUSED,
                Pause::Resumed => NXT_FLOW_MONITOR_RESUMED,
            });
            wire::finish(out, start)
        }
        OFP13_VERSION => {
            let start = wire::begin(out, version, 4, 0);
            out.u32(ONF_EXPERIMENTER_ID);
            out.u32(match p {
                Pause::Paused => ONFT_FLOW_MONITOR_PAUSED,
                Pause::Resumed => ONFT_FLOW_MONITOR_RESUMED,
            });
            wire::finish(out, start)
        }
        _ => {
            let start = begin_mp(version, 0, false, 0, out);
            out.u16(8);
            out.u16(match p {
                Pause::Paused => 5,
                Pause::Resumed => 6,
            });
            out.zeros(4);
            wire::finish(out, start)
        }
    }
}

/// Whether a message is a flow monitor request, and its body: for 1.0 a
/// stats request of type vendor with Nicira subtype 2, for 1.3 an
/// experimenter multipart with the ONF id and type 1870, for 1.4+ a
/// multipart of type 16.
pub fn request_body<'a>(h: &Header, buf: &'a [u8]) -> Option<&'a [u8]> {
    let b = buf.get(crate::header::HEADER_LEN..usize::from(h.length))?;
    let be16 = |at: usize| b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
    let be32 = |at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    match h.version {
        OFP10_VERSION if h.typ == 16 => {
            (be16(0)? == 0xffff && be32(4)? == NX_VENDOR_ID && be32(8)? == NXST_FLOW_MONITOR)
                .then(|| b.get(16..))?
        }
        OFP13_VERSION if h.typ == 18 => {
            (be16(0)? == 0xffff && be32(8)? == ONF_EXPERIMENTER_ID && be32(12)? == ONF_FLOW_MONITOR)
                .then(|| b.get(16..))?
        }
        v if v > OFP13_VERSION && h.typ == 18 => {
            (be16(0)? == OFPMP_FLOW_MONITOR).then(|| b.get(8..))?
        }
        _ => None,
    }
}

/// Whether a message is a flow monitor cancel (1.0 Nicira vendor message
/// 21, 1.3 ONF experimenter message 1870), and its body.
pub fn cancel_body<'a>(h: &Header, buf: &'a [u8]) -> Option<&'a [u8]> {
    let b = buf.get(crate::header::HEADER_LEN..usize::from(h.length))?;
    let be32 = |at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    if h.typ != 4 {
        return None;
    }
    match h.version {
        OFP10_VERSION => {
            (be32(0)? == NX_VENDOR_ID && be32(4)? == NXT_FLOW_MONITOR_CANCEL).then(|| b.get(8..))?
        }
        OFP13_VERSION => {
            (be32(0)? == ONF_EXPERIMENTER_ID && be32(4)? == ONF_FLOW_MONITOR).then(|| b.get(8..))?
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
