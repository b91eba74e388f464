//! The OpenFlow state of one bridge: flow tables, groups and meters, with
//! OpenFlow 1.3 flow-mod / group-mod / meter-mod semantics (ONF TS-006
//! 1.3.5 §6.4–§6.6, §7.3.4; OVS `ofproto/ofproto.c` `add_flow_start`,
//! `modify_flows_start__`, `delete_flows_start__`, `add_group_start`,
//! `handle_meter_mod`) and statistics.
//!
//! Everything here is plain data behind the caller's lock: the bridge
//! ([`crate::Ofproto`]) holds a `RwLock<Tables>`; translation reads it in
//! upcalls. [`Tables::generation`] changes on every modification, so the
//! datapath flushes its megaflows (coarse revalidation).
//!
//! Bounds: [`N_TABLES`] tables of at most `max_flows` rules each
//! (`TABLE_FULL` beyond), [`MAX_GROUPS`] groups of [`MAX_BUCKETS`] buckets,
//! [`xennet_datapath::meter::MAX_METERS`] meters of
//! [`xennet_datapath::meter::MAX_BANDS`] bands, [`MAX_ACTIONS`] actions per
//! list.
//!
//! Not supported (answered with errors): buffered packets, 1.0-style
//! "modify adds when nothing matches" (the 1.0 codec's caller may add).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xennet_datapath::flow::Field;
use xennet_datapath::meter::{MAX_BANDS, MAX_METERS};
use xennet_datapath::RuleCounters;
use xennet_openflow::field::Prereq;
use xennet_openflow::model::{
    flow_flags, meter_flags, Action, Bucket, FlowMod, FlowModCommand, FlowRemoved, FlowStats,
    FlowStatsRequest, GroupDesc, GroupMod, GroupModCommand, GroupStats, GroupType, Instructions,
    Learn, LearnDst, LearnSrc, Match, MeterBand, MeterConfig, MeterMod, MeterModCommand, MfField,
    SelectionKind, SelectionMethod, Subfield, TableStats, NX_LEARN_F_DELETE_LEARNED, OFPG_ALL,
    OFPG_ANY, OFPM_ALL, OFPP_ALL, OFPP_ANY, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL,
    OFPP_MAX, OFPP_NORMAL, OFPP_TABLE, OFPTT_ALL,
};
use xennet_openflow::OfError;

use crate::classifier::{full_match, minimatch, normalize, Classifier};
use xennet_datapath::flow::MiniMatch;

/// Number of flow tables (0..=253, as OVS).
pub const N_TABLES: usize = 254;
/// Default most rules per table (OVS has no default limit; we bound
/// memory).
pub const DEFAULT_MAX_FLOWS: usize = 1_000_000;
/// Most groups per bridge.
pub const MAX_GROUPS: usize = 4096;
/// Most buckets per group.
pub const MAX_BUCKETS: usize = 256;
/// Most actions in one action list.
pub const MAX_ACTIONS: usize = 1024;
/// `OFPG_MAX`: highest group id.
pub const OFPG_MAX: u32 = 0xffff_ff00;
/// `OFPM_MAX`: highest meter id.
pub const OFPM_MAX: u32 = 0xffff_0000;
/// Default most flows `learn` actions may have added and not yet removed,
/// over all tables of a bridge ([`Tables::set_max_learned`]); beyond it a
/// learn fails as over its `limit` (OVS bounds learned flows only by
/// each action's `limit` and the table sizes).
pub const DEFAULT_MAX_LEARNED: usize = 100_000;

/// What [`Tables::learn`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A new flow (or a changed one replacing its old form) was
    /// installed: translations may change.
    Added,
    /// The identical flow was there: its hard timeout starts again (OVS
    /// `ofproto_flow_mod_learn_refresh`); nothing else changes.
    Refreshed,
    /// The action's `limit` of flows with its cookie in the table is
    /// reached (OVS: "Learn limit for flow ... reached").
    LimitReached,
    /// The bridge's cap on learned flows ([`Tables::max_learned`]) is
    /// reached.
    CapReached,
}

/// `ofp_flow_removed_reason`.
pub mod removed_reason {
    /// `OFPRR_IDLE_TIMEOUT`.
    pub const IDLE_TIMEOUT: u8 = 0;
    /// `OFPRR_HARD_TIMEOUT`.
    pub const HARD_TIMEOUT: u8 = 1;
    /// `OFPRR_DELETE`.
    pub const DELETE: u8 = 2;
    /// `OFPRR_GROUP_DELETE`.
    pub const GROUP_DELETE: u8 = 3;
    /// `OFPRR_METER_DELETE`.
    pub const METER_DELETE: u8 = 4;
}

/// One flow entry (OVS `struct rule`).
#[derive(Debug)]
pub struct Rule {
    /// Table it lives in.
    pub table_id: u8,
    /// Match, compact (shared with the classifier's copy; expand with
    /// [`crate::classifier::full_match`]).
    pub matcher: MiniMatch,
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// Idle timeout in seconds (0 = none).
    pub idle_timeout: u16,
    /// Hard timeout in seconds (0 = none).
    pub hard_timeout: u16,
    /// [`flow_flags`].
    pub flags: u16,
    /// Instructions.
    pub instructions: Instructions,
    /// When added (duration starts here).
    pub created: Instant,
    /// When added or last modified (idle timeouts count from here if the
    /// rule was never used since).
    pub modified: Instant,
    /// Packets, bytes and last use, shared with the megaflows.
    pub counters: Arc<RuleCounters>,
    /// Added by a `learn` action (counted against
    /// [`Tables::max_learned`]).
    pub learned: bool,
}

impl Rule {
    /// Every action of the rule (apply then write).
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.instructions
            .apply
            .iter()
            .flatten()
            .chain(self.instructions.write.iter().flatten())
    }

    /// Whether the rule outputs to `port` (OVS `ofproto_rule_has_out_port`;
    /// `OFPP_ANY` matches every rule).
    pub fn has_out_port(&self, port: u32) -> bool {
        port == OFPP_ANY
            || self
                .actions()
                .any(|a| matches!(a, Action::Output { port: p, .. } if *p == port))
    }

    /// `(cookie, table)` of each `learn(delete_learned)` among the rule's
    /// actions (OVS `next_learn_with_delete`: top-level actions only).
    fn delete_learned(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        self.actions().filter_map(|a| match a {
            Action::Learn(l) if l.flags & NX_LEARN_F_DELETE_LEARNED != 0 => {
                Some((l.cookie, l.table_id))
            }
            _ => None,
        })
    }

    /// Whether the rule uses group `group` (`OFPG_ANY` matches every rule).
    pub fn has_out_group(&self, group: u32) -> bool {
        group == OFPG_ANY || self.actions().any(|a| *a == Action::Group(group))
    }

    fn last_used(&self) -> Instant {
        self.counters
            .used()
            .map_or(self.modified, |u| u.max(self.modified))
    }

    fn duration(&self, now: Instant) -> (u32, u32) {
        split_duration(now.saturating_duration_since(self.created))
    }

    fn removed(&self, reason: u8, now: Instant) -> FlowRemoved {
        let (duration_sec, duration_nsec) = self.duration(now);
        FlowRemoved {
            cookie: self.cookie,
            priority: self.priority,
            reason,
            table_id: self.table_id,
            duration_sec,
            duration_nsec,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            packet_count: self.counters.packets(),
            byte_count: self.counters.bytes(),
            matcher: full_match(&self.matcher),
        }
    }

    fn stats(&self, now: Instant) -> FlowStats {
        let (duration_sec, duration_nsec) = self.duration(now);
        let age = |t: Instant| u16::try_from(now.saturating_duration_since(t).as_secs()).ok();
        FlowStats {
            table_id: self.table_id,
            duration_sec,
            duration_nsec,
            priority: self.priority,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            flags: self.flags,
            cookie: self.cookie,
            packet_count: self.counters.packets(),
            byte_count: self.counters.bytes(),
            idle_age: Some(self.last_used()).and_then(age),
            hard_age: age(self.modified),
            matcher: full_match(&self.matcher),
            instructions: self.instructions.clone(),
        }
    }
}

/// Check a subfield action's field at flow-mod time, as OVS
/// `mf_check_src` / `mf_check_dst`: the bits lie within the field
/// (`BAD_SET_LEN`), a destination is writable (`BAD_SET_ARGUMENT`, or
/// `BAD_SET_TYPE` where xennet cannot write it yet), and the match `m` (if
/// any) meets the field's prerequisite (`MATCH_INCONSISTENT`).
fn check_subfield_action(sf: &Subfield, dst: bool, m: Option<&Match>) -> Result<(), OfError> {
    let r = if dst {
        xennet_openflow::nx_action::check_dst(sf)
    } else {
        xennet_openflow::nx_action::check_subfield(sf)
    };
    r.map_err(|e| e.err)?;
    let prereq = match sf.field {
        MfField::Oxm(f) => f.prereq(),
        MfField::IpTos => Prereq::Ip,
        MfField::VlanTci | MfField::InPort16 => Prereq::None,
    };
    if let Some(m) = m {
        if !m.satisfies(prereq) {
            return Err(OfError::MATCH_INCONSISTENT);
        }
    }
    Ok(())
}

/// OVS `learn_check`: a field source meets the flow's match
/// prerequisites; each match destination meets those of the learned
/// match built so far (earlier immediate matches count, so
/// `eth_type=0x800,NXM_OF_IP_DST[]=..` is fine); a load destination is
/// writable. Learning into a table beyond [`N_TABLES`] is
/// `BAD_ARGUMENT`.
fn check_learn(l: &Learn, m: Option<&Match>) -> Result<(), OfError> {
    if usize::from(l.table_id) >= N_TABLES {
        return Err(OfError::BAD_ACTION_ARGUMENT);
    }
    if let Some(d) = &l.result_dst {
        check_subfield_action(d, true, m)?;
    }
    let mut learned = Match::CATCHALL;
    for spec in &l.specs {
        if let LearnSrc::Field(src) = &spec.src {
            check_subfield_action(src, false, m)?;
            if src.n_bits != spec.n_bits {
                return Err(OfError::BAD_SET_LEN);
            }
        }
        match (&spec.dst, &spec.src) {
            (LearnDst::Match(d), src) => {
                check_subfield_action(d, false, Some(&learned))?;
                if let LearnSrc::Imm(v) = src {
                    learned.write_subfield(d, *v);
                }
            }
            (LearnDst::Load(d), _) => check_subfield_action(d, true, Some(&learned))?,
            (LearnDst::Output, _) => {}
        }
    }
    Ok(())
}

