//! The connection tracker against a reference model (issue 17, "fuzz the
//! tracker with random packet sequences against a simple reference model
//! of the state machine").
//!
//! Random sequences of packets (UDP, ICMP echo, TCP with random flags and
//! sequence numbers; two hosts, two ports, two zones; commit or not),
//! clock jumps and flushes run through [`Conntrack::execute`]. For UDP
//! and ICMP the model predicts every `ct_state` exactly (OVS
//! conntrack-other.c and conntrack-icmp.c states, the default timeouts, a
//! `maxconns` of 6 and a limit of 3 in zone 1). TCP is checked for
//! consistency only (its window tracking is the unit tests' business):
//! the state bits are a valid combination, and the table stays within its
//! bounds. A second property throws mutated and random frames at the
//! tracker, with NAT, to show that nothing panics.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use etherparse::{IcmpEchoHeader, Icmpv4Type, PacketBuilder};
use proptest::prelude::*;
use xennet_datapath::conntrack::{cs, Conntrack, CtArgs, NatArgs, NatKind};
use xennet_datapath::Packet;

const HOSTS: [[u8; 4]; 2] = [[10, 0, 0, 1], [10, 0, 0, 2]];
const PORTS: [u16; 2] = [1000, 2000];
const MAXCONNS: usize = 6;
const ZONE1_LIMIT: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Op {
    Udp {
        zone: u16,
        from: usize,
        sp: usize,
        dp: usize,
        commit: bool,
    },
    Icmp {
        zone: u16,
        from: usize,
        id: u16,
        reply: bool,
        commit: bool,
    },
    Tcp {
        zone: u16,
        from: usize,
        sp: usize,
        dp: usize,
        flags: u8,
        seq: u32,
        ack: u32,
        commit: bool,
    },
    Advance(u64),
    Flush(Option<u16>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2u16, 0..2usize, 0..2usize, 0..2usize, any::<bool>())
            .prop_map(|(zone, from, sp, dp, commit)| Op::Udp { zone, from, sp, dp, commit }),
        3 => (0..2u16, 0..2usize, 1..3u16, any::<bool>(), any::<bool>())
            .prop_map(|(zone, from, id, reply, commit)| Op::Icmp { zone, from, id, reply, commit }),
        4 => (0..2u16, 0..2usize, 0..2usize, 0..2usize, any::<u8>(), prop_oneof![Just(0u32), Just(1), Just(100), any::<u32>()],
              prop_oneof![Just(0u32), Just(1), Just(101), any::<u32>()], any::<bool>())
            .prop_map(|(zone, from, sp, dp, flags, seq, ack, commit)| Op::Tcp { zone, from, sp, dp, flags, seq, ack, commit }),
        2 => prop_oneof![Just(1u64), Just(29), Just(31), Just(59), Just(61)].prop_map(Op::Advance),
        1 => prop_oneof![Just(None), Just(Some(0u16)), Just(Some(1))].prop_map(Op::Flush),
    ]
}

/// Model connection: protocol state and expiry (ms).
#[derive(Debug, Clone, Copy)]
struct MConn {
    /// UDP: 0 FIRST, 1 MULTIPLE, 2 BIDIR; ICMP: 0 FIRST, 1 REPLY.
    state: u8,
    expires: u64,
}

/// (zone, proto, src, dst, sport, dport) of the original direction.
type MKey = (u16, u8, usize, usize, u16, u16);

#[derive(Default)]
struct Model {
    conns: HashMap<MKey, MConn>,
    /// TCP connections the tracker may hold (not modelled exactly):
    /// counted through `nconns` only.
    now: u64,
}

impl Model {
    fn purge(&mut self) {
        let now = self.now;
        self.conns.retain(|_, c| c.expires > now);
    }

