//! The isolation check: can every vif still reach the services it cannot
//! live without (issue 18 item 2; no switch does this)?
//!
//! # Services
//!
//! An operator names a bridge's *essential services* (OVSDB Bridge
//! `other_config:xennet-essential-services`, TOML `essential_services`) as
//! a comma-separated list ([`parse_services`]):
//!
//! | item | probes (from the vif, translated, never sent) |
//! |---|---|
//! | `arp` | ARP request, broadcast: who-has the first `gateway`, else an RFC 5227 probe for the vif's own address |
//! | `nd` | ICMPv6 neighbour solicitation to the solicited-node multicast group of the first IPv6 `gateway`, else a DAD probe for the vif's link-local address |
//! | `dhcp` | DHCPDISCOVER: UDP 0.0.0.0:68 → 255.255.255.255:67, broadcast |
//! | `dns=ADDR` | UDP query from port 53000 to ADDR:53 |
//! | `gateway=ADDR` | ARP request (IPv4) or neighbour solicitation (IPv6) for ADDR, and an ICMP(v6) echo request to ADDR |
//! | `tcp=ADDR:PORT` | TCP SYN from port 49152 to ADDR:PORT (`[v6]:PORT` for IPv6) |
//! | `default` | `arp,nd,dhcp` |
//! | `none` | nothing (turns the check off) |
//!
//! Any item but `default` and `none` may end in `@PORT`: the name of the
//! port the service lives behind ([`Essential::at`]).
//!
//! Without the key a bridge checks `default`, plus `gateway=ADDR` when
//! `other_config:xennet-gateway` (TOML `gateway`) names one.
//!
//! # Probes
//!
//! A probe is a frame as the vif's guest would send it: source MAC the
//! vif's port-security MAC, else a locally administered MAC made from the
//! ofport ([`probe_mac`]); source IPv4 its first port-security address,
//! else 0.0.0.0; source IPv6 the EUI-64 link-local address of that MAC.
//! Unicast probes (DNS, TCP, echo) go to [`PROBE_DST_MAC`], a MAC no host
//! has, as to a next hop NORMAL has not learned (xennet does not know
//! which MAC the service has). The frame's flow key is translated
//! through the pipeline ([`crate::Ofproto::probe`]) without side effects:
//! no MAC learning, no table or rule counters, nothing executed.
//!
//! # Verdict
//!
//! A probe *reaches* when its datapath actions output it to some port
//! other than its own (to the service's `@PORT` when it has one), or send
//! it to a controller (a reactive controller decides then). A probe that
//! does not reach is *dropped*, and the
//! flow named is the last table lookup of the translation
//! ([`crate::xlate::XlateOut::last_hit`]): the rule it matched (cookie,
//! table, priority, match, actions) or the table that missed. A service
//! is cut off from a vif when any of its probes is dropped.
//!
//! # Port security
//!
//! Port security (the vif's MAC and IPv4 addresses) only chooses the
//! probes' source addresses: probes are built to pass it, so it never
//! cuts a service off by itself, but a change re-runs the check.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xennet_datapath::flow::extract_frame;
use xennet_datapath::{DpAction, FlowKey, OfPort};

use crate::xlate::{instructions_text, Hit};

/// Destination MAC of unicast probes: locally administered, used by no
/// one, so NORMAL treats it as an unknown unicast destination.
pub const PROBE_DST_MAC: [u8; 6] = [0x02, 0x78, 0x6e, 0xff, 0xff, 0xfe];

/// UDP source port of DNS probes.
pub const DNS_PROBE_SPORT: u16 = 53000;
/// TCP source port of TCP probes.
pub const TCP_PROBE_SPORT: u16 = 49152;

/// One essential service (see the module docs for the probes of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// ARP (IPv4 address resolution).
    Arp,
    /// IPv6 neighbour discovery.
    Nd,
    /// DHCP (IPv4).
    Dhcp,
    /// DNS at this server.
    Dns(IpAddr),
    /// The default gateway at this address.
    Gateway(IpAddr),
    /// A TCP port on a host.
    Tcp(IpAddr, u16),
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Arp => f.write_str("arp"),
            Service::Nd => f.write_str("nd"),
            Service::Dhcp => f.write_str("dhcp"),
            Service::Dns(a) => write!(f, "dns={a}"),
            Service::Gateway(a) => write!(f, "gateway={a}"),
            Service::Tcp(IpAddr::V6(a), p) => write!(f, "tcp=[{a}]:{p}"),
            Service::Tcp(a, p) => write!(f, "tcp={a}:{p}"),
        }
    }
}

