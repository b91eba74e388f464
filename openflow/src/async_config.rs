//! Asynchronous-message configuration (`OFPT_SET_ASYNC`,
//! `OFPT_GET_ASYNC_REPLY`) for OpenFlow 1.3, 1.4 and 1.5, and Nicira
//! `NXT_SET_ASYNC_CONFIG` for OpenFlow 1.0.
//!
//! - 1.0: Nicira `nx_async_config`, laid out as 1.3's `ofp_async_config`
//!   (so `get_config` and `put_config` with 1.3 read and write it).
//! - 1.3 (§7.3.10): `ofp_async_config`, three pairs of 32-bit masks
//!   (packet-in, port-status, flow-removed; master/equal first, then
//!   slave), 24 bytes; a SET replaces the whole configuration.
//! - 1.4/1.5 (1.4.1 §7.3.10): a list of 8-byte properties (`type`, `length`
//!   = 8, `mask`), types 0..=11 = (slave, master) for packet-in,
//!   port-status, flow-removed, role-status, table-status,
//!   request-forward. A SET changes only the properties it carries
//!   ([`Msg::SetAsyncProps`](crate::model::Msg::SetAsyncProps)); a GET
//!   reply carries all twelve, as Open vSwitch sends. Bits beyond the
//!   reasons the version defines get `ASYNC_CONFIG_FAILED/INVALID`, an
//!   unknown property `ASYNC_CONFIG_FAILED/UNSUPPORTED` (as in OVS).

use crate::error::{DecodeError, OfError};
use crate::header::OFP14_VERSION;
use crate::model::{AsyncConfig, AsyncProp};
use crate::port::props;
use crate::wire::{err, Put, Rd};

/// Reason bits each property pair may carry in 1.4+ (Open vSwitch's
/// `async_props`): packet-in 6 reasons, port-status 3, flow-removed 6,
/// role-status 3, table-status vacancy down/up (bits 3, 4),
/// request-forward 2.
const ALLOWED_14: [u32; 6] = [0x3f, 0x7, 0x3f, 0x7, 0x18, 0x3];

/// Decode 1.4+ async properties.
///
/// # Errors
/// `ASYNC_CONFIG_FAILED/INVALID` or `/UNSUPPORTED`, `BAD_REQUEST/BAD_LEN`.
pub(crate) fn get_props(rd: &mut Rd<'_>) -> Result<Vec<AsyncProp>, DecodeError> {
    let mut v = Vec::new();
    props(rd, |typ, mut b| {
        if typ > 11 {
            return Err(err(
                OfError::ASYNC_CONFIG_UNSUPPORTED,
                "unknown async property",
            ));
        }
        let mask = b.u32()?;
        b.end()?;
        if mask & !ALLOWED_14[usize::from(typ / 2)] != 0 {
            return Err(err(
                OfError::ASYNC_CONFIG_INVALID,
                "async reason not allowed",
            ));
        }
        v.push(AsyncProp { typ, mask });
        Ok(())
    })?;
    Ok(v)
}

/// Apply 1.4 properties to `c`.
pub fn apply(c: &mut AsyncConfig, props: &[AsyncProp]) {
    for p in props {
        if let Some(pair) = c.pairs_mut().into_iter().nth(usize::from(p.typ / 2)) {
            pair[usize::from(p.typ % 2 == 0)] = p.mask;
        }
    }
}

/// Append 1.4+ properties (`props`).
pub(crate) fn put_props(out: &mut Vec<u8>, props: &[AsyncProp]) {
    for p in props {
        out.u16(p.typ);
        out.u16(8);
        out.u32(p.mask);
    }
}

/// All twelve properties of `c`, in type order.
pub(crate) fn all_props(c: &AsyncConfig) -> Vec<AsyncProp> {
    let mut c = *c;
    let mut v = Vec::new();
    for (k, pair) in c.pairs_mut().into_iter().enumerate() {
        let k = k as u16;
        v.push(AsyncProp {
            typ: 2 * k,
            mask: pair[1],
        });
        v.push(AsyncProp {
            typ: 2 * k + 1,
            mask: pair[0],
        });
    }
    v
}

/// Decode a whole configuration of `version` (a GET reply; for a 1.3
/// SET too).
///
/// # Errors
/// As [`get_props`]; `BAD_REQUEST/BAD_LEN` for a 1.3 body not 24 bytes.
pub(crate) fn get_config(rd: &mut Rd<'_>, version: u8) -> Result<AsyncConfig, DecodeError> {
    if version >= OFP14_VERSION {
        let mut c = AsyncConfig::NONE;
        apply(&mut c, &get_props(rd)?);
        return Ok(c);
    }
    let mut pair = || -> Result<[u32; 2], DecodeError> { Ok([rd.u32()?, rd.u32()?]) };
    let c = AsyncConfig {
        packet_in_mask: pair()?,
        port_status_mask: pair()?,
        flow_removed_mask: pair()?,
        ..AsyncConfig::NONE
    };
    rd.end()?;
    Ok(c)
}

/// Append a whole configuration of `version` (1.4+: the reason bits the
/// version defines).
pub(crate) fn put_config(out: &mut Vec<u8>, c: &AsyncConfig, version: u8) {
    if version >= OFP14_VERSION {
        let mut v = all_props(c);
        for p in &mut v {
            p.mask &= ALLOWED_14[usize::from(p.typ / 2)];
        }
        put_props(out, &v);
        return;
    }
    for v in c
        .packet_in_mask
        .iter()
        .chain(&c.port_status_mask)
        .chain(&c.flow_removed_mask)
    {
        out.u32(*v);
    }
}
