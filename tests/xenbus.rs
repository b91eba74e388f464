//! The xenbus side of emulated Xen: xennetd's in-process emulated
//! xenstored, checked with Debian's real xenstore clients
//! (xenstore-utils) through `XENSTORED_PATH`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Harness;

/// Run a real xenstore client tool against the harness's xenstored.
fn xs_tool(h: &Harness, tool: &str, args: &[&str]) -> std::process::Output {
    Command::new(tool)
        .args(args)
        .env("XENSTORED_PATH", h.rundir.join("xenstored.sock"))
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool}: {e}: apt-get install xenstore-utils (scripts/test installs it)")
        })
}

#[test]
fn xennetd_serves_xenstore_to_real_clients() {
    let h = Harness::start("xsd");
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xennetd's emulated xenstored socket", || sock.exists());
    let w = xs_tool(&h, "xenstore-write", &["/tool/xennet-test", "hello"]);
    assert!(w.status.success(), "{w:?}");
    let r = xs_tool(&h, "xenstore-read", &["/tool/xennet-test"]);
    assert!(r.status.success(), "{r:?}");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "hello");
    let ls = xs_tool(&h, "xenstore-ls", &["/"]);
    assert!(ls.status.success(), "{ls:?}");
    let out = String::from_utf8_lossy(&ls.stdout);
    assert!(
        out.contains("local") && out.contains("xennet-test"),
        "{out}"
    );
}

fn xs_read(h: &Harness, path: &str) -> String {
    let o = xs_tool(h, "xenstore-read", &[path]);
    if o.status.success() {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    } else {
        String::new()
    }
}

/// xennetd with guests 1 and 2 set up through its emulated xenstored.
fn start_with_two_guests(tag: &str) -> Harness {
    let mut h = Harness::start(tag);
    h.wait_for("xenstored socket", || {
        h.rundir.join("xenstored.sock").exists()
    });
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    h
}

/// Guests set up through xenstore as on Xen: the tree as Debian's
/// xenstore-ls shows it, traffic, then a clean close.
#[test]
fn guests_connect_through_xenstore_and_close() {
    let mut h = start_with_two_guests("xsg");
    for d in 1..=2 {
        let be = format!("/local/domain/0/backend/vif/{d}/0");
        let fe = format!("/local/domain/{d}/device/vif/0");
        assert_eq!(xs_read(&h, &format!("{be}/state")), "4", "{}", h.log());
        assert_eq!(xs_read(&h, &format!("{fe}/state")), "4", "{}", h.log());
        assert_eq!(xs_read(&h, &format!("{be}/hotplug-status")), "connected");
        for (k, v) in [
            ("feature-sg", "1"),
            ("feature-rx-copy", "1"),
            ("feature-rx-flip", "0"),
            ("feature-gso-tcpv4", "1"),
            ("multi-queue-max-queues", "8"),
            ("feature-split-event-channels", "1"),
        ] {
            assert_eq!(xs_read(&h, &format!("{be}/{k}")), v, "{be}/{k}");
        }
        assert_eq!(xs_read(&h, &format!("{be}/frontend")), fe);
        assert_eq!(xs_read(&h, &format!("{fe}/backend")), be);
        assert_eq!(xs_read(&h, &format!("{fe}/request-rx-copy")), "1");
        assert_eq!(xs_read(&h, &format!("{fe}/event-channel")), "1");
    }
    let ls = xs_tool(&h, "xenstore-ls", &["-p", "/local/domain/0/backend/vif"]);
    let ls = String::from_utf8_lossy(&ls.stdout).to_string();
    assert!(ls.contains("hotplug-status = \"connected\""), "{ls}");
    let ls = xs_tool(&h, "xenstore-ls", &["-p", "/local/domain/1/device/vif/0"]);
    let ls = String::from_utf8_lossy(&ls.stdout).to_string();
    // libxl's permissions: owned by the guest, readable by the backend.
    assert!(ls.contains("(n1,r0)"), "{ls}");
    assert!(h.ping(1, 2, 2), "ping 1 -> 2 failed\n{}", h.log());
    assert!(h.ping(2, 1, 2), "ping 2 -> 1 failed\n{}", h.log());
    // A guest on the older all-in-one attach shares the bridge.
    h.guest_with(3, &["--legacy-attach"]);
    assert!(h.ping(3, 1, 2), "ping 3 -> 1 failed\n{}", h.log());
    assert_eq!(xs_read(&h, "/local/domain/0/backend/vif/3/0/state"), "");
    let table = h.appctl(&["xennet/vif-show"]);
    assert!(
        table.contains("vif1.0") && table.contains("vif2.0"),
        "{table}"
    );

    // Guest 2 shuts down cleanly: both ends Closed (the guest waits for
    // the backend's Closed before it says so), the vif off the bridge,
    // then, the domain gone, its directories removed as the toolstack
    // would.
    let st = h.stop_guest(2);
    assert!(st.success(), "guest 2 exited with {st}");
    let glog = std::fs::read_to_string(h.rundir.join("guest2.log")).unwrap();
    assert!(glog.contains("domain 2 closed"), "{glog}");
    h.wait_for("vif2.0 to leave the bridge", || {
        !h.appctl(&["xennet/vif-show"]).contains("vif2.0")
    });
    h.wait_for("guest 2's vif directories to go", || {
        xs_read(&h, "/local/domain/2/device/vif/0/state").is_empty()
            && xs_read(&h, "/local/domain/0/backend/vif/2/0/state").is_empty()
    });
    assert!(h.ping_fails(1, 2));
}

