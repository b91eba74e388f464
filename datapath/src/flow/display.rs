//! Text forms of flow keys: `ovs-ofctl` match syntax (`lib/match.c`
//! `match_format`) and `ovs-appctl dpctl/dump-flows` syntax
//! (`lib/odp-util.c` `odp_flow_format`).

use std::fmt::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Field, FlowKey, FlowMask, VLAN_CFI, VLAN_PCP_MASK, VLAN_VID_MASK};
use crate::packet::MacAddr;

/// `ovs-ofctl` style: `in_port=1,dl_src=..,dl_type=0x0800,nw_src=..`.
/// Without a mask every field that applies to the key's protocol is shown;
/// with one, only fields with significant bits (partial masks as
/// `value/mask`).
#[derive(Debug, Clone, Copy)]
pub struct MatchFmt<'a> {
    pub(super) key: &'a FlowKey,
    pub(super) mask: Option<&'a FlowMask>,
}

/// `ovs-appctl dpctl/dump-flows` style:
/// `in_port(1),eth(src=..,dst=..),eth_type(0x0800),ipv4(src=..,..)`.
#[derive(Debug, Clone, Copy)]
pub struct DpctlFmt<'a> {
    pub(super) key: &'a FlowKey,
    pub(super) mask: &'a FlowMask,
    /// Every field, wildcarded ones as `value/0` (`dpctl/dump-flows -m`).
    pub(super) verbose: bool,
}

/// Which protocol family a key's L3 fields belong to.
#[derive(PartialEq, Eq, Clone, Copy)]
enum L3 {
    V4,
    V6,
    Arp,
    Other,
}

fn l3_of(k: &FlowKey) -> L3 {
    match k.dl_type() {
        0x0800 => L3::V4,
        0x86dd => L3::V6,
        0x0806 | 0x8035 => L3::Arp,
        _ => L3::Other,
    }
}

fn mac_value(v: u128, m: u128) -> String {
    let a = MacAddr::from_u64(v as u64);
    if m == Field::DlSrc.all_ones() {
        a.to_string()
    } else {
        format!("{a}/{}", MacAddr::from_u64(m as u64))
    }
}

fn ip_value(l3: L3, v: u128, m: u128) -> String {
    if l3 == L3::V6 {
        let a = Ipv6Addr::from(v);
        if m == u128::MAX {
            return a.to_string();
        }
        if m.leading_ones() + m.trailing_zeros() == 128 {
            return format!("{a}/{}", m.leading_ones());
        }
        return format!("{a}/{}", Ipv6Addr::from(m));
    }
    let a = Ipv4Addr::from(v as u32);
    let m32 = m as u32;
    if m32 == u32::MAX {
        a.to_string()
    } else if m32.leading_ones() + m32.trailing_zeros() == 32 {
        format!("{a}/{}", m32.leading_ones())
    } else {
        format!("{a}/{}", Ipv4Addr::from(m32))
    }
}

fn int_value(f: Field, v: u128, m: u128, hex: bool) -> String {
    if m == f.all_ones() {
        if hex {
            format!("{v:#x}")
        } else {
            v.to_string()
        }
    } else {
        format!("{v:#x}/{m:#x}")
    }
}

/// Whether the key is an IPv6 neighbour solicitation or advertisement.
fn is_nd(k: &FlowKey) -> bool {
    k.dl_type() == 0x86dd && k.nw_proto() == 58 && matches!(k.tp_src(), 135 | 136)
}

/// Whether the key is an MPLS frame.
fn is_mpls(k: &FlowKey) -> bool {
    matches!(k.dl_type(), 0x8847 | 0x8848)
}

/// `ct_state` bits in OVS's order and names (`CS_*`).
pub const CT_STATE_NAMES: [(u32, &str); 8] = [
    (0x01, "new"),
    (0x02, "est"),
    (0x04, "rel"),
    (0x08, "rpl"),
    (0x10, "inv"),
    (0x20, "trk"),
    (0x40, "snat"),
    (0x80, "dnat"),
];

