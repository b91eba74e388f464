//! Issue 17: the connection tracker seen from outside, with real Linux
//! stacks behind emulated guests: the `dpctl/*` conntrack commands
//! through the real `ovs-appctl` (OVS lib/dpctl.c formats).

mod common;

use std::process::Command;

use common::Harness;

/// The real `ovs-appctl` against xennetd (found through the pidfile in
/// `OVS_RUNDIR`): exit status and stdout, or stderr on failure.
fn ovs_appctl(h: &Harness, args: &[&str]) -> Result<String, String> {
    common::require_tool("ovs-appctl", "openvswitch-common");
    let out = Command::new("ovs-appctl")
        .env("OVS_RUNDIR", h.rundir())
        .args(args)
        .output()
        .expect("running ovs-appctl");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Pings committed in zone 5 show up in `dpctl/dump-conntrack` (all
/// zones and `zone=5`, not `zone=6`), are counted, limited and flushed by
/// zone with the commands OVS has; bad arguments are refused with an
/// error, not ignored.
/// Two guests whose IPv4 traffic is committed in zone 5; guest 1 has
/// pinged guest 2 through it.
fn pinged_in_zone_5(tag: &str) -> Harness {
    let mut h = Harness::start(tag);
    for d in 1..=2 {
        h.guest(d, None);
    }
    let of13 = |args: &[&str]| h.ofctl(&[&["-O", "OpenFlow13"][..], args].concat());
    of13(&["del-flows", "br0"]);
    let flows = h.rundir().join("ct-flows.txt");
    std::fs::write(
        &flows,
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=10,ip,ct_state=-trk,actions=ct(zone=5,table=1)\n\
         table=1,priority=10,ip,ct_state=+trk+new,actions=ct(commit,zone=5),NORMAL\n\
         table=1,priority=10,ip,ct_state=+trk+est,actions=NORMAL\n\
         table=1,priority=5,ip,actions=drop\n",
    )
    .unwrap();
    of13(&["add-flows", "br0", flows.to_str().unwrap()]);
    assert!(h.ping(1, 2, 2), "{}", h.log());
    h
}

#[test]
fn dpctl_conntrack_commands_through_real_ovs_appctl() {
    let h = pinged_in_zone_5("ctdpctl");
    let ct =
        |args: &[&str]| ovs_appctl(&h, args).unwrap_or_else(|e| panic!("ovs-appctl {args:?}: {e}"));

    let (a, b) = (Harness::ip_of(1), Harness::ip_of(2));
    let icmp = format!("icmp,orig=(src={a},dst={b},");
    let all = ct(&["dpctl/dump-conntrack"]);
    let ping = all
        .lines()
        .find(|l| l.starts_with(&icmp))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        ping.contains(&format!("reply=(src={b},dst={a},")) && ping.ends_with(",zone=5"),
        "{all}"
    );
    // A datapath name, as OVS's users give it, is accepted.
    assert_eq!(
        ct(&["dpctl/dump-conntrack", "netdev@ovs-netdev", "zone=5"]),
        all
    );
    assert_eq!(ct(&["dpctl/dump-conntrack", "zone=6"]), "");
    let n: usize = ct(&["dpctl/ct-get-nconns"]).trim().parse().unwrap();
    assert_eq!(n, all.lines().count(), "{all}");
    let stats = ct(&["dpctl/ct-stats-show"]);
    assert!(stats.contains("ICMP: "), "{stats}");

    assert_eq!(ct(&["dpctl/ct-get-maxconns"]), "3000000\n");
    ct(&["dpctl/ct-set-maxconns", "1000"]);
    assert_eq!(ct(&["dpctl/ct-get-maxconns"]), "1000\n");
    ct(&["dpctl/ct-set-limits", "default=100", "zone=5,limit=10"]);
    assert_eq!(
        ct(&["dpctl/ct-get-limits", "zone=5"]),
        format!("default limit=100\nzone=5,limit=10,count={n}\n")
    );
    ct(&["dpctl/ct-del-limits", "zone=5"]);
    assert_eq!(
        ct(&["dpctl/ct-get-limits", "zone=5"]),
        format!("default limit=100\nzone=5,limit=100,count={n}\n")
    );

    // Flushing another zone keeps the ping; flushing its zone removes it.
    ct(&["dpctl/flush-conntrack", "zone=6"]);
    assert_eq!(ct(&["dpctl/dump-conntrack"]), all);
    ct(&["dpctl/flush-conntrack", "zone=5"]);
    assert_eq!(ct(&["dpctl/dump-conntrack"]), "");
    assert_eq!(ct(&["dpctl/ct-get-nconns"]), "0\n");

    let ipf = ct(&["dpctl/ipf-get-status"]);
    assert!(ipf.contains("v4 enabled: 1"), "{ipf}");
    ct(&["dpctl/ipf-set-disabled", "v4"]);
    assert!(ct(&["dpctl/ipf-get-status"]).contains("v4 enabled: 0"));
    ct(&["dpctl/ipf-set-enabled", "v4"]);
    ct(&["dpctl/ipf-set-max-nfrags", "500"]);
    let ipf = ct(&["dpctl/ipf-get-status"]);
    assert!(ipf.contains("max num frags (v4/v6): 500"), "{ipf}");

    // What xennet does not have is refused, not ignored.
    for bad in [
        &["dpctl/dump-conntrack", "-m"][..],
        &["dpctl/flush-conntrack", "mark=1"],
        &["dpctl/ct-set-maxconns", "many"],
        &["dpctl/ipf-set-min-frag", "v4", "10"],
    ] {
        assert!(ovs_appctl(&h, bad).is_err(), "{bad:?} was accepted");
    }
    let cmds = ct(&["list-commands"]);
    for c in [
        "dpctl/dump-conntrack",
        "dpctl/ct-set-limits",
        "dpctl/ipf-get-status",
    ] {
        assert!(cmds.contains(c), "{cmds}");
    }
}

/// `NXT_CT_FLUSH_ZONE` from the real `ovs-ofctl ct-flush-zone` (as
/// ovn-controller sends for every zone it assigns) flushes that zone of
/// the tracker the bridge's `ct` actions use, and only that zone.
#[test]
fn ofctl_ct_flush_zone_flushes_the_tracker() {
    let h = pinged_in_zone_5("ctflushz");
    let dump = || ovs_appctl(&h, &["dpctl/dump-conntrack"]).unwrap();
    let before = dump();
    assert!(before.contains(",zone=5"), "{before}");
    h.ofctl(&["ct-flush-zone", "br0", "6"]);
    assert_eq!(dump(), before);
    h.ofctl(&["ct-flush-zone", "br0", "5"]);
    assert_eq!(dump(), "");
    // The flushed connection starts again as new and is committed again.
    assert!(h.ping(1, 2, 1), "{}", h.log());
    assert!(dump().contains(",zone=5"));
}

/// `n_packets` of the one flow in `dump` (`ovs-ofctl dump-flows` text)
/// containing `needle`.
fn n_packets(dump: &str, needle: &str) -> u64 {
    let l = dump
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle}: {dump}"));
    let n = l.split("n_packets=").nth(1).unwrap_or_default();
    n.split(',').next().unwrap_or_default().parse().unwrap()
}