/// A guest that dies without closing (SIGKILL): xennetd, as the toolstack
/// would on domain death, removes its vif directories, and the backend
/// takes the vif off the bridge. The same domain id can then start again.
#[test]
fn a_dead_guest_is_cleaned_up_and_can_come_back() {
    let mut h = start_with_two_guests("xsk");
    assert!(h.ping(1, 2, 1), "{}", h.log());
    h.kill_guest(2);
    h.wait_for("vif2.0's directories to go", || {
        !xs_tool(&h, "xenstore-exists", &["/local/domain/0/backend/vif/2/0"])
            .status
            .success()
            && !xs_tool(&h, "xenstore-exists", &["/local/domain/2/device/vif/0"])
                .status
                .success()
    });
    h.wait_for("vif2.0 to leave the bridge", || {
        !h.appctl(&["xennet/vif-show"]).contains("vif2.0")
    });
    // Guest 2's namespace is still there (only the process died): start
    // the domain again in a fresh one.
    let _ = Command::new("ip")
        .args(["netns", "del", &h.netns(2)])
        .status();
    h.guest_xenstore(2);
    assert_eq!(
        xs_read(&h, "/local/domain/0/backend/vif/2/0/state"),
        "4",
        "{}",
        h.log()
    );
    assert!(h.ping(1, 2, 2), "ping after restart failed\n{}", h.log());
}