/// An essential service and, if the operator said so, the port behind
/// which it lives (`dns=10.0.0.53@eth1`): its probes must then be output
/// to that port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Essential {
    /// The service.
    pub service: Service,
    /// The name of the port it is reached through (`None`: anywhere).
    pub at: Option<String>,
}

impl From<Service> for Essential {
    fn from(service: Service) -> Essential {
        Essential { service, at: None }
    }
}

impl fmt::Display for Essential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(p) => write!(f, "{}@{p}", self.service),
            None => write!(f, "{}", self.service),
        }
    }
}

/// A service list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("essential services: {item:?}: {why}")]
pub struct ServiceError {
    /// The item that is wrong.
    pub item: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Longest port name in `@PORT` (OVS port names are Linux interface
/// names, at most 15 bytes, but others may be longer; 64 bounds it).
pub const MAX_PORT_NAME: usize = 64;

/// Most services a bridge checks (each costs a few translations per vif
/// and check).
pub const MAX_SERVICES: usize = 64;

/// The services `default` stands for.
pub const DEFAULT_SERVICES: [Service; 3] = [Service::Arp, Service::Nd, Service::Dhcp];

/// Parse a service list (`"arp,dhcp,dns=10.0.0.53,tcp=10.0.0.5:443"`,
/// see the module docs); items may be separated by commas and/or spaces,
/// each may end in `@PORT` (where the service lives), duplicates count
/// once, the order is kept.
///
/// # Errors
/// The first item that is not a service.
pub fn parse_services(text: &str) -> Result<Vec<Essential>, ServiceError> {
    let mut out: Vec<Essential> = Vec::new();
    for full in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let bad = |why| ServiceError {
            item: full.to_owned(),
            why,
        };
        let (item, at) = match full.rsplit_once('@') {
            Some((i, p)) => {
                if p.is_empty() || p.len() > MAX_PORT_NAME || p.contains(['@', '=']) {
                    return Err(bad("@PORT: not a port name"));
                }
                (i, Some(p.to_owned()))
            }
            None => (full, None),
        };
        if at.is_some() && matches!(item, "default" | "none") {
            return Err(bad("takes no @PORT"));
        }
        if out.len() >= MAX_SERVICES {
            return Err(bad("too many services (at most 64)"));
        }
        let mut push = |service: Service| {
            let e = Essential {
                service,
                at: at.clone(),
            };
            if !out.contains(&e) {
                out.push(e);
            }
        };
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("arp", None) => push(Service::Arp),
            ("nd", None) => push(Service::Nd),
            ("dhcp", None) => push(Service::Dhcp),
            ("default", None) => DEFAULT_SERVICES.iter().for_each(|s| push(*s)),
            ("none", None) => {}
            ("dns", Some(v)) => push(Service::Dns(
                v.parse().map_err(|_| bad("not an IP address"))?,
            )),
            ("gateway", Some(v)) => push(Service::Gateway(
                v.parse().map_err(|_| bad("not an IP address"))?,
            )),
            ("tcp", Some(v)) => {
                let sa: std::net::SocketAddr = v
                    .parse()
                    .map_err(|_| bad("not ADDR:PORT (IPv6: [ADDR]:PORT)"))?;
                if sa.port() == 0 {
                    return Err(bad("port 0"));
                }
                push(Service::Tcp(sa.ip(), sa.port()));
            }
            ("arp" | "nd" | "dhcp" | "default" | "none", Some(_)) => {
                return Err(bad("takes no value"))
            }
            ("dns" | "gateway" | "tcp", None) => return Err(bad("needs =ADDR")),
            _ => {
                return Err(bad(
                    "unknown (arp, nd, dhcp, dns=ADDR, gateway=ADDR, tcp=ADDR:PORT, default, none)",
                ))
            }
        }
    }
    Ok(out)
}

