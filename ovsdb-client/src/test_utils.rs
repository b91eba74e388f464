//! A private `ovsdb-server` for tests (feature `test-utils`): a fresh
//! `Open_vSwitch` database created from the installed vswitch schema
//! (Debian openvswitch-switch), served on a unix socket in its own
//! temporary directory, and stopped by pid when dropped (also on panic),
//! as PEERS.md §2 describes (`ovsdb-tool create`, then `ovsdb-server
//! --remote=punix:... --pidfile --detach`, then `ovs-vsctl --no-wait init`).
//!
//! A test that needs it fails (never skips) with a message saying what to
//! install when a program or the schema is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The Open vSwitch database schema that `ovs-vswitchd` uses.
pub const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// How long one `ovs-vsctl` may wait (for `cur_cfg`) before it is killed.
pub const VSCTL_TIMEOUT_SECS: u32 = 60;

/// Panics with an install hint unless the OVS database programs, `timeout`
/// and the vswitch schema are present.
pub fn require_ovs_tools() {
    for tool in ["ovsdb-server", "ovsdb-tool", "ovs-vsctl", "timeout"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} not found: apt-get install openvswitch-switch coreutils (scripts/test installs it)"
        );
    }
    assert!(
        Path::new(VSWITCH_SCHEMA).exists(),
        "{VSWITCH_SCHEMA} missing: apt-get install openvswitch-switch (scripts/test installs it)"
    );
}

/// Runs `cmd`, panicking with its stderr unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One private `ovsdb-server`; stopped by pid and its directory removed on
/// drop (kept, with the log's path printed, when the test panicked).
#[derive(Debug)]
pub struct OvsdbServer {
    dir: PathBuf,
}

