//! End-to-end tests: an emulated netfront and a backend Vif in one process.

use std::sync::atomic::Ordering;

use xennet_datapath::{Csum, Gso, GsoType, Packet, PacketBatch, Port, RecvStatus};
use xennet_vif::hostile::{self, HostileCase};
use xennet_vif::netback::{ProtocolViolation, RingName};
use xennet_vif::netfront::Netfront;
use xennet_vif::ring::*;
use xennet_vif::{Vif, VifMetrics};

fn setup_with(configure: impl FnOnce(&mut Netfront)) -> (Netfront, Vif) {
    let mut nf = Netfront::new(1, 0).expect("netfront");
    configure(&mut nf);
    let dom = nf.emulated_domain().expect("domain");
    let vif = Vif::connect(
        "vif1.0".into(),
        0,
        nf.frontend_config(0),
        Box::new(dom.grants),
        Box::new(dom.evtchn),
    )
    .expect("connect");
    (nf, vif)
}

fn setup() -> (Netfront, Vif) {
    setup_with(|_| {})
}

/// Receive until the vif is idle; returns the packets and the last status.
fn drain(vif: &mut Vif) -> (Vec<Packet>, RecvStatus) {
    let mut out = Vec::new();
    let mut batch = PacketBatch::new();
    for _ in 0..1000 {
        batch.clear();
        let st = vif.recv(&mut batch);
        out.extend(batch.packets().iter().cloned());
        if st != RecvStatus::More {
            return (out, st);
        }
    }
    panic!("vif never went idle");
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect();
    f[12] = 0x88;
    f[13] = 0xb5; // local experimental ethertype
    f
}

fn tcp_v4_frame(payload: usize) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1234, 80, 1, 1000);
    let data = vec![0x5a; payload];
    let mut out = Vec::new();
    b.write(&mut out, &data).unwrap();
    out
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn metrics(vif: &Vif) -> std::sync::Arc<VifMetrics> {
    vif.metrics()
}

#[test]
fn single_slot_guest_to_switch() {
    let (mut nf, mut vif) = setup();
    let f = frame(60, 1);
    assert!(nf.send(&f, 0).unwrap());
    let (pkts, st) = drain(&mut vif);
    assert_eq!(st, RecvStatus::Idle);
    assert_eq!(pkts.len(), 1);
    assert_eq!(pkts[0].data(), &f[..]);
    assert_eq!(pkts[0].csum, Csum::None);
    let rsps = nf.tx_responses().to_vec();
    assert_eq!(rsps.len(), 1);
    assert_eq!(rsps[0].status, NETIF_RSP_OKAY);
    let m = metrics(&vif);
    assert_eq!(get(&m.rx_packets), 1);
    assert_eq!(get(&m.rx_bytes), 60);
    assert_eq!(vif.stats().rx_packets, 1);
}

#[test]
fn single_slot_switch_to_guest() {
    let (mut nf, mut vif) = setup();
    let mut p = Packet::from_slice(&frame(100, 2));
    p.csum = Csum::Validated;
    vif.send(&[&p]);
    let mut out = Vec::new();
    let flags = nf.recv(&mut out).expect("a packet");
    assert_eq!(out, p.data());
    assert_eq!(flags, NETRXF_DATA_VALIDATED);
    assert!(nf.recv(&mut out).is_none());
    assert_eq!(vif.stats().tx_packets, 1);
    assert_eq!(vif.stats().tx_bytes, 100);
}

#[test]
fn multi_slot_9000_both_ways() {
    let (mut nf, mut vif) = setup();
    let f = frame(9000, 3);
    assert!(nf.send(&f, NETTXF_DATA_VALIDATED).unwrap());
    let (pkts, _) = drain(&mut vif);
    assert_eq!(pkts.len(), 1);
    assert_eq!(pkts[0].data(), &f[..]);
    assert_eq!(pkts[0].csum, Csum::Validated);
    assert_eq!(nf.tx_responses().len(), 3);
    assert_eq!(nf.tx_errors(), 0);

    let mut p = Packet::from_slice(&f);
    p.csum = Csum::Partial {
        start: 34,
        offset: 16,
    };
    vif.send(&[&p]);
    let mut out = Vec::new();
    let flags = nf.recv(&mut out).expect("a packet");
    assert_eq!(out, f);
    assert_eq!(flags & NETRXF_CSUM_BLANK, NETRXF_CSUM_BLANK);
    assert_eq!(flags & NETRXF_DATA_VALIDATED, NETRXF_DATA_VALIDATED);
    assert_eq!(flags & NETRXF_MORE_DATA, NETRXF_MORE_DATA);
}

