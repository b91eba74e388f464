//! OpenFlow wire codec: OpenFlow 1.0 with the Nicira extensions that
//! `ovs-ofctl` uses, OpenFlow 1.3 (ONF TS-006 1.3.5), 1.4 (TS-024 1.4.1)
//! and 1.5 (TS-025 1.5.1).
//!
//! The codec is pure (no I/O). Everything above it works on the
//! version-independent [`model`]: [`decode`] turns one message (as framed
//! by [`header::frame_len`]) into a [`model::Msg`]; [`encode`] appends the
//! wire form of a [`model::Msg`] for a negotiated version.
//!
//! The code is laid out by message family, as Open vSwitch's
//! `lib/ofp-*.c` and `lib/nx-match.c`: each family module holds that
//! family's bodies for every version (1.0, its Nicira forms, 1.3, 1.4,
//! 1.5), with the version as a parameter where the layouts differ only in
//! part, so what the versions share is written once. The two version
//! modules are only the dispatch: message type numbers, headers, and
//! which family decodes or encodes each message.
//!
//! - [`header`]: `ofp_header`, framing, version numbers and HELLO bitmaps.
//! - [`model`]: messages, matches, actions, instructions, statistics.
//! - [`error`]: OpenFlow error types and codes ([`error::OfError`]) and
//!   `ofp_error_msg` in 1.0 (with Nicira vendor errors) and 1.3+ numbering
//!   (`lib/ofp-errors.c`).
//! - Matches: [`ofp_match`] (1.0 `ofp_match`, Nicira `nx_match` framing,
//!   1.3+ OXM `ofp_match`; `lib/ofp-match.c`), [`oxm`] (OXM and NXM TLVs;
//!   `lib/nx-match.c`), [`field`] (the fields), [`tlv`] (the Geneve option
//!   map).
//! - Actions and instructions: [`actions`] (1.0 and 1.3+ action lists),
//!   [`nx_action`] (Nicira actions, every version), [`instructions`]
//!   (1.3+ instructions, and their 1.0 forms); `lib/ofp-actions.c`.
//! - [`flow_mod`]: flow-mod (1.0, `NXT_FLOW_MOD`, 1.3+); [`flow`]:
//!   flow-removed, flow statistics and aggregates (`lib/ofp-flow.c`).
//! - [`packet`]: packet-in and packet-out (`lib/ofp-packet.c`);
//!   [`packet_in2`]: Nicira `NXT_PACKET_IN2`.
//! - [`port`]: port numbers, descriptions, statistics, port-mod
//!   (`lib/ofp-port.c`).
//! - [`switch`]: features replies, switch configuration, roles
//!   (`lib/ofp-switch.c`); [`async_config`]: asynchronous-message
//!   configuration.
//! - [`table`]: table statistics, features, table-mod (`lib/ofp-table.c`).
//! - [`group`]: groups (`lib/ofp-group.c`); [`meter`]: meters
//!   (`lib/ofp-meter.c`).
//! - [`multipart`]: 1.0 statistics and 1.3+ multipart framing, type
//!   numbers and reply splitting.
//! - [`bundle`]: OpenFlow 1.4 bundles and the ONF extension that carries
//!   them in 1.3 (`lib/ofp-bundle.c`).
//! - [`nicira`]: the Nicira extension numbers and the Nicira messages
//!   every version shares; [`ct_flush`]: Nicira conntrack flushes;
//!   [`monitor`]: flow monitors (Nicira, ONF and OpenFlow 1.4 forms).
//! - [`v10`] and [`v13`]: the OpenFlow 1.0 and the 1.3/1.4/1.5 message
//!   dispatch (and, for the callers that use them, re-exports of family
//!   functions under their former names).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod actions;
pub mod async_config;
pub mod bundle;
pub mod ct_flush;
pub mod error;
pub mod field;
pub mod flow;
pub mod flow_mod;
pub mod group;
pub mod header;
pub mod instructions;
pub mod meter;
pub mod model;
pub mod monitor;
pub mod multipart;
pub mod nicira;
pub mod nx_action;
pub mod ofp_match;
pub mod oxm;
pub mod packet;
pub mod packet_in2;
pub mod port;
pub mod switch;
pub mod table;
pub mod tlv;
pub mod v10;
pub mod v13;
mod wire;

pub use error::{DecodeError, OfError};
pub use header::Header;
pub use model::Msg;

/// Decode one complete message (exactly `header.length` bytes, as cut by
/// [`header::frame_len`]).
///
/// # Errors
/// A [`DecodeError`] carrying the [`OfError`] to send back (for example
/// `BAD_REQUEST/BAD_VERSION` for a version we do not speak, or
/// `BAD_MATCH/BAD_FIELD` for a match field the datapath cannot key on).
pub fn decode(buf: &[u8]) -> Result<(Header, Msg), DecodeError> {
    let h = Header::parse(buf)?;
    let body = &buf[..usize::from(h.length)];
    let msg = match h.version {
        header::OFP10_VERSION => v10::decode(&h, body)?,
        header::OFP13_VERSION..=header::OFP15_VERSION => v13::decode(&h, body)?,
        _ if h.typ == header::OFPT_HELLO => header::decode_hello(body)?,
        _ => {
            return Err(DecodeError::new(
                OfError::BAD_VERSION,
                "unsupported version",
            ))
        }
    };
    Ok((h, msg))
}

/// Append the wire form of `msg` for `version` with transaction id `xid`
/// to `out`. Multipart replies larger than 64 KiB become several messages
/// with the `REPLY_MORE` flag, as OpenFlow 1.3 §7.3.5 requires.
///
/// # Errors
/// [`model::EncodeError`] when `msg` cannot be expressed in `version`.
pub fn encode(
    msg: &Msg,
    version: u8,
    xid: u32,
    out: &mut Vec<u8>,
) -> Result<(), model::EncodeError> {
    match version {
        header::OFP10_VERSION => v10::encode(msg, xid, out),
        header::OFP13_VERSION..=header::OFP15_VERSION => {
            v13::encode_version(msg, version, xid, out)
        }
        v => Err(model::EncodeError::Version(v)),
    }
}
