//! Issue 17: the tracker's FTP and TFTP helpers (`ct(alg=ftp)`,
//! `ct(alg=tftp)`) with real peers behind emulated guests: the FTP server
//! pyftpdlib in guest 2 and Python's ftplib in guest 1 (active `PORT`
//! and `EPRT`, passive `PASV` and `EPSV`), the TFTP server in.tftpd
//! (tftpd-hpa) and busybox's tftp client. The firewall lets guest 1 open
//! the control connection and lets any other new connection through only
//! when it is `+rel`; the same transfers fail with the control connection
//! committed without the helper.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{ChildGuard, Harness};

/// The firewall: arp, guest 1's control connections committed with
/// `ctl` (e.g. `ct(commit,alg=ftp)`), new `+rel` connections committed,
/// established traffic passes, everything else is dropped.
fn firewall(proto: &str, port: u16, ctl: &str) -> String {
    format!(
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=10,ip,ct_state=-trk,actions=ct(table=1)\n\
         table=1,priority=30,{proto},in_port=vif1.0,tp_dst={port},ct_state=+trk+new,actions={ctl},NORMAL\n\
         table=1,priority=20,ip,ct_state=+trk+new+rel,actions=ct(commit),NORMAL\n\
         table=1,priority=10,ip,ct_state=+trk+est,actions=NORMAL\n\
         table=1,priority=1,actions=drop\n"
    )
}

fn install(h: &Harness, flows: &str) {
    let f = h.rundir().join("alg.flows");
    std::fs::write(&f, flows).unwrap();
    h.ofctl(&["del-flows", "br0"]);
    h.ofctl(&["add-flows", "br0", &f.to_string_lossy()]);
}

/// Guest 2 reaches `addr` (a source NAT address of guest 1's
/// connections) at guest 1's MAC, by a static neighbour entry (as OVS's
/// system-traffic NAT tests do: the switch does not answer ARP or
/// neighbour discovery for it).
fn nat_address_reaches_guest_1(h: &Harness, addr: &str) {
    let link = h.exec(1, &["ip", "-br", "link", "show", "eth0"]);
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    let mac = link
        .split_whitespace()
        .find(|w| w.len() == 17 && w.matches(':').count() == 5)
        .unwrap_or_else(|| panic!("guest 1's MAC in {link:?}"))
        .to_string();
    let neigh = h.exec(
        2,
        &[
            "ip", "neigh", "replace", addr, "lladdr", &mac, "dev", "eth0",
        ],
    );
    assert!(neigh.status.success(), "{neigh:?}");
}

/// Packets through the table-1 flow whose text contains `needle`.
fn n_packets(h: &Harness, needle: &str) -> u64 {
    let dump = h.ofctl(&["dump-flows", "br0", "table=1"]);
    let line = dump
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no flow with {needle}: {dump}"));
    line.split("n_packets=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

/// A file of `n` bytes with a pattern, in `dir`.
fn payload_file(dir: &std::path::Path, n: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    data
}

/// pyftpdlib serving `dir` to anonymous users on guest 2's port 21;
/// returns once it listens.
fn ftp_server(h: &Harness, dir: &std::path::Path) -> ChildGuard {
    ftp_server_on(h, dir, &Harness::ip_of(2))
}

/// [`ftp_server`] on guest 2's address `ip` (IPv4 or IPv6).
fn ftp_server_on(h: &Harness, dir: &std::path::Path, ip: &str) -> ChildGuard {
    let py = common::pyftpdlib_python();
    let code = format!(
        r#"
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
logging.basicConfig(filename="{log}", level=logging.INFO)
a = DummyAuthorizer()
a.add_anonymous("{dir}")
FTPHandler.authorizer = a
FTPHandler.timeout = 20
s = FTPServer(("{ip}", 21), FTPHandler)
print("ready", flush=True)
s.serve_forever()
"#,
        log = h.rundir().join("pyftpdlib.log").display(),
        dir = dir.display(),
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &h.netns(2)])
        .arg(&py)
        .args(["-c", &code])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting pyftpdlib");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n", "pyftpdlib did not start");
    ChildGuard(child)
}

