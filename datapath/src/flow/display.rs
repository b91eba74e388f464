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
        0x0806 => L3::Arp,
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
        if m.get(Field::InPort) != 0 || self.verbose {
            parts.push(format!("in_port({})", k.in_port()));
        }
        let eth = sub(
            &[(Field::DlSrc, "src"), (Field::DlDst, "dst")],
            &|_, v, mm| mac_value(v, mm),
        );
        if !eth.is_empty() {
            parts.push(format!("eth({eth})"));
        }
        let vm = m.get(Field::VlanTci) as u16;
        if vm != 0 && k.has_vlan() {
            let tci = k.vlan_tci();
            parts.push(format!(
                "vlan(vid={},pcp={})",
                tci & VLAN_VID_MASK,
                (tci & VLAN_PCP_MASK) >> 13
            ));
        }
        if m.get(Field::DlType) != 0 || self.verbose {
            parts.push(format!("eth_type({:#06x})", k.dl_type()));
        }
        let num = |fl: Field, v: u128, mm: u128| int_value(fl, v, mm, false);
        match l3 {
            L3::V4 | L3::V6 => {
                let s = sub(
                    &[
                        (Field::NwSrc, "src"),
                        (Field::NwDst, "dst"),
                        (Field::NwProto, "proto"),
                        (Field::NwTos, "tos"),
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
                    ],
                    &|fl, v, mm| match fl {
                        Field::NwProto => num(fl, v, mm),
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
