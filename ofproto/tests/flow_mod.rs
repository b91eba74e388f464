//! OpenFlow 1.3 flow-mod / group-mod / meter-mod semantics on `Tables`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use xennet_ofproto::tables::{removed_reason, Tables};
use xennet_openflow::model::*;
use xennet_openflow::OfError;

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

#[test]
fn add_replaces_identical_and_keeps_counters_unless_reset() {
    let mut t = Tables::new();
    let now = Instant::now();
    let mut f = fm(0, 10, in_port(1), apply(vec![out(2)]));
    f.cookie = 7;
    t.apply_flow_mod(&f, now).unwrap();
    let r = t
        .table(0)
        .unwrap()
        .cls
        .find_strict(&in_port(1), 10)
        .unwrap()
        .value
        .clone();
    r.counters.credit(3, 300, now);
    // Same match and priority: replaced, counters copied.
    f.instructions = apply(vec![out(3)]);
    f.cookie = 8;
    t.apply_flow_mod(&f, now).unwrap();
    let s = t.flow_stats(&stats_all(), now).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].cookie, 8);
    assert_eq!(s[0].packet_count, 3);
    assert_eq!(s[0].instructions, apply(vec![out(3)]));
    // RESET_COUNTS clears them.
    f.flags = flow_flags::RESET_COUNTS;
    t.apply_flow_mod(&f, now).unwrap();
    assert_eq!(t.flow_stats(&stats_all(), now).unwrap()[0].packet_count, 0);
    // Different priority: a second flow.
    f.priority = 11;
    t.apply_flow_mod(&f, now).unwrap();
    assert_eq!(t.n_rules(), 2);
}

#[test]
fn check_overlap() {
    let mut t = Tables::new();
    let now = Instant::now();
    t.apply_flow_mod(&fm(0, 10, in_port(1), apply(vec![out(2)])), now)
        .unwrap();
    let mut f = fm(0, 10, Match::CATCHALL, apply(vec![out(3)]));
    f.flags = flow_flags::CHECK_OVERLAP;
    assert_eq!(t.apply_flow_mod(&f, now).err(), Some(OfError::OVERLAP));
    // Other priority, or disjoint match: fine.
    f.priority = 9;
    t.apply_flow_mod(&f, now).unwrap();
    let mut g = fm(0, 10, in_port(2), apply(vec![out(3)]));
    g.flags = flow_flags::CHECK_OVERLAP;
    t.apply_flow_mod(&g, now).unwrap();
    // An identical flow overlaps too (as OVS); without the flag it is a
    // replacement.
    assert_eq!(t.apply_flow_mod(&g, now).err(), Some(OfError::OVERLAP));
    g.flags = 0;
    t.apply_flow_mod(&g, now).unwrap();
    assert_eq!(t.n_rules(), 3);
}

#[test]
fn modify_strict_and_loose_with_cookie_mask() {
    let mut t = Tables::new();
    let now = Instant::now();
    for (p, cookie) in [(1u32, 0x10u64), (2, 0x11), (3, 0x20)] {
        let mut f = fm(0, 5, in_port(p), apply(vec![out(9)]));
        f.cookie = cookie;
        t.apply_flow_mod(&f, now).unwrap();
    }
    let mut any = fm(0, 5, Match::CATCHALL, apply(vec![out(7)]));
    any.command = FlowModCommand::Modify;
    any.cookie = 0x10;
    any.cookie_mask = 0xf0;
    t.apply_flow_mod(&any, now).unwrap();
    let s = t.flow_stats(&stats_all(), now).unwrap();
    let outs: Vec<(u64, bool)> = s
        .iter()
        .map(|f| (f.cookie, f.instructions == apply(vec![out(7)])))
        .collect();
    assert!(outs.contains(&(0x10, true)));
    assert!(outs.contains(&(0x11, true)));
    assert!(outs.contains(&(0x20, false)));
    // Cookies are kept by modify.
    // Strict: only the exact match and priority.
    let mut strict = fm(0, 5, in_port(3), apply(vec![out(6)]));
    strict.command = FlowModCommand::ModifyStrict;
    t.apply_flow_mod(&strict, now).unwrap();
    strict.matcher = Match::CATCHALL;
    strict.instructions = apply(vec![out(1)]);
    t.apply_flow_mod(&strict, now).unwrap(); // matches nothing: no-op
    let s = t.flow_stats(&stats_all(), now).unwrap();
    assert_eq!(
        s.iter()
            .filter(|f| f.instructions == apply(vec![out(6)]))
            .count(),
        1
    );
    assert!(s.iter().all(|f| f.instructions != apply(vec![out(1)])));
    assert_eq!(t.n_rules(), 3);
}