/// Masked flags as `+a-b` (OVS `format_flags_masked`), or `a|b` when
/// every named flag is matched; bits without a name as hex.
fn flags_value(names: &[(u32, &str)], v: u128, m: u128) -> String {
    let (v, m) = (v as u32, m as u32);
    let known = names.iter().fold(0, |a, (b, _)| a | b);
    if m & known == known {
        // Every flag matched (a packet's own flags): OVS
        // `format_flags_masked` with the whole mask prints `new|trk`
        // (`format_flags`, lowest bit first; `0` for none).
        if v == 0 {
            return "0".into();
        }
        let mut set: Vec<String> = names
            .iter()
            .filter(|(b, _)| v & b != 0)
            .map(|(_, n)| n.to_string())
            .collect();
        if v & !known != 0 {
            set.push(format!("{:#x}", v & !known));
        }
        return set.join("|");
    }
    let mut s = String::new();
    let mut rest = m;
    for &(bit, name) in names {
        if m & bit != 0 {
            s.push(if v & bit != 0 { '+' } else { '-' });
            s.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 || s.is_empty() {
        return format!("{v:#x}/{m:#x}");
    }
    s
}

/// The `ovs-ofctl` name and value text of a metadata, tunnel, conntrack,
/// MPLS or ND field.
fn named_value(fl: Field, v: u128, m: u128) -> (String, String) {
    let v6 = |v: u128| v > u128::from(u32::MAX);
    let hex = |fl| int_value(fl, v, m, true);
    let dec = |fl| int_value(fl, v, m, false);
    match fl {
        Field::Reg(n) => (format!("reg{n}"), hex(fl)),
        Field::Xreg(n) => (format!("xreg{n}"), hex(fl)),
        Field::Xxreg(n) => (format!("xxreg{n}"), hex(fl)),
        Field::CtState => ("ct_state".into(), flags_value(&CT_STATE_NAMES, v, m)),
        Field::TunFlags => ("tun_flags".into(), flags_value(&[(1, "oam")], v, m)),
        Field::TunSrc | Field::TunDst | Field::CtNwSrc | Field::CtNwDst | Field::NdTarget => {
            let is6 = fl == Field::NdTarget || v6(v) || v6(m);
            let name = match (fl, is6) {
                (Field::TunSrc, false) => "tun_src",
                (Field::TunSrc, true) => "tun_ipv6_src",
                (Field::TunDst, false) => "tun_dst",
                (Field::TunDst, true) => "tun_ipv6_dst",
                (Field::CtNwSrc, false) => "ct_nw_src",
                (Field::CtNwSrc, true) => "ct_ipv6_src",
                (Field::CtNwDst, false) => "ct_nw_dst",
                (Field::CtNwDst, true) => "ct_ipv6_dst",
                _ => "nd_target",
            };
            let l3 = if is6 { L3::V6 } else { L3::V4 };
            let m = if is6 { m } else { m & 0xffff_ffff };
            (name.into(), ip_value(l3, v, m))
        }
        _ => {
            let (name, text) = match fl {
                Field::Metadata => ("metadata", hex(fl)),
                Field::TunId => ("tun_id", hex(fl)),
                Field::CtZone => ("ct_zone", dec(fl)),
                Field::CtMark => ("ct_mark", hex(fl)),
                Field::CtLabel => ("ct_label", hex(fl)),
                Field::CtNwProto => ("ct_nw_proto", dec(fl)),
                Field::CtTpSrc => ("ct_tp_src", dec(fl)),
                Field::CtTpDst => ("ct_tp_dst", dec(fl)),
                Field::PktMark => ("pkt_mark", hex(fl)),
                Field::RecircId => ("recirc_id", hex(fl)),
                Field::DpHash => ("dp_hash", hex(fl)),
                Field::ConjId => ("conj_id", dec(fl)),
                Field::Ipv6Label => ("ipv6_label", hex(fl)),
                Field::MplsLabel => ("mpls_label", dec(fl)),
                Field::MplsTc => ("mpls_tc", dec(fl)),
                Field::MplsBos => ("mpls_bos", dec(fl)),
                Field::MplsTtl => ("mpls_ttl", dec(fl)),
                Field::NdReserved => ("nd_reserved", hex(fl)),
                Field::NdOptionsType => ("nd_options_type", dec(fl)),
                _ => ("", String::new()),
            };
            (name.into(), text)
        }
    }
}

fn frag_name(v: u8) -> &'static str {
    match v & 3 {
        0 => "no",
        1 => "first",
        3 => "later",
        _ => "later",
    }
}

impl fmt::Display for MatchFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.key;
        let l3 = l3_of(k);
        let has_l4 = matches!(l3, L3::V4 | L3::V6) && k.nw_frag() & 2 == 0;
        let mask_of = |fl: Field| -> u128 {
            match self.mask {
                Some(m) => m.get(fl),
                None => {
                    let applies = match fl {
                        Field::InPort | Field::DlSrc | Field::DlDst | Field::DlType => true,
                        Field::VlanTci => k.has_vlan(),
                        Field::NwSrc | Field::NwDst | Field::NwProto => l3 != L3::Other,
                        Field::NwTos | Field::NwTtl | Field::NwFrag => {
                            matches!(l3, L3::V4 | L3::V6)
                        }
                        Field::TpSrc | Field::TpDst => {
                            has_l4 && matches!(k.nw_proto(), 1 | 6 | 17 | 58)
                        }
                        Field::TcpFlags => has_l4 && k.nw_proto() == 6,
                        Field::ArpSha | Field::ArpTha => l3 == L3::Arp || is_nd(k),
                        Field::NdTarget => is_nd(k),
                        Field::Ipv6Label => l3 == L3::V6,
                        Field::MplsLabel | Field::MplsTc | Field::MplsBos | Field::MplsTtl => {
                            is_mpls(k)
                        }
                        // Metadata, tunnel and conntrack fields: shown
                        // when set, as OVS's `flow_format` does.
                        _ => k.get(fl) != 0,
                    };
                    if applies {
                        fl.all_ones()
                    } else {
                        0
                    }
                }
            }
        };
        let mut out = String::new();
        let mut put = |name: &str, val: String| {
            if !out.is_empty() {
                out.push(',');
            }
            let _ = write!(out, "{name}={val}");
        };
        let icmp = matches!(k.nw_proto(), 1 | 58);
        for fl in Field::ALL {
            let m = mask_of(fl);
            if m == 0 {
                continue;
            }
            let v = k.get(fl) & m;
            match fl {
                Field::InPort => put("in_port", int_value(fl, v, m, false)),
                Field::DlSrc => put("dl_src", mac_value(v, m)),
                Field::DlDst => put("dl_dst", mac_value(v, m)),
                Field::VlanTci => {
                    let (v, m) = (v as u16, m as u16);
                    if m == 0xffff || m == VLAN_CFI | VLAN_VID_MASK {
                        if v & VLAN_CFI == 0 {
                            put("vlan_tci", "0x0000".into());
                        } else {
                            put("dl_vlan", (v & VLAN_VID_MASK).to_string());
                            if m & VLAN_PCP_MASK != 0 {
                                put("dl_vlan_pcp", (v >> 13).to_string());
                            }
                        }
                    } else {
                        put("vlan_tci", format!("{v:#06x}/{m:#06x}"));
                    }
                }
                Field::DlType => put("dl_type", format!("{:#06x}", v)),
                Field::NwSrc | Field::NwDst => {
                    let name = match (l3, fl) {
                        (L3::V6, Field::NwSrc) => "ipv6_src",
                        (L3::V6, _) => "ipv6_dst",
                        (L3::Arp, Field::NwSrc) => "arp_spa",
                        (L3::Arp, _) => "arp_tpa",
                        (_, Field::NwSrc) => "nw_src",
                        _ => "nw_dst",
                    };
                    let m = if l3 == L3::V6 { m } else { m & 0xffff_ffff };
                    put(name, ip_value(l3, v, m));
                }
                Field::NwProto => {
                    let name = if l3 == L3::Arp { "arp_op" } else { "nw_proto" };
                    put(name, int_value(fl, v, m, false));
                }
                Field::NwTos => {
                    if m & 0xfc != 0 {
                        put("nw_tos", (v & 0xfc).to_string());
                    }
                    if m & 3 != 0 {
                        put("nw_ecn", (v & 3).to_string());
                    }
                }
                Field::NwTtl => put("nw_ttl", int_value(fl, v, m, false)),
                Field::NwFrag => put("nw_frag", frag_name(v as u8).into()),
                Field::TpSrc => put(
                    if icmp { "icmp_type" } else { "tp_src" },
                    int_value(fl, v, m, false),
                ),
                Field::TpDst => put(
                    if icmp { "icmp_code" } else { "tp_dst" },
                    int_value(fl, v, m, false),
                ),
                Field::TcpFlags => {
                    let m12 = m & 0xfff;
                    if m12 == 0xfff || self.mask.is_none() {
                        put("tcp_flags", format!("{:#05x}", v & 0xfff));
                    } else {
                        put("tcp_flags", format!("{:#05x}/{:#05x}", v & 0xfff, m12));
                    }
                }
                Field::ArpSha | Field::ArpTha => {
                    let name = match (fl, is_nd(k)) {
                        (Field::ArpSha, false) => "arp_sha",
                        (Field::ArpSha, true) => "nd_sll",
                        (_, false) => "arp_tha",
                        (_, true) => "nd_tll",
                    };
                    put(name, mac_value(v, m));
                }
                // The inner tag, when there is one, as OVS `flow_format`
                // (`dl_vlan1`, `dl_vlan_pcp1`); its absence is not shown
                // (OVS's datapath keys carry it as a missing `encap`).
                Field::Vlan2Tci => {
                    let v = v as u16;
                    if v & VLAN_CFI != 0 {
                        put("dl_vlan1", (v & VLAN_VID_MASK).to_string());
                        if m as u16 & VLAN_PCP_MASK != 0 {
                            put("dl_vlan_pcp1", (v >> 13).to_string());
                        }
                    }
                }
                // OVS `flow_format` shows no TPID.
                Field::VlanTpid | Field::Vlan2Tpid => {}
                _ => {
                    let (name, val) = named_value(fl, v, m);
                    put(&name, val);
                }
            }
        }
        f.write_str(&out)
    }
}

