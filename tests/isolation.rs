//! The isolation alert (issue 18 item 2) against the real `ovs-ofctl`
//! and, for port VLANs and the Bridge `status` column, the real
//! `ovsdb-server`/`ovs-vsctl`: each scenario raises the alert naming the
//! right flow (in `ovs-appctl xennet/isolation-show` and the log) and
//! clears it when undone; guard mode refuses the flow-mod instead.

mod common;

use common::Harness;
use xennet_ovsdb::test_utils::OvsdbServer;

/// The gateway the scenarios check (no host has it: only the probes'
/// translation matters).
const GW: &str = "10.251.0.254";

/// Start xennetd on a TOML configuration whose `br0` has `bridge_extra`
/// lines, with guests 1 and 2 (vif1.0 and vif2.0).
fn start(test: &str, bridge_extra: &str) -> (Harness, ConfigFile) {
    start_with(test, bridge_extra, &[])
}

/// [`start`] with more xennetd arguments.
fn start_with(test: &str, bridge_extra: &str, args: &[&str]) -> (Harness, ConfigFile) {
    let path = std::env::temp_dir().join(format!("xennet-iso-{}-{test}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            r#"
[[bridge]]
name = "br0"
fail_mode = "standalone"
{bridge_extra}

[emulated_xen]
enabled = true
socket = "xennet-xen.sock"
bridge = "br0"
backend_domid = 0
xenstored = "xenstored.sock"

[xen]
mode = "emulated"
bridge = "br0"
hotplug = "self"
"#
        ),
    )
    .unwrap();
    let cfg = ConfigFile(path);
    let path = cfg.0.to_string_lossy().into_owned();
    let mut h = Harness::start_with(test, &[&["--config", path.as_str()][..], args].concat());
    h.guest(1, None);
    h.guest(2, None);
    wait_checked(&h, &["vif1.0", "vif2.0"]);
    (h, cfg)
}

/// Removes the configuration file.
struct ConfigFile(std::path::PathBuf);

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn show(h: &Harness) -> String {
    h.appctl(&["xennet/isolation-show", "br0"])
}

/// Wait until a check has probed from every one of `vifs`.
fn wait_checked(h: &Harness, vifs: &[&str]) {
    let want = format!("vifs checked: {}", vifs.join(" "));
    h.wait_for(&want, || show(h).contains(&want));
}

/// Wait for `isolation-show` to list `line`; returns the output.
fn wait_alert(h: &Harness, line: &str) -> String {
    let mut last = String::new();
    h.wait_for(&format!("alert {line:?} (last: {last})"), || {
        last = show(h);
        last.contains(line)
    });
    last
}

/// The (raised, cleared) counters of `isolation-show`.
fn counters(h: &Harness) -> (u64, u64) {
    let s = show(h);
    let n = |key: &str| -> u64 {
        s.split(key)
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {s}"))
    };
    (n("raised "), n("cleared "))
}

fn wait_no_alerts(h: &Harness) {
    h.wait_for("no isolation alerts", || {
        show(h).contains("bridge br0: no isolation alerts")
    });
}

/// The metrics endpoint's text (Prometheus text format), fetched from
/// xennetd's network namespace; its address is in the log.
fn scrape(h: &Harness) -> String {
    let mut url = None;
    h.wait_for("the metrics log line", || {
        url = h
            .log()
            .lines()
            .find_map(|l| l.split("metrics on ").nth(1))
            .map(|u| u.trim().to_owned());
        url.is_some()
    });
    let url = url.unwrap();
    let out = h.daemon_exec(&[
        "python3",
        "-c",
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())",
        &url,
    ]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn ofctl(h: &Harness, args: &[&str]) -> String {
    h.ofctl(&[&["-O", "OpenFlow13"][..], args].concat())
}

#[test]
fn isolation_drop_arp_raises_and_clears() {
    let (h, _cfg) = start("isoarp", &format!("gateway = \"{GW}\""));
    let s = show(&h);
    assert!(
        s.contains("bridge br0: no isolation alerts (essential services: arp,nd,dhcp,gateway=10.251.0.254; guard off)"),
        "{s}"
    );
    // (A vif alone on br0 was cut off from everything for a moment.)
    let before = counters(&h);
    ofctl(
        &h,
        &[
            "add-flow",
            "br0",
            "cookie=0xa1,priority=100,arp,actions=drop",
        ],
    );
    let flow = "cookie=0xa1 table=0 priority=100 match=dl_type=0x0806 actions=drop";
    let s = wait_alert(
        &h,
        &format!("vif1.0 (ofport 1): arp: ARP request for the gateway dropped by {flow}"),
    );
    assert!(
        s.contains(&format!(
            "vif2.0 (ofport 2): arp: ARP request for the gateway dropped by {flow}"
        )),
        "{s}"
    );
    // The gateway needs ARP too; DHCP and ND are untouched.
    assert!(
        s.contains(&format!(
            "vif1.0 (ofport 1): gateway=10.251.0.254: ARP request for the gateway dropped by {flow}"
        )),
        "{s}"
    );
    assert!(!s.contains(": dhcp:") && !s.contains(": nd:"), "{s}");
    assert!(s.contains("bridge br0: 4 isolation alerts"), "{s}");
    let log = h.log();
    assert!(
        log.contains(&format!(
            "br0: isolation: port vif1.0 can no longer reach arp (ARP request for the gateway): dropped by {flow}"
        )),
        "{log}"
    );
    ofctl(&h, &["del-flows", "br0", "cookie=0xa1/-1"]);
    wait_no_alerts(&h);
    let log = h.log();
    assert!(
        log.contains("br0: isolation cleared: port vif1.0 reaches arp again"),
        "{log}"
    );
    assert!(
        log.contains("br0: isolation cleared: port vif2.0 reaches gateway=10.251.0.254 again"),
        "{log}"
    );
    let after = counters(&h);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (4, 4),
        "{}",
        show(&h)
    );
}

