//! Fuzz targets for what a guest or xenstored sends the backend (see the
//! `xennet-fuzz` crate for how they run, for how long, and how to run
//! them longer).
//!
//! Seeds are crafted (`scripts/fuzz-corpus` writes them) after the unit
//! and end-to-end tests: `fuzz-corpus/xs_wire` the messages of the
//! xs_wire tests and a xenbus handshake; `fuzz-corpus/netif_tx` what
//! netfront sends (one and several slots, checksum offload, GSO, hash and
//! multicast extras) and the hostile cases; `fuzz-corpus/netif_ctrl` the
//! control-ring exchanges of the hash tests; `fuzz-corpus/port_security`
//! (hand-made, as the port security unit tests' frames) ARP, DHCP, ND,
//! RA, MLD and fragmented IPv6 frames. Files named `regress-*` are
//! inputs that once failed.

use std::cell::RefCell;
use std::io::Cursor;

use xennet_datapath::{Csum, PacketBatch, Port, RecvStatus};
use xennet_fuzz::{corpus_dir, run, Kind};
use xennet_vif::ctrl::{self, CtrlRequest, HashConfig};
use xennet_vif::netfront::Netfront;
use xennet_vif::ring::{NetifTxRequest, RING_SIZE, XEN_PAGE_SIZE};
use xennet_vif::xenstore::wire::{join_strings, split_strings, ErrorCode, Message, Perm};
use xennet_vif::Vif;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// xs_wire: a byte stream cut into messages with `Message::decode`; each
/// message re-encodes to exactly the bytes it was cut from and reads the
/// same with `Message::read_from`; payloads split into strings join back
/// (plus a final NUL if there was none); permission strings and error
/// payloads parse and print back.
#[test]
fn xs_wire() {
    run("xs_wire", corpus_dir!("xs_wire"), Kind::Bytes, |data| {
        let mut rest = data;
        while let Ok(Some((m, used))) = Message::decode(rest) {
            assert!(used >= 16 && used <= rest.len());
            assert_eq!(
                m.encode().expect("a decoded message encodes"),
                &rest[..used]
            );
            let again = Message::read_from(&mut Cursor::new(&rest[..used])).expect("read_from");
            assert_eq!(again, m);
            let parts = split_strings(&m.payload);
            let joined = join_strings(&parts);
            if m.payload.last() == Some(&0) || m.payload.is_empty() {
                assert_eq!(joined, m.payload);
            } else {
                assert_eq!(joined[..joined.len() - 1], m.payload[..]);
            }
            for p in &parts {
                if let Some(perm) = Perm::parse(&String::from_utf8_lossy(p)) {
                    assert_eq!(Perm::parse(&perm.to_string()), Some(perm));
                }
            }
            let e = ErrorCode::from_payload(&m.payload);
            if !e.name().contains('\0') {
                assert_eq!(ErrorCode::from_payload(&e.to_payload()), e);
            }
            rest = &rest[used..];
        }
    });
}

/// Guest TX requests (with their extras) as a frontend puts them on the
/// ring. Input: a little-endian `u16` frame length, that many frame bytes
/// (written into every TX buffer page a request names, at the request's
/// offset), then 12-byte `netif_tx_request`s as on the ring (at most a
/// ring's worth). A fresh vif receives until idle: it must never panic,
/// must go idle or disable itself (a protocol violation), and may only
/// hand the switch well-formed packets: at least an Ethernet header, at
/// most one per request, checksum offsets inside the frame.
#[test]
fn netif_tx() {
    run("netif_tx", corpus_dir!("netif_tx"), Kind::Bytes, |data| {
        if data.len() < 2 {
            return;
        }
        let flen = usize::from(le16(data, 0)).min(data.len() - 2);
        let frame = &data[2..2 + flen];
        let reqs: Vec<NetifTxRequest> = data[2 + flen..]
            .chunks_exact(12)
            .take(RING_SIZE as usize)
            .map(|c| NetifTxRequest {
                gref: le32(c, 0),
                offset: le16(c, 4),
                flags: le16(c, 6),
                id: le16(c, 8),
                size: le16(c, 10),
            })
            .collect();
        let mut nf = Netfront::new(1, 0).expect("netfront");
        let base = Netfront::tx_buffer_gref(0);
        for r in &reqs {
            let id = r.gref.wrapping_sub(base);
            let off = usize::from(r.offset);
            if id < RING_SIZE && off < XEN_PAGE_SIZE {
                let n = frame.len().min(XEN_PAGE_SIZE - off);
                nf.write_tx_buffer(id as u16, off, &frame[..n]);
            }
        }
        let dom = nf.emulated_domain().expect("domain");
        let mut vif = Vif::connect(
            "vif1.0".into(),
            0,
            nf.frontend_config(0),
            Box::new(dom.grants),
            Box::new(dom.evtchn),
        )
        .expect("connect");
        nf.push_raw_tx(&reqs);
        let mut batch = PacketBatch::new();
        let mut delivered = 0usize;
        let mut idle = false;
        for _ in 0..2 * RING_SIZE {
            batch.clear();
            let st = vif.recv(&mut batch);
            for p in batch.packets() {
                delivered += 1;
                let len = p.data().len();
                assert!(len >= 14, "a {len}-byte packet reached the switch");
                if let Csum::Partial { start, offset } = p.csum {
                    let end = usize::from(start) + usize::from(offset) + 2;
                    assert!(end <= len, "checksum field at {end} in a {len}-byte frame");
                }
            }
            if st != RecvStatus::More {
                idle = true;
                break;
            }
        }
        assert!(idle, "the vif never went idle");
        assert!(delivered <= reqs.len());
        if !vif.is_disabled() {
            let answered = nf.tx_responses().len();
            assert!(
                answered >= delivered,
                "{delivered} packets, {answered} responses"
            );
        }
    });
}

