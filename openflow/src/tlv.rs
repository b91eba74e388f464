//! The Geneve option map (Nicira `NXT_TLV_TABLE_MOD` 24,
//! `NXT_TLV_TABLE_REQUEST` 25, `NXT_TLV_TABLE_REPLY` 26, in every
//! OpenFlow version; OVS `lib/ofp-match.c`, `lib/tun-metadata.c`), and
//! [`TlvMap`], a bridge's map from Geneve option `(class, type)` to the
//! match fields `tun_metadata0..63` and where each one's bytes live in a
//! flow key.
//!
//! # Space
//!
//! A flow key holds [`TUN_OPT_SPACE`] (32) bytes of option data (OVS
//! holds 256), as two 128-bit key fields ([`Field::TunOpts`]), and a
//! bitmap of the options present ([`Field::TunMdPresent`]). An option
//! takes `len` bytes in 4-byte units, contiguous and within one 16-byte
//! half (so its value is one 128-bit field's bits, as the pipeline
//! handles values); OVS can also split an option over several pieces.
//! A map that does not fit is refused with `NXTTMFC_TABLE_FULL`, and an
//! option longer than 16 bytes with `NXTTMFC_BAD_OPT_LEN` (OVS takes up
//! to 124), each logged with the limit: nothing is accepted and then
//! ignored.
//!
//! # Errors
//! As OVS: a command other than add, delete, clear is
//! `NXTTMFC_BAD_COMMAND`; a length not a multiple of 4 (or over the
//! limit) `NXTTMFC_BAD_OPT_LEN`; an index of 64 or more
//! `NXTTMFC_BAD_FIELD_IDX`; adding an index already mapped
//! `NXTTMFC_ALREADY_MAPPED`, an option already mapped to another index
//! `NXTTMFC_DUP_ENTRY`; no room `NXTTMFC_TABLE_FULL`. A failed add
//! changes nothing.

use std::cell::RefCell;
use std::sync::Arc;

use xennet_datapath::flow::{Field, FlowKey, TUN_OPT_SPACE};

use crate::error::{DecodeError, OfError};
use crate::wire::{Put, Rd};

/// `NXT_TLV_TABLE_MOD`.
pub const NXT_TLV_TABLE_MOD: u32 = 24;
/// `NXT_TLV_TABLE_REQUEST`.
pub const NXT_TLV_TABLE_REQUEST: u32 = 25;
/// `NXT_TLV_TABLE_REPLY`.
pub const NXT_TLV_TABLE_REPLY: u32 = 26;
/// `NXTTMC_ADD`.
pub const NXTTMC_ADD: u16 = 0;
/// `NXTTMC_DELETE`.
pub const NXTTMC_DELETE: u16 = 1;
/// `NXTTMC_CLEAR`.
pub const NXTTMC_CLEAR: u16 = 2;
/// `TUN_METADATA_NUM_OPTS`: fields `tun_metadata0..63`.
pub const TUN_METADATA_NUM_OPTS: u16 = 64;
/// `TLV_MAX_OPT_SIZE`: the longest option the wire format allows (OVS).
pub const TLV_MAX_OPT_SIZE: u8 = 124;
/// The longest option xennet maps, in bytes (one 128-bit value).
pub const MAX_OPT_LEN: u8 = 16;
/// `GENEVE_CRIT_OPT_TYPE`: the critical bit of an option type.
pub const GENEVE_CRIT_OPT_TYPE: u8 = 0x80;

/// One `nx_tlv_map`: option `(class, type)` of `len` bytes is
/// `tun_metadata<index>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlvMapping {
    /// Geneve option class.
    pub option_class: u16,
    /// Geneve option type.
    pub option_type: u8,
    /// Option length in bytes (a multiple of 4).
    pub option_len: u8,
    /// The field index (`tun_metadata<index>`, < 64).
    pub index: u16,
}

/// `NXT_TLV_TABLE_MOD`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlvTableMod {
    /// `NXTTMC_ADD`, `NXTTMC_DELETE` or `NXTTMC_CLEAR`.
    pub command: u16,
    /// The mappings (ignored for clear).
    pub mappings: Vec<TlvMapping>,
}

