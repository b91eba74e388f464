//! The netback: serves one vif's TX and RX rings and presents it to the
//! datapath as a [`Port`].
//!
//! Split as Linux xen-netback: `tx` is guest TX (`netback.c`: frontend to
//! switch), `rx` is guest RX (`rx.c`: switch to frontend), this module is
//! `interface.c` (connect, disable, the `Port` glue).
//!
//! Two tiers of guest errors, as in `netback.c`: a bad packet is dropped
//! with `NETIF_RSP_ERROR` responses, a counter and a rate-limited log line;
//! a protocol violation disables the vif (`xenvif_fatal_tx_err`) with one
//! warning, after which [`Port::recv`] returns [`RecvStatus::Disabled`].
//!
//! A vif has 1 to [`MAX_QUEUES`] queues, each a TX and an RX ring with one
//! event channel or two (split: TX requests signal and TX responses are
//! notified on `event-channel-tx`, RX on `event-channel-rx`), and
//! optionally the control ring ([`Vif::connect_ctrl`]). All channels and a
//! tick timer are in one epoll set per vif, whose fd is the port's event
//! fd; each [`Port::recv`] serves every queue, and [`Port::send`] picks a
//! packet's queue by hash (the control ring's Toeplitz mapping, else a
//! stable flow hash). Spurious events (no new request) pay a token of a
//! per-channel bucket ([`Vif::set_event_rate`]); a channel out of tokens is
//! masked until the next tick. Guest TX obeys the vif's `rate`
//! ([`TxRate`], credit per time window as Linux's, once per vif): a packet
//! beyond the credit waits in its ring until the timer says the window is
//! over. Notifications follow the frontend's `rsp_event`, one per channel
//! per pass, and under high load are coalesced ([`Vif::set_coalesce`]:
//! at most one per 32 µs, sent by the timer). Packets for the guest that
//! find no RX request wait in a bounded per-queue backlog for at most
//! [`RX_DRAIN_TIMEOUT`]; a frontend without `feature-rx-notify` is polled
//! meanwhile. No allocation and no lock per packet.

mod credit;
mod mcast;
mod portsec;
pub mod prio;
mod relink;
mod rx;
mod tx;
mod violation;

pub use credit::{TxRate, MAX_BURST_BYTES};
pub use mcast::MCAST_MAX;
pub use portsec::{link_local, Policy, PortSecurity, Violation, PORT_SECURITY_MAX_IPS};
pub use relink::{Relink, RelinkError, DETACH_TIMEOUT};
pub use rx::RX_DRAIN_TIMEOUT;
pub use violation::{ProtocolViolation, RingName, RingOverflow};

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use xennet_datapath::{Packet, PacketBatch, Port, PortFeatures, PortStats, RecvStatus, MAX_BURST};

use crate::error::VifError;
use crate::evtchn::EventChannel;
use crate::grant::{DomId, GrantOps, GrantRef};
use crate::metrics::VifMetrics;
use crate::ring::{BackRing, CtrlRing, RingKind, RxRing, TxRing};
use crate::toeplitz::FlowHash;

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
    /// `feature-rx-notify`: the frontend notifies when it posts RX
    /// requests. Without it (old or minimal frontends) the backend polls
    /// the RX ring every [`RX_POLL_INTERVAL`] while packets wait for it.
    pub rx_notify: bool,
    /// `request-multicast-control`: only the multicast groups the frontend
    /// subscribed to (`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`) reach it.
    pub multicast_control: bool,
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
            rx_notify: true,
            multicast_control: false,
        }
    }
}

/// RX queue bound in packets.
pub const RX_QUEUE_PACKETS: usize = 256;
/// RX queue bound in bytes (`XENVIF_RX_QUEUE_BYTES`: half a ring of pages).
pub const RX_QUEUE_BYTES: usize = 512 * 1024;
/// Priority (control traffic) RX backlog bound in packets, beside the
/// bulk backlog of [`RX_QUEUE_PACKETS`] (see [`prio`]).
pub const RX_PRIO_PACKETS: usize = 64;
/// Priority RX backlog bound in bytes.
pub const RX_PRIO_BYTES: usize = 64 * 1024;

/// Per-packet log reasons, each rate-limited separately.
#[derive(Debug, Clone, Copy)]
enum LogReason {
    Malformed,
    TooManySlots,
    GrantError,
    Csum,
    RxQueueFull,
    RxGrantError,
    EventStorm,
    Mcast,
    Spoof,
    Guard,
    RxPrioFull,
}

const LOG_REASONS: usize = 11;
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

/// Default bound on the events accepted from one event channel, per
/// second ([`Vif::set_event_rate`]).
pub const DEFAULT_EVENT_RATE: u32 = 10_000;
/// How long a throttled event channel stays masked before the backend
/// looks at its rings again (the "next tick").
const EVENT_TICK: Duration = Duration::from_millis(1);

/// Default adaptive coalescing window ([`Vif::set_coalesce`]): under high
/// load a notification waits at most this long after the previous one.
pub const DEFAULT_COALESCE: Duration = Duration::from_micros(32);
/// Responses since the last notification from which a channel counts as
/// under high load for coalescing (8 within the 32 µs window: 250,000
/// packets per second).
pub const COALESCE_PACKETS: usize = 8;