#[test]
fn ring_wraps_both_ways() {
    let (mut nf, mut vif) = setup();
    let mut sent = 0usize;
    let mut got = Vec::new();
    while sent < 700 {
        let f = frame(64 + sent % 1400, sent as u8);
        if nf.send(&f, 0).unwrap() {
            sent += 1;
        } else {
            let (pkts, _) = drain(&mut vif);
            assert!(!pkts.is_empty(), "ring full but backend idle");
            got.extend(pkts);
        }
    }
    got.extend(drain(&mut vif).0);
    assert_eq!(got.len(), 700);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.data(), &frame(64 + i % 1400, i as u8)[..], "packet {i}");
    }
    assert_eq!(nf.tx_errors(), 0);

    let mut out = Vec::new();
    for i in 0..700usize {
        let p = Packet::from_slice(&frame(60 + i % 3000, i as u8));
        vif.send(&[&p]);
        assert!(nf.recv(&mut out).is_some(), "packet {i}");
        assert_eq!(out, p.data());
    }
    assert_eq!(get(&metrics(&vif).tx_queued), 0);
}

#[test]
fn csum_blank_tcp_v4_gives_partial() {
    let (mut nf, mut vif) = setup();
    let f = tcp_v4_frame(100);
    assert!(nf.send(&f, NETTXF_CSUM_BLANK).unwrap());
    let (pkts, _) = drain(&mut vif);
    assert_eq!(pkts.len(), 1);
    assert_eq!(
        pkts[0].csum,
        Csum::Partial {
            start: 34,
            offset: 16
        }
    );
}

#[test]
fn csum_blank_on_unparseable_headers_is_dropped() {
    let (mut nf, mut vif) = setup();
    assert!(nf.send(&frame(60, 9), NETTXF_CSUM_BLANK).unwrap());
    let (pkts, st) = drain(&mut vif);
    assert!(pkts.is_empty());
    assert_eq!(st, RecvStatus::Idle);
    assert_eq!(get(&metrics(&vif).rx_csum_unparseable), 1);
    assert_eq!(nf.tx_errors(), 0, "reaped lazily");
    assert_eq!(nf.tx_responses()[0].status, NETIF_RSP_ERROR);
}

#[test]
fn gso_extra_both_ways() {
    let (mut nf, mut vif) = setup_with(|nf| {
        nf.feature_gso_tcpv4 = true;
        nf.feature_gso_tcpv6 = true;
    });
    assert!(vif.features().gso);
    let f = tcp_v4_frame(6000);
    let extra = NetifExtraInfo::gso(1448, XEN_NETIF_GSO_TYPE_TCPV4);
    assert!(nf
        .send_with_extras(&f, NETTXF_CSUM_BLANK, &[extra])
        .unwrap());
    let (pkts, _) = drain(&mut vif);
    assert_eq!(pkts.len(), 1);
    assert_eq!(pkts[0].data(), &f[..]);
    assert_eq!(
        pkts[0].gso,
        Some(Gso {
            kind: GsoType::TcpV4,
            mss: 1448
        })
    );
    // 2 data slots + 1 extra: the extra gets NETIF_RSP_NULL (not logged).
    assert_eq!(nf.tx_responses().len(), 2);
    assert_eq!(nf.tx_errors(), 0);

    vif.send(&[&pkts[0]]);
    let mut out = Vec::new();
    let flags = nf.recv(&mut out).expect("packet");
    assert_eq!(out, f);
    assert_ne!(flags & NETRXF_EXTRA_INFO, 0);
    let g = nf.last_gso().expect("gso extra");
    assert_eq!(g.gso_size(), 1448);
    assert_eq!(g.gso_type(), XEN_NETIF_GSO_TYPE_TCPV4);
}

