//! The port family (Open vSwitch `lib/ofp-port.c`) for OpenFlow 1.0, 1.3,
//! 1.4 and 1.5: port numbers, port descriptions (`OFPMP_PORT_DESC`
//! replies, `OFPT_PORT_STATUS`), port statistics and port-mod, with the
//! version as a parameter.
//!
//! - OpenFlow 1.0: 16-bit port numbers (`0xff00..=0xffff` are the
//!   model's `0xffffff00..=0xffffffff`, [`port_from_ofp10`]),
//!   `ofp_phy_port` (48 bytes, 1.0 feature bits, [`features_from_ofp10`]),
//!   `ofp_port_mod` (24 bytes) and `ofp_port_stats` (104 bytes, no
//!   duration).
//! - `ofp_port`: 1.3 §7.2.1 is 64 fixed bytes; 1.4 §7.2.1 (kept by 1.5)
//!   is a 40-byte header (`port_no`, `length`, `hw_addr`, `name`,
//!   `config`, `state`) followed by properties, of which xennet sends and
//!   reads `OFPPDPT_ETHERNET` (type 0, 32 bytes: `curr`, `advertised`,
//!   `supported`, `peer`, `curr_speed`, `max_speed`).
//! - `ofp_port_stats`: 1.3 §7.3.5.6 is 112 fixed bytes; 1.4 §7.3.5.7 is an
//!   80-byte record (`length`, `port_no`, durations, the eight basic
//!   counters) followed by `OFPPSPT_ETHERNET` (type 0, 40 bytes:
//!   `rx_frame_err`, `rx_over_err`, `rx_crc_err`, `collisions`).
//! - `ofp_port_mod`: 1.3 §7.3.4.3 carries `advertise` in the fixed part;
//!   1.4 §7.3.4.3 moves it into an `OFPPMPT_ETHERNET` property (type 0,
//!   8 bytes).
//!
//! Unknown properties are skipped when decoding replies and descriptions
//! (as a controller must), and refused in a port-mod
//! (`BAD_PROPERTY/BAD_TYPE`, what Open vSwitch answers).

use crate::error::{DecodeError, OfError};
use crate::header::OFP14_VERSION;
use crate::model::{port_config, port_state, EncodeError, PortDesc, PortMod, PortStats};
use crate::wire::{self, err, get_str, Put, Rd};

/// `OFPPDPT_ETHERNET`, `OFPPSPT_ETHERNET`, `OFPPMPT_ETHERNET`.
const PROP_ETHERNET: u16 = 0;

/// Walk a property list (`type`, `length`, body, padding to 8): `f` gets
/// each property's type and body (without the 4-byte header or padding).
pub(crate) fn props<'a>(
    rd: &mut Rd<'a>,
    mut f: impl FnMut(u16, Rd<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    while !rd.is_empty() {
        let typ = rd.peek_len(0)? as u16;
        let len = rd.peek_len(2)?;
        if len < 4 {
            return Err(err(OfError::BAD_LEN, "property shorter than its header"));
        }
        // The last property's padding may be missing (OVS tolerates it).
        let padded = len.next_multiple_of(8).min(len.max(rd.len()));
        let all = rd.take(padded)?;
        let body = all
            .get(4..len)
            .ok_or(err(OfError::BAD_LEN, "short property"))?;
        f(typ, Rd::new(body, OfError::BAD_LEN))?;
    }
    Ok(())
}

