//! OpenFlow classifier cost (issue 15): lookup of a table of 100,000
//! rules `priority=N,ip,nw_dst=10.x.y.z` (the `flow_mod_100k_s` flows:
//! one subtable) and of 8 subtables (nw_dst prefixes /25 to /32) with
//! 12,500 rules each, keys spread over all rules; and inserting the
//! 100,000 rules into an empty table (the classifier's share of a
//! bundle commit).
//!
//! Run: `cargo bench -p xennet-ofproto --bench classifier`.

use xennet_datapath::flow::Field;
use xennet_datapath::{FlowKey, FlowMask};
use xennet_ofproto::classifier::{minimatch, Classifier};
use xennet_openflow::model::Match;

fn main() {
    divan::main();
}

const N: u32 = 100_000;

/// Rule `i` of a table with `n_subtables` masks.
fn rule(i: u32, n_subtables: u32) -> (Match, u16) {
    let mut key = FlowKey::default();
    let mut mask = FlowMask::CATCHALL;
    key.set(Field::DlType, 0x0800);
    mask.set(Field::DlType, 0xffff);
    let prefix = 32 - i % n_subtables;
    key.set(Field::NwDst, u128::from((0x0a64_0000 + i) << (32 - prefix)));
    mask.set(Field::NwDst, u128::from(u32::MAX << (32 - prefix)));
    let m = Match { key, mask };
    (m, 1000 + (i % 30_000) as u16)
}

fn table(n_subtables: u32) -> (Classifier<u32>, Vec<FlowKey>) {
    let mut cls = Classifier::new();
    let mut keys = Vec::new();
    for i in 0..N {
        let (m, p) = rule(i, n_subtables);
        cls.insert(&m, p, i);
        keys.push(m.key);
    }
    (cls, keys)
}

#[divan::bench(args = [1, 8])]
fn lookup_hit(bencher: divan::Bencher, n_subtables: u32) {
    let (cls, keys) = table(n_subtables);
    let mut i = 0usize;
    bencher.bench_local(|| {
        i = (i + 7919) % keys.len();
        let mut wc = FlowMask::CATCHALL;
        divan::black_box(
            cls.lookup(divan::black_box(&keys[i]), &mut wc)
                .map(|r| r.value),
        )
    });
}

#[divan::bench(sample_count = 10)]
fn insert_100k(bencher: divan::Bencher) {
    let rules: Vec<_> = (0..N)
        .map(|i| {
            let (m, p) = rule(i, 1);
            (minimatch(&m), p)
        })
        .collect();
    bencher.bench_local(|| {
        let mut cls = Classifier::new();
        for (i, (m, p)) in rules.iter().enumerate() {
            cls.insert(m, *p, i);
        }
        cls
    });
}
