//! One JSON-RPC connection to an OVSDB server (RFC 7047 §4).
//!
//! [`Client::connect`] spawns an I/O task that owns the socket. Requests are
//! numbered by that task and matched to replies by `id`, so any number may
//! be in flight. The task answers the server's `echo` requests, and when
//! nothing has arrived for [`ClientOptions::probe_interval`] it sends its
//! own `echo`; if nothing arrives for another interval the connection is
//! closed (the OVS "inactivity probe"). Notifications (`"id": null`:
//! `update`, `update2`, `update3`, `locked`, `stolen`) go to the
//! [`Notifications`] channel returned by `connect`, in arrival order; the
//! channel ends when the connection closes, and every pending request then
//! fails with [`Error::Disconnected`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::Error;
use crate::jsonrpc::JsonStream;
use crate::replica::MonitorMethod;
use crate::schema::Schema;
use crate::transact::check_results;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Idle time before sending an `echo` probe, and then the time allowed
    /// for any reply before disconnecting. `None` disables probing.
    pub probe_interval: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            probe_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// A message the server sent without expecting a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// RFC 7047 `update`: `<table-updates>` (old/new rows).
    Update {
        /// The monitor id given to `monitor`.
        monitor_id: Value,
        /// `<table-updates>`.
        updates: Value,
    },
    /// `update2` (for `monitor_cond`): `<table-updates2>`.
    Update2 {
        /// The monitor id given to `monitor_cond`.
        monitor_id: Value,
        /// `<table-updates2>`.
        updates: Value,
    },
    /// `update3` (for `monitor_cond_since`).
    Update3 {
        /// The monitor id given to `monitor_cond_since`.
        monitor_id: Value,
        /// The id of the transaction that caused it.
        last_txn_id: String,
        /// `<table-updates2>`.
        updates: Value,
    },
    /// We acquired a lock we had asked for while someone else held it.
    Locked(String),
    /// Another client stole our lock.
    Stolen(String),
    /// Anything else.
    Other {
        /// Method.
        method: String,
        /// Params.
        params: Value,
    },
}

impl Notification {
    fn parse(method: &str, params: Value) -> Notification {
        let p = params.as_array();
        let get = |i: usize| p.and_then(|a| a.get(i)).cloned();
        let name = || get(0).and_then(|v| v.as_str().map(str::to_owned));
        match (method, p.map(Vec::len)) {
            ("update", Some(2)) => Notification::Update {
                monitor_id: get(0).unwrap_or_default(),
                updates: get(1).unwrap_or_default(),
            },
            ("update2", Some(2)) => Notification::Update2 {
                monitor_id: get(0).unwrap_or_default(),
                updates: get(1).unwrap_or_default(),
            },
            ("update3", Some(3)) if get(1).is_some_and(|v| v.is_string()) => {
                Notification::Update3 {
                    monitor_id: get(0).unwrap_or_default(),
                    last_txn_id: get(1)
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    updates: get(2).unwrap_or_default(),
                }
            }
            ("locked", Some(1)) if name().is_some() => {
                Notification::Locked(name().unwrap_or_default())
            }
            ("stolen", Some(1)) if name().is_some() => {
                Notification::Stolen(name().unwrap_or_default())
            }
            _ => Notification::Other {
                method: method.to_owned(),
                params,
            },
        }
    }
}

/// The receiving end for [`Notification`]s; `recv()` returns `None` once
/// the connection is closed.
pub type Notifications = mpsc::UnboundedReceiver<Notification>;

/// The reply to a monitor request and which method produced it; pass both
/// to [`crate::Replica::apply_monitor_reply`].
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorReply {
    /// The method the server accepted.
    pub method: MonitorMethod,
    /// The `result`.
    pub result: Value,
}

type Reply = oneshot::Sender<Result<Value, Error>>;

enum Outgoing {
    Request {
        method: String,
        params: Value,
        reply: Reply,
    },
    Close,
}

/// A handle to one connection; cheap to clone. The connection closes when
/// [`Client::close`] is called, when every handle is dropped, or on error.
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::UnboundedSender<Outgoing>,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outgoing::Request { method, .. } => write!(f, "Request({method})"),
            Outgoing::Close => write!(f, "Close"),
        }
    }
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

