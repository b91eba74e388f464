//! Translation of a packet through the OpenFlow pipeline into datapath
//! actions and a megaflow mask (OVS `ofproto/ofproto-dpif-xlate.c`).
//!
//! # Model
//!
//! - Table 0 is looked up with the packet's key and the metadata register
//!   (0). The matched rule's instructions run in the 1.3 order (§5.9):
//!   meter, apply-actions, clear-actions, write-actions, write-metadata,
//!   goto-table. With no goto-table the pipeline ends and the action set
//!   runs in the 1.3 order (§5.10), as OVS `ofpacts_execute_action_set`:
//!   pop VLAN, push VLAN, dec TTL, the set-fields / set TTL / set-queue in
//!   order, then group, else output, else resubmit; nothing at all
//!   without one of those ([`action_set_to_list`]).
//! - A table miss ends the pipeline: in 1.3 the packet is dropped, the
//!   action set discarded (a
//!   bridge in standalone fail mode has a `priority=0 actions=NORMAL`
//!   flow; fail-open is handled by [`crate::Ofproto`]).
//! - Apply-actions run in order against a working copy of the key (`flow`);
//!   a second copy (`base`) tracks what the datapath packet looks like.
//!   Every output first *commits* the differences as datapath set / VLAN
//!   actions (OVS `commit_odp_actions`), so `set_field` then `output`
//!   outputs the modified packet, and unmodified fields cost nothing.
//! - `NORMAL` calls the bridge's [`Normal`] through
//!   [`UpcallHandler::upcall`] on the working key and merges its result
//!   (mask union, actions appended).
//! - `CONTROLLER` becomes a [`DpAction::Userspace`] carrying reason, table,
//!   cookie, metadata and `max_len`. A table-miss flow (priority 0,
//!   match-all) sends reason `OFPR_NO_MATCH` (OVS `OFPR_EXPLICIT_MISS`,
//!   sent as no-match to 1.3 controllers); other flows `OFPR_ACTION`.
//! - Groups: a bucket's actions are an action set (1.3.5 §5.6.1; OVS
//!   `xlate_group_bucket`), so they run in the action-set order with one
//!   final output or group. All (every bucket, each on the packet as it
//!   was before the group), indirect, select (a hash of the Ethernet
//!   addresses and type, VLAN ID, IP addresses and protocol, and L4 ports,
//!   with a fixed seed, picks the bucket as OVS's default method does:
//!   through a table of 16 to 64 hash values shared out by weight, like
//!   OVS's dp_hash method, or by the highest hash × weight when the
//!   weights need more values; exactly the hashed fields are
//!   un-wildcarded, so one flow keeps one bucket), fast failover (first
//!   bucket whose watch port is live or watch group has a live bucket).
//! - `dec_ttl` on TTL 0 or 1 sends a packet-in with reason
//!   `OFPR_INVALID_TTL` and stops translation; otherwise sets TTL - 1.
//! - VLANs: the key holds two tags (`vlan_tci`, `vlan_tci1`), as OVS's
//!   `flow->vlans[2]`. `push_vlan` moves them down and makes a new outer
//!   tag with the action's TPID (0x8100 or 0x88a8; flow-mods with others
//!   fail with `OFPBAC_BAD_ARGUMENT`, as OVS `decode_OFPAT_RAW11_PUSH_VLAN`),
//!   VID 0 and PCP 0 (OVS `flow_push_vlan_uninit`); `pop_vlan` moves the
//!   inner tag up (`flow_pop_vlan`). The TPIDs of the working flow's and
//!   the packet's tags are carried beside them (a pushed tag's from its
//!   action; the packet's own from the key, see [`packet_tpids`]), and a
//!   commit turns the packet's stack into the flow's as OVS
//!   `commit_vlan_action` does: the tags the two share at the bottom stay,
//!   the rest are popped and pushed (a lone outer tag with the same TPID
//!   is rewritten with `set(vlan(..))`).
//! - Nicira `resubmit` looks up another table with an optionally changed
//!   in_port and executes the rule's instructions, then continues.
//! - The other Nicira actions, as OVS `do_xlate_actions`: `load`/`move`
//!   write subfields (pipeline fields in the working flow only, packet
//!   fields through the set-field path and the commit; the bits a `move`,
//!   `push` or `output:reg` reads are un-wildcarded); `push`/`pop` use a
//!   stack of at most [`MAX_STACK_BYTES`] (beyond: dropped, as OVS
//!   `XLATE_STACK_TOO_DEEP`; a pop on an empty stack is counted and
//!   skipped); `clone` runs its actions and then the action set on a
//!   copy of the flow, action set and stack (changes to the packet are
//!   undone by the next commit); `exit` stops translation, the action set
//!   included (OVS keeps `ctx->exit` set through `xlate_action_set`), from
//!   inside a `clone` too (OVS 3.1.0 does not reset it there; a group
//!   bucket's ends only the bucket); `multipath`
//!   and `bundle` hash the fields OVS hashes (`flow_mask_hash_fields`);
//!   `resubmit(,,ct)` looks up with the connection's original tuple
//!   (OVS `tuple_swap`) and without a tracked connection skips the
//!   lookup as OVS does; `sample` is a counted no-op; `note` does
//!   nothing.
//! - `ct(...)` becomes a datapath `ct` (zone, commit/force, NAT, the
//!   nested `ct_mark`/`ct_label` writes); with `table=N` the state is
//!   frozen under a recirculation id ([`crate::recirc`]) and the actions
//!   end the fork with `recirc(id)`; the recirculated packet's upcall
//!   resumes in table N ([`xlate_resume`]) with its conntrack state, the
//!   registers, metadata, stack and action set. After `ct` the rest of
//!   the action list sees the packet untracked (OVS clears the ct fields
//!   of the flow). `ct_clear` clears a state this bridge's `ct` set.
//! - After `pop_mpls` the headers under the label were never parsed: the
//!   next action that is not an output or an L2 rewrite (OVS
//!   `recirc_for_mpls`), or a table lookup, *freezes* (OVS `was_mpls`): each
//!   level of the translation adds what it had left to run (its actions,
//!   then the rule's other instructions, `goto_table` included) to the
//!   frozen state, the actions end in `recirc(id)`, and the thaw runs
//!   that rest on the re-parsed packet. A freeze inside `clone`, a group
//!   bucket or a `check_pkt_larger` branch ends there, as OVS calls
//!   `finish_freezing` at the end of each: the frozen rest is that
//!   context's, and the translation goes on after it as the context
//!   decides (see [`Ctx::clone_actions`], [`Ctx::group`],
//!   [`Ctx::check_pkt_larger`]).
//! - `controller(pause)` freezes the same way (OVS `ctx->pause`), but the
//!   frozen rest, stack and action set go to the controller as the
//!   packet-in's continuation ([`xennet_openflow::packet_in2::continuation`])
//!   instead of a recirculation; `NXT_RESUME` hands them back and
//!   [`xlate_continue`] goes on without a table lookup. The pausing action
//!   itself is not frozen (it is done). As for `pop_mpls`, a pause inside
//!   `clone`, a group bucket or a `check_pkt_larger` branch sends its
//!   packet-in there, its continuation holding the rest of that context
//!   only (OVS 3.1).
//! - `learn` (OVS `xlate_learn_action`): the source bits are
//!   un-wildcarded and the flow-mod built from the working flow goes to
//!   [`XlateOut::learned`]; the bridge executes it after the translation
//!   (so later lookups of this translation do not see it, as in OVS 2.4+)
//!   and refreshes it while the megaflow is hit. `fin_timeout` on a FIN or
//!   RST goes to [`XlateOut::fin_timeouts`] the same way.
//! - `check_pkt_larger(N)->dst` (OVS `xlate_check_pkt_larger`): after a
//!   commit, the rest of the rule's actions and instructions and the
//!   action set are translated twice, with the bit 1 and 0, into the two
//!   branches of a [`DpAction::CheckPktLen`] (the datapath compares each
//!   packet's length); the state is restored after both.
//!
//! # Wildcards
//!
//! The megaflow mask is the union of: `in_port`, `dl_type`, `recirc_id`
//! and (for IP) `nw_frag`, which OVS always examines (`xlate_wc_init`),
//! and the tags' TPIDs (in OVS's datapath key as EtherTypes);
//! the masks of the classifier
//! subtables probed in every table visited (see [`crate::classifier`]);
//! fields the actions read (`in_port` for outputs, TTL for `dec_ttl`,
//! hashed fields for select groups, EtherType/protocol to choose a
//! rewrite); fields set by `set_field` (the commit compares them with the
//! packet); VLAN TCI for VLAN actions; NORMAL's mask.
//!
//! # Limits
//!
//! As OVS (`xlate_recursively`, `xlate_resubmit_resource_check`): at most
//! [`MAX_DEPTH`] nested lookups that deepen, and [`MAX_RESUBMITS`] lookups
//! in total; beyond, the packet is dropped and a warning logged at most
//! once a second; so is a translation producing over [`MAX_DP_ACTIONS`]
//! datapath actions. A resubmit deepens only when it goes to the same or
//! an earlier table (a forward chain cannot loop, and OVN's pipelines
//! resubmit forward through some 60 tables per logical datapath), and
//! so does each group; goto_table and clone do not. The recursion itself
//! (every lookup, clone and group) is bounded by [`MAX_NEST`], so no stack
//! overflow.
//!
//! # Port config (`OFPT_PORT_MOD`)
//!
//! As OVS (OpenFlow 1.3.5 §7.2.1, 1.0 §5.2.1): a packet received on a port
//! with `OFPPC_PORT_DOWN` or `OFPPC_NO_RECV` is dropped before table 0;
//! output to a port with `OFPPC_NO_FWD` or `OFPPC_PORT_DOWN` is skipped
//! (also NORMAL's); `OFPP_FLOOD` (and NORMAL's flooding) leaves out ports
//! with `OFPPC_NO_FLOOD`, `OFPP_ALL` does not; a packet from a port with
//! `OFPPC_NO_PACKET_IN` sends no packet-in. Changes revalidate (the
//! generation, see [`crate::Ofproto`]); in_port is always in the mask.
//!
//! Not modelled: a third VLAN tag (payload, as in OVS: a push onto two
//! tags loses the lowest from the key, and the commit then rebuilds the
//! stack from the two it knows, as OVS does), queues (`set_queue` is
//! accepted and ignored), PBB.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use xennet_datapath::actions::{ActionsFmt, MAX_CHECK_PKT_LEN_NESTING};
use xennet_datapath::flow::{
    Field, L3_FIELDS, MPLS_FIELDS, N_REGS, VLAN_CFI, VLAN_PCP_MASK, VLAN_VID_MASK,
};
use xennet_datapath::{
    DpAction, FlowKey, FlowMask, OfPort, RuleCounters, SetAction, Tags, Upcall, Userdata,
};
use xennet_openflow::model::{
    port_config, Action, FlowMod, FlowModCommand, GroupType, Instructions, Learn, LearnDst,
    LearnSrc, Match, MfField, OxmField, SelectionKind, SelectionMethod, Subfield,
    NX_LEARN_F_SEND_FLOW_REM, OFPCML_NO_BUFFER, OFPG_ANY, OFPP_ALL, OFPP_ANY, OFPP_CONTROLLER,
    OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL, OFPP_NORMAL, OFPP_TABLE,
};

use crate::normal::Normal;
use crate::ovshash;
use crate::recirc::{FrozenOp, FrozenState, RecircTable};
use crate::tables::{Group, Rule, Tables, N_TABLES};
use xennet_datapath::actions::CtAction;
use xennet_datapath::conntrack::{CtArgs, NatArgs, NatKind};
use xennet_openflow::packet_in2::continuation::Continuation;

/// `OFP_DEFAULT_PRIORITY` (0x8000): a flow's priority when none is given;
/// OVS's formatters leave it out.
const OFP_DEFAULT_PRIORITY: u16 = 0x8000;
/// Most nested lookups (OVS `MAX_DEPTH`).
pub const MAX_DEPTH: u32 = 64;
/// Most lookups per translation (OVS `MAX_RESUBMITS`).
pub const MAX_RESUBMITS: u32 = 4096;
/// Most nested lookups, clones and groups, deepening or not: what bounds
/// the translation's recursion on the thread's stack (xennet's own; OVS
/// has no such limit). A level takes about 1.1 KiB of stack in a release
/// build and 2.8 KiB in a debug build (measured 2026-12), so 400 fit in
/// the 2 MiB of a Rust thread with room to spare. OVN's logical switch,
/// router and switch in a row nest about 190.
pub const MAX_NEST: u32 = 400;
/// Most datapath actions one translation may produce (OVS bounds the
/// datapath action buffer to 64 KiB); beyond, the packet is dropped.
pub const MAX_DP_ACTIONS: usize = 4096;

/// `ofp_packet_in_reason` values (1.3).
pub mod packet_in_reason {
    /// `OFPR_NO_MATCH`.
    pub const NO_MATCH: u8 = 0;
    /// `OFPR_ACTION`.
    pub const ACTION: u8 = 1;
    /// `OFPR_INVALID_TTL`.
    pub const INVALID_TTL: u8 = 2;
}

/// Why a translation was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XlateError {
    /// Too many nested lookups.
    TooDeep,
    /// Too many lookups in total.
    TooManyResubmits,
    /// Too many datapath actions.
    TooManyActions,
    /// `push` beyond [`MAX_STACK_BYTES`].
    StackTooDeep,
    /// A `ct` action whose arguments could not be interned (the table of
    /// `ct` arguments is full, [`xennet_datapath::actions::MAX_CT_ARGS`]).
    CtArgsFull,
    /// A recirculation with no recirculation table to freeze into, or
    /// with the table full (OVS `XLATE_NO_RECIRCULATION_CONTEXT`).
    NoRecircContext,
    /// A recirculation that cannot be frozen: after `pop_mpls` in a
    /// translation without a recirculation table.
    NeedsRecirculation,
}

/// Most bytes on the `push`/`pop` stack (OVS: a translation whose stack
/// passes 64 kB fails, `XLATE_STACK_TOO_DEEP`); each entry counts its
/// value's bytes plus one, as OVS `nx_stack_push` stores it.
pub const MAX_STACK_BYTES: usize = 65536;

/// `sample` actions executed: a no-op, as in OVS when no IPFIX collector
/// set is configured (xennet has no IPFIX or sFlow exporter).
pub static SAMPLE_NOOP: AtomicU64 = AtomicU64::new(0);
/// Translations that could not freeze for a `ct(table=N)` (no
/// recirculation table, or the bridge's [`crate::recirc::MAX_RECIRC_IDS`]
/// states live) or intern a `ct`'s arguments: the packet is dropped and a
/// rate-limited line names the flow.
pub static CT_FAILED: AtomicU64 = AtomicU64::new(0);
/// `resubmit(..,ct)` skipped because the packet has no tracked
/// connection (the tracker has not filled the original tuple), as OVS
/// skips it.
pub static RESUBMIT_CT_UNTRACKED: AtomicU64 = AtomicU64::new(0);
/// Recirculated packets whose recirculation id has no frozen state (freed
/// while a megaflow still recirculated to it, or never made here):
/// dropped, as OVS drops them.
pub static RECIRC_NO_STATE: AtomicU64 = AtomicU64::new(0);
/// `pop` actions on an empty stack (OVS logs "stack underflow" and goes
/// on).
pub static STACK_UNDERFLOW: AtomicU64 = AtomicU64::new(0);
/// Most `learn` actions one translation executes; further ones are
/// dropped and counted in [`LEARNS_DROPPED`] (OVS has no such bound; a
/// translation is bounded by its resubmits).
pub const MAX_LEARNS_PER_XLATE: usize = 64;
/// `learn` actions beyond [`MAX_LEARNS_PER_XLATE`] in one translation.
pub static LEARNS_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Packet-ins from `controller(...)` or `dec_ttl(ids)` whose userdata,
/// controller id and registers were dropped because the extras table
/// ([`crate::pin_extras`]) was full: sent as plain packet-ins to the
/// controllers with id 0.
pub static CONTROLLER_EXTRAS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// The result of a translation.
#[derive(Debug, Default)]
pub struct XlateOut {
    /// Mask, datapath actions and the counters to credit (rules and
    /// groups).
    pub upcall: Upcall,
    /// Set when translation was cut short (the actions are then empty).
    pub error: Option<XlateError>,
    /// The working key at the end (after set-fields).
    pub final_flow: FlowKey,
    /// The last table lookup: the rule it matched, or the table that
    /// missed (`None`: no lookup, e.g. the input port does not receive).
    /// The isolation checker names it as the flow that dropped a probe.
    pub last_hit: Option<Hit>,
    /// The recirculations the actions end in (`ct(table=N)`), for traces
    /// and probes that follow the packet through them.
    pub recircs: Vec<RecircNode>,
    /// Flows `learn` actions built, to add or refresh once the tables
    /// can be written (OVS `xlate_learn_action` with side effects; from
    /// 2.4 on a learned flow is not visible to later lookups of the same
    /// translation either), with each action's `limit`.
    pub learned: Vec<(FlowMod, u32)>,
    /// `fin_timeout`s a TCP FIN or RST triggered: the rule
    /// `(table, match, priority)` and the idle and hard timeouts to lower
    /// it to, once the tables can be written.
    pub fin_timeouts: Vec<FinTimeout>,
}

/// A `fin_timeout` to apply ([`XlateOut::fin_timeouts`]).
#[derive(Debug, Clone)]
pub struct FinTimeout {
    /// The rule's table.
    pub table: u8,
    /// The rule's match.
    pub matcher: xennet_datapath::flow::MiniMatch,
    /// The rule's priority.
    pub priority: u16,
    /// Idle timeout in seconds (0: unchanged).
    pub idle: u16,
    /// Hard timeout in seconds (0: unchanged).
    pub hard: u16,
}

/// A recirculation made by a translation ([`XlateOut::recircs`]): the
/// packet that recirculates, as the datapath will see it before the
/// tracker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecircNode {
    /// The recirculation id.
    pub id: u32,
    /// The zone of the `ct` before it.
    pub zone: u16,
    /// Whether a `ct` made it (else a freeze, as after `pop_mpls`).
    pub ct: bool,
    /// The packet's key at that point (without pipeline fields).
    pub key: FlowKey,
}

/// The outcome of one table lookup ([`XlateOut::last_hit`]).
#[derive(Debug, Clone)]
pub enum Hit {
    /// The rule matched.
    Rule(Arc<Rule>),
    /// No rule matched in this table.
    Miss(u8),
}