/// How often the backend looks at the RX ring of a frontend without
/// `feature-rx-notify` while packets wait for it (Linux polls such
/// frontends instead of waiting for an event, too).
pub const RX_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// One event channel as the backend serves it: the channel, its
/// notification state and its token bucket.
#[derive(Debug)]
struct Channel {
    evtchn: Box<dyn EventChannel + Send>,
    /// Whether a response push asked for a notification not yet sent.
    notify_pending: bool,
    /// Responses pushed since the last notification decision.
    pushed: usize,
    /// Responses pushed since the last notification sent.
    pushed_since_notify: usize,
    /// When the last notification was sent.
    last_notify: Option<Instant>,
    /// A notification is being held back for coalescing.
    deferred: bool,
    /// Events the bucket still accepts (scaled by [`Vif::event_rate`]:
    /// one event costs 1 s worth, see [`Channel::take_token`]).
    tokens: u64,
    last_refill: Instant,
    /// Masked in the vif's epoll until the next tick.
    masked: bool,
    /// The channel woke this pass.
    fired: bool,
    /// This pass found work on the channel's rings (new requests).
    work: bool,
}

impl Channel {
    fn new(evtchn: Box<dyn EventChannel + Send>) -> Self {
        Channel {
            evtchn,
            notify_pending: false,
            pushed: 0,
            pushed_since_notify: 0,
            last_notify: None,
            deferred: false,
            tokens: u64::MAX,
            last_refill: Instant::now(),
            masked: false,
            fired: false,
            work: false,
        }
    }

    /// Token bucket of `rate` events per second with a burst of
    /// `rate / 100` (10 ms worth, at least 1). Tokens are kept in units of
    /// nanoseconds-per-event so that refills are exact integers.
    fn take_token(&mut self, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true; // unlimited
        }
        let cost = 1_000_000_000 / u64::from(rate).max(1);
        let burst = cost * u64::from((rate / 100).max(1));
        let elapsed = now.saturating_duration_since(self.last_refill).as_nanos();
        self.last_refill = now;
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        self.tokens = self.tokens.saturating_add(elapsed).min(burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// `pushed` responses were pushed; `notify`: the frontend asked for
    /// a notification (its `rsp_event`).
    fn note(&mut self, pushed: usize, notify: bool) {
        self.pushed += pushed;
        self.notify_pending |= notify;
    }

    /// Whether a pending notification waits for coalescing, and until
    /// when: the channel is under high load (at least
    /// [`COALESCE_PACKETS`] responses since the last notification) and
    /// that notification was sent less than `window` ago.
    fn hold_off(&self, window: Duration, now: &mut Option<Instant>) -> Option<Instant> {
        if window.is_zero() || self.pushed_since_notify < COALESCE_PACKETS {
            return None;
        }
        let due = self.last_notify? + window;
        (due > *now.get_or_insert_with(Instant::now)).then_some(due)
    }
}

/// One queue of a vif: a TX and an RX ring, their event channel(s) and
/// the RX (to the guest) backlog.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The guest's TX ring (frontend to switch).
    tx: BackRing<TxRing>,
    /// The guest's RX ring (switch to frontend).
    rx: BackRing<RxRing>,
    /// Index into [`Vif::channels`] of the channel TX requests signal and
    /// TX responses are notified on (`event-channel-tx` or `event-channel`).
    tx_chan: usize,
    /// Same for RX (`event-channel-rx`, or the same as `tx_chan`).
    rx_chan: usize,
    /// The bulk backlog (everything but control frames when control
    /// traffic goes first).
    rx_queue: VecDeque<rx::Queued>,
    rx_queue_bytes: usize,
    /// The priority backlog: control frames ([`prio::is_control`]),
    /// delivered before `rx_queue`.
    rx_prio: VecDeque<rx::Queued>,
    rx_prio_bytes: usize,
    /// The RX ring's `req_prod` at the last pass (new RX requests mean an
    /// RX event brought work).
    last_rx_prod: u32,
    /// When a pass first found the oldest TX request still in the ring
    /// (`None` once the ring is drained): the start of its packet's
    /// packet-to-backend time.
    tx_seen_at: Option<Instant>,
}

impl Queue {
    /// Whether packets wait in either RX backlog.
    pub(crate) fn backlogged(&self) -> bool {
        !self.rx_queue.is_empty() || !self.rx_prio.is_empty()
    }
}

/// What a frontend gave for one queue (its `queue-N/` keys, or the
/// top-level keys of a single-queue vif), with the bound channels.
#[derive(Debug)]
pub struct QueueSpec {
    /// Grant reference of the TX ring page (`tx-ring-ref`).
    pub tx_ring_ref: GrantRef,
    /// Grant reference of the RX ring page (`rx-ring-ref`).
    pub rx_ring_ref: GrantRef,
    /// The channel of `event-channel`, or of `event-channel-tx` with split
    /// channels.
    pub tx_evtchn: Box<dyn EventChannel + Send>,
    /// The channel of `event-channel-rx` with split channels; `None` for
    /// one channel per queue.
    pub rx_evtchn: Option<Box<dyn EventChannel + Send>>,
}

/// Most queues a vif may have (`multi-queue-max-queues`).
pub const MAX_QUEUES: usize = 8;

/// Epoll token of the tick timer in a vif's epoll set (channels use their
/// index).
const TIMER_TOKEN: u64 = u64::MAX;
/// Epoll token of the [`Relink`] eventfd.
const RELINK_TOKEN: u64 = u64::MAX - 1;

/// A frontend's rings and event channels, mapped and bound but not yet
/// served: what a vif is made of ([`Vif::from_rings`]), or what
/// [`Relink::attach`] hands to a vif that keeps its port across a reset.
#[derive(Debug)]
pub struct Rings {
    name: String,
    frontend: FrontendConfig,
    grants: Box<dyn GrantOps + Send>,
    channels: Vec<Channel>,
    queues: Vec<Queue>,
    ctrl: Option<(BackRing<CtrlRing>, usize)>,
}