#[test]
fn delete_filters_and_flow_removed() {
    let mut t = Tables::new();
    let now = Instant::now();
    for (p, o, cookie) in [(1u32, 2u32, 1u64), (2, 3, 2), (3, 2, 3)] {
        let mut f = fm(0, 5, in_port(p), apply(vec![out(o)]));
        f.cookie = cookie;
        f.flags = flow_flags::SEND_FLOW_REM;
        t.apply_flow_mod(&f, now).unwrap();
    }
    t.apply_flow_mod(&fm(1, 5, in_port(1), apply(vec![out(2)])), now)
        .unwrap();
    // out_port filter, all tables.
    let mut d = fm(OFPTT_ALL, 0, Match::CATCHALL, Instructions::default());
    d.command = FlowModCommand::Delete;
    d.out_port = 3;
    let r = t.apply_flow_mod(&d, now).unwrap();
    assert_eq!(r.n_changed, 1);
    assert_eq!(r.removed.len(), 1);
    assert_eq!(r.removed[0].cookie, 2);
    assert_eq!(r.removed[0].reason, removed_reason::DELETE);
    // cookie mask filter.
    d.out_port = OFPP_ANY;
    d.cookie = 3;
    d.cookie_mask = u64::MAX;
    let r = t.apply_flow_mod(&d, now).unwrap();
    assert_eq!(r.removed.len(), 1);
    assert_eq!(r.removed[0].cookie, 3);
    // Strict delete needs the exact priority.
    let mut ds = fm(0, 4, in_port(1), Instructions::default());
    ds.command = FlowModCommand::DeleteStrict;
    assert_eq!(t.apply_flow_mod(&ds, now).unwrap().n_changed, 0);
    ds.priority = 5;
    assert_eq!(t.apply_flow_mod(&ds, now).unwrap().n_changed, 1);
    // Table 1's flow (no SEND_FLOW_REM) is still there.
    assert_eq!(t.n_rules(), 1);
    d.cookie_mask = 0;
    let r = t.apply_flow_mod(&d, now).unwrap();
    assert_eq!((r.n_changed, r.removed.len()), (1, 0));
}

