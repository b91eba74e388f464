//! OXM (OpenFlow 1.3 §7.2.3) and NXM (Nicira) TLV matches. TODO(codec13):
//! implement; the signatures are the contract the 1.0 codec relies on.

use crate::error::{DecodeError, OfError};
use crate::model::{Match, OxmField};

/// Which TLV classes to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `OFPXMC_OPENFLOW_BASIC` (0x8000) where the field has one, else the
    /// Nicira class (OpenFlow 1.3 messages).
    Oxm,
    /// `NXM_OF_*` (0x0000) / `NXM_NX_*` (0x0001) classes (`NXT_FLOW_MOD`,
    /// `NXST_FLOW`, `NXT_PACKET_IN`).
    Nxm,
}

/// Decode a run of OXM or NXM TLVs (no `ofp_match` header, no padding)
/// into a match, checking lengths, masks, duplicates and prerequisites.
///
/// # Errors
/// `BAD_MATCH/*` errors: `BAD_LEN`, `BAD_FIELD` (unknown or unsupported
/// field), `DUP_FIELD`, `BAD_MASK`, `BAD_VALUE`, `BAD_PREREQ`.
pub fn decode_tlvs(_buf: &[u8]) -> Result<Match, DecodeError> {
    Err(DecodeError::new(OfError::BAD_FIELD, "not implemented"))
}

/// Append `m` as TLVs of `flavor` (no header, no padding), fields in the
/// order Open vSwitch emits them.
pub fn encode_tlvs(_m: &Match, _flavor: Flavor, _out: &mut Vec<u8>) {}

/// Decode the single unmasked TLV of a `set_field` action; returns the
/// field, its value and the bytes consumed.
///
/// # Errors
/// `BAD_ACTION/BAD_SET_TYPE`, `BAD_SET_LEN` or `BAD_SET_ARGUMENT`.
pub fn decode_set_field(_buf: &[u8]) -> Result<(OxmField, u128, usize), DecodeError> {
    Err(DecodeError::new(OfError::BAD_SET_TYPE, "not implemented"))
}

/// Append one unmasked TLV for `field = value`.
pub fn encode_set_field(_field: OxmField, _value: u128, _flavor: Flavor, _out: &mut Vec<u8>) {}

/// The 32-bit TLV header of `field` in `flavor` (class, field, hasmask,
/// length), as table-features properties list them.
pub fn header(_field: OxmField, _flavor: Flavor, _hasmask: bool) -> u32 {
    0
}
