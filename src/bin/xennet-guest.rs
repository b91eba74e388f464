//! `xennet-guest`: an emulated Xen guest for machines without Xen.
//!
//! It is a netfront: it owns its "guest memory" (a memfd) holding the TX and
//! RX shared rings and packet pages, grants them to the backend through a
//! `grant_entry_v1` table, and signals through event channels (eventfds),
//! exactly as `xen-netfront` would; it attaches to xennetd's emulated Xen
//! socket. Its other side is a tap device with the virtio-net header
//! inside a network namespace, so a real Linux IP stack (ping, iperf3)
//! sends and receives through the ring protocol:
//!
//! ```text
//! Linux stack ─ tap eth0 ─ xennet-guest (netfront) ═ rings ═ xennetd (netback) ─ switch
//! ```
//!
//! Checksum offload is carried, not hidden: a frame the kernel hands the
//! tap with `VIRTIO_NET_HDR_F_NEEDS_CSUM` goes on the TX ring with
//! `NETTXF_csum_blank | NETTXF_data_validated`, as Linux netfront does for
//! `CHECKSUM_PARTIAL`, and an RX response with `NETRXF_csum_blank` is
//! written back to the tap as `NEEDS_CSUM` with the L4 offsets.
//!
//! When xennetd publishes its emulated xenstored (`<rundir>/xenstored.sock`,
//! or `--xenstore PATH`) the vif is set up the Xen way (`--legacy-attach`
//! keeps the old all-in-one attach message): the guest only registers its domain (memory, grant
//! table, event channel port 1) on the attach socket, plays the toolstack
//! (`create_vif_nodes`: libxl's backend and frontend directories), then
//! behaves as Linux xen-netfront: waits for the backend's InitWait, writes
//! `tx-ring-ref`, `rx-ring-ref`, `event-channel`, `request-rx-copy`,
//! `feature-rx-notify`, `feature-sg`, `feature-gso-tcpv4/v6` and
//! `feature-no-csum-offload`, `feature-ipv6-csum-offload` with state Initialised (3) in one transaction,
//! and goes Connected (4) once the backend is Connected. On SIGTERM or
//! SIGINT it goes Closing (5) and Closed (6), following the backend.
//!
//! `--queues N` (1-8) and `--split-evtchn` use multi-queue and split event
//! channels (`queue-N/` keys, `event-channel-tx`/`-rx`); `--ctrl-ring`
//! configures the backend's Toeplitz hash and mapping table on the control
//! ring (`--hash-mapping`). `--mcast-group MAC` writes
//! `request-multicast-control` and subscribes to the group with an
//! `XEN_NETIF_EXTRA_TYPE_MCAST_ADD` request.
//!
//! `--hostile CASE` makes it misbehave once after attaching (see
//! `xennet_vif::hostile`), to test that xennetd survives it.
//!
//! Commands, by signal:
//!
//! - SIGUSR1 resets the interface, as Linux xen-netfront reconnects: the
//!   frontend goes Closing and Closed (each after the backend followed),
//!   revokes every grant and sets up fresh rings under new grant
//!   references ([`Netfront::reset`]), goes Initialising, and once the
//!   backend is back in InitWait writes the new keys with Initialised
//!   and goes Connected after the backend. As Linux netfront's
//!   `netdev_notify_peers` after a reconnection, it then announces its
//!   address (`--ip`) with a gratuitous ARP, queued on the new TX ring
//!   before Initialised. It prints the times from writing Initialised to
//!   seeing the backend Connected and to the first TX response (the
//!   first packet forwarded), in µs. Frames the guest's stack queues
//!   meanwhile wait in the tap and go out on the new rings; what the
//!   backend put in the old RX ring until it went Closed goes to the
//!   stack before the rings are torn down.
//! - SIGUSR2 stops taking packets from the RX ring (the backend's RX
//!   backlog then builds up), or resumes.

#[path = "../tap.rs"]
#[allow(dead_code)]
mod tap;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tap::{Tap, VnetHdr, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE};
use xennet_vif::hostile::HostileCase;
use xennet_vif::netfront::Netfront;
use xennet_vif::ring::{
    NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED,
};
use xennet_vif::xenbus::{
    backend_path, create_vif_nodes, error_path, frontend_path, read_state, write_state, VifSpec,
    XenbusState,
};
use xennet_vif::xenstore::Client;