#[test]
fn validation_errors() {
    let mut t = Tables::new();
    let now = Instant::now();
    let ok = |a: Vec<Action>| fm(0, 1, Match::CATCHALL, apply(a));
    assert_eq!(
        t.apply_flow_mod(&fm(254, 1, Match::CATCHALL, apply(vec![])), now)
            .err(),
        Some(OfError::FLOW_MOD_BAD_TABLE_ID)
    );
    assert_eq!(
        t.apply_flow_mod(&fm(OFPTT_ALL, 1, Match::CATCHALL, apply(vec![])), now)
            .err(),
        Some(OfError::FLOW_MOD_BAD_TABLE_ID)
    );
    let mut g = fm(3, 1, Match::CATCHALL, Instructions::default());
    g.instructions.goto_table = Some(3);
    assert_eq!(
        t.apply_flow_mod(&g, now).err(),
        Some(OfError::BAD_INST_TABLE_ID)
    );
    g.instructions.goto_table = Some(1);
    assert_eq!(
        t.apply_flow_mod(&g, now).err(),
        Some(OfError::BAD_INST_TABLE_ID)
    );
    assert_eq!(
        t.apply_flow_mod(&ok(vec![out(0)]), now).err(),
        Some(OfError::BAD_OUT_PORT)
    );
    assert_eq!(
        t.apply_flow_mod(&ok(vec![out(OFPP_TABLE)]), now).err(),
        Some(OfError::BAD_OUT_PORT)
    );
    assert_eq!(
        t.apply_flow_mod(&ok(vec![Action::Group(5)]), now).err(),
        Some(OfError::BAD_OUT_GROUP)
    );
    let mut mt = ok(vec![]);
    mt.instructions.meter = Some(1);
    assert_eq!(
        t.apply_flow_mod(&mt, now).err(),
        Some(OfError::UNKNOWN_METER)
    );
    let set_ip = Action::SetField {
        field: OxmField::Ipv4Dst,
        value: 0x0a000001,
    };
    assert_eq!(
        t.apply_flow_mod(&ok(vec![set_ip.clone()]), now).err(),
        Some(OfError::MATCH_INCONSISTENT)
    );
    let ipm = m(&[exact(OxmField::EthType, 0x0800)]);
    t.apply_flow_mod(&fm(0, 1, ipm, apply(vec![set_ip])), now)
        .unwrap();
    assert_eq!(
        t.apply_flow_mod(
            &ok(vec![Action::SetField {
                field: OxmField::EthType,
                value: 0x86dd
            }]),
            now
        )
        .err(),
        Some(OfError::BAD_SET_TYPE)
    );
    assert_eq!(
        t.apply_flow_mod(
            &ok(vec![Action::SetField {
                field: OxmField::VlanPcp,
                value: 3
            }]),
            now
        )
        .err(),
        Some(OfError::MATCH_INCONSISTENT)
    );
    // Two VLAN tags at most, as OVS (FLOW_MAX_VLAN_HEADERS).
    assert_eq!(
        t.apply_flow_mod(
            &ok(vec![
                Action::PushVlan(0x8100),
                Action::PushVlan(0x8100),
                Action::PushVlan(0x8100)
            ]),
            now
        )
        .err(),
        Some(OfError::BAD_TAG)
    );
    t.apply_flow_mod(
        &ok(vec![
            Action::PushVlan(0x88a8),
            Action::PushVlan(0x8100),
            Action::PopVlan,
            Action::PushVlan(0x8100),
        ]),
        now,
    )
    .unwrap();
    // MPLS actions need an MPLS match; push_mpls makes one.
    assert_eq!(
        t.apply_flow_mod(&ok(vec![Action::PopMpls(0x0800)]), now)
            .err(),
        Some(OfError::MATCH_INCONSISTENT)
    );
    assert_eq!(
        t.apply_flow_mod(&ok(vec![Action::DecMplsTtl]), now).err(),
        Some(OfError::MATCH_INCONSISTENT)
    );
    assert_eq!(
        t.apply_flow_mod(&ok(vec![Action::PushMpls(0x0800)]), now)
            .err(),
        Some(OfError::BAD_ACTION_ARGUMENT)
    );
    let label = Action::SetField {
        field: OxmField::MplsLabel,
        value: 17,
    };
    t.apply_flow_mod(
        &ok(vec![
            Action::PushMpls(0x8847),
            label,
            Action::PopMpls(0x0800),
        ]),
        now,
    )
    .unwrap();
    // ct_mark outside ct(exec(...)) and read-only fields are refused.
    for field in [OxmField::CtMark, OxmField::CtState, OxmField::NdReserved] {
        assert_eq!(
            t.apply_flow_mod(&ok(vec![Action::SetField { field, value: 1 }]), now)
                .err(),
            Some(OfError::BAD_SET_TYPE),
            "{field:?}"
        );
    }
    // push_vlan makes the VLAN prerequisite hold.
    t.apply_flow_mod(
        &ok(vec![
            Action::PushVlan(0x8100),
            Action::SetField {
                field: OxmField::VlanPcp,
                value: 3,
            },
        ]),
        now,
    )
    .unwrap();
    // A match with a missing prerequisite.
    let bad = m(&[exact(OxmField::TcpDst, 80)]);
    assert_eq!(
        t.apply_flow_mod(&fm(0, 1, bad, apply(vec![])), now).err(),
        Some(OfError::BAD_PREREQ)
    );
}