async fn open(addr: &str) -> Result<(BoxRead, BoxWrite), Error> {
    if let Some(path) = addr.strip_prefix("unix:") {
        let s = tokio::net::UnixStream::connect(path).await?;
        let (r, w) = s.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else if let Some(hp) = addr.strip_prefix("tcp:") {
        let sa: std::net::SocketAddr =
            hp.parse().map_err(|_| Error::BadAddress(addr.to_owned()))?;
        let s = tokio::net::TcpStream::connect(sa).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else {
        Err(Error::BadAddress(addr.to_owned()))
    }
}

impl Client {
    /// Connects to `unix:PATH` or `tcp:IP:PORT` with default options.
    pub async fn connect(addr: &str) -> Result<(Client, Notifications), Error> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects with `opts`.
    pub async fn connect_with(
        addr: &str,
        opts: ClientOptions,
    ) -> Result<(Client, Notifications), Error> {
        let (r, w) = open(addr).await?;
        Ok(Client::from_stream(r, w, opts))
    }

    /// Runs the protocol over an already-connected stream (for tests and
    /// unusual transports).
    pub fn from_stream(
        r: impl AsyncRead + Send + Unpin + 'static,
        w: impl AsyncWrite + Send + Unpin + 'static,
        opts: ClientOptions,
    ) -> (Client, Notifications) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ntx, nrx) = mpsc::unbounded_channel();
        let closed = Arc::new(AtomicBool::new(false));
        let task = IoTask {
            read: Box::new(r),
            write: Box::new(w),
            rx,
            notes: ntx,
            pending: HashMap::new(),
            next_id: 1,
            probe: opts.probe_interval,
            closed: closed.clone(),
        };
        tokio::spawn(task.run());
        (Client { tx, closed }, nrx)
    }

    /// True once the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// Closes the connection; pending requests fail with
    /// [`Error::Disconnected`].
    pub fn close(&self) {
        let _ = self.tx.send(Outgoing::Close);
    }

    /// Sends a request and waits for its reply's `result`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Outgoing::Request {
                method: method.to_owned(),
                params,
                reply,
            })
            .map_err(|_| Error::Disconnected)?;
        rx.await.map_err(|_| Error::Disconnected)?
    }

    /// `list_dbs`.
    pub async fn list_dbs(&self) -> Result<Vec<String>, Error> {
        let r = self.request("list_dbs", json!([])).await?;
        serde_json::from_value(r.clone())
            .map_err(|_| Error::Protocol(format!("list_dbs result: {r}")))
    }

    /// `get_schema`, raw.
    pub async fn get_schema_json(&self, db: &str) -> Result<Value, Error> {
        self.request("get_schema", json!([db])).await
    }

    /// `get_schema`, parsed.
    pub async fn get_schema(&self, db: &str) -> Result<Schema, Error> {
        Ok(Schema::parse(&self.get_schema_json(db).await?)?)
    }

    /// `transact`: the results, or [`Error::Transaction`] naming the first
    /// failed operation.
    pub async fn transact(&self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>, Error> {
        let n = ops.len();
        let mut params = Vec::with_capacity(n + 1);
        params.push(json!(db));
        params.extend(ops);
        let r = self.request("transact", Value::Array(params)).await?;
        match r {
            Value::Array(results) => Ok(check_results(n, results)?),
            other => Err(Error::Protocol(format!("transact result: {other}"))),
        }
    }

    /// Starts a monitor: `monitor_cond_since` with `last_txn_id` (the zero
    /// UUID if `None`); if the server answers "unknown method", `monitor_cond`;
    /// then plain `monitor` (with `where` clauses removed from `requests`).
    /// Notifications follow as `update3`, `update2` or `update`.
    pub async fn monitor_cond_since(
        &self,
        db: &str,
        monitor_id: Value,
        requests: Value,
        last_txn_id: Option<&str>,
    ) -> Result<MonitorReply, Error> {
        let last = last_txn_id.unwrap_or("00000000-0000-0000-0000-000000000000");
        match self
            .request(
                "monitor_cond_since",
                json!([db, monitor_id, requests, last]),
            )
            .await
        {
            Ok(result) => {
                return Ok(MonitorReply {
                    method: MonitorMethod::CondSince,
                    result,
                })
            }
            Err(e) if e.is_unknown_method() => {}
            Err(e) => return Err(e),
        }
        match self
            .request("monitor_cond", json!([db, monitor_id, requests]))
            .await
        {
            Ok(result) => {
                return Ok(MonitorReply {
                    method: MonitorMethod::Cond,
                    result,
                })
            }
            Err(e) if e.is_unknown_method() => {}
            Err(e) => return Err(e),
        }
        let plain = strip_conditions(requests);
        let result = self
            .request("monitor", json!([db, monitor_id, plain]))
            .await?;
        Ok(MonitorReply {
            method: MonitorMethod::Plain,
            result,
        })
    }

    /// `monitor_cancel`.
    pub async fn monitor_cancel(&self, monitor_id: Value) -> Result<(), Error> {
        self.request("monitor_cancel", json!([monitor_id]))
            .await
            .map(drop)
    }

    /// `lock`: `true` if acquired now; otherwise a
    /// [`Notification::Locked`] follows when it is.
    pub async fn lock(&self, name: &str) -> Result<bool, Error> {
        let r = self.request("lock", json!([name])).await?;
        Ok(r.get("locked").and_then(Value::as_bool).unwrap_or(false))
    }

    /// `steal`: takes the lock from its owner (who gets `stolen`).
    pub async fn steal(&self, name: &str) -> Result<bool, Error> {
        let r = self.request("steal", json!([name])).await?;
        Ok(r.get("locked").and_then(Value::as_bool).unwrap_or(true))
    }

    /// `unlock`.
    pub async fn unlock(&self, name: &str) -> Result<(), Error> {
        self.request("unlock", json!([name])).await.map(drop)
    }

    /// `echo`: a round trip.
    pub async fn echo(&self) -> Result<(), Error> {
        let r = self.request("echo", json!(["xennet"])).await?;
        if r == json!(["xennet"]) {
            Ok(())
        } else {
            Err(Error::Protocol(format!("echo returned {r}")))
        }
    }

    /// `set_db_change_aware` (OVS extension): lets the server keep the
    /// connection when the database is converted or removed.
    pub async fn set_db_change_aware(&self, aware: bool) -> Result<(), Error> {
        self.request("set_db_change_aware", json!([aware]))
            .await
            .map(drop)
    }
}

