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

fn continuation() -> continuation::Continuation {
    use crate::model::{Action, MfField, Subfield};
    use continuation::FrozenOp;
    let reg3 = Subfield {
        field: MfField::Oxm(OxmField::Reg(3)),
        ofs: 0,
        n_bits: 32,
    };
    continuation::Continuation {
        bridge: [7; 16],
        stack: vec![0x2a, 0x1234_5678_9abc_def0_1122],
        mirrors: 0,
        conntracked: true,
        ops: vec![
            FrozenOp::Unroll {
                table_id: 3,
                cookie: 0x5a,
            },
            FrozenOp::Act(Action::SetField {
                field: OxmField::Reg(2),
                value: 2,
            }),
            FrozenOp::Act(Action::StackPop(reg3)),
            FrozenOp::Unroll {
                table_id: 3,
                cookie: 0x5a,
            },
            FrozenOp::WriteMetadata(0x10, 0xff),
            FrozenOp::Unroll {
                table_id: 0,
                cookie: 0x99,
            },
            FrozenOp::Act(Action::Output {
                port: 2,
                max_len: 0,
            }),
            FrozenOp::ClearActions,
            FrozenOp::WriteActions(vec![Action::Output {
                port: 3,
                max_len: 0,
            }]),
            FrozenOp::GotoTable(9),
        ],
        action_set: vec![Action::Output {
            port: 4,
            max_len: 0,
        }],
        odp_port: 0,
        frag_max_size: 0,
        frag_id: 0,
    }
}

/// The continuation round-trips in every version, each op after the
/// table and cookie of its rule (the decoder puts an `Unroll` before
/// every group; the encoder sends only what changed).
#[test]
fn continuation_round_trips() {
    use continuation::FrozenOp;
    let c = continuation();
    for v in [1u8, 4, 5, 6] {
        let p = PacketIn {
            continuation: Some(Box::new(c.clone())),
            ..sample()
        };
        let msg = Msg::NxResume(p.clone());
        let mut out = Vec::new();
        crate::encode(&msg, v, 5, &mut out).unwrap();
        assert_eq!(&out[12..16], &[0, 0, 0, 28], "NXT_RESUME");
        let Msg::NxResume(back) = crate::decode(&out).unwrap().1 else {
            panic!("version {v}")
        };
        let got = back.continuation.unwrap();
        assert_eq!(got.bridge, c.bridge);
        assert_eq!(got.stack, c.stack);
        assert!(got.conntracked);
        assert_eq!(got.action_set, c.action_set);
        // The ops without their Unrolls, and the Unroll before each.
        let strip = |ops: &[FrozenOp]| -> Vec<FrozenOp> {
            let mut v = Vec::new();
            let mut at = None;
            for op in ops {
                match op {
                    FrozenOp::Unroll { .. } => at = Some(op.clone()),
                    _ => {
                        v.push(at.clone().unwrap());
                        v.push(op.clone());
                    }
                }
            }
            v
        };
        assert_eq!(strip(&got.ops), strip(&c.ops), "version {v}");
    }
}

/// Truncated, overlong or unknown continuation properties: NXT_RESUME
/// refuses them with an error (never a panic); a packet-in read by a
/// controller just drops a continuation it cannot read.
#[test]
fn bad_continuations_are_errors() {
    let p = PacketIn {
        continuation: Some(Box::new(continuation())),
        ..sample()
    };
    let mut body = Vec::new();
    put_body(&p, 4, &mut body);
    assert!(get_resume(&body, 4).unwrap().continuation.is_some());
    // Every cut of the body is an error or a shorter message, never a
    // panic; and every single-byte change decodes or errs.
    for n in 0..body.len() {
        let _ = get_resume(&body[..n], 4);
        let _ = get_body(&body[..n], 4);
        for x in [0x00, 0x01, 0x7f, 0xff] {
            let mut b = body.clone();
            b[n] = x;
            let _ = get_resume(&b, 4);
        }
    }
    // The continuation property's length beyond the message.
    let at = props_at(&body, prop::CONTINUATION);
    let mut long = body.clone();
    let len = u16::from_be_bytes([long[at + 2], long[at + 3]]);
    long[at + 2..at + 4].copy_from_slice(&(len + 8).to_be_bytes());
    assert_eq!(
        get_resume(&long, 4).unwrap_err().err,
        OfError::BAD_PROPERTY_LEN
    );
    // An unknown property inside it.
    let mut unknown = body.clone();
    unknown[at + 8..at + 10].copy_from_slice(&0x8077u16.to_be_bytes());
    assert_eq!(
        get_resume(&unknown, 4).unwrap_err().err,
        OfError::BAD_PROPERTY_TYPE
    );
    // A controller reading it skips what it does not know.
    let read = get_body(&unknown, 4).unwrap();
    assert_eq!(
        read.continuation.unwrap().bridge,
        [0; 16],
        "the unknown property skipped"
    );
    assert_eq!(read.data, p.data);
}

/// Offset of the first property of type `typ` in `body`.
fn props_at(body: &[u8], typ: u16) -> usize {
    let mut at = 0;
    while at + 4 <= body.len() {
        let t = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        if t == typ {
            return at;
        }
        at += len.div_ceil(8) * 8;
    }
    panic!("no property {typ}")
}

