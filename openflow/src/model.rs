//! Version-independent OpenFlow messages.
//!
//! Numbering follows OpenFlow 1.3 (ONF TS-006 1.3.5) wherever versions
//! differ: 32-bit port numbers (`OFPP_*` of 1.3; the 1.0 codec maps
//! `0xff00..` to `0xffffff00..`), 1.3 flow-mod flags, 1.3 error codes, 1.3
//! port config/state bits. OpenFlow 1.0 actions decode into the same
//! [`Action`]s (`set_dl_src` becomes `SetField(EthSrc)`, `strip_vlan`
//! becomes `PopVlan`, …).
//!
//! Matches are [`Match`]: a datapath [`FlowKey`] and [`FlowMask`] (so a
//! flow table compiles into megaflows without conversion) plus the
//! pipeline's `metadata` register, which is not a packet field.

use xennet_datapath::{FlowKey, FlowMask};

/// `OFPP_MAX`: highest ordinary port number.
pub const OFPP_MAX: u32 = 0xffff_ff00;
/// `OFPP_IN_PORT`: send back out the input port.
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
/// `OFPP_TABLE`: run the packet through the flow table (packet-out only).
pub const OFPP_TABLE: u32 = 0xffff_fff9;
/// `OFPP_NORMAL`: the NORMAL L2 switch.
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
/// `OFPP_FLOOD`: every port but the input port and those with NO_FLOOD.
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
/// `OFPP_ALL`: every port but the input port.
pub const OFPP_ALL: u32 = 0xffff_fffc;
/// `OFPP_CONTROLLER`: send to the controllers as packet-in.
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
/// `OFPP_LOCAL`: the bridge's local port.
pub const OFPP_LOCAL: u32 = 0xffff_fffe;
/// `OFPP_ANY`: wildcard (out_port of delete / stats requests).
pub const OFPP_ANY: u32 = 0xffff_ffff;
/// `OFPG_ANY`: wildcard group.
pub const OFPG_ANY: u32 = 0xffff_ffff;
/// `OFPG_ALL`: every group (group delete / stats).
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// `OFPTT_ALL`: every table (flow delete / stats).
pub const OFPTT_ALL: u8 = 0xff;
/// `OFPM_ALL`: every meter (meter delete / stats).
pub const OFPM_ALL: u32 = 0xffff_ffff;
/// `OFPCML_NO_BUFFER`: send the whole packet to the controller.
pub const OFPCML_NO_BUFFER: u16 = 0xffff;

/// Flow-mod flags (1.3 `ofp_flow_mod_flags`).
pub mod flow_flags {
    /// `OFPFF_SEND_FLOW_REM`.
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    /// `OFPFF_CHECK_OVERLAP`.
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    /// `OFPFF_RESET_COUNTS`.
    pub const RESET_COUNTS: u16 = 1 << 2;
    /// `OFPFF_NO_PKT_COUNTS`.
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    /// `OFPFF_NO_BYT_COUNTS`.
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
}

/// Port config bits (1.3 `ofp_port_config`).
pub mod port_config {
    /// `OFPPC_PORT_DOWN`.
    pub const PORT_DOWN: u32 = 1 << 0;
    /// `OFPPC_NO_RECV`.
    pub const NO_RECV: u32 = 1 << 2;
    /// `OFPPC_NO_FWD`.
    pub const NO_FWD: u32 = 1 << 5;
    /// `OFPPC_NO_PACKET_IN`.
    pub const NO_PACKET_IN: u32 = 1 << 6;
    /// OpenFlow 1.0 `OFPPC_NO_FLOOD` (kept in the model, dropped in 1.3).
    pub const NO_FLOOD: u32 = 1 << 4;
    /// The bits OpenFlow 1.1+ defines (OVS `OFPPC11_ALL`): all but
    /// `NO_FLOOD`, which the 1.3 codec leaves out of port descriptions.
    pub const ALL_1_3: u32 = PORT_DOWN | NO_RECV | NO_FWD | NO_PACKET_IN;
}

/// Port state bits (1.3 `ofp_port_state`).
pub mod port_state {
    /// `OFPPS_LINK_DOWN`.
    pub const LINK_DOWN: u32 = 1 << 0;
    /// `OFPPS_BLOCKED`.
    pub const BLOCKED: u32 = 1 << 1;
    /// `OFPPS_LIVE`.
    pub const LIVE: u32 = 1 << 2;
}

/// A match: a key and mask over every field the pipeline sees (packet
/// headers, `metadata`, registers, tunnel and conntrack fields).
///
/// Field encodings are those of [`FlowKey`]: `vlan_tci` carries the
/// `OFPVID_PRESENT` (0x1000) bit, IPv4 addresses sit in the low 32 bits of
/// `nw_src`/`nw_dst`, ARP SPA/TPA in `nw_src`/`nw_dst` and the opcode in
/// `nw_proto`, ICMP type/code in `tp_src`/`tp_dst`, DSCP in the top six
/// bits of `nw_tos` and ECN in the bottom two. `key` bits outside `mask`
/// are always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Match {
    /// Field values (zero outside `mask`).
    pub key: FlowKey,
    /// Significant bits.
    pub mask: FlowMask,
}

impl Match {
    /// The match-everything match.
    pub const CATCHALL: Match = Match {
        key: FlowKey {
            words: [0; xennet_datapath::flow::N_WORDS],
        },
        mask: FlowMask::CATCHALL,
    };
}

