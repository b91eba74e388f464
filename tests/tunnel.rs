//! Userspace tunnelling against real peers, as in OVS's
//! userspace-tunneling howto: xennetd (in its namespace) has `br-int`
//! with a guest (a namespace behind a veth) and a tunnel port, and
//! `br-phy` whose internal port holds the underlay address and whose veth
//! reaches a "remote host" namespace. There Linux's `vxlan` device with
//! VNI 42 terminates the tunnel: the guest pings the remote device's
//! address through it (with a fixed and a flow-based remote and key),
//! routes come from the kernel, next hops are resolved by xennetd (ARP),
//! and the appctl commands show them. This machine's kernel has no Geneve
//! driver (CONFIG_GENEVE unset), so Geneve is not checked against a
//! kernel device here.

mod common;

use std::process::{Command, Output};

use common::{run_ok, Harness};
use xennet_ovsdb::test_utils::OvsdbServer;

/// Namespaces, removed when dropped.
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip_in(ns: &str, args: &[&str]) {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run_ok("ip", &all);
}

fn in_ns(ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    Command::new("ip").args(&all).output().unwrap()
}

/// One ping from namespace `ns` to `addr`.
fn ping(ns: &str, addr: &str) -> bool {
    in_ns(ns, &["ping", "-c", "1", "-W", "1", addr])
        .status
        .success()
}

/// Ping from `ns` to `addr` until it answers (for up to a minute), else
/// fail with the tunnel tables and counters.
fn ping_until(h: &Harness, ns: &str, addr: &str, what: &str) {
    let end = std::time::Instant::now() + common::WAIT;
    while std::time::Instant::now() < end {
        if ping(ns, addr) {
            return;
        }
    }
    panic!(
        "{what}: no answer\n{}\n{}\n{}\n{}\n{}\n{}",
        h.appctl(&["tnl/ports/show", "-v"]),
        h.appctl(&["ovs/route/show"]),
        h.appctl(&["tnl/neigh/show"]),
        h.appctl(&["dpctl/dump-flows", "br-int"]),
        h.appctl(&["dpctl/dump-flows", "br-phy"]),
        h.log()
    );
}

