//! The OpenFlow face of a bridge: answers the requests an
//! [`ofconn`](crate::ofconn) connection hands over (features, ports, port
//! statistics, descriptions, table features and their set requests) and passes flow, group and
//! meter requests and committed bundles to the bridge's OpenFlow pipeline.

use std::sync::{Arc, Weak};
use std::time::Instant;

use xennet_datapath::conntrack;
use xennet_openflow::model::{self, Desc, MpReply, MpRequest, Msg, PortDesc, SwitchFeatures};
use xennet_openflow::OfError;

use crate::bridge::Bridge;
use crate::ofconn::{ConnCtx, Handler};

/// Number of OpenFlow tables (0..=253, as OVS): the pipeline's.
const N_TABLES: u8 = xennet_ofproto::tables::N_TABLES as u8;
const _: () = assert!(xennet_ofproto::tables::N_TABLES <= u8::MAX as usize);
/// MAC address Linux netback gives every vif (`fe:ff:ff:ff:ff:ff`): the
/// guest's own address is on the other side of the ring.
pub const VIF_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
/// `ofp_capabilities` (1.3): FLOW_STATS | TABLE_STATS | PORT_STATS | GROUP_STATS.
const CAPABILITIES: u32 = 1 | 2 | 4 | 8;
/// `OFPPF_10GB_FD | OFPPF_COPPER` (1.3 `ofp_port_features`).
const PORT_FEATURES: u32 = (1 << 6) | (1 << 11);
/// 10 Gbit/s in kbit/s (`curr_speed`).
const PORT_SPEED_KBPS: u32 = 10_000_000;

/// The handler of one bridge's OpenFlow connections.
#[derive(Debug)]
pub struct OfBridge {
    bridge: Weak<Bridge>,
    started: Instant,
}

impl OfBridge {
    /// A handler for `bridge`.
    pub fn new(bridge: Weak<Bridge>) -> OfBridge {
        OfBridge {
            bridge,
            started: Instant::now(),
        }
    }

    fn bridge(&self) -> Result<Arc<Bridge>, OfError> {
        self.bridge.upgrade().ok_or(OfError::BAD_REQUEST_EPERM)
    }

    /// Every port as `ofp_port`.
    pub fn port_descs(&self, b: &Bridge) -> Vec<PortDesc> {
        b.port_infos()
            .into_iter()
            .map(|p| b.port_desc(&p))
            .collect()
    }

    fn features(&self, ctx: &ConnCtx, b: &Bridge) -> SwitchFeatures {
        SwitchFeatures {
            datapath_id: b.of.datapath_id(),
            n_buffers: 0,
            n_tables: N_TABLES,
            auxiliary_id: 0,
            capabilities: CAPABILITIES,
            ports: if ctx.version == xennet_openflow::header::OFP10_VERSION {
                self.port_descs(b)
            } else {
                Vec::new()
            },
        }
    }

    fn port_stats(&self, b: &Bridge, port_no: u32) -> Result<Vec<model::PortStats>, OfError> {
        let d = self.started.elapsed();
        let stats: Vec<_> = b
            .port_infos()
            .into_iter()
            .filter(|p| port_no == model::OFPP_ANY || p.ofport == port_no)
            .map(|p| model::PortStats {
                port_no: p.ofport,
                rx_packets: p.stats.rx_packets,
                tx_packets: p.stats.tx_packets,
                rx_bytes: p.stats.rx_bytes,
                tx_bytes: p.stats.tx_bytes,
                rx_dropped: p.stats.rx_dropped,
                tx_dropped: p.stats.tx_dropped,
                rx_errors: p.stats.rx_errors,
                tx_errors: p.stats.tx_errors,
                rx_frame_err: u64::MAX,
                rx_over_err: u64::MAX,
                rx_crc_err: u64::MAX,
                collisions: u64::MAX,
                duration_sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
                duration_nsec: d.subsec_nanos(),
            })
            .collect();
        if stats.is_empty() && port_no != model::OFPP_ANY {
            return Err(OfError::BAD_PORT);
        }
        Ok(stats)
    }

