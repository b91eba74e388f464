//! The tracker against OVS's userspace conntrack (issue 17: "as OVS's
//! userspace conntrack does"): the real ovs-vswitchd on a dummy datapath
//! (`--enable-dummy=override`, PEERS.md) runs
//! `ct(commit,zone=Z[,nat...],table=1)` on frames injected with
//! `netdev-dummy/receive`; table 1 has one counter flow per (packet, exact
//! `ct_state`) and forwards to the other port, whose `tx_pcap` records
//! what left. The same frames go through [`Conntrack::execute`] with the
//! same arguments. Per packet the `ct_state` must be the same, the frames
//! that leave must be byte for byte the same (NAT rewrites and
//! checksums), and `dpctl/dump-conntrack` must print the same lines.
//! Fragmented datagrams go through the datapath's executor as well, to
//! compare the fragments that leave.
//!
//! Each packet carries its index in the DSCP bits, which conntrack does
//! not look at, so that one flow dump tells every packet's state.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, PacketBuilder};
use xennet_datapath::actions::{CtAction, Executor};
use xennet_datapath::conntrack::{alg, appctl, cs, Conntrack, CtArgs, NatArgs, NatKind};
use xennet_datapath::{csum, fragment, DpAction, Packet, PortFeatures};
use xennet_ovsdb::test_utils::{run, DummyVswitchd};

/// ovs-vswitchd on a dummy datapath, bridge `br0` with ports p1, p2
/// (ofports 1, 2) recording what they send; stopped on drop.
struct Vswitchd {
    vs: DummyVswitchd,
}

impl Vswitchd {
    fn start(name: &str) -> Vswitchd {
        let v = Vswitchd {
            vs: DummyVswitchd::start(name),
        };
        let dir = v.vs.db.dir().to_path_buf();
        v.vs.add_br0(&["protocols=OpenFlow13"], 2, |i| {
            vec![format!(
                "options:tx_pcap={}",
                dir.join(format!("p{i}.pcap")).display()
            )]
        });
        v
    }

    fn path(&self, f: &str) -> PathBuf {
        self.vs.db.path(f)
    }

