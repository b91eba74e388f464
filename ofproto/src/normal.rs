//! The NORMAL action for a standalone bridge: MAC learning and flooding
//! (OVS `ofproto/ofproto-dpif-xlate.c` `xlate_normal`, `lib/mac-learning.c`).
//!
//! # Behaviour
//!
//! - Frames with a multicast source (invalid) or to an IEEE 802.1D reserved
//!   address (`01:80:c2:00:00:0x`, STP/LACP/LLDP; OVS drops them unless
//!   `other_config:forward-bpdu` is set) are dropped.
//! - The source is learned on the input port, keyed by `(VLAN, MAC)`.
//! - A unicast destination learned on another port goes there; one learned
//!   on the input port is dropped (no hair-pinning); an unknown one, and
//!   any multicast or broadcast, is flooded to every enabled port but the
//!   input port and ports with OpenFlow's `OFPPC_NO_FLOOD`
//!   ([`FdbHandle::set_no_flood`], OVS `xbundle->floodable`).
//!
//! VLANs follow the OVS `Port` columns `tag`, `trunks` and `vlan_mode`
//! (ovs-vswitchd.conf.db(5)) as `xlate_normal` applies them
//! (`ofproto-dpif-xlate.c`: `input_vid_is_valid`, `xvlan_input_translate`,
//! `xvlan_output_translate`, `xlate_normal_flood`); see [`PortVlan`]:
//!
//! - The frame's VID is its (outer) tag's VID, 0 when untagged; an 802.1p
//!   priority-tagged frame (VID 0) counts as untagged.
//! - Stacked tags (two in the key, as OVS with `vlan-limit` 2): a frame
//!   with a VLAN EtherType but no tag in the key is a partial VLAN tag and
//!   dropped ([`PARTIAL_VLAN_DROPS`], a log line at most once a second);
//!   an access port replaces the whole stack by its VLAN on input and
//!   takes in floods no frame whose inner tag has a nonzero VID (OVS
//!   `xbundle_includes_vlan`: no VLAN leak); outputs keep the inner tag
//!   unless the port is an access port, and a tag with VID 0 and PCP 0 is
//!   not sent (OVS `xvlan_put`). Retagged frames keep the TPIDs of the
//!   packet's tags when the caller gives them ([`Normal::translate_tpids`]).
//! - Input: an access port drops a frame with a nonzero VID and puts the
//!   rest on its `tag`; a trunk drops a VID it does not carry (`trunks`,
//!   empty = every VLAN) and keeps the frame's VID; a `native-*` port puts
//!   VID 0 frames on its `tag` (native VLAN) and treats others as a trunk.
//! - Learning and lookup are keyed by `(VLAN, MAC)`; floods go only to the
//!   ports that carry the VLAN; a MAC learned on a port that no longer
//!   carries the VLAN is not used.
//! - Output: untagged on access ports and, for the native VLAN, on
//!   `native-untagged` ports; tagged with the VLAN on trunks and
//!   `native-tagged` ports (VLAN 0 leaves a trunk untagged unless the frame
//!   had a nonzero PCP, as OVS `xvlan_put`). The PCP of the input tag is
//!   kept when retagging. Outputs are grouped by tag state, those that
//!   need the frame as it arrived first, so that each `push_vlan` or
//!   `pop_vlan` is emitted at most once: a VLAN-10 broadcast from a trunk
//!   to a trunk (1), an access port (3) and a trunk (4) is
//!   `1,4,pop_vlan,3` (OVS emits per port in bundle order,
//!   `1,pop_vlan,3,push_vlan(vid=10,pcp=0),4`; the packets sent are the
//!   same).
//! - A port without settings is OVS's default port: a trunk of every VLAN.
//!   A port whose settings are invalid can be blocked
//!   ([`FdbHandle::block_port`]): it then carries no VLAN at all.
//!
//! # Megaflows
//!
//! Translation reads exactly `in_port`, `dl_src`, `dl_dst`, `vlan_tci`,
//! `vlan_tci1` and, for an untagged frame, `dl_type` (the partial-tag
//! check), and the upcall mask says so and nothing more: all L3/L4 traffic
//! between two MACs in one VLAN shares one megaflow. `vlan_tci` is exact (tag
//! presence, VID and PCP), so untagged and tagged traffic never share a
//! megaflow (OVS issue #356) and a retagged frame keeps its PCP.
//!
//! # Revalidation
//!
//! Each translation carries the revalidation tags ([`Tags`], one bit per
//! MAC address) of the MACs it learned or looked up: its source and, for
//! a unicast destination, its destination (known or not: a flood to an
//! unknown MAC must stop once it is learned). A new MAC, a moved MAC, an
//! expiry or an eviction publishes that MAC's tag
//! ([`UpcallHandler::take_dirty_tags`]), and the datapath removes only the
//! megaflows carrying it; traffic between other MACs keeps its megaflows.
//! Changes that touch many entries at once bump [`Normal::generation`]
//! instead, which flushes every megaflow: a flush, a port leaving, a
//! port's VLAN settings (which also forget the MACs learned on that port,
//! as OVS `bundle_set` flushes on a VLAN change). Refreshing a MAC on the
//! same port changes nothing.
//!
//! # Aging
//!
//! Entries expire [`DEFAULT_AGING`] after they were last learned (OVS
//! `MAC_ENTRY_DEFAULT_IDLE_TIME`, 300 s). Learning happens on upcalls, and
//! the datapath reports once a second which megaflows were hit
//! ([`UpcallHandler::megaflows_used`]): their source MACs, still on the
//! same port, count as learned again ([`Normal::refresh`], as OVS's
//! revalidators feed megaflow statistics back into MAC learning), so a
//! MAC whose traffic all hits megaflows does not age out. The table
//! holds at most [`DEFAULT_MAX_ENTRIES`] (OVS `MAC_DEFAULT_MAX`, 8192);
//! when full the least recently learned entry is evicted.
//!
//! # Threads
//!
//! The table sits behind an `Arc<Mutex<..>>` shared with [`FdbHandle`]. The
//! forwarding thread takes the lock only in upcalls and housekeeping, never
//! per packet; the control plane takes it for `fdb/show`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xennet_datapath::buffer::OFPP_LOCAL;
use xennet_datapath::flow::{Field, VLAN_CFI, VLAN_PCP_MASK, VLAN_VID_MASK};
use xennet_datapath::packet::MacAddr;
use xennet_datapath::{DpAction, FlowKey, FlowMask, OfPort, Packet, Tags, Upcall, UpcallHandler};

/// How long a learned MAC lives (OVS `MAC_ENTRY_DEFAULT_IDLE_TIME`).
pub const DEFAULT_AGING: Duration = Duration::from_secs(300);
/// Most MACs learned (OVS `MAC_DEFAULT_MAX`).
pub const DEFAULT_MAX_ENTRIES: usize = 8192;
/// Number of VLAN IDs (0 to 4095; ovs-vswitchd.conf.db(5) `Port:tag`).
pub const N_VIDS: usize = 4096;

/// OVS `Port:vlan_mode` (ovs-vswitchd.conf.db(5)), without `dot1q-tunnel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VlanMode {
    /// `access`: carries exactly the VLAN in `tag` (0 without one); frames
    /// leave untagged; a frame arriving with a nonzero VID is dropped.
    Access,
    /// `trunk`: carries the VLANs in `trunks` (every VLAN when empty);
    /// a frame's VLAN is its VID (0 when untagged); frames leave tagged
    /// unless on VLAN 0.
    Trunk,
    /// `native-tagged`: a trunk whose untagged frames belong to `tag`;
    /// frames on that VLAN leave tagged.
    NativeTagged,
    /// `native-untagged`: as `native-tagged`, but frames on the native
    /// VLAN leave untagged.
    NativeUntagged,
}

impl VlanMode {
    /// The database's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        }
    }
}

impl fmt::Display for VlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VlanMode {
    type Err = VlanError;
    fn from_str(s: &str) -> Result<Self, VlanError> {
        match s {
            "access" => Ok(VlanMode::Access),
            "trunk" => Ok(VlanMode::Trunk),
            "native-tagged" => Ok(VlanMode::NativeTagged),
            "native-untagged" => Ok(VlanMode::NativeUntagged),
            other => Err(VlanError::Mode(other.to_owned())),
        }
    }
}

/// Why VLAN settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VlanError {
    /// `tag` outside 0..=4095.
    #[error("tag {0} is not a VLAN ID (0 to 4095)")]
    Tag(i64),
    /// A `trunks` member outside 0..=4095.
    #[error("trunks member {0} is not a VLAN ID (0 to 4095)")]
    Trunk(i64),
    /// A `vlan_mode` xennet does not implement (`dot1q-tunnel`) or that
    /// does not exist.
    #[error(
        "vlan_mode \"{0}\" is not supported (access, trunk, native-tagged, native-untagged are)"
    )]
    Mode(String),
}

/// A port's VLAN settings: the OVS `Port` columns `tag`, `trunks` and
/// `vlan_mode` (ovs-vswitchd.conf.db(5), "VLAN Configuration"), applied as
/// OVS `bridge.c` `port_configure` and `ofproto-dpif.c` `bundle_set` do.
/// The default (no tag, no trunks, no mode) is a trunk of every VLAN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortVlan {
    /// `tag`: the access VLAN, or the native VLAN of a `native-*` port.
    pub tag: Option<u16>,
    /// `trunks`: the VLANs a trunk or `native-*` port carries; empty means
    /// every VLAN. Ignored by access ports.
    pub trunks: Vec<u16>,
    /// `vlan_mode`; `None` is OVS's default: access if `tag` is set,
    /// else trunk.
    pub vlan_mode: Option<VlanMode>,
}

impl PortVlan {
    /// An access port on `vid` (`ovs-vsctl set port P tag=VID`).
    pub fn access(vid: u16) -> PortVlan {
        PortVlan {
            tag: Some(vid),
            ..PortVlan::default()
        }
    }

    /// A trunk of `vids` (every VLAN when empty).
    pub fn trunk(vids: &[u16]) -> PortVlan {
        PortVlan {
            trunks: vids.to_vec(),
            vlan_mode: Some(VlanMode::Trunk),
            ..PortVlan::default()
        }
    }

