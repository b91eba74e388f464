use super::*;
use crate::actions::put_action;
use crate::model::OxmField;
use proptest::prelude::*;

fn enc(msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, 0x1234_5678, &mut out).unwrap();
    out
}

fn dec(buf: &[u8]) -> Result<Msg, DecodeError> {
    let h = Header::parse(buf)?;
    assert_eq!(usize::from(h.length), buf.len());
    decode(&h, buf)
}

fn tcp_match() -> Match {
    let mut m = Match::CATCHALL;
    m.set_field(OxmField::InPort, 3, u128::from(u32::MAX))
        .unwrap();
    m.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap();
    m.set_field(OxmField::Ipv4Dst, 0x0a00_0000, 0xff00_0000)
        .unwrap();
    m.set_field(OxmField::IpProto, 6, 0xff).unwrap();
    m.set_field(OxmField::TcpDst, 80, 0xffff).unwrap();
    m.set_field(OxmField::Metadata, 5, 0xff).unwrap();
    m
}

fn all_actions() -> Vec<Action> {
    vec![
        Action::Output {
            port: 2,
            max_len: 0,
        },
        Action::Output {
            port: OFPP_CONTROLLER,
            max_len: OFPCML_NO_BUFFER,
        },
        Action::Group(7),
        Action::SetQueue(1),
        Action::PushVlan(0x8100),
        Action::SetField {
            field: OxmField::VlanVid,
            value: 0x1000 | 20,
        },
        Action::SetField {
            field: OxmField::Ipv6Dst,
            value: 1,
        },
        Action::SetField {
            field: OxmField::IpTtl,
            value: 3,
        },
        Action::SetField {
            field: OxmField::TcpFlags,
            value: 2,
        },
        Action::PopVlan,
        Action::DecNwTtl,
        Action::SetNwTtl(9),
        Action::Resubmit {
            in_port: OFPP_IN_PORT,
            table: 3,
        },
        Action::Resubmit {
            in_port: 5,
            table: 0xff,
        },
    ]
}

fn all_instructions() -> Instructions {
    Instructions {
        meter: Some(4),
        apply: Some(all_actions()),
        clear: true,
        write: Some(vec![Action::Group(1)]),
        write_metadata: Some((0xab, 0xff)),
        goto_table: Some(9),
    }
}

fn port(n: u32) -> PortDesc {
    PortDesc {
        port_no: n,
        hw_addr: [0xaa, 0x55, 0, 0, 0, n as u8],
        name: format!("vif{n}.0"),
        config: port_config::NO_PACKET_IN,
        state: port_state::LIVE,
        curr: 0x2820,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    }
}

fn flow_stats(i: u16) -> FlowStats {
    FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 2,
        priority: i,
        idle_timeout: 3,
        hard_timeout: 4,
        flags: flow_flags::SEND_FLOW_REM,
        cookie: u64::from(i),
        packet_count: 5,
        byte_count: 6,
        idle_age: None,
        hard_age: None,
        matcher: tcp_match(),
        instructions: all_instructions(),
    }
}

fn stats_req() -> FlowStatsRequest {
    FlowStatsRequest {
        table_id: OFPTT_ALL,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        cookie: 1,
        cookie_mask: 0xff,
        matcher: tcp_match(),
    }
}

fn table_features(id: u8) -> TableFeatures {
    use TableFeatureProp as P;
    TableFeatures {
        table_id: id,
        name: format!("table{id}"),
        metadata_match: u64::MAX,
        metadata_write: u64::MAX,
        config: 3,
        max_entries: 1_000_000,
        properties: vec![
            P::Instructions {
                miss: false,
                ids: vec![1, 2, 3, 4, 5, 6],
            },
            P::NextTables {
                miss: true,
                tables: (id + 1..=253).collect(),
            },
            P::WriteActions {
                miss: false,
                ids: vec![0, 17, 18],
            },
            P::ApplyActions {
                miss: true,
                ids: vec![0, 25],
            },
            P::Match(vec![0x8000_0004, 0x8000_0606]),
            P::Wildcards(vec![0x8000_0606]),
            P::WriteSetField {
                miss: false,
                fields: vec![0x8000_0606],
            },
            P::ApplySetField {
                miss: true,
                fields: vec![0x0001_3a01],
            },
            P::Other {
                typ: 0xfffe,
                body: vec![0, 0, 0x23, 0x20, 1, 2, 3],
            },
        ],
    }
}

