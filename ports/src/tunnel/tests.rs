use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use proptest::prelude::*;
use xennet_datapath::buffer::{Gso, GsoType};

use super::*;

const V4A: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 31, 1, 1));
const V4B: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 31, 1, 2));
const V6A: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
const V6B: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));

/// An inner ICMP echo over IPv4 (a real frame layout; contents are not
/// checked by the codec).
fn inner() -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000, 2000)
        .write(&mut v, b"hello tunnel")
        .unwrap();
    v
}

fn encap(kind: TunnelKind, src: IpAddr, dst: IpAddr, opts: &[u8], csum: bool) -> Encap<'_> {
    Encap {
        kind,
        src_mac: [0xaa, 0, 0, 0, 0, 1],
        dst_mac: [0xaa, 0, 0, 0, 0, 2],
        src,
        dst,
        vni: 42,
        tos: 0x10,
        ttl: 63,
        df: true,
        ip_id: 7,
        udp_src: 0,
        udp_dst: kind.default_port(),
        csum,
        geneve_opts: opts,
        oam: false,
    }
}

fn wrapped(e: &Encap<'_>) -> Vec<u8> {
    let mut p = Packet::from_slice(&inner());
    encapsulate(&mut p, e).unwrap();
    p.data().to_vec()
}

fn none_known(_: u16, _: u8) -> bool {
    false
}

fn decap(frame: &[u8], kind: TunnelKind) -> Result<Decap, DecapError> {
    let outer = parse_outer_udp(frame)?.ok_or(DecapError::Truncated)?;
    decapsulate(frame, &outer, kind, &none_known)
}

#[test]
fn test_construct_vxlan_ipv4() {
    let f = wrapped(&encap(TunnelKind::Vxlan, V4A, V4B, &[], true));
    assert_eq!(
        f.len(),
        inner().len() + overhead(TunnelKind::Vxlan, false, 0)
    );
    // Checked by an independent parser.
    let s = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert!(h.dont_fragment);
    assert_eq!(
        (h.time_to_live, h.dscp.value() << 2 | h.ecn.value()),
        (63, 0x10)
    );
    let Some(TransportSlice::Udp(u)) = &s.transport else {
        panic!("not UDP")
    };
    assert_eq!(u.destination_port(), 4789);
    assert!((32768..=61000).contains(&u.source_port()));
    let uh = u.to_header();
    assert_eq!(uh.checksum, uh.calc_checksum_ipv4(&h, u.payload()).unwrap());
    assert_eq!(&u.payload()[..8], &[0x08, 0, 0, 0, 0, 0, 42, 0]);
    assert_eq!(&u.payload()[8..], &inner()[..]);
}

#[test]
fn test_deconstruct_vxlan_ipv4() {
    let f = wrapped(&encap(TunnelKind::Vxlan, V4A, V4B, &[], false));
    // Without csum the UDP checksum is zero, accepted over IPv4.
    let d = decap(&f, TunnelKind::Vxlan).unwrap();
    assert_eq!(d.tunnel.id, 42);
    assert_eq!(u128_to_addr(d.tunnel.src), V4A);
    assert_eq!(u128_to_addr(d.tunnel.dst), V4B);
    assert_eq!(
        (d.tunnel.tos, d.tunnel.ttl, d.tunnel.tp_dst),
        (0x10, 63, 4789)
    );
    assert_eq!(&f[d.inner..d.inner + d.inner_len], &inner()[..]);
}

#[test]
fn geneve_ipv6_with_options_round_trips() {
    // One critical option (OVN's class 0x0102, type 0x80) with 4 bytes.
    let opts = [0x01, 0x02, 0x80, 0x01, 0, 0, 0, 5];
    let f = wrapped(&encap(TunnelKind::Geneve, V6A, V6B, &opts, true));
    let s = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("not IPv6")
    };
    let Some(TransportSlice::Udp(u)) = &s.transport else {
        panic!("not UDP")
    };
    let uh = u.to_header();
    assert_eq!(
        uh.checksum,
        uh.calc_checksum_ipv6(&ip.header().to_header(), u.payload())
            .unwrap()
    );
    assert_eq!(u.destination_port(), 6081);
    // Opt Len 2 words, C bit, Ethernet, VNI 42.
    assert_eq!(&u.payload()[..8], &[2, 0x40, 0x65, 0x58, 0, 0, 42, 0]);

    let outer = parse_outer_udp(&f).unwrap().unwrap();
    assert_eq!(
        decapsulate(&f, &outer, TunnelKind::Geneve, &none_known),
        Err(DecapError::GeneveCritical)
    );
    let ovn = |class: u16, kind: u8| class == 0x0102 && kind == 0x80;
    let d = decapsulate(&f, &outer, TunnelKind::Geneve, &ovn).unwrap();
    assert_eq!(d.tunnel.id, 42);
    assert_eq!(u128_to_addr(d.tunnel.src), V6A);
    assert_eq!(&f[d.opts.0..d.opts.0 + d.opts.1], &opts);
    assert_eq!(&f[d.inner..d.inner + d.inner_len], &inner()[..]);
    // A non-critical unknown option is skipped.
    let opts = [0x01, 0x02, 0x01, 0x00];
    let f = wrapped(&encap(TunnelKind::Geneve, V6A, V6B, &opts, true));
    assert!(decap(&f, TunnelKind::Geneve).is_ok());
}

