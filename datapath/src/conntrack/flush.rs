//! Flushing connections by tuple (OVS 3.1/3.2 `ct_dpif_flush` with a
//! `struct ofp_ct_match`, lib/ct-dpif.c, and `conntrack_flush_tuple`,
//! lib/conntrack.c), as `NXT_CT_FLUSH` (`ovs-ofctl ct-flush`) and
//! `ovs-appctl dpctl/flush-conntrack [zone=N] ORIG [REPLY]` ask.
//!
//! Semantics, as OVS:
//! - An empty match flushes the zone (or every zone).
//! - A full original five-tuple (both addresses, and both ports unless
//!   ICMP) with an empty reply tuple names one connection exactly, in the
//!   given zone or else zone 0; it matches a connection's original or
//!   reply key, as OVS's key lookup does. Not finding one is an error.
//! - Otherwise every connection (of the zone, or of every zone) whose
//!   keys agree with every given field is removed: the original tuple is
//!   compared with the original direction, the reply tuple with the reply
//!   (NAT-translated) direction. An absent field, an all-zero address and
//!   a zero port match anything; ICMP identifier, type and code, when
//!   given, compare exactly (OVS's encoder always gives them for ICMP).

use super::{ConnKey, Conntrack, PROTO_ICMP, PROTO_ICMPV6};

/// One direction's part of a flush match (OVS `struct ofp_ct_tuple`).
/// `None` matches anything. Addresses hold IPv4 in the low 32 bits, as
/// [`ConnKey`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TupleMatch {
    /// Source address.
    pub src: Option<u128>,
    /// Destination address.
    pub dst: Option<u128>,
    /// Source port (not ICMP).
    pub sport: Option<u16>,
    /// Destination port (not ICMP).
    pub dport: Option<u16>,
    /// ICMP identifier.
    pub icmp_id: Option<u16>,
    /// ICMP type of this direction.
    pub icmp_type: Option<u8>,
    /// ICMP code.
    pub icmp_code: Option<u8>,
}

impl TupleMatch {
    fn is_empty(&self, icmp: bool) -> bool {
        // OVS `ofp_ct_tuple_is_zero`: ICMP fields do not count.
        self.src.is_none()
            && self.dst.is_none()
            && (icmp || (self.sport.is_none() && self.dport.is_none()))
    }

    fn is_five_tuple(&self, icmp: bool) -> bool {
        // OVS `ofp_ct_tuple_is_five_tuple`.
        self.src.is_some()
            && self.dst.is_some()
            && (icmp || (self.sport.is_some() && self.dport.is_some()))
    }

    /// Whether key `k` agrees with every given field (`icmp`: the
    /// match's protocol is ICMP or ICMPv6).
    fn matches(&self, k: &ConnKey, icmp: bool) -> bool {
        let eq = |m: Option<u16>, v: u16| m.map_or(true, |m| m == v);
        let eq8 = |m: Option<u8>, v: u8| m.map_or(true, |m| m == v);
        if self.src.is_some_and(|a| a != k.src) || self.dst.is_some_and(|a| a != k.dst) {
            return false;
        }
        if icmp {
            // The tracker knows echo and other code-0 messages only.
            eq(self.icmp_id, k.sport) && eq8(self.icmp_type, k.stype) && eq8(self.icmp_code, 0)
        } else {
            eq(self.sport, k.sport) && eq(self.dport, k.dport)
        }
    }
}

/// A flush match (OVS `struct ofp_ct_match` without mark and labels,
/// which OVS 3.1/3.2 do not have either).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushMatch {
    /// Address family: `Some(true)` IPv6, `Some(false)` IPv4, `None` any.
    pub ipv6: Option<bool>,
    /// IP protocol (`None`: any).
    pub proto: Option<u8>,
    /// Compared with the original direction.
    pub orig: TupleMatch,
    /// Compared with the reply direction.
    pub reply: TupleMatch,
}

impl FlushMatch {
    fn icmp(&self) -> bool {
        matches!(self.proto, Some(PROTO_ICMP | PROTO_ICMPV6))
    }

    /// Whether this matches every connection (OVS `ofp_ct_match_is_zero`).
    pub fn is_empty(&self) -> bool {
        self.ipv6.is_none()
            && self.proto.is_none()
            && self.orig.is_empty(false)
            && self.reply.is_empty(false)
    }

    fn family_and_proto(&self, k: &ConnKey) -> bool {
        self.ipv6.map_or(true, |v| v == k.ipv6) && self.proto.map_or(true, |p| p == k.proto)
    }
}

/// Why a flush by exact five-tuple removed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlushError {
    /// No connection has this five-tuple in this zone (OVS
    /// `conntrack_flush_tuple`'s `ENOENT`).
    #[error("no connection with this tuple")]
    NotFound,
}

impl Conntrack {
    /// Remove the connections `m` selects in `zone` (see the module
    /// docs); how many went.
    ///
    /// # Errors
    /// [`FlushError::NotFound`] when `m` is an exact five-tuple that no
    /// connection has.
    pub fn flush_match(&self, zone: Option<u16>, m: &FlushMatch) -> Result<usize, FlushError> {
        if m.is_empty() {
            return Ok(self.flush(zone));
        }
        let icmp = m.icmp();
        let exact = m.orig.is_five_tuple(icmp) && m.reply.is_empty(icmp);
        let zone = if exact { Some(zone.unwrap_or(0)) } else { zone };
        // An exact five-tuple leaves unsaid fields at zero (OVS
        // `ct_dpif_tuple_from_ofp_ct_tuple`) and names either key.
        let exact_orig = TupleMatch {
            sport: Some(m.orig.sport.unwrap_or(0)),
            dport: Some(m.orig.dport.unwrap_or(0)),
            icmp_id: Some(m.orig.icmp_id.unwrap_or(0)),
            icmp_type: Some(m.orig.icmp_type.unwrap_or(0)),
            icmp_code: Some(m.orig.icmp_code.unwrap_or(0)),
            ..m.orig
        };
        let mut n = 0;
        self.for_chunks(|g, range| {
            for i in range {
                let c = &g.conns[i];
                if !c.live
                    || zone.is_some_and(|z| c.key[0].zone != z)
                    || !m.family_and_proto(&c.key[0])
                {
                    continue;
                }
                let hit = if exact {
                    // The key OVS looks up carries the protocol, even 0.
                    m.proto.unwrap_or(0) == c.key[0].proto
                        && c.key.iter().any(|k| exact_orig.matches(k, icmp))
                } else {
                    m.orig.matches(&c.key[0], icmp) && m.reply.matches(&c.key[1], icmp)
                };
                if hit {
                    g.remove(i as u32);
                    n += 1;
                }
            }
        });
        if exact && n == 0 {
            return Err(FlushError::NotFound);
        }
        Ok(n)
    }
}