/// Python's ftplib in guest 1 downloads data.bin from guest 2 in `mode`
/// ("pasv", "epsv", "port" or "eprt"; the extended ones over IPv4 as
/// RFC 2428 allows), waiting at most [`FTP_WAIT`] s per step: the
/// bytes, or the error.
fn ftp_get(h: &Harness, mode: &str) -> Result<Vec<u8>, String> {
    ftp_get_from(h, mode, &Harness::ip_of(2), FTP_WAIT)
}

/// Seconds ftplib waits per step of a transfer that should work (a
/// bound for a loaded machine, not a threshold).
const FTP_WAIT: u32 = 30;
/// Seconds ftplib waits per step of a transfer that should fail (the
/// data connection never comes).
const FTP_WAIT_FAIL: u32 = 4;

/// [`ftp_get`] from the server at `ip`, waiting `secs` per step; over
/// IPv6 ftplib sends `EPRT` for "port" and `EPSV` for "pasv" itself
/// (RFC 2428).
fn ftp_get_from(h: &Harness, mode: &str, ip: &str, secs: u32) -> Result<Vec<u8>, String> {
    let code = format!(
        r#"
import ftplib, sys
MODE = "{mode}"
class C(ftplib.FTP):
    def makepasv(self):
        if MODE == "epsv":
            _, port = ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())
            return self.sock.getpeername()[0], port
        return super().makepasv()
    def sendport(self, host, port):
        if MODE == "eprt":
            return self.voidcmd("EPRT |1|%s|%d|" % (host, port))
        return super().sendport(host, port)
out = bytearray()
try:
    f = C()
    f.connect("{ip}", 21, timeout={secs})
    f.login()
    f.set_pasv(MODE in ("pasv", "epsv"))
    f.retrbinary("RETR data.bin", out.extend)
    f.quit()
    sys.stdout.buffer.write(out)
except Exception as e:
    sys.stderr.write("%s: %s" % (type(e).__name__, e))
    sys.exit(1)
"#,
    );
    python_in_guest_1(h, &code)
}

/// Active and passive FTP, plain and extended, with the data connection
/// allowed only as `+rel`: every transfer arrives whole; the control
/// connection shows `helper=ftp` in `dpctl/dump-conntrack`; the `+rel`
/// flow carried packets. With `ct(commit)` instead of
/// `ct(commit,alg=ftp)` the same transfers fail.
#[test]
fn ftp_data_connections_pass_only_as_related() {
    let mut h = Harness::start("ctalgftp");
    h.guest(1, None);
    h.guest(2, None);
    let dir = h.rundir().join("ftp-root");
    let data = payload_file(&dir, 300_000);
    let _srv = ftp_server(&h, &dir);
    install(&h, &firewall("tcp", 21, "ct(commit,alg=ftp)"));
    assert!(h.ping_fails(1, 2), "ping is not allowed by these flows");

    for mode in ["pasv", "epsv", "port", "eprt"] {
        let got = ftp_get(&h, mode).unwrap_or_else(|e| {
            panic!(
                "{mode}: {e}\n{}\n{}",
                h.appctl(&["dpctl/dump-conntrack"]),
                h.log()
            )
        });
        assert!(got == data, "{mode}: {} bytes, not the file", got.len());
    }
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    let (a, b) = (Harness::ip_of(1), Harness::ip_of(2));
    assert!(
        ct.lines()
            .any(|l| l.starts_with(&format!("tcp,orig=(src={a},dst={b},"))
                && l.contains(",dport=21),")
                && l.ends_with(",helper=ftp")),
        "{ct}"
    );
    // Data connections in both directions, none with a helper.
    assert!(ct.contains(&format!("tcp,orig=(src={b},dst={a},")), "{ct}");
    assert_eq!(ct.matches("helper=").count(), 4, "{ct}");
    assert!(n_packets(&h, "+new+rel") >= 4);
    let stats = h.appctl(&["dpif-netdev/pmd-stats-show"]);
    assert!(
        stats.contains(", 4 related connections, 0 bad FTP messages"),
        "{stats}"
    );

    // The control connection without the helper: no data connection.
    ftp_fails_without_helper(&h, &firewall("tcp", 21, "ct(commit)"), &Harness::ip_of(2));
}

