//! Port security: what a guest may send, checked on guest TX before a
//! frame reaches the switch (and its OpenFlow pipeline).
//!
//! The rules follow OVN's `port_security` (`northd`:
//! `build_port_security_ip`, `build_port_security_nd`) for addresses and
//! Neutron's firewall drivers for the DHCP and RA guard:
//!
//! - the source MAC must be the vif's (the backend `mac` key);
//! - ARP: the sender hardware address must be the vif's MAC, and, when
//!   the backend `ip` key lists IPv4 addresses, the sender protocol
//!   address one of them (or 0.0.0.0: an ARP probe, RFC 5227);
//! - IPv4, when `ip` lists IPv4 addresses: the source must be one of them
//!   (or 0.0.0.0 for a DHCP request, UDP to port 67);
//! - IPv6, when `ip` lists IPv6 addresses: the source must be one of them
//!   or the link-local address the MAC gives (modified EUI-64, RFC 4291
//!   appendix A), or `::` for MLD reports and neighbour solicitations to
//!   `ff02::/16` (duplicate address detection, RFC 4862 5.4.2); a
//!   neighbour advertisement's target must be one of those addresses too;
//! - neighbour discovery (RFC 4861 4.1-4.4): every source link-layer
//!   option of a router solicitation, router advertisement or neighbour
//!   solicitation, and every target link-layer option of a neighbour
//!   advertisement, must carry the vif's MAC, and the options must parse
//!   (RFC 4861 4.6: length 0 or past the message is invalid);
//! - DHCP guard: DHCPv4 server messages (UDP port 67 to 68, RFC 2131) and
//!   DHCPv6 server messages (UDP 547 to 546, RFC 8415) are dropped unless
//!   the port may serve DHCP;
//! - RA guard (RFC 6105): router advertisements (ICMPv6 134) and redirects
//!   (137) are dropped unless the port may route, and so are IPv6 packets
//!   whose header chain cannot be followed to the upper-layer header (cut
//!   short, or more than 8 extension headers), as RFC 7113 section 3 asks.
//!
//! Address checks are per family: an `ip` key with only IPv4 addresses
//! leaves IPv6 sources unchecked (as Xen's hotplug scripts, which filter
//! IPv4 only), but the MAC, ARP sender MAC and ND option checks and both
//! guards always apply. Frames too short to hold the field checked pass:
//! the switch's flow extraction sees no such field in them.
//!
//! Cost: the forwarding thread keeps the compiled [`Policy`] and reloads
//! it only when [`PortSecurity::generation`] (one atomic load per burst)
//! changed; a frame then costs a MAC compare, and an IPv4/IPv6/ARP header
//! look only for those ethertypes, the UDP ports or ICMPv6 type only when
//! a guard or an ND check needs them. No allocation, no lock per frame.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use xennet_datapath::packet::ethernet::{self, EtherType};
use xennet_datapath::packet::ipv6::skip_extensions;
use xennet_datapath::packet::IpProtocol;

/// Most addresses of one family (IPv4 or IPv6) [`PortSecurity`] holds for
/// one vif; further ones are ignored (and reported by
/// [`PortSecurity::set_ips`]).
pub const PORT_SECURITY_MAX_IPS: usize = 16;

/// Why port security dropped a guest frame (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Source MAC not the vif's (`rx_spoofed_mac`).
    Mac,
    /// IPv4 or IPv6 source address not the vif's (`rx_spoofed_ip`).
    Ip,
    /// ARP sender hardware or protocol address not the vif's
    /// (`rx_spoofed_arp`).
    Arp,
    /// Neighbour discovery with a link-layer option not the vif's MAC,
    /// options that do not parse, or an advertisement for an address not
    /// the vif's (`rx_spoofed_nd`).
    Nd,
    /// A DHCPv4 or DHCPv6 server message (`rx_rogue_dhcp`).
    Dhcp,
    /// A router advertisement or redirect, or an IPv6 header chain RA
    /// guard cannot follow (`rx_rogue_ra`).
    Ra,
}

