//! One OpenFlow connection (OVS `ofconn` over an `rconn`/`vconn`): HELLO
//! and version negotiation, framing, echo and inactivity probes, the
//! per-connection state (role, asynchronous-message configuration, Nicira
//! formats), and dispatch of the remaining requests to a [`Handler`].
//!
//! Requests are handled one at a time in arrival order and their replies
//! queued in order, so a BARRIER_REPLY is simply the reply to a barrier
//! (OpenFlow 1.3 §6.2 is satisfied trivially).
//!
//! Memory is bounded whatever the peer does: received messages are handled
//! in place (at most one partial message of up to 64 KiB plus one read is
//! buffered), and at most [`MAX_OUT`] bytes wait for a peer that does not
//! read. Past that, requests are no longer read (the peer's writes block;
//! a controller then misses its inactivity probe and is dropped) and
//! asynchronous messages are dropped, counted in
//! [`ConnStatus::dropped_events`] and logged at most once a second.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::time::Instant;
use xennet_openflow::header::{self, Header, HEADER_LEN};
use xennet_openflow::model::{
    AsyncConfig, BundleAdd, BundleCtrl, BundleCtrlType, MpRequest, Msg, RoleMsg, SwitchConfig,
    TableFeatures,
};
use xennet_openflow::monitor::{self, Pause};
use xennet_openflow::{v10, OfError};

use super::bundle::Bundles;

/// Most bytes of a failed request echoed in an ERROR (§7.4.4: at least 64).
const ERROR_DATA_LEN: usize = 64;
/// Default `miss_send_len` (OpenFlow `OFPCML_DEFAULT` is 128 bytes).
pub const DEFAULT_MISS_SEND_LEN: u16 = 128;
/// `OFPR_NO_MATCH` (1.0 and 1.3 `ofp_packet_in_reason`).
const PACKET_IN_NO_MATCH: u8 = 0;
/// `OFPR_INVALID_TTL` (1.3).
const PACKET_IN_INVALID_TTL: u8 = 2;
/// Most bytes of replies and asynchronous messages queued for a peer that
/// does not read them, before requests stop being read and asynchronous
/// messages are dropped (one request's replies may go past it).
pub const MAX_OUT: usize = 1 << 20;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Controller roles (OpenFlow 1.3 §6.3.5, `ofp_controller_role`).
pub mod role {
    /// `OFPCR_ROLE_NOCHANGE`.
    pub const NOCHANGE: u32 = 0;
    /// `OFPCR_ROLE_EQUAL`.
    pub const EQUAL: u32 = 1;
    /// `OFPCR_ROLE_MASTER`.
    pub const MASTER: u32 = 2;
    /// `OFPCR_ROLE_SLAVE`.
    pub const SLAVE: u32 = 3;
}

/// Whether a connection is to a configured controller (OVS
/// `OFCONN_PRIMARY`: gets asynchronous messages) or a service connection
/// such as `ovs-ofctl` on `<bridge>.mgmt` (`OFCONN_SERVICE`: gets
/// packet-ins only after it sets a nonzero `miss_send_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A controller from the bridge's controller list.
    Primary,
    /// A management or snooping connection.
    Service,
}

/// A packet-in shared by every connection of a bridge (one copy, however
/// many connections), counted against the bridge's packet-in byte budget
/// (see `ConnMgr::send_packet_in`) until the last connection is done with
/// it.
#[derive(Debug)]
pub struct SharedPacketIn {
    /// The message.
    pub msg: xennet_openflow::model::PacketIn,
    /// The budget its data bytes are charged to.
    budget: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// Only connections with this controller id (`NXT_SET_CONTROLLER_ID`)
    /// receive it (OVS `connmgr_send_async_msg`).
    pub controller_id: u16,
}

impl SharedPacketIn {
    /// A packet-in charged to `budget` (the caller added its bytes).
    pub fn charged(
        msg: xennet_openflow::model::PacketIn,
        budget: Arc<std::sync::atomic::AtomicUsize>,
        controller_id: u16,
    ) -> Arc<SharedPacketIn> {
        Arc::new(SharedPacketIn {
            msg,
            budget: Some(budget),
            controller_id,
        })
    }

    /// A packet-in outside any budget.
    #[cfg(test)]
    pub fn new(msg: xennet_openflow::model::PacketIn) -> Arc<SharedPacketIn> {
        Arc::new(SharedPacketIn {
            msg,
            budget: None,
            controller_id: 0,
        })
    }
}

impl Drop for SharedPacketIn {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.fetch_sub(self.msg.data.len(), Ordering::Relaxed);
        }
    }
}

/// An asynchronous message for the connections of one bridge.
#[derive(Debug, Clone)]
pub enum Event {
    /// Packet-in (reason in the message).
    PacketIn(Arc<SharedPacketIn>),
    /// Flow removed.
    FlowRemoved(Box<xennet_openflow::model::FlowRemoved>),
    /// Port added, removed or changed.
    PortStatus(xennet_openflow::model::PortStatus),
    /// Rule changes, for flow monitors ([`super::monitor`]).
    FlowChanges(Arc<xennet_ofproto::FlowChanges>),
}

/// What a request handler may want to know about the connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnCtx {
    /// Negotiated wire version.
    pub version: u8,
}

/// The bridge side: everything but the connection-level messages.
pub trait Handler: Send + Sync {
    /// Handle one request and return its replies (possibly none). Called
    /// for every message except HELLO, ECHO, BARRIER, ROLE, GET/SET_ASYNC,
    /// GET/SET_CONFIG and the Nicira format settings, which the connection
    /// handles itself; write requests from a slave never get here.
    ///
    /// # Errors
    /// The error to send back.
    fn handle(&self, ctx: &ConnCtx, msg: Msg) -> Result<Vec<Msg>, OfError>;

    /// [`Handler::handle`] if `msg` can be handled without waiting (for a
    /// lock, the forwarding thread) and in bounded time; the connection
    /// then answers it on its own task, without first handing the
    /// runtime's worker to another thread (`block_in_place`, a thread
    /// wake-up per request). `None`: not handled, nothing changed; the
    /// connection calls [`Handler::handle`] where it may block. The
    /// default handles nothing here.
    fn try_handle(&self, ctx: &ConnCtx, msg: &Msg) -> Option<Result<Vec<Msg>, OfError>> {
        let _ = (ctx, msg);
        None
    }

    /// The bridge's Geneve option map, which the codec needs for
    /// `tun_metadata` fields ([`xennet_openflow::tlv::with_map`]); `None`
    /// (the default): such fields are refused.
    fn tlv_map(&self) -> Option<Arc<xennet_openflow::tlv::TlvMap>> {
        None
    }

    /// Check `msg` as it is added to a bundle (what does not depend on
    /// the state the commit will find; OVS `handle_bundle_add`). The
    /// default accepts everything (the commit checks).
    ///
    /// # Errors
    /// The message's error; it is not added.
    fn check_bundled(&self, ctx: &ConnCtx, msg: &Msg) -> Result<(), OfError> {
        let _ = (ctx, msg);
        Ok(())
    }

    /// Apply the messages of a committed bundle (flow-mods, group-mods,
    /// port-mods, packet-outs; OpenFlow 1.4.1 §6.8.5) atomically and in
    /// the order given, with the bundle's `flags`
    /// ([`xennet_openflow::model::bundle_flags`]). Called only from a
    /// connection whose role may write. The messages are the handler's
    /// to drop as soon as each is applied (their memory then serves
    /// what they add). The default refuses every bundle.
    ///
    /// # Errors
    /// The index of the message that failed and its error; nothing has
    /// changed then.
    fn commit_bundle(
        &self,
        ctx: &ConnCtx,
        flags: u16,
        msgs: Vec<xennet_ofproto::Bundled>,
    ) -> Result<(), (usize, OfError)> {
        let _ = (ctx, flags, msgs);
        Err((0, OfError::BUNDLE_MSG_UNSUP))
    }

    /// A connection starts (`true`) or stops (`false`) having flow
    /// monitors: rule changes must then (no longer) arrive as
    /// [`Event::FlowChanges`]. Calls pair. The default does nothing.
    fn watch_flows(&self, on: bool) {
        let _ = on;
    }

    /// `NXT_CT_FLUSH_ZONE` / `NXT_CT_FLUSH`: flush the matching
    /// connection tracking entries. The default (no connection tracker
    /// to flush) refuses with `OFPBRC_EPERM`.
    ///
    /// # Errors
    /// The error to send back.
    fn ct_flush(&self, flush: &xennet_openflow::ct_flush::CtFlush) -> Result<(), OfError> {
        let _ = flush;
        Err(OfError::BAD_REQUEST_EPERM)
    }

    /// Every rule with the last change it includes, for a flow
    /// monitor's initial dump and refresh. The default has none.
    fn all_rules(&self) -> xennet_ofproto::tables::RuleSnapshot {
        xennet_ofproto::tables::RuleSnapshot::default()
    }
}

/// Gives back a connection's flow monitoring ([`Handler::watch_flows`])
/// when the connection ends, however it ends.
struct Unwatch(Arc<dyn Handler>, Arc<std::sync::atomic::AtomicBool>);

impl Drop for Unwatch {
    fn drop(&mut self) {
        if self.1.swap(false, Ordering::AcqRel) {
            self.0.watch_flows(false);
        }
    }
}

/// Master election state shared by the connections of one bridge
/// (§6.3.5: one master; a new master turns the old one into a slave;
/// generation ids reject stale requests).
#[derive(Debug, Default)]
pub struct Roles {
    inner: Mutex<RolesInner>,
    /// Copy of `inner.master` (0: none; connection ids start at 1) so
    /// that filtering asynchronous messages takes no lock.
    master_id: AtomicU64,
}

#[derive(Debug, Default)]
struct RolesInner {
    generation: Option<u64>,
    master: Option<u64>,
}

impl Roles {
    fn master(&self) -> Option<u64> {
        match self.master_id.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    fn request(&self, conn: u64, req: &RoleMsg, check_generation: bool) -> Result<(), OfError> {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if check_generation && (req.role == role::MASTER || req.role == role::SLAVE) {
            if let Some(g) = r.generation {
                // Wrapping distance, as the spec says (generation ids wrap).
                if (req.generation_id.wrapping_sub(g) as i64) < 0 {
                    return Err(OfError::ROLE_STALE);
                }
            }
            r.generation = Some(req.generation_id);
        }
        match req.role {
            role::MASTER => r.master = Some(conn),
            role::SLAVE | role::EQUAL if r.master == Some(conn) => r.master = None,
            _ => {}
        }
        self.master_id
            .store(r.master.unwrap_or(0), Ordering::Release);
        Ok(())
    }

    fn forget(&self, conn: u64) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if r.master == Some(conn) {
            r.master = None;
            self.master_id.store(0, Ordering::Release);
        }
    }

