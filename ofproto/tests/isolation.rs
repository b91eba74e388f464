//! The isolation checker's probes against the pipeline: verdicts, the
//! flow named, no side effects, and the guard.

mod common;

use std::sync::Arc;

use common::*;
use xennet_datapath::Packet;
use xennet_ofproto::isolation::{probes, DropCause, ProbeSource, Service, Verdict};
use xennet_ofproto::{FailMode, GuardProbe, Ofproto, PortVlan};
use xennet_openflow::model::*;
use xennet_openflow::Msg;
use xennet_openflow::OfError;

const PORTS: [u32; 3] = [1, 2, 3];

/// A standalone bridge (priority 0 NORMAL) whose datapath has `PORTS`.
fn bridge() -> Arc<Ofproto> {
    let of = Ofproto::new("br0", 1, FailMode::Standalone);
    // The ports a probe may go to are the datapath's as the last upcall
    // saw them.
    let mut h = of.upcall_handler();
    let frame = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    h.upcall(&key_of(&frame, 1), &Packet::from_slice(&frame), &PORTS);
    of.fdb().flush();
    of
}

fn src(ofport: u32) -> ProbeSource {
    ProbeSource {
        ofport,
        mac: Some([0, 0x16, 0x3e, 0, 0, ofport as u8]),
        ipv4: Some(std::net::Ipv4Addr::new(10, 0, 0, ofport as u8)),
    }
}

fn services() -> Vec<Service> {
    vec![
        Service::Arp,
        Service::Dhcp,
        Service::Gateway("10.0.0.1".parse().unwrap()),
    ]
}

/// The verdict on `service` from port `from` (its first dropped probe,
/// else reaches).
fn check(of: &Ofproto, from: u32, service: Service) -> Verdict {
    for p in probes(service, &src(from), &services()) {
        if let v @ Verdict::Dropped(_) = of.probe(&p.key, None) {
            return v;
        }
    }
    Verdict::Reaches
}

fn flow(cookie: u64, priority: u16, matcher: Match, actions: Vec<Action>) -> FlowMod {
    let mut f = fm(0, priority, matcher, apply(actions));
    f.cookie = cookie;
    f
}

fn dropped_by(v: &Verdict) -> String {
    match v {
        Verdict::Reaches => panic!("expected a drop"),
        Verdict::Dropped(c) => c
            .to_string()
            .strip_prefix("dropped by ")
            .expect("a drop")
            .to_owned(),
    }
}

#[test]
fn normal_bridge_reaches_everything() {
    let of = bridge();
    for s in services() {
        assert_eq!(check(&of, 1, s), Verdict::Reaches, "{s}");
    }
}

#[test]
fn drop_all_names_the_flow() {
    let of = bridge();
    of.handle_flow_mod(&flow(0xd0, 1000, Match::CATCHALL, vec![]))
        .unwrap();
    for s in services() {
        assert_eq!(
            dropped_by(&check(&of, 2, s)),
            "cookie=0xd0 table=0 priority=1000 match=any actions=drop",
            "{s}"
        );
    }
}

#[test]
fn drop_arp_cuts_arp_and_the_gateway_only() {
    let of = bridge();
    of.handle_flow_mod(&flow(
        0xa,
        100,
        m(&[exact(OxmField::EthType, 0x0806)]),
        vec![],
    ))
    .unwrap();
    assert_eq!(
        dropped_by(&check(&of, 1, Service::Arp)),
        "cookie=0xa table=0 priority=100 match=dl_type=0x0806 actions=drop"
    );
    assert!(matches!(
        check(&of, 1, services()[2]),
        Verdict::Dropped(DropCause::Flow { cookie: 0xa, .. })
    ));
    assert_eq!(check(&of, 1, Service::Dhcp), Verdict::Reaches);
}

#[test]
fn drop_dhcp_and_table_miss() {
    let of = bridge();
    let dhcp = m(&[
        exact(OxmField::EthType, 0x0800),
        exact(OxmField::IpProto, 17),
        exact(OxmField::UdpDst, 67),
    ]);
    of.handle_flow_mod(&flow(0x67, 300, dhcp, vec![])).unwrap();
    assert_eq!(
        dropped_by(&check(&of, 3, Service::Dhcp)),
        "cookie=0x67 table=0 priority=300 match=dl_type=0x0800,nw_proto=17,tp_dst=67 actions=drop"
    );
    assert_eq!(check(&of, 3, Service::Arp), Verdict::Reaches);
    // A goto to an empty table: the miss there is named.
    let mut g = fm(0, 500, Match::CATCHALL, Instructions::default());
    g.instructions.goto_table = Some(4);
    of.handle_flow_mod(&g).unwrap();
    assert_eq!(
        dropped_by(&check(&of, 3, Service::Arp)),
        "table=4 miss (no flow matched)"
    );
}

