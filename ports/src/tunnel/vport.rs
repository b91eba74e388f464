//! Tunnel ports and the underlay, as OVS's userspace tunnelling
//! (Documentation/howto/userspace-tunneling.rst): the underlay address
//! lives on a bridge's internal port (`br-phy`), routes come from the
//! kernel's table plus `ovs/route/add`, next hops are resolved by the
//! switch itself (ARP / neighbour solicitation), and encapsulated frames
//! leave through the bridge that owns the route.
//!
//! Each xennet bridge has its own forwarding thread, so the two
//! directions cross threads through bounded queues:
//!
//! - **Encapsulation**: a flow outputs to a [`TunnelPort`] (in, say,
//!   `br-int`'s thread). The port picks the remote (`remote_ip`, or the
//!   packet's `tun_dst` for `remote_ip=flow`) and VNI (`key`, or
//!   `tun_id` for `key=flow`), looks up the route and the next hop's MAC,
//!   adds the outer headers and queues the outer frame on the route's
//!   bridge's [`UnderlayPort`] (its LOCAL port), which receives it as if
//!   the host had sent it: `br-phy`'s flows (NORMAL) forward it out of the
//!   physical port. The port takes TCP super-frames and partial checksums
//!   from the datapath: it cuts a super-frame into MSS-sized segments
//!   ([`xennet_datapath::gso::segment_each`]) into a reused buffer,
//!   encapsulates each in place (its inner checksum completed) and moves
//!   the buffer into the underlay's queue, so each segment's bytes are
//!   copied once; each segment leaves in its own outer packet.
//! - **Decapsulation**: when `br-phy` outputs a UDP packet to its LOCAL
//!   port that is addressed to one of that port's addresses (or a tunnel's
//!   `local_ip`) and a tunnel port's UDP port, the [`UnderlayPort`] takes
//!   it instead of the host: it validates the outer headers
//!   ([`super::decapsulate`], a counter per refusal), picks the tunnel
//!   port by remote, key and local address (OVS `tnl_port_receive`), and
//!   queues the inner frame, with `tun_id`, `tun_src`, `tun_dst` and
//!   `tun_flags` set, for that port's bridge, whose thread receives it
//!   with `in_port` = the tunnel's ofport.
//! - **Neighbours**: ARP packets and neighbour advertisements that reach
//!   a LOCAL port are learned (and still delivered). An outer frame whose
//!   next hop is unresolved waits (up to [`PENDING_LEN`] per underlay;
//!   more are dropped and counted) while an ARP request or neighbour
//!   solicitation goes out (at most one a second per next hop), and leaves
//!   as soon as the answer is learned. OVS drops that first packet.
//!
//! MTU: as OVS's userspace datapath, outer frames are never fragmented; a
//! frame larger than the physical port's MTU is dropped by that port
//! (counted in its `tx_dropped`). Guests behind tunnels need an MTU that
//! leaves room for the outer headers (50 bytes for VXLAN over IPv4, 70
//! over IPv6, Geneve plus its options), as OVN advertises by DHCP.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use xennet_datapath::buffer::{Packet, PacketBatch, PacketMeta};
use xennet_datapath::port::{Port, PortFeatures, PortStats, RecvStatus};

use super::config::{FromFlow, Inherit, TunnelConfig, DEFAULT_TTL};
use super::neigh::{self, NeighTable};
use super::route::{self, RouteTable};
use super::{
    decapsulate, encapsulate, encapsulate_into, parse_outer_gre, parse_outer_udp_csum,
    u128_to_addr, DecapCounters, DecapError, Encap, TunnelKind,
};

/// Packets queued between threads per tunnel port and per underlay: a
/// batch of 32 TCP super-frames segments into up to about 1400 packets.
pub const QUEUE_LEN: usize = 2048;
/// Outer frames waiting for their next hop's MAC, per underlay.
pub const PENDING_LEN: usize = 16;
/// Least time between two resolution requests for one next hop.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Encapsulation-side counters (decapsulation refusals are in
/// [`DecapCounters`]).
#[derive(Debug, Default)]
pub struct EncapCounters {
    /// Packets encapsulated and handed to an underlay.
    pub encapsulated: AtomicU64,
    /// No route to the remote (or no source address for it).
    pub no_route: AtomicU64,
    /// The route's device is not a bridge of this switch.
    pub no_underlay: AtomicU64,
    /// `remote_ip=flow` with no `tun_dst` set.
    pub no_remote: AtomicU64,
    /// Next hop unresolved (packet queued or, beyond the queue, dropped).
    pub neigh_miss: AtomicU64,
    /// Dropped: the pending queue was full.
    pub pending_dropped: AtomicU64,
    /// Dropped: an inter-thread queue was full.
    pub queue_full: AtomicU64,
    /// Dropped: the packet could not be encapsulated (or, a TCP
    /// super-frame, segmented).
    pub encap_error: AtomicU64,
    /// Received tunnel packets no tunnel port takes (VNI, remote or local
    /// address nobody uses).
    pub no_port: AtomicU64,
}

impl EncapCounters {
    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("encapsulated", v(&self.encapsulated)),
            ("no_route", v(&self.no_route)),
            ("no_underlay", v(&self.no_underlay)),
            ("no_remote", v(&self.no_remote)),
            ("neigh_miss", v(&self.neigh_miss)),
            ("pending_dropped", v(&self.pending_dropped)),
            ("queue_full", v(&self.queue_full)),
            ("encap_error", v(&self.encap_error)),
            ("no_port", v(&self.no_port)),
        ]
    }
}

/// A bounded packet queue with spare buffers, shared by two threads.
#[derive(Debug, Default)]
struct Queue {
    pkts: VecDeque<Packet>,
    free: Vec<Packet>,
}

impl Queue {
    /// A buffer to fill, or None when the queue is full.
    fn slot(&mut self) -> Option<Packet> {
        (self.pkts.len() < QUEUE_LEN).then(|| self.free.pop().unwrap_or_default())
    }

    /// Move up to the batch's room into `batch`; returns (packets, bytes,
    /// more left).
    fn drain_into(&mut self, batch: &mut PacketBatch) -> (u64, u64, bool) {
        let (mut n, mut bytes) = (0, 0);
        while !batch.is_full() {
            let Some(mut p) = self.pkts.pop_front() else {
                break;
            };
            let Some(slot) = batch.push_slot() else {
                self.pkts.push_front(p);
                break;
            };
            n += 1;
            bytes += p.len() as u64;
            std::mem::swap(slot, &mut p);
            if self.free.len() < QUEUE_LEN {
                self.free.push(p);
            }
        }
        (n, bytes, !self.pkts.is_empty())
    }
}

