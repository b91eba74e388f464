//! A compact match: a [`FlowKey`]/[`FlowMask`] pair that stores only the
//! words the mask has bits in (OVS `struct minimatch`, `lib/match.h`,
//! built on `struct miniflow`, `lib/flow.h`).
//!
//! A full match is `2 * N_WORDS` words (608 bytes with 38 words) although
//! an OpenFlow rule matches a handful of fields: `ip,nw_dst=10.0.0.1`
//! has bits in 2 of the key's words. A [`MiniMatch`] keeps a bitmap of
//! the mask's nonzero words and, in one shared heap slice, the masked
//! key's values of those words followed by the mask's: 24 bytes inline
//! plus `16 * n` bytes for `n` words (48 bytes of heap for that rule).
//!
//! The slice is an `Arc<[u64]>`, not a `Box<[u64]>`: the flow tables keep
//! a rule's match in the rule and in the classifier's bucket; cloning
//! shares the one copy instead of allocating another.
//!
//! The representation is canonical (the bitmap is a function of the mask
//! alone and the key words are stored masked), so the derived equality
//! and hash are those of the full match it stands for.
//!
//! Expand to a full pair ([`MiniMatch::key`], [`MiniMatch::mask`]) only
//! where a whole key is needed (dumps, display); matching, comparing and
//! hashing work on the compact form.

use std::sync::Arc;

use super::{FlowKey, FlowMask, N_WORDS};

// The word bitmap is a `u64`: the key may grow (tunnel metadata) up to
// 64 words before it needs a wider map.
const _: () = assert!(N_WORDS <= 64, "MiniMatch's map holds one bit per word");

/// A compact match (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MiniMatch {
    /// Bit `i` set: mask word `i` is nonzero.
    map: u64,
    /// The masked key's words in the map's order, then the mask's words
    /// in the same order (`2 * map.count_ones()` words).
    words: Arc<[u64]>,
}

impl std::fmt::Debug for MiniMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniMatch")
            .field("map", &format_args!("{:#x}", self.map))
            .field("key", &self.key_words())
            .field("mask", &self.mask_words())
            .finish()
    }
}

impl Default for MiniMatch {
    fn default() -> Self {
        MiniMatch::catchall()
    }
}

/// The word indexes whose bit is set in `map`, ascending.
#[inline]
fn map_indexes(mut map: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if map == 0 {
            return None;
        }
        let i = map.trailing_zeros() as usize;
        map &= map - 1;
        Some(i)
    })
}

impl MiniMatch {
    /// The match-everything match (allocates nothing beyond an empty
    /// slice).
    pub fn catchall() -> MiniMatch {
        MiniMatch {
            map: 0,
            words: Arc::from(Vec::new()),
        }
    }

    /// The compact form of `key` under `mask` (key bits outside the mask
    /// are dropped).
    pub fn new(key: &FlowKey, mask: &FlowMask) -> MiniMatch {
        let mut map = 0u64;
        for (i, w) in mask.words.iter().enumerate() {
            map |= u64::from(*w != 0) << i;
        }
        let n = map.count_ones() as usize;
        // Gathered on the stack, then one allocation of the exact size.
        let mut words = [0u64; 2 * N_WORDS];
        for (j, i) in map_indexes(map).enumerate() {
            words[j] = key.words[i] & mask.words[i];
            words[n + j] = mask.words[i];
        }
        MiniMatch {
            map,
            words: Arc::from(&words[..2 * n]),
        }
    }

    /// Bit `i` set: word `i` of the mask has significant bits.
    #[inline]
    pub fn map(&self) -> u64 {
        self.map
    }

    /// Number of words stored (nonzero mask words).
    #[inline]
    pub fn n_words(&self) -> usize {
        self.words.len() / 2
    }

    /// The masked key's values of the mask's nonzero words, ascending by
    /// word index.
    #[inline]
    pub fn key_words(&self) -> &[u64] {
        &self.words[..self.n_words()]
    }

    /// The mask's nonzero words, ascending by word index.
    #[inline]
    pub fn mask_words(&self) -> &[u64] {
        &self.words[self.n_words()..]
    }

    /// `(word index, masked key word, mask word)` for every nonzero mask
    /// word, ascending.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        map_indexes(self.map)
            .zip(self.key_words())
            .zip(self.mask_words())
            .map(|((i, k), m)| (i, *k, *m))
    }

    /// Whether nothing is significant.
    #[inline]
    pub fn is_catchall(&self) -> bool {
        self.map == 0
    }

    /// The full (masked) key.
    pub fn key(&self) -> FlowKey {
        let mut k = FlowKey::default();
        for (i, v, _) in self.iter() {
            k.words[i] = v;
        }
        k
    }

    /// The full mask.
    pub fn mask(&self) -> FlowMask {
        let mut m = FlowMask::CATCHALL;
        for (i, _, v) in self.iter() {
            m.words[i] = v;
        }
        m
    }

    /// Whether `key` matches: agrees with the match on every significant
    /// bit (OVS `minimatch_matches_flow`).
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        self.iter().all(|(i, v, m)| key.words[i] & m == v)
    }

    /// Whether every packet `self` matches is matched by `outer` (`self`
    /// is at least as specific; OpenFlow non-strict matching, 1.3.5 §6.4;
    /// OVS `cls_rule_is_loose_match`).
    pub fn within(&self, outer: &MiniMatch) -> bool {
        // Every word outer cares about must be a word self cares about.
        if outer.map & !self.map != 0 {
            return false;
        }
        let mut mine = self.iter().peekable();
        for (i, ov, om) in outer.iter() {
            // Advance to word i in self (present: map checked above).
            let Some((_, sv, sm)) = mine.by_ref().find(|(j, _, _)| *j == i) else {
                return false;
            };
            if sm & om != om || (sv ^ ov) & om != 0 {
                return false;
            }
        }
        true
    }

    /// Whether some key matches both `self` and `other` (the test of OVS
    /// `classifier_rule_overlaps`).
    pub fn overlaps(&self, other: &MiniMatch) -> bool {
        let both = self.map & other.map;
        if both == 0 {
            return true;
        }
        let (mut a, mut b) = (self.iter(), other.iter());
        for i in map_indexes(both) {
            let (Some((_, av, am)), Some((_, bv, bm))) = (
                a.by_ref().find(|(j, _, _)| *j == i),
                b.by_ref().find(|(j, _, _)| *j == i),
            ) else {
                return false;
            };
            if (av ^ bv) & am & bm != 0 {
                return false;
            }
        }
        true
    }

    /// Heap bytes held (shared among clones), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }
}

