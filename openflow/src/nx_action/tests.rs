use super::*;
use crate::actions;
use crate::header::{OFP13_VERSION, OFP14_VERSION};

fn sf(field: MfField, ofs: u16, n_bits: u16) -> Subfield {
    Subfield { field, ofs, n_bits }
}

fn reg(n: u8) -> MfField {
    MfField::Oxm(OxmField::Reg(n))
}

/// One of each action this module owns.
fn samples() -> Vec<Action> {
    vec![
        Action::Load {
            dst: sf(reg(0), 0, 4),
            value: 5,
        },
        Action::Load {
            dst: sf(MfField::Oxm(OxmField::Xxreg(1)), 0, 128),
            value: (7 << 100) | 3,
        },
        Action::Move {
            src: sf(reg(0), 0, 4),
            dst: sf(MfField::IpTos, 2, 4),
        },
        Action::Move {
            src: sf(MfField::Oxm(OxmField::EthSrc), 0, 48),
            dst: sf(MfField::Oxm(OxmField::EthDst), 0, 48),
        },
        Action::Note(vec![1, 2, 3, 0, 0, 0]),
        Action::Exit,
        Action::CtClear,
        Action::Conjunction {
            id: 0xdead_beef,
            clause: 1,
            n_clauses: 64,
        },
        Action::DecTtlIds(vec![1, 2, 3]),
        Action::SetTunnel {
            id: 0x1234,
            wide: false,
        },
        Action::SetTunnel {
            id: 0x1234,
            wide: true,
        },
        Action::OutputReg {
            src: sf(reg(1), 0, 16),
            max_len: 0xffff,
        },
        Action::StackPush(sf(reg(2), 8, 8)),
        Action::StackPop(sf(MfField::VlanTci, 0, 12)),
        Action::Clone(vec![
            Action::Exit,
            Action::Clone(vec![Action::Note(vec![9, 0, 0, 0, 0, 0])]),
        ]),
        Action::Controller(Box::new(Controller {
            max_len: 128,
            reason: 0,
            controller_id: 3,
            userdata: Vec::new(),
            pause: false,
            meter_id: NX_CTLR_NO_METER,
            v2: false,
        })),
        Action::Controller(Box::new(Controller {
            max_len: u16::MAX,
            reason: 1,
            controller_id: 0,
            userdata: vec![1, 2, 3, 4, 5],
            pause: true,
            meter_id: 7,
            v2: true,
        })),
        Action::Sample {
            probability: 100,
            collector_set_id: 1,
            obs_domain_id: 2,
            obs_point_id: 3,
        },
        Action::ResubmitCt {
            in_port: 0xffff_fff8,
            table: 4,
        },
        Action::Multipath(Box::new(Multipath {
            fields: 1,
            basis: 50,
            algorithm: 2,
            max_link: 1,
            arg: 0,
            dst: sf(reg(0), 0, 2),
        })),
        Action::Bundle(Box::new(Bundle {
            algorithm: 1,
            fields: 1,
            basis: 60,
            members: vec![2, 3, 4],
            dst: None,
        })),
        Action::Bundle(Box::new(Bundle {
            algorithm: 0,
            fields: 0,
            basis: 0,
            members: vec![1],
            dst: Some(sf(reg(2), 0, 32)),
        })),
        Action::Ct(Box::new(Ct {
            flags: NX_CT_F_COMMIT,
            zone: CtZone::Imm(5),
            recirc_table: 2,
            alg: 21,
            actions: vec![
                Action::Load {
                    dst: sf(MfField::Oxm(OxmField::CtLabel), 0, 1),
                    value: 1,
                },
                // nat(src=10.0.0.1-10.0.0.9:1000-2000,random)
                Action::Nat(vec![
                    0, 0, 0, 0x11, 0, 0x33, 10, 0, 0, 1, 10, 0, 0, 9, 0x03, 0xe8, 0x07, 0xd0, 0, 0,
                    0, 0,
                ]),
            ],
        })),
        Action::Ct(Box::new(Ct {
            flags: 0,
            zone: CtZone::Field(sf(reg(0), 0, 16)),
            recirc_table: 0xff,
            alg: 0,
            actions: vec![Action::Nat(vec![0; 6])],
        })),
        Action::Learn(Box::new(mac_learn())),
        Action::Learn(Box::new(Learn {
            limit: 10,
            result_dst: Some(sf(reg(10), 7, 1)),
            flags: NX_LEARN_F_DELETE_LEARNED,
            cookie: 0x1234_5678,
            idle_timeout: 5,
            priority: 7,
            v2: true,
            specs: vec![
                LearnSpec {
                    src: LearnSrc::Imm(0x800),
                    dst: LearnDst::Match(sf(MfField::Oxm(OxmField::EthType), 0, 16)),
                    n_bits: 16,
                },
                LearnSpec {
                    src: LearnSrc::Field(sf(MfField::Oxm(OxmField::Ipv4Dst), 0, 32)),
                    dst: LearnDst::Match(sf(MfField::Oxm(OxmField::Ipv4Src), 0, 32)),
                    n_bits: 32,
                },
                LearnSpec {
                    src: LearnSrc::Imm(1),
                    dst: LearnDst::Load(sf(reg(10), 7, 1)),
                    n_bits: 1,
                },
                LearnSpec {
                    src: LearnSrc::Imm((1 << 100) | 5),
                    dst: LearnDst::Load(sf(MfField::Oxm(OxmField::Xxreg(1)), 0, 128)),
                    n_bits: 128,
                },
            ],
            ..mac_learn()
        })),
        Action::CheckPktLarger {
            len: 1514,
            dst: sf(reg(9), 1, 1),
        },
        Action::FinTimeout { idle: 10, hard: 0 },
    ]
}

