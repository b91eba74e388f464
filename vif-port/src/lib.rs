//! xennet's userspace Xen netback.
//!
//! Layers, bottom up:
//! - [`ring`]: the netif wire ABI (`xen/io/netif.h`, `ring.h`,
//!   `grant_table.h` structures and constants) and the shared-ring ends
//!   ([`ring::BackRing`], [`ring::FrontRing`]) with ring.h's memory
//!   ordering and notification hold-off. [`mem`] is the only other place
//!   that touches shared memory (volatile copies, atomics).
//! - [`grant`] and [`evtchn`]: what Xen provides, behind traits
//!   ([`grant::GrantOps`]: batched grant copy and ring mapping;
//!   [`evtchn::EventChannel`]: notify, a pollable fd, ack).
//! - [`emul`]: the emulated hypervisor (guest memory and grant table in
//!   memfds, event channels as eventfds) and the cross-process attach
//!   handshake ([`emul::attach`]) that stands in for xenstore.
//! - [`netback`]: guest TX and RX engines and [`Vif`], which implements the
//!   datapath's [`xennet_datapath::Port`] over 1 to 8 queues, with split
//!   event channels and a per-channel event token bucket; [`metrics`]
//!   holds its counters. [`ctrl`] serves the control ring's hash requests
//!   and [`toeplitz`] computes the RSS hash that picks a packet's queue.
//! - [`netfront`]: an emulated frontend (the guest side), and [`hostile`]:
//!   a frontend that breaks the protocol on purpose, for tests.
//! - [`xenstore`]: the xs_wire protocol, a blocking client and an emulated
//!   xenstored with Xen permissions, watches, transactions and quotas.
//! - [`xen`]: the real-Xen implementations behind the same traits
//!   ([`xen::Gntdev`] over `/dev/xen/gntdev`, [`xen::EvtchnDev`] over
//!   `/dev/xen/evtchn`); the xenstore [`xenstore::Client`] talks to the real
//!   xenstored as is.
//! - [`ratelimit`] and [`accept`]: what the log lines about bad input and
//!   every listening socket (here the emulated xenstored's, and xennetd's)
//!   share: one line a second at most, accept errors that pass waited out.
#![warn(missing_docs)]

pub mod accept;
pub mod ctrl;
pub mod emul;
pub mod error;
pub mod evtchn;
pub mod grant;
pub mod hostile;
pub mod mem;
pub mod metrics;
pub mod netback;
pub mod netfront;
pub mod ratelimit;
pub mod ring;
pub mod toeplitz;
pub mod xen;
pub mod xenbus;
pub mod xenstore;

pub use error::VifError;
pub use metrics::{VifCounter, VifMetrics};
pub use netback::{FrontendConfig, Vif};
pub use netfront::Netfront;
