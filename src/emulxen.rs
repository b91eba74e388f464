//! The emulated Xen attach socket: where `xennet-guest` processes (emulated
//! Xen guests) hand xennetd their memory, grant table and event channels,
//! standing in for the hypervisor plus the xenstore handshake (see
//! `xennet_vif::emul::attach`).
//!
//! Two kinds of guests:
//! - *registered domains* (the xenbus path): the guest only registers its
//!   domain (memory, grant table, one event channel port) here, and its
//!   vif is set up through xenstore by [`crate::xenbusd`], which resolves
//!   the frontend's grant references and `event-channel` port through
//!   [`Domains`];
//! - *attached vifs* (the legacy handshake): the frontend parameters come
//!   in the attach message itself.
//!
//! Either connection stays open for the domain's (vif's) lifetime: EOF
//! means the guest is gone (as a domain's death would be on Xen). An
//! attached vif's port is then removed; for a registered domain xennetd
//! does what the toolstack does when a domain dies: it removes the
//! domain's vif directories from xenstore (unless the frontend had closed
//! cleanly, state Closed), and the backend state machine takes the vif
//! off its bridge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use xennet_datapath::OfPort;
use xennet_vif::emul::attach::{recv_hello, send_reply, AttachReply, Hello, RegisteredDomain};
use xennet_vif::error::VifError;
use xennet_vif::evtchn::EventChannel;
use xennet_vif::grant::{DomId, GrantOps};
use xennet_vif::xenstore::XenstoreServer;
use xennet_vif::Vif;

use crate::bridge::{PortEntry, Switch};
use crate::config::EmulatedXenConfig;
use crate::dbsync::VifRegistry;

/// Where attached vifs go.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Straight onto the configuration's `emulated_xen.bridge`.
    Static(Arc<Switch>),
    /// Into the registry of attached vifs; the database reconciler puts
    /// each on the bridge whose Port lists its interface (the hotplug
    /// script's `ovs-vsctl add-port` on Xen).
    Database(Arc<VifRegistry>),
}

/// The domains registered with the emulated hypervisor, by domain id.
#[derive(Debug, Default)]
pub struct Domains(Mutex<HashMap<DomId, Arc<RegisteredDomain>>>);

impl Domains {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DomId, Arc<RegisteredDomain>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered domain `domid`.
    pub fn get(&self, domid: DomId) -> Option<Arc<RegisteredDomain>> {
        self.lock().get(&domid).cloned()
    }
}

impl Domains {
    /// `xennet/domain-show`: every registered domain and what backends
    /// hold of it (`xennet_vif::emul::attach::DomainUsage`), one line
    /// each: `domain 1: ring-mappings:2 grant-handles:1 bound-channels:1`.
    pub fn show(&self) -> String {
        let mut all: Vec<(DomId, Arc<RegisteredDomain>)> =
            self.lock().iter().map(|(d, r)| (*d, r.clone())).collect();
        all.sort_unstable_by_key(|(d, _)| *d);
        let mut out = String::new();
        for (d, r) in all {
            let u = r.usage();
            out.push_str(&format!(
                "domain {d}: ring-mappings:{} grant-handles:{} bound-channels:{}\n",
                u.ring_mappings, u.grant_handles, u.bound_channels
            ));
        }
        out
    }

    fn registered(&self, domid: DomId) -> Result<Arc<RegisteredDomain>, String> {
        self.get(domid)
            .ok_or_else(|| format!("domain {domid} is not registered with the emulated hypervisor"))
    }
}

impl crate::xenbusd::Hypervisor for Domains {
    fn grants(&self, backend: DomId, domid: DomId) -> Result<Box<dyn GrantOps + Send>, String> {
        Ok(Box::new(self.registered(domid)?.grants(backend)))
    }

    fn bind(
        &self,
        _backend: DomId,
        domid: DomId,
        remote_port: u32,
    ) -> Result<Box<dyn EventChannel + Send>, String> {
        let ch = self.registered(domid)?.channel(remote_port);
        Ok(Box::new(ch.map_err(|e| e.to_string())?))
    }

    /// Registered with the emulated hypervisor.
    fn domain_exists(&self, domid: DomId) -> bool {
        self.get(domid).is_some()
    }
}

/// Add the emulated hypervisor's commands (`xennet/domain-show`) to `c`.
pub fn add_commands(c: &mut crate::unixctl::Commands, domains: Arc<Domains>) {
    c.add(
        "xennet/domain-show",
        "",
        0,
        0,
        Box::new(move |_| Ok(domains.show())),
    );
}

