//! Many guests at once (issue 19 item 4): 256 emulated guests
//! (`xennet-guest` processes) started together against one xennetd all
//! reach Connected through its emulated xenstored, and the backend then
//! holds no thread per vif and a bounded number of descriptors per vif.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{run_ok, Harness};

/// Guests started at once.
const GUESTS: u16 = 256;

/// The guests' processes and their shared namespace, killed and removed
/// on drop.
struct Guests {
    netns: String,
    children: Vec<(u16, Child)>,
}

impl Drop for Guests {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
        }
        for (_, c) in &mut self.children {
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// Threads of process `pid` (`/proc/<pid>/task`).
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Names of process `pid`'s threads, with how many have each.
fn thread_names(pid: u32) -> String {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|t| {
                let t = t.ok()?;
                std::fs::read_to_string(t.path().join("comm")).ok()
            })
            .map(|n| n.trim().to_owned())
            .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    let mut i = 0;
    while i < names.len() {
        let n = names[i..].iter().take_while(|x| **x == names[i]).count();
        out += &format!("{} x{n}, ", names[i]);
        i += n;
    }
    out
}

/// Process `pid`'s descriptors by kind (`socket`, `anon_inode:[eventfd]`,
/// `/memfd:...`), with how many of each.
fn fd_kinds(pid: u32) -> String {
    let mut kinds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|f| std::fs::read_link(f.ok()?.path()).ok())
                .map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    match l.strip_prefix("anon_inode") {
                        Some(kind) => format!("anon_inode{kind}"),
                        None => l
                            .split(['[', ':', ' '])
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    kinds.sort();
    let mut out = String::new();
    let mut i = 0;
    while i < kinds.len() {
        let n = kinds[i..].iter().take_while(|x| **x == kinds[i]).count();
        out += &format!("{} x{n}, ", kinds[i]);
        i += n;
    }
    out
}

/// What guest `domid` reached: Some(true) connected, Some(false) it
/// exited without connecting (its own deadlines: 10 s per xenbus step),
/// None still on its way.
fn outcome(h: &Harness, domid: u16, child: &mut Child) -> Option<bool> {
    let log = h.rundir.join(format!("guest{domid}.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if text.contains("connected through xenstore") {
        return Some(true);
    }
    match child.try_wait() {
        Ok(Some(_)) => Some(false),
        _ => None,
    }
}

/// 256 guests started together, each through the xenbus handshake on the
/// emulated xenstored (the toolstack's directories, InitWait, the
/// frontend's keys in one transaction, Connected): every one connects,
/// none is refused, and every vif is on the bridge. Then xennetd has no
/// thread per vif and few descriptors per vif.
#[test]
fn many_guests_connect_at_once() {
    // xennetd starts with the usual soft descriptor limit (systemd's
    // 1024; it inherits ours) and must raise it itself: 256 vifs need
    // more than 2000.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= 4096,
        "the hard descriptor limit {hard} is too low for this test"
    );
    setrlimit(Resource::RLIMIT_NOFILE, 1024, hard).unwrap();
    let h = Harness::start("sc");
    let sock = h.rundir.join("xenstored.sock");
    h.wait_for("xennetd's emulated xenstored socket", || sock.exists());
    let pid = h.daemon_pid();
    let (threads0, fds0) = (threads(pid), h.daemon_fds());

    // One namespace for all guests (a tap each), made once: 256
    // namespaces would cost more than the guests.
    let netns = format!("xt{}scg", std::process::id() % 100_000);
    let _ = Command::new("ip")
        .args(["netns", "del", &netns])
        .stderr(Stdio::null())
        .status();
    run_ok("ip", &["netns", "add", &netns]);
    // No IPv6 on the taps: their router and neighbour solicitations
    // would be flooded to every vif while the others attach.
    for key in ["all", "default"] {
        run_ok(
            "ip",
            &["netns", "exec", &netns, "sysctl", "-qw"]
                .into_iter()
                .chain([format!("net.ipv6.conf.{key}.disable_ipv6=1").as_str()])
                .collect::<Vec<_>>(),
        );
    }
    let mut guests = Guests {
        netns: netns.clone(),
        children: Vec::new(),
    };
    let xs = sock.to_string_lossy().into_owned();
    for domid in 1..=GUESTS {
        let log = std::fs::File::create(h.rundir.join(format!("guest{domid}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_xennet-guest"))
            .arg("--rundir")
            .arg(&h.rundir)
            .args(["--domid", &domid.to_string(), "--netns", &netns])
            .args(["--tap", &format!("g{domid}"), "--xenstore", &xs])
            // 256 backends coming up on a loaded 2-CPU machine can take
            // longer than the default 10 s per step.
            .args(["--step-timeout", "120"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting xennet-guest");
        guests.children.push((domid, child));
    }

    // Each guest either connects or gives up by its own deadlines.
    let mut pending: Vec<u16> = (1..=GUESTS).collect();
    let mut failed = Vec::new();
    while !pending.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        pending.retain(|&d| {
            let child = &mut guests.children[usize::from(d - 1)].1;
            match outcome(&h, d, child) {
                None => true,
                Some(true) => false,
                Some(false) => {
                    failed.push(d);
                    false
                }
            }
        });
    }
    if !failed.is_empty() {
        let first = failed[0];
        let glog =
            std::fs::read_to_string(h.rundir.join(format!("guest{first}.log"))).unwrap_or_default();
        panic!(
            "{} of {GUESTS} guests did not connect: {failed:?}; guest {first}'s log:\n{glog}\nxennetd log tail:\n{}",
            failed.len(),
            h.log()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let table = h.appctl(&["xennet/vif-show"]);
    for d in 1..=GUESTS {
        assert!(
            table.contains(&format!("vif{d}.0 ")),
            "vif{d}.0 missing:\n{table}"
        );
    }
    let log = h.log();
    assert!(!log.contains("refused"), "{log}");

    // No thread per vif: what xennetd has now is what it had with none,
    // give or take its pools (a bound independent of the vif count, far
    // below one per vif).
    // The blocking pool's threads that served the guests' handshakes go
    // a second after their last task.
    h.wait_for("xennetd's handshake threads to go", || {
        threads(pid) <= threads0 + 4
    });
    let threads1 = threads(pid);
    assert!(
        threads1 <= threads0 + 4,
        "xennetd went from {threads0} to {threads1} threads for {GUESTS} vifs: {}",
        thread_names(pid)
    );
    // Descriptors per vif: the emulation's (the guest's registration
    // connection and its emulated xenstored connection, the emulated
    // hypervisor's two eventfds of its event channel) and the backend's
    // own (its end of the event channel, two eventfds here and one
    // /dev/xen/evtchn on Xen; the vif's epoll set and tick timer; the
    // eventfd that hands it fresh rings across an interface reset; the
    // representor device): at most 10, plus a few made once with the
    // first vif (the representors' epoll set and netlink socket).
    let fds1 = h.daemon_fds();
    assert!(
        fds1 <= fds0 + 10 * usize::from(GUESTS) + 8,
        "xennetd went from {fds0} to {fds1} descriptors for {GUESTS} vifs: {}",
        fd_kinds(pid)
    );
    drop(guests);
}
