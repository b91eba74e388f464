//! `controller(pause)` (OVS `ctx->pause`): a pause two resubmits deep
//! freezes what each level had left, the rules' other instructions
//! included, into the packet-in's continuation; the pausing action itself
//! is not in it. A pause inside `clone`, a group bucket or a
//! `check_pkt_larger` branch ends with that context, as OVS 3.1.0 does it
//! (the expected datapath actions and continuations are what the real
//! ovs-vswitchd 3.1.0 gives for the same tables, `ofproto/trace
//! -generate` and `ovs-ofctl monitor br0 resume`), and `NXT_RESUME` runs
//! that context's rest.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use xennet_datapath::actions::ActionsFmt;
use xennet_datapath::memport::{mem_port, MemPortPeer};
use xennet_datapath::{Datapath, DpAction, DpHandle, PortFeatures, Upcall};
use xennet_ofproto::pin_extras::PinExtras;
use xennet_ofproto::recirc::FrozenOp;
use xennet_ofproto::{FailMode, OfEvent, Ofproto};
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

fn reg(n: u8, value: u128) -> Action {
    Action::SetField {
        field: OxmField::Reg(n),
        value,
    }
}

fn push_reg(n: u8) -> Action {
    Action::StackPush(Subfield {
        field: MfField::Oxm(OxmField::Reg(n)),
        ofs: 0,
        n_bits: 32,
    })
}

fn nw_dst(last: u8) -> Action {
    Action::SetField {
        field: OxmField::Ipv4Dst,
        value: u128::from(u32::from_be_bytes([10, 0, 0, last])),
    }
}

fn reg0_bit0() -> Subfield {
    Subfield {
        field: MfField::Oxm(OxmField::Reg(0)),
        ofs: 0,
        n_bits: 1,
    }
}

/// A rule with a cookie.
fn rule(table: u8, cookie: u64, matcher: Match, ins: Instructions) -> FlowMod {
    let mut f = fm(table, 10, matcher, ins);
    f.cookie = cookie;
    f
}

/// The datapath actions as OVS prints them, each `userspace(...)` cut to
/// `userspace` (its fields are xennet's own).
fn shape(actions: &[DpAction]) -> String {
    let text = ActionsFmt(actions).to_string();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("userspace(") {
        out.push_str(&rest[..i + "userspace".len()]);
        let mut depth = 0;
        let mut end = rest.len();
        for (j, c) in rest[i + "userspace".len()..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + "userspace".len() + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The packet-in extras of the `n`th userspace action of `u`.
fn extras(u: &Upcall, n: usize) -> Arc<PinExtras> {
    let ud = u
        .actions
        .iter()
        .flat_map(|a| match a {
            DpAction::Userspace(ud) => Some(*ud),
            _ => None,
        })
        .nth(n)
        .unwrap_or_else(|| panic!("no userspace action {n}: {:?}", u.actions));
    xennet_ofproto::pin_extras::get(ud.extra).expect("extras")
}

/// The frozen actions and instructions without the `Unroll` steps, and
/// the (table, cookie) of the first `Unroll`.
fn rest_of(
    c: &xennet_openflow::packet_in2::continuation::Continuation,
) -> (Vec<FrozenOp>, (u8, u64)) {
    let rest = c
        .ops
        .iter()
        .filter(|op| !matches!(op, FrozenOp::Unroll { .. }))
        .cloned()
        .collect();
    let at = c
        .ops
        .iter()
        .find_map(|op| match op {
            FrozenOp::Unroll { table_id, cookie } => Some((*table_id, *cookie)),
            _ => None,
        })
        .expect("an unroll step");
    (rest, at)
}

/// Table 0 pushes reg3=5, writes `output:3` to the action set and goes
/// to table 1, whose clone pauses between two of its actions, and whose
/// actions after the clone output to 3. OVS 3.1.0 (`clone_xlate_actions`
/// copies the stack and action set, `finish_freezing` at the clone's end,
/// `ctx->exit` left set): the packet-in is the translation's last
/// action; its continuation is the clone's rest with the clone's stack
/// and action set (`continuation.actions=unroll_xlate(table=1,
/// cookie=0x11),output:2`, `continuation.action_set=output:3`,
/// `continuation.stack=0x5`), its registers the clone's.
#[test]
fn pause_inside_clone_ends_the_translation_there() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let mut ins0 = apply(vec![reg(3, 5), push_reg(3)]);
    ins0.write = Some(vec![out(3)]);
    ins0.goto_table = Some(1);
    of.handle_flow_mod(&rule(0, 0x10, Match::CATCHALL, ins0))
        .unwrap();
    of.handle_flow_mod(&rule(
        1,
        0x11,
        m(&[exact(OxmField::EthType, 0x0800)]),
        apply(vec![
            Action::Clone(vec![reg(1, 2), nw_dst(9), pause(&[1]), out(2)]),
            reg(4, 7),
            out(3),
        ]),
    ))
    .unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    assert_eq!(
        shape(&u.actions),
        "set(ipv4(dst=10.0.0.9)),userspace",
        "{:?}",
        u.actions
    );
    let e = extras(&u, 0);
    assert_eq!(e.userdata, vec![1]);
    assert!(
        e.pipeline.contains(&(OxmField::Reg(1), 2)),
        "{:?}",
        e.pipeline
    );
    assert!(
        e.pipeline.contains(&(OxmField::Reg(3), 5)),
        "{:?}",
        e.pipeline
    );
    assert!(!e.pipeline.iter().any(|(f, _)| *f == OxmField::Reg(4)));
    let c = e.continuation.as_ref().expect("a continuation");
    assert_eq!(rest_of(c), (vec![FrozenOp::Act(out(2))], (1, 0x11)));
    assert_eq!(c.action_set, vec![out(3)]);
    assert_eq!(c.stack, vec![5]);
    let t = of.trace(
        &key_of(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), 1),
        None,
    );
    assert!(t.contains("NXT_RESUME goes on with: output:2"), "{t}");
}

/// `exit` in a clone ends the whole translation, as in OVS 3.1.0
/// (`clone(output:2,exit),output:3` gives `Datapath actions: 2`).
#[test]
fn exit_inside_clone_ends_the_translation() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_flow_mod(&fm(
        0,
        10,
        Match::CATCHALL,
        apply(vec![Action::Clone(vec![out(2), Action::Exit]), out(3)]),
    ))
    .unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    assert_eq!(shape(&u.actions), "2");
}