/// The frontend's keys and state changed behind the guest's back with
/// Debian's xenstore-write: starting over releases the vif's rings (its
/// port stays on the bridge) and reconnects it cleanly, and an
/// unsupported queue count is refused with an error node and backend
/// state Closing, the rings released.
#[test]
fn frontend_restart_and_refusal_through_xenstore() {
    let h = start_with_two_guests("xsr");
    let be = "/local/domain/0/backend/vif/2/0";
    let fe = "/local/domain/2/device/vif/0";
    let vif2_on_bridge = |h: &Harness| h.appctl(&["xennet/vif-show"]).contains("vif2.0");
    // What the backend holds of domain 2 (its rings while connected).
    let held = |h: &Harness| {
        h.appctl(&["xennet/domain-show"])
            .lines()
            .find(|l| l.starts_with("domain 2:"))
            .unwrap_or_default()
            .to_string()
    };
    let connected = "domain 2: ring-mappings:2 grant-handles:1 bound-channels:1";
    let released = "domain 2: ring-mappings:0 grant-handles:0 bound-channels:0";
    assert!(vif2_on_bridge(&h));
    assert_eq!(held(&h), connected);

    // Start over: Closing, Closed, InitWait; the vif releases its rings
    // but keeps its port, as Linux netback keeps its netdev.
    assert!(
        xs_tool(&h, "xenstore-write", &[&format!("{fe}/state"), "1"])
            .status
            .success()
    );
    h.wait_for("backend InitWait", || {
        xs_read(&h, &format!("{be}/state")) == "2"
    });
    h.wait_for("vif2.0's rings released", || held(&h) == released);
    assert!(vif2_on_bridge(&h));
    // Connected again on the same rings.
    assert!(
        xs_tool(&h, "xenstore-write", &[&format!("{fe}/state"), "4"])
            .status
            .success()
    );
    h.wait_for("backend Connected", || {
        xs_read(&h, &format!("{be}/state")) == "4"
    });
    assert!(vif2_on_bridge(&h));
    assert_eq!(held(&h), connected);
    assert!(h.ping(1, 2, 2), "ping after reconnect failed\n{}", h.log());

    // Nine queues are more than the 8 advertised: refused, not connected.
    assert!(
        xs_tool(&h, "xenstore-write", &[&format!("{fe}/state"), "1"])
            .status
            .success()
    );
    h.wait_for("backend InitWait", || {
        xs_read(&h, &format!("{be}/state")) == "2"
    });
    assert!(xs_tool(
        &h,
        "xenstore-write",
        &[
            &format!("{fe}/multi-queue-num-queues"),
            "9",
            &format!("{fe}/state"),
            "3"
        ]
    )
    .status
    .success());
    h.wait_for("backend Closing", || {
        xs_read(&h, &format!("{be}/state")) == "5"
    });
    let err = xs_read(&h, "/local/domain/0/error/backend/vif/2/0/error");
    assert!(err.contains("9 queues"), "{err}");
    assert_eq!(held(&h), released);

    // Zero queues, and two queues whose queue-1 keys are missing: the
    // same.
    for (n, why) in [
        ("0", "needs a queue"),
        ("2", "queue-0/tx-ring-ref is missing"),
    ] {
        assert!(
            xs_tool(&h, "xenstore-write", &[&format!("{fe}/state"), "1"])
                .status
                .success()
        );
        h.wait_for("backend InitWait", || {
            xs_read(&h, &format!("{be}/state")) == "2"
        });
        assert!(xs_tool(
            &h,
            "xenstore-write",
            &[
                &format!("{fe}/multi-queue-num-queues"),
                n,
                &format!("{fe}/state"),
                "3"
            ]
        )
        .status
        .success());
        h.wait_for("backend Closing", || {
            xs_read(&h, &format!("{be}/state")) == "5"
        });
        let err = xs_read(&h, "/local/domain/0/error/backend/vif/2/0/error");
        assert!(err.contains(why), "{n} queues: {err}");
        assert_eq!(held(&h), released);
    }
}

/// Multi-queue and split-channel guests through xenstore: the per-queue
/// keys as Debian's xenstore-read sees them, and traffic.
#[test]
fn multi_queue_and_split_channel_guests_connect() {
    let mut h = Harness::start("xsq");
    h.wait_for("xenstored socket", || {
        h.rundir.join("xenstored.sock").exists()
    });
    h.guest_with(1, &["--queues", "4", "--split-evtchn"]);
    h.guest_with(2, &["--split-evtchn"]);
    h.guest_with(3, &["--queues", "2"]);
    let fe = |d: u16| format!("/local/domain/{d}/device/vif/0");
    assert_eq!(
        xs_read(&h, &format!("{}/multi-queue-num-queues", fe(1))),
        "4"
    );
    for q in 0..4 {
        for k in [
            "tx-ring-ref",
            "rx-ring-ref",
            "event-channel-tx",
            "event-channel-rx",
        ] {
            let v = xs_read(&h, &format!("{}/queue-{q}/{k}", fe(1)));
            assert!(v.parse::<u32>().is_ok(), "queue-{q}/{k} = {v:?}");
        }
    }
    assert_eq!(xs_read(&h, &format!("{}/event-channel-tx", fe(2))), "1");
    assert_eq!(xs_read(&h, &format!("{}/event-channel-rx", fe(2))), "2");
    assert_eq!(xs_read(&h, &format!("{}/event-channel", fe(2))), "");
    assert_eq!(
        xs_read(&h, &format!("{}/queue-1/event-channel", fe(3))),
        "3"
    );
    for d in 1..=3 {
        let be = format!("/local/domain/0/backend/vif/{d}/0");
        assert_eq!(xs_read(&h, &format!("{be}/state")), "4", "{}", h.log());
    }
    for (a, b) in [(1, 2), (2, 3), (3, 1), (2, 1)] {
        assert!(h.ping(a, b, 2), "ping {a} -> {b} failed\n{}", h.log());
    }
    let stats: serde_json::Value =
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif1.0"])).unwrap();
    assert_eq!(stats["queues"], 4, "{stats}");
    assert_eq!(stats["fatal_errors"], 0, "{stats}");
}