fn eventfd() -> std::io::Result<EventFd> {
    Ok(EventFd::from_value_and_flags(
        0,
        EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
    )?)
}

#[derive(Debug, Default)]
struct PortCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
}

/// A bridge's Geneve option map (OVS `struct tun_table`, set by
/// `NXT_TLV_TABLE_MOD`) as its tunnel ports use it: decapsulation turns a
/// packet's options into [`TunnelMeta::metadata`] and
/// [`TunnelMeta::md_present`], encapsulation turns them back into options.
/// The daemon implements it over the bridge's OpenFlow map, which may
/// change at any time; the port asks for each packet that has options.
pub trait GeneveMap: Send + Sync + std::fmt::Debug {
    /// The metadata words for Geneve options `opts` (the bytes after the
    /// 8-byte base header; OVS `tun_metadata_from_geneve_udpif`): mapped
    /// options are stored, unmapped non-critical ones skipped.
    ///
    /// # Errors
    /// [`DecapError::GeneveCritical`] for an unmapped critical option,
    /// [`DecapError::GeneveOptions`] for a truncated option or a mapped
    /// option of another length than its mapping's.
    fn decode(&self, opts: &[u8]) -> Result<([u128; 2], u64), DecapError>;

    /// Append the Geneve options for `metadata` with `present` (bit i:
    /// `tun_metadata<i>`) to `out`, in index order (OVS
    /// `tun_metadata_to_geneve__`).
    fn encode(&self, metadata: &[u128; 2], present: u64, out: &mut Vec<u8>);
}

#[derive(Debug)]
struct TunnelEnd {
    name: String,
    cfg: TunnelConfig,
    /// The bridge's Geneve option map (none: every option is unknown).
    map: Option<Arc<dyn GeneveMap>>,
    rx: Mutex<Queue>,
    efd: EventFd,
    counters: PortCounters,
    ip_id: AtomicU16,
}

#[derive(Debug)]
struct Underlay {
    bridge: String,
    mac: Mutex<[u8; 6]>,
    inject: Mutex<Queue>,
    pending: Mutex<Vec<(IpAddr, Packet)>>,
    resolving: Mutex<BTreeMap<IpAddr, Instant>>,
    efd: EventFd,
}

impl Underlay {
    /// Queue `pkt` to be received on the LOCAL port; false if full.
    fn inject(&self, pkt: &Packet) -> bool {
        let mut q = lock(&self.inject);
        let was_empty = q.pkts.is_empty();
        let Some(mut b) = q.slot() else { return false };
        b.clone_from_packet(pkt);
        q.pkts.push_back(b);
        drop(q);
        if was_empty {
            let _ = self.efd.write(1);
        }
        true
    }
}

/// Every tunnel port, underlay, route and neighbour of a switch.
#[derive(Debug, Default)]
pub struct TunnelSwitch {
    tunnels: RwLock<Vec<Arc<TunnelEnd>>>,
    underlays: RwLock<BTreeMap<String, Arc<Underlay>>>,
    routes: RwLock<RouteTable>,
    neigh: Mutex<NeighTable>,
    /// Device name -> its addresses.
    addrs: RwLock<BTreeMap<String, Vec<IpAddr>>>,
    /// Decapsulation refusals.
    pub decap: DecapCounters,
    /// Encapsulation drops.
    pub encap: EncapCounters,
}

/// A link view of a software port, for its link state and for noticing a
/// configuration change that needs the port re-opened.
#[derive(Debug, Clone)]
pub enum SoftLink {
    /// A patch port end.
    Patch(crate::patch::PatchLink),
    /// A tunnel port (always up, as OVS reports them).
    Tunnel(TunnelConfig),
}

impl SoftLink {
    /// Whether the port's link is up.
    pub fn is_up(&self) -> bool {
        match self {
            SoftLink::Patch(l) => l.is_up(),
            SoftLink::Tunnel(_) => true,
        }
    }
}

impl TunnelSwitch {
    /// An empty switch, and a thread that refreshes the kernel's routes
    /// and addresses once a second while it exists.
    pub fn new() -> Arc<TunnelSwitch> {
        let sw = Arc::new(TunnelSwitch::default());
        sw.refresh();
        let weak = Arc::downgrade(&sw);
        let _ = std::thread::Builder::new()
            .name("tnl-routes".into())
            .spawn(move || refresher(weak));
        sw
    }