/// `NXT_TLV_TABLE_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlvTableReply {
    /// Bytes of option data a flow can hold.
    pub max_option_space: u32,
    /// Number of `tun_metadata` fields.
    pub max_fields: u16,
    /// The mappings, by index.
    pub mappings: Vec<TlvMapping>,
}

fn bad(e: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(e, what)
}

/// The `nx_tlv_map` array (OVS `decode_tlv_table_mappings`): 8 bytes
/// each; a length not a multiple of 4 or over 124 is `BAD_OPT_LEN`, an
/// index of `max_fields` or more `BAD_FIELD_IDX`.
fn get_mappings(rd: &mut Rd<'_>, max_fields: u16) -> Result<Vec<TlvMapping>, DecodeError> {
    if rd.len() % 8 != 0 {
        return Err(bad(OfError::BAD_LEN, "TLV map not a multiple of 8 bytes"));
    }
    let mut v = Vec::with_capacity(rd.len() / 8);
    while !rd.is_empty() {
        let m = TlvMapping {
            option_class: rd.u16()?,
            option_type: rd.u8()?,
            option_len: rd.u8()?,
            index: rd.u16()?,
        };
        rd.skip(2)?;
        if m.option_len % 4 != 0 || m.option_len > TLV_MAX_OPT_SIZE {
            return Err(bad(
                OfError::NXTTMFC_BAD_OPT_LEN,
                "TLV option length not a valid option size",
            ));
        }
        if m.index >= max_fields {
            return Err(bad(
                OfError::NXTTMFC_BAD_FIELD_IDX,
                "TLV field index too large",
            ));
        }
        v.push(m);
    }
    Ok(v)
}

fn put_mappings(out: &mut Vec<u8>, maps: &[TlvMapping]) {
    for m in maps {
        out.u16(m.option_class);
        out.u8(m.option_type);
        out.u8(m.option_len);
        out.u16(m.index);
        out.zeros(2);
    }
}

/// Decode an `NXT_TLV_TABLE_MOD` body (after the Nicira header).
///
/// # Errors
/// `BAD_LEN`, `NXTTMFC_BAD_COMMAND`, and the mapping errors.
pub(crate) fn get_table_mod(rd: &mut Rd<'_>) -> Result<TlvTableMod, DecodeError> {
    let command = rd.u16()?;
    rd.skip(6)?;
    if command > NXTTMC_CLEAR {
        return Err(bad(
            OfError::NXTTMFC_BAD_COMMAND,
            "unknown TLV table command",
        ));
    }
    let mappings = get_mappings(rd, TUN_METADATA_NUM_OPTS)?;
    Ok(TlvTableMod { command, mappings })
}

/// Append an `NXT_TLV_TABLE_MOD` body.
pub(crate) fn put_table_mod(out: &mut Vec<u8>, m: &TlvTableMod) {
    out.u16(m.command);
    out.zeros(6);
    put_mappings(out, &m.mappings);
}

/// Decode an `NXT_TLV_TABLE_REPLY` body.
///
/// # Errors
/// `BAD_LEN` and the mapping errors.
pub(crate) fn get_table_reply(rd: &mut Rd<'_>) -> Result<TlvTableReply, DecodeError> {
    let max_option_space = rd.u32()?;
    let max_fields = rd.u16()?;
    rd.skip(10)?;
    let mappings = get_mappings(rd, max_fields)?;
    Ok(TlvTableReply {
        max_option_space,
        max_fields,
        mappings,
    })
}

/// Append an `NXT_TLV_TABLE_REPLY` body.
pub(crate) fn put_table_reply(out: &mut Vec<u8>, r: &TlvTableReply) {
    out.u32(r.max_option_space);
    out.u16(r.max_fields);
    out.zeros(10);
    put_mappings(out, &r.mappings);
}

thread_local! {
    /// The TLV map the codec decodes and encodes `tun_metadata` fields
    /// with on this thread ([`with_map`]).
    static CURRENT: RefCell<Option<Arc<TlvMap>>> = const { RefCell::new(None) };
}

