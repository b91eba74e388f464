//! Guest TX rate limiting: the `rate` key of a vif's backend directory
//! (`bytes,usecs`, written by libxl from `xl`'s `rate=`), as Linux
//! xen-netback's credit scheduler (`tx_credit_exceeded`, `tx_add_credit`)
//! applies it, but once per vif rather than once per queue.
//!
//! Every `usecs` µs the vif gets `bytes` bytes of credit; the credit held
//! is capped at `max(bytes, 128 KiB)` so that a jumbo GSO packet can always
//! go out eventually (Linux's `max_burst`). A packet whose first request's
//! `size` exceeds the credit left waits, in the ring, until the window
//! ends: the vif's timer wakes the port then. Nothing is dropped; the
//! frontend sees its ring fill and backs off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest credit a vif may hold regardless of its rate (Linux's
/// `max_burst`, 128 KiB: a 64 KiB GSO packet plus slack).
pub const MAX_BURST_BYTES: u64 = 131_072;

/// A vif's TX rate, shared between the vif and the control plane (which
/// updates it when the `rate` key changes). Unlimited until set.
#[derive(Debug)]
pub struct TxRate {
    bytes: AtomicU64,
    usecs: AtomicU64,
}

impl Default for TxRate {
    fn default() -> Self {
        TxRate {
            bytes: AtomicU64::new(u64::MAX),
            usecs: AtomicU64::new(0),
        }
    }
}

impl TxRate {
    /// `bytes` bytes per `usecs` µs; `None` (or a zero of either) is
    /// unlimited.
    pub fn set(&self, rate: Option<(u64, u64)>) {
        let (b, u) = match rate {
            Some((b, u)) if b > 0 && u > 0 => (b, u),
            _ => (u64::MAX, 0),
        };
        // Readers take usecs first: a torn read sees at worst the old
        // window with the new bytes, for one check.
        self.bytes.store(b, Ordering::Relaxed);
        self.usecs.store(u, Ordering::Release);
    }

    /// `(bytes, usecs)`, `None` when unlimited.
    pub fn get(&self) -> Option<(u64, u64)> {
        let u = self.usecs.load(Ordering::Acquire);
        let b = self.bytes.load(Ordering::Relaxed);
        (u != 0 && b != u64::MAX).then_some((b, u))
    }

    /// Parse a `rate` value, `"<bytes>,<usecs>"` (Linux
    /// `xen_net_read_rate`'s `%lu,%lu`). Errors say what is wrong.
    pub fn parse(s: &str) -> Result<(u64, u64), String> {
        let (b, u) = s
            .trim_end_matches('\0')
            .split_once(',')
            .ok_or_else(|| format!("rate {s:?} is not <bytes>,<usecs>"))?;
        let num = |v: &str| {
            (!v.is_empty() && v.len() <= 20 && v.bytes().all(|c| c.is_ascii_digit()))
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| format!("rate {s:?}: {v:?} is not a number"))
        };
        Ok((num(b)?, num(u)?))
    }
}

/// A vif's credit state (in its forwarding thread).
#[derive(Debug)]
pub(super) struct Credit {
    /// The rate last seen, to notice changes.
    seen: Option<(u64, u64)>,
    remaining: u64,
    window_start: Instant,
    /// Set while packets wait for the window to end: when to add credit.
    pub(super) wait_until: Option<Instant>,
}

impl Credit {
    pub(super) fn new() -> Credit {
        Credit {
            seen: None,
            remaining: 0,
            window_start: Instant::now(),
            wait_until: None,
        }
    }

