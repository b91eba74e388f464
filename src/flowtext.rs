//! The `ovs-ofctl` flow syntax for matches (ovs-fields(7)), as
//! `ovs-appctl ofproto/trace BRIDGE FLOW` takes it: `in_port=1,icmp,
//! dl_src=50:54:00:00:00:01,nw_dst=10.0.0.2`. Masks use `/`
//! (`nw_src=10.0.0.0/24`, `dl_dst=01:00:00:00:00:00/01:00:00:00:00:00`,
//! `tp_dst=0x50/0xfff0`).

use std::net::{Ipv4Addr, Ipv6Addr};

use xennet_openflow::model::{Match, OxmField};

/// Parse a match. Prerequisites are added for shorthand protocols
/// (`tcp` = `dl_type=0x0800,nw_proto=6`) but not checked otherwise, as
/// ofproto/trace accepts any flow.
///
/// # Errors
/// A message naming the bad field or value.
pub fn parse_match(s: &str) -> Result<Match, String> {
    let mut m = Match::CATCHALL;
    fn set_in(m: &mut Match, f: OxmField, v: u128, mask: u128) -> Result<(), String> {
        m.set_field(f, v, mask)
            .map_err(|e| format!("{f:?}: value out of range ({e})"))
    }
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (item, None),
        };
        let shorthand = |et: u16, proto: Option<u8>| -> Vec<(OxmField, u128)> {
            let mut v = vec![(OxmField::EthType, u128::from(et))];
            if let Some(p) = proto {
                v.push((OxmField::IpProto, u128::from(p)));
            }
            v
        };
        let protos = match k {
            "ip" => Some(shorthand(0x0800, None)),
            "ipv6" => Some(shorthand(0x86dd, None)),
            "arp" => Some(shorthand(0x0806, None)),
            "icmp" => Some(shorthand(0x0800, Some(1))),
            "tcp" => Some(shorthand(0x0800, Some(6))),
            "udp" => Some(shorthand(0x0800, Some(17))),
            "sctp" => Some(shorthand(0x0800, Some(132))),
            "icmp6" => Some(shorthand(0x86dd, Some(58))),
            "tcp6" => Some(shorthand(0x86dd, Some(6))),
            "udp6" => Some(shorthand(0x86dd, Some(17))),
            _ => None,
        };
        if let Some(fields) = protos {
            if v.is_some() {
                return Err(format!("{k} takes no value"));
            }
            for (f, val) in fields {
                set_in(&mut m, f, val, ones(f))?;
            }
            continue;
        }
        let v = v.ok_or_else(|| format!("{k}: missing value"))?;
        let (val, mask) = match v.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (v, None),
        };
        let field = match k {
            "in_port" => OxmField::InPort,
            "dl_src" | "eth_src" => OxmField::EthSrc,
            "dl_dst" | "eth_dst" => OxmField::EthDst,
            "dl_type" | "eth_type" => OxmField::EthType,
            "nw_proto" | "ip_proto" => OxmField::IpProto,
            "nw_ttl" => OxmField::IpTtl,
            "ip_dscp" => OxmField::IpDscp,
            "nw_ecn" | "ip_ecn" => OxmField::IpEcn,
            "nw_src" | "ip_src" => OxmField::Ipv4Src,
            "nw_dst" | "ip_dst" => OxmField::Ipv4Dst,
            "arp_spa" => OxmField::ArpSpa,
            "arp_tpa" => OxmField::ArpTpa,
            "arp_op" => OxmField::ArpOp,
            "ipv6_src" => OxmField::Ipv6Src,
            "ipv6_dst" => OxmField::Ipv6Dst,
            "tp_src" | "tcp_src" | "udp_src" | "sctp_src" => OxmField::TcpSrc,
            "tp_dst" | "tcp_dst" | "udp_dst" | "sctp_dst" => OxmField::TcpDst,
            "icmp_type" | "icmpv6_type" => OxmField::Icmpv4Type,
            "icmp_code" | "icmpv6_code" => OxmField::Icmpv4Code,
            "tcp_flags" => OxmField::TcpFlags,
            "metadata" => OxmField::Metadata,
            "nw_tos" => {
                // nw_tos is the DSCP bits in place (ovs-fields(7)).
                let t = parse_num(val, 8)?;
                set_in(&mut m, OxmField::IpDscp, t >> 2, 0x3f)?;
                continue;
            }
            "dl_vlan" => {
                let vid = parse_num(val, 16)?;
                if vid == 0xffff {
                    set_in(&mut m, OxmField::VlanVid, 0, 0x1fff)?;
                } else if vid < 0x1000 {
                    set_in(&mut m, OxmField::VlanVid, 0x1000 | vid, 0x1fff)?;
                } else {
                    return Err(format!("dl_vlan={val}: out of range"));
                }
                continue;
            }
            "vlan_vid" => OxmField::VlanVid,
            "dl_vlan_pcp" | "vlan_pcp" => OxmField::VlanPcp,
            "vlan_tci" => {
                let tci = parse_num(val, 16)?;
                let mask = match mask {
                    Some(mk) => parse_num(mk, 16)?,
                    None => 0xffff,
                };
                m.key.set_vlan_tci((tci & mask) as u16);
                m.mask.set(xennet_datapath::flow::Field::VlanTci, mask);
                continue;
            }
            "ct_state" => {
                let (v, mk) = parse_ct_state(val)?;
                set_in(&mut m, OxmField::CtState, v, mk)?;
                continue;
            }
            _ => OxmField::from_name(k).ok_or_else(|| format!("{k}: unknown field"))?,
        };
        let value = parse_value(field, val)?;
        let mask = match mask {
            Some(mk) if is_addr(field) && !mk.contains(['.', ':']) => {
                // Prefix length.
                let bits = field.bits();
                let n: u32 = mk.parse().map_err(|_| format!("{k}: bad prefix {mk}"))?;
                if n > bits {
                    return Err(format!("{k}: prefix /{n} too long"));
                }
                ones(field) & !(ones(field).checked_shr(n).unwrap_or(0))
            }
            Some(mk) => parse_value(field, mk)?,
            None => ones(field),
        };
        set_in(&mut m, field, value & mask, mask)?;
    }
    Ok(m)
}