/// The backend's `rate` key (`bytes,usecs`, as libxl writes it) limits the
/// guest's TX as it changes: with 1000 bytes per second, a burst of 1 KiB
/// pings mostly waits (counted), the rest of the vif keeps working, and
/// removing the key lifts the limit.
#[test]
fn rate_key_limits_guest_tx() {
    let h = start_with_two_guests("rate");
    let be = "/local/domain/0/backend/vif/1/0";
    let w = xs_tool(
        &h,
        "xenstore-write",
        &[&format!("{be}/rate"), "1000,1000000"],
    );
    assert!(w.status.success(), "{w:?}");
    h.wait_for("the rate to be applied", || {
        h.log().contains("vif1.0: rate 1000 bytes per 1000000 µs")
    });
    let stats = |h: &Harness| -> serde_json::Value {
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif1.0"])).unwrap()
    };
    let peer = Harness::ip_of(2);
    let flood = h.exec(
        1,
        &[
            "ping", "-c", "20", "-i", "0.05", "-s", "1000", "-W", "1", &peer,
        ],
    );
    let out = String::from_utf8_lossy(&flood.stdout);
    assert!(
        !flood.status.success() || !out.contains(" 0% packet loss"),
        "{out}"
    );
    assert!(
        stats(&h)["rx_rate_limited"].as_u64().unwrap() > 0,
        "{}",
        stats(&h)
    );
    // Only vif1.0 has a rate.
    let v2: serde_json::Value =
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif2.0"])).unwrap();
    assert_eq!(v2["rx_rate_limited"], 0, "{v2}");
    let r = xs_tool(&h, "xenstore-rm", &[&format!("{be}/rate")]);
    assert!(r.status.success(), "{r:?}");
    h.wait_for("the limit to be lifted", || {
        let o = h.exec(
            1,
            &[
                "ping", "-c", "5", "-i", "0.05", "-s", "1000", "-W", "1", &peer,
            ],
        );
        String::from_utf8_lossy(&o.stdout).contains(" 0% packet loss")
    });
}