    fn multipart(&self, ctx: &ConnCtx, b: &Bridge, req: MpRequest) -> Result<MpReply, OfError> {
        Ok(match req {
            MpRequest::Desc => MpReply::Desc(Desc {
                mfr_desc: "xennet".into(),
                hw_desc: "xennetd userspace switch for Xen".into(),
                sw_desc: env!("CARGO_PKG_VERSION").into(),
                serial_num: "None".into(),
                dp_desc: b.name.clone(),
            }),
            MpRequest::PortDesc(port) => {
                let mut v = self.port_descs(b);
                v.retain(|d| port == model::OFPP_ANY || d.port_no == port);
                MpReply::PortDesc(v)
            }
            MpRequest::PortStats(p) => MpReply::PortStats(self.port_stats(b, p)?),
            MpRequest::Queue { .. } => MpReply::Queue,
            // A query, or a set request (OVS handle_table_features_request):
            // both are answered with the tables' features.
            MpRequest::TableFeatures(set) if set.is_empty() => {
                MpReply::TableFeatures(b.of.table_features())
            }
            MpRequest::TableFeatures(set) => {
                MpReply::TableFeatures(b.of.modify_table_features(&set)?)
            }
            other => return b.ofproto_multipart(ctx, other),
        })
    }
}

/// An `ofp_port` for a switch port with MAC `hw_addr` and OpenFlow config
/// bits `config` ([`model::port_config`], as `OFPT_PORT_MOD` set them): a
/// port whose link is down (`enabled` false: a disabled vif, a device
/// without carrier) or configured `PORT_DOWN` is `LINK_DOWN` and not `LIVE` (OVS
/// `normalize_state`; OVS turns a down port's netdev down, which drops its
/// link).
pub fn port_desc(
    ofport: u32,
    name: &str,
    hw_addr: [u8; 6],
    enabled: bool,
    config: u32,
) -> PortDesc {
    let up = enabled && config & model::port_config::PORT_DOWN == 0;
    PortDesc {
        port_no: ofport,
        hw_addr,
        name: name.chars().take(15).collect(),
        config,
        state: if up {
            model::port_state::LIVE
        } else {
            model::port_state::LINK_DOWN
        },
        curr: PORT_FEATURES,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: PORT_SPEED_KBPS,
        max_speed: PORT_SPEED_KBPS,
    }
}

/// An `NXT_CT_FLUSH` request as the tracker's match (OVS
/// `ofp_ct_match`, `ct_dpif_entry_cmp`): an all-zero address or a zero
/// port matches anything; IPv4 addresses arrive IPv4-mapped.
fn ct_flush_match(f: &xennet_openflow::ct_flush::CtFlush) -> conntrack::FlushMatch {
    let mut ipv6 = None;
    let mut addr = |a: Option<[u8; 16]>| {
        let a = a.filter(|a| *a != [0; 16])?;
        let mapped = a[..10] == [0; 10] && a[10..12] == [0xff, 0xff];
        ipv6 = Some(!mapped);
        let v = u128::from_be_bytes(a);
        Some(if mapped { v & 0xffff_ffff } else { v })
    };
    let nz = |p: Option<u16>| p.filter(|p| *p != 0);
    let mut tuple = |t: &xennet_openflow::ct_flush::CtTuple| conntrack::TupleMatch {
        src: addr(t.src),
        dst: addr(t.dst),
        sport: nz(t.src_port),
        dport: nz(t.dst_port),
        icmp_id: t.icmp_id,
        icmp_type: t.icmp_type,
        icmp_code: t.icmp_code,
    };
    let orig = tuple(&f.orig);
    let reply = tuple(&f.reply);
    conntrack::FlushMatch {
        ipv6,
        proto: (f.ip_proto != 0).then_some(f.ip_proto),
        orig,
        reply,
    }
}

impl Handler for OfBridge {
    fn handle(&self, ctx: &ConnCtx, msg: Msg) -> Result<Vec<Msg>, OfError> {
        let b = self.bridge()?;
        match msg {
            Msg::FeaturesRequest => Ok(vec![Msg::FeaturesReply(self.features(ctx, &b))]),
            Msg::MultipartRequest { body, .. } => Ok(vec![Msg::MultipartReply {
                flags: 0,
                body: self.multipart(ctx, &b, body)?,
            }]),
            Msg::PortMod(pm) => b.port_mod(&pm).map(|()| Vec::new()),
            Msg::TableMod { .. } => Ok(Vec::new()),
            // OVS `handle_nxt_ct_flush_zone`, which ovn-controller sends
            // for every zone it assigns: forget the zone's connections in
            // the tracker every bridge shares (no reply).
            Msg::NxCtFlushZone(zone) => {
                let n = b.conntrack.flush(Some(zone));
                tracing::debug!("{}: ct flush of zone {zone}: {n} connections", b.name);
                Ok(Vec::new())
            }
            msg => b.ofproto_request(ctx, msg),
        }
    }