impl Rings {
    /// Check a frontend's configuration and map its queues' rings
    /// (every ring reference distinct, 1 to [`MAX_QUEUES`] queues), as
    /// [`Vif::connect_queues`] does.
    pub fn connect_queues(
        name: String,
        mut frontend: FrontendConfig,
        queues: Vec<QueueSpec>,
        mut grants: Box<dyn GrantOps + Send>,
    ) -> Result<Rings, VifError> {
        if !frontend.rx_copy {
            return Err(VifError::RxCopyRequired);
        }
        if queues.is_empty() || queues.len() > MAX_QUEUES {
            return Err(VifError::Attach(format!(
                "{} queues requested; 1 to {MAX_QUEUES} are supported",
                queues.len()
            )));
        }
        let mut refs: Vec<GrantRef> = Vec::with_capacity(2 * queues.len());
        for q in &queues {
            for r in [q.tx_ring_ref, q.rx_ring_ref] {
                if refs.contains(&r) {
                    return Err(VifError::SharedRingRef(r));
                }
                refs.push(r);
            }
        }
        if let Some(q0) = queues.first() {
            frontend.tx_ring_ref = q0.tx_ring_ref;
            frontend.rx_ring_ref = q0.rx_ring_ref;
        }
        let mut channels = Vec::new();
        let mut qs = Vec::with_capacity(queues.len());
        for q in queues {
            let tx_page = grants.map_ring(frontend.domid, q.tx_ring_ref, true)?;
            let rx_page = grants.map_ring(frontend.domid, q.rx_ring_ref, true)?;
            let tx_chan = channels.len();
            channels.push(Channel::new(q.tx_evtchn));
            let rx_chan = match q.rx_evtchn {
                Some(ch) => {
                    channels.push(Channel::new(ch));
                    channels.len() - 1
                }
                None => tx_chan,
            };
            qs.push(Queue {
                tx: BackRing::attach(tx_page),
                rx: BackRing::attach(rx_page),
                tx_chan,
                rx_chan,
                rx_queue: VecDeque::new(),
                rx_queue_bytes: 0,
                rx_prio: VecDeque::new(),
                rx_prio_bytes: 0,
                last_rx_prod: 0,
                tx_seen_at: None,
            });
        }
        Ok(Rings {
            name,
            frontend,
            grants,
            channels,
            queues: qs,
            ctrl: None,
        })
    }

    /// Map the control ring and take its channel.
    fn attach_ctrl(
        &mut self,
        ring_ref: GrantRef,
        evtchn: Box<dyn EventChannel + Send>,
    ) -> Result<(), VifError> {
        let page = self.grants.map_ring(self.frontend.domid, ring_ref, true)?;
        let idx = self.channels.len();
        self.channels.push(Channel::new(evtchn));
        self.ctrl = Some((BackRing::attach(page), idx));
        Ok(())
    }

    /// The rings a frontend described in xenstore (`keys`, see
    /// [`crate::xenbus::read_frontend`]): each queue's rings and its one
    /// or split event channels, then the control ring if the frontend
    /// gave one. `bind` binds our end of one of the frontend's
    /// event-channel ports (`EVTCHNOP_bind_interdomain`); `grants` reach
    /// the frontend's pages. Errors: a refused bind or ring mapping, a
    /// configuration [`Vif::connect_queues`] refuses. Logs nothing (it is
    /// on the path of a frontend waiting for Connected): the caller logs
    /// [`Rings::describe`] once the connection is announced.
    pub fn connect_frontend(
        name: String,
        keys: &crate::xenbus::FrontendKeys,
        grants: Box<dyn GrantOps + Send>,
        mut bind: impl FnMut(u32) -> Result<Box<dyn EventChannel + Send>, VifError>,
    ) -> Result<Rings, VifError> {
        use crate::xenbus::EventChannels;
        let mut specs = Vec::with_capacity(keys.queues.len());
        for q in &keys.queues {
            let (tx, rx) = match q.evtchn {
                EventChannels::Single(p) => (p, None),
                EventChannels::Split { tx, rx } => (tx, Some(rx)),
            };
            specs.push(QueueSpec {
                tx_ring_ref: q.tx_ring_ref,
                rx_ring_ref: q.rx_ring_ref,
                tx_evtchn: bind(tx)?,
                rx_evtchn: rx.map(&mut bind).transpose()?,
            });
        }
        let mut rings = Rings::connect_queues(name, keys.config, specs, grants)?;
        if let Some((ring_ref, port)) = keys.ctrl {
            rings.attach_ctrl(ring_ref, bind(port)?)?;
        }
        Ok(rings)
    }

    /// What the rings connect to, for a log line: `domain D handle H: N
    /// queue(s), M event channel(s)[, control ring]`.
    pub fn describe(&self) -> String {
        describe(
            &self.frontend,
            self.queues.len(),
            self.channels.len(),
            self.ctrl.is_some(),
        )
    }
}

fn describe(fe: &FrontendConfig, queues: usize, channels: usize, ctrl: bool) -> String {
    format!(
        "domain {} handle {}: {queues} queue(s), {channels} event channel(s){}",
        fe.domid,
        fe.handle,
        if ctrl { ", control ring" } else { "" }
    )
}