/// Decode one `ofp_port` of `version` (1.3: 64 bytes; 1.4+: length-
/// prefixed with properties).
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN` for a short or inconsistent record.
pub(crate) fn get_port(rd: &mut Rd<'_>, version: u8) -> Result<PortDesc, DecodeError> {
    let port_no = rd.u32()?;
    let mut r = if version >= OFP14_VERSION {
        let len = rd.peek_len(0)?;
        // The length counts from port_no.
        let mut r = rd.record(len.saturating_sub(4), 36)?;
        r.skip(4)?;
        r
    } else {
        let mut r = Rd::new(rd.take(60)?, OfError::BAD_LEN);
        r.skip(4)?;
        r
    };
    let hw_addr = r.arr::<6>()?;
    r.skip(2)?;
    let name = get_str(r.take(16)?);
    let mut p = PortDesc {
        port_no,
        hw_addr,
        name,
        config: r.u32()? & port_config::ALL_1_3,
        state: r.u32()?,
        curr: 0,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 0,
        max_speed: 0,
    };
    let mut eth = |r: &mut Rd<'_>| -> Result<(), DecodeError> {
        p.curr = r.u32()?;
        p.advertised = r.u32()?;
        p.supported = r.u32()?;
        p.peer = r.u32()?;
        p.curr_speed = r.u32()?;
        p.max_speed = r.u32()?;
        Ok(())
    };
    if version >= OFP14_VERSION {
        props(&mut r, |typ, mut b| {
            if typ == PROP_ETHERNET {
                b.skip(4)?;
                eth(&mut b)?;
            }
            Ok(())
        })?;
    } else {
        eth(&mut r)?;
    }
    Ok(p)
}

/// Append one `ofp_port` of `version`.
pub(crate) fn put_port(out: &mut Vec<u8>, p: &PortDesc, version: u8) {
    let start = out.len();
    out.u32(p.port_no);
    if version >= OFP14_VERSION {
        out.u16(72);
        out.zeros(2);
    } else {
        out.zeros(4);
    }
    out.extend_from_slice(&p.hw_addr);
    out.zeros(2);
    out.str(&p.name, 16);
    out.u32(p.config & port_config::ALL_1_3);
    out.u32(p.state);
    if version >= OFP14_VERSION {
        out.u16(PROP_ETHERNET);
        out.u16(32);
        out.zeros(4);
    }
    for v in [
        p.curr,
        p.advertised,
        p.supported,
        p.peer,
        p.curr_speed,
        p.max_speed,
    ] {
        out.u32(v);
    }
    debug_assert_eq!(
        out.len() - start,
        if version >= OFP14_VERSION { 72 } else { 64 }
    );
}

/// Decode one `ofp_port_stats` of `version`.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN` for a short or inconsistent record.
pub(crate) fn get_port_stats(rd: &mut Rd<'_>, version: u8) -> Result<PortStats, DecodeError> {
    if version < OFP14_VERSION {
        let mut r = Rd::new(rd.take(112)?, OfError::BAD_LEN);
        let port_no = r.u32()?;
        r.skip(4)?;
        let s = wire::get_port_counters(&mut r, port_no)?;
        return Ok(PortStats {
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
            ..s
        });
    }
    let len = rd.peek_len(0)?;
    let mut r = rd.record(len, 80)?;
    r.skip(4)?;
    let mut s = PortStats {
        port_no: r.u32()?,
        duration_sec: r.u32()?,
        duration_nsec: r.u32()?,
        rx_packets: r.u64()?,
        tx_packets: r.u64()?,
        rx_bytes: r.u64()?,
        tx_bytes: r.u64()?,
        rx_dropped: r.u64()?,
        tx_dropped: r.u64()?,
        rx_errors: r.u64()?,
        tx_errors: r.u64()?,
        rx_frame_err: 0,
        rx_over_err: 0,
        rx_crc_err: 0,
        collisions: 0,
    };
    props(&mut r, |typ, mut b| {
        if typ == PROP_ETHERNET {
            b.skip(4)?;
            s.rx_frame_err = b.u64()?;
            s.rx_over_err = b.u64()?;
            s.rx_crc_err = b.u64()?;
            s.collisions = b.u64()?;
        }
        Ok(())
    })?;
    Ok(s)
}

/// Append one `ofp_port_stats` of `version` (1.4+: 120 bytes with the
/// Ethernet property, as Open vSwitch sends).
pub(crate) fn put_port_stats(out: &mut Vec<u8>, s: &PortStats, version: u8) {
    if version < OFP14_VERSION {
        out.u32(s.port_no);
        out.zeros(4);
        wire::put_port_counters(out, s);
        out.u32(s.duration_sec);
        out.u32(s.duration_nsec);
        return;
    }
    out.u16(120);
    out.zeros(2);
    out.u32(s.port_no);
    out.u32(s.duration_sec);
    out.u32(s.duration_nsec);
    for v in [
        s.rx_packets,
        s.tx_packets,
        s.rx_bytes,
        s.tx_bytes,
        s.rx_dropped,
        s.tx_dropped,
        s.rx_errors,
        s.tx_errors,
    ] {
        out.u64(v);
    }
    out.u16(PROP_ETHERNET);
    out.u16(40);
    out.zeros(4);
    for v in [s.rx_frame_err, s.rx_over_err, s.rx_crc_err, s.collisions] {
        out.u64(v);
    }
}

