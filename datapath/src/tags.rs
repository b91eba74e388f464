//! Revalidation tags: which megaflows a change of slow-path state can make
//! stale (the idea of OVS's former `lib/tag.h`, used before revalidator
//! threads, reduced to one bit per tag).
//!
//! A [`Tags`] value is a 64-bit Bloom filter. Each piece of state that a
//! translation reads and that changes often (today: one MAC-learning
//! entry) has a tag, one bit chosen by a hash of it. A megaflow carries the
//! union of the tags its translation read; when state changes, the union of
//! the changed tags is published, and every megaflow whose tags intersect
//! it is removed. A false positive only removes a megaflow that was still
//! valid (its next packet is translated again), never keeps a stale one,
//! and with one bit per tag a single change removes about 1/64 of the
//! tagged megaflows besides the ones it must. Changes that affect
//! everything (OpenFlow tables, ports, VLAN settings) still flush the whole
//! cache through [`crate::UpcallHandler::generation`].

/// A set of revalidation tags (one bit each of 64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tags(pub u64);

impl Tags {
    /// No tags.
    pub const EMPTY: Tags = Tags(0);

    /// The tag of a piece of state identified by `id` (e.g. a MAC address
    /// as a 48-bit integer): one bit chosen by a multiplicative hash.
    pub fn of(id: u64) -> Tags {
        let h = id
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Tags(1 << (h >> 58))
    }

    /// Whether no tag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the two sets may share a tag.
    pub fn intersects(self, other: Tags) -> bool {
        self.0 & other.0 != 0
    }

    /// Add every tag of `other`.
    pub fn add(&mut self, other: Tags) {
        self.0 |= other.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bit_per_tag_spread_over_all_bits() {
        let mut seen = Tags::EMPTY;
        for id in 0..1024u64 {
            let t = Tags::of(0x5254_0000_0000 | id);
            assert_eq!(t.0.count_ones(), 1);
            seen.add(t);
        }
        assert_eq!(seen.0, u64::MAX, "1024 consecutive MACs use all 64 bits");
        assert!(!Tags::EMPTY.intersects(Tags(u64::MAX)));
        assert!(Tags::of(7).intersects(Tags::of(7)));
    }
}