    /// Settings from the database's column values, checked: `tag` and the
    /// members of `trunks` must be VLAN IDs (0..=4095, as the schema's
    /// constraints say) and `vlan_mode` one of the four modes above
    /// (`dot1q-tunnel` is not supported).
    pub fn from_columns(
        tag: Option<i64>,
        trunks: &[i64],
        vlan_mode: Option<&str>,
    ) -> Result<PortVlan, VlanError> {
        let vid = |v: i64| u16::try_from(v).ok().filter(|v| usize::from(*v) < N_VIDS);
        let tag = match tag {
            Some(t) => Some(vid(t).ok_or(VlanError::Tag(t))?),
            None => None,
        };
        let trunks = trunks
            .iter()
            .map(|t| vid(*t).ok_or(VlanError::Trunk(*t)))
            .collect::<Result<Vec<u16>, _>>()?;
        let vlan_mode = vlan_mode.map(str::parse).transpose()?;
        Ok(PortVlan {
            tag,
            trunks,
            vlan_mode,
        })
    }

    /// The mode in force: `vlan_mode`, else access with a tag, else trunk.
    pub fn mode(&self) -> VlanMode {
        self.vlan_mode.unwrap_or(if self.tag.is_some() {
            VlanMode::Access
        } else {
            VlanMode::Trunk
        })
    }

    /// True when `trunks` is set but unused because `tag` makes the port an
    /// implicit access port (OVS logs "ignoring trunks in favor of
    /// implicit vlan"; Xen's vif-openvswitch does this for `xenbr0.10:20`).
    pub fn ignores_trunks(&self) -> bool {
        self.vlan_mode.is_none() && self.tag.is_some() && !self.trunks.is_empty()
    }

    /// What translation uses (OVS `struct ofbundle` `vlan_mode`, `vlan`,
    /// `trunks` after `bundle_set`).
    fn resolve(&self) -> Bundle {
        let mode = self.mode();
        let vlan = match mode {
            VlanMode::Trunk => None,
            _ => Some(self.tag.unwrap_or(0)),
        };
        let listed = (!self.trunks.is_empty()).then(|| VidSet::from_vids(&self.trunks));
        let trunks = match (mode, vlan) {
            (VlanMode::Access, _) => Some(VidSet::default()),
            (VlanMode::NativeTagged | VlanMode::NativeUntagged, Some(native)) if native != 0 => {
                // OVS: a native port always trunks its native VLAN and
                // never trunks VLAN 0.
                let mut set = listed.unwrap_or_else(VidSet::all);
                set.insert(native);
                set.remove(0);
                Some(set)
            }
            _ => listed,
        };
        Bundle { mode, vlan, trunks }
    }
}

impl fmt::Display for PortVlan {
    /// `mode`, `tag` and `trunks` as `ovs-vsctl list port` would show them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vlan_mode={}", self.mode())?;
        if let Some(t) = self.tag {
            write!(f, " tag={t}")?;
        }
        if !self.trunks.is_empty() {
            let list: Vec<String> = self.trunks.iter().map(u16::to_string).collect();
            write!(f, " trunks={}", list.join(","))?;
        }
        Ok(())
    }
}

/// A set of VLAN IDs (OVS `vlan_bitmap`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct VidSet(Box<[u64; N_VIDS / 64]>);

impl Default for VidSet {
    fn default() -> Self {
        VidSet(Box::new([0; N_VIDS / 64]))
    }
}

impl VidSet {
    fn all() -> VidSet {
        VidSet(Box::new([u64::MAX; N_VIDS / 64]))
    }

    fn from_vids(vids: &[u16]) -> VidSet {
        let mut s = VidSet::default();
        for v in vids {
            s.insert(*v);
        }
        s
    }

    fn insert(&mut self, vid: u16) {
        let v = usize::from(vid & VLAN_VID_MASK);
        self.0[v / 64] |= 1 << (v % 64);
    }

    fn remove(&mut self, vid: u16) {
        let v = usize::from(vid & VLAN_VID_MASK);
        self.0[v / 64] &= !(1 << (v % 64));
    }

    fn contains(&self, vid: u16) -> bool {
        let v = usize::from(vid & VLAN_VID_MASK);
        self.0[v / 64] & (1 << (v % 64)) != 0
    }
}

/// A port's resolved VLAN behaviour (OVS `struct xbundle`'s `vlan_mode`,
/// `vlan` and `trunks`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bundle {
    mode: VlanMode,
    /// Access or native VLAN; `None` for trunks (OVS -1).
    vlan: Option<u16>,
    /// Trunked VLANs; `None` = every VLAN. Empty for access ports.
    trunks: Option<VidSet>,
}

impl Bundle {
    /// OVS's default port: a trunk of every VLAN.
    const DEFAULT: Bundle = Bundle {
        mode: VlanMode::Trunk,
        vlan: None,
        trunks: None,
    };

    /// OVS `xbundle_includes_vlan`.
    fn includes(&self, vid: u16) -> bool {
        let trunked = match &self.trunks {
            None => true,
            Some(t) => t.contains(vid),
        };
        self.vlan == Some(vid) || (self.mode != VlanMode::Access && trunked)
    }

    /// OVS `input_vid_is_valid` (`vid` 0 for untagged and priority-tagged
    /// frames).
    fn input_valid(&self, vid: u16) -> bool {
        match self.mode {
            VlanMode::Access => vid == 0,
            VlanMode::NativeTagged | VlanMode::NativeUntagged if vid == 0 => true,
            _ => self.includes(vid),
        }
    }

    /// OVS `xvlan_input_translate`: the frame's VLAN in the bridge.
    fn input_vlan(&self, vid: u16) -> u16 {
        match self.mode {
            VlanMode::Access => self.vlan.unwrap_or(0),
            VlanMode::Trunk => vid,
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                if vid == 0 {
                    self.vlan.unwrap_or(0)
                } else {
                    vid
                }
            }
        }
    }

    /// OVS `xbundle_includes_vlan` for a flood: whether a frame on
    /// `vlan` whose inner tag (second in the stack, 0 for none) has VID
    /// `inner_vid` may go out of this port. An access port takes no frame
    /// that would still carry a tag after its own is removed (OVS checks
    /// `xvlan->v[1].vid == 0`): no VLAN leak of a stacked frame.
    fn floods(&self, vlan: u16, inner_vid: u16) -> bool {
        self.includes(vlan) && (self.mode != VlanMode::Access || inner_vid == 0)
    }

    /// OVS `xvlan_output_translate` + `xvlan_put`: the tag stack a frame
    /// on `vlan` with priority bits `pcp` leaves with, given the outer
    /// tag's TPID `tpid` and the inner tag `inner` (the packet's second
    /// tag after input translation, [`NO_TAG`] for none). As `xvlan_put`,
    /// a tag whose VID and PCP are both 0 is not sent, and without an
    /// outer tag nothing is (OVS counts tags up to the first absent one).
    fn output_tags(&self, vlan: u16, pcp: u16, tpid: u16, inner: Tag) -> Tags2 {
        let outer = (tpid, (vlan & VLAN_VID_MASK) | (pcp & VLAN_PCP_MASK));
        let stack = match self.mode {
            VlanMode::Access => [NO_TAG, NO_TAG],
            VlanMode::Trunk | VlanMode::NativeTagged => [outer, inner],
            VlanMode::NativeUntagged if self.vlan == Some(vlan) => [inner, NO_TAG],
            VlanMode::NativeUntagged => [outer, inner],
        };
        let put = |(tpid, tci): Tag| {
            let tci = tci & !VLAN_CFI;
            if tci != 0 {
                (tpid, tci | VLAN_CFI)
            } else {
                NO_TAG
            }
        };
        match [put(stack[0]), put(stack[1])] {
            [NO_TAG, _] => [NO_TAG, NO_TAG],
            t => t,
        }
    }
}

/// A port's VLAN state in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortState {
    Vlan(Bundle),
    /// Invalid settings: the port carries nothing.
    Blocked,
}

#[derive(Debug, Clone, Copy)]
struct MacEntry {
    port: OfPort,
    learned: Instant,
}

/// The MAC learning table and the ports' VLAN settings.
#[derive(Debug)]
struct Fdb {
    map: HashMap<(u16, MacAddr), MacEntry, foldhash::fast::RandomState>,
    /// Every (key, learned) ever set, oldest first; an item is live while
    /// the map still holds that key learned at that time, the others are
    /// skipped when met. Finds the eviction victim without scanning the
    /// table (a guest cycling source MACs makes every learn evict);
    /// compacted to the live items when it outgrows twice the table.
    lru: VecDeque<((u16, MacAddr), Instant)>,
    max_entries: usize,
    aging: Duration,
    /// Ports with VLAN settings; the others are [`Bundle::DEFAULT`].
    ports: HashMap<OfPort, PortState>,
    /// Ports with `OFPPC_NO_FLOOD`: left out of floods (OVS
    /// `xbundle->floodable`), still reached by learned unicast.
    no_flood: BTreeSet<OfPort>,
    /// Tags of the entries added, moved or removed since the last
    /// [`Fdb::publish`].
    changed: Tags,
}

impl Fdb {
    /// Learn `mac` on `port`; true if forwarding may change.
    fn learn(&mut self, vlan: u16, mac: MacAddr, port: OfPort, now: Instant) {
        if let Some(e) = self.map.get_mut(&(vlan, mac)) {
            if e.port != port {
                self.changed.add(mac_tag(mac));
            }
            e.port = port;
            e.learned = now;
            self.touch((vlan, mac), now);
            return;
        }
        self.changed.add(mac_tag(mac));
        if self.map.len() >= self.max_entries {
            self.evict_oldest();
        }
        if self.max_entries > 0 {
            self.map
                .insert((vlan, mac), MacEntry { port, learned: now });
            self.touch((vlan, mac), now);
        }
    }

    /// Move the tags of the entries changed so far into `dirty`.
    fn publish(&mut self, dirty: &AtomicU64) {
        let t = std::mem::take(&mut self.changed);
        if !t.is_empty() {
            dirty.fetch_or(t.0, Ordering::Release);
        }
    }

    /// Note that `key` was (re)learned at `now`.
    fn touch(&mut self, key: (u16, MacAddr), now: Instant) {
        self.lru.push_back((key, now));
        if self.lru.len() > 2 * self.map.len().max(64) {
            let mut live: Vec<_> = self.map.iter().map(|(k, e)| (*k, e.learned)).collect();
            live.sort_by_key(|(_, t)| *t);
            self.lru.clear();
            self.lru.extend(live);
        }
    }