    /// Expected state of a UDP/ICMP packet with key `k` (its reverse
    /// `r`); `valid_new` false for ICMP replies. `room` says whether a
    /// commit would fit (the tracker's bounds also count TCP conns).
    fn step(
        &mut self,
        k: MKey,
        r: MKey,
        icmp: bool,
        valid_new: bool,
        commit: bool,
        room: bool,
    ) -> u32 {
        self.purge();
        let now = self.now;
        let timeout = |icmp: bool, st: u8| -> u64 {
            1000 * if icmp {
                [60, 30][usize::from(st)]
            } else {
                [60, 60, 30][usize::from(st)]
            }
        };
        if let Some(c) = self.conns.get_mut(&k) {
            // UDP and ICMP are `+new` until a reply (OVS 3.x).
            if !icmp && c.state == 0 {
                c.state = 1;
            }
            let replied = if icmp { c.state == 1 } else { c.state == 2 };
            let res = if replied {
                cs::TRK | cs::EST
            } else {
                cs::TRK | cs::NEW
            };
            c.expires = now + timeout(icmp, c.state);
            return res;
        }
        if let Some(c) = self.conns.get_mut(&r) {
            if icmp {
                c.state = 1;
            } else {
                c.state = 2;
            }
            c.expires = now + timeout(icmp, c.state);
            return cs::TRK | cs::EST | cs::RPL;
        }
        if !valid_new {
            return cs::TRK | cs::INV;
        }
        if commit && room {
            self.conns.insert(
                k,
                MConn {
                    state: 0,
                    expires: now + timeout(icmp, 0),
                },
            );
        }
        cs::TRK | cs::NEW
    }
}

fn udp(from: usize, sp: u16, dp: u16) -> Packet {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(HOSTS[from], HOSTS[1 - from], 64)
        .udp(sp, dp)
        .write(&mut v, b"x")
        .unwrap();
    Packet::from_slice(&v)
}

fn icmp(from: usize, id: u16, reply: bool) -> Packet {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(HOSTS[from], HOSTS[1 - from], 64);
    if reply {
        b.icmpv4(Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq: 0 }))
            .write(&mut v, b"x")
            .unwrap();
    } else {
        b.icmpv4_echo_request(id, 0).write(&mut v, b"x").unwrap();
    }
    Packet::from_slice(&v)
}

fn tcp(from: usize, sp: u16, dp: u16, flags: u8, seq: u32, ack: u32) -> Packet {
    let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(HOSTS[from], HOSTS[1 - from], 64)
        .tcp(sp, dp, seq, 1000);
    if flags & 1 != 0 {
        b = b.fin();
    }
    if flags & 2 != 0 {
        b = b.syn();
    }
    if flags & 4 != 0 {
        b = b.rst();
    }
    if flags & 8 != 0 {
        b = b.psh();
    }
    if flags & 16 != 0 {
        b = b.ack(ack);
    }
    let mut v = Vec::new();
    b.write(&mut v, if flags & 32 != 0 { b"data" } else { b"" })
        .unwrap();
    Packet::from_slice(&v)
}