/// Run `f` with `map` as the TLV map the codec uses for `tun_metadata`
/// fields (OVS passes its `vl_mff_map` to the decoders); without one, a
/// `tun_metadata` field is `NXFMFC_INVALID_TLV_FIELD`. The connection of
/// a bridge decodes and encodes its messages inside this.
pub fn with_map<R>(map: Option<Arc<TlvMap>>, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(map));
    let r = f();
    CURRENT.with(|c| *c.borrow_mut() = prev);
    r
}

/// Where `tun_metadata<index>` lives in the current map.
pub(crate) fn current_loc(index: u16) -> Option<TlvLoc> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(|m| m.loc(index).copied()))
}

/// Where one mapped option lives in a flow key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlvLoc {
    /// The mapping.
    pub map: TlvMapping,
    /// First byte in the option space (a multiple of 4).
    pub offset: u8,
}

impl TlvLoc {
    /// The option's value as key bits: `(key field, shift, bits)`, the
    /// value being `(key >> shift) & ones(bits)` (as
    /// [`crate::model::OxmField`] layouts).
    pub fn layout(&self) -> (Field, u32, u32) {
        let half = self.offset / 16;
        let end = u32::from(self.offset % 16) + u32::from(self.map.option_len);
        (
            Field::TunOpts(half),
            8 * (16 - end),
            8 * u32::from(self.map.option_len),
        )
    }
}

/// A bridge's Geneve option map (OVS `struct tun_table`): see the module
/// docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlvMap {
    /// By index: the mapped options.
    entries: Vec<Option<TlvLoc>>,
}

impl TlvMap {
    /// An empty map.
    pub fn new() -> TlvMap {
        TlvMap {
            entries: vec![None; usize::from(TUN_METADATA_NUM_OPTS)],
        }
    }

    /// Where `tun_metadata<index>` lives, if mapped.
    pub fn loc(&self, index: u16) -> Option<&TlvLoc> {
        self.entries.get(usize::from(index))?.as_ref()
    }

    /// The mapped options, by index.
    pub fn mappings(&self) -> Vec<TlvMapping> {
        self.entries.iter().flatten().map(|l| l.map).collect()
    }

    /// `NXT_TLV_TABLE_REPLY` for this map.
    pub fn reply(&self) -> TlvTableReply {
        TlvTableReply {
            max_option_space: TUN_OPT_SPACE as u32,
            max_fields: TUN_METADATA_NUM_OPTS,
            mappings: self.mappings(),
        }
    }

    /// Bytes of option space in use, as a bitmap of 4-byte units.
    fn used_units(&self) -> u64 {
        let mut used = 0u64;
        for l in self.entries.iter().flatten() {
            let units = u32::from(l.map.option_len) / 4;
            used |= ((1u64 << units) - 1) << (l.offset / 4);
        }
        used
    }

    /// Apply a table mod (OVS `tun_metadata_table_mod`); on error the map
    /// is unchanged. `in_use(index)` says whether flows use the field
    /// (deleting it is then `NXTTMFC_INVALID_TLV_DEL`, as OVS's
    /// `vl_mff_map` refcounts).
    ///
    /// # Errors
    /// See the module docs.
    pub fn apply(&mut self, m: &TlvTableMod, in_use: &dyn Fn(u16) -> bool) -> Result<(), OfError> {
        let mut new = self.clone();
        match m.command {
            NXTTMC_ADD => {
                for map in &m.mappings {
                    new.add(*map)?;
                }
            }
            NXTTMC_DELETE => {
                for map in &m.mappings {
                    if new.loc(map.index).is_some() && in_use(map.index) {
                        return Err(OfError::NXTTMFC_INVALID_TLV_DEL);
                    }
                    if let Some(e) = new.entries.get_mut(usize::from(map.index)) {
                        *e = None;
                    }
                }
            }
            NXTTMC_CLEAR => {
                for i in 0..TUN_METADATA_NUM_OPTS {
                    if new.loc(i).is_some() && in_use(i) {
                        return Err(OfError::NXTTMFC_INVALID_TLV_DEL);
                    }
                }
                new = TlvMap::new();
            }
            _ => return Err(OfError::NXTTMFC_BAD_COMMAND),
        }
        *self = new;
        Ok(())
    }