fn bands() -> Vec<MeterBand> {
    vec![
        MeterBand {
            kind: MeterBandKind::Drop,
            rate: 1000,
            burst_size: 10,
        },
        MeterBand {
            kind: MeterBandKind::DscpRemark { prec_level: 1 },
            rate: 500,
            burst_size: 0,
        },
    ]
}

fn buckets() -> Vec<Bucket> {
    vec![
        Bucket {
            weight: 1,
            watch_port: OFPP_ANY,
            watch_group: OFPG_ANY,
            actions: vec![Action::Output {
                port: 1,
                max_len: 0,
            }],
        },
        Bucket {
            weight: 2,
            watch_port: 3,
            watch_group: OFPG_ANY,
            actions: vec![],
        },
    ]
}

/// One message of every variant 1.3 can carry.
pub(super) fn every_msg() -> Vec<Msg> {
    let flow_mod = FlowMod {
        cookie: 1,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 10,
        hard_timeout: 20,
        priority: 100,
        buffer_id: header::NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: flow_flags::SEND_FLOW_REM | flow_flags::CHECK_OVERLAP,
        matcher: tcp_match(),
        instructions: all_instructions(),
    };
    let mut reqs: Vec<MpRequest> = vec![
        MpRequest::Desc,
        MpRequest::Flow(stats_req()),
        MpRequest::Aggregate(stats_req()),
        MpRequest::Table,
        MpRequest::TableFeatures(vec![]),
        MpRequest::TableFeatures(vec![table_features(0), table_features(1)]),
        MpRequest::PortStats(OFPP_ANY),
        MpRequest::PortDesc(OFPP_ANY),
        MpRequest::Queue {
            port_no: OFPP_ANY,
            queue_id: 0xffff_ffff,
        },
        MpRequest::Group(OFPG_ALL),
        MpRequest::GroupDesc(OFPG_ALL),
        MpRequest::GroupFeatures,
        MpRequest::Meter(OFPM_ALL),
        MpRequest::MeterConfig(3),
        MpRequest::MeterFeatures,
    ];
    let replies: Vec<MpReply> = vec![
        MpReply::Desc(Desc {
            mfr_desc: "xennet".into(),
            hw_desc: "Xen".into(),
            sw_desc: "0.1.0".into(),
            serial_num: "None".into(),
            dp_desc: "br0".into(),
        }),
        MpReply::Flow(vec![flow_stats(1), flow_stats(2)]),
        MpReply::Flow(vec![]),
        MpReply::Aggregate {
            packet_count: 1,
            byte_count: 2,
            flow_count: 3,
        },
        MpReply::Table(vec![TableStats {
            table_id: 0,
            name: String::new(),
            active_count: 1,
            lookup_count: 2,
            matched_count: 3,
        }]),
        MpReply::TableFeatures(vec![table_features(0)]),
        MpReply::PortStats(vec![PortStats {
            port_no: 1,
            rx_packets: 1,
            rx_dropped: u64::MAX,
            duration_sec: 9,
            ..PortStats::default()
        }]),
        MpReply::PortDesc(vec![port(1), port(2), port(OFPP_LOCAL)]),
        MpReply::Queue,
        MpReply::Group(vec![GroupStats {
            group_id: 1,
            ref_count: 2,
            packet_count: 3,
            byte_count: 4,
            duration_sec: 5,
            duration_nsec: 6,
            buckets: vec![(1, 2), (3, 4)],
        }]),
        MpReply::GroupDesc(vec![GroupDesc {
            group_type: GroupType::Select,
            group_id: 1,
            buckets: buckets(),
            selection: None,
        }]),
        MpReply::GroupFeatures(GroupFeatures {
            types: 0xf,
            capabilities: 0x5,
            max_groups: [1, 2, 3, 4],
            actions: [5, 6, 7, 8],
        }),
        MpReply::Meter(vec![MeterStats {
            meter_id: 1,
            flow_count: 2,
            packet_in_count: 3,
            byte_in_count: 4,
            duration_sec: 5,
            duration_nsec: 6,
            bands: vec![(7, 8)],
        }]),
        MpReply::MeterConfig(vec![MeterConfig {
            flags: meter_flags::KBPS,
            meter_id: 1,
            bands: bands(),
        }]),
        MpReply::MeterFeatures(MeterFeatures {
            max_meter: 100,
            band_types: 6,
            capabilities: 0xf,
            max_bands: 4,
            max_color: 0,
        }),
    ];
    let mut msgs = vec![
        Msg::Hello { versions: 0x12 },
        Msg::Error {
            err: OfError::BAD_FIELD,
            data: vec![4, 14, 0, 8, 0, 0, 0, 1],
        },
        Msg::EchoRequest(vec![1, 2, 3]),
        Msg::EchoReply(vec![]),
        Msg::FeaturesRequest,
        Msg::FeaturesReply(SwitchFeatures {
            datapath_id: 0x0000_be8b_b40e_c14f,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0x4f,
            ports: vec![],
        }),
        Msg::GetConfigRequest,
        Msg::GetConfigReply(SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        }),
        Msg::SetConfig(SwitchConfig {
            flags: 1,
            miss_send_len: OFPCML_NO_BUFFER,
        }),
        Msg::PacketIn(PacketIn {
            buffer_id: header::NO_BUFFER,
            total_len: 60,
            reason: 1,
            table_id: 2,
            cookie: 3,
            in_port: 4,
            metadata: 0,
            data: vec![0xff; 60],
            ..Default::default()
        }),
        Msg::PacketIn(PacketIn {
            buffer_id: header::NO_BUFFER,
            total_len: 1500,
            reason: 0,
            table_id: 0,
            cookie: u64::MAX,
            in_port: OFPP_LOCAL,
            metadata: 0x1234,
            data: vec![1; 128],
            ..Default::default()
        }),
        Msg::FlowRemoved(FlowRemoved {
            cookie: 1,
            priority: 2,
            reason: 3,
            table_id: 4,
            duration_sec: 5,
            duration_nsec: 6,
            idle_timeout: 7,
            hard_timeout: 8,
            packet_count: 9,
            byte_count: 10,
            matcher: tcp_match(),
        }),
        Msg::PortStatus(PortStatus {
            reason: 2,
            desc: port(7),
        }),
        Msg::PacketOut(PacketOut {
            buffer_id: header::NO_BUFFER,
            in_port: OFPP_CONTROLLER,
            actions: all_actions(),
            data: vec![0xab; 64],
        }),
        Msg::FlowMod(flow_mod.clone()),
        Msg::FlowMod(FlowMod {
            command: FlowModCommand::DeleteStrict,
            matcher: Match::CATCHALL,
            instructions: Instructions::default(),
            ..flow_mod.clone()
        }),
        Msg::BundleControl(BundleCtrl {
            bundle_id: 7,
            typ: BundleCtrlType::CommitRequest,
            flags: bundle_flags::ATOMIC | bundle_flags::ORDERED,
        }),
        Msg::BundleAdd(BundleAdd {
            bundle_id: 7,
            flags: bundle_flags::ORDERED,
            msg: Box::new(Msg::FlowMod(FlowMod {
                instructions: Instructions::apply(vec![Action::Output {
                    port: 1,
                    max_len: 0,
                }]),
                ..flow_mod.clone()
            })),
        }),
        Msg::FlowMod(FlowMod {
            command: FlowModCommand::Modify,
            instructions: Instructions::apply(vec![]),
            ..flow_mod
        }),
        Msg::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::FastFailover,
            group_id: 5,
            buckets: buckets(),
            selection: None,
        }),
        Msg::GroupMod(GroupMod {
            command: GroupModCommand::Delete,
            group_type: GroupType::All,
            group_id: OFPG_ALL,
            buckets: vec![],
            selection: None,
        }),
        Msg::PortMod(PortMod {
            port_no: 1,
            hw_addr: [1, 2, 3, 4, 5, 6],
            config: port_config::PORT_DOWN,
            mask: port_config::PORT_DOWN,
            advertise: 0,
        }),
        Msg::TableMod {
            table_id: OFPTT_ALL,
            config: 3,
        },
        Msg::BarrierRequest,
        Msg::BarrierReply,
        Msg::RoleRequest(RoleMsg {
            role: 2,
            generation_id: 77,
        }),
        Msg::RoleReply(RoleMsg {
            role: 3,
            generation_id: u64::MAX,
        }),
        Msg::GetAsyncRequest,
        Msg::GetAsyncReply(AsyncConfig {
            packet_in_mask: [7, 0],
            port_status_mask: [7, 7],
            flow_removed_mask: [15, 0],
            ..AsyncConfig::NONE
        }),
        Msg::SetAsync(AsyncConfig {
            packet_in_mask: [1, 2],
            port_status_mask: [3, 4],
            flow_removed_mask: [5, 6],
            ..AsyncConfig::NONE
        }),
        Msg::MeterMod(MeterMod {
            command: MeterModCommand::Add,
            flags: meter_flags::KBPS | meter_flags::BURST,
            meter_id: 1,
            bands: bands(),
        }),
        Msg::MeterMod(MeterMod {
            command: MeterModCommand::Delete,
            flags: 0,
            meter_id: OFPM_ALL,
            bands: vec![],
        }),
        Msg::NxSetPacketInFormat(1),
        Msg::NxFlowModTableId(true),
        Msg::NxSetControllerId(42),
        Msg::NxCtFlushZone(0xfffe),
    ];
    msgs.extend(
        reqs.drain(..)
            .map(|body| Msg::MultipartRequest { flags: 0, body }),
    );
    msgs.extend(
        replies
            .into_iter()
            .map(|body| Msg::MultipartReply { flags: 0, body }),
    );
    msgs
}

