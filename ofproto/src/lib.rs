//! xennet's OpenFlow layer (ofproto).
//!
//! - [`ofproto`]: [`Ofproto`], one bridge's OpenFlow switch: the API the
//!   connection layer calls (flow/group/meter mods, stats, packet-out,
//!   events, trace) and the datapath upcall handler.
//! - [`tables`]: flow tables, groups and meters with OpenFlow 1.3
//!   semantics.
//! - [`classifier`]: the flow-table classifier (tuple space search).
//! - [`features`]: table features and table-features set requests.
//! - [`xlate`]: translation of a packet through the pipeline into a
//!   megaflow (mask + datapath actions).
//! - [`normal`]: the NORMAL action (MAC learning switch).
//! - [`isolation`]: essential services and the probes that check that
//!   every vif still reaches them.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bundled;
pub mod classifier;
pub mod features;
pub mod isolation;
pub mod normal;
pub mod ofproto;
pub mod ovshash;
pub mod pin_extras;
pub mod recirc;
pub mod tables;
pub mod xlate;

pub use bundled::Bundled;
pub use normal::{FdbHandle, Normal, PortVlan, VlanError, VlanMode};
pub use ofproto::{with_origin, FailMode, FlowChanges, GuardProbe, OfEvent, Ofproto};
pub use xennet_openflow::tlv::{TlvMap, TunMetadataWords};
