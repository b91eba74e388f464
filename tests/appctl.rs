//! ovs-vswitchd's operator commands on xennetd (`xennet-appctl`, the same
//! protocol as `ovs-appctl`): `vlog/list`, `vlog/set` changing what is
//! logged at run time, `vlog/reopen`, `memory/show`, `dpif/show`,
//! `dpctl/show`, `fdb/flush`, `upcall/show`, and `list-commands` naming
//! them all.

mod common;

use std::process::Command;

use common::Harness;

/// `xennet-appctl ARGS` that must fail; its error text.
fn appctl_err(h: &Harness, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xennet-appctl"))
        .arg("--rundir")
        .arg(h.rundir())
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn vlog_set_changes_what_is_logged() {
    let mut h = Harness::start("vlog");
    h.guest(1, None);
    let list = h.appctl(&["vlog/list"]);
    assert!(list.contains("console"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("xennetd") && l.ends_with("INFO")),
        "{list}"
    );
    // A management connection logs at debug level only.
    let connections = |h: &Harness| h.log().matches("br0: connection on").count();
    h.ofctl(&["show", "br0"]);
    assert_eq!(connections(&h), 0, "{}", h.log());
    assert_eq!(h.appctl(&["vlog/set", "xennetd:console:dbg"]), "");
    let list = h.appctl(&["vlog/list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("xennetd") && l.ends_with("DBG")),
        "{list}"
    );
    h.ofctl(&["show", "br0"]);
    h.wait_for("a debug line", || connections(&h) > 0);
    // Back to info: no more.
    assert_eq!(h.appctl(&["vlog/set", "ANY:info"]), "");
    let n = connections(&h);
    h.ofctl(&["show", "br0"]);
    h.appctl(&["version"]);
    assert_eq!(connections(&h), n, "{}", h.log());
    // What xennetd cannot do is refused, not ignored.
    assert!(appctl_err(&h, &["vlog/set", "ANY:syslog:dbg"]).contains("console only"));
    assert!(appctl_err(&h, &["vlog/set", "nosuch:dbg"]).contains("unknown module"));
    assert!(appctl_err(&h, &["vlog/reopen"]).contains("not a file"));
}

#[test]
fn datapath_and_memory_commands_answer_as_ovs() {
    let mut h = Harness::start("dpshow");
    h.guest(1, None);
    h.guest(2, None);
    assert!(h.ping(1, 2, 2), "{}", h.log());
    let dpif = h.appctl(&["dpif/show"]);
    assert!(dpif.starts_with("netdev@xennet: hit:"), "{dpif}");
    assert!(dpif.contains("  br0:\n"), "{dpif}");
    assert!(dpif.contains("    vif1.0 1/1: (xennet-vif)"), "{dpif}");
    let dpctl = h.appctl(&["dpctl/show"]);
    assert!(
        dpctl.contains("netdev@xennet-br0:\n  lookups: hit:"),
        "{dpctl}"
    );
    assert!(dpctl.contains("  port 2: vif2.0 (xennet-vif)"), "{dpctl}");
    // The same megaflows either way. The guests' stacks can add one
    // (router solicitations, MLD reports) or one can expire between the
    // two dumps: dump again until two in a row agree.
    let mut verbose = String::new();
    h.wait_for("brief and verbose dumps of the same megaflows", || {
        let brief = h.appctl(&["dpctl/dump-flows", "br0"]);
        verbose = h.appctl(&["dpctl/dump-flows", "-m", "br0"]);
        brief.lines().count() == verbose.lines().count()
    });
    assert!(verbose.contains("/0"), "no wildcard shown: {verbose}");
    // Refusals as OVS lib/dpctl.c `dpctl_error` words them in
    // ovs-vswitchd: the message, then the errno text in parentheses.
    for (args, msg) in [
        (
            &["dpctl/dump-flows", "nosuch"][..],
            "ovs-vswitchd: datapath not found (Invalid argument)\n",
        ),
        (
            &["dpctl/del-flows", "nosuch"],
            "ovs-vswitchd: datapath not found (Invalid argument)\n",
        ),
        (
            &["dpctl/show", "nosuch"],
            "ovs-vswitchd: opening datapath nosuch failed (No such device)\n",
        ),
        (
            &["dpctl/ct-set-maxconns", "ten"],
            "ovs-vswitchd: maxconns missing or malformed (Invalid argument)\n",
        ),
        (
            &["dpctl/flush-conntrack", "zone=1", "", "", "x"],
            "ovs-vswitchd: invalid arguments (Invalid argument)\n",
        ),
    ] {
        let e = appctl_err(&h, args);
        assert!(e.starts_with(msg), "{args:?}: {e}");
    }
    let upcall = h.appctl(&["upcall/show"]);
    assert!(upcall.contains("flows         : (current "), "{upcall}");
    let mem = h.appctl(&["memory/show"]);
    assert!(
        mem.contains("bridges:1") && mem.contains("ports:2"),
        "{mem}"
    );
    // Both guests' MACs are learned; after the flush at most what the
    // guests' own background traffic relearns in between is there.
    let before = h.appctl(&["fdb/show", "br0"]).lines().count();
    assert!(before >= 3, "{before}");
    assert_eq!(h.appctl(&["fdb/flush"]), "table successfully flushed\n");
    assert!(h.appctl(&["fdb/show", "br0"]).lines().count() < before);
    let cmds = h.appctl(&["list-commands"]);
    for c in [
        "vlog/list",
        "vlog/set",
        "vlog/reopen",
        "memory/show",
        "dpif/show",
        "dpctl/show",
        "fdb/flush",
        "upcall/show",
        "coverage/show",
        "dpctl/del-flows",
    ] {
        assert!(cmds.contains(c), "{c} not in {cmds}");
    }
}
