//! `controller(pause)` and `NXT_RESUME` (issue 15, items 4 and 6): the
//! real `ovs-ofctl monitor br0 resume` resumes every paused packet-in it
//! sees, so a guest's ping crosses a flow that pauses in the middle of its
//! actions, with registers loaded before and after the pause; a raw peer
//! hands back forged and truncated continuations and gets the errors Open
//! vSwitch gives.

mod common;

use common::{guest_mac, hex, icmp_echo_request, Harness};
use std::io::{Read, Write};
use xennet_openflow::Msg;

/// One OpenFlow message from `s` (header and body).
fn read_msg(s: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    let mut raw = vec![0u8; 8];
    s.read_exact(&mut raw).unwrap();
    let len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
    raw.resize(len, 0);
    s.read_exact(&mut raw[8..]).unwrap();
    raw
}

/// The pipeline both tests use: guest 1's pings pause in table 0 between
/// two register loads, then table 2 checks both registers and outputs to
/// guest 2; everything else is NORMAL.
fn add_flows(h: &Harness, proto: &str) {
    let of = |args: &[&str]| h.ofctl(&[&["-O", proto][..], args].concat());
    of(&["del-flows", "br0"]);
    of(&["add-flow", "br0", "priority=0,actions=NORMAL"]);
    of(&[
        "add-flow",
        "br0",
        "priority=10,cookie=0x5a,in_port=1,icmp,icmp_type=8,\
         actions=load:0x2a->NXM_NX_REG1[],push:NXM_NX_REG1[],controller(pause,userdata=0a.0b),\
         load:0x2->NXM_NX_REG2[],pop:NXM_NX_REG3[],resubmit(,2)",
    ]);
    of(&[
        "add-flow",
        "br0",
        "table=2,priority=10,reg1=0x2a,reg2=0x2,reg3=0x2a,actions=output:2",
    ]);
    of(&["add-flow", "br0", "table=2,priority=1,actions=drop"]);
}

/// `ovs-ofctl monitor br0 resume` (OpenFlow 1.0 and 1.5): each echo
/// request from guest 1 reaches the monitor as an `NXT_PACKET_IN2` with a
/// continuation (its stack entry, its actions), the monitor sends it back
/// as `NXT_RESUME`, and the ping is answered: the registers loaded before
/// the pause (`reg1`, the stack) and after it (`reg2`) both steer it.
/// `ofproto/trace` shows the pause. Without the monitor the pings fail.
#[test]
fn ofctl_monitor_resume_moves_paused_pings() {
    common::require_tool("ovs-ofctl", "openvswitch-common");
    let mut h = Harness::start("pauseres");
    h.guest(1, None);
    h.guest(2, None);
    assert!(h.ping(1, 2, 1), "{}", h.log());
    for proto in ["OpenFlow10", "OpenFlow15"] {
        add_flows(&h, proto);
        assert!(
            h.ping_fails(1, 2),
            "{proto}: a paused ping crossed without a resume"
        );
        let trace = h.appctl(&[
            "ofproto/trace",
            "br0",
            "in_port=1,icmp,icmp_type=8,nw_src=10.251.0.1,nw_dst=10.251.0.2",
        ]);
        assert!(trace.contains("pausing"), "{trace}");
        assert!(
            trace.contains(
                "NXT_RESUME goes on with: set_field:0x2->reg2,pop:NXM_NX_REG3[],resubmit(,2)"
            ),
            "{trace}"
        );
        assert!(trace.contains("Datapath actions: userspace"), "{trace}");

        let mon =
            common::OfctlMonitor::start(h.rundir(), proto, "resume", &format!("resume-{proto}"));
        // The monitor may not be connected yet: ping until one crosses.
        h.wait_for("a ping resumed by ovs-ofctl", || h.ping(1, 2, 1));
        let t = mon.text();
        assert!(t.contains("NXT_PACKET_IN2"), "{proto}: {t}");
        assert!(t.contains("NXT_RESUME"), "{proto}: {t}");
        assert!(
            t.contains("continuation.stack=(top) 0x2a (bottom)"),
            "{proto}: {t}"
        );
        // OpenFlow 1.5 carries the load as a set-field.
        assert!(
            t.contains("continuation.actions=unroll_xlate(table=0, cookie=90),load:0x2->NXM_NX_REG2[],pop:NXM_NX_REG3[],resubmit(,2)")
                || t.contains("continuation.actions=unroll_xlate(table=0, cookie=90),set_field:0x2->reg2,pop:NXM_NX_REG3[],resubmit(,2)"),
            "{proto}: {t}"
        );
        for want in ["reg1=0x2a", "cookie=0x5a", "userdata=0a.0b"] {
            assert!(t.contains(want), "{proto}: {want} not in {t}");
        }
        assert!(!t.contains("decode error"), "{proto}: {t}");
        assert!(!t.contains("OFPT_ERROR"), "{proto}: {t}");
    }
}

