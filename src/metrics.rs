//! The Prometheus endpoint (`xennetd --metrics ADDR:PORT`, off by
//! default): `GET /metrics` answers with every counter the `ovs-appctl`
//! commands show, read at scrape time from the same places
//! (`xennet/vif-stats`, `xennet/vif-show`, `dpif-netdev/pmd-stats-show`,
//! `fdb/stats-show`, `coverage/show`, `xennet/representor-show`,
//! `tnl/ports/show -v`).
//!
//! Encoding is the `prometheus-client` crate's: the OpenMetrics 1.0 text
//! format when the scraper's `Accept` asks for
//! `application/openmetrics-text` (Prometheus does by default), else the
//! Prometheus text format 0.0.4. Every name starts with `xennet_`; counters
//! end in `_total`; times are in seconds. Labels: `bridge`; `port` and
//! `ofport` for ports; `vif` and `domid` for vifs, with `queue` for the
//! per-queue counters and `reason` for drops and protocol violations;
//! `cache` for datapath hits; `event` for the coverage counters. README.md
//! lists every name.
//!
//! The server is a minimal HTTP/1.1 one (requests parsed by `httparse`):
//! one request per connection (`Connection: close`), at most
//! [`MAX_CONNECTIONS`] connections at once (beyond, a connection is closed
//! at once and counted, `metrics_refused`), a request head of at most
//! [`MAX_REQUEST_HEAD`] bytes, each exchange within [`TIMEOUT`], one
//! scrape gathering at a time (a wedged forwarding thread holds up one
//! blocking thread, not one per scrape). A bad
//! request gets 400, 404, 405 or 431 and is counted
//! (`metrics_bad_requests`), with a rate-limited log line; transient
//! accept errors (out of descriptors) are waited out; none of it stops the
//! daemon.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::bridge::Switch;
use crate::ratelimit::LogLimit;

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send its request and read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers), bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Most request headers.
const MAX_HEADERS: usize = 64;
/// The name prefix of every metric.
pub const PREFIX: &str = "xennet";

/// `Content-Type` of the OpenMetrics 1.0 text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry of xennetd's metrics: everything read from `switch` at
/// each scrape.
pub fn registry(switch: Arc<Switch>) -> Registry {
    let mut r = Registry::with_prefix(PREFIX);
    r.register_collector(Box::new(SwitchCollector { switch }));
    r
}

/// Bind the endpoint's socket (port 0: any free port, see the log line).
///
/// # Errors
/// The address cannot be bound (in use, not local).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve `GET /metrics` on `listener` until the task is dropped.
///
/// # Errors
/// Only when the listener itself is broken ([`crate::accept::next`]).
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) -> std::io::Result<()> {
    let what = match listener.local_addr() {
        Ok(a) => format!("metrics on {a}"),
        Err(_) => "metrics".into(),
    };
    let mut errors = crate::accept::AcceptErrors::new(what.clone());
    let mut live = tokio::task::JoinSet::new();
    let mut refused_log = LogLimit::new();
    let bad_log = Arc::new(Mutex::new(LogLimit::new()));
    loop {
        let (stream, peer) = crate::accept::next(&mut errors, || listener.accept()).await?;
        while live.try_join_next().is_some() {}
        if live.len() >= MAX_CONNECTIONS {
            drop(stream);
            if let Some(n) = crate::coverage::METRICS_REFUSED.count(&mut refused_log) {
                tracing::warn!(
                    "{what}: {MAX_CONNECTIONS} connections already, refused one from {peer} ({n} in all)"
                );
            }
            continue;
        }
        let registry = registry.clone();
        let bad_log = bad_log.clone();
        live.spawn(async move {
            let outcome = tokio::time::timeout(TIMEOUT, serve_one(stream, registry)).await;
            let bad = match outcome {
                Ok(Ok(None)) => return,
                Ok(Ok(Some(why))) => why,
                Ok(Err(e)) => {
                    tracing::debug!("metrics: connection from {peer}: {e}");
                    return;
                }
                Err(_) => format!("no complete exchange within {} s", TIMEOUT.as_secs()),
            };
            let mut log = bad_log.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = crate::coverage::METRICS_BAD_REQUESTS.count(&mut log) {
                tracing::warn!("metrics: request from {peer}: {bad} ({n} bad requests in all)");
            }
        });
    }
}

