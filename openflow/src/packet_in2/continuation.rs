//! The `NXPINT_CONTINUATION` property of `NXT_PACKET_IN2` and
//! `NXT_RESUME`: the translation state a `controller(pause)` froze, carried
//! by the controller and handed back (OVS `lib/ofp-packet.c`
//! `ofputil_put_packet_in_private`, `ofputil_decode_packet_in_private`;
//! `include/openflow/nicira-ext.h` "Continuations").
//!
//! The property is nested (4 bytes of header, 4 of padding) and holds
//! properties of its own, in the order and forms Open vSwitch uses, so
//! `ovs-ofctl` prints them:
//!
//! - `NXCPT_BRIDGE` (0x8000): 16 bytes naming the bridge instance that
//!   paused (OVS: the ofproto's UUID); a continuation naming another is
//!   stale (`NXR_STALE`).
//! - `NXCPT_STACK` (0x8001): one per `push`/`pop` stack entry, top first,
//!   each the value's bytes (xennet: 16, big-endian).
//! - `NXCPT_MIRRORS` (0x8002, `u32`), `NXCPT_CONNTRACKED` (0x8003, flag).
//! - `NXCPT_TABLE_ID` (0x8004, `u8`) and `NXCPT_COOKIE` (0x8005, `be64`
//!   after 4 pad bytes): the rule whose actions follow, sent when they
//!   change (both start at 0); `NXCPT_ACTIONS` (0x8006, nested OpenFlow
//!   actions in the connection's version): the actions still to run.
//! - `NXCPT_ACTION_SET` (0x8007, nested actions), `NXCPT_ODP_PORT`
//!   (0x8008, `u32`; read and ignored, xennet's datapath ports are the
//!   OpenFlow ports).
//!
//! When the paused packet is a datagram the connection tracker
//! reassembled, xennet adds [`prop::FRAG`] (0x8044): the size of the
//! largest fragment it arrived in, so that after `NXT_RESUME` output
//! still cuts it back into fragments of that size (Open vSwitch sends
//! the original fragments and has no such state). Continuations of other
//! packets carry no such property and are as Open vSwitch's.
//!
//! Open vSwitch folds the rule instructions that follow a pause
//! (`clear_actions`, `write_actions`, `write_metadata`, `goto_table`) into
//! its action list; xennet keeps them apart, in properties of its own
//! ([`prop::CLEAR_ACTIONS`] and on, 0x8040+), which Open vSwitch's
//! tolerant decoder (`ovs-ofctl` printing a packet-in) skips.
//!
//! Decoding never trusts the bytes: every length is checked against the
//! message, fixed-size properties must have their size, actions go through
//! the ordinary action decoder (and the switch then checks them as it
//! checks a packet-out's); errors are `OFPBPC_BAD_LEN`,
//! `OFPBPC_BAD_VALUE` (a [`prop::FRAG`] size below [`MIN_FRAG_SIZE`] or
//! nonzero padding),
//! `OFPBPC_BAD_TYPE` (an unknown property in `NXT_RESUME`, as OVS's
//! strict decoder) and the action decoder's.

use std::sync::atomic::AtomicU64;

use crate::error::{DecodeError, OfError};
use crate::model::{Action, EncodeError};
use crate::wire::{Put, Rd};

