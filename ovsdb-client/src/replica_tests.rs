//! The replica against real ovsdb-server traffic recorded in
//! `shared/captures` (see shared/PEERS.md §2).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::*;

fn capture(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (recorded OVSDB traffic in tests/data)"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

/// Replays `<prefix>.server-to-<peer>.jsonl` into a replica, using the
/// client's requests to know which replies are monitors of `Open_vSwitch`
/// and which monitor id its notifications carry. Returns the replica after
/// each applied message, with the message's line number.
fn replay(requests: &str, replies: &str) -> Vec<(usize, Replica)> {
    let mut monitors: HashMap<i64, (MonitorMethod, Value)> = HashMap::new();
    for r in capture(requests) {
        let method = match r["method"].as_str() {
            Some("monitor") => MonitorMethod::Plain,
            Some("monitor_cond") => MonitorMethod::Cond,
            Some("monitor_cond_since") => MonitorMethod::CondSince,
            _ => continue,
        };
        if r["params"][0] == "Open_vSwitch" {
            monitors.insert(r["id"].as_i64().unwrap(), (method, r["params"][1].clone()));
        }
    }
    assert_eq!(monitors.len(), 1, "one Open_vSwitch monitor in {requests}");
    let monid = monitors.values().next().unwrap().1.clone();
    let mut replica = Replica::new();
    let mut out = Vec::new();
    for (line, m) in capture(replies).into_iter().enumerate() {
        if let Some((method, _)) = m["id"].as_i64().and_then(|id| monitors.get(&id)) {
            replica.apply_monitor_reply(*method, &m["result"]).unwrap();
        } else if m["id"].is_null() && m["params"][0] == monid {
            assert!(replica
                .apply_notification(m["method"].as_str().unwrap(), &m["params"])
                .unwrap());
        } else {
            continue;
        }
        out.push((line, replica.clone()));
    }
    out
}

fn at(states: &[(usize, Replica)], line: usize) -> &Replica {
    &states
        .iter()
        .find(|(l, _)| *l == line)
        .unwrap_or_else(|| panic!("line {line} not applied"))
        .1
}

#[test]
fn vswitchd_session_from_capture() {
    let s = replay(
        "vswitchd-db.vswitchd-to-server.jsonl",
        "vswitchd-db.server-to-vswitchd.jsonl",
    );
    let ovs_uuid = uuid("042d67fa-f050-41a2-bbd8-cdf6ad2fa133");
    let br0 = uuid("800fdeb7-913e-40ad-a98c-10969e1348dd");
    let p_br0 = uuid("f54913f5-56a4-4d53-8b6c-1ad2a96adc2d");
    let p_vif = uuid("9b4cd586-966f-40d2-a5d0-09bab77ffa69");
    let i_br0 = uuid("0f4a8fbf-dcd1-46f8-87ea-aa15600bfa3d");
    let i_vif = uuid("e613bdcd-4bf2-4d0b-ae07-db6ebf691736");

    // Line 3: the monitor_cond_since reply: the Open_vSwitch row, all defaults.
    let r = at(&s, 3);
    assert_eq!(
        r.last_txn_id(),
        Some("00000000-0000-0000-0000-000000000000")
    );
    let ovs = r.open_vswitch().unwrap();
    assert_eq!((ovs.uuid, ovs.cur_cfg, ovs.next_cfg), (ovs_uuid, 0, 0));
    assert!(ovs.bridges.is_empty() && ovs.external_ids.is_empty());

    // Line 5: an unmonitored-by-us column is kept untyped.
    let r = at(&s, 5);
    assert_eq!(
        r.get("Open_vSwitch", ovs_uuid, "datapath_types")
            .unwrap()
            .strings(),
        ["dummy", "netdev", "system"]
    );

    // Line 9: add-br br0 (insert omits defaults).
    let r = at(&s, 9);
    let b = r.bridge_by_name("br0").unwrap();
    assert_eq!(
        (b.uuid, b.datapath_type.as_str(), b.ports.clone()),
        (br0, "dummy", vec![p_br0])
    );
    assert_eq!(b.fail_mode, None);
    assert!(b.controller.is_empty() && b.protocols.is_empty());
    assert_eq!(r.port(p_br0).unwrap().interfaces, [i_br0]);
    assert_eq!(r.port(p_br0).unwrap().tag, None);
    let i = r.interface(i_br0).unwrap();
    assert_eq!(
        (i.name.as_str(), i.iface_type.as_str(), i.ofport),
        ("br0", "internal", None)
    );
    let ovs = r.open_vswitch().unwrap();
    assert_eq!(
        (ovs.bridges.clone(), ovs.cur_cfg, ovs.next_cfg),
        (vec![br0], 0, 1)
    );

    // Line 10: vswitchd's write-back: ofport, statistics map, cur_cfg.
    let r = at(&s, 10);
    let i = r.interface(i_br0).unwrap();
    assert_eq!(i.ofport, Some(65534));
    assert_eq!(i.statistics.len(), 10);
    assert_eq!(i.statistics["rx_packets"], 0);
    assert_eq!(r.open_vswitch().unwrap().cur_cfg, 1);
    assert_eq!(
        r.get("Bridge", br0, "datapath_id").unwrap().as_str(),
        Some("0000b6de0f80ad40")
    );

    // Line 14: add-port br0 vif1.0 tag=10: ports gains one (diff = the new uuid).
    let r = at(&s, 14);
    assert_eq!(r.bridge(br0).unwrap().ports, {
        let mut v = vec![p_br0, p_vif];
        v.sort();
        v
    });
    let p = r.port_by_name("vif1.0").unwrap();
    assert_eq!(
        (p.uuid, p.tag, p.interfaces.clone(), p.trunks.clone()),
        (p_vif, Some(10), vec![i_vif], vec![])
    );
    assert_eq!(r.interface(i_vif).unwrap().iface_type, "dummy");
    assert_eq!(r.open_vswitch().unwrap().next_cfg, 2);

    // Line 15.
    let r = at(&s, 15);
    assert_eq!(r.interface_by_name("vif1.0").unwrap().ofport, Some(1));
    assert_eq!(r.open_vswitch().unwrap().cur_cfg, 2);

    // Line 18: set-controller.
    let r = at(&s, 18);
    let c = r.controllers();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].target, "ptcp:0:127.0.0.1");
    assert!(!c[0].is_connected);
    assert_eq!(r.bridge(br0).unwrap().controller, [c[0].uuid]);

    // Line 21: del-port vif1.0: the diff removes it; rows deleted.
    let r = at(&s, 21);
    assert_eq!(r.bridge(br0).unwrap().ports, [p_br0]);
    assert!(r.port(p_vif).is_none() && r.interface(i_vif).is_none());
    assert_eq!(r.len("Port"), 1);
    assert_eq!(r.len("Interface"), 1);

    // End: cur_cfg caught up.
    let ovs = s.last().unwrap().1.open_vswitch().unwrap();
    assert_eq!((ovs.cur_cfg, ovs.next_cfg), (4, 4));
}

