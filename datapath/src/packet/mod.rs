//! Zero-copy header views, in the style of smoltcp's `wire` module.
//!
//! Each header has a `Packet<T: AsRef<[u8]>>` (or `Frame`) view over a byte
//! buffer: `new_unchecked` wraps any buffer, `check_len` validates that every
//! accessor stays in bounds, and `new_checked` does both. The contract is the
//! one smoltcp states: after `new_checked` succeeds, no accessor panics.
//! Setters exist only where `T: AsMut<[u8]>`.
//!
//! The views do not judge semantics (a TTL of zero or a reserved flag is
//! returned as is); flow extraction reads them so that odd but forwardable
//! frames still get a flow key.

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use ethernet::{EtherType, MacAddr};

/// A header did not fit in its buffer or is malformed. Zero-sized, so that
/// hot-path parse failures cost nothing (smoltcp `wire::Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("truncated or malformed header")
    }
}

impl std::error::Error for Error {}

/// Result of a header parse.
pub type Result<T> = std::result::Result<T, Error>;

/// Big-endian u16 at `at` (callers have checked the length).
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian u32 at `at` (callers have checked the length).
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Write a big-endian u16 at `at`.
#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Write a big-endian u32 at `at`.
#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Declares an enum over a protocol number with an `Unknown` catch-all, like
/// smoltcp's `enum_with_unknown!`.
macro_rules! enum_with_unknown {
    (
        $(#[$m:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$vm:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vm])* $variant, )+
            /// A value this crate has no name for.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                match v {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                match v {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use enum_with_unknown;

enum_with_unknown! {
    /// IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), as
    /// carried in the IPv4 `protocol` and IPv6 `next header` fields.
    pub enum IpProtocol(u8) {
        /// IPv6 hop-by-hop options.
        HopByHop = 0,
        /// ICMP (RFC 792).
        Icmp = 1,
        /// TCP (RFC 9293).
        Tcp = 6,
        /// UDP (RFC 768).
        Udp = 17,
        /// IPv6 routing header.
        Ipv6Route = 43,
        /// IPv6 fragment header.
        Ipv6Frag = 44,
        /// Authentication header (RFC 4302).
        Ah = 51,
        /// ICMPv6 (RFC 4443).
        Icmpv6 = 58,
        /// IPv6 no next header.
        Ipv6NoNxt = 59,
        /// IPv6 destination options.
        Ipv6Opts = 60,
        /// SCTP (RFC 9260).
        Sctp = 132,
    }
}
