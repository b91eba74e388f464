//! OpenFlow 1.0 messages (OpenFlow Switch Specification 1.0.0, Open
//! vSwitch `include/openflow/openflow-1.0.h`) and the Nicira vendor
//! extensions that plain `ovs-ofctl` uses (`include/openflow/nicira-ext.h`,
//! message numbers from `include/openvswitch/ofp-msgs.h`, action numbers
//! from `lib/ofp-actions.c`).
//!
//! Everything decodes into the version-independent [`crate::model`], with
//! Open vSwitch's translations (`lib/ofp-match.c`, `lib/ofp-flow.c`,
//! `lib/ofp-port.c`, `lib/ofp-actions.c`, `lib/ofp-errors.c`):
//!
//! - Port numbers are 16 bits; `0xff00..=0xffff` map to the model's
//!   `0xffffff00..=0xffffffff` (`OFPP_NONE` 0xffff is `OFPP_ANY`).
//! - `ofp_match` becomes a [`Match`] as `ofputil_match_from_ofp10_match`
//!   does: `dl_vlan` 0xffff (`OFP_VLAN_NONE`) is "no tag" (`vlan_tci` 0
//!   exact), `nw_tos` keeps only the DSCP bits, EtherTypes below 0x600
//!   become 0x05ff, wildcarded fields are zeroed, and for flow-mods
//!   (`ofputil_normalize_match`) fields whose prerequisites the match does
//!   not pin are wildcarded rather than rejected. Bits of `wildcards` above
//!   `OFPFW10_ALL` are ignored, as Open vSwitch does.
//! - Error codes map between 1.3 numbering ([`OfError`]) and 1.0 numbering
//!   or Nicira vendor errors (`NXET_VENDOR`), as `ofp-errors.h` assigns.
//!
//! Nicira messages (`OFPT_VENDOR`, vendor 0x00002320): `NXT_ROLE_REQUEST`/
//! `REPLY`, `NXT_SET_FLOW_FORMAT`, `NXT_FLOW_MOD`, `NXT_FLOW_REMOVED`,
//! `NXT_FLOW_MOD_TABLE_ID`, `NXT_SET_PACKET_IN_FORMAT`, `NXT_PACKET_IN`,
//! `NXT_PACKET_IN2` ([`crate::packet_in2`]), `NXT_SET_ASYNC_CONFIG`,
//! `NXT_SET_CONTROLLER_ID`, and the vendor statistics `NXST_FLOW` and
//! `NXST_AGGREGATE`. Flow monitors ([`crate::monitor`]) and conntrack
//! flushes ([`crate::ct_flush`]) have their own codecs, which the
//! connection consults before this one. Other Nicira subtypes (groups,
//! `NXT_RESUME`, …) are `BAD_EXP_TYPE`, sent as 1.0
//! `OFPBRC_BAD_SUBTYPE`.
//!
//! Statistics replies are decoded one message at a time (`OFPSF_REPLY_MORE`
//! stays in `flags`); the encoder splits replies past 64 KiB.
//!
//! The decoder is stateless; what depends on the connection's Nicira
//! settings is passed in [`DecodeOptions`] (flow-mod table ids) and
//! [`EncodeOptions`] (flow format and packet-in format for the messages
//! the switch sends).

use xennet_datapath::flow::Field;
use xennet_datapath::{FlowKey, FlowMask};

use crate::error::{DecodeError, OfError};
use crate::header::{self, Header, HEADER_LEN, OFP10_VERSION};
use crate::model::{
    flow_flags, port_config, port_state, Action, EncodeError, FlowMod, FlowModCommand, FlowRemoved,
    FlowStats, FlowStatsRequest, Instructions, Match, MpReply, MpRequest, Msg, OxmField, PacketIn,
    PacketOut, PortDesc, PortMod, PortStats, PortStatus, SwitchConfig, SwitchFeatures, TableStats,
    OFPG_ANY, OFPTT_ALL,
};
pub use crate::nicira::*;
use crate::oxm::{self, Flavor};
use crate::wire::{self, be_value, end_record, finish, get_str, ones, Put, Rd};

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

/// OpenFlow 1.0 `OFPP_IN_PORT`.
const OFPP10_IN_PORT: u16 = 0xfff8;

const OFPAT10_OUTPUT: u16 = 0;
const OFPAT10_SET_VLAN_VID: u16 = 1;
const OFPAT10_SET_VLAN_PCP: u16 = 2;
const OFPAT10_STRIP_VLAN: u16 = 3;
const OFPAT10_SET_DL_SRC: u16 = 4;
const OFPAT10_SET_DL_DST: u16 = 5;
const OFPAT10_SET_NW_SRC: u16 = 6;
const OFPAT10_SET_NW_DST: u16 = 7;
const OFPAT10_SET_NW_TOS: u16 = 8;
const OFPAT10_SET_TP_SRC: u16 = 9;
const OFPAT10_SET_TP_DST: u16 = 10;
const OFPAT10_ENQUEUE: u16 = 11;
const OFPAT10_VENDOR: u16 = 0xffff;

/// `OFPFW10_*` wildcard bits of `ofp_match`.
pub mod wildcards {
    /// `OFPFW10_IN_PORT`.
    pub const IN_PORT: u32 = 1 << 0;
    /// `OFPFW10_DL_VLAN`.
    pub const DL_VLAN: u32 = 1 << 1;
    /// `OFPFW10_DL_SRC`.
    pub const DL_SRC: u32 = 1 << 2;
    /// `OFPFW10_DL_DST`.
    pub const DL_DST: u32 = 1 << 3;
    /// `OFPFW10_DL_TYPE`.
    pub const DL_TYPE: u32 = 1 << 4;
    /// `OFPFW10_NW_PROTO`.
    pub const NW_PROTO: u32 = 1 << 5;
    /// `OFPFW10_TP_SRC`.
    pub const TP_SRC: u32 = 1 << 6;
    /// `OFPFW10_TP_DST`.
    pub const TP_DST: u32 = 1 << 7;
    /// `OFPFW10_NW_SRC_SHIFT`: six bits of "low bits ignored" count.
    pub const NW_SRC_SHIFT: u32 = 8;
    /// `OFPFW10_NW_DST_SHIFT`.
    pub const NW_DST_SHIFT: u32 = 14;
    /// `OFPFW10_DL_VLAN_PCP`.
    pub const DL_VLAN_PCP: u32 = 1 << 20;
    /// `OFPFW10_NW_TOS`.
    pub const NW_TOS: u32 = 1 << 21;
    /// `OFPFW10_ALL`: every defined bit.
    pub const ALL: u32 = (1 << 22) - 1;
}

/// 1.0 `OFPC_ARP_MATCH_IP` (bit 7). OpenFlow 1.3 has no such capability
/// and leaves bit 7 unused, so the model carries it in bit 7 unchanged;
/// the 1.3 encoder should clear it.
pub const OFPC10_ARP_MATCH_IP: u32 = 1 << 7;
/// 1.0 `OFPC_STP` (bit 3; in 1.3 bit 3 is `OFPC_GROUP_STATS`): dropped.
const OFPC10_STP: u32 = 1 << 3;
/// Capability bits with the same meaning in 1.0 and 1.3: FLOW_STATS,
/// TABLE_STATS, PORT_STATS, IP_REASM, QUEUE_STATS; plus ARP_MATCH_IP.
const CAPS10_KEPT: u32 = 0b111 | (1 << 5) | (1 << 6) | OFPC10_ARP_MATCH_IP;
/// The 1.0 actions xennet implements, as the `actions` bitmap of the
/// features reply (bit n = `OFPAT10` type n: OUTPUT through ENQUEUE).
pub const OFP10_ACTIONS_BITMAP: u32 = 0xfff;
/// `max_entries` the 1.0 table-stats encoder reports (as Open vSwitch).
pub const TABLE_MAX_ENTRIES: u32 = 1_000_000;

/// `sizeof(struct ofp_match)` (1.0).
const MATCH_LEN: usize = 40;
/// `sizeof(struct ofp_phy_port)`.
const PHY_PORT_LEN: usize = 48;
/// `OFP_VLAN_NONE`.
const OFP_VLAN_NONE: u16 = 0xffff;
const PORT_CONFIG_KEPT: u32 = port_config::PORT_DOWN
    | port_config::NO_RECV
    | port_config::NO_FLOOD
    | port_config::NO_FWD
    | port_config::NO_PACKET_IN;

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

fn bad(err: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(err, what)
}

