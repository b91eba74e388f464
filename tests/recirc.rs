//! Recirculation through `ct(table=N)` (issue 17 item 1, issue 15), with
//! emulated guests whose real Linux stacks ping each other and flows from
//! the real `ovs-ofctl add-flows`: every pass of a packet has its own
//! megaflows, keyed by `recirc_id` as OVS's are, and resumes in the table
//! `ct` names with the tracker's state.

mod common;

use common::Harness;

/// Three passes per IPv4 packet: table 0 tracks untracked packets in
/// zone 5 and resumes in table 0, where the tracked packet is tracked
/// again (and committed) in zone 7 and resumes in table 1, which forwards
/// tracked packets. If the `-trk` flow matched a tracked packet, or a
/// pass reused another pass's megaflow, the packet would loop until the
/// recirculation bound dropped it and the pings would fail. (The flows
/// hold for the placeholder tracker, which makes every packet `+new`, and
/// for a real one, where replies in zone 7 are `+est+rpl`.)
#[test]
fn ct_table_recirculation_carries_pings() {
    let mut h = Harness::start("ctrecirc");
    for d in 1..=2 {
        h.guest(d, None);
    }
    let of13 = |args: &[&str]| h.ofctl(&[&["-O", "OpenFlow13"][..], args].concat());
    of13(&["del-flows", "br0"]);
    let flows = h.rundir().join("ct-flows.txt");
    std::fs::write(
        &flows,
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=10,ip,ct_state=-trk,actions=ct(zone=5,table=0)\n\
         table=0,priority=10,ip,ct_state=+trk,ct_zone=5,actions=ct(commit,zone=7,table=1)\n\
         table=1,priority=10,ip,ct_state=+trk,ct_zone=7,actions=NORMAL\n\
         table=1,priority=5,ip,actions=drop\n",
    )
    .unwrap();
    of13(&["add-flows", "br0", flows.to_str().unwrap()]);
    let dump = of13(&["dump-flows", "br0"]);
    assert!(dump.contains("actions=ct(table=0,zone=5)"), "{dump}");
    assert!(dump.contains("actions=ct(commit,table=1,zone=7)"), "{dump}");

    assert!(h.ping(1, 2, 3), "{}", h.log());

    // Each table-0 flow saw every IPv4 packet once (6 or more: requests
    // and replies; the guests may send other IPv4 of their own).
    let dump = of13(&["dump-flows", "br0"]);
    let packets = |needle: &str| -> u64 {
        let l = dump
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {dump}"));
        let n = l.split("n_packets=").nth(1).unwrap_or_default();
        n.split(',').next().unwrap_or_default().parse().unwrap()
    };
    let untracked = packets("ct_state=-trk");
    assert!(untracked >= 6, "{dump}");
    assert_eq!(packets("ct_state=+trk,ct_zone=5"), untracked, "{dump}");
    assert_eq!(packets("ct_state=+trk,ct_zone=7"), untracked, "{dump}");

    // The megaflows: one per pass and direction, as OVS prints them.
    let dp = h.appctl(&["dpctl/dump-flows", "br0"]);
    let ip: Vec<&str> = dp
        .lines()
        .filter(|l| l.contains("eth_type(0x0800)"))
        .collect();
    let pass = |prefix: &str, actions: &str| {
        ip.iter()
            .any(|l| l.starts_with(prefix) && l.contains(actions))
    };
    assert!(
        pass(
            "recirc_id(0),in_port(1),ct_state(-trk),",
            "actions:ct(zone=5),recirc(0x"
        ),
        "{dp}"
    );
    assert!(
        pass("recirc_id(0x", "actions:ct(commit,zone=7),recirc(0x")
            && ip.iter().any(|l| l.contains("ct_state(+trk),ct_zone(0x5)")),
        "{dp}"
    );
    assert!(
        ip.iter()
            .any(|l| l.contains("ct_state(+trk),ct_zone(0x7)") && l.ends_with("actions:2")),
        "{dp}"
    );
    assert!(
        !ip.iter()
            .any(|l| l.starts_with("recirc_id(0x") && l.contains("ct_state(-trk)")),
        "a -trk megaflow after recirculation: {dp}"
    );

    // Counters: recirculations, none dropped.
    let stats = h.appctl(&["dpif-netdev/pmd-stats-show"]);
    let recirc: u64 = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("packet recirculations: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(recirc >= 2 * untracked, "{stats}");
    assert!(
        stats.contains("recirculations dropped (too deep or too many): 0\n"),
        "{stats}"
    );
    assert!(stats.contains("conntrack (all bridges): "), "{stats}");

    // ofproto/trace follows both recirculations.
    let trace = h.appctl(&[
        "ofproto/trace",
        "br0",
        "in_port=1,icmp,nw_src=10.251.0.1,nw_dst=10.251.0.2",
    ]);
    assert_eq!(
        trace
            .matches("resume conntrack with default ct_state=trk|new")
            .count(),
        2,
        "{trace}"
    );
    assert!(trace.contains("Resuming from table 1"), "{trace}");
}

/// `ct` arguments as the real `ovs-ofctl` encodes them (`NXAST_CT` with a
/// nested `NXAST_NAT` and `exec` of `ct_mark`/`ct_label`, a zone from a
/// register), translated into the datapath actions OVS prints, and
/// `ct_clear` after the thaw.
#[test]
fn ct_arguments_from_ovs_ofctl_reach_the_datapath_actions() {
    let h = Harness::start("ctargs");
    let of13 = |args: &[&str]| h.ofctl(&[&["-O", "OpenFlow13"][..], args].concat());
    of13(&[
        "add-flow",
        "br0",
        "table=0,priority=10,ip,actions=ct(commit,zone=9,exec(set_field:0x3->ct_mark,set_field:0x1/0x1->ct_label),nat(src=10.0.0.9-10.0.0.10:1000-2000,persistent,random)),load:0x4->NXM_NX_REG2[],ct(table=1,zone=NXM_NX_REG2[0..15],nat)",
    ]);
    of13(&[
        "add-flow",
        "br0",
        "table=1,priority=10,ip,ct_state=+trk,reg2=4,actions=ct_clear",
    ]);
    let trace = h.appctl(&[
        "ofproto/trace",
        "br0",
        "in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=5,tp_dst=6",
    ]);
    assert!(
        trace.contains(
            "Datapath actions: ct(commit,zone=9,mark=0x3/0xffffffff,label=0x1/0x1,nat(src=10.0.0.9-10.0.0.10:1000-2000,persistent,random)),ct(zone=4,nat),recirc(0x"
        ),
        "{trace}"
    );
    assert!(trace.contains("Resuming from table 1"), "{trace}");
    assert!(trace.ends_with("Datapath actions: ct_clear\n"), "{trace}");
}