/// `enum nx_continuation_prop_type` (OVS `lib/ofp-packet.c`), and
/// xennet's own properties for rule instructions.
pub mod prop {
    /// 16 bytes: the bridge instance.
    pub const BRIDGE: u16 = 0x8000;
    /// A stack entry's value.
    pub const STACK: u16 = 0x8001;
    /// `u32`: mirrors already output to.
    pub const MIRRORS: u16 = 0x8002;
    /// Flag: the packet went through `ct` in this bridge.
    pub const CONNTRACKED: u16 = 0x8003;
    /// `u8`: table of the rule whose actions follow.
    pub const TABLE_ID: u16 = 0x8004;
    /// `be64` after 4 pad bytes: that rule's cookie.
    pub const COOKIE: u16 = 0x8005;
    /// Nested actions still to run.
    pub const ACTIONS: u16 = 0x8006;
    /// Nested actions: the action set.
    pub const ACTION_SET: u16 = 0x8007;
    /// `u32`: datapath input port.
    pub const ODP_PORT: u16 = 0x8008;
    /// xennet: flag, the `clear_actions` instruction.
    pub const CLEAR_ACTIONS: u16 = 0x8040;
    /// xennet: nested actions, the `write_actions` instruction.
    pub const WRITE_ACTIONS: u16 = 0x8041;
    /// xennet: 4 pad bytes, `be64` value, `be64` mask: `write_metadata`.
    pub const WRITE_METADATA: u16 = 0x8042;
    /// xennet: `u8`, the `goto_table` instruction.
    pub const GOTO_TABLE: u16 = 0x8043;
    /// xennet: `be16` largest original fragment (L3 bytes), 2 zero pad
    /// bytes, `be32` IPv6 identification: the packet is a reassembled
    /// datagram ([`super::Continuation::frag_max_size`]).
    pub const FRAG: u16 = 0x8044;
}

/// Smallest largest-fragment size [`prop::FRAG`] may give, L3 bytes (the
/// datapath's `MIN_FRAG_LBOUND`, which `dpctl/ipf-set-min-frag` checks): OVS
/// `IPF_V4_FRAG_SIZE_LBOUND` / `IPF_V6_FRAG_SIZE_LBOUND`, the least
/// `dpctl/ipf-set-min-frag` takes, so no datagram the tracker reassembled
/// has a smaller largest fragment (its first fragment is at least the
/// minimum). Smaller values would make output cut a datagram into up to
/// thousands of tiny fragments.
pub const MIN_FRAG_SIZE: u16 = {
    use xennet_datapath::conntrack::appctl::MIN_FRAG_LBOUND;
    assert!(MIN_FRAG_LBOUND <= u16::MAX as u32);
    MIN_FRAG_LBOUND as u16
};

/// Packet-ins whose continuation could not be encoded in the connection's
/// OpenFlow version (an action without a form there): sent without one.
pub static UNENCODABLE: AtomicU64 = AtomicU64::new(0);

/// Most bytes of one stack entry xennet takes back (its stack holds
/// 128-bit values; OVS allows up to 128 bytes).
pub const MAX_STACK_VALUE: usize = 16;

/// One step of a frozen pipeline's rest (OVS keeps them as actions, with
/// `OFPACT_UNROLL_XLATE` for the table and cookie, and turns
/// `goto_table` / `write_metadata` into actions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FrozenOp {
    /// The table and cookie of the rule whose actions follow (what a
    /// packet-in reports, and what `resubmit` without a table means).
    Unroll {
        /// Table id.
        table_id: u8,
        /// The rule's cookie.
        cookie: u64,
    },
    /// An action.
    Act(Action),
    /// The `clear_actions` instruction.
    ClearActions,
    /// The `write_actions` instruction.
    WriteActions(Vec<Action>),
    /// The `write_metadata` instruction: value, mask.
    WriteMetadata(u64, u64),
    /// The `goto_table` instruction.
    GotoTable(u8),
}

