//! The main job end to end: emulated Xen guests, each a netfront with a
//! real Linux stack behind a tap in its own network namespace, talk
//! through xennetd's netback rings and NORMAL bridge.

mod common;

use common::Harness;

#[test]
fn three_guests_ping_and_carry_tcp() {
    let mut h = Harness::start("ok");
    for d in 1..=3 {
        h.guest(d, None);
    }
    for a in 1..=3u16 {
        for b in 1..=3u16 {
            if a != b {
                assert!(h.ping(a, b, 2), "ping {a} -> {b} failed\n{}", h.log());
            }
        }
    }

    // TCP with checksum-partial frames end to end (NETTXF_csum_blank in,
    // NETRXF_csum_blank out): a stall here is the OVS userspace bug.
    iperf3(&h, 1, 2, 1);

    // Counters: every vif moved packets both ways and dropped nothing.
    let table = h.appctl(&["xennet/vif-show"]);
    for d in 1..=3 {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&format!("vif{d}.0")))
            .unwrap_or_else(|| panic!("vif{d}.0 missing from\n{table}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[4], "up", "{line}");
        let from_guest: u64 = cols[5].parse().unwrap();
        let to_guest: u64 = cols[7].parse().unwrap();
        assert!(from_guest > 0 && to_guest > 0, "{line}");
        assert_eq!(cols[11], "0", "errors on {line}");
    }
    // NORMAL learned the three guests; the fast path holds megaflows.
    let fdb = h.appctl(&["fdb/show", "br0"]);
    for d in 1..=3 {
        assert!(fdb.contains(&format!("00:16:3e:00:0{d}:00")), "{fdb}");
    }
    let stats = h.appctl(&["dpif-netdev/pmd-stats-show"]);
    let counter = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (emc, megaflow) = (counter("emc hits: "), counter("megaflow hits: "));
    assert!(
        emc > 1000 && megaflow > 0,
        "the EMC and megaflow cache should carry the TCP stream:\n{stats}"
    );
}

/// 20 MiB of TCP from guest `a` to guest `b` over `streams` parallel
/// connections with iperf3; asserts that it all got through.
fn iperf3(h: &Harness, a: u16, b: u16, streams: u32) {
    let server = std::process::Command::new("ip")
        .args(["netns", "exec", &h.netns(b), "iperf3", "-s", "-1", "-B"])
        .arg(Harness::ip_of(b))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = scopeguard(server);
    h.wait_for("iperf3 server", || {
        let o = h.exec(b, &["ss", "-ltn"]);
        String::from_utf8_lossy(&o.stdout).contains(":5201")
    });
    let streams = streams.to_string();
    let out = h.exec(
        a,
        &[
            "iperf3",
            "-c",
            &Harness::ip_of(b),
            "-n",
            "20M",
            "-J",
            "-P",
            &streams,
        ],
    );
    assert!(
        out.status.success(),
        "iperf3 failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // With -n, iperf3 exits once the sender has had all 20 MiB
    // acknowledged; the receiver's own tally may stop a little short.
    let sent = v["end"]["sum_sent"]["bytes"].as_u64().unwrap();
    let received = v["end"]["sum_received"]["bytes"].as_u64().unwrap();
    assert!(sent >= 20 * 1024 * 1024, "sent only {sent} bytes");
    assert!(
        received >= sent / 2,
        "received only {received} of {sent} bytes"
    );
    let _ = server.0.wait();
}

/// Two 4-queue guests (one with split event channels) carry 8 parallel
/// TCP streams: traffic flows, and the counters show several queues used
/// in both directions.
#[test]
fn multi_queue_guests_carry_parallel_tcp() {
    let mut h = Harness::start("mq");
    h.guest_with(1, &["--queues", "4", "--split-evtchn"]);
    h.guest_with(2, &["--queues", "4"]);
    assert!(h.ping(1, 2, 2), "ping 1 -> 2 failed\n{}", h.log());
    assert!(h.ping(2, 1, 2), "ping 2 -> 1 failed\n{}", h.log());
    iperf3(&h, 1, 2, 8);
    for d in 1..=2 {
        let stats: serde_json::Value =
            serde_json::from_str(&h.appctl(&["xennet/vif-stats", &format!("vif{d}.0")])).unwrap();
        assert_eq!(stats["queues"], 4, "{stats}");
        assert_eq!(stats["fatal_errors"], 0, "{stats}");
        for dir in ["queue_rx_packets", "queue_tx_packets"] {
            let used = stats[dir]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| v.as_u64().unwrap_or(0) > 0)
                .count();
            // 8 streams + the control connection + ICMP over 4 queues.
            assert!(used >= 2, "vif{d}.0 {dir}: {stats}");
        }
    }
}