/// A field an action can set or a match can name (OXM names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OxmField {
    /// `OXM_OF_IN_PORT` (32 bits).
    InPort,
    /// `OXM_OF_METADATA` (64 bits).
    Metadata,
    /// `OXM_OF_ETH_DST`.
    EthDst,
    /// `OXM_OF_ETH_SRC`.
    EthSrc,
    /// `OXM_OF_ETH_TYPE`.
    EthType,
    /// `OXM_OF_VLAN_VID` (13 bits with `OFPVID_PRESENT`).
    VlanVid,
    /// `OXM_OF_VLAN_PCP` (3 bits).
    VlanPcp,
    /// `OXM_OF_IP_DSCP` (6 bits).
    IpDscp,
    /// `OXM_OF_IP_ECN` (2 bits).
    IpEcn,
    /// `OXM_OF_IP_PROTO`.
    IpProto,
    /// `NXM_NX_IP_TTL`.
    IpTtl,
    /// `NXM_NX_IP_FRAG`.
    IpFrag,
    /// `OXM_OF_IPV4_SRC`.
    Ipv4Src,
    /// `OXM_OF_IPV4_DST`.
    Ipv4Dst,
    /// `OXM_OF_TCP_SRC`.
    TcpSrc,
    /// `OXM_OF_TCP_DST`.
    TcpDst,
    /// `OXM_OF_UDP_SRC`.
    UdpSrc,
    /// `OXM_OF_UDP_DST`.
    UdpDst,
    /// `OXM_OF_SCTP_SRC`.
    SctpSrc,
    /// `OXM_OF_SCTP_DST`.
    SctpDst,
    /// `OXM_OF_ICMPV4_TYPE`.
    Icmpv4Type,
    /// `OXM_OF_ICMPV4_CODE`.
    Icmpv4Code,
    /// `OXM_OF_ARP_OP`.
    ArpOp,
    /// `OXM_OF_ARP_SPA`.
    ArpSpa,
    /// `OXM_OF_ARP_TPA`.
    ArpTpa,
    /// `OXM_OF_IPV6_SRC`.
    Ipv6Src,
    /// `OXM_OF_IPV6_DST`.
    Ipv6Dst,
    /// `OXM_OF_ICMPV6_TYPE`.
    Icmpv6Type,
    /// `OXM_OF_ICMPV6_CODE`.
    Icmpv6Code,
    /// `OXM_OF_TCP_FLAGS` (OpenFlow 1.5 / `NXM_NX_TCP_FLAGS`).
    TcpFlags,
    /// `NXM_NX_REG<n>` (32 bits, n < 16).
    Reg(u8),
    /// `OXM_OF_PKT_REG<k>` (`xreg<k>`, 64 bits, k < 8): `reg<2k>` high.
    Xreg(u8),
    /// `NXM_NX_XXREG<k>` (`xxreg<k>`, 128 bits, k < 4).
    Xxreg(u8),
    /// `NXM_NX_TUN_ID` / `OXM_OF_TUNNEL_ID` (64 bits).
    TunId,
    /// `NXM_NX_TUN_IPV4_SRC`.
    TunIpv4Src,
    /// `NXM_NX_TUN_IPV4_DST`.
    TunIpv4Dst,
    /// `NXM_NX_TUN_IPV6_SRC`.
    TunIpv6Src,
    /// `NXM_NX_TUN_IPV6_DST`.
    TunIpv6Dst,
    /// `NXM_NX_TUN_FLAGS` (1 bit used: OAM).
    TunFlags,
    /// `NXM_NX_PKT_MARK` (32 bits).
    PktMark,
    /// `NXM_NX_CT_STATE` (32 bits, `CS_*`).
    CtState,
    /// `NXM_NX_CT_ZONE` (16 bits).
    CtZone,
    /// `NXM_NX_CT_MARK` (32 bits).
    CtMark,
    /// `NXM_NX_CT_LABEL` (128 bits).
    CtLabel,
    /// `NXM_NX_CT_NW_PROTO`.
    CtNwProto,
    /// `NXM_NX_CT_NW_SRC`.
    CtNwSrc,
    /// `NXM_NX_CT_NW_DST`.
    CtNwDst,
    /// `NXM_NX_CT_IPV6_SRC`.
    CtIpv6Src,
    /// `NXM_NX_CT_IPV6_DST`.
    CtIpv6Dst,
    /// `NXM_NX_CT_TP_SRC`.
    CtTpSrc,
    /// `NXM_NX_CT_TP_DST`.
    CtTpDst,
    /// `NXM_NX_DP_HASH` (32 bits).
    DpHash,
    /// `NXM_NX_RECIRC_ID` (32 bits).
    RecircId,
    /// `NXM_NX_CONJ_ID` (32 bits).
    ConjId,
    /// `OXM_OF_ARP_SHA`.
    ArpSha,
    /// `OXM_OF_ARP_THA`.
    ArpTha,
    /// `OXM_OF_IPV6_ND_TARGET`.
    NdTarget,
    /// `OXM_OF_IPV6_ND_SLL`.
    NdSll,
    /// `OXM_OF_IPV6_ND_TLL`.
    NdTll,
    /// `ERICOXM_OF_ICMPV6_ND_RESERVED` (32 bits).
    NdReserved,
    /// `ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE` (8 bits).
    NdOptionsType,
    /// `OXM_OF_IPV6_FLABEL` (20 bits).
    Ipv6Label,
    /// `OXM_OF_MPLS_LABEL` (20 bits).
    MplsLabel,
    /// `OXM_OF_MPLS_TC` (3 bits).
    MplsTc,
    /// `OXM_OF_MPLS_BOS` (1 bit).
    MplsBos,
    /// `NXM_NX_MPLS_TTL` (8 bits).
    MplsTtl,
    /// `NXM_NX_TUN_METADATA<index>` (`tun_metadata<index>`, index < 64):
    /// a Geneve option through the bridge's TLV map
    /// ([`crate::tlv::TlvMap`]), which put its `len` bytes at `offset` of
    /// the key's option space when the field was decoded (so the field
    /// knows where it lives; a mapping flows use cannot be deleted).
    TunMetadata {
        /// The field index.
        index: u8,
        /// Byte offset in the option space (a multiple of 4).
        offset: u8,
        /// Mapped length in bytes (a multiple of 4, at most 16).
        len: u8,
    },
}

