//! `tun_metadata<n>` through a bridge's TLV map: a flow matching a Geneve
//! option matches the packets whose key a tunnel port filled from their
//! options (`TlvMap::decode_geneve`), and not others; the option's bits
//! go into the megaflow; a mapping flows use cannot be deleted.

mod common;

use common::*;
use xennet_datapath::flow::Field;
use xennet_datapath::DpAction;
use xennet_ofproto::{FailMode, Ofproto};
use xennet_openflow::model::*;
use xennet_openflow::tlv::{TlvMapping, TlvTableMod, NXTTMC_ADD, NXTTMC_DELETE};
use xennet_openflow::OfError;

const PORTS: [u32; 4] = [1, 2, 3, 4];

#[test]
fn geneve_option_matches_through_the_map() {
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let ovn = TlvMapping {
        option_class: 0x0102,
        option_type: 0x80,
        option_len: 4,
        index: 0,
    };
    of.handle_tlv_table_mod(&TlvTableMod {
        command: NXTTMC_ADD,
        mappings: vec![ovn],
    })
    .unwrap();
    let map = of.tlv_shared();
    let loc = map.loc(0).unwrap();
    let f = OxmField::TunMetadata {
        index: 0,
        offset: loc.offset,
        len: 4,
    };
    let sf = |ofs: u16, n_bits: u16| Subfield {
        field: MfField::Oxm(f),
        ofs,
        n_bits,
    };
    let mut mt = Match::CATCHALL;
    mt.write_subfield(&sf(0, 32), 0x0001_1234);
    of.handle_flow_mod(&fm(
        0,
        10,
        mt,
        apply(vec![
            Action::Move {
                src: sf(0, 16),
                dst: Subfield {
                    field: MfField::Oxm(OxmField::Reg(0)),
                    ofs: 0,
                    n_bits: 16,
                },
            },
            out(2),
        ]),
    ))
    .unwrap();
    of.handle_flow_mod(&fm(0, 0, Match::CATCHALL, apply(vec![out(3)])))
        .unwrap();
    let frame = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let mut h = of.upcall_handler();
    let mut key = key_of(&frame, 1);
    let opts = [0x01, 0x02, 0x80, 0x01, 0x00, 0x01, 0x12, 0x34];
    map.decode_geneve(&opts, &mut key).unwrap();
    let u = h.upcall(&key, &packet(&frame, 1), &PORTS);
    assert_eq!(u.actions, vec![DpAction::Output(2)]);
    let (kf, shift, bits) = loc.layout();
    assert_eq!(u.mask.get(kf) >> shift & ((1 << bits) - 1), 0xffff_ffff);
    assert_eq!(u.mask.get(Field::TunMdPresent) & 1, 1);
    // Another value, or no options at all: the other flow.
    let mut other = key_of(&frame, 1);
    map.decode_geneve(&[0x01, 0x02, 0x80, 0x01, 0, 0, 0, 9], &mut other)
        .unwrap();
    let u = h.upcall(&other, &packet(&frame, 1), &PORTS);
    assert_eq!(u.actions, vec![DpAction::Output(3)]);
    let u = h.upcall(&key_of(&frame, 1), &packet(&frame, 1), &PORTS);
    assert_eq!(u.actions, vec![DpAction::Output(3)]);
    // In use: the mapping stays.
    let del = TlvTableMod {
        command: NXTTMC_DELETE,
        mappings: vec![ovn],
    };
    assert_eq!(
        of.handle_tlv_table_mod(&del),
        Err(OfError::NXTTMFC_INVALID_TLV_DEL)
    );
    of.flush_flows(false);
    of.handle_tlv_table_mod(&del).unwrap();
    assert!(of.tlv_table_reply().mappings.is_empty());
}

/// A packet-in from a `controller` action carries the present Geneve
/// options the map names, as `tun_metadata<i>` (OVS
/// `tun_metadata_get_fmd`), and the megaflow pins them.
#[test]
fn packet_in_carries_tun_metadata() {
    use xennet_ofproto::OfEvent;
    let of = Ofproto::new("br0", 1, FailMode::Secure);
    let events = of.events().unwrap();
    let ovn = TlvMapping {
        option_class: 0x0102,
        option_type: 0x80,
        option_len: 4,
        index: 0,
    };
    of.handle_tlv_table_mod(&TlvTableMod {
        command: NXTTMC_ADD,
        mappings: vec![ovn],
    })
    .unwrap();
    let map = of.tlv_shared();
    let loc = map.loc(0).unwrap();
    of.handle_flow_mod(&fm(
        0,
        10,
        Match::CATCHALL,
        apply(vec![Action::Controller(Box::new(Controller {
            max_len: u16::MAX,
            reason: 1,
            controller_id: 0,
            userdata: vec![1],
            pause: false,
            meter_id: u32::MAX,
            v2: true,
        }))]),
    ))
    .unwrap();
    let frame = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let mut h = of.upcall_handler();
    let mut key = key_of(&frame, 1);
    map.decode_geneve(&[0x01, 0x02, 0x80, 0x01, 0x00, 0x01, 0x12, 0x34], &mut key)
        .unwrap();
    let u = h.upcall(&key, &packet(&frame, 1), &PORTS);
    let DpAction::Userspace(ud) = u.actions[0] else {
        panic!("{:?}", u.actions)
    };
    let (kf, _, _) = loc.layout();
    assert_eq!(u.mask.get(kf), u128::MAX);
    assert_eq!(u.mask.get(Field::TunMdPresent), u128::from(u64::MAX));
    h.userspace(&ud, &key, &packet(&frame, 1));
    let ev = events
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    let OfEvent::PacketIn(pi, _) = ev else {
        panic!("{ev:?}")
    };
    let f = OxmField::TunMetadata {
        index: 0,
        offset: loc.offset,
        len: 4,
    };
    assert!(pi.pipeline.contains(&(f, 0x0001_1234)), "{:?}", pi.pipeline);
}
