//! xennetd configuration: the embedded default, or a TOML file given with
//! `--config`. With `--db` the bridges come from an `Open_vSwitch` database
//! instead (see `dbsync`) and only `[xen]` and `[emulated_xen]` are used
//! from here.
//!
//! ```toml
//! [[bridge]]
//! name = "br0"              # bridge name, as `ovs-vsctl add-br`
//! fail_mode = "standalone"  # OVS Bridge:fail_mode; standalone = NORMAL switching
//! controller = []           # OVS Controller:target list, e.g. "tcp:127.0.0.1:6653",
//!                           # "ptcp:6653:127.0.0.1", "unix:PATH", "punix:PATH"
//!
//! essential_services = "arp,nd,dhcp,dns=10.0.0.53,tcp=10.0.0.5:443"
//!                           # what every vif must keep reaching (isolation alert;
//!                           # see src/isolation.rs): arp, nd, dhcp, dns=ADDR,
//!                           # gateway=ADDR, tcp=ADDR:PORT, default (arp,nd,dhcp),
//!                           # none; absent: default plus `gateway`
//! gateway = "10.0.0.1"      # the default gateway, checked with the default services
//! isolation_guard = false   # refuse flow-mods that cut a vif off (OFPFMFC_EPERM)
//!
//! [[bridge.port]]           # optional: settings of a port; a name that is not
//! name = "vif1.0"           # vif<domid>.<handle> is a Linux device, attached at start
//! tag = 10                  # OVS Port:tag, 0-4095
//! trunks = [10, 20]         # OVS Port:trunks (empty or absent = every VLAN)
//! vlan_mode = "trunk"       # OVS Port:vlan_mode: access, trunk, native-tagged,
//!                           # native-untagged; default access with a tag, else trunk
//! rx_ring = false           # Linux devices only (xennet's own, as the database's
//!                           # Interface options:rx-ring): receive through a
//!                           # TPACKET_V3 ring of blocks instead of the default
//!                           # TPACKET_V2 ring of frames (see netdev.rs; up to
//!                           # 1 ms more latency per frame)
//!
//! [emulated_xen]
//! enabled = true            # serve emulated Xen guests (xennet-guest)
//! socket = "xennet-xen.sock"  # relative to --rundir
//! bridge = "br0"            # bridge that new vifs join
//! backend_domid = 0         # our domain id, as a Xen driver domain's
//! xenstored = "xenstored.sock"  # emulated xenstored socket, relative to --rundir
//!                           # (point XENSTORED_PATH here); "" disables it
//! hotplug = "self"          # "self": xennetd writes hotplug-status = connected;
//!                           # "script": wait for a hotplug script (scripts/vif-xennet)
//! representors = true       # a tap device vif<domid>.<handle> per vif, mirroring
//!                           # its traffic while watched (tcpdump); see representor.rs
//! event_rate = 10000        # spurious events (no new request) accepted per second per
//!                           # vif event channel (beyond: coalesced until the next 1 ms
//!                           # tick); 0 = no limit
//! coalesce_usecs = 32       # adaptive notification coalescing: under high load
//!                           # (8+ responses since the last event) a vif event
//!                           # channel notifies at most once per this many µs;
//!                           # 0 = every notification at once
//! port_security = true      # drop (and count) guest frames whose source MAC is
//!                           # not the vif's `mac`, sources not in its `ip` key,
//!                           # spoofed ARP/ND, DHCP server and router messages;
//!                           # false for bridging guests (README "Port security")
//! allow_dhcp_server = false # port security: guests may serve DHCP (v4 and v6)
//! allow_ra = false          # port security: guests may send router
//!                           # advertisements and redirects
//! rx_control_first = true   # when a guest's RX ring is full, its ARP, ICMP,
//!                           # ICMPv6/ND and DHCP frames wait in a priority
//!                           # backlog, delivered before bulk frames, dropped last
//!
//! [xen]
//! mode = "emulated"         # "emulated": the [emulated_xen] hypervisor above;
//!                           # "real": serve real Xen guests (xennetd in dom0 or a
//!                           # driver domain: the real xenstored, /dev/xen/gntdev,
//!                           # /dev/xen/evtchn); `xennetd --xen real` overrides
//! bridge = "br0"            # real mode: bridge that vifs join (not with --db)
//! hotplug = "self"          # real mode: as [emulated_xen] hotplug
//! representors = true       # real mode: as [emulated_xen] representors
//! event_rate = 10000        # real mode: as [emulated_xen] event_rate
//! coalesce_usecs = 32       # real mode: as [emulated_xen] coalesce_usecs
//! port_security = true      # real mode: as [emulated_xen] port_security
//! allow_dhcp_server = false # real mode: as [emulated_xen] allow_dhcp_server
//! allow_ra = false          # real mode: as [emulated_xen] allow_ra
//! rx_control_first = true   # real mode: as [emulated_xen] rx_control_first
//! ```
//!
//! In real mode `[emulated_xen]` is ignored (no attach socket, no emulated
//! xenstored) and the backend domain id is read from xenstore (`domid`).

