//! OpenFlow 1.4 and 1.5: every message round-trips in both versions;
//! requests captured from `ovs-ofctl` 3.1 decode and re-encode to the
//! same bytes; every message xennet encodes is decoded by
//! `ovs-ofctl ofp-print` without error (when ovs-ofctl is installed).

use super::tests::every_msg;
use super::*;
use crate::model::AsyncProp;

fn enc_v(msg: &Msg, v: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_version(msg, v, 0x1234_5678, &mut out).unwrap_or_else(|e| panic!("{msg:?}: {e}"));
    out
}

fn dec(buf: &[u8]) -> Result<Msg, DecodeError> {
    crate::decode(buf).map(|(_, m)| m)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// What `ovs-ofctl ofp-print` says about `bytes`, or `None` without
/// ovs-ofctl.
fn ofp_print(bytes: &[u8]) -> Option<String> {
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new("ovs-ofctl")
        .args(["ofp-print", &h])
        .output()
        .ok()?;
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Whether ovs-ofctl decodes every message in `bytes` (a multipart reply
/// may be split into several); `Err` with what it said. `Ok` without
/// ovs-ofctl.
fn ofp_print_ok(bytes: &[u8]) -> Result<(), String> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let (one, tail) = rest.split_at(n);
        rest = tail;
        let Some(p) = ofp_print(one) else {
            return Ok(());
        };
        if p.contains("decode error")
            || p.contains("|WARN|")
            || p.contains("|ERR|")
            || p.contains("ovs-ofctl:")
        {
            return Err(p);
        }
    }
    Ok(())
}

fn assert_ofp_print_ok(bytes: &[u8], what: &str) {
    if let Err(p) = ofp_print_ok(bytes) {
        panic!("{what}: ovs-ofctl ofp-print says\n{p}");
    }
}

#[test]
fn every_message_roundtrips_in_1_4_and_1_5() {
    for v in [OFP14_VERSION, OFP15_VERSION] {
        for msg in every_msg() {
            let bytes = enc_v(&msg, v);
            assert_eq!(bytes[0], v);
            let back = dec(&bytes).unwrap_or_else(|e| panic!("{v} {msg:?}: {e}"));
            match (&msg, &back) {
                // 1.4 SET_ASYNC is a property list: it sets all twelve.
                (Msg::SetAsync(c), Msg::SetAsyncProps(p)) => {
                    let mut got = AsyncConfig::NONE;
                    crate::async_config::apply(&mut got, p);
                    assert_eq!(&got, c);
                }
                _ => assert_eq!(back, msg, "version {v}"),
            }
        }
    }
}

/// Every message of the 1.3 test set that ovs-ofctl accepts in 1.3 it
/// accepts in 1.4 and 1.5 too. (Some test messages are refused by
/// ovs-ofctl in every version for what they mean, not their format: a
/// set-field without its match prerequisite, an ERROR quoting test
/// bytes.)
#[test]
fn ofp_print_decodes_everything_we_send() {
    let mut checked = 0;
    for msg in every_msg() {
        if ofp_print_ok(&enc_v(&msg, OFP13_VERSION)).is_err() {
            continue;
        }
        checked += 1;
        for v in [OFP14_VERSION, OFP15_VERSION] {
            assert_ofp_print_ok(&enc_v(&msg, v), &format!("version {v}: {msg:?}"));
        }
    }
    assert!(checked > 40 || ofp_print(&[]).is_none(), "{checked}");
}

/// Requests `ovs-ofctl` 3.1 sent (captured on a unix socket).
#[test]
fn ovs_ofctl_requests_decode_and_reencode() {
    // -O OpenFlow15 add-group "group_id=1,type=select,bucket=weight:5,
    // output:2,bucket=output:3"
    let select = "060f005800000002000001000000000100400000ffffffff002000100000000000000010\
                  00000002000000000000000000000008000500000020001000000001000000100000000300\
                  000000000000000000000800010000";
    // -O OpenFlow15 add-group "group_id=2,type=ff,bucket=watch_port:2,
    // watch_group:7,output:2"
    let ff = "060f004000000002000003000000000200280000ffffffff0028001000000000000000100000\
              0002000000000000000000010008000000020002000800000007";
    // -O OpenFlow15 packet-out "in_port=1 packet=ffff..0806 actions=output:2"
    let po = "060d003e00000002ffffffff001000000001000c8000000400000001000000000000001000\
              0000020000000000000000ffffffffffff0200000000010806";
    // -O OpenFlow15 dump-groups br0 2; dump-ports-desc br0.
    let gd = "061200180000000200070000000000000000000200000000";
    let pd = "0612001800000002000d000000000000ffffffff00000000";
    for (h, expect) in [
        (select, None),
        (ff, None),
        (po, None),
        (
            gd,
            Some(Msg::MultipartRequest {
                flags: 0,
                body: MpRequest::GroupDesc(2),
            }),
        ),
        (
            pd,
            Some(Msg::MultipartRequest {
                flags: 0,
                body: MpRequest::PortDesc(OFPP_ANY),
            }),
        ),
    ] {
        let b = hex(&h.replace(' ', ""));
        let m = dec(&b).unwrap_or_else(|e| panic!("{h}: {e}"));
        if let Some(e) = expect {
            assert_eq!(m, e);
        }
        let mut out = Vec::new();
        encode_version(&m, b[0], 2, &mut out).unwrap();
        assert_eq!(out, b, "{m:?}");
    }
    let Msg::GroupMod(g) = dec(&hex(&select.replace(' ', ""))).unwrap() else {
        panic!()
    };
    assert_eq!((g.buckets[0].weight, g.buckets[1].weight), (5, 1));
    let Msg::GroupMod(g) = dec(&hex(&ff.replace(' ', ""))).unwrap() else {
        panic!()
    };
    assert_eq!((g.buckets[0].watch_port, g.buckets[0].watch_group), (2, 7));
    let Msg::PacketOut(p) = dec(&hex(&po.replace(' ', ""))).unwrap() else {
        panic!()
    };
    assert_eq!((p.in_port, p.data.len()), (1, 14));

    // add-flow "priority=100,in_port=1,importance=7,actions=meter:1,
    // output:2": 1.5 has the meter as an action, 1.4 as an instruction;
    // both decode to the same flow-mod (importance is ignored).
    let fm15 = hex(
        "060e006000000002000000000000000000000000000000000000000000000064ffffffff\
                    ffffffffffffffff000000070001000c8000000400000001000000000004002000000000\
                    001d00080000000100000010000000020000000000000000",
    );
    let fm14 = hex(
        "050e006000000002000000000000000000000000000000000000000000000064ffffffff\
                    ffffffffffffffff000000070001000c80000004000000010000000000060008000000010\
                    00400180000000000000010000000020000000000000000",
    );
    let (Msg::FlowMod(a), Msg::FlowMod(b)) = (dec(&fm15).unwrap(), dec(&fm14).unwrap()) else {
        panic!()
    };
    assert_eq!(a, b);
    assert_eq!(a.instructions.meter, Some(1));
    for (v, wire) in [(OFP15_VERSION, fm15), (OFP14_VERSION, fm14)] {
        let mut out = Vec::new();
        encode_version(&Msg::FlowMod(a.clone()), v, 2, &mut out).unwrap();
        let mut expect = wire.clone();
        expect[0x2e] = 0; // importance 7 -> 0
        expect[0x2f] = 0;
        assert_eq!(out, expect);
    }
    // A meter instruction is not 1.5: UNKNOWN_INST, as in Open vSwitch.
    let mut bad = Vec::new();
    encode_version(&Msg::FlowMod(a), OFP14_VERSION, 2, &mut bad).unwrap();
    bad[0] = OFP15_VERSION;
    assert_eq!(dec(&bad).unwrap_err().err, OfError::UNKNOWN_INST);
}

/// Layouts by hand, for the formats that changed.
#[test]
fn new_layouts() {
    let p = PortDesc {
        port_no: 1,
        hw_addr: [2, 0, 0, 0, 0, 1],
        name: "vif1.0".into(),
        config: 0,
        state: 4,
        curr: 0x820,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    };
    // ofp_port 1.4: 72 bytes, length at 4, the Ethernet property at 40.
    let b = enc_v(
        &Msg::PortStatus(PortStatus {
            reason: 2,
            desc: p.clone(),
        }),
        OFP14_VERSION,
    );
    assert_eq!(b.len(), 8 + 8 + 72);
    assert_eq!(&b[16..24], &[0, 0, 0, 1, 0, 72, 0, 0]);
    assert_eq!(&b[16 + 40..16 + 44], &[0, 0, 0, 32]);
    assert_eq!(&b[16 + 48..16 + 52], &0x820u32.to_be_bytes());
    assert_ofp_print_ok(&b, "port status 1.4");

    // Port stats 1.4: 120-byte entries.
    let s = PortStats {
        port_no: 1,
        rx_packets: 1,
        tx_packets: 2,
        rx_bytes: 3,
        tx_bytes: 4,
        rx_dropped: 5,
        tx_dropped: 6,
        rx_errors: 7,
        tx_errors: 8,
        rx_frame_err: 9,
        rx_over_err: 10,
        rx_crc_err: 11,
        collisions: 12,
        duration_sec: 13,
        duration_nsec: 14,
    };
    let m = Msg::MultipartReply {
        flags: 0,
        body: MpReply::PortStats(vec![s.clone(), s]),
    };
    let b = enc_v(&m, OFP14_VERSION);
    assert_eq!(b.len(), 16 + 2 * 120);
    assert_eq!(&b[16..18], &[0, 120]);
    assert_eq!(&b[16 + 80..16 + 84], &[0, 0, 0, 40]);
    if let Some(p) = ofp_print(&b) {
        assert!(
            p.contains("rx pkts=1, bytes=3, drop=5, errs=7, frame=9, over=10, crc=11"),
            "{p}"
        );
    }

    // 1.5 aggregate: ofp_stats with packet, byte and flow counts.
    let m = Msg::MultipartReply {
        flags: 0,
        body: MpReply::Aggregate {
            packet_count: 5,
            byte_count: 300,
            flow_count: 2,
        },
    };
    let b = enc_v(&m, OFP15_VERSION);
    assert_eq!(
        b[16..],
        hex("0000002480020808000000000000000580020a08000000000000012c800206040000000200000000")
    );
    if let Some(p) = ofp_print(&b) {
        assert!(
            p.contains("packet_count=5 byte_count=300 flow_count=2"),
            "{p}"
        );
    }

    // 1.4 async: twelve 8-byte properties; SET with some of them.
    let b = enc_v(&Msg::GetAsyncReply(AsyncConfig::NONE), OFP14_VERSION);
    assert_eq!(b.len(), 8 + 12 * 8);
    let set = Msg::SetAsyncProps(vec![AsyncProp { typ: 1, mask: 3 }]);
    assert_eq!(dec(&enc_v(&set, OFP15_VERSION)).unwrap(), set);
    let bad = enc_v(
        &Msg::SetAsyncProps(vec![AsyncProp { typ: 3, mask: 8 }]),
        OFP14_VERSION,
    );
    assert_eq!(dec(&bad).unwrap_err().err, OfError::ASYNC_CONFIG_INVALID);
    let bad = enc_v(
        &Msg::SetAsyncProps(vec![AsyncProp { typ: 12, mask: 0 }]),
        OFP14_VERSION,
    );
    assert_eq!(
        dec(&bad).unwrap_err().err,
        OfError::ASYNC_CONFIG_UNSUPPORTED
    );
    let mut c = AsyncConfig::NONE;
    crate::async_config::apply(
        &mut c,
        &[AsyncProp { typ: 4, mask: 1 }, AsyncProp { typ: 1, mask: 2 }],
    );
    assert_eq!((c.flow_removed_mask, c.packet_in_mask), ([0, 1], [2, 0]));
}

#[test]
fn refused_in_1_4_and_1_5() {
    let e = |b: &[u8]| dec(b).unwrap_err().err;
    for v in [OFP14_VERSION, OFP15_VERSION] {
        // Bundle control decodes (crate::bundle); an add without a
        // message is OFPBFC_MSG_BAD_LEN.
        assert!(matches!(
            dec(&[v, 33, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
            Ok(Msg::BundleControl(_))
        ));
        assert_eq!(
            e(&[v, 34, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
            OfError::BUNDLE_MSG_BAD_LEN
        );
        // Table desc, queue desc, flow monitor: BAD_MULTIPART.
        for mp in [14u8, 15, 16] {
            assert_eq!(
                e(&[v, 18, 0, 16, 0, 0, 0, 1, 0, mp, 0, 0, 0, 0, 0, 0]),
                OfError::BAD_MULTIPART
            );
        }
        // Table-mod with a vacancy property.
        let tm = [
            v, 17, 0, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 3, 0, 8, 1, 2, 0, 0,
        ];
        assert_eq!(e(&tm), OfError::TABLE_MOD_BAD_CONFIG);
    }
    // 1.5 group-mod INSERT_BUCKET.
    let mut g = enc_v(
        &Msg::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::All,
            group_id: 1,
            buckets: vec![],
            selection: None,
        }),
        OFP15_VERSION,
    );
    g[9] = 3;
    assert_eq!(e(&g), OfError::BAD_GROUP_COMMAND);
}

proptest::proptest! {
    #[test]
    fn decode_1_4_and_1_5_never_panics(
        v in 5u8..=6,
        typ in 0u8..36,
        mptype in 0u16..20,
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        let mut b = vec![v, typ, 0, 0, 0, 0, 0, 1];
        if typ == 18 || typ == 19 {
            b.extend_from_slice(&mptype.to_be_bytes());
            b.extend_from_slice(&[0; 6]);
        }
        b.extend_from_slice(&body);
        let n = b.len() as u16;
        b[2..4].copy_from_slice(&n.to_be_bytes());
        let _ = dec(&b);
    }
}

/// A bucket's actions are in the group-mod's version: in 1.5 a masked
/// set-field (as OVN's load balancer groups write `ct_mark` bits) round-
/// trips as a 1.5 set-field, which a 1.3 decoder refuses.
#[test]
fn group_bucket_actions_use_the_message_version() {
    let load = Action::Load {
        dst: Subfield {
            field: MfField::Oxm(OxmField::Reg(0)),
            ofs: 1,
            n_bits: 1,
        },
        value: 1,
    };
    for gt in [GroupType::Select, GroupType::All] {
        let gm = Msg::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group_type: gt,
            group_id: 1,
            selection: None,
            buckets: vec![Bucket {
                weight: u16::from(gt == GroupType::Select),
                watch_port: OFPP_ANY,
                watch_group: OFPG_ANY,
                actions: vec![
                    load.clone(),
                    Action::Output {
                        port: 2,
                        max_len: 0,
                    },
                ],
            }],
        });
        let b = enc_v(&gm, OFP15_VERSION);
        assert_eq!(dec(&b).unwrap(), gm);
        assert_ofp_print_ok(&b, "1.5 group-mod with a masked set-field");
    }
}

/// OVS's selection method group property (issue 15 item 5): round trip
/// in 1.5 group-mods and descriptions, what `ovs-ofctl ofp-print` reads
/// from it, left out in 1.3, and OVS's errors for bad ones.
#[test]
fn group_selection_method_property() {
    use crate::model::{HashField, MfField, SelectionKind, SelectionMethod};
    let sel = SelectionMethod {
        kind: SelectionKind::Hash,
        param: 7,
        fields: vec![
            HashField {
                field: MfField::Oxm(OxmField::Ipv4Src),
                mask: 0xffff_ff00,
                n_bytes: 4,
            },
            HashField {
                field: MfField::Oxm(OxmField::TcpDst),
                mask: 0xffff,
                n_bytes: 2,
            },
        ],
    };
    let gm = |gt, sel: Option<SelectionMethod>| {
        Msg::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group_type: gt,
            group_id: 1,
            buckets: vec![],
            selection: sel,
        })
    };
    let m = gm(GroupType::Select, Some(sel.clone()));
    let b = enc_v(&m, OFP15_VERSION);
    assert_eq!(dec(&b).unwrap(), m);
    if let Some(p) = ofp_print(&b) {
        assert!(
            p.contains("selection_method=hash,selection_method_param=7,fields(ip_src=255.255.255.0,tcp_dst)"),
            "{p}"
        );
    }
    let desc = Msg::MultipartReply {
        flags: 0,
        body: MpReply::GroupDesc(vec![GroupDesc {
            group_type: GroupType::Select,
            group_id: 1,
            buckets: vec![],
            selection: Some(SelectionMethod {
                kind: SelectionKind::DpHash,
                param: 0x1_0000_0005,
                fields: vec![],
            }),
        }]),
    };
    let b = enc_v(&desc, OFP15_VERSION);
    assert_eq!(dec(&b).unwrap(), desc);
    assert_ofp_print_ok(&b, "group desc with dp_hash");
    if let Some(p) = ofp_print(&b) {
        assert!(
            p.contains("selection_method=dp_hash,selection_method_param=4294967301"),
            "{p}"
        );
    }
    // 1.3 has no group properties: the method is left out.
    let b = enc_v(&m, OFP13_VERSION);
    assert_eq!(dec(&b).unwrap(), gm(GroupType::Select, None));
    // OVS's errors.
    let e = |b: &[u8]| dec(b).unwrap_err().err;
    let good = enc_v(&m, OFP15_VERSION);
    // The property starts after the 16 fixed bytes (no buckets).
    let prop = 8 + 16;
    let mut b = good.clone();
    b[10] = 0; // type all
    assert_eq!(e(&b), OfError::BAD_PROPERTY_VALUE);
    let mut b = good.clone();
    b[prop + 16] = b'x'; // "xash"
    assert_eq!(e(&b), OfError::BAD_PROPERTY_VALUE);
    let mut b = good.clone();
    b[prop + 16..prop + 32].fill(b'h'); // no NUL
    assert_eq!(e(&b), OfError::BAD_PROPERTY_VALUE);
    let mut b = good.clone();
    b[prop + 7] = 0x4e; // another experimenter
    assert_eq!(e(&b), OfError::BAD_PROPERTY_EXPERIMENTER);
    let mut b = good.clone();
    b[prop + 7] = 0x40; // OVS 2.4's NTR_COMPAT_VENDOR_ID
    assert_eq!(dec(&b).unwrap(), m);
    let mut b = good.clone();
    b[prop..prop + 2].copy_from_slice(&[0, 5]); // not experimenter
    assert_eq!(e(&b), OfError::BAD_PROPERTY_TYPE);
    // dp_hash with fields.
    let dp = gm(
        GroupType::Select,
        Some(SelectionMethod {
            kind: SelectionKind::DpHash,
            ..sel.clone()
        }),
    );
    let mut b = enc_v(&m, OFP15_VERSION);
    let d = enc_v(&dp, OFP15_VERSION);
    b[prop + 16..prop + 32].copy_from_slice(&d[prop + 16..prop + 32]);
    assert_eq!(e(&b), OfError::BAD_PROPERTY_VALUE);
    // A field twice.
    let twice = gm(
        GroupType::Select,
        Some(SelectionMethod {
            fields: vec![sel.fields[1], sel.fields[1]],
            ..sel.clone()
        }),
    );
    assert_eq!(e(&enc_v(&twice, OFP15_VERSION)), OfError::DUP_FIELD);
    // An unknown field (OXM class 0x8000, field 127).
    let mut b = good.clone();
    b[prop + 40..prop + 44].copy_from_slice(&[0x80, 0x00, 0xfe, 0x04]);
    assert_eq!(e(&b), OfError::BAD_FIELD);
}