#[test]
fn isolation_drop_dhcp_and_drop_all() {
    let (h, _cfg) = start_with(
        "isodhcp",
        "essential_services = \"arp,dhcp\"",
        &["--metrics", "127.0.0.1:0"],
    );
    ofctl(
        &h,
        &[
            "add-flow",
            "br0",
            "cookie=0xd4,priority=200,udp,tp_dst=67,actions=drop",
        ],
    );
    let s = wait_alert(
        &h,
        "vif2.0 (ofport 2): dhcp: DHCPDISCOVER broadcast dropped by cookie=0xd4 table=0 priority=200 match=dl_type=0x0800,nw_proto=17,tp_dst=67 actions=drop",
    );
    assert!(s.contains("bridge br0: 2 isolation alerts"), "{s}");
    assert!(
        h.log().contains("br0: isolation: port vif1.0 can no longer reach dhcp (DHCPDISCOVER broadcast): dropped by cookie=0xd4 table=0 priority=200 match=dl_type=0x0800,nw_proto=17,tp_dst=67 actions=drop"),
        "{}",
        h.log()
    );
    // The metrics endpoint says so too.
    let m = scrape(&h);
    for want in [
        "xennet_bridge_isolation_alerts{bridge=\"br0\"} 2",
        "xennet_bridge_isolation_alert{bridge=\"br0\",port=\"vif1.0\",service=\"dhcp\"} 1",
        "xennet_bridge_isolation_alert{bridge=\"br0\",port=\"vif2.0\",service=\"dhcp\"} 1",
    ] {
        assert!(m.lines().any(|l| l == want), "{want} not in {m}");
    }
    assert!(
        m.lines()
            .any(|l| l.starts_with("xennet_bridge_isolation_alerts_raised_total{bridge=\"br0\"} ")),
        "{m}"
    );
    // Drop-all on top: every service of every vif, named by the new
    // flow (it wins over the DHCP drop).
    ofctl(
        &h,
        &["add-flow", "br0", "cookie=0xff,priority=65535,actions=drop"],
    );
    let all = "cookie=0xff table=0 priority=65535 match=any actions=drop";
    let s = wait_alert(
        &h,
        &format!("vif1.0 (ofport 1): dhcp: DHCPDISCOVER broadcast dropped by {all}"),
    );
    let s = if s.contains("4 isolation alerts") {
        s
    } else {
        wait_alert(&h, "4 isolation alerts")
    };
    for line in [
        format!("vif1.0 (ofport 1): arp: ARP probe for its own address dropped by {all}"),
        format!("vif2.0 (ofport 2): arp: ARP probe for its own address dropped by {all}"),
    ] {
        assert!(s.contains(&line), "{line} not in {s}");
    }
    // Undo the drop-all: the DHCP drop is named again.
    ofctl(&h, &["del-flows", "br0", "cookie=0xff/-1"]);
    wait_alert(
        &h,
        "vif1.0 (ofport 1): dhcp: DHCPDISCOVER broadcast dropped by cookie=0xd4",
    );
    ofctl(&h, &["del-flows", "br0", "cookie=0xd4/-1"]);
    wait_no_alerts(&h);
    assert!(
        h.log()
            .contains("br0: isolation cleared: port vif2.0 reaches dhcp again"),
        "{}",
        h.log()
    );
}

