//! Issue 15: `learn` and `check_pkt_larger` with the real `ovs-ofctl`
//! (OpenFlow 1.0 + Nicira, 1.3, 1.5) and emulated guests whose traffic
//! the learned flows steer.

mod common;

use common::Harness;

/// The default MAC of guest `d` (`xennet-guest`: 00:16:3e:00:DD:HH).
fn mac(d: u16) -> String {
    format!("00:16:3e:00:{d:02x}:00")
}

/// OVS's MAC-learning recipe (the `nx_action_learn` comment in
/// `lib/ofp-actions.c`): table 0 learns where each source MAC lives and
/// resubmits to table 1, which floods unknown destinations. After a ping
/// the learned flows are in table 1 as `ovs-ofctl dump-flows` prints
/// them, and the next pings go to one port only (a third guest sees no
/// more of them).
#[test]
fn ofctl_learn_mac_learning_switch() {
    let mut h = Harness::start("oflearn");
    for d in 1..=3 {
        h.guest(d, None);
    }
    let learn = "learn(table=1,hard_timeout=60,NXM_OF_VLAN_TCI[0..11],\
                 NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])";
    for ver in ["OpenFlow10", "OpenFlow13", "OpenFlow15"] {
        let of = |args: &[&str]| h.ofctl(&[&["-O", ver][..], args].concat());
        of(&["del-flows", "br0"]);
        of(&[
            "add-flow",
            "br0",
            &format!("table=0,priority=10,actions={learn},resubmit(,1)"),
        ]);
        of(&["add-flow", "br0", "table=1,priority=0,actions=FLOOD"]);
        let dump = of(&["dump-flows", "br0", "table=0"]);
        assert!(
            dump.contains(&format!("priority=10 actions={learn},resubmit(,1)")),
            "{ver}: {dump}"
        );
    }
    assert!(h.ping(1, 2, 3), "{}", h.log());
    let dump = h.ofctl(&["-O", "OpenFlow13", "dump-flows", "br0", "table=1"]);
    for d in [1, 2] {
        // As OVS prints a learned flow (the default priority left out).
        let want = format!(
            "vlan_tci=0x0000/0x0fff,dl_dst={} actions=output:{d}",
            mac(d)
        );
        let line = dump
            .lines()
            .find(|l| l.contains(&want))
            .unwrap_or_else(|| panic!("learned flow for guest {d} missing: {dump}"));
        assert!(line.contains("table=1,"), "{dump}");
        assert!(line.contains(" hard_timeout=60,"), "{dump}");
        assert!(!line.contains("priority="), "{dump}");
    }
    // The pings reached port 2 through its learned flow, not the flood.
    let line = dump
        .lines()
        .find(|l| l.contains(&format!("dl_dst={}", mac(2))))
        .unwrap_or_else(|| panic!("{dump}"));
    assert!(!line.contains("n_packets=0,"), "{dump}");
    // The next pings go through the learned flows (broadcasts, such as
    // the guests' IPv6 housekeeping, still flood).
    let pkts_to = |d: u16| {
        let dump = h.ofctl(&["dump-flows", "br0", "table=1"]);
        let line = dump
            .lines()
            .find(|l| l.contains(&format!("dl_dst={}", mac(d))))
            .unwrap_or_else(|| panic!("{dump}"))
            .to_owned();
        line.split("n_packets=")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{line}"))
    };
    let (to1, to2) = (pkts_to(1), pkts_to(2));
    assert!(h.ping(1, 2, 2), "{}", h.log());
    assert!(
        pkts_to(1) >= to1 + 2,
        "replies not through the learned flow"
    );
    assert!(
        pkts_to(2) >= to2 + 2,
        "requests not through the learned flow"
    );
    // The megaflows of the learning table hold the source MAC.
    let dp = h.appctl(&["dpctl/dump-flows", "br0"]);
    assert!(dp.contains("eth(src="), "{dp}");
    // ofproto/trace shows the flow that would be learned.
    let trace = h.appctl(&[
        "ofproto/trace",
        "br0",
        "in_port=3,dl_src=00:16:3e:00:09:00,dl_dst=00:16:3e:00:01:00",
    ]);
    assert!(
        trace.contains("table=1 vlan_tci=0x0000/0x0fff,dl_dst=00:16:3e:00:09:00"),
        "{trace}"
    );
    assert!(trace.contains("Datapath actions: 1"), "{trace}");
    // A trace learns nothing.
    let dump = h.ofctl(&["dump-flows", "br0", "table=1"]);
    assert!(!dump.contains("00:16:3e:00:09:00"), "{dump}");
    // Counted.
    let cov = h.appctl(&["coverage/show"]);
    let added = cov
        .lines()
        .find(|l| l.starts_with("xlate_learn_added"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{cov}"));
    assert!(added >= 2, "{cov}");
}

/// `delete_learned`, `cookie`, `idle_timeout`, `fin_idle_timeout`,
/// `fin_hard_timeout`, `priority`, `send_flow_rem`, and `learn2`'s
/// `limit` and `result_dst` round-trip
/// through `ovs-ofctl`; deleting the learning flow deletes what it
/// learned; the limit holds.
#[test]
fn ofctl_learn_options_delete_learned_and_limit() {
    let mut h = Harness::start("oflearn2");
    for d in 1..=3 {
        h.guest(d, None);
    }
    let learn = "learn(table=1,idle_timeout=30,fin_idle_timeout=5,fin_hard_timeout=9,\
                 priority=5,send_flow_rem,delete_learned,\
                 cookie=0x42,limit=2,result_dst=NXM_NX_REG0[3],\
                 NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0x1->NXM_NX_REG1[0..3],\
                 output:NXM_OF_IN_PORT[])";
    for ver in ["OpenFlow10", "OpenFlow13", "OpenFlow15"] {
        let of = |args: &[&str]| h.ofctl(&[&["-O", ver][..], args].concat());
        of(&["del-flows", "br0"]);
        of(&[
            "add-flow",
            "br0",
            &format!("table=0,actions={learn},resubmit(,1)"),
        ]);
        of(&["add-flow", "br0", "table=1,priority=0,actions=FLOOD"]);
        let dump = of(&["dump-flows", "br0", "table=0"]);
        assert!(
            dump.contains(&format!("actions={learn},resubmit(,1)")),
            "{ver}: {dump}"
        );
    }
    // Three guests talk; only two flows may be learned (limit=2).
    assert!(h.ping(1, 2, 2), "{}", h.log());
    assert!(h.ping(3, 1, 2), "{}", h.log());
    let dump = h.ofctl(&["-O", "OpenFlow13", "dump-flows", "br0", "table=1"]);
    let learned: Vec<&str> = dump.lines().filter(|l| l.contains("cookie=0x42")).collect();
    assert_eq!(learned.len(), 2, "{dump}");
    for l in &learned {
        assert!(l.contains("idle_timeout=30"), "{dump}");
        assert!(l.contains("priority=5,"), "{dump}");
        assert!(l.contains("send_flow_rem"), "{dump}");
        assert!(
            l.contains(
                "actions=fin_timeout(idle_timeout=5,hard_timeout=9),\
                 load:0x1->NXM_NX_REG1[0..3],output:"
            ),
            "{dump}"
        );
    }
    // Deleting the learning flow deletes what it learned.
    h.ofctl(&["del-flows", "br0", "table=0"]);
    let dump = h.ofctl(&["-O", "OpenFlow13", "dump-flows", "br0", "table=1"]);
    assert!(!dump.contains("cookie=0x42"), "{dump}");
    assert!(dump.contains("priority=0 actions=FLOOD"), "{dump}");
}

/// Bad learn actions get the OpenFlow error OVS gives.
#[test]
fn ofctl_learn_refused() {
    let mut h = Harness::start("oflearn3");
    h.guest(1, None);
    // An IP field source without an IP match: OFPBAC_MATCH_INCONSISTENT.
    let bad = h.ofctl_output(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "br0",
        "actions=learn(table=1,NXM_NX_REG0[]=NXM_OF_IP_SRC[])",
    ]);
    assert!(!bad.status.success(), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("OFPBAC_MATCH_INCONSISTENT"), "{err}");
    let ok = h.ofctl_output(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "br0",
        "ip,actions=learn(table=1,NXM_NX_REG0[]=NXM_OF_IP_SRC[])",
    ]);
    assert!(ok.status.success(), "{ok:?}");
    // fin_timeout on a TCP flow round-trips.
    for ver in ["OpenFlow10", "OpenFlow13", "OpenFlow15"] {
        h.ofctl(&[
            "-O",
            ver,
            "add-flow",
            "br0",
            "priority=5,tcp,actions=fin_timeout(idle_timeout=5,hard_timeout=9),NORMAL",
        ]);
        let dump = h.ofctl(&["-O", ver, "dump-flows", "br0"]);
        assert!(
            dump.contains(
                "priority=5,tcp actions=fin_timeout(idle_timeout=5,hard_timeout=9),NORMAL"
            ),
            "{ver}: {dump}"
        );
    }
}