/// A connected Xen vif served in userspace.
#[derive(Debug)]
pub struct Vif {
    name: String,
    frontend: FrontendConfig,
    grants: Box<dyn GrantOps + Send>,
    /// Every event channel of every queue.
    channels: Vec<Channel>,
    queues: Vec<Queue>,
    /// The vif's own epoll set: every channel's fd and the tick timer.
    /// Its fd is what the datapath polls.
    epoll: Epoll,
    timer: TimerFd,
    /// When the one-shot timer fires, if armed.
    timer_at: Option<Instant>,
    /// Guest TX rate (`rate` key), shared with the control plane.
    tx_rate: Arc<TxRate>,
    credit: credit::Credit,
    /// The queue [`Port::recv`] serves first on its next pass.
    next_queue: usize,
    /// Events accepted per second per channel (0: unlimited).
    event_rate: u32,
    /// Adaptive coalescing window (zero: notify at once, always).
    coalesce: Duration,
    /// How long a packet may wait in an RX backlog.
    rx_drain: Duration,
    /// Control frames get the priority backlog ([`Vif::set_rx_control_first`]).
    rx_control_first: bool,
    /// Receive-side hash selection for the guest RX queue.
    pub(crate) hash: crate::ctrl::HashConfig,
    /// The control ring (`feature-ctrl-ring`) and its channel's index in
    /// [`Vif::channels`].
    ctrl: Option<(BackRing<CtrlRing>, usize)>,
    /// The multicast groups the frontend subscribed to (applied to what
    /// it receives when it requested multicast control).
    mcast: mcast::McastFilter,
    metrics: Arc<VifMetrics>,
    disabled: bool,
    /// Port security, shared with the control plane.
    security: Arc<PortSecurity>,
    /// `security`'s policy as of `security_gen` (reloaded once per burst
    /// when the generation moved).
    policy: Option<Arc<Policy>>,
    security_gen: u64,
    /// What disabled the vif.
    violation: Option<ProtocolViolation>,
    log: LogLimiter,
    tx_scratch: tx::Scratch,
    rx_scratch: rx::Scratch,
    rx_pool: Vec<Packet>,
    /// Ring swaps across interface resets ([`Vif::relink`]).
    relink: Arc<Relink>,
    /// Packets for the guest held while its rings are down (between its
    /// frontend's Closing and its reconnection), delivered on the fresh
    /// rings; at most [`RX_QUEUE_PACKETS`] and [`RX_QUEUE_BYTES`].
    held: VecDeque<Packet>,
    held_bytes: usize,
}

impl Drop for Vif {
    fn drop(&mut self) {
        self.relink.kill();
    }
}

impl Vif {
    /// Connect to a single-queue frontend with one event channel: check
    /// its configuration, map both ring pages through `grants` (which
    /// validates the grants) and attach to them.
    pub fn connect(
        name: String,
        backend_domid: DomId,
        frontend: FrontendConfig,
        grants: Box<dyn GrantOps + Send>,
        evtchn: Box<dyn EventChannel + Send>,
    ) -> Result<Vif, VifError> {
        let q = QueueSpec {
            tx_ring_ref: frontend.tx_ring_ref,
            rx_ring_ref: frontend.rx_ring_ref,
            tx_evtchn: evtchn,
            rx_evtchn: None,
        };
        Vif::connect_queues(name, backend_domid, frontend, vec![q], grants)
    }

    /// Connect to a frontend with 1 to [`MAX_QUEUES`] queues, each with
    /// its rings and one or two (split) event channels. Every ring
    /// reference must differ. `frontend`'s own ring references are
    /// ignored (queue 0's are in `queues`).
    pub fn connect_queues(
        name: String,
        backend_domid: DomId,
        frontend: FrontendConfig,
        queues: Vec<QueueSpec>,
        grants: Box<dyn GrantOps + Send>,
    ) -> Result<Vif, VifError> {
        let vif = Vif::connect_queues_quiet(name, frontend, queues, grants)?;
        tracing::info!(
            "{}: connected to {} (backend domain {backend_domid})",
            vif.name,
            vif.describe()
        );
        Ok(vif)
    }

    /// What the vif is connected to, for a log line: `domain D handle H:
    /// N queue(s), M event channel(s)[, control ring]`.
    pub fn describe(&self) -> String {
        describe(
            &self.frontend,
            self.queues.len(),
            self.channels.len(),
            self.ctrl.is_some(),
        )
    }

    /// [`Vif::connect_queues`] without its log line.
    fn connect_queues_quiet(
        name: String,
        frontend: FrontendConfig,
        queues: Vec<QueueSpec>,
        grants: Box<dyn GrantOps + Send>,
    ) -> Result<Vif, VifError> {
        Vif::from_rings(Rings::connect_queues(name, frontend, queues, grants)?)
    }

