//! Issue 17: the connection tracker seen from outside, with real Linux
//! stacks behind emulated guests: the README's stateful firewall (item
//! 5: guest 1 may open connections to guest 2, guest 2 may only answer
//! them; ping, TCP, UDP and ICMP errors), fragments reassembled before
//! tracking and cut back into fragments on output (also between Linux
//! stacks on veth ports with a 1500-byte MTU, and through source NAT),
//! `NXT_CT_FLUSH_ZONE`, and the `dpctl/*` conntrack commands
//! through the real `ovs-appctl` (OVS lib/dpctl.c formats).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{start_on_two_veths, Harness, Veths};

/// The real `ovs-appctl` against xennetd (found through the pidfile in
/// `OVS_RUNDIR`): exit status and stdout, or stderr on failure.
fn ovs_appctl(h: &Harness, args: &[&str]) -> Result<String, String> {
    common::require_tool("ovs-appctl", "openvswitch-common");
    let out = Command::new("ovs-appctl")
        .env("OVS_RUNDIR", h.rundir())
        .args(args)
        .output()
        .expect("running ovs-appctl");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Pings committed in zone 5 show up in `dpctl/dump-conntrack` (all
/// zones and `zone=5`, not `zone=6`), are counted, limited and flushed by
/// zone with the commands OVS has; bad arguments are refused with an
/// error, not ignored.
/// Two guests whose IPv4 traffic is committed in zone 5; guest 1 has
/// pinged guest 2 through it.
fn pinged_in_zone_5(tag: &str) -> Harness {
    let mut h = Harness::start(tag);
    for d in 1..=2 {
        h.guest(d, None);
    }
    let of13 = |args: &[&str]| h.ofctl(&[&["-O", "OpenFlow13"][..], args].concat());
    of13(&["del-flows", "br0"]);
    let flows = h.rundir().join("ct-flows.txt");
    std::fs::write(
        &flows,
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=10,ip,ct_state=-trk,actions=ct(zone=5,table=1)\n\
         table=1,priority=10,ip,ct_state=+trk+new,actions=ct(commit,zone=5),NORMAL\n\
         table=1,priority=10,ip,ct_state=+trk+est,actions=NORMAL\n\
         table=1,priority=5,ip,actions=drop\n",
    )
    .unwrap();
    of13(&["add-flows", "br0", flows.to_str().unwrap()]);
    assert!(h.ping(1, 2, 2), "{}", h.log());
    h
}

#[test]
fn dpctl_conntrack_commands_through_real_ovs_appctl() {
    let h = pinged_in_zone_5("ctdpctl");
    let ct =
        |args: &[&str]| ovs_appctl(&h, args).unwrap_or_else(|e| panic!("ovs-appctl {args:?}: {e}"));

    let (a, b) = (Harness::ip_of(1), Harness::ip_of(2));
    let icmp = format!("icmp,orig=(src={a},dst={b},");
    let all = ct(&["dpctl/dump-conntrack"]);
    let ping = all
        .lines()
        .find(|l| l.starts_with(&icmp))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        ping.contains(&format!("reply=(src={b},dst={a},")) && ping.ends_with(",zone=5"),
        "{all}"
    );
    // A datapath name, as OVS's users give it, is accepted.
    assert_eq!(
        ct(&["dpctl/dump-conntrack", "netdev@ovs-netdev", "zone=5"]),
        all
    );
    assert_eq!(ct(&["dpctl/dump-conntrack", "zone=6"]), "");
    let n: usize = ct(&["dpctl/ct-get-nconns"]).trim().parse().unwrap();
    assert_eq!(n, all.lines().count(), "{all}");
    let stats = ct(&["dpctl/ct-stats-show"]);
    assert!(stats.contains("ICMP: "), "{stats}");

    assert_eq!(ct(&["dpctl/ct-get-maxconns"]), "3000000\n");
    ct(&["dpctl/ct-set-maxconns", "1000"]);
    assert_eq!(ct(&["dpctl/ct-get-maxconns"]), "1000\n");
    ct(&["dpctl/ct-set-limits", "default=100", "zone=5,limit=10"]);
    assert_eq!(
        ct(&["dpctl/ct-get-limits", "zone=5"]),
        format!("default limit=100\nzone=5,limit=10,count={n}\n")
    );
    ct(&["dpctl/ct-del-limits", "zone=5"]);
    assert_eq!(
        ct(&["dpctl/ct-get-limits", "zone=5"]),
        format!("default limit=100\nzone=5,limit=100,count={n}\n")
    );

    // Flushing another zone keeps the ping; flushing its zone removes it.
    ct(&["dpctl/flush-conntrack", "zone=6"]);
    assert_eq!(ct(&["dpctl/dump-conntrack"]), all);
    ct(&["dpctl/flush-conntrack", "zone=5"]);
    assert_eq!(ct(&["dpctl/dump-conntrack"]), "");
    assert_eq!(ct(&["dpctl/ct-get-nconns"]), "0\n");

    let ipf = ct(&["dpctl/ipf-get-status"]);
    assert!(ipf.contains("v4 enabled: 1"), "{ipf}");
    ct(&["dpctl/ipf-set-disabled", "v4"]);
    assert!(ct(&["dpctl/ipf-get-status"]).contains("v4 enabled: 0"));
    ct(&["dpctl/ipf-set-enabled", "v4"]);
    ct(&["dpctl/ipf-set-max-nfrags", "500"]);
    let ipf = ct(&["dpctl/ipf-get-status"]);
    assert!(ipf.contains("max num frags (v4/v6): 500"), "{ipf}");

    // What xennet does not have is refused, not ignored.
    for bad in [
        &["dpctl/dump-conntrack", "-m"][..],
        &["dpctl/flush-conntrack", "mark=1"],
        &["dpctl/ct-set-maxconns", "many"],
        &["dpctl/ipf-set-min-frag", "v4", "10"],
    ] {
        assert!(ovs_appctl(&h, bad).is_err(), "{bad:?} was accepted");
    }
    let cmds = ct(&["list-commands"]);
    for c in [
        "dpctl/dump-conntrack",
        "dpctl/ct-set-limits",
        "dpctl/ipf-get-status",
    ] {
        assert!(cmds.contains(c), "{cmds}");
    }
}

/// `NXT_CT_FLUSH_ZONE` from the real `ovs-ofctl ct-flush-zone` (as
/// ovn-controller sends for every zone it assigns) flushes that zone of
/// the tracker the bridge's `ct` actions use, and only that zone.
#[test]
fn ofctl_ct_flush_zone_flushes_the_tracker() {
    let h = pinged_in_zone_5("ctflushz");
    let dump = || ovs_appctl(&h, &["dpctl/dump-conntrack"]).unwrap();
    let before = dump();
    assert!(before.contains(",zone=5"), "{before}");
    h.ofctl(&["ct-flush-zone", "br0", "6"]);
    assert_eq!(dump(), before);
    h.ofctl(&["ct-flush-zone", "br0", "5"]);
    assert_eq!(dump(), "");
    // The flushed connection starts again as new and is committed again.
    assert!(h.ping(1, 2, 1), "{}", h.log());
    assert!(dump().contains(",zone=5"));
}

/// `NXT_CT_FLUSH` from the real `ovs-ofctl ct-flush` (OVS 3.1) and
/// `ovs-appctl dpctl/flush-conntrack` with tuples flush what OVS does: a
/// left-out field matches anything, the original tuple is compared with
/// the original direction and the reply tuple with the reply direction,
/// an exact five-tuple names one connection; bad arguments get OVS's
/// messages.
#[test]
fn ct_flush_by_tuple_through_real_ovs_ofctl_and_appctl() {
    let h = pinged_in_zone_5("ctflusht");
    let dump = || ovs_appctl(&h, &["dpctl/dump-conntrack"]).unwrap();
    let (a, b) = (Harness::ip_of(1), Harness::ip_of(2));
    let before = dump();
    assert!(
        before.starts_with(&format!("icmp,orig=(src={a},dst={b},")) && before.contains(",zone=5"),
        "{before}"
    );
    // Another zone, or guest 2 as the original source: kept.
    h.ofctl(&["ct-flush", "br0", "zone=6", &format!("ct_nw_src={a}")]);
    h.ofctl(&["ct-flush", "br0", "zone=5", &format!("ct_nw_src={b}")]);
    h.ofctl(&["ct-flush", "br0", "", &format!("ct_nw_dst={b}")]);
    // UDP only: the ping is ICMP.
    h.ofctl(&["ct-flush", "br0", &format!("ct_nw_src={a},ct_nw_proto=17")]);
    assert_eq!(dump(), before);
    // Guest 2 as the reply's source, in every zone: gone.
    h.ofctl(&["ct-flush", "br0", "", &format!("ct_nw_src={b}")]);
    assert_eq!(dump(), "");

    // Exact ICMP five-tuple with the identifier the dump shows, through
    // the real ovs-appctl; a second time it names nothing: OVS's error.
    assert!(h.ping(1, 2, 1), "{}", h.log());
    let line = dump();
    let id = line
        .split(",id=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("{line}"));
    let exact =
        format!("ct_nw_src={a},ct_nw_dst={b},ct_nw_proto=1,icmp_id={id},icmp_type=8,icmp_code=0");
    let flush = |args: &[&str]| ovs_appctl(&h, &[&["dpctl/flush-conntrack"][..], args].concat());
    // Zone 0 unless given, as OVS: not there.
    let e = flush(&[&exact]).unwrap_err();
    assert!(e.contains("failed to flush conntrack"), "{e}");
    assert_eq!(dump(), line);
    flush(&["zone=5", &exact]).unwrap();
    assert_eq!(dump(), "");
    for (args, msg) in [
        (&["zone=x", "ct_nw_src=1.1.1.1"][..], "failed to parse zone"),
        (
            &["ct_nw_src=1.1.1.1,invalid=invalid"],
            "invalid conntrack tuple field: invalid",
        ),
        (&["ct_nw_src=invalid"], "failed to parse field ct_nw_src"),
        (
            &[
                "zone=1",
                "ct_nw_src=1.1.1.1",
                "ct_nw_dst=1.1.1.1",
                "invalid",
            ],
            "invalid arguments",
        ),
        (&["ct_tp_src=1"], "port is set without protocol"),
    ] {
        let e = flush(args).unwrap_err();
        assert!(e.contains(msg), "{args:?}: {e}");
    }
}

/// `n_packets` of the one flow in `dump` (`ovs-ofctl dump-flows` text)
/// containing `needle`.
fn n_packets(dump: &str, needle: &str) -> u64 {
    let l = dump
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle}: {dump}"));
    let n = l.split("n_packets=").nth(1).unwrap_or_default();
    n.split(',').next().unwrap_or_default().parse().unwrap()
}

/// Real fragmented pings (`ping -s 3000`: three IPv4 fragments per
/// datagram at MTU 1500) through `ct(table=1)`: the tracker holds the
/// first fragments (the datapath drops them, as OVS's ipf steals them)
/// and the last one completes the datagram, which alone goes on to table
/// 1 and to the other guest. Table 1 forwards whatever it gets, so held
/// fragments that were also passed on would show there as more packets
/// than datagrams.
#[test]
fn fragmented_pings_are_reassembled_before_tracking() {
    let mut h = Harness::start("ctfrag");
    for d in 1..=2 {
        h.guest(d, None);
    }
    let flows = h.rundir().join("frag-flows.txt");
    std::fs::write(
        &flows,
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=100,ip,actions=ct(table=1)\n\
         table=1,priority=100,icmp,actions=NORMAL\n\
         table=1,priority=10,ip,actions=NORMAL\n",
    )
    .unwrap();
    h.ofctl(&["del-flows", "br0"]);
    h.ofctl(&["add-flows", "br0", flows.to_str().unwrap()]);
    let out = h.exec(
        1,
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-s",
            "3000",
            &Harness::ip_of(2),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss") && !text.contains("DUP!"),
        "{text}\n{}",
        h.log()
    );
    // 3 requests and 3 replies: 6 datagrams of 3 fragments each.
    let dump = h.ofctl(&["dump-flows", "br0"]);
    assert!(n_packets(&dump, "ip actions=ct(table=1)") >= 18, "{dump}");
    assert_eq!(n_packets(&dump, "priority=100,icmp"), 6, "{dump}");
    let ipf = ovs_appctl(&h, &["dpctl/ipf-get-status"]).unwrap();
    // OVS counts the fragments of completed datagrams.
    assert!(ipf.contains("v4 frags completed: 18\n"), "{ipf}");
    assert!(ipf.contains("num frag: 0\n"), "{ipf}");
    // Each datagram reached its guest as fragments again.
    assert_eq!(pmd_stat(&h, "refragmented: "), 6);
}

/// Three pings of 3000 bytes (fragmented by the sender's 1500-byte MTU)
/// from namespace `ns`; `extra` adds arguments before the address
/// (`-6`).
fn ping_3000(ns: &str, extra: &[&str], addr: &str) -> std::process::Output {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "10",
        ])
        .args(["-s", "3000"])
        .args(extra)
        .arg(addr)
        .output()
        .unwrap()
}

