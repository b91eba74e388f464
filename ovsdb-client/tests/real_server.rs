//! Against the real ovsdb-server and ovs-vsctl (Debian openvswitch-switch
//! 3.1), each test with its own database, socket and server in a temporary
//! directory (`xennet_ovsdb::test_utils`); the server is stopped by pid
//! when the test ends, also on panic.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use xennet_ovsdb::test_utils::{run, OvsdbServer as Server};
use xennet_ovsdb::{
    monitor_request, Client, ClientOptions, Datum, Error, MonitorMethod, Replica, Session,
    SessionOptions, Txn,
};

const WAIT: Duration = Duration::from_secs(60);
async fn synced_session(server: &Server, lock: Option<&str>) -> Session {
    let opts = SessionOptions {
        lock: lock.map(str::to_owned),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..SessionOptions::default()
    };
    let s = Session::start(&server.addr(), opts);
    assert!(
        s.wait_until(WAIT, |r| r.open_vswitch().is_some()).await,
        "no initial sync: {:?}",
        s.last_error()
    );
    s
}

async fn until(s: &Session, what: &str, pred: impl FnMut(&Replica) -> bool) {
    if !s.wait_until(WAIT, pred).await {
        panic!(
            "timed out waiting for {what}; replica: {:#?}",
            s.replica().ports()
        );
    }
}

/// A fresh full monitor on a new connection, as ground truth.
async fn fresh_replica(server: &Server) -> Replica {
    let (c, _n) = Client::connect(&server.addr()).await.unwrap();
    let reply = c
        .monitor_cond_since("Open_vSwitch", json!("fresh"), monitor_request(), None)
        .await
        .unwrap();
    let mut r = Replica::new();
    r.apply_monitor_reply(reply.method, &reply.result).unwrap();
    c.close();
    r
}