/// The settings of one vif's port security as the control plane gives
/// them; [`Policy`] is what the forwarding thread checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Settings {
    /// The backend `mac` key.
    mac: Option<[u8; 6]>,
    /// The Interface's `external_ids:attached-mac` (OVSDB ports), used
    /// when the backend has no `mac`.
    attached_mac: Option<[u8; 6]>,
    /// Turned off for every port (the configuration file).
    global_off: bool,
    /// Turned off for this port (`other_config:xennet-port-security`).
    off: bool,
    ipv4: Vec<Ipv4Addr>,
    ipv6: Vec<Ipv6Addr>,
    /// The global DHCP server and RA defaults (configuration file).
    allow_dhcp_server: bool,
    allow_ra: bool,
    /// Per-port overrides of those (Interface `other_config`).
    port_allow_dhcp_server: Option<bool>,
    port_allow_ra: Option<bool>,
}

/// One vif's port security, compiled for the forwarding thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    mac: [u8; 6],
    /// The link-local address `mac` gives (modified EUI-64).
    lla: [u8; 16],
    ipv4: Vec<[u8; 4]>,
    ipv6: Vec<[u8; 16]>,
    /// Drop DHCP server messages.
    guard_dhcp: bool,
    /// Drop router advertisements and redirects.
    guard_ra: bool,
}

impl Settings {
    fn compile(&self) -> Option<Policy> {
        if self.off || self.global_off {
            return None;
        }
        let mac = self.mac.or(self.attached_mac)?;
        Some(Policy {
            mac,
            lla: link_local(mac).octets(),
            ipv4: self.ipv4.iter().map(Ipv4Addr::octets).collect(),
            ipv6: self.ipv6.iter().map(Ipv6Addr::octets).collect(),
            guard_dhcp: !self
                .port_allow_dhcp_server
                .unwrap_or(self.allow_dhcp_server),
            guard_ra: !self.port_allow_ra.unwrap_or(self.allow_ra),
        })
    }
}

/// The IPv6 link-local address of an interface with MAC `mac`: `fe80::`
/// and the modified EUI-64 interface identifier (RFC 4291 appendix A,
/// RFC 2464 section 4: the universal/local bit flipped, `ff:fe` in the
/// middle), as Linux's default `addr_gen_mode` and OVN's
/// `in6_generate_lla` make it.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    Ipv6Addr::from(a)
}

/// A vif's port security, shared by the control plane (which sets it) and
/// the vif's forwarding thread (which reads the compiled [`Policy`] when
/// [`Self::generation`] changed): the MAC the guest may send from (set
/// when the vif connects), the addresses it may use (the backend `ip`
/// key libxl writes for `ip=` in the vif spec), whether DHCP server and
/// router messages are allowed (globally, and per port), and whether the
/// operator turned the checks off for this port. Without a MAC nothing is
/// checked.
#[derive(Debug, Default)]
pub struct PortSecurity {
    /// Bumped after every change of `state`.
    generation: AtomicU64,
    state: Mutex<(Settings, Option<Arc<Policy>>)>,
}