/// `learn(table=1,hard_timeout=60,NXM_OF_VLAN_TCI[0..11],
/// NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])`.
fn mac_learn() -> Learn {
    Learn {
        idle_timeout: 0,
        hard_timeout: 60,
        priority: 0x8000,
        cookie: 0,
        flags: 0,
        table_id: 1,
        fin_idle_timeout: 0,
        fin_hard_timeout: 0,
        limit: 0,
        result_dst: None,
        v2: false,
        specs: vec![
            LearnSpec {
                src: LearnSrc::Field(sf(MfField::VlanTci, 0, 12)),
                dst: LearnDst::Match(sf(MfField::VlanTci, 0, 12)),
                n_bits: 12,
            },
            LearnSpec {
                src: LearnSrc::Field(sf(MfField::Oxm(OxmField::EthSrc), 0, 48)),
                dst: LearnDst::Match(sf(MfField::Oxm(OxmField::EthDst), 0, 48)),
                n_bits: 48,
            },
            LearnSpec {
                src: LearnSrc::Field(sf(MfField::InPort16, 0, 16)),
                dst: LearnDst::Output,
                n_bits: 16,
            },
        ],
    }
}

/// The bytes of example 2 of OVS's `nx_action_learn` comment
/// (`lib/ofp-actions.c`): the MAC-learning specs, then zero padding.
#[test]
fn test_learn_ovs_bytes() {
    let mut body = vec![
        0, 0, 0, 60, 0x80, 0, // idle, hard, priority
        0, 0, 0, 0, 0, 0, 0, 0, // cookie
        0, 0, 1, 0, 0, 0, 0, 0, // flags, table, pad, fin timeouts
    ];
    body.extend_from_slice(&[0x00, 0x0c, 0, 0, 0x08, 0x02, 0, 0, 0, 0, 0x08, 0x02, 0, 0]);
    body.extend_from_slice(&[0x00, 0x30, 0, 0, 0x04, 0x06, 0, 0, 0, 0, 0x02, 0x06, 0, 0]);
    body.extend_from_slice(&[0x10, 0x10, 0, 0, 0x00, 0x02, 0, 0]);
    let a = nx(NXAST_LEARN, &body);
    assert_eq!(a.len(), 72);
    assert_eq!(
        actions::decode_actions(&a).unwrap(),
        vec![Action::Learn(Box::new(mac_learn()))]
    );
    let mut out = Vec::new();
    actions::put_actions_version(
        &mut out,
        &[Action::Learn(Box::new(mac_learn()))],
        OFP13_VERSION,
    )
    .unwrap();
    assert_eq!(out, a);
}