#[test]
fn test_parse_headers() {
    assert_eq!(
        vxlan::parse(&[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]),
        Ok(0x123456)
    );
    // Reserved bits are ignored (RFC 7348 §5).
    assert_eq!(vxlan::parse(&[0xff, 1, 2, 3, 0, 0, 1, 9]), Ok(1));
    let g = geneve::parse(&[0, 0x80, 0x65, 0x58, 0, 1, 0, 0], &none_known).unwrap();
    assert_eq!((g.vni, g.oam, g.opts_len), (256, true, 0));
}

#[test]
fn test_parse_rejections() {
    assert_eq!(
        vxlan::parse(&[0, 0, 0, 0, 0, 0, 1, 0]),
        Err(DecapError::VxlanFlags)
    );
    assert_eq!(vxlan::parse(&[0x08, 0, 0]), Err(DecapError::Truncated));
    let g = |b: &[u8]| geneve::parse(b, &none_known);
    assert_eq!(
        g(&[0x40, 0, 0x65, 0x58, 0, 0, 1, 0]),
        Err(DecapError::GeneveVersion)
    );
    assert_eq!(
        g(&[0, 0, 0x08, 0x00, 0, 0, 1, 0]),
        Err(DecapError::GeneveProtocol)
    );
    // Opt Len says 1 word, none there.
    assert_eq!(
        g(&[1, 0, 0x65, 0x58, 0, 0, 1, 0]),
        Err(DecapError::Truncated)
    );
    // An option whose length runs past the options area.
    assert_eq!(
        g(&[1, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 1, 1, 2]),
        Err(DecapError::GeneveOptions)
    );
}

