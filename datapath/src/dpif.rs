//! The forwarding thread (OVS `dpif-netdev`'s PMD thread, but driven by
//! epoll instead of busy polling) and its control handle.
//!
//! # Loop
//!
//! 1. `epoll_wait` on every enabled port's event fd and the command
//!    eventfd; timeout 0 while some port said [`RecvStatus::More`] (or has
//!    no event fd), else [`HOUSEKEEPING_INTERVAL`].
//! 2. For each ready port: `recv` a batch, extract flow keys, look them up
//!    in the [`MegaflowCache`]; on a miss call
//!    [`UpcallHandler::upcall`] in this thread (as OVS's
//!    `handle_packet_upcall`) and install the megaflow. Packets are then
//!    grouped by action list, run through the [`Executor`], and each output
//!    port's `send` is called once per batch.
//! 3. Packets the actions recirculated ([`DpAction::Recirc`], after a
//!    `ct`, with their conntrack state and `recirc_id` set) go through
//!    step 2 again as a batch of their own, with their metadata in the
//!    key, so each pass has its own megaflows (every megaflow matches
//!    `recirc_id` exactly, as OVS's do): at most [`MAX_RECIRC_DEPTH`]
//!    recirculations per packet, and at most [`MAX_RECIRC_BATCHES`]
//!    batches of recirculated packets from one pass (passes run depth
//!    first, so at most `MAX_RECIRC_DEPTH * MAX_RECIRC_BATCHES` batches
//!    wait); beyond, packets are dropped and counted
//!    ([`DpStats::recirc_drops`]).
//! 4. Housekeeping every second: the handler's own housekeeping (MAC
//!    aging), megaflow idle expiry after [`MAX_IDLE`] (OVS
//!    `OFPROTO_MAX_IDLE_DEFAULT`), subtable re-ranking, and the handler
//!    learns which recirculation ids megaflows still use
//!    ([`UpcallHandler::recirc_ids_used`]); the interned `ct` arguments
//!    megaflows use are marked and the ones unused for
//!    [`crate::actions::CT_ARGS_GRACE`] swept
//!    ([`crate::actions::ct_args_housekeeping`]), and the handler learns
//!    which packet-in extras handles they use
//!    ([`UpcallHandler::userdata_used`]).
//!
//! # Flow limit
//!
//! At most [`DpHandle::set_flow_limit`] megaflows ([`FLOW_LIMIT`] by
//! default) are installed; a miss beyond it is translated and forwarded
//! but not cached (counted in [`DpStats::flow_limit_hits`]). While the
//! cache is at its limit, megaflows idle for [`FLOW_LIMIT_IDLE`] are
//! removed every [`FLOW_LIMIT_IDLE`] instead of after [`MAX_IDLE`], as
//! OVS's revalidators do, so a storm of new flows replaces the idle ones
//! instead of freezing the cache or exhausting memory.
//!
//! # Revalidation
//!
//! Two grains, both checked once per loop iteration, before any packet of
//! the iteration is looked up:
//! - *targeted*: each megaflow carries the [`Tags`] of the state its
//!   translation read ([`Upcall::tags`]; NORMAL tags the MAC entries it
//!   learned or looked up). A handler publishes the tags of what changed
//!   ([`UpcallHandler::take_dirty_tags`]: a MAC learned, moved, expired or
//!   evicted) and only the megaflows carrying one of them are removed;
//! - *full*: whenever [`UpcallHandler::generation`] changes (OpenFlow
//!   tables, MAC table flushes, VLAN settings), or a port is added, removed
//!   or disabled, the whole cache is flushed.
//!
//! A translation during which the generation changed, or whose tags were
//! published as dirty and not yet processed, is used for its packet but
//! not installed (it may have read the old state), so a megaflow never
//! outlives the state it was computed from by more than one loop
//! iteration (OVS's revalidators allow up to their 500 ms cycle).
//!
//! # Control
//!
//! [`DpHandle`] sends commands over a bounded channel and writes the
//! command eventfd; the thread drains commands when it wakes. Replies come
//! back over a one-shot channel, so the control plane may wait for the
//! thread but never the other way round.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::actions::{ActionsFmt, DpAction, Executor, Userdata, MAX_RECIRC_DEPTH};
use crate::buffer::{OfPort, Packet, PacketBatch, MAX_BURST};
use crate::conntrack::Conntrack;
use crate::counters::RuleCounters;
use crate::error::DpError;
use crate::flow::{extract, Field, FlowKey, FlowMask};
use crate::megaflow::emc::Emc;
use crate::megaflow::{Megaflow, MegaflowCache};
use crate::meter::{MeterCounters, MeterSpec};
use crate::port::{Port, PortStats, RecvStatus};
use crate::tags::Tags;

/// Idle megaflows are removed after this long (OVS
/// `OFPROTO_MAX_IDLE_DEFAULT`, 10 000 ms).
pub const MAX_IDLE: Duration = Duration::from_secs(10);
/// Longest sleep of the loop, so that housekeeping runs.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);
/// Most megaflows installed by default; beyond it packets are still
/// forwarded but no megaflow is installed (OVS
/// `OFPROTO_FLOW_LIMIT_DEFAULT`, `other_config:flow-limit`).
pub const FLOW_LIMIT: usize = 200_000;
/// Idle time after which megaflows go while the cache is at its limit
/// (OVS `revalidate()`: 100 ms when over the flow limit).
pub const FLOW_LIMIT_IDLE: Duration = Duration::from_millis(100);
/// Most batches of recirculated packets one pass hands to the next
/// (each at most [`MAX_BURST`]); more are dropped and counted.
pub const MAX_RECIRC_BATCHES: usize = 4;
/// Depth of the command channel.
const COMMAND_QUEUE: usize = 64;
/// epoll user data of the command eventfd.
const WAKE_TOKEN: u64 = u64::MAX;

/// The result of translating one packet.
#[derive(Debug, Clone, Default)]
pub struct Upcall {
    /// Every key bit translation read (see the megaflow invariants).
    pub mask: FlowMask,
    /// Datapath actions for the packet's class; empty means drop.
    pub actions: Vec<DpAction>,
    /// Counters of the OpenFlow rules that decided the actions; the
    /// megaflow credits them with its packets and bytes once per batch.
    pub counters: Vec<Arc<RuleCounters>>,
    /// Revalidation tags of the state translation read (see the module
    /// docs); empty when only the generation can make it stale.
    pub tags: Tags,
}

/// Slow-path translation, called in the forwarding thread on a megaflow
/// miss (OVS `upcall_cb` → `xlate_actions`).
pub trait UpcallHandler: Send {
    /// Translate `pkt` (whose key is `key`) arriving while `ports` (sorted)
    /// are the enabled ports.
    fn upcall(&mut self, key: &FlowKey, pkt: &Packet, ports: &[OfPort]) -> Upcall;

    /// A counter that changes whenever earlier translations may be stale;
    /// a change flushes the megaflow cache.
    fn generation(&self) -> u64;

    /// Tags of the state that changed since the last
    /// [`UpcallHandler::take_dirty_tags`], without clearing them: a
    /// translation carrying one of them is not installed.
    fn dirty_tags(&self) -> Tags {
        Tags::EMPTY
    }

    /// Take the tags of the state that changed; the megaflows carrying any
    /// of them are removed.
    fn take_dirty_tags(&mut self) -> Tags {
        Tags::EMPTY
    }

    /// Periodic work (about once a second), such as MAC aging.
    fn housekeeping(&mut self, _now: Instant) {}

    /// The keys of the tagged megaflows that packets hit since the last
    /// housekeeping, passed just before it (OVS's revalidators push
    /// megaflow statistics into MAC learning the same way), so that state
    /// read on the fast path, such as a MAC whose traffic all hits
    /// megaflows, can be kept fresh.
    fn megaflows_used(&mut self, _keys: &[FlowKey], _now: Instant) {}

    /// The recirculation ids that installed megaflows' actions use
    /// ([`DpAction::Recirc`]), sorted, passed once a second before
    /// housekeeping: a handler that hands out ids (OVS
    /// `ofproto-dpif-rid.c`) may free the others.
    fn recirc_ids_used(&mut self, _ids: &[u32], _now: Instant) {}

    /// The `extra` handles ([`Userdata::extra`]) of the
    /// [`DpAction::Userspace`] actions installed megaflows use, sorted,
    /// passed once a second before housekeeping: a handler that interns
    /// what they stand for ([`crate::intern`]) may free the others.
    fn userdata_used(&mut self, _extras: &[u32], _now: Instant) {}

