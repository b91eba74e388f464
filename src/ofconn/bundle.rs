//! The bundles of one OpenFlow connection (OpenFlow 1.4.1 §6.8; OVS
//! `ofproto/bundles.c` and the bundle part of `connmgr.c`): open,
//! add, close, discard and the bookkeeping of commit. Applying a
//! committed bundle is the [`Handler`](super::Handler)'s.
//!
//! Semantics follow Open vSwitch:
//! - a message is checked as it is added
//!   ([`Handler::check_bundled`](super::Handler::check_bundled): what
//!   needs no state) and refused then, the bundle going on without it;
//! - an add-message to a bundle id that is not open opens it, with the
//!   add's flags;
//! - an add or close with other flags than the bundle's, an add to a
//!   closed bundle, and a close of a closed bundle fail
//!   (`OFPBFC_BAD_FLAGS`, `OFPBFC_BUNDLE_CLOSED`) and discard the bundle;
//! - a commit with other flags than the bundle's fails with
//!   `OFPBFC_BAD_FLAGS`; committed or not, the bundle is gone after a
//!   commit;
//! - a bundle not touched for [`IDLE_TIMEOUT`] is discarded with
//!   `OFPBFC_TIMEOUT` (answering the message that opened it), as OVS's
//!   default `bundle-idle-timeout` of 10 s;
//! - closing the connection discards its bundles.
//!
//! Where Open vSwitch differs from OpenFlow 1.4.1 §7.3.9.2, the spec wins
//! for an open of an id that exists: `OFPBFC_BUNDLE_EXIST`, and the
//! existing bundle stays (OVS answers `OFPBFC_BAD_ID` and discards it).
//!
//! Bounds (OVS has none): [`MAX_BUNDLES`] open bundles per connection
//! (`OFPBFC_OUT_OF_BUNDLES` beyond) and [`MAX_MSGS`] messages or
//! [`MAX_BYTES`] bytes of messages (as received) in all of a
//! connection's bundles (`OFPBFC_MSG_TOO_MANY` beyond; the bundle stays
//! and may still be committed or discarded).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use xennet_ofproto::Bundled;
use xennet_openflow::OfError;

/// A bundle untouched for this long is discarded (OVS
/// `BUNDLE_IDLE_TIMEOUT_DEFAULT`, 10 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most open bundles per connection.
pub const MAX_BUNDLES: usize = 64;
/// Most messages in all of a connection's bundles (a full-table
/// `replace-flows` of 256k flows fits four times).
pub const MAX_MSGS: usize = 1 << 20;
/// Most bytes of messages (the add-messages as received) in all of a
/// connection's bundles, 256 MiB.
pub const MAX_BYTES: usize = 256 << 20;
/// Bytes of a request kept to answer it with an error later (OpenFlow
/// asks for at least 64).
const KEPT: usize = 64;

/// The first bytes of each add-message of a bundle, in one buffer (one
/// allocation per bundle rather than one per message).
#[derive(Debug, Default)]
pub struct Requests {
    bytes: Vec<u8>,
    /// End of message `i`'s bytes in `bytes`.
    ends: Vec<u32>,
}

impl Requests {
    fn push(&mut self, raw: &[u8]) {
        self.bytes.extend_from_slice(&raw[..raw.len().min(KEPT)]);
        // At most MAX_MSGS * KEPT = 64 MiB, within u32.
        self.ends
            .push(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX));
    }

    /// The first bytes (at most 64) of the add-message that brought
    /// message `i` (its header carries the xid to answer an error with).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(p) => *self.ends.get(p)? as usize,
            None => 0,
        };
        self.bytes.get(start..end)
    }
}

#[derive(Debug)]
struct Bundle {
    flags: u16,
    closed: bool,
    used: Instant,
    /// The first bytes of the message that opened it (for `TIMEOUT`).
    opened_by: Vec<u8>,
    /// The included messages, in the order added.
    msgs: Vec<Bundled>,
    /// Their add-messages' first bytes.
    requests: Requests,
    /// Bytes of their add-messages as received.
    size: usize,
}

/// A bundle taken out for commit.
#[derive(Debug)]
pub struct Committed {
    /// Its flags.
    pub flags: u16,
    /// Its messages, in the order added.
    pub msgs: Vec<Bundled>,
    /// Their add-messages' first bytes.
    pub requests: Requests,
}

/// The bundles of one connection (see the module docs).
#[derive(Debug, Default)]
pub struct Bundles {
    open: BTreeMap<u32, Bundle>,
    n_msgs: usize,
    n_bytes: usize,
}

fn kept(raw: &[u8]) -> Vec<u8> {
    raw[..raw.len().min(KEPT)].to_vec()
}