/// One action (1.3 `ofp_action_*`, 1.0 actions mapped onto them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `OFPAT_OUTPUT`: port (may be `OFPP_*`), and the bytes to send to
    /// the controller when `port` is `OFPP_CONTROLLER`.
    Output {
        /// Output port.
        port: u32,
        /// Bytes of the packet in packet-ins (`OFPCML_NO_BUFFER` = all).
        max_len: u16,
    },
    /// `OFPAT_GROUP`.
    Group(u32),
    /// `OFPAT_SET_QUEUE` (1.0 `OFPAT_ENQUEUE` decodes to this plus an output).
    SetQueue(u32),
    /// `OFPAT_PUSH_VLAN` with this TPID (0x8100 or 0x88a8).
    PushVlan(u16),
    /// `OFPAT_POP_VLAN` (1.0 `OFPAT_STRIP_VLAN`).
    PopVlan,
    /// OpenFlow 1.0 `OFPAT10_SET_VLAN_VID` / `OFPAT10_SET_VLAN_PCP`
    /// (`mod_vlan_vid`, `mod_vlan_pcp`; OVS `OFPACT_SET_VLAN_VID/PCP` with
    /// `push_vlan_if_needed`): set the outer tag's VID or PCP, pushing an
    /// 802.1Q tag (the other part 0) when the packet has none, where a
    /// set-field does nothing on an untagged packet.
    SetVlan10 {
        /// `VlanVid` (the value carries `OFPVID_PRESENT`) or `VlanPcp`.
        field: OxmField,
        /// The VID (with 0x1000) or PCP, right-aligned.
        value: u128,
        /// Whether the rule's match (after the actions before this one)
        /// has a tag (OVS `flow_has_vlan`, set by
        /// [`note_vlan_presence`]): OpenFlow 1.1+ encodes this action as a
        /// set-field, after an `OFPAT_PUSH_VLAN` 0x8100 when false.
        flow_has_vlan: bool,
    },
    /// `OFPAT_SET_FIELD`: set a whole field. VlanVid values carry
    /// `OFPVID_PRESENT` as OXM does.
    SetField {
        /// The field.
        field: OxmField,
        /// The value, right-aligned.
        value: u128,
    },
    /// `OFPAT_DEC_NW_TTL`.
    DecNwTtl,
    /// `OFPAT_SET_NW_TTL`.
    SetNwTtl(u8),
    /// `OFPAT_PUSH_MPLS` with this EtherType (0x8847 or 0x8848).
    PushMpls(u16),
    /// `OFPAT_POP_MPLS`: the EtherType the frame gets (of what the outer
    /// label stack entry carried).
    PopMpls(u16),
    /// `OFPAT_SET_MPLS_TTL`.
    SetMplsTtl(u8),
    /// `OFPAT_DEC_MPLS_TTL`.
    DecMplsTtl,
    /// Nicira `NXAST_RESUBMIT(_TABLE)`: look the packet up again with
    /// `in_port` replaced (unless `OFPP_IN_PORT`) in `table` (0xff = the
    /// current table).
    Resubmit {
        /// Input port for the lookup, or `OFPP_IN_PORT`.
        in_port: u32,
        /// Table, or 0xff for the current one.
        table: u8,
    },
    /// `load:value->dst` (Nicira `NXAST_REG_LOAD`; a masked set-field in
    /// OpenFlow 1.5): write `value` into the bits `dst` names.
    Load {
        /// The bits written.
        dst: Subfield,
        /// The value, right-aligned (at most `dst.n_bits` wide).
        value: u128,
    },
    /// `move:src->dst` (`NXAST_REG_MOVE`, OpenFlow 1.5 `OFPAT_COPY_FIELD`):
    /// copy bits; `src.n_bits == dst.n_bits`.
    Move {
        /// The bits read.
        src: Subfield,
        /// The bits written.
        dst: Subfield,
    },
    /// `note:..` (`NXAST_NOTE`): the bytes after the action's subtype,
    /// padding included as Open vSwitch keeps it; does nothing.
    Note(Vec<u8>),
    /// `exit` (`NXAST_EXIT`): stop translating; the action set is not run.
    Exit,
    /// `ct_clear` (`NXAST_CT_CLEAR`): clear the connection-tracking state.
    CtClear,
    /// `conjunction(id,k/n)` (`NXAST_CONJUNCTION`, OVS `ovs-actions(7)`
    /// "Conjunctive match"): the flow is clause `clause` (0-based; the
    /// text form prints `clause + 1`) of the `n_clauses`-clause
    /// conjunctive match `id`. Only with other `conjunction`s and `note`s;
    /// `2 <= n_clauses <= 64`, `clause < n_clauses`.
    Conjunction {
        /// The conjunction id (matched by `conj_id`).
        id: u32,
        /// The clause, 0-based.
        clause: u8,
        /// The number of clauses.
        n_clauses: u8,
    },
    /// `dec_ttl(id,..)` (`NXAST_DEC_TTL_CNT_IDS`): as `DecNwTtl`, and the
    /// invalid-TTL packet-in goes to the controllers with these ids.
    DecTtlIds(Vec<u16>),
    /// `set_tunnel:id` / `set_tunnel64:id` (`NXAST_SET_TUNNEL` 2 with a
    /// 32-bit id, `NXAST_SET_TUNNEL64` 9).
    SetTunnel {
        /// The tunnel id.
        id: u64,
        /// Sent as `NXAST_SET_TUNNEL64` even when the id fits 32 bits.
        wide: bool,
    },
    /// `output:src` (`NXAST_OUTPUT_REG` 15 / `NXAST_OUTPUT_REG2` 32):
    /// output to the port number held in `src`.
    OutputReg {
        /// Where the port number is.
        src: Subfield,
        /// Bytes to send when the port is `OFPP_CONTROLLER`.
        max_len: u16,
    },
    /// `push:src` (`NXAST_STACK_PUSH`).
    StackPush(Subfield),
    /// `pop:dst` (`NXAST_STACK_POP`).
    StackPop(Subfield),
    /// `clone(actions)` (`NXAST_CLONE`): run the actions on a copy of the
    /// packet, then continue with the original.
    Clone(Vec<Action>),
    /// `controller(reason=..,max_len=..,id=..,userdata=..,pause)`
    /// (`NXAST_CONTROLLER` 20, `NXAST_CONTROLLER2` 37). The default form
    /// (reason `action`, id 0, nothing else) is `Output` to
    /// `OFPP_CONTROLLER`.
    Controller(Box<Controller>),
    /// `resubmit(port,table,ct)` (`NXAST_RESUBMIT_TABLE_CT` 44): as
    /// `Resubmit`, with the packet's 5-tuple swapped for the connection's
    /// original direction.
    ResubmitCt {
        /// Input port for the lookup, or `OFPP_IN_PORT`.
        in_port: u32,
        /// Table, or 0xff for the current one.
        table: u8,
    },
    /// `ct(...)` (`NXAST_CT` 35): send the packet through connection
    /// tracking.
    Ct(Box<Ct>),
    /// `nat(...)` (`NXAST_NAT` 36), only inside `ct`: the action's bytes
    /// after its subtype (`nx_action_nat` from its padding on), checked as
    /// OVS `decode_NXAST_RAW_NAT` checks them and sent back unchanged.
    Nat(Vec<u8>),
    /// `multipath(fields,basis,algorithm,n_links,arg,dst)`
    /// (`NXAST_MULTIPATH` 10): hash the flow, pick a link, store it.
    Multipath(Box<Multipath>),
    /// `bundle(..)` / `bundle_load(..)` (`NXAST_BUNDLE` 12 /
    /// `NXAST_BUNDLE_LOAD` 13): pick a live member port and output to it,
    /// or store it.
    Bundle(Box<Bundle>),
    /// `learn(..)` (`NXAST_LEARN` 16, `NXAST_LEARN2` 45): add or refresh
    /// a flow built from the packet's fields (OVS `ofpact_learn`).
    Learn(Box<Learn>),
    /// `fin_timeout(idle_timeout=..,hard_timeout=..)` (`NXAST_FIN_TIMEOUT`
    /// 19): when the rule matches a TCP packet with FIN or RST, lower its
    /// idle and hard timeouts (seconds) to these, where nonzero and
    /// shorter.
    FinTimeout {
        /// New idle timeout in seconds (0: unchanged).
        idle: u16,
        /// New hard timeout in seconds (0: unchanged).
        hard: u16,
    },
    /// `check_pkt_larger(len)->dst` (`NXAST_CHECK_PKT_LARGER` 49): write
    /// 1 into the one-bit `dst` if the packet is longer than `len` bytes,
    /// else 0.
    CheckPktLarger {
        /// Length in bytes (the whole frame, as OVS `check_pkt_len`).
        len: u16,
        /// The one-bit destination.
        dst: Subfield,
    },
    /// `sample(..)` (`NXAST_SAMPLE` 29): IPFIX/sFlow per-flow sampling.
    Sample {
        /// Packets sampled per 65535 (1..=65535).
        probability: u16,
        /// `collector_set_id`.
        collector_set_id: u32,
        /// `obs_domain_id`.
        obs_domain_id: u32,
        /// `obs_point_id`.
        obs_point_id: u32,
    },
}

/// `NXAST_CT` arguments (OVS `struct ofpact_conntrack`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ct {
    /// `NX_CT_F_COMMIT` (1), `NX_CT_F_FORCE` (2).
    pub flags: u16,
    /// The zone: a number, or the bits of a field that hold it.
    pub zone: CtZone,
    /// Table to continue in after tracking (0xff: none).
    pub recirc_table: u8,
    /// Application-layer gateway (port number: 21 ftp, 69 tftp; 0 none).
    pub alg: u16,
    /// Nested actions: `nat`, and loads/set-fields of `ct_mark` and
    /// `ct_label`.
    pub actions: Vec<Action>,
}

/// `NXAST_LEARN(2)` arguments (OVS `struct ofpact_learn`, `lib/learn.c`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Learn {
    /// Idle timeout of the learned flow in seconds (0: none).
    pub idle_timeout: u16,
    /// Hard timeout of the learned flow in seconds (0: none).
    pub hard_timeout: u16,
    /// Priority of the learned flow.
    pub priority: u16,
    /// Cookie of the learned flow.
    pub cookie: u64,
    /// `NX_LEARN_F_*`: send_flow_rem 1, delete_learned 2
    /// (`write_result`, 4, is [`Learn::result_dst`]).
    pub flags: u16,
    /// Table the flow is learned into (never 0xff).
    pub table_id: u8,
    /// `fin_idle_timeout` in seconds (0: none).
    pub fin_idle_timeout: u16,
    /// `fin_hard_timeout` in seconds (0: none).
    pub fin_hard_timeout: u16,
    /// Most flows with this cookie in the table (0: no limit;
    /// `NXAST_LEARN2` only).
    pub limit: u32,
    /// Where 1 (learned) or 0 (limit reached) goes
    /// (`NX_LEARN_F_WRITE_RESULT`, `NXAST_LEARN2` only): one bit.
    pub result_dst: Option<Subfield>,
    /// Sent as `NXAST_LEARN2` even without a limit or result.
    pub v2: bool,
    /// The flow-mod specs, in order.
    pub specs: Vec<LearnSpec>,
}

/// `NX_LEARN_F_SEND_FLOW_REM`.
pub const NX_LEARN_F_SEND_FLOW_REM: u16 = 1;
/// `NX_LEARN_F_DELETE_LEARNED`.
pub const NX_LEARN_F_DELETE_LEARNED: u16 = 2;
/// `NX_LEARN_F_WRITE_RESULT`.
pub const NX_LEARN_F_WRITE_RESULT: u16 = 4;

/// One `flow_mod_spec` of a learn action: `n_bits` bits from `src` to
/// `dst`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LearnSpec {
    /// Where the bits come from.
    pub src: LearnSrc,
    /// What they become.
    pub dst: LearnDst,
    /// Number of bits (1..=2047 on the wire; at most 128 here, the widest
    /// field).
    pub n_bits: u16,
}

/// The source of a [`LearnSpec`] (`NX_LEARN_SRC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LearnSrc {
    /// `NX_LEARN_SRC_FIELD`: bits of the packet's flow.
    Field(Subfield),
    /// `NX_LEARN_SRC_IMMEDIATE`: a constant, right-aligned.
    Imm(u128),
}

