//! Linux devices as ports: two network namespaces, each behind a veth
//! pair whose outer end is a port of xennetd (AF_PACKET with
//! PACKET_VNET_HDR, received through a TPACKET_V2 ring of frames, or a
//! TPACKET_V3 ring of blocks on request). Offloads stay on, so checksum-partial and TSO frames
//! cross the switch; Open vSwitch's userspace datapath stalls TCP here
//! unless offloads are turned off (PEERS.md §3).

mod common;

use std::process::Command;

use common::{run_ok, start_on_two_veths, Harness, Veths};
use xennet_ovsdb::test_utils::OvsdbServer;

/// Three pings from namespace `ns` to `addr`, 0.2 s apart.
fn ping3(ns: &str, addr: &str) -> std::process::Output {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", addr,
        ])
        .output()
        .unwrap()
}

#[test]
fn veth_ports_carry_ping_and_tcp_with_offloads_on() {
    common::require_prerequisites();
    let tag = format!("xn{}", std::process::id() % 100_000);
    let _v = Veths::two(&tag, |i| vec![format!("10.252.0.{i}/24")]);
    let h = start_on_two_veths("netdev", &tag);
    let ns = |i: u32| format!("{tag}n{i}");
    let ping = ping3(&ns(1), "10.252.0.2");
    assert!(
        ping.status.success(),
        "ping failed: {}\n{}",
        String::from_utf8_lossy(&ping.stdout),
        h.log()
    );
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns(2),
            "iperf3",
            "-s",
            "-1",
            "-B",
            "10.252.0.2",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = common::ChildGuard(server);
    h.wait_for("iperf3 server", || {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns(2), "ss", "-ltn"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains(":5201")
    });
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns(1),
            "iperf3",
            "-c",
            "10.252.0.2",
            "-n",
            "50M",
            "-J",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "iperf3 failed (a TCP stall on checksum-partial frames?): {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        h.log()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sent = v["end"]["sum_sent"]["bytes"].as_u64().unwrap();
    assert!(sent >= 50 * 1024 * 1024, "sent only {sent} bytes");
    let show = h.ofctl(&["-O", "OpenFlow13", "dump-ports", "br0"]);
    assert!(show.contains("2 ports"), "{show}");
    // Port 1 asked for the block ring (src/netdev.rs falls back to
    // recvmmsg, with a warning, where a kernel has none), port 2 has the
    // default frame ring.
    let log = h.log();
    for line in [
        format!("{tag}o1: receiving through a TPACKET_V3 ring"),
        format!("{tag}o2: receiving through a TPACKET_V2 ring"),
    ] {
        assert!(log.contains(&line), "no '{line}' in the log:\n{log}");
    }
}

/// How many lines of xennetd's log contain `what`.
fn count(h: &Harness, what: &str) -> usize {
    h.log().lines().filter(|l| l.contains(what)).count()
}