    fn appctl(&self, args: &[&str]) -> String {
        let out = run(Command::new("ovs-appctl")
            .arg("-t")
            .arg(self.path("ovs-vswitchd.ctl"))
            .args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ofctl(&self, args: &[&str]) -> String {
        let out = run(Command::new("ovs-ofctl")
            .env("OVS_RUNDIR", self.vs.db.dir())
            .args(["-O", "OpenFlow13"])
            .args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn add_flows(&self, flows: &[String]) {
        let f = self.path("flows.txt");
        std::fs::write(&f, flows.join("\n") + "\n").unwrap();
        self.ofctl(&["add-flows", "br0", f.to_str().unwrap()]);
    }
}

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [198, 51, 100, 1];
const EXT: [u8; 4] = [192, 0, 2, 7];
const C6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const S6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// One packet of a scenario: the port it enters (1 client side, 2
/// server side) and the frame.
struct Step {
    port: u16,
    frame: Vec<u8>,
}

#[derive(Clone, Copy, Default)]
struct T {
    syn: bool,
    ack: Option<u32>,
    fin: bool,
    rst: bool,
    /// Window (0 means the default 29200).
    win: u16,
    /// Window-scale option.
    ws: Option<u8>,
}

impl T {
    /// A bare SYN.
    const SYN: T = T {
        syn: true,
        ack: None,
        fin: false,
        rst: false,
        win: 0,
        ws: None,
    };

    /// A segment acknowledging `ack`.
    fn seg(ack: u32) -> T {
        T {
            ack: Some(ack),
            ..T::default()
        }
    }

    /// A SYN-ACK acknowledging `ack`.
    fn synack(ack: u32) -> T {
        T {
            ack: Some(ack),
            ..T::SYN
        }
    }
}

/// A TCP segment (all of the header's variable fields are arguments).
#[allow(clippy::too_many_arguments)]
fn tcp(
    port: u16,
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    seq: u32,
    t: T,
    data: &[u8],
) -> Step {
    let mut b =
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq, if t.win == 0 { 29200 } else { t.win });
    if let Some(ws) = t.ws {
        b = b
            .options(&[
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::WindowScale(ws),
            ])
            .unwrap();
    }
    if t.syn {
        b = b.syn();
    }
    if let Some(a) = t.ack {
        b = b.ack(a);
    }
    if t.fin {
        b = b.fin();
    }
    if t.rst {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    Step { port, frame: v }
}

fn udp(port: u16, src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Step {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
        .ipv4(src, dst, 64)
        .udp(sp, dp)
        .write(&mut v, b"payload")
        .unwrap();
    Step { port, frame: v }
}

fn udp6(port: u16, src: [u8; 16], dst: [u8; 16], sp: u16, dp: u16) -> Step {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
        .ipv6(src, dst, 64)
        .udp(sp, dp)
        .write(&mut v, b"payload6")
        .unwrap();
    Step { port, frame: v }
}

fn echo(port: u16, src: [u8; 4], dst: [u8; 4], id: u16, reply: bool) -> Step {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
        .ipv4(src, dst, 64);
    if reply {
        b.icmpv4(Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader {
            id,
            seq: 1,
        }))
        .write(&mut v, b"ping")
        .unwrap();
    } else {
        b.icmpv4_echo_request(id, 1).write(&mut v, b"ping").unwrap();
    }
    Step { port, frame: v }
}

/// A port unreachable from `from` to `to` quoting `q`'s IP header and
/// first 8 L4 bytes.
fn unreach(port: u16, from: [u8; 4], to: [u8; 4], q: &Step) -> Step {
    let ip = &q.frame[14..];
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
        .ipv4(from, to, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut v, &ip[..28])
        .unwrap();
    Step { port, frame: v }
}

fn unreach6(port: u16, from: [u8; 16], to: [u8; 16], q: &Step) -> Step {
    let ip = &q.frame[14..];
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
        .ipv6(from, to, 64)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut v, &ip[..48])
        .unwrap();
    Step { port, frame: v }
}

/// Put `dscp` in the frame's DSCP bits (fixing the IPv4 header checksum).
fn set_dscp(f: &mut [u8], dscp: u8) {
    if f[12..14] == [0x08, 0x00] {
        f[15] = dscp << 2;
        f[24] = 0;
        f[25] = 0;
        let ihl = usize::from(f[14] & 0xf) * 4;
        let c = csum::checksum(&f[14..14 + ihl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    } else {
        let tc = dscp << 2;
        f[14] = 0x60 | (tc >> 4);
        f[15] = (f[15] & 0x0f) | (tc << 4);
    }
}

const BITS: [(u32, &str); 8] = [
    (cs::NEW, "new"),
    (cs::EST, "est"),
    (cs::REL, "rel"),
    (cs::RPL, "rpl"),
    (cs::INV, "inv"),
    (cs::TRK, "trk"),
    (cs::SNAT, "snat"),
    (cs::DNAT, "dnat"),
];

fn ct_state_match(s: u32) -> String {
    BITS.iter()
        .map(|(b, n)| format!("{}{n}", if s & b != 0 { '+' } else { '-' }))
        .collect()
}

/// Every state with `trk` set (and no NAT bits unless `nat`).
fn states(nat: bool) -> Vec<u32> {
    (0..256u32)
        .filter(|s| s & cs::TRK != 0 && (nat || s & (cs::SNAT | cs::DNAT) == 0))
        .collect()
}

/// Read a pcap file's packets.
fn pcap(path: &std::path::Path) -> Vec<Vec<u8>> {
    let Ok(b) = std::fs::read(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let n = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        out.push(b[at..at + n].to_vec());
        at += n;
    }
    out
}

/// Run `steps` through both; `ct_args(port)` gives the `ct` arguments
/// for packets from that port, `ovs_ct(port)` the same as an OpenFlow
/// action.
fn compare(
    name: &str,
    steps: Vec<Step>,
    ct_args: impl Fn(u16) -> CtArgs,
    ovs_ct: impl Fn(u16) -> String,
) {
    compare_with(name, steps, ct_args, ovs_ct, &[]);
}

/// [`compare`] for an ALG in `zone`: port 1 commits with `helper` (and
/// source NAT to `snat`), port 2 without the helper (and with a bare
/// `nat` under NAT, as the other direction of a translated connection).
fn compare_alg(
    name: &str,
    steps: Vec<Step>,
    zone: u16,
    helper: alg::Helper,
    snat: Option<std::net::IpAddr>,
) {
    let alg = match helper {
        alg::Helper::Ftp => "ftp",
        alg::Helper::Tftp => "tftp",
    };
    let nat = snat.map(|addr| NatArgs {
        kind: Some(NatKind::Src),
        addr_min: Some(addr),
        addr_max: None,
        port_min: 0,
        port_max: 0,
        persistent: false,
        random: false,
    });
    // OVS's syntax: an IPv6 address in brackets.
    let ovs_nat = match snat {
        Some(std::net::IpAddr::V4(a)) => format!(",nat(src={a})"),
        Some(std::net::IpAddr::V6(a)) => format!(",nat(src=[{a}])"),
        None => String::new(),
    };
    compare(
        name,
        steps,
        move |port| CtArgs {
            zone,
            commit: true,
            helper: (port == 1).then_some(helper),
            nat: nat.map(|nat| {
                if port == 1 {
                    nat
                } else {
                    NatArgs {
                        kind: None,
                        addr_min: None,
                        ..nat
                    }
                }
            }),
            ..CtArgs::default()
        },
        |port| match port {
            1 => format!("ct(commit,zone={zone},alg={alg}{ovs_nat},table=1)"),
            _ if snat.is_some() => format!("ct(commit,zone={zone},nat,table=1)"),
            _ => format!("ct(commit,zone={zone},table=1)"),
        },
    );
}

/// [`compare`], after running the `dpctl/*` commands `setup` on both.
fn compare_with(
    name: &str,
    steps: Vec<Step>,
    ct_args: impl Fn(u16) -> CtArgs,
    ovs_ct: impl Fn(u16) -> String,
    setup: &[&[&str]],
) {
    assert!(steps.len() <= 64);
    let ovs = Vswitchd::start(name);
    let mut flows = Vec::new();
    for port in [1u16, 2] {
        for ty in ["ip", "ipv6"] {
            // A NAT address applies to its own family only.
            let act = ovs_ct(port);
            if act.contains("nat(") && (ty == "ipv6") != act.contains('[') {
                continue;
            }
            // OVS `check_CT`: alg=ftp needs a TCP match, alg=tftp a UDP
            // one.
            let proto = if act.contains("alg=ftp") {
                ",nw_proto=6"
            } else if act.contains("alg=tftp") {
                ",nw_proto=17"
            } else {
                ""
            };
            flows.push(format!(
                "table=0,priority=10,in_port={port},{ty}{proto},actions={}",
                ovs_ct(port)
            ));
        }
        flows.push(format!(
            "table=2,priority=10,in_port={port},actions=output:{}",
            3 - port
        ));
    }
    for i in 0..steps.len() {
        for s in states(ovs_ct(1).contains("nat") || ovs_ct(2).contains("nat")) {
            for ty in ["ip", "ipv6"] {
                flows.push(format!(
                    "table=1,priority=10,cookie={:#x},{ty},nw_tos={},ct_state={},actions=resubmit(,2)",
                    (i as u64) << 16 | u64::from(s),
                    i * 4,
                    ct_state_match(s)
                ));
            }
        }
    }
    ovs.add_flows(&flows);

    let ct = Conntrack::new();
    for cmd in setup {
        let args: Vec<String> = cmd[1..].iter().map(|a| a.to_string()).collect();
        let theirs = ovs.appctl(cmd);
        let ours = appctl::run(&ct, cmd[0], &args).unwrap();
        assert_eq!(theirs.trim_end(), ours.trim_end(), "{name}: {cmd:?}");
    }
    let now = Instant::now();
    let mut ours = Vec::new();
    let mut out: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut descs = Vec::new();
    for (i, mut st) in steps.into_iter().enumerate() {
        descs.push(describe(&st.frame));
        set_dscp(&mut st.frame, i as u8);
        let hex: String = st.frame.iter().map(|b| format!("{b:02x}")).collect();
        ovs.appctl(&["netdev-dummy/receive", &format!("p{}", st.port), &hex]);
        let mut p = Packet::from_slice(&st.frame);
        ct.execute(&mut p, &ct_args(st.port), now);
        ours.push(p.md.ct.state);
        out.entry(3 - st.port).or_default().push(p.data().to_vec());
    }

    // Wait (bounded) for OVS's counters to show every packet.
    let deadline = Instant::now() + Duration::from_secs(30);
    let theirs = loop {
        let dump = ovs.ofctl(&["dump-flows", "br0", "table=1"]);
        let mut got: BTreeMap<usize, u32> = BTreeMap::new();
        for l in dump.lines() {
            let (Some(c), Some(n)) = (
                l.split("cookie=").nth(1).and_then(|r| r.split(',').next()),
                l.split("n_packets=")
                    .nth(1)
                    .and_then(|r| r.split(',').next()),
            ) else {
                continue;
            };
            let c = u64::from_str_radix(c.trim_start_matches("0x"), 16).unwrap();
            if n.parse::<u64>().unwrap() > 0 {
                got.insert((c >> 16) as usize, (c & 0xffff) as u32);
            }
        }
        if got.len() == ours.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let show = |s: Option<&u32>| s.map(|s| ct_state_match(*s)).unwrap_or_default();
    let log: Vec<String> = descs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "{i}: {d}: ovs {} ours {}",
                show(theirs.get(&i)),
                show(ours.get(i))
            )
        })
        .collect();
    for (i, s) in ours.iter().enumerate() {
        assert_eq!(
            theirs.get(&i).map(|t| ct_state_match(*t)),
            Some(ct_state_match(*s)),
            "{name}: packet {i}: OVS vs xennet ct_state\n{}",
            log.join("\n")
        );
    }
    for (port, frames) in out {
        let sent = pcap(&ovs.path(&format!("p{port}.pcap")));
        assert_eq!(sent.len(), frames.len(), "{name}: frames out of p{port}");
        for (k, (a, b)) in sent.iter().zip(&frames).enumerate() {
            assert_eq!(a, b, "{name}: frame {k} out of p{port}: OVS vs xennet");
        }
    }
    let mut theirs: Vec<String> = ovs
        .appctl(&["dpctl/dump-conntrack"])
        .lines()
        .map(str::to_string)
        .collect();
    theirs.sort();
    assert_eq!(theirs, ct.dump(None), "{name}: dump-conntrack");
}

#[test]
fn states_and_dump_match_ovs_without_nat() {
    let c = 1000u32;
    let s = 5000u32;
    let q = udp(1, C, S, 4000, 53);
    let steps = vec![
        // TCP: handshake, data, out-of-window data, forged RST, FIN.
        tcp(
            1,
            C,
            S,
            1000,
            80,
            c,
            T {
                syn: true,
                ..T::default()
            },
            &[],
        ),
        tcp(
            2,
            S,
            C,
            80,
            1000,
            s,
            T {
                syn: true,
                ack: Some(c + 1),
                ..T::default()
            },
            &[],
        ),
        tcp(
            1,
            C,
            S,
            1000,
            80,
            c + 1,
            T {
                ack: Some(s + 1),
                ..T::default()
            },
            &[],
        ),
        tcp(
            1,
            C,
            S,
            1000,
            80,
            c + 1,
            T {
                ack: Some(s + 1),
                ..T::default()
            },
            b"GET /",
        ),
        tcp(
            2,
            S,
            C,
            80,
            1000,
            s + 1,
            T {
                ack: Some(c + 6),
                ..T::default()
            },
            b"200 OK",
        ),
        tcp(
            1,
            C,
            S,
            1000,
            80,
            c + 10_000_000,
            T {
                ack: Some(s + 7),
                ..T::default()
            },
            b"x",
        ),
        tcp(
            2,
            S,
            C,
            80,
            1000,
            s + 100_000,
            T {
                rst: true,
                ack: Some(c + 6),
                ..T::default()
            },
            &[],
        ),
        tcp(
            1,
            C,
            S,
            1000,
            80,
            c + 6,
            T {
                fin: true,
                ack: Some(s + 7),
                ..T::default()
            },
            &[],
        ),
        tcp(
            2,
            S,
            C,
            80,
            1000,
            s + 7,
            T {
                fin: true,
                ack: Some(c + 7),
                ..T::default()
            },
            &[],
        ),
        tcp(
            1,
            C,
            S,
            1000,
            80,
            c + 7,
            T {
                ack: Some(s + 8),
                ..T::default()
            },
            &[],
        ),
        // A SYN+ACK cannot start a connection; a half-open one.
        tcp(
            2,
            S,
            C,
            81,
            1001,
            9,
            T {
                syn: true,
                ack: Some(1),
                ..T::default()
            },
            &[],
        ),
        tcp(
            1,
            C,
            S,
            1002,
            80,
            9,
            T {
                syn: true,
                ..T::default()
            },
            &[],
        ),
        // UDP both ways, then an ICMP error quoting it and one quoting nothing.
        udp(1, C, S, 4000, 53),
        udp(1, C, S, 4000, 53),
        udp(2, S, C, 53, 4000),
        udp(1, C, S, 4000, 53),
        unreach(2, S, C, &q),
        unreach(2, S, C, &udp(1, C, S, 4001, 53)),
        // ICMP echo; a reply nobody asked for.
        echo(1, C, S, 7, false),
        echo(2, S, C, 7, true),
        echo(2, S, C, 8, true),
        // IPv6 UDP and an ICMPv6 error.
        udp6(1, C6, S6, 7, 9),
        udp6(2, S6, C6, 9, 7),
        unreach6(2, S6, C6, &udp6(1, C6, S6, 7, 9)),
    ];
    compare(
        "ct-plain",
        steps,
        |_| CtArgs {
            zone: 5,
            commit: true,
            ..CtArgs::default()
        },
        |_| "ct(commit,zone=5,table=1)".to_string(),
    );
}

#[test]
fn states_frames_and_dump_match_ovs_with_snat() {
    let q = udp(1, EXT, S, 4000, 53);
    let steps = vec![
        udp(1, C, S, 4000, 53),
        udp(2, S, EXT, 53, 4000),
        udp(1, C, S, 4000, 53),
        echo(1, C, S, 7, false),
        echo(2, S, EXT, 7, true),
        tcp(
            1,
            C,
            S,
            1000,
            80,
            1,
            T {
                syn: true,
                ..T::default()
            },
            &[],
        ),
        tcp(
            2,
            S,
            EXT,
            80,
            1000,
            50,
            T {
                syn: true,
                ack: Some(2),
                ..T::default()
            },
            &[],
        ),
        tcp(
            1,
            C,
            S,
            1000,
            80,
            2,
            T {
                ack: Some(51),
                ..T::default()
            },
            b"data",
        ),
        // An error from a router quoting the translated packet.
        unreach(2, [203, 0, 113, 1], EXT, &q),
    ];
    let nat = NatArgs {
        kind: Some(NatKind::Src),
        addr_min: Some(std::net::IpAddr::V4(EXT.into())),
        addr_max: None,
        port_min: 0,
        port_max: 0,
        persistent: false,
        random: false,
    };
    compare(
        "ct-snat",
        steps,
        move |port| CtArgs {
            zone: 7,
            commit: port == 1,
            nat: Some(if port == 1 {
                nat
            } else {
                NatArgs {
                    kind: None,
                    addr_min: None,
                    ..nat
                }
            }),
            ..CtArgs::default()
        },
        |port| match port {
            1 => "ct(commit,zone=7,nat(src=192.0.2.7),table=1)".to_string(),
            _ => "ct(zone=7,nat,table=1)".to_string(),
        },
    );
}

/// xorshift64*: small, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random TCP conversations (two connections sharing ports, realistic
/// and unrealistic flags, sequence numbers near and far from what each
/// side sent) plus UDP and ICMP noise, through OVS's conntrack-tcp.c and
/// ours: every packet's state, every frame and the final table must
/// agree. `XENNET_CT_SEED=N` replays one seed.
#[test]
fn random_conversations_match_ovs() {
    random_conversations(false);
}

/// [`random_conversations_match_ovs`] through source NAT (one address,
/// ports kept: the two connections' ports differ, so the choice is the
/// same in both): the client side commits with `nat(src=EXT)`, the
/// server side answers to EXT through a bare `nat`.
#[test]
fn random_natted_conversations_match_ovs() {
    random_conversations(true);
}

fn random_conversations(nat: bool) {
    // Where the server side sends: the client, or its translation.
    let to = if nat { EXT } else { C };
    let seeds: Vec<u64> = match std::env::var("XENNET_CT_SEED") {
        Ok(s) => vec![s.parse().expect("XENNET_CT_SEED")],
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        // Next sequence number each side would send, per connection.
        let mut next = [[1000u32, 5000u32], [70_000, 90_000]];
        let flags = [
            T {
                syn: true,
                ..T::default()
            },
            T {
                syn: true,
                ack: Some(0),
                ..T::default()
            },
            T {
                ack: Some(0),
                ..T::default()
            },
            T {
                ack: Some(0),
                ..T::default()
            },
            T {
                ack: Some(0),
                ..T::default()
            },
            T {
                fin: true,
                ack: Some(0),
                ..T::default()
            },
            T {
                rst: true,
                ..T::default()
            },
            T {
                rst: true,
                ack: Some(0),
                ..T::default()
            },
            T::default(),
        ];
        let mut steps = Vec::new();
        for _ in 0..60 {
            match r.below(10) {
                0 => steps.push(if r.below(2) == 0 {
                    udp(1, C, S, 4000, 53)
                } else {
                    udp(2, S, to, 53, 4000)
                }),
                1 => steps.push(if r.below(2) == 0 {
                    echo(1, C, S, 7, false)
                } else {
                    echo(2, S, to, 7, true)
                }),
                _ => {
                    let conn = r.below(2) as usize;
                    let side = r.below(2) as usize;
                    let mut t = flags[r.below(flags.len() as u64) as usize];
                    let other = next[conn][1 - side];
                    // Through NAT no connection closes (no FIN, no RST)
                    // and the server sends no bare SYN: OVS 3.1 keeps two
                    // conn objects per NATed connection, and reopening a
                    // closed one leaves its reverse entry stale (the new
                    // connection gets another port, packets to the old one
                    // are +inv); newer OVS, like xennet, starts afresh.
                    if nat {
                        t.fin = false;
                        t.rst = false;
                        if side == 1 && t.syn && t.ack.is_none() {
                            t.ack = Some(0);
                        }
                    }
                    let seq = match r.below(6) {
                        0 => r.next() as u32,
                        1 => next[conn][side].wrapping_add(r.below(200_000) as u32),
                        2 => next[conn][side].wrapping_sub(r.below(3) as u32),
                        _ => next[conn][side],
                    };
                    if t.ack.is_some() {
                        t.ack = Some(match r.below(5) {
                            0 => r.next() as u32,
                            1 => other.wrapping_add(r.below(100_000) as u32),
                            _ => other,
                        });
                    }
                    if r.below(2) == 0 {
                        t.win = [1u16, 512, 4096, 65535][r.below(4) as usize];
                    }
                    if t.syn && r.below(2) == 0 {
                        t.ws = Some([0u8, 2, 7, 14, 15][r.below(5) as usize]);
                    }
                    let data: &[u8] = if r.below(3) == 0 { b"some data" } else { b"" };
                    let adv = data.len() as u32 + u32::from(t.syn) + u32::from(t.fin);
                    next[conn][side] = seq.wrapping_add(adv);
                    let (cp, sp) = ([1000u16, 1001][conn], 80);
                    steps.push(if side == 0 {
                        tcp(1, C, S, cp, sp, seq, t, data)
                    } else {
                        tcp(2, S, to, sp, cp, seq, t, data)
                    });
                }
            }
        }
        let snat = NatArgs {
            kind: Some(NatKind::Src),
            addr_min: Some(std::net::IpAddr::V4(EXT.into())),
            addr_max: None,
            port_min: 0,
            port_max: 0,
            persistent: false,
            random: false,
        };
        compare(
            &format!("ct-rand-{}{seed}", if nat { "nat-" } else { "" }),
            steps,
            |port| CtArgs {
                zone: 9,
                commit: !nat || port == 1,
                nat: nat.then_some(if port == 1 {
                    snat
                } else {
                    NatArgs {
                        kind: None,
                        addr_min: None,
                        ..snat
                    }
                }),
                ..CtArgs::default()
            },
            |port| match (nat, port) {
                (false, _) => "ct(commit,zone=9,table=1)".to_string(),
                (true, 1) => "ct(commit,zone=9,nat(src=192.0.2.7),table=1)".to_string(),
                (true, _) => "ct(zone=9,nat,table=1)".to_string(),
            },
        );
    }
}

/// A one-line description of a frame for failure messages.
fn describe(f: &[u8]) -> String {
    match etherparse::SlicedPacket::from_ethernet(f) {
        Ok(p) => match p.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => format!(
                "tcp {}->{} seq={} ack={} {}{}{}{} len={}",
                t.source_port(),
                t.destination_port(),
                t.sequence_number(),
                t.acknowledgment_number(),
                if t.syn() { "S" } else { "" },
                if t.ack() { "A" } else { "" },
                if t.fin() { "F" } else { "" },
                if t.rst() { "R" } else { "" },
                t.payload().len()
            ),
            Some(t) => format!("{t:?}").chars().take(60).collect(),
            None => "?".into(),
        },
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn dnat_with_port_mark_and_label_match_ovs() {
    const VIP: [u8; 4] = [203, 0, 113, 10];
    const BACKEND: [u8; 4] = [198, 51, 100, 9];
    // No ICMP error here: ovs-vswitchd 3.1.0 at times exits, or drops
    // the packet, on an error related to this DNATed connection (it
    // matched byte for byte when it did not); the SNAT test and the unit
    // tests cover translated errors.
    let steps = vec![
        udp(1, C, VIP, 5000, 80),
        udp(2, BACKEND, C, 8080, 5000),
        udp(1, C, VIP, 5000, 80),
        tcp(
            1,
            C,
            VIP,
            1234,
            80,
            77,
            T {
                syn: true,
                ws: Some(7),
                ..T::default()
            },
            &[],
        ),
        tcp(
            2,
            BACKEND,
            C,
            8080,
            1234,
            900,
            T {
                syn: true,
                ack: Some(78),
                ws: Some(7),
                ..T::default()
            },
            &[],
        ),
        tcp(
            1,
            C,
            VIP,
            1234,
            80,
            78,
            T {
                ack: Some(901),
                ..T::default()
            },
            b"hello",
        ),
        tcp(
            2,
            BACKEND,
            C,
            8080,
            1234,
            901,
            T {
                ack: Some(83),
                ..T::default()
            },
            b"world",
        ),
        // Echo to the VIP: translated too.
        echo(1, C, VIP, 3, false),
        echo(2, BACKEND, C, 3, true),
    ];
    let nat = NatArgs {
        kind: Some(NatKind::Dst),
        addr_min: Some(std::net::IpAddr::V4(BACKEND.into())),
        addr_max: None,
        port_min: 8080,
        port_max: 8080,
        persistent: false,
        random: false,
    };
    compare(
        "ct-dnat",
        steps,
        move |port| CtArgs {
            zone: 3,
            commit: true,
            nat: Some(if port == 1 {
                nat
            } else {
                NatArgs {
                    kind: None,
                    addr_min: None,
                    port_min: 0,
                    port_max: 0,
                    ..nat
                }
            }),
            mark: Some((0x1234, 0xffff_ffff)),
            label: Some((5 << 64 | 1, u128::MAX)),
            force: false,
            helper: None,
        },
        |port| {
            match port {
            1 => "ct(commit,zone=3,nat(dst=198.51.100.9:8080),exec(set_field:0x1234->ct_mark,set_field:0x50000000000000001->ct_label),table=1)".to_string(),
            _ => "ct(commit,zone=3,nat,exec(set_field:0x1234->ct_mark,set_field:0x50000000000000001->ct_label),table=1)".to_string(),
        }
        },
    );
}

/// A SYN flood into a zone with a limit: the first `limit` SYNs commit,
/// the rest stay `+new` without a connection, and other zones are not
/// affected, as in OVS (`dpctl/ct-set-limits`).
#[test]
fn zone_limit_matches_ovs() {
    let mut steps = Vec::new();
    for i in 0..8u16 {
        steps.push(tcp(
            1,
            C,
            S,
            2000 + i,
            80,
            1,
            T {
                syn: true,
                ..T::default()
            },
            &[],
        ));
    }
    // Replies to the first and the last: only the first has a connection.
    steps.push(tcp(
        2,
        S,
        C,
        80,
        2000,
        9,
        T {
            syn: true,
            ack: Some(2),
            ..T::default()
        },
        &[],
    ));
    steps.push(tcp(
        2,
        S,
        C,
        80,
        2007,
        9,
        T {
            syn: true,
            ack: Some(2),
            ..T::default()
        },
        &[],
    ));
    compare_with(
        "ct-limit",
        steps,
        |_| CtArgs {
            zone: 4,
            commit: true,
            ..CtArgs::default()
        },
        |_| "ct(commit,zone=4,table=1)".to_string(),
        &[
            &["dpctl/ct-set-limits", "zone=4,limit=3"],
            &["dpctl/ct-get-limits", "zone=4"],
        ],
    );
}

/// The reassembly settings and their status report, and the other
/// settings commands, as OVS prints them.
#[test]
fn ipf_and_settings_commands_match_ovs() {
    compare_with(
        "ct-ipf",
        Vec::new(),
        |_| CtArgs::default(),
        |_| "ct(table=1)".to_string(),
        &[
            &["dpctl/ipf-get-status"],
            &["dpctl/ipf-set-min-frag", "v4", "1000"],
            &["dpctl/ipf-set-min-frag", "v6", "1300"],
            &["dpctl/ipf-set-max-nfrags", "100"],
            &["dpctl/ipf-set-disabled", "v6"],
            &["dpctl/ipf-get-status"],
            &["dpctl/ipf-set-enabled", "v6"],
            &["dpctl/ct-get-tcp-seq-chk"],
            &["dpctl/ct-disable-tcp-seq-chk"],
            &["dpctl/ct-get-tcp-seq-chk"],
            &["dpctl/ct-get-maxconns"],
            &["dpctl/ct-get-nconns"],
        ],
    );
}

/// A UDP datagram of `len` payload bytes (DF clear) from `port`, cut
/// into fragments of at most `max` L3 bytes as a sender with that MTU
/// would.
fn fragmented(
    port: u16,
    src: IpAddr,
    dst: IpAddr,
    sp: u16,
    dp: u16,
    len: usize,
    max: usize,
) -> Vec<Step> {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8]);
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let id = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.ipv4(s.octets(), d.octets(), 64)
                .udp(sp, dp)
                .write(&mut v, &payload)
                .unwrap();
            v[20] &= !0x40;
            v[24..26].copy_from_slice(&[0, 0]);
            let c = csum::checksum(&v[14..34]);
            v[24..26].copy_from_slice(&c.to_be_bytes());
            0
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b.ipv6(s.octets(), d.octets(), 64)
                .udp(sp, dp)
                .write(&mut v, &payload)
                .unwrap();
            0x5eed_0000 | u32::from(sp)
        }
        _ => unreachable!("one family"),
    };
    let mut frags = Vec::new();
    fragment::fragment(&Packet::from_slice(&v), max, id, &mut frags).unwrap();
    assert!(frags.len() > 1);
    frags
        .into_iter()
        .map(|p| Step {
            port,
            frame: p.data().to_vec(),
        })
        .collect()
}

