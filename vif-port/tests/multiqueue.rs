//! Multi-queue vifs, split event channels and the event token bucket: an
//! emulated netfront and a backend Vif in one process.

use std::sync::atomic::Ordering;
use std::time::Instant;

use xennet_datapath::{Packet, PacketBatch, Port, RecvStatus};
use xennet_vif::hostile::{self, HostileCase, STORM_EVENTS};
use xennet_vif::netfront::Netfront;
use xennet_vif::{Vif, VifMetrics};

fn setup(queues: u32, split: bool) -> (Netfront, Vif) {
    let mut nf = Netfront::with_queues(1, 0, queues, split).expect("netfront");
    let grants = nf.emulated_grants().expect("grants");
    let specs = nf.emulated_queues().expect("queues");
    let cfg = nf.frontend_config(0);
    let vif =
        Vif::connect_queues("vif1.0".into(), 0, cfg, specs, Box::new(grants)).expect("connect");
    (nf, vif)
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A TCP/IPv4 frame of flow `sport` → 80.
fn flow_frame(sport: u16, seq: u32) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(sport, 80, seq, 1000);
    let mut out = Vec::new();
    b.write(&mut out, &[0x5a; 40]).unwrap();
    out
}

fn drain(vif: &mut Vif) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut batch = PacketBatch::new();
    for _ in 0..1000 {
        batch.clear();
        let st = vif.recv(&mut batch);
        out.extend(batch.packets().iter().cloned());
        if st != RecvStatus::More {
            return out;
        }
    }
    panic!("vif never went idle");
}

fn used_queues(counts: &[u64]) -> usize {
    counts.iter().filter(|&&c| c > 0).count()
}

#[test]
fn four_split_queues_carry_flows_both_ways() {
    let (mut nf, mut vif) = setup(4, true);
    assert_eq!(vif.num_queues(), 4);
    // Guest → switch: 32 flows, each on the queue of its hash.
    let frames: Vec<Vec<u8>> = (0..32).map(|f| flow_frame(4000 + f, 1)).collect();
    for f in &frames {
        assert!(nf.send(f, 0).unwrap());
    }
    let got = drain(&mut vif);
    assert_eq!(got.len(), 32);
    let m = vif.metrics();
    let per_q: Vec<u64> = m.queue_rx_packets.iter().map(get).collect();
    assert_eq!(per_q.iter().sum::<u64>(), 32);
    assert!(used_queues(&per_q) >= 2, "{per_q:?}");
    // Switch → guest: each flow always lands on one queue.
    for round in 0..3u32 {
        let pkts: Vec<Packet> = (0..32)
            .map(|f| Packet::from_slice(&flow_frame(4000 + f, round)))
            .collect();
        let refs: Vec<&Packet> = pkts.iter().collect();
        vif.send(&refs);
        let mut out = Vec::new();
        let mut n = 0;
        while nf.recv(&mut out).is_some() {
            n += 1;
        }
        assert_eq!(n, 32, "round {round}");
    }
    let per_q: Vec<u64> = m.queue_tx_packets.iter().take(4).map(get).collect();
    assert!(used_queues(&per_q) >= 2, "{per_q:?}");
    assert_eq!(nf.rx_per_queue(), &per_q[..]);
    // Counted per round: every queue got a multiple of 3 (one flow, one
    // queue, three rounds).
    assert!(per_q.iter().all(|c| c % 3 == 0), "{per_q:?}");
    let json = m.to_json();
    assert_eq!(json["queues"], 4);
    assert_eq!(json["queue_tx_packets"].as_array().unwrap().len(), 4);
}

#[test]
fn split_channels_single_queue() {
    let (mut nf, mut vif) = setup(1, true);
    assert!(nf.split_event_channels());
    let f = flow_frame(5, 1);
    assert!(nf.send(&f, 0).unwrap());
    assert_eq!(drain(&mut vif).len(), 1);
    vif.send(&[&Packet::from_slice(&f)]);
    let mut out = Vec::new();
    assert!(nf.recv(&mut out).is_some());
    assert_eq!(out, f);
}