/// Interface `options:rx-ring` set with the real ovs-vsctl: a system
/// device receives through the TPACKET_V2 frame ring by default, through
/// the TPACKET_V3 block ring once the option is `true` (the port is
/// re-opened under the same ofport), through the frame ring again for
/// any other value (`yes` is logged as not a boolean); ping between two
/// namespaces behind veths on the bridge works in every mode.
#[test]
fn ovs_vsctl_rx_ring_option() {
    common::require_prerequisites();
    let db = OvsdbServer::start("rxring");
    let h = Harness::start_with("rxring", &["--db", &db.addr()]);
    let dns = h.daemon_netns().expect("xennetd in its own namespace");
    let tag = format!("xr{}", std::process::id() % 100_000);
    let mut v = Veths {
        netns: Vec::new(),
        links: Vec::new(),
    };
    // The outer ends live in xennetd's namespace and go with it.
    for i in 1..=2 {
        let ns = format!("{tag}n{i}");
        run_ok("ip", &["netns", "add", &ns]);
        v.netns.push(ns.clone());
        run_ok(
            "ip",
            &[
                "-n",
                dns,
                "link",
                "add",
                &format!("r{i}"),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ],
        );
        run_ok("ip", &["-n", dns, "link", "set", &format!("r{i}"), "up"]);
        let addr = format!("10.253.0.{i}/24");
        run_ok("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        run_ok("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
    }
    let ping = || ping3(&format!("{tag}n1"), "10.253.0.2").status.success();
    db.vsctl_ok(&["add-br", "br0"]);
    // A port before r1, removed again: r1's re-open must keep its number,
    // not take the lowest free one.
    db.vsctl_ok(&[
        "add-port",
        "br0",
        "gap",
        "--",
        "set",
        "interface",
        "gap",
        "type=internal",
    ]);
    db.vsctl_ok(&["add-port", "br0", "r1", "--", "add-port", "br0", "r2"]);
    db.vsctl_ok(&["del-port", "br0", "gap"]);
    let ofport = || db.vsctl_no_wait(&["get", "interface", "r1", "ofport"]);
    let of1 = ofport();
    assert_ne!(of1, "1", "r1 should come after the gap port");
    assert!(
        of1.parse::<i64>().is_ok_and(|p| p > 0),
        "{of1}\n{}",
        h.log()
    );
    // ovs-vsctl returned after xennetd applied the change (cur_cfg).
    let frames = |port: &str| count(&h, &format!("{port}: receiving through a TPACKET_V2 ring"));
    assert_eq!(frames("r1"), 1, "{}", h.log());
    assert_eq!(frames("r2"), 1, "{}", h.log());
    assert_eq!(count(&h, "TPACKET_V3"), 0, "{}", h.log());
    assert!(ping(), "ping through frame ring ports failed\n{}", h.log());

    db.vsctl_ok(&["set", "interface", "r1", "options:rx-ring=true"]);
    assert_eq!(
        count(&h, "r1: receiving through a TPACKET_V3 ring"),
        1,
        "{}",
        h.log()
    );
    assert_eq!(ofport(), of1, "re-opened under another ofport");
    assert_eq!(
        count(&h, "r2: receiving"),
        1,
        "r2 was re-opened\n{}",
        h.log()
    );
    assert!(ping(), "ping through a block ring port failed\n{}", h.log());

    db.vsctl_ok(&["set", "interface", "r1", "options:rx-ring=yes"]);
    assert_eq!(frames("r1"), 2, "{}", h.log());
    assert_eq!(
        count(&h, "options:rx-ring=\"yes\" is not true or false"),
        1,
        "{}",
        h.log()
    );
    assert_eq!(ofport(), of1);
    assert!(
        ping(),
        "ping after going back to the frame ring failed\n{}",
        h.log()
    );
}

/// Receives UDP datagrams on `argv[1]` port `argv[2]` until `argv[3]` have
/// arrived (or none for 60 s: the sender is a Python of its own, slow to
/// start on a loaded machine): prints `ready` once bound, then the count,
/// the bytes and how many were not a whole 1400-byte datagram as the
/// sender made it (a 4-byte sequence number, then 1396 bytes of it mod 251).
const UDP_RECEIVER: &str = r#"
import socket, sys
addr, port, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
s.bind((addr, port))
print('ready', flush=True)
s.settimeout(60)
n = nbytes = bad = 0
seen = set()
while n < want:
    try:
        d = s.recv(65535)
    except socket.timeout:
        break
    n += 1
    nbytes += len(d)
    k = int.from_bytes(d[:4], 'big')
    if len(d) != 1400 or d[4:] != bytes([k % 251]) * 1396 or k in seen:
        bad += 1
    seen.add(k)
print(n, nbytes, bad, flush=True)
"#;

/// Sends 20 UDP GSO super-datagrams of 14,000 bytes (UDP_SEGMENT = 103
/// with a segment size of 1400: 10 datagrams each, numbered 0..199) to
/// `argv[1]` port `argv[2]`, 10 ms apart.
const UDP_GSO_SENDER: &str = r#"
import socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1400)
for i in range(20):
    buf = b''.join((i * 10 + k).to_bytes(4, 'big') + bytes([(i * 10 + k) % 251]) * 1396
                   for k in range(10))
    assert s.sendto(buf, (addr, port)) == 14000
    time.sleep(0.01)
"#;

