//! Datapath actions and their execution on a batch.
//!
//! An action list is what a megaflow maps to (OVS `OVS_ACTION_ATTR_*`,
//! executed by `odp_execute_actions` / `dp_netdev_execute_actions`). The
//! forwarding thread groups the packets of a batch by action list and runs
//! each group through an [`Executor`], which:
//! - applies VLAN push/pop and field rewrites ([`SetAction`]) to a private
//!   copy of a packet only when an action changes it (copy-on-write;
//!   unmodified packets are sent by reference),
//! - runs meters ([`DpAction::Meter`], token buckets in [`MeterTable`]) and
//!   queues packets for the slow path ([`DpAction::Userspace`]; drained by
//!   [`Executor::drain_userspace`]),
//! - fixes offloads per output port: a port without `csum_partial` gets
//!   finished checksums, a port without `gso` gets segments, and so does
//!   every port for a UDP GSO frame ([`PortFeatures::takes_gso`]),
//!   and every port a datagram the tracker reassembled, cut back into
//!   fragments no larger than those it came in ([`crate::fragment`]),
//! - collects outputs per port, so that [`Executor::flush`] calls each
//!   port's `send` once per batch,
//! - runs `ct` through the shared [`Conntrack`] on a private copy of the
//!   packet (its conntrack metadata and NAT are seen by the actions after
//!   it), and queues packets for another pass on `recirc`
//!   ([`Executor::take_recirculated`]; the forwarding thread runs the
//!   passes, at most [`MAX_RECIRC_DEPTH`] recirculations per packet).

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::buffer::{Csum, CtMeta, OfPort, Packet, PacketBatch};
use crate::conntrack::{Conntrack, CtArgs, NatArgs, NatKind};
use crate::flow::{VLAN_CFI, VLAN_PCP_MASK, VLAN_VID_MASK};
use crate::intern::InternTable;
use crate::meter::{MeterTable, Verdict};
use crate::packet::ethernet::{HEADER_LEN, VLAN_TAG_LEN};
use crate::port::PortFeatures;
use crate::rewrite::{self, SetAction};
use crate::{csum, fragment, gso};

/// One datapath action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DpAction {
    /// Send a copy of the packet, as modified so far, to a port.
    Output(OfPort),
    /// Push a VLAN tag with this TPID and TCI (OVS
    /// `OVS_ACTION_ATTR_PUSH_VLAN`, `struct ovs_action_push_vlan`); the
    /// CFI/DEI bit is not sent (OVS `push_vlan` sends `tci & ~VLAN_CFI`,
    /// and so do we).
    PushVlan {
        /// Tag protocol identifier: 0x8100 (802.1Q) or 0x88a8 (802.1ad
        /// S-tag); OpenFlow `push_vlan` refuses others at flow-mod time.
        tpid: u16,
        /// Tag control information: PCP (3 bits), CFI (1), VID (12).
        tci: u16,
    },
    /// Remove the outermost VLAN tag, if any.
    PopVlan,
    /// Push an MPLS label stack entry after the L2 headers and set the
    /// EtherType to `ethertype` (0x8847 or 0x8848) (OVS
    /// `OVS_ACTION_ATTR_PUSH_MPLS`, `struct ovs_action_push_mpls`).
    PushMpls {
        /// The new EtherType.
        ethertype: u16,
        /// The label stack entry: label (20 bits), TC (3), BOS (1), TTL (8).
        lse: u32,
    },
    /// Remove the outer MPLS label stack entry and set the EtherType to
    /// this one (OVS `OVS_ACTION_ATTR_POP_MPLS`); nothing on other frames.
    PopMpls(u16),
    /// Drop (equivalent to the end of the list; kept for explicitness).
    Drop,
    /// Rewrite a header field (OVS `OVS_ACTION_ATTR_SET`).
    Set(SetAction),
    /// Hand a copy of the packet, as modified so far, to the upcall
    /// handler's [`crate::UpcallHandler::userspace`] (OVS
    /// `OVS_ACTION_ATTR_USERSPACE`).
    Userspace(Userdata),
    /// Run the packet through meter `id` (OVS `OVS_ACTION_ATTR_METER`);
    /// the meter may drop it or remark its DSCP. An unknown meter passes.
    Meter(u32),
    /// Run the packet through the connection tracker (OVS
    /// `OVS_ACTION_ATTR_CT`): sets its conntrack metadata and applies NAT;
    /// later actions see the tracked (and NATed) packet.
    Ct(CtAction),
    /// Forget the packet's conntrack state (OVS `OVS_ACTION_ATTR_CT_CLEAR`).
    CtClear,
    /// Set the packet's `recirc_id` and run it through the datapath again
    /// (OVS `OVS_ACTION_ATTR_RECIRC`): looked up anew with its metadata,
    /// at most [`MAX_RECIRC_DEPTH`] times per packet. Later actions (if
    /// any) still run on the packet as it was.
    Recirc(u32),
    /// OVS `OVS_ACTION_ATTR_CHECK_PKT_LEN` flattened into the list: the
    /// next `n_gt` actions are the branch for a packet longer than `size`
    /// bytes (the whole frame; for a reassembled datagram or a GSO frame
    /// the largest frame it leaves as, as Linux compares), the `n_le` after
    /// them the branch for the
    /// others. Either branch runs on the packet as it is here and its
    /// changes stay in it (as OVS runs a branch on a clone when actions
    /// follow); then the list goes on after both branches. Branches nest
    /// at most [`MAX_CHECK_PKT_LEN_NESTING`] deep.
    CheckPktLen {
        /// Length in bytes the packet is compared with.
        size: u16,
        /// Actions of the "greater" branch.
        n_gt: u16,
        /// Actions of the "less or equal" branch.
        n_le: u16,
    },
}

/// Most recirculations of one packet (OVS 3.1 `MAX_RECIRC_DEPTH` in
/// `lib/dpif-netdev.c`); a packet reaching a [`DpAction::Recirc`] beyond
/// it is dropped and counted (OVS `datapath_drop_recirc_error`).
pub const MAX_RECIRC_DEPTH: u32 = 6;

/// A [`DpAction::Ct`]: the zone and flags inline, everything else (NAT,
/// `ct_mark`/`ct_label` writes) behind a handle into a process-wide table
/// ([`intern_ct_args`]), so that the action stays `Copy` and the common
/// `ct(zone=N)` / `ct(commit,zone=N)` / `ct(nat)` need no lookup per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtAction {
    /// Conntrack zone.
    pub zone: u16,
    /// `commit`: create the connection if it is new.
    pub commit: bool,
    /// `force` (`force_commit`): end a connection committed in the other
    /// direction and start a new one.
    pub force: bool,
    /// Bare `nat` (the NAT of an existing connection, no new binding).
    pub nat: bool,
    /// Handle of the full [`CtArgs`] when they carry more than the fields
    /// above (NAT ranges, mark, label); 0: none.
    pub args: u32,
}

impl CtAction {
    /// The datapath form of `args`: inline when it can be, else interned
    /// (`None` when the table is full, [`MAX_CT_ARGS`]).
    pub fn new(args: &CtArgs) -> Option<CtAction> {
        let bare_nat = args.nat.is_some_and(|n| {
            n.kind.is_none()
                && n.addr_min.is_none()
                && n.port_min == 0
                && !n.persistent
                && !n.random
        });
        let inline = args.mark.is_none()
            && args.label.is_none()
            && args.helper.is_none()
            && (args.nat.is_none() || bare_nat);
        Some(CtAction {
            zone: args.zone,
            commit: args.commit,
            force: args.force,
            nat: args.nat.is_some(),
            args: if inline { 0 } else { intern_ct_args(args)? },
        })
    }

    /// The tracker's arguments.
    pub fn args(&self) -> CtArgs {
        if self.args != 0 {
            if let Some(a) = ct_args(self.args) {
                return a;
            }
        }
        CtArgs {
            zone: self.zone,
            commit: self.commit,
            force: self.force,
            nat: self.nat.then_some(NatArgs {
                kind: None,
                addr_min: None,
                addr_max: None,
                port_min: 0,
                port_max: 0,
                persistent: false,
                random: false,
            }),
            mark: None,
            label: None,
            helper: None,
        }
    }
}

/// Packets dropped at a `ct` action whose interned arguments were swept
/// (its megaflow outlived [`CT_ARGS_GRACE`] without housekeeping seeing
/// it): running it with other arguments (no NAT, no mark) would be wrong.
pub static CT_ARGS_STALE: AtomicU64 = AtomicU64::new(0);

