//! The isolation alert (issue 18 item 2): after a change to a bridge's
//! flow tables, groups, meters, port VLANs, port config or port security,
//! check that every vif still reaches each essential service, and raise
//! an alert naming the flow that cuts one off (see
//! `xennet_ofproto::isolation` for the services, the probes and the
//! verdict).
//!
//! # When
//!
//! A thread per bridge (`iso-<bridge>`) looks every [`POLL`] at a
//! fingerprint of what the verdicts depend on: the pipeline's generation
//! ([`Ofproto::generation`](xennet_ofproto::Ofproto::generation): flow,
//! group and meter mods, port config and liveness, fail-open, NORMAL's
//! port VLANs), the vif ports with their port-security addresses, and the
//! service configuration. It checks once the fingerprint has stayed the
//! same for one poll, or [`MAX_DELAY`] after the first unchecked change
//! during a longer burst. A flow-mod itself costs nothing more than
//! before (the generation counter it already bumps), so bursts of
//! flow-mods keep their speed; the alert follows within about
//! [`POLL`] of the burst's end.
//!
//! # Outputs
//!
//! - A warning per raised alert, `br0: isolation: port vif1.0 can no
//!   longer reach dhcp (DHCPDISCOVER broadcast): dropped by cookie=0x0
//!   table=0 priority=100 match=... actions=drop`, and one when it clears,
//!   `br0: isolation cleared: port vif1.0 reaches dhcp again`; at most
//!   [`MAX_LOG_LINES`] per check (the rest are counted in one line).
//! - The Bridge row's `status` in the database (`dbsync`):
//!   `isolation_alerts` = the number of alerts, and per alert
//!   `isolation:<port>:<service>` = what was dropped and by which flow;
//!   absent when there is none.
//! - [`Isolation::metrics`] (alerts now, raised/cleared/checks totals,
//!   guard refusals) and [`Isolation::alerts`], for the metrics endpoint.
//! - `ovs-appctl xennet/isolation-show [BRIDGE]`.
//!
//! # Guard mode
//!
//! Off by default (`other_config:xennet-isolation-guard=true`, TOML
//! `isolation_guard = true`): every check hands the probes that reach to
//! the pipeline ([`Ofproto::set_isolation_guard`](xennet_ofproto::Ofproto::set_isolation_guard)),
//! and a flow-mod or committed bundle that would stop one of them is
//! rolled back and refused with `OFPET_FLOW_MOD_FAILED`/`OFPFMFC_EPERM`.
//! Plain group and meter mods and port VLAN changes are not guarded (only
//! alerted on).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use xennet_datapath::OfPort;
use xennet_ofproto::isolation::{probes, DropCause, Essential, ProbeSource, Service, Verdict};
use xennet_ofproto::GuardProbe;

use crate::bridge::Bridge;

/// How often the checker looks for changes.
pub const POLL: Duration = Duration::from_millis(100);
/// Longest a check waits for a burst of changes to settle.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// Most alert log lines per check.
pub const MAX_LOG_LINES: usize = 32;

/// A bridge's isolation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationConfig {
    /// The essential services (empty: no check).
    pub services: Vec<Essential>,
    /// Refuse flow-mods that cut a vif off.
    pub guard: bool,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        IsolationConfig {
            services: xennet_ofproto::isolation::DEFAULT_SERVICES
                .iter()
                .map(|s| (*s).into())
                .collect(),
            guard: false,
        }
    }
}

impl IsolationConfig {
    /// From the settings' text: `services` (OVSDB
    /// `other_config:xennet-essential-services`, TOML
    /// `essential_services`), `gateway` (`xennet-gateway`, `gateway`) and
    /// `guard`.
    ///
    /// # Errors
    /// A service list or gateway that does not parse.
    pub fn from_settings(
        services: Option<&str>,
        gateway: Option<&str>,
        guard: bool,
    ) -> Result<IsolationConfig, String> {
        let gw = gateway
            .map(|g| {
                g.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("gateway {g:?} is not an IP address"))
            })
            .transpose()?;
        let services =
            xennet_ofproto::isolation::bridge_services(services, gw).map_err(|e| e.to_string())?;
        Ok(IsolationConfig { services, guard })
    }

    fn text(&self) -> String {
        if self.services.is_empty() {
            return "none".into();
        }
        self.services
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One vif cut off from one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The vif's port name.
    pub port: String,
    /// Its ofport.
    pub ofport: OfPort,
    /// The service (and where it lives, if configured).
    pub service: Essential,
    /// The probe that was dropped.
    pub probe: &'static str,
    /// The flow (or table miss) that dropped it.
    pub cause: DropCause,
    /// Raised at (wall clock).
    pub since: std::time::SystemTime,
}

