//! xennet's OpenFlow layer (ofproto).
//!
//! For now it holds [`normal`], the NORMAL action (MAC learning switch)
//! that translates datapath upcalls for a standalone bridge.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod classifier;
pub mod normal;
pub mod tables;
pub mod xlate;

pub use normal::{FdbHandle, Normal};
