//! Application-layer gateways: the FTP and TFTP helpers of `ct(alg=ftp)`
//! and `ct(alg=tftp)` (OVS lib/conntrack.c `handle_ftp_ctl`,
//! `process_ftp_ctl_v4/v6`, `handle_tftp_ctl`, `expectation_create`,
//! `expectation_lookup`).
//!
//! A connection committed with a helper is a *control connection*. The
//! helper reads its packets and creates *expectations*: the key of a
//! connection to come, with the source port wildcarded (0):
//!
//! - **FTP** (TCP): a `PORT`/`EPRT` command (active mode, RFC 959 and
//!   RFC 2428) expects the server to connect to the port the client
//!   named; a `227` (`PASV`) or `229` (`EPSV`) reply (passive mode)
//!   expects the client to connect to the port the server named. The
//!   address in `PORT`/`PASV`/`EPRT` must be one of the control
//!   connection's, as OVS requires; otherwise, and for any malformed
//!   message of interest, the packet is `+inv` (counted, logged at most
//!   once a second). Over IPv6 only `EPRT` and the `229` reply
//!   ("Extended Passive") count, as in OVS.
//! - **TFTP** (UDP): every packet of the control connection expects a
//!   packet from the server, from any port, back to the client's port
//!   (RFC 1350: the server answers from a new port). Under source NAT
//!   that is the port the server saw: where the NAT had to move the
//!   client's port (another connection held it), the answer to the
//!   moved port is expected and its `ct(commit,nat)` sends it back to
//!   the client's own port. OVS expects the client's own port there
//!   even then, which the other connection's expectation (or nothing)
//!   holds, so that answer is lost.
//!
//! A new connection that matches an expectation is `+rel` (`+new+rel`,
//! then `+est+rel`, with `+rpl` in the reply direction) and takes the
//! control connection's `ct_mark`, `ct_label` (a `ct` action's writes do
//! not change them, as OVS) and original tuple (`ct_nw_src` ...).
//! `dpctl/dump-conntrack` shows `helper=ftp`/`helper=tftp` on control
//! connections.
//!
//! Bounds (OVS has none: its expectations live as long as their control
//! connection): at most [`MAX_EXPECTATIONS`] in the tracker and
//! [`MAX_PER_CONN`] per control connection (a new one replaces the
//! oldest); each expires [`EXPECT_TIMEOUT_MS`] after it was made (the
//! Linux FTP and TFTP helpers' 5 minutes) and goes with its control
//! connection (expiry, flush). A full table refuses new expectations,
//! counted and logged.
//!
//! NAT (OVS `repl_ftp_v4_addr`, `repl_ftp_v6_addr`, `seq_skew`): when the
//! `ct` action has `nat`, the address in `PORT`, `EPRT` and `227` is
//! replaced by the one the other side sees (the NAT address), the segment
//! resized (IP length, IPv4 header and TCP checksums fixed), and the
//! size change kept as the connection's sequence skew: later segments in
//! that direction have their sequence numbers moved on, those of the
//! other direction their acknowledgements moved back before the TCP
//! tracker reads them. A data connection committed with `nat` gets the
//! control connection's translation (OVS `alg_nat_repl_addr`). A GSO
//! frame or one that would pass 65535 bytes is not rewritten (counted,
//! logged).
//! Differs from OVS on purpose: the skew keeps the sequence number of
//! the last rewritten segment and the skew before it (Linux
//! `nf_ct_seqadj`), so a retransmission (of the rewritten message, or of
//! a segment before it) moves by the skew its first copy had, where OVS
//! adds the rewrite's growth again and moves every retransmission by the
//! latest skew; packets that are `+inv` (for example out
//! of the TCP window) create no expectations and are not rewritten,
//! port 0 is malformed, an `EPRT` address is rewritten with dots (OVS
//! writes commas), and there is no "effective MTU" refusal (OVS refuses
//! the rewrite when the packet buffer has no 8 bytes of tailroom).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use super::key::{ConnKey, Parsed, PROTO_TCP, PROTO_UDP};
use super::{cs, nat, Inner};
use crate::buffer::{Csum, Packet};

/// Most expectations in the tracker.
pub const MAX_EXPECTATIONS: usize = 4096;
/// Most expectations one control connection holds; a new one replaces
/// its oldest.
pub const MAX_PER_CONN: usize = 4;
/// Lifetime of an expectation, ms (Linux `nf_conntrack_ftp` and
/// `nf_conntrack_tftp`: 5 * 60 s).
pub const EXPECT_TIMEOUT_MS: u64 = 300_000;
/// Bytes of an FTP segment's payload the parser reads (OVS
/// `LARGEST_FTP_MSG_OF_INTEREST`).
pub const FTP_MSG_MAX: usize = 128;