/// The services a bridge checks: `spec` (the `essential-services` text,
/// `None` when unset: `default`), plus `gateway=` when `gateway` is set
/// and `spec` is not.
///
/// # Errors
/// As [`parse_services`].
pub fn bridge_services(
    spec: Option<&str>,
    gateway: Option<IpAddr>,
) -> Result<Vec<Essential>, ServiceError> {
    match spec {
        Some(s) => parse_services(s),
        None => Ok(DEFAULT_SERVICES
            .iter()
            .copied()
            .chain(gateway.map(Service::Gateway))
            .map(Essential::from)
            .collect()),
    }
}

/// Where probes of a vif come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSource {
    /// The vif's ofport.
    pub ofport: OfPort,
    /// Its MAC (port security), if known.
    pub mac: Option<[u8; 6]>,
    /// Its IPv4 address (port security), if known.
    pub ipv4: Option<Ipv4Addr>,
}

/// The locally administered MAC probes from `ofport` use when the vif's
/// own is not known: `02:78:6e:00` followed by the port number.
pub fn probe_mac(ofport: OfPort) -> [u8; 6] {
    let p = ofport.to_be_bytes();
    [0x02, 0x78, 0x6e, p[1], p[2], p[3]]
}

/// One probe: what it stands for and its flow key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The service probed.
    pub service: Service,
    /// What the probe is, for messages (`DHCPDISCOVER broadcast`).
    pub what: &'static str,
    /// Its flow key (in_port = the vif).
    pub key: FlowKey,
}

fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// Frame builders: just enough of each header for flow extraction
/// (checksums are zero; nothing is sent).
mod frame {
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    pub fn arp_request(src: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut f = eth([0xff; 6], src, 0x0806);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&spa.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa.octets());
        f
    }

    pub fn ipv4(
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut f = eth(dst_mac, src_mac, 0x0800);
        let total = u16::try_from(20 + l4.len()).unwrap_or(u16::MAX);
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(l4);
        f
    }

    pub fn ipv6(
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut f = eth(dst_mac, src_mac, 0x86dd);
        let len = u16::try_from(l4.len()).unwrap_or(u16::MAX);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[next, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(l4);
        f
    }

    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
        let mut u = Vec::with_capacity(8 + payload.len());
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&len.to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    pub fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
        let mut t = Vec::with_capacity(20);
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    /// ICMP or ICMPv6 echo request.
    pub fn echo(ty: u8) -> Vec<u8> {
        vec![ty, 0, 0, 0, 0x78, 0x6e, 0, 1]
    }

    /// ICMPv6 neighbour solicitation for `target` with the source
    /// link-layer address option when `sll` is given.
    pub fn ns(target: Ipv6Addr, sll: Option<[u8; 6]>) -> Vec<u8> {
        let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        if let Some(mac) = sll {
            m.extend_from_slice(&[1, 1]);
            m.extend_from_slice(&mac);
        }
        m
    }

    /// A minimal BOOTP DHCPDISCOVER from `mac`.
    pub fn dhcp_discover(mac: [u8; 6]) -> Vec<u8> {
        let mut d = vec![0u8; 240];
        d[0] = 1; // BOOTREQUEST
        d[1] = 1; // Ethernet
        d[2] = 6;
        d[4..8].copy_from_slice(&[0x78, 0x6e, 0, 1]); // xid
        d[10] = 0x80; // broadcast flag
        d[28..34].copy_from_slice(&mac);
        d[236..240].copy_from_slice(&[99, 130, 83, 99]); // magic cookie
        d.extend_from_slice(&[53, 1, 1, 255]); // DHCPDISCOVER, end
        d
    }
}

fn solicited_node(target: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let t = target.octets();
    let ip = Ipv6Addr::from([
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15],
    ]);
    (ip, [0x33, 0x33, 0xff, t[13], t[14], t[15]])
}