/// Fragmented UDP through `ct(commit,nat(src=...))` and its answer
/// through bare `nat`, IPv4 and IPv6. OVS sends the original fragments
/// on with the datagram's NAT changes copied into them (lib/ipf.c
/// `ipf_post_execute_reass_pkts`); xennet's datapath cuts the
/// reassembled, translated datagram again, at the size of its largest
/// fragment. For senders whose fragments are all of that size (as a
/// Linux stack's are) the frames out are byte for byte the same, and so
/// are the connections.
#[test]
fn fragments_out_match_ovs_with_snat() {
    let ovs = Vswitchd::start("ct-frag");
    ovs.add_flows(
        &[
            "table=0,priority=10,in_port=1,ip,actions=ct(commit,zone=1,nat(src=192.0.2.7),table=1)",
            "table=0,priority=10,in_port=1,ipv6,actions=ct(commit,zone=1,nat(src=[fd00::7]),table=1)",
            "table=0,priority=10,in_port=2,ip,actions=ct(zone=1,nat,table=1)",
            "table=0,priority=10,in_port=2,ipv6,actions=ct(zone=1,nat,table=1)",
            "table=1,priority=10,in_port=1,actions=output:2",
            "table=1,priority=10,in_port=2,actions=output:1",
        ]
        .map(String::from),
    );
    let ext6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    let ip4 = |a: [u8; 4]| IpAddr::from(a);
    let ip6 = |a: [u8; 16]| IpAddr::from(a);
    let steps: Vec<Step> = [
        fragmented(1, ip4(C), ip4(S), 4000, 53, 4000, 1500),
        fragmented(2, ip4(S), ip4(EXT), 53, 4000, 3000, 1500),
        fragmented(1, ip6(C6), ip6(S6), 4001, 53, 4000, 1400),
        fragmented(2, ip6(S6), ip6(ext6), 53, 4001, 3000, 1400),
    ]
    .into_iter()
    .flatten()
    .collect();
    let nat = |kind, addr: IpAddr| NatArgs {
        kind,
        addr_min: Some(addr),
        addr_max: None,
        port_min: 0,
        port_max: 0,
        persistent: false,
        random: false,
    };
    let args = |port: u16, v6: bool| CtArgs {
        zone: 1,
        commit: port == 1,
        nat: Some(match (port, v6) {
            (1, false) => nat(Some(NatKind::Src), ip4(EXT)),
            (1, true) => nat(Some(NatKind::Src), ip6(ext6)),
            _ => NatArgs {
                addr_min: None,
                ..nat(None, ip4(EXT))
            },
        }),
        ..CtArgs::default()
    };
    let mut ex = Executor::new();
    ex.set_now(Instant::now());
    let mut ours: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    for st in &steps {
        let hex: String = st.frame.iter().map(|b| format!("{b:02x}")).collect();
        ovs.appctl(&["netdev-dummy/receive", &format!("p{}", st.port), &hex]);
        let v6 = st.frame[12..14] == [0x86, 0xdd];
        let ct = CtAction::new(&args(st.port, v6)).unwrap();
        let batch = [Packet::from_slice(&st.frame)];
        ex.execute(
            &batch,
            &[0],
            &[DpAction::Ct(ct), DpAction::Output(u32::from(3 - st.port))],
            &|_| Some(PortFeatures::default()),
        );
        ex.flush(&batch, &mut |port, pkts| {
            let out = ours.entry(port as u16).or_default();
            out.extend(pkts.iter().map(|p| p.data().to_vec()));
        });
    }
    assert_eq!(ex.refragmented, 4);
    let counts: Vec<usize> = ours.values().map(Vec::len).collect();
    assert_eq!(counts, [6, 6], "three fragments per datagram");
    for (port, frames) in &ours {
        let path = ovs.path(&format!("p{port}.pcap"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sent = pcap(&path);
        while sent.len() < frames.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            sent = pcap(&path);
        }
        // Length and L3 header of each frame.
        let show = |fs: &[Vec<u8>]| -> Vec<String> {
            fs.iter()
                .map(|f| {
                    let h: String = f[14..f.len().min(62)]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    format!("{} {h}", f.len())
                })
                .collect()
        };
        assert_eq!(
            sent.len(),
            frames.len(),
            "frames out of p{port}: OVS {:?} ours {:?}",
            show(&sent),
            show(frames)
        );
        for (k, (a, b)) in sent.iter().zip(frames).enumerate() {
            assert_eq!(a, b, "frame {k} out of p{port}: OVS vs xennet");
        }
    }
    let mut theirs: Vec<String> = ovs
        .appctl(&["dpctl/dump-conntrack"])
        .lines()
        .map(str::to_string)
        .collect();
    theirs.sort();
    assert_eq!(theirs, ex.conntrack.dump(None), "dump-conntrack");
}

fn echo6(port: u16, src: [u8; 16], dst: [u8; 16], id: u16, reply: bool) -> Step {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
        .ipv6(src, dst, 64);
    if reply {
        b.icmpv6(Icmpv6Type::EchoReply(etherparse::IcmpEchoHeader {
            id,
            seq: 1,
        }))
        .write(&mut v, b"ping")
        .unwrap();
    } else {
        b.icmpv6_echo_request(id, 1).write(&mut v, b"ping").unwrap();
    }
    Step { port, frame: v }
}

fn tcp6(port: u16, src: [u8; 16], dst: [u8; 16], sp: u16, dp: u16, seq: u32, t: T) -> Step {
    tcp6_data(port, src, dst, sp, dp, seq, t, &[])
}

/// [`tcp6`] carrying `data`.
#[allow(clippy::too_many_arguments)]
fn tcp6_data(
    port: u16,
    src: [u8; 16],
    dst: [u8; 16],
    sp: u16,
    dp: u16,
    seq: u32,
    t: T,
    data: &[u8],
) -> Step {
    let mut b =
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, port as u8], [2, 0, 0, 0, 0, 3 - port as u8])
            .ipv6(src, dst, 64)
            .tcp(sp, dp, seq, 29200);
    if t.syn {
        b = b.syn();
    }
    if let Some(a) = t.ack {
        b = b.ack(a);
    }
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    Step { port, frame: v }
}