#[test]
fn test_reject_learn() {
    let head = |table: u8, flags: u16| {
        let mut b = vec![0u8; 22];
        b[14..16].copy_from_slice(&flags.to_be_bytes());
        b[16] = table;
        b
    };
    // Table 255.
    assert_eq!(
        err13(&nx(NXAST_LEARN, &head(0xff, 0))),
        OfError::BAD_ACTION_ARGUMENT
    );
    // write_result in NXAST_LEARN.
    assert_eq!(
        err13(&nx(NXAST_LEARN, &head(1, 4))),
        OfError::BAD_ACTION_ARGUMENT
    );
    // Nonzero pad.
    let mut b = head(1, 0);
    b[17] = 1;
    assert_eq!(err13(&nx(NXAST_LEARN, &b)), OfError::BAD_ACTION_ARGUMENT);
    // Immediate to output is undefined.
    let mut b = head(1, 0);
    b.extend_from_slice(&[0x30, 0x10, 0, 1]);
    assert_eq!(err13(&nx(NXAST_LEARN, &b)), OfError::BAD_ACTION_ARGUMENT);
    // A spec running past the action.
    let mut b = head(1, 0);
    b.extend_from_slice(&[0x00, 0x30, 0, 0, 0x04, 0x06]);
    assert_eq!(err13(&nx(NXAST_LEARN, &b)), OfError::BAD_ACTION_LEN);
    // Bytes after the terminating spec header.
    let mut b = head(1, 0);
    b.extend_from_slice(&[0, 0, 0, 1]);
    assert_eq!(err13(&nx(NXAST_LEARN, &b)), OfError::BAD_ACTION_ARGUMENT);
    // An immediate wider than its bits.
    let mut b = head(1, 0);
    b.extend_from_slice(&[0x28, 0x01, 0, 2, 0, 1, 2, 4, 0, 0]);
    assert_eq!(err13(&nx(NXAST_LEARN, &b)), OfError::BAD_ACTION_ARGUMENT);
    // A subfield beyond its field: NXM_NX_REG0[30..33] matched.
    let mut b = head(1, 0);
    b.extend_from_slice(&[0x00, 0x04, 0, 1, 2, 4, 0, 30, 0, 1, 2, 4, 0, 30]);
    assert_eq!(err13(&nx(NXAST_LEARN, &b)), OfError::BAD_SET_LEN);
    // LEARN2: result offset without write_result.
    let mut b = head(1, 0);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 0]);
    assert_eq!(err13(&nx(NXAST_LEARN2, &b)), OfError::BAD_ACTION_ARGUMENT);
    // LEARN2: read-only result destination (NXM_OF_ETH_TYPE).
    let mut b = head(1, 4);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x06, 0x02]);
    assert_eq!(err13(&nx(NXAST_LEARN2, &b)), OfError::BAD_SET_ARGUMENT);
}

#[test]
fn test_check_pkt_larger_bytes_and_rejects() {
    // check_pkt_larger(1514)->NXM_NX_REG9[1] as OVS encodes it.
    let mut body = 1514u16.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 1, 0, 1, 0x12, 0x04]);
    let a = nx(NXAST_CHECK_PKT_LARGER, &body);
    assert_eq!(a.len(), 24);
    assert_eq!(
        actions::decode_actions(&a).unwrap(),
        vec![Action::CheckPktLarger {
            len: 1514,
            dst: sf(reg(9), 1, 1)
        }]
    );
    // Nonzero padding.
    let mut bad = a.clone();
    bad[23] = 1;
    assert_eq!(err13(&bad), OfError::BAD_ACTION_ARGUMENT);
    // Offset beyond the field.
    let mut body = 1514u16.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 32, 0, 1, 0x12, 0x04]);
    assert_eq!(
        err13(&nx(NXAST_CHECK_PKT_LARGER, &body)),
        OfError::BAD_SET_LEN
    );
}