const FTP_PORT: u16 = 21;
const TFTP_PORT: u16 = 69;

/// A `ct` action's helper (`alg=ftp` / `alg=tftp`, NXAST_CT `alg` 21 /
/// 69, OVS `OVS_CT_ATTR_HELPER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Helper {
    /// FTP (RFC 959, RFC 2428), TCP.
    Ftp,
    /// TFTP (RFC 1350), UDP.
    Tftp,
}

impl Helper {
    /// The helper an NXAST_CT `alg` value names (its well-known port);
    /// `None` for 0 and for values OVS cannot serialize.
    pub fn from_alg(alg: u16) -> Option<Helper> {
        match alg {
            FTP_PORT => Some(Helper::Ftp),
            TFTP_PORT => Some(Helper::Tftp),
            _ => None,
        }
    }

    /// The name `dump-conntrack` shows (`helper=ftp`).
    pub fn name(self) -> &'static str {
        match self {
            Helper::Ftp => "ftp",
            Helper::Tftp => "tftp",
        }
    }
}

/// The helper a packet is a control packet for (OVS
/// `get_alg_ctl_type`): the given helper when the protocol fits, else by
/// well-known port (TCP 21 either way, UDP to 69).
pub(crate) fn ctl_type(helper: Option<Helper>, k: &ConnKey) -> Option<Helper> {
    match (helper, k.proto) {
        (Some(Helper::Ftp), PROTO_TCP) => return Some(Helper::Ftp),
        (Some(Helper::Tftp), PROTO_UDP) => return Some(Helper::Tftp),
        _ => {}
    }
    match k.proto {
        PROTO_UDP if k.dport == TFTP_PORT => Some(Helper::Tftp),
        PROTO_TCP if k.sport == FTP_PORT || k.dport == FTP_PORT => Some(Helper::Ftp),
        _ => None,
    }
}

/// The helper a committed connection keeps (OVS `ct_verify_helper`):
/// the action's, unless the packet is a control packet of another
/// helper (or of one, with none given).
pub(crate) fn verify(helper: Option<Helper>, ctl: Option<Helper>) -> Option<Helper> {
    match ctl {
        None => helper,
        Some(c) => helper.filter(|&h| h == c),
    }
}

/// A connection's ALG state (boxed in the connection: most have none).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnAlg {
    /// The helper of a control connection.
    pub helper: Option<Helper>,
    /// For a connection made from an expectation (`+rel`): the control
    /// connection's original key.
    pub parent: Option<ConnKey>,
    /// Keys of the expectations this connection made, oldest first.
    pub exps: Vec<ConnKey>,
    /// Bytes the FTP address rewrites under NAT added (negative:
    /// removed) to the stream in direction `skew_reply` (OVS `seq_skew`,
    /// `seq_skew_dir`; Linux `nf_ct_seqadj` `offset_after`): segments of
    /// that direction after `skew_pos` have their sequence numbers moved
    /// by it, the other direction's acknowledgements of them back.
    pub seq_skew: i32,
    /// What the skew was before the last rewrite (Linux
    /// `offset_before`): segments at or before `skew_pos`
    /// (retransmissions, the rewritten one sent again) move by this.
    pub skew_before: i32,
    /// Sequence number (the sender's) of the last segment rewritten
    /// (Linux `correction_pos`).
    pub skew_pos: u32,
    pub skew_reply: bool,
}

impl ConnAlg {
    /// Whether rewrites changed the stream's length.
    fn skewed(&self) -> bool {
        self.seq_skew != 0 || self.skew_before != 0
    }

    /// How far a segment of direction `skew_reply` that starts at `seq`
    /// (the sender's numbering) moves (Linux `nf_ct_seq_adjust`).
    fn seq_offset(&self, seq: u32) -> i32 {
        if (seq.wrapping_sub(self.skew_pos) as i32) > 0 {
            self.seq_skew
        } else {
            self.skew_before
        }
    }

    /// How far back an acknowledgement `ack` of the other direction (the
    /// receiver's numbering) moves.
    fn ack_offset(&self, ack: u32) -> i32 {
        self.seq_offset(ack.wrapping_sub(self.skew_before as u32))
    }

