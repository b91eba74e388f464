//! The bundle family for OpenFlow 1.3, 1.4 and 1.5: bundle control and
//! bundle add-message, with the version as a parameter, and the 1.3
//! encoding of the error types OpenFlow 1.3 lacks.
//!
//! - 1.4/1.5 (1.4.1 §7.3.9): `OFPT_BUNDLE_CONTROL` (type 33) and
//!   `OFPT_BUNDLE_ADD_MESSAGE` (type 34). Both start with
//!   `ofp_bundle_ctrl_msg`: `bundle_id` (u32), `type` (u16,
//!   `OFPBCT_*`; unused in add-message), `flags` (u16, `OFPBF_*`). A
//!   control message is followed by properties; an add-message by the
//!   included message (its own `ofp_header`, with the outer version and
//!   xid), then, only if a property follows, padding to 8 bytes and
//!   properties.
//! - 1.3: the ONF extension Open vSwitch implements (`ONFT13_BUNDLE_*`
//!   in `lib/ofp-msgs.h`): an experimenter message (type 4) with
//!   experimenter `0x4F4E4600` (ONF) and exp_type 2300 (control) or 2301
//!   (add-message), then the same body.
//!
//! Decoding checks what Open vSwitch checks (`ofpraw_check_length`,
//! `ofputil_decode_bundle_add`), in its order: a control body whose
//! length past the fixed 8 bytes is not a multiple of 8 is
//! `OFPBRC_BAD_LEN`; an included message shorter than a header or
//! longer than what is there is `OFPBFC_MSG_BAD_LEN`; another version
//! is `OFPBRC_BAD_VERSION` (Open vSwitch answers its Nicira
//! `OFPBFC_BAD_VERSION`, which 1.3 cannot carry); another xid is
//! `OFPBFC_MSG_BAD_XID`; a message of another type than flow-mod,
//! group-mod, port-mod and packet-out (including a nested bundle
//! message) is `OFPBFC_MSG_UNSUP`; an included message that does not
//! decode gets its own error. Beyond Open vSwitch, which ignores them,
//! what xennet does not implement is refused: properties
//! (`OFPBPC_BAD_EXPERIMENTER` for the experimenter property,
//! `OFPBFC_SCHED_NOT_SUPPORTED` for the 1.5 `OFPBPT_TIME`,
//! `OFPBPC_BAD_TYPE` for others, `OFPBPC_BAD_LEN` for a malformed list),
//! control types above 7 (`OFPBFC_BAD_TYPE`) and flags other than
//! `ATOMIC`/`ORDERED` (`OFPBFC_SCHED_NOT_SUPPORTED` for the 1.5
//! `OFPBF_TIME`, else `OFPBFC_BAD_FLAGS`).
//!
//! Errors in 1.3 (Open vSwitch `lib/ofp-errors.h`, `ONF1.3(...)`): an
//! `OFPET_BUNDLE_FAILED` code `c` is sent as an experimenter error
//! (`OFPET_EXPERIMENTER`, code `2300 + c`, experimenter ONF);
//! `OFPET_ASYNC_CONFIG_FAILED` codes as ONF `2370 + c`;
//! `OFPET_BAD_PROPERTY` codes 0..=2 as `OFPET_TABLE_FEATURES_FAILED`
//! codes 2..=4 and 3..=8 as ONF `4440 + c`; anything else of these types
//! as Nicira `NXBRC_UNENCODABLE_ERROR` (experimenter error 10 of
//! `0x2320`). Received ONF experimenter errors map back.

use crate::error::{DecodeError, OfError, OFPET_EXPERIMENTER};
use crate::header::{Header, HEADER_LEN, OFP14_VERSION, OFP15_VERSION};
use crate::model::{bundle_flags, BundleAdd, BundleCtrl, BundleCtrlType, EncodeError, Msg};
use crate::nicira::NX_VENDOR_ID;
use crate::port::props;
use crate::wire::{self, err, Put, Rd};