    /// A vif serving `rings`: its own epoll set (every channel and its
    /// timer), counters and settings at their defaults.
    pub fn from_rings(rings: Rings) -> Result<Vif, VifError> {
        let Rings {
            name,
            frontend,
            grants,
            channels,
            queues: qs,
            ctrl,
        } = rings;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER_TOKEN))?;
        let relink = Arc::new(Relink::new()?);
        epoll.add(
            &relink.wake,
            EpollEvent::new(EpollFlags::EPOLLIN, RELINK_TOKEN),
        )?;
        for (i, c) in channels.iter().enumerate() {
            epoll.add(
                c.evtchn.event_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, i as u64),
            )?;
        }
        let metrics = Arc::new(VifMetrics::default());
        VifMetrics::add(&metrics.queues, qs.len() as u64);
        Ok(Vif {
            name,
            frontend,
            grants,
            channels,
            queues: qs,
            epoll,
            timer,
            timer_at: None,
            tx_rate: Arc::default(),
            credit: credit::Credit::new(),
            next_queue: 0,
            event_rate: DEFAULT_EVENT_RATE,
            coalesce: DEFAULT_COALESCE,
            rx_drain: rx::RX_DRAIN_TIMEOUT,
            rx_control_first: true,
            hash: crate::ctrl::HashConfig::default(),
            ctrl,
            mcast: mcast::McastFilter::default(),
            metrics,
            disabled: false,
            security: Arc::default(),
            policy: None,
            security_gen: 0,
            violation: None,
            log: LogLimiter::default(),
            tx_scratch: tx::Scratch::default(),
            rx_scratch: rx::Scratch::default(),
            rx_pool: Vec::new(),
            relink,
            held: VecDeque::new(),
            held_bytes: 0,
        })
    }

    /// The vif's hand-over point for swapping its rings across an
    /// interface reset while its port stays where it is (see [`Relink`]).
    pub fn relink(&self) -> Arc<Relink> {
        self.relink.clone()
    }

    /// Serve the control plane's [`Relink`] request, if any (on the
    /// forwarding thread, from [`Port::recv`]).
    fn serve_relink(&mut self) {
        match self.relink.take() {
            None => {}
            Some(relink::Request::Detach) => {
                self.drop_rings();
                self.relink.detached();
                tracing::debug!("{}: rings released, port kept", self.name);
            }
            Some(relink::Request::Attach(fresh)) => {
                self.drop_rings();
                self.take_rings(*fresh);
                tracing::debug!(
                    "{}: fresh rings of domain {} swapped in",
                    self.name,
                    self.frontend.domid
                );
            }
        }
    }

    /// Drop the rings, the control ring and the event channels (unmapping
    /// and unbinding them) and the grant access; packets waiting for the
    /// guest are held for the fresh rings ([`Vif::hold`]). The vif's
    /// settings, counters and port stay.
    fn drop_rings(&mut self) {
        for c in &self.channels {
            let _ = self.epoll.delete(c.evtchn.event_fd());
        }
        let mut queues = std::mem::take(&mut self.queues);
        for q in &mut queues {
            // Control frames first, as they would have been delivered.
            for w in q.rx_prio.drain(..).chain(q.rx_queue.drain(..)) {
                self.hold(w.into_packet());
            }
        }
        drop(queues);
        self.ctrl = None;
        self.channels.clear();
        self.grants = Box::new(relink::NoGrants);
        self.hash = crate::ctrl::HashConfig::default();
        self.mcast = mcast::McastFilter::default();
        self.next_queue = 0;
        self.metrics
            .queues
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Keep packet `p` for the guest until its fresh rings come, within
    /// [`RX_QUEUE_PACKETS`] and [`RX_QUEUE_BYTES`]; beyond, it is dropped
    /// and counted (`tx_down_drops`).
    fn hold(&mut self, p: Packet) {
        if self.held.len() >= RX_QUEUE_PACKETS || self.held_bytes + p.len() > RX_QUEUE_BYTES {
            VifMetrics::add(&self.metrics.tx_down_drops, 1);
            return;
        }
        self.held_bytes += p.len();
        self.held.push_back(p);
    }

    /// Take `fresh`'s rings, channels, grant access and frontend
    /// configuration (after [`Vif::drop_rings`]); `fresh` is left without
    /// them. Packets held meanwhile go to the guest now.
    fn take_rings(&mut self, fresh: Rings) {
        self.frontend = fresh.frontend;
        self.grants = fresh.grants;
        self.queues = fresh.queues;
        self.ctrl = fresh.ctrl;
        self.channels = fresh.channels;
        for (i, c) in self.channels.iter().enumerate() {
            if let Err(e) = self.epoll.add(
                c.evtchn.event_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, i as u64),
            ) {
                // Its rings are still served on every pass and on the
                // timer; only its events are missed.
                tracing::warn!("{}: cannot poll event channel {i}: {e}", self.name);
            }
        }
        self.metrics.queues.store(
            self.queues.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.held_bytes = 0;
            for chunk in Vec::from(held).chunks(MAX_BURST) {
                let refs: Vec<&Packet> = chunk.iter().collect();
                Port::send(self, &refs);
            }
        }
    }

    /// Set the bound on spurious events (events that bring no new
    /// request) accepted from each event channel, per second (default
    /// [`DEFAULT_EVENT_RATE`]; 0 = unlimited). Beyond it the channel is
    /// masked until the next 1 ms tick (its events coalesce; its rings are
    /// still serviced on every pass and on the tick); each masking is
    /// counted in [`VifMetrics::event_throttles`].
    pub fn set_event_rate(&mut self, per_second: u32) {
        self.event_rate = per_second;
    }

    /// Set the adaptive coalescing window (default [`DEFAULT_COALESCE`],
    /// 32 µs; zero disables coalescing). At low load every notification
    /// goes at once; a channel under high load (at least
    /// [`COALESCE_PACKETS`] responses since its last notification) that
    /// notified less than `window` ago waits until `window` has passed,
    /// so the frontend handles more responses per event. Each hold-off is
    /// counted in [`VifMetrics::notifications_deferred`].
    pub fn set_coalesce(&mut self, window: Duration) {
        self.coalesce = window;
    }

    /// Drop packets that waited longer than `timeout` in an RX backlog
    /// for the guest's requests (default [`RX_DRAIN_TIMEOUT`], 10 s, as
    /// Linux's `rx_drain_timeout_msecs`); counted in
    /// [`VifMetrics::tx_expired`].
    pub fn set_rx_drain_timeout(&mut self, timeout: Duration) {
        self.rx_drain = timeout;
    }

    /// Whether control frames ([`prio::is_control`]: ARP, ICMP, ICMPv6
    /// with Neighbor Discovery, DHCP, DHCPv6) that find the guest's RX ring
    /// full wait in a priority backlog of their own (at most
    /// [`RX_PRIO_PACKETS`] packets, [`RX_PRIO_BYTES`] bytes per queue),
    /// delivered before the bulk backlog and so never dropped for want of
    /// bulk room (default true; counted in [`VifMetrics::tx_prio_queued`],
    /// [`VifMetrics::tx_prio_delivered`], [`VifMetrics::tx_prio_dropped`]).
    /// Off, every frame shares the one backlog in arrival order.
    pub fn set_rx_control_first(&mut self, on: bool) {
        self.rx_control_first = on;
    }

    /// Obey `rate` for guest TX from now on (see [`TxRate`]; the caller
    /// keeps a clone to change it, e.g. when xenstore's `rate` changes).
    pub fn set_tx_rate(&mut self, rate: Arc<TxRate>) {
        self.tx_rate = rate;
    }

    /// Arm the vif's one-shot timer to fire `after` from now, unless it
    /// already fires sooner.
    fn arm_timer(&mut self, after: Duration) {
        let at = Instant::now() + after;
        if self.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        // A zero expiration would disarm the timer.
        let when =
            Expiration::OneShot(TimeSpec::from_duration(after.max(Duration::from_micros(1))));
        if self.timer.set(when, TimerSetTimeFlags::empty()).is_ok() {
            self.timer_at = Some(at);
        }
    }

    /// Connect the vif a frontend described in xenstore (`keys`, see
    /// [`crate::xenbus::read_frontend`]): each queue's rings and its one or
    /// split event channels, then the control ring if the frontend gave
    /// one. `bind` binds our end of one of the frontend's event-channel
    /// ports (`EVTCHNOP_bind_interdomain`); `grants` reach the frontend's
    /// pages. Errors: a refused bind or ring mapping, or what
    /// [`Vif::connect_queues`] refuses. Logs nothing (it is on the path
    /// of a frontend waiting for Connected): the caller logs
    /// [`Vif::describe`] once the connection is announced.
    pub fn connect_frontend(
        name: String,
        _backend_domid: DomId,
        keys: &crate::xenbus::FrontendKeys,
        grants: Box<dyn GrantOps + Send>,
        bind: impl FnMut(u32) -> Result<Box<dyn EventChannel + Send>, VifError>,
    ) -> Result<Vif, VifError> {
        Vif::from_rings(Rings::connect_frontend(name, keys, grants, bind)?)
    }

    /// Attach the frontend's control ring (`ctrl-ring-ref`, mapped through
    /// the vif's grants) and its channel (`event-channel-ctrl`): hash
    /// requests are then served ([`crate::ctrl::process`]) whenever the vif
    /// is polled.
    pub fn connect_ctrl(
        &mut self,
        ring_ref: GrantRef,
        evtchn: Box<dyn EventChannel + Send>,
    ) -> Result<(), VifError> {
        self.attach_ctrl(ring_ref, evtchn)?;
        tracing::info!("{}: control ring connected", self.name);
        Ok(())
    }

    /// [`Vif::connect_ctrl`] without its log line.
    fn attach_ctrl(
        &mut self,
        ring_ref: GrantRef,
        evtchn: Box<dyn EventChannel + Send>,
    ) -> Result<(), VifError> {
        if self.ctrl.is_some() {
            return Err(VifError::Attach("control ring already connected".into()));
        }
        let page = self.grants.map_ring(self.frontend.domid, ring_ref, true)?;
        let idx = self.channels.len();
        self.epoll.add(
            evtchn.event_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, idx as u64),
        )?;
        self.channels.push(Channel::new(evtchn));
        self.ctrl = Some((BackRing::attach(page), idx));
        Ok(())
    }

    /// Serve pending control requests, at most a ring's worth per call:
    /// each is copied out of the ring once, processed and answered in
    /// order. More than a ring of requests is a protocol violation.
    /// Returns whether requests are left for the next call.
    fn serve_ctrl(&mut self) -> bool {
        let Some((mut ring, chan)) = self.ctrl.take() else {
            return false;
        };
        let mut served = 0;
        let mut more = true;
        for _ in 0..CtrlRing::SIZE {
            let pending = match ring.pending() {
                Ok((_, n)) => n,
                Err(overflow) => {
                    self.fatal(ProtocolViolation::RingOverflow {
                        ring: RingName::Ctrl,
                        overflow,
                    });
                    break;
                }
            };
            if pending == 0 {
                if !ring.final_check_for_requests() {
                    more = false;
                    break;
                }
                continue;
            }
            let req = ring.copy_request(ring.req_cons);
            ring.req_cons = ring.req_cons.wrapping_add(1);
            let rsp = crate::ctrl::process(
                &mut self.hash,
                self.queues.len(),
                &req,
                &mut *self.grants,
                self.frontend.domid,
            );
            VifMetrics::add(&self.metrics.ctrl_requests, 1);
            if rsp.status != crate::ctrl::CTRL_STATUS_SUCCESS {
                VifMetrics::add(&self.metrics.ctrl_errors, 1);
            }
            ring.put_response(rsp);
            served += 1;
        }
        if served > 0 {
            let notify = ring.push_responses();
            if let Some(c) = self.channels.get_mut(chan) {
                c.note(served, notify);
                c.work = true;
            }
        }
        self.ctrl = Some((ring, chan));
        more && !self.disabled
    }

    /// The counters, shared with the control plane.
    pub fn metrics(&self) -> Arc<VifMetrics> {
        self.metrics.clone()
    }

    /// The frontend's configuration.
    pub fn frontend(&self) -> &FrontendConfig {
        &self.frontend
    }

    /// Number of queues.
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Whether a protocol violation disabled the vif.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Port security: drop (and count, `rx_spoofed_mac`) every frame
    /// the guest sends from another source MAC than `mac` (its vif's
    /// MAC, the backend `mac` key), as Xen's hotplug scripts' ebtables
    /// rules do, and check its ARP and neighbour discovery against it
    /// ([`Policy::check`]); `None`: the port's `attached-mac`, if any
    /// ([`PortSecurity::set_attached_mac`]), else no checks.
    pub fn set_allowed_mac(&mut self, mac: Option<[u8; 6]>) {
        self.security.set_mac(mac);
    }

    /// The vif's port security, shared with the control plane (which may
    /// turn it off for one port: [`PortSecurity::set_enabled`]).
    pub fn port_security(&self) -> Arc<PortSecurity> {
        self.security.clone()
    }

    /// The protocol violation that disabled the vif, if one did.
    pub fn violation(&self) -> Option<ProtocolViolation> {
        self.violation
    }

    /// Multicast groups the frontend subscribed to.
    pub fn mcast_groups(&self) -> usize {
        self.mcast.len()
    }

    /// Packets waiting in the RX queues for the guest to post RX requests.
    pub fn rx_queue_len(&self) -> usize {
        self.queues
            .iter()
            .map(|q| q.rx_queue.len() + q.rx_prio.len())
            .sum()
    }

    /// Packets waiting in the priority (control) RX backlogs.
    pub fn rx_prio_len(&self) -> usize {
        self.queues.iter().map(|q| q.rx_prio.len()).sum()
    }

    /// Disable the vif after a protocol violation: one warning, a counter.
    fn fatal(&mut self, v: ProtocolViolation) {
        if self.disabled {
            return;
        }
        self.disabled = true;
        self.violation = Some(v);
        // The forwarding thread stops polling a disabled vif: a reset
        // then connects a new one.
        self.relink.kill();
        VifMetrics::add(&self.metrics.fatal_errors, 1);
        if let Some(c) = self.metrics.violations.get(v.index()) {
            VifMetrics::add(c, 1);
        }
        tracing::warn!(
            "{}: fatal error from frontend: {v}; disabling vif",
            self.name
        );
    }

    /// Drop every queued packet (after [`Vif::fatal`]).
    fn clear_rx_queues(&mut self) {
        for q in &mut self.queues {
            q.rx_queue.clear();
            q.rx_queue_bytes = 0;
            q.rx_prio.clear();
            q.rx_prio_bytes = 0;
        }
    }

    /// Send at most one notification per channel for everything pushed
    /// so far, unless coalescing holds it back (then the timer sends it).
    fn flush_notify(&mut self) {
        let mut now = None;
        let mut wake: Option<Instant> = None;
        for c in &mut self.channels {
            c.pushed_since_notify = c.pushed_since_notify.saturating_add(c.pushed);
            if c.notify_pending {
                if let Some(due) = c.hold_off(self.coalesce, &mut now) {
                    if !c.deferred {
                        c.deferred = true;
                        VifMetrics::add(&self.metrics.notifications_deferred, 1);
                    }
                    wake = Some(wake.map_or(due, |w| w.min(due)));
                } else {
                    c.evtchn.notify();
                    VifMetrics::add(&self.metrics.notifications_sent, 1);
                    c.notify_pending = false;
                    c.deferred = false;
                    c.pushed_since_notify = 0;
                    c.last_notify = Some(*now.get_or_insert_with(Instant::now));
                }
            } else if c.pushed > 0 {
                VifMetrics::add(&self.metrics.notifications_suppressed, 1);
            }
            c.pushed = 0;
        }
        if let (Some(due), Some(now)) = (wake, now) {
            self.arm_timer(due.saturating_duration_since(now));
        }
    }

    /// While packets wait in an RX backlog, make sure a pass comes when
    /// the oldest expires, and every [`RX_POLL_INTERVAL`] for a frontend
    /// that does not notify new RX requests.
    fn arm_backlog_timer(&mut self) {
        let Some(oldest) = self
            .queues
            .iter()
            .flat_map(|q| q.rx_queue.front().into_iter().chain(q.rx_prio.front()))
            .map(rx::Queued::since)
            .min()
        else {
            return;
        };
        let mut after = (oldest + self.rx_drain).saturating_duration_since(Instant::now());
        if !self.frontend.rx_notify {
            after = after.min(RX_POLL_INTERVAL);
        }
        self.arm_timer(after);
    }

    /// Consume the events that woke us: each ready channel is acked and
    /// marked fired; the tick unmasks every masked channel. Never blocks.
    fn take_events(&mut self) {
        let mut events = [EpollEvent::empty(); 2 * MAX_QUEUES + 3];
        let n = self
            .epoll
            .wait(&mut events, EpollTimeout::ZERO)
            .unwrap_or_default();
        for ev in events.iter().take(n) {
            let token = ev.data();
            if token == RELINK_TOKEN {
                self.serve_relink();
                continue;
            }
            if token == TIMER_TOKEN {
                let _ = self.timer.wait(); // reads the expiration count
                self.timer_at = None;
                for (i, c) in self.channels.iter_mut().enumerate() {
                    if c.masked {
                        c.masked = false;
                        let _ = self.epoll.modify(
                            c.evtchn.event_fd(),
                            &mut EpollEvent::new(EpollFlags::EPOLLIN, i as u64),
                        );
                    }
                }
                continue;
            }
            if let Some(c) = usize::try_from(token)
                .ok()
                .and_then(|i| self.channels.get_mut(i))
            {
                c.evtchn.ack();
                c.fired = true;
                VifMetrics::add(&self.metrics.events_received, 1);
            }
        }
    }

    /// After a pass: every channel that woke us without bringing work (a
    /// spurious event, as Linux's lateeoi handling calls it) pays a token
    /// of its bucket; one out of tokens is masked until the next tick, its
    /// further events coalescing meanwhile. Events that bring requests are
    /// free, so traffic is never slowed by the limit.
    fn charge_spurious(&mut self) {
        if !self.channels.iter().any(|c| c.fired) {
            // Nothing woke us: no clock read, no bucket to charge.
            self.channels.iter_mut().for_each(|c| c.work = false);
            return;
        }
        let now = Instant::now();
        let mut mask_any = false;
        for (i, c) in self.channels.iter_mut().enumerate() {
            let spurious = c.fired && !c.work;
            c.fired = false;
            c.work = false;
            if !spurious || c.masked || c.take_token(self.event_rate, now) {
                continue;
            }
            c.masked = true;
            mask_any = true;
            VifMetrics::add(&self.metrics.event_throttles, 1);
            let _ = self.epoll.modify(
                c.evtchn.event_fd(),
                &mut EpollEvent::new(EpollFlags::empty(), i as u64),
            );
        }
        if mask_any {
            self.arm_timer(EVENT_TICK);
            if self.log.allow(LogReason::EventStorm) {
                tracing::info!(
                    "{}: more than {} spurious events per second on an event channel; \
                     coalescing (rate-limited)",
                    self.name,
                    self.event_rate
                );
            }
        }
    }

    fn log_drop(&mut self, reason: LogReason, what: std::fmt::Arguments<'_>) {
        if self.log.allow(reason) {
            tracing::info!("{}: {what} (rate-limited)", self.name);
        }
    }

    /// The queue (of `n`) a packet to the guest goes to: with one queue,
    /// 0; with a hash configured through the control ring (the packet's is
    /// `h`), its mapping table; else a stable hash of the flow modulo the
    /// number of queues.
    fn select_queue(&self, p: &Packet, n: usize, h: Option<FlowHash>) -> usize {
        if n <= 1 {
            return 0;
        }
        let q = self
            .hash
            .queue_of(h)
            .unwrap_or_else(|| crate::toeplitz::default_flow_hash(p.data()) as usize);
        q % n
    }
}