/// Patch a valid VXLAN/IPv4 frame (`f[14..]` is the IPv4 header) and
/// refresh the IPv4 checksum unless `keep_csum`.
fn patched(edit: impl Fn(&mut Vec<u8>), fix_csum: bool) -> Vec<u8> {
    let mut f = wrapped(&encap(TunnelKind::Vxlan, V4A, V4B, &[], true));
    edit(&mut f);
    if fix_csum {
        f[24..26].copy_from_slice(&[0, 0]);
        let c = csum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

#[test]
fn malformed_outer_headers_are_refused_by_reason() {
    let d = |f: &[u8]| decap(f, TunnelKind::Vxlan).map(|_| ());
    assert_eq!(
        d(&patched(|f| f.truncate(30), false)),
        Err(DecapError::Truncated)
    );
    assert_eq!(
        d(&patched(|f| f[14] = 0x44, true)),
        Err(DecapError::BadIpHeader)
    );
    // Total length beyond the frame.
    assert_eq!(
        d(&patched(|f| f[16..18].copy_from_slice(&[0x20, 0]), true)),
        Err(DecapError::BadIpHeader)
    );
    assert_eq!(
        d(&patched(|f| f[22] = 9, false)),
        Err(DecapError::BadIpChecksum)
    );
    assert_eq!(
        d(&patched(|f| f[20..22].copy_from_slice(&[0x20, 0]), true)),
        Err(DecapError::Fragment)
    );
    assert_eq!(
        d(&patched(|f| f[38..40].copy_from_slice(&[0xff, 0]), true)),
        Err(DecapError::BadUdpLength)
    );
    // A flipped payload bit breaks the UDP checksum.
    assert_eq!(
        d(&patched(
            |f| {
                let n = f.len() - 1;
                f[n] ^= 1
            },
            false
        )),
        Err(DecapError::BadUdpChecksum)
    );
    // Inner frame shorter than an Ethernet header.
    let mut p = Packet::from_slice(&inner());
    encapsulate(&mut p, &encap(TunnelKind::Vxlan, V4A, V4B, &[], false)).unwrap();
    let mut f = p.data().to_vec();
    let cut = f.len() - inner().len() + 10;
    f.truncate(cut);
    let ip_len = u16::try_from(cut - 14).unwrap();
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = csum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(d(&f), Err(DecapError::InnerTooShort));
    // A zero UDP checksum over IPv6 is refused (RFC 8200 §8.1).
    let f = wrapped(&encap(TunnelKind::Vxlan, V6A, V6B, &[], false));
    assert_eq!(d(&f), Err(DecapError::BadUdpChecksum));
    // Not UDP at all: not a tunnel packet.
    assert_eq!(parse_outer_udp(&inner()[..20]), Err(DecapError::Truncated));
    let mut arp = inner();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(parse_outer_udp(&arp), Ok(None));
}

#[test]
fn counters_count_each_reason() {
    let c = DecapCounters::default();
    c.count(DecapError::Fragment);
    c.count(DecapError::Fragment);
    c.count(DecapError::GeneveCritical);
    let s = c.snapshot();
    assert!(s.contains(&("fragment", 2)) && s.contains(&("geneve_critical", 1)));
}

#[test]
fn encapsulation_refusals_leave_the_packet_alone() {
    let mut p = Packet::from_slice(&inner());
    let before = p.data().to_vec();
    assert_eq!(
        encapsulate(&mut p, &encap(TunnelKind::Vxlan, V4A, V6B, &[], false)),
        Err(EncapError::MixedFamilies)
    );
    assert_eq!(
        encapsulate(&mut p, &encap(TunnelKind::Vxlan, V4A, V4B, &[0; 4], false)),
        Err(EncapError::BadOptions(4))
    );
    assert_eq!(
        encapsulate(&mut p, &encap(TunnelKind::Geneve, V4A, V4B, &[0; 3], false)),
        Err(EncapError::BadOptions(3))
    );
    p.gso = Some(Gso {
        kind: GsoType::TcpV4,
        mss: 1400,
    });
    assert_eq!(
        encapsulate(&mut p, &encap(TunnelKind::Vxlan, V4A, V4B, &[], false)),
        Err(EncapError::SuperFrame)
    );
    assert_eq!(p.data(), &before[..]);
}

#[test]
fn a_partial_inner_checksum_is_completed_before_encapsulation() {
    let good = inner();
    let mut f = good.clone();
    let (start, offset) = csum::prepare_partial(&mut f).unwrap();
    assert_ne!(f, good);
    let mut p = Packet::from_slice(&f);
    p.csum = Csum::Partial { start, offset };
    encapsulate(&mut p, &encap(TunnelKind::Vxlan, V4A, V4B, &[], false)).unwrap();
    let d = decap(p.data(), TunnelKind::Vxlan).unwrap();
    assert_eq!(&p.data()[d.inner..], &good[..]);
}

#[test]
fn the_source_port_follows_the_inner_flow() {
    let a = inner();
    let mut b = inner();
    // Another IPv4 identification and checksum: the same flow.
    b[18] ^= 0x55;
    b[24] ^= 0x55;
    assert_eq!(flow_udp_src(&a), flow_udp_src(&b));
    let mut c = inner();
    c[34] ^= 1; // another UDP source port
    assert_ne!(flow_udp_src(&a), flow_udp_src(&c));
}

fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(wrapped(&encap(TunnelKind::Vxlan, V4A, V4B, &[], true))),
        Just(wrapped(&encap(TunnelKind::Vxlan, V6A, V6B, &[], true))),
        Just(wrapped(&encap(
            TunnelKind::Geneve,
            V4A,
            V4B,
            &[0x01, 0x02, 0x80, 0x01, 0, 0, 0, 5],
            false
        ))),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (
            valid,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            any::<usize>()
        )
            .prop_map(|(mut f, edits, cut)| {
                for (at, v) in edits {
                    let n = f.len();
                    f[at % n] = v;
                }
                let n = f.len();
                f.truncate(n - cut % 24);
                f
            }),
    ]
}

proptest! {
    /// The decapsulation path never panics, and what it accepts lies
    /// inside the frame.
    #[test]
    fn tunnel_decap_never_panics(f in any_frame()) {
        if let Ok(Some(outer)) = parse_outer_udp(&f) {
            for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
                if let Ok(d) = decapsulate(&f, &outer, kind, &|_, _| true) {
                    prop_assert!(d.inner + d.inner_len <= f.len());
                    prop_assert!(d.inner_len >= 14);
                    prop_assert!(d.opts.0 + d.opts.1 <= f.len());
                }
            }
        }
    }
}

