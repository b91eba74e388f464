//! `xennetd`: the xennet switch daemon.
//!
//! Starts one forwarding thread per bridge (the datapath), the control plane
//! on a tokio runtime (the `ovs-appctl` socket, the emulated Xen attach
//! socket, with `--metrics` the Prometheus endpoint), the xenbus backend
//! thread (on the emulated xenstored, or with `--xen real` on the real
//! one), and serves until SIGTERM, SIGINT or `ovs-appctl exit`.

mod accept;
mod bridge;
mod config;
mod coverage;
mod dbsync;
mod emulxen;
mod flowtext;
#[cfg(test)]
mod fuzz;
mod identity;
mod isolation;
mod metrics;
mod netdev;
mod ofbridge;
mod ofconn;
mod opcmds;
mod ratelimit;
mod representor;
// Shared with xennet-guest; xennetd uses only the virtio-net header.
#[allow(dead_code)]
mod tap;
mod unixctl;
mod vlog;
mod xenbusd;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use crate::bridge::Switch;
use crate::config::{Config, XenMode, EMBEDDED_DEFAULT};

/// xennetd: an Open vSwitch-compatible virtual switch for Xen guests.
///
/// Configuration comes from an Open_vSwitch database (--db, as
/// ovs-vswitchd's DATABASE argument, managed with ovs-vsctl), else from
/// --config, else from the embedded default: one standalone bridge `br0`
/// (NORMAL learning switch) that emulated Xen guests (`xennet-guest`)
/// attach to through `<rundir>/xennet-xen.sock`.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Directory for the control socket (`ovs-vswitchd.<pid>.ctl`), the
    /// pidfile (`ovs-vswitchd.pid`) and the emulated Xen socket.
    /// Default: $OVS_RUNDIR, else /var/run/openvswitch.
    #[arg(long, value_name = "DIR")]
    rundir: Option<PathBuf>,

    /// TOML configuration file used instead of the embedded default
    /// (`xennetd --print-default-config` shows its format).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Open_vSwitch database to take bridges and ports from, as
    /// ovs-vswitchd: `unix:PATH` or `tcp:IP:PORT`. xennetd takes the
    /// `ovs_vswitchd` lock and writes ofports, errors, statistics and
    /// cur_cfg back, so `ovs-vsctl add-br/add-port/del-port` work without
    /// --no-wait. Guests' vifs join the bridge whose Port lists interface
    /// `vif<domid>.<handle>`. The emulated_xen section still comes from
    /// --config (or the embedded default); its bridges are ignored.
    /// Default: `unix:<rundir>/db.sock` if that socket exists and no
    /// --config is given.
    #[arg(long, value_name = "DB")]
    db: Option<String>,

    /// Which Xen to serve, overriding the configuration's `[xen] mode`:
    /// `emulated` (emulated guests, `[emulated_xen]`) or `real` (xennetd
    /// in dom0 or a driver domain serving real Xen guests: the real
    /// xenstored, /dev/xen/gntdev and /dev/xen/evtchn; vifs join
    /// `[xen] bridge`, or with --db the bridge whose Port lists them).
    #[arg(long, value_enum, value_name = "MODE")]
    xen: Option<XenMode>,

    /// Serve Prometheus metrics on `http://ADDR:PORT/metrics` (e.g.
    /// `127.0.0.1:9464`, `[::1]:9464`; port 0 picks a free port, logged as
    /// `metrics on http://...`). Off by default. README.md lists the
    /// metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,

    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,

    /// Append logs to FILE instead of standard error.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,

    /// Log filter, as RUST_LOG (e.g. `info`, `xennet_vif=debug`).
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", EMBEDDED_DEFAULT.trim_start());
        return Ok(());
    }
    vlog::init(&args.log, args.log_file.as_deref())?;
    // OVS's configured default `vlan-limit` (bridge.c: 1 tag parsed), until
    // the database's `Open_vSwitch:other_config:vlan-limit` says otherwise.
    xennet_datapath::flow::set_vlan_limit(1);
    let rundir = args
        .rundir
        .clone()
        .or_else(|| std::env::var_os("OVS_RUNDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/openvswitch"));
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading configuration {}", path.display()))?;
            Config::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Config::parse(EMBEDDED_DEFAULT).context("embedded default configuration")?,
    };
    let db = match (&args.db, &args.config) {
        (Some(db), _) => {
            anyhow::ensure!(
                db.starts_with("unix:") || db.starts_with("tcp:"),
                "--db {db:?}: expected unix:PATH or tcp:IP:PORT"
            );
            Some(db.clone())
        }
        (None, Some(_)) => None,
        (None, None) => {
            use std::os::unix::fs::FileTypeExt;
            let sock = rundir.join("db.sock");
            std::fs::metadata(&sock)
                .is_ok_and(|m| m.file_type().is_socket())
                .then(|| format!("unix:{}", sock.display()))
        }
    };
    if let Some(mode) = args.xen {
        config.xen.mode = mode;
    }
    if config.xen.mode == XenMode::Real && db.is_none() {
        anyhow::ensure!(
            config.bridges.iter().any(|b| b.name == config.xen.bridge),
            "xen.bridge {} is not a configured bridge",
            config.xen.bridge
        );
    }
    std::fs::create_dir_all(&rundir)
        .with_context(|| format!("creating run directory {}", rundir.display()))?;
    raise_nofile_limit();
    // Blocking-pool threads (emulated guests' handshakes, xenstore
    // clean-ups) go 1 s after their last task, not tokio's default 10 s:
    // a burst of guests must not leave dozens of idle threads behind.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .enable_all()
        .build()?;
    rt.block_on(run(rundir, config, db, args.metrics))
}