    /// Remove the least recently learned entry.
    fn evict_oldest(&mut self) {
        while let Some((k, t)) = self.lru.pop_front() {
            if self.map.get(&k).is_some_and(|e| e.learned == t) {
                self.map.remove(&k);
                self.changed.add(mac_tag(k.1));
                return;
            }
        }
        // Not reached while every live entry is queued; kept as a fallback.
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, e)| e.learned)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.map.remove(&k);
            self.changed.add(mac_tag(k.1));
        }
    }

    fn lookup(&self, vlan: u16, mac: MacAddr, now: Instant) -> Option<OfPort> {
        self.map
            .get(&(vlan, mac))
            .filter(|e| now.saturating_duration_since(e.learned) < self.aging)
            .map(|e| e.port)
    }

    /// Remove expired entries; returns how many.
    fn expire(&mut self, now: Instant) -> usize {
        let before = self.map.len();
        let aging = self.aging;
        let changed = &mut self.changed;
        self.map.retain(|(_, mac), e| {
            let keep = now.saturating_duration_since(e.learned) < aging;
            if !keep {
                changed.add(mac_tag(*mac));
            }
            keep
        });
        before - self.map.len()
    }

    /// Forget the MACs on `port`; true if any.
    fn flush_port(&mut self, port: OfPort) -> bool {
        let before = self.map.len();
        self.map.retain(|_, e| e.port != port);
        self.map.len() != before
    }

    fn bundle(&self, port: OfPort) -> Option<&Bundle> {
        match self.ports.get(&port) {
            None => Some(&Bundle::DEFAULT),
            Some(PortState::Vlan(b)) => Some(b),
            Some(PortState::Blocked) => None,
        }
    }

    /// The VLAN a packet with `key` belongs to on its input port (OVS
    /// `xvlan_extract` + `input_vid_to_vlan`), or `None` if the port is
    /// blocked or does not carry the packet's VID.
    fn input_vlan(&self, key: &FlowKey) -> Option<u16> {
        // Without the presence bit there is no tag.
        let in_vid = if key.has_vlan() {
            key.vlan_tci() & VLAN_VID_MASK
        } else {
            0
        };
        self.bundle(key.in_port())
            .filter(|b| b.input_valid(in_vid))
            .map(|b| b.input_vlan(in_vid))
    }

    /// Set `port`'s state (`None` = default); true if it changed, in which
    /// case the port's MACs are forgotten.
    fn set_port(&mut self, port: OfPort, state: Option<PortState>) -> bool {
        let state = state.filter(|s| *s != PortState::Vlan(Bundle::DEFAULT));
        if self.ports.get(&port) == state.as_ref() {
            return false;
        }
        match state {
            Some(s) => self.ports.insert(port, s),
            None => self.ports.remove(&port),
        };
        self.flush_port(port);
        true
    }
}

/// The revalidation tag of a MAC address (in any VLAN).
fn mac_tag(mac: MacAddr) -> Tags {
    Tags::of(mac.to_u64())
}

fn lock(f: &Mutex<Fdb>) -> MutexGuard<'_, Fdb> {
    f.lock().unwrap_or_else(|e| e.into_inner())
}

/// NORMAL translation for a standalone bridge; an [`UpcallHandler`].
#[derive(Debug)]
pub struct Normal {
    fdb: Arc<Mutex<Fdb>>,
    generation: Arc<AtomicU64>,
    /// Tags published and not yet taken by the datapath.
    dirty: Arc<AtomicU64>,
    /// Scratch space for grouping outputs by tag state.
    outs: Vec<(Tags2, OfPort)>,
    /// Whether translations learn source MACs (off for the isolation
    /// checker's probes, which must not change the table).
    learning: bool,
}

/// Control-plane view of a [`Normal`]'s MAC table and port VLAN settings;
/// cheap to clone.
#[derive(Debug, Clone)]
pub struct FdbHandle {
    fdb: Arc<Mutex<Fdb>>,
    generation: Arc<AtomicU64>,
    dirty: Arc<AtomicU64>,
}

impl Normal {
    /// A NORMAL handler with OVS's default aging (300 s) and size (8192).
    pub fn new() -> (Normal, FdbHandle) {
        Self::with_limits(DEFAULT_MAX_ENTRIES, DEFAULT_AGING)
    }

    /// A NORMAL handler with a given table size and aging time
    /// (OVS `other_config:mac-table-size` and `mac-aging-time`).
    pub fn with_limits(max_entries: usize, aging: Duration) -> (Normal, FdbHandle) {
        let fdb = Arc::new(Mutex::new(Fdb {
            map: HashMap::default(),
            lru: VecDeque::new(),
            max_entries,
            aging,
            ports: HashMap::new(),
            no_flood: BTreeSet::new(),
            changed: Tags::EMPTY,
        }));
        let generation = Arc::new(AtomicU64::new(0));
        let dirty = Arc::new(AtomicU64::new(0));
        (
            Normal {
                fdb: fdb.clone(),
                generation: generation.clone(),
                dirty: dirty.clone(),
                outs: Vec::new(),
                learning: true,
            },
            FdbHandle {
                fdb,
                generation,
                dirty,
            },
        )
    }

    /// The megaflow mask NORMAL produces: in_port, dl_src, dl_dst,
    /// vlan_tci and vlan_tci1, exact (plus dl_type for untagged frames).
    pub fn mask() -> FlowMask {
        let mut m = FlowMask::default();
        m.set_exact(Field::InPort)
            .set_exact(Field::DlSrc)
            .set_exact(Field::DlDst)
            .set_exact(Field::VlanTci)
            .set_exact(Field::Vlan2Tci);
        m
    }

    /// Turn source-MAC learning on (the default) or off; returns the old
    /// setting. With learning off a translation only reads the table (the
    /// isolation checker's probes, [`crate::Ofproto::probe`]).
    pub fn set_learning(&mut self, on: bool) -> bool {
        std::mem::replace(&mut self.learning, on)
    }

    /// Translate at time `now` (see the module docs).
    pub fn translate(&mut self, key: &FlowKey, ports: &[OfPort], now: Instant) -> Upcall {
        self.translate_tpids(key, [0x8100; 2], None, ports, now)
    }

    /// [`Normal::translate`] for a flow whose tags have the TPIDs `tpids`
    /// (outer first; the key holds none): retagged frames keep them, as
    /// OVS's `xvlan` does. `packet`: the tag stack the packet has now,
    /// outer first as (TPID, TCI with [`VLAN_CFI`]) pairs, `(0, 0)` for
    /// none, when it differs from `key`'s (the actions before NORMAL
    /// changed the tags and left them to NORMAL to apply, as OVS commits
    /// them at each output); `None`: the packet is in `key`'s state.
    pub fn translate_tpids(
        &mut self,
        key: &FlowKey,
        tpids: [u16; 2],
        packet: Option<[(u16, u16); 2]>,
        ports: &[OfPort],
        now: Instant,
    ) -> Upcall {
        let mut up = Upcall::default();
        self.xlate_normal_tpids(
            key,
            tpids,
            packet,
            ports,
            &mut up.mask,
            &mut up.actions,
            &mut up.tags,
            now,
        );
        up
    }

    /// The NORMAL action (OVS `xlate_normal`), for a caller that is
    /// translating OpenFlow actions: adds to `mask` the fields NORMAL reads
    /// (in_port, dl_src, dl_dst, vlan_tci), to `tags` the revalidation tags
    /// of the MAC entries it read, and appends to `actions` the outputs,
    /// with the `push_vlan`/`pop_vlan` each needs (see the module docs). `key` is the flow as the actions before NORMAL left it, and
    /// the packet must be in `key`'s VLAN state at this point of the
    /// action list; `ports` are the bridge's enabled ports. Returns the
    /// `vlan_tci` the packet has after the appended actions (0: untagged),
    /// for a caller that emits more actions after NORMAL.
    pub fn xlate_normal(
        &mut self,
        key: &FlowKey,
        ports: &[OfPort],
        mask: &mut FlowMask,
        actions: &mut Vec<DpAction>,
        tags: &mut Tags,
    ) -> u16 {
        self.xlate_normal_at(key, ports, mask, actions, tags, Instant::now())
    }

    /// [`Normal::xlate_normal`] at time `now`.
    pub fn xlate_normal_at(
        &mut self,
        key: &FlowKey,
        ports: &[OfPort],
        mask: &mut FlowMask,
        actions: &mut Vec<DpAction>,
        tags: &mut Tags,
        now: Instant,
    ) -> u16 {
        self.xlate_normal_tpids(key, [0x8100; 2], None, ports, mask, actions, tags, now)
    }

