//! The route table tunnels are sent by, as OVS's `lib/ovs-router.c`:
//! routes cached from the kernel's main table (here read from
//! `/proc/net/route` and `/proc/net/ipv6_route` of xennetd's network
//! namespace) and routes added with `ovs-appctl ovs/route/add`. A lookup
//! is longest-prefix match, user routes first among equal prefixes. A
//! route's device names the bridge whose internal port owns the underlay
//! address (`br-phy` in OVS's userspace-tunnelling howto).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Network address (host bits zero).
    pub prefix: IpAddr,
    /// Prefix length.
    pub plen: u8,
    /// Output device: a bridge name.
    pub dev: String,
    /// Gateway, if not on link.
    pub gw: Option<IpAddr>,
    /// Source address for packets sent by the route.
    pub src: Option<IpAddr>,
    /// Added by `ovs/route/add` (else cached from the kernel).
    pub user: bool,
}

/// Whether `a` is inside `prefix`/`plen` (same family).
pub fn in_prefix(a: IpAddr, prefix: IpAddr, plen: u8) -> bool {
    match (a, prefix) {
        (IpAddr::V4(a), IpAddr::V4(p)) => {
            let m = if plen == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(plen.min(32)))
            };
            u32::from(a) & m == u32::from(p) & m
        }
        (IpAddr::V6(a), IpAddr::V6(p)) => {
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(plen.min(128)))
            };
            u128::from(a) & m == u128::from(p) & m
        }
        _ => false,
    }
}

/// Zero the host bits of `a`.
fn network(a: IpAddr, plen: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = if plen == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(plen.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v) & m))
        }
        IpAddr::V6(v) => {
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(plen.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v) & m))
        }
    }
}

/// The route table.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    cached: Vec<Route>,
    user: Vec<Route>,
}

impl RouteTable {
    /// Replace the routes cached from the kernel.
    pub fn set_cached(&mut self, routes: Vec<Route>) {
        self.cached = routes;
    }

    /// The route to `dst`: longest prefix, user routes first on a tie.
    pub fn lookup(&self, dst: IpAddr) -> Option<&Route> {
        self.user
            .iter()
            .chain(&self.cached)
            .filter(|r| in_prefix(dst, r.prefix, r.plen))
            .fold(None, |best: Option<&Route>, r| match best {
                Some(b) if b.plen >= r.plen => Some(b),
                _ => Some(r),
            })
    }

    /// `ovs/route/add ip/plen bridge [gw] [src=ip]`: add (or replace) a
    /// user route.
    pub fn add_user(
        &mut self,
        prefix: IpAddr,
        plen: u8,
        dev: &str,
        gw: Option<IpAddr>,
        src: Option<IpAddr>,
    ) {
        let prefix = network(prefix, plen);
        self.user
            .retain(|r| !(r.prefix == prefix && r.plen == plen));
        self.user.push(Route {
            prefix,
            plen,
            dev: dev.to_owned(),
            gw,
            src,
            user: true,
        });
    }

    /// `ovs/route/del ip/plen`: remove a user route; false if none.
    pub fn del_user(&mut self, prefix: IpAddr, plen: u8) -> bool {
        let prefix = network(prefix, plen);
        let n = self.user.len();
        self.user
            .retain(|r| !(r.prefix == prefix && r.plen == plen));
        n != self.user.len()
    }

    /// `ovs/route/show`, as OVS prints it.
    pub fn show(&self) -> String {
        let mut s = String::from("Route Table:\n");
        for r in self.cached.iter().chain(&self.user) {
            let _ = write!(
                s,
                "{}: {}/{} dev {}",
                if r.user { "User" } else { "Cached" },
                r.prefix,
                r.plen,
                r.dev
            );
            if let Some(gw) = r.gw {
                let _ = write!(s, " GW {gw}");
            }
            if let Some(src) = r.src {
                let _ = write!(s, " SRC {src}");
            }
            s.push('\n');
        }
        s
    }
}

/// Parse `ip/plen` (a bare address is a host route).
pub fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if a.is_ipv4() { 32 } else { 128 };
    let p = p.unwrap_or(max);
    (p <= max).then_some((a, p))
}

const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;
const RTF_REJECT: u32 = 0x200;

/// Routes of `/proc/net/route` (IPv4, main table).
pub fn parse_proc_route(text: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dst), Some(gw), Some(flags), Some(mask)) =
            (hex(f[1]), hex(f[2]), hex(f[3]), hex(f[7]))
        else {
            continue;
        };
        if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
            continue;
        }
        // The kernel prints the network-order words as native integers.
        let plen = u8::try_from(mask.count_ones()).unwrap_or(32);
        out.push(Route {
            prefix: IpAddr::V4(Ipv4Addr::from(dst.to_ne_bytes())),
            plen,
            dev: f[0].to_owned(),
            gw: (flags & RTF_GATEWAY != 0).then(|| IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes()))),
            src: None,
            user: false,
        });
    }
    out
}

