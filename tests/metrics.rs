//! The Prometheus endpoint (`xennetd --metrics ADDR:PORT`), scraped and
//! parsed by the Python Prometheus client library's own parsers (the
//! strict OpenMetrics one and the text format 0.0.4 one,
//! tests/peers/prom_scrape.py), with values checked against what
//! `ovs-appctl` shows and against traffic made by emulated guests.

mod common;

use serde_json::Value;

use common::Harness;

/// The endpoint's URL, from xennetd's `metrics on http://...` log line
/// (it was started on port 0).
fn metrics_url(h: &Harness) -> String {
    let mut url = None;
    h.wait_for("the metrics log line", || {
        url = h
            .log()
            .lines()
            .find_map(|l| l.split("metrics on ").nth(1))
            .map(|u| u.trim().to_owned());
        url.is_some()
    });
    let url = url.unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.contains(":0/"),
        "{url}"
    );
    url
}

/// Scrape `url` in `format` (`openmetrics` or `prometheus`) from
/// xennetd's network namespace; the parsed families.
fn scrape(h: &Harness, url: &str, format: &str) -> Vec<Value> {
    let py = common::prometheus_python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/prom_scrape.py");
    let out = h.daemon_exec(&[py.to_str().unwrap(), script, url, format]);
    assert!(
        out.status.success(),
        "scraping {url} ({format}) failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.log()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["families"].as_array().unwrap().clone()
}

/// The value of the one sample named `name` whose labels include
/// `labels`.
fn sample(families: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one {name}{labels:?}, found {found:?} in {families:#?}"
    );
    found[0]
}

fn vif_stats(h: &Harness, vif: &str) -> Value {
    serde_json::from_str(&h.appctl(&["xennet/vif-stats", vif])).unwrap()
}

/// Coverage counter `event`'s total as `ovs-appctl coverage/show` gives
/// it (0 when not listed).
fn coverage(h: &Harness, event: &str) -> u64 {
    h.appctl(&["coverage/show"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(event))
        .and_then(|l| l.rsplit("total: ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The megaflow count `ovs-appctl dpctl/show` gives.
fn dp_flows(h: &Harness) -> u64 {
    let show = h.appctl(&["dpctl/show"]);
    show.lines()
        .find_map(|l| l.trim().strip_prefix("flows: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no flow count: {show}"))
}

/// Guests 1 and 2 ping; guest 1 then spoofs its MAC (port security drops
/// its frames) and guest 3 commits a fatal protocol violation. The
/// endpoint shows every `xennet/vif-stats` counter with the value appctl
/// shows (counters still moving are bracketed by an appctl read before
/// and after the scrape), the ping traffic, the port-security drops, the
/// violation by reason, the datapath's counters and a bad request counted.
#[test]
fn metrics_show_every_vif_counter_and_the_traffic() {
    let mut h = Harness::start_with("metrics", &["--metrics", "127.0.0.1:0"]);
    let url = metrics_url(&h);
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xenstored socket", || sock.exists());
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    const PINGS: u32 = 5;
    assert!(h.ping(1, 2, PINGS), "{}", h.log());
    // Port security: guest 1 under another MAC is dropped.
    let o = h.exec(
        1,
        &["ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01"],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(h.ping_fails(1, 2), "a spoofed MAC got through");
    // A fatal protocol violation (20 data slots).
    h.guest(3, Some("twenty-slots"));
    h.wait_for("vif3.0 disabled", || {
        vif_stats(&h, "vif3.0")["fatal_errors"] == 1
    });
    // A bad request, answered and counted.
    let port = url.rsplit(':').next().unwrap().trim_end_matches("/metrics");
    let bad = h.daemon_exec(&[
        "bash",
        "-c",
        &format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'POST /metrics HTTP/1.1\\r\\n\\r\\n' >&3; cat <&3"
        ),
    ]);
    let bad = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert!(
        bad.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{bad}"
    );
    // The connection's task counts the request after the reply and the
    // close the client saw: wait for the count before scraping.
    h.wait_for("the bad request counted", || {
        coverage(&h, "metrics_bad_requests") == 1
    });

    let before = vif_stats(&h, "vif1.0");
    let flows_before = dp_flows(&h);
    let fams = scrape(&h, &url, "openmetrics");
    let flows_after = dp_flows(&h);
    let after = vif_stats(&h, "vif1.0");
    let vif1 = [("bridge", "br0"), ("vif", "vif1.0"), ("domid", "1")];

    // Every scalar counter of xennet/vif-stats is there, with its value.
    let mut checked = 0;
    for (key, b) in before.as_object().unwrap() {
        let (Some(b), Some(a)) = (b.as_u64(), after[key].as_u64()) else {
            continue;
        };
        let (name, scale) = match key.strip_suffix("_ns") {
            Some(stem) => (format!("xennet_vif_{stem}_seconds_total"), 1e9),
            None if key == "queues" => ("xennet_vif_queues".to_owned(), 1.0),
            None => (format!("xennet_vif_{key}_total"), 1.0),
        };
        let m = (sample(&fams, &name, &vif1) * scale).round() as u64;
        assert!(b <= m && m <= a, "{name}: appctl {b}..{a}, metrics {m}");
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} counters");
    // The pings and the spoofed frames.
    let rx = sample(&fams, "xennet_vif_rx_packets_total", &vif1);
    let tx = sample(&fams, "xennet_vif_tx_packets_total", &vif1);
    assert!(
        rx >= f64::from(PINGS) && tx >= f64::from(PINGS),
        "{rx} {tx}"
    );
    assert!(sample(&fams, "xennet_vif_rx_spoofed_mac_total", &vif1) > 0.0);
    let q0 = sample(
        &fams,
        "xennet_vif_queue_rx_packets_total",
        &[("vif", "vif1.0"), ("queue", "0")],
    );
    // A queue's counter is read after the vif's total in the scrape (and
    // counted after it): bound it by the total read after the scrape.
    let rx_after = after["rx_packets"].as_u64().unwrap() as f64;
    assert!(q0 >= f64::from(PINGS) && q0 <= rx_after, "{q0} {rx_after}");
    // The port's counters are the vif's.
    let port_rx = sample(
        &fams,
        "xennet_port_rx_packets_total",
        &[("bridge", "br0"), ("port", "vif1.0"), ("ofport", "1")],
    );
    let (b, a) = (before["rx_packets"].as_u64(), after["rx_packets"].as_u64());
    assert!(
        b.unwrap() as f64 <= port_rx && port_rx <= a.unwrap() as f64,
        "{port_rx}"
    );
    // Guest 3's violation, exactly once, by reason; its port disabled.
    let vif3 = [("vif", "vif3.0"), ("domid", "3")];
    assert_eq!(sample(&fams, "xennet_vif_fatal_errors_total", &vif3), 1.0);
    let violations = vif_stats(&h, "vif3.0")["violations"].clone();
    let violations = violations.as_object().unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    for reason in xennet_vif::netback::ProtocolViolation::NAMES {
        let want = violations.get(reason).map_or(0, |v| v.as_u64().unwrap());
        let mut l = vif3.to_vec();
        l.push(("reason", reason));
        let got = sample(&fams, "xennet_vif_protocol_violations_total", &l);
        assert_eq!(got, want as f64, "{reason}");
    }
    assert_eq!(
        sample(&fams, "xennet_port_enabled", &[("port", "vif3.0")]),
        0.0
    );
    assert_eq!(
        sample(&fams, "xennet_port_enabled", &[("port", "vif2.0")]),
        1.0
    );
    // The datapath: every packet hit a cache, missed to an upcall or was
    // dropped as too short (one snapshot).
    let br = [("bridge", "br0")];
    let packets = sample(&fams, "xennet_datapath_packets_total", &br);
    let hits: f64 = ["emc", "megaflow"]
        .iter()
        .map(|c| sample(&fams, "xennet_datapath_hits_total", &[("cache", c)]))
        .sum();
    let upcalls = sample(&fams, "xennet_datapath_upcalls_total", &br);
    let runts = sample(
        &fams,
        "xennet_datapath_drops_total",
        &[("reason", "rx_invalid")],
    );
    assert!(packets >= f64::from(2 * PINGS), "{packets}");
    assert_eq!(packets, hits + upcalls + runts);
    // Megaflows come and go (guests' background traffic adds some, idle
    // ones expire after 10 s): the scrape's count lies between
    // dpctl/show's just before and just after unless one came and
    // another went in between; then scrape again (a bounded retry).
    let bracketed =
        |mf: u64, before: u64, after: u64| before.min(after) <= mf && mf <= before.max(after);
    let mut megaflows = (
        sample(&fams, "xennet_datapath_megaflows", &br) as u64,
        flows_before,
        flows_after,
    );
    for _ in 0..10 {
        if bracketed(megaflows.0, megaflows.1, megaflows.2) {
            break;
        }
        let before = dp_flows(&h);
        let again = scrape(&h, &url, "openmetrics");
        let after = dp_flows(&h);
        let mf = sample(&again, "xennet_datapath_megaflows", &br) as u64;
        megaflows = (mf, before, after);
    }
    let (mf, flows_before, flows_after) = megaflows;
    assert!(
        bracketed(mf, flows_before, flows_after),
        "megaflows {mf}, dpctl/show {flows_before}..{flows_after}"
    );
    assert!(sample(&fams, "xennet_bridge_mac_entries", &br) >= 2.0);
    // Coverage: the one bad request.
    let cov = |e: &str| sample(&fams, "xennet_coverage_total", &[("event", e)]);
    assert_eq!(cov("metrics_bad_requests"), 1.0);
    assert_eq!(cov("metrics_refused"), 0.0);
    // Nobody watches the representors: nothing mirrored, and their kernel
    // counters (what xentop reads in /proc/net/dev) show none of the
    // vif's traffic (README.md, Metrics).
    let rep = [("vif", "vif1.0"), ("device", "vif1.0")];
    assert_eq!(sample(&fams, "xennet_representor_mirroring", &rep), 0.0);
    let mirrored = sample(&fams, "xennet_representor_mirrored_total", &rep);
    assert_eq!(mirrored, 0.0);
    let netdev = h.daemon_exec(&["cat", "/proc/net/dev"]);
    let netdev = String::from_utf8_lossy(&netdev.stdout).into_owned();
    let kernel_rx: f64 = netdev
        .lines()
        .find_map(|l| l.trim().strip_prefix("vif1.0:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no vif1.0 in\n{netdev}"));
    assert_eq!(kernel_rx, mirrored, "{netdev}");

    // README.md lists every metric (the vif counters by their
    // vif-stats names).
    let readme = include_str!("../README.md");
    for f in &fams {
        for s in f["samples"].as_array().unwrap() {
            let name = s["name"].as_str().unwrap();
            let stem = name
                .strip_prefix("xennet_vif_")
                .and_then(|n| n.strip_suffix("_total"));
            assert!(
                readme.contains(&format!("`{name}`"))
                    || stem.is_some_and(|c| readme.contains(&format!("`{c}`"))),
                "README.md does not list {name}"
            );
        }
    }

    // The text format 0.0.4, parsed by the other parser: the same names.
    let before = vif_stats(&h, "vif2.0")["tx_packets"].as_u64().unwrap();
    let fams = scrape(&h, &url, "prometheus");
    let after = vif_stats(&h, "vif2.0")["tx_packets"].as_u64().unwrap();
    let tx2 = sample(&fams, "xennet_vif_tx_packets_total", &[("vif", "vif2.0")]) as u64;
    assert!(before <= tx2 && tx2 <= after && tx2 >= u64::from(PINGS));
    assert!(h.daemon_alive());
}
