//! The tunnel neighbour table, as OVS's `lib/tnl-neigh-cache.c`: the MAC
//! of each next hop, learned from ARP and neighbour advertisements that
//! the underlay bridge delivers to its internal port, and the ARP
//! requests and neighbour solicitations sent when one is missing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use xennet_datapath::csum;

/// How long an entry is used after it was last learned (OVS
/// `NEIGH_ENTRY_DEFAULT_IDLE_TIME_MS`, 15 minutes).
pub const IDLE: Duration = Duration::from_secs(15 * 60);
/// Most entries kept; learning beyond it forgets the oldest.
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone)]
struct Entry {
    mac: [u8; 6],
    bridge: String,
    learned: Instant,
}

/// Next hop -> MAC.
#[derive(Debug, Default)]
pub struct NeighTable {
    map: BTreeMap<IpAddr, Entry>,
}

fn mac_text(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

impl NeighTable {
    /// The MAC of `ip`, if learned within [`IDLE`].
    pub fn lookup(&self, ip: IpAddr, now: Instant) -> Option<[u8; 6]> {
        self.map
            .get(&ip)
            .filter(|e| now.saturating_duration_since(e.learned) < IDLE)
            .map(|e| e.mac)
    }

    /// Learn that `ip` is at `mac`, behind `bridge`.
    pub fn learn(&mut self, ip: IpAddr, mac: [u8; 6], bridge: &str, now: Instant) {
        if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(&ip) {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.learned)
                .map(|(k, _)| *k)
            {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(
            ip,
            Entry {
                mac,
                bridge: bridge.to_owned(),
                learned: now,
            },
        );
    }

    /// `tnl/neigh/flush`.
    pub fn flush(&mut self) {
        self.map.clear();
    }

    /// `tnl/neigh/show`, as OVS prints it.
    pub fn show(&self) -> String {
        let mut s = format!("{:<45} {:<19} {}\n", "IP", "MAC", "Bridge");
        s.push_str(&"=".repeat(90));
        s.push('\n');
        for (ip, e) in &self.map {
            let _ = writeln!(
                s,
                "{:<45} {:<19} {}",
                ip.to_string(),
                mac_text(&e.mac),
                e.bridge
            );
        }
        s
    }
}

/// The (address, MAC) an ARP packet (request or reply) or an IPv6
/// neighbour advertisement announces, if `frame` is one.
pub fn snoop(frame: &[u8]) -> Option<(IpAddr, [u8; 6])> {
    match frame.get(12..14)? {
        [0x08, 0x06] => {
            let a = frame.get(14..42)?;
            // Ethernet/IPv4 ARP, request or reply.
            if a[0..6] != [0, 1, 8, 0, 6, 4] || !matches!(a[7], 1 | 2) {
                return None;
            }
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&a[8..14]);
            let spa = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
            (!spa.is_unspecified() && mac != [0; 6]).then_some((IpAddr::V4(spa), mac))
        }
        [0x86, 0xdd] => {
            let ip = frame.get(14..54)?;
            let icmp = frame.get(54..)?;
            // Neighbour advertisement (type 136), no extension headers.
            if ip[6] != 58 || icmp.len() < 24 || icmp[0] != 136 {
                return None;
            }
            let mut t = [0u8; 16];
            t.copy_from_slice(&icmp[8..24]);
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&frame[6..12]);
            // Target link-layer address option (RFC 4861 §4.6.1), if any.
            let mut opts = &icmp[24..];
            while opts.len() >= 8 {
                let len = usize::from(opts[1]) * 8;
                if len == 0 || len > opts.len() {
                    break;
                }
                if opts[0] == 2 {
                    mac.copy_from_slice(&opts[2..8]);
                }
                opts = &opts[len..];
            }
            Some((IpAddr::V6(Ipv6Addr::from(t)), mac))
        }
        _ => None,
    }
}

/// An ARP request from `mac`/`src` for `target`, padded to 60 bytes.
pub fn arp_request(mac: [u8; 6], src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// A neighbour solicitation (RFC 4861 §4.3) from `mac`/`src` for `target`,
/// to its solicited-node multicast address.
pub fn ns_request(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let dst = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut f = Vec::with_capacity(86);
    f.extend_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let l4 = f.len();
    f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&t);
    f.extend_from_slice(&[1, 1]);
    f.extend_from_slice(&mac);
    let ps = csum::pseudo_v6(src.octets(), dst.octets(), 58, 32);
    let c = !csum::fold(csum::sum(&f[l4..], ps));
    f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_from_arp_and_na_and_shows() {
        let mac = [2, 0, 0, 0, 0, 7];
        let req = arp_request(
            mac,
            Ipv4Addr::new(172, 31, 1, 2),
            Ipv4Addr::new(172, 31, 1, 1),
        );
        assert_eq!(req.len(), 60);
        let ip: IpAddr = "172.31.1.2".parse().unwrap();
        assert_eq!(snoop(&req), Some((ip, mac)));
        let mut t = NeighTable::default();
        let now = Instant::now();
        t.learn(ip, mac, "brp", now);
        assert_eq!(t.lookup(ip, now), Some(mac));
        assert_eq!(t.lookup(ip, now + IDLE), None);
        assert!(t.show().contains("172.31.1.2"));
        assert!(t.show().contains("02:00:00:00:00:07   brp"));
        t.flush();
        assert_eq!(t.lookup(ip, now), None);

        // An NS is not an NA; make one into an NA with a TLL option.
        let src: Ipv6Addr = "fd00::2".parse().unwrap();
        let mut na = ns_request(mac, src, "fd00::1".parse().unwrap());
        assert_eq!(snoop(&na), None);
        na[54] = 136;
        na[78] = 2;
        na[80..86].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        let target: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(snoop(&na), Some((target, [2, 0, 0, 0, 0, 9])));
    }

    #[test]
    fn the_solicitation_checksum_verifies() {
        let ns = ns_request(
            [2, 0, 0, 0, 0, 1],
            "fd00::1".parse().unwrap(),
            "fd00::2".parse().unwrap(),
        );
        assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 0, 0, 2]);
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&ns[22..38]);
        d.copy_from_slice(&ns[38..54]);
        let ps = csum::pseudo_v6(s, d, 58, 32);
        assert_eq!(csum::fold(csum::sum(&ns[54..], ps)), 0xffff);
    }
}