/// An emulated Xen guest NIC (netfront) bridged to a tap device.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// xennetd's run directory (default $OVS_RUNDIR, else /var/run/openvswitch).
    #[arg(long)]
    rundir: Option<PathBuf>,
    /// Emulated Xen socket (default <rundir>/xennet-xen.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// This guest's domain id (1-32751).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..0x7ff0))]
    domid: u16,
    /// The vif's device handle (vifDOMID.HANDLE).
    #[arg(long, default_value_t = 0)]
    handle: u16,
    /// MAC address of the guest NIC (default 00:16:3e:00:DD:HH from domid/handle).
    #[arg(long)]
    mac: Option<String>,
    /// With --xenstore: the `mac` written to the backend and frontend
    /// directories instead of the NIC's (tests of a toolstack that writes
    /// no valid one: "" or a group address).
    #[arg(long, value_name = "MAC")]
    xenstore_mac: Option<String>,
    /// Network namespace (under /var/run/netns) to create the tap in.
    #[arg(long)]
    netns: Option<String>,
    /// Tap device name.
    #[arg(long, default_value = "eth0")]
    tap: String,
    /// IPv4 address/prefix to give the tap (brought up after attaching).
    #[arg(long)]
    ip: Option<String>,
    /// Misbehave once after attaching: prod-overflow, bad-gref,
    /// offset-overflow, zero-length, twenty-slots, nineteen-slots.
    #[arg(long)]
    hostile: Option<HostileCase>,
    /// Set the vif up through xenstore (xenbus states, netif.h keys) at
    /// this xenstored socket. Default: <rundir>/xenstored.sock when
    /// xennetd publishes it.
    #[arg(long, conflicts_with = "legacy_attach")]
    xenstore: Option<PathBuf>,
    /// Pass the frontend parameters on the attach socket (the handshake
    /// before xenstore) even when xenstore is available.
    #[arg(long)]
    legacy_attach: bool,
    /// If xennetd goes away, wait up to this many seconds for it to come
    /// back, then register again and set the vif up through xenstore on
    /// the same rings, whose queued requests the new backend serves (an
    /// emulated xennetd takes its hypervisor and xenstore state with it).
    /// 0: exit instead.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    reconnect: u64,
    /// The backend's domain id (with --xenstore).
    #[arg(long, default_value_t = 0)]
    backend_domid: u16,
    /// How long to wait for the backend at each step of the xenbus
    /// handshake (InitWait, then Connected) before giving up, in seconds
    /// (with --xenstore).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    step_timeout: u64,
    /// Grant the rings and pages to this domain instead of the backend's
    /// (default: --backend-domid): a misconfigured guest, for tests of
    /// the backend's refusal.
    #[arg(long, value_name = "DOMID")]
    grant_domid: Option<u16>,
    /// The `bridge` key the toolstack writes (with --xenstore).
    #[arg(long, default_value = "br0")]
    bridge: String,
    /// Number of queues (1-8, `multi-queue-num-queues`; with xenstore).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    queues: u32,
    /// Two event channels per queue (`event-channel-tx`/`-rx`,
    /// `feature-split-event-channels`; with xenstore).
    #[arg(long)]
    split_evtchn: bool,
    /// Use the control ring (`feature-ctrl-ring`): once connected, select
    /// the Toeplitz hash with the RSS verification key over IPv4/IPv6 with
    /// TCP ports, and the mapping table of --hash-mapping.
    #[arg(long)]
    ctrl_ring: bool,
    /// With --ctrl-ring: the hash-to-queue mapping table, comma-separated
    /// queue numbers (default 0,1,..,queues-1).
    #[arg(long, value_delimiter = ',', requires = "ctrl_ring")]
    hash_mapping: Vec<u32>,
    /// Ask for multicast control (`request-multicast-control`) and
    /// subscribe to this group (`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`), e.g.
    /// 01:00:5e:01:02:03; repeatable. The backend then sends this guest
    /// only the groups given (and broadcast and unicast). With xenstore.
    #[arg(long = "mcast-group", value_name = "MAC", value_parser = parse_mac)]
    mcast_groups: Vec<[u8; 6]>,
}

/// Set by SIGTERM/SIGINT: close the vif and exit.
static STOP: AtomicBool = AtomicBool::new(false);
/// Set by SIGUSR1: reset the interface.
static RESET: AtomicBool = AtomicBool::new(false);
/// Toggled by SIGUSR2: leave the RX ring alone.
static RX_STALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    match sig {
        libc::SIGUSR1 => RESET.store(true, Ordering::SeqCst),
        libc::SIGUSR2 => {
            RX_STALLED.fetch_xor(true, Ordering::SeqCst);
        }
        _ => STOP.store(true, Ordering::SeqCst),
    }
}

/// Waits up to `timeout` for the backend's state to satisfy `want`.
/// `--step-timeout` in milliseconds.
static STEP_TIMEOUT_MS: AtomicU64 = AtomicU64::new(10_000);

/// How long [`xenbus_handshake`] waits for each backend state.
fn step_timeout() -> Duration {
    Duration::from_millis(STEP_TIMEOUT_MS.load(Ordering::Relaxed))
}

