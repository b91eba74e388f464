//! Multicast control (`feature-multicast-control`, `io/netif.h`): the
//! frontend subscribes to multicast groups with
//! `XEN_NETIF_EXTRA_TYPE_MCAST_ADD` / `_DEL` extras on its TX ring, and
//! once it wrote `request-multicast-control = 1` only those groups'
//! frames reach it (Linux `interface.c` `xenvif_mcast_*`). Broadcast
//! always passes.

/// Most groups one vif may subscribe to (Linux `XEN_NETBK_MCAST_MAX`).
pub const MCAST_MAX: usize = 64;

/// One multicast control request from the TX ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum McastOp {
    /// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
    Add([u8; 6]),
    /// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
    Del([u8; 6]),
}

/// The groups a frontend subscribed to.
#[derive(Debug, Default)]
pub(super) struct McastFilter {
    groups: Vec<[u8; 6]>,
}

/// Why an `MCAST_ADD` was refused (answered `NETIF_RSP_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum McastRefused {
    /// The address is not a multicast (group) address.
    NotMulticast,
    /// [`MCAST_MAX`] groups are already subscribed.
    Full,
}

impl McastFilter {
    /// Apply one request. Adding a group twice or deleting one that is
    /// not subscribed succeeds and changes nothing (Linux keeps duplicate
    /// entries; one entry is enough to match).
    pub(super) fn apply(&mut self, op: McastOp) -> Result<(), McastRefused> {
        match op {
            McastOp::Add(addr) => {
                if addr[0] & 1 == 0 {
                    return Err(McastRefused::NotMulticast);
                }
                if self.groups.contains(&addr) {
                    return Ok(());
                }
                if self.groups.len() >= MCAST_MAX {
                    return Err(McastRefused::Full);
                }
                self.groups.push(addr);
            }
            McastOp::Del(addr) => self.groups.retain(|g| *g != addr),
        }
        Ok(())
    }

    /// Whether a frame with this Ethernet header goes to the frontend:
    /// everything if it did not request multicast control, else unicast
    /// and broadcast always and a group address only if subscribed. A
    /// frame shorter than a MAC address passes (the caller drops it for
    /// other reasons).
    pub(super) fn admits(&self, fe: &super::FrontendConfig, frame: &[u8]) -> bool {
        if !fe.multicast_control {
            return true;
        }
        let Some(dst) = frame.get(..6) else {
            return true;
        };
        if dst[0] & 1 == 0 || dst.iter().all(|&b| b == 0xff) {
            return true;
        }
        self.groups.iter().any(|g| g[..] == *dst)
    }

    /// Number of subscribed groups.
    pub(super) fn len(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G1: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    const G2: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];

    #[test]
    fn subscribe_match_unsubscribe() {
        let mut f = McastFilter::default();
        let mut fe = super::super::FrontendConfig::new(1, 0, 8, 9);
        let frame = |dst: [u8; 6]| [&dst[..], &[0u8; 8][..]].concat();
        assert!(f.admits(&fe, &frame(G1)), "no multicast control: all pass");
        fe.multicast_control = true;
        assert!(!f.admits(&fe, &frame(G1)));
        assert!(f.admits(&fe, &frame([0xff; 6])), "broadcast always passes");
        assert!(
            f.admits(&fe, &frame([0x02, 0, 0, 0, 0, 1])),
            "unicast passes"
        );
        f.apply(McastOp::Add(G1)).unwrap();
        f.apply(McastOp::Add(G1)).unwrap();
        assert_eq!(f.len(), 1);
        assert!(f.admits(&fe, &frame(G1)) && !f.admits(&fe, &frame(G2)));
        f.apply(McastOp::Del(G1)).unwrap();
        assert!(!f.admits(&fe, &frame(G1)));
        f.apply(McastOp::Del(G2)).unwrap();
    }

    #[test]
    fn refusals() {
        let mut f = McastFilter::default();
        assert_eq!(
            f.apply(McastOp::Add([0x02, 0, 0, 0, 0, 1])),
            Err(McastRefused::NotMulticast)
        );
        for i in 0..MCAST_MAX {
            f.apply(McastOp::Add([0x01, 0, 0x5e, 0, 1, i as u8]))
                .unwrap();
        }
        assert_eq!(f.apply(McastOp::Add(G2)), Err(McastRefused::Full));
        assert_eq!(f.len(), MCAST_MAX);
    }
}