/// A 4-queue guest configures the backend's Toeplitz hash over the
/// control ring with a one-entry mapping table to queue 3: everything the
/// switch sends it (ping, 4 TCP streams) arrives on queue 3 only.
#[test]
fn control_ring_steers_to_one_queue() {
    let mut h = Harness::start("ctl");
    h.guest_with(1, &["--queues", "4", "--ctrl-ring", "--hash-mapping", "3"]);
    h.guest_with(2, &["--queues", "2", "--split-evtchn"]);
    assert!(h.ping(2, 1, 2), "ping 2 -> 1 failed\n{}", h.log());
    iperf3(&h, 2, 1, 4);
    let stats: serde_json::Value =
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif1.0"])).unwrap();
    assert_eq!(stats["ctrl_requests"], 7, "{stats}");
    assert_eq!(stats["ctrl_errors"], 0, "{stats}");
    let per_q: Vec<u64> = stats["queue_tx_packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(per_q.len(), 4, "{stats}");
    assert!(per_q[3] > 1000, "{stats}");
    assert_eq!(per_q[..3], [0, 0, 0], "{stats}");
}

/// Kill a child when the test ends, pass or fail.
struct Guard(std::process::Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn scopeguard(c: std::process::Child) -> Guard {
    Guard(c)
}

/// The real `ovs-appctl` finds xennetd through the locked pidfile and talks
/// unixctl to it, as it does to ovs-vswitchd.
#[test]
fn real_ovs_appctl_talks_to_xennetd() {
    let h = Harness::start("appctl");
    let appctl = |args: &[&str]| {
        std::process::Command::new("ovs-appctl")
            .env("OVS_RUNDIR", h.rundir())
            .args(args)
            .output()
            .expect("ovs-appctl is missing: apt-get install openvswitch-common (scripts/test installs it)")
    };
    let out = appctl(&["version"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("xennetd "));
    let out = appctl(&["fdb/show", "br0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("MAC"));
    let out = appctl(&["no/such-command"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "errors exit 2 as with ovs-vswitchd"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a valid command"));
}

/// Multicast control through xenstore: a guest that asked for it
/// (`request-multicast-control`) and subscribed to 239.1.2.3's group
/// receives datagrams sent to it, while those to 239.1.2.4, which its
/// Linux stack joined but the guest did not subscribe to at the backend,
/// are filtered by the netback and counted.
#[test]
fn multicast_control_delivers_subscribed_groups_only() {
    let mut h = Harness::start("mcast");
    h.guest_with(1, &["--mcast-group", "01:00:5e:01:02:03"]);
    h.guest(2, None);
    assert!(h.ping(2, 1, 2), "ping 2 -> 1 failed\n{}", h.log());
    let (ip1, ip2) = (Harness::ip_of(1), Harness::ip_of(2));
    let receiver = format!(
        r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5999))
for g in ("239.1.2.3", "239.1.2.4"):
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(g) + socket.inet_aton("{ip1}"))
print("ready", flush=True)
# The first datagram may be seconds away on a loaded machine (the
# sender is a Python of its own); after it, 3 s of silence ends it.
s.settimeout(60)
got = set()
try:
    while True:
        got.add(s.recv(100).decode())
        s.settimeout(3)
except socket.timeout:
    pass
print(" ".join(sorted(got)), flush=True)
"#
    );
    let mut rx = std::process::Command::new("ip")
        .args(["netns", "exec", &h.netns(1), "python3", "-c", &receiver])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (apt install python3)");
    let mut out = std::io::BufReader::new(rx.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let sender = format!(
        r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("{ip2}"))
for i in range(5):
    s.sendto(b"subscribed", ("239.1.2.3", 5999))
    s.sendto(b"filtered", ("239.1.2.4", 5999))
    time.sleep(0.1)
"#
    );
    let sent = h.exec(2, &["python3", "-c", &sender]);
    assert!(sent.status.success(), "{sent:?}");
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let _ = rx.wait();
    assert_eq!(line.trim(), "subscribed", "guest 1 received: {line}");
    let stats: serde_json::Value =
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif1.0"])).unwrap();
    assert_eq!(stats["rx_mcast_add"], 1, "{stats}");
    assert!(stats["tx_mcast_filtered"].as_u64().unwrap() >= 5, "{stats}");
}

/// SIGTERM stops xennetd in its default (emulated Xen) mode with a guest
/// connected, within seconds: the emulated xenstored's listener is
/// stopped after its event loop ended, which used to wait forever.
#[test]
fn sigterm_stops_the_emulated_mode_daemon() {
    let mut h = Harness::start("sigterm");
    h.guest(1, None);
    h.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    let start = std::time::Instant::now();
    while h.daemon_alive() {
        assert!(
            start.elapsed() < common::WAIT,
            "xennetd still running 60 s after SIGTERM\n{}",
            h.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(h.log().contains("xennetd stopped"), "{}", h.log());
}