impl fmt::Display for DpctlFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.key;
        let m = self.mask;
        let l3 = l3_of(k);
        let mut parts: Vec<String> = Vec::new();
        let sub = |fields: &[(Field, &str)], conv: &dyn Fn(Field, u128, u128) -> String| {
            let mut s = String::new();
            for (fl, name) in fields {
                let mm = m.get(*fl);
                if mm == 0 && !self.verbose {
                    continue;
                }
                if !s.is_empty() {
                    s.push(',');
                }
                let _ = write!(s, "{name}={}", conv(*fl, k.get(*fl) & mm, mm));
            }
            s
        };
        // C's `%#x`, as OVS `format_odp_key_attr` prints these: `0` for
        // zero (`recirc_id(0)`), else `0x..`.
        let chex = |v: u128| {
            if v == 0 {
                "0".to_owned()
            } else {
                format!("{v:#x}")
            }
        };
        let hexpart = |fl: Field| {
            let mm = m.get(fl);
            let v = k.get(fl) & mm;
            if mm == fl.all_ones() {
                chex(v)
            } else {
                format!("{}/{}", chex(v), chex(mm))
            }
        };
        for (fl, name) in [(Field::RecircId, "recirc_id"), (Field::DpHash, "dp_hash")] {
            if m.get(fl) != 0 {
                parts.push(format!("{name}({})", hexpart(fl)));
            }
        }
        let tun = sub(
            &[
                (Field::TunId, "tun_id"),
                (Field::TunSrc, "src"),
                (Field::TunDst, "dst"),
                (Field::TunFlags, "flags"),
            ],
            &|fl, v, mm| match fl {
                Field::TunSrc | Field::TunDst => named_value(fl, v, mm).1,
                _ => format!("{v:#x}"),
            },
        );
        if m.get(Field::TunId) | m.get(Field::TunSrc) | m.get(Field::TunDst) != 0 {
            parts.push(format!("tunnel({tun})"));
        }
        // OVS's order: recirc_id, dp_hash, tunnel, in_port, skb_mark, ct_*.
        if m.get(Field::InPort) != 0 || self.verbose {
            parts.push(format!("in_port({})", k.in_port()));
        }
        if m.get(Field::PktMark) != 0 {
            parts.push(format!("skb_mark({})", hexpart(Field::PktMark)));
        }
        if m.get(Field::CtState) != 0 {
            let st = flags_value(
                &CT_STATE_NAMES,
                k.get(Field::CtState),
                m.get(Field::CtState),
            );
            parts.push(format!("ct_state({st})"));
        }
        for (fl, name) in [
            (Field::CtZone, "ct_zone"),
            (Field::CtMark, "ct_mark"),
            (Field::CtLabel, "ct_label"),
        ] {
            if m.get(fl) != 0 {
                parts.push(format!("{name}({})", hexpart(fl)));
            }
        }
        // The connection's original tuple (OVS `ct_tuple4(...)` /
        // `ct_tuple6(...)`, what `resubmit(,,ct)` looks up).
        let tuple = sub(
            &[
                (Field::CtNwSrc, "src"),
                (Field::CtNwDst, "dst"),
                (Field::CtNwProto, "proto"),
                (Field::CtTpSrc, "tp_src"),
                (Field::CtTpDst, "tp_dst"),
            ],
            &|fl, v, mm| match fl {
                Field::CtNwSrc | Field::CtNwDst => named_value(fl, v, mm).1,
                _ if mm == fl.all_ones() => v.to_string(),
                _ => format!("{v}/{mm:#x}"),
            },
        );
        let tuple_mask = [
            Field::CtNwSrc,
            Field::CtNwDst,
            Field::CtNwProto,
            Field::CtTpSrc,
            Field::CtTpDst,
        ]
        .iter()
        .any(|f| m.get(*f) != 0);
        if tuple_mask {
            let v = if k.dl_type() == 0x86dd { 6 } else { 4 };
            parts.push(format!("ct_tuple{v}({tuple})"));
        }
        let eth = sub(
            &[(Field::DlSrc, "src"), (Field::DlDst, "dst")],
            &|_, v, mm| mac_value(v, mm),
        );
        if !eth.is_empty() {
            parts.push(format!("eth({eth})"));
        }
        // A tag's TPID only when not 0x8100, as OVS `format_odp_action`
        // shows `push_vlan(tpid=..)`.
        let vlan = |tci: u16, tpid: Field| {
            let tpid = match k.get(tpid) as u16 {
                0 | 0x8100 => String::new(),
                t => format!("tpid={t:#06x},"),
            };
            format!(
                "vlan({tpid}vid={},pcp={})",
                tci & VLAN_VID_MASK,
                (tci & VLAN_PCP_MASK) >> 13
            )
        };
        let vm = m.get(Field::VlanTci) as u16;
        if vm != 0 && k.has_vlan() {
            parts.push(vlan(k.vlan_tci(), Field::VlanTpid));
            let inner = k.get(Field::Vlan2Tci) as u16;
            if m.get(Field::Vlan2Tci) != 0 && inner & VLAN_CFI != 0 {
                parts.push(vlan(inner, Field::Vlan2Tpid));
            }
        }
        if m.get(Field::DlType) != 0 || self.verbose {
            parts.push(format!("eth_type({:#06x})", k.dl_type()));
        }
        let num = |fl: Field, v: u128, mm: u128| int_value(fl, v, mm, false);
        if is_mpls(k) {
            let s = sub(
                &[
                    (Field::MplsLabel, "label"),
                    (Field::MplsTc, "tc"),
                    (Field::MplsTtl, "ttl"),
                    (Field::MplsBos, "bos"),
                ],
                &num,
            );
            if !s.is_empty() {
                parts.push(format!("mpls({s})"));
            }
        }
        match l3 {
            L3::V4 | L3::V6 => {
                let s = sub(
                    &[
                        (Field::NwSrc, "src"),
                        (Field::NwDst, "dst"),
                        (Field::Ipv6Label, "label"),
                        (Field::NwProto, "proto"),
                        (Field::NwTos, if l3 == L3::V4 { "tos" } else { "tclass" }),
                        (Field::NwTtl, if l3 == L3::V4 { "ttl" } else { "hlimit" }),
                        (Field::NwFrag, "frag"),
                    ],
                    &|fl, v, mm| match fl {
                        Field::NwSrc | Field::NwDst => {
                            let mm = if l3 == L3::V6 { mm } else { mm & 0xffff_ffff };
                            ip_value(l3, v, mm)
                        }
                        Field::NwFrag => frag_name(v as u8).into(),
                        Field::NwTos => format!("{v:#x}"),
                        _ => num(fl, v, mm),
                    },
                );
                if !s.is_empty() {
                    let name = if l3 == L3::V4 { "ipv4" } else { "ipv6" };
                    parts.push(format!("{name}({s})"));
                }
                let l4name = match (l3, k.nw_proto()) {
                    (_, 6) => Some(("tcp", "src", "dst")),
                    (_, 17) => Some(("udp", "src", "dst")),
                    (_, 132) => Some(("sctp", "src", "dst")),
                    (L3::V4, 1) => Some(("icmp", "type", "code")),
                    (L3::V6, 58) => Some(("icmpv6", "type", "code")),
                    _ => None,
                };
                if let Some((name, a, b)) = l4name {
                    let s = sub(&[(Field::TpSrc, a), (Field::TpDst, b)], &num);
                    if !s.is_empty() {
                        parts.push(format!("{name}({s})"));
                    }
                }
                if is_nd(k) {
                    let s = sub(
                        &[
                            (Field::NdTarget, "target"),
                            (Field::ArpSha, "sll"),
                            (Field::ArpTha, "tll"),
                        ],
                        &|fl, v, mm| match fl {
                            Field::NdTarget => ip_value(L3::V6, v, mm),
                            _ => mac_value(v, mm),
                        },
                    );
                    if !s.is_empty() {
                        parts.push(format!("nd({s})"));
                    }
                }
                let tf = m.get(Field::TcpFlags) & 0xfff;
                if tf != 0 {
                    let v = k.get(Field::TcpFlags) & tf;
                    if tf == 0xfff {
                        parts.push(format!("tcp_flags({v:#05x})"));
                    } else {
                        parts.push(format!("tcp_flags({v:#05x}/{tf:#05x})"));
                    }
                }
            }
            L3::Arp => {
                let s = sub(
                    &[
                        (Field::NwSrc, "sip"),
                        (Field::NwDst, "tip"),
                        (Field::NwProto, "op"),
                        (Field::ArpSha, "sha"),
                        (Field::ArpTha, "tha"),
                    ],
                    &|fl, v, mm| match fl {
                        Field::NwProto => num(fl, v, mm),
                        Field::ArpSha | Field::ArpTha => mac_value(v, mm),
                        _ => ip_value(L3::V4, v, mm & 0xffff_ffff),
                    },
                );
                if !s.is_empty() {
                    parts.push(format!("arp({s})"));
                }
            }
            L3::Other => {}
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::MacAddr;

    fn key() -> FlowKey {
        let mut k = FlowKey::default();
        k.set_in_port(1);
        k.set_dl_src(MacAddr([2, 0, 0, 0, 0, 1]));
        k.set_dl_dst(MacAddr([2, 0, 0, 0, 0, 2]));
        k.set_dl_type(0x0800);
        k.set_nw_src_v4(Ipv4Addr::new(10, 0, 0, 1));
        k.set_nw_dst_v4(Ipv4Addr::new(10, 0, 0, 2));
        k.set_nw_proto(17);
        k.set_nw_ttl(64);
        k.set_tp_src(53);
        k.set_tp_dst(99);
        k
    }

    #[test]
    fn masked_ofctl() {
        let k = key();
        let mut m = FlowMask::default();
        m.set_exact(Field::InPort)
            .set_exact(Field::DlDst)
            .set_exact(Field::VlanTci);
        m.set(Field::NwSrc, 0xffff_ff00);
        assert_eq!(
            k.display_masked(&m).to_string(),
            "in_port=1,vlan_tci=0x0000,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.0/24"
        );
    }

    #[test]
    fn dpctl() {
        let k = key();
        let mut m = FlowMask::default();
        m.set_exact(Field::InPort)
            .set_exact(Field::DlSrc)
            .set_exact(Field::DlDst)
            .set_exact(Field::DlType)
            .set_exact(Field::NwFrag)
            .set_exact(Field::TpDst);
        assert_eq!(
            k.dpctl(&m).to_string(),
            "in_port(1),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),\
             ipv4(frag=no),udp(dst=99)"
        );
        let mut kv = k;
        kv.set_vlan_tci(0x1000 | 10);
        m.set_exact(Field::VlanTci);
        assert!(kv.dpctl(&m).to_string().contains("vlan(vid=10,pcp=0)"));
    }

    #[test]
    fn dpctl_verbose_shows_wildcards() {
        let k = key();
        let mut m = FlowMask::default();
        m.set_exact(Field::InPort).set_exact(Field::DlDst);
        let v = k.dpctl_verbose(&m).to_string();
        assert!(v.starts_with("in_port(1),eth(src="), "{v}");
        assert!(v.contains("dst=02:00:00:00:00:02"), "{v}");
        assert!(v.contains("eth_type(0x0800)"), "{v}");
        // Wildcarded fields are shown with a zero mask.
        assert!(v.contains("/0"), "{v}");
        assert!(v.contains("udp(src="), "{v}");
        assert_eq!(
            k.dpctl(&m).to_string(),
            "in_port(1),eth(dst=02:00:00:00:00:02)"
        );
    }
}
