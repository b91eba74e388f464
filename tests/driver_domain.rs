//! Issue 19 item 1, emulated: xennetd as a driver domain's backend (a
//! domain id other than 0). Guests grant their rings to that domain and
//! write their backend paths under `/local/domain/<nicdom>/backend`, as
//! `vif = ['backend=nicdom,...']` makes libxl do; a guest that grants to
//! another domain is refused with an error that says what is wrong.

mod common;

use common::Harness;

/// The driver domain's id in these tests.
const NICDOM: &str = "7";

fn start(test: &str) -> (Harness, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "xennet-{}-{test}.toml",
        std::process::id() % 100_000
    ));
    std::fs::write(
        &path,
        format!(
            r#"
[[bridge]]
name = "br0"
fail_mode = "standalone"

[emulated_xen]
enabled = true
socket = "xennet-xen.sock"
bridge = "br0"
backend_domid = {NICDOM}
xenstored = "xenstored.sock"

[xen]
mode = "emulated"
bridge = "br0"
hotplug = "self"
"#
        ),
    )
    .unwrap();
    let p = path.to_string_lossy().into_owned();
    let h = Harness::start_with(test, &["--config", &p]);
    h.wait_for("xenstored socket", || {
        h.rundir().join("xenstored.sock").exists()
    });
    (h, path)
}

fn xenstore_sock(h: &Harness) -> String {
    h.rundir()
        .join("xenstored.sock")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn guests_of_a_driver_domain_backend_connect_and_ping() {
    let (mut h, cfg) = start("dd");
    let sock = xenstore_sock(&h);
    for d in [1, 2] {
        h.guest_with(d, &["--xenstore", &sock, "--backend-domid", NICDOM]);
    }
    assert!(
        h.ping(1, 2, 3),
        "guests behind the driver domain do not ping:\n{}",
        h.log()
    );
    let ports = h.appctl(&["xennet/domain-show"]);
    assert!(
        ports.contains("domain 1:") && ports.contains("domain 2:"),
        "{ports}"
    );
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn a_guest_granting_to_another_domain_is_refused_with_a_reason() {
    let (mut h, cfg) = start("ddbad");
    let sock = xenstore_sock(&h);
    // Backend path under the driver domain, grants to domain 0: the
    // backend cannot use them.
    h.guest_spawn(
        3,
        &[
            "--xenstore",
            &sock,
            "--backend-domid",
            NICDOM,
            "--grant-domid",
            "0",
        ],
    );
    h.wait_for("the refusal in xennetd's log", || {
        h.log()
            .contains("did not grant it to this backend, domain 7")
    });
    assert!(h.log().contains("vif3.0"), "{}", h.log());
    let _ = std::fs::remove_file(cfg);
}