/// Raise the soft descriptor limit to the hard one. Each vif holds a few
/// descriptors (its event channel, epoll set, tick timer, representor
/// device; with emulated Xen also the guest's sockets), so the usual soft
/// limit of 1024 (systemd's default) would stop xennetd near a hundred
/// vifs while the hard limit (524288 under systemd) allows thousands.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!("descriptor limit raised from {soft} to {hard}"),
            Err(e) => tracing::warn!("descriptor limit stays {soft} (hard {hard}): {e}"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!("reading the descriptor limit: {e}"),
    }
}

/// Files this process made in the run directory, removed on exit.
struct RunFiles(Vec<PathBuf>);

impl Drop for RunFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn run(
    rundir: PathBuf,
    config: Config,
    db: Option<String>,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let pid = std::process::id();
    let pidfile = rundir.join("ovs-vswitchd.pid");
    let ctl = rundir.join(format!("ovs-vswitchd.{pid}.ctl"));
    let mut files = RunFiles(vec![pidfile.clone(), ctl.clone()]);

    let (switch, placement, db_task) = match &db {
        None => {
            let switch = Arc::new(Switch::new(&config, &rundir)?);
            (switch.clone(), emulxen::Placement::Static(switch), None)
        }
        Some(addr) => {
            if !config.bridges.is_empty() {
                tracing::info!(
                    "configuration from database {addr}: the configuration file's bridges are ignored"
                );
            }
            let switch = Arc::new(Switch::empty(&rundir));
            let vifs = Arc::new(dbsync::VifRegistry::default());
            let session = xennet_ovsdb::Session::start(
                addr,
                xennet_ovsdb::SessionOptions {
                    lock: Some(dbsync::LOCK.into()),
                    ..Default::default()
                },
            );
            let task = tokio::spawn(dbsync::run(session, switch.clone(), vifs.clone()));
            (switch, emulxen::Placement::Database(vifs), Some(task))
        }
    };
    let shutdown = Arc::new(tokio::sync::Notify::new());
    // Domains registered with the emulated hypervisor (shown by
    // `xennet/domain-show`).
    let domains: Arc<emulxen::Domains> = Arc::default();
    let mut commands = bridge::commands(switch.clone(), shutdown.clone());
    emulxen::add_commands(&mut commands, domains.clone());
    let commands = Arc::new(commands);

    let ctl_task = {
        let ctl = ctl.clone();
        let std_listener = bind_unix(&ctl)?;
        tokio::spawn(async move { unixctl::serve(std_listener, commands).await })
    };
    // The metrics endpoint: a failure to bind stops the start (the
    // operator asked for it); once serving, nothing it meets is fatal.
    let metrics_task = match metrics {
        Some(addr) => {
            let listener = metrics::bind(addr)
                .await
                .with_context(|| format!("--metrics {addr}: binding"))?;
            let bound = listener.local_addr().unwrap_or(addr);
            tracing::info!("metrics on http://{bound}/metrics");
            let registry = Arc::new(metrics::registry(switch.clone()));
            Some(tokio::spawn(async move {
                if let Err(e) = metrics::serve(listener, registry).await {
                    tracing::error!("metrics on {bound}: stopped serving: {e}");
                }
            }))
        }
        None => None,
    };
    let real_xen = config.xen.mode == XenMode::Real;
    let emulated = !real_xen && config.emulated_xen.enabled;
    // The xenbus backend, real or on the emulated xenstored.
    let mut backend = None;
    if real_xen {
        backend = Some(start_real_xen(&placement, &config.xen)?);
    }
    // The emulated xenstored (Xen's `xenstored` socket), so that real
    // xenstore clients and the xenbus handshake have a store to talk to.
    let xenstored = if emulated && !config.emulated_xen.xenstored.is_empty() {
        let path = resolve(&rundir, &config.emulated_xen.xenstored);
        let server = xennet_vif::xenstore::XenstoreServer::default();
        let listener = server
            .listen(&path)
            .with_context(|| format!("emulated xenstored on {}", path.display()))?;
        tracing::info!("emulated xenstored on {}", path.display());
        let ctx = emulxen::XenbusCtx {
            domains: domains.clone(),
            store: server,
        };
        let cfg = &config.emulated_xen;
        let xs = ctx.store.connect_as(u32::from(cfg.backend_domid))?;
        backend = Some(xenbusd::start(
            xs,
            ctx.domains.clone(),
            placement.clone(),
            cfg.backend(),
        )?);
        Some((ctx, listener))
    } else {
        None
    };
    let xen_task = if emulated {
        let path = resolve(&rundir, &config.emulated_xen.socket);
        files.0.push(path.clone());
        let listener = bind_unix(&path)?;
        Some(tokio::spawn(emulxen::serve(
            listener,
            placement,
            config.emulated_xen.clone(),
            xenstored.as_ref().map(|(ctx, _)| ctx.clone()),
        )))
    } else {
        None
    };
    let _pidfile_lock = write_locked_pidfile(&pidfile, pid)?;
    tracing::info!(
        "xennetd {} started, pid {pid}, control socket {}",
        env!("CARGO_PKG_VERSION"),
        ctl.display()
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: exiting"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: exiting"),
        _ = shutdown.notified() => tracing::info!("exit requested over unixctl"),
        r = ctl_task => tracing::error!("control socket stopped: {r:?}"),
    }
    // From here on the xenbus backend's store connection may close.
    if let Some(b) = &backend {
        b.stopping();
    }
    if let Some(t) = xen_task {
        t.abort();
    }
    // The emulated xenstored closes its connections now (guests' tasks
    // may still hold it), so the xenbus backend ends before we say we
    // stopped.
    if let Some((ctx, _)) = &xenstored {
        ctx.store.shutdown();
        if let Some(b) = &backend {
            if !b.wait_ended(std::time::Duration::from_secs(2)) {
                tracing::warn!("xenbus backend still running 2 s after its xenstored closed");
            }
        }
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(t) = db_task {
        t.abort();
    }
    switch.shutdown();
    drop(files);
    tracing::info!("xennetd stopped");
    Ok(())
}