    /// A segment of direction `reply` starting at `seq` was rewritten,
    /// `delta` bytes longer (Linux `nf_ct_seqadj_set`): the skew grows
    /// unless the segment is at or before the last one rewritten (a
    /// retransmission was rewritten again). A rewrite in the other
    /// direction carries the skew over, as OVS does.
    fn record(&mut self, seq: u32, reply: bool, delta: i32) {
        if delta == 0 {
            return;
        }
        let later = (seq.wrapping_sub(self.skew_pos) as i32) > 0;
        if !self.skewed() || reply != self.skew_reply || later {
            self.skew_pos = seq;
            self.skew_before = self.seq_skew;
            self.seq_skew = self.seq_skew.wrapping_add(delta);
            self.skew_reply = reply;
        }
    }
}

/// One expectation (OVS `struct alg_exp_node`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    /// The control connection's original key.
    pub parent: ConnKey,
    /// The control connection's slot and generation.
    pub parent_slot: u32,
    pub parent_gen: u32,
    /// The control connection's mark and label when it was made.
    pub mark: u32,
    pub label: u128,
    /// Expiry, ms since the tracker's epoch.
    pub expires: u64,
    /// NAT of a data connection committed with `nat`: rewrite its reply
    /// key's destination (else source) to `repl_addr`.
    pub nat_rpl_dst: bool,
    pub repl_addr: u128,
    /// With `repl_addr` on the source side (`!nat_rpl_dst`): the port
    /// to write there too, when the control connection's source NAT
    /// moved the client's port (TFTP; 0: keep the port).
    pub repl_port: u16,
}

/// ALG counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlgStats {
    /// Expectations held now.
    pub held: u64,
    /// Expectations made.
    pub created: u64,
    /// Expectations refused because [`MAX_EXPECTATIONS`] were held.
    pub refused: u64,
    /// Expectations replaced by a newer one of the same control
    /// connection ([`MAX_PER_CONN`]).
    pub replaced: u64,
    /// Expectations that expired unused.
    pub expired: u64,
    /// Connections made from an expectation (`+rel`).
    pub related: u64,
    /// Malformed or hostile FTP messages (the packet was `+inv`).
    pub ftp_invalid: u64,
    /// FTP addresses not rewritten for NAT (GSO frame, too long).
    pub nat_rewrite_failed: u64,
}

/// The expectation table (OVS `alg_expectations`), bounded.
#[derive(Debug, Default)]
pub(crate) struct Expectations {
    map: HashMap<ConnKey, Expect, foldhash::fast::RandomState>,
    /// (expiry, key) in the order made: expiry order, since every
    /// expectation lives [`EXPECT_TIMEOUT_MS`]. Entries of expectations
    /// removed meanwhile are stale (told by their expiry).
    order: VecDeque<(u64, ConnKey)>,
    pub stats: AlgStats,
    /// When the next refusal may be logged (ms).
    next_warn: u64,
    /// Connections holding a [`ConnAlg`] (control connections and
    /// those made from an expectation), for
    /// [`Expectations::memory_bytes`].
    states: usize,
}

impl Expectations {
    /// Expectations held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The expectation a new connection with key `k` matches (source
    /// port wildcarded); an expired one is removed.
    pub fn lookup(&mut self, k: &ConnKey, now: u64) -> Option<Expect> {
        if self.map.is_empty() {
            return None;
        }
        let key = ConnKey { sport: 0, ..*k };
        let e = *self.map.get(&key)?;
        if e.expires <= now {
            self.map.remove(&key);
            self.stats.expired += 1;
            return None;
        }
        Some(e)
    }

