//! The megaflow cache: the datapath's wildcarded flow table.
//!
//! # Goal
//!
//! Map a packet's [`FlowKey`] to the action list that OpenFlow translation
//! produced for the *class* of packets it belongs to, without translating
//! again. Translation reports which bits of the key it looked at (a
//! [`FlowMask`]); the cache stores `(mask, key & mask) → actions`, so every
//! packet that agrees on those bits hits the same entry (a "megaflow", OVS
//! `struct dp_netdev_flow`).
//!
//! # Algorithm: tuple space search
//!
//! As OVS `dpcls` (`lib/dpif-netdev.c`): one classifier per input port
//! (every megaflow matches `in_port` exactly; [`MegaflowCache::insert`]
//! makes sure of it), so a port's packets only probe the masks of its own
//! megaflows, in the order of its own traffic. Within a classifier entries
//! are grouped by mask into subtables, each a hash table keyed by the
//! masked key. A lookup visits the subtables in turn, hashes the packet's
//! key under the subtable's mask and probes the hash table. The first hit
//! wins.
//!
//! The key is wide (registers, tunnel and conntrack state, ND, MPLS:
//! [`N_WORDS`](crate::flow::N_WORDS) words) but a mask touches few of its
//! words, so each subtable keeps the
//! list of its mask's nonzero words (OVS's miniflow map) and hashes and
//! compares only those: a probe costs the same however many fields the
//! key has. Pipeline-only fields (registers, metadata, `conj_id`) are
//! zero in every datapath key and never part of a megaflow's mask
//! ([`FlowMask::datapath_only`]).
//!
//! First-hit is correct only because megaflows never overlap: translation
//! un-wildcards every field it read, so two megaflows that could both match
//! one packet would have produced the same decision from the same bits.
//! Within a subtable keys are unique by construction.
//!
//! # Optimisations
//!
//! - Each port's subtables are re-sorted by hit count
//!   ([`MegaflowCache::optimize`], OVS `dpcls_sort_subtable_vector`, every
//!   second in the forwarding thread), so the busiest masks are probed
//!   first. Counters are halved at
//!   each sort so the order follows recent traffic.
//! - Hashing uses foldhash with a per-table random seed: keys are chosen by
//!   guests, and a fixed hash function would let a guest aim collisions.
//!
//! # Invariants
//!
//! - *False 1-bits in a mask are safe, false 0-bits are bugs.* An extra
//!   1-bit only makes a megaflow narrower (more misses, more upcalls). A
//!   missing 1-bit lets packets that translation would have treated
//!   differently share an action list — a forwarding bug.
//! - Stored keys are always masked (`key & mask == key`).
//!
//! # Thread safety
//!
//! A cache is owned by one forwarding thread and is not shared; stats live
//! in `Cell`s so that [`MegaflowCache::lookup`] takes `&self`. Other threads
//! see its contents only through commands answered by that thread (dump,
//! stats), so no lock is taken per packet.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher as _};
use std::rc::Rc;

use hashbrown::HashTable;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actions::DpAction;
use crate::buffer::OfPort;
use crate::counters::RuleCounters;
use crate::flow::{Field, FlowKey, FlowMask};
use crate::tags::Tags;

pub mod emc;

type Hasher = foldhash::fast::RandomState;

/// One cache entry.
#[derive(Debug)]
pub struct Megaflow {
    /// Significant bits.
    pub mask: FlowMask,
    /// The key, already masked.
    pub key: FlowKey,
    /// What to do with matching packets.
    pub actions: Arc<[DpAction]>,
    /// Counters of the OpenFlow rules this megaflow was compiled from,
    /// credited once per batch by the forwarding thread.
    pub rule_counters: Arc<[Arc<RuleCounters>]>,
    /// Revalidation tags of the state its translation read.
    pub tags: Tags,
    packets: Cell<u64>,
    bytes: Cell<u64>,
    used: Cell<Instant>,
    created: Instant,
    dead: Cell<bool>,
}

impl Megaflow {
    /// Packets that hit this entry.
    pub fn packets(&self) -> u64 {
        self.packets.get()
    }