#[test]
fn table_full() {
    let mut t = Tables::with_max_flows(2);
    let now = Instant::now();
    t.apply_flow_mod(&fm(0, 1, in_port(1), apply(vec![])), now)
        .unwrap();
    t.apply_flow_mod(&fm(0, 1, in_port(2), apply(vec![])), now)
        .unwrap();
    assert_eq!(
        t.apply_flow_mod(&fm(0, 1, in_port(3), apply(vec![])), now)
            .err(),
        Some(OfError::TABLE_FULL)
    );
    // Replacing is still allowed; other tables have their own limit.
    t.apply_flow_mod(&fm(0, 1, in_port(2), apply(vec![out(1)])), now)
        .unwrap();
    t.apply_flow_mod(&fm(1, 1, in_port(3), apply(vec![])), now)
        .unwrap();
}

#[test]
fn timeouts_expire_with_flow_removed() {
    let mut t = Tables::new();
    let t0 = Instant::now();
    let mut idle = fm(0, 1, in_port(1), apply(vec![out(2)]));
    idle.idle_timeout = 10;
    idle.flags = flow_flags::SEND_FLOW_REM;
    idle.cookie = 1;
    t.apply_flow_mod(&idle, t0).unwrap();
    let mut hard = fm(0, 1, in_port(2), apply(vec![out(1)]));
    hard.hard_timeout = 20;
    hard.idle_timeout = 5;
    hard.flags = flow_flags::SEND_FLOW_REM;
    hard.cookie = 2;
    t.apply_flow_mod(&hard, t0).unwrap();
    let mut quiet = fm(0, 1, in_port(3), apply(vec![out(1)]));
    quiet.hard_timeout = 1;
    t.apply_flow_mod(&quiet, t0).unwrap();
    assert!(t.expire(t0 + Duration::from_millis(500)).is_empty());
    // The hard-timeout flow keeps being used.
    let used = t
        .table(0)
        .unwrap()
        .cls
        .find_strict(&in_port(2), 1)
        .unwrap()
        .value
        .counters
        .clone();
    used.credit(1, 60, t0 + Duration::from_secs(4));
    // `quiet` expires silently at 1 s.
    assert!(t.expire(t0 + Duration::from_secs(2)).is_empty());
    assert_eq!(t.n_rules(), 2);
    used.credit(1, 60, t0 + Duration::from_secs(8));
    let r = t.expire(t0 + Duration::from_secs(11));
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].cookie, r[0].reason),
        (1, removed_reason::IDLE_TIMEOUT)
    );
    used.credit(1, 60, t0 + Duration::from_secs(19));
    let r = t.expire(t0 + Duration::from_secs(21));
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].cookie, r[0].reason, r[0].packet_count),
        (2, removed_reason::HARD_TIMEOUT, 3)
    );
    assert_eq!(r[0].duration_sec, 21);
    assert_eq!(t.n_rules(), 0);
}

fn group(id: u32, ty: GroupType, buckets: Vec<Bucket>) -> GroupMod {
    GroupMod {
        command: GroupModCommand::Add,
        group_type: ty,
        group_id: id,
        buckets,
        selection: None,
    }
}

