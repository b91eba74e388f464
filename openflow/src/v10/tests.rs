use proptest::prelude::*;

use super::*;
use crate::actions::{tp_fields, OFPAT10_ENQUEUE};
use crate::model::*;
use crate::model::{
    AsyncConfig, Desc, MfField, Subfield, OFPP_ANY, OFPP_CONTROLLER, OFPP_IN_PORT, OFPP_LOCAL,
    OFPP_NORMAL,
};
use crate::ofp_match::*;
use crate::oxm::{self, Flavor};
use crate::wire::{be16, be32, ones};
use xennet_datapath::flow::Field;
use xennet_datapath::FlowMask;

fn enc_with(msg: &Msg, opts: &EncodeOptions) -> Vec<u8> {
    let mut out = Vec::new();
    encode_with(msg, 0x1234, opts, &mut out).expect("encode");
    out
}

fn dec(buf: &[u8]) -> Result<Msg, DecodeError> {
    let h = Header::parse(buf)?;
    assert_eq!(h.version, OFP10_VERSION);
    decode(&h, buf)
}

/// Encode, check the header, decode, compare, re-encode, compare bytes.
fn rt_with(msg: Msg, opts: &EncodeOptions) -> Vec<u8> {
    let b = enc_with(&msg, opts);
    let h = Header::parse(&b).unwrap();
    assert_eq!(usize::from(h.length), b.len(), "{msg:?}");
    assert_eq!(h.xid, 0x1234);
    let back = dec(&b).unwrap_or_else(|e| panic!("{msg:?}: {e}"));
    assert_eq!(back, msg);
    assert_eq!(enc_with(&back, opts), b);
    b
}

fn rt(msg: Msg) -> Vec<u8> {
    rt_with(msg, &EncodeOptions::default())
}

const NXM: EncodeOptions = EncodeOptions {
    nxm: true,
    nx_packet_in: true,
};

fn tcp_match() -> Match {
    let mut m = Match::CATCHALL;
    m.set_field(OxmField::InPort, 3, 0xffff_ffff).unwrap();
    m.set_field(OxmField::EthSrc, 0x0011_2233_4455, ones(48))
        .unwrap();
    m.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap();
    m.set_field(OxmField::VlanVid, 0x1000 | 10, 0x1fff).unwrap();
    m.set_field(OxmField::VlanPcp, 3, 7).unwrap();
    m.set_field(OxmField::IpProto, 6, 0xff).unwrap();
    m.set_field(OxmField::IpDscp, 46, 0x3f).unwrap();
    m.set_field(OxmField::Ipv4Src, 0x0a00_0001, 0xffff_ffff)
        .unwrap();
    m.set_field(OxmField::Ipv4Dst, 0xc0a8_0000, 0xffff_0000)
        .unwrap();
    m.set_field(OxmField::TcpDst, 80, 0xffff).unwrap();
    m
}

fn port(n: u32) -> PortDesc {
    PortDesc {
        port_no: n,
        hw_addr: [2, 0, 0, 0, 0, n as u8],
        name: format!("vif{n}.0"),
        config: port_config::NO_FLOOD,
        state: port_state::LINK_DOWN,
        curr: (1 << 5) | (1 << 11),
        advertised: 0,
        supported: (1 << 6) | (1 << 13),
        peer: 0,
        curr_speed: 1_000_000,
        max_speed: 10_000_000,
    }
}

fn flow_mod(matcher: Match, actions: Vec<Action>) -> FlowMod {
    FlowMod {
        cookie: 0x1122,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 10,
        hard_timeout: 20,
        priority: 100,
        buffer_id: header::NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: flow_flags::SEND_FLOW_REM | flow_flags::RESET_COUNTS,
        matcher,
        instructions: Instructions::apply(actions),
    }
}

/// `acts` as a 1.0 flow under `m` decodes them: the 1.0 VLAN sets know
/// whether the flow has a tag.
fn noted(m: &Match, mut acts: Vec<Action>) -> Vec<Action> {
    let tagged = m.key.vlan_tci() & m.mask.get(Field::VlanTci) as u16 & 0x1000 != 0;
    note_vlan_presence(&mut acts, tagged);
    acts
}

/// Every 1.0 action; the VLAN sets with `flow_has_vlan` `tagged`.
fn all_1_0_actions(tagged: bool) -> Vec<Action> {
    use OxmField::*;
    let sf = |field, value| Action::SetField { field, value };
    let sv = |field, value| Action::SetVlan10 {
        field,
        value,
        flow_has_vlan: tagged,
    };
    vec![
        Action::Output {
            port: 1,
            max_len: 0,
        },
        Action::Output {
            port: OFPP_CONTROLLER,
            max_len: 128,
        },
        sv(VlanVid, 0x1000 | 42),
        sv(VlanPcp, 5),
        Action::PopVlan,
        sf(EthSrc, 0x0200_0000_0001),
        sf(EthDst, 0x0200_0000_0002),
        sf(Ipv4Src, 0x0a00_0001),
        sf(Ipv4Dst, 0x0a00_0002),
        sf(IpDscp, 46),
        sf(TcpSrc, 1000),
        sf(TcpDst, 2000),
        Action::SetQueue(7),
        Action::Output {
            port: 2,
            max_len: 0,
        },
    ]
}

fn nx_actions() -> Vec<Action> {
    vec![
        Action::Resubmit {
            in_port: OFPP_IN_PORT,
            table: 0xff,
        },
        Action::Resubmit {
            in_port: 5,
            table: 3,
        },
        Action::DecNwTtl,
        Action::SetQueue(9),
        Action::Group(4),
        Action::SetField {
            field: OxmField::Ipv6Src,
            value: 0x2001_0db8 << 96 | 1,
        },
        Action::SetField {
            field: OxmField::IpTtl,
            value: 9,
        },
        Action::SetField {
            field: OxmField::ArpTpa,
            value: 0x0a00_0003,
        },
        Action::Output {
            port: OFPP_NORMAL,
            max_len: 0,
        },
    ]
}

#[test]
fn simple_messages_roundtrip() {
    assert_eq!(rt(Msg::Hello { versions: 0x2 }).len(), 8);
    rt(Msg::EchoRequest(vec![1, 2, 3]));
    rt(Msg::EchoReply(vec![]));
    assert_eq!(rt(Msg::FeaturesRequest).len(), 8);
    rt(Msg::GetConfigRequest);
    let c = SwitchConfig {
        flags: 1,
        miss_send_len: 128,
    };
    assert_eq!(rt(Msg::GetConfigReply(c)).len(), 12);
    rt(Msg::SetConfig(c));
    rt(Msg::BarrierRequest);
    rt(Msg::BarrierReply);
    assert_eq!(rt(Msg::NxSetFlowFormat(NXFF_NXM)).len(), 20);
    rt(Msg::NxSetPacketInFormat(1));
    assert_eq!(rt(Msg::NxFlowModTableId(true)).len(), 24);
    rt(Msg::NxFlowModTableId(false));
    assert_eq!(rt(Msg::NxSetControllerId(77)).len(), 24);
    assert_eq!(rt(Msg::NxCtFlushZone(3)).len(), 24);
    for role in 1..=3 {
        let m = crate::model::RoleMsg {
            role,
            generation_id: 0,
        };
        assert_eq!(rt(Msg::RoleRequest(m)).len(), 20);
        rt(Msg::RoleReply(m));
    }
    rt(Msg::SetAsync(AsyncConfig {
        packet_in_mask: [3, 1],
        port_status_mask: [7, 7],
        flow_removed_mask: [0xf, 0],
        ..AsyncConfig::NONE
    }));
}

#[test]
fn hello_from_a_newer_peer() {
    // OVS sends a 1.5 HELLO with a bitmap; lib::decode handles it, and a
    // 1.0 HELLO with a body decodes here too.
    let mut b = Vec::new();
    header::encode_hello(OFP10_VERSION, 0x12, 1, &mut b);
    assert_eq!(dec(&b).unwrap(), Msg::Hello { versions: 1 << 1 });
}

