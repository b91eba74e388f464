//! Meters: per-band token buckets run by the forwarding thread (OVS
//! `dp_netdev_run_meter` in `lib/dpif-netdev.c`; OpenFlow 1.3.5 §5.7).
//!
//! Each band has a bucket that refills at the band's rate and holds at most
//! its burst. A packet costs its length in bits (kbit/s meters) or one
//! packet (packet/s meters); every band whose bucket has enough tokens pays
//! for it, and the packet *exceeds* the bands that cannot. Of the exceeded
//! bands, the one with the highest rate applies (§5.7: "the meter band with
//! the highest configured rate that is lower than the current measured
//! rate"): a drop band drops the packet, a DSCP remark band raises its drop
//! precedence.
//!
//! Units inside the bucket: bits for kbit/s meters, milli-packets for
//! packet/s meters, so that both refill by `rate * elapsed_ns / 10^6`.
//! A burst of 0 (or a meter without `OFPMF_BURST`) means one second's
//! worth of the rate, as OVS does when no burst is configured.
//! The table is bounded by [`MAX_METERS`] meters of at most [`MAX_BANDS`]
//! bands.

use std::collections::HashMap;
use std::time::Instant;

/// Most meters per datapath.
pub const MAX_METERS: usize = 4096;
/// Most bands per meter.
pub const MAX_BANDS: usize = 8;

/// What a band does to packets that exceed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BandKind {
    /// Drop them.
    Drop,
    /// Raise the DSCP drop precedence by this many levels.
    DscpRemark(u8),
}

/// One band's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BandSpec {
    /// What to do.
    pub kind: BandKind,
    /// Rate in kbit/s or packets/s (per [`MeterSpec::pktps`]).
    pub rate: u32,
    /// Burst in kbit or packets; 0 = one second of `rate`.
    pub burst: u32,
}

/// A meter's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterSpec {
    /// Rates are packets/s (else kbit/s).
    pub pktps: bool,
    /// The bands (at most [`MAX_BANDS`]).
    pub bands: Vec<BandSpec>,
}

/// Counters of one meter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeterCounters {
    /// Packets that went through the meter.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Per band: packets and bytes that the band applied to.
    pub bands: Vec<(u64, u64)>,
}

/// The outcome of metering one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under every band's rate (or no such meter).
    Pass,
    /// Drop it.
    Drop,
    /// Remark DSCP by this many levels, then continue.
    Remark(u8),
}

#[derive(Debug)]
struct Band {
    spec: BandSpec,
    tokens: u64,
    cap: u64,
}

#[derive(Debug)]
struct Meter {
    pktps: bool,
    bands: Vec<Band>,
    last: Instant,
    counters: MeterCounters,
}

/// The meters of one datapath.
#[derive(Debug, Default)]
pub struct MeterTable {
    meters: HashMap<u32, Meter, foldhash::fast::RandomState>,
}

