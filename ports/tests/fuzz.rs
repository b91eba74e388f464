//! Fuzz targets for the tunnel decapsulation path (see the `xennet-fuzz`
//! crate for how it runs, for how long, and how to run it longer).
//!
//! Seeds (`fuzz-corpus/tunnel_decap`): VXLAN over IPv4 and IPv6, Geneve
//! over IPv4 with a critical option and over IPv6 without options, GRE
//! with a key and a checksum over IPv4, each
//! carrying an inner UDP/IPv4 frame, as `encapsulate` builds them. Files
//! named `regress-*` are inputs that once failed.

use xennet_datapath::Packet;
use xennet_fuzz::{corpus_dir, run, Kind};
use xennet_ports::tunnel::{
    decapsulate, encapsulate, parse_outer_gre, parse_outer_udp, TunnelKind,
};

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
            let (outer, kinds) = match (parse_outer_udp(data), parse_outer_gre(data)) {
                (Ok(Some(o)), _) => (o, &[TunnelKind::Vxlan, TunnelKind::Geneve][..]),
                (_, Ok(Some(o))) => (o, &[TunnelKind::Gre][..]),
                _ => return,
            };
            for &kind in kinds {
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
                        let o2 = match kind {
                            TunnelKind::Gre => parse_outer_gre(p.data()),
                            _ => parse_outer_udp(p.data()),
                        };
                        let o2 = o2.unwrap().unwrap();
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

/// The whole receive side of the underlay: any frame a bridge outputs to
/// its LOCAL port (with any checksum and GSO state) goes through neighbour
/// snooping and, if addressed to a tunnel endpoint, decapsulation into a
/// tunnel port, without a panic; what reaches a tunnel port is no longer
/// than the frame and carries no stale offload state past its end.
#[test]
fn underlay_send() {
    use std::sync::{Arc, Mutex};
    use xennet_datapath::memport::mem_port;
    use xennet_datapath::{Csum, Gso, GsoType, PacketBatch, Port, PortFeatures};
    use xennet_ports::tunnel::config::parse_options;
    use xennet_ports::TunnelSwitch;

    let sw = Arc::new(TunnelSwitch::default());
    let (tap, _peer) = mem_port("brp", PortFeatures::default()).unwrap();
    let u = Mutex::new(
        sw.wrap_local("brp", Box::new(tap), [0xaa, 0, 0, 0, 0, 2])
            .unwrap(),
    );
    let mut tunnels = Vec::new();
    for (i, (kind, local)) in [
        (TunnelKind::Vxlan, "172.31.1.2"),
        (TunnelKind::Geneve, "172.31.1.2"),
        (TunnelKind::Vxlan, "fd00::2"),
        (TunnelKind::Geneve, "fd00::2"),
        (TunnelKind::Gre, "172.31.1.2"),
    ]
    .into_iter()
    .enumerate()
    {
        let opts = [("remote_ip", "flow"), ("key", "flow"), ("local_ip", local)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cfg = parse_options(&format!("t{i}"), kind, &opts).unwrap();
        tunnels.push(sw.open(&format!("t{i}"), cfg).unwrap());
    }
    let tunnels = Mutex::new(tunnels);
    run(
        "underlay_send",
        corpus_dir!("tunnel_decap"),
        Kind::Bytes,
        |data| {
            // Offload state from the bytes, without changing the frame.
            let frame = data;
            let mode = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
            let mut p = Packet::from_slice(frame);
            p.csum = match mode % 3 {
                0 => Csum::None,
                1 => Csum::Validated,
                _ => Csum::Partial {
                    start: u16::from(mode),
                    offset: 6,
                },
            };
            if mode & 0x80 != 0 {
                p.gso = Some(Gso {
                    kind: GsoType::TcpV4,
                    mss: 1000,
                });
            }
            u.lock().unwrap().send(&[&p]);
            for t in tunnels.lock().unwrap().iter_mut() {
                let mut b = PacketBatch::new();
                t.recv(&mut b);
                for q in b.packets() {
                    assert!(q.len() <= frame.len());
                    if let Csum::Partial { start, offset } = q.csum {
                        assert!(usize::from(start) + usize::from(offset) + 2 <= q.len());
                    }
                }
            }
        },
    );
    // The seeds are tunnel packets for these ports: the path was reached.
    assert!(sw.decap.ok.load(std::sync::atomic::Ordering::Relaxed) > 0);
}
