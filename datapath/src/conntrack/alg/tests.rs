//! ALG tests: the FTP message parsers on good, malformed and hostile
//! input, and the tracker's expectations (`+rel`, expiry, bounds) on
//! frames built by etherparse.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;

use super::*;
use crate::buffer::Packet;
use crate::conntrack::{Conntrack, CtArgs};

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const A6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn a4(a: [u8; 4]) -> Option<u128> {
    Some(u128::from(u32::from_be_bytes(a)))
}

#[test]
fn ftp_v4_parser_reads_port_pasv_eprt_epsv() {
    let data = |active, addr, port, span| FtpMsg::Data {
        active,
        addr,
        port,
        span,
    };
    assert_eq!(
        parse_ftp_v4(b"PORT 10,0,0,1,156,64\r\n"),
        data(true, a4(A), 40000, Some((5, 8)))
    );
    assert_eq!(
        parse_ftp_v4(b"port 10,0,0,1,0,21\r\n"),
        data(true, a4(A), 21, Some((5, 8)))
    );
    assert_eq!(
        parse_ftp_v4(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"),
        data(false, a4(B), 50000, Some((27, 8)))
    );
    // pyftpdlib and vsftpd put no parenthesis for some clients.
    assert_eq!(
        parse_ftp_v4(b"227 Entering passive mode 10,0,0,2,4,1\r\n"),
        data(false, a4(B), 1025, Some((26, 8)))
    );
    assert_eq!(
        parse_ftp_v4(b"EPRT |1|10.0.0.1|6275|\r\n"),
        data(true, a4(A), 6275, Some((8, 8)))
    );
    assert_eq!(
        parse_ftp_v4(b"229 Entering Extended Passive Mode (|||50001|)\r\n"),
        data(false, None, 50001, None)
    );
    for other in [
        &b"USER anonymous\r\n"[..],
        b"230 Login successful.\r\n",
        b"RETR file\r\n",
        b"",
        b"P",
        b"PAS",
    ] {
        assert_eq!(parse_ftp_v4(other), FtpMsg::Other, "{other:?}");
    }
}

#[test]
fn ftp_v4_parser_refuses_malformed_and_hostile_messages() {
    for bad in [
        &b"PORT\r\n"[..],
        b"PORT10,0,0,1,1,1\r\n",
        b"PORT \r\n",
        b"PORT 10,0,0,256,1,1\r\n",
        b"PORT 10,0,0,1,256,1\r\n",
        b"PORT 10,0,0,1,1,256\r\n",
        b"PORT 10,0,0,1,1\r\n",
        b"PORT 10,0,0,1,1,\r\n",
        b"PORT 10,0,0,1,0001,1\r\n",
        b"PORT 10,0,0,1,0,0\r\n",
        b"PORT 10,0,0\r\n",
        b"PORT 10,0,0,01,1,1\r\n",
        b"PORT 99999999999999999999,1,1\r\n",
        b"EPRT |2|10.0.0.1|6275|\r\n",
        b"EPRT |12|10.0.0.1|6275|\r\n",
        b"EPRT |1|10.0.0.1|99999|\r\n",
        b"EPRT |1|10.0.0.1||\r\n",
        b"EPRT |1|\r\n",
        b"229 Entering Extended Passive Mode (|||70000|)\r\n",
        b"229 Entering Extended Passive Mode (|||0|)\r\n",
        b"229 nothing\r\n",
        b"227 Entering Passive Mode (10,0,0,2,195)\r\n",
        b"227 \xff\xfe\x00",
    ] {
        assert_eq!(
            parse_ftp_v4(bad),
            FtpMsg::Invalid,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // OVS reads 127 bytes: a port past them is not seen.
    let mut long = b"PORT ".to_vec();
    long.extend(std::iter::repeat(b' ').take(120));
    long.extend(b"10,0,0,1,1,1\r\n");
    assert_eq!(parse_ftp_v4(&long), FtpMsg::Invalid);
    // A NUL ends the message (OVS copies with strlcpy).
    assert_eq!(parse_ftp_v4(b"PORT 10,0\x00,0,1,1,1\r\n"), FtpMsg::Invalid);
}

#[test]
fn ftp_v6_parser_reads_eprt_and_epsv_only() {
    assert_eq!(
        parse_ftp_v6(b"EPRT |2|fd00::1|40000|\r\n"),
        FtpMsg::Data {
            active: true,
            addr: Some(u128::from_be_bytes(A6)),
            port: 40000,
            span: Some((8, 7)),
        }
    );
    assert_eq!(
        parse_ftp_v6(b"229 Entering extended passive mode (|||50000|).\r\n"),
        FtpMsg::Data {
            active: false,
            addr: None,
            port: 50000,
            span: None,
        }
    );
    assert_eq!(parse_ftp_v6(b"PORT 10,0,0,1,1,1\r\n"), FtpMsg::Other);
    assert_eq!(
        parse_ftp_v6(b"227 Entering Passive Mode (1,2,3,4,5,6)\r\n"),
        FtpMsg::Other
    );
    for bad in [
        &b"EPRT |1|10.0.0.1|6275|\r\n"[..],
        b"EPRT |2|fd00::zz|6275|\r\n",
        b"EPRT |2|fd00::1|\r\n",
        b"EPRT |2|fd00::1|65536|\r\n",
        b"EPRT\r\n",
        b"229 Extended Passive Mode (|||x|)\r\n",
        b"229 Extended Passive Mode\r\n",
    ] {
        assert_eq!(
            parse_ftp_v6(bad),
            FtpMsg::Invalid,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// Arbitrary bytes after each keyword never panic either parser.
#[test]
fn ftp_parsers_never_panic_on_random_input() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"0123456789,.|() :abcdefEPRTSVxyz\r\n\x00\xff";
    for prefix in [
        &b"PORT "[..],
        b"EPRT |1|",
        b"EPRT |2|",
        b"227 (",
        b"229 Extended Passive (|||",
        b"",
    ] {
        for _ in 0..3000 {
            let n = (next() % 200) as usize;
            let mut m = prefix.to_vec();
            m.extend((0..n).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
            let _ = parse_ftp_v4(&m);
            let _ = parse_ftp_v6(&m);
        }
    }
}

// ---- tracker tests ----

fn ftp_args(helper: Option<Helper>) -> CtArgs {
    CtArgs {
        commit: true,
        helper,
        mark: Some((7, u32::MAX)),
        ..CtArgs::default()
    }
}

fn commit() -> CtArgs {
    CtArgs {
        commit: true,
        ..CtArgs::default()
    }
}

/// A TCP segment over IPv4 or IPv6 (`src` and `dst` of one family);
/// `flags` letters S, A, P.
#[allow(clippy::too_many_arguments)] // the segment's fields, as a packet trace lists them
fn tcp(
    src: impl Into<IpAddr>,
    dst: impl Into<IpAddr>,
    sp: u16,
    dp: u16,
    flags: &str,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Packet {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let ip = match (src.into(), dst.into()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("tcp: addresses of two families"),
    };
    let mut b = ip.tcp(sp, dp, seq, 64000);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(ack);
    }
    if flags.contains('P') {
        b = b.psh();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    Packet::from_slice(&v)
}

fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Packet {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(sp, dp)
        .write(&mut v, b"\x00\x01file\x00octet\x00")
        .unwrap();
    Packet::from_slice(&v)
}

fn run(ct: &Conntrack, mut p: Packet, args: &CtArgs, now: Instant) -> (u32, crate::buffer::CtMeta) {
    ct.execute(&mut p, args, now);
    (p.md.ct.state, p.md.ct)
}

/// An FTP control connection from A:`cport` to B:21 through a tracker,
/// committed with `args`, its handshake done.
struct Ctl<'a> {
    ct: &'a Conntrack,
    args: CtArgs,
    cport: u16,
    cseq: u32,
    sseq: u32,
    now: Instant,
}

impl<'a> Ctl<'a> {
    fn open(ct: &'a Conntrack, args: CtArgs, cport: u16, now: Instant) -> Self {
        let c = Ctl {
            ct,
            args,
            cport,
            cseq: 1000,
            sseq: 5000,
            now,
        };
        let (s, _) = run(ct, tcp(A, B, cport, 21, "S", 999, 0, b""), &c.args, now);
        assert_eq!(s, cs::TRK | cs::NEW);
        let (s, _) = run(
            ct,
            tcp(B, A, 21, cport, "SA", 4999, 1000, b""),
            &c.args,
            now,
        );
        assert_eq!(s, cs::TRK | cs::EST | cs::RPL);
        let (s, _) = run(ct, tcp(A, B, cport, 21, "A", 1000, 5000, b""), &c.args, now);
        assert_eq!(s, cs::TRK | cs::EST);
        c
    }

    /// The client sends `m`; returns the `ct_state`.
    fn client(&mut self, m: &[u8]) -> u32 {
        let p = tcp(A, B, self.cport, 21, "PA", self.cseq, self.sseq, m);
        self.cseq += m.len() as u32;
        run(self.ct, p, &self.args, self.now).0
    }

    /// The server sends `m`; returns the `ct_state`.
    fn server(&mut self, m: &[u8]) -> u32 {
        let p = tcp(B, A, 21, self.cport, "PA", self.sseq, self.cseq, m);
        self.sseq += m.len() as u32;
        run(self.ct, p, &self.args, self.now).0
    }
}

#[test]
fn ftp_passive_data_connection_is_related() {
    let ct = Conntrack::new();
    let now = Instant::now();
    let mut c = Ctl::open(&ct, ftp_args(Some(Helper::Ftp)), 40000, now);
    assert!(
        ct.dump(None)[0].ends_with(",protoinfo=(state=ESTABLISHED),helper=ftp"),
        "{:?}",
        ct.dump(None)
    );
    assert_eq!(
        c.server(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"),
        cs::TRK | cs::EST | cs::RPL
    );
    assert_eq!(ct.stats().alg.held, 1);
    // Not the expected port: unrelated.
    let (s, _) = run(
        &ct,
        tcp(A, B, 40001, 50001, "S", 1, 0, b""),
        &CtArgs::default(),
        now,
    );
    assert_eq!(s, cs::TRK | cs::NEW);
    // Not committed yet: +new+rel, with the control connection's mark
    // and original tuple.
    let (s, md) = run(
        &ct,
        tcp(A, B, 40001, 50000, "S", 1, 0, b""),
        &CtArgs::default(),
        now,
    );
    assert_eq!(s, cs::TRK | cs::NEW | cs::REL);
    assert_eq!((md.mark, md.tp_src, md.tp_dst), (7, 40000, 21));
    // Committed with its own mark: the control connection's stays.
    let (s, md) = run(
        &ct,
        tcp(A, B, 40001, 50000, "S", 1, 0, b""),
        &ftp_args(None),
        now,
    );
    assert_eq!(s, cs::TRK | cs::NEW | cs::REL);
    assert_eq!((md.mark, md.tp_dst), (7, 21));
    let (s, _) = run(
        &ct,
        tcp(B, A, 50000, 40001, "SA", 9, 2, b""),
        &CtArgs::default(),
        now,
    );
    assert_eq!(s, cs::TRK | cs::EST | cs::REL | cs::RPL);
    let (s, md) = run(
        &ct,
        tcp(A, B, 40001, 50000, "A", 2, 10, b""),
        &CtArgs::default(),
        now,
    );
    assert_eq!(s, cs::TRK | cs::EST | cs::REL);
    assert_eq!(md.tp_dst, 21);
    assert_eq!(ct.stats().alg.related, 1);
    // Only the control connection has a helper.
    let d = ct.dump(None);
    assert_eq!(
        d.iter().filter(|l| l.contains("helper=ftp")).count(),
        1,
        "{d:?}"
    );
}

#[test]
fn ftp_active_port_and_eprt_expect_the_server() {
    let ct = Conntrack::new();
    let now = Instant::now();
    let mut c = Ctl::open(&ct, ftp_args(Some(Helper::Ftp)), 40010, now);
    assert_eq!(c.client(b"PORT 10,0,0,1,156,100\r\n"), cs::TRK | cs::EST);
    assert_eq!(c.client(b"EPRT |1|10.0.0.1|40101|\r\n"), cs::TRK | cs::EST);
    for port in [40036, 40101] {
        let (s, _) = run(&ct, tcp(B, A, 20, port, "S", 1, 0, b""), &commit(), now);
        assert_eq!(s, cs::TRK | cs::NEW | cs::REL, "{port}");
    }
    // The client's side may not connect to its own expectation.
    let (s, _) = run(&ct, tcp(A, B, 20, 40036, "S", 1, 0, b""), &commit(), now);
    assert_eq!(s, cs::TRK | cs::NEW);
}

#[test]
fn ftp_without_helper_or_with_a_foreign_address_expects_nothing() {
    let ct = Conntrack::new();
    let now = Instant::now();
    // Committed without alg=ftp: port 21 alone is no helper.
    let mut c = Ctl::open(&ct, ftp_args(None), 40020, now);
    assert_eq!(
        c.server(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"),
        cs::TRK | cs::EST | cs::RPL
    );
    assert_eq!(ct.stats().alg.held, 0);
    assert!(!ct.dump(None)[0].contains("helper="));

    // A PORT naming a third host (the FTP bounce attack) is +inv.
    let mut c = Ctl::open(&ct, ftp_args(Some(Helper::Ftp)), 40021, now);
    assert_eq!(
        c.client(b"PORT 10,0,0,9,156,64\r\n"),
        cs::TRK | cs::EST | cs::INV
    );
    assert_eq!(
        c.client(b"PORT 10,0,0,1,999,64\r\n"),
        cs::TRK | cs::EST | cs::INV
    );
    let st = ct.stats();
    assert_eq!((st.alg.held, st.alg.ftp_invalid), (0, 2));
    let (s, _) = run(&ct, tcp(B, A, 20, 40000, "S", 1, 0, b""), &commit(), now);
    assert_eq!(s, cs::TRK | cs::NEW);
}

#[test]
fn ftp_v6_eprt_and_epsv() {
    let ct = Conntrack::new();
    let now = Instant::now();
    let args = ftp_args(Some(Helper::Ftp));
    let run6 = |p| run(&ct, p, &args, now).0;
    assert_eq!(
        run6(tcp(A6, B6, 40030, 21, "S", 999, 0, b"")),
        cs::TRK | cs::NEW
    );
    run6(tcp(B6, A6, 21, 40030, "SA", 4999, 1000, b""));
    run6(tcp(A6, B6, 40030, 21, "A", 1000, 5000, b""));
    let m = b"EPRT |2|fd00::1|40031|\r\n";
    assert_eq!(
        run6(tcp(A6, B6, 40030, 21, "A", 1000, 5000, m)),
        cs::TRK | cs::EST
    );
    let r = b"229 Entering Extended Passive Mode (|||50030|)\r\n";
    let s = run6(tcp(B6, A6, 21, 40030, "A", 5000, 1000 + m.len() as u32, r));
    assert_eq!(s, cs::TRK | cs::EST | cs::RPL);
    let plain = CtArgs::default();
    let (s, _) = run(&ct, tcp(B6, A6, 20, 40031, "S", 1, 0, b""), &plain, now);
    assert_eq!(s, cs::TRK | cs::NEW | cs::REL);
    let (s, _) = run(&ct, tcp(A6, B6, 40032, 50030, "S", 1, 0, b""), &plain, now);
    assert_eq!(s, cs::TRK | cs::NEW | cs::REL);
}

#[test]
fn tftp_reply_from_any_server_port_is_related() {
    let ct = Conntrack::new();
    let now = Instant::now();
    let tftp = CtArgs {
        commit: true,
        helper: Some(Helper::Tftp),
        ..CtArgs::default()
    };
    let (s, _) = run(&ct, udp(A, B, 5000, 69), &tftp, now);
    assert_eq!(s, cs::TRK | cs::NEW);
    assert!(
        ct.dump(None)[0].ends_with(",helper=tftp"),
        "{:?}",
        ct.dump(None)
    );
    let (s, md) = run(&ct, udp(B, A, 33333, 5000), &commit(), now);
    assert_eq!(s, cs::TRK | cs::NEW | cs::REL);
    assert_eq!((md.tp_src, md.tp_dst), (5000, 69));
    let (s, _) = run(&ct, udp(A, B, 5000, 33333), &commit(), now);
    assert_eq!(s, cs::TRK | cs::EST | cs::REL | cs::RPL);
    // Another client port is not expected.
    let (s, _) = run(&ct, udp(B, A, 33334, 5001), &commit(), now);
    assert_eq!(s, cs::TRK | cs::NEW);
    // Without the helper, no expectation.
    let ct = Conntrack::new();
    run(&ct, udp(A, B, 5000, 69), &commit(), now);
    let (s, _) = run(&ct, udp(B, A, 33333, 5000), &commit(), now);
    assert_eq!(s, cs::TRK | cs::NEW);
}

/// The UDP frame's addresses and ports.
fn udp_tuple(p: &Packet) -> ([u8; 4], [u8; 4], u16, u16) {
    let d = p.data();
    let port = |at: usize| u16::from_be_bytes([d[at], d[at + 1]]);
    (
        d[26..30].try_into().unwrap(),
        d[30..34].try_into().unwrap(),
        port(34),
        port(36),
    )
}

/// TFTP through source NAT (OVS system-traffic "IPv4 TFTP with SNAT"):
/// the server's answer from a new port to the translated address is
/// `+rel` and leaves translated back to the client (its `ct(commit,nat)`
/// takes the control connection's translation). When the NAT had to
/// move the client's port (another client holds it on X), the answer
/// to the moved port is expected and goes back to the client's own
/// port; OVS expects the unmoved port there, which the other client's
/// expectation holds.
#[test]
fn tftp_through_snat_answers_the_translated_port() {
    const X: [u8; 4] = [10, 0, 0, 99];
    const C: [u8; 4] = [10, 0, 0, 3];
    let ct = Conntrack::new();
    let now = Instant::now();
    let (mut cli, srv) = snat_args(X);
    cli.helper = Some(Helper::Tftp);
    let mut req = udp(A, B, 5000, 69);
    ct.execute(&mut req, &cli, now);
    assert_eq!(req.md.ct.state, cs::TRK | cs::NEW | cs::SNAT);
    assert_eq!(udp_tuple(&req), (X, B, 5000, 69));
    // Another client, same port: its translation must move the port.
    let mut req2 = udp(C, B, 5000, 69);
    ct.execute(&mut req2, &cli, now);
    let (_, _, moved, _) = udp_tuple(&req2);
    assert_ne!(moved, 5000);
    assert_eq!(ct.stats().alg.held, 2);

    for (client, port, data_port) in [(A, 5000, 33333), (C, moved, 33334)] {
        let mut ans = udp(B, X, data_port, port);
        ct.execute(&mut ans, &srv, now);
        assert_eq!(
            ans.md.ct.state,
            cs::TRK | cs::NEW | cs::REL | cs::DNAT,
            "answer to {port}"
        );
        assert_eq!(
            udp_tuple(&ans),
            (B, client, data_port, 5000),
            "answer to {port}"
        );
        // The client's acknowledgement leaves translated.
        let mut ack = udp(client, B, 5000, data_port);
        ct.execute(&mut ack, &srv, now);
        assert_eq!(
            ack.md.ct.state,
            cs::TRK | cs::EST | cs::REL | cs::RPL | cs::SNAT
        );
        assert_eq!(udp_tuple(&ack), (X, B, port, data_port));
    }
    assert_eq!(ct.stats().alg.related, 2);
}

/// `memory_bytes` counts the expectations and the control connections'
/// ALG state: the same 200 TFTP requests committed with and without the
/// helper make the same connections, and the helper's tracker holds at
/// least 200 expectations and 200 ALG states more; they go with a flush.
#[test]
fn memory_counts_expectations() {
    let now = Instant::now();
    let tftp = CtArgs {
        commit: true,
        helper: Some(Helper::Tftp),
        ..CtArgs::default()
    };
    let (with, without) = (Conntrack::new(), Conntrack::new());
    for i in 0..200u16 {
        run(&with, udp(A, B, 1000 + i, 69), &tftp, now);
        run(&without, udp(A, B, 1000 + i, 69), &commit(), now);
    }
    assert_eq!(with.stats().alg.held, 200);
    assert_eq!((with.nconns(), without.nconns()), (200, 200));
    let extra = with.memory_bytes() - without.memory_bytes();
    let least = 200
        * (std::mem::size_of::<(ConnKey, Expect)>()
            + std::mem::size_of::<(u64, ConnKey)>()
            + std::mem::size_of::<ConnAlg>());
    assert!(extra >= least, "{extra} bytes more, not {least}");
    // A flush removes the connections' ALG state; the tables keep their
    // allocations.
    with.flush(None);
    without.flush(None);
    assert_eq!(with.stats().alg.held, 0);
    let kept = with.memory_bytes() - without.memory_bytes();
    assert!(kept < extra, "{kept} of {extra} bytes after a flush");
}

#[test]
fn expectations_expire_and_go_with_their_control_connection() {
    let ct = Conntrack::new();
    let now = Instant::now();
    let mut c = Ctl::open(&ct, ftp_args(Some(Helper::Ftp)), 40040, now);
    c.server(b"227 Entering Passive Mode (10,0,0,2,195,81).\r\n");
    let syn = || tcp(A, B, 40041, 50001, "S", 1, 0, b"");
    let before = now + Duration::from_millis(EXPECT_TIMEOUT_MS - 1);
    assert_eq!(
        run(&ct, syn(), &CtArgs::default(), before).0,
        cs::TRK | cs::NEW | cs::REL
    );
    let after = now + Duration::from_millis(EXPECT_TIMEOUT_MS);
    assert_eq!(
        run(&ct, syn(), &CtArgs::default(), after).0,
        cs::TRK | cs::NEW
    );
    let st = ct.stats().alg;
    assert_eq!((st.held, st.expired), (0, 1));

    // The sweeper drops them too, without a lookup.
    c.now = after;
    c.server(b"227 Entering Passive Mode (10,0,0,2,195,82).\r\n");
    assert_eq!(ct.stats().alg.held, 1);
    ct.sweep(after + Duration::from_millis(EXPECT_TIMEOUT_MS + 1));
    assert_eq!(ct.stats().alg.held, 0);

    // Flushing the control connection removes its expectations.
    c.now = now;
    c.server(b"227 Entering Passive Mode (10,0,0,2,195,83).\r\n");
    assert_eq!(ct.stats().alg.held, 1);
    assert!(ct.flush(None) >= 1);
    assert_eq!(ct.stats().alg.held, 0);
    let syn = tcp(A, B, 40041, 50003, "S", 1, 0, b"");
    assert_eq!(run(&ct, syn, &CtArgs::default(), now).0, cs::TRK | cs::NEW);
}

#[test]
fn expectations_are_bounded_per_connection_and_in_total() {
    let ct = Conntrack::new();
    let now = Instant::now();
    let mut c = Ctl::open(&ct, ftp_args(Some(Helper::Ftp)), 1024, now);
    for p in 0..6u16 {
        let m = format!("227 Entering Passive Mode (10,0,0,2,200,{p}).\r\n");
        c.server(m.as_bytes());
    }
    let st = ct.stats().alg;
    assert_eq!(
        (st.held, st.created, st.replaced),
        (MAX_PER_CONN as u64, 6, 2)
    );
    let plain = CtArgs::default();
    // The two oldest were replaced; the newest is expected.
    let (s, _) = run(&ct, tcp(A, B, 9, 200 << 8, "S", 1, 0, b""), &plain, now);
    assert_eq!(s, cs::TRK | cs::NEW);
    let (s, _) = run(&ct, tcp(A, B, 9, 200 << 8 | 5, "S", 1, 0, b""), &plain, now);
    assert_eq!(s, cs::TRK | cs::NEW | cs::REL);

    // One expectation per control connection up to the table's bound.
    let ct = Conntrack::new();
    for i in 0..=MAX_EXPECTATIONS as u16 {
        let mut c = Ctl::open(&ct, ftp_args(Some(Helper::Ftp)), 2000 + i, now);
        c.server(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n");
    }
    // Every control connection expects B:50000 from A: one key, so one
    // expectation.
    assert_eq!(ct.stats().alg.held, 1);
    let ct = Conntrack::new();
    for i in 0..=MAX_EXPECTATIONS as u16 {
        let mut c = Ctl::open(&ct, ftp_args(Some(Helper::Ftp)), 2000 + i, now);
        let m = format!(
            "227 Entering Passive Mode (10,0,0,2,{},{}).\r\n",
            100 + i / 256,
            i % 256
        );
        c.server(m.as_bytes());
    }
    let st = ct.stats().alg;
    assert_eq!((st.held, st.refused), (MAX_EXPECTATIONS as u64, 1));
}

/// Under source NAT the helper writes the NAT address over the client's
/// in `PORT` (one byte longer here), fixes the IP length and the
/// checksums, and moves the sequence numbers after it: the server's
/// acknowledgements back (the tracker sees them in the client's
/// numbering, so they stay valid) and the client's sequence numbers on.
#[test]
fn ftp_port_is_rewritten_under_snat_and_sequence_numbers_follow() {
    const X: [u8; 4] = [10, 0, 0, 99];
    let ct = Conntrack::new();
    let now = Instant::now();
    let (cli, srv) = snat_args(X);
    let exec = |mut p: Packet, a: &CtArgs| {
        ct.execute(&mut p, a, now);
        p
    };
    exec(tcp(A, B, 40050, 21, "S", 999, 0, b""), &cli);
    exec(tcp(B, X, 21, 40050, "SA", 4999, 1000, b""), &srv);
    exec(tcp(A, B, 40050, 21, "A", 1000, 5000, b""), &cli);
    let port = b"PORT 10,0,0,1,156,64\r\n";
    let n = port.len() as u32;
    let p = exec(tcp(A, B, 40050, 21, "PA", 1000, 5000, port), &cli);
    let d = p.data();
    assert_eq!(&d[54..], b"PORT 10,0,0,99,156,64\r\n");
    assert_eq!(&d[26..30], &X, "source translated");
    assert_eq!(u16::from_be_bytes([d[16], d[17]]) as usize, d.len() - 14);
    assert_eq!(crate::csum::checksum(&d[14..34]), 0, "IPv4 header checksum");
    assert!(crate::csum::verify_l4(d), "TCP checksum");
    assert_eq!(p.md.ct.state, cs::TRK | cs::EST | cs::SNAT);
    // A second `ct(nat)` in the zone translates nothing again.
    let again = exec(p.clone(), &cli);
    assert_eq!(again.data(), p.data());

    // The server acknowledges the longer stream.
    let q = exec(tcp(B, X, 21, 40050, "A", 5000, 1000 + n + 1, b""), &srv);
    assert_eq!(q.md.ct.state, cs::TRK | cs::EST | cs::RPL | cs::DNAT);
    let d = q.data();
    assert_eq!(u32::from_be_bytes([d[42], d[43], d[44], d[45]]), 1000 + n);
    assert!(crate::csum::verify_l4(d));
    // The client's next segment follows on in the server's numbering.
    let r = exec(
        tcp(A, B, 40050, 21, "PA", 1000 + n, 5000, b"RETR x\r\n"),
        &cli,
    );
    assert_eq!(r.md.ct.state, cs::TRK | cs::EST | cs::SNAT);
    let d = r.data();
    assert_eq!(
        u32::from_be_bytes([d[38], d[39], d[40], d[41]]),
        1000 + n + 1
    );
    assert!(crate::csum::verify_l4(d));

    // The server's data connection to the NAT address reaches the
    // client, `+rel`.
    let s = exec(tcp(B, X, 20, 40000, "S", 7, 0, b""), &srv);
    assert_eq!(s.md.ct.state, cs::TRK | cs::NEW | cs::REL | cs::DNAT);
    assert_eq!(&s.data()[30..34], &A);
    assert_eq!(ct.stats().alg.nat_rewrite_failed, 0);
}

/// Under destination NAT (a virtual address in front of the server) the
/// server's `227` names the virtual address when it reaches the client,
/// the server's later segments move on by the skew, and the client's
/// passive data connection to the virtual address reaches the server.
#[test]
fn ftp_pasv_is_rewritten_under_dnat() {
    use crate::conntrack::NatKind;
    const VIP: [u8; 4] = [203, 0, 113, 10];
    const SRV: [u8; 4] = [10, 0, 0, 2];
    let ct = Conntrack::new();
    let now = Instant::now();
    let (cli, back) = ftp_nat_args(NatKind::Dst, SRV);
    let back = CtArgs {
        commit: false,
        ..back
    };
    let exec = |mut p: Packet, a: &CtArgs| {
        ct.execute(&mut p, a, now);
        p
    };
    exec(tcp(A, VIP, 40060, 21, "S", 999, 0, b""), &cli);
    exec(tcp(SRV, A, 21, 40060, "SA", 4999, 1000, b""), &back);
    exec(tcp(A, VIP, 40060, 21, "A", 1000, 5000, b""), &cli);
    let pasv = b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n";
    let n = pasv.len() as u32;
    let p = exec(tcp(SRV, A, 21, 40060, "PA", 5000, 1000, pasv), &back);
    assert_eq!(p.md.ct.state, cs::TRK | cs::EST | cs::RPL | cs::SNAT);
    let d = p.data();
    assert_eq!(
        &d[54..],
        b"227 Entering Passive Mode (203,0,113,10,195,80).\r\n"
    );
    assert_eq!(&d[26..30], &VIP);
    assert_eq!(crate::csum::checksum(&d[14..34]), 0);
    assert!(crate::csum::verify_l4(d));
    let skew = 4;
    // The client acknowledges the longer reply; the server sees its own
    // numbering.
    let q = exec(
        tcp(A, VIP, 40060, 21, "A", 1000, 5000 + n + skew, b""),
        &cli,
    );
    assert_eq!(q.md.ct.state, cs::TRK | cs::EST | cs::DNAT);
    let d = q.data();
    assert_eq!(u32::from_be_bytes([d[42], d[43], d[44], d[45]]), 5000 + n);
    let r = exec(
        tcp(SRV, A, 21, 40060, "PA", 5000 + n, 1000, b"150 ok\r\n"),
        &back,
    );
    let d = r.data();
    assert_eq!(
        u32::from_be_bytes([d[38], d[39], d[40], d[41]]),
        5000 + n + skew
    );
    assert!(crate::csum::verify_l4(d));
    // The passive data connection to the virtual address.
    let s = exec(tcp(A, VIP, 40061, 50000, "S", 1, 0, b""), &cli);
    assert_eq!(s.md.ct.state, cs::TRK | cs::NEW | cs::REL | cs::DNAT);
    assert_eq!(&s.data()[30..34], &SRV);
}

/// The `ct` arguments of the client side (`ct(commit,alg=ftp,nat(src=
/// X))`) and of the server side (`ct(commit,nat)`) of an FTP control
/// connection under source NAT.
fn snat_args(x: [u8; 4]) -> (CtArgs, CtArgs) {
    ftp_nat_args(crate::conntrack::NatKind::Src, x)
}

/// [`snat_args`] for NAT of `kind` to `x` (`nat(dst=X)` for
/// `NatKind::Dst`).
fn ftp_nat_args(kind: crate::conntrack::NatKind, x: [u8; 4]) -> (CtArgs, CtArgs) {
    use crate::conntrack::NatArgs;
    let nat = NatArgs {
        kind: Some(kind),
        addr_min: Some(std::net::IpAddr::V4(x.into())),
        addr_max: None,
        port_min: 0,
        port_max: 0,
        persistent: false,
        random: false,
    };
    let cli = CtArgs {
        commit: true,
        helper: Some(Helper::Ftp),
        nat: Some(nat),
        ..CtArgs::default()
    };
    let srv = CtArgs {
        commit: true,
        nat: Some(NatArgs {
            kind: None,
            addr_min: None,
            ..nat
        }),
        ..CtArgs::default()
    };
    (cli, srv)
}

/// The sequence and acknowledgement numbers of an IPv4 TCP frame.
fn seq_ack(p: &Packet) -> (u32, u32) {
    let d = p.data();
    let word = |at: usize| u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    (word(38), word(42))
}

/// Retransmissions under source NAT (Linux `nf_ct_seqadj`: a correction
/// position, an offset before it and one after): a `PORT` sent again
/// (its acknowledgement lost) is rewritten again but grows the stream
/// once, leaving with the sequence number the first copy had; a segment
/// from before the `PORT` sent again, and an acknowledgement of data
/// before it, are not moved; what follows the `PORT` moves by one
/// rewrite's growth, not two.
#[test]
fn ftp_retransmissions_move_sequence_numbers_once() {
    const X: [u8; 4] = [10, 0, 0, 99];
    let ct = Conntrack::new();
    let now = Instant::now();
    let (cli, srv) = snat_args(X);
    let exec = |mut p: Packet, a: &CtArgs| {
        ct.execute(&mut p, a, now);
        p
    };
    exec(tcp(A, B, 40051, 21, "S", 999, 0, b""), &cli);
    exec(tcp(B, X, 21, 40051, "SA", 4999, 1000, b""), &srv);
    exec(tcp(A, B, 40051, 21, "A", 1000, 5000, b""), &cli);
    let ty = b"TYPE I\r\n";
    let k = ty.len() as u32;
    exec(tcp(A, B, 40051, 21, "PA", 1000, 5000, ty), &cli);
    let port = b"PORT 10,0,0,1,156,64\r\n";
    let n = port.len() as u32;
    let first = exec(tcp(A, B, 40051, 21, "PA", 1000 + k, 5000, port), &cli);
    assert_eq!(&first.data()[54..], b"PORT 10,0,0,99,156,64\r\n");
    assert_eq!(seq_ack(&first).0, 1000 + k);

    let again = exec(tcp(A, B, 40051, 21, "PA", 1000 + k, 5000, port), &cli);
    assert_eq!(again.md.ct.state, cs::TRK | cs::EST | cs::SNAT);
    assert_eq!(again.data(), first.data(), "the same segment again");
    let early = exec(tcp(A, B, 40051, 21, "PA", 1000, 5000, ty), &cli);
    assert_eq!(seq_ack(&early).0, 1000, "before the PORT: not moved");
    assert!(crate::csum::verify_l4(early.data()));

    // The server acknowledges the TYPE only, then everything.
    let q = exec(tcp(B, X, 21, 40051, "A", 5000, 1000 + k, b""), &srv);
    assert_eq!(q.md.ct.state, cs::TRK | cs::EST | cs::RPL | cs::DNAT);
    assert_eq!(seq_ack(&q).1, 1000 + k);
    let q = exec(tcp(B, X, 21, 40051, "A", 5000, 1000 + k + n + 1, b""), &srv);
    assert_eq!(q.md.ct.state, cs::TRK | cs::EST | cs::RPL | cs::DNAT);
    assert_eq!(seq_ack(&q).1, 1000 + k + n);
    assert!(crate::csum::verify_l4(q.data()));

    let r = exec(
        tcp(A, B, 40051, 21, "PA", 1000 + k + n, 5000, b"RETR x\r\n"),
        &cli,
    );
    assert_eq!(r.md.ct.state, cs::TRK | cs::EST | cs::SNAT);
    assert_eq!(seq_ack(&r).0, 1000 + k + n + 1);
    assert!(crate::csum::verify_l4(r.data()));
}
