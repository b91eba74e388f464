//! A tunnel interface's `options`, checked as OVS's `set_tunnel_config`
//! (`lib/netdev-vport.c`) checks them; the error texts are OVS's where OVS
//! has one. Options OVS knows but xennet does not do are refused, never
//! ignored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::TunnelKind;

/// Where an outer address or the key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FromFlow<T> {
    /// A fixed value from the options.
    Fixed(T),
    /// `flow`: from the packet's tunnel metadata (`tun_dst`, `tun_id`),
    /// set by the OpenFlow actions; on receive, any value matches.
    Flow,
}

/// TOS or TTL: a fixed value or `inherit` (from the inner IP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Inherit {
    /// Fixed value.
    Fixed(u8),
    /// Copied from the inner IPv4/IPv6 header (0 / the default TTL when
    /// the inner frame is not IP).
    Inherit,
}

/// Default outer TTL (OVS `DEFAULT_TTL`).
pub const DEFAULT_TTL: u8 = 64;

/// A tunnel port's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TunnelConfig {
    /// VXLAN or Geneve.
    pub kind: TunnelKind,
    /// `remote_ip`.
    pub remote: FromFlow<IpAddr>,
    /// `local_ip`: the outer source, and on receive the only destination
    /// accepted (else the route's source and any local address).
    pub local: Option<IpAddr>,
    /// `in_key` (or `key`): the VNI accepted on receive.
    pub in_key: FromFlow<u64>,
    /// `out_key` (or `key`): the VNI sent.
    pub out_key: FromFlow<u64>,
    /// `dst_port` (default: the IANA port of `kind`).
    pub dst_port: u16,
    /// `csum`: UDP checksum on sent packets (default false over IPv4,
    /// true over IPv6, where Linux refuses zero checksums by default).
    pub csum: Option<bool>,
    /// `tos` (default 0).
    pub tos: Inherit,
    /// `ttl` (default 64).
    pub ttl: Inherit,
    /// `df_default` (default true): set DF on IPv4 outer headers.
    pub df: bool,
}

impl TunnelConfig {
    /// What selects this port for a received packet (type, UDP port,
    /// remote, key, local address): two ports alike are ambiguous.
    pub fn receive_key(&self) -> String {
        format!(
            "{:?}/{}/{:?}/{:?}/{:?}",
            self.kind, self.dst_port, self.remote, self.in_key, self.local
        )
    }

    /// Whether sent packets get a UDP checksum over an underlay of that
    /// family.
    pub fn csum_for(&self, ipv6: bool) -> bool {
        self.csum.unwrap_or(ipv6)
    }
}

fn parse_key(name: &str, k: &str, v: &str) -> Result<FromFlow<u64>, String> {
    if v == "flow" {
        return Ok(FromFlow::Flow);
    }
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse::<u64>(),
    };
    match n {
        // VXLAN and Geneve carry 24 bits.
        Ok(n) if n <= 0xff_ffff => Ok(FromFlow::Fixed(n)),
        _ => Err(format!("{name}: bad {k} '{v}'")),
    }
}

fn parse_bool(name: &str, k: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{name}: bad {k} '{v}': expected true or false")),
    }
}

fn parse_inherit(name: &str, k: &str, v: &str) -> Result<Inherit, String> {
    if v == "inherit" {
        return Ok(Inherit::Inherit);
    }
    match v.parse::<u8>() {
        Ok(n) => Ok(Inherit::Fixed(n)),
        Err(_) => Err(format!("{name}: invalid {k} {v}")),
    }
}

fn parse_ip(name: &str, kind: TunnelKind, k: &str, v: &str) -> Result<IpAddr, String> {
    v.parse::<IpAddr>()
        .map_err(|_| format!("{name}: bad {} '{k}'", kind.name()))
}

/// Options OVS takes for these types that xennet does not implement.
const NOT_SUPPORTED: &[&str] = &[
    "exts",
    "egress_pkt_mark",
    "packet_type",
    "remote_cert",
    "peer_cert",
    "psk",
    "erspan_ver",
    "erspan_idx",
    "erspan_dir",
    "erspan_hwid",
    "seq",
    "pmtud",
    "dont_fragment",
];

