//! RFC 7047 OVSDB client for xennet.
#![deny(unsafe_code)]
#![warn(missing_docs)]