fn short() -> DecodeError {
    bad(OfError::BAD_LEN, "message truncated")
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn unsupported(what: &'static str) -> EncodeError {
    EncodeError::Unsupported(what)
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

fn put_mac(out: &mut Vec<u8>, v: u128) {
    out.extend_from_slice(&(v as u64).to_be_bytes()[2..]);
}

// ---------------------------------------------------------------------------
// Ports.

/// 1.0 16-bit port number to the model's 32-bit numbering (`0xff00..` →
/// `0xffffff00..`), as OVS `ofputil_port_from_ofp11` in reverse.
pub fn port_from_ofp10(p: u16) -> u32 {
    if p >= 0xff00 {
        0xffff_0000 | u32::from(p)
    } else {
        u32::from(p)
    }
}

/// The model's 32-bit port number as a 1.0 port, if it has one (ports
/// `0xff00..0xffffff00` have none).
pub fn port_to_ofp10(p: u32) -> Option<u16> {
    if p < 0xff00 {
        Some(p as u16)
    } else if p >= 0xffff_ff00 {
        Some((p & 0xffff) as u16)
    } else {
        None
    }
}

fn port10(p: u32) -> Result<u16, EncodeError> {
    port_to_ofp10(p).ok_or(unsupported("port number beyond 16 bits"))
}

/// 1.0 `ofp_port_features` to 1.3 numbering: speeds 0..=6 are the same,
/// COPPER..PAUSE_ASYM move from bits 7..=11 to 11..=15.
pub fn features_from_ofp10(f: u32) -> u32 {
    (f & 0x7f) | ((f & 0xf80) << 4)
}

/// 1.3 `ofp_port_features` to 1.0 (40G, 100G, 1T and OTHER are dropped).
pub fn features_to_ofp10(f: u32) -> u32 {
    (f & 0x7f) | ((f >> 4) & 0xf80)
}

/// The highest speed among 1.3 feature bits, in kbit/s (OVS
/// `netdev_features_to_bps(.., 0) / 1000`).
fn speed_kbps(f: u32) -> u32 {
    const TABLE: [(u32, u32); 7] = [
        (1 << 9, 1_000_000_000),
        (1 << 8, 100_000_000),
        (1 << 7, 40_000_000),
        (1 << 6, 10_000_000),
        (3 << 4, 1_000_000),
        (3 << 2, 100_000),
        (3, 10_000),
    ];
    TABLE
        .iter()
        .find(|(bits, _)| f & bits != 0)
        .map_or(0, |&(_, s)| s)
}

/// Decode `ofp_phy_port` (48 bytes). Config keeps PORT_DOWN, NO_RECV,
/// NO_FLOOD, NO_FWD, NO_PACKET_IN (NO_STP / NO_RECV_STP are dropped); state
/// keeps LINK_DOWN (the STP state bits are dropped); speeds are derived
/// from the feature bits, as OVS does.
fn decode_phy_port(b: &[u8]) -> Result<PortDesc, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let port_no = port_from_ofp10(r.u16()?);
    let hw_addr = r.arr::<6>()?;
    let name = get_str(r.take(16)?);
    let config = r.u32()? & PORT_CONFIG_KEPT;
    let state = r.u32()? & port_state::LINK_DOWN;
    let curr = features_from_ofp10(r.u32()?);
    let advertised = features_from_ofp10(r.u32()?);
    let supported = features_from_ofp10(r.u32()?);
    let peer = features_from_ofp10(r.u32()?);
    Ok(PortDesc {
        port_no,
        hw_addr,
        name,
        config,
        state,
        curr,
        advertised,
        supported,
        peer,
        curr_speed: speed_kbps(curr),
        max_speed: speed_kbps(supported),
    })
}

/// Encode `ofp_phy_port` (48 bytes). `curr_speed`/`max_speed`, the LIVE and
/// BLOCKED state bits and 1.3-only feature bits have no 1.0 form.
fn encode_phy_port(p: &PortDesc, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.u16(port10(p.port_no)?);
    out.extend_from_slice(&p.hw_addr);
    out.str(&p.name, 16);
    out.u32(p.config & PORT_CONFIG_KEPT);
    out.u32(p.state & port_state::LINK_DOWN);
    for f in [p.curr, p.advertised, p.supported, p.peer] {
        out.u32(features_to_ofp10(f));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// ofp_match.

/// OVS `ofputil_wcbits_to_netmask`.
fn wcbits_to_netmask(wcbits: u32) -> u32 {
    let w = wcbits & 0x3f;
    if w < 32 {
        !((1u32 << w) - 1)
    } else {
        0
    }
}

/// Decode `ofp_match` (40 bytes) as OVS `ofputil_match_from_ofp10_match`;
/// with `normalize`, also wildcard the fields whose prerequisites are not
/// met (`ofputil_normalize_match`, used for flow-mods). Returns the match
/// and the wire `wildcards` masked to `OFPFW10_ALL`.
fn match_from_ofp10(b: &[u8], normalize: bool) -> (Match, u32) {
    use wildcards as w;
    let wc = be32(b, 0) & w::ALL;
    let mut key = FlowKey::default();
    let mut mask = FlowMask::default();
    let mut set = |f: Field, v: u128, m: u128| {
        key.set(f, v & m);
        mask.set(f, m);
    };
    if wc & w::IN_PORT == 0 {
        set(
            Field::InPort,
            u128::from(port_from_ofp10(be16(b, 4))),
            0xffff_ffff,
        );
    }
    if wc & w::DL_SRC == 0 {
        set(Field::DlSrc, be_value(&b[6..12]), ones(48));
    }
    if wc & w::DL_DST == 0 {
        set(Field::DlDst, be_value(&b[12..18]), ones(48));
    }
    let dl_vlan = be16(b, 18);
    let pcp = u16::from(b[20]);
    if wc & w::DL_VLAN == 0 && dl_vlan == OFP_VLAN_NONE {
        set(Field::VlanTci, 0, 0xffff);
    } else {
        let tci = (dl_vlan & 0x0fff) | ((pcp << 13) & 0xe000) | 0x1000;
        let mut m = 0u16;
        if wc & w::DL_VLAN_PCP == 0 {
            m |= 0xe000 | 0x1000;
        }
        if wc & w::DL_VLAN == 0 {
            m |= 0x0fff | 0x1000;
        }
        if m != 0 {
            set(Field::VlanTci, u128::from(tci), u128::from(m));
        }
    }
    if wc & w::DL_TYPE == 0 {
        let t = be16(b, 22);
        let t = if t < 0x600 { 0x05ff } else { t };
        set(Field::DlType, u128::from(t), 0xffff);
    }
    if wc & w::NW_TOS == 0 {
        set(Field::NwTos, u128::from(b[24]), 0xfc);
    }
    if wc & w::NW_PROTO == 0 {
        set(Field::NwProto, u128::from(b[25]), 0xff);
    }
    let src_mask = wcbits_to_netmask(wc >> w::NW_SRC_SHIFT);
    if src_mask != 0 {
        set(Field::NwSrc, u128::from(be32(b, 28)), u128::from(src_mask));
    }
    let dst_mask = wcbits_to_netmask(wc >> w::NW_DST_SHIFT);
    if dst_mask != 0 {
        set(Field::NwDst, u128::from(be32(b, 32)), u128::from(dst_mask));
    }
    if wc & w::TP_SRC == 0 {
        set(Field::TpSrc, u128::from(be16(b, 36)), 0xffff);
    }
    if wc & w::TP_DST == 0 {
        set(Field::TpDst, u128::from(be16(b, 38)), 0xffff);
    }
    if normalize {
        normalize_match(&mut key, &mut mask);
    }
    (Match { key, mask }, wc)
}

/// OVS `ofputil_normalize_match` for the fields an `ofp_match` has.
fn normalize_match(key: &mut FlowKey, mask: &mut FlowMask) {
    let dl_type = key.get(Field::DlType);
    let proto = key.get(Field::NwProto);
    let (nw_addr, tp, nw_proto, ipvx) = match dl_type {
        0x0800 => (true, matches!(proto, 6 | 17 | 132 | 1), true, true),
        0x86dd => (false, matches!(proto, 6 | 17 | 132 | 58), true, true),
        0x0806 | 0x8035 => (true, false, true, false),
        _ => (false, false, false, false),
    };
    let mut clear = |f: Field| {
        mask.set(f, 0);
        key.set(f, 0);
    };
    if !nw_addr {
        clear(Field::NwSrc);
        clear(Field::NwDst);
    }
    if !tp {
        clear(Field::TpSrc);
        clear(Field::TpDst);
    }
    if !nw_proto {
        clear(Field::NwProto);
    }
    if !ipvx {
        clear(Field::NwTos);
        clear(Field::NwTtl);
    }
}

/// OVS `ofputil_match_to_ofp10_match`, without any check.
fn match_to_ofp10_raw(m: &Match) -> [u8; MATCH_LEN] {
    use wildcards as w;
    let k = &m.key;
    let mk = &m.mask;
    let mut wc = 0u32;
    if mk.get(Field::InPort) == 0 {
        wc |= w::IN_PORT;
    }
    if mk.get(Field::DlType) == 0 {
        wc |= w::DL_TYPE;
    }
    if mk.get(Field::NwProto) == 0 {
        wc |= w::NW_PROTO;
    }
    let netmask_wcbits = |f: Field| {
        let m = mk.get(f) as u32;
        if m == 0 {
            32
        } else {
            m.trailing_zeros()
        }
    };
    wc |= netmask_wcbits(Field::NwSrc) << w::NW_SRC_SHIFT;
    wc |= netmask_wcbits(Field::NwDst) << w::NW_DST_SHIFT;
    if mk.get(Field::NwTos) & 0xfc == 0 {
        wc |= w::NW_TOS;
    }
    if mk.get(Field::TpSrc) == 0 {
        wc |= w::TP_SRC;
    }
    if mk.get(Field::TpDst) == 0 {
        wc |= w::TP_DST;
    }
    if mk.get(Field::DlSrc) == 0 {
        wc |= w::DL_SRC;
    }
    if mk.get(Field::DlDst) == 0 {
        wc |= w::DL_DST;
    }
    let tci = k.vlan_tci();
    let tci_mask = mk.get(Field::VlanTci) as u16;
    let (mut dl_vlan, mut pcp) = (0u16, 0u8);
    if tci_mask == 0 {
        wc |= w::DL_VLAN | w::DL_VLAN_PCP;
    } else if tci_mask & 0x1000 != 0 && tci & 0x1000 == 0 {
        dl_vlan = OFP_VLAN_NONE;
    } else {
        if tci_mask & 0x0fff == 0 {
            wc |= w::DL_VLAN;
        } else {
            dl_vlan = tci & 0x0fff;
        }
        if tci_mask & 0xe000 == 0 {
            wc |= w::DL_VLAN_PCP;
        } else {
            pcp = (tci >> 13) as u8;
        }
    }
    let mut out = Vec::with_capacity(MATCH_LEN);
    out.u32(wc);
    out.u16(port_to_ofp10(k.get(Field::InPort) as u32).unwrap_or(0));
    put_mac(&mut out, k.get(Field::DlSrc));
    put_mac(&mut out, k.get(Field::DlDst));
    out.u16(dl_vlan);
    out.u8(pcp);
    out.u8(0);
    out.u16(k.dl_type());
    out.u8(k.nw_tos() & 0xfc);
    out.u8(k.nw_proto());
    out.u16(0);
    out.u32(k.get(Field::NwSrc) as u32);
    out.u32(k.get(Field::NwDst) as u32);
    out.u16(k.tp_src());
    out.u16(k.tp_dst());
    let mut a = [0u8; MATCH_LEN];
    a.copy_from_slice(&out);
    a
}

/// `vlan_tci` matches that say "no tag" in another way (CFI matched as 0)
/// are the same as the exact 0 the 1.0 decoder produces.
fn canonical(m: &Match) -> Match {
    let mut c = *m;
    let mk = c.mask.get(Field::VlanTci);
    if mk & 0x1000 != 0 && c.key.get(Field::VlanTci) & 0x1000 == 0 {
        c.key.set(Field::VlanTci, 0);
        c.mask.set(Field::VlanTci, 0xffff);
    }
    c
}

/// Whether a model match has an `ofp_match` form that decodes back to it.
pub fn match_fits_ofp10(m: &Match) -> bool {
    let raw = match_to_ofp10_raw(m);
    let (back, _) = match_from_ofp10(&raw, false);
    canonical(&back) == canonical(m)
}

/// Append `m` as `ofp_match`.
///
/// # Errors
/// `Unsupported` when `m` has no exact 1.0 form (metadata, TTL, fragment
/// or TCP-flags bits, IPv6 addresses, ECN, non-CIDR or partial masks, a
/// port beyond 16 bits, …); use NXM ([`EncodeOptions::nxm`]) for those.
fn encode_match(m: &Match, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let raw = match_to_ofp10_raw(m);
    let (back, _) = match_from_ofp10(&raw, false);
    if canonical(&back) != canonical(m) {
        return Err(unsupported("match with no ofp_match (OpenFlow 1.0) form"));
    }
    out.extend_from_slice(&raw);
    Ok(())
}

// ---------------------------------------------------------------------------
// NXM matches with a cookie.

/// Decode an `nx_match` that may carry `NXM_NX_COOKIE(_W)` (flow-mods and
/// flow-stats requests): the match, and the cookie and its mask (0, 0
/// when absent).
fn decode_nx_match_cookie(buf: &[u8]) -> Result<(Match, u64, u64), DecodeError> {
    oxm::decode_tlvs_with_cookie(buf)
}

/// Append `m` (and the cookie when `cookie_mask` is nonzero) as an NXM
/// match, returning its unpadded length; then pad to 8 bytes.
fn encode_nx_match_cookie(
    m: &Match,
    cookie: u64,
    cookie_mask: u64,
    out: &mut Vec<u8>,
) -> Result<u16, EncodeError> {
    let start = out.len();
    oxm::encode_tlvs(m, Flavor::Nxm, out);
    oxm::encode_cookie(cookie, cookie_mask, out);
    let len = out.len() - start;
    out.pad8(start);
    u16::try_from(len).map_err(|_| unsupported("nx_match too long"))
}

/// Take `match_len` bytes of `nx_match` plus its padding from `r`.
fn take_nx_match<'a>(r: &mut Rd<'a>, match_len: usize) -> Result<&'a [u8], DecodeError> {
    let m = r.take(match_len)?;
    r.skip(match_len.next_multiple_of(8) - match_len)?;
    Ok(m)
}

// ---------------------------------------------------------------------------
// Actions.

fn bad_len() -> DecodeError {
    bad(OfError::BAD_ACTION_LEN, "bad action length")
}

/// OVS `ofpact_check_output_port` with the 1.0 `OFPP_MAX` (0xff00).
fn check_output_port(p: u16) -> Result<(), DecodeError> {
    match p {
        0xfff8..=0xfffe => Ok(()),
        p if p < 0xff00 => Ok(()),
        _ => Err(bad(OfError::BAD_OUT_PORT, "bad output port")),
    }
}

/// Which L4 set-field a 1.0 `SET_TP_SRC`/`SET_TP_DST` is, from the flow's
/// IP protocol (TCP when unknown: all three share the key bits).
fn tp_fields(proto: Option<u8>) -> (OxmField, OxmField) {
    match proto {
        Some(17) => (OxmField::UdpSrc, OxmField::UdpDst),
        Some(132) => (OxmField::SctpSrc, OxmField::SctpDst),
        _ => (OxmField::TcpSrc, OxmField::TcpDst),
    }
}

/// The IP protocol a match pins, if any.
fn match_proto(m: &Match) -> Option<u8> {
    let (v, mk) = m.field(OxmField::IpProto);
    (mk == 0xff).then_some(v as u8)
}

/// Decode a 1.0 action list (`ofp_action_*`, Nicira `nx_action_*`).
///
/// `OFPAT10_SET_VLAN_VID` / `SET_VLAN_PCP` decode to
/// `SetField{VlanVid, 0x1000 | vid}` / `SetField{VlanPcp, pcp}`. Note for
/// the pipeline: in OpenFlow 1.0 (and OVS) these push an 802.1Q tag when
/// the packet has none (OVS `push_vlan_if_needed`), where a 1.3 set-field
/// on an untagged packet does nothing; the model cannot tell the two
/// apart. `OFPAT10_ENQUEUE` decodes to `SetQueue(q)` followed by
/// `Output{port, max_len: 0}`. `proto` is the flow's IP protocol, used to
/// name the field `SET_TP_SRC/DST` writes.
///
/// Nicira actions (`nx_action_header`, vendor 0x00002320) are
/// [`crate::nx_action::decode`]'s; afterwards runs of `NXAST_REG_LOAD`s
/// into one field are merged and a load of a whole model field becomes a
/// set-field ([`crate::nx_action::merge_loads`]: OVS splits values wider
/// than 64 bits into several loads, and sends 1.0 set-fields as loads).
/// Open vSwitch has no Nicira push-VLAN action (1.0 pushes through
/// `SET_VLAN_VID`/`PCP`).
///
/// # Errors
/// `BAD_ACTION/*`: `BAD_LEN`, `BAD_TYPE` (unknown type), `BAD_EXPERIMENTER`
/// (vendor other than Nicira), `BAD_EXP_TYPE` (unknown Nicira subtype),
/// `BAD_OUT_PORT`, `BAD_ARGUMENT`, set-field errors.
pub fn decode_actions(buf: &[u8], proto: Option<u8>) -> Result<Vec<Action>, DecodeError> {
    let mut acts = Vec::new();
    let mut rest = buf;
    let arg = |what| bad(OfError::BAD_ACTION_ARGUMENT, what);
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(bad_len());
        }
        let typ = be16(rest, 0);
        let len = usize::from(be16(rest, 2));
        if len < 8 || len % 8 != 0 || len > rest.len() {
            return Err(bad_len());
        }
        let a = &rest[..len];
        rest = &rest[len..];
        let fixed = |n: usize| if len == n { Ok(()) } else { Err(bad_len()) };
        match typ {
            OFPAT10_OUTPUT => {
                fixed(8)?;
                let port = be16(a, 4);
                check_output_port(port)?;
                acts.push(Action::Output {
                    port: port_from_ofp10(port),
                    max_len: be16(a, 6),
                });
            }
            OFPAT10_SET_VLAN_VID => {
                fixed(8)?;
                let vid = be16(a, 4);
                if vid & !0x0fff != 0 {
                    return Err(arg("VLAN VID above 4095"));
                }
                acts.push(Action::SetField {
                    field: OxmField::VlanVid,
                    value: u128::from(0x1000 | vid),
                });
            }
            OFPAT10_SET_VLAN_PCP => {
                fixed(8)?;
                if a[4] > 7 {
                    return Err(arg("VLAN PCP above 7"));
                }
                acts.push(Action::SetField {
                    field: OxmField::VlanPcp,
                    value: u128::from(a[4]),
                });
            }
            OFPAT10_STRIP_VLAN => {
                fixed(8)?;
                acts.push(Action::PopVlan);
            }
            OFPAT10_SET_DL_SRC | OFPAT10_SET_DL_DST => {
                fixed(16)?;
                let field = if typ == OFPAT10_SET_DL_SRC {
                    OxmField::EthSrc
                } else {
                    OxmField::EthDst
                };
                acts.push(Action::SetField {
                    field,
                    value: be_value(&a[4..10]),
                });
            }
            OFPAT10_SET_NW_SRC | OFPAT10_SET_NW_DST => {
                fixed(8)?;
                let field = if typ == OFPAT10_SET_NW_SRC {
                    OxmField::Ipv4Src
                } else {
                    OxmField::Ipv4Dst
                };
                acts.push(Action::SetField {
                    field,
                    value: u128::from(be32(a, 4)),
                });
            }
            OFPAT10_SET_NW_TOS => {
                fixed(8)?;
                if a[4] & 0x03 != 0 {
                    return Err(arg("SET_NW_TOS with ECN bits"));
                }
                acts.push(Action::SetField {
                    field: OxmField::IpDscp,
                    value: u128::from(a[4] >> 2),
                });
            }
            OFPAT10_SET_TP_SRC | OFPAT10_SET_TP_DST => {
                fixed(8)?;
                let (s, d) = tp_fields(proto);
                acts.push(Action::SetField {
                    field: if typ == OFPAT10_SET_TP_SRC { s } else { d },
                    value: u128::from(be16(a, 4)),
                });
            }
            OFPAT10_ENQUEUE => {
                fixed(16)?;
                let port = be16(a, 4);
                if port >= 0xff00 && port != 0xfff8 && port != 0xfffe {
                    return Err(bad(OfError::BAD_OUT_PORT, "bad enqueue port"));
                }
                acts.push(Action::SetQueue(be32(a, 12)));
                acts.push(Action::Output {
                    port: port_from_ofp10(port),
                    max_len: 0,
                });
            }
            OFPAT10_VENDOR => decode_nx_action(a, &mut acts, proto)?,
            _ => return Err(bad(OfError::BAD_ACTION_TYPE, "unknown action type")),
        }
    }
    crate::nx_action::merge_loads(&mut acts, true);
    Ok(acts)
}

