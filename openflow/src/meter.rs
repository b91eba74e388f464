//! The meter family (Open vSwitch `lib/ofp-meter.c`) for OpenFlow 1.3, 1.4
//! and 1.5 (OpenFlow 1.0 has no meters): meter-mod bodies, meter bands,
//! meter statistics, configuration and features (1.3 §7.3.4.4,
//! §7.3.5.12 to §7.3.5.14; unchanged in 1.4 and 1.5). In 1.5 the meter of
//! a flow is an action rather than an instruction, which is
//! [`crate::instructions`]' business.
//!
//! Bands: `OFPMBT_DROP` and `OFPMBT_DSCP_REMARK` (16 bytes each);
//! experimenter bands are refused with `METER_MOD_FAILED/BAD_BAND`.

use crate::error::{DecodeError, OfError};
use crate::model::{
    EncodeError, MeterBand, MeterBandKind, MeterConfig, MeterFeatures, MeterMod, MeterModCommand,
    MeterStats,
};
use crate::wire::{end_record, err, get_counters, Put, Rd};

/// `ofp_meter_band_*` list (§7.3.4.4).
pub(crate) fn get_bands(buf: &[u8]) -> Result<Vec<MeterBand>, DecodeError> {
    let mut rd = Rd::new(buf, OfError::METER_BAD_BAND);
    let mut v = Vec::new();
    while !rd.is_empty() {
        let typ = rd.peek_len(0)?;
        let len = rd.peek_len(2)?;
        if len != 16 {
            return Err(err(OfError::METER_BAD_BAND, "bad meter band length"));
        }
        let mut b = rd.record(len, 16)?;
        b.skip(4)?;
        let rate = b.u32()?;
        let burst_size = b.u32()?;
        let kind = match typ {
            1 => MeterBandKind::Drop,
            2 => MeterBandKind::DscpRemark {
                prec_level: b.u8()?,
            },
            _ => return Err(err(OfError::METER_BAD_BAND, "unsupported meter band")),
        };
        v.push(MeterBand {
            kind,
            rate,
            burst_size,
        });
    }
    Ok(v)
}

pub(crate) fn put_bands(out: &mut Vec<u8>, bands: &[MeterBand]) {
    for b in bands {
        let (typ, prec) = match b.kind {
            MeterBandKind::Drop => (1, 0),
            MeterBandKind::DscpRemark { prec_level } => (2, prec_level),
        };
        out.u16(typ);
        out.u16(16);
        out.u32(b.rate);
        out.u32(b.burst_size);
        out.u8(prec);
        out.zeros(3);
    }
}

pub(crate) fn get_meter_mod(rd: &mut Rd<'_>) -> Result<MeterMod, DecodeError> {
    let command = match rd.u16()? {
        0 => MeterModCommand::Add,
        1 => MeterModCommand::Modify,
        2 => MeterModCommand::Delete,
        _ => return Err(err(OfError::METER_BAD_COMMAND, "unknown meter-mod command")),
    };
    Ok(MeterMod {
        command,
        flags: rd.u16()?,
        meter_id: rd.u32()?,
        bands: get_bands(rd.rest())?,
    })
}

pub(crate) fn put_meter_mod(out: &mut Vec<u8>, m: &MeterMod) {
    out.u16(match m.command {
        MeterModCommand::Add => 0,
        MeterModCommand::Modify => 1,
        MeterModCommand::Delete => 2,
    });
    out.u16(m.flags);
    out.u32(m.meter_id);
    put_bands(out, &m.bands);
}

pub(crate) fn get_meter_stats(rd: &mut Rd<'_>) -> Result<MeterStats, DecodeError> {
    let len = rd.peek_len(4)?;
    let mut r = rd.record(len, 40)?;
    let meter_id = r.u32()?;
    r.skip(8)?;
    Ok(MeterStats {
        meter_id,
        flow_count: r.u32()?,
        packet_in_count: r.u64()?,
        byte_in_count: r.u64()?,
        duration_sec: r.u32()?,
        duration_nsec: r.u32()?,
        bands: get_counters(&mut r)?,
    })
}

pub(crate) fn put_meter_stats(out: &mut Vec<u8>, m: &MeterStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u32(m.meter_id);
    out.u16(0);
    out.zeros(6);
    out.u32(m.flow_count);
    out.u64(m.packet_in_count);
    out.u64(m.byte_in_count);
    out.u32(m.duration_sec);
    out.u32(m.duration_nsec);
    for (p, b) in &m.bands {
        out.u64(*p);
        out.u64(*b);
    }
    end_record(out, start, start + 4)
}

pub(crate) fn get_meter_config(rd: &mut Rd<'_>) -> Result<MeterConfig, DecodeError> {
    let len = rd.peek_len(0)?;
    let mut r = rd.record(len, 8)?;
    r.skip(2)?;
    Ok(MeterConfig {
        flags: r.u16()?,
        meter_id: r.u32()?,
        bands: get_bands(r.rest())?,
    })
}

pub(crate) fn put_meter_config(out: &mut Vec<u8>, m: &MeterConfig) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u16(m.flags);
    out.u32(m.meter_id);
    put_bands(out, &m.bands);
    end_record(out, start, start)
}

/// `ofp_meter_features` (1.3 §7.3.5.14, 16 bytes).
pub(crate) fn get_meter_features(rd: &mut Rd<'_>) -> Result<MeterFeatures, DecodeError> {
    let f = MeterFeatures {
        max_meter: rd.u32()?,
        band_types: rd.u32()?,
        capabilities: rd.u32()?,
        max_bands: rd.u8()?,
        max_color: rd.u8()?,
    };
    rd.skip(2)?;
    rd.end()?;
    Ok(f)
}

pub(crate) fn put_meter_features(out: &mut Vec<u8>, f: &MeterFeatures) {
    out.u32(f.max_meter);
    out.u32(f.band_types);
    out.u32(f.capabilities);
    out.u8(f.max_bands);
    out.u8(f.max_color);
    out.zeros(2);
}
