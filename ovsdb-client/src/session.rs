//! A self-healing connection that keeps a [`Replica`] in sync.
//!
//! [`Session::start`] spawns a task that, in a loop: connects (retrying
//! with exponential backoff, [`SessionOptions::backoff_min`] doubling up to
//! [`SessionOptions::backoff_max`]); takes the lock if one is configured
//! (as ovs-vswitchd takes `ovs_vswitchd`); starts the monitor
//! ([`crate::monitor_request`]) with `monitor_cond_since` and the replica's
//! last transaction id, so a server with history sends only what changed,
//! otherwise falling back to a full resync, or to `monitor_cond` / `monitor`
//! on older servers; then applies every update until the connection drops
//! or an update does not parse (then it starts over from scratch).
//!
//! Readers look at the replica under a short lock ([`Session::with_replica`])
//! and learn about changes from a [`watch`] counter ([`Session::subscribe`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{Client, ClientOptions, Notification, Notifications};
use crate::error::Error;
use crate::replica::{monitor_request, Replica};

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Database to monitor.
    pub db: String,
    /// Lock to take after each (re)connect, e.g. `ovs_vswitchd`.
    pub lock: Option<String>,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Connection settings (inactivity probe).
    pub client: ClientOptions,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            db: "Open_vSwitch".into(),
            lock: None,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
            client: ClientOptions::default(),
        }
    }
}