/// `check_pkt_larger(N)->REG_BIT` (OVN's gateway MTU check): pings
/// larger than 300 bytes are dropped by a table that reads the bit, the
/// others pass; the megaflow carries `check_pkt_len(size=300,gt(..),le(..))`
/// as OVS's datapath flows do.
#[test]
fn ofctl_check_pkt_larger_splits_by_size() {
    let mut h = Harness::start("ofcpl");
    for d in 1..=2 {
        h.guest(d, None);
    }
    let cpl = "check_pkt_larger(300)->NXM_NX_REG0[0]";
    for ver in ["OpenFlow10", "OpenFlow13", "OpenFlow15"] {
        let of = |args: &[&str]| h.ofctl(&[&["-O", ver][..], args].concat());
        of(&["del-flows", "br0"]);
        of(&[
            "add-flow",
            "br0",
            &format!("table=0,priority=10,icmp,actions={cpl},resubmit(,1)"),
        ]);
        of(&["add-flow", "br0", "table=0,priority=0,actions=NORMAL"]);
        of(&[
            "add-flow",
            "br0",
            "table=1,priority=10,reg0=0x1/0x1,actions=drop",
        ]);
        of(&["add-flow", "br0", "table=1,priority=0,actions=NORMAL"]);
        let dump = of(&["dump-flows", "br0", "table=0"]);
        assert!(
            dump.contains(&format!("priority=10,icmp actions={cpl},resubmit(,1)")),
            "{ver}: {dump}"
        );
    }
    assert!(h.ping(1, 2, 2), "{}", h.log());
    let big = h.exec(
        1,
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-w",
            "2",
            "-s",
            "400",
            &Harness::ip_of(2),
        ],
    );
    assert!(!big.status.success(), "a 428-byte ping passed: {big:?}");
    // Small ones still pass after the big ones' megaflow is in place.
    assert!(h.ping(1, 2, 2), "{}", h.log());
    let dp = h.appctl(&["dpctl/dump-flows", "br0"]);
    assert!(dp.contains("check_pkt_len(size=300,gt(drop),le("), "{dp}");
}