/// Routes of `/proc/net/ipv6_route` (all tables; loopback, multicast and
/// reject routes left out).
pub fn parse_proc_ipv6_route(text: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let addr = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
        let (Some(dst), Some(plen), Some(gw), Some(flags)) = (
            addr(f[0]),
            u8::from_str_radix(f[1], 16).ok(),
            addr(f[4]),
            u32::from_str_radix(f[8], 16).ok(),
        ) else {
            continue;
        };
        if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 || f[9] == "lo" || dst.is_multicast() {
            continue;
        }
        out.push(Route {
            prefix: IpAddr::V6(dst),
            plen,
            dev: f[9].to_owned(),
            gw: (flags & RTF_GATEWAY != 0).then_some(IpAddr::V6(gw)),
            src: None,
            user: false,
        });
    }
    out
}

/// Give each route without a source the address of its device in its
/// prefix, else the device's first address of its family.
pub fn fill_sources(routes: &mut [Route], addrs: &BTreeMap<String, Vec<IpAddr>>) {
    for r in routes {
        if r.src.is_some() {
            continue;
        }
        let Some(a) = addrs.get(&r.dev) else { continue };
        let same = |x: &&IpAddr| x.is_ipv4() == r.prefix.is_ipv4();
        r.src = a
            .iter()
            .filter(same)
            .find(|x| in_prefix(**x, r.prefix, r.plen))
            .or_else(|| a.iter().find(same))
            .copied();
    }
}

/// The kernel's routes in this network namespace, with sources from
/// `addrs` (device name to addresses).
pub fn read_kernel_routes(addrs: &BTreeMap<String, Vec<IpAddr>>) -> Vec<Route> {
    let mut routes = std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_proc_route(&t))
        .unwrap_or_default();
    routes.extend(
        std::fs::read_to_string("/proc/net/ipv6_route")
            .map(|t| parse_proc_ipv6_route(&t))
            .unwrap_or_default(),
    );
    fill_sources(&mut routes, addrs);
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_tables_parse() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  brp\t00011FAC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_proc_route(v4);
        let want_gw: IpAddr = "192.168.1.1".parse().unwrap();
        let on_link: IpAddr = "172.31.1.0".parse().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].plen, r[0].gw), (0, Some(want_gw)));
        assert_eq!((r[1].prefix, r[1].plen, r[1].gw), (on_link, 24, None));
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     brp\n\
                  00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 00200001       lo\n";
        let r6 = parse_proc_ipv6_route(v6);
        assert_eq!(r6.len(), 1);
        assert_eq!((r6[0].plen, r6[0].dev.as_str()), (64, "brp"));
    }

    #[test]
    fn longest_prefix_and_user_routes_win() {
        let mut t = RouteTable::default();
        let mut cached =
            parse_proc_route("h\n brp\t00011FAC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        let addrs = BTreeMap::from([(
            "brp".to_string(),
            vec!["fd00::9".parse().unwrap(), "172.31.1.1".parse().unwrap()],
        )]);
        fill_sources(&mut cached, &addrs);
        t.set_cached(cached);
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = t.lookup(a("172.31.1.2")).unwrap();
        assert_eq!((r.dev.as_str(), r.src), ("brp", Some(a("172.31.1.1"))));
        assert!(t.lookup(a("10.0.0.1")).is_none());
        t.add_user(a("172.31.1.77"), 24, "brq", Some(a("172.31.1.254")), None);
        assert_eq!(t.lookup(a("172.31.1.2")).unwrap().dev, "brq");
        assert_eq!(
            t.show(),
            "Route Table:\nCached: 172.31.1.0/24 dev brp SRC 172.31.1.1\n\
             User: 172.31.1.0/24 dev brq GW 172.31.1.254\n"
        );
        assert!(t.del_user(a("172.31.1.0"), 24));
        assert!(!t.del_user(a("172.31.1.0"), 24));
        assert_eq!(t.lookup(a("172.31.1.2")).unwrap().dev, "brp");
        assert_eq!(parse_prefix("10.0.0.0/8"), Some((a("10.0.0.0"), 8)));
        assert_eq!(parse_prefix("fd00::1"), Some((a("fd00::1"), 128)));
        assert_eq!(parse_prefix("10.0.0.0/33"), None);
    }
}
