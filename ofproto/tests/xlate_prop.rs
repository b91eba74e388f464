//! Megaflow soundness, property-tested: for random pipelines and packets,
//! every key that agrees with a packet on the translation's mask must get
//! exactly the same datapath actions and credit the same rules ("false
//! 0-bits are bugs"), on the first pass and on the passes that `ct(table=N)`
//! recirculations make (with the conntrack verdict in the key).

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use xennet_datapath::flow::{Field, N_WORDS};
use xennet_datapath::{DpAction, FlowKey, Packet};
use xennet_ofproto::{FailMode, Ofproto};
use xennet_openflow::model::*;

const PORTS: [u32; 4] = [1, 2, 3, 4];

/// Match fields drawn from small domains so that packets hit rules.
fn arb_match() -> impl Strategy<Value = Match> {
    (
        proptest::option::of(1u32..4),
        proptest::option::of(0u8..3),
        proptest::option::weighted(0.7, 0u8..2),
        proptest::option::of(prop_oneof![Just(None), (0u16..3).prop_map(Some)]),
        proptest::option::weighted(0.3, 0u8..3),
        proptest::option::of((0u64..3, 0u64..4)),
        0u8..5,
        proptest::option::weighted(0.3, (0u8..2, 0u32..4)),
        proptest::option::weighted(0.3, (0u8..8, 1u8..8)),
    )
        .prop_map(|(inp, dst, ip, vlan, tp, md, kind, reg, ct)| {
            let mut m = Match::CATCHALL;
            if let Some((v, mk)) = ct {
                // Bits of new (0x01), est (0x02) and trk (0x20).
                let bits = |b: u8| u128::from(b & 1) | u128::from(b & 2) | (u128::from(b & 4) << 3);
                m.set_field(OxmField::CtState, bits(v) & bits(mk), bits(mk))
                    .unwrap();
            }
            if let Some((r, v)) = reg {
                m.set_field(OxmField::Reg(r), v.into(), 0xffff_ffff)
                    .unwrap();
            }
            if let Some(p) = inp {
                m.set_field(OxmField::InPort, p.into(), 0xffff_ffff)
                    .unwrap();
            }
            if let Some(d) = dst {
                m.set_field(
                    OxmField::EthDst,
                    0x5054_0000_0000 | u128::from(d),
                    (1 << 48) - 1,
                )
                .unwrap();
            }
            if let Some(v) = vlan {
                match v {
                    None => m.set_field(OxmField::VlanVid, 0, 0x1000).unwrap(),
                    Some(vid) => m
                        .set_field(OxmField::VlanVid, 0x1000 | u128::from(vid), 0x1fff)
                        .unwrap(),
                }
            }
            if ip.is_some() || tp.is_some() {
                // kind: 0 IPv4/UDP, 1 IPv4/TCP, 2 IPv6/UDP, 3 IPv4/SCTP,
                // 4 IPv6/SCTP.
                let v6 = kind == 2 || kind == 4;
                let ty = if v6 { 0x86dd } else { 0x0800 };
                let proto = match kind {
                    1 => 6,
                    3 | 4 => 132,
                    _ => 17,
                };
                m.set_field(OxmField::EthType, ty, 0xffff).unwrap();
                m.set_field(OxmField::IpProto, proto, 0xff).unwrap();
                if let Some(i) = ip {
                    if v6 {
                        let a = (0xfe80u128 << 112) | u128::from(i);
                        m.set_field(OxmField::Ipv6Dst, a, u128::MAX).unwrap();
                    } else {
                        m.set_field(OxmField::Ipv4Dst, 0x0a00_0000 | u128::from(i), 0xffff_ffff)
                            .unwrap();
                    }
                }
                if let Some(t) = tp {
                    let f = match kind {
                        1 => OxmField::TcpDst,
                        3 | 4 => OxmField::SctpDst,
                        _ => OxmField::UdpDst,
                    };
                    m.set_field(f, u128::from(t), 0xffff).unwrap();
                }
            }
            if let Some((v, mk)) = md {
                m.set_field(OxmField::Metadata, u128::from(v & mk), u128::from(mk))
                    .unwrap();
            }
            m
        })
}

fn sub(field: MfField, ofs: u16, n_bits: u16) -> Subfield {
    Subfield { field, ofs, n_bits }
}