/// A decoded or to-be-encoded continuation (OVS
/// `struct ofputil_packet_in_private` minus the public packet-in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Continuation {
    /// The bridge instance that paused (all zeros: none given).
    pub bridge: [u8; 16],
    /// The `push`/`pop` stack, bottom first.
    pub stack: Vec<u128>,
    /// Mirrors already output to (OVS `mirrors`; xennet's translation
    /// does not mirror, so always 0 from xennet).
    pub mirrors: u32,
    /// The packet went through `ct` in this bridge (OVS `conntracked`).
    pub conntracked: bool,
    /// What is left of the pipeline.
    pub ops: Vec<FrozenOp>,
    /// The action set.
    pub action_set: Vec<Action>,
    /// `NXCPT_ODP_PORT` as received (0: absent).
    pub odp_port: u32,
    /// The packet is a datagram the connection tracker reassembled: its
    /// largest original fragment, L3 bytes (IP header included; xennet
    /// `FragMeta::max_size`, Linux `frag_max_size`), at least
    /// [`MIN_FRAG_SIZE`]. 0: not reassembled (no [`prop::FRAG`]).
    pub frag_max_size: u16,
    /// With [`Continuation::frag_max_size`]: the IPv6 Fragment header
    /// identification the datagram arrived with (unused for IPv4).
    pub frag_id: u32,
}

fn start(out: &mut Vec<u8>, typ: u16, nested: bool) -> usize {
    let at = out.len();
    out.u16(typ);
    out.u16(0);
    if nested {
        out.zeros(4);
    }
    at
}

fn end(out: &mut Vec<u8>, at: usize) {
    let len = u16::try_from(out.len() - at).unwrap_or(u16::MAX);
    out.patch16(at + 2, len);
    out.pad8(at);
}

fn put_prop(out: &mut Vec<u8>, typ: u16, value: &[u8]) {
    let at = start(out, typ, false);
    out.extend_from_slice(value);
    end(out, at);
}

fn put_u64(out: &mut Vec<u8>, typ: u16, vals: &[u64]) {
    let at = start(out, typ, true);
    for v in vals {
        out.u64(*v);
    }
    end(out, at);
}

/// Append OpenFlow `version`'s form of `acts`.
fn put_actions(acts: &[Action], version: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if version == crate::header::OFP10_VERSION {
        crate::v10::encode_actions(acts, out)
    } else {
        crate::v13::encode_actions_version(acts, version, out)
    }
}

fn put_nested_actions(
    out: &mut Vec<u8>,
    typ: u16,
    acts: &[Action],
    version: u8,
) -> Result<(), EncodeError> {
    let at = start(out, typ, true);
    put_actions(acts, version, out)?;
    end(out, at);
    Ok(())
}

/// Append the `NXPINT_CONTINUATION` property (`typ`) holding `c`, its
/// actions in OpenFlow `version`'s forms.
///
/// # Errors
/// `Unsupported` when an action has no form in `version`; `out` is then
/// as it was.
pub fn put(c: &Continuation, typ: u16, version: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let outer = out.len();
    let r = put_inner(c, typ, version, out);
    if r.is_err() {
        out.truncate(outer);
    }
    r
}