/// The action set (1.3.5 §5.10), kept as OVS keeps it: `write_actions`
/// appends (OVS `xlate_write_actions`) and [`action_set_to_list`] orders
/// it when it runs.
#[derive(Debug, Default, Clone)]
struct ActionSet {
    actions: Vec<Action>,
}

impl ActionSet {
    fn write(&mut self, a: &Action) {
        self.actions.push(a.clone());
    }

    /// The set as an ordered action list.
    fn to_list(&self) -> Vec<Action> {
        action_set_to_list(&self.actions)
    }
}

/// The action list that executing the action set `set` runs (OpenFlow
/// 1.3.5 §5.10; OVS `ofpacts_execute_action_set`, which also runs each
/// group bucket, 1.3.5 §5.6.1):
///
/// - pop VLAN, pop MPLS, push MPLS, push VLAN, dec TTL, dec MPLS TTL:
///   the last of each, in that order;
/// - then every set-field, `mod_nw_ttl` and `set_queue`, in order (so the
///   last set of a field wins);
/// - then one final action, the last of the highest kind present, group
///   over output over resubmit over `ct_clear` over `ct`.
///
/// Without a final action nothing runs (an empty list): modifying a packet
/// sent nowhere is pointless, and a `dec_ttl` must not reach the
/// controller. So a bucket `actions=output:2,output:3` outputs to 3 only.
pub fn action_set_to_list(set: &[Action]) -> Vec<Action> {
    let (mut pop, mut push, mut dec) = (None, None, None);
    let (mut pop_mpls, mut push_mpls, mut dec_mpls) = (None, None, None);
    let mut sets = Vec::new();
    // (kind, action): ct 1, ct_clear 2, resubmit 3, output 4, group 5.
    let mut last: Option<(u8, &Action)> = None;
    let mut fin = |kind: u8, a| {
        if last.map_or(true, |(k, _)| kind >= k) {
            last = Some((kind, a));
        }
    };
    for a in set {
        match a {
            Action::PopVlan => pop = Some(a),
            Action::PushVlan(_) => push = Some(a),
            Action::DecNwTtl | Action::DecTtlIds(_) => dec = Some(a),
            Action::PopMpls(_) => pop_mpls = Some(a),
            Action::PushMpls(_) => push_mpls = Some(a),
            Action::DecMplsTtl => dec_mpls = Some(a),
            Action::SetField { .. }
            | Action::SetVlan10 { .. }
            | Action::SetNwTtl(_)
            | Action::SetMplsTtl(_)
            | Action::SetQueue(_)
            | Action::Load { .. }
            | Action::Move { .. }
            | Action::SetTunnel { .. } => sets.push(a),
            // OVS `ACTION_SET_FINAL_PRIORITY`: ct, ct_clear, resubmit,
            // output, group (OVN's load-balancer buckets end in `ct`).
            Action::Ct(_) => fin(1, a),
            Action::CtClear => fin(2, a),
            Action::Resubmit { .. } => fin(3, a),
            Action::Output { .. } => fin(4, a),
            Action::Group(_) => fin(5, a),
            // Not allowed in an action set or bucket (the flow-mod and
            // group-mod checks refuse them, `UNSUPPORTED_ORDER`).
            _ => {}
        }
    }
    let Some((_, fin)) = last else {
        return Vec::new();
    };
    [pop, pop_mpls, push_mpls, push, dec, dec_mpls]
        .into_iter()
        .flatten()
        .chain(sets)
        .chain(std::iter::once(fin))
        .cloned()
        .collect()
}

/// Inputs of a translation.
pub struct XlateIn<'a> {
    /// The bridge's tables.
    pub tables: &'a Tables,
    /// NORMAL, if the bridge has one available.
    pub normal: Option<&'a mut Normal>,
    /// Enabled datapath ports, sorted.
    pub ports: &'a [OfPort],
    /// Whether a port is live (for fast failover and select groups).
    pub live: &'a dyn Fn(u32) -> bool,
    /// A port's OpenFlow config bits ([`port_config`]; 0 for a port
    /// without any): see [`xlate`] for what each does.
    pub port_config: &'a dyn Fn(u32) -> u32,
    /// Count lookups in the table statistics.
    pub count_stats: bool,
    /// Produce an `ofproto/trace` text.
    pub trace: bool,
    /// The input port's ingress policer (datapath meter id): the first
    /// action of every translation from that port (Interface
    /// `ingress_policing_rate`), shown in the trace's datapath actions.
    pub ingress_meter: Option<u32>,
    /// Where `ct(table=N)` freezes its state ([`crate::recirc`]); without
    /// one, such a translation fails.
    pub recirc: Option<&'a RecircTable>,
}

impl std::fmt::Debug for XlateIn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlateIn")
            .field("ports", &self.ports)
            .finish()
    }
}

struct Ctx<'a> {
    tables: &'a Tables,
    normal: Option<&'a mut Normal>,
    ports: &'a [OfPort],
    live: &'a dyn Fn(u32) -> bool,
    port_config: &'a dyn Fn(u32) -> u32,
    count_stats: bool,
    trace: Option<String>,
    ingress_meter: Option<u32>,
    indent: usize,
    orig: FlowKey,
    flow: FlowKey,
    base: FlowKey,
    wc: FlowMask,
    actions: Vec<DpAction>,
    counters: Vec<Arc<RuleCounters>>,
    /// Revalidation tags of the state NORMAL read.
    tags: Tags,
    action_set: ActionSet,
    depth: u32,
    /// Nested lookups, clones and groups (bounded by [`MAX_NEST`]).
    nest: u32,
    resubmits: u32,
    table_id: u8,
    rule: Option<Arc<Rule>>,
    exit: bool,
    error: Option<XlateError>,
    /// A VLAN action changed `flow`'s tag: commits then compare it with
    /// the packet's, which reads the packet's TCI.
    vlan_touched: bool,
    /// TPIDs of `flow`'s tags, outer first (OVS `flow->vlans[i].tpid`):
    /// a pushed tag's from its `push_vlan`, the packet's own from the key
    /// ([`packet_tpids`]).
    tpid: [u16; 2],
    /// TPIDs of `base`'s tags.
    base_tpid: [u16; 2],
    /// The `push`/`pop` stack (values) and its size in OVS's bytes.
    stack: Vec<u128>,
    stack_bytes: usize,
    /// A `pop_mpls` uncovered headers that were never parsed: no more
    /// table lookups this translation.
    l3_unknown: bool,
    /// See [`XlateOut::last_hit`].
    last_hit: Option<Hit>,
    recirc: Option<&'a RecircTable>,
    /// A freeze is under way (OVS `freezing`): the translation unwinds,
    /// each level adding what it had left to run to `frozen`.
    freezing: bool,
    frozen: Vec<FrozenOp>,
    /// The freeze is a `controller(pause)` (OVS `ctx->pause`): it ends in
    /// a packet-in carrying the frozen state as its continuation instead
    /// of a recirculation.
    pause: Option<Box<xennet_openflow::model::Controller>>,
    /// The table and cookie of the rule that paused.
    pause_at: (u8, u64),
    /// The cookie of the rule whose frozen actions run after a thaw (no
    /// rule is matched then).
    unroll_cookie: Option<u64>,
    /// The packet went through `ct` in this bridge and its conntrack
    /// fields are valid (OVS `conntracked`): only then does `ct_clear`
    /// emit a datapath action.
    conntracked: bool,
    /// The next table lookup is `resubmit(,,ct)`'s, with the original
    /// tuple swapped in.
    ct_orig_lookup: bool,
    recircs: Vec<RecircNode>,
    /// See [`XlateOut::learned`].
    learned: Vec<(FlowMod, u32)>,
    /// See [`XlateOut::fin_timeouts`].
    fin_timeouts: Vec<FinTimeout>,
    /// `check_pkt_larger` branches being translated (nesting).
    cpl_depth: usize,
}

impl<'a> Ctx<'a> {
    /// A translation of `key` starting in table 0 with wildcards `wc`.
    fn new(input: XlateIn<'a>, key: &FlowKey, wc: FlowMask) -> Ctx<'a> {
        // A packet enters the pipeline with zero registers, metadata and
        // conj_id (OpenFlow 1.3.5 §7.2.3.9; OVS clears them per packet).
        let key = &key.without_pipeline_state();
        let tpid = packet_tpids(key);
        Ctx {
            tables: input.tables,
            normal: input.normal,
            ports: input.ports,
            live: input.live,
            port_config: input.port_config,
            count_stats: input.count_stats,
            trace: input.trace.then(String::new),
            ingress_meter: input.ingress_meter,
            indent: 0,
            orig: *key,
            flow: *key,
            base: *key,
            wc,
            actions: Vec::new(),
            counters: Vec::new(),
            tags: Tags::EMPTY,
            action_set: ActionSet::default(),
            depth: 0,
            nest: 0,
            resubmits: 0,
            table_id: 0,
            rule: None,
            exit: false,
            error: None,
            vlan_touched: false,
            tpid,
            base_tpid: tpid,
            stack: Vec::new(),
            stack_bytes: 0,
            l3_unknown: false,
            last_hit: None,
            recirc: input.recirc,
            freezing: false,
            frozen: Vec::new(),
            pause: None,
            pause_at: (0, u64::MAX),
            unroll_cookie: None,
            conntracked: false,
            ct_orig_lookup: false,
            recircs: Vec::new(),
            learned: Vec::new(),
            fin_timeouts: Vec::new(),
            cpl_depth: 0,
        }
    }
}

/// Translate `key` through the pipeline from table 0 (OVS `xlate_actions`):
/// the megaflow (mask, datapath actions, counters to credit) and, if
/// `input.trace`, the `ofproto/trace` text.
pub fn xlate(input: XlateIn<'_>, key: &FlowKey) -> (XlateOut, Option<String>) {
    let mut ctx = Ctx::new(input, key, FlowMask::default());
    ctx.wc_init();
    let in_config = (ctx.port_config)(key.in_port());
    if in_config & (port_config::PORT_DOWN | port_config::NO_RECV) != 0 {
        // OVS `xlate_actions` (`xport_rcv_allowed`): dropped on receipt.
        ctx.note(if in_config & port_config::PORT_DOWN != 0 {
            "OFPPC_PORT_DOWN is set on the input port, dropping"
        } else {
            "OFPPC_NO_RECV is set on the input port, dropping"
        });
        return ctx.out();
    }
    ctx.run_table(0, false, false);
    ctx.finish();
    ctx.finish_freezing();
    ctx.out()
}

/// Resume the translation of a recirculated packet (`key` has its
/// `recirc_id` and conntrack state) from its frozen `state` (OVS
/// `xlate_actions` with `frozen_state`, "thaw"): the pipeline fields,
/// stack and action set come back and the lookup starts in the frozen
/// table. The megaflow matches the recirculation id, so the pipeline
/// fields need not be matched.
pub fn xlate_resume(
    input: XlateIn<'_>,
    key: &FlowKey,
    state: &FrozenState,
) -> (XlateOut, Option<String>) {
    let mut ctx = Ctx::new(input, key, FlowMask::default());
    ctx.wc_init();
    ctx.flow.set_in_port(state.in_port);
    for (k, v) in (0u8..).zip(state.xregs) {
        ctx.flow.set(Field::Xreg(k), u128::from(v));
    }
    ctx.flow.set(Field::Metadata, u128::from(state.metadata));
    ctx.stack = state.stack.clone();
    ctx.stack_bytes = state.stack.len() * 17;
    ctx.action_set = ActionSet {
        actions: state.action_set.clone(),
    };
    ctx.conntracked = state.conntracked;
    if !state.conntracked {
        for f in Field::CT {
            ctx.flow.set(f, 0);
        }
    }
    ctx.note("thaw");
    ctx.indent += 4;
    ctx.note(format_args!("Resuming from table {}", state.table_id));
    ctx.indent -= 4;
    if state.ops.is_empty() {
        ctx.run_table(state.table_id, false, true);
    } else {
        ctx.table_id = state.table_id;
        ctx.run_frozen(&state.ops);
    }
    ctx.finish();
    ctx.finish_freezing();
    ctx.out()
}

/// Go on with a paused translation (`NXT_RESUME`; OVS `xlate_resume`,
/// which thaws a frozen state built from the continuation): `key` is the
/// packet the controller handed back, with the pipeline fields of its
/// packet-in metadata (in_port, registers, metadata, tunnel, packet mark,
/// conntrack); the stack, the action set and the rest of the pipeline
/// come from `cont`. No table is looked up first: with nothing left to
/// run the pipeline ends there (its action set runs), as OVS resumes
/// with a no-op action. The actions are for this one packet (the mask is
/// exact; nothing is cached).
pub fn xlate_continue(
    input: XlateIn<'_>,
    key: &FlowKey,
    cont: &Continuation,
) -> (XlateOut, Option<String>) {
    let mut ctx = Ctx::new(input, key, FlowMask::EXACT);
    for k in 0u8..8 {
        ctx.flow.set(Field::Xreg(k), key.get(Field::Xreg(k)));
    }
    ctx.flow.set(Field::Metadata, key.get(Field::Metadata));
    ctx.stack = cont.stack.clone();
    ctx.stack_bytes = cont.stack.len() * 17;
    ctx.action_set = ActionSet {
        actions: cont.action_set.clone(),
    };
    ctx.conntracked = cont.conntracked;
    if !cont.conntracked {
        for f in Field::CT {
            ctx.flow.set(f, 0);
        }
    }
    ctx.note("thaw");
    ctx.indent += 4;
    ctx.note("Resuming from NXT_RESUME");
    ctx.indent -= 4;
    ctx.run_frozen(&cont.ops);
    ctx.finish();
    ctx.finish_freezing();
    ctx.out()
}

/// Translate an explicit action list (packet-out), as if applied by a
/// rule in table 0; `OFPP_TABLE` outputs run the pipeline.
pub fn xlate_actions(
    input: XlateIn<'_>,
    key: &FlowKey,
    actions: &[Action],
) -> (XlateOut, Option<String>) {
    let mut ctx = Ctx::new(input, key, FlowMask::EXACT);
    ctx.do_actions(actions);
    ctx.finish();
    ctx.finish_freezing();
    ctx.out()
}

/// A frozen pipeline's rest as a trace shows it.
fn frozen_text(ops: &[FrozenOp]) -> String {
    let mut parts = Vec::new();
    for op in ops {
        match op {
            FrozenOp::Unroll { .. } => {}
            FrozenOp::Act(a) => parts.push(action_text(a)),
            FrozenOp::ClearActions => parts.push("clear_actions".into()),
            FrozenOp::WriteActions(w) => {
                let inner: Vec<String> = w.iter().map(action_text).collect();
                parts.push(format!("write_actions({})", inner.join(",")));
            }
            FrozenOp::WriteMetadata(v, m) => parts.push(format!("write_metadata:{v:#x}/{m:#x}")),
            FrozenOp::GotoTable(t) => parts.push(format!("goto_table:{t}")),
        }
    }
    parts.join(",")
}

fn warn_rate_limited(what: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    let now = start.elapsed().as_secs().saturating_add(1);
    let last = LAST.load(Ordering::Relaxed);
    if now > last
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!("translation stopped: {what}; packet dropped");
    }
}

/// 64-bit mixer (splitmix64 finaliser): deterministic, fixed seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The fields a select group hashes for this flow.
fn select_fields(flow: &FlowKey) -> Vec<(Field, u128)> {
    let mut v = vec![
        (Field::DlSrc, Field::DlSrc.all_ones()),
        (Field::DlDst, Field::DlDst.all_ones()),
        (Field::DlType, Field::DlType.all_ones()),
        (Field::VlanTci, u128::from(VLAN_CFI | VLAN_VID_MASK)),
    ];
    let ip = matches!(flow.dl_type(), 0x0800 | 0x86dd);
    if ip {
        v.push((Field::NwSrc, Field::NwSrc.all_ones()));
        v.push((Field::NwDst, Field::NwDst.all_ones()));
        v.push((Field::NwProto, Field::NwProto.all_ones()));
        if matches!(flow.nw_proto(), 6 | 17 | 132) {
            v.push((Field::TpSrc, Field::TpSrc.all_ones()));
            v.push((Field::TpDst, Field::TpDst.all_ones()));
        }
    }
    v
}

/// OVS-style names of set-field targets ([`OxmField::name`]).
pub fn oxm_name(f: OxmField) -> &'static str {
    f.name()
}

fn port_name(p: u32) -> String {
    match p {
        OFPP_IN_PORT => "IN_PORT".into(),
        OFPP_TABLE => "TABLE".into(),
        OFPP_NORMAL => "NORMAL".into(),
        OFPP_FLOOD => "FLOOD".into(),
        OFPP_ALL => "ALL".into(),
        OFPP_CONTROLLER => "CONTROLLER".into(),
        OFPP_LOCAL => "LOCAL".into(),
        OFPP_ANY => "ANY".into(),
        p => p.to_string(),
    }
}

/// A field's value as OVS `mf_format` writes it (the field's format in
/// ovs-fields(7): hexadecimal as `ds_put_hex`, addresses, ports, frag).
fn field_value_text(f: OxmField, v: u128) -> String {
    use OxmField::*;
    match f {
        Ipv4Src | Ipv4Dst | ArpSpa | ArpTpa | TunIpv4Src | TunIpv4Dst | CtNwSrc | CtNwDst => {
            std::net::Ipv4Addr::from(v as u32).to_string()
        }
        EthDst | EthSrc | ArpSha | ArpTha | NdSll | NdTll => {
            xennet_datapath::packet::MacAddr::from_u64(v as u64).to_string()
        }
        Ipv6Src | Ipv6Dst | NdTarget | TunIpv6Src | TunIpv6Dst | CtIpv6Src | CtIpv6Dst => {
            std::net::Ipv6Addr::from(v).to_string()
        }
        Metadata
        | TcpFlags
        | Reg(_)
        | Xreg(_)
        | Xxreg(_)
        | TunId
        | PktMark
        | Ipv6Label
        | TunMetadata { .. }
        | EthType
        | CtZone
        | CtMark
        | CtLabel
        | DpHash => ovs_hex(v),
        InPort => port_name(v as u32),
        IpFrag => match v {
            0 => "no".into(),
            1 => "first".into(),
            3 => "later".into(),
            v => v.to_string(),
        },
        _ => v.to_string(),
    }
}

/// A value in hexadecimal as OVS `ds_put_hex` writes it (`0x800`, `0`).
fn ovs_hex(v: u128) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

