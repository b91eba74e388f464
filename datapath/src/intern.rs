//! Interned values that megaflow actions refer to by a `u32` handle (a
//! megaflow's actions stay `Copy`): the `ct` arguments beyond zone and
//! flags ([`crate::actions::CtArgsTable`]) and a `controller` action's
//! packet-in extras (the ofproto crate's `pin_extras`).
//!
//! A handle is the slot (low 16 bits) and the slot's generation (high 16
//! bits, never 0, so no handle is 0): a slot freed and reused gets a new
//! handle, so a stale handle finds nothing instead of another value. At
//! most `max_entries` (at most 65,536) entries of at most `max_weight`
//! in all live at once; an entry goes at a [`InternTable::sweep`] once
//! unused for [`GRACE`], its last use being the last
//! [`InternTable::intern`] of it (a translation) or the last
//! [`InternTable::mark_used`] that named it (the datapath's housekeeping,
//! once a second, for the handles installed megaflows hold). A
//! controller that churns distinct values therefore does not fill a
//! table for good. Like the recirculation ids' grace (OVS frees unused
//! recirculation ids after a grace period too), [`GRACE`] covers a
//! translation used for its packet but not installed.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// How long an entry lives after its last use.
pub const GRACE: Duration = Duration::from_secs(10);

/// Most slots a table can have (a handle's low 16 bits).
pub const MAX_SLOTS: usize = 1 << 16;

/// One slot: the generation of the last handle given out for it, and
/// its entry while live (value, weight, last use in ms after the
/// table's base).
#[derive(Debug)]
struct Slot<T> {
    gen: u16,
    live: Option<(T, usize, AtomicU64)>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { gen: 0, live: None }
    }
}

#[derive(Debug)]
struct Inner<T> {
    ids: HashMap<T, u32>,
    slots: Vec<Slot<T>>,
    /// Slots whose entry was swept, for reuse.
    free: Vec<u16>,
    /// Weight of the live entries.
    weight: usize,
}

/// A bounded table of interned values of type `T` (see the module docs).
#[derive(Debug)]
pub struct InternTable<T> {
    /// Time 0 of the entries' last-use stamps (milliseconds after it).
    base: Instant,
    max_entries: usize,
    max_weight: usize,
    inner: RwLock<Inner<T>>,
}

impl<T: Clone + Eq + Hash> InternTable<T> {
    /// An empty table of at most `max_entries` entries (capped at
    /// [`MAX_SLOTS`]) of at most `max_weight` in all.
    pub fn new(max_entries: usize, max_weight: usize) -> Self {
        InternTable {
            base: Instant::now(),
            max_entries: max_entries.min(MAX_SLOTS),
            max_weight,
            inner: RwLock::new(Inner {
                ids: HashMap::new(),
                slots: Vec::new(),
                free: Vec::new(),
                weight: 0,
            }),
        }
    }

    fn stamp(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner<T>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The handle (nonzero) of `v`, the same for equal values while their
    /// entry lives, its last use set to `now`; `None` when the table is
    /// full (entries or weight; `weight` is `v`'s).
    pub fn intern(&self, v: &T, weight: usize, now: Instant) -> Option<u32> {
        let stamp = self.stamp(now);
        {
            let t = self.read();
            if let Some(&id) = t.ids.get(v) {
                if let Some(Slot {
                    live: Some((_, _, seen)),
                    ..
                }) = t.slots.get(usize::from(id as u16))
                {
                    seen.fetch_max(stamp, Ordering::Relaxed);
                }
                return Some(id);
            }
        }
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = t.ids.get(v) {
            return Some(id);
        }
        if t.weight.saturating_add(weight) > self.max_weight {
            return None;
        }
        let slot = match t.free.pop() {
            Some(s) => usize::from(s),
            None if t.slots.len() < self.max_entries => {
                t.slots.push(Slot::default());
                t.slots.len() - 1
            }
            None => return None,
        };
        let s = &mut t.slots[slot];
        s.gen = s.gen.checked_add(1).unwrap_or(1);
        s.live = Some((v.clone(), weight, AtomicU64::new(stamp)));
        let id = u32::from(s.gen) << 16 | u32::try_from(slot).ok()?;
        t.weight += weight;
        t.ids.insert(v.clone(), id);
        Some(id)
    }

    /// The value behind handle `id` (`None` for 0, or a handle whose
    /// entry was swept).
    pub fn get(&self, id: u32) -> Option<T> {
        match self.read().slots.get(usize::from(id as u16)) {
            Some(Slot {
                gen,
                live: Some((v, _, _)),
            }) if u32::from(*gen) == id >> 16 => Some(v.clone()),
            _ => None,
        }
    }

    /// Set the last use of the live entries among handles `ids` to `now`
    /// (the handles installed megaflows' actions hold).
    pub fn mark_used(&self, ids: &[u32], now: Instant) {
        let stamp = self.stamp(now);
        let t = self.read();
        for &id in ids {
            if let Some(Slot {
                gen,
                live: Some((_, _, seen)),
            }) = t.slots.get(usize::from(id as u16))
            {
                if u32::from(*gen) == id >> 16 {
                    seen.fetch_max(stamp, Ordering::Relaxed);
                }
            }
        }
    }

    /// Free the entries unused for [`GRACE`] at `now`; returns how many
    /// went.
    pub fn sweep(&self, now: Instant) -> usize {
        let Some(before) = now.checked_sub(GRACE) else {
            return 0;
        };
        let limit = self.stamp(before);
        if limit == 0 {
            return 0;
        }
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let Inner {
            ids,
            slots,
            free,
            weight,
        } = &mut *t;
        let mut n = 0;
        for (i, s) in slots.iter_mut().enumerate() {
            let old = matches!(&s.live, Some((_, _, seen)) if seen.load(Ordering::Relaxed) < limit);
            if old {
                if let (Some((v, w, _)), Ok(i)) = (s.live.take(), u16::try_from(i)) {
                    ids.remove(&v);
                    free.push(i);
                    *weight -= w;
                    n += 1;
                }
            }
        }
        n
    }

    /// How many entries live.
    pub fn len(&self) -> usize {
        self.read().ids.len()
    }

    /// Whether no entry lives.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weight of the live entries.
    pub fn weight(&self) -> usize {
        self.read().weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight bound refuses what would pass it, and a sweep gives
    /// back the weight of what it frees.
    #[test]
    fn weight_is_bounded_and_given_back() {
        let t = InternTable::new(10, 100);
        let now = Instant::now();
        let a = t.intern(&"a", 60, now).unwrap();
        assert_eq!(t.intern(&"b", 41, now), None, "60 + 41 > 100");
        assert_eq!(t.intern(&"a", 60, now), Some(a), "the same entry");
        let b = t.intern(&"b", 40, now).unwrap();
        assert_eq!(t.weight(), 100);
        t.mark_used(&[b], now + GRACE);
        assert_eq!(t.sweep(now + GRACE + Duration::from_millis(1)), 1);
        assert_eq!((t.get(a), t.get(b)), (None, Some("b")));
        assert_eq!(t.weight(), 40);
        assert!(t.intern(&"c", 60, now + GRACE).is_some());
    }

    /// At most `max_entries`, whatever the weight.
    #[test]
    fn entries_are_bounded() {
        let t = InternTable::new(2, usize::MAX);
        let now = Instant::now();
        assert!(t.intern(&1, 0, now).is_some());
        assert!(t.intern(&2, 0, now).is_some());
        assert_eq!(t.intern(&3, 0, now), None);
        assert_eq!(t.len(), 2);
    }
}