/// `OFPT_BUNDLE_CONTROL` (1.4+).
pub const OFPT_BUNDLE_CONTROL: u8 = 33;
/// `OFPT_BUNDLE_ADD_MESSAGE` (1.4+).
pub const OFPT_BUNDLE_ADD_MESSAGE: u8 = 34;
/// `ONF_EXPERIMENTER_ID` (`ONF_VENDOR_ID` in Open vSwitch).
pub const ONF_EXPERIMENTER_ID: u32 = 0x4F4E_4600;
/// `ONFT_BUNDLE_CONTROL`: the 1.3 extension's exp_type for control.
pub const ONFT_BUNDLE_CONTROL: u32 = 2300;
/// `ONFT_BUNDLE_ADD_MESSAGE`: the 1.3 extension's exp_type for add.
pub const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;
/// Length of `ofp_bundle_ctrl_msg` after the header, in bytes.
pub const CTRL_LEN: usize = 8;
/// `OFPBF_TIME` (1.5: scheduled commit; not supported).
const OFPBF_TIME: u16 = 1 << 2;
/// `OFPBPT_TIME` (1.5 property).
const OFPBPT_TIME: u16 = 1;
/// `OFPBPT_EXPERIMENTER`.
const OFPBPT_EXPERIMENTER: u16 = 0xffff;
/// Message types that may be put in a bundle (same numbers in 1.3, 1.4
/// and 1.5): `OFPT_PACKET_OUT` 13, `OFPT_FLOW_MOD` 14, `OFPT_GROUP_MOD`
/// 15, `OFPT_PORT_MOD` 16 (Open vSwitch `ofputil_is_bundlable`).
const BUNDLABLE: [u8; 4] = [13, 14, 15, 16];
/// First ONF 1.3 experimenter error code of `OFPET_BUNDLE_FAILED`.
const ONF_BUNDLE_BASE: u16 = 2300;
/// First ONF 1.3 code of `OFPET_ASYNC_CONFIG_FAILED`.
const ONF_ASYNC_BASE: u16 = 2370;
/// ONF 1.3 code of `OFPBPC_TOO_MANY` minus 3 (codes 3..=8).
const ONF_PROPERTY_BASE: u16 = 4440;
/// Nicira `NXBRC_UNENCODABLE_ERROR` (experimenter error code, 1.2+).
const NXBRC_UNENCODABLE_ERROR: u16 = 10;

/// Check `flags`, as received in `version`.
fn check_flags(flags: u16, version: u8) -> Result<(), DecodeError> {
    let known = bundle_flags::ATOMIC | bundle_flags::ORDERED;
    if flags & !known == 0 {
        Ok(())
    } else if version >= OFP15_VERSION && flags & OFPBF_TIME != 0 {
        Err(err(
            OfError::BUNDLE_SCHED_NOT_SUPPORTED,
            "scheduled bundle commit",
        ))
    } else {
        Err(err(OfError::BUNDLE_BAD_FLAGS, "unknown bundle flags"))
    }
}

/// Refuse every property of a bundle message (none is implemented).
fn refuse_props(rd: &mut Rd<'_>, version: u8) -> Result<(), DecodeError> {
    props(rd, |typ, _| {
        Err(match typ {
            OFPBPT_EXPERIMENTER => err(
                OfError::BAD_PROPERTY_EXPERIMENTER,
                "experimenter bundle property",
            ),
            OFPBPT_TIME if version >= OFP15_VERSION => {
                err(OfError::BUNDLE_SCHED_NOT_SUPPORTED, "bundle time property")
            }
            _ => err(OfError::BAD_PROPERTY_TYPE, "unknown bundle property"),
        })
    })
    .map_err(|e| {
        if e.err == OfError::BAD_LEN {
            err(OfError::BAD_PROPERTY_LEN, "malformed bundle property")
        } else {
            e
        }
    })
}