/// The text formats the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (ends with `# EOF`).
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// The format a request's `Accept` header asks for.
    fn negotiate(accept: Option<&[u8]>) -> Format {
        let wants_om = accept.is_some_and(|a| {
            String::from_utf8_lossy(a)
                .to_ascii_lowercase()
                .contains("application/openmetrics-text")
        });
        match wants_om {
            true => Format::OpenMetrics,
            false => Format::Prometheus,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The exposition of `registry` in `format`.
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?
        }
    }
    Ok(out)
}

/// Answer one request on `stream`. `Ok(Some(why))` when the request was
/// bad (and got an error status), `Ok(None)` when it was served or the
/// client left before finishing it.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    registry: Arc<Registry>,
) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (head_only, format) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        let room = MAX_REQUEST_HEAD.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or("");
                let path = req.path.unwrap_or("");
                if method != "GET" && method != "HEAD" {
                    let why = format!("method {method:?} (only GET and HEAD)");
                    respond(&mut stream, 405, "Method Not Allowed", &why).await?;
                    return Ok(Some(why));
                }
                if path.split('?').next() != Some("/metrics") {
                    let why = format!("path {path:?} (only /metrics)");
                    respond(&mut stream, 404, "Not Found", &why).await?;
                    return Ok(Some(why));
                }
                let accept = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("accept"))
                    .map(|h| h.value);
                break (method == "HEAD", Format::negotiate(accept));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST_HEAD => {}
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                let why =
                    format!("request head over {MAX_REQUEST_HEAD} bytes or {MAX_HEADERS} headers");
                respond(&mut stream, 431, "Request Header Fields Too Large", &why).await?;
                return Ok(Some(why));
            }
            Err(e) => {
                let why = format!("malformed request: {e}");
                respond(&mut stream, 400, "Bad Request", &why).await?;
                return Ok(Some(why));
            }
        }
    };
    // Gathering asks each bridge's forwarding thread for its counters
    // (a blocking round trip): off the runtime's threads, and one at a
    // time, so that a wedged forwarding thread holds one blocking thread,
    // not one per scrape (later scrapes time out waiting).
    let permit = gather_permit()
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let body = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        render(&registry, format)
    })
    .await
    .map_err(std::io::Error::other)?;
    let body = match body {
        Ok(b) => b,
        Err(_) => {
            respond(&mut stream, 500, "Internal Server Error", "encoding failed").await?;
            return Ok(None);
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        format.content_type(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await?;
    Ok(None)
}

/// The right to gather (one scrape at a time, process-wide).
fn gather_permit() -> &'static Arc<tokio::sync::Semaphore> {
    static SEM: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SEM.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(1)))
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    reason: &str,
    text: &str,
) -> std::io::Result<()> {
    let body = format!("{text}\n");
    let allow = match code {
        405 => "Allow: GET, HEAD\r\n",
        _ => "",
    };
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads every metric from the switch at scrape time.
#[derive(Debug)]
struct SwitchCollector {
    switch: Arc<Switch>,
}

impl Collector for SwitchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gather(&self.switch).encode(&mut encoder)
    }
}

/// A sample's labels.
type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

/// Metric families in first-seen order, each with all its samples (both
/// text formats want a family's samples together).
#[derive(Debug, Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(&mut self, kind: MetricType, name: &str, help: &str, labels: Labels, v: Value) {
        let i = match self.0.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.0.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    samples: Vec::new(),
                });
                self.0.len() - 1
            }
        };
        self.0[i].samples.push((labels, v));
    }

    /// A counter (`<name>_total` on the wire).
    fn counter(&mut self, name: &str, help: &str, labels: Labels, v: u64) {
        self.add(MetricType::Counter, name, help, labels, Value::Int(v));
    }

    fn gauge(&mut self, name: &str, help: &str, labels: Labels, v: u64) {
        self.add(MetricType::Gauge, name, help, labels, Value::Int(v));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut m = encoder.encode_descriptor(&f.name, &f.help, None, f.kind)?;
            for (labels, v) in &f.samples {
                let e = m.encode_family(labels)?;
                match (f.kind, *v) {
                    (MetricType::Counter, Value::Int(n)) => ConstCounter::new(n).encode(e)?,
                    (MetricType::Counter, Value::Float(x)) => ConstCounter::new(x).encode(e)?,
                    (_, Value::Int(n)) => ConstGauge::new(n).encode(e)?,
                    (_, Value::Float(x)) => ConstGauge::new(x).encode(e)?,
                }
            }
        }
        Ok(())
    }
}

/// A doc comment as one line of help text (rustdoc link brackets gone).
fn help_text(doc: &str) -> String {
    doc.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("[`", "`")
        .replace("`]", "`")
}

