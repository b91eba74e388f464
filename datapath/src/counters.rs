//! Counters an OpenFlow rule shares with the megaflows compiled from it
//! (OVS credits `rule_dpif` stats from `xlate_cache` entries when it
//! revalidates; xennet credits them directly, once per batch per megaflow).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Packet, byte and last-use counters, shared (`Arc`) between a rule and
/// the forwarding thread. Updates are relaxed atomics; readers see each
/// counter consistent on its own.
#[derive(Debug, Default)]
pub struct RuleCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Nanoseconds after the process epoch plus one; 0 = never used.
    used_ns: AtomicU64,
}

impl RuleCounters {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Credit `packets` packets totalling `bytes` bytes, last seen at `now`.
    pub fn credit(&self, packets: u64, bytes: u64, now: Instant) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let ns = now.saturating_duration_since(epoch()).as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX - 1).saturating_add(1);
        self.used_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Packets credited.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes credited.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// When a packet was last credited, if ever.
    pub fn used(&self) -> Option<Instant> {
        match self.used_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(epoch() + Duration::from_nanos(ns - 1)),
        }
    }
}