use serde::Deserialize;
use xennet_ofproto::normal::PortVlan;

use crate::bridge::PortVlans;

/// The configuration used when no `--config` file is given: one standalone
/// bridge `br0` and emulated Xen guests attaching to it.
pub const EMBEDDED_DEFAULT: &str = r#"
[[bridge]]
name = "br0"
fail_mode = "standalone"

[emulated_xen]
enabled = true
socket = "xennet-xen.sock"
bridge = "br0"
backend_domid = 0
xenstored = "xenstored.sock"

# Real Xen instead (or `xennetd --xen real`): guests' vifs from the real
# xenstored join `bridge`; [emulated_xen] is then ignored.
[xen]
mode = "emulated"
bridge = "br0"
hotplug = "self"
"#;

/// Whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bridges to create.
    #[serde(default, rename = "bridge")]
    pub bridges: Vec<BridgeConfig>,
    /// Emulated Xen hypervisor for guests on machines without Xen.
    #[serde(default)]
    pub emulated_xen: EmulatedXenConfig,
    /// Which Xen to serve: emulated or real.
    #[serde(default)]
    pub xen: XenConfig,
}

/// `[xen]`: emulated or real Xen, and the real mode's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XenConfig {
    /// Emulated (`[emulated_xen]`) or real Xen.
    #[serde(default)]
    pub mode: XenMode,
    /// Real mode: the bridge vifs join (unless `--db`, where the
    /// database's Port rows decide).
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// Real mode: who writes `hotplug-status = connected`.
    #[serde(default)]
    pub hotplug: Hotplug,
    /// Real mode: a representor net device per vif, as
    /// `[emulated_xen] representors`. Default true.
    #[serde(default = "default_true")]
    pub representors: bool,
    /// Real mode: as `[emulated_xen] event_rate`.
    #[serde(default = "default_event_rate")]
    pub event_rate: u32,
    /// Real mode: as `[emulated_xen] coalesce_usecs`.
    #[serde(default = "default_coalesce_usecs")]
    pub coalesce_usecs: u32,
    /// Real mode: as `[emulated_xen] port_security`.
    #[serde(default = "default_true")]
    pub port_security: bool,
    /// Real mode: as `[emulated_xen] allow_dhcp_server`.
    #[serde(default)]
    pub allow_dhcp_server: bool,
    /// Real mode: as `[emulated_xen] allow_ra`.
    #[serde(default)]
    pub allow_ra: bool,
    /// Real mode: as `[emulated_xen] rx_control_first`.
    #[serde(default = "default_true")]
    pub rx_control_first: bool,
}

impl XenConfig {
    /// The backend settings of real mode, for our domain `backend_domid`.
    pub fn backend(&self, backend_domid: u16) -> crate::xenbusd::BackendConfig {
        crate::xenbusd::BackendConfig {
            backend_domid,
            bridge: self.bridge.clone(),
            hotplug: self.hotplug,
            representors: self.representors,
            event_rate: self.event_rate,
            coalesce_usecs: self.coalesce_usecs,
            port_security: self.port_security,
            allow_dhcp_server: self.allow_dhcp_server,
            allow_ra: self.allow_ra,
            rx_control_first: self.rx_control_first,
        }
    }
}

