//! An OpenFlow flow-table classifier: tuple space search with priorities
//! (OVS `lib/classifier.c`, without its staged lookup and prefix tries).
//!
//! # Structure
//!
//! Rules are grouped into *subtables*, one per distinct [`FlowMask`]. A
//! subtable is a hash table from the masked key to the rules with exactly
//! that match, highest priority first; it hashes and compares only the
//! words its mask has bits in (OVS's miniflow map), so a probe costs the
//! same however wide the key is. Subtables are kept sorted by the highest
//! priority they hold.
//!
//! Rules keep their match compactly ([`MiniMatch`], OVS `minimatch`):
//! only the words the mask has bits in. A bucket's match, its rules'
//! matches and (in the flow tables) the rule's own share one slice, and
//! a bucket's key words are exactly the subtable's words in order, so a
//! probe compares the packet's masked words with them directly.
//! Non-strict selection ([`Classifier::iter_loose`]) skips subtables
//! whose mask lacks a word the outer match needs.
//!
//! # Lookup
//!
//! [`Classifier::lookup`] visits subtables in that order and keeps the best
//! rule found; it stops as soon as the best rule's priority is at least the
//! next subtable's highest priority (OVS `classifier_lookup__`: no later
//! subtable can hold a better rule). Rules of equal priority that overlap
//! are ordered arbitrarily, as OpenFlow allows (1.3.5 §6.4: "the behaviour
//! is undefined"), but deterministically for a given table.
//!
//! # Wildcards
//!
//! Every subtable the lookup probes decides whether it hits by the key bits
//! under its mask, so the lookup ORs that mask into the caller's `wc`. Any
//! key that agrees with the looked-up key on `wc` probes the same subtables
//! with the same outcomes and stops at the same place, so it gets the same
//! rule: `wc` is sufficient. Subtables never probed contribute nothing, so
//! a table whose rules only match `dl_dst` never un-wildcards IP fields.
//! The metadata and registers are not packet fields; they are functions of
//! earlier tables' decisions, which are themselves covered by `wc` (the
//! datapath drops them from megaflow masks).
//!
//! # Conjunctive matches
//!
//! [`Classifier::lookup_conj`] adds Open vSwitch's conjunctive matches
//! (`lib/classifier.c` `classifier_lookup__`, `ovs-fields(7)` "Conjunctive
//! Match Fields"). A rule whose actions include `conjunction(id,k/n)` is a
//! *soft* match: it never matches by itself, it only says that clause `k`
//! of conjunction `id` holds. Every other rule is a *hard* match. The
//! lookup finds the best hard match as usual, and gathers the soft matches
//! of higher priority met on the way (one per probed subtable, as the
//! hard ones). Then, from the highest soft priority down while above the
//! best hard match: among the soft matches of that priority, a
//! conjunction whose `n` clauses all hold completes; the table is looked
//! up again with `conj_id` set to its id, soft matches ignored (as in OVS
//! this second lookup sees only the highest-priority rule of each distinct
//! match, so a hard rule under a soft one with the same match is not
//! found there), and a rule found there is the answer (whatever its
//! priority, as OVS). If nothing
//! completes, each soft match of that priority is replaced by the
//! next-lower-priority rule with the identical match (which may be hard)
//! and the next priority is tried. Every probed subtable's mask, those of
//! the `conj_id` lookup included, is ORed into `wc`: the decision depends
//! only on which subtables hit, so `wc` stays sufficient (`conj_id` itself
//! is a pipeline field the datapath drops from megaflow masks).
//!
//! # Costs
//!
//! Insert and remove are O(subtables) (re-sorting); lookup is
//! O(probed subtables) hash probes and allocates nothing.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher as _};

use hashbrown::HashTable;
use xennet_datapath::flow::{Field, MiniMatch};
use xennet_datapath::{FlowKey, FlowMask};
use xennet_openflow::model::{Action, Match};

type Hasher = foldhash::fast::RandomState;

/// A rule as the classifier stores it.
#[derive(Debug, Clone)]
pub struct ClsRule<T> {
    /// The match, compact (shared with the bucket that holds the rule
    /// and, in the flow tables, with the rule itself).
    pub matcher: MiniMatch,
    /// Priority; higher wins.
    pub priority: u16,
    /// The caller's payload.
    pub value: T,
}

/// Anything the classifier can take as a match: a full [`Match`]
/// (converted once per call) or a [`MiniMatch`] (borrowed).
pub trait AsMiniMatch {
    /// The compact form.
    fn as_mini(&self) -> Cow<'_, MiniMatch>;
}