#[test]
fn test_roundtrip_every_version() {
    for a in samples() {
        let mut b = Vec::new();
        actions::encode_actions_ofp10(std::slice::from_ref(&a), &mut b).unwrap();
        assert_eq!(b.len() % 8, 0);
        // In 1.0 a whole-field load reads back as the set-field.
        let mut want = vec![a.clone()];
        merge_loads(&mut want, true);
        assert_eq!(
            actions::decode_actions_ofp10(&b, None).unwrap(),
            want,
            "1.0 {a:?}"
        );
        for v in [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION] {
            let mut b = Vec::new();
            actions::put_actions_version(&mut b, std::slice::from_ref(&a), v).unwrap();
            assert_eq!(b.len() % 8, 0);
            // In 1.5 a whole-field load is an unmasked set-field.
            let mut want = vec![a.clone()];
            merge_loads(&mut want, v >= OFP15_VERSION);
            assert_eq!(
                actions::decode_actions_version(&b, v).unwrap(),
                want,
                "version {v} {a:?}"
            );
        }
    }
}

/// The bytes `ovs-ofctl` 3.1 sends for `load:0x5->NXM_NX_REG0[0..3]`
/// and `move:NXM_NX_REG0[0..3]->NXM_NX_REG1[4..7]` (OpenFlow 1.3).
#[test]
fn test_parse_ovs_bytes() {
    let load = [
        0xff, 0xff, 0x00, 0x18, 0x00, 0x00, 0x23, 0x20, 0x00, 0x07, 0x00, 0x03, 0x00, 0x01, 0x00,
        0x04, 0, 0, 0, 0, 0, 0, 0, 5,
    ];
    assert_eq!(
        actions::decode_actions(&load).unwrap(),
        vec![Action::Load {
            dst: sf(reg(0), 0, 4),
            value: 5
        }]
    );
    let mv = [
        0xff, 0xff, 0x00, 0x18, 0x00, 0x00, 0x23, 0x20, 0x00, 0x06, 0x00, 0x04, 0x00, 0x00, 0x00,
        0x04, 0x00, 0x01, 0x00, 0x04, 0x00, 0x01, 0x02, 0x04,
    ];
    assert_eq!(
        actions::decode_actions(&mv).unwrap(),
        vec![Action::Move {
            src: sf(reg(0), 0, 4),
            dst: sf(reg(1), 4, 4)
        }]
    );
}

/// A whole-field load in 1.0 is the set-field it always was; in 1.3 it
/// stays a load (OVS prints it back as `load:`).
#[test]
fn test_whole_load_forms() {
    let a = Action::Load {
        dst: sf(reg(3), 0, 32),
        value: 9,
    };
    let mut b = Vec::new();
    actions::put_actions_version(&mut b, std::slice::from_ref(&a), OFP13_VERSION).unwrap();
    assert_eq!(actions::decode_actions(&b).unwrap(), vec![a.clone()]);
    let mut b = Vec::new();
    actions::encode_actions_ofp10(std::slice::from_ref(&a), &mut b).unwrap();
    assert_eq!(
        actions::decode_actions_ofp10(&b, None).unwrap(),
        vec![Action::SetField {
            field: OxmField::Reg(3),
            value: 9
        }]
    );
}

fn nx(sub: u16, body: &[u8]) -> Vec<u8> {
    let mut a = vec![0xff, 0xff, 0, 0];
    a.extend_from_slice(&NX_VENDOR_ID.to_be_bytes());
    a.extend_from_slice(&sub.to_be_bytes());
    a.extend_from_slice(body);
    while a.len() % 8 != 0 || a.len() < 16 {
        a.push(0);
    }
    let len = a.len() as u16;
    a[2..4].copy_from_slice(&len.to_be_bytes());
    a
}

fn err13(b: &[u8]) -> OfError {
    actions::decode_actions(b).unwrap_err().err
}

const REG0: [u8; 4] = [0x00, 0x01, 0x00, 0x04];

