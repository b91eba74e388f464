//! Fuzz target for the tunnel decapsulation path (see the `xennet-fuzz`
//! crate for how it runs, for how long, and how to run it longer).
//!
//! Seeds (`fuzz-corpus/tunnel_decap`): VXLAN over IPv4 and IPv6, Geneve
//! over IPv4 with a critical option and over IPv6 without options, each
//! carrying an inner UDP/IPv4 frame, as `encapsulate` builds them. Files
//! named `regress-*` are inputs that once failed.

use xennet_datapath::Packet;
use xennet_fuzz::{corpus_dir, run, Kind};
use xennet_ports::tunnel::{decapsulate, encapsulate, parse_outer_udp, TunnelKind};

/// Outer headers and both tunnel headers on any frame: never a panic;
/// what is accepted lies inside the frame; re-encapsulating an accepted
/// inner frame and decapsulating it again gives the same metadata.
#[test]
fn tunnel_decap() {
    run(
        "tunnel_decap",
        corpus_dir!("tunnel_decap"),
        Kind::Bytes,
        |data| {
            let Ok(Some(outer)) = parse_outer_udp(data) else {
                return;
            };
            for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
                for known in [|_: u16, _: u8| true, |_: u16, _: u8| false] {
                    let Ok(d) = decapsulate(data, &outer, kind, &known) else {
                        continue;
                    };
                    assert!(d.inner + d.inner_len <= data.len());
                    assert!(d.opts.0 + d.opts.1 <= data.len());
                    let inner = &data[d.inner..d.inner + d.inner_len];
                    let opts = &data[d.opts.0..d.opts.0 + d.opts.1];
                    let mut p = Packet::from_slice(inner);
                    let e = xennet_ports::tunnel::Encap {
                        kind,
                        src_mac: [2; 6],
                        dst_mac: [4; 6],
                        src: outer.src,
                        dst: outer.dst,
                        vni: u32::try_from(d.tunnel.id).unwrap_or(0),
                        tos: d.tunnel.tos,
                        ttl: d.tunnel.ttl,
                        df: false,
                        ip_id: 0,
                        udp_src: d.tunnel.tp_src.max(1),
                        udp_dst: d.tunnel.tp_dst,
                        csum: true,
                        geneve_opts: opts,
                        oam: false,
                    };
                    if encapsulate(&mut p, &e).is_ok() {
                        let o2 = parse_outer_udp(p.data()).unwrap().unwrap();
                        let d2 = decapsulate(p.data(), &o2, kind, &known).unwrap();
                        assert_eq!(d2.tunnel.id, d.tunnel.id);
                        assert_eq!((d2.tunnel.src, d2.tunnel.dst), (d.tunnel.src, d.tunnel.dst));
                        assert_eq!(&p.data()[d2.inner..], inner);
                    }
                }
            }
        },
    );
}