#[test]
fn rx_queue_then_flush() {
    let (mut nf, mut vif) = setup();
    let pkts: Vec<Packet> = (0..300)
        .map(|i| Packet::from_slice(&frame(100, i as u8)))
        .collect();
    let refs: Vec<&Packet> = pkts.iter().collect();
    vif.send(&refs);
    let m = metrics(&vif);
    assert_eq!(get(&m.tx_packets), 256);
    assert_eq!(get(&m.tx_queued), 44);
    assert_eq!(vif.rx_queue_len(), 44);
    let mut out = Vec::new();
    let mut got = Vec::new();
    while nf.recv(&mut out).is_some() {
        got.push(out.clone());
    }
    assert_eq!(got.len(), 256);
    // The guest reposted requests and notified; the backend's next recv
    // flushes the queue.
    let (_, st) = drain(&mut vif);
    assert_eq!(st, RecvStatus::Idle);
    assert_eq!(vif.rx_queue_len(), 0);
    while nf.recv(&mut out).is_some() {
        got.push(out.clone());
    }
    assert_eq!(got.len(), 300);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g, pkts[i].data(), "packet {i} in order");
    }
}

fn arp_frame(seed: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06]);
    // Ethernet/IPv4 request; the last byte tells the frames apart.
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, seed]);
    f
}

fn ping_frame(seq: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .icmpv4_echo_request(7, seq);
    let mut out = Vec::new();
    b.write(&mut out, &[0x11; 56]).unwrap();
    out
}

/// A guest that stopped consuming its RX ring (the test's netfront does
/// not call `recv`), a full bulk backlog, then control frames: they wait
/// in their own backlog, the bulk overflow is dropped, and when the guest
/// resumes the control frames come first.
#[test]
fn control_frames_overtake_a_full_backlog() {
    let (mut nf, mut vif) = setup();
    let bulk: Vec<Packet> = (0..600)
        .map(|i| Packet::from_slice(&tcp_v4_frame(100 + i % 7)))
        .collect();
    let refs: Vec<&Packet> = bulk.iter().collect();
    // 256 fill the ring, 256 fill the backlog, 88 are dropped.
    vif.send(&refs);
    let m = metrics(&vif);
    assert_eq!(get(&m.tx_packets), 256);
    assert_eq!(vif.rx_queue_len(), 256);
    assert_eq!(get(&m.tx_queue_full), 600 - 512);
    let ctrl = [
        Packet::from_slice(&arp_frame(1)),
        Packet::from_slice(&ping_frame(1)),
    ];
    vif.send(&[&ctrl[0], &bulk[0], &ctrl[1], &bulk[1]]);
    assert_eq!(vif.rx_prio_len(), 2);
    assert_eq!(get(&m.tx_prio_queued), 2);
    // The bulk ones were dropped, not the control ones.
    assert_eq!(get(&m.tx_queue_full), 600 - 512 + 2);
    assert_eq!(get(&m.tx_prio_dropped), 0);
    // The guest takes the 256 in its ring, reposts, and the backend's
    // next pass flushes: control first.
    let mut out = Vec::new();
    for _ in 0..256 {
        assert!(nf.recv(&mut out).is_some());
    }
    drain(&mut vif);
    assert!(nf.recv(&mut out).is_some());
    assert_eq!(out, ctrl[0].data());
    assert!(nf.recv(&mut out).is_some());
    assert_eq!(out, ctrl[1].data());
    assert!(nf.recv(&mut out).is_some());
    assert_eq!(out, bulk[256].data(), "then the bulk backlog, in order");
    assert_eq!(get(&m.tx_prio_delivered), 2);
    // The priority backlog is bounded too: control frames beyond it are
    // dropped (and counted), never the process's memory.
    let (_nf2, mut vif2) = setup();
    vif2.send(&refs);
    let arps: Vec<Packet> = (0..100)
        .map(|i| Packet::from_slice(&arp_frame(i)))
        .collect();
    vif2.send(&arps.iter().collect::<Vec<_>>());
    let m2 = metrics(&vif2);
    assert_eq!(vif2.rx_prio_len(), xennet_vif::netback::RX_PRIO_PACKETS);
    assert_eq!(
        get(&m2.tx_prio_dropped),
        100 - xennet_vif::netback::RX_PRIO_PACKETS as u64
    );
    assert_eq!(
        vif2.stats().tx_dropped,
        600 - 512 + 100 - xennet_vif::netback::RX_PRIO_PACKETS as u64
    );
}