/// [`field_value_text`] for any field `learn` and `load` name.
fn mf_value_text(f: MfField, v: u128) -> String {
    match f {
        MfField::Oxm(o) => field_value_text(o, v),
        MfField::VlanTci => ovs_hex(v),
        MfField::IpTos => v.to_string(),
        // OpenFlow 1.0 port numbers: the reserved ones by name.
        MfField::InPort16 if v >= 0xff00 => port_name(0xffff_0000 | v as u32),
        MfField::InPort16 => v.to_string(),
    }
}

/// A field's name in subfield syntax as OVS writes it
/// ([`OxmField::nxm_name`]: `NXM_NX_REG0`, `NXM_OF_VLAN_TCI`).
fn mf_nxm_name(f: MfField) -> String {
    match f {
        MfField::Oxm(o) => o.nxm_name(),
        MfField::VlanTci => "NXM_OF_VLAN_TCI".into(),
        MfField::IpTos => "NXM_OF_IP_TOS".into(),
        MfField::InPort16 => "NXM_OF_IN_PORT".into(),
    }
}

/// A subfield in `ovs-ofctl` syntax as OVS `mf_format_subfield` writes it
/// (`NXM_NX_REG0[0..3]`, `NXM_NX_REG0[]`, `NXM_NX_REG0[5]`).
pub fn subfield_text(sf: &Subfield) -> String {
    let name = mf_nxm_name(sf.field);
    if sf.ofs == 0 && u32::from(sf.n_bits) == sf.field.n_bits() {
        format!("{name}[]")
    } else if sf.n_bits == 1 {
        format!("{name}[{}]", sf.ofs)
    } else {
        format!(
            "{name}[{}..{}]",
            sf.ofs,
            (u32::from(sf.ofs) + u32::from(sf.n_bits)).saturating_sub(1)
        )
    }
}

/// `ofp_packet_in_reason` names as `ovs-ofctl` prints them.
fn reason_name(r: u8) -> String {
    match r {
        0 => "no_match".into(),
        1 => "action".into(),
        2 => "invalid_ttl".into(),
        3 => "action_set".into(),
        4 => "group".into(),
        5 => "packet_out".into(),
        r => r.to_string(),
    }
}

fn hex_dotted(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(".")
}

/// `NX_HASH_FIELDS_*` names.
fn hash_fields_name(f: u16) -> &'static str {
    match f {
        0 => "eth_src",
        1 => "symmetric_l4",
        2 => "symmetric_l3l4",
        3 => "symmetric_l3l4+udp",
        4 => "nw_src",
        5 => "nw_dst",
        6 => "symmetric_l3",
        _ => "?",
    }
}

/// `ct(...)` as `ovs-ofctl` prints it (OVS 3.1 `format_CT`: commit,
/// force, table, zone, a first `nat`, `exec(...)` of the other nested
/// actions, alg).
fn ct_text(ct: &xennet_openflow::model::Ct) -> String {
    use xennet_openflow::model::CtZone;
    let mut parts = Vec::new();
    if ct.flags & 1 != 0 {
        parts.push("commit".to_string());
    }
    if ct.flags & 2 != 0 {
        parts.push("force".to_string());
    }
    if ct.recirc_table != 0xff {
        parts.push(format!("table={}", ct.recirc_table));
    }
    match ct.zone {
        CtZone::Imm(0) => {}
        CtZone::Imm(z) => parts.push(format!("zone={z}")),
        CtZone::Field(sf) => parts.push(format!("zone={}", subfield_text(&sf))),
    }
    // A first nested `nat` goes outside the `exec(...)`, as OVS prints it.
    let mut rest = ct.actions.as_slice();
    if let Some((first @ Action::Nat(_), tail)) = rest.split_first() {
        parts.push(action_text(first));
        rest = tail;
    }
    if !rest.is_empty() {
        let inner: Vec<String> = rest.iter().map(action_text).collect();
        parts.push(format!("exec({})", inner.join(",")));
    }
    match ct.alg {
        0 => {}
        21 => parts.push("alg=ftp".into()),
        69 => parts.push("alg=tftp".into()),
        a => parts.push(format!("alg={a}")),
    }
    format!("ct({})", parts.join(","))
}

/// `nat(...)` from the `nx_action_nat` bytes after the subtype (OVS
/// `format_NAT`, approximately: flags, then the range).
fn nat_text(body: &[u8]) -> String {
    let be16 = |at: usize| {
        body.get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let flags = be16(2);
    let range = be16(4);
    let mut opts = body.get(6..).unwrap_or_default();
    let mut take = |n: usize| {
        let h = opts.get(..n).unwrap_or_default();
        opts = opts.get(n..).unwrap_or_default();
        h.to_vec()
    };
    let mut s = String::new();
    if flags & 3 != 0 {
        s.push_str(if flags & 1 != 0 { "src" } else { "dst" });
        let ip = |b: Vec<u8>| -> String {
            match b.len() {
                4 => std::net::Ipv4Addr::from([b[0], b[1], b[2], b[3]]).to_string(),
                16 => {
                    let a: [u8; 16] = b.try_into().unwrap_or_default();
                    format!("[{}]", std::net::Ipv6Addr::from(a))
                }
                _ => String::new(),
            }
        };
        let width = if range & 1 != 0 {
            4
        } else if range & 4 != 0 {
            16
        } else {
            0
        };
        if width > 0 {
            s.push('=');
            s.push_str(&ip(take(width)));
            if range & 0xa != 0 {
                s.push('-');
                s.push_str(&ip(take(width)));
            }
        }
        if range & 0x10 != 0 {
            let port = |p: Vec<u8>| p.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            s.push_str(&format!(":{}", port(take(2))));
            if range & 0x20 != 0 {
                s.push_str(&format!("-{}", port(take(2))));
            }
        }
    }
    for (bit, name) in [(4, "persistent"), (8, "hash"), (16, "random")] {
        if flags & bit != 0 {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(name);
        }
    }
    if s.is_empty() {
        "nat".into()
    } else {
        format!("nat({s})")
    }
}

/// `learn(...)` as OVS `learn_format` writes it.
fn learn_text(l: &Learn) -> String {
    let mut s = format!("learn(table={}", l.table_id);
    if l.idle_timeout != 0 {
        s.push_str(&format!(",idle_timeout={}", l.idle_timeout));
    }
    if l.hard_timeout != 0 {
        s.push_str(&format!(",hard_timeout={}", l.hard_timeout));
    }
    if l.fin_idle_timeout != 0 {
        s.push_str(&format!(",fin_idle_timeout={}", l.fin_idle_timeout));
    }
    if l.fin_hard_timeout != 0 {
        s.push_str(&format!(",fin_hard_timeout={}", l.fin_hard_timeout));
    }
    if l.priority != OFP_DEFAULT_PRIORITY {
        s.push_str(&format!(",priority={}", l.priority));
    }
    if l.flags & NX_LEARN_F_SEND_FLOW_REM != 0 {
        s.push_str(",send_flow_rem");
    }
    if l.flags & xennet_openflow::model::NX_LEARN_F_DELETE_LEARNED != 0 {
        s.push_str(",delete_learned");
    }
    if l.cookie != 0 {
        s.push_str(&format!(",cookie={:#x}", l.cookie));
    }
    if l.limit != 0 {
        s.push_str(&format!(",limit={}", l.limit));
    }
    if let Some(d) = &l.result_dst {
        s.push_str(&format!(",result_dst={}", subfield_text(d)));
    }
    for spec in &l.specs {
        s.push(',');
        let whole = |sf: &Subfield| sf.ofs == 0 && u32::from(sf.n_bits) == sf.field.n_bits();
        match (&spec.src, &spec.dst) {
            (LearnSrc::Imm(v), LearnDst::Match(d)) if whole(d) => {
                let name = match d.field {
                    MfField::Oxm(f) => f.ovs_name(),
                    f => f.name(),
                };
                s.push_str(&format!("{name}={}", mf_value_text(d.field, *v)));
            }
            (LearnSrc::Imm(v), LearnDst::Match(d)) => {
                s.push_str(&format!("{}={}", subfield_text(d), ovs_hex(*v)));
            }
            (LearnSrc::Field(src), LearnDst::Match(d)) => {
                s.push_str(&subfield_text(d));
                if src.field != d.field || src.ofs != d.ofs {
                    s.push('=');
                    s.push_str(&subfield_text(src));
                }
            }
            (LearnSrc::Imm(v), LearnDst::Load(d)) => {
                s.push_str(&format!("load:{}->{}", ovs_hex(*v), subfield_text(d)));
            }
            (LearnSrc::Field(src), LearnDst::Load(d)) => {
                s.push_str(&format!(
                    "load:{}->{}",
                    subfield_text(src),
                    subfield_text(d)
                ));
            }
            (LearnSrc::Field(src), LearnDst::Output) => {
                s.push_str(&format!("output:{}", subfield_text(src)));
            }
            (LearnSrc::Imm(_), LearnDst::Output) => {}
        }
    }
    s.push(')');
    s
}

/// An action in `ovs-ofctl` syntax.
pub fn action_text(a: &Action) -> String {
    match a {
        Action::Output { port, max_len } => match *port {
            OFPP_CONTROLLER => format!("CONTROLLER:{max_len}"),
            p if p >= 0xffff_ff00 => port_name(p),
            p => format!("output:{p}"),
        },
        Action::Group(g) => format!("group:{g}"),
        Action::SetQueue(q) => format!("set_queue:{q}"),
        Action::PushVlan(t) => format!("push_vlan:{t:#06x}"),
        Action::PopVlan => "pop_vlan".into(),
        Action::SetVlan10 { field, value, .. } => match field {
            OxmField::VlanVid => format!("mod_vlan_vid:{}", value & 0xfff),
            _ => format!("mod_vlan_pcp:{value}"),
        },
        Action::SetField { field, value } => {
            format!(
                "set_field:{}->{}",
                field_value_text(*field, *value),
                oxm_name(*field)
            )
        }
        Action::DecNwTtl => "dec_ttl".into(),
        Action::PushMpls(e) => format!("push_mpls:{e:#06x}"),
        Action::PopMpls(e) => format!("pop_mpls:{e:#06x}"),
        Action::SetMplsTtl(t) => format!("set_mpls_ttl({t})"),
        Action::DecMplsTtl => "dec_mpls_ttl".into(),
        Action::SetNwTtl(t) => format!("mod_nw_ttl:{t}"),
        Action::Resubmit { in_port, table } => {
            let p = if *in_port == OFPP_IN_PORT {
                String::new()
            } else {
                port_name(*in_port)
            };
            if *table == 0xff {
                format!("resubmit:{p}")
            } else {
                format!("resubmit({p},{table})")
            }
        }
        Action::ResubmitCt { in_port, table } => {
            let p = if *in_port == OFPP_IN_PORT {
                String::new()
            } else {
                port_name(*in_port)
            };
            let t = if *table == 0xff {
                String::new()
            } else {
                table.to_string()
            };
            format!("resubmit({p},{t},ct)")
        }
        Action::Ct(ct) => ct_text(ct),
        Action::Multipath(mp) => format!(
            "multipath({},{},{},{},{},{})",
            hash_fields_name(mp.fields),
            mp.basis,
            ["modulo_n", "hash_threshold", "hrw", "iter_hash"]
                .get(usize::from(mp.algorithm))
                .unwrap_or(&"?"),
            u32::from(mp.max_link) + 1,
            mp.arg,
            subfield_text(&mp.dst)
        ),
        Action::Bundle(b) => {
            let alg = if b.algorithm == 0 {
                "active_backup"
            } else {
                "hrw"
            };
            let members: Vec<String> = b.members.iter().map(u16::to_string).collect();
            let head = format!("{},{},{alg},ofport", hash_fields_name(b.fields), b.basis);
            match &b.dst {
                Some(d) => format!(
                    "bundle_load({head},{},members:{})",
                    subfield_text(d),
                    members.join(",")
                ),
                None => format!("bundle({head},members:{})", members.join(",")),
            }
        }
        Action::Nat(body) => nat_text(body),
        Action::Load { dst, value } => format!("load:{}->{}", ovs_hex(*value), subfield_text(dst)),
        Action::Move { src, dst } => {
            format!("move:{}->{}", subfield_text(src), subfield_text(dst))
        }
        Action::Note(b) => format!("note:{}", hex_dotted(b)),
        Action::Exit => "exit".into(),
        Action::CtClear => "ct_clear".into(),
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => format!("conjunction({id},{}/{n_clauses})", u16::from(*clause) + 1),
        Action::DecTtlIds(ids) => {
            let ids: Vec<String> = ids.iter().map(u16::to_string).collect();
            format!("dec_ttl({})", ids.join(","))
        }
        Action::SetTunnel { id, wide } => {
            if *wide || *id > u64::from(u32::MAX) {
                format!("set_tunnel64:{id:#x}")
            } else {
                format!("set_tunnel:{id:#x}")
            }
        }
        Action::OutputReg { src, max_len } => {
            if *max_len == u16::MAX {
                format!("output:{}", subfield_text(src))
            } else {
                format!("output(port={},max_len={max_len})", subfield_text(src))
            }
        }
        Action::StackPush(sf) => format!("push:{}", subfield_text(sf)),
        Action::StackPop(sf) => format!("pop:{}", subfield_text(sf)),
        Action::Clone(acts) => {
            let inner: Vec<String> = acts.iter().map(action_text).collect();
            format!("clone({})", inner.join(","))
        }
        Action::Controller(c) => {
            let mut parts = Vec::new();
            if c.reason != packet_in_reason::ACTION {
                parts.push(format!("reason={}", reason_name(c.reason)));
            }
            if c.max_len != u16::MAX {
                parts.push(format!("max_len={}", c.max_len));
            }
            if c.controller_id != 0 {
                parts.push(format!("id={}", c.controller_id));
            }
            if !c.userdata.is_empty() {
                parts.push(format!("userdata={}", hex_dotted(&c.userdata)));
            }
            if c.pause {
                parts.push("pause".into());
            }
            if c.meter_id != u32::MAX {
                parts.push(format!("meter_id={}", c.meter_id));
            }
            format!("controller({})", parts.join(","))
        }
        Action::Learn(l) => learn_text(l),
        Action::FinTimeout { idle, hard } => {
            let mut p = Vec::new();
            if *idle != 0 {
                p.push(format!("idle_timeout={idle}"));
            }
            if *hard != 0 {
                p.push(format!("hard_timeout={hard}"));
            }
            format!("fin_timeout({})", p.join(","))
        }
        Action::CheckPktLarger { len, dst } => {
            format!("check_pkt_larger({len})->{}", subfield_text(dst))
        }
        Action::Sample {
            probability,
            collector_set_id,
            obs_domain_id,
            obs_point_id,
        } => format!(
            "sample(probability={probability},collector_set_id={collector_set_id},\
             obs_domain_id={obs_domain_id},obs_point_id={obs_point_id})"
        ),
    }
}

/// Instructions in `ovs-ofctl dump-flows` syntax.
pub fn instructions_text(ins: &Instructions) -> String {
    let mut parts = Vec::new();
    if let Some(m) = ins.meter {
        parts.push(format!("meter:{m}"));
    }
    if let Some(a) = &ins.apply {
        parts.extend(a.iter().map(action_text));
    }
    if ins.clear {
        parts.push("clear_actions".into());
    }
    if let Some(w) = &ins.write {
        let inner: Vec<String> = w.iter().map(action_text).collect();
        parts.push(format!("write_actions({})", inner.join(",")));
    }
    if let Some((v, m)) = ins.write_metadata {
        parts.push(format!("write_metadata:{v:#x}/{m:#x}"));
    }
    if let Some(t) = ins.goto_table {
        parts.push(format!("goto_table:{t}"));
    }
    if parts.is_empty() {
        "drop".into()
    } else {
        parts.join(",")
    }
}

/// A match in `ovs-ofctl` syntax (empty for match-all).
pub fn match_text(m: &Match) -> String {
    m.key.display_masked(&m.mask).to_string()
}

/// The megaflow mask of a translation of `orig` that read `wc`: without
/// the pipeline-only fields, and without the MPLS fields when the input
/// is not MPLS (a `push_mpls` made them; the exact EtherType already
/// says they are zero in every matching packet).
fn megaflow_mask(orig: &FlowKey, wc: &FlowMask) -> FlowMask {
    let mut m = wc.datapath_only();
    if m.is_exact(Field::DlType) && !matches!(orig.dl_type(), 0x8847 | 0x8848) {
        for f in MPLS_FIELDS {
            m.set(f, 0);
        }
    }
    m
}

fn is_table_miss(r: &Rule) -> bool {
    r.priority == 0 && r.matcher.is_catchall()
}

impl Ctx<'_> {
    /// As OVS `xlate_wc_init`: in_port and dl_type are always examined,
    /// for IP the fragment bits, and the recirculation id (each pass has
    /// its own megaflows); so are the tags' TPIDs (OVS datapath keys
    /// carry each tag's EtherType exactly, `odp_flow_key_from_flow__`).
    fn wc_init(&mut self) {
        self.wc
            .set_exact(Field::InPort)
            .set_exact(Field::DlType)
            .set_exact(Field::VlanTpid)
            .set_exact(Field::Vlan2Tpid)
            .set_exact(Field::RecircId);
        if matches!(self.orig.dl_type(), 0x0800 | 0x86dd) {
            self.wc.set_exact(Field::NwFrag);
        }
    }

    fn out(self) -> (XlateOut, Option<String>) {
        let megaflow = if self.trace.is_some() {
            self.flow_key_masked()
        } else {
            String::new()
        };
        let mut actions = self.actions;
        let mut counters = self.counters;
        let mut recircs = self.recircs;
        if self.error.is_some() {
            actions.clear();
            counters.clear();
            recircs.clear();
        }
        if let Some(m) = self.ingress_meter {
            // The policer runs first, for every packet from the port (the
            // megaflow cache makes in_port exact in every mask).
            actions.insert(0, DpAction::Meter(m));
        }
        let mut trace = self.trace;
        if let Some(t) = trace.as_mut() {
            let _ = writeln!(t, "\nFinal flow: {}", self.flow);
            let _ = writeln!(t, "Megaflow: {megaflow}");
            let _ = writeln!(t, "Datapath actions: {}", ActionsFmt(&actions));
        }
        (
            XlateOut {
                upcall: Upcall {
                    mask: megaflow_mask(&self.orig, &self.wc),
                    actions,
                    counters,
                    tags: self.tags,
                },
                error: self.error,
                final_flow: self.flow,
                last_hit: self.last_hit,
                recircs,
                learned: if self.error.is_some() {
                    Vec::new()
                } else {
                    self.learned
                },
                fin_timeouts: self.fin_timeouts,
            },
            trace,
        )
    }

    fn flow_key_masked(&self) -> String {
        let s = self.base_key_display();
        if s.is_empty() {
            "(all wildcarded)".into()
        } else {
            s
        }
    }

    fn base_key_display(&self) -> String {
        // The megaflow is over the *input* key: `base` changes as commits
        // happen, so rebuild it from the original bits under the mask.
        self.orig
            .display_masked(&megaflow_mask(&self.orig, &self.wc))
            .to_string()
    }
}

