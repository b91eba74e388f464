//! Recirculation ids and the frozen translation state behind them (OVS
//! `ofproto/ofproto-dpif-rid.c`).
//!
//! When translation reaches `ct(table=N)` it *freezes*: the state the
//! pipeline needs to go on after the datapath has run the packet through
//! the connection tracker (the table to resume in, the pipeline fields
//! such as registers and metadata that the datapath does not carry, the
//! `push`/`pop` stack, the action set, the actions still to run) is kept
//! here under a recirculation id, and the datapath action list ends in
//! `recirc(id)`. The recirculated packet comes back as an upcall whose key
//! has `recirc_id` = id; translation *thaws* the state and resumes.
//!
//! - Equal states share one id (OVS `recirc_alloc_id_ctx` looks the state
//!   up first), so a flow's megaflows stay few.
//! - Ids are never reused (a counter, skipping 0): a megaflow that outlives
//!   its state can only miss, never resume someone else's.
//! - An id is freed once no installed megaflow's actions use it (the
//!   datapath reports the ids in use every second,
//!   [`xennet_datapath::UpcallHandler::recirc_ids_used`]) and it is older
//!   than [`GRACE`] (a translation that was used for its packet but not
//!   installed still needs its state for the packet's next pass).
//! - At most [`MAX_RECIRC_IDS`] states; beyond, translation fails and the
//!   packet is dropped (OVS `XLATE_NO_RECIRCULATION_CONTEXT`).
//!
//! One table per bridge (OVS keys its states by the ofproto's uuid); it
//! locks internally and is the last lock taken in a translation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xennet_openflow::model::Action;

/// Most live frozen states per bridge.
pub const MAX_RECIRC_IDS: usize = 65_536;

/// How long an id lives without a megaflow using it.
pub const GRACE: Duration = Duration::from_secs(10);

/// What a recirculated packet's translation resumes with (OVS
/// `struct frozen_state`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrozenState {
    /// The table to resume in.
    pub table_id: u8,
    /// The OpenFlow in_port at the freeze.
    pub in_port: u32,
    /// The 64-bit extended registers `xreg0..7` (`reg0..15` in pairs).
    pub xregs: [u64; 8],
    /// The metadata register.
    pub metadata: u64,
    /// The `push`/`pop` stack.
    pub stack: Vec<u128>,
    /// The action set so far.
    pub action_set: Vec<Action>,
    /// Whether the packet went through `ct` in this bridge: its conntrack
    /// fields are honoured after the thaw (OVS `conntracked`).
    pub conntracked: bool,
    /// What is left of the interrupted pipeline, run after the thaw
    /// instead of a lookup in `table_id` when not empty (OVS
    /// `frozen_actions`: a freeze in the middle of an action list, as
    /// after `pop_mpls`).
    pub ops: Vec<FrozenOp>,
}

/// One step of a frozen pipeline's rest; the same steps travel in a
/// `controller(pause)`'s continuation, so the type is the codec's.
pub use xennet_openflow::packet_in2::continuation::FrozenOp;

#[derive(Debug)]
struct Entry {
    state: Arc<FrozenState>,
    created: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    by_state: HashMap<Arc<FrozenState>, u32>,
    by_id: HashMap<u32, Entry>,
    last: u32,
}

/// The bridge's recirculation ids (see the module docs).
#[derive(Debug, Default)]
pub struct RecircTable {
    inner: Mutex<Inner>,
}

impl RecircTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of `state` (an existing one if an equal state has one, its
    /// grace period renewed), or `None` when [`MAX_RECIRC_IDS`] states live.
    pub fn alloc(&self, state: FrozenState, now: Instant) -> Option<u32> {
        let mut t = self.lock();
        if let Some(&id) = t.by_state.get(&state) {
            if let Some(e) = t.by_id.get_mut(&id) {
                e.created = now;
            }
            return Some(id);
        }
        if t.by_id.len() >= MAX_RECIRC_IDS {
            return None;
        }
        // The next id not in use; u32 ids wrap after 4 billion freezes,
        // and the table holds far fewer than that.
        let mut id = t.last;
        loop {
            id = id.wrapping_add(1);
            if id != 0 && !t.by_id.contains_key(&id) {
                break;
            }
        }
        t.last = id;
        let state = Arc::new(state);
        t.by_state.insert(state.clone(), id);
        t.by_id.insert(
            id,
            Entry {
                state,
                created: now,
            },
        );
        Some(id)
    }

    /// The state of `id`, if it lives.
    pub fn get(&self, id: u32) -> Option<Arc<FrozenState>> {
        self.lock().by_id.get(&id).map(|e| e.state.clone())
    }

    /// Free the states whose id is not in `used` (sorted) and that are
    /// older than [`GRACE`]; returns how many went.
    pub fn release_unused(&self, used: &[u32], now: Instant) -> usize {
        let mut t = self.lock();
        let gone: Vec<u32> = t
            .by_id
            .iter()
            .filter(|(id, e)| {
                used.binary_search(id).is_err() && now.saturating_duration_since(e.created) >= GRACE
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some(e) = t.by_id.remove(id) {
                t.by_state.remove(&e.state);
            }
        }
        gone.len()
    }

    /// Live states.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether no state lives.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(table_id: u8) -> FrozenState {
        FrozenState {
            table_id,
            in_port: 1,
            xregs: [0; 8],
            metadata: 0,
            stack: Vec::new(),
            action_set: Vec::new(),
            conntracked: true,
            ops: Vec::new(),
        }
    }

    #[test]
    fn equal_states_share_an_id_and_ids_are_not_reused() {
        let t = RecircTable::new();
        let now = Instant::now();
        let a = t.alloc(state(1), now).unwrap();
        assert_ne!(a, 0);
        assert_eq!(t.alloc(state(1), now), Some(a));
        let b = t.alloc(state(2), now).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.get(a).unwrap().table_id, 1);
        assert!(t.get(0).is_none());
        // Within the grace period nothing goes; after it, only the unused.
        assert_eq!(t.release_unused(&[], now), 0);
        let later = now + GRACE;
        assert_eq!(t.release_unused(&[b], later), 1);
        assert!(t.get(a).is_none());
        assert_eq!(t.get(b).unwrap().table_id, 2);
        let c = t.alloc(state(1), later).unwrap();
        assert!(c != a && c != b, "a freed id is not handed out again");
        assert_eq!(t.len(), 2);
    }
}