/// With the conntrack table flushed and `flows` (the same pipeline
/// without `alg=ftp`) installed, neither a passive nor an active
/// transfer from `server` gets its data connection, and no packet is
/// `+new+rel`.
fn ftp_fails_without_helper(h: &Harness, flows: &str, server: &str) {
    h.appctl(&["dpctl/flush-conntrack"]);
    install(h, flows);
    for mode in ["pasv", "port"] {
        let err = ftp_get_from(h, mode, server, FTP_WAIT_FAIL).unwrap_err();
        assert!(
            err.contains("timed out") || err.contains("425"),
            "{mode}: {err}"
        );
    }
    assert_eq!(n_packets(h, "+new+rel"), 0);
}

/// With the conntrack table flushed and `flows` (the same pipeline
/// without `alg=tftp`) installed, a TFTP get into `out` fails and no
/// packet is `+new+rel`.
fn tftp_fails_without_helper(h: &Harness, flows: &str, out: &std::path::Path) {
    h.appctl(&["dpctl/flush-conntrack"]);
    install(h, flows);
    assert!(tftp_get(h, out, 6).is_err(), "transfer without the helper");
    assert_eq!(n_packets(h, "+new+rel"), 0);
}

/// busybox tftp in guest 1 fetches data.bin from in.tftpd in guest 2;
/// busybox gives up after its own retries, and `timeout` bounds it at
/// `secs` (30 for a transfer that should work, a bound for a loaded
/// machine; 6 for one that should fail).
fn tftp_get(h: &Harness, out: &std::path::Path, secs: u32) -> Result<Vec<u8>, String> {
    let _ = std::fs::remove_file(out);
    let r = h.exec(
        1,
        &[
            "timeout",
            &secs.to_string(),
            "busybox",
            "tftp",
            "-g",
            "-r",
            "data.bin",
            "-l",
            &out.to_string_lossy(),
            &Harness::ip_of(2),
        ],
    );
    match r.status.success() {
        true => std::fs::read(out).map_err(|e| e.to_string()),
        false => Err(format!("{r:?}")),
    }
}

