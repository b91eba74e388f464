//! Bundle messages: round trips in 1.3 (ONF extension), 1.4 and 1.5,
//! the wire layout checked against `ovs-ofctl ofp-print` (Open vSwitch
//! 3.1, required), and every malformed case getting the error Open
//! vSwitch gives (or the documented refusal where it ignores).

use super::*;
use crate::header::{OFP13_VERSION, OFP14_VERSION};
use crate::model::{
    Action, FlowMod, FlowModCommand, GroupMod, GroupModCommand, GroupType, Instructions, Match,
    PacketOut, PortMod, OFPG_ANY, OFPP_ANY, OFPP_CONTROLLER,
};

const XID: u32 = 0x0102_0304;
const VERSIONS: [u8; 3] = [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION];

fn enc(msg: &Msg, v: u8) -> Vec<u8> {
    let mut out = Vec::new();
    crate::encode(msg, v, XID, &mut out).unwrap_or_else(|e| panic!("{msg:?}: {e}"));
    out
}

fn dec_err(buf: &[u8]) -> OfError {
    match crate::decode(buf) {
        Ok((_, m)) => panic!("decoded {m:?}"),
        Err(e) => e.err,
    }
}

/// `bytes` with its header length fixed.
fn fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u16::try_from(bytes.len()).unwrap();
    bytes[2..4].copy_from_slice(&n.to_be_bytes());
    bytes
}

/// What `ovs-ofctl ofp-print` prints for `bytes` (ovs-ofctl is part of
/// the test environment: its absence fails the test).
fn ofp_print(bytes: &[u8]) -> String {
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new("ovs-ofctl")
        .args(["ofp-print", &h])
        .output()
        .expect("ovs-ofctl (openvswitch-common) is needed by this test");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn flow_mod() -> FlowMod {
    FlowMod {
        cookie: 0x10,
        cookie_mask: 0,
        table_id: 1,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 100,
        buffer_id: crate::header::NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: 0,
        matcher: Match::CATCHALL,
        instructions: Instructions::apply(vec![Action::Output {
            port: 2,
            max_len: 0,
        }]),
    }
}

fn bundlable() -> Vec<Msg> {
    vec![
        Msg::FlowMod(flow_mod()),
        Msg::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::All,
            group_id: 9,
            buckets: vec![crate::model::Bucket {
                weight: 0,
                watch_port: OFPP_ANY,
                watch_group: OFPG_ANY,
                actions: vec![Action::Output {
                    port: 3,
                    max_len: 0,
                }],
            }],
            selection: None,
        }),
        Msg::PortMod(PortMod {
            port_no: 1,
            hw_addr: [2, 0, 0, 0, 0, 1],
            config: 1,
            mask: 1,
            advertise: 0,
        }),
        Msg::PacketOut(PacketOut {
            buffer_id: crate::header::NO_BUFFER,
            in_port: OFPP_CONTROLLER,
            actions: vec![Action::Output {
                port: 1,
                max_len: 0,
            }],
            data: vec![0xff; 60],
        }),
    ]
}

fn ctrl(typ: BundleCtrlType, flags: u16) -> Msg {
    Msg::BundleControl(BundleCtrl {
        bundle_id: 0xabc,
        typ,
        flags,
    })
}

fn add(msg: Msg) -> Msg {
    Msg::BundleAdd(BundleAdd {
        bundle_id: 0xabc,
        flags: bundle_flags::ATOMIC | bundle_flags::ORDERED,
        msg: Box::new(msg),
    })
}

#[test]
fn test_construct_control_layout() {
    let m = ctrl(
        BundleCtrlType::OpenRequest,
        bundle_flags::ATOMIC | bundle_flags::ORDERED,
    );
    // 1.4: OFPT_BUNDLE_CONTROL, 16 bytes.
    let b = enc(&m, OFP14_VERSION);
    assert_eq!(b, [5, 33, 0, 16, 1, 2, 3, 4, 0, 0, 0x0a, 0xbc, 0, 0, 0, 3]);
    // 1.3: the ONF experimenter message, 24 bytes.
    let b = enc(&m, OFP13_VERSION);
    assert_eq!(
        b,
        [
            4, 4, 0, 24, 1, 2, 3, 4, 0x4f, 0x4e, 0x46, 0, 0, 0, 0x08, 0xfc, 0, 0, 0x0a, 0xbc, 0, 0,
            0, 3
        ]
    );
}

