//! OpenFlow connections: [`conn`] serves one connection (with its
//! [`bundle`]s and flow [`monitor`]s), [`mgr`] manages the management socket and the
//! controllers of one bridge.

pub mod bundle;
pub mod conn;
pub mod mgr;
pub mod monitor;

pub use conn::{ConnCtx, Event, Handler};
pub use mgr::{ConnMgr, ControllerConfig};