/// Check the options of tunnel interface `name` of type `kind`.
pub fn parse_options(
    name: &str,
    kind: TunnelKind,
    options: &BTreeMap<String, String>,
) -> Result<TunnelConfig, String> {
    let mut c = TunnelConfig {
        kind,
        remote: FromFlow::Fixed(IpAddr::V4(0.into())),
        local: None,
        in_key: FromFlow::Fixed(0),
        out_key: FromFlow::Fixed(0),
        dst_port: kind.default_port(),
        csum: None,
        tos: Inherit::Fixed(0),
        ttl: Inherit::Fixed(DEFAULT_TTL),
        df: true,
    };
    let mut remote = None;
    for (k, v) in options {
        let v = v.as_str();
        match k.as_str() {
            "remote_ip" => {
                remote = Some(if v == "flow" {
                    FromFlow::Flow
                } else {
                    let a = parse_ip(name, kind, k, v)?;
                    if a.is_multicast() {
                        return Err(format!("{name}: multicast remote_ip={v} not allowed"));
                    }
                    FromFlow::Fixed(a)
                });
            }
            "local_ip" => {
                if v == "flow" {
                    return Err(format!(
                        "{name}: local_ip=flow is not supported by xennetd yet"
                    ));
                }
                c.local = Some(parse_ip(name, kind, k, v)?);
            }
            "key" => {
                let key = parse_key(name, k, v)?;
                c.in_key = key;
                c.out_key = key;
            }
            "in_key" => c.in_key = parse_key(name, k, v)?,
            "out_key" => c.out_key = parse_key(name, k, v)?,
            "dst_port" => {
                c.dst_port = match v.parse::<u16>() {
                    Ok(0) => kind.default_port(),
                    Ok(p) => p,
                    Err(_) => return Err(format!("{name}: bad dst_port '{v}'")),
                }
            }
            "csum" => c.csum = Some(parse_bool(name, k, v)?),
            "df_default" => c.df = parse_bool(name, k, v)?,
            "tos" => c.tos = parse_inherit(name, "TOS", v)?,
            "ttl" => c.ttl = parse_inherit(name, "TTL", v)?,
            k if NOT_SUPPORTED.contains(&k) => {
                return Err(format!(
                    "{name}: {} argument '{k}' is not supported by xennetd yet",
                    kind.name()
                ))
            }
            _ => return Err(format!("{name}: unknown {} argument '{k}'", kind.name())),
        }
    }
    c.remote = remote.ok_or_else(|| {
        format!(
            "{name}: {} type requires valid 'remote_ip' argument",
            kind.name()
        )
    })?;
    if let (FromFlow::Fixed(r), Some(l)) = (c.remote, c.local) {
        if r.is_ipv4() != l.is_ipv4() {
            return Err(format!(
                "{name}: 'remote_ip' and 'local_ip' has to be of the same address family"
            ));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_as_ovs_takes_them() {
        let c = parse_options(
            "vx0",
            TunnelKind::Vxlan,
            &opts(&[("remote_ip", "172.31.1.2"), ("key", "42")]),
        )
        .unwrap();
        assert_eq!(c.remote, FromFlow::Fixed("172.31.1.2".parse().unwrap()));
        assert_eq!(
            (c.in_key, c.out_key),
            (FromFlow::Fixed(42), FromFlow::Fixed(42))
        );
        assert_eq!(c.dst_port, 4789);
        assert!(!c.csum_for(false) && c.csum_for(true));
        let c = parse_options(
            "g0",
            TunnelKind::Geneve,
            &opts(&[
                ("remote_ip", "flow"),
                ("key", "flow"),
                ("dst_port", "7000"),
                ("csum", "true"),
                ("tos", "inherit"),
                ("ttl", "32"),
                ("df_default", "false"),
                ("local_ip", "fd00::1"),
            ]),
        )
        .unwrap();
        assert_eq!((c.remote, c.in_key), (FromFlow::Flow, FromFlow::Flow));
        assert_eq!(
            (c.dst_port, c.tos, c.ttl, c.df),
            (7000, Inherit::Inherit, Inherit::Fixed(32), false)
        );
    }

    #[test]
    fn bad_options_are_refused_with_a_reason() {
        let e =
            |kv: &[(&str, &str)]| parse_options("t0", TunnelKind::Vxlan, &opts(kv)).unwrap_err();
        assert_eq!(e(&[]), "t0: vxlan type requires valid 'remote_ip' argument");
        assert_eq!(e(&[("remote_ip", "x")]), "t0: bad vxlan 'remote_ip'");
        assert_eq!(
            e(&[("remote_ip", "239.1.1.1")]),
            "t0: multicast remote_ip=239.1.1.1 not allowed"
        );
        assert_eq!(
            e(&[("remote_ip", "1.1.1.1"), ("bogus", "1")]),
            "t0: unknown vxlan argument 'bogus'"
        );
        assert!(e(&[("remote_ip", "1.1.1.1"), ("exts", "gbp")]).contains("not supported"));
        assert_eq!(
            e(&[("remote_ip", "1.1.1.1"), ("key", "0x1000000")]),
            "t0: bad key '0x1000000'"
        );
        assert!(
            e(&[("remote_ip", "1.1.1.1"), ("local_ip", "fd00::1")]).contains("same address family")
        );
        assert!(e(&[("remote_ip", "1.1.1.1"), ("csum", "yes")]).contains("bad csum"));
        assert_eq!(
            e(&[("remote_ip", "1.1.1.1"), ("ttl", "300")]),
            "t0: invalid TTL 300"
        );
    }
}