#[test]
fn every_control_type_roundtrips_and_ovs_reads_it() {
    for v in VERSIONS {
        for t in 0..8 {
            let typ = BundleCtrlType::from_wire(t).unwrap();
            assert_eq!(typ.to_wire(), t);
            for flags in [0, bundle_flags::ATOMIC, bundle_flags::ORDERED, 3] {
                let m = ctrl(typ, flags);
                let b = enc(&m, v);
                let (h, back) = crate::decode(&b).unwrap();
                assert_eq!((h.xid, &back), (XID, &m), "version {v}");
            }
            let p = ofp_print(&enc(&ctrl(typ, 3), v));
            let name = format!("{typ:?}")
                .replace("Request", "_REQUEST")
                .replace("Reply", "_REPLY")
                .to_uppercase();
            assert!(p.contains(&format!("type={name}")), "{p}");
            assert!(p.contains("flags=atomic ordered"), "{p}");
            let kind = if v == OFP13_VERSION {
                "ONFT_BUNDLE_CONTROL"
            } else {
                "OFPT_BUNDLE_CONTROL"
            };
            assert!(p.contains(kind), "{p}");
        }
    }
    assert_eq!(BundleCtrlType::from_wire(8), None);
    assert_eq!(
        BundleCtrlType::CommitRequest.reply(),
        Some(BundleCtrlType::CommitReply)
    );
    assert_eq!(BundleCtrlType::CommitReply.reply(), None);
}

#[test]
fn every_bundlable_message_roundtrips_in_an_add() {
    for v in VERSIONS {
        for inner in bundlable() {
            let m = add(inner.clone());
            let b = enc(&m, v);
            // The included message carries the outer version and xid.
            let at = if v == OFP13_VERSION { 24 } else { 16 };
            assert_eq!(b[at], v);
            assert_eq!(b[at + 4..at + 8], XID.to_be_bytes());
            let (_, back) = crate::decode(&b).unwrap_or_else(|e| panic!("{v} {inner:?}: {e}"));
            assert_eq!(back, m, "version {v}");
            let p = ofp_print(&b);
            assert!(
                !p.contains("decode error") && !p.contains("WARN"),
                "{v} {inner:?}: {p}"
            );
            assert!(p.contains("BUNDLE_ADD_MESSAGE"), "{p}");
        }
    }
}

#[test]
fn a_message_that_cannot_be_bundled_is_not_encoded() {
    for inner in [Msg::BarrierRequest, ctrl(BundleCtrlType::OpenRequest, 0)] {
        let mut out = Vec::new();
        assert!(crate::encode(&add(inner), OFP14_VERSION, XID, &mut out).is_err());
        assert!(out.is_empty());
    }
    let mut out = Vec::new();
    assert!(crate::encode(&ctrl(BundleCtrlType::OpenRequest, 0), 1, XID, &mut out).is_err());
}

