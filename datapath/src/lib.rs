//! xennet's userspace datapath.
//!
//! Layers, bottom up:
//! - [`buffer`]: packet buffers and 32-packet batches.
//! - [`packet`]: zero-copy header views (Ethernet, VLAN, ARP, IPv4, IPv6,
//!   TCP, UDP, ICMP).
//! - [`csum`] and [`gso`]: checksum and segmentation offload in software.
//! - [`flow`]: flow keys and masks, extraction, text forms.
//! - [`actions`]: datapath actions and batched execution.
//! - [`rewrite`]: header rewrites with incremental checksums; [`meter`]:
//!   token-bucket meters; [`counters`]: rule counters shared with megaflows.
//! - [`megaflow`]: the megaflow cache (tuple space search); [`tags`]:
//!   revalidation tags that let a state change remove only the megaflows
//!   it affects.
//! - [`port`]: the [`Port`] trait every port (Xen vif, tap, veth) implements;
//!   [`memport`] is an in-memory one for tests.
//! - [`prefetch`]: cache prefetch hints (the crate's one `unsafe`, an
//!   intrinsic that cannot fault).
//! - [`conntrack`]: connection tracking, run by the `ct` action.
//! - [`dpif`]: the forwarding thread and its control handle.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod actions;
pub mod buffer;
pub mod conntrack;
pub mod counters;
pub mod csum;
pub mod dpif;
pub mod error;
pub mod flow;
pub mod fragment;
pub mod gso;
pub mod intern;
pub mod megaflow;
pub mod memport;
pub mod meter;
pub mod packet;
pub mod port;
pub mod prefetch;
pub mod rewrite;
pub mod tags;

pub use actions::{DpAction, Userdata};
pub use buffer::{
    Csum, CtMeta, Gso, GsoType, OfPort, Packet, PacketBatch, PacketMeta, TunnelMeta, MAX_BURST,
};
pub use counters::RuleCounters;
pub use dpif::{Datapath, DpHandle, DpStats, PortInfo, Upcall, UpcallHandler};
pub use error::DpError;
pub use flow::{FlowKey, FlowMask};
pub use port::{Port, PortFeatures, PortStats, RecvStatus};
pub use rewrite::SetAction;
pub use tags::Tags;