/// With control-first off, control frames share the bulk backlog: behind
/// it, and dropped with it when it is full.
#[test]
fn without_control_first_control_frames_wait_in_line() {
    let (mut nf, mut vif) = setup();
    vif.set_rx_control_first(false);
    let bulk: Vec<Packet> = (0..300)
        .map(|_| Packet::from_slice(&tcp_v4_frame(100)))
        .collect();
    vif.send(&bulk.iter().collect::<Vec<_>>());
    let ping = Packet::from_slice(&ping_frame(9));
    vif.send(&[&ping]);
    assert_eq!(vif.rx_prio_len(), 0);
    let mut out = Vec::new();
    for _ in 0..256 {
        assert!(nf.recv(&mut out).is_some());
    }
    drain(&mut vif);
    for _ in 0..44 {
        assert!(nf.recv(&mut out).is_some());
        assert_ne!(out, ping.data());
    }
    assert!(nf.recv(&mut out).is_some());
    assert_eq!(out, ping.data());
    assert_eq!(get(&metrics(&vif).tx_prio_queued), 0);
}

#[test]
fn rx_queue_is_bounded() {
    let (mut nf, mut vif) = setup();
    // 9000-byte packets: 3 slots each, so 85 fill the ring; then the
    // 512 KiB byte bound admits 58 more; the rest are dropped (XSA-392).
    let p = Packet::from_slice(&frame(9000, 4));
    let refs: Vec<&Packet> = std::iter::repeat(&p).take(200).collect();
    vif.send(&refs);
    let m = metrics(&vif);
    assert_eq!(get(&m.tx_packets), 85);
    assert_eq!(get(&m.tx_queued), 58);
    assert_eq!(get(&m.tx_queue_full), 200 - 85 - 58);
    assert_eq!(vif.stats().tx_dropped, 200 - 85 - 58);

    // Packet-count bound with small packets.
    let small = Packet::from_slice(&frame(60, 5));
    let refs: Vec<&Packet> = std::iter::repeat(&small).take(400).collect();
    let (mut nf2, mut vif2) = setup();
    vif2.send(&refs); // 256 delivered
    vif2.send(&refs); // 256 queued, 144 dropped
    let m2 = metrics(&vif2);
    assert_eq!(get(&m2.tx_packets), 256);
    assert_eq!(get(&m2.tx_queued), 256);
    assert_eq!(get(&m2.tx_queue_full), 400 - 256 + 144);
    let mut out = Vec::new();
    assert!(nf2.recv(&mut out).is_some());
    let _ = (&mut nf, &mut vif2);
}

fn good_packet_still_flows(nf: &mut Netfront, vif: &mut Vif) {
    let f = frame(80, 42);
    assert!(nf.send(&f, 0).unwrap());
    let (pkts, st) = drain(vif);
    assert_eq!(st, RecvStatus::Idle);
    assert_eq!(pkts.len(), 1);
    assert_eq!(pkts[0].data(), &f[..]);
}