/// xennetd crashes and starts again: guests started with `--reconnect`
/// register again and redo the xenbus handshake on the same rings, the
/// new backend sends what the old one left in the TX ring (a datagram
/// pushed while xennetd was stopped), and traffic resumes both ways.
/// (On real Xen the toolstack's xenstore and the hypervisor outlive
/// xennetd; in emulation both die with it, hence the guests' part.)
#[test]
fn guests_reconnect_after_an_xennetd_crash() {
    use nix::sys::signal::Signal;
    let mut h = Harness::start("crash");
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xenstored socket", || sock.exists());
    let sock = sock.to_string_lossy().into_owned();
    for d in [1, 2] {
        h.guest_with(d, &["--xenstore", &sock, "--reconnect", "30"]);
    }
    assert!(h.ping(1, 2, 2), "{}", h.log());
    // A receiver in guest 2 for the datagram that will wait in the ring.
    let got = h.rundir.join("udp-received");
    let ns2 = h.netns(2);
    // It says "ready" once bound (the datagram must not come before), and
    // waits up to 120 s for it (a restart on a loaded machine can take a
    // while).
    let mut rx = Command::new("ip")
        .args(["netns", "exec", &ns2, "python3", "-c"])
        .arg(
            "import socket,sys\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',9999)); s.settimeout(120)\n\
             print('ready',flush=True)\n\
             open(sys.argv[1],'wb').write(s.recv(100))",
        )
        .arg(&got)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs it)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(rx.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n", "the receiver did not start");
    // Stopped, xennetd leaves the guest's request in the TX ring.
    h.signal_daemon(Signal::SIGSTOP);
    let send = h.exec(
        1,
        &[
            "python3",
            "-c",
            &format!(
                "import socket; socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\
                 .sendto(b'queued-in-ring',('{}',9999))",
                Harness::ip_of(2)
            ),
        ],
    );
    assert!(send.status.success(), "{send:?}");
    std::thread::sleep(Duration::from_millis(300));
    // Guest 1 comes back only once guest 2 is on the bridge again, so that
    // the datagram (flooded: the new MAC table is empty) has somewhere to
    // go.
    h.signal_guest(1, Signal::SIGSTOP);
    h.crash_daemon();
    h.start_daemon();
    h.wait_for("guest 2 to reconnect", || {
        h.appctl(&["xennet/vif-show"]).contains("vif2.0")
    });
    h.signal_guest(1, Signal::SIGCONT);
    h.wait_for("the queued datagram to arrive", || {
        std::fs::read(&got).is_ok_and(|b| b == b"queued-in-ring")
    });
    let _ = rx.wait();
    assert!(h.ping(1, 2, 2), "{}", h.log());
    assert!(h.ping(2, 1, 2), "{}", h.log());
    let show = h.appctl(&["xennet/vif-show"]);
    assert_eq!(show.matches(" up ").count(), 2, "{show}");
}

/// 5000 writes (the real `xenstore-write`) under the backend vif directory
/// of a domain that never registered with the emulated hypervisor log a
/// handful of lines, not one or more each; the ignored events are counted
/// (`coverage/show`), and a real guest still connects afterwards.
#[test]
fn writes_for_an_unknown_domain_log_a_handful_of_lines() {
    const WRITES: usize = 5000;
    let mut h = Harness::start("xsflood");
    h.wait_for("xenstored socket", || {
        h.rundir.join("xenstored.sock").exists()
    });
    let keys: Vec<String> = (0..WRITES)
        .map(|i| format!("/local/domain/0/backend/vif/77/0/key{i}"))
        .collect();
    for chunk in keys.chunks(1000) {
        let args: Vec<&str> = chunk.iter().flat_map(|k| [k.as_str(), "x"]).collect();
        let w = xs_tool(&h, "xenstore-write", &args);
        assert!(w.status.success(), "{w:?}");
    }
    // The last write's event has been handled once the counter says so.
    h.wait_for("the events to be counted", || {
        h.appctl(&["coverage/show"])
            .lines()
            .any(|l| l.starts_with("xenbus_unknown_domain") && !l.ends_with("total: 0"))
    });
    let log = h.log();
    let lines = log.lines().filter(|l| l.contains("vif77.0")).count();
    assert!(lines <= 10, "{lines} lines about vif77.0:\n{log}");
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    assert!(h.ping(1, 2, 2), "{}", h.log());
}