/// The Geneve option map with the real `ovs-ofctl` (`add-tlv-map`,
/// `dump-tlv-map`, `del-tlv-map`) in OpenFlow 1.0, 1.3 and 1.5: OVN's
/// map and another, printed back as OVS prints its own; OVS's errors for
/// an index already mapped, a duplicate option and a bad length, and
/// xennet's for a map beyond its 32 bytes of option space.
#[test]
fn ofctl_tlv_map() {
    let h = Harness::start("oftlv");
    for ver in ["OpenFlow10", "OpenFlow13", "OpenFlow15"] {
        let of = |args: &[&str]| h.ofctl(&[&["-O", ver][..], args].concat());
        let of_err = |args: &[&str]| {
            let o = h.ofctl_output(&[&["-O", ver][..], args].concat());
            assert!(!o.status.success(), "{ver} {args:?}: {o:?}");
            String::from_utf8_lossy(&o.stderr).into_owned()
        };
        of(&["del-tlv-map", "br0"]);
        of(&[
            "add-tlv-map",
            "br0",
            "{class=0x0102,type=0x80,len=4}->tun_metadata0,{class=0xffff,type=0,len=8}->tun_metadata5",
        ]);
        let dump = of(&["dump-tlv-map", "br0"]);
        assert!(
            dump.contains("max option space=32 max fields=64"),
            "{ver}: {dump}"
        );
        assert!(dump.contains("allocated option space=12"), "{ver}: {dump}");
        assert!(
            dump.contains("  0x102  0x80       4  tun_metadata0"),
            "{ver}: {dump}"
        );
        assert!(
            dump.contains(" 0xffff     0       8  tun_metadata5"),
            "{ver}: {dump}"
        );
        let e = of_err(&[
            "add-tlv-map",
            "br0",
            "{class=1,type=1,len=4}->tun_metadata0",
        ]);
        assert!(e.contains("NXTTMFC_ALREADY_MAPPED"), "{ver}: {e}");
        let e = of_err(&[
            "add-tlv-map",
            "br0",
            "{class=0x102,type=0x80,len=4}->tun_metadata1",
        ]);
        assert!(e.contains("NXTTMFC_DUP_ENTRY"), "{ver}: {e}");
        let e = of_err(&[
            "add-tlv-map",
            "br0",
            "{class=1,type=1,len=5}->tun_metadata1",
        ]);
        assert!(e.contains("NXTTMFC_BAD_OPT_LEN"), "{ver}: {e}");
        let e = of_err(&[
            "add-tlv-map",
            "br0",
            "{class=1,type=1,len=16}->tun_metadata1,{class=1,type=2,len=8}->tun_metadata2",
        ]);
        assert!(e.contains("NXTTMFC_TABLE_FULL"), "{ver}: {e}");
        // A failed add changes nothing.
        let again = of(&["dump-tlv-map", "br0"]);
        assert_eq!(again, dump, "{ver}");
        of(&[
            "del-tlv-map",
            "br0",
            "{class=0xffff,type=0,len=8}->tun_metadata5",
        ]);
        let dump = of(&["dump-tlv-map", "br0"]);
        assert!(dump.contains("allocated option space=4"), "{ver}: {dump}");
        assert!(!dump.contains("tun_metadata5"), "{ver}: {dump}");
    }
    assert!(
        h.log().contains("32 bytes of option space"),
        "the refusal names the limit"
    );
}