fn wait_backend(
    xs: &Client,
    be: &str,
    timeout: Duration,
    want: impl Fn(XenbusState) -> bool,
) -> anyhow::Result<XenbusState> {
    let end = Instant::now() + timeout;
    loop {
        let st = read_state(xs, be)?;
        if want(st) {
            return Ok(st);
        }
        let left = end.saturating_duration_since(Instant::now());
        anyhow::ensure!(!left.is_zero(), "backend stuck in state {st:?}");
        // Any watch event (or a short timeout) means: look again.
        xs.next_event(left.min(Duration::from_millis(200)))?;
    }
}

/// The xenbus handshake, frontend side (Linux xen-netfront's
/// `talk_to_netback` and `netback_changed`): the toolstack's directories,
/// a watch on the backend's state, then [`xenbus_handshake`].
fn xenbus_connect(xs: &Client, nf: &Netfront, spec: &VifSpec) -> anyhow::Result<()> {
    create_vif_nodes(xs, spec).context("creating the vif's xenstore directories")?;
    let be = backend_path(spec.backend_domid, spec.domid, spec.handle);
    xs.watch(&format!("{be}/state"), "backend-state")?;
    xenbus_handshake(xs, nf, spec).map(|_| ())
}

/// When [`xenbus_handshake`] wrote Initialised (just before the commit
/// that made it visible) and when it saw the backend Connected.
struct HandshakeTimes {
    initialised: Instant,
    connected: Instant,
}

/// From the backend's InitWait to Connected: the frontend's keys with
/// Initialised in one transaction, then Connected once the backend is.
fn xenbus_handshake(xs: &Client, nf: &Netfront, spec: &VifSpec) -> anyhow::Result<HandshakeTimes> {
    let be = backend_path(spec.backend_domid, spec.domid, spec.handle);
    let fe = frontend_path(spec.domid, spec.handle);
    wait_backend(xs, &be, step_timeout(), |s| s == XenbusState::InitWait)
        .context("waiting for the backend's InitWait")?;
    let flag = |b: bool| if b { "1" } else { "0" };
    let n = nf.num_queues();
    if n > 1 || nf.split_event_channels() {
        // As Linux xen-netfront: only what the backend advertises.
        let max = xs
            .read_string(&format!("{be}/multi-queue-max-queues"))
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        anyhow::ensure!(n <= max, "the backend takes at most {max} queues, not {n}");
        let split = xs
            .read_string(&format!("{be}/feature-split-event-channels"))
            .is_ok_and(|v| v == "1");
        anyhow::ensure!(
            split || !nf.split_event_channels(),
            "the backend has no feature-split-event-channels"
        );
    }
    // One queue: keys at the top; several: under queue-N/ (netif.h).
    let mut keys: Vec<(String, String)> = Vec::new();
    if n > 1 {
        keys.push(("multi-queue-num-queues".into(), n.to_string()));
    }
    for q in 0..n {
        let dir = if n > 1 {
            format!("queue-{q}/")
        } else {
            String::new()
        };
        let (tx_ref, rx_ref) = nf.ring_refs(q);
        keys.push((format!("{dir}tx-ring-ref"), tx_ref.to_string()));
        keys.push((format!("{dir}rx-ring-ref"), rx_ref.to_string()));
        match nf.event_ports(q) {
            (tx, Some(rx)) => {
                keys.push((format!("{dir}event-channel-tx"), tx.to_string()));
                keys.push((format!("{dir}event-channel-rx"), rx.to_string()));
            }
            (port, None) => keys.push((format!("{dir}event-channel"), port.to_string())),
        }
    }
    if let Some((ring_ref, port)) = nf.ctrl_keys() {
        let ctrl = xs
            .read_string(&format!("{be}/feature-ctrl-ring"))
            .is_ok_and(|v| v == "1");
        anyhow::ensure!(ctrl, "the backend has no feature-ctrl-ring");
        keys.push(("ctrl-ring-ref".into(), ring_ref.to_string()));
        keys.push(("event-channel-ctrl".into(), port.to_string()));
    }
    if nf.request_multicast_control {
        let offered = xs
            .read_string(&format!("{be}/feature-multicast-control"))
            .is_ok_and(|v| v == "1");
        anyhow::ensure!(offered, "the backend has no feature-multicast-control");
        keys.push(("request-multicast-control".into(), "1".into()));
    }
    for (k, v) in [
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", flag(nf.feature_sg)),
        ("feature-gso-tcpv4", flag(nf.feature_gso_tcpv4)),
        ("feature-gso-tcpv6", flag(nf.feature_gso_tcpv6)),
        ("feature-no-csum-offload", flag(!nf.feature_rx_csum)),
        ("feature-ipv6-csum-offload", flag(nf.feature_rx_csum)),
        ("state", XenbusState::Initialised.as_str()),
    ] {
        keys.push((k.into(), v.into()));
    }
    let mut initialised = Instant::now();
    xs.transaction(|tx| {
        for (k, v) in &keys {
            tx.write(&format!("{fe}/{k}"), v.as_str())?;
        }
        initialised = Instant::now();
        Ok(())
    })
    .context("writing the frontend keys")?;
    let st = wait_backend(xs, &be, step_timeout(), |s| s >= XenbusState::Connected)?;
    let connected = Instant::now();
    if st != XenbusState::Connected {
        let err = xs
            .read_string(&error_path(spec.backend_domid, spec.domid, spec.handle))
            .unwrap_or_default();
        bail!("the backend refused the vif (state {st:?}): {err}");
    }
    write_state(xs, &fe, XenbusState::Connected)?;
    Ok(HandshakeTimes {
        initialised,
        connected,
    })
}