/// The destination of a [`LearnSpec`] (`NX_LEARN_DST_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LearnDst {
    /// `NX_LEARN_DST_MATCH`: the learned flow matches these bits.
    Match(Subfield),
    /// `NX_LEARN_DST_LOAD`: the learned flow loads these bits.
    Load(Subfield),
    /// `NX_LEARN_DST_OUTPUT`: the learned flow outputs to the port in the
    /// source bits (a field source only).
    Output,
}

/// `NXAST_MULTIPATH` arguments (OVS `struct ofpact_multipath`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Multipath {
    /// `NX_HASH_FIELDS_*` (0 eth_src, 1 symmetric_l4, 2 symmetric_l3l4,
    /// 3 symmetric_l3l4+udp, 4 nw_src, 5 nw_dst, 6 symmetric_l3).
    pub fields: u16,
    /// Hash basis.
    pub basis: u16,
    /// `NX_MP_ALG_*` (0 modulo_n, 1 hash_threshold, 2 hrw, 3 iter_hash).
    pub algorithm: u16,
    /// Number of links minus one.
    pub max_link: u16,
    /// Algorithm argument (iter_hash: the modulus).
    pub arg: u32,
    /// Where the link number goes.
    pub dst: Subfield,
}

/// `NXAST_BUNDLE(_LOAD)` arguments (OVS `struct ofpact_bundle`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bundle {
    /// `NX_BD_ALG_*` (0 active_backup, 1 hrw).
    pub algorithm: u16,
    /// `NX_HASH_FIELDS_*`, as [`Multipath::fields`].
    pub fields: u16,
    /// Hash basis.
    pub basis: u16,
    /// Member ports (OpenFlow 1.0 numbers, at most 2048).
    pub members: Vec<u16>,
    /// `bundle_load`: where the chosen port goes (`None`: `bundle`,
    /// output to it).
    pub dst: Option<Subfield>,
}

/// A conntrack zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtZone {
    /// `zone=N`.
    Imm(u16),
    /// `zone=FIELD[..]`.
    Field(Subfield),
}

/// `NXAST_CONTROLLER(2)` arguments (OVS `struct ofpact_controller`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Controller {
    /// Bytes of the packet to send (65535: all).
    pub max_len: u16,
    /// Packet-in reason (`OFPR_*`).
    pub reason: u8,
    /// Connection id of the controller to send to (0: all).
    pub controller_id: u16,
    /// Opaque bytes for the `NXT_PACKET_IN2` userdata.
    pub userdata: Vec<u8>,
    /// Pause the pipeline (continuation in `NXT_PACKET_IN2`).
    pub pause: bool,
    /// Controller meter (`NX_CTLR_NO_METER` = 0xffffffff: none).
    pub meter_id: u32,
    /// Sent as `NXAST_CONTROLLER2` even without its extra properties.
    pub v2: bool,
}

/// A field as Open vSwitch's `mf_field` names it in subfield actions
/// (`load`, `move`, `output:reg`, `push`/`pop`): the model fields, plus the
/// three NXM fields that are not one model field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MfField {
    /// A model field (its OXM, or NXM where it has only that, header).
    Oxm(OxmField),
    /// `NXM_OF_VLAN_TCI` (`vlan_tci`, 16 bits, CFI = tag present).
    VlanTci,
    /// `NXM_OF_IP_TOS` (`nw_tos`, 8 bits: DSCP in the high 6).
    IpTos,
    /// `NXM_OF_IN_PORT` (16-bit OpenFlow 1.0 port number).
    InPort16,
}

/// Bits `ofs .. ofs + n_bits` of a field (OVS `struct mf_subfield`;
/// `NXM_NX_REG0[0..3]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subfield {
    /// The field.
    pub field: MfField,
    /// Offset of the lowest bit.
    pub ofs: u16,
    /// Number of bits (at least 1).
    pub n_bits: u16,
}

/// A flow's instructions (1.3 §5.9), in execution order. OpenFlow 1.0 flows
/// only ever have `apply`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Instructions {
    /// `OFPIT_METER`.
    pub meter: Option<u32>,
    /// `OFPIT_APPLY_ACTIONS`.
    pub apply: Option<Vec<Action>>,
    /// `OFPIT_CLEAR_ACTIONS`.
    pub clear: bool,
    /// `OFPIT_WRITE_ACTIONS`.
    pub write: Option<Vec<Action>>,
    /// `OFPIT_WRITE_METADATA`: `(value, mask)`.
    pub write_metadata: Option<(u64, u64)>,
    /// `OFPIT_GOTO_TABLE`.
    pub goto_table: Option<u8>,
}

impl Instructions {
    /// Instructions that only apply `actions` (the OpenFlow 1.0 shape).
    pub fn apply(actions: Vec<Action>) -> Instructions {
        Instructions {
            apply: Some(actions),
            ..Instructions::default()
        }
    }
}

/// `ofp_flow_mod_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    /// `OFPFC_ADD`.
    Add,
    /// `OFPFC_MODIFY`.
    Modify,
    /// `OFPFC_MODIFY_STRICT`.
    ModifyStrict,
    /// `OFPFC_DELETE`.
    Delete,
    /// `OFPFC_DELETE_STRICT`.
    DeleteStrict,
}

impl FlowModCommand {
    /// From its wire number (`OFPFC_*`, the same in 1.0 and 1.3); `None`
    /// for an unknown one.
    pub fn from_wire(c: u8) -> Option<FlowModCommand> {
        Some(match c {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => return None,
        })
    }

    /// Its wire number (`OFPFC_*`).
    pub fn to_wire(self) -> u8 {
        match self {
            FlowModCommand::Add => 0,
            FlowModCommand::Modify => 1,
            FlowModCommand::ModifyStrict => 2,
            FlowModCommand::Delete => 3,
            FlowModCommand::DeleteStrict => 4,
        }
    }
}

/// `OFPT_FLOW_MOD` (1.3 §7.3.4.1; 1.0 and `NXT_FLOW_MOD` decode to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMod {
    /// Cookie (add) or cookie to match (modify/delete, under `cookie_mask`).
    pub cookie: u64,
    /// Cookie mask for modify/delete (0 = any).
    pub cookie_mask: u64,
    /// Table, or `OFPTT_ALL` for delete.
    pub table_id: u8,
    /// Command.
    pub command: FlowModCommand,
    /// Idle timeout in seconds (0 = none).
    pub idle_timeout: u16,
    /// Hard timeout in seconds (0 = none).
    pub hard_timeout: u16,
    /// Priority (OpenFlow 1.0 exact-match flows are given 0xffff by the
    /// codec, as the 1.0 spec says).
    pub priority: u16,
    /// Buffered packet to apply to, or `NO_BUFFER`.
    pub buffer_id: u32,
    /// Delete filter: only flows that output here (`OFPP_ANY` = any).
    pub out_port: u32,
    /// Delete filter: only flows that use this group (`OFPG_ANY` = any).
    pub out_group: u32,
    /// [`flow_flags`].
    pub flags: u16,
    /// The match.
    pub matcher: Match,
    /// The instructions.
    pub instructions: Instructions,
}

impl FlowMod {
    /// A plain `OFPFC_ADD` of `matcher` at `priority` in `table_id` with
    /// `instructions`: cookie 0, no timeouts, no flags, no buffered
    /// packet (`ovs-ofctl add-flow`'s defaults).
    pub fn add(table_id: u8, priority: u16, matcher: Match, instructions: Instructions) -> FlowMod {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority,
            buffer_id: crate::header::NO_BUFFER,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            flags: 0,
            matcher,
            instructions,
        }
    }
}

/// `ofp_group_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// `OFPGT_ALL`.
    All,
    /// `OFPGT_SELECT`.
    Select,
    /// `OFPGT_INDIRECT`.
    Indirect,
    /// `OFPGT_FF`.
    FastFailover,
}

/// `ofp_bucket`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Weight (select groups).
    pub weight: u16,
    /// Port whose liveness gates the bucket (fast failover), or `OFPP_ANY`.
    pub watch_port: u32,
    /// Group whose liveness gates the bucket, or `OFPG_ANY`.
    pub watch_group: u32,
    /// Actions.
    pub actions: Vec<Action>,
}