#[test]
fn features_reply_roundtrip() {
    let f = SwitchFeatures {
        datapath_id: 0x0000_0011_2233_4455,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0b111 | (1 << 6) | OFPC10_ARP_MATCH_IP,
        ports: vec![port(1), port(2), {
            let mut p = port(0xffff_fffe);
            p.name = "br0".into();
            p
        }],
    };
    let b = rt(Msg::FeaturesReply(f.clone()));
    assert_eq!(b.len(), 32 + 3 * 48);
    // The LOCAL port is 0xfffe on the wire.
    assert_eq!(be16(&b, 32 + 96), 0xfffe);
    // 1.0 feature bits: 1GB_FD (5) and COPPER (7).
    assert_eq!(be32(&b, 32 + 32), (1 << 5) | (1 << 7));
    assert_eq!(be32(&b, 28), OFP10_ACTIONS_BITMAP);
    // 1.3-only capability bits are dropped.
    let mut g = f;
    g.capabilities |= 1 << 3 | 1 << 8;
    let mut out = Vec::new();
    encode(&Msg::FeaturesReply(g), 1, &mut out).unwrap();
    assert_eq!(be32(&out, 24), 0b111 | (1 << 6) | OFPC10_ARP_MATCH_IP);
}

#[test]
fn port_status_and_mod_roundtrip() {
    assert_eq!(
        rt(Msg::PortStatus(PortStatus {
            reason: 2,
            desc: port(7),
        }))
        .len(),
        64
    );
    assert_eq!(
        rt(Msg::PortMod(PortMod {
            port_no: 7,
            hw_addr: [2, 0, 0, 0, 0, 7],
            config: port_config::PORT_DOWN | port_config::NO_PACKET_IN,
            mask: port_config::PORT_DOWN | port_config::NO_PACKET_IN,
            advertise: 1 << 13,
        }))
        .len(),
        32
    );
}

#[test]
fn packet_in_out_roundtrip() {
    let pi = PacketIn {
        buffer_id: header::NO_BUFFER,
        total_len: 60,
        reason: 1,
        table_id: 0,
        cookie: u64::MAX,
        in_port: 3,
        metadata: 0,
        data: vec![0xaa; 60],
        ..Default::default()
    };
    assert_eq!(rt(Msg::PacketIn(pi.clone())).len(), 18 + 60);
    let nx = PacketIn {
        table_id: 2,
        cookie: 0x77,
        metadata: 0x1234,
        in_port: OFPP_LOCAL,
        ..pi
    };
    let b = rt_with(Msg::PacketIn(nx), &NXM);
    assert_eq!(be32(&b, 12), NXT_PACKET_IN);
    rt(Msg::PacketOut(PacketOut {
        buffer_id: header::NO_BUFFER,
        in_port: OFPP_CONTROLLER,
        actions: all_1_0_actions(false),
        data: vec![1; 64],
    }));
    rt(Msg::PacketOut(PacketOut {
        buffer_id: header::NO_BUFFER,
        in_port: 1,
        actions: nx_actions(),
        data: vec![],
    }));
}

#[test]
fn flow_mod_roundtrip() {
    let fm = flow_mod(tcp_match(), all_1_0_actions(true));
    let b = rt(Msg::FlowMod(fm.clone()));
    assert_eq!(be16(&b, 8 + 40 + 8), 0, "add to table 0");
    let mut nx = flow_mod(tcp_match(), nx_actions());
    nx.table_id = 5;
    let b = rt(Msg::FlowMod(nx.clone()));
    assert_eq!(be16(&b, 8 + 40 + 8), 5 << 8);
    let mut del = nx;
    del.command = FlowModCommand::Delete;
    del.table_id = OFPTT_ALL;
    del.flags = 0;
    del.out_port = 2;
    del.instructions = Instructions::apply(vec![]);
    rt(Msg::FlowMod(del.clone()));
    for c in [
        FlowModCommand::Modify,
        FlowModCommand::ModifyStrict,
        FlowModCommand::DeleteStrict,
    ] {
        let mut m = del.clone();
        m.command = c;
        rt(Msg::FlowMod(m));
    }
    // NXT_FLOW_MOD: IPv6 matches, cookie masks.
    let mut v6 = Match::CATCHALL;
    v6.set_field(OxmField::EthType, 0x86dd, 0xffff).unwrap();
    v6.set_field(OxmField::Ipv6Dst, 0x2001_0db8 << 96, ones(128) << 64)
        .unwrap();
    let mut fm = flow_mod(v6, nx_actions());
    let b = rt_with(Msg::FlowMod(fm.clone()), &NXM);
    assert_eq!(be32(&b, 12), NXT_FLOW_MOD);
    fm.command = FlowModCommand::Delete;
    fm.flags = 0;
    fm.cookie = 0x10;
    fm.cookie_mask = 0xf0;
    fm.table_id = OFPTT_ALL;
    rt_with(Msg::FlowMod(fm.clone()), &NXM);
    fm.cookie_mask = u64::MAX;
    rt_with(Msg::FlowMod(fm.clone()), &NXM);
    // ...which OpenFlow 1.0 cannot express.
    let mut out = vec![9];
    assert!(encode(&Msg::FlowMod(fm), 1, &mut out).is_err());
    assert_eq!(out, vec![9], "nothing appended on error");
}

#[test]
fn flow_mod_table_id_semantics() {
    let mut fm = flow_mod(Match::CATCHALL, vec![]);
    fm.command = FlowModCommand::Delete;
    fm.flags = 0;
    fm.table_id = 0;
    let b = enc_with(&Msg::FlowMod(fm.clone()), &EncodeOptions::default());
    let h = Header::parse(&b).unwrap();
    // Without the extension a delete with table byte 0 means all tables.
    let Msg::FlowMod(d) = decode(&h, &b).unwrap() else {
        panic!()
    };
    assert_eq!(d.table_id, OFPTT_ALL);
    let opts = DecodeOptions {
        flow_mod_table_id: true,
    };
    let Msg::FlowMod(d) = decode_with(&h, &b, &opts).unwrap() else {
        panic!()
    };
    assert_eq!(d.table_id, 0);
}

#[test]
fn exact_match_flow_gets_top_priority() {
    let mut fm = flow_mod(tcp_match(), vec![]);
    fm.priority = 5;
    let mut b = enc_with(&Msg::FlowMod(fm), &EncodeOptions::default());
    b[8..12].copy_from_slice(&0u32.to_be_bytes());
    let Msg::FlowMod(d) = dec(&b).unwrap() else {
        panic!()
    };
    assert_eq!(d.priority, 0xffff);
    // All-zero wildcards: every field exact, vlan_tci 0x1000 | vid with
    // PCP, TOS DSCP bits only.
    assert_eq!(d.matcher.mask.get(Field::VlanTci), 0xffff);
    assert_eq!(d.matcher.mask.get(Field::NwTos), 0xfc);
}

#[test]
fn match_mapping() {
    // dl_vlan 0xffff = no tag; the PCP wildcard bit stays clear as OVS.
    let mut m = Match::CATCHALL;
    m.set_field(OxmField::VlanVid, 0, 0x1fff).unwrap();
    let mut out = Vec::new();
    encode_match(&m, &mut out).unwrap();
    assert_eq!(be16(&out, 18), 0xffff);
    assert_eq!(be32(&out, 0) & wildcards::DL_VLAN_PCP, 0);
    let (d, _) = match_from_ofp10(&out, true);
    assert_eq!((d.key.vlan_tci(), d.mask.get(Field::VlanTci)), (0, 0xffff));
    // ARP: opcode in nw_proto, SPA/TPA in nw_src/nw_dst.
    let mut arp = Match::CATCHALL;
    arp.set_field(OxmField::EthType, 0x0806, 0xffff).unwrap();
    arp.set_field(OxmField::ArpOp, 1, 0xff).unwrap();
    arp.set_field(OxmField::ArpTpa, 0x0a00_0001, 0xffff_ffff)
        .unwrap();
    out.clear();
    encode_match(&arp, &mut out).unwrap();
    assert_eq!(out[25], 1);
    assert_eq!(be32(&out, 32), 0x0a00_0001);
    assert_eq!(match_from_ofp10(&out, true).0, arp);
    // ICMP type/code in tp_src/tp_dst.
    let mut icmp = Match::CATCHALL;
    icmp.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap();
    icmp.set_field(OxmField::IpProto, 1, 0xff).unwrap();
    icmp.set_field(OxmField::Icmpv4Type, 8, 0xff).unwrap();
    out.clear();
    // OXM ICMP type is 8 bits; ofp_match tp_src is 16: not the same mask.
    assert!(encode_match(&icmp, &mut out).is_err());
    let mut icmp16 = icmp;
    icmp16.mask.set(Field::TpSrc, 0xffff);
    encode_match(&icmp16, &mut out).unwrap();
    assert_eq!(be16(&out, 36), 8);
    // Things 1.0 cannot express.
    let mut ttl = Match::CATCHALL;
    ttl.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap();
    ttl.set_field(OxmField::IpTtl, 1, 0xff).unwrap();
    assert!(!match_fits_ofp10(&ttl));
    let mut meta = Match::CATCHALL;
    meta.set_field(OxmField::Metadata, 1, 1).unwrap();
    assert!(!match_fits_ofp10(&meta));
    let mut noncidr = Match::CATCHALL;
    noncidr
        .set_field(OxmField::EthType, 0x0800, 0xffff)
        .unwrap();
    noncidr
        .set_field(OxmField::Ipv4Src, 0x0a00_0001, 0xff00_00ff)
        .unwrap();
    assert!(!match_fits_ofp10(&noncidr));
    let mut ecn = Match::CATCHALL;
    ecn.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap();
    ecn.set_field(OxmField::IpEcn, 1, 3).unwrap();
    assert!(!match_fits_ofp10(&ecn));
    let mut bigport = Match::CATCHALL;
    bigport
        .set_field(OxmField::InPort, 0x10000, 0xffff_ffff)
        .unwrap();
    assert!(!match_fits_ofp10(&bigport));
}