impl PortSecurity {
    fn update(&self, f: impl FnOnce(&mut Settings)) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = st.0.clone();
        f(&mut s);
        if s != st.0 {
            if let (Some(m), Some(a)) = (s.mac, s.attached_mac) {
                if m != a && (st.0.mac, st.0.attached_mac) != (s.mac, s.attached_mac) {
                    tracing::warn!(
                        "port security: external_ids:attached-mac {} differs from the backend mac {}; the backend's applies",
                        fmt_mac(a),
                        fmt_mac(m)
                    );
                }
            }
            st.1 = s.compile().map(Arc::new);
            st.0 = s;
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Set (or clear) the MAC the guest may send from (the backend `mac`
    /// key).
    pub fn set_mac(&self, mac: Option<[u8; 6]>) {
        self.update(|s| s.mac = mac);
    }

    /// Set (or clear) the MAC the port's Interface gives
    /// (`external_ids:attached-mac`, which Xen's `vif-openvswitch` hotplug
    /// script and OpenStack write): checked when the backend has no `mac`
    /// key; when both are set and differ the backend's applies (with a
    /// warning).
    pub fn set_attached_mac(&self, mac: Option<[u8; 6]>) {
        self.update(|s| s.attached_mac = mac);
    }

    /// Turn the checks on (the default) or off for this port.
    pub fn set_enabled(&self, on: bool) {
        self.update(|s| s.off = !on);
    }

    /// The configuration file's settings: port security on (the default)
    /// or off for every port, and whether guests may send DHCP server
    /// messages and router advertisements (default: neither).
    pub fn set_defaults(&self, on: bool, allow_dhcp_server: bool, allow_ra: bool) {
        self.update(|s| {
            s.global_off = !on;
            s.allow_dhcp_server = allow_dhcp_server;
            s.allow_ra = allow_ra;
        });
    }

    /// This port's overrides of the guard defaults (`None`: the default).
    pub fn set_guard_overrides(&self, allow_dhcp_server: Option<bool>, allow_ra: Option<bool>) {
        self.update(|s| {
            s.port_allow_dhcp_server = allow_dhcp_server;
            s.port_allow_ra = allow_ra;
        });
    }

    /// Set the IPv4 and IPv6 addresses the guest may send from (at most
    /// [`PORT_SECURITY_MAX_IPS`] of each family; false when some were
    /// left out); none of a family: that family's sources are not checked.
    pub fn set_ips(&self, ips: &[IpAddr]) -> bool {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut all = true;
        for ip in ips {
            match ip {
                IpAddr::V4(a) if v4.len() < PORT_SECURITY_MAX_IPS => {
                    if !v4.contains(a) {
                        v4.push(*a);
                    }
                }
                IpAddr::V6(a) if v6.len() < PORT_SECURITY_MAX_IPS => {
                    if !v6.contains(a) {
                        v6.push(*a);
                    }
                }
                _ => all = false,
            }
        }
        self.update(|s| {
            s.ipv4 = v4;
            s.ipv6 = v6;
        });
        all
    }

    /// Changes so far: the forwarding thread reloads [`Self::policy`] when
    /// this moved (one atomic load).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// What is checked now: none when no MAC is set or the checks are off.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// The vif's MAC (the backend `mac` key, else the Interface's
    /// `attached-mac`), whether checked or not.
    pub fn mac(&self) -> Option<[u8; 6]> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.mac.or(st.0.attached_mac)
    }

    /// The vif's IPv4 addresses ([`Self::set_ips`]), whether checked or
    /// not.
    pub fn ipv4_addrs(&self) -> Vec<Ipv4Addr> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .ipv4
            .clone()
    }

    /// The MAC enforced now: none when unset or turned off.
    pub fn allowed(&self) -> Option<[u8; 6]> {
        self.policy().map(|p| p.mac)
    }
}