/// Nicira actions that read packet fields into registers and back, or
/// decide on register or hash values: the megaflow must hold every bit
/// they read.
fn arb_nicira() -> impl Strategy<Value = Action> {
    let reg = |n: u8| MfField::Oxm(OxmField::Reg(n));
    let src_fields = prop_oneof![
        Just(sub(MfField::Oxm(OxmField::EthDst), 0, 2)),
        Just(sub(MfField::Oxm(OxmField::EthSrc), 4, 3)),
        Just(sub(MfField::Oxm(OxmField::Ipv4Dst), 0, 2)),
        Just(sub(MfField::Oxm(OxmField::UdpDst), 1, 2)),
        Just(sub(MfField::VlanTci, 0, 2)),
        Just(sub(MfField::InPort16, 0, 3)),
        Just(sub(MfField::Oxm(OxmField::Metadata), 0, 2)),
    ];
    prop_oneof![
        (0u8..2, 0u128..4).prop_map(move |(r, v)| Action::Load {
            dst: sub(reg(r), 0, 2),
            value: v
        }),
        (src_fields, 0u8..2).prop_map(move |(src, r)| Action::Move {
            src,
            dst: sub(reg(r), 0, src.n_bits)
        }),
        (0u8..2).prop_map(move |r| Action::Move {
            src: sub(reg(r), 0, 2),
            dst: sub(MfField::Oxm(OxmField::EthDst), 0, 2)
        }),
        (0u8..2).prop_map(move |r| Action::OutputReg {
            src: sub(reg(r), 0, 3),
            max_len: 0
        }),
        (0u8..2).prop_map(move |r| Action::StackPush(sub(reg(r), 0, 2))),
        (0u8..2).prop_map(move |r| Action::StackPop(sub(reg(r), 0, 2))),
        Just(Action::Exit),
        (0u16..7, 0u16..4, 0u8..2).prop_map(move |(fields, algorithm, r)| Action::Multipath(
            Box::new(Multipath {
                fields,
                basis: 7,
                algorithm,
                max_link: 2,
                arg: 0,
                dst: sub(reg(r), 0, 2),
            })
        )),
        (0u16..7, 0u16..2, any::<bool>()).prop_map(move |(fields, algorithm, load)| {
            Action::Bundle(Box::new(Bundle {
                algorithm,
                fields,
                basis: 3,
                members: vec![2, 3, 4],
                dst: load.then(|| sub(reg(1), 0, 16)),
            }))
        }),
        // The rest of the list is translated in both branches; the
        // packet's length is the datapath's to compare.
        (0u8..2, 0u16..200).prop_map(move |(r, len)| Action::CheckPktLarger {
            len,
            dst: sub(reg(r), 1, 1)
        }),
        (1u32..5).prop_map(|p| Action::Clone(vec![
            Action::SetField {
                field: OxmField::EthDst,
                value: 0x5054_0000_0001
            },
            out(p)
        ])),
        arb_ct(),
        Just(Action::CtClear),
        (0u8..3).prop_map(|t| Action::ResubmitCt {
            in_port: OFPP_IN_PORT,
            table: t
        }),
    ]
}

/// `ct` with a zone from a number, a register or a packet field, with or
/// without commit, recirculating to a table or not.
fn arb_ct() -> impl Strategy<Value = Action> {
    (
        prop_oneof![
            (0u16..3).prop_map(CtZone::Imm),
            Just(CtZone::Field(sub(MfField::Oxm(OxmField::Reg(0)), 0, 16))),
            Just(CtZone::Field(sub(MfField::Oxm(OxmField::UdpDst), 0, 16))),
        ],
        any::<bool>(),
        prop_oneof![Just(0xffu8), 0u8..3],
    )
        .prop_map(|(zone, commit, recirc_table)| {
            Action::Ct(Box::new(Ct {
                flags: u16::from(commit),
                zone,
                recirc_table,
                alg: 0,
                actions: Vec::new(),
            }))
        })
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => arb_action_std(),
        2 => arb_nicira(),
        1 => arb_ct(),
    ]
}