impl Alert {
    /// `DHCPDISCOVER broadcast dropped by cookie=... table=...`.
    pub fn description(&self) -> String {
        format!("{} {}", self.probe, self.cause)
    }
}

/// Counters of a bridge's isolation checker, for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IsolationMetrics {
    /// Alerts raised now (gauge).
    pub alerts: u64,
    /// Alerts raised since start (counter).
    pub raised_total: u64,
    /// Alerts cleared since start (counter).
    pub cleared_total: u64,
    /// Checks run since start (counter).
    pub checks_total: u64,
    /// Flow-mods and bundles refused by the guard since start (counter).
    pub guard_refusals_total: u64,
}

/// A bridge's isolation state (see the module docs).
#[derive(Debug, Default)]
pub struct Isolation {
    config: Mutex<IsolationConfig>,
    config_version: AtomicU64,
    alerts: Mutex<BTreeMap<(String, Essential), Alert>>,
    raised: AtomicU64,
    cleared: AtomicU64,
    checks: AtomicU64,
    /// The vif ports the last check probed from.
    checked_ports: Mutex<Vec<String>>,
}

/// Woken when any bridge's alerts change (the database writer waits on
/// it to update Bridge `status`).
pub fn changed() -> &'static tokio::sync::Notify {
    static N: OnceLock<tokio::sync::Notify> = OnceLock::new();
    N.get_or_init(tokio::sync::Notify::new)
}

/// What the verdicts depend on besides the pipeline generation: each vif
/// port's number, name and probe source.
type PortsPrint = Vec<(OfPort, String, Option<[u8; 6]>, Option<std::net::Ipv4Addr>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    generation: u64,
    config: u64,
    /// The vif ports (probed from).
    ports: PortsPrint,
    /// Every port's name by number (where services live).
    names: BTreeMap<String, OfPort>,
}