    /// Bytes the ALG state holds, from capacities (as
    /// [`super::Conntrack::memory_bytes`]): the expectation table
    /// (hashbrown: a power of two of buckets, at most 7/8 full, each an
    /// entry and a control byte), its expiry queue, and the connections'
    /// boxed [`ConnAlg`]s with their lists of expectations (at most
    /// [`MAX_PER_CONN`] keys, the capacity a `Vec` of them reaches).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let cap = self.map.capacity();
        let buckets = match cap {
            0 => 0,
            c => (c * 8 / 7).next_power_of_two(),
        };
        buckets * (size_of::<(ConnKey, Expect)>() + 1)
            + self.order.capacity() * size_of::<(u64, ConnKey)>()
            + self.states * (size_of::<ConnAlg>() + MAX_PER_CONN * size_of::<ConnKey>())
    }

    /// Drop expectations due at `now` (in expiry order).
    pub fn expire(&mut self, now: u64) {
        while let Some(&(t, k)) = self.order.front() {
            if t > now {
                break;
            }
            self.order.pop_front();
            if self.map.get(&k).is_some_and(|e| e.expires == t) {
                self.map.remove(&k);
                self.stats.expired += 1;
            }
        }
    }

    /// Remove `k` if it is `slot`'s (generation `gen`).
    fn remove_of(&mut self, k: &ConnKey, slot: u32, gen: u32) {
        if self
            .map
            .get(k)
            .is_some_and(|e| e.parent_slot == slot && e.parent_gen == gen)
        {
            self.map.remove(k);
        }
    }

    /// Add `e` under `k` for its control connection, whose list is
    /// `exps`; an existing expectation for `k` stays (OVS). Returns
    /// whether it was added.
    fn add(&mut self, k: ConnKey, e: Expect, exps: &mut Vec<ConnKey>, now: u64) -> bool {
        if self.lookup(&k, now).is_some() {
            return false;
        }
        if self.map.len() >= MAX_EXPECTATIONS {
            self.expire(now);
            if self.map.len() >= MAX_EXPECTATIONS {
                self.stats.refused += 1;
                if now >= self.next_warn {
                    self.next_warn = now + 1000;
                    tracing::warn!(
                        max = MAX_EXPECTATIONS,
                        refused = self.stats.refused,
                        "conntrack: ALG expectation table full, expectation refused \
                         (counted; logged at most once a second)"
                    );
                }
                return false;
            }
        }
        exps.retain(|x| {
            self.map
                .get(x)
                .is_some_and(|o| o.parent_slot == e.parent_slot && o.parent_gen == e.parent_gen)
        });
        if exps.len() >= MAX_PER_CONN {
            let old = exps.remove(0);
            self.remove_of(&old, e.parent_slot, e.parent_gen);
            self.stats.replaced += 1;
        }
        exps.push(k);
        self.map.insert(k, e);
        self.order.push_back((e.expires, k));
        if self.order.len() > 2 * MAX_EXPECTATIONS {
            let map = &self.map;
            self.order
                .retain(|(t, k)| map.get(k).is_some_and(|e| e.expires == *t));
        }
        self.stats.created += 1;
        true
    }

    /// The connection in `slot` (generation `gen`), which held `a`,
    /// went: its expectations go too (OVS `expectation_clean`).
    pub fn parent_removed(&mut self, a: &ConnAlg, slot: u32, gen: u32) {
        self.states = self.states.saturating_sub(1);
        for k in &a.exps {
            self.remove_of(k, slot, gen);
        }
    }
}

/// What an FTP control message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FtpMsg {
    /// Not a message the helper reads.
    Other,
    /// A message of interest that is malformed.
    Invalid,
    /// `PORT`/`EPRT` (active: the server will connect to `port`) or a
    /// `227`/`229` reply (passive: the client will connect to `port`);
    /// `addr` is the address given (none in `EPSV` replies).
    Data {
        active: bool,
        addr: Option<u128>,
        port: u16,
        /// Where the address text is in the payload (offset, length),
        /// what NAT rewrites.
        span: Option<(usize, usize)>,
    },
}

/// The message bytes OVS looks at: up to [`FTP_MSG_MAX`] - 1 bytes (OVS
/// copies with `strlcpy` into a 128-byte buffer), up to the first NUL.
fn ftp_window(payload: &[u8]) -> &[u8] {
    let n = payload.len().min(FTP_MSG_MAX).saturating_sub(1);
    let w = &payload[..n];
    match w.iter().position(|&b| b == 0) {
        Some(z) => &w[..z],
        None => w,
    }
}

fn starts_with_ci(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p)
}

fn contains_ci(s: &[u8], p: &[u8]) -> bool {
    s.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p))
}