#[test]
fn hostile_cases() {
    for case in HostileCase::ALL {
        if case == HostileCase::EventStorm {
            continue; // tests/multiqueue.rs: events, not requests
        }
        let (mut nf, mut vif) = setup();
        assert_eq!(case.to_string().parse::<HostileCase>(), Ok(case));
        hostile::run(case, &mut nf);
        let (pkts, st) = drain(&mut vif);
        assert!(pkts.is_empty(), "{case}: nothing forwarded");
        let m = metrics(&vif);
        if case.is_fatal() {
            assert_eq!(st, RecvStatus::Disabled, "{case}");
            assert_eq!(get(&m.fatal_errors), 1, "{case}");
            assert!(vif.is_disabled());
            // The violation, with the values that broke the protocol,
            // and its own counter.
            let v = vif.violation().expect("a violation");
            let want = match case {
                HostileCase::ProdOverflow => matches!(
                    v,
                    ProtocolViolation::RingOverflow {
                        ring: RingName::Tx,
                        overflow
                    } if overflow.req_prod.wrapping_sub(overflow.req_cons) > overflow.size
                ),
                HostileCase::OffsetOverflow => matches!(
                    v,
                    ProtocolViolation::FirstSlotCrossesPage { offset, size }
                        if usize::from(offset) + usize::from(size) > 4096
                ),
                HostileCase::TwentySlots => matches!(
                    v,
                    ProtocolViolation::TooManySlots {
                        slots: 20,
                        threshold: 20
                    }
                ),
                _ => false,
            };
            assert!(want, "{case}: {v:?}");
            assert_eq!(get(&m.violations[v.index()]), 1, "{case}");
            assert_eq!(m.to_json()["violations"][v.name()], 1, "{case}");
            // Stays disabled, no second warning, no panic.
            let mut b = PacketBatch::new();
            assert_eq!(vif.recv(&mut b), RecvStatus::Disabled);
            vif.send(&[&Packet::from_slice(&frame(60, 0))]);
            assert_eq!(get(&m.fatal_errors), 1);
            assert_eq!(get(&m.tx_disabled_drops), 1);
            continue;
        }
        assert_eq!(st, RecvStatus::Idle, "{case}");
        assert_eq!(get(&m.fatal_errors), 0, "{case}");
        let rsps = nf.tx_responses().to_vec();
        assert!(!rsps.is_empty(), "{case}: responses");
        assert!(
            rsps.iter().all(|r| r.status == NETIF_RSP_ERROR),
            "{case}: {rsps:?}"
        );
        let (counter, slots) = match case {
            HostileCase::BadGref => (&m.rx_grant_errors, 1),
            HostileCase::ZeroLength => (&m.rx_malformed, 4),
            HostileCase::NineteenSlots => (&m.rx_too_many_slots, 19),
            _ => unreachable!(),
        };
        assert_eq!(get(counter), 1, "{case}");
        assert_eq!(rsps.len(), slots, "{case}");
        nf.clear_tx_responses();
        good_packet_still_flows(&mut nf, &mut vif);
    }
}

#[test]
fn revoked_grant_is_a_grant_error() {
    let (mut nf, mut vif) = setup();
    // Revoke every TX buffer grant, send, and expect an error response.
    for id in 0..RING_SIZE as u16 {
        nf.grant_table().end_access(Netfront::tx_buffer_gref(id));
    }
    assert!(nf.send(&frame(60, 7), 0).unwrap());
    let (pkts, st) = drain(&mut vif);
    assert!(pkts.is_empty());
    assert_eq!(st, RecvStatus::Idle);
    assert_eq!(get(&metrics(&vif).rx_grant_errors), 1);
    assert_eq!(nf.tx_responses()[0].status, NETIF_RSP_ERROR);
}

#[test]
fn mixed_batch_keeps_good_packets_in_order() {
    let (mut nf, mut vif) = setup();
    let a = frame(70, 1);
    let c = frame(90, 3);
    assert!(nf.send(&a, 0).unwrap());
    hostile::run(HostileCase::BadGref, &mut nf);
    hostile::run(HostileCase::NineteenSlots, &mut nf);
    assert!(nf.send(&c, 0).unwrap());
    let (pkts, _) = drain(&mut vif);
    assert_eq!(pkts.len(), 2);
    assert_eq!(pkts[0].data(), &a[..]);
    assert_eq!(pkts[1].data(), &c[..]);
}

#[test]
fn unknown_extra_type_is_fatal() {
    let (mut nf, mut vif) = setup();
    let first = NetifTxRequest {
        gref: Netfront::tx_buffer_gref(5),
        offset: 0,
        flags: NETTXF_EXTRA_INFO,
        id: 5,
        size: 60,
    };
    let extra = NetifExtraInfo::mcast(XEN_NETIF_EXTRA_TYPE_NONE, [0; 6]);
    nf.push_raw_tx(&[first, extra.as_tx_request()]);
    let (_, st) = drain(&mut vif);
    assert_eq!(st, RecvStatus::Disabled);
}

#[test]
fn metrics_json_has_every_counter() {
    let (_nf, vif) = setup();
    let j = vif.metrics().to_json();
    assert_eq!(j["rx_packets"], 0);
    assert!(j.get("notifications_suppressed").is_some());
}

#[test]
fn notifications_follow_the_hold_off_rule() {
    let (mut nf, mut vif) = setup();
    assert!(nf.send(&frame(60, 1), 0).unwrap());
    drain(&mut vif);
    // The frontend asked for an event at rsp_prod 1 (SHARED_RING_INIT).
    assert!(take_event(&nf));
    let m = metrics(&vif);
    assert_eq!(get(&m.notifications_sent), 1);
    // Without reaping (rsp_event not re-armed) the next push is silent.
    assert!(nf.send(&frame(60, 2), 0).unwrap()); // send() reaps and re-arms
    drain(&mut vif);
    assert!(take_event(&nf));
    nf.push_raw_tx(&[NetifTxRequest {
        gref: Netfront::tx_buffer_gref(9),
        offset: 0,
        flags: 0,
        id: 9,
        size: 60,
    }]);
    drain(&mut vif);
    assert!(!take_event(&nf), "rsp_event not re-armed: no event");
    assert_eq!(get(&m.notifications_suppressed), 1);
}

