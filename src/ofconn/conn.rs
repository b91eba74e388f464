//! One OpenFlow connection (OVS `ofconn` over an `rconn`/`vconn`): HELLO
//! and version negotiation, framing, echo and inactivity probes, the
//! per-connection state (role, asynchronous-message configuration, Nicira
//! formats), and dispatch of the remaining requests to a [`Handler`].
//!
//! Requests are handled one at a time in arrival order and every reply is
//! written before the next request is read, so a BARRIER_REPLY is simply
//! the reply to a barrier (OpenFlow 1.3 §6.2 is satisfied trivially).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::time::Instant;
use xennet_openflow::header::{self, Header, HEADER_LEN};
use xennet_openflow::model::{AsyncConfig, Msg, RoleMsg, SwitchConfig};
use xennet_openflow::{v10, OfError};

/// Most bytes of a failed request echoed in an ERROR (§7.4.4: at least 64).
const ERROR_DATA_LEN: usize = 64;
/// Default `miss_send_len` (OpenFlow `OFPCML_DEFAULT` is 128 bytes).
pub const DEFAULT_MISS_SEND_LEN: u16 = 128;

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

/// An asynchronous message for the connections of one bridge.
#[derive(Debug, Clone)]
pub enum Event {
    /// Packet-in (reason in the message).
    PacketIn(xennet_openflow::model::PacketIn),
    /// Flow removed.
    FlowRemoved(xennet_openflow::model::FlowRemoved),
    /// Port added, removed or changed.
    PortStatus(xennet_openflow::model::PortStatus),
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
}

/// Master election state shared by the connections of one bridge
/// (§6.3.5: one master; a new master turns the old one into a slave;
/// generation ids reject stale requests).
#[derive(Debug, Default)]
pub struct Roles {
    inner: Mutex<RolesInner>,
}

#[derive(Debug, Default)]
struct RolesInner {
    generation: Option<u64>,
    master: Option<u64>,
}