impl Isolation {
    /// Apply `cfg`; the next poll re-checks if it changed.
    pub fn configure(&self, bridge: &str, cfg: IsolationConfig) {
        let mut cur = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if *cur != cfg {
            tracing::info!(
                "{bridge}: isolation check: essential services {}, guard {}",
                cfg.text(),
                if cfg.guard { "on" } else { "off" }
            );
            *cur = cfg;
            self.config_version.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The settings in force.
    pub fn config(&self) -> IsolationConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The alerts raised now, by port then service.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Counters (see [`IsolationMetrics`]); `guard_refusals` from the
    /// bridge's pipeline.
    pub fn metrics(&self, guard_refusals: u64) -> IsolationMetrics {
        IsolationMetrics {
            alerts: self.alerts.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
            raised_total: self.raised.load(Ordering::Relaxed),
            cleared_total: self.cleared.load(Ordering::Relaxed),
            checks_total: self.checks.load(Ordering::Relaxed),
            guard_refusals_total: guard_refusals,
        }
    }

    fn fingerprint(&self, b: &Bridge) -> Fingerprint {
        let entries = b.port_entries();
        let names = entries.iter().map(|(p, e)| (e.name.clone(), *p)).collect();
        let ports = entries
            .into_iter()
            .filter(|(_, e)| e.vif.is_some())
            .map(|(p, e)| {
                let (mac, ip) = match &e.security {
                    Some(s) => (s.mac(), s.ipv4_addrs().first().copied()),
                    None => (None, None),
                };
                (p, e.name, mac, ip)
            })
            .collect();
        Fingerprint {
            generation: b.of.generation(),
            config: self.config_version.load(Ordering::Relaxed),
            ports,
            names,
        }
    }

    /// Run every probe of bridge `b` from the vifs of `fp` now and update
    /// the alerts, logging each change; returns whether the alerts
    /// changed.
    fn check(&self, b: &Bridge, fp: &Fingerprint) -> bool {
        let ports = &fp.ports;
        self.checks.fetch_add(1, Ordering::Relaxed);
        let cfg = self.config();
        let kinds: Vec<Service> = cfg.services.iter().map(|e| e.service).collect();
        // Every probe, with its port and where its service lives: (vif,
        // ofport, service, probe, location); a service whose port is not
        // on the bridge is not probed (its alert says so).
        let mut all = Vec::new();
        let mut now: BTreeMap<(String, Essential), Alert> = BTreeMap::new();
        for (ofport, name, mac, ipv4) in ports {
            let src = ProbeSource {
                ofport: *ofport,
                mac: *mac,
                ipv4: *ipv4,
            };
            for e in &cfg.services {
                if e.at.as_deref() == Some(name.as_str()) {
                    // The vif the service lives behind.
                    continue;
                }
                let at = match &e.at {
                    None => None,
                    Some(n) => match fp.names.get(n) {
                        Some(p) => Some((n.clone(), *p)),
                        None => {
                            now.insert(
                                (name.clone(), e.clone()),
                                Alert {
                                    port: name.clone(),
                                    ofport: *ofport,
                                    service: e.clone(),
                                    probe: "every probe",
                                    cause: DropCause::NoSuchPort(n.clone()),
                                    since: std::time::SystemTime::now(),
                                },
                            );
                            continue;
                        }
                    },
                };
                for p in probes(e.service, &src, &kinds) {
                    all.push((name.clone(), *ofport, e, p, at.clone()));
                }
            }
        }
        let keys: Vec<_> = all
            .iter()
            .map(|(_, _, _, p, at)| (p.key, at.clone()))
            .collect();
        let verdicts = b.of.probe_many(&keys);
        let mut keep = Vec::new();
        for ((port, ofport, e, p, at), v) in all.into_iter().zip(verdicts) {
            match v {
                Verdict::Reaches => keep.push(GuardProbe {
                    port,
                    service: e.clone(),
                    what: p.what,
                    key: p.key,
                    at,
                }),
                Verdict::Dropped(cause) => {
                    now.entry((port.clone(), e.clone())).or_insert(Alert {
                        port,
                        ofport,
                        service: e.clone(),
                        probe: p.what,
                        cause,
                        since: std::time::SystemTime::now(),
                    });
                }
            }
        }
        b.of.set_isolation_guard(cfg.guard.then_some(keep));
        let mut lines = 0usize;
        let mut more = 0usize;
        let mut log = |line: String, warn: bool| {
            if lines < MAX_LOG_LINES {
                lines += 1;
                if warn {
                    tracing::warn!("{line}");
                } else {
                    tracing::info!("{line}");
                }
            } else {
                more += 1;
            }
        };
        let mut cur = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (k, a) in &now {
            match cur.get(k) {
                Some(old) if old.cause == a.cause && old.probe == a.probe => {}
                Some(_) => changed = true,
                None => {
                    changed = true;
                    self.raised.fetch_add(1, Ordering::Relaxed);
                    log(
                        format!(
                            "{}: isolation: port {} can no longer reach {} ({}): {}",
                            b.name, a.port, a.service, a.probe, a.cause
                        ),
                        true,
                    );
                }
            }
        }
        for (k, a) in cur.iter() {
            if !now.contains_key(k) {
                changed = true;
                self.cleared.fetch_add(1, Ordering::Relaxed);
                let gone = !ports.iter().any(|(_, n, _, _)| *n == a.port);
                log(
                    if gone {
                        format!(
                            "{}: isolation cleared: port {} left the bridge ({} alert)",
                            b.name, a.port, a.service
                        )
                    } else {
                        format!(
                            "{}: isolation cleared: port {} reaches {} again",
                            b.name, a.port, a.service
                        )
                    },
                    true,
                );
            }
        }
        // Keep when each alert was first raised.
        for (k, a) in now.iter_mut() {
            if let Some(old) = cur.get(k) {
                a.since = old.since;
            }
        }
        *cur = now;
        drop(cur);
        // Last: once a vif is listed, the guard covers it and the alerts
        // include its probes.
        *self.checked_ports.lock().unwrap_or_else(|e| e.into_inner()) =
            ports.iter().map(|p| p.1.clone()).collect();
        if more > 0 {
            tracing::warn!(
                "{}: isolation: {more} more alert changes (ovs-appctl xennet/isolation-show {})",
                b.name,
                b.name
            );
        }
        if changed {
            self::changed().notify_one();
        }
        changed
    }

    /// `xennet/isolation-show` for bridge `b`.
    pub fn show(&self, b: &Bridge) -> String {
        let cfg = self.config();
        let alerts = self.alerts();
        let mut out = format!(
            "bridge {}: {} (essential services: {}; guard {})\n",
            b.name,
            match alerts.len() {
                0 => "no isolation alerts".to_owned(),
                1 => "1 isolation alert".to_owned(),
                n => format!("{n} isolation alerts"),
            },
            cfg.text(),
            if cfg.guard { "on" } else { "off" }
        );
        let m = self.metrics(b.of.guard_refusals());
        let _ = writeln!(
            out,
            "  raised {}, cleared {}, checks {}, flow-mods and bundles refused by the guard {}",
            m.raised_total, m.cleared_total, m.checks_total, m.guard_refusals_total
        );
        let checked = self
            .checked_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join(" ");
        let _ = writeln!(out, "  vifs checked: {checked}");
        for a in alerts {
            let age = a.since.elapsed().map(|d| d.as_secs()).unwrap_or(0);
            let _ = writeln!(
                out,
                "  {} (ofport {}): {}: {} (for {age} s)",
                a.port,
                a.ofport,
                a.service,
                a.description()
            );
        }
        out
    }

    /// The Bridge `status` keys for the alerts (see the module docs).
    pub fn status_keys(&self) -> BTreeMap<String, String> {
        let alerts = self.alerts();
        let mut m = BTreeMap::new();
        if alerts.is_empty() {
            return m;
        }
        m.insert(STATUS_COUNT_KEY.to_owned(), alerts.len().to_string());
        for a in alerts {
            m.insert(
                format!("{STATUS_KEY_PREFIX}{}:{}", a.port, a.service),
                a.description(),
            );
        }
        m
    }
}

/// Bridge `status` key: the number of isolation alerts.
pub const STATUS_COUNT_KEY: &str = "isolation_alerts";
/// Bridge `status` key prefix of one alert (`isolation:<port>:<service>`).
pub const STATUS_KEY_PREFIX: &str = "isolation:";

/// The checker thread of a bridge (see the module docs); ends with the
/// bridge.
pub fn run(bridge: Weak<Bridge>) {
    let mut checked: Option<Fingerprint> = None;
    let mut seen: Option<Fingerprint> = None;
    let mut pending_since: Option<Instant> = None;
    loop {
        std::thread::sleep(POLL);
        let Some(b) = bridge.upgrade() else { return };
        let iso = &b.isolation;
        let fp = iso.fingerprint(&b);
        if checked.as_ref() == Some(&fp) {
            pending_since = None;
            seen = Some(fp);
            continue;
        }
        let now = Instant::now();
        let since = *pending_since.get_or_insert(now);
        let settled = seen.as_ref() == Some(&fp);
        if !settled && now.duration_since(since) < MAX_DELAY {
            seen = Some(fp);
            continue;
        }
        iso.check(&b, &fp);
        pending_since = None;
        seen = Some(fp.clone());
        checked = Some(fp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let d = IsolationConfig::from_settings(None, None, false).unwrap();
        assert_eq!(d, IsolationConfig::default());
        assert_eq!(d.text(), "arp,nd,dhcp");
        let g = IsolationConfig::from_settings(None, Some("10.0.0.1"), true).unwrap();
        assert_eq!(g.text(), "arp,nd,dhcp,gateway=10.0.0.1");
        assert!(g.guard);
        let n = IsolationConfig::from_settings(Some("none"), Some("10.0.0.1"), false).unwrap();
        assert_eq!(n.text(), "none");
        assert!(
            IsolationConfig::from_settings(Some("arp,bogus"), None, false)
                .unwrap_err()
                .contains("bogus")
        );
        assert!(IsolationConfig::from_settings(None, Some("gw"), false)
            .unwrap_err()
            .contains("gw"));
    }
}
