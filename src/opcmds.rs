//! ovs-vswitchd's operator commands that xennetd answers too, in the same
//! output shape where tools parse it: `vlog/list`, `vlog/set`,
//! `vlog/reopen` (see [`crate::vlog`]), `memory/show`, `dpif/show`,
//! `dpctl/show`, `fdb/flush` and `upcall/show`.
//!
//! xennet runs one userspace datapath per bridge; where OVS shows its one
//! `netdev@ovs-netdev`, xennet shows `netdev@xennet` with each bridge's
//! ports under it (`dpif/show`) or one `netdev@xennet-<bridge>` per bridge
//! (`dpctl/show`). Port numbers in the datapath are the ofports.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::bridge::{Bridge, Switch};
use crate::unixctl::Commands;

/// The type a port shows in `dpif/show`, as OVS names Interface types.
fn port_type(b: &Bridge, ofport: u32) -> &'static str {
    match b.port_entries().get(&ofport) {
        Some(e) if e.vif.is_some() => "xennet-vif",
        _ if ofport == xennet_datapath::buffer::OFPP_LOCAL => "internal",
        _ => "system",
    }
}

/// The bridges `args` names (one), or all of them.
fn bridges(s: &Switch, args: &[String]) -> Result<Vec<Arc<Bridge>>, String> {
    match args.first() {
        Some(name) => s
            .bridge(name)
            .map(|b| vec![b])
            .ok_or_else(|| format!("no such bridge: {name}")),
        None => Ok(s.bridges()),
    }
}

/// The resident set size of this process, KiB.
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Add the commands to `c`.
pub fn add(c: &mut Commands, switch: Arc<Switch>) {
    c.add("vlog/list", "", 0, 0, Box::new(|_| crate::vlog::list()));
    c.add(
        "vlog/set",
        "{SPEC | PATTERN:DESTINATION:PATTERN}",
        1,
        8,
        Box::new(crate::vlog::set),
    );
    c.add("vlog/reopen", "", 0, 0, Box::new(|_| crate::vlog::reopen()));
    let s = switch.clone();
    c.add(
        "memory/show",
        "",
        0,
        0,
        Box::new(move |_| {
            let (mut ports, mut megaflows, mut macs) = (0, 0, 0);
            let all = s.bridges();
            for b in &all {
                ports += b.port_infos().len();
                megaflows += b.dp.stats().n_flows;
                macs += b.fdb.len();
            }
            let mut out = format!(
                "bridges:{} mac-entries:{macs} megaflows:{megaflows} ports:{ports}",
                all.len()
            );
            if let Some(kib) = rss_kib() {
                let _ = write!(out, " rss-kib:{kib}");
            }
            out.push('\n');
            Ok(out)
        }),
    );
    let s = switch.clone();
    c.add(
        "dpif/show",
        "",
        0,
        0,
        Box::new(move |_| {
            let all = s.bridges();
            let (hit, missed) = all.iter().fold((0, 0), |(h, m), b| {
                let st = b.dp.stats();
                (h + st.emc_hits + st.megaflow_hits, m + st.upcalls + st.lost)
            });
            let mut out = format!("netdev@xennet: hit:{hit} missed:{missed}\n");
            for b in &all {
                let _ = writeln!(out, "  {}:", b.name);
                for p in b.port_infos() {
                    let _ = writeln!(
                        out,
                        "    {} {}/{}: ({})",
                        p.name,
                        p.ofport,
                        p.ofport,
                        port_type(b, p.ofport)
                    );
                }
            }
            Ok(out)
        }),
    );
    let s = switch.clone();
    c.add(
        "dpctl/show",
        "[BRIDGE]",
        0,
        1,
        Box::new(move |args| {
            let mut out = String::new();
            // OVS `dpctl_show` for a datapath that does not open.
            let dps = bridges(&s, args).map_err(|_| {
                format!(
                    "ovs-vswitchd: opening datapath {} failed (No such device)",
                    args.first().map_or("", String::as_str)
                )
            })?;
            for b in dps {
                let st = b.dp.stats();
                let _ = writeln!(out, "netdev@xennet-{}:", b.name);
                let _ = writeln!(
                    out,
                    "  lookups: hit:{} missed:{} lost:{}",
                    st.emc_hits + st.megaflow_hits,
                    st.upcalls,
                    st.lost
                );
                let _ = writeln!(out, "  flows: {}", st.n_flows);
                for p in b.port_infos() {
                    let _ = writeln!(
                        out,
                        "  port {}: {} ({})",
                        p.ofport,
                        p.name,
                        port_type(&b, p.ofport)
                    );
                }
            }
            Ok(out)
        }),
    );
    let s = switch.clone();
    c.add(
        "fdb/flush",
        "[BRIDGE]",
        0,
        1,
        Box::new(move |args| {
            for b in bridges(&s, args)? {
                b.fdb.flush();
            }
            Ok("table successfully flushed\n".into())
        }),
    );
    let s = switch;
    c.add(
        "upcall/show",
        "",
        0,
        0,
        Box::new(move |_| {
            let mut out = String::new();
            for b in s.bridges() {
                let st = b.dp.stats();
                let _ = writeln!(out, "netdev@xennet-{}:", b.name);
                let _ = writeln!(
                    out,
                    "  flows         : (current {}) (limit {})",
                    st.n_flows, st.flow_limit
                );
                let _ = writeln!(
                    out,
                    "  upcalls       : {} (misses not cached at the limit: {})",
                    st.upcalls, st.flow_limit_hits
                );
            }
            Ok(out)
        }),
    );
}