/// Decode one Nicira action (`nx_action_header`, `a` is the whole
/// action) with [`crate::nx_action::decode`].
fn decode_nx_action(
    a: &[u8],
    acts: &mut Vec<Action>,
    proto: Option<u8>,
) -> Result<(), DecodeError> {
    if a.len() < 16 {
        return Err(bad_len());
    }
    if be32(a, 4) != NX_VENDOR_ID {
        return Err(bad(
            OfError::BAD_ACTION_EXPERIMENTER,
            "unknown action vendor",
        ));
    }
    let nested = |b: &[u8]| decode_actions(b, proto);
    acts.push(crate::nx_action::decode(a, OFP10_VERSION, &nested)?);
    Ok(())
}

/// The bits of an NXM field's value that a load must cover to set field
/// `f` (whose value is `bytes` wide on the wire): the whole value, except
/// for fields narrower than their bytes (`ip_ecn`: 2, `tcp_flags`: 12), as
/// OVS `mf_field.n_bits`.
fn load_bits(f: OxmField, bytes: u32) -> u32 {
    if f.bits() % 8 == 0 {
        bytes * 8
    } else {
        f.bits()
    }
}

/// Append a Nicira action header (`type`, placeholder `len`, vendor,
/// subtype); returns its offset.
fn begin_nx_action(out: &mut Vec<u8>, subtype: u16) -> usize {
    let start = out.len();
    out.u16(OFPAT10_VENDOR);
    out.u16(0);
    out.u32(NX_VENDOR_ID);
    out.u16(subtype);
    start
}

/// Pad the action that starts at `start` to 8 bytes and set its length.
fn finish_action(out: &mut Vec<u8>, start: usize) -> Result<(), EncodeError> {
    out.pad8(start);
    let len = u16::try_from(out.len() - start).map_err(|_| unsupported("action too long"))?;
    out.patch16(start + 2, len);
    Ok(())
}

/// A Nicira action with a 32-bit argument at offset 12 (16 bytes).
fn put_nx_u32(out: &mut Vec<u8>, subtype: u16, v: u32) {
    begin_nx_action(out, subtype);
    let start = out.len() - 10;
    out.u16(0);
    out.u32(v);
    out.patch16(start + 2, 16);
}

fn put_simple(out: &mut Vec<u8>, typ: u16, len: u16) {
    out.u16(typ);
    out.u16(len);
}

/// Append `set_field` as the 1.0 action for it, or `NXAST_REG_LOAD2`.
fn encode_set_field(field: OxmField, value: u128, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if value & !ones(field.bits()) != 0 {
        return Err(unsupported("set-field value wider than the field"));
    }
    if !field.is_writable() {
        return Err(unsupported("set-field of a read-only field"));
    }
    match field {
        OxmField::VlanVid => {
            if value & 0x1000 == 0 {
                return Err(unsupported("set-field VLAN VID without OFPVID_PRESENT"));
            }
            put_simple(out, OFPAT10_SET_VLAN_VID, 8);
            out.u16((value & 0x0fff) as u16);
            out.u16(0);
        }
        OxmField::VlanPcp => {
            put_simple(out, OFPAT10_SET_VLAN_PCP, 8);
            out.u8(value as u8);
            out.zeros(3);
        }
        OxmField::EthSrc | OxmField::EthDst => {
            let t = if field == OxmField::EthSrc {
                OFPAT10_SET_DL_SRC
            } else {
                OFPAT10_SET_DL_DST
            };
            put_simple(out, t, 16);
            put_mac(out, value);
            out.zeros(6);
        }
        OxmField::Ipv4Src | OxmField::Ipv4Dst => {
            let t = if field == OxmField::Ipv4Src {
                OFPAT10_SET_NW_SRC
            } else {
                OFPAT10_SET_NW_DST
            };
            put_simple(out, t, 8);
            out.u32(value as u32);
        }
        OxmField::IpDscp => {
            put_simple(out, OFPAT10_SET_NW_TOS, 8);
            out.u8((value as u8) << 2);
            out.zeros(3);
        }
        OxmField::TcpSrc | OxmField::UdpSrc | OxmField::SctpSrc => {
            put_simple(out, OFPAT10_SET_TP_SRC, 8);
            out.u16(value as u16);
            out.u16(0);
        }
        OxmField::TcpDst | OxmField::UdpDst | OxmField::SctpDst => {
            put_simple(out, OFPAT10_SET_TP_DST, 8);
            out.u16(value as u16);
            out.u16(0);
        }
        _ => put_reg_load(field, value, out)?,
    }
    Ok(())
}

