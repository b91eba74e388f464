//! The `ovs-appctl dpctl/*` conntrack commands (OVS lib/dpctl.c), as
//! functions of a [`Conntrack`] so that the daemon registers them with
//! one loop over [`COMMANDS`]:
//!
//! ```text
//! for &(name, usage, min, max) in conntrack::appctl::COMMANDS {
//!     let ct = ct.clone();
//!     c.add(name, usage, min, max, Box::new(move |a| conntrack::appctl::run(&ct, name, a)));
//! }
//! ```
//!
//! A leading datapath argument (`netdev@ovs-netdev`, anything with an
//! `@`) is accepted and ignored: there is one tracker. Options OVS has
//! and xennet does not (`-m`, `-s`, flushing by mark or label, which
//! OVS 3.3 added) are refused with an error, not ignored.

use nix::errno::Errno;

use super::{Conntrack, FlushMatch, TupleMatch, PROTO_ICMP, PROTO_ICMPV6};

/// (name, usage, min args, max args), as OVS registers them.
pub const COMMANDS: &[(&str, &str, usize, usize)] = &[
    ("dpctl/dump-conntrack", "[dp] [zone=N]", 0, 4),
    (
        "dpctl/flush-conntrack",
        "[dp] [zone=N] [ct-orig-tuple] [ct-reply-tuple]",
        0,
        4,
    ),
    ("dpctl/ct-stats-show", "[dp] [zone=N] [verbose]", 0, 3),
    ("dpctl/ct-set-maxconns", "[dp] maxconns", 1, 2),
    ("dpctl/ct-get-maxconns", "[dp]", 0, 1),
    ("dpctl/ct-get-nconns", "[dp]", 0, 1),
    ("dpctl/ct-enable-tcp-seq-chk", "[dp]", 0, 1),
    ("dpctl/ct-disable-tcp-seq-chk", "[dp]", 0, 1),
    ("dpctl/ct-get-tcp-seq-chk", "[dp]", 0, 1),
    (
        "dpctl/ct-set-limits",
        "[dp] [default=L] [zone=N,limit=L]...",
        1,
        64,
    ),
    (
        "dpctl/ct-del-limits",
        "[dp] [default] [zone=N1[,N2]...]",
        1,
        3,
    ),
    ("dpctl/ct-get-limits", "[dp] [zone=N1[,N2]...]", 0, 2),
    ("dpctl/ipf-set-enabled", "[dp] v4|v6", 1, 2),
    ("dpctl/ipf-set-disabled", "[dp] v4|v6", 1, 2),
    ("dpctl/ipf-set-min-frag", "[dp] v4|v6 minfragment", 2, 3),
    ("dpctl/ipf-set-max-nfrags", "[dp] maxfrags", 1, 2),
    ("dpctl/ipf-get-status", "[dp]", 0, 1),
];

/// OVS `IPF_V4_FRAG_SIZE_LBOUND`, `IPF_V6_FRAG_SIZE_LBOUND`: the least
/// minimum fragment size `dpctl/ipf-set-min-frag` takes, L3 bytes (also
/// the bound of a packet-in continuation's largest fragment,
/// `xennet_openflow::packet_in2::continuation::MIN_FRAG_SIZE`).
pub const MIN_FRAG_LBOUND: u32 = 400;
/// OVS `IPF_NFRAG_UBOUND`.
const NFRAG_UBOUND: u32 = 5000;

/// `v4` or `v6`: whether IPv6.
fn family(a: &str) -> Option<bool> {
    match a {
        "v4" => Some(false),
        "v6" => Some(true),
        _ => None,
    }
}