fn fmt_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl Policy {
    /// Check a guest frame (`frame` from its Ethernet header; up to two
    /// VLAN tags are looked through, as the switch's flow extraction
    /// does): `None` lets it through.
    pub fn check(&self, frame: &[u8]) -> Option<Violation> {
        if frame.get(6..12) != Some(&self.mac[..]) {
            return Some(Violation::Mac);
        }
        let (ty, l3) = ethernet::l3_offset(frame)?;
        let l3 = frame.get(l3..)?;
        match ty {
            EtherType::Ipv4 => self.check_ipv4(l3),
            EtherType::Arp => self.check_arp(l3),
            EtherType::Ipv6 => self.check_ipv6(l3),
            _ => None,
        }
    }

    fn check_ipv4(&self, ip: &[u8]) -> Option<Violation> {
        if self.ipv4.is_empty() && !self.guard_dhcp {
            return None;
        }
        let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
        // UDP ports of an unfragmented packet or a first fragment.
        let ports = || {
            let first = be16(ip, 6)? & 0x1fff == 0;
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if ip.get(9) != Some(&17) || !first || ihl < 20 {
                return None;
            }
            Some((be16(ip, ihl)?, be16(ip, ihl + 2)?))
        };
        if !self.ipv4.is_empty() && !self.ipv4.contains(&src) {
            let dhcp_request = src == [0; 4] && ports().is_some_and(|(_, d)| d == 67);
            if !dhcp_request {
                return Some(Violation::Ip);
            }
        }
        if self.guard_dhcp && ports() == Some((67, 68)) {
            return Some(Violation::Dhcp);
        }
        None
    }

    fn check_arp(&self, arp: &[u8]) -> Option<Violation> {
        // Ethernet/IPv4 ARP (RFC 826): hlen 6, plen 4; sha at 8, spa at 14.
        if arp.get(4..6) != Some(&[6, 4]) {
            return None;
        }
        let sha = arp.get(8..14)?;
        if sha != self.mac {
            return Some(Violation::Arp);
        }
        let spa: [u8; 4] = arp.get(14..18)?.try_into().ok()?;
        if !self.ipv4.is_empty() && spa != [0; 4] && !self.ipv4.contains(&spa) {
            return Some(Violation::Arp);
        }
        None
    }

    fn ipv6_allowed(&self, a: &[u8]) -> bool {
        a == self.lla || self.ipv6.iter().any(|x| x == a)
    }

    fn check_ipv6(&self, ip: &[u8]) -> Option<Violation> {
        let src = ip.get(8..24)?;
        let dst = ip.get(24..40)?;
        // The payload as the header says (Ethernet padding excluded; a
        // jumbogram's length 0 means the rest of the frame).
        let plen = usize::from(be16(ip, 4)?);
        let end = if plen == 0 {
            ip.len()
        } else {
            (40 + plen).min(ip.len())
        };
        let payload = ip.get(40..end)?;
        let up = skip_extensions(IpProtocol::from(*ip.get(6)?), payload);
        let l4 = if up.later_fragment {
            None
        } else if matches!(
            up.proto,
            IpProtocol::HopByHop
                | IpProtocol::Ipv6Route
                | IpProtocol::Ipv6Frag
                | IpProtocol::Ipv6Opts
                | IpProtocol::Ah
        ) {
            // The header chain stops short of the upper layer.
            if self.guard_ra {
                return Some(Violation::Ra);
            }
            None
        } else {
            payload.get(up.ext_len..).map(|l4| (up.proto, l4))
        };
        let icmp_type = match l4 {
            Some((IpProtocol::Icmpv6, b)) => b.first().copied(),
            _ => None,
        };
        if !self.ipv6.is_empty() && !self.ipv6_allowed(src) {
            // `::` only for MLD reports and DAD neighbour solicitations.
            let unspecified_ok = src == [0; 16]
                && dst[..2] == [0xff, 0x02]
                && matches!(icmp_type, Some(131 | 135 | 143));
            if !unspecified_ok {
                return Some(Violation::Ip);
            }
        }
        match l4 {
            Some((IpProtocol::Udp, udp)) => {
                if self.guard_dhcp && (be16(udp, 0), be16(udp, 2)) == (Some(547), Some(546)) {
                    return Some(Violation::Dhcp);
                }
                None
            }
            Some((IpProtocol::Icmpv6, icmp)) => self.check_icmpv6(icmp),
            _ => None,
        }
    }

    fn check_icmpv6(&self, icmp: &[u8]) -> Option<Violation> {
        let ty = *icmp.first()?;
        if self.guard_ra && matches!(ty, 134 | 137) {
            return Some(Violation::Ra);
        }
        // Where the options start, and which link-layer option must be
        // ours (RFC 4861 4.1-4.4).
        let (opts_at, option) = match ty {
            133 => (8, 1),
            134 => (16, 1),
            135 => (24, 1),
            136 => (24, 2),
            _ => return None,
        };
        if ty == 136 && !self.ipv6.is_empty() {
            // Too short for the target: receivers drop it (RFC 4861 7.1.2).
            let target = icmp.get(8..24)?;
            if !self.ipv6_allowed(target) {
                return Some(Violation::Nd);
            }
        }
        let mut opts = icmp.get(opts_at..)?;
        while !opts.is_empty() {
            let len = usize::from(*opts.get(1).unwrap_or(&0)) * 8;
            if len == 0 || len > opts.len() {
                return Some(Violation::Nd);
            }
            if opts[0] == option && opts.get(2..8) != Some(&self.mac[..]) {
                return Some(Violation::Nd);
            }
            opts = &opts[len..];
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0xab, 0xcd, 0xef];
    const OTHER: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];
    /// `link_local(MAC)`: fe80::216:3eff:feab:cdef.
    const LLA: [u8; 16] = [
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x16, 0x3e, 0xff, 0xfe, 0xab, 0xcd, 0xef,
    ];
    const V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_OTHER: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    const LL_OTHER: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    const UNSPEC: [u8; 16] = [0; 16];
    const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    /// The solicited-node group of `V6` (ff02::1:ff00:1).
    const SOLICITED: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1];

    fn eth(src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(src: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let len = u16::try_from(20 + l4.len()).unwrap().to_be_bytes();
        let mut ip = vec![0x45, 0, len[0], len[1], 0, 0, 0, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&[10, 0, 0, 2]);
        ip.extend_from_slice(l4);
        eth(MAC, 0x0800, &ip)
    }

    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 12, 0, 0, 1, 2, 3, 4]);
        u
    }

    fn arp(sha: [u8; 6], spa: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&sha);
        a.extend_from_slice(&spa);
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&[10, 0, 0, 2]);
        eth(MAC, 0x0806, &a)
    }

    /// An IPv6 frame from `MAC`; `next` is the first next-header value.
    fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        ip.extend_from_slice(&[next, 255]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(payload);
        eth(MAC, 0x86dd, &ip)
    }

    /// An ICMPv6 message: type, code 0, checksum 0, then `body`.
    fn icmp6(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0];
        m.extend_from_slice(body);
        m
    }

    /// A link-layer address option (RFC 4861 4.6.1): 1 source, 2 target.
    fn lla_opt(ty: u8, mac: [u8; 6]) -> Vec<u8> {
        let mut o = vec![ty, 1];
        o.extend_from_slice(&mac);
        o
    }

    fn ns(target: [u8; 16], opts: &[u8]) -> Vec<u8> {
        let mut b = vec![0; 4];
        b.extend_from_slice(&target);
        b.extend_from_slice(opts);
        icmp6(135, &b)
    }

    fn na(target: [u8; 16], opts: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0]; // solicited, override
        b.extend_from_slice(&target);
        b.extend_from_slice(opts);
        icmp6(136, &b)
    }

    fn rs(opts: &[u8]) -> Vec<u8> {
        let mut b = vec![0; 4];
        b.extend_from_slice(opts);
        icmp6(133, &b)
    }

    fn ra(opts: &[u8]) -> Vec<u8> {
        let mut b = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(opts);
        icmp6(134, &b)
    }

    /// A policy for `MAC` with `ips`; guards on unless `allow`.
    fn policy(ips: &[&str], allow: bool) -> Policy {
        let s = PortSecurity::default();
        s.set_mac(Some(MAC));
        let ips: Vec<IpAddr> = ips.iter().map(|a| a.parse().unwrap()).collect();
        assert!(s.set_ips(&ips));
        s.set_defaults(true, allow, allow);
        Arc::unwrap_or_clone(s.policy().unwrap())
    }

    #[test]
    fn link_local_is_modified_eui64() {
        assert_eq!(link_local(MAC), Ipv6Addr::from(LLA));
        assert_eq!(
            link_local(MAC).to_string(),
            "fe80::216:3eff:feab:cdef",
            "RFC 4291 appendix A"
        );
    }

    #[test]
    fn source_mac() {
        let p = policy(&[], false);
        assert_eq!(p.check(&ipv4([10, 0, 0, 1], 6, &[0; 20])), None);
        let mut f = ipv4([10, 0, 0, 1], 6, &[0; 20]);
        f[6..12].copy_from_slice(&OTHER);
        assert_eq!(p.check(&f), Some(Violation::Mac));
        assert_eq!(p.check(&f[..8]), Some(Violation::Mac));
    }

    #[test]
    fn ipv4_sources() {
        // No addresses: sources are not checked.
        let p = policy(&[], false);
        assert_eq!(p.check(&ipv4([10, 0, 0, 9], 17, &udp(1, 53))), None);
        let p = policy(&["10.0.0.1"], false);
        assert_eq!(p.check(&ipv4([10, 0, 0, 1], 17, &udp(1, 53))), None);
        assert_eq!(
            p.check(&ipv4([10, 0, 0, 9], 17, &udp(1, 53))),
            Some(Violation::Ip)
        );
        // DHCP from 0.0.0.0 passes, other 0.0.0.0 traffic does not.
        assert_eq!(p.check(&ipv4([0, 0, 0, 0], 17, &udp(68, 67))), None);
        assert_eq!(
            p.check(&ipv4([0, 0, 0, 0], 17, &udp(68, 53))),
            Some(Violation::Ip)
        );
        // Through an 802.1Q tag, and 802.1ad + 802.1Q.
        let mut tagged = ipv4([10, 0, 0, 9], 17, &udp(1, 53));
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(p.check(&tagged), Some(Violation::Ip));
        tagged.splice(12..12, [0x88, 0xa8, 0x00, 0x0b]);
        assert_eq!(p.check(&tagged), Some(Violation::Ip));
        // Too short to hold the source: passes (no source to match on).
        assert_eq!(p.check(&ipv4([10, 0, 0, 9], 17, &[])[..20]), None);
        // Only IPv4 addresses: IPv6 sources are not checked.
        let v6 = ipv6(V6_OTHER, ALL_NODES, 17, &udp(1, 53));
        assert_eq!(p.check(&v6), None);
    }

    #[test]
    fn arp_sender() {
        // The sender MAC is checked without addresses too.
        let p = policy(&[], false);
        assert_eq!(p.check(&arp(MAC, [10, 0, 0, 9])), None);
        assert_eq!(p.check(&arp(OTHER, [10, 0, 0, 9])), Some(Violation::Arp));
        let p = policy(&["10.0.0.1", "2001:db8::1"], false);
        assert_eq!(p.check(&arp(MAC, [10, 0, 0, 1])), None);
        assert_eq!(p.check(&arp(MAC, [10, 0, 0, 9])), Some(Violation::Arp));
        assert_eq!(p.check(&arp(OTHER, [10, 0, 0, 1])), Some(Violation::Arp));
        // A probe (RFC 5227) from 0.0.0.0.
        assert_eq!(p.check(&arp(MAC, [0, 0, 0, 0])), None);
        // Not Ethernet/IPv4 ARP, or cut short: no sender to match on.
        let mut odd = arp(OTHER, [10, 0, 0, 9]);
        odd[18] = 8;
        assert_eq!(p.check(&odd), None);
        assert_eq!(p.check(&arp(OTHER, [10, 0, 0, 9])[..24]), None);
    }

    #[test]
    fn ipv6_sources() {
        let tcp = [0u8; 20];
        // No IPv6 addresses: sources are not checked.
        let p = policy(&["10.0.0.1"], false);
        assert_eq!(p.check(&ipv6(V6_OTHER, V6, 6, &tcp)), None);
        let p = policy(&["10.0.0.1", "2001:db8::1"], false);
        assert_eq!(p.check(&ipv6(V6, V6_OTHER, 6, &tcp)), None);
        assert_eq!(p.check(&ipv6(LLA, LL_OTHER, 6, &tcp)), None);
        assert_eq!(p.check(&ipv6(V6_OTHER, V6, 6, &tcp)), Some(Violation::Ip));
        assert_eq!(p.check(&ipv6(LL_OTHER, V6, 6, &tcp)), Some(Violation::Ip));
        // `::`: DAD solicitations and MLD reports to ff02::/16 only.
        assert_eq!(p.check(&ipv6(UNSPEC, SOLICITED, 58, &ns(V6, &[]))), None);
        assert_eq!(
            p.check(&ipv6(UNSPEC, V6_OTHER, 58, &ns(V6, &[]))),
            Some(Violation::Ip)
        );
        assert_eq!(
            p.check(&ipv6(UNSPEC, ALL_NODES, 17, &udp(546, 547))),
            Some(Violation::Ip)
        );
        // An MLDv2 report (143) behind a hop-by-hop header (router alert).
        let mut hbh = vec![58, 0, 5, 2, 0, 0, 1, 0];
        hbh.extend_from_slice(&icmp6(143, &[0; 4]));
        let mld_routers = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];
        assert_eq!(p.check(&ipv6(UNSPEC, mld_routers, 0, &hbh)), None);
        // Through a VLAN tag.
        let mut tagged = ipv6(V6_OTHER, V6, 6, &tcp);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(p.check(&tagged), Some(Violation::Ip));
    }

    #[test]
    fn nd_link_layer_options() {
        let sll = lla_opt(1, MAC);
        let bad_sll = lla_opt(1, OTHER);
        let tll = lla_opt(2, MAC);
        let bad_tll = lla_opt(2, OTHER);
        // Without addresses (as OVN with only a MAC): options only.
        for p in [policy(&[], false), policy(&["2001:db8::1"], false)] {
            let from = |m: Vec<u8>| ipv6(LLA, ALL_NODES, 58, &m);
            assert_eq!(p.check(&from(ns(V6_OTHER, &sll))), None);
            assert_eq!(p.check(&from(ns(V6_OTHER, &bad_sll))), Some(Violation::Nd));
            // Every option counts, not only the first.
            let two = [sll.clone(), bad_sll.clone()].concat();
            assert_eq!(p.check(&from(ns(V6_OTHER, &two))), Some(Violation::Nd));
            assert_eq!(p.check(&from(rs(&sll))), None);
            assert_eq!(p.check(&from(rs(&bad_sll))), Some(Violation::Nd));
            assert_eq!(p.check(&from(na(V6, &tll))), None);
            assert_eq!(p.check(&from(na(V6, &bad_tll))), Some(Violation::Nd));
            // A target option in a solicitation is not the sender's.
            assert_eq!(p.check(&from(ns(V6_OTHER, &bad_tll))), None);
            // Options that do not parse (RFC 4861 4.6: length 0, or past
            // the message).
            assert_eq!(p.check(&from(ns(V6, &[1, 0, 0, 0]))), Some(Violation::Nd));
            assert_eq!(
                p.check(&from(ns(V6, &[1, 2, 0, 0, 0, 0, 0, 0]))),
                Some(Violation::Nd)
            );
            // Not ND: options are not looked at.
            assert_eq!(p.check(&from(icmp6(128, &bad_sll))), None);
        }
    }

    #[test]
    fn nd_advertised_target() {
        let tll = lla_opt(2, MAC);
        let from = |m: Vec<u8>| ipv6(LLA, ALL_NODES, 58, &m);
        // No IPv6 addresses: any target.
        let p = policy(&["10.0.0.1"], false);
        assert_eq!(p.check(&from(na(V6_OTHER, &tll))), None);
        let p = policy(&["2001:db8::1"], false);
        assert_eq!(p.check(&from(na(V6, &tll))), None);
        assert_eq!(p.check(&from(na(LLA, &tll))), None);
        assert_eq!(p.check(&from(na(V6_OTHER, &tll))), Some(Violation::Nd));
        assert_eq!(p.check(&from(na(LL_OTHER, &[]))), Some(Violation::Nd));
        // Too short for a target: nothing to advertise.
        assert_eq!(p.check(&from(icmp6(136, &[0; 8]))), None);
        // Solicitations may ask for any target.
        assert_eq!(p.check(&from(ns(V6_OTHER, &[]))), None);
    }

    #[test]
    fn dhcp_guard() {
        let p = policy(&[], false);
        assert_eq!(
            p.check(&ipv4([10, 0, 0, 9], 17, &udp(67, 68))),
            Some(Violation::Dhcp)
        );
        assert_eq!(
            p.check(&ipv6(LLA, ALL_NODES, 17, &udp(547, 546))),
            Some(Violation::Dhcp)
        );
        // Clients, relays and other ports pass.
        assert_eq!(p.check(&ipv4([0, 0, 0, 0], 17, &udp(68, 67))), None);
        assert_eq!(p.check(&ipv4([10, 0, 0, 9], 17, &udp(67, 67))), None);
        assert_eq!(p.check(&ipv6(LLA, ALL_NODES, 17, &udp(546, 547))), None);
        assert_eq!(p.check(&ipv4([10, 0, 0, 9], 6, &udp(67, 68))), None);
        // A later fragment carries no ports.
        let mut frag = ipv4([10, 0, 0, 9], 17, &udp(67, 68));
        frag[20] = 0x00;
        frag[21] = 0x10;
        assert_eq!(p.check(&frag), None);
        // A server's address check comes first.
        let p = policy(&["10.0.0.1"], false);
        assert_eq!(
            p.check(&ipv4([10, 0, 0, 9], 17, &udp(67, 68))),
            Some(Violation::Ip)
        );
        assert_eq!(
            p.check(&ipv4([10, 0, 0, 1], 17, &udp(67, 68))),
            Some(Violation::Dhcp)
        );
        // Allowed.
        let p = policy(&["10.0.0.1"], true);
        assert_eq!(p.check(&ipv4([10, 0, 0, 1], 17, &udp(67, 68))), None);
        assert_eq!(p.check(&ipv6(LLA, ALL_NODES, 17, &udp(547, 546))), None);
    }

    #[test]
    fn ra_guard() {
        let sll = lla_opt(1, MAC);
        let from = |m: Vec<u8>| ipv6(LLA, ALL_NODES, 58, &m);
        let p = policy(&[], false);
        assert_eq!(p.check(&from(ra(&sll))), Some(Violation::Ra));
        assert_eq!(p.check(&from(icmp6(137, &[0; 36]))), Some(Violation::Ra));
        // Behind a destination options header, and a first fragment.
        let mut dest = vec![44, 0, 1, 4, 0, 0, 0, 0];
        dest.extend_from_slice(&[58, 0, 0, 1, 0, 0, 0, 7]);
        dest.extend_from_slice(&ra(&sll));
        assert_eq!(
            p.check(&ipv6(LLA, ALL_NODES, 60, &dest)),
            Some(Violation::Ra)
        );
        // A later fragment carries no ICMPv6 header.
        let later = [58, 0, 0, 0x10, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(p.check(&ipv6(LLA, ALL_NODES, 44, &later)), None);
        // A header chain cut short, or longer than 8 (RFC 7113 3).
        assert_eq!(
            p.check(&ipv6(LLA, ALL_NODES, 60, &[58, 1, 0, 0, 0, 0, 0, 0])),
            Some(Violation::Ra)
        );
        let long: Vec<u8> = (0..9)
            .flat_map(|_| [60, 0, 1, 4, 0, 0, 0, 0])
            .chain(ra(&sll))
            .collect();
        assert_eq!(
            p.check(&ipv6(LLA, ALL_NODES, 60, &long)),
            Some(Violation::Ra)
        );
        // Other ICMPv6 passes.
        assert_eq!(p.check(&from(icmp6(128, &[0; 4]))), None);
        // Allowed: advertisements pass, their source option is checked.
        let p = policy(&[], true);
        assert_eq!(p.check(&from(ra(&sll))), None);
        assert_eq!(p.check(&from(icmp6(137, &[0; 36]))), None);
        assert_eq!(p.check(&from(ra(&lla_opt(1, OTHER)))), Some(Violation::Nd));
        assert_eq!(p.check(&ipv6(LLA, ALL_NODES, 60, &long)), None);
    }

    #[test]
    fn settings_off_overrides_and_generation() {
        let s = PortSecurity::default();
        assert_eq!((s.policy(), s.generation()), (None, 0));
        assert!(s.set_ips(&["10.0.0.1".parse().unwrap()]));
        // No MAC: nothing is checked.
        assert_eq!(s.policy(), None);
        s.set_mac(Some(MAC));
        let g = s.generation();
        let p = s.policy().unwrap();
        assert!(p.guard_dhcp && p.guard_ra);
        // An unchanged setting does not move the generation.
        s.set_mac(Some(MAC));
        s.set_guard_overrides(None, None);
        assert_eq!(s.generation(), g);
        // The port's overrides win over the defaults, both ways.
        s.set_defaults(true, true, false);
        let p = s.policy().unwrap();
        assert!(!p.guard_dhcp && p.guard_ra);
        s.set_guard_overrides(Some(false), Some(true));
        let p = s.policy().unwrap();
        assert!(p.guard_dhcp && !p.guard_ra);
        assert!(s.generation() > g);
        s.set_enabled(false);
        assert_eq!(s.policy(), None);
        s.set_enabled(true);
        assert_eq!(s.allowed(), Some(MAC));
        s.set_defaults(false, true, false);
        assert_eq!(s.policy(), None);
        s.set_defaults(true, true, false);
        // The Interface's attached-mac: when the backend has no mac.
        s.set_attached_mac(Some(OTHER));
        assert_eq!(s.allowed(), Some(MAC));
        s.set_mac(None);
        assert_eq!(s.allowed(), Some(OTHER));
        s.set_attached_mac(None);
        assert_eq!(s.allowed(), None);
        s.set_mac(Some(MAC));
        // At most PORT_SECURITY_MAX_IPS per family.
        let many: Vec<IpAddr> = (0..=PORT_SECURITY_MAX_IPS)
            .map(|i| IpAddr::from([10, 0, 1, u8::try_from(i).unwrap()]))
            .chain(["2001:db8::1".parse().unwrap()])
            .collect();
        assert!(!s.set_ips(&many));
        let p = s.policy().unwrap();
        assert_eq!((p.ipv4.len(), p.ipv6.len()), (PORT_SECURITY_MAX_IPS, 1));
    }

    /// Every prefix of every frame above is checked without a panic.
    #[test]
    fn truncated_frames_do_not_panic() {
        let sll = lla_opt(1, MAC);
        let frames = [
            ipv4([10, 0, 0, 9], 17, &udp(67, 68)),
            arp(MAC, [10, 0, 0, 9]),
            ipv6(LLA, ALL_NODES, 58, &ns(V6, &sll)),
            ipv6(LLA, ALL_NODES, 58, &na(V6, &lla_opt(2, MAC))),
            ipv6(LLA, ALL_NODES, 58, &ra(&sll)),
            ipv6(LLA, ALL_NODES, 17, &udp(547, 546)),
        ];
        for p in [
            policy(&["10.0.0.1", "2001:db8::1"], false),
            policy(&[], true),
        ] {
            for f in &frames {
                for n in 0..=f.len() {
                    let _ = p.check(&f[..n]);
                }
            }
        }
    }
}
