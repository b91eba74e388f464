//! `NXT_PACKET_IN2` (Nicira subtype 30), the property-based packet-in of
//! Open vSwitch (`include/openflow/nicira-ext.h` `enum nx_packet_in2_prop_type`,
//! `lib/ofp-packet.c` `ofputil_put_packet_in`, `ofputil_encode_nx_packet_in2`,
//! `ofputil_decode_packet_in`). The body after the Nicira header is a run
//! of properties: type (u16), length (u16, header included, padding
//! excluded), value, zero padding to a multiple of 8 bytes.
//!
//! xennet sends, as Open vSwitch does and in its order: `NXPINT_PACKET`,
//! `NXPINT_FULL_LEN` (only when the packet was cut), `NXPINT_TABLE_ID`,
//! `NXPINT_COOKIE` (unless all ones), `NXPINT_REASON`, `NXPINT_METADATA`
//! (in_port, then the nonzero pipeline fields, then metadata when nonzero)
//! and `NXPINT_USERDATA` (when there is any), then, for a
//! `controller(pause)`, `NXPINT_CONTINUATION` ([`continuation`]).
//!
//! `NXT_RESUME` (Nicira subtype 28) has the same body: the packet, the
//! pipeline fields and the continuation, as `ovs-ofctl` builds it
//! (`ofputil_encode_resume`: no userdata).

use crate::error::{DecodeError, OfError};
use crate::header::NO_BUFFER;
use crate::model::PacketIn;
use crate::oxm::{self, Flavor};
use crate::wire::{Put, Rd};

pub mod continuation;

/// `NXT_PACKET_IN2`.
pub const NXT_PACKET_IN2: u32 = 30;
/// `NXT_RESUME`.
pub const NXT_RESUME: u32 = 28;

/// `enum nx_packet_in2_prop_type` (`nicira-ext.h`).
pub mod prop {
    /// The packet (possibly cut).
    pub const PACKET: u16 = 0;
    /// `u32`: length of the whole packet in bytes, when `PACKET` was cut.
    pub const FULL_LEN: u16 = 1;
    /// `u32`: buffer id (absent: `OFP_NO_BUFFER`).
    pub const BUFFER_ID: u16 = 2;
    /// `u8`: table of the flow that sent the packet.
    pub const TABLE_ID: u16 = 3;
    /// `be64` (after 4 pad bytes): cookie of that flow.
    pub const COOKIE: u16 = 4;
    /// `u8`: `ofp_packet_in_reason`.
    pub const REASON: u16 = 5;
    /// NXM/OXM TLVs: the pipeline fields.
    pub const METADATA: u16 = 6;
    /// The `controller` action's userdata.
    pub const USERDATA: u16 = 7;
    /// Continuation (private to the switch, [`super::continuation`]).
    pub const CONTINUATION: u16 = 8;
}

/// The Nicira subtype of `msg`: [`NXT_RESUME`] for `NxResume`, else
/// [`NXT_PACKET_IN2`].
pub fn subtype(msg: &crate::model::Msg) -> u32 {
    if matches!(msg, crate::model::Msg::NxResume(_)) {
        NXT_RESUME
    } else {
        NXT_PACKET_IN2
    }
}

fn bad(what: &'static str) -> DecodeError {
    DecodeError::new(OfError::BAD_PROPERTY_LEN, what)
}

/// Start a property; returns the offset to give [`end_prop`].
fn start_prop(out: &mut Vec<u8>, typ: u16) -> usize {
    let at = out.len();
    out.u16(typ);
    out.u16(0);
    at
}

/// Patch the property length (padding excluded) and pad to 8 bytes.
fn end_prop(out: &mut Vec<u8>, at: usize) {
    let len = u16::try_from(out.len() - at).unwrap_or(u16::MAX);
    out.patch16(at + 2, len);
    out.pad8(at);
}

fn put_prop(out: &mut Vec<u8>, typ: u16, value: &[u8]) {
    let at = start_prop(out, typ);
    out.extend_from_slice(value);
    end_prop(out, at);
}

