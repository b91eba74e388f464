//! The emulated Xen attach socket: where `xennet-guest` processes (emulated
//! Xen guests) hand xennetd their memory, grant table and event channels,
//! standing in for the hypervisor plus the xenstore handshake (see
//! `xennet_vif::emul::attach`).
//!
//! One connection per vif. After the handshake the connection stays open
//! for the vif's lifetime: EOF means the guest is gone (as a domain's death
//! would be on Xen) and the port is removed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use xennet_datapath::OfPort;
use xennet_vif::emul::attach::{recv_attach, send_reply, AttachReply};
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

/// How long a guest may take to send its attach request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accept guests until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    switch: Placement,
    cfg: EmulatedXenConfig,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let switch = switch.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_guest(stream, switch, cfg).await {
                tracing::warn!("emulated Xen guest: {e:#}");
            }
        });
    }
}

async fn serve_guest(
    stream: UnixStream,
    switch: Placement,
    cfg: EmulatedXenConfig,
) -> anyhow::Result<()> {
    let std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    std_stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let (std_stream, attached) = {
        let switch = switch.clone();
        tokio::task::spawn_blocking(move || {
            let r = attach(&std_stream, &switch, &cfg);
            let reply = match &r {
                Ok((_, ofport, name)) => AttachReply::ok(*ofport, name.clone()),
                Err(e) => AttachReply::error(format!("{e:#}")),
            };
            if let Err(e) = send_reply(&std_stream, &reply) {
                tracing::warn!("emulated Xen guest: could not send the attach reply: {e}");
            }
            (std_stream, r)
        })
        .await?
    };
    let (bridge, ofport, name) = attached?;
    // Wait for the guest to go away.
    std_stream.set_read_timeout(None)?;
    std_stream.set_nonblocking(true)?;
    let mut stream = UnixStream::from_std(std_stream)?;
    let mut buf = [0u8; 256];
    while stream.read(&mut buf).await.unwrap_or(0) > 0 {}
    tracing::info!("{name}: frontend closed its connection");
    match &switch {
        Placement::Static(sw) => {
            if let Some(b) = sw.bridge(&bridge) {
                b.del_port(ofport);
            }
        }
        Placement::Database(vifs) => vifs.detach(&name),
    }
    Ok(())
}

/// Receive the request, connect the vif and add it to the bridge (or, with
/// a database, to the registry: then the ofport is 0 and the bridge empty);
/// returns (bridge, ofport, vif name).
fn attach(
    stream: &std::os::unix::net::UnixStream,
    switch: &Placement,
    cfg: &EmulatedXenConfig,
) -> anyhow::Result<(String, OfPort, String)> {
    let (req, domain) = recv_attach(stream, cfg.backend_domid).context("bad attach request")?;
    let name = format!("vif{}.{}", req.domid, req.handle);
    let bridge = match switch {
        Placement::Static(sw) => Some(
            sw.bridge(&cfg.bridge)
                .with_context(|| format!("no bridge {}", cfg.bridge))?,
        ),
        Placement::Database(vifs) => {
            anyhow::ensure!(!vifs.is_attached(&name), "{name} is already attached");
            None
        }
    };
    let vif = Vif::connect(
        name.clone(),
        cfg.backend_domid,
        req.frontend_config(),
        Box::new(domain.grants),
        Box::new(domain.evtchn),
    )
    .with_context(|| format!("{name}: connecting to the frontend's rings"))?;
    let entry = PortEntry {
        name: name.clone(),
        vif: Some((req.domid, vif.metrics())),
    };
    match (switch, bridge) {
        (Placement::Database(vifs), _) => {
            vifs.attach(entry, Box::new(vif))?;
            Ok((String::new(), 0, name))
        }
        (_, Some(bridge)) => {
            let ofport = bridge.add_port(entry, Box::new(vif))?;
            Ok((cfg.bridge.clone(), ofport, name))
        }
        (Placement::Static(_), None) => anyhow::bail!("no bridge {}", cfg.bridge),
    }
}