impl AsMiniMatch for MiniMatch {
    fn as_mini(&self) -> Cow<'_, MiniMatch> {
        Cow::Borrowed(self)
    }
}

impl AsMiniMatch for Match {
    fn as_mini(&self) -> Cow<'_, MiniMatch> {
        Cow::Owned(minimatch(self))
    }
}

/// The compact form of a match (key bits outside the mask dropped).
pub fn minimatch(m: &Match) -> MiniMatch {
    MiniMatch::new(&m.key, &m.mask)
}

/// The full form of a compact match (for dumps and messages).
pub fn full_match(m: &MiniMatch) -> Match {
    Match {
        key: m.key(),
        mask: m.mask(),
    }
}

#[derive(Debug)]
struct Subtable<T> {
    mask: FlowMask,
    /// Bit `i` set: `mask` word `i` is nonzero.
    word_map: u64,
    /// The words of `mask` with significant bits (the map of every
    /// bucket's [`MiniMatch`]).
    words: Box<[u8]>,
    max_priority: u16,
    n_rules: usize,
    /// Masked key → rules, highest priority first (hashed over `words`).
    map: HashTable<Bucket<T>>,
}

/// The rules of one subtable with one match: the match (whose key words
/// are the masked key over the subtable's `words`) and the rules.
#[derive(Debug)]
struct Bucket<T> {
    /// [`hash_mini`] of `matcher`, kept so that growing the map rehashes
    /// without reading every match again (100,000 pointer chases for a
    /// large bundle).
    hash: u64,
    matcher: MiniMatch,
    rules: Vec<ClsRule<T>>,
}

/// Hash of `key & mask` over `words`.
#[inline]
fn hash_words(hasher: &Hasher, words: &[u8], mask: &FlowMask, key: &FlowKey) -> u64 {
    let mut h = hasher.build_hasher();
    for &i in words {
        let i = usize::from(i);
        h.write_u64(key.words[i] & mask.words[i]);
    }
    h.finish()
}

/// The same hash as [`hash_words`] of a compact match's (masked) key
/// words (its map being the subtable's `words`).
#[inline]
fn hash_mini(hasher: &Hasher, m: &MiniMatch) -> u64 {
    let mut h = hasher.build_hasher();
    for &w in m.key_words() {
        h.write_u64(w);
    }
    h.finish()
}

/// Whether `key & mask` equals the stored masked key words on `words`.
#[inline]
fn eq_words(words: &[u8], mask: &FlowMask, key: &FlowKey, stored: &[u64]) -> bool {
    words.iter().zip(stored).all(|(&i, &s)| {
        let i = usize::from(i);
        key.words[i] & mask.words[i] == s
    })
}

impl<T> Subtable<T> {
    fn new(mask: FlowMask, priority: u16) -> Self {
        Subtable {
            words: mask.nonzero_words().map(|i| i as u8).collect(),
            word_map: mask.nonzero_words().fold(0, |m, i| m | 1 << i),
            mask,
            max_priority: priority,
            n_rules: 0,
            map: HashTable::new(),
        }
    }

    /// OR the mask into `wc`, over the mask's nonzero words only.
    #[inline]
    fn unwildcard(&self, wc: &mut FlowMask) {
        for &i in self.words.iter() {
            let i = usize::from(i);
            wc.words[i] |= self.mask.words[i];
        }
    }

    fn recompute_max(&mut self) {
        self.max_priority = self
            .map
            .iter()
            .filter_map(|b| b.rules.first().map(|r| r.priority))
            .max()
            .unwrap_or(0);
    }

    /// The rules whose masked key equals `key & mask`.
    #[inline]
    fn get(&self, hasher: &Hasher, key: &FlowKey) -> Option<&Vec<ClsRule<T>>> {
        let h = hash_words(hasher, &self.words, &self.mask, key);
        self.map
            .find(h, |b| {
                eq_words(&self.words, &self.mask, key, b.matcher.key_words())
            })
            .map(|b| &b.rules)
    }

    /// The rules with exactly the match `m` (whose mask is this
    /// subtable's).
    fn get_mini(&self, hasher: &Hasher, m: &MiniMatch) -> Option<&Vec<ClsRule<T>>> {
        self.map
            .find(hash_mini(hasher, m), |b| b.matcher == *m)
            .map(|b| &b.rules)
    }

