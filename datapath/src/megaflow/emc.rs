//! The exact-match cache (EMC), in front of the megaflow classifier, as
//! Open vSwitch's `lib/dpif-netdev-dfc.h`: a fixed table of
//! [`EMC_ENTRIES`] full flow keys, each pointing at the megaflow it matched.
//! A hit costs one hash of the key and at most two key compares, however
//! many subtables the classifier has.
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

use std::hash::BuildHasher;
use std::rc::Rc;

use super::Megaflow;
use crate::flow::{FlowKey, N_PACKET_WORDS};

/// Slots in the EMC (OVS `EM_FLOW_HASH_ENTRIES`, 8192).
pub const EMC_ENTRIES: usize = 1 << 13;
/// One in this many candidate insertions happens (OVS default 100).
pub const EMC_INSERT_INV_PROB: u32 = 100;

#[derive(Debug)]
struct Entry {
    key: FlowKey,
    flow: Rc<Megaflow>,
}

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

    /// Hash of a full flow key (seeded: guests cannot aim at slots).
    pub fn hash(&self, key: &FlowKey) -> u64 {
        // The packet headers plus the tunnel id and the conntrack and
        // recirculation word pick the slot; lookups compare whole keys.
        let w = &key.words;
        self.hasher
            .hash_one((&w[..N_PACKET_WORDS], w[17], w[22], w[23]))
    }

    fn candidates(hash: u64) -> [usize; 2] {
        let m = EMC_ENTRIES as u64 - 1;
        [(hash & m) as usize, ((hash >> 13) & m) as usize]
    }

    /// The live megaflow cached for exactly `key`.
    pub fn lookup(&self, key: &FlowKey, hash: u64) -> Option<&Rc<Megaflow>> {
        Self::candidates(hash)
            .into_iter()
            .find_map(|i| match &self.slots[i] {
                Some(e) if e.key == *key && !e.flow.is_dead() => Some(&e.flow),
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
        let free = |s: &Option<Entry>| !matches!(s, Some(e) if !e.flow.is_dead() && e.key != *key);
        let i = if free(&self.slots[a]) || !free(&self.slots[b]) {
            a
        } else {
            b
        };
        self.slots[i] = Some(Entry {
            key: *key,
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
    use crate::flow::{Field, FlowMask};
    use crate::megaflow::MegaflowCache;
    use crate::DpAction;

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