/// An all group whose first bucket rewrites nw_dst and resubmits to a
/// table that pauses; the second bucket and the actions after the group
/// go on with the packet as before the group. OVS 3.1.0
/// (`xlate_group_bucket`: `finish_freezing`, then `ctx->exit = false`):
/// `set(ipv4(dst=10.0.0.9)),userspace(..),set(ipv4(dst=10.0.0.2)),2,3`,
/// `continuation.actions=unroll_xlate(table=5, cookie=0),output:2,
/// set_field:0x5->reg5`, `continuation.stack=0x3`.
#[test]
fn pause_in_a_group_bucket_goes_on_after_the_group() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_group_mod(&GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: 1,
        buckets: vec![bucket(vec![nw_dst(9), resubmit(5)]), bucket(vec![out(2)])],
        selection: None,
    })
    .unwrap();
    of.handle_flow_mod(&rule(
        0,
        0x10,
        Match::CATCHALL,
        apply(vec![reg(2, 3), push_reg(2), Action::Group(1), out(3)]),
    ))
    .unwrap();
    of.handle_flow_mod(&rule(
        5,
        0x55,
        Match::CATCHALL,
        apply(vec![reg(1, 1), pause(&[]), out(2), reg(5, 5)]),
    ))
    .unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    assert_eq!(
        shape(&u.actions),
        "set(ipv4(dst=10.0.0.9)),userspace,set(ipv4(dst=10.0.0.2)),2,3"
    );
    let e = extras(&u, 0);
    assert!(
        e.pipeline.contains(&(OxmField::Reg(1), 1)),
        "{:?}",
        e.pipeline
    );
    let c = e.continuation.as_ref().expect("a continuation");
    assert_eq!(
        rest_of(c),
        (
            vec![FrozenOp::Act(out(2)), FrozenOp::Act(reg(5, 5))],
            (5, 0x55)
        )
    );
    assert_eq!(c.stack, vec![3]);
    assert!(c.action_set.is_empty());
}

