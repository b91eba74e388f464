//! Cross-process attach for the emulated hypervisor: a guest process hands
//! its vif to xennetd over a Unix stream socket.
//!
//! This socket stands in for xenstore and the hypervisor until the
//! xenstore work replaces the handshake with real xenstore keys: the
//! [`AttachRequest`] carries what the frontend would write under
//! `device/vif/<handle>/`, and the four file descriptors (SCM_RIGHTS) are
//! what the hypervisor would give the backend: guest memory, the grant
//! table, and the two directions of the event channel.
//!
//! Wire format: one JSON object terminated by `\n`, whose first byte
//! carries the fds `[guest memory memfd, grant table memfd, eventfd
//! frontend→backend, eventfd backend→frontend]`; the reply is one JSON
//! line, [`AttachReply`].
//!
//! Everything received is validated (fd count and kinds, memfd sizes and
//! seals against the announced sizes); a hostile guest gets an error, never
//! a panic.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};

use super::{EmulatedDomain, EmulatedGrants, EventFdChannel, GRANT_ENTRY_SIZE};
use crate::error::VifError;
use crate::grant::DomId;
use crate::mem::SharedMem;
use crate::netback::FrontendConfig;
use crate::netback::Vif;
use crate::netfront::{gref_of, Netfront, RX_RING_FRAME, TX_RING_FRAME};
use crate::ring::XEN_PAGE_SIZE;
use crate::xenbus::FrontendKeys;

/// Largest guest memory accepted, in frames (1 GiB).
pub const MAX_FRAMES: u32 = 1 << 18;
/// Largest grant table accepted, in entries.
pub const MAX_GRANTS: u32 = 1 << 16;
/// Largest attach message in bytes.
const MAX_MESSAGE: usize = 64 * 1024;

fn yes() -> bool {
    true
}

/// The frontend's connection parameters (its xenstore keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// Guest domain id.
    pub domid: DomId,
    /// Device handle (`vif<domid>.<handle>`).
    pub handle: u16,
    /// MAC address (`mac`).
    pub mac: [u8; 6],
    /// Grant reference of the TX ring (`tx-ring-ref`).
    pub tx_ring_ref: u32,
    /// Grant reference of the RX ring (`rx-ring-ref`).
    pub rx_ring_ref: u32,
    /// Event channel port (`event-channel`); informational here, the
    /// eventfds are the channel.
    pub event_channel: u32,
    /// `request-rx-copy`; must be true.
    pub request_rx_copy: bool,
    /// The frontend accepts `NETRXF_csum_blank` (`feature-no-csum-offload`
    /// = 0).
    pub feature_rx_csum: bool,
    /// `feature-sg` (default true).
    #[serde(default = "yes")]
    pub feature_sg: bool,
    /// `feature-gso-tcpv4` (default false).
    #[serde(default)]
    pub feature_gso_tcpv4: bool,
    /// `feature-gso-tcpv6` (default false).
    #[serde(default)]
    pub feature_gso_tcpv6: bool,
    /// Guest memory size in 4 KiB frames.
    pub nr_frames: u32,
    /// Grant table size in entries.
    pub nr_grants: u32,
}

impl AttachRequest {
    /// The frontend configuration for [`crate::Vif::connect`].
    pub fn frontend_config(&self) -> FrontendConfig {
        FrontendConfig {
            domid: self.domid,
            handle: self.handle,
            tx_ring_ref: self.tx_ring_ref,
            rx_ring_ref: self.rx_ring_ref,
            rx_copy: self.request_rx_copy,
            sg: self.feature_sg,
            rx_csum_blank: self.feature_rx_csum,
            gso_tcpv4: self.feature_gso_tcpv4,
            gso_tcpv6: self.feature_gso_tcpv6,
            rx_notify: true,
            multicast_control: false,
        }
    }
}

