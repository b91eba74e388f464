//! The exact-match cache (EMC), in front of the megaflow classifier, as
//! Open vSwitch's `lib/dpif-netdev-dfc.h`: a fixed table of
//! [`EMC_ENTRIES`] exact flow keys, each pointing at the megaflow it
//! matched. A hit costs one hash of the key and at most two key
//! compares, however many subtables the classifier has.
//!
//! - Entries hold the key compactly, as OVS's EMC holds a miniflow: the
//!   [`N_PACKET_WORDS`] packet-header words, and of the other words
//!   (pipeline, tunnel, conntrack, rarer headers) only the nonzero ones.
//!   The hash covers the packet words and the few metadata words packets
//!   carry; the compare covers every word, so two keys that differ in any
//!   word never share an entry. For a packet without metadata the rest of
//!   the compare is one OR over the other words.
//!
//! - Two candidate slots per key (the low and the next bits of the hash).
//! - Entries point at an `Rc<Megaflow>`; a megaflow removed from the
//!   classifier is marked dead, so a stale entry is a miss, never a wrong
//!   answer (OVS `dp_netdev_flow.dead`).
//! - Insertion is probabilistic, 1 in [`EMC_INSERT_INV_PROB`] lookups that
//!   missed here but hit a megaflow (OVS `emc-insert-inv-prob`, default
//!   100), so a flood of short flows cannot thrash it; a long flow gets in
//!   after ~100 packets.
//!
//! Owned by the forwarding thread; not `Send`.

use std::hash::{BuildHasher, Hasher as _};
use std::rc::Rc;

use super::Megaflow;
use crate::flow::{Field, FlowKey, N_PACKET_WORDS, N_WORDS};

/// Slots in the EMC (OVS `EM_FLOW_HASH_ENTRIES`, 8192).
pub const EMC_ENTRIES: usize = 1 << 13;
/// One in this many candidate insertions happens (OVS default 100).
pub const EMC_INSERT_INV_PROB: u32 = 100;

// The map of an entry's other words is a `u64`.
const _: () = assert!(N_WORDS <= 64 && N_PACKET_WORDS <= N_WORDS);

/// A cached key, compact: the packet words as they are, and of the other
/// words (metadata, tunnel, conntrack, the rarer headers) only the nonzero
/// ones, which most packets have none of. Canonical, so two keys are
/// equal exactly when their compact forms are.
#[derive(Debug, PartialEq, Eq)]
struct EmcKey {
    packet: [u64; N_PACKET_WORDS],
    /// Bit `i` set: word `i` (at least [`N_PACKET_WORDS`]) is nonzero.
    rest_map: u64,
    /// The nonzero words of `rest_map`, ascending (no allocation when
    /// empty).
    rest: Box<[u64]>,
}

impl EmcKey {
    fn new(key: &FlowKey) -> EmcKey {
        let mut packet = [0; N_PACKET_WORDS];
        packet.copy_from_slice(&key.words[..N_PACKET_WORDS]);
        let mut rest_map = 0;
        let mut rest = Vec::new();
        for (i, &w) in key.words.iter().enumerate().skip(N_PACKET_WORDS) {
            if w != 0 {
                rest_map |= 1 << i;
                rest.push(w);
            }
        }
        EmcKey {
            packet,
            rest_map,
            rest: rest.into_boxed_slice(),
        }
    }

    /// Whether `key` is exactly this key (every word equal).
    #[inline]
    fn is(&self, key: &FlowKey) -> bool {
        if key.words[..N_PACKET_WORDS] != self.packet {
            return false;
        }
        let rest = &key.words[N_PACKET_WORDS..];
        if self.rest_map == 0 {
            // The common case: one OR over the other words.
            return rest.iter().fold(0, |a, w| a | w) == 0;
        }
        let mut vals = self.rest.iter();
        rest.iter().enumerate().all(|(j, &w)| {
            if self.rest_map >> (j + N_PACKET_WORDS) & 1 != 0 {
                vals.next() == Some(&w)
            } else {
                w == 0
            }
        })
    }
}

#[derive(Debug)]
struct Entry {
    key: EmcKey,
    flow: Rc<Megaflow>,
}