/// A guest that sends for long keeps a bounded log of TX responses (it
/// used to keep every one, 8 bytes a packet, in xennet-guest forever).
#[test]
fn tx_response_log_is_bounded() {
    use xennet_vif::netfront::TX_LOG_MAX;
    let (mut nf, mut vif) = setup();
    let f = frame(60, 3);
    for _ in 0..3 * TX_LOG_MAX {
        while !nf.send(&f, 0).unwrap() {
            drain(&mut vif);
        }
    }
    let (pkts, _) = drain(&mut vif);
    assert!(!pkts.is_empty());
    let rsps = nf.tx_responses();
    assert!(
        (TX_LOG_MAX / 2..=TX_LOG_MAX).contains(&rsps.len()),
        "{}",
        rsps.len()
    );
    assert!(rsps.iter().all(|r| r.status == NETIF_RSP_OKAY));
    assert_eq!(nf.tx_errors(), 0);
}

/// The `rate` key's credit: a window's bytes go, the rest waits in the
/// ring (not polled for) until the vif's timer ends the window; a rate
/// lifted lets everything through.
#[test]
fn tx_rate_holds_packets_until_the_window_ends() {
    let (mut nf, mut vif) = setup();
    let rate = std::sync::Arc::new(xennet_vif::netback::TxRate::default());
    rate.set(Some((3000, 100_000))); // 3000 bytes per 100 ms
    vif.set_tx_rate(rate.clone());
    for i in 0..10 {
        assert!(nf.send(&frame(1000, i), 0).unwrap());
    }
    let (pkts, st) = drain(&mut vif);
    assert_eq!(
        (pkts.len(), st),
        (3, RecvStatus::Idle),
        "one window's worth"
    );
    let m = metrics(&vif);
    assert!(get(&m.rx_rate_limited) >= 1);
    // The port's fd becomes readable when the window ends.
    assert!(wait_readable(&vif), "the timer wakes the port");
    let (pkts, _) = drain(&mut vif);
    assert_eq!(pkts.len(), 3, "the next window's worth");
    rate.set(None);
    let (pkts, st) = drain(&mut vif);
    assert_eq!(
        (pkts.len(), st),
        (4, RecvStatus::Idle),
        "unlimited: the rest"
    );
    assert_eq!(get(&m.rx_packets), 10, "nothing lost");
}

/// Waits until the vif's event fd is readable (its timer or a channel),
/// at most 10 s; whether it became readable.
fn wait_readable(vif: &Vif) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let fd = vif
        .event_fd()
        .expect("event fd")
        .as_fd()
        .try_clone_to_owned()
        .unwrap();
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(10_000u16)).unwrap() == 1
}

/// Consumes a pending notification on the guest's channel; whether there
/// was one.
fn take_event(nf: &Netfront) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 8];
    nix::unistd::read(nf.event_fd().as_raw_fd(), &mut b).is_ok()
}