/// A set-field as `NXAST_REG_LOAD`s of its NXM (or OXM) field, at most 64
/// bits each, low bits first, as OVS `set_field_to_nxast` does.
fn put_reg_load(field: OxmField, value: u128, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if crate::nx_action::is_variable_len(crate::model::MfField::Oxm(field)) {
        return crate::nx_action::put_reg_load2(
            crate::model::MfField::Oxm(field),
            value,
            ones(field.bits()),
            out,
        );
    }
    let dst = oxm::header(field, Flavor::Nxm, false);
    let bytes = dst & 0xff;
    if bytes == 0 || bytes > 16 || dst >> 16 == 0xffff {
        return Err(unsupported("set-field with no NXM form"));
    }
    let total = load_bits(field, bytes);
    let mut ofs = 0;
    while ofs < total {
        let n = (total - ofs).min(64);
        put_simple(out, OFPAT10_VENDOR, 24);
        out.u32(NX_VENDOR_ID);
        out.u16(NXAST_REG_LOAD);
        out.u16(((ofs as u16) << 6) | (n as u16 - 1));
        out.u32(dst);
        out.u64(((value >> ofs) & ones(n)) as u64);
        ofs += n;
    }
    Ok(())
}

/// Append `acts` as 1.0 actions, with Nicira actions where 1.0 has none.
///
/// - `SetQueue(q)` right before `Output{port, max_len: 0}` to a physical
///   port, `IN_PORT` or `LOCAL` becomes `OFPAT10_ENQUEUE` (the inverse of
///   the decoder); otherwise `NXAST_SET_QUEUE`.
/// - `PushVlan(0x8100)` is implicit in 1.0 (the following
///   `SET_VLAN_VID/PCP` pushes, as OVS `encode_PUSH_VLAN`), so it must be
///   followed by a VLAN VID or PCP set-field.
/// - `Group` is `NXAST_GROUP` (40), `DecNwTtl` `NXAST_DEC_TTL`;
///   set-fields without a 1.0 action and `SetNwTtl` are `NXAST_REG_LOAD`s
///   (as `ovs-ofctl` sends them); the other Nicira actions are
///   [`crate::nx_action::encode`]'s.
///
/// # Errors
/// `Unsupported` for a port beyond 16 bits, a PushVlan 1.0 cannot express,
/// a set-field of a read-only field or with a value too wide.
pub fn encode_actions(acts: &[Action], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut i = 0;
    while i < acts.len() {
        match &acts[i] {
            Action::Output { port, max_len } => {
                put_simple(out, OFPAT10_OUTPUT, 8);
                out.u16(port10(*port)?);
                out.u16(*max_len);
            }
            Action::SetQueue(q) => {
                let enqueue = match acts.get(i + 1) {
                    Some(Action::Output { port, max_len: 0 }) => {
                        port_to_ofp10(*port).filter(|&p| p < 0xff00 || p == 0xfff8 || p == 0xfffe)
                    }
                    _ => None,
                };
                if let Some(p) = enqueue {
                    put_simple(out, OFPAT10_ENQUEUE, 16);
                    out.u16(p);
                    out.zeros(6);
                    out.u32(*q);
                    i += 1;
                } else {
                    put_nx_u32(out, NXAST_SET_QUEUE, *q);
                }
            }
            Action::Group(g) => put_nx_u32(out, NXAST_GROUP, *g),
            Action::PushVlan(tpid) => {
                let next_sets_vlan = matches!(
                    acts.get(i + 1),
                    Some(Action::SetField {
                        field: OxmField::VlanVid | OxmField::VlanPcp,
                        ..
                    })
                );
                if *tpid != 0x8100 || !next_sets_vlan {
                    return Err(unsupported(
                        "push_vlan not followed by a VLAN set-field (OpenFlow 1.0)",
                    ));
                }
            }
            Action::PopVlan => {
                put_simple(out, OFPAT10_STRIP_VLAN, 8);
                out.zeros(4);
            }
            Action::SetField { field, value } => encode_set_field(*field, *value, out)?,
            Action::DecNwTtl => {
                let start = begin_nx_action(out, NXAST_DEC_TTL);
                finish_action(out, start)?;
            }
            Action::PushMpls(eth) | Action::PopMpls(eth) => {
                let sub = if matches!(acts[i], Action::PushMpls(_)) {
                    NXAST_PUSH_MPLS
                } else {
                    NXAST_POP_MPLS
                };
                let start = begin_nx_action(out, sub);
                out.u16(*eth);
                finish_action(out, start)?;
            }
            Action::SetMplsTtl(t) => {
                let start = begin_nx_action(out, NXAST_SET_MPLS_TTL);
                out.u8(*t);
                finish_action(out, start)?;
            }
            Action::DecMplsTtl => {
                let start = begin_nx_action(out, NXAST_DEC_MPLS_TTL);
                finish_action(out, start)?;
            }
            Action::SetNwTtl(t) => encode_set_field(OxmField::IpTtl, u128::from(*t), out)?,
            a => {
                let nested = |acts: &[Action], out: &mut Vec<u8>| encode_actions(acts, out);
                if !crate::nx_action::encode(a, OFP10_VERSION, out, &nested)? {
                    return Err(unsupported("action without an OpenFlow 1.0 form"));
                }
            }
        }
        i += 1;
    }
    Ok(())
}

/// Decode the actions of a 1.0 flow (flow-mod, flow statistics) into
/// instructions: the actions are the apply-actions, except a Nicira
/// `NXAST_WRITE_METADATA` (32 bytes: 6 zero bytes, value, mask), which is
/// the write-metadata instruction, as in OVS (`decode_NXAST_RAW_WRITE_METADATA`).
/// As OVS's `ofpacts_verify` requires the 1.1 instruction order, nothing
/// may follow it.
///
/// # Errors
/// As [`decode_actions`]; `BAD_ACTION/BAD_LEN` for a write-metadata of
/// another length, `BAD_ACTION/BAD_ARGUMENT` for nonzero padding,
/// `BAD_ACTION/UNSUPPORTED_ORDER` for an action after it.
fn decode_instructions(buf: &[u8], proto: Option<u8>) -> Result<Instructions, DecodeError> {
    let mut at = 0;
    while at + 10 <= buf.len() {
        let len = usize::from(be16(buf, at + 2));
        let is_write_metadata = be16(buf, at) == OFPAT10_VENDOR
            && be32(buf, at + 4) == NX_VENDOR_ID
            && be16(buf, at + 8) == NXAST_WRITE_METADATA;
        if is_write_metadata {
            let a = buf
                .get(at..at + 32)
                .filter(|_| len == 32)
                .ok_or_else(bad_len)?;
            if a[10..16] != [0; 6] {
                return Err(bad(
                    OfError::BAD_ACTION_ARGUMENT,
                    "nonzero write_metadata padding",
                ));
            }
            if buf.len() > at + 32 {
                return Err(bad(
                    OfError::UNSUPPORTED_ORDER,
                    "action after write_metadata",
                ));
            }
            let value = u64::from_be_bytes(a[16..24].try_into().unwrap_or_default());
            let mask = u64::from_be_bytes(a[24..32].try_into().unwrap_or_default());
            let mut ins = Instructions::apply(decode_actions(&buf[..at], proto)?);
            ins.write_metadata = Some((value, mask));
            return Ok(ins);
        }
        if len < 8 {
            break;
        }
        at += len;
    }
    Ok(Instructions::apply(decode_actions(buf, proto)?))
}

/// Check that a flow-mod's instructions have an exact 1.0 form: apply-actions
/// and write-metadata (`NXAST_WRITE_METADATA`) only. (A flow dump writes
/// the others as OVS does, see [`encode_instructions_as_actions`]; a
/// flow-mod must not change meaning.)
fn check_flow_mod_instructions(ins: &Instructions) -> Result<(), EncodeError> {
    if ins.meter.is_some() || ins.clear || ins.write.is_some() || ins.goto_table.is_some() {
        return Err(unsupported(
            "instructions other than apply-actions and write-metadata (OpenFlow 1.0)",
        ));
    }
    Ok(())
}