impl OvsdbServer {
    /// Creates `<tmp>/xennet-ovsdb-<name>-<pid>` with a fresh database,
    /// starts the server and runs `ovs-vsctl --no-wait init` (the
    /// `Open_vSwitch` row). `name` keeps tests of one process apart.
    pub fn start(name: &str) -> OvsdbServer {
        require_ovs_tools();
        let dir = std::env::temp_dir().join(format!("xennet-ovsdb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let s = OvsdbServer { dir };
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(s.path("conf.db"))
            .arg(VSWITCH_SCHEMA));
        s.launch();
        s.vsctl_ok(&["--no-wait", "init"]);
        s
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file in the server's directory (`conf.db`, `ovsdb-server.log`...).
    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    /// The unix socket the server listens on.
    pub fn socket(&self) -> PathBuf {
        self.path("db.sock")
    }

    /// The server's address for clients: `unix:<socket>`.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    /// Starts the server (again) on the same database and socket.
    pub fn launch(&self) {
        run(Command::new("ovsdb-server")
            .arg(self.path("conf.db"))
            .arg(format!("--remote=punix:{}", self.socket().display()))
            .arg(format!(
                "--pidfile={}",
                self.path("ovsdb-server.pid").display()
            ))
            .arg(format!(
                "--unixctl={}",
                self.path("ovsdb-server.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                self.path("ovsdb-server.log").display()
            ))
            .args(["-vconsole:off", "--detach", "--no-chdir"]));
    }

    /// The server's pid, from its pidfile, while it runs.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.path("ovsdb-server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    /// Stops the server: SIGTERM to its pid, SIGKILL if it is still there
    /// after 2.5 s; waits up to 5 s for it to go.
    pub fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let start = Instant::now();
        let mut killed = false;
        while Self::alive(pid) && start.elapsed() < Duration::from_secs(5) {
            if !killed && start.elapsed() > Duration::from_millis(2500) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(self.path("ovsdb-server.pid"));
    }

    /// `timeout 60 ovs-vsctl --db=<addr> ARGS`: without `--no-wait` among
    /// ARGS it waits for a switch to acknowledge (`cur_cfg`).
    pub fn vsctl(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg(VSCTL_TIMEOUT_SECS.to_string())
            .arg("ovs-vsctl")
            .arg(format!("--db={}", self.addr()))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running ovs-vsctl: {e}"))
    }

    /// [`OvsdbServer::vsctl`], panicking unless it succeeds; its stdout,
    /// trimmed.
    pub fn vsctl_ok(&self, args: &[&str]) -> String {
        let start = Instant::now();
        let out = self.vsctl(args);
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?} failed ({}, after {:?}): {}",
            out.status,
            start.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `ovs-vsctl --no-wait ARGS`, which must succeed; its stdout, trimmed.
    pub fn vsctl_no_wait(&self, args: &[&str]) -> String {
        let mut all = vec!["--no-wait"];
        all.extend_from_slice(args);
        self.vsctl_ok(&all)
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "kept {} for inspection (server log: {})",
                self.dir.display(),
                self.path("ovsdb-server.log").display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `ovs-vswitchd` on a private [`OvsdbServer`] with the dummy datapath
/// (`--enable-dummy=override`: ports are `dummy` devices, nothing reaches
/// the kernel), detached, with its pidfile, unixctl socket
/// (`ovs-vswitchd.ctl`) and log in the server's directory; the reference
/// of the differential tests. Stopped (`ovs-appctl exit --cleanup`, then
/// by pid) before its database when dropped.
#[derive(Debug)]
pub struct DummyVswitchd {
    /// Its database.
    pub db: OvsdbServer,
}

impl DummyVswitchd {
    /// Start the database `name` and ovs-vswitchd on it.
    pub fn start(name: &str) -> DummyVswitchd {
        let db = OvsdbServer::start(name);
        let dir = db.dir().to_path_buf();
        run(Command::new("ovs-vswitchd")
            .env("OVS_RUNDIR", &dir)
            .arg(db.addr())
            .arg("--enable-dummy=override")
            .arg(format!(
                "--pidfile={}",
                dir.join("ovs-vswitchd.pid").display()
            ))
            .arg(format!(
                "--unixctl={}",
                dir.join("ovs-vswitchd.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                dir.join("ovs-vswitchd.log").display()
            ))
            .args(["-vconsole:off", "--detach", "--no-chdir"]));
        DummyVswitchd { db }
    }

    /// Its unixctl socket (for `ovs-appctl -t`).
    pub fn ctl(&self) -> PathBuf {
        self.db.path("ovs-vswitchd.ctl")
    }

    /// Add bridge `br0` on the dummy datapath with `fail-mode=secure` and
    /// `bridge_opts` (such as `protocols=OpenFlow13`), and dummy ports
    /// `p1` .. `p<ports>` at ofports 1 .. `ports`, port `i` with the
    /// interface settings `port_opts(i)` (such as `options:tx_pcap=F`).
    pub fn add_br0(
        &self,
        bridge_opts: &[&str],
        ports: u16,
        port_opts: impl Fn(u16) -> Vec<String>,
    ) {
        let mut args: Vec<String> = ["add-br", "br0", "--", "set", "bridge", "br0"]
            .into_iter()
            .chain(["datapath_type=dummy", "fail-mode=secure"])
            .chain(bridge_opts.iter().copied())
            .map(str::to_owned)
            .collect();
        for i in 1..=ports {
            let name = format!("p{i}");
            args.extend(
                [
                    "--",
                    "add-port",
                    "br0",
                    &name,
                    "--",
                    "set",
                    "interface",
                    &name,
                ]
                .map(str::to_owned),
            );
            args.push("type=dummy".to_owned());
            args.push(format!("ofport_request={i}"));
            args.extend(port_opts(i));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.db.vsctl_ok(&args);
    }
}

impl Drop for DummyVswitchd {
    fn drop(&mut self) {
        let _ = Command::new("ovs-appctl")
            .arg("-t")
            .arg(self.ctl())
            .args(["exit", "--cleanup"])
            .output();
        if let Ok(pid) = std::fs::read_to_string(self.db.path("ovs-vswitchd.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        self.db.stop();
    }
}