    /// A packet reached a [`DpAction::Userspace`] action (OVS
    /// `MISS_UPCALL`'s sibling `CONTROLLER_UPCALL`). Called in the
    /// forwarding thread once per packet: implementations must not block
    /// (queue it, or drop and count).
    fn userspace(&mut self, _userdata: &Userdata, _key: &FlowKey, _pkt: &Packet) {}
}

/// A port as `ports()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Port number.
    pub ofport: OfPort,
    /// Interface name.
    pub name: String,
    /// The port's counters.
    pub stats: PortStats,
    /// False once the port reported [`RecvStatus::Disabled`].
    pub enabled: bool,
}

/// Datapath counters (OVS `dpif-netdev/pmd-stats-show` and
/// `dpctl/show`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DpStats {
    /// Packets that hit the exact-match cache (OVS "emc hits").
    pub emc_hits: u64,
    /// Packets that missed the EMC and hit a megaflow.
    pub megaflow_hits: u64,
    /// Packets that missed and were translated.
    pub upcalls: u64,
    /// Packets lost before translation (none today; kept for OVS parity).
    pub lost: u64,
    /// Frames from ports shorter than an Ethernet header (14 bytes),
    /// dropped before classification (OVS
    /// `datapath_drop_rx_invalid_packet`).
    pub rx_invalid: u64,
    /// Installed megaflows.
    pub n_flows: usize,
    /// Distinct megaflow masks.
    pub n_masks: usize,
    /// Average subtables probed per megaflow hit.
    pub avg_subtable_lookups_per_hit: f64,
    /// Packets received from all ports.
    pub packets: u64,
    /// The current flow limit (see the module docs).
    pub flow_limit: usize,
    /// Misses not cached because the cache was at its limit.
    pub flow_limit_hits: u64,
    /// GSO frames dropped at output because they could not be segmented
    /// ([`crate::gso::segment`]: bad headers, MSS 0, too many segments).
    pub gso_drops: u64,
    /// Outputs of reassembled datagrams cut back into fragments
    /// ([`crate::fragment`]).
    pub refragmented: u64,
    /// Outputs of reassembled datagrams dropped because they could not
    /// be cut into fragments ([`crate::fragment::FragError`]).
    pub frag_drops: u64,
    /// Idle time after which megaflows go (below the flow limit).
    pub max_idle: Duration,
    /// Packets recirculated: passes after the first (OVS pmd-stats
    /// `recirc`).
    pub recirc: u64,
    /// Packets dropped at a recirculation: beyond [`MAX_RECIRC_DEPTH`]
    /// (OVS `datapath_drop_recirc_error`), or more recirculated copies
    /// than [`MAX_RECIRC_BATCHES`] batches hold.
    pub recirc_drops: u64,
}

enum Command {
    AddPort(OfPort, Box<dyn Port>, SyncSender<Result<(), DpError>>),
    DelPort(OfPort, SyncSender<Result<Box<dyn Port>, DpError>>),
    Ports(SyncSender<Vec<PortInfo>>),
    Stats(SyncSender<DpStats>),
    DumpFlows(bool, SyncSender<Vec<String>>),
    DelFlows(SyncSender<usize>),
    SetPaused(bool, SyncSender<()>),
    SetMeter(u32, MeterSpec, SyncSender<bool>),
    DelMeter(u32, SyncSender<bool>),
    MeterStats(SyncSender<Vec<(u32, MeterCounters)>>),
    Execute(Box<Packet>, Vec<DpAction>, SyncSender<()>),
    SetFlowLimit(usize, SyncSender<()>),
    SetMaxIdle(Duration, SyncSender<()>),
    Shutdown,
}

/// Spawns forwarding threads.
#[derive(Debug)]
pub struct Datapath;

impl Datapath {
    /// Start a forwarding thread named `name` that translates misses with
    /// `handler`, with a connection tracker of its own.
    pub fn spawn(name: &str, handler: Box<dyn UpcallHandler>) -> io::Result<DpHandle> {
        Self::spawn_with_conntrack(name, handler, Conntrack::new())
    }