#[test]
fn test_reject_load() {
    // Beyond the field: NXM_NX_REG0[30..33].
    let mut body = ((30u16 << 6) | 3).to_be_bytes().to_vec();
    body.extend_from_slice(&REG0);
    body.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(err13(&nx(NXAST_REG_LOAD, &body)), OfError::BAD_SET_LEN);
    // Unknown field.
    let mut body = 3u16.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x00, 0x05, 0x7e, 0x04]);
    body.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(err13(&nx(NXAST_REG_LOAD, &body)), OfError::BAD_SET_TYPE);
    // Read-only destination: NXM_OF_ETH_TYPE.
    let mut body = 15u16.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x00, 0x00, 0x06, 0x02]);
    body.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(err13(&nx(NXAST_REG_LOAD, &body)), OfError::BAD_SET_ARGUMENT);
    // Wrong length.
    let mut a = nx(NXAST_REG_LOAD, &[0; 14]);
    a.extend_from_slice(&[0; 8]);
    a[3] = 32;
    assert_eq!(err13(&a), OfError::BAD_ACTION_LEN);
    // REG_LOAD is gone in 1.5 (OVS `NX1.0-1.4(7)`).
    let mut body = 3u16.to_be_bytes().to_vec();
    body.extend_from_slice(&REG0);
    body.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(
        actions::decode_actions_version(&nx(NXAST_REG_LOAD, &body), OFP15_VERSION)
            .unwrap_err()
            .err,
        OfError::BAD_ACTION_EXP_TYPE
    );
}

#[test]
fn test_reject_move() {
    // Source beyond its field.
    let mut body = vec![0, 8, 0, 30, 0, 0];
    body.extend_from_slice(&REG0);
    body.extend_from_slice(&[0x00, 0x01, 0x02, 0x04]);
    assert_eq!(err13(&nx(NXAST_REG_MOVE, &body)), OfError::BAD_SET_LEN);
    // Nonzero padding after the headers.
    let mut body = vec![0, 4, 0, 0, 0, 0];
    body.extend_from_slice(&REG0);
    body.extend_from_slice(&[0x00, 0x01, 0x02, 0x04, 1]);
    assert_eq!(
        err13(&nx(NXAST_REG_MOVE, &body)),
        OfError::BAD_ACTION_ARGUMENT
    );
    // Only one header: the zero padding is no field.
    let mut body = vec![0, 4, 0, 0, 0, 0];
    body.extend_from_slice(&REG0);
    assert_eq!(err13(&nx(NXAST_REG_MOVE, &body)), OfError::BAD_SET_TYPE);
    // A header with the wrong length (NXM_NX_REG1 claiming 2 bytes).
    let mut body = vec![0, 4, 0, 0, 0, 0];
    body.extend_from_slice(&REG0);
    body.extend_from_slice(&[0x00, 0x01, 0x02, 0x02]);
    assert_eq!(err13(&nx(NXAST_REG_MOVE, &body)), OfError::BAD_SET_LEN);
    // Masked header.
    let mut body = vec![0, 4, 0, 0, 0, 0];
    body.extend_from_slice(&[0x00, 0x01, 0x01, 0x08]);
    body.extend_from_slice(&[0x00, 0x01, 0x02, 0x04]);
    assert_eq!(err13(&nx(NXAST_REG_MOVE, &body)), OfError::BAD_SET_ARGUMENT);
}