/// What registered domains need: the registry and the emulated xenstored.
#[derive(Debug, Clone)]
pub struct XenbusCtx {
    /// Registered domains.
    pub domains: Arc<Domains>,
    /// The in-process xenstored.
    pub store: XenstoreServer,
}

/// How long a guest may take to send its whole attach request (one
/// deadline for the message, not per read: a peer sending a byte at a time
/// cannot stretch it).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most handshakes under way at once (each holds a blocking thread until
/// it completes or [`HANDSHAKE_TIMEOUT`] passes); further connections are
/// closed at once, counted (`emulxen_handshakes_refused`) and logged at
/// most once a second. Registered guests do not count.
pub const MAX_HANDSHAKES: usize = 64;

/// Accept guests until the task is dropped.
///
/// # Errors
/// Only when the listener itself is broken: transient accept errors
/// (out of descriptors, ...) are logged and waited out
/// ([`crate::accept::next`]).
pub async fn serve(
    listener: UnixListener,
    switch: Placement,
    cfg: EmulatedXenConfig,
    xenbus: Option<XenbusCtx>,
) -> std::io::Result<()> {
    let mut errors = crate::accept::AcceptErrors::new(
        listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "emulated Xen socket".into()),
    );
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let mut busy_log = crate::ratelimit::LogLimit::new();
    loop {
        let (stream, _) = crate::accept::next(&mut errors, || listener.accept()).await?;
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            drop(stream);
            if let Some(n) = crate::coverage::EMULXEN_HANDSHAKES_REFUSED.count(&mut busy_log) {
                tracing::warn!(
                    "emulated Xen socket: {MAX_HANDSHAKES} handshakes under way, closing a new connection ({n} in all)"
                );
            }
            continue;
        };
        let switch = switch.clone();
        let cfg = cfg.clone();
        let xenbus = xenbus.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_guest(stream, permit, switch, cfg, xenbus).await {
                refused(&e);
            }
        });
    }
}

/// Log why a guest was refused. What a hostile or broken peer can repeat
/// in a loop is logged at most once a second: a message with too many
/// descriptors (`MSG_CTRUNC`, counted as `emulxen_fds_truncated` in
/// `coverage/show`) and a handshake past its deadline (counted where it
/// times out).
fn refused(e: &anyhow::Error) {
    static REPEATED_LOG: Mutex<crate::ratelimit::LogLimit> =
        Mutex::new(crate::ratelimit::LogLimit::new());
    let truncated = e
        .chain()
        .any(|c| matches!(c.downcast_ref(), Some(VifError::TooManyFds { .. })));
    if truncated {
        crate::coverage::EMULXEN_FDS_TRUNCATED.inc();
    } else if e.downcast_ref::<HandshakeTimedOut>().is_none() {
        tracing::warn!("emulated Xen guest: {e:#}");
        return;
    }
    if let Some(held) = REPEATED_LOG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow()
    {
        tracing::warn!("emulated Xen guest refused: {e:#} ({held} more refusals not logged)");
    }
}

/// A guest's attach request did not arrive whole within the deadline.
#[derive(Debug, thiserror::Error)]
#[error("no complete attach request within {0:?}")]
struct HandshakeTimedOut(Duration);

/// What a guest's first message led to.
enum Outcome {
    /// A vif attached the legacy way: (bridge, ofport, name).
    Attached(String, OfPort, String),
    /// A domain registered.
    Registered(DomId),
}