/// Run Python program `code` in guest 1: what it wrote to stdout, or,
/// if it failed, its stderr.
fn python_in_guest_1(h: &Harness, code: &str) -> Result<Vec<u8>, String> {
    let out = h.exec(1, &["python3", "-c", code]);
    match out.status.success() {
        true => Ok(out.stdout),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// in.tftpd serving `dir` on guest 2's port 69; returns once it listens.
fn tftp_server(h: &Harness, dir: &std::path::Path) -> ChildGuard {
    let srv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h.netns(2),
            "in.tftpd",
            "-L",
            "-u",
            "root",
            "-p",
        ])
        .args(["-a", &format!("{}:69", Harness::ip_of(2)), "-s"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting in.tftpd");
    let srv = ChildGuard(srv);
    h.wait_for("in.tftpd listening", || {
        let ss = h.exec(2, &["ss", "-uln"]);
        String::from_utf8_lossy(&ss.stdout).contains(&format!("{}:69", Harness::ip_of(2)))
    });
    srv
}

/// TFTP: the server answers from a new port, which only the helper's
/// expectation lets through as `+rel`; without the helper the transfer
/// fails.
#[test]
fn tftp_reply_from_a_new_port_passes_as_related() {
    common::require_tool("in.tftpd", "tftpd-hpa");
    common::require_tool("busybox", "busybox");
    let mut h = Harness::start("ctalgtftp");
    h.guest(1, None);
    h.guest(2, None);
    let dir = h.rundir().join("tftp-root");
    let data = payload_file(&dir, 100_000);
    let _srv = tftp_server(&h, &dir);
    install(&h, &firewall("udp", 69, "ct(commit,alg=tftp)"));
    let out = h.rundir().join("tftp.out");
    let got = tftp_get(&h, &out, 30)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", h.appctl(&["dpctl/dump-conntrack"]), h.log()));
    assert!(got == data, "{} bytes, not the file", got.len());
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    assert!(
        ct.lines()
            .any(|l| l.contains(",dport=69),") && l.ends_with(",helper=tftp")),
        "{ct}"
    );
    assert!(n_packets(&h, "+new+rel") >= 1);

    tftp_fails_without_helper(&h, &firewall("udp", 69, "ct(commit)"), &out);
}

/// FTP from guest 1 through source NAT to 10.251.0.99 (guest 2 reaches
/// that address by a static neighbour entry for guest 1's MAC): for
/// active mode the helper rewrites `PORT 10,251,0,1,..` to
/// `10,251,0,99` (one byte longer, so every later client segment's
/// sequence number and server acknowledgement is moved), which
/// pyftpdlib requires (it refuses data connections to or from another
/// address than the control connection's peer); passive and active
/// data connections get the control connection's translation.
#[test]
fn ftp_through_source_nat_rewrites_port_and_sequence_numbers() {
    let mut h = Harness::start("ctalgsnat");
    h.guest(1, None);
    h.guest(2, None);
    nat_address_reaches_guest_1(&h, "10.251.0.99");
    let dir = h.rundir().join("ftp-root");
    let data = payload_file(&dir, 200_000);
    let _srv = ftp_server(&h, &dir);
    install(
        &h,
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=10,ip,ct_state=-trk,actions=ct(nat,table=1)\n\
         table=1,priority=30,tcp,in_port=vif1.0,tp_dst=21,ct_state=+trk+new,\
         actions=ct(commit,alg=ftp,nat(src=10.251.0.99)),NORMAL\n\
         table=1,priority=20,ip,ct_state=+trk+new+rel,actions=ct(commit,nat),NORMAL\n\
         table=1,priority=10,ip,ct_state=+trk+est,actions=NORMAL\n\
         table=1,priority=1,actions=drop\n",
    );
    for mode in ["port", "pasv", "eprt", "epsv"] {
        let got = ftp_get(&h, mode).unwrap_or_else(|e| {
            panic!(
                "{mode}: {e}\n{}\n{}",
                h.appctl(&["dpctl/dump-conntrack"]),
                h.log()
            )
        });
        assert!(got == data, "{mode}: {} bytes, not the file", got.len());
    }
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    assert!(
        ct.lines()
            .any(|l| l.contains("dst=10.251.0.99,sport=21,") && l.ends_with(",helper=ftp")),
        "{ct}"
    );
    // The server saw the translated address only.
    let log = std::fs::read_to_string(h.rundir().join("pyftpdlib.log")).unwrap_or_default();
    assert!(!log.contains("10.251.0.1:"), "{log}");
    assert!(n_packets(&h, "+new+rel") >= 4);
}

/// TFTP from guest 1 through source NAT to 10.251.0.99 (OVS
/// system-traffic "IPv4 TFTP with SNAT"): in.tftpd answers the
/// translated address from a new port; the helper's expectation makes
/// that answer `+rel`, and its `ct(commit,nat)` takes the control
/// connection's translation back to guest 1. Without the helper the
/// answer is dropped and the transfer fails.
#[test]
fn tftp_through_source_nat_reaches_the_client() {
    common::require_tool("in.tftpd", "tftpd-hpa");
    common::require_tool("busybox", "busybox");
    let mut h = Harness::start("ctalgtftpnat");
    h.guest(1, None);
    h.guest(2, None);
    nat_address_reaches_guest_1(&h, "10.251.0.99");
    let dir = h.rundir().join("tftp-root");
    let data = payload_file(&dir, 100_000);
    let _srv = tftp_server(&h, &dir);
    let flows = |ctl: &str| {
        format!(
            "table=0,priority=10,arp,actions=NORMAL\n\
             table=0,priority=10,ip,ct_state=-trk,actions=ct(nat,table=1)\n\
             table=1,priority=30,udp,in_port=vif1.0,tp_dst=69,ct_state=+trk+new,\
             actions={ctl},NORMAL\n\
             table=1,priority=20,ip,ct_state=+trk+new+rel,actions=ct(commit,nat),NORMAL\n\
             table=1,priority=10,ip,ct_state=+trk+est,actions=NORMAL\n\
             table=1,priority=1,actions=drop\n"
        )
    };
    install(&h, &flows("ct(commit,alg=tftp,nat(src=10.251.0.99))"));
    let out = h.rundir().join("tftp.out");
    let got = tftp_get(&h, &out, 30)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", h.appctl(&["dpctl/dump-conntrack"]), h.log()));
    assert!(got == data, "{} bytes, not the file", got.len());
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    let (a, b) = (Harness::ip_of(1), Harness::ip_of(2));
    // As OVS's test expects: the control connection translated, with
    // its helper; the data connection from the server to the NAT
    // address, translated back to guest 1.
    assert!(
        ct.lines()
            .any(|l| l.starts_with(&format!("udp,orig=(src={a},dst={b},"))
                && l.contains(&format!("reply=(src={b},dst=10.251.0.99,sport=69,"))
                && l.ends_with(",helper=tftp")),
        "{ct}"
    );
    assert!(
        ct.lines().any(
            |l| l.starts_with(&format!("udp,orig=(src={b},dst=10.251.0.99,"))
                && l.contains(&format!("reply=(src={a},dst={b},"))
        ),
        "{ct}"
    );
    assert!(n_packets(&h, "+new+rel") >= 1);

    tftp_fails_without_helper(&h, &flows("ct(commit,nat(src=10.251.0.99))"), &out);
}

/// Guests 1 and 2 get fd00:251::1 and ::2 (`nodad`); returns once guest
/// 1 reaches guest 2 over IPv6 (neighbour discovery and pings pass
/// untracked by `flows`' first rule, as in OVS's IPv6 FTP tests).
fn ipv6_up(h: &Harness) {
    for i in [1u16, 2] {
        let a = h.exec(
            i,
            &[
                "ip",
                "addr",
                "add",
                &format!("{V6_NET}{i}/64"),
                "nodad",
                "dev",
                "eth0",
            ],
        );
        assert!(a.status.success(), "{a:?}");
    }
    h.wait_for("guest 1 pings guest 2 over IPv6", || {
        h.exec(
            1,
            &["ping", "-6", "-c", "1", "-W", "1", &format!("{V6_NET}2")],
        )
        .status
        .success()
    });
}

const V6_NET: &str = "fd00:251::";

/// The IPv6 firewall: neighbour discovery and pings untracked, guest
/// 1's FTP control connections committed with `ctl`, new `+rel`
/// connections committed with `rel`, established traffic passes,
/// everything else is dropped; `zero` is the first table's `ct`.
fn firewall_v6(zero: &str, ctl: &str, rel: &str) -> String {
    format!(
        "table=0,priority=100,icmp6,actions=NORMAL\n\
         table=0,priority=10,ipv6,ct_state=-trk,actions={zero}\n\
         table=1,priority=30,tcp6,in_port=vif1.0,tp_dst=21,ct_state=+trk+new,actions={ctl},NORMAL\n\
         table=1,priority=20,ipv6,ct_state=+trk+new+rel,actions={rel},NORMAL\n\
         table=1,priority=10,ipv6,ct_state=+trk+est,actions=NORMAL\n\
         table=1,priority=1,actions=drop\n"
    )
}

/// FTP over IPv6 (OVS system-traffic "FTP over IPv6", "IPv6 FTP
/// Passive"): ftplib sends `EPRT |2|..|` in active mode and `EPSV` in
/// passive mode, and the data connections pass only as `+rel`; with the
/// control connection committed without the helper they fail.
#[test]
fn ftp_over_ipv6_data_connections_pass_only_as_related() {
    let mut h = Harness::start("ctalgftp6");
    h.guest(1, None);
    h.guest(2, None);
    install(
        &h,
        &firewall_v6("ct(table=1)", "ct(commit,alg=ftp)", "ct(commit)"),
    );
    ipv6_up(&h);
    let (a, b) = (format!("{V6_NET}1"), format!("{V6_NET}2"));
    let dir = h.rundir().join("ftp-root");
    let data = payload_file(&dir, 300_000);
    let _srv = ftp_server_on(&h, &dir, &b);
    for mode in ["port", "pasv"] {
        let got = ftp_get_from(&h, mode, &b, FTP_WAIT).unwrap_or_else(|e| {
            panic!(
                "{mode}: {e}\n{}\n{}",
                h.appctl(&["dpctl/dump-conntrack"]),
                h.log()
            )
        });
        assert!(got == data, "{mode}: {} bytes, not the file", got.len());
    }
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    assert!(
        ct.lines()
            .any(|l| l.starts_with(&format!("tcp,orig=(src={a},dst={b},"))
                && l.contains(",dport=21),")
                && l.ends_with(",helper=ftp")),
        "{ct}"
    );
    // The active data connection, from the server.
    assert!(ct.contains(&format!("tcp,orig=(src={b},dst={a},")), "{ct}");
    assert!(n_packets(&h, "+new+rel") >= 2);
    let stats = h.appctl(&["dpif-netdev/pmd-stats-show"]);
    assert!(
        stats.contains(", 2 related connections, 0 bad FTP messages"),
        "{stats}"
    );

    ftp_fails_without_helper(
        &h,
        &firewall_v6("ct(table=1)", "ct(commit)", "ct(commit)"),
        &b,
    );
}

/// FTP over IPv6 through source NAT to fd00:251::99 (OVS system-traffic
/// "IPv6 FTP with SNAT", "IPv6 FTP Passive with SNAT"): the helper
/// rewrites `EPRT |2|fd00:251::1|..|` to the NAT address (one byte
/// longer, so the client's later sequence numbers move), which
/// pyftpdlib requires, and both data connections get the control
/// connection's translation; the server sees only the NAT address.
#[test]
fn ftp_over_ipv6_through_source_nat() {
    let mut h = Harness::start("ctalgsnat6");
    h.guest(1, None);
    h.guest(2, None);
    install(
        &h,
        &firewall_v6(
            "ct(nat,table=1)",
            "ct(commit,alg=ftp,nat(src=fd00:251::99))",
            "ct(commit,nat)",
        ),
    );
    ipv6_up(&h);
    nat_address_reaches_guest_1(&h, &format!("{V6_NET}99"));
    let (a, b) = (format!("{V6_NET}1"), format!("{V6_NET}2"));
    let dir = h.rundir().join("ftp-root");
    let data = payload_file(&dir, 200_000);
    let _srv = ftp_server_on(&h, &dir, &b);
    for mode in ["port", "pasv"] {
        let got = ftp_get_from(&h, mode, &b, FTP_WAIT).unwrap_or_else(|e| {
            panic!(
                "{mode}: {e}\n{}\n{}",
                h.appctl(&["dpctl/dump-conntrack"]),
                h.log()
            )
        });
        assert!(got == data, "{mode}: {} bytes, not the file", got.len());
    }
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    assert!(
        ct.lines()
            .any(|l| l.starts_with(&format!("tcp,orig=(src={a},dst={b},"))
                && l.contains(&format!("reply=(src={b},dst={V6_NET}99,sport=21,"))
                && l.ends_with(",helper=ftp")),
        "{ct}"
    );
    // The active data connection: from the server to the NAT address.
    assert!(
        ct.contains(&format!("tcp,orig=(src={b},dst={V6_NET}99,")),
        "{ct}"
    );
    let log = std::fs::read_to_string(h.rundir().join("pyftpdlib.log")).unwrap_or_default();
    assert!(log.contains(&format!("{V6_NET}99")), "{log}");
    assert!(!log.contains(&format!("{a}:")), "{log}");
    assert!(n_packets(&h, "+new+rel") >= 2);

    // OVS's "IPv6 FTP with SNAT - orig tuple": every tracked packet
    // passes only by the control connection's original tuple, which
    // the data connections carry too (`ct_ipv6_src`, `ct_tp_dst`).
    h.appctl(&["dpctl/flush-conntrack"]);
    let orig = format!("ct_nw_proto=6,ct_ipv6_src={a},ct_tp_dst=21");
    install(
        &h,
        &format!(
            "table=0,priority=100,icmp6,actions=NORMAL\n\
             table=0,priority=10,ipv6,ct_state=-trk,actions=ct(nat,table=1)\n\
             table=1,priority=10,in_port=vif1.0,ct_state=+new+trk-inv,tcp6,{orig},\
             actions=ct(commit,alg=ftp,nat(src={V6_NET}99)),NORMAL\n\
             table=1,priority=10,ct_state=+new+rel+trk-inv,ipv6,{orig},\
             actions=ct(commit,nat),NORMAL\n\
             table=1,priority=10,ct_state=+est+trk-inv,ipv6,{orig},actions=NORMAL\n\
             table=1,priority=1,actions=drop\n"
        ),
    );
    for mode in ["port", "pasv"] {
        let got = ftp_get_from(&h, mode, &b, FTP_WAIT).unwrap_or_else(|e| {
            panic!(
                "{mode} by the original tuple: {e}\n{}\n{}",
                h.appctl(&["dpctl/dump-conntrack"]),
                h.log()
            )
        });
        assert!(got == data, "{mode}: {} bytes, not the file", got.len());
    }
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    assert!(
        ct.contains(&format!("tcp,orig=(src={b},dst={V6_NET}99,")),
        "{ct}"
    );
}

/// A minimal TFTP client (RFC 1350 read request, octet mode) in guest
/// 1, bound to `local`:5000, fetching data.bin from guest 2 and waiting
/// at most 30 s for each block (a bound for a loaded machine): the
/// bytes, or the error.
fn tftp_get_from_port_5000(h: &Harness, local: &str) -> Result<Vec<u8>, String> {
    let code = format!(
        r#"
import socket, sys
SRV = "{srv}"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{local}", 5000))
s.settimeout(30)
out = bytearray()
block = 1
try:
    s.sendto(b"\x00\x01data.bin\x00octet\x00", (SRV, 69))
    while True:
        pkt, peer = s.recvfrom(1024)
        if peer[0] != SRV or len(pkt) < 4:
            continue
        op, n = int.from_bytes(pkt[:2], "big"), int.from_bytes(pkt[2:4], "big")
        if op == 5:
            raise Exception("TFTP error %r" % pkt)
        if op == 3 and n == block:
            out += pkt[4:]
            s.sendto(b"\x00\x04" + pkt[2:4], peer)
            block += 1
            if len(pkt) - 4 < 512:
                break
        elif op == 3 and n == block - 1:
            s.sendto(b"\x00\x04" + pkt[2:4], peer)
except Exception as e:
    sys.stderr.write("%s: %s" % (type(e).__name__, e))
    sys.exit(1)
sys.stdout.buffer.write(out)
"#,
        srv = Harness::ip_of(2),
    );
    python_in_guest_1(h, &code)
}

/// TFTP through source NAT when the NAT has to move the client's port:
/// two clients in guest 1 (10.251.0.1 and 10.251.0.11) both use port
/// 5000; the second one's control connection leaves from another port
/// of 10.251.0.99, in.tftpd answers that port, and the helper expects
/// the answer there and translates it back to 10.251.0.11:5000. (OVS
/// expects the answer at port 5000, where the first client's
/// expectation already is, and drops it.)
#[test]
fn tftp_through_source_nat_follows_a_moved_client_port() {
    common::require_tool("in.tftpd", "tftpd-hpa");
    let mut h = Harness::start("ctalgtftpmv");
    h.guest(1, None);
    h.guest(2, None);
    let second = "10.251.0.11";
    let add = h.exec(
        1,
        &["ip", "addr", "add", &format!("{second}/24"), "dev", "eth0"],
    );
    assert!(add.status.success(), "{add:?}");
    nat_address_reaches_guest_1(&h, "10.251.0.99");
    let dir = h.rundir().join("tftp-root");
    let data = payload_file(&dir, 100_000);
    let _srv = tftp_server(&h, &dir);
    install(
        &h,
        "table=0,priority=10,arp,actions=NORMAL\n\
         table=0,priority=10,ip,ct_state=-trk,actions=ct(nat,table=1)\n\
         table=1,priority=30,udp,in_port=vif1.0,tp_dst=69,ct_state=+trk+new,\
         actions=ct(commit,alg=tftp,nat(src=10.251.0.99)),NORMAL\n\
         table=1,priority=20,ip,ct_state=+trk+new+rel,actions=ct(commit,nat),NORMAL\n\
         table=1,priority=10,ip,ct_state=+trk+est,actions=NORMAL\n\
         table=1,priority=1,actions=drop\n",
    );
    for local in [Harness::ip_of(1), second.to_string()] {
        let got = tftp_get_from_port_5000(&h, &local).unwrap_or_else(|e| {
            panic!(
                "{local}: {e}\n{}\n{}",
                h.appctl(&["dpctl/dump-conntrack"]),
                h.log()
            )
        });
        assert!(got == data, "{local}: {} bytes, not the file", got.len());
    }
    // The second control connection's port was moved (the first one's
    // still held 10.251.0.99:5000), and its data connection goes back
    // to port 5000.
    let ct = h.appctl(&["dpctl/dump-conntrack"]);
    let b = Harness::ip_of(2);
    let ctl = ct
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "udp,orig=(src={second},dst={b},sport=5000,dport=69)"
            ))
        })
        .unwrap_or_else(|| panic!("{ct}"));
    assert!(ctl.ends_with(",helper=tftp"), "{ctl}");
    assert!(
        !ctl.contains("dst=10.251.0.99,sport=69,dport=5000)"),
        "{ctl}"
    );
    assert!(
        ct.lines().any(
            |l| l.starts_with(&format!("udp,orig=(src={b},dst=10.251.0.99,"))
                && l.contains(&format!("reply=(src={second},dst={b},sport=5000,"))
        ),
        "{ct}"
    );
}
