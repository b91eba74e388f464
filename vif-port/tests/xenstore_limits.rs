//! The emulated xenstored's resource limits: transactions copy only what
//! they touch and are capped per connection; connections are served
//! without a thread each, capped, and a peer that never reads is dropped.
//!
//! The tests measure the whole process (`/proc/self`), so they run one
//! at a time ([`SERIAL`]).

use std::sync::{Mutex, MutexGuard};

use xennet_vif::xenstore::{Client, ErrorCode, ServerConfig, WatchEvent, XenstoreServer, XsError};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn code(e: XsError) -> ErrorCode {
    e.code()
        .cloned()
        .unwrap_or_else(|| panic!("not a remote error: {e}"))
}

/// A field of `/proc/self/status` in kB (`VmRSS`, ...), or a count
/// (`Threads`).
fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

const NODES: usize = 20_000;
const VALUE: usize = 400;

/// 200 never-ended transactions over an 8 MB store took xennetd from
/// 89 MB to 5.9 GB when each copied the store (issue 14 item 13). Now a
/// transaction holds only the nodes it changed, and each connection may
/// have `max_transactions_per_conn` open, dom0's included.
#[test]
fn transactions_copy_only_what_they_touch() {
    let _serial = serial();
    let cap = ServerConfig::default().max_transactions_per_conn;
    assert_eq!(cap, 10, "C xenstored's quota-max-transaction");
    let s = XenstoreServer::new(ServerConfig {
        quota_rate: 0,
        ..ServerConfig::default()
    });
    let path = std::env::temp_dir().join(format!("xennet-xs-limits-{}.sock", std::process::id()));
    let _l = s.listen(&path).unwrap();
    // Three dom0 clients: two in-process, one on the socket.
    let conns = [
        s.connect_as(0).unwrap(),
        s.connect_as(0).unwrap(),
        Client::connect(&path).unwrap(),
    ];
    let c = &conns[0];

    let rss0 = status("VmRSS");
    let value = vec![b'x'; VALUE];
    for i in 0..NODES {
        c.write(&format!("/big/{}/{}", i / 100, i % 100), &value)
            .unwrap();
    }
    let store_kb = status("VmRSS").saturating_sub(rss0);
    eprintln!("store of {NODES} nodes of {VALUE} bytes: VmRSS +{store_kb} kB");

    // Every connection opens transactions up to the cap; each reads a
    // node and changes one (a value, or a new node: its parent too).
    let rss1 = status("VmRSS");
    let mut txs = Vec::new();
    for (n, conn) in conns.iter().enumerate() {
        for i in 0..cap {
            let tx = conn.transaction_start().unwrap();
            assert_eq!(tx.read(&format!("/big/{n}/{i}")).unwrap(), value);
            if i % 2 == 0 {
                tx.write(&format!("/big/{n}/{i}"), format!("tx{n}.{i}"))
                    .unwrap();
            } else {
                tx.write(&format!("/big/{n}/new{i}"), "v").unwrap();
            }
            txs.push(tx);
        }
        assert_eq!(
            code(conn.transaction_start().unwrap_err()),
            ErrorCode::Equota
        );
    }
    let tx_kb = status("VmRSS").saturating_sub(rss1);
    eprintln!(
        "{} transactions: VmRSS +{tx_kb} kB, {} node copies",
        txs.len(),
        s.transaction_nodes()
    );
    assert_eq!(s.open_transactions(), 3 * cap);
    // Half changed one node, half created one (copying its parent).
    assert_eq!(s.transaction_nodes(), 3 * (cap / 2 + 2 * (cap / 2)));
    // All of them together cost less than one copy of the store.
    assert!(tx_kb < store_kb / 2, "{tx_kb} kB for transactions");

    // Isolation: each sees its own writes, nobody else does.
    assert_eq!(txs[0].read("/big/0/0").unwrap(), b"tx0.0");
    assert_eq!(txs[2].read("/big/0/0").unwrap(), value);
    assert_eq!(c.read("/big/0/0").unwrap(), value);
    assert!(!c.exists("/big/0/new1").unwrap());
    assert!(txs[1].exists("/big/0/new1").unwrap());

    // Watches fire at commit; a transaction that read a node changed
    // since gets EAGAIN and applies nothing.
    let w = s.connect_as(0).unwrap();
    w.watch("/big/0", "w").unwrap();
    assert!(w
        .next_event(std::time::Duration::from_secs(5))
        .unwrap()
        .is_some());
    let mut txs = txs.into_iter();
    let t0 = txs.next().unwrap();
    let t1 = txs.next().unwrap();
    // t1 read /big/0/1; t2 (below) read /big/0/2; conns[1]'s first read
    // /big/1/0.
    t0.commit().unwrap();
    assert_eq!(c.read("/big/0/0").unwrap(), b"tx0.0");
    assert_eq!(
        w.next_event(std::time::Duration::from_secs(5)).unwrap(),
        Some(WatchEvent {
            path: "/big/0/0".into(),
            token: "w".into()
        })
    );
    conns[1].write("/big/0/1", "changed").unwrap();
    assert_eq!(code(t1.commit().unwrap_err()), ErrorCode::Eagain);
    assert!(!c.exists("/big/0/new1").unwrap());

    // Ended transactions free their copies and their slots.
    drop(txs);
    assert_eq!(s.open_transactions(), 0);
    assert_eq!(s.transaction_nodes(), 0);
    let again: Vec<_> = (0..cap).map(|_| c.transaction_start().unwrap()).collect();
    assert_eq!(again.len(), cap);
}
