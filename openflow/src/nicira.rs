//! Nicira (Open vSwitch) extension numbers shared by the OpenFlow 1.0
//! vendor and 1.3 experimenter codecs (OVS `include/openflow/nicira-ext.h`,
//! `lib/ofp-msgs.h`, `lib/ofp-actions.c`).

/// `NX_VENDOR_ID` (Nicira).
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// `NXT_ROLE_REQUEST`.
pub const NXT_ROLE_REQUEST: u32 = 10;
/// `NXT_ROLE_REPLY`.
pub const NXT_ROLE_REPLY: u32 = 11;
/// `NXT_SET_FLOW_FORMAT`.
pub const NXT_SET_FLOW_FORMAT: u32 = 12;
/// `NXT_FLOW_MOD`.
pub const NXT_FLOW_MOD: u32 = 13;
/// `NXT_FLOW_REMOVED`.
pub const NXT_FLOW_REMOVED: u32 = 14;
/// `NXT_FLOW_MOD_TABLE_ID`.
pub const NXT_FLOW_MOD_TABLE_ID: u32 = 15;
/// `NXT_SET_PACKET_IN_FORMAT`.
pub const NXT_SET_PACKET_IN_FORMAT: u32 = 16;
/// `NXT_PACKET_IN`.
pub const NXT_PACKET_IN: u32 = 17;
/// `NXT_SET_ASYNC_CONFIG`.
pub const NXT_SET_ASYNC_CONFIG: u32 = 19;
/// `NXT_SET_CONTROLLER_ID`.
pub const NXT_SET_CONTROLLER_ID: u32 = 20;
/// `NXT_CT_FLUSH_ZONE` (`struct nx_zone_id`: 6 zero bytes, the zone).
pub const NXT_CT_FLUSH_ZONE: u32 = 29;
/// `NXST_FLOW`.
pub const NXST_FLOW: u32 = 0;
/// `NXST_AGGREGATE`.
pub const NXST_AGGREGATE: u32 = 1;
/// `NXFF_OPENFLOW10`: flow format with `ofp_match`.
pub const NXFF_OPENFLOW10: u32 = 0;
/// `NXFF_NXM`: flow format with NXM matches.
pub const NXFF_NXM: u32 = 2;

/// `NXET_VENDOR`: error type of Nicira vendor errors in OpenFlow 1.0.
pub const NXET_VENDOR: u16 = 0xb0c2;
/// `NXVC_VENDOR_ERROR`: its only code; `nx_vendor_error` follows.
pub const NXVC_VENDOR_ERROR: u16 = 0;
/// `NXAST_RESUBMIT` (Nicira action subtype).
pub const NXAST_RESUBMIT: u16 = 1;
/// `NXAST_SET_QUEUE` (Nicira action subtype).
pub const NXAST_SET_QUEUE: u16 = 4;
/// `NXAST_REG_LOAD` (Nicira action subtype).
pub const NXAST_REG_LOAD: u16 = 7;
/// `NXAST_RESUBMIT_TABLE` (Nicira action subtype).
pub const NXAST_RESUBMIT_TABLE: u16 = 14;
/// `NXAST_DEC_TTL` (Nicira action subtype).
pub const NXAST_DEC_TTL: u16 = 18;
/// `NXAST_WRITE_METADATA` (Nicira action subtype).
pub const NXAST_WRITE_METADATA: u16 = 22;
/// `NXAST_REG_LOAD2` (Nicira action subtype).
pub const NXAST_REG_LOAD2: u16 = 33;
/// `NXAST_GROUP` (Nicira action subtype).
pub const NXAST_GROUP: u16 = 40;
/// `NXAST_PUSH_MPLS` (Nicira action subtype).
pub const NXAST_PUSH_MPLS: u16 = 23;
/// `NXAST_POP_MPLS` (Nicira action subtype).
pub const NXAST_POP_MPLS: u16 = 24;
/// `NXAST_SET_MPLS_TTL` (Nicira action subtype).
pub const NXAST_SET_MPLS_TTL: u16 = 25;
/// `NXAST_DEC_MPLS_TTL` (Nicira action subtype).
pub const NXAST_DEC_MPLS_TTL: u16 = 26;
