//! The pipeline driving a real forwarding thread with in-memory ports.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xennet_datapath::memport::{mem_port, MemPortPeer};
use xennet_datapath::{csum, Csum, Datapath, DpHandle, PortFeatures};
use xennet_ofproto::{FailMode, OfEvent, Ofproto};
use xennet_openflow::model::*;
use xennet_openflow::OfError;

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

fn check_ipv4_tcp(frame: &[u8]) -> SlicedPacket<'_> {
    let s = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
        }
        _ => panic!("no L4"),
    }
    s
}

#[test]
fn set_field_rewrites_with_correct_checksums() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 3);
    let tcp = m(&[
        exact(OxmField::InPort, 1),
        exact(OxmField::EthType, 0x0800),
        exact(OxmField::IpProto, 6),
    ]);
    let sf = |field, value| Action::SetField { field, value };
    of.handle_flow_mod(&fm(
        0,
        10,
        tcp,
        apply(vec![
            out(3),
            sf(OxmField::Ipv4Src, 0xc0a8_0101),
            sf(OxmField::Ipv4Dst, 0xac10_0009),
            sf(OxmField::TcpSrc, 4321),
            sf(OxmField::TcpDst, 8443),
            sf(OxmField::IpDscp, 46),
            sf(OxmField::IpTtl, 9),
            sf(OxmField::EthDst, 0x0200_0000_0099),
            out(2),
        ]),
    ))
    .unwrap();
    let udp = m(&[
        exact(OxmField::InPort, 1),
        exact(OxmField::EthType, 0x0800),
        exact(OxmField::IpProto, 17),
    ]);
    of.handle_flow_mod(&fm(
        0,
        10,
        udp,
        apply(vec![
            sf(OxmField::Ipv4Dst, 0x0808_0808),
            sf(OxmField::UdpDst, 5353),
            out(2),
        ]),
    ))
    .unwrap();

    let orig = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80, 64);
    peers[0].inject_frame(&orig);
    // A guest frame with its TCP checksum left to us (CHECKSUM_PARTIAL).
    let mut partial = xennet_datapath::Packet::from_slice(&orig);
    let (st, off) = csum::prepare_partial(partial.data_mut()).unwrap();
    partial.csum = Csum::Partial {
        start: st,
        offset: off,
    };
    peers[0].inject(partial);
    peers[0].inject_frame(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 7, 53));

    let got = wait_sent(&peers[1], 3);
    assert_eq!(got.len(), 3);
    for p in &got[..2] {
        let s = check_ipv4_tcp(p.data());
        let Some(NetSlice::Ipv4(ip)) = &s.net else {
            panic!()
        };
        assert_eq!(ip.header().source(), [192, 168, 1, 1]);
        assert_eq!(ip.header().destination(), [172, 16, 0, 9]);
        assert_eq!(ip.header().ttl(), 9);
        assert_eq!(ip.header().dcp().value(), 46);
        let Some(TransportSlice::Tcp(t)) = &s.transport else {
            panic!()
        };
        assert_eq!((t.source_port(), t.destination_port()), (4321, 8443));
        assert_eq!(&p.data()[..6], &[2, 0, 0, 0, 0, 0x99]);
    }
    let s = check_ipv4_tcp(got[2].data());
    let Some(TransportSlice::Udp(u)) = &s.transport else {
        panic!()
    };
    assert_eq!(u.destination_port(), 5353);
    // The copy output before the rewrites is unmodified.
    let orig_out = wait_sent(&peers[2], 2);
    assert_eq!(orig_out[0].data(), &orig[..]);

    // Rule counters are credited by the datapath.
    let req = FlowStatsRequest {
        table_id: OFPTT_ALL,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        cookie: 0,
        cookie_mask: 0,
        matcher: Match::CATCHALL,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (packets, _, flows) = of.aggregate_stats(&req).unwrap();
        if packets == 3 || Instant::now() > deadline {
            assert_eq!((packets, flows), (3, 2));
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ts = of.table_stats();
    assert_eq!(ts.len(), 254);
    assert_eq!(ts[0].active_count, 2);
    dp.shutdown();
}

#[test]
fn dec_ttl_at_one_goes_to_the_controller() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let events = of.events().unwrap();
    assert!(of.events().is_none());
    let (dp, peers) = setup(&of, 2);
    let mut f = fm(0, 1, Match::CATCHALL, apply(vec![Action::DecNwTtl, out(2)]));
    f.cookie = 0x42;
    of.handle_flow_mod(&f).unwrap();
    peers[0].inject_frame(&tcp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 1));
    let ev = events.recv_timeout(Duration::from_secs(60)).unwrap();
    let OfEvent::PacketIn(pi, _) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (pi.reason, pi.cookie, pi.in_port, pi.table_id),
        (2, 0x42, 1, 0)
    );
    assert_eq!(pi.data, tcp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 1));
    assert!(peers[1].take_sent().is_empty());
    // TTL 64 is forwarded with TTL 63.
    peers[0].inject_frame(&tcp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 64));
    let got = wait_sent(&peers[1], 1);
    let s = check_ipv4_tcp(got[0].data());
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(ip.header().ttl(), 63);
    dp.shutdown();
}