    /// [`Normal::xlate_normal_at`] with the TPIDs of the packet's tags.
    #[allow(clippy::too_many_arguments)]
    fn xlate_normal_tpids(
        &mut self,
        key: &FlowKey,
        tpids: [u16; 2],
        packet: Option<Tags2>,
        ports: &[OfPort],
        mask: &mut FlowMask,
        actions: &mut Vec<DpAction>,
        tags: &mut Tags,
        now: Instant,
    ) -> u16 {
        mask.union_with(&Self::mask());
        // OVS `xvlan_extract`: the tags up to the first without the
        // presence bit.
        let in_tci = if key.has_vlan() { key.vlan_tci() } else { 0 };
        let in_tci1 = match key.get(Field::Vlan2Tci) as u16 {
            t if in_tci != 0 && t & VLAN_CFI != 0 => t,
            _ => 0,
        };
        let tpid_of = |i: usize, tci: u16| if tci == 0 { NO_TAG } else { (tpids[i], tci) };
        let cur: Tags2 = [tpid_of(0, in_tci), tpid_of(1, in_tci1)];
        let in_port = key.in_port();
        let src = key.dl_src();
        let dst = key.dl_dst();
        if in_tci == 0 {
            // OVS `xlate_normal` "Drop malformed frames": a VLAN
            // EtherType with no tag in the key (an outer tag popped onto
            // a tag the key does not hold, or a truncated tag) is a
            // partial VLAN tag, dropped against VLAN hopping. Only an
            // untagged frame's EtherType is read.
            mask.set_exact(Field::DlType);
            if matches!(key.dl_type(), 0x8100 | 0x88a8) {
                PARTIAL_VLAN_DROPS.fetch_add(1, Ordering::Relaxed);
                warn_partial_vlan(in_port);
                return in_tci;
            }
        }
        if src.is_multicast() || dst.is_reserved() {
            return in_tci;
        }
        let pcp = in_tci & VLAN_PCP_MASK;
        let mut outs = std::mem::take(&mut self.outs);
        outs.clear();
        {
            let mut fdb = lock(&self.fdb);
            let Some(vlan) = fdb.input_vlan(key) else {
                // Blocked port, or a VID the port does not carry.
                self.outs = outs;
                return in_tci;
            };
            // OVS `xvlan_input_translate`: an access port replaces the
            // whole stack by its VLAN; the others keep the inner tag. The
            // outer tag keeps the packet's outer TPID (0x8100 if none).
            let inner = match fdb.bundle(in_port).map(|b| b.mode) {
                Some(VlanMode::Access) => NO_TAG,
                _ => cur[1],
            };
            let tpid = if in_tci != 0 { cur[0].0 } else { 0x8100 };
            if self.learning {
                fdb.learn(vlan, src, in_port, now);
                fdb.publish(&self.dirty);
            }
            tags.add(mac_tag(src));
            let learned = if dst.is_multicast() {
                None
            } else {
                tags.add(mac_tag(dst));
                fdb.lookup(vlan, dst, now)
            };
            let carries = |p: OfPort| fdb.bundle(p).filter(|b| b.includes(vlan));
            let inner_vid = inner.1 & VLAN_VID_MASK;
            // A learned port that is gone, or no longer carries the VLAN,
            // counts as unknown.
            let unicast = learned.map(|p| (p, ports.contains(&p).then(|| carries(p)).flatten()));
            match unicast {
                Some((p, _)) if p == in_port => {} // no hair-pinning
                Some((p, Some(b))) => outs.push((b.output_tags(vlan, pcp, tpid, inner), p)),
                _ => {
                    let floods = |p: &&OfPort| **p != in_port && !fdb.no_flood.contains(p);
                    for &p in ports.iter().filter(floods) {
                        if let Some(b) = fdb.bundle(p).filter(|b| b.floods(vlan, inner_vid)) {
                            outs.push((b.output_tags(vlan, pcp, tpid, inner), p));
                        }
                    }
                }
            }
        }
        let cur = emit_grouped(&outs, packet.unwrap_or(cur), actions);
        self.outs = outs;
        cur[0].1
    }

    /// Refresh the MACs that sent the traffic of megaflows hit since the
    /// last housekeeping (`keys`, as the datapath reports them): an entry
    /// still on the megaflow's in_port counts as learned at `now`. Nothing
    /// is added or moved; that takes an upcall.
    pub fn refresh(&mut self, keys: &[FlowKey], now: Instant) {
        let mut fdb = lock(&self.fdb);
        for key in keys {
            // The same VLAN translate() learned under.
            let Some(vlan) = fdb.input_vlan(key) else {
                continue;
            };
            let k = (vlan, key.dl_src());
            // Many megaflows share a source MAC: refresh (and queue for
            // eviction order) once per MAC, not once per megaflow.
            if let Some(e) = fdb
                .map
                .get_mut(&k)
                .filter(|e| e.port == key.in_port() && e.learned != now)
            {
                e.learned = now;
                fdb.touch(k, now);
            }
        }
    }

    /// Age the table at `now`.
    pub fn expire(&mut self, now: Instant) {
        let mut fdb = lock(&self.fdb);
        fdb.expire(now);
        fdb.publish(&self.dirty);
    }
}

/// Appends the outputs `outs` (target tag stack `(outer, inner)`, port),
/// grouped by tag state: first the ports that take the packet as it is
/// (`cur`), then each other state in order of first appearance, each
/// group after the `pop_vlan`s and `push_vlan`s that make it
/// ([`vlan_transition`]). Returns the final state.
fn emit_grouped(outs: &[(Tags2, OfPort)], mut cur: Tags2, actions: &mut Vec<DpAction>) -> Tags2 {
    let mut states: Vec<Tags2> = Vec::with_capacity(3);
    if outs.iter().any(|(t, _)| *t == cur) {
        states.push(cur);
    }
    for (t, _) in outs {
        if !states.contains(t) {
            states.push(*t);
        }
    }
    for state in states {
        if state != cur {
            vlan_transition(cur, state, actions);
            cur = state;
        }
        actions.extend(
            outs.iter()
                .filter(|(t, _)| *t == state)
                .map(|(_, p)| DpAction::Output(*p)),
        );
    }
    cur
}

/// A VLAN tag: TPID and TCI (with [`VLAN_CFI`]).
type Tag = (u16, u16);

/// No tag.
const NO_TAG: Tag = (0, 0);

/// A VLAN tag stack, outer first ([`NO_TAG`] for none; no inner without
/// an outer).
type Tags2 = [Tag; 2];

/// The datapath actions that turn tag stack `from` into `to`, as OVS
/// `commit_vlan_action`: the tags the two share at the bottom stay, the
/// rest of `from` is popped and the rest of `to` pushed (innermost
/// first).
pub(crate) fn vlan_transition(from: Tags2, to: Tags2, actions: &mut Vec<DpAction>) {
    let stack =
        |t: Tags2| -> Vec<Tag> { t.into_iter().take_while(|x| x.1 & VLAN_CFI != 0).collect() };
    let (mut a, mut b) = (stack(from), stack(to));
    while let (Some(x), Some(y)) = (a.last(), b.last()) {
        if x != y {
            break;
        }
        a.pop();
        b.pop();
    }
    actions.extend(a.iter().map(|_| DpAction::PopVlan));
    actions.extend(
        b.iter()
            .rev()
            .map(|&(tpid, tci)| DpAction::PushVlan { tpid, tci }),
    );
}

/// Frames NORMAL dropped as carrying a partial VLAN tag (a VLAN
/// EtherType without a tag in the key; OVS `xlate_normal`).
pub static PARTIAL_VLAN_DROPS: AtomicU64 = AtomicU64::new(0);

/// Logs a partial-VLAN drop at most once a second.
fn warn_partial_vlan(port: OfPort) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            port,
            "NORMAL: dropping packet with partial VLAN tag received on port {port}"
        );
    }
}

impl UpcallHandler for Normal {
    fn upcall(&mut self, key: &FlowKey, _pkt: &Packet, ports: &[OfPort]) -> Upcall {
        self.translate(key, ports, Instant::now())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn dirty_tags(&self) -> Tags {
        Tags(self.dirty.load(Ordering::Acquire))
    }

    fn take_dirty_tags(&mut self) -> Tags {
        Tags(self.dirty.swap(0, Ordering::AcqRel))
    }

    fn housekeeping(&mut self, now: Instant) {
        self.expire(now);
    }

    fn megaflows_used(&mut self, keys: &[FlowKey], now: Instant) {
        self.refresh(keys, now);
    }
}

impl FdbHandle {
    /// The same counter as [`Normal`]'s [`UpcallHandler::generation`],
    /// read without the table's lock (the forwarding thread reads it once
    /// per loop iteration).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The tags of the MACs learned, moved, expired or evicted since the
    /// datapath last took them (see [`UpcallHandler::dirty_tags`]).
    pub fn dirty_tags(&self) -> Tags {
        Tags(self.dirty.load(Ordering::Acquire))
    }

    /// Take those tags (see [`UpcallHandler::take_dirty_tags`]).
    pub fn take_dirty_tags(&self) -> Tags {
        Tags(self.dirty.swap(0, Ordering::AcqRel))
    }

    /// The table in `ovs-appctl fdb/show` format: a header line
    /// ` port  VLAN  MAC                Age`, then one line per entry, least
    /// recently learned first; age in seconds. The VLAN is the one the MAC
    /// was learned in (an access port's `tag`, a trunk's VID).
    pub fn show(&self) -> String {
        self.show_at(Instant::now())
    }

    /// [`FdbHandle::show`] as of `now`.
    pub fn show_at(&self, now: Instant) -> String {
        let fdb = lock(&self.fdb);
        let mut rows: Vec<_> = fdb.map.iter().collect();
        rows.sort_by_key(|((vlan, mac), e)| (e.learned, *vlan, *mac));
        let mut s = String::from(" port  VLAN  MAC                Age\n");
        for ((vlan, mac), e) in rows {
            let port = if e.port == OFPP_LOCAL {
                "LOCAL".to_owned()
            } else {
                e.port.to_string()
            };
            let age = now.saturating_duration_since(e.learned).as_secs();
            let _ = writeln!(s, "{port:>5}  {vlan:>4}  {mac}  {age:>3}");
        }
        s
    }

    /// Change the table size and the aging time (OVS `Bridge:other_config`
    /// `mac-table-size` and `mac-aging-time`). A table over the new size
    /// evicts its least recently learned entries at once; entries older
    /// than the new aging time go at the next aging pass.
    pub fn set_limits(&self, max_entries: usize, aging: Duration) {
        let mut fdb = lock(&self.fdb);
        fdb.max_entries = max_entries;
        fdb.aging = aging;
        while fdb.map.len() > max_entries {
            fdb.evict_oldest();
        }
        fdb.publish(&self.dirty);
    }

    /// `(entries, table size, aging time)`, for `fdb/stats-show`.
    pub fn limits(&self) -> (usize, usize, Duration) {
        let fdb = lock(&self.fdb);
        (fdb.map.len(), fdb.max_entries, fdb.aging)
    }