impl Bundles {
    /// Open bundle `id` with `flags` (`raw`: the request).
    ///
    /// # Errors
    /// `OFPBFC_BUNDLE_EXIST`, `OFPBFC_OUT_OF_BUNDLES`.
    pub fn open(&mut self, id: u32, flags: u16, raw: &[u8], now: Instant) -> Result<(), OfError> {
        if self.open.contains_key(&id) {
            return Err(OfError::BUNDLE_EXIST);
        }
        self.create(id, flags, raw, now)
    }

    fn create(&mut self, id: u32, flags: u16, raw: &[u8], now: Instant) -> Result<(), OfError> {
        if self.open.len() >= MAX_BUNDLES {
            return Err(OfError::OUT_OF_BUNDLES);
        }
        self.open.insert(
            id,
            Bundle {
                flags,
                closed: false,
                used: now,
                opened_by: kept(raw),
                msgs: Vec::new(),
                requests: Requests::default(),
                size: 0,
            },
        );
        Ok(())
    }

    /// Close bundle `id`.
    ///
    /// # Errors
    /// `OFPBFC_BAD_ID`; `OFPBFC_BUNDLE_CLOSED`, `OFPBFC_BAD_FLAGS` (the
    /// bundle is discarded).
    pub fn close(&mut self, id: u32, flags: u16, now: Instant) -> Result<(), OfError> {
        let b = self.open.get_mut(&id).ok_or(OfError::BUNDLE_BAD_ID)?;
        let err = if b.closed {
            OfError::BUNDLE_CLOSED
        } else if b.flags != flags {
            OfError::BUNDLE_BAD_FLAGS
        } else {
            b.closed = true;
            b.used = now;
            return Ok(());
        };
        self.remove(id);
        Err(err)
    }

    /// Add `msg` to bundle `id` (opening it if needed); `raw` is the
    /// add-message.
    ///
    /// # Errors
    /// `OFPBFC_BUNDLE_CLOSED`, `OFPBFC_BAD_FLAGS` (the bundle is
    /// discarded), `OFPBFC_OUT_OF_BUNDLES`, `OFPBFC_MSG_TOO_MANY`.
    pub fn add(
        &mut self,
        id: u32,
        flags: u16,
        msg: Bundled,
        raw: &[u8],
        now: Instant,
    ) -> Result<(), OfError> {
        match self.open.get(&id) {
            None => self.create(id, flags, raw, now)?,
            Some(b) if b.closed => {
                self.remove(id);
                return Err(OfError::BUNDLE_CLOSED);
            }
            Some(b) if b.flags != flags => {
                self.remove(id);
                return Err(OfError::BUNDLE_BAD_FLAGS);
            }
            Some(_) => {}
        }
        if self.n_msgs >= MAX_MSGS || self.n_bytes.saturating_add(raw.len()) > MAX_BYTES {
            return Err(OfError::BUNDLE_MSG_TOO_MANY);
        }
        let Some(b) = self.open.get_mut(&id) else {
            return Err(OfError::BUNDLE_UNKNOWN);
        };
        b.used = now;
        b.msgs.push(msg);
        b.requests.push(raw);
        b.size += raw.len();
        self.n_msgs += 1;
        self.n_bytes += raw.len();
        Ok(())
    }

    /// Take bundle `id` out for commit.
    ///
    /// # Errors
    /// `OFPBFC_BAD_ID`; `OFPBFC_BAD_FLAGS` (the bundle is discarded).
    pub fn take(&mut self, id: u32, flags: u16) -> Result<Committed, OfError> {
        let b = self.remove(id).ok_or(OfError::BUNDLE_BAD_ID)?;
        if b.flags != flags {
            return Err(OfError::BUNDLE_BAD_FLAGS);
        }
        Ok(Committed {
            flags: b.flags,
            msgs: b.msgs,
            requests: b.requests,
        })
    }

    /// Discard bundle `id`.
    ///
    /// # Errors
    /// `OFPBFC_BAD_ID`.
    pub fn discard(&mut self, id: u32) -> Result<(), OfError> {
        self.remove(id).map(|_| ()).ok_or(OfError::BUNDLE_BAD_ID)
    }

    fn remove(&mut self, id: u32) -> Option<Bundle> {
        let b = self.open.remove(&id)?;
        self.n_msgs -= b.msgs.len();
        self.n_bytes -= b.size;
        Some(b)
    }