/// Append the properties of `p` (the body after the Nicira header) for
/// OpenFlow `version`: the metadata is NXM on 1.0 and OXM on 1.2+ (OVS
/// `oxm_put_raw` with the connection's version), and so are the
/// continuation's actions. A continuation that cannot be encoded in
/// `version` is left out (counted in [`continuation::UNENCODABLE`]).
pub fn put_body(p: &PacketIn, version: u8, out: &mut Vec<u8>) {
    let flavor = if version == crate::header::OFP10_VERSION {
        Flavor::Nxm
    } else {
        Flavor::Oxm
    };
    put_prop(out, prop::PACKET, &p.data);
    if usize::from(p.total_len) != p.data.len() {
        put_prop(out, prop::FULL_LEN, &u32::from(p.total_len).to_be_bytes());
    }
    if p.buffer_id != NO_BUFFER {
        put_prop(out, prop::BUFFER_ID, &p.buffer_id.to_be_bytes());
    }
    put_prop(out, prop::TABLE_ID, &[p.table_id]);
    if p.cookie != u64::MAX {
        let at = start_prop(out, prop::COOKIE);
        out.zeros(4);
        out.u64(p.cookie);
        end_prop(out, at);
    }
    put_prop(out, prop::REASON, &[p.reason]);
    let at = start_prop(out, prop::METADATA);
    oxm::encode_exact(
        crate::model::OxmField::InPort,
        u128::from(p.in_port),
        flavor,
        out,
    );
    for &(f, v) in &p.pipeline {
        if v != 0 && f != crate::model::OxmField::Metadata {
            oxm::encode_exact(f, v, flavor, out);
        }
    }
    if p.metadata != 0 {
        oxm::encode_exact(
            crate::model::OxmField::Metadata,
            u128::from(p.metadata),
            flavor,
            out,
        );
    }
    end_prop(out, at);
    if !p.userdata.is_empty() {
        put_prop(out, prop::USERDATA, &p.userdata);
    }
    if let Some(c) = &p.continuation {
        if continuation::put(c, prop::CONTINUATION, version, out).is_err() {
            continuation::UNENCODABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn exact<const N: usize>(v: &[u8], what: &'static str) -> Result<[u8; N], DecodeError> {
    v.try_into().map_err(|_| bad(what))
}

/// Decode the properties of an `NXT_PACKET_IN2` (the body after the
/// Nicira header) of OpenFlow `version`, loosely as `ovs-ofctl` does:
/// unknown properties are skipped, unknown match fields too, and a
/// continuation that does not decode is dropped.
///
/// # Errors
/// `OFPBPC_BAD_LEN` for a property shorter than its header, longer (with
/// padding) than the message, or a fixed-size property of the wrong
/// size; `OFPBRC_BAD_LEN` when there is no packet; `BAD_MATCH/BAD_LEN`
/// for a truncated TLV in the metadata.
pub fn get_body(body: &[u8], version: u8) -> Result<PacketIn, DecodeError> {
    get(body, version, false)
}

/// Decode an `NXT_RESUME` body (as [`get_body`], OVS
/// `ofputil_decode_packet_in_private` with `loose` false): unknown
/// properties are refused and the continuation must decode.
///
/// # Errors
/// As [`get_body`], `OFPBPC_BAD_TYPE` for an unknown property, and the
/// continuation's errors ([`continuation::get`]).
pub fn get_resume(body: &[u8], version: u8) -> Result<PacketIn, DecodeError> {
    get(body, version, true)
}

fn get(body: &[u8], version: u8, strict: bool) -> Result<PacketIn, DecodeError> {
    let mut rd = Rd::new(body, OfError::BAD_PROPERTY_LEN);
    let mut p = PacketIn {
        buffer_id: NO_BUFFER,
        cookie: u64::MAX,
        ..PacketIn::default()
    };
    let mut full_len = None;
    let mut have_packet = false;
    while !rd.is_empty() {
        let typ = rd.u16()?;
        let len = usize::from(rd.u16()?);
        if len < 4 {
            return Err(bad("property shorter than its header"));
        }
        let padded = len.div_ceil(8) * 8;
        if padded - 4 > rd.len() {
            return Err(bad("property longer than the message"));
        }
        let all = rd.take(padded - 4)?;
        let v = &all[..len - 4];
        match typ {
            prop::PACKET => {
                have_packet = true;
                p.data = v.to_vec();
            }
            prop::FULL_LEN => full_len = Some(u32::from_be_bytes(exact(v, "full_len")?)),
            prop::BUFFER_ID => p.buffer_id = u32::from_be_bytes(exact(v, "buffer_id")?),
            prop::TABLE_ID => p.table_id = exact::<1>(v, "table_id")?[0],
            prop::COOKIE => {
                let b: [u8; 12] = exact(v, "cookie")?;
                p.cookie = u64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
            }
            prop::REASON => p.reason = exact::<1>(v, "reason")?[0],
            prop::METADATA => {
                let (in_port, metadata, pipeline) = oxm::decode_pipeline_all(v)?;
                p.in_port = in_port.unwrap_or(0);
                p.metadata = metadata;
                p.pipeline = pipeline;
            }
            prop::USERDATA => p.userdata = v.to_vec(),
            prop::CONTINUATION => match continuation::get(v, version, strict) {
                Ok(c) => p.continuation = Some(Box::new(c)),
                Err(e) if strict => return Err(e),
                Err(_) => {}
            },
            _ if strict => {
                return Err(DecodeError::new(
                    OfError::BAD_PROPERTY_TYPE,
                    "unknown NXT_RESUME property",
                ))
            }
            _ => {}
        }
    }
    if !have_packet {
        return Err(DecodeError::new(
            OfError::BAD_LEN,
            "NXT_PACKET_IN2 lacks a packet",
        ));
    }
    if full_len.is_some_and(|l| (l as usize) < p.data.len()) {
        return Err(DecodeError::new(
            OfError::BAD_LEN,
            "NXT_PACKET_IN2 claims full_len < len",
        ));
    }
    let total = full_len.map_or(p.data.len(), |l| l as usize);
    p.total_len = u16::try_from(total).unwrap_or(u16::MAX);
    Ok(p)
}

#[cfg(test)]
mod tests;