/// A gratuitous ARP request announcing `ip` at `mac` (what Linux sends
/// for `NETDEV_NOTIFY_PEERS`: sender and target address both `ip`).
fn gratuitous_arp(mac: [u8; 6], ip: std::net::Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f.resize(60, 0);
    f
}

/// Reset the interface (see the module documentation): Closing, Closed,
/// fresh rings under new grant references, Initialising, the handshake,
/// and the gratuitous ARP `announce` (if any) on the new TX ring. Prints
/// the timings. `deliver` hands what the backend put in the RX ring to
/// the stack.
fn xenbus_reset(
    xs: &Client,
    nf: &mut Netfront,
    spec: &VifSpec,
    announce: Option<&[u8]>,
    deliver: &mut dyn FnMut(&mut Netfront) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let be = backend_path(spec.backend_domid, spec.domid, spec.handle);
    let fe = frontend_path(spec.domid, spec.handle);
    // What is on the TX ring goes out first (the backend answers within
    // microseconds; at most 200 ms for a stuck one, whose requests are
    // then dropped with the old rings, as Linux netfront drops them).
    let end = start + Duration::from_millis(200);
    while nf.tx_in_flight() > 0 && Instant::now() < end {
        wait_events(nf, 10);
    }
    xenbus_close(xs, spec)?;
    // The backend is Closed: it unmapped the rings and unbound the
    // channels, so the grants can go. What it put in the RX ring until
    // then (answers to the last frames sent, say) goes to the stack
    // first; what comes later it holds for the fresh rings.
    deliver(nf)?;
    nf.reset().context("setting up fresh rings")?;
    nf.clear_tx_responses();
    write_state(xs, &fe, XenbusState::Initialising)?;
    wait_backend(xs, &be, Duration::from_secs(5), |s| {
        s == XenbusState::InitWait
    })
    .context("waiting for the backend's InitWait")?;
    if let Some(frame) = announce {
        anyhow::ensure!(nf.send(frame, 0)?, "the fresh TX ring is full");
    }
    let t = xenbus_handshake(xs, nf, spec)?;
    // As Linux netfront's xennet_connect: kick every channel.
    nf.notify_all();
    let forwarded = if announce.is_some() {
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            if !nf.tx_responses().is_empty() {
                break Some(Instant::now());
            }
            if Instant::now() >= end {
                break None;
            }
            wait_events(nf, 100);
        }
    } else {
        None
    };
    let us = |a: Instant, b: Instant| b.saturating_duration_since(a).as_micros();
    println!(
        "xennet-guest: reset {}: Initialised->Connected {} us, Initialised->first-forwarded {} us, whole reset {} us",
        nf.resets(),
        us(t.initialised, t.connected),
        forwarded.map_or_else(|| "-".to_string(), |f| us(t.initialised, f).to_string()),
        us(start, Instant::now()),
    );
    Ok(())
}

/// Wait up to `ms` milliseconds for a notification on any of `nf`'s
/// event channels, and consume it.
fn wait_events(nf: &Netfront, ms: u16) {
    {
        let fds = nf.event_fds();
        let mut pfds: Vec<PollFd> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let _ = poll(&mut pfds, PollTimeout::from(ms));
    }
    nf.ack();
}

/// Frontend Closing then Closed, each after the backend followed.
fn xenbus_close(xs: &Client, spec: &VifSpec) -> anyhow::Result<()> {
    let be = backend_path(spec.backend_domid, spec.domid, spec.handle);
    let fe = frontend_path(spec.domid, spec.handle);
    write_state(xs, &fe, XenbusState::Closing)?;
    wait_backend(xs, &be, Duration::from_secs(5), |s| {
        s >= XenbusState::Closing
    })?;
    write_state(xs, &fe, XenbusState::Closed)?;
    wait_backend(xs, &be, Duration::from_secs(5), |s| {
        s == XenbusState::Closed
    })?;
    Ok(())
}