    fn add(&mut self, map: TlvMapping) -> Result<(), OfError> {
        let idx = usize::from(map.index);
        if idx >= self.entries.len() {
            return Err(OfError::NXTTMFC_BAD_FIELD_IDX);
        }
        if self.entries[idx].is_some() {
            return Err(OfError::NXTTMFC_ALREADY_MAPPED);
        }
        if self
            .entries
            .iter()
            .flatten()
            .any(|l| l.map.option_class == map.option_class && l.map.option_type == map.option_type)
        {
            return Err(OfError::NXTTMFC_DUP_ENTRY);
        }
        if map.option_len % 4 != 0 || map.option_len > TLV_MAX_OPT_SIZE {
            return Err(OfError::NXTTMFC_BAD_OPT_LEN);
        }
        if map.option_len > MAX_OPT_LEN {
            return Err(OfError::NXTTMFC_BAD_OPT_LEN);
        }
        // First fit in 4-byte units, within one 16-byte half.
        let units = u32::from(map.option_len) / 4;
        let used = self.used_units();
        let want = (1u64 << units) - 1;
        let n_units = (TUN_OPT_SPACE / 4) as u32;
        let slot = (0..=n_units.saturating_sub(units))
            .filter(|s| units == 0 || s / 4 == (s + units - 1) / 4)
            .find(|s| used & (want << s) == 0);
        let Some(slot) = slot else {
            return Err(OfError::NXTTMFC_TABLE_FULL);
        };
        self.entries[idx] = Some(TlvLoc {
            map,
            offset: (4 * slot) as u8,
        });
        Ok(())
    }

    /// Fill `key`'s tunnel metadata from the options of a Geneve header
    /// (`opts`: the bytes after the 8-byte base header; OVS
    /// `tun_metadata_from_geneve_udpif`): each mapped option of the mapped
    /// length is stored and marked present; unmapped options are skipped
    /// unless critical.
    ///
    /// # Errors
    /// [`GeneveError`]: truncated options, a mapped option of another
    /// length, an unmapped critical option.
    pub fn decode_geneve(&self, opts: &[u8], key: &mut FlowKey) -> Result<(), GeneveError> {
        self.geneve_to_words(opts)?.store(key);
        Ok(())
    }