fn is_addr(f: OxmField) -> bool {
    is_ipv4(f) || is_ipv6(f)
}

fn is_ipv4(f: OxmField) -> bool {
    use OxmField::*;
    matches!(
        f,
        Ipv4Src | Ipv4Dst | ArpSpa | ArpTpa | TunIpv4Src | TunIpv4Dst | CtNwSrc | CtNwDst
    )
}

fn is_ipv6(f: OxmField) -> bool {
    use OxmField::*;
    matches!(
        f,
        Ipv6Src | Ipv6Dst | NdTarget | TunIpv6Src | TunIpv6Dst | CtIpv6Src | CtIpv6Dst
    )
}

fn is_mac(f: OxmField) -> bool {
    use OxmField::*;
    matches!(f, EthSrc | EthDst | ArpSha | ArpTha | NdSll | NdTll)
}

/// `ct_state` as masked flags (`+trk+est-inv`, ovs-fields(7)), as exact
/// flags (`new|trk`, as OVS's flow format prints them; the bits not
/// named are 0), or a number.
fn parse_ct_state(s: &str) -> Result<(u128, u128), String> {
    if s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let mut v = 0u128;
        for name in s.split('|') {
            let bit = xennet_datapath::flow::CT_STATE_NAMES
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(b, _)| u128::from(*b))
                .ok_or_else(|| format!("ct_state: unknown flag {name}"))?;
            v |= bit;
        }
        return Ok((v, 0xff));
    }
    if !s.starts_with(['+', '-']) {
        let (v, m) = match s.split_once('/') {
            Some((v, m)) => (parse_num(v, 32)?, parse_num(m, 32)?),
            None => (parse_num(s, 32)?, 0xffff_ffff),
        };
        return Ok((v & m, m));
    }
    let (mut v, mut m) = (0u128, 0u128);
    let mut rest = s;
    while let Some(sign) = rest.chars().next() {
        let body = &rest[1..];
        let end = body.find(['+', '-']).unwrap_or(body.len());
        let name = &body[..end];
        let bit = xennet_datapath::flow::CT_STATE_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(b, _)| u128::from(*b))
            .ok_or_else(|| format!("ct_state: unknown flag {name}"))?;
        m |= bit;
        if sign == '+' {
            v |= bit;
        }
        rest = &body[end..];
    }
    Ok((v, m))
}

fn ones(f: OxmField) -> u128 {
    let b = f.bits();
    if b >= 128 {
        u128::MAX
    } else {
        (1u128 << b) - 1
    }
}

fn parse_num(s: &str, bits: u32) -> Result<u128, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u128::from_str_radix(h, 16),
        None => s.parse::<u128>(),
    }
    .map_err(|_| format!("{s}: not a number"))?;
    if bits < 128 && v >> bits != 0 {
        return Err(format!("{s}: more than {bits} bits"));
    }
    Ok(v)
}

