//! The xenbus side of emulated Xen: xennetd's in-process emulated
//! xenstored, checked with Debian's real xenstore clients
//! (xenstore-utils) through `XENSTORED_PATH`.

mod common;

use std::process::Command;

use common::Harness;

/// Run a real xenstore client tool against the harness's xenstored.
fn xs_tool(h: &Harness, tool: &str, args: &[&str]) -> std::process::Output {
    Command::new(tool)
        .args(args)
        .env("XENSTORED_PATH", h.rundir.join("xenstored.sock"))
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool}: {e}: apt-get install xenstore-utils (scripts/test installs it)")
        })
}

#[test]
fn xennetd_serves_xenstore_to_real_clients() {
    let h = Harness::start("xsd");
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xennetd's emulated xenstored socket", || sock.exists());
    let w = xs_tool(&h, "xenstore-write", &["/tool/xennet-test", "hello"]);
    assert!(w.status.success(), "{w:?}");
    let r = xs_tool(&h, "xenstore-read", &["/tool/xennet-test"]);
    assert!(r.status.success(), "{r:?}");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "hello");
    let ls = xs_tool(&h, "xenstore-ls", &["/"]);
    assert!(ls.status.success(), "{ls:?}");
    let out = String::from_utf8_lossy(&ls.stdout);
    assert!(
        out.contains("local") && out.contains("xennet-test"),
        "{out}"
    );
}
