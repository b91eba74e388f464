//! Stacked VLAN tags through real Linux stacks (issue 15 item 12; with
//! `Open_vSwitch:other_config:vlan-limit=2`):
//! frames with an 802.1ad S-tag over an 802.1Q C-tag (and two 802.1Q
//! tags) sent from guest 1's eth0 on a trunk port reach guest 2 on a
//! trunk port with both tags, through NORMAL; guest 3, on an access port
//! of VLAN 10, receives none of them (OVS `xbundle_includes_vlan`: a
//! stacked frame would leave an access port still carrying its C-tag, a
//! VLAN leak) but does receive a single-tagged VLAN 10 frame, untagged.
//! The kernel has no VLAN devices here (`CONFIG_VLAN_8021Q` is not set),
//! so the frames are written and read through packet sockets
//! (tests/common/vlanframes.py).

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};

use common::{require_tool, ChildGuard, Harness};
use xennet_ovsdb::test_utils::OvsdbServer;

const VLANFRAMES_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/vlanframes.py");

/// A watcher of guest `d`'s eth0: lines "MARK TAGS" (see vlanframes.py).
fn watch(h: &Harness, d: u16) -> (ChildGuard, Receiver<String>) {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h.netns(d),
            "python3",
            VLANFRAMES_PY,
            "watch",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(rx.recv().expect("vlanframes.py watch exited"), "ready");
    (guard, rx)
}

fn send(h: &Harness, d: u16, mark: &str, tags: &[&str]) {
    let mut args = vec!["python3", VLANFRAMES_PY, "send", mark];
    args.extend_from_slice(tags);
    let o = h.exec(d, &args);
    assert!(o.status.success(), "vlanframes.py send {mark}: {o:?}");
}

#[test]
fn qinq_between_trunks_no_leak_to_access_port() {
    require_tool("python3", "python3");
    let db = OvsdbServer::start("qinq");
    let addr = db.addr();
    let mut h = Harness::start_with("qinq", &["--db", &addr]);
    // Two tags in the key (with OVS's default, 1, the inner tag is payload
    // and an access port gets it, on OVS too).
    db.vsctl_ok(&[
        "add-br",
        "br0",
        "--",
        "set",
        "port",
        "br0",
        "tag=4000",
        "--",
        "set",
        "open",
        ".",
        "other_config:vlan-limit=2",
    ]);
    for d in 1..=3u16 {
        h.guest(d, None);
    }
    db.vsctl_ok(&[
        "add-port", "br0", "vif1.0", "--", "add-port", "br0", "vif2.0", "--", "add-port", "br0",
        "vif3.0", "tag=10",
    ]);
    for vif in ["vif1.0", "vif2.0", "vif3.0"] {
        h.wait_for(&format!("{vif} has an ofport"), || {
            db.vsctl_no_wait(&["get", "interface", vif, "ofport"])
                .trim()
                .parse::<i64>()
                .is_ok_and(|p| p > 0)
        });
    }
    let (_w2, rx2) = watch(&h, 2);
    let (_w3, rx3) = watch(&h, 3);
    let (mut got2, mut got3) = (Vec::new(), Vec::new());
    // Stacked frames first, then the single-tagged one: when guest 3 has
    // that one, any leaked stacked frame would have come before it.
    send(&h, 1, "qinq", &["88a8:000a", "8100:0005"]);
    send(&h, 1, "dot1q2", &["8100:200a", "8100:0007"]);
    send(&h, 1, "single", &["8100:000a"]);
    h.wait_for("the frames at guests 2 and 3", || {
        got2.extend(rx2.try_iter());
        got3.extend(rx3.try_iter());
        got2.len() >= 3 && got3.iter().any(|l| l.starts_with("single "))
    });
    // Trunk to trunk: as they were sent (a tag's TPID included).
    for want in [
        "qinq 88a8:000a,8100:0005",
        "dot1q2 8100:200a,8100:0007",
        "single 8100:000a",
    ] {
        assert!(
            got2.iter().any(|l| l == want),
            "guest 2 got {got2:?}, not {want:?}"
        );
    }
    // Access port: the single-tagged frame untagged, nothing stacked.
    assert_eq!(got3, ["single -"], "guest 3 (access VLAN 10) got {got3:?}");
    // The megaflow of a stacked frame matches both tags. The frame is
    // sent again until its megaflow is in the dump: learning a MAC (the
    // first frames' source, a guest's own IPv6 start-up frames)
    // revalidates the megaflows and may remove one between its packet
    // and the dump.
    let mut flows = String::new();
    h.wait_for("the QinQ megaflow matching both tags", || {
        send(&h, 1, "qinq", &["88a8:000a", "8100:0005"]);
        flows = h.appctl(&["dpctl/dump-flows", "br0"]);
        flows.lines().any(|l| {
            l.contains("vlan(tpid=0x88a8,vid=10,pcp=0),vlan(vid=5,pcp=0)")
                && l.ends_with("actions:2")
        })
    });
    h.wait_for("the QinQ frames sent again at guest 2", || {
        got2.extend(rx2.try_iter());
        got2.iter().filter(|l| l.starts_with("qinq ")).count() >= 2
    });
    assert!(
        got2.iter()
            .filter(|l| l.starts_with("qinq "))
            .all(|l| l == "qinq 88a8:000a,8100:0005"),
        "guest 2 got {got2:?}; flows: {flows}"
    );
}

