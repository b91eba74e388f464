//! Control frames for the guest-RX backlog: which frames go to the small
//! priority backlog, delivered ahead of bulk traffic and dropped last
//! when the guest's RX ring is full (see `rx.rs`).
//!
//! A frame is control traffic when it is, after at most two VLAN tags
//! (802.1Q `0x8100`, 802.1ad `0x88a8`):
//!
//! - ARP (EtherType `0x0806`, RFC 826);
//! - IPv4 ICMP (protocol 1, RFC 792), or an unfragmented (or first
//!   fragment) IPv4 UDP datagram to port 67 or 68 (DHCP, RFC 2131);
//! - IPv6 ICMPv6 (next header 58, RFC 4443: echo, errors, and Neighbor
//!   Discovery types 133-137 of RFC 4861), after at most four hop-by-hop,
//!   routing or destination-options headers (RFC 8200 §4), or IPv6 UDP to
//!   port 546 or 547 (DHCPv6, RFC 8415).
//!
//! Classification reads at most a few header bytes at fixed or
//! length-given offsets and never fails: a short or odd frame is bulk.
//! It runs only for frames that join a backlog (the ring was full).

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 extension headers skipped: hop-by-hop, routing, destination
/// options (each `(next, hdr ext len in 8-octet units - 1)`).
const IPV6_EXT: [u8; 3] = [0, 43, 60];

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

fn is_dhcp_port(port: u16, v6: bool) -> bool {
    if v6 {
        port == 546 || port == 547
    } else {
        port == 67 || port == 68
    }
}

/// Whether `frame` (an Ethernet frame) is control traffic as the module
/// documentation defines it.
pub fn is_control(frame: &[u8]) -> bool {
    classify(frame).unwrap_or(false)
}

fn classify(f: &[u8]) -> Option<bool> {
    let mut off = 12;
    let mut ty = be16(f, off)?;
    for _ in 0..2 {
        if ty != ETH_P_8021Q && ty != ETH_P_8021AD {
            break;
        }
        off += 4;
        ty = be16(f, off)?;
    }
    let l3 = off + 2;
    match ty {
        ETH_P_ARP => Some(true),
        ETH_P_IP => {
            let vihl = *f.get(l3)?;
            if vihl >> 4 != 4 {
                return Some(false);
            }
            let ihl = usize::from(vihl & 0x0f) * 4;
            let proto = *f.get(l3 + 9)?;
            match proto {
                IPPROTO_ICMP => Some(true),
                IPPROTO_UDP => {
                    // Later fragments carry no UDP header.
                    if be16(f, l3 + 6)? & 0x1fff != 0 || ihl < 20 {
                        return Some(false);
                    }
                    Some(is_dhcp_port(be16(f, l3 + ihl + 2)?, false))
                }
                _ => Some(false),
            }
        }
        ETH_P_IPV6 => {
            if *f.get(l3)? >> 4 != 6 {
                return Some(false);
            }
            let mut next = *f.get(l3 + 6)?;
            let mut at = l3 + 40;
            for _ in 0..4 {
                if !IPV6_EXT.contains(&next) {
                    break;
                }
                let len = (usize::from(*f.get(at + 1)?) + 1) * 8;
                next = *f.get(at)?;
                at += len;
            }
            match next {
                IPPROTO_ICMPV6 => Some(true),
                IPPROTO_UDP => Some(is_dhcp_port(be16(f, at + 2)?, true)),
                _ => Some(false),
            }
        }
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0];
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        h.extend_from_slice(l4);
        h
    }

    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        h.extend_from_slice(&[0; 32]);
        h.extend_from_slice(rest);
        h
    }

    fn udp(dport: u16) -> Vec<u8> {
        let mut u = 1000u16.to_be_bytes().to_vec();
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    }

    #[test]
    fn control_frames() {
        assert!(is_control(&eth(ETH_P_ARP, &[0; 28])));
        assert!(is_control(&eth(ETH_P_IP, &ipv4(1, 0, &[8, 0, 0, 0]))));
        assert!(is_control(&eth(ETH_P_IP, &ipv4(17, 0x4000, &udp(67)))));
        assert!(is_control(&eth(ETH_P_IP, &ipv4(17, 0, &udp(68)))));
        assert!(is_control(&eth(ETH_P_IPV6, &ipv6(58, &[135, 0]))));
        assert!(is_control(&eth(ETH_P_IPV6, &ipv6(17, &udp(547)))));
        // ICMPv6 (MLD) after a hop-by-hop header.
        let mut hbh = vec![58, 0, 5, 2, 0, 0, 1, 0];
        hbh.extend_from_slice(&[143, 0]);
        assert!(is_control(&eth(ETH_P_IPV6, &ipv6(0, &hbh))));
        // ARP in a VLAN, and in two.
        let mut tagged = 0x0064u16.to_be_bytes().to_vec();
        tagged.extend_from_slice(&ETH_P_ARP.to_be_bytes());
        tagged.extend_from_slice(&[0; 28]);
        assert!(is_control(&eth(ETH_P_8021Q, &tagged)));
        let mut qinq = 0x0010u16.to_be_bytes().to_vec();
        qinq.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        qinq.extend_from_slice(&tagged);
        assert!(is_control(&eth(ETH_P_8021AD, &qinq)));
    }

    #[test]
    fn bulk_and_odd_frames() {
        assert!(!is_control(&eth(ETH_P_IP, &ipv4(6, 0, &[0; 20]))));
        assert!(!is_control(&eth(ETH_P_IP, &ipv4(17, 0, &udp(5201)))));
        // A later fragment's payload is not a UDP header.
        assert!(!is_control(&eth(ETH_P_IP, &ipv4(17, 0x0001, &udp(67)))));
        assert!(!is_control(&eth(ETH_P_IPV6, &ipv6(6, &[0; 20]))));
        assert!(!is_control(&eth(ETH_P_IPV6, &ipv6(17, &udp(53)))));
        assert!(!is_control(&eth(0x88b5, &[0; 46])));
        // Truncated or malformed: bulk, no panic.
        for n in 0..60 {
            let f = eth(ETH_P_IP, &ipv4(17, 0, &udp(67)));
            let _ = is_control(f.get(..n).unwrap_or(&f));
            let f = eth(ETH_P_IPV6, &ipv6(0, &[58, 255]));
            let _ = is_control(f.get(..n).unwrap_or(&f));
        }
        assert!(!is_control(&eth(ETH_P_IP, &[0x65; 30])));
        assert!(!is_control(&[]));
    }
}