/// Table 0 resubmits to 1, then outputs to 3; table 1 splits on the
/// length into reg0[0] and resubmits to 2, where one branch pauses.
/// OVS 3.1.0 (`xlate_check_pkt_larger`: `finish_freezing` in each
/// branch, then the first branch's `ctx->exit`): a pause in the "greater"
/// branch ends the translation
/// (`check_pkt_len(size=100,gt(userspace(..)),le(2))`), one in the other
/// branch does not (`check_pkt_len(size=100,gt(2),le(userspace(..))),3`);
/// likewise `exit` in the first branch (`gt(drop),le(2)`).
#[test]
fn pause_in_a_check_pkt_larger_branch() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_flow_mod(&rule(
        0,
        0x10,
        Match::CATCHALL,
        apply(vec![resubmit(1), out(3)]),
    ))
    .unwrap();
    of.handle_flow_mod(&rule(
        1,
        0x11,
        Match::CATCHALL,
        apply(vec![
            Action::CheckPktLarger {
                len: 100,
                dst: reg0_bit0(),
            },
            resubmit(2),
        ]),
    ))
    .unwrap();
    let reg0 = |v| m(&[exact(OxmField::Reg(0), v)]);
    let fr = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    for (larger, want) in [
        (1, "check_pkt_len(size=100,gt(userspace),le(2))"),
        (0, "check_pkt_len(size=100,gt(2),le(userspace)),3"),
    ] {
        of.handle_flow_mod(&rule(
            2,
            0x22,
            reg0(larger),
            apply(vec![pause(&[]), out(2)]),
        ))
        .unwrap();
        of.handle_flow_mod(&rule(2, 0x22, reg0(1 - larger), apply(vec![out(2)])))
            .unwrap();
        let u = up(&of, &fr);
        assert_eq!(shape(&u.actions), want);
        let e = extras(&u, 0);
        assert!(
            e.pipeline.contains(&(OxmField::Reg(0), larger)) || larger == 0,
            "{:?}",
            e.pipeline
        );
        let c = e.continuation.as_ref().expect("a continuation");
        assert_eq!(rest_of(c), (vec![FrozenOp::Act(out(2))], (2, 0x22)));
    }
    of.handle_flow_mod(&rule(2, 0x22, reg0(1), apply(vec![Action::Exit])))
        .unwrap();
    of.handle_flow_mod(&rule(2, 0x22, reg0(0), apply(vec![out(2)])))
        .unwrap();
    assert_eq!(
        shape(&up(&of, &fr).actions),
        "check_pkt_len(size=100,gt(drop),le(2))"
    );
}

/// OVS 3.1.0 starts the first `check_pkt_larger` branch with a copy of
/// the action set and the second with what the first left of it (empty
/// once the first ran it); the pipeline's own action set runs at its end:
/// `check_pkt_len(size=100,gt(2,3),le(2)),3`.
#[test]
fn check_pkt_larger_branches_share_one_copy_of_the_action_set() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let mut ins0 = apply(Vec::new());
    ins0.write = Some(vec![out(3)]);
    ins0.goto_table = Some(1);
    of.handle_flow_mod(&fm(0, 10, Match::CATCHALL, ins0))
        .unwrap();
    of.handle_flow_mod(&fm(
        1,
        10,
        Match::CATCHALL,
        apply(vec![
            Action::CheckPktLarger {
                len: 100,
                dst: reg0_bit0(),
            },
            out(2),
        ]),
    ))
    .unwrap();
    let u = up(&of, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    assert_eq!(shape(&u.actions), "check_pkt_len(size=100,gt(2,3),le(2)),3");
}

fn setup(of: &Arc<Ofproto>, n: u32) -> (DpHandle, Vec<MemPortPeer>) {
    let dp = Datapath::spawn("t", of.upcall_handler()).unwrap();
    let mut peers = Vec::new();
    for p in 1..=n {
        let (port, peer) = mem_port(&format!("p{p}"), PortFeatures::default()).unwrap();
        dp.add_port(p, Box::new(port)).unwrap();
        peers.push(peer);
    }
    of.attach_datapath(dp.clone());
    (dp, peers)
}

/// The paused packet-in of a frame from port 1, through a real
/// forwarding thread.
fn paused_packet_in(events: &std::sync::mpsc::Receiver<OfEvent>) -> PacketIn {
    let ev = events.recv_timeout(Duration::from_secs(60)).unwrap();
    let OfEvent::PacketIn(pi, _) = ev else {
        panic!("{ev:?}")
    };
    assert!(pi.continuation.is_some(), "{pi:?}");
    pi
}

