//! Client ↔ emulated xenstored: operations, permissions, watches,
//! transactions, quotas and hostile input.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xennet_vif::xenstore::wire::{Message, MsgType};
use xennet_vif::xenstore::{
    Access, Client, ErrorCode, Perm, ServerConfig, WatchEvent, XenstoreServer, XsError,
};

/// How long to wait for what should come (60 s: generous for a loaded
/// machine, free when it comes).
const T: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);

fn server() -> XenstoreServer {
    XenstoreServer::new(ServerConfig::default())
}

fn code(e: XsError) -> ErrorCode {
    e.code()
        .cloned()
        .unwrap_or_else(|| panic!("not a remote error: {e}"))
}

fn ev(path: &str, token: &str) -> WatchEvent {
    WatchEvent {
        path: path.into(),
        token: token.into(),
    }
}

/// All events currently queued (waits `SHORT` for stragglers).
fn drain(c: &Client) -> Vec<WatchEvent> {
    let mut v = Vec::new();
    while let Some(e) = c.next_event(SHORT).unwrap() {
        v.push(e);
    }
    v
}

/// The `n` events expected (each waited for up to `T`: the client's
/// reader thread can be stalled for longer than `SHORT` on a loaded
/// machine), then any others queued ([`drain`]).
fn drain_expecting(c: &Client, n: usize) -> Vec<WatchEvent> {
    let mut v = Vec::new();
    while v.len() < n {
        match c.next_event(T).unwrap() {
            Some(e) => v.push(e),
            None => break,
        }
    }
    v.extend(drain(c));
    v
}

