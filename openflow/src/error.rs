//! OpenFlow errors (OpenFlow 1.3 §7.4.4, `enum ofp_error_type` and the
//! per-type code enums).
//!
//! [`OfError`] holds OpenFlow 1.3 numbering, and OpenFlow 1.4 numbering
//! for the types 1.3 lacks (`OFPET_BAD_PROPERTY` 14,
//! `OFPET_ASYNC_CONFIG_FAILED` 15, `OFPET_BUNDLE_FAILED` 17). The
//! OpenFlow 1.0 encoder maps it to 1.0 numbers, or to a Nicira vendor
//! error (`NXET_VENDOR`) where 1.0 has no equivalent; the 1.3 encoder
//! maps the 1.4-only types to what Open vSwitch sends in 1.3 (ONF
//! experimenter errors, `lib/ofp-errors.h` `ONF1.3(...)`), see
//! [`crate::bundle`].

use std::fmt;

use crate::bundle;
use crate::header::OFP13_VERSION;
use crate::model::Msg;
use crate::nicira::{NXET_VENDOR, NXVC_VENDOR_ERROR, NX_VENDOR_ID};
use crate::wire::{be16, be32, Put, Rd};

/// An OpenFlow error: type and code in OpenFlow 1.3 numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OfError {
    /// `ofp_error_type` (1.3).
    pub typ: u16,
    /// The type's code (1.3).
    pub code: u16,
}