/// IPv6 source NAT: UDP, TCP, ICMPv6 echo and an ICMPv6 error quoting
/// the translated datagram, through OVS and xennet.
#[test]
fn ipv6_snat_matches_ovs() {
    const EXT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    let q = udp6(1, EXT6, S6, 4000, 53);
    let steps = vec![
        udp6(1, C6, S6, 4000, 53),
        udp6(2, S6, EXT6, 53, 4000),
        tcp6(
            1,
            C6,
            S6,
            1000,
            80,
            1,
            T {
                syn: true,
                ..T::default()
            },
        ),
        tcp6(
            2,
            S6,
            EXT6,
            80,
            1000,
            50,
            T {
                syn: true,
                ack: Some(2),
                ..T::default()
            },
        ),
        tcp6(
            1,
            C6,
            S6,
            1000,
            80,
            2,
            T {
                ack: Some(51),
                ..T::default()
            },
        ),
        echo6(1, C6, S6, 9, false),
        echo6(2, S6, EXT6, 9, true),
        unreach6(2, S6, EXT6, &q),
    ];
    let nat = NatArgs {
        kind: Some(NatKind::Src),
        addr_min: Some(std::net::IpAddr::V6(EXT6.into())),
        addr_max: None,
        port_min: 0,
        port_max: 0,
        persistent: false,
        random: false,
    };
    compare(
        "ct-snat6",
        steps,
        move |port| CtArgs {
            zone: 6,
            commit: port == 1,
            nat: Some(if port == 1 {
                nat
            } else {
                NatArgs {
                    kind: None,
                    addr_min: None,
                    ..nat
                }
            }),
            ..CtArgs::default()
        },
        |port| match port {
            1 => "ct(commit,zone=6,nat(src=[2001:db8::7]),table=1)".to_string(),
            _ => "ct(zone=6,nat,table=1)".to_string(),
        },
    );
}