#[test]
fn group_mod_errors_and_delete_removes_flows() {
    let mut t = Tables::new();
    let now = Instant::now();
    t.apply_group_mod(&group(1, GroupType::All, vec![bucket(vec![out(2)])]), now)
        .unwrap();
    assert_eq!(
        t.apply_group_mod(&group(1, GroupType::All, vec![]), now)
            .err(),
        Some(OfError::GROUP_EXISTS)
    );
    let mut md = group(9, GroupType::All, vec![]);
    md.command = GroupModCommand::Modify;
    assert_eq!(
        t.apply_group_mod(&md, now).err(),
        Some(OfError::UNKNOWN_GROUP)
    );
    assert_eq!(
        t.apply_group_mod(&group(OFPG_ALL, GroupType::All, vec![]), now)
            .err(),
        Some(OfError::INVALID_GROUP)
    );
    assert_eq!(
        t.apply_group_mod(
            &group(2, GroupType::Indirect, vec![bucket(vec![]), bucket(vec![])]),
            now
        )
        .err(),
        Some(OfError::INVALID_GROUP)
    );
    assert_eq!(
        t.apply_group_mod(
            &group(2, GroupType::FastFailover, vec![bucket(vec![])]),
            now
        )
        .err(),
        Some(OfError::BAD_WATCH)
    );
    assert_eq!(
        t.apply_group_mod(
            &group(2, GroupType::All, vec![bucket(vec![Action::Group(77)])]),
            now
        )
        .err(),
        Some(OfError::BAD_OUT_GROUP)
    );
    // Chaining 2 -> 1 is fine; then 1 -> 2 would loop.
    t.apply_group_mod(
        &group(2, GroupType::All, vec![bucket(vec![Action::Group(1)])]),
        now,
    )
    .unwrap();
    let mut lp = group(1, GroupType::All, vec![bucket(vec![Action::Group(2)])]);
    lp.command = GroupModCommand::Modify;
    assert_eq!(t.apply_group_mod(&lp, now).err(), Some(OfError::GROUP_LOOP));
    // Group 1 is chained from 2: cannot be deleted alone.
    let mut del = group(1, GroupType::All, vec![]);
    del.command = GroupModCommand::Delete;
    assert_eq!(
        t.apply_group_mod(&del, now).err(),
        Some(OfError::CHAINED_GROUP)
    );
    // Flows using a deleted group go with it.
    let mut f = fm(0, 1, in_port(1), apply(vec![Action::Group(2)]));
    f.flags = flow_flags::SEND_FLOW_REM;
    t.apply_flow_mod(&f, now).unwrap();
    assert_eq!(t.group_stats(OFPG_ALL, now).len(), 2);
    assert_eq!(t.group_stats(2, now)[0].ref_count, 1);
    del.group_id = OFPG_ALL;
    let r = t.apply_group_mod(&del, now).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].reason, removed_reason::GROUP_DELETE);
    assert_eq!(t.n_rules(), 0);
    assert!(t.group_desc().is_empty());
}

#[test]
fn meter_mod_errors_and_delete_removes_flows() {
    let mut t = Tables::new();
    let now = Instant::now();
    let band = MeterBand {
        kind: MeterBandKind::Drop,
        rate: 1000,
        burst_size: 0,
    };
    let mm = |cmd, id, flags, bands: Vec<MeterBand>| MeterMod {
        command: cmd,
        flags,
        meter_id: id,
        bands,
    };
    t.apply_meter_mod(
        &mm(MeterModCommand::Add, 1, meter_flags::KBPS, vec![band]),
        now,
    )
    .unwrap();
    let e = |r: Result<_, OfError>| r.err();
    assert_eq!(
        e(t.apply_meter_mod(
            &mm(MeterModCommand::Add, 1, meter_flags::KBPS, vec![band]),
            now
        )),
        Some(OfError::METER_EXISTS)
    );
    assert_eq!(
        e(t.apply_meter_mod(
            &mm(MeterModCommand::Modify, 2, meter_flags::KBPS, vec![band]),
            now
        )),
        Some(OfError::UNKNOWN_METER)
    );
    assert_eq!(
        e(t.apply_meter_mod(
            &mm(MeterModCommand::Add, 0, meter_flags::KBPS, vec![band]),
            now
        )),
        Some(OfError::INVALID_METER)
    );
    assert_eq!(
        e(t.apply_meter_mod(
            &mm(
                MeterModCommand::Add,
                3,
                meter_flags::KBPS,
                vec![MeterBand { rate: 0, ..band }]
            ),
            now
        )),
        Some(OfError::METER_BAD_RATE)
    );
    assert_eq!(
        e(t.apply_meter_mod(
            &mm(
                MeterModCommand::Add,
                3,
                meter_flags::KBPS | meter_flags::PKTPS,
                vec![band]
            ),
            now
        )),
        Some(OfError::METER_BAD_FLAGS)
    );
    assert_eq!(t.meter_config(OFPM_ALL).len(), 1);
    let mut f = fm(0, 1, in_port(1), apply(vec![out(2)]));
    f.instructions.meter = Some(1);
    f.flags = flow_flags::SEND_FLOW_REM;
    t.apply_flow_mod(&f, now).unwrap();
    assert_eq!(t.meter_flow_count(1), 1);
    let (changes, removed) = t
        .apply_meter_mod(&mm(MeterModCommand::Delete, 1, 0, vec![]), now)
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, removed_reason::METER_DELETE);
    assert_eq!(t.n_rules(), 0);
}