/// The OpenFlow 1.0 action list of a flow's `ins` in a flow statistics
/// reply, as Open vSwitch 3.1 writes a flow with 1.1+ instructions for
/// OpenFlow 1.0 (`lib/ofp-actions.c`, `encode_<INSTRUCTION>` for
/// `OFP10_VERSION`): the apply-actions, then write-metadata as
/// `NXAST_WRITE_METADATA` (32 bytes: value, mask), then goto-table as
/// `NXAST_RESUBMIT_TABLE` to that table with in_port `OFPP_IN_PORT`
/// (`ovs-ofctl` shows `resubmit(,N)`). Meter, clear-actions and
/// write-actions have no 1.0 form and are left out, as OVS leaves them.
///
/// # Errors
/// As [`encode_actions`] for the apply-actions.
pub(crate) fn encode_instructions_as_actions(
    ins: &Instructions,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_actions(ins.apply.as_deref().unwrap_or(&[]), out)?;
    if let Some((value, mask)) = ins.write_metadata {
        let start = begin_nx_action(out, NXAST_WRITE_METADATA);
        out.zeros(6);
        out.u64(value);
        out.u64(mask);
        finish_action(out, start)?;
    }
    if let Some(table) = ins.goto_table {
        let start = begin_nx_action(out, NXAST_RESUBMIT_TABLE);
        out.u16(OFPP10_IN_PORT);
        out.u8(table);
        out.zeros(3);
        finish_action(out, start)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Errors.

enum Err10 {
    Std(u16, u16),
    Nx(u16, u16),
}

/// OpenFlow 1.3 error → OpenFlow 1.0 (`ofp-errors.h` `OF1.0` / `NX1.0`
/// assignments); errors with neither become `NXBRC_UNENCODABLE_ERROR`.
fn error_to_ofp10(e: OfError) -> Err10 {
    use Err10::{Nx, Std};
    match (e.typ, e.code) {
        (0, c @ 0..=1) => Std(0, c),
        (1, c @ 0..=8) => Std(1, c),
        (1, 9) => Nx(1, 512),
        (1, 10) => Std(1, 5),
        (1, 11) => Nx(1, 514),
        (2, c @ 0..=8) => Std(2, c),
        (2, 9) => Nx(2, 9),
        (2, 10) => Nx(1, 522),
        (2, 13) => Nx(1, 523),
        (2, 14) => Nx(1, 524),
        (2, 15) => Nx(1, 525),
        (3, 1) => Nx(2, 257),
        (4, 5) => Nx(1, 262),
        (4, 6) => Nx(0, 263),
        (4, 7) => Nx(1, 258),
        (4, 8) => Nx(1, 259),
        (4, 9) => Nx(1, 260),
        (4, 10) => Nx(1, 261),
        (5, 1) => Std(3, 0),
        (5, 3) => Std(3, 1),
        (5, 4) => Std(3, 2),
        (5, 6) => Std(3, 4),
        (5, 7) => Nx(3, 258),
        (6, c @ 0..=14) => Nx(6, c),
        (7, c @ 0..=1) => Std(4, c),
        (9, c @ 0..=2) => Std(5, c),
        (11, 2) => Nx(1, 513),
        // OVS ofp-errors.h: NX1.0-1.1(1,517..519).
        (16, 1) => Nx(1, 517),
        (16, 3) => Nx(1, 519),
        (16, 5) => Nx(1, 518),
        _ => Nx(1, 521),
    }
}

/// The 1.3 error for a 1.0 standard error (`(1,5)` is `OFPBRC_EPERM`;
/// `OFPFMFC_BAD_EMERG_TIMEOUT` becomes `OFPFMFC_BAD_TIMEOUT` and
/// `OFPFMFC_UNSUPPORTED` `OFPBAC_UNSUPPORTED_ORDER`, their 1.3 successors).
fn error_from_ofp10(t: u16, c: u16) -> Option<OfError> {
    let (t, c) = match (t, c) {
        (0, 0..=1) | (1, 0..=8) | (2, 0..=8) => (t, c),
        (3, 0) => (5, 1),
        (3, 1) => (5, 3),
        (3, 2) => (5, 4),
        (3, 3) => (5, 5),
        (3, 4) => (5, 6),
        (3, 5) => (2, 11),
        (4, 0..=1) => (7, c),
        (5, 0..=2) => (9, c),
        _ => return None,
    };
    Some(OfError { typ: t, code: c })
}

fn error_from_nx(t: u16, c: u16) -> Option<OfError> {
    let (t, c) = match (t, c) {
        (1, 512) => (1, 9),
        (1, 514) => (1, 11),
        (2, 9) => (2, 9),
        (1, 522) => (2, 10),
        (1, 523) => (2, 13),
        (1, 524) => (2, 14),
        (1, 525) => (2, 15),
        (2, 257) => (3, 1),
        (1, 262) => (4, 5),
        (0, 263) => (4, 6),
        (1, 258) => (4, 7),
        (1, 259) => (4, 8),
        (1, 260) => (4, 9),
        (1, 261) => (4, 10),
        (3, 258) => (5, 7),
        (6, 0..=14) => (6, c),
        (1, 513) => (11, 2),
        _ => return None,
    };
    Some(OfError { typ: t, code: c })
}

/// Decode `ofp_error_msg`. Standard 1.0 errors and Nicira vendor errors
/// (`NXET_VENDOR`/`NXVC_VENDOR_ERROR` + `nx_vendor_error`) map to 1.3
/// numbering; an error with no 1.3 equivalent keeps its wire type and code
/// (for `NXET_VENDOR`, with the `nx_vendor_error` left in `data`), so it
/// re-encodes unchanged.
fn decode_error(r: &mut Rd) -> Result<Msg, DecodeError> {
    let t = r.u16()?;
    let c = r.u16()?;
    let data = r.rest();
    if t == NXET_VENDOR
        && c == NXVC_VENDOR_ERROR
        && data.len() >= 8
        && be32(data, 0) == NX_VENDOR_ID
    {
        if let Some(err) = error_from_nx(be16(data, 4), be16(data, 6))
            .or_else(|| crate::error::nx_error_from_10(be16(data, 4), be16(data, 6)))
        {
            return Ok(Msg::Error {
                err,
                data: data[8..].to_vec(),
            });
        }
    }
    let err = if t == NXET_VENDOR {
        None
    } else {
        error_from_ofp10(t, c)
    };
    Ok(Msg::Error {
        err: err.unwrap_or(OfError { typ: t, code: c }),
        data: data.to_vec(),
    })
}

fn encode_error(err: OfError, data: &[u8], xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin(out, header::OFPT_ERROR, xid);
    let nx10 = (err.typ == crate::error::NX_ERROR_TYPE)
        .then(|| crate::error::nx_error_to_10(err.code))
        .flatten();
    if let Some((t, c)) = nx10 {
        out.u16(NXET_VENDOR);
        out.u16(NXVC_VENDOR_ERROR);
        out.u32(NX_VENDOR_ID);
        out.u16(t);
        out.u16(c);
    } else if err.typ == NXET_VENDOR {
        out.u16(err.typ);
        out.u16(err.code);
    } else {
        match error_to_ofp10(err) {
            Err10::Std(t, c) => {
                out.u16(t);
                out.u16(c);
            }
            Err10::Nx(t, c) => {
                out.u16(NXET_VENDOR);
                out.u16(NXVC_VENDOR_ERROR);
                out.u32(NX_VENDOR_ID);
                out.u16(t);
                out.u16(c);
            }
        }
    }
    out.extend_from_slice(data);
    finish(out, start)
}

// ---------------------------------------------------------------------------
// Flow-mod.

fn flow_mod_command(raw: u16, opts: &DecodeOptions) -> Result<(FlowModCommand, u8), DecodeError> {
    let command = FlowModCommand::from_wire((raw & 0xff) as u8)
        .ok_or_else(|| bad(OfError::BAD_COMMAND, "unknown flow-mod command"))?;
    let high = (raw >> 8) as u8;
    let table = if high != 0 || opts.flow_mod_table_id || command == FlowModCommand::Add {
        high
    } else {
        OFPTT_ALL
    };
    Ok((command, table))
}

/// The wire command: the table id in the high byte (0 for `OFPTT_ALL`,
/// which is also what a modify/delete of table 0 becomes: only a peer
/// with `NXT_FLOW_MOD_TABLE_ID` on tells them apart).
fn command_with_table(fm: &FlowMod) -> u16 {
    let table = if fm.table_id == OFPTT_ALL {
        0
    } else {
        fm.table_id
    };
    (u16::from(table) << 8) | u16::from(fm.command.to_wire())
}

/// 1.0 `ofp_flow_mod_flags`: SEND_FLOW_REM, CHECK_OVERLAP, EMERG.
fn flow_mod_flags(raw: u16, command: FlowModCommand) -> Result<u16, DecodeError> {
    if raw & 4 != 0 {
        // OFPFF_EMERG: the emergency flow cache is not supported (OVS
        // answers OFPFMFC_TABLE_FULL, or the 1.0-only BAD_EMERG_TIMEOUT
        // when a timeout is set).
        return Err(bad(OfError::TABLE_FULL, "emergency flows not supported"));
    }
    if raw & !3 != 0 {
        return Err(bad(OfError::BAD_FLAGS, "unknown flow-mod flags"));
    }
    // In 1.0 an add always resets the counters (OVS).
    let reset = if command == FlowModCommand::Add {
        flow_flags::RESET_COUNTS
    } else {
        0
    };
    Ok(raw | reset)
}

fn flow_mod_flags_to_wire(flags: u16) -> u16 {
    flags & (flow_flags::SEND_FLOW_REM | flow_flags::CHECK_OVERLAP)
}

/// `ofp_flow_mod` body after the header.
fn decode_flow_mod(r: &mut Rd, opts: &DecodeOptions) -> Result<Msg, DecodeError> {
    let (matcher, wc) = match_from_ofp10(r.take(MATCH_LEN)?, true);
    let cookie = r.u64()?;
    let (command, table_id) = flow_mod_command(r.u16()?, opts)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = port_from_ofp10(r.u16()?);
    let flags = flow_mod_flags(r.u16()?, command)?;
    let acts = r.rest();
    let instructions = decode_instructions(acts, match_proto(&matcher))?;
    Ok(Msg::FlowMod(FlowMod {
        cookie,
        cookie_mask: 0,
        table_id,
        command,
        idle_timeout,
        hard_timeout,
        // OpenFlow 1.0: exact-match flows have the highest priority.
        priority: if wc == 0 { 0xffff } else { priority },
        buffer_id,
        out_port,
        out_group: OFPG_ANY,
        flags,
        matcher,
        instructions,
    }))
}

fn encode_flow_mod(fm: &FlowMod, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if fm.cookie_mask != 0 {
        return Err(unsupported("cookie mask in an OpenFlow 1.0 flow-mod"));
    }
    if fm.out_group != OFPG_ANY {
        return Err(unsupported("out_group in an OpenFlow 1.0 flow-mod"));
    }
    check_flow_mod_instructions(&fm.instructions)?;
    let start = begin(out, OFPT_FLOW_MOD, xid);
    encode_match(&fm.matcher, out)?;
    out.u64(fm.cookie);
    out.u16(command_with_table(fm));
    out.u16(fm.idle_timeout);
    out.u16(fm.hard_timeout);
    out.u16(fm.priority);
    out.u32(fm.buffer_id);
    out.u16(port10(fm.out_port)?);
    out.u16(flow_mod_flags_to_wire(fm.flags));
    encode_instructions_as_actions(&fm.instructions, out)?;
    finish(out, start)
}

/// `nx_flow_mod` body after the `nicira_header`. The cookie of a
/// modify/delete comes from `NXM_NX_COOKIE(_W)` when the match has one
/// (else the `cookie` field, with mask 0).
fn decode_nx_flow_mod(r: &mut Rd, opts: &DecodeOptions) -> Result<Msg, DecodeError> {
    let cookie = r.u64()?;
    let (command, table_id) = flow_mod_command(r.u16()?, opts)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = port_from_ofp10(r.u16()?);
    let flags = flow_mod_flags(r.u16()?, command)?;
    let match_len = usize::from(r.u16()?);
    r.skip(6)?;
    let (matcher, mcookie, mmask) = decode_nx_match_cookie(take_nx_match(r, match_len)?)?;
    if command == FlowModCommand::Add && mmask != 0 {
        // OVS: NXBRC_NXM_INVALID ("flow additions may only set a new
        // cookie"), which has no 1.3 equivalent.
        return Err(bad(OfError::BAD_FIELD, "cookie match in a flow add"));
    }
    let instructions = decode_instructions(r.rest(), match_proto(&matcher))?;
    let (cookie, cookie_mask) = if mmask != 0 {
        (mcookie, mmask)
    } else {
        (cookie, 0)
    };
    Ok(Msg::FlowMod(FlowMod {
        cookie,
        cookie_mask,
        table_id,
        command,
        idle_timeout,
        hard_timeout,
        priority,
        buffer_id,
        out_port,
        out_group: OFPG_ANY,
        flags,
        matcher,
        instructions,
    }))
}

fn encode_nx_flow_mod(fm: &FlowMod, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if fm.out_group != OFPG_ANY {
        return Err(unsupported("out_group in an OpenFlow 1.0 flow-mod"));
    }
    check_flow_mod_instructions(&fm.instructions)?;
    let start = begin_nx(out, NXT_FLOW_MOD, xid);
    // With a cookie match, the header cookie is the new cookie: none
    // (all ones) for a modify, 0 for a delete, as `ovs-ofctl` sends.
    let header_cookie = match fm.command {
        _ if fm.cookie_mask == 0 => fm.cookie,
        FlowModCommand::Add => fm.cookie,
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => u64::MAX,
        FlowModCommand::Delete | FlowModCommand::DeleteStrict => 0,
    };
    out.u64(header_cookie);
    out.u16(command_with_table(fm));
    out.u16(fm.idle_timeout);
    out.u16(fm.hard_timeout);
    out.u16(fm.priority);
    out.u32(fm.buffer_id);
    out.u16(port10(fm.out_port)?);
    out.u16(flow_mod_flags_to_wire(fm.flags));
    let len_at = out.len();
    out.u16(0);
    out.zeros(6);
    let cookie_mask = if fm.command == FlowModCommand::Add {
        0
    } else {
        fm.cookie_mask
    };
    let ml = encode_nx_match_cookie(&fm.matcher, fm.cookie, cookie_mask, out)?;
    out.patch16(len_at, ml);
    encode_instructions_as_actions(&fm.instructions, out)?;
    finish(out, start)
}

// ---------------------------------------------------------------------------
// Flow removed, packet in/out, ports, config.

/// `ofp_flow_removed` body: `hard_timeout` is not in 1.0 (decodes as 0),
/// nor `table_id` (decodes as 0xff, unknown, as OVS).
fn decode_flow_removed(r: &mut Rd) -> Result<Msg, DecodeError> {
    let (matcher, _) = match_from_ofp10(r.take(MATCH_LEN)?, false);
    let cookie = r.u64()?;
    let priority = r.u16()?;
    let reason = r.u8()?;
    r.skip(1)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let idle_timeout = r.u16()?;
    r.skip(2)?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    Ok(Msg::FlowRemoved(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id: OFPTT_ALL,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout: 0,
        packet_count,
        byte_count,
        matcher,
    }))
}

/// `OFPRR_METER_DELETE` (4) is sent as `OFPRR_DELETE` before OpenFlow 1.4,
/// as OVS does.
fn removed_reason(r: u8) -> u8 {
    if r == 4 {
        2
    } else {
        r
    }
}

fn encode_flow_removed(fr: &FlowRemoved, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin(out, OFPT_FLOW_REMOVED, xid);
    encode_match(&fr.matcher, out)?;
    out.u64(fr.cookie);
    out.u16(fr.priority);
    out.u8(removed_reason(fr.reason));
    out.u8(0);
    out.u32(fr.duration_sec);
    out.u32(fr.duration_nsec);
    out.u16(fr.idle_timeout);
    out.u16(0);
    out.u64(fr.packet_count);
    out.u64(fr.byte_count);
    finish(out, start)
}

/// `nx_flow_removed` body: `table_id` is sent plus one (0 = unknown, which
/// decodes as 0xff, as OVS); no hard timeout.
fn decode_nx_flow_removed(r: &mut Rd) -> Result<Msg, DecodeError> {
    let cookie = r.u64()?;
    let priority = r.u16()?;
    let reason = r.u8()?;
    let table_id = r.u8()?.checked_sub(1).unwrap_or(OFPTT_ALL);
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let idle_timeout = r.u16()?;
    let match_len = usize::from(r.u16()?);
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let matcher = oxm::decode_tlvs(take_nx_match(r, match_len)?)?;
    r.end()?;
    Ok(Msg::FlowRemoved(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout: 0,
        packet_count,
        byte_count,
        matcher,
    }))
}