impl EmulatedXenConfig {
    /// The backend settings of emulated mode.
    pub fn backend(&self) -> crate::xenbusd::BackendConfig {
        crate::xenbusd::BackendConfig {
            backend_domid: self.backend_domid,
            bridge: self.bridge.clone(),
            hotplug: self.hotplug,
            representors: self.representors,
            event_rate: self.event_rate,
            coalesce_usecs: self.coalesce_usecs,
            port_security: self.port_security,
            allow_dhcp_server: self.allow_dhcp_server,
            allow_ra: self.allow_ra,
            rx_control_first: self.rx_control_first,
        }
    }
}

impl Default for XenConfig {
    fn default() -> Self {
        XenConfig {
            mode: XenMode::default(),
            bridge: default_bridge(),
            hotplug: Hotplug::default(),
            representors: true,
            event_rate: default_event_rate(),
            coalesce_usecs: default_coalesce_usecs(),
            port_security: true,
            allow_dhcp_server: false,
            allow_ra: false,
            rx_control_first: true,
        }
    }
}

/// `[xen] mode` and `xennetd --xen`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XenMode {
    /// The emulated hypervisor (`[emulated_xen]`, `xennet-guest`).
    #[default]
    Emulated,
    /// Real Xen: the real xenstored, `/dev/xen/gntdev`, `/dev/xen/evtchn`.
    Real,
}

/// One bridge (OVS `Bridge` table row).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Bridge name.
    pub name: String,
    /// OVS `Bridge:fail_mode`: `standalone` or `secure`.
    #[serde(default = "default_fail_mode")]
    pub fail_mode: FailMode,
    /// OpenFlow controllers (OVS `Controller:target` connection methods).
    #[serde(default)]
    pub controller: Vec<String>,
    /// Port settings (OVS `Port` rows), by port name.
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
    /// The isolation check's essential services (as OVSDB
    /// `other_config:xennet-essential-services`; see `isolation`);
    /// absent: `default`, plus `gateway`.
    pub essential_services: Option<String>,
    /// The default gateway's address, checked with the default services
    /// (as `other_config:xennet-gateway`).
    pub gateway: Option<String>,
    /// Refuse flow-mods that cut a vif off from an essential service
    /// (as `other_config:xennet-isolation-guard`). Default false.
    #[serde(default)]
    pub isolation_guard: bool,
}

impl BridgeConfig {
    /// The isolation settings (checked by [`Config::parse`]).
    pub fn isolation(&self) -> Result<crate::isolation::IsolationConfig, String> {
        crate::isolation::IsolationConfig::from_settings(
            self.essential_services.as_deref(),
            self.gateway.as_deref(),
            self.isolation_guard,
        )
    }
}

/// A port's settings (OVS `Port` table columns of the same names); they
/// apply to the vif of that name whenever it joins the bridge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Port name: a vif (`vif<domid>.<handle>`), which joins when its
    /// guest attaches, or else a Linux network device, attached at start
    /// with AF_PACKET (OVS `Interface:type` "").
    pub name: String,
    /// OVS `Port:tag`: the access VLAN, or a `native-*` port's native VLAN.
    pub tag: Option<i64>,
    /// OVS `Port:trunks`: the VLANs a trunk carries; empty = every VLAN.
    #[serde(default)]
    pub trunks: Vec<i64>,
    /// OVS `Port:vlan_mode`: `access`, `trunk`, `native-tagged` or
    /// `native-untagged`; default access with a tag, else trunk.
    pub vlan_mode: Option<String>,
    /// A Linux device only: receive through a `TPACKET_V3` ring of blocks
    /// instead of the default `TPACKET_V2` ring of frames (`Netdev::open`;
    /// the database's Interface `options:rx-ring`). Default false.
    #[serde(default)]
    pub rx_ring: bool,
}