#[test]
fn generation_bumps_on_every_change() {
    let mut t = Tables::new();
    let now = Instant::now();
    let g0 = t.generation();
    t.apply_flow_mod(&fm(0, 1, in_port(1), apply(vec![])), now)
        .unwrap();
    let g1 = t.generation();
    assert_ne!(g0, g1);
    t.apply_group_mod(&group(1, GroupType::All, vec![]), now)
        .unwrap();
    let g2 = t.generation();
    assert_ne!(g1, g2);
    t.apply_meter_mod(
        &MeterMod {
            command: MeterModCommand::Add,
            flags: meter_flags::PKTPS,
            meter_id: 1,
            bands: vec![],
        },
        now,
    )
    .unwrap();
    assert_ne!(g2, t.generation());
}

#[test]
fn multipart_dispatch() {
    use xennet_ofproto::{FailMode, Ofproto};
    let of = Ofproto::new("br0", 1, FailMode::Standalone);
    match of.multipart(&MpRequest::Flow(stats_all())) {
        Some(Ok(MpReply::Flow(v))) => {
            assert_eq!(v.len(), 1, "the standalone NORMAL flow");
            assert_eq!(v[0].priority, 0);
        }
        r => panic!("{r:?}"),
    }
    match of.multipart(&MpRequest::Aggregate(stats_all())) {
        Some(Ok(MpReply::Aggregate { flow_count, .. })) => assert_eq!(flow_count, 1),
        r => panic!("{r:?}"),
    }
    let mut bad = stats_all();
    bad.table_id = 254;
    assert_eq!(
        of.multipart(&MpRequest::Flow(bad)),
        Some(Err(OfError::BAD_TABLE_ID))
    );
    assert!(matches!(
        of.multipart(&MpRequest::Table),
        Some(Ok(MpReply::Table(t))) if t.len() == 254
    ));
    assert!(matches!(
        of.multipart(&MpRequest::MeterFeatures),
        Some(Ok(MpReply::MeterFeatures(f))) if f.band_types == 6
    ));
    assert!(matches!(
        of.multipart(&MpRequest::GroupFeatures),
        Some(Ok(MpReply::GroupFeatures(_)))
    ));
    assert!(of
        .multipart(&MpRequest::PortDesc(xennet_openflow::model::OFPP_ANY))
        .is_none());
}

/// Issue 15 item 13: a table-features set request that asks for nothing
/// xennet cannot do names tables (OVS `handle_table_features_change`);
/// one that would disable a table is refused and changes nothing.
#[test]
fn table_features_set_request_names_tables() {
    use xennet_ofproto::{FailMode, Ofproto};
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let mut req = of.table_features();
    assert_eq!(req.len(), 254);
    assert_eq!(req[0].name, "table0");
    req[0].name = "acl".into();
    req[5].name = "l2".into();
    let reply = of.modify_table_features(&req).unwrap();
    assert_eq!(
        (reply[0].name.as_str(), reply[5].name.as_str()),
        ("acl", "l2")
    );
    assert_eq!(of.table_features()[0].name, "acl");
    assert_eq!(of.table_stats()[0].name, "acl");
    assert_eq!(of.table_stats()[1].name, "table1");
    // Without table 253: refused, names kept.
    req[0].name = "other".into();
    req.pop();
    assert_eq!(
        of.modify_table_features(&req),
        Err(OfError::TABLE_FEATURES_EPERM)
    );
    assert_eq!(of.table_features()[0].name, "acl");
    // An empty name restores the default.
    let mut req = of.table_features();
    req[5].name = String::new();
    of.modify_table_features(&req).unwrap();
    assert_eq!(of.table_stats()[5].name, "table5");
}