/// The words besides the packet headers that the hash covers: the ones a
/// packet's metadata fills (tunnel id; conntrack state and zone; packet
/// mark and recirculation id). The rest count only in the compare.
const HASHED_META: [usize; 3] = [
    Field::TunId.word(),
    Field::CtState.word(),
    Field::RecircId.word(),
];

/// The exact-match cache (see the module docs).
#[derive(Debug)]
pub struct Emc {
    slots: Vec<Option<Entry>>,
    hasher: foldhash::fast::RandomState,
    rng: u32,
}

impl Default for Emc {
    fn default() -> Self {
        Self::new()
    }
}

impl Emc {
    /// An empty EMC with a fresh random hash seed.
    pub fn new() -> Self {
        let hasher = foldhash::fast::RandomState::default();
        let rng = (hasher.hash_one(0u64) as u32) | 1;
        Emc {
            slots: (0..EMC_ENTRIES).map(|_| None).collect(),
            hasher,
            rng,
        }
    }

    /// Hash of a flow key (seeded: guests cannot aim at slots).
    pub fn hash(&self, key: &FlowKey) -> u64 {
        // The packet headers plus the tunnel id and the conntrack and
        // recirculation words pick the slot; lookups compare whole keys.
        let w = &key.words;
        let mut h = self.hasher.build_hasher();
        for &x in &w[..N_PACKET_WORDS] {
            h.write_u64(x);
        }
        for i in HASHED_META {
            h.write_u64(w[i]);
        }
        h.finish()
    }

    fn candidates(hash: u64) -> [usize; 2] {
        let m = EMC_ENTRIES as u64 - 1;
        [(hash & m) as usize, ((hash >> 13) & m) as usize]
    }