/// Most distinct interned [`CtArgs`] alive at once ([`intern_ct_args`]).
pub const MAX_CT_ARGS: usize = 65_536;

/// How long an interned [`CtArgs`] lives after its last use: the last
/// translation that interned it, or the last housekeeping that found it in
/// an installed megaflow's actions ([`ct_args_housekeeping`], once a
/// second per datapath); see [`crate::intern`].
pub const CT_ARGS_GRACE: Duration = crate::intern::GRACE;

/// A table of interned `ct` arguments (the daemon has one,
/// [`ct_args_table`]): handles with a slot generation, at most
/// [`MAX_CT_ARGS`] entries, each swept once unused for [`CT_ARGS_GRACE`]
/// ([`crate::intern::InternTable`]).
pub type CtArgsTable = InternTable<CtArgs>;

/// The daemon's table of interned `ct` arguments, shared by every
/// datapath (as the connection tracker is).
pub fn ct_args_table() -> &'static CtArgsTable {
    static T: OnceLock<CtArgsTable> = OnceLock::new();
    T.get_or_init(|| InternTable::new(MAX_CT_ARGS, usize::MAX))
}

/// The handle (nonzero) of `args` in the daemon's table of `ct` arguments
/// ([`InternTable::intern`] now); `None` when [`MAX_CT_ARGS`] entries live.
pub fn intern_ct_args(args: &CtArgs) -> Option<u32> {
    ct_args_table().intern(args, 0, Instant::now())
}

/// The arguments behind handle `id` (`None` for 0 or an unknown handle).
pub fn ct_args(id: u32) -> Option<CtArgs> {
    ct_args_table().get(id)
}

/// A datapath's once-a-second part of reclaiming `ct` arguments: mark the
/// handles `ids` its installed megaflows use, then sweep the entries
/// unused for [`CT_ARGS_GRACE`] (every datapath marks at least once a
/// second, so an entry any megaflow uses is never swept).
pub fn ct_args_housekeeping(ids: &[u32], now: Instant) {
    let t = ct_args_table();
    t.mark_used(ids, now);
    t.sweep(now);
}

/// A 128-bit value as OVS `ds_put_hex` prints it: `0x` and the hex digits
/// without leading zeros, `0` for zero.
fn put_hex(f: &mut fmt::Formatter<'_>, v: u128) -> fmt::Result {
    if v == 0 {
        f.write_str("0")
    } else {
        write!(f, "{v:#x}")
    }
}

/// `ct(...)` as OVS `format_odp_conntrack_action` prints it.
impl fmt::Display for CtAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.args();
        let mut parts: Vec<String> = Vec::new();
        if a.force {
            parts.push("force_commit".into());
        } else if a.commit {
            parts.push("commit".into());
        }
        if a.zone != 0 {
            parts.push(format!("zone={}", a.zone));
        }
        if let Some((v, m)) = a.mark {
            parts.push(format!(
                "mark={}/{}",
                CHex(u128::from(v)),
                CHex(u128::from(m))
            ));
        }
        if let Some((v, m)) = a.label {
            let mut s = String::from("label=");
            s.push_str(&CHex(v).to_string());
            if m != u128::MAX {
                s.push('/');
                s.push_str(&CHex(m).to_string());
            }
            parts.push(s);
        }
        if let Some(h) = a.helper {
            parts.push(format!("helper={}", h.name()));
        }
        if let Some(n) = a.nat {
            parts.push(nat_text(&n));
        }
        if parts.is_empty() {
            f.write_str("ct")
        } else {
            write!(f, "ct({})", parts.join(","))
        }
    }
}

/// A number as C's `%#x` (and OVS `ds_put_hex`) print it: `0` for zero,
/// else `0x` and the digits.
#[derive(Debug, Clone, Copy)]
pub struct CHex(pub u128);

impl fmt::Display for CHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        put_hex(f, self.0)
    }
}

/// `nat(...)` as OVS `format_odp_ct_nat` prints it.
fn nat_text(n: &NatArgs) -> String {
    let Some(kind) = n.kind else {
        return "nat".into();
    };
    let mut s = String::from(match kind {
        NatKind::Src => "nat(src",
        NatKind::Dst => "nat(dst",
    });
    if let Some(min) = n.addr_min {
        s.push('=');
        let addr = |a: IpAddr| match a {
            IpAddr::V4(v) => v.to_string(),
            IpAddr::V6(v) if n.port_min != 0 => format!("[{v}]"),
            IpAddr::V6(v) => v.to_string(),
        };
        s.push_str(&addr(min));
        if let Some(max) = n.addr_max.filter(|m| *m != min) {
            s.push('-');
            s.push_str(&addr(max));
        }
        if n.port_min != 0 {
            s.push_str(&format!(":{}", n.port_min));
            if n.port_max != 0 && n.port_max != n.port_min {
                s.push_str(&format!("-{}", n.port_max));
            }
        }
    }
    if n.persistent {
        s.push_str(",persistent");
    }
    if n.random {
        s.push_str(",random");
    }
    s.push(')');
    s
}

/// Most [`DpAction::CheckPktLen`] branches nested in one another;
/// translation keeps within it, and the executor drops a packet whose
/// list nests deeper.
pub const MAX_CHECK_PKT_LEN_NESTING: usize = 8;

/// What a [`DpAction::Userspace`] carries to the handler: the OpenFlow
/// packet-in parameters (OVS `struct user_action_cookie`, controller type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Userdata {
    /// `ofp_packet_in_reason` (1.3): 0 no match, 1 action, 2 invalid TTL.
    pub reason: u8,
    /// Table of the rule that sent it.
    pub table_id: u8,
    /// Cookie of that rule.
    pub cookie: u64,
    /// Bytes of the packet to send (`0xffff` = all).
    pub max_len: u16,
    /// The pipeline's metadata register at that point.
    pub metadata: u64,
    /// What does not fit a `Copy` action (the `controller` action's
    /// userdata and controller id, the registers at that point): a handle
    /// the upcall handler gave out at translation time, 0 for none. The
    /// datapath only carries it.
    pub extra: u32,
}

impl fmt::Display for DpAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpAction::Output(p) => write!(f, "{p}"),
            DpAction::PushVlan { tpid, tci } => {
                // OVS `format_odp_action`: the TPID only when not 0x8100.
                f.write_str("push_vlan(")?;
                if *tpid != 0x8100 {
                    write!(f, "tpid={tpid:#06x},")?;
                }
                write!(
                    f,
                    "vid={},pcp={})",
                    tci & VLAN_VID_MASK,
                    (tci & VLAN_PCP_MASK) >> 13
                )
            }
            DpAction::PopVlan => f.write_str("pop_vlan"),
            DpAction::PushMpls { ethertype, lse } => write!(
                f,
                "push_mpls(label={},tc={},ttl={},bos={},eth_type={ethertype:#x})",
                lse >> 12,
                (lse >> 9) & 7,
                lse & 0xff,
                (lse >> 8) & 1
            ),
            DpAction::PopMpls(ethertype) => write!(f, "pop_mpls(eth_type={ethertype:#x})"),
            DpAction::Drop => f.write_str("drop"),
            DpAction::Set(a) => write!(f, "{a}"),
            DpAction::Userspace(u) => write!(
                f,
                "userspace(pid=0,controller(reason={},table_id={},rule_cookie={:#x},max_len={}))",
                u.reason, u.table_id, u.cookie, u.max_len
            ),
            DpAction::Meter(m) => write!(f, "meter({m})"),
            DpAction::Ct(c) => write!(f, "{c}"),
            DpAction::CtClear => f.write_str("ct_clear"),
            DpAction::Recirc(id) => write!(f, "recirc({})", CHex(u128::from(*id))),
            DpAction::CheckPktLen { size, .. } => write!(f, "check_pkt_len(size={size})"),
        }
    }
}

/// Formats an action list the way `ovs-appctl dpctl/dump-flows` does
/// (`push_vlan(vid=10,pcp=0),2,pop_vlan,3`; `drop` when it outputs nothing).
#[derive(Debug, Clone, Copy)]
pub struct ActionsFmt<'a>(pub &'a [DpAction]);