/// 8 MiB of TCP with iperf3 from `client` to `addr` (a server in
/// `server`), or the other way with `reverse`: the bytes the sender got
/// through (all of them, or 0 if the transfer failed) and the bytes the
/// receiver had counted when the test ended.
fn iperf(client: &str, server: &str, addr: &str, reverse: bool) -> (u64, u64) {
    let srv = common::ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", server, "iperf3", "-s", "-1", "-p", "5299"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let listening = || {
        let o = in_ns(server, &["ss", "-ltn"]);
        String::from_utf8_lossy(&o.stdout).contains(":5299")
    };
    let end = std::time::Instant::now() + common::WAIT;
    while !listening() {
        assert!(
            std::time::Instant::now() < end,
            "iperf3 -s in {server} never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut args = vec![
        "timeout", "60", "iperf3", "-c", addr, "-p", "5299", "-n", "8M", "-J",
    ];
    if reverse {
        args.push("-R");
    }
    let o = in_ns(client, &args);
    drop(srv);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let got = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let sent = v["end"]["sum_sent"]["bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "iperf3 {addr} reverse={reverse}: sent {}, received {got}, retransmits {}",
        sent, v["end"]["sum_sent"]["retransmits"]
    );
    if got == 0 {
        eprintln!(
            "iperf3: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    (sent, got)
}

struct Topo {
    db: OvsdbServer,
    h: Harness,
    guest: String,
    remote: String,
    _netns: Netns,
}

/// xennetd with br-int (guest veth `g1`) and br-phy (underlay veth `u1`,
/// address 172.31.9.1/24 on the internal port); the guest namespace has
/// 10.99.0.1/24 (MTU 1400: room for the outer headers), the remote
/// namespace 172.31.9.2/24 on its `eth0`.
fn topo(test: &str) -> Topo {
    common::require_prerequisites();
    let db = OvsdbServer::start(test);
    let h = Harness::start_with(test, &["--db", &db.addr()]);
    let dns = h
        .daemon_netns()
        .expect("xennetd in its own namespace")
        .to_owned();
    let tag = format!("{test}{}", std::process::id() % 100_000);
    let guest = format!("{tag}g");
    let remote = format!("{tag}r");
    let netns = Netns(vec![guest.clone(), remote.clone()]);
    for (ns, outer, addr, mtu) in [
        (&guest, "g1", "10.99.0.1/24", "1400"),
        (&remote, "u1", "172.31.9.2/24", "1500"),
    ] {
        run_ok("ip", &["netns", "add", ns]);
        ip_in(
            &dns,
            &[
                "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        );
        ip_in(&dns, &["link", "set", outer, "up"]);
        ip_in(ns, &["addr", "add", addr, "dev", "eth0"]);
        ip_in(ns, &["link", "set", "eth0", "mtu", mtu, "up"]);
        ip_in(ns, &["link", "set", "lo", "up"]);
    }
    db.vsctl_ok(&["add-br", "br-int", "--", "add-br", "br-phy"]);
    db.vsctl_ok(&["add-port", "br-int", "g1", "--", "add-port", "br-phy", "u1"]);
    ip_in(&dns, &["addr", "add", "172.31.9.1/24", "dev", "br-phy"]);
    ip_in(&dns, &["link", "set", "br-phy", "up"]);
    Topo {
        db,
        h,
        guest,
        remote,
        _netns: netns,
    }
}

#[test]
fn vxlan_to_a_linux_vxlan_device() {
    let t = topo("tnl");
    let (db, h) = (&t.db, &t.h);
    let get = |r: &str, c: &str| db.vsctl_no_wait(&["get", "interface", r, c]);

    // The far end: Linux's VXLAN device.
    ip_in(
        &t.remote,
        &[
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "42",
            "remote",
            "172.31.9.1",
            "local",
            "172.31.9.2",
            "dstport",
            "4789",
        ],
    );
    ip_in(&t.remote, &["addr", "add", "10.99.0.2/24", "dev", "vx0"]);
    ip_in(&t.remote, &["link", "set", "vx0", "mtu", "1400", "up"]);

    // Options xennetd cannot honour are refused in `error`.
    db.vsctl_ok(&[
        "add-port",
        "br-int",
        "tv",
        "--",
        "set",
        "interface",
        "tv",
        "type=vxlan",
        "options:remote_ip=172.31.9.2",
        "options:key=42",
        "options:bogus=1",
    ]);
    assert_eq!(get("tv", "ofport"), "-1");
    assert_eq!(get("tv", "error"), "\"tv: unknown vxlan argument 'bogus'\"");
    // Fixed: an ofport, link up, and traffic.
    db.vsctl_ok(&["remove", "interface", "tv", "options", "bogus"]);
    let of: i64 = get("tv", "ofport").parse().unwrap();
    assert!(of > 0, "ofport {of}\n{}", h.log());
    assert_eq!(get("tv", "error"), "[]");
    ping_until(h, &t.guest, "10.99.0.2", "ping through VXLAN");
    let show = h.ofctl(&["show", "br-int"]);
    assert!(show.contains(&format!(" {of}(tv): ")), "{show}");
    // A second port alike is ambiguous on receive: refused, as OVS does.
    db.vsctl_ok(&[
        "add-port",
        "br-int",
        "tw",
        "--",
        "set",
        "interface",
        "tw",
        "type=vxlan",
        "options:remote_ip=172.31.9.2",
        "options:key=42",
    ]);
    assert_eq!(get("tw", "ofport"), "-1");
    assert_eq!(
        get("tw", "error"),
        "\"tw: attempting to add tunnel port with same config as port 'tv'\""
    );
    db.vsctl_ok(&["del-port", "br-int", "tw"]);

    // TCP both ways: the guest's TSO super-frames are segmented before
    // encapsulation; the remote's arrive as MSS-sized outer packets.
    for reverse in [false, true] {
        let (sent, got) = iperf(&t.guest, &t.remote, "10.99.0.2", reverse);
        assert!(
            sent >= 8 << 20 && got > 0,
            "iperf3 (reverse={reverse}) moved {sent} bytes, {got} counted\n{}\n{}\n{}",
            h.appctl(&["tnl/ports/show", "-v"]),
            db.vsctl_no_wait(&["list", "interface"]),
            h.log()
        );
    }

    let routes = h.appctl(&["ovs/route/show"]);
    assert!(
        routes.contains("Cached: 172.31.9.0/24 dev br-phy SRC 172.31.9.1"),
        "{routes}"
    );
    let neigh = h.appctl(&["tnl/neigh/show"]);
    assert!(
        neigh.contains("172.31.9.2") && neigh.contains("br-phy"),
        "{neigh}"
    );
    let ports = h.appctl(&["tnl/ports/show", "-v"]);
    assert!(ports.contains("vxlan_sys_4789 (4789) ref_cnt=1"), "{ports}");
    assert!(
        ports.contains("tv: vxlan remote_ip=172.31.9.2 in_key=42"),
        "{ports}"
    );
    // The packets crossed the tunnel port, both ways.
    h.wait_for("tunnel port statistics", || {
        let s = get("tv", "statistics");
        !s.contains("rx_packets=0") && !s.contains("tx_packets=0") && s.contains("rx_packets")
    });

    // A user route, shown and removed.
    assert_eq!(
        h.appctl(&["ovs/route/add", "10.200.0.0/16", "br-phy", "172.31.9.2"]),
        "OK\n"
    );
    assert!(h
        .appctl(&["ovs/route/show"])
        .contains("User: 10.200.0.0/16 dev br-phy GW 172.31.9.2 SRC 172.31.9.1"));
    assert_eq!(h.appctl(&["ovs/route/del", "10.200.0.0/16"]), "OK\n");
    assert_eq!(h.appctl(&["tnl/neigh/flush"]), "OK\n");
    assert!(!h.appctl(&["tnl/neigh/show"]).contains("172.31.9.2"));
    // Resolved again on the next packet.
    ping_until(h, &t.guest, "10.99.0.2", "ping after a neighbour flush");

    // A VNI nobody uses: the remote's packets are dropped and counted.
    db.vsctl_ok(&["set", "interface", "tv", "options:key=43"]);
    assert!(!ping(&t.remote, "10.99.0.1"));
    h.wait_for("no_port counted", || {
        !h.appctl(&["tnl/ports/show", "-v"]).contains("no_port: 0")
    });

    // Flow-based remote and key: OpenFlow sets tun_dst and tun_id.
    db.vsctl_ok(&["del-port", "br-int", "tv"]);
    db.vsctl_ok(&[
        "add-port",
        "br-int",
        "tf",
        "--",
        "set",
        "interface",
        "tf",
        "type=vxlan",
        "options:remote_ip=flow",
        "options:key=flow",
        "ofport_request=9",
    ]);
    let g1 = get("g1", "ofport");
    h.ofctl(&["del-flows", "br-int"]);
    h.ofctl(&[
        "add-flow",
        "br-int",
        &format!(
            "in_port={g1},actions=set_field:42->tun_id,set_field:172.31.9.2->tun_dst,output:9"
        ),
    ]);
    h.ofctl(&[
        "add-flow",
        "br-int",
        &format!("in_port=9,tun_id=42,actions=output:{g1}"),
    ]);
    ping_until(h, &t.guest, "10.99.0.2", "ping through flow-based VXLAN");
    let flows = h.appctl(&["dpctl/dump-flows", "br-int"]);
    assert!(flows.contains("set(tunnel(tun_id=0x2a))"), "{flows}");
}

/// Geneve against Open vSwitch's userspace datapath (ovs-vswitchd, netdev
/// bridges) as the remote host, itself set up as the userspace-tunneling
/// howto says: its `brp` holds 172.31.9.2 and has the veth, its `bri` has
/// a Geneve port with VNI 42 back to xennetd and 10.99.0.2 on its
/// internal port.
#[test]
fn geneve_to_open_vswitch_userspace() {
    to_open_vswitch("tgv", "geneve", false);
}

/// Geneve options end to end with ovs-vswitchd's userspace datapath: both
/// bridges map OVN's option (class 0x0102, type 0x80: critical, 4 bytes)
/// to `tun_metadata0`; each side sets its own value on encapsulation
/// (`set_field:..->tun_metadata0`) and takes from the tunnel only packets
/// that carry the other's value (anything else is dropped), so a ping
/// answers only if xennetd writes the option OVS matches and decodes the
/// one OVS writes.
#[test]
fn geneve_options_to_open_vswitch_userspace() {
    to_open_vswitch("tgo", "geneve", true);
}

/// GRE (key 42), the same way (the kernel here has no gretap either).
#[test]
fn gre_to_open_vswitch_userspace() {
    to_open_vswitch("tgr", "gre", false);
}

/// Tunnel type `kind` between xennetd and ovs-vswitchd's userspace
/// datapath: ping both ways. With `tlv`, through `tun_metadata0` matched
/// and set on both sides (see [`geneve_options_to_open_vswitch_userspace`]).
fn to_open_vswitch(test: &str, kind: &str, tlv: bool) {
    let t = topo(test);
    let (db, h) = (&t.db, &t.h);
    let get = |r: &str, c: &str| db.vsctl_no_wait(&["get", "interface", r, c]);
    let rdb = OvsdbServer::start(&format!("{test}remote"));
    let rundir = rdb.dir().to_owned();
    let vswitchd = common::ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &t.remote, "ovs-vswitchd"])
            .arg(rdb.addr())
            .arg(format!("--pidfile={}", rundir.join("vs.pid").display()))
            .arg(format!("--unixctl={}", rundir.join("vs.ctl").display()))
            .arg(format!("--log-file={}", rundir.join("vs.log").display()))
            .args(["-vconsole:off", "--no-chdir"])
            .env("OVS_RUNDIR", &rundir)
            .env("OVS_LOGDIR", &rundir)
            .env("OVS_DBDIR", &rundir)
            .spawn()
            .expect("starting ovs-vswitchd"),
    );
    rdb.vsctl_ok(&[
        "add-br",
        "brp",
        "--",
        "set",
        "bridge",
        "brp",
        "datapath_type=netdev",
        "--",
        "add-port",
        "brp",
        "eth0",
        "--",
        "add-br",
        "bri",
        "--",
        "set",
        "bridge",
        "bri",
        "datapath_type=netdev",
        "--",
        "add-port",
        "bri",
        "gnv",
        "--",
        "set",
        "interface",
        "gnv",
        &format!("type={kind}"),
        "options:remote_ip=172.31.9.1",
        "options:key=42",
    ]);
    ip_in(&t.remote, &["addr", "del", "172.31.9.2/24", "dev", "eth0"]);
    ip_in(&t.remote, &["addr", "add", "172.31.9.2/24", "dev", "brp"]);
    ip_in(&t.remote, &["link", "set", "brp", "up"]);
    ip_in(&t.remote, &["addr", "add", "10.99.0.2/24", "dev", "bri"]);
    ip_in(&t.remote, &["link", "set", "bri", "mtu", "1400", "up"]);

    db.vsctl_ok(&[
        "add-port",
        "br-int",
        "tg",
        "--",
        "set",
        "interface",
        "tg",
        &format!("type={kind}"),
        "options:remote_ip=172.31.9.2",
        "options:key=42",
    ]);
    assert!(get("tg", "ofport").parse::<i64>().unwrap() > 0);
    if tlv {
        let map = "{class=0x102,type=0x80,len=4}->tun_metadata0";
        let bri = format!("unix:{}", rundir.join("bri.mgmt").display());
        let ofctl = |args: &[&str]| {
            let o = Command::new("ovs-ofctl").args(args).output().unwrap();
            assert!(o.status.success(), "ovs-ofctl {args:?}: {o:?}");
        };
        ofctl(&["add-tlv-map", &bri, map]);
        ofctl(&["del-flows", &bri]);
        for f in [
            "priority=10,in_port=gnv,tun_metadata0=0x1234,actions=LOCAL",
            "priority=5,in_port=gnv,actions=drop",
            "priority=10,in_port=LOCAL,actions=set_field:0x5678->tun_metadata0,output:gnv",
        ] {
            ofctl(&["add-flow", &bri, f]);
        }
        h.ofctl(&["add-tlv-map", "br-int", map]);
        h.ofctl(&["del-flows", "br-int"]);
        for f in [
            "priority=10,in_port=tg,tun_metadata0=0x5678,actions=output:g1",
            "priority=5,in_port=tg,actions=drop",
            "priority=10,in_port=g1,actions=set_field:0x1234->tun_metadata0,output:tg",
        ] {
            h.ofctl(&["add-flow", "br-int", f]);
        }
    }
    ping_until(
        h,
        &t.guest,
        "10.99.0.2",
        &format!("ping through {kind} to OVS"),
    );
    if tlv {
        // The option was decoded into the key and matched.
        let flows = h.ofctl(&["dump-flows", "br-int"]);
        let hit = flows
            .lines()
            .find(|l| l.contains("tun_metadata0=0x5678"))
            .unwrap_or_default();
        assert!(!hit.contains("n_packets=0,"), "{flows}");
        let c = h.appctl(&["tnl/ports/show", "-v"]);
        assert!(c.contains("geneve_critical: 0"), "{c}");
    }
    let ports = h.appctl(&["tnl/ports/show", "-v"]);
    assert!(
        ports.contains(&format!("tg: {kind} remote_ip=172.31.9.2")),
        "{ports}"
    );
    // And the other way: OVS's host pings the guest.
    ping_until(h, &t.remote, "10.99.0.1", "ping from OVS's side");
    drop(vswitchd);
}

/// VXLAN over an IPv6 underlay to Linux's vxlan device: the next hop is
/// resolved by neighbour solicitation, outer UDP checksums are on (Linux
/// refuses zero ones over IPv6).
#[test]
fn vxlan_over_ipv6_to_a_linux_vxlan_device() {
    let t = topo("tv6");
    let (db, h) = (&t.db, &t.h);
    let dns = h.daemon_netns().unwrap().to_owned();
    ip_in(
        &dns,
        &["addr", "add", "fd00:9::1/64", "nodad", "dev", "br-phy"],
    );
    ip_in(
        &t.remote,
        &["addr", "add", "fd00:9::2/64", "nodad", "dev", "eth0"],
    );
    ip_in(
        &t.remote,
        &[
            "link",
            "add",
            "vx6",
            "type",
            "vxlan",
            "id",
            "7",
            "remote",
            "fd00:9::1",
            "local",
            "fd00:9::2",
            "dstport",
            "4789",
        ],
    );
    ip_in(&t.remote, &["addr", "add", "10.99.0.2/24", "dev", "vx6"]);
    ip_in(&t.remote, &["link", "set", "vx6", "mtu", "1400", "up"]);
    db.vsctl_ok(&[
        "add-port",
        "br-int",
        "t6",
        "--",
        "set",
        "interface",
        "t6",
        "type=vxlan",
        "options:remote_ip=fd00:9::2",
        "options:key=7",
    ]);
    ping_until(h, &t.guest, "10.99.0.2", "ping through VXLAN over IPv6");
    let neigh = h.appctl(&["tnl/neigh/show"]);
    assert!(neigh.contains("fd00:9::2"), "{neigh}");
    assert!(h
        .appctl(&["ovs/route/show"])
        .contains("Cached: fd00:9::/64 dev br-phy SRC fd00:9::1"));
    let (sent, got) = iperf(&t.guest, &t.remote, "10.99.0.2", false);
    assert!(
        sent >= 8 << 20 && got > 0,
        "iperf3 moved {sent} bytes, {got} counted"
    );
}

/// Neutron's layout: the guest on `br-int`, the tunnel on `br-tun`, the
/// two joined by patch ports, the underlay on `br-phy`: three bridges,
/// three forwarding threads, between Linux's vxlan device and the guest.
#[test]
fn vxlan_behind_a_patch_port() {
    let t = topo("tvp");
    let (db, h) = (&t.db, &t.h);
    ip_in(
        &t.remote,
        &[
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "42",
            "remote",
            "172.31.9.1",
            "local",
            "172.31.9.2",
            "dstport",
            "4789",
        ],
    );
    ip_in(&t.remote, &["addr", "add", "10.99.0.2/24", "dev", "vx0"]);
    ip_in(&t.remote, &["link", "set", "vx0", "mtu", "1400", "up"]);
    db.vsctl_ok(&[
        "add-br",
        "br-tun",
        "--",
        "add-port",
        "br-int",
        "patch-tun",
        "--",
        "set",
        "interface",
        "patch-tun",
        "type=patch",
        "options:peer=patch-int",
        "--",
        "add-port",
        "br-tun",
        "patch-int",
        "--",
        "set",
        "interface",
        "patch-int",
        "type=patch",
        "options:peer=patch-tun",
        "--",
        "add-port",
        "br-tun",
        "tv",
        "--",
        "set",
        "interface",
        "tv",
        "type=vxlan",
        "options:remote_ip=172.31.9.2",
        "options:key=42",
    ]);
    ping_until(
        h,
        &t.guest,
        "10.99.0.2",
        "ping through br-int, br-tun and br-phy",
    );
    // TSO super-frames cross the patch pair whole and are segmented at the
    // tunnel port.
    for reverse in [false, true] {
        let (sent, got) = iperf(&t.guest, &t.remote, "10.99.0.2", reverse);
        assert!(
            sent >= 8 << 20 && got > 0,
            "iperf3 (reverse={reverse}) moved {sent} bytes, {got} counted"
        );
    }
}
