//! OpenFlow connections: [`conn`] serves one connection (with its
//! [`bundle`]s and flow [`monitor`]s), [`snoop`] copies
//! controller connections to `ovs-ofctl snoop`, [`mgr`] manages the management socket and the
//! controllers of one bridge.

pub mod bundle;
pub mod conn;
pub mod mgr;
pub mod monitor;
pub mod snoop;

pub use conn::{ConnCtx, Event, Handler};
pub use mgr::{ConnMgr, ControllerConfig};