/// Send one control request and wait (up to 5 s) for its response; an
/// error unless it succeeded. Returns the response's data.
fn ctrl_call(nf: &mut Netfront, kind: u16, data: [u32; 3]) -> anyhow::Result<u32> {
    use xennet_vif::ctrl::{CtrlRequest, CTRL_STATUS_SUCCESS};
    anyhow::ensure!(
        nf.ctrl_send(CtrlRequest {
            id: kind,
            kind,
            data
        }),
        "control ring full"
    );
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(rsp) = nf.ctrl_recv() {
            anyhow::ensure!(rsp.id == kind, "response {} to request {kind}", rsp.id);
            anyhow::ensure!(
                rsp.status == CTRL_STATUS_SUCCESS,
                "control request {kind} failed with status {}",
                rsp.status
            );
            return Ok(rsp.data);
        }
        anyhow::ensure!(Instant::now() < end, "no answer to control request {kind}");
        {
            let fds = nf.event_fds();
            let mut pfds: Vec<PollFd> = fds
                .iter()
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            let _ = poll(&mut pfds, PollTimeout::from(100u16));
        }
        nf.ack();
    }
}

/// Toeplitz with the RSS verification key over every hash type, and
/// `mapping` as the hash-to-queue table (`io/netif.h` control requests).
fn configure_hash(nf: &mut Netfront, mapping: &[u32]) -> anyhow::Result<()> {
    use xennet_vif::ctrl::*;
    use xennet_vif::toeplitz::{DEFAULT_KEY, HASH_TYPES_ALL};
    let data = nf.ctrl_data_gref();
    ctrl_call(
        nf,
        CTRL_TYPE_SET_HASH_ALGORITHM,
        [HASH_ALGORITHM_TOEPLITZ, 0, 0],
    )?;
    let flags = ctrl_call(nf, CTRL_TYPE_GET_HASH_FLAGS, [0; 3])?;
    anyhow::ensure!(nf.write_ctrl_data(&DEFAULT_KEY));
    ctrl_call(
        nf,
        CTRL_TYPE_SET_HASH_KEY,
        [data, DEFAULT_KEY.len() as u32, 0],
    )?;
    ctrl_call(nf, CTRL_TYPE_SET_HASH_FLAGS, [flags & HASH_TYPES_ALL, 0, 0])?;
    let max = ctrl_call(nf, CTRL_TYPE_GET_HASH_MAPPING_SIZE, [0; 3])?;
    anyhow::ensure!(mapping.len() as u32 <= max, "mapping larger than {max}");
    ctrl_call(
        nf,
        CTRL_TYPE_SET_HASH_MAPPING_SIZE,
        [mapping.len() as u32, 0, 0],
    )?;
    let table: Vec<u8> = mapping.iter().flat_map(|q| q.to_ne_bytes()).collect();
    anyhow::ensure!(nf.write_ctrl_data(&table));
    ctrl_call(
        nf,
        CTRL_TYPE_SET_HASH_MAPPING,
        [data, mapping.len() as u32, 0],
    )?;
    Ok(())
}

fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("bad MAC address {s:?}");
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC address {s:?}"))?;
    }
    Ok(mac)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("ip")
        .args(args)
        .status()
        .context("running ip (install iproute2)")?;
    anyhow::ensure!(st.success(), "ip {} failed", args.join(" "));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    STEP_TIMEOUT_MS.store(args.step_timeout.saturating_mul(1000), Ordering::Relaxed);
    let rundir = args
        .rundir
        .clone()
        .or_else(|| std::env::var_os("OVS_RUNDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/openvswitch"));
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| rundir.join("xennet-xen.sock"));
    let mac = match &args.mac {
        Some(m) => parse_mac(m)?,
        None => {
            let [d1, d0] = args.domid.to_be_bytes();
            [0x00, 0x16, 0x3e, d1, d0, args.handle as u8]
        }
    };
    if let Some(ns) = &args.netns {
        let path = PathBuf::from("/var/run/netns").join(ns);
        let f = std::fs::File::open(&path)
            .with_context(|| format!("opening network namespace {}", path.display()))?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering network namespace {ns}"))?;
    }
    let mut tap = Tap::open(&args.tap).with_context(|| format!("creating tap {}", args.tap))?;
    anyhow::ensure!(
        (args.queues == 1 && !args.split_evtchn) || !args.legacy_attach,
        "--queues and --split-evtchn need the xenstore handshake, not --legacy-attach"
    );
    let grant_to = args.grant_domid.unwrap_or(args.backend_domid);
    let mut nf = Netfront::with_queues(args.domid, grant_to, args.queues, args.split_evtchn)
        .context("setting up the netfront")?;
    if !args.mcast_groups.is_empty() {
        anyhow::ensure!(
            !args.legacy_attach,
            "--mcast-group needs the xenstore handshake"
        );
        nf.request_multicast_control = true;
    }
    if args.ctrl_ring {
        anyhow::ensure!(
            !args.legacy_attach,
            "--ctrl-ring needs the xenstore handshake"
        );
        nf.enable_ctrl_ring()
            .context("setting up the control ring")?;
    }
    let mut stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "connecting to xennetd at {} (is it running?)",
            socket.display()
        )
    })?;
    let macs = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let xenstore = match (&args.xenstore, args.legacy_attach) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => Some(rundir.join("xenstored.sock")).filter(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
        }),
    };
    let mut xenbus = match &xenstore {
        None => {
            let reply = nf
                .attach(&stream, args.handle, mac)
                .context("attaching to xennetd")?;
            println!("xennet-guest: domain {} attached: {reply:?}", args.domid);
            None
        }
        Some(path) => {
            let (s, reply) = register_retrying(&socket, stream, &mut nf)
                .context("registering with the emulated hypervisor")?;
            stream = s;
            if !reply.ok {
                bail!("registration refused: {}", reply.error.unwrap_or_default());
            }
            let xs = Client::connect(path)
                .with_context(|| format!("connecting to xenstored at {}", path.display()))?;
            let spec = VifSpec {
                domid: args.domid,
                handle: args.handle,
                backend_domid: args.backend_domid,
                mac: args.xenstore_mac.clone().unwrap_or_else(|| macs.clone()),
                bridge: args.bridge.clone(),
                script: String::new(),
            };
            xenbus_connect(&xs, &nf, &spec).context("xenbus handshake")?;
            println!(
                "xennet-guest: domain {} connected through xenstore",
                args.domid
            );
            Some((xs, spec))
        }
    };
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGUSR1,
        nix::sys::signal::Signal::SIGUSR2,
    ] {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_signal),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { nix::sys::signal::sigaction(sig, &action) }.context("sigaction")?;
    }
    ip(&["link", "set", "dev", tap.name(), "address", &macs])?;
    ip(&["link", "set", "dev", tap.name(), "up"])?;
    if let Some(addr) = &args.ip {
        ip(&["addr", "add", addr, "dev", tap.name()])?;
    }
    if args.ctrl_ring {
        let mapping = if args.hash_mapping.is_empty() {
            (0..args.queues).collect()
        } else {
            args.hash_mapping.clone()
        };
        configure_hash(&mut nf, &mapping).context("configuring the hash on the control ring")?;
        println!("xennet-guest: Toeplitz hash configured, mapping {mapping:?}");
    }
    for g in &args.mcast_groups {
        use xennet_vif::ring::XEN_NETIF_EXTRA_TYPE_MCAST_ADD;
        anyhow::ensure!(
            nf.mcast_request(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, *g)?,
            "TX ring full while subscribing to multicast groups"
        );
    }
    if !args.mcast_groups.is_empty() {
        println!(
            "xennet-guest: subscribed to {} multicast group(s)",
            args.mcast_groups.len()
        );
    }
    if let Some(case) = args.hostile {
        xennet_vif::hostile::run(case, &mut nf);
        println!("xennet-guest: sent hostile case {case}");
    }
    let announce = match &args.ip {
        Some(a) => Some(gratuitous_arp(
            mac,
            a.split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .with_context(|| format!("--ip {a}: not an IPv4 address"))?,
        )),
        None => None,
    };
    let mut pending = None;
    loop {
        let ended = run(&mut tap, &mut nf, &stream, &mut pending)?;
        if let Ended::Reset = ended {
            match &xenbus {
                Some((xs, spec)) => {
                    let mut deliver = |nf: &mut Netfront| {
                        let mut rx = Vec::with_capacity(65_536);
                        let mut refused = 0u64;
                        let mut log = xennet_vif::ratelimit::LogLimit::new();
                        while deliver_rx(&mut tap, nf, &mut rx, &mut refused, &mut log)? {}
                        Ok(())
                    };
                    xenbus_reset(xs, &mut nf, spec, announce.as_deref(), &mut deliver)
                        .context("resetting the interface")?
                }
                None => eprintln!("xennet-guest: a reset needs the xenstore handshake; ignored"),
            }
            continue;
        }
        let (Ended::BackendGone, Some((xs, spec)), Some(path)) = (ended, &mut xenbus, &xenstore)
        else {
            break;
        };
        if args.reconnect == 0 {
            break;
        }
        let wait = Duration::from_secs(args.reconnect);
        let (s, c) = reconnect(&socket, path, &mut nf, spec, wait)?;
        stream = s;
        *xs = c;
        println!(
            "xennet-guest: domain {} reconnected through xenstore",
            args.domid
        );
    }
    if let Some((xs, spec)) = &xenbus {
        if STOP.load(Ordering::SeqCst) {
            xenbus_close(xs, spec).context("closing the vif")?;
            println!("xennet-guest: domain {} closed", args.domid);
        }
    }
    Ok(())
}

