//! xennet's OpenFlow layer (ofproto).
#![deny(unsafe_code)]
#![warn(missing_docs)]