/// A pause inside `clone`, a group bucket and a `check_pkt_larger`
/// branch (issue 15), resumed by the real `ovs-ofctl monitor br0 resume`:
/// each context loads reg1 then pauses, and its rest after the pause
/// (`resubmit(,2)`, which outputs to guest 2 only for that reg1) is the
/// continuation, so the pings cross only once resumed, as on OVS 3.1.0.
/// `ofproto/trace` shows each pause and the rest it hands over.
#[test]
fn ofctl_monitor_resumes_pauses_in_clone_bucket_and_check_pkt_larger() {
    common::require_tool("ovs-ofctl", "openvswitch-common");
    let mut h = Harness::start("pausenest");
    h.guest(1, None);
    h.guest(2, None);
    assert!(h.ping(1, 2, 1), "{}", h.log());
    let of = |args: &[&str]| h.ofctl(&[&["-O", "OpenFlow15"][..], args].concat());
    let echo = "priority=10,cookie=0x5a,in_port=1,icmp,icmp_type=8";
    let cases = [
        (
            "clone",
            format!(
                "{echo},actions=clone(load:0x2a->NXM_NX_REG1[],controller(pause),resubmit(,2))"
            ),
        ),
        ("group", format!("{echo},actions=group:1")),
        (
            "check_pkt_larger",
            format!(
                "{echo},actions=check_pkt_larger(1500)->NXM_NX_REG0[0],\
                 load:0x2a->NXM_NX_REG1[],controller(pause),resubmit(,2)"
            ),
        ),
    ];
    for (what, flow) in &cases {
        of(&["del-flows", "br0"]);
        of(&["del-groups", "br0"]);
        of(&[
            "add-group",
            "br0",
            "group_id=1,type=all,bucket=bucket_id=0,actions=resubmit(,3)",
        ]);
        of(&["add-flow", "br0", "priority=0,actions=NORMAL"]);
        of(&["add-flow", "br0", flow]);
        of(&[
            "add-flow",
            "br0",
            "table=3,priority=10,actions=load:0x2a->NXM_NX_REG1[],controller(pause),resubmit(,2)",
        ]);
        of(&[
            "add-flow",
            "br0",
            "table=2,priority=10,reg1=0x2a,actions=output:2",
        ]);
        of(&["add-flow", "br0", "table=2,priority=1,actions=drop"]);
        assert!(
            h.ping_fails(1, 2),
            "{what}: a paused ping crossed without a resume"
        );
        let trace = h.appctl(&[
            "ofproto/trace",
            "br0",
            "in_port=1,icmp,icmp_type=8,nw_src=10.251.0.1,nw_dst=10.251.0.2",
        ]);
        assert!(trace.contains("pausing"), "{what}: {trace}");
        assert!(
            trace.contains("NXT_RESUME goes on with: resubmit(,2)"),
            "{what}: {trace}"
        );

        let mon = common::OfctlMonitor::start(
            h.rundir(),
            "OpenFlow15",
            "resume",
            &format!("resume-{what}"),
        );
        h.wait_for("a ping resumed by ovs-ofctl", || h.ping(1, 2, 1));
        let t = mon.text();
        assert!(t.contains("NXT_RESUME"), "{what}: {t}");
        assert!(t.contains("reg1=0x2a"), "{what}: {t}");
        let table = if *what == "group" { 3 } else { 0 };
        let cookie = if *what == "group" { 0 } else { 90 };
        assert!(
            t.contains(&format!(
                "continuation.actions=unroll_xlate(table={table}, cookie={cookie}),resubmit(,2)"
            )),
            "{what}: {t}"
        );
        assert!(!t.contains("decode error"), "{what}: {t}");
        assert!(!t.contains("OFPT_ERROR"), "{what}: {t}");
        drop(mon);
    }
}