/// `NXT_RESUME` of a pause inside a clone and inside a group bucket,
/// through a real forwarding thread: the resumed packet is the clone's
/// (rewritten nw_dst, the clone's registers, its copy of the action set)
/// and runs the clone's rest (a resubmit to a table that matches the
/// clone's register) then that action set; the bucket's rest runs on the
/// bucket's packet.
#[test]
fn nxt_resume_runs_the_rest_of_a_clone_and_of_a_bucket() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let events = of.events().unwrap();
    let (dp, peers) = setup(&of, 4);
    // Clone: table 0 writes output:4 to the action set, goes to 1; the
    // clone sets reg1=2 and nw_dst, pauses, then resubmits to table 3,
    // which outputs to 2 only with reg1=2.
    let mut ins0 = apply(Vec::new());
    ins0.write = Some(vec![out(4)]);
    ins0.goto_table = Some(1);
    of.handle_flow_mod(&fm(0, 10, Match::CATCHALL, ins0))
        .unwrap();
    of.handle_flow_mod(&fm(
        1,
        10,
        m(&[exact(OxmField::EthType, 0x0800)]),
        apply(vec![
            Action::Clone(vec![reg(1, 2), nw_dst(9), pause(&[]), resubmit(3)]),
            out(3),
        ]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(
        3,
        10,
        m(&[exact(OxmField::Reg(1), 2)]),
        apply(vec![out(2)]),
    ))
    .unwrap();
    peers[0].inject_frame(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    let pi = paused_packet_in(&events);
    of.nxt_resume(&pi, &dp).unwrap();
    let to2 = wait_sent(&peers[1], 1);
    let to4 = wait_sent(&peers[3], 1);
    for p in [&to2[0], &to4[0]] {
        assert_eq!(&p.data()[30..34], &[10, 0, 0, 9], "the clone's nw_dst");
    }
    assert!(peers[2].take_sent().is_empty(), "nothing after the clone");

    // Group: the bucket rewrites nw_dst to 10.0.0.7 and resubmits to
    // table 5, which pauses and then outputs to 2; the second bucket
    // outputs to 3 with the packet as before the group.
    of.handle_flow_mod(&FlowMod {
        command: FlowModCommand::Delete,
        ..fm(0xff, 0, Match::CATCHALL, apply(Vec::new()))
    })
    .unwrap();
    of.handle_group_mod(&GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: 1,
        buckets: vec![bucket(vec![nw_dst(7), resubmit(5)]), bucket(vec![out(3)])],
        selection: None,
    })
    .unwrap();
    of.handle_flow_mod(&fm(0, 10, Match::CATCHALL, apply(vec![Action::Group(1)])))
        .unwrap();
    of.handle_flow_mod(&fm(5, 10, Match::CATCHALL, apply(vec![pause(&[]), out(2)])))
        .unwrap();
    peers[0].inject_frame(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 3, 4));
    let pi = paused_packet_in(&events);
    let to3 = wait_sent(&peers[2], 1);
    assert_eq!(
        &to3[0].data()[30..34],
        &[10, 0, 0, 2],
        "the second bucket's packet"
    );
    of.nxt_resume(&pi, &dp).unwrap();
    let to2 = wait_sent(&peers[1], 1);
    assert_eq!(
        &to2[0].data()[30..34],
        &[10, 0, 0, 7],
        "the bucket's packet"
    );
    dp.shutdown();
}

/// A recirculation (a lookup after `pop_mpls`) in a group bucket ends
/// with the bucket as a pause does, and the second bucket and the
/// actions after the group get the labelled packet back. OVS 3.1.0:
/// `pop_mpls(eth_type=0x800),recirc(..),push_mpls(label=5,tc=0,ttl=0,
/// bos=1,eth_type=0x8847),2,3`.
#[test]
fn recirculation_in_a_group_bucket_goes_on_after_the_group() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    of.handle_group_mod(&GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: 1,
        buckets: vec![
            bucket(vec![Action::PopMpls(0x0800), resubmit(5)]),
            bucket(vec![out(2)]),
        ],
        selection: None,
    })
    .unwrap();
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[exact(OxmField::EthType, 0x8847)]),
        apply(vec![Action::Group(1), out(3)]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(
        5,
        10,
        Match::CATCHALL,
        apply(vec![Action::DecNwTtl, out(2)]),
    ))
    .unwrap();
    let ip = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let mut f = ip[..12].to_vec();
    f.extend_from_slice(&[0x88, 0x47]);
    f.extend_from_slice(&((5u32 << 12) | (1 << 8)).to_be_bytes());
    f.extend_from_slice(&ip[14..]);
    let u = up(&of, &f);
    let text = shape(&u.actions);
    let (head, tail) = text.split_once("recirc(").expect(&text);
    assert_eq!(head, "pop_mpls(eth_type=0x800),");
    let tail = &tail[tail.find(')').unwrap() + 1..];
    assert_eq!(
        tail,
        ",push_mpls(label=5,tc=0,ttl=0,bos=1,eth_type=0x8847),2,3"
    );
}