macro_rules! errors {
    ($($name:ident = ($t:expr, $c:expr), $doc:literal;)*) => {
        impl OfError {
            $(
                #[doc = $doc]
                pub const $name: OfError = OfError { typ: $t, code: $c };
            )*

            /// The OpenFlow 1.3 name, e.g. `OFPBRC_BAD_TYPE`.
            pub fn name(&self) -> Option<&'static str> {
                match (self.typ, self.code) {
                    $(($t, $c) => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

/// `OFPET_HELLO_FAILED`.
pub const OFPET_HELLO_FAILED: u16 = 0;
/// `OFPET_BAD_REQUEST`.
pub const OFPET_BAD_REQUEST: u16 = 1;
/// `OFPET_BAD_ACTION`.
pub const OFPET_BAD_ACTION: u16 = 2;
/// `OFPET_BAD_INSTRUCTION`.
pub const OFPET_BAD_INSTRUCTION: u16 = 3;
/// `OFPET_BAD_MATCH`.
pub const OFPET_BAD_MATCH: u16 = 4;
/// `OFPET_FLOW_MOD_FAILED`.
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;
/// `OFPET_GROUP_MOD_FAILED`.
pub const OFPET_GROUP_MOD_FAILED: u16 = 6;
/// `OFPET_PORT_MOD_FAILED`.
pub const OFPET_PORT_MOD_FAILED: u16 = 7;
/// `OFPET_TABLE_MOD_FAILED`.
pub const OFPET_TABLE_MOD_FAILED: u16 = 8;
/// `OFPET_QUEUE_OP_FAILED`.
pub const OFPET_QUEUE_OP_FAILED: u16 = 9;
/// `OFPET_SWITCH_CONFIG_FAILED`.
pub const OFPET_SWITCH_CONFIG_FAILED: u16 = 10;
/// `OFPET_ROLE_REQUEST_FAILED`.
pub const OFPET_ROLE_REQUEST_FAILED: u16 = 11;
/// `OFPET_METER_MOD_FAILED`.
pub const OFPET_METER_MOD_FAILED: u16 = 12;
/// `OFPET_TABLE_FEATURES_FAILED`.
pub const OFPET_TABLE_FEATURES_FAILED: u16 = 13;
/// `OFPET_BAD_PROPERTY` (1.4+).
pub const OFPET_BAD_PROPERTY: u16 = 14;
/// `OFPET_ASYNC_CONFIG_FAILED` (1.4+).
pub const OFPET_ASYNC_CONFIG_FAILED: u16 = 15;
/// `OFPET_BUNDLE_FAILED` (1.4+; in 1.3 the ONF extension's
/// `ONFERR_ET_BUNDLE_*` experimenter errors).
pub const OFPET_BUNDLE_FAILED: u16 = 17;
/// `OFPET_EXPERIMENTER` (1.2+): `code` is the experimenter's type and a
/// 32-bit experimenter id leads the data.
pub const OFPET_EXPERIMENTER: u16 = 0xffff;
/// xennet's type for Nicira extension errors (OVS `ofp-errors.h`
/// `NX1.2+(c)`): `code` is the OpenFlow 1.2+ experimenter code. On the
/// wire: 1.2+ `OFPET_EXPERIMENTER` with `NX_VENDOR_ID`, 1.0 `NXET_VENDOR`
/// with the `NX1.0-1.1(t,c)` pair.
pub const NX_ERROR_TYPE: u16 = 0xfffe;

errors! {
    HELLO_INCOMPATIBLE = (0, 0), "OFPHFC_INCOMPATIBLE: no common version.";
    HELLO_EPERM = (0, 1), "OFPHFC_EPERM.";
    BAD_VERSION = (1, 0), "OFPBRC_BAD_VERSION: header version not supported.";
    BAD_TYPE = (1, 1), "OFPBRC_BAD_TYPE: message type not supported.";
    BAD_MULTIPART = (1, 2), "OFPBRC_BAD_MULTIPART: multipart type not supported.";
    BAD_EXPERIMENTER = (1, 3), "OFPBRC_BAD_EXPERIMENTER: experimenter id not supported.";
    BAD_EXP_TYPE = (1, 4), "OFPBRC_BAD_EXP_TYPE: experimenter type not supported.";
    BAD_REQUEST_EPERM = (1, 5), "OFPBRC_EPERM: permissions error.";
    BAD_LEN = (1, 6), "OFPBRC_BAD_LEN: wrong request length.";
    BUFFER_EMPTY = (1, 7), "OFPBRC_BUFFER_EMPTY.";
    BUFFER_UNKNOWN = (1, 8), "OFPBRC_BUFFER_UNKNOWN: buffer id does not exist.";
    BAD_TABLE_ID = (1, 9), "OFPBRC_BAD_TABLE_ID.";
    IS_SLAVE = (1, 10), "OFPBRC_IS_SLAVE: denied because the controller is slave.";
    BAD_PORT = (1, 11), "OFPBRC_BAD_PORT.";
    BAD_PACKET = (1, 12), "OFPBRC_BAD_PACKET: invalid packet in packet-out.";
    MULTIPART_BUFFER_OVERFLOW = (1, 13), "OFPBRC_MULTIPART_BUFFER_OVERFLOW.";
    BAD_ACTION_TYPE = (2, 0), "OFPBAC_BAD_TYPE: unknown action type.";
    BAD_ACTION_LEN = (2, 1), "OFPBAC_BAD_LEN.";
    BAD_ACTION_EXPERIMENTER = (2, 2), "OFPBAC_BAD_EXPERIMENTER.";
    BAD_ACTION_EXP_TYPE = (2, 3), "OFPBAC_BAD_EXP_TYPE.";
    BAD_OUT_PORT = (2, 4), "OFPBAC_BAD_OUT_PORT.";
    BAD_ACTION_ARGUMENT = (2, 5), "OFPBAC_BAD_ARGUMENT.";
    BAD_ACTION_EPERM = (2, 6), "OFPBAC_EPERM.";
    TOO_MANY_ACTIONS = (2, 7), "OFPBAC_TOO_MANY.";
    BAD_QUEUE = (2, 8), "OFPBAC_BAD_QUEUE.";
    BAD_OUT_GROUP = (2, 9), "OFPBAC_BAD_OUT_GROUP.";
    MATCH_INCONSISTENT = (2, 10), "OFPBAC_MATCH_INCONSISTENT: action needs a match prerequisite.";
    UNSUPPORTED_ORDER = (2, 11), "OFPBAC_UNSUPPORTED_ORDER.";
    BAD_TAG = (2, 12), "OFPBAC_BAD_TAG.";
    BAD_SET_TYPE = (2, 13), "OFPBAC_BAD_SET_TYPE: unsupported set-field type.";
    BAD_SET_LEN = (2, 14), "OFPBAC_BAD_SET_LEN.";
    BAD_SET_ARGUMENT = (2, 15), "OFPBAC_BAD_SET_ARGUMENT.";
    UNKNOWN_INST = (3, 0), "OFPBIC_UNKNOWN_INST.";
    UNSUP_INST = (3, 1), "OFPBIC_UNSUP_INST.";
    BAD_INST_TABLE_ID = (3, 2), "OFPBIC_BAD_TABLE_ID: goto_table to an invalid table.";
    UNSUP_METADATA = (3, 3), "OFPBIC_UNSUP_METADATA.";
    UNSUP_METADATA_MASK = (3, 4), "OFPBIC_UNSUP_METADATA_MASK.";
    BAD_INST_EXPERIMENTER = (3, 5), "OFPBIC_BAD_EXPERIMENTER.";
    BAD_INST_EXP_TYPE = (3, 6), "OFPBIC_BAD_EXP_TYPE.";
    BAD_INST_LEN = (3, 7), "OFPBIC_BAD_LEN.";
    BAD_INST_EPERM = (3, 8), "OFPBIC_EPERM.";
    BAD_MATCH_TYPE = (4, 0), "OFPBMC_BAD_TYPE.";
    BAD_MATCH_LEN = (4, 1), "OFPBMC_BAD_LEN.";
    BAD_MATCH_TAG = (4, 2), "OFPBMC_BAD_TAG.";
    BAD_DL_ADDR_MASK = (4, 3), "OFPBMC_BAD_DL_ADDR_MASK.";
    BAD_NW_ADDR_MASK = (4, 4), "OFPBMC_BAD_NW_ADDR_MASK.";
    BAD_WILDCARDS = (4, 5), "OFPBMC_BAD_WILDCARDS.";
    BAD_FIELD = (4, 6), "OFPBMC_BAD_FIELD: unsupported field.";
    BAD_VALUE = (4, 7), "OFPBMC_BAD_VALUE.";
    BAD_MASK = (4, 8), "OFPBMC_BAD_MASK.";
    BAD_PREREQ = (4, 9), "OFPBMC_BAD_PREREQ: a prerequisite was not met.";
    DUP_FIELD = (4, 10), "OFPBMC_DUP_FIELD.";
    BAD_MATCH_EPERM = (4, 11), "OFPBMC_EPERM.";
    FLOW_MOD_UNKNOWN = (5, 0), "OFPFMFC_UNKNOWN.";
    TABLE_FULL = (5, 1), "OFPFMFC_TABLE_FULL.";
    FLOW_MOD_BAD_TABLE_ID = (5, 2), "OFPFMFC_BAD_TABLE_ID.";
    OVERLAP = (5, 3), "OFPFMFC_OVERLAP: CHECK_OVERLAP found an overlapping flow.";
    FLOW_MOD_EPERM = (5, 4), "OFPFMFC_EPERM.";
    BAD_TIMEOUT = (5, 5), "OFPFMFC_BAD_TIMEOUT.";
    BAD_COMMAND = (5, 6), "OFPFMFC_BAD_COMMAND.";
    BAD_FLAGS = (5, 7), "OFPFMFC_BAD_FLAGS.";
    GROUP_EXISTS = (6, 0), "OFPGMFC_GROUP_EXISTS.";
    INVALID_GROUP = (6, 1), "OFPGMFC_INVALID_GROUP.";
    WEIGHT_UNSUPPORTED = (6, 2), "OFPGMFC_WEIGHT_UNSUPPORTED.";
    OUT_OF_GROUPS = (6, 3), "OFPGMFC_OUT_OF_GROUPS.";
    OUT_OF_BUCKETS = (6, 4), "OFPGMFC_OUT_OF_BUCKETS.";
    CHAINING_UNSUPPORTED = (6, 5), "OFPGMFC_CHAINING_UNSUPPORTED.";
    WATCH_UNSUPPORTED = (6, 6), "OFPGMFC_WATCH_UNSUPPORTED.";
    GROUP_LOOP = (6, 7), "OFPGMFC_LOOP.";
    UNKNOWN_GROUP = (6, 8), "OFPGMFC_UNKNOWN_GROUP.";
    CHAINED_GROUP = (6, 9), "OFPGMFC_CHAINED_GROUP.";
    BAD_GROUP_TYPE = (6, 10), "OFPGMFC_BAD_TYPE.";
    BAD_GROUP_COMMAND = (6, 11), "OFPGMFC_BAD_COMMAND.";
    BAD_BUCKET = (6, 12), "OFPGMFC_BAD_BUCKET.";
    BAD_WATCH = (6, 13), "OFPGMFC_BAD_WATCH.";
    GROUP_EPERM = (6, 14), "OFPGMFC_EPERM.";
    PORT_MOD_BAD_PORT = (7, 0), "OFPPMFC_BAD_PORT.";
    PORT_MOD_BAD_HW_ADDR = (7, 1), "OFPPMFC_BAD_HW_ADDR.";
    PORT_MOD_BAD_CONFIG = (7, 2), "OFPPMFC_BAD_CONFIG.";
    TABLE_MOD_BAD_TABLE = (8, 0), "OFPTMFC_BAD_TABLE.";
    TABLE_MOD_BAD_CONFIG = (8, 1), "OFPTMFC_BAD_CONFIG.";
    SWITCH_CONFIG_BAD_FLAGS = (10, 0), "OFPSCFC_BAD_FLAGS.";
    ROLE_STALE = (11, 0), "OFPRRFC_STALE: stale generation id.";
    ROLE_UNSUP = (11, 1), "OFPRRFC_UNSUP.";
    BAD_ROLE = (11, 2), "OFPRRFC_BAD_ROLE.";
    METER_UNKNOWN = (12, 0), "OFPMMFC_UNKNOWN.";
    METER_EXISTS = (12, 1), "OFPMMFC_METER_EXISTS.";
    INVALID_METER = (12, 2), "OFPMMFC_INVALID_METER.";
    UNKNOWN_METER = (12, 3), "OFPMMFC_UNKNOWN_METER.";
    METER_BAD_COMMAND = (12, 4), "OFPMMFC_BAD_COMMAND.";
    METER_BAD_FLAGS = (12, 5), "OFPMMFC_BAD_FLAGS.";
    METER_BAD_RATE = (12, 6), "OFPMMFC_BAD_RATE.";
    METER_BAD_BURST = (12, 7), "OFPMMFC_BAD_BURST.";
    METER_BAD_BAND = (12, 8), "OFPMMFC_BAD_BAND.";
    METER_BAD_BAND_VALUE = (12, 9), "OFPMMFC_BAD_BAND_VALUE.";
    OUT_OF_METERS = (12, 10), "OFPMMFC_OUT_OF_METERS.";
    OUT_OF_BANDS = (12, 11), "OFPMMFC_OUT_OF_BANDS.";
    TABLE_FEATURES_BAD_TABLE = (13, 0), "OFPTFFC_BAD_TABLE.";
    TABLE_FEATURES_BAD_TYPE = (13, 2), "OFPTFFC_BAD_TYPE: unknown property type.";
    TABLE_FEATURES_EPERM = (13, 5), "OFPTFFC_EPERM: permissions error.";
    BAD_PROPERTY_TYPE = (14, 0), "OFPBPC_BAD_TYPE (1.4+): unknown property type.";
    BAD_PROPERTY_LEN = (14, 1), "OFPBPC_BAD_LEN (1.4+): length problem in a property.";
    BAD_PROPERTY_VALUE = (14, 2), "OFPBPC_BAD_VALUE (1.4+): unsupported property value.";
    BAD_PROPERTY_EXPERIMENTER = (14, 5), "OFPBPC_BAD_EXPERIMENTER (1.4+): unknown experimenter property.";
    ASYNC_CONFIG_INVALID = (15, 0), "OFPACFC_INVALID (1.4+): mask bits not allowed.";
    ASYNC_CONFIG_UNSUPPORTED = (15, 1), "OFPACFC_UNSUPPORTED (1.4+): unknown async property.";
    MONITOR_UNKNOWN = (16, 0), "OFPMOFC_UNKNOWN (1.4+): unspecified flow monitor error.";
    MONITOR_EXISTS = (16, 1), "OFPMOFC_MONITOR_EXISTS (1.4+): a monitor with this id exists.";
    MONITOR_INVALID = (16, 2), "OFPMOFC_INVALID_MONITOR (1.4+): the monitor is invalid.";
    UNKNOWN_MONITOR = (16, 3), "OFPMOFC_UNKNOWN_MONITOR (1.4+): no monitor with this id.";
    MONITOR_BAD_COMMAND = (16, 4), "OFPMOFC_BAD_COMMAND (1.4+): unknown monitor command.";
    MONITOR_BAD_FLAGS = (16, 5), "OFPMOFC_BAD_FLAGS (1.4+): unsupported monitor flags.";
    MONITOR_BAD_TABLE_ID = (16, 6), "OFPMOFC_BAD_TABLE_ID (1.4+): no such table.";
    MONITOR_BAD_OUT = (16, 7), "OFPMOFC_BAD_OUT (1.4+): bad output port or group.";
    BUNDLE_UNKNOWN = (17, 0), "OFPBFC_UNKNOWN (1.4+): unspecified bundle error.";
    BUNDLE_EPERM = (17, 1), "OFPBFC_EPERM (1.4+): permissions error.";
    BUNDLE_BAD_ID = (17, 2), "OFPBFC_BAD_ID (1.4+): bundle id does not exist.";
    BUNDLE_EXIST = (17, 3), "OFPBFC_BUNDLE_EXIST (1.4+): bundle id already exists.";
    BUNDLE_CLOSED = (17, 4), "OFPBFC_BUNDLE_CLOSED (1.4+): bundle is closed.";
    OUT_OF_BUNDLES = (17, 5), "OFPBFC_OUT_OF_BUNDLES (1.4+): too many bundles.";
    BUNDLE_BAD_TYPE = (17, 6), "OFPBFC_BAD_TYPE (1.4+): unsupported or unknown bundle control type.";
    BUNDLE_BAD_FLAGS = (17, 7), "OFPBFC_BAD_FLAGS (1.4+): unsupported, unknown or inconsistent flags.";
    BUNDLE_MSG_BAD_LEN = (17, 8), "OFPBFC_MSG_BAD_LEN (1.4+): length problem in the included message.";
    BUNDLE_MSG_BAD_XID = (17, 9), "OFPBFC_MSG_BAD_XID (1.4+): inconsistent or duplicate xid.";
    BUNDLE_MSG_UNSUP = (17, 10), "OFPBFC_MSG_UNSUP (1.4+): message not supported in a bundle.";
    BUNDLE_MSG_CONFLICT = (17, 11), "OFPBFC_MSG_CONFLICT (1.4+): unsupported message combination.";
    BUNDLE_MSG_TOO_MANY = (17, 12), "OFPBFC_MSG_TOO_MANY (1.4+): too many messages in the bundle.";
    BUNDLE_MSG_FAILED = (17, 13), "OFPBFC_MSG_FAILED (1.4+): one message in the bundle failed.";
    BUNDLE_TIMEOUT = (17, 14), "OFPBFC_TIMEOUT (1.4+): the bundle took too long.";
    BUNDLE_IN_PROGRESS = (17, 15), "OFPBFC_BUNDLE_IN_PROGRESS (1.4+): the bundle is locking the resource.";
    BUNDLE_SCHED_NOT_SUPPORTED = (17, 16), "OFPBFC_SCHED_NOT_SUPPORTED (1.5+): scheduled commit not supported.";
    NXTTMFC_BAD_COMMAND = (0xfffe, 16), "NXTTMFC_BAD_COMMAND: unknown TLV table mod command.";
    NXTTMFC_BAD_OPT_LEN = (0xfffe, 17), "NXTTMFC_BAD_OPT_LEN: not a valid TLV option length.";
    NXTTMFC_BAD_FIELD_IDX = (0xfffe, 18), "NXTTMFC_BAD_FIELD_IDX: tun_metadata index out of range.";
    NXTTMFC_TABLE_FULL = (0xfffe, 19), "NXTTMFC_TABLE_FULL: the options exceed the switch's option space.";
    NXTTMFC_ALREADY_MAPPED = (0xfffe, 20), "NXTTMFC_ALREADY_MAPPED: the field index is already mapped.";
    NXTTMFC_DUP_ENTRY = (0xfffe, 21), "NXTTMFC_DUP_ENTRY: the option is mapped to another field.";
    NXFMFC_INVALID_TLV_FIELD = (0xfffe, 37), "NXFMFC_INVALID_TLV_FIELD: a tun_metadata field that is not mapped.";
    NXTTMFC_INVALID_TLV_DEL = (0xfffe, 38), "NXTTMFC_INVALID_TLV_DEL: the mapping is used by flows.";
    NXR_NOT_SUPPORTED = (0xfffe, 34), "NXR_NOT_SUPPORTED: this datapath does not support NXT_RESUME.";
    NXR_STALE = (0xfffe, 35), "NXR_STALE: the continuation is stale (another bridge, or the bridge or switch restarted since).";
}

/// The `NX1.0-1.1(type, code)` pair of a Nicira extension error
/// ([`NX_ERROR_TYPE`]) with OpenFlow 1.2+ code `code` (OVS
/// `ofp-errors.h`).
pub(crate) fn nx_error_to_10(code: u16) -> Option<(u16, u16)> {
    match code {
        16..=21 => Some((1, code + 511)),
        34 => Some((1, 533)),
        35 => Some((1, 534)),
        37 => Some((1, 536)),
        38 => Some((1, 537)),
        _ => None,
    }
}

/// The Nicira extension error of an `NX1.0-1.1(type, code)` pair.
pub(crate) fn nx_error_from_10(t: u16, c: u16) -> Option<OfError> {
    let code = match (t, c) {
        (1, 527..=532) => c - 511,
        (1, 533) => 34,
        (1, 534) => 35,
        (1, 536) => 37,
        (1, 537) => 38,
        _ => return None,
    };
    Some(OfError {
        typ: NX_ERROR_TYPE,
        code,
    })
}

impl fmt::Display for OfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "error type {} code {}", self.typ, self.code),
        }
    }
}

/// Why a message could not be decoded: the [`OfError`] to send back (with
/// the start of the offending message, §7.4.4) and a short description for
/// the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{err}: {what}")]
pub struct DecodeError {
    /// The error to report to the peer.
    pub err: OfError,
    /// What was wrong, for logs.
    pub what: &'static str,
}

impl DecodeError {
    /// A decode error.
    pub const fn new(err: OfError, what: &'static str) -> DecodeError {
        DecodeError { err, what }
    }
}

// ---------------------------------------------------------------------------
// `ofp_error_msg` bodies (Open vSwitch `lib/ofp-errors.c`): OpenFlow 1.0
// numbering and Nicira vendor errors (`NXET_VENDOR`); OpenFlow 1.3 to 1.5,
// with 1.4's types as ONF experimenter errors in 1.3.

enum Err10 {
    Std(u16, u16),
    Nx(u16, u16),
}

/// OpenFlow 1.3 error → OpenFlow 1.0 (`ofp-errors.h` `OF1.0` / `NX1.0`
/// assignments); errors with neither become `NXBRC_UNENCODABLE_ERROR`.
fn error_to_ofp10(e: OfError) -> Err10 {
    use Err10::{Nx, Std};
    match (e.typ, e.code) {
        (0, c @ 0..=1) => Std(0, c),
        (1, c @ 0..=8) => Std(1, c),
        (1, 9) => Nx(1, 512),
        (1, 10) => Std(1, 5),
        (1, 11) => Nx(1, 514),
        (2, c @ 0..=8) => Std(2, c),
        (2, 9) => Nx(2, 9),
        (2, 10) => Nx(1, 522),
        (2, 13) => Nx(1, 523),
        (2, 14) => Nx(1, 524),
        (2, 15) => Nx(1, 525),
        (3, 1) => Nx(2, 257),
        (4, 5) => Nx(1, 262),
        (4, 6) => Nx(0, 263),
        (4, 7) => Nx(1, 258),
        (4, 8) => Nx(1, 259),
        (4, 9) => Nx(1, 260),
        (4, 10) => Nx(1, 261),
        (5, 1) => Std(3, 0),
        (5, 3) => Std(3, 1),
        (5, 4) => Std(3, 2),
        (5, 6) => Std(3, 4),
        (5, 7) => Nx(3, 258),
        (6, c @ 0..=14) => Nx(6, c),
        (7, c @ 0..=1) => Std(4, c),
        (9, c @ 0..=2) => Std(5, c),
        (11, 2) => Nx(1, 513),
        // OVS ofp-errors.h: NX1.0-1.1(1,517..519).
        (16, 1) => Nx(1, 517),
        (16, 3) => Nx(1, 519),
        (16, 5) => Nx(1, 518),
        _ => Nx(1, 521),
    }
}

/// The 1.3 error for a 1.0 standard error (`(1,5)` is `OFPBRC_EPERM`;
/// `OFPFMFC_BAD_EMERG_TIMEOUT` becomes `OFPFMFC_BAD_TIMEOUT` and
/// `OFPFMFC_UNSUPPORTED` `OFPBAC_UNSUPPORTED_ORDER`, their 1.3 successors).
fn error_from_ofp10(t: u16, c: u16) -> Option<OfError> {
    let (t, c) = match (t, c) {
        (0, 0..=1) | (1, 0..=8) | (2, 0..=8) => (t, c),
        (3, 0) => (5, 1),
        (3, 1) => (5, 3),
        (3, 2) => (5, 4),
        (3, 3) => (5, 5),
        (3, 4) => (5, 6),
        (3, 5) => (2, 11),
        (4, 0..=1) => (7, c),
        (5, 0..=2) => (9, c),
        _ => return None,
    };
    Some(OfError { typ: t, code: c })
}

fn error_from_nx(t: u16, c: u16) -> Option<OfError> {
    let (t, c) = match (t, c) {
        (1, 512) => (1, 9),
        (1, 514) => (1, 11),
        (2, 9) => (2, 9),
        (1, 522) => (2, 10),
        (1, 523) => (2, 13),
        (1, 524) => (2, 14),
        (1, 525) => (2, 15),
        (2, 257) => (3, 1),
        (1, 262) => (4, 5),
        (0, 263) => (4, 6),
        (1, 258) => (4, 7),
        (1, 259) => (4, 8),
        (1, 260) => (4, 9),
        (1, 261) => (4, 10),
        (3, 258) => (5, 7),
        (6, 0..=14) => (6, c),
        (1, 513) => (11, 2),
        _ => return None,
    };
    Some(OfError { typ: t, code: c })
}

/// Decode `ofp_error_msg`. Standard 1.0 errors and Nicira vendor errors
/// (`NXET_VENDOR`/`NXVC_VENDOR_ERROR` + `nx_vendor_error`) map to 1.3
/// numbering; an error with no 1.3 equivalent keeps its wire type and code
/// (for `NXET_VENDOR`, with the `nx_vendor_error` left in `data`), so it
/// re-encodes unchanged. `r` is the body after the header.
pub(crate) fn decode_error_ofp10(r: &mut Rd) -> Result<Msg, DecodeError> {
    let t = r.u16()?;
    let c = r.u16()?;
    let data = r.rest();
    if t == NXET_VENDOR
        && c == NXVC_VENDOR_ERROR
        && data.len() >= 8
        && be32(data, 0) == NX_VENDOR_ID
    {
        if let Some(err) = error_from_nx(be16(data, 4), be16(data, 6))
            .or_else(|| nx_error_from_10(be16(data, 4), be16(data, 6)))
        {
            return Ok(Msg::Error {
                err,
                data: data[8..].to_vec(),
            });
        }
    }
    let err = if t == NXET_VENDOR {
        None
    } else {
        error_from_ofp10(t, c)
    };
    Ok(Msg::Error {
        err: err.unwrap_or(OfError { typ: t, code: c }),
        data: data.to_vec(),
    })
}

/// Append a 1.0 `ofp_error_msg` body: 1.0 numbering where 1.0 has the
/// error, else a Nicira vendor error (`NXET_VENDOR`,
/// `NXVC_VENDOR_ERROR`, `nx_vendor_error`); an error decoded as
/// `NXET_VENDOR` with no 1.3 equivalent is written back unchanged.
pub(crate) fn encode_error_ofp10(err: OfError, data: &[u8], out: &mut Vec<u8>) {
    let nx10 = (err.typ == NX_ERROR_TYPE)
        .then(|| nx_error_to_10(err.code))
        .flatten();
    if let Some((t, c)) = nx10 {
        out.u16(NXET_VENDOR);
        out.u16(NXVC_VENDOR_ERROR);
        out.u32(NX_VENDOR_ID);
        out.u16(t);
        out.u16(c);
    } else if err.typ == NXET_VENDOR {
        out.u16(err.typ);
        out.u16(err.code);
    } else {
        match error_to_ofp10(err) {
            Err10::Std(t, c) => {
                out.u16(t);
                out.u16(c);
            }
            Err10::Nx(t, c) => {
                out.u16(NXET_VENDOR);
                out.u16(NXVC_VENDOR_ERROR);
                out.u32(NX_VENDOR_ID);
                out.u16(t);
                out.u16(c);
            }
        }
    }
    out.extend_from_slice(data);
}

/// Decode an OpenFlow `version` (1.3 to 1.5) `ofp_error_msg` body. 1.3
/// carries 1.4's bundle (and property, async) errors as ONF experimenter
/// errors; Nicira errors (`OFPET_EXPERIMENTER`, `NX_VENDOR_ID`) that
/// xennet knows become [`NX_ERROR_TYPE`]; others keep their wire type and
/// code.
pub(crate) fn get_error(rd: &mut Rd<'_>, version: u8) -> Result<Msg, DecodeError> {
    let typ = rd.u16()?;
    let code = rd.u16()?;
    let data = rd.rest();
    let onf = match data {
        [a, b, c, d, rest @ ..] if typ == OFPET_EXPERIMENTER => {
            let exp = u32::from_be_bytes([*a, *b, *c, *d]);
            if exp == NX_VENDOR_ID && nx_error_to_10(code).is_some() {
                Some((
                    OfError {
                        typ: NX_ERROR_TYPE,
                        code,
                    },
                    rest,
                ))
            } else if version == OFP13_VERSION {
                bundle::error_from_13(code, exp).map(|e| (e, rest))
            } else {
                None
            }
        }
        _ => None,
    };
    let (err, data) = onf.unwrap_or((OfError { typ, code }, data));
    Ok(Msg::Error {
        err,
        data: data.to_vec(),
    })
}

/// Append an OpenFlow `version` (1.3 to 1.5) `ofp_error_msg` body.
pub(crate) fn put_error(out: &mut Vec<u8>, err: OfError, data: &[u8], version: u8) {
    if err.typ == NX_ERROR_TYPE {
        out.u16(OFPET_EXPERIMENTER);
        out.u16(err.code);
        out.u32(NX_VENDOR_ID);
    } else if version == OFP13_VERSION {
        let (typ, code, experimenter) = bundle::error_to_13(err);
        out.u16(typ);
        out.u16(code);
        if let Some(e) = experimenter {
            out.u32(e);
        }
    } else {
        out.u16(err.typ);
        out.u16(err.code);
    }
    out.extend_from_slice(data);
}
