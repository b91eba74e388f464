//! Flow monitor codec tests: every form checked against `ovs-ofctl
//! ofp-print` (Open vSwitch 3.1), requests also round-tripped.

use super::*;
use crate::model::{Action, Instructions, Match};

/// What `ovs-ofctl ofp-print` prints for `bytes` (ovs-ofctl is part of
/// the test environment: its absence fails the test).
fn ofp_print(bytes: &[u8]) -> String {
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new("ovs-ofctl")
        .args(["ofp-print", &h])
        .output()
        .expect("ovs-ofctl (openvswitch-common) is needed by this test");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const VERSIONS: [u8; 4] = [1, 4, 5, 6];

fn request() -> MonitorRequest {
    MonitorRequest {
        id: 7,
        command: OFPFMC_ADD,
        flags: flags::INITIAL | flags::ADD | flags::REMOVED | flags::MODIFY | flags::INSTRUCTIONS,
        out_port: 2,
        out_group: crate::model::OFPG_ANY,
        table_id: 1,
        matcher: Match::CATCHALL,
    }
}

#[test]
fn requests_round_trip_and_print_as_ovs() {
    for v in VERSIONS {
        let mut out = Vec::new();
        encode_request(v, 9, &[request()], &mut out).unwrap();
        let h = Header::parse(&out).unwrap();
        let body = request_body(&h, &out).expect("recognized as a flow monitor request");
        assert_eq!(
            decode_requests(v, body).unwrap(),
            vec![request()],
            "version {v}"
        );
        let p = ofp_print(&out);
        assert!(
            p.contains("out_port=2")
                && p.contains("table=1")
                && p.contains("id=7 flags=initial,add,delete,modify,actions"),
            "version {v}: {p}"
        );
    }
}

#[test]
fn bad_flags_and_short_requests_are_errors_not_panics() {
    for v in VERSIONS {
        let mut r = request();
        r.flags = flags::INITIAL;
        let mut out = Vec::new();
        encode_request(v, 9, &[r], &mut out).unwrap();
        let h = Header::parse(&out).unwrap();
        let body = request_body(&h, &out).unwrap();
        assert_eq!(
            decode_requests(v, body).unwrap_err().err,
            OfError::MONITOR_BAD_FLAGS
        );
        for n in 1..body.len() {
            let _ = decode_requests(v, &body[..n]);
        }
    }
    assert!(decode_cancel(&[0, 0, 1]).is_err());
    assert_eq!(decode_cancel(&[0, 0, 1, 2]).unwrap(), 258);
}

fn full(event: UpdateEvent) -> FlowUpdate {
    FlowUpdate::Full(Box::new(FlowUpdateFull {
        event,
        table_id: 3,
        reason: if event == UpdateEvent::Removed { 2 } else { 0 },
        idle_timeout: 5,
        hard_timeout: 0,
        priority: 100,
        cookie: 0x12,
        matcher: Match::CATCHALL,
        instructions: Some(Instructions::apply(vec![Action::Output {
            port: 2,
            max_len: 0,
        }])),
    }))
}

#[test]
fn replies_print_as_ovs() {
    for v in VERSIONS {
        let mut out = Vec::new();
        let ups = [
            full(UpdateEvent::Added),
            full(UpdateEvent::Modified),
            full(UpdateEvent::Removed),
            FlowUpdate::Abbrev(0x55),
        ];
        encode_reply(v, 0, &ups, &mut out).unwrap();
        let p = ofp_print(&out);
        assert!(
            p.contains("event=ADDED table=3 idle_timeout=5 cookie=0x12 actions=output:2"),
            "version {v}: {p}"
        );
        assert!(
            p.contains("event=MODIFIED table=3 idle_timeout=5 cookie=0x12"),
            "version {v}: {p}"
        );
        assert!(
            p.contains("event=DELETED reason=delete table=3 idle_timeout=5 cookie=0x12"),
            "version {v}: {p}"
        );
        assert!(p.contains("event=ABBREV xid=0x55"), "version {v}: {p}");
        for pause in [Pause::Paused, Pause::Resumed] {
            let mut out = Vec::new();
            encode_pause(v, pause, &mut out).unwrap();
            let p = ofp_print(&out).to_uppercase();
            let want = if pause == Pause::Paused {
                "PAUSED"
            } else {
                "RESUMED"
            };
            assert!(
                p.contains(want) && !p.contains("ERROR") && !p.contains("UNKNOWN"),
                "version {v}: {p}"
            );
        }
    }
}

#[test]
fn a_large_reply_is_split_with_reply_more() {
    let ups = vec![full(UpdateEvent::Initial); 3000];
    for v in VERSIONS {
        let mut out = Vec::new();
        encode_reply(v, 4, &ups, &mut out).unwrap();
        let mut n = 0;
        let mut at = 0;
        while at < out.len() {
            let h = Header::parse(&out[at..]).unwrap();
            let more = u16::from_be_bytes([out[at + 10], out[at + 11]]) & 1 != 0;
            at += usize::from(h.length);
            assert_eq!(more, at < out.len(), "version {v}");
            n += 1;
        }
        assert!(n > 1, "version {v}");
    }
}