/// Decode an `ofp_bundle_ctrl_msg` body with its properties (`rd` holds
/// what follows the header, or the experimenter header in 1.3).
///
/// # Errors
/// `OFPBRC_BAD_LEN`, `OFPBFC_BAD_TYPE`, `OFPBFC_BAD_FLAGS`, property
/// errors (see the module docs).
pub(crate) fn get_ctrl(rd: &mut Rd<'_>, version: u8) -> Result<BundleCtrl, DecodeError> {
    let bundle_id = rd.u32()?;
    let typ = rd.u16()?;
    let flags = rd.u16()?;
    if rd.len() % 8 != 0 {
        return Err(err(
            OfError::BAD_LEN,
            "bundle control properties not a multiple of 8 bytes",
        ));
    }
    let typ = BundleCtrlType::from_wire(typ)
        .ok_or(err(OfError::BUNDLE_BAD_TYPE, "unknown bundle control type"))?;
    check_flags(flags, version)?;
    refuse_props(rd, version)?;
    Ok(BundleCtrl {
        bundle_id,
        typ,
        flags,
    })
}

/// Append an `ofp_bundle_ctrl_msg` body (no properties).
pub(crate) fn put_ctrl(out: &mut Vec<u8>, c: &BundleCtrl) {
    out.u32(c.bundle_id);
    out.u16(c.typ.to_wire());
    out.u16(c.flags);
}

/// Decode an `ofp_bundle_add_msg` body of the message with header `h`;
/// `rd` holds what follows the header (1.4+) or the experimenter header
/// (1.3), which is `prefix` bytes long in all (8 or 16: the padding
/// before properties counts from the start of the message).
///
/// # Errors
/// See the module docs.
pub(crate) fn get_add(
    rd: &mut Rd<'_>,
    h: &Header,
    prefix: usize,
) -> Result<BundleAdd, DecodeError> {
    let bundle_id = rd.u32()?;
    rd.skip(2)?;
    let flags = rd.u16()?;
    let inner = rd.rest();
    if inner.len() < HEADER_LEN {
        return Err(err(OfError::BUNDLE_MSG_BAD_LEN, "no message in bundle add"));
    }
    let ih = Header {
        version: inner[0],
        typ: inner[1],
        length: u16::from_be_bytes([inner[2], inner[3]]),
        xid: u32::from_be_bytes([inner[4], inner[5], inner[6], inner[7]]),
    };
    if ih.version != h.version {
        return Err(err(
            OfError::BAD_VERSION,
            "bundled message of another version",
        ));
    }
    let len = usize::from(ih.length);
    if len < HEADER_LEN || len > inner.len() {
        return Err(err(
            OfError::BUNDLE_MSG_BAD_LEN,
            "bad bundled message length",
        ));
    }
    if ih.xid != h.xid {
        return Err(err(OfError::BUNDLE_MSG_BAD_XID, "bundled message xid"));
    }
    if !BUNDLABLE.contains(&ih.typ) {
        return Err(err(
            OfError::BUNDLE_MSG_UNSUP,
            "message type not allowed in a bundle",
        ));
    }
    check_flags(flags, h.version)?;
    let msg = crate::v13::decode(&ih, &inner[..len])?;
    // Properties, if any, after padding to 8 bytes from the message start.
    let mut tail = Rd::new(&inner[len..], OfError::BAD_PROPERTY_LEN);
    if !tail.is_empty() {
        let end = prefix + CTRL_LEN + len;
        let pad = end.next_multiple_of(8) - end;
        tail.skip(pad)
            .map_err(|_| err(OfError::BAD_PROPERTY_LEN, "bad bundle add padding"))?;
        refuse_props(&mut tail, h.version)?;
    }
    Ok(BundleAdd {
        bundle_id,
        flags,
        msg: Box::new(msg),
    })
}