/// `ofp_group_mod_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupModCommand {
    /// `OFPGC_ADD`.
    Add,
    /// `OFPGC_MODIFY`.
    Modify,
    /// `OFPGC_DELETE`.
    Delete,
}

/// `OFPT_GROUP_MOD` (1.3 §7.3.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMod {
    /// Command.
    pub command: GroupModCommand,
    /// Type.
    pub group_type: GroupType,
    /// Group id (`OFPG_ALL` for delete-all).
    pub group_id: u32,
    /// Buckets.
    pub buckets: Vec<Bucket>,
    /// Select groups: OVS's selection method (OpenFlow 1.5 only); `None`
    /// for OVS's default.
    pub selection: Option<SelectionMethod>,
}

/// Open vSwitch's selection method of a select group: the Netronome
/// experimenter group property `NTRT_SELECTION_METHOD` (experimenter
/// `NTR_VENDOR_ID` 0x0000154d, OVS `include/openflow/netronome-ext.h`,
/// OpenFlow 1.5 group-mods and group descriptions), as `ovs-ofctl -O
/// OpenFlow15 add-group br0 "group_id=1,type=select,selection_method=hash,
/// fields(ip_src,tcp_dst),bucket=..."` sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionMethod {
    /// The method.
    pub kind: SelectionKind,
    /// `selection_method_param`: the hash basis for `hash` (OVS hashes it
    /// with `hash_uint64`), passed on for `dp_hash`.
    pub param: u64,
    /// `hash`: the fields hashed, each with the mask of its bits that
    /// count, in the order given (`ovs-ofctl` sends OVS's field order).
    /// Empty: OVS's default hash.
    pub fields: Vec<HashField>,
}

/// `selection_method=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectionKind {
    /// `hash`: a hash of [`SelectionMethod::fields`] picks the bucket
    /// (OVS `pick_hash_fields_select_group`).
    Hash,
    /// `dp_hash`: the datapath's hash of the packet picks the bucket from
    /// a table shared out by weight (OVS `pick_dp_hash_select_group`).
    DpHash,
}

impl SelectionKind {
    /// The name on the wire and in `ovs-ofctl`.
    pub fn name(self) -> &'static str {
        match self {
            SelectionKind::Hash => "hash",
            SelectionKind::DpHash => "dp_hash",
        }
    }
}

/// One field of a `hash` selection method: the field, the mask of the
/// bits hashed (wire encoding, as the OXM entry carries it) and its
/// width on the wire in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashField {
    /// The field.
    pub field: MfField,
    /// Bits hashed (wire encoding).
    pub mask: u128,
    /// Width on the wire (OVS `mf->n_bytes`).
    pub n_bytes: u8,
}

/// `ofp_meter_mod_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterModCommand {
    /// `OFPMC_ADD`.
    Add,
    /// `OFPMC_MODIFY`.
    Modify,
    /// `OFPMC_DELETE`.
    Delete,
}

/// Meter flags (`ofp_meter_flags`).
pub mod meter_flags {
    /// `OFPMF_KBPS`: rates in kbit/s.
    pub const KBPS: u16 = 1 << 0;
    /// `OFPMF_PKTPS`: rates in packets/s.
    pub const PKTPS: u16 = 1 << 1;
    /// `OFPMF_BURST`: use the bands' burst sizes.
    pub const BURST: u16 = 1 << 2;
    /// `OFPMF_STATS`: collect statistics.
    pub const STATS: u16 = 1 << 3;
}

/// What a meter band does when its rate is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterBandKind {
    /// `OFPMBT_DROP`.
    Drop,
    /// `OFPMBT_DSCP_REMARK`: raise the drop precedence by `prec_level`.
    DscpRemark {
        /// Precedence levels to add.
        prec_level: u8,
    },
}

/// `ofp_meter_band_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeterBand {
    /// Kind.
    pub kind: MeterBandKind,
    /// Rate in kbit/s or packets/s (per the meter's flags).
    pub rate: u32,
    /// Burst in kbit or packets.
    pub burst_size: u32,
}

/// `OFPT_METER_MOD` (1.3 §7.3.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterMod {
    /// Command.
    pub command: MeterModCommand,
    /// [`meter_flags`].
    pub flags: u16,
    /// Meter id (`OFPM_ALL` for delete-all).
    pub meter_id: u32,
    /// Bands.
    pub bands: Vec<MeterBand>,
}

/// `ofp_port` (1.3 §7.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDesc {
    /// Port number.
    pub port_no: u32,
    /// MAC address.
    pub hw_addr: [u8; 6],
    /// Name (at most 15 bytes on the wire).
    pub name: String,
    /// [`port_config`] bits.
    pub config: u32,
    /// [`port_state`] bits.
    pub state: u32,
    /// `ofp_port_features` current.
    pub curr: u32,
    /// Advertised features.
    pub advertised: u32,
    /// Supported features.
    pub supported: u32,
    /// Peer features.
    pub peer: u32,
    /// Current speed in kbit/s.
    pub curr_speed: u32,
    /// Maximum speed in kbit/s.
    pub max_speed: u32,
}

/// `OFPT_FEATURES_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchFeatures {
    /// Datapath id.
    pub datapath_id: u64,
    /// Packets the switch can buffer (xennet: 0, never buffers).
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// Auxiliary connection id (1.3).
    pub auxiliary_id: u8,
    /// `ofp_capabilities` (1.3 numbering).
    pub capabilities: u32,
    /// 1.0 only: the ports (1.3 uses PORT_DESC).
    pub ports: Vec<PortDesc>,
}

/// `ofp_switch_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchConfig {
    /// `ofp_config_flags` (fragment handling).
    pub flags: u16,
    /// Bytes of table-miss packets sent to the controller.
    pub miss_send_len: u16,
}

/// `OFPT_PACKET_IN`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketIn {
    /// Always `NO_BUFFER` from xennet.
    pub buffer_id: u32,
    /// Full length of the packet in bytes.
    pub total_len: u16,
    /// `ofp_packet_in_reason`: 0 no match (table-miss), 1 action, 2 invalid TTL.
    pub reason: u8,
    /// Table that sent it.
    pub table_id: u8,
    /// Cookie of the flow that sent it (all ones when unknown).
    pub cookie: u64,
    /// Input port.
    pub in_port: u32,
    /// Metadata register at the time (sent when nonzero).
    pub metadata: u64,
    /// The packet, cut to `max_len`.
    pub data: Vec<u8>,
    /// The other pipeline fields at the time with a nonzero value
    /// (registers, tunnel metadata, packet mark; OVS `flow_metadata`),
    /// sent only in `NXT_PACKET_IN2` (`NXPINT_METADATA`).
    pub pipeline: Vec<(OxmField, u128)>,
    /// The `controller` action's userdata, sent only in `NXT_PACKET_IN2`
    /// (`NXPINT_USERDATA`).
    pub userdata: Vec<u8>,
    /// The continuation of a `controller(pause)` (`NXPINT_CONTINUATION`),
    /// sent only in `NXT_PACKET_IN2`; what `NXT_RESUME` hands back.
    pub continuation: Option<Box<crate::packet_in2::continuation::Continuation>>,
}

/// `OFPT_FLOW_REMOVED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRemoved {
    /// Cookie.
    pub cookie: u64,
    /// Priority.
    pub priority: u16,
    /// 0 idle timeout, 1 hard timeout, 2 delete, 3 group delete, 4 meter delete.
    pub reason: u8,
    /// Table.
    pub table_id: u8,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Idle timeout (s).
    pub idle_timeout: u16,
    /// Hard timeout (s).
    pub hard_timeout: u16,
    /// Packets.
    pub packet_count: u64,
    /// Bytes.
    pub byte_count: u64,
    /// The flow's match.
    pub matcher: Match,
}

/// `OFPT_PACKET_OUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketOut {
    /// Buffer id (xennet only accepts `NO_BUFFER`).
    pub buffer_id: u32,
    /// Input port for the actions (`OFPP_CONTROLLER` or a real port).
    pub in_port: u32,
    /// Actions.
    pub actions: Vec<Action>,
    /// The packet.
    pub data: Vec<u8>,
}