/// Whether `a` names `tun_metadata<index>` (a set-field, load, move,
/// stack, output, multipath, bundle, learn or check_pkt_larger field, in
/// nested actions too).
fn action_uses_tun_metadata(a: &Action, index: u16) -> bool {
    let oxm = |f: &xennet_openflow::model::OxmField| f.tun_metadata_index() == Some(index as u8);
    let mf = |f: &MfField| matches!(f, MfField::Oxm(o) if oxm(o));
    let sf = |s: &Subfield| mf(&s.field);
    match a {
        Action::SetField { field, .. } => oxm(field),
        Action::Load { dst, .. } => sf(dst),
        Action::Move { src, dst } => sf(src) || sf(dst),
        Action::StackPush(s) | Action::StackPop(s) => sf(s),
        Action::OutputReg { src, .. } => sf(src),
        Action::CheckPktLarger { dst, .. } => sf(dst),
        Action::Multipath(mp) => sf(&mp.dst),
        Action::Bundle(b) => b.dst.as_ref().is_some_and(sf),
        Action::Clone(acts) => acts.iter().any(|a| action_uses_tun_metadata(a, index)),
        Action::Ct(ct) => ct
            .actions
            .iter()
            .any(|a| action_uses_tun_metadata(a, index)),
        Action::Learn(l) => {
            l.result_dst.as_ref().is_some_and(sf)
                || l.specs.iter().any(|s| {
                    matches!(&s.src, LearnSrc::Field(f) if sf(f))
                        || matches!(&s.dst, LearnDst::Match(f) | LearnDst::Load(f) if sf(f))
                })
        }
        _ => false,
    }
}

/// `conjunction` actions may be combined only with other `conjunction`s
/// and `note`s (OVS `ofpacts_verify`, which answers
/// `NXBAC_BAD_CONJUNCTION`; xennet has no Nicira action errors and answers
/// `OFPBAC_BAD_ARGUMENT`).
fn check_conjunction_only(actions: &[Action]) -> Result<(), OfError> {
    let conj = actions
        .iter()
        .any(|a| matches!(a, Action::Conjunction { .. }));
    if conj
        && !actions
            .iter()
            .all(|a| matches!(a, Action::Conjunction { .. } | Action::Note(_)))
    {
        return Err(OfError::BAD_ACTION_ARGUMENT);
    }
    Ok(())
}

fn split_duration(d: Duration) -> (u32, u32) {
    (
        u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        d.subsec_nanos(),
    )
}

/// One flow table.
#[derive(Debug, Default)]
pub struct Table {
    /// The rules.
    pub cls: Classifier<Arc<Rule>>,
    /// Lookups (counted on upcalls).
    pub lookups: AtomicU64,
    /// Lookups that matched a rule.
    pub matches: AtomicU64,
    /// Name set by a table-features request (`None`: the default,
    /// [`crate::features::default_name`]).
    pub name: Option<String>,
}

/// One group (OVS `struct ofgroup`).
#[derive(Debug)]
pub struct Group {
    /// Id.
    pub id: u32,
    /// Type.
    pub group_type: GroupType,
    /// Buckets.
    pub buckets: Vec<Bucket>,
    /// When added.
    pub created: Instant,
    /// Packets and bytes through the group.
    pub counters: Arc<RuleCounters>,
    /// Per bucket.
    pub bucket_counters: Vec<Arc<RuleCounters>>,
    /// Select groups: bucket index for each hash value (a power of two, 16
    /// to [`MAX_SELECT_HASH_VALUES`] entries), shared out in proportion to
    /// the weights; `None` when the weights need more values, or all are
    /// zero (see [`select_hash_map`]), and for `selection_method=hash`.
    pub hash_map: Option<Vec<usize>>,
    /// OVS's selection method, if the group-mod gave one.
    pub selection: Option<SelectionMethod>,
}

/// Most hash values a select group's [`Group::hash_map`] may have with
/// the default selection method (OVS `group_set_selection_method` asks
/// `group_setup_dp_hash_table` for at most 64).
pub const MAX_SELECT_HASH_VALUES: u64 = 64;

/// Most hash values with `selection_method=dp_hash` (OVS
/// `MAX_SELECT_GROUP_HASH_VALUES`).
pub const MAX_DP_HASH_VALUES: u64 = 256;

/// The hash-value-to-bucket table of a select group with these bucket
/// `weights`, as OVS `group_setup_dp_hash_table` builds it for the
/// default selection method: `n = max(16, next_power_of_two(max(ceil(total
/// / min_weight), min(4 * buckets, 256))))` values, `None` if `n` exceeds
/// [`MAX_SELECT_HASH_VALUES`] or the weights are all zero; each value in
/// turn goes to the bucket with the highest `weight / divisor` (the first
/// on ties), whose divisor then grows by 2 (Webster's / Sainte-Laguë
/// apportionment). So bucket `i` gets about `n * w_i / total` values:
/// weights 1:2 give 5 and 11 of 16.
pub fn select_hash_map(weights: &[u16]) -> Option<Vec<usize>> {
    select_hash_map_max(weights, MAX_SELECT_HASH_VALUES)
}

/// [`select_hash_map`] with at most `max` values (OVS
/// `group_setup_dp_hash_table`'s `max_hash`; [`MAX_DP_HASH_VALUES`] for
/// `selection_method=dp_hash`).
pub fn select_hash_map_max(weights: &[u16], max: u64) -> Option<Vec<usize>> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let min = weights.iter().copied().filter(|w| *w > 0).min()?;
    let min_slots = total.div_ceil(u64::from(min));
    let min_slots = min_slots.max((4 * weights.len() as u64).min(MAX_DP_HASH_VALUES));
    let n = min_slots.next_power_of_two().max(16);
    if n > max.min(MAX_DP_HASH_VALUES) {
        return None;
    }
    // Compare w_i / d_i exactly as fractions: w_i * d_j > w_j * d_i.
    let mut divisor = vec![1u64; weights.len()];
    let mut map = Vec::new();
    for _ in 0..n {
        let mut win = 0;
        for i in 1..weights.len() {
            if u64::from(weights[i]) * divisor[win] > u64::from(weights[win]) * divisor[i] {
                win = i;
            }
        }
        divisor[win] += 2;
        map.push(win);
    }
    Some(map)
}

/// One meter's configuration (its counters live in the datapath).
#[derive(Debug, Clone)]
pub struct Meter {
    /// [`meter_flags`].
    pub flags: u16,
    /// Bands.
    pub bands: Vec<MeterBand>,
    /// When added.
    pub created: Instant,
}

/// What a successful flow-mod did.
#[derive(Debug, Default)]
pub struct FlowModResult {
    /// `OFPT_FLOW_REMOVED` messages to send (deleted flows with
    /// `OFPFF_SEND_FLOW_REM`).
    pub removed: Vec<FlowRemoved>,
    /// Flows added, modified or deleted.
    pub n_changed: usize,
}

/// A meter change the datapath must apply.
#[derive(Debug, Clone, PartialEq)]
pub enum MeterChange {
    /// Configure (add or replace) a meter.
    Set(u32, Meter),
    /// Remove a meter.
    Del(u32),
}

/// The OpenFlow state of a bridge (see the module docs).
#[derive(Debug)]
pub struct Tables {
    tables: Vec<Table>,
    groups: BTreeMap<u32, Group>,
    meters: BTreeMap<u32, Meter>,
    max_flows: usize,
    generation: u64,
    /// Rules with an idle or hard timeout (so expiry can skip the scan).
    n_timeouts: usize,
    /// The undo log of a transaction in progress ([`Tables::begin`]);
    /// `None` outside one, so plain flow-mods only pay a branch.
    journal: Option<Journal>,
    /// Rules with [`Rule::learned`] set.
    n_learned: usize,
    /// Most learned rules ([`DEFAULT_MAX_LEARNED`]).
    max_learned: usize,
    /// Rules holding a `learn(delete_learned)` by its `(cookie, table)`
    /// (OVS `learned_cookies`): when the count drops to zero, the flows
    /// with that cookie in that table are deleted.
    learned_cookies: HashMap<(u64, u8), usize>,
    /// Rule changes for flow monitors, recorded while [`Tables::watch`]
    /// is on (OVS `ofmonitor_report`); taken with
    /// [`Tables::take_changes`].
    changes: Vec<RuleChange>,
    /// Whether to record [`RuleChange`]s (some connection has a flow
    /// monitor); off, changes cost nothing.
    watching: bool,
    /// Changes not recorded because [`MAX_CHANGES`] were waiting.
    lost_changes: u64,
    /// The [`RuleChange::seq`] of the last change recorded.
    change_seq: u64,
}

/// What happened to a rule, for flow monitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Added (no rule with its match and priority existed).
    Added,
    /// Its instructions or cookie changed (a modify, or an add over an
    /// existing rule).
    Modified,
    /// Removed, with the `OFPRR_*` reason ([`removed_reason`]).
    Removed(u8),
}

/// One rule change a flow monitor may report.
#[derive(Debug, Clone)]
pub struct RuleChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The rule as it is now (for a removal, as it was).
    pub rule: Arc<Rule>,
    /// For a modification, the rule before (monitors with an `out_port`
    /// also report a flow whose old actions output there, as OVS).
    pub old: Option<Arc<Rule>>,
    /// Its place among all changes recorded (from 1, increasing): a
    /// change with a `seq` at most a [`RuleSnapshot::seq`] is already in
    /// that snapshot.
    pub seq: u64,
}

