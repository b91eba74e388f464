//! Rate limiting for the log lines about bad input and drops (a peer must
//! not be able to flood the log): [`LogLimit`] lives in `xennet-vif` so
//! that the emulated xenstored shares it.

pub use xennet_vif::ratelimit::LogLimit;