    /// Prefetch the slots `hash` may be in, so that an [`Emc::lookup`]
    /// soon after finds them in the cache: done for a whole batch first,
    /// the loads of cold slots overlap instead of stalling one lookup at a
    /// time.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        for i in Self::candidates(hash) {
            if let Some(slot) = self.slots.get(i) {
                crate::prefetch::lines(slot);
            }
        }
    }

    /// The live megaflow cached for exactly `key`.
    pub fn lookup(&self, key: &FlowKey, hash: u64) -> Option<&Rc<Megaflow>> {
        Self::candidates(hash)
            .into_iter()
            .find_map(|i| match &self.slots[i] {
                Some(e) if e.key.is(key) && !e.flow.is_dead() => Some(&e.flow),
                _ => None,
            })
    }

    /// Maybe cache `key` → `flow` (see [`EMC_INSERT_INV_PROB`]).
    pub fn maybe_insert(&mut self, key: &FlowKey, hash: u64, flow: &Rc<Megaflow>) {
        // xorshift32: cheap, and only decides *whether* to insert.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        if self.rng % EMC_INSERT_INV_PROB != 0 {
            return;
        }
        self.insert(key, hash, flow);
    }

    /// Cache `key` → `flow` now: into an empty or dead candidate slot, else
    /// over the first candidate.
    pub fn insert(&mut self, key: &FlowKey, hash: u64, flow: &Rc<Megaflow>) {
        let [a, b] = Self::candidates(hash);
        let free = |s: &Option<Entry>| !matches!(s, Some(e) if !e.flow.is_dead() && !e.key.is(key));
        let i = if free(&self.slots[a]) || !free(&self.slots[b]) {
            a
        } else {
            b
        };
        self.slots[i] = Some(Entry {
            key: EmcKey::new(key),
            flow: flow.clone(),
        });
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::flow::N_WORDS;
    use crate::flow::{Field, FlowMask};
    use crate::megaflow::MegaflowCache;
    use crate::DpAction;
    use proptest::prelude::*;

    fn key(port: u32) -> FlowKey {
        let mut k = FlowKey::default();
        k.set(Field::InPort, u128::from(port));
        k.set(Field::DlDst, 0x0016_3e00_0002);
        k
    }

    #[test]
    fn hits_only_live_exact_entries() {
        let mut cache = MegaflowCache::new();
        let mut emc = Emc::new();
        let now = Instant::now();
        let mut mask = FlowMask::CATCHALL;
        mask.set(Field::InPort, Field::InPort.all_ones());
        let acts: Arc<[DpAction]> = Arc::from(vec![DpAction::Output(2)]);
        let k = key(1);
        let h = emc.hash(&k);
        let f = cache.insert(&k, &mask, acts.clone(), now).clone();
        emc.insert(&k, h, &f);
        assert!(emc.lookup(&k, h).is_some());
        // Same megaflow, other exact key: not in the EMC.
        let mut other = k;
        other.set(Field::DlDst, 0x0016_3e00_0003);
        assert!(emc.lookup(&other, emc.hash(&other)).is_none());
        // Replacing the megaflow's actions kills the old entry.
        let f2 = cache.insert(&k, &mask, Arc::from(vec![]), now).clone();
        assert!(emc.lookup(&k, h).is_none(), "stale after replace");
        emc.insert(&k, h, &f2);
        assert!(emc.lookup(&k, h).is_some());
        // Flush, removal and expiry all make EMC entries stale.
        cache.flush();
        assert!(emc.lookup(&k, h).is_none(), "stale after flush");
        let f3 = cache.insert(&k, &mask, acts, now).clone();
        emc.insert(&k, h, &f3);
        assert!(cache.remove(&k, &mask));
        assert!(emc.lookup(&k, h).is_none(), "stale after remove");
    }

    /// A key from a small space: packet words and, sometimes, words past
    /// them (registers, tunnel, conntrack, ND; hashed or not) set.
    fn arb_key() -> impl Strategy<Value = FlowKey> {
        (
            0u32..3,
            0u64..3,
            proptest::collection::vec((N_PACKET_WORDS..N_WORDS, 0u64..3), 0..3),
        )
            .prop_map(|(port, mac, rest)| {
                let mut k = key(port);
                k.set(Field::DlSrc, u128::from(mac));
                for (i, v) in rest {
                    k.words[i] = v;
                }
                k
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The EMC answers only for the exact key it cached: never for a
        /// key that differs in any word, whether or not the hash covers
        /// that word (keys that differ only outside the hash share
        /// slots).
        #[test]
        fn never_answers_for_a_different_key(
            keys in proptest::collection::vec(arb_key(), 1..24),
            probes in proptest::collection::vec(arb_key(), 0..24),
            flips in proptest::collection::vec((0..N_WORDS, 0u32..64), 0..8),
        ) {
            let mut cache = MegaflowCache::new();
            let mut emc = Emc::new();
            let now = Instant::now();
            // Each key its own megaflow, named by the key's index.
            let mut inserted: Vec<FlowKey> = Vec::new();
            for k in &keys {
                if inserted.contains(k) {
                    continue;
                }
                let id = inserted.len() as u32;
                let f = cache
                    .insert(k, &FlowMask::EXACT, Arc::from(vec![DpAction::Output(id)]), now)
                    .clone();
                emc.insert(k, emc.hash(k), &f);
                inserted.push(*k);
            }
            let mut all: Vec<FlowKey> = probes;
            all.extend(inserted.iter().copied());
            for (n, (i, bit)) in flips.into_iter().enumerate() {
                let mut k = inserted[n % inserted.len()];
                k.words[i] ^= 1 << bit;
                all.push(k);
            }
            for p in &all {
                if let Some(f) = emc.lookup(p, emc.hash(p)) {
                    let DpAction::Output(id) = f.actions[0] else {
                        unreachable!("test actions are outputs")
                    };
                    prop_assert_eq!(&inserted[id as usize], p);
                }
            }
            // The last key inserted into a slot is always found.
            let last = *inserted.last().unwrap();
            prop_assert!(emc.lookup(&last, emc.hash(&last)).is_some());
        }
    }

    #[test]
    fn insertion_is_probabilistic() {
        let mut cache = MegaflowCache::new();
        let mut emc = Emc::new();
        let k = key(1);
        let h = emc.hash(&k);
        let f = cache
            .insert(&k, &FlowMask::EXACT, Arc::from(vec![]), Instant::now())
            .clone();
        let mut tries = 0;
        while emc.lookup(&k, h).is_none() {
            emc.maybe_insert(&k, h, &f);
            tries += 1;
            assert!(tries < 10 * EMC_INSERT_INV_PROB, "never inserted");
        }
        assert!(tries > 1 || EMC_INSERT_INV_PROB == 1);
    }
}
