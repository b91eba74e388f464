//! The netback: serves one vif's TX and RX rings and presents it to the
//! datapath as a [`Port`].
//!
//! Split as Linux xen-netback: [`tx`] is guest TX (`netback.c`: frontend to
//! switch), [`rx`] is guest RX (`rx.c`: switch to frontend), this module is
//! `interface.c` (connect, disable, the `Port` glue).
//!
//! Two tiers of guest errors, as in `netback.c`: a bad packet is dropped
//! with `NETIF_RSP_ERROR` responses, a counter and a rate-limited log line;
//! a protocol violation disables the vif (`xenvif_fatal_tx_err`) with one
//! warning, after which [`Port::recv`] returns [`RecvStatus::Disabled`].

mod rx;
mod tx;

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xennet_datapath::{Packet, PacketBatch, Port, PortFeatures, PortStats, RecvStatus};

use crate::error::VifError;
use crate::evtchn::EventChannel;
use crate::grant::{DomId, GrantOps, GrantRef};
use crate::metrics::VifMetrics;
use crate::ring::{BackRing, RxRing, TxRing};

/// What the frontend published when connecting (its xenstore keys under
/// `device/vif/<handle>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontendConfig {
    /// The guest's domain id.
    pub domid: DomId,
    /// The vif's device handle (`handle`, the `N` of `vifD.N`).
    pub handle: u16,
    /// Grant reference of the TX ring page (`tx-ring-ref`).
    pub tx_ring_ref: GrantRef,
    /// Grant reference of the RX ring page (`rx-ring-ref`).
    pub rx_ring_ref: GrantRef,
    /// `request-rx-copy`; must be true.
    pub rx_copy: bool,
    /// `feature-sg`: the frontend accepts RX packets spanning several slots.
    pub sg: bool,
    /// The frontend accepts `NETRXF_csum_blank` packets (the inverse of
    /// `feature-no-csum-offload`).
    pub rx_csum_blank: bool,
    /// `feature-gso-tcpv4`: accepts TCP/IPv4 GSO packets with a GSO extra.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`: accepts TCP/IPv6 GSO packets with a GSO extra.
    pub gso_tcpv6: bool,
}

impl FrontendConfig {
    /// The defaults of a frontend that only wrote the mandatory keys plus
    /// `feature-sg`: rx-copy, scatter-gather, checksum offload, no GSO.
    pub fn new(domid: DomId, handle: u16, tx_ring_ref: GrantRef, rx_ring_ref: GrantRef) -> Self {
        FrontendConfig {
            domid,
            handle,
            tx_ring_ref,
            rx_ring_ref,
            rx_copy: true,
            sg: true,
            rx_csum_blank: true,
            gso_tcpv4: false,
            gso_tcpv6: false,
        }
    }
}

/// RX queue bound in packets.
pub const RX_QUEUE_PACKETS: usize = 256;
/// RX queue bound in bytes (`XENVIF_RX_QUEUE_BYTES`: half a ring of pages).
pub const RX_QUEUE_BYTES: usize = 512 * 1024;

/// Per-packet log reasons, each rate-limited separately.
#[derive(Debug, Clone, Copy)]
enum LogReason {
    Malformed,
    TooManySlots,
    GrantError,
    Csum,
    RxQueueFull,
    RxGrantError,
}

const LOG_REASONS: usize = 6;
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// At most one log line per reason per [`LOG_INTERVAL`].
#[derive(Debug, Default)]
struct LogLimiter {
    last: [Option<Instant>; LOG_REASONS],
}

impl LogLimiter {
    fn allow(&mut self, reason: LogReason) -> bool {
        let now = Instant::now();
        let slot = &mut self.last[reason as usize];
        match slot {
            Some(t) if now.duration_since(*t) < LOG_INTERVAL => false,
            _ => {
                *slot = Some(now);
                true
            }
        }
    }
}

/// A connected Xen vif served in userspace.
#[derive(Debug)]
pub struct Vif {
    name: String,
    frontend: FrontendConfig,
    grants: Box<dyn GrantOps + Send>,
    evtchn: Box<dyn EventChannel + Send>,
    /// The guest's TX ring (frontend to switch).
    tx: BackRing<TxRing>,
    /// The guest's RX ring (switch to frontend).
    rx: BackRing<RxRing>,
    metrics: Arc<VifMetrics>,
    disabled: bool,
    log: LogLimiter,
    /// Whether a response push asked for a notification not yet sent.
    notify_pending: bool,
    /// Whether responses were pushed since the last notification decision.
    pushed: bool,
    tx_scratch: tx::Scratch,
    rx_scratch: rx::Scratch,
    rx_queue: VecDeque<Packet>,
    rx_queue_bytes: usize,
    rx_pool: Vec<Packet>,
}