fn encode_nx_flow_removed(
    fr: &FlowRemoved,
    xid: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = begin_nx(out, NXT_FLOW_REMOVED, xid);
    out.u64(fr.cookie);
    out.u16(fr.priority);
    out.u8(removed_reason(fr.reason));
    out.u8(fr.table_id.wrapping_add(1));
    out.u32(fr.duration_sec);
    out.u32(fr.duration_nsec);
    out.u16(fr.idle_timeout);
    let len_at = out.len();
    out.u16(0);
    out.u64(fr.packet_count);
    out.u64(fr.byte_count);
    let ml = encode_nx_match_cookie(&fr.matcher, 0, 0, out)?;
    out.patch16(len_at, ml);
    finish(out, start)
}

/// `ofp_packet_in` (data at offset 18): no table id, cookie (all ones) or
/// metadata in 1.0.
fn decode_packet_in(r: &mut Rd) -> Result<Msg, DecodeError> {
    let buffer_id = r.u32()?;
    let total_len = r.u16()?;
    let in_port = port_from_ofp10(r.u16()?);
    let reason = r.u8()?;
    r.skip(1)?;
    Ok(Msg::PacketIn(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id: 0,
        cookie: u64::MAX,
        in_port,
        metadata: 0,
        data: r.rest().to_vec(),
        ..PacketIn::default()
    }))
}

fn encode_packet_in(pi: &PacketIn, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin(out, OFPT_PACKET_IN, xid);
    out.u32(pi.buffer_id);
    out.u16(pi.total_len);
    out.u16(port10(pi.in_port)?);
    out.u8(pi.reason);
    out.u8(0);
    out.extend_from_slice(&pi.data);
    finish(out, start)
}

/// `nx_packet_in`: the match carries the pipeline fields (in_port,
/// metadata); other TLVs are skipped.
fn decode_nx_packet_in(r: &mut Rd) -> Result<Msg, DecodeError> {
    let buffer_id = r.u32()?;
    let total_len = r.u16()?;
    let reason = r.u8()?;
    let table_id = r.u8()?;
    let cookie = r.u64()?;
    let match_len = usize::from(r.u16()?);
    r.skip(6)?;
    // Loose, as OVS: only in_port and metadata are kept.
    let (in_port, metadata) = oxm::decode_pipeline_fields(take_nx_match(r, match_len)?)?;
    r.skip(2)?;
    Ok(Msg::PacketIn(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        in_port: in_port.unwrap_or(0),
        metadata,
        data: r.rest().to_vec(),
        ..PacketIn::default()
    }))
}

fn encode_nx_packet_in(pi: &PacketIn, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin_nx(out, NXT_PACKET_IN, xid);
    out.u32(pi.buffer_id);
    out.u16(pi.total_len);
    out.u8(pi.reason);
    out.u8(pi.table_id);
    out.u64(pi.cookie);
    let len_at = out.len();
    out.u16(0);
    out.zeros(6);
    let mut m = Match::CATCHALL;
    m.set_field(OxmField::InPort, u128::from(pi.in_port), 0xffff_ffff)
        .map_err(|_| unsupported("in_port"))?;
    if pi.metadata != 0 {
        m.set_field(
            OxmField::Metadata,
            u128::from(pi.metadata),
            u128::from(u64::MAX),
        )
        .map_err(|_| unsupported("metadata"))?;
    }
    let ml = encode_nx_match_cookie(&m, 0, 0, out)?;
    out.patch16(len_at, ml);
    out.zeros(2);
    out.extend_from_slice(&pi.data);
    finish(out, start)
}

/// `ofp_packet_out` body. The input port must be a port number below
/// `OFPP_MAX`, `LOCAL`, `CONTROLLER` or `NONE` (OVS).
fn decode_packet_out(r: &mut Rd) -> Result<Msg, DecodeError> {
    let buffer_id = r.u32()?;
    let in_port = r.u16()?;
    if in_port >= 0xff00 && !matches!(in_port, 0xfffd..=0xffff) {
        return Err(bad(OfError::BAD_PORT, "bad packet-out input port"));
    }
    let in_port = port_from_ofp10(in_port);
    let actions_len = usize::from(r.u16()?);
    if actions_len % 8 != 0 {
        return Err(bad(OfError::BAD_LEN, "actions_len not a multiple of 8"));
    }
    let acts = r.take(actions_len)?;
    let actions = decode_actions(acts, None)?;
    Ok(Msg::PacketOut(PacketOut {
        buffer_id,
        in_port,
        actions,
        data: r.rest().to_vec(),
    }))
}

fn encode_packet_out(po: &PacketOut, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin(out, OFPT_PACKET_OUT, xid);
    out.u32(po.buffer_id);
    out.u16(port10(po.in_port)?);
    let len_at = out.len();
    out.u16(0);
    let a0 = out.len();
    encode_actions(&po.actions, out)?;
    let alen = u16::try_from(out.len() - a0).map_err(|_| unsupported("actions too long"))?;
    out.patch16(len_at, alen);
    out.extend_from_slice(&po.data);
    finish(out, start)
}

/// `ofp_switch_features` body: the `actions` bitmap is not kept (the
/// encoder sends [`OFP10_ACTIONS_BITMAP`]).
fn decode_features_reply(r: &mut Rd) -> Result<Msg, DecodeError> {
    let datapath_id = r.u64()?;
    let n_buffers = r.u32()?;
    let n_tables = r.u8()?;
    r.skip(3)?;
    let capabilities = r.u32()? & CAPS10_KEPT;
    let _actions = r.u32()?;
    let ports = decode_fixed(r.rest(), PHY_PORT_LEN, decode_phy_port)?;
    Ok(Msg::FeaturesReply(SwitchFeatures {
        datapath_id,
        n_buffers,
        n_tables,
        auxiliary_id: 0,
        capabilities,
        ports,
    }))
}

fn encode_features_reply(
    f: &SwitchFeatures,
    xid: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = begin(out, OFPT_FEATURES_REPLY, xid);
    out.u64(f.datapath_id);
    out.u32(f.n_buffers);
    out.u8(f.n_tables);
    out.zeros(3);
    out.u32(f.capabilities & CAPS10_KEPT & !OFPC10_STP);
    out.u32(OFP10_ACTIONS_BITMAP);
    for p in &f.ports {
        encode_phy_port(p, out)?;
    }
    finish(out, start)
}

fn decode_port_mod(r: &mut Rd) -> Result<Msg, DecodeError> {
    let port_no = port_from_ofp10(r.u16()?);
    let hw_addr = r.arr::<6>()?;
    let config = r.u32()? & PORT_CONFIG_KEPT;
    let mask = r.u32()? & PORT_CONFIG_KEPT;
    let advertise = features_from_ofp10(r.u32()?);
    r.skip(4)?;
    Ok(Msg::PortMod(PortMod {
        port_no,
        hw_addr,
        config,
        mask,
        advertise,
    }))
}

fn encode_port_mod(pm: &PortMod, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin(out, OFPT_PORT_MOD, xid);
    out.u16(port10(pm.port_no)?);
    out.extend_from_slice(&pm.hw_addr);
    out.u32(pm.config & PORT_CONFIG_KEPT);
    out.u32(pm.mask & PORT_CONFIG_KEPT);
    out.u32(features_to_ofp10(pm.advertise));
    out.zeros(4);
    finish(out, start)
}

fn decode_switch_config(r: &mut Rd) -> Result<SwitchConfig, DecodeError> {
    Ok(SwitchConfig {
        flags: r.u16()?,
        miss_send_len: r.u16()?,
    })
}

// ---------------------------------------------------------------------------
// Statistics.