    /// Bytes of the packets that hit this entry.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// Last time a packet hit the entry (creation time if never).
    pub fn used(&self) -> Instant {
        self.used.get()
    }

    /// When the entry was installed.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Count `packets` packets of `bytes` bytes seen at `now`.
    /// Whether the entry was removed from the cache (an EMC entry that
    /// still points at it is stale).
    pub fn is_dead(&self) -> bool {
        self.dead.get()
    }

    fn kill(&self) {
        self.dead.set(true);
    }

    /// Credit `packets` and `bytes` to the entry, used at `now`.
    pub fn record(&self, packets: u64, bytes: u64, now: Instant) {
        self.packets.set(self.packets.get() + packets);
        self.bytes.set(self.bytes.get() + bytes);
        self.used.set(now);
    }
}

#[derive(Debug)]
struct Subtable {
    mask: FlowMask,
    /// The words of `mask` with significant bits (OVS's miniflow map):
    /// hashing and comparing visit only these, so a lookup costs the
    /// same however many fields the key has.
    words: Box<[u8]>,
    /// The megaflows, keyed by their masked key (hashed over `words`).
    flows: HashTable<Rc<Megaflow>>,
    hits: Cell<u64>,
}

/// Hash of `key & mask` over `words` (a subtable's nonzero mask words).
#[inline]
fn hash_words(hasher: &Hasher, words: &[u8], mask: &FlowMask, key: &FlowKey) -> u64 {
    let mut h = hasher.build_hasher();
    for &i in words {
        let i = usize::from(i);
        h.write_u64(key.words[i] & mask.words[i]);
    }
    h.finish()
}

impl Subtable {
    fn new(mask: FlowMask) -> Subtable {
        Subtable {
            words: mask.nonzero_words().map(|i| i as u8).collect(),
            mask,
            flows: HashTable::new(),
            hits: Cell::new(0),
        }
    }

    /// Hash of `key & mask` over the mask's words.
    #[inline]
    fn hash(&self, hasher: &Hasher, key: &FlowKey) -> u64 {
        hash_words(hasher, &self.words, &self.mask, key)
    }

    /// The megaflow whose (masked) key equals `key & mask`.
    #[inline]
    fn find(&self, hash: u64, key: &FlowKey) -> Option<&Rc<Megaflow>> {
        self.flows.find(hash, |f| {
            self.words.iter().all(|&i| {
                let i = usize::from(i);
                key.words[i] & self.mask.words[i] == f.key.words[i]
            })
        })
    }

    /// Remove and return the megaflow whose key equals `key & mask`.
    fn take(&mut self, hasher: &Hasher, key: &FlowKey) -> Option<Rc<Megaflow>> {
        let hash = self.hash(hasher, key);
        let (words, mask) = (&self.words, &self.mask);
        let entry = self.flows.find_entry(hash, |f| {
            words.iter().all(|&i| {
                let i = usize::from(i);
                key.words[i] & mask.words[i] == f.key.words[i]
            })
        });
        entry.ok().map(|e| e.remove().0)
    }
}

/// Lookup counters (OVS `pmd-stats-show`: "megaflow hits", "miss",
/// "avg. subtable lookups per megaflow hit").
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheStats {
    /// Lookups that found a megaflow.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Subtables probed by lookups that hit.
    pub subtable_lookups_on_hit: u64,
}

impl CacheStats {
    /// Average subtables probed per hit (0 with no hits).
    pub fn avg_subtable_lookups_per_hit(&self) -> f64 {
        if self.hits == 0 {
            0.0
        } else {
            self.subtable_lookups_on_hit as f64 / self.hits as f64
        }
    }
}

/// The megaflows of one input port (OVS `struct dpcls`): subtables in
/// probe order.
#[derive(Debug, Default)]
struct Dpcls {
    subtables: Vec<Subtable>,
}