/// Real fragmented pings (`ping -s 3000`: three IPv4 fragments per
/// datagram at MTU 1500) through `ct(table=1)`: the tracker holds the
/// first fragments (the datapath drops them, as OVS's ipf steals them)
/// and the last one completes the datagram, which alone goes on to table
/// 1 and to the other guest. Table 1 forwards whatever it gets, so held
/// fragments that were also passed on would show there as more packets
/// than datagrams.
#[test]
fn fragmented_pings_are_reassembled_before_tracking() {
    let mut h = Harness::start("ctfrag");
    for d in 1..=2 {
        h.guest(d, None);
    }
    let flows = h.rundir().join("frag-flows.txt");
    std::fs::write(
        &flows,
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=100,ip,actions=ct(table=1)\n\
         table=1,priority=100,icmp,actions=NORMAL\n\
         table=1,priority=10,ip,actions=NORMAL\n",
    )
    .unwrap();
    h.ofctl(&["del-flows", "br0"]);
    h.ofctl(&["add-flows", "br0", flows.to_str().unwrap()]);
    let out = h.exec(
        1,
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-s",
            "3000",
            &Harness::ip_of(2),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss") && !text.contains("DUP!"),
        "{text}\n{}",
        h.log()
    );
    // 3 requests and 3 replies: 6 datagrams of 3 fragments each.
    let dump = h.ofctl(&["dump-flows", "br0"]);
    assert!(n_packets(&dump, "ip actions=ct(table=1)") >= 18, "{dump}");
    assert_eq!(n_packets(&dump, "priority=100,icmp"), 6, "{dump}");
    let ipf = ovs_appctl(&h, &["dpctl/ipf-get-status"]).unwrap();
    // OVS counts the fragments of completed datagrams.
    assert!(ipf.contains("v4 frags completed: 18\n"), "{ipf}");
    assert!(ipf.contains("num frag: 0\n"), "{ipf}");
}