/// The probes of `service` from `src`; `services` is the whole list (ARP
/// and ND ask for its first gateway).
pub fn probes(service: Service, src: &ProbeSource, services: &[Service]) -> Vec<Probe> {
    let mac = src.mac.unwrap_or_else(|| probe_mac(src.ofport));
    let ip4 = src.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let ll6 = eui64_link_local(mac);
    let gw4 = services.iter().find_map(|s| match s {
        Service::Gateway(IpAddr::V4(a)) => Some(*a),
        _ => None,
    });
    let gw6 = services.iter().find_map(|s| match s {
        Service::Gateway(IpAddr::V6(a)) => Some(*a),
        _ => None,
    });
    let key = |f: Vec<u8>| extract_frame(&f, src.ofport);
    let arp_for = |tpa: Ipv4Addr, spa: Ipv4Addr| key(frame::arp_request(mac, spa, tpa));
    let ns_for = |target: Ipv6Addr, from: Ipv6Addr| {
        let (dst, dst_mac) = solicited_node(target);
        let sll = (!from.is_unspecified()).then_some(mac);
        key(frame::ipv6(
            dst_mac,
            mac,
            from,
            dst,
            58,
            &frame::ns(target, sll),
        ))
    };
    let udp_to = |dst: IpAddr, sport, dport| match dst {
        IpAddr::V4(d) => key(frame::ipv4(
            PROBE_DST_MAC,
            mac,
            ip4,
            d,
            17,
            &frame::udp(sport, dport, &[0; 12]),
        )),
        IpAddr::V6(d) => key(frame::ipv6(
            PROBE_DST_MAC,
            mac,
            ll6,
            d,
            17,
            &frame::udp(sport, dport, &[0; 12]),
        )),
    };
    let one = |what, key| vec![Probe { service, what, key }];
    match service {
        Service::Arp => match gw4 {
            Some(gw) => one("ARP request for the gateway", arp_for(gw, ip4)),
            None => one(
                "ARP probe for its own address",
                arp_for(ip4, Ipv4Addr::UNSPECIFIED),
            ),
        },
        Service::Nd => match gw6 {
            Some(gw) => one("neighbour solicitation for the gateway", ns_for(gw, ll6)),
            None => one(
                "neighbour solicitation (DAD) for its link-local address",
                ns_for(ll6, Ipv6Addr::UNSPECIFIED),
            ),
        },
        Service::Dhcp => one(
            "DHCPDISCOVER broadcast",
            key(frame::ipv4(
                [0xff; 6],
                mac,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                17,
                &frame::udp(68, 67, &frame::dhcp_discover(mac)),
            )),
        ),
        Service::Dns(a) => one("DNS query", udp_to(a, DNS_PROBE_SPORT, 53)),
        Service::Tcp(a, port) => {
            let f = match a {
                IpAddr::V4(d) => frame::ipv4(
                    PROBE_DST_MAC,
                    mac,
                    ip4,
                    d,
                    6,
                    &frame::tcp_syn(TCP_PROBE_SPORT, port),
                ),
                IpAddr::V6(d) => frame::ipv6(
                    PROBE_DST_MAC,
                    mac,
                    ll6,
                    d,
                    6,
                    &frame::tcp_syn(TCP_PROBE_SPORT, port),
                ),
            };
            one("TCP SYN", key(f))
        }
        Service::Gateway(IpAddr::V4(gw)) => vec![
            Probe {
                service,
                what: "ARP request for the gateway",
                key: arp_for(gw, ip4),
            },
            Probe {
                service,
                what: "ICMP echo request to the gateway",
                key: key(frame::ipv4(PROBE_DST_MAC, mac, ip4, gw, 1, &frame::echo(8))),
            },
        ],
        Service::Gateway(IpAddr::V6(gw)) => vec![
            Probe {
                service,
                what: "neighbour solicitation for the gateway",
                key: ns_for(gw, ll6),
            },
            Probe {
                service,
                what: "ICMPv6 echo request to the gateway",
                key: key(frame::ipv6(
                    PROBE_DST_MAC,
                    mac,
                    ll6,
                    gw,
                    58,
                    &frame::echo(128),
                )),
            },
        ],
    }
}