/// The state bits are one of the combinations the tracker can produce.
fn consistent(s: u32) -> bool {
    if s & cs::TRK == 0 {
        return false;
    }
    let s = s & !(cs::TRK | cs::SNAT | cs::DNAT);
    matches!(
        s,
        cs::NEW | cs::EST | 0x0a /* est+rpl */ | cs::INV | cs::REL | 0x0c /* rel+rpl */
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tracker_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let ct = Conntrack::new();
        ct.set_maxconns(MAXCONNS as u32);
        ct.set_zone_limit(Some(1), ZONE1_LIMIT as u32);
        let t0 = Instant::now();
        let mut m = Model::default();
        for o in ops {
            let now = t0 + Duration::from_millis(m.now);
            match o {
                Op::Advance(s) => {
                    m.now += s * 1000;
                    continue;
                }
                Op::Flush(z) => {
                    ct.flush(z);
                    m.conns.retain(|k, _| z.is_some_and(|z| k.0 != z));
                    continue;
                }
                _ => {}
            }
            // Whether a commit fits, from the tracker's own counts after
            // its sweep (it sweeps at most once a second, and every model
            // step is a whole number of seconds apart or at the same time).
            let _ = ct.sweep(now);
            let room = |zone: u16| {
                (ct.nconns() as usize) < MAXCONNS
                    && (zone != 1 || (ct.zone_limit(1).count as usize) < ZONE1_LIMIT)
            };
            match o {
                Op::Udp { zone, from, sp, dp, commit } => {
                    let (sp, dp) = (PORTS[sp], PORTS[dp]);
                    let k = (zone, 17, from, 1 - from, sp, dp);
                    let r = (zone, 17, 1 - from, from, dp, sp);
                    m.purge();
                    let want = m.step(k, r, false, true, commit, room(zone));
                    let mut p = udp(from, sp, dp);
                    ct.execute(&mut p, &CtArgs { zone, commit, ..CtArgs::default() }, now);
                    prop_assert_eq!(p.md.ct.state, want, "{:?}", o);
                }
                Op::Icmp { zone, from, id, reply, commit } => {
                    // Key: (initiator, responder, id); a reply from
                    // `from` answers a request from the other host.
                    let k = (zone, 1, from, 1 - from, id, u16::from(reply));
                    let r = (zone, 1, 1 - from, from, id, u16::from(!reply));
                    m.purge();
                    let want = m.step(k, r, true, !reply, commit, room(zone));
                    let mut p = icmp(from, id, reply);
                    ct.execute(&mut p, &CtArgs { zone, commit, ..CtArgs::default() }, now);
                    prop_assert_eq!(p.md.ct.state, want, "{:?}", o);
                }
                Op::Tcp { zone, from, sp, dp, flags, seq, ack, commit } => {
                    let mut p = tcp(from, PORTS[sp], PORTS[dp], flags, seq, ack);
                    ct.execute(&mut p, &CtArgs { zone, commit, ..CtArgs::default() }, now);
                    prop_assert!(consistent(p.md.ct.state), "{:#x} {:?}", p.md.ct.state, o);
                }
                _ => unreachable!(),
            }
            prop_assert!(ct.nconns() as usize <= MAXCONNS);
            prop_assert!(ct.zone_limit(1).count as usize <= ZONE1_LIMIT);
            // Every modelled UDP/ICMP connection is in the table.
            let dump = ct.dump(None);
            let non_tcp = dump.iter().filter(|l| !l.starts_with("tcp")).count();
            m.purge();
            prop_assert_eq!(non_tcp, m.conns.len(), "{:?}", dump);
            prop_assert!(dump.len() <= ct.nconns() as usize);
        }
    }

    #[test]
    fn mutated_and_random_frames_never_panic(
        base in 0..4usize,
        flips in proptest::collection::vec((0..200usize, any::<u8>()), 0..8),
        cut in 0..200usize,
        random in proptest::collection::vec(any::<u8>(), 0..120),
        nat in any::<bool>(),
    ) {
        let ct = Conntrack::new();
        let now = Instant::now();
        let args = CtArgs {
            commit: true,
            nat: nat.then_some(NatArgs {
                kind: Some(NatKind::Src),
                addr_min: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                addr_max: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))),
                port_min: 0,
                port_max: 0,
                persistent: false,
                random: true,
            }),
            ..CtArgs::default()
        };
        let mut frames = vec![
            udp(0, 1, 2).data().to_vec(),
            icmp(0, 1, false).data().to_vec(),
            tcp(0, 1, 2, 2, 5, 0).data().to_vec(),
        ];
        // An ICMP error quoting the UDP packet.
        let q = &frames[0][14..14 + 28];
        let mut e = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(HOSTS[1], HOSTS[0], 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port))
            .write(&mut e, q)
            .unwrap();
        frames.push(e);
        for f in &frames {
            let mut p = Packet::from_slice(f);
            ct.execute(&mut p, &args, now);
        }
        let mut f = frames[base].clone();
        for (at, v) in flips {
            if let Some(b) = f.get_mut(at) {
                *b ^= v;
            }
        }
        f.truncate(cut.max(1));
        for frame in [f, random, {
            let mut r = vec![0u8; 14];
            r[12] = 8;
            r
        }] {
            let mut p = Packet::from_slice(&frame);
            ct.execute(&mut p, &args, now);
            prop_assert!(consistent(p.md.ct.state));
            // The checksums of whatever the tracker rewrote are not
            // judged here; only that it did not panic or loop.
        }
    }
}