/// The FTP helper against OVS's: a passive (`227`) and an active
/// (`PORT`) data connection are `+rel` in both directions, a `PORT`
/// naming a third host is `+inv`, and `dump-conntrack` shows the helper
/// on the same connections.
#[test]
fn ftp_alg_matches_ovs() {
    let (seg, syn, synack) = (T::seg, T::SYN, T::synack);
    let pasv = format!(
        "227 Entering Passive Mode ({},{},{},{},195,80).\r\n",
        S[0], S[1], S[2], S[3]
    );
    let port = format!("PORT {},{},{},{},156,100\r\n", C[0], C[1], C[2], C[3]);
    let bounce = b"PORT 9,9,9,9,1,1\r\n";
    let (c, s) = (1000u32, 5000u32);
    let steps = vec![
        tcp(1, C, S, 40000, 21, c - 1, syn, &[]),
        tcp(2, S, C, 21, 40000, s - 1, synack(c), &[]),
        tcp(1, C, S, 40000, 21, c, seg(s), &[]),
        tcp(2, S, C, 21, 40000, s, seg(c), pasv.as_bytes()),
        tcp(1, C, S, 40001, 50000, 1, syn, &[]),
        tcp(2, S, C, 50000, 40001, 9, synack(2), &[]),
        tcp(
            1,
            C,
            S,
            40000,
            21,
            c,
            seg(s + pasv.len() as u32),
            port.as_bytes(),
        ),
        tcp(2, S, C, 20, 40036, 30, syn, &[]),
        tcp(1, C, S, 40036, 20, 70, synack(31), &[]),
        tcp(
            1,
            C,
            S,
            40000,
            21,
            c + port.len() as u32,
            seg(s + pasv.len() as u32),
            bounce,
        ),
        // Not expected: another port.
        tcp(1, C, S, 40002, 50001, 1, syn, &[]),
    ];
    compare_alg("ct-ftp", steps, 2, alg::Helper::Ftp, None);
}