impl Port for Vif {
    fn name(&self) -> &str {
        &self.name
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.epoll.0.as_fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        if self.disabled {
            return RecvStatus::Disabled;
        }
        self.take_events();
        let ctrl_more = self.ctrl.is_some() && self.serve_ctrl();
        // Service every queue: reading an idle ring's producer is cheap,
        // and a masked channel's ring still gets served here.
        // Starting with the next queue each pass, so that neither a full
        // batch nor the vif's rate credit always goes to queue 0 first.
        let mut queues = std::mem::take(&mut self.queues);
        let n = queues.len().max(1);
        let first = self.next_queue % n;
        self.next_queue = first + 1;
        let mut more = false;
        for qi in (0..n).map(|i| (first + i) % n) {
            let Some(q) = queues.get_mut(qi) else { break };
            if self.disabled {
                break;
            }
            if q.backlogged() {
                self.flush_rx_queue(q);
            }
            if self.disabled {
                break;
            }
            let rx_prod = q.rx.req_prod();
            if rx_prod != q.last_rx_prod {
                q.last_rx_prod = rx_prod;
                if let Some(c) = self.channels.get_mut(q.rx_chan) {
                    c.work = true;
                }
            }
            let before = batch.len();
            let tx_cons = q.tx.req_cons;
            match self.guest_tx(q, batch) {
                Ok(m) => more |= m,
                Err(v) => {
                    self.fatal(v);
                    break;
                }
            }
            // Requests of this queue waiting for credit are work too, not
            // a spurious event.
            let waiting = self.credit.wait_until.is_some() && q.tx.unconsumed() > 0;
            if q.tx.req_cons != tx_cons || waiting {
                if let Some(c) = self.channels.get_mut(q.tx_chan) {
                    c.work = true;
                }
            }
            let got = batch.len().saturating_sub(before);
            if got > 0 {
                if let Some(c) = self.metrics.queue_rx_packets.get(qi) {
                    VifMetrics::add(c, got as u64);
                }
            }
        }
        self.queues = queues;
        let waiting = self.credit.wait_until;
        if let Some(t) = waiting {
            self.arm_timer(t.saturating_duration_since(Instant::now()));
        }
        self.flush_notify();
        self.arm_backlog_timer();
        self.charge_spurious();
        if self.disabled {
            self.clear_rx_queues();
            return RecvStatus::Disabled;
        }
        if more || ctrl_more {
            return RecvStatus::More;
        }
        for q in &mut self.queues {
            // Requests waiting for credit wait for the timer, not a poll.
            if waiting.is_none() && q.tx.final_check_for_requests() {
                more = true;
            }
            if q.backlogged() && q.rx.final_check_for_requests() {
                more = true;
            }
        }
        if more {
            RecvStatus::More
        } else {
            RecvStatus::Idle
        }
    }