/// Multicast control (`request-multicast-control`): subscriptions are
/// size-0 requests with `XEN_NETIF_EXTRA_TYPE_MCAST_ADD/DEL` extras,
/// answered OKAY or (for a unicast address) ERROR, no packet made of them;
/// the guest then receives unicast, broadcast and its groups only.
#[test]
fn multicast_control_filters_groups() {
    const G1: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    const G2: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfc];
    let (mut nf, mut vif) = setup_with(|nf| nf.request_multicast_control = true);
    assert!(nf
        .mcast_request(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, G1)
        .unwrap());
    assert!(nf
        .mcast_request(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, [0x02, 0, 0, 0, 0, 9])
        .unwrap());
    let (pkts, st) = drain(&mut vif);
    assert!(pkts.is_empty(), "a subscription is not a packet");
    assert_eq!(st, RecvStatus::Idle);
    let status: Vec<i16> = nf.tx_responses().iter().map(|r| r.status).collect();
    assert_eq!(status, [NETIF_RSP_OKAY, NETIF_RSP_ERROR]);
    assert_eq!(vif.mcast_groups(), 1);
    let m = metrics(&vif);
    assert_eq!(get(&m.rx_mcast_add), 1);
    assert_eq!(get(&m.mcast_refused), 1);
    assert_eq!(get(&m.fatal_errors), 0);

    let to = |dst: [u8; 6], seed: u8| {
        let mut f = frame(80, seed);
        f[..6].copy_from_slice(&dst);
        Packet::from_slice(&f)
    };
    let received = |vif: &mut Vif, nf: &mut Netfront, dsts: &[[u8; 6]]| {
        let pkts: Vec<Packet> = dsts.iter().map(|d| to(*d, 1)).collect();
        vif.send(&pkts.iter().collect::<Vec<_>>());
        let mut out = Vec::new();
        let mut got = Vec::new();
        while nf.recv(&mut out).is_some() {
            got.push(<[u8; 6]>::try_from(&out[..6]).unwrap());
        }
        got
    };
    let unicast = [0x02, 0, 0, 0, 0, 1];
    let dsts = [G1, G2, [0xff; 6], unicast];
    assert_eq!(received(&mut vif, &mut nf, &dsts), [G1, [0xff; 6], unicast]);
    assert_eq!(get(&m.tx_mcast_filtered), 1);
    // Leaving G1: now it is filtered too.
    assert!(nf
        .mcast_request(XEN_NETIF_EXTRA_TYPE_MCAST_DEL, G1)
        .unwrap());
    drain(&mut vif);
    assert_eq!(get(&m.rx_mcast_del), 1);
    assert_eq!(vif.mcast_groups(), 0);
    assert_eq!(received(&mut vif, &mut nf, &dsts), [[0xff; 6], unicast]);
    assert_eq!(get(&m.tx_mcast_filtered), 3);

    // A frontend that did not request multicast control gets every group.
    let (mut nf, mut vif) = setup();
    assert_eq!(received(&mut vif, &mut nf, &dsts), dsts);
}

/// A frontend without `feature-rx-notify` posts RX requests silently: the
/// backend polls its ring while packets wait, so the backlog still drains.
#[test]
fn frontend_without_rx_notify_is_polled() {
    let (mut nf, mut vif) = setup_with(|nf| nf.feature_rx_notify = false);
    let pkts: Vec<Packet> = (0..300)
        .map(|i| Packet::from_slice(&frame(100, i as u8)))
        .collect();
    vif.send(&pkts.iter().collect::<Vec<_>>());
    assert_eq!(vif.rx_queue_len(), 44);
    let mut out = Vec::new();
    let mut got = 0;
    while nf.recv(&mut out).is_some() {
        got += 1;
    }
    assert_eq!(got, 256);
    // No notification came; the backend's poll timer wakes the port.
    assert!(wait_readable(&vif), "the RX poll timer wakes the port");
    drain(&mut vif);
    assert_eq!(vif.rx_queue_len(), 0);
    while nf.recv(&mut out).is_some() {
        got += 1;
    }
    assert_eq!(got, 300);
    let m = vif.metrics().to_json();
    assert_eq!(m["tx_packets"], 300);
    assert!(m["tx_backlog_wait_avg_us"].as_f64().unwrap() > 0.0, "{m}");
}

/// Packets that wait in the backlog longer than the drain timeout are
/// dropped and counted, even when nothing else wakes the vif.
#[test]
fn stale_rx_backlog_expires() {
    let (mut nf, mut vif) = setup();
    vif.set_rx_drain_timeout(std::time::Duration::from_millis(50));
    let pkts: Vec<Packet> = (0..300)
        .map(|i| Packet::from_slice(&frame(100, i as u8)))
        .collect();
    vif.send(&pkts.iter().collect::<Vec<_>>());
    assert_eq!(vif.rx_queue_len(), 44);
    // The guest does not read; the expiry timer wakes the port.
    assert!(wait_readable(&vif), "the drain timer wakes the port");
    drain(&mut vif);
    let m = metrics(&vif);
    assert_eq!(vif.rx_queue_len(), 0);
    assert_eq!(get(&m.tx_expired), 44);
    assert_eq!(vif.stats().tx_dropped, 44);
    // Each waited at least the timeout.
    assert!(get(&m.tx_backlog_wait_ns) >= 44 * 50_000_000);
    let mut out = Vec::new();
    let mut got = 0;
    while nf.recv(&mut out).is_some() {
        got += 1;
    }
    assert_eq!(got, 256, "only what fitted in the ring arrives");
}

