//! The per-bridge OpenFlow switch object (OVS `struct ofproto` /
//! `ofproto-dpif`): flow tables, groups and meters behind a lock, the
//! upcall handler that compiles them into megaflows, packet-out, stats,
//! timeouts, asynchronous events, fail-open and `ofproto/trace`.
//!
//! # Threads and locks
//!
//! - `tables: RwLock<Tables>`: written by the control plane (flow, group
//!   and meter mods, expiry), read by the forwarding thread in upcalls only
//!   (never per packet on megaflow hits).
//! - `normal: Mutex<Normal>`: NORMAL's MAC table, locked in upcalls that
//!   reach NORMAL, in traces and in MAC aging; its generation is an
//!   atomic read without the lock (through the [`FdbHandle`]).
//! - Lock order: tables, then normal, then down-ports, then port configs.
//! - Events (packet-ins from the forwarding thread, flow-removed from
//!   mods and expiry) go through a bounded channel of [`EVENT_QUEUE`]
//!   entries; when it is full they are dropped and counted
//!   ([`Ofproto::dropped_events`]), so the forwarding thread never blocks.
//!
//! # Revalidation
//!
//! [`Ofproto::generation`] (what the handler reports) changes on every
//! flow/group/meter mod, expiry, port liveness or config change, fail-open change
//! and MAC-table change; the datapath then flushes all megaflows.
//!
//! # Fail mode
//!
//! A bridge created in [`FailMode::Standalone`] gets `priority=0
//! actions=NORMAL` in table 0, as OVS installs it for a bridge without
//! controllers (`connmgr_flushed` → `ofproto_add_flow`), so an
//! unconfigured bridge is a learning switch. The connection layer calls
//! [`Ofproto::set_fail_open`] (true while a standalone bridge has no
//! controller connection after having had one): the pipeline is then
//! bypassed and every packet goes to NORMAL, like OVS's fail-open
//! (`fail_open.c`, which adds a hidden priority-0xf0f0f0 NORMAL flow).
//! A [`FailMode::Secure`] bridge starts empty: table misses drop.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::Instant;

use arc_swap::ArcSwap;
use xennet_datapath::flow::{extract, Field};
use xennet_datapath::meter::{BandKind, BandSpec, MeterSpec, MAX_BANDS, MAX_METERS};
use xennet_datapath::{DpHandle, FlowKey, OfPort, Packet, Tags, Upcall, UpcallHandler, Userdata};
use xennet_openflow::model::{
    flow_flags, meter_flags, port_config, Action, FlowMod, FlowModCommand, FlowRemoved, FlowStats,
    FlowStatsRequest, GroupDesc, GroupFeatures, GroupMod, GroupStats, Instructions, Match,
    MeterBandKind, MeterConfig, MeterFeatures, MeterMod, MeterStats, MpReply, MpRequest, OxmField,
    PacketIn, PacketOut, TableStats, OFPCML_NO_BUFFER, OFPG_ALL, OFPG_ANY, OFPM_ALL, OFPP_ANY,
    OFPP_CONTROLLER, OFPP_LOCAL, OFPP_MAX, OFPP_NORMAL,
};
use xennet_openflow::tlv::{TlvMap, TlvTableMod, TlvTableReply};
use xennet_openflow::OfError;

use crate::isolation::{self, Essential, Verdict};
use crate::normal::{FdbHandle, Normal};
use crate::recirc::RecircTable;
use crate::tables::{LearnOutcome, Meter, MeterChange, Tables, MAX_GROUPS};
use crate::xlate::{self, XlateIn};

/// Action types translation supports, as an `OFPAT_*` bitmap: output,
/// push/pop VLAN, set-queue, group, set/dec NW TTL, set-field.
const SUPPORTED_ACTIONS: u32 =
    (1 << 0) | (1 << 17) | (1 << 18) | (1 << 21) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);

/// Most recirculations one `ofproto/trace` follows.
const TRACE_MAX_RECIRCS: usize = 16;

/// Depth of the asynchronous event queue.
pub const EVENT_QUEUE: usize = 1024;
/// Most megaflows whose `learn` actions are remembered so that traffic
/// hitting them keeps refreshing the learned flows (once a second, from
/// [`UpcallHandler::megaflows_used`]); beyond, a megaflow's learned flows are
/// refreshed only when it is translated again, and
/// [`LearnStats::untracked`] counts it.
pub const LEARN_REFRESH_MAX: usize = 16_384;
/// The revalidation tag of megaflows that ran `learn`: tagged megaflows
/// are reported by [`UpcallHandler::megaflows_used`].
fn learn_tag() -> Tags {
    Tags::of(0x4c45_4152_4e00_0000)
}

/// A flow-mod a `learn` action built, with the action's `limit`.
type LearnedFlowMod = (FlowMod, u32);

/// The process-wide `learn` counters (every bridge's [`LearnStats`]
/// summed; `coverage/show`: `xlate_learn_*`).
pub static LEARN_TOTALS: LearnStats = LearnStats {
    added: AtomicU64::new(0),
    refreshed: AtomicU64::new(0),
    limit_reached: AtomicU64::new(0),
    cap_reached: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    untracked: AtomicU64::new(0),
};

/// Counters of `learn` execution (per bridge).
#[derive(Debug, Default)]
pub struct LearnStats {
    /// Flows added or changed by `learn`.
    pub added: AtomicU64,
    /// Learned flows refreshed (identical flow already there).
    pub refreshed: AtomicU64,
    /// Learns refused by the action's `limit`.
    pub limit_reached: AtomicU64,
    /// Learns refused by the bridge's cap on learned flows.
    pub cap_reached: AtomicU64,
    /// Learned flow-mods that failed (bad table, prerequisites, table
    /// full).
    pub errors: AtomicU64,
    /// Megaflows with `learn` not remembered for refreshing (the table
    /// of [`LEARN_REFRESH_MAX`] was full).
    pub untracked: AtomicU64,
}
/// `OFP_NO_BUFFER`.
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// The bridge's fail mode (OVS `Bridge.fail_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Act as a learning switch when no controller is in charge.
    Standalone,
    /// Never forward on its own: only the flow tables decide.
    Secure,
}

/// An asynchronous message for the controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfEvent {
    /// `OFPT_PACKET_IN` (or `NXT_PACKET_IN2`, as each connection chose),
    /// for the controllers with this controller id
    /// (`NXT_SET_CONTROLLER_ID`; 0 unless `controller(id=N)`).
    PacketIn(PacketIn, u16),
    /// `OFPT_FLOW_REMOVED`.
    FlowRemoved(Box<FlowRemoved>),
    /// Rule changes for flow monitors (sent only while
    /// [`Ofproto::watch_flows`] is on).
    FlowChanges(Arc<FlowChanges>),
}

/// Rule changes one operation made, for flow monitors (OVS
/// `ofmonitor_report`).
#[derive(Debug)]
pub struct FlowChanges {
    /// The connection and request xid that made them
    /// ([`with_origin`]), `None` for the switch's own changes (timeouts).
    pub origin: Option<(u64, u32)>,
    /// The changes, oldest first.
    pub changes: Vec<crate::tables::RuleChange>,
}

impl PartialEq for FlowChanges {
    fn eq(&self, o: &FlowChanges) -> bool {
        std::ptr::eq(self, o)
    }
}

impl Eq for FlowChanges {}

thread_local! {
    /// The OpenFlow connection and request being handled on this thread
    /// ([`with_origin`]).
    static ORIGIN: std::cell::Cell<Option<(u64, u32)>> = const { std::cell::Cell::new(None) };
}

/// Run `f` (which handles the request with transaction id `xid` from
/// OpenFlow connection `conn`) so that the rule changes it makes name
/// that connection and request: flow monitors abbreviate a connection's
/// own changes to the request's xid (OVS `ofmonitor_report`'s
/// `abbrev_ofconn`, `abbrev_xid`).
pub fn with_origin<T>(conn: u64, xid: u32, f: impl FnOnce() -> T) -> T {
    let prev = ORIGIN.with(|o| o.replace(Some((conn, xid))));
    let r = f();
    ORIGIN.with(|o| o.set(prev));
    r
}

/// One bridge's OpenFlow switch (see the module docs).
#[derive(Debug)]
pub struct Ofproto {
    name: String,
    datapath_id: AtomicU64,
    fail_mode: FailMode,
    tables: RwLock<Tables>,
    normal: Mutex<Normal>,
    fdb: FdbHandle,
    generation: AtomicU64,
    fail_open: AtomicBool,
    down_ports: RwLock<BTreeSet<u32>>,
    /// OpenFlow port config bits by port (`OFPT_PORT_MOD`; ports without
    /// an entry have none).
    port_configs: RwLock<BTreeMap<u32, u32>>,
    /// Enabled ports as last seen by an upcall (for traces).
    seen_ports: Mutex<Vec<OfPort>>,
    events_tx: SyncSender<OfEvent>,
    events_rx: Mutex<Option<Receiver<OfEvent>>>,
    dropped_events: AtomicU64,
    /// Connections with flow monitors ([`Ofproto::watch_flows`]).
    watchers: std::sync::atomic::AtomicUsize,
    dp: Mutex<Option<DpHandle>>,
    /// Ingress policers by port: (rate kbit/s, burst kbit).
    policers: RwLock<std::collections::BTreeMap<u32, (u32, u32)>>,
    /// Isolation guard: the probes every flow-mod must leave reaching
    /// ([`Ofproto::set_isolation_guard`]); `None`: no guard.
    guard: RwLock<Option<Arc<Vec<GuardProbe>>>>,
    /// Flow-mods and bundles the isolation guard refused.
    guard_refusals: AtomicU64,
    /// Frozen translations behind recirculation ids ([`crate::recirc`]).
    recirc: RecircTable,
    /// This bridge instance's name in continuations (`NXCPT_BRIDGE`; OVS
    /// uses the ofproto's UUID): random, so a continuation from another
    /// bridge or an earlier run is stale.
    instance: [u8; 16],
    /// The learned flow-mods of installed megaflows, by masked megaflow
    /// key, with the generation they were translated in: when traffic
    /// hits such a megaflow, its learned flows are refreshed (OVS pushes
    /// megaflow stats through the xlate cache's `XC_LEARN` entries the
    /// same way). An entry from an older generation is stale: every
    /// generation change flushes the megaflow cache.
    learn_refresh: Mutex<std::collections::HashMap<FlowKey, (u64, Vec<LearnedFlowMod>)>>,
    /// `learn` counters.
    learn_stats: LearnStats,
    /// The Geneve option map (`NXT_TLV_TABLE_MOD`); replaced whole, so
    /// readers take a snapshot without a lock (shared with the bridge's
    /// tunnel ports, [`Ofproto::tlv_handle`]).
    tlv: Arc<ArcSwap<TlvMap>>,
    /// Serialises `NXT_TLV_TABLE_MOD`s (each builds on the map before it).
    tlv_mod: Mutex<()>,
}