impl MeterTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace meter `id` (counters restart, buckets start full).
    /// False if the table is full or the spec has too many bands.
    pub fn set(&mut self, id: u32, spec: &MeterSpec, now: Instant) -> bool {
        if spec.bands.len() > MAX_BANDS
            || (!self.meters.contains_key(&id) && self.meters.len() >= MAX_METERS)
        {
            return false;
        }
        let bands = spec
            .bands
            .iter()
            .map(|b| {
                let burst = if b.burst == 0 { b.rate } else { b.burst };
                let cap = u64::from(burst).saturating_mul(1000).max(1);
                Band {
                    spec: *b,
                    tokens: cap,
                    cap,
                }
            })
            .collect::<Vec<_>>();
        let n = bands.len();
        self.meters.insert(
            id,
            Meter {
                pktps: spec.pktps,
                bands,
                last: now,
                counters: MeterCounters {
                    bands: vec![(0, 0); n],
                    ..MeterCounters::default()
                },
            },
        );
        true
    }

    /// Remove meter `id`; whether it existed.
    pub fn remove(&mut self, id: u32) -> bool {
        self.meters.remove(&id).is_some()
    }

    /// Counters of every meter.
    pub fn stats(&self) -> Vec<(u32, MeterCounters)> {
        let mut v: Vec<_> = self
            .meters
            .iter()
            .map(|(id, m)| (*id, m.counters.clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// Meter one packet of `len` bytes at `now`. Allocates nothing.
    pub fn run(&mut self, id: u32, len: usize, now: Instant) -> Verdict {
        let Some(m) = self.meters.get_mut(&id) else {
            return Verdict::Pass;
        };
        let elapsed = now.saturating_duration_since(m.last).as_nanos();
        m.last = m.last.max(now);
        let cost = if m.pktps {
            1000
        } else {
            (len as u64).saturating_mul(8)
        };
        m.counters.packets = m.counters.packets.wrapping_add(1);
        m.counters.bytes = m.counters.bytes.wrapping_add(len as u64);
        let mut exceeded: Option<(usize, u32)> = None;
        for (i, b) in m.bands.iter_mut().enumerate() {
            let add = (u128::from(b.spec.rate) * elapsed / 1_000_000).min(u128::from(u64::MAX));
            b.tokens = b.tokens.saturating_add(add as u64).min(b.cap);
            if b.tokens >= cost {
                b.tokens -= cost;
            } else if exceeded.map_or(true, |(_, r)| r < b.spec.rate) {
                exceeded = Some((i, b.spec.rate));
            }
        }
        let Some((e, _)) = exceeded else {
            return Verdict::Pass;
        };
        if let Some(c) = m.counters.bands.get_mut(e) {
            c.0 = c.0.wrapping_add(1);
            c.1 = c.1.wrapping_add(len as u64);
        }
        match m.bands[e].spec.kind {
            BandKind::Drop => Verdict::Drop,
            BandKind::DscpRemark(p) => Verdict::Remark(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pktps_drop_band() {
        let mut t = MeterTable::new();
        let now = Instant::now();
        assert!(t.set(
            1,
            &MeterSpec {
                pktps: true,
                bands: vec![BandSpec {
                    kind: BandKind::Drop,
                    rate: 10,
                    burst: 5
                }]
            },
            now
        ));
        let pass = (0..20)
            .filter(|_| t.run(1, 100, now) == Verdict::Pass)
            .count();
        assert_eq!(pass, 5);
        // One second later: 10 more tokens, capped at the burst of 5.
        let later = now + Duration::from_secs(1);
        let pass = (0..20)
            .filter(|_| t.run(1, 100, later) == Verdict::Pass)
            .count();
        assert_eq!(pass, 5);
        let s = t.stats();
        assert_eq!(s[0].1.packets, 40);
        assert_eq!(s[0].1.bands[0].0, 30);
        assert_eq!(t.run(2, 100, now), Verdict::Pass);
    }

    #[test]
    fn kbps_highest_exceeded_band_wins() {
        let mut t = MeterTable::new();
        let now = Instant::now();
        t.set(
            7,
            &MeterSpec {
                pktps: false,
                bands: vec![
                    BandSpec {
                        kind: BandKind::DscpRemark(1),
                        rate: 8,
                        burst: 8,
                    },
                    BandSpec {
                        kind: BandKind::Drop,
                        rate: 16,
                        burst: 16,
                    },
                ],
            },
            now,
        );
        // 1000-byte packets: 8 kbit each. First fits both buckets.
        assert_eq!(t.run(7, 1000, now), Verdict::Pass);
        // Second: remark band empty, drop band still has 8 kbit.
        assert_eq!(t.run(7, 1000, now), Verdict::Remark(1));
        // Third: both exceeded, drop (higher rate) wins.
        assert_eq!(t.run(7, 1000, now), Verdict::Drop);
    }
}