/// TPIDs on the wire (issue 15 item 9 and the TPID in the flow key, OVS
/// `flow->vlans[i].tpid`): `push_vlan:0x88a8` sends an 802.1ad S-tag, and
/// an S-tag popped and pushed back by the commit (the outer tag stripped,
/// the inner one's VID changed: both go and the inner comes back) keeps
/// 0x88a8, where a C-tag in the same place stays 0x8100. Frames from guest
/// 1 to guest 2 through OpenFlow rules added with the real `ovs-ofctl`,
/// read on guest 2 through a packet socket.
#[test]
fn tpids_pushed_and_kept_on_the_wire() {
    require_tool("python3", "python3");
    let db = OvsdbServer::start("tpid");
    let addr = db.addr();
    let mut h = Harness::start_with("tpid", &["--db", &addr]);
    db.vsctl_ok(&[
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "fail-mode=secure",
        "--",
        "set",
        "open",
        ".",
        "other_config:vlan-limit=2",
    ]);
    for d in 1..=2u16 {
        h.guest(d, None);
        let vif = format!("vif{d}.0");
        db.vsctl_ok(&[
            "add-port",
            "br0",
            &vif,
            "--",
            "set",
            "interface",
            &vif,
            &format!("ofport_request={d}"),
        ]);
    }
    for d in 1..=2u16 {
        let vif = format!("vif{d}.0");
        h.wait_for(&format!("{vif} on ofport {d}"), || {
            db.vsctl_no_wait(&["get", "interface", &vif, "ofport"])
                .trim()
                == d.to_string()
        });
    }
    h.ofctl(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "br0",
        "priority=10,in_port=1,vlan_tci=0x0000/0x1000,\
         actions=push_vlan:0x88a8,set_field:4126->vlan_vid,output:2",
    ]);
    h.ofctl(&[
        "-O",
        "OpenFlow10",
        "add-flow",
        "br0",
        "priority=10,in_port=1,dl_vlan=10,actions=strip_vlan,mod_vlan_vid:30,output:2",
    ]);
    let (_w2, rx2) = watch(&h, 2);
    let mut got2 = Vec::new();
    send(&h, 1, "push", &[]);
    send(&h, 1, "ss", &["88a8:000a", "88a8:2005"]);
    send(&h, 1, "sc", &["88a8:000a", "8100:2005"]);
    h.wait_for("the three frames at guest 2", || {
        got2.extend(rx2.try_iter());
        ["push ", "ss ", "sc "]
            .iter()
            .all(|m| got2.iter().any(|l| l.starts_with(m)))
    });
    for want in ["push 88a8:001e", "ss 88a8:201e", "sc 8100:201e"] {
        assert!(
            got2.iter().any(|l| l == want),
            "guest 2 got {got2:?}, not {want:?}\n{}",
            h.appctl(&["dpctl/dump-flows", "br0"])
        );
    }
    // The megaflows tell the S-tagged frame from the C-tagged one. A
    // port change flushes the megaflows (the LOCAL port's "link down"
    // comes up to a second after the bridge is made, later on a loaded
    // machine, and was seen to land between the frames and the dump):
    // the S-tagged frame is sent again until its megaflow is in a dump.
    let s_tagged = "vlan(tpid=0x88a8,vid=10,pcp=0),vlan(tpid=0x88a8,vid=5,pcp=1)";
    h.wait_for(&format!("a megaflow with {s_tagged}"), || {
        let flows = h.appctl(&["dpctl/dump-flows", "br0"]);
        if flows.lines().any(|l| l.contains(s_tagged)) {
            return true;
        }
        send(&h, 1, "ss", &["88a8:000a", "88a8:2005"]);
        false
    });
}