    fn generation(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .generation
            .unwrap_or(0)
    }
}

/// The default asynchronous configuration (OpenFlow 1.3 §7.3.10, OVS
/// `ofconn_set_default_async`): masters and equals get packet-ins for
/// no-match and action, every port status and flow removal; slaves get
/// port status only.
pub const DEFAULT_ASYNC: AsyncConfig = AsyncConfig {
    packet_in_mask: [0b011, 0],
    port_status_mask: [0b111, 0b111],
    flow_removed_mask: [0b1111, 0],
    ..AsyncConfig::NONE
};

/// Per-connection options.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// Primary or service.
    pub kind: ConnKind,
    /// Send ECHO_REQUEST after this long without traffic and drop the
    /// connection after twice this long (OVS `inactivity_probe`, 5 s by
    /// default for controllers); `None` for management connections.
    pub probe_interval: Option<Duration>,
    /// For logs: `unix:/run/...` or `tcp:1.2.3.4:6653`.
    pub peer: String,
    /// Versions offered in HELLO, as a bitmap (bit n = wire version n), a
    /// subset of [`header::SUPPORTED_BITMAP`] (OVS `Bridge:protocols`).
    pub versions: u32,
    /// A peer that has not completed HELLO by then is dropped
    /// ([`HELLO_TIMEOUT`] outside tests): management connections have no
    /// inactivity probe, and one that never spoke held one of its
    /// listener's slots for ever.
    pub hello_timeout: Duration,
    /// Packet-ins sent at most at this rate, beyond a burst (OVS
    /// `Controller:controller_rate_limit`/`controller_burst_limit`);
    /// `None`: unlimited.
    pub packet_in_limit: Option<PacketInLimit>,
}

/// A packet-in rate limit (OVS `pinsched`): `rate` packets/s with bursts
/// of up to `burst` packets. OVS queues what exceeds it (up to the burst)
/// and drops the rest; xennet drops what exceeds it, counted in
/// [`ConnStatus::packet_ins_limited`] and logged at most once a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInLimit {
    /// Packets per second (at least 1).
    pub rate: u32,
    /// Largest burst, packets (at least 1).
    pub burst: u32,
}

/// The token bucket of a [`PacketInLimit`].
#[derive(Debug)]
struct PacketInBucket {
    limit: PacketInLimit,
    tokens: f64,
    last: Instant,
}