/// The FTP helper under source NAT against OVS's: the client's passive
/// data connection (after a `227` naming the server, which NAT leaves
/// as it is) is translated like its control connection and its frames
/// are OVS's byte for byte. (OVS 3.1 leaves `PORT` unrewritten on
/// netdev-dummy frames: "Unsupported effective MTU", the injected
/// frame has no tailroom; the rewrite is tested in alg's unit tests and
/// tests/conntrack_alg.rs.)
#[test]
fn ftp_alg_with_snat_matches_ovs() {
    let (seg, syn, synack) = (T::seg, T::SYN, T::synack);
    let pasv = format!(
        "227 Entering Passive Mode ({},{},{},{},195,80).\r\n",
        S[0], S[1], S[2], S[3]
    );
    let (c, s) = (1000u32, 5000u32);
    let steps = vec![
        tcp(1, C, S, 40000, 21, c - 1, syn, &[]),
        tcp(2, S, EXT, 21, 40000, s - 1, synack(c), &[]),
        tcp(1, C, S, 40000, 21, c, seg(s), &[]),
        tcp(2, S, EXT, 21, 40000, s, seg(c), pasv.as_bytes()),
        tcp(1, C, S, 40001, 50000, 1, syn, &[]),
        tcp(2, S, EXT, 50000, 40001, 9, synack(2), &[]),
        tcp(1, C, S, 40001, 50000, 2, seg(10), b"data"),
        tcp(1, C, S, 40000, 21, c, seg(s + pasv.len() as u32), &[]),
    ];
    compare_alg(
        "ct-ftp-snat",
        steps,
        8,
        alg::Helper::Ftp,
        Some(std::net::IpAddr::V4(EXT.into())),
    );
}