/// The backend's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachReply {
    /// Whether the vif was attached.
    pub ok: bool,
    /// OpenFlow port number, when attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ofport: Option<u32>,
    /// Interface name (`vif1.0`), when attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why not, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AttachReply {
    /// A success reply.
    pub fn ok(ofport: u32, name: String) -> Self {
        AttachReply {
            ok: true,
            ofport: Some(ofport),
            name: Some(name),
            error: None,
        }
    }

    /// A refusal.
    pub fn error(msg: impl Into<String>) -> Self {
        AttachReply {
            ok: false,
            ofport: None,
            name: None,
            error: Some(msg.into()),
        }
    }
}

fn attach_err(msg: impl Into<String>) -> VifError {
    VifError::Attach(msg.into())
}

/// Read one `\n`-terminated line (at most [`MAX_MESSAGE`] bytes), after
/// `initial` bytes already received.
fn read_line(stream: &UnixStream, mut buf: Vec<u8>) -> Result<Vec<u8>, VifError> {
    let mut s = stream;
    loop {
        if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(pos);
            return Ok(buf);
        }
        if buf.len() > MAX_MESSAGE {
            return Err(attach_err("message too long"));
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(attach_err("connection closed before end of message"));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
}

impl Netfront {
    /// Attach this guest's vif `handle` with MAC `mac` to the backend at
    /// the other end of `stream`; blocks for the reply.
    pub fn attach(
        &mut self,
        stream: &UnixStream,
        handle: u16,
        mac: [u8; 6],
    ) -> Result<AttachReply, VifError> {
        if self.num_queues() != 1 || self.split_event_channels() {
            return Err(attach_err(
                "the legacy attach carries one queue with one event channel",
            ));
        }
        let req = AttachRequest {
            domid: self.domid(),
            handle,
            mac,
            tx_ring_ref: gref_of(TX_RING_FRAME),
            rx_ring_ref: gref_of(RX_RING_FRAME),
            event_channel: EVENT_CHANNEL_PORT,
            request_rx_copy: true,
            feature_rx_csum: self.feature_rx_csum,
            feature_sg: self.feature_sg,
            feature_gso_tcpv4: self.feature_gso_tcpv4,
            feature_gso_tcpv6: self.feature_gso_tcpv6,
            nr_frames: self.nr_frames(),
            nr_grants: self.nr_grants(),
        };
        self.hello(stream, &req)
    }

    /// Sends `req` with this guest's descriptors and waits for the reply.
    fn hello(&self, stream: &UnixStream, req: &impl Serialize) -> Result<AttachReply, VifError> {
        let mut msg = serde_json::to_vec(req)?;
        msg.push(b'\n');
        let fds: Vec<RawFd> = self.attach_fds().iter().map(|f| f.as_raw_fd()).collect();
        send_with_fds(stream, &msg, &fds)?;
        let line = read_line(stream, Vec::new())?;
        Ok(serde_json::from_slice(&line)?)
    }
}

fn send_with_fds(stream: &UnixStream, msg: &[u8], fds: &[RawFd]) -> Result<(), VifError> {
    let iov = [IoSlice::new(msg)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let n = sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    if n < msg.len() {
        let mut s = stream;
        s.write_all(msg.get(n..).unwrap_or(&[]))?;
    }
    Ok(())
}

/// Whether `fd` is an eventfd (per `/proc/self/fd`).
fn is_eventfd(fd: BorrowedFd<'_>) -> bool {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    std::fs::read_link(path).is_ok_and(|p| p.as_os_str() == "anon_inode:[eventfd]")
}

/// Check that `fd` is a regular file of exactly `len` bytes that can no
/// longer shrink.
fn check_memfd(fd: BorrowedFd<'_>, len: usize, what: &str) -> Result<(), VifError> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(attach_err(format!("{what}: not a regular file")));
    }
    if usize::try_from(st.st_size).ok() != Some(len) {
        return Err(attach_err(format!(
            "{what}: size {} bytes, announced {len}",
            st.st_size
        )));
    }
    let seals = fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS)
        .map_err(|e| attach_err(format!("{what}: cannot read seals: {e}")))?;
    if SealFlag::from_bits_truncate(seals) & SealFlag::F_SEAL_SHRINK != SealFlag::F_SEAL_SHRINK {
        return Err(attach_err(format!(
            "{what}: memfd must be sealed with F_SEAL_SHRINK"
        )));
    }
    Ok(())
}