    /// [`TlvMap::decode_geneve`] into the key words alone, for a packet's
    /// metadata to carry until its key is extracted.
    ///
    /// # Errors
    /// As [`TlvMap::decode_geneve`].
    pub fn geneve_to_words(&self, opts: &[u8]) -> Result<TunMetadataWords, GeneveError> {
        let mut present = 0u64;
        let mut rest = opts;
        let mut space = [0u128; 2];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(GeneveError::Truncated);
            }
            let class = u16::from_be_bytes([rest[0], rest[1]]);
            let typ = rest[2];
            let len = 4 * usize::from(rest[3] & 0x1f);
            let body = rest.get(4..4 + len).ok_or(GeneveError::Truncated)?;
            let entry = self.entries.iter().enumerate().find_map(|(i, l)| {
                l.filter(|l| l.map.option_class == class && l.map.option_type == typ)
                    .map(|l| (i, l))
            });
            match entry {
                Some((i, l)) => {
                    if usize::from(l.map.option_len) != len {
                        return Err(GeneveError::BadLength { class, typ });
                    }
                    let (_, shift, bits) = l.layout();
                    let v = body.iter().fold(0u128, |v, &b| (v << 8) | u128::from(b));
                    let half = usize::from(l.offset / 16);
                    if bits > 0 {
                        space[half] |= v << shift;
                    }
                    present |= 1 << i;
                }
                None if typ & GENEVE_CRIT_OPT_TYPE != 0 => {
                    return Err(GeneveError::UnknownCritical { class, typ });
                }
                None => {}
            }
            rest = &rest[4 + len..];
        }
        Ok(TunMetadataWords {
            opts: space,
            present,
        })
    }

    /// The Geneve options for `key`'s present tunnel metadata, in index
    /// order (OVS `tun_metadata_to_geneve__`), and whether one is
    /// critical.
    pub fn encode_geneve(&self, key: &FlowKey) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let crit = self.words_to_geneve(&TunMetadataWords::load(key), &mut out);
        (out, crit)
    }

    /// [`TlvMap::encode_geneve`] from a packet's metadata words: appends
    /// the options to `out`; returns whether one is critical.
    pub fn words_to_geneve(&self, w: &TunMetadataWords, out: &mut Vec<u8>) -> bool {
        let mut crit = false;
        for (i, l) in self.entries.iter().enumerate() {
            let Some(l) = l else { continue };
            if w.present & (1 << i) == 0 {
                continue;
            }
            let (_, shift, bits) = l.layout();
            let word = w.opts[usize::from(l.offset / 16)];
            let v = if bits == 0 {
                0
            } else {
                (word >> shift) & (u128::MAX >> (128 - bits))
            };
            out.u16(l.map.option_class);
            out.u8(l.map.option_type);
            out.u8(l.map.option_len / 4);
            let n = usize::from(l.map.option_len);
            out.extend_from_slice(&v.to_be_bytes()[16 - n..]);
            crit |= l.map.option_type & GENEVE_CRIT_OPT_TYPE != 0;
        }
        crit
    }
}

/// A packet's tunnel metadata as a flow key holds it: the option space
/// ([`Field::TunOpts`]) and the present bitmap ([`Field::TunMdPresent`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TunMetadataWords {
    /// Option space, 16 bytes per word, big-endian.
    pub opts: [u128; 2],
    /// Bit i: `tun_metadata<i>` present.
    pub present: u64,
}

impl TunMetadataWords {
    /// Store into `key`.
    pub fn store(&self, key: &mut FlowKey) {
        key.set(Field::TunOpts(0), self.opts[0]);
        key.set(Field::TunOpts(1), self.opts[1]);
        key.set(Field::TunMdPresent, u128::from(self.present));
    }

    /// Load from `key`.
    pub fn load(key: &FlowKey) -> TunMetadataWords {
        TunMetadataWords {
            opts: [key.get(Field::TunOpts(0)), key.get(Field::TunOpts(1))],
            present: key.get(Field::TunMdPresent) as u64,
        }
    }
}