/// Read every counter: per bridge (its datapath, ports, vifs), then the
/// process-wide ones. The same calls as the `ovs-appctl` commands.
fn gather(switch: &Switch) -> Families {
    let mut f = Families::default();
    for b in switch.bridges() {
        let st = b.dp.stats();
        let br = || vec![("bridge", b.name.clone())];
        // The datapath (`dpif-netdev/pmd-stats-show`, `dpctl/show`).
        f.counter(
            "datapath_packets",
            "Packets received from all of the bridge's ports.",
            br(),
            st.packets,
        );
        for (cache, n) in [("emc", st.emc_hits), ("megaflow", st.megaflow_hits)] {
            let mut l = br();
            l.push(("cache", cache.into()));
            f.counter(
                "datapath_hits",
                "Packets that hit a flow cache, by level: `emc` (exact match), `megaflow` (after an EMC miss).",
                l,
                n,
            );
        }
        f.counter(
            "datapath_upcalls",
            "Packets that missed both caches and were translated by the OpenFlow pipeline.",
            br(),
            st.upcalls,
        );
        for (reason, n) in [
            ("rx_invalid", st.rx_invalid),
            ("gso_unsegmentable", st.gso_drops),
            ("unfragmentable", st.frag_drops),
            ("upcall_lost", st.lost),
            ("recirc", st.recirc_drops),
        ] {
            let mut l = br();
            l.push(("reason", reason.into()));
            f.counter(
                "datapath_drops",
                "Packets the datapath dropped, by reason: `rx_invalid` (shorter than an Ethernet header), `gso_unsegmentable` (GSO frames that could not be segmented at output), `unfragmentable` (reassembled datagrams that could not be cut back into fragments at output), `upcall_lost` (lost before translation), `recirc` (recirculated more than 6 times, or more recirculated packets than a pass takes).",
                l,
                n,
            );
        }
        f.counter(
            "datapath_recirculations",
            "Packets recirculated (`ct(table=N)`, after `pop_mpls`): passes after a packet's first.",
            br(),
            st.recirc,
        );
        f.counter(
            "datapath_flow_limit_hits",
            "Misses not cached because the megaflow cache was at its flow limit.",
            br(),
            st.flow_limit_hits,
        );
        f.gauge(
            "datapath_megaflows",
            "Megaflows installed.",
            br(),
            st.n_flows as u64,
        );
        f.gauge(
            "datapath_masks",
            "Distinct megaflow masks (subtables).",
            br(),
            st.n_masks as u64,
        );
        f.gauge(
            "datapath_flow_limit",
            "Most megaflows cached (other_config:flow-limit).",
            br(),
            st.flow_limit as u64,
        );
        f.add(
            MetricType::Gauge,
            "datapath_subtable_lookups_per_hit",
            "Average subtables probed per megaflow hit.",
            br(),
            Value::Float(st.avg_subtable_lookups_per_hit),
        );
        // The bridge's control plane.
        f.gauge(
            "bridge_mac_entries",
            "MAC addresses in NORMAL's learning table (fdb/stats-show).",
            br(),
            b.fdb.len() as u64,
        );
        let flows: u64 =
            b.of.table_stats()
                .iter()
                .map(|t| u64::from(t.active_count))
                .sum();
        f.gauge(
            "bridge_openflow_flows",
            "OpenFlow flows in all of the bridge's tables.",
            br(),
            flows,
        );
        f.gauge(
            "bridge_controllers_connected",
            "OpenFlow controller connections up.",
            br(),
            b.conns.connected_controllers() as u64,
        );
        f.counter(
            "bridge_packet_ins_dropped",
            "Packet-ins dropped because the controllers read too slowly.",
            br(),
            b.conns.packet_ins_dropped(),
        );
        // The isolation checker (`xennet/isolation-show`).
        let iso = b.isolation.metrics(b.of.guard_refusals());
        f.gauge(
            "bridge_isolation_alerts",
            "Vif/essential-service pairs cut off now (xennet/isolation-show).",
            br(),
            iso.alerts,
        );
        for a in b.isolation.alerts() {
            let mut l = br();
            l.push(("port", a.port.clone()));
            l.push(("service", a.service.to_string()));
            f.gauge(
                "bridge_isolation_alert",
                "1 for each vif cut off from an essential service (xennet/isolation-show says by which flow).",
                l,
                1,
            );
        }
        for (name, help, v) in [
            (
                "bridge_isolation_alerts_raised",
                "Isolation alerts raised.",
                iso.raised_total,
            ),
            (
                "bridge_isolation_alerts_cleared",
                "Isolation alerts cleared.",
                iso.cleared_total,
            ),
            (
                "bridge_isolation_checks",
                "Isolation checks run (each translates every probe of every vif).",
                iso.checks_total,
            ),
            (
                "bridge_isolation_guard_refusals",
                "Flow-mods and bundles refused by the isolation guard (OFPFMFC_EPERM).",
                iso.guard_refusals_total,
            ),
        ] {
            f.counter(name, help, br(), v);
        }
        // Ports (`xennet/vif-show`, OpenFlow port stats).
        let entries = b.port_entries();
        for info in b.port_infos() {
            let l = || {
                vec![
                    ("bridge", b.name.clone()),
                    ("port", info.name.clone()),
                    ("ofport", info.ofport.to_string()),
                ]
            };
            let s = info.stats;
            for (name, help, v) in [
                (
                    "port_rx_packets",
                    "Packets received from the port into the switch.",
                    s.rx_packets,
                ),
                (
                    "port_rx_bytes",
                    "Bytes received from the port into the switch.",
                    s.rx_bytes,
                ),
                (
                    "port_rx_dropped",
                    "Packets received but dropped by the port (malformed, over limits).",
                    s.rx_dropped,
                ),
                (
                    "port_rx_errors",
                    "Receive errors (protocol violations, grant failures).",
                    s.rx_errors,
                ),
                (
                    "port_tx_packets",
                    "Packets the switch sent out of the port.",
                    s.tx_packets,
                ),
                (
                    "port_tx_bytes",
                    "Bytes the switch sent out of the port.",
                    s.tx_bytes,
                ),
                (
                    "port_tx_dropped",
                    "Packets for the port that were dropped (queue full, peer gone).",
                    s.tx_dropped,
                ),
                ("port_tx_errors", "Transmit errors.", s.tx_errors),
            ] {
                f.counter(name, help, l(), v);
            }
            f.gauge(
                "port_enabled",
                "1 while the port is enabled, 0 once it reported itself disabled (a vif after a protocol violation).",
                l(),
                u64::from(info.enabled),
            );
        }
        // Vifs (`xennet/vif-stats`): every counter.
        for e in entries.values() {
            let Some((domid, m)) = &e.vif else { continue };
            let l = || {
                vec![
                    ("bridge", b.name.clone()),
                    ("vif", e.name.clone()),
                    ("domid", domid.to_string()),
                ]
            };
            for c in m.counters() {
                let help = help_text(c.doc);
                if c.name == "queues" {
                    f.gauge("vif_queues", &help, l(), c.value);
                } else if let Some(stem) = c.name.strip_suffix("_ns") {
                    let help = format!("{help} (Here in seconds.)");
                    let secs = c.value as f64 / 1e9;
                    let name = format!("vif_{stem}_seconds");
                    f.add(MetricType::Counter, &name, &help, l(), Value::Float(secs));
                } else {
                    f.counter(&format!("vif_{}", c.name), &help, l(), c.value);
                }
            }
            let queues = (m.queues.load(std::sync::atomic::Ordering::Relaxed) as usize)
                .min(xennet_vif::netback::MAX_QUEUES);
            for (name, help, arr) in [
                (
                    "vif_queue_rx_packets",
                    "Packets from the guest per queue (its TX rings).",
                    &m.queue_rx_packets,
                ),
                (
                    "vif_queue_tx_packets",
                    "Packets to the guest per queue (its RX rings); counted only for vifs with more than one queue.",
                    &m.queue_tx_packets,
                ),
            ] {
                for (q, c) in arr.iter().enumerate().take(queues) {
                    let mut l = l();
                    l.push(("queue", q.to_string()));
                    f.counter(name, help, l, c.load(std::sync::atomic::Ordering::Relaxed));
                }
            }
            for (c, reason) in m
                .violations
                .iter()
                .zip(xennet_vif::netback::ProtocolViolation::NAMES)
            {
                let mut l = l();
                l.push(("reason", reason.into()));
                f.counter(
                    "vif_protocol_violations",
                    "Protocol violations of the frontend by kind (each disables the vif).",
                    l,
                    c.load(std::sync::atomic::Ordering::Relaxed),
                );
            }
        }
    }
    // Representors (`xennet/representor-show`).
    for r in crate::representor::counters() {
        let l = || vec![("vif", r.vif.clone()), ("device", r.device.clone())];
        f.gauge(
            "representor_mirroring",
            "1 while the representor is up and promiscuous and the vif's frames are copied into it.",
            l(),
            u64::from(r.mirroring),
        );
        f.counter(
            "representor_mirrored",
            "Frames copied into the representor device.",
            l(),
            r.mirrored,
        );
        f.counter(
            "representor_mirror_dropped",
            "Copies the representor device refused (queue full, device down).",
            l(),
            r.mirror_dropped,
        );
        f.counter(
            "representor_host_dropped",
            "Frames the host sent into the representor device, dropped.",
            l(),
            r.host_dropped,
        );
    }
    // Tunnels (`tnl/ports/show -v`).
    for (what, n) in switch.tunnels.counters() {
        match what {
            "encapsulated" => f.counter(
                "tunnel_encapsulated",
                "Packets encapsulated by tunnel ports and handed to an underlay bridge.",
                Vec::new(),
                n,
            ),
            "decapsulated" => f.counter(
                "tunnel_decapsulated",
                "Tunnel packets decapsulated into a tunnel port.",
                Vec::new(),
                n,
            ),
            "neigh_miss" => f.counter(
                "tunnel_neigh_misses",
                "Packets whose next hop was unresolved (queued while resolving).",
                Vec::new(),
                n,
            ),
            reason => f.counter(
                "tunnel_drops",
                "Tunnel packets dropped, by reason (the `tnl/ports/show -v` counters: `no_route`, `queue_full`, `no_port`, `bad_udp_checksum`, `geneve_critical`, ...).",
                vec![("reason", reason.into())],
                n,
            ),
        }
    }
    // Process-wide (`coverage/show`).
    for (event, n) in crate::coverage::all() {
        f.counter(
            "coverage",
            "Refused or ignored input, by event (ovs-appctl coverage/show).",
            vec![("event", event.into())],
            n,
        );
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::AsyncWriteExt;

    fn test_registry() -> Arc<Registry> {
        let mut r = Registry::with_prefix(PREFIX);
        let c: Counter = Counter::default();
        c.inc_by(3);
        // The registry ends help texts with a full stop.
        r.register("test_events", "Events", c);
        Arc::new(r)
    }

    /// The whole answer to `request`.
    async fn exchange(request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(serve_one(server, test_registry()));
        client.write_all(request).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        let _ = serving.await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn get_metrics_answers_in_the_asked_format() {
        let r = exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        assert!(
            r.contains("\r\n\r\n# HELP xennet_test_events_total Events.\n"),
            "{r}"
        );
        assert!(r.ends_with("xennet_test_events_total 3\n"), "{r}");
        let r = exchange(
            b"GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
        )
        .await;
        assert!(
            r.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
            "{r}"
        );
        assert!(r.contains("# TYPE xennet_test_events counter\n"), "{r}");
        assert!(r.ends_with("xennet_test_events_total 3\n# EOF\n"), "{r}");
        let body_len = r.split("\r\n\r\n").nth(1).unwrap().len();
        assert!(
            r.contains(&format!("Content-Length: {body_len}\r\n")),
            "{r}"
        );
        // HEAD: the headers alone.
        let r = exchange(b"HEAD /metrics HTTP/1.0\r\n\r\n").await;
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
    }

    #[tokio::test]
    async fn bad_requests_get_an_error_status() {
        let r = exchange(b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        assert!(r.contains("Allow: GET, HEAD\r\n"), "{r}");
        let r = exchange(b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        let r = exchange(b"\x00\x01garbage\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        // A head that never ends is cut off at the limit.
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST_HEAD + 100, b'a');
        let r = exchange(&long).await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let r = exchange(&many).await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_counted() {
        use tokio::net::TcpStream;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, test_registry()));
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let refused = crate::coverage::METRICS_REFUSED.get();
        // Accepted after the idle ones: closed at once (an accepted
        // connection would wait for its request for TIMEOUT).
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(extra.read(&mut buf).await.unwrap(), 0);
        assert_eq!(crate::coverage::METRICS_REFUSED.get(), refused + 1);
        // One idle client leaves: a scrape gets through again (once the
        // server has seen it go).
        idle.pop();
        let mut served = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
            let mut out = Vec::new();
            let _ = c.read_to_end(&mut out).await;
            if out.starts_with(b"HTTP/1.1 200 OK") {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(served);
        server.abort();
    }

    #[test]
    fn help_text_is_one_line_without_link_brackets() {
        assert_eq!(
            help_text(" Dropped (see [`Vif::set_allowed_mac`]);\n each   counted."),
            "Dropped (see `Vif::set_allowed_mac`); each counted."
        );
    }
}