#[test]
fn test_reject_others() {
    // Output reg with nonzero reserved bytes.
    let mut body = 15u16.to_be_bytes().to_vec();
    body.extend_from_slice(&REG0);
    body.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        err13(&nx(NXAST_OUTPUT_REG, &body)),
        OfError::BAD_ACTION_ARGUMENT
    );
    // dec_ttl(ids) claiming more ids than it carries.
    assert_eq!(
        err13(&nx(NXAST_DEC_TTL_CNT_IDS, &[0, 9, 0, 0, 0, 0, 0, 1])),
        OfError::BAD_ACTION_LEN
    );
    // Controller with a nonzero zero byte.
    assert_eq!(
        err13(&nx(NXAST_CONTROLLER, &[0, 1, 0, 0, 1, 1])),
        OfError::BAD_ACTION_ARGUMENT
    );
    // Controller2 with an unknown property, and a short one.
    assert_eq!(
        err13(&nx(
            NXAST_CONTROLLER2,
            &[0, 0, 0, 0, 0, 0, 0, 9, 0, 4, 0, 0, 0, 0]
        )),
        OfError::BAD_ACTION_ARGUMENT
    );
    assert_eq!(
        err13(&nx(
            NXAST_CONTROLLER2,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0]
        )),
        OfError::BAD_ACTION_LEN
    );
    // Sample with probability 0.
    assert_eq!(
        err13(&nx(NXAST_SAMPLE, &[0; 14])),
        OfError::BAD_ACTION_ARGUMENT
    );
    // Stack pop into a read-only field (NXM_OF_ETH_TYPE).
    let body = [0, 0, 0x00, 0x00, 0x06, 0x02, 0, 16];
    assert_eq!(
        err13(&nx(NXAST_STACK_POP, &body)),
        OfError::BAD_SET_ARGUMENT
    );
    // A bad action inside a clone.
    let mut clone_body = vec![0; 6];
    clone_body.extend_from_slice(&nx(NXAST_SAMPLE, &[0; 14]));
    assert_eq!(
        err13(&nx(NXAST_CLONE, &clone_body)),
        OfError::BAD_ACTION_ARGUMENT
    );
    // Multipath with too few bits for its links, an unknown algorithm.
    let mp = |alg: u16, max_link: u16, ofs_nbits: u16| {
        let mut body = vec![0, 1, 0, 0, 0, 0];
        body.extend_from_slice(&alg.to_be_bytes());
        body.extend_from_slice(&max_link.to_be_bytes());
        body.extend_from_slice(&[0; 6]);
        body.extend_from_slice(&ofs_nbits.to_be_bytes());
        body.extend_from_slice(&REG0);
        nx(NXAST_MULTIPATH, &body)
    };
    assert!(actions::decode_actions(&mp(0, 3, 1)).is_ok());
    assert_eq!(err13(&mp(0, 4, 1)), OfError::BAD_ACTION_ARGUMENT);
    assert_eq!(err13(&mp(4, 1, 1)), OfError::BAD_ACTION_ARGUMENT);
    // Bundle: a bad member type, a member beyond the ports, members
    // missing, a destination on plain bundle.
    let bundle = |sub: u16, typ: u32, n: u16, dst: u32, members: &[u16]| {
        let mut body = vec![0, 1, 0, 1, 0, 0];
        body.extend_from_slice(&typ.to_be_bytes());
        body.extend_from_slice(&n.to_be_bytes());
        body.extend_from_slice(&(if dst != 0 { 31u16 } else { 0 }).to_be_bytes());
        body.extend_from_slice(&dst.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        for m in members {
            body.extend_from_slice(&m.to_be_bytes());
        }
        nx(sub, &body)
    };
    assert!(actions::decode_actions(&bundle(NXAST_BUNDLE, 2, 2, 0, &[1, 2])).is_ok());
    assert_eq!(
        err13(&bundle(NXAST_BUNDLE, 4, 2, 0, &[1, 2])),
        OfError::BAD_ACTION_ARGUMENT
    );
    assert_eq!(
        err13(&bundle(NXAST_BUNDLE, 2, 2, 0, &[1, 0xff10])),
        OfError::BAD_OUT_PORT
    );
    assert_eq!(
        err13(&bundle(NXAST_BUNDLE, 2, 9, 0, &[1, 2])),
        OfError::BAD_ACTION_LEN
    );
    assert_eq!(
        err13(&bundle(
            NXAST_BUNDLE,
            2,
            2,
            u32::from_be_bytes(REG0),
            &[1, 2]
        )),
        OfError::BAD_ACTION_ARGUMENT
    );
    assert!(actions::decode_actions(&bundle(
        NXAST_BUNDLE_LOAD,
        2,
        2,
        u32::from_be_bytes(REG0),
        &[1, 2]
    ))
    .is_ok());
    // 1.0-only subtypes in 1.3.
    for sub in [NXAST_SET_QUEUE, NXAST_DEC_TTL, NXAST_GROUP] {
        assert_eq!(err13(&nx(sub, &[0; 6])), OfError::BAD_ACTION_EXP_TYPE);
    }
    // Masked 1.5 set-field with a mask that is not one run of bits.
    let mut sfa = vec![0, 25, 0, 16, 0x00, 0x01, 0x01, 0x08];
    sfa.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 0x0d]);
    assert_eq!(
        actions::decode_actions_version(&sfa, OFP15_VERSION)
            .unwrap_err()
            .err,
        OfError::BAD_SET_ARGUMENT
    );
}