#[test]
fn shadowed_gateway_and_clearing() {
    let of = bridge();
    let gw = m(&[
        exact(OxmField::EthType, 0x0800),
        exact(OxmField::Ipv4Dst, 0x0a00_0001),
    ]);
    of.handle_flow_mod(&flow(0x6, 200, gw, vec![])).unwrap();
    let v = check(&of, 1, services()[2]);
    assert!(
        dropped_by(&v)
            .starts_with("cookie=0x6 table=0 priority=200 match=dl_type=0x0800,nw_dst=10.0.0.1 "),
        "{v:?}"
    );
    let mut del = fm(0, 200, gw, Instructions::default());
    del.command = FlowModCommand::DeleteStrict;
    of.handle_flow_mod(&del).unwrap();
    assert_eq!(check(&of, 1, services()[2]), Verdict::Reaches);
}

#[test]
fn stranded_vlan_is_dropped_by_normal() {
    let of = bridge();
    for p in PORTS {
        of.fdb().set_port_vlan(p, &PortVlan::access(10));
    }
    assert_eq!(check(&of, 1, Service::Dhcp), Verdict::Reaches);
    of.fdb().set_port_vlan(1, &PortVlan::access(20));
    assert_eq!(
        dropped_by(&check(&of, 1, Service::Dhcp)),
        "cookie=0x0 table=0 priority=0 match=any actions=NORMAL (NORMAL sent it to no port)"
    );
}

#[test]
fn probes_have_no_side_effects() {
    let of = bridge();
    let before = of.table_stats()[0].lookup_count;
    for s in services() {
        check(&of, 1, s);
    }
    assert_eq!(of.fdb().len(), 0, "a probe taught NORMAL a MAC");
    assert_eq!(of.table_stats()[0].lookup_count, before);
    let flows = of.dump_flows();
    assert!(flows.contains("n_packets=0"), "{flows}");
}

#[test]
fn guard_refuses_a_flow_mod_that_isolates_and_undoes_it() {
    let of = bridge();
    let keep: Vec<GuardProbe> = [1, 2, 3]
        .iter()
        .flat_map(|p| {
            services().into_iter().flat_map(move |s| {
                probes(s, &src(*p), &services())
                    .into_iter()
                    .map(move |pr| GuardProbe {
                        port: format!("vif{p}.0"),
                        service: s.into(),
                        what: pr.what,
                        key: pr.key,
                        at: None,
                    })
            })
        })
        .collect();
    of.set_isolation_guard(Some(keep));
    let before = of.dump_flows();
    // Drop ARP: refused, nothing changed.
    let arp = flow(0xa, 100, m(&[exact(OxmField::EthType, 0x0806)]), vec![]);
    assert_eq!(of.handle_flow_mod(&arp), Err(OfError::FLOW_MOD_EPERM));
    // Replacing the NORMAL flow with a drop: refused, the NORMAL flow
    // is back.
    let drop_normal = flow(0, 0, Match::CATCHALL, vec![]);
    assert_eq!(
        of.handle_flow_mod(&drop_normal),
        Err(OfError::FLOW_MOD_EPERM)
    );
    // Deleting every flow: refused.
    let mut del = fm(OFPTT_ALL, 0, Match::CATCHALL, Instructions::default());
    del.command = FlowModCommand::Delete;
    assert_eq!(of.handle_flow_mod(&del), Err(OfError::FLOW_MOD_EPERM));
    assert_eq!(
        without_durations(&of.dump_flows()),
        without_durations(&before)
    );
    assert_eq!(of.guard_refusals(), 3);
    // A flow that cuts nobody off is accepted.
    let tcp = flow(
        0x7,
        100,
        m(&[
            exact(OxmField::EthType, 0x0800),
            exact(OxmField::IpProto, 6),
        ]),
        vec![],
    );
    of.handle_flow_mod(&tcp).unwrap();
    // Guard off: the drop goes in.
    of.set_isolation_guard(None);
    of.handle_flow_mod(&arp).unwrap();
    assert!(matches!(check(&of, 1, Service::Arp), Verdict::Dropped(_)));
}

