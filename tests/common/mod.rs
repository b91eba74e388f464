//! Test harness: a private xennetd, emulated guests in their own network
//! namespaces, cleanup on drop. Every name (run directory, namespaces)
//! carries the test's own prefix so tests run in parallel.
//!
//! xennetd itself runs in a network namespace of its own (`<prefix>d`, with
//! `lo` up), so that the devices it makes (vif representors `vif1.0`, a
//! bridge's LOCAL port `br0`) do not collide between tests; tests that
//! need it in the host's namespace (Linux devices made there, controllers
//! on the host's 127.0.0.1) use [`Harness::start_host_with`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen (60 s): far
/// more than it takes on an idle machine, so a loaded or stalled CI
/// machine does not fail a test; it costs nothing when things work.
pub const WAIT: Duration = Duration::from_secs(60);

/// Fail (never skip) when a prerequisite is missing.
pub fn require_prerequisites() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (network namespaces, tap devices): run scripts/test as root"
    );
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("ping", "iputils-ping"),
        ("iperf3", "iperf3"),
    ] {
        require_tool(tool, pkg);
    }
}

/// A running xennetd and its guests.
pub struct Harness {
    pub rundir: PathBuf,
    prefix: String,
    daemon: Option<Child>,
    daemon_args: Vec<String>,
    guests: Vec<(u16, Child)>,
    netns: Vec<String>,
    /// xennetd's own namespace, if not the host's.
    daemon_netns: Option<String>,
}

impl Harness {
    /// Start xennetd on the embedded default in a fresh run directory.
    pub fn start(test: &str) -> Harness {
        Self::start_with(test, &[])
    }

    /// Start xennetd with extra arguments (e.g. `--db unix:...`) in a
    /// fresh run directory.
    pub fn start_with(test: &str, extra_args: &[&str]) -> Harness {
        Self::start_inner(test, extra_args, true)
    }

    /// Start xennetd in the host's network namespace (for Linux devices
    /// made there, or controllers on the host's loopback).
    pub fn start_host_with(test: &str, extra_args: &[&str]) -> Harness {
        Self::start_inner(test, extra_args, false)
    }