    /// As [`Datapath::spawn`], running `ct` actions through `conntrack`
    /// (the daemon shares one among all its datapaths, as OVS's userspace
    /// datapath has one conntrack).
    pub fn spawn_with_conntrack(
        name: &str,
        handler: Box<dyn UpcallHandler>,
        conntrack: Conntrack,
    ) -> io::Result<DpHandle> {
        let wake = Arc::new(EventFd::from_value_and_flags(
            0,
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(
            wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
        )?;
        let (tx, rx) = mpsc::sync_channel(COMMAND_QUEUE);
        let fwd_wake = wake.clone();
        // The forwarder is built in its own thread: its caches hold
        // `Rc`s and never leave it.
        let thread = std::thread::Builder::new()
            .name(format!("fwd-{name}"))
            .spawn(move || {
                let mut fwd = Fwd::new(handler, epoll, fwd_wake, rx);
                fwd.exec.conntrack = conntrack;
                fwd.run()
            })?;
        Ok(DpHandle {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                tx,
                wake,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

struct Inner {
    name: String,
    tx: SyncSender<Command>,
    wake: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Control handle of a forwarding thread; cheap to clone.
#[derive(Clone)]
pub struct DpHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpHandle")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl DpHandle {
    fn send(&self, cmd: Command) -> Result<(), DpError> {
        self.inner.tx.send(cmd).map_err(|_| DpError::Gone)?;
        let _ = self.inner.wake.write(1);
        Ok(())
    }

    fn request<T>(&self, make: impl FnOnce(SyncSender<T>) -> Command) -> Result<T, DpError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(make(tx))?;
        rx.recv().map_err(|_| DpError::Gone)
    }

    /// The datapath's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Attach `port` as number `ofport`.
    pub fn add_port(&self, ofport: OfPort, port: Box<dyn Port>) -> Result<(), DpError> {
        self.request(|r| Command::AddPort(ofport, port, r))?
    }

    /// Detach port `ofport` and drop it.
    pub fn del_port(&self, ofport: OfPort) -> Result<(), DpError> {
        self.take_port(ofport).map(drop)
    }

    /// Detach port `ofport` and hand it back (to re-attach it later, on
    /// this or another datapath).
    pub fn take_port(&self, ofport: OfPort) -> Result<Box<dyn Port>, DpError> {
        self.request(|r| Command::DelPort(ofport, r))?
    }

    /// Every attached port, by number (empty if the thread is gone).
    pub fn ports(&self) -> Vec<PortInfo> {
        self.request(Command::Ports).unwrap_or_default()
    }

    /// Counters (zero if the thread is gone).
    pub fn stats(&self) -> DpStats {
        self.request(Command::Stats).unwrap_or_default()
    }

    /// Megaflows in `ovs-appctl dpctl/dump-flows` format.
    pub fn dump_flows(&self) -> Vec<String> {
        self.request(|r| Command::DumpFlows(false, r))
            .unwrap_or_default()
    }

    /// As [`DpHandle::dump_flows`], every field shown with its mask
    /// (`ovs-appctl dpctl/dump-flows -m`).
    pub fn dump_flows_verbose(&self) -> Vec<String> {
        self.request(|r| Command::DumpFlows(true, r))
            .unwrap_or_default()
    }

    /// Stop (`true`) or resume reading every port; commands are still
    /// served. Frames wait where they are (in a vif's TX ring, a socket's
    /// buffer). Used to add several ports at once, so that none forwards
    /// before the others are there (after a restart, the first batch of a
    /// guest that queued frames for a peer would otherwise be flooded
    /// before that peer's port exists). Keep it short: while paused with
    /// readable ports the thread polls without sleeping.
    pub fn set_paused(&self, paused: bool) -> Result<(), DpError> {
        self.request(|r| Command::SetPaused(paused, r))
    }

    /// Remove every megaflow (OVS `ovs-appctl dpctl/del-flows`); the next
    /// packet of each flow is translated again. Returns how many were
    /// removed.
    pub fn del_flows(&self) -> Result<usize, DpError> {
        self.request(Command::DelFlows)
    }

    /// Add or replace meter `id` (token buckets start full, counters at
    /// zero). False if the meter table is full or has too many bands
    /// ([`crate::meter::MAX_METERS`], [`crate::meter::MAX_BANDS`]).
    pub fn set_meter(&self, id: u32, spec: MeterSpec) -> Result<bool, DpError> {
        self.request(|r| Command::SetMeter(id, spec, r))
    }

    /// Remove meter `id`; whether it existed.
    pub fn del_meter(&self, id: u32) -> Result<bool, DpError> {
        self.request(|r| Command::DelMeter(id, r))
    }

    /// Counters of every meter, by id (empty if the thread is gone).
    pub fn meter_stats(&self) -> Vec<(u32, MeterCounters)> {
        self.request(Command::MeterStats).unwrap_or_default()
    }

    /// Run `actions` on `pkt` (whose `in_port` is the input port, or
    /// `OFPP_CONTROLLER`) in the forwarding thread, as OpenFlow packet-out
    /// does (OVS `dpif_execute`); returns once the packet has been sent.
    pub fn execute(&self, pkt: Packet, actions: Vec<DpAction>) -> Result<(), DpError> {
        self.request(|r| Command::Execute(Box::new(pkt), actions, r))
    }

    /// Cache at most `limit` megaflows (at least 1; OVS
    /// `other_config:flow-limit`). Lowering it below the number installed
    /// makes the idle ones go after [`FLOW_LIMIT_IDLE`].
    pub fn set_flow_limit(&self, limit: usize) -> Result<(), DpError> {
        self.request(|r| Command::SetFlowLimit(limit.max(1), r))
    }

    /// Remove megaflows idle for `max_idle` ([`MAX_IDLE`] by default; OVS
    /// `other_config:max-idle`, in ms there). At least
    /// [`FLOW_LIMIT_IDLE`].
    pub fn set_max_idle(&self, max_idle: Duration) -> Result<(), DpError> {
        self.request(|r| Command::SetMaxIdle(max_idle.max(FLOW_LIMIT_IDLE), r))
    }

    /// Stop the thread and wait for it. Idempotent.
    pub fn shutdown(&self) {
        let _ = self.send(Command::Shutdown);
        let t = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

struct PortEntry {
    port: Box<dyn Port>,
    enabled: bool,
    /// Said `More` last time, or has no event fd: poll without waiting.
    busy: bool,
    has_fd: bool,
}

struct Fwd {
    handler: Box<dyn UpcallHandler>,
    epoll: Epoll,
    wake: Arc<EventFd>,
    rx: Receiver<Command>,
    ports: BTreeMap<OfPort, PortEntry>,
    enabled: Vec<OfPort>,
    cache: MegaflowCache,
    emc: Emc,
    emc_hits: u64,
    generation: u64,
    batch: PacketBatch,
    exec: Executor,
    groups: Vec<Arc<[DpAction]>>,
    /// Megaflows hit in this batch that carry rule counters, with the
    /// packets and bytes to credit (at most one entry per megaflow).
    credits: Vec<(Rc<Megaflow>, u64, u64)>,
    ready: Vec<OfPort>,
    upcalls: u64,
    lost: u64,
    rx_invalid: u64,
    packets: u64,
    last_housekeeping: Instant,
    flow_limit: usize,
    flow_limit_hits: u64,
    /// Ports are not read ([`DpHandle::set_paused`]).
    paused: bool,
    max_idle: Duration,
    /// Last idle expiry under the flow limit.
    last_limit_expiry: Instant,
    /// Scratch for [`UpcallHandler::megaflows_used`].
    used_keys: Vec<FlowKey>,
    /// Scratch for a pass: the flow keys of the batch and their EMC hashes.
    pass_keys: Vec<(FlowKey, u64)>,
    /// Batches for recirculation passes (reused).
    spare: Vec<PacketBatch>,
    /// Recirculated batches waiting for their pass (empty between
    /// batches; kept for its allocation).
    work: Vec<(PacketBatch, u32)>,
    /// Packets recirculated (each pass of each packet after its first).
    recirc: u64,
    /// Packets dropped at a recirculation beyond [`MAX_RECIRC_DEPTH`] or
    /// because a pass made more than [`MAX_RECIRC_BATCHES`] batches.
    recirc_drops: u64,
    /// Scratch for [`UpcallHandler::recirc_ids_used`].
    recirc_ids: Vec<u32>,
    /// Scratch for [`crate::actions::ct_args_housekeeping`].
    ct_args_ids: Vec<u32>,
    /// Scratch for [`UpcallHandler::userdata_used`].
    extras: Vec<u32>,
}

impl Fwd {
    fn new(
        handler: Box<dyn UpcallHandler>,
        epoll: Epoll,
        wake: Arc<EventFd>,
        rx: Receiver<Command>,
    ) -> Fwd {
        let generation = handler.generation();
        Fwd {
            handler,
            epoll,
            wake,
            rx,
            ports: BTreeMap::new(),
            enabled: Vec::new(),
            cache: MegaflowCache::new(),
            emc: Emc::new(),
            emc_hits: 0,
            generation,
            batch: PacketBatch::new(),
            exec: Executor::new(),
            groups: Vec::with_capacity(MAX_BURST),
            credits: Vec::with_capacity(MAX_BURST),
            ready: Vec::with_capacity(16),
            upcalls: 0,
            lost: 0,
            rx_invalid: 0,
            packets: 0,
            last_housekeeping: Instant::now(),
            flow_limit: FLOW_LIMIT,
            flow_limit_hits: 0,
            paused: false,
            max_idle: MAX_IDLE,
            last_limit_expiry: Instant::now(),
            used_keys: Vec::new(),
            pass_keys: Vec::with_capacity(MAX_BURST),
            spare: Vec::new(),
            work: Vec::new(),
            recirc: 0,
            recirc_drops: 0,
            recirc_ids: Vec::new(),
            ct_args_ids: Vec::new(),
            extras: Vec::new(),
        }
    }

    fn run(&mut self) {
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let poll_now = !self.paused && self.ports.values().any(|e| e.enabled && e.busy);
            let timeout = if poll_now {
                EpollTimeout::ZERO
            } else {
                EpollTimeout::from(HOUSEKEEPING_INTERVAL.as_millis() as u16)
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    tracing::error!("epoll_wait failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    0
                }
            };
            self.ready.clear();
            let mut commands = false;
            for ev in &events[..n] {
                if ev.data() == WAKE_TOKEN {
                    commands = true;
                } else if let Ok(p) = OfPort::try_from(ev.data()) {
                    self.ready.push(p);
                }
            }
            if commands && !self.handle_commands() {
                return;
            }
            for (p, e) in &self.ports {
                if e.enabled && e.busy {
                    self.ready.push(*p);
                }
            }
            self.ready.sort_unstable();
            self.ready.dedup();
            self.check_generation();
            let now = Instant::now();
            if self.paused {
                self.ready.clear();
            }
            for i in 0..self.ready.len() {
                let p = self.ready[i];
                self.process_port(p, now);
            }
            if self.cache.len() >= self.flow_limit
                && now.duration_since(self.last_limit_expiry) >= FLOW_LIMIT_IDLE
            {
                self.last_limit_expiry = now;
                self.cache.expire_idle(now, FLOW_LIMIT_IDLE);
            }
            if now.duration_since(self.last_housekeeping) >= Duration::from_secs(1) {
                let since = std::mem::replace(&mut self.last_housekeeping, now);
                self.used_keys.clear();
                self.used_keys.extend(
                    self.cache
                        .iter()
                        .filter(|f| !f.tags.is_empty() && f.used() > since)
                        .map(|f| f.key),
                );
                if !self.used_keys.is_empty() {
                    self.handler.megaflows_used(&self.used_keys, now);
                }
                self.recirc_ids.clear();
                self.ct_args_ids.clear();
                self.extras.clear();
                for f in self.cache.iter() {
                    for a in f.actions.iter() {
                        match a {
                            DpAction::Recirc(id) => self.recirc_ids.push(*id),
                            DpAction::Ct(c) if c.args != 0 => self.ct_args_ids.push(c.args),
                            DpAction::Userspace(u) if u.extra != 0 => self.extras.push(u.extra),
                            _ => {}
                        }
                    }
                }
                self.recirc_ids.sort_unstable();
                self.recirc_ids.dedup();
                self.handler.recirc_ids_used(&self.recirc_ids, now);
                self.ct_args_ids.sort_unstable();
                self.ct_args_ids.dedup();
                crate::actions::ct_args_housekeeping(&self.ct_args_ids, now);
                self.extras.sort_unstable();
                self.extras.dedup();
                self.handler.userdata_used(&self.extras, now);
                self.handler.housekeeping(now);
                self.check_generation();
                self.cache.expire_idle(now, self.max_idle);
                self.cache.optimize();
            }
        }
    }

    /// Revalidate: a full flush if the generation moved, else remove the
    /// megaflows carrying dirty tags.
    fn check_generation(&mut self) {
        let dirty = self.handler.take_dirty_tags();
        let g = self.handler.generation();
        if g != self.generation {
            self.generation = g;
            self.cache.flush();
        } else if !dirty.is_empty() {
            self.cache.remove_tagged(dirty);
        }
    }

    /// Drain the command queue; false means stop.
    fn handle_commands(&mut self) -> bool {
        let _ = self.wake.read();
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Command::AddPort(ofport, port, reply) => {
                    let _ = reply.send(self.add_port(ofport, port));
                }
                Command::DelPort(ofport, reply) => {
                    let _ = reply.send(self.del_port(ofport));
                }
                Command::Ports(reply) => {
                    let v = self
                        .ports
                        .iter()
                        .map(|(p, e)| PortInfo {
                            ofport: *p,
                            name: e.port.name().to_owned(),
                            stats: e.port.stats(),
                            enabled: e.enabled,
                        })
                        .collect();
                    let _ = reply.send(v);
                }
                Command::Stats(reply) => {
                    let s = self.cache.stats();
                    let _ = reply.send(DpStats {
                        emc_hits: self.emc_hits,
                        megaflow_hits: s.hits,
                        upcalls: self.upcalls,
                        lost: self.lost,
                        rx_invalid: self.rx_invalid,
                        n_flows: self.cache.len(),
                        n_masks: self.cache.n_masks(),
                        avg_subtable_lookups_per_hit: s.avg_subtable_lookups_per_hit(),
                        packets: self.packets,
                        flow_limit: self.flow_limit,
                        flow_limit_hits: self.flow_limit_hits,
                        gso_drops: self.exec.gso_drops,
                        refragmented: self.exec.refragmented,
                        frag_drops: self.exec.frag_drops,
                        max_idle: self.max_idle,
                        recirc: self.recirc,
                        recirc_drops: self.recirc_drops,
                    });
                }
                Command::DumpFlows(verbose, reply) => {
                    let _ = reply.send(self.dump_flows(verbose));
                }
                Command::SetPaused(paused, reply) => {
                    self.paused = paused;
                    let _ = reply.send(());
                }
                Command::DelFlows(reply) => {
                    let n = self.cache.len();
                    self.cache.flush();
                    let _ = reply.send(n);
                }
                Command::SetMeter(id, spec, reply) => {
                    let ok = self.exec.meters.set(id, &spec, Instant::now());
                    let _ = reply.send(ok);
                }
                Command::DelMeter(id, reply) => {
                    let _ = reply.send(self.exec.meters.remove(id));
                }
                Command::MeterStats(reply) => {
                    let _ = reply.send(self.exec.meters.stats());
                }
                Command::Execute(pkt, actions, reply) => {
                    self.execute(&pkt, &actions);
                    let _ = reply.send(());
                }
                Command::SetFlowLimit(limit, reply) => {
                    self.flow_limit = limit;
                    let _ = reply.send(());
                }
                Command::SetMaxIdle(idle, reply) => {
                    self.max_idle = idle;
                    let _ = reply.send(());
                }
                Command::Shutdown => return false,
            }
        }
    }

    /// Packet-out: run `actions` on one packet and send the outputs.
    fn execute(&mut self, pkt: &Packet, actions: &[DpAction]) {
        let batch = std::slice::from_ref(pkt);
        self.exec.set_now(Instant::now());
        {
            let ports = &self.ports;
            let features = |p: OfPort| {
                ports
                    .get(&p)
                    .filter(|e| e.enabled)
                    .map(|e| e.port.features())
            };
            self.exec.execute(batch, &[0], actions, &features);
        }
        let handler = &mut self.handler;
        self.exec.drain_userspace(batch, &mut |ud, p| {
            handler.userspace(ud, &extract(p), p);
        });
        let ports = &mut self.ports;
        self.exec.flush(batch, &mut |p, pkts| {
            if let Some(e) = ports.get_mut(&p) {
                if e.enabled {
                    e.port.send(pkts);
                }
            }
        });
        let mut batches = 0;
        while self.exec.recirculating() > 0 {
            if batches == MAX_RECIRC_BATCHES {
                self.recirc_drops += self.exec.recirculating() as u64;
                self.exec.discard_recirculated();
                break;
            }
            let mut next = self.spare.pop().unwrap_or_default();
            next.clear();
            self.exec.take_recirculated(batch, &mut next);
            self.recirc += next.len() as u64;
            let done = self.process_batch(next, Instant::now(), 1);
            self.spare.push(done);
            batches += 1;
        }
    }

    fn add_port(&mut self, ofport: OfPort, port: Box<dyn Port>) -> Result<(), DpError> {
        if self.ports.contains_key(&ofport) {
            return Err(DpError::PortExists(ofport));
        }
        let has_fd = match port.event_fd() {
            Some(fd) => {
                self.epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, u64::from(ofport)))
                    .map_err(|e| DpError::Epoll {
                        ofport,
                        source: e.into(),
                    })?;
                true
            }
            None => false,
        };
        tracing::info!(ofport, name = port.name(), "port added");
        self.ports.insert(
            ofport,
            PortEntry {
                port,
                enabled: true,
                busy: true,
                has_fd,
            },
        );
        self.refresh_enabled();
        Ok(())
    }

    fn unregister(&mut self, ofport: OfPort) {
        if let Some(e) = self.ports.get_mut(&ofport) {
            if e.has_fd {
                if let Some(fd) = e.port.event_fd() {
                    let _ = self.epoll.delete(fd);
                }
                e.has_fd = false;
            }
        }
    }

    fn del_port(&mut self, ofport: OfPort) -> Result<Box<dyn Port>, DpError> {
        if !self.ports.contains_key(&ofport) {
            return Err(DpError::NoSuchPort(ofport));
        }
        self.unregister(ofport);
        let entry = self.ports.remove(&ofport);
        tracing::info!(ofport, "port deleted");
        self.refresh_enabled();
        entry.map(|e| e.port).ok_or(DpError::NoSuchPort(ofport))
    }

    fn disable_port(&mut self, ofport: OfPort) {
        self.unregister(ofport);
        if let Some(e) = self.ports.get_mut(&ofport) {
            e.enabled = false;
            e.busy = false;
            tracing::warn!(ofport, name = e.port.name(), "port disabled");
        }
        self.refresh_enabled();
    }

    /// Port set changed: recompute the enabled list and flush megaflows.
    fn refresh_enabled(&mut self) {
        self.enabled.clear();
        self.enabled.extend(
            self.ports
                .iter()
                .filter(|(_, e)| e.enabled)
                .map(|(p, _)| *p),
        );
        self.cache.flush();
    }

    fn process_port(&mut self, ofport: OfPort, now: Instant) {
        let status = {
            let Some(e) = self.ports.get_mut(&ofport) else {
                return;
            };
            if !e.enabled {
                return;
            }
            self.batch.clear();
            let st = e.port.recv(&mut self.batch);
            e.busy = st == RecvStatus::More || !e.has_fd;
            st
        };
        if status == RecvStatus::Disabled {
            self.batch.clear();
            self.disable_port(ofport);
            return;
        }
        if self.batch.is_empty() {
            return;
        }
        for p in self.batch.packets_mut() {
            p.in_port = ofport;
        }
        self.packets += self.batch.len() as u64;
        // As OVS's `dfc_processing`: no port can carry a frame without a
        // whole Ethernet header, and flow extraction needs one.
        self.rx_invalid +=
            self.batch
                .retain(|p| p.len() >= crate::packet::ethernet::HEADER_LEN) as u64;
        if self.batch.is_empty() {
            return;
        }

        let spare = self.spare.pop().unwrap_or_default();
        let batch = std::mem::replace(&mut self.batch, spare);
        let batch = self.process_batch(batch, now, 0);
        let spare = std::mem::replace(&mut self.batch, batch);
        self.spare.push(spare);
    }

    /// Run `batch` through the datapath, then the packets it recirculated,
    /// pass after pass (OVS `dp_netdev_recirculate`), depth first, until
    /// none is left. Packets a pass at [`MAX_RECIRC_DEPTH`] recirculates,
    /// and those beyond [`MAX_RECIRC_BATCHES`] batches from one pass, are
    /// dropped and counted. `depth` is the number of recirculations
    /// behind `batch`. Hands back a batch to reuse.
    fn process_batch(&mut self, batch: PacketBatch, now: Instant, depth: u32) -> PacketBatch {
        // At most MAX_RECIRC_DEPTH * MAX_RECIRC_BATCHES + 1 batches wait.
        let mut work = std::mem::take(&mut self.work);
        work.push((batch, depth));
        let mut done = None;
        while let Some((batch, depth)) = work.pop() {
            self.pass(&batch, now);
            let mut n = self.exec.recirculating();
            if n > 0 && depth >= MAX_RECIRC_DEPTH {
                self.exec.discard_recirculated();
                self.recirc_drops += n as u64;
                warn_recirc_depth(self.recirc_drops);
                n = 0;
            }
            let mut batches = 0;
            while n > 0 {
                if batches == MAX_RECIRC_BATCHES {
                    self.exec.discard_recirculated();
                    self.recirc_drops += n as u64;
                    break;
                }
                let mut next = self.spare.pop().unwrap_or_default();
                next.clear();
                n = self.exec.take_recirculated(batch.packets(), &mut next);
                self.recirc += next.len() as u64;
                work.push((next, depth + 1));
                batches += 1;
            }
            if let Some(b) = done.replace(batch) {
                self.spare.push(b);
            }
        }
        self.work = work;
        done.unwrap_or_default()
    }

    /// One pass of `batch`: extract, look up (EMC, megaflows, upcall on a
    /// miss), execute per action list, hand packets to userspace, send.
    /// Packets the actions recirculated are left in the executor.
    fn pass(&mut self, batch: &PacketBatch, now: Instant) {
        // Classify: one action list per packet, grouped by identity.
        let mut group_of = [0usize; MAX_BURST];
        self.groups.clear();
        // Keys first, with a prefetch of their EMC slots: with new flows
        // (a storm of new connections) the slots are cold, and their
        // loads then overlap instead of stalling one packet at a time.
        let mut keys = std::mem::take(&mut self.pass_keys);
        keys.clear();
        for pkt in batch.packets() {
            let key = extract(pkt);
            let hash = self.emc.hash(&key);
            self.emc.prefetch(hash);
            keys.push((key, hash));
        }
        for (i, (pkt, kh)) in batch.packets().iter().zip(keys.iter()).enumerate() {
            let (key, hash) = (&kh.0, kh.1);
            let len = pkt.len() as u64;
            // Hits find their group by pointer and clone the action list
            // only for the first packet of a group, not per packet.
            group_of[i] = if let Some(f) = self.emc.lookup(key, hash) {
                self.emc_hits += 1;
                f.record(1, len, now);
                credit(&mut self.credits, f, len);
                group_index(&mut self.groups, &f.actions)
            } else {
                match self.cache.lookup(key) {
                    Some(f) => {
                        f.record(1, len, now);
                        credit(&mut self.credits, f, len);
                        self.emc.maybe_insert(key, hash, f);
                        group_index(&mut self.groups, &f.actions)
                    }
                    None => {
                        self.upcalls += 1;
                        let before = self.handler.generation();
                        let up = self.handler.upcall(key, pkt, &self.enabled);
                        let acts: Arc<[DpAction]> = Arc::from(up.actions);
                        let counters: Arc<[Arc<RuleCounters>]> = Arc::from(up.counters);
                        let g = self.handler.generation();
                        if g != self.generation {
                            self.generation = g;
                            self.cache.flush();
                            // Credits refer to flushed megaflows: pay now.
                            pay_credits(&mut self.credits, now);
                        }
                        // A change during the upcall (a flow-mod racing
                        // with translation, or the handler's own learning)
                        // may make this translation stale: use it for this
                        // packet only; the next packet translates again.
                        let stale = g != before || self.handler.dirty_tags().intersects(up.tags);
                        let full = self.cache.len() >= self.flow_limit;
                        self.flow_limit_hits += u64::from(full && !stale);
                        if !stale && !full {
                            // Each pass has its own megaflows: a packet
                            // back from recirculation must never match a
                            // first-pass megaflow (OVS `xlate_wc_init`
                            // always matches recirc_id exactly).
                            let mut mask = up.mask;
                            mask.set_exact(Field::RecircId);
                            let f = self.cache.insert_tagged(
                                key,
                                &mask,
                                acts.clone(),
                                counters,
                                up.tags,
                                now,
                            );
                            f.record(1, len, now);
                            credit(&mut self.credits, f, len);
                        } else {
                            for c in counters.iter() {
                                c.credit(1, len, now);
                            }
                        }
                        group_index(&mut self.groups, &acts)
                    }
                }
            };
        }

        self.pass_keys = keys;
        pay_credits(&mut self.credits, now);

        // Execute each group, then send per port.
        self.exec.set_now(now);
        let ports = &self.ports;
        let features = |p: OfPort| {
            ports
                .get(&p)
                .filter(|e| e.enabled)
                .map(|e| e.port.features())
        };
        let n = batch.len();
        let mut idxs = [0usize; MAX_BURST];
        for (g, acts) in self.groups.iter().enumerate() {
            let mut k = 0;
            for (i, grp) in group_of.iter().enumerate().take(n) {
                if *grp == g {
                    idxs[k] = i;
                    k += 1;
                }
            }
            self.exec
                .execute(batch.packets(), &idxs[..k], acts, &features);
        }
        let handler = &mut self.handler;
        self.exec.drain_userspace(batch.packets(), &mut |ud, p| {
            handler.userspace(ud, &extract(p), p);
        });
        let ports = &mut self.ports;
        self.exec.flush(batch.packets(), &mut |p, pkts| {
            if let Some(e) = ports.get_mut(&p) {
                if e.enabled {
                    e.port.send(pkts);
                }
            }
        });
        self.groups.clear();
    }

    fn dump_flows(&self, verbose: bool) -> Vec<String> {
        let now = Instant::now();
        self.cache
            .iter()
            .map(|f| {
                let used = if f.packets() == 0 {
                    "never".to_owned()
                } else {
                    format!(
                        "{:.3}s",
                        now.saturating_duration_since(f.used()).as_secs_f64()
                    )
                };
                let key = match verbose {
                    true => f.key.dpctl_verbose(&f.mask),
                    false => f.key.dpctl(&f.mask),
                };
                format!(
                    "{key}, packets:{}, bytes:{}, used:{}, actions:{}",
                    f.packets(),
                    f.bytes(),
                    used,
                    ActionsFmt(&f.actions)
                )
            })
            .collect()
    }
}

/// The log line for packets dropped beyond the recirculation depth, at
/// most once a second.
fn warn_recirc_depth(total: u64) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let now = Instant::now();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.map_or(true, |t| now.duration_since(t) >= Duration::from_secs(1)) {
        *last = Some(now);
        tracing::warn!(
            total,
            "packet recirculated more than {MAX_RECIRC_DEPTH} times: dropped"
        );
    }
}

/// The index in `groups` of the action list `acts` (by identity), adding
/// it (one reference count) if the batch has not used it yet.
#[inline]
fn group_index(groups: &mut Vec<Arc<[DpAction]>>, acts: &Arc<[DpAction]>) -> usize {
    match groups.iter().position(|g| Arc::ptr_eq(g, acts)) {
        Some(g) => g,
        None => {
            groups.push(acts.clone());
            groups.len() - 1
        }
    }
}

/// Note a hit on `f` for the per-batch rule credit (no allocation: the
/// vector holds at most one entry per packet of the batch).
#[inline]
fn credit(credits: &mut Vec<(Rc<Megaflow>, u64, u64)>, f: &Rc<Megaflow>, len: u64) {
    if f.rule_counters.is_empty() {
        return;
    }
    match credits.iter_mut().find(|(g, _, _)| Rc::ptr_eq(g, f)) {
        Some(e) => {
            e.1 = e.1.wrapping_add(1);
            e.2 = e.2.wrapping_add(len);
        }
        None => credits.push((f.clone(), 1, len)),
    }
}

/// Credit the batch's hits to the rules' counters, once per megaflow.
fn pay_credits(credits: &mut Vec<(Rc<Megaflow>, u64, u64)>, now: Instant) {
    for (f, p, b) in credits.drain(..) {
        for c in f.rule_counters.iter() {
            c.credit(p, b, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Field;
    use crate::memport::{mem_port, MemPortPeer};
    use crate::port::PortFeatures;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Floods everything to every other port; mask = in_port only.
    struct Hub {
        gen: Arc<AtomicU64>,
    }

    impl UpcallHandler for Hub {
        fn upcall(&mut self, key: &FlowKey, _pkt: &Packet, ports: &[OfPort]) -> Upcall {
            let mut mask = FlowMask::default();
            mask.set_exact(Field::InPort);
            Upcall {
                mask,
                tags: Tags::EMPTY,
                counters: Vec::new(),
                actions: ports
                    .iter()
                    .filter(|p| **p != key.in_port())
                    .map(|p| DpAction::Output(*p))
                    .collect(),
            }
        }

        fn generation(&self) -> u64 {
            self.gen.load(Ordering::SeqCst)
        }
    }

    fn frame(src: u8, dst: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x08, 0x00];
        f.resize(60, 0);
        f
    }

    fn wait_sent(peer: &MemPortPeer, n: usize) -> Vec<Packet> {
        peer.wait_sent(n, Duration::from_secs(1))
    }

    #[test]
    fn frames_shorter_than_an_ethernet_header_are_dropped_and_counted() {
        let gen = Arc::new(AtomicU64::new(0));
        let dp = Datapath::spawn("test", Box::new(Hub { gen })).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        let (p2, peer2) = mem_port("p2", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        dp.add_port(2, Box::new(p2)).unwrap();
        peer1.inject_frame(&frame(1, 2)[..13]);
        peer1.inject_frame(&[]);
        peer1.inject_frame(&frame(1, 2)[..14]);
        let got = wait_sent(&peer2, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data(), &frame(1, 2)[..14]);
        let s = dp.stats();
        assert_eq!((s.rx_invalid, s.upcalls, s.packets), (2, 1, 3));
    }

    #[test]
    fn forwards_caches_and_flushes() {
        let gen = Arc::new(AtomicU64::new(0));
        let dp = Datapath::spawn("test", Box::new(Hub { gen: gen.clone() })).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        let (p2, peer2) = mem_port("p2", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        dp.add_port(2, Box::new(p2)).unwrap();
        let (dup, _) = mem_port("dup", PortFeatures::default()).unwrap();
        assert!(matches!(
            dp.add_port(1, Box::new(dup)),
            Err(DpError::PortExists(1))
        ));

        peer1.inject_frame(&frame(1, 2));
        let got = wait_sent(&peer2, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data(), &frame(1, 2)[..]);
        assert!(peer1.take_sent().is_empty(), "no hairpin");
        let s = dp.stats();
        assert_eq!(
            (s.upcalls, s.megaflow_hits, s.n_flows, s.n_masks),
            (1, 0, 1, 1)
        );

        peer1.inject_frame(&frame(1, 3));
        assert_eq!(wait_sent(&peer2, 1).len(), 1);
        let s = dp.stats();
        assert_eq!((s.upcalls, s.megaflow_hits, s.packets), (1, 1, 2));
        assert_eq!(s.avg_subtable_lookups_per_hit, 1.0);
        let flows = dp.dump_flows();
        assert_eq!(flows.len(), 1);
        assert!(
            flows[0].starts_with("recirc_id(0),in_port(1), packets:2, bytes:120, used:"),
            "{}",
            flows[0]
        );
        assert!(flows[0].ends_with("actions:2"), "{}", flows[0]);

        // A generation change flushes: the next packet is an upcall again.
        gen.store(1, Ordering::SeqCst);
        peer1.inject_frame(&frame(1, 2));
        assert_eq!(wait_sent(&peer2, 1).len(), 1);
        assert_eq!(dp.stats().upcalls, 2);

        // A burst bigger than a batch gets through in order.
        for i in 0..100u8 {
            let mut f = frame(1, 2);
            f[20] = i;
            peer2.inject_frame(&f);
        }
        let got = wait_sent(&peer1, 100);
        assert_eq!(got.len(), 100);
        assert!(got.iter().enumerate().all(|(i, p)| p.data()[20] == i as u8));

        let ports = dp.ports();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].name, "p1");
        assert_eq!(ports[0].stats.rx_packets, 3);
        assert_eq!(ports[0].stats.tx_packets, 100);
        assert!(ports[1].enabled);

        // Disabled ports stay listed and get no output.
        peer2.disable();
        for _ in 0..100 {
            if !dp.ports()[1].enabled {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!dp.ports()[1].enabled);
        peer1.inject_frame(&frame(1, 2));
        std::thread::sleep(Duration::from_millis(20));
        assert!(peer2.take_sent().is_empty());

        dp.del_port(2).unwrap();
        assert!(matches!(dp.del_port(2), Err(DpError::NoSuchPort(2))));
        assert_eq!(dp.ports().len(), 1);
        dp.shutdown();
        dp.shutdown();
        assert!(dp.ports().is_empty());
        assert!(matches!(dp.del_port(1), Err(DpError::Gone)));
    }

    #[test]
    fn at_the_flow_limit_misses_are_forwarded_uncached_and_idle_flows_go_fast() {
        let gen = Arc::new(AtomicU64::new(0));
        let dp = Datapath::spawn("lim", Box::new(Hub { gen })).unwrap();
        let mut peers = Vec::new();
        for p in 1..=3 {
            let (port, peer) = mem_port(&format!("l{p}"), PortFeatures::default()).unwrap();
            dp.add_port(p, Box::new(port)).unwrap();
            peers.push(peer);
        }
        assert_eq!(dp.stats().flow_limit, FLOW_LIMIT);
        assert_eq!(dp.stats().max_idle, MAX_IDLE);
        dp.set_max_idle(Duration::ZERO).unwrap();
        assert_eq!(dp.stats().max_idle, FLOW_LIMIT_IDLE, "clamped");
        dp.set_max_idle(MAX_IDLE).unwrap();
        dp.set_flow_limit(1).unwrap();
        peers[0].inject_frame(&frame(1, 2));
        assert_eq!(wait_sent(&peers[1], 1).len(), 1);
        peers[2].inject_frame(&frame(3, 2));
        assert_eq!(wait_sent(&peers[1], 1).len(), 1, "forwarded all the same");
        let s = dp.stats();
        assert_eq!((s.n_flows, s.flow_limit, s.flow_limit_hits), (1, 1, 1));
        // Idle at the limit: gone after about FLOW_LIMIT_IDLE, not MAX_IDLE.
        let t = Instant::now();
        while dp.stats().n_flows != 0 && t.elapsed() < MAX_IDLE / 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(dp.stats().n_flows, 0);
        // Below the limit nothing idles out early.
        dp.set_flow_limit(FLOW_LIMIT).unwrap();
        peers[0].inject_frame(&frame(1, 2));
        peers[2].inject_frame(&frame(3, 2));
        assert_eq!(wait_sent(&peers[1], 2).len(), 2);
        std::thread::sleep(FLOW_LIMIT_IDLE * 5);
        assert_eq!(dp.stats().n_flows, 2);
        dp.shutdown();
    }
}

#[cfg(test)]
mod userspace_tests {
    use super::*;
    use crate::flow::Field;
    use crate::memport::mem_port;
    use crate::meter::{BandKind, BandSpec};
    use crate::port::PortFeatures;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Sends everything to port 2 and to userspace, crediting one counter.
    struct ToUser {
        counters: Arc<RuleCounters>,
        seen: Arc<AtomicU64>,
    }

    impl UpcallHandler for ToUser {
        fn upcall(&mut self, _key: &FlowKey, _pkt: &Packet, _ports: &[OfPort]) -> Upcall {
            let mut mask = FlowMask::default();
            mask.set_exact(Field::InPort);
            Upcall {
                mask,
                tags: Tags::EMPTY,
                actions: vec![
                    DpAction::Output(2),
                    DpAction::Userspace(Userdata {
                        reason: 1,
                        ..Userdata::default()
                    }),
                ],
                counters: vec![self.counters.clone()],
            }
        }

        fn generation(&self) -> u64 {
            0
        }

        fn userspace(&mut self, ud: &Userdata, key: &FlowKey, pkt: &Packet) {
            assert_eq!(ud.reason, 1);
            assert_eq!(key.in_port(), pkt.in_port);
            self.seen.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait(cond: impl Fn() -> bool) -> bool {
        for _ in 0..1000 {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    #[test]
    fn userspace_counters_meters_and_execute() {
        let counters = Arc::new(RuleCounters::new());
        let seen = Arc::new(AtomicU64::new(0));
        let h = ToUser {
            counters: counters.clone(),
            seen: seen.clone(),
        };
        let dp = Datapath::spawn("u", Box::new(h)).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        let (p2, peer2) = mem_port("p2", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        dp.add_port(2, Box::new(p2)).unwrap();
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.resize(60, 0);
        for _ in 0..10 {
            peer1.inject_frame(&f);
        }
        assert!(wait(|| seen.load(Ordering::SeqCst) == 10));
        assert!(wait(|| counters.packets() == 10));
        assert_eq!(counters.bytes(), 600);
        assert!(counters.used().is_some());
        assert_eq!(peer2.take_sent().len(), 10);

        // Meters: configure, meter through execute, read back.
        let spec = MeterSpec {
            pktps: true,
            bands: vec![BandSpec {
                kind: BandKind::Drop,
                rate: 1,
                burst: 2,
            }],
        };
        assert!(dp.set_meter(9, spec).unwrap());
        for _ in 0..5 {
            dp.execute(
                Packet::from_slice(&f),
                vec![DpAction::Meter(9), DpAction::Output(2)],
            )
            .unwrap();
        }
        let sent = peer2.take_sent().len();
        assert!((2..5).contains(&sent), "{sent}");
        let st = dp.meter_stats();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].1.packets, 5);
        assert!(dp.del_meter(9).unwrap());
        assert!(!dp.del_meter(9).unwrap());
        dp.shutdown();
    }
}

#[cfg(test)]
mod stale_tests {
    use super::*;
    use crate::flow::Field;
    use crate::memport::mem_port;
    use crate::port::PortFeatures;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Its first translation races with a state change.
    struct Racy {
        gen: Arc<AtomicU64>,
        calls: u64,
    }

    impl UpcallHandler for Racy {
        fn upcall(&mut self, _key: &FlowKey, _pkt: &Packet, _ports: &[OfPort]) -> Upcall {
            self.calls += 1;
            if self.calls == 1 {
                self.gen.fetch_add(1, Ordering::SeqCst);
            }
            let mut mask = FlowMask::default();
            mask.set_exact(Field::InPort);
            Upcall {
                mask,
                tags: Tags::EMPTY,
                actions: vec![DpAction::Output(2)],
                counters: Vec::new(),
            }
        }

        fn generation(&self) -> u64 {
            self.gen.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn translation_racing_a_change_is_not_installed() {
        let gen = Arc::new(AtomicU64::new(0));
        let dp = Datapath::spawn("r", Box::new(Racy { gen, calls: 0 })).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        let (p2, peer2) = mem_port("p2", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        dp.add_port(2, Box::new(p2)).unwrap();
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.resize(60, 0);
        peer1.inject_frame(&f);
        for _ in 0..1000 {
            if dp.stats().upcalls == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // Forwarded, but not cached.
        let s = dp.stats();
        assert_eq!((s.upcalls, s.n_flows), (1, 0));
        peer1.inject_frame(&f);
        for _ in 0..1000 {
            if dp.stats().n_flows == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let s = dp.stats();
        assert_eq!((s.upcalls, s.n_flows), (2, 1));
        let mut sent = 0;
        for _ in 0..1000 {
            sent += peer2.take_sent().len();
            if sent == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(sent, 2);
        dp.shutdown();
    }
}

#[cfg(test)]
mod tag_tests {
    use super::*;
    use crate::flow::Field;
    use crate::memport::mem_port;
    use crate::port::PortFeatures;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Sends everything to port 2; tags each megaflow with its in_port;
    /// the test publishes dirty tags through `dirty`.
    struct Tagged {
        dirty: Arc<AtomicU64>,
        used: Arc<Mutex<Vec<OfPort>>>,
    }

    impl UpcallHandler for Tagged {
        fn upcall(&mut self, key: &FlowKey, _pkt: &Packet, _ports: &[OfPort]) -> Upcall {
            let mut mask = FlowMask::default();
            mask.set_exact(Field::InPort);
            Upcall {
                mask,
                tags: Tags::of(u64::from(key.in_port())),
                actions: vec![DpAction::Output(2)],
                counters: Vec::new(),
            }
        }

        fn generation(&self) -> u64 {
            0
        }

        fn dirty_tags(&self) -> Tags {
            Tags(self.dirty.load(Ordering::SeqCst))
        }

        fn take_dirty_tags(&mut self) -> Tags {
            Tags(self.dirty.swap(0, Ordering::SeqCst))
        }

        fn megaflows_used(&mut self, keys: &[FlowKey], _now: Instant) {
            let mut used = self.used.lock().unwrap();
            used.extend(keys.iter().map(|k| k.in_port()));
        }
    }

    fn wait_for(dp: &DpHandle, what: impl Fn(&DpStats) -> bool) -> DpStats {
        for _ in 0..1000 {
            let s = dp.stats();
            if what(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        dp.stats()
    }

    #[test]
    fn dirty_tags_remove_only_their_megaflows() {
        assert!(
            !Tags::of(1).intersects(Tags::of(3)),
            "test needs distinct tags"
        );
        let dirty = Arc::new(AtomicU64::new(0));
        let used = Arc::new(Mutex::new(Vec::new()));
        let handler = Tagged {
            dirty: dirty.clone(),
            used: used.clone(),
        };
        let dp = Datapath::spawn("t", Box::new(handler)).unwrap();
        let mut peers = Vec::new();
        for p in 1..=3 {
            let (port, peer) = mem_port(&format!("p{p}"), PortFeatures::default()).unwrap();
            dp.add_port(p, Box::new(port)).unwrap();
            peers.push(peer);
        }
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.resize(60, 0);
        peers[0].inject_frame(&f);
        peers[2].inject_frame(&f);
        let s = wait_for(&dp, |s| s.n_flows == 2);
        assert_eq!((s.upcalls, s.n_flows), (2, 2));

        // Port 1's state changed: only its megaflow goes.
        dirty.store(Tags::of(1).0, Ordering::SeqCst);
        let s = wait_for(&dp, |s| s.n_flows == 1);
        assert_eq!(s.n_flows, 1, "the untouched megaflow stays");
        peers[2].inject_frame(&f);
        let s = wait_for(&dp, |s| s.packets == 3);
        assert_eq!(
            (s.packets, s.upcalls),
            (3, 2),
            "port 3 still hits its megaflow"
        );
        peers[0].inject_frame(&f);
        let s = wait_for(&dp, |s| s.n_flows == 2);
        assert_eq!((s.upcalls, s.n_flows), (3, 2), "port 1 is translated again");

        // Housekeeping (once a second) reports the megaflows that were hit.
        for _ in 0..300 {
            if used.lock().unwrap().len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut seen = used.lock().unwrap().clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, vec![1, 3]);
        dp.shutdown();
    }
}

#[cfg(test)]
mod recirc_tests {
    use super::*;
    use crate::actions::CtAction;
    use crate::conntrack::{cs, CtArgs};
    use crate::memport::mem_port;
    use crate::port::PortFeatures;

    /// First pass: `ct(zone=5),recirc(0x7)`; after recirculation 7: to
    /// port 2 if tracked in zone 5, else drop. Recirculation 9 loops.
    struct CtPipeline {
        seen: Arc<Mutex<Vec<(u32, u32, u16)>>>,
        used: Arc<Mutex<Vec<u32>>>,
    }

    impl UpcallHandler for CtPipeline {
        fn upcall(&mut self, key: &FlowKey, _pkt: &Packet, _ports: &[OfPort]) -> Upcall {
            let rid = key.get(Field::RecircId) as u32;
            let state = key.get(Field::CtState) as u32;
            let zone = key.get(Field::CtZone) as u16;
            self.seen.lock().unwrap().push((rid, state, zone));
            let mut mask = FlowMask::default();
            mask.set_exact(Field::InPort);
            let ct = CtAction::new(&CtArgs {
                zone: 5,
                ..CtArgs::default()
            })
            .unwrap();
            let actions = match rid {
                0 if key.dl_type() == 0x0800 => vec![DpAction::Ct(ct), DpAction::Recirc(7)],
                0 => vec![DpAction::Recirc(9)],
                7 => {
                    mask.set(Field::CtState, u128::from(cs::TRK));
                    mask.set_exact(Field::CtZone);
                    if state & cs::TRK != 0 && zone == 5 {
                        vec![DpAction::Output(2)]
                    } else {
                        Vec::new()
                    }
                }
                _ => vec![DpAction::Recirc(9)],
            };
            Upcall {
                mask,
                actions,
                counters: Vec::new(),
                tags: Tags::EMPTY,
            }
        }

        fn generation(&self) -> u64 {
            0
        }

        fn recirc_ids_used(&mut self, ids: &[u32], _now: Instant) {
            *self.used.lock().unwrap() = ids.to_vec();
        }
    }

    fn frame(ethertype: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.resize(60, 0);
        f
    }

    fn wait_for(dp: &DpHandle, what: impl Fn(&DpStats) -> bool) -> DpStats {
        for _ in 0..1000 {
            let s = dp.stats();
            if what(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        dp.stats()
    }

    /// A valid UDP datagram (checksums right), the first of a connection.
    fn udp_frame() -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut v, &[7u8; 18])
            .unwrap();
        v
    }

    #[test]
    fn ct_state_reaches_the_second_pass_and_each_pass_has_its_megaflows() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let used = Arc::new(Mutex::new(Vec::new()));
        let ct = Conntrack::new();
        let h = CtPipeline {
            seen: seen.clone(),
            used: used.clone(),
        };
        let dp = Datapath::spawn_with_conntrack("rc", Box::new(h), ct.clone()).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        let (p2, peer2) = mem_port("p2", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        dp.add_port(2, Box::new(p2)).unwrap();
        peer1.inject_frame(&udp_frame());
        let got = peer2.wait_sent(1, Duration::from_secs(2));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data(), &udp_frame()[..]);
        assert_eq!(
            *seen.lock().unwrap(),
            [(0, 0, 0), (7, cs::TRK | cs::NEW, 5)],
            "the second pass sees the tracker's state"
        );
        let s = dp.stats();
        assert_eq!(
            (s.upcalls, s.n_flows, s.recirc, s.recirc_drops),
            (2, 2, 1, 0)
        );
        assert_eq!(ct.stats().packets, 1, "the shared tracker ran");
        let mut flows = dp.dump_flows();
        flows.sort();
        assert_eq!(flows.len(), 2, "{flows:?}");
        assert!(
            flows[0].starts_with("recirc_id(0),in_port(1), packets:1, bytes:60, used:"),
            "{flows:?}"
        );
        assert!(
            flows[0].ends_with("actions:ct(zone=5),recirc(0x7)"),
            "{flows:?}"
        );
        assert!(
            flows[1]
                .starts_with("recirc_id(0x7),in_port(1),ct_state(+trk),ct_zone(0x5), packets:1"),
            "{flows:?}"
        );
        assert!(flows[1].ends_with("actions:2"), "{flows:?}");

        // The next packet takes both megaflows without an upcall.
        peer1.inject_frame(&udp_frame());
        assert_eq!(peer2.wait_sent(1, Duration::from_secs(2)).len(), 1);
        let s = wait_for(&dp, |s| s.recirc == 2);
        assert_eq!((s.upcalls, s.recirc), (2, 2));
        assert_eq!(ct.stats().packets, 2);

        // Housekeeping reports the recirculation ids in use.
        for _ in 0..300 {
            if !used.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(*used.lock().unwrap(), [7]);
        dp.shutdown();
    }

    /// Sends every packet to userspace with packet-in extras handle 42
    /// and to port 2; records what housekeeping reports in use.
    struct ExtrasPipeline {
        used: Arc<Mutex<Option<Vec<u32>>>>,
    }

    impl UpcallHandler for ExtrasPipeline {
        fn upcall(&mut self, _key: &FlowKey, _pkt: &Packet, _ports: &[OfPort]) -> Upcall {
            let mut mask = FlowMask::default();
            mask.set_exact(Field::InPort);
            let ud = Userdata {
                reason: 1,
                extra: 42,
                ..Userdata::default()
            };
            Upcall {
                mask,
                actions: vec![DpAction::Userspace(ud), DpAction::Output(2)],
                counters: Vec::new(),
                tags: Tags::EMPTY,
            }
        }

        fn generation(&self) -> u64 {
            0
        }

        fn userdata_used(&mut self, extras: &[u32], _now: Instant) {
            *self.used.lock().unwrap() = Some(extras.to_vec());
        }
    }

    /// Housekeeping tells the handler which packet-in extras handles the
    /// installed megaflows hold (so that it keeps those and may free the
    /// others, `pin_extras`).
    #[test]
    fn housekeeping_reports_the_userdata_extras_in_use() {
        let used = Arc::new(Mutex::new(None));
        let h = ExtrasPipeline { used: used.clone() };
        let dp = Datapath::spawn("ex", Box::new(h)).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        let (p2, peer2) = mem_port("p2", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        dp.add_port(2, Box::new(p2)).unwrap();
        peer1.inject_frame(&udp_frame());
        assert_eq!(peer2.wait_sent(1, Duration::from_secs(2)).len(), 1);
        // Housekeeping runs once a second; wait for it (at most 30 s on a
        // loaded machine), not for a fixed time.
        for _ in 0..3000 {
            if used.lock().unwrap().as_ref().is_some_and(|v| !v.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(*used.lock().unwrap(), Some(vec![42]));
        dp.shutdown();
    }

    #[test]
    fn a_recirculation_loop_is_cut_and_counted() {
        let h = CtPipeline {
            seen: Arc::new(Mutex::new(Vec::new())),
            used: Arc::new(Mutex::new(Vec::new())),
        };
        let dp = Datapath::spawn("loop", Box::new(h)).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        // Not IPv4: recirc(9) for ever.
        for _ in 0..3 {
            peer1.inject_frame(&frame(0x86dd));
        }
        let s = wait_for(&dp, |s| s.recirc_drops == 3);
        assert_eq!(s.recirc_drops, 3);
        assert_eq!(s.recirc, 3 * u64::from(MAX_RECIRC_DEPTH));
        // A first-pass megaflow and one for recirc_id 9, which matches
        // every later pass.
        assert_eq!(s.n_flows, 2, "{:?}", dp.dump_flows());
        // A packet-out with a recirculation loop is cut as well.
        let mut p = Packet::from_slice(&frame(0x86dd));
        p.in_port = 1;
        dp.execute(p, vec![DpAction::Recirc(9)]).unwrap();
        let s = wait_for(&dp, |s| s.recirc_drops == 4);
        assert_eq!(s.recirc_drops, 4);
        dp.shutdown();
    }

    #[test]
    fn recirculated_forks_beyond_a_batch_are_dropped_and_counted() {
        // Each packet forks into as many recirculated copies as its IP
        // TOS byte says; a pass hands at most MAX_RECIRC_BATCHES batches
        // to the next, the rest are dropped and counted.
        struct Fork;
        impl UpcallHandler for Fork {
            fn upcall(&mut self, key: &FlowKey, _pkt: &Packet, _ports: &[OfPort]) -> Upcall {
                let mut mask = FlowMask::default();
                mask.set_exact(Field::InPort).set_exact(Field::NwTos);
                let actions = if key.get(Field::RecircId) == 0 {
                    (1..=key.nw_tos())
                        .map(|i| DpAction::Recirc(i.into()))
                        .collect()
                } else {
                    vec![DpAction::Output(2)]
                };
                Upcall {
                    mask,
                    actions,
                    counters: Vec::new(),
                    tags: Tags::EMPTY,
                }
            }
            fn generation(&self) -> u64 {
                0
            }
        }
        let dp = Datapath::spawn("fork", Box::new(Fork)).unwrap();
        let (p1, peer1) = mem_port("p1", PortFeatures::default()).unwrap();
        let (p2, peer2) = mem_port("p2", PortFeatures::default()).unwrap();
        dp.add_port(1, Box::new(p1)).unwrap();
        dp.add_port(2, Box::new(p2)).unwrap();
        let burst = |forks: u8| {
            dp.set_paused(true).unwrap();
            for _ in 0..MAX_BURST {
                let mut f = frame(0x0800);
                f[15] = forks;
                peer1.inject_frame(&f);
            }
            dp.set_paused(false).unwrap();
        };
        // 3 forks of 32 packets: 3 batches, all go through.
        burst(3);
        let sent = peer2.wait_sent(3 * MAX_BURST, Duration::from_secs(2)).len();
        assert_eq!(sent, 3 * MAX_BURST);
        let s = dp.stats();
        assert_eq!((s.recirc, s.recirc_drops), (3 * MAX_BURST as u64, 0));
        // 5 forks: the fifth batch's worth is dropped.
        burst(5);
        let cap = MAX_RECIRC_BATCHES * MAX_BURST;
        let sent = peer2.wait_sent(cap, Duration::from_secs(2)).len();
        assert_eq!(sent, cap);
        let s = wait_for(&dp, |s| s.recirc_drops == MAX_BURST as u64);
        assert_eq!(
            (s.recirc, s.recirc_drops),
            ((3 * MAX_BURST + cap) as u64, MAX_BURST as u64)
        );
        dp.shutdown();
    }
}

#[cfg(test)]
mod assertions {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handle_is_send_sync() {
        send_sync::<super::DpHandle>();
    }
}