#[test]
fn isolation_shadowed_gateway() {
    let (h, _cfg) = start(
        "isogw",
        &format!("essential_services = \"arp,gateway={GW},tcp={GW}:443\""),
    );
    // The gateway's traffic goes to NORMAL explicitly; a higher-priority
    // flow for the whole subnet shadows it.
    ofctl(
        &h,
        &[
            "add-flow",
            "br0",
            &format!("cookie=0x10,priority=100,ip,nw_dst={GW},actions=NORMAL"),
        ],
    );
    ofctl(
        &h,
        &[
            "add-flow",
            "br0",
            "cookie=0x66,priority=300,ip,nw_dst=10.251.0.0/24,actions=drop",
        ],
    );
    let flow =
        "cookie=0x66 table=0 priority=300 match=dl_type=0x0800,nw_dst=10.251.0.0/24 actions=drop";
    let s = wait_alert(
        &h,
        &format!(
            "vif1.0 (ofport 1): gateway={GW}: ICMP echo request to the gateway dropped by {flow}"
        ),
    );
    assert!(
        s.contains(&format!(
            "vif2.0 (ofport 2): tcp={GW}:443: TCP SYN dropped by {flow}"
        )),
        "{s}"
    );
    // ARP is not IP: untouched.
    assert!(!s.contains(": arp:"), "{s}");
    assert!(
        h.log().contains(&format!("br0: isolation: port vif2.0 can no longer reach gateway={GW} (ICMP echo request to the gateway): dropped by {flow}")),
        "{}",
        h.log()
    );
    ofctl(
        &h,
        &[
            "del-flows",
            "br0",
            "--strict",
            "priority=300,ip,nw_dst=10.251.0.0/24",
        ],
    );
    wait_no_alerts(&h);
    assert!(
        h.log().contains(&format!(
            "br0: isolation cleared: port vif1.0 reaches gateway={GW} again"
        )),
        "{}",
        h.log()
    );
}

/// A service behind a named port: an output elsewhere does not reach
/// it, and a port that is not on the bridge is reported.
#[test]
fn isolation_service_location() {
    let (mut h, _cfg) = start(
        "isoloc",
        &format!("essential_services = \"gateway={GW}@vif3.0,dns=10.251.0.53@eth9\""),
    );
    // eth9 is not on br0: every vif is told so.
    let s = wait_alert(
        &h,
        "vif1.0 (ofport 1): dns=10.251.0.53@eth9: every probe not sent: eth9 (where the service is) is not on the bridge",
    );
    // The router vif3.0 is not there yet either.
    assert!(
        s.contains(&format!(
            "vif2.0 (ofport 2): gateway={GW}@vif3.0: every probe not sent: vif3.0"
        )),
        "{s}"
    );
    h.guest(3, None);
    wait_checked(&h, &["vif1.0", "vif2.0", "vif3.0"]);
    let s = show(&h);
    assert!(!s.contains(&format!("gateway={GW}@vif3.0:")), "{s}");
    // The gateway's traffic steered to vif2.0 instead.
    ofctl(
        &h,
        &[
            "add-flow",
            "br0",
            &format!("cookie=0x22,priority=300,ip,nw_dst={GW},actions=output:2"),
        ],
    );
    let s = wait_alert(
        &h,
        &format!("vif1.0 (ofport 1): gateway={GW}@vif3.0: ICMP echo request to the gateway sent to port 2, not to vif3.0, by cookie=0x22 table=0 priority=300 match=dl_type=0x0800,nw_dst={GW} actions=output:2"),
    );
    // From vif2.0 itself the output is dropped (no hairpin); vif3.0 is
    // where the gateway is, so it is not probed for it.
    assert!(
        s.contains(&format!("vif2.0 (ofport 2): gateway={GW}@vif3.0: ICMP echo request to the gateway dropped by cookie=0x22")),
        "{s}"
    );
    assert!(!s.contains("vif3.0 (ofport 3): gateway="), "{s}");
    ofctl(&h, &["del-flows", "br0", "cookie=0x22/-1"]);
    h.wait_for("the gateway alerts cleared", || {
        !show(&h).contains(&format!("gateway={GW}@vif3.0: "))
    });
    assert!(show(&h).contains("3 isolation alerts"), "{}", show(&h));
}