/// `ofp_flow_stats_request` (1.0): match, table_id, pad, out_port.
fn decode_flow_stats_request(r: &mut Rd) -> Result<FlowStatsRequest, DecodeError> {
    let (matcher, _) = match_from_ofp10(r.take(MATCH_LEN)?, false);
    let table_id = r.u8()?;
    r.skip(1)?;
    let out_port = port_from_ofp10(r.u16()?);
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group: OFPG_ANY,
        cookie: 0,
        cookie_mask: 0,
        matcher,
    })
}

fn encode_flow_stats_request(q: &FlowStatsRequest, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if q.cookie_mask != 0 || q.out_group != OFPG_ANY {
        return Err(unsupported(
            "cookie or group filter in an OpenFlow 1.0 flow stats request",
        ));
    }
    encode_match(&q.matcher, out)?;
    out.u8(q.table_id);
    out.u8(0);
    out.u16(port10(q.out_port)?);
    Ok(())
}

/// `nx_flow_stats_request` / `nx_aggregate_stats_request`.
fn decode_nx_flow_stats_request(r: &mut Rd) -> Result<FlowStatsRequest, DecodeError> {
    let out_port = port_from_ofp10(r.u16()?);
    let match_len = usize::from(r.u16()?);
    let table_id = r.u8()?;
    r.skip(3)?;
    let (matcher, cookie, cookie_mask) = decode_nx_match_cookie(take_nx_match(r, match_len)?)?;
    r.end()?;
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group: OFPG_ANY,
        cookie,
        cookie_mask,
        matcher,
    })
}

fn encode_nx_flow_stats_request(
    q: &FlowStatsRequest,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if q.out_group != OFPG_ANY {
        return Err(unsupported("group filter in an NXST flow stats request"));
    }
    out.u16(port10(q.out_port)?);
    let len_at = out.len();
    out.u16(0);
    out.u8(q.table_id);
    out.zeros(3);
    let ml = encode_nx_match_cookie(&q.matcher, q.cookie, q.cookie_mask, out)?;
    out.patch16(len_at, ml);
    Ok(())
}

/// One `ofp_flow_stats` (1.0): no flags, ages or cookie mask.
fn decode_flow_stats(b: &[u8]) -> Result<FlowStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(1)?;
    let (matcher, _) = match_from_ofp10(r.take(MATCH_LEN)?, false);
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let priority = r.u16()?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    r.skip(6)?;
    let cookie = r.u64()?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let instructions = decode_instructions(r.rest(), match_proto(&matcher))?;
    Ok(FlowStats {
        table_id,
        duration_sec,
        duration_nsec,
        priority,
        idle_timeout,
        hard_timeout,
        flags: 0,
        cookie,
        packet_count,
        byte_count,
        idle_age: None,
        hard_age: None,
        matcher,
        instructions,
    })
}

fn encode_flow_stats(out: &mut Vec<u8>, f: &FlowStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u8(f.table_id);
    out.u8(0);
    encode_match(&f.matcher, out)?;
    out.u32(f.duration_sec);
    out.u32(f.duration_nsec);
    out.u16(f.priority);
    out.u16(f.idle_timeout);
    out.u16(f.hard_timeout);
    out.zeros(6);
    out.u64(f.cookie);
    out.u64(f.packet_count);
    out.u64(f.byte_count);
    encode_instructions_as_actions(&f.instructions, out)?;
    end_record(out, start, start)
}

/// One `nx_flow_stats`: `idle_age`/`hard_age` are sent plus one (0 =
/// unknown); no flags.
fn decode_nx_flow_stats(b: &[u8]) -> Result<FlowStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(1)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let priority = r.u16()?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let match_len = usize::from(r.u16()?);
    let age = |a: u16| a.checked_sub(1);
    let idle_age = age(r.u16()?);
    let hard_age = age(r.u16()?);
    let cookie = r.u64()?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let matcher = oxm::decode_tlvs(take_nx_match(&mut r, match_len)?)?;
    let instructions = decode_instructions(r.rest(), match_proto(&matcher))?;
    Ok(FlowStats {
        table_id,
        duration_sec,
        duration_nsec,
        priority,
        idle_timeout,
        hard_timeout,
        flags: 0,
        cookie,
        packet_count,
        byte_count,
        idle_age,
        hard_age,
        matcher,
        instructions,
    })
}

fn encode_nx_flow_stats(out: &mut Vec<u8>, f: &FlowStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u8(f.table_id);
    out.u8(0);
    out.u32(f.duration_sec);
    out.u32(f.duration_nsec);
    out.u16(f.priority);
    out.u16(f.idle_timeout);
    out.u16(f.hard_timeout);
    out.u16(0);
    let age = |a: Option<u16>| a.map_or(0, |a| a.saturating_add(1));
    out.u16(age(f.idle_age));
    out.u16(age(f.hard_age));
    out.u64(f.cookie);
    out.u64(f.packet_count);
    out.u64(f.byte_count);
    let ml = encode_nx_match_cookie(&f.matcher, 0, 0, out)?;
    out.patch16(start + 18, ml);
    encode_instructions_as_actions(&f.instructions, out)?;
    end_record(out, start, start)
}

/// Split a body of variable-length entries (each starting with a 16-bit
/// length of at least `min`) and decode each.
fn decode_entries<T>(
    b: &[u8],
    min: usize,
    f: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = r.peek_len(0)?;
        v.push(f(r.record(len, min)?.b)?);
    }
    Ok(v)
}

/// Decode fixed-size entries.
fn decode_fixed<T>(
    b: &[u8],
    size: usize,
    f: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    if b.len() % size != 0 {
        return Err(bad(OfError::BAD_LEN, "partial fixed-size entry"));
    }
    b.chunks_exact(size).map(f).collect()
}

/// 1.0 `ofp_table_stats` (64 bytes): wildcards and max_entries are not
/// kept.
fn decode_table_stats(b: &[u8]) -> Result<TableStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let table_id = r.u8()?;
    r.skip(3)?;
    let name = get_str(r.take(32)?);
    r.skip(4 + 4)?;
    Ok(TableStats {
        table_id,
        name,
        active_count: r.u32()?,
        lookup_count: r.u64()?,
        matched_count: r.u64()?,
    })
}

/// 1.0 `ofp_table_stats`: the table's name, `table<N>` if it has none (OVS
/// names unnamed tables so), wildcards `OFPFW10_ALL`, max_entries
/// [`TABLE_MAX_ENTRIES`].
fn encode_table_stats(out: &mut Vec<u8>, t: &TableStats) -> Result<(), EncodeError> {
    out.u8(t.table_id);
    out.zeros(3);
    if t.name.is_empty() {
        out.str(&format!("table{}", t.table_id), 32);
    } else {
        out.str(&t.name, 32);
    }
    out.u32(wildcards::ALL);
    out.u32(TABLE_MAX_ENTRIES);
    out.u32(t.active_count);
    out.u64(t.lookup_count);
    out.u64(t.matched_count);
    Ok(())
}

/// 1.0 `ofp_port_stats` (104 bytes): no duration (decodes as 0).
fn decode_port_stats(b: &[u8]) -> Result<PortStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let port_no = port_from_ofp10(r.u16()?);
    r.skip(6)?;
    wire::get_port_counters(&mut r, port_no)
}

fn encode_port_stats(out: &mut Vec<u8>, s: &PortStats) -> Result<(), EncodeError> {
    out.u16(port10(s.port_no)?);
    out.zeros(6);
    wire::put_port_counters(out, s);
    Ok(())
}

/// `OFPT_STATS_REQUEST` body (after the header).
fn decode_stats_request(r: &mut Rd) -> Result<Msg, DecodeError> {
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
        _ => return Err(bad(OfError::BAD_MULTIPART, "unknown stats type")),
    };
    Ok(Msg::MultipartRequest { flags, body })
}

/// The vendor id, subtype and padding of a `nicira10_stats_msg`; only
/// `NXST_FLOW` and `NXST_AGGREGATE` are accepted.
fn nx_stats_header(r: &mut Rd) -> Result<u32, DecodeError> {
    if r.u32()? != NX_VENDOR_ID {
        return Err(bad(OfError::BAD_EXPERIMENTER, "unknown stats vendor"));
    }
    let subtype = r.u32()?;
    r.skip(4)?;
    if subtype != NXST_FLOW && subtype != NXST_AGGREGATE {
        return Err(bad(OfError::BAD_EXP_TYPE, "unknown Nicira stats subtype"));
    }
    Ok(subtype)
}

/// `OFPT_STATS_REPLY` body (after the header).
fn decode_stats_reply(r: &mut Rd) -> Result<Msg, DecodeError> {
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
        _ => return Err(bad(OfError::BAD_MULTIPART, "unknown stats type")),
    };
    Ok(Msg::MultipartReply { flags, body })
}

/// Append a stats message header (`ofp_stats_request`/`reply`, plus the
/// `nicira10_stats_msg` part for Nicira subtypes).
fn begin_stats(
    out: &mut Vec<u8>,
    typ: u8,
    xid: u32,
    st: u16,
    flags: u16,
    nx: Option<u32>,
) -> usize {
    let start = begin(out, typ, xid);
    out.u16(st);
    out.u16(flags);
    if let Some(sub) = nx {
        out.u32(NX_VENDOR_ID);
        out.u32(sub);
        out.zeros(4);
    }
    start
}

