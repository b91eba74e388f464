//! xennetd's real-Xen mode (`--xen real`) on a machine without Xen: the
//! xenbus side against a xenstored (here `xennet-xenstored` through
//! `XENSTORED_PATH`, as a real xenstored's socket would be) with Xen's
//! devices replaced by plain files (`XENNET_XEN_DEV_DIR`), whose ioctls
//! fail. What it proves: the mode switch, the watch set up before the
//! pidfile, the toolstack's vif reaching InitWait with our features, and
//! a failing device turning into the frontend-visible error and Closing
//! rather than a crash. Real guests on real Xen: `scripts/test-xen`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ChildGuard;
use xennet_vif::xenbus::{backend_path, create_vif_nodes, error_path, frontend_path, VifSpec};
use xennet_vif::xenstore::Client;

/// Poll `f` until it holds; a generous bound only to turn a hang into a
/// failure with a message (not a timing threshold).
fn wait_for(what: &str, log: &Path, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; xennetd log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xennet-rm{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(xs: &Client, path: &str) -> String {
    xs.read_string(path).unwrap_or_default()
}

#[test]
fn real_mode_serves_the_toolstacks_vifs_and_reports_device_errors() {
    let dir = scratch("vif");
    let devdir = dir.join("dev");
    std::fs::create_dir_all(&devdir).unwrap();
    for d in ["gntdev", "evtchn"] {
        std::fs::write(devdir.join(d), b"").unwrap();
    }
    let sock = dir.join("xenstored.sock");
    let _xsd = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_xennet-xenstored"))
            .arg("--socket")
            .arg(&sock)
            .stderr(Stdio::null())
            .spawn()
            .expect("starting xennet-xenstored"),
    );
    let log = dir.join("xennetd.log");
    wait_for("the xenstored socket", &log, || sock.exists());
    let xs = Client::connect(&sock).unwrap();
    xs.write("/local/domain/0/domid", "0").unwrap();
    let cfg = dir.join("xennetd.toml");
    std::fs::write(&cfg, "[[bridge]]\nname = \"br0\"\n").unwrap();
    let run = dir.join("run");
    let daemon = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_xennetd"))
            .args(["--xen", "real", "--log", "info,xennet_vif=debug"])
            .arg("--rundir")
            .arg(&run)
            .arg("--config")
            .arg(&cfg)
            .env("XENSTORED_PATH", &sock)
            .env("XENNET_XEN_DEV_DIR", &devdir)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting xennetd"),
    );
    // The backend watch is in place before the pidfile appears.
    wait_for("xennetd's pidfile", &log, || {
        run.join("ovs-vswitchd.pid").exists()
    });
    assert!(
        !run.join("xennet-xen.sock").exists(),
        "real mode opened the emulated attach socket"
    );

    // The toolstack creates vif 7.0 (libxl's nodes, state Initialising).
    let spec = VifSpec {
        domid: 7,
        handle: 0,
        backend_domid: 0,
        mac: "00:16:3e:00:00:07".into(),
        bridge: "br0".into(),
        script: String::new(),
    };
    create_vif_nodes(&xs, &spec).unwrap();
    let be = backend_path(0, 7, 0);
    let fe = frontend_path(7, 0);
    wait_for("backend InitWait", &log, || {
        read(&xs, &format!("{be}/state")) == "2"
    });
    for (k, v) in [
        ("feature-rx-copy", "1"),
        ("feature-split-event-channels", "0"),
        ("multi-queue-max-queues", "1"),
        ("feature-ctrl-ring", "0"),
    ] {
        assert_eq!(read(&xs, &format!("{be}/{k}")), v, "{be}/{k}");
    }

    // The frontend connects, as Linux xen-netfront writes its keys.
    for (k, v) in [
        ("tx-ring-ref", "8"),
        ("rx-ring-ref", "9"),
        ("event-channel", "11"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("state", "4"),
    ] {
        xs.write(&format!("{fe}/{k}"), v).unwrap();
    }
    // Binding the event channel fails on a plain file: the backend says
    // why and goes Closing; the vif never reaches the bridge.
    wait_for("backend Closing", &log, || {
        read(&xs, &format!("{be}/state")) == "5"
    });
    let err = read(&xs, &error_path(0, 7, 0));
    assert!(
        err.contains("IOCTL_EVTCHN_BIND_INTERDOMAIN domain 7 port 11"),
        "error node: {err:?}"
    );
    assert_ne!(read(&xs, &format!("{be}/hotplug-status")), "connected");

    // The toolstack removes the vif; xennetd carries on.
    xs.rm(&be).unwrap();
    xs.rm(&fe).unwrap();
    create_vif_nodes(
        &xs,
        &VifSpec {
            domid: 8,
            ..spec.clone()
        },
    )
    .unwrap();
    let be8 = backend_path(0, 8, 0);
    wait_for("second vif InitWait", &log, || {
        read(&xs, &format!("{be8}/state")) == "2"
    });
    // The toolstack removes the domain's whole backend directory at once
    // (the frontend's stays) and later creates the vif again: the backend
    // must have forgotten the old one and offer InitWait anew.
    xs.rm("/local/domain/0/backend/vif/8").unwrap();
    create_vif_nodes(
        &xs,
        &VifSpec {
            domid: 8,
            ..spec.clone()
        },
    )
    .unwrap();
    wait_for("re-created vif InitWait", &log, || {
        read(&xs, &format!("{be8}/state")) == "2"
    });
    xs.rm(&be8).unwrap();
    xs.rm(&frontend_path(8, 0)).unwrap();
    let mut daemon = daemon;
    assert!(daemon.0.try_wait().unwrap().is_none(), "xennetd exited");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = daemon.0.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "xennetd: {st}\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn real_mode_without_xen_devices_says_what_is_missing() {
    let dir = scratch("nodev");
    let devdir = dir.join("dev");
    std::fs::create_dir_all(&devdir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xennetd"))
        .args(["--xen", "real"])
        .arg("--rundir")
        .arg(dir.join("run"))
        .env("XENNET_XEN_DEV_DIR", &devdir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running xennetd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let want = format!(
        "not running on Xen: {} missing (load xen-gntdev)",
        devdir.join("gntdev").display()
    );
    assert!(err.contains(&want), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