#[test]
fn isolation_guard_refuses_the_flow_mod() {
    let (h, _cfg) = start(
        "isoguard",
        "essential_services = \"arp,dhcp\"\nisolation_guard = true",
    );
    assert!(show(&h).contains("guard on"), "{}", show(&h));
    let before = ofctl(&h, &["dump-flows", "br0", "--no-stats"]);
    let out = h.ofctl_output(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        "br0",
        "cookie=0xa1,priority=100,arp,actions=drop",
    ]);
    assert!(!out.status.success(), "the guard let the flow in");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OFPFMFC_EPERM"), "{err}");
    assert_eq!(ofctl(&h, &["dump-flows", "br0", "--no-stats"]), before);
    let log = h.log();
    assert!(
        log.contains("br0: isolation guard: refused a flow-mod: port vif1.0 would no longer reach arp (ARP probe for its own address): dropped by cookie=0xa1 table=0 priority=100 match=dl_type=0x0806 actions=drop"),
        "{log}"
    );
    // A bundle that drops ARP among harmless flows: refused as a whole.
    let file = h.rundir.join("bundle.txt");
    std::fs::write(
        &file,
        "cookie=0x7,priority=100,tcp,actions=drop\ncookie=0xa2,priority=100,arp,actions=drop\n",
    )
    .unwrap();
    let out = h.ofctl_output(&[
        "-O",
        "OpenFlow14",
        "--bundle",
        "add-flows",
        "br0",
        &file.to_string_lossy(),
    ]);
    assert!(!out.status.success(), "the guard let the bundle in");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OFPFMFC_EPERM"), "{err}");
    assert_eq!(ofctl(&h, &["dump-flows", "br0", "--no-stats"]), before);
    assert!(
        h.log().contains(
            "br0: isolation guard: refused a bundle: port vif1.0 would no longer reach arp"
        ),
        "{}",
        h.log()
    );
    // A flow that cuts nobody off goes in.
    ofctl(
        &h,
        &[
            "add-flow",
            "br0",
            "cookie=0x7,priority=100,tcp,actions=drop",
        ],
    );
    assert!(
        show(&h).contains("flow-mods and bundles refused by the guard 2"),
        "{}",
        show(&h)
    );
    assert!(show(&h).contains("no isolation alerts"), "{}", show(&h));
}

/// Bridge br0's `status` column once `want` holds for it.
fn wait_status(h: &Harness, db: &OvsdbServer, want: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    h.wait_for("Bridge status", || {
        last = db.vsctl_no_wait(&["get", "bridge", "br0", "status"]);
        want(&last)
    });
    last
}

/// A port VLAN change that strands a port (ovs-vsctl), and the Bridge
/// `status` column.
#[test]
fn isolation_vlan_change_strands_a_port() {
    let db = OvsdbServer::start("isovlan");
    let addr = db.addr();
    let mut h = Harness::start_with("isovlan", &["--db", &addr]);
    db.vsctl_ok(&[
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "other_config:xennet-essential-services=\"arp,dhcp\"",
        "--",
        "set",
        "port",
        "br0",
        "tag=10",
        "--",
        "add-port",
        "br0",
        "vif1.0",
        "tag=10",
        "--",
        "add-port",
        "br0",
        "vif2.0",
        "tag=10",
    ]);
    h.guest(1, None);
    h.guest(2, None);
    wait_checked(&h, &["vif1.0", "vif2.0"]);
    assert!(show(&h).contains("no isolation alerts"), "{}", show(&h));
    // vif1.0 alone on VLAN 20: NORMAL has nowhere to send its broadcasts.
    db.vsctl_ok(&["set", "port", "vif1.0", "tag=20"]);
    let normal =
        "cookie=0x0 table=0 priority=0 match=any actions=NORMAL (NORMAL sent it to no port)";
    let s = wait_alert(
        &h,
        &format!("vif1.0 (ofport 1): dhcp: DHCPDISCOVER broadcast dropped by {normal}"),
    );
    assert!(
        !s.contains("vif2.0 (ofport"),
        "vif2.0 still has br0 on VLAN 10: {s}"
    );
    assert!(
        h.log().contains(&format!("br0: isolation: port vif1.0 can no longer reach arp (ARP probe for its own address): dropped by {normal}")),
        "{}",
        h.log()
    );
    let st = wait_status(&h, &db, |s| s.contains("isolation_alerts"));
    assert!(st.contains("isolation_alerts=\"2\""), "{st}");
    assert!(
        st.contains(&format!(
            "\"isolation:vif1.0:dhcp\"=\"DHCPDISCOVER broadcast dropped by {normal}\""
        )),
        "{st}"
    );
    assert!(st.contains("\"isolation:vif1.0:arp\""), "{st}");
    // Back on VLAN 10: cleared, and the status says so.
    db.vsctl_ok(&["set", "port", "vif1.0", "tag=10"]);
    wait_no_alerts(&h);
    let st = wait_status(&h, &db, |s| !s.contains("isolation"));
    assert!(!st.contains("isolation"), "{st}");
    assert!(
        h.log()
            .contains("br0: isolation cleared: port vif1.0 reaches dhcp again"),
        "{}",
        h.log()
    );
}
