//! xennet's software ports: ports that are not a device or a Xen vif.
//!
//! - [`patch`]: patch ports (OVS `type=patch`, `options:peer`), pairs of
//!   ports on two bridges joined by bounded queues. Each xennet bridge has
//!   its own forwarding thread, so a packet output to one end is queued
//!   for the other end's thread and that thread is woken through the
//!   end's eventfd, as any port's event channel wakes it.
//! - [`tunnel`]: the VXLAN (RFC 7348), Geneve (RFC 8926) and GRE (RFC 2784)
//!   headers:
//!   encapsulation over IPv4 and IPv6 underlays and validated
//!   decapsulation, with a counter per refusal reason; tunnel ports, the
//!   underlay (a bridge's LOCAL port), the route table and the neighbour
//!   table of userspace tunnelling ([`tunnel::vport`]).
//!
//! Per ARCHITECTURE.md ("Where new capabilities go"), tunnel and patch
//! ports live beside the Linux ports and out of the daemon's composition
//! root, which only wires them to bridges.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod patch;
pub mod tunnel;

pub use patch::{PatchConfigError, PatchLink, PatchPort, PatchRegistry};
pub use tunnel::vport::{GeneveMap, SoftLink, TunnelPort, TunnelSwitch, UnderlayPort};
