//! What a `controller` action's packet-in carries beyond the `Copy`
//! datapath [`Userdata`](xennet_datapath::Userdata): the controller id,
//! the userdata bytes, the nonzero pipeline fields (registers, tunnel
//! id, packet mark) at that point and a `controller(pause)`'s
//! continuation (one per distinct frozen state, as OVS keeps one
//! recirculation id per frozen state of a megaflow), as Open vSwitch puts them in an
//! `NXT_PACKET_IN2` (`lib/ofp-packet.c` `ofputil_put_packet_in`,
//! `ofproto-dpif-xlate.c` `execute_controller_action`).
//!
//! Translation interns each distinct set once and the datapath action
//! carries its handle ([`Userdata::extra`](xennet_datapath::Userdata)),
//! so a megaflow that sends packet-ins stays `Copy` and cheap; the upcall
//! handler looks the set up when the packet arrives. The table is
//! process-wide and bounded ([`MAX_ENTRIES`], [`MAX_BYTES`]): when full,
//! a new set is not interned and the packet-in goes out without it
//! (counted in [`crate::xlate::CONTROLLER_EXTRAS_DROPPED`]). An entry
//! goes once neither a translation nor an installed megaflow used it for
//! [`xennet_datapath::intern::GRACE`] (each datapath reports the handles
//! its megaflows hold once a second, [`housekeeping`]), so a pipeline
//! whose packet-ins carry ever new registers or continuations does not
//! fill the table for good; a handle whose entry went finds nothing
//! (its packet-in goes out without the extras, as for a full table).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use xennet_datapath::intern::InternTable;

use xennet_openflow::model::OxmField;
use xennet_openflow::packet_in2::continuation::Continuation;

/// Most distinct sets kept.
pub const MAX_ENTRIES: usize = 65_536;
/// Most userdata bytes kept, all sets together.
pub const MAX_BYTES: usize = 16 << 20;

/// One interned set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PinExtras {
    /// `controller(id=N)`: only connections with this controller id
    /// (`NXT_SET_CONTROLLER_ID`) receive the packet-in; 0 is the default.
    pub controller_id: u16,
    /// The action's userdata (`NXPINT_USERDATA`).
    pub userdata: Vec<u8>,
    /// Nonzero pipeline fields other than in_port and metadata
    /// (`NXPINT_METADATA`).
    pub pipeline: Vec<(OxmField, u128)>,
    /// The Geneve options at the `controller` action (option space and
    /// present bitmap), when any is present: the bridge names them
    /// `tun_metadata<i>` through its TLV map when it sends the packet-in
    /// (OVS `tun_metadata_get_fmd`).
    pub tun_md: Option<xennet_openflow::tlv::TunMetadataWords>,
    /// A `controller(pause)`'s continuation (`NXPINT_CONTINUATION`),
    /// without the bridge, which the bridge fills in.
    pub continuation: Option<Box<Continuation>>,
}

impl PinExtras {
    /// Bytes counted against [`MAX_BYTES`]: the userdata, and a
    /// continuation's actions and stack at 64 bytes each (about what
    /// an action takes in memory).
    fn weight(&self) -> usize {
        self.userdata.len()
            + self.continuation.as_ref().map_or(0, |c| {
                64 * (c.ops.len() + c.action_set.len() + c.stack.len() + 1)
            })
    }
}

fn table() -> &'static InternTable<Arc<PinExtras>> {
    static T: OnceLock<InternTable<Arc<PinExtras>>> = OnceLock::new();
    T.get_or_init(|| InternTable::new(MAX_ENTRIES, MAX_BYTES))
}

/// The handle of `e` (nonzero), or `None` when the table is full.
pub fn intern(e: PinExtras) -> Option<u32> {
    let w = e.weight();
    table().intern(&Arc::new(e), w, Instant::now())
}

/// The set behind handle `id` (`None` for 0, an unknown handle or one
/// whose entry went).
pub fn get(id: u32) -> Option<Arc<PinExtras>> {
    table().get(id)
}

/// A datapath's once-a-second part of reclaiming entries: mark the
/// handles `ids` its installed megaflows use, then free the entries
/// unused for [`xennet_datapath::intern::GRACE`] (every datapath marks
/// once a second, so an entry a megaflow uses is never freed).
pub fn housekeeping(ids: &[u32], now: Instant) {
    let t = table();
    t.mark_used(ids, now);
    t.sweep(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_set_same_handle() {
        let e = PinExtras {
            controller_id: 3,
            userdata: vec![1, 2, 3],
            pipeline: vec![(OxmField::Reg(1), 7)],
            tun_md: None,
            continuation: None,
        };
        let a = intern(e.clone()).unwrap();
        assert_ne!(a, 0);
        assert_eq!(intern(e.clone()), Some(a));
        assert_eq!(*get(a).unwrap(), e);
        assert!(get(0).is_none());
        assert!(get(u32::MAX).is_none());
    }
}
