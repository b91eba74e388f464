//! `xennet-xenstored`: an emulated xenstored on a Unix socket, for machines
//! without Xen (Debian's `xenstored` cannot run there). Clients, including
//! the real `xenstore-*` tools with `XENSTORED_PATH=SOCKET`, connect as
//! dom0. See `xennet_vif::xenstore::server` for the semantics.
//!
//! Runs until SIGTERM or SIGINT, then removes the socket and pidfile.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use xennet_vif::xenstore::{ServerConfig, XenstoreServer};

/// An emulated xenstored serving the xs_wire protocol on a Unix socket.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Socket to listen on (clients use XENSTORED_PATH=SOCKET).
    #[arg(long)]
    socket: PathBuf,
    /// Write our pid here once listening.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// Requests per second allowed per unprivileged domain (0: no limit).
    #[arg(long, default_value_t = ServerConfig::default().quota_rate)]
    quota_rate: u32,
    /// Connections served at once; beyond, new ones are closed.
    #[arg(long, default_value_t = ServerConfig::default().max_connections)]
    max_connections: usize,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // Block the signals before any thread starts, then wait for them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().context("blocking signals")?;

    let config = ServerConfig {
        quota_rate: args.quota_rate,
        max_connections: args.max_connections,
        ..ServerConfig::default()
    };
    let server = XenstoreServer::new(config);
    let mut listener = server
        .listen(&args.socket)
        .with_context(|| format!("listening on {}", args.socket.display()))?;
    if let Some(p) = &args.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    tracing::info!(socket = %args.socket.display(), "xennet-xenstored listening");

    let sig = signals.wait().context("waiting for signals")?;
    tracing::info!("{sig:?}: exiting");
    listener.stop();
    if let Some(p) = &args.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