fn sock_path(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "xennet-xs-{}-{}-{}.sock",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

#[test]
fn basic_operations() {
    let s = server();
    let c = s.connect_as(0).unwrap();
    c.write("/a/b/c", "hello").unwrap();
    assert_eq!(c.read("/a/b/c").unwrap(), b"hello");
    assert_eq!(c.read_string("/a/b").unwrap(), "");
    c.write("/a/b/d", b"\x00\x01binary").unwrap();
    assert_eq!(c.read("/a/b/d").unwrap(), b"\x00\x01binary");
    c.mkdir("/a/e").unwrap();
    c.mkdir("/a/e").unwrap();
    assert_eq!(c.directory("/a").unwrap(), ["b", "e"]);
    assert_eq!(c.directory("/a/b").unwrap(), ["c", "d"]);
    assert!(c.exists("/a/e").unwrap());
    assert!(!c.exists("/a/zz").unwrap());
    assert_eq!(code(c.read("/nope").unwrap_err()), ErrorCode::Enoent);
    assert_eq!(code(c.directory("/nope").unwrap_err()), ErrorCode::Enoent);
    c.rm("/a/b").unwrap();
    assert!(!c.exists("/a/b/c").unwrap());
    assert_eq!(c.directory("/a").unwrap(), ["e"]);
    // rm of a missing child of an existing node is fine, deeper is ENOENT.
    c.rm("/a/missing").unwrap();
    assert_eq!(code(c.rm("/x/y/z").unwrap_err()), ErrorCode::Enoent);
    assert_eq!(code(c.rm("/").unwrap_err()), ErrorCode::Einval);
    // Relative paths are under the domain's home.
    c.write("rel", "1").unwrap();
    assert_eq!(c.read("/local/domain/0/rel").unwrap(), b"1");
    assert_eq!(c.get_domain_path(7).unwrap(), "/local/domain/7");
    // Bad paths.
    for bad in ["/a//b", "/a b", "@foo", ""] {
        assert_eq!(
            code(c.write(bad, "x").unwrap_err()),
            ErrorCode::Einval,
            "{bad}"
        );
    }
    // Perms round trip.
    let perms = [
        Perm::new(Access::None, 0),
        Perm::new(Access::Read, 1),
        Perm::new(Access::Both, 2),
        Perm::new(Access::Write, 3),
    ];
    c.set_perms("/a/e", &perms).unwrap();
    assert_eq!(c.get_perms("/a/e").unwrap(), perms);
    assert_eq!(c.get_perms("/").unwrap(), [Perm::new(Access::None, 0)]);
}

#[test]
fn big_directory_uses_directory_part() {
    let s = server();
    let c = s.connect_as(0).unwrap();
    let names: Vec<String> = (0..600)
        .map(|i| format!("child-with-a-long-name-{i:04}"))
        .collect();
    c.transaction(|tx| {
        for n in &names {
            tx.write(&format!("/big/{n}"), "v")?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(c.directory("/big").unwrap(), names);
}

#[test]
fn permissions_enforced() {
    let s = server();
    let d0 = s.connect_as(0).unwrap();
    let d5 = s.connect_as(5).unwrap();
    let d6 = s.connect_as(6).unwrap();

    // The toolstack gives dom5 its home, readable by nobody else.
    d0.mkdir("/local/domain/5").unwrap();
    d0.set_perms("/local/domain/5", &[Perm::new(Access::None, 5)])
        .unwrap();
    d0.write("/secret", "s").unwrap();

    // Default n0: unprivileged domains can neither read nor write.
    assert_eq!(code(d5.read("/secret").unwrap_err()), ErrorCode::Eacces);
    assert_eq!(
        code(d5.write("/secret", "x").unwrap_err()),
        ErrorCode::Eacces
    );
    assert_eq!(code(d5.write("/new", "x").unwrap_err()), ErrorCode::Eacces);
    assert_eq!(code(d5.directory("/").unwrap_err()), ErrorCode::Eacces);
    assert_eq!(code(d5.rm("/secret").unwrap_err()), ErrorCode::Eacces);
    assert_eq!(
        code(d5.get_perms("/secret").unwrap_err()),
        ErrorCode::Eacces
    );
    assert_eq!(
        code(
            d5.set_perms("/secret", &[Perm::new(Access::Both, 5)])
                .unwrap_err()
        ),
        ErrorCode::Eacces
    );
    assert_eq!(d0.read("/secret").unwrap(), b"s");

    // dom5 writes in its home (relative path); the new node inherits the
    // parent's perms with dom5 as owner.
    d5.write("data/mac", "00:16:3e:00:00:05").unwrap();
    assert_eq!(
        d0.get_perms("/local/domain/5/data/mac").unwrap(),
        [Perm::new(Access::None, 5)]
    );
    assert_eq!(d5.read("data/mac").unwrap(), b"00:16:3e:00:00:05");
    assert_eq!(
        code(d6.read("/local/domain/5/data/mac").unwrap_err()),
        ErrorCode::Eacces
    );

    // ACL entries: dom6 may read one node; the default applies otherwise.
    d5.set_perms(
        "data/mac",
        &[Perm::new(Access::None, 5), Perm::new(Access::Read, 6)],
    )
    .unwrap();
    assert_eq!(
        d6.read("/local/domain/5/data/mac").unwrap(),
        b"00:16:3e:00:00:05"
    );
    assert_eq!(
        code(d6.write("/local/domain/5/data/mac", "x").unwrap_err()),
        ErrorCode::Eacces
    );
    // Only dom0 may give a node away.
    assert_eq!(
        code(
            d5.set_perms("data/mac", &[Perm::new(Access::None, 6)])
                .unwrap_err()
        ),
        ErrorCode::Eperm
    );
    // dom0 creating under dom5's home keeps dom5 as owner (xenstored).
    d0.write("/local/domain/5/device/vif/0/state", "1").unwrap();
    assert_eq!(
        d0.get_perms("/local/domain/5/device/vif/0/state").unwrap(),
        [Perm::new(Access::None, 5)]
    );
    assert_eq!(d5.read("device/vif/0/state").unwrap(), b"1");

    // A writable-by-all node: dom6 can create children, owned by dom6.
    d0.write("/shared", "").unwrap();
    d0.set_perms("/shared", &[Perm::new(Access::Write, 0)])
        .unwrap();
    d6.write("/shared/x", "6").unwrap();
    assert_eq!(
        d0.get_perms("/shared/x").unwrap(),
        [Perm::new(Access::Write, 6)]
    );
    assert_eq!(d6.read("/shared/x").unwrap(), b"6");
    assert_eq!(code(d5.read("/shared/x").unwrap_err()), ErrorCode::Eacces);
    d5.write("/shared/x", "5").unwrap();

    // Privileged-only operations.
    let raw = s.connect_raw_as(5).unwrap();
    let mut raw2 = raw.try_clone().unwrap();
    Message::new(MsgType::Introduce, 1, 0, b"9\x00123\x004\x00".to_vec())
        .write_to(&mut raw2)
        .unwrap();
    let reply = Message::read_from(&mut raw2).unwrap();
    assert_eq!(reply.msg_type, MsgType::Error);
    assert_eq!(reply.payload, b"EACCES\0");
}

#[test]
fn watches_with_tokens() {
    let s = server();
    let w = s.connect_as(0).unwrap();
    let c = s.connect_as(0).unwrap();
    w.watch("/vm/dev", "tok1").unwrap();
    // The initial event fires at once for the watched path.
    assert_eq!(w.next_event(T).unwrap(), Some(ev("/vm/dev", "tok1")));
    c.write("/vm/dev", "x").unwrap();
    c.write("/vm/dev/sub/leaf", "y").unwrap();
    c.write("/vm/other", "z").unwrap(); // not watched
    c.write("/vm/devices", "z").unwrap(); // a prefix, but not a descendant
    c.mkdir("/vm/dev/m").unwrap();
    c.set_perms("/vm/dev/m", &[Perm::new(Access::Read, 0)])
        .unwrap();
    c.rm("/vm/dev/sub").unwrap();
    assert_eq!(
        drain_expecting(&w, 5),
        [
            ev("/vm/dev", "tok1"),
            ev("/vm/dev/sub/leaf", "tok1"),
            ev("/vm/dev/m", "tok1"),
            ev("/vm/dev/m", "tok1"),
            ev("/vm/dev/sub", "tok1"),
        ]
    );
    // A second token on a descendant; rm of an ancestor fires both, each
    // with the watch's own path.
    w.watch("/vm/dev/m", "tok2").unwrap();
    assert_eq!(w.next_event(T).unwrap(), Some(ev("/vm/dev/m", "tok2")));
    assert_eq!(
        code(w.watch("/vm/dev/m", "tok2").unwrap_err()),
        ErrorCode::Eexist
    );
    c.rm("/vm").unwrap();
    let mut got = drain_expecting(&w, 2);
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(got, [ev("/vm/dev", "tok1"), ev("/vm/dev/m", "tok2")]);
    // Reads on the watching connection interleave with events.
    w.unwatch("/vm/dev", "tok1").unwrap();
    assert_eq!(
        code(w.unwatch("/vm/dev", "tok1").unwrap_err()),
        ErrorCode::Enoent
    );
    c.write("/vm/dev/m", "again").unwrap();
    assert_eq!(w.read("/vm/dev/m").unwrap(), b"again");
    assert_eq!(drain_expecting(&w, 1), [ev("/vm/dev/m", "tok2")]);
    w.reset_watches().unwrap();
    c.write("/vm/dev/m", "quiet").unwrap();
    assert!(drain(&w).is_empty());
    // Special paths are accepted.
    w.watch("@releaseDomain", "rel").unwrap();
    assert_eq!(w.next_event(T).unwrap(), Some(ev("@releaseDomain", "rel")));
}

#[test]
fn watch_relative_and_permission_filtered() {
    let s = server();
    let d0 = s.connect_as(0).unwrap();
    let d5 = s.connect_as(5).unwrap();
    d0.mkdir("/local/domain/5").unwrap();
    d0.set_perms("/local/domain/5", &[Perm::new(Access::None, 5)])
        .unwrap();
    d5.watch("device", "dev").unwrap();
    assert_eq!(d5.next_event(T).unwrap(), Some(ev("device", "dev")));
    d0.write("/local/domain/5/device/vif/0/state", "4").unwrap();
    assert_eq!(
        d5.next_event(T).unwrap(),
        Some(ev("device/vif/0/state", "dev"))
    );
    // A node dom5 may not read: no event for it.
    d0.write("/local/domain/5/device/hidden", "").unwrap();
    assert_eq!(drain_expecting(&d5, 1), [ev("device/hidden", "dev")]);
    d0.set_perms(
        "/local/domain/5/device/hidden",
        &[Perm::new(Access::None, 0)],
    )
    .unwrap();
    d0.write("/local/domain/5/device/hidden", "secret").unwrap();
    assert!(drain(&d5).is_empty());
    d5.watch("/local/domain/0", "dom0").unwrap();
    assert_eq!(
        d5.next_event(T).unwrap(),
        Some(ev("/local/domain/0", "dom0"))
    );
    d0.write("/local/domain/0/x", "").unwrap();
    assert!(drain(&d5).is_empty());
}

#[test]
fn transactions_isolated() {
    let s = server();
    let c = s.connect_as(0).unwrap();
    let other = s.connect_as(0).unwrap();
    let w = s.connect_as(0).unwrap();
    c.write("/t/a", "1").unwrap();
    w.watch("/t", "t").unwrap();
    drain_expecting(&w, 1);

    // Changes are invisible outside until commit; watches fire at commit.
    let tx = c.transaction_start().unwrap();
    tx.write("/t/b", "2").unwrap();
    tx.rm("/t/a").unwrap();
    assert_eq!(tx.read("/t/b").unwrap(), b"2");
    assert!(!tx.exists("/t/a").unwrap());
    assert!(!other.exists("/t/b").unwrap());
    assert_eq!(other.read("/t/a").unwrap(), b"1");
    assert!(drain(&w).is_empty());
    tx.commit().unwrap();
    assert_eq!(other.read("/t/b").unwrap(), b"2");
    assert!(!other.exists("/t/a").unwrap());
    assert_eq!(drain_expecting(&w, 2), [ev("/t/b", "t"), ev("/t/a", "t")]);

    // Abort (and drop) discard.
    let tx = c.transaction_start().unwrap();
    tx.write("/t/c", "3").unwrap();
    tx.abort().unwrap();
    {
        let tx = c.transaction_start().unwrap();
        tx.write("/t/d", "4").unwrap();
    }
    assert!(!c.exists("/t/c").unwrap());
    assert!(!c.exists("/t/d").unwrap());

    // Conflict: a node the transaction read changes meanwhile → EAGAIN and
    // nothing applied.
    let tx = c.transaction_start().unwrap();
    assert_eq!(tx.read("/t/b").unwrap(), b"2");
    tx.write("/t/e", "5").unwrap();
    other.write("/t/b", "changed").unwrap();
    assert_eq!(code(tx.commit().unwrap_err()), ErrorCode::Eagain);
    assert!(!c.exists("/t/e").unwrap());

    // Unrelated changes do not conflict.
    let tx = c.transaction_start().unwrap();
    tx.write("/t/b/x", "1").unwrap();
    other.write("/elsewhere", "1").unwrap();
    tx.commit().unwrap();

    // Unknown transaction ids.
    let raw = s.connect_raw_as(0).unwrap();
    let mut raw = raw;
    Message::new(MsgType::Read, 1, 999, b"/t\0".to_vec())
        .write_to(&mut raw)
        .unwrap();
    assert_eq!(Message::read_from(&mut raw).unwrap().payload, b"ENOENT\0");

    // The helper retries on EAGAIN: the first attempt is sabotaged.
    let mut attempts = 0;
    let n = c
        .transaction(|tx| {
            attempts += 1;
            let v: u32 = tx.read_string("/t/b")?.parse().unwrap_or(0);
            if attempts == 1 {
                other.write("/t/b", "41").unwrap();
            }
            tx.write("/t/b", (v + 1).to_string())?;
            Ok(v + 1)
        })
        .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(n, 42);
    assert_eq!(c.read("/t/b").unwrap(), b"42");

    // Other errors abort and are returned without retry.
    let mut attempts = 0;
    let e = c
        .transaction(|tx| {
            attempts += 1;
            tx.write("/t/f", "x")?;
            tx.read("/t/nope")
        })
        .unwrap_err();
    assert_eq!((code(e), attempts), (ErrorCode::Enoent, 1));
    assert!(!c.exists("/t/f").unwrap());
}

#[test]
fn concurrent_counter_transactions() {
    let s = server();
    s.connect_as(0).unwrap().write("/counter", "0").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = s.connect_as(0).unwrap();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    c.transaction(|tx| {
                        let v: u32 = tx.read_string("/counter")?.parse().unwrap();
                        tx.write("/counter", (v + 1).to_string())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = s.connect_as(0).unwrap();
    assert_eq!(c.read("/counter").unwrap(), b"100");
}

#[test]
fn quota_gives_equota() {
    let s = XenstoreServer::new(ServerConfig {
        quota_rate: 20,
        quota_burst: 10,
        max_watches_per_conn: 3,
        max_transactions_per_conn: 2,
        ..ServerConfig::default()
    });
    let d0 = s.connect_as(0).unwrap();
    d0.mkdir("/local/domain/3").unwrap();
    d0.set_perms("/local/domain/3", &[Perm::new(Access::None, 3)])
        .unwrap();
    let d3 = s.connect_as(3).unwrap();
    let mut quota = 0;
    for i in 0..50 {
        match d3.write("k", i.to_string()) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(code(e), ErrorCode::Equota);
                quota += 1;
            }
        }
    }
    assert!(quota >= 10, "only {quota} EQUOTA");
    // Dom0 is never limited, and the domain recovers after a while.
    for _ in 0..200 {
        d0.read("/local/domain/3/k").unwrap();
    }
    std::thread::sleep(Duration::from_millis(600));
    d3.read("k").unwrap();

    // Per-connection caps on watches (for unprivileged domains) and
    // transactions (every connection).
    let c = s.connect_as(3).unwrap();
    for i in 0..3 {
        c.watch("/w", &i.to_string()).unwrap();
    }
    assert_eq!(code(c.watch("/w", "x").unwrap_err()), ErrorCode::Equota);
    let _t1 = c.transaction_start().unwrap();
    let _t2 = c.transaction_start().unwrap();
    assert_eq!(code(c.transaction_start().unwrap_err()), ErrorCode::Equota);
    // Dom0 (the backend holds a watch per vif) has no cap on watches, but
    // its transactions are capped too.
    let b = s.connect_as(0).unwrap();
    for i in 0..10 {
        b.watch("/w", &i.to_string()).unwrap();
    }
    let _b: Vec<_> = (0..2).map(|_| b.transaction_start().unwrap()).collect();
    assert_eq!(code(b.transaction_start().unwrap_err()), ErrorCode::Equota);
}

/// Sends raw bytes and returns what the server answered before closing.
fn exchange(s: &XenstoreServer, bytes: &[u8]) -> Vec<u8> {
    let mut raw = s.connect_raw_as(0).unwrap();
    raw.set_read_timeout(Some(SHORT)).unwrap();
    let _ = raw.write_all(bytes);
    let _ = raw.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = raw.read_to_end(&mut out);
    out
}

#[test]
fn garbage_does_not_kill_the_server() {
    let s = server();
    let c = s.connect_as(0).unwrap();
    c.write("/alive", "yes").unwrap();

    // Oversized length: the connection is closed.
    let mut hdr = Message::new(MsgType::Read, 1, 0, Vec::new())
        .encode()
        .unwrap();
    hdr[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(exchange(&s, &hdr).is_empty());

    // Well-framed nonsense gets error replies, never a crash.
    let cases: Vec<Message> = vec![
        Message::new(MsgType::Read, 1, 0, Vec::new()),
        Message::new(MsgType::Read, 2, 0, b"/alive".to_vec()),
        Message::new(MsgType::Write, 3, 0, b"\xff\xfe\0v".to_vec()),
        Message::new(MsgType::SetPerms, 4, 0, b"/alive\0q9\0".to_vec()),
        Message::new(MsgType::SetPerms, 5, 0, b"/alive\0".to_vec()),
        Message::new(MsgType::Unknown(20), 6, 0, b"x\0".to_vec()),
        Message::new(MsgType::Unknown(0xffff), 7, 0, Vec::new()),
        Message::new(MsgType::WatchEvent, 8, 0, b"/a\0t\0".to_vec()),
        Message::new(MsgType::Watch, 9, 0, b"/a\0".to_vec()),
        Message::new(MsgType::TransactionEnd, 10, 0, b"T\0".to_vec()),
        Message::new(MsgType::TransactionEnd, 11, 0, b"maybe\0".to_vec()),
        Message::new(MsgType::GetDomainPath, 12, 0, b"-1\0".to_vec()),
        Message::new(MsgType::DirectoryPart, 13, 0, b"/\0999999\0".to_vec()),
        Message::new(MsgType::DirectoryPart, 14, 0, b"/\0".to_vec()),
        Message::new(MsgType::Write, 15, 0, vec![b'a'; 4096]),
    ];
    for m in &cases {
        let out = exchange(&s, &m.encode().unwrap());
        let (reply, _) = Message::decode(&out).unwrap().expect("a reply");
        assert_eq!(reply.msg_type, MsgType::Error, "{m:?}");
        assert_eq!(reply.req_id, m.req_id);
    }

    // Random bytes, many connections.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut buf = Vec::new();
        for _ in 0..(seed % 200) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf.push(seed as u8);
        }
        if buf.len() > 16 && seed % 3 == 0 {
            let l = (buf.len() - 16) as u32;
            buf[12..16].copy_from_slice(&l.to_le_bytes());
        }
        exchange(&s, &buf);
    }
    assert_eq!(c.read("/alive").unwrap(), b"yes");
}

#[test]
fn over_a_socket() {
    let s = server();
    let path = sock_path("sock");
    let mut l = s.listen(&path).unwrap();
    let a = Client::connect(&path).unwrap();
    let b = Client::connect(l.path()).unwrap();
    a.write("/via/socket", "1").unwrap();
    assert_eq!(b.read("/via/socket").unwrap(), b"1");
    // A half-sent message from a vanishing peer does not matter.
    let mut raw = UnixStream::connect(&path).unwrap();
    raw.write_all(&[2, 0, 0, 0, 1]).unwrap();
    drop(raw);
    assert_eq!(b.read("/via/socket").unwrap(), b"1");
    l.stop();
    assert!(!path.exists());
    assert!(Client::connect(&path).is_err());
    // Open connections keep working.
    assert_eq!(a.read("/via/socket").unwrap(), b"1");
    // The env var selects the socket.
    let path2 = sock_path("env");
    let _l2 = s.listen(&path2).unwrap();
    std::env::set_var("XENSTORED_PATH", &path2);
    let c = Client::open().unwrap();
    assert_eq!(c.read("/via/socket").unwrap(), b"1");
    // stop() works even when the socket file is gone.
    let path3 = sock_path("gone");
    let mut l3 = s.listen(&path3).unwrap();
    std::fs::remove_file(&path3).unwrap();
    l3.stop();
}

#[test]
fn client_sees_closed_connection() {
    let s = server();
    let path = sock_path("closed");
    let l = s.listen(&path).unwrap();
    let (mine, theirs) = UnixStream::pair().unwrap();
    drop(theirs);
    let c = Client::from_stream(mine).unwrap();
    assert!(matches!(
        c.read("/").unwrap_err(),
        XsError::Closed | XsError::Wire(_)
    ));
    assert!(matches!(c.next_event(SHORT), Err(XsError::Closed)));
    drop(l);
}

/// An unprivileged domain cannot grow the store without bound: it may own
/// `max_nodes_per_domain` nodes, directly or through transactions that
/// each looked under the quota on their own; removing frees its nodes.
#[test]
fn node_quota_per_domain() {
    let s = XenstoreServer::new(ServerConfig {
        quota_rate: 0,
        max_nodes_per_domain: 10,
        ..ServerConfig::default()
    });
    let d0 = s.connect_as(0).unwrap();
    d0.mkdir("/local/domain/3").unwrap();
    d0.set_perms("/local/domain/3", &[Perm::new(Access::None, 3)])
        .unwrap();
    let d3 = s.connect_as(3).unwrap();
    // Its home counts: 9 more nodes, then EQUOTA (nothing created).
    for i in 0..9 {
        d3.write(&format!("k{i}"), "v").unwrap();
    }
    let before = s.node_count();
    assert_eq!(code(d3.write("k9", "v").unwrap_err()), ErrorCode::Equota);
    assert_eq!(code(d3.mkdir("a/b").unwrap_err()), ErrorCode::Equota);
    assert_eq!(s.node_count(), before);
    // Changing what it has is fine; dom0 is not limited.
    d3.write("k0", "w").unwrap();
    d0.write("/local/domain/3/byd0", "v").unwrap();
    // Removing frees room.
    for i in 0..6 {
        d3.rm(&format!("k{i}")).unwrap();
    }
    // Owned now: home, k6-k8 and byd0 (which took its parent's owner).
    // Two transactions that do not conflict each fit on their own, not
    // together.
    d3.mkdir("a").unwrap();
    d3.mkdir("b").unwrap();
    let t1 = d3.transaction_start().unwrap();
    let t2 = d3.transaction_start().unwrap();
    for i in 0..3 {
        t1.write(&format!("a/{i}"), "v").unwrap();
        t2.write(&format!("b/{i}"), "v").unwrap();
    }
    t1.commit().unwrap();
    assert_eq!(code(t2.commit().unwrap_err()), ErrorCode::Equota);
    assert!(!d0.exists("/local/domain/3/b/0").unwrap());
    assert!(d0.exists("/local/domain/3/a/2").unwrap());
}

/// `read_many` pipelines its reads: values in order, `None` for a
/// missing node, a permission error fails the call, and the connection
/// is in step afterwards (the next request gets its own reply).
#[test]
fn read_many_pipelines_reads() {
    let s = server();
    let xs = s.connect_as(0).unwrap();
    for i in 0..20 {
        xs.write(&format!("/m/k{i}"), format!("v{i}")).unwrap();
    }
    let paths: Vec<String> = (0..22).map(|i| format!("/m/k{i}")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let got = xs.read_many(&refs).unwrap();
    assert_eq!(got.len(), 22);
    for (i, v) in got.iter().enumerate() {
        if i < 20 {
            assert_eq!(v.as_deref(), Some(format!("v{i}").as_bytes()));
        } else {
            assert_eq!(*v, None);
        }
    }
    assert_eq!(xs.read_many(&[]).unwrap(), Vec::<Option<Vec<u8>>>::new());
    let e = xs.read_many(&["/m/k1", "/bad path", "/m/k2"]).unwrap_err();
    assert_eq!(code(e), ErrorCode::Einval);
    assert_eq!(xs.read("/m/k2").unwrap(), b"v2");
    // Over a socket too (one write for the whole batch).
    let path = sock_path("rmany");
    let _l = s.listen(&path).unwrap();
    let c = Client::connect(&path).unwrap();
    assert_eq!(
        c.read_many(&["/m/k3", "/nope", "/m/k4"]).unwrap(),
        vec![Some(b"v3".to_vec()), None, Some(b"v4".to_vec())]
    );
    assert_eq!(c.read("/m/k5").unwrap(), b"v5");
}

/// A client that does not read its events holds at most its bound of
/// them; past it the rest are dropped and every watch gets one event with
/// its own path (look again), before what was queued. Then events flow
/// as before.
#[test]
fn unread_events_are_bounded_and_overflow_says_look_again() {
    let s = server();
    let writer = s.connect_as(0).unwrap();
    let watcher = s.connect_as(0).unwrap();
    watcher.set_max_queued_events(8);
    watcher.watch("/w", "t").unwrap();
    watcher.watch("/other", "o").unwrap();
    for i in 0..100 {
        writer.write(&format!("/w/{i}"), "x").unwrap();
    }
    // Replies follow the events sent before them on the connection: once
    // this one is back, the reader has seen all 100.
    assert_eq!(watcher.read("/w/99").unwrap(), b"x");
    let got = drain(&watcher);
    assert_eq!(got[..2], [ev("/w", "t"), ev("/other", "o")], "{got:?}");
    assert_eq!(got.len(), 2 + 8, "{got:?}");
    // The bound's worth that was queued: the two initial events, then the
    // first writes in order.
    assert_eq!(got[2..4], [ev("/w", "t"), ev("/other", "o")]);
    for (i, e) in got[4..].iter().enumerate() {
        assert_eq!(*e, ev(&format!("/w/{i}"), "t"));
    }
    writer.write("/w/again", "x").unwrap();
    assert_eq!(watcher.next_event(T).unwrap(), Some(ev("/w/again", "t")));
    assert_eq!(watcher.next_event(SHORT).unwrap(), None);
}

/// `write_no_wait`: a later request sees the value (requests are answered
/// in order), and a refused write is counted (and logged) when its reply
/// comes, with nobody waiting for it.
#[test]
fn unacknowledged_writes_are_ordered_and_refusals_counted() {
    let s = server();
    let dom0 = s.connect_as(0).unwrap();
    dom0.write("/local/domain/5/x", "0").unwrap();
    dom0.set_perms(
        "/local/domain/5/x",
        &[Perm::new(Access::None, 5), Perm::new(Access::None, 0)],
    )
    .unwrap();
    let guest = s.connect_as(5).unwrap();
    guest.write_no_wait("/local/domain/5/x", "1").unwrap();
    assert_eq!(guest.read("/local/domain/5/x").unwrap(), b"1");
    assert_eq!(guest.unacked_failures(), 0);
    // Not the guest's to write.
    guest.write_no_wait("/local/domain/0/y", "1").unwrap();
    // Its reply comes before this one's.
    assert!(guest.read("/local/domain/5/x").is_ok());
    assert_eq!(guest.unacked_failures(), 1);
    assert!(dom0.read("/local/domain/0/y").is_err());
}
