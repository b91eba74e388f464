//! `learn` (NXAST_LEARN/LEARN2): flows built from packets, added after
//! the translation that ran the action, refreshed by traffic on its
//! megaflow, bounded by `limit` and the bridge's cap, and removed with
//! the learning flow under `delete_learned` (OVS `lib/learn.c`,
//! `ofproto_flow_mod_learn`, `learned_cookies_flush`).

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use xennet_datapath::flow::Field;
use xennet_datapath::{DpAction, FlowMask, Upcall, UpcallHandler};
use xennet_ofproto::{FailMode, Ofproto};
use xennet_openflow::model::*;
use xennet_openflow::OfError;

const PORTS: [u32; 4] = [1, 2, 3, 4];

fn sf(field: MfField, ofs: u16, n_bits: u16) -> Subfield {
    Subfield { field, ofs, n_bits }
}

fn oxm(f: OxmField) -> MfField {
    MfField::Oxm(f)
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
                src: LearnSrc::Field(sf(oxm(OxmField::EthSrc), 0, 48)),
                dst: LearnDst::Match(sf(oxm(OxmField::EthDst), 0, 48)),
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

/// Table 0 learns and resubmits to table 1; table 1 floods by default.
fn learning_switch(l: Learn) -> Arc<Ofproto> {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_flow_mod(&fm(
        0,
        0x8000,
        Match::CATCHALL,
        apply(vec![
            Action::Learn(Box::new(l)),
            Action::Resubmit {
                in_port: OFPP_IN_PORT,
                table: 1,
            },
        ]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(1, 0, Match::CATCHALL, apply(vec![out(OFPP_FLOOD)])))
        .unwrap();
    of
}

fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    with_macs(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), src, dst)
}

fn upcall(h: &mut Box<dyn UpcallHandler>, f: &[u8], in_port: u32) -> Upcall {
    h.upcall(&key_of(f, in_port), &packet(f, in_port), &PORTS)
}

fn outputs(u: &Upcall) -> Vec<u32> {
    u.actions
        .iter()
        .filter_map(|a| match a {
            DpAction::Output(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn table_lines(of: &Ofproto, table: u8) -> Vec<String> {
    of.dump_flows()
        .lines()
        .filter_map(|l| {
            // Drop the duration, which moves.
            let at = l.find("table=")?;
            let l = &l[at..];
            l.starts_with(&format!("table={table},"))
                .then(|| l.to_owned())
        })
        .collect()
}

const A: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xa];
const B: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xb];

#[test]
fn mac_learning_switch() {
    let of = learning_switch(mac_learn());
    let mut h = of.upcall_handler();
    // A -> B from port 1: nothing learned yet, flood; A is learned.
    let g0 = h.generation();
    let u = upcall(&mut h, &frame(A, B), 1);
    assert_eq!(outputs(&u), vec![2, 3, 4]);
    assert_ne!(h.generation(), g0, "a learned flow revalidates");
    // The megaflow holds what learn read: the source MAC and VID bits.
    assert!(u.mask.is_exact(Field::DlSrc));
    assert_eq!(u.mask.get(Field::VlanTci) & 0x0fff, 0x0fff);
    assert_eq!(
        table_lines(&of, 1),
        vec![
            "table=1, n_packets=0, n_bytes=0, hard_timeout=60, priority=32768,vlan_tci=0x0000/0x0fff,dl_dst=50:54:00:00:00:0a actions=output:1".to_owned(),
            "table=1, n_packets=0, n_bytes=0, priority=0 actions=FLOOD".to_owned(),
        ]
    );
    assert_eq!(of.learned_flows().0, 1);
    // B -> A from port 2: the learned flow sends it to port 1 only.
    let u = upcall(&mut h, &frame(B, A), 2);
    assert_eq!(outputs(&u), vec![1]);
    assert_eq!(of.learned_flows().0, 2);
    // A again: the identical flow is refreshed, nothing changes.
    let g = h.generation();
    let before = of.learn_stats().refreshed.load(Ordering::Relaxed);
    let u = upcall(&mut h, &frame(A, B), 1);
    assert_eq!(outputs(&u), vec![2]);
    assert_eq!(h.generation(), g, "a refresh does not revalidate");
    assert_eq!(
        of.learn_stats().refreshed.load(Ordering::Relaxed),
        before + 1
    );
    // A moves to port 3: the learned flow changes.
    let u = upcall(&mut h, &frame(A, B), 3);
    assert_eq!(outputs(&u), vec![2]);
    assert!(table_lines(&of, 1)
        .iter()
        .any(|l| l.contains("dl_dst=50:54:00:00:00:0a") && l.ends_with("actions=output:3")));
    assert_eq!(of.learned_flows().0, 2);
}

#[test]
fn traffic_on_the_megaflow_refreshes_the_learned_flow() {
    let of = learning_switch(mac_learn());
    let mut h = of.upcall_handler();
    let f = frame(A, B);
    upcall(&mut h, &f, 1);
    // The second translation installs (generation unchanged) and is
    // tagged for megaflows_used.
    let u = upcall(&mut h, &f, 1);
    assert!(!u.tags.is_empty());
    let mut mask: FlowMask = u.mask.datapath_only();
    mask.set_exact(Field::InPort);
    let k = key_of(&f, 1).masked(&mask);
    let before = of.learn_stats().refreshed.load(Ordering::Relaxed);
    h.megaflows_used(&[k], Instant::now());
    assert_eq!(
        of.learn_stats().refreshed.load(Ordering::Relaxed),
        before + 1
    );
    // The learned flow's hard timeout counts from the refresh: it is
    // there 59 s on and gone 61 s on.
    of.expire(Instant::now() + Duration::from_secs(59));
    assert_eq!(of.learned_flows().0, 1);
    of.expire(Instant::now() + Duration::from_secs(61));
    assert_eq!(of.learned_flows().0, 0);
}

#[test]
fn trace_shows_the_learned_flow_and_learns_nothing() {
    let of = learning_switch(mac_learn());
    let t = of.trace(&key_of(&frame(A, B), 1), None);
    assert!(
        t.contains(
            "learn(table=1,hard_timeout=60,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])"
        ),
        "{t}"
    );
    assert!(
        t.contains("table=1 vlan_tci=0x0000/0x0fff,dl_dst=50:54:00:00:00:0a priority=32768 hard=60 actions=output:1"),
        "{t}"
    );
    assert_eq!(of.learned_flows().0, 0);
}

#[test]
fn limit_and_result_dst() {
    // learn(table=1,limit=1,result_dst=reg0[0],cookie=0x5,...) then
    // output to port 4 when reg0[0] is 1 (table 2).
    let l = Learn {
        cookie: 5,
        limit: 1,
        result_dst: Some(sf(oxm(OxmField::Reg(0)), 0, 1)),
        v2: true,
        ..mac_learn()
    };
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_flow_mod(&fm(
        0,
        0x8000,
        Match::CATCHALL,
        apply(vec![
            Action::Learn(Box::new(l)),
            Action::Resubmit {
                in_port: OFPP_IN_PORT,
                table: 2,
            },
        ]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(
        2,
        10,
        m(&[exact(OxmField::Reg(0), 1)]),
        apply(vec![out(4)]),
    ))
    .unwrap();
    let mut h = of.upcall_handler();
    assert_eq!(outputs(&upcall(&mut h, &frame(A, B), 1)), vec![4]);
    // A second MAC is over the limit: reg0[0] is 0, nothing learned.
    assert!(outputs(&upcall(&mut h, &frame(B, A), 2)).is_empty());
    assert_eq!(of.learned_flows().0, 1);
    assert_eq!(of.learn_stats().limit_reached.load(Ordering::Relaxed), 1);
    // The first MAC again is a refresh, within the limit.
    assert_eq!(outputs(&upcall(&mut h, &frame(A, B), 1)), vec![4]);
}

#[test]
fn bridge_cap_on_learned_flows() {
    let of = learning_switch(mac_learn());
    of.set_max_learned(1);
    let mut h = of.upcall_handler();
    upcall(&mut h, &frame(A, B), 1);
    upcall(&mut h, &frame(B, A), 2);
    assert_eq!(of.learned_flows(), (1, 1));
    assert_eq!(of.learn_stats().cap_reached.load(Ordering::Relaxed), 1);
}

#[test]
fn delete_learned_goes_with_the_learning_flow() {
    let l = Learn {
        flags: NX_LEARN_F_DELETE_LEARNED,
        cookie: 0x77,
        ..mac_learn()
    };
    let of = learning_switch(l.clone());
    // A second learning flow with the same cookie and table keeps the
    // learned flows alive until it goes too.
    let mut second = fm(
        0,
        10,
        m(&[exact(OxmField::InPort, 4)]),
        apply(vec![Action::Learn(Box::new(l))]),
    );
    of.handle_flow_mod(&second).unwrap();
    // A flow in table 1 with the cookie but added by the controller goes
    // too (OVS deletes by cookie), one with another cookie stays.
    let mut other = fm(
        1,
        5,
        m(&[exact(OxmField::EthDst, 0x1)]),
        apply(vec![out(2)]),
    );
    other.cookie = 0x78;
    of.handle_flow_mod(&other).unwrap();
    let mut h = of.upcall_handler();
    upcall(&mut h, &frame(A, B), 1);
    upcall(&mut h, &frame(B, A), 2);
    assert_eq!(of.learned_flows().0, 2);
    let mut del = fm(0, 0x8000, Match::CATCHALL, Instructions::default());
    del.command = FlowModCommand::DeleteStrict;
    of.handle_flow_mod(&del).unwrap();
    assert_eq!(
        of.learned_flows().0,
        2,
        "the second learning flow holds them"
    );
    second.command = FlowModCommand::DeleteStrict;
    of.handle_flow_mod(&second).unwrap();
    assert_eq!(of.learned_flows().0, 0);
    let t1 = table_lines(&of, 1);
    assert_eq!(t1.len(), 2, "{t1:?}");
    assert!(t1.iter().any(|l| l.contains("dl_dst=00:00:00:00:00:01")));
}

#[test]
fn flow_mod_checks() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let add = |l: Learn, mt: Match| {
        of.handle_flow_mod(&fm(0, 1, mt, apply(vec![Action::Learn(Box::new(l))])))
    };
    // An IP source field needs an IP match.
    let ip_src = Learn {
        specs: vec![LearnSpec {
            src: LearnSrc::Field(sf(oxm(OxmField::Ipv4Src), 0, 32)),
            dst: LearnDst::Load(sf(oxm(OxmField::Reg(1)), 0, 32)),
            n_bits: 32,
        }],
        ..mac_learn()
    };
    assert_eq!(
        add(ip_src.clone(), Match::CATCHALL),
        Err(OfError::MATCH_INCONSISTENT)
    );
    assert_eq!(add(ip_src, m(&[exact(OxmField::EthType, 0x800)])), Ok(()));
    // A learned IP destination match needs eth_type matched before it.
    let spec_dst = |imm_first: bool| {
        let mut specs = vec![LearnSpec {
            src: LearnSrc::Field(sf(oxm(OxmField::Reg(1)), 0, 32)),
            dst: LearnDst::Match(sf(oxm(OxmField::Ipv4Dst), 0, 32)),
            n_bits: 32,
        }];
        if imm_first {
            specs.insert(
                0,
                LearnSpec {
                    src: LearnSrc::Imm(0x800),
                    dst: LearnDst::Match(sf(oxm(OxmField::EthType), 0, 16)),
                    n_bits: 16,
                },
            );
        }
        Learn {
            specs,
            ..mac_learn()
        }
    };
    assert_eq!(
        add(spec_dst(false), Match::CATCHALL),
        Err(OfError::MATCH_INCONSISTENT)
    );
    assert_eq!(add(spec_dst(true), Match::CATCHALL), Ok(()));
    // fin timeouts: the learned flow gets fin_timeout.
    let fin = Learn {
        fin_idle_timeout: 5,
        ..mac_learn()
    };
    assert_eq!(add(fin, Match::CATCHALL), Ok(()));
    // Into a table beyond the last.
    let far = Learn {
        table_id: 254,
        ..mac_learn()
    };
    assert_eq!(add(far, Match::CATCHALL), Err(OfError::BAD_ACTION_ARGUMENT));
    // Not in an action set.
    let mut w = fm(0, 2, Match::CATCHALL, Instructions::default());
    w.instructions.write = Some(vec![Action::Learn(Box::new(mac_learn()))]);
    assert_eq!(of.handle_flow_mod(&w), Err(OfError::UNSUPPORTED_ORDER));
}

/// `fin_timeout(idle_timeout=5)` (NXAST_FIN_TIMEOUT, OVS
/// `xlate_fin_timeout`): a TCP packet with FIN lowers the rule's idle
/// timeout, others leave it; the FIN and RST bits go into the megaflow;
/// a learn with `fin_idle_timeout` puts it first in the learned flow.
#[test]
fn fin_timeout_lowers_the_rules_timeouts() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let mut f = fm(
        0,
        10,
        m(&[exact(OxmField::EthType, 0x800), exact(OxmField::IpProto, 6)]),
        apply(vec![
            Action::FinTimeout { idle: 5, hard: 0 },
            Action::Learn(Box::new(Learn {
                fin_idle_timeout: 7,
                fin_hard_timeout: 9,
                ..mac_learn()
            })),
            out(2),
        ]),
    );
    f.idle_timeout = 60;
    of.handle_flow_mod(&f).unwrap();
    assert_eq!(
        of.handle_flow_mod(&fm(
            0,
            11,
            Match::CATCHALL,
            apply(vec![Action::FinTimeout { idle: 5, hard: 0 }]),
        )),
        Err(OfError::MATCH_INCONSISTENT)
    );
    let mut h = of.upcall_handler();
    let frame = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80, 64);
    let u = upcall(&mut h, &frame, 1);
    assert_eq!(u.mask.get(Field::TcpFlags) & 0x005, 0x005);
    let line = |of: &Ofproto| table_lines(of, 0).join("\n");
    assert!(line(&of).contains("idle_timeout=60,"), "{}", line(&of));
    let mut fin = frame.clone();
    fin[14 + 20 + 13] |= 0x01;
    upcall(&mut h, &fin, 1);
    assert!(line(&of).contains("idle_timeout=5,"), "{}", line(&of));
    assert!(table_lines(&of, 1)
        .iter()
        .any(|l| l.contains("actions=fin_timeout(idle_timeout=7,hard_timeout=9),output:1")));
}