#[test]
fn ovs_vsctl_session_from_capture() {
    let s = replay(
        "ovs-vsctl-wait.client-to-server.jsonl",
        "ovs-vsctl-wait.server-to-client.jsonl",
    );
    let r = at(&s, 2);
    let names: Vec<String> = r.bridges().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["br8", "br9"]);
    let br9 = r.bridge_by_name("br9").unwrap();
    assert_eq!(
        br9.ports,
        [
            uuid("c950be5b-6d85-4a3a-8264-ee2af3c6c13b"),
            uuid("ec2abb1a-d360-4462-a1fc-c41004608ca0")
        ]
    );
    let vif = r.port_by_name("vif1.0").unwrap();
    assert_eq!(vif.tag, Some(10));
    assert_eq!(r.interface(vif.interfaces[0]).unwrap().name, "vif1.0");
    // No daemon ran: ofport was never written.
    assert!(r
        .interfaces()
        .iter()
        .all(|i| i.ofport.is_none() && i.error.is_none()));
    assert_eq!(r.open_vswitch().unwrap().bridges.len(), 2);

    let r = at(&s, 3);
    let capbr3 = r.bridge_by_name("capbr3").unwrap();
    assert_eq!(capbr3.uuid, uuid("cff5982b-c4fb-4c56-8194-a9c404ded508"));
    assert_eq!(capbr3.ports, [uuid("8fe435c2-f652-4ca7-a6dc-89c881259637")]);
    assert_eq!(r.open_vswitch().unwrap().bridges.len(), 3);
    assert!(r.open_vswitch().unwrap().bridges.contains(&capbr3.uuid));

    let r = &s.last().unwrap().1;
    assert_eq!(r.open_vswitch().unwrap().cur_cfg, 2);
}

#[test]
fn monitor_cond_update2_from_capture() {
    let s = replay(
        "ovsdb-monitor-cond.client-to-server.jsonl",
        "ovsdb-monitor-cond.server-to-client.jsonl",
    );
    let names = |r: &Replica| r.bridges().into_iter().map(|b| b.name).collect::<Vec<_>>();
    assert_eq!(names(at(&s, 4)), ["br8", "br9"]);
    let r = at(&s, 5);
    assert_eq!(names(r), ["br8", "br9", "capbr2"]);
    assert_eq!(r.bridge_by_name("capbr2").unwrap().datapath_type, "netdev");
    let r = at(&s, 6);
    let b = r.bridge_by_name("capbr2").unwrap();
    assert_eq!(b.datapath_type, "system");
    assert_eq!(
        b.external_ids,
        BTreeMap::from([("foo".to_owned(), "bar".to_owned())])
    );
    assert_eq!(names(at(&s, 7)), ["br8", "br9"]);
}

