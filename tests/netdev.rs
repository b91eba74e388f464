//! Linux devices as ports: two network namespaces, each behind a veth
//! pair whose outer end is a port of xennetd (AF_PACKET with
//! PACKET_VNET_HDR, received through a TPACKET_V3 ring). Offloads stay
//! on, so checksum-partial and TSO frames cross the switch; Open
//! vSwitch's userspace datapath stalls TCP here unless offloads are
//! turned off (PEERS.md §3).

mod common;

use std::process::Command;

use common::{run_ok, Harness};

/// Namespaces and veths, removed when dropped.
struct Veths {
    netns: Vec<String>,
    links: Vec<String>,
}

impl Drop for Veths {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).status();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn veth_ports_carry_ping_and_tcp_with_offloads_on() {
    common::require_prerequisites();
    let tag = format!("xn{}", std::process::id() % 100_000);
    let mut v = Veths {
        netns: Vec::new(),
        links: Vec::new(),
    };
    for i in 1..=2 {
        let ns = format!("{tag}n{i}");
        let outer = format!("{tag}o{i}");
        run_ok("ip", &["netns", "add", &ns]);
        v.netns.push(ns.clone());
        run_ok(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        );
        v.links.push(outer.clone());
        run_ok("ip", &["link", "set", &outer, "up"]);
        run_ok(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.252.0.{i}/24"),
                "dev",
                "eth0",
            ],
        );
        run_ok("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
    }
    let cfg = std::env::temp_dir().join(format!("xennet-{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"{tag}o1\"\n\
             [[bridge.port]]\nname = \"{tag}o2\"\n[emulated_xen]\nenabled = true\nbridge = \"br0\"\nrepresentors = false\n"
        ),
    )
    .unwrap();
    let h = Harness::start_host_with("netdev", &["--config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&cfg);
    let ns = |i: u32| format!("{tag}n{i}");
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns(1),
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "10.252.0.2",
        ])
        .output()
        .unwrap();
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
    // Both ports received through their mmap'ed rings (src/netdev.rs
    // falls back to recvmmsg, with a warning, where a kernel has none).
    let log = h.log();
    for i in 1..=2 {
        let line = format!("{tag}o{i}: receiving through a TPACKET_V3 ring");
        assert!(log.contains(&line), "no '{line}' in the log:\n{log}");
    }
}