/// Nesting is bounded: 64 clones in one another decode, 65 do not (and
/// the decoder's recursion stays that deep).
#[test]
fn test_nested_clone_depth() {
    let nest = |n: usize| {
        let mut a = nx(NXAST_EXIT, &[]);
        for _ in 0..n {
            let mut body = vec![0; 6];
            body.extend_from_slice(&a);
            a = nx(NXAST_CLONE, &body);
        }
        a
    };
    assert!(actions::decode_actions(&nest(64)).is_ok());
    assert_eq!(err13(&nest(65)), OfError::BAD_ACTION_ARGUMENT);
    assert_eq!(
        actions::decode_actions_ofp10(&nest(65), None)
            .unwrap_err()
            .err,
        OfError::BAD_ACTION_ARGUMENT
    );
    // The depth counter is back to zero after an error.
    assert!(actions::decode_actions(&nest(64)).is_ok());
}

fn ct_action(flags: u16, zone_src: u32, zone: u16, nested: &[u8]) -> Vec<u8> {
    let mut body = flags.to_be_bytes().to_vec();
    body.extend_from_slice(&zone_src.to_be_bytes());
    body.extend_from_slice(&zone.to_be_bytes());
    body.extend_from_slice(&[0xff, 0, 0, 0, 0, 0]);
    body.extend_from_slice(nested);
    nx(NXAST_CT, &body)
}

/// `ct` and `nat` rejections, as OVS `decode_NXAST_RAW_CT/NAT`.
#[test]
fn test_reject_ct_nat() {
    // force without commit.
    assert_eq!(
        err13(&ct_action(2, 0, 0, &[])),
        OfError::BAD_ACTION_ARGUMENT
    );
    // A zone field that is not 16 bits (NXM_NX_REG0[0..7]).
    assert_eq!(
        err13(&ct_action(0, u32::from_be_bytes(REG0), 7, &[])),
        OfError::BAD_SET_LEN
    );
    // An output inside ct.
    let out = [0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        err13(&ct_action(1, 0, 0, &out)),
        OfError::BAD_ACTION_ARGUMENT
    );
    // A ct_mark load without commit.
    let mut body = 31u16.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x00, 0x01, 0xd6, 0x04]);
    body.extend_from_slice(&1u64.to_be_bytes());
    let load = nx(NXAST_REG_LOAD, &body);
    assert_eq!(
        err13(&ct_action(0, 0, 0, &load)),
        OfError::BAD_ACTION_ARGUMENT
    );
    assert!(actions::decode_actions(&ct_action(1, 0, 0, &load)).is_ok());
    // The same load outside ct: ct_mark cannot be written there.
    assert_eq!(err13(&load), OfError::BAD_SET_TYPE);
    // nat outside ct, nat with both src and dst, nat with a missing range.
    assert_eq!(err13(&nx(NXAST_NAT, &[0; 6])), OfError::BAD_ACTION_ARGUMENT);
    let bad_flags = nx(NXAST_NAT, &[0, 0, 0, 3, 0, 0]);
    assert_eq!(
        err13(&ct_action(1, 0, 0, &bad_flags)),
        OfError::BAD_ACTION_ARGUMENT
    );
    let short = nx(NXAST_NAT, &[0, 0, 0, 1, 0, 0x3f]);
    assert_eq!(
        err13(&ct_action(1, 0, 0, &short)),
        OfError::BAD_ACTION_ARGUMENT
    );
    // ct inside ct.
    let inner = ct_action(1, 0, 0, &[]);
    assert_eq!(
        err13(&ct_action(1, 0, 0, &inner)),
        OfError::BAD_ACTION_ARGUMENT
    );
    // resubmit(,,ct) with nonzero padding.
    assert_eq!(
        err13(&nx(NXAST_RESUBMIT_TABLE_CT, &[0xff, 0xf8, 1, 0, 0, 1])),
        OfError::BAD_ACTION_ARGUMENT
    );
}