impl PacketInBucket {
    fn new(limit: PacketInLimit) -> Self {
        PacketInBucket {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Whether one more packet-in may go now.
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        let add = now.duration_since(self.last).as_secs_f64() * f64::from(self.limit.rate.max(1));
        self.tokens = (self.tokens + add).min(f64::from(self.limit.burst.max(1)));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How long a new connection may take to complete HELLO.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Connection statistics shared with the manager (for `is_connected`,
/// `role` and logs).
#[derive(Debug, Default)]
pub struct ConnStatus {
    /// Negotiated version, 0 before HELLO.
    pub version: std::sync::atomic::AtomicU8,
    /// Current role.
    pub role: std::sync::atomic::AtomicU32,
    /// Asynchronous messages dropped because this connection was slow
    /// (the bridge's queue overran, or [`MAX_OUT`] bytes were waiting).
    pub dropped_events: AtomicU64,
    /// Requests answered with an ERROR (malformed, unsupported, refused).
    pub refused_requests: AtomicU64,
    /// Packet-ins dropped over the connection's rate limit
    /// ([`ConnOptions::packet_in_limit`]).
    pub packet_ins_limited: AtomicU64,
    /// `ovs-ofctl snoop` connections copying this one ([`super::snoop`]).
    pub snoop: super::snoop::Snoopers,
}

struct State {
    id: u64,
    version: u8,
    /// Versions we offer (see [`ConnOptions::versions`]).
    versions: u32,
    role: u32,
    async_cfg: AsyncConfig,
    config: SwitchConfig,
    kind: ConnKind,
    /// Nicira formats (OpenFlow 1.0 only): `NXT_SET_FLOW_FORMAT`,
    /// `NXT_SET_PACKET_IN_FORMAT`, `NXT_FLOW_MOD_TABLE_ID`.
    v10_enc: v10::EncodeOptions,
    v10_dec: v10::DecodeOptions,
    /// `NXT_SET_PACKET_IN_FORMAT`: 0 standard, 1 `NXT_PACKET_IN` (1.0
    /// only here), 2 `NXT_PACKET_IN2` (OVS `enum nx_packet_in_format`).
    pin_format: u32,
    /// `NXT_SET_CONTROLLER_ID` (0 by default): packet-ins from
    /// `controller(id=N)` go only to connections with id N.
    controller_id: u16,
    /// Requests answered with an ERROR, and the rate limit of their log
    /// lines.
    refused: u64,
    refused_log: crate::ratelimit::LogLimit,
    /// The packet-in rate limit ([`ConnOptions::packet_in_limit`]).
    pin_bucket: Option<PacketInBucket>,
    pin_limited: u64,
    pin_log: crate::ratelimit::LogLimit,
    /// A table-features request being reassembled from messages with
    /// `OFPMPF_REQ_MORE` (its xid and tables so far).
    tf_parts: Option<(u32, Vec<TableFeatures>)>,
    /// Open bundles (OpenFlow 1.4 / the ONF 1.3 extension).
    bundles: Bundles,
    /// The handler, asked for the TLV map around each decode and encode.
    tlv_src: Arc<dyn Handler>,
    /// Flow monitors.
    monitors: super::monitor::Monitors,
    /// Whether [`Handler::watch_flows`] is on for this connection.
    watching: Arc<std::sync::atomic::AtomicBool>,
}

/// Most tables one reassembled table-features request may hold (one per
/// table id); more gets `OFPBRC_MULTIPART_BUFFER_OVERFLOW`.
const MAX_TF_TABLES: usize = 255;

impl State {
    /// Whether `msg` may be sent now: packet-ins beyond the connection's
    /// rate limit are dropped (counted, logged at most once a second).
    fn admit(&mut self, msg: &Msg, status: &ConnStatus, peer: &str) -> bool {
        let Some(b) = &mut self.pin_bucket else {
            return true;
        };
        if !matches!(msg, Msg::PacketIn(_) | Msg::NxPacketIn2(_)) || b.admit() {
            return true;
        }
        self.pin_limited = self.pin_limited.saturating_add(1);
        status
            .packet_ins_limited
            .store(self.pin_limited, Ordering::Relaxed);
        if self.pin_log.ready() {
            tracing::info!(
                "conn {} ({peer}): packet-in over the controller rate limit ({} packets/s, burst {}) dropped ({} so far)",
                self.id,
                b.limit.rate,
                b.limit.burst,
                self.pin_limited
            );
        }
        false
    }

    /// Answer the request `req` with an ERROR in `version`, counting it
    /// and logging it at most once a second.
    fn refuse(&mut self, version: u8, err: OfError, req: &[u8], out: &mut Vec<u8>) {
        self.refused = self.refused.saturating_add(1);
        if self.refused_log.ready() {
            tracing::info!(
                "conn {}: refused a request of type {}: {err} ({} refused so far)",
                self.id,
                req.get(1).copied().unwrap_or(0),
                self.refused
            );
        }
        push_error(version, err, req, out);
    }

    /// Add one message of a table-features request (OpenFlow 1.3.5 §7.3.5:
    /// a request may span messages, all but the last with
    /// `OFPMPF_REQ_MORE`; OVS `ofpmp_assembler`): the whole request once
    /// its last message is in, `None` while more are due. A message with
    /// another xid starts a new request (the unfinished one is dropped).
    ///
    /// # Errors
    /// `OFPBRC_MULTIPART_BUFFER_OVERFLOW` beyond [`MAX_TF_TABLES`] tables
    /// (the request is dropped).
    fn assemble_table_features(
        &mut self,
        xid: u32,
        flags: u16,
        part: Vec<TableFeatures>,
    ) -> Result<Option<Vec<TableFeatures>>, OfError> {
        let mut all = match self.tf_parts.take() {
            Some((x, v)) if x == xid => v,
            _ => Vec::new(),
        };
        if all.len() + part.len() > MAX_TF_TABLES {
            return Err(OfError::MULTIPART_BUFFER_OVERFLOW);
        }
        all.extend(part);
        if flags & xennet_openflow::multipart::OFPMPF_MORE != 0 {
            self.tf_parts = Some((xid, all));
            Ok(None)
        } else {
            Ok(Some(all))
        }
    }

    /// Stop watching rule changes once the last monitor is gone.
    fn sync_watch(&mut self, handler: &dyn Handler) {
        if !self.monitors.active() && self.watching.swap(false, Ordering::AcqRel) {
            blocking(|| handler.watch_flows(false));
        }
    }

    /// A master that another connection has since replaced is a slave
    /// (§6.3.5); this is where that takes effect.
    fn refresh_role(&mut self, roles: &Roles) {
        if self.role == role::MASTER && roles.master() != Some(self.id) {
            self.role = role::SLAVE;
        }
    }

    /// Append `msg` in this connection's version and formats; on error
    /// nothing is appended.
    fn encode(
        &self,
        msg: &Msg,
        xid: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), xennet_openflow::model::EncodeError> {
        xennet_openflow::tlv::with_map(self.tlv_src.tlv_map(), || {
            if self.version == header::OFP10_VERSION {
                v10::encode_with(msg, xid, &self.v10_enc, out)
            } else {
                xennet_openflow::encode(msg, self.version, xid, out)
            }
        })
    }

    /// Append `msg`, a message of our own (asynchronous event, echo
    /// probe): one that cannot be encoded is logged and not sent (there is
    /// no request to answer with an error).
    fn send_own(&self, msg: &Msg, out: &mut Vec<u8>) {
        if let Err(e) = self.encode(msg, 0, out) {
            tracing::warn!("conn {}: cannot encode {msg:?}: {e}", self.id);
        }
    }

    /// Append `msg`, a reply to the request `req`; a reply that cannot be
    /// encoded in this connection's version is answered with an ERROR
    /// ([`unencodable_reply`]) instead, never dropped.
    fn reply(&mut self, msg: &Msg, req: &[u8], xid: u32, out: &mut Vec<u8>) {
        if let Err(e) = self.encode(msg, xid, out) {
            tracing::debug!("conn {}: cannot encode reply {msg:?}: {e}", self.id);
            self.refuse(self.version, unencodable_reply(msg), req, out);
        }
    }

    fn decode(&self, raw: &[u8]) -> Result<(Header, Msg), xennet_openflow::DecodeError> {
        xennet_openflow::tlv::with_map(self.tlv_src.tlv_map(), || {
            if self.version == header::OFP10_VERSION {
                let h = Header::parse(raw)?;
                Ok((h, v10::decode_with(&h, raw, &self.v10_dec)?))
            } else {
                xennet_openflow::decode(raw)
            }
        })
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No common version in HELLO.
    #[error("no common OpenFlow version (peer offers bitmap {0:#x})")]
    Incompatible(u32),
    /// The first message was not a HELLO.
    #[error("expected HELLO, got message type {0}")]
    NoHello(u8),
    /// Inactivity probe unanswered.
    #[error("no reply to inactivity probe")]
    ProbeTimeout,
    /// No HELLO within [`ConnOptions::hello_timeout`].
    #[error("no HELLO within {0:?}")]
    HelloTimeout(Duration),
    /// A header declared a length below 8 bytes: the stream cannot be
    /// framed any more (OVS closes too).
    #[error("message length {0} is shorter than the OpenFlow header")]
    BadLength(u16),
}

/// Received bytes; complete messages are handled in place from `start`.
#[derive(Default)]
struct RxBuf {
    buf: Vec<u8>,
    start: usize,
}

impl RxBuf {
    /// The next complete message, if buffered.
    fn next_frame(&mut self) -> Option<Range<usize>> {
        let avail = &self.buf[self.start..];
        let n = header::frame_len(avail)?;
        if avail.len() < n {
            return None;
        }
        let r = self.start..self.start + n;
        self.start += n;
        Some(r)
    }

    /// Drop handled messages (moving at most one partial message) and
    /// make room for a read: the buffer stays below 64 KiB plus
    /// [`READ_CHUNK`] bytes whatever the peer sends.
    fn make_room(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        &mut self.buf
    }
}

/// Bytes waiting for the peer: `buf[pos..]`.
#[derive(Default)]
struct TxBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl TxBuf {
    fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn consumed(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }
}

/// Serve one connection until it closes. `events` delivers the bridge's
/// asynchronous messages.
///
/// # Errors
/// Why the connection ended abnormally (a clean close by the peer is `Ok`).
pub async fn serve<S>(
    stream: S,
    opts: ConnOptions,
    handler: Arc<dyn Handler>,
    roles: Arc<Roles>,
    mut events: broadcast::Receiver<Event>,
    status: Arc<ConnStatus>,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // Mastership ends with the connection, also when its task is aborted.
    let _forget = ForgetRole(&roles, id);
    let versions = match opts.versions & header::SUPPORTED_BITMAP {
        0 => header::SUPPORTED_BITMAP,
        v => v,
    };
    let mut st = State {
        id,
        version: 0,
        versions,
        role: role::EQUAL,
        async_cfg: DEFAULT_ASYNC,
        config: SwitchConfig {
            flags: 0,
            miss_send_len: match opts.kind {
                ConnKind::Primary => DEFAULT_MISS_SEND_LEN,
                ConnKind::Service => 0,
            },
        },
        kind: opts.kind,
        v10_enc: v10::EncodeOptions::default(),
        pin_format: 0,
        controller_id: 0,
        v10_dec: v10::DecodeOptions::default(),
        refused: 0,
        refused_log: crate::ratelimit::LogLimit::default(),
        pin_bucket: opts.packet_in_limit.map(PacketInBucket::new),
        pin_limited: 0,
        pin_log: crate::ratelimit::LogLimit::default(),
        tf_parts: None,
        bundles: Bundles::default(),
        tlv_src: handler.clone(),
        monitors: super::monitor::Monitors::default(),
        watching: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let _unwatch = Unwatch(handler.clone(), st.watching.clone());
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut tx = TxBuf::default();
    // The HELLO carries our highest version in its header.
    let highest = u8::try_from(31 - versions.leading_zeros()).unwrap_or(header::OFP13_VERSION);
    header::encode_hello(highest, versions, 0, &mut tx.buf);
    let mut rx = RxBuf::default();
    let mut last_rx = Instant::now();
    let hello_by = last_rx + opts.hello_timeout;
    let mut probe_sent = false;
    let mut drops = DropLog::default();
    // `tx.buf[..snooped]` was copied to the snoopers (or queued before
    // anyone snooped).
    let mut snooped = 0usize;
    let snoop_out = |tx: &TxBuf, snooped: &mut usize| {
        if *snooped < tx.buf.len() {
            status.snoop.copy(&tx.buf[*snooped..]);
            *snooped = tx.buf.len();
        }
    };
    loop {
        // Handle the complete messages already buffered, as long as the
        // peer keeps reading what we send.
        while tx.pending() < MAX_OUT {
            let Some(r) = rx.next_frame() else { break };
            if status.snoop.active() {
                // In order: what we sent before this message, then it.
                snoop_out(&tx, &mut snooped);
                status.snoop.copy(&rx.buf[r.clone()]);
            }
            if let Err(e) = on_message(&mut st, &rx.buf[r], &*handler, &roles, &mut tx.buf) {
                // Best effort: the error that explains the close.
                flush_before_close(&mut wr, &tx).await;
                return Err(e);
            }
        }
        if st.monitors.paused() && tx.pending() == 0 {
            // OVS `ofmonitor_resume`: everything queued was written.
            let ups = st.monitors.resume(blocking(|| handler.all_rules()));
            super::monitor::send_updates(st.version, 0, &ups, &mut tx.buf);
            super::monitor::send_pause(st.version, Pause::Resumed, &mut tx.buf);
        }
        // Copied before it can be written (the select below).
        snoop_out(&tx, &mut snooped);
        st.refresh_role(&roles);
        status.version.store(st.version, Ordering::Relaxed);
        status.role.store(st.role, Ordering::Relaxed);
        status.refused_requests.store(st.refused, Ordering::Relaxed);
        let probe_at = opts.probe_interval.map(|p| last_rx + p);
        tokio::select! {
            r = rd.read_buf(rx.make_room()), if tx.pending() < MAX_OUT => {
                match r {
                    Ok(0) => {
                        // The peer is done sending; it may still read the
                        // replies to what it sent last.
                        flush_before_close(&mut wr, &tx).await;
                        break Ok(());
                    }
                    Ok(_) => {
                        last_rx = Instant::now();
                        probe_sent = false;
                    }
                    Err(e) => break Err(e.into()),
                }
            }
            r = wr.write(&tx.buf[tx.pos..]), if tx.pending() > 0 => {
                match r {
                    Ok(0) => break Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                    Ok(n) => {
                        tx.consumed(n);
                        if tx.buf.is_empty() {
                            snooped = 0;
                        }
                    }
                    Err(e) => break Err(e.into()),
                }
            }
            ev = events.recv(), if st.version != 0 => {
                match ev {
                    Ok(Event::FlowChanges(c)) => {
                        // Never dropped for a slow peer: while paused only
                        // removals of older flows are queued (bounded by
                        // the tables' size).
                        let ups = st.monitors.updates(st.id, &c);
                        if !ups.is_empty() {
                            super::monitor::send_updates(st.version, 0, &ups, &mut tx.buf);
                            if st.monitors.maybe_pause(tx.pending()) {
                                super::monitor::send_pause(st.version, Pause::Paused, &mut tx.buf);
                            }
                        }
                    }
                    Ok(_) if tx.pending() >= MAX_OUT => {
                        drops.dropped(1, &status, id, &opts.peer);
                    }
                    Ok(ev) => {
                        st.refresh_role(&roles);
                        if let Some(msg) = filter_event(&st, ev) {
                            if st.admit(&msg, &status, &opts.peer) {
                                st.send_own(&msg, &mut tx.buf);
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        if st.monitors.active() {
                            // Flow updates may be among them: the
                            // monitor's view may now be wrong.
                            tracing::warn!(
                                "conn {id} ({}): {n} events lost while flow monitors are active; their updates may be incomplete",
                                opts.peer
                            );
                        }
                        drops.dropped(n, &status, id, &opts.peer);
                    }
                    Err(broadcast::error::RecvError::Closed) => break Ok(()),
                }
            }
            _ = sleep_until(st.bundles.next_expiry()) => {
                // OVS `bundle_remove_expired`: the idle bundle is gone, and
                // the request that opened it gets OFPBFC_TIMEOUT.
                for req in st.bundles.expire(Instant::now()) {
                    st.refuse(st.version, OfError::BUNDLE_TIMEOUT, &req, &mut tx.buf);
                }
            }
            () = tokio::time::sleep_until(hello_by), if st.version == 0 => {
                break Err(ConnError::HelloTimeout(opts.hello_timeout));
            }
            _ = sleep_until(probe_at) => {
                if probe_sent {
                    break Err(ConnError::ProbeTimeout);
                }
                if st.version != 0 {
                    st.send_own(&Msg::EchoRequest(Vec::new()), &mut tx.buf);
                }
                probe_sent = true;
                last_rx = Instant::now();
            }
        }
    }
}

/// How long a closing connection may take to write what is queued.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// Write what is queued before closing, giving up after [`CLOSE_FLUSH`]
/// (a peer that does not read must not keep the connection).
async fn flush_before_close<W: AsyncWrite + Unpin>(wr: &mut W, tx: &TxBuf) {
    let pending = &tx.buf[tx.pos..];
    if !pending.is_empty() {
        let _ = tokio::time::timeout(CLOSE_FLUSH, wr.write_all(pending)).await;
    }
}

/// Gives up a connection's mastership when dropped.
struct ForgetRole<'a>(&'a Roles, u64);

impl Drop for ForgetRole<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

/// Counts asynchronous messages a slow connection loses and logs them at
/// most once a second.
#[derive(Default)]
struct DropLog {
    limit: crate::ratelimit::LogLimit,
    unlogged: u64,
}

impl DropLog {
    fn dropped(&mut self, n: u64, status: &ConnStatus, id: u64, peer: &str) {
        status.dropped_events.fetch_add(n, Ordering::Relaxed);
        self.unlogged = self.unlogged.saturating_add(n);
        if self.limit.ready() {
            tracing::warn!(
                "conn {id} ({peer}): {} asynchronous messages dropped (slow connection; {} in all)",
                self.unlogged,
                status.dropped_events.load(Ordering::Relaxed)
            );
            self.unlogged = 0;
        }
    }
}

/// Run `f`, which may block (the bridge's handler takes the tables lock
/// and waits for the forwarding thread), without stalling the other tasks
/// of a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Append an ERROR answering the request `req`.
fn push_error(version: u8, err: OfError, req: &[u8], out: &mut Vec<u8>) {
    // The request's xid even when its header is otherwise bad.
    let xid = req
        .get(4..8)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
    let msg = Msg::Error {
        err,
        data: req[..req.len().min(ERROR_DATA_LEN)].to_vec(),
    };
    if let Err(e) = xennet_openflow::encode(&msg, version, xid, out) {
        // Only a version we do not speak gets here; nothing else to say.
        tracing::warn!("cannot encode {msg:?} in version {version}: {e}");
    }
}

/// The ERROR answering a request whose reply cannot be encoded in the
/// connection's version (for example statistics that OpenFlow 1.0 cannot
/// express): `OFPBRC_BAD_MULTIPART` for a statistics reply, else
/// `OFPBRC_EPERM`.
fn unencodable_reply(msg: &Msg) -> OfError {
    match msg {
        Msg::MultipartReply { .. } => OfError::BAD_MULTIPART,
        _ => OfError::BAD_REQUEST_EPERM,
    }
}

/// Handle one framed message; `Err` closes the connection.
fn on_message(
    st: &mut State,
    raw: &[u8],
    handler: &dyn Handler,
    roles: &Roles,
    out: &mut Vec<u8>,
) -> Result<(), ConnError> {
    let reply_version = if st.version == 0 {
        header::OFP13_VERSION
    } else {
        st.version
    };
    if raw.len() < HEADER_LEN {
        st.refuse(reply_version, OfError::BAD_LEN, raw, out);
        return Ok(());
    }
    let declared = u16::from_be_bytes([raw[2], raw[3]]);
    if usize::from(declared) < HEADER_LEN {
        st.refuse(reply_version, OfError::BAD_LEN, raw, out);
        return Err(ConnError::BadLength(declared));
    }
    let typ = raw[1];
    if st.version == 0 {
        if typ != header::OFPT_HELLO {
            st.refuse(reply_version, OfError::BAD_TYPE, raw, out);
            return Err(ConnError::NoHello(typ));
        }
        let versions = match header::decode_hello(raw) {
            Ok(Msg::Hello { versions }) => versions,
            _ => 1u32.checked_shl(u32::from(raw[0])).unwrap_or(0),
        };
        return match header::negotiate(st.versions, versions) {
            Some(v) => {
                st.version = v;
                Ok(())
            }
            None => {
                let msg = Msg::Error {
                    err: OfError::HELLO_INCOMPATIBLE,
                    data: format!("we support versions bitmap {:#x}", st.versions).into_bytes(),
                };
                // In the peer's version: `ofp_error_msg` is the same in
                // every version, so 1.1 and 1.2 (which xennet does not
                // speak) get the 1.3 form with their version number.
                let v = raw[0].clamp(header::OFP10_VERSION, header::OFP15_VERSION);
                let start = out.len();
                let enc = if v == header::OFP10_VERSION {
                    v
                } else {
                    v.max(header::OFP13_VERSION)
                };
                match xennet_openflow::encode(&msg, enc, 0, out) {
                    Ok(()) => out[start] = v,
                    Err(e) => tracing::warn!("conn {}: cannot encode HELLO_FAILED: {e}", st.id),
                }
                Err(ConnError::Incompatible(versions))
            }
        };
    }
    if raw[0] != st.version && typ != header::OFPT_HELLO {
        st.refuse(st.version, OfError::BAD_VERSION, raw, out);
        return Ok(());
    }
    if let Ok(h) = Header::parse(raw) {
        if let Some(body) = monitor::request_body(&h, raw) {
            flow_monitor_request(st, &h, body, raw, handler, out);
            return Ok(());
        }
        if let Some(r) = xennet_openflow::ct_flush::decode(&h, raw) {
            let r = r.map_err(|e| e.err).and_then(|f| {
                if st.role == role::SLAVE {
                    return Err(OfError::IS_SLAVE);
                }
                blocking(|| handler.ct_flush(&f))
            });
            if let Err(e) = r {
                st.refuse(st.version, e, raw, out);
            }
            return Ok(());
        }
        if let Some(body) = monitor::cancel_body(&h, raw) {
            match monitor::decode_cancel(body).and_then(|id| {
                st.monitors
                    .cancel(id)
                    .map_err(|e| xennet_openflow::DecodeError::new(e, "unknown monitor"))
            }) {
                Ok(()) => st.sync_watch(handler),
                Err(e) => st.refuse(st.version, e.err, raw, out),
            }
            return Ok(());
        }
    }
    let (h, mut msg) = match st.decode(raw) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!("conn {}: bad message type {typ}: {e}", st.id);
            st.refuse(st.version, e.err, raw, out);
            return Ok(());
        }
    };
    st.refresh_role(roles);
    // In place: a `Msg` holding a flow-mod is most of a kilobyte, and
    // moving it into a new binding for every message showed in profiles
    // of streamed flow-mods.
    if let Msg::MultipartRequest {
        flags,
        body: MpRequest::TableFeatures(part),
    } = &mut msg
    {
        match st.assemble_table_features(h.xid, *flags, std::mem::take(part)) {
            Ok(Some(all)) => {
                *flags = 0;
                *part = all;
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                st.refuse(st.version, e, raw, out);
                return Ok(());
            }
        }
    }
    let v = st.version;
    let xid = h.xid;
    let reply = |st: &mut State, m: Msg, out: &mut Vec<u8>| st.reply(&m, raw, xid, out);
    // Flow-mods, the bulk of what controllers stream: applied in place
    // when `try_handle` can, without moving the message into the general
    // arm below (which refuses a slave's and hands the rest to `handle`).
    if matches!(msg, Msg::FlowMod(_)) && st.role != role::SLAVE {
        let ctx = ConnCtx { version: v };
        if let Some(r) = xennet_ofproto::with_origin(st.id, xid, || handler.try_handle(&ctx, &msg))
        {
            match r {
                Ok(replies) => {
                    for m in replies {
                        reply(st, m, out);
                    }
                }
                Err(e) => st.refuse(v, e, raw, out),
            }
            return Ok(());
        }
    }
    match msg {
        Msg::Hello { .. } | Msg::EchoReply(_) => {}
        Msg::EchoRequest(data) => reply(st, Msg::EchoReply(data), out),
        Msg::BarrierRequest => reply(st, Msg::BarrierReply, out),
        Msg::GetConfigRequest => reply(st, Msg::GetConfigReply(st.config), out),
        Msg::SetConfig(c) => st.config = c,
        Msg::GetAsyncRequest => reply(st, Msg::GetAsyncReply(st.async_cfg), out),
        Msg::SetAsync(c) => st.async_cfg = c,
        Msg::SetAsyncProps(p) => xennet_openflow::async_config::apply(&mut st.async_cfg, &p),
        Msg::NxSetFlowFormat(0) => st.v10_enc.nxm = false,
        Msg::NxSetFlowFormat(2) => st.v10_enc.nxm = true,
        Msg::NxSetFlowFormat(_) => st.refuse(v, OfError::BAD_REQUEST_EPERM, raw, out),
        // NXT_PACKET_IN on OpenFlow 1.3+ (an experimenter message with an
        // NXM match) is not implemented: refused, not ignored. Other
        // values are OFPBRC_EPERM, as OVS `handle_nxt_set_packet_in_format`.
        Msg::NxSetPacketInFormat(f @ (0 | 2)) => {
            st.pin_format = f;
            st.v10_enc.nx_packet_in = false;
        }
        Msg::NxSetPacketInFormat(1) if v == header::OFP10_VERSION => {
            st.pin_format = 1;
            st.v10_enc.nx_packet_in = true;
        }
        Msg::NxSetPacketInFormat(_) => st.refuse(v, OfError::BAD_REQUEST_EPERM, raw, out),
        Msg::NxFlowModTableId(on) => st.v10_dec.flow_mod_table_id = on,
        Msg::NxSetControllerId(id) => st.controller_id = id,
        Msg::RoleRequest(req) => {
            if req.role > role::SLAVE {
                st.refuse(v, OfError::BAD_ROLE, raw, out);
                return Ok(());
            }
            // Nicira roles (OpenFlow 1.0) carry no generation id.
            let check_generation = v != header::OFP10_VERSION;
            match roles.request(st.id, &req, check_generation) {
                Ok(()) => {
                    if req.role != role::NOCHANGE {
                        st.role = req.role;
                    }
                    reply(
                        st,
                        Msg::RoleReply(RoleMsg {
                            role: st.role,
                            generation_id: roles.generation(),
                        }),
                        out,
                    );
                }
                Err(e) => st.refuse(v, e, raw, out),
            }
        }
        Msg::BundleControl(_) | Msg::BundleAdd(_) if st.role == role::SLAVE => {
            // OVS `reject_secondary_controller`.
            st.refuse(v, OfError::IS_SLAVE, raw, out);
        }
        Msg::BundleAdd(BundleAdd {
            bundle_id,
            flags,
            msg,
        }) => {
            let ctx = ConnCtx { version: v };
            let r = handler.check_bundled(&ctx, &msg).and_then(|()| {
                let msg = xennet_ofproto::Bundled::new(msg);
                st.bundles.add(bundle_id, flags, msg, raw, Instant::now())
            });
            if let Err(e) = r {
                st.refuse(v, e, raw, out);
            }
        }
        Msg::BundleControl(bc) => bundle_control(st, bc, raw, xid, handler, out),
        msg => {
            if st.role == role::SLAVE && is_write(&msg) {
                st.refuse(v, OfError::IS_SLAVE, raw, out);
                return Ok(());
            }
            let ctx = ConnCtx { version: v };
            let conn = st.id;
            // Bounded requests in place, the rest where they may block
            // (a flow-mod was already tried in place above).
            let tried = matches!(msg, Msg::FlowMod(_));
            let r = xennet_ofproto::with_origin(conn, xid, || {
                match (!tried).then(|| handler.try_handle(&ctx, &msg)).flatten() {
                    Some(r) => r,
                    None => blocking(|| handler.handle(&ctx, msg)),
                }
            });
            match r {
                Ok(replies) => {
                    for m in replies {
                        reply(st, m, out);
                    }
                }
                Err(e) => st.refuse(v, e, raw, out),
            }
        }
    }
    Ok(())
}

/// A flow monitor request (OVS `handle_flow_monitor_request`): the
/// monitors are created (or changed, or cancelled in OpenFlow 1.4) all or
/// none, and the reply lists the flows that match those with
/// `OFPFMF_INITIAL`.
fn flow_monitor_request(
    st: &mut State,
    h: &Header,
    body: &[u8],
    raw: &[u8],
    handler: &dyn Handler,
    out: &mut Vec<u8>,
) {
    let reqs = match monitor::decode_requests(st.version, body) {
        Ok(r) => r,
        Err(e) => {
            st.refuse(st.version, e.err, raw, out);
            return;
        }
    };
    // Watch before the dump, so no change falls between the two.
    if !st.watching.swap(true, Ordering::AcqRel) {
        blocking(|| handler.watch_flows(true));
    }
    match st
        .monitors
        .request(reqs, || blocking(|| handler.all_rules()))
    {
        Ok(ups) => super::monitor::send_updates(st.version, h.xid, &ups, out),
        Err(e) => st.refuse(st.version, e, raw, out),
    }
    st.sync_watch(handler);
}

/// A bundle control request (OpenFlow 1.4.1 §7.3.9; OVS
/// `handle_bundle_control`): answered with the matching reply, or an
/// error. A commit that fails answers the failing message (its
/// add-message's xid and bytes) with its error, then the commit with
/// `OFPBFC_MSG_FAILED`, as OVS does.
fn bundle_control(
    st: &mut State,
    bc: BundleCtrl,
    raw: &[u8],
    xid: u32,
    handler: &dyn Handler,
    out: &mut Vec<u8>,
) {
    let v = st.version;
    let now = Instant::now();
    let id = bc.bundle_id;
    let r = match bc.typ {
        BundleCtrlType::OpenRequest => st.bundles.open(id, bc.flags, raw, now),
        BundleCtrlType::CloseRequest => st.bundles.close(id, bc.flags, now),
        BundleCtrlType::DiscardRequest => st.bundles.discard(id),
        BundleCtrlType::CommitRequest => match st.bundles.take(id, bc.flags) {
            Err(e) => Err(e),
            Ok(c) => {
                let ctx = ConnCtx { version: v };
                let conn = st.id;
                match blocking(|| {
                    xennet_ofproto::with_origin(conn, xid, || {
                        handler.commit_bundle(&ctx, c.flags, c.msgs)
                    })
                }) {
                    Ok(()) => Ok(()),
                    Err((i, e)) => {
                        if let Some(req) = c.requests.get(i) {
                            st.refuse(v, e, req, out);
                        }
                        Err(OfError::BUNDLE_MSG_FAILED)
                    }
                }
            }
        },
        BundleCtrlType::OpenReply
        | BundleCtrlType::CloseReply
        | BundleCtrlType::CommitReply
        | BundleCtrlType::DiscardReply => Err(OfError::BUNDLE_BAD_TYPE),
    };
    match (r, bc.typ.reply()) {
        (Ok(()), Some(typ)) => {
            let reply = Msg::BundleControl(BundleCtrl {
                bundle_id: id,
                typ,
                flags: 0,
            });
            st.reply(&reply, raw, xid, out);
        }
        (Ok(()), None) => {}
        (Err(e), _) => st.refuse(v, e, raw, out),
    }
}

/// Messages a slave may not send (§6.3.5).
fn is_write(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::FlowMod(_)
            | Msg::GroupMod(_)
            | Msg::MeterMod(_)
            | Msg::PacketOut(_)
            | Msg::PortMod(_)
            | Msg::TableMod { .. }
            | Msg::NxTlvTableMod(_)
    )
}

/// Whether this connection wants `ev`, and in what form.
/// The caller refreshes `st.role` first. Service connections get nothing
/// until they set a nonzero `miss_send_len` (OVS
/// `ofconn_receives_async_msg`).
fn filter_event(st: &State, ev: Event) -> Option<Msg> {
    if st.kind == ConnKind::Service && st.config.miss_send_len == 0 {
        return None;
    }
    let idx = usize::from(st.role == role::SLAVE);
    let wants = |mask: &[u32; 2], reason: u8| {
        mask[idx] & 1u32.checked_shl(u32::from(reason)).unwrap_or(0) != 0
    };
    match ev {
        Event::PacketIn(shared) => {
            if shared.controller_id != st.controller_id
                || !wants(&st.async_cfg.packet_in_mask, shared.msg.reason)
            {
                return None;
            }
            let mut p = shared.msg.clone();
            // miss_send_len cuts only what no output action's max_len
            // cut (OpenFlow 1.3.5 §7.3.4): invalid-TTL packet-ins, and on
            // OpenFlow 1.0 table misses (as OVS treats a pre-1.3
            // connection's table-miss flow). A 1.3 table-miss flow's own
            // max_len (e.g. OFPCML_NO_BUFFER) was applied already; cutting
            // it again to 128 bytes broke controllers that packet-out the
            // data they were sent.
            let by_miss_send_len = p.reason == PACKET_IN_INVALID_TTL
                || (p.reason == PACKET_IN_NO_MATCH && st.version == header::OFP10_VERSION);
            if by_miss_send_len
                && st.config.miss_send_len != xennet_openflow::model::OFPCML_NO_BUFFER
            {
                p.data.truncate(usize::from(st.config.miss_send_len));
            }
            if st.pin_format == 2 {
                return Some(Msg::NxPacketIn2(p));
            }
            Some(Msg::PacketIn(p))
        }
        Event::FlowRemoved(f) => {
            wants(&st.async_cfg.flow_removed_mask, f.reason).then_some(Msg::FlowRemoved(*f))
        }
        Event::PortStatus(p) => {
            wants(&st.async_cfg.port_status_mask, p.reason).then_some(Msg::PortStatus(p))
        }
        Event::FlowChanges(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_openflow::model::{FlowMod, Instructions, Match};

    /// Accepts everything, answers nothing.
    struct Null;

    impl Handler for Null {
        fn handle(&self, _: &ConnCtx, _: Msg) -> Result<Vec<Msg>, OfError> {
            Ok(Vec::new())
        }
    }

    async fn read_msg(s: &mut tokio::io::DuplexStream) -> (Header, Msg) {
        let mut hdr = [0u8; 8];
        s.read_exact(&mut hdr).await.unwrap();
        let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        let mut body = vec![0u8; len - 8];
        s.read_exact(&mut body).await.unwrap();
        let raw = [&hdr[..], &body].concat();
        let h = Header::parse(&raw).unwrap();
        if h.typ == header::OFPT_HELLO {
            return (h, header::decode_hello(&raw).unwrap());
        }
        (h, xennet_openflow::decode(&raw).unwrap().1)
    }

    async fn send(s: &mut tokio::io::DuplexStream, msg: &Msg, version: u8, xid: u32) {
        let mut out = Vec::new();
        xennet_openflow::encode(msg, version, xid, &mut out).unwrap();
        s.write_all(&out).await.unwrap();
    }

    fn flow_mod() -> Msg {
        Msg::FlowMod(FlowMod::add(0, 1, Match::CATCHALL, Instructions::default()))
    }

    /// Answers every request with statistics OpenFlow 1.0 cannot express.
    struct Unencodable;

    impl Handler for Unencodable {
        fn handle(&self, _: &ConnCtx, _: Msg) -> Result<Vec<Msg>, OfError> {
            Ok(vec![Msg::MultipartReply {
                flags: 0,
                body: xennet_openflow::model::MpReply::MeterFeatures(
                    xennet_openflow::model::MeterFeatures {
                        max_meter: 1,
                        band_types: 2,
                        capabilities: 1,
                        max_bands: 1,
                        max_color: 0,
                    },
                ),
            }])
        }
    }

    /// A reply that cannot be encoded in the connection's version is
    /// answered with an ERROR (with the request's xid), never dropped.
    #[tokio::test]
    async fn unencodable_reply_gets_an_error() {
        let (mut peer, ours) = tokio::io::duplex(1 << 20);
        let (_tx, rx) = broadcast::channel(16);
        let _task = tokio::spawn(serve(
            ours,
            test_opts(ConnKind::Service),
            Arc::new(Unencodable),
            Arc::new(Roles::default()),
            rx,
            Arc::new(ConnStatus::default()),
        ));
        read_msg(&mut peer).await;
        let mut out = Vec::new();
        header::encode_hello(1, 1 << 1, 1, &mut out);
        peer.write_all(&out).await.unwrap();
        send(&mut peer, &Msg::FeaturesRequest, 1, 7).await;
        let (h, m) = read_msg(&mut peer).await;
        assert_eq!(h.xid, 7);
        assert!(
            matches!(m, Msg::Error { err, .. } if err == OfError::BAD_MULTIPART),
            "{m:?}"
        );
    }

    /// Answers flow-mods in [`Handler::try_handle`] (with an error, so
    /// that the answer shows) and counts the requests that reach
    /// [`Handler::handle`], which refuses them all.
    #[derive(Default)]
    struct FastFlowMods(AtomicU64);

    impl Handler for FastFlowMods {
        fn handle(&self, _: &ConnCtx, _: Msg) -> Result<Vec<Msg>, OfError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(OfError::BAD_TYPE)
        }

        fn try_handle(&self, _: &ConnCtx, msg: &Msg) -> Option<Result<Vec<Msg>, OfError>> {
            matches!(msg, Msg::FlowMod(_)).then_some(Err(OfError::TABLE_FULL))
        }
    }

    /// What `try_handle` answers is sent (with the request's xid) and
    /// the request goes no further; what it gives back goes to `handle`;
    /// answers keep the order of the requests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn try_handle_answers_in_place_and_hands_the_rest_to_handle() {
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let (_tx, rx) = broadcast::channel(16);
        let handler = Arc::new(FastFlowMods::default());
        let _task = tokio::spawn(serve(
            ours,
            test_opts(ConnKind::Service),
            handler.clone(),
            Arc::new(Roles::default()),
            rx,
            Arc::new(ConnStatus::default()),
        ));
        hello13(&mut peer).await;
        send(&mut peer, &flow_mod(), 4, 2).await;
        send(&mut peer, &Msg::FeaturesRequest, 4, 3).await;
        send(&mut peer, &flow_mod(), 4, 4).await;
        send(&mut peer, &Msg::BarrierRequest, 4, 5).await;
        for (xid, want) in [
            (2, OfError::TABLE_FULL),
            (3, OfError::BAD_TYPE),
            (4, OfError::TABLE_FULL),
        ] {
            let (h, m) = read_msg(&mut peer).await;
            assert_eq!(h.xid, xid);
            assert!(matches!(m, Msg::Error { err, .. } if err == want), "{m:?}");
        }
        assert_eq!(read_msg(&mut peer).await, read_msg_like(5));
        assert_eq!(handler.0.load(Ordering::Relaxed), 1);
    }

    /// Start a connection offering `ours`, say HELLO with `theirs` from
    /// a peer whose header version is `hdr`, and return what came back
    /// after our HELLO.
    async fn hello_exchange(ours: u32, hdr: u8, theirs: u32) -> (tokio::io::DuplexStream, Msg) {
        let (mut peer, conn) = tokio::io::duplex(1 << 20);
        let (_tx, rx) = broadcast::channel(16);
        tokio::spawn(serve(
            conn,
            ConnOptions {
                kind: ConnKind::Service,
                probe_interval: None,
                peer: "test".into(),
                versions: ours,
                hello_timeout: HELLO_TIMEOUT,
                packet_in_limit: None,
            },
            Arc::new(Null),
            Arc::new(Roles::default()),
            rx,
            Arc::new(ConnStatus::default()),
        ));
        read_msg(&mut peer).await;
        let mut out = Vec::new();
        header::encode_hello(hdr, theirs, 1, &mut out);
        xennet_openflow::encode(&Msg::EchoRequest(b"x".to_vec()), hdr, 2, &mut out).unwrap();
        // After HELLO_FAILED the connection closes: the echo may not land.
        let _ = peer.write_all(&out).await;
        let (h, m) = read_msg(&mut peer).await;
        if !matches!(m, Msg::Error { .. }) {
            assert_eq!(h.version, hdr);
        }
        (peer, m)
    }

    /// A peer that speaks only 1.5 (bitmap 0x40) gets 1.5; with
    /// `Bridge:protocols=OpenFlow15` a 1.3-only peer gets HELLO_FAILED
    /// and a 1.4 one too, while 1.5 still works.
    #[tokio::test]
    async fn hello_negotiates_1_5_and_protocols_limit_it() {
        let all = header::SUPPORTED_BITMAP;
        let only15 = 1 << header::OFP15_VERSION;
        let (_p, m) = hello_exchange(all, 6, 0x40).await;
        assert_eq!(m, Msg::EchoReply(b"x".to_vec()));
        let (_p, m) = hello_exchange(all, 5, 0x20).await;
        assert_eq!(m, Msg::EchoReply(b"x".to_vec()));
        let (_p, m) = hello_exchange(only15, 6, 0x7e).await;
        assert_eq!(m, Msg::EchoReply(b"x".to_vec()));
        for (hdr, theirs) in [(4, 0x10), (5, 0x30)] {
            let (_p, m) = hello_exchange(only15, hdr, theirs).await;
            assert!(
                matches!(m, Msg::Error { err, .. } if err == OfError::HELLO_INCOMPATIBLE),
                "{m:?}"
            );
        }
    }

    #[tokio::test]
    async fn negotiation_versions_roles_and_errors() {
        let (mut peer, ours) = tokio::io::duplex(1 << 20);
        let roles = Arc::new(Roles::default());
        let (tx, rx) = broadcast::channel(16);
        let task = tokio::spawn(serve(
            ours,
            test_opts(ConnKind::Primary),
            Arc::new(Null),
            roles,
            rx,
            Arc::new(ConnStatus::default()),
        ));
        // Our HELLO carries the bitmap of 1.0, 1.3, 1.4 and 1.5.
        let (h, m) = read_msg(&mut peer).await;
        assert_eq!(h.version, header::OFP15_VERSION);
        assert_eq!(
            m,
            Msg::Hello {
                versions: header::SUPPORTED_BITMAP
            }
        );
        // The peer offers 1.0..1.3: 1.3 it is.
        let mut out = Vec::new();
        header::encode_hello(4, 0x1e, 1, &mut out);
        peer.write_all(&out).await.unwrap();
        send(&mut peer, &Msg::EchoRequest(b"hi".to_vec()), 4, 2).await;
        assert_eq!(read_msg(&mut peer).await.1, Msg::EchoReply(b"hi".to_vec()));

        // A 1.5 message on a 1.3 connection: BAD_VERSION, connection stays.
        let mut echo15 = Vec::new();
        xennet_openflow::encode(&Msg::EchoRequest(Vec::new()), 4, 3, &mut echo15).unwrap();
        echo15[0] = 6;
        peer.write_all(&echo15).await.unwrap();
        match read_msg(&mut peer).await {
            (h, Msg::Error { err, .. }) => {
                assert_eq!(err, OfError::BAD_VERSION);
                assert_eq!(h.xid, 3);
            }
            other => panic!("{other:?}"),
        }
        // A message type that does not exist: BAD_TYPE.
        peer.write_all(&[4, 99, 0, 8, 0, 0, 0, 4]).await.unwrap();
        match read_msg(&mut peer).await.1 {
            Msg::Error { err, .. } => {
                assert_eq!(err.typ, xennet_openflow::error::OFPET_BAD_REQUEST)
            }
            other => panic!("{other:?}"),
        }
        // As a slave, flow mods are refused with IS_SLAVE.
        let slave = RoleMsg {
            role: role::SLAVE,
            generation_id: 5,
        };
        send(&mut peer, &Msg::RoleRequest(slave), 4, 5).await;
        assert_eq!(read_msg(&mut peer).await.1, Msg::RoleReply(slave));
        send(&mut peer, &flow_mod(), 4, 6).await;
        match read_msg(&mut peer).await.1 {
            Msg::Error { err, .. } => assert_eq!(err, OfError::IS_SLAVE),
            other => panic!("{other:?}"),
        }
        // A stale generation id is refused.
        let stale = RoleMsg {
            role: role::MASTER,
            generation_id: 4,
        };
        send(&mut peer, &Msg::RoleRequest(stale), 4, 7).await;
        match read_msg(&mut peer).await.1 {
            Msg::Error { err, .. } => assert_eq!(err, OfError::ROLE_STALE),
            other => panic!("{other:?}"),
        }
        // Barrier after everything.
        send(&mut peer, &Msg::BarrierRequest, 4, 8).await;
        assert_eq!(read_msg(&mut peer).await.1, Msg::BarrierReply);
        drop(tx);
        drop(peer);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn incompatible_hello_closes_with_an_error() {
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let (_tx, rx) = broadcast::channel(16);
        let task = tokio::spawn(serve(
            ours,
            test_opts(ConnKind::Service),
            Arc::new(Null),
            Arc::new(Roles::default()),
            rx,
            Arc::new(ConnStatus::default()),
        ));
        let _ = read_msg(&mut peer).await;
        let mut out = Vec::new();
        // OpenFlow 1.1 and 1.2 only: the error comes in the peer's
        // version (1.2 here), which xennet does not decode, so its bytes
        // are checked: OFPT_ERROR, OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE.
        header::encode_hello(3, 0x0c, 1, &mut out);
        peer.write_all(&out).await.unwrap();
        let mut hdr = [0u8; 8];
        peer.read_exact(&mut hdr).await.unwrap();
        assert_eq!((hdr[0], hdr[1]), (3, 1), "{hdr:?}");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([hdr[2], hdr[3]])) - 8];
        peer.read_exact(&mut body).await.unwrap();
        assert_eq!(body[..4], [0, 0, 0, 0], "{body:?}");
        assert!(matches!(
            task.await.unwrap(),
            Err(ConnError::Incompatible(_))
        ));
    }

    /// Options of a test connection of `kind`: no probe, every version,
    /// the usual HELLO timeout, no packet-in limit.
    fn test_opts(kind: ConnKind) -> ConnOptions {
        ConnOptions {
            kind,
            probe_interval: None,
            peer: "test".into(),
            versions: header::SUPPORTED_BITMAP,
            hello_timeout: HELLO_TIMEOUT,
            packet_in_limit: None,
        }
    }

    /// Serve one connection of `kind` on a duplex pipe of `pipe` bytes.
    fn spawn_conn(
        kind: ConnKind,
        probe: Option<Duration>,
        pipe: usize,
        roles: Arc<Roles>,
        events: broadcast::Receiver<Event>,
    ) -> (
        tokio::io::DuplexStream,
        Arc<ConnStatus>,
        tokio::task::JoinHandle<Result<(), ConnError>>,
    ) {
        let (peer, ours) = tokio::io::duplex(pipe);
        let status = Arc::new(ConnStatus::default());
        let task = tokio::spawn(serve(
            ours,
            ConnOptions {
                probe_interval: probe,
                ..test_opts(kind)
            },
            Arc::new(Null),
            roles,
            events,
            status.clone(),
        ));
        (peer, status, task)
    }

    /// A connection of `kind` on a pipe of `pipe` bytes, up in 1.3, with
    /// its own roles and an event queue of `queue` messages.
    async fn connected(
        kind: ConnKind,
        probe: Option<Duration>,
        pipe: usize,
        queue: usize,
    ) -> (
        tokio::io::DuplexStream,
        Arc<ConnStatus>,
        tokio::task::JoinHandle<Result<(), ConnError>>,
        broadcast::Sender<Event>,
    ) {
        let (tx, rx) = broadcast::channel(queue);
        let (mut peer, status, task) =
            spawn_conn(kind, probe, pipe, Arc::new(Roles::default()), rx);
        hello13(&mut peer).await;
        (peer, status, task, tx)
    }

    /// Read our HELLO, answer with a 1.3 one, and make a barrier round
    /// trip (xid 1) so that the connection is up before anything else.
    async fn hello13(peer: &mut tokio::io::DuplexStream) {
        let _ = read_msg(peer).await;
        let mut out = Vec::new();
        header::encode_hello(4, 1 << 4, 1, &mut out);
        peer.write_all(&out).await.unwrap();
        send(peer, &Msg::BarrierRequest, 4, 1).await;
        assert_eq!(read_msg(peer).await, read_msg_like(1));
    }

    fn port_status(reason: u8) -> Event {
        Event::PortStatus(xennet_openflow::model::PortStatus {
            reason,
            desc: crate::ofbridge::port_desc(1, "p1", crate::ofbridge::VIF_MAC, true, 0),
        })
    }

    #[tokio::test]
    async fn many_requests_in_one_write_are_framed_in_place() {
        let (mut peer, _, task, _tx) = connected(ConnKind::Service, None, 1 << 20, 16).await;
        let mut reqs = Vec::new();
        for xid in 0..2000u32 {
            let m = Msg::EchoRequest(xid.to_be_bytes().to_vec());
            xennet_openflow::encode(&m, 4, xid, &mut reqs).unwrap();
        }
        // Cut across message boundaries.
        for piece in reqs.chunks(1000) {
            peer.write_all(piece).await.unwrap();
        }
        for xid in 0..2000u32 {
            let (h, m) = read_msg(&mut peer).await;
            assert_eq!(h.xid, xid);
            assert_eq!(m, Msg::EchoReply(xid.to_be_bytes().to_vec()));
        }
        drop(peer);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_length_below_the_header_closes_the_connection() {
        let (mut peer, _, task, _tx) = connected(ConnKind::Service, None, 1 << 16, 16).await;
        // Declared length 4: the stream cannot be framed any more.
        peer.write_all(&[4, 2, 0, 4, 0, 0, 0, 9]).await.unwrap();
        match read_msg(&mut peer).await {
            (h, Msg::Error { err, .. }) => {
                assert_eq!(err, OfError::BAD_LEN);
                assert_eq!(h.xid, 9);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(task.await.unwrap(), Err(ConnError::BadLength(4))));
    }

    #[tokio::test]
    async fn a_replaced_master_answers_nochange_as_slave() {
        let roles = Arc::new(Roles::default());
        let (_tx, rx) = broadcast::channel(16);
        let (mut a, status_a, _ta) =
            spawn_conn(ConnKind::Primary, None, 1 << 16, roles.clone(), rx);
        let (mut b, _, _tb) = spawn_conn(ConnKind::Primary, None, 1 << 16, roles, _tx.subscribe());
        hello13(&mut a).await;
        hello13(&mut b).await;
        let req = |role, generation_id| {
            Msg::RoleRequest(RoleMsg {
                role,
                generation_id,
            })
        };
        send(&mut a, &req(role::MASTER, 1), 4, 1).await;
        assert!(matches!(read_msg(&mut a).await.1, Msg::RoleReply(r) if r.role == role::MASTER));
        send(&mut b, &req(role::MASTER, 2), 4, 1).await;
        assert!(matches!(read_msg(&mut b).await.1, Msg::RoleReply(r) if r.role == role::MASTER));
        // A asks for its role without changing it: it is a slave now.
        send(&mut a, &req(role::NOCHANGE, 0), 4, 2).await;
        assert_eq!(
            read_msg(&mut a).await.1,
            Msg::RoleReply(RoleMsg {
                role: role::SLAVE,
                generation_id: 2
            })
        );
        assert_eq!(status_a.role.load(Ordering::Relaxed), role::SLAVE);
        send(&mut a, &flow_mod(), 4, 3).await;
        assert!(
            matches!(read_msg(&mut a).await.1, Msg::Error { err, .. } if err == OfError::IS_SLAVE)
        );
        assert_eq!(status_a.refused_requests.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn service_connections_get_no_async_messages_until_miss_send_len() {
        let (mut peer, _, _task, tx) = connected(ConnKind::Service, None, 1 << 16, 16).await;
        tx.send(port_status(xennet_openflow::model::OFPPR_ADD))
            .unwrap();
        send(&mut peer, &Msg::BarrierRequest, 4, 2).await;
        // The barrier reply comes first: the port status was not sent.
        // (Events and requests race, so give the event time to arrive.)
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&mut peer, &Msg::BarrierRequest, 4, 3).await;
        assert_eq!(read_msg(&mut peer).await, read_msg_like(2));
        assert_eq!(read_msg(&mut peer).await, read_msg_like(3));
        let cfg = SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        };
        send(&mut peer, &Msg::SetConfig(cfg), 4, 4).await;
        send(&mut peer, &Msg::BarrierRequest, 4, 5).await;
        assert_eq!(read_msg(&mut peer).await, read_msg_like(5));
        tx.send(port_status(xennet_openflow::model::OFPPR_ADD))
            .unwrap();
        assert!(matches!(read_msg(&mut peer).await.1, Msg::PortStatus(_)));
    }

    /// A barrier reply with `xid` as [`read_msg`] returns it.
    fn read_msg_like(xid: u32) -> (Header, Msg) {
        let mut raw = Vec::new();
        xennet_openflow::encode(&Msg::BarrierReply, 4, xid, &mut raw).unwrap();
        (Header::parse(&raw).unwrap(), Msg::BarrierReply)
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_costs_bounded_memory() {
        // Room for every event: any drop is the connection's own.
        let (mut peer, status, task, tx) = connected(ConnKind::Primary, None, 4096, 1 << 16).await;
        // 50 000 port statuses of 80 bytes: 4 MB for a peer reading none.
        for _ in 0..50_000 {
            tx.send(port_status(xennet_openflow::model::OFPPR_MODIFY))
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !tx.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(tx.is_empty(), "the connection stopped taking events");
        let dropped = status.dropped_events.load(Ordering::Relaxed);
        assert!(dropped > 0, "nothing dropped");
        let kept = 50_000 - dropped;
        assert!(
            kept * 80 <= (MAX_OUT + 4096 + 80) as u64,
            "{kept} messages queued"
        );
        // Once the peer reads, it gets what was kept, then answers again.
        send(&mut peer, &Msg::BarrierRequest, 4, 2).await;
        for _ in 0..kept {
            assert!(matches!(read_msg(&mut peer).await.1, Msg::PortStatus(_)));
        }
        assert_eq!(read_msg(&mut peer).await, read_msg_like(2));
        drop(tx);
        drop(peer);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_controller_that_stops_reading_misses_its_probe() {
        let (peer, _, task, tx) = connected(
            ConnKind::Primary,
            Some(Duration::from_millis(100)),
            4096,
            1 << 16,
        )
        .await;
        // More than the pipe holds, never read: the connection used to
        // block in write_all for ever, missing its own probe deadline.
        for _ in 0..1000 {
            tx.send(port_status(xennet_openflow::model::OFPPR_MODIFY))
                .unwrap();
        }
        let r = tokio::time::timeout(Duration::from_secs(60), task).await;
        assert!(matches!(r, Ok(Ok(Err(ConnError::ProbeTimeout)))), "{r:?}");
        drop(peer);
    }

    #[tokio::test]
    async fn miss_send_len_cuts_only_packet_ins_no_action_cut() {
        let (mut peer, _, _task, tx) = connected(ConnKind::Primary, None, 1 << 16, 16).await;
        let pin = |reason| {
            Event::PacketIn(SharedPacketIn::new(xennet_openflow::model::PacketIn {
                buffer_id: header::NO_BUFFER,
                total_len: 1000,
                reason,
                table_id: 0,
                cookie: 0,
                in_port: 1,
                metadata: 0,
                data: vec![0x55; 1000],
                ..Default::default()
            }))
        };
        // A table-miss flow with CONTROLLER:65535 sent the whole packet.
        tx.send(pin(PACKET_IN_NO_MATCH)).unwrap();
        match read_msg(&mut peer).await.1 {
            Msg::PacketIn(p) => assert_eq!(p.data.len(), 1000),
            other => panic!("{other:?}"),
        }
        // Invalid TTL: no action's max_len, miss_send_len (128) applies.
        let mut cfg = DEFAULT_ASYNC;
        cfg.packet_in_mask[0] |= 1 << PACKET_IN_INVALID_TTL;
        send(&mut peer, &Msg::SetAsync(cfg), 4, 3).await;
        send(&mut peer, &Msg::BarrierRequest, 4, 4).await;
        assert_eq!(read_msg(&mut peer).await, read_msg_like(4));
        tx.send(pin(PACKET_IN_INVALID_TTL)).unwrap();
        match read_msg(&mut peer).await.1 {
            Msg::PacketIn(p) => {
                assert_eq!(p.data.len(), usize::from(DEFAULT_MISS_SEND_LEN));
                assert_eq!(p.total_len, 1000);
            }
            other => panic!("{other:?}"),
        }
    }

    /// `controller_rate_limit`: packet-ins beyond the burst are dropped
    /// and counted, standard and `NXT_PACKET_IN2` alike (a pausing
    /// `controller` action is no way around the limit); other messages
    /// are not limited.
    #[tokio::test]
    async fn packet_ins_over_the_rate_limit_are_dropped_and_counted() {
        for format in [0u32, 2] {
            packet_ins_over_the_rate_limit(format).await;
        }
    }

    async fn packet_ins_over_the_rate_limit(format: u32) {
        let (mut peer, ours) = tokio::io::duplex(1 << 20);
        let (tx, rx) = broadcast::channel(256);
        let status = Arc::new(ConnStatus::default());
        let _task = tokio::spawn(serve(
            ours,
            ConnOptions {
                // One per second: hardly a token comes back during the test.
                packet_in_limit: Some(PacketInLimit { rate: 1, burst: 5 }),
                ..test_opts(ConnKind::Primary)
            },
            Arc::new(Null),
            Arc::new(Roles::default()),
            rx,
            status.clone(),
        ));
        hello13(&mut peer).await;
        if format != 0 {
            send(&mut peer, &Msg::NxSetPacketInFormat(format), 4, 1).await;
            // Served before any packet-in is sent: the barrier's reply.
            send(&mut peer, &Msg::BarrierRequest, 4, 3).await;
            assert!(matches!(read_msg(&mut peer).await.1, Msg::BarrierReply));
        }
        for _ in 0..50 {
            tx.send(Event::PacketIn(SharedPacketIn::new(
                xennet_openflow::model::PacketIn {
                    buffer_id: header::NO_BUFFER,
                    total_len: 60,
                    reason: PACKET_IN_NO_MATCH,
                    table_id: 0,
                    cookie: 0,
                    in_port: 1,
                    metadata: 0,
                    data: vec![0x55; 60],
                    ..Default::default()
                },
            )))
            .unwrap();
            tx.send(port_status(xennet_openflow::model::OFPPR_MODIFY))
                .unwrap();
        }
        while !tx.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        send(&mut peer, &Msg::BarrierRequest, 4, 2).await;
        let (mut pins, mut ports) = (0u64, 0);
        loop {
            match read_msg(&mut peer).await.1 {
                Msg::PacketIn(_) if format == 0 => pins += 1,
                Msg::NxPacketIn2(_) if format == 2 => pins += 1,
                Msg::PortStatus(_) => ports += 1,
                Msg::BarrierReply => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ports, 50);
        assert!(
            (5..50).contains(&pins),
            "format {format}: {pins} packet-ins sent"
        );
        assert_eq!(status.packet_ins_limited.load(Ordering::Relaxed), 50 - pins);
    }

    #[tokio::test]
    async fn replies_are_written_after_the_peer_stops_sending() {
        let (mut peer, _, task, _tx) = connected(ConnKind::Service, None, 1 << 20, 16).await;
        let mut reqs = Vec::new();
        for xid in 10..20 {
            xennet_openflow::encode(&Msg::BarrierRequest, 4, xid, &mut reqs).unwrap();
        }
        peer.write_all(&reqs).await.unwrap();
        peer.shutdown().await.unwrap();
        for xid in 10..20 {
            assert_eq!(read_msg(&mut peer).await, read_msg_like(xid));
        }
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_peer_that_neither_reads_nor_says_hello_properly_is_let_go() {
        // A pipe smaller than our HELLO plus the error: the error cannot
        // be written, and closing must not wait for ever.
        let (tx, rx) = broadcast::channel(16);
        let (mut peer, _, task) =
            spawn_conn(ConnKind::Service, None, 16, Arc::new(Roles::default()), rx);
        peer.write_all(&[4, 5, 0, 8, 0, 0, 0, 1]).await.unwrap();
        let r = tokio::time::timeout(CLOSE_FLUSH * 3, task).await;
        assert!(matches!(r, Ok(Ok(Err(ConnError::NoHello(5))))), "{r:?}");
        drop(tx);
    }

    #[tokio::test]
    async fn a_peer_that_never_says_hello_is_dropped_and_one_that_did_is_kept() {
        let (events, _) = broadcast::channel(16);
        let start = |hello_timeout| {
            let (peer, ours) = tokio::io::duplex(1 << 16);
            let task = tokio::spawn(serve(
                ours,
                ConnOptions {
                    hello_timeout,
                    ..test_opts(ConnKind::Service)
                },
                Arc::new(Null),
                Arc::new(Roles::default()),
                events.subscribe(),
                Arc::new(ConnStatus::default()),
            ));
            (peer, task)
        };
        let wait = Duration::from_millis(200);
        // Silent: it used to hold its listener slot for ever.
        let (mut silent, task) = start(wait);
        let _ = read_msg(&mut silent).await;
        let r = tokio::time::timeout(Duration::from_secs(60), task).await;
        assert!(
            matches!(r, Ok(Ok(Err(ConnError::HelloTimeout(_))))),
            "{r:?}"
        );
        // Up in time, then idle past the deadline: still served.
        let (mut up, task) = start(wait);
        hello13(&mut up).await;
        tokio::time::sleep(wait * 2).await;
        send(&mut up, &Msg::BarrierRequest, 4, 2).await;
        assert_eq!(read_msg(&mut up).await, read_msg_like(2));
        drop(up);
        task.await.unwrap().unwrap();
    }

    /// Commits bundles whose messages all have priority below 666, and
    /// records what it committed.
    #[derive(Default)]
    struct Committer(Mutex<Vec<(u16, Vec<Msg>)>>);

    impl Handler for Committer {
        fn handle(&self, _: &ConnCtx, _: Msg) -> Result<Vec<Msg>, OfError> {
            Ok(Vec::new())
        }

        fn check_bundled(&self, _: &ConnCtx, msg: &Msg) -> Result<(), OfError> {
            match msg {
                Msg::FlowMod(f) if f.priority == 777 => Err(OfError::BAD_OUT_PORT),
                _ => Ok(()),
            }
        }

        fn commit_bundle(
            &self,
            _: &ConnCtx,
            flags: u16,
            msgs: Vec<xennet_ofproto::Bundled>,
        ) -> Result<(), (usize, OfError)> {
            let msgs: Vec<Msg> = msgs
                .into_iter()
                .map(xennet_ofproto::Bundled::expand)
                .collect();
            for (i, m) in msgs.iter().enumerate() {
                if matches!(m, Msg::FlowMod(f) if f.priority == 666) {
                    return Err((i, OfError::OVERLAP));
                }
            }
            self.0.lock().unwrap().push((flags, msgs));
            Ok(())
        }
    }

    fn ctl(id: u32, typ: BundleCtrlType, flags: u16) -> Msg {
        Msg::BundleControl(BundleCtrl {
            bundle_id: id,
            typ,
            flags,
        })
    }

    fn badd(id: u32, flags: u16, priority: u16) -> Msg {
        let Msg::FlowMod(f) = flow_mod() else {
            unreachable!()
        };
        Msg::BundleAdd(BundleAdd {
            bundle_id: id,
            flags,
            msg: Box::new(Msg::FlowMod(xennet_openflow::model::FlowMod {
                priority,
                ..f
            })),
        })
    }

    /// Open, add, close, commit and discard over a real connection in
    /// 1.3 (ONF extension) and 1.4: replies echo the id with flags 0; a
    /// failing commit answers the failing message's xid with its error
    /// and the commit with OFPBFC_MSG_FAILED, and the bundle is gone; a
    /// slave may not use bundles.
    #[tokio::test]
    async fn bundles_over_a_connection() {
        use xennet_openflow::model::bundle_flags::{ATOMIC, ORDERED};
        for v in [header::OFP13_VERSION, header::OFP14_VERSION] {
            let (mut peer, ours) = tokio::io::duplex(1 << 20);
            let (_tx, rx) = broadcast::channel(16);
            let handler = Arc::new(Committer::default());
            let _task = tokio::spawn(serve(
                ours,
                test_opts(ConnKind::Service),
                handler.clone(),
                Arc::new(Roles::default()),
                rx,
                Arc::new(ConnStatus::default()),
            ));
            read_msg(&mut peer).await;
            let mut out = Vec::new();
            header::encode_hello(v, 1 << v, 1, &mut out);
            peer.write_all(&out).await.unwrap();
            let f = ATOMIC | ORDERED;
            send(&mut peer, &ctl(5, BundleCtrlType::OpenRequest, f), v, 10).await;
            assert_eq!(
                read_msg(&mut peer).await.1,
                ctl(5, BundleCtrlType::OpenReply, 0)
            );
            // Adds get no reply; a barrier proves they were handled. One
            // that fails the checks at add time is answered at once and
            // left out.
            send(&mut peer, &badd(5, f, 1), v, 11).await;
            send(&mut peer, &badd(5, f, 777), v, 9).await;
            let (h, m) = read_msg(&mut peer).await;
            assert_eq!(h.xid, 9);
            assert!(matches!(m, Msg::Error { err, .. } if err == OfError::BAD_OUT_PORT));
            send(&mut peer, &badd(5, f, 2), v, 12).await;
            send(&mut peer, &Msg::BarrierRequest, v, 13).await;
            assert_eq!(read_msg(&mut peer).await.1, Msg::BarrierReply);
            // Open again: exists.
            send(&mut peer, &ctl(5, BundleCtrlType::OpenRequest, f), v, 14).await;
            let (h, m) = read_msg(&mut peer).await;
            assert_eq!(h.xid, 14);
            assert!(matches!(m, Msg::Error { err, .. } if err == OfError::BUNDLE_EXIST));
            send(&mut peer, &ctl(5, BundleCtrlType::CloseRequest, f), v, 15).await;
            assert_eq!(
                read_msg(&mut peer).await.1,
                ctl(5, BundleCtrlType::CloseReply, 0)
            );
            send(&mut peer, &ctl(5, BundleCtrlType::CommitRequest, f), v, 16).await;
            assert_eq!(
                read_msg(&mut peer).await.1,
                ctl(5, BundleCtrlType::CommitReply, 0)
            );
            {
                let c = handler.0.lock().unwrap();
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].0, f);
                let prios: Vec<u16> = c[0]
                    .1
                    .iter()
                    .map(|m| match m {
                        Msg::FlowMod(f) => f.priority,
                        _ => 0,
                    })
                    .collect();
                assert_eq!(prios, [1, 2]);
            }
            // Gone after commit.
            send(&mut peer, &ctl(5, BundleCtrlType::CommitRequest, f), v, 17).await;
            let (_, m) = read_msg(&mut peer).await;
            assert!(matches!(m, Msg::Error { err, .. } if err == OfError::BUNDLE_BAD_ID));
            // A failing commit (implicit open by the first add).
            send(&mut peer, &badd(6, f, 1), v, 20).await;
            send(&mut peer, &badd(6, f, 666), v, 21).await;
            send(&mut peer, &badd(6, f, 3), v, 22).await;
            send(&mut peer, &ctl(6, BundleCtrlType::CommitRequest, f), v, 23).await;
            let (h, m) = read_msg(&mut peer).await;
            assert_eq!(h.xid, 21);
            let Msg::Error { err, data } = m else {
                panic!("{m:?}")
            };
            assert_eq!(err, OfError::OVERLAP);
            // The data is the add-message that carried the failing one.
            assert_eq!(data[4..8], 21u32.to_be_bytes());
            let (h, m) = read_msg(&mut peer).await;
            assert_eq!(h.xid, 23);
            assert!(
                matches!(m, Msg::Error { err, .. } if err == OfError::BUNDLE_MSG_FAILED),
                "{m:?}"
            );
            assert_eq!(handler.0.lock().unwrap().len(), 1);
            send(&mut peer, &ctl(6, BundleCtrlType::DiscardRequest, f), v, 24).await;
            let (_, m) = read_msg(&mut peer).await;
            assert!(matches!(m, Msg::Error { err, .. } if err == OfError::BUNDLE_BAD_ID));
            // Discard, and a reply type sent as a request.
            send(&mut peer, &badd(7, f, 1), v, 30).await;
            send(&mut peer, &ctl(7, BundleCtrlType::DiscardRequest, f), v, 31).await;
            assert_eq!(
                read_msg(&mut peer).await.1,
                ctl(7, BundleCtrlType::DiscardReply, 0)
            );
            send(&mut peer, &ctl(7, BundleCtrlType::OpenReply, f), v, 32).await;
            let (_, m) = read_msg(&mut peer).await;
            assert!(matches!(m, Msg::Error { err, .. } if err == OfError::BUNDLE_BAD_TYPE));
            // A slave may not.
            let slave = Msg::RoleRequest(RoleMsg {
                role: role::SLAVE,
                generation_id: 1,
            });
            send(&mut peer, &slave, v, 40).await;
            read_msg(&mut peer).await;
            send(&mut peer, &ctl(8, BundleCtrlType::OpenRequest, f), v, 41).await;
            let (_, m) = read_msg(&mut peer).await;
            assert!(matches!(m, Msg::Error { err, .. } if err == OfError::IS_SLAVE));
        }
    }
}