/// Append an `ofp_bundle_add_msg` body: the control part, then the
/// included message encoded in `version` with `xid` (no properties).
///
/// # Errors
/// The included message is not one a bundle may hold, or cannot be
/// encoded.
pub(crate) fn put_add(
    out: &mut Vec<u8>,
    a: &BundleAdd,
    version: u8,
    xid: u32,
) -> Result<(), EncodeError> {
    if !matches!(
        *a.msg,
        Msg::FlowMod(_) | Msg::GroupMod(_) | Msg::PortMod(_) | Msg::PacketOut(_)
    ) {
        return Err(EncodeError::Unsupported("this message in a bundle"));
    }
    out.u32(a.bundle_id);
    out.u16(0);
    out.u16(a.flags);
    let start = out.len();
    crate::v13::encode_version(&a.msg, version, xid, out)?;
    // One message, as the included message must be.
    if crate::header::frame_len(&out[start..]) != Some(out.len() - start) {
        out.truncate(start);
        return Err(EncodeError::Unsupported("bundled message of several parts"));
    }
    Ok(())
}

/// The wire form of `e` in OpenFlow 1.3: `(type, code, experimenter)`,
/// the experimenter id set for an experimenter error (see the module
/// docs). Other versions send `e` as it is.
pub(crate) fn error_to_13(e: OfError) -> (u16, u16, Option<u32>) {
    let onf = |code: u16| (OFPET_EXPERIMENTER, code, Some(ONF_EXPERIMENTER_ID));
    let unencodable = (
        OFPET_EXPERIMENTER,
        NXBRC_UNENCODABLE_ERROR,
        Some(NX_VENDOR_ID),
    );
    match (e.typ, e.code) {
        (17, c @ 0..=15) => onf(ONF_BUNDLE_BASE + c),
        (15, c @ 0..=2) => onf(ONF_ASYNC_BASE + c),
        (14, c @ 0..=2) => (crate::error::OFPET_TABLE_FEATURES_FAILED, c + 2, None),
        (14, c @ 3..=8) => onf(ONF_PROPERTY_BASE + c),
        (14 | 15 | 17, _) => unencodable,
        (t, c) => (t, c, None),
    }
}

/// The error an OpenFlow 1.3 experimenter error (`OFPET_EXPERIMENTER`
/// with `code` and `experimenter`) stands for, if it is one of the ONF
/// codes [`error_to_13`] sends.
pub(crate) fn error_from_13(code: u16, experimenter: u32) -> Option<OfError> {
    if experimenter != ONF_EXPERIMENTER_ID {
        return None;
    }
    let (typ, code) = match code {
        c @ ONF_BUNDLE_BASE..=2315 => (17, c - ONF_BUNDLE_BASE),
        c @ ONF_ASYNC_BASE..=2372 => (15, c - ONF_ASYNC_BASE),
        c @ 4443..=4448 => (14, c - ONF_PROPERTY_BASE),
        _ => return None,
    };
    Some(OfError { typ, code })
}

/// Append a bundle message (`add`: add-message, else control) in version
/// `v`: `OFPT_BUNDLE_*` in 1.4+, the ONF experimenter message in 1.3.
pub(crate) fn put_msg(
    out: &mut Vec<u8>,
    v: u8,
    xid: u32,
    add: bool,
    body: &dyn Fn(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    if v >= OFP14_VERSION {
        let typ = if add {
            OFPT_BUNDLE_ADD_MESSAGE
        } else {
            OFPT_BUNDLE_CONTROL
        };
        return wire::message(out, v, typ, xid, body);
    }
    wire::message(out, v, crate::v13::t::EXPERIMENTER, xid, |out| {
        out.u32(ONF_EXPERIMENTER_ID);
        out.u32(if add {
            ONFT_BUNDLE_ADD_MESSAGE
        } else {
            ONFT_BUNDLE_CONTROL
        });
        body(out)
    })
}

#[cfg(test)]
mod tests;