/// A guest storming its event channel while sending traffic: the backend
/// accepts at most the configured rate of spurious events per channel
/// (plus the burst, the events that brought packets and one wake-up per
/// tick), counts the throttling, and every packet still arrives.
#[test]
fn event_storm_is_bounded_and_traffic_flows() {
    const RATE: u32 = 1000;
    let (mut nf, mut vif) = setup(1, false);
    vif.set_event_rate(RATE);
    let m = vif.metrics();
    let start = Instant::now();
    let mut sent = 0u32;
    let mut received = 0usize;
    let mut batch = PacketBatch::new();
    for i in 0..50_000u32 {
        nf.notify();
        if i % 100 == 0 {
            assert!(nf.send(&flow_frame(7, i), 0).unwrap());
            sent += 1;
        }
        batch.clear();
        let _ = vif.recv(&mut batch);
        received += batch.len();
        // Responses are reaped so that the TX ring never fills.
        nf.reap_tx();
    }
    let elapsed = start.elapsed().as_secs_f64();
    // The last packets may have waited for the tick: drain (a tick at a
    // time) until they are all in, for at most 60 s (a loaded machine can
    // stall this thread for more than a tick).
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while received < sent as usize && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        received += drain(&mut vif).len();
    }
    assert_eq!(received, sent as usize, "no packet lost");
    let events = get(&m.events_received);
    let throttles = get(&m.event_throttles);
    assert!(throttles > 0, "the storm was throttled");
    // Spurious events accepted: burst (RATE / 100) + RATE per second;
    // events that brought a packet are free (at most one per packet);
    // the rest of the wake-ups are at most one throttling per 1 ms tick.
    let bound = f64::from(RATE / 100)
        + f64::from(RATE) * elapsed
        + f64::from(sent)
        + (elapsed * 1000.0 + 2.0);
    assert!(
        (events as f64) <= bound,
        "{events} events in {elapsed:.3} s exceed {bound:.0}"
    );
}

/// The hostile frontend's storm: the vif stays up and still forwards.
#[test]
fn hostile_event_storm() {
    let (mut nf, mut vif) = setup(2, true);
    hostile::run(HostileCase::EventStorm, &mut nf);
    assert!(!HostileCase::EventStorm.is_fatal());
    let mut batch = PacketBatch::new();
    assert_ne!(vif.recv(&mut batch), RecvStatus::Disabled);
    let f = flow_frame(9, 1);
    assert!(nf.send(&f, 0).unwrap());
    let got = drain(&mut vif);
    assert_eq!(got.len(), 1);
    let m: std::sync::Arc<VifMetrics> = vif.metrics();
    // Millions of notifications, a handful of wake-ups: eventfds coalesce.
    assert!(get(&m.events_received) < u64::from(STORM_EVENTS));
    assert_eq!(get(&m.fatal_errors), 0);
}

/// A guest of `queues` queues with its control ring, and its vif.
fn with_ctrl_ring(queues: u32) -> (Netfront, Vif) {
    let mut nf = Netfront::with_queues(1, 0, queues, false).unwrap();
    nf.enable_ctrl_ring().unwrap();
    let grants = nf.emulated_grants().unwrap();
    let specs = nf.emulated_queues().unwrap();
    let cfg = nf.frontend_config(0);
    let mut vif = Vif::connect_queues("vif1.0".into(), 0, cfg, specs, Box::new(grants)).unwrap();
    let (ring_ref, ch) = nf.emulated_ctrl().unwrap();
    vif.connect_ctrl(ring_ref, Box::new(ch)).unwrap();
    (nf, vif)
}

