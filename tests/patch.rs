//! Patch ports (`type=patch`, `options:peer`) set up by the real ovs-vsctl
//! join two bridges, each with its own forwarding thread: real Linux
//! stacks in two namespaces, one behind a veth on br0 and one behind a
//! veth on br1, ping each other across the pair.

mod common;

use std::process::Command;

use common::{run_ok, Harness};
use xennet_ovsdb::test_utils::OvsdbServer;

/// Namespaces, removed when dropped (the veths go with xennetd's).
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// One ping from namespace `ns` to `addr`.
fn ping(ns: &str, addr: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", addr])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn patch_ports_join_two_bridges() {
    common::require_prerequisites();
    let db = OvsdbServer::start("patch");
    let h = Harness::start_with("patch", &["--db", &db.addr()]);
    let dns = h.daemon_netns().expect("xennetd in its own namespace");
    let tag = format!("xp{}", std::process::id() % 100_000);
    let mut netns = Netns(Vec::new());
    for i in 1..=2 {
        let ns = format!("{tag}n{i}");
        run_ok("ip", &["netns", "add", &ns]);
        netns.0.push(ns.clone());
        let outer = format!("v{i}");
        run_ok(
            "ip",
            &[
                "-n", dns, "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ],
        );
        run_ok("ip", &["-n", dns, "link", "set", &outer, "up"]);
        let addr = format!("10.254.7.{i}/24");
        run_ok("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        run_ok("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
    }
    let n1 = format!("{tag}n1");
    let get = |t: &str, r: &str, c: &str| db.vsctl_no_wait(&["get", t, r, c]);
    db.vsctl_ok(&["add-br", "br0", "--", "add-br", "br1"]);
    db.vsctl_ok(&["add-port", "br0", "v1", "--", "add-port", "br1", "v2"]);

    // One end without its peer: an ofport, no error, link down.
    db.vsctl_ok(&[
        "add-port",
        "br0",
        "p0",
        "--",
        "set",
        "interface",
        "p0",
        "type=patch",
        "options:peer=p1",
    ]);
    let of0: i64 = get("interface", "p0", "ofport").parse().unwrap();
    assert!(of0 > 0, "p0 ofport {of0}\n{}", h.log());
    assert_eq!(get("interface", "p0", "error"), "[]");
    h.wait_for("p0 link down", || {
        get("interface", "p0", "link_state") == "down"
    });
    assert!(!ping(&n1, "10.254.7.2"), "no path without the peer");

    // The peer: linked, and the namespaces reach each other.
    db.vsctl_ok(&[
        "add-port",
        "br1",
        "p1",
        "--",
        "set",
        "interface",
        "p1",
        "type=patch",
        "options:peer=p0",
    ]);
    for p in ["p0", "p1"] {
        h.wait_for(&format!("{p} link up"), || {
            get("interface", p, "link_state") == "up"
        });
    }
    h.wait_for("ping across the patch pair", || ping(&n1, "10.254.7.2"));
    let show0 = h.ofctl(&["show", "br0"]);
    assert!(show0.contains(&format!(" {of0}(p0): ")), "{show0}");
    let show1 = h.ofctl(&["show", "br1"]);
    assert!(show1.contains("(p1): "), "{show1}");
    // Counters: what p0 sent, p1 received.
    h.wait_for("patch statistics", || {
        let s0 = get("interface", "p0", "statistics");
        let s1 = get("interface", "p1", "statistics");
        !s0.contains("tx_packets=0") && s0.contains("tx_packets=") && !s1.contains("rx_packets=0")
    });

    // Options OVS refuses: ofport -1 and OVS's message.
    db.vsctl_ok(&[
        "add-port",
        "br0",
        "p2",
        "--",
        "set",
        "interface",
        "p2",
        "type=patch",
    ]);
    assert_eq!(get("interface", "p2", "ofport"), "-1");
    assert_eq!(
        get("interface", "p2", "error"),
        "\"p2: patch type requires valid 'peer' argument\""
    );
    db.vsctl_ok(&["set", "interface", "p2", "options:peer=p2"]);
    assert_eq!(
        get("interface", "p2", "error"),
        "\"p2: patch peer must not be self\""
    );
    db.vsctl_ok(&[
        "set",
        "interface",
        "p2",
        "options:peer=p1",
        "options:extra=1",
    ]);
    assert_eq!(
        get("interface", "p2", "error"),
        "\"p2: patch type takes only a 'peer' argument\""
    );

    // A peer that is not a patch port: the end stays down.
    db.vsctl_ok(&[
        "add-port",
        "br1",
        "i9",
        "--",
        "set",
        "interface",
        "i9",
        "type=internal",
        "--",
        "add-port",
        "br0",
        "p4",
        "--",
        "set",
        "interface",
        "p4",
        "type=patch",
        "options:peer=i9",
    ]);
    assert!(get("interface", "p4", "ofport").parse::<i64>().unwrap() > 0);
    h.wait_for("p4 link down", || {
        get("interface", "p4", "link_state") == "down"
    });

    // Changing the peer re-opens the end: p1 now names p4, p0 goes down.
    db.vsctl_ok(&["set", "interface", "p1", "options:peer=p4"]);
    h.wait_for("p0 down after p1 left it", || {
        get("interface", "p0", "link_state") == "down"
    });
    // And back.
    db.vsctl_ok(&["set", "interface", "p1", "options:peer=p0"]);
    h.wait_for("ping across the patch pair again", || {
        ping(&n1, "10.254.7.2")
    });
    // Deleting one end takes the path away.
    db.vsctl_ok(&["del-port", "br1", "p1"]);
    h.wait_for("p0 down after p1 went", || {
        get("interface", "p0", "link_state") == "down"
    });
    assert!(!ping(&n1, "10.254.7.2"), "no path after del-port");
}