/// `OFPPR_ADD`: a port was added.
pub const OFPPR_ADD: u8 = 0;
/// `OFPPR_DELETE`: a port was removed.
pub const OFPPR_DELETE: u8 = 1;
/// `OFPPR_MODIFY`: a port changed.
pub const OFPPR_MODIFY: u8 = 2;

/// `OFPT_PORT_STATUS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStatus {
    /// 0 add, 1 delete, 2 modify.
    pub reason: u8,
    /// The port.
    pub desc: PortDesc,
}

/// `OFPT_PORT_MOD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMod {
    /// Port.
    pub port_no: u32,
    /// Must match the port's address.
    pub hw_addr: [u8; 6],
    /// New [`port_config`] bits under `mask`.
    pub config: u32,
    /// Bits of `config` to change.
    pub mask: u32,
    /// Features to advertise (0 = unchanged).
    pub advertise: u32,
}

/// Controller role (1.3 `ofp_controller_role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleMsg {
    /// 0 no change, 1 equal, 2 master, 3 slave.
    pub role: u32,
    /// Generation id (master election).
    pub generation_id: u64,
}

/// `OFPT_GET_ASYNC_REPLY` / `OFPT_SET_ASYNC`: which asynchronous messages
/// a connection gets; index 0 for master/equal, 1 for slave; bit n = reason n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncConfig {
    /// Packet-in reasons.
    pub packet_in_mask: [u32; 2],
    /// Port-status reasons.
    pub port_status_mask: [u32; 2],
    /// Flow-removed reasons.
    pub flow_removed_mask: [u32; 2],
    /// Role-status reasons (1.4+ only; xennet sends no role status).
    pub role_status_mask: [u32; 2],
    /// Table-status reasons (1.4+ only; xennet sends no table status).
    pub table_status_mask: [u32; 2],
    /// Request-forward reasons (1.4+ only; xennet forwards no requests).
    pub requestforward_mask: [u32; 2],
}

impl AsyncConfig {
    /// Everything off.
    pub const NONE: AsyncConfig = AsyncConfig {
        packet_in_mask: [0; 2],
        port_status_mask: [0; 2],
        flow_removed_mask: [0; 2],
        role_status_mask: [0; 2],
        table_status_mask: [0; 2],
        requestforward_mask: [0; 2],
    };

    /// The masks in OpenFlow 1.4 property order (§7.3.10,
    /// `ofp_async_config_prop_type`): property type `2k` is slave entry
    /// `[1]` of pair `k`, type `2k + 1` the master entry `[0]`.
    pub fn pairs_mut(&mut self) -> [&mut [u32; 2]; 6] {
        [
            &mut self.packet_in_mask,
            &mut self.port_status_mask,
            &mut self.flow_removed_mask,
            &mut self.role_status_mask,
            &mut self.table_status_mask,
            &mut self.requestforward_mask,
        ]
    }
}

/// One OpenFlow 1.4 async-config property (§7.3.10): `type` 0..=11
/// (`OFPACPT_PACKET_IN_SLAVE` … `OFPACPT_REQUESTFORWARD_MASTER`) and its
/// reason mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncProp {
    /// Property type.
    pub typ: u16,
    /// Reason bits.
    pub mask: u32,
}

/// Filter of a flow or aggregate statistics request (also `NXST_FLOW`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStatsRequest {
    /// Table or `OFPTT_ALL`.
    pub table_id: u8,
    /// Only flows that output to this port (`OFPP_ANY` = any).
    pub out_port: u32,
    /// Only flows that use this group (`OFPG_ANY` = any).
    pub out_group: u32,
    /// Cookie to match under `cookie_mask`.
    pub cookie: u64,
    /// Cookie mask.
    pub cookie_mask: u64,
    /// Only flows whose match is within this one (non-strict).
    pub matcher: Match,
}

/// `ofp_flow_stats` (also `nx_flow_stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStats {
    /// Table.
    pub table_id: u8,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Priority.
    pub priority: u16,
    /// Idle timeout (s).
    pub idle_timeout: u16,
    /// Hard timeout (s).
    pub hard_timeout: u16,
    /// [`flow_flags`].
    pub flags: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// Seconds since last matched (Nicira `idle_age`), if known.
    pub idle_age: Option<u16>,
    /// Seconds since added or modified (Nicira `hard_age`), if known.
    pub hard_age: Option<u16>,
    /// Match.
    pub matcher: Match,
    /// Instructions.
    pub instructions: Instructions,
}

/// `ofp_table_stats` (1.3 shape; the 1.0 encoder adds name and limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// Table.
    pub table_id: u8,
    /// Name (1.0 `ofp_table_stats` only; empty when decoded from 1.3, whose
    /// table stats carry none; the 1.0 encoder writes `table<N>` for empty).
    pub name: String,
    /// Flows in the table.
    pub active_count: u32,
    /// Packets looked up.
    pub lookup_count: u64,
    /// Packets that matched a flow.
    pub matched_count: u64,
}

/// `ofp_port_stats` (`u64::MAX` = unavailable).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Port.
    pub port_no: u32,
    /// Received packets.
    pub rx_packets: u64,
    /// Transmitted packets.
    pub tx_packets: u64,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Transmitted bytes.
    pub tx_bytes: u64,
    /// Receive drops.
    pub rx_dropped: u64,
    /// Transmit drops.
    pub tx_dropped: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Frame alignment errors.
    pub rx_frame_err: u64,
    /// Overruns.
    pub rx_over_err: u64,
    /// CRC errors.
    pub rx_crc_err: u64,
    /// Collisions.
    pub collisions: u64,
    /// Seconds the port has existed.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
}

/// `ofp_group_stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// Group.
    pub group_id: u32,
    /// Flows that use it.
    pub ref_count: u32,
    /// Packets.
    pub packet_count: u64,
    /// Bytes.
    pub byte_count: u64,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Per bucket `(packets, bytes)`.
    pub buckets: Vec<(u64, u64)>,
}

/// `ofp_group_desc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDesc {
    /// Type.
    pub group_type: GroupType,
    /// Group.
    pub group_id: u32,
    /// Buckets.
    pub buckets: Vec<Bucket>,
    /// OVS's selection method (OpenFlow 1.5 descriptions carry it).
    pub selection: Option<SelectionMethod>,
}

/// `ofp_group_features`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFeatures {
    /// Bitmap of supported group types.
    pub types: u32,
    /// `ofp_group_capabilities`.
    pub capabilities: u32,
    /// Maximum groups per type (all, select, indirect, ff).
    pub max_groups: [u32; 4],
    /// Bitmap of supported actions per type.
    pub actions: [u32; 4],
}

/// `ofp_meter_stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterStats {
    /// Meter.
    pub meter_id: u32,
    /// Flows that use it.
    pub flow_count: u32,
    /// Packets in.
    pub packet_in_count: u64,
    /// Bytes in.
    pub byte_in_count: u64,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Per band `(packets, bytes)` that exceeded it.
    pub bands: Vec<(u64, u64)>,
}

/// `ofp_meter_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterConfig {
    /// [`meter_flags`].
    pub flags: u16,
    /// Meter.
    pub meter_id: u32,
    /// Bands.
    pub bands: Vec<MeterBand>,
}

/// `ofp_meter_features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterFeatures {
    /// Maximum number of meters.
    pub max_meter: u32,
    /// Bitmap of band types (bit n = type n).
    pub band_types: u32,
    /// [`meter_flags`] supported.
    pub capabilities: u32,
    /// Maximum bands per meter.
    pub max_bands: u8,
    /// Maximum color value.
    pub max_color: u8,
}

/// `ofp_desc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    /// Manufacturer.
    pub mfr_desc: String,
    /// Hardware.
    pub hw_desc: String,
    /// Software.
    pub sw_desc: String,
    /// Serial number.
    pub serial_num: String,
    /// Datapath description.
    pub dp_desc: String,
}