#[test]
fn controller_action_truncates_to_max_len() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let events = of.events().unwrap();
    let (dp, peers) = setup(&of, 2);
    of.handle_flow_mod(&fm(
        0,
        0,
        Match::CATCHALL,
        apply(vec![Action::Output {
            port: OFPP_CONTROLLER,
            max_len: 20,
        }]),
    ))
    .unwrap();
    let fr = udp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
    peers[0].inject_frame(&fr);
    let OfEvent::PacketIn(pi, _) = events.recv_timeout(Duration::from_secs(60)).unwrap() else {
        panic!()
    };
    assert_eq!(pi.reason, 0, "table-miss flow: no-match");
    assert_eq!(pi.data, fr[..20].to_vec());
    assert_eq!(usize::from(pi.total_len), fr.len());
    dp.shutdown();
}

#[test]
fn meter_drops_beyond_its_rate() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 2);
    of.handle_meter_mod(&MeterMod {
        command: MeterModCommand::Add,
        flags: meter_flags::PKTPS | meter_flags::BURST | meter_flags::STATS,
        meter_id: 1,
        bands: vec![MeterBand {
            kind: MeterBandKind::Drop,
            rate: 1,
            burst_size: 5,
        }],
    })
    .unwrap();
    let mut f = fm(0, 1, Match::CATCHALL, apply(vec![out(2)]));
    f.instructions.meter = Some(1);
    of.handle_flow_mod(&f).unwrap();
    for i in 0..100u16 {
        peers[0].inject_frame(&udp_frame([1, 1, 1, 1], [2, 2, 2, 2], i, 2));
    }
    // Wait until the meter has seen everything.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut st;
    loop {
        st = of.meter_stats(OFPM_ALL);
        if st[0].packet_in_count == 100 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(st[0].packet_in_count, 100);
    assert_eq!(st[0].flow_count, 1);
    // A packet the meter let through may still be on its way to port 2:
    // wait until every packet is either out or dropped by the band.
    let dropped = st[0].bands[0].0;
    let sent = peers[1].wait_sent((100 - dropped) as usize, Duration::from_secs(60));
    let sent = sent.len() as u64;
    assert!((5..100).contains(&sent), "{sent}");
    assert_eq!(dropped, 100 - sent);
    assert_eq!(of.meter_config(1)[0].bands[0].rate, 1);
    dp.shutdown();
}

#[test]
fn packet_out() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 3);
    of.handle_flow_mod(&fm(
        0,
        1,
        m(&[exact(OxmField::InPort, 2)]),
        apply(vec![out(3)]),
    ))
    .unwrap();
    let fr = udp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
    let po = |in_port, actions| PacketOut {
        buffer_id: 0xffff_ffff,
        in_port,
        actions,
        data: fr.clone(),
    };
    of.packet_out(&po(OFPP_CONTROLLER, vec![out(1), out(OFPP_ALL)]), &dp)
        .unwrap();
    assert_eq!(peers[0].take_sent().len(), 2);
    assert_eq!(peers[1].take_sent().len(), 1);
    // OFPP_TABLE runs the pipeline with the given in_port.
    of.packet_out(&po(2, vec![out(OFPP_TABLE)]), &dp).unwrap();
    assert_eq!(peers[2].take_sent().len(), 2);
    // Set-field in packet-out.
    of.packet_out(
        &po(
            OFPP_CONTROLLER,
            vec![
                Action::SetField {
                    field: OxmField::Ipv4Dst,
                    value: 0x0909_0909,
                },
                out(1),
            ],
        ),
        &dp,
    )
    .unwrap();
    let got = peers[0].take_sent();
    let s = check_ipv4_tcp(got[0].data());
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(ip.header().destination(), [9, 9, 9, 9]);
    // Errors.
    let mut bad = po(OFPP_CONTROLLER, vec![out(1)]);
    bad.buffer_id = 5;
    assert_eq!(of.packet_out(&bad, &dp), Err(OfError::BUFFER_UNKNOWN));
    assert_eq!(
        of.packet_out(&po(OFPP_ANY, vec![out(1)]), &dp),
        Err(OfError::BAD_PORT)
    );
    assert_eq!(
        of.packet_out(&po(1, vec![Action::Group(3)]), &dp),
        Err(OfError::BAD_OUT_GROUP)
    );
    dp.shutdown();
}