/// What dropped a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropCause {
    /// A flow: its cookie, table, priority, match and actions (in
    /// `ovs-ofctl` syntax); `normal` when its actions include NORMAL,
    /// which then sent the probe nowhere (e.g. no other port on the
    /// vif's VLAN).
    Flow {
        /// Cookie.
        cookie: u64,
        /// Table.
        table: u8,
        /// Priority.
        priority: u16,
        /// Match (`ovs-ofctl` syntax; empty: every packet).
        matcher: String,
        /// Actions (`ovs-ofctl` syntax).
        actions: String,
        /// The flow's actions include NORMAL.
        normal: bool,
    },
    /// No flow matched in this table (table miss: drop).
    Miss {
        /// The table.
        table: u8,
    },
    /// The vif's port does not receive (`OFPPC_NO_RECV` or
    /// `OFPPC_PORT_DOWN`).
    Port,
    /// Translation was cut short (and the packet dropped): why, as
    /// [`crate::xlate::XlateError`] says it.
    Cut(String),
    /// Output, but not to the port where the service lives (`at`): to
    /// `to` (other ports than the vif's), the last lookup being `by`.
    Elsewhere {
        /// The service's port.
        at: String,
        /// Where the probe went instead.
        to: Vec<OfPort>,
        /// The last lookup ([`DropCause::Flow`] or [`DropCause::Miss`]).
        by: Box<DropCause>,
    },
    /// The port where the service lives is not on the bridge.
    NoSuchPort(String),
}

impl DropCause {
    /// From a translation's last lookup.
    pub fn from_hit(hit: Option<&Hit>) -> DropCause {
        match hit {
            Some(Hit::Rule(r)) => DropCause::Flow {
                cookie: r.cookie,
                table: r.table_id,
                priority: r.priority,
                matcher: r.matcher.to_string(),
                actions: instructions_text(&r.instructions),
                normal: r.actions().any(|a| {
                    matches!(a, xennet_openflow::model::Action::Output { port, .. }
                        if *port == xennet_openflow::model::OFPP_NORMAL)
                }),
            },
            Some(Hit::Miss(t)) => DropCause::Miss { table: *t },
            None => DropCause::Port,
        }
    }
}

impl DropCause {
    /// The last lookup alone: `cookie=0x0 table=0 priority=100
    /// match=dl_type=0x0806 actions=drop`, `table=3 miss (...)`.
    fn fmt_lookup(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropCause::Flow {
                cookie,
                table,
                priority,
                matcher,
                actions,
                normal,
            } => {
                let m = if matcher.is_empty() { "any" } else { matcher };
                write!(
                    f,
                    "cookie={cookie:#x} table={table} priority={priority} match={m} actions={actions}"
                )?;
                if *normal {
                    f.write_str(" (NORMAL sent it to no port)")?;
                }
                Ok(())
            }
            DropCause::Miss { table } => write!(f, "table={table} miss (no flow matched)"),
            DropCause::Port => f.write_str("the port's OpenFlow config (no-receive or down)"),
            DropCause::Cut(why) => write!(f, "a translation cut short ({why})"),
            DropCause::Elsewhere { by, .. } => by.fmt_lookup(f),
            DropCause::NoSuchPort(p) => write!(f, "no port {p}"),
        }
    }
}

impl fmt::Display for DropCause {
    /// What happened, as a verb phrase: `dropped by cookie=0x0 table=0
    /// priority=100 match=dl_type=0x0806 actions=drop`, `sent to port 2,
    /// not to eth1, by cookie=...`, `not sent: eth1 (where the service
    /// is) is not on the bridge`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropCause::Elsewhere { at, to, by } => {
                let ports: Vec<String> = to.iter().map(|p| p.to_string()).collect();
                let s = if to.len() == 1 { "" } else { "s" };
                write!(f, "sent to port{s} {}, not to {at}, by ", ports.join(","))?;
                by.fmt_lookup(f)
            }
            DropCause::NoSuchPort(p) => {
                write!(
                    f,
                    "not sent: {p} (where the service is) is not on the bridge"
                )
            }
            _ => {
                f.write_str("dropped by ")?;
                self.fmt_lookup(f)
            }
        }
    }
}

/// The verdict on one translated probe ([`crate::Ofproto::probe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Output to another port, or to a controller.
    Reaches,
    /// Dropped, by this.
    Dropped(DropCause),
}

