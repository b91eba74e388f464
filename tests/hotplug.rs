//! Xen vif hotplug against the real ovsdb-server: xennetd `--db` with
//! `[emulated_xen] hotplug = "script"` waits for the hotplug script, and
//! `scripts/vif-xennet`, run with the environment the toolstack gives it
//! (`vif`, `XENBUS_PATH`, `XENSTORED_PATH`, `OVS_RUNDIR`), puts the vif on
//! its bridge with the real ovs-vsctl and reports `hotplug-status`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{require_tool, Harness};
use xennet_ovsdb::test_utils::OvsdbServer;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/vif-xennet");

/// Run a real xenstore client against `sock`.
fn xs_tool(sock: &Path, tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .env("XENSTORED_PATH", sock)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool}: {e}: apt-get install xenstore-utils (scripts/test installs it)")
        })
}

fn xs_read(sock: &Path, path: &str) -> String {
    let o = xs_tool(sock, "xenstore-read", &[path]);
    if o.status.success() {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    } else {
        String::new()
    }
}

fn xs_write(sock: &Path, kv: &[&str]) {
    let o = xs_tool(sock, "xenstore-write", kv);
    assert!(o.status.success(), "xenstore-write {kv:?}: {o:?}");
}

/// What libxl writes for a domain before its devices: `/local/domain/<d>/vm`
/// pointing at `/vm/<uuid>` with the VM's name and uuid.
fn write_vm_nodes(sock: &Path, domid: u16) -> String {
    let uuid = format!("6f1c0000-0000-4000-8000-{domid:012}");
    let vm = format!("/vm/{uuid}");
    xs_write(
        sock,
        &[
            &format!("/local/domain/{domid}/vm"),
            &vm,
            &format!("{vm}/name"),
            &format!("guest{domid}"),
            &format!("{vm}/uuid"),
            &uuid,
        ],
    );
    uuid
}

/// Run `scripts/vif-xennet ARGS` as the toolstack would for vif
/// `vif<domid>.0`, with `XENBUS_PATH` = `xenbus_path`.
fn run_script(sock: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    require_tool("bash", "bash");
    Command::new(SCRIPT)
        .args(args)
        .env("XENSTORED_PATH", sock)
        .envs(env.iter().copied())
        .output()
        .expect("running scripts/vif-xennet")
}