/// Geneve options in the metadata (OVS `tun_metadata_get_fmd`): the real
/// `ovs-ofctl ofp-print` reads them as `tun_metadata<i>` of the mapped
/// length, in NXM (1.0) and OXM (1.5).
#[test]
fn tun_metadata_as_ovs_ofctl_reads_it() {
    let p = PacketIn {
        pipeline: vec![
            (OxmField::Reg(14), 3),
            (
                OxmField::TunMetadata {
                    index: 0,
                    offset: 0,
                    len: 4,
                },
                0x0001_0002,
            ),
        ],
        ..sample()
    };
    for v in [1u8, 6] {
        let mut out = Vec::new();
        crate::encode(&Msg::NxPacketIn2(p.clone()), v, 5, &mut out).unwrap();
        let hexs: String = out.iter().map(|b| format!("{b:02x}")).collect();
        let o = std::process::Command::new("ovs-ofctl")
            .args(["ofp-print", &hexs])
            .output()
            .expect("ovs-ofctl (apt-get install openvswitch-common)");
        let t = String::from_utf8_lossy(&o.stdout);
        assert!(t.contains("tun_metadata0=0x10002"), "version {v}: {t}");
        assert!(t.contains("reg14=0x3"), "version {v}: {t}");
    }
}

/// A reassembled datagram's fragment size (xennet's `FRAG` continuation
/// property) round-trips in every version; a continuation without one
/// has no such property, byte for byte as before.
#[test]
fn continuation_frag_size_round_trips() {
    let plain = continuation();
    let c = continuation::Continuation {
        frag_max_size: 1500,
        frag_id: 0x1234_5678,
        ..plain.clone()
    };
    for v in [1u8, 4, 5, 6] {
        let mut with = Vec::new();
        let p = PacketIn {
            continuation: Some(Box::new(c.clone())),
            ..sample()
        };
        put_body(&p, v, &mut with);
        let back = get_resume(&with, v).unwrap().continuation.unwrap();
        assert_eq!(back.frag_max_size, 1500, "version {v}");
        assert_eq!(back.frag_id, 0x1234_5678, "version {v}");
        // Without a size: the property is absent and the rest unchanged.
        let mut without = Vec::new();
        let p = PacketIn {
            continuation: Some(Box::new(plain.clone())),
            ..sample()
        };
        put_body(&p, v, &mut without);
        let f = continuation::prop::FRAG.to_be_bytes();
        assert!(
            !without.windows(4).any(|w| w == [f[0], f[1], 0, 12]),
            "version {v}: no FRAG property"
        );
        assert_eq!(with.len(), without.len() + 16, "version {v}");
        let back = get_resume(&without, v).unwrap().continuation.unwrap();
        assert_eq!((back.frag_max_size, back.frag_id), (0, 0));
    }
}

/// A malformed `FRAG` continuation property from a controller: a wrong
/// length is `OFPBPC_BAD_LEN`, a size below the minimum fragment size or
/// nonzero padding `OFPBPC_BAD_VALUE`; never a panic.
#[test]
fn bad_frag_continuation_is_refused() {
    let c = continuation::Continuation {
        frag_max_size: continuation::MIN_FRAG_SIZE,
        frag_id: 7,
        ..Default::default()
    };
    let p = PacketIn {
        continuation: Some(Box::new(c)),
        ..sample()
    };
    let mut body = Vec::new();
    put_body(&p, 4, &mut body);
    let back = get_resume(&body, 4).unwrap().continuation.unwrap();
    assert_eq!(back.frag_max_size, continuation::MIN_FRAG_SIZE);
    // The only property inside the continuation, after its 8-byte header.
    let at = props_at(&body, prop::CONTINUATION) + 8;
    assert_eq!(
        &body[at..at + 4],
        &[0x80, 0x44, 0, 12],
        "FRAG property, 8 bytes of value"
    );
    let refused = |b: &[u8]| get_resume(b, 4).unwrap_err().err;
    // Too short and too long (the padding covers 4 more bytes).
    for len in [4u16, 6, 11, 13, 16] {
        let mut b = body.clone();
        b[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(refused(&b), OfError::BAD_PROPERTY_LEN, "length {len}");
    }
    // Sizes below the minimum, 0 included.
    for size in [0u16, 1, continuation::MIN_FRAG_SIZE - 1] {
        let mut b = body.clone();
        b[at + 4..at + 6].copy_from_slice(&size.to_be_bytes());
        assert_eq!(refused(&b), OfError::BAD_PROPERTY_VALUE, "size {size}");
    }
    // Nonzero padding.
    let mut b = body.clone();
    b[at + 6] = 1;
    assert_eq!(refused(&b), OfError::BAD_PROPERTY_VALUE);
    // Every single-byte change of the property decodes or errs.
    for n in at..at + 16 {
        for x in [0x00, 0x01, 0x7f, 0xff] {
            let mut b = body.clone();
            b[n] = x;
            let _ = get_resume(&b, 4);
        }
    }
}
