//! Bundles on the pipeline: `Tables` transactions roll back to exactly
//! the state before (property test over random flow and group mods), and
//! `Ofproto::commit_bundle` is all or nothing, in order, with events only
//! on success.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use xennet_ofproto::tables::Tables;
use xennet_ofproto::{FailMode, OfEvent, Ofproto};
use xennet_openflow::model::*;
use xennet_openflow::{Msg, OfError};

fn stats_all() -> FlowStatsRequest {
    FlowStatsRequest {
        table_id: OFPTT_ALL,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        cookie: 0,
        cookie_mask: 0,
        matcher: Match::CATCHALL,
    }
}

fn in_port(p: u32) -> Match {
    m(&[exact(OxmField::InPort, p.into())])
}

/// Everything observable about the tables at `now`, rules sorted so
/// that the order among equal priorities (undefined) does not count.
fn snapshot(t: &Tables, now: Instant) -> String {
    let mut flows: Vec<String> = t
        .flow_stats(&stats_all(), now)
        .unwrap()
        .iter()
        .map(|f| format!("{f:?}"))
        .collect();
    flows.sort();
    format!(
        "{flows:?}\n{:?}\n{:?}\n{} {} {}",
        t.group_desc(),
        t.group_stats(OFPG_ALL, now),
        t.generation(),
        t.n_rules(),
        t.has_timeouts()
    )
}

fn group_mod(command: GroupModCommand, id: u32, port: u32) -> GroupMod {
    GroupMod {
        command,
        group_type: GroupType::All,
        group_id: id,
        buckets: vec![Bucket {
            weight: 0,
            watch_port: OFPP_ANY,
            watch_group: OFPG_ANY,
            actions: vec![out(port)],
        }],
        selection: None,
    }
}

/// One random modification: flow add/modify/delete (strict or not, with
/// flags and timeouts) or group add/modify/delete, over a small space so
/// that they collide.
fn any_mod() -> impl Strategy<Value = Msg> {
    let flow = (
        0u8..3,
        0usize..5,
        prop_oneof![Just(None), (1u32..4).prop_map(Some)],
        1u16..4,
        0u16..3,
        1u32..5,
        prop_oneof![Just(None), (1u32..3).prop_map(Some)],
        any::<bool>(),
    )
        .prop_map(|(table, cmd, port, prio, to, o, grp, reset)| {
            let matcher = port.map_or(Match::CATCHALL, in_port);
            let mut acts = vec![out(o)];
            if let Some(g) = grp {
                acts.push(Action::Group(g));
            }
            let mut f = fm(table, prio * 10, matcher, apply(acts));
            f.command = [
                FlowModCommand::Add,
                FlowModCommand::Modify,
                FlowModCommand::ModifyStrict,
                FlowModCommand::Delete,
                FlowModCommand::DeleteStrict,
            ][cmd];
            f.idle_timeout = to * 10;
            f.flags = flow_flags::SEND_FLOW_REM | if reset { flow_flags::RESET_COUNTS } else { 0 };
            Msg::FlowMod(f)
        });
    let group = (0usize..3, 1u32..3, 1u32..5).prop_map(|(cmd, id, port)| {
        let c = [
            GroupModCommand::Add,
            GroupModCommand::Modify,
            GroupModCommand::Delete,
        ][cmd];
        Msg::GroupMod(group_mod(c, id, port))
    });
    prop_oneof![3 => flow, 1 => group]
}

fn apply_msg(t: &mut Tables, msg: &Msg, now: Instant) -> Result<(), OfError> {
    match msg {
        Msg::FlowMod(f) => t.apply_flow_mod(f, now).map(|_| ()),
        Msg::GroupMod(g) => t.apply_group_mod(g, now).map(|_| ()),
        _ => unreachable!(),
    }
}

/// Tables after `setup` at `t0`, with traffic on every rule (so that
/// counters must survive).
fn build(setup: &[Msg], t0: Instant) -> Tables {
    let mut t = Tables::new();
    for msg in setup {
        let _ = apply_msg(&mut t, msg, t0);
    }
    for table in 0..3u8 {
        for r in t.table(table).unwrap().cls.iter() {
            r.value.counters.credit(u64::from(r.priority), 1000, t0);
        }
    }
    t
}

proptest! {
    /// Whatever a transaction does (successful mods and failing ones,
    /// additions, replacements, deletions, group deletes that take flows
    /// with them), rolling it back leaves every flow (match, priority,
    /// cookie, actions, timeouts, counters, duration), group, the
    /// generation and the timeout count as they were; committing leaves
    /// what applying the same mods outside a transaction leaves.
    #[test]
    fn rollback_restores_and_commit_keeps(
        setup in proptest::collection::vec(any_mod(), 0..12),
        txn in proptest::collection::vec(any_mod(), 1..12),
    ) {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut t = build(&setup, t0);
        let before = snapshot(&t, later);
        t.begin();
        for msg in &txn {
            let _ = apply_msg(&mut t, msg, later);
        }
        t.rollback();
        prop_assert_eq!(snapshot(&t, later), before);
        // The restored tables still work: the same mods in a committed
        // transaction give what plain application gives.
        let mut plain = build(&setup, t0);
        t.begin();
        for msg in &txn {
            let a = apply_msg(&mut t, msg, later);
            let b = apply_msg(&mut plain, msg, later);
            prop_assert_eq!(a, b);
        }
        t.commit();
        prop_assert_eq!(snapshot(&t, later), snapshot(&plain, later));
    }
}