/// The control ring end to end in one process: the frontend selects
/// Toeplitz, the RSS key, every hash type and a one-entry mapping table
/// sending everything to queue 2; every flow then arrives on queue 2,
/// each packet with its hash extra.
#[test]
fn control_ring_mapping_steers_guest_rx() {
    use xennet_vif::ctrl::*;
    use xennet_vif::toeplitz::{DEFAULT_KEY, HASH_TYPES_ALL};
    let (mut nf, mut vif) = with_ctrl_ring(4);
    let data = nf.ctrl_data_gref();
    let call = |nf: &mut Netfront, vif: &mut Vif, kind: u16, d: [u32; 3]| {
        assert!(nf.ctrl_send(CtrlRequest {
            id: 40 + kind,
            kind,
            data: d
        }));
        let mut b = PacketBatch::new();
        let _ = vif.recv(&mut b);
        let rsp = nf.ctrl_recv().expect("a response");
        assert_eq!((rsp.id, rsp.kind), (40 + kind, kind));
        rsp
    };
    let r = call(
        &mut nf,
        &mut vif,
        CTRL_TYPE_SET_HASH_ALGORITHM,
        [HASH_ALGORITHM_TOEPLITZ, 0, 0],
    );
    assert_eq!(r.status, CTRL_STATUS_SUCCESS);
    assert!(nf.write_ctrl_data(&DEFAULT_KEY));
    let r = call(&mut nf, &mut vif, CTRL_TYPE_SET_HASH_KEY, [data, 40, 0]);
    assert_eq!(r.status, CTRL_STATUS_SUCCESS);
    let r = call(
        &mut nf,
        &mut vif,
        CTRL_TYPE_SET_HASH_FLAGS,
        [HASH_TYPES_ALL, 0, 0],
    );
    assert_eq!(r.status, CTRL_STATUS_SUCCESS);
    let r = call(
        &mut nf,
        &mut vif,
        CTRL_TYPE_SET_HASH_MAPPING_SIZE,
        [1, 0, 0],
    );
    assert_eq!(r.status, CTRL_STATUS_SUCCESS);
    // Queue 4 does not exist: refused.
    assert!(nf.write_ctrl_data(&4u32.to_ne_bytes()));
    let r = call(&mut nf, &mut vif, CTRL_TYPE_SET_HASH_MAPPING, [data, 1, 0]);
    assert_eq!(r.status, CTRL_STATUS_INVALID_PARAMETER);
    assert!(nf.write_ctrl_data(&2u32.to_ne_bytes()));
    let r = call(&mut nf, &mut vif, CTRL_TYPE_SET_HASH_MAPPING, [data, 1, 0]);
    assert_eq!(r.status, CTRL_STATUS_SUCCESS);
    let pkts: Vec<Packet> = (0..32)
        .map(|f| Packet::from_slice(&flow_frame(6000 + f, 1)))
        .collect();
    let refs: Vec<&Packet> = pkts.iter().collect();
    vif.send(&refs);
    let mut out = Vec::new();
    let mut last = Vec::new();
    while let Some(flags) = nf.recv(&mut out) {
        assert_ne!(flags & xennet_vif::ring::NETRXF_EXTRA_INFO, 0);
        last = out.clone();
    }
    assert_eq!(nf.rx_per_queue(), &[0, 0, 32, 0]);
    // Each packet carried its hash (XEN_NETIF_EXTRA_TYPE_HASH): type
    // IPV4_TCP (1), algorithm Toeplitz (1), the value.
    assert_eq!(last, flow_frame(6031, 1));
    let want = xennet_vif::toeplitz::hash_frame(&DEFAULT_KEY, HASH_TYPES_ALL, &last).unwrap();
    let e = nf.last_hash().expect("a hash extra");
    assert_eq!(e.kind, xennet_vif::ring::XEN_NETIF_EXTRA_TYPE_HASH);
    assert_eq!(e.u[..2], [1, 1]);
    assert_eq!(
        u32::from_ne_bytes([e.u[2], e.u[3], e.u[4], e.u[5]]),
        want.value
    );
    let m = vif.metrics();
    assert_eq!(get(&m.ctrl_requests), 6);
    assert_eq!(get(&m.ctrl_errors), 1);
    assert_eq!(get(&m.fatal_errors), 0);
}

/// A control ring whose `req_prod` runs more than a ring ahead disables
/// the vif (one fatal error), and a full ring of garbage requests gets a
/// full ring of error statuses, never a panic.
#[test]
fn hostile_control_ring() {
    use xennet_vif::ctrl::*;
    let connect = || with_ctrl_ring(2);
    let (mut nf, mut vif) = connect();
    let mut b = PacketBatch::new();
    for i in 0..128u16 {
        let kind = i % 12;
        assert!(nf.ctrl_send(CtrlRequest {
            id: i,
            kind,
            data: [u32::MAX, u32::MAX, u32::MAX]
        }));
    }
    assert!(!nf.ctrl_send(CtrlRequest::default()), "the ring holds 128");
    while vif.recv(&mut b) == RecvStatus::More {}
    let mut n = 0;
    while let Some(r) = nf.ctrl_recv() {
        assert_eq!(r.id, n);
        n += 1;
    }
    assert_eq!(n, 128);
    let m = vif.metrics();
    assert_eq!(get(&m.ctrl_requests), 128);
    assert!(get(&m.ctrl_errors) > 0);
    assert_eq!(get(&m.fatal_errors), 0);

    let (mut nf, mut vif) = connect();
    nf.ctrl_set_req_prod(1000);
    assert_eq!(vif.recv(&mut b), RecvStatus::Disabled);
    assert_eq!(get(&vif.metrics().fatal_errors), 1);
    assert!(
        matches!(
            vif.violation(),
            Some(xennet_vif::netback::ProtocolViolation::RingOverflow {
                ring: xennet_vif::netback::RingName::Ctrl,
                overflow
            }) if overflow.req_prod == 1000
        ),
        "{:?}",
        vif.violation()
    );
}