/// Index of the first ASCII digit at or after `i` (or `s.len()`).
fn skip_non_digits(s: &[u8], i: usize) -> usize {
    let mut i = i;
    while i < s.len() && !s[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// A decimal number of 1 to `max_digits` digits at `i`, at most `max`;
/// returns it and the index after it.
fn number(s: &[u8], i: usize, max_digits: usize, max: u32) -> Option<(u32, usize)> {
    let mut j = i;
    while j < s.len() && s[j].is_ascii_digit() {
        j += 1;
    }
    if j == i || j - i > max_digits {
        return None;
    }
    let v = s[i..j]
        .iter()
        .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
    (v <= max).then_some((v, j))
}

/// Parse an FTP control message of an IPv4 connection (OVS
/// `detect_ftp_ctl_type` and `process_ftp_ctl_v4`): `PORT h1,h2,h3,h4,
/// p1,p2`, `EPRT |1|a.b.c.d|port|`, `227 ... (h1,h2,h3,h4,p1,p2)`,
/// `229 ... (|||port|)`. Never panics on any input.
pub(crate) fn parse_ftp_v4(payload: &[u8]) -> FtpMsg {
    let s = ftp_window(payload);
    let (rest, active, extended) = if starts_with_ci(s, b"PORT") {
        (4, true, false)
    } else if starts_with_ci(s, b"EPRT") {
        (4, true, true)
    } else if starts_with_ci(s, b"229") {
        (3, false, true)
    } else if starts_with_ci(s, b"227") {
        (3, false, false)
    } else {
        return FtpMsg::Other;
    };
    let Some(sp) = s[rest..].iter().position(|&b| b == b' ') else {
        return FtpMsg::Invalid;
    };
    let mut i = skip_non_digits(s, rest + sp);
    if i >= s.len() {
        return FtpMsg::Invalid;
    }
    if extended && active {
        // EPRT: address family 1 (IPv4), one digit.
        if s[i] != b'1' || s.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return FtpMsg::Invalid;
        }
        i = skip_non_digits(s, i + 1);
        if i >= s.len() {
            return FtpMsg::Invalid;
        }
    }
    let mut addr = None;
    let mut span = None;
    if !extended || active {
        // h1,h2,h3,h4 (PORT, 227) or a.b.c.d (EPRT): the first three
        // commas are dots.
        let start = i;
        let mut commas = 0;
        let mut text = Vec::with_capacity(15);
        while i < s.len() {
            let c = match s[i] {
                b',' if !extended && commas < 3 => {
                    commas += 1;
                    b'.'
                }
                c => c,
            };
            if !c.is_ascii_digit() && c != b'.' {
                break;
            }
            text.push(c);
            i += 1;
        }
        if i - start > 15 {
            return FtpMsg::Invalid;
        }
        let Some(a) = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.parse::<Ipv4Addr>().ok())
        else {
            return FtpMsg::Invalid;
        };
        addr = Some(u128::from(u32::from(a)));
        span = Some((start, i - start));
        // Skip the separator after the address.
        i += 1;
    }
    let port = if !extended {
        let Some((hi, j)) = number(s, i, 3, 255) else {
            return FtpMsg::Invalid;
        };
        let Some((lo, _)) = number(s, j + 1, 3, 255) else {
            return FtpMsg::Invalid;
        };
        if s.get(j) != Some(&b',') {
            return FtpMsg::Invalid;
        }
        (hi << 8 | lo) as u16
    } else {
        if !active {
            i = skip_non_digits(s, i);
        }
        match number(s, i, 5, 65535) {
            Some((p, _)) => p as u16,
            None => return FtpMsg::Invalid,
        }
    };
    if port == 0 {
        return FtpMsg::Invalid;
    }
    FtpMsg::Data {
        active,
        addr,
        port,
        span,
    }
}

/// Parse an FTP control message of an IPv6 connection (OVS
/// `detect_ftp_ctl_type` and `process_ftp_ctl_v6`): `EPRT |2|addr|port|`
/// or a reply containing "Extended Passive" with `(|||port|)`.
pub(crate) fn parse_ftp_v6(payload: &[u8]) -> FtpMsg {
    let s = ftp_window(payload);
    if starts_with_ci(s, b"EPRT") {
        let i = skip_non_digits(s, 4);
        if s.get(i) != Some(&b'2') || s.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return FtpMsg::Invalid;
        }
        // Past the family and its delimiter.
        let start = i + 2;
        let mut j = start;
        while j < s.len() && (s[j].is_ascii_hexdigit() || s[j] == b':' || s[j] == b'.') {
            j += 1;
        }
        let Some(a) = s
            .get(start..j)
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| t.parse::<Ipv6Addr>().ok())
        else {
            return FtpMsg::Invalid;
        };
        match number(s, j + 1, 5, 65535) {
            Some((p, _)) if p != 0 => FtpMsg::Data {
                active: true,
                addr: Some(u128::from(a)),
                port: p as u16,
                span: Some((start, j - start)),
            },
            _ => FtpMsg::Invalid,
        }
    } else if contains_ci(s, b"EXTENDED PASSIVE") {
        let open = s.iter().position(|&b| b == b'(').unwrap_or(s.len());
        let i = skip_non_digits(s, open);
        match number(s, i, 5, 65535) {
            Some((p, _)) if p != 0 => FtpMsg::Data {
                active: false,
                addr: None,
                port: p as u16,
                span: None,
            },
            _ => FtpMsg::Invalid,
        }
    } else {
        FtpMsg::Other
    }
}