impl Dpcls {
    /// Remove the megaflows for which `gone` is true; returns how many.
    /// Empty subtables are dropped.
    fn remove_where(&mut self, gone: &impl Fn(&Megaflow) -> bool) -> usize {
        let mut n = 0;
        for st in &mut self.subtables {
            let before = st.flows.len();
            st.flows.retain(|f| {
                let keep = !gone(f);
                if !keep {
                    f.kill();
                }
                keep
            });
            n += before - st.flows.len();
        }
        self.subtables.retain(|s| !s.flows.is_empty());
        n
    }
}

/// The megaflow cache (see the module docs).
#[derive(Debug)]
pub struct MegaflowCache {
    /// One classifier per input port; a port without megaflows has none.
    ports: HashMap<OfPort, Dpcls, Hasher>,
    /// For each tag bit, the megaflows carrying it (dead ones included
    /// until the bit is swept or the next idle expiry prunes them), so a
    /// sweep visits only the megaflows it may remove.
    by_tag: [Vec<Rc<Megaflow>>; 64],
    n_flows: usize,
    hasher: Hasher,
    hits: Cell<u64>,
    misses: Cell<u64>,
    probes_on_hit: Cell<u64>,
}

/// The bit numbers set in `tags`.
fn bits(tags: Tags) -> impl Iterator<Item = usize> {
    (0..64).filter(move |b| tags.0 & (1 << b) != 0)
}

impl Default for MegaflowCache {
    fn default() -> Self {
        Self::new()
    }
}

impl MegaflowCache {
    /// An empty cache with a fresh random hash seed.
    pub fn new() -> Self {
        let hasher = Hasher::default();
        MegaflowCache {
            ports: HashMap::with_hasher(hasher),
            by_tag: std::array::from_fn(|_| Vec::new()),
            n_flows: 0,
            hasher,
            hits: Cell::new(0),
            misses: Cell::new(0),
            probes_on_hit: Cell::new(0),
        }
    }

    /// Find the megaflow matching `key`, counting the lookup.
    pub fn lookup(&self, key: &FlowKey) -> Option<&Rc<Megaflow>> {
        let Some(cls) = self.ports.get(&key.in_port()) else {
            self.misses.set(self.misses.get() + 1);
            return None;
        };
        for (i, st) in cls.subtables.iter().enumerate() {
            if let Some(f) = st.find(st.hash(&self.hasher, key), key) {
                st.hits.set(st.hits.get() + 1);
                self.hits.set(self.hits.get() + 1);
                self.probes_on_hit
                    .set(self.probes_on_hit.get() + i as u64 + 1);
                return Some(f);
            }
        }
        self.misses.set(self.misses.get() + 1);
        None
    }