/// `ct` needs a consistent match, as OVS `check_CT`: IP, no commit of a
/// packet matched `+inv`, ftp only for TCP and tftp only for UDP; and
/// an `alg` the tracker has.
#[test]
fn ct_needs_a_consistent_match() {
    let mut t = Tables::new();
    let now = Instant::now();
    let ct = |flags: u16, alg: u16| {
        apply(vec![Action::Ct(Box::new(Ct {
            flags,
            zone: CtZone::Imm(1),
            recirc_table: 1,
            alg,
            actions: Vec::new(),
        }))])
    };
    let ct_nat = |flags: u16, alg: u16| {
        apply(vec![Action::Ct(Box::new(Ct {
            flags,
            zone: CtZone::Imm(1),
            recirc_table: 1,
            alg,
            actions: vec![Action::Nat(vec![0; 8])],
        }))])
    };
    let ip = exact(OxmField::EthType, 0x0800);
    let tcp = exact(OxmField::IpProto, 6);
    let cases = [
        (Match::CATCHALL, ct(0, 0), Some(OfError::MATCH_INCONSISTENT)),
        (
            m(&[exact(OxmField::EthType, 0x0806)]),
            ct(0, 0),
            Some(OfError::MATCH_INCONSISTENT),
        ),
        (m(&[ip]), ct(0, 0), None),
        (m(&[exact(OxmField::EthType, 0x86dd)]), ct(1, 0), None),
        (
            m(&[ip, (OxmField::CtState, 0x30, 0x30)]),
            ct(1, 0),
            Some(OfError::MATCH_INCONSISTENT),
        ),
        (m(&[ip, (OxmField::CtState, 0x30, 0x30)]), ct(0, 0), None),
        (m(&[ip]), ct(1, 21), Some(OfError::MATCH_INCONSISTENT)),
        (m(&[ip, tcp]), ct(1, 21), None),
        (m(&[ip, tcp]), ct(1, 69), Some(OfError::MATCH_INCONSISTENT)),
        (m(&[ip, exact(OxmField::IpProto, 17)]), ct(1, 69), None),
        // No helper but ftp and tftp (OVS cannot serialize others).
        (m(&[ip, tcp]), ct(1, 22), Some(OfError::BAD_ACTION_ARGUMENT)),
        // An ALG with NAT (the FTP rewrite).
        (m(&[ip, tcp]), ct_nat(1, 21), None),
        (m(&[ip, tcp]), ct_nat(1, 0), None),
    ];
    for (i, (matcher, ins, want)) in cases.into_iter().enumerate() {
        let got = t.apply_flow_mod(&fm(0, i as u16, matcher, ins), now).err();
        assert_eq!(got, want, "case {i}");
    }
}

/// What an event says, without times (for comparing two switches).
fn event_summary(ev: &xennet_ofproto::OfEvent) -> String {
    use xennet_ofproto::OfEvent;
    match ev {
        OfEvent::FlowRemoved(r) => format!(
            "removed t{} p{} c{:#x} reason {} {:?}",
            r.table_id, r.priority, r.cookie, r.reason, r.matcher
        ),
        OfEvent::FlowChanges(c) => {
            // Sorted: one operation's changes to several rules come in
            // the classifier's (hash) order, which differs per switch.
            let mut v: Vec<String> = c
                .changes
                .iter()
                .map(|ch| {
                    format!(
                        "{:?} t{} p{} c{:#x} {:?}",
                        ch.kind,
                        ch.rule.table_id,
                        ch.rule.priority,
                        ch.rule.cookie,
                        ch.rule.instructions
                    )
                })
                .collect();
            v.sort();
            format!("changes from {:?}: {v:?}", c.origin)
        }
        OfEvent::PacketIn(..) => "packet-in".into(),
    }
}