fn put_inner(
    c: &Continuation,
    typ: u16,
    version: u8,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let outer = start(out, typ, true);
    if c.bridge != [0; 16] {
        put_prop(out, prop::BRIDGE, &c.bridge);
    }
    for v in c.stack.iter().rev() {
        put_prop(out, prop::STACK, &v.to_be_bytes());
    }
    if c.mirrors != 0 {
        put_prop(out, prop::MIRRORS, &c.mirrors.to_be_bytes());
    }
    if c.conntracked {
        put_prop(out, prop::CONNTRACKED, &[]);
    }
    // The rule (table, cookie) last announced, both 0 at first as in OVS.
    let mut sent = (0u8, 0u64);
    let mut cur = (0u8, 0u64);
    let mut acts: Vec<Action> = Vec::new();
    let announce = |out: &mut Vec<u8>, sent: &mut (u8, u64), cur: (u8, u64)| {
        if sent.0 != cur.0 {
            put_prop(out, prop::TABLE_ID, &[cur.0]);
        }
        if sent.1 != cur.1 {
            put_u64(out, prop::COOKIE, &[cur.1]);
        }
        *sent = cur;
    };
    let flush = |out: &mut Vec<u8>,
                 sent: &mut (u8, u64),
                 cur: (u8, u64),
                 acts: &mut Vec<Action>|
     -> Result<(), EncodeError> {
        if !acts.is_empty() {
            announce(out, sent, cur);
            put_nested_actions(out, prop::ACTIONS, acts, version)?;
            acts.clear();
        }
        Ok(())
    };
    for op in &c.ops {
        match op {
            FrozenOp::Act(a) => {
                acts.push(a.clone());
                continue;
            }
            FrozenOp::Unroll { table_id, cookie } => {
                flush(out, &mut sent, cur, &mut acts)?;
                cur = (*table_id, *cookie);
                continue;
            }
            _ => {}
        }
        flush(out, &mut sent, cur, &mut acts)?;
        announce(out, &mut sent, cur);
        match op {
            FrozenOp::ClearActions => put_prop(out, prop::CLEAR_ACTIONS, &[]),
            FrozenOp::WriteActions(w) => put_nested_actions(out, prop::WRITE_ACTIONS, w, version)?,
            FrozenOp::WriteMetadata(v, m) => put_u64(out, prop::WRITE_METADATA, &[*v, *m]),
            FrozenOp::GotoTable(t) => put_prop(out, prop::GOTO_TABLE, &[*t]),
            FrozenOp::Act(_) | FrozenOp::Unroll { .. } => {}
        }
    }
    flush(out, &mut sent, cur, &mut acts)?;
    if !c.action_set.is_empty() {
        put_nested_actions(out, prop::ACTION_SET, &c.action_set, version)?;
    }
    if c.odp_port != 0 {
        put_prop(out, prop::ODP_PORT, &c.odp_port.to_be_bytes());
    }
    if c.frag_max_size != 0 {
        let mut v = [0u8; 8];
        v[..2].copy_from_slice(&c.frag_max_size.to_be_bytes());
        v[4..].copy_from_slice(&c.frag_id.to_be_bytes());
        put_prop(out, prop::FRAG, &v);
    }
    end(out, outer);
    Ok(())
}

fn bad(what: &'static str) -> DecodeError {
    DecodeError::new(OfError::BAD_PROPERTY_LEN, what)
}

fn exact<const N: usize>(v: &[u8], what: &'static str) -> Result<[u8; N], DecodeError> {
    v.try_into().map_err(|_| bad(what))
}

/// The value of a nested property: after its 4 pad bytes (OVS
/// `ofpprop_parse_nested`).
fn nested<'a>(v: &'a [u8], what: &'static str) -> Result<&'a [u8], DecodeError> {
    v.get(4..).ok_or_else(|| bad(what))
}

fn u64s<const N: usize>(v: &[u8], what: &'static str) -> Result<[u64; N], DecodeError> {
    let v = nested(v, what)?;
    if v.len() != 8 * N {
        return Err(bad(what));
    }
    let mut r = [0u64; N];
    for (x, c) in r.iter_mut().zip(v.chunks_exact(8)) {
        *x = u64::from_be_bytes(exact(c, what)?);
    }
    Ok(r)
}

/// Decode OpenFlow `version`'s action list.
///
/// # Errors
/// The action decoder's `BAD_ACTION/*`.
pub fn decode_actions(buf: &[u8], version: u8) -> Result<Vec<Action>, DecodeError> {
    if version == crate::header::OFP10_VERSION {
        crate::v10::decode_actions(buf, None)
    } else {
        crate::v13::decode_actions_version(buf, version)
    }
}

/// Split `body` into properties: `(type, value)` with the value's padding
/// dropped (OVS `ofpprop_pull`, 8-byte alignment).
///
/// # Errors
/// `OFPBPC_BAD_LEN` for a property shorter than its header or longer,
/// with its padding, than what is left.
pub(crate) fn props(body: &[u8]) -> Result<Vec<(u16, &[u8])>, DecodeError> {
    let mut rd = Rd::new(body, OfError::BAD_PROPERTY_LEN);
    let mut v = Vec::new();
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
        v.push((typ, &all[..len - 4]));
    }
    Ok(v)
}