    /// Install a megaflow for `key` under `mask` (the key is masked here;
    /// `in_port` is made exact if the mask left it out, as OVS does). An
    /// existing entry with the same mask and masked key has its actions
    /// replaced and keeps its stats. Returns the entry.
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowMask,
        actions: Arc<[DpAction]>,
        now: Instant,
    ) -> &Rc<Megaflow> {
        self.insert_tagged(key, mask, actions, Arc::from(Vec::new()), Tags::EMPTY, now)
    }

    /// [`MegaflowCache::insert`] with the rule counters to credit and
    /// revalidation tags (see [`MegaflowCache::remove_tagged`]).
    pub fn insert_tagged(
        &mut self,
        key: &FlowKey,
        mask: &FlowMask,
        actions: Arc<[DpAction]>,
        rule_counters: Arc<[Arc<RuleCounters>]>,
        tags: Tags,
        now: Instant,
    ) -> &Rc<Megaflow> {
        let mut mask = mask.datapath_only();
        mask.set_exact(Field::InPort);
        let masked = key.masked(&mask);
        let cls = self.ports.entry(key.in_port()).or_default();
        let idx = match cls.subtables.iter().position(|s| s.mask == mask) {
            Some(i) => i,
            None => {
                cls.subtables.push(Subtable::new(mask));
                cls.subtables.len() - 1
            }
        };
        let st = &mut cls.subtables[idx];
        let mut flow = Megaflow {
            mask,
            key: masked,
            actions,
            rule_counters,
            tags,
            packets: Cell::new(0),
            bytes: Cell::new(0),
            used: Cell::new(now),
            created: now,
            dead: Cell::new(false),
        };
        let hasher = self.hasher;
        match st.take(&hasher, &masked) {
            // Replaced: the old entry dies (EMC entries drop it), its
            // stats carry over.
            Some(old) => {
                old.kill();
                flow.packets.set(old.packets());
                flow.bytes.set(old.bytes());
                flow.used.set(old.used());
                flow.created = old.created();
            }
            None => self.n_flows += 1,
        }
        let flow = Rc::new(flow);
        for bit in bits(tags) {
            self.by_tag[bit].push(flow.clone());
        }
        let hash = st.hash(&hasher, &masked);
        let (words, mask) = (&st.words, &st.mask);
        st.flows
            .insert_unique(hash, flow, |f| hash_words(&hasher, words, mask, &f.key))
            .into_mut()
    }

    /// Remove the megaflow with exactly this mask (with `in_port` exact, as
    /// installed) and (masked) key.
    pub fn remove(&mut self, key: &FlowKey, mask: &FlowMask) -> bool {
        let mut mask = mask.datapath_only();
        mask.set_exact(Field::InPort);
        let Some(cls) = self.ports.get_mut(&key.in_port()) else {
            return false;
        };
        let Some(i) = cls.subtables.iter().position(|s| s.mask == mask) else {
            return false;
        };
        let hasher = self.hasher;
        let removed = cls.subtables[i].take(&hasher, key);
        if let Some(f) = &removed {
            f.kill();
            self.n_flows -= 1;
            if cls.subtables[i].flows.is_empty() {
                cls.subtables.remove(i);
                if cls.subtables.is_empty() {
                    self.ports.remove(&key.in_port());
                }
            }
        }
        removed.is_some()
    }

    /// Remove the megaflows whose tags intersect `tags`; returns how many
    /// went. Empty subtables are dropped.
    pub fn remove_tagged(&mut self, tags: Tags) -> usize {
        let mut n = 0;
        for bit in bits(tags) {
            for f in std::mem::take(&mut self.by_tag[bit]) {
                if !f.is_dead() && self.remove(&f.key, &f.mask) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Remove the megaflows for which `gone` is true; returns how many.
    fn remove_where(&mut self, gone: impl Fn(&Megaflow) -> bool) -> usize {
        let mut n = 0;
        self.ports.retain(|_, cls| {
            n += cls.remove_where(&gone);
            !cls.subtables.is_empty()
        });
        self.n_flows -= n;
        n
    }

    /// Remove every megaflow (lookup counters are kept).
    pub fn flush(&mut self) {
        self.iter().for_each(Megaflow::kill);
        self.ports.clear();
        self.by_tag.iter_mut().for_each(Vec::clear);
        self.n_flows = 0;
    }

    /// Number of megaflows.
    pub fn len(&self) -> usize {
        self.n_flows
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.n_flows == 0
    }

    /// Number of distinct masks over all ports.
    pub fn n_masks(&self) -> usize {
        let mut masks: Vec<&FlowMask> = self.subtables().map(|s| &s.mask).collect();
        masks.sort_unstable_by_key(|m| m.words);
        masks.dedup();
        masks.len()
    }

    fn subtables(&self) -> impl Iterator<Item = &Subtable> {
        self.ports.values().flat_map(|c| c.subtables.iter())
    }

    /// Every megaflow, port by port, subtable by subtable.
    pub fn iter(&self) -> impl Iterator<Item = &Megaflow> {
        self.subtables().flat_map(|s| s.flows.iter().map(|f| &**f))
    }

    /// Remove megaflows not used for `max_idle` before `now`; returns how
    /// many went. Empty subtables are dropped.
    pub fn expire_idle(&mut self, now: Instant, max_idle: Duration) -> usize {
        let n = self.remove_where(|f| now.saturating_duration_since(f.used()) >= max_idle);
        // Prune the tag index of megaflows gone since (expired, replaced,
        // removed), so it stays as large as the cache.
        for b in &mut self.by_tag {
            b.retain(|f| !f.is_dead());
        }
        n
    }

    /// Sort subtables by recent hit count, busiest first, and halve the
    /// counts.
    pub fn optimize(&mut self) {
        for cls in self.ports.values_mut() {
            cls.subtables
                .sort_by_key(|s| std::cmp::Reverse(s.hits.get()));
            for s in &cls.subtables {
                s.hits.set(s.hits.get() / 2);
            }
        }
    }

    /// Lookup counters since creation.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            subtable_lookups_on_hit: self.probes_on_hit.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Field, N_WORDS};
    use proptest::prelude::*;

    fn acts(p: u32) -> Arc<[DpAction]> {
        Arc::from(vec![DpAction::Output(p)])
    }

    #[test]
    fn basic() {
        let now = Instant::now();
        let mut c = MegaflowCache::new();
        let mut k = FlowKey::default();
        k.set_in_port(1);
        k.set_tp_src(80);
        let mut m = FlowMask::default();
        m.set_exact(Field::InPort);
        c.insert(&k, &m, acts(2), now);
        let mut k2 = k;
        k2.set_tp_src(81);
        assert_eq!(c.lookup(&k2).unwrap().actions[0], DpAction::Output(2));
        k2.set_in_port(2);
        assert!(c.lookup(&k2).is_none());
        assert_eq!((c.len(), c.n_masks()), (1, 1));
        // Same class again replaces actions.
        c.insert(&k2.masked(&m), &m, acts(3), now);
        assert_eq!(c.len(), 2);
        c.insert(&k2, &m, acts(4), now);
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup(&k2).unwrap().actions[0], DpAction::Output(4));
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (2, 1));
        assert_eq!(s.avg_subtable_lookups_per_hit(), 1.0);
        let f = c.lookup(&k).unwrap();
        f.record(1, 100, now + Duration::from_secs(5));
        assert_eq!(
            c.expire_idle(now + Duration::from_secs(11), Duration::from_secs(10)),
            1
        );
        assert_eq!(c.len(), 1);
        assert!(c.remove(&k, &m));
        assert!(c.is_empty());
        assert_eq!(c.n_masks(), 0);
        c.insert(&k, &m, acts(2), now);
        c.flush();
        assert!(c.lookup(&k).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn remove_tagged_visits_the_tag_index() {
        let now = Instant::now();
        let mut c = MegaflowCache::new();
        let mut m = FlowMask::default();
        m.set_exact(Field::TpSrc);
        let key = |tp: u16| {
            let mut k = FlowKey::default();
            k.set_in_port(1);
            k.set_tp_src(tp);
            k
        };
        let (a, b) = (Tags(1), Tags(2));
        c.insert_tagged(&key(1), &m, acts(1), Arc::from(Vec::new()), a, now);
        c.insert_tagged(&key(2), &m, acts(2), Arc::from(Vec::new()), b, now);
        // Replaced: the index holds a dead entry and a live one for key 1.
        c.insert_tagged(&key(1), &m, acts(3), Arc::from(Vec::new()), a, now);
        assert_eq!(c.len(), 2);
        assert_eq!(c.remove_tagged(a), 1);
        assert!(c.lookup(&key(1)).is_none());
        assert_eq!(c.lookup(&key(2)).unwrap().actions[0], DpAction::Output(2));
        assert_eq!(c.remove_tagged(a), 0, "swept bits start empty");
        // Idle expiry prunes the index of what it removed.
        assert_eq!(
            c.expire_idle(now + Duration::from_secs(11), Duration::from_secs(10)),
            1
        );
        assert!(c.by_tag.iter().all(Vec::is_empty));
    }

    #[test]
    fn one_classifier_per_input_port() {
        let now = Instant::now();
        let mut c = MegaflowCache::new();
        let key = |port: u32, tp: u16| {
            let mut k = FlowKey::default();
            k.set_in_port(port);
            k.set_tp_src(tp);
            k
        };
        // Port 2 has three masks, port 1 one; the mask without in_port
        // gets it made exact.
        let mut m = FlowMask::default();
        c.insert(&key(1, 1), &m, acts(9), now);
        for bits in [0xff00u16, 0xfff0, 0xffff] {
            m.set(Field::TpSrc, u128::from(bits));
            c.insert(&key(2, 1), &m, acts(2), now);
        }
        assert!(c.iter().all(|f| f.mask.is_exact(Field::InPort)));
        assert_eq!((c.len(), c.n_masks()), (4, 4));
        for tp in 0..10 {
            assert_eq!(
                c.lookup(&key(1, tp)).unwrap().actions[0],
                DpAction::Output(9)
            );
        }
        assert!(c.lookup(&key(3, 1)).is_none());
        let s = c.stats();
        assert_eq!(
            s.avg_subtable_lookups_per_hit(),
            1.0,
            "port 1 probes its own mask only"
        );
        // Removing port 1's only megaflow drops its classifier.
        assert!(c.remove(&key(1, 1), &FlowMask::default()));
        assert!(c.lookup(&key(1, 1)).is_none());
        assert_eq!(c.ports.len(), 1);
        assert_eq!(
            c.expire_idle(now + Duration::from_secs(11), Duration::from_secs(10)),
            3
        );
        assert!(c.ports.is_empty());
    }

    /// A mask drawn from a few shapes, so that subtables get shared.
    fn arb_mask() -> impl Strategy<Value = FlowMask> {
        (0u8..8, any::<u64>()).prop_map(|(shape, bits)| {
            let mut m = FlowMask::default();
            m.set_exact(Field::InPort);
            if shape & 1 != 0 {
                m.set_exact(Field::DlDst);
            }
            if shape & 2 != 0 {
                m.set(Field::NwSrc, 0xffff_ff00);
            }
            if shape & 4 != 0 {
                m.words[7] = bits & 0xffff_0000_0000_0000;
            }
            m
        })
    }

    /// Keys from a small space so that lookups hit often.
    fn arb_key() -> impl Strategy<Value = FlowKey> {
        (0u32..3, 0u64..3, 0u32..4, 0u16..3).prop_map(|(port, mac, ip, tp)| {
            let mut k = FlowKey::default();
            k.set_in_port(port);
            k.set(Field::DlDst, u128::from(mac));
            k.set(Field::NwSrc, u128::from(ip << 7));
            k.set_tp_src(tp << 14);
            k
        })
    }

    fn overlaps(a: &(FlowKey, FlowMask), b: &(FlowKey, FlowMask)) -> bool {
        (0..N_WORDS).all(|i| (a.0.words[i] ^ b.0.words[i]) & a.1.words[i] & b.1.words[i] == 0)
    }

    proptest! {
        #[test]
        fn same_answers_as_linear_search(
            rules in proptest::collection::vec((arb_key(), arb_mask()), 1..40),
            probes in proptest::collection::vec(arb_key(), 1..60),
            optimize_at in 0usize..60,
        ) {
            let now = Instant::now();
            let mut cache = MegaflowCache::new();
            let mut linear: Vec<(FlowKey, FlowMask, u32)> = Vec::new();
            for (n, (k, m)) in rules.iter().enumerate() {
                let r = (k.masked(m), *m);
                // Megaflows never overlap: skip rules that would.
                if linear.iter().any(|(lk, lm, _)| overlaps(&(*lk, *lm), &r)) {
                    continue;
                }
                linear.push((r.0, r.1, n as u32));
                cache.insert(k, m, acts(n as u32), now);
            }
            prop_assert_eq!(cache.len(), linear.len());
            for (i, p) in probes.iter().enumerate() {
                if i == optimize_at {
                    cache.optimize();
                }
                let want = linear.iter().find(|(k, m, _)| p.matches(k, m)).map(|r| r.2);
                let got = cache.lookup(p).map(|f| match f.actions[0] {
                    DpAction::Output(n) => n,
                    _ => u32::MAX,
                });
                prop_assert_eq!(want, got);
            }
        }
    }
}