/// Adaptive coalescing: at low load (one response per notification) every
/// notification goes at once; under high load (8 or more responses since
/// the last one, within the window) the next waits for the window's end,
/// sent by the vif's timer. A wide window keeps the test independent of
/// scheduling.
#[test]
fn notifications_coalesce_under_high_load_only() {
    let (mut nf, mut vif) = setup();
    vif.set_coalesce(std::time::Duration::from_millis(500));
    let m = metrics(&vif);
    // Ping-pong: one packet at a time, each notified at once.
    for i in 0..5 {
        assert!(nf.send(&frame(60, i), 0).unwrap());
        drain(&mut vif);
        assert!(take_event(&nf), "packet {i}: notified at once");
    }
    assert_eq!(get(&m.notifications_deferred), 0);
    // A burst of 8 right after the last notification: held back.
    for i in 0..8 {
        assert!(nf.send(&frame(60, i), 0).unwrap());
    }
    drain(&mut vif);
    assert!(!take_event(&nf), "held back for coalescing");
    assert_eq!(get(&m.notifications_deferred), 1);
    let sent = get(&m.notifications_sent);
    // The timer wakes the port at the window's end and it notifies.
    assert!(wait_readable(&vif), "the coalescing timer wakes the port");
    drain(&mut vif);
    assert!(take_event(&nf), "sent after the window");
    assert_eq!(get(&m.notifications_sent), sent + 1);
    nf.reap_tx();
    assert_eq!(nf.tx_errors(), 0);
    let j = vif.metrics().to_json();
    assert_eq!(j["rx_packets"], 13);
    assert!(j["rx_wait_avg_us"].as_f64().unwrap() > 0.0, "{j}");
}

/// An interface reset: the backend lets go, the frontend revokes every
/// grant and sets up fresh rings under new references; the old
/// references are refused, the new ones carry traffic both ways, and
/// twenty resets in a row keep working.
#[test]
fn reset_sets_up_fresh_rings_under_new_references() {
    use xennet_vif::emul::EventFdChannel;
    let (mut nf, mut vif) = setup();
    let f = frame(200, 1);
    assert!(nf.send(&f, 0).unwrap());
    let (got, _) = drain(&mut vif);
    assert_eq!(got.len(), 1);
    // A TX request the backend never saw is gone with the old rings.
    assert!(nf.send(&frame(200, 2), 0).unwrap());
    drop(vif);
    for round in 0..20u8 {
        let (old_tx, old_rx) = nf.ring_refs(0);
        nf.reset().unwrap();
        let (tx, rx) = nf.ring_refs(0);
        assert!(tx != old_tx && rx != old_rx, "new references");
        let mut cfg = nf.frontend_config(0);
        (cfg.tx_ring_ref, cfg.rx_ring_ref) = (old_tx, old_rx);
        let (_, back) = EventFdChannel::pair().unwrap();
        let refused = Vif::connect(
            "vif1.0".into(),
            0,
            cfg,
            Box::new(nf.emulated_grants().unwrap()),
            Box::new(back),
        );
        assert!(refused.is_err(), "the old ring references are revoked");
        let (_, back) = EventFdChannel::pair().unwrap();
        let mut vif = Vif::connect(
            "vif1.0".into(),
            0,
            nf.frontend_config(0),
            Box::new(nf.emulated_grants().unwrap()),
            Box::new(back),
        )
        .expect("the new references connect");
        let (got, _) = drain(&mut vif);
        assert!(got.is_empty(), "the fresh TX ring is empty");
        let f = frame(300, round);
        assert!(nf.send(&f, 0).unwrap());
        let (got, _) = drain(&mut vif);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data(), &f[..]);
        let p = Packet::from_slice(&frame(400, round));
        vif.send(&[&p]);
        let mut out = Vec::new();
        assert!(nf.recv(&mut out).is_some());
        assert_eq!(out, p.data());
        assert_eq!(nf.tx_errors(), 0);
        assert_eq!(get(&metrics(&vif).tx_grant_errors), 0);
    }
    assert_eq!(nf.resets(), 20);
}
