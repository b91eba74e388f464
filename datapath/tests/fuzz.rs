//! Fuzz targets for what the datapath reads from received frames (see
//! the `xennet-fuzz` crate for how they run, for how long, and how to run
//! them longer).
//!
//! Seeds (`fuzz-corpus/packet_views`, `fuzz-corpus/flow_extract`, written
//! by `scripts/fuzz-corpus`): the frame shapes of the unit tests, i.e.
//! IPv4 TCP/UDP/ICMP (with options, first and later fragments), ARP,
//! IPv6 TCP/UDP/neighbour solicitation and extension headers, 802.1Q and
//! 802.1ad tags, 802.3 LLC and an unknown EtherType. Files named
//! `regress-*` are inputs that once failed.

use xennet_datapath::csum;
use xennet_datapath::flow::{extract, extract_frame, Field};
use xennet_datapath::packet::ethernet::{l3_offset, Frame, VlanTag};
use xennet_datapath::packet::{arp, icmp, ipv4, ipv6, tcp, udp, EtherType, IpProtocol};
use xennet_datapath::{gso, Csum, FlowKey, FlowMask, Gso, GsoType, Packet};
use xennet_fuzz::{corpus_dir, run, Kind};

/// Read every field of the L4 header of `proto` at the start of `l4`.
fn l4_views(proto: IpProtocol, l4: &[u8]) {
    match proto {
        IpProtocol::Tcp => {
            if let Ok(t) = tcp::Packet::new_checked(l4) {
                let _ = (t.src_port(), t.dst_port(), t.seq_number(), t.ack_number());
                let _ = (t.flags(), t.window_len(), t.checksum(), t.urgent_at());
                assert!(usize::from(t.header_len()) + t.payload().len() <= l4.len());
            }
        }
        IpProtocol::Udp => {
            if let Ok(u) = udp::Packet::new_checked(l4) {
                let _ = (
                    u.src_port(),
                    u.dst_port(),
                    u.len(),
                    u.checksum(),
                    u.is_empty(),
                );
                assert!(u.payload().len() <= l4.len());
            }
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            if let Ok(i) = icmp::Packet::new_checked(l4) {
                let _ = (i.msg_type(), i.msg_code(), i.checksum(), i.payload());
            }
        }
        _ => {}
    }
}

/// Packet views: after `new_checked` succeeds no accessor panics and
/// payloads lie inside the buffer, from Ethernet through VLAN tags,
/// IPv4/IPv6 (with extension headers)/ARP to TCP/UDP/ICMP; locating L4
/// stays in bounds; filling in a partial checksum is idempotent; GSO
/// segmentation (type and MSS from the input) never panics.
#[test]
fn packet_views() {
    run(
        "packet_views",
        corpus_dir!("packet_views"),
        Kind::Bytes,
        |data| {
            if let Ok(f) = Frame::new_checked(data) {
                let _ = (f.dst_addr(), f.src_addr(), f.ethertype());
                assert_eq!(f.payload().len() + 14, data.len());
                let mut inner = f.payload();
                let mut ty = f.ethertype();
                while ty.is_vlan() {
                    let Ok(v) = VlanTag::new_checked(inner) else {
                        break;
                    };
                    let _ = (v.tci(), v.vid(), v.pcp(), v.dei());
                    ty = v.ethertype();
                    let rest = v.payload().len();
                    inner = &inner[inner.len() - rest..];
                }
            }
            if let Some((ty, off)) = l3_offset(data) {
                assert!(off <= data.len());
                l3_views(ty, &data[off..]);
            }
            if let Some(loc) = csum::locate_l4(data) {
                assert!(loc.l3 <= loc.l4 && loc.l4 + loc.l4_len <= data.len());
            }
            let _ = csum::partial_offsets(data);
            let mut once = data.to_vec();
            if let Some((start, offset)) = csum::prepare_partial(&mut once) {
                if csum::complete_partial(&mut once, start, offset) {
                    let mut twice = once.clone();
                    let again = csum::prepare_partial(&mut twice).expect("still locatable");
                    assert!(csum::complete_partial(&mut twice, again.0, again.1));
                    assert_eq!(once, twice, "checksum completion is not idempotent");
                }
            }
            if data.len() >= 3 {
                let kinds = [GsoType::TcpV4, GsoType::TcpV6, GsoType::UdpL4];
                let kind = kinds[usize::from(data[0] % 3)];
                let mss = u16::from_le_bytes([data[1], data[2]]) % 2048;
                let mut p = Packet::from_slice(data);
                p.gso = Some(Gso { kind, mss });
                if let Some((start, offset)) = csum::partial_offsets(data) {
                    p.csum = Csum::Partial { start, offset };
                }
                let mut out = Vec::new();
                if gso::segment(&p, &mut out) {
                    assert!(!out.is_empty());
                }
            }
        },
    );
}

/// The L3 view of `ty` on `l3`, and the L4 views under it.
fn l3_views(ty: EtherType, l3: &[u8]) {
    match ty {
        EtherType::Ipv4 => {
            if let Ok(p) = ipv4::Packet::new_checked(l3) {
                let _ = (p.version(), p.tos(), p.total_len(), p.ident(), p.ttl());
                let _ = (p.dont_frag(), p.more_frags(), p.frag_offset());
                let _ = (
                    p.checksum(),
                    p.src_addr(),
                    p.dst_addr(),
                    p.verify_checksum(),
                );
                assert!(usize::from(p.header_len()) <= l3.len());
                l4_views(p.protocol(), p.payload());
            }
        }
        EtherType::Ipv6 => {
            if let Ok(p) = ipv6::Packet::new_checked(l3) {
                let _ = (
                    p.version(),
                    p.traffic_class(),
                    p.flow_label(),
                    p.hop_limit(),
                );
                let _ = (p.payload_len(), p.src_addr(), p.dst_addr());
                let up = ipv6::skip_extensions(p.next_header(), p.payload());
                if let Some(l4) = p.payload().get(up.ext_len..) {
                    l4_views(up.proto, l4);
                }
            }
        }
        EtherType::Arp => {
            if let Ok(a) = arp::Packet::new_checked(l3) {
                let _ = (a.operation(), a.sha(), a.spa(), a.tha(), a.tpa());
            }
        }
        _ => {}
    }
}

/// Flow extraction: any frame gets a key (odd frames included), the same
/// key from the frame and from a [`Packet`], unchanged by an exact mask
/// and matching itself; every field reads back what it holds; the
/// `ovs-ofctl` and `dpctl` formats print without panicking.
#[test]
fn flow_extract() {
    run(
        "flow_extract",
        corpus_dir!("flow_extract"),
        Kind::Bytes,
        |data| {
            let in_port = data.first().map_or(1, |&b| u32::from(b));
            let key = extract_frame(data, in_port);
            let mut p = Packet::from_slice(data);
            p.in_port = in_port;
            assert_eq!(extract(&p), key);
            let mut exact = FlowMask::default();
            for f in Field::ALL {
                exact.set(f, f.all_ones());
            }
            assert_eq!(key.masked(&exact), key);
            assert!(key.matches(&key, &exact));
            let mut copy = FlowKey::default();
            for f in Field::ALL {
                copy.set(f, key.get(f));
                assert_eq!(copy.get(f), key.get(f), "{f:?}");
            }
            let _ = key.display().to_string();
            let _ = key.display_masked(&exact).to_string();
            let _ = key.dpctl(&exact).to_string();
            let _ = key.dpctl(&FlowMask::default()).to_string();
        },
    );
}