#[test]
fn a_checksum_the_port_vouches_for_or_left_partial_is_not_verified() {
    let f = patched(
        |f| {
            let n = f.len() - 1;
            f[n] ^= 1
        },
        false,
    );
    assert_eq!(parse_outer_udp(&f), Err(DecapError::BadUdpChecksum));
    assert!(parse_outer_udp_csum(&f, Csum::Validated).unwrap().is_some());
    let partial = Csum::Partial {
        start: 34,
        offset: 6,
    };
    assert!(parse_outer_udp_csum(&f, partial).unwrap().is_some());
}

#[test]
fn encapsulating_into_another_packet_gives_the_same_frame() {
    for (kind, s, d, opts) in [
        (TunnelKind::Vxlan, V4A, V4B, &[][..]),
        (TunnelKind::Geneve, V6A, V6B, &[0x01, 0x02, 0x01, 0x00][..]),
    ] {
        let e = encap(kind, s, d, opts, true);
        let mut inner = Packet::from_slice(&inner());
        let (start, offset) = csum::prepare_partial(inner.data_mut()).unwrap();
        inner.csum = Csum::Partial { start, offset };
        let mut a = inner.clone();
        encapsulate(&mut a, &e).unwrap();
        let mut b = Packet::from_slice(&[1, 2, 3]);
        b.md.pkt_mark = 5;
        encapsulate_into(&mut b, &inner, &e).unwrap();
        assert_eq!(a.data(), b.data());
        assert_eq!(b.md, Default::default());
        assert_eq!(b.csum, Csum::None);
    }
}

#[test]
fn gre_round_trips_with_and_without_a_checksum() {
    for (s, d, csum_on) in [(V4A, V4B, false), (V4A, V4B, true), (V6A, V6B, true)] {
        let e = encap(TunnelKind::Gre, s, d, &[], csum_on);
        let f = wrapped(&e);
        assert_eq!(
            f.len(),
            inner().len() + overhead(TunnelKind::Gre, s.is_ipv6(), 0) + if csum_on { 4 } else { 0 }
        );
        let sp = SlicedPacket::from_ethernet(&f).unwrap();
        let proto = match &sp.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum());
                h.protocol.0
            }
            Some(NetSlice::Ipv6(ip)) => ip.header().next_header().0,
            _ => panic!("not IP"),
        };
        assert_eq!(proto, 47);
        assert_eq!(parse_outer_udp(&f), Ok(None), "GRE is not UDP");
        let outer = parse_outer_gre(&f).unwrap().unwrap();
        let dcp = decapsulate(&f, &outer, TunnelKind::Gre, &none_known).unwrap();
        assert_eq!(dcp.tunnel.id, 42);
        assert_eq!(u128_to_addr(dcp.tunnel.src), s);
        assert_eq!(&f[dcp.inner..dcp.inner + dcp.inner_len], &inner()[..]);
    }
    // K bit and key 42, protocol 0x6558.
    let f = wrapped(&encap(TunnelKind::Gre, V4A, V4B, &[], false));
    assert_eq!(&f[34..42], &[0x20, 0, 0x65, 0x58, 0, 0, 0, 42]);
}

#[test]
fn bad_gre_headers_are_refused_by_reason() {
    assert_eq!(gre::parse(&[0, 1, 0x65, 0x58]), Err(DecapError::GreHeader));
    assert_eq!(
        gre::parse(&[0x40, 0, 0x65, 0x58]),
        Err(DecapError::GreHeader)
    );
    assert_eq!(
        gre::parse(&[0, 0, 0x08, 0x00]),
        Err(DecapError::GreProtocol)
    );
    assert_eq!(
        gre::parse(&[0x20, 0, 0x65, 0x58, 0, 0]),
        Err(DecapError::Truncated)
    );
    assert_eq!(gre::parse(&[0, 0, 0x65, 0x58]), Ok((4, 0)));
    let mut f = wrapped(&encap(TunnelKind::Gre, V4A, V4B, &[], true));
    let n = f.len() - 1;
    f[n] ^= 1;
    let outer = parse_outer_gre(&f).unwrap().unwrap();
    assert_eq!(
        decapsulate(&f, &outer, TunnelKind::Gre, &none_known),
        Err(DecapError::GreChecksum)
    );
}