fn assert_same(a: &Replica, b: &Replica) {
    assert_eq!(a.open_vswitch(), b.open_vswitch());
    assert_eq!(a.bridges(), b.bridges());
    assert_eq!(a.ports(), b.ports());
    assert_eq!(a.interfaces(), b.interfaces());
    assert_eq!(a.controllers(), b.controllers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_basics() {
    let server = Server::start("basics");
    let (c, _n) = Client::connect(&server.addr()).await.unwrap();
    let dbs = c.list_dbs().await.unwrap();
    assert!(dbs.contains(&"Open_vSwitch".to_owned()) && dbs.contains(&"_Server".to_owned()));
    let schema = c.get_schema("Open_vSwitch").await.unwrap();
    for (t, ts) in &xennet_ovsdb::Schema::vswitch_subset().tables {
        for (col, ty) in &ts.columns {
            assert_eq!(
                schema.column(t, col),
                Some(ty),
                "{t}.{col} differs from the installed schema"
            );
        }
    }
    c.echo().await.unwrap();
    c.set_db_change_aware(true).await.unwrap();
    let reply = c
        .monitor_cond_since("Open_vSwitch", json!("m"), monitor_request(), None)
        .await
        .unwrap();
    assert_eq!(reply.method, MonitorMethod::CondSince);
    assert!(matches!(
        c.get_schema("nope").await,
        Err(Error::Rpc { ref error, .. }) if error.to_string().contains("unknown database")
    ));
    // A per-operation error names the operation.
    let mut t = Txn::new();
    t.comment("xennet test");
    let mut ops = vec![json!({"op": "select", "table": "Bridge", "where": []})];
    ops.push(json!({"op": "insert", "table": "Bridge", "row": {"nonexistent": 1}}));
    ops.extend(t.into_ops());
    match c.transact("Open_vSwitch", ops).await {
        Err(Error::Transaction(e)) => {
            assert_eq!((e.index, e.error.as_str()), (1, "unknown column"))
        }
        other => panic!("{other:?}"),
    }
    // The probe: a short interval is answered by the real server. (1 s,
    // not less: the server has twice the interval to answer, and a
    // loaded CI machine can stall it or us for a few hundred ms.) Two
    // probes go out in 2.5 s.
    let (c2, _n2) = Client::connect_with(
        &server.addr(),
        ClientOptions {
            probe_interval: Some(Duration::from_secs(1)),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!c2.is_closed());
    c2.echo().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_follows_ovs_vsctl() {
    let server = Server::start("follow");
    let s = synced_session(&server, None).await;
    assert!(s.with_replica(|r| r.bridges().is_empty()));

    server.vsctl_no_wait(&[
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "vif1.0",
        "tag=10",
        "--",
        "set",
        "interface",
        "vif1.0",
        "external-ids:attached-mac=00:16:3e:00:00:01",
    ]);
    until(&s, "vif1.0 tag 10", |r| {
        r.port_by_name("vif1.0").is_some_and(|p| p.tag == Some(10))
            && r.bridge_by_name("br0").is_some_and(|b| b.ports.len() == 2)
    })
    .await;
    s.with_replica(|r| {
        let p = r.port_by_name("vif1.0").unwrap();
        let i = r.interface(p.interfaces[0]).unwrap();
        assert_eq!(i.name, "vif1.0");
        assert_eq!(
            i.external_ids.get("attached-mac").map(String::as_str),
            Some("00:16:3e:00:00:01")
        );
        let b = r.bridge_by_name("br0").unwrap();
        assert!(b.ports.contains(&p.uuid));
        assert_eq!(r.open_vswitch().unwrap().bridges, [b.uuid]);
        assert_eq!(r.interface_by_name("br0").unwrap().iface_type, "internal");
    });

    server.vsctl_no_wait(&["set", "port", "vif1.0", "tag=20", "trunks=20,30"]);
    until(&s, "tag 20, trunks 20,30", |r| {
        r.port_by_name("vif1.0")
            .is_some_and(|p| p.tag == Some(20) && p.trunks == [20, 30])
    })
    .await;
    server.vsctl_no_wait(&[
        "set",
        "port",
        "vif1.0",
        "trunks=30,40",
        "vlan_mode=native-untagged",
    ]);
    until(&s, "trunks 30,40", |r| {
        r.port_by_name("vif1.0").is_some_and(|p| {
            p.trunks == [30, 40] && p.vlan_mode.as_deref() == Some("native-untagged")
        })
    })
    .await;
    server.vsctl_no_wait(&["clear", "port", "vif1.0", "tag"]);
    until(&s, "no tag", |r| {
        r.port_by_name("vif1.0").is_some_and(|p| p.tag.is_none())
    })
    .await;

    // Map diffs: add a key, change a key, remove a key.
    server.vsctl_no_wait(&[
        "set",
        "interface",
        "vif1.0",
        "external-ids:iface-id=abc",
        "external-ids:attached-mac=00:16:3e:00:00:02",
    ]);
    until(&s, "iface-id", |r| {
        r.interface_by_name("vif1.0").is_some_and(|i| {
            i.external_ids.get("iface-id").map(String::as_str) == Some("abc")
                && i.external_ids.get("attached-mac").map(String::as_str)
                    == Some("00:16:3e:00:00:02")
        })
    })
    .await;
    server.vsctl_no_wait(&[
        "remove",
        "interface",
        "vif1.0",
        "external-ids",
        "attached-mac",
    ]);
    until(&s, "attached-mac removed", |r| {
        r.interface_by_name("vif1.0")
            .is_some_and(|i| i.external_ids.len() == 1)
    })
    .await;
    server.vsctl_no_wait(&[
        "set",
        "bridge",
        "br0",
        "fail_mode=secure",
        "protocols=OpenFlow13,OpenFlow10",
    ]);
    until(&s, "fail_mode", |r| {
        r.bridge_by_name("br0").is_some_and(|b| {
            b.fail_mode.as_deref() == Some("secure") && b.protocols == ["OpenFlow10", "OpenFlow13"]
        })
    })
    .await;
    assert_same(&s.replica(), &fresh_replica(&server).await);

    server.vsctl_no_wait(&[
        "add-port", "br0", "vif2.0", "--", "del-port", "br0", "vif1.0",
    ]);
    until(&s, "vif1.0 deleted", |r| {
        r.port_by_name("vif1.0").is_none()
            && r.interface_by_name("vif1.0").is_none()
            && r.port_by_name("vif2.0").is_some()
            && r.bridge_by_name("br0").is_some_and(|b| b.ports.len() == 2)
    })
    .await;
    server.vsctl_no_wait(&["set-controller", "br0", "tcp:127.0.0.1:6653"]);
    until(&s, "controller", |r| r.controllers().len() == 1).await;
    assert_eq!(
        s.with_replica(|r| r.controllers()[0].target.clone()),
        "tcp:127.0.0.1:6653"
    );
    server.vsctl_no_wait(&["del-br", "br0"]);
    until(&s, "br0 deleted", |r| {
        r.bridges().is_empty() && r.ports().is_empty() && r.interfaces().is_empty()
    })
    .await;
    assert_same(&s.replica(), &fresh_replica(&server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_under_lock() {
    let server = Server::start("lock");
    let s = synced_session(&server, Some("ovs_vswitchd")).await;
    assert!(s.has_lock());
    // --no-wait leaves next_cfg alone; bump it as a waiting ovs-vsctl would.
    server.vsctl_no_wait(&[
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "vif1.0",
        "tag=10",
        "--",
        "set",
        "open_vswitch",
        ".",
        "next_cfg=3",
    ]);
    until(&s, "vif1.0", |r| {
        r.interface_by_name("vif1.0").is_some() && r.open_vswitch().is_some_and(|o| o.next_cfg == 3)
    })
    .await;
    let (ovs, iface) = s.with_replica(|r| {
        (
            r.open_vswitch().unwrap(),
            r.interface_by_name("vif1.0").unwrap(),
        )
    });
    assert_eq!((ovs.cur_cfg, iface.ofport), (0, None));

    let stats = [("rx_packets".to_owned(), 5), ("tx_bytes".to_owned(), 600)]
        .into_iter()
        .collect();
    let mut t = Txn::with_lock("ovs_vswitchd");
    t.interface_status(iface.uuid, Some(7), None, Some(&stats))
        .cur_cfg(ovs.uuid, ovs.next_cfg);
    let results = s.transact(t.into_ops()).await.unwrap();
    assert_eq!(xennet_ovsdb::transact::count(&results[0]), Some(1));

    assert_eq!(
        server.vsctl_no_wait(&["get", "interface", "vif1.0", "ofport"]),
        "7"
    );
    assert_eq!(
        server.vsctl_no_wait(&["get", "open_vswitch", ".", "cur_cfg"]),
        ovs.next_cfg.to_string()
    );
    assert_eq!(
        server.vsctl_no_wait(&["get", "interface", "vif1.0", "statistics:tx_bytes"]),
        "600"
    );
    until(&s, "own write-back", |r| {
        r.interface(iface.uuid)
            .is_some_and(|i| i.ofport == Some(7) && i.statistics.get("rx_packets") == Some(&5))
            && r.open_vswitch().is_some_and(|o| o.cur_cfg == ovs.next_cfg)
    })
    .await;

    // An error string, and clearing it again.
    let mut t = Txn::with_lock("ovs_vswitchd");
    t.interface_status(
        iface.uuid,
        Some(-1),
        Some("could not open network device vif1.0"),
        None,
    );
    s.transact(t.into_ops()).await.unwrap();
    assert_eq!(
        server.vsctl_no_wait(&["get", "interface", "vif1.0", "error"]),
        "\"could not open network device vif1.0\""
    );

    // Another client without the lock is refused...
    let (other, mut other_notes) = Client::connect(&server.addr()).await.unwrap();
    assert!(!other.lock("ovs_vswitchd").await.unwrap());
    let mut t = Txn::with_lock("ovs_vswitchd");
    t.cur_cfg(ovs.uuid, 0);
    match other.transact("Open_vSwitch", t.into_ops()).await {
        Err(Error::Transaction(e)) => assert_eq!(e.error, "not owner"),
        r => panic!("{r:?}"),
    }
    // ...until it steals the lock; then our session is the one refused.
    other.unlock("ovs_vswitchd").await.unwrap();
    assert!(other.steal("ovs_vswitchd").await.unwrap());
    assert!(s.wait(WAIT, |s| !s.has_lock()).await, "lock not stolen");
    let mut t = Txn::with_lock("ovs_vswitchd");
    t.cur_cfg(ovs.uuid, 0);
    assert!(matches!(
        s.transact(t.into_ops()).await,
        Err(Error::Transaction(_))
    ));
    // Give it back: the session, still queued for the lock, gets `locked`.
    other.unlock("ovs_vswitchd").await.unwrap();
    assert!(s.wait(WAIT, Session::has_lock).await, "lock not regained");
    drop(other_notes.try_recv());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ovs_vsctl_returns_when_we_ack_cur_cfg() {
    let server = Server::start("ack");
    let s = std::sync::Arc::new(synced_session(&server, Some("ovs_vswitchd")).await);

    // Play the daemon: whenever next_cfg > cur_cfg, report an ofport for
    // each interface still without one, then cur_cfg := next_cfg, in one
    // transaction under the lock (as ovs-vswitchd does).
    let daemon = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut changes = s.subscribe();
            let mut next_ofport = 1;
            loop {
                let todo = s.with_replica(|r| {
                    let ovs = r.open_vswitch()?;
                    (ovs.next_cfg > ovs.cur_cfg).then(|| {
                        let new: Vec<_> = r
                            .interfaces()
                            .into_iter()
                            .filter(|i| i.ofport.is_none())
                            .collect();
                        (ovs, new)
                    })
                });
                if let Some((ovs, new)) = todo {
                    let mut t = Txn::with_lock("ovs_vswitchd");
                    for i in new {
                        let port = if i.iface_type == "internal" {
                            65534
                        } else {
                            next_ofport += 1;
                            next_ofport - 1
                        };
                        t.interface_status(i.uuid, Some(port), None, None);
                    }
                    t.cur_cfg(ovs.uuid, ovs.next_cfg);
                    s.transact(t.into_ops()).await.unwrap();
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
    };

    let addr = server.addr();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args([
                "20",
                "ovs-vsctl",
                &format!("--db={addr}"),
                "add-br",
                "brX",
                "--",
                "add-port",
                "brX",
                "vif3.0",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ovs-vsctl without --no-wait: {} {stderr}",
        out.status
    );
    assert!(!stderr.contains("Error detected"), "{stderr}");
    assert_eq!(
        server.vsctl_no_wait(&["get", "interface", "brX", "ofport"]),
        "65534"
    );
    assert_eq!(
        server.vsctl_no_wait(&["get", "interface", "vif3.0", "ofport"]),
        "1"
    );
    let cfg = server.vsctl_no_wait(&["get", "open_vswitch", ".", "cur_cfg"]);
    assert_eq!(
        cfg,
        server.vsctl_no_wait(&["get", "open_vswitch", ".", "next_cfg"])
    );
    daemon.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reconnects_and_resyncs_after_server_restart() {
    let server = Server::start("restart");
    let s = synced_session(&server, Some("ovs_vswitchd")).await;
    assert_eq!(s.syncs(), 1);
    server.vsctl_no_wait(&["add-br", "br0", "--", "add-port", "br0", "vif1.0", "tag=10"]);
    until(&s, "br0", |r| r.port_by_name("vif1.0").is_some()).await;

    server.stop();
    assert!(
        s.wait(WAIT, |s| !s.is_connected()).await,
        "session did not notice the server going away"
    );
    assert!(matches!(s.transact(vec![]).await, Err(Error::Disconnected)));

    // Change the database while the server is down, behind the session's back.
    run(Command::new("ovsdb-tool").arg("transact").arg(server.path("conf.db")).arg(
        json!(["Open_vSwitch",
            {"op": "update", "table": "Port", "where": [["name", "==", "vif1.0"]], "row": {"tag": 99}},
            {"op": "update", "table": "Bridge", "where": [["name", "==", "br0"]],
             "row": {"external_ids": ["map", [["offline", "yes"]]]}}])
        .to_string(),
    ));
    // Let a few reconnect attempts fail (backoff), then bring it back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.syncs(), 1);
    server.launch();

    until(&s, "resync", |r| {
        r.port_by_name("vif1.0").is_some_and(|p| p.tag == Some(99))
            && r.bridge_by_name("br0")
                .is_some_and(|b| b.external_ids.contains_key("offline"))
    })
    .await;
    assert_eq!(s.syncs(), 2);
    assert!(s.is_connected());
    assert!(s.wait(WAIT, Session::has_lock).await, "lock not retaken");

    // And it keeps following.
    server.vsctl_no_wait(&["add-br", "br1"]);
    until(&s, "br1", |r| r.bridge_by_name("br1").is_some()).await;
    let ovs = s.with_replica(|r| r.open_vswitch().unwrap());
    let mut t = Txn::with_lock("ovs_vswitchd");
    t.cur_cfg(ovs.uuid, ovs.next_cfg);
    s.transact(t.into_ops()).await.unwrap();
    assert_same(&s.replica(), &fresh_replica(&server).await);
    assert_eq!(Datum::set([99]).to_json(), json!(99));
}