impl PortConfig {
    fn vlan(&self) -> anyhow::Result<PortVlan> {
        PortVlan::from_columns(self.tag, &self.trunks, self.vlan_mode.as_deref())
            .map_err(|e| anyhow::anyhow!("port {}: {e}", self.name))
    }
}

impl BridgeConfig {
    /// The VLAN settings of the bridge's ports (checked by
    /// [`Config::parse`]; one that is not would be blocked).
    pub fn port_vlans(&self) -> PortVlans {
        self.ports
            .iter()
            .map(|p| (p.name.clone(), p.vlan().ok()))
            .collect()
    }
}

/// OVS `Bridge:fail_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Act as a learning switch (NORMAL) while no controller is connected.
    Standalone,
    /// Forward nothing the flow tables do not say.
    Secure,
}

fn default_fail_mode() -> FailMode {
    FailMode::Standalone
}

/// The emulated Xen layer (see `vif-port`'s `emul` module).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatedXenConfig {
    /// Whether to listen for emulated guests.
    #[serde(default)]
    pub enabled: bool,
    /// Socket path; relative paths are under the run directory.
    #[serde(default = "default_socket")]
    pub socket: String,
    /// Bridge that vifs join.
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// Domain id of the backend (0 for dom0, else a driver domain).
    #[serde(default)]
    pub backend_domid: u16,
    /// Socket of the in-process emulated xenstored (relative paths are
    /// under the run directory; clients connect as dom0, as to
    /// xenstored's `socket`). Empty: no xenstored.
    #[serde(default = "default_xenstored")]
    pub xenstored: String,
    /// Who writes a vif's `hotplug-status = connected`: xennetd itself
    /// once the vif is on its bridge (`self`), or an external hotplug
    /// script such as `scripts/vif-xennet` (`script`), for which the
    /// backend waits before connecting, as Linux netback does.
    #[serde(default)]
    pub hotplug: Hotplug,
    /// A representor net device per vif (`vif<domid>.<handle>`, see
    /// `representor`): what Xen's hotplug scripts and operators' `ip link`
    /// and `tcpdump` expect. Default true.
    #[serde(default = "default_true")]
    pub representors: bool,
    /// Spurious events (bringing no new request) accepted per second from
    /// each event channel of a vif
    /// (`xennet_vif::Vif::set_event_rate`); more are coalesced until the
    /// next 1 ms tick and counted (`event_throttles`). 0: no limit.
    #[serde(default = "default_event_rate")]
    pub event_rate: u32,
    /// Adaptive notification coalescing window in µs
    /// (`xennet_vif::Vif::set_coalesce`): under high load a vif event
    /// channel notifies its frontend at most once per window. 0: off.
    #[serde(default = "default_coalesce_usecs")]
    pub coalesce_usecs: u32,
    /// Port security: frames a guest sends with another source MAC than
    /// its vif's (the backend `mac` key the toolstack writes) are dropped
    /// and counted (`rx_spoofed_mac`), and so are sources not in its `ip`
    /// key, spoofed ARP and neighbour discovery, DHCP server messages and
    /// router advertisements (`xennet_vif::netback::Policy`). Default
    /// true; false for guests that bridge or route other MACs (nested
    /// bridges, appliances).
    #[serde(default = "default_true")]
    pub port_security: bool,
    /// Port security's DHCP guard off: guests may send DHCP server
    /// messages (UDP 67 to 68, DHCPv6 547 to 546). Default false; an
    /// Interface's `other_config:xennet-allow-dhcp-server` overrides it.
    #[serde(default)]
    pub allow_dhcp_server: bool,
    /// Port security's RA guard off: guests may send router
    /// advertisements and redirects. Default false; an Interface's
    /// `other_config:xennet-allow-ra` overrides it.
    #[serde(default)]
    pub allow_ra: bool,
    /// Control traffic first (`xennet_vif::Vif::set_rx_control_first`):
    /// when a guest's RX ring is full, its ARP, ICMP, ICMPv6 (Neighbor
    /// Discovery) and DHCP/DHCPv6 frames wait in a small priority backlog
    /// delivered before the bulk one and are dropped last. Default true.
    #[serde(default = "default_true")]
    pub rx_control_first: bool,
}