#[test]
fn standalone_bridge_switches_and_flow_mod_revalidates() {
    let of = Ofproto::new("br0", 1, FailMode::Standalone);
    let (dp, peers) = setup(&of, 3);
    let fr = udp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
    peers[0].inject_frame(&fr);
    assert_eq!(wait_sent(&peers[1], 1).len(), 1);
    assert_eq!(wait_sent(&peers[2], 1).len(), 1);
    // A higher-priority drop flow takes over at once (megaflows flushed).
    of.handle_flow_mod(&fm(0, 100, Match::CATCHALL, apply(vec![])))
        .unwrap();
    peers[0].inject_frame(&fr);
    std::thread::sleep(Duration::from_millis(50));
    assert!(peers[1].take_sent().is_empty());
    assert!(peers[2].take_sent().is_empty());
    dp.shutdown();
}

#[test]
fn group_counters_are_credited() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 3);
    let b = |p: u32| Bucket {
        weight: 0,
        watch_port: OFPP_ANY,
        watch_group: OFPG_ANY,
        actions: vec![out(p)],
    };
    of.handle_group_mod(&GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: 5,
        buckets: vec![b(2), b(3)],
        selection: None,
    })
    .unwrap();
    of.handle_flow_mod(&fm(0, 1, Match::CATCHALL, apply(vec![Action::Group(5)])))
        .unwrap();
    for i in 0..4u16 {
        peers[0].inject_frame(&udp_frame([1, 1, 1, 1], [2, 2, 2, 2], i, 2));
    }
    assert_eq!(wait_sent(&peers[1], 4).len(), 4);
    assert_eq!(wait_sent(&peers[2], 4).len(), 4);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let g = &of.group_stats(OFPG_ALL)[0];
        if g.packet_count == 4 || Instant::now() > deadline {
            assert_eq!(g.packet_count, 4);
            assert_eq!(
                g.buckets.iter().map(|b| b.0).collect::<Vec<_>>(),
                vec![4, 4]
            );
            assert_eq!(g.ref_count, 1);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(of.group_desc()[0].buckets.len(), 2);
    dp.shutdown();
}

/// `ct(zone=reg3[0..15],table=0)` (issue 17 item 1): the first pass
/// tracks the packet and recirculates; the second resumes in table 0 with
/// the register it froze and the tracker's state, so the `+trk+new` flow
/// forwards it and the `-trk` flow does not match again. Each pass has
/// its megaflow, keyed by the recirculation id, and a second packet takes
/// both without an upcall.
#[test]
fn ct_table_recirculates_and_resumes_with_registers() {
    use xennet_datapath::flow::Field;
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 3);
    let ip = exact(OxmField::EthType, 0x0800);
    let trk = 0x20;
    let new = 0x01;
    let zone = Subfield {
        field: MfField::Oxm(OxmField::Reg(3)),
        ofs: 0,
        n_bits: 16,
    };
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[ip, (OxmField::CtState, 0, trk)]),
        apply(vec![
            Action::Load {
                dst: zone,
                value: 7,
            },
            Action::Ct(Box::new(Ct {
                flags: 0,
                zone: CtZone::Field(zone),
                recirc_table: 0,
                alg: 0,
                actions: Vec::new(),
            })),
        ]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[
            ip,
            (OxmField::CtState, trk | new, trk | new),
            exact(OxmField::CtZone, 7),
            exact(OxmField::Reg(3), 7),
        ]),
        apply(vec![out(2)]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(0, 5, m(&[ip]), apply(vec![out(3)])))
        .unwrap();
    let f = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    for n in 1..=2 {
        peers[0].inject_frame(&f);
        let got = wait_sent(&peers[1], 1);
        assert_eq!(got.len(), 1, "packet {n}");
        assert_eq!(got[0].data(), &f[..]);
        assert!(peers[2].take_sent().is_empty(), "packet {n}");
    }
    let s = dp.stats();
    assert_eq!(
        (s.upcalls, s.n_flows, s.recirc, s.recirc_drops),
        (2, 2, 2, 0)
    );
    let mut flows = dp.dump_flows();
    flows.sort();
    assert!(
        flows[0].starts_with(
            "recirc_id(0),in_port(1),ct_state(-trk),eth_type(0x0800),ipv4(frag=no), packets:2"
        ),
        "{flows:?}"
    );
    assert!(
        flows[0].ends_with("actions:ct(zone=7),recirc(0x1)"),
        "{flows:?}"
    );
    assert!(
        flows[1].starts_with(
            "recirc_id(0x1),in_port(1),ct_state(+new+trk),ct_zone(0x7),eth_type(0x0800),ipv4(frag=no), packets:2"
        ),
        "{flows:?}"
    );
    assert!(flows[1].ends_with("actions:2"), "{flows:?}");
    assert_eq!(of.recirc_ids(), 1);

    // The trace follows the recirculation with the state a new
    // connection gets.
    let key = key_of(&f, 1);
    let t = of.trace(&key, None);
    assert!(
        t.contains("Datapath actions: ct(zone=7),recirc(0x1)\n"),
        "{t}"
    );
    assert!(
        t.contains("recirc(0x1) - resume conntrack with default ct_state=trk|new"),
        "{t}"
    );
    assert!(t.contains("Resuming from table 0"), "{t}");
    assert!(t.ends_with("Datapath actions: 2\n"), "{t}");
    assert_eq!(key.get(Field::RecircId), 0);
    dp.shutdown();
}