impl Drop for Ofproto {
    /// Empties the Geneve option map the bridge's tunnel ports may still
    /// hold ([`Ofproto::tlv_handle`]): a port outliving its bridge knows
    /// no options.
    fn drop(&mut self) {
        self.tlv.store(Arc::new(TlvMap::new()));
    }
}

/// A probe the isolation guard keeps reaching (see [`crate::isolation`]).
#[derive(Debug, Clone)]
pub struct GuardProbe {
    /// The vif's port name.
    pub port: String,
    /// The service (and where it lives, if known).
    pub service: Essential,
    /// What the probe is.
    pub what: &'static str,
    /// Its flow key.
    pub key: FlowKey,
    /// Where the service lives (port name and number), if known.
    pub at: Option<(String, OfPort)>,
}

/// 128 random bits (std's per-process random hash keys, with the time and
/// a counter): names a bridge instance in continuations.
fn instance_id() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_exact_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(t);
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

/// `NXT_RESUME`s executed.
pub static RESUMED: AtomicU64 = AtomicU64::new(0);
/// `NXT_RESUME`s refused after decoding (stale, a bad packet, or actions
/// the bridge refuses, [`Ofproto::nxt_resume`]); each logged at most once
/// a second.
pub static RESUME_REFUSED: AtomicU64 = AtomicU64::new(0);

/// The checks of a packet-out that need no tables: no buffer, a valid
/// input port, at least an Ethernet header.
fn check_packet_out(po: &PacketOut) -> Result<(), OfError> {
    if po.buffer_id != NO_BUFFER {
        return Err(OfError::BUFFER_UNKNOWN);
    }
    let in_port_ok = (po.in_port != 0 && po.in_port < OFPP_MAX)
        || po.in_port == OFPP_CONTROLLER
        || po.in_port == OFPP_LOCAL;
    if !in_port_ok {
        return Err(OfError::BAD_PORT);
    }
    // Shorter than an Ethernet header: no switch port can carry it
    // (a tap refuses it with EINVAL; OVS's kernel datapath refuses
    // such an execute with EINVAL, its userspace one drops it as
    // `datapath_drop_rx_invalid_packet`).
    let eth = xennet_datapath::packet::ethernet::HEADER_LEN;
    if po.data.len() < eth || po.data.len() > 65_535 {
        return Err(OfError::BAD_PACKET);
    }
    Ok(())
}