    /// Read the addresses of every device and the kernel's routes again.
    pub fn refresh(&self) {
        let mut addrs: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        if let Ok(it) = nix::ifaddrs::getifaddrs() {
            for a in it {
                let Some(sa) = a.address else { continue };
                let ip = if let Some(v4) = sa.as_sockaddr_in() {
                    IpAddr::V4(v4.ip())
                } else if let Some(v6) = sa.as_sockaddr_in6() {
                    IpAddr::V6(v6.ip())
                } else {
                    continue;
                };
                addrs.entry(a.interface_name).or_default().push(ip);
            }
        }
        let routes = route::read_kernel_routes(&addrs);
        for (name, u) in self
            .underlays
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some(mac) = read_mac(name) {
                *lock(&u.mac) = mac;
            }
        }
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_cached(routes);
        *self.addrs.write().unwrap_or_else(|e| e.into_inner()) = addrs;
    }

    /// Open tunnel port `name` with `cfg`, without a Geneve option map
    /// (every option unknown: critical ones refuse the packet).
    pub fn open(self: &Arc<Self>, name: &str, cfg: TunnelConfig) -> std::io::Result<TunnelPort> {
        self.open_with_map(name, cfg, None)
    }

    /// Open tunnel port `name` with `cfg` and its bridge's Geneve option
    /// map `map`.
    pub fn open_with_map(
        self: &Arc<Self>,
        name: &str,
        cfg: TunnelConfig,
        map: Option<Arc<dyn GeneveMap>>,
    ) -> std::io::Result<TunnelPort> {
        let end = Arc::new(TunnelEnd {
            name: name.to_owned(),
            cfg,
            map,
            rx: Mutex::new(Queue::default()),
            efd: eventfd()?,
            counters: PortCounters::default(),
            ip_id: AtomicU16::new(0),
        });
        let mut t = self.tunnels.write().unwrap_or_else(|e| e.into_inner());
        t.retain(|e| e.name != name);
        t.push(end.clone());
        Ok(TunnelPort {
            end,
            sw: self.clone(),
            scratch: Packet::new(),
        })
    }

    /// Wrap bridge `bridge`'s LOCAL port `inner` (a tap device whose MAC
    /// is `mac`) so that the bridge can be an underlay.
    pub fn wrap_local(
        self: &Arc<Self>,
        bridge: &str,
        inner: Box<dyn Port>,
        mac: [u8; 6],
    ) -> std::io::Result<UnderlayPort> {
        let u = Arc::new(Underlay {
            bridge: bridge.to_owned(),
            mac: Mutex::new(mac),
            inject: Mutex::new(Queue::default()),
            pending: Mutex::new(Vec::new()),
            resolving: Mutex::new(BTreeMap::new()),
            efd: eventfd()?,
        });
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(u.efd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        let has_fd = match inner.event_fd() {
            Some(fd) => {
                epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, 1))?;
                true
            }
            None => false,
        };
        self.underlays
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(bridge.to_owned(), u.clone());
        Ok(UnderlayPort {
            inner,
            u,
            sw: self.clone(),
            epoll,
            has_fd,
        })
    }

    /// `ovs/route/show`.
    pub fn route_show(&self) -> String {
        self.refresh();
        self.routes.read().unwrap_or_else(|e| e.into_inner()).show()
    }

    /// `ovs/route/add ip/plen bridge [gw] [src=ip]`.
    pub fn route_add(&self, args: &[String]) -> Result<String, String> {
        let (prefix, plen) = args
            .first()
            .and_then(|a| route::parse_prefix(a))
            .ok_or("Invalid 'ip/plen' parameter")?;
        let dev = args.get(1).ok_or("Missing output bridge")?;
        let mut gw = None;
        let mut src = None;
        for a in &args[2..] {
            if let Some(s) = a.strip_prefix("src=") {
                src = Some(
                    s.parse::<IpAddr>()
                        .map_err(|_| format!("Invalid src {s}"))?,
                );
            } else if a.starts_with("pkt_mark=") {
                return Err("pkt_mark routes are not supported by xennetd yet".into());
            } else {
                gw = Some(
                    a.parse::<IpAddr>()
                        .map_err(|_| format!("Invalid gateway {a}"))?,
                );
            }
        }
        if [gw, src]
            .iter()
            .flatten()
            .any(|a| a.is_ipv4() != prefix.is_ipv4())
        {
            return Err("Address family mismatch".into());
        }
        let src = src.or_else(|| {
            let addrs = self.addrs.read().unwrap_or_else(|e| e.into_inner());
            let mut r = [route::Route {
                prefix,
                plen,
                dev: dev.clone(),
                gw,
                src: None,
                user: true,
            }];
            route::fill_sources(&mut r, &addrs);
            r[0].src
        });
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .add_user(prefix, plen, dev, gw, src);
        Ok("OK\n".into())
    }

    /// `ovs/route/lookup ip`, as OVS prints it (`gateway ::` when on
    /// link).
    pub fn route_lookup(&self, args: &[String]) -> Result<String, String> {
        let ip: IpAddr = args
            .first()
            .and_then(|a| a.parse().ok())
            .ok_or("Invalid parameters")?;
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let r = routes.lookup(ip).ok_or("Not found")?;
        let src = r.src.map_or_else(|| "::".to_string(), |a| a.to_string());
        let gw = r.gw.map_or_else(|| "::".to_string(), |a| a.to_string());
        Ok(format!("src {src}\ngateway {gw}\ndev {}\n", r.dev))
    }

    /// `ovs/route/del ip/plen`.
    pub fn route_del(&self, args: &[String]) -> Result<String, String> {
        let (prefix, plen) = args
            .first()
            .and_then(|a| route::parse_prefix(a))
            .ok_or("Invalid parameters")?;
        if self
            .routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .del_user(prefix, plen)
        {
            Ok("OK\n".into())
        } else {
            Err("Not found".into())
        }
    }

    /// `tnl/neigh/show`.
    pub fn neigh_show(&self) -> String {
        lock(&self.neigh).show()
    }

    /// `tnl/neigh/set BRIDGE IP MAC`: a neighbour entry by hand.
    pub fn neigh_set(&self, args: &[String]) -> Result<String, String> {
        let [bridge, ip, mac] = args else {
            return Err("usage: tnl/neigh/set BRIDGE IP MAC".into());
        };
        let ip: IpAddr = ip.parse().map_err(|_| format!("bad IP address {ip}"))?;
        let mut m = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut m {
            *b = parts
                .next()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("bad MAC address {mac}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("bad MAC address {mac}"));
        }
        lock(&self.neigh).learn(ip, m, bridge, Instant::now());
        Ok("OK\n".into())
    }

    /// `tnl/neigh/flush`.
    pub fn neigh_flush(&self) -> String {
        lock(&self.neigh).flush();
        "OK\n".into()
    }

    /// `tnl/ports/show [-v]`: the UDP ports listened on (as OVS names its
    /// datapath tunnel vports), and with `-v` each tunnel port and the
    /// counters.
    pub fn ports_show(&self, verbose: bool) -> String {
        let t = self.tunnels.read().unwrap_or_else(|e| e.into_inner());
        let mut listen: BTreeMap<(&str, u16), usize> = BTreeMap::new();
        for e in t.iter() {
            let prefix = match e.cfg.kind {
                super::TunnelKind::Vxlan => "vxlan_sys",
                super::TunnelKind::Geneve => "genev_sys",
                // Not a UDP port.
                super::TunnelKind::Gre => continue,
            };
            *listen.entry((prefix, e.cfg.dst_port)).or_default() += 1;
        }
        let mut s = String::from("Listening ports:\n");
        for ((prefix, port), n) in &listen {
            s.push_str(&format!("{prefix}_{port} ({port}) ref_cnt={n}\n"));
        }
        if verbose {
            s.push_str("Tunnel ports:\n");
            for e in t.iter() {
                let c = &e.cfg;
                let remote = match c.remote {
                    FromFlow::Fixed(a) => a.to_string(),
                    FromFlow::Flow => "flow".into(),
                };
                let key = |k: FromFlow<u64>| match k {
                    FromFlow::Fixed(k) => k.to_string(),
                    FromFlow::Flow => "flow".into(),
                };
                s.push_str(&format!(
                    "{}: {} remote_ip={remote}{} in_key={} out_key={} dst_port={}\n",
                    e.name,
                    c.kind.name(),
                    c.local
                        .map(|l| format!(" local_ip={l}"))
                        .unwrap_or_default(),
                    key(c.in_key),
                    key(c.out_key),
                    c.dst_port
                ));
            }
            s.push_str("Counters:\n");
            for (k, v) in self.counters() {
                s.push_str(&format!("  {k}: {v}\n"));
            }
        }
        s
    }

    /// Every tunnel counter by name: [`EncapCounters`], then
    /// [`DecapCounters`] (`decapsulated` and one per refusal reason).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut v = self.encap.snapshot();
        v.extend(self.decap.snapshot());
        v
    }

    fn learn(&self, ip: IpAddr, mac: [u8; 6], u: &Underlay) {
        lock(&self.neigh).learn(ip, mac, &u.bridge, Instant::now());
        let ready: Vec<Packet> = {
            let mut p = lock(&u.pending);
            let (now, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *p)
                .into_iter()
                .partition(|(n, _)| *n == ip);
            *p = keep;
            now.into_iter().map(|(_, pkt)| pkt).collect()
        };
        for mut pkt in ready {
            pkt.data_mut()[..6].copy_from_slice(&mac);
            if u.inject(&pkt) {
                self.encap.encapsulated.fetch_add(1, Ordering::Relaxed);
            } else {
                self.encap.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether `dst`:`port` (UDP) on underlay `bridge` is a tunnel
    /// endpoint of this switch.
    fn is_endpoint(&self, bridge: &str, dst: IpAddr, port: u16) -> bool {
        let t = self.tunnels.read().unwrap_or_else(|e| e.into_inner());
        if !t.iter().any(|e| e.cfg.dst_port == port) {
            return false;
        }
        t.iter().any(|e| e.cfg.local == Some(dst))
            || self
                .addrs
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(bridge)
                .is_some_and(|a| a.contains(&dst))
    }

    /// Decapsulate `frame` (outer headers `outer`) into the tunnel port
    /// that takes it.
    fn receive(&self, pkt: &Packet, outer: &super::OuterUdp) {
        let frame = pkt.data();
        let t = self.tunnels.read().unwrap_or_else(|e| e.into_inner());
        let Some(kind) = t
            .iter()
            .find(|e| e.cfg.dst_port == outer.udp_dst)
            .map(|e| e.cfg.kind)
        else {
            return;
        };
        // Which Geneve options are known is the taking port's bridge's
        // business (its TLV map), checked once the port is found below.
        let mut d = match decapsulate(frame, outer, kind, &|_, _| true) {
            Ok(d) => d,
            Err(e) => {
                self.decap.count(e);
                return;
            }
        };
        let vni = d.tunnel.id;
        let takes = |e: &TunnelEnd, exact_remote: bool| {
            let c = &e.cfg;
            c.kind == kind
                && c.dst_port == outer.udp_dst
                && c.local.map_or(true, |l| l == outer.dst)
                && match c.in_key {
                    FromFlow::Fixed(k) => k == vni,
                    FromFlow::Flow => true,
                }
                && match c.remote {
                    FromFlow::Fixed(r) => exact_remote && r == outer.src,
                    FromFlow::Flow => !exact_remote,
                }
        };
        let Some(end) = t
            .iter()
            .find(|e| takes(e, true))
            .or_else(|| t.iter().find(|e| takes(e, false)))
        else {
            self.encap.no_port.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if d.opts.1 != 0 {
            let opts = frame.get(d.opts.0..d.opts.0 + d.opts.1).unwrap_or(&[]);
            let words = match &end.map {
                Some(m) => m.decode(opts),
                None if super::geneve::Options(opts).any(|o| o.map_or(true, |o| o.critical())) => {
                    Err(DecapError::GeneveCritical)
                }
                None => Ok(([0; 2], 0)),
            };
            match words {
                Ok((metadata, present)) => {
                    d.tunnel.metadata = metadata;
                    d.tunnel.md_present = present;
                }
                Err(e) => {
                    self.decap.count(e);
                    return;
                }
            }
        }
        let mut q = lock(&end.rx);
        let was_empty = q.pkts.is_empty();
        let Some(mut b) = q.slot() else {
            drop(q);
            self.encap.queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        };
        b.set_frame(&frame[d.inner..d.inner + d.inner_len]);
        b.in_port = 0;
        // A partial checksum inside the inner frame (Linux's vxlan over a
        // veth leaves the inner TCP/UDP checksum to the receiver, as
        // CHECKSUM_PARTIAL) stays partial, moved to the inner offsets; so
        // does a super-frame of inner segments. Anything the port said
        // about the outer packet says nothing about the inner one.
        (b.csum, b.gso) = match pkt.csum {
            xennet_datapath::Csum::Partial { start, offset }
                if usize::from(start) >= d.inner + super::ETH_LEN
                    && usize::from(start) + usize::from(offset) + 2 <= d.inner + d.inner_len =>
            {
                let start = usize::from(start) - d.inner;
                (
                    xennet_datapath::Csum::Partial {
                        start: u16::try_from(start).unwrap_or(u16::MAX),
                        offset,
                    },
                    pkt.gso,
                )
            }
            _ => (xennet_datapath::Csum::None, None),
        };
        b.md = PacketMeta {
            tunnel: d.tunnel,
            ..PacketMeta::default()
        };
        q.pkts.push_back(b);
        drop(q);
        self.decap.ok.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            let _ = end.efd.write(1);
        }
    }

    /// Send a resolution request for `nexthop` from underlay `u` with
    /// source `src`, unless one went out within [`RESOLVE_INTERVAL`].
    fn resolve(&self, u: &Underlay, nexthop: IpAddr, src: IpAddr) {
        let now = Instant::now();
        {
            let mut r = lock(&u.resolving);
            if r.get(&nexthop)
                .is_some_and(|t| now.saturating_duration_since(*t) < RESOLVE_INTERVAL)
            {
                return;
            }
            if r.len() >= PENDING_LEN * 4 {
                r.retain(|_, t| now.saturating_duration_since(*t) < RESOLVE_INTERVAL);
            }
            r.insert(nexthop, now);
        }
        let mac = *lock(&u.mac);
        let frame = match (src, nexthop) {
            (IpAddr::V4(s), IpAddr::V4(t)) => neigh::arp_request(mac, s, t),
            (IpAddr::V6(s), IpAddr::V6(t)) => neigh::ns_request(mac, s, t),
            _ => return,
        };
        if !u.inject(&Packet::from_slice(&frame)) {
            self.encap.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Encapsulate the packet `out` for tunnel `end` and hand it to its
    /// underlay: a borrowed packet is copied into the queue, an owned one
    /// (a segment in the port's scratch buffer) is encapsulated in place
    /// and its buffer moved into the queue (another takes its place).
    fn send_one(&self, end: &TunnelEnd, out: Out<'_>) -> bool {
        let p: &Packet = match &out {
            Out::Borrowed(p) => p,
            Out::Owned(p) => p,
        };
        let c = &end.cfg;
        let dst = match c.remote {
            FromFlow::Fixed(a) => a,
            FromFlow::Flow if p.md.tunnel.dst != 0 => u128_to_addr(p.md.tunnel.dst),
            FromFlow::Flow => {
                self.encap.no_remote.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        };
        let vni = match c.out_key {
            FromFlow::Fixed(k) => k,
            FromFlow::Flow => p.md.tunnel.id,
        };
        let (dev, gw, rsrc) = {
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            match routes.lookup(dst) {
                Some(r) => (r.dev.clone(), r.gw, r.src),
                None => {
                    self.encap.no_route.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        };
        let Some(src) = c.local.or(rsrc).filter(|s| s.is_ipv4() == dst.is_ipv4()) else {
            self.encap.no_route.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let Some(u) = self
            .underlays
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&dev)
            .cloned()
        else {
            self.encap.no_underlay.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let nexthop = gw.unwrap_or(dst);
        let dst_mac = lock(&self.neigh).lookup(nexthop, Instant::now());
        let inner_tos = inner_ip(p.data()).map(|(tos, _)| tos);
        let tos = match c.tos {
            Inherit::Fixed(t) => t,
            Inherit::Inherit => inner_tos.unwrap_or(0),
        };
        let ttl = match c.ttl {
            Inherit::Fixed(t) => t,
            Inherit::Inherit => inner_ip(p.data()).map_or(DEFAULT_TTL, |(_, ttl)| ttl),
        };
        let mut opts = Vec::new();
        if c.kind == TunnelKind::Geneve && p.md.tunnel.md_present != 0 {
            if let Some(m) = &end.map {
                m.encode(&p.md.tunnel.metadata, p.md.tunnel.md_present, &mut opts);
            }
        }
        let e = Encap {
            kind: c.kind,
            src_mac: *lock(&u.mac),
            dst_mac: dst_mac.unwrap_or([0; 6]),
            src,
            dst,
            vni: u32::try_from(vni & 0xff_ffff).unwrap_or(0),
            tos,
            ttl,
            df: c.df,
            ip_id: end.ip_id.fetch_add(1, Ordering::Relaxed),
            udp_src: 0,
            udp_dst: c.dst_port,
            csum: c.csum_for(dst.is_ipv6()),
            geneve_opts: &opts,
            oam: false,
        };
        if dst_mac.is_some() {
            let mut q = lock(&u.inject);
            let was_empty = q.pkts.is_empty();
            let Some(mut b) = q.slot() else {
                drop(q);
                self.encap.queue_full.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            let built = match out {
                // Built straight into the underlay's queue: one copy.
                Out::Borrowed(p) => encapsulate_into(&mut b, p, &e),
                // In place, then the buffers trade places: no copy.
                Out::Owned(p) => encapsulate(p, &e).map(|()| std::mem::swap(&mut b, p)),
            };
            if built.is_err() {
                q.free.push(b);
                drop(q);
                self.encap.encap_error.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            q.pkts.push_back(b);
            drop(q);
            if was_empty {
                let _ = u.efd.write(1);
            }
            self.encap.encapsulated.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let mut out = Packet::new();
        if encapsulate_into(&mut out, p, &e).is_err() {
            self.encap.encap_error.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.encap.neigh_miss.fetch_add(1, Ordering::Relaxed);
        let queued = {
            let mut pending = lock(&u.pending);
            if pending.len() < PENDING_LEN {
                pending.push((nexthop, out));
                true
            } else {
                self.encap.pending_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        self.resolve(&u, nexthop, src);
        queued
    }
}

/// TOS and TTL of the inner IPv4 / IPv6 header, if any.
fn inner_ip(f: &[u8]) -> Option<(u8, u8)> {
    match f.get(12..14)? {
        [0x08, 0x00] => Some((*f.get(15)?, *f.get(22)?)),
        [0x86, 0xdd] => {
            let w = f.get(14..16)?;
            Some((((w[0] & 0x0f) << 4) | (w[1] >> 4), *f.get(21)?))
        }
        _ => None,
    }
}

fn read_mac(dev: &str) -> Option<[u8; 6]> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

fn refresher(weak: Weak<TunnelSwitch>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(sw) = weak.upgrade() else { return };
        sw.refresh();
    }
}

/// A packet for [`TunnelSwitch::send_one`].
enum Out<'a> {
    /// The datapath's: copied.
    Borrowed(&'a Packet),
    /// The port's scratch segment: encapsulated in place, its buffer taken.
    Owned(&'a mut Packet),
}

/// A tunnel port (OVS `type=vxlan` or `geneve`) as its bridge's
/// forwarding thread drives it.
#[derive(Debug)]
pub struct TunnelPort {
    end: Arc<TunnelEnd>,
    sw: Arc<TunnelSwitch>,
    /// Where super-frames are cut, one segment at a time.
    scratch: Packet,
}

impl TunnelPort {
    /// The port's link view.
    pub fn link(&self) -> SoftLink {
        SoftLink::Tunnel(self.end.cfg.clone())
    }
}

impl Drop for TunnelPort {
    fn drop(&mut self) {
        self.sw
            .tunnels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|e| !Arc::ptr_eq(e, &self.end));
    }
}

impl Port for TunnelPort {
    fn name(&self) -> &str {
        &self.end.name
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.end.efd.as_fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        let _ = self.end.efd.read();
        let (n, bytes, more) = lock(&self.end.rx).drain_into(batch);
        let c = &self.end.counters;
        c.rx_packets.fetch_add(n, Ordering::Relaxed);
        c.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        if more {
            RecvStatus::More
        } else {
            RecvStatus::Idle
        }
    }

    fn send(&mut self, pkts: &[&Packet]) {
        let (sw, end) = (&self.sw, &self.end);
        let c = &end.counters;
        let count = |sent: bool, len: usize| {
            if sent {
                c.tx_packets.fetch_add(1, Ordering::Relaxed);
                c.tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
            } else {
                c.tx_dropped.fetch_add(1, Ordering::Relaxed);
            }
        };
        for p in pkts {
            if p.gso.is_none() {
                count(sw.send_one(end, Out::Borrowed(p)), p.len());
                continue;
            }
            // Counted per segment, as when the datapath cut them.
            let cut = xennet_datapath::gso::segment_each(p, &mut self.scratch, &mut |seg| {
                let len = seg.len();
                count(sw.send_one(end, Out::Owned(seg)), len);
            });
            if !cut {
                // Not segmentable (bad headers, MSS 0, too many segments):
                // dropped, as the datapath drops it for other ports.
                sw.encap.encap_error.fetch_add(1, Ordering::Relaxed);
                c.tx_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn features(&self) -> PortFeatures {
        // TCP super-frames and partial checksums: `send` segments and
        // completes them, each segment in its own outer packet.
        PortFeatures {
            csum_partial: true,
            gso: true,
        }
    }

    fn stats(&self) -> PortStats {
        let c = &self.end.counters;
        PortStats {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            rx_bytes: c.rx_bytes.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_bytes: c.tx_bytes.load(Ordering::Relaxed),
            tx_dropped: c.tx_dropped.load(Ordering::Relaxed),
            ..PortStats::default()
        }
    }
}

/// A bridge's LOCAL port as an underlay: it receives what tunnel ports
/// encapsulated (as if the host sent it), takes the tunnel packets the
/// bridge delivers to the host, and learns neighbours from ARP and ND.
/// Everything else passes to and from the wrapped device unchanged.
#[derive(Debug)]
pub struct UnderlayPort {
    inner: Box<dyn Port>,
    u: Arc<Underlay>,
    sw: Arc<TunnelSwitch>,
    /// Readable when the device or the injection queue has work.
    epoll: Epoll,
    has_fd: bool,
}

impl Drop for UnderlayPort {
    fn drop(&mut self) {
        let mut u = self.sw.underlays.write().unwrap_or_else(|e| e.into_inner());
        if u.get(&self.u.bridge)
            .is_some_and(|x| Arc::ptr_eq(x, &self.u))
        {
            u.remove(&self.u.bridge);
        }
    }
}

impl Port for UnderlayPort {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        // Without a device fd the datapath polls us on every loop.
        self.has_fd.then(|| self.epoll.0.as_fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        let _ = self.u.efd.read();
        let (_, _, more) = lock(&self.u.inject).drain_into(batch);
        let st = if batch.is_full() {
            RecvStatus::More
        } else {
            self.inner.recv(batch)
        };
        match st {
            RecvStatus::Disabled => RecvStatus::Disabled,
            _ if more => RecvStatus::More,
            st => st,
        }
    }

    fn send(&mut self, pkts: &[&Packet]) {
        let quiet = self
            .sw
            .tunnels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if quiet {
            self.inner.send(pkts);
            return;
        }
        let mut pass: Vec<&Packet> = Vec::with_capacity(pkts.len());
        for p in pkts {
            let f = p.data();
            if let Some((ip, mac)) = neigh::snoop(f) {
                self.sw.learn(ip, mac, &self.u);
            }
            match parse_outer_udp_csum(f, p.csum) {
                Ok(Some(o)) if self.sw.is_endpoint(&self.u.bridge, o.dst, o.udp_dst) => {
                    self.sw.receive(p, &o);
                }
                Err(e) if udp_dport(f).is_some_and(|port| self.sw.listens(port)) => {
                    self.sw.decap.count(e);
                }
                Ok(None) if self.sw.listens(0) => match parse_outer_gre(f) {
                    Ok(Some(o)) if self.sw.is_endpoint(&self.u.bridge, o.dst, 0) => {
                        self.sw.receive(p, &o);
                    }
                    Err(e) => self.sw.decap.count(e),
                    _ => pass.push(p),
                },
                _ => pass.push(p),
            }
        }
        if !pass.is_empty() {
            self.inner.send(&pass);
        }
    }

    fn features(&self) -> PortFeatures {
        self.inner.features()
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }
}

impl TunnelSwitch {
    fn listens(&self, port: u16) -> bool {
        self.tunnels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|e| e.cfg.dst_port == port)
    }
}

/// The UDP destination port of an IPv4/IPv6 frame, read without
/// validating the headers (to tell whether a malformed packet was meant
/// for a tunnel).
fn udp_dport(f: &[u8]) -> Option<u16> {
    let l4 = match f.get(12..14)? {
        [0x08, 0x00] => {
            let ihl = usize::from(f.get(14)? & 0x0f) * 4;
            (*f.get(23)? == 17).then_some(14 + ihl)?
        }
        [0x86, 0xdd] => (*f.get(20)? == 17).then_some(54)?,
        _ => return None,
    };
    let p = f.get(l4 + 2..l4 + 4)?;
    Some(u16::from_be_bytes([p[0], p[1]]))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use xennet_datapath::memport::mem_port;

    use super::*;
    use crate::tunnel::config::parse_options;
    use crate::tunnel::{encapsulate, parse_outer_udp, TunnelKind};

    const BR_MAC: [u8; 6] = [0xaa, 0, 0, 0, 0, 1];
    const PEER_MAC: [u8; 6] = [0xaa, 0, 0, 0, 0, 2];

    fn recv_all(p: &mut dyn Port) -> Vec<Packet> {
        let mut out = Vec::new();
        loop {
            let mut b = PacketBatch::new();
            let st = p.recv(&mut b);
            out.extend(b.packets().iter().cloned());
            if st != RecvStatus::More {
                return out;
            }
        }
    }

    fn guest_frame() -> Packet {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 8]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[22] = 64;
        Packet::from_slice(&f)
    }

    /// An underlay `brp` (a memory port standing for its tap) with a user
    /// route to 172.31.1.0/24 from 172.31.1.1, and tunnel `tv` to
    /// 172.31.1.2 (VNI 42, local_ip set so no device address is needed).
    fn setup() -> (Arc<TunnelSwitch>, UnderlayPort, TunnelPort) {
        setup_tunnel("tv", TunnelKind::Vxlan, "42", None)
    }

    /// The underlay of [`setup`] with tunnel `name` of `kind` to
    /// 172.31.1.2 with key `key` and Geneve option map `map`.
    fn setup_tunnel(
        name: &str,
        kind: TunnelKind,
        key: &str,
        map: Option<Arc<dyn GeneveMap>>,
    ) -> (Arc<TunnelSwitch>, UnderlayPort, TunnelPort) {
        let sw = Arc::new(TunnelSwitch::default());
        let (tap, _peer) = mem_port("brp", PortFeatures::default()).unwrap();
        let u = sw.wrap_local("brp", Box::new(tap), BR_MAC).unwrap();
        sw.route_add(&[
            "172.31.1.0/24".into(),
            "brp".into(),
            "src=172.31.1.1".into(),
        ])
        .unwrap();
        let opts = [
            ("remote_ip", "172.31.1.2"),
            ("key", key),
            ("local_ip", "172.31.1.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = parse_options(name, kind, &opts).unwrap();
        let t = sw.open_with_map(name, cfg, map).unwrap();
        (sw, u, t)
    }

    /// A TCP super-frame (checksum partial, as a guest with TSO sends it)
    /// leaves as one outer packet per MSS-sized segment, each inner
    /// segment with its headers fixed up and its checksum complete, the
    /// payload in order and whole.
    #[test]
    fn a_tcp_super_frame_leaves_as_encapsulated_segments() {
        use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
        let (sw, mut u, mut t) = setup();
        assert!(t.features().takes_gso(xennet_datapath::GsoType::TcpV4));
        sw.neigh_set(&[
            "brp".into(),
            "172.31.1.2".into(),
            "aa:00:00:00:00:02".into(),
        ])
        .unwrap();
        let payload: Vec<u8> = (0..3500u32).map(|i| (i * 7) as u8).collect();
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 8], [2, 0, 0, 0, 0, 9])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 5201, 1000, 512)
            .ack(77)
            .psh()
            .write(&mut f, &payload)
            .unwrap();
        let mut p = Packet::from_slice(&f);
        let (start, offset) = xennet_datapath::csum::prepare_partial(p.data_mut()).unwrap();
        p.csum = xennet_datapath::Csum::Partial { start, offset };
        p.gso = Some(xennet_datapath::Gso {
            kind: xennet_datapath::GsoType::TcpV4,
            mss: 1000,
        });
        t.send(&[&p]);
        let out = recv_all(&mut u);
        assert_eq!(out.len(), 4);
        let mut got = Vec::new();
        for (i, o) in out.iter().enumerate() {
            assert_eq!(&o.data()[..6], &PEER_MAC);
            let outer = parse_outer_udp(o.data()).unwrap().unwrap();
            assert_eq!(outer.udp_dst, 4789);
            // VXLAN over IPv4: the inner frame starts after 50 bytes.
            let inner = SlicedPacket::from_ethernet(&o.data()[50..]).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = &inner.net else {
                panic!("inner segment {i} is not IPv4")
            };
            let Some(TransportSlice::Tcp(tcp)) = &inner.transport else {
                panic!("inner segment {i} is not TCP")
            };
            assert_eq!(tcp.sequence_number(), 1000 + 1000 * i as u32);
            assert_eq!(tcp.psh(), i == 3);
            assert_eq!(tcp.acknowledgment_number(), 77);
            let want = tcp
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
                .unwrap();
            assert_eq!(tcp.checksum(), want, "segment {i}'s inner TCP checksum");
            got.extend_from_slice(tcp.payload());
        }
        assert_eq!(got, payload);
        assert_eq!(t.stats().tx_packets, 4);
        assert_eq!(sw.encap.encapsulated.load(Ordering::Relaxed), 4);
        // A super-frame that cannot be cut is dropped and counted.
        let mut bad = p.clone();
        bad.gso = Some(xennet_datapath::Gso {
            kind: xennet_datapath::GsoType::TcpV4,
            mss: 0,
        });
        t.send(&[&bad]);
        assert!(recv_all(&mut u).is_empty());
        assert_eq!(sw.encap.encap_error.load(Ordering::Relaxed), 1);
        assert_eq!(t.stats().tx_dropped, 1);
    }

    #[test]
    fn first_packet_waits_for_arp_then_leaves_encapsulated() {
        let (sw, mut u, mut t) = setup();
        let g = guest_frame();
        t.send(&[&g, &g]);
        // An ARP request went out of the underlay (one; a second only if a
        // second had passed), the packets wait.
        let got = recv_all(&mut u);
        assert!(!got.is_empty());
        for arp in &got {
            let arp = arp.data();
            assert_eq!(&arp[12..14], &[0x08, 0x06]);
            assert_eq!(&arp[6..12], &BR_MAC);
            assert_eq!(&arp[38..42], &[172, 31, 1, 2]);
        }
        assert_eq!(sw.encap.neigh_miss.load(Ordering::Relaxed), 2);
        // The reply reaches the host's side of the underlay: learned, and
        // both waiting packets leave with the peer's MAC.
        let reply = neigh::arp_request(
            PEER_MAC,
            Ipv4Addr::new(172, 31, 1, 2),
            Ipv4Addr::new(172, 31, 1, 1),
        );
        u.send(&[&Packet::from_slice(&reply)]);
        let out = recv_all(&mut u);
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0].data()[..6], &PEER_MAC);
        let outer = parse_outer_udp(out[0].data()).unwrap().unwrap();
        assert_eq!(outer.udp_dst, 4789);
        assert_eq!(outer.dst, IpAddr::V4(Ipv4Addr::new(172, 31, 1, 2)));
        assert!(sw.neigh_show().contains("172.31.1.2"));
        assert_eq!(
            sw.route_lookup(&["172.31.1.2".into()]),
            Ok("src 172.31.1.1\ngateway ::\ndev brp\n".into())
        );
        assert_eq!(
            sw.route_lookup(&["10.0.0.1".into()]),
            Err("Not found".into())
        );
        let set = |a: &[&str]| sw.neigh_set(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            set(&["brp", "172.31.1.9", "02:00:00:00:00:09"]),
            Ok("OK\n".into())
        );
        assert!(sw.neigh_show().contains("02:00:00:00:00:09   brp"));
        assert!(set(&["brp", "172.31.1.9", "02:00:00:00:00"]).is_err());
        assert!(set(&["brp", "x", "02:00:00:00:00:09"]).is_err());
        assert_eq!(t.stats().tx_packets, 2);
        // Resolved: the next packet leaves at once.
        t.send(&[&guest_frame()]);
        assert_eq!(recv_all(&mut u).len(), 1);
    }

    #[test]
    fn tunnel_packets_to_the_underlay_are_decapsulated_into_the_port() {
        let (sw, mut u, mut t) = setup();
        let mut p = guest_frame();
        let e = Encap {
            kind: TunnelKind::Vxlan,
            src_mac: PEER_MAC,
            dst_mac: BR_MAC,
            src: "172.31.1.2".parse().unwrap(),
            dst: "172.31.1.1".parse().unwrap(),
            vni: 42,
            tos: 0,
            ttl: 64,
            df: true,
            ip_id: 0,
            udp_src: 50000,
            udp_dst: 4789,
            csum: true,
            geneve_opts: &[],
            oam: false,
        };
        encapsulate(&mut p, &e).unwrap();
        u.send(&[&p]);
        let got = recv_all(&mut t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data(), guest_frame().data());
        assert_eq!(got[0].md.tunnel.id, 42);
        assert_eq!(u128_to_addr(got[0].md.tunnel.src), e.src);
        assert_eq!(got[0].md.tunnel.tp_src, 50000);
        // Another VNI: nobody's.
        let mut q = guest_frame();
        encapsulate(
            &mut q,
            &Encap {
                vni: 43,
                ..e.clone()
            },
        )
        .unwrap();
        u.send(&[&q]);
        assert!(recv_all(&mut t).is_empty());
        assert_eq!(sw.encap.no_port.load(Ordering::Relaxed), 1);
        // A lying UDP length to the tunnel port: refused and counted.
        let mut r = p.clone();
        r.data_mut()[38..40].copy_from_slice(&[0xff, 0xff]);
        u.send(&[&r]);
        assert!(recv_all(&mut t).is_empty());
        assert_eq!(sw.decap.bad_udp_length.load(Ordering::Relaxed), 1);
        assert!(sw.ports_show(true).contains("no_port: 1"));
    }

    /// A map that knows one option: OVN's (class 0x0102, type 0x80,
    /// critical, 4 bytes) as `tun_metadata0` in the first 4 bytes of the
    /// option space.
    #[derive(Debug)]
    struct OvnMap;

    impl GeneveMap for OvnMap {
        fn decode(&self, opts: &[u8]) -> Result<([u128; 2], u64), DecapError> {
            let mut w = ([0u128; 2], 0u64);
            for o in super::super::geneve::Options(opts) {
                let o = o?;
                match (o.class, o.kind, o.data.len()) {
                    (0x0102, 0x80, 4) => {
                        let v = u32::from_be_bytes([o.data[0], o.data[1], o.data[2], o.data[3]]);
                        w.0[0] = u128::from(v) << 96;
                        w.1 |= 1;
                    }
                    (0x0102, 0x80, _) => return Err(DecapError::GeneveOptions),
                    _ if o.critical() => return Err(DecapError::GeneveCritical),
                    _ => {}
                }
            }
            Ok(w)
        }

        fn encode(&self, metadata: &[u128; 2], present: u64, out: &mut Vec<u8>) {
            if present & 1 != 0 {
                out.extend_from_slice(&[0x01, 0x02, 0x80, 1]);
                out.extend_from_slice(&((metadata[0] >> 96) as u32).to_be_bytes());
            }
        }
    }

    /// [`setup`] with a Geneve tunnel `tg`, with or without [`OvnMap`].
    fn setup_geneve(map: bool) -> (Arc<TunnelSwitch>, UnderlayPort, TunnelPort) {
        let m: Option<Arc<dyn GeneveMap>> = if map { Some(Arc::new(OvnMap)) } else { None };
        setup_tunnel("tg", TunnelKind::Geneve, "flow", m)
    }

    fn geneve_from_peer(opts: &[u8]) -> Packet {
        let mut p = guest_frame();
        let e = Encap {
            kind: TunnelKind::Geneve,
            src_mac: PEER_MAC,
            dst_mac: BR_MAC,
            src: "172.31.1.2".parse().unwrap(),
            dst: "172.31.1.1".parse().unwrap(),
            vni: 7,
            tos: 0,
            ttl: 64,
            df: true,
            ip_id: 0,
            udp_src: 50000,
            udp_dst: 6081,
            csum: false,
            geneve_opts: opts,
            oam: false,
        };
        encapsulate(&mut p, &e).unwrap();
        p
    }

    #[test]
    fn geneve_options_are_decoded_through_the_map_and_encoded_on_output() {
        let ovn = [0x01, 0x02, 0x80, 1, 0, 0, 0x12, 0x34];
        // Without a map, OVN's critical option is unknown: refused.
        let (sw, mut u, mut t) = setup_geneve(false);
        u.send(&[&geneve_from_peer(&ovn)]);
        assert!(recv_all(&mut t).is_empty());
        assert_eq!(sw.decap.geneve_critical.load(Ordering::Relaxed), 1);
        // A non-critical unknown option is skipped.
        u.send(&[&geneve_from_peer(&[0x09, 0x99, 0x01, 0])]);
        let got = recv_all(&mut t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].md.tunnel.md_present, 0);

        // With the map: known, its value in the metadata words.
        let (sw, mut u, mut t) = setup_geneve(true);
        u.send(&[&geneve_from_peer(&ovn)]);
        let got = recv_all(&mut t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data(), guest_frame().data());
        assert_eq!(got[0].md.tunnel.id, 7);
        assert_eq!(got[0].md.tunnel.metadata, [0x1234u128 << 96, 0]);
        assert_eq!(got[0].md.tunnel.md_present, 1);
        // Another critical option the map does not know, and a mapped one
        // of the wrong length: refused and counted.
        let mut other = ovn;
        other[1] = 0x03;
        u.send(&[&geneve_from_peer(&other)]);
        u.send(&[&geneve_from_peer(&[
            0x01, 0x02, 0x80, 2, 0, 0, 0, 1, 0, 0, 0, 2,
        ])]);
        assert!(recv_all(&mut t).is_empty());
        assert_eq!(sw.decap.geneve_critical.load(Ordering::Relaxed), 1);
        assert_eq!(sw.decap.geneve_options.load(Ordering::Relaxed), 1);

        // Output: the metadata becomes the option, with the C bit.
        sw.neigh_set(&[
            "brp".into(),
            "172.31.1.2".into(),
            "aa:00:00:00:00:02".into(),
        ])
        .unwrap();
        let mut g = guest_frame();
        g.md.tunnel.id = 9;
        g.md.tunnel.metadata = [0x5678u128 << 96, 0];
        g.md.tunnel.md_present = 1;
        t.send(&[&g]);
        let out = recv_all(&mut u);
        assert_eq!(out.len(), 1);
        let outer = parse_outer_udp(out[0].data()).unwrap().unwrap();
        let gnv = &out[0].data()[outer.payload..];
        assert_eq!(gnv[0] & 0x3f, 2, "two words of options");
        assert_eq!(gnv[1] & 0x40, 0x40, "critical option present");
        assert_eq!(&gnv[4..7], &[0, 0, 9]);
        assert_eq!(&gnv[8..16], &[0x01, 0x02, 0x80, 1, 0, 0, 0x56, 0x78]);
        // Without metadata: no options.
        t.send(&[&guest_frame()]);
        let out = recv_all(&mut u);
        let outer = parse_outer_udp(out[0].data()).unwrap().unwrap();
        assert_eq!(out[0].data()[outer.payload] & 0x3f, 0);
    }
}