/// `ct(commit,...)` without `table`: the packet goes on, untracked for
/// the rest of the pipeline, with the tracker's NAT and mark in the
/// datapath action; `ct_clear` on a packet this bridge did not track
/// emits nothing (OVS 3.1).
#[test]
fn ct_commit_with_nat_and_mark_then_output() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 2);
    let ip = exact(OxmField::EthType, 0x0800);
    // nx_action_nat from its padding: pad, flags (src), range (IPv4 min
    // and max, port min and max), 10.0.0.9-10.0.0.10:1000-2000.
    let mut nat = vec![0, 0, 0, 1, 0, 0x33];
    nat.extend_from_slice(&[10, 0, 0, 9, 10, 0, 0, 10]);
    nat.extend_from_slice(&1000u16.to_be_bytes());
    nat.extend_from_slice(&2000u16.to_be_bytes());
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[ip]),
        apply(vec![
            Action::CtClear,
            Action::Ct(Box::new(Ct {
                flags: 1,
                zone: CtZone::Imm(3),
                recirc_table: 0xff,
                alg: 0,
                actions: vec![
                    Action::SetField {
                        field: OxmField::CtMark,
                        value: 5,
                    },
                    Action::Nat(nat),
                ],
            })),
            out(2),
        ]),
    ))
    .unwrap();
    let f = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    peers[0].inject_frame(&f);
    assert_eq!(wait_sent(&peers[1], 1).len(), 1);
    let flows = dp.dump_flows();
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert!(
        flows[0].ends_with(
            "actions:ct(commit,zone=3,mark=0x5/0xffffffff,nat(src=10.0.0.9-10.0.0.10:1000-2000)),2"
        ),
        "{flows:?}"
    );
    assert_eq!(dp.stats().recirc, 0);
    dp.shutdown();
}