fn parse_value(f: OxmField, s: &str) -> Result<u128, String> {
    match f {
        _ if is_mac(f) => {
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() != 6 {
                return Err(format!("{s}: not a MAC address"));
            }
            let mut v = 0u128;
            for p in parts {
                let b = u8::from_str_radix(p, 16).map_err(|_| format!("{s}: not a MAC address"))?;
                v = (v << 8) | u128::from(b);
            }
            Ok(v)
        }
        _ if is_ipv4(f) => s
            .parse::<Ipv4Addr>()
            .map(|a| u128::from(u32::from(a)))
            .map_err(|_| format!("{s}: not an IPv4 address")),
        _ if is_ipv6(f) => s
            .parse::<Ipv6Addr>()
            .map(u128::from)
            .map_err(|_| format!("{s}: not an IPv6 address")),
        OxmField::InPort if s == "LOCAL" => Ok(0xffff_fffe),
        _ => parse_num(s, f.bits()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_trace_examples() {
        let m = parse_match(
            "in_port=1,icmp,dl_src=50:54:00:00:00:01,dl_dst=50:54:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2",
        )
        .unwrap();
        assert_eq!(m.key.in_port(), 1);
        assert_eq!(m.key.dl_type(), 0x0800);
        assert_eq!(m.key.nw_proto(), 1);
        assert_eq!(m.key.dl_src().to_string(), "50:54:00:00:00:01");
        assert_eq!(m.key.nw_dst_v4(), Ipv4Addr::new(10, 0, 0, 2));
        let m = parse_match("ip,nw_src=10.1.0.0/16,tp_dst=0x50/0xfff0,dl_vlan=10").unwrap();
        assert_eq!(m.field(OxmField::Ipv4Src), (0x0a01_0000, 0xffff_0000));
        assert_eq!(m.field(OxmField::TcpDst), (0x50, 0xfff0));
        assert_eq!(m.key.vlan_tci(), 0x100a);
        assert!(parse_match("nw_src=10.0.0.300").is_err());
        assert!(parse_match("bogus=1").is_err());
        assert!(parse_match("nw_src=10.0.0.0/33").is_err());
        assert!(parse_match("dl_vlan=5000").is_err());
    }

    #[test]
    fn parses_registers_conntrack_and_nd() {
        let m = parse_match("reg0=0x5,reg15=7/0xf,ct_state=+trk-inv,arp,arp_sha=02:00:00:00:00:01")
            .unwrap();
        assert_eq!(m.field(OxmField::Reg(0)), (5, 0xffff_ffff));
        assert_eq!(m.field(OxmField::Reg(15)), (7, 0xf));
        assert_eq!(m.field(OxmField::CtState), (0x20, 0x30));
        assert_eq!(
            m.field(OxmField::ArpSha),
            (0x0200_0000_0001, 0xffff_ffff_ffff)
        );
        let m = parse_match("icmp6,icmp_type=135,nd_target=fe80::1").unwrap();
        assert_eq!(
            m.field(OxmField::NdTarget).0,
            u128::from(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))
        );
        assert!(parse_match("ct_state=+bogus").is_err());
    }

    /// A recirculated packet as `ofproto/trace` takes it (OVS's trace
    /// syntax: `recirc_id`, the tracker's verdict, zone, mark, label).
    #[test]
    fn parses_recirculation_and_conntrack_metadata() {
        let m = parse_match(
            "recirc_id=0x1,ct_state=new|trk,ct_zone=5,ct_mark=0x3,ct_label=0x10,ip,in_port=1",
        );
        // Exact flags, as OVS prints them.
        assert_eq!(m.unwrap().field(OxmField::CtState), (0x21, 0xff));
        assert!(parse_match("ct_state=new|bogus").is_err());
        let m = parse_match(
            "recirc_id=0x1,ct_state=+new+trk,ct_zone=5,ct_mark=0x3,ct_label=0x10,ip,in_port=1",
        )
        .unwrap();
        assert_eq!(m.field(OxmField::RecircId), (1, 0xffff_ffff));
        assert_eq!(m.field(OxmField::CtState), (0x21, 0x21));
        assert_eq!(m.field(OxmField::CtZone), (5, 0xffff));
        assert_eq!(m.field(OxmField::CtMark), (3, 0xffff_ffff));
        assert_eq!(m.field(OxmField::CtLabel), (0x10, u128::MAX));
    }
}