/// The Ethernet frames of IPv4 fragments of a UDP datagram with
/// `payload` bytes of data, each fragment at most `max_l3` L3 bytes
/// (RFC 791: offsets in 8-byte units, MF on all but the last).
fn udp_fragments(payload: usize, max_l3: usize, ident: u16) -> Vec<Vec<u8>> {
    let mut whole = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5000, 6000)
        .write(&mut whole, &vec![0x5a; payload])
        .unwrap();
    let (eth, ip) = whole.split_at(14);
    let body = &ip[20..];
    let step = (max_l3 - 20) / 8 * 8;
    let mut frames = Vec::new();
    for (i, chunk) in body.chunks(step).enumerate() {
        let last = (i + 1) * step >= body.len();
        let mut h = ip[..20].to_vec();
        h[2..4].copy_from_slice(&u16::try_from(20 + chunk.len()).unwrap().to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        let off = u16::try_from(i * step / 8).unwrap() | if last { 0 } else { 0x2000 };
        h[6..8].copy_from_slice(&off.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let sum = h
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = (sum & 0xffff) + (sum >> 16);
        h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let mut f = eth.to_vec();
        f.extend_from_slice(&h);
        f.extend_from_slice(chunk);
        frames.push(f);
    }
    frames
}

/// A datagram the connection tracker reassembled (`ct(table=1)`), paused
/// in table 1 and resumed with `NXT_RESUME`, still leaves as fragments no
/// larger than the largest it arrived in: the continuation carries that
/// size (xennet's `FRAG` continuation property) and the resume restores
/// it. Without it the whole 2.8 kB datagram would leave in one frame, which
/// a 1500-byte port refuses. A packet that was not reassembled has no
/// fragment size in its continuation.
#[test]
fn nxt_resume_keeps_a_reassembled_datagram_fragmented() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let events = of.events().unwrap();
    let (dp, peers) = setup(&of, 2);
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[exact(OxmField::EthType, 0x0800)]),
        apply(vec![Action::Ct(Box::new(Ct {
            flags: 0,
            zone: CtZone::Imm(0),
            recirc_table: 1,
            alg: 0,
            actions: Vec::new(),
        }))]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(1, 10, Match::CATCHALL, apply(vec![pause(&[]), out(2)])))
        .unwrap();

    let frags = udp_fragments(2800, 1500, 0x4242);
    assert_eq!(frags.len(), 2);
    for f in &frags {
        peers[0].inject_frame(f);
    }
    let pi = paused_packet_in(&events);
    assert_eq!(pi.data.len(), 14 + 20 + 8 + 2800, "the whole datagram");
    let cont = pi.continuation.as_deref().unwrap();
    assert_eq!(cont.frag_max_size, 1500, "largest fragment, L3 bytes");
    of.nxt_resume(&pi, &dp).unwrap();
    let sent = wait_sent(&peers[1], 2);
    assert_eq!(sent.len(), 2, "cut back into two fragments");
    let mut data = Vec::new();
    for (i, p) in sent.iter().enumerate() {
        let d = p.data();
        assert!(d.len() <= 14 + 1500, "fragment {i}: {} bytes", d.len());
        let frag = u16::from_be_bytes([d[20], d[21]]);
        assert_eq!(u16::from_be_bytes([d[18], d[19]]), 0x4242, "identification");
        assert_eq!(usize::from(frag & 0x1fff) * 8, data.len(), "offset");
        assert_eq!(frag & 0x2000 != 0, i == 0, "More Fragments");
        data.extend_from_slice(&d[34..]);
    }
    let original: Vec<u8> = frags.iter().flat_map(|f| f[34..].to_vec()).collect();
    assert_eq!(data, original, "the datagram's bytes");

    // A packet that was not reassembled: no fragment size.
    peers[0].inject_frame(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    let pi = paused_packet_in(&events);
    assert_eq!(pi.continuation.as_deref().unwrap().frag_max_size, 0);
    of.nxt_resume(&pi, &dp).unwrap();
    assert_eq!(wait_sent(&peers[1], 1).len(), 1);
    dp.shutdown();
}
