//! `check_pkt_larger(N)->dst` (NXAST_CHECK_PKT_LARGER): translated as OVS
//! `xlate_check_pkt_larger` does, into a datapath `check_pkt_len` whose
//! two branches are the rest of the actions with the bit 1 and 0.

mod common;

use std::sync::Arc;

use common::*;
use xennet_datapath::actions::ActionsFmt;
use xennet_datapath::{DpAction, Upcall};
use xennet_ofproto::{FailMode, Ofproto};
use xennet_openflow::model::*;
use xennet_openflow::OfError;

const PORTS: [u32; 4] = [1, 2, 3, 4];

fn reg_bit(n: u8, bit: u16) -> Subfield {
    Subfield {
        field: MfField::Oxm(OxmField::Reg(n)),
        ofs: bit,
        n_bits: 1,
    }
}

fn up(of: &Arc<Ofproto>, frame: &[u8]) -> Upcall {
    let mut h = of.upcall_handler();
    h.upcall(&key_of(frame, 1), &packet(frame, 1), &PORTS)
}

/// OVN's gateway MTU check: `check_pkt_larger(1514)->reg9[1]`, then
/// `resubmit(,1)`, where table 1 sends large packets to 3 and the others
/// to 2; an output after the resubmit sees the packet as it came.
#[test]
fn branches_are_the_rest_of_the_pipeline() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_flow_mod(&fm(
        0,
        10,
        Match::CATCHALL,
        apply(vec![
            Action::CheckPktLarger {
                len: 1514,
                dst: reg_bit(9, 1),
            },
            Action::Resubmit {
                in_port: OFPP_IN_PORT,
                table: 1,
            },
            out(4),
        ]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(
        1,
        10,
        m(&[(OxmField::Reg(9), 2, 2), exact(OxmField::EthType, 0x800)]),
        apply(vec![
            Action::SetField {
                field: OxmField::Ipv4Dst,
                value: 0x0a00_0009,
            },
            out(3),
        ]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(1, 0, Match::CATCHALL, apply(vec![out(2)])))
        .unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    assert_eq!(
        ActionsFmt(&u.actions).to_string(),
        "check_pkt_len(size=1514,gt(set(ipv4(dst=10.0.0.9)),3,4),le(2,4))"
    );
    // The set-field read nw_dst's prerequisites; the length is not in the
    // megaflow (the datapath decides).
    assert!(matches!(
        u.actions[0],
        DpAction::CheckPktLen {
            size: 1514,
            n_gt: 3,
            n_le: 2
        }
    ));
    let t = of.trace(
        &key_of(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), 1),
        None,
    );
    assert!(t.contains("check_pkt_larger(1514)->NXM_NX_REG9[1]"), "{t}");
    assert!(t.contains("packet larger than 1514 bytes:"), "{t}");
    assert!(t.contains("packet at most 1514 bytes:"), "{t}");
}

/// With goto_table after the apply-actions, the goto is part of both
/// branches (OVS's ofpacts hold the whole rule).
#[test]
fn goto_runs_in_both_branches() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let mut ins = apply(vec![Action::CheckPktLarger {
        len: 100,
        dst: reg_bit(0, 0),
    }]);
    ins.goto_table = Some(1);
    of.handle_flow_mod(&fm(0, 10, Match::CATCHALL, ins))
        .unwrap();
    of.handle_flow_mod(&fm(
        1,
        10,
        m(&[(OxmField::Reg(0), 1, 1)]),
        apply(vec![out(3)]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(1, 0, Match::CATCHALL, apply(vec![out(2)])))
        .unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    assert_eq!(
        ActionsFmt(&u.actions).to_string(),
        "check_pkt_len(size=100,gt(3),le(2))"
    );
}

#[test]
fn flow_mod_checks() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    // A read-only destination is refused by the codec; here an IP
    // destination needs an IP match.
    let ip = Subfield {
        field: MfField::Oxm(OxmField::Ipv4Dst),
        ofs: 0,
        n_bits: 1,
    };
    let bad = fm(
        0,
        1,
        Match::CATCHALL,
        apply(vec![Action::CheckPktLarger { len: 10, dst: ip }]),
    );
    assert_eq!(of.handle_flow_mod(&bad), Err(OfError::MATCH_INCONSISTENT));
    // Not in an action set.
    let mut w = fm(0, 2, Match::CATCHALL, Instructions::default());
    w.instructions.write = Some(vec![Action::CheckPktLarger {
        len: 10,
        dst: reg_bit(0, 0),
    }]);
    assert_eq!(of.handle_flow_mod(&w), Err(OfError::UNSUPPORTED_ORDER));
}