#[test]
fn test_malformed_control() {
    for v in VERSIONS {
        let good = enc(&ctrl(BundleCtrlType::OpenRequest, 0), v);
        let body = if v == OFP13_VERSION { 16 } else { 8 };
        // Short: OFPBRC_BAD_LEN.
        assert_eq!(dec_err(&fixed(good[..body + 6].to_vec())), OfError::BAD_LEN);
        // Trailing bytes not a multiple of 8: OFPBRC_BAD_LEN.
        let mut b = good.clone();
        b.extend_from_slice(&[0; 4]);
        assert_eq!(dec_err(&fixed(b)), OfError::BAD_LEN);
        // Unknown control type.
        let mut b = good.clone();
        b[body + 4..body + 6].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(dec_err(&b), OfError::BUNDLE_BAD_TYPE);
        // Unknown flag.
        let mut b = good.clone();
        b[body + 7] = 0x08;
        assert_eq!(dec_err(&b), OfError::BUNDLE_BAD_FLAGS);
        // OFPBF_TIME: scheduled commits (1.5) are not supported.
        let mut b = good.clone();
        b[body + 7] = 0x04;
        let want = if v == OFP15_VERSION {
            OfError::BUNDLE_SCHED_NOT_SUPPORTED
        } else {
            OfError::BUNDLE_BAD_FLAGS
        };
        assert_eq!(dec_err(&b), want);
        // Properties are refused.
        let with_prop = |typ: u16, len: u16| {
            let mut b = good.clone();
            b.extend_from_slice(&typ.to_be_bytes());
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&[0; 12]);
            fixed(b)
        };
        assert_eq!(
            dec_err(&with_prop(0xffff, 12)),
            OfError::BAD_PROPERTY_EXPERIMENTER
        );
        let want = if v == OFP15_VERSION {
            OfError::BUNDLE_SCHED_NOT_SUPPORTED
        } else {
            OfError::BAD_PROPERTY_TYPE
        };
        assert_eq!(dec_err(&with_prop(1, 16)), want);
        assert_eq!(dec_err(&with_prop(7, 2)), OfError::BAD_PROPERTY_LEN);
        assert_eq!(dec_err(&with_prop(7, 40)), OfError::BAD_PROPERTY_LEN);
    }
    // OFPT_BUNDLE_CONTROL does not exist in 1.3, the ONF message only in
    // 1.3 (Open vSwitch: OFPBRC_BAD_TYPE, OFPBRC_BAD_EXP_TYPE).
    let mut b = enc(&ctrl(BundleCtrlType::OpenRequest, 0), OFP14_VERSION);
    b[0] = OFP13_VERSION;
    assert_eq!(dec_err(&b), OfError::BAD_TYPE);
    let mut b = enc(&ctrl(BundleCtrlType::OpenRequest, 0), OFP13_VERSION);
    b[0] = OFP14_VERSION;
    assert_eq!(dec_err(&b), OfError::BAD_EXP_TYPE);
    b[0] = OFP13_VERSION;
    b[15] = 0xfe; // exp_type 2302
    assert_eq!(dec_err(&b), OfError::BAD_EXP_TYPE);
}