#[test]
fn plain_monitor_update_from_capture() {
    let s = replay(
        "ovsdb-monitor.client-to-server.jsonl",
        "ovsdb-monitor.server-to-client.jsonl",
    );
    let r = at(&s, 3);
    assert_eq!(
        r.ports()
            .into_iter()
            .map(|p| (p.name, p.tag))
            .collect::<Vec<_>>(),
        [
            ("br8".to_owned(), None),
            ("br9".to_owned(), None),
            ("vif1.0".to_owned(), Some(10))
        ]
    );
    let r = at(&s, 4);
    assert_eq!(r.port_by_name("capvif").unwrap().tag, Some(10));
    let r = at(&s, 5);
    let p = r.port_by_name("capvif").unwrap();
    assert_eq!((p.tag, p.trunks), (Some(11), vec![1, 2]));
    let r = at(&s, 6);
    assert_eq!(r.len("Port"), 3);
    assert!(r.port_by_name("capvif").is_none() && r.port_by_name("capbr").is_none());
}

#[test]
fn modify_rules_and_errors() {
    let mut r = Replica::new();
    let u = "00000000-0000-0000-0000-000000000001";
    r.apply_update2(
        &json!({"Port": {u: {"insert": {"name": "p", "trunks": ["set", [1, 2]],
        "external_ids": ["map", [["a", "1"], ["b", "2"]]]}}}}),
    )
    .unwrap();
    // tag [] -> 5 (optional column: new value); trunks diff {2,3}; map: remove a, change b, add c.
    r.apply_update2(
        &json!({"Port": {u: {"modify": {"tag": 5, "trunks": ["set", [2, 3]],
        "external_ids": ["map", [["a", "1"], ["b", "3"], ["c", "4"]]]}}}}),
    )
    .unwrap();
    let p = r.port(uuid(u)).unwrap();
    assert_eq!((p.tag, p.trunks), (Some(5), vec![1, 3]));
    assert_eq!(
        p.external_ids.into_iter().collect::<Vec<_>>(),
        [
            ("b".to_owned(), "3".to_owned()),
            ("c".to_owned(), "4".to_owned())
        ]
    );
    // Not composite (max 1): the new value, as ovsdb-server 3.1 sends it
    // (seen in tests/real_server.rs): 5 -> 7 arrives as 7, 7 -> none as [].
    r.apply_update2(&json!({"Port": {u: {"modify": {"tag": 7}}}}))
        .unwrap();
    assert_eq!(r.port(uuid(u)).unwrap().tag, Some(7));
    r.apply_update2(&json!({"Port": {u: {"modify": {"tag": ["set", []]}}}}))
        .unwrap();
    assert_eq!(r.port(uuid(u)).unwrap().tag, None);
    // A composite column with one changed element: bare atom = diff of one.
    r.apply_update2(&json!({"Port": {u: {"modify": {"trunks": 3}}}}))
        .unwrap();
    assert_eq!(r.port(uuid(u)).unwrap().trunks, [1]);
    // A scalar is replaced, not diffed.
    r.apply_update2(&json!({"Port": {u: {"modify": {"name": "q"}}}}))
        .unwrap();
    assert_eq!(r.port(uuid(u)).unwrap().name, "q");

    assert!(r
        .apply_update2(&json!({"Port": {"00000000-0000-0000-0000-000000000002": {"modify": {}}}}))
        .is_err());
    assert!(r
        .apply_update2(&json!({"Port": {u: {"frob": {}}}}))
        .is_err());
    assert!(r
        .apply_update2(&json!({"Port": {"nope": {"delete": null}}}))
        .is_err());
    assert!(r
        .apply_update2(&json!({"Port": {u: {"modify": {"tag": "x"}}}}))
        .is_err());
    assert!(r.apply_notification("update3", &json!([null])).is_err());
    assert!(!r
        .apply_notification("locked", &json!(["ovs_vswitchd"]))
        .unwrap());

    // monitor_cond_since with found=true keeps rows; found=false clears.
    r.apply_monitor_reply(MonitorMethod::CondSince, &json!([true, "t1", {}]))
        .unwrap();
    assert_eq!((r.len("Port"), r.last_txn_id()), (1, Some("t1")));
    r.apply_monitor_reply(MonitorMethod::CondSince, &json!([false, "t2", {}]))
        .unwrap();
    assert_eq!(r.len("Port"), 0);
}

#[test]
fn monitor_request_covers_schema_subset() {
    let req = monitor_request();
    let schema = Schema::vswitch_subset();
    for (t, cols) in MONITORED {
        assert_eq!(req[t][0]["columns"].as_array().unwrap().len(), cols.len());
        for c in *cols {
            assert!(
                schema.column(t, c).is_some(),
                "{t}.{c} missing from the built-in schema"
            );
        }
    }
    assert_eq!(
        schema
            .tables
            .values()
            .map(|t| t.columns.len())
            .sum::<usize>(),
        MONITORED.iter().map(|(_, c)| c.len()).sum::<usize>()
    );
}