    /// Number of learned MACs.
    pub fn len(&self) -> usize {
        lock(&self.fdb).map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The port `mac` was learned on in `vlan`, if any.
    pub fn lookup(&self, vlan: u16, mac: MacAddr) -> Option<OfPort> {
        lock(&self.fdb).map.get(&(vlan, mac)).map(|e| e.port)
    }

    /// Forget every MAC (`ovs-appctl fdb/flush`); megaflows are flushed.
    pub fn flush(&self) {
        {
            let mut fdb = lock(&self.fdb);
            fdb.map.clear();
            fdb.lru.clear();
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forget the MACs learned on `port` (the port went away).
    pub fn flush_port(&self, port: OfPort) {
        if lock(&self.fdb).flush_port(port) {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    fn set_state(&self, port: OfPort, state: Option<PortState>) -> bool {
        let changed = lock(&self.fdb).set_port(port, state);
        if changed {
            self.generation.fetch_add(1, Ordering::Release);
        }
        changed
    }

    /// Give `port` the VLAN settings `vlan` (OVS `Port:tag`, `trunks`,
    /// `vlan_mode`; see [`PortVlan`]). When they change what the port does
    /// (as OVS `bundle_set`'s `need_flush`), the MACs learned on the port
    /// are forgotten and megaflows are flushed; returns whether they did.
    pub fn set_port_vlan(&self, port: OfPort, vlan: &PortVlan) -> bool {
        self.set_state(port, Some(PortState::Vlan(vlan.resolve())))
    }

    /// Back to OVS's default port (a trunk of every VLAN), as
    /// [`FdbHandle::set_port_vlan`] with `PortVlan::default()`.
    pub fn clear_port_vlan(&self, port: OfPort) -> bool {
        self.set_state(port, None)
    }

    /// Make `port` carry no VLAN at all (for a port whose VLAN settings are
    /// invalid): nothing it sends is forwarded or learned and nothing is
    /// sent to it, until [`FdbHandle::set_port_vlan`] or
    /// [`FdbHandle::clear_port_vlan`].
    pub fn block_port(&self, port: OfPort) -> bool {
        self.set_state(port, Some(PortState::Blocked))
    }

    /// Leave `port` out of floods, or not (OpenFlow `OFPPC_NO_FLOOD`, as
    /// OVS's `xbundle->floodable`); megaflows are flushed on a change.
    /// Returns whether it changed.
    pub fn set_no_flood(&self, port: OfPort, no_flood: bool) -> bool {
        let changed = {
            let mut fdb = lock(&self.fdb);
            if no_flood {
                fdb.no_flood.insert(port)
            } else {
                fdb.no_flood.remove(&port)
            }
        };
        if changed {
            self.generation.fetch_add(1, Ordering::Release);
        }
        changed
    }

    /// The port left the bridge: forget its MACs and VLAN settings.
    pub fn remove_port(&self, port: OfPort) {
        let mut fdb = lock(&self.fdb);
        let had = fdb.ports.remove(&port).is_some();
        if fdb.flush_port(port) || had {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_datapath::dpif::DpHandle;
    use xennet_datapath::flow::extract_frame;
    use xennet_datapath::memport::{mem_port, MemPortPeer};
    use xennet_datapath::{Datapath, PortFeatures};

    const A: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xb];
    const PORTS: [OfPort; 3] = [1, 2, 3];

    fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2(src, dst)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut v, b"hello")
            .unwrap();
        v
    }

    fn key(in_port: OfPort, src: [u8; 6], dst: [u8; 6]) -> FlowKey {
        extract_frame(&frame(src, dst), in_port)
    }

    /// A datapath running `normal` with memports 1..=3.
    fn spawn_dp(name: &str, normal: Normal) -> (DpHandle, Vec<MemPortPeer>) {
        let dp = Datapath::spawn(name, Box::new(normal)).unwrap();
        let mut peers = Vec::new();
        for i in 1..=3u32 {
            let (p, peer) = mem_port(&format!("{name}{i}"), PortFeatures::default()).unwrap();
            dp.add_port(i, Box::new(p)).unwrap();
            peers.push(peer);
        }
        (dp, peers)
    }

    /// The frames sent out of `peer`'s port, waiting (up to 60 s: a
    /// loaded machine can stall the datapath thread) for at least `n`.
    fn wait_sent(peer: &MemPortPeer, n: usize) -> Vec<Vec<u8>> {
        let got = peer.wait_sent(n, Duration::from_secs(60));
        got.iter().map(|p| p.data().to_vec()).collect()
    }

    fn outs(up: &Upcall) -> Vec<OfPort> {
        up.actions
            .iter()
            .map(|a| match a {
                DpAction::Output(p) => *p,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn learns_floods_and_forwards() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        let g0 = n.generation();
        let up = n.translate(&key(1, A, B), &PORTS, t);
        assert_eq!(outs(&up), vec![2, 3], "unknown dst floods");
        assert_eq!(up.tags, tags(&[A, B]), "source and unknown destination");
        assert_eq!(n.generation(), g0, "a new MAC does not flush everything");
        assert_eq!(
            n.take_dirty_tags(),
            mac_tag(MacAddr(A)),
            "only its own megaflows"
        );
        assert_eq!(fdb.lookup(0, MacAddr(A)), Some(1));
        let up = n.translate(&key(2, B, A), &PORTS, t);
        assert_eq!(outs(&up), vec![1], "learned dst is unicast");
        let up = n.translate(&key(1, A, B), &PORTS, t);
        assert_eq!(outs(&up), vec![2]);
        let up = n.translate(&key(3, A, [0xff; 6]), &PORTS, t);
        assert_eq!(outs(&up), vec![1, 2], "broadcast floods except in_port");
        let up = n.translate(&key(3, B, [0x01, 0, 0x5e, 0, 0, 1]), &PORTS, t);
        assert_eq!(outs(&up), vec![1, 2], "multicast floods");
    }

    #[test]
    fn no_hairpin() {
        let (mut n, _) = Normal::new();
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(1, B, A), &PORTS, t);
        let up = n.translate(&key(1, A, B), &PORTS, t);
        assert!(up.actions.is_empty(), "dst on in_port is dropped");
    }

    /// The union of the tags of `macs`.
    fn tags(macs: &[[u8; 6]]) -> Tags {
        let mut t = Tags::EMPTY;
        macs.iter().for_each(|m| t.add(mac_tag(MacAddr(*m))));
        t
    }

    #[test]
    fn moved_mac_is_dirty_refresh_is_not() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.take_dirty_tags();
        let g = n.generation();
        n.translate(&key(1, A, B), &PORTS, t + Duration::from_secs(1));
        assert_eq!(n.take_dirty_tags(), Tags::EMPTY, "refresh on same port");
        n.translate(&key(2, A, B), &PORTS, t + Duration::from_secs(2));
        assert_eq!(n.take_dirty_tags(), tags(&[A]), "move");
        assert_eq!(n.generation(), g);
        assert_eq!(fdb.lookup(0, MacAddr(A)), Some(2));
    }

    #[test]
    fn multicast_destinations_are_not_tagged() {
        let (mut n, _) = Normal::new();
        let up = n.translate(&key(1, A, [0xff; 6]), &PORTS, Instant::now());
        assert_eq!(up.tags, tags(&[A]));
    }

    #[test]
    fn mask_is_l2_only() {
        let (mut n, _) = Normal::new();
        // Untagged: the EtherType too (a VLAN EtherType without a tag is
        // a partial tag, dropped).
        let up = n.translate(&key(1, A, B), &PORTS, Instant::now());
        for f in [
            Field::InPort,
            Field::DlSrc,
            Field::DlDst,
            Field::VlanTci,
            Field::Vlan2Tci,
            Field::DlType,
        ] {
            assert!(up.mask.is_exact(f), "{f:?}");
        }
        let tagged = extract_frame(&tagged(A, B, 10), 1);
        let up = n.translate(&tagged, &PORTS, Instant::now());
        for f in [
            Field::InPort,
            Field::DlSrc,
            Field::DlDst,
            Field::VlanTci,
            Field::Vlan2Tci,
        ] {
            assert!(up.mask.is_exact(f), "{f:?}");
        }
        for f in [
            Field::DlType,
            Field::NwSrc,
            Field::NwDst,
            Field::NwProto,
            Field::NwTos,
            Field::NwTtl,
            Field::NwFrag,
            Field::TpSrc,
            Field::TpDst,
            Field::TcpFlags,
        ] {
            assert!(up.mask.is_wildcarded(f), "{f:?}");
        }
    }

    #[test]
    fn bad_sources_and_reserved_dsts_are_dropped_unlearned() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        let up = n.translate(&key(1, [0xff; 6], B), &PORTS, t);
        assert!(up.actions.is_empty());
        let up = n.translate(&key(1, A, [0x01, 0x80, 0xc2, 0, 0, 0]), &PORTS, t);
        assert!(up.actions.is_empty());
        assert!(fdb.is_empty());
    }

    #[test]
    fn aging_and_eviction() {
        let (mut n, fdb) = Normal::with_limits(2, Duration::from_secs(300));
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(2, B, A), &PORTS, t + Duration::from_secs(10));
        let c = [0x50, 0x54, 0, 0, 0, 0xc];
        n.take_dirty_tags();
        n.translate(&key(3, c, A), &PORTS, t + Duration::from_secs(20));
        assert_eq!(fdb.len(), 2);
        assert_eq!(fdb.lookup(0, MacAddr(A)), None, "oldest evicted");
        assert_eq!(n.take_dirty_tags(), tags(&[A, c]), "evicted and new");
        let g = n.generation();
        n.expire(t + Duration::from_secs(305));
        assert_eq!(n.take_dirty_tags(), Tags::EMPTY, "nothing expired yet");
        n.expire(t + Duration::from_secs(311));
        assert_eq!(fdb.len(), 1);
        assert_eq!(n.take_dirty_tags(), tags(&[B]), "B expired");
        assert_eq!(n.generation(), g);
        fdb.flush();
        assert!(fdb.is_empty());
        assert_ne!(n.generation(), g);
    }

    #[test]
    fn megaflow_hits_refresh_their_source_only_on_its_port() {
        let (mut n, fdb) = Normal::with_limits(8, Duration::from_secs(300));
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(2, B, A), &PORTS, t);
        // A's megaflow was hit at 200 s; B's key names the wrong port.
        n.refresh(&[key(1, A, B), key(3, B, A)], t + Duration::from_secs(200));
        n.expire(t + Duration::from_secs(310));
        assert_eq!(fdb.lookup(0, MacAddr(A)), Some(1), "refreshed");
        assert_eq!(fdb.lookup(0, MacAddr(B)), None, "not refreshed, aged out");
        n.refresh(&[key(2, B, A)], t + Duration::from_secs(320));
        assert_eq!(fdb.lookup(0, MacAddr(B)), None, "refresh never learns");
    }

    #[test]
    fn set_limits_shrinks_the_table_and_changes_aging() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        let c = [0x50, 0x54, 0, 0, 0, 0xc];
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(2, B, A), &PORTS, t + Duration::from_secs(1));
        n.translate(&key(3, c, A), &PORTS, t + Duration::from_secs(2));
        n.take_dirty_tags();
        fdb.set_limits(2, Duration::from_secs(20));
        assert_eq!(fdb.limits(), (2, 2, Duration::from_secs(20)));
        assert_eq!(
            fdb.lookup(0, MacAddr(A)),
            None,
            "least recently learned goes"
        );
        assert_eq!(n.take_dirty_tags(), tags(&[A]));
        n.expire(t + Duration::from_secs(21));
        assert_eq!(fdb.limits().0, 1, "B aged out under the new aging time");
    }

