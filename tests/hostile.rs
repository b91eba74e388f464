//! Hostile frontends never take the switch down: each misbehaving guest
//! gets its vif disabled (protocol violations) or its packet dropped with a
//! counter (bad packets), with one clear log line, while the well-behaved
//! guests keep pinging each other.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

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

/// Registrations carrying 40 descriptors (more than any needs: the control
/// message is truncated, MSG_CTRUNC) are refused, counted, and every
/// descriptor they brought is closed: xennetd's descriptor count comes
/// back to where it was, and a normal guest still registers afterwards.
#[test]
fn registrations_with_too_many_descriptors_leak_none() {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    const MESSAGES: usize = 100;
    let mut h = Harness::start("fds");
    h.appctl(&["version"]);
    let before = h.daemon_fds();
    let null = std::fs::File::open("/dev/null").unwrap();
    let fds = [null.as_raw_fd(); 40];
    let msg = b"{\"register\":true,\"domid\":5,\"nr_frames\":514,\"nr_grants\":1024,\"event_channel\":1}\n";
    for i in 0..MESSAGES {
        let s = UnixStream::connect(h.rundir.join("xennet-xen.sock")).unwrap();
        // A leak runs xennetd out of descriptors: then no reply comes.
        s.set_read_timeout(Some(common::WAIT)).unwrap();
        let iov = [std::io::IoSlice::new(msg)];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(s.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).unwrap();
        let mut reply = String::new();
        (&s).read_to_string(&mut reply)
            .unwrap_or_else(|e| panic!("message {i}: no reply ({e}); xennetd log:\n{}", h.log()));
        assert!(
            reply.contains("too many file descriptors"),
            "message {i}: {reply}"
        );
    }
    h.wait_for("xennetd's descriptors to come back to their count", || {
        h.daemon_fds() <= before
    });
    let coverage = h.appctl(&["coverage/show"]);
    assert!(
        coverage.contains(&format!("emulxen_fds_truncated      total: {MESSAGES}")),
        "{coverage}"
    );
    let lines = h
        .log()
        .lines()
        .filter(|l| l.contains("too many file descriptors"))
        .count();
    assert!(
        (1..MESSAGES).contains(&lines),
        "{lines} log lines: want them rate-limited"
    );
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    assert!(h.ping(1, 2, 2), "{}", h.log());
}

/// xennetd out of descriptors (RLIMIT_NOFILE lowered to a few more than it
/// has open, then idle unixctl connections until accept fails with
/// EMFILE) logs, backs off and goes on: once the connections close it
/// still answers `version`.
#[test]
fn unixctl_survives_running_out_of_descriptors() {
    let h = Harness::start("emfile");
    h.appctl(&["version"]);
    let pid = h.daemon_pid().to_string();
    let limit = h.daemon_fds() + 16;
    common::run_ok(
        "prlimit",
        &["--pid", &pid, &format!("--nofile={limit}:{limit}")],
    );
    let ctl = h.rundir.join(format!("ovs-vswitchd.{pid}.ctl"));
    // Fewer than the listen backlog beyond the limit, so that every
    // connect completes while xennetd cannot accept.
    let conns: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(&ctl).unwrap())
        .collect();
    h.wait_for("accept to fail with EMFILE", || {
        h.log().contains("Too many open files") || !h.daemon_alive()
    });
    assert!(h.daemon_alive(), "xennetd exited:\n{}", h.log());
    drop(conns);
    let v = h.appctl(&["version"]);
    assert!(v.starts_with("xennetd "), "{v}");
    assert!(h.daemon_alive(), "xennetd exited:\n{}", h.log());
}

/// Slow handshakes (a byte every 100 ms, never a whole request) hold at
/// most 64 handshake slots and each for at most its 5 s deadline, which
/// the trickle does not extend: a connection beyond the slots is closed at
/// once (counted), every slow one is closed at its deadline (counted),
/// and then guests register and talk.
#[test]
fn slow_handshakes_are_capped_and_cut_at_their_deadline() {
    const SLOTS: usize = 64;
    let mut h = Harness::start("slowhs");
    h.appctl(&["version"]);
    let sock = h.rundir.join("xennet-xen.sock");
    let mut slow: Vec<UnixStream> = (0..SLOTS)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    // Each slot taken: one more is closed without a word.
    h.wait_for("the extra connection to be refused", || {
        let mut extra = UnixStream::connect(&sock).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut b = [0u8; 64];
        matches!(extra.read(&mut b), Ok(0))
    });
    let started = std::time::Instant::now();
    // Trickle bytes until every slow connection has been cut.
    let mut cut = [false; SLOTS];
    while cut.iter().any(|c| !c) {
        assert!(
            started.elapsed() < common::WAIT,
            "slow handshakes still open after 60 s; xennetd log:\n{}",
            h.log()
        );
        for (i, s) in slow.iter_mut().enumerate() {
            if !cut[i] && s.write_all(b" ").is_err() {
                cut[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let coverage = h.appctl(&["coverage/show"]);
    assert!(
        coverage.contains(&format!("emulxen_handshakes_timed_out total: {SLOTS}")),
        "{coverage}"
    );
    assert!(
        !coverage.contains("emulxen_handshakes_refused total: 0\n"),
        "{coverage}"
    );
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    assert!(h.ping(1, 2, 2), "{}", h.log());
}