/// Why Geneve options could not be stored in a flow key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeneveError {
    /// An option runs past the end of the options.
    #[error("truncated Geneve option")]
    Truncated,
    /// A mapped option with a length other than its mapping's.
    #[error("Geneve option class {class:#x} type {typ:#x} has a length other than its mapping's")]
    BadLength {
        /// Option class.
        class: u16,
        /// Option type.
        typ: u8,
    },
    /// An unmapped option with the critical bit.
    #[error("unmapped critical Geneve option class {class:#x} type {typ:#x}")]
    UnknownCritical {
        /// Option class.
        class: u16,
        /// Option type.
        typ: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(class: u16, typ: u8, len: u8, index: u16) -> TlvMapping {
        TlvMapping {
            option_class: class,
            option_type: typ,
            option_len: len,
            index,
        }
    }

    fn add(maps: &[TlvMapping]) -> TlvTableMod {
        TlvTableMod {
            command: NXTTMC_ADD,
            mappings: maps.to_vec(),
        }
    }

    #[test]
    fn test_table_mod_bytes() {
        // `ovs-ofctl add-tlv-map br0 "{class=0x102,type=0x80,len=4}->tun_metadata0"`
        // (OVN's map), the body after the Nicira header.
        let body = [0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x80, 4, 0, 0, 0, 0];
        let m = get_table_mod(&mut Rd::new(&body, OfError::BAD_LEN)).unwrap();
        assert_eq!(m, add(&[map(0x102, 0x80, 4, 0)]));
        let mut out = Vec::new();
        put_table_mod(&mut out, &m);
        assert_eq!(out, body);
        let err = |b: &[u8]| {
            get_table_mod(&mut Rd::new(b, OfError::BAD_LEN))
                .unwrap_err()
                .err
        };
        let mut b = body;
        b[1] = 3;
        assert_eq!(err(&b), OfError::NXTTMFC_BAD_COMMAND);
        let mut b = body;
        b[11] = 6;
        assert_eq!(err(&b), OfError::NXTTMFC_BAD_OPT_LEN);
        let mut b = body;
        b[11] = 128;
        assert_eq!(err(&b), OfError::NXTTMFC_BAD_OPT_LEN);
        let mut b = body;
        b[13] = 64;
        assert_eq!(err(&b), OfError::NXTTMFC_BAD_FIELD_IDX);
        assert_eq!(err(&body[..12]), OfError::BAD_LEN);
    }

    #[test]
    fn test_map_semantics() {
        let none = |_: u16| false;
        let mut t = TlvMap::new();
        t.apply(&add(&[map(0xffff, 0, 4, 0), map(0x102, 0x80, 8, 3)]), &none)
            .unwrap();
        assert_eq!(t.loc(0).unwrap().offset, 0);
        assert_eq!(t.loc(3).unwrap().offset, 4);
        assert_eq!(
            t.reply(),
            TlvTableReply {
                max_option_space: 32,
                max_fields: 64,
                mappings: vec![map(0xffff, 0, 4, 0), map(0x102, 0x80, 8, 3)],
            }
        );
        // Already mapped, duplicate option, too long, no room: unchanged.
        let before = t.clone();
        for (m, e) in [
            (map(1, 1, 4, 0), OfError::NXTTMFC_ALREADY_MAPPED),
            (map(0xffff, 0, 4, 1), OfError::NXTTMFC_DUP_ENTRY),
            (map(1, 1, 20, 1), OfError::NXTTMFC_BAD_OPT_LEN),
        ] {
            assert_eq!(t.apply(&add(&[map(7, 7, 4, 9), m]), &none), Err(e));
            assert_eq!(t, before);
        }
        t.apply(&add(&[map(1, 1, 16, 1)]), &none).unwrap();
        assert_eq!(t.loc(1).unwrap().offset, 16);
        // 4 bytes are left in the first half.
        assert_eq!(
            t.apply(&add(&[map(2, 2, 8, 2)]), &none),
            Err(OfError::NXTTMFC_TABLE_FULL)
        );
        t.apply(&add(&[map(2, 2, 4, 2)]), &none).unwrap();
        assert_eq!(
            t.apply(&add(&[map(3, 3, 4, 4)]), &none),
            Err(OfError::NXTTMFC_TABLE_FULL)
        );
        // A field flows use cannot go.
        let del = TlvTableMod {
            command: NXTTMC_DELETE,
            mappings: vec![map(0, 0, 0, 3)],
        };
        assert_eq!(
            t.apply(&del, &|i| i == 3),
            Err(OfError::NXTTMFC_INVALID_TLV_DEL)
        );
        t.apply(&del, &none).unwrap();
        assert!(t.loc(3).is_none());
        t.apply(&add(&[map(3, 3, 8, 4)]), &none).unwrap();
        let clear = TlvTableMod {
            command: NXTTMC_CLEAR,
            mappings: vec![],
        };
        t.apply(&clear, &none).unwrap();
        assert_eq!(t, TlvMap::new());
    }

    /// `tun_metadata0=0x1234` as ovs-ofctl sends it (2 bytes, no map
    /// known to it) decodes right-aligned into the mapped 4 bytes, with
    /// the option's present bit; it encodes back with the mapped length;
    /// unmapped it is `NXFMFC_INVALID_TLV_FIELD`; set-field and move
    /// headers name it too.
    #[test]
    fn test_tun_metadata_fields() {
        use crate::model::{MfField, OxmField};
        use crate::oxm::{self, Flavor};
        let nxm = [0x00, 0x01, 0x50, 0x02, 0x12, 0x34];
        assert_eq!(
            oxm::decode_tlvs(&nxm).unwrap_err().err,
            OfError::NXFMFC_INVALID_TLV_FIELD
        );
        let mut t = TlvMap::new();
        t.apply(
            &add(&[map(0xffff, 0, 8, 1), map(0x102, 0x80, 4, 0)]),
            &|_| false,
        )
        .unwrap();
        let t = Arc::new(t);
        with_map(Some(t.clone()), || {
            let m = oxm::decode_tlvs(&nxm).unwrap();
            let f = OxmField::TunMetadata {
                index: 0,
                offset: 8,
                len: 4,
            };
            assert_eq!(m.field(f), (0x1234, 0xffff_ffff));
            assert_eq!(m.key.get(Field::TunMdPresent), 1);
            assert_eq!(m.mask.get(Field::TunMdPresent), 1);
            let mut out = Vec::new();
            oxm::encode_tlvs(&m, Flavor::Nxm, &mut out);
            assert_eq!(out, [0x00, 0x01, 0x50, 0x04, 0, 0, 0x12, 0x34]);
            // Masked, and longer than mapped.
            let masked = [0x00, 0x01, 0x51, 0x04, 0x12, 0x00, 0xff, 0x00];
            let m = oxm::decode_tlvs(&masked).unwrap();
            assert_eq!(m.field(f), (0x1200, 0xff00));
            let long = [0x00, 0x01, 0x50, 0x05, 1, 2, 3, 4, 5];
            assert_eq!(
                oxm::decode_tlvs(&long).unwrap_err().err,
                OfError::BAD_MATCH_LEN
            );
            // A set-field and a move header.
            assert_eq!(oxm::decode_set_field(&nxm).unwrap(), (f, 0x1234, 6));
            let (mf, _, used) = oxm::pull_mf_header(&[0x00, 0x01, 0x50, 0x7c]).unwrap();
            assert_eq!((mf, used), (MfField::Oxm(f), 4));
        });
    }

    #[test]
    fn test_geneve_round_trip() {
        let mut t = TlvMap::new();
        t.apply(
            &add(&[map(0x102, 0x80, 4, 0), map(0xffff, 1, 8, 5)]),
            &|_| false,
        )
        .unwrap();
        let opts = [
            0xff, 0xff, 0x01, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, // tun_metadata5
            0x00, 0x07, 0x00, 0x01, 9, 9, 9, 9, // unmapped, not critical
            0x01, 0x02, 0x80, 0x01, 0xa, 0xb, 0xc, 0xd, // tun_metadata0
        ];
        let mut key = FlowKey::default();
        t.decode_geneve(&opts, &mut key).unwrap();
        assert_eq!(key.get(Field::TunMdPresent), 0b10_0001);
        let (kf, shift, bits) = t.loc(0).unwrap().layout();
        assert_eq!((key.get(kf) >> shift) & ((1 << bits) - 1), 0x0a0b_0c0d);
        assert_eq!(
            t.geneve_to_words(&opts).unwrap(),
            TunMetadataWords::load(&key)
        );
        let (out, crit) = t.encode_geneve(&key);
        assert!(crit);
        assert_eq!(
            out,
            [
                0x01, 0x02, 0x80, 0x01, 0xa, 0xb, 0xc, 0xd, 0xff, 0xff, 0x01, 0x02, 1, 2, 3, 4, 5,
                6, 7, 8
            ]
        );
        let bad = |o: &[u8]| t.decode_geneve(o, &mut FlowKey::default()).unwrap_err();
        assert_eq!(bad(&opts[..6]), GeneveError::Truncated);
        assert_eq!(
            bad(&[0x01, 0x02, 0x80, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]),
            GeneveError::BadLength {
                class: 0x102,
                typ: 0x80
            }
        );
        assert_eq!(
            bad(&[0, 9, 0x81, 0]),
            GeneveError::UnknownCritical {
                class: 9,
                typ: 0x81
            }
        );
    }
}