/// `tun_metadata<n>` in flows through the real `ovs-ofctl` (1.0 + NXM,
/// 1.3, 1.5): matched, set, loaded and moved once mapped and printed back
/// as OVS prints them; unmapped it is `NXFMFC_INVALID_TLV_FIELD`, and a
/// mapping flows use cannot be deleted (`NXTTMFC_INVALID_TLV_DEL`).
/// Packets from guests carry no options: such a flow does not match them.
#[test]
fn ofctl_tun_metadata_flows() {
    let mut h = Harness::start("oftunmd");
    for d in 1..=2 {
        h.guest(d, None);
    }
    for ver in ["OpenFlow10", "OpenFlow13", "OpenFlow15"] {
        let of = |args: &[&str]| h.ofctl(&[&["-O", ver][..], args].concat());
        of(&["del-flows", "br0"]);
        of(&["del-tlv-map", "br0"]);
        let bad = h.ofctl_output(&[
            "-O",
            ver,
            "add-flow",
            "br0",
            "priority=200,tun_metadata0=0x1234,actions=drop",
        ]);
        assert!(!bad.status.success(), "{ver}: {bad:?}");
        let e = String::from_utf8_lossy(&bad.stderr);
        assert!(e.contains("NXFMFC_INVALID_TLV_FIELD"), "{ver}: {e}");
        of(&[
            "add-tlv-map",
            "br0",
            "{class=0x0102,type=0x80,len=4}->tun_metadata0",
        ]);
        of(&[
            "add-flow",
            "br0",
            "priority=200,tun_metadata0=0x1234,actions=drop",
        ]);
        of(&[
            "add-flow",
            "br0",
            "priority=100,ip,actions=set_field:0x5678->tun_metadata0,\
             move:NXM_NX_TUN_METADATA0[0..15]->NXM_NX_REG0[0..15],NORMAL",
        ]);
        of(&["add-flow", "br0", "priority=0,actions=NORMAL"]);
        let dump = of(&["dump-flows", "br0"]);
        assert!(
            dump.contains("priority=200,tun_metadata0=0x1234 actions=drop"),
            "{ver}: {dump}"
        );
        assert!(
            dump.contains(
                "priority=100,ip actions=set_field:0x5678->tun_metadata0,\
                 move:NXM_NX_TUN_METADATA0[0..15]->NXM_NX_REG0[0..15],NORMAL"
            ),
            "{ver}: {dump}"
        );
        let e = h.ofctl_output(&["-O", ver, "del-tlv-map", "br0"]);
        assert!(!e.status.success(), "{ver}: {e:?}");
        let e = String::from_utf8_lossy(&e.stderr);
        assert!(e.contains("NXTTMFC_INVALID_TLV_DEL"), "{ver}: {e}");
    }
    // Guest packets carry no Geneve options: the drop flow never matches.
    assert!(h.ping(1, 2, 2), "{}", h.log());
    let dump = h.ofctl(&["dump-flows", "br0"]);
    let line = dump
        .lines()
        .find(|l| l.contains("tun_metadata0=0x1234"))
        .unwrap_or_else(|| panic!("{dump}"));
    assert!(line.contains("n_packets=0,"), "{dump}");
}