#[test]
fn commit_is_all_or_nothing_in_order() {
    let of = Ofproto::new("br-bundle", 1, FailMode::Secure);
    let events = of.events().unwrap();
    let mut keep = fm(0, 5, in_port(1), apply(vec![out(2)]));
    keep.flags = flow_flags::SEND_FLOW_REM;
    of.handle_flow_mod(&keep).unwrap();
    let before = of.dump_flows();
    let gen = of.generation();
    // In order: the group exists by the time the flow that uses it is
    // added; a delete of the kept flow; then a failing message.
    let mut del = fm(0, 5, in_port(1), Instructions::default());
    del.command = FlowModCommand::DeleteStrict;
    let ok = vec![
        Msg::GroupMod(group_mod(GroupModCommand::Add, 1, 3)),
        Msg::FlowMod(fm(1, 7, Match::CATCHALL, apply(vec![Action::Group(1)]))),
        Msg::FlowMod(del),
    ];
    let mut bad = ok.clone();
    bad.push(Msg::GroupMod(group_mod(GroupModCommand::Add, 1, 4)));
    assert_eq!(
        of.commit_bundle(&bad, None),
        Err((3, OfError::GROUP_EXISTS))
    );
    assert_eq!(
        without_durations(&of.dump_flows()),
        without_durations(&before)
    );
    assert_eq!(of.group_desc(), vec![]);
    assert_eq!(of.generation(), gen);
    assert!(
        events.try_recv().is_err(),
        "no flow-removed for a failed bundle"
    );
    // A caller's verdict on a message it handles (a port-mod) fails the
    // bundle at that message.
    let mut with_port_mod = ok.clone();
    with_port_mod.insert(
        1,
        Msg::PortMod(PortMod {
            port_no: 1,
            hw_addr: [0; 6],
            config: 0,
            mask: 0,
            advertise: 0,
        }),
    );
    assert_eq!(
        of.commit_bundle(&with_port_mod, Some((1, OfError::BUNDLE_MSG_FAILED))),
        Err((1, OfError::BUNDLE_MSG_FAILED))
    );
    assert_eq!(
        without_durations(&of.dump_flows()),
        without_durations(&before)
    );
    // Meter-mods are not bundlable (as in OVS).
    let meter = Msg::MeterMod(MeterMod {
        command: MeterModCommand::Add,
        flags: meter_flags::KBPS,
        meter_id: 1,
        bands: vec![],
    });
    assert_eq!(
        of.commit_bundle(&[meter], None),
        Err((0, OfError::BUNDLE_MSG_UNSUP))
    );
    // The good bundle applies, with its flow-removed.
    assert_eq!(of.commit_bundle(&ok, None), Ok(vec![]));
    assert_ne!(of.generation(), gen);
    let flows = of.dump_flows();
    assert!(
        flows.contains("table=1") && !flows.contains("table=0"),
        "{flows}"
    );
    assert_eq!(of.group_desc().len(), 1);
    assert!(matches!(events.try_recv(), Ok(OfEvent::FlowRemoved(_))));
    let _: Arc<Ofproto> = of;
}

/// What a bundle checks when a message is added: what needs no state
/// (as OVS when it decodes the message); groups, meters and overlaps
/// wait for the commit.
#[test]
fn checks_when_added() {
    let of = Ofproto::new("br-bundle-add", 1, FailMode::Secure);
    let ok = fm(0, 5, in_port(1), apply(vec![out(2)]));
    assert_eq!(of.check_bundled(&Msg::FlowMod(ok.clone())), Ok(()));
    let later = fm(0, 5, in_port(1), apply(vec![Action::Group(99)]));
    assert_eq!(of.check_bundled(&Msg::FlowMod(later.clone())), Ok(()));
    assert_eq!(
        of.commit_bundle(&[Msg::FlowMod(later)], None),
        Err((0, OfError::BAD_OUT_GROUP))
    );
    for (bad, err) in [
        (
            fm(254, 5, in_port(1), apply(vec![out(2)])),
            OfError::FLOW_MOD_BAD_TABLE_ID,
        ),
        (
            fm(0, 5, in_port(1), apply(vec![out(0)])),
            OfError::BAD_OUT_PORT,
        ),
        (
            FlowMod {
                buffer_id: 7,
                ..ok.clone()
            },
            OfError::BUFFER_UNKNOWN,
        ),
    ] {
        assert_eq!(of.check_bundled(&Msg::FlowMod(bad)), Err(err));
    }
    let po = PacketOut {
        buffer_id: 0xffff_ffff,
        in_port: OFPP_CONTROLLER,
        actions: vec![out(1)],
        data: vec![0; 4],
    };
    assert_eq!(
        of.check_bundled(&Msg::PacketOut(po)),
        Err(OfError::BAD_PACKET)
    );
}