impl Vif {
    /// Connect to a frontend: check its configuration, map both ring pages
    /// through `grants` (which validates the grants) and attach to them.
    pub fn connect(
        name: String,
        backend_domid: DomId,
        frontend: FrontendConfig,
        mut grants: Box<dyn GrantOps + Send>,
        evtchn: Box<dyn EventChannel + Send>,
    ) -> Result<Vif, VifError> {
        if !frontend.rx_copy {
            return Err(VifError::RxCopyRequired);
        }
        if frontend.tx_ring_ref == frontend.rx_ring_ref {
            return Err(VifError::SharedRingRef(frontend.tx_ring_ref));
        }
        let tx_page = grants.map_ring(frontend.domid, frontend.tx_ring_ref, true)?;
        let rx_page = grants.map_ring(frontend.domid, frontend.rx_ring_ref, true)?;
        tracing::info!(
            "{name}: connected to domain {} handle {} (backend domain {backend_domid})",
            frontend.domid,
            frontend.handle
        );
        Ok(Vif {
            name,
            frontend,
            grants,
            evtchn,
            tx: BackRing::attach(tx_page),
            rx: BackRing::attach(rx_page),
            metrics: Arc::new(VifMetrics::default()),
            disabled: false,
            log: LogLimiter::default(),
            notify_pending: false,
            pushed: false,
            tx_scratch: tx::Scratch::default(),
            rx_scratch: rx::Scratch::default(),
            rx_queue: VecDeque::new(),
            rx_queue_bytes: 0,
            rx_pool: Vec::new(),
        })
    }

    /// The counters, shared with the control plane.
    pub fn metrics(&self) -> Arc<VifMetrics> {
        self.metrics.clone()
    }

    /// The frontend's configuration.
    pub fn frontend(&self) -> &FrontendConfig {
        &self.frontend
    }

    /// Whether a protocol violation disabled the vif.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Packets waiting in the RX queue for the guest to post RX requests.
    pub fn rx_queue_len(&self) -> usize {
        self.rx_queue.len()
    }

    /// Disable the vif after a protocol violation: one warning, a counter.
    fn fatal(&mut self, reason: &str) {
        if self.disabled {
            return;
        }
        self.disabled = true;
        VifMetrics::add(&self.metrics.fatal_errors, 1);
        tracing::warn!(
            "{}: fatal error from frontend: {reason}; disabling vif",
            self.name
        );
        self.rx_queue.clear();
        self.rx_queue_bytes = 0;
    }

    /// Record that responses were pushed and whether the frontend wants
    /// to hear about it.
    fn note_push(&mut self, pushed: bool, notify: bool) {
        self.pushed |= pushed;
        self.notify_pending |= notify;
    }

    /// Send at most one notification for everything pushed so far.
    fn flush_notify(&mut self) {
        if self.notify_pending {
            self.evtchn.notify();
            VifMetrics::add(&self.metrics.notifications_sent, 1);
        } else if self.pushed {
            VifMetrics::add(&self.metrics.notifications_suppressed, 1);
        }
        self.notify_pending = false;
        self.pushed = false;
    }

    fn log_drop(&mut self, reason: LogReason, what: std::fmt::Arguments<'_>) {
        if self.log.allow(reason) {
            tracing::info!("{}: {what} (rate-limited)", self.name);
        }
    }
}

impl Port for Vif {
    fn name(&self) -> &str {
        &self.name
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.evtchn.event_fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        if self.disabled {
            return RecvStatus::Disabled;
        }
        self.evtchn.ack();
        if !self.rx_queue.is_empty() {
            self.flush_rx_queue();
        }
        let more_tx = if self.disabled {
            false
        } else {
            match self.guest_tx(batch) {
                Ok(more) => more,
                Err(reason) => {
                    self.fatal(&reason);
                    false
                }
            }
        };
        self.flush_notify();
        if self.disabled {
            return RecvStatus::Disabled;
        }
        if more_tx || self.tx.final_check_for_requests() {
            return RecvStatus::More;
        }
        if !self.rx_queue.is_empty() && self.rx.final_check_for_requests() {
            return RecvStatus::More;
        }
        RecvStatus::Idle
    }

    fn send(&mut self, pkts: &[&Packet]) {
        if self.disabled {
            VifMetrics::add(&self.metrics.tx_disabled_drops, pkts.len() as u64);
            return;
        }
        self.guest_rx(pkts);
        self.flush_notify();
    }

    fn features(&self) -> PortFeatures {
        let fe = &self.frontend;
        PortFeatures {
            csum_partial: fe.rx_csum_blank,
            gso: fe.sg && fe.gso_tcpv4 && fe.gso_tcpv6,
        }
    }

    fn stats(&self) -> PortStats {
        self.metrics.port_stats()
    }
}