/// How long [`register_retrying`] keeps trying.
const REGISTER_RETRY_FOR: Duration = Duration::from_secs(30);

/// Register the domain on `stream`; if xennetd closes the connection
/// without a reply (it closes new connections while
/// `MAX_HANDSHAKES` handshakes are under way, as when hundreds of guests
/// start at once), connect again after a random pause of up to
/// min(2^n × 10, 500) ms and retry, for up to [`REGISTER_RETRY_FOR`].
/// A reply, even a refusal, ends it.
fn register_retrying(
    socket: &std::path::Path,
    mut stream: UnixStream,
    nf: &mut Netfront,
) -> anyhow::Result<(UnixStream, xennet_vif::emul::attach::AttachReply)> {
    let end = Instant::now() + REGISTER_RETRY_FOR;
    let mut attempt = 0u32;
    loop {
        match nf.register(&stream) {
            Ok(reply) => return Ok((stream, reply)),
            Err(e) if Instant::now() < end => {
                attempt += 1;
                let cap_ms = (10u64 << attempt.min(6)).min(500);
                let pause = Duration::from_millis(jitter() % (cap_ms + 1));
                if attempt == 1 {
                    println!("xennet-guest: registration not answered ({e}); retrying");
                }
                std::thread::sleep(pause);
                stream = UnixStream::connect(socket).with_context(|| {
                    format!("connecting to xennetd at {} again", socket.display())
                })?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A pseudo-random number for backoff jitter (the standard library's
/// per-process random hash keys and the time), not for anything that
/// needs unpredictability.
fn jitter() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Wait up to `wait` for xennetd's attach socket and xenstored to be back,
/// then register the domain again and redo the xenbus handshake with the
/// same rings and ports (their indices and queued requests untouched).
fn reconnect(
    socket: &std::path::Path,
    xenstored: &std::path::Path,
    nf: &mut Netfront,
    spec: &VifSpec,
    wait: Duration,
) -> anyhow::Result<(UnixStream, Client)> {
    // A huge --reconnect means "wait for ever", not an overflow.
    let deadline = Instant::now()
        .checked_add(wait)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(u64::from(u32::MAX)));
    let mut last_err = String::from("not tried");
    while Instant::now() < deadline && !STOP.load(Ordering::SeqCst) {
        let mut attempt = || -> anyhow::Result<(UnixStream, Client)> {
            let s = UnixStream::connect(socket)?;
            let xs = Client::connect(xenstored)?;
            let reply = nf.register(&s)?;
            if !reply.ok {
                bail!("registration refused: {}", reply.error.unwrap_or_default());
            }
            xenbus_connect(&xs, nf, spec)?;
            Ok((s, xs))
        };
        match attempt() {
            Ok(c) => return Ok(c),
            Err(e) => last_err = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("xennetd did not come back within {wait:?}: {last_err}")
}

/// Why [`run`] returned.
enum Ended {
    /// SIGTERM or SIGINT.
    Stopped,
    /// xennetd closed the attach connection (it exited or died).
    BackendGone,
    /// SIGUSR1: reset the interface.
    Reset,
}

/// Shuttle frames between the tap and the rings until xennetd goes away
/// or a signal asks otherwise; `pending` is a frame the TX ring had no
/// room for (kept across calls).
fn run(
    tap: &mut Tap,
    nf: &mut Netfront,
    stream: &UnixStream,
    pending: &mut Option<(Vec<u8>, u16)>,
) -> anyhow::Result<Ended> {
    let mut rx = Vec::with_capacity(65_536);
    // Frames from the backend the tap refused (dropped, as a NIC drops a
    // frame it cannot take), with a log line at most once a second.
    let mut tap_refused = 0u64;
    let mut tap_refused_log = xennet_vif::ratelimit::LogLimit::new();
    let mut was_stalled = false;
    // The RX budget ran out with packets left: poll without waiting.
    let mut rx_more = false;
    loop {
        if STOP.load(Ordering::SeqCst) {
            println!("xennet-guest: signalled; exiting");
            return Ok(Ended::Stopped);
        }
        if RESET.swap(false, Ordering::SeqCst) {
            // What the backend already put in the RX ring goes to the
            // stack first (unless RX is stalled).
            while deliver_rx(tap, nf, &mut rx, &mut tap_refused, &mut tap_refused_log)? {}
            return Ok(Ended::Reset);
        }
        let stalled = RX_STALLED.load(Ordering::Relaxed);
        if stalled != was_stalled {
            was_stalled = stalled;
            println!(
                "xennet-guest: RX {}",
                if stalled { "stalled" } else { "resumed" }
            );
        }
        let timeout = if rx_more {
            0u16
        } else if pending.is_some() {
            10
        } else {
            1000
        };
        let (tap_ready, evt_ready, hup) = {
            // [stream, tap, then every event channel].
            let mut fds = vec![
                PollFd::new(stream.as_fd(), PollFlags::POLLIN),
                PollFd::new(tap.fd(), PollFlags::empty()),
            ];
            if pending.is_none() {
                fds[1] = PollFd::new(tap.fd(), PollFlags::POLLIN);
            }
            let evt_fds = nf.event_fds();
            fds.extend(evt_fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::from(timeout)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let evt = (2..fds.len()).any(ready);
            (pending.is_none() && ready(1), evt, ready(0))
        };
        if RESET.load(Ordering::SeqCst) {
            // Asked while we waited: the tap's frames wait for the new
            // rings.
            continue;
        }
        if hup {
            let mut b = [0u8; 64];
            if nix::unistd::read(stream.as_raw_fd(), &mut b).unwrap_or(0) == 0 {
                println!("xennet-guest: backend closed the connection");
                return Ok(Ended::BackendGone);
            }
        }
        if evt_ready {
            nf.ack();
        }
        // Backend → guest: RX responses to the tap.
        rx_more = deliver_rx(tap, nf, &mut rx, &mut tap_refused, &mut tap_refused_log)?;
        // Guest → backend: frames from the tap to the TX ring.
        if let Some((frame, flags)) = pending.take() {
            if !nf.send(&frame, flags)? {
                *pending = Some((frame, flags));
                continue;
            }
        }
        if tap_ready {
            for _ in 0..64 {
                let Some((hdr, frame)) = tap.recv().context("reading the tap")? else {
                    break;
                };
                if hdr.gso_type != VNET_GSO_NONE {
                    continue; // not negotiated (TUN_F_CSUM only); cannot happen
                }
                let flags = if hdr.flags & VNET_F_NEEDS_CSUM != 0 {
                    NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED
                } else if hdr.flags & VNET_F_DATA_VALID != 0 {
                    NETTXF_DATA_VALIDATED
                } else {
                    0
                };
                if !nf.send(frame, flags)? {
                    *pending = Some((frame.to_vec(), flags));
                    break;
                }
            }
        }
    }
}

/// Packets [`deliver_rx`] takes per call, as Linux netfront's NAPI
/// budget (`xennet_poll`, 64): a flood to the guest does not starve its
/// TX (its replies).
const RX_BUDGET: usize = 64;

/// Backend → guest: up to [`RX_BUDGET`] RX responses to the tap (none
/// while RX is stalled); true when the budget ran out. A frame the tap
/// refuses is dropped, as a NIC drops a frame it cannot take, and
/// counted in `tap_refused` with a log line at most once a second.
fn deliver_rx(
    tap: &mut Tap,
    nf: &mut Netfront,
    rx: &mut Vec<u8>,
    tap_refused: &mut u64,
    tap_refused_log: &mut xennet_vif::ratelimit::LogLimit,
) -> anyhow::Result<bool> {
    for _ in 0..RX_BUDGET {
        if RX_STALLED.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let Some(flags) = nf.recv(rx) else {
            return Ok(false);
        };
        let mut hdr = VnetHdr::default();
        if flags & NETRXF_CSUM_BLANK != 0 {
            if let Some((start, offset)) = xennet_datapath::csum::partial_offsets(rx) {
                hdr.flags = VNET_F_NEEDS_CSUM;
                hdr.csum_start = start;
                hdr.csum_offset = offset;
            }
        } else if flags & NETRXF_DATA_VALIDATED != 0 {
            hdr.flags = VNET_F_DATA_VALID;
        }
        match tap.send(&hdr, rx) {
            Ok(_) => {}
            Err(e) if tap::refuses_frame(&e) => {
                *tap_refused += 1;
                if tap_refused_log.ready() {
                    eprintln!(
                        "xennet-guest: the tap refused a {}-byte frame from the backend: {e} (dropped; {tap_refused} in all)",
                        rx.len()
                    );
                }
            }
            Err(e) => return Err(e).context("writing to the tap"),
        }
    }
    Ok(true)
}
