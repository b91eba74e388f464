//! `ovs-ofctl snoop <bridge>`: the `<rundir>/<bridge>.snoop` socket (OVS
//! `connmgr_set_snoops`, `add_snooper`, `rconn_add_monitor`). A
//! connection there is attached to one controller connection, the one
//! OVS would pick (a master before an equal before a slave), and gets a
//! copy of every OpenFlow message exchanged on it, both directions, in
//! that connection's version (its HELLO offers only that version). With
//! no controller connected, it is closed at once, as in OVS.
//!
//! Bounded: at most [`MAX_SNOOPERS`] snoop connections per bridge, and
//! at most [`SNOOP_QUEUE_BYTES`] copied bytes waiting per snooper; beyond
//! that copies are dropped whole (so the snooper's stream stays framed),
//! counted in [`Snoopers::dropped`] and logged at most once a second
//! (OVS: `rconn_overflow`). Anything the snooper sends is read and
//! ignored.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::conn::{role, ConnStatus};

/// Most snoop connections per bridge.
pub const MAX_SNOOPERS: usize = 16;
/// Most copied bytes waiting for one snooper.
pub const SNOOP_QUEUE_BYTES: usize = 1 << 20;

#[derive(Debug)]
struct Snooper {
    tx: mpsc::UnboundedSender<Arc<[u8]>>,
    queued: Arc<AtomicUsize>,
}

/// The snoopers attached to one connection.
#[derive(Debug, Default)]
pub struct Snoopers {
    list: Mutex<Vec<Snooper>>,
    n: AtomicUsize,
    /// Copies dropped because a snooper did not keep up.
    pub dropped: AtomicU64,
    log: Mutex<crate::ratelimit::LogLimit>,
}

impl Snoopers {
    /// Whether anyone snoops (one atomic load: the connection's fast
    /// path).
    pub fn active(&self) -> bool {
        self.n.load(Ordering::Relaxed) != 0
    }

    fn attach(&self, s: Snooper) {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.push(s);
        self.n.store(l.len(), Ordering::Relaxed);
    }

    /// Copy `bytes` (whole OpenFlow messages) to every snooper.
    pub fn copy(&self, bytes: &[u8]) {
        if bytes.is_empty() || !self.active() {
            return;
        }
        let shared: Arc<[u8]> = Arc::from(bytes);
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.retain(|s| {
            if s.queued.load(Ordering::Relaxed) + shared.len() > SNOOP_QUEUE_BYTES {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if self.log.lock().unwrap_or_else(|e| e.into_inner()).ready() {
                    tracing::warn!("snoop: a slow snooper lost a copy ({n} in all)");
                }
                return true;
            }
            s.queued.fetch_add(shared.len(), Ordering::Relaxed);
            s.tx.send(shared.clone()).is_ok()
        });
        self.n.store(l.len(), Ordering::Relaxed);
    }
}

/// The controller connections of a bridge that snoopers may attach to.
pub type Primaries = Arc<Mutex<Vec<Arc<ConnStatus>>>>;

/// OVS `snoop_preference`: master, then equal/other, then slave; only
/// connections that completed HELLO.
fn pick(primaries: &Primaries) -> Option<Arc<ConnStatus>> {
    let l = primaries.lock().unwrap_or_else(|e| e.into_inner());
    l.iter()
        .filter(|s| s.version.load(Ordering::Relaxed) != 0)
        .max_by_key(|s| match s.role.load(Ordering::Relaxed) {
            role::MASTER => 2,
            role::SLAVE => 0,
            _ => 1,
        })
        .cloned()
}

/// Listen on `path` for snoopers of `bridge`'s controller connections.
///
/// # Errors
/// When the socket cannot be bound.
pub fn listen(
    bridge: String,
    path: PathBuf,
    primaries: Primaries,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    Ok(tokio::spawn(async move {
        let mut live = tokio::task::JoinSet::new();
        let mut errors = crate::accept::AcceptErrors::new(format!("{bridge}: snoop"));
        loop {
            let r = crate::accept::next(&mut errors, || async {
                listener.accept().await.map(|(s, _)| s)
            })
            .await;
            let s = match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("{bridge}: snoop: accept: {e}: no longer listening");
                    return;
                }
            };
            while live.try_join_next().is_some() {}
            if live.len() >= MAX_SNOOPERS {
                tracing::warn!("{bridge}: snoop: {MAX_SNOOPERS} snoopers already, refused one");
                continue;
            }
            let Some(target) = pick(&primaries) else {
                tracing::info!("{bridge}: no controller connection to snoop");
                continue;
            };
            live.spawn(serve(s, target));
        }
    }))
}

/// Serve one snooper attached to the connection `target`.
async fn serve(mut s: UnixStream, target: Arc<ConnStatus>) {
    let version = target.version.load(Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    // HELLO offering only the snooped connection's version.
    let mut hello = Vec::new();
    xennet_openflow::header::encode_hello(version, 1u32 << version, 0, &mut hello);
    if s.write_all(&hello).await.is_err() {
        return;
    }
    target.snoop.attach(Snooper {
        tx,
        queued: queued.clone(),
    });
    // The snooper holds no reference to the connection: when it ends, its
    // status (with the sender) goes, and so does this snooper.
    drop(target);
    let mut sink = vec![0u8; 4096];
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                queued.fetch_sub(m.len(), Ordering::Relaxed);
                if s.write_all(&m).await.is_err() {
                    break;
                }
            }
            r = s.read(&mut sink) => {
                if !matches!(r, Ok(n) if n > 0) {
                    break;
                }
            }
        }
    }
}