    fn get_mini_mut(&mut self, hasher: &Hasher, m: &MiniMatch) -> Option<&mut Vec<ClsRule<T>>> {
        self.map
            .find_mut(hash_mini(hasher, m), |b| b.matcher == *m)
            .map(|b| &mut b.rules)
    }

    /// The rule list for the match `m`, created empty if absent.
    fn entry(&mut self, hasher: &Hasher, m: &MiniMatch) -> &mut Vec<ClsRule<T>> {
        let hash = hash_mini(hasher, m);
        let e = self.map.entry(hash, |b| b.matcher == *m, |b| b.hash);
        &mut e
            .or_insert_with(|| Bucket {
                hash,
                matcher: m.clone(),
                // Most matches have one rule (a growing Vec would start
                // at four).
                rules: Vec::with_capacity(1),
            })
            .into_mut()
            .rules
    }

    /// Drop the (empty) rule list of the match `m`.
    fn remove_key(&mut self, hasher: &Hasher, m: &MiniMatch) {
        if let Ok(e) = self
            .map
            .find_entry(hash_mini(hasher, m), |b| b.matcher == *m)
        {
            e.remove();
        }
    }
}

/// Normalise a match so that key bits outside the mask are zero.
pub fn normalize(m: &Match) -> Match {
    Match {
        key: m.key.masked(&m.mask),
        mask: m.mask,
    }
}

/// Whether `key` matches `m`.
pub fn match_hits(m: &MiniMatch, key: &FlowKey) -> bool {
    m.matches(key)
}

/// Whether every packet matched by `inner` is matched by `outer`, i.e.
/// `inner` is at least as specific (OpenFlow non-strict matching, 1.3.5
/// §6.4; OVS `cls_rule_is_loose_match`).
pub fn match_within(inner: &MiniMatch, outer: &MiniMatch) -> bool {
    inner.within(outer)
}

/// Whether some packet (and pipeline state) matches both `a` and `b`.
pub fn matches_overlap(a: &MiniMatch, b: &MiniMatch) -> bool {
    a.overlaps(b)
}

/// A tuple-space-search classifier (see the module docs).
#[derive(Debug)]
pub struct Classifier<T> {
    subtables: Vec<Subtable<T>>,
    n_rules: usize,
    hasher: Hasher,
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Classifier<T> {
    /// An empty classifier.
    pub fn new() -> Self {
        Classifier {
            subtables: Vec::new(),
            n_rules: 0,
            hasher: Hasher::default(),
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.n_rules
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn sort(&mut self) {
        // Stable: among equal priorities, older subtables stay first.
        self.subtables
            .sort_by_key(|s| std::cmp::Reverse(s.max_priority));
    }

    /// The subtable whose mask is `m`'s.
    fn find_subtable(&self, m: &MiniMatch) -> Option<usize> {
        self.subtables
            .iter()
            .position(|s| s.word_map == m.map() && m.iter().all(|(i, _, w)| s.mask.words[i] == w))
    }

    /// Insert a rule. If a rule with the same match and priority exists it
    /// is replaced and returned.
    pub fn insert<M: AsMiniMatch + ?Sized>(
        &mut self,
        matcher: &M,
        priority: u16,
        value: T,
    ) -> Option<T> {
        let m = matcher.as_mini();
        let m = m.as_ref();
        let idx = match self.find_subtable(m) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable::new(m.mask(), priority));
                self.subtables.len() - 1
            }
        };
        let st = &mut self.subtables[idx];
        let list = st.entry(&self.hasher, m);
        if let Some(r) = list.iter_mut().find(|r| r.priority == priority) {
            return Some(std::mem::replace(&mut r.value, value));
        }
        let pos = list
            .iter()
            .position(|r| r.priority < priority)
            .unwrap_or(list.len());
        list.insert(
            pos,
            ClsRule {
                matcher: m.clone(),
                priority,
                value,
            },
        );
        st.n_rules += 1;
        self.n_rules += 1;
        if priority > st.max_priority || st.n_rules == 1 {
            st.max_priority = priority;
            self.sort();
        }
        None
    }

    /// Remove the rule with exactly this match and priority.
    pub fn remove<M: AsMiniMatch + ?Sized>(&mut self, matcher: &M, priority: u16) -> Option<T> {
        let m = matcher.as_mini();
        let m = m.as_ref();
        let idx = self.find_subtable(m)?;
        let st = &mut self.subtables[idx];
        let list = st.get_mini_mut(&self.hasher, m)?;
        let pos = list.iter().position(|r| r.priority == priority)?;
        let r = list.remove(pos);
        if list.is_empty() {
            st.remove_key(&self.hasher, m);
        }
        st.n_rules -= 1;
        self.n_rules -= 1;
        if st.n_rules == 0 {
            self.subtables.remove(idx);
        } else if priority == st.max_priority {
            st.recompute_max();
            self.sort();
        }
        Some(r.value)
    }