/// What the session knows, behind one mutex.
#[derive(Debug)]
struct State {
    replica: Replica,
    client: Option<Client>,
    has_lock: bool,
    syncs: u64,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    db: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    /// Starts keeping a replica of `opts.db` at `addr` (`unix:PATH` or
    /// `tcp:IP:PORT`). Must be called inside a tokio runtime.
    pub fn start(addr: &str, opts: SessionOptions) -> Session {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            db: opts.db.clone(),
            state: Mutex::new(State {
                replica: Replica::new(),
                client: None,
                has_lock: false,
                syncs: 0,
                last_error: None,
            }),
            changed,
        });
        let task = tokio::spawn(run(addr.to_owned(), opts, shared.clone()));
        Session { shared, task }
    }

    /// Runs `f` on the replica (briefly holding the session's lock).
    pub fn with_replica<R>(&self, f: impl FnOnce(&Replica) -> R) -> R {
        f(&self.shared.lock().replica)
    }

    /// A copy of the replica.
    pub fn replica(&self) -> Replica {
        self.with_replica(Replica::clone)
    }

    /// A counter bumped on every replica change and connection event.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// Waits until `pred` holds for the replica, at most `timeout`.
    /// Returns whether it held. `pred` runs under the session's lock, so it
    /// must not call back into the `Session` (use [`Session::wait`] for that).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Replica) -> bool,
    ) -> bool {
        self.wait(timeout, |s| s.with_replica(&mut pred)).await
    }

    /// Waits until `cond(self)` holds (re-checked on every replica change
    /// and connection event), at most `timeout`. Returns whether it held.
    pub async fn wait(&self, timeout: Duration, mut cond: impl FnMut(&Session) -> bool) -> bool {
        let mut rx = self.subscribe();
        let fut = async {
            loop {
                rx.borrow_and_update();
                if cond(self) {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.is_ok()
    }

    /// The current connection, if connected and synced.
    pub fn client(&self) -> Option<Client> {
        self.shared.lock().client.clone().filter(|c| !c.is_closed())
    }

    /// True while connected and synced.
    pub fn is_connected(&self) -> bool {
        self.client().is_some()
    }

    /// True while we hold [`SessionOptions::lock`].
    pub fn has_lock(&self) -> bool {
        let s = self.shared.lock();
        s.has_lock && s.client.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// Number of completed (re)synchronisations: 1 after the first connect,
    /// 2 after the first reconnect...
    pub fn syncs(&self) -> u64 {
        self.shared.lock().syncs
    }

    /// The last connection error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Waits until connected (and synced) and returns the connection.
    pub async fn connected(&self, timeout: Duration) -> Option<Client> {
        let mut c = None;
        self.wait(timeout, |s| {
            c = s.client();
            c.is_some()
        })
        .await;
        c
    }

    /// `transact` on the current connection ([`Error::Disconnected`] if none).
    pub async fn transact(&self, ops: Vec<Value>) -> Result<Vec<Value>, Error> {
        let c = self.client().ok_or(Error::Disconnected)?;
        c.transact(&self.shared.db, ops).await
    }

    /// Stops the session and closes its connection.
    pub fn shutdown(self) {
        if let Some(c) = self.shared.lock().client.take() {
            c.close();
        }
        // Drop aborts the task.
    }
}

async fn run(addr: String, opts: SessionOptions, shared: Arc<Shared>) {
    let mut backoff = opts.backoff_min;
    loop {
        match connect_and_sync(&addr, &opts, &shared).await {
            Ok((client, notes)) => {
                backoff = opts.backoff_min;
                let reason = follow(&opts, &shared, &client, notes).await;
                client.close();
                tracing::info!("ovsdb session to {addr} lost: {reason}; reconnecting");
                let mut s = shared.lock();
                s.client = None;
                s.has_lock = false;
                s.last_error = Some(reason.to_string());
            }
            Err(e) => {
                tracing::debug!("ovsdb session to {addr}: {e}; retrying in {backoff:?}");
                shared.lock().last_error = Some(e.to_string());
            }
        }
        shared.bump();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(opts.backoff_max);
    }
}

async fn connect_and_sync(
    addr: &str,
    opts: &SessionOptions,
    shared: &Shared,
) -> Result<(Client, Notifications), Error> {
    let (client, notes) = Client::connect_with(addr, opts.client.clone()).await?;
    let locked = match &opts.lock {
        Some(l) => client.lock(l).await?,
        None => false,
    };
    let last = shared.lock().replica.last_txn_id().map(str::to_owned);
    let reply = client
        .monitor_cond_since(
            &opts.db,
            monitor_id(&opts.db),
            monitor_request(),
            last.as_deref(),
        )
        .await?;
    {
        let mut s = shared.lock();
        if let Err(e) = s.replica.apply_monitor_reply(reply.method, &reply.result) {
            // Start clean next time.
            s.replica.clear();
            return Err(e);
        }
        s.client = Some(client.clone());
        s.has_lock = locked;
        s.syncs += 1;
        s.last_error = None;
    }
    shared.bump();
    Ok((client, notes))
}

fn monitor_id(db: &str) -> Value {
    json!(["monid", db])
}

/// Applies notifications until the connection closes; returns why it ended.
async fn follow(
    opts: &SessionOptions,
    shared: &Shared,
    client: &Client,
    mut notes: Notifications,
) -> Error {
    let mine = monitor_id(&opts.db);
    while let Some(n) = notes.recv().await {
        let mut s = shared.lock();
        let res = match &n {
            Notification::Update {
                monitor_id,
                updates,
            } if *monitor_id == mine => s.replica.apply_update(updates),
            Notification::Update2 {
                monitor_id,
                updates,
            } if *monitor_id == mine => s.replica.apply_update2(updates),
            Notification::Update3 {
                monitor_id,
                last_txn_id,
                updates,
            } if *monitor_id == mine => s.replica.apply_update3(last_txn_id, updates),
            Notification::Locked(l) if Some(l) == opts.lock.as_ref() => {
                s.has_lock = true;
                Ok(())
            }
            Notification::Stolen(l) if Some(l) == opts.lock.as_ref() => {
                tracing::warn!("ovsdb lock {l} stolen");
                s.has_lock = false;
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = res {
            tracing::warn!("ovsdb update not applied ({e}); resyncing");
            s.replica.clear();
            drop(s);
            client.close();
            return e;
        }
        drop(s);
        shared.bump();
    }
    Error::Disconnected
}
