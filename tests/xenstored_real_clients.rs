//! `xennet-xenstored` against Debian's real xenstore clients
//! (xenstore-utils, libxenstore4) through `XENSTORED_PATH`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xennet_vif::xenstore::{Access, Client, Perm};

/// The path of a xenstore client tool; fails (never skips) if missing.
fn tool(name: &str) -> PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: apt-get install xenstore-utils (scripts/test installs it)")
        })
}

/// A running `xennet-xenstored` in its own temp dir; killed on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(test: &str) -> Daemon {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xennet-xsrc-{}-{}-{}",
            std::process::id(),
            test,
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_xennet-xenstored"))
            .arg("--socket")
            .arg(dir.join("xs.sock"))
            .arg("--pidfile")
            .arg(dir.join("xs.pid"))
            .stderr(std::fs::File::create(dir.join("xs.log")).unwrap())
            .spawn()
            .expect("spawning xennet-xenstored");
        let d = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.pidfile().exists() {
            assert!(Instant::now() < deadline, "xennet-xenstored did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("xs.sock")
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("xs.pid")
    }

    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(tool(name));
        c.env("XENSTORED_PATH", self.socket())
            .env_remove("XENSTORED_RUNDIR")
            .stdin(Stdio::null());
        c
    }

    /// Runs a tool to completion.
    fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name).args(args).output().expect(name)
    }

    /// Runs a tool that must succeed; returns its stdout.
    fn ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.run(name, args);
        assert!(
            out.status.success(),
            "{name} {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn client(&self) -> Client {
        Client::connect(self.socket()).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn write_read_ls_list_exists_rm_chmod() {
    let d = Daemon::start("ops");
    // Several pairs in one call (xenstore-write wraps them in a transaction).
    d.ok(
        "xenstore-write",
        &["/vm/a", "1", "/vm/b", "two words", "/vm/sub/c", "3"],
    );
    assert_eq!(d.ok("xenstore-read", &["/vm/a", "/vm/b"]), "1\ntwo words\n");
    assert_eq!(d.ok("xenstore-list", &["/vm"]), "a\nb\nsub\n");
    let ls = d.ok("xenstore-ls", &["/vm"]);
    assert!(ls.contains("a = \"1\"\n"), "{ls}");
    assert!(ls.contains("b = \"two words\"\n"), "{ls}");
    assert!(ls.contains("sub = \"\"\n c = \"3\"\n"), "{ls}");
    let root = d.ok("xenstore-ls", &[]);
    assert!(
        root.contains("local = \"\"\n domain = \"\"\n  0 = \"\"\n"),
        "{root}"
    );

    // Our client sees what the real one wrote, and vice versa.
    let c = d.client();
    assert_eq!(c.read("/vm/b").unwrap(), b"two words");
    c.write("/vm/rust", "from rust").unwrap();
    assert_eq!(d.ok("xenstore-read", &["/vm/rust"]), "from rust\n");

    assert!(d.run("xenstore-exists", &["/vm/a"]).status.success());
    assert!(!d.run("xenstore-exists", &["/vm/nope"]).status.success());
    let missing = d.run("xenstore-read", &["/vm/nope"]);
    assert!(!missing.status.success());

    d.ok("xenstore-chmod", &["/vm/a", "r1", "w2"]);
    assert_eq!(
        c.get_perms("/vm/a").unwrap(),
        [Perm::new(Access::Read, 1), Perm::new(Access::Write, 2)]
    );
    let lsp = d.ok("xenstore-ls", &["-p", "/vm"]);
    let line = lsp
        .lines()
        .find(|l| l.starts_with("a = "))
        .unwrap_or_default();
    assert!(line.ends_with("(r1,w2)"), "{lsp}");
    let line = lsp
        .lines()
        .find(|l| l.starts_with("b = "))
        .unwrap_or_default();
    assert!(line.ends_with("(n0)"), "{lsp}");

    d.ok("xenstore-rm", &["/vm/a"]);
    assert!(!d.run("xenstore-exists", &["/vm/a"]).status.success());
    d.ok("xenstore-rm", &["/vm/sub"]);
    assert_eq!(d.ok("xenstore-list", &["/vm"]), "b\nrust\n");
    assert!(!c.exists("/vm/sub/c").unwrap());
}

#[test]
fn watch_prints_initial_and_changed_paths() {
    let d = Daemon::start("watch");
    d.ok("xenstore-write", &["/w", ""]);
    let mut watcher = d
        .cmd("xenstore-watch")
        .args(["-n", "2", "/w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xenstore-watch");
    // Keep writing until the watcher has seen its two events (the first is
    // the initial event; a write before registration is simply missed).
    let c = d.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = watcher.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = watcher.kill();
            let _ = watcher.wait();
            panic!("xenstore-watch -n 2 did not finish");
        }
        c.write("/w/x", "1").unwrap();
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    if let Some(mut so) = watcher.stdout.take() {
        so.read_to_string(&mut out).unwrap();
    }
    assert!(status.success(), "xenstore-watch: {status}: {out}");
    assert_eq!(out, "/w\n/w/x\n");
}

#[test]
fn sigterm_stops_and_cleans_up() {
    let mut d = Daemon::start("term");
    let pid = std::fs::read_to_string(d.pidfile()).unwrap();
    assert_eq!(pid.trim(), d.child.id().to_string());
    d.ok("xenstore-write", &["/x", "1"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(d.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!Path::new(&d.socket()).exists());
    assert!(!d.pidfile().exists());
}