/// Guests that shut down cleanly (Closing, Closed, then the domain is
/// gone) leave nothing behind: no xenstore directories, no representor
/// device, no descriptor in xennetd, as the toolstack and netback clean
/// up on real Xen. (Before, each left all three for good, and a
/// transaction then copied the whole leftover tree.)
#[test]
fn clean_shutdowns_leave_nothing_behind() {
    const GUESTS: u16 = 8;
    let mut h = Harness::start("cleanup");
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xenstored socket", || sock.exists());
    let sock = sock.to_string_lossy().into_owned();
    let fds = |h: &Harness| {
        std::fs::read_dir(format!("/proc/{}/fd", h.daemon_pid()))
            .unwrap()
            .count()
    };
    let vif_devices = |h: &Harness| {
        let o = h.daemon_exec(&["ip", "-o", "link", "show"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains(": vif"))
            .count()
    };
    // One guest for the whole test, so the bridge and its threads exist.
    h.guest_with(1, &["--xenstore", &sock]);
    let base_fds = fds(&h);
    let base_devs = vif_devices(&h);
    for round in 0..2 {
        for d in 2..2 + GUESTS {
            h.guest_with(d, &["--xenstore", &sock]);
        }
        assert!(h.ping(2, 1, 2), "round {round}: {}", h.log());
        for d in 2..2 + GUESTS {
            let st = h.stop_guest(d);
            assert!(st.success(), "guest {d} exited with {st}");
            h.remove_netns(d);
        }
        h.wait_for("the vif directories to go", || {
            (2..2 + GUESTS).all(|d| {
                xs_read(&h, &format!("/local/domain/0/backend/vif/{d}/0/state")).is_empty()
                    && xs_read(&h, &format!("/local/domain/{d}/device/vif/0/state")).is_empty()
            })
        });
        h.wait_for("the representors to go", || vif_devices(&h) == base_devs);
        h.wait_for("the descriptors to go", || fds(&h) <= base_fds);
    }
    let show = h.appctl(&["xennet/vif-show"]);
    assert!(
        !show.contains("vif2.0") && show.contains("vif1.0"),
        "{show}"
    );
}

/// Port security, on by default: a guest that changes its MAC (to any
/// other than its vif's `mac` key) is cut off, its frames dropped and
/// counted (`rx_spoofed_mac`), and talks again with its own MAC back.
#[test]
fn port_security_drops_frames_from_another_mac() {
    let mut h = Harness::start("portsec");
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xenstored socket", || sock.exists());
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    assert!(h.ping(1, 2, 2), "{}", h.log());
    let mac = xs_read(&h, "/local/domain/0/backend/vif/1/0/mac");
    let ns = h.netns(1);
    let set_mac = |m: &str| {
        let o = std::process::Command::new("ip")
            .args(["-n", &ns, "link", "set", "eth0", "address", m])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    };
    set_mac("02:de:ad:be:ef:01");
    assert!(h.ping_fails(1, 2), "a spoofed MAC got through");
    let stats: serde_json::Value =
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif1.0"])).unwrap();
    assert!(stats["rx_spoofed_mac"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert!(h.log().contains("port security"), "{}", h.log());
    set_mac(&mac);
    assert!(h.ping(1, 2, 2), "{}", h.log());
}

/// Port security's addresses: with the backend `ip` key set (libxl writes
/// it for `ip=` in the vif spec), a guest's IPv4 packets and ARP from
/// another source address are dropped and counted (`rx_spoofed_ip`);
/// adding the address to the key lets them through.
#[test]
fn port_security_checks_the_ip_key() {
    let mut h = Harness::start("portsecip");
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xenstored socket", || sock.exists());
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    let ip1 = Harness::ip_of(1);
    let key = "/local/domain/0/backend/vif/1/0/ip";
    let w = xs_tool(&h, "xenstore-write", &[key, &ip1]);
    assert!(w.status.success(), "{w:?}");
    h.wait_for("the ip key applied", || {
        h.log().contains("vif1.0: port security: IPv4")
    });
    assert!(h.ping(1, 2, 2), "{}", h.log());
    // A second address in guest 1, not in the key.
    let alias = "10.251.0.77";
    let o = h.exec(
        1,
        &["ip", "addr", "add", &format!("{alias}/24"), "dev", "eth0"],
    );
    assert!(o.status.success(), "{o:?}");
    let ping_from = |h: &Harness| {
        h.exec(
            1,
            &[
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                "-I",
                alias,
                &Harness::ip_of(2),
            ],
        )
        .status
        .success()
    };
    assert!(!ping_from(&h), "a spoofed source address got through");
    let stats: serde_json::Value =
        serde_json::from_str(&h.appctl(&["xennet/vif-stats", "vif1.0"])).unwrap();
    assert!(stats["rx_spoofed_ip"].as_u64().unwrap_or(0) > 0, "{stats}");
    let w = xs_tool(&h, "xenstore-write", &[key, &format!("{ip1} {alias}")]);
    assert!(w.status.success(), "{w:?}");
    h.wait_for("the alias allowed", || ping_from(&h));
}

/// The frames of tests/common/portsec.py port security stops by default,
/// each with the counter it goes to.
const SPOOFED_FRAMES: [(&str, &str); 9] = [
    ("na-target", "rx_spoofed_nd"),
    ("na-tll", "rx_spoofed_nd"),
    ("ns-sll", "rx_spoofed_nd"),
    ("rs-sll", "rx_spoofed_nd"),
    ("arp-sha", "rx_spoofed_arp"),
    ("dhcp4", "rx_rogue_dhcp"),
    ("dhcp6", "rx_rogue_dhcp"),
    ("ra", "rx_rogue_ra"),
    ("redirect", "rx_rogue_ra"),
];

/// Guests 1 and 2 with IPv6 addresses 2001:db8::1 and ::2 (no DAD), the
/// link-local ones usable; `ip_key` (if any) written as vif1.0's `ip`
/// key and applied.
fn ipv6_guests(tag: &str, ip_key: Option<&str>) -> Harness {
    let mut h = Harness::start(tag);
    ipv6_guests_on(&mut h, ip_key);
    h
}

/// [`ipv6_guests`] on a running xennetd.
fn ipv6_guests_on(h: &mut Harness, ip_key: Option<&str>) {
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xenstored socket", || sock.exists());
    h.guest_xenstore(1);
    h.guest_xenstore(2);
    for d in [1u16, 2] {
        let a = format!("2001:db8::{d}/64");
        let o = h.exec(d, &["ip", "-6", "addr", "add", &a, "dev", "eth0", "nodad"]);
        assert!(o.status.success(), "{o:?}");
        h.wait_for(&format!("guest {d}'s link-local address"), || {
            let o = h.exec(
                d,
                &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
            );
            let s = String::from_utf8_lossy(&o.stdout);
            s.contains("fe80::") && !s.contains("tentative")
        });
    }
    if let Some(key) = ip_key {
        let w = xs_tool(
            h,
            "xenstore-write",
            &["/local/domain/0/backend/vif/1/0/ip", key],
        );
        assert!(w.status.success(), "{w:?}");
        h.wait_for("the ip key applied", || {
            h.log().contains("vif1.0: port security: IPv4")
        });
    }
}

fn ping6(h: &Harness, from: Option<&str>) -> bool {
    let mut args = vec!["ping", "-6", "-c", "2", "-i", "0.2", "-w", "2"];
    if let Some(f) = from {
        args.extend(["-I", f]);
    }
    args.push("2001:db8::2");
    h.exec(1, &args).status.success()
}

/// Send each of `frames` from guest 1 and wait for its counter on vif1.0
/// to move; then a solicitation with guest 1's own MAC, which must reach
/// guest 2, and none of the dropped frames before it (one queue: frames
/// reach the switch in the order sent).
fn spoofed_frames_are_counted(h: &Harness, frames: &[(&str, &str)]) {
    let mut watch = h.watch_frames(2);
    for (kind, counter) in frames {
        let before = h.vif_counter("vif1.0", counter);
        h.send_frame(1, kind);
        h.wait_for(&format!("{kind} counted in {counter}"), || {
            h.vif_counter("vif1.0", counter) > before
        });
    }
    h.send_frame(1, "ns-ok");
    h.wait_for("a good solicitation to pass", || watch.got("ns-ok"));
    assert_eq!(watch.seen(), ["ns-ok"], "dropped frames got through");
    assert!(h.log().contains("(port security)"), "{}", h.log());
}

/// Port security with IPv6 addresses in the `ip` key (libxl writes it
/// for `ip=` in the vif spec; IPv4 and IPv6 mixed): the guest's own and
/// link-local (EUI-64) addresses pass, another IPv6 source is dropped
/// (`rx_spoofed_ip`); neighbour advertisements for an address not the
/// guest's, ND link-layer options with another MAC (`rx_spoofed_nd`), ARP
/// with another sender MAC (`rx_spoofed_arp`), DHCPv4/DHCPv6 server
/// messages (`rx_rogue_dhcp`), router advertisements and redirects
/// (`rx_rogue_ra`), all sent by the guest's stack, are dropped and
/// counted.
#[test]
fn port_security_checks_ipv6_nd_arp_dhcp_and_ra() {
    let h = ipv6_guests("portsec6", Some("10.251.0.1 2001:db8::1"));
    assert!(ping6(&h, None), "{}", h.log());
    assert!(h.ping(1, 2, 2), "{}", h.log());
    let o = h.exec(
        1,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8::77/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let before = h.vif_counter("vif1.0", "rx_spoofed_ip");
    assert!(
        !ping6(&h, Some("2001:db8::77")),
        "a spoofed IPv6 source got through"
    );
    assert!(h.vif_counter("vif1.0", "rx_spoofed_ip") > before);
    spoofed_frames_are_counted(&h, &SPOOFED_FRAMES);
    // Still talking from its own addresses.
    let o = h.exec(
        1,
        &["ip", "-6", "addr", "del", "2001:db8::77/64", "dev", "eth0"],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(ping6(&h, None), "{}", h.log());
}

/// Without an `ip` key port security still checks ND link-layer options
/// and ARP sender MACs against the vif's MAC, and guards against DHCP
/// servers and routers (as OVN with only a MAC in `port_security`);
/// advertisements for any address pass.
#[test]
fn port_security_checks_nd_options_without_addresses() {
    let h = ipv6_guests("portsecnd", None);
    assert!(ping6(&h, Some("2001:db8::1")), "{}", h.log());
    let frames: Vec<_> = SPOOFED_FRAMES
        .iter()
        .copied()
        .filter(|(k, _)| *k != "na-target")
        .collect();
    spoofed_frames_are_counted(&h, &frames);
    let mut watch = h.watch_frames(2);
    h.send_frame(1, "na-target");
    h.wait_for("an advertisement for any address", || {
        watch.got("na-target")
    });
}

/// `allow_dhcp_server` and `allow_ra` in the configuration file let
/// guests' DHCP server messages, router advertisements and redirects
/// through (routers, appliance guests); the other checks stay.
#[test]
fn port_security_guards_off_in_the_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_xennetd"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[emulated_xen]\n"), "{text}");
    let text = text.replace(
        "[emulated_xen]\n",
        "[emulated_xen]\nallow_dhcp_server = true\nallow_ra = true\n",
    );
    let cfg = std::env::temp_dir().join(format!("xennet-portsecg-{}.toml", std::process::id()));
    std::fs::write(&cfg, text).unwrap();
    let mut h = Harness::start_with("portsecg", &["--config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&cfg);
    ipv6_guests_on(&mut h, Some("10.251.0.1 2001:db8::1"));
    let mut watch = h.watch_frames(2);
    for kind in ["dhcp4", "dhcp6", "ra", "redirect"] {
        h.send_frame(1, kind);
        h.wait_for(&format!("{kind} to pass"), || watch.got(kind));
    }
    for c in ["rx_rogue_dhcp", "rx_rogue_ra"] {
        assert_eq!(h.vif_counter("vif1.0", c), 0, "{c}");
    }
    drop(watch);
    let spoofed: Vec<_> = SPOOFED_FRAMES
        .iter()
        .copied()
        .filter(|(_, c)| c.starts_with("rx_spoofed"))
        .collect();
    spoofed_frames_are_counted(&h, &spoofed);
}

/// A requested stop is clean: on SIGTERM xennetd closes its emulated
/// xenstored, the xenbus backend says it stopped at info level (its
/// store connection closing is expected then), and nothing is logged as
/// an error.
#[test]
fn sigterm_stops_the_xenbus_backend_without_an_error() {
    let h = start_with_two_guests("xsterm");
    h.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    h.wait_for("xennetd to exit", || !h.daemon_alive());
    let log = h.log();
    let stopped = log
        .lines()
        .find(|l| l.contains("xenbus backend stopped"))
        .unwrap_or_else(|| panic!("the backend did not say it stopped:\n{log}"));
    assert!(stopped.contains("INFO"), "{stopped}");
    let end = log
        .find("xennetd stopped")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(log.find("xenbus backend stopped") < Some(end), "{log}");
    assert!(!log.lines().any(|l| l.contains("ERROR")), "{log}");
}
