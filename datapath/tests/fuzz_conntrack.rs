//! Fuzz target for the connection tracker (see the `xennet-fuzz` crate
//! for how it runs and how to run it longer:
//! `XENNET_FUZZ_SECS=600 cargo test -p xennet-datapath --test fuzz_conntrack -- --nocapture`).
//!
//! Each input is one frame. It goes through a tracker committing with
//! source NAT, again with a bare `nat`, and through a second tracker with
//! destination NAT and a port range; then the frame with its addresses
//! and ports swapped comes back (the reply direction). Nothing may panic,
//! the state bits must be a combination the tracker produces, and a
//! frame whose IPv4 header and TCP/UDP checksums were right must still
//! have them right after NAT rewrote it.
//!
//! Seeds (`fuzz-corpus/conntrack`): IPv4 UDP, TCP SYN with window scale,
//! TCP data, VLAN-tagged TCP, IPv4 options, ICMP echo, ICMP
//! port-unreachable quoting UDP, first and later IPv4 fragments, IPv6 UDP
//! after a destination-options header, ICMPv6 unreachable, an IPv6 first
//! fragment.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use xennet_datapath::conntrack::{cs, Conntrack, CtArgs, NatArgs, NatKind};
use xennet_datapath::packet::ethernet::l3_offset;
use xennet_datapath::{csum, Packet};
use xennet_fuzz::{corpus_dir, run, Kind};

fn consistent(s: u32) -> bool {
    if s & cs::TRK == 0 {
        return false;
    }
    let s = s & !(cs::TRK | cs::SNAT | cs::DNAT);
    matches!(s, cs::NEW | cs::EST | 0x0a | cs::INV | cs::REL | 0x0c)
}

/// IPv4 header checksum right (true for non-IPv4).
fn ip_ok(d: &[u8]) -> bool {
    match l3_offset(d) {
        Some((ty, l3)) if u16::from(ty) == 0x0800 => {
            let Some(&vihl) = d.get(l3) else { return false };
            let ihl = usize::from(vihl & 0xf) * 4;
            d.get(l3..l3 + ihl)
                .is_some_and(|h| ihl >= 20 && csum::checksum(h) == 0)
        }
        _ => true,
    }
}

fn sums_ok(d: &[u8]) -> bool {
    ip_ok(d) && csum::verify_l4(d)
}

/// The frame with source and destination addresses and L4 ports swapped
/// (checksums stay right: the sums do not change).
fn swapped(d: &[u8]) -> Vec<u8> {
    let mut v = d.to_vec();
    if let Some((ty, l3)) = l3_offset(d) {
        let (a, n) = match u16::from(ty) {
            0x0800 => (l3 + 12, 4),
            0x86dd => (l3 + 8, 16),
            _ => return v,
        };
        if a + 2 * n <= v.len() {
            let (s, t) = v[a..a + 2 * n].split_at_mut(n);
            s.swap_with_slice(t);
        }
        if let Some(loc) = csum::locate_l4(d) {
            let p = loc.l4;
            if p + 4 <= v.len() {
                let (s, t) = v[p..p + 4].split_at_mut(2);
                s.swap_with_slice(t);
            }
        }
    }
    v
}

fn nat(kind: NatKind, a: [u8; 4], ports: (u16, u16)) -> NatArgs {
    NatArgs {
        kind: Some(kind),
        addr_min: Some(IpAddr::V4(Ipv4Addr::from(a))),
        addr_max: Some(IpAddr::V4(Ipv4Addr::from([a[0], a[1], a[2], a[3] | 3]))),
        port_min: ports.0,
        port_max: ports.1,
        persistent: false,
        random: false,
    }
}

#[test]
fn conntrack() {
    run("conntrack", corpus_dir!("conntrack"), Kind::Bytes, |data| {
        let now = Instant::now();
        let bare = NatArgs {
            kind: None,
            addr_min: None,
            addr_max: None,
            port_min: 0,
            port_max: 0,
            persistent: false,
            random: false,
        };
        let plans = [
            (
                CtArgs {
                    commit: true,
                    nat: Some(nat(NatKind::Src, [192, 0, 2, 4], (0, 0))),
                    mark: Some((1, 1)),
                    ..CtArgs::default()
                },
                CtArgs {
                    nat: Some(bare),
                    ..CtArgs::default()
                },
            ),
            (
                CtArgs {
                    zone: 3,
                    commit: true,
                    nat: Some(nat(NatKind::Dst, [198, 51, 100, 8], (8000, 8003))),
                    ..CtArgs::default()
                },
                CtArgs {
                    zone: 3,
                    commit: true,
                    nat: Some(bare),
                    ..CtArgs::default()
                },
            ),
        ];
        for (first, second) in plans {
            let ct = Conntrack::new();
            let before = sums_ok(data);
            let mut p = Packet::from_slice(data);
            ct.execute(&mut p, &first, now);
            assert!(consistent(p.md.ct.state), "{:#x}", p.md.ct.state);
            if before && p.md.ct.state & (cs::SNAT | cs::DNAT) != 0 {
                assert!(sums_ok(p.data()), "checksums broken by NAT");
            }
            let reply = swapped(p.data());
            for args in [&second, &first] {
                let mut r = Packet::from_slice(&reply);
                let ok = sums_ok(r.data());
                ct.execute(&mut r, args, now);
                assert!(consistent(r.md.ct.state), "{:#x}", r.md.ct.state);
                if ok && r.md.ct.state & (cs::SNAT | cs::DNAT) != 0 {
                    assert!(sums_ok(r.data()), "checksums broken by reverse NAT");
                }
            }
            let _ = ct.dump(None);
            let _ = ct.stats_show(None, true);
        }
    });
}