/// The verdict on a probe from `in_port` that translated to `actions`,
/// with last lookup `hit`; `at`: the port (name, number) where the
/// service lives, which an output must then reach.
pub fn verdict(
    in_port: OfPort,
    actions: &[DpAction],
    hit: Option<&Hit>,
    at: Option<(&str, OfPort)>,
) -> Verdict {
    let controller = actions.iter().any(|a| matches!(a, DpAction::Userspace(_)));
    let outs: Vec<OfPort> = actions
        .iter()
        .filter_map(|a| match a {
            DpAction::Output(p) if *p != in_port => Some(*p),
            _ => None,
        })
        .collect();
    match at {
        _ if controller => Verdict::Reaches,
        None if !outs.is_empty() => Verdict::Reaches,
        Some((_, p)) if outs.contains(&p) => Verdict::Reaches,
        Some((name, _)) if !outs.is_empty() => Verdict::Dropped(DropCause::Elsewhere {
            at: name.to_owned(),
            to: outs,
            by: Box::new(DropCause::from_hit(hit)),
        }),
        _ => Verdict::Dropped(DropCause::from_hit(hit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_datapath::packet::MacAddr;

    #[test]
    fn parses_the_documented_example() {
        let s = parse_services("arp,dhcp,dns=10.0.0.53,gateway=10.0.0.1,tcp=10.0.0.5:443").unwrap();
        assert_eq!(
            s.iter().map(|e| e.service).collect::<Vec<_>>(),
            vec![
                Service::Arp,
                Service::Dhcp,
                Service::Dns("10.0.0.53".parse().unwrap()),
                Service::Gateway("10.0.0.1".parse().unwrap()),
                Service::Tcp("10.0.0.5".parse().unwrap(), 443),
            ]
        );
        let text: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            text.join(","),
            "arp,dhcp,dns=10.0.0.53,gateway=10.0.0.1,tcp=10.0.0.5:443"
        );
    }

    #[test]
    fn parses_default_none_ipv6_and_duplicates() {
        let kinds = |t: &str| -> Vec<Service> {
            parse_services(t)
                .unwrap()
                .iter()
                .map(|e| e.service)
                .collect()
        };
        assert_eq!(kinds("default"), DEFAULT_SERVICES);
        assert_eq!(kinds("none"), vec![]);
        assert_eq!(kinds(""), vec![]);
        assert_eq!(kinds("dhcp arp, dhcp"), vec![Service::Dhcp, Service::Arp]);
        let s = parse_services("tcp=[2001:db8::5]:22,dns=2001:db8::53").unwrap();
        assert_eq!(s[0].to_string(), "tcp=[2001:db8::5]:22");
        assert_eq!(s[1].to_string(), "dns=2001:db8::53");
    }

    #[test]
    fn parses_locations() {
        let s = parse_services("dhcp@eth1,gateway=10.0.0.1@eth1,tcp=[2001:db8::5]:22@uplink,arp")
            .unwrap();
        assert_eq!(s[0].at.as_deref(), Some("eth1"));
        assert_eq!(s[0].service, Service::Dhcp);
        assert_eq!(s[1].to_string(), "gateway=10.0.0.1@eth1");
        assert_eq!(s[2].to_string(), "tcp=[2001:db8::5]:22@uplink");
        assert_eq!(s[3].at, None);
        // The same service at two places counts twice.
        assert_eq!(parse_services("dhcp@a,dhcp@b,dhcp@a").unwrap().len(), 2);
    }

    #[test]
    fn refuses_bad_items() {
        for (text, item) in [
            ("arp,foo", "foo"),
            ("dns", "dns"),
            ("dns=not-an-ip", "dns=not-an-ip"),
            ("tcp=10.0.0.1", "tcp=10.0.0.1"),
            ("tcp=10.0.0.1:0", "tcp=10.0.0.1:0"),
            ("arp=1", "arp=1"),
            ("dhcp@", "dhcp@"),
            ("default@eth1", "default@eth1"),
            ("dns=10.0.0.1@a=b", "dns=10.0.0.1@a=b"),
        ] {
            assert_eq!(parse_services(text).unwrap_err().item, item, "{text}");
        }
        let many: Vec<String> = (1..=65).map(|p| format!("tcp=10.0.0.1:{p}")).collect();
        assert_eq!(
            parse_services(&many.join(",")).unwrap_err().item,
            "tcp=10.0.0.1:65"
        );
        assert_eq!(many.len() - 1, MAX_SERVICES);
        assert!(parse_services(&many[..64].join(",")).is_ok());
    }

    #[test]
    fn bridge_services_add_the_gateway_to_the_default() {
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        let mut want: Vec<Essential> = DEFAULT_SERVICES.iter().map(|s| (*s).into()).collect();
        want.push(Service::Gateway(gw).into());
        assert_eq!(bridge_services(None, Some(gw)).unwrap(), want);
        assert_eq!(
            bridge_services(Some("dhcp"), Some(gw)).unwrap(),
            vec![Service::Dhcp.into()]
        );
    }

    #[test]
    fn probe_keys_are_what_a_guest_sends() {
        let src = ProbeSource {
            ofport: 3,
            mac: Some([0, 0x16, 0x3e, 1, 2, 3]),
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 7)),
        };
        let gw = Service::Gateway("10.0.0.1".parse().unwrap());
        let all = [Service::Arp, Service::Dhcp, gw];
        let arp = &probes(Service::Arp, &src, &all)[0];
        assert_eq!(arp.key.in_port(), 3);
        assert_eq!(arp.key.dl_type(), 0x0806);
        assert_eq!(arp.key.dl_dst(), MacAddr([0xff; 6]));
        assert_eq!(arp.key.dl_src(), MacAddr([0, 0x16, 0x3e, 1, 2, 3]));
        let dhcp = &probes(Service::Dhcp, &src, &all)[0];
        assert_eq!(dhcp.key.dl_type(), 0x0800);
        assert_eq!(dhcp.key.nw_proto(), 17);
        assert_eq!(dhcp.key.tp_dst(), 67);
        assert_eq!(dhcp.key.tp_src(), 68);
        let g = probes(gw, &src, &all);
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].key.nw_proto(), 1);
        let tcp = &probes(Service::Tcp("10.0.0.5".parse().unwrap(), 443), &src, &all)[0];
        assert_eq!((tcp.key.nw_proto(), tcp.key.tp_dst()), (6, 443));
        let nd = &probes(Service::Nd, &src, &all)[0];
        assert_eq!((nd.key.dl_type(), nd.key.nw_proto()), (0x86dd, 58));
        // Without port security: the made-up MAC of the port.
        let anon = ProbeSource {
            ofport: 0x102,
            mac: None,
            ipv4: None,
        };
        let k = &probes(Service::Dhcp, &anon, &all)[0].key;
        assert_eq!(k.dl_src(), MacAddr([2, 0x78, 0x6e, 0, 1, 2]));
    }

    #[test]
    fn verdicts() {
        use xennet_datapath::Userdata;
        assert_eq!(
            verdict(1, &[DpAction::Output(2)], None, None),
            Verdict::Reaches
        );
        assert_eq!(
            verdict(1, &[DpAction::Output(1)], None, None),
            Verdict::Dropped(DropCause::Port)
        );
        // Where the service lives: only an output there counts.
        let out2 = [DpAction::Output(2), DpAction::Output(3)];
        assert_eq!(verdict(1, &out2, None, Some(("eth3", 3))), Verdict::Reaches);
        assert_eq!(
            verdict(1, &out2, Some(&Hit::Miss(0)), Some(("eth4", 4))).to_string_cause(),
            "sent to ports 2,3, not to eth4, by table=0 miss (no flow matched)"
        );
        assert_eq!(
            verdict(
                1,
                &[DpAction::Userspace(Userdata {
                    reason: 0,
                    table_id: 0,
                    cookie: 0,
                    max_len: 0,
                    metadata: 0,
                    extra: 0
                })],
                None,
                Some(("eth4", 4))
            ),
            Verdict::Reaches
        );
        assert_eq!(
            verdict(1, &[], Some(&Hit::Miss(3)), None).to_string_cause(),
            "dropped by table=3 miss (no flow matched)"
        );
    }

    impl Verdict {
        fn to_string_cause(&self) -> String {
            match self {
                Verdict::Reaches => "reaches".into(),
                Verdict::Dropped(c) => c.to_string(),
            }
        }
    }
}