    /// Whether a packet of `size` bytes may go now under `rate` (read
    /// fresh from the shared [`TxRate`]); if so its size is charged.
    /// Otherwise [`Credit::wait_until`] says when to look again.
    pub(super) fn take(&mut self, rate: Option<(u64, u64)>, size: u64, now: Instant) -> bool {
        let Some((bytes, usecs)) = rate else {
            self.seen = None;
            self.wait_until = None;
            return true;
        };
        if self.seen != rate {
            // New or changed rate (Linux `xen_net_rate_changed`): a full
            // window's credit at most.
            if self.seen.is_none() {
                self.remaining = bytes;
                self.window_start = now;
            }
            self.remaining = self.remaining.min(bytes);
            self.seen = rate;
            self.wait_until = None;
        }
        if let Some(t) = self.wait_until {
            if now < t {
                return false;
            }
            self.wait_until = None;
            self.add(bytes);
        }
        if size > self.remaining {
            let next = self.window_start + Duration::from_micros(usecs);
            if now >= next {
                self.window_start = now;
                self.add(bytes);
            }
            if size > self.remaining {
                let next = self.window_start + Duration::from_micros(usecs);
                self.window_start = next;
                self.wait_until = Some(next);
                return false;
            }
        }
        self.remaining -= size;
        true
    }

    /// Linux `tx_add_credit`.
    fn add(&mut self, bytes: u64) {
        let max_burst = bytes.max(MAX_BURST_BYTES);
        self.remaining = self.remaining.saturating_add(bytes).min(max_burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rate() {
        assert_eq!(TxRate::parse("125000,50000"), Ok((125_000, 50_000)));
        assert_eq!(TxRate::parse("1,1\0"), Ok((1, 1)));
        for bad in [
            "",
            "5",
            "a,b",
            "1,",
            ",2",
            "-1,2",
            "1,2,3",
            "99999999999999999999999,1",
        ] {
            assert!(TxRate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shared_rate_zero_means_unlimited() {
        let r = TxRate::default();
        assert_eq!(r.get(), None);
        r.set(Some((1000, 10)));
        assert_eq!(r.get(), Some((1000, 10)));
        r.set(Some((0, 10)));
        assert_eq!(r.get(), None);
    }

    #[test]
    fn credit_per_window_capped_at_max_burst() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let mut c = Credit::new();
        let rate = Some((3000, 100_000)); // 3000 bytes per 100 ms
        for _ in 0..3 {
            assert!(c.take(rate, 1000, t));
        }
        assert!(!c.take(rate, 1000, t), "window spent");
        assert_eq!(c.wait_until, Some(ms(100)));
        assert!(!c.take(rate, 1000, ms(50)), "still waiting");
        assert!(
            c.take(rate, 1000, ms(100)),
            "credit added at the window end"
        );
        assert!(c.take(rate, 2000, ms(100)));
        assert!(!c.take(rate, 1, ms(100)));
        // Idle for long: credit does not pile up (the pending window's
        // credit and the current one's, as Linux).
        assert!(c.take(rate, 3000, ms(10_000)));
        assert!(c.take(rate, 3000, ms(10_000)));
        assert!(!c.take(rate, 1, ms(10_000)));
        // A packet larger than a window's credit still goes once enough
        // windows have passed (up to the 128 KiB burst).
        let mut c = Credit::new();
        let rate = Some((1000, 1000));
        assert!(!c.take(rate, 5000, t));
        let mut now = t;
        let mut waited = 0;
        while !c.take(rate, 5000, now) {
            now = c.wait_until.expect("waiting");
            waited += 1;
            assert!(waited < 10, "a 5000-byte packet must go after 4 windows");
        }
        // Unlimited again: everything goes, and no wait is left.
        assert!(c.take(None, u64::MAX, now));
        assert_eq!(c.wait_until, None);
    }

    #[test]
    fn lowering_the_rate_clamps_the_credit() {
        let t = Instant::now();
        let mut c = Credit::new();
        assert!(c.take(Some((100_000, 1_000_000)), 10, t));
        assert!(!c.take(Some((500, 1_000_000)), 600, t), "clamped to 500");
        assert!(c.take(Some((500, 1_000_000)), 500, t + Duration::from_secs(1)));
    }
}