impl Ctx<'_> {
    fn note(&mut self, line: impl std::fmt::Display) {
        if let Some(t) = self.trace.as_mut() {
            let _ = writeln!(t, "{:width$}{line}", "", width = self.indent);
        }
    }

    /// Before a nested lookup, clone or group: check the limits, then
    /// count it (`deepens`: towards [`MAX_DEPTH`]). [`Self::leave`] undoes.
    fn enter(&mut self, deepens: bool) -> bool {
        self.enter_with(deepens, true)
    }

    /// [`Self::enter`]; `needs_l3`: what comes reads the headers a
    /// `pop_mpls` left unparsed (a table lookup, a select group's hash;
    /// not the other groups, OVS `pick_select_group`).
    fn enter_with(&mut self, deepens: bool, needs_l3: bool) -> bool {
        if self.exit || self.error.is_some() {
            return false;
        }
        if self.l3_unknown && needs_l3 {
            if self.recirc.is_none() {
                self.error = Some(XlateError::NeedsRecirculation);
                warn_rate_limited("a table lookup after pop_mpls needs recirculation");
                self.note(">>>> A lookup after pop_mpls needs recirculation; dropping <<<<");
                return false;
            }
            // OVS `ctx_trigger_freeze` (`was_mpls`): recirculate so that
            // the datapath parses the headers under the popped label,
            // and go on from this action after the thaw.
            self.note("freezing: the lookup needs the headers under the popped label");
            self.freezing = true;
            self.exit = true;
            return false;
        }
        if self.depth >= MAX_DEPTH {
            self.error = Some(XlateError::TooDeep);
            warn_rate_limited("over 64 nested lookups");
            self.note(">>>> Too many nested lookups (depth 64); dropping <<<<");
            return false;
        }
        if self.nest >= MAX_NEST {
            self.error = Some(XlateError::TooDeep);
            warn_rate_limited("over 400 nested lookups, clones and groups");
            self.note(">>>> Too many nested lookups, clones and groups (400); dropping <<<<");
            return false;
        }
        if self.resubmits >= MAX_RESUBMITS {
            self.error = Some(XlateError::TooManyResubmits);
            warn_rate_limited("over 4096 lookups");
            self.note(">>>> Too many resubmits (4096); dropping <<<<");
            return false;
        }
        self.depth += u32::from(deepens);
        self.nest += 1;
        self.resubmits += 1;
        true
    }

    fn leave(&mut self, deepens: bool) {
        self.depth -= u32::from(deepens);
        self.nest -= 1;
    }

    /// Look up `table` and run the matched rule's instructions. A miss
    /// in the pipeline proper (table 0, goto) drops the packet: the action
    /// set is discarded (1.3.5 §5.4); a miss in a resubmit just returns.
    ///
    /// `deepens`: the lookup counts towards [`MAX_DEPTH`] (OVS: a resubmit
    /// to the same or an earlier table).
    fn run_table(&mut self, table: u8, resubmit: bool, deepens: bool) {
        if usize::from(table) >= N_TABLES || !self.enter(deepens) {
            return;
        }
        let tables = self.tables;
        let Some(t) = tables.table(table) else {
            self.leave(deepens);
            return;
        };
        // Conjunctive matches (`conjunction` actions, `conj_id`) as OVS;
        // a trace lists the clause flows that made one match.
        let mut conj_flows = Vec::new();
        // `resubmit(,,ct)`: this lookup sees the connection's original
        // tuple in place of the packet's (OVS `tuple_swap`, flow and
        // wildcards both, so the bits read land on the ct fields).
        let swap = std::mem::take(&mut self.ct_orig_lookup);
        if swap {
            tuple_swap(&mut self.flow, &mut self.wc);
        }
        let r = t.cls.lookup_conj(
            &self.flow,
            &mut self.wc,
            &|r: &Arc<Rule>| r.instructions.apply.as_deref().unwrap_or(&[]),
            self.trace.is_some().then_some(&mut conj_flows),
        );
        if swap {
            tuple_swap(&mut self.flow, &mut self.wc);
        }
        if self.count_stats {
            t.lookups.fetch_add(1, Ordering::Relaxed);
            if r.is_some() {
                t.matches.fetch_add(1, Ordering::Relaxed);
            }
        }
        let saved_table = self.table_id;
        let saved_rule = self.rule.take();
        self.table_id = table;
        match r {
            None => {
                self.last_hit = Some(Hit::Miss(table));
                self.note(format_args!("{table:>2}. No match."));
                self.indent += 4;
                self.note("drop");
                self.indent -= 4;
                if !resubmit {
                    self.action_set = ActionSet::default();
                }
            }
            Some(r) => {
                let rule = r.value.clone();
                if self.trace.is_some() {
                    let m = rule.matcher.to_string();
                    if m.is_empty() {
                        self.note(format_args!("{table:>2}. priority {}", rule.priority));
                    } else {
                        self.note(format_args!("{table:>2}. {m}, priority {}", rule.priority));
                    }
                    if rule.cookie != 0 {
                        self.indent += 4;
                        self.note(format_args!("cookie={:#x}", rule.cookie));
                        self.indent -= 4;
                    }
                    // OVS `xlate_report_conj_matches`: "conj. " and the
                    // clause flow as `cls_rule_format` prints it.
                    self.indent += 4;
                    for c in &conj_flows {
                        let m = c.matcher.to_string();
                        let p = c.priority;
                        match (p == OFP_DEFAULT_PRIORITY, m.is_empty()) {
                            (true, _) => self.note(format_args!("conj. {m}")),
                            (false, true) => self.note(format_args!("conj. priority={p}")),
                            (false, false) => self.note(format_args!("conj. priority={p},{m}")),
                        }
                    }
                    self.indent -= 4;
                }
                self.counters.push(rule.counters.clone());
                self.last_hit = Some(Hit::Rule(rule.clone()));
                self.rule = Some(rule.clone());
                self.indent += 4;
                self.run_instructions(&rule.instructions, table);
                self.indent -= 4;
            }
        }
        self.table_id = saved_table;
        self.rule = saved_rule;
        self.leave(deepens);
    }

    fn run_instructions(&mut self, ins: &Instructions, table: u8) {
        if let Some(m) = ins.meter {
            self.note(format_args!("meter:{m}"));
            self.actions.push(DpAction::Meter(m));
        }
        if let Some(a) = &ins.apply {
            if self.do_actions_then(a, Some((ins, table))) {
                // A check_pkt_larger ran the rest in its branches.
                return;
            }
        }
        self.run_after_apply_or_freeze(ins, table);
    }

    /// The instructions after apply-actions: run them, or, while a freeze
    /// unwinds, add them to the frozen rest (they run after the thaw, in
    /// their order; OVS's ofpacts hold them as actions).
    fn run_after_apply_or_freeze(&mut self, ins: &Instructions, table: u8) {
        if !self.freezing || self.error.is_some() {
            self.run_after_apply(ins, table);
            return;
        }
        if ins.clear {
            self.frozen.push(FrozenOp::ClearActions);
        }
        if let Some(w) = &ins.write {
            self.frozen.push(FrozenOp::WriteActions(w.clone()));
        }
        if let Some((v, m)) = ins.write_metadata {
            self.frozen.push(FrozenOp::WriteMetadata(v, m));
        }
        if let Some(t) = ins.goto_table.filter(|t| *t > table) {
            self.frozen.push(FrozenOp::GotoTable(t));
        }
    }

    /// The instructions after apply-actions: clear, write, metadata,
    /// goto.
    fn run_after_apply(&mut self, ins: &Instructions, table: u8) {
        if self.exit || self.error.is_some() {
            return;
        }
        if ins.clear {
            self.note("clear_actions");
            self.action_set = ActionSet::default();
        }
        if let Some(w) = &ins.write {
            if self.trace.is_some() {
                let inner: Vec<String> = w.iter().map(action_text).collect();
                self.note(format_args!("write_actions({})", inner.join(",")));
            }
            for a in w {
                self.action_set.write(a);
            }
        }
        if let Some((v, m)) = ins.write_metadata {
            self.note(format_args!("write_metadata:{v:#x}/{m:#x}"));
            let md = self.flow.get(Field::Metadata) as u64;
            self.flow
                .set(Field::Metadata, u128::from((md & !m) | (v & m)));
        }
        if let Some(t) = ins.goto_table {
            if t > table {
                self.note(format_args!("goto_table:{t}"));
                self.run_table(t, false, false);
                if self.freezing && self.error.is_none() && self.frozen.is_empty() {
                    self.frozen.push(self.unroll());
                    self.frozen.push(FrozenOp::GotoTable(t));
                }
            }
        }
    }

    /// End of pipeline: run the action set.
    fn finish(&mut self) {
        if self.exit || self.error.is_some() {
            return;
        }
        let list = std::mem::take(&mut self.action_set).to_list();
        if !list.is_empty() {
            self.note("");
            self.note("Action set:");
            self.indent += 4;
            self.do_actions(&list);
            self.indent -= 4;
        }
    }

    fn do_actions(&mut self, actions: &[Action]) {
        self.do_actions_then(actions, None);
    }

    /// Run `actions`; `then` is the rule's instructions when `actions` is
    /// its apply-actions (a `check_pkt_larger` translates what follows it
    /// there too, as OVS's ofpacts hold the whole rule). Returns whether
    /// a `check_pkt_larger` took over the rest.
    fn do_actions_then(&mut self, actions: &[Action], then: Option<(&Instructions, u8)>) -> bool {
        for (i, a) in actions.iter().enumerate() {
            if self.exit || self.error.is_some() {
                return false;
            }
            if self.actions.len() > MAX_DP_ACTIONS {
                self.error = Some(XlateError::TooManyActions);
                warn_rate_limited("over 4096 datapath actions");
                self.note(">>>> Too many datapath actions; dropping <<<<");
                return false;
            }
            if self.l3_unknown && recirc_for_mpls(a) {
                // OVS `recirc_for_mpls`: after `pop_mpls` only outputs and
                // L2 rewrites go on without the headers under the label;
                // anything else runs after a recirculation parsed them.
                if self.recirc.is_none() {
                    self.error = Some(XlateError::NeedsRecirculation);
                    warn_rate_limited("an action after pop_mpls needs recirculation");
                    self.note(">>>> An action after pop_mpls needs recirculation; dropping <<<<");
                    return false;
                }
                self.note("freezing: the next action needs the headers under the popped label");
                self.freezing = true;
                self.exit = true;
                if self.frozen.is_empty() {
                    self.frozen.push(self.unroll());
                }
                self.freeze_actions(&actions[i..]);
                return false;
            }
            if self.trace.is_some() {
                self.note(action_text(a));
            }
            if let Action::CheckPktLarger { len, dst } = a {
                // The rest of the list is translated in both branches.
                self.check_pkt_larger(*len, dst, &actions[i + 1..], then);
                return true;
            }
            self.do_action(a);
            if self.freezing && self.error.is_none() {
                // OVS `freeze_unroll_actions`: this action again if it
                // is the one that froze (not a pausing `controller`,
                // which is done), then the rest of this list.
                if self.frozen.is_empty() {
                    self.frozen.push(self.unroll());
                    if self.pause.is_none() {
                        self.frozen.push(FrozenOp::Act(a.clone()));
                    }
                }
                self.freeze_actions(&actions[i + 1..]);
                return false;
            }
        }
        false
    }

    /// The `Unroll` step for the current table and rule.
    fn unroll(&self) -> FrozenOp {
        FrozenOp::Unroll {
            table_id: self.table_id,
            cookie: match &self.rule {
                Some(r) => r.cookie,
                None => self.unroll_cookie.unwrap_or(u64::MAX),
            },
        }
    }

    /// Add `rest` (the actions after the one that froze, at this level)
    /// to the frozen pipeline.
    fn freeze_actions(&mut self, rest: &[Action]) {
        let rest: Vec<&Action> = rest
            .iter()
            .filter(|a| !matches!(a, Action::Note(_) | Action::Conjunction { .. }))
            .collect();
        if !rest.is_empty() {
            self.frozen.push(self.unroll());
            self.frozen
                .extend(rest.into_iter().map(|a| FrozenOp::Act(a.clone())));
        }
    }

    /// The end of a frozen translation (OVS `finish_freezing`): commit,
    /// freeze the rest of the pipeline under a recirculation id, and end
    /// the actions with `recirc(id)`.
    fn finish_freezing(&mut self) {
        if !self.freezing || self.error.is_some() {
            return;
        }
        self.freezing = false;
        self.commit();
        if let Some(c) = self.pause.take() {
            self.finish_pause(&c);
            return;
        }
        let f = &self.flow;
        let mut xregs = [0u64; 8];
        for (k, x) in (0u8..).zip(xregs.iter_mut()) {
            *x = f.get(Field::Xreg(k)) as u64;
        }
        let state = FrozenState {
            table_id: self.table_id,
            in_port: f.in_port(),
            xregs,
            metadata: f.get(Field::Metadata) as u64,
            stack: self.stack.clone(),
            action_set: self.action_set.actions.clone(),
            conntracked: self.conntracked,
            ops: std::mem::take(&mut self.frozen),
        };
        let Some(id) = self.recirc.and_then(|t| t.alloc(state, Instant::now())) else {
            self.error = Some(XlateError::NoRecircContext);
            warn_rate_limited("no recirculation id could be allocated");
            self.note(">>>> No recirculation id could be allocated; dropping <<<<");
            return;
        };
        self.actions.push(DpAction::Recirc(id));
        self.recircs.push(RecircNode {
            id,
            zone: 0,
            ct: false,
            key: self.base,
        });
    }

    /// Run a thawed pipeline's rest (OVS runs `frozen_actions`).
    fn run_frozen(&mut self, ops: &[FrozenOp]) {
        for (i, op) in ops.iter().enumerate() {
            if self.exit || self.error.is_some() {
                return;
            }
            match op {
                FrozenOp::Unroll { table_id, cookie } => {
                    self.table_id = *table_id;
                    self.unroll_cookie = Some(*cookie);
                }
                FrozenOp::Act(cpl @ Action::CheckPktLarger { len, dst }) => {
                    // Its branches take the rest, which must be actions
                    // only (OVS's frozen actions are one list).
                    let mut rest = Vec::new();
                    for op in &ops[i + 1..] {
                        match op {
                            FrozenOp::Act(a) => rest.push(a.clone()),
                            FrozenOp::Unroll { .. } => {}
                            _ => {
                                self.error = Some(XlateError::NeedsRecirculation);
                                self.note(">>>> check_pkt_larger before frozen instructions is not supported; dropping <<<<");
                                return;
                            }
                        }
                    }
                    if self.trace.is_some() {
                        self.note(action_text(cpl));
                    }
                    self.check_pkt_larger(*len, dst, &rest, None);
                    return;
                }
                FrozenOp::Act(a) => {
                    if self.trace.is_some() {
                        self.note(action_text(a));
                    }
                    self.do_action(a);
                }
                FrozenOp::ClearActions => self.action_set = ActionSet::default(),
                FrozenOp::WriteActions(w) => {
                    for a in w {
                        self.action_set.write(a);
                    }
                }
                FrozenOp::WriteMetadata(v, m) => {
                    let md = self.flow.get(Field::Metadata) as u64;
                    self.flow
                        .set(Field::Metadata, u128::from((md & !m) | (v & m)));
                }
                FrozenOp::GotoTable(t) => {
                    if *t > self.table_id {
                        self.note(format_args!("goto_table:{t}"));
                        self.run_table(*t, false, false);
                    }
                }
            }
            if self.freezing && self.error.is_none() {
                if self.frozen.is_empty() {
                    self.frozen.push(self.unroll());
                    if self.pause.is_none() {
                        self.frozen.push(op.clone());
                    }
                }
                if i + 1 < ops.len() {
                    self.frozen.push(self.unroll());
                    self.frozen.extend(ops[i + 1..].iter().cloned());
                }
                return;
            }
        }
    }

    fn do_action(&mut self, a: &Action) {
        match a {
            Action::Output { port, max_len } => self.output(*port, *max_len),
            Action::Group(g) => self.group(*g),
            Action::SetQueue(_) => {}
            Action::PushVlan(tpid) => {
                // OVS `flow_push_vlan_uninit`: the tags move one down (a
                // second tag falls off the key's two), the new outer tag
                // has the action's TPID (0x8100 or 0x88a8, the flow-mod
                // checked) and VID 0, PCP 0 (OVS copies nothing from the
                // tag below, unlike 1.3.5 §5.12); the tags moved are read.
                self.wc_or(Field::VlanTci, u128::from(VLAN_CFI));
                self.vlan_touched = true;
                let outer = self.flow.vlan_tci();
                self.flow.set(Field::Vlan2Tci, u128::from(outer));
                self.flow.set_vlan_tci(VLAN_CFI);
                self.tpid = [*tpid, self.tpid[0]];
            }
            Action::PopVlan => {
                // OVS `flow_pop_vlan`: the inner tag, if any, moves up.
                self.wc_or(Field::VlanTci, u128::from(VLAN_CFI));
                self.vlan_touched = true;
                if self.flow.has_vlan() {
                    // The inner tag becomes the outer one: what later
                    // reads of the outer tag see (a select group's hash,
                    // a match) comes from the inner slot of the key.
                    self.wc.set_exact(Field::Vlan2Tci);
                    let inner = self.flow.get(Field::Vlan2Tci) as u16;
                    if inner & VLAN_CFI != 0 {
                        self.flow.set_vlan_tci(inner);
                        self.tpid = [self.tpid[1], 0];
                    } else {
                        self.flow.set_vlan_tci(0);
                        self.tpid = [0, 0];
                    }
                    self.flow.set(Field::Vlan2Tci, 0);
                }
            }
            Action::SetField { field, value } => self.set_field(*field, *value),
            Action::SetVlan10 { field, value, .. } => self.set_vlan10(*field, *value),
            Action::DecNwTtl => self.dec_ttl(&[0]),
            Action::PushMpls(eth) => self.push_mpls(*eth),
            Action::PopMpls(eth) => self.pop_mpls(*eth),
            Action::SetMplsTtl(t) => {
                if self.is_mpls() {
                    self.flow.set(Field::MplsTtl, u128::from(*t));
                }
            }
            Action::DecMplsTtl => {
                if self.is_mpls() {
                    self.wc.set_exact(Field::MplsTtl);
                    let ttl = self.flow.get(Field::MplsTtl) as u8;
                    if ttl <= 1 {
                        self.controller(
                            packet_in_reason::INVALID_TTL,
                            OFPCML_NO_BUFFER,
                            0,
                            &[],
                            None,
                        );
                        self.exit = true;
                    } else {
                        self.flow.set(Field::MplsTtl, u128::from(ttl - 1));
                    }
                }
            }
            Action::SetNwTtl(t) => {
                self.wc.set_exact(Field::DlType);
                if matches!(self.flow.dl_type(), 0x0800 | 0x86dd) {
                    self.wc.set_exact(Field::NwTtl);
                    self.flow.set_nw_ttl(*t);
                }
            }
            Action::Resubmit { in_port, table } => {
                let t = if *table == 0xff {
                    self.table_id
                } else {
                    *table
                };
                let saved = self.flow.in_port();
                if *in_port != OFPP_IN_PORT {
                    self.flow.set_in_port(*in_port);
                }
                self.indent += 4;
                self.run_table(t, true, t <= self.table_id);
                self.indent -= 4;
                self.flow.set_in_port(saved);
            }
            Action::ResubmitCt { in_port, table } => {
                // OVS `xlate_table_action` with ct: without a tracked
                // connection (ct_nw_proto 0) or on a non-IP packet it
                // reports an error and does no lookup; else the lookup
                // matches the connection's original tuple.
                self.wc.set_exact(Field::CtNwProto);
                let tracked = self.flow.get(Field::CtNwProto) != 0
                    && matches!(self.flow.dl_type(), 0x0800 | 0x86dd);
                if !tracked {
                    RESUBMIT_CT_UNTRACKED.fetch_add(1, Ordering::Relaxed);
                    static LAST: AtomicU64 = AtomicU64::new(0);
                    if once_a_second(&LAST) {
                        tracing::warn!(
                            total = RESUBMIT_CT_UNTRACKED.load(Ordering::Relaxed),
                            "resubmit(ct) with non-tracked or non-IP packet: lookup skipped"
                        );
                    }
                    self.note(">>>> resubmit(ct) with non-tracked or non-IP packet! <<<<");
                } else {
                    self.ct_orig_lookup = true;
                    self.do_action(&Action::Resubmit {
                        in_port: *in_port,
                        table: *table,
                    });
                    self.ct_orig_lookup = false;
                }
            }
            Action::Ct(ct) => self.conntrack(ct),
            // Only inside ct, which reads it there.
            Action::Nat(_) => {}
            Action::Multipath(mp) => {
                let h = self.hash_fields(mp.fields, mp.basis);
                let link = multipath_link(h, mp.algorithm, u32::from(mp.max_link) + 1, mp.arg);
                self.note(format_args!("multipath: link {link}"));
                self.write_subfield(&mp.dst, u128::from(link));
            }
            Action::Bundle(b) => {
                let chosen = self.bundle_member(b);
                match &b.dst {
                    Some(d) => self.write_subfield(d, u128::from(chosen)),
                    None if chosen == 0xffff => self.note("bundle: no live member, dropping"),
                    None => {
                        let p = xennet_openflow::v10::port_from_ofp10(chosen);
                        self.output(p, 0);
                    }
                }
            }
            Action::Load { dst, value } => self.write_subfield(dst, *value),
            Action::Move { src, dst } => {
                let v = self.read_subfield(src);
                self.write_subfield(dst, v);
            }
            Action::Note(_) => {}
            Action::Conjunction { .. } => {
                // Only a packet-out can get here; the classifier never
                // returns a conjunctive flow. OVS reports it and does
                // nothing (`do_xlate_actions`).
                self.note("executing \"conjunction\" action (does nothing)");
            }
            Action::Exit => self.exit = true,
            Action::CtClear => {
                // OVS 3.1 `do_xlate_actions`: only a packet tracked in this
                // bridge has state to clear.
                if self.conntracked {
                    for f in Field::CT {
                        self.flow.set(f, 0);
                    }
                    self.actions.push(DpAction::CtClear);
                }
            }
            Action::DecTtlIds(ids) => self.dec_ttl(ids),
            Action::SetTunnel { id, .. } => self.flow.set(Field::TunId, u128::from(*id)),
            Action::OutputReg { src, max_len } => {
                let (kf, shift, _) = mf_layout(src.field);
                let v = (self.flow.get(kf) >> (shift + u32::from(src.ofs)))
                    & wire_ones(u32::from(src.n_bits));
                if let Ok(p) = u16::try_from(v) {
                    self.read_subfield(src);
                    self.note(format_args!("output port is {p}"));
                    let port = xennet_openflow::v10::port_from_ofp10(p);
                    self.output(port, *max_len);
                } else {
                    self.note(format_args!("output port {v} is out of range"));
                }
            }
            Action::StackPush(sf) => {
                let v = self.read_subfield(sf);
                let bytes = usize::from(sf.n_bits).div_ceil(8) + 1;
                if self.stack_bytes + bytes > MAX_STACK_BYTES {
                    self.error = Some(XlateError::StackTooDeep);
                    warn_rate_limited("push/pop stack over 64 kB");
                    self.note(">>>> Stack over 64 kB; dropping <<<<");
                    return;
                }
                self.stack_bytes += bytes;
                self.stack.push(v);
            }
            Action::StackPop(sf) => match self.stack.pop() {
                Some(v) => {
                    let bytes = usize::from(sf.n_bits).div_ceil(8) + 1;
                    self.stack_bytes = self.stack_bytes.saturating_sub(bytes);
                    self.write_subfield(sf, v & wire_ones(u32::from(sf.n_bits)));
                }
                None => {
                    STACK_UNDERFLOW.fetch_add(1, Ordering::Relaxed);
                    warn_rate_limited("pop on an empty stack");
                    self.note(">>>> stack underflow <<<<");
                }
            },
            Action::Clone(acts) => self.clone_actions(acts),
            Action::Controller(c) if c.pause => self.pause(c),
            Action::Controller(c) => {
                self.controller(c.reason, c.max_len, c.controller_id, &c.userdata, None);
            }
            Action::Learn(l) => self.learn(l),
            Action::FinTimeout { idle, hard } => {
                // OVS `xlate_fin_timeout`: a FIN or RST lowers the rule's
                // timeouts. The flags are read (FIN and RST only), so a
                // FIN gets a megaflow of its own and is translated.
                self.wc.set_exact(Field::DlType);
                self.wc.set_exact(Field::NwProto);
                let tcp =
                    matches!(self.flow.dl_type(), 0x0800 | 0x86dd) && self.flow.nw_proto() == 6;
                if tcp {
                    self.wc_or(Field::TcpFlags, 0x005);
                    if self.flow.tcp_flags() & 0x005 != 0 {
                        if let Some(r) = &self.rule {
                            if self.fin_timeouts.len() < MAX_LEARNS_PER_XLATE {
                                self.fin_timeouts.push(FinTimeout {
                                    table: r.table_id,
                                    matcher: r.matcher.clone(),
                                    priority: r.priority,
                                    idle: *idle,
                                    hard: *hard,
                                });
                            }
                        }
                    }
                }
            }
            Action::CheckPktLarger { len, dst } => self.check_pkt_larger(*len, dst, &[], None),
            Action::Sample { .. } => {
                SAMPLE_NOOP.fetch_add(1, Ordering::Relaxed);
                self.note("(no IPFIX collector: sample does nothing)");
            }
        }
    }

    /// `ct(...)` (OVS `compose_conntrack_action`): the zone (read from its
    /// field now, un-wildcarding it), pending changes committed, the
    /// nested `nat` and `ct_mark`/`ct_label` writes gathered into the
    /// datapath `ct`; with `table=N` the pipeline forks: a clone
    /// recirculates and resumes in table N with the tracker's verdict,
    /// while the rest of this action list goes on with the packet
    /// untracked (OVS `compose_recirculate_and_fork`).
    fn conntrack(&mut self, ct: &xennet_openflow::model::Ct) {
        use xennet_openflow::model::CtZone;
        let zone = match ct.zone {
            CtZone::Imm(z) => z,
            CtZone::Field(sf) => self.read_subfield(&sf) as u16,
        };
        self.commit();
        // `alg=ftp`/`alg=tftp`: the tracker's helper (other values are
        // refused at flow-mod time, `check_ct`).
        let mut args = CtArgs {
            zone,
            commit: ct.flags & 1 != 0,
            force: ct.flags & 2 != 0,
            helper: xennet_datapath::conntrack::alg::Helper::from_alg(ct.alg),
            ..CtArgs::default()
        };
        let merge32 = |cur: Option<(u32, u32)>, v: u32, m: u32| {
            let (cv, cm) = cur.unwrap_or((0, 0));
            Some(((cv & !m) | (v & m), cm | m))
        };
        let merge128 = |cur: Option<(u128, u128)>, v: u128, m: u128| {
            let (cv, cm) = cur.unwrap_or((0, 0));
            Some(((cv & !m) | (v & m), cm | m))
        };
        for a in &ct.actions {
            match a {
                Action::Nat(body) => args.nat = Some(nat_args(body)),
                Action::SetField {
                    field: OxmField::CtMark,
                    value,
                } => args.mark = merge32(args.mark, *value as u32, u32::MAX),
                Action::SetField {
                    field: OxmField::CtLabel,
                    value,
                } => args.label = merge128(args.label, *value, u128::MAX),
                Action::Load { dst, value } => {
                    let m = wire_ones(u32::from(dst.n_bits))
                        .checked_shl(u32::from(dst.ofs))
                        .unwrap_or(0);
                    let v = value.checked_shl(u32::from(dst.ofs)).unwrap_or(0) & m;
                    match dst.field {
                        MfField::Oxm(OxmField::CtMark) => {
                            args.mark = merge32(args.mark, v as u32, m as u32);
                        }
                        MfField::Oxm(OxmField::CtLabel) => {
                            args.label = merge128(args.label, v, m);
                        }
                        _ => {}
                    }
                }
                // The codec lets nothing else in.
                _ => {}
            }
        }
        let Some(action) = CtAction::new(&args) else {
            self.ct_failed(XlateError::CtArgsFull, "the table of ct arguments is full");
            return;
        };
        self.actions.push(DpAction::Ct(action));
        if ct.recirc_table != 0xff {
            self.conntracked = true;
            self.recirculate(ct.recirc_table, zone);
            if self.error.is_some() {
                return;
            }
        }
        // The ct_* fields are only valid in the recirculated pipeline.
        for f in Field::CT {
            self.flow.set(f, 0);
        }
        self.conntracked = false;
    }

    /// Freeze the pipeline to resume in `table` after recirculation and
    /// emit `recirc(id)` (OVS `finish_freezing__`).
    fn recirculate(&mut self, table: u8, zone: u16) {
        let f = &self.flow;
        let mut xregs = [0u64; 8];
        for (k, x) in (0u8..).zip(xregs.iter_mut()) {
            *x = f.get(Field::Xreg(k)) as u64;
        }
        let state = FrozenState {
            table_id: table,
            in_port: f.in_port(),
            xregs,
            metadata: f.get(Field::Metadata) as u64,
            stack: self.stack.clone(),
            action_set: self.action_set.actions.clone(),
            conntracked: self.conntracked,
            ops: Vec::new(),
        };
        let Some(id) = self.recirc.and_then(|t| t.alloc(state, Instant::now())) else {
            self.ct_failed(
                XlateError::NoRecircContext,
                "no recirculation id could be allocated",
            );
            return;
        };
        self.actions.push(DpAction::Recirc(id));
        self.recircs.push(RecircNode {
            id,
            zone,
            ct: true,
            key: self.base,
        });
        self.note(format_args!(
            "-> A clone of the packet is forked to recirculate. The forked pipeline will be resumed at table {table}."
        ));
    }

    /// A `ct` that cannot be translated: drop, count, log the flow.
    fn ct_failed(&mut self, e: XlateError, why: &str) {
        CT_FAILED.fetch_add(1, Ordering::Relaxed);
        let (table, priority, cookie) = match &self.rule {
            Some(r) => (r.table_id, r.priority, r.cookie),
            None => (self.table_id, 0, 0),
        };
        ct_warn_rate_limited(table, priority, cookie, why);
        self.note(format_args!(">>>> ct: {why}; dropping <<<<"));
        self.error = Some(e);
    }

    /// A hash of the fields `NX_HASH_FIELDS_*` names (OVS
    /// `flow_hash_fields`, with xennet's own hash function), un-wildcarding
    /// the fields it reads as OVS `flow_mask_hash_fields`. The symmetric
    /// kinds hash both directions of a conversation alike.
    fn hash_fields(&mut self, fields: u16, basis: u16) -> u32 {
        let f = self.flow;
        let dl = f.dl_type();
        let ip = matches!(dl, 0x0800 | 0x86dd);
        let sym = |a: u128, b: u128| (a.min(b), a.max(b));
        let mut h = mix(u64::from(basis) ^ 0x5bd1_e995);
        let mut add = |v: u128| h = mix(h ^ (v as u64) ^ mix((v >> 64) as u64));
        let mut read: Vec<Field> = Vec::new();
        match fields {
            0 => {
                read.push(Field::DlSrc);
                add(f.get(Field::DlSrc));
            }
            1 => {
                read.extend([Field::DlSrc, Field::DlDst, Field::VlanTci]);
                let (a, b) = sym(f.get(Field::DlSrc), f.get(Field::DlDst));
                add(a);
                add(b);
                add(u128::from(f.vlan_vid()));
                add(u128::from(dl));
                if ip {
                    read.extend([Field::NwSrc, Field::NwDst, Field::NwProto]);
                    let (a, b) = sym(f.get(Field::NwSrc), f.get(Field::NwDst));
                    add(a);
                    add(b);
                    add(u128::from(f.nw_proto()));
                    if f.nw_proto() != 17 {
                        read.extend([Field::TpSrc, Field::TpDst]);
                        let (a, b) = sym(f.get(Field::TpSrc), f.get(Field::TpDst));
                        add(a);
                        add(b);
                    }
                }
            }
            2 | 3 | 6 if ip => {
                read.extend([Field::NwSrc, Field::NwDst]);
                let (a, b) = sym(f.get(Field::NwSrc), f.get(Field::NwDst));
                add(a);
                add(b);
                if fields != 6 {
                    read.push(Field::NwProto);
                    add(u128::from(f.nw_proto()));
                    read.push(Field::NwFrag);
                    let l4 = match f.nw_proto() {
                        6 | 132 => true,
                        17 => fields == 3,
                        _ => false,
                    };
                    if l4 && f.get(Field::NwFrag) == 0 {
                        read.extend([Field::TpSrc, Field::TpDst]);
                        let (a, b) = sym(f.get(Field::TpSrc), f.get(Field::TpDst));
                        add(a);
                        add(b);
                    }
                }
            }
            4 | 5 if ip => {
                let fl = if fields == 4 {
                    Field::NwSrc
                } else {
                    Field::NwDst
                };
                read.push(fl);
                add(f.get(fl));
            }
            _ => {}
        }
        self.wc.set_exact(Field::DlType);
        for fl in read {
            self.wc.set_exact(fl);
        }
        (h ^ (h >> 32)) as u32
    }

    /// The member `bundle` picks (OVS `bundle_execute`): active-backup,
    /// the first live one; hrw, the live one with the highest hash of
    /// (member index, flow hash). `0xffff` (`OFPP_NONE`) when none is live.
    fn bundle_member(&mut self, b: &xennet_openflow::model::Bundle) -> u16 {
        let live = |ctx: &Self, m: u16| {
            let p = xennet_openflow::v10::port_from_ofp10(m);
            (ctx.live)(p) && ctx.may_forward(p)
        };
        if b.algorithm == 0 {
            return b
                .members
                .iter()
                .copied()
                .find(|&m| live(self, m))
                .unwrap_or(0xffff);
        }
        let h = if b.members.len() > 1 {
            self.hash_fields(b.fields, b.basis)
        } else {
            0
        };
        let mut best: Option<(u64, u16)> = None;
        for (i, &m) in b.members.iter().enumerate() {
            if live(self, m) {
                let score = mix((i as u64) << 32 | u64::from(h));
                if best.map_or(true, |(s, _)| score > s) {
                    best = Some((score, m));
                }
            }
        }
        best.map_or(0xffff, |(_, m)| m)
    }

    /// `clone(actions)` (OVS 3.1.0 `clone_xlate_actions`): the actions,
    /// then the action set, run on a copy of the pipeline state (flow, a
    /// copy of the action set and of the stack, so the clone also runs
    /// what was written to the action set before it); the packet's own
    /// changes made inside are undone by the next commit, as OVS does for
    /// reversible actions. A freeze inside (`controller(pause)`, a
    /// recirculation after `pop_mpls`) ends at the clone's end (OVS
    /// `finish_freezing`): its frozen rest is the clone's, with the
    /// clone's stack and action set. As in OVS, `exit` and a freeze inside
    /// are not undone: the translation ends after the clone (OVS resets
    /// `ctx->exit` after a group bucket or a `check_pkt_larger` branch,
    /// not after a clone).
    fn clone_actions(&mut self, acts: &[Action]) {
        if !self.enter(false) {
            return;
        }
        let saved_flow = self.flow;
        let saved_tpid = self.tpid;
        let saved_set = self.action_set.clone();
        let saved_stack = self.stack.clone();
        let saved_stack_bytes = self.stack_bytes;
        self.indent += 4;
        self.do_actions(acts);
        if !self.freezing {
            self.finish();
        }
        self.finish_freezing();
        self.indent -= 4;
        self.flow = saved_flow;
        self.tpid = saved_tpid;
        self.action_set = saved_set;
        self.stack = saved_stack;
        self.stack_bytes = saved_stack_bytes;
        self.leave(false);
    }

    /// `learn` (OVS `xlate_learn_action`, `learn_execute`): un-wildcard
    /// the source bits (`learn_mask`), build the flow-mod from the
    /// working flow and queue it ([`XlateOut::learned`]); with
    /// `result_dst`, write whether it will be installed.
    fn learn(&mut self, l: &Learn) {
        let mut matcher = Match::CATCHALL;
        let mut actions = Vec::new();
        if l.fin_idle_timeout != 0 || l.fin_hard_timeout != 0 {
            // OVS `learn_execute`: the learned flow's first action.
            actions.push(Action::FinTimeout {
                idle: l.fin_idle_timeout,
                hard: l.fin_hard_timeout,
            });
        }
        for spec in &l.specs {
            let v = match &spec.src {
                LearnSrc::Field(sf) => self.read_subfield(sf),
                LearnSrc::Imm(v) => *v,
            };
            match &spec.dst {
                LearnDst::Match(d) => matcher.write_subfield(d, v),
                LearnDst::Load(d) => actions.push(Action::Load { dst: *d, value: v }),
                LearnDst::Output => {
                    // OVS: a 16-bit port, ordinary or IN_PORT, FLOOD,
                    // LOCAL, ALL; anything else adds no output.
                    if let Ok(p) = u16::try_from(v) {
                        if p < 0xff00 || matches!(p, 0xfff8 | 0xfffb | 0xfffe | 0xfffc) {
                            actions.push(Action::Output {
                                port: xennet_openflow::v10::port_from_ofp10(p),
                                max_len: 0,
                            });
                        }
                    }
                }
            }
        }
        let fm = FlowMod {
            cookie: l.cookie,
            cookie_mask: 0,
            table_id: l.table_id,
            command: FlowModCommand::ModifyStrict,
            idle_timeout: l.idle_timeout,
            hard_timeout: l.hard_timeout,
            priority: l.priority,
            buffer_id: u32::MAX,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            flags: if l.flags & NX_LEARN_F_SEND_FLOW_REM != 0 {
                xennet_openflow::model::flow_flags::SEND_FLOW_REM
            } else {
                0
            },
            matcher,
            instructions: Instructions::apply(actions),
        };
        if self.trace.is_some() {
            let mut s = format!("table={} ", fm.table_id);
            let m = match_text(&crate::classifier::normalize(&fm.matcher));
            if !m.is_empty() {
                s.push_str(&m);
                s.push(' ');
            }
            s.push_str(&format!("priority={}", fm.priority));
            if fm.cookie != 0 {
                s.push_str(&format!(" cookie={:#x}", fm.cookie));
            }
            if fm.idle_timeout != 0 {
                s.push_str(&format!(" idle={}", fm.idle_timeout));
            }
            if fm.hard_timeout != 0 {
                s.push_str(&format!(" hard={}", fm.hard_timeout));
            }
            if fm.flags != 0 {
                s.push_str(" send_flow_rem");
            }
            s.push_str(" actions=");
            s.push_str(&instructions_text(&fm.instructions));
            self.indent += 4;
            self.note(s);
            self.indent -= 4;
        }
        let ok = self.tables.learn_would_succeed(&fm, l.limit);
        if let Some(d) = &l.result_dst {
            self.write_subfield(d, u128::from(ok));
        }
        if !ok {
            self.note("Limit exceeded, learn failed");
        }
        if self.learned.len() < MAX_LEARNS_PER_XLATE {
            self.learned.push((fm, l.limit));
        } else {
            LEARNS_DROPPED.fetch_add(1, Ordering::Relaxed);
            warn_rate_limited("over 64 learn actions in one translation");
        }
    }

    /// `check_pkt_larger(len)->dst` (OVS 3.1.0 `xlate_check_pkt_larger`):
    /// the packet's length is not in the flow key, so the datapath
    /// decides: after a commit, a [`DpAction::CheckPktLen`] whose
    /// "greater" branch is `rest` (and the action set) translated with
    /// the bit 1, and whose other branch is the same with the bit 0. The
    /// first branch starts from a copy of the stack and action set, the
    /// second from what the first left of them (OVS shares one copy, and
    /// running the action set empties it), the flow of each from the
    /// state here. A freeze in a branch (`controller(pause)`, a
    /// recirculation) ends with that branch (OVS `finish_freezing`), its
    /// frozen rest the branch's. Then the state is restored and the
    /// caller goes on after `rest`, unless the first branch exited or
    /// froze: OVS keeps that branch's `ctx->exit`, which ends the
    /// translation.
    fn check_pkt_larger(
        &mut self,
        len: u16,
        dst: &Subfield,
        rest: &[Action],
        then: Option<(&Instructions, u8)>,
    ) {
        if self.cpl_depth >= MAX_CHECK_PKT_LEN_NESTING {
            self.error = Some(XlateError::TooDeep);
            warn_rate_limited("check_pkt_larger nested over 8 deep");
            self.note(">>>> check_pkt_larger nested too deeply; dropping <<<<");
            return;
        }
        self.commit();
        let saved_flow = self.flow;
        let saved_base = self.base;
        let saved_tpid = (self.tpid, self.base_tpid);
        let saved_touched = self.vlan_touched;
        let saved_set = self.action_set.clone();
        let saved_stack = self.stack.clone();
        let saved_stack_bytes = self.stack_bytes;
        let saved_l3_unknown = self.l3_unknown;
        let saved_conntracked = self.conntracked;
        let mut first_exit = self.exit;
        let at = self.actions.len();
        self.actions.push(DpAction::CheckPktLen {
            size: len,
            n_gt: 0,
            n_le: 0,
        });
        self.cpl_depth += 1;
        let mut counts = [0u16; 2];
        for (n, larger) in [true, false].into_iter().enumerate() {
            let start = self.actions.len();
            self.flow = saved_flow;
            self.base = saved_base;
            (self.tpid, self.base_tpid) = saved_tpid;
            self.vlan_touched = saved_touched;
            self.l3_unknown = saved_l3_unknown;
            self.conntracked = saved_conntracked;
            self.exit = false;
            self.note(format_args!(
                "{} {len} bytes:",
                if larger {
                    "packet larger than"
                } else {
                    "packet at most"
                }
            ));
            self.indent += 4;
            self.write_subfield(dst, u128::from(larger));
            if !self.do_actions_then(rest, then) {
                if let Some((ins, table)) = then {
                    self.run_after_apply_or_freeze(ins, table);
                }
            }
            if !self.freezing {
                self.finish();
            }
            self.finish_freezing();
            self.indent -= 4;
            counts[n] = u16::try_from(self.actions.len() - start).unwrap_or(u16::MAX);
            if larger {
                first_exit = self.exit;
            }
        }
        self.cpl_depth -= 1;
        if counts.contains(&u16::MAX) && self.error.is_none() {
            self.error = Some(XlateError::TooManyActions);
        }
        self.actions[at] = DpAction::CheckPktLen {
            size: len,
            n_gt: counts[0],
            n_le: counts[1],
        };
        self.flow = saved_flow;
        self.base = saved_base;
        (self.tpid, self.base_tpid) = saved_tpid;
        self.vlan_touched = saved_touched;
        self.l3_unknown = saved_l3_unknown;
        self.conntracked = saved_conntracked;
        self.action_set = saved_set;
        self.stack = saved_stack;
        self.stack_bytes = saved_stack_bytes;
        self.exit = first_exit;
    }

    /// Read the bits `sf` names from the working flow, un-wildcarding them.
    fn read_subfield(&mut self, sf: &Subfield) -> u128 {
        let (kf, shift, _) = mf_layout(sf.field);
        let at = shift + u32::from(sf.ofs);
        let ones = wire_ones(u32::from(sf.n_bits));
        if at < 128 {
            self.wc_or(kf, ones << at);
            (self.flow.get(kf) >> at) & ones
        } else {
            0
        }
    }

    /// Write `v` into the bits `sf` names: pipeline fields change the
    /// working flow only, packet fields go through [`Self::set_field`]
    /// (prerequisites, wildcards, the commit).
    fn write_subfield(&mut self, sf: &Subfield, v: u128) {
        let (kf, shift, width) = mf_layout(sf.field);
        let full = wire_ones(width);
        let m = (wire_ones(u32::from(sf.n_bits)) << sf.ofs) & full;
        let cur = (self.flow.get(kf) >> shift) & full;
        let new = (cur & !m) | ((v << sf.ofs) & m);
        match sf.field {
            MfField::InPort16 => {
                self.flow
                    .set_in_port(xennet_openflow::v10::port_from_ofp10(new as u16));
            }
            MfField::Oxm(OxmField::InPort) => self.flow.set_in_port(new as u32),
            MfField::IpTos => self.set_field(OxmField::IpDscp, new >> 2),
            MfField::VlanTci => {
                self.wc.set_exact(Field::VlanTci);
                self.vlan_touched = true;
                let tci = new as u16;
                if tci & VLAN_CFI == 0 {
                    self.flow.set_vlan_tci(0);
                    self.tpid[0] = 0;
                } else {
                    self.flow.set_vlan_tci(tci);
                    if self.tpid[0] == 0 {
                        self.tpid[0] = 0x8100;
                    }
                }
            }
            MfField::Oxm(f) => self.set_field(f, new),
        }
    }

    fn wc_or(&mut self, f: Field, bits: u128) {
        let cur = self.wc.get(f);
        self.wc.set(f, cur | bits);
    }

    /// Whether the working flow meets prerequisite `p` (OVS
    /// `mf_are_prereqs_ok`), un-wildcarding the EtherType and the
    /// protocol (and ND type/code) it reads.
    fn prereq_ok(&mut self, p: xennet_openflow::field::Prereq) -> bool {
        use xennet_openflow::field::Prereq as P;
        self.wc.set_exact(Field::DlType);
        let ip = matches!(self.flow.dl_type(), 0x0800 | 0x86dd);
        match p {
            P::None => true,
            P::Vlan => self.flow.has_vlan(),
            P::Ip => ip,
            P::Ipv4 => self.flow.dl_type() == 0x0800,
            P::Ipv6 => self.flow.dl_type() == 0x86dd,
            P::Arp => matches!(self.flow.dl_type(), 0x0806 | 0x8035),
            P::Mpls => matches!(self.flow.dl_type(), 0x8847 | 0x8848),
            // Read-only fields only: never set.
            P::CtValid => false,
            p => {
                self.wc.set_exact(Field::NwProto);
                let proto = self.flow.nw_proto();
                let v6 = self.flow.dl_type() == 0x86dd;
                match p {
                    P::Tcp => ip && proto == 6,
                    P::Udp => ip && proto == 17,
                    P::Sctp => ip && proto == 132,
                    P::Icmpv4 => self.flow.dl_type() == 0x0800 && proto == 1,
                    P::Icmpv6 => v6 && proto == 58,
                    P::Nd | P::NdSolicit | P::NdAdvert => {
                        if !(v6 && proto == 58) {
                            return false;
                        }
                        self.wc.set_exact(Field::TpSrc).set_exact(Field::TpDst);
                        let (ty, code) = (self.flow.tp_src(), self.flow.tp_dst());
                        code == 0
                            && match p {
                                P::NdSolicit => ty == 135,
                                P::NdAdvert => ty == 136,
                                _ => matches!(ty, 135 | 136),
                            }
                    }
                    _ => false,
                }
            }
        }
    }

    fn set_field(&mut self, field: OxmField, value: u128) {
        use OxmField::*;
        let (kf, shift, bits) = field.layout();
        if field.is_metadata() {
            // Pipeline state: no packet bytes change, no prerequisite.
            let fm = if bits >= 128 {
                u128::MAX
            } else {
                ((1u128 << bits) - 1) << shift
            };
            let cur = self.flow.get(kf);
            self.flow.set(kf, (cur & !fm) | ((value << shift) & fm));
            if let Some(i) = field.tun_metadata_index() {
                // Writing an option makes it present (OVS
                // `tun_metadata_write`), so an encapsulation sends it.
                let p = self.flow.get(Field::TunMdPresent);
                self.flow.set(Field::TunMdPresent, p | (1u128 << i));
            }
            return;
        }
        if !field.is_settable() {
            return;
        }
        // Prerequisites were checked against the rule's match at flow-mod
        // time; check the working flow too (resubmits, action sets), which
        // reads the EtherType / protocol.
        let ok = self.prereq_ok(field.prereq());
        if !ok {
            return;
        }
        if kf == Field::VlanTci {
            // OVS: set_field on vlan_vid/pcp does nothing without a tag.
            // The commit compares with the packet's own tag, if it has one.
            self.wc_or(Field::VlanTci, u128::from(VLAN_CFI));
            if self.base.has_vlan() {
                self.wc.set_exact(Field::VlanTci);
            }
            if !self.flow.has_vlan() {
                return;
            }
            self.vlan_touched = true;
            let tci = self.flow.vlan_tci();
            let tci = if field == VlanVid {
                (tci & !VLAN_VID_MASK) | (value as u16 & VLAN_VID_MASK)
            } else {
                (tci & !VLAN_PCP_MASK) | (((value as u16) & 7) << 13)
            };
            self.flow.set_vlan_tci(tci | VLAN_CFI);
            return;
        }
        let fm = if bits >= 128 {
            u128::MAX
        } else {
            ((1u128 << bits) - 1) << shift
        };
        let cur = self.flow.get(kf);
        self.flow.set(kf, (cur & !fm) | ((value << shift) & fm));
        self.wc.set_exact(kf);
    }

    /// OpenFlow 1.0 `SET_VLAN_VID`/`SET_VLAN_PCP` (OVS `do_xlate_actions`,
    /// `OFPACT_SET_VLAN_VID/PCP` with `push_vlan_if_needed`): the VID (12
    /// bits) or PCP (3 bits) and CFI of the outer tag are read; an
    /// untagged packet gets an 802.1Q tag with the other part 0.
    fn set_vlan10(&mut self, field: OxmField, value: u128) {
        let part = if field == OxmField::VlanVid {
            VLAN_VID_MASK
        } else {
            VLAN_PCP_MASK
        };
        self.wc_or(Field::VlanTci, u128::from(part | VLAN_CFI));
        // The commit compares with the packet's own tag, if it has one
        // (as for a set-field).
        if self.base.has_vlan() {
            self.wc.set_exact(Field::VlanTci);
        }
        self.vlan_touched = true;
        if !self.flow.has_vlan() {
            self.flow.set_vlan_tci(VLAN_CFI);
            self.tpid = [0x8100, self.tpid[0]];
        }
        let tci = self.flow.vlan_tci();
        let tci = if field == OxmField::VlanVid {
            (tci & !VLAN_VID_MASK) | (value as u16 & VLAN_VID_MASK)
        } else {
            (tci & !VLAN_PCP_MASK) | (((value as u16) & 7) << 13)
        };
        self.flow.set_vlan_tci(tci | VLAN_CFI);
    }

    /// Whether the working flow is MPLS (un-wildcards the EtherType).
    fn is_mpls(&mut self) -> bool {
        self.wc.set_exact(Field::DlType);
        matches!(self.flow.dl_type(), 0x8847 | 0x8848)
    }

    /// `push_mpls` (OpenFlow 1.3.5 §5.12 table 6, OVS `flow_push_mpls`):
    /// a new outer label stack entry, label 0; on an MPLS frame a copy of
    /// the outer entry with BOS clear, otherwise TC from the IP precedence
    /// and TTL from the IP TTL (64 without IP), BOS set. Pending field
    /// changes are committed first; the L3 fields are hidden behind the
    /// label from then on.
    fn push_mpls(&mut self, eth: u16) {
        self.commit();
        let lse = if self.is_mpls() {
            for f in [Field::MplsLabel, Field::MplsTc, Field::MplsTtl] {
                self.wc.set_exact(f);
            }
            let f = &self.flow;
            ((f.get(Field::MplsLabel) as u32) << 12)
                | ((f.get(Field::MplsTc) as u32) << 9)
                | (f.get(Field::MplsTtl) as u32)
        } else {
            let (tc, ttl) = if matches!(self.flow.dl_type(), 0x0800 | 0x86dd) {
                self.wc.set_exact(Field::NwTos).set_exact(Field::NwTtl);
                (
                    u32::from(self.flow.nw_tos() >> 5),
                    u32::from(self.flow.nw_ttl()),
                )
            } else {
                (0, 64)
            };
            (tc << 9) | (1 << 8) | ttl
        };
        self.actions.push(DpAction::PushMpls {
            ethertype: eth,
            lse,
        });
        let mut k = self.flow.without_l3();
        k.set_dl_type(eth);
        k.set(Field::MplsLabel, u128::from(lse >> 12));
        k.set(Field::MplsTc, u128::from((lse >> 9) & 7));
        k.set(Field::MplsBos, u128::from((lse >> 8) & 1));
        k.set(Field::MplsTtl, u128::from(lse & 0xff));
        self.flow = k;
        self.base = k;
    }

    /// `pop_mpls`: the outer label stack entry goes and the frame gets
    /// EtherType `eth`. What was under the label was never parsed, so a
    /// later table lookup (or group, or clone) freezes: the datapath
    /// recirculates the packet, parsing it anew, and the translation goes
    /// on from there (OVS `was_mpls`).
    fn pop_mpls(&mut self, eth: u16) {
        if !self.is_mpls() {
            return;
        }
        self.commit();
        self.actions.push(DpAction::PopMpls(eth));
        let mut k = self.flow.without_l3();
        k.set_dl_type(eth);
        self.flow = k;
        self.base = k;
        self.l3_unknown = true;
    }

    /// `dec_ttl`: on TTL 0 or 1 one invalid-TTL packet-in for each
    /// controller id in `ids` (OVS `compose_dec_ttl`), and the pipeline
    /// stops.
    fn dec_ttl(&mut self, ids: &[u16]) {
        self.wc.set_exact(Field::DlType);
        if !matches!(self.flow.dl_type(), 0x0800 | 0x86dd) {
            return;
        }
        self.wc.set_exact(Field::NwTtl);
        let ttl = self.flow.nw_ttl();
        if ttl <= 1 {
            for &id in ids {
                self.controller(
                    packet_in_reason::INVALID_TTL,
                    OFPCML_NO_BUFFER,
                    id,
                    &[],
                    None,
                );
            }
            self.exit = true;
            return;
        }
        self.flow.set_nw_ttl(ttl - 1);
    }

    /// Emit datapath actions that make the packet look like `flow`.
    fn commit(&mut self) {
        let (b, f) = (self.base, self.flow);
        if self.vlan_touched && self.orig.has_vlan() {
            // What the VLAN actions left is compared with the packet's
            // own tags (even when equal again after a pop and a push), so
            // the megaflow matches them (for an untagged packet the
            // presence bit the VLAN actions un-wildcarded says it all).
            self.wc.set_exact(Field::VlanTci);
            self.wc.set_exact(Field::Vlan2Tci);
        }
        let (bt, ft) = (vlan_stack(&b, self.base_tpid), vlan_stack(&f, self.tpid));
        if b == f && bt == ft {
            return;
        }
        let push = |acts: &mut Vec<DpAction>, s: SetAction| acts.push(DpAction::Set(s));
        let mac = |v: u128| -> [u8; 6] {
            let b = (v as u64).to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        };
        if b.get(Field::DlSrc) != f.get(Field::DlSrc) {
            push(
                &mut self.actions,
                SetAction::EthSrc(mac(f.get(Field::DlSrc))),
            );
        }
        if b.get(Field::DlDst) != f.get(Field::DlDst) {
            push(
                &mut self.actions,
                SetAction::EthDst(mac(f.get(Field::DlDst))),
            );
        }
        // VLAN, as OVS `commit_vlan_action`: the tags both stacks share
        // at the bottom stay, the rest of the packet's are popped and the
        // rest of the flow's pushed; a lone outer tag with the same TPID
        // is rewritten in place instead.
        if bt != ft {
            let (mut i, mut j) = (bt.len(), ft.len());
            while i > 0 && j > 0 && bt[i - 1] == ft[j - 1] {
                i -= 1;
                j -= 1;
            }
            if i == 1 && j == 1 && bt[0].0 == ft[0].0 {
                let (bo, fo) = (bt[0].1, ft[0].1);
                if bo & VLAN_VID_MASK != fo & VLAN_VID_MASK {
                    push(&mut self.actions, SetAction::VlanVid(fo & VLAN_VID_MASK));
                }
                if bo & VLAN_PCP_MASK != fo & VLAN_PCP_MASK {
                    push(&mut self.actions, SetAction::VlanPcp((fo >> 13) as u8));
                }
            } else {
                for _ in 0..i {
                    self.actions.push(DpAction::PopVlan);
                }
                for &(tpid, tci) in ft[..j].iter().rev() {
                    self.actions.push(DpAction::PushVlan { tpid, tci });
                }
            }
        }
        // MPLS, as OVS `commit_mpls_action`: a label popped in a clone, a
        // group bucket or a `check_pkt_larger` branch, whose flow is
        // restored after it, is pushed back with the flow's label stack
        // entry (read from the packet: matched); one pushed there is
        // popped, uncovering the headers the flow has (as OVS, no set of
        // them follows).
        let is_mpls = |k: &FlowKey| matches!(k.dl_type(), 0x8847 | 0x8848);
        let mut b = b;
        if is_mpls(&f) != is_mpls(&b) {
            let mut k = b.without_l3();
            k.set_dl_type(f.dl_type());
            if is_mpls(&f) {
                for fl in MPLS_FIELDS {
                    self.wc.set_exact(fl);
                    k.set(fl, f.get(fl));
                }
                let lse = ((f.get(Field::MplsLabel) as u32) << 12)
                    | ((f.get(Field::MplsTc) as u32) << 9)
                    | ((f.get(Field::MplsBos) as u32) << 8)
                    | (f.get(Field::MplsTtl) as u32);
                self.actions.push(DpAction::PushMpls {
                    ethertype: f.dl_type(),
                    lse,
                });
            } else {
                self.actions.push(DpAction::PopMpls(f.dl_type()));
                for fl in L3_FIELDS {
                    k.set(fl, f.get(fl));
                }
            }
            b = k;
        }
        let differs = |fl: Field| b.get(fl) != f.get(fl);
        // Tunnel metadata for a later output to a tunnel port.
        if differs(Field::TunId) {
            push(
                &mut self.actions,
                SetAction::TunId(f.get(Field::TunId) as u64),
            );
        }
        if differs(Field::TunSrc) {
            push(&mut self.actions, SetAction::TunSrc(f.get(Field::TunSrc)));
        }
        if differs(Field::TunDst) {
            push(&mut self.actions, SetAction::TunDst(f.get(Field::TunDst)));
        }
        for n in 0..2u8 {
            if differs(Field::TunOpts(n)) {
                push(
                    &mut self.actions,
                    SetAction::TunOpts(n, f.get(Field::TunOpts(n))),
                );
            }
        }
        if differs(Field::TunMdPresent) {
            push(
                &mut self.actions,
                SetAction::TunMdPresent(f.get(Field::TunMdPresent) as u64),
            );
        }
        match f.dl_type() {
            0x0800 => {
                if differs(Field::NwSrc) {
                    push(
                        &mut self.actions,
                        SetAction::Ipv4Src((f.get(Field::NwSrc) as u32).to_be_bytes()),
                    );
                }
                if differs(Field::NwDst) {
                    push(
                        &mut self.actions,
                        SetAction::Ipv4Dst((f.get(Field::NwDst) as u32).to_be_bytes()),
                    );
                }
                if differs(Field::NwTos) {
                    push(
                        &mut self.actions,
                        SetAction::Ipv4Tos {
                            value: f.nw_tos(),
                            mask: 0xff,
                        },
                    );
                }
                if differs(Field::NwTtl) {
                    push(&mut self.actions, SetAction::Ipv4Ttl(f.nw_ttl()));
                }
            }
            0x86dd => {
                if differs(Field::NwSrc) {
                    push(
                        &mut self.actions,
                        SetAction::Ipv6Src(f.get(Field::NwSrc).to_be_bytes()),
                    );
                }
                if differs(Field::NwDst) {
                    push(
                        &mut self.actions,
                        SetAction::Ipv6Dst(f.get(Field::NwDst).to_be_bytes()),
                    );
                }
                if differs(Field::NwTos) {
                    push(
                        &mut self.actions,
                        SetAction::Ipv6Tclass {
                            value: f.nw_tos(),
                            mask: 0xff,
                        },
                    );
                }
                if differs(Field::NwTtl) {
                    push(&mut self.actions, SetAction::Ipv6Hlim(f.nw_ttl()));
                }
                if differs(Field::Ipv6Label) {
                    push(
                        &mut self.actions,
                        SetAction::Ipv6Label(f.get(Field::Ipv6Label) as u32),
                    );
                }
                if differs(Field::NdTarget) {
                    push(
                        &mut self.actions,
                        SetAction::NdTarget(f.get(Field::NdTarget).to_be_bytes()),
                    );
                }
            }
            0x8847 | 0x8848
                if [Field::MplsLabel, Field::MplsTc, Field::MplsTtl]
                    .into_iter()
                    .any(&differs) =>
            {
                let lse = ((f.get(Field::MplsLabel) as u32) << 12)
                    | ((f.get(Field::MplsTc) as u32) << 9)
                    | ((f.get(Field::MplsBos) as u32) << 8)
                    | (f.get(Field::MplsTtl) as u32);
                self.wc.set_exact(Field::MplsBos);
                push(&mut self.actions, SetAction::MplsLse(lse));
            }
            0x0806 | 0x8035 => {
                if differs(Field::NwProto) {
                    push(&mut self.actions, SetAction::ArpOp(u16::from(f.nw_proto())));
                }
                if differs(Field::NwSrc) {
                    push(
                        &mut self.actions,
                        SetAction::ArpSpa((f.get(Field::NwSrc) as u32).to_be_bytes()),
                    );
                }
                if differs(Field::NwDst) {
                    push(
                        &mut self.actions,
                        SetAction::ArpTpa((f.get(Field::NwDst) as u32).to_be_bytes()),
                    );
                }
            }
            _ => {}
        }
        // The ARP hardware addresses, or under IPv6 the ND link-layer
        // options, which share their key bits.
        let arp = matches!(f.dl_type(), 0x0806 | 0x8035);
        if arp || f.dl_type() == 0x86dd {
            if differs(Field::ArpSha) {
                let m = mac(f.get(Field::ArpSha));
                let a = if arp {
                    SetAction::ArpSha(m)
                } else {
                    SetAction::NdSll(m)
                };
                push(&mut self.actions, a);
            }
            if differs(Field::ArpTha) {
                let m = mac(f.get(Field::ArpTha));
                let a = if arp {
                    SetAction::ArpTha(m)
                } else {
                    SetAction::NdTll(m)
                };
                push(&mut self.actions, a);
            }
        }
        if matches!(f.dl_type(), 0x0800 | 0x86dd) {
            let proto = f.nw_proto();
            match proto {
                6 | 17 | 132 => {
                    if differs(Field::TpSrc) {
                        push(
                            &mut self.actions,
                            SetAction::TpSrc {
                                proto,
                                port: f.tp_src(),
                            },
                        );
                    }
                    if differs(Field::TpDst) {
                        push(
                            &mut self.actions,
                            SetAction::TpDst {
                                proto,
                                port: f.tp_dst(),
                            },
                        );
                    }
                    if proto == 6 && differs(Field::TcpFlags) {
                        push(&mut self.actions, SetAction::TcpFlags(f.tcp_flags()));
                    }
                }
                1 | 58 => {
                    if differs(Field::TpSrc) {
                        push(&mut self.actions, SetAction::IcmpType(f.tp_src() as u8));
                    }
                    if differs(Field::TpDst) {
                        push(&mut self.actions, SetAction::IcmpCode(f.tp_dst() as u8));
                    }
                }
                _ => {}
            }
        }
        // Fields the datapath cannot change (in_port, dl_type, proto,
        // frag) stay as they were in the packet.
        let mut nb = f;
        nb.set_in_port(b.in_port());
        self.base = nb;
        self.base_tpid = self.tpid;
    }

    /// Whether output to `port` is allowed: not `OFPPC_NO_FWD` (OVS
    /// `compose_output_action__`) nor `OFPPC_PORT_DOWN` (a down port sends
    /// nothing).
    fn may_forward(&self, port: OfPort) -> bool {
        (self.port_config)(port) & (port_config::NO_FWD | port_config::PORT_DOWN) == 0
    }

    fn out_port(&mut self, port: OfPort) {
        if !self.may_forward(port) {
            self.note(format_args!(
                "port {port} is down or has OFPPC_NO_FWD set, skipping output"
            ));
            return;
        }
        if self.ports.binary_search(&port).is_ok() {
            self.commit();
            self.actions.push(DpAction::Output(port));
        }
    }

    fn output(&mut self, port: u32, max_len: u16) {
        let in_port = self.flow.in_port();
        match port {
            OFPP_IN_PORT => self.out_port(in_port),
            OFPP_ALL | OFPP_FLOOD => {
                // FLOOD leaves out ports with OFPPC_NO_FLOOD (OpenFlow 1.0
                // §5.2.1; OVS `flood_packets`), ALL does not.
                let all = port == OFPP_ALL;
                let ports = self.ports;
                let floods = |p: u32| all || (self.port_config)(p) & port_config::NO_FLOOD == 0;
                for &p in ports {
                    if p != in_port && p != OFPP_LOCAL && floods(p) {
                        self.out_port(p);
                    }
                }
                if in_port != OFPP_LOCAL
                    && ports.binary_search(&OFPP_LOCAL).is_ok()
                    && floods(OFPP_LOCAL)
                {
                    self.out_port(OFPP_LOCAL);
                }
            }
            OFPP_NORMAL => self.normal(),
            OFPP_CONTROLLER => {
                let reason = match &self.rule {
                    Some(r) if is_table_miss(r) => packet_in_reason::NO_MATCH,
                    _ => packet_in_reason::ACTION,
                };
                self.controller(reason, max_len, 0, &[], None);
            }
            OFPP_TABLE => {
                // Only meaningful in packet-out (the flow-mod validator
                // rejects it): run the pipeline from table 0.
                if self.rule.is_none() {
                    let saved = std::mem::take(&mut self.action_set);
                    self.indent += 4;
                    self.run_table(0, false, true);
                    self.finish();
                    self.indent -= 4;
                    self.action_set = saved;
                }
            }
            OFPP_ANY | 0 => {}
            p => {
                // Output to the input port is dropped (1.3.5 §4.5: use
                // IN_PORT for that).
                if p != in_port {
                    self.out_port(p);
                }
            }
        }
    }

    /// A packet-in to the controllers with id `controller_id`, carrying
    /// `userdata` and the pipeline fields at this point (delivered in
    /// `NXT_PACKET_IN2` to connections that chose it; see
    /// [`crate::pin_extras`]).
    fn controller(
        &mut self,
        reason: u8,
        max_len: u16,
        controller_id: u16,
        userdata: &[u8],
        continuation: Option<(Continuation, u8, u64)>,
    ) {
        if (self.port_config)(self.orig.in_port()) & port_config::NO_PACKET_IN != 0 {
            self.note("OFPPC_NO_PACKET_IN is set on the input port, no packet-in");
            return;
        }
        self.commit();
        let (table_id, cookie) = match (&continuation, &self.rule) {
            (Some((_, t, c)), _) => (*t, *c),
            (None, Some(r)) => (r.table_id, r.cookie),
            (None, None) => (self.table_id, self.unroll_cookie.unwrap_or(u64::MAX)),
        };
        // The pipeline fields OVS puts in `flow_metadata` that xennet has:
        // registers, tunnel id, packet mark, conntrack state, zone, mark
        // and label. The registers follow from decisions the megaflow
        // already pins; the others may come with the packet, so the
        // megaflow matches them.
        for f in [
            Field::TunId,
            Field::PktMark,
            Field::CtState,
            Field::CtZone,
            Field::CtMark,
            Field::CtLabel,
        ] {
            self.wc.set_exact(f);
        }
        let mut pipeline = Vec::new();
        for (f, kf) in [
            (OxmField::TunId, Field::TunId),
            (OxmField::PktMark, Field::PktMark),
            (OxmField::CtState, Field::CtState),
            (OxmField::CtZone, Field::CtZone),
            (OxmField::CtMark, Field::CtMark),
            (OxmField::CtLabel, Field::CtLabel),
        ]
        .into_iter()
        .chain((0..N_REGS).map(|n| (OxmField::Reg(n), Field::Reg(n))))
        {
            let v = self.flow.get(kf);
            if v != 0 {
                pipeline.push((f, v));
            }
        }
        // Geneve options too (`tun_metadata<i>`), named by the bridge's
        // TLV map when the packet-in goes out; present or not is in the
        // megaflow, and the option bytes when present.
        self.wc.set_exact(Field::TunMdPresent);
        let tun_md = xennet_openflow::tlv::TunMetadataWords::load(&self.flow);
        let tun_md = (tun_md.present != 0).then(|| {
            self.wc
                .set_exact(Field::TunOpts(0))
                .set_exact(Field::TunOpts(1));
            tun_md
        });
        let paused = continuation.is_some();
        let extra = if controller_id == 0
            && userdata.is_empty()
            && pipeline.is_empty()
            && tun_md.is_none()
            && continuation.is_none()
        {
            0
        } else {
            crate::pin_extras::intern(crate::pin_extras::PinExtras {
                controller_id,
                userdata: userdata.to_vec(),
                pipeline,
                tun_md,
                continuation: continuation.map(|(c, _, _)| Box::new(c)),
            })
            .unwrap_or_else(|| {
                CONTROLLER_EXTRAS_DROPPED.fetch_add(1, Ordering::Relaxed);
                if paused {
                    // A paused packet-in without its continuation would
                    // strand the packet: drop it here instead (OVS fails
                    // the same way when it cannot keep the frozen state,
                    // `XLATE_NO_RECIRCULATION_CONTEXT`).
                    self.error = Some(XlateError::NoRecircContext);
                    warn_rate_limited("packet-in extras table full: controller(pause) dropped");
                    self.note(">>>> Packet-in extras table full: cannot pause; dropping <<<<");
                    return 0;
                }
                warn_rate_limited("packet-in extras table full: userdata, controller id and registers dropped");
                self.note("(packet-in extras table full: userdata, controller id and registers are dropped)");
                0
            })
        };
        self.actions.push(DpAction::Userspace(Userdata {
            reason,
            table_id,
            cookie,
            max_len,
            metadata: self.flow.get(Field::Metadata) as u64,
            extra,
        }));
    }

    /// `controller(pause)` (OVS `ctx->pause`, `ctx_trigger_freeze`): the
    /// translation freezes here; the levels unwinding add what they had
    /// left to run, and [`Self::finish_pause`] sends it all to the
    /// controller.
    fn pause(&mut self, c: &xennet_openflow::model::Controller) {
        let at = match &self.rule {
            Some(r) => (r.table_id, r.cookie),
            None => (self.table_id, self.unroll_cookie.unwrap_or(u64::MAX)),
        };
        self.note("pausing: the rest of the pipeline goes to the controller as a continuation");
        self.pause_at = at;
        self.pause = Some(Box::new(c.clone()));
        self.freezing = true;
        self.exit = true;
    }

    /// The end of a paused translation (OVS `finish_freezing__` with
    /// `ctx->pause`): a packet-in whose continuation holds the stack,
    /// the action set and the frozen rest of the pipeline; the registers
    /// and metadata go in its pipeline fields. The controller hands it
    /// back in `NXT_RESUME` ([`xlate_continue`]); nothing is kept here.
    fn finish_pause(&mut self, c: &xennet_openflow::model::Controller) {
        let cont = Continuation {
            bridge: [0; 16],
            stack: self.stack.clone(),
            mirrors: 0,
            conntracked: self.conntracked,
            ops: std::mem::take(&mut self.frozen),
            action_set: self.action_set.actions.clone(),
            odp_port: 0,
            // Set from the packet itself when the packet-in is sent
            // (`Ofproto::packet_in`): a reassembled datagram's size.
            frag_max_size: 0,
            frag_id: 0,
        };
        if self.trace.is_some() {
            let rest = frozen_text(&cont.ops);
            self.note("");
            self.note(format_args!(
                "Paused: packet-in with a continuation; NXT_RESUME goes on with: {}",
                if rest.is_empty() {
                    "(nothing)".into()
                } else {
                    rest
                }
            ));
        }
        let (t, ck) = self.pause_at;
        self.controller(
            c.reason,
            c.max_len,
            c.controller_id,
            &c.userdata,
            Some((cont, t, ck)),
        );
    }

    fn normal(&mut self) {
        // Commit all but the tags: NORMAL turns the packet's tags into
        // each output's (OVS commits the VLAN changes at each output), so
        // nothing is pushed only to be popped.
        let (tci, tci1, tpid) = (
            self.flow.vlan_tci(),
            self.flow.get(Field::Vlan2Tci),
            self.tpid,
        );
        self.flow.set_vlan_tci(self.base.vlan_tci());
        self.flow
            .set(Field::Vlan2Tci, self.base.get(Field::Vlan2Tci));
        self.tpid = self.base_tpid;
        self.commit();
        self.flow.set_vlan_tci(tci);
        self.flow.set(Field::Vlan2Tci, tci1);
        self.tpid = tpid;
        let Some(n) = self.normal.as_deref_mut() else {
            self.note(">>>> NORMAL is not available on this bridge <<<<");
            return;
        };
        let stack = vlan_stack(&self.base, self.base_tpid);
        let mut packet = [(0, 0); 2];
        for (i, t) in stack.into_iter().enumerate() {
            packet[i] = t;
        }
        let mut up = n.translate_tpids(
            &self.flow,
            self.tpid,
            Some(packet),
            self.ports,
            Instant::now(),
        );
        let config = self.port_config;
        retain_forwardable(&mut up.actions, config);
        self.wc.union_with(&up.mask);
        for a in &up.actions {
            match a {
                DpAction::PushVlan { tpid, tci } => {
                    let outer = self.base.vlan_tci();
                    self.base.set(Field::Vlan2Tci, u128::from(outer));
                    self.base.set_vlan_tci(*tci | VLAN_CFI);
                    self.base_tpid = [*tpid, self.base_tpid[0]];
                }
                DpAction::PopVlan => {
                    let inner = self.base.get(Field::Vlan2Tci) as u16;
                    self.base
                        .set_vlan_tci(if inner & VLAN_CFI != 0 { inner } else { 0 });
                    self.base.set(Field::Vlan2Tci, 0);
                    self.base_tpid = [self.base_tpid[1], 0];
                }
                _ => {}
            }
        }
        self.actions.extend(up.actions);
        self.counters.extend(up.counters);
        self.tags.add(up.tags);
    }

    fn bucket_live(&self, watch_port: u32, watch_group: u32, depth: u32) -> bool {
        if watch_port != OFPP_ANY && !(self.live)(watch_port) {
            return false;
        }
        if watch_group != OFPG_ANY {
            return depth < MAX_DEPTH
                && self
                    .tables
                    .group(watch_group)
                    .is_some_and(|g| self.group_live(g, depth + 1));
        }
        true
    }

    fn group_live(&self, g: &Group, depth: u32) -> bool {
        g.buckets
            .iter()
            .any(|b| self.bucket_live(b.watch_port, b.watch_group, depth))
    }

    /// The bucket a select group picks for flow hash `h`, as OVS's default
    /// selection method (no `selection_method` property) does. With a
    /// [`Group::hash_map`] (OVS `pick_dp_hash_select_group`): the bucket
    /// of value `h & mask`, or of the next values in turn while that one
    /// is not live, so each bucket gets its weight's share of the flows.
    /// Without one (weights too uneven for 64 values; OVS
    /// `group_best_live_bucket`): the live bucket with the highest
    /// `(hash(bucket, h) & 0xffff) * weight`, the last on ties.
    fn select_bucket(&self, g: &Group, h: u64) -> Option<usize> {
        let live = |i: usize| {
            g.buckets
                .get(i)
                .is_some_and(|b| self.bucket_live(b.watch_port, b.watch_group, 0))
        };
        if let Some(map) = &g.hash_map {
            let n = map.len();
            // `map.len()` is a power of two; `h % n` is `h & (n - 1)`.
            let start = (h % n as u64) as usize;
            return (0..n).map(|i| map[(start + i) % n]).find(|b| live(*b));
        }
        let mut best: Option<(usize, u64)> = None;
        for (i, b) in g.buckets.iter().enumerate() {
            if !live(i) {
                continue;
            }
            let score = (mix(h ^ mix(i as u64)) & 0xffff) * u64::from(b.weight);
            if best.map_or(true, |(_, s)| score >= s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }

    /// `selection_method=hash` (OVS `pick_hash_fields_select_group`):
    /// the basis is OVS `hash_uint64` of the method's parameter, each
    /// field whose prerequisites the flow meets adds its masked value (its
    /// wire bytes, OVS `hash_bytes`) and un-wildcards the masked bits; the
    /// live bucket with the highest `(hash_int(bucket_id, basis) & 0xffff)
    /// * weight` wins, the last on ties (OVS `group_best_live_bucket`;
    /// bucket ids are positions). With OVS's own hash functions
    /// ([`crate::ovshash`]), so a flow gets the bucket it gets on OVS.
    fn select_by_fields(&mut self, g: &Group, s: &SelectionMethod) -> Option<usize> {
        let mut basis = ovshash::hash_uint64(s.param);
        for hf in &s.fields {
            let prereq = match hf.field {
                MfField::Oxm(f) => f.prereq(),
                MfField::IpTos => xennet_openflow::field::Prereq::Ip,
                MfField::VlanTci | MfField::InPort16 => xennet_openflow::field::Prereq::None,
            };
            if !self.prereq_ok(prereq) {
                continue;
            }
            let (kf, shift, width) = mf_layout(hf.field);
            let mask = hf.mask & wire_ones(width);
            let v = (self.flow.get(kf) >> shift) & mask;
            let n = usize::from(hf.n_bytes).min(16);
            basis = ovshash::hash_bytes(&v.to_be_bytes()[16 - n..], basis);
            self.wc_or(kf, mask << shift);
        }
        let mut best: Option<(usize, u64)> = None;
        for (i, b) in g.buckets.iter().enumerate() {
            if !self.bucket_live(b.watch_port, b.watch_group, 0) {
                continue;
            }
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            let score = u64::from(ovshash::hash_int(id, basis) & 0xffff) * u64::from(b.weight);
            if best.map_or(true, |(_, s)| score >= s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }

    fn group(&mut self, id: u32) {
        let tables = self.tables;
        let Some(g) = tables.group(id) else { return };
        if !self.enter_with(true, g.group_type == GroupType::Select) {
            return;
        }
        self.counters.push(g.counters.clone());
        let chosen: Vec<usize> = match g.group_type {
            GroupType::All => (0..g.buckets.len()).collect(),
            GroupType::Indirect => (0..g.buckets.len().min(1)).collect(),
            GroupType::FastFailover => g
                .buckets
                .iter()
                .position(|b| self.bucket_live(b.watch_port, b.watch_group, 0))
                .into_iter()
                .collect(),
            GroupType::Select => match &g.selection {
                Some(s) if s.kind == SelectionKind::Hash => {
                    self.select_by_fields(g, s).into_iter().collect()
                }
                sel => {
                    // The default method, and dp_hash (its table; the
                    // hash is xennet's, seeded with the method's
                    // parameter: there is no datapath hash to recirculate
                    // on).
                    let mut h = sel.as_ref().map_or(0, |s| mix(s.param));
                    for (f, m) in select_fields(&self.flow) {
                        let cur = self.wc.get(f);
                        self.wc.set(f, cur | m);
                        let v = self.flow.get(f) & m;
                        h = mix(h ^ (v as u64) ^ mix((v >> 64) as u64));
                    }
                    self.select_bucket(g, h).into_iter().collect()
                }
            },
        };
        if chosen.is_empty() {
            self.note("(no live bucket)");
        }
        for i in chosen {
            let Some(b) = g.buckets.get(i) else { continue };
            if let Some(c) = g.bucket_counters.get(i) {
                self.counters.push(c.clone());
            }
            self.note(format_args!("bucket {i}"));
            // A bucket's actions are an action set (1.3.5 §5.6.1), as OVS
            // `xlate_group_bucket` runs them.
            let list = action_set_to_list(&b.actions);
            let saved_flow = self.flow;
            let saved_tpid = self.tpid;
            let saved_l3_unknown = self.l3_unknown;
            self.indent += 4;
            self.do_actions(&list);
            // A freeze in the bucket (a pause or recirculation in a table
            // it resubmits to) ends here (OVS `xlate_group_bucket` calls
            // `finish_freezing`): the frozen rest is the bucket's, with
            // the pipeline's stack and action set, which a bucket shares.
            self.finish_freezing();
            self.indent -= 4;
            // Each bucket works on the packet as it was before the group
            // (1.3.5 §5.6.1: "a copy of the packet"), and the translation
            // goes on after a bucket that exited or froze (OVS resets
            // `ctx->exit` and `was_mpls`).
            self.flow = saved_flow;
            self.tpid = saved_tpid;
            self.l3_unknown = saved_l3_unknown;
            self.exit = false;
        }
        self.leave(true);
    }
}

/// The tag stack of `k` with TPIDs `tpid`, outer first: `(TPID, TCI)` of
/// each tag up to the first without the presence bit (OVS
/// `flow_count_vlan_headers`).
fn vlan_stack(k: &FlowKey, tpid: [u16; 2]) -> Vec<(u16, u16)> {
    [k.vlan_tci(), k.get(Field::Vlan2Tci) as u16]
        .into_iter()
        .zip(tpid)
        .take_while(|(tci, _)| tci & VLAN_CFI != 0)
        .map(|(tci, tpid)| (if tpid == 0 { 0x8100 } else { tpid }, tci))
        .collect()
}

/// TPIDs of the packet's own tags that `key` holds (outer first; 0 for
/// none; OVS `flow->vlans[i].tpid`). A key without them (a flow given to
/// `ofproto/trace` as text) has 0x8100 for each tag it holds. Megaflows
/// match them exactly ([`Ctx::wc_init`]).
fn packet_tpids(key: &FlowKey) -> [u16; 2] {
    let tpid = |tci: Field, tpid: Field| match (key.get(tci) as u16 & VLAN_CFI, key.get(tpid)) {
        (0, _) => 0,
        (_, 0) => 0x8100,
        (_, t) => t as u16,
    };
    [
        tpid(Field::VlanTci, Field::VlanTpid),
        tpid(Field::Vlan2Tci, Field::Vlan2Tpid),
    ]
}

/// Whether a log line limited by `last` (seconds since the first call,
/// plus one, of its last line) may go now: at most one a second.
pub(crate) fn once_a_second(last: &AtomicU64) -> bool {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    let now = start.elapsed().as_secs().saturating_add(1);
    let prev = last.load(Ordering::Relaxed);
    now > prev
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// The `ct` drop's log line, at most once a second, naming the flow.
fn ct_warn_rate_limited(table: u8, priority: u16, cookie: u64, why: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    if once_a_second(&LAST) {
        tracing::warn!(
            table,
            priority,
            cookie = format_args!("{cookie:#x}"),
            total = CT_FAILED.load(Ordering::Relaxed),
            "ct action failed ({why}): packet dropped"
        );
    }
}

/// The tracker's form of a `nat(...)` (the `nx_action_nat` bytes after
/// the subtype, as the codec checked them, OVS `decode_NXAST_RAW_NAT`):
/// flags `NX_NAT_F_SRC` 1, `_DST` 2, `_PERSISTENT` 4, `_PROTO_HASH` 8,
/// `_PROTO_RANDOM` 16; ranges `NX_NAT_RANGE_IPV4_MIN` 1, `_IPV4_MAX` 2,
/// `_IPV6_MIN` 4, `_IPV6_MAX` 8, `_PROTO_MIN` 0x10, `_PROTO_MAX` 0x20.
/// A missing maximum is the minimum.
pub fn nat_args(body: &[u8]) -> NatArgs {
    let be16 = |at: usize| {
        body.get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let flags = be16(2);
    let range = be16(4);
    let mut opts = body.get(6..).unwrap_or_default();
    let mut take = |n: usize| -> Option<Vec<u8>> {
        let h = opts.get(..n)?.to_vec();
        opts = opts.get(n..).unwrap_or_default();
        Some(h)
    };
    let ip = |b: Vec<u8>| -> Option<std::net::IpAddr> {
        match b.len() {
            4 => Some(std::net::Ipv4Addr::from([b[0], b[1], b[2], b[3]]).into()),
            16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).into()),
            _ => None,
        }
    };
    let (mut addr_min, mut addr_max) = (None, None);
    let width = if range & 1 != 0 {
        4
    } else if range & 4 != 0 {
        16
    } else {
        0
    };
    if width > 0 {
        addr_min = take(width).and_then(ip);
        addr_max = if range & 0xa != 0 {
            take(width).and_then(ip)
        } else {
            addr_min
        };
    }
    let (mut port_min, mut port_max) = (0, 0);
    if range & 0x10 != 0 {
        let port = |p: Option<Vec<u8>>| p.map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        port_min = port(take(2));
        port_max = if range & 0x20 != 0 {
            port(take(2))
        } else {
            port_min
        };
    }
    NatArgs {
        kind: match flags & 3 {
            1 => Some(NatKind::Src),
            2 => Some(NatKind::Dst),
            _ => None,
        },
        addr_min,
        addr_max,
        port_min,
        port_max,
        persistent: flags & 4 != 0,
        random: flags & 16 != 0,
    }
}

/// The link `multipath` picks for flow hash `h` among `n` (OVS
/// `multipath_algorithm`): modulo_n `h % n`; hash_threshold
/// `h / (u32::MAX / n + 1)`; hrw the highest hash of (h, link) for up to
/// 64 links, else iter_hash; iter_hash rehashes `h` with a counter until
/// the value modulo `arg` (or the power of two at or above `n` when `arg`
/// is out of range) is below `n`.
fn multipath_link(h: u32, algorithm: u16, n: u32, arg: u32) -> u32 {
    let iter = |modulo: u32| {
        let modulo = if modulo < n || modulo / 2 > n {
            n.next_power_of_two()
        } else {
            modulo
        };
        // Each try is below n with probability over 1/2; 64 tries make a
        // miss vanishingly rare, and bound the loop.
        (0u64..64)
            .map(|i| (mix(u64::from(h) << 32 | i) as u32) % modulo)
            .find(|&l| l < n)
            .unwrap_or(u32::from(h as u16) % n)
    };
    match algorithm {
        0 => h % n,
        1 if n == 1 => 0,
        1 => h / (u32::MAX / n + 1),
        2 if n <= 64 => (0..n)
            .max_by_key(|&i| mix(u64::from(h) << 32 | u64::from(i)))
            .unwrap_or(0),
        2 => iter(0),
        _ => iter(arg),
    }
}

/// Whether `a`, after a `pop_mpls`, needs the headers that were under
/// the label, so that the translation must recirculate before it (OVS
/// `recirc_for_mpls`): everything but outputs, groups (which recirculate
/// themselves if they need to), queues, tunnel ids and writes of fields
/// below L3.
fn recirc_for_mpls(a: &Action) -> bool {
    use xennet_openflow::field::Prereq as P;
    let below_l3 = |f: OxmField| matches!(f.prereq(), P::None | P::Vlan | P::Mpls);
    match a {
        Action::Output { .. }
        | Action::OutputReg { .. }
        | Action::SetQueue(_)
        | Action::Group(_)
        | Action::SetTunnel { .. }
        | Action::SetVlan10 { .. } => false,
        Action::SetField { field, .. } => !below_l3(*field),
        Action::Load { dst, .. } => match dst.field {
            MfField::Oxm(f) => !below_l3(f),
            MfField::VlanTci | MfField::InPort16 => false,
            MfField::IpTos => true,
        },
        _ => true,
    }
}

/// Swap the packet's 5-tuple with its connection's original tuple (OVS
/// `tuple_swap_flow`, applied to the flow and to its wildcards): protocol,
/// addresses (IPv4 or IPv6, which share the key fields) and L4 ports.
fn tuple_swap(flow: &mut FlowKey, wc: &mut FlowMask) {
    for (a, b) in [
        (Field::NwProto, Field::CtNwProto),
        (Field::NwSrc, Field::CtNwSrc),
        (Field::NwDst, Field::CtNwDst),
        (Field::TpSrc, Field::CtTpSrc),
        (Field::TpDst, Field::CtTpDst),
    ] {
        let (fa, fb) = (flow.get(a), flow.get(b));
        flow.set(a, fb);
        flow.set(b, fa);
        let (ma, mb) = (wc.get(a), wc.get(b));
        wc.set(a, mb);
        wc.set(b, ma);
    }
}

/// All ones in the low `bits` bits (`bits` up to 128).
fn wire_ones(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// Where a subfield action's field lives in the flow key: `(key field,
/// shift, width)`, the wire value being `(key >> shift) & ones(width)`.
fn mf_layout(f: MfField) -> (Field, u32, u32) {
    match f {
        MfField::Oxm(f) => f.layout(),
        MfField::VlanTci => (Field::VlanTci, 0, 16),
        MfField::IpTos => (Field::NwTos, 0, 8),
        MfField::InPort16 => (Field::InPort, 0, 16),
    }
}

/// Drop from NORMAL's `actions` the outputs to ports that may not forward
/// (`OFPPC_NO_FWD`, `OFPPC_PORT_DOWN` in `config`), as OVS's
/// `compose_output_action__` skips them. NORMAL's own flooding already
/// leaves out `OFPPC_NO_FLOOD` ports ([`crate::normal`]).
pub fn retain_forwardable(actions: &mut Vec<DpAction>, config: &dyn Fn(u32) -> u32) {
    actions.retain(|a| match a {
        DpAction::Output(p) => config(*p) & (port_config::NO_FWD | port_config::PORT_DOWN) == 0,
        _ => true,
    });
}

#[cfg(test)]
mod action_set_tests {
    use super::*;
    use xennet_openflow::model::{Ct, CtZone};

    fn ct() -> Action {
        Action::Ct(Box::new(Ct {
            flags: 1,
            zone: CtZone::Imm(7),
            recirc_table: 20,
            alg: 0,
            actions: Vec::new(),
        }))
    }

    /// OVN's load-balancer buckets end in `ct(commit,...,nat)`: in an
    /// action set (and so a bucket) `ct` is a final action, below
    /// ct_clear, resubmit, output and group (OVS
    /// `ACTION_SET_FINAL_PRIORITY`).
    #[test]
    fn ct_is_the_lowest_final_action() {
        let load = Action::SetField {
            field: OxmField::Reg(1),
            value: 9,
        };
        assert_eq!(
            action_set_to_list(&[ct(), load.clone()]),
            vec![load.clone(), ct()]
        );
        let out = Action::Output {
            port: 2,
            max_len: 0,
        };
        assert_eq!(action_set_to_list(&[out.clone(), ct()]), vec![out.clone()]);
        assert_eq!(
            action_set_to_list(&[ct(), Action::CtClear]),
            vec![Action::CtClear]
        );
    }
}