/// Decode the body of an `ofp_port_mod` of `version`.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN`; `BAD_PROPERTY/BAD_TYPE` for a property other
/// than Ethernet (1.4+).
pub(crate) fn get_port_mod(rd: &mut Rd<'_>, version: u8) -> Result<PortMod, DecodeError> {
    let port_no = rd.u32()?;
    rd.skip(4)?;
    let hw_addr = rd.arr::<6>()?;
    rd.skip(2)?;
    let config = rd.u32()?;
    let mask = rd.u32()?;
    let mut advertise = 0;
    if version >= OFP14_VERSION {
        props(rd, |typ, mut b| match typ {
            PROP_ETHERNET => {
                advertise = b.u32()?;
                b.end()
            }
            _ => Err(err(OfError::BAD_PROPERTY_TYPE, "unknown port-mod property")),
        })?;
    } else {
        advertise = rd.u32()?;
        rd.skip(4)?;
        rd.end()?;
    }
    Ok(PortMod {
        port_no,
        hw_addr,
        config,
        mask,
        advertise,
    })
}

/// Append the body of an `ofp_port_mod` of `version` (1.4+: the Ethernet
/// property only when `advertise` is not zero, as Open vSwitch does).
pub(crate) fn put_port_mod(out: &mut Vec<u8>, p: &PortMod, version: u8) {
    out.u32(p.port_no);
    out.zeros(4);
    out.extend_from_slice(&p.hw_addr);
    out.zeros(2);
    out.u32(p.config);
    out.u32(p.mask);
    if version < OFP14_VERSION {
        out.u32(p.advertise);
        out.zeros(4);
    } else if p.advertise != 0 {
        out.u16(PROP_ETHERNET);
        out.u16(8);
        out.u32(p.advertise);
    }
}

// ---------------------------------------------------------------------------
// OpenFlow 1.0: 16-bit port numbers, `ofp_phy_port` (48 bytes), 1.0
// feature bits, `ofp_port_mod` and `ofp_port_stats`.

/// `sizeof(struct ofp_phy_port)`.
pub(crate) const PHY_PORT_LEN: usize = 48;

/// The 1.0 port config bits xennet keeps: PORT_DOWN, NO_RECV, NO_FLOOD,
/// NO_FWD, NO_PACKET_IN (NO_STP and NO_RECV_STP have no meaning here).
pub(crate) const PORT_CONFIG_KEPT: u32 = port_config::PORT_DOWN
    | port_config::NO_RECV
    | port_config::NO_FLOOD
    | port_config::NO_FWD
    | port_config::NO_PACKET_IN;

/// 1.0 16-bit port number to the model's 32-bit numbering (`0xff00..` →
/// `0xffffff00..`), as OVS `ofputil_port_from_ofp11` in reverse.
pub fn port_from_ofp10(p: u16) -> u32 {
    if p >= 0xff00 {
        0xffff_0000 | u32::from(p)
    } else {
        u32::from(p)
    }
}

/// The model's 32-bit port number as a 1.0 port, if it has one (ports
/// `0xff00..0xffffff00` have none).
pub fn port_to_ofp10(p: u32) -> Option<u16> {
    if p < 0xff00 {
        Some(p as u16)
    } else if p >= 0xffff_ff00 {
        Some((p & 0xffff) as u16)
    } else {
        None
    }
}

/// [`port_to_ofp10`], or `Unsupported` for a port with no 1.0 number.
pub(crate) fn port10(p: u32) -> Result<u16, EncodeError> {
    port_to_ofp10(p).ok_or(EncodeError::Unsupported("port number beyond 16 bits"))
}

/// 1.0 `ofp_port_features` to 1.3 numbering: speeds 0..=6 are the same,
/// COPPER..PAUSE_ASYM move from bits 7..=11 to 11..=15.
pub fn features_from_ofp10(f: u32) -> u32 {
    (f & 0x7f) | ((f & 0xf80) << 4)
}

/// 1.3 `ofp_port_features` to 1.0 (40G, 100G, 1T and OTHER are dropped).
pub fn features_to_ofp10(f: u32) -> u32 {
    (f & 0x7f) | ((f >> 4) & 0xf80)
}