/// Real Xen: check the devices, connect to the real xenstored, read our
/// domain id and start the xenbus backend on it.
fn start_real_xen(
    placement: &emulxen::Placement,
    cfg: &config::XenConfig,
) -> anyhow::Result<xenbusd::Backend> {
    use xennet_vif::xenstore::{Client, ErrorCode};
    xennet_vif::xen::check_devices().context("real Xen mode")?;
    let xs = Client::open().context("real Xen mode: connecting to xenstored")?;
    // A domain's own `domid` node (written by the toolstack; for dom0 by
    // xen-init-dom0), read relative to our home /local/domain/<domid>.
    let backend_domid = match xs.read_string("domid") {
        Ok(s) => s
            .trim()
            .parse::<xennet_vif::grant::DomId>()
            .with_context(|| format!("xenstore domid {s:?} is not a domain id"))?,
        Err(e) if e.is(&ErrorCode::Enoent) => {
            tracing::warn!("xenstore has no domid node: assuming dom0");
            0
        }
        Err(e) => return Err(e).context("reading our domain id from xenstore"),
    };
    tracing::info!(
        "real Xen: backend domain {backend_domid}, watching /local/domain/{backend_domid}/backend/vif"
    );
    xenbusd::start(
        xs,
        Arc::new(xenbusd::RealXen),
        placement.clone(),
        cfg.backend(backend_domid),
    )
}

/// Write the pidfile and hold an fcntl write lock on it for the life of the
/// process, as Open vSwitch's `lib/daemon-unix.c` does: `ovs-appctl`
/// (`read_pidfile`) trusts a pidfile only while its owner holds that lock.
fn write_locked_pidfile(path: &Path, pid: u32) -> anyhow::Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening pidfile {}", path.display()))?;
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETLK(&lock)).with_context(
        || {
            format!(
                "pidfile {} is locked by another running daemon",
                path.display()
            )
        },
    )?;
    file.set_len(0)?;
    writeln!(file, "{pid}")?;
    Ok(file)
}

fn resolve(rundir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        rundir.join(p)
    }
}

/// Bind a Unix socket, replacing a stale socket file left by a dead daemon.
fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("{} is in use by another daemon", path.display());
    }
    let _ = std::fs::remove_file(path);
    tokio::net::UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}
