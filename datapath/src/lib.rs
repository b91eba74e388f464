//! xennet's userspace datapath.
//!
//! Layers, bottom up:
//! - [`buffer`]: packet buffers and 32-packet batches.
//! - [`port`]: the [`Port`] trait every port (Xen vif, tap, veth) implements.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buffer;
pub mod port;

pub use buffer::{Csum, Gso, GsoType, OfPort, Packet, PacketBatch, MAX_BURST};
pub use port::{Port, PortFeatures, PortStats, RecvStatus};