/// The toolstack's side: once the guest's backend directory exists, run
/// the hotplug script `online` (in a thread, while the guest waits for
/// the backend to connect); returns the script's output.
fn hotplug_when_created(
    sock: PathBuf,
    domid: u16,
    xenbus_path: String,
    ovs_rundir: PathBuf,
) -> std::thread::JoinHandle<Output> {
    std::thread::spawn(move || {
        let be = format!("/local/domain/0/backend/vif/{domid}/0");
        let end = Instant::now() + common::WAIT;
        while xs_read(&sock, &format!("{be}/bridge")).is_empty() {
            assert!(Instant::now() < end, "{be} never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The frontend is ready, but the backend waits for the script.
        let fe = format!("/local/domain/{domid}/device/vif/0");
        while xs_read(&sock, &format!("{fe}/state")) != "3" {
            assert!(Instant::now() < end, "{fe} never Initialised");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(xs_read(&sock, &format!("{be}/state")), "2", "not InitWait");
        assert_eq!(xs_read(&sock, &format!("{be}/hotplug-status")), "");
        let vif = format!("vif{domid}.0");
        run_script(
            &sock,
            &[
                ("vif", vif.as_str()),
                ("XENBUS_PATH", xenbus_path.as_str()),
                ("OVS_RUNDIR", ovs_rundir.to_str().unwrap()),
            ],
            &["online"],
        )
    })
}

fn assert_ok(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Start xennetd on `db` with `hotplug = "script"` (in its own network
/// namespace, where it makes the vifs' representor devices).
fn start_xennetd(test: &str, db: &OvsdbServer) -> Harness {
    start_xennetd_with(test, db, "")
}

/// As [`start_xennetd`], with more `[emulated_xen]` keys.
fn start_xennetd_with(test: &str, db: &OvsdbServer, extra: &str) -> Harness {
    let cfg = db.path("xennetd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[bridge]]\nname = \"br0\"\n\n[emulated_xen]\nenabled = true\nbridge = \"br0\"\n\
             xenstored = \"xenstored.sock\"\nhotplug = \"script\"\n{extra}"
        ),
    )
    .unwrap();
    let h = Harness::start_with(
        test,
        &["--config", cfg.to_str().unwrap(), "--db", &db.addr()],
    );
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xenstored socket", || sock.exists());
    h
}

#[test]
fn vif_xennet_puts_vifs_on_their_vlan_and_reports_hotplug_status() {
    let db = OvsdbServer::start("hotplug");
    let mut h = start_xennetd("hp", &db);
    let sock = h.rundir.join("xenstored.sock");
    db.vsctl_ok(&["add-br", "br0"]);
    let xsock = sock.to_str().unwrap().to_string();

    // Guest 1 with an absolute XENBUS_PATH, guest 2 with the relative one
    // the toolstack gives (relative to dom0's home).
    let mut uuids = Vec::new();
    for (d, path) in [
        (1u16, "/local/domain/0/backend/vif/1/0".to_string()),
        (2, "backend/vif/2/0".to_string()),
    ] {
        uuids.push(write_vm_nodes(&sock, d));
        let script = hotplug_when_created(sock.clone(), d, path, db.dir().to_path_buf());
        h.guest_with(d, &["--xenstore", &xsock, "--bridge", "br0.10:20"]);
        let out = script.join().unwrap();
        assert_ok(&format!("vif-xennet online for vif{d}.0"), &out);
    }
    for (d, uuid) in [(1u16, &uuids[0]), (2, &uuids[1])] {
        let be = format!("/local/domain/0/backend/vif/{d}/0");
        let vif = format!("vif{d}.0");
        assert_eq!(xs_read(&sock, &format!("{be}/hotplug-status")), "connected");
        assert_eq!(xs_read(&sock, &format!("{be}/state")), "4", "{}", h.log());
        assert_eq!(db.vsctl_no_wait(&["port-to-br", &vif]), "br0");
        assert_eq!(db.vsctl_no_wait(&["get", "port", &vif, "tag"]), "10");
        assert_eq!(db.vsctl_no_wait(&["get", "port", &vif, "trunks"]), "[20]");
        let ids = db.vsctl_no_wait(&["get", "interface", &vif, "external_ids"]);
        let mac = xs_read(&sock, &format!("{be}/mac"));
        assert!(!mac.is_empty());
        for want in [
            format!("attached-mac=\"{mac}\""),
            format!("xen-vm-name=guest{d}"),
            format!("xen-vm-uuid=\"{uuid}\""),
        ] {
            assert!(ids.contains(&want), "{want} not in {ids}");
        }
        let ofport: i64 = db
            .vsctl_no_wait(&["get", "interface", &vif, "ofport"])
            .parse()
            .unwrap();
        assert!(ofport > 0, "{vif} ofport {ofport}\n{}", h.log());
    }
    assert!(
        h.ping(1, 2, 2),
        "ping 1 -> 2 on VLAN 10 failed\n{}",
        h.log()
    );
    // Guest 3 on plain br0 (no VLAN): an untagged access port, isolated
    // from VLAN 10.
    write_vm_nodes(&sock, 3);
    let script = hotplug_when_created(
        sock.clone(),
        3,
        "backend/vif/3/0".into(),
        db.dir().to_path_buf(),
    );
    h.guest_with(3, &["--xenstore", &xsock, "--bridge", "br0"]);
    assert_ok("vif-xennet online for vif3.0", &script.join().unwrap());
    assert_eq!(db.vsctl_no_wait(&["get", "port", "vif3.0", "tag"]), "[]");
    assert_eq!(db.vsctl_no_wait(&["get", "port", "vif3.0", "trunks"]), "[]");
    assert!(h.ping_fails(3, 1), "untagged vif3.0 reached VLAN 10");

    // A guest whose hotplug script fails (a bridge that does not exist) is
    // refused by the backend: error node, state Closing, not on a bridge.
    write_vm_nodes(&sock, 5);
    let script = hotplug_when_created(
        sock.clone(),
        5,
        "backend/vif/5/0".into(),
        db.dir().to_path_buf(),
    );
    h.guest_spawn(5, &["--xenstore", &xsock, "--bridge", "br7.10"]);
    let out = script.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("add-port br7 vif5.0 failed"),
        "{out:?}"
    );
    // The backend went Closing on hotplug-status = error; the refused
    // guest then exits and its vif directories go as on domain death, so
    // only the error node stays.
    h.wait_for("the backend's error node", || {
        !xs_read(&sock, "/local/domain/0/error/backend/vif/5/0/error").is_empty()
    });
    assert!(
        h.log()
            .contains("vif5.0: backend state InitWait -> Closing"),
        "{}",
        h.log()
    );
    let err = xs_read(&sock, "/local/domain/0/error/backend/vif/5/0/error");
    assert!(err.contains("hotplug script failed"), "{err}");
    assert!(!db.vsctl_no_wait(&["list-ports", "br0"]).contains("vif5.0"));

    // A bridge value vif-openvswitch's regex refuses: exit 1, the cause in
    // hotplug-error, hotplug-status = error, nothing added.
    let be4 = "backend/vif/4/0";
    xs_write(
        &sock,
        &[
            &format!("{be4}/bridge"),
            "br0.ten",
            &format!("{be4}/frontend-id"),
            "4",
        ],
    );
    let out = run_script(
        &sock,
        &[("vif", "vif4.0"), ("XENBUS_PATH", be4)],
        &[&format!("--db={}", db.addr()), "online"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = xs_read(&sock, &format!("/local/domain/0/{be4}/hotplug-error"));
    assert!(
        err.contains("bridge failed") && err.contains("br0.ten"),
        "hotplug-error: {err}"
    );
    assert_eq!(
        xs_read(&sock, &format!("/local/domain/0/{be4}/hotplug-status")),
        "error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no valid bridge"));
    assert!(!db.vsctl_no_wait(&["list-ports", "br0"]).contains("vif4.0"));

    // ovs-vsctl refusing (no such bridge) is reported the same way.
    xs_write(&sock, &[&format!("{be4}/bridge"), "br9"]);
    write_vm_nodes(&sock, 4);
    xs_write(&sock, &[&format!("{be4}/mac"), "00:16:3e:00:00:04"]);
    let out = run_script(
        &sock,
        &[("vif", "vif4.0"), ("XENBUS_PATH", be4)],
        &[&format!("--db={}", db.addr()), "online"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = xs_read(&sock, &format!("/local/domain/0/{be4}/hotplug-error"));
    assert!(
        err.contains("ovs-vsctl add-port br9 vif4.0 failed") && err.contains("br9"),
        "hotplug-error: {err}"
    );

    // In a driver domain the script cannot read the guest's VM name and
    // uuid (libxl lets a backend domain read only the vif's frontend
    // directory): the vif still goes on its bridge, without those
    // external-ids, and the script says why.
    let be6 = "backend/vif/6/0";
    xs_write(
        &sock,
        &[
            &format!("{be6}/bridge"),
            "br0",
            &format!("{be6}/frontend-id"),
            "6",
            &format!("{be6}/mac"),
            "00:16:3e:00:00:06",
        ],
    );
    let out = run_script(
        &sock,
        &[("vif", "vif6.0"), ("XENBUS_PATH", be6)],
        &[&format!("--db={}", db.addr()), "online"],
    );
    assert_ok("vif-xennet online without VM nodes", &out);
    assert_eq!(
        xs_read(&sock, &format!("/local/domain/0/{be6}/hotplug-status")),
        "connected"
    );
    let ids = db.vsctl_no_wait(&["get", "interface", "vif6.0", "external_ids"]);
    assert!(
        ids.contains("attached-mac=\"00:16:3e:00:00:06\"") && !ids.contains("xen-vm-name"),
        "{ids}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not readable here"),
        "{out:?}"
    );
    let out = run_script(
        &sock,
        &[("vif", "vif6.0"), ("XENBUS_PATH", be6)],
        &[&format!("--db={}", db.addr()), "offline"],
    );
    assert_ok("vif-xennet offline vif6.0", &out);

    // offline: the port goes, and with it the traffic.
    let out = run_script(
        &sock,
        &[("vif", "vif2.0"), ("XENBUS_PATH", "backend/vif/2/0")],
        &[&format!("--db={}", db.addr()), "offline"],
    );
    assert_ok("vif-xennet offline", &out);
    let ports = db.vsctl_no_wait(&["list-ports", "br0"]);
    assert!(
        ports.contains("vif1.0") && !ports.contains("vif2.0"),
        "{ports}"
    );
    // ovs-vsctl waited for xennetd to apply it.
    assert!(h.ping_fails(1, 2), "{}", h.log());
}

/// Debian's unmodified vif-openvswitch (xen-utils-common): installed, or
/// extracted by scripts/test into `$XENNET_PEERS_DIR/xen-utils-common`.
fn vif_openvswitch() -> PathBuf {
    let peers = std::env::var_os("XENNET_PEERS_DIR").unwrap_or_else(|| "/opt/xennet-peers".into());
    let candidates = [
        PathBuf::from("/etc/xen/scripts/vif-openvswitch"),
        Path::new(&peers).join("xen-utils-common/etc/xen/scripts/vif-openvswitch"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "vif-openvswitch not found in {candidates:?}: run scripts/test (it extracts \
                 xen-utils-common there with apt-get download + dpkg-deb -x), or apt-get install \
                 xen-utils-common"
            )
        })
}

/// `/var/log/xen`, where vif-openvswitch sends its stderr: made if
/// missing, and removed when the last test using it is done (tests run in
/// parallel threads of this process).
struct XenLogDir;

/// (tests using /var/log/xen, whether we made it)
static XEN_LOG_DIR: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

impl XenLogDir {
    fn new() -> XenLogDir {
        let mut g = XEN_LOG_DIR.lock().unwrap_or_else(|e| e.into_inner());
        let dir = Path::new("/var/log/xen");
        if g.0 == 0 {
            g.1 = !dir.exists();
        }
        std::fs::create_dir_all(dir).unwrap();
        g.0 += 1;
        XenLogDir
    }
}

impl Drop for XenLogDir {
    fn drop(&mut self) {
        let mut g = XEN_LOG_DIR.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 && g.1 && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all("/var/log/xen");
        }
    }
}

/// Run Debian's vif-openvswitch `cmd` for `vif` in xennetd's network
/// namespace (where the representor devices are), as the toolstack would.
fn run_vif_openvswitch(
    h: &Harness,
    script: &Path,
    cmd: &str,
    sock: &Path,
    vif: &str,
    be: &str,
    rundir: &Path,
) -> Output {
    let ns = h.daemon_netns().expect("xennetd runs in its own namespace");
    Command::new("ip")
        .args(["netns", "exec", ns, "bash"])
        .arg(script)
        .arg(cmd)
        .env("XENSTORED_PATH", sock)
        .env("vif", vif)
        .env("XENBUS_PATH", be)
        .env("OVS_RUNDIR", rundir)
        .output()
        .expect("running vif-openvswitch")
}

/// Whether device `dev` exists in xennetd's namespace, and its `ip link`
/// line.
fn link(h: &Harness, dev: &str) -> Option<String> {
    let o = h.daemon_exec(&["ip", "-o", "link", "show", "dev", dev]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A raw `AF_PACKET` socket on `dev` in network namespace `ns`, with the
/// device in promiscuous mode (`PACKET_MR_PROMISC`), as tcpdump opens it;
/// reads time out after 200 ms.
fn capture_socket(ns: &str, dev: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let (ns, dev) = (ns.to_owned(), dev.to_owned());
    std::thread::spawn(move || {
        // Only this thread enters the namespace; the socket stays in it.
        let nsf = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        // SAFETY: plain syscalls on valid fds and NUL-terminated strings;
        // every struct lives across the call that reads it.
        unsafe {
            assert_eq!(libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET), 0);
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let cname = std::ffi::CString::new(dev.clone()).unwrap();
            let ifindex = libc::if_nametoindex(cname.as_ptr());
            assert!(ifindex > 0, "no device {dev} in {ns}");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            let r = libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex as i32,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            let r = libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as u32,
            );
            assert_eq!(r, 0, "PACKET_ADD_MEMBERSHIP");
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            let r = libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            assert_eq!(r, 0, "SO_RCVTIMEO");
            fd
        }
    })
    .join()
    .unwrap()
}

/// ICMP echo (type 8) and echo reply (type 0) frames read from `fd` until
/// it times out: (type, source, destination).
fn icmp_frames(fd: &std::os::fd::OwnedFd) -> Vec<(u8, [u8; 4], [u8; 4])> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return out;
        }
        let f = &buf[..n as usize];
        // Untagged IPv4 carrying ICMP.
        if f.len() >= 14 + 20 + 8 && f[12..14] == [0x08, 0x00] && f[14 + 9] == 1 {
            let ihl = usize::from(f[14] & 0x0f) * 4;
            if let Some(&t) = f.get(14 + ihl) {
                let src = [f[26], f[27], f[28], f[29]];
                let dst = [f[30], f[31], f[32], f[33]];
                out.push((t, src, dst));
            }
        }
    }
}