/// One guest's connection: its handshake (holding `permit`, within
/// [`HANDSHAKE_TIMEOUT`]), then, until it closes, its vif or domain.
async fn serve_guest(
    stream: UnixStream,
    permit: tokio::sync::OwnedSemaphorePermit,
    switch: Placement,
    cfg: EmulatedXenConfig,
    xenbus: Option<XenbusCtx>,
) -> anyhow::Result<()> {
    let std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    std_stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    // Shut down at the deadline, which ends the blocking reads at once.
    let watchdog = std_stream.try_clone()?;
    let handshake = {
        let switch = switch.clone();
        let xenbus = xenbus.clone();
        tokio::task::spawn_blocking(move || {
            let r = hello(&std_stream, &switch, &cfg, xenbus.as_ref());
            let reply = match &r {
                Ok(Outcome::Attached(_, ofport, name)) => AttachReply::ok(*ofport, name.clone()),
                Ok(Outcome::Registered(domid)) => AttachReply {
                    ok: true,
                    ofport: None,
                    name: Some(format!("domain {domid}")),
                    error: None,
                },
                Err(e) => AttachReply::error(format!("{e:#}")),
            };
            if let Err(e) = send_reply(&std_stream, &reply) {
                tracing::warn!("emulated Xen guest: could not send the reply: {e}");
            }
            (std_stream, r)
        })
    };
    let (std_stream, outcome) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(r) => r?,
        Err(_) => {
            let _ = watchdog.shutdown(std::net::Shutdown::Both);
            crate::coverage::EMULXEN_HANDSHAKES_TIMED_OUT.inc();
            return Err(HandshakeTimedOut(HANDSHAKE_TIMEOUT).into());
        }
    };
    drop((watchdog, permit));
    let outcome = outcome?;
    // Wait for the guest to go away.
    std_stream.set_read_timeout(None)?;
    std_stream.set_nonblocking(true)?;
    let mut stream = UnixStream::from_std(std_stream)?;
    let mut buf = [0u8; 256];
    while stream.read(&mut buf).await.unwrap_or(0) > 0 {}
    match outcome {
        Outcome::Attached(bridge, ofport, name) => {
            tracing::info!("{name}: frontend closed its connection");
            unplace(&switch, &bridge, ofport, &name);
        }
        Outcome::Registered(domid) => {
            tracing::info!("domain {domid}: gone (registration closed)");
            if let Some(ctx) = xenbus {
                ctx.domains.lock().remove(&domid);
                tokio::task::spawn_blocking(move || crate::xenbusd::domain_died(&ctx.store, domid))
                    .await?;
            }
        }
    }
    Ok(())
}

/// Take a vif placed by [`place`] off its bridge (or out of the registry).
pub fn unplace(switch: &Placement, bridge: &str, ofport: OfPort, name: &str) {
    match switch {
        Placement::Static(sw) => {
            if let Some(b) = sw.bridge(bridge) {
                b.del_port(ofport);
            }
        }
        Placement::Database(vifs) => vifs.detach(name),
    }
}

/// Receive the first message and act on it.
fn hello(
    stream: &std::os::unix::net::UnixStream,
    switch: &Placement,
    cfg: &EmulatedXenConfig,
    xenbus: Option<&XenbusCtx>,
) -> anyhow::Result<Outcome> {
    match recv_hello(stream, cfg.backend_domid).context("bad first message")? {
        Hello::Attach(req, domain) => {
            let name = format!("vif{}.{}", req.domid, req.handle);
            let vif = Vif::connect(
                name.clone(),
                cfg.backend_domid,
                req.frontend_config(),
                Box::new(domain.grants),
                Box::new(domain.evtchn),
            )
            .with_context(|| format!("{name}: connecting to the frontend's rings"))?;
            let (bridge, ofport) = place(switch, &cfg.bridge, &name, req.domid, vif)?;
            Ok(Outcome::Attached(bridge, ofport, name))
        }
        Hello::Register(dom) => {
            let ctx = xenbus.context(
                "domain registration needs the emulated xenstored ([emulated_xen] xenstored)",
            )?;
            let domid = dom.domid;
            // Not dom0, not the backend, not a reserved id (DOMID_FIRST_RESERVED).
            anyhow::ensure!(
                domid != cfg.backend_domid && domid != 0 && domid < 0x7ff0,
                "domain {domid} cannot be registered"
            );
            let mut domains = ctx.domains.lock();
            anyhow::ensure!(
                !domains.contains_key(&domid),
                "domain {domid} is already registered"
            );
            domains.insert(domid, Arc::new(dom));
            tracing::info!("domain {domid} registered with the emulated hypervisor");
            Ok(Outcome::Registered(domid))
        }
    }
}

/// Put a connected vif on `bridge` (or, with a database, into the
/// registry: then the bridge is empty and the ofport 0).
pub fn place(
    switch: &Placement,
    bridge: &str,
    name: &str,
    domid: DomId,
    vif: Vif,
) -> anyhow::Result<(String, OfPort)> {
    let entry = PortEntry {
        name: name.to_string(),
        vif: Some((domid, vif.metrics())),
        rx_ring: false,
        security: Some(vif.port_security()),
        link: None,
    };
    // Every vif mirrors into its representor device, if it has one.
    let port = crate::representor::wrap(name, Box::new(vif));
    match switch {
        Placement::Static(sw) => {
            let br = sw
                .bridge(bridge)
                .with_context(|| format!("no bridge {bridge}"))?;
            let ofport = br.add_port(entry, port)?;
            Ok((bridge.to_string(), ofport))
        }
        Placement::Database(vifs) => {
            anyhow::ensure!(!vifs.is_attached(name), "{name} is already attached");
            vifs.attach(entry, port)?;
            Ok((String::new(), 0))
        }
    }
}