impl fmt::Display for ActionsFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let acts = self.0;
        if acts.iter().all(|a| matches!(a, DpAction::Drop)) {
            return f.write_str("drop");
        }
        let mut first = true;
        let mut i = 0;
        while i < acts.len() {
            let a = &acts[i];
            i += 1;
            if matches!(a, DpAction::Drop) {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if let DpAction::CheckPktLen { size, n_gt, n_le } = *a {
                // `check_pkt_len(size=N,gt(..),le(..))`, as OVS prints it.
                let gt_end = (i + usize::from(n_gt)).min(acts.len());
                let le_end = (gt_end + usize::from(n_le)).min(acts.len());
                write!(
                    f,
                    "check_pkt_len(size={size},gt({}),le({}))",
                    ActionsFmt(&acts[i..gt_end]),
                    ActionsFmt(&acts[gt_end..le_end])
                )?;
                i = le_end;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

/// Push a VLAN tag (`tpid`, then `tci` without the CFI bit) after the MAC
/// addresses (OVS `eth_push_vlan`). Frames shorter than 12 bytes are left
/// alone.
pub fn push_vlan(pkt: &mut Packet, tpid: u16, tci: u16) -> bool {
    if pkt.len() < 12 {
        return false;
    }
    let front = pkt.push_front(VLAN_TAG_LEN);
    debug_assert_eq!(front.len(), VLAN_TAG_LEN);
    let d = pkt.data_mut();
    d.copy_within(VLAN_TAG_LEN..VLAN_TAG_LEN + 12, 0);
    d[12..14].copy_from_slice(&tpid.to_be_bytes());
    d[14..16].copy_from_slice(&(tci & !VLAN_CFI).to_be_bytes());
    true
}

/// Remove the outermost VLAN tag (TPID 0x8100 or 0x88a8); false if the
/// frame has none.
pub fn pop_vlan(pkt: &mut Packet) -> bool {
    let d = pkt.data();
    if d.len() < HEADER_LEN + VLAN_TAG_LEN {
        return false;
    }
    let tpid = u16::from_be_bytes([d[12], d[13]]);
    if tpid != 0x8100 && tpid != 0x88a8 {
        return false;
    }
    let d = pkt.data_mut();
    d.copy_within(0..12, VLAN_TAG_LEN);
    pkt.pull_front(VLAN_TAG_LEN);
    true
}

/// Offset of the outer MPLS label stack entry of an MPLS frame (after
/// the Ethernet header and any VLAN tags).
pub fn mpls_at(d: &[u8]) -> Option<usize> {
    let (ty, l3) = crate::packet::ethernet::l3_offset(d)?;
    (matches!(u16::from(ty), 0x8847 | 0x8848) && d.len() >= l3 + 4).then_some(l3)
}

/// Push an MPLS label stack entry `lse` after the L2 headers and set the
/// EtherType to `ethertype`; false (and no change) on a frame whose L2
/// headers do not fit.
pub fn push_mpls(pkt: &mut Packet, ethertype: u16, lse: u32) -> bool {
    let Some((_, l3)) = crate::packet::ethernet::l3_offset(pkt.data()) else {
        return false;
    };
    pkt.push_front(4);
    let d = pkt.data_mut();
    d.copy_within(4..4 + l3, 0);
    d[l3 - 2..l3].copy_from_slice(&ethertype.to_be_bytes());
    d[l3..l3 + 4].copy_from_slice(&lse.to_be_bytes());
    true
}

/// Remove the outer MPLS label stack entry and set the EtherType to
/// `ethertype`; false if the frame is not MPLS.
pub fn pop_mpls(pkt: &mut Packet, ethertype: u16) -> bool {
    let Some(l3) = mpls_at(pkt.data()) else {
        return false;
    };
    let d = pkt.data_mut();
    d[l3 - 2..l3].copy_from_slice(&ethertype.to_be_bytes());
    d.copy_within(0..l3, 4);
    pkt.pull_front(4);
    true
}

/// Where an output packet lives: in the input batch or in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Batch(usize),
    Arena(usize),
}

/// The last offload fix-up [`Executor::output`] made: the segments (or
/// checksummed copy) of packet version `src` for ports with the given
/// needs are the arena entries `first..end`. A packet version never
/// changes once output (later modifications copy), so they stay valid
/// until [`Executor::flush`].
#[derive(Debug, Clone, Copy)]
struct Fixed {
    src: Src,
    seg: bool,
    frag: bool,
    csum_partial: bool,
    first: usize,
    end: usize,
}

/// Runs action lists over packets and batches the outputs per port.
/// Reused from batch to batch; its packet arena keeps its buffers, so the
/// steady state allocates only when VLAN or offload copies are needed
/// beyond what earlier batches needed.
#[derive(Debug)]
pub struct Executor {
    arena: Vec<Packet>,
    arena_len: usize,
    /// Queued outputs: port, queue position, packet.
    outputs: Vec<(OfPort, u32, Src)>,
    /// Scratch for [`Executor::flush`] (empty between batches).
    refs: Vec<&'static Packet>,
    userspace: Vec<(Userdata, Src)>,
    segs: Vec<Packet>,
    /// Reused by the next output of the same packet version to a port with
    /// the same offloads (a flood segments or checksums once, not once
    /// per port).
    fixed: Option<Fixed>,
    /// The datapath's meters, run by [`DpAction::Meter`].
    pub meters: MeterTable,
    /// Outputs of GSO frames that could not be segmented (headers that
    /// do not parse, MSS 0, more than [`gso::MAX_SEGMENTS`]) and were
    /// dropped.
    pub gso_drops: u64,
    /// Outputs of a reassembled datagram cut back into fragments
    /// ([`crate::fragment`], at most [`crate::buffer::FragMeta::max_size`]
    /// bytes each).
    pub refragmented: u64,
    /// Outputs of a reassembled datagram dropped because it could not be
    /// cut into fragments ([`crate::fragment::FragError`]).
    pub frag_drops: u64,
    /// The connection tracker [`DpAction::Ct`] runs (shared by every
    /// datapath of the daemon).
    pub conntrack: Conntrack,
    /// Packets queued by [`DpAction::Recirc`] for the next pass
    /// ([`Executor::take_recirculated`]).
    recirc: Vec<Src>,
    /// This thread's copies of interned `ct` arguments with their handle,
    /// by slot (a handle's low 16 bits): a handle's entry never changes,
    /// so the process-wide table (and its lock) is read once per handle,
    /// not once per packet.
    ct_args: Vec<Option<(u32, CtArgs)>>,
    now: Instant,
}

impl Default for Executor {
    fn default() -> Self {
        Executor {
            arena: Vec::new(),
            arena_len: 0,
            outputs: Vec::new(),
            refs: Vec::new(),
            userspace: Vec::new(),
            segs: Vec::new(),
            fixed: None,
            meters: MeterTable::new(),
            gso_drops: 0,
            refragmented: 0,
            frag_drops: 0,
            conntrack: Conntrack::new(),
            recirc: Vec::new(),
            ct_args: Vec::new(),
            now: Instant::now(),
        }
    }
}

impl Executor {
    /// A new executor.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time meters see for the next [`Executor::execute`] calls (set
    /// once per batch, so metering reads no clock per packet).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    fn arena_copy(&mut self, from: &Packet) -> usize {
        if self.arena_len == self.arena.len() {
            self.arena.push(Packet::new());
        }
        let i = self.arena_len;
        self.arena[i].clone_from_packet(from);
        self.arena_len += 1;
        i
    }

    fn arena_push(&mut self, p: Packet) -> usize {
        if self.arena_len == self.arena.len() {
            self.arena.push(p);
        } else {
            self.arena[self.arena_len] = p;
        }
        self.arena_len += 1;
        self.arena_len - 1
    }

    /// Run `actions` on the packets `idxs` of `batch`, queueing outputs.
    /// `features` tells a port's offloads, or `None` if the port does not
    /// exist or is disabled (the output is then dropped).
    pub fn execute(
        &mut self,
        batch: &[Packet],
        idxs: &[usize],
        actions: &[DpAction],
        features: &dyn Fn(OfPort) -> Option<PortFeatures>,
    ) {
        for &i in idxs {
            let Some(orig) = batch.get(i) else { continue };
            // Current version of the packet, and whether it has been
            // handed to an output already (then modifications must copy).
            let mut cur = Src::Batch(i);
            let mut shared = false;
            // Open check_pkt_len branches: (end of the branch, where the
            // list goes on, the packet before the branch).
            let mut branches = [(0usize, 0usize, cur); MAX_CHECK_PKT_LEN_NESTING];
            let mut depth = 0;
            let mut at = 0;
            loop {
                while depth > 0 && at >= branches[depth - 1].0 {
                    depth -= 1;
                    (_, at, cur) = branches[depth];
                    // The saved version may be queued: copy before writing.
                    shared = true;
                }
                let Some(a) = actions.get(at) else { break };
                at += 1;
                match *a {
                    DpAction::CheckPktLen { size, n_gt, n_le } => {
                        if depth == MAX_CHECK_PKT_LEN_NESTING {
                            break;
                        }
                        let (gt, le) = (usize::from(n_gt), usize::from(n_le));
                        let larger = check_len(self.get(batch, cur)) > usize::from(size);
                        let end = if larger { at + gt } else { at + gt + le };
                        branches[depth] = (end, at + gt + le, cur);
                        depth += 1;
                        if !larger {
                            at += gt;
                        }
                        shared = true;
                    }
                    DpAction::Set(ref sa) => {
                        let j = self.writable(orig, &mut cur, &mut shared);
                        rewrite::apply(&mut self.arena[j], sa);
                    }
                    DpAction::Userspace(ud) => {
                        self.userspace.push((ud, cur));
                        shared = true;
                    }
                    DpAction::Meter(id) => {
                        let len = self.get(batch, cur).len();
                        match self.meters.run(id, len, self.now) {
                            Verdict::Pass => {}
                            // Inside a branch only the branch's copy goes.
                            Verdict::Drop if depth > 0 => at = branches[depth - 1].0,
                            Verdict::Drop => break,
                            Verdict::Remark(prec) => {
                                let j = self.writable(orig, &mut cur, &mut shared);
                                rewrite::remark_packet(&mut self.arena[j], prec);
                            }
                        }
                    }
                    DpAction::Output(port) => {
                        if let Some(feat) = features(port) {
                            self.output(batch, cur, port, feat);
                            shared = true;
                        }
                    }
                    DpAction::PushVlan { tpid, tci } => {
                        let j = self.writable(orig, &mut cur, &mut shared);
                        push_vlan(&mut self.arena[j], tpid, tci);
                    }
                    DpAction::PopVlan => {
                        let has_tag = {
                            let d = self.get(batch, cur).data();
                            d.len() >= HEADER_LEN + VLAN_TAG_LEN
                                && matches!(u16::from_be_bytes([d[12], d[13]]), 0x8100 | 0x88a8)
                        };
                        if has_tag {
                            let j = self.writable(orig, &mut cur, &mut shared);
                            pop_vlan(&mut self.arena[j]);
                        }
                    }
                    DpAction::PushMpls { ethertype, lse } => {
                        let j = self.writable(orig, &mut cur, &mut shared);
                        push_mpls(&mut self.arena[j], ethertype, lse);
                    }
                    DpAction::PopMpls(ethertype) => {
                        let is_mpls = mpls_at(self.get(batch, cur).data()).is_some();
                        if is_mpls {
                            let j = self.writable(orig, &mut cur, &mut shared);
                            pop_mpls(&mut self.arena[j], ethertype);
                        }
                    }
                    DpAction::Ct(c) => {
                        let Some(args) = self.ct_args_of(&c) else {
                            CT_ARGS_STALE.fetch_add(1, Ordering::Relaxed);
                            break;
                        };
                        let j = self.writable(orig, &mut cur, &mut shared);
                        // A fragment held for reassembly is stolen, as
                        // OVS's ipf does: no further action (output,
                        // recirculation) sees it, in a branch or not. The
                        // fragment that completes its datagram comes back
                        // as the whole datagram and goes on.
                        if self.conntrack.track(&mut self.arena[j], &args, self.now)
                            == crate::conntrack::Verdict::Held
                        {
                            // Counted in the tracker's `frag_held`.
                            break;
                        }
                    }
                    DpAction::CtClear => {
                        if self.get(batch, cur).md.ct != CtMeta::default() {
                            let j = self.writable(orig, &mut cur, &mut shared);
                            self.arena[j].md.ct = CtMeta::default();
                        }
                    }
                    DpAction::Recirc(id) => {
                        let j = self.writable(orig, &mut cur, &mut shared);
                        self.arena[j].md.recirc_id = id;
                        self.recirc.push(cur);
                        shared = true;
                    }
                    DpAction::Drop => {}
                }
            }
        }
    }

    /// `c`'s tracker arguments, interned ones from this executor's cache
    /// (filled from the process-wide table on first use of a handle);
    /// `None` for a handle that was swept.
    fn ct_args_of(&mut self, c: &CtAction) -> Option<CtArgs> {
        if c.args == 0 {
            return Some(c.args());
        }
        let i = usize::from(c.args as u16);
        if let Some(Some((id, a))) = self.ct_args.get(i) {
            if *id == c.args {
                return Some(*a);
            }
        }
        let a = ct_args(c.args);
        if let Some(a) = a {
            if self.ct_args.len() <= i {
                self.ct_args.resize(i + 1, None);
            }
            self.ct_args[i] = Some((c.args, a));
        }
        a
    }

    fn get<'a>(&'a self, batch: &'a [Packet], s: Src) -> &'a Packet {
        match s {
            Src::Batch(i) => &batch[i],
            Src::Arena(i) => &self.arena[i],
        }
    }

    /// Make the current version a private arena copy, copying if it is the
    /// batch original or already queued for output.
    fn writable(&mut self, orig: &Packet, cur: &mut Src, shared: &mut bool) -> usize {
        let j = match *cur {
            Src::Arena(j) if !*shared => j,
            Src::Arena(j) => {
                let p = self.arena[j].clone();
                self.arena_push(p)
            }
            Src::Batch(_) => self.arena_copy(orig),
        };
        *cur = Src::Arena(j);
        *shared = false;
        j
    }

    fn output(&mut self, batch: &[Packet], cur: Src, port: OfPort, feat: PortFeatures) {
        let p = self.get(batch, cur);
        let needs_seg = p.gso.is_some_and(|g| !feat.takes_gso(g.kind));
        // A datagram the tracker reassembled, larger than the fragments
        // it came in (the exact L3 length is checked by the fragmenter;
        // one that fits after all goes out as one copy).
        let frag = p.md.frag;
        let needs_frag = p.gso.is_none()
            && frag.max_size != 0
            && p.len() > usize::from(frag.max_size) + HEADER_LEN;
        let needs_csum = matches!(p.csum, Csum::Partial { .. }) && !feat.csum_partial;
        if !needs_seg && !needs_csum && !needs_frag {
            self.queue_output(port, cur);
            return;
        }
        if let Some(f) = self.fixed.filter(|f| {
            f.src == cur
                && f.seg == needs_seg
                && f.frag == needs_frag
                && f.csum_partial == feat.csum_partial
        }) {
            if f.frag {
                if f.first == f.end {
                    self.frag_drops += 1;
                } else {
                    self.refragmented += 1;
                }
            }
            for j in f.first..f.end {
                self.queue_output(port, Src::Arena(j));
            }
            return;
        }
        let first = self.arena_len;
        let mut fixed = Fixed {
            src: cur,
            seg: needs_seg,
            frag: needs_frag,
            csum_partial: feat.csum_partial,
            first,
            end: first,
        };
        let mut segs = std::mem::take(&mut self.segs);
        segs.clear();
        if needs_frag {
            let p = self.get(batch, cur);
            let max = usize::from(frag.max_size);
            // The L4 checksum covers the whole datagram: finish it
            // before cutting, whatever the port takes.
            let r = if let Csum::Partial { start, offset } = p.csum {
                let mut whole = p.clone();
                if csum::complete_partial(whole.data_mut(), start, offset) {
                    whole.csum = Csum::Validated;
                }
                fragment::fragment(&whole, max, frag.id, &mut segs)
            } else {
                fragment::fragment(p, max, frag.id, &mut segs)
            };
            if let Err(e) = r {
                self.frag_drops += 1;
                warn_unfragmentable(e, self.frag_drops);
                self.segs = segs;
                self.fixed = Some(fixed);
                return;
            }
            self.refragmented += 1;
        } else if needs_seg {
            let p = self.get(batch, cur);
            if !gso::segment(p, &mut segs) {
                // Not segmentable: drop, as Linux does for a bad GSO frame.
                self.gso_drops += 1;
                self.segs = segs;
                self.fixed = Some(fixed);
                return;
            }
        } else {
            segs.push(self.get(batch, cur).clone());
        }
        for mut s in segs.drain(..) {
            if !feat.csum_partial {
                if let Csum::Partial { start, offset } = s.csum {
                    if csum::complete_partial(s.data_mut(), start, offset) {
                        s.csum = Csum::Validated;
                    }
                }
            }
            let j = self.arena_push(s);
            self.queue_output(port, Src::Arena(j));
        }
        self.segs = segs;
        fixed.end = self.arena_len;
        self.fixed = Some(fixed);
    }

    /// Hand every packet queued by [`DpAction::Userspace`] to `f`. Call
    /// before [`Executor::flush`], which forgets them.
    pub fn drain_userspace(&mut self, batch: &[Packet], f: &mut dyn FnMut(&Userdata, &Packet)) {
        for (ud, s) in &self.userspace {
            let p = match *s {
                Src::Batch(b) => &batch[b],
                Src::Arena(a) => &self.arena[a],
            };
            f(ud, p);
        }
        self.userspace.clear();
    }

    /// Move the packets queued by [`DpAction::Recirc`] into `out` (their
    /// buffers are swapped, not copied), as many as fit, in order, for
    /// the datapath's next pass; the others stay queued. Call after
    /// [`Executor::flush`] (which leaves the arena's packets in place) and
    /// before the next [`Executor::execute`]. Returns how many are left.
    pub fn take_recirculated(&mut self, batch: &[Packet], out: &mut PacketBatch) -> usize {
        let mut moved = 0;
        for s in &self.recirc {
            let Some(slot) = out.push_slot() else {
                break;
            };
            match *s {
                Src::Batch(i) => slot.clone_from_packet(&batch[i]),
                Src::Arena(j) => std::mem::swap(slot, &mut self.arena[j]),
            }
            moved += 1;
        }
        self.recirc.drain(..moved);
        self.recirc.len()
    }

    /// Packets queued for recirculation.
    pub fn recirculating(&self) -> usize {
        self.recirc.len()
    }

    /// Forget the packets queued for recirculation (dropped).
    pub fn discard_recirculated(&mut self) {
        self.recirc.clear();
    }

    /// Number of queued outputs.
    pub fn pending(&self) -> usize {
        self.outputs.len()
    }

    /// Hand every queued output to `send`, once per port (ports in
    /// ascending order, each port's packets in the order they were
    /// queued), then reset for the next batch. Allocates nothing in the
    /// steady state.
    pub fn flush(&mut self, batch: &[Packet], send: &mut dyn FnMut(OfPort, &[&Packet])) {
        // Sorting by (port, queue position) is the stable sort by port
        // without its scratch buffer (a stable sort allocates once a flood
        // queues a few hundred outputs).
        self.outputs.sort_unstable_by_key(|&(p, seq, _)| (p, seq));
        let mut refs = recycle(std::mem::take(&mut self.refs));
        let mut i = 0;
        while i < self.outputs.len() {
            let port = self.outputs[i].0;
            refs.clear();
            while i < self.outputs.len() && self.outputs[i].0 == port {
                let s = self.outputs[i].2;
                refs.push(match s {
                    Src::Batch(b) => &batch[b],
                    Src::Arena(a) => &self.arena[a],
                });
                i += 1;
            }
            send(port, &refs);
        }
        refs.clear();
        self.refs = recycle(refs);
        self.outputs.clear();
        self.userspace.clear();
        self.arena_len = 0;
        self.fixed = None;
    }

    fn queue_output(&mut self, port: OfPort, src: Src) {
        // At most MAX_BURST packets times a bounded action list, far
        // below u32::MAX.
        let seq = self.outputs.len() as u32;
        self.outputs.push((port, seq, src));
    }
}

/// An empty vector of references with the allocation of `v` (whose
/// elements are dropped): lets [`Executor::flush`] keep its scratch vector
/// of `&Packet` from batch to batch although each batch's references live
/// only as long as that batch. `into_iter().map().collect()` between types
/// of the same size and alignment reuses the buffer (std's in-place
/// iteration).
fn recycle<'a, 'b>(mut v: Vec<&'a Packet>) -> Vec<&'b Packet> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b Packet { unreachable!() })
        .collect()
}