/// Debian's unmodified vif-openvswitch connects guest 97: its representor
/// device `vif97.0` exists before the script runs (as Linux netback's), the
/// script's `ip link` commands work on it, and a promiscuous packet socket
/// on it (what tcpdump opens) sees guest 97's ping to guest 98, set up with
/// vif-xennet on VLAN 10, both ways. The device goes with the guest.
#[test]
fn unmodified_vif_openvswitch_connects_a_vif() {
    let script = vif_openvswitch();
    require_tool("logger", "bsdutils");
    let db = OvsdbServer::start("vifovs");
    let mut h = start_xennetd("ho", &db);
    let sock = h.rundir.join("xenstored.sock");
    let xsock = sock.to_str().unwrap().to_string();
    db.vsctl_ok(&["add-br", "br0"]);
    let _log_dir = XenLogDir::new();

    let uuid = write_vm_nodes(&sock, 97);
    let be = "/local/domain/0/backend/vif/97/0".to_string();
    let rundir = db.dir().to_path_buf();
    let run = {
        let (sock, be, script) = (sock.clone(), be.clone(), script.clone());
        let rundir = rundir.clone();
        let ns = h.daemon_netns().unwrap().to_owned();
        std::thread::spawn(move || {
            let end = Instant::now() + common::WAIT;
            while xs_read(&sock, &format!("{be}/bridge")).is_empty() {
                assert!(Instant::now() < end, "{be} never appeared");
                std::thread::sleep(Duration::from_millis(50));
            }
            // The representor exists before the hotplug script runs.
            let exists = || {
                Command::new("ip")
                    .args(["-n", &ns, "link", "show", "dev", "vif97.0"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            while !exists() {
                assert!(Instant::now() < end, "representor vif97.0 never appeared");
                std::thread::sleep(Duration::from_millis(20));
            }
            Command::new("ip")
                .args(["netns", "exec", &ns, "bash"])
                .arg(&script)
                .arg("online")
                .env("XENSTORED_PATH", &sock)
                .env("vif", "vif97.0")
                .env("XENBUS_PATH", &be)
                .env("OVS_RUNDIR", &rundir)
                .output()
                .expect("running vif-openvswitch")
        })
    };
    h.guest_with(97, &["--xenstore", &xsock, "--bridge", "br0.10:20"]);
    let out = run.join().unwrap();
    let hotplug_log = std::fs::read_to_string("/var/log/xen/xen-hotplug.log").unwrap_or_default();
    assert!(
        out.status.success(),
        "vif-openvswitch online: {out:?}\nxen-hotplug.log:\n{hotplug_log}\n{}",
        h.log()
    );
    assert_eq!(xs_read(&sock, &format!("{be}/hotplug-status")), "connected");
    assert_eq!(xs_read(&sock, &format!("{be}/state")), "4", "{}", h.log());
    assert_eq!(db.vsctl_no_wait(&["port-to-br", "vif97.0"]), "br0");
    assert_eq!(db.vsctl_no_wait(&["get", "port", "vif97.0", "tag"]), "10");
    assert_eq!(
        db.vsctl_no_wait(&["get", "port", "vif97.0", "trunks"]),
        "[20]"
    );
    let ids = db.vsctl_no_wait(&["get", "interface", "vif97.0", "external_ids"]);
    let mac = xs_read(&sock, &format!("{be}/mac"));
    for want in [
        format!("attached-mac=\"{mac}\""),
        "xen-vm-name=guest97".to_string(),
        format!("xen-vm-uuid=\"{uuid}\""),
    ] {
        assert!(ids.contains(&want), "{want} not in {ids}");
    }
    // The script brought the device up; it has netback's address.
    let l = link(&h, "vif97.0").expect("vif97.0 is gone");
    assert!(l.contains(",UP") && l.contains("fe:ff:ff:ff:ff:ff"), "{l}");

    write_vm_nodes(&sock, 98);
    let other = hotplug_when_created(sock.clone(), 98, "backend/vif/98/0".into(), rundir.clone());
    h.guest_with(98, &["--xenstore", &xsock, "--bridge", "br0.10"]);
    assert_ok("vif-xennet online for vif98.0", &other.join().unwrap());
    assert!(
        h.ping(97, 98, 2),
        "ping 97 -> 98 on VLAN 10 failed\n{}",
        h.log()
    );
    // Unwatched, nothing is mirrored.
    assert!(
        h.appctl(&["xennet/representor-show"])
            .lines()
            .any(|l| l.starts_with("vif97.0") && l.contains(" no ")),
        "{}",
        h.appctl(&["xennet/representor-show"])
    );

    // tcpdump's view: a promiscuous packet socket sees the ping both ways
    // (mirroring starts within the housekeeping interval: ping until seen).
    let cap = capture_socket(h.daemon_netns().unwrap(), "vif97.0");
    let (g97, g98) = ([10, 251, 0, 97], [10, 251, 0, 98]);
    let end = Instant::now() + common::WAIT;
    let (mut request, mut reply) = (false, false);
    while !(request && reply) {
        assert!(
            Instant::now() < end,
            "no mirrored ping on vif97.0 (request {request}, reply {reply})\n{}\n{}",
            h.appctl(&["xennet/representor-show"]),
            h.log()
        );
        h.ping(97, 98, 1);
        for (t, src, dst) in icmp_frames(&cap) {
            request |= t == 8 && src == g97 && dst == g98;
            reply |= t == 0 && src == g98 && dst == g97;
        }
    }
    drop(cap);
    let show = h.appctl(&["xennet/representor-show"]);
    assert!(
        show.lines()
            .any(|l| l.starts_with("vif98.0") && l.contains(" no ")),
        "only the watched representor mirrors:\n{show}"
    );

    // offline removes the port.
    let out = run_vif_openvswitch(&h, &script, "offline", &sock, "vif97.0", &be, &rundir);
    assert!(out.status.success(), "vif-openvswitch offline: {out:?}");
    assert!(!db.vsctl_no_wait(&["list-ports", "br0"]).contains("vif97.0"));
    assert!(h.ping_fails(97, 98));

    // The representor goes with the backend device (the domain dies).
    h.kill_guest(97);
    h.wait_for("vif97.0 to go", || link(&h, "vif97.0").is_none());
    assert!(link(&h, "vif98.0").is_some());
    // The scripts' attached-mac parsed and agreed with the backend's mac
    // (port security warns otherwise).
    assert!(!h.log().contains("attached-mac"), "{}", h.log());
}

/// An operator configured port vif99.0 beforehand; the guest's bridge
/// setting is one vif-openvswitch refuses (`br0.ten`), so the script fails:
/// it writes `hotplug-error` and `hotplug-status = error`, the backend
/// refuses the vif, and xennetd logs the cause and shows it in the
/// Interface's `error` column (`ovs-vsctl list interface`).
#[test]
fn a_failed_hotplug_script_shows_in_the_interface_error_column() {
    let script = vif_openvswitch();
    require_tool("logger", "bsdutils");
    let db = OvsdbServer::start("vifovserr");
    let mut h = start_xennetd("hoerr", &db);
    let sock = h.rundir.join("xenstored.sock");
    let xsock = sock.to_str().unwrap().to_string();
    db.vsctl_ok(&["add-br", "br0"]);
    db.vsctl_ok(&["add-port", "br0", "vif99.0"]);
    let waiting = db.vsctl_no_wait(&["get", "interface", "vif99.0", "error"]);
    assert!(waiting.contains("waiting for domain 99"), "{waiting}");
    let _log_dir = XenLogDir::new();
    write_vm_nodes(&sock, 99);
    let be = "/local/domain/0/backend/vif/99/0".to_string();
    h.guest_spawn(99, &["--xenstore", &xsock, "--bridge", "br0.ten"]);
    h.wait_for("the representor", || link(&h, "vif99.0").is_some());
    let out = run_vif_openvswitch(&h, &script, "online", &sock, "vif99.0", &be, db.dir());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let mut error = String::new();
    h.wait_for("the hotplug error in Interface:error", || {
        error = db.vsctl_no_wait(&["get", "interface", "vif99.0", "error"]);
        error.contains("hotplug script failed")
    });
    assert!(error.contains("No valid bridge was specified"), "{error}");
    let listed = db.vsctl_no_wait(&["list", "interface", "vif99.0"]);
    assert!(
        listed.contains("error               : \"hotplug script failed: No valid bridge"),
        "{listed}"
    );
    assert_eq!(
        db.vsctl_no_wait(&["get", "interface", "vif99.0", "ofport"]),
        "-1"
    );
    assert!(
        h.log()
            .contains("vif99.0: hotplug script failed: No valid bridge was specified"),
        "{}",
        h.log()
    );
}
