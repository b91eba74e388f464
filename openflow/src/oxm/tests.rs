use super::*;
use proptest::prelude::*;

/// `(class, field, hasmask, payload)` as bytes.
fn tlv(class: u16, field: u8, hasmask: bool, payload: &[u8]) -> Vec<u8> {
    let hdr = (u32::from(class) << 16)
        | (u32::from(field) << 9)
        | (u32::from(hasmask) << 8)
        | payload.len() as u32;
    let mut v = hdr.to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn oxm(field: u8, payload: &[u8]) -> Vec<u8> {
    tlv(OPENFLOW_BASIC, field, false, payload)
}

fn oxm_w(field: u8, value: &[u8], mask: &[u8]) -> Vec<u8> {
    tlv(OPENFLOW_BASIC, field, true, &[value, mask].concat())
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn eth(t: u16) -> Vec<u8> {
    oxm(5, &t.to_be_bytes())
}

fn proto(p: u8) -> Vec<u8> {
    oxm(10, &[p])
}

fn err(buf: &[u8]) -> OfError {
    decode_tlvs(buf).unwrap_err().err
}

fn exact(fields: &[(OxmField, u128)]) -> Match {
    let mut m = Match::CATCHALL;
    for &(f, v) in fields {
        m.set_field(f, v, ones(f.bits())).unwrap();
    }
    m
}

#[test]
fn oxm_vectors_each_field() {
    use OxmField::*;
    let ip4 = || eth(0x0800);
    let ip6 = || eth(0x86dd);
    let cases: Vec<(Vec<u8>, Match)> = vec![
        (oxm(0, &[0, 0, 0, 7]), exact(&[(InPort, 7)])),
        (
            oxm(0, &[0xff, 0xff, 0xff, 0xfe]),
            exact(&[(InPort, 0xffff_fffe)]),
        ),
        (
            oxm(2, &[0, 0, 0, 0, 0, 0, 0x12, 0x34]),
            exact(&[(Metadata, 0x1234)]),
        ),
        (
            oxm(3, &[1, 2, 3, 4, 5, 6]),
            exact(&[(EthDst, 0x0102_0304_0506)]),
        ),
        (
            oxm(4, &[0xa, 0xb, 0xc, 0xd, 0xe, 0xf]),
            exact(&[(EthSrc, 0x0a0b_0c0d_0e0f)]),
        ),
        (eth(0x88cc), exact(&[(EthType, 0x88cc)])),
        (oxm(6, &[0x10, 0x0a]), exact(&[(VlanVid, 0x100a)])),
        (
            cat(&[oxm(6, &[0x10, 0x0a]), oxm(7, &[5])]),
            exact(&[(VlanVid, 0x100a), (VlanPcp, 5)]),
        ),
        (
            cat(&[ip4(), oxm(8, &[46])]),
            exact(&[(EthType, 0x800), (IpDscp, 46)]),
        ),
        (
            cat(&[ip6(), oxm(9, &[3])]),
            exact(&[(EthType, 0x86dd), (IpEcn, 3)]),
        ),
        (
            cat(&[ip4(), proto(47)]),
            exact(&[(EthType, 0x800), (IpProto, 47)]),
        ),
        (
            cat(&[ip4(), oxm(11, &[10, 0, 0, 1])]),
            exact(&[(EthType, 0x800), (Ipv4Src, 0x0a00_0001)]),
        ),
        (
            cat(&[ip4(), oxm(12, &[10, 0, 0, 2])]),
            exact(&[(EthType, 0x800), (Ipv4Dst, 0x0a00_0002)]),
        ),
        (
            cat(&[ip4(), proto(6), oxm(13, &[0, 80])]),
            exact(&[(EthType, 0x800), (IpProto, 6), (TcpSrc, 80)]),
        ),
        (
            cat(&[ip6(), proto(6), oxm(14, &[1, 187])]),
            exact(&[(EthType, 0x86dd), (IpProto, 6), (TcpDst, 443)]),
        ),
        (
            cat(&[ip4(), proto(17), oxm(15, &[0, 53])]),
            exact(&[(EthType, 0x800), (IpProto, 17), (UdpSrc, 53)]),
        ),
        (
            cat(&[ip4(), proto(17), oxm(16, &[0, 67])]),
            exact(&[(EthType, 0x800), (IpProto, 17), (UdpDst, 67)]),
        ),
        (
            cat(&[ip4(), proto(132), oxm(17, &[0, 9])]),
            exact(&[(EthType, 0x800), (IpProto, 132), (SctpSrc, 9)]),
        ),
        (
            cat(&[ip4(), proto(132), oxm(18, &[0, 10])]),
            exact(&[(EthType, 0x800), (IpProto, 132), (SctpDst, 10)]),
        ),
        (
            cat(&[ip4(), proto(1), oxm(19, &[8]), oxm(20, &[0])]),
            exact(&[
                (EthType, 0x800),
                (IpProto, 1),
                (Icmpv4Type, 8),
                (Icmpv4Code, 0),
            ]),
        ),
        (
            cat(&[eth(0x0806), oxm(21, &[0, 2])]),
            exact(&[(EthType, 0x806), (ArpOp, 2)]),
        ),
        (
            cat(&[eth(0x0806), oxm(22, &[1, 2, 3, 4])]),
            exact(&[(EthType, 0x806), (ArpSpa, 0x0102_0304)]),
        ),
        (
            cat(&[eth(0x0806), oxm(23, &[1, 2, 3, 5])]),
            exact(&[(EthType, 0x806), (ArpTpa, 0x0102_0305)]),
        ),
        (
            cat(&[
                ip6(),
                oxm(
                    26,
                    &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ),
            ]),
            exact(&[(EthType, 0x86dd), (Ipv6Src, 0x2001_0db8 << 96 | 1)]),
        ),
        (
            cat(&[
                ip6(),
                oxm(27, &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            ]),
            exact(&[(EthType, 0x86dd), (Ipv6Dst, 0xfe80 << 112 | 2)]),
        ),
        (
            cat(&[ip6(), proto(58), oxm(29, &[135]), oxm(30, &[0])]),
            exact(&[
                (EthType, 0x86dd),
                (IpProto, 58),
                (Icmpv6Type, 135),
                (Icmpv6Code, 0),
            ]),
        ),
        (
            cat(&[ip4(), tlv(NXM_NX, 29, false, &[64])]),
            exact(&[(EthType, 0x800), (IpTtl, 64)]),
        ),
        (cat(&[ip4(), tlv(NXM_NX, 26, true, &[1, 1])]), {
            let mut m = exact(&[(EthType, 0x800)]);
            m.set_field(IpFrag, 1, 1).unwrap();
            m
        }),
        (
            cat(&[
                ip4(),
                proto(6),
                // ONFOXM_ET_TCP_FLAGS: class 0xffff, field 42, len 4+2+2.
                vec![
                    0xff,
                    0xff,
                    42 << 1 | 1,
                    8,
                    0x4f,
                    0x4e,
                    0x46,
                    0x00,
                    0,
                    2,
                    0,
                    2,
                ],
            ]),
            {
                let mut m = exact(&[(EthType, 0x800), (IpProto, 6)]);
                m.set_field(TcpFlags, 2, 2).unwrap();
                m
            },
        ),
    ];
    for (bytes, want) in cases {
        let got = decode_tlvs(&bytes).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
        assert_eq!(got, want, "{bytes:02x?}");
        // Exact re-encoding: these are in OVS order already.
        let mut out = Vec::new();
        encode_tlvs(&got, Flavor::Oxm, &mut out);
        assert_eq!(out, bytes);
    }
}

#[test]
fn nxm_vectors_each_field() {
    use OxmField::*;
    let of = |f: u8, p: &[u8]| tlv(NXM_OF, f, false, p);
    let nx = |f: u8, p: &[u8]| tlv(NXM_NX, f, false, p);
    let e4 = || of(3, &[8, 0]);
    let e6 = || of(3, &[0x86, 0xdd]);
    let cases: Vec<(Vec<u8>, Match)> = vec![
        (of(0, &[0, 3]), exact(&[(InPort, 3)])),
        (of(0, &[0xff, 0xfe]), exact(&[(InPort, 0xffff_fffe)])),
        (
            of(1, &[1, 2, 3, 4, 5, 6]),
            exact(&[(EthDst, 0x0102_0304_0506)]),
        ),
        (
            of(2, &[1, 2, 3, 4, 5, 6]),
            exact(&[(EthSrc, 0x0102_0304_0506)]),
        ),
        (e4(), exact(&[(EthType, 0x800)])),
        (
            of(4, &[0xb0, 0x0a]),
            exact(&[(VlanVid, 0x100a), (VlanPcp, 5)]),
        ),
        (
            cat(&[e4(), of(5, &[46 << 2])]),
            exact(&[(EthType, 0x800), (IpDscp, 46)]),
        ),
        (
            cat(&[e4(), of(6, &[6])]),
            exact(&[(EthType, 0x800), (IpProto, 6)]),
        ),
        (
            cat(&[e4(), of(7, &[10, 0, 0, 1]), of(8, &[10, 0, 0, 2])]),
            exact(&[
                (EthType, 0x800),
                (Ipv4Src, 0x0a00_0001),
                (Ipv4Dst, 0x0a00_0002),
            ]),
        ),
        (
            cat(&[e4(), of(6, &[6]), of(9, &[0, 1]), of(10, &[0, 2])]),
            exact(&[(EthType, 0x800), (IpProto, 6), (TcpSrc, 1), (TcpDst, 2)]),
        ),
        (
            cat(&[e4(), of(6, &[17]), of(11, &[0, 1]), of(12, &[0, 2])]),
            exact(&[(EthType, 0x800), (IpProto, 17), (UdpSrc, 1), (UdpDst, 2)]),
        ),
        (
            cat(&[e4(), of(6, &[1]), of(13, &[3]), of(14, &[1])]),
            exact(&[
                (EthType, 0x800),
                (IpProto, 1),
                (Icmpv4Type, 3),
                (Icmpv4Code, 1),
            ]),
        ),
        (
            cat(&[
                of(3, &[8, 6]),
                of(15, &[0, 1]),
                of(16, &[1, 1, 1, 1]),
                of(17, &[2, 2, 2, 2]),
            ]),
            exact(&[
                (EthType, 0x806),
                (ArpOp, 1),
                (ArpSpa, 0x0101_0101),
                (ArpTpa, 0x0202_0202),
            ]),
        ),
        (
            cat(&[e6(), nx(19, &[0xff; 16]), nx(20, &[0xee; 16])]),
            exact(&[
                (EthType, 0x86dd),
                (Ipv6Src, u128::MAX),
                (Ipv6Dst, u128::from_be_bytes([0xee; 16])),
            ]),
        ),
        (
            cat(&[e6(), of(6, &[58]), nx(21, &[128]), nx(22, &[0])]),
            exact(&[
                (EthType, 0x86dd),
                (IpProto, 58),
                (Icmpv6Type, 128),
                (Icmpv6Code, 0),
            ]),
        ),
        (
            cat(&[e6(), nx(26, &[3]), nx(28, &[2]), nx(29, &[9])]),
            exact(&[(EthType, 0x86dd), (IpFrag, 3), (IpEcn, 2), (IpTtl, 9)]),
        ),
        (
            cat(&[e4(), of(6, &[6]), nx(34, &[0x0f, 0xff])]),
            exact(&[(EthType, 0x800), (IpProto, 6), (TcpFlags, 0xfff)]),
        ),
        (
            tlv(
                OPENFLOW_BASIC,
                2,
                true,
                &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff],
            ),
            {
                let mut m = Match::CATCHALL;
                m.set_field(Metadata, 1, 0xff).unwrap();
                m
            },
        ),
    ];
    for (bytes, want) in cases {
        let got = decode_tlvs(&bytes).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
        assert_eq!(got, want, "{bytes:02x?}");
        let mut out = Vec::new();
        encode_tlvs(&got, Flavor::Nxm, &mut out);
        assert_eq!(out, bytes);
    }
}

#[test]
fn vlan_forms() {
    // OXM: no tag, any tag, VID 10.
    let m = decode_tlvs(&oxm(6, &[0, 0])).unwrap();
    assert_eq!(
        (m.key.vlan_tci(), m.field(OxmField::VlanVid).1),
        (0, 0x1fff)
    );
    let m = decode_tlvs(&oxm_w(6, &[0x10, 0], &[0x10, 0])).unwrap();
    assert_eq!(m.field(OxmField::VlanVid), (0x1000, 0x1000));
    // NXM_OF_VLAN_TCI(0000): no tag (OpenFlow 1.0 dl_vlan=0xffff).
    let nx = tlv(NXM_OF, 4, false, &[0, 0]);
    let m = decode_tlvs(&nx).unwrap();
    assert_eq!(m.field(OxmField::VlanVid), (0, 0x1fff));
    assert_eq!(m.field(OxmField::VlanPcp), (0, 7));
    let mut out = Vec::new();
    encode_tlvs(&m, Flavor::Nxm, &mut out);
    assert_eq!(out, nx);
    // In OXM the same match is VLAN_VID=NONE, without PCP (as OVS).
    out.clear();
    encode_tlvs(&m, Flavor::Oxm, &mut out);
    assert_eq!(out, oxm(6, &[0, 0]));
    // OXM VLAN_PCP without a tag.
    assert_eq!(err(&oxm(7, &[1])), OfError::BAD_PREREQ);
    assert_eq!(
        err(&cat(&[oxm(6, &[0, 0]), oxm(7, &[1])])),
        OfError::BAD_PREREQ
    );
    // PCP bits in VLAN_VID, PCP above 7.
    assert_eq!(err(&oxm(6, &[0x30, 0])), OfError::BAD_VALUE);
    assert_eq!(
        err(&cat(&[oxm(6, &[0x10, 0]), oxm(7, &[8])])),
        OfError::BAD_VALUE
    );
    // NXM_OF_VLAN_TCI then OXM VLAN_VID: the same bits twice.
    assert_eq!(
        err(&cat(&[
            tlv(NXM_OF, 4, false, &[0x10, 1]),
            oxm(6, &[0x10, 1])
        ])),
        OfError::DUP_FIELD
    );
}

#[test]
fn error_paths() {
    // Truncated header, truncated payload, truncated experimenter.
    assert_eq!(err(&[0x80, 0x00]), OfError::BAD_MATCH_LEN);
    assert_eq!(
        err(&[0x80, 0x00, 0x00, 0x04, 0, 0, 0]),
        OfError::BAD_MATCH_LEN
    );
    assert_eq!(
        err(&[0xff, 0xff, 0x54, 0x06, 0x4f, 0x4e]),
        OfError::BAD_MATCH_LEN
    );
    assert_eq!(
        err(&[0xff, 0xff, 0x54, 0x02, 0x4f, 0x4e, 0x46, 0]),
        OfError::BAD_MATCH_LEN
    );
    // Wrong length for a known field; odd masked length.
    assert_eq!(err(&oxm(0, &[0, 0, 7])), OfError::BAD_MATCH_LEN);
    assert_eq!(
        err(&tlv(OPENFLOW_BASIC, 3, true, &[0; 7])),
        OfError::BAD_MATCH_LEN
    );
    // MPLS, ND and conntrack-tuple fields need their prerequisites.
    assert_eq!(err(&oxm(34, &[0, 0, 0, 1])), OfError::BAD_PREREQ);
    assert_eq!(err(&oxm(31, &[0; 16])), OfError::BAD_PREREQ);
    assert_eq!(err(&tlv(NXM_NX, 119, false, &[6])), OfError::BAD_PREREQ);
    // Registers and the tunnel id need nothing.
    let m = decode_tlvs(&tlv(NXM_NX, 0, false, &[0, 0, 0, 1])).unwrap();
    assert_eq!(m.field(OxmField::Reg(0)), (1, 0xffff_ffff));
    let m = decode_tlvs(&oxm(38, &[0, 0, 0, 0, 0, 0, 0, 9])).unwrap();
    assert_eq!(m.field(OxmField::TunId), (9, u128::from(u64::MAX)));
    // NXM_NX_REG0 and OXM_OF_PKT_REG0 overlap.
    assert_eq!(
        err(&cat(&[
            tlv(NXM_NX, 0, false, &[0, 0, 0, 1]),
            tlv(0x8001, 0, false, &[0; 8])
        ])),
        OfError::DUP_FIELD
    );
    // Unknown: an experimenter field, a class.
    assert_eq!(
        err(&[0xff, 0xff, 0x54, 0x06, 0, 0, 0x23, 0x20, 0, 2]),
        OfError::BAD_FIELD
    );
    assert_eq!(err(&tlv(0x1234, 0, false, &[0; 4])), OfError::BAD_FIELD);
    // NXM_NX_COOKIE is not a match field here.
    assert_eq!(err(&tlv(NXM_NX, 30, false, &[0; 8])), OfError::BAD_FIELD);
    // Duplicates.
    assert_eq!(err(&cat(&[eth(0x800), eth(0x800)])), OfError::DUP_FIELD);
    assert_eq!(
        err(&cat(&[
            oxm(0, &[0, 0, 0, 1]),
            tlv(NXM_OF, 0, false, &[0, 1])
        ])),
        OfError::DUP_FIELD
    );
    assert_eq!(
        err(&cat(&[
            eth(0x800),
            proto(6),
            oxm(13, &[0, 1]),
            oxm(15, &[0, 1])
        ])),
        OfError::DUP_FIELD
    );
    // Prerequisites.
    assert_eq!(err(&oxm(11, &[1, 2, 3, 4])), OfError::BAD_PREREQ);
    assert_eq!(
        err(&cat(&[eth(0x86dd), oxm(11, &[1, 2, 3, 4])])),
        OfError::BAD_PREREQ
    );
    assert_eq!(
        err(&cat(&[eth(0x800), oxm(13, &[0, 1])])),
        OfError::BAD_PREREQ
    );
    assert_eq!(
        err(&cat(&[eth(0x800), proto(17), oxm(13, &[0, 1])])),
        OfError::BAD_PREREQ
    );
    assert_eq!(
        err(&cat(&[eth(0x86dd), proto(1), oxm(19, &[0])])),
        OfError::BAD_PREREQ
    );
    assert_eq!(
        err(&cat(&[eth(0x800), oxm(21, &[0, 1])])),
        OfError::BAD_PREREQ
    );
    assert_eq!(err(&proto(6)), OfError::BAD_PREREQ);
    // Prerequisite after the field is fine (order independent).
    decode_tlvs(&cat(&[oxm(13, &[0, 1]), proto(6), eth(0x800)])).unwrap();
    // Value bits outside the mask.
    assert_eq!(
        err(&oxm_w(3, &[1, 2, 3, 4, 5, 6], &[0xff, 0xff, 0xff, 0, 0, 0])),
        OfError::BAD_WILDCARDS
    );
    // Partial masks on non-maskable fields.
    assert_eq!(err(&oxm_w(5, &[8, 0], &[0xff, 0])), OfError::BAD_MASK);
    assert_eq!(
        err(&oxm_w(0, &[0, 0, 0, 0], &[0, 0, 0, 1])),
        OfError::BAD_MASK
    );
    // Values wider than the field.
    assert_eq!(
        err(&cat(&[eth(0x806), oxm(21, &[1, 0])])),
        OfError::BAD_VALUE
    );
    assert_eq!(err(&cat(&[eth(0x800), oxm(8, &[64])])), OfError::BAD_VALUE);
    assert_eq!(err(&cat(&[eth(0x800), oxm(9, &[4])])), OfError::BAD_VALUE);
    assert_eq!(
        err(&cat(&[eth(0x800), tlv(NXM_OF, 5, false, &[1])])),
        OfError::BAD_VALUE
    );
    assert_eq!(
        err(&cat(&[eth(0x800), tlv(NXM_NX, 26, false, &[4])])),
        OfError::BAD_VALUE
    );
    assert_eq!(
        err(&cat(&[
            eth(0x800),
            proto(6),
            tlv(NXM_NX, 34, false, &[0x10, 0])
        ])),
        OfError::BAD_VALUE
    );
}

#[test]
fn nxm_cookie() {
    let mut buf = Vec::new();
    let mut m = Match::CATCHALL;
    m.set_field(OxmField::EthType, 0x806, 0xffff).unwrap();
    encode_tlvs(&m, Flavor::Nxm, &mut buf);
    encode_cookie(0x1234, 0xffff, &mut buf);
    assert_eq!(
        &buf[6..],
        &[0, 1, 0x3d, 16, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    );
    assert_eq!(decode_tlvs_with_cookie(&buf).unwrap(), (m, 0x1234, 0xffff));
    // Not a match field without the cookie variant.
    assert_eq!(err(&buf), OfError::BAD_FIELD);
    // Exact cookie; none; twice.
    let mut one = Vec::new();
    encode_cookie(7, u64::MAX, &mut one);
    assert_eq!(one, tlv(NXM_NX, 30, false, &[0, 0, 0, 0, 0, 0, 0, 7]));
    assert_eq!(
        decode_tlvs_with_cookie(&one).unwrap(),
        (Match::CATCHALL, 7, u64::MAX)
    );
    assert_eq!(
        decode_tlvs_with_cookie(&[]).unwrap(),
        (Match::CATCHALL, 0, 0)
    );
    let two = [one.clone(), one].concat();
    assert_eq!(
        decode_tlvs_with_cookie(&two).unwrap_err().err,
        OfError::DUP_FIELD
    );
    let mut none = Vec::new();
    encode_cookie(7, 0, &mut none);
    assert!(none.is_empty());
}

#[test]
fn masked_zero_is_wildcard_and_wide_masks_clamp() {
    // A zero mask is no match at all, and does not count as a duplicate.
    let m = decode_tlvs(&cat(&[oxm_w(5, &[0, 0], &[0, 0]), eth(0x800)])).unwrap();
    assert_eq!(m, exact(&[(OxmField::EthType, 0x800)]));
    // NXM_NX_IP_FRAG with an 8-bit mask, TCP flags with a 16-bit one.
    let m = decode_tlvs(&cat(&[
        eth(0x800),
        tlv(NXM_NX, 26, true, &[1, 0xff]),
        proto(6),
        tlv(NXM_NX, 34, true, &[0, 2, 0xff, 0xff]),
    ]))
    .unwrap();
    assert_eq!(m.field(OxmField::IpFrag), (1, 3));
    assert_eq!(m.field(OxmField::TcpFlags), (2, 0xfff));
}

#[test]
fn set_field_tlvs() {
    use OxmField::*;
    let cases = [
        (EthDst, 0x0102_0304_0506u128),
        (EthSrc, 0xaabb_ccdd_eeff),
        (VlanVid, 0x1005),
        (VlanPcp, 3),
        (IpDscp, 46),
        (IpEcn, 1),
        (IpTtl, 9),
        (Ipv4Src, 0x0a00_0001),
        (Ipv4Dst, 0x0a00_0002),
        (TcpSrc, 1),
        (TcpDst, 2),
        (UdpSrc, 3),
        (UdpDst, 4),
        (SctpSrc, 5),
        (SctpDst, 6),
        (Icmpv4Type, 8),
        (Icmpv4Code, 1),
        (ArpOp, 2),
        (ArpSpa, 7),
        (ArpTpa, 8),
        (Ipv6Src, 1 << 100),
        (Ipv6Dst, 2),
        (Icmpv6Type, 135),
        (Icmpv6Code, 0),
        (Metadata, 0xdead_beef),
        (TcpFlags, 0x12),
    ];
    for flavor in [Flavor::Oxm, Flavor::Nxm] {
        for (f, v) in cases {
            let mut out = Vec::new();
            encode_set_field(f, v, flavor, &mut out);
            out.extend_from_slice(&[0; 5]); // action padding
            let (g, gv, used) = decode_set_field(&out).unwrap();
            assert_eq!((g, gv, used), (f, v, out.len() - 5), "{f:?} {flavor:?}");
        }
    }
    // OXM VLAN_VID 0x1005, IP_DSCP as NXM_OF_IP_TOS (shifted).
    let mut out = Vec::new();
    encode_set_field(VlanVid, 0x1005, Flavor::Oxm, &mut out);
    assert_eq!(out, oxm(6, &[0x10, 0x05]));
    out.clear();
    encode_set_field(IpDscp, 46, Flavor::Nxm, &mut out);
    assert_eq!(out, tlv(NXM_OF, 5, false, &[46 << 2]));
    // Errors.
    let e = |b: &[u8]| decode_set_field(b).unwrap_err().err;
    assert_eq!(e(&[0x80, 0x00]), OfError::BAD_SET_LEN);
    assert_eq!(e(&oxm(6, &[0x10])), OfError::BAD_SET_LEN);
    assert_eq!(e(&oxm(6, &[0x10, 0x05])[..5]), OfError::BAD_SET_LEN);
    // ct_mark only inside ct(exec(...)); ct_state is read-only.
    assert_eq!(e(&tlv(NXM_NX, 107, false, &[0; 4])), OfError::BAD_SET_TYPE);
    assert_eq!(
        e(&tlv(NXM_NX, 105, false, &[0; 4])),
        OfError::BAD_SET_ARGUMENT
    );
    assert_eq!(decode_set_field(&oxm(38, &[0; 8])).unwrap().0, TunId);
    assert_eq!(e(&tlv(NXM_OF, 4, false, &[0x10, 1])), OfError::BAD_SET_TYPE);
    assert_eq!(
        e(&oxm_w(6, &[0x10, 1], &[0x1f, 0xff])),
        OfError::BAD_SET_ARGUMENT
    );
    assert_eq!(e(&oxm(6, &[0x00, 0x05])), OfError::BAD_SET_ARGUMENT);
    assert_eq!(e(&oxm(7, &[9])), OfError::BAD_SET_ARGUMENT);
    assert_eq!(e(&oxm(21, &[1, 0])), OfError::BAD_SET_ARGUMENT);
    assert_eq!(e(&oxm(0, &[0, 0, 0, 1])), OfError::BAD_SET_ARGUMENT);
    assert_eq!(e(&eth(0x800)), OfError::BAD_SET_ARGUMENT);
}

#[test]
fn headers() {
    assert_eq!(header(OxmField::InPort, Flavor::Oxm, false), 0x8000_0004);
    assert_eq!(header(OxmField::EthDst, Flavor::Oxm, true), 0x8000_070c);
    assert_eq!(header(OxmField::Ipv6Src, Flavor::Oxm, false), 0x8000_3410);
    assert_eq!(header(OxmField::InPort, Flavor::Nxm, false), 0x0000_0002);
    assert_eq!(header(OxmField::IpTtl, Flavor::Oxm, false), 0x0001_3a01);
    assert_eq!(header(OxmField::TcpFlags, Flavor::Oxm, true), 0x0001_4504);
    assert_eq!(header(OxmField::Ipv6Dst, Flavor::Nxm, true), 0x0001_2920);
    // Every OXM/NXM header maps back to its field.
    for f in OxmField::ALL {
        for flavor in [Flavor::Oxm, Flavor::Nxm] {
            let h = header(f, flavor, false);
            let w = lookup((h >> 16) as u16, ((h >> 9) & 0x7f) as u8, None).unwrap();
            assert_eq!(w.len, (h & 0xff) as usize, "{f:?}");
        }
    }
}

/// A random match that satisfies every prerequisite, with masks only
/// where Open vSwitch allows them.
pub(crate) fn arb_match() -> impl Strategy<Value = Match> {
    (any::<[u64; 12]>(), any::<u64>()).prop_map(|(r, flags)| {
        use OxmField::*;
        let bit = |n: u32| flags >> n & 1 != 0;
        let pick = |n: u32, k: u64| (flags >> n) % k;
        let mut m = Match::CATCHALL;
        let mut set = |f: OxmField, v: u128, mask: u128| {
            let full = ones(f.bits());
            m.set_field(f, v & full, mask & full).unwrap();
        };
        // Masked or exact, from one random word.
        let mm = |w: u64, exact: bool| -> u128 {
            if exact {
                u128::MAX
            } else {
                u128::from(w.rotate_left(17))
            }
        };
        if bit(0) {
            let p = r[0] as u32;
            set(
                InPort,
                u128::from(if bit(1) { p % 200 } else { p }),
                u128::MAX,
            );
        }
        if bit(2) {
            set(EthSrc, u128::from(r[1]), mm(r[1], bit(3)));
        }
        if bit(4) {
            set(EthDst, u128::from(r[2]), mm(r[2], bit(5)));
        }
        match pick(6, 4) {
            0 => {}
            1 => set(VlanVid, 0, 0x1fff),
            2 => set(VlanVid, 0x1000, 0x1000),
            _ => {
                set(
                    VlanVid,
                    0x1000 | u128::from(r[3]),
                    mm(r[3], bit(8)) | 0x1000,
                );
                if bit(9) {
                    set(VlanPcp, u128::from(r[3] >> 20), 7);
                }
            }
        }
        if bit(10) {
            set(Metadata, u128::from(r[4]), mm(r[4], bit(11)));
        }
        let eth = [0, 0x0800, 0x86dd, 0x0806, 0x88cc][pick(12, 5) as usize];
        if eth != 0 {
            set(EthType, eth, u128::MAX);
        }
        let ip = eth == 0x0800 || eth == 0x86dd;
        if ip {
            let (src, dst) = if eth == 0x0800 {
                (Ipv4Src, Ipv4Dst)
            } else {
                (Ipv6Src, Ipv6Dst)
            };
            let wide = |w: u64| u128::from(w) << 64 | u128::from(w.rotate_left(7));
            if bit(15) {
                set(src, wide(r[5]), mm(r[6], bit(16)));
            }
            if bit(17) {
                set(dst, wide(r[6]), mm(r[5], bit(18)));
            }
            if bit(19) {
                set(IpFrag, u128::from(r[7]), mm(r[7], bit(20)));
            }
            if bit(21) {
                set(IpDscp, u128::from(r[7] >> 8), u128::MAX);
            }
            if bit(22) {
                set(IpEcn, u128::from(r[7] >> 16), u128::MAX);
            }
            if bit(23) {
                set(IpTtl, u128::from(r[7] >> 24), u128::MAX);
            }
            let protos = [0, 6, 17, 132, 1, 58, 47];
            let p = protos[pick(24, 7) as usize];
            if p != 0 {
                set(IpProto, p, u128::MAX);
            }
            let l4: &[OxmField] = match p {
                6 => &[TcpSrc, TcpDst, TcpFlags],
                17 => &[UdpSrc, UdpDst],
                132 => &[SctpSrc, SctpDst],
                1 if eth == 0x0800 => &[Icmpv4Type, Icmpv4Code],
                58 if eth == 0x86dd => &[Icmpv6Type, Icmpv6Code],
                _ => &[],
            };
            for (i, f) in l4.iter().enumerate() {
                let i = i as u32;
                if bit(30 + 2 * i) {
                    let maskable = !matches!(f, Icmpv4Type | Icmpv4Code | Icmpv6Type | Icmpv6Code);
                    let w = r[8 + i as usize];
                    set(*f, u128::from(w), mm(w, !maskable || bit(31 + 2 * i)));
                }
            }
        } else if eth == 0x0806 {
            if bit(40) {
                set(ArpOp, u128::from(r[9]), u128::MAX);
            }
            if bit(41) {
                set(ArpSpa, u128::from(r[10]), mm(r[10], bit(42)));
            }
            if bit(43) {
                set(ArpTpa, u128::from(r[11]), mm(r[11], bit(44)));
            }
        }
        m
    })
}

proptest! {
    #[test]
    fn roundtrip_both_flavors(m in arb_match()) {
        m.check_prereqs().unwrap();
        for flavor in [Flavor::Oxm, Flavor::Nxm] {
            let mut out = Vec::new();
            encode_tlvs(&m, flavor, &mut out);
            let back = decode_tlvs(&out);
            prop_assert_eq!(back, Ok(m), "{:?} {:02x?}", flavor, out);
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_tlvs(&bytes);
        let _ = decode_set_field(&bytes);
    }

    #[test]
    fn decode_never_panics_on_known_headers(
        tlvs in proptest::collection::vec(
            (0usize..60, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40), any::<u8>()),
            0..8,
        )
    ) {
        // Plausible headers (known fields in both flavors) with random
        // payloads and lengths.
        let mut buf = Vec::new();
        for (i, masked, payload, len) in tlvs {
            let f = OxmField::ALL[i % OxmField::ALL.len()];
            let flavor = if i >= 30 { Flavor::Nxm } else { Flavor::Oxm };
            let w = wire_of(f, flavor);
            let mut h = header(f, flavor, masked);
            if len % 4 == 0 {
                h = (h & !0xff) | u32::from(len);
            }
            buf.extend_from_slice(&h.to_be_bytes());
            let n = if masked { 2 * w.len } else { w.len };
            buf.extend(payload.iter().copied().cycle().take(n));
        }
        let _ = decode_tlvs(&buf);
        let _ = decode_set_field(&buf);
    }
}