thread_local! {
    /// One guest for all netif_ctrl inputs (creating one is the costly
    /// part); each input rewrites the control data page.
    static CTRL_GUEST: RefCell<Option<(Netfront, xennet_vif::emul::EmulatedGrants)>> =
        const { RefCell::new(None) };
}

/// The control ring's hash requests. Input: the queue count (1 to 8,
/// from the first byte), a little-endian `u16` length and that many bytes
/// written at the start of the control data page (keys, mapping tables),
/// then 16-byte `xen_netif_ctrl_request`s (`id`, `type`, `data[3]`,
/// little-endian) served in order against one [`HashConfig`], whose
/// grant references are taken as given (the data page's is
/// `Netfront::ctrl_data_gref`). Every response echoes the request's id
/// and type, succeeds only with a sane configuration (mapping size and
/// entries in range), and hashing the data page as a frame then picks a
/// queue in the mapping.
#[test]
fn netif_ctrl() {
    run(
        "netif_ctrl",
        corpus_dir!("netif_ctrl"),
        Kind::Bytes,
        |data| {
            if data.len() < 3 {
                return;
            }
            let queues = usize::from(data[0] % 8) + 1;
            let dlen = usize::from(le16(data, 1))
                .min(data.len() - 3)
                .min(XEN_PAGE_SIZE);
            let page = &data[3..3 + dlen];
            CTRL_GUEST.with(|g| {
                let mut g = g.borrow_mut();
                let (nf, grants) = g.get_or_insert_with(|| {
                    let mut nf = Netfront::new(3, 0).expect("netfront");
                    nf.enable_ctrl_ring().expect("ctrl ring");
                    let grants = nf.emulated_domain().expect("domain").grants;
                    (nf, grants)
                });
                assert!(nf.write_ctrl_data(&[0; XEN_PAGE_SIZE]));
                assert!(nf.write_ctrl_data(page));
                let mut cfg = HashConfig::default();
                for c in data[3 + dlen..].chunks_exact(16) {
                    let req = CtrlRequest {
                        id: le16(c, 0),
                        kind: le16(c, 2),
                        data: [le32(c, 4), le32(c, 8), le32(c, 12)],
                    };
                    let rsp = ctrl::process(&mut cfg, queues, &req, grants, 3);
                    assert_eq!((rsp.id, rsp.kind), (req.id, req.kind));
                    assert!(cfg.size <= ctrl::MAX_MAPPING_SIZE);
                    assert!(
                        cfg.mapping[..cfg.size]
                            .iter()
                            .all(|&q| (q as usize) < queues),
                        "mapping {:?} for {queues} queues",
                        &cfg.mapping[..cfg.size]
                    );
                }
                let h = cfg.flow_hash(page);
                if let Some(q) = cfg.queue_of(h) {
                    if cfg.size > 0 {
                        assert!(q < queues);
                    }
                }
                if let Some(h) = h {
                    let _ = HashConfig::extra_of(h);
                }
            });
        },
    );
}

/// Port security's frame checks (`Policy::check`) on guest frames.
/// Input: a frame; it is checked against a policy whose MAC is the
/// frame's source (so the checks past the MAC run) with IPv4 and IPv6
/// addresses and both guards on, and against one without addresses with
/// the guards off. Must never panic, and must give the same verdict
/// twice; a frame from another MAC is always a `Mac` violation.
#[test]
fn port_security() {
    use std::net::IpAddr;
    use xennet_vif::netback::{PortSecurity, Violation};
    run(
        "port_security",
        corpus_dir!("port_security"),
        Kind::Bytes,
        |data| {
            let Some(src) = data.get(6..12) else { return };
            let mac: [u8; 6] = src.try_into().unwrap();
            let strict = PortSecurity::default();
            strict.set_mac(Some(mac));
            let ips: Vec<IpAddr> = ["10.0.0.1", "2001:db8::1"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
            assert!(strict.set_ips(&ips));
            let open = PortSecurity::default();
            open.set_mac(Some(mac));
            open.set_defaults(true, true, true);
            for s in [strict, open] {
                let p = s.policy().expect("a MAC is set");
                let v = p.check(data);
                assert_eq!(p.check(data), v);
                assert_ne!(v, Some(Violation::Mac));
            }
            let other = PortSecurity::default();
            other.set_mac(Some([
                mac[0] ^ 0x80,
                mac[1],
                mac[2],
                mac[3],
                mac[4],
                mac[5],
            ]));
            assert_eq!(other.policy().unwrap().check(data), Some(Violation::Mac));
        },
    );
}