/// One table-features property (1.3 §7.3.5.5.2). Ids are the wire numbers:
/// instruction types, action types, OXM headers (32-bit), table ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFeatureProp {
    /// `OFPTFPT_INSTRUCTIONS(_MISS)`.
    Instructions {
        /// The `_MISS` variant.
        miss: bool,
        /// Instruction types.
        ids: Vec<u16>,
    },
    /// `OFPTFPT_NEXT_TABLES(_MISS)`.
    NextTables {
        /// The `_MISS` variant.
        miss: bool,
        /// Table ids.
        tables: Vec<u8>,
    },
    /// `OFPTFPT_WRITE_ACTIONS(_MISS)`.
    WriteActions {
        /// The `_MISS` variant.
        miss: bool,
        /// Action types.
        ids: Vec<u16>,
    },
    /// `OFPTFPT_APPLY_ACTIONS(_MISS)`.
    ApplyActions {
        /// The `_MISS` variant.
        miss: bool,
        /// Action types.
        ids: Vec<u16>,
    },
    /// `OFPTFPT_MATCH`.
    Match(Vec<u32>),
    /// `OFPTFPT_WILDCARDS`.
    Wildcards(Vec<u32>),
    /// `OFPTFPT_WRITE_SETFIELD(_MISS)`.
    WriteSetField {
        /// The `_MISS` variant.
        miss: bool,
        /// OXM headers.
        fields: Vec<u32>,
    },
    /// `OFPTFPT_APPLY_SETFIELD(_MISS)`.
    ApplySetField {
        /// The `_MISS` variant.
        miss: bool,
        /// OXM headers.
        fields: Vec<u32>,
    },
    /// Anything else, kept raw.
    Other {
        /// Property type.
        typ: u16,
        /// Body after the 4-byte property header, unpadded.
        body: Vec<u8>,
    },
}

/// `ofp_table_features`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFeatures {
    /// Table.
    pub table_id: u8,
    /// Name (at most 31 bytes on the wire).
    pub name: String,
    /// Metadata bits the table can match.
    pub metadata_match: u64,
    /// Metadata bits the table can write.
    pub metadata_write: u64,
    /// `ofp_table_config`.
    pub config: u32,
    /// Maximum flows.
    pub max_entries: u32,
    /// Properties.
    pub properties: Vec<TableFeatureProp>,
}

/// A multipart (1.3) / stats (1.0) request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpRequest {
    /// `OFPMP_DESC`.
    Desc,
    /// `OFPMP_FLOW`.
    Flow(FlowStatsRequest),
    /// `OFPMP_AGGREGATE`.
    Aggregate(FlowStatsRequest),
    /// `OFPMP_TABLE`.
    Table,
    /// `OFPMP_TABLE_FEATURES`: empty = query; non-empty = set (every
    /// table's features, OpenFlow 1.3.5 §7.3.5.5.1; a request split with
    /// `OFPMPF_REQ_MORE` is reassembled before it is handled).
    TableFeatures(Vec<TableFeatures>),
    /// `OFPMP_PORT_STATS` for a port or `OFPP_ANY`.
    PortStats(u32),
    /// `OFPMP_PORT_DESC` for a port or `OFPP_ANY` (the filter exists on
    /// the wire from 1.5 on; earlier versions decode as `OFPP_ANY`).
    PortDesc(u32),
    /// `OFPMP_QUEUE` (xennet has no queues: empty reply).
    Queue {
        /// Port or `OFPP_ANY`.
        port_no: u32,
        /// Queue or `OFPQ_ALL`.
        queue_id: u32,
    },
    /// `OFPMP_GROUP` for a group or `OFPG_ALL`.
    Group(u32),
    /// `OFPMP_GROUP_DESC` for a group or `OFPG_ALL` (the filter exists on
    /// the wire from 1.5 on; earlier versions decode as `OFPG_ALL`).
    GroupDesc(u32),
    /// `OFPMP_GROUP_FEATURES`.
    GroupFeatures,
    /// `OFPMP_METER` for a meter or `OFPM_ALL`.
    Meter(u32),
    /// `OFPMP_METER_CONFIG` for a meter or `OFPM_ALL`.
    MeterConfig(u32),
    /// `OFPMP_METER_FEATURES`.
    MeterFeatures,
    /// Nicira `NXST_FLOW` (answered with [`MpReply::NxFlow`]).
    NxFlow(FlowStatsRequest),
    /// Nicira `NXST_AGGREGATE` (answered with [`MpReply::NxAggregate`]).
    NxAggregate(FlowStatsRequest),
}

/// A multipart / stats reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpReply {
    /// `OFPMP_DESC`.
    Desc(Desc),
    /// `OFPMP_FLOW`.
    Flow(Vec<FlowStats>),
    /// `OFPMP_AGGREGATE`: `(packets, bytes, flows)`.
    Aggregate {
        /// Packets.
        packet_count: u64,
        /// Bytes.
        byte_count: u64,
        /// Flows.
        flow_count: u32,
    },
    /// `OFPMP_TABLE`.
    Table(Vec<TableStats>),
    /// `OFPMP_TABLE_FEATURES`.
    TableFeatures(Vec<TableFeatures>),
    /// `OFPMP_PORT_STATS`.
    PortStats(Vec<PortStats>),
    /// `OFPMP_PORT_DESC`.
    PortDesc(Vec<PortDesc>),
    /// `OFPMP_QUEUE` (always empty).
    Queue,
    /// `OFPMP_GROUP`.
    Group(Vec<GroupStats>),
    /// `OFPMP_GROUP_DESC`.
    GroupDesc(Vec<GroupDesc>),
    /// `OFPMP_GROUP_FEATURES`.
    GroupFeatures(GroupFeatures),
    /// `OFPMP_METER`.
    Meter(Vec<MeterStats>),
    /// `OFPMP_METER_CONFIG`.
    MeterConfig(Vec<MeterConfig>),
    /// `OFPMP_METER_FEATURES`.
    MeterFeatures(MeterFeatures),
    /// Nicira `NXST_FLOW`.
    NxFlow(Vec<FlowStats>),
    /// Nicira `NXST_AGGREGATE`.
    NxAggregate {
        /// Packets.
        packet_count: u64,
        /// Bytes.
        byte_count: u64,
        /// Flows.
        flow_count: u32,
    },
}