/// OVS `dpctl_ct_ipf_get_status`'s text.
fn ipf_status(ct: &Conntrack) -> String {
    let c = ct.ipf_config();
    let s = ct.ipf_stats();
    let mut o = String::new();
    o.push_str("        Fragmentation Module Status\n");
    o.push_str("        ---------------------------\n");
    o.push_str(&format!("        v4 enabled: {}\n", u8::from(c.v4_enabled)));
    o.push_str(&format!("        v6 enabled: {}\n", u8::from(c.v6_enabled)));
    o.push_str(&format!("        max num frags (v4/v6): {}\n", c.max_frags));
    o.push_str(&format!("        num frag: {}\n", s.held));
    for (name, min, f) in [
        ("v4", c.min_v4_frag_size, s.v4),
        ("v6", c.min_v6_frag_size, s.v6),
    ] {
        o.push_str(&format!("        min {name} frag size: {min}\n"));
        o.push_str(&format!("        {name} frags accepted: {}\n", f.accepted));
        o.push_str(&format!(
            "        {name} frags completed: {}\n",
            f.completed
        ));
        o.push_str(&format!("        {name} frags expired: {}\n", f.expired));
        o.push_str(&format!(
            "        {name} frags too small: {}\n",
            f.too_small
        ));
        o.push_str(&format!("        {name} frags overlapped: {}\n", f.overlap));
        // Lists purged because they could not be sent: never here.
        o.push_str(&format!("        {name} frags purged: 0\n"));
    }
    o
}

/// The arguments without a leading datapath name.
fn strip_dp(args: &[String]) -> &[String] {
    match args.first() {
        Some(a) if a.contains('@') => &args[1..],
        _ => args,
    }
}

fn parse_zone(v: &str) -> Result<u16, String> {
    v.parse().map_err(|_| format!("invalid zone: {v}"))
}

/// `zone=N` among `args`, refusing anything else.
fn zone_arg(args: &[String], extra: &[&str]) -> Result<(Option<u16>, Vec<String>), String> {
    let mut zone = None;
    let mut rest = Vec::new();
    for a in args {
        if let Some(v) = a.strip_prefix("zone=") {
            zone = Some(parse_zone(v)?);
        } else if extra.contains(&a.as_str()) {
            rest.push(a.clone());
        } else {
            return Err(format!("unsupported argument: {a}"));
        }
    }
    Ok((zone, rest))
}

/// One tuple as OVS parses it (`struct ofp_ct_tuple`): zero is unset.
#[derive(Default)]
struct RawTuple {
    src: Option<u128>,
    dst: Option<u128>,
    sport: u16,
    dport: u16,
    icmp_id: u16,
    icmp_type: u8,
    icmp_code: u8,
}

/// The family and protocol both tuples share (OVS `ofp_ct_match`'s
/// `l3_type`, `ip_proto`).
#[derive(Default)]
struct Shared {
    ipv6: Option<bool>,
    proto: u8,
}

/// Parse one `key=value,...` tuple as OVS 3.1/3.2 `ofp_ct_tuple_parse`
/// (lib/ofp-ct.c) does, with its messages.
fn parse_tuple(arg: &str, sh: &mut Shared) -> Result<RawTuple, String> {
    let mut t = RawTuple::default();
    let failed = |k: &str| format!("failed to parse field {k}");
    for f in arg
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
    {
        let (k, v) = f.split_once(['=', ':']).unwrap_or((f, ""));
        if v.is_empty() {
            return Err(format!("field {k} missing value"));
        }
        match k {
            "ct_nw_src" | "ct_nw_dst" | "ct_ipv6_src" | "ct_ipv6_dst" => {
                let v6 = k.starts_with("ct_ipv6");
                if sh.ipv6.is_some_and(|x| x != v6) {
                    return Err(format!("the L3 protocol does not match {v}"));
                }
                let slot = if k.ends_with("src") {
                    &mut t.src
                } else {
                    &mut t.dst
                };
                if slot.is_some() {
                    return Err(format!("{k} is set multiple times"));
                }
                let a = if v6 {
                    v.parse::<std::net::Ipv6Addr>().map(u128::from)
                } else {
                    v.parse::<std::net::Ipv4Addr>()
                        .map(|a| u128::from(u32::from(a)))
                };
                *slot = Some(a.map_err(|_| failed(k))?);
                sh.ipv6 = Some(v6);
            }
            "ct_nw_proto" => sh.proto = v.parse().map_err(|_| failed(k))?,
            "ct_tp_src" => t.sport = v.parse().map_err(|_| failed(k))?,
            "ct_tp_dst" => t.dport = v.parse().map_err(|_| failed(k))?,
            "icmp_type" | "icmp_code" | "icmp_id" => {
                if sh.proto != PROTO_ICMP && sh.proto != PROTO_ICMPV6 {
                    return Err("invalid L4 fields".into());
                }
                match k {
                    "icmp_type" => t.icmp_type = v.parse().map_err(|_| failed(k))?,
                    "icmp_code" => t.icmp_code = v.parse().map_err(|_| failed(k))?,
                    _ => t.icmp_id = v.parse().map_err(|_| failed(k))?,
                }
            }
            _ => return Err(format!("invalid conntrack tuple field: {k}")),
        }
    }
    if sh.proto == 0 && (t.sport != 0 || t.dport != 0) {
        return Err("port is set without protocol".into());
    }
    Ok(t)
}