fn strip_conditions(mut requests: Value) -> Value {
    if let Some(tables) = requests.as_object_mut() {
        for reqs in tables.values_mut() {
            match reqs {
                Value::Array(a) => a.iter_mut().for_each(|r| {
                    r.as_object_mut().map(|o| o.remove("where"));
                }),
                Value::Object(o) => {
                    o.remove("where");
                }
                _ => {}
            }
        }
    }
    requests
}

struct IoTask {
    read: BoxRead,
    write: BoxWrite,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    notes: mpsc::UnboundedSender<Notification>,
    pending: HashMap<u64, (String, Reply)>,
    next_id: u64,
    probe: Option<Duration>,
    closed: Arc<AtomicBool>,
}

impl IoTask {
    async fn run(mut self) {
        let reason = self.serve().await;
        match &reason {
            Ok(()) => tracing::debug!("ovsdb connection closed"),
            Err(e) => tracing::info!("ovsdb connection closed: {e}"),
        }
        self.closed.store(true, Ordering::Release);
        self.rx.close();
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(Error::Disconnected));
        }
        while let Ok(Outgoing::Request { reply, .. }) = self.rx.try_recv() {
            let _ = reply.send(Err(Error::Disconnected));
        }
        let _ = self.write.shutdown().await;
    }

    async fn send(&mut self, msg: &Value) -> Result<(), Error> {
        let bytes = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
        self.write.write_all(&bytes).await?;
        Ok(())
    }

    async fn serve(&mut self) -> Result<(), Error> {
        let mut stream = JsonStream::new();
        let mut buf = vec![0u8; 64 * 1024];
        let far = Duration::from_secs(86400 * 365);
        let mut last_rx = Instant::now();
        let mut probing = false;
        loop {
            let deadline = last_rx + self.probe.map_or(far, |p| if probing { p * 2 } else { p });
            tokio::select! {
                // The probe deadline last: after a stall, data that came
                // in meanwhile counts before a deadline that passed.
                biased;
                out = self.rx.recv() => match out {
                    None | Some(Outgoing::Close) => return Ok(()),
                    Some(Outgoing::Request { method, params, reply }) => {
                        let id = self.next_id;
                        self.next_id += 1;
                        let msg = json!({"id": id, "method": method, "params": params});
                        self.pending.insert(id, (method, reply));
                        self.send(&msg).await?;
                    }
                },
                n = self.read.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        return Err(Error::Disconnected);
                    }
                    last_rx = Instant::now();
                    probing = false;
                    stream.push(&buf[..n])?;
                    while let Some(msg) = stream.next_value()? {
                        self.dispatch(msg).await?;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    if probing {
                        return Err(Error::Protocol("inactivity probe not answered".into()));
                    }
                    probing = true;
                    self.send(&json!({"id": "echo", "method": "echo", "params": []})).await?;
                }
            }
        }
    }

    async fn dispatch(&mut self, mut msg: Value) -> Result<(), Error> {
        let id = msg.get_mut("id").map(Value::take).unwrap_or(Value::Null);
        if let Some(method) = msg.get("method").and_then(Value::as_str).map(str::to_owned) {
            let params = msg
                .get_mut("params")
                .map(Value::take)
                .unwrap_or(Value::Null);
            if id.is_null() {
                let _ = self.notes.send(Notification::parse(&method, params));
            } else if method == "echo" {
                self.send(&json!({"id": id, "result": params, "error": null}))
                    .await?;
            } else {
                self.send(&json!({"id": id, "result": null, "error": "unknown method"}))
                    .await?;
            }
            return Ok(());
        }
        let Some((method, reply)) = id.as_u64().and_then(|i| self.pending.remove(&i)) else {
            // Replies to our echo probes, or to nothing we sent.
            return Ok(());
        };
        let error = msg.get_mut("error").map(Value::take).unwrap_or(Value::Null);
        let res = if error.is_null() {
            Ok(msg
                .get_mut("result")
                .map(Value::take)
                .unwrap_or(Value::Null))
        } else {
            Err(Error::Rpc { method, error })
        };
        let _ = reply.send(res);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

    /// The server end of an in-memory connection.
    struct FakeServer {
        r: ReadHalf<DuplexStream>,
        w: WriteHalf<DuplexStream>,
        s: JsonStream,
    }

    impl FakeServer {
        async fn recv(&mut self) -> Option<Value> {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(v) = self.s.next_value().unwrap() {
                    return Some(v);
                }
                let n = self.r.read(&mut buf).await.unwrap();
                if n == 0 {
                    return None;
                }
                self.s.push(&buf[..n]).unwrap();
            }
        }
        async fn send(&mut self, v: Value) {
            self.w.write_all(v.to_string().as_bytes()).await.unwrap();
        }
    }

    fn pair(probe: Option<Duration>) -> (Client, Notifications, FakeServer) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (cr, cw) = tokio::io::split(a);
        let (sr, sw) = tokio::io::split(b);
        let (c, n) = Client::from_stream(
            cr,
            cw,
            ClientOptions {
                probe_interval: probe,
            },
        );
        (
            c,
            n,
            FakeServer {
                r: sr,
                w: sw,
                s: JsonStream::new(),
            },
        )
    }

    #[tokio::test]
    async fn replies_matched_by_id_out_of_order() {
        let (c, _n, mut s) = pair(None);
        let c2 = c.clone();
        let a = tokio::spawn(async move { c2.list_dbs().await });
        let c3 = c.clone();
        let b = tokio::spawn(async move { c3.lock("ovs_vswitchd").await });
        let r1 = s.recv().await.unwrap();
        let r2 = s.recv().await.unwrap();
        let (lock, list) = if r1["method"] == "lock" {
            (r1, r2)
        } else {
            (r2, r1)
        };
        s.send(json!({"id": lock["id"], "result": {"locked": false}, "error": null}))
            .await;
        s.send(json!({"id": list["id"], "result": ["Open_vSwitch", "_Server"], "error": null}))
            .await;
        assert!(!b.await.unwrap().unwrap());
        assert_eq!(a.await.unwrap().unwrap(), ["Open_vSwitch", "_Server"]);
    }

    #[tokio::test]
    async fn answers_echo_and_delivers_notifications() {
        let (_c, mut n, mut s) = pair(None);
        s.send(json!({"id": "x1", "method": "echo", "params": [1, "a"]}))
            .await;
        assert_eq!(
            s.recv().await.unwrap(),
            json!({"id": "x1", "result": [1, "a"], "error": null})
        );
        s.send(json!({"id": null, "method": "locked", "params": ["ovs_vswitchd"]}))
            .await;
        s.send(json!({"id": null, "method": "update3",
            "params": [["monid", "Open_vSwitch"], "t9", {"Bridge": {}}]}))
            .await;
        assert_eq!(
            n.recv().await.unwrap(),
            Notification::Locked("ovs_vswitchd".into())
        );
        assert_eq!(
            n.recv().await.unwrap(),
            Notification::Update3 {
                monitor_id: json!(["monid", "Open_vSwitch"]),
                last_txn_id: "t9".into(),
                updates: json!({"Bridge": {}})
            }
        );
    }

    #[tokio::test]
    async fn transact_errors_are_typed() {
        let (c, _n, mut s) = pair(None);
        let t = tokio::spawn(async move {
            c.transact("Open_vSwitch", vec![json!({"op": "assert", "lock": "l"})])
                .await
        });
        let req = s.recv().await.unwrap();
        assert_eq!(
            req["params"],
            json!(["Open_vSwitch", {"op": "assert", "lock": "l"}])
        );
        s.send(json!({"id": req["id"], "result": [{"error": "not owner",
            "details": "Asserted lock l not held."}], "error": null}))
            .await;
        match t.await.unwrap() {
            Err(Error::Transaction(e)) => assert_eq!((e.index, e.error.as_str()), (0, "not owner")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn monitor_falls_back_to_plain_monitor() {
        let (c, _n, mut s) = pair(None);
        let req = json!({"Bridge": [{"columns": ["name"], "where": [["name", "!=", "x"]]}]});
        let t = tokio::spawn(async move {
            c.monitor_cond_since("Open_vSwitch", json!("m"), req, None)
                .await
        });
        for method in ["monitor_cond_since", "monitor_cond"] {
            let r = s.recv().await.unwrap();
            assert_eq!(r["method"], method);
            s.send(json!({"id": r["id"], "result": null, "error": "unknown method"}))
                .await;
        }
        let r = s.recv().await.unwrap();
        assert_eq!(r["method"], "monitor");
        assert_eq!(
            r["params"],
            json!(["Open_vSwitch", "m", {"Bridge": [{"columns": ["name"]}]}])
        );
        s.send(json!({"id": r["id"], "result": {}, "error": null}))
            .await;
        assert_eq!(t.await.unwrap().unwrap().method, MonitorMethod::Plain);
    }

    #[tokio::test]
    async fn other_rpc_errors_do_not_fall_back() {
        let (c, _n, mut s) = pair(None);
        let t = tokio::spawn(async move {
            c.monitor_cond_since("nope", json!(null), json!({}), None)
                .await
        });
        let r = s.recv().await.unwrap();
        s.send(json!({"id": r["id"], "result": null, "error": {"error": "unknown database"}}))
            .await;
        assert!(matches!(t.await.unwrap(), Err(Error::Rpc { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn inactivity_probe_then_disconnect() {
        let (c, mut n, mut s) = pair(Some(Duration::from_secs(5)));
        let pending = {
            let c = c.clone();
            tokio::spawn(async move { c.echo().await })
        };
        let _ = s.recv().await.unwrap(); // our echo request: never answered
        let probe = s.recv().await.unwrap();
        assert_eq!(
            (probe["id"].clone(), probe["method"].clone()),
            (json!("echo"), json!("echo"))
        );
        // Nothing more arrives: disconnected after another interval.
        assert!(n.recv().await.is_none());
        assert!(matches!(pending.await.unwrap(), Err(Error::Disconnected)));
        assert!(c.is_closed());
        assert!(matches!(c.echo().await, Err(Error::Disconnected)));
    }

    #[tokio::test(start_paused = true)]
    async fn answered_probe_keeps_connection() {
        let (c, _n, mut s) = pair(Some(Duration::from_secs(5)));
        for _ in 0..3 {
            let probe = s.recv().await.unwrap();
            assert_eq!(probe["method"], "echo");
            s.send(json!({"id": probe["id"], "result": [], "error": null}))
                .await;
        }
        assert!(!c.is_closed());
    }

    #[tokio::test]
    async fn peer_close_fails_pending() {
        let (c, mut n, mut s) = pair(None);
        let t = tokio::spawn(async move { c.echo().await });
        let _ = s.recv().await.unwrap();
        drop(s);
        assert!(matches!(t.await.unwrap(), Err(Error::Disconnected)));
        assert!(n.recv().await.is_none());
    }

    #[tokio::test]
    async fn bad_addresses() {
        for a in ["foo", "tcp:nope", "ssl:1.2.3.4:6640"] {
            assert!(
                matches!(Client::connect(a).await, Err(Error::BadAddress(_))),
                "{a}"
            );
        }
        assert!(matches!(
            Client::connect("unix:/nonexistent/x.sock").await,
            Err(Error::Io(_))
        ));
    }
}