#[test]
fn match_normalisation_wildcards_missing_prereqs() {
    // tp_dst=80 and nw_src without dl_type/nw_proto: wildcarded, as OVS.
    let mut w = [0u8; MATCH_LEN];
    let wc = wildcards::ALL
        & !wildcards::TP_DST
        & !(0x3f << wildcards::NW_SRC_SHIFT)
        & !wildcards::NW_TOS;
    w[0..4].copy_from_slice(&wc.to_be_bytes());
    w[24] = 0xff; // TOS with ECN bits
    w[28..32].copy_from_slice(&[10, 0, 0, 1]);
    w[38..40].copy_from_slice(&80u16.to_be_bytes());
    let (m, _) = match_from_ofp10(&w, true);
    assert_eq!(m, Match::CATCHALL);
    // Without normalisation (stats requests) the fields stay.
    let (m, _) = match_from_ofp10(&w, false);
    assert_eq!(m.field(OxmField::TcpDst), (80, 0xffff));
    assert_eq!(m.key.nw_tos(), 0xfc);
    // Values under wildcards are ignored; dl_type below 0x600 is 0x05ff.
    let mut w = [0xffu8; MATCH_LEN];
    let wc = wildcards::ALL & !wildcards::DL_TYPE;
    w[0..4].copy_from_slice(&wc.to_be_bytes());
    w[22..24].copy_from_slice(&0x0042u16.to_be_bytes());
    let (m, _) = match_from_ofp10(&w, true);
    assert_eq!(m.field(OxmField::EthType), (0x05ff, 0xffff));
    assert_eq!(m.key.in_port(), 0);
    // CIDR bits: 8 ignored bits = /24; 32 and above = wildcard.
    let mut w = [0u8; MATCH_LEN];
    let wc = (wildcards::ALL & !wildcards::DL_TYPE & !(0x3f << wildcards::NW_SRC_SHIFT))
        | (8 << wildcards::NW_SRC_SHIFT);
    w[0..4].copy_from_slice(&wc.to_be_bytes());
    w[22..24].copy_from_slice(&0x0800u16.to_be_bytes());
    w[28..32].copy_from_slice(&[10, 1, 2, 3]);
    let (m, _) = match_from_ofp10(&w, true);
    assert_eq!(m.field(OxmField::Ipv4Src), (0x0a01_0200, 0xffff_ff00));
}

#[test]
fn flow_removed_roundtrip() {
    let fr = FlowRemoved {
        cookie: 0xdead,
        priority: 100,
        reason: 1,
        table_id: OFPTT_ALL,
        duration_sec: 5,
        duration_nsec: 6,
        idle_timeout: 10,
        hard_timeout: 0,
        packet_count: 7,
        byte_count: 700,
        matcher: tcp_match(),
    };
    assert_eq!(rt(Msg::FlowRemoved(fr.clone())).len(), 88);
    let mut v6 = Match::CATCHALL;
    v6.set_field(OxmField::EthType, 0x86dd, 0xffff).unwrap();
    v6.set_field(OxmField::Ipv6Src, 1, ones(128)).unwrap();
    let nx = FlowRemoved {
        table_id: 3,
        matcher: v6,
        ..fr
    };
    let b = rt_with(Msg::FlowRemoved(nx.clone()), &NXM);
    assert_eq!(be32(&b, 12), NXT_FLOW_REMOVED);
    assert_eq!(b[16 + 11], 4, "table id plus one");
    let mut out = Vec::new();
    assert!(encode(&Msg::FlowRemoved(nx), 1, &mut out).is_err());
}

#[test]
fn error_mapping() {
    // Same numbers in 1.0.
    let b = rt(Msg::Error {
        err: OfError::BAD_LEN,
        data: vec![1, 2],
    });
    assert_eq!((be16(&b, 8), be16(&b, 10)), (1, 6));
    // Renumbered.
    let b = rt(Msg::Error {
        err: OfError::OVERLAP,
        data: vec![],
    });
    assert_eq!((be16(&b, 8), be16(&b, 10)), (3, 1));
    let b = rt(Msg::Error {
        err: OfError::PORT_MOD_BAD_HW_ADDR,
        data: vec![],
    });
    assert_eq!((be16(&b, 8), be16(&b, 10)), (4, 1));
    // Nicira vendor errors.
    let b = rt(Msg::Error {
        err: OfError::BAD_PREREQ,
        data: vec![5; 64],
    });
    assert_eq!((be16(&b, 8), be16(&b, 10)), (NXET_VENDOR, 0));
    assert_eq!(
        (be32(&b, 12), be16(&b, 16), be16(&b, 18)),
        (NX_VENDOR_ID, 1, 260)
    );
    rt(Msg::Error {
        err: OfError::BAD_FIELD,
        data: vec![],
    });
    rt(Msg::Error {
        err: OfError::BAD_FLAGS,
        data: vec![],
    });
    rt(Msg::Error {
        err: OfError::UNKNOWN_GROUP,
        data: vec![],
    });
    // IS_SLAVE is 1.0's EPERM.
    let mut out = Vec::new();
    encode(
        &Msg::Error {
            err: OfError::IS_SLAVE,
            data: vec![],
        },
        1,
        &mut out,
    )
    .unwrap();
    assert_eq!((be16(&out, 8), be16(&out, 10)), (1, 5));
    // No 1.0 form: NXBRC_UNENCODABLE_ERROR, which stays raw on decode.
    out.clear();
    encode(
        &Msg::Error {
            err: OfError::METER_EXISTS,
            data: vec![],
        },
        1,
        &mut out,
    )
    .unwrap();
    assert_eq!((be16(&out, 16), be16(&out, 18)), (1, 521));
    let Msg::Error { err, data } = dec(&out).unwrap() else {
        panic!()
    };
    assert_eq!(err.typ, NXET_VENDOR);
    assert_eq!(data.len(), 8);
    rt(Msg::Error { err, data });
}

