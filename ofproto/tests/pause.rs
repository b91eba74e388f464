//! `controller(pause)` (OVS `ctx->pause`): a pause two resubmits deep
//! freezes what each level had left, the rules' other instructions
//! included, into the packet-in's continuation; the pausing action itself
//! is not in it.

mod common;

use std::sync::Arc;

use common::*;
use xennet_datapath::{DpAction, Upcall};
use xennet_ofproto::recirc::FrozenOp;
use xennet_ofproto::{FailMode, Ofproto};
use xennet_openflow::model::*;

const PORTS: [u32; 4] = [1, 2, 3, 4];

fn up(of: &Arc<Ofproto>, frame: &[u8]) -> Upcall {
    let mut h = of.upcall_handler();
    h.upcall(&key_of(frame, 1), &packet(frame, 1), &PORTS)
}

fn resubmit(table: u8) -> Action {
    Action::Resubmit {
        in_port: OFPP_IN_PORT,
        table,
    }
}

fn pause(userdata: &[u8]) -> Action {
    Action::Controller(Box::new(Controller {
        max_len: u16::MAX,
        reason: 1,
        controller_id: 0,
        userdata: userdata.to_vec(),
        pause: true,
        meter_id: u32::MAX,
        v2: true,
    }))
}

#[test]
fn pause_freezes_every_level_and_instruction() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    // Table 0: reg1 = 7, push reg1, resubmit(,1), then output:4; its
    // instructions also write output:3 to the action set and go to 5.
    let mut ins0 = apply(vec![
        Action::SetField {
            field: OxmField::Reg(1),
            value: 7,
        },
        Action::StackPush(Subfield {
            field: MfField::Oxm(OxmField::Reg(1)),
            ofs: 0,
            n_bits: 32,
        }),
        resubmit(1),
        out(4),
    ]);
    ins0.write = Some(vec![out(3)]);
    ins0.goto_table = Some(5);
    let mut fm0 = fm(0, 10, Match::CATCHALL, ins0);
    fm0.cookie = 0x10;
    of.handle_flow_mod(&fm0).unwrap();
    // Table 1: pause, then output:2.
    let mut fm1 = fm(1, 10, Match::CATCHALL, apply(vec![pause(&[9]), out(2)]));
    fm1.cookie = 0x11;
    of.handle_flow_mod(&fm1).unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    // Only the packet-in: nothing after the pause runs before the resume.
    assert_eq!(u.actions.len(), 1, "{:?}", u.actions);
    let DpAction::Userspace(ud) = u.actions[0] else {
        panic!("{:?}", u.actions)
    };
    assert_eq!((ud.table_id, ud.cookie), (1, 0x11), "the pausing rule");
    let extras = xennet_ofproto::pin_extras::get(ud.extra).expect("extras");
    assert_eq!(extras.userdata, vec![9]);
    assert!(extras.pipeline.contains(&(OxmField::Reg(1), 7)));
    let c = extras.continuation.as_ref().expect("a continuation");
    assert_eq!(c.stack, vec![7]);
    assert!(c.action_set.is_empty(), "write_actions comes after apply");
    let rest: Vec<FrozenOp> = c
        .ops
        .iter()
        .filter(|op| !matches!(op, FrozenOp::Unroll { .. }))
        .cloned()
        .collect();
    assert_eq!(
        rest,
        vec![
            FrozenOp::Act(out(2)),
            FrozenOp::Act(out(4)),
            FrozenOp::WriteActions(vec![out(3)]),
            FrozenOp::GotoTable(5),
        ]
    );
    // Each level's actions follow their own rule's table and cookie.
    let at = |want: &FrozenOp| {
        let i = c.ops.iter().position(|op| op == want).unwrap();
        c.ops[..i]
            .iter()
            .rev()
            .find_map(|op| match op {
                FrozenOp::Unroll { table_id, cookie } => Some((*table_id, *cookie)),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(at(&FrozenOp::Act(out(2))), (1, 0x11));
    assert_eq!(at(&FrozenOp::Act(out(4))), (0, 0x10));
    assert_eq!(at(&FrozenOp::GotoTable(5)), (0, 0x10));
}

/// A pause inside `clone` cannot unwind out of it: dropped, as a
/// recirculation there is.
#[test]
fn pause_inside_clone_drops() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_flow_mod(&fm(
        0,
        10,
        Match::CATCHALL,
        apply(vec![Action::Clone(vec![pause(&[])]), out(2)]),
    ))
    .unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    assert!(u.actions.is_empty(), "{:?}", u.actions);
}