/// Decode the value of an `NXPINT_CONTINUATION` property (its pad bytes
/// included), actions in OpenFlow `version`'s forms. `strict`: an unknown
/// property is an error (`NXT_RESUME`), else skipped (a packet-in read
/// by a controller).
///
/// # Errors
/// See the module docs.
pub fn get(value: &[u8], version: u8, strict: bool) -> Result<Continuation, DecodeError> {
    let body = nested(value, "continuation shorter than its padding")?;
    let mut c = Continuation::default();
    let (mut table_id, mut cookie) = (0u8, 0u64);
    let mut stack_bytes = 0usize;
    for (typ, v) in props(body)? {
        match typ {
            prop::BRIDGE => c.bridge = exact(v, "NXCPT_BRIDGE not 16 bytes")?,
            prop::STACK => {
                if v.len() > MAX_STACK_VALUE {
                    return Err(bad("NXCPT_STACK value over 16 bytes"));
                }
                stack_bytes += v.len() + 1;
                if stack_bytes > MAX_STACK_BYTES {
                    return Err(bad("NXCPT_STACK beyond the stack bound"));
                }
                // Top first on the wire (reversed below).
                c.stack.push(crate::wire::be_value(v));
            }
            prop::MIRRORS => c.mirrors = u32::from_be_bytes(exact(v, "NXCPT_MIRRORS")?),
            prop::CONNTRACKED => c.conntracked = true,
            prop::TABLE_ID => table_id = exact::<1>(v, "NXCPT_TABLE_ID")?[0],
            prop::COOKIE => cookie = u64s::<1>(v, "NXCPT_COOKIE")?[0],
            prop::ACTIONS => {
                let acts = decode_actions(nested(v, "NXCPT_ACTIONS")?, version)?;
                c.ops.push(FrozenOp::Unroll { table_id, cookie });
                c.ops.extend(acts.into_iter().map(FrozenOp::Act));
            }
            prop::ACTION_SET => {
                c.action_set = decode_actions(nested(v, "NXCPT_ACTION_SET")?, version)?;
            }
            prop::ODP_PORT => c.odp_port = u32::from_be_bytes(exact(v, "NXCPT_ODP_PORT")?),
            prop::FRAG => {
                let v: [u8; 8] = exact(v, "fragment size continuation not 8 bytes")?;
                let size = u16::from_be_bytes([v[0], v[1]]);
                if size < MIN_FRAG_SIZE || v[2..4] != [0, 0] {
                    return Err(DecodeError::new(
                        OfError::BAD_PROPERTY_VALUE,
                        "fragment size continuation below the minimum fragment size \
                         or with nonzero padding",
                    ));
                }
                c.frag_max_size = size;
                c.frag_id = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
            }
            prop::CLEAR_ACTIONS | prop::WRITE_ACTIONS | prop::WRITE_METADATA | prop::GOTO_TABLE => {
                let op = match typ {
                    prop::CLEAR_ACTIONS => FrozenOp::ClearActions,
                    prop::WRITE_ACTIONS => FrozenOp::WriteActions(decode_actions(
                        nested(v, "write_actions continuation")?,
                        version,
                    )?),
                    prop::WRITE_METADATA => {
                        let [val, mask] = u64s::<2>(v, "write_metadata continuation")?;
                        FrozenOp::WriteMetadata(val, mask)
                    }
                    _ => FrozenOp::GotoTable(exact::<1>(v, "goto_table continuation")?[0]),
                };
                c.ops.push(FrozenOp::Unroll { table_id, cookie });
                c.ops.push(op);
            }
            _ if strict => {
                return Err(DecodeError::new(
                    OfError::BAD_PROPERTY_TYPE,
                    "unknown continuation property",
                ))
            }
            _ => {}
        }
    }
    c.stack.reverse();
    Ok(c)
}

/// Most bytes on the `push`/`pop` stack, counted as OVS counts them (each
/// entry its value's bytes plus one); as the translation's bound.
pub const MAX_STACK_BYTES: usize = 65536;