/// A lookup after `pop_mpls` freezes (OVS `was_mpls`): the datapath pops
/// the label and recirculates, the thaw goes on with the rest of the
/// rule (the register it loaded, the action set it wrote, its
/// `write_metadata` and `goto_table`), and table 1 matches the IPv4
/// header that was under the label.
#[test]
fn lookup_after_pop_mpls_recirculates_with_the_rest_of_the_rule() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 3);
    let reg1 = Subfield {
        field: MfField::Oxm(OxmField::Reg(1)),
        ofs: 0,
        n_bits: 32,
    };
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[exact(OxmField::EthType, 0x8847)]),
        Instructions {
            apply: Some(vec![
                Action::PopMpls(0x0800),
                Action::Load {
                    dst: reg1,
                    value: 5,
                },
                Action::Resubmit {
                    in_port: OFPP_IN_PORT,
                    table: 2,
                },
                Action::Load {
                    dst: reg1,
                    value: 6,
                },
            ]),
            write: Some(vec![out(2)]),
            write_metadata: Some((0x7, 0xff)),
            goto_table: Some(1),
            ..Instructions::default()
        },
    ))
    .unwrap();
    // Table 2 (from the resubmit, before the goto) sends a copy to 3 for
    // reg1=5 and the right address.
    of.handle_flow_mod(&fm(
        2,
        10,
        m(&[
            exact(OxmField::EthType, 0x0800),
            exact(OxmField::Ipv4Dst, 0x0a00_0002),
            exact(OxmField::Reg(1), 5),
        ]),
        apply(vec![out(3)]),
    ))
    .unwrap();
    // Table 1 keeps the action set (output:2) only for reg1=6 and the
    // metadata written before the goto.
    of.handle_flow_mod(&fm(
        1,
        10,
        m(&[
            exact(OxmField::EthType, 0x0800),
            exact(OxmField::Ipv4Dst, 0x0a00_0002),
            exact(OxmField::Reg(1), 6),
            exact(OxmField::Metadata, 7),
        ]),
        Instructions::default(),
    ))
    .unwrap();
    let ip = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let f = mpls_over(&ip, 17, 64);
    peers[0].inject_frame(&f);
    let to2 = wait_sent(&peers[1], 1);
    let to3 = wait_sent(&peers[2], 1);
    assert_eq!(to2.len(), 1, "{:?}", dp.dump_flows());
    assert_eq!(to3.len(), 1, "{:?}", dp.dump_flows());
    assert_eq!(to2[0].data(), &ip[..]);
    assert_eq!(to3[0].data(), &ip[..]);
    let s = dp.stats();
    assert_eq!((s.recirc, s.recirc_drops, s.n_flows), (1, 0, 2));
    let flows = dp.dump_flows();
    assert!(
        flows
            .iter()
            .any(|l| l.ends_with("actions:pop_mpls(eth_type=0x800),recirc(0x1)")),
        "{flows:?}"
    );
    assert!(
        flows
            .iter()
            .any(|l| l.starts_with("recirc_id(0x1),in_port(1),")
                && l.contains("ipv4(dst=10.0.0.2")
                && l.ends_with("actions:3,2")),
        "{flows:?}"
    );
    dp.shutdown();
}

/// After `pop_mpls`, `dec_ttl` needs the IPv4 header under the label: the
/// translation recirculates before it (OVS `recirc_for_mpls`) instead of
/// reading a TTL it never parsed, so the packet leaves with TTL 63 and a
/// correct checksum.
#[test]
fn dec_ttl_after_pop_mpls_recirculates_first() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 2);
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[exact(OxmField::EthType, 0x8847)]),
        apply(vec![Action::PopMpls(0x0800), Action::DecNwTtl, out(2)]),
    ))
    .unwrap();
    let ip = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 64);
    let f = mpls_over(&ip, 17, 9);
    peers[0].inject_frame(&f);
    let got = wait_sent(&peers[1], 1);
    assert_eq!(got.len(), 1, "{:?}", dp.dump_flows());
    let s = check_ipv4_tcp(got[0].data());
    let Some(NetSlice::Ipv4(h)) = &s.net else {
        panic!("not ipv4")
    };
    assert_eq!(h.header().ttl(), 63);
    let flows = dp.dump_flows();
    assert!(
        flows
            .iter()
            .any(|l| l.ends_with("actions:pop_mpls(eth_type=0x800),recirc(0x1)")),
        "{flows:?}"
    );
    assert!(
        flows
            .iter()
            .any(|l| l.starts_with("recirc_id(0x1),") && l.ends_with("actions:set(ipv4(ttl=63)),2")),
        "{flows:?}"
    );
    dp.shutdown();
}

/// A packet-out whose actions fork with `ct(table=1)`: the datapath
/// recirculates the tracked packet and its upcall resumes in table 1.
#[test]
fn packet_out_through_ct_table_resumes_in_the_pipeline() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 3);
    of.handle_flow_mod(&fm(
        1,
        10,
        m(&[
            exact(OxmField::EthType, 0x0800),
            (OxmField::CtState, 0x21, 0x21),
            exact(OxmField::CtZone, 2),
        ]),
        apply(vec![out(3)]),
    ))
    .unwrap();
    let fr = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let ct = Action::Ct(Box::new(Ct {
        flags: 1,
        zone: CtZone::Imm(2),
        recirc_table: 1,
        alg: 0,
        actions: Vec::new(),
    }));
    of.packet_out(
        &PacketOut {
            buffer_id: 0xffff_ffff,
            in_port: 1,
            actions: vec![ct, out(2)],
            data: fr.clone(),
        },
        &dp,
    )
    .unwrap();
    // The fork's packet reaches 3 through table 1; the rest of the
    // action list sends the packet to 2.
    assert_eq!(wait_sent(&peers[2], 1).len(), 1);
    assert_eq!(wait_sent(&peers[1], 1).len(), 1);
    let s = dp.stats();
    assert_eq!((s.recirc, s.recirc_drops, s.upcalls), (1, 0, 1));
    dp.shutdown();
}