/// A 4000-byte UDP datagram from namespace `from` to `addr` port `port`,
/// sent back by a one-shot server in namespace `to`: what the server saw
/// ("SOURCE LENGTH") and what the client got ("echo ok" when the answer
/// is the datagram it sent, else the error).
fn udp_4000(from: &str, to: &str, addr: &str, port: u16) -> (String, String) {
    let fam = if addr.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let any = if addr.contains(':') { "::" } else { "0.0.0.0" };
    let server = format!(
        r#"
import socket
s = socket.socket(socket.{fam}, socket.SOCK_DGRAM)
s.bind(("{any}", {port}))
s.settimeout(60)
print("ready", flush=True)
try:
    m, a = s.recvfrom(65535)
    s.sendto(m, a)
    print(a[0], len(m), flush=True)
except OSError as e:
    print("server:", e, flush=True)
"#
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", to, "python3", "-c", &server])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 (apt-get install python3)");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "UDP server in {to} did not start");
    let _guard = common::ChildGuard(child);
    let client = format!(
        r#"
import socket, sys
s = socket.socket(socket.{fam}, socket.SOCK_DGRAM)
s.settimeout(30)
data = bytes(i % 251 for i in range(4000))
try:
    s.sendto(data, ("{addr}", {port}))
    m = s.recv(65535)
    print("echo ok" if m == data else "echo differs (%d bytes)" % len(m))
except OSError as e:
    print("client:", e)
"#
    );
    let c = Command::new("ip")
        .args(["netns", "exec", from, "python3", "-c", &client])
        .output()
        .unwrap();
    let mut seen = String::new();
    out.read_line(&mut seen).unwrap();
    (
        seen.trim().to_string(),
        String::from_utf8_lossy(&c.stdout).trim().to_string(),
    )
}