/// Most descriptors one message may carry: the two memfds and an eventfd
/// pair per channel (two spare).
const MAX_FDS: usize = 2 + 2 * MAX_CHANNELS + 2;

/// Bytes of ancillary data for [`MAX_FDS`] descriptors (`CMSG_SPACE`):
/// one `struct cmsghdr` (16 bytes on LP64) and the descriptors, rounded
/// up to the header's alignment.
const CONTROL_LEN: usize = {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let align = std::mem::size_of::<usize>();
    hdr + (MAX_FDS * std::mem::size_of::<RawFd>()).div_ceil(align) * align
};

/// A receive buffer for ancillary data, aligned as `struct cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// What one `recvmsg` brought.
struct Received {
    /// Bytes of data.
    len: usize,
    /// Every descriptor the kernel installed for us, owned: closed on drop
    /// whatever happens next.
    fds: Vec<OwnedFd>,
    /// `MSG_CTRUNC`: more descriptors came than [`MAX_FDS`] (the kernel
    /// closed those that did not fit; `fds` holds the others).
    truncated: bool,
}

/// `recvmsg(2)` into `buf` with `SCM_RIGHTS` descriptors (close-on-exec).
///
/// The control messages are walked even when truncated: nix's
/// `RecvMsg::cmsgs` refuses to iterate after `MSG_CTRUNC`, which left the
/// descriptors that did fit open in our table for ever.
fn recv_with_fds(stream: &UnixStream, buf: &mut [u8]) -> Result<Received, VifError> {
    let mut control = Control([0; CONTROL_LEN]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `msghdr` is plain data (pointers and integers); all zeroes is
    // an empty header, filled in below.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.0.as_mut_ptr().cast();
    hdr.msg_controllen = CONTROL_LEN as _;
    // SAFETY: `hdr` points at `iov` (over `buf`) and at `control`, both
    // live and exclusively borrowed for the call; the kernel writes only
    // within the lengths given.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    let len = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    // `msg_controllen` is a `size_t` with glibc, a `socklen_t` with musl.
    #[allow(clippy::useless_conversion)]
    let used = usize::try_from(hdr.msg_controllen)
        .unwrap_or(0)
        .min(CONTROL_LEN);
    let fds = scm_rights(control.0.get(..used).unwrap_or(&[]))
        .into_iter()
        // SAFETY: the kernel just installed each of these descriptors in
        // our table for us (SCM_RIGHTS, each listed once); nothing else
        // owns them, so taking ownership closes each exactly once.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    Ok(Received {
        len,
        fds,
        truncated: hdr.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// The descriptors of every `SOL_SOCKET`/`SCM_RIGHTS` message in the
/// ancillary data `control` (Linux layout: `cmsg_len` as a `usize`, then
/// level and type as `c_int`s, the data after the header, the next
/// header at `cmsg_len` rounded up to a `usize`).
fn scm_rights(control: &[u8]) -> Vec<RawFd> {
    const WORD: usize = std::mem::size_of::<usize>();
    const INT: usize = std::mem::size_of::<libc::c_int>();
    let hdr_len = std::mem::size_of::<libc::cmsghdr>();
    let int_at = |b: &[u8], at: usize| -> Option<libc::c_int> {
        Some(libc::c_int::from_ne_bytes(
            b.get(at..at + INT)?.try_into().ok()?,
        ))
    };
    let mut fds = Vec::new();
    let mut off: usize = 0;
    while let Some(h) = control.get(off..off.saturating_add(hdr_len)) {
        let Some(cmsg_len) = h
            .get(..WORD)
            .and_then(|b| b.try_into().ok())
            .map(usize::from_ne_bytes)
        else {
            break;
        };
        if cmsg_len < hdr_len {
            break;
        }
        let data = control
            .get(off + hdr_len..off.saturating_add(cmsg_len))
            .unwrap_or(&[]);
        if int_at(h, WORD) == Some(libc::SOL_SOCKET)
            && int_at(h, WORD + INT) == Some(libc::SCM_RIGHTS)
        {
            fds.extend(data.chunks_exact(INT).filter_map(|c| int_at(c, 0)));
        }
        off = off.saturating_add(cmsg_len.div_ceil(WORD) * WORD);
    }
    fds
}

/// Receive one message (its line and its descriptors) on `stream`.
///
/// # Errors
/// [`VifError::TooManyFds`] when more than [`MAX_FDS`] descriptors came
/// (every one received is closed), [`VifError::Attach`] on EOF or an
/// overlong line, I/O errors.
fn recv_message(stream: &UnixStream) -> Result<(Vec<u8>, Vec<OwnedFd>), VifError> {
    let mut buf = vec![0u8; 4096];
    let r = recv_with_fds(stream, &mut buf)?;
    if r.truncated {
        return Err(VifError::TooManyFds {
            received: r.fds.len(),
            max: MAX_FDS,
        });
    }
    buf.truncate(r.len);
    if r.len == 0 {
        return Err(attach_err("connection closed"));
    }
    Ok((read_line(stream, buf)?, r.fds))
}

/// Most event channels a registered domain may have (two per queue).
pub const MAX_CHANNELS: usize = 2 * crate::netback::MAX_QUEUES;

/// Check the announced sizes and the descriptors `[memory, grant table,
/// then per port: eventfd frontend→backend, eventfd backend→frontend]`,
/// and map the memory and the grant table: the domain as the emulated
/// hypervisor keeps it, with event channel `ports` (distinct, at most
/// [`MAX_CHANNELS`]).
fn check_domain(
    domid: DomId,
    nr_frames: u32,
    nr_grants: u32,
    ports: &[u32],
    fds: Vec<OwnedFd>,
) -> Result<RegisteredDomain, VifError> {
    if ports.is_empty() || ports.len() > MAX_CHANNELS {
        return Err(attach_err(format!(
            "{} event channels: 1 to {MAX_CHANNELS} are supported",
            ports.len()
        )));
    }
    for (i, p) in ports.iter().enumerate() {
        if ports.get(..i).unwrap_or(&[]).contains(p) {
            return Err(attach_err(format!("event channel port {p} given twice")));
        }
    }
    if fds.len() != 2 + 2 * ports.len() {
        return Err(attach_err(format!(
            "expected {} file descriptors, got {}",
            2 + 2 * ports.len(),
            fds.len()
        )));
    }
    let mut fds = fds.into_iter();
    let (Some(mem_fd), Some(grant_fd)) = (fds.next(), fds.next()) else {
        return Err(attach_err("missing memory descriptors"));
    };
    if nr_frames == 0 || nr_frames > MAX_FRAMES {
        return Err(attach_err(format!("nr_frames {nr_frames} out of range")));
    }
    if nr_grants == 0 || nr_grants > MAX_GRANTS {
        return Err(attach_err(format!("nr_grants {nr_grants} out of range")));
    }
    let mem_len = nr_frames as usize * XEN_PAGE_SIZE;
    let table_len = nr_grants as usize * GRANT_ENTRY_SIZE;
    check_memfd(mem_fd.as_fd_ref(), mem_len, "guest memory")?;
    check_memfd(grant_fd.as_fd_ref(), table_len, "grant table")?;
    let mut channels = Vec::with_capacity(ports.len());
    for &port in ports {
        let (Some(f2b), Some(b2f)) = (fds.next(), fds.next()) else {
            return Err(attach_err("missing event channel descriptors"));
        };
        if !is_eventfd(f2b.as_fd_ref()) || !is_eventfd(b2f.as_fd_ref()) {
            return Err(attach_err("event channel descriptors must be eventfds"));
        }
        channels.push((port, f2b, b2f));
    }
    let mem = Arc::new(SharedMem::map_fd(mem_fd.as_fd_ref(), mem_len)?);
    let table = Arc::new(SharedMem::map_fd(grant_fd.as_fd_ref(), table_len)?);
    Ok(RegisteredDomain {
        domid,
        mem,
        nr_frames,
        table,
        nr_grants,
        event_channel: ports.first().copied().unwrap_or(0),
        channels,
        bindings: Arc::new(()),
    })
}

/// Receive an attach request on `stream` (backend side) and build the
/// emulated hypervisor's view of the guest. The caller connects the vif
/// with [`AttachRequest::frontend_config`] and answers with
/// [`send_reply`].
pub fn recv_attach(
    stream: &UnixStream,
    backend_domid: DomId,
) -> Result<(AttachRequest, EmulatedDomain), VifError> {
    match recv_hello(stream, backend_domid)? {
        Hello::Attach(req, domain) => Ok((req, domain)),
        Hello::Register(_) => Err(attach_err("expected an attach request")),
    }
}

/// A guest's first message on the attach socket.
#[derive(Debug)]
pub enum Hello {
    /// The legacy all-in-one attach (frontend keys in the message).
    Attach(AttachRequest, EmulatedDomain),
    /// The hypervisor part only; the frontend keys go through xenstore.
    Register(RegisteredDomain),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HelloMsg {
    Attach(AttachRequest),
    Register(RegisterRequest),
}

/// Receive either message kind (backend side).
pub fn recv_hello(stream: &UnixStream, backend_domid: DomId) -> Result<Hello, VifError> {
    let (line, fds) = recv_message(stream)?;
    match serde_json::from_slice::<HelloMsg>(&line)? {
        // The legacy attach is a registration bound at once to the
        // frontend's one event channel.
        HelloMsg::Attach(req) => {
            let port = req.event_channel;
            let dom = check_domain(req.domid, req.nr_frames, req.nr_grants, &[port], fds)?;
            let domain = dom.bind(backend_domid, port)?;
            Ok(Hello::Attach(req, domain))
        }
        HelloMsg::Register(req) => {
            if !req.register {
                return Err(attach_err("register must be true"));
            }
            let ports = if req.event_channels.is_empty() {
                vec![req.event_channel]
            } else {
                req.event_channels.clone()
            };
            let dom = check_domain(req.domid, req.nr_frames, req.nr_grants, &ports, fds)?;
            Ok(Hello::Register(dom))
        }
    }
}

/// A domain registering with the emulated hypervisor: its memory, grant
/// table and one event channel (port `event_channel`), without any
/// frontend parameters, which then travel through xenstore. Descriptors
/// as for [`AttachRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Always true: tells this message from an [`AttachRequest`].
    pub register: bool,
    /// The domain id.
    pub domid: DomId,
    /// Guest memory size in 4 KiB frames.
    pub nr_frames: u32,
    /// Grant table size in entries.
    pub nr_grants: u32,
    /// The port number of the event channel the eventfds implement (what
    /// the frontend writes as `event-channel`), when `event_channels` is
    /// empty.
    pub event_channel: u32,
    /// The ports of every event channel, in the order of the eventfd
    /// pairs after the two memfds (multi-queue and split channels); empty
    /// means the one `event_channel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_channels: Vec<u32>,
}

/// A registered domain as the emulated hypervisor keeps it: a backend
/// resolves a frontend's grant references and event-channel port through
/// it ([`RegisteredDomain::bind`]).
#[derive(Debug)]
pub struct RegisteredDomain {
    /// The domain id.
    pub domid: DomId,
    mem: Arc<SharedMem>,
    nr_frames: u32,
    table: Arc<SharedMem>,
    nr_grants: u32,
    /// The first registered event-channel port.
    pub event_channel: u32,
    /// Every channel: port, frontend→backend and backend→frontend eventfds.
    channels: Vec<(u32, OwnedFd, OwnedFd)>,
    /// One clone per live bound channel end ([`RegisteredDomain::channel`]).
    bindings: Arc<()>,
}

/// What a registered domain's backends hold right now
/// ([`RegisteredDomain::usage`]): a backend that let go of a vif holds
/// nothing, so anything left after a disconnect is a leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomainUsage {
    /// Ring pages mapped (`map_ring`, as `GNTTABOP_map_grant_ref` on
    /// Xen) and not yet unmapped (dropped).
    pub ring_mappings: usize,
    /// Grant-copy handles ([`EmulatedGrants`]) alive.
    pub grant_handles: usize,
    /// Event channels bound (`EVTCHNOP_bind_interdomain`) and not yet
    /// closed.
    pub bound_channels: usize,
}

impl RegisteredDomain {
    /// Grant operations on the domain's memory for `backend_domid`, and
    /// the backend end of event channel `port` (the `event-channel` key):
    /// an error if the domain has no such port (as `EVTCHNOP_bind_interdomain`).
    pub fn bind(&self, backend_domid: DomId, port: u32) -> Result<EmulatedDomain, VifError> {
        let evtchn = self.channel(port)?;
        Ok(EmulatedDomain {
            grants: self.grants(backend_domid),
            evtchn,
        })
    }

    /// Bind every event channel of a frontend's keys as a backend in
    /// `backend_domid` would, and connect the vif: its queues' rings and
    /// channel(s) and, when the frontend gave one, its control ring. An
    /// unknown port or a bad ring grant is an error.
    pub fn connect_vif(
        &self,
        name: String,
        backend_domid: DomId,
        keys: &FrontendKeys,
    ) -> Result<Vif, VifError> {
        Vif::connect_frontend(
            name,
            backend_domid,
            keys,
            Box::new(self.grants(backend_domid)),
            |port| Ok(Box::new(self.channel(port)?)),
        )
    }

    /// What backends hold of this domain now (see [`DomainUsage`]).
    /// Counted from the shared handles themselves: every
    /// [`EmulatedGrants`] holds the memory and the grant table, every
    /// mapped ring page the memory only, every bound channel end a
    /// binding token.
    pub fn usage(&self) -> DomainUsage {
        let mem = Arc::strong_count(&self.mem);
        let table = Arc::strong_count(&self.table);
        DomainUsage {
            ring_mappings: mem.saturating_sub(table),
            grant_handles: table.saturating_sub(1),
            bound_channels: Arc::strong_count(&self.bindings).saturating_sub(1),
        }
    }

    /// Grant operations on the domain's memory for `backend_domid`.
    pub fn grants(&self, backend_domid: DomId) -> EmulatedGrants {
        EmulatedGrants::new(
            self.domid,
            backend_domid,
            self.mem.clone(),
            self.nr_frames,
            self.table.clone(),
            self.nr_grants,
        )
    }

    /// The backend end of event channel `port`: an error if the domain
    /// has no such port (as `EVTCHNOP_bind_interdomain`).
    pub fn channel(&self, port: u32) -> Result<EventFdChannel, VifError> {
        let (_, f2b, b2f) = self
            .channels
            .iter()
            .find(|(p, _, _)| *p == port)
            .ok_or_else(|| {
                attach_err(format!(
                    "domain {} has no event channel port {port}",
                    self.domid
                ))
            })?;
        Ok(EventFdChannel::from_fds(b2f.try_clone()?, f2b.try_clone()?)?.counted(&self.bindings))
    }
}

impl Netfront {
    /// Register this guest's domain (memory, grant table, every queue's
    /// event channel ports, [`Netfront::all_event_ports`]; port
    /// [`EVENT_CHANNEL_PORT`] for a single channel) with the emulated
    /// hypervisor at the other end of `stream`; blocks for the reply.
    pub fn register(&mut self, stream: &UnixStream) -> Result<AttachReply, VifError> {
        let ports = self.all_event_ports();
        let req = RegisterRequest {
            register: true,
            domid: self.domid(),
            nr_frames: self.nr_frames(),
            nr_grants: self.nr_grants(),
            event_channel: EVENT_CHANNEL_PORT,
            event_channels: if ports.len() > 1 { ports } else { Vec::new() },
        };
        self.hello(stream, &req)
    }
}

/// The event-channel port number an emulated guest's one channel has.
pub const EVENT_CHANNEL_PORT: u32 = 1;

/// Send the reply line.
pub fn send_reply(stream: &UnixStream, reply: &AttachReply) -> Result<(), VifError> {
    let mut msg = serde_json::to_vec(reply)?;
    msg.push(b'\n');
    let mut s = stream;
    s.write_all(&msg)?;
    Ok(())
}

trait AsFdRef {
    fn as_fd_ref(&self) -> BorrowedFd<'_>;
}

impl AsFdRef for OwnedFd {
    fn as_fd_ref(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}
