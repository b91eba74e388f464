//! Hostile frontends never take the switch down: each misbehaving guest
//! gets its vif disabled (protocol violations) or its packet dropped with a
//! counter (bad packets), with one clear log line, while the well-behaved
//! guests keep pinging each other.

mod common;

use common::Harness;

/// (case, domid, fatal)
const CASES: &[(&str, u16, bool)] = &[
    ("prod-overflow", 11, true),
    ("bad-gref", 12, false),
    ("offset-overflow", 13, true),
    ("zero-length", 14, false),
    ("twenty-slots", 15, true),
    ("nineteen-slots", 16, false),
];

#[test]
fn hostile_frontends_are_contained() {
    let mut h = Harness::start("bad");
    h.guest(1, None);
    h.guest(2, None);
    assert!(h.ping(1, 2, 1), "good guests must ping before the attack");
    for (case, domid, _) in CASES {
        h.guest(*domid, Some(case));
    }
    let vif_line = |h: &Harness, domid: u16| -> Vec<String> {
        let table = h.appctl(&["xennet/vif-show"]);
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&format!("vif{domid}.0")))
            .unwrap_or_else(|| panic!("vif{domid}.0 missing from\n{table}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    for (case, domid, fatal) in CASES {
        let name = format!("vif{domid}.0");
        if *fatal {
            h.wait_for(&format!("{case}: {name} disabled"), || {
                vif_line(&h, *domid)[4] == "disabled"
            });
            let log = h.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&name) && l.contains("disabling"))
                .collect();
            assert_eq!(
                lines.len(),
                1,
                "{case}: want one clear log line, got {lines:#?}"
            );
        } else {
            h.wait_for(&format!("{case}: drop counted on {name}"), || {
                let cols = vif_line(&h, *domid);
                let dropped: u64 = cols[8].parse().unwrap_or(0);
                let errors: u64 = cols[11].parse().unwrap_or(0);
                dropped + errors > 0
            });
            assert_eq!(
                vif_line(&h, *domid)[4],
                "up",
                "{case}: a bad packet must not disable the vif"
            );
        }
    }
    // The switch is still up and the good guests still talk.
    assert!(h.ping(1, 2, 3), "good guests stopped pinging\n{}", h.log());
    assert!(h.ping(2, 1, 3), "good guests stopped pinging\n{}", h.log());
    h.appctl(&["version"]);
}

/// A guest storming its event channels (a million notifications on each,
/// `--hostile event-storm`, with split channels): the backend masks the
/// channel beyond its event rate and counts it, the vif stays up and the
/// guest still talks.
#[test]
fn an_event_storm_is_coalesced() {
    let mut h = Harness::start("storm");
    h.guest(1, None);
    h.guest_with(21, &["--hostile", "event-storm", "--split-evtchn"]);
    let stats = |h: &Harness| -> serde_json::Value {
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif21.0"])).unwrap()
    };
    h.wait_for("the storm to be throttled", || {
        stats(&h)["event_throttles"].as_u64().unwrap_or(0) > 0
    });
    // The guest answers pings once it has sent its storm (its notifications
    // are synchronous writes, slow on a busy machine).
    let guest_log = h.rundir.join("guest21.log");
    h.wait_for("the guest to finish its storm", || {
        std::fs::read_to_string(&guest_log)
            .is_ok_and(|l| l.contains("sent hostile case event-storm"))
    });
    assert!(
        h.ping(21, 1, 3),
        "the storming guest stopped talking\n{}",
        h.log()
    );
    assert!(
        h.ping(1, 21, 3),
        "the storming guest stopped talking\n{}",
        h.log()
    );
    let s = stats(&h);
    assert_eq!(s["fatal_errors"], 0, "{s}");
    // Two channels of a million notifications each: far fewer wake-ups.
    let events = s["events_received"].as_u64().unwrap();
    assert!(
        events < 2 * u64::from(xennet_vif::hostile::STORM_EVENTS),
        "{s}"
    );
}