#[test]
fn roundtrip_every_message() {
    for msg in every_msg() {
        let bytes = enc(&msg);
        assert_eq!(bytes[0], OFP13_VERSION);
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            bytes.len()
        );
        assert_eq!(
            u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            0x1234_5678
        );
        let back = dec(&bytes).unwrap_or_else(|e| panic!("{msg:?}: {e}"));
        assert_eq!(back, msg);
        // Through the crate entry points too.
        let (h, m) = crate::decode(&bytes).unwrap();
        assert_eq!((h.xid, m), (0x1234_5678, msg));
    }
}

#[test]
fn truncations_and_bad_lengths_error() {
    // Every shorter length field, and every byte flipped to 0xff / 0x00,
    // either decodes or errors: never panics.
    for msg in every_msg() {
        let bytes = enc(&msg);
        for n in 8..bytes.len() {
            let mut b = bytes[..n].to_vec();
            b[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            if let Ok(m) = dec(&b) {
                // Only messages with open-ended trailing data may lose bytes.
                assert!(
                    matches!(
                        m,
                        Msg::EchoRequest(_)
                            | Msg::EchoReply(_)
                            | Msg::Error { .. }
                            | Msg::Hello { .. }
                            | Msg::PacketIn(_)
                            | Msg::PacketOut(_)
                            | Msg::FlowMod(_)
                            | Msg::GroupMod(_)
                            | Msg::MeterMod(_)
                            | Msg::MultipartRequest { .. }
                            | Msg::MultipartReply { .. }
                    ),
                    "{msg:?} cut to {n}: {m:?}"
                );
            }
        }
        for i in 8..bytes.len() {
            for v in [0x00, 0xff, 0x07] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = dec(&b);
            }
        }
    }
}