fn encode_stats_request(
    flags: u16,
    body: &MpRequest,
    xid: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let t = OFPT_STATS_REQUEST;
    let start = match body {
        MpRequest::Desc => begin_stats(out, t, xid, OFPST_DESC, flags, None),
        MpRequest::Flow(q) | MpRequest::Aggregate(q) => {
            let st = if matches!(body, MpRequest::Flow(_)) {
                OFPST_FLOW
            } else {
                OFPST_AGGREGATE
            };
            let s = begin_stats(out, t, xid, st, flags, None);
            encode_flow_stats_request(q, out)?;
            s
        }
        MpRequest::Table => begin_stats(out, t, xid, OFPST_TABLE, flags, None),
        MpRequest::PortStats(p) => {
            let s = begin_stats(out, t, xid, OFPST_PORT, flags, None);
            out.u16(port10(*p)?);
            out.zeros(6);
            s
        }
        MpRequest::Queue { port_no, queue_id } => {
            let s = begin_stats(out, t, xid, OFPST_QUEUE, flags, None);
            out.u16(port10(*port_no)?);
            out.zeros(2);
            out.u32(*queue_id);
            s
        }
        MpRequest::PortDesc(_) => begin_stats(out, t, xid, OFPST_PORT_DESC, flags, None),
        MpRequest::NxFlow(q) | MpRequest::NxAggregate(q) => {
            let sub = if matches!(body, MpRequest::NxFlow(_)) {
                NXST_FLOW
            } else {
                NXST_AGGREGATE
            };
            let s = begin_stats(out, t, xid, OFPST_VENDOR, flags, Some(sub));
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

/// Append a stats reply whose body is `entries`, split into several
/// messages with `OFPSF_REPLY_MORE` when it would exceed 65535 bytes.
fn put_split<T>(
    out: &mut Vec<u8>,
    xid: u32,
    flags: u16,
    st: u16,
    nx: Option<u32>,
    entries: &[T],
    put: impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let begin = |out: &mut Vec<u8>| begin_stats(out, OFPT_STATS_REPLY, xid, st, flags, nx);
    wire::put_split_reply(out, flags, begin, entries, put)
}

fn encode_stats_reply(
    flags: u16,
    body: &MpReply,
    xid: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let single = |out: &mut Vec<u8>, st: u16, nx: Option<u32>, body: &dyn Fn(&mut Vec<u8>)| {
        let start = begin_stats(out, OFPT_STATS_REPLY, xid, st, flags, nx);
        body(out);
        finish(out, start)
    };
    match body {
        MpReply::Desc(d) => single(out, OFPST_DESC, None, &|out| wire::put_desc(out, d)),
        MpReply::Flow(fs) => put_split(out, xid, flags, OFPST_FLOW, None, fs, encode_flow_stats),
        MpReply::Aggregate {
            packet_count,
            byte_count,
            flow_count,
        } => single(out, OFPST_AGGREGATE, None, &|out| {
            wire::put_aggregate(out, *packet_count, *byte_count, *flow_count)
        }),
        MpReply::Table(ts) => put_split(out, xid, flags, OFPST_TABLE, None, ts, encode_table_stats),
        MpReply::PortStats(ps) => {
            put_split(out, xid, flags, OFPST_PORT, None, ps, encode_port_stats)
        }
        MpReply::PortDesc(ps) => put_split(out, xid, flags, OFPST_PORT_DESC, None, ps, |out, p| {
            encode_phy_port(p, out)
        }),
        MpReply::Queue => single(out, OFPST_QUEUE, None, &|_| {}),
        MpReply::NxFlow(fs) => put_split(
            out,
            xid,
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
// Vendor messages.

fn decode_vendor(r: &mut Rd, opts: &DecodeOptions) -> Result<Msg, DecodeError> {
    if r.u32()? != NX_VENDOR_ID {
        return Err(bad(OfError::BAD_EXPERIMENTER, "unknown vendor"));
    }
    let subtype = r.u32()?;
    let msg = match subtype {
        NXT_SET_FLOW_FORMAT => Msg::NxSetFlowFormat(r.u32()?),
        NXT_FLOW_MOD => return decode_nx_flow_mod(r, opts),
        NXT_FLOW_REMOVED => return decode_nx_flow_removed(r),
        NXT_FLOW_MOD_TABLE_ID => {
            let set = r.u8()? != 0;
            r.skip(7)?;
            Msg::NxFlowModTableId(set)
        }
        NXT_SET_PACKET_IN_FORMAT => Msg::NxSetPacketInFormat(r.u32()?),
        NXT_PACKET_IN => return decode_nx_packet_in(r),
        crate::packet_in2::NXT_PACKET_IN2 => {
            return Ok(Msg::NxPacketIn2(crate::packet_in2::get_body(r.rest(), 1)?));
        }
        crate::packet_in2::NXT_RESUME => {
            return Ok(Msg::NxResume(crate::packet_in2::get_resume(r.rest(), 1)?));
        }
        NXT_SET_ASYNC_CONFIG => {
            let mut m = [0u32; 6];
            for x in &mut m {
                *x = r.u32()?;
            }
            Msg::SetAsync(crate::model::AsyncConfig {
                packet_in_mask: [m[0], m[1]],
                port_status_mask: [m[2], m[3]],
                flow_removed_mask: [m[4], m[5]],
                ..crate::model::AsyncConfig::NONE
            })
        }
        NXT_SET_CONTROLLER_ID => {
            r.skip(6)?;
            Msg::NxSetControllerId(r.u16()?)
        }
        crate::tlv::NXT_TLV_TABLE_MOD => Msg::NxTlvTableMod(crate::tlv::get_table_mod(r)?),
        crate::tlv::NXT_TLV_TABLE_REQUEST => Msg::NxTlvTableRequest,
        crate::tlv::NXT_TLV_TABLE_REPLY => Msg::NxTlvTableReply(crate::tlv::get_table_reply(r)?),
        crate::nicira::NXT_CT_FLUSH_ZONE => Msg::NxCtFlushZone(crate::v13::get_nx_zone_id(r)?),
        NXT_ROLE_REQUEST | NXT_ROLE_REPLY => {
            // nx_role_request: NX_ROLE_OTHER/PRIMARY/SECONDARY (0, 1, 2) are
            // the 1.3 roles EQUAL/MASTER/SLAVE minus one. There is no
            // generation id: it decodes as 0, and the role handler of a
            // 1.0 connection must not check it (OVS: have_generation_id
            // false).
            let role = r.u32()?;
            if role > 2 {
                return Err(bad(OfError::BAD_ROLE, "unknown Nicira role"));
            }
            let m = crate::model::RoleMsg {
                role: role + 1,
                generation_id: 0,
            };
            if subtype == NXT_ROLE_REQUEST {
                Msg::RoleRequest(m)
            } else {
                Msg::RoleReply(m)
            }
        }
        _ => return Err(bad(OfError::BAD_EXP_TYPE, "unknown Nicira subtype")),
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
            Err(bad(OfError::BAD_LEN, "bad message length"))
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
            decode_error(&mut r)?
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
            decode_features_reply(&mut r)?
        }
        OFPT_GET_CONFIG_REQUEST => {
            exact(&r, 0)?;
            Msg::GetConfigRequest
        }
        OFPT_GET_CONFIG_REPLY => {
            exact(&r, 4)?;
            Msg::GetConfigReply(decode_switch_config(&mut r)?)
        }
        OFPT_SET_CONFIG => {
            exact(&r, 4)?;
            Msg::SetConfig(decode_switch_config(&mut r)?)
        }
        OFPT_PACKET_IN => {
            at_least(&r, 10)?;
            decode_packet_in(&mut r)?
        }
        OFPT_FLOW_REMOVED => {
            exact(&r, 80)?;
            decode_flow_removed(&mut r)?
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
            decode_packet_out(&mut r)?
        }
        OFPT_FLOW_MOD => {
            at_least(&r, 64)?;
            decode_flow_mod(&mut r, opts)?
        }
        OFPT_PORT_MOD => {
            exact(&r, 24)?;
            decode_port_mod(&mut r)?
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
        _ => return Err(bad(OfError::BAD_TYPE, "unknown message type")),
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
        Msg::Error { err, data } => encode_error(*err, data, xid, out),
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
        Msg::FeaturesReply(f) => encode_features_reply(f, xid, out),
        Msg::GetConfigRequest => bare(out, OFPT_GET_CONFIG_REQUEST),
        Msg::GetConfigReply(c) | Msg::SetConfig(c) => {
            let t = if matches!(msg, Msg::SetConfig(_)) {
                OFPT_SET_CONFIG
            } else {
                OFPT_GET_CONFIG_REPLY
            };
            let s = begin(out, t, xid);
            out.u16(c.flags);
            out.u16(c.miss_send_len);
            finish(out, s)
        }
        Msg::PacketIn(pi) => {
            if opts.nx_packet_in {
                encode_nx_packet_in(pi, xid, out)
            } else {
                encode_packet_in(pi, xid, out)
            }
        }
        Msg::FlowRemoved(fr) => {
            if opts.nxm {
                encode_nx_flow_removed(fr, xid, out)
            } else {
                encode_flow_removed(fr, xid, out)
            }
        }
        Msg::PortStatus(ps) => {
            let s = begin(out, OFPT_PORT_STATUS, xid);
            out.u8(ps.reason);
            out.zeros(7);
            encode_phy_port(&ps.desc, out)?;
            finish(out, s)
        }
        Msg::PacketOut(po) => encode_packet_out(po, xid, out),
        Msg::FlowMod(fm) => {
            if opts.nxm {
                encode_nx_flow_mod(fm, xid, out)
            } else {
                encode_flow_mod(fm, xid, out)
            }
        }
        Msg::PortMod(pm) => encode_port_mod(pm, xid, out),
        Msg::MultipartRequest { flags, body } => encode_stats_request(*flags, body, xid, out),
        Msg::MultipartReply { flags, body } => encode_stats_reply(*flags, body, xid, out),
        Msg::BarrierRequest => bare(out, OFPT_BARRIER_REQUEST),
        Msg::BarrierReply => bare(out, OFPT_BARRIER_REPLY),
        Msg::SetAsync(a) => {
            let s = begin_nx(out, NXT_SET_ASYNC_CONFIG, xid);
            for v in a
                .packet_in_mask
                .iter()
                .chain(&a.port_status_mask)
                .chain(&a.flow_removed_mask)
            {
                out.u32(*v);
            }
            finish(out, s)
        }
        Msg::NxSetFlowFormat(f) | Msg::NxSetPacketInFormat(f) => {
            let sub = if matches!(msg, Msg::NxSetFlowFormat(_)) {
                NXT_SET_FLOW_FORMAT
            } else {
                NXT_SET_PACKET_IN_FORMAT
            };
            let s = begin_nx(out, sub, xid);
            out.u32(*f);
            finish(out, s)
        }
        Msg::NxFlowModTableId(set) => {
            let s = begin_nx(out, NXT_FLOW_MOD_TABLE_ID, xid);
            out.u8(u8::from(*set));
            out.zeros(7);
            finish(out, s)
        }
        Msg::NxPacketIn2(p) | Msg::NxResume(p) => {
            let sub = crate::packet_in2::subtype(msg);
            let s = begin_nx(out, sub, xid);
            crate::packet_in2::put_body(p, 1, out);
            finish(out, s)
        }
        Msg::NxSetControllerId(id) => {
            let s = begin_nx(out, NXT_SET_CONTROLLER_ID, xid);
            out.zeros(6);
            out.u16(*id);
            finish(out, s)
        }
        Msg::NxTlvTableMod(m) => {
            let s = begin_nx(out, crate::tlv::NXT_TLV_TABLE_MOD, xid);
            crate::tlv::put_table_mod(out, m);
            finish(out, s)
        }
        Msg::NxTlvTableRequest => {
            let s = begin_nx(out, crate::tlv::NXT_TLV_TABLE_REQUEST, xid);
            finish(out, s)
        }
        Msg::NxTlvTableReply(r) => {
            let s = begin_nx(out, crate::tlv::NXT_TLV_TABLE_REPLY, xid);
            crate::tlv::put_table_reply(out, r);
            finish(out, s)
        }
        Msg::NxCtFlushZone(zone) => {
            let s = begin_nx(out, crate::nicira::NXT_CT_FLUSH_ZONE, xid);
            out.zeros(6);
            out.u16(*zone);
            finish(out, s)
        }
        Msg::GroupMod(_) => Err(unsupported("group-mod")),
        Msg::TableMod { .. } => Err(unsupported("table-mod")),
        Msg::RoleRequest(m) | Msg::RoleReply(m) => {
            if !(1..=3).contains(&m.role) {
                return Err(unsupported("role \"no change\" in NXT_ROLE_REQUEST"));
            }
            let sub = if matches!(msg, Msg::RoleRequest(_)) {
                NXT_ROLE_REQUEST
            } else {
                NXT_ROLE_REPLY
            };
            let s = begin_nx(out, sub, xid);
            out.u32(m.role - 1);
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