/// A packet-in after a `ct(table=1)` recirculation carries the tracker's
/// state and zone in its pipeline fields (for `NXT_PACKET_IN2`), and the
/// table and cookie of the rule that sent it.
#[test]
fn packet_in_after_recirculation_carries_the_conntrack_state() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let events = of.events().unwrap();
    let (dp, peers) = setup(&of, 2);
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&[exact(OxmField::EthType, 0x0800)]),
        apply(vec![Action::Ct(Box::new(Ct {
            flags: 0,
            zone: CtZone::Imm(3),
            recirc_table: 1,
            alg: 0,
            actions: Vec::new(),
        }))]),
    ))
    .unwrap();
    let mut to_ctl = fm(
        1,
        10,
        m(&[
            exact(OxmField::EthType, 0x0800),
            (OxmField::CtState, 0x20, 0x20),
        ]),
        apply(vec![Action::Output {
            port: OFPP_CONTROLLER,
            max_len: 0xffff,
        }]),
    );
    to_ctl.cookie = 0x77;
    of.handle_flow_mod(&to_ctl).unwrap();
    peers[0].inject_frame(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    let ev = events.recv_timeout(Duration::from_secs(60)).unwrap();
    let OfEvent::PacketIn(pi, _) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!((pi.table_id, pi.cookie, pi.in_port), (1, 0x77, 1));
    assert!(pi.pipeline.contains(&(OxmField::CtState, 0x21)), "{pi:?}");
    assert!(pi.pipeline.contains(&(OxmField::CtZone, 3)), "{pi:?}");
    dp.shutdown();
}

/// `resubmit(,2,ct)` after a DNAT (OVS `tuple_swap`): table 2 is looked
/// up with the connection's original tuple (destination 10.0.0.2), while
/// the packet leaves with its translated destination (10.0.0.9).
#[test]
fn resubmit_ct_looks_up_the_original_tuple_after_dnat() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let (dp, peers) = setup(&of, 3);
    let udp = [
        exact(OxmField::EthType, 0x0800),
        exact(OxmField::IpProto, 17),
    ];
    // nx_action_nat from its padding: flags dst (2), range IPv4 min (1),
    // 10.0.0.9.
    let nat = vec![0, 0, 0, 2, 0, 1, 10, 0, 0, 9];
    of.handle_flow_mod(&fm(
        0,
        10,
        m(&udp),
        apply(vec![Action::Ct(Box::new(Ct {
            flags: 1,
            zone: CtZone::Imm(1),
            recirc_table: 1,
            alg: 0,
            actions: vec![Action::Nat(nat)],
        }))]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(
        1,
        10,
        m(&[udp[0], udp[1], (OxmField::CtState, 0xa0, 0xa0)]),
        apply(vec![Action::ResubmitCt {
            in_port: OFPP_IN_PORT,
            table: 2,
        }]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(
        2,
        10,
        m(&[udp[0], udp[1], exact(OxmField::Ipv4Dst, 0x0a00_0002)]),
        apply(vec![out(2)]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(2, 5, m(&udp), apply(vec![out(3)])))
        .unwrap();
    peers[0].inject_frame(&udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 2000));
    let got = wait_sent(&peers[1], 1);
    assert_eq!(got.len(), 1, "{:?}", dp.dump_flows());
    let s = check_ipv4_tcp(got[0].data());
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not ipv4")
    };
    assert_eq!(ip.header().destination(), [10, 0, 0, 9]);
    assert!(peers[2].take_sent().is_empty());
    let flows = dp.dump_flows();
    assert!(
        flows.iter().any(|l| l.starts_with("recirc_id(0x1),")
            && l.contains("ct_state(+trk+dnat)")
            && l.contains("ct_tuple4(dst=10.0.0.2,proto=17)")
            && l.ends_with("actions:2")),
        "{flows:?}"
    );
    dp.shutdown();
}
