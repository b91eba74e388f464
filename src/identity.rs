//! A bridge's identity: its datapath id (OpenFlow `datapath_id`, OVS
//! `Bridge:datapath_id`) and its MAC address (the LOCAL port's, OVS
//! `Bridge:other_config:hwaddr`).
//!
//! As in OVS's `bridge_pick_local_hw_addr` and `bridge_pick_datapath_id`
//! (vswitchd/bridge.c), configured values win: `other_config:hwaddr`
//! (a unicast MAC) sets the MAC, `other_config:datapath-id` (exactly 16
//! hex digits, not zero) the datapath id; with only a MAC configured the
//! datapath id is that MAC as a 48-bit number. Unlike OVS, which falls
//! back to a port's MAC or a random one, a bridge without configured
//! values takes both from a hash of the host's identity and the bridge
//! name, so the same bridge keeps them across restarts and two hosts with
//! a bridge of the same name (every host's `xenbr0`) differ. The host's
//! identity is, in this order: `Open_vSwitch:external_ids:system-id` (what
//! OVS's start-up scripts set and OVN names its chassis after),
//! `/etc/machine-id`, the lowest permanent MAC address of the host's
//! network devices, the host name.

use std::collections::BTreeMap;

/// A bridge's datapath id and MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// OpenFlow datapath id (64 bits; OVS writes it as 16 hex digits).
    pub datapath_id: u64,
    /// The bridge's MAC address (its LOCAL port's).
    pub hwaddr: [u8; 6],
}

/// FNV-1a, 64 bit.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mac_to_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0, |a, b| (a << 8) | u64::from(*b))
}

impl Identity {
    /// The default identity of bridge `bridge` on the host `host_id`: a
    /// locally administered unicast MAC from their hash, and that MAC as
    /// the datapath id.
    pub fn derived(host_id: &str, bridge: &str) -> Identity {
        let h = fnv1a(&[host_id.as_bytes(), bridge.as_bytes()]).to_be_bytes();
        let mut mac = [h[2], h[3], h[4], h[5], h[6], h[7]];
        mac[0] = (mac[0] & 0xfe) | 0x02;
        Identity {
            datapath_id: mac_to_u64(mac),
            hwaddr: mac,
        }
    }

    /// The identity of bridge `bridge` given its `other_config` (keys
    /// `datapath-id` and `hwaddr`) and the host's identity. Values that
    /// cannot be used are returned as warnings (and not used), as OVS
    /// logs them.
    pub fn configured(
        host_id: &str,
        bridge: &str,
        other_config: &BTreeMap<String, String>,
    ) -> (Identity, Vec<String>) {
        let mut id = Identity::derived(host_id, bridge);
        let mut warnings = Vec::new();
        if let Some(s) = other_config.get("hwaddr") {
            match parse_mac(s) {
                Some(m) if m[0] & 1 == 0 && m != [0; 6] => {
                    id.hwaddr = m;
                    id.datapath_id = mac_to_u64(m);
                }
                Some(_) => warnings.push(format!(
                    "bridge {bridge}: other_config:hwaddr {s} is a multicast or zero address: not used"
                )),
                None => warnings.push(format!(
                    "bridge {bridge}: other_config:hwaddr {s:?} is not a MAC address (xx:xx:xx:xx:xx:xx): not used"
                )),
            }
        }
        if let Some(s) = other_config.get("datapath-id") {
            match parse_dpid(s) {
                Some(d) => id.datapath_id = d,
                None => warnings.push(format!(
                    "bridge {bridge}: other_config:datapath-id {s:?} is not 16 hex digits (and not zero): not used"
                )),
            }
        }
        (id, warnings)
    }
}

/// `xx:xx:xx:xx:xx:xx` (hex, either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// OVS `dpid_from_string`: exactly 16 hex digits, not all zero.
fn parse_dpid(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|d| *d != 0)
}

/// The host's identity (see the module docs) when the database gives no
/// `system-id`; read once per process.
pub fn host_id() -> &'static str {
    static HOST_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST_ID.get_or_init(read_host_id)
}

fn read_host_id() -> String {
    if let Ok(s) = std::fs::read_to_string("/etc/machine-id") {
        let s = s.trim();
        if !s.is_empty() {
            return s.to_owned();
        }
    }
    if let Some(mac) = lowest_permanent_mac() {
        return mac;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The lowest MAC address among network devices whose address is their
/// own (`addr_assign_type` 0: permanent), not one set by software.
fn lowest_permanent_mac() -> Option<String> {
    let dir = std::fs::read_dir("/sys/class/net").ok()?;
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("addr_assign_type"))
                .is_ok_and(|t| t.trim() == "0")
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
        .map(|a| a.trim().to_owned())
        .filter(|a| parse_mac(a).is_some_and(|m| m != [0; 6]))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oc(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn derived_differs_by_host_and_bridge_and_is_stable() {
        let a = Identity::derived("host-a", "xenbr0");
        assert_eq!(a, Identity::derived("host-a", "xenbr0"));
        assert_ne!(a, Identity::derived("host-b", "xenbr0"));
        assert_ne!(a, Identity::derived("host-a", "xenbr1"));
        // Locally administered unicast; the dpid is the MAC.
        assert_eq!(a.hwaddr[0] & 3, 2);
        assert_eq!(a.datapath_id, mac_to_u64(a.hwaddr));
    }

    #[test]
    fn configured_values_win() {
        let (id, w) = Identity::configured("h", "br0", &oc(&[("datapath-id", "00000000000000fc")]));
        assert_eq!(id.datapath_id, 0xfc);
        assert!(w.is_empty());
        let (id, w) = Identity::configured("h", "br0", &oc(&[("hwaddr", "02:00:00:00:00:2A")]));
        assert_eq!(id.hwaddr, [2, 0, 0, 0, 0, 0x2a]);
        assert_eq!(id.datapath_id, 0x0200_0000_002a);
        assert!(w.is_empty());
        let (id, _) = Identity::configured(
            "h",
            "br0",
            &oc(&[
                ("hwaddr", "02:00:00:00:00:2a"),
                ("datapath-id", "0000000000000001"),
            ]),
        );
        assert_eq!((id.datapath_id, id.hwaddr[5]), (1, 0x2a));
    }

    #[test]
    fn bad_values_are_reported_not_used() {
        let d = Identity::derived("h", "br0");
        for (k, v) in [
            ("datapath-id", "fc"),
            ("datapath-id", "0000000000000000"),
            ("datapath-id", "00000000000000fg"),
            ("hwaddr", "01:00:5e:00:00:01"),
            ("hwaddr", "00:00:00:00:00:00"),
            ("hwaddr", "02:00:00:00:00"),
            ("hwaddr", "02:00:00:00:00:00:00"),
            ("hwaddr", "zz:00:00:00:00:00"),
        ] {
            let (id, w) = Identity::configured("h", "br0", &oc(&[(k, v)]));
            assert_eq!(id, d, "{k}={v}");
            assert_eq!(w.len(), 1, "{k}={v}: {w:?}");
        }
    }
}