#[test]
fn test_malformed_add() {
    for v in VERSIONS {
        let good = enc(&add(Msg::FlowMod(flow_mod())), v);
        let at = if v == OFP13_VERSION { 24 } else { 16 };
        // No included message / a cut header: OFPBFC_MSG_BAD_LEN.
        assert_eq!(
            dec_err(&fixed(good[..at].to_vec())),
            OfError::BUNDLE_MSG_BAD_LEN
        );
        assert_eq!(
            dec_err(&fixed(good[..at + 7].to_vec())),
            OfError::BUNDLE_MSG_BAD_LEN
        );
        // Included message longer than what is there, or shorter than
        // its header.
        assert_eq!(
            dec_err(&fixed(good[..good.len() - 1].to_vec())),
            OfError::BUNDLE_MSG_BAD_LEN
        );
        let mut b = good.clone();
        b[at + 2..at + 4].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(dec_err(&b), OfError::BUNDLE_MSG_BAD_LEN);
        // Another version.
        let mut b = good.clone();
        b[at] = if v == OFP14_VERSION { 6 } else { 5 };
        assert_eq!(dec_err(&b), OfError::BAD_VERSION);
        // Another xid.
        let mut b = good.clone();
        b[at + 7] ^= 1;
        assert_eq!(dec_err(&b), OfError::BUNDLE_MSG_BAD_XID);
        // Not bundlable: a barrier, a nested bundle message.
        let mut b = good[..at].to_vec();
        b.extend_from_slice(&[v, 20, 0, 8, 1, 2, 3, 4]);
        assert_eq!(dec_err(&fixed(b)), OfError::BUNDLE_MSG_UNSUP);
        let mut b = good[..at].to_vec();
        b.extend_from_slice(&enc(&ctrl(BundleCtrlType::OpenRequest, 0), v));
        assert_eq!(dec_err(&fixed(b)), OfError::BUNDLE_MSG_UNSUP);
        let mut b = good[..at].to_vec();
        b.extend_from_slice(&good);
        assert_eq!(dec_err(&fixed(b)), OfError::BUNDLE_MSG_UNSUP);
        // An included message that does not decode gets its own error
        // (a flow-mod cut inside its match: OFPBMC_BAD_LEN).
        let mut b = good.clone();
        b.truncate(at + 52);
        b[at + 2..at + 4].copy_from_slice(&52u16.to_be_bytes());
        assert_eq!(dec_err(&fixed(b)), OfError::BAD_MATCH_LEN);
        // Padding alone after the message is accepted; a property after
        // it is refused.
        let mut b = good.clone();
        let pad = b.len().next_multiple_of(8) - b.len();
        b.resize(b.len() + pad, 0);
        let (_, m) = crate::decode(&fixed(b.clone())).unwrap();
        assert_eq!(m, add(Msg::FlowMod(flow_mod())));
        b.extend_from_slice(&[0xff, 0xff, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(dec_err(&fixed(b)), OfError::BAD_PROPERTY_EXPERIMENTER);
    }
}

#[test]
fn bundle_errors_in_1_3_are_onf_experimenter_errors() {
    let data = vec![4, 14, 0, 8, 0, 0, 0, 1];
    for (e, name) in [
        (OfError::BUNDLE_MSG_FAILED, "OFPBFC_MSG_FAILED"),
        (OfError::BUNDLE_BAD_ID, "OFPBFC_BAD_ID"),
        (OfError::BUNDLE_TIMEOUT, "OFPBFC_TIMEOUT"),
        (OfError::BUNDLE_MSG_UNSUP, "OFPBFC_MSG_UNSUP"),
    ] {
        let m = Msg::Error {
            err: e,
            data: data.clone(),
        };
        let b13 = enc(&m, OFP13_VERSION);
        assert_eq!(b13[8..10], [0xff, 0xff]);
        assert_eq!(u16::from_be_bytes([b13[10], b13[11]]), 2300 + e.code);
        assert_eq!(b13[12..16], ONF_EXPERIMENTER_ID.to_be_bytes());
        assert_eq!(crate::decode(&b13).unwrap().1, m);
        let b14 = enc(&m, OFP14_VERSION);
        assert_eq!(b14[8..12], [0, 17, 0, e.code as u8]);
        assert_eq!(crate::decode(&b14).unwrap().1, m);
        for b in [b13, b14] {
            let p = ofp_print(&b);
            assert!(p.contains(name), "{name}: {p}");
        }
    }
    // A property error in 1.3 is what Open vSwitch sends there.
    let b = enc(
        &Msg::Error {
            err: OfError::BAD_PROPERTY_TYPE,
            data: data.clone(),
        },
        OFP13_VERSION,
    );
    assert_eq!(b[8..12], [0, 13, 0, 2]);
    assert!(ofp_print(&b).contains("OFPBPC_BAD_TYPE"));
    let b = enc(
        &Msg::Error {
            err: OfError::BAD_PROPERTY_EXPERIMENTER,
            data: data.clone(),
        },
        OFP13_VERSION,
    );
    assert!(ofp_print(&b).contains("OFPBPC_BAD_EXPERIMENTER"));
    // 1.5-only codes are unencodable in 1.3: Nicira's error for that.
    let b = enc(
        &Msg::Error {
            err: OfError::BUNDLE_SCHED_NOT_SUPPORTED,
            data,
        },
        OFP13_VERSION,
    );
    assert!(ofp_print(&b).contains("NXBRC_UNENCODABLE_ERROR"));
}