    fn send(&mut self, pkts: &[&Packet]) {
        if self.disabled {
            VifMetrics::add(&self.metrics.tx_disabled_drops, pkts.len() as u64);
            return;
        }
        if self.queues.is_empty() {
            // The rings are down for a reset: kept for the fresh ones.
            for p in pkts {
                self.hold((*p).clone());
            }
            return;
        }
        let mut queues = std::mem::take(&mut self.queues);
        if queues.len() == 1 {
            if let Some(q) = queues.first_mut() {
                self.guest_rx(q, pkts);
            }
        } else {
            // Group by queue without allocating: a queue index (and the
            // frontend's hash, computed once) per packet, then one pass
            // per queue over chunks of at most MAX_BURST.
            let n = queues.len();
            for chunk in pkts.chunks(MAX_BURST) {
                let Some(&first) = chunk.first() else { break };
                let mut sel = [0usize; MAX_BURST];
                let mut items = [rx::Hashed {
                    pkt: first,
                    hash: None,
                }; MAX_BURST];
                for ((p, s), it) in chunk.iter().zip(&mut sel).zip(&mut items) {
                    let h = self.hash.flow_hash(p.data());
                    *s = self.select_queue(p, n, h);
                    *it = rx::Hashed { pkt: p, hash: h };
                }
                for (qi, q) in queues.iter_mut().enumerate() {
                    let mut picked = items;
                    let mut k = 0;
                    for (it, &s) in items.iter().zip(&sel).take(chunk.len()) {
                        if s == qi {
                            if let Some(slot) = picked.get_mut(k) {
                                *slot = *it;
                                k += 1;
                            }
                        }
                    }
                    if k > 0 && !self.disabled {
                        if let Some(c) = self.metrics.queue_tx_packets.get(qi) {
                            VifMetrics::add(c, k as u64);
                        }
                        self.guest_rx(q, picked.get(..k).unwrap_or(&[]));
                    }
                }
            }
        }
        self.queues = queues;
        if self.disabled {
            self.clear_rx_queues();
        }
        self.flush_notify();
        self.arm_backlog_timer();
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