    #[test]
    fn eviction_is_least_recently_learned_and_the_queue_stays_bounded() {
        let (mut n, fdb) = Normal::with_limits(2, Duration::from_secs(300));
        let t = Instant::now();
        let c = [0x50, 0x54, 0, 0, 0, 0xc];
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(2, B, A), &PORTS, t + Duration::from_secs(1));
        // A is refreshed: B is now the least recently learned.
        n.translate(&key(1, A, B), &PORTS, t + Duration::from_secs(2));
        n.translate(&key(3, c, A), &PORTS, t + Duration::from_secs(3));
        assert_eq!(fdb.lookup(0, MacAddr(B)), None, "B evicted");
        assert_eq!(fdb.lookup(0, MacAddr(A)), Some(1));
        assert_eq!(fdb.lookup(0, MacAddr(c)), Some(3));
        for i in 0..10_000u64 {
            n.translate(&key(1, A, B), &PORTS, t + Duration::from_secs(4 + i));
        }
        assert!(lock(&fdb.fdb).lru.len() <= 2 * 64 + 1);
        assert_eq!(fdb.len(), 2);
    }

    #[test]
    fn show_format() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(2, B, A), &PORTS, t + Duration::from_secs(3));
        assert_eq!(
            fdb.show_at(t + Duration::from_secs(5)),
            " port  VLAN  MAC                Age\n    \
             1     0  50:54:00:00:00:0a    5\n    \
             2     0  50:54:00:00:00:0b    2\n"
        );
    }

    #[test]
    fn through_the_datapath() {
        let (normal, fdb) = Normal::new();
        let (dp, peers) = spawn_dp("p", normal);
        let wait = |peer: &MemPortPeer, n: usize| wait_sent(peer, n).len();
        peers[0].inject_frame(&frame(A, B));
        assert_eq!(wait(&peers[1], 1), 1);
        assert_eq!(wait(&peers[2], 1), 1);
        peers[1].inject_frame(&frame(B, A));
        assert_eq!(wait(&peers[0], 1), 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(peers[2].take_sent().is_empty(), "B→A is unicast");
        peers[0].inject_frame(&frame(A, B));
        assert_eq!(wait(&peers[1], 1), 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            peers[2].take_sent().is_empty(),
            "stale flood megaflow was flushed"
        );
        assert_eq!(fdb.len(), 2);
        let flows = dp.dump_flows();
        assert!(
            flows.iter().any(|f| f.starts_with(
                "recirc_id(0),in_port(1),eth(src=50:54:00:00:00:0a,dst=50:54:00:00:00:0b),"
            ) && f.contains(" packets:1")
                && f.ends_with("actions:2")),
            "{flows:?}"
        );
        dp.shutdown();
    }

    #[test]
    fn a_new_mac_removes_only_the_megaflows_tagged_with_it() {
        let c = [0x50, 0x54, 0, 0, 0, 0xc];
        let t = |m| mac_tag(MacAddr(m));
        assert!(!t(c).intersects(tags(&[A, B])), "test needs distinct tags");
        let (normal, _fdb) = Normal::new();
        let (dp, peers) = spawn_dp("q", normal);
        let wait = |peer: &MemPortPeer, n: usize| wait_sent(peer, n).len();
        let n_flows = |n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while dp.stats().n_flows != n && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            dp.stats().n_flows
        };
        // Learn A and B, then install A→B, B→A and a flood of A→C.
        peers[0].inject_frame(&frame(A, B));
        assert_eq!((wait(&peers[1], 1), wait(&peers[2], 1)), (1, 1));
        peers[1].inject_frame(&frame(B, A));
        assert_eq!(wait(&peers[0], 1), 1);
        peers[0].inject_frame(&frame(A, B));
        assert_eq!(wait(&peers[1], 1), 1);
        peers[1].inject_frame(&frame(B, A));
        assert_eq!(wait(&peers[0], 1), 1);
        peers[0].inject_frame(&frame(A, c));
        assert_eq!((wait(&peers[1], 1), wait(&peers[2], 1)), (1, 1));
        assert_eq!(n_flows(3), 3, "{:?}", dp.dump_flows());
        let upcalls = dp.stats().upcalls;

        // C appears: only the flood towards it goes.
        peers[2].inject_frame(&frame(c, A));
        assert_eq!(wait(&peers[0], 1), 1);
        assert_eq!(n_flows(2), 2, "{:?}", dp.dump_flows());
        peers[0].inject_frame(&frame(A, B));
        peers[1].inject_frame(&frame(B, A));
        assert_eq!((wait(&peers[1], 1), wait(&peers[0], 1)), (1, 1));
        assert_eq!(
            dp.stats().upcalls,
            upcalls + 1,
            "A↔B still hit their megaflows"
        );
        peers[0].inject_frame(&frame(A, c));
        assert_eq!(wait(&peers[2], 1), 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(peers[1].take_sent().is_empty(), "A→C is unicast now");
        dp.shutdown();
    }

    // ---- VLANs ----

    use xennet_datapath::actions::ActionsFmt;

    /// `frame` with an 802.1Q tag carrying `tci` (PCP and VID).
    fn tagged(src: [u8; 6], dst: [u8; 6], tci: u16) -> Vec<u8> {
        let mut v = frame(src, dst);
        let t = tci.to_be_bytes();
        v.splice(12..12, [0x81, 0x00, t[0], t[1]]);
        v
    }

    fn xlate(n: &mut Normal, frame: &[u8], in_port: OfPort, ports: &[OfPort]) -> String {
        let up = n.translate(&extract_frame(frame, in_port), ports, Instant::now());
        ActionsFmt(&up.actions).to_string()
    }

    const BCAST: [u8; 6] = [0xff; 6];

    /// `tagged` with a second tag `outer` (TPID `tpid`) outside the first.
    fn stacked(src: [u8; 6], dst: [u8; 6], tpid: u16, outer: u16, inner: u16) -> Vec<u8> {
        let mut v = tagged(src, dst, inner);
        let (p, t) = (tpid.to_be_bytes(), outer.to_be_bytes());
        v.splice(12..12, [p[0], p[1], t[0], t[1]]);
        v
    }

    #[test]
    fn stacked_tags_do_not_leak_to_access_ports() {
        // OVS (vlan-limit 2): p3 access 10, p2 trunk 10,20, p1 and 100
        // trunks of every VLAN, p4 native-untagged 10.
        let (mut n, fdb) = Normal::new();
        fdb.set_port_vlan(3, &PortVlan::access(10));
        fdb.set_port_vlan(2, &PortVlan::trunk(&[10, 20]));
        let native = PortVlan::from_columns(Some(10), &[], Some("native-untagged")).unwrap();
        fdb.set_port_vlan(4, &native);
        let ports = [1, 2, 3, 4, 100];
        // A QinQ broadcast (S-tag 10, C-tag 5) floods to the trunks as it
        // came, and to the native-untagged port with its inner tag; the
        // access port of VLAN 10 gets nothing (xbundle_includes_vlan).
        let up = n.translate(
            &extract_frame(&stacked(B, BCAST, 0x88a8, 10, 5), 2),
            &ports,
            Instant::now(),
        );
        assert_eq!(ActionsFmt(&up.actions).to_string(), "1,100,pop_vlan,4");
        assert!(up.mask.is_exact(Field::Vlan2Tci));
        // Single-tagged, the access port gets it untagged.
        assert_eq!(
            xlate(&mut n, &tagged(B, BCAST, 10), 2, &ports),
            "1,100,pop_vlan,3,4"
        );
        // From the access port, a stacked frame is refused (its VID is
        // not 0).
        assert_eq!(
            xlate(&mut n, &stacked(A, BCAST, 0x8100, 10, 5), 3, &ports),
            "drop"
        );
        // A priority tag (VID 0) on the access port: both of its tags are
        // replaced by VLAN 10 (xvlan_input_translate), PCP kept.
        assert_eq!(
            xlate(&mut n, &stacked(A, BCAST, 0x8100, 0x2000, 7), 3, &ports),
            "pop_vlan,pop_vlan,push_vlan(vid=10,pcp=1),1,2,100,pop_vlan,4"
        );
    }

    #[test]
    fn partial_vlan_tags_are_dropped() {
        let (mut n, _) = Normal::new();
        let ports = [1, 2, 3];
        // A VLAN EtherType with no tag in the key: a tag cut short.
        let mut runt = frame(A, BCAST);
        runt.truncate(12);
        runt.extend_from_slice(&[0x81, 0x00, 0x00]);
        let before = PARTIAL_VLAN_DROPS.load(Ordering::Relaxed);
        let up = n.translate(&extract_frame(&runt, 1), &ports, Instant::now());
        assert!(up.actions.is_empty());
        assert!(up.mask.is_exact(Field::DlType));
        assert!(PARTIAL_VLAN_DROPS.load(Ordering::Relaxed) > before);
        // A third tag is payload: popping two leaves a VLAN EtherType.
        let mut key = extract_frame(&stacked(A, BCAST, 0x8100, 10, 5), 1);
        assert_eq!(key.dl_type(), 0x0800);
        key.set_dl_type(0x8100);
        key.set_vlan_tci(0);
        key.set(Field::Vlan2Tci, 0);
        assert!(n.translate(&key, &ports, Instant::now()).actions.is_empty());
    }

    #[test]
    fn vlan_transitions_follow_commit_vlan_action() {
        let t = |from, to| {
            let mut a = Vec::new();
            vlan_transition(from, to, &mut a);
            ActionsFmt(&a).to_string()
        };
        let q = |tci| (0x8100, tci);
        let (v10, v5, v20) = (q(0x100a), q(0x1005), q(0x1014));
        let t = |(a, b), (c, d)| t([a, b], [c, d]);
        let none = NO_TAG;
        assert_eq!(t((v10, v5), (v5, none)), "pop_vlan");
        assert_eq!(t((v10, v5), (none, none)), "pop_vlan,pop_vlan");
        assert_eq!(t((v5, none), (v10, v5)), "push_vlan(vid=10,pcp=0)");
        assert_eq!(t((v10, v5), (v20, v5)), "pop_vlan,push_vlan(vid=20,pcp=0)");
        assert_eq!(
            t((v10, v5), (v10, none)),
            "pop_vlan,pop_vlan,push_vlan(vid=10,pcp=0)"
        );
        assert_eq!(t((none, none), (none, none)), "drop");
        // The TPID counts: an S-tag is not the C-tag with its TCI.
        assert_eq!(
            t(((0x88a8, 0x100a), none), (v10, none)),
            "pop_vlan,push_vlan(vid=10,pcp=0)"
        );
    }

    #[test]
    fn ovs_trace_example() {
        // PEERS.md §3: p3 tag=10, p2 trunks=10,20, p1 an untagged trunk
        // (no settings), 100 = LOCAL (no settings).
        let (mut n, fdb) = Normal::new();
        fdb.set_port_vlan(3, &PortVlan::access(10));
        fdb.set_port_vlan(2, &PortVlan::trunk(&[10, 20]));
        let ports = [1, 2, 3, 100];
        assert_eq!(
            xlate(&mut n, &frame(A, BCAST), 3, &ports),
            "push_vlan(vid=10,pcp=0),1,2,100"
        );
        // OVS: 1,pop_vlan,3,push_vlan(vid=10,pcp=0),100; grouped here.
        assert_eq!(
            xlate(&mut n, &tagged(B, BCAST, 10), 2, &ports),
            "1,100,pop_vlan,3"
        );
        assert_eq!(fdb.lookup(10, MacAddr(A)), Some(3));
        assert_eq!(fdb.lookup(10, MacAddr(B)), Some(2));
        assert!(fdb.show().contains("    3    10  50:54:00:00:00:0a"));
        // Unicast now: B (VLAN 10 on trunk 2) to A (access 3) and back.
        assert_eq!(xlate(&mut n, &tagged(B, A, 10), 2, &ports), "pop_vlan,3");
        assert_eq!(
            xlate(&mut n, &frame(A, B), 3, &ports),
            "push_vlan(vid=10,pcp=0),2"
        );
    }

    #[test]
    fn access_ports_isolate_vlans() {
        let (mut n, fdb) = Normal::new();
        fdb.set_port_vlan(1, &PortVlan::access(10));
        fdb.set_port_vlan(2, &PortVlan::access(10));
        fdb.set_port_vlan(3, &PortVlan::access(20));
        let ports = [1, 2, 3];
        assert_eq!(xlate(&mut n, &frame(A, BCAST), 1, &ports), "2");
        assert_eq!(
            xlate(&mut n, &frame(B, A), 3, &ports),
            "drop",
            "A is in VLAN 10"
        );
        assert_eq!(fdb.lookup(20, MacAddr(B)), Some(3));
        assert_eq!(xlate(&mut n, &frame(B, A), 2, &ports), "1");
        // A tagged frame on an access port is dropped, its own VLAN too,
        // and nothing is learned from it.
        let c = [0x50, 0x54, 0, 0, 0, 0xc];
        assert_eq!(xlate(&mut n, &tagged(c, BCAST, 10), 1, &ports), "drop");
        assert_eq!(xlate(&mut n, &tagged(c, BCAST, 20), 1, &ports), "drop");
        assert_eq!(fdb.lookup(10, MacAddr(c)), None);
    }

    #[test]
    fn priority_tags_count_as_untagged_and_keep_their_pcp() {
        let (mut n, fdb) = Normal::new();
        fdb.set_port_vlan(1, &PortVlan::access(10));
        fdb.set_port_vlan(2, &PortVlan::access(10));
        // 3: trunk of every VLAN.
        let ports = [1, 2, 3];
        // PCP 5, VID 0 on an access port: VLAN 10, untagged out of the
        // access port, retagged with the PCP on the trunk.
        assert_eq!(
            xlate(&mut n, &tagged(A, BCAST, 0xa000), 1, &ports),
            "pop_vlan,2,push_vlan(vid=10,pcp=5),3"
        );
        // A tagged frame keeps its PCP through a trunk, loses the tag on
        // an access port.
        assert_eq!(
            xlate(&mut n, &tagged(B, BCAST, 0x6000 | 10), 3, &ports),
            "pop_vlan,1,2"
        );
        // VLAN 0 on trunks: priority-tagged stays priority-tagged, a tag
        // with VID 0 and PCP 0 leaves untagged (OVS xvlan_put).
        fdb.clear_port_vlan(1);
        fdb.set_port_vlan(2, &PortVlan::access(0));
        assert_eq!(
            xlate(&mut n, &tagged(A, BCAST, 0x2000), 3, &ports),
            "1,pop_vlan,2"
        );
        assert_eq!(
            xlate(&mut n, &tagged(A, BCAST, 0), 3, &ports),
            "pop_vlan,1,2"
        );
        assert_eq!(fdb.lookup(0, MacAddr(A)), Some(3));
    }

    #[test]
    fn trunk_filter() {
        let (mut n, fdb) = Normal::new();
        fdb.set_port_vlan(1, &PortVlan::trunk(&[10, 20]));
        fdb.set_port_vlan(2, &PortVlan::trunk(&[20, 30]));
        let ports = [1, 2, 3];
        assert_eq!(xlate(&mut n, &tagged(A, BCAST, 30), 1, &ports), "drop");
        assert_eq!(xlate(&mut n, &tagged(A, BCAST, 10), 1, &ports), "3");
        assert_eq!(xlate(&mut n, &tagged(A, BCAST, 20), 1, &ports), "2,3");
        // Untagged is VLAN 0, which trunks=10,20 does not carry.
        assert_eq!(xlate(&mut n, &frame(A, BCAST), 1, &ports), "drop");
        assert_eq!(xlate(&mut n, &frame(B, BCAST), 3, &ports), "drop");
        assert_eq!(xlate(&mut n, &tagged(B, BCAST, 30), 3, &ports), "2");
        assert_eq!(fdb.lookup(10, MacAddr(A)), Some(1));
        assert_eq!(fdb.lookup(30, MacAddr(A)), None);
        // With 0 in trunks, untagged frames are carried, untagged.
        fdb.set_port_vlan(1, &PortVlan::trunk(&[0, 10]));
        assert_eq!(xlate(&mut n, &frame(A, BCAST), 1, &ports), "3");
    }

    #[test]
    fn native_tagged_and_untagged_output_forms() {
        let (mut n, fdb) = Normal::new();
        let native = |mode, trunks: &[u16]| PortVlan {
            tag: Some(10),
            trunks: trunks.to_vec(),
            vlan_mode: Some(mode),
        };
        fdb.set_port_vlan(1, &native(VlanMode::NativeUntagged, &[20]));
        fdb.set_port_vlan(2, &native(VlanMode::NativeTagged, &[20]));
        // 3: trunk of every VLAN; 4: access 10.
        fdb.set_port_vlan(4, &PortVlan::access(10));
        let ports = [1, 2, 3, 4];
        // Untagged on a native port is the native VLAN.
        assert_eq!(
            xlate(&mut n, &frame(A, BCAST), 1, &ports),
            "4,push_vlan(vid=10,pcp=0),2,3"
        );
        assert_eq!(fdb.lookup(10, MacAddr(A)), Some(1));
        // VLAN 10 tagged into the native-tagged port (it trunks its native
        // VLAN although trunks=20 does not list it).
        assert_eq!(
            xlate(&mut n, &tagged(B, BCAST, 10), 2, &ports),
            "3,pop_vlan,1,4"
        );
        // Another trunked VLAN stays tagged on both native ports.
        assert_eq!(xlate(&mut n, &tagged(B, BCAST, 20), 3, &ports), "1,2");
        assert_eq!(xlate(&mut n, &tagged(B, BCAST, 30), 3, &ports), "drop");
        assert_eq!(xlate(&mut n, &tagged(B, BCAST, 30), 1, &ports), "drop");
    }

    #[test]
    fn transitions_flush_macs_and_bump_generation() {
        let (mut n, fdb) = Normal::new();
        let ports = [1, 2, 3];
        assert_eq!(xlate(&mut n, &frame(A, BCAST), 1, &ports), "2,3");
        assert_eq!(xlate(&mut n, &frame(B, A), 2, &ports), "1");
        // access(10) on port 1: its MACs go, the generation moves, and
        // untagged traffic from port 2 (VLAN 0) no longer reaches it.
        let g = n.generation();
        assert!(fdb.set_port_vlan(1, &PortVlan::access(10)));
        assert_ne!(n.generation(), g);
        assert_eq!(fdb.lookup(0, MacAddr(A)), None);
        assert_eq!(
            fdb.lookup(0, MacAddr(B)),
            Some(2),
            "other ports keep theirs"
        );
        assert_eq!(xlate(&mut n, &frame(B, A), 2, &ports), "3");
        let g = n.generation();
        assert!(!fdb.set_port_vlan(1, &PortVlan::access(10)), "unchanged");
        assert_eq!(n.generation(), g);
        // access -> trunk of VLAN 10: untagged from it is now dropped,
        // tagged 10 floods.
        assert!(fdb.set_port_vlan(1, &PortVlan::trunk(&[10])));
        assert_ne!(n.generation(), g);
        assert_eq!(xlate(&mut n, &frame(A, BCAST), 1, &ports), "drop");
        assert_eq!(xlate(&mut n, &tagged(A, BCAST, 10), 1, &ports), "2,3");
        // ...and back to the default: a trunk of every VLAN.
        assert!(fdb.clear_port_vlan(1));
        assert!(
            !fdb.set_port_vlan(1, &PortVlan::default()),
            "same as cleared"
        );
        assert_eq!(xlate(&mut n, &frame(A, BCAST), 1, &ports), "2,3");
        // Blocked: nothing in, nothing out, nothing learned.
        let c = [0x50, 0x54, 0, 0, 0, 0xc];
        assert!(fdb.block_port(1));
        assert_eq!(xlate(&mut n, &frame(c, BCAST), 1, &ports), "drop");
        assert_eq!(fdb.lookup(0, MacAddr(c)), None);
        assert_eq!(xlate(&mut n, &frame(B, BCAST), 2, &ports), "3");
        fdb.remove_port(1);
        assert_eq!(xlate(&mut n, &frame(B, BCAST), 2, &ports), "1,3");
    }

    #[test]
    fn xlate_normal_adds_to_mask_and_actions() {
        let (mut n, fdb) = Normal::new();
        fdb.set_port_vlan(2, &PortVlan::access(10));
        let mut mask = FlowMask::default();
        mask.set_exact(Field::NwDst);
        let mut actions = vec![DpAction::Output(9)];
        let key = extract_frame(&tagged(A, BCAST, 0x2000 | 10), 1);
        let mut t = Tags::EMPTY;
        let after = n.xlate_normal(&key, &[1, 2, 3], &mut mask, &mut actions, &mut t);
        assert_eq!(ActionsFmt(&actions).to_string(), "9,3,pop_vlan,2");
        assert_eq!(after, 0, "left untagged");
        for f in [
            Field::InPort,
            Field::DlSrc,
            Field::DlDst,
            Field::VlanTci,
            Field::NwDst,
        ] {
            assert!(mask.is_exact(f), "{f:?}");
        }
        assert!(mask.is_wildcarded(Field::DlType));
        let key = extract_frame(&frame(B, BCAST), 2);
        let mut actions = Vec::new();
        assert_eq!(
            n.xlate_normal(&key, &[1, 2, 3], &mut mask, &mut actions, &mut t),
            0x1000 | 10
        );
        assert_eq!(
            ActionsFmt(&actions).to_string(),
            "push_vlan(vid=10,pcp=0),1,3"
        );
    }

    #[test]
    fn settings_from_columns() {
        assert_eq!(
            PortVlan::from_columns(Some(10), &[], None),
            Ok(PortVlan::access(10))
        );
        let p = PortVlan::from_columns(Some(10), &[20, 30], None).unwrap();
        assert_eq!(p.mode(), VlanMode::Access);
        assert!(p.ignores_trunks());
        assert_eq!(p.to_string(), "vlan_mode=access tag=10 trunks=20,30");
        let p = PortVlan::from_columns(None, &[], Some("native-untagged")).unwrap();
        assert_eq!(p.mode(), VlanMode::NativeUntagged);
        assert_eq!(PortVlan::default().mode(), VlanMode::Trunk);
        for (tag, trunks, mode, want) in [
            (
                Some(4096),
                &[][..],
                None,
                "tag 4096 is not a VLAN ID (0 to 4095)",
            ),
            (Some(-1), &[], None, "tag -1 is not a VLAN ID"),
            (None, &[1, 5000], None, "trunks member 5000 is not"),
            (
                None,
                &[],
                Some("dot1q-tunnel"),
                "vlan_mode \"dot1q-tunnel\" is not supported",
            ),
        ] {
            let e = PortVlan::from_columns(tag, trunks, mode)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn vlans_through_the_datapath() {
        let (normal, fdb) = Normal::new();
        // 1: trunk of every VLAN, 2: access 10, 3: trunk of VLAN 10.
        fdb.set_port_vlan(2, &PortVlan::access(10));
        fdb.set_port_vlan(3, &PortVlan::trunk(&[10]));
        let (dp, peers) = spawn_dp("v", normal);
        let wait = wait_sent;
        // Untagged from the trunk is VLAN 0: nobody else carries it. The
        // same MACs tagged 10 must not hit that (drop) megaflow.
        peers[0].inject_frame(&frame(A, BCAST));
        let drop_flow = |dp: &DpHandle| {
            dp.dump_flows().iter().any(|f| {
                f.starts_with("recirc_id(0),in_port(1),eth(src=50:54:00:00:00:0a,")
                    && f.ends_with("actions:drop")
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            // The first upcall learned A (flushing megaflows); repeat until
            // the drop megaflow stays installed.
            if drop_flow(&dp) {
                break;
            }
            peers[0].inject_frame(&frame(A, BCAST));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(drop_flow(&dp), "{:?}", dp.dump_flows());
        peers[0].inject_frame(&tagged(A, BCAST, 10));
        assert_eq!(
            wait(&peers[1], 1),
            vec![frame(A, BCAST)],
            "untagged on access"
        );
        assert_eq!(
            wait(&peers[2], 1),
            vec![tagged(A, BCAST, 10)],
            "tagged on trunk"
        );
        // And the other way: from the access port, tagged onto both trunks.
        peers[1].inject_frame(&frame(B, BCAST));
        assert_eq!(wait(&peers[0], 1), vec![tagged(B, BCAST, 10)]);
        assert_eq!(wait(&peers[2], 1), vec![tagged(B, BCAST, 10)]);
        std::thread::sleep(Duration::from_millis(20));
        for p in &peers {
            assert!(p.take_sent().is_empty());
        }
        // Learning B removed the megaflows tagged with B; the upcall that
        // learned it is not cached (the datapath does not install a
        // translation whose tags are dirty), the next is.
        peers[1].inject_frame(&frame(B, BCAST));
        assert_eq!(wait(&peers[0], 1), vec![tagged(B, BCAST, 10)]);
        assert_eq!(wait(&peers[2], 1), vec![tagged(B, BCAST, 10)]);
        let flows = dp.dump_flows();
        assert!(
            flows
                .iter()
                .any(|f| f.starts_with("recirc_id(0),in_port(2),eth(")
                    && f.ends_with("actions:push_vlan(vid=10,pcp=0),1,3")),
            "{flows:?}"
        );
        dp.shutdown();
    }

    /// Which `vlan_tci` (with [`VLAN_CFI`], 0 untagged) each port gets when
    /// a packet with `in_tci` runs through `acts`; asserts that tags never
    /// stack.
    fn effect(in_tci: u16, acts: &[DpAction]) -> std::collections::BTreeMap<OfPort, u16> {
        let mut cur = in_tci;
        let mut out = std::collections::BTreeMap::new();
        for a in acts {
            match *a {
                DpAction::Output(p) => assert!(out.insert(p, cur).is_none(), "{p} twice"),
                DpAction::PopVlan => cur = 0,
                DpAction::PushVlan { tci, .. } => {
                    assert_eq!(cur, 0, "stacked tags in {}", ActionsFmt(acts));
                    cur = tci | VLAN_CFI;
                }
                DpAction::Drop => {}
                ref other => panic!("NORMAL emitted {other:?}"),
            }
        }
        out
    }

    /// Parses OVS's "Datapath actions:" text (outputs, push_vlan, pop_vlan).
    fn parse_ovs_actions(mut s: &str) -> Vec<DpAction> {
        let mut acts = Vec::new();
        while !s.is_empty() {
            if let Some(rest) = s.strip_prefix("push_vlan(vid=") {
                let (args, rest) = rest.split_once(')').unwrap();
                let (vid, pcp) = args.split_once(",pcp=").unwrap();
                let (vid, pcp): (u16, u16) = (vid.parse().unwrap(), pcp.parse().unwrap());
                acts.push(DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: (pcp << 13) | vid | VLAN_CFI,
                });
                s = rest;
            } else if let Some(rest) = s.strip_prefix("pop_vlan") {
                acts.push(DpAction::PopVlan);
                s = rest;
            } else if let Some(rest) = s.strip_prefix("drop") {
                s = rest;
            } else {
                let end = s.find(',').unwrap_or(s.len());
                acts.push(DpAction::Output(s[..end].parse().unwrap()));
                s = &s[end..];
            }
            s = s.strip_prefix(',').unwrap_or(s);
        }
        acts
    }

    #[test]
    fn same_packets_as_ovs() {
        // `ovs-appctl ofproto/trace` on Open vSwitch 3.1.0 (dummy datapath,
        // standalone bridge br0, LOCAL = 100) with p1 (no settings),
        // p2 trunks=10,20, p3 tag=10, p4 tag=10 trunks=20
        // vlan_mode=native-untagged, p5 the same native-tagged,
        // p6 trunks=0,10; broadcasts from 50:54:00:00:00:01.
        let (mut n, fdb) = Normal::new();
        fdb.set_port_vlan(2, &PortVlan::trunk(&[10, 20]));
        fdb.set_port_vlan(3, &PortVlan::access(10));
        let native = |mode| PortVlan {
            tag: Some(10),
            trunks: vec![20],
            vlan_mode: Some(mode),
        };
        fdb.set_port_vlan(4, &native(VlanMode::NativeUntagged));
        fdb.set_port_vlan(5, &native(VlanMode::NativeTagged));
        fdb.set_port_vlan(6, &PortVlan::trunk(&[0, 10]));
        let ports = [1, 2, 3, 4, 5, 6, 100];
        let src = [0x50, 0x54, 0, 0, 0, 1];
        for (in_port, tci, ovs) in [
            (
                3,
                None,
                "push_vlan(vid=10,pcp=0),100,2,pop_vlan,4,push_vlan(vid=10,pcp=0),1,5,6",
            ),
            (
                3,
                Some(0xa000),
                "pop_vlan,push_vlan(vid=10,pcp=5),100,2,pop_vlan,4,push_vlan(vid=10,pcp=5),1,5,6",
            ),
            (1, Some(0x0000), "pop_vlan,100,6"),
            (1, Some(0x2000), "100,6"),
            (
                4,
                None,
                "push_vlan(vid=10,pcp=0),100,pop_vlan,3,push_vlan(vid=10,pcp=0),2,1,5,6",
            ),
            (
                2,
                Some(10),
                "100,pop_vlan,3,4,push_vlan(vid=10,pcp=0),1,5,6",
            ),
            (1, Some(0x6000 | 20), "100,2,4,5"),
            (1, Some(30), "100"),
            (3, Some(10), "drop"),
            (2, None, "drop"),
        ] {
            let f = match tci {
                None => frame(src, BCAST),
                Some(t) => tagged(src, BCAST, t),
            };
            let key = extract_frame(&f, in_port);
            let up = n.translate(&key, &ports, Instant::now());
            assert_eq!(
                effect(key.vlan_tci(), &up.actions),
                effect(key.vlan_tci(), &parse_ovs_actions(ovs)),
                "in_port {in_port} tci {tci:?}: ours {} OVS {ovs}",
                ActionsFmt(&up.actions)
            );
        }
    }
}