#[test]
fn specific_errors() {
    let e = |b: &[u8]| dec(b).unwrap_err().err;
    // Unknown type, queue config request.
    assert_eq!(
        e(&[4, 22, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
        OfError::BAD_TYPE
    );
    assert_eq!(e(&[4, 99, 0, 8, 0, 0, 0, 1]), OfError::BAD_TYPE);
    // Fixed-size messages with extra bytes / short.
    assert_eq!(e(&[4, 20, 0, 9, 0, 0, 0, 1, 0]), OfError::BAD_LEN);
    assert_eq!(e(&[4, 9, 0, 10, 0, 0, 0, 1, 0, 0]), OfError::BAD_LEN);
    // Experimenter: unknown experimenter, unknown Nicira subtype, and
    // NXT_SET_FLOW_FORMAT (OpenFlow 1.0 only).
    assert_eq!(
        e(&[4, 4, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 16]),
        OfError::BAD_EXPERIMENTER
    );
    assert_eq!(
        e(&[4, 4, 0, 20, 0, 0, 0, 1, 0, 0, 0x23, 0x20, 0, 0, 0, 12, 0, 0, 0, 2]),
        OfError::BAD_EXP_TYPE
    );
    let mut out = Vec::new();
    assert!(encode(&Msg::NxSetFlowFormat(2), 1, &mut out).is_err());
    assert!(out.is_empty());
    // Multipart: unknown type, experimenter, Nicira flows in 1.3.
    assert_eq!(
        e(&[4, 18, 0, 16, 0, 0, 0, 1, 0, 99, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_MULTIPART
    );
    assert_eq!(
        e(&[4, 18, 0, 16, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_EXPERIMENTER
    );
    for body in [
        MpRequest::NxFlow(stats_req()),
        MpRequest::NxAggregate(stats_req()),
    ] {
        let r = encode(&Msg::MultipartRequest { flags: 0, body }, 1, &mut out);
        assert!(matches!(r, Err(EncodeError::Unsupported(_))));
    }
    let r = encode(
        &Msg::MultipartReply {
            flags: 0,
            body: MpReply::NxFlow(vec![]),
        },
        1,
        &mut out,
    );
    assert!(matches!(r, Err(EncodeError::Unsupported(_))));
    assert!(out.is_empty());

    // Flow-mod with a bad command, a standard match, a bad match length,
    // and bad actions and instructions.
    let fm = enc(&every_msg()
        .into_iter()
        .find(|m| matches!(m, Msg::FlowMod(_)))
        .unwrap());
    let mut b = fm.clone();
    b[25] = 9;
    assert_eq!(e(&b), OfError::BAD_COMMAND);
    let mut b = fm.clone();
    b[49] = 0;
    assert_eq!(e(&b), OfError::BAD_MATCH_TYPE);
    let mut b = fm.clone();
    b[50..52].copy_from_slice(&[0xff, 0xf0]);
    assert_eq!(e(&b), OfError::BAD_MATCH_LEN);
    let ins_at = 48 + usize::from(u16::from_be_bytes([fm[50], fm[51]])).next_multiple_of(8);
    // First instruction is METER (type 6, len 8): make it unknown, odd,
    // experimenter, too long.
    assert_eq!(&fm[ins_at..ins_at + 4], &[0, 6, 0, 8]);
    let mut b = fm.clone();
    b[ins_at + 1] = 77;
    assert_eq!(e(&b), OfError::UNKNOWN_INST);
    let mut b = fm.clone();
    b[ins_at..ins_at + 2].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(e(&b), OfError::BAD_INST_EXPERIMENTER);
    let mut b = fm.clone();
    b[ins_at + 3] = 12;
    assert_eq!(e(&b), OfError::BAD_INST_LEN);
    let mut b = fm.clone();
    b[ins_at + 2] = 0xff;
    assert_eq!(e(&b), OfError::BAD_INST_LEN);
    // Duplicate instruction: two METERs.
    let mut b = fm.clone();
    b[ins_at + 8..ins_at + 12].copy_from_slice(&[0, 6, 0, 8]);
    b.truncate(ins_at + 16);
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
    assert_eq!(e(&b), OfError::UNSUP_INST);

    // Actions.
    let act_err = |a: &[u8]| decode_actions(a).unwrap_err().err;
    assert_eq!(
        act_err(&[0, 11, 0, 8, 0, 0, 0, 0]),
        OfError::BAD_ACTION_TYPE
    ); // COPY_TTL_OUT
       // MPLS (1.3.5 §7.2.5): decoded; push_mpls refuses other EtherTypes.
    assert_eq!(
        decode_actions(&[0, 15, 0, 8, 9, 0, 0, 0]).unwrap(),
        vec![Action::SetMplsTtl(9)]
    );
    assert_eq!(
        decode_actions(&[0, 19, 0, 8, 0x88, 0x47, 0, 0, 0, 20, 0, 8, 8, 0, 0, 0]).unwrap(),
        vec![Action::PushMpls(0x8847), Action::PopMpls(0x0800)]
    );
    assert_eq!(
        act_err(&[0, 19, 0, 8, 0x08, 0x00, 0, 0]),
        OfError::BAD_ACTION_ARGUMENT
    );
    assert_eq!(
        act_err(&[0, 16, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_ACTION_LEN
    );
    assert_eq!(act_err(&[0, 0, 0, 8, 0, 0, 0, 1]), OfError::BAD_ACTION_LEN);
    assert_eq!(act_err(&[0, 0, 0, 17, 0, 0, 0, 1]), OfError::BAD_ACTION_LEN);
    assert_eq!(act_err(&[0, 0, 0, 0, 0, 0, 0, 1]), OfError::BAD_ACTION_LEN);
    assert_eq!(act_err(&[0, 0, 0, 16, 0, 0, 0, 1]), OfError::BAD_ACTION_LEN);
    assert_eq!(act_err(&[0, 18, 0]), OfError::BAD_ACTION_LEN);
    assert_eq!(
        act_err(&[0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_OUT_PORT
    );
    assert_eq!(
        act_err(&[0, 17, 0, 8, 0x08, 0, 0, 0]),
        OfError::BAD_ACTION_ARGUMENT
    );
    assert_eq!(
        act_err(&[0xff, 0xff, 0, 16, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_ACTION_EXPERIMENTER
    );
    assert_eq!(
        act_err(&[0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 99, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_ACTION_EXP_TYPE
    );
    // set_field: unknown OXM, masked.
    assert_eq!(
        act_err(&[0, 25, 0, 16, 0x80, 0, 0x7e, 4, 0, 0, 0, 1, 0, 0, 0, 0]),
        OfError::BAD_SET_TYPE
    );
    assert_eq!(
        act_err(&[0, 25, 0, 16, 0x80, 0, 0x0d, 4, 0x10, 1, 0x1f, 0xff, 0, 0, 0, 0]),
        OfError::BAD_SET_ARGUMENT
    );
    // NXAST_RESUBMIT ignores the table byte; NXAST_RESUBMIT_TABLE keeps it.
    let a = decode_actions(&[
        0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 1, 0xff, 0xf8, 5, 0, 0, 0,
    ])
    .unwrap();
    assert_eq!(
        a,
        vec![Action::Resubmit {
            in_port: OFPP_IN_PORT,
            table: 0xff
        }]
    );
    let mut out = Vec::new();
    assert!(put_action13(
        &mut out,
        &Action::Resubmit {
            in_port: 0x1_0000,
            table: 1
        }
    )
    .is_err());

    // Buckets, bands, group/meter commands.
    assert_eq!(
        e(&[4, 15, 0, 16, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0, 0, 1]),
        OfError::BAD_GROUP_COMMAND
    );
    assert_eq!(
        e(&[4, 15, 0, 16, 0, 0, 0, 1, 0, 0, 9, 0, 0, 0, 0, 1]),
        OfError::BAD_GROUP_TYPE
    );
    assert_eq!(
        e(&[4, 15, 0, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0]),
        OfError::BAD_BUCKET
    );
    assert_eq!(
        e(&[4, 29, 0, 16, 0, 0, 0, 1, 0, 3, 0, 0, 0, 0, 0, 1]),
        OfError::METER_BAD_COMMAND
    );
    let mut mm = vec![4, 29, 0, 32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    mm.extend_from_slice(&[0xff, 0xff, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(e(&mm), OfError::METER_BAD_BAND);

    // Packet-in without in_port.
    let mut pi = vec![4, 10, 0, 34, 0, 0, 0, 1];
    pi.extend_from_slice(&[0xff; 4]);
    pi.extend_from_slice(&[0, 0, 0, 0]);
    pi.extend_from_slice(&[0; 8]);
    pi.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0, 0, 0]);
    assert_eq!(e(&pi), OfError::BAD_PORT);
}

#[test]
fn packet_in_ignores_other_pipeline_fields() {
    // in_port, NXM_NX_REG0 and tun_id: only in_port and metadata are kept.
    let mut tlvs = vec![0x80, 0, 0, 4, 0, 0, 0, 7];
    tlvs.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 9]);
    tlvs.extend_from_slice(&[0x80, 0, 0x4c, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
    tlvs.extend_from_slice(&[0x80, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 3]);
    let mlen = 4 + tlvs.len();
    let mut b = vec![4, 10, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0];
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0, 1]);
    b.extend_from_slice(&(mlen as u16).to_be_bytes());
    b.extend_from_slice(&tlvs);
    b.resize(b.len() + (mlen.next_multiple_of(8) - mlen), 0);
    b.extend_from_slice(&[0, 0, 1, 2, 3]);
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
    let Msg::PacketIn(p) = dec(&b).unwrap() else {
        panic!()
    };
    assert_eq!((p.in_port, p.metadata, p.data), (7, 3, vec![1, 2, 3]));
}

#[test]
fn multipart_split() {
    // ~1000 flows of ~200 bytes each: several messages, REPLY_MORE on all
    // but the last, each at most 65535 bytes, items in order.
    let flows: Vec<FlowStats> = (0..1000).map(flow_stats).collect();
    let msg = Msg::MultipartReply {
        flags: 0,
        body: MpReply::Flow(flows.clone()),
    };
    let mut out = Vec::new();
    encode(&msg, 9, &mut out).unwrap();
    let mut rest = &out[..];
    let mut got = Vec::new();
    let mut n = 0;
    while !rest.is_empty() {
        let len = header::frame_len(rest).unwrap();
        assert!(len <= 65535);
        let Msg::MultipartReply { flags, body } = dec(&rest[..len]).unwrap() else {
            panic!()
        };
        rest = &rest[len..];
        assert_eq!(flags & OFPMPF_MORE != 0, !rest.is_empty());
        let MpReply::Flow(v) = body else { panic!() };
        got.extend(v);
        n += 1;
    }
    assert!(n >= 3, "{n} messages");
    assert_eq!(got, flows);

    // 254 tables of features, as ovs-ofctl asks for.
    let tables: Vec<TableFeatures> = (0..254).map(table_features).collect();
    let msg = Msg::MultipartReply {
        flags: 0,
        body: MpReply::TableFeatures(tables.clone()),
    };
    out.clear();
    encode(&msg, 9, &mut out).unwrap();
    let mut rest = &out[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let len = header::frame_len(rest).unwrap();
        let Msg::MultipartReply { flags, body } = dec(&rest[..len]).unwrap() else {
            panic!()
        };
        rest = &rest[len..];
        assert_eq!(flags & OFPMPF_MORE != 0, !rest.is_empty());
        let MpReply::TableFeatures(v) = body else {
            panic!()
        };
        got.extend(v);
    }
    assert_eq!(got, tables);

    // A message that cannot fit: nothing is appended.
    out.clear();
    let big = Msg::PacketOut(PacketOut {
        buffer_id: header::NO_BUFFER,
        in_port: OFPP_CONTROLLER,
        actions: vec![],
        data: vec![0; 70_000],
    });
    assert!(encode(&big, 1, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn wire_layouts() {
    // FEATURES_REPLY: 32 bytes; PORT_STATUS 80; PORT_MOD 40; ROLE 24;
    // ASYNC 32; TABLE_MOD 16; flow stats request body 40 (catch-all).
    let sizes = [
        (
            Msg::FeaturesReply(SwitchFeatures {
                datapath_id: 1,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0,
                ports: vec![],
            }),
            32,
        ),
        (
            Msg::PortStatus(PortStatus {
                reason: 0,
                desc: port(1),
            }),
            80,
        ),
        (
            Msg::RoleRequest(RoleMsg {
                role: 1,
                generation_id: 0,
            }),
            24,
        ),
        (
            Msg::TableMod {
                table_id: 0,
                config: 0,
            },
            16,
        ),
        (
            Msg::MultipartRequest {
                flags: 0,
                body: MpRequest::Flow(FlowStatsRequest {
                    matcher: Match::CATCHALL,
                    ..stats_req()
                }),
            },
            56,
        ),
    ];
    for (m, n) in sizes {
        assert_eq!(enc(&m).len(), n, "{m:?}");
    }
    // OUTPUT action bytes (§7.2.5).
    let mut out = Vec::new();
    put_action13(
        &mut out,
        &Action::Output {
            port: OFPP_CONTROLLER,
            max_len: 0xffff,
        },
    )
    .unwrap();
    assert_eq!(
        out,
        [0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xff, 0, 0, 0, 0, 0, 0]
    );
    // set_field vlan_vid=0x1014: 4 + 6 bytes padded to 16.
    out.clear();
    put_action13(
        &mut out,
        &Action::SetField {
            field: OxmField::VlanVid,
            value: 0x1014,
        },
    )
    .unwrap();
    assert_eq!(
        out,
        [0, 25, 0, 16, 0x80, 0, 0x0c, 2, 0x10, 0x14, 0, 0, 0, 0, 0, 0]
    );
}

fn arb_action() -> impl Strategy<Value = Action> {
    use OxmField::*;
    let writable = [
        EthDst, EthSrc, VlanPcp, IpDscp, IpEcn, IpTtl, Ipv4Src, Ipv4Dst, TcpSrc, TcpDst, UdpSrc,
        UdpDst, SctpSrc, SctpDst, Icmpv4Type, Icmpv4Code, ArpOp, ArpSpa, ArpTpa, Ipv6Src, Ipv6Dst,
        Icmpv6Type, Icmpv6Code, Metadata, TcpFlags,
    ];
    prop_oneof![
        (1u32..0xff00, any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        any::<u32>().prop_map(Action::Group),
        any::<u32>().prop_map(Action::SetQueue),
        prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Action::PushVlan),
        Just(Action::PopVlan),
        Just(Action::DecNwTtl),
        any::<u8>().prop_map(Action::SetNwTtl),
        (0usize..writable.len(), any::<u128>()).prop_map(move |(i, v)| {
            let field = writable[i];
            let bits = field.bits();
            let value = if bits >= 128 {
                v
            } else {
                v & ((1u128 << bits) - 1)
            };
            Action::SetField { field, value }
        }),
        (0u16..0x1000).prop_map(|v| Action::SetField {
            field: VlanVid,
            value: 0x1000 | u128::from(v)
        }),
        (0u32..0xff00, any::<u8>())
            .prop_map(|(in_port, table)| Action::Resubmit { in_port, table }),
    ]
}

fn arb_instructions() -> impl Strategy<Value = Instructions> {
    let acts = || proptest::option::of(proptest::collection::vec(arb_action(), 0..6));
    (
        proptest::option::of(any::<u32>()),
        acts(),
        any::<bool>(),
        acts(),
        proptest::option::of(any::<(u64, u64)>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(
            |(meter, apply, clear, write, write_metadata, goto_table)| Instructions {
                meter,
                apply,
                clear,
                write,
                write_metadata,
                goto_table,
            },
        )
}

proptest! {
    #[test]
    fn flow_mod_and_stats_roundtrip(
        m in crate::oxm::tests::arb_match(),
        ins in arb_instructions(),
        nums in any::<(u64, u64, u8, u16, u16, u16, u32, u32)>(),
        cmd in 0u8..5,
    ) {
        let (cookie, cookie_mask, table_id, idle_timeout, hard_timeout, priority, out_port, out_group) = nums;
        let fm = Msg::FlowMod(FlowMod {
            cookie,
            cookie_mask,
            table_id,
            command: crate::flow_mod::decode_command(cmd).unwrap(),
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id: header::NO_BUFFER,
            out_port,
            out_group,
            flags: priority & 0x1f,
            matcher: m,
            instructions: ins.clone(),
        });
        prop_assert_eq!(dec(&enc(&fm)).unwrap(), fm);
        let fs = Msg::MultipartReply {
            flags: 0,
            body: MpReply::Flow(vec![FlowStats {
                matcher: m,
                instructions: ins,
                ..flow_stats(priority)
            }]),
        };
        prop_assert_eq!(dec(&enc(&fs)).unwrap(), fs);
    }

    #[test]
    fn decode_never_panics(typ in 0u8..32, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut b = vec![4, typ, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&body);
        let n = b.len() as u16;
        b[2..4].copy_from_slice(&n.to_be_bytes());
        let _ = dec(&b);
    }

    #[test]
    fn multipart_decode_never_panics(
        req in any::<bool>(),
        mptype in 0u16..16,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut b = vec![4, if req { 18 } else { 19 }, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&mptype.to_be_bytes());
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&body);
        let n = b.len() as u16;
        b[2..4].copy_from_slice(&n.to_be_bytes());
        let _ = dec(&b);
    }

    #[test]
    fn actions_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_actions(&body);
        let _ = decode_instructions(&body, OFP13_VERSION);
    }
}

fn put_action13(out: &mut Vec<u8>, a: &Action) -> Result<(), EncodeError> {
    put_action(out, a, OFP13_VERSION)
}

/// `NXT_CT_FLUSH_ZONE` as ovn-controller sends it (OVS
/// `add_ct_flush_zone`, `struct nx_zone_id`): 6 zero bytes, then the zone;
/// nonzero reserved bytes are refused (OVS: `NXBRC_MUST_BE_ZERO`).
#[test]
fn nx_ct_flush_zone_wire() {
    let mut b = vec![
        0x06, 0x04, 0x00, 0x18, 0, 0, 0x02, 0x87, // OF1.5 experimenter, xid 0x287
        0x00, 0x00, 0x23, 0x20, 0, 0, 0, 29, // NX_VENDOR_ID, NXT_CT_FLUSH_ZONE
        0, 0, 0, 0, 0, 0, 0x00, 0x01, // zero[6], zone_id 1
    ];
    assert_eq!(dec(&b).unwrap(), Msg::NxCtFlushZone(1));
    b[17] = 1;
    assert_eq!(dec(&b).unwrap_err().err, OfError::BAD_REQUEST_EPERM);
    b.pop();
    b[3] = 0x17;
    assert!(dec(&b).is_err(), "a short nx_zone_id is refused");
}