#[test]
fn test_conjunction_bytes_and_rejects() {
    // `conjunction(7,2/3)` as OVS encodes it: clause 1 (0-based), n 3, id 7.
    let b = nx(NXAST_CONJUNCTION, &[1, 3, 0, 0, 0, 7]);
    assert_eq!(b.len(), 16);
    let want = vec![Action::Conjunction {
        id: 7,
        clause: 1,
        n_clauses: 3,
    }];
    assert_eq!(actions::decode_actions(&b).unwrap(), want);
    let mut out = Vec::new();
    actions::encode_actions_version(&want, 0x04, &mut out).unwrap();
    assert_eq!(out, b);
    // clause >= n_clauses, n_clauses < 2, n_clauses > 64, bad length.
    for body in [[3u8, 3], [0, 1], [0, 65]] {
        let mut full = body.to_vec();
        full.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(
            err13(&nx(NXAST_CONJUNCTION, &full)),
            OfError::BAD_ACTION_ARGUMENT
        );
    }
    assert_eq!(
        err13(&nx(
            NXAST_CONJUNCTION,
            &[0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]
        )),
        OfError::BAD_ACTION_LEN
    );
}

/// `controller(id=7,userdata=aa),controller(userdata=bb)` as OVS 3.1
/// encodes it: two `NXAST_CONTROLLER2`; the 16-bit id property is 8
/// bytes long (`ofpprop_put_be16`). The older 6-byte form decodes too,
/// and our encoder writes OVS's.
#[test]
fn test_controller2_id_and_short_userdata_from_ovs() {
    let mut b = vec![0xff, 0xff, 0, 32, 0, 0, 0x23, 0x20, 0, 37, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&[0, 1, 0, 8, 0, 7, 0, 0]);
    b.extend_from_slice(&[0, 3, 0, 5, 0xaa, 0, 0, 0]);
    b.extend_from_slice(&[0xff, 0xff, 0, 24, 0, 0, 0x23, 0x20, 0, 37, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&[0, 3, 0, 5, 0xbb, 0, 0, 0]);
    let acts = actions::decode_actions_ofp10(&b, None).unwrap();
    for v in [OFP13_VERSION, OFP14_VERSION, crate::header::OFP15_VERSION] {
        assert_eq!(actions::decode_actions_version(&b, v).unwrap(), acts);
    }
    let Action::Controller(c) = &acts[0] else {
        panic!("{acts:?}")
    };
    assert_eq!((c.controller_id, &c.userdata[..]), (7, &[0xaa][..]));
    let mut out = Vec::new();
    actions::encode_actions_ofp10(&acts, &mut out).unwrap();
    assert_eq!(out, b);
    b[19] = 6;
    assert_eq!(actions::decode_actions_ofp10(&b, None).unwrap(), acts);
}

#[test]
fn test_controller2_in_of10_flow_mod() {
    let mut m = vec![1, 14, 0, 128, 0, 0, 0, 6, 0, 0x38, 0x20, 0xff];
    m.resize(8 + 40, 0);
    m.extend_from_slice(&[0; 8]); // cookie
    m.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
    ]);
    m.extend_from_slice(&[0xff, 0xff, 0, 32, 0, 0, 0x23, 0x20, 0, 37, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&[0, 1, 0, 8, 0, 7, 0, 0]);
    m.extend_from_slice(&[0, 3, 0, 5, 0xaa, 0, 0, 0]);
    m.extend_from_slice(&[0xff, 0xff, 0, 24, 0, 0, 0x23, 0x20, 0, 37, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&[0, 3, 0, 5, 0xbb, 0, 0, 0]);
    assert_eq!(m.len(), 128);
    crate::decode(&m).unwrap();
}