/// Datagrams the stack of namespace `ns` reassembled from fragments:
/// (IPv4 `ReasmOKs` of /proc/net/snmp, IPv6 `Ip6ReasmOKs` of
/// /proc/net/snmp6).
fn reassembled_by_stack(ns: &str) -> (u64, u64) {
    let read = |f: &str| {
        let o = Command::new("ip")
            .args(["netns", "exec", ns, "cat", f])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let snmp = read("/proc/net/snmp");
    let ip: Vec<Vec<&str>> = snmp
        .lines()
        .filter(|l| l.starts_with("Ip: "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let col = ip[0].iter().position(|c| *c == "ReasmOKs").unwrap();
    let v4 = ip[1][col].parse().unwrap();
    let snmp6 = read("/proc/net/snmp6");
    let v6 = snmp6
        .lines()
        .find_map(|l| l.strip_prefix("Ip6ReasmOKs"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    (v4, v6)
}

/// The value after `what` in `dpif-netdev/pmd-stats-show`.
fn pmd_stat(h: &Harness, what: &str) -> u64 {
    let show = h.appctl(&["dpif-netdev/pmd-stats-show"]);
    show.split(what)
        .nth(1)
        .and_then(|t| {
            t.split(|c: char| !c.is_ascii_digit())
                .find(|w| !w.is_empty())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {what:?} in {show}"))
}

/// Fragmented traffic through the README's stateful firewall between
/// two Linux stacks on veth ports (MTU 1500, which cannot send a
/// reassembled 3000-byte datagram whole): IPv4 and IPv6 pings of 3000
/// bytes and a 4000-byte UDP datagram cross and are answered, each
/// datagram leaving as fragments no larger than those it came in; a
/// fragmented ping from the other side is still refused.
#[test]
fn fragmented_traffic_crosses_veth_ports_through_the_firewall() {
    common::require_prerequisites();
    let tag = format!("cf{}", std::process::id() % 100_000);
    let _v = Veths::two(&tag, |i| {
        vec![
            format!("10.251.0.{i}/24"),
            format!("fd00:251::{i}/64 nodad"),
        ]
    });
    let h = start_on_two_veths("ctfragveth", &tag);
    let (ns1, ns2) = (format!("{tag}n1"), format!("{tag}n2"));
    let v4 = FIREWALL.replace("vif1.0", &format!("{tag}o1"));
    // The same for IPv6, with neighbour discovery let through.
    let v6: String = v4
        .lines()
        .filter(|l| l.contains(",ip,"))
        .map(|l| l.replace(",ip,", ",ipv6,") + "\n")
        .collect();
    let flows = h.rundir().join("firewall.flows");
    std::fs::write(
        &flows,
        format!(
            "{v4}{v6}table=0,priority=200,icmp6,icmp_type=135,actions=NORMAL\n\
             table=0,priority=200,icmp6,icmp_type=136,actions=NORMAL\n"
        ),
    )
    .unwrap();
    h.ofctl(&["del-flows", "br0"]);
    h.ofctl(&["add-flows", "br0", flows.to_str().unwrap()]);
    for (extra, addr) in [(&[][..], "10.251.0.2"), (&["-6"][..], "fd00:251::2")] {
        let out = ping_3000(&ns1, extra, addr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(" 0% packet loss") && !text.contains("DUP!"),
            "ping {extra:?} -s 3000 {addr}: {text}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            h.log()
        );
    }
    for addr in ["10.251.0.2", "fd00:251::2"] {
        let (seen, got) = udp_4000(&ns1, &ns2, addr, 5301);
        let from = if addr.contains(':') {
            "fd00:251::1"
        } else {
            "10.251.0.1"
        };
        assert_eq!(seen, format!("{from} 4000"), "{addr}\n{}", h.log());
        assert_eq!(got, "echo ok", "{addr}\n{}", h.log());
    }
    // 3 requests and 3 replies per ping, 2 datagrams per UDP exchange:
    // every one went out as fragments.
    assert_eq!(pmd_stat(&h, "refragmented: "), 16, "{}", h.log());
    assert_eq!(pmd_stat(&h, "not fragmentable: "), 0);
    // And each stack reassembled them: 3 pings (or replies) and one UDP
    // datagram per family.
    assert_eq!(reassembled_by_stack(&ns1), (4, 4));
    assert_eq!(reassembled_by_stack(&ns2), (4, 4));
    // Guest 2 may not open anything, fragmented or not.
    let out = Command::new("ip")
        .args(["netns", "exec", &ns2, "ping", "-c", "1", "-W", "1"])
        .args(["-s", "3000", "10.251.0.1"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ipf = ovs_appctl(&h, &["dpctl/ipf-get-status"]).unwrap();
    assert!(ipf.contains("num frag: 0\n"), "{ipf}");
}

/// Fragmented traffic source-NATed by `ct(commit,nat(src=...))` between
/// two Linux stacks on veth ports: the fragments that leave carry the
/// translated address (and the reassembled UDP checksum is right, or the
/// receiving stack would drop the datagram), replies are translated
/// back.
#[test]
fn fragmented_traffic_is_source_natted_across_veth_ports() {
    common::require_prerequisites();
    let tag = format!("cn{}", std::process::id() % 100_000);
    let _v = Veths::two(&tag, |i| vec![format!("10.250.0.{i}/24")]);
    let h = start_on_two_veths("ctfragnat", &tag);
    let (ns1, ns2) = (format!("{tag}n1"), format!("{tag}n2"));
    // Namespace 2 answers the NAT address at namespace 1's MAC.
    let mac = Command::new("ip")
        .args(["-n", &ns1, "-br", "link", "show", "eth0"])
        .output()
        .unwrap();
    let mac = String::from_utf8_lossy(&mac.stdout)
        .split_whitespace()
        .nth(2)
        .expect("eth0's MAC")
        .to_string();
    common::run_ok(
        "ip",
        &[
            "-n",
            &ns2,
            "neigh",
            "add",
            "10.250.0.100",
            "lladdr",
            &mac,
            "dev",
            "eth0",
        ],
    );
    let flows = h.rundir().join("nat.flows");
    std::fs::write(
        &flows,
        format!(
            "table=0,priority=10,arp,actions=NORMAL\n\
             table=0,priority=100,ip,actions=ct(table=1,nat)\n\
             table=1,priority=100,ip,in_port={tag}o1,ct_state=+trk+new,\
             actions=ct(commit,nat(src=10.250.0.100)),NORMAL\n\
             table=1,priority=100,ip,ct_state=+trk+est,actions=NORMAL\n\
             table=1,priority=1,actions=drop\n"
        ),
    )
    .unwrap();
    h.ofctl(&["del-flows", "br0"]);
    h.ofctl(&["add-flows", "br0", flows.to_str().unwrap()]);
    let out = ping_3000(&ns1, &[], "10.250.0.2");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "{text}\n{}",
        h.log()
    );
    let (seen, got) = udp_4000(&ns1, &ns2, "10.250.0.2", 5302);
    assert_eq!(seen, "10.250.0.100 4000", "{}", h.log());
    assert_eq!(got, "echo ok", "{}", h.log());
    let ct = ovs_appctl(&h, &["dpctl/dump-conntrack"]).unwrap();
    assert!(ct.contains("dst=10.250.0.100"), "{ct}");
    assert_eq!(pmd_stat(&h, "refragmented: "), 8, "{}", h.log());
}

/// The README's flows ("Stateful firewall"), as one would give them to
/// `ovs-ofctl add-flows`.
const FIREWALL: &str = "\
table=0,priority=10,arp,actions=NORMAL
table=0,priority=100,ip,actions=ct(table=1)
table=1,priority=100,ip,in_port=vif1.0,ct_state=+trk+new,actions=ct(commit),NORMAL
table=1,priority=100,ip,ct_state=+trk+est,actions=NORMAL
table=1,priority=100,ip,ct_state=+trk+rel,actions=NORMAL
table=1,priority=1,actions=drop
";

/// A one-shot server in guest `domid`: `proto` "tcp" or "udp" on `port`,
/// answering the first message with "re:" + message; returns once it
/// listens (it says so on stdout), and gives up after 60 s.
fn server(h: &Harness, domid: u16, proto: &str, port: u16) -> Child {
    let code = format!(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_{kind})
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port}))
s.settimeout(60)
if "{proto}" == "tcp":
    s.listen(1)
print("ready", flush=True)
try:
    if "{proto}" == "tcp":
        c, _ = s.accept()
        c.sendall(b"re:" + c.recv(100))
        c.close()
    else:
        m, a = s.recvfrom(100)
        s.sendto(b"re:" + m, a)
except OSError:
    pass
"#,
        kind = if proto == "tcp" { "STREAM" } else { "DGRAM" },
    );
    let ns = h.netns(domid);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", &code])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 (apt-get install python3)");
    let mut line = String::new();
    let out = child.stdout.take().unwrap();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(
        line, "ready\n",
        "{proto} server in guest {domid} did not start"
    );
    child
}

/// Sends "hello" from guest `from` to `to` over `proto` and waits at most
/// `wait_s` seconds for the answer: the answer, or the error (`timed out`,
/// `Connection refused`). An answer expected gets a generous wait (a
/// loaded machine can stall for seconds); one that must not come, a short
/// one.
fn client(
    h: &Harness,
    from: u16,
    to: u16,
    proto: &str,
    port: u16,
    wait_s: u32,
) -> Result<String, String> {
    let code = format!(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_{kind})
s.settimeout({wait_s})
try:
    s.connect(("{addr}", {port}))
    s.send(b"hello")
    sys.stdout.write(s.recv(100).decode())
except OSError as e:
    sys.stderr.write(str(e))
"#,
        kind = if proto == "tcp" { "STREAM" } else { "DGRAM" },
        addr = Harness::ip_of(to),
    );
    let out = h.exec(from, &["python3", "-c", &code]);
    let got = String::from_utf8_lossy(&out.stdout).to_string();
    match got.is_empty() {
        false => Ok(got),
        true => Err(String::from_utf8_lossy(&out.stderr).to_string()),
    }
}

/// The README's stateful firewall with real ping, TCP and UDP: what guest
/// 1 opens is answered (replies are `+est`; an ICMP port unreachable for
/// its UDP is `+rel`), fragmented pings are reassembled and pass as
/// `+est`; nothing guest 2 opens gets through. The established pass has
/// its own megaflow (`recirc_id`, `ct_state`), so established traffic
/// stays on the fast path.
#[test]
fn the_stateful_firewall_lets_replies_in_and_nothing_else() {
    let mut h = Harness::start("ctfw");
    h.guest(1, None);
    h.guest(2, None);
    let flows = h.rundir().join("firewall.flows");
    std::fs::write(&flows, FIREWALL).unwrap();
    h.ofctl(&["del-flows", "br0"]);
    h.ofctl(&["add-flows", "br0", &flows.to_string_lossy()]);

    assert!(h.ping_fails(2, 1), "guest 2 opened a connection to guest 1");
    assert!(h.ping(1, 2, 3), "guest 1 cannot ping guest 2:\n{}", h.log());
    let big = h.exec(
        1,
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            "-s",
            "3000",
            &Harness::ip_of(2),
        ],
    );
    assert!(big.status.success(), "{big:?}");
    for (proto, port) in [("tcp", 5001), ("udp", 5002)] {
        let mut srv = server(&h, 2, proto, port);
        assert_eq!(
            client(&h, 1, 2, proto, port, 30).as_deref(),
            Ok("re:hello"),
            "{proto} from guest 1 to guest 2"
        );
        let _ = srv.wait();
        let mut srv = server(&h, 1, proto, port);
        let err = client(&h, 2, 1, proto, port, 2).unwrap_err();
        assert!(err.contains("timed out"), "{proto} from guest 2: {err}");
        let _ = srv.kill();
        let _ = srv.wait();
    }
    // No server: guest 2's port unreachable is related to guest 1's UDP
    // connection and passes; guest 1 hears the refusal.
    let err = client(&h, 1, 2, "udp", 5003, 30).unwrap_err();
    assert!(err.contains("refused"), "{err}");

    // The connections are in the tracker as ovs-appctl shows them.
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    let (a, b) = (Harness::ip_of(1), Harness::ip_of(2));
    for p in ["icmp", "tcp", "udp"] {
        assert!(ct.contains(&format!("{p},orig=(src={a},dst={b},")), "{ct}");
        assert!(!ct.contains(&format!("{p},orig=(src={b},")), "{ct}");
    }
    let dump = h.ofctl(&["dump-flows", "br0", "table=1"]);
    for state in ["+est+trk", "+rel+trk"] {
        let n = n_packets(&dump, &format!("ct_state={state}"));
        assert!(n > 0, "{state}: {dump}");
    }
    // Replies from guest 2 (in_port 2) after recirculation: a megaflow of
    // their own, straight to guest 1's port.
    let dp = h.appctl(&["dpctl/dump-flows", "br0"]);
    assert!(
        dp.lines().any(|l| l.starts_with("recirc_id(0x")
            && l.contains("in_port(2)")
            && l.contains("+est")
            && l.ends_with("actions:1")),
        "{dp}"
    );
}

/// OVSDB `CT_Zone`/`CT_Timeout_Policy` from the real `ovs-vsctl
/// add-zone-tp` (OVS vswitch.xml: `Open_vSwitch:datapaths` ->
/// `Datapath:ct_zones` -> `CT_Zone:timeout_policy`) reach the tracker:
/// xennetd logs the zone's policy with the given timeouts, refuses (logs)
/// a key the userspace tracker has no timeout for, and puts the zone back
/// on the default policy when the zone goes.
#[test]
fn ct_zone_timeout_policies_from_ovsdb() {
    use xennet_ovsdb::test_utils::OvsdbServer;
    let db = OvsdbServer::start("cttp");
    let h = Harness::start_with("cttp", &["--db", &db.addr()]);
    db.vsctl_ok(&["add-br", "br0"]);
    db.vsctl_no_wait(&[
        "--",
        "--id=@d",
        "create",
        "Datapath",
        "datapath_version=0",
        "--",
        "set",
        "Open_vSwitch",
        ".",
        "datapaths:netdev=@d",
    ]);
    db.vsctl_no_wait(&[
        "add-zone-tp",
        "netdev",
        "zone=5",
        "udp_first=7",
        "icmp_reply=3",
        "tcp_unack=9",
    ]);
    h.wait_for("zone 5's timeout policy", || {
        h.log().contains("ct zone 5: timeout policy")
    });
    let log = h.log();
    let line = log
        .lines()
        .find(|l| l.contains("ct zone 5: timeout policy"))
        .unwrap();
    assert!(
        line.contains("udp_first: 7,")
            && line.contains("icmp_reply: 3 ")
            && line.contains("tcp_syn_sent: 30,"),
        "{line}"
    );
    assert!(
        log.contains("ct zone 5: timeout tcp_unack is not supported"),
        "{log}"
    );
    db.vsctl_no_wait(&["del-zone-tp", "netdev", "zone=5"]);
    h.wait_for("zone 5 back on the default policy", || {
        h.log().contains("ct zone 5: default timeout policy")
    });
}