/// `[zone=N] [ct-orig-tuple] [ct-reply-tuple]` (OVS 3.1/3.2
/// `dpctl_flush_conntrack`; an empty tuple argument is no tuple) as the
/// tracker's match. As OVS's parser fills a zeroed `ofp_ct_match`, an
/// ICMP match compares identifier, type and code (0 unless given) in both
/// directions, the same as what `ovs-ofctl ct-flush` sends.
fn flush_args(args: &[String]) -> Result<(Option<u16>, FlushMatch), String> {
    let mut rest = args;
    let mut zone = None;
    if let Some(v) = rest.first().and_then(|a| a.strip_prefix("zone=")) {
        zone = Some(v.parse().map_err(|_| "failed to parse zone".to_string())?);
        rest = &rest[1..];
    }
    let mut sh = Shared::default();
    let mut raw = [RawTuple::default(), RawTuple::default()];
    for slot in &mut raw {
        let Some((a, r)) = rest.split_first() else {
            break;
        };
        if !a.is_empty() {
            *slot = parse_tuple(a, &mut sh)?;
        }
        rest = r;
    }
    if !rest.is_empty() {
        return Err("invalid arguments".into());
    }
    let icmp = sh.proto == PROTO_ICMP || sh.proto == PROTO_ICMPV6;
    let nz = |p: u16| (p != 0).then_some(p);
    let [orig, reply] = raw.map(|t| TupleMatch {
        src: t.src,
        dst: t.dst,
        sport: nz(t.sport),
        dport: nz(t.dport),
        icmp_id: icmp.then_some(t.icmp_id),
        icmp_type: icmp.then_some(t.icmp_type),
        icmp_code: icmp.then_some(t.icmp_code),
    });
    Ok((
        zone,
        FlushMatch {
            ipv6: sh.ipv6,
            proto: (sh.proto != 0).then_some(sh.proto),
            orig,
            reply,
        },
    ))
}

