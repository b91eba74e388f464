use super::*;
use crate::model::{Msg, OxmField};

fn sample() -> PacketIn {
    PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 100,
        reason: 1,
        table_id: 7,
        cookie: 0x1234_5678_9abc_def0,
        in_port: 3,
        metadata: 0x42,
        data: vec![0xab; 60],
        pipeline: vec![(OxmField::Reg(0), 0x1), (OxmField::Reg(5), 0xdead_beef)],
        userdata: vec![1, 2, 3],
        continuation: None,
    }
}

#[test]
fn round_trip_both_flavors_and_versions() {
    let p = sample();
    for version in [1u8, 4] {
        let mut out = Vec::new();
        put_body(&p, version, &mut out);
        assert_eq!(out.len() % 8, 0);
        assert_eq!(get_body(&out, version).unwrap(), p);
    }
    let msg = Msg::NxPacketIn2(p.clone());
    for v in [1u8, 4, 5, 6] {
        let mut out = Vec::new();
        crate::encode(&msg, v, 5, &mut out).unwrap();
        assert_eq!(&out[8..16], &[0, 0, 0x23, 0x20, 0, 0, 0, 30]);
        assert_eq!(crate::decode(&out).unwrap().1, msg, "version {v}");
    }
}

#[test]
fn layout_as_open_vswitch() {
    // Whole packet, no cookie, no userdata: no FULL_LEN, COOKIE or
    // USERDATA properties.
    let p = PacketIn {
        total_len: 4,
        data: vec![9, 9, 9, 9],
        cookie: u64::MAX,
        pipeline: Vec::new(),
        userdata: Vec::new(),
        metadata: 0,
        ..sample()
    };
    let mut out = Vec::new();
    put_body(&p, 4, &mut out);
    let want: &[u8] = &[
        0, 0, 0, 8, 9, 9, 9, 9, // PACKET
        0, 3, 0, 5, 7, 0, 0, 0, // TABLE_ID
        0, 5, 0, 5, 1, 0, 0, 0, // REASON
        0, 6, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0, // METADATA: OXM in_port
    ];
    assert_eq!(out, want);
    // The cookie is 64-bit aligned: 4 pad bytes after the header.
    let mut out = Vec::new();
    put_body(&sample(), 4, &mut out);
    let at = out.windows(4).position(|w| w == [0, 4, 0, 16]).unwrap();
    assert_eq!(&out[at + 4..at + 8], &[0; 4]);
}

#[test]
fn malformed_properties() {
    let bad_len = |body: &[u8]| get_body(body, 4).unwrap_err().err;
    // Shorter than its header.
    assert_eq!(
        bad_len(&[0, 0, 0, 2, 0, 0, 0, 0]),
        OfError::BAD_PROPERTY_LEN
    );
    // Longer than the message.
    assert_eq!(
        bad_len(&[0, 0, 0, 20, 0, 0, 0, 0]),
        OfError::BAD_PROPERTY_LEN
    );
    // Padding missing.
    assert_eq!(bad_len(&[0, 0, 0, 5, 1]), OfError::BAD_PROPERTY_LEN);
    // A truncated header.
    assert_eq!(bad_len(&[0, 0]), OfError::BAD_PROPERTY_LEN);
    // Wrong fixed sizes.
    let pkt = [0u8, 0, 0, 4, 0, 0, 0, 0];
    let with = |extra: &[u8]| [&pkt[..], extra].concat();
    assert_eq!(
        bad_len(&with(&[0, 3, 0, 6, 1, 2, 0, 0])),
        OfError::BAD_PROPERTY_LEN
    );
    assert_eq!(
        bad_len(&with(&[0, 4, 0, 8, 1, 2, 3, 4])),
        OfError::BAD_PROPERTY_LEN
    );
    assert_eq!(
        bad_len(&with(&[0, 1, 0, 6, 1, 2, 0, 0])),
        OfError::BAD_PROPERTY_LEN
    );
    // A truncated TLV in the metadata.
    assert_eq!(
        bad_len(&with(&[0, 6, 0, 7, 0x80, 0, 0, 0])),
        OfError::BAD_MATCH_LEN
    );
    // No packet.
    assert_eq!(bad_len(&[0, 3, 0, 5, 1, 0, 0, 0]), OfError::BAD_LEN);
    // Unknown properties are skipped (loose, as ovs-ofctl).
    let p = get_body(&with(&[0x7f, 0, 0, 4, 0, 0, 0, 0]), 4).unwrap();
    assert!(p.data.is_empty());
    assert_eq!(p.cookie, u64::MAX);
}