/// The length in bytes [`DpAction::CheckPktLen`] compares: that of the
/// largest frame `p` leaves a port as, as Linux `execute_check_pkt_len`
/// measures it. A datagram the tracker reassembled leaves as fragments
/// ([`Executor`] output, [`crate::fragment`]): its L2 header and its
/// largest original fragment (`OVS_CB(skb)->mru + mac_len`); a GSO frame
/// leaves as segments: its largest ([`gso::largest_segment_len`],
/// `skb_gso_validate_mac_len`); any other frame its own length.
fn check_len(p: &Packet) -> usize {
    let len = p.len();
    let frag = usize::from(p.md.frag.max_size);
    if frag != 0 {
        if let Some((_, l3)) = crate::packet::ethernet::l3_offset(p.data()) {
            return len.min(l3 + frag);
        }
    }
    gso::largest_segment_len(p).map_or(len, |n| n.min(len))
}

/// The log line for reassembled datagrams dropped at output because
/// they could not be cut into fragments, at most once a second.
fn warn_unfragmentable(e: fragment::FragError, total: u64) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let now = Instant::now();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.map_or(true, |t| {
        now.duration_since(t) >= std::time::Duration::from_secs(1)
    }) {
        *last = Some(now);
        tracing::warn!(
            total,
            "reassembled datagram dropped at output: cannot fragment it: {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Gso, GsoType};
    use etherparse::PacketBuilder;
    use std::collections::BTreeMap;

    fn frame() -> Packet {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1, 2, 100, 1000)
            .write(&mut v, &[7u8; 3000])
            .unwrap();
        Packet::from_slice(&v)
    }

    fn run(
        batch: &[Packet],
        actions: &[DpAction],
        feat: PortFeatures,
    ) -> BTreeMap<OfPort, Vec<Packet>> {
        let mut ex = Executor::new();
        let idxs: Vec<usize> = (0..batch.len()).collect();
        ex.execute(batch, &idxs, actions, &|p| (p != 99).then_some(feat));
        let mut out: BTreeMap<OfPort, Vec<Packet>> = BTreeMap::new();
        let mut calls = 0;
        ex.flush(batch, &mut |port, pkts| {
            calls += 1;
            assert!(out
                .insert(port, pkts.iter().map(|p| (*p).clone()).collect())
                .is_none());
        });
        assert_eq!(calls, out.len());
        out
    }

    /// A megaflow whose interned `ct` arguments were swept drops its
    /// packet at the `ct` action (counted) instead of tracking it with
    /// other arguments; the actions before it still run.
    #[test]
    fn a_swept_ct_handle_drops_the_packet() {
        let stale = CtAction {
            zone: 1,
            commit: true,
            force: false,
            nat: false,
            args: u32::MAX,
        };
        assert!(ct_args(stale.args).is_none());
        let before = CT_ARGS_STALE.load(Ordering::Relaxed);
        let out = run(
            &[frame()],
            &[
                DpAction::Output(1),
                DpAction::Ct(stale),
                DpAction::Output(2),
            ],
            PortFeatures::default(),
        );
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(CT_ARGS_STALE.load(Ordering::Relaxed) > before);
    }

    /// Distinct `ct` arguments: a mark per `n` (interned, not inline).
    fn ct_marked(n: u32) -> CtArgs {
        CtArgs {
            zone: (n >> 16) as u16,
            commit: true,
            mark: Some((n, u32::MAX)),
            ..CtArgs::default()
        }
    }

    /// A controller churning through four times [`MAX_CT_ARGS`] distinct
    /// `ct` arguments, a sixteenth of the cap per second, keeps getting
    /// handles: entries no megaflow uses go after [`CT_ARGS_GRACE`], while
    /// the one a megaflow keeps using (marked every second, as the
    /// datapath's housekeeping does) keeps its handle and arguments. A
    /// swept handle finds nothing, even once its slot is reused.
    #[test]
    fn ct_args_table_reclaims_churned_entries() {
        let t = InternTable::new(MAX_CT_ARGS, usize::MAX);
        let mut now = Instant::now();
        let kept_args = ct_marked(u32::MAX);
        let kept = t.intern(&kept_args, 0, now).unwrap();
        let first = t.intern(&ct_marked(0), 0, now).unwrap();
        let per_second = MAX_CT_ARGS / 16;
        let mut n = 1u32;
        let mut swept = 0;
        for _ in 0..64 {
            for _ in 0..per_second {
                let id = t
                    .intern(&ct_marked(n), 0, now)
                    .expect("table full while churning");
                assert_eq!(t.get(id), Some(ct_marked(n)));
                n += 1;
            }
            now += Duration::from_secs(1);
            t.mark_used(&[kept], now);
            swept += t.sweep(now);
            assert!(t.len() <= MAX_CT_ARGS);
        }
        assert!(n as usize > 3 * MAX_CT_ARGS);
        assert!(swept > 2 * MAX_CT_ARGS, "swept {swept}");
        assert_eq!(t.get(kept), Some(kept_args));
        assert_eq!(t.intern(&kept_args, 0, now), Some(kept));
        assert_eq!(t.get(first), None, "a swept handle finds nothing");
    }

    /// A swept entry's slot is reused under a new handle: the old handle
    /// finds nothing, not the new arguments.
    #[test]
    fn ct_args_reused_slot_gets_a_new_handle() {
        let t = InternTable::new(MAX_CT_ARGS, usize::MAX);
        let now = Instant::now();
        let a = t.intern(&ct_marked(1), 0, now).unwrap();
        assert_eq!(t.sweep(now + CT_ARGS_GRACE + Duration::from_secs(1)), 1);
        let b = t.intern(&ct_marked(2), 0, now).unwrap();
        assert_eq!(a as u16, b as u16, "the one slot is reused");
        assert_ne!(a, b);
        assert_eq!(t.get(a), None);
        assert_eq!(t.get(b), Some(ct_marked(2)));
    }

    /// Within the grace period nothing goes: a table of [`MAX_CT_ARGS`]
    /// fresh entries refuses a new one, and takes it once they age out.
    #[test]
    fn ct_args_table_full_until_entries_age_out() {
        let t = InternTable::new(MAX_CT_ARGS, usize::MAX);
        let now = Instant::now();
        for n in 0..MAX_CT_ARGS as u32 {
            assert!(t.intern(&ct_marked(n), 0, now).is_some());
        }
        let extra = ct_marked(u32::MAX);
        assert_eq!(t.intern(&extra, 0, now), None);
        assert_eq!(t.sweep(now + CT_ARGS_GRACE), 0);
        assert_eq!(t.intern(&extra, 0, now), None);
        assert_eq!(
            t.sweep(now + CT_ARGS_GRACE + Duration::from_millis(1)),
            MAX_CT_ARGS
        );
        assert!(t.is_empty());
        let id = t.intern(&extra, 0, now + CT_ARGS_GRACE).unwrap();
        assert_eq!(t.get(id), Some(extra));
        assert_eq!(t.get(0), None);
    }

    /// Fragments in, `ct(commit,nat(src=...))`, recirculation, output to
    /// two ports: each port gets fragments no larger than those that came
    /// in, whose reassembly is the NATed datagram with a valid UDP
    /// checksum.
    #[test]
    fn reassembled_datagrams_leave_as_fragments_after_nat_and_recirc() {
        use crate::conntrack::ipf::{Ipf, Outcome};
        use crate::conntrack::{cs, CtArgs, NatArgs, NatKind};
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5000, 53)
            .write(&mut v, &[7u8; 4000])
            .unwrap();
        // etherparse sets DF; a fragmenting sender has it clear.
        v[20] &= !0x40;
        v[24] = 0;
        v[25] = 0;
        let c = csum::checksum(&v[14..34]);
        v[24..26].copy_from_slice(&c.to_be_bytes());
        let payload = v[42..].to_vec();
        let mut batch = Vec::new();
        crate::fragment::fragment(&Packet::from_slice(&v), 1500, 0, &mut batch).unwrap();
        assert_eq!(batch.len(), 3);
        let ct = CtAction::new(&CtArgs {
            zone: 9,
            commit: true,
            nat: Some(NatArgs {
                kind: Some(NatKind::Src),
                addr_min: Some("10.9.9.9".parse().unwrap()),
                addr_max: None,
                port_min: 0,
                port_max: 0,
                persistent: false,
                random: false,
            }),
            ..CtArgs::default()
        })
        .unwrap();
        let mut ex = Executor::new();
        let feat = |_| Some(PortFeatures::default());
        ex.execute(
            &batch,
            &[0, 1, 2],
            &[DpAction::Ct(ct), DpAction::Recirc(7)],
            &feat,
        );
        ex.flush(&batch, &mut |_, _| panic!("no output yet"));
        let mut next = PacketBatch::new();
        assert_eq!(ex.take_recirculated(&batch, &mut next), 0);
        // Two fragments held, the third completed the datagram.
        assert_eq!(next.len(), 1);
        let whole = &next.packets()[0];
        assert_eq!(whole.md.frag.max_size, 1500);
        assert_eq!(whole.md.ct.state & cs::SNAT, cs::SNAT);
        let second: Vec<Packet> = next.packets().to_vec();
        ex.execute(
            &second,
            &[0],
            &[DpAction::Output(1), DpAction::Output(2)],
            &feat,
        );
        let mut out: BTreeMap<OfPort, Vec<Packet>> = BTreeMap::new();
        ex.flush(&second, &mut |port, pkts| {
            out.insert(port, pkts.iter().map(|p| (*p).clone()).collect());
        });
        assert_eq!(ex.refragmented, 2);
        assert_eq!(ex.frag_drops, 0);
        for port in [1, 2] {
            let frags = &out[&port];
            assert_eq!(frags.len(), 3, "port {port}");
            let mut ipf = Ipf::default();
            let mut done = None;
            for f in frags {
                assert!(f.len() <= 14 + 1500);
                assert_eq!(&f.data()[26..30], &[10, 9, 9, 9], "NATed source");
                if let Outcome::Complete { frame, .. } = ipf.process(f.data(), 0, 0) {
                    done = Some(frame);
                }
            }
            let d = done.expect("fragments reassemble");
            assert!(csum::verify_l4(&d), "UDP checksum after NAT");
            assert_eq!(&d[42..], &payload[..]);
        }
    }

    #[test]
    fn flush_orders_per_port_and_keeps_its_scratch() {
        let batch: Vec<Packet> = (0..4u8).map(|i| Packet::from_slice(&[i; 60])).collect();
        let feat = PortFeatures {
            csum_partial: true,
            gso: true,
        };
        let mut ex = Executor::new();
        let mut cap = None;
        for _ in 0..2 {
            // Two groups interleave their outputs to ports 3 and 1.
            ex.execute(
                &batch,
                &[0, 2],
                &[DpAction::Output(3), DpAction::Output(1)],
                &|_| Some(feat),
            );
            ex.execute(
                &batch,
                &[1, 3],
                &[DpAction::Output(1), DpAction::Output(3)],
                &|_| Some(feat),
            );
            let mut got = Vec::new();
            ex.flush(&batch, &mut |port, pkts| {
                got.push((port, pkts.iter().map(|p| p.data()[0]).collect::<Vec<_>>()));
            });
            assert_eq!(got, [(1, vec![0, 2, 1, 3]), (3, vec![0, 2, 1, 3])]);
            assert!(ex.refs.is_empty());
            assert!(ex.refs.capacity() >= 4, "scratch kept");
            assert_eq!(*cap.get_or_insert(ex.refs.capacity()), ex.refs.capacity());
        }
    }

    #[test]
    fn display() {
        let a = [
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 0x100a,
            },
            DpAction::Output(2),
            DpAction::PopVlan,
            DpAction::Output(3),
        ];
        assert_eq!(
            ActionsFmt(&a).to_string(),
            "push_vlan(vid=10,pcp=0),2,pop_vlan,3"
        );
        assert_eq!(ActionsFmt(&[]).to_string(), "drop");
        assert_eq!(ActionsFmt(&[DpAction::Drop]).to_string(), "drop");
    }

    /// `ct`, `ct_clear` and `recirc` as OVS `format_odp_action` prints
    /// them (expected texts from OVS's tests/odp.at and
    /// tests/ofproto-dpif.at).
    #[test]
    fn ct_and_recirc_display_as_ovs() {
        use crate::conntrack::{CtArgs, NatArgs, NatKind};
        let ct = |a: CtArgs| DpAction::Ct(CtAction::new(&a).unwrap()).to_string();
        assert_eq!(ct(CtArgs::default()), "ct");
        assert_eq!(
            ct(CtArgs {
                commit: true,
                zone: 10,
                ..CtArgs::default()
            }),
            "ct(commit,zone=10)"
        );
        assert_eq!(
            ct(CtArgs {
                commit: true,
                force: true,
                mark: Some((1, 0xff)),
                label: Some((0x10, u128::MAX)),
                ..CtArgs::default()
            }),
            "ct(force_commit,mark=0x1/0xff,label=0x10)"
        );
        let nat = NatArgs {
            kind: Some(NatKind::Src),
            addr_min: Some("10.0.0.1".parse().unwrap()),
            addr_max: Some("10.0.0.9".parse().unwrap()),
            port_min: 1024,
            port_max: 2048,
            persistent: true,
            random: true,
        };
        let with_nat = CtAction::new(&CtArgs {
            commit: true,
            nat: Some(nat),
            ..CtArgs::default()
        })
        .unwrap();
        assert_ne!(with_nat.args, 0, "interned");
        assert_eq!(
            DpAction::Ct(with_nat).to_string(),
            "ct(commit,nat(src=10.0.0.1-10.0.0.9:1024-2048,persistent,random))"
        );
        let bare = CtAction::new(&CtArgs {
            zone: 3,
            nat: Some(NatArgs {
                kind: None,
                addr_min: None,
                addr_max: None,
                port_min: 0,
                port_max: 0,
                persistent: false,
                random: false,
            }),
            ..CtArgs::default()
        })
        .unwrap();
        assert_eq!(bare.args, 0, "bare nat is inline");
        assert_eq!(DpAction::Ct(bare).to_string(), "ct(zone=3,nat)");
        assert_eq!(bare.args().nat.map(|n| n.kind), Some(None));
        assert_eq!(DpAction::CtClear.to_string(), "ct_clear");
        assert_eq!(DpAction::Recirc(5).to_string(), "recirc(0x5)");
        assert!(ct_args(0).is_none() && ct_args(u32::MAX).is_none());
    }

    /// `ct_clear` forgets the tracker's state; `recirc` hands over the
    /// packet as modified so far, with its id and conntrack state.
    #[test]
    fn ct_clear_and_recirc_take_the_packet_as_modified() {
        use crate::conntrack::{cs, CtArgs};
        // A UDP datagram: the first packet of a connection for any
        // tracker (a TCP segment without SYN would be +inv).
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut v, &[7u8; 100])
            .unwrap();
        let batch = vec![Packet::from_slice(&v)];
        let mut ex = Executor::new();
        let ct = CtAction::new(&CtArgs {
            zone: 4,
            ..CtArgs::default()
        })
        .unwrap();
        ex.execute(
            &batch,
            &[0],
            &[
                DpAction::Ct(ct),
                DpAction::Recirc(2),
                DpAction::CtClear,
                DpAction::Recirc(3),
                DpAction::Output(1),
            ],
            &|_| Some(PortFeatures::default()),
        );
        assert_eq!(ex.recirculating(), 2);
        let mut sent = Vec::new();
        ex.flush(&batch, &mut |_, pkts| {
            sent.extend(pkts.iter().map(|p| p.md));
        });
        let mut next = PacketBatch::new();
        assert_eq!(ex.take_recirculated(&batch, &mut next), 0);
        let md: Vec<_> = next.packets().iter().map(|p| p.md).collect();
        assert_eq!(md[0].recirc_id, 2);
        assert_eq!(md[0].ct.state, cs::TRK | cs::NEW);
        assert_eq!(md[0].ct.zone, 4);
        assert_eq!(md[1].recirc_id, 3);
        assert_eq!(md[1].ct, CtMeta::default());
        assert_eq!(next.packets()[0].data(), batch[0].data());
        // The output after them is the packet as it was at that point.
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].recirc_id, 3);
        assert_eq!(ex.recirculating(), 0);
    }

    #[test]
    fn vlan_variants_per_output() {
        let p = frame();
        let batch = vec![p.clone(), p.clone()];
        let full = PortFeatures {
            csum_partial: true,
            gso: true,
        };
        let out = run(
            &batch,
            &[
                DpAction::Output(1),
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 0x2005,
                },
                DpAction::Output(2),
                DpAction::PopVlan,
                DpAction::Output(3),
                DpAction::Output(99),
            ],
            full,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[&1].len(), 2);
        assert_eq!(out[&1][0].data(), p.data());
        let t = out[&2][1].data();
        assert_eq!(t.len(), p.len() + 4);
        assert_eq!(&t[12..16], &[0x81, 0x00, 0x20, 0x05]);
        assert_eq!(&t[16..], &p.data()[12..]);
        assert_eq!(&t[..12], &p.data()[..12]);
        assert_eq!(out[&3][0].data(), p.data());
    }

    /// [`frame`] with its TCP checksum left partial and GSO TCPv4 at MSS
    /// 1400, as a guest hands it over.
    fn tso_frame() -> Packet {
        let mut p = frame();
        let (start, offset) = csum::prepare_partial(p.data_mut()).unwrap();
        p.csum = Csum::Partial { start, offset };
        p.gso = Some(Gso {
            kind: GsoType::TcpV4,
            mss: 1400,
        });
        p
    }

    #[test]
    fn offloads_fixed_for_ports_without_them() {
        let p = tso_frame();
        let batch = vec![p];
        let out = run(&batch, &[DpAction::Output(1)], PortFeatures::default());
        assert_eq!(out[&1].len(), 3);
        for s in &out[&1] {
            assert!(csum::verify_l4(s.data()));
            assert_eq!(s.gso, None);
        }
        let out = run(
            &batch,
            &[DpAction::Output(1)],
            PortFeatures {
                csum_partial: true,
                gso: false,
            },
        );
        assert_eq!(out[&1].len(), 3);
        assert!(matches!(out[&1][0].csum, Csum::Partial { .. }));
        let out = run(
            &batch,
            &[DpAction::Output(1)],
            PortFeatures {
                csum_partial: true,
                gso: true,
            },
        );
        assert_eq!(out[&1].len(), 1);
        assert!(out[&1][0].gso.is_some());
    }

    /// A UDP GSO frame (checksum partial, 3000 bytes at 1400) is cut into
    /// datagrams for every port, including those that take TCP GSO; the
    /// checksums are left partial only for ports that take that.
    #[test]
    fn udp_gso_is_segmented_for_every_port() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([1; 16], [2; 16], 64)
            .udp(1, 2)
            .write(&mut v, &[7u8; 3000])
            .unwrap();
        let mut p = Packet::from_slice(&v);
        let (start, offset) = csum::prepare_partial(p.data_mut()).unwrap();
        p.csum = Csum::Partial { start, offset };
        p.gso = Some(Gso {
            kind: GsoType::UdpL4,
            mss: 1400,
        });
        let batch = vec![p];
        for (csum_partial, gso) in [(false, false), (true, true), (false, true)] {
            let feat = PortFeatures { csum_partial, gso };
            assert!(!feat.takes_gso(GsoType::UdpL4));
            let out = run(&batch, &[DpAction::Output(1)], feat);
            let lens: Vec<usize> = out[&1].iter().map(Packet::len).collect();
            assert_eq!(lens, [62 + 1400, 62 + 1400, 62 + 200], "{feat:?}");
            for s in &out[&1] {
                assert_eq!(s.gso, None);
                assert_eq!(matches!(s.csum, Csum::Partial { .. }), csum_partial);
                if !csum_partial {
                    assert!(csum::verify_l4(s.data()));
                }
            }
        }
    }

    /// A GSO frame that cannot be segmented (here: an MSS that would give
    /// more than MAX_SEGMENTS segments) is dropped and counted.
    #[test]
    fn unsegmentable_gso_is_dropped_and_counted() {
        let mut p = tso_frame();
        p.gso = p.gso.map(|g| Gso { mss: 1, ..g });
        let mut ex = Executor::new();
        let feat = |_: OfPort| Some(PortFeatures::default());
        ex.execute(
            std::slice::from_ref(&p),
            &[0],
            &[DpAction::Output(1)],
            &feat,
        );
        assert_eq!(ex.gso_drops, 1);
    }

    #[test]
    fn a_flood_segments_and_checksums_once() {
        let p = tso_frame();
        let mut plain = tso_frame();
        plain.gso = None;
        let none = PortFeatures::default();
        let csum_only = PortFeatures {
            csum_partial: true,
            gso: false,
        };
        let feat = |port: OfPort| Some(if port == 4 { csum_only } else { none });
        let flood = [
            DpAction::Output(1),
            DpAction::Output(2),
            DpAction::Output(3),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 7,
            },
            DpAction::Output(5),
        ];
        let mut ex = Executor::new();
        ex.execute(std::slice::from_ref(&p), &[0], &flood, &feat);
        // 3 segments shared by ports 1-3, a tagged copy, its 3 segments.
        assert_eq!(ex.arena_len, 3 + 1 + 3);
        ex.execute(
            std::slice::from_ref(&plain),
            &[0],
            &[DpAction::Output(1), DpAction::Output(2)],
            &feat,
        );
        assert_eq!(ex.arena_len, 7 + 1, "one checksummed copy for both");
        let mut out: BTreeMap<OfPort, Vec<Packet>> = BTreeMap::new();
        ex.flush(std::slice::from_ref(&p), &mut |port, pkts| {
            out.insert(port, pkts.iter().map(|p| (*p).clone()).collect());
        });
        for port in [1, 2, 3, 5] {
            // Ports 1 and 2 also got the second packet.
            let want = if port <= 2 { 4 } else { 3 };
            assert_eq!(out[&port].len(), want, "port {port}");
            for s in &out[&port] {
                assert!(csum::verify_l4(s.data()));
                assert_eq!(s.gso, None);
            }
        }
        assert_eq!(
            out[&1][..3].iter().map(Packet::data).collect::<Vec<_>>(),
            out[&3][..3].iter().map(Packet::data).collect::<Vec<_>>()
        );
        // A port that takes partial checksums gets its own (unchecksummed)
        // segments, not the memo of the others.
        let mut ex = Executor::new();
        ex.execute(
            std::slice::from_ref(&p),
            &[0],
            &[DpAction::Output(1), DpAction::Output(4)],
            &feat,
        );
        let mut out: BTreeMap<OfPort, Vec<Packet>> = BTreeMap::new();
        ex.flush(std::slice::from_ref(&p), &mut |port, pkts| {
            out.insert(port, pkts.iter().map(|p| (*p).clone()).collect());
        });
        assert_eq!(out[&4].len(), 3);
        assert!(matches!(out[&4][0].csum, Csum::Partial { .. }));
        assert_eq!(out[&1][0].csum, Csum::Validated);
    }

    /// `check_pkt_len(size=100,gt(push_vlan(vid=5),2),le(3)),4`: a long
    /// frame takes the first branch, a short one the second; the action
    /// after both sees the frame as it was (the branch's push stays in
    /// the branch); nested branches and the printed form are OVS's.
    #[test]
    fn check_pkt_len_branches() {
        let feat = PortFeatures {
            csum_partial: true,
            gso: true,
        };
        let acts = [
            DpAction::CheckPktLen {
                size: 100,
                n_gt: 2,
                n_le: 1,
            },
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 0x1000 | 5,
            },
            DpAction::Output(2),
            DpAction::Output(3),
            DpAction::Output(4),
        ];
        assert_eq!(
            ActionsFmt(&acts).to_string(),
            "check_pkt_len(size=100,gt(push_vlan(vid=5,pcp=0),2),le(3)),4"
        );
        let long = Packet::from_slice(&[7u8; 101]);
        let short = Packet::from_slice(&[7u8; 100]);
        let out = run(&[long.clone(), short.clone()], &acts, feat);
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(out[&2].len(), 1);
        assert_eq!(out[&2][0].len(), 105);
        assert_eq!(out[&3].len(), 1);
        assert_eq!(out[&3][0].data(), short.data());
        assert_eq!(out[&4].len(), 2);
        assert_eq!(out[&4][0].data(), long.data());
        assert_eq!(out[&4][1].data(), short.data());
        // Nested: gt(check_pkt_len(size=200,gt(2),le(3))),le(drop).
        let nested = [
            DpAction::CheckPktLen {
                size: 100,
                n_gt: 3,
                n_le: 0,
            },
            DpAction::CheckPktLen {
                size: 200,
                n_gt: 1,
                n_le: 1,
            },
            DpAction::Output(2),
            DpAction::Output(3),
        ];
        assert_eq!(
            ActionsFmt(&nested).to_string(),
            "check_pkt_len(size=100,gt(check_pkt_len(size=200,gt(2),le(3))),le(drop))"
        );
        let huge = Packet::from_slice(&[7u8; 300]);
        let out = run(&[huge, long, short], &nested, feat);
        assert_eq!(out[&2].len(), 1);
        assert_eq!(out[&2][0].len(), 300);
        assert_eq!(out[&3].len(), 1);
        assert_eq!(out[&3][0].len(), 101);
        // Branch lengths beyond the list end cannot overrun it.
        let bad = [DpAction::CheckPktLen {
            size: 0,
            n_gt: 9,
            n_le: 9,
        }];
        assert!(run(&[Packet::from_slice(&[1u8; 60])], &bad, feat).is_empty());
    }

    /// `check_pkt_len` compares the frames a packet leaves as, as Linux
    /// `execute_check_pkt_len` does: a datagram the tracker reassembled
    /// from 1500-byte fragments counts as its largest fragment with the
    /// Ethernet header (`mru + mac_len`), a TSO frame as its largest
    /// segment (`skb_gso_validate_mac_len`), not as the 3054-byte whole
    /// (an OVN MTU check would answer them with "fragmentation needed").
    #[test]
    fn check_pkt_len_compares_the_frames_that_leave() {
        let feat = PortFeatures {
            csum_partial: true,
            gso: true,
        };
        let acts = |size| {
            [
                DpAction::CheckPktLen {
                    size,
                    n_gt: 1,
                    n_le: 1,
                },
                DpAction::Output(2),
                DpAction::Output(3),
            ]
        };
        let branch = |p: &Packet, size| {
            let out = run(std::slice::from_ref(p), &acts(size), feat);
            out.keys().copied().collect::<Vec<_>>()
        };
        // Reassembled (Don't Fragment clear, as a fragmenting sender has
        // it), so that output cuts it into fragments.
        let mut v = frame().data().to_vec();
        v[20] &= !0x40;
        v[24..26].fill(0);
        let c = csum::checksum(&v[14..34]);
        v[24..26].copy_from_slice(&c.to_be_bytes());
        let mut reassembled = Packet::from_slice(&v);
        reassembled.md.frag.max_size = 1500;
        assert_eq!(branch(&reassembled, 1514), vec![3]);
        assert_eq!(branch(&reassembled, 1513), vec![2]);
        // Segments of 14 + 20 + 20 + 1400 bytes.
        let tso = tso_frame();
        assert_eq!(branch(&tso, 1454), vec![3]);
        assert_eq!(branch(&tso, 1453), vec![2]);
        // Neither: the whole frame.
        assert_eq!(branch(&frame(), 3053), vec![2]);
        assert_eq!(branch(&frame(), 3054), vec![3]);
    }

    #[test]
    fn push_vlan_uses_the_requested_tpid() {
        // Issue 15 item 9: an 802.1ad S-tag is pushed as 0x88a8.
        let mut p = frame();
        assert!(push_vlan(&mut p, 0x88a8, 0x1000 | 20));
        assert_eq!(&p.data()[12..16], &[0x88, 0xa8, 0x00, 20]);
        assert_eq!(
            DpAction::PushVlan {
                tpid: 0x88a8,
                tci: 0x1000 | 20
            }
            .to_string(),
            "push_vlan(tpid=0x88a8,vid=20,pcp=0)"
        );
        assert!(pop_vlan(&mut p));
        assert_eq!(p.data(), frame().data());
    }

    #[test]
    fn push_and_pop_mpls_under_a_vlan_tag() {
        let mut p = frame();
        assert!(push_vlan(&mut p, 0x8100, 0x1000 | 7));
        let tagged = p.data().to_vec();
        let lse = (17 << 12) | (3 << 9) | (1 << 8) | 64;
        assert!(push_mpls(&mut p, 0x8847, lse));
        let d = p.data();
        assert_eq!(&d[12..18], &[0x81, 0x00, 0x00, 7, 0x88, 0x47]);
        assert_eq!(&d[18..22], &lse.to_be_bytes());
        assert_eq!(&d[22..], &tagged[18..]);
        assert_eq!(mpls_at(d), Some(18));
        assert!(pop_mpls(&mut p, 0x0800));
        assert_eq!(p.data(), &tagged[..]);
        assert!(!pop_mpls(&mut p, 0x0800));
        assert_eq!(
            DpAction::PushMpls {
                ethertype: 0x8847,
                lse
            }
            .to_string(),
            "push_mpls(label=17,tc=3,ttl=64,bos=1,eth_type=0x8847)"
        );
    }

    #[test]
    fn pop_on_untagged_and_push_on_runt() {
        let mut p = frame();
        assert!(!pop_vlan(&mut p));
        assert!(push_vlan(&mut p, 0x8100, 5));
        assert!(pop_vlan(&mut p));
        assert_eq!(p.data(), frame().data());
        let mut r = Packet::from_slice(&[1, 2, 3]);
        assert!(!push_vlan(&mut r, 0x8100, 5));
    }
}
