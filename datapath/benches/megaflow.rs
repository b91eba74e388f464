//! Megaflow lookup cost per packet (issue 7, `megaflow`): a cache of 1, 8
//! or 32 subtables (distinct masks) with 64 megaflows each, looked up with
//! keys spread evenly over all subtables, as a busy hypervisor's mix.
//! Also flow-key extraction of a 64-byte UDP frame, and one batch through
//! the executor (`execute` + `flush`).
//!
//! Run: `cargo bench -p xennet-datapath --bench megaflow`.

use std::sync::Arc;
use std::time::Instant;

use xennet_datapath::flow::{extract_frame, Field};
use xennet_datapath::megaflow::emc::Emc;
use xennet_datapath::megaflow::MegaflowCache;
use xennet_datapath::{DpAction, FlowKey, FlowMask};

fn main() {
    divan::main();
}

/// Subtable `i` matches in_port, dl_dst and an nw_dst prefix of length
/// i + 1; dl_dst carries `i` so megaflows of different subtables never
/// overlap.
fn build(n_subtables: usize) -> (MegaflowCache, Vec<FlowKey>) {
    let mut cache = MegaflowCache::new();
    let mut keys = Vec::new();
    let actions: Arc<[DpAction]> = Arc::from(vec![DpAction::Output(2)]);
    let now = Instant::now();
    for i in 0..n_subtables {
        let mut mask = FlowMask::CATCHALL;
        mask.set(Field::InPort, Field::InPort.all_ones());
        mask.set(Field::DlDst, Field::DlDst.all_ones());
        let prefix = i as u32 + 1;
        let v4 = u128::from(u32::MAX << (32 - prefix));
        mask.set(Field::NwDst, v4);
        for f in 0..64u64 {
            let mut key = FlowKey::default();
            key.set(Field::InPort, 1);
            key.set(Field::DlDst, u128::from((i as u64) << 8 | f));
            key.set(Field::NwDst, u128::from(0x0a00_0000u32 | (f as u32) << 8));
            cache.insert(&key, &mask, actions.clone(), now);
            keys.push(key);
        }
    }
    // Interleave so consecutive lookups hit different subtables.
    keys.sort_by_key(|k| k.get(Field::DlDst) & 0xff);
    (cache, keys)
}

#[divan::bench(args = [1, 8, 32])]
fn lookup_hit(bencher: divan::Bencher, n_subtables: usize) {
    let (cache, keys) = build(n_subtables);
    let mut i = 0usize;
    bencher.bench_local(|| {
        i = (i + 1) % keys.len();
        divan::black_box(cache.lookup(divan::black_box(&keys[i])).is_some())
    });
}

/// The exact-match cache in front: hash the key, compare it, done.
#[divan::bench]
fn emc_hit(bencher: divan::Bencher) {
    let (cache, keys) = build(32);
    let mut emc = Emc::new();
    let keys: Vec<_> = keys.into_iter().take(1024).collect();
    let hashes: Vec<u64> = keys.iter().map(|k| emc.hash(k)).collect();
    for (k, h) in keys.iter().zip(&hashes) {
        if let Some(f) = cache.lookup(k) {
            emc.insert(k, *h, f);
        }
    }
    let mut i = 0usize;
    bencher.bench_local(|| {
        i = (i + 1) % keys.len();
        let k = divan::black_box(&keys[i]);
        divan::black_box(emc.lookup(k, emc.hash(k)).is_some())
    });
}

/// A miss from the port that has the megaflows: every subtable is probed.
#[divan::bench(args = [1, 8, 32])]
fn lookup_miss(bencher: divan::Bencher, n_subtables: usize) {
    let (cache, _) = build(n_subtables);
    let mut key = FlowKey::default();
    key.set(Field::InPort, 1);
    key.set(Field::DlDst, 0xffff_ffff);
    bencher.bench_local(|| divan::black_box(cache.lookup(divan::black_box(&key)).is_none()));
}

/// A miss from a port without megaflows: one probe of the port index
/// (OVS's per-in_port dpcls).
#[divan::bench]
fn lookup_miss_other_port(bencher: divan::Bencher) {
    let (cache, _) = build(32);
    let mut key = FlowKey::default();
    key.set(Field::InPort, 9);
    bencher.bench_local(|| divan::black_box(cache.lookup(divan::black_box(&key)).is_none()));
}

#[divan::bench]
fn extract_udp_64b(bencher: divan::Bencher) {
    let frame = udp_64b();
    bencher.bench_local(|| extract_frame(divan::black_box(&frame), 1));
}

/// As `extract_udp_64b`, with the key left where it was built and only
/// referenced, as the forwarding loop uses it (`extract_udp_64b` also
/// counts the harness moving the whole key, 8 * N_WORDS bytes, out).
#[divan::bench]
fn extract_udp_64b_by_ref(bencher: divan::Bencher) {
    let frame = udp_64b();
    bencher.bench_local(|| {
        let key = extract_frame(divan::black_box(&frame), 1);
        divan::black_box(&key);
    });
}

/// A 64-byte UDP/IPv4 frame.
fn udp_64b() -> Vec<u8> {
    let mut frame = vec![0u8; 64];
    frame[..6].copy_from_slice(&[0, 0x16, 0x3e, 0, 0, 2]);
    frame[6..12].copy_from_slice(&[0, 0x16, 0x3e, 0, 0, 1]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&46u16.to_be_bytes());
    frame[22] = 64;
    frame[23] = 17;
    frame[26..30].copy_from_slice(&[10, 0, 0, 1]);
    frame[30..34].copy_from_slice(&[10, 0, 0, 2]);
    frame[34..36].copy_from_slice(&1000u16.to_be_bytes());
    frame[36..38].copy_from_slice(&2000u16.to_be_bytes());
    frame
}

/// One batch of 32 packets through the executor: one action list that
/// outputs each packet to `n_ports` ports (1 = unicast, 8 = flood on a
/// small bridge), then `flush` with one `send` per port.
#[divan::bench(args = [1, 8])]
fn execute_flush_32(bencher: divan::Bencher, n_ports: u32) {
    use xennet_datapath::actions::Executor;
    use xennet_datapath::{Packet, PortFeatures, MAX_BURST};
    let frame = [0u8; 64];
    let batch: Vec<Packet> = (0..MAX_BURST).map(|_| Packet::from_slice(&frame)).collect();
    let idxs: Vec<usize> = (0..MAX_BURST).collect();
    let actions: Vec<DpAction> = (2..2 + n_ports).map(DpAction::Output).collect();
    let features = |_p: u32| Some(PortFeatures::default());
    let mut exec = Executor::new();
    let mut sent = 0usize;
    bencher.bench_local(|| {
        exec.execute(&batch, &idxs, &actions, &features);
        exec.flush(&batch, &mut |_p, pkts| sent += pkts.len());
        divan::black_box(sent)
    });
}