    fn start_inner(test: &str, extra_args: &[&str], own_netns: bool) -> Harness {
        require_prerequisites();
        let prefix = format!("xt{}{}", std::process::id() % 100_000, test);
        let rundir = std::env::temp_dir().join(format!("xennet-{prefix}"));
        let _ = std::fs::remove_dir_all(&rundir);
        std::fs::create_dir_all(&rundir).unwrap();
        let mut h = Harness {
            rundir,
            prefix,
            daemon: None,
            daemon_args: extra_args.iter().map(|a| a.to_string()).collect(),
            guests: Vec::new(),
            netns: Vec::new(),
            daemon_netns: None,
        };
        if own_netns {
            let ns = format!("{}d", h.prefix);
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
            run_ok("ip", &["netns", "add", &ns]);
            h.daemon_netns = Some(ns.clone());
            run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        h.start_daemon();
        h
    }

    /// Start xennetd (again) and wait for its emulated Xen socket.
    pub fn start_daemon(&mut self) {
        let sock = self.rundir.join("xennet-xen.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.rundir.join("xennetd.log"))
            .unwrap();
        let mut cmd = match &self.daemon_netns {
            // `ip netns exec` execs xennetd in place (same pid) with /sys
            // remounted for the namespace.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_xennetd")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_xennetd")),
        };
        let daemon = cmd
            .arg("--rundir")
            .arg(&self.rundir)
            .args(&self.daemon_args)
            .stderr(log)
            .spawn()
            .expect("starting xennetd");
        self.daemon = Some(daemon);
        self.wait_for("xennetd's emulated Xen socket", || sock.exists());
    }

    /// xennetd's process id (`ip netns exec` execs it in place).
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("xennetd is running").id()
    }

    /// Whether xennetd is still running (not exited, not a zombie).
    pub fn daemon_alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.daemon_pid()))
            .ok()
            .and_then(|s| {
                let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_owned();
                Some(state != "Z" && state != "X")
            })
            .unwrap_or(false)
    }

    /// Descriptors open in xennetd (`/proc/<pid>/fd`).
    pub fn daemon_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.daemon_pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Send `sig` to xennetd.
    pub fn signal_daemon(&self, sig: nix::sys::signal::Signal) {
        let d = self.daemon.as_ref().expect("xennetd is running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), sig)
            .expect("signalling xennetd");
    }

    /// Send `sig` to guest `domid`'s process.
    pub fn signal_guest(&self, domid: u16, sig: nix::sys::signal::Signal) {
        let (_, g) = self
            .guests
            .iter()
            .find(|(d, _)| *d == domid)
            .expect("no such guest");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(g.id() as i32), sig)
            .expect("signalling the guest");
    }

    /// SIGKILL xennetd only (as a crash), leaving the guests running.
    pub fn crash_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// SIGKILL xennetd (no cleanup, as a crash) and stop every guest,
    /// removing their namespaces so `guest` can start them again.
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for (_, g) in &mut self.guests {
            let _ = g.kill();
            let _ = g.wait();
        }
        self.guests.clear();
        for ns in self.netns.drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }

    /// Poll `f` for up to [`WAIT`].
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + WAIT;
        while !f() {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; xennetd log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// xennetd's network namespace (None: the host's).
    pub fn daemon_netns(&self) -> Option<&str> {
        self.daemon_netns.as_deref()
    }

    /// Run a command in xennetd's network namespace.
    pub fn daemon_exec(&self, args: &[&str]) -> Output {
        match &self.daemon_netns {
            Some(ns) => {
                let mut full = vec!["netns", "exec", ns.as_str()];
                full.extend_from_slice(args);
                Command::new("ip").args(&full).output().unwrap()
            }
            None => Command::new(args[0]).args(&args[1..]).output().unwrap(),
        }
    }

    /// Delete guest `domid`'s namespace (after it stopped), so that the
    /// same domain id can start again.
    pub fn remove_netns(&mut self, domid: u16) {
        let ns = self.netns(domid);
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        self.netns.retain(|n| *n != ns);
    }

    pub fn netns(&self, domid: u16) -> String {
        format!("{}g{domid}", self.prefix)
    }

    pub fn ip_of(domid: u16) -> String {
        format!("10.251.0.{domid}")
    }

    /// Start guest `domid` (address 10.251.0.DOMID/24 on its eth0).
    pub fn guest(&mut self, domid: u16, hostile: Option<&str>) {
        match hostile {
            Some(case) => self.guest_with(domid, &["--hostile", case]),
            None => self.guest_with(domid, &[]),
        }
    }

    /// Start guest `domid` through xenstore (`--xenstore
    /// <rundir>/xenstored.sock`): the xenbus handshake.
    pub fn guest_xenstore(&mut self, domid: u16) {
        let sock = self.rundir.join("xenstored.sock");
        let sock = sock.to_string_lossy().into_owned();
        self.guest_with(domid, &["--xenstore", &sock]);
    }

    /// Take guest `domid`'s process out of the harness.
    fn take_guest(&mut self, domid: u16) -> Child {
        let i = self
            .guests
            .iter()
            .position(|(d, _)| *d == domid)
            .expect("no such guest");
        self.guests.remove(i).1
    }

    /// Stop guest `domid` with SIGTERM (it closes its vif) and wait for it.
    pub fn stop_guest(&mut self, domid: u16) -> std::process::ExitStatus {
        let mut child = self.take_guest(domid);
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        child.wait().unwrap()
    }

    /// SIGKILL guest `domid` (a domain's sudden death) and reap it.
    pub fn kill_guest(&mut self, domid: u16) {
        let mut child = self.take_guest(domid);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Start guest `domid` with extra `xennet-guest` arguments.
    pub fn guest_with(&mut self, domid: u16, extra: &[&str]) {
        self.guest_spawn(domid, extra);
        let ns = self.netns(domid);
        let want = Self::ip_of(domid);
        self.wait_for(&format!("guest {domid} up"), || {
            let o = Command::new("ip")
                .args(["-n", &ns, "-o", "addr", "show", "dev", "eth0"])
                .output();
            o.map(|o| String::from_utf8_lossy(&o.stdout).contains(&want))
                .unwrap_or(false)
        });
    }

    /// Start guest `domid` with extra `xennet-guest` arguments without
    /// waiting for it to come up (e.g. a guest the backend will refuse).
    pub fn guest_spawn(&mut self, domid: u16, extra: &[&str]) {
        let ns = self.netns(domid);
        run_ok("ip", &["netns", "add", &ns]);
        self.netns.push(ns.clone());
        run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        let log = std::fs::File::create(self.rundir.join(format!("guest{domid}.log"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xennet-guest"));
        cmd.arg("--rundir")
            .arg(&self.rundir)
            .args([
                "--domid",
                &domid.to_string(),
                "--netns",
                &ns,
                "--tap",
                "eth0",
            ])
            .args(["--ip", &format!("{}/24", Self::ip_of(domid))])
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        cmd.args(extra);
        let child = cmd.spawn().expect("starting xennet-guest");
        self.guests.push((domid, child));
    }

    /// Run a command inside guest `domid`'s namespace.
    pub fn exec(&self, domid: u16, args: &[&str]) -> Output {
        let ns = self.netns(domid);
        let mut full = vec!["netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        Command::new("ip").args(&full).output().unwrap()
    }

    /// Ping from `a` to `b`; true when at least one reply came back
    /// (waiting up to 10 s for the first).
    pub fn ping(&self, a: u16, b: u16, count: u32) -> bool {
        let out = self.exec(
            a,
            &[
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                // Seconds to wait for a first reply (a loaded machine can
                // stall that long; answered pings end at once).
                "-W",
                "10",
                &Self::ip_of(b),
            ],
        );
        out.status.success()
    }

    /// Ping from `a` to `b` for at most a second; true when no reply came
    /// back (for asserting isolation without waiting long).
    pub fn ping_fails(&self, a: u16, b: u16) -> bool {
        let out = self.exec(
            a,
            &["ping", "-c", "2", "-i", "0.2", "-w", "1", &Self::ip_of(b)],
        );
        !out.status.success()
    }

    /// Run an `ovs-appctl` command through xennet-appctl.
    pub fn appctl(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_xennet-appctl"))
            .arg("--rundir")
            .arg(&self.rundir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xennet-appctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run the real `ovs-ofctl` with `OVS_RUNDIR` set to our run
    /// directory, so `ovs-ofctl CMD br0` finds `br0.mgmt`; returns stdout
    /// and fails the test on a non-zero exit.
    pub fn ofctl(&self, args: &[&str]) -> String {
        let out = self.ofctl_output(args);
        assert!(
            out.status.success(),
            "ovs-ofctl {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run `ovs-ofctl` and return its output whatever the exit status.
    pub fn ofctl_output(&self, args: &[&str]) -> Output {
        require_tool("ovs-ofctl", "openvswitch-common");
        Command::new("ovs-ofctl")
            .env("OVS_RUNDIR", &self.rundir)
            .args(["--timeout", "60"])
            .args(args)
            .output()
            .unwrap()
    }

    /// A flood of 50 pings of 1400 bytes, 10 ms apart (about 1.1 Mbit/s),
    /// from guest `a` to `b`: how many were answered.
    pub fn ping_flood(&self, a: u16, b: u16) -> u32 {
        let o = self.exec(
            a,
            &[
                "ping",
                "-q",
                "-c",
                "50",
                "-i",
                "0.01",
                "-s",
                "1400",
                "-W",
                "1",
                &Self::ip_of(b),
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        text.split(" received")
            .next()
            .and_then(|s| s.rsplit(", ").next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("ping output: {text}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.rundir.join("xennetd.log")).unwrap_or_default()
    }

    pub fn rundir(&self) -> &Path {
        &self.rundir
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for (_, g) in &mut self.guests {
            let _ = g.kill();
            let _ = g.wait();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(d.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let end = Instant::now() + Duration::from_secs(5);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in self.netns.iter().chain(&self.daemon_netns) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.rundir);
        } else {
            eprintln!("kept {} for inspection", self.rundir.display());
        }
    }
}

/// Fail with an install hint when `tool` is not on PATH.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is missing: apt-get install {package} (scripts/test installs it)"
    );
}

pub fn run_ok(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?} failed");
}

/// A child process killed (and reaped) when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ovs-ofctl -O PROTO -P nxt_packet_in2 monitor br0 ARG` against the
/// harness's switch, killed when dropped. ovs-ofctl writes what it
/// receives to stderr when stdout is a file, so [`OfctlMonitor::text`]
/// reads both.
pub struct OfctlMonitor {
    _child: ChildGuard,
    out: PathBuf,
    err: PathBuf,
}

impl OfctlMonitor {
    /// Start the monitor; `name` makes its output files unique in the
    /// run directory.
    pub fn start(rundir: &Path, proto: &str, arg: &str, name: &str) -> Self {
        let out = rundir.join(format!("{name}.txt"));
        let err = rundir.join(format!("{name}.err"));
        let child = Command::new("ovs-ofctl")
            .env("OVS_RUNDIR", rundir)
            .args(["-O", proto, "-P", "nxt_packet_in2", "monitor", "br0", arg])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        OfctlMonitor {
            _child: ChildGuard(child),
            out,
            err,
        }
    }

    /// Everything the monitor printed so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
            + &std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python of venv `venv` under the peers directory that `scripts/test`
/// fills (`XENNET_PEERS_DIR`, default /opt/xennet-peers), once `import`
/// works there; otherwise the test fails saying what to install.
fn peer_python(venv: &str, import: &str, missing: &str) -> PathBuf {
    let dir = std::env::var_os("XENNET_PEERS_DIR").unwrap_or_else(|| "/opt/xennet-peers".into());
    let py = Path::new(&dir).join(venv).join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", &format!("import {import}")])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{missing} is missing at {}: run scripts/test (it installs it into a venv there)",
        py.display()
    );
    py
}

/// Python of the os-ken venv that `scripts/test` installs (os-ken 4.2.2).
pub fn osken_python() -> PathBuf {
    peer_python("osken-venv", "os_ken", "os-ken 4.2.2")
}

/// Python of the venv with the Prometheus client library that
/// `scripts/test` installs (`ensure_prometheus_client`).
pub fn prometheus_python() -> PathBuf {
    peer_python(
        "prometheus-venv",
        "prometheus_client.openmetrics.parser",
        "the Python Prometheus client (pip install prometheus-client==0.26.0)",
    )
}

/// Python of the venv with the FTP server pyftpdlib that `scripts/test`
/// installs (`ensure_pyftpdlib`).
pub fn pyftpdlib_python() -> PathBuf {
    peer_python(
        "pyftpdlib-venv",
        "pyftpdlib.servers",
        "the FTP server pyftpdlib (pip install pyftpdlib==2.0.1)",
    )
}

/// Start the os-ken L2 learning controller (tests/peers/osken_l2switch.py)
/// listening on 127.0.0.1:`port`; its log goes to `log`.
pub fn start_osken(port: u16, log: &Path) -> ChildGuard {
    start_osken_in(None, port, log)
}

/// Whether something listens on 127.0.0.1:`port` in network namespace
/// `netns` (None: ours).
fn listening(netns: Option<&str>, port: u16) -> bool {
    match netns {
        None => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        Some(ns) => Command::new("ip")
            .args(["netns", "exec", ns, "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}"))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// [`start_osken`] in network namespace `netns` (xennetd's, see
/// [`Harness::daemon_netns`]), None: ours.
pub fn start_osken_in(netns: Option<&str>, port: u16, log: &Path) -> ChildGuard {
    start_osken_app(
        netns,
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/osken_l2switch.py"),
        port,
        log,
    )
}

/// Run the os-ken app file `app` (in tests/peers) listening on
/// 127.0.0.1:`port`, its output in `log`; waits until it listens.
pub fn start_osken_app(netns: Option<&str>, app: &str, port: u16, log: &Path) -> ChildGuard {
    let py = osken_python();
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(py);
            c
        }
        None => Command::new(py),
    };
    let child = cmd
        .arg(app)
        .args(["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port"])
        .arg(port.to_string())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    let end = Instant::now() + WAIT;
    while !listening(netns, port) {
        assert!(
            Instant::now() < end,
            "os-ken did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    guard
}

/// tests/common/portsec.py: frames port security must stop, sent by a
/// guest's stack, and a watcher for them.
pub const PORTSEC_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/portsec.py");

impl Harness {
    /// Send one frame of `kind` (see tests/common/portsec.py) from guest
    /// `domid`'s eth0.
    pub fn send_frame(&self, domid: u16, kind: &str) {
        require_tool("python3", "python3");
        let o = self.exec(domid, &["python3", PORTSEC_PY, "send", kind]);
        assert!(o.status.success(), "portsec.py send {kind}: {o:?}");
    }

    /// Watch guest `domid`'s eth0 for the frames [`Harness::send_frame`]
    /// sends (the watcher is listening when this returns).
    pub fn watch_frames(&self, domid: u16) -> FrameWatch {
        require_tool("python3", "python3");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.netns(domid)])
            .args(["python3", PORTSEC_PY, "watch"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (apt-get install python3)");
        let out = child.stdout.take().unwrap();
        let guard = ChildGuard(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv().expect("portsec.py watch exited");
        assert_eq!(first, "ready");
        FrameWatch {
            _child: guard,
            rx,
            seen: Vec::new(),
        }
    }

    /// Counter `name` of vif `vif` in `xennet/vif-stats`.
    pub fn vif_counter(&self, vif: &str, name: &str) -> u64 {
        let stats: serde_json::Value =
            serde_json::from_str(&self.appctl(&["xennet/vif-stats", vif])).unwrap();
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
    }
}

/// What a guest's eth0 received of the marked frames (killed on drop).
pub struct FrameWatch {
    _child: ChildGuard,
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl FrameWatch {
    /// The kinds received so far.
    pub fn seen(&mut self) -> &[String] {
        while let Ok(k) = self.rx.try_recv() {
            self.seen.push(k);
        }
        &self.seen
    }

    /// Whether a frame of `kind` was received.
    pub fn got(&mut self, kind: &str) -> bool {
        self.seen().iter().any(|k| k == kind)
    }
}

// Test frames, built with etherparse (valid lengths and checksums) rather
// than by hand, and as hex digits for `ovs-ofctl packet-out` and
// `ovs-appctl ofproto/trace`.

/// The MAC of emulated guest `domid` (`02:00:00:00:00:<domid>`).
pub fn guest_mac(domid: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, domid]
}

/// `frame` as lowercase hex digits.
pub fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

/// A broadcast ARP request (RFC 826) from `mac`/`sender` for `target`.
pub fn arp_request(mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = etherparse::Ethernet2Header {
        source: mac,
        destination: [0xff; 6],
        ether_type: etherparse::EtherType::ARP,
    }
    .to_bytes()
    .to_vec();
    // Ethernet, IPv4, 6- and 4-byte addresses, request.
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// An IPv4/UDP frame (TTL 64).
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    (sport, dport): (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .expect("building a UDP frame");
    v
}

/// An IPv4 ICMP echo request (TTL 64, no data).
pub fn icmp_echo_request(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    (id, seq): (u16, u16),
) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .icmpv4_echo_request(id, seq)
        .write(&mut v, &[])
        .expect("building an ICMP echo request");
    v
}

/// An IPv4 SCTP frame (TTL 64) with one 1-byte DATA chunk (RFC 9260;
/// the CRC left zero: nothing here checks it).
pub fn sctp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    (sport, dport): (u16, u16),
) -> Vec<u8> {
    let mut sctp = sport.to_be_bytes().to_vec();
    sctp.extend(dport.to_be_bytes());
    // Verification tag 1, CRC 0; DATA chunk: type 0, flags 3, length 5,
    // the byte 'x' and padding.
    sctp.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 5, b'x', 0, 0, 0]);
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .write(&mut v, etherparse::IpNumber::SCTP, &sctp)
        .expect("building an SCTP frame");
    v
}

/// An IPv6 neighbour solicitation (RFC 4861) from `mac`/`src` for
/// `target`, to its solicited-node multicast address, with a source
/// link-layer address option and IPv6 flow label `label` (20 bits).
pub fn neighbour_solicitation(
    mac: [u8; 6],
    src: [u8; 16],
    target: [u8; 16],
    label: u32,
) -> Vec<u8> {
    let mut dst = [0u8; 16];
    dst[..2].copy_from_slice(&[0xff, 0x02]);
    dst[11..13].copy_from_slice(&[0x01, 0xff]);
    dst[13..].copy_from_slice(&target[13..]);
    let dst_mac = [0x33, 0x33, dst[12], dst[13], dst[14], dst[15]];
    let mut body = target.to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&mac);
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(mac, dst_mac)
        .ipv6(src, dst, 255)
        .icmpv6(etherparse::Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut v, &body)
        .expect("building a neighbour solicitation");
    // The label is not in the ICMPv6 checksum's pseudo-header.
    let word = (6u32 << 28) | (label & 0xf_ffff);
    v[14..18].copy_from_slice(&word.to_be_bytes());
    v
}

/// `frame` with VLAN tags `(TPID, TCI)` (outer first) inserted after its
/// MAC addresses.
pub fn with_tags(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    for (tpid, tci) in tags {
        v.extend(tpid.to_be_bytes());
        v.extend(tci.to_be_bytes());
    }
    v.extend_from_slice(&frame[12..]);
    v
}

/// `frame` padded with zeros to Ethernet's 60-byte minimum (without FCS).
pub fn padded(frame: &[u8]) -> Vec<u8> {
    let mut v = frame.to_vec();
    if v.len() < 60 {
        v.resize(60, 0);
    }
    v
}

/// Namespaces and veths, removed when dropped.
pub struct Veths {
    /// Namespaces to delete.
    pub netns: Vec<String>,
    /// Links (in our namespace) to delete.
    pub links: Vec<String>,
}

impl Drop for Veths {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).status();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Veths {
    /// Namespaces `{tag}n1` and `{tag}n2`, each with an `eth0` (up, with
    /// the addresses `addrs(i)` gives: `ip addr add` arguments such as
    /// `"fd00::1/64 nodad"`) whose peer `{tag}o{i}` is up here.
    pub fn two(tag: &str, addrs: impl Fn(u32) -> Vec<String>) -> Veths {
        let mut v = Veths {
            netns: Vec::new(),
            links: Vec::new(),
        };
        for i in 1..=2 {
            let ns = format!("{tag}n{i}");
            let outer = format!("{tag}o{i}");
            run_ok("ip", &["netns", "add", &ns]);
            v.netns.push(ns.clone());
            run_ok(
                "ip",
                &[
                    "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            );
            v.links.push(outer.clone());
            run_ok("ip", &["link", "set", &outer, "up"]);
            for a in addrs(i) {
                let mut args = vec!["-n", ns.as_str(), "addr", "add"];
                args.extend(a.split_whitespace());
                args.extend(["dev", "eth0"]);
                run_ok("ip", &args);
            }
            run_ok("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        v
    }
}

/// xennetd on the host with bridge br0 of `{tag}o1` (receiving through the
/// TPACKET_V3 block ring) and `{tag}o2` (the default TPACKET_V2 frame
/// ring), from a TOML configuration.
pub fn start_on_two_veths(test: &str, tag: &str) -> Harness {
    let cfg = std::env::temp_dir().join(format!("xennet-{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"{tag}o1\"\nrx_ring = true\n\
             [[bridge.port]]\nname = \"{tag}o2\"\n[emulated_xen]\nenabled = true\nbridge = \"br0\"\nrepresentors = false\n"
        ),
    )
    .unwrap();
    let h = Harness::start_host_with(test, &["--config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&cfg);
    h
}