fn default_true() -> bool {
    true
}

fn default_event_rate() -> u32 {
    xennet_vif::netback::DEFAULT_EVENT_RATE
}

fn default_coalesce_usecs() -> u32 {
    u32::try_from(xennet_vif::netback::DEFAULT_COALESCE.as_micros()).unwrap_or(u32::MAX)
}

/// `[emulated_xen] hotplug`: who reports a vif's hotplug status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hotplug {
    /// xennetd writes `hotplug-status = connected` itself (no script runs).
    #[default]
    #[serde(rename = "self")]
    SelfHotplug,
    /// The toolstack runs a hotplug script that writes it; the backend
    /// waits for it (and refuses the vif on `hotplug-status = error`).
    Script,
}

impl Default for EmulatedXenConfig {
    fn default() -> Self {
        EmulatedXenConfig {
            enabled: false,
            socket: default_socket(),
            bridge: default_bridge(),
            backend_domid: 0,
            xenstored: default_xenstored(),
            hotplug: Hotplug::default(),
            representors: true,
            event_rate: default_event_rate(),
            coalesce_usecs: default_coalesce_usecs(),
            port_security: true,
            allow_dhcp_server: false,
            allow_ra: false,
            rx_control_first: true,
        }
    }
}

fn default_xenstored() -> String {
    "xenstored.sock".into()
}

fn default_socket() -> String {
    "xennet-xen.sock".into()
}

fn default_bridge() -> String {
    "br0".into()
}