/// Replace `len` payload bytes at `at` with `text`, fixing the IP length
/// (and IPv4 header checksum); returns the size change, or `None` when
/// the segment is a GSO frame or would pass 65535 bytes (or the
/// largest frame, [`crate::buffer::MAX_FRAME`]).
fn resize_payload(pkt: &mut Packet, p: &Parsed, at: usize, len: usize, text: &[u8]) -> Option<i32> {
    if pkt.gso.is_some() {
        return None;
    }
    let d = pkt.data();
    let off = usize::from(*d.get(p.l4 + 12)? >> 4) * 4;
    let start = p.l4 + off + at;
    let end = start.checked_add(len).filter(|&e| e <= p.end)?;
    let delta = text.len() as i32 - len as i32;
    let mut f = Vec::with_capacity(p.end + text.len());
    f.extend_from_slice(&d[..start]);
    f.extend_from_slice(text);
    f.extend_from_slice(&d[end..p.end]);
    if f.len() > crate::buffer::MAX_FRAME {
        return None;
    }
    if p.key.ipv6 {
        let plen = i32::from(u16::from_be_bytes([f[p.l3 + 4], f[p.l3 + 5]])) + delta;
        let plen = u16::try_from(plen).ok()?;
        f[p.l3 + 4..p.l3 + 6].copy_from_slice(&plen.to_be_bytes());
    } else {
        let tot = i32::from(u16::from_be_bytes([f[p.l3 + 2], f[p.l3 + 3]])) + delta;
        let tot = u16::try_from(tot).ok()?;
        f[p.l3 + 2..p.l3 + 4].copy_from_slice(&tot.to_be_bytes());
        let ihl = usize::from(f[p.l3] & 0xf) * 4;
        f[p.l3 + 10..p.l3 + 12].copy_from_slice(&[0, 0]);
        let c = crate::csum::checksum(&f[p.l3..p.l3 + ihl]);
        f[p.l3 + 10..p.l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    pkt.set_frame(&f);
    Some(delta)
}

/// A segment's sequence number, or (`ack`) acknowledgement number.
fn seq_of(pkt: &Packet, p: &Parsed, ack: bool) -> Option<u32> {
    let at = p.l4 + if ack { 8 } else { 4 };
    let b = pkt.data().get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Move a segment of a skewed FTP control connection (OVS
/// `adj_seqnum`, Linux `nf_ct_seq_adjust`): in the skew's direction its
/// sequence number on, in the other its acknowledgement back. Returns
/// how far the acknowledgement moved back (0 for a sequence number).
fn shift_seq(pkt: &mut Packet, p: &Parsed, a: &ConnAlg, reply: bool) -> i32 {
    let ack = reply != a.skew_reply;
    let Some(v) = seq_of(pkt, p, ack) else {
        return 0;
    };
    let (v, back) = if ack {
        let off = a.ack_offset(v);
        (v.wrapping_sub(off as u32), off)
    } else {
        (v.wrapping_add(a.seq_offset(v) as u32), 0)
    };
    let at = p.l4 + if ack { 8 } else { 4 };
    if let Some(b) = pkt.data_mut().get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
    back
}

/// Recompute the TCP checksum after a change: in full, or, for a
/// `CHECKSUM_PARTIAL` frame, the pseudo-header sum it carries.
fn finish_l4(pkt: &mut Packet) {
    if let Csum::Partial { .. } = pkt.csum {
        if let Some((start, offset)) = crate::csum::prepare_partial(pkt.data_mut()) {
            pkt.csum = Csum::Partial { start, offset };
        }
    } else {
        crate::csum::fill_l4(pkt.data_mut());
    }
}

/// The TCP payload of a parsed packet.
fn tcp_payload<'a>(frame: &'a [u8], p: &Parsed) -> &'a [u8] {
    let off = frame.get(p.l4 + 12).map_or(0, |b| usize::from(b >> 4) * 4);
    frame.get(p.l4 + off..p.end).unwrap_or_default()
}

impl super::Conn {
    /// For a connection made from an expectation: its control
    /// connection's original key.
    pub(super) fn alg_parent(&self) -> Option<ConnKey> {
        self.alg.as_ref().and_then(|a| a.parent)
    }
}

impl Inner {
    /// Give a connection just committed its helper (OVS
    /// `ct_verify_helper`) and, when it matched an expectation, its
    /// control connection's key, mark and label.
    pub(super) fn alg_new_conn(
        &mut self,
        idx: u32,
        p: &Parsed,
        helper: Option<Helper>,
        exp: Option<&Expect>,
    ) {
        let helper = verify(helper, ctl_type(helper, &p.key));
        if helper.is_none() && exp.is_none() {
            return;
        }
        let c = &mut self.conns[idx as usize];
        if let Some(e) = exp {
            c.mark = e.mark;
            c.label = e.label;
            self.exp.stats.related += 1;
        }
        self.exp.states += 1;
        c.alg = Some(Box::new(ConnAlg {
            helper,
            parent: exp.map(|e| e.parent),
            ..ConnAlg::default()
        }));
    }

    /// Run the helper of the connection in `idx` (if it has one) on a
    /// packet of it (OVS `handle_alg_ctl`), its `ct_state` so far set;
    /// `helper` is the `ct` action's, `nat` whether it
    /// has `nat` (and the packet was not translated in this zone yet).
    /// Returns the `ct_state` bits to add (`+inv` for a bad FTP message).
    pub(super) fn alg_ctl(
        &mut self,
        idx: u32,
        p: &Parsed,
        pkt: &mut Packet,
        helper: Option<Helper>,
        nat: bool,
        now: u64,
    ) -> u32 {
        let state = pkt.md.ct.state;
        let c = &self.conns[idx as usize];
        let Some(own) = c.alg.as_ref().and_then(|a| a.helper) else {
            return 0;
        };
        if p.related || state & cs::INV != 0 {
            return 0;
        }
        let reply = state & cs::RPL != 0;
        let (fwd, rev) = (c.key[0], c.key[1]);
        let (port, repl_port) = match ctl_type(helper.or(Some(own)), &p.key) {
            // The server answers the port the request came from: the
            // client's, as translated (OVS takes the untranslated one,
            // which differs when source NAT had to move the port).
            Some(Helper::Tftp) if !reply && rev.dport != fwd.sport && c.nat & nat::SRC != 0 => {
                (rev.dport, fwd.sport)
            }
            Some(Helper::Tftp) => (fwd.sport, 0),
            Some(Helper::Ftp) => {
                let payload = tcp_payload(pkt.data(), p);
                let msg = if fwd.ipv6 {
                    parse_ftp_v6(payload)
                } else {
                    parse_ftp_v4(payload)
                };
                match msg {
                    FtpMsg::Other => return 0,
                    FtpMsg::Invalid => return self.ftp_invalid(now),
                    FtpMsg::Data {
                        active,
                        addr,
                        port,
                        span,
                    } => {
                        // The address must be one of the connection's
                        // (OVS: "most servers will block this exploit").
                        let ok = match (active, addr) {
                            (_, None) => true,
                            (true, Some(a)) => a == rev.dst || a == fwd.src,
                            (false, Some(a)) => a == fwd.dst || a == rev.src,
                        };
                        if !ok {
                            return self.ftp_invalid(now);
                        }
                        // Under NAT: the address the other side must see
                        // (OVS `v4_addr_rep`, `v6_addr_rep`).
                        let rep = if active { rev.dst } else { fwd.dst };
                        self.ftp_nat(idx, p, pkt, reply, nat.then_some((span, rep)), now);
                        (port, 0)
                    }
                }
            }
            None => return 0,
        };
        self.expect(idx, port, repl_port, reply, now);
        0
    }

    /// For an FTP message of interest: under NAT, write `rep` over the
    /// address at `span` and resize the segment (OVS `repl_ftp_v4_addr`,
    /// `repl_ftp_v6_addr`), move its sequence or acknowledgement number
    /// by the skew so far, and add the size change to the skew (OVS
    /// `handle_ftp_ctl`).
    fn ftp_nat(
        &mut self,
        idx: u32,
        p: &Parsed,
        pkt: &mut Packet,
        reply: bool,
        nat: Option<(Option<(usize, usize)>, u128)>,
        now: u64,
    ) {
        let Some((span, rep)) = nat else {
            return;
        };
        let mut delta = 0i32;
        if let Some((at, len)) = span {
            let text = if p.key.ipv6 {
                Ipv6Addr::from(rep).to_string()
            } else {
                // PORT and 227 separate with commas, EPRT with dots
                // (OVS writes commas there too).
                let t = Ipv4Addr::from(rep as u32).to_string();
                let comma = tcp_payload(pkt.data(), p).get(at + len) == Some(&b',');
                if comma {
                    t.replace('.', ",")
                } else {
                    t
                }
            };
            match resize_payload(pkt, p, at, len, text.as_bytes()) {
                Some(d) => delta = d,
                None => {
                    self.exp.stats.nat_rewrite_failed += 1;
                    if now >= self.exp.next_warn {
                        self.exp.next_warn = now + 1000;
                        tracing::warn!(
                            total = self.exp.stats.nat_rewrite_failed,
                            "conntrack: FTP address not rewritten for NAT (GSO or \
                             oversized segment; counted, logged at most once a second)"
                        );
                    }
                }
            }
        }
        let Some(a) = self.conns[idx as usize].alg.as_mut() else {
            return;
        };
        // The sender's sequence number, before any move.
        let seq = seq_of(pkt, p, false).unwrap_or(0);
        if a.skewed() {
            shift_seq(pkt, p, a, reply);
        }
        a.record(seq, reply, delta);
        finish_l4(pkt);
    }

    /// Move the sequence numbers of a segment of an FTP control
    /// connection whose messages NAT resized (OVS `conn_update_state_alg`
    /// and `handle_ftp_ctl` with `CT_FTP_CTL_OTHER`): `before` the TCP
    /// update, a segment against the skew's direction gets its
    /// acknowledgement moved back (so the tracker sees it in the
    /// sender's numbering); after it, a segment in the skew's direction
    /// gets its sequence number moved on. Messages of interest are left
    /// to [`Inner::alg_ctl`].
    pub(super) fn alg_seq(
        &mut self,
        idx: u32,
        p: &mut Parsed,
        pkt: &mut Packet,
        reply: bool,
        helper: Option<Helper>,
        before: bool,
    ) {
        let Some(a) = self.conns[idx as usize].alg.as_ref() else {
            return;
        };
        if !a.skewed() || ctl_type(helper.or(a.helper), &p.key) != Some(Helper::Ftp) {
            return;
        }
        if before == (reply == a.skew_reply) {
            return;
        }
        let payload = tcp_payload(pkt.data(), p);
        let interest = if p.key.ipv6 {
            parse_ftp_v6(payload)
        } else {
            parse_ftp_v4(payload)
        };
        if interest != FtpMsg::Other {
            return;
        }
        let back = shift_seq(pkt, p, a, reply);
        if before {
            p.tcp.ack = p.tcp.ack.wrapping_sub(back as u32);
        }
        finish_l4(pkt);
    }

    fn ftp_invalid(&mut self, now: u64) -> u32 {
        let st = &mut self.exp.stats;
        st.ftp_invalid += 1;
        if now >= self.exp.next_warn {
            self.exp.next_warn = now + 1000;
            tracing::warn!(
                total = st.ftp_invalid,
                "conntrack: invalid FTP control packet format, marked +inv \
                 (counted; logged at most once a second)"
            );
        }
        cs::INV
    }

    /// Make an expectation for a connection to `port` from the control
    /// connection in `idx`, seen on a packet in direction `reply` (OVS
    /// `expectation_create` without `src_ip_wc` and `skip_nat`);
    /// `repl_port` as [`Expect::repl_port`].
    fn expect(&mut self, idx: u32, port: u16, repl_port: u16, reply: bool, now: u64) {
        let c = &mut self.conns[idx as usize];
        let (fwd, rev) = (c.key[0], c.key[1]);
        let dnat = c.nat & nat::DST != 0;
        let (src, dst, nat_rpl_dst, repl_addr) = if reply {
            match dnat {
                true => (fwd.src, fwd.dst, false, rev.src),
                false => (fwd.src, fwd.dst, true, rev.dst),
            }
        } else {
            match dnat {
                true => (rev.src, rev.dst, true, fwd.dst),
                false => (rev.src, rev.dst, false, fwd.src),
            }
        };
        let key = ConnKey {
            src,
            dst,
            sport: 0,
            dport: port,
            ..fwd
        };
        let e = Expect {
            parent: fwd,
            parent_slot: idx,
            parent_gen: c.gen,
            mark: c.mark,
            label: c.label,
            expires: now + EXPECT_TIMEOUT_MS,
            nat_rpl_dst,
            repl_addr,
            repl_port: if nat_rpl_dst { 0 } else { repl_port },
        };
        let Some(a) = c.alg.as_mut() else {
            return;
        };
        let mut exps = std::mem::take(&mut a.exps);
        self.exp.add(key, e, &mut exps, now);
        if let Some(a) = self.conns[idx as usize].alg.as_mut() {
            a.exps = exps;
        }
    }
}

#[cfg(test)]
mod tests;