fn arb_action_std() -> impl Strategy<Value = Action> {
    prop_oneof![
        (1u32..5).prop_map(out),
        Just(out(OFPP_IN_PORT)),
        Just(out(OFPP_ALL)),
        Just(Action::Output {
            port: OFPP_CONTROLLER,
            max_len: 64
        }),
        Just(Action::PushVlan(0x8100)),
        Just(Action::PushVlan(0x88a8)),
        Just(Action::PopVlan),
        Just(out(OFPP_NORMAL)),
        (0u16..3).prop_map(|v| Action::SetField {
            field: OxmField::VlanVid,
            value: 0x1000 | u128::from(v)
        }),
        (0u8..3).prop_map(|d| Action::SetField {
            field: OxmField::EthDst,
            value: 0x5054_0000_0000 | u128::from(d)
        }),
        (0u8..3).prop_map(|i| Action::SetField {
            field: OxmField::Ipv4Dst,
            value: 0x0a00_0000 | u128::from(i)
        }),
        (0u8..3).prop_map(|t| Action::SetField {
            field: OxmField::UdpDst,
            value: u128::from(t)
        }),
        Just(Action::DecNwTtl),
        (0u8..3).prop_map(Action::SetNwTtl),
        (0u8..3).prop_map(|d| Action::SetField {
            field: OxmField::IpDscp,
            value: u128::from(d)
        }),
        (0u8..3).prop_map(|t| Action::SetField {
            field: OxmField::TcpDst,
            value: u128::from(t)
        }),
        (0u8..3).prop_map(|t| Action::SetField {
            field: OxmField::SctpSrc,
            value: u128::from(t)
        }),
        (0u8..3).prop_map(|i| Action::SetField {
            field: OxmField::Ipv6Dst,
            value: (0xfe80u128 << 112) | u128::from(i)
        }),
        Just(Action::Group(1)),
        Just(Action::Group(2)),
        Just(Action::Group(3)),
        (0u8..3, 1u32..4).prop_map(|(t, p)| Action::Resubmit {
            in_port: p,
            table: t
        }),
        (0u8..3).prop_map(|t| Action::Resubmit {
            in_port: OFPP_IN_PORT,
            table: t
        }),
    ]
}

fn arb_instructions() -> impl Strategy<Value = Instructions> {
    (
        proptest::collection::vec(arb_action(), 0..4),
        proptest::option::of(proptest::collection::vec(arb_action(), 0..2)),
        any::<bool>(),
        proptest::option::of((0u64..3, 0u64..4)),
        proptest::option::of(1u8..3),
    )
        .prop_map(|(apply, write, clear, md, goto)| Instructions {
            // Relative for now; made absolute (and valid) per rule below.
            meter: None,
            apply: Some(apply),
            clear,
            write,
            write_metadata: md,
            goto_table: goto,
        })
}

fn arb_key() -> impl Strategy<Value = Vec<u8>> {
    (
        1u32..4,
        0u8..3,
        0u8..3,
        0u8..3,
        prop_oneof![Just(None), (0u16..3).prop_map(Some)],
        0u8..3,
        any::<u16>(),
        0u8..5,
        // An outer tag over the VLAN one: none, 802.1ad, 802.1Q (a
        // stacked frame, `vlan_tci1` in the key).
        prop_oneof![
            Just(None),
            (0u16..3, prop_oneof![Just(0x88a8u16), Just(0x8100)]).prop_map(Some)
        ],
    )
        .prop_map(|(inp, dst, ip, tp, vlan, ttl, sport, kind, outer)| {
            let sctp = sctp_payload(sport, u16::from(tp));
            let mut v = Vec::new();
            let b = etherparse::PacketBuilder::ethernet2(MAC1, [0x50, 0x54, 0, 0, 0, dst]);
            let (src6, dst6) = (
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ip],
            );
            macro_rules! finish {
                ($b:expr) => {
                    match kind {
                        0 => $b
                            .ipv4([10, 0, 1, 1], [10, 0, 0, ip], ttl)
                            .udp(sport, u16::from(tp))
                            .write(&mut v, b"x")
                            .unwrap(),
                        1 => $b
                            .ipv4([10, 0, 1, 1], [10, 0, 0, ip], ttl)
                            .tcp(sport, u16::from(tp), 1, 100)
                            .write(&mut v, b"x")
                            .unwrap(),
                        2 => $b
                            .ipv6(src6, dst6, ttl)
                            .udp(sport, u16::from(tp))
                            .write(&mut v, b"x")
                            .unwrap(),
                        3 => $b
                            .ipv4([10, 0, 1, 1], [10, 0, 0, ip], ttl)
                            .write(&mut v, etherparse::IpNumber(132), &sctp)
                            .unwrap(),
                        _ => $b
                            .ipv6(src6, dst6, ttl)
                            .write(&mut v, etherparse::IpNumber(132), &sctp)
                            .unwrap(),
                    }
                };
            }
            match vlan {
                Some(vid) => finish!(b.single_vlan(etherparse::VlanId::try_new(vid).unwrap())),
                None => finish!(b),
            }
            if let (Some(_), Some((vid, tpid))) = (vlan, outer) {
                v = with_tag(&v, tpid, vid);
            }
            let mut out = inp.to_be_bytes().to_vec();
            out.extend(v);
            out
        })
}