impl Roles {
    fn master(&self) -> Option<u64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).master
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
        Ok(())
    }

    fn forget(&self, conn: u64) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if r.master == Some(conn) {
            r.master = None;
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
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Connection statistics shared with the manager (for `is_connected`,
/// `role` and logs).
#[derive(Debug, Default)]
pub struct ConnStatus {
    /// Negotiated version, 0 before HELLO.
    pub version: std::sync::atomic::AtomicU8,
    /// Current role.
    pub role: std::sync::atomic::AtomicU32,
    /// Asynchronous messages dropped because this connection was slow.
    pub dropped_events: AtomicU64,
}

struct State {
    id: u64,
    version: u8,
    role: u32,
    async_cfg: AsyncConfig,
    config: SwitchConfig,
    kind: ConnKind,
    /// Nicira formats (OpenFlow 1.0 only): `NXT_SET_FLOW_FORMAT`,
    /// `NXT_SET_PACKET_IN_FORMAT`, `NXT_FLOW_MOD_TABLE_ID`.
    v10_enc: v10::EncodeOptions,
    v10_dec: v10::DecodeOptions,
}

impl State {
    /// Append `msg` in this connection's version and formats.
    fn encode(&self, msg: &Msg, xid: u32, out: &mut Vec<u8>) {
        let r = if self.version == header::OFP10_VERSION {
            v10::encode_with(msg, xid, &self.v10_enc, out)
        } else {
            xennet_openflow::encode(msg, self.version, xid, out)
        };
        if let Err(e) = r {
            tracing::debug!("conn {}: cannot encode {msg:?}: {e}", self.id);
        }
    }

    fn decode(&self, raw: &[u8]) -> Result<(Header, Msg), xennet_openflow::DecodeError> {
        if self.version == header::OFP10_VERSION {
            let h = Header::parse(raw)?;
            Ok((h, v10::decode_with(&h, raw, &self.v10_dec)?))
        } else {
            xennet_openflow::decode(raw)
        }
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
}

/// Serve one connection until it closes. `events` delivers the bridge's
/// asynchronous messages.
///
/// # Errors
/// Why the connection ended abnormally (a clean close by the peer is `Ok`).
pub async fn serve<S>(
    mut stream: S,
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
    let mut st = State {
        id,
        version: 0,
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
        v10_dec: v10::DecodeOptions::default(),
    };
    let mut out = Vec::new();
    header::encode_hello(header::OFP13_VERSION, header::SUPPORTED_BITMAP, 0, &mut out);
    stream.write_all(&out).await?;
    out.clear();

    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut last_rx = Instant::now();
    let mut probe_sent = false;
    let result = loop {
        // Handle every complete message already buffered.
        while let Some(n) = header::frame_len(&buf) {
            if buf.len() < n {
                break;
            }
            let msg: Vec<u8> = buf.drain(..n).collect();
            if let Err(e) = on_message(&mut st, &msg, &*handler, &roles, &mut out) {
                stream.write_all(&out).await?;
                roles.forget(id);
                return Err(e);
            }
            status.version.store(st.version, Ordering::Relaxed);
            status.role.store(st.role, Ordering::Relaxed);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let probe_at = opts.probe_interval.map(|p| last_rx + p);
        tokio::select! {
            r = stream.read(&mut chunk) => {
                match r {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        last_rx = Instant::now();
                        probe_sent = false;
                    }
                    Err(e) => break Err(e.into()),
                }
            }
            ev = events.recv(), if st.version != 0 => {
                match ev {
                    Ok(ev) => {
                        if let Some(msg) = filter_event(&st, roles.master(), ev) {
                            st.encode(&msg, 0, &mut out);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        status.dropped_events.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!("conn {id} ({}): {n} asynchronous messages dropped (slow connection)", opts.peer);
                    }
                    Err(broadcast::error::RecvError::Closed) => break Ok(()),
                }
            }
            _ = sleep_until(probe_at) => {
                if probe_sent {
                    break Err(ConnError::ProbeTimeout);
                }
                if st.version != 0 {
                    st.encode(&Msg::EchoRequest(Vec::new()), 0, &mut out);
                }
                probe_sent = true;
                last_rx = Instant::now();
            }
        }
    };
    roles.forget(id);
    result
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Append an ERROR answering the request `req`.
fn push_error(version: u8, err: OfError, req: &[u8], out: &mut Vec<u8>) {
    let h = Header::parse(req).ok();
    let msg = Msg::Error {
        err,
        data: req[..req.len().min(ERROR_DATA_LEN)].to_vec(),
    };
    let _ = xennet_openflow::encode(&msg, version, h.map_or(0, |h| h.xid), out);
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
        push_error(reply_version, OfError::BAD_LEN, raw, out);
        return Ok(());
    }
    let typ = raw[1];
    if st.version == 0 {
        if typ != header::OFPT_HELLO {
            push_error(reply_version, OfError::BAD_TYPE, raw, out);
            return Err(ConnError::NoHello(typ));
        }
        let versions = match header::decode_hello(raw) {
            Ok(Msg::Hello { versions }) => versions,
            _ => 1u32.checked_shl(u32::from(raw[0])).unwrap_or(0),
        };
        return match header::negotiate(header::SUPPORTED_BITMAP, versions) {
            Some(v) => {
                st.version = v;
                Ok(())
            }
            None => {
                let msg = Msg::Error {
                    err: OfError::HELLO_INCOMPATIBLE,
                    data: b"we support OpenFlow 1.0 and 1.3".to_vec(),
                };
                let v = raw[0].clamp(header::OFP10_VERSION, header::OFP13_VERSION);
                let _ = xennet_openflow::encode(&msg, v, 0, out);
                Err(ConnError::Incompatible(versions))
            }
        };
    }
    if raw[0] != st.version && typ != header::OFPT_HELLO {
        push_error(st.version, OfError::BAD_VERSION, raw, out);
        return Ok(());
    }
    let (h, msg) = match st.decode(raw) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!("conn {}: bad message type {typ}: {e}", st.id);
            push_error(st.version, e.err, raw, out);
            return Ok(());
        }
    };
    let v = st.version;
    let xid = h.xid;
    let reply = |st: &State, m: Msg, out: &mut Vec<u8>| st.encode(&m, xid, out);
    match msg {
        Msg::Hello { .. } | Msg::EchoReply(_) => {}
        Msg::EchoRequest(data) => reply(st, Msg::EchoReply(data), out),
        Msg::BarrierRequest => reply(st, Msg::BarrierReply, out),
        Msg::GetConfigRequest => reply(st, Msg::GetConfigReply(st.config), out),
        Msg::SetConfig(c) => st.config = c,
        Msg::GetAsyncRequest => reply(st, Msg::GetAsyncReply(st.async_cfg), out),
        Msg::SetAsync(c) => st.async_cfg = c,
        Msg::NxSetFlowFormat(0) => st.v10_enc.nxm = false,
        Msg::NxSetFlowFormat(2) => st.v10_enc.nxm = true,
        Msg::NxSetFlowFormat(_) => push_error(v, OfError::BAD_REQUEST_EPERM, raw, out),
        Msg::NxSetPacketInFormat(0) => st.v10_enc.nx_packet_in = false,
        Msg::NxSetPacketInFormat(1) => st.v10_enc.nx_packet_in = true,
        Msg::NxSetPacketInFormat(_) => push_error(v, OfError::BAD_REQUEST_EPERM, raw, out),
        Msg::NxFlowModTableId(on) => st.v10_dec.flow_mod_table_id = on,
        Msg::NxSetControllerId(_) => {}
        Msg::RoleRequest(req) => {
            if req.role > role::SLAVE {
                push_error(v, OfError::BAD_ROLE, raw, out);
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
                Err(e) => push_error(v, e, raw, out),
            }
        }
        msg => {
            // A slave that lost mastership to another connection.
            if st.role == role::MASTER && roles.master() != Some(st.id) {
                st.role = role::SLAVE;
            }
            if st.role == role::SLAVE && is_write(&msg) {
                push_error(v, OfError::IS_SLAVE, raw, out);
                return Ok(());
            }
            let ctx = ConnCtx { version: v };
            match handler.handle(&ctx, msg) {
                Ok(replies) => {
                    for m in replies {
                        reply(st, m, out);
                    }
                }
                Err(e) => push_error(v, e, raw, out),
            }
        }
    }
    Ok(())
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
    )
}

/// Whether this connection wants `ev`, and in what form.
fn filter_event(st: &State, master: Option<u64>, ev: Event) -> Option<Msg> {
    let mut role = st.role;
    if role == role::MASTER && master != Some(st.id) {
        role = role::SLAVE;
    }
    let idx = usize::from(role == role::SLAVE);
    let wants = |mask: &[u32; 2], reason: u8| {
        mask[idx] & 1u32.checked_shl(u32::from(reason)).unwrap_or(0) != 0
    };
    match ev {
        Event::PacketIn(mut p) => {
            if !wants(&st.async_cfg.packet_in_mask, p.reason) {
                return None;
            }
            if st.kind == ConnKind::Service && st.config.miss_send_len == 0 {
                return None;
            }
            // Table-miss packet-ins are cut to this connection's
            // miss_send_len (action packet-ins were cut by max_len).
            if p.reason == 0 && st.config.miss_send_len != xennet_openflow::model::OFPCML_NO_BUFFER
            {
                p.data.truncate(usize::from(st.config.miss_send_len));
            }
            Some(Msg::PacketIn(p))
        }
        Event::FlowRemoved(f) => {
            wants(&st.async_cfg.flow_removed_mask, f.reason).then_some(Msg::FlowRemoved(f))
        }
        Event::PortStatus(p) => {
            wants(&st.async_cfg.port_status_mask, p.reason).then_some(Msg::PortStatus(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_openflow::model::{FlowMod, FlowModCommand, Instructions, Match};

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
        Msg::FlowMod(FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 1,
            buffer_id: header::NO_BUFFER,
            out_port: xennet_openflow::model::OFPP_ANY,
            out_group: xennet_openflow::model::OFPG_ANY,
            flags: 0,
            matcher: Match::CATCHALL,
            instructions: Instructions::default(),
        })
    }

    #[tokio::test]
    async fn negotiation_versions_roles_and_errors() {
        let (mut peer, ours) = tokio::io::duplex(1 << 20);
        let roles = Arc::new(Roles::default());
        let (tx, rx) = broadcast::channel(16);
        let task = tokio::spawn(serve(
            ours,
            ConnOptions {
                kind: ConnKind::Primary,
                probe_interval: None,
                peer: "test".into(),
            },
            Arc::new(Null),
            roles,
            rx,
            Arc::new(ConnStatus::default()),
        ));
        // Our HELLO carries the bitmap of 1.0 and 1.3.
        let (h, m) = read_msg(&mut peer).await;
        assert_eq!(h.version, header::OFP13_VERSION);
        assert_eq!(
            m,
            Msg::Hello {
                versions: header::SUPPORTED_BITMAP
            }
        );
        // The peer offers 1.0..1.5: 1.3 it is.
        let mut out = Vec::new();
        header::encode_hello(6, 0x7e, 1, &mut out);
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
            ConnOptions {
                kind: ConnKind::Service,
                probe_interval: None,
                peer: "test".into(),
            },
            Arc::new(Null),
            Arc::new(Roles::default()),
            rx,
            Arc::new(ConnStatus::default()),
        ));
        let _ = read_msg(&mut peer).await;
        let mut out = Vec::new();
        header::encode_hello(6, 1 << 6, 1, &mut out);
        peer.write_all(&out).await.unwrap();
        match read_msg(&mut peer).await.1 {
            Msg::Error { err, .. } => assert_eq!(err, OfError::HELLO_INCOMPATIBLE),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            task.await.unwrap(),
            Err(ConnError::Incompatible(_))
        ));
    }
}