/// A raw OpenFlow 1.3 peer on the management socket: takes the paused
/// packet-in of a packet-out and resumes it; a continuation naming
/// another bridge, none at all, or cut short is refused (`NXR_STALE`,
/// `NXR_STALE`, `OFPBPC_BAD_LEN`), and xennetd keeps serving.
#[test]
fn forged_and_truncated_continuations_are_refused() {
    common::require_tool("ovs-ofctl", "openvswitch-common");
    let mut h = Harness::start("pauseforge");
    h.guest(1, None);
    h.guest(2, None);
    add_flows(&h, "OpenFlow13");
    let mgmt = h.rundir().join("br0.mgmt");
    let mut s = std::os::unix::net::UnixStream::connect(&mgmt).unwrap();
    // A guard against a hang, not a timing assertion.
    s.set_read_timeout(Some(common::WAIT)).unwrap();
    let v = 4u8;
    let send = |s: &mut std::os::unix::net::UnixStream, m: &Msg, xid: u32| {
        let mut out = Vec::new();
        xennet_openflow::encode(m, v, xid, &mut out).unwrap();
        s.write_all(&out).unwrap();
    };
    let mut hello = Vec::new();
    xennet_openflow::header::encode_hello(v, 1 << v, 1, &mut hello);
    s.write_all(&hello).unwrap();
    let _ = read_msg(&mut s);
    send(&mut s, &Msg::NxSetPacketInFormat(2), 2);
    // Service connections get packet-ins once miss_send_len is set.
    send(
        &mut s,
        &Msg::SetConfig(xennet_openflow::model::SwitchConfig {
            flags: 0,
            miss_send_len: 0xffff,
        }),
        3,
    );
    // An echo request from guest 1's MAC to guest 2 through the table.
    let frame = hex(&icmp_echo_request(
        guest_mac(1),
        guest_mac(2),
        [10, 251, 0, 1],
        [10, 251, 0, 2],
        (0, 1),
    ));
    h.ofctl(&[
        "-O",
        "OpenFlow13",
        "packet-out",
        "br0",
        "1",
        "table",
        &frame,
    ]);
    let pin = loop {
        let raw = read_msg(&mut s);
        if let Ok((_, Msg::NxPacketIn2(p))) = xennet_openflow::decode(&raw) {
            break p;
        }
    };
    let cont = pin.continuation.clone().expect("a continuation");
    assert_eq!(pin.userdata, vec![0x0a, 0x0b]);
    assert_eq!(cont.stack, vec![0x2a]);

    // The error xennetd answers `xid` with, as `ovs-ofctl ofp-print`
    // names it.
    let expect_err = |s: &mut std::os::unix::net::UnixStream, xid: u32, want: &str| loop {
        let raw = read_msg(s);
        if u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) != xid {
            continue;
        }
        assert_eq!(raw[1], 1, "an error for xid {xid}: {raw:02x?}");
        let hexs: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let p = std::process::Command::new("ovs-ofctl")
            .args(["ofp-print", &hexs])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&p.stdout);
        let first = text.lines().next().unwrap_or_default();
        assert!(first.contains(want), "xid {xid}: {text}");
        break;
    };
    // Another bridge instance: stale.
    let mut forged = pin.clone();
    forged.continuation.as_mut().unwrap().bridge[0] ^= 1;
    send(&mut s, &Msg::NxResume(forged), 10);
    expect_err(&mut s, 10, "NXR_STALE");
    // No continuation: stale, as OVS.
    let mut none = pin.clone();
    none.continuation = None;
    send(&mut s, &Msg::NxResume(none), 11);
    expect_err(&mut s, 11, "NXR_STALE");
    // Cut short: the continuation property claims more than is there.
    let mut out = Vec::new();
    xennet_openflow::encode(&Msg::NxResume(pin.clone()), v, 12, &mut out).unwrap();
    let at = out
        .windows(4)
        .position(|w| w[0] == 0 && w[1] == 8 && u16::from_be_bytes([w[2], w[3]]) > 8)
        .expect("the continuation property");
    let len = u16::from_be_bytes([out[at + 2], out[at + 3]]);
    out[at + 2..at + 4].copy_from_slice(&(len + 64).to_be_bytes());
    s.write_all(&out).unwrap();
    expect_err(&mut s, 12, "OFPBPC_BAD_LEN");
    // Garbage inside: an unknown continuation property.
    let mut junk = out.clone();
    junk[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
    junk[at + 8..at + 10].copy_from_slice(&0x8077u16.to_be_bytes());
    junk[4..8].copy_from_slice(&13u32.to_be_bytes());
    s.write_all(&junk).unwrap();
    expect_err(&mut s, 13, "OFPBPC_BAD_TYPE");

    // The genuine one resumes: the registers loaded on both sides of the
    // pause and the stack entry steer it through table 2's flow.
    send(&mut s, &Msg::NxResume(pin.clone()), 14);
    send(&mut s, &Msg::BarrierRequest, 15);
    loop {
        let raw = read_msg(&mut s);
        let xid = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
        assert!(!(xid == 14 && raw[1] == 1), "resume refused: {raw:02x?}");
        if xid == 15 {
            break;
        }
    }
    let dump = h.ofctl(&["-O", "OpenFlow13", "dump-flows", "br0", "table=2"]);
    let line = dump
        .lines()
        .find(|l| l.contains("reg3=0x2a"))
        .unwrap_or_else(|| panic!("{dump}"));
    assert!(line.contains("n_packets=1,"), "{dump}");
    assert!(h.daemon_alive(), "{}", h.log());
}