fn bridge(
    rules: &[(u8, Match, u16, Instructions)],
    groups: &[(GroupType, Vec<Vec<Action>>)],
) -> Arc<Ofproto> {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    for (i, (ty, buckets)) in groups.iter().enumerate() {
        let _ = of.handle_group_mod(&GroupMod {
            command: GroupModCommand::Add,
            group_type: *ty,
            group_id: i as u32 + 1,
            buckets: buckets
                .iter()
                .enumerate()
                .map(|(j, a)| Bucket {
                    // Select: weights 1, 2, 0 (a zero-weight bucket
                    // takes no flows).
                    weight: if *ty == GroupType::Select {
                        [1, 2, 0][j % 3]
                    } else {
                        0
                    },
                    watch_port: if *ty == GroupType::FastFailover {
                        j as u32 + 1
                    } else {
                        OFPP_ANY
                    },
                    watch_group: OFPG_ANY,
                    actions: a.clone(),
                })
                .collect(),
            selection: None,
        });
    }
    for (t, m, p, ins) in rules {
        let mut ins = ins.clone();
        ins.goto_table = ins.goto_table.map(|g| t + g).filter(|g| *g < 3);
        let _ = of.handle_flow_mod(&fm(*t, *p, *m, ins));
    }
    of
}

/// A match on one field from a small domain, so that clauses of different
/// dimensions match the same packet often.
fn arb_dimension() -> impl Strategy<Value = Match> {
    (0u8..4, 0u8..3).prop_map(|(f, v)| {
        let mut m = Match::CATCHALL;
        let v = u128::from(v);
        match f {
            0 => m.set_field(OxmField::InPort, v + 1, 0xffff_ffff).unwrap(),
            1 => m
                .set_field(OxmField::EthDst, 0x5054_0000_0000 | v, (1 << 48) - 1)
                .unwrap(),
            2 => {
                m.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap();
                m.set_field(OxmField::Ipv4Dst, 0x0a00_0000 | v, 0xffff_ffff)
                    .unwrap();
            }
            _ => m.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap(),
        }
        m
    })
}

/// Conjunctive flows: clauses of conjunctions 1 and 2 (2 or 3 clauses)
/// over random matches, and `conj_id` flows with random instructions.
#[allow(clippy::type_complexity)]
fn arb_conj() -> impl Strategy<Value = Vec<(u8, Match, u16, Instructions)>> {
    let table = || prop_oneof![4 => Just(0u8), 1 => 1u8..3];
    let clause = (
        table(),
        prop_oneof![1 => arb_match(), 3 => arb_dimension()],
        2u16..4,
        proptest::collection::vec((1u32..3, 0u8..3), 1..3),
    )
        .prop_map(|(t, m, p, cs)| {
            let acts = cs
                .into_iter()
                .map(|(id, k)| Action::Conjunction {
                    id,
                    // Conjunction 1 has 2 clauses, 2 has 3 (one id, one n).
                    clause: k % (id as u8 + 1),
                    n_clauses: id as u8 + 1,
                })
                .collect();
            (t, m, p, Instructions::apply(acts))
        });
    let target = (
        table(),
        1u32..3,
        0u16..5,
        arb_instructions(),
        proptest::option::of(1u32..4),
    )
        .prop_map(|(t, id, p, ins, inp)| {
            let mut m = Match::CATCHALL;
            m.set_field(OxmField::ConjId, id.into(), 0xffff_ffff)
                .unwrap();
            if let Some(i) = inp {
                m.set_field(OxmField::InPort, i.into(), 0xffff_ffff)
                    .unwrap();
            }
            (t, m, p, ins)
        });
    (
        proptest::collection::vec(clause, 0..14),
        proptest::collection::vec(target, 1..5),
    )
        .prop_map(|(mut a, b)| {
            a.extend(b);
            a
        })
}