#[test]
fn stats_roundtrip() {
    let req = |body| Msg::MultipartRequest { flags: 0, body };
    rt(req(MpRequest::Desc));
    rt(req(MpRequest::Table));
    rt(req(MpRequest::PortDesc(OFPP_ANY)));
    rt(req(MpRequest::PortStats(OFPP_ANY)));
    rt(req(MpRequest::Queue {
        port_no: OFPP_ANY,
        queue_id: 0xffff_ffff,
    }));
    let q = FlowStatsRequest {
        table_id: OFPTT_ALL,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        cookie: 0,
        cookie_mask: 0,
        matcher: tcp_match(),
    };
    assert_eq!(rt(req(MpRequest::Flow(q.clone()))).len(), 12 + 44);
    rt(req(MpRequest::Aggregate(q.clone())));
    let nxq = FlowStatsRequest {
        cookie: 5,
        cookie_mask: 0xff,
        ..q.clone()
    };
    let b = rt(req(MpRequest::NxFlow(nxq.clone())));
    assert_eq!(be32(&b, 16), NXST_FLOW);
    rt(req(MpRequest::NxAggregate(nxq)));
    rt(req(MpRequest::NxFlow(FlowStatsRequest {
        matcher: Match::CATCHALL,
        ..q
    })));

    let rep = |body| Msg::MultipartReply { flags: 0, body };
    rt(rep(MpReply::Desc(Desc {
        mfr_desc: "xennet".into(),
        hw_desc: "Xen".into(),
        sw_desc: "0.1".into(),
        serial_num: "None".into(),
        dp_desc: "br0".into(),
    })));
    let fs = FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 2,
        priority: 3,
        idle_timeout: 4,
        hard_timeout: 5,
        flags: 0,
        cookie: 6,
        packet_count: 7,
        byte_count: 8,
        idle_age: None,
        hard_age: None,
        matcher: tcp_match(),
        instructions: Instructions::apply(all_1_0_actions(true)),
    };
    rt(rep(MpReply::Flow(vec![fs.clone(), fs.clone()])));
    let nxfs = FlowStats {
        idle_age: Some(0),
        hard_age: Some(1000),
        instructions: Instructions::apply(nx_actions()),
        ..fs.clone()
    };
    rt(rep(MpReply::NxFlow(vec![nxfs, fs])));
    rt(rep(MpReply::Aggregate {
        packet_count: 1,
        byte_count: 2,
        flow_count: 3,
    }));
    rt(rep(MpReply::NxAggregate {
        packet_count: 1,
        byte_count: 2,
        flow_count: 3,
    }));
    let b = rt(rep(MpReply::Table(vec![TableStats {
        table_id: 0,
        name: "table0".into(),
        active_count: 3,
        lookup_count: 100,
        matched_count: 90,
    }])));
    assert_eq!(b.len(), 12 + 64);
    assert_eq!(&b[16..22], b"table0");
    rt(rep(MpReply::PortStats(vec![PortStats {
        port_no: OFPP_LOCAL,
        rx_packets: 1,
        collisions: 12,
        ..PortStats::default()
    }])));
    rt(rep(MpReply::PortDesc(vec![port(1), port(2)])));
    rt(rep(MpReply::Queue));
    // 1.3-only bodies.
    let mut out = Vec::new();
    assert!(encode(
        &req(MpRequest::GroupDesc(crate::model::OFPG_ALL)),
        1,
        &mut out
    )
    .is_err());
    assert!(encode(&rep(MpReply::Meter(vec![])), 1, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn big_replies_are_split() {
    let ps: Vec<PortStats> = (1..=1000)
        .map(|n| PortStats {
            port_no: n,
            ..PortStats::default()
        })
        .collect();
    let mut out = Vec::new();
    encode(
        &Msg::MultipartReply {
            flags: 0,
            body: MpReply::PortStats(ps.clone()),
        },
        9,
        &mut out,
    )
    .unwrap();
    let mut rest = &out[..];
    let mut got = Vec::new();
    let mut n = 0;
    while let Some(len) = header::frame_len(rest) {
        let (msg, tail) = rest.split_at(len);
        let Msg::MultipartReply { flags, body } = dec(msg).unwrap() else {
            panic!()
        };
        let MpReply::PortStats(v) = body else {
            panic!()
        };
        got.extend(v);
        n += 1;
        assert_eq!(flags & OFPSF_REPLY_MORE != 0, !tail.is_empty());
        rest = tail;
    }
    assert_eq!(n, 2, "104 KB of port stats in two messages");
    assert_eq!(got, ps);
}

#[test]
fn action_encoding_details() {
    let mut out = Vec::new();
    // ENQUEUE for set_queue + output.
    encode_actions(
        &[
            Action::SetQueue(3),
            Action::Output {
                port: 2,
                max_len: 0,
            },
        ],
        &mut out,
    )
    .unwrap();
    assert_eq!((be16(&out, 0), out.len()), (OFPAT10_ENQUEUE, 16));
    // push_vlan is implicit before set_vlan_vid.
    out.clear();
    encode_actions(
        &[
            Action::PushVlan(0x8100),
            Action::SetField {
                field: OxmField::VlanVid,
                value: 0x1005,
            },
        ],
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 8);
    let sv = Action::SetVlan10 {
        field: OxmField::VlanVid,
        value: 0x1005,
        flow_has_vlan: false,
    };
    // 1.0's VLAN sets in 1.3 (OVS `encode_SET_VLAN_VID`): a push first
    // unless the flow has a tag.
    out.clear();
    crate::actions::put_action(&mut out, &sv, header::OFP13_VERSION).unwrap();
    assert_eq!(
        (be16(&out, 0), be16(&out, 4), be16(&out, 8)),
        (17, 0x8100, 25)
    );
    let tagged = Action::SetVlan10 {
        field: OxmField::VlanVid,
        value: 0x1005,
        flow_has_vlan: true,
    };
    out.clear();
    crate::actions::put_action(&mut out, &tagged, header::OFP13_VERSION).unwrap();
    assert_eq!((be16(&out, 0), out.len()), (25, 16));
    // OVS `encode_PUSH_VLAN` for 1.0: nothing, whatever follows (a flow
    // dump); a flow-mod or packet-out refuses a push 1.0 cannot express.
    for tpid in [0x8100, 0x88a8] {
        out.clear();
        encode_actions(&[Action::PushVlan(tpid), Action::PopVlan], &mut out).unwrap();
        assert_eq!((out.len(), be16(&out, 0)), (8, 3));
        assert!(crate::actions::check_exact_ofp10_actions(&[Action::PushVlan(tpid)]).is_err());
    }
    assert!(
        crate::actions::check_exact_ofp10_actions(&[Action::PushVlan(0x88a8), sv.clone()]).is_err()
    );
    let mut fm = flow_mod(Match::CATCHALL, vec![Action::PushVlan(0x8100)]);
    let mut b = Vec::new();
    assert!(encode_with(
        &Msg::FlowMod(fm.clone()),
        1,
        &EncodeOptions::default(),
        &mut b
    )
    .is_err());
    fm.instructions = Instructions::apply(vec![Action::PushVlan(0x8100), sv]);
    assert!(encode_with(&Msg::FlowMod(fm), 1, &EncodeOptions::default(), &mut b).is_ok());
    assert!(encode_actions(
        &[Action::Output {
            port: 0x10000,
            max_len: 0
        }],
        &mut out
    )
    .is_err());
    assert!(encode_actions(
        &[Action::SetField {
            field: OxmField::EthType,
            value: 1
        }],
        &mut out
    )
    .is_err());
    // set_nw_ttl is a reg_load2 of NXM_NX_IP_TTL.
    out.clear();
    encode_actions(&[Action::SetNwTtl(4)], &mut out).unwrap();
    assert_eq!(
        decode_actions(&out, None).unwrap(),
        vec![Action::SetField {
            field: OxmField::IpTtl,
            value: 4
        }]
    );
    // SET_TP_DST of a UDP flow is udp_dst.
    out.clear();
    encode_actions(
        &[Action::SetField {
            field: OxmField::UdpDst,
            value: 53,
        }],
        &mut out,
    )
    .unwrap();
    assert_eq!(
        decode_actions(&out, Some(17)).unwrap(),
        vec![Action::SetField {
            field: OxmField::UdpDst,
            value: 53
        }]
    );
}

/// `NXAST_REG_LOAD` as OVS sends set-fields in 1.0: IPv6 as two 64-bit loads.
#[test]
fn reg_load_decodes() {
    let load = |ofs: u16, nbits: u16, dst: u32, value: u64| {
        let mut a = Vec::new();
        a.u16(0xffff);
        a.u16(24);
        a.u32(NX_VENDOR_ID);
        a.u16(NXAST_REG_LOAD);
        a.u16((ofs << 6) | (nbits - 1));
        a.u32(dst);
        a.u64(value);
        a
    };
    // NXM_NX_IPV6_SRC = (1, 19, 16).
    let v6 = (1 << 16) | (19 << 9) | 16;
    let mut acts = load(0, 64, v6, 1);
    acts.extend(load(64, 64, v6, 0x2001_0db8_0000_0000));
    assert_eq!(
        decode_actions(&acts, None).unwrap(),
        vec![Action::SetField {
            field: OxmField::Ipv6Src,
            value: (0x2001_0db8u128 << 96) | 1
        }]
    );
    // NXM_NX_IP_TTL = (1, 29, 1).
    let ttl = load(0, 8, (1 << 16) | (29 << 9) | 1, 7);
    assert_eq!(
        decode_actions(&ttl, None).unwrap(),
        vec![Action::SetField {
            field: OxmField::IpTtl,
            value: 7
        }]
    );
    // A partial load is a `Load` of those bits.
    let part = load(0, 4, (1 << 16) | (29 << 9) | 1, 7);
    assert_eq!(
        decode_actions(&part, None).unwrap(),
        vec![Action::Load {
            dst: Subfield {
                field: MfField::Oxm(OxmField::IpTtl),
                ofs: 0,
                n_bits: 4
            },
            value: 7
        }]
    );
    // A value wider than its bits: OVS `decode_NXAST_RAW_REG_LOAD`.
    let wide = load(0, 4, (1 << 16) | (29 << 9) | 1, 17);
    assert_eq!(
        decode_actions(&wide, None).unwrap_err().err,
        OfError::BAD_ACTION_ARGUMENT
    );
}

#[test]
fn action_errors() {
    let err = |b: &[u8]| decode_actions(b, None).unwrap_err().err;
    // Unknown 1.0 type.
    assert_eq!(err(&[0, 12, 0, 8, 0, 0, 0, 0]), OfError::BAD_ACTION_TYPE);
    // Bad lengths.
    assert_eq!(err(&[0, 0, 0, 16, 0, 1, 0, 0]), OfError::BAD_ACTION_LEN);
    assert_eq!(err(&[0, 0, 0, 4]), OfError::BAD_ACTION_LEN);
    assert_eq!(err(&[0, 0, 0, 0, 0, 1, 0, 0]), OfError::BAD_ACTION_LEN);
    assert_eq!(
        err(&[0, 0, 0, 12, 0, 1, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_ACTION_LEN
    );
    assert_eq!(err(&[0, 0, 0, 8, 0, 1]), OfError::BAD_ACTION_LEN);
    // Output to OFPP_NONE or beyond OFPP_MAX.
    assert_eq!(err(&[0, 0, 0, 8, 0xff, 0xff, 0, 0]), OfError::BAD_OUT_PORT);
    assert_eq!(err(&[0, 0, 0, 8, 0xff, 0x00, 0, 0]), OfError::BAD_OUT_PORT);
    // Bad arguments.
    assert_eq!(
        err(&[0, 1, 0, 8, 0x10, 0, 0, 0]),
        OfError::BAD_ACTION_ARGUMENT
    );
    assert_eq!(err(&[0, 2, 0, 8, 8, 0, 0, 0]), OfError::BAD_ACTION_ARGUMENT);
    assert_eq!(
        err(&[0, 8, 0, 8, 0xb9, 0, 0, 0]),
        OfError::BAD_ACTION_ARGUMENT
    );
    // Vendors.
    let nx = |vendor: u32, sub: u16| {
        let mut a = vec![0xff, 0xff, 0, 16];
        a.extend_from_slice(&vendor.to_be_bytes());
        a.extend_from_slice(&sub.to_be_bytes());
        a.extend_from_slice(&[0; 6]);
        a
    };
    assert_eq!(err(&nx(0x1234, 1)), OfError::BAD_ACTION_EXPERIMENTER);
    assert_eq!(err(&nx(NX_VENDOR_ID, 99)), OfError::BAD_ACTION_EXP_TYPE);
    // NXAST_OUTPUT_TRUNC is not implemented.
    assert_eq!(err(&nx(NX_VENDOR_ID, 39)), OfError::BAD_ACTION_EXP_TYPE);
    // NXAST_LEARN shorter than its 32 bytes.
    assert_eq!(err(&nx(NX_VENDOR_ID, 16)), OfError::BAD_ACTION_LEN);
    let mut rt = nx(NX_VENDOR_ID, NXAST_RESUBMIT_TABLE);
    rt[15] = 1;
    assert_eq!(err(&rt), OfError::BAD_ACTION_ARGUMENT);
    let mut short_nx = nx(NX_VENDOR_ID, 1);
    short_nx.truncate(8);
    short_nx[3] = 8;
    assert_eq!(err(&short_nx), OfError::BAD_ACTION_LEN);
}

fn msg10(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    Header {
        version: OFP10_VERSION,
        typ,
        length: (8 + body.len()) as u16,
        xid: 1,
    }
    .write(&mut b);
    b.extend_from_slice(body);
    b
}

#[test]
fn message_errors() {
    let err = |b: Vec<u8>| dec(&b).unwrap_err().err;
    // Unknown type (QUEUE_GET_CONFIG_REQUEST has no model form).
    assert_eq!(err(msg10(20, &[0; 8])), OfError::BAD_TYPE);
    assert_eq!(err(msg10(99, &[])), OfError::BAD_TYPE);
    // Bad lengths.
    assert_eq!(err(msg10(OFPT_FEATURES_REQUEST, &[0])), OfError::BAD_LEN);
    assert_eq!(err(msg10(OFPT_SET_CONFIG, &[0; 2])), OfError::BAD_LEN);
    assert_eq!(err(msg10(OFPT_FLOW_MOD, &[0; 63])), OfError::BAD_LEN);
    assert_eq!(err(msg10(OFPT_FLOW_REMOVED, &[0; 81])), OfError::BAD_LEN);
    assert_eq!(err(msg10(OFPT_PORT_STATUS, &[0; 50])), OfError::BAD_LEN);
    assert_eq!(err(msg10(OFPT_FEATURES_REPLY, &[0; 30])), OfError::BAD_LEN);
    assert_eq!(err(msg10(header::OFPT_ERROR, &[0; 2])), OfError::BAD_LEN);
    assert_eq!(err(msg10(OFPT_BARRIER_REQUEST, &[0; 8])), OfError::BAD_LEN);
    // packet-out whose actions_len runs past the end.
    let mut po = vec![0xff; 4];
    po.extend_from_slice(&[0xff, 0xfd, 0, 16, 0, 0, 0, 8]);
    assert_eq!(err(msg10(OFPT_PACKET_OUT, &po)), OfError::BAD_LEN);
    po[7] = 12;
    assert_eq!(err(msg10(OFPT_PACKET_OUT, &po)), OfError::BAD_LEN);
    // ...and a bad input port (OFPP_IN_PORT).
    let po = [0xff, 0xff, 0xff, 0xff, 0xff, 0xf8, 0, 0];
    assert_eq!(err(msg10(OFPT_PACKET_OUT, &po)), OfError::BAD_PORT);
    // Unknown stats type, vendor, subtype.
    assert_eq!(
        err(msg10(OFPT_STATS_REQUEST, &[0, 6, 0, 0])),
        OfError::BAD_MULTIPART
    );
    let mut v = vec![0xff, 0xff, 0, 0, 0, 0, 0x23, 0x21, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        err(msg10(OFPT_STATS_REQUEST, &v)),
        OfError::BAD_EXPERIMENTER
    );
    v[7] = 0x20;
    v[11] = 2; // NXST_FLOW_MONITOR
    assert_eq!(err(msg10(OFPT_STATS_REQUEST, &v)), OfError::BAD_EXP_TYPE);
    let vendor = |vendor: u32, sub: u32, extra: &[u8]| {
        let mut b = vendor.to_be_bytes().to_vec();
        b.extend_from_slice(&sub.to_be_bytes());
        b.extend_from_slice(extra);
        msg10(OFPT_VENDOR, &b)
    };
    assert_eq!(err(vendor(0x2000, 12, &[0; 4])), OfError::BAD_EXPERIMENTER);
    assert_eq!(
        err(vendor(NX_VENDOR_ID, 21, &[0; 4])),
        OfError::BAD_EXP_TYPE
    );
    assert_eq!(err(vendor(NX_VENDOR_ID, 99, &[])), OfError::BAD_EXP_TYPE);
    assert_eq!(err(vendor(NX_VENDOR_ID, 12, &[0; 2])), OfError::BAD_LEN);
    assert_eq!(err(vendor(NX_VENDOR_ID, 12, &[0; 8])), OfError::BAD_LEN);
    assert_eq!(
        err(vendor(NX_VENDOR_ID, NXT_FLOW_MOD, &[0; 20])),
        OfError::BAD_LEN
    );
    assert_eq!(
        err(vendor(NX_VENDOR_ID, NXT_ROLE_REQUEST, &[0, 0, 0, 3])),
        OfError::BAD_ROLE
    );
    let bad_vendor_len = msg10(OFPT_VENDOR, &[0, 0]);
    assert_eq!(err(bad_vendor_len), OfError::BAD_LEN);
    // A flow-mod with an unknown command, the EMERG flag, unknown flags.
    let fm = flow_mod(Match::CATCHALL, vec![]);
    let good = enc_with(&Msg::FlowMod(fm), &EncodeOptions::default());
    let mut b = good.clone();
    b[57] = 9;
    assert_eq!(err(b), OfError::BAD_COMMAND);
    let mut b = good.clone();
    b[71] = 4;
    assert_eq!(err(b), OfError::TABLE_FULL);
    let mut b = good.clone();
    b[71] = 8;
    assert_eq!(err(b), OfError::BAD_FLAGS);
    // A flow-mod whose actions are not a multiple of 8.
    let mut b = good;
    b.extend_from_slice(&[0, 0, 0, 8]);
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
    assert_eq!(err(b), OfError::BAD_ACTION_LEN);
}

#[test]
fn nx_match_errors() {
    // NXT_FLOW_MOD with match_len past the end, and with a bad TLV.
    let mut fm = flow_mod(tcp_match(), vec![]);
    fm.flags = 0;
    fm.command = FlowModCommand::Modify;
    let good = enc_with(&Msg::FlowMod(fm), &NXM);
    let mut b = good.clone();
    b[40..42].copy_from_slice(&0x400u16.to_be_bytes());
    assert_eq!(dec(&b).unwrap_err().err, OfError::BAD_LEN);
    let mut b = good;
    b[48] = 0x55; // unknown class
    assert_eq!(dec(&b).unwrap_err().err, OfError::BAD_FIELD);
}

#[test]
fn encode_unsupported() {
    let mut out = Vec::new();
    for m in [
        Msg::RoleRequest(crate::model::RoleMsg {
            role: 0,
            generation_id: 0,
        }),
        Msg::GetAsyncRequest,
        Msg::TableMod {
            table_id: 0,
            config: 0,
        },
    ] {
        assert!(matches!(
            encode(&m, 1, &mut out),
            Err(EncodeError::Unsupported(_))
        ));
    }
    let mut fm = flow_mod(Match::CATCHALL, vec![]);
    fm.instructions.goto_table = Some(1);
    assert!(encode(&Msg::FlowMod(fm.clone()), 1, &mut out).is_err());
    fm.instructions.goto_table = None;
    fm.instructions.meter = Some(1);
    assert!(encode(&Msg::FlowMod(fm), 1, &mut out).is_err());
    assert!(out.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Decoding arbitrary bytes behind a 1.0 header never panics.
    #[test]
    fn decode_never_panics(typ in prop_oneof![0u8..22, any::<u8>()], body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let b = msg10(typ, &body);
        let _ = dec(&b);
        let opts = DecodeOptions { flow_mod_table_id: true };
        let _ = decode_with(&Header::parse(&b).unwrap(), &b, &opts);
    }

    /// Same, with plausible vendor and stats headers in front.
    #[test]
    fn decode_vendor_never_panics(sub in 0u32..24, st in prop_oneof![Just(0xffffu16), 0u16..14], body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut v = NX_VENDOR_ID.to_be_bytes().to_vec();
        v.extend_from_slice(&sub.to_be_bytes());
        v.extend_from_slice(&body);
        let _ = dec(&msg10(OFPT_VENDOR, &v));
        let mut s = st.to_be_bytes().to_vec();
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&v[..8]);
        s.extend_from_slice(&[0; 4]);
        s.extend_from_slice(&body);
        let _ = dec(&msg10(OFPT_STATS_REQUEST, &s));
        let _ = dec(&msg10(OFPT_STATS_REPLY, &s));
    }

    /// Action lists built from plausible action headers never panic.
    #[test]
    fn actions_never_panic(chunks in proptest::collection::vec((prop_oneof![0u16..12, Just(0xffffu16)], 0u16..40, proptest::collection::vec(any::<u8>(), 0..30)), 0..5)) {
        let mut b = Vec::new();
        for (t, sub, rest) in chunks {
            let len = (4 + 8 + rest.len()).div_ceil(8) * 8;
            b.u16(t);
            b.u16(len as u16);
            b.u32(NX_VENDOR_ID);
            b.u16(sub);
            b.extend_from_slice(&rest);
            b.resize(b.len() + len - 10 - rest.len(), 0);
        }
        let _ = decode_actions(&b, Some(6));
    }

    /// Any ofp_match decodes (normalised or not) and re-encodes to a match
    /// that decodes to the same model.
    #[test]
    fn ofp_match_reencodes(bytes in proptest::array::uniform32(any::<u8>()), tail in proptest::array::uniform8(any::<u8>()), norm in any::<bool>()) {
        let mut w = bytes.to_vec();
        w.extend_from_slice(&tail);
        let (m, _) = match_from_ofp10(&w, norm);
        let mut out = Vec::new();
        encode_match(&m, &mut out).unwrap();
        prop_assert_eq!(canonical(&match_from_ofp10(&out, norm).0), canonical(&m));
    }
}

/// Switch-side messages of every kind we send, as `(name, message,
/// encoding options)`.
fn samples() -> Vec<(&'static str, Msg, EncodeOptions)> {
    let fr = FlowRemoved {
        cookie: 0xdead,
        priority: 100,
        reason: 1,
        table_id: 3,
        duration_sec: 5,
        duration_nsec: 6,
        idle_timeout: 10,
        hard_timeout: 0,
        packet_count: 7,
        byte_count: 700,
        matcher: tcp_match(),
    };
    let fs = FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 2,
        priority: 3,
        idle_timeout: 4,
        hard_timeout: 5,
        flags: 0,
        cookie: 6,
        packet_count: 7,
        byte_count: 8,
        idle_age: Some(3),
        hard_age: None,
        matcher: tcp_match(),
        instructions: Instructions::apply(all_1_0_actions(true)),
    };
    let nxfs = FlowStats {
        instructions: Instructions::apply(nx_actions()),
        ..fs.clone()
    };
    let pi = PacketIn {
        buffer_id: header::NO_BUFFER,
        total_len: 60,
        reason: 1,
        table_id: 2,
        cookie: 0x77,
        in_port: 3,
        metadata: 0x1234,
        data: vec![0xaa; 60],
        ..Default::default()
    };
    let rep = |body| Msg::MultipartReply { flags: 0, body };
    let d = EncodeOptions::default();
    let mut samples: Vec<(&str, Msg, EncodeOptions)> = vec![
        (
            "features",
            Msg::FeaturesReply(SwitchFeatures {
                datapath_id: 0x11_2233_4455,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0b111 | (1 << 6) | OFPC10_ARP_MATCH_IP,
                ports: vec![port(1), port(0xffff_fffe)],
            }),
            d,
        ),
        ("flow_removed", Msg::FlowRemoved(fr.clone()), d),
        ("nx_flow_removed", Msg::FlowRemoved(fr), NXM),
        ("packet_in", Msg::PacketIn(pi.clone()), d),
        ("nx_packet_in", Msg::PacketIn(pi), NXM),
        (
            "port_status",
            Msg::PortStatus(PortStatus {
                reason: 0,
                desc: port(5),
            }),
            d,
        ),
        ("flow_stats", rep(MpReply::Flow(vec![fs.clone()])), d),
        ("nx_flow_stats", rep(MpReply::NxFlow(vec![nxfs, fs])), d),
        (
            "table_stats",
            rep(MpReply::Table(vec![TableStats {
                table_id: 0,
                name: "table0".into(),
                active_count: 3,
                lookup_count: 100,
                matched_count: 90,
            }])),
            d,
        ),
        (
            "port_stats",
            rep(MpReply::PortStats(vec![PortStats {
                port_no: 1,
                rx_packets: 5,
                ..PortStats::default()
            }])),
            d,
        ),
        ("port_desc", rep(MpReply::PortDesc(vec![port(1)])), d),
        (
            "desc",
            rep(MpReply::Desc(Desc {
                mfr_desc: "xennet".into(),
                hw_desc: "Xen".into(),
                sw_desc: "0.1".into(),
                serial_num: "None".into(),
                dp_desc: "br0".into(),
            })),
            d,
        ),
        (
            "aggregate",
            rep(MpReply::Aggregate {
                packet_count: 1,
                byte_count: 2,
                flow_count: 3,
            }),
            d,
        ),
        (
            "nx_aggregate",
            rep(MpReply::NxAggregate {
                packet_count: 1,
                byte_count: 2,
                flow_count: 3,
            }),
            d,
        ),
        ("queue", rep(MpReply::Queue), d),
        (
            "config",
            Msg::GetConfigReply(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            }),
            d,
        ),
    ];
    // Errors: the same data under each sampled code.
    let data = vec![1, 14, 0, 8, 0, 0, 0, 1];
    for (name, err) in [
        ("error_prereq", OfError::BAD_PREREQ),
        ("error_overlap", OfError::OVERLAP),
        ("error_meter", OfError::METER_EXISTS),
        ("error_bad_table", OfError::BAD_TABLE_ID),
    ] {
        let data = data.clone();
        samples.push((name, Msg::Error { err, data }, d));
    }
    samples.push((
        "flow_mod_nx_actions",
        Msg::FlowMod(flow_mod(tcp_match(), nx_actions())),
        d,
    ));
    samples
}

/// Open vSwitch's own decoder (`ovs-ofctl ofp-print`) reads every kind of
/// message the switch sends without a decode error. The error samples
/// carry a truncated request as their data (OVS decodes that too and
/// complains about it), and the flow_mod with every Nicira action has
/// actions whose prerequisites no one match meets: both are only checked
/// for their type.
#[test]
fn samples_decode_with_ovs_ofp_print() {
    for (name, msg, opts) in samples() {
        let b = enc_with(&msg, &opts);
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let out = std::process::Command::new("ovs-ofctl")
            .args(["ofp-print", &hex])
            .output()
            .expect("ovs-ofctl not found: apt install openvswitch-common (scripts/test does)");
        assert!(out.status.success(), "{name}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        if name.starts_with("error_") {
            assert!(text.starts_with("OFPT_ERROR"), "{name}: {text}");
        } else if name == "flow_mod_nx_actions" {
            assert!(text.starts_with("OFPT_FLOW_MOD"), "{name}: {text}");
        } else {
            assert!(
                !text.contains("***") && !text.contains("decode error"),
                "{name}: {text}"
            );
        }
    }
}

fn action_strategy() -> impl Strategy<Value = Action> {
    use OxmField::*;
    let sf = |field: OxmField, bits: u32| {
        (0u128..=ones(bits.min(64))).prop_map(move |v| match field {
            VlanVid => Action::SetVlan10 {
                field,
                value: 0x1000 | (v & 0xfff),
                flow_has_vlan: false,
            },
            VlanPcp => Action::SetVlan10 {
                field,
                value: v,
                flow_has_vlan: false,
            },
            _ => Action::SetField { field, value: v },
        })
    };
    prop_oneof![
        (0u32..0xff00, any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        (0xffff_fff8u32..=0xffff_fffe).prop_map(|port| Action::Output {
            port,
            max_len: 0xffff
        }),
        sf(VlanVid, 12),
        sf(VlanPcp, 3),
        sf(EthSrc, 48),
        sf(EthDst, 48),
        sf(Ipv4Src, 32),
        sf(Ipv4Dst, 32),
        sf(IpDscp, 6),
        sf(TcpSrc, 16),
        sf(TcpDst, 16),
        sf(IpTtl, 8),
        sf(IpEcn, 2),
        sf(ArpOp, 8),
        sf(ArpSpa, 32),
        sf(Icmpv4Type, 8),
        sf(Icmpv6Code, 8),
        any::<u128>().prop_map(|value| Action::SetField {
            field: OxmField::Ipv6Dst,
            value
        }),
        Just(Action::PopVlan),
        Just(Action::DecNwTtl),
        any::<u32>().prop_map(Action::Group),
        (0u32..0xff00, any::<u8>())
            .prop_map(|(in_port, table)| Action::Resubmit { in_port, table }),
        any::<u32>().prop_map(Action::SetQueue),
        (0u32..0xff00).prop_map(|port| Action::Output { port, max_len: 0 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Flow-mods with any 1.0 match (as the decoder builds them) and any
    /// actions roundtrip through OFPT_FLOW_MOD and NXT_FLOW_MOD.
    #[test]
    fn flow_mod_roundtrips(
        m in proptest::array::uniform32(any::<u8>()),
        m2 in proptest::array::uniform8(any::<u8>()),
        actions in proptest::collection::vec(action_strategy(), 0..8),
        priority in 0u16..0xffff,
        table in 0u8..0xff,
    ) {
        let mut w = m.to_vec();
        w.extend_from_slice(&m2);
        let (matcher, _) = match_from_ofp10(&w, true);
        // TCP/UDP/SCTP set-fields decode by the match's protocol.
        let (src, dst) = tp_fields(match_proto(&matcher));
        let actions: Vec<Action> = actions
            .into_iter()
            .map(|a| match a {
                Action::SetField { field: OxmField::TcpSrc, value } => Action::SetField { field: src, value },
                Action::SetField { field: OxmField::TcpDst, value } => Action::SetField { field: dst, value },
                a => a,
            })
            .collect();
        let mut fm = flow_mod(matcher, noted(&matcher, actions));
        fm.priority = priority;
        fm.table_id = table;
        if matcher.mask == FlowMask::EXACT {
            fm.priority = 0xffff;
        }
        let b = enc_with(&Msg::FlowMod(fm.clone()), &EncodeOptions::default());
        prop_assert_eq!(dec(&b).unwrap(), Msg::FlowMod(fm.clone()));
        // NXM needs a match oxm accepts (prerequisites as 1.3 has them).
        if oxm::decode_tlvs(&{ let mut v = Vec::new(); oxm::encode_tlvs(&fm.matcher, Flavor::Nxm, &mut v); v }).ok() == Some(fm.matcher) {
            let b = enc_with(&Msg::FlowMod(fm.clone()), &NXM);
            prop_assert_eq!(dec(&b).unwrap(), Msg::FlowMod(fm));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Flow stats (OFPST_FLOW and NXST_FLOW, split when large) and
    /// flow-removeds roundtrip with any 1.0 match and random actions.
    #[test]
    fn flow_stats_and_removed_roundtrip(
        flows in proptest::collection::vec((
            proptest::collection::vec(any::<u8>(), 40),
            proptest::collection::vec(action_strategy(), 0..6),
            any::<u64>(),
            proptest::option::of(0u16..0xfffe),
            proptest::option::of(0u16..0xfffe),
        ), 0..40),
        big in any::<bool>(),
    ) {
        let mut stats = Vec::new();
        for (w, actions, cookie, idle_age, hard_age) in flows {
            let (matcher, _) = match_from_ofp10(&w, false);
            let (src, dst) = tp_fields(match_proto(&matcher));
            let actions = actions
                .into_iter()
                .map(|a| match a {
                    Action::SetField { field: OxmField::TcpSrc, value } => Action::SetField { field: src, value },
                    Action::SetField { field: OxmField::TcpDst, value } => Action::SetField { field: dst, value },
                    a => a,
                })
                .collect();
            let actions = noted(&matcher, actions);
            stats.push(FlowStats {
                table_id: (cookie >> 56) as u8,
                duration_sec: cookie as u32,
                duration_nsec: (cookie >> 32) as u32,
                priority: cookie as u16,
                idle_timeout: 1,
                hard_timeout: 2,
                flags: 0,
                cookie,
                packet_count: !cookie,
                byte_count: cookie.rotate_left(7),
                idle_age,
                hard_age,
                matcher,
                instructions: Instructions::apply(actions),
            });
        }
        if big {
            // Past 64 KiB: several messages.
            let s = stats.clone();
            for _ in 0..30 {
                stats.extend(s.iter().cloned());
            }
        }
        let mut one = stats.clone();
        for f in &mut one {
            f.idle_age = None;
            f.hard_age = None;
        }
        let split = |msg: &Msg| {
            let mut out = Vec::new();
            encode(msg, 3, &mut out).unwrap();
            let mut rest = &out[..];
            let mut got = Vec::new();
            while let Some(n) = header::frame_len(rest) {
                let (m, tail) = rest.split_at(n);
                let Msg::MultipartReply { flags, body } = dec(m).unwrap() else { panic!() };
                assert_eq!(flags & OFPSF_REPLY_MORE != 0, !tail.is_empty());
                match body {
                    MpReply::Flow(v) | MpReply::NxFlow(v) => got.extend(v),
                    other => panic!("{other:?}"),
                }
                rest = tail;
            }
            got
        };
        let flow = Msg::MultipartReply { flags: 0, body: MpReply::Flow(one.clone()) };
        prop_assert_eq!(split(&flow), one);
        let nxm_ok: Vec<FlowStats> = stats
            .into_iter()
            .filter(|f| {
                let mut v = Vec::new();
                oxm::encode_tlvs(&f.matcher, Flavor::Nxm, &mut v);
                oxm::decode_tlvs(&v).ok() == Some(f.matcher)
            })
            .collect();
        let nx = Msg::MultipartReply { flags: 0, body: MpReply::NxFlow(nxm_ok.clone()) };
        prop_assert_eq!(split(&nx), nxm_ok.clone());
        for f in nxm_ok.iter().take(3) {
            let fr = FlowRemoved {
                cookie: f.cookie,
                priority: f.priority,
                reason: 2,
                table_id: f.table_id.min(254),
                duration_sec: f.duration_sec,
                duration_nsec: f.duration_nsec,
                idle_timeout: f.idle_timeout,
                hard_timeout: 0,
                packet_count: f.packet_count,
                byte_count: f.byte_count,
                matcher: f.matcher,
            };
            rt_with(Msg::FlowRemoved(fr.clone()), &NXM);
            rt(Msg::FlowRemoved(FlowRemoved { table_id: OFPTT_ALL, ..fr }));
        }
    }
}

/// A flow with 1.1+ instructions in a 1.0 flow dump is written as OVS 3.1
/// writes it (`encode_GOTO_TABLE` etc. for `OFP10_VERSION`): apply-actions,
/// `NXAST_WRITE_METADATA`, `NXAST_RESUBMIT_TABLE` (in_port `OFPP_IN_PORT`);
/// meter, clear-actions and write-actions are left out.
#[test]
fn flow_stats_with_instructions_as_ovs_writes_them() {
    let ins = Instructions {
        meter: Some(1),
        apply: Some(vec![Action::Output {
            port: 2,
            max_len: 0,
        }]),
        clear: true,
        write: Some(vec![Action::Output {
            port: 3,
            max_len: 0,
        }]),
        write_metadata: Some((0x1122, 0xffff)),
        goto_table: Some(7),
    };
    let fs = FlowStats {
        table_id: 0,
        duration_sec: 0,
        duration_nsec: 0,
        priority: 1,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        cookie: 0,
        packet_count: 0,
        byte_count: 0,
        idle_age: None,
        hard_age: None,
        matcher: Match::CATCHALL,
        instructions: ins,
    };
    let expected_actions: Vec<u8> = [
        // OFPAT10_OUTPUT port 2.
        &[0, 0, 0, 8, 0, 2, 0, 0][..],
        // NXAST_WRITE_METADATA: vendor, subtype 22, zeros, value, mask.
        &[0xff, 0xff, 0, 32, 0, 0, 0x23, 0x20, 0, 22, 0, 0, 0, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0, 0x11, 0x22, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
        // NXAST_RESUBMIT_TABLE: in_port 0xfff8, table 7.
        &[
            0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 14, 0xff, 0xf8, 7, 0, 0, 0,
        ],
    ]
    .concat();
    for body in [
        MpReply::Flow(vec![fs.clone()]),
        MpReply::NxFlow(vec![fs.clone()]),
    ] {
        let b = enc_with(&Msg::MultipartReply { flags: 0, body }, &NXM);
        assert!(b.ends_with(&expected_actions), "{b:02x?}");
        // Both together do not decode (a resubmit after write-metadata),
        // in OVS's ovs-ofctl either: OVS writes them so all the same.
        assert_eq!(dec(&b).map_err(|e| e.err), Err(OfError::UNSUPPORTED_ORDER));
    }
    // The goto alone decodes as a resubmit to that table.
    let mut goto = fs;
    goto.instructions = Instructions {
        goto_table: Some(7),
        ..Instructions::default()
    };
    let b = enc_with(
        &Msg::MultipartReply {
            flags: 0,
            body: MpReply::NxFlow(vec![goto]),
        },
        &NXM,
    );
    let Ok(Msg::MultipartReply {
        body: MpReply::NxFlow(v),
        ..
    }) = dec(&b)
    else {
        panic!("{:?}", dec(&b))
    };
    assert_eq!(
        v[0].instructions,
        Instructions::apply(vec![Action::Resubmit {
            in_port: OFPP_IN_PORT,
            table: 7
        }])
    );
}

/// Write-metadata has an exact 1.0 form (`NXAST_WRITE_METADATA`, last):
/// flow-mods with it roundtrip; an action after it is refused, as OVS's
/// `ofpacts_verify` refuses it.
#[test]
fn write_metadata_roundtrips_in_flow_mods() {
    let mut fm = flow_mod(Match::CATCHALL, vec![Action::DecNwTtl]);
    fm.instructions.write_metadata = Some((5, 0xff));
    rt_with(Msg::FlowMod(fm.clone()), &NXM);
    rt(Msg::FlowMod(fm.clone()));
    let mut b = enc_with(&Msg::FlowMod(fm), &NXM);
    // Append a DEC_TTL after the write-metadata.
    b.extend_from_slice(&[0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 18, 0, 0, 0, 0, 0, 0]);
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
    assert_eq!(dec(&b).map_err(|e| e.err), Err(OfError::UNSUPPORTED_ORDER));
}

/// A 1.0 VLAN set inside `clone` knows whether the flow has a tag where
/// the clone runs (OVS `check_CLONE` checks the nested actions against
/// the match as changed so far, and restores it after): under `dl_vlan`
/// it needs no push in 1.3; after a `strip_vlan` before the clone it
/// does, and the clone's own push or strip does not leak out of it.
#[test]
fn vlan_sets_inside_clone_know_the_tag() {
    let sv = |has| Action::SetVlan10 {
        field: OxmField::VlanVid,
        value: 0x1014,
        flow_has_vlan: has,
    };
    let mut tagged = Match::CATCHALL;
    tagged.key.set_vlan_tci(0x100a);
    tagged.mask.set(Field::VlanTci, 0x1fff);
    let acts = vec![
        Action::Clone(vec![sv(false), Action::PopVlan, sv(false)]),
        sv(false),
        Action::PopVlan,
        Action::Clone(vec![sv(false)]),
        sv(false),
    ];
    assert_eq!(
        noted(&tagged, acts.clone()),
        vec![
            Action::Clone(vec![sv(true), Action::PopVlan, sv(false)]),
            sv(true),
            Action::PopVlan,
            Action::Clone(vec![sv(false)]),
            sv(false),
        ]
    );
    // Encoded in 1.3 inside the clone: no push_vlan (type 17) under the
    // tagged match.
    let noted_acts = noted(
        &tagged,
        vec![Action::Clone(vec![
            sv(false),
            Action::Output {
                port: 2,
                max_len: 0,
            },
        ])],
    );
    let mut out13 = Vec::new();
    for a in &noted_acts {
        crate::actions::put_action(&mut out13, a, header::OFP13_VERSION).unwrap();
    }
    let untagged = noted(
        &Match::CATCHALL,
        vec![Action::Clone(vec![
            sv(false),
            Action::Output {
                port: 2,
                max_len: 0,
            },
        ])],
    );
    let mut out13u = Vec::new();
    for a in &untagged {
        crate::actions::put_action(&mut out13u, a, header::OFP13_VERSION).unwrap();
    }
    assert_eq!(out13u.len(), out13.len() + 8, "one push_vlan more untagged");
}