/// Every rule of every table at one moment ([`Tables::all_rules`]).
#[derive(Debug, Default)]
pub struct RuleSnapshot {
    /// The rules.
    pub rules: Vec<Arc<Rule>>,
    /// The [`RuleChange::seq`] of the last change the snapshot includes:
    /// changes still on their way to a flow monitor with a `seq` up to it
    /// are already in `rules`.
    pub seq: u64,
}

/// Most rule changes kept between two [`Tables::take_changes`] (one per
/// flow in the largest operation: a delete of every table at
/// [`DEFAULT_MAX_FLOWS`] per table stays well inside); beyond it changes
/// are counted in [`Tables::lost_changes`] instead.
pub const MAX_CHANGES: usize = 1 << 20;

/// What a transaction changed, to put back on [`Tables::rollback`].
#[derive(Debug)]
struct Journal {
    /// Changes in order; undone last first.
    undo: Vec<Undo>,
    generation: u64,
    n_timeouts: usize,
    /// How many [`RuleChange`]s were recorded when it began.
    n_changes: usize,
}

/// One change a transaction made: the previous occupant of a slot.
#[derive(Debug)]
enum Undo {
    /// The rule with this match and priority in table `table` was `old`
    /// (`None`: there was none).
    Rule {
        table: usize,
        matcher: MiniMatch,
        priority: u16,
        old: Option<Arc<Rule>>,
    },
    /// Group `id` was `old` (boxed: a group is several times the size
    /// of the rule variant, and a bundle's log holds one entry per
    /// message).
    Group { id: u32, old: Option<Box<Group>> },
}

/// Record `u` in the transaction's undo log, if one is in progress.
fn note(journal: &mut Option<Journal>, u: impl FnOnce() -> Undo) {
    if let Some(j) = journal {
        j.undo.push(u());
    }
}

impl Default for Tables {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Meter {
    fn eq(&self, o: &Meter) -> bool {
        self.flags == o.flags && self.bands == o.bands
    }
}

impl Tables {
    /// Empty tables with [`DEFAULT_MAX_FLOWS`] per table.
    pub fn new() -> Self {
        Self::with_max_flows(DEFAULT_MAX_FLOWS)
    }

    /// Empty tables holding at most `max_flows` rules each.
    pub fn with_max_flows(max_flows: usize) -> Self {
        Tables {
            tables: (0..N_TABLES).map(|_| Table::default()).collect(),
            groups: BTreeMap::new(),
            meters: BTreeMap::new(),
            max_flows,
            generation: 0,
            n_timeouts: 0,
            journal: None,
            n_learned: 0,
            max_learned: DEFAULT_MAX_LEARNED,
            learned_cookies: HashMap::new(),
            changes: Vec::new(),
            watching: false,
            lost_changes: 0,
            change_seq: 0,
        }
    }

    // ----- transactions (bundles) -----

    /// Start a transaction: until [`Tables::commit`] or
    /// [`Tables::rollback`], every flow and group change is logged so it
    /// can be undone (OpenFlow 1.4.1 §6.8.5 atomic bundles; OVS
    /// `do_bundle_commit` gets the same from its versioned classifier).
    /// Costs one log entry per rule or group touched, nothing per rule
    /// in the tables. Meters are not logged: a transaction must not
    /// apply meter-mods. Starting a transaction discards an unfinished
    /// one's log (its changes stay).
    pub fn begin(&mut self) {
        self.journal = Some(Journal {
            undo: Vec::new(),
            generation: self.generation,
            n_timeouts: self.n_timeouts,
            n_changes: self.changes.len(),
        });
    }

    /// Keep the transaction's changes.
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Undo every change since [`Tables::begin`], last first: each rule
    /// and group slot gets back its previous occupant (the same `Arc`,
    /// so counters, durations and timeouts are untouched), and the
    /// generation and timeout count their old values. Rules return to
    /// the same subtables; only the iteration order among rules of equal
    /// priority may differ, which OpenFlow leaves undefined. No-op
    /// outside a transaction.
    pub fn rollback(&mut self) {
        let Some(j) = self.journal.take() else {
            return;
        };
        for u in j.undo.into_iter().rev() {
            match u {
                Undo::Rule {
                    table,
                    matcher,
                    priority,
                    old,
                } => {
                    let cls = &mut self.tables[table].cls;
                    match old {
                        Some(r) => {
                            cls.insert(&matcher, priority, r);
                        }
                        None => {
                            cls.remove(&matcher, priority);
                        }
                    }
                }
                Undo::Group { id, old } => match old {
                    Some(g) => {
                        self.groups.insert(id, *g);
                    }
                    None => {
                        self.groups.remove(&id);
                    }
                },
            }
        }
        self.generation = j.generation;
        self.n_timeouts = j.n_timeouts;
        self.recount_learned();
        // What was undone never happened, for monitors too.
        self.changes.truncate(j.n_changes);
    }

    /// Recompute [`Tables::n_learned`] and the delete-learned cookie
    /// counts from the rules (after a rollback).
    fn recount_learned(&mut self) {
        let mut n = 0;
        let mut cookies: HashMap<(u64, u8), usize> = HashMap::new();
        for t in &self.tables {
            for r in t.cls.iter() {
                n += usize::from(r.value.learned);
                for c in r.value.delete_learned() {
                    *cookies.entry(c).or_default() += 1;
                }
            }
        }
        self.n_learned = n;
        self.learned_cookies = cookies;
    }