/// An application in a namespace sending with the UDP_SEGMENT socket
/// option (as QUIC stacks do): its veth hands the outer end UDP GSO
/// super-frames (virtio-net `VIRTIO_NET_HDR_GSO_UDP_L4`) which xennetd
/// must take and cut into datagrams. Both directions (IPv4 into the ring
/// port, IPv6 into the frame ring port): all 200 datagrams of 1400 bytes
/// arrive intact, and no port counts a receive drop.
#[test]
fn veth_ports_carry_udp_gso() {
    common::require_prerequisites();
    let tag = format!("xg{}", std::process::id() % 100_000);
    let _v = Veths::two(&tag, |i| {
        vec![
            format!("10.251.0.{i}/24"),
            format!("fd00:251::{i}/64 nodad"),
        ]
    });
    let h = start_on_two_veths("udpgso", &tag);
    let ns = |i: u32| format!("{tag}n{i}");
    // (sender namespace, receiver namespace, receiver address)
    for (from, to, addr) in [(1, 2, "10.251.0.2"), (2, 1, "fd00:251::1")] {
        let ping = Command::new("ip")
            .args(["netns", "exec", &ns(from), "ping", "-c", "1", "-W", "2"])
            .arg(addr)
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping {addr} failed: {}\n{}",
            String::from_utf8_lossy(&ping.stdout),
            h.log()
        );
        let mut rx = Command::new("ip")
            .args(["netns", "exec", &ns(to), "python3", "-c", UDP_RECEIVER])
            .args([addr, "9999", "200"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(rx.stdout.take().unwrap());
        let _rx = common::ChildGuard(rx);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "receiver did not start");
        let tx = Command::new("ip")
            .args(["netns", "exec", &ns(from), "python3", "-c", UDP_GSO_SENDER])
            .args([addr, "9999"])
            .output()
            .unwrap();
        assert!(
            tx.status.success(),
            "sender failed: {}",
            String::from_utf8_lossy(&tx.stderr)
        );
        line.clear();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(
            line.trim(),
            "200 280000 0",
            "to {addr}: datagrams, bytes, bad ones\n{}",
            h.log()
        );
    }
    // Per port: received frames and receive drops. Each port received 20
    // super-frames (and a few ARP/ND/ping frames), not 200 datagrams: the
    // datagrams were cut here, not by the kernel.
    let ports = h.ofctl(&["-O", "OpenFlow13", "dump-ports", "br0"]);
    let field = |l: &str, name: &str| -> u64 {
        l.split(name)
            .nth(1)
            .and_then(|v| v.split(',').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let rx: Vec<(u64, u64)> = ports
        .lines()
        .filter(|l| l.contains("rx pkts="))
        .map(|l| (field(l, "rx pkts="), field(l, "drop=")))
        .collect();
    assert_eq!(rx.len(), 2, "{ports}");
    for (pkts, drops) in rx {
        assert_eq!(drops, 0, "{ports}\n{}", h.log());
        assert!((20..100).contains(&pkts), "{ports}");
    }
}

/// A Linux port shows its device's own MAC (not netback's) in `ovs-ofctl
/// show`; when the device goes down the port reports `LINK_DOWN` and
/// NORMAL stops flooding to it, and when it comes back it is `LIVE` again.
#[test]
fn linux_ports_report_their_mac_and_link_state() {
    common::require_prerequisites();
    let tag = format!("xl{}", std::process::id() % 100_000);
    let _v = Veths::two(&tag, |i| vec![format!("10.253.0.{i}/24")]);
    let h = start_on_two_veths("netlink", &tag);
    let mac = |dev: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))
            .unwrap()
            .trim()
            .to_string()
    };
    let port_line = |show: &str, i: u32| -> String {
        let mut lines = show.lines();
        lines
            .find(|l| l.contains(&format!("{i}({tag}o{i})")))
            .map(|l| {
                let state = lines
                    .find(|s| s.trim_start().starts_with("state:"))
                    .unwrap_or("");
                format!("{l} {state}")
            })
            .unwrap_or_default()
    };
    for proto in [&["-O", "OpenFlow13"][..], &[][..]] {
        let show = h.ofctl(&[proto, &["show", "br0"]].concat());
        for i in 1..=2 {
            let line = port_line(&show, i);
            assert!(
                line.contains(&format!("addr:{}", mac(&format!("{tag}o{i}")))),
                "{show}"
            );
            assert!(!line.contains("LINK_DOWN"), "{show}");
        }
    }
    let o2 = format!("{tag}o2");
    run_ok("ip", &["link", "set", &o2, "down"]);
    h.wait_for("LINK_DOWN", || {
        port_line(&h.ofctl(&["show", "br0"]), 2).contains("LINK_DOWN")
    });
    // The housekeeping notices within a second: logged, and announced.
    h.wait_for("link down logged", || {
        h.log()
            .contains(&format!("port {o2} (ofport 2): link down"))
    });
    run_ok("ip", &["link", "set", &o2, "up"]);
    h.wait_for("LIVE again", || {
        port_line(&h.ofctl(&["-O", "OpenFlow13", "show", "br0"]), 2).contains("LIVE")
    });
    assert!(
        ping3(&format!("{tag}n1"), "10.253.0.2").status.success(),
        "{}",
        h.log()
    );
}