/// `Ofproto::try_handle_flow_mod` (the OpenFlow connection's path that
/// does not block) applies an add, a strict modify and a strict delete
/// exactly as `handle_flow_mod` does (result, rules, flow-removed and
/// flow-monitor events with the request's origin, generation), and
/// leaves alone, changing nothing, what may take long or wait: a
/// non-strict modify or delete, an add with `CHECK_OVERLAP`, any
/// flow-mod while the isolation guard is on.
#[test]
fn try_flow_mod_does_what_handle_flow_mod_does_or_nothing() {
    use xennet_ofproto::{with_origin, FailMode, Ofproto};
    let (slow, fast) = (
        Ofproto::new("br0", 1, FailMode::Secure),
        Ofproto::new("br0", 1, FailMode::Secure),
    );
    let (slow_ev, fast_ev) = (slow.events().unwrap(), fast.events().unwrap());
    slow.watch_flows(true);
    fast.watch_flows(true);
    let mut add = fm(0, 10, in_port(1), apply(vec![out(2)]));
    add.flags = flow_flags::SEND_FLOW_REM;
    add.cookie = 1;
    let mut replace = add.clone();
    replace.cookie = 2;
    let mut modify = fm(0, 10, in_port(1), apply(vec![out(3)]));
    modify.command = FlowModCommand::ModifyStrict;
    let mut delete = fm(0, 10, in_port(1), apply(vec![]));
    delete.command = FlowModCommand::DeleteStrict;
    let mut delete_absent = delete.clone();
    delete_absent.priority = 11;
    let mut buffered = add.clone();
    buffered.buffer_id = 7;
    let bad_table = fm(254, 10, in_port(1), apply(vec![out(2)]));
    let mut overlap = fm(0, 20, in_port(2), apply(vec![out(1)]));
    overlap.flags = flow_flags::CHECK_OVERLAP;
    let mut delete_all = fm(OFPTT_ALL, 0, Match::CATCHALL, apply(vec![]));
    delete_all.command = FlowModCommand::Delete;
    let mut modify_all = fm(0, 0, Match::CATCHALL, apply(vec![out(4)]));
    modify_all.command = FlowModCommand::Modify;
    // (flow-mod, taken by the fast path)
    let steps = [
        (&add, true),
        (&replace, true),
        (&modify, true),
        (&delete, true),
        (&delete_absent, true),
        (&buffered, true),
        (&bad_table, true),
        (&add, true),
        (&overlap, false),
        (&modify_all, false),
        (&delete_all, false),
    ];
    for (xid, (f, fast_path)) in (1u32..).zip(steps) {
        let (gs, g) = (slow.generation(), fast.generation());
        let want = with_origin(9, xid, || slow.handle_flow_mod(f));
        let got = with_origin(9, xid, || fast.try_handle_flow_mod(f));
        assert_eq!(got.is_some(), fast_path, "step {xid}: {f:?}");
        let got = match got {
            Some(r) => r,
            None => {
                assert_eq!(fast.generation(), g, "step {xid}: left alone, unchanged");
                assert!(fast_ev.try_recv().is_err());
                with_origin(9, xid, || fast.handle_flow_mod(f))
            }
        };
        assert_eq!(got, want, "step {xid}");
        assert_eq!(
            fast.generation() != g,
            slow.generation() != gs,
            "step {xid}"
        );
        let (a, b): (Vec<_>, Vec<_>) = (
            slow_ev.try_iter().map(|e| event_summary(&e)).collect(),
            fast_ev.try_iter().map(|e| event_summary(&e)).collect(),
        );
        assert_eq!(a, b, "step {xid}");
        let rules = |of: &Ofproto| -> Vec<String> {
            let mut v: Vec<String> = of
                .all_rules()
                .rules
                .iter()
                .map(|r| {
                    format!(
                        "t{} p{} c{:#x} {:?}",
                        r.table_id, r.priority, r.cookie, r.instructions
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(rules(&slow), rules(&fast), "step {xid}");
    }
    // Under the isolation guard every flow-mod takes the blocking path.
    fast.set_isolation_guard(Some(Vec::new()));
    let g = fast.generation();
    assert_eq!(fast.try_handle_flow_mod(&add), None);
    assert_eq!(fast.generation(), g);
    fast.set_isolation_guard(None);
    assert_eq!(fast.try_handle_flow_mod(&add), Some(Ok(())));
    assert_ne!(fast.generation(), g);
}