/// The FTP helper over IPv6 against OVS's: the `229` reply to `EPSV`
/// and an `EPRT |2|..|` command each make the data connection they
/// announce `+rel`; an `EPRT` naming another host is `+inv`; a `PORT`
/// (not read over IPv6, as OVS) and an unannounced connection are not
/// related.
#[test]
fn ftp_alg_over_ipv6_matches_ovs() {
    let (seg, syn, synack) = (T::seg, T::SYN, T::synack);
    let epsv = b"229 Entering Extended Passive Mode (|||50000|)\r\n";
    let eprt = b"EPRT |2|fd00::1|40036|\r\n";
    let bounce = b"EPRT |2|fd00::9|1111|\r\n";
    let port = b"PORT 10,0,0,1,156,101\r\n";
    let (c, s) = (1000u32, 5000u32);
    let s2 = s + epsv.len() as u32;
    let c2 = c + eprt.len() as u32;
    let steps = vec![
        tcp6(1, C6, S6, 40000, 21, c - 1, syn),
        tcp6(2, S6, C6, 21, 40000, s - 1, synack(c)),
        tcp6(1, C6, S6, 40000, 21, c, seg(s)),
        tcp6_data(2, S6, C6, 21, 40000, s, seg(c), epsv),
        tcp6(1, C6, S6, 40001, 50000, 1, syn),
        tcp6(2, S6, C6, 50000, 40001, 9, synack(2)),
        tcp6_data(1, C6, S6, 40000, 21, c, seg(s2), eprt),
        tcp6(2, S6, C6, 20, 40036, 30, syn),
        tcp6(1, C6, S6, 40036, 20, 70, synack(31)),
        tcp6_data(1, C6, S6, 40000, 21, c2, seg(s2), bounce),
        tcp6_data(1, C6, S6, 40000, 21, c2, seg(s2), port),
        tcp6(2, S6, C6, 20, 40037, 30, syn),
        // Not announced: another port.
        tcp6(1, C6, S6, 40002, 50001, 1, syn),
    ];
    compare_alg("ct-ftp6", steps, 3, alg::Helper::Ftp, None);
}