impl Config {
    /// Parse and check a configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        let mut names = std::collections::HashSet::new();
        for b in &cfg.bridges {
            anyhow::ensure!(
                !b.name.is_empty() && b.name.len() <= 15 && !b.name.contains('/'),
                "bridge name {:?} must be 1-15 characters without '/'",
                b.name
            );
            anyhow::ensure!(names.insert(&b.name), "bridge {} defined twice", b.name);
            b.isolation()
                .map_err(|e| anyhow::anyhow!("bridge {}: {e}", b.name))?;
            for t in &b.controller {
                crate::ofconn::mgr::Target::parse(t)
                    .map_err(|e| anyhow::anyhow!("bridge {}: controller {e}", b.name))?;
            }
            let mut ports = std::collections::HashSet::new();
            for p in &b.ports {
                anyhow::ensure!(
                    ports.insert(&p.name),
                    "bridge {}: port {} defined twice",
                    b.name,
                    p.name
                );
                anyhow::ensure!(
                    !p.rx_ring || crate::dbsync::parse_vif(&p.name).is_none(),
                    "bridge {}: port {}: rx_ring applies to Linux devices, not vifs",
                    b.name,
                    p.name
                );
                let vlan = p
                    .vlan()
                    .map_err(|e| anyhow::anyhow!("bridge {}: {e}", b.name))?;
                if vlan.ignores_trunks() {
                    tracing::warn!(
                        "bridge {}: port {}: ignoring trunks in favor of implicit vlan",
                        b.name,
                        p.name
                    );
                }
            }
        }
        if cfg.xen.mode == XenMode::Emulated && cfg.emulated_xen.enabled {
            anyhow::ensure!(
                names.contains(&cfg.emulated_xen.bridge),
                "emulated_xen.bridge {} is not a configured bridge",
                cfg.emulated_xen.bridge
            );
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_one_standalone_bridge() {
        let c = Config::parse(EMBEDDED_DEFAULT).unwrap();
        assert_eq!(c.bridges.len(), 1);
        assert_eq!(c.bridges[0].name, "br0");
        assert_eq!(c.bridges[0].fail_mode, FailMode::Standalone);
        assert!(c.emulated_xen.enabled);
    }

    #[test]
    fn rejects_bad_files_with_a_reason() {
        let e =
            Config::parse("[[bridge]]\nname = \"br0\"\n[[bridge]]\nname = \"br0\"\n").unwrap_err();
        assert!(e.to_string().contains("defined twice"), "{e}");
        let e = Config::parse("[[bridge]]\nnme = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("nme"), "{e}");
        let e = Config::parse("[[bridge]]\nname = \"b\"\ncontroller = [\"ssl:1.2.3.4\"]\n")
            .unwrap_err();
        assert!(
            e.to_string().contains("unsupported connection method"),
            "{e}"
        );
        let e = Config::parse("[emulated_xen]\nenabled = true\nbridge = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("not a configured bridge"), "{e}");
    }

    #[test]
    fn rx_ring_is_for_linux_devices() {
        let c = Config::parse(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"eth1\"\nrx_ring = true\n\
             [[bridge.port]]\nname = \"eth2\"\n",
        )
        .unwrap();
        assert!(c.bridges[0].ports[0].rx_ring);
        assert!(!c.bridges[0].ports[1].rx_ring, "recvmmsg by default");
        let e = Config::parse(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"vif1.0\"\nrx_ring = true\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("rx_ring applies to Linux devices"),
            "{e}"
        );
    }

    #[test]
    fn xen_mode() {
        let c = Config::parse(EMBEDDED_DEFAULT).unwrap();
        assert_eq!(c.xen.mode, XenMode::Emulated);
        assert_eq!(c.xen.bridge, "br0");
        let c = Config::parse(
            "[[bridge]]\nname = \"xenbr\"\n[xen]\nmode = \"real\"\nbridge = \"xenbr\"\nhotplug = \"script\"\n",
        )
        .unwrap();
        assert_eq!(c.xen.mode, XenMode::Real);
        assert_eq!(c.xen.bridge, "xenbr");
        assert_eq!(c.xen.hotplug, Hotplug::Script);
        let e = Config::parse("[xen]\nmode = \"hvm\"\n").unwrap_err();
        assert!(e.to_string().contains("hvm"), "{e}");
    }

    #[test]
    fn hotplug_self_or_script() {
        let c = Config::parse(EMBEDDED_DEFAULT).unwrap();
        assert_eq!(c.emulated_xen.hotplug, Hotplug::SelfHotplug);
        for (v, want) in [("self", Hotplug::SelfHotplug), ("script", Hotplug::Script)] {
            let c = Config::parse(&format!(
                "[[bridge]]\nname = \"br0\"\n[emulated_xen]\nenabled = true\nhotplug = \"{v}\"\n"
            ))
            .unwrap();
            assert_eq!(c.emulated_xen.hotplug, want);
        }
        let e = Config::parse("[emulated_xen]\nhotplug = \"udev\"\n").unwrap_err();
        assert!(e.to_string().contains("udev"), "{e}");
    }

    #[test]
    fn port_vlan_settings() {
        let c = Config::parse(
            "[[bridge]]\nname = \"br0\"\n\
             [[bridge.port]]\nname = \"vif1.0\"\ntag = 10\n\
             [[bridge.port]]\nname = \"vif2.0\"\ntrunks = [10, 20]\nvlan_mode = \"native-untagged\"\ntag = 20\n",
        )
        .unwrap();
        let v = c.bridges[0].port_vlans();
        assert_eq!(v["vif1.0"], Some(PortVlan::access(10)));
        let p = v["vif2.0"].as_ref().unwrap();
        assert_eq!(
            p.to_string(),
            "vlan_mode=native-untagged tag=20 trunks=10,20"
        );
        for (bad, want) in [
            (
                "tag = 4096",
                "bridge br0: port vif1.0: tag 4096 is not a VLAN ID",
            ),
            ("trunks = [-1]", "trunks member -1 is not a VLAN ID"),
            (
                "vlan_mode = \"dot1q-tunnel\"",
                "vlan_mode \"dot1q-tunnel\" is not supported",
            ),
            ("tagg = 1", "tagg"),
        ] {
            let e = Config::parse(&format!(
                "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"vif1.0\"\n{bad}\n"
            ))
            .unwrap_err();
            assert!(format!("{e:#}").contains(want), "{e:#}");
        }
    }
}