#[test]
fn a_service_behind_a_port_must_get_there() {
    let of = bridge();
    let gw = services()[2];
    let echo = &probes(gw, &src(1), &services())[1];
    assert_eq!(echo.what, "ICMP echo request to the gateway");
    // NORMAL floods the unknown destination to 2 and 3.
    assert_eq!(of.probe(&echo.key, Some(("eth3", 3))), Verdict::Reaches);
    let to_gw = m(&[
        exact(OxmField::EthType, 0x0800),
        exact(OxmField::Ipv4Dst, 0x0a00_0001),
    ]);
    of.handle_flow_mod(&flow(0x9, 300, to_gw, vec![out(2)]))
        .unwrap();
    match of.probe(&echo.key, Some(("eth3", 3))) {
        Verdict::Dropped(c) => assert_eq!(
            c.to_string(),
            "sent to port 2, not to eth3, by cookie=0x9 table=0 priority=300 \
             match=dl_type=0x0800,nw_dst=10.0.0.1 actions=output:2"
        ),
        v => panic!("{v:?}"),
    }
    // Without a location any output counts.
    assert_eq!(of.probe(&echo.key, None), Verdict::Reaches);
}

#[test]
fn guard_refuses_a_bundle_as_a_whole() {
    let of = bridge();
    let keep: Vec<GuardProbe> = services()
        .into_iter()
        .flat_map(|s| {
            probes(s, &src(1), &services())
                .into_iter()
                .map(move |pr| GuardProbe {
                    port: "vif1.0".into(),
                    service: s.into(),
                    what: pr.what,
                    key: pr.key,
                    at: None,
                })
        })
        .collect();
    of.set_isolation_guard(Some(keep));
    let arp = flow(0xa, 100, m(&[exact(OxmField::EthType, 0x0806)]), vec![]);
    let tcp = flow(
        0x7,
        100,
        m(&[
            exact(OxmField::EthType, 0x0800),
            exact(OxmField::IpProto, 6),
        ]),
        vec![],
    );
    let before = of.dump_flows().lines().count();
    // The harmless flow first, the drop last: the whole bundle goes,
    // blamed on its last flow-mod.
    assert_eq!(
        of.commit_bundle(
            &[Msg::FlowMod(tcp.clone()), Msg::FlowMod(arp.clone())],
            None
        ),
        Err((1, OfError::FLOW_MOD_EPERM))
    );
    assert_eq!(of.dump_flows().lines().count(), before);
    assert_eq!(of.guard_refusals(), 1);
    // A drop that the same bundle takes back again: packets never see
    // it, so the bundle is accepted.
    let mut undo = fm(0, 100, arp.matcher, Instructions::default());
    undo.command = FlowModCommand::DeleteStrict;
    assert_eq!(
        of.commit_bundle(
            &[Msg::FlowMod(arp), Msg::FlowMod(undo), Msg::FlowMod(tcp)],
            None
        ),
        Ok(vec![])
    );
    assert_eq!(of.dump_flows().lines().count(), before + 1);
}

#[test]
fn a_resubmit_loop_is_named() {
    let of = bridge();
    let lp = fm(
        0,
        500,
        Match::CATCHALL,
        apply(vec![Action::Resubmit {
            in_port: OFPP_IN_PORT,
            table: 0,
        }]),
    );
    of.handle_flow_mod(&lp).unwrap();
    assert_eq!(
        dropped_by(&check(&of, 1, Service::Dhcp)),
        "a translation cut short (TooDeep)"
    );
}

/// Probes follow `ct(table=N)` recirculations as new connections: a
/// stateful pipeline that lets new connections through to NORMAL reaches
/// every service; one whose second pass drops new IPv4 connections cuts
/// the gateway and names the flow of the second pass.
#[test]
fn probes_follow_conntrack_recirculation() {
    let of = bridge();
    let ip = exact(OxmField::EthType, 0x0800);
    let ct = |table| {
        Action::Ct(Box::new(Ct {
            flags: 0,
            zone: CtZone::Imm(1),
            recirc_table: table,
            alg: 0,
            actions: Vec::new(),
        }))
    };
    of.handle_flow_mod(&flow(0x10, 100, m(&[ip]), vec![ct(1)]))
        .unwrap();
    let mut to_normal = fm(
        1,
        10,
        m(&[ip, (OxmField::CtState, 0x21, 0x21)]),
        apply(vec![out(OFPP_NORMAL)]),
    );
    to_normal.cookie = 0x11;
    of.handle_flow_mod(&to_normal).unwrap();
    for s in services() {
        assert_eq!(check(&of, 1, s), Verdict::Reaches, "{s}");
    }
    let mut drop_new = fm(
        1,
        20,
        m(&[ip, (OxmField::CtState, 0x21, 0x21)]),
        Instructions::default(),
    );
    drop_new.cookie = 0x12;
    of.handle_flow_mod(&drop_new).unwrap();
    let v = check(&of, 1, Service::Gateway("10.0.0.1".parse().unwrap()));
    assert!(dropped_by(&v).contains("0x12"), "{v:?}");
    assert_eq!(check(&of, 1, Service::Arp), Verdict::Reaches);
}