/// An OpenFlow message, version independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// `OFPT_HELLO` with the sender's version bitmap.
    Hello {
        /// Bit n set = version n supported.
        versions: u32,
    },
    /// `OFPT_ERROR`.
    Error {
        /// Type and code (1.3 numbering).
        err: crate::OfError,
        /// At least the first 64 bytes of the failed request.
        data: Vec<u8>,
    },
    /// `OFPT_ECHO_REQUEST`.
    EchoRequest(Vec<u8>),
    /// `OFPT_ECHO_REPLY`.
    EchoReply(Vec<u8>),
    /// `OFPT_FEATURES_REQUEST`.
    FeaturesRequest,
    /// `OFPT_FEATURES_REPLY`.
    FeaturesReply(SwitchFeatures),
    /// `OFPT_GET_CONFIG_REQUEST`.
    GetConfigRequest,
    /// `OFPT_GET_CONFIG_REPLY`.
    GetConfigReply(SwitchConfig),
    /// `OFPT_SET_CONFIG`.
    SetConfig(SwitchConfig),
    /// `OFPT_PACKET_IN` (and Nicira `NXT_PACKET_IN` when that format is set).
    PacketIn(PacketIn),
    /// `OFPT_FLOW_REMOVED` (and `NXT_FLOW_REMOVED` under NXM).
    FlowRemoved(FlowRemoved),
    /// `OFPT_PORT_STATUS`.
    PortStatus(PortStatus),
    /// `OFPT_PACKET_OUT`.
    PacketOut(PacketOut),
    /// `OFPT_FLOW_MOD` (and `NXT_FLOW_MOD`).
    FlowMod(FlowMod),
    /// `OFPT_GROUP_MOD`.
    GroupMod(GroupMod),
    /// `OFPT_PORT_MOD`.
    PortMod(PortMod),
    /// `OFPT_TABLE_MOD`: `(table_id, config)`.
    TableMod {
        /// Table or `OFPTT_ALL`.
        table_id: u8,
        /// Config bits.
        config: u32,
    },
    /// `OFPT_MULTIPART_REQUEST` / `OFPT_STATS_REQUEST`.
    MultipartRequest {
        /// `OFPMPF_REQ_MORE` etc.
        flags: u16,
        /// Body.
        body: MpRequest,
    },
    /// `OFPT_MULTIPART_REPLY` / `OFPT_STATS_REPLY`. The encoder splits
    /// bodies beyond 64 KiB.
    MultipartReply {
        /// Flags (the encoder sets `REPLY_MORE` itself when splitting).
        flags: u16,
        /// Body.
        body: MpReply,
    },
    /// `OFPT_BARRIER_REQUEST`.
    BarrierRequest,
    /// `OFPT_BARRIER_REPLY`.
    BarrierReply,
    /// `OFPT_ROLE_REQUEST`.
    RoleRequest(RoleMsg),
    /// `OFPT_ROLE_REPLY`.
    RoleReply(RoleMsg),
    /// `OFPT_GET_ASYNC_REQUEST`.
    GetAsyncRequest,
    /// `OFPT_GET_ASYNC_REPLY`.
    GetAsyncReply(AsyncConfig),
    /// `OFPT_SET_ASYNC` setting everything (1.3).
    SetAsync(AsyncConfig),
    /// `OFPT_SET_ASYNC` in 1.4+: only the properties given change.
    SetAsyncProps(Vec<AsyncProp>),
    /// `OFPT_METER_MOD`.
    MeterMod(MeterMod),
    /// Nicira `NXT_SET_FLOW_FORMAT`: 0 = OpenFlow 1.0 match, 2 = NXM.
    NxSetFlowFormat(u32),
    /// Nicira `NXT_SET_PACKET_IN_FORMAT`: 0 = standard, 1 = NXT_PACKET_IN, 2 = NXT_PACKET_IN2.
    NxSetPacketInFormat(u32),
    /// Nicira `NXT_PACKET_IN2` (switch to controller), any version.
    NxPacketIn2(PacketIn),
    /// Nicira `NXT_RESUME` (controller to switch, any version): a paused
    /// packet-in handed back, possibly with a changed packet and pipeline
    /// fields ([`crate::packet_in2`]).
    NxResume(PacketIn),
    /// Nicira `NXT_FLOW_MOD_TABLE_ID`: whether the high byte of a 1.0
    /// flow-mod command is the table id.
    NxFlowModTableId(bool),
    /// Nicira `NXT_SET_CONTROLLER_ID`.
    NxSetControllerId(u16),
    /// Nicira `NXT_TLV_TABLE_MOD` ([`crate::tlv`]).
    NxTlvTableMod(crate::tlv::TlvTableMod),
    /// Nicira `NXT_TLV_TABLE_REQUEST`.
    NxTlvTableRequest,
    /// Nicira `NXT_TLV_TABLE_REPLY`.
    NxTlvTableReply(crate::tlv::TlvTableReply),
    /// Nicira `NXT_CT_FLUSH_ZONE`: forget the connection tracker's
    /// entries in this zone (OVS `handle_nxt_ct_flush_zone`; no reply).
    NxCtFlushZone(u16),
    /// `OFPT_BUNDLE_CONTROL` (1.4+; the ONF extension
    /// `ONFT_BUNDLE_CONTROL` in 1.3).
    BundleControl(BundleCtrl),
    /// `OFPT_BUNDLE_ADD_MESSAGE` (1.4+; `ONFT_BUNDLE_ADD_MESSAGE` in 1.3).
    BundleAdd(BundleAdd),
}

/// `ofp_bundle_ctrl_type` (OpenFlow 1.4.1 §7.3.9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundleCtrlType {
    /// `OFPBCT_OPEN_REQUEST`.
    OpenRequest,
    /// `OFPBCT_OPEN_REPLY`.
    OpenReply,
    /// `OFPBCT_CLOSE_REQUEST`.
    CloseRequest,
    /// `OFPBCT_CLOSE_REPLY`.
    CloseReply,
    /// `OFPBCT_COMMIT_REQUEST`.
    CommitRequest,
    /// `OFPBCT_COMMIT_REPLY`.
    CommitReply,
    /// `OFPBCT_DISCARD_REQUEST`.
    DiscardRequest,
    /// `OFPBCT_DISCARD_REPLY`.
    DiscardReply,
}

impl BundleCtrlType {
    const ALL: [BundleCtrlType; 8] = [
        BundleCtrlType::OpenRequest,
        BundleCtrlType::OpenReply,
        BundleCtrlType::CloseRequest,
        BundleCtrlType::CloseReply,
        BundleCtrlType::CommitRequest,
        BundleCtrlType::CommitReply,
        BundleCtrlType::DiscardRequest,
        BundleCtrlType::DiscardReply,
    ];

    /// From its wire number (`OFPBCT_*`, 0..=7); `None` for another.
    pub fn from_wire(v: u16) -> Option<BundleCtrlType> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// Its wire number.
    pub fn to_wire(self) -> u16 {
        self as u16
    }

    /// The reply to this request; `None` for a reply.
    pub fn reply(self) -> Option<BundleCtrlType> {
        let v = self.to_wire();
        (v % 2 == 0).then(|| Self::ALL[usize::from(v) + 1])
    }
}

/// Bundle flags (`ofp_bundle_flags`, OpenFlow 1.4.1 §7.3.9.1).
pub mod bundle_flags {
    /// `OFPBF_ATOMIC`: all messages or none.
    pub const ATOMIC: u16 = 1 << 0;
    /// `OFPBF_ORDERED`: in the order added.
    pub const ORDERED: u16 = 1 << 1;
}

/// `OFPT_BUNDLE_CONTROL` (`ofp_bundle_ctrl_msg`, OpenFlow 1.4.1 §7.3.9.1).
/// Properties are refused by the decoder and never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleCtrl {
    /// Bundle id, chosen by the controller.
    pub bundle_id: u32,
    /// Request or reply type.
    pub typ: BundleCtrlType,
    /// [`bundle_flags`].
    pub flags: u16,
}

/// `OFPT_BUNDLE_ADD_MESSAGE` (`ofp_bundle_add_msg`, OpenFlow 1.4.1
/// §7.3.9.6): one message for a bundle. On the wire the included
/// message carries the outer message's version and xid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleAdd {
    /// Bundle id.
    pub bundle_id: u32,
    /// [`bundle_flags`] (must equal the bundle's).
    pub flags: u16,
    /// The included message: a flow-mod, group-mod, port-mod or
    /// packet-out (what Open vSwitch accepts in bundles,
    /// `ofputil_is_bundlable`).
    pub msg: Box<Msg>,
}

/// Why a message cannot be encoded in a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The version is not one xennet speaks.
    #[error("unsupported OpenFlow version {0:#04x}")]
    Version(u8),
    /// The message or one of its parts has no form in this version.
    #[error("{0} cannot be expressed in this OpenFlow version")]
    Unsupported(&'static str),
}

/// Record in each [`Action::SetVlan10`] whether the packet has a tag at
/// that point (OVS `ofpact_check__` for `OFPACT_SET_VLAN_VID/PCP`):
/// `tagged` is whether the match requires a tag (CFI); a push or a 1.0
/// VLAN set makes one, a pop removes it (OVS tracks the outer tag only).
/// The actions nested in `clone` and `ct` start from the state where
/// they are and leave it as it was after them (OVS `check_subactions`:
/// `ofpacts_check` restores the tags it changed).
pub fn note_vlan_presence(acts: &mut [Action], mut tagged: bool) {
    for a in acts {
        match a {
            Action::PushVlan(_) => tagged = true,
            Action::PopVlan => tagged = false,
            Action::SetVlan10 { flow_has_vlan, .. } => {
                *flow_has_vlan = tagged;
                tagged = true;
            }
            Action::Clone(inner) => note_vlan_presence(inner, tagged),
            Action::Ct(ct) => note_vlan_presence(&mut ct.actions, tagged),
            _ => {}
        }
    }
}