    /// Flow-mods that [`xennet_ofproto::Ofproto::try_handle_flow_mod`]
    /// can apply at once (the bulk of `ovs-ofctl add-flows`); everything
    /// else goes to [`OfBridge::handle`].
    fn try_handle(&self, _ctx: &ConnCtx, msg: &Msg) -> Option<Result<Vec<Msg>, OfError>> {
        let Msg::FlowMod(fm) = msg else {
            return None;
        };
        let b = match self.bridge() {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        b.of.try_handle_flow_mod(fm).map(|r| r.map(|()| Vec::new()))
    }

    /// `NXT_CT_FLUSH_ZONE` and `NXT_CT_FLUSH` (OVS 3.1/3.2
    /// `handle_nxt_ct_flush`): a zone, every zone, or the connections a
    /// tuple match selects (`Conntrack::flush_match`), in the tracker
    /// every bridge shares. As in OVS, finding nothing is no error.
    fn ct_flush(&self, flush: &xennet_openflow::ct_flush::CtFlush) -> Result<(), OfError> {
        let b = self.bridge()?;
        let m = ct_flush_match(flush);
        let n = b.conntrack.flush_match(flush.zone, &m).unwrap_or(0);
        tracing::debug!(
            "{}: ct flush of zone {:?} {m:?}: {n} connections",
            b.name,
            flush.zone
        );
        Ok(())
    }

    fn watch_flows(&self, on: bool) {
        if let Ok(b) = self.bridge() {
            b.of.watch_flows(on);
        }
    }

    fn all_rules(&self) -> xennet_ofproto::tables::RuleSnapshot {
        self.bridge().map(|b| b.of.all_rules()).unwrap_or_default()
    }

    fn check_bundled(&self, _ctx: &ConnCtx, msg: &Msg) -> Result<(), OfError> {
        self.bridge()?.of.check_bundled(msg)
    }

    fn tlv_map(&self) -> Option<std::sync::Arc<xennet_ofproto::TlvMap>> {
        self.bridge().ok().map(|b| b.of.tlv_shared())
    }

    fn commit_bundle(
        &self,
        _ctx: &ConnCtx,
        flags: u16,
        msgs: Vec<xennet_ofproto::Bundled>,
    ) -> Result<(), (usize, OfError)> {
        self.bridge()
            .map_err(|e| (0, e))?
            .commit_bundle(flags, msgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_openflow::ct_flush::{CtFlush, CtTuple};

    /// IPv4-mapped addresses become the tracker's IPv4 form, IPv6 stays
    /// whole, zero addresses and ports are "any", ICMP fields as sent.
    #[test]
    fn ct_flush_request_as_tracker_match() {
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
        let f = CtFlush {
            zone: Some(3),
            ip_proto: 1,
            orig: CtTuple {
                src: Some(mapped),
                dst: Some([0; 16]),
                src_port: Some(0),
                icmp_id: Some(7),
                ..CtTuple::default()
            },
            reply: CtTuple::default(),
        };
        let m = ct_flush_match(&f);
        assert_eq!(m.ipv6, Some(false));
        assert_eq!(m.proto, Some(1));
        assert_eq!(m.orig.src, Some(0x0a00_0001));
        assert_eq!((m.orig.dst, m.orig.sport), (None, None));
        assert_eq!(m.orig.icmp_id, Some(7));
        assert_eq!(m.reply, conntrack::TupleMatch::default());
        let v6: [u8; 16] = std::net::Ipv6Addr::LOCALHOST.octets();
        let f = CtFlush {
            reply: CtTuple {
                dst: Some(v6),
                ..CtTuple::default()
            },
            ..CtFlush::default()
        };
        let m = ct_flush_match(&f);
        assert_eq!((m.ipv6, m.proto), (Some(true), None));
        assert_eq!(m.reply.dst, Some(1));
        assert!(ct_flush_match(&CtFlush::default()).is_empty());
    }
}