/// `ct_state` bits as OVS's `format_flags` prints them (`est|trk`, lowest
/// bit first; `0` for none).
fn ct_state_flags(cs: u32) -> String {
    if cs == 0 {
        return "0".into();
    }
    let mut names: Vec<String> = xennet_datapath::flow::CT_STATE_NAMES
        .iter()
        .filter(|(b, _)| cs & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = xennet_datapath::flow::CT_STATE_NAMES
        .iter()
        .fold(0, |a, (b, _)| a | b);
    if cs & !known != 0 {
        names.push(format!("{:#x}", cs & !known));
    }
    names.join("|")
}

/// An `ofproto/trace --ct-next` argument (OVS `parse_ct_state` then
/// `validate_ct_state`): flag names separated by commas or spaces, with
/// OVS's error text for an unknown flag or a state no connection has.
///
/// # Errors
/// OVS's message, e.g. `foo: unknown connection tracking state flag`.
pub fn parse_ct_next(arg: &str) -> Result<u32, String> {
    use xennet_datapath::conntrack::cs;
    let mut state = 0u32;
    for tok in arg.split([',', ' ']).filter(|t| !t.is_empty()) {
        let bit = xennet_datapath::flow::CT_STATE_NAMES
            .iter()
            .find(|(_, n)| *n == tok)
            .map(|(b, _)| *b)
            .ok_or_else(|| format!("{tok}: unknown connection tracking state flag"))?;
        state |= bit;
    }
    let name = ct_state_flags(state);
    let mut err = String::new();
    let mut bad = |why: &str| err.push_str(&format!("{name}: invalid connection state: {why}\n"));
    if state != 0 && state & cs::TRK == 0 {
        bad("If \"trk\" is unset, no other flags are set");
    }
    if state & cs::INV != 0 && state & !(cs::TRK | cs::INV) != 0 {
        bad("when \"inv\" is set, only \"trk\" may also be set");
    }
    if state & cs::NEW != 0 && state & cs::EST != 0 {
        bad("\"new\" and \"est\" are mutually exclusive");
    }
    if state & cs::NEW != 0 && state & cs::RPL != 0 {
        bad("\"new\" and \"rpy\" are mutually exclusive");
    }
    if err.is_empty() {
        Ok(state)
    } else {
        Err(err)
    }
}

/// Datapath meter ids of ingress policers start here (above OpenFlow's
/// `OFPM_MAX`, 0xffff0000, so they never collide with controller meters).
pub const POLICER_BASE: u32 = 0xffff_0000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ofproto {
    /// A bridge named `name` with datapath id `datapath_id`. A standalone
    /// bridge gets `table=0,priority=0,actions=NORMAL` (see the module
    /// docs).
    pub fn new(name: &str, datapath_id: u64, fail_mode: FailMode) -> Arc<Ofproto> {
        let (normal, fdb) = Normal::new();
        let (tx, rx) = mpsc::sync_channel(EVENT_QUEUE);
        let of = Ofproto {
            name: name.to_owned(),
            datapath_id: AtomicU64::new(datapath_id),
            fail_mode,
            tables: RwLock::new(Tables::new()),
            normal: Mutex::new(normal),
            fdb,
            generation: AtomicU64::new(0),
            fail_open: AtomicBool::new(false),
            down_ports: RwLock::new(BTreeSet::new()),
            port_configs: RwLock::new(BTreeMap::new()),
            seen_ports: Mutex::new(Vec::new()),
            events_tx: tx,
            events_rx: Mutex::new(Some(rx)),
            dropped_events: AtomicU64::new(0),
            watchers: std::sync::atomic::AtomicUsize::new(0),
            dp: Mutex::new(None),
            policers: RwLock::new(std::collections::BTreeMap::new()),
            guard: RwLock::new(None),
            guard_refusals: AtomicU64::new(0),
            recirc: RecircTable::new(),
            instance: instance_id(),
            learn_refresh: Mutex::new(std::collections::HashMap::new()),
            learn_stats: LearnStats::default(),
            tlv: Arc::new(ArcSwap::from_pointee(TlvMap::new())),
            tlv_mod: Mutex::new(()),
        };
        if fail_mode == FailMode::Standalone {
            of.add_default_normal_flow();
        }
        Arc::new(of)
    }

    /// Delete every flow (OVS `ofproto_flush_flows`), then, if `normal`,
    /// add the standalone default `priority=0 actions=NORMAL` (OVS
    /// `connmgr_flushed`).
    pub fn flush_flows(&self, normal: bool) {
        let fm = FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: xennet_openflow::model::OFPTT_ALL,
            command: FlowModCommand::Delete,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 0,
            buffer_id: NO_BUFFER,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            flags: 0,
            matcher: Match::CATCHALL,
            instructions: Instructions::default(),
        };
        if let Err(e) = self.handle_flow_mod(&fm) {
            tracing::warn!("{}: flushing flows: {e}", self.name);
        }
        if normal {
            self.add_default_normal_flow();
        }
    }

    /// `table=0,priority=0,actions=NORMAL`.
    fn add_default_normal_flow(&self) {
        let fm = FlowMod::add(
            0,
            0,
            Match::CATCHALL,
            Instructions::apply(vec![Action::Output {
                port: OFPP_NORMAL,
                max_len: 0,
            }]),
        );
        // Cannot fail: valid table, match and action.
        if let Err(e) = self.handle_flow_mod(&fm) {
            tracing::warn!("{}: adding the NORMAL flow: {e}", self.name);
        }
    }

    /// Bridge name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Datapath id.
    pub fn datapath_id(&self) -> u64 {
        self.datapath_id.load(Ordering::Relaxed)
    }

    /// Change the datapath id (OVS `ofproto_set_datapath_id`); whether it
    /// changed.
    pub fn set_datapath_id(&self, datapath_id: u64) -> bool {
        self.datapath_id.swap(datapath_id, Ordering::Relaxed) != datapath_id
    }

    /// Fail mode.
    pub fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    /// NORMAL's MAC table (for `fdb/show`).
    pub fn fdb(&self) -> &FdbHandle {
        &self.fdb
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Make every cached megaflow stale (a setting that changes what flow
    /// keys hold changed, such as `vlan-limit`).
    pub fn revalidate(&self) {
        self.bump();
    }

    /// The revalidation counter the upcall handler reports: changes with
    /// the tables, port liveness, fail-open and NORMAL's MAC table.
    pub fn generation(&self) -> u64 {
        // NORMAL's counter is an atomic shared with the FDB handle: no
        // lock, since the forwarding thread calls this every iteration.
        let n = self.fdb.generation();
        self.generation.load(Ordering::Acquire).wrapping_add(n)
    }

    fn send_event(&self, ev: OfEvent) {
        match self.events_tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn send_removed(&self, removed: Vec<FlowRemoved>) {
        for r in removed {
            self.send_event(OfEvent::FlowRemoved(Box::new(r)));
        }
        self.publish_changes();
    }

    /// Send the rule changes recorded for flow monitors (every operation
    /// that changes rules ends in [`Ofproto::send_removed`], which calls
    /// this with no lock held).
    fn publish_changes(&self) {
        if self.watchers.load(Ordering::Acquire) == 0 {
            return;
        }
        // Under the tables lock, so changes leave in the order they were
        // made; a full queue keeps them for the next call (the next
        // change, or [`Ofproto::expire`] within a second), never drops
        // them.
        let mut t = self.write();
        self.publish_locked(&mut t);
    }

    /// [`Ofproto::publish_changes`] with the tables lock held.
    fn publish_locked(&self, t: &mut Tables) {
        let changes = t.take_changes();
        if changes.is_empty() {
            return;
        }
        let origin = ORIGIN.with(std::cell::Cell::get);
        let ev = OfEvent::FlowChanges(Arc::new(FlowChanges { origin, changes }));
        match self.events_tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(OfEvent::FlowChanges(c))) => {
                if let Ok(c) = Arc::try_unwrap(c) {
                    t.requeue_changes(c.changes);
                }
            }
            Err(_) => {
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A connection starts (`true`) or stops (`false`) having flow
    /// monitors: while any has, rule changes are recorded and sent as
    /// [`OfEvent::FlowChanges`]. Calls must pair.
    pub fn watch_flows(&self, on: bool) {
        let mut t = self.write();
        let n = if on {
            self.watchers.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.watchers
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    Some(n.saturating_sub(1))
                })
                .unwrap_or(0)
                .saturating_sub(1)
        };
        t.watch(n > 0);
    }

    /// Every rule (a flow monitor's initial dump and refresh).
    pub fn all_rules(&self) -> crate::tables::RuleSnapshot {
        self.read().all_rules()
    }

    /// The receiver of asynchronous events; `Some` only the first time.
    pub fn events(&self) -> Option<Receiver<OfEvent>> {
        lock(&self.events_rx).take()
    }

    /// Events dropped because the queue was full (or nobody listens).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// `OFPT_FLOW_MOD` (OpenFlow 1.3.5 §6.4; see [`Tables::apply_flow_mod`]).
    /// Flow-removed messages for deleted flows go to [`Ofproto::events`].
    ///
    /// # Errors
    /// The OpenFlow error to send back.
    pub fn handle_flow_mod(&self, fm: &FlowMod) -> Result<(), OfError> {
        if fm.buffer_id != NO_BUFFER {
            return Err(OfError::BUFFER_UNKNOWN);
        }
        let guard = self.guard.read().unwrap_or_else(|e| e.into_inner()).clone();
        let res = match guard {
            None => self.write().apply_flow_mod(fm, Instant::now())?,
            Some(probes) => self.guarded_flow_mod(fm, &probes)?,
        };
        if res.n_changed > 0 {
            self.bump();
        }
        self.send_removed(res.removed);
        Ok(())
    }

    /// [`Ofproto::handle_flow_mod`] if it can be done without waiting and
    /// in bounded time, for a caller that must not block (an OpenFlow
    /// connection on the async runtime answers it in place, without
    /// handing its thread's work to another one first): an `OFPFC_ADD`
    /// without `OFPFF_CHECK_OVERLAP`, or a strict modify or delete (each
    /// touches at most one rule), with the isolation guard off and the
    /// tables lock free at once. `None`: not done, nothing changed; call
    /// [`Ofproto::handle_flow_mod`] where blocking is allowed.
    pub fn try_handle_flow_mod(&self, fm: &FlowMod) -> Option<Result<(), OfError>> {
        let bounded = match fm.command {
            FlowModCommand::Add => fm.flags & flow_flags::CHECK_OVERLAP == 0,
            FlowModCommand::ModifyStrict | FlowModCommand::DeleteStrict => true,
            FlowModCommand::Modify | FlowModCommand::Delete => false,
        };
        if !bounded {
            return None;
        }
        if fm.buffer_id != NO_BUFFER {
            return Some(Err(OfError::BUFFER_UNKNOWN));
        }
        let guard_off = match self.guard.try_read() {
            Ok(g) => g.is_none(),
            Err(TryLockError::Poisoned(g)) => g.get_ref().is_none(),
            Err(TryLockError::WouldBlock) => false,
        };
        if !guard_off {
            return None;
        }
        let mut t = match self.tables.try_write() {
            Ok(t) => t,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let res = match t.apply_flow_mod(fm, Instant::now()) {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        // What `send_removed` does, under the lock already held (its
        // `publish_changes` would wait for the lock again).
        for r in res.removed {
            self.send_event(OfEvent::FlowRemoved(Box::new(r)));
        }
        if self.watchers.load(Ordering::Acquire) != 0 {
            self.publish_locked(&mut t);
        }
        drop(t);
        if res.n_changed > 0 {
            self.bump();
        }
        Some(Ok(()))
    }

    /// A flow-mod under the isolation guard: applied in a transaction
    /// ([`Tables::begin`]), then every guard probe translated against the
    /// new tables (under the same lock, so no packet sees them); if one no
    /// longer reaches, the flow-mod is rolled back and refused with
    /// `OFPFMFC_EPERM`, with a warning naming the port, the service and
    /// the flow that would drop it.
    fn guarded_flow_mod(
        &self,
        fm: &FlowMod,
        probes: &[GuardProbe],
    ) -> Result<crate::tables::FlowModResult, OfError> {
        // Before the tables lock: asking the forwarding thread for its
        // ports while holding it could deadlock with an upcall.
        let ports = self.ports_now();
        let mut t = self.write();
        t.begin();
        let res = match t.apply_flow_mod(fm, Instant::now()) {
            Ok(r) => r,
            Err(e) => {
                t.rollback();
                return Err(e);
            }
        };
        if res.n_changed > 0 && !self.guard_passes(&t, probes, &ports, "a flow-mod") {
            t.rollback();
            return Err(OfError::FLOW_MOD_EPERM);
        }
        t.commit();
        Ok(res)
    }

    /// Whether every guard probe still reaches through `tables`; if not,
    /// counts a refusal and warns (rate-limited) naming the first probe
    /// that would be dropped and the flow that would drop it.
    fn guard_passes(
        &self,
        tables: &Tables,
        probes: &[GuardProbe],
        ports: &[OfPort],
        what: &str,
    ) -> bool {
        for p in probes {
            let at = p.at.as_ref().map(|(n, o)| (n.as_str(), *o));
            if let Verdict::Dropped(cause) = self.probe_in(tables, &p.key, ports, at) {
                let n = self.guard_refusals.fetch_add(1, Ordering::Relaxed);
                if n < 100 || n % 1000 == 0 {
                    tracing::warn!(
                        "{}: isolation guard: refused {what}: port {} would no longer \
                         reach {} ({}): {cause}",
                        self.name,
                        p.port,
                        p.service,
                        p.what
                    );
                }
                return false;
            }
        }
        true
    }

    /// The isolation guard's probes, if it is on.
    fn guard_probes(&self) -> Option<Arc<Vec<GuardProbe>>> {
        self.guard.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Turn the isolation guard on with `probes` (those that reach now:
    /// every flow-mod must leave them reaching), or off (`None`).
    /// Flow-mods and committed bundles (all their changes together, as
    /// packets would see them) are guarded; plain group and meter mods
    /// are not.
    pub fn set_isolation_guard(&self, probes: Option<Vec<GuardProbe>>) {
        *self.guard.write().unwrap_or_else(|e| e.into_inner()) = probes.map(Arc::new);
    }

    /// Flow-mods and bundles the isolation guard refused so far.
    pub fn guard_refusals(&self) -> u64 {
        self.guard_refusals.load(Ordering::Relaxed)
    }

    /// Translate probe `key` (see [`crate::isolation`]) through the
    /// pipeline as it is now, without side effects: NORMAL learns
    /// nothing, no table or rule counter moves, nothing is executed. `at`:
    /// the port (name, number) the service lives behind, if known.
    pub fn probe(&self, key: &FlowKey, at: Option<(&str, OfPort)>) -> Verdict {
        let ports = self.ports_now();
        self.probe_ports(key, &ports, at)
    }

    /// [`Ofproto::probe`] for each of `probes` (key, where the service
    /// lives), asking the datapath for its ports once; the tables lock is
    /// taken per probe, so flow-mods are not held up for long.
    pub fn probe_many(&self, probes: &[(FlowKey, Option<(String, OfPort)>)]) -> Vec<Verdict> {
        let ports = self.ports_now();
        probes
            .iter()
            .map(|(key, at)| {
                let at = at.as_ref().map(|(n, o)| (n.as_str(), *o));
                self.probe_ports(key, &ports, at)
            })
            .collect()
    }

    fn probe_ports(&self, key: &FlowKey, ports: &[OfPort], at: Option<(&str, OfPort)>) -> Verdict {
        if self.fail_open() {
            let (out, _) = self.translate_opts(key, &Packet::new(), ports, false, false, false);
            return isolation::verdict(key.in_port(), &out.upcall.actions, None, at);
        }
        let t = self.read();
        self.probe_in(&t, key, ports, at)
    }

    fn probe_in(
        &self,
        tables: &Tables,
        key: &FlowKey,
        ports: &[OfPort],
        at: Option<(&str, OfPort)>,
    ) -> Verdict {
        let (out, _) = self.xlate_tables(tables, key, ports, false, false, false);
        if let Some(e) = out.error {
            return Verdict::Dropped(isolation::DropCause::Cut(format!("{e:?}")));
        }
        // Follow the recirculations (`ct(table=N)`: a probe starts a new
        // connection), gathering every pass's actions.
        let mut actions = out.upcall.actions;
        let mut last_hit = out.last_hit;
        let mut queue: std::collections::VecDeque<(xlate::RecircNode, u32)> =
            out.recircs.into_iter().map(|n| (n, 1)).collect();
        let mut done = 0;
        while let Some((node, depth)) = queue.pop_front() {
            done += 1;
            if done > TRACE_MAX_RECIRCS {
                break;
            }
            let mut k = node.key;
            k.set(Field::RecircId, u128::from(node.id));
            if node.ct {
                let cs = xennet_datapath::conntrack::cs::TRK | xennet_datapath::conntrack::cs::NEW;
                k.set(Field::CtState, u128::from(cs));
                k.set(Field::CtZone, u128::from(node.zone));
            }
            let (o, _) = self.resume_in(tables, node.id, &k, ports, false, false, false);
            if let Some(e) = o.error {
                return Verdict::Dropped(isolation::DropCause::Cut(format!("{e:?}")));
            }
            actions.extend(o.upcall.actions);
            if o.last_hit.is_some() {
                last_hit = o.last_hit;
            }
            if depth < xennet_datapath::actions::MAX_RECIRC_DEPTH {
                queue.extend(o.recircs.into_iter().map(|n| (n, depth + 1)));
            }
        }
        isolation::verdict(key.in_port(), &actions, last_hit.as_ref(), at)
    }

    /// `OFPT_GROUP_MOD` (OpenFlow 1.3.5 §6.5).
    ///
    /// # Errors
    /// The OpenFlow error to send back.
    pub fn handle_group_mod(&self, gm: &GroupMod) -> Result<(), OfError> {
        let removed = self.write().apply_group_mod(gm, Instant::now())?;
        self.bump();
        self.send_removed(removed);
        Ok(())
    }

    /// `OFPT_METER_MOD` (OpenFlow 1.3.5 §6.6); the datapath meter is
    /// configured if a datapath is attached.
    ///
    /// # Errors
    /// The OpenFlow error to send back.
    pub fn handle_meter_mod(&self, mm: &MeterMod) -> Result<(), OfError> {
        let (changes, removed) = self.write().apply_meter_mod(mm, Instant::now())?;
        self.bump();
        self.send_removed(removed);
        if let Some(dp) = lock(&self.dp).clone() {
            for c in changes {
                apply_meter_change(&dp, &c);
            }
        }
        Ok(())
    }

    /// Apply the flow-mods, group-mods and packet-out checks of a
    /// committed bundle (OpenFlow 1.4.1 §6.8, §7.3.9) atomically and in
    /// order, under one hold of the tables lock, so no upcall sees a
    /// partial bundle (OVS `do_bundle_commit`). Each message is checked
    /// against the tables as the earlier ones left them (a flow may use
    /// a group the bundle adds). `msgs[i]` for `i` in `fail_at` fails
    /// with that error: the caller's verdict on a message the pipeline
    /// does not handle (a port-mod). Other messages than flow-mod,
    /// group-mod, packet-out and port-mod fail with `OFPBFC_MSG_UNSUP`.
    ///
    /// `msgs` may be borrowed or owned; owned messages are dropped as
    /// soon as they are applied, so a large bundle's memory is reused for
    /// the rules it adds rather than both held at once.
    ///
    /// On success the changes stay, flow-removed messages of deleted
    /// flows are queued, and the packet-outs and port-mods are returned
    /// with their indices, in order (the caller runs them, as OVS runs
    /// them after the commit).
    ///
    /// # Errors
    /// The index of the first message that failed and its error; the
    /// tables are then exactly as before (see [`Tables::rollback`]) and
    /// no event is sent.
    #[allow(clippy::type_complexity)]
    pub fn commit_bundle<M: std::borrow::Borrow<xennet_openflow::Msg>>(
        &self,
        msgs: impl IntoIterator<Item = M>,
        fail_at: Option<(usize, OfError)>,
    ) -> Result<Vec<(usize, M)>, (usize, OfError)> {
        use xennet_openflow::Msg;
        let now = Instant::now();
        let mut removed = Vec::new();
        let mut changed = false;
        let mut after = Vec::new();
        // The last flow-mod or group-mod (the guard blames it).
        let mut last: Option<(usize, OfError)> = None;
        // The guard's ports before the tables lock (see guarded_flow_mod).
        let guard = self.guard_probes().map(|p| (p, self.ports_now()));
        let mut t = self.write();
        t.begin();
        let mut apply = |t: &mut Tables, i: usize, m: &Msg| -> Result<bool, OfError> {
            if let Some((_, e)) = fail_at.filter(|(at, _)| *at == i) {
                return Err(e);
            }
            match m {
                Msg::FlowMod(fm) => {
                    last = Some((i, OfError::FLOW_MOD_EPERM));
                    if fm.buffer_id != NO_BUFFER {
                        return Err(OfError::BUFFER_UNKNOWN);
                    }
                    let r = t.apply_flow_mod(fm, now)?;
                    changed |= r.n_changed > 0;
                    removed.extend(r.removed);
                }
                Msg::GroupMod(gm) => {
                    last = Some((i, OfError::GROUP_EPERM));
                    removed.extend(t.apply_group_mod(gm, now)?);
                    changed = true;
                }
                Msg::PacketOut(po) => {
                    check_packet_out(po)?;
                    t.check_packet_out_actions(&po.actions)?;
                    return Ok(true);
                }
                Msg::PortMod(_) => return Ok(true),
                _ => return Err(OfError::BUNDLE_MSG_UNSUP),
            }
            Ok(false)
        };
        for (i, m) in msgs.into_iter().enumerate() {
            match apply(&mut t, i, m.borrow()) {
                Ok(true) => after.push((i, m)),
                Ok(false) => {}
                Err(e) => {
                    t.rollback();
                    return Err((i, e));
                }
            }
        }
        if let Some((probes, ports)) = &guard {
            if changed && !self.guard_passes(&t, probes, ports, "a bundle") {
                // Blamed on the bundle's last flow-mod or group-mod.
                t.rollback();
                return Err(last.unwrap_or((0, OfError::FLOW_MOD_EPERM)));
            }
        }
        t.commit();
        drop(t);
        if changed {
            self.bump();
        }
        self.send_removed(removed);
        Ok(after)
    }

    /// The checks a message gets when it is added to a bundle, before
    /// the commit (OVS `handle_bundle_add`): for a flow-mod those of
    /// [`Tables::check_flow_mod`] and the buffer, for a packet-out its
    /// buffer, input port and length; other messages are checked at
    /// commit.
    ///
    /// # Errors
    /// The message's error.
    pub fn check_bundled(&self, msg: &xennet_openflow::Msg) -> Result<(), OfError> {
        use xennet_openflow::Msg;
        match msg {
            Msg::FlowMod(fm) => {
                if fm.buffer_id != NO_BUFFER {
                    return Err(OfError::BUFFER_UNKNOWN);
                }
                Tables::check_flow_mod(fm)
            }
            Msg::PacketOut(po) => check_packet_out(po),
            _ => Ok(()),
        }
    }

    /// Attach the datapath this bridge's handler runs in: meters are
    /// configured there, and meter statistics read from it.
    pub fn attach_datapath(&self, dp: DpHandle) {
        // Never wait for the forwarding thread while holding the tables
        // lock: it may be waiting for that lock in an upcall.
        let meters: Vec<(u32, Meter)> = self.read().meters().map(|(i, m)| (i, m.clone())).collect();
        for (id, m) in meters {
            apply_meter_change(&dp, &MeterChange::Set(id, m));
        }
        *lock(&self.dp) = Some(dp);
    }

    /// `OFPMP_FLOW`.
    ///
    /// # Errors
    /// `BAD_TABLE_ID`.
    pub fn flow_stats(&self, req: &FlowStatsRequest) -> Result<Vec<FlowStats>, OfError> {
        self.read().flow_stats(req, Instant::now())
    }

    /// Every flow in `ovs-ofctl dump-flows` style, one per line:
    /// ` cookie=0x0, duration=1.5s, table=0, n_packets=0, n_bytes=0,
    /// priority=0 actions=NORMAL` (tables in order, priority high first).
    pub fn dump_flows(&self) -> String {
        let req = FlowStatsRequest {
            table_id: xennet_openflow::model::OFPTT_ALL,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            matcher: Match::CATCHALL,
        };
        let mut out = String::new();
        for f in self.flow_stats(&req).unwrap_or_default() {
            let m = xlate::match_text(&f.matcher);
            let sep = if m.is_empty() { "" } else { "," };
            let mut timeouts = String::new();
            if f.idle_timeout != 0 {
                timeouts.push_str(&format!("idle_timeout={}, ", f.idle_timeout));
            }
            if f.hard_timeout != 0 {
                timeouts.push_str(&format!("hard_timeout={}, ", f.hard_timeout));
            }
            out.push_str(&format!(
                " cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={}, {}priority={}{sep}{m} actions={}\n",
                f.cookie,
                f.duration_sec,
                f.duration_nsec / 1_000_000,
                f.table_id,
                f.packet_count,
                f.byte_count,
                timeouts,
                f.priority,
                xlate::instructions_text(&f.instructions),
            ));
        }
        out
    }

    /// `OFPMP_AGGREGATE`: `(packet_count, byte_count, flow_count)`.
    ///
    /// # Errors
    /// `BAD_TABLE_ID`.
    pub fn aggregate_stats(&self, req: &FlowStatsRequest) -> Result<(u64, u64, u32), OfError> {
        self.read().aggregate_stats(req)
    }

    /// `OFPMP_TABLE_FEATURES` query: every table's features, with its name.
    pub fn table_features(&self) -> Vec<xennet_openflow::model::TableFeatures> {
        let t = self.read();
        crate::features::table_features(&t.table_names(), t.max_entries())
    }

    /// `OFPMP_TABLE_FEATURES` set request `req` (every table's features;
    /// OVS `handle_table_features_change`): checked against what the tables
    /// support ([`crate::features::check_change`]), then the tables take
    /// their new names; returns the features as they now are (the reply).
    ///
    /// # Errors
    /// `OFPTFFC_BAD_TABLE`, `OFPTFFC_BAD_TYPE`, `OFPTFFC_EPERM`; nothing
    /// changes then.
    pub fn modify_table_features(
        &self,
        req: &[xennet_openflow::model::TableFeatures],
    ) -> Result<Vec<xennet_openflow::model::TableFeatures>, OfError> {
        let mut t = self.write();
        let ours = crate::features::table_features(&t.table_names(), t.max_entries());
        for (id, name) in crate::features::check_change(&ours, req)? {
            t.set_table_name(id, &name);
        }
        Ok(crate::features::table_features(
            &t.table_names(),
            t.max_entries(),
        ))
    }

    /// `OFPMP_TABLE`: all 254 tables.
    pub fn table_stats(&self) -> Vec<TableStats> {
        self.read().table_stats()
    }

    /// `OFPMP_GROUP` for a group or `OFPG_ALL`.
    pub fn group_stats(&self, group_id: u32) -> Vec<GroupStats> {
        self.read().group_stats(group_id, Instant::now())
    }

    /// `OFPMP_GROUP_DESC`.
    pub fn group_desc(&self) -> Vec<GroupDesc> {
        self.read().group_desc()
    }

    /// `OFPMP_METER_CONFIG` for a meter or `OFPM_ALL`.
    pub fn meter_config(&self, meter_id: u32) -> Vec<MeterConfig> {
        self.read().meter_config(meter_id)
    }

    /// `OFPMP_METER` for a meter or `OFPM_ALL`; packet and band counters
    /// come from the attached datapath (zero without one).
    pub fn meter_stats(&self, meter_id: u32) -> Vec<MeterStats> {
        let dp_stats = lock(&self.dp)
            .clone()
            .map(|dp| dp.meter_stats())
            .unwrap_or_default();
        let now = Instant::now();
        let t = self.read();
        t.meters()
            .filter(|(id, _)| meter_id == OFPM_ALL || *id == meter_id)
            .map(|(id, m)| {
                let d = now.saturating_duration_since(m.created);
                let c = dp_stats
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, c)| c.clone());
                let c = c.unwrap_or_default();
                MeterStats {
                    meter_id: id,
                    flow_count: t.meter_flow_count(id),
                    packet_in_count: c.packets,
                    byte_in_count: c.bytes,
                    duration_sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
                    duration_nsec: d.subsec_nanos(),
                    bands: if c.bands.len() == m.bands.len() {
                        c.bands
                    } else {
                        vec![(0, 0); m.bands.len()]
                    },
                }
            })
            .collect()
    }

    /// `OFPMP_GROUP_FEATURES`: all four group types, weights, liveness,
    /// chaining with checks; the actions translation supports.
    pub fn group_features(&self) -> GroupFeatures {
        let max = u32::try_from(MAX_GROUPS).unwrap_or(u32::MAX);
        GroupFeatures {
            types: 0xf,
            capabilities: 0xf,
            max_groups: [max; 4],
            actions: [SUPPORTED_ACTIONS; 4],
        }
    }

    /// `OFPMP_METER_FEATURES`: drop and DSCP-remark bands, kbit/s and
    /// packet/s, burst and stats.
    pub fn meter_features(&self) -> MeterFeatures {
        MeterFeatures {
            max_meter: u32::try_from(MAX_METERS).unwrap_or(u32::MAX),
            band_types: (1 << 1) | (1 << 2),
            capabilities: u32::from(
                meter_flags::KBPS | meter_flags::PKTPS | meter_flags::BURST | meter_flags::STATS,
            ),
            max_bands: u8::try_from(MAX_BANDS).unwrap_or(u8::MAX),
            max_color: 0,
        }
    }

    /// Answer the multipart requests that concern the pipeline (flow,
    /// aggregate, table, group, group-desc, group-features, meter,
    /// meter-config, meter-features and their Nicira flow/aggregate
    /// forms); `None` for the ones the connection layer answers itself
    /// (desc, ports, port-desc, queues, table-features).
    pub fn multipart(&self, req: &MpRequest) -> Option<Result<MpReply, OfError>> {
        Some(match req {
            MpRequest::Flow(r) => self.flow_stats(r).map(MpReply::Flow),
            MpRequest::NxFlow(r) => self.flow_stats(r).map(MpReply::NxFlow),
            MpRequest::Aggregate(r) => {
                self.aggregate_stats(r).map(|(p, b, f)| MpReply::Aggregate {
                    packet_count: p,
                    byte_count: b,
                    flow_count: f,
                })
            }
            MpRequest::NxAggregate(r) => {
                self.aggregate_stats(r)
                    .map(|(p, b, f)| MpReply::NxAggregate {
                        packet_count: p,
                        byte_count: b,
                        flow_count: f,
                    })
            }
            MpRequest::Table => Ok(MpReply::Table(self.table_stats())),
            MpRequest::Group(g) => Ok(MpReply::Group(self.group_stats(*g))),
            MpRequest::GroupDesc(g) => {
                let mut v = self.group_desc();
                v.retain(|d| *g == OFPG_ALL || d.group_id == *g);
                Ok(MpReply::GroupDesc(v))
            }
            MpRequest::GroupFeatures => Ok(MpReply::GroupFeatures(self.group_features())),
            MpRequest::Meter(m) => Ok(MpReply::Meter(self.meter_stats(*m))),
            MpRequest::MeterConfig(m) => Ok(MpReply::MeterConfig(self.meter_config(*m))),
            MpRequest::MeterFeatures => Ok(MpReply::MeterFeatures(self.meter_features())),
            MpRequest::Desc
            | MpRequest::TableFeatures(_)
            | MpRequest::PortStats(_)
            | MpRequest::PortDesc(_)
            | MpRequest::Queue { .. } => return None,
        })
    }

    /// Remove flows whose timeouts expired at `now` and queue their
    /// flow-removed messages; returns how many were removed. The
    /// connection layer must call it from its housekeeping about once a
    /// second (timeouts have one-second granularity, as in OpenFlow); the
    /// forwarding thread never writes the tables. Cheap when no rule has a
    /// timeout.
    pub fn expire(&self, now: Instant) -> usize {
        // Flow monitor updates a full event queue held back.
        self.publish_changes();
        let removed = {
            let mut t = self.write();
            if !t.has_timeouts() {
                return 0;
            }
            let before = t.n_rules();
            let removed = t.expire(now);
            let n = before - t.n_rules();
            if n > 0 {
                self.bump();
            }
            (n, removed)
        };
        self.send_removed(removed.1);
        removed.0
    }

    /// Set fail-open (see the module docs); changes revalidate.
    pub fn set_fail_open(&self, on: bool) {
        if self.fail_open.swap(on, Ordering::AcqRel) != on {
            self.bump();
        }
    }

    /// Whether fail-open is on.
    pub fn fail_open(&self) -> bool {
        self.fail_open.load(Ordering::Acquire)
    }

    /// Mark a port administratively or operationally down or up
    /// (`OFPPC_PORT_DOWN`, link state): fast-failover groups and outputs
    /// follow; changes revalidate. Ports the datapath disables or removes
    /// are not live either (the datapath flushes by itself then).
    pub fn set_port_live(&self, port: u32, live: bool) {
        let changed = {
            let mut d = self.down_ports.write().unwrap_or_else(|e| e.into_inner());
            if live {
                d.remove(&port)
            } else {
                d.insert(port)
            }
        };
        if changed {
            self.bump();
        }
    }

    /// `OFPT_PORT_MOD` (OpenFlow 1.3.5 §7.3.4.3): set the [`port_config`]
    /// bits of `port` under `mask` to those of `config` (other bits of
    /// `config` are ignored). A port with `PORT_DOWN` is not live. Changes
    /// revalidate (see [`crate::xlate`] for what each bit does). Returns
    /// the old and the new config, or `None` when nothing changed.
    pub fn set_port_config(&self, port: u32, config: u32, mask: u32) -> Option<(u32, u32)> {
        let (old, new) = {
            let mut c = self.port_configs.write().unwrap_or_else(|e| e.into_inner());
            let old = c.get(&port).copied().unwrap_or(0);
            let new = (old & !mask) | (config & mask);
            if new == old {
                return None;
            }
            if new == 0 {
                c.remove(&port);
            } else {
                c.insert(port, new);
            }
            (old, new)
        };
        self.fdb
            .set_no_flood(port, new & port_config::NO_FLOOD != 0);
        self.bump();
        Some((old, new))
    }

    /// The [`port_config`] bits of `port` (0 for a port never modified).
    pub fn port_config(&self, port: u32) -> u32 {
        self.port_configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .copied()
            .unwrap_or(0)
    }

    /// Police traffic received on `port` (OVS `Interface` columns
    /// `ingress_policing_rate`, kbit/s, and `ingress_policing_burst`, kbit;
    /// a burst of 0 means 8000 kbit, a rate of 0 turns policing off):
    /// packets beyond the rate are dropped before the pipeline's actions,
    /// by a datapath meter ([`POLICER_BASE`] + `port`) that every megaflow
    /// from the port runs first. Returns whether anything changed.
    pub fn set_ingress_policing(&self, port: u32, rate_kbps: u32, burst_kbit: u32) -> bool {
        let want =
            (rate_kbps > 0).then_some((rate_kbps, if burst_kbit == 0 { 8000 } else { burst_kbit }));
        let id = POLICER_BASE.saturating_add(port);
        let changed = {
            let mut p = self.policers.write().unwrap_or_else(|e| e.into_inner());
            let old = p.get(&port).copied();
            if old == want {
                false
            } else {
                match want {
                    Some(v) => p.insert(port, v),
                    None => p.remove(&port),
                };
                true
            }
        };
        if !changed {
            return false;
        }
        if let Some(dp) = lock(&self.dp).clone() {
            let r = match want {
                Some((rate, burst)) => dp.set_meter(
                    id,
                    MeterSpec {
                        pktps: false,
                        bands: vec![BandSpec {
                            kind: BandKind::Drop,
                            rate,
                            burst,
                        }],
                    },
                ),
                None => dp.del_meter(id),
            };
            if let Err(e) = r {
                tracing::warn!("{}: ingress policing of port {port}: {e}", self.name);
            }
        }
        self.bump();
        true
    }

    /// The ingress policer of `port`, as `(rate kbit/s, burst kbit)`.
    pub fn ingress_policing(&self, port: u32) -> Option<(u32, u32)> {
        self.policers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .copied()
    }

    /// A port was deleted: forget its MACs, policer and config, and
    /// revalidate.
    pub fn port_deleted(&self, port: u32) {
        self.set_ingress_policing(port, 0, 0);
        self.fdb.flush_port(port);
        self.down_ports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&port);
        self.port_configs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&port);
        self.fdb.set_no_flood(port, false);
        self.bump();
    }

    /// Translate one packet (the upcall path), its input port's ingress
    /// policer first.
    fn translate(
        &self,
        key: &FlowKey,
        pkt: &Packet,
        ports: &[OfPort],
        count: bool,
        trace: bool,
    ) -> (xlate::XlateOut, Option<String>) {
        self.translate_opts(key, pkt, ports, count, trace, true)
    }

    /// [`Ofproto::translate`], with NORMAL learning source MACs or not.
    fn translate_opts(
        &self,
        key: &FlowKey,
        pkt: &Packet,
        ports: &[OfPort],
        count: bool,
        trace: bool,
        learn: bool,
    ) -> (xlate::XlateOut, Option<String>) {
        let rid = key.get(xennet_datapath::flow::Field::RecircId) as u32;
        if rid != 0 {
            return self.resume(rid, key, ports, count, trace, learn);
        }
        let ingress_meter = self.policer_meter(key.in_port());
        if self.fail_open() {
            let mut n = lock(&self.normal);
            let configs = self.port_configs.read().unwrap_or_else(|e| e.into_inner());
            let config_of = |p: u32| configs.get(&p).copied().unwrap_or(0);
            let in_config = config_of(key.in_port());
            let mut up = if in_config & (port_config::PORT_DOWN | port_config::NO_RECV) != 0 {
                let mut up = Upcall::default();
                up.mask.set_exact(xennet_datapath::flow::Field::InPort);
                up
            } else {
                let was = n.set_learning(learn);
                let up = UpcallHandler::upcall(&mut *n, key, pkt, ports);
                n.set_learning(was);
                up
            };
            xlate::retain_forwardable(&mut up.actions, &config_of);
            if let Some(m) = ingress_meter {
                up.actions.insert(0, xennet_datapath::DpAction::Meter(m));
            }
            let out = xlate::XlateOut {
                upcall: up,
                error: None,
                final_flow: *key,
                last_hit: None,
                recircs: Vec::new(),
                learned: Vec::new(),
                fin_timeouts: Vec::new(),
            };
            let t =
                trace.then(|| "Fail-open: the pipeline is bypassed; NORMAL decides.\n".to_owned());
            return (out, t);
        }
        let tables = self.read();
        self.xlate_tables(&tables, key, ports, count, trace, learn)
    }

    /// Resume the translation frozen under recirculation id `rid` for
    /// the recirculated packet `key`. An unknown id (freed, or from
    /// another bridge) drops the packet, counted in
    /// [`crate::xlate::RECIRC_NO_STATE`], as OVS drops a packet without
    /// recirculation context. The ingress policer ran on the first pass.
    #[allow(clippy::too_many_arguments)]
    fn resume(
        &self,
        rid: u32,
        key: &FlowKey,
        ports: &[OfPort],
        count: bool,
        trace: bool,
        learn: bool,
    ) -> (xlate::XlateOut, Option<String>) {
        let tables = self.read();
        self.resume_in(&tables, rid, key, ports, count, trace, learn)
    }

    /// [`Ofproto::resume`] through `tables`.
    #[allow(clippy::too_many_arguments)]
    fn resume_in(
        &self,
        tables: &Tables,
        rid: u32,
        key: &FlowKey,
        ports: &[OfPort],
        count: bool,
        trace: bool,
        learn: bool,
    ) -> (xlate::XlateOut, Option<String>) {
        let Some(state) = self.recirc.get(rid) else {
            xlate::RECIRC_NO_STATE.fetch_add(1, Ordering::Relaxed);
            let mut up = Upcall::default();
            up.mask
                .set_exact(xennet_datapath::flow::Field::InPort)
                .set_exact(xennet_datapath::flow::Field::RecircId);
            let out = xlate::XlateOut {
                upcall: up,
                error: Some(xlate::XlateError::NoRecircContext),
                final_flow: *key,
                last_hit: None,
                recircs: Vec::new(),
                learned: Vec::new(),
                fin_timeouts: Vec::new(),
            };
            let t =
                trace.then(|| format!("No recirculation state for recirc_id={rid:#x}: dropped.\n"));
            return (out, t);
        };
        let mut normal = lock(&self.normal);
        let was = normal.set_learning(learn);
        let out = self.with_port_state(ports, |live, port_config| {
            xlate::xlate_resume(
                XlateIn {
                    tables,
                    normal: Some(&mut normal),
                    ports,
                    live,
                    port_config,
                    count_stats: count,
                    trace,
                    ingress_meter: None,
                    recirc: Some(&self.recirc),
                },
                key,
                &state,
            )
        });
        normal.set_learning(was);
        out
    }

    /// Live recirculation states of this bridge.
    pub fn recirc_ids(&self) -> usize {
        self.recirc.len()
    }

    /// Translate through `tables` (the pipeline, not fail-open).
    #[allow(clippy::too_many_arguments)]
    fn xlate_tables(
        &self,
        tables: &Tables,
        key: &FlowKey,
        ports: &[OfPort],
        count: bool,
        trace: bool,
        learn: bool,
    ) -> (xlate::XlateOut, Option<String>) {
        let ingress_meter = self.policer_meter(key.in_port());
        let mut normal = lock(&self.normal);
        let was = normal.set_learning(learn);
        let out = self.with_port_state(ports, |live, port_config| {
            xlate::xlate(
                XlateIn {
                    tables,
                    normal: Some(&mut normal),
                    ports,
                    live,
                    port_config,
                    count_stats: count,
                    trace,
                    ingress_meter,
                    recirc: Some(&self.recirc),
                },
                key,
            )
        });
        normal.set_learning(was);
        out
    }

    /// Run `f` with whether each port is live (among `ports`, not down in
    /// the datapath, not configured `PORT_DOWN`) and each port's OpenFlow
    /// config bits, as a translation needs them.
    fn with_port_state<R>(
        &self,
        ports: &[OfPort],
        f: impl FnOnce(&dyn Fn(u32) -> bool, &dyn Fn(u32) -> u32) -> R,
    ) -> R {
        let down = self.down_ports.read().unwrap_or_else(|e| e.into_inner());
        let configs = self.port_configs.read().unwrap_or_else(|e| e.into_inner());
        let config_of = |p: u32| configs.get(&p).copied().unwrap_or(0);
        let live = |p: u32| {
            ports.binary_search(&p).is_ok()
                && !down.contains(&p)
                && config_of(p) & port_config::PORT_DOWN == 0
        };
        f(&live, &config_of)
    }

    fn ports_now(&self) -> Vec<OfPort> {
        if let Some(dp) = lock(&self.dp).clone() {
            let p: Vec<OfPort> = dp
                .ports()
                .into_iter()
                .filter(|p| p.enabled)
                .map(|p| p.ofport)
                .collect();
            if !p.is_empty() {
                return p;
            }
        }
        lock(&self.seen_ports).clone()
    }

    /// `ofproto/trace`: how `key` (with `pkt`, if given, for NORMAL) goes
    /// through the pipeline, in OVS's format: each table with the matched
    /// rule and its actions, then `Final flow:`, `Megaflow:` and
    /// `Datapath actions:`. NORMAL may learn from a trace (OVS does not).
    pub fn trace(&self, key: &FlowKey, pkt: Option<&Packet>) -> String {
        self.trace_ct(key, pkt, &[])
    }

    /// [`Ofproto::trace`] with `ofproto/trace --ct-next` states (OVS
    /// `ofproto_trace`): the pass after each successive `ct` that
    /// recirculates gets the next of `ct_next` as its `ct_state`, and
    /// once they are used up the default, `trk|new`.
    pub fn trace_ct(&self, key: &FlowKey, pkt: Option<&Packet>, ct_next: &[u32]) -> String {
        let empty = Packet::new();
        let pkt = pkt.unwrap_or(&empty);
        let ports = self.ports_now();
        let (out, t) = self.translate(key, pkt, &ports, false, true);
        let t = t.unwrap_or_default();
        let policer = match self.ingress_policing(key.in_port()) {
            Some((rate, burst)) => format!(
                "Ingress policer of port {}: {rate} kbit/s, burst {burst} kbit \
                 (Interface ingress_policing_rate/_burst), before the pipeline\n\n",
                key.in_port()
            ),
            None => String::new(),
        };
        let bar = "-".repeat(self.name.len() + 10);
        let mut text = format!(
            "Flow: {key}\n\n{policer}bridge(\"{}\")\n{bar}\n{t}",
            self.name
        );
        // Follow the recirculations as OVS's trace does, in the order they
        // were made; after a `ct`, with the next `--ct-next` state or the
        // one a new connection gets.
        let mut ct_next = ct_next.iter();
        let mut queue: std::collections::VecDeque<(xlate::RecircNode, u32)> =
            out.recircs.into_iter().map(|n| (n, 1)).collect();
        let mut done = 0;
        while let Some((node, depth)) = queue.pop_front() {
            done += 1;
            if done > TRACE_MAX_RECIRCS {
                text.push_str("\n(further recirculations not traced)\n");
                break;
            }
            let mut k = node.key;
            k.set(Field::RecircId, u128::from(node.id));
            let how = if node.ct {
                let (cs, how) = match ct_next.next() {
                    Some(&cs) => (cs, format!(" - resume conntrack with ct_state={}", ct_state_flags(cs))),
                    None => (
                        xennet_datapath::conntrack::cs::TRK | xennet_datapath::conntrack::cs::NEW,
                        " - resume conntrack with default ct_state=trk|new (use --ct-next to customize)"
                            .to_string(),
                    ),
                };
                k.set(Field::CtState, u128::from(cs));
                k.set(Field::CtZone, u128::from(node.zone));
                how
            } else {
                String::new()
            };
            let eq = "=".repeat(79);
            let _ = write!(
                text,
                "\n{eq}\nrecirc({:#x}){how}\n{eq}\n\nFlow: {k}\n\nbridge(\"{}\")\n{bar}\n",
                node.id, self.name
            );
            let (o, t) = self.translate(&k, pkt, &ports, false, true);
            text.push_str(&t.unwrap_or_default());
            if depth < xennet_datapath::actions::MAX_RECIRC_DEPTH {
                queue.extend(o.recircs.into_iter().map(|n| (n, depth + 1)));
            }
        }
        text
    }

    /// The datapath meter of `port`'s ingress policer, if it has one.
    fn policer_meter(&self, port: u32) -> Option<u32> {
        self.ingress_policing(port)
            .map(|_| POLICER_BASE.saturating_add(port))
    }

    /// `OFPT_PACKET_OUT`: translate the actions for the packet arriving on
    /// `in_port` (`OFPP_CONTROLLER` allowed; `OFPP_TABLE` outputs run the
    /// pipeline) and execute them in `dp`.
    ///
    /// # Errors
    /// `BUFFER_UNKNOWN` (xennet never buffers), `BAD_PORT`, `BAD_PACKET`
    /// (shorter than an Ethernet header, 14 bytes, or over 65535 bytes), action errors (`BAD_OUT_PORT`,
    /// `BAD_OUT_GROUP`, ...), `BAD_REQUEST_EPERM` if the datapath is gone.
    pub fn packet_out(&self, po: &PacketOut, dp: &DpHandle) -> Result<(), OfError> {
        check_packet_out(po)?;
        self.read().check_packet_out_actions(&po.actions)?;
        let mut pkt = Packet::from_slice(&po.data);
        pkt.in_port = po.in_port;
        let key = extract(&pkt);
        self.execute_from_controller(pkt, &key, dp, |input, key| {
            xlate::xlate_actions(input, key, &po.actions)
        })
    }

    /// Translate a packet the controller sent (packet-out, `NXT_RESUME`)
    /// with `xlate` on its flow `key` (which may carry pipeline fields the
    /// packet does not: `NXT_RESUME`), over the datapath's enabled ports
    /// (no ingress meter: the packet comes from the controller, not the
    /// port), credit the rules it hit, apply what it learned and execute
    /// the result on `dp`.
    ///
    /// # Errors
    /// `BAD_REQUEST_EPERM` if the datapath is gone.
    fn execute_from_controller(
        &self,
        pkt: Packet,
        key: &FlowKey,
        dp: &DpHandle,
        xlate: impl FnOnce(XlateIn<'_>, &FlowKey) -> (xlate::XlateOut, Option<String>),
    ) -> Result<(), OfError> {
        let ports: Vec<OfPort> = dp
            .ports()
            .into_iter()
            .filter(|p| p.enabled)
            .map(|p| p.ofport)
            .collect();
        let (out, _) = {
            let tables = self.read();
            let mut normal = lock(&self.normal);
            self.with_port_state(&ports, |live, port_config| {
                xlate(
                    XlateIn {
                        tables: &tables,
                        normal: Some(&mut normal),
                        ports: &ports,
                        live,
                        port_config,
                        count_stats: true,
                        trace: false,
                        ingress_meter: None,
                        recirc: Some(&self.recirc),
                    },
                    key,
                )
            })
        };
        let now = Instant::now();
        for c in &out.upcall.counters {
            c.credit(1, pkt.len() as u64, now);
        }
        self.apply_learned(&out.learned);
        self.apply_fin_timeouts(&out.fin_timeouts);
        dp.execute(pkt, out.upcall.actions)
            .map_err(|_| OfError::BAD_REQUEST_EPERM)
    }

    /// `NXT_RESUME` (OVS `handle_nxt_resume`, `ofproto-dpif.c`
    /// `nxt_resume`, `xlate_resume`): go on with the translation a
    /// `controller(pause)` froze, from the continuation the controller
    /// handed back, on the packet and pipeline fields (in_port,
    /// registers, metadata, tunnel, packet mark, conntrack) it sent, and
    /// execute the result. Nothing of the pause was kept here: the
    /// continuation is checked as a packet-out is (its actions, action
    /// set and `write_actions` against the tables, its tables in range).
    /// A datagram the tracker reassembled before the pause gets its
    /// fragment size back from the continuation (xennet's `FRAG`
    /// property), so output still cuts it into fragments of that size.
    /// Refusals are counted in [`RESUME_REFUSED`] and logged at most once
    /// a second.
    ///
    /// # Errors
    /// `NXR_STALE` without a continuation or with one from another bridge
    /// instance (as OVS, whose bridge lookup by UUID fails); `BAD_PACKET`
    /// for a packet shorter than an Ethernet header; the action checks'
    /// errors; `BAD_INST_TABLE_ID` for a `goto_table` out of range;
    /// `BAD_REQUEST_EPERM` if the datapath is gone.
    pub fn nxt_resume(&self, pin: &PacketIn, dp: &DpHandle) -> Result<(), OfError> {
        let r = self.nxt_resume_inner(pin, dp);
        match r {
            Ok(()) => {
                RESUMED.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let n = RESUME_REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
                static LAST: AtomicU64 = AtomicU64::new(0);
                if xlate::once_a_second(&LAST) {
                    tracing::warn!(bridge = %self.name, refused = n, "NXT_RESUME refused: {e}");
                }
            }
        }
        r
    }

    fn nxt_resume_inner(&self, pin: &PacketIn, dp: &DpHandle) -> Result<(), OfError> {
        use crate::recirc::FrozenOp;
        let Some(cont) = pin.continuation.as_deref() else {
            return Err(OfError::NXR_STALE);
        };
        if cont.bridge != self.instance {
            return Err(OfError::NXR_STALE);
        }
        let eth = xennet_datapath::packet::ethernet::HEADER_LEN;
        if pin.data.len() < eth || pin.data.len() > 65_535 {
            return Err(OfError::BAD_PACKET);
        }
        {
            let tables = self.read();
            let mut acts = Vec::new();
            for op in &cont.ops {
                match op {
                    FrozenOp::Act(a) => acts.push(a.clone()),
                    FrozenOp::WriteActions(w) => tables.check_packet_out_actions(w)?,
                    FrozenOp::GotoTable(t) if usize::from(*t) >= crate::tables::N_TABLES => {
                        return Err(OfError::BAD_INST_TABLE_ID);
                    }
                    _ => {}
                }
            }
            tables.check_packet_out_actions(&acts)?;
            tables.check_packet_out_actions(&cont.action_set)?;
        }
        let mut pkt = Packet::from_slice(&pin.data);
        pkt.in_port = pin.in_port;
        // A datagram the tracker reassembled before the pause leaves as
        // fragments of the size it arrived in, as without the pause
        // (the decoder refused a size below the minimum fragment size).
        if cont.frag_max_size != 0 {
            pkt.md.frag = xennet_datapath::buffer::FragMeta {
                max_size: cont.frag_max_size,
                id: cont.frag_id,
            };
        }
        let mut key = extract(&pkt);
        key.set(Field::Metadata, u128::from(pin.metadata));
        for &(f, v) in &pin.pipeline {
            let (kf, shift, bits) = f.layout();
            // Checked shifts: the layout comes from controller input.
            let ones = 1u128.checked_shl(bits).map_or(u128::MAX, |b| b - 1);
            let fm = ones.checked_shl(shift).unwrap_or(0);
            let cur = key.get(kf);
            key.set(kf, (cur & !fm) | (v.checked_shl(shift).unwrap_or(0) & fm));
            if let Some(i) = f.tun_metadata_index() {
                let p = key.get(Field::TunMdPresent);
                let bit = 1u128.checked_shl(u32::from(i)).unwrap_or(0) & u128::from(u64::MAX);
                key.set(Field::TunMdPresent, p | bit);
            }
        }
        self.execute_from_controller(pkt, &key, dp, |input, key| {
            xlate::xlate_continue(input, key, cont)
        })
    }

    /// `NXT_TLV_TABLE_MOD` (OVS `handle_tlv_table_mod`): change the
    /// Geneve option map, all or nothing (see [`xennet_openflow::tlv`]).
    /// Refusals for xennet's limits are logged with the limit.
    ///
    /// # Errors
    /// The `NXTTMFC_*` error OVS gives.
    pub fn handle_tlv_table_mod(&self, m: &TlvTableMod) -> Result<(), OfError> {
        let t = self.tlv_mod.lock().unwrap_or_else(|e| e.into_inner());
        let mut new = TlvMap::clone(&self.tlv.load());
        let r = {
            let tables = self.read();
            new.apply(m, &|i| tables.uses_tun_metadata(i))
        };
        if r.is_ok() {
            self.tlv.store(Arc::new(new));
        }
        match r {
            Err(e) if e == OfError::NXTTMFC_TABLE_FULL => tracing::warn!(
                bridge = %self.name,
                space = xennet_datapath::flow::TUN_OPT_SPACE,
                "TLV map refused (NXTTMFC_TABLE_FULL): the Geneve options would exceed \
                 xennet's 32 bytes of option space per flow"
            ),
            Err(e) if e == OfError::NXTTMFC_BAD_OPT_LEN => tracing::warn!(
                bridge = %self.name,
                max = xennet_openflow::tlv::MAX_OPT_LEN,
                "TLV map refused (NXTTMFC_BAD_OPT_LEN): xennet maps Geneve options of at \
                 most 16 bytes"
            ),
            Err(_) => {}
            Ok(()) => {
                drop(t);
                // Translations that read tunnel metadata may change.
                self.bump();
            }
        }
        r
    }

    /// `NXT_TLV_TABLE_REPLY` for the current Geneve option map.
    pub fn tlv_table_reply(&self) -> TlvTableReply {
        self.tlv.load().reply()
    }

    /// The Geneve option map, for tunnel ports: they fill a decapsulated
    /// packet's key with [`TlvMap::decode_geneve`] and build options with
    /// [`TlvMap::encode_geneve`]; and for the codec
    /// ([`xennet_openflow::tlv::with_map`]).
    pub fn tlv_shared(&self) -> Arc<TlvMap> {
        self.tlv.load_full()
    }

    /// The cell holding the Geneve option map, for a tunnel port to read
    /// per packet without a lock or a reference count
    /// ([`ArcSwap::load`]); `NXT_TLV_TABLE_MOD` stores a new map in it, so
    /// the next packet sees the change. When the bridge goes, the cell is
    /// emptied: a port outliving its bridge knows no options.
    pub fn tlv_handle(&self) -> Arc<ArcSwap<TlvMap>> {
        self.tlv.clone()
    }

    /// `learn` counters.
    pub fn learn_stats(&self) -> &LearnStats {
        &self.learn_stats
    }

    /// Learned flows in the tables, and the cap on them.
    pub fn learned_flows(&self) -> (usize, usize) {
        let t = self.read();
        (t.n_learned(), t.max_learned())
    }

    /// Set the cap on learned flows (see [`crate::tables::DEFAULT_MAX_LEARNED`]).
    pub fn set_max_learned(&self, n: usize) {
        self.write().set_max_learned(n);
    }

    /// Execute the flow-mods `learn` actions built in a translation
    /// (OVS `ofproto_flow_mod_learn`), after it, with the tables written
    /// under their lock: a new flow bumps the generation (so the megaflow
    /// that learned it is not installed and the next packet translates
    /// against the new tables), a refresh does not. Refusals and errors are
    /// counted and logged at most once a second.
    fn apply_learned(&self, learned: &[(FlowMod, u32)]) {
        if learned.is_empty() {
            return;
        }
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = Instant::now();
        let mut changed = false;
        let mut removed = Vec::new();
        {
            let mut t = self.write();
            for (fm, limit) in learned {
                let st = &self.learn_stats;
                match t.learn(fm, *limit, now) {
                    Ok((LearnOutcome::Added, r)) => {
                        changed = true;
                        removed.extend(r);
                        st.added.fetch_add(1, Ordering::Relaxed);
                        LEARN_TOTALS.added.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((LearnOutcome::Refreshed, _)) => {
                        st.refreshed.fetch_add(1, Ordering::Relaxed);
                        LEARN_TOTALS.refreshed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((LearnOutcome::LimitReached, _)) => {
                        st.limit_reached.fetch_add(1, Ordering::Relaxed);
                        LEARN_TOTALS.limit_reached.fetch_add(1, Ordering::Relaxed);
                        if xlate::once_a_second(&LAST) {
                            tracing::info!(
                                bridge = %self.name,
                                cookie = format_args!("{:#x}", fm.cookie),
                                table = fm.table_id,
                                limit,
                                "learn limit for flow reached"
                            );
                        }
                    }
                    Ok((LearnOutcome::CapReached, _)) => {
                        st.cap_reached.fetch_add(1, Ordering::Relaxed);
                        LEARN_TOTALS.cap_reached.fetch_add(1, Ordering::Relaxed);
                        if xlate::once_a_second(&LAST) {
                            tracing::warn!(
                                bridge = %self.name,
                                max = t.max_learned(),
                                total = st.cap_reached.load(Ordering::Relaxed),
                                "learned flows at the bridge's cap: learn refused"
                            );
                        }
                    }
                    Err(e) => {
                        st.errors.fetch_add(1, Ordering::Relaxed);
                        LEARN_TOTALS.errors.fetch_add(1, Ordering::Relaxed);
                        if xlate::once_a_second(&LAST) {
                            tracing::warn!(
                                bridge = %self.name,
                                table = fm.table_id,
                                error = ?e,
                                "learn action execution failed"
                            );
                        }
                    }
                }
            }
        }
        if changed {
            self.bump();
        }
        self.send_removed(removed);
    }

    /// Lower the timeouts of the rules whose `fin_timeout` a FIN or RST
    /// triggered (OVS `ofproto_rule_reduce_timeouts`).
    fn apply_fin_timeouts(&self, fins: &[xlate::FinTimeout]) {
        if fins.is_empty() {
            return;
        }
        let mut t = self.write();
        for f in fins {
            t.reduce_timeouts(f.table, &f.matcher, f.priority, f.idle, f.hard);
        }
    }

    /// Remember (or forget, when `learned` is empty) the learned flows of
    /// the megaflow `key`/`mask` will install, for refreshing.
    fn note_learned(
        &self,
        key: &FlowKey,
        mask: &xennet_datapath::FlowMask,
        learned: Vec<(FlowMod, u32)>,
    ) {
        let mut m = mask.datapath_only();
        m.set_exact(xennet_datapath::flow::Field::InPort);
        let k = key.masked(&m);
        let mut map = lock(&self.learn_refresh);
        if learned.is_empty() {
            if !map.is_empty() {
                map.remove(&k);
            }
            return;
        }
        let gen = self.generation();
        if map.len() >= LEARN_REFRESH_MAX && !map.contains_key(&k) {
            map.retain(|_, (g, _)| *g == gen);
            if map.len() >= LEARN_REFRESH_MAX {
                self.learn_stats.untracked.fetch_add(1, Ordering::Relaxed);
                LEARN_TOTALS.untracked.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        map.insert(k, (gen, learned));
    }

    /// Traffic hit the megaflows `keys` (masked): refresh the flows their
    /// `learn` actions learned (re-adding those that expired meanwhile).
    fn refresh_learned(&self, keys: &[FlowKey]) {
        let gen = self.generation();
        let todo: Vec<(FlowMod, u32)> = {
            let mut map = lock(&self.learn_refresh);
            if map.is_empty() {
                return;
            }
            map.retain(|_, (g, _)| *g == gen);
            keys.iter()
                .filter_map(|k| map.get(k))
                .flat_map(|(_, l)| l.iter().cloned())
                .collect()
        };
        self.apply_learned(&todo);
    }

    /// The upcall handler to give [`xennet_datapath::Datapath::spawn`].
    pub fn upcall_handler(self: &Arc<Self>) -> Box<dyn UpcallHandler> {
        Box::new(Handler { of: self.clone() })
    }

    /// A packet-in's pipeline fields: the registers and the like the
    /// translation kept, then each present Geneve option that the TLV
    /// map names, as `tun_metadata<i>` (OVS `tun_metadata_get_fmd`).
    fn pin_pipeline(&self, e: &crate::pin_extras::PinExtras) -> Vec<(OxmField, u128)> {
        let mut v = e.pipeline.clone();
        if let Some(w) = e.tun_md {
            let map = self.tlv.load();
            for m in map.mappings() {
                let (Ok(index), Some(loc)) = (u8::try_from(m.index), map.loc(m.index)) else {
                    continue;
                };
                if w.present & 1u64.checked_shl(u32::from(index)).unwrap_or(0) == 0 {
                    continue;
                }
                let (kf, shift, bits) = loc.layout();
                let word = match kf {
                    Field::TunOpts(n) => w.opts.get(usize::from(n)).copied().unwrap_or(0),
                    _ => continue,
                };
                let mask = 1u128.checked_shl(bits).map_or(u128::MAX, |b| b - 1);
                let f = OxmField::TunMetadata {
                    index,
                    offset: loc.offset,
                    len: m.option_len,
                };
                v.push((f, word.checked_shr(shift).unwrap_or(0) & mask));
            }
        }
        v
    }

    fn packet_in(&self, ud: &Userdata, pkt: &Packet) {
        let extras = crate::pin_extras::get(ud.extra);
        let data = pkt.data();
        let n = if ud.max_len == OFPCML_NO_BUFFER {
            data.len()
        } else {
            data.len().min(usize::from(ud.max_len))
        };
        self.send_event(OfEvent::PacketIn(
            PacketIn {
                buffer_id: NO_BUFFER,
                total_len: u16::try_from(data.len()).unwrap_or(u16::MAX),
                reason: ud.reason,
                table_id: ud.table_id,
                cookie: ud.cookie,
                in_port: pkt.in_port,
                metadata: ud.metadata,
                data: data[..n].to_vec(),
                pipeline: extras
                    .as_ref()
                    .map(|e| self.pin_pipeline(e))
                    .unwrap_or_default(),
                userdata: extras
                    .as_ref()
                    .map(|e| e.userdata.clone())
                    .unwrap_or_default(),
                continuation: extras.as_ref().and_then(|e| {
                    e.continuation.as_ref().map(|c| {
                        let mut c = c.clone();
                        c.bridge = self.instance;
                        // A reassembled datagram keeps its fragment size
                        // through the pause (`NXT_RESUME` restores it).
                        c.frag_max_size = pkt.md.frag.max_size;
                        c.frag_id = pkt.md.frag.id;
                        c
                    })
                }),
            },
            extras.map_or(0, |e| e.controller_id),
        ));
    }
}

fn apply_meter_change(dp: &DpHandle, c: &MeterChange) {
    match c {
        MeterChange::Set(id, m) => {
            let _ = dp.set_meter(*id, meter_spec(m));
        }
        MeterChange::Del(id) => {
            let _ = dp.del_meter(*id);
        }
    }
}

/// The datapath form of a meter (burst only with `OFPMF_BURST`).
fn meter_spec(m: &Meter) -> MeterSpec {
    MeterSpec {
        pktps: m.flags & meter_flags::PKTPS != 0,
        bands: m
            .bands
            .iter()
            .map(|b| BandSpec {
                kind: match b.kind {
                    MeterBandKind::Drop => BandKind::Drop,
                    MeterBandKind::DscpRemark { prec_level } => BandKind::DscpRemark(prec_level),
                },
                rate: b.rate,
                burst: if m.flags & meter_flags::BURST != 0 {
                    b.burst_size
                } else {
                    0
                },
            })
            .collect(),
    }
}

/// The forwarding thread's view of an [`Ofproto`].
#[derive(Debug)]
struct Handler {
    of: Arc<Ofproto>,
}

impl UpcallHandler for Handler {
    fn upcall(&mut self, key: &FlowKey, pkt: &Packet, ports: &[OfPort]) -> Upcall {
        {
            let mut seen = lock(&self.of.seen_ports);
            if seen.as_slice() != ports {
                seen.clear();
                seen.extend_from_slice(ports);
            }
        }
        let (out, _) = self.of.translate(key, pkt, ports, true, false);
        self.of.apply_fin_timeouts(&out.fin_timeouts);
        let mut up = out.upcall;
        if out.learned.is_empty() {
            self.of.note_learned(key, &up.mask, Vec::new());
        } else {
            self.of.apply_learned(&out.learned);
            up.tags.add(learn_tag());
            self.of.note_learned(key, &up.mask, out.learned);
        }
        up
    }

    fn generation(&self) -> u64 {
        self.of.generation()
    }

    fn dirty_tags(&self) -> Tags {
        self.of.fdb.dirty_tags()
    }

    fn take_dirty_tags(&mut self) -> Tags {
        self.of.fdb.take_dirty_tags()
    }

    fn megaflows_used(&mut self, keys: &[FlowKey], now: Instant) {
        lock(&self.of.normal).refresh(keys, now);
        self.of.refresh_learned(keys);
    }

    fn recirc_ids_used(&mut self, ids: &[u32], now: Instant) {
        self.of.recirc.release_unused(ids, now);
    }

    fn userdata_used(&mut self, extras: &[u32], now: Instant) {
        crate::pin_extras::housekeeping(extras, now);
    }

    fn housekeeping(&mut self, now: Instant) {
        // MAC aging only: flow expiry writes the tables, which the
        // forwarding thread never does (see `Ofproto::expire`).
        UpcallHandler::housekeeping(&mut *lock(&self.of.normal), now);
    }

    fn userspace(&mut self, userdata: &Userdata, _key: &FlowKey, pkt: &Packet) {
        self.of.packet_in(userdata, pkt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While another thread holds the tables lock (a forwarding thread's
    /// translation, a long dump), the fast path gives the flow-mod back
    /// untouched instead of waiting; once the lock is free it applies it.
    #[test]
    fn try_flow_mod_does_not_wait_for_the_tables_lock() {
        let of = Ofproto::new("br0", 1, FailMode::Secure);
        let fm = FlowMod::add(0, 1, Match::CATCHALL, Instructions::default());
        let reader = of.read();
        let g = of.generation();
        assert_eq!(of.try_handle_flow_mod(&fm), None);
        drop(reader);
        assert_eq!(of.generation(), g);
        assert!(of.all_rules().rules.is_empty());
        assert_eq!(of.try_handle_flow_mod(&fm), Some(Ok(())));
        assert_eq!(of.all_rules().rules.len(), 1);
        assert_ne!(of.generation(), g);
    }
}