impl std::fmt::Display for MiniMatch {
    /// `ovs-ofctl` match style, as [`FlowKey::display_masked`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (key, mask) = (self.key(), self.mask());
        key.display_masked(&mask).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Field;
    use proptest::prelude::*;

    /// A random match over a few fields spread across the key's words,
    /// with full or partial masks and key bits outside the mask.
    fn arb_pair() -> impl Strategy<Value = (FlowKey, FlowMask)> {
        const FIELDS: [Field; 10] = [
            Field::InPort,
            Field::DlDst,
            Field::DlType,
            Field::NwSrc,
            Field::TpDst,
            Field::Metadata,
            Field::Reg(3),
            Field::TunId,
            Field::CtLabel,
            Field::NdReserved,
        ];
        (
            proptest::collection::vec((0..FIELDS.len(), 0u128..4, 0u8..3), 0..6),
            proptest::collection::vec(any::<u64>(), N_WORDS),
        )
            .prop_map(|(fs, noise)| {
                let mut k = FlowKey::default();
                k.words.copy_from_slice(&noise);
                let mut m = FlowMask::CATCHALL;
                for (fi, v, how) in fs {
                    let f = FIELDS[fi];
                    let mm = match how {
                        0 => f.all_ones(),
                        1 => 1,
                        _ => f.all_ones() & !1,
                    };
                    k.set(f, v);
                    m.set(f, mm);
                }
                (k, m)
            })
    }

    /// Keys from a small value space around the matches' values.
    fn arb_key() -> impl Strategy<Value = FlowKey> {
        proptest::collection::vec(0u64..4, N_WORDS).prop_map(|v| {
            let mut k = FlowKey::default();
            k.words.copy_from_slice(&v);
            k
        })
    }

    fn full_within(inner: &(FlowKey, FlowMask), outer: &(FlowKey, FlowMask)) -> bool {
        (0..N_WORDS).all(|i| {
            let om = outer.1.words[i];
            inner.1.words[i] & om == om && (inner.0.words[i] ^ outer.0.words[i]) & om == 0
        })
    }

    fn full_overlaps(a: &(FlowKey, FlowMask), b: &(FlowKey, FlowMask)) -> bool {
        (0..N_WORDS).all(|i| (a.0.words[i] ^ b.0.words[i]) & a.1.words[i] & b.1.words[i] == 0)
    }

    #[test]
    fn stores_only_the_masks_words() {
        let mut k = FlowKey::default();
        let mut m = FlowMask::CATCHALL;
        k.set_dl_type(0x0800);
        m.set_exact(Field::DlType);
        k.set_nw_dst_v4([10, 0, 0, 1].into());
        m.set(Field::NwDst, 0xffff_ffff);
        k.set_tp_src(99); // outside the mask: dropped
        let mm = MiniMatch::new(&k, &m);
        assert_eq!(mm.n_words(), 2);
        assert_eq!(mm.heap_bytes(), 4 * 8);
        assert_eq!(mm.mask(), m);
        assert_eq!(mm.key(), k.masked(&m));
        assert_eq!(mm.to_string(), k.display_masked(&m).to_string());
        assert!(MiniMatch::catchall().is_catchall());
        assert_eq!(
            MiniMatch::new(&k, &FlowMask::CATCHALL),
            MiniMatch::catchall()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The compact form is the full match: it round-trips, matches
        /// the same keys, and compares (strict, loose, overlap) as the
        /// full pairs do.
        #[test]
        fn equivalent_to_the_full_match(a in arb_pair(), b in arb_pair(),
                                        keys in proptest::collection::vec(arb_key(), 1..8)) {
            let (ma, mb) = (MiniMatch::new(&a.0, &a.1), MiniMatch::new(&b.0, &b.1));
            let fa = (a.0.masked(&a.1), a.1);
            let fb = (b.0.masked(&b.1), b.1);
            prop_assert_eq!(ma.key(), fa.0);
            prop_assert_eq!(ma.mask(), fa.1);
            prop_assert_eq!(&MiniMatch::new(&ma.key(), &ma.mask()), &ma);
            prop_assert_eq!(ma == mb, fa == fb);
            for k in keys.iter().chain([&a.0, &b.0]) {
                prop_assert_eq!(ma.matches(k), k.matches(&fa.0, &fa.1));
                prop_assert_eq!(mb.matches(k), k.matches(&fb.0, &fb.1));
            }
            prop_assert_eq!(ma.within(&mb), full_within(&fa, &fb));
            prop_assert_eq!(mb.within(&ma), full_within(&fb, &fa));
            prop_assert_eq!(ma.overlaps(&mb), full_overlaps(&fa, &fb));
            prop_assert!(ma.within(&ma) && ma.overlaps(&ma));
            prop_assert!(ma.within(&MiniMatch::catchall()));
        }
    }
}
