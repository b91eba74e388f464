//! Streamed flow-mod cost (issue 15, `flow_mod_stream_100k_s`): the
//! 100,000 OpenFlow 1.3 `OFPFC_ADD`s of the bench's flows file
//! (`priority=1000+i%30000,ip,nw_dst=10.x.y.z,actions=output:1`, the
//! wire form `examples/flowmod_stream.rs` sends), decoded, and decoded
//! and applied to an empty table through the in-place path an OpenFlow
//! connection takes (`Ofproto::try_handle_flow_mod`). The switch's
//! connection task adds its socket reads and framing to these.
//!
//! Run: `cargo bench -p xennet-ofproto --bench flow_mod`.

use xennet_datapath::flow::Field;
use xennet_datapath::{FlowKey, FlowMask};
use xennet_ofproto::{FailMode, Ofproto};
use xennet_openflow::header::OFP13_VERSION;
use xennet_openflow::model::{Action, FlowMod, Instructions, Match, Msg};

fn main() {
    divan::main();
}

const N: u32 = 100_000;

/// The wire form of the `N` flow-mods, one message each.
fn messages() -> Vec<Vec<u8>> {
    (0..N)
        .map(|i| {
            let mut key = FlowKey::default();
            let mut mask = FlowMask::CATCHALL;
            key.set(Field::DlType, 0x0800);
            mask.set(Field::DlType, 0xffff);
            key.set(
                Field::NwDst,
                u128::from(u32::from_be_bytes([
                    10,
                    (100 + (i >> 16)) as u8,
                    (i >> 8) as u8,
                    i as u8,
                ])),
            );
            mask.set(Field::NwDst, u128::from(u32::MAX));
            let fm = FlowMod::add(
                0,
                1000 + (i % 30_000) as u16,
                Match { key, mask },
                Instructions::apply(vec![Action::Output {
                    port: 1,
                    max_len: 0,
                }]),
            );
            let mut out = Vec::new();
            xennet_openflow::encode(&Msg::FlowMod(fm), OFP13_VERSION, i + 1, &mut out)
                .expect("a plain OpenFlow 1.3 flow-mod encodes");
            out
        })
        .collect()
}

#[divan::bench(sample_count = 10)]
fn decode_100k(bencher: divan::Bencher) {
    let msgs = messages();
    bencher.bench_local(|| {
        for m in &msgs {
            divan::black_box(xennet_openflow::decode(m).expect("decodes"));
        }
    });
}

#[divan::bench(sample_count = 10)]
fn decode_apply_100k(bencher: divan::Bencher) {
    let msgs = messages();
    bencher
        .with_inputs(|| Ofproto::new("br0", 1, FailMode::Secure))
        .bench_local_values(|of| {
            for m in &msgs {
                let Ok((_, Msg::FlowMod(fm))) = xennet_openflow::decode(m) else {
                    panic!("not a flow-mod");
                };
                assert_eq!(of.try_handle_flow_mod(&fm), Some(Ok(())));
            }
            of
        });
}