/// The TFTP helper under source NAT against OVS's (system-traffic
/// "IPv4 TFTP with SNAT"): the server's answer from a new port to the
/// NAT address is `+rel`, translated back to the client like its
/// control connection, byte for byte as OVS; the client's
/// acknowledgement leaves translated. (An unrelated new connection
/// committed with a bare `nat` is left out: OVS 3.1 gives it a reply
/// tuple of address 0.0.0.0 and port 0, where xennet keeps it
/// untranslated; the unit test `tftp_reply_from_any_server_port_is_related`
/// covers an answer to another port.)
#[test]
fn tftp_alg_with_snat_matches_ovs() {
    let steps = vec![
        udp(1, C, S, 5000, 69),
        udp(2, S, EXT, 33333, 5000),
        udp(1, C, S, 5000, 33333),
        udp(2, S, EXT, 33333, 5000),
        udp(1, C, S, 5000, 69),
    ];
    compare_alg(
        "ct-tftp-snat",
        steps,
        9,
        alg::Helper::Tftp,
        Some(std::net::IpAddr::V4(EXT.into())),
    );
}

/// The FTP helper over IPv6 under source NAT against OVS's (system-traffic
/// "IPv6 FTP Passive with SNAT"): after a `229` reply (no address to
/// rewrite) the client's passive data connection is `+rel` and
/// translated like its control connection, its frames OVS's byte for
/// byte. (OVS 3.1 leaves `EPRT` unrewritten on netdev-dummy frames, as
/// `PORT`, see [`ftp_alg_with_snat_matches_ovs`]; the rewrite is tested
/// in tests/conntrack_alg.rs against pyftpdlib.)
#[test]
fn ftp_alg_over_ipv6_with_snat_matches_ovs() {
    const EXT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    let (seg, syn, synack) = (T::seg, T::SYN, T::synack);
    let epsv = b"229 Entering Extended Passive Mode (|||50000|)\r\n";
    let (c, s) = (1000u32, 5000u32);
    let steps = vec![
        tcp6(1, C6, S6, 40000, 21, c - 1, syn),
        tcp6(2, S6, EXT6, 21, 40000, s - 1, synack(c)),
        tcp6(1, C6, S6, 40000, 21, c, seg(s)),
        tcp6_data(2, S6, EXT6, 21, 40000, s, seg(c), epsv),
        tcp6(1, C6, S6, 40001, 50000, 1, syn),
        tcp6(2, S6, EXT6, 50000, 40001, 9, synack(2)),
        tcp6_data(1, C6, S6, 40001, 50000, 2, seg(10), b"data"),
        tcp6(1, C6, S6, 40000, 21, c, seg(s + epsv.len() as u32)),
    ];
    compare_alg(
        "ct-ftp6-snat",
        steps,
        10,
        alg::Helper::Ftp,
        Some(std::net::IpAddr::V6(EXT6.into())),
    );
}
