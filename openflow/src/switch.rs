//! The switch family (Open vSwitch `lib/ofp-switch.c`, and the role
//! messages) for OpenFlow 1.0, 1.3, 1.4 and 1.5: features replies, switch
//! configuration and controller roles.
//!
//! - Features reply: 1.0 `ofp_switch_features` (capabilities in 1.0
//!   numbering, an `actions` bitmap, the ports as `ofp_phy_port`s); 1.3
//!   to 1.5 (1.3 §7.3.1: `auxiliary_id`, no ports: those are a
//!   port-description multipart).
//! - Switch configuration (`OFPT_GET_CONFIG_REPLY`, `OFPT_SET_CONFIG`):
//!   `flags` and `miss_send_len`, the same 4 bytes in every version.
//! - Roles: 1.3+ `ofp_role_request` (1.3 §7.3.9, with a generation id);
//!   in 1.0 Nicira `nx_role_request` (no generation id).

use crate::error::{DecodeError, OfError};
use crate::model::{EncodeError, RoleMsg, SwitchConfig, SwitchFeatures};
use crate::port::{decode_phy_port, encode_phy_port, PHY_PORT_LEN};
use crate::wire::{decode_fixed, err, unsupported, Put, Rd};

// ---------------------------------------------------------------------------
// Features reply.

/// 1.0 `OFPC_ARP_MATCH_IP` (bit 7). OpenFlow 1.3 has no such capability
/// and leaves bit 7 unused, so the model carries it in bit 7 unchanged;
/// the 1.3 encoder should clear it.
pub const OFPC10_ARP_MATCH_IP: u32 = 1 << 7;

/// 1.0 `OFPC_STP` (bit 3; in 1.3 bit 3 is `OFPC_GROUP_STATS`): dropped.
pub(crate) const OFPC10_STP: u32 = 1 << 3;

/// Capability bits with the same meaning in 1.0 and 1.3: FLOW_STATS,
/// TABLE_STATS, PORT_STATS, IP_REASM, QUEUE_STATS; plus ARP_MATCH_IP.
pub(crate) const CAPS10_KEPT: u32 = 0b111 | (1 << 5) | (1 << 6) | OFPC10_ARP_MATCH_IP;

/// The 1.0 actions xennet implements, as the `actions` bitmap of the
/// features reply (bit n = `OFPAT10` type n: OUTPUT through ENQUEUE).
pub const OFP10_ACTIONS_BITMAP: u32 = 0xfff;

/// `ofp_switch_features` body: the `actions` bitmap is not kept (the
/// encoder sends [`OFP10_ACTIONS_BITMAP`]).
pub(crate) fn decode_features_reply(r: &mut Rd) -> Result<SwitchFeatures, DecodeError> {
    let datapath_id = r.u64()?;
    let n_buffers = r.u32()?;
    let n_tables = r.u8()?;
    r.skip(3)?;
    let capabilities = r.u32()? & CAPS10_KEPT;
    let _actions = r.u32()?;
    let ports = decode_fixed(r.rest(), PHY_PORT_LEN, decode_phy_port)?;
    Ok(SwitchFeatures {
        datapath_id,
        n_buffers,
        n_tables,
        auxiliary_id: 0,
        capabilities,
        ports,
    })
}

/// Append a 1.0 `ofp_switch_features` body (with the ports).
///
/// # Errors
/// `Unsupported` for a port with no 1.0 form.
pub(crate) fn encode_features_reply(
    f: &SwitchFeatures,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.u64(f.datapath_id);
    out.u32(f.n_buffers);
    out.u8(f.n_tables);
    out.zeros(3);
    out.u32(f.capabilities & CAPS10_KEPT & !OFPC10_STP);
    out.u32(OFP10_ACTIONS_BITMAP);
    for p in &f.ports {
        encode_phy_port(p, out)?;
    }
    Ok(())
}

/// Decode a 1.3 to 1.5 `ofp_switch_features` body (24 bytes).
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN` for another length.
pub(crate) fn get_features_reply(rd: &mut Rd<'_>) -> Result<SwitchFeatures, DecodeError> {
    let f = SwitchFeatures {
        datapath_id: rd.u64()?,
        n_buffers: rd.u32()?,
        n_tables: rd.u8()?,
        auxiliary_id: rd.u8()?,
        capabilities: {
            rd.skip(2)?;
            rd.u32()?
        },
        ports: Vec::new(),
    };
    rd.skip(4)?;
    rd.end()?;
    Ok(f)
}

/// Append a 1.3 to 1.5 `ofp_switch_features` body (`ports` are left out).
pub(crate) fn put_features_reply(out: &mut Vec<u8>, f: &SwitchFeatures) {
    out.u64(f.datapath_id);
    out.u32(f.n_buffers);
    out.u8(f.n_tables);
    out.u8(f.auxiliary_id);
    out.zeros(2);
    out.u32(f.capabilities);
    out.zeros(4);
}

// ---------------------------------------------------------------------------
// Switch configuration (all versions).

/// Decode `ofp_switch_config` (`flags`, `miss_send_len`).
pub(crate) fn get_switch_config(r: &mut Rd) -> Result<SwitchConfig, DecodeError> {
    Ok(SwitchConfig {
        flags: r.u16()?,
        miss_send_len: r.u16()?,
    })
}

/// Append `ofp_switch_config`.
pub(crate) fn put_switch_config(out: &mut Vec<u8>, c: &SwitchConfig) {
    out.u16(c.flags);
    out.u16(c.miss_send_len);
}

// ---------------------------------------------------------------------------
// Controller roles.

/// Decode a Nicira `nx_role_request` body (OpenFlow 1.0):
/// `NX_ROLE_OTHER`/`PRIMARY`/`SECONDARY` (0, 1, 2) are the 1.3 roles
/// `EQUAL`/`MASTER`/`SLAVE` minus one. There is no generation id: it
/// decodes as 0, and the role handler of a 1.0 connection must not check
/// it (OVS: `have_generation_id` false).
///
/// # Errors
/// `ROLE_REQUEST_FAILED/BAD_ROLE` for an unknown role.
pub(crate) fn get_nx_role(r: &mut Rd<'_>) -> Result<RoleMsg, DecodeError> {
    let role = r.u32()?;
    if role > 2 {
        return Err(err(OfError::BAD_ROLE, "unknown Nicira role"));
    }
    Ok(RoleMsg {
        role: role + 1,
        generation_id: 0,
    })
}

/// Append a Nicira `nx_role_request` body.
///
/// # Errors
/// `Unsupported` for role "no change" (0), which Nicira roles lack.
pub(crate) fn put_nx_role(out: &mut Vec<u8>, m: &RoleMsg) -> Result<(), EncodeError> {
    if !(1..=3).contains(&m.role) {
        return Err(unsupported("role \"no change\" in NXT_ROLE_REQUEST"));
    }
    out.u32(m.role - 1);
    Ok(())
}

pub(crate) fn get_role(rd: &mut Rd<'_>) -> Result<RoleMsg, DecodeError> {
    let role = rd.u32()?;
    if role > 3 {
        return Err(err(OfError::BAD_ROLE, "unknown controller role"));
    }
    rd.skip(4)?;
    let generation_id = rd.u64()?;
    rd.end()?;
    Ok(RoleMsg {
        role,
        generation_id,
    })
}

pub(crate) fn put_role(out: &mut Vec<u8>, r: &RoleMsg) {
    out.u32(r.role);
    out.zeros(4);
    out.u64(r.generation_id);
}