    /// Account for `old` leaving and `new` entering the tables: learned
    /// rules and delete-learned cookies; cookies whose last holder left
    /// go to `dead`.
    fn track(&mut self, old: Option<&Rule>, new: Option<&Rule>, dead: &mut Vec<(u64, u8)>) {
        if let Some(n) = new {
            self.n_learned += usize::from(n.learned);
            for c in n.delete_learned() {
                *self.learned_cookies.entry(c).or_default() += 1;
            }
        }
        if let Some(o) = old {
            self.n_learned = self.n_learned.saturating_sub(usize::from(o.learned));
            for c in o.delete_learned() {
                if let Some(n) = self.learned_cookies.get_mut(&c) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.learned_cookies.remove(&c);
                        dead.push(c);
                    }
                }
            }
        }
    }

    /// Delete the flows learned under each dead `(cookie, table)` (OVS
    /// `learned_cookies_flush`: every flow in the table with the cookie),
    /// repeating for the cookies those deletions free in turn.
    fn flush_dead_cookies(&mut self, mut dead: Vec<(u64, u8)>, now: Instant) -> Vec<FlowRemoved> {
        let mut out = Vec::new();
        // Each round removes rules, so this ends.
        while let Some((cookie, table)) = dead.pop() {
            let Some(t) = self.tables.get(usize::from(table)) else {
                continue;
            };
            let cls = &t.cls;
            let sel: Vec<(usize, MiniMatch, u16)> = cls
                .iter()
                .filter(|r| r.value.cookie == cookie)
                .map(|r| (usize::from(table), r.matcher.clone(), r.priority))
                .collect();
            out.extend(self.remove_rules_tracked(&sel, removed_reason::DELETE, now, &mut dead));
        }
        out
    }

    /// Whether a rule matches or names `tun_metadata<index>` (its TLV
    /// mapping may then not be deleted, OVS `NXTTMFC_INVALID_TLV_DEL`).
    pub fn uses_tun_metadata(&self, index: u16) -> bool {
        let bit = 1u128.checked_shl(u32::from(index)).unwrap_or(0);
        self.tables.iter().any(|t| {
            t.cls.iter().any(|r| {
                r.matcher.mask().get(Field::TunMdPresent) & bit != 0
                    || r.value
                        .actions()
                        .any(|a| action_uses_tun_metadata(a, index))
            })
        }) || self.groups.values().any(|g| {
            g.buckets
                .iter()
                .any(|b| b.actions.iter().any(|a| action_uses_tun_metadata(a, index)))
        })
    }

    /// `fin_timeout` (OVS `ofproto_rule_reduce_timeouts`): lower the idle
    /// and hard timeouts of the rule `(table, matcher, priority)`, if it is
    /// still there, to `idle` and `hard` where those are nonzero and
    /// shorter (or the rule has none). Returns whether it changed. No
    /// translation reads timeouts, so the generation stays.
    pub fn reduce_timeouts(
        &mut self,
        table: u8,
        matcher: &MiniMatch,
        priority: u16,
        idle: u16,
        hard: u16,
    ) -> bool {
        let reduce = |max: u16, t: u16| {
            if max != 0 && (t == 0 || t > max) {
                max
            } else {
                t
            }
        };
        let Some(t) = self.tables.get_mut(usize::from(table)) else {
            return false;
        };
        let Some(r) = t.cls.find_strict_mut(matcher, priority) else {
            return false;
        };
        let o = r.value.clone();
        let (i, h) = (reduce(idle, o.idle_timeout), reduce(hard, o.hard_timeout));
        if (i, h) == (o.idle_timeout, o.hard_timeout) {
            return false;
        }
        let had = o.idle_timeout != 0 || o.hard_timeout != 0;
        r.value = Arc::new(Rule {
            table_id: o.table_id,
            matcher: o.matcher.clone(),
            priority: o.priority,
            cookie: o.cookie,
            idle_timeout: i,
            hard_timeout: h,
            flags: o.flags,
            instructions: o.instructions.clone(),
            created: o.created,
            modified: o.modified,
            counters: o.counters.clone(),
            learned: o.learned,
        });
        if !had {
            self.n_timeouts += 1;
        }
        note(&mut self.journal, || Undo::Rule {
            table: usize::from(table),
            matcher: matcher.clone(),
            priority,
            old: Some(o),
        });
        true
    }

    /// Learned rules in all tables.
    pub fn n_learned(&self) -> usize {
        self.n_learned
    }

    /// The cap on learned rules ([`DEFAULT_MAX_LEARNED`] unless set).
    pub fn max_learned(&self) -> usize {
        self.max_learned
    }

    /// Set the cap on learned rules (existing ones stay).
    pub fn set_max_learned(&mut self, n: usize) {
        self.max_learned = n;
    }

    /// Whether [`Tables::learn`] would install or refresh `fm` now (for
    /// `result_dst`, which translation writes before the flow-mod runs).
    pub fn learn_would_succeed(&self, fm: &FlowMod, limit: u32) -> bool {
        let Some(t) = self.tables.get(usize::from(fm.table_id)) else {
            return false;
        };
        let matcher = normalize(&fm.matcher);
        let existing = t.cls.find_strict(&matcher, fm.priority);
        if let Some(o) = existing {
            let o = &o.value;
            if o.cookie == fm.cookie && o.instructions == fm.instructions {
                return true;
            }
        }
        if limit != 0
            && t.cls.iter().filter(|r| r.value.cookie == fm.cookie).count() >= limit as usize
        {
            return false;
        }
        existing.is_some_and(|o| o.value.learned) || self.n_learned < self.max_learned
    }

    /// Execute a learned flow-mod (OVS `ofproto_flow_mod_learn`): the
    /// flow is added, or if the identical flow (match, priority, cookie,
    /// timeouts, flags, actions) is there, refreshed (its hard timeout
    /// counts from `now` again, as OVS sets `modified`). A new flow is
    /// refused when `limit` (nonzero) flows with its cookie are in the
    /// table, or when the bridge has [`Tables::max_learned`] learned
    /// flows. Flow-removed messages of flows this replaced or deleted
    /// (delete-learned) come back with the outcome.
    ///
    /// # Errors
    /// The flow-mod's errors (bad table, prerequisites, `TABLE_FULL`).
    pub fn learn(
        &mut self,
        fm: &FlowMod,
        limit: u32,
        now: Instant,
    ) -> Result<(LearnOutcome, Vec<FlowRemoved>), OfError> {
        let matcher = Self::check_flow_mod_fixed(fm)?;
        let t = usize::from(fm.table_id);
        let existing = self.tables[t]
            .cls
            .find_strict(&matcher, fm.priority)
            .map(|r| r.value.clone());
        if let Some(o) = &existing {
            if o.cookie == fm.cookie
                && o.idle_timeout == fm.idle_timeout
                && o.hard_timeout == fm.hard_timeout
                && o.flags == fm.flags
                && o.instructions == fm.instructions
            {
                let new = Arc::new(Rule {
                    table_id: o.table_id,
                    matcher: o.matcher.clone(),
                    priority: o.priority,
                    cookie: o.cookie,
                    idle_timeout: o.idle_timeout,
                    hard_timeout: o.hard_timeout,
                    flags: o.flags,
                    instructions: o.instructions.clone(),
                    created: o.created,
                    modified: now,
                    counters: o.counters.clone(),
                    learned: o.learned,
                });
                let prev = self.tables[t].cls.insert(&matcher, fm.priority, new);
                note(&mut self.journal, || Undo::Rule {
                    table: t,
                    matcher: minimatch(&matcher),
                    priority: fm.priority,
                    old: prev,
                });
                return Ok((LearnOutcome::Refreshed, Vec::new()));
            }
        }
        if limit != 0 {
            let n = self.tables[t]
                .cls
                .iter()
                .filter(|r| r.value.cookie == fm.cookie)
                .count();
            if n >= limit as usize {
                return Ok((LearnOutcome::LimitReached, Vec::new()));
            }
        }
        if !existing.as_ref().is_some_and(|o| o.learned) && self.n_learned >= self.max_learned {
            return Ok((LearnOutcome::CapReached, Vec::new()));
        }
        let res = self.add_flow(fm, matcher, now, true)?;
        Ok((LearnOutcome::Added, res.removed))
    }

    // ----- flow monitors -----

    /// Start or stop recording [`RuleChange`]s (stopping drops the ones
    /// not taken).
    pub fn watch(&mut self, on: bool) {
        self.watching = on;
        if !on {
            self.changes = Vec::new();
        }
    }

    /// The rule changes since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<RuleChange> {
        std::mem::take(&mut self.changes)
    }

    /// Put back changes [`Tables::take_changes`] took and could not
    /// deliver, before any recorded since.
    pub fn requeue_changes(&mut self, mut changes: Vec<RuleChange>) {
        if self.watching {
            changes.append(&mut self.changes);
            self.changes = changes;
        }
    }

    fn record(&mut self, kind: ChangeKind, rule: &Arc<Rule>, old: Option<&Arc<Rule>>) {
        if !self.watching {
            return;
        }
        if self.changes.len() >= MAX_CHANGES {
            self.lost_changes = self.lost_changes.saturating_add(1);
            return;
        }
        self.change_seq += 1;
        self.changes.push(RuleChange {
            kind,
            rule: rule.clone(),
            old: old.cloned(),
            seq: self.change_seq,
        });
    }

    /// Rule changes flow monitors lost: more than [`MAX_CHANGES`] were
    /// waiting to be taken.
    pub fn lost_changes(&self) -> u64 {
        self.lost_changes
    }

    /// Every rule of every table (for a flow monitor's initial dump and
    /// its refresh after a pause), with the last change it includes.
    pub fn all_rules(&self) -> RuleSnapshot {
        RuleSnapshot {
            rules: self
                .tables
                .iter()
                .flat_map(|t| t.cls.iter().map(|r| r.value.clone()))
                .collect(),
            seq: self.change_seq,
        }
    }

    /// Changes whenever a rule, group or meter changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Every table's name, in table order (OVS `oftable_set_name`).
    pub fn table_names(&self) -> Vec<String> {
        (0..N_TABLES)
            .zip(&self.tables)
            .map(|(i, t)| {
                t.name
                    .clone()
                    .unwrap_or_else(|| crate::features::default_name(i as u8))
            })
            .collect()
    }

    /// Name table `id` (an empty name restores the default); no-op for a
    /// table that does not exist.
    pub fn set_table_name(&mut self, id: u8, name: &str) {
        if let Some(t) = self.tables.get_mut(usize::from(id)) {
            t.name = (!name.is_empty()).then(|| name.to_owned());
        }
    }

    /// `max_entries` of every table: the flow limit, at most `u32::MAX`.
    pub fn max_entries(&self) -> u32 {
        u32::try_from(self.max_flows).unwrap_or(u32::MAX)
    }

    /// Table `id`, if it exists.
    pub fn table(&self, id: u8) -> Option<&Table> {
        self.tables.get(usize::from(id))
    }

    /// Group `id`.
    pub fn group(&self, id: u32) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// Meter `id`.
    pub fn meter(&self, id: u32) -> Option<&Meter> {
        self.meters.get(&id)
    }

    /// Every meter.
    pub fn meters(&self) -> impl Iterator<Item = (u32, &Meter)> {
        self.meters.iter().map(|(k, v)| (*k, v))
    }

    /// Total rules in all tables.
    pub fn n_rules(&self) -> usize {
        self.tables.iter().map(|t| t.cls.len()).sum()
    }

    fn table_range(table_id: u8) -> std::ops::Range<usize> {
        if table_id == OFPTT_ALL {
            0..N_TABLES
        } else {
            let t = usize::from(table_id);
            t..t + 1
        }
    }

    // ----- validation -----

    fn check_output_port(port: u32) -> Result<(), OfError> {
        let ok = (port != 0 && port < OFPP_MAX)
            || matches!(
                port,
                OFPP_IN_PORT | OFPP_NORMAL | OFPP_FLOOD | OFPP_ALL | OFPP_CONTROLLER | OFPP_LOCAL
            );
        if ok {
            Ok(())
        } else {
            Err(OfError::BAD_OUT_PORT)
        }
    }

    /// Validate an action list. `m` is the match the actions run under
    /// (updated for push/pop VLAN); `None` skips prerequisite checks (group
    /// buckets). `groups_ok` decides whether a group id is acceptable.
    fn check_actions(
        actions: &[Action],
        m: Option<&mut Match>,
        groups_ok: &dyn Fn(u32) -> bool,
    ) -> Result<(), OfError> {
        if actions.len() > MAX_ACTIONS {
            return Err(OfError::TOO_MANY_ACTIONS);
        }
        check_conjunction_only(actions)?;
        let mut m = m;
        // VLAN tags the packet has at this point: OVS tracks two
        // (`FLOW_MAX_VLAN_HEADERS`) and refuses a third push with
        // OFPBAC_BAD_TAG.
        let mut tags = m
            .as_deref()
            .map_or(0, |m| u8::from(m.key.vlan_tci() & 0x1000 != 0));
        for a in actions {
            match a {
                Action::Output { port, .. } => Self::check_output_port(*port)?,
                Action::Group(g) => {
                    if !groups_ok(*g) {
                        return Err(OfError::BAD_OUT_GROUP);
                    }
                }
                Action::SetQueue(_) | Action::DecNwTtl | Action::SetNwTtl(_) => {}
                Action::PushVlan(tpid) => {
                    if !matches!(tpid, 0x8100 | 0x88a8) {
                        return Err(OfError::BAD_ACTION_ARGUMENT);
                    }
                    if m.is_some() && tags >= 2 {
                        return Err(OfError::BAD_TAG);
                    }
                    tags += 1;
                    if let Some(m) = m.as_deref_mut() {
                        let tci = m.key.vlan_tci() | 0x1000;
                        m.key.set_vlan_tci(tci);
                        let mk = m.mask.get(xennet_datapath::flow::Field::VlanTci) | 0x1000;
                        m.mask.set(xennet_datapath::flow::Field::VlanTci, mk);
                    }
                }
                Action::PopVlan => {
                    tags = tags.saturating_sub(1);
                    if let Some(m) = m.as_deref_mut() {
                        m.key.set_vlan_tci(0);
                        m.mask.set(xennet_datapath::flow::Field::VlanTci, 0);
                    }
                }
                Action::PushMpls(eth) => {
                    if !matches!(eth, 0x8847 | 0x8848) {
                        return Err(OfError::BAD_ACTION_ARGUMENT);
                    }
                    if let Some(m) = m.as_deref_mut() {
                        set_eth_type(m, *eth);
                    }
                }
                Action::PopMpls(eth) => {
                    // OVS `ofpact_check__`: only on an MPLS match.
                    if let Some(m) = m.as_deref_mut() {
                        if !m.satisfies(Prereq::Mpls) {
                            return Err(OfError::MATCH_INCONSISTENT);
                        }
                        set_eth_type(m, *eth);
                    }
                }
                Action::SetMplsTtl(_) | Action::DecMplsTtl => {
                    if let Some(m) = m.as_deref_mut() {
                        if !m.satisfies(Prereq::Mpls) {
                            return Err(OfError::MATCH_INCONSISTENT);
                        }
                    }
                }
                Action::SetField { field, value } => {
                    if !field.is_settable() {
                        return Err(OfError::BAD_SET_TYPE);
                    }
                    let bits = field.bits();
                    if bits < 128 && value >> bits != 0 {
                        return Err(OfError::BAD_SET_ARGUMENT);
                    }
                    if let Some(m) = m.as_deref_mut() {
                        if !m.satisfies(field.prereq()) {
                            return Err(OfError::MATCH_INCONSISTENT);
                        }
                    }
                }
                Action::SetVlan10 { .. } => {
                    // OVS `ofpact_check__` (OFPACT_SET_VLAN_VID/PCP): the
                    // packet has a tag from here on (pushed if need be).
                    tags = tags.max(1);
                    if let Some(m) = m.as_deref_mut() {
                        let tci = m.key.vlan_tci() | 0x1000;
                        m.key.set_vlan_tci(tci);
                        let mk = m.mask.get(xennet_datapath::flow::Field::VlanTci) | 0x1000;
                        m.mask.set(xennet_datapath::flow::Field::VlanTci, mk);
                    }
                }
                Action::Resubmit { table, .. } => {
                    if usize::from(*table) >= N_TABLES && *table != 0xff {
                        return Err(OfError::BAD_ACTION_ARGUMENT);
                    }
                }
                Action::Load { dst, value } => {
                    check_subfield_action(dst, true, m.as_deref())?;
                    if u32::from(dst.n_bits) < 128 && value >> dst.n_bits != 0 {
                        return Err(OfError::BAD_ACTION_ARGUMENT);
                    }
                }
                Action::Move { src, dst } => {
                    if src.n_bits != dst.n_bits {
                        return Err(OfError::BAD_SET_LEN);
                    }
                    check_subfield_action(src, false, m.as_deref())?;
                    check_subfield_action(dst, true, m.as_deref())?;
                }
                Action::OutputReg { src, .. } | Action::StackPush(src) => {
                    check_subfield_action(src, false, m.as_deref())?;
                }
                Action::StackPop(dst) => check_subfield_action(dst, true, m.as_deref())?,
                Action::Clone(inner) => {
                    // The nested actions see the match as it is here
                    // (OVS `check_CLONE`), and changes stay inside.
                    let mut inner_m = m.as_deref().copied();
                    Self::check_actions(inner, inner_m.as_mut(), groups_ok)?;
                }
                Action::Sample { probability, .. } => {
                    if *probability == 0 {
                        return Err(OfError::BAD_ACTION_ARGUMENT);
                    }
                }
                Action::ResubmitCt { table, .. } => {
                    if usize::from(*table) >= N_TABLES && *table != 0xff {
                        return Err(OfError::BAD_ACTION_ARGUMENT);
                    }
                    // OVS `check_RESUBMIT`: the match must make the
                    // conntrack state valid.
                    if let Some(m) = m.as_deref() {
                        if !m.satisfies(Prereq::CtValid) {
                            return Err(OfError::MATCH_INCONSISTENT);
                        }
                    }
                }
                Action::Ct(ct) => {
                    if usize::from(ct.recirc_table) >= N_TABLES && ct.recirc_table != 0xff {
                        return Err(OfError::BAD_ACTION_ARGUMENT);
                    }
                    // OVS `check_CT`: the match must be IP, may not
                    // commit a packet matched `+inv`, and an alg needs
                    // its protocol (ftp TCP, tftp UDP). The codec allowed
                    // only nat and ct_mark/ct_label writes inside; nat
                    // needs an IP match too (OVS `check_NAT`).
                    if let Some(m) = m.as_deref() {
                        let (state, state_mask) =
                            m.field(xennet_openflow::model::OxmField::CtState);
                        let (proto, proto_mask) =
                            m.field(xennet_openflow::model::OxmField::IpProto);
                        let proto = (proto_mask == 0xff).then_some(proto);
                        let inconsistent = !m.satisfies(Prereq::Ip)
                            || (state & state_mask & 0x10 != 0 && ct.flags & 1 != 0)
                            || (ct.alg == 21 && proto != Some(6))
                            || (ct.alg == 69 && proto != Some(17));
                        if inconsistent {
                            return Err(OfError::MATCH_INCONSISTENT);
                        }
                    }
                    check_ct_alg(ct)?;
                }
                Action::Nat(_) => return Err(OfError::BAD_ACTION_ARGUMENT),
                Action::Learn(l) => check_learn(l, m.as_deref())?,
                Action::FinTimeout { .. } => {
                    // OVS `check_FIN_TIMEOUT`: a TCP match.
                    if let Some(m) = m.as_deref() {
                        if !m.satisfies(Prereq::Tcp) {
                            return Err(OfError::MATCH_INCONSISTENT);
                        }
                    }
                }
                Action::CheckPktLarger { dst, .. } => {
                    check_subfield_action(dst, true, m.as_deref())?;
                }
                Action::Multipath(mp) => check_subfield_action(&mp.dst, true, m.as_deref())?,
                Action::Bundle(b) => {
                    if let Some(d) = &b.dst {
                        check_subfield_action(d, true, m.as_deref())?;
                    }
                }
                // `pause` too: the continuation travels in the packet-in
                // (see `crate::xlate`).
                Action::Note(_)
                | Action::Controller(_)
                | Action::Conjunction { .. }
                | Action::Exit
                | Action::CtClear
                | Action::DecTtlIds(_)
                | Action::SetTunnel { .. } => {}
            }
        }
        Ok(())
    }

    /// Refuse actions that may not be in an action set (write-actions,
    /// group buckets), as OVS `ofpact_is_allowed_in_actions_set`:
    /// `UNSUPPORTED_ORDER`.
    fn check_action_set(actions: &[Action]) -> Result<(), OfError> {
        for a in actions {
            let ok = matches!(
                a,
                Action::Output { .. }
                    | Action::Group(_)
                    | Action::SetQueue(_)
                    | Action::PushVlan(_)
                    | Action::PopVlan
                    | Action::SetField { .. }
                    | Action::SetVlan10 { .. }
                    | Action::DecNwTtl
                    | Action::SetNwTtl(_)
                    | Action::Resubmit { .. }
                    | Action::Load { .. }
                    | Action::Move { .. }
                    | Action::DecTtlIds(_)
                    | Action::SetTunnel { .. }
                    | Action::PushMpls(_)
                    | Action::PopMpls(_)
                    | Action::SetMplsTtl(_)
                    | Action::DecMplsTtl
                    | Action::Ct(_)
                    | Action::CtClear
            );
            if !ok {
                return Err(OfError::UNSUPPORTED_ORDER);
            }
        }
        Ok(())
    }

    /// Validate a packet-out's actions: as flow actions, plus output to
    /// `OFPP_TABLE`; no match prerequisites (the packet is concrete).
    ///
    /// # Errors
    /// As [`Tables::apply_flow_mod`]'s action errors.
    pub fn check_packet_out_actions(&self, actions: &[Action]) -> Result<(), OfError> {
        if actions.len() > MAX_ACTIONS {
            return Err(OfError::TOO_MANY_ACTIONS);
        }
        let groups_ok = |g: u32| self.groups.contains_key(&g);
        check_conjunction_only(actions)?;
        for a in actions {
            if matches!(
                a,
                Action::Output {
                    port: OFPP_TABLE,
                    ..
                }
            ) {
                continue;
            }
            Self::check_actions(std::slice::from_ref(a), None, &groups_ok)?;
        }
        Ok(())
    }

    /// Validate a flow-mod's instructions for table `table_id` against
    /// the meters and groups there are.
    fn check_instructions(
        &self,
        table_id: u8,
        matcher: &Match,
        ins: &Instructions,
    ) -> Result<(), OfError> {
        Self::check_instructions_with(
            table_id,
            matcher,
            ins,
            &|m| self.meters.contains_key(&m),
            &|g| self.groups.contains_key(&g),
        )
    }

    /// Validate a flow-mod's instructions for table `table_id`;
    /// `meter_ok` and `groups_ok` decide whether a meter or group id is
    /// acceptable.
    fn check_instructions_with(
        table_id: u8,
        matcher: &Match,
        ins: &Instructions,
        meter_ok: &dyn Fn(u32) -> bool,
        groups_ok: &dyn Fn(u32) -> bool,
    ) -> Result<(), OfError> {
        if let Some(t) = ins.goto_table {
            // With OFPTT_ALL (modify in every table) only the range is
            // checked, as OVS; translation ignores backward gotos.
            let backward = table_id != OFPTT_ALL && t <= table_id;
            if backward || usize::from(t) >= N_TABLES {
                return Err(OfError::BAD_INST_TABLE_ID);
            }
        }
        if let Some(mid) = ins.meter {
            if !meter_ok(mid) {
                return Err(OfError::UNKNOWN_METER);
            }
        }
        let conj = ins
            .apply
            .as_deref()
            .is_some_and(|a| a.iter().any(|a| matches!(a, Action::Conjunction { .. })));
        if conj
            && (ins.meter.is_some()
                || ins.clear
                || ins.write.is_some()
                || ins.write_metadata.is_some()
                || ins.goto_table.is_some())
        {
            // OVS `ofpacts_verify`: the instructions are actions there.
            return Err(OfError::BAD_ACTION_ARGUMENT);
        }
        let mut m = *matcher;
        if let Some(a) = &ins.apply {
            Self::check_actions(a, Some(&mut m), groups_ok)?;
        }
        if let Some(a) = &ins.write {
            // The action set runs after the apply actions.
            Self::check_action_set(a)?;
            Self::check_actions(a, Some(&mut m), groups_ok)?;
        }
        Ok(())
    }

    /// The checks of a flow-mod's table, flags and match (in
    /// [`Tables::apply_flow_mod`]'s order); the normalised match.
    fn check_flow_mod_fixed(fm: &FlowMod) -> Result<Match, OfError> {
        let all = fm.table_id == OFPTT_ALL;
        if !all && usize::from(fm.table_id) >= N_TABLES {
            return Err(OfError::FLOW_MOD_BAD_TABLE_ID);
        }
        let known = flow_flags::SEND_FLOW_REM
            | flow_flags::CHECK_OVERLAP
            | flow_flags::RESET_COUNTS
            | flow_flags::NO_PKT_COUNTS
            | flow_flags::NO_BYT_COUNTS;
        if fm.flags & !known != 0 {
            return Err(OfError::BAD_FLAGS);
        }
        let matcher = normalize(&fm.matcher);
        matcher.check_prereqs()?;
        if all && fm.command == FlowModCommand::Add {
            return Err(OfError::FLOW_MOD_BAD_TABLE_ID);
        }
        Ok(matcher)
    }

    /// The checks of [`Tables::apply_flow_mod`] that do not depend on
    /// what the tables hold: table, flags, match prerequisites, goto
    /// target, actions (every group and meter id taken as existing). Open
    /// vSwitch makes these when a message is added to a bundle
    /// (`ofputil_decode_flow_mod`, `add_flow_init`); the rest waits for
    /// the commit.
    ///
    /// # Errors
    /// As [`Tables::apply_flow_mod`], but for `BAD_OUT_GROUP`,
    /// `UNKNOWN_METER`, `OVERLAP` and `TABLE_FULL`.
    pub fn check_flow_mod(fm: &FlowMod) -> Result<(), OfError> {
        let matcher = Self::check_flow_mod_fixed(fm)?;
        if !matches!(
            fm.command,
            FlowModCommand::Delete | FlowModCommand::DeleteStrict
        ) {
            Self::check_instructions_with(
                fm.table_id,
                &matcher,
                &fm.instructions,
                &|_| true,
                &|_| true,
            )?;
        }
        Ok(())
    }

    // ----- flow mods -----

    /// Apply a flow-mod at `now` (OpenFlow 1.3.5 §6.4). Buffered packets
    /// are not supported (`buffer_id` is ignored; the connection layer
    /// answers `BUFFER_UNKNOWN` for anything but `NO_BUFFER`).
    ///
    /// # Errors
    /// `FLOW_MOD_BAD_TABLE_ID`, `BAD_PREREQ` and other match errors,
    /// `BAD_INST_TABLE_ID`, `BAD_OUT_PORT`, `BAD_OUT_GROUP`,
    /// `UNKNOWN_METER`, `MATCH_INCONSISTENT`, `BAD_SET_TYPE`,
    /// `BAD_SET_ARGUMENT`, `OVERLAP`, `TABLE_FULL`, `BAD_FLAGS`.
    pub fn apply_flow_mod(&mut self, fm: &FlowMod, now: Instant) -> Result<FlowModResult, OfError> {
        let matcher = Self::check_flow_mod_fixed(fm)?;
        match fm.command {
            FlowModCommand::Add => {
                self.check_instructions(fm.table_id, &matcher, &fm.instructions)?;
                self.add_flow(fm, matcher, now, false)
            }
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                let strict = fm.command == FlowModCommand::ModifyStrict;
                self.check_instructions(fm.table_id, &matcher, &fm.instructions)?;
                Ok(self.modify_flows(fm, &matcher, strict, now))
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let strict = fm.command == FlowModCommand::DeleteStrict;
                Ok(self.delete_flows(fm, &matcher, strict, now))
            }
        }
    }

    fn add_flow(
        &mut self,
        fm: &FlowMod,
        matcher: Match,
        now: Instant,
        learned: bool,
    ) -> Result<FlowModResult, OfError> {
        let max = self.max_flows;
        let table = &mut self.tables[usize::from(fm.table_id)];
        let mut matcher = minimatch(&matcher);
        if fm.flags & flow_flags::CHECK_OVERLAP != 0 && table.cls.overlaps(&matcher, fm.priority) {
            return Err(OfError::OVERLAP);
        }
        let old = table
            .cls
            .find_strict(&matcher, fm.priority)
            .map(|r| r.value.clone());
        if let Some(o) = &old {
            // Share the stored match rather than keep a second copy.
            matcher = o.matcher.clone();
        }
        if old.is_none() && table.cls.len() >= max {
            return Err(OfError::TABLE_FULL);
        }
        let counters = match &old {
            Some(o) if fm.flags & flow_flags::RESET_COUNTS == 0 => o.counters.clone(),
            _ => Arc::new(RuleCounters::new()),
        };
        let rule = Arc::new(Rule {
            table_id: fm.table_id,
            matcher: matcher.clone(),
            priority: fm.priority,
            cookie: fm.cookie,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            flags: fm.flags,
            instructions: fm.instructions.clone(),
            created: now,
            modified: now,
            counters,
            learned,
        });
        let has_to = |i: u16, h: u16| usize::from(i != 0 || h != 0);
        if let Some(o) = &old {
            self.n_timeouts = self
                .n_timeouts
                .saturating_sub(has_to(o.idle_timeout, o.hard_timeout));
        }
        self.n_timeouts += has_to(fm.idle_timeout, fm.hard_timeout);
        let prev = table.cls.insert(&matcher, fm.priority, rule.clone());
        let mut dead = Vec::new();
        self.track(prev.as_deref(), Some(&rule), &mut dead);
        match &prev {
            // OVS `replace_rule_finish`: an add over a rule is reported
            // as a modification when the actions or cookie change.
            Some(o) if o.instructions == rule.instructions && o.cookie == rule.cookie => {}
            Some(o) => self.record(ChangeKind::Modified, &rule, Some(o)),
            None => self.record(ChangeKind::Added, &rule, None),
        }
        note(&mut self.journal, || Undo::Rule {
            table: usize::from(fm.table_id),
            matcher,
            priority: fm.priority,
            old: prev,
        });
        self.bump();
        Ok(FlowModResult {
            removed: self.flush_dead_cookies(dead, now),
            n_changed: 1,
        })
    }

    fn cookie_ok(fm_cookie: u64, mask: u64, rule: &Rule) -> bool {
        (rule.cookie ^ fm_cookie) & mask == 0
    }

    /// Keys `(table, match, priority)` of the rules a modify/delete
    /// selects.
    fn select(
        &self,
        table_id: u8,
        matcher: &Match,
        priority: u16,
        strict: bool,
        filter: &dyn Fn(&Rule) -> bool,
    ) -> Vec<(usize, MiniMatch, u16)> {
        let matcher = minimatch(matcher);
        let matcher = &matcher;
        let mut v = Vec::new();
        for t in Self::table_range(table_id) {
            let cls = &self.tables[t].cls;
            if strict {
                if let Some(r) = cls.find_strict(matcher, priority) {
                    if filter(&r.value) {
                        v.push((t, r.matcher.clone(), r.priority));
                    }
                }
            } else {
                v.extend(
                    cls.iter_loose(matcher)
                        .filter(|r| filter(&r.value))
                        .map(|r| (t, r.matcher.clone(), r.priority)),
                );
            }
        }
        v
    }

    fn modify_flows(
        &mut self,
        fm: &FlowMod,
        matcher: &Match,
        strict: bool,
        now: Instant,
    ) -> FlowModResult {
        let sel = self.select(fm.table_id, matcher, fm.priority, strict, &|r| {
            Self::cookie_ok(fm.cookie, fm.cookie_mask, r)
        });
        let reset = fm.flags & flow_flags::RESET_COUNTS != 0;
        let mut dead = Vec::new();
        for (t, m, p) in &sel {
            if let Some(r) = self.tables[*t].cls.find_strict_mut(m, *p) {
                let old = &r.value;
                let new = Arc::new(Rule {
                    table_id: old.table_id,
                    matcher: old.matcher.clone(),
                    priority: old.priority,
                    cookie: old.cookie,
                    idle_timeout: old.idle_timeout,
                    hard_timeout: old.hard_timeout,
                    flags: old.flags,
                    instructions: fm.instructions.clone(),
                    created: old.created,
                    modified: now,
                    counters: if reset {
                        Arc::new(RuleCounters::new())
                    } else {
                        old.counters.clone()
                    },
                    learned: old.learned,
                });
                let prev = std::mem::replace(&mut r.value, new.clone());
                self.track(Some(&prev), Some(&new), &mut dead);
                if self.watching && prev.instructions != new.instructions {
                    self.record(ChangeKind::Modified, &new, Some(&prev));
                }
                note(&mut self.journal, || Undo::Rule {
                    table: *t,
                    matcher: m.clone(),
                    priority: *p,
                    old: Some(prev),
                });
            }
        }
        if !sel.is_empty() {
            self.bump();
        }
        FlowModResult {
            removed: self.flush_dead_cookies(dead, now),
            n_changed: sel.len(),
        }
    }

    fn delete_flows(
        &mut self,
        fm: &FlowMod,
        matcher: &Match,
        strict: bool,
        now: Instant,
    ) -> FlowModResult {
        let sel = self.select(fm.table_id, matcher, fm.priority, strict, &|r| {
            Self::cookie_ok(fm.cookie, fm.cookie_mask, r)
                && r.has_out_port(fm.out_port)
                && r.has_out_group(fm.out_group)
        });
        let removed = self.remove_rules(&sel, removed_reason::DELETE, now);
        FlowModResult {
            n_changed: sel.len(),
            removed,
        }
    }

    fn remove_rules(
        &mut self,
        sel: &[(usize, MiniMatch, u16)],
        reason: u8,
        now: Instant,
    ) -> Vec<FlowRemoved> {
        let mut dead = Vec::new();
        let mut out = self.remove_rules_tracked(sel, reason, now, &mut dead);
        out.extend(self.flush_dead_cookies(dead, now));
        out
    }

    /// [`Tables::remove_rules`] without flushing the delete-learned
    /// cookies that die: they go to `dead`.
    fn remove_rules_tracked(
        &mut self,
        sel: &[(usize, MiniMatch, u16)],
        reason: u8,
        now: Instant,
        dead: &mut Vec<(u64, u8)>,
    ) -> Vec<FlowRemoved> {
        let mut out = Vec::new();
        for (t, m, p) in sel {
            if let Some(r) = self.tables[*t].cls.remove(m, *p) {
                self.track(Some(&r), None, dead);
                if r.idle_timeout != 0 || r.hard_timeout != 0 {
                    self.n_timeouts = self.n_timeouts.saturating_sub(1);
                }
                if r.flags & flow_flags::SEND_FLOW_REM != 0 {
                    out.push(r.removed(reason, now));
                }
                self.record(ChangeKind::Removed(reason), &r, None);
                note(&mut self.journal, || Undo::Rule {
                    table: *t,
                    matcher: m.clone(),
                    priority: *p,
                    old: Some(r),
                });
            }
        }
        if !sel.is_empty() {
            self.bump();
        }
        out
    }

    /// Remove flows whose idle or hard timeout expired at `now` (OVS
    /// `rule_expire`); returns the `FLOW_REMOVED`s to send. Call about
    /// once a second.
    pub fn expire(&mut self, now: Instant) -> Vec<FlowRemoved> {
        if self.n_timeouts == 0 {
            return Vec::new();
        }
        let mut sel_idle = Vec::new();
        let mut sel_hard = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            for r in table.cls.iter() {
                let r = &r.value;
                let hard = r.hard_timeout != 0
                    && now.saturating_duration_since(r.modified)
                        >= Duration::from_secs(u64::from(r.hard_timeout));
                let idle = r.idle_timeout != 0
                    && now.saturating_duration_since(r.last_used())
                        >= Duration::from_secs(u64::from(r.idle_timeout));
                if hard {
                    sel_hard.push((t, r.matcher.clone(), r.priority));
                } else if idle {
                    sel_idle.push((t, r.matcher.clone(), r.priority));
                }
            }
        }
        let mut out = self.remove_rules(&sel_hard, removed_reason::HARD_TIMEOUT, now);
        out.extend(self.remove_rules(&sel_idle, removed_reason::IDLE_TIMEOUT, now));
        out
    }

    /// Whether any rule has a timeout (so [`Tables::expire`] has work).
    pub fn has_timeouts(&self) -> bool {
        self.n_timeouts > 0
    }

    // ----- groups -----

    /// Whether group `from` reaches group `to` through chained group
    /// actions (including `from == to`).
    fn group_reaches(&self, from: u32, to: u32, buckets_of_from: Option<&[Bucket]>) -> bool {
        let mut stack = vec![from];
        let mut seen = HashSet::new();
        while let Some(g) = stack.pop() {
            if g == to {
                return true;
            }
            if !seen.insert(g) || seen.len() > MAX_GROUPS + 1 {
                continue;
            }
            let buckets: &[Bucket] = match (g == from, buckets_of_from) {
                (true, Some(b)) => b,
                _ => match self.groups.get(&g) {
                    Some(gr) => &gr.buckets,
                    None => continue,
                },
            };
            for b in buckets {
                for a in &b.actions {
                    if let Action::Group(n) = a {
                        stack.push(*n);
                    }
                }
            }
        }
        false
    }

    fn check_group(&self, gm: &GroupMod) -> Result<(), OfError> {
        if gm.buckets.len() > MAX_BUCKETS {
            return Err(OfError::OUT_OF_BUCKETS);
        }
        match gm.group_type {
            GroupType::Indirect if gm.buckets.len() != 1 => return Err(OfError::INVALID_GROUP),
            GroupType::FastFailover => {
                for b in &gm.buckets {
                    if b.watch_port == OFPP_ANY && b.watch_group == OFPG_ANY {
                        return Err(OfError::BAD_WATCH);
                    }
                }
            }
            _ => {}
        }
        for b in &gm.buckets {
            if gm.group_type != GroupType::Select
                && b.weight != 0
                && gm.group_type != GroupType::All
            {
                return Err(OfError::WEIGHT_UNSUPPORTED);
            }
            // Buckets run as action sets (see `xlate`).
            Self::check_action_set(&b.actions)?;
            Self::check_actions(&b.actions, None, &|g| {
                self.groups.contains_key(&g) || g == gm.group_id
            })?;
            for a in &b.actions {
                if let Action::Group(n) = a {
                    if !self.groups.contains_key(n) && *n != gm.group_id {
                        return Err(OfError::UNKNOWN_GROUP);
                    }
                    if self.group_reaches(*n, gm.group_id, None) {
                        return Err(OfError::GROUP_LOOP);
                    }
                }
            }
        }
        Ok(())
    }

    /// Apply a group-mod at `now` (OpenFlow 1.3.5 §6.5, §7.3.4.2); returns
    /// the `FLOW_REMOVED`s of flows deleted with their group.
    ///
    /// # Errors
    /// `INVALID_GROUP`, `GROUP_EXISTS`, `UNKNOWN_GROUP`, `OUT_OF_GROUPS`,
    /// `OUT_OF_BUCKETS`, `BAD_WATCH`, `WEIGHT_UNSUPPORTED`, `GROUP_LOOP`,
    /// `CHAINED_GROUP`, and action errors from the buckets.
    pub fn apply_group_mod(
        &mut self,
        gm: &GroupMod,
        now: Instant,
    ) -> Result<Vec<FlowRemoved>, OfError> {
        match gm.command {
            GroupModCommand::Add | GroupModCommand::Modify => {
                if gm.group_id > OFPG_MAX {
                    return Err(OfError::INVALID_GROUP);
                }
                let exists = self.groups.contains_key(&gm.group_id);
                if gm.command == GroupModCommand::Add {
                    if exists {
                        return Err(OfError::GROUP_EXISTS);
                    }
                    if self.groups.len() >= MAX_GROUPS {
                        return Err(OfError::OUT_OF_GROUPS);
                    }
                } else if !exists {
                    return Err(OfError::UNKNOWN_GROUP);
                }
                self.check_group(gm)?;
                let counters = self
                    .groups
                    .get(&gm.group_id)
                    .map_or_else(|| Arc::new(RuleCounters::new()), |g| g.counters.clone());
                let created = self.groups.get(&gm.group_id).map_or(now, |g| g.created);
                let prev = self.groups.insert(
                    gm.group_id,
                    Group {
                        id: gm.group_id,
                        group_type: gm.group_type,
                        buckets: gm.buckets.clone(),
                        created,
                        counters,
                        bucket_counters: gm
                            .buckets
                            .iter()
                            .map(|_| Arc::new(RuleCounters::new()))
                            .collect(),
                        hash_map: if gm.group_type == GroupType::Select {
                            let w: Vec<u16> = gm.buckets.iter().map(|b| b.weight).collect();
                            match gm.selection.as_ref().map(|s| s.kind) {
                                None => select_hash_map(&w),
                                Some(SelectionKind::DpHash) => {
                                    select_hash_map_max(&w, MAX_DP_HASH_VALUES)
                                }
                                Some(SelectionKind::Hash) => None,
                            }
                        } else {
                            None
                        },
                        selection: gm.selection.clone(),
                    },
                );
                note(&mut self.journal, || Undo::Group {
                    id: gm.group_id,
                    old: prev.map(Box::new),
                });
                self.bump();
                Ok(Vec::new())
            }
            GroupModCommand::Delete => {
                let ids: Vec<u32> = if gm.group_id == OFPG_ALL {
                    self.groups.keys().copied().collect()
                } else if self.groups.contains_key(&gm.group_id) {
                    vec![gm.group_id]
                } else {
                    return Ok(Vec::new());
                };
                if gm.group_id != OFPG_ALL {
                    let chained = self.groups.values().any(|g| {
                        g.id != gm.group_id
                            && g.buckets
                                .iter()
                                .any(|b| b.actions.contains(&Action::Group(gm.group_id)))
                    });
                    if chained {
                        return Err(OfError::CHAINED_GROUP);
                    }
                }
                let mut out = Vec::new();
                for id in &ids {
                    let sel = self.select(OFPTT_ALL, &Match::CATCHALL, 0, false, &|r| {
                        r.has_out_group(*id)
                    });
                    out.extend(self.remove_rules(&sel, removed_reason::GROUP_DELETE, now));
                    let prev = self.groups.remove(id);
                    note(&mut self.journal, || Undo::Group {
                        id: *id,
                        old: prev.map(Box::new),
                    });
                }
                self.bump();
                Ok(out)
            }
        }
    }

    // ----- meters -----

    /// Apply a meter-mod at `now` (OpenFlow 1.3.5 §7.3.4.4). Returns the
    /// datapath change to make and the `FLOW_REMOVED`s of flows deleted
    /// with their meter.
    ///
    /// # Errors
    /// `INVALID_METER`, `METER_EXISTS`, `UNKNOWN_METER`, `METER_BAD_FLAGS`,
    /// `METER_BAD_RATE`, `METER_BAD_BAND`, `OUT_OF_METERS`, `OUT_OF_BANDS`.
    pub fn apply_meter_mod(
        &mut self,
        mm: &MeterMod,
        now: Instant,
    ) -> Result<(Vec<MeterChange>, Vec<FlowRemoved>), OfError> {
        match mm.command {
            MeterModCommand::Add | MeterModCommand::Modify => {
                if mm.meter_id == 0 || mm.meter_id > OFPM_MAX {
                    return Err(OfError::INVALID_METER);
                }
                let exists = self.meters.contains_key(&mm.meter_id);
                if mm.command == MeterModCommand::Add {
                    if exists {
                        return Err(OfError::METER_EXISTS);
                    }
                    if self.meters.len() >= MAX_METERS {
                        return Err(OfError::OUT_OF_METERS);
                    }
                } else if !exists {
                    return Err(OfError::UNKNOWN_METER);
                }
                let known = meter_flags::KBPS
                    | meter_flags::PKTPS
                    | meter_flags::BURST
                    | meter_flags::STATS;
                if mm.flags & !known != 0
                    || mm.flags & (meter_flags::KBPS | meter_flags::PKTPS)
                        == (meter_flags::KBPS | meter_flags::PKTPS)
                {
                    return Err(OfError::METER_BAD_FLAGS);
                }
                if mm.bands.len() > MAX_BANDS {
                    return Err(OfError::OUT_OF_BANDS);
                }
                if mm.bands.iter().any(|b| b.rate == 0) {
                    return Err(OfError::METER_BAD_RATE);
                }
                let created = self.meters.get(&mm.meter_id).map_or(now, |m| m.created);
                let m = Meter {
                    flags: mm.flags,
                    bands: mm.bands.clone(),
                    created,
                };
                self.meters.insert(mm.meter_id, m.clone());
                self.bump();
                Ok((vec![MeterChange::Set(mm.meter_id, m)], Vec::new()))
            }
            MeterModCommand::Delete => {
                let ids: Vec<u32> = if mm.meter_id == OFPM_ALL {
                    self.meters.keys().copied().collect()
                } else if self.meters.contains_key(&mm.meter_id) {
                    vec![mm.meter_id]
                } else {
                    return Ok((Vec::new(), Vec::new()));
                };
                let mut out = Vec::new();
                let mut changes = Vec::new();
                for id in ids {
                    let sel = self.select(OFPTT_ALL, &Match::CATCHALL, 0, false, &|r| {
                        r.instructions.meter == Some(id)
                    });
                    out.extend(self.remove_rules(&sel, removed_reason::METER_DELETE, now));
                    self.meters.remove(&id);
                    changes.push(MeterChange::Del(id));
                }
                self.bump();
                Ok((changes, out))
            }
        }
    }

    // ----- statistics -----

    fn stats_select(&self, req: &FlowStatsRequest) -> Result<Vec<Arc<Rule>>, OfError> {
        if req.table_id != OFPTT_ALL && usize::from(req.table_id) >= N_TABLES {
            return Err(OfError::BAD_TABLE_ID);
        }
        let m = minimatch(&req.matcher);
        let mut v = Vec::new();
        for t in Self::table_range(req.table_id) {
            v.extend(
                self.tables[t]
                    .cls
                    .iter_loose(&m)
                    .filter(|r| {
                        Self::cookie_ok(req.cookie, req.cookie_mask, &r.value)
                            && r.value.has_out_port(req.out_port)
                            && r.value.has_out_group(req.out_group)
                    })
                    .map(|r| r.value.clone()),
            );
        }
        // Stable order: table, then priority (high first).
        v.sort_by(|a, b| {
            a.table_id
                .cmp(&b.table_id)
                .then(b.priority.cmp(&a.priority))
        });
        Ok(v)
    }

    /// `OFPMP_FLOW` at `now`.
    ///
    /// # Errors
    /// `BAD_TABLE_ID`.
    pub fn flow_stats(
        &self,
        req: &FlowStatsRequest,
        now: Instant,
    ) -> Result<Vec<FlowStats>, OfError> {
        Ok(self
            .stats_select(req)?
            .iter()
            .map(|r| r.stats(now))
            .collect())
    }

    /// `OFPMP_AGGREGATE`: `(packets, bytes, flows)`.
    ///
    /// # Errors
    /// `BAD_TABLE_ID`.
    pub fn aggregate_stats(&self, req: &FlowStatsRequest) -> Result<(u64, u64, u32), OfError> {
        let v = self.stats_select(req)?;
        let p = v
            .iter()
            .fold(0u64, |a, r| a.wrapping_add(r.counters.packets()));
        let b = v
            .iter()
            .fold(0u64, |a, r| a.wrapping_add(r.counters.bytes()));
        Ok((p, b, u32::try_from(v.len()).unwrap_or(u32::MAX)))
    }

    /// `OFPMP_TABLE`: every table.
    pub fn table_stats(&self) -> Vec<TableStats> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| TableStats {
                table_id: i as u8,
                name: t
                    .name
                    .clone()
                    .unwrap_or_else(|| crate::features::default_name(i as u8)),
                active_count: u32::try_from(t.cls.len()).unwrap_or(u32::MAX),
                lookup_count: t.lookups.load(Ordering::Relaxed),
                matched_count: t.matches.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn group_ref_count(&self, id: u32) -> u32 {
        let n = self
            .tables
            .iter()
            .flat_map(|t| t.cls.iter())
            .filter(|r| r.value.actions().any(|a| *a == Action::Group(id)))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// `OFPMP_GROUP` for `group_id` or `OFPG_ALL` at `now`.
    pub fn group_stats(&self, group_id: u32, now: Instant) -> Vec<GroupStats> {
        self.groups
            .values()
            .filter(|g| group_id == OFPG_ALL || g.id == group_id)
            .map(|g| {
                let (duration_sec, duration_nsec) =
                    split_duration(now.saturating_duration_since(g.created));
                GroupStats {
                    group_id: g.id,
                    ref_count: self.group_ref_count(g.id),
                    packet_count: g.counters.packets(),
                    byte_count: g.counters.bytes(),
                    duration_sec,
                    duration_nsec,
                    buckets: g
                        .bucket_counters
                        .iter()
                        .map(|c| (c.packets(), c.bytes()))
                        .collect(),
                }
            })
            .collect()
    }

    /// `OFPMP_GROUP_DESC`.
    pub fn group_desc(&self) -> Vec<GroupDesc> {
        self.groups
            .values()
            .map(|g| GroupDesc {
                group_type: g.group_type,
                group_id: g.id,
                buckets: g.buckets.clone(),
                selection: g.selection.clone(),
            })
            .collect()
    }

    /// `OFPMP_METER_CONFIG` for `meter_id` or `OFPM_ALL`.
    pub fn meter_config(&self, meter_id: u32) -> Vec<MeterConfig> {
        self.meters
            .iter()
            .filter(|(id, _)| meter_id == OFPM_ALL || **id == meter_id)
            .map(|(id, m)| MeterConfig {
                flags: m.flags,
                meter_id: *id,
                bands: m.bands.clone(),
            })
            .collect()
    }

    /// Flows using meter `id`.
    pub fn meter_flow_count(&self, id: u32) -> u32 {
        let n = self
            .tables
            .iter()
            .flat_map(|t| t.cls.iter())
            .filter(|r| r.value.instructions.meter == Some(id))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// After a push or pop of MPLS the actions that follow see this
/// EtherType (and no L3 fields).
fn set_eth_type(m: &mut Match, eth: u16) {
    let keep = *m;
    *m = Match::CATCHALL;
    for f in [Field::InPort, Field::DlSrc, Field::DlDst, Field::VlanTci] {
        m.key.set(f, keep.key.get(f));
        m.mask.set(f, keep.mask.get(f));
    }
    m.key.set_dl_type(eth);
    m.mask.set_exact(Field::DlType);
}

/// Flow-mods refused because of a `ct` action's `alg`: a helper other
/// than ftp (21) and tftp (69).
pub static CT_ALG_REFUSED: AtomicU64 = AtomicU64::new(0);

/// The `alg` of a `ct` action: the tracker has the FTP and TFTP helpers;
/// OVS `put_ct_helper` serializes no others (it fails the translation),
/// here the flow-mod is refused, counted ([`CT_ALG_REFUSED`]) and logged
/// at most once a second.
fn check_ct_alg(ct: &xennet_openflow::model::Ct) -> Result<(), OfError> {
    if ct.alg == 0 || xennet_datapath::conntrack::alg::Helper::from_alg(ct.alg).is_some() {
        return Ok(());
    }
    let n = CT_ALG_REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
    static LAST: AtomicU64 = AtomicU64::new(0);
    if crate::xlate::once_a_second(&LAST) {
        tracing::warn!(
            alg = ct.alg,
            refused = n,
            "flow-mod refused: ct(alg=..): no such helper (only alg=ftp and alg=tftp)"
        );
    }
    Err(OfError::BAD_ACTION_ARGUMENT)
}

#[cfg(test)]
mod select_tests {
    use super::select_hash_map;

    #[test]
    fn webster_shares_like_ovs() {
        let count = |m: &[usize], b: usize| m.iter().filter(|x| **x == b).count();
        // Weights 1:2: 16 values, 5 and 11 (OVS group_setup_dp_hash_table).
        let m = select_hash_map(&[1, 2]).unwrap();
        assert_eq!(m.len(), 16);
        assert_eq!((count(&m, 0), count(&m, 1)), (5, 11));
        assert_eq!(&m[..4], &[1, 0, 1, 1]);
        // Equal weights alternate; a zero weight gets nothing.
        let m = select_hash_map(&[1, 0, 1]).unwrap();
        assert_eq!((count(&m, 0), count(&m, 1), count(&m, 2)), (8, 0, 8));
        // 1:40 needs 41 -> 64 values; 1:100 needs 128: no table.
        assert_eq!(select_hash_map(&[1, 40]).map(|m| m.len()), Some(64));
        assert_eq!(select_hash_map(&[1, 100]), None);
        assert_eq!(select_hash_map(&[0, 0]), None);
        assert_eq!(select_hash_map(&[]), None);
        assert_eq!(select_hash_map(&[u16::MAX; 256]), None);
        assert_eq!(select_hash_map(&[u16::MAX; 4]).map(|m| m.len()), Some(16));
    }
}