    /// When the next bundle times out, if any is open.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.open.values().map(|b| b.used + IDLE_TIMEOUT).min()
    }

    /// Discard the bundles idle for [`IDLE_TIMEOUT`] at `now`; returns
    /// the requests that opened them (to answer with `OFPBFC_TIMEOUT`).
    pub fn expire(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let old: Vec<u32> = self
            .open
            .iter()
            .filter(|(_, b)| now.saturating_duration_since(b.used) >= IDLE_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        old.into_iter()
            .filter_map(|id| self.remove(id).map(|b| b.opened_by))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_openflow::model::Msg;

    fn bundled(m: Msg) -> Bundled {
        Bundled::new(Box::new(m))
    }

    fn raw(xid: u8) -> Vec<u8> {
        vec![5, 34, 0, 8, 0, 0, 0, xid]
    }

    #[test]
    fn lifecycle_like_ovs() {
        let now = Instant::now();
        let mut b = Bundles::default();
        // Add opens; other flags discard.
        b.add(1, 3, bundled(Msg::BarrierRequest), &raw(1), now)
            .unwrap();
        assert_eq!(
            b.add(1, 1, bundled(Msg::BarrierRequest), &raw(2), now),
            Err(OfError::BUNDLE_BAD_FLAGS)
        );
        assert!(b.open.is_empty());
        assert_eq!((b.n_msgs, b.n_bytes), (0, 0));
        // Open, exists, close, closed, add to closed.
        b.open(2, 3, &raw(3), now).unwrap();
        assert_eq!(b.open(2, 3, &raw(3), now), Err(OfError::BUNDLE_EXIST));
        assert_eq!(b.open.len(), 1);
        b.add(2, 3, bundled(Msg::BarrierRequest), &raw(4), now)
            .unwrap();
        b.close(2, 3, now).unwrap();
        assert_eq!(
            b.add(2, 3, bundled(Msg::BarrierRequest), &raw(5), now),
            Err(OfError::BUNDLE_CLOSED)
        );
        assert_eq!(b.close(2, 3, now), Err(OfError::BUNDLE_BAD_ID));
        // Commit with other flags fails and discards.
        b.open(3, 3, &raw(6), now).unwrap();
        assert_eq!(b.take(3, 1).err(), Some(OfError::BUNDLE_BAD_FLAGS));
        assert_eq!(b.take(3, 3).err(), Some(OfError::BUNDLE_BAD_ID));
        // Take keeps the order.
        b.add(4, 0, bundled(Msg::BarrierRequest), &raw(7), now)
            .unwrap();
        b.add(4, 0, bundled(Msg::EchoRequest(vec![])), &raw(8), now)
            .unwrap();
        let c = b.take(4, 0).unwrap();
        assert_eq!(c.requests.get(1), Some(&raw(8)[..]));
        assert_eq!(c.requests.get(2), None);
        assert_eq!(b.discard(4), Err(OfError::BUNDLE_BAD_ID));
        assert_eq!((b.n_msgs, b.n_bytes), (0, 0));
    }

    #[test]
    fn bounded() {
        let now = Instant::now();
        let mut b = Bundles::default();
        for id in 0..MAX_BUNDLES as u32 {
            b.open(id, 0, &raw(0), now).unwrap();
        }
        assert_eq!(
            b.open(MAX_BUNDLES as u32, 0, &raw(0), now),
            Err(OfError::OUT_OF_BUNDLES)
        );
        assert_eq!(
            b.add(u32::MAX, 0, bundled(Msg::BarrierRequest), &raw(0), now),
            Err(OfError::OUT_OF_BUNDLES)
        );
        b.n_bytes = MAX_BYTES - 8;
        b.add(0, 0, bundled(Msg::BarrierRequest), &raw(0), now)
            .unwrap();
        assert_eq!(
            b.add(0, 0, bundled(Msg::BarrierRequest), &raw(0), now),
            Err(OfError::BUNDLE_MSG_TOO_MANY)
        );
        b.n_bytes = 0;
        b.n_msgs = MAX_MSGS;
        assert_eq!(
            b.add(1, 0, bundled(Msg::BarrierRequest), &raw(0), now),
            Err(OfError::BUNDLE_MSG_TOO_MANY)
        );
    }

    #[test]
    fn idle_bundles_expire() {
        let t0 = Instant::now();
        let mut b = Bundles::default();
        assert_eq!(b.next_expiry(), None);
        b.open(1, 0, &raw(1), t0).unwrap();
        b.open(2, 0, &raw(2), t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(b.next_expiry(), Some(t0 + IDLE_TIMEOUT));
        assert!(b.expire(t0 + Duration::from_secs(9)).is_empty());
        let gone = b.expire(t0 + IDLE_TIMEOUT);
        assert_eq!(gone, vec![raw(1)]);
        assert_eq!(b.open.len(), 1);
        // Use keeps a bundle alive.
        b.add(
            2,
            0,
            bundled(Msg::BarrierRequest),
            &raw(3),
            t0 + IDLE_TIMEOUT,
        )
        .unwrap();
        assert!(b.expire(t0 + Duration::from_secs(15)).is_empty());
    }
}