fn lines(v: Vec<String>) -> String {
    let mut s = String::new();
    for l in v {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// `N1[,N2]...` of `zone=N1[,N2]...` (OVS `parse_ct_limit_zones`).
fn zones_list(v: &str) -> Result<Vec<u16>, String> {
    v.split(',')
        .map(|z| z.parse().map_err(|_| "invalid zone".to_string()))
        .collect()
}

/// `zone=N,limit=L` as OVS `ct_dpif_parse_zone_limit_tuple` parses it,
/// with its messages.
fn zone_limit_tuple(a: &str) -> Result<(u16, u32), String> {
    let (mut zone, mut limit) = (None, None);
    for f in a.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = f.split_once(['=', ':']).unwrap_or((f, ""));
        if v.is_empty() {
            return Err(format!("field {k} missing value"));
        }
        let failed = || format!("failed to parse field {k}");
        match k {
            "zone" => zone = Some(v.parse().map_err(|_| failed())?),
            "limit" => limit = Some(v.parse().map_err(|_| failed())?),
            _ => return Err(format!("invalid zone limit field: {k}")),
        }
    }
    zone.zip(limit)
        .ok_or_else(|| "failed to parse zone limit".to_string())
}

/// A command's failure: OVS's message and the errno `dpctl_error`
/// appends (`EINVAL` for a bad argument).
#[derive(Debug)]
struct Failure(String, Errno);

impl From<String> for Failure {
    fn from(m: String) -> Self {
        Failure(m, Errno::EINVAL)
    }
}

impl From<&str> for Failure {
    fn from(m: &str) -> Self {
        Failure(m.to_string(), Errno::EINVAL)
    }
}

/// Run command `name` (one of [`COMMANDS`]) with `args`; the reply text
/// or the error text as OVS `dpctl_error` writes it in ovs-vswitchd:
/// `ovs-vswitchd: MESSAGE (ERRNO TEXT)`, e.g. `ovs-vswitchd: invalid
/// arguments (Invalid argument)` (the unixctl reply adds the newline).
pub fn run(ct: &Conntrack, name: &str, args: &[String]) -> Result<String, String> {
    command(ct, name, args).map_err(|Failure(m, e)| format!("ovs-vswitchd: {m} ({})", e.desc()))
}

fn command(ct: &Conntrack, name: &str, args: &[String]) -> Result<String, Failure> {
    let args = strip_dp(args);
    match name {
        "dpctl/dump-conntrack" => {
            let (zone, _) = zone_arg(args, &[])?;
            Ok(lines(ct.dump(zone)))
        }
        "dpctl/flush-conntrack" => {
            let (zone, m) = flush_args(args)?;
            // OVS's userspace tracker: ENOENT for an exact tuple that
            // names no connection (`conntrack_flush_tuple`).
            ct.flush_match(zone, &m)
                .map_err(|_| Failure("failed to flush conntrack".into(), Errno::ENOENT))?;
            Ok(String::new())
        }
        "dpctl/ct-stats-show" => {
            let (zone, rest) = zone_arg(args, &["verbose"])?;
            Ok(lines(ct.stats_show(zone, !rest.is_empty())))
        }
        "dpctl/ct-set-maxconns" => {
            let [n] = args else {
                return Err("maxconns missing or malformed".into());
            };
            let n: u32 = n
                .parse()
                .map_err(|_| "maxconns missing or malformed".to_string())?;
            ct.set_maxconns(n);
            Ok("setting maxconns successful".into())
        }
        "dpctl/ct-get-maxconns" if args.is_empty() => Ok(format!("{}\n", ct.maxconns())),
        "dpctl/ct-get-nconns" if args.is_empty() => Ok(format!("{}\n", ct.nconns())),
        "dpctl/ct-enable-tcp-seq-chk" if args.is_empty() => {
            ct.set_tcp_seq_chk(true);
            Ok("enabling TCP sequence checking successful".into())
        }
        "dpctl/ct-disable-tcp-seq-chk" if args.is_empty() => {
            ct.set_tcp_seq_chk(false);
            Ok("disabling TCP sequence checking successful".into())
        }
        "dpctl/ct-get-tcp-seq-chk" if args.is_empty() => Ok(format!(
            "TCP sequence checking: {}\n",
            if ct.tcp_seq_chk() {
                "enabled"
            } else {
                "disabled"
            }
        )),
        "dpctl/ct-set-limits" => {
            // Parse everything before changing anything.
            let mut sets = Vec::new();
            for a in args {
                if let Some(v) = a.strip_prefix("default=") {
                    let l = v.parse().map_err(|_| "invalid default limit")?;
                    sets.push((None, l));
                } else {
                    let (z, l) = zone_limit_tuple(a)?;
                    sets.push((Some(z), l));
                }
            }
            for (z, l) in sets {
                ct.set_zone_limit(z, l);
            }
            Ok(String::new())
        }
        "dpctl/ct-del-limits" => {
            let mut default = false;
            let mut zones = Vec::new();
            for a in args {
                if a == "default" {
                    default = true;
                } else if let Some(v) = a.strip_prefix("zone=") {
                    zones.extend(zones_list(v)?);
                } else {
                    return Err(format!("invalid argument {a}").into());
                }
            }
            if default {
                ct.set_zone_limit(None, 0);
            }
            for z in zones {
                ct.del_zone_limit(z);
            }
            Ok(String::new())
        }
        "dpctl/ct-get-limits" => {
            let zones = match args {
                [] => Vec::new(),
                [a] => zones_list(
                    a.strip_prefix("zone=")
                        .ok_or_else(|| format!("invalid argument {a}"))?,
                )?,
                _ => return Err("too many arguments".into()),
            };
            Ok(ct.format_limits(&zones) + "\n")
        }
        "dpctl/ipf-set-enabled" | "dpctl/ipf-set-disabled" => {
            let on = name == "dpctl/ipf-set-enabled";
            let Some(v6) = args.last().and_then(|a| family(a)) else {
                return Err("parameter missing: 'v4' for IPv4 or 'v6' for IPv6".into());
            };
            let mut c = ct.ipf_config();
            if v6 {
                c.v6_enabled = on;
            } else {
                c.v4_enabled = on;
            }
            ct.set_ipf_config(c);
            Ok(format!(
                "{} fragmentation reassembly successful",
                if on { "enabling" } else { "disabling" }
            ))
        }
        "dpctl/ipf-set-min-frag" => {
            let [f, n] = args else {
                return Err("parameter missing: v4 for IPv4 or v6 for IPv6".into());
            };
            let Some(v6) = family(f) else {
                return Err("parameter missing: v4 for IPv4 or v6 for IPv6".into());
            };
            let n: u32 = n
                .parse()
                .map_err(|_| "parameter missing for minimum fragment size".to_string())?;
            if n < MIN_FRAG_LBOUND {
                return Err("requested minimum fragment size too small; see documentation".into());
            }
            let mut c = ct.ipf_config();
            if v6 {
                c.min_v6_frag_size = n as usize;
            } else {
                c.min_v4_frag_size = n as usize;
            }
            ct.set_ipf_config(c);
            Ok("setting minimum fragment size successful".into())
        }
        "dpctl/ipf-set-max-nfrags" => {
            let [n] = args else {
                return Err("parameter missing for maximum fragments".into());
            };
            let n: u32 = n
                .parse()
                .map_err(|_| "parameter missing for maximum fragments".to_string())?;
            if n > NFRAG_UBOUND {
                return Err("setting maximum fragments failed".into());
            }
            let mut c = ct.ipf_config();
            c.max_frags = n as usize;
            ct.set_ipf_config(c);
            Ok("setting maximum fragments successful".into())
        }
        "dpctl/ipf-get-status" if args.is_empty() => Ok(ipf_status(ct)),
        _ => Err(format!("{name}: unsupported arguments").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn limits_maxconns_and_refusals() {
        let ct = Conntrack::new();
        let run = |n: &str, a: &[&str]| run(&ct, n, &s(a));
        assert_eq!(run("dpctl/ct-get-maxconns", &[]).unwrap(), "3000000\n");
        assert_eq!(
            run("dpctl/ct-set-maxconns", &["netdev@ovs-netdev", "10"]).unwrap(),
            "setting maxconns successful"
        );
        assert_eq!(run("dpctl/ct-get-maxconns", &[]).unwrap(), "10\n");
        assert_eq!(
            run("dpctl/ct-set-maxconns", &["ten"]).unwrap_err(),
            "ovs-vswitchd: maxconns missing or malformed (Invalid argument)"
        );
        run("dpctl/ct-set-limits", &["default=5", "zone=3,limit=7"]).unwrap();
        assert_eq!(
            run("dpctl/ct-get-limits", &[]).unwrap(),
            "default limit=5\nzone=3,limit=7,count=0\n"
        );
        assert_eq!(
            run("dpctl/ct-get-limits", &["zone=3,4"]).unwrap(),
            "default limit=5\nzone=3,limit=7,count=0\nzone=4,limit=5,count=0\n"
        );
        // A bad argument changes nothing.
        for (a, m) in [
            ("zone", "field zone missing value"),
            ("zone=x,limit=1", "failed to parse field zone"),
            ("zone=1,limit=-1", "failed to parse field limit"),
            ("zone=1,max=1", "invalid zone limit field: max"),
            ("zone=1", "failed to parse zone limit"),
        ] {
            assert_eq!(
                run("dpctl/ct-set-limits", &["zone=9,limit=1", a]).unwrap_err(),
                format!("ovs-vswitchd: {m} (Invalid argument)")
            );
        }
        assert_eq!(
            run("dpctl/ct-set-limits", &["default=x"]).unwrap_err(),
            "ovs-vswitchd: invalid default limit (Invalid argument)"
        );
        assert_eq!(
            run("dpctl/ct-get-limits", &["zone=1,x"]).unwrap_err(),
            "ovs-vswitchd: invalid zone (Invalid argument)"
        );
        assert_eq!(
            run("dpctl/ct-del-limits", &["zones=1"]).unwrap_err(),
            "ovs-vswitchd: invalid argument zones=1 (Invalid argument)"
        );
        assert_eq!(ct.zone_limit(9).limit, 5);
        run("dpctl/ct-del-limits", &["default", "zone=3"]).unwrap();
        assert_eq!(
            run("dpctl/ct-get-limits", &[]).unwrap(),
            "default limit=0\n"
        );
        assert!(run("dpctl/dump-conntrack", &["-m"]).is_err());
        assert!(run("dpctl/flush-conntrack", &["mark=1"]).is_err());
        // OVS 3.2 tests/system-traffic.at "conntrack - ct flush" messages.
        let err = |a: &[&str]| run("dpctl/flush-conntrack", a).unwrap_err();
        let inval = |m: &str| format!("ovs-vswitchd: {m} (Invalid argument)");
        let t = "ct_nw_src=10.1.1.1";
        assert_eq!(err(&["zone=invalid", t]), inval("failed to parse zone"));
        assert_eq!(
            err(&["zone=1", "ct_nw_src=10.1.1.1,invalid=invalid"]),
            inval("invalid conntrack tuple field: invalid")
        );
        assert_eq!(
            err(&["ct_nw_src=invalid"]),
            inval("failed to parse field ct_nw_src")
        );
        assert_eq!(
            err(&["zone=1", t, t, "invalid"]),
            inval("invalid arguments")
        );
        assert_eq!(err(&["ct_tp_src=1"]), inval("port is set without protocol"));
        assert_eq!(err(&["icmp_id=1"]), inval("invalid L4 fields"));
        assert_eq!(err(&["ct_nw_src"]), inval("field ct_nw_src missing value"));
        assert_eq!(
            err(&[t, "ct_ipv6_src=::1"]),
            inval("the L3 protocol does not match ::1")
        );
        assert_eq!(
            err(&["ct_nw_src=1.1.1.1,ct_nw_src=2.2.2.2"]),
            inval("ct_nw_src is set multiple times")
        );
        // An exact five-tuple that no connection has.
        assert_eq!(
            err(&["ct_nw_src=1.1.1.1,ct_nw_dst=2.2.2.2,ct_nw_proto=17,ct_tp_src=1,ct_tp_dst=2"]),
            "ovs-vswitchd: failed to flush conntrack (No such file or directory)"
        );
        assert_eq!(
            run("dpctl/flush-conntrack", &["zone=1", "", t]).unwrap(),
            ""
        );
        let (z, m) = flush_args(&s(&["zone=3", "ct_nw_proto=1,icmp_id=9", ""])).unwrap();
        assert_eq!(z, Some(3));
        assert_eq!(m.proto, Some(1));
        assert_eq!(m.orig.icmp_id, Some(9));
        assert_eq!(m.reply.icmp_type, Some(0));
        assert_eq!(run("dpctl/dump-conntrack", &["zone=3"]).unwrap(), "");
        assert_eq!(run("dpctl/ct-get-nconns", &[]).unwrap(), "0\n");
        assert_eq!(
            run("dpctl/ct-stats-show", &["zone=1", "verbose"]).unwrap(),
            "Connections Stats:\n    Total: 0\n"
        );
    }
}
