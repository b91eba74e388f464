//! xennetd configuration: the embedded default, or a TOML file given with
//! `--config`. With `--db` the bridges come from an `Open_vSwitch` database
//! instead (see `dbsync`) and only `[emulated_xen]` is used from here.
//!
//! ```toml
//! [[bridge]]
//! name = "br0"              # bridge name, as `ovs-vsctl add-br`
//! fail_mode = "standalone"  # OVS Bridge:fail_mode; standalone = NORMAL switching
//! controller = []           # OVS Controller:target list, e.g. "tcp:127.0.0.1:6653",
//!                           # "ptcp:6653:127.0.0.1", "unix:PATH", "punix:PATH"
//!
//! [emulated_xen]
//! enabled = true            # serve emulated Xen guests (xennet-guest)
//! socket = "xennet-xen.sock"  # relative to --rundir
//! bridge = "br0"            # bridge that new vifs join
//! backend_domid = 0         # our domain id, as a Xen driver domain's
//! ```

use serde::Deserialize;

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
}

impl Default for EmulatedXenConfig {
    fn default() -> Self {
        EmulatedXenConfig {
            enabled: false,
            socket: default_socket(),
            bridge: default_bridge(),
            backend_domid: 0,
        }
    }
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
            for t in &b.controller {
                crate::ofconn::mgr::Target::parse(t)
                    .map_err(|e| anyhow::anyhow!("bridge {}: controller {e}", b.name))?;
            }
        }
        if cfg.emulated_xen.enabled {
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
        assert!(e.to_string().contains("unsupported connection method"), "{e}");
        let e = Config::parse("[emulated_xen]\nenabled = true\nbridge = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("not a configured bridge"), "{e}");
    }
}