/// The highest speed among 1.3 feature bits, in kbit/s (OVS
/// `netdev_features_to_bps(.., 0) / 1000`).
pub(crate) fn speed_kbps(f: u32) -> u32 {
    const TABLE: [(u32, u32); 7] = [
        (1 << 9, 1_000_000_000),
        (1 << 8, 100_000_000),
        (1 << 7, 40_000_000),
        (1 << 6, 10_000_000),
        (3 << 4, 1_000_000),
        (3 << 2, 100_000),
        (3, 10_000),
    ];
    TABLE
        .iter()
        .find(|(bits, _)| f & bits != 0)
        .map_or(0, |&(_, s)| s)
}

/// Decode `ofp_phy_port` (48 bytes). Config keeps PORT_DOWN, NO_RECV,
/// NO_FLOOD, NO_FWD, NO_PACKET_IN (NO_STP / NO_RECV_STP are dropped); state
/// keeps LINK_DOWN (the STP state bits are dropped); speeds are derived
/// from the feature bits, as OVS does.
pub(crate) fn decode_phy_port(b: &[u8]) -> Result<PortDesc, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let port_no = port_from_ofp10(r.u16()?);
    let hw_addr = r.arr::<6>()?;
    let name = get_str(r.take(16)?);
    let config = r.u32()? & PORT_CONFIG_KEPT;
    let state = r.u32()? & port_state::LINK_DOWN;
    let curr = features_from_ofp10(r.u32()?);
    let advertised = features_from_ofp10(r.u32()?);
    let supported = features_from_ofp10(r.u32()?);
    let peer = features_from_ofp10(r.u32()?);
    Ok(PortDesc {
        port_no,
        hw_addr,
        name,
        config,
        state,
        curr,
        advertised,
        supported,
        peer,
        curr_speed: speed_kbps(curr),
        max_speed: speed_kbps(supported),
    })
}

/// Encode `ofp_phy_port` (48 bytes). `curr_speed`/`max_speed`, the LIVE and
/// BLOCKED state bits and 1.3-only feature bits have no 1.0 form.
pub(crate) fn encode_phy_port(p: &PortDesc, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.u16(port10(p.port_no)?);
    out.extend_from_slice(&p.hw_addr);
    out.str(&p.name, 16);
    out.u32(p.config & PORT_CONFIG_KEPT);
    out.u32(p.state & port_state::LINK_DOWN);
    for f in [p.curr, p.advertised, p.supported, p.peer] {
        out.u32(features_to_ofp10(f));
    }
    Ok(())
}

/// Decode the body of a 1.0 `ofp_port_mod` (24 bytes, 16-bit port).
pub(crate) fn decode_port_mod(r: &mut Rd) -> Result<PortMod, DecodeError> {
    let port_no = port_from_ofp10(r.u16()?);
    let hw_addr = r.arr::<6>()?;
    let config = r.u32()? & PORT_CONFIG_KEPT;
    let mask = r.u32()? & PORT_CONFIG_KEPT;
    let advertise = features_from_ofp10(r.u32()?);
    r.skip(4)?;
    Ok(PortMod {
        port_no,
        hw_addr,
        config,
        mask,
        advertise,
    })
}

/// Append the body of a 1.0 `ofp_port_mod`.
pub(crate) fn encode_port_mod(pm: &PortMod, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.u16(port10(pm.port_no)?);
    out.extend_from_slice(&pm.hw_addr);
    out.u32(pm.config & PORT_CONFIG_KEPT);
    out.u32(pm.mask & PORT_CONFIG_KEPT);
    out.u32(features_to_ofp10(pm.advertise));
    out.zeros(4);
    Ok(())
}

/// 1.0 `ofp_port_stats` (104 bytes): no duration (decodes as 0).
pub(crate) fn decode_port_stats(b: &[u8]) -> Result<PortStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let port_no = port_from_ofp10(r.u16()?);
    r.skip(6)?;
    wire::get_port_counters(&mut r, port_no)
}

pub(crate) fn encode_port_stats(out: &mut Vec<u8>, s: &PortStats) -> Result<(), EncodeError> {
    out.u16(port10(s.port_no)?);
    out.zeros(6);
    wire::put_port_counters(out, s);
    Ok(())
}