    /// The highest-priority rule matching `key`. ORs into `wc` the mask of
    /// every subtable probed (see the module docs).
    pub fn lookup(&self, key: &FlowKey, wc: &mut FlowMask) -> Option<&ClsRule<T>> {
        let mut best: Option<&ClsRule<T>> = None;
        for st in &self.subtables {
            if let Some(b) = best {
                if b.priority >= st.max_priority {
                    break;
                }
            }
            st.unwildcard(wc);
            if let Some(r) = st.get(&self.hasher, key).and_then(|v| v.first()) {
                if best.map_or(true, |b| r.priority > b.priority) {
                    best = Some(r);
                }
            }
        }
        best
    }

    /// As [`Classifier::lookup`], with conjunctive matches (see the module
    /// docs): `acts` gives a rule's actions, and rules with `conjunction`
    /// actions are soft matches. Never returns a soft match. Allocates
    /// only when a soft match is met; the work is bounded by the number
    /// of subtables (soft matches, each followed down its list of
    /// identical matches) times their conjunctions. When a conjunction
    /// decided the answer and `conj_flows` is given, the soft matches of
    /// its id that took part are appended to it (OVS `insert_conj_flows`,
    /// for `ofproto/trace`).
    pub fn lookup_conj<'a>(
        &'a self,
        key: &FlowKey,
        wc: &mut FlowMask,
        acts: &dyn Fn(&T) -> &[Action],
        conj_flows: Option<&mut Vec<&'a ClsRule<T>>>,
    ) -> Option<&'a ClsRule<T>> {
        let is_soft = |r: &ClsRule<T>| {
            acts(&r.value)
                .iter()
                .any(|a| matches!(a, Action::Conjunction { .. }))
        };
        // (rules with one match, index of the soft rule in it).
        let mut soft: Vec<(&'a [ClsRule<T>], usize)> = Vec::new();
        let mut hard: Option<&'a ClsRule<T>> = None;
        for st in &self.subtables {
            if hard.is_some_and(|h| h.priority >= st.max_priority) {
                break;
            }
            st.unwildcard(wc);
            let Some(list) = st.get(&self.hasher, key) else {
                continue;
            };
            let Some(r) = list.first() else { continue };
            if hard.is_some_and(|h| r.priority <= h.priority) {
                continue;
            }
            if is_soft(r) {
                soft.push((list.as_slice(), 0));
            } else {
                hard = Some(r);
            }
        }
        // Above the best hard match; -1: none.
        let hard_pri = |h: Option<&ClsRule<T>>| h.map_or(-1, |h| i32::from(h.priority));
        // (conjunction id, clauses seen; bits above n_clauses preset).
        let mut seen: Vec<(u32, u64)> = Vec::new();
        loop {
            let floor = hard_pri(hard);
            soft.retain(|(l, i)| i32::from(l[*i].priority) > floor);
            let Some(top) = soft.iter().map(|(l, i)| l[*i].priority).max() else {
                break;
            };
            let n_top = soft.iter().filter(|(l, i)| l[*i].priority == top).count();
            seen.clear();
            for (l, i) in &soft {
                let r = &l[*i];
                if r.priority != top {
                    continue;
                }
                for a in acts(&r.value) {
                    let Action::Conjunction {
                        id,
                        clause,
                        n_clauses,
                    } = *a
                    else {
                        continue;
                    };
                    // Fewer soft matches than clauses cannot complete.
                    if usize::from(n_clauses) > n_top || clause >= 64 {
                        continue;
                    }
                    let pos = match seen.iter().position(|(s, _)| *s == id) {
                        Some(p) => p,
                        None => {
                            seen.push((id, u64::MAX << (n_clauses & 63)));
                            seen.len() - 1
                        }
                    };
                    seen[pos].1 |= 1 << clause;
                    if seen[pos].1 == u64::MAX {
                        let mut k = *key;
                        k.set(Field::ConjId, u128::from(id));
                        if let Some(r) = self.lookup_hard(&k, wc, &is_soft) {
                            if let Some(out) = conj_flows {
                                let of_id = |c: &ClsRule<T>| {
                                    acts(&c.value).iter().any(|a| {
                                        matches!(a, Action::Conjunction { id: i, .. } if *i == id)
                                    })
                                };
                                out.extend(
                                    soft.iter()
                                        .map(|(l, i)| &l[*i])
                                        .filter(|c| c.priority == top && of_id(c)),
                                );
                            }
                            return Some(r);
                        }
                    }
                }
            }
            // Nothing completed at `top`: follow each of its soft matches
            // to the next-lower-priority rule with the same match.
            for e in &mut soft {
                if e.0[e.1].priority != top {
                    continue;
                }
                e.1 += 1;
                if let Some(r) = e.0.get(e.1) {
                    if !is_soft(r) && i32::from(r.priority) > hard_pri(hard) {
                        hard = Some(r);
                    }
                }
            }
            soft.retain(|(l, i)| l.get(*i).is_some_and(&is_soft));
        }
        hard
    }

    /// The best hard match (soft matches skipped, as OVS's lookup with
    /// conjunctive matches disallowed).
    fn lookup_hard<'a>(
        &'a self,
        key: &FlowKey,
        wc: &mut FlowMask,
        is_soft: &dyn Fn(&ClsRule<T>) -> bool,
    ) -> Option<&'a ClsRule<T>> {
        let mut best: Option<&ClsRule<T>> = None;
        for st in &self.subtables {
            if best.is_some_and(|b| b.priority >= st.max_priority) {
                break;
            }
            st.unwildcard(wc);
            if let Some(r) = st.get(&self.hasher, key).and_then(|v| v.first()) {
                if !is_soft(r) && best.map_or(true, |b| r.priority > b.priority) {
                    best = Some(r);
                }
            }
        }
        best
    }

    /// The rule with exactly this match and priority (OpenFlow strict).
    pub fn find_strict<M: AsMiniMatch + ?Sized>(
        &self,
        matcher: &M,
        priority: u16,
    ) -> Option<&ClsRule<T>> {
        let m = matcher.as_mini();
        let st = &self.subtables[self.find_subtable(&m)?];
        st.get_mini(&self.hasher, &m)?
            .iter()
            .find(|r| r.priority == priority)
    }

    /// Mutable access to the rule with exactly this match and priority.
    pub fn find_strict_mut<M: AsMiniMatch + ?Sized>(
        &mut self,
        matcher: &M,
        priority: u16,
    ) -> Option<&mut ClsRule<T>> {
        let m = matcher.as_mini();
        let idx = self.find_subtable(&m)?;
        self.subtables[idx]
            .get_mini_mut(&self.hasher, &m)?
            .iter_mut()
            .find(|r| r.priority == priority)
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &ClsRule<T>> {
        self.subtables
            .iter()
            .flat_map(|s| s.map.iter().flat_map(|b| b.rules.iter()))
    }

    /// Every rule, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut ClsRule<T>> {
        self.subtables
            .iter_mut()
            .flat_map(|s| s.map.iter_mut().flat_map(|b| b.rules.iter_mut()))
    }

    /// Rules whose match is within `outer` (OpenFlow non-strict
    /// modify/delete/stats).
    pub fn iter_loose<'a, M: AsMiniMatch + ?Sized>(
        &'a self,
        outer: &M,
    ) -> impl Iterator<Item = &'a ClsRule<T>> {
        let o = outer.as_mini().into_owned();
        let omap = o.map();
        // A subtable whose mask lacks a word `outer` cares about holds
        // nothing within it.
        self.subtables
            .iter()
            .filter(move |s| omap & !s.word_map == 0)
            .flat_map(|s| s.map.iter())
            .filter(move |b| b.matcher.within(&o))
            .flat_map(|b| b.rules.iter())
    }

    /// Whether a rule of priority `priority` could match a packet that
    /// `matcher` matches (`OFPFF_CHECK_OVERLAP`, OpenFlow 1.3.5 §6.4; OVS
    /// `classifier_rule_overlaps`). A rule with the identical match counts.
    pub fn overlaps<M: AsMiniMatch + ?Sized>(&self, matcher: &M, priority: u16) -> bool {
        let m = matcher.as_mini();
        self.subtables
            .iter()
            .filter(|s| s.max_priority >= priority)
            .flat_map(|s| s.map.iter())
            .filter(|b| b.matcher.overlaps(&m))
            .any(|b| b.rules.iter().any(|r| r.priority == priority))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use xennet_datapath::flow::{Field, N_WORDS};

    /// The reference: scan every rule.
    fn linear<'a>(
        rules: &'a [(Match, u16, usize)],
        key: &FlowKey,
    ) -> Option<&'a (Match, u16, usize)> {
        rules
            .iter()
            .filter(|(m, _, _)| key.matches(&m.key, &m.mask))
            .max_by_key(|(_, p, _)| *p)
    }

    const FIELDS: [Field; 6] = [
        Field::InPort,
        Field::DlDst,
        Field::DlType,
        Field::NwDst,
        Field::TpDst,
        Field::VlanTci,
    ];

    /// Small value domains so that random packets hit random rules.
    fn field_value(f: Field, v: u8) -> u128 {
        u128::from(v % 3) + if f == Field::VlanTci { 0x1000 } else { 0 }
    }

    fn arb_match() -> impl Strategy<Value = Match> {
        (
            proptest::collection::vec((0usize..FIELDS.len(), any::<u8>(), any::<bool>()), 0..4),
            proptest::option::of((0u64..4, 0u64..4)),
        )
            .prop_map(|(fs, md)| {
                let mut m = Match::CATCHALL;
                for (fi, v, partial) in fs {
                    let f = FIELDS[fi];
                    let mask = if partial { 1 } else { f.all_ones() };
                    m.key.set(f, field_value(f, v) & mask);
                    m.mask.set(f, mask);
                }
                if let Some((v, mm)) = md {
                    m.mask.set(Field::Metadata, u128::from(mm));
                    m.key.set(Field::Metadata, u128::from(v & mm));
                }
                m
            })
    }

    fn arb_key() -> impl Strategy<Value = FlowKey> {
        (
            proptest::collection::vec(any::<u8>(), FIELDS.len()),
            0u64..4,
        )
            .prop_map(|(vs, md)| {
                let mut k = FlowKey::default();
                for (f, v) in FIELDS.iter().zip(vs) {
                    k.set(*f, field_value(*f, v));
                }
                k.set(Field::NwSrc, 12345);
                k.set(Field::Metadata, u128::from(md));
                k
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn same_as_linear(
            rules in proptest::collection::vec((arb_match(), 0u16..6), 0..24),
            keys in proptest::collection::vec(arb_key(), 1..16),
            removals in proptest::collection::vec(any::<usize>(), 0..4),
        ) {
            let mut cls = Classifier::new();
            let mut lin: Vec<(Match, u16, usize)> = Vec::new();
            for (i, (m, p)) in rules.into_iter().enumerate() {
                let m = normalize(&m);
                if cls.insert(&m, p, i).is_some() {
                    let e = lin.iter_mut().find(|(lm, lp, _)| *lm == m && *lp == p).unwrap();
                    e.2 = i;
                } else {
                    lin.push((m, p, i));
                }
            }
            for r in removals {
                if !lin.is_empty() {
                    let (m, p, v) = lin.remove(r % lin.len());
                    prop_assert_eq!(cls.remove(&m, p), Some(v));
                }
            }
            prop_assert_eq!(cls.len(), lin.len());
            for key in keys {
                let mut wc = FlowMask::default();
                let got = cls.lookup(&key, &mut wc);
                let want = linear(&lin, &key);
                prop_assert_eq!(got.map(|r| r.priority), want.map(|w| w.1));
                if let Some(r) = got {
                    prop_assert!(match_hits(&r.matcher, &key));
                }
                // Sufficiency: flip every bit outside wc (NwSrc is never
                // matched, so it must stay wildcarded).
                prop_assert!(wc.is_wildcarded(Field::NwSrc));
                let mut other = key;
                for i in 0..N_WORDS {
                    other.words[i] ^= !wc.words[i];
                }
                let mut wc2 = FlowMask::default();
                let got2 = cls.lookup(&other, &mut wc2);
                prop_assert_eq!(got.map(|r| r.value), got2.map(|r| r.value));
                // And the linear result for the flipped key agrees.
                prop_assert_eq!(got.map(|r| r.priority), linear(&lin, &other).map(|w| w.1));
            }
        }
    }

    /// The full-match forms of the non-strict and overlap tests (what the
    /// classifier computed on whole key/mask pairs before it stored
    /// compact matches).
    fn full_within(inner: &Match, outer: &Match) -> bool {
        (0..N_WORDS).all(|i| {
            let om = outer.mask.words[i];
            inner.mask.words[i] & om == om && (inner.key.words[i] ^ outer.key.words[i]) & om == 0
        })
    }

    fn full_overlaps(a: &Match, b: &Match) -> bool {
        (0..N_WORDS)
            .all(|i| (a.key.words[i] ^ b.key.words[i]) & a.mask.words[i] & b.mask.words[i] == 0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The compact matches the classifier stores stand for the full
        /// matches inserted: each rule expands back to its normalised
        /// match, and strict, non-strict and overlap selections are those
        /// a scan over the full matches gives.
        #[test]
        fn compact_selections_same_as_full(
            rules in proptest::collection::vec((arb_match(), 0u16..6), 0..24),
            outers in proptest::collection::vec((arb_match(), 0u16..6), 1..8),
        ) {
            let mut cls = Classifier::new();
            let mut lin: Vec<(Match, u16, usize)> = Vec::new();
            for (i, (m, p)) in rules.into_iter().enumerate() {
                let m = normalize(&m);
                if cls.insert(&m, p, i).is_none() {
                    lin.push((m, p, i));
                } else {
                    lin.iter_mut().find(|(lm, lp, _)| *lm == m && *lp == p).unwrap().2 = i;
                }
            }
            prop_assert_eq!(cls.iter().count(), lin.len());
            for r in cls.iter() {
                let (m, p, _) = lin.iter().find(|l| l.2 == r.value).unwrap();
                prop_assert_eq!(&full_match(&r.matcher), m);
                prop_assert_eq!(r.priority, *p);
            }
            for (o, p) in outers {
                let o = normalize(&o);
                let mut got: Vec<usize> = cls.iter_loose(&o).map(|r| r.value).collect();
                let mut want: Vec<usize> =
                    lin.iter().filter(|(m, _, _)| full_within(m, &o)).map(|r| r.2).collect();
                got.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(got, want);
                prop_assert_eq!(
                    cls.overlaps(&o, p),
                    lin.iter().any(|(m, lp, _)| *lp == p && full_overlaps(m, &o))
                );
                prop_assert_eq!(
                    cls.find_strict(&o, p).map(|r| r.value),
                    lin.iter().find(|(m, lp, _)| *lp == p && *m == o).map(|r| r.2)
                );
            }
        }
    }

    /// The conjunctive-match reference (one conjunction, id 1 with `n`
    /// clauses): scan every rule. A rule is `(match, priority, clauses
    /// it contributes to conjunction 1; empty: an ordinary rule)`.
    type ConjRule = (Match, u16, Vec<u8>);

    fn linear_conj(rules: &[ConjRule], n: u8, key: &FlowKey) -> Option<usize> {
        let hits = |k: &FlowKey, soft: bool| -> Vec<(usize, &ConjRule)> {
            rules
                .iter()
                .enumerate()
                .filter(|(_, (m, _, c))| k.matches(&m.key, &m.mask) && c.is_empty() != soft)
                .collect()
        };
        let best = |k: &FlowKey| hits(k, false).into_iter().max_by_key(|(_, (_, p, _))| *p);
        let hard = best(key);
        let floor = hard.map_or(-1, |(_, (_, p, _))| i32::from(*p));
        let mut pris: Vec<u16> = hits(key, true)
            .into_iter()
            .map(|(_, (_, p, _))| *p)
            .collect();
        pris.sort_unstable_by(|a, b| b.cmp(a));
        pris.dedup();
        for p in pris.into_iter().filter(|p| i32::from(*p) > floor) {
            let at: Vec<&Vec<u8>> = hits(key, true)
                .into_iter()
                .filter(|(_, r)| r.1 == p)
                .map(|(_, r)| &r.2)
                .collect();
            // OVS: fewer soft matches than clauses cannot complete.
            let complete =
                at.len() >= usize::from(n) && (0..n).all(|c| at.iter().any(|cs| cs.contains(&c)));
            if complete {
                let mut k = *key;
                k.set(Field::ConjId, 1);
                // As OVS, the second lookup sees only the highest-priority
                // rule of each match, and skips it if it is soft.
                let shadowed = |(_, (m, p, _)): &(usize, &ConjRule)| {
                    rules
                        .iter()
                        .any(|(m2, p2, c2)| m2 == m && p2 > p && !c2.is_empty())
                };
                let inner = hits(&k, false)
                    .into_iter()
                    .filter(|h| !shadowed(h))
                    .max_by_key(|(_, (_, p, _))| *p);
                if let Some((i, _)) = inner {
                    return Some(i);
                }
            }
        }
        hard.map(|(i, _)| i)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn conj_same_as_linear(
            n in 2u8..4,
            rules in proptest::collection::vec(
                (arb_match(), 0u16..4, 0u8..4, 0u8..4, any::<bool>()),
                0..24,
            ),
            keys in proptest::collection::vec(arb_key(), 1..16),
        ) {
            let mut cls = Classifier::new();
            let mut lin: Vec<ConjRule> = Vec::new();
            for (m, p, kind, c, conj_id) in rules {
                let mut m = normalize(&m);
                let clauses = match kind {
                    0 => vec![c % n],
                    1 => vec![c % n, (c + 1) % n],
                    _ => vec![],
                };
                if clauses.is_empty() && conj_id {
                    m.key.set(Field::ConjId, 1);
                    m.mask.set_exact(Field::ConjId);
                }
                let acts: Vec<Action> = clauses
                    .iter()
                    .map(|&clause| Action::Conjunction { id: 1, clause, n_clauses: n })
                    .collect();
                if cls.find_strict(&m, p).is_some() {
                    continue;
                }
                cls.insert(&m, p, (lin.len(), acts));
                lin.push((m, p, clauses));
            }
            fn acts(v: &(usize, Vec<Action>)) -> &[Action] {
                &v.1
            }
            for key in keys {
                let mut wc = FlowMask::default();
                let got = cls.lookup_conj(&key, &mut wc, &acts, None).map(|r| r.value.0);
                let want = linear_conj(&lin, n, &key);
                prop_assert_eq!(
                    got.map(|i| lin[i].1),
                    want.map(|i| lin[i].1),
                    "got {:?} want {:?} rules {:?} key {:?}",
                    got,
                    want,
                    lin.iter().map(|(m, p, c)| (m.key.display_masked(&m.mask).to_string(), p, c)).collect::<Vec<_>>(),
                    key.display_masked(&FlowMask::EXACT).to_string()
                );
                if let Some(i) = got {
                    prop_assert!(lin[i].2.is_empty());
                }
                let mut other = key;
                for i in 0..N_WORDS {
                    other.words[i] ^= !wc.words[i];
                }
                // conj_id is never in a datapath key.
                other.set(Field::ConjId, 0);
                let mut wc2 = FlowMask::default();
                let got2 = cls.lookup_conj(&other, &mut wc2, &acts, None).map(|r| r.value.0);
                prop_assert_eq!(got, got2);
            }
        }
    }

    #[test]
    fn dl_dst_table_wildcards_ip() {
        let mut cls = Classifier::new();
        let mut m = Match::CATCHALL;
        m.key.set(Field::DlDst, 0x0200_0000_0002);
        m.mask.set_exact(Field::DlDst);
        cls.insert(&m, 10, "a");
        cls.insert(&Match::CATCHALL, 0, "miss");
        let mut k = FlowKey::default();
        k.set(Field::DlDst, 0x0200_0000_0002);
        k.set(Field::NwDst, 0x0a000001);
        let mut wc = FlowMask::default();
        assert_eq!(cls.lookup(&k, &mut wc).unwrap().value, "a");
        let mut want = FlowMask::default();
        want.set_exact(Field::DlDst);
        assert_eq!(wc, want);
        assert_eq!(cls.n_subtables(), 2);
    }

    #[test]
    fn strict_loose_overlap() {
        let mut cls = Classifier::new();
        let mut a = Match::CATCHALL;
        a.key.set(Field::InPort, 1);
        a.mask.set_exact(Field::InPort);
        let mut b = a;
        b.key.set(Field::DlType, 0x0800);
        b.mask.set_exact(Field::DlType);
        cls.insert(&a, 5, 1);
        cls.insert(&b, 5, 2);
        assert_eq!(cls.find_strict(&a, 5).unwrap().value, 1);
        assert!(cls.find_strict(&a, 6).is_none());
        assert_eq!(cls.iter_loose(&a).count(), 2);
        assert_eq!(cls.iter_loose(&b).count(), 1);
        assert_eq!(cls.iter_loose(&Match::CATCHALL).count(), 2);
        assert!(cls.overlaps(&Match::CATCHALL, 5));
        assert!(!cls.overlaps(&Match::CATCHALL, 4));
        let mut c = a;
        c.key.set(Field::InPort, 2);
        assert!(!cls.overlaps(&c, 5));
        assert_eq!(cls.remove(&a, 5), Some(1));
        assert_eq!(cls.remove(&a, 5), None);
        assert_eq!(cls.len(), 1);
    }
}