fn arb_group() -> impl Strategy<Value = (GroupType, Vec<Vec<Action>>)> {
    (
        prop_oneof![
            Just(GroupType::All),
            Just(GroupType::Select),
            Just(GroupType::Indirect),
            Just(GroupType::FastFailover)
        ],
        proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    (1u32..5).prop_map(out),
                    (0u8..3).prop_map(|d| Action::SetField {
                        field: OxmField::EthSrc,
                        value: u128::from(d)
                    }),
                    Just(Action::PushVlan(0x8100)),
                    Just(Action::PopVlan),
                    Just(Action::DecNwTtl),
                    (0u8..3).prop_map(|t| Action::Resubmit {
                        in_port: OFPP_IN_PORT,
                        table: t
                    }),
                ],
                0..4,
            ),
            1..4,
        ),
    )
        .prop_map(|(ty, mut b)| {
            if ty == GroupType::Indirect {
                b.truncate(1);
            }
            (ty, b)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn megaflows_are_sound(
        rules in proptest::collection::vec((0u8..3, arb_match(), 0u16..4, arb_instructions()), 0..12),
        groups in proptest::collection::vec(arb_group(), 3),
        misses in proptest::collection::vec(proptest::collection::vec(arb_action(), 0..3), 3),
        packets in proptest::collection::vec(arb_key(), 1..8),
        noise in proptest::collection::vec(any::<u64>(), N_WORDS),
        live in proptest::collection::vec(any::<bool>(), 4),
        conj in arb_conj(),
    ) {
        let mut rules = rules;
        rules.extend(conj);
        for (t, a) in misses.into_iter().enumerate() {
            rules.insert(0, (t as u8, Match::CATCHALL, 0, Instructions::apply(a)));
        }
        let of = bridge(&rules, &groups);
        for (i, l) in live.iter().enumerate() {
            of.set_port_live(i as u32 + 1, *l);
        }
        let mut h = of.upcall_handler();
        for raw in packets {
            let in_port = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let frame = &raw[4..];
            let key = key_of(frame, in_port);
            let pkt = packet(frame, in_port);
            // The first pass, then the passes its recirculations make
            // (with a tracker verdict drawn from the noise), up to 3 deep.
            let mut passes = vec![(key, 0)];
            while let Some((key, depth)) = passes.pop() {
                let up = h.upcall(&key, &pkt, &PORTS);
                // Any other key agreeing on the mask.
                let mut other = FlowKey::default();
                for (i, n) in noise.iter().enumerate() {
                    other.words[i] = (key.words[i] & up.mask.words[i]) | (n & !up.mask.words[i]);
                }
                let up2 = h.upcall(&other, &Packet::new(), &PORTS);
                prop_assert_eq!(&up.actions, &up2.actions, "mask {:?}", up.mask);
                let c1: Vec<usize> = up.counters.iter().map(|c| Arc::as_ptr(c) as usize).collect();
                let c2: Vec<usize> = up2.counters.iter().map(|c| Arc::as_ptr(c) as usize).collect();
                prop_assert_eq!(c1, c2);
                // The other key's mask is the same too (same decisions).
                prop_assert_eq!(up.mask, up2.mask);
                prop_assert!(up.mask.is_exact(Field::InPort));
                prop_assert!(up.mask.is_exact(Field::RecircId));
                if depth >= 3 {
                    continue;
                }
                let mut zone = 0;
                for a in &up.actions {
                    match a {
                        DpAction::Ct(c) => zone = c.zone,
                        DpAction::Recirc(id) => {
                            let mut k = key;
                            k.set(Field::RecircId, u128::from(*id));
                            let verdicts = [0x21u128, 0x22, 0x30, 0x2a];
                            k.set(Field::CtState, verdicts[(noise[depth] % 4) as usize]);
                            k.set(Field::CtZone, u128::from(zone));
                            // The original tuple, as a tracker fills it
                            // for a connection this packet opened (for
                            // `resubmit(,,ct)`), or a rewritten one.
                            if matches!(k.dl_type(), 0x0800 | 0x86dd) {
                                for (f, c) in [
                                    (Field::NwProto, Field::CtNwProto),
                                    (Field::NwSrc, Field::CtNwSrc),
                                    (Field::NwDst, Field::CtNwDst),
                                    (Field::TpSrc, Field::CtTpSrc),
                                    (Field::TpDst, Field::CtTpDst),
                                ] {
                                    k.set(c, k.get(f));
                                }
                                if noise[depth + 1] % 2 == 0 {
                                    k.set(Field::CtNwDst, k.get(Field::NwDst) ^ 1);
                                }
                            }
                            passes.push((k, depth + 1));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
