//! `xennet-appctl`: send a command to xennetd's control socket, as
//! `ovs-appctl` does (same protocol, same target rules), for machines
//! without Open vSwitch's tools.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};
use xennet_ovsdb::jsonrpc::JsonStream;

/// Run an ovs-appctl command against xennetd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Daemon to talk to: a socket path (contains '/'), a pidfile path
    /// (ends in .pid), or a program name looked up as
    /// `<rundir>/<name>.pid` → `<rundir>/<name>.<pid>.ctl`.
    #[arg(short = 't', long, default_value = "ovs-vswitchd")]
    target: String,
    /// Run directory (default $OVS_RUNDIR, else /var/run/openvswitch).
    #[arg(long)]
    rundir: Option<PathBuf>,
    /// Command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn socket_path(args: &Args) -> anyhow::Result<PathBuf> {
    let rundir = args
        .rundir
        .clone()
        .or_else(|| std::env::var_os("OVS_RUNDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/openvswitch"));
    let (dir, name, pidfile) = if args.target.ends_with(".pid") {
        let p = PathBuf::from(&args.target);
        let dir = p.parent().map(PathBuf::from).unwrap_or(rundir);
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("ovs-vswitchd")
            .to_string();
        (dir, name, p)
    } else if args.target.contains('/') {
        return Ok(PathBuf::from(&args.target));
    } else {
        let p = rundir.join(format!("{}.pid", args.target));
        (rundir, args.target.clone(), p)
    };
    let pid = std::fs::read_to_string(&pidfile).with_context(|| {
        format!(
            "cannot read pidfile {} (is xennetd running?)",
            pidfile.display()
        )
    })?;
    let pid: u32 = pid
        .trim()
        .parse()
        .with_context(|| format!("bad pid in {}", pidfile.display()))?;
    Ok(dir.join(format!("{name}.{pid}.ctl")))
}

fn run(args: &Args) -> anyhow::Result<Result<String, String>> {
    let path = socket_path(args)?;
    let mut stream = UnixStream::connect(&path)
        .with_context(|| format!("cannot connect to {}", path.display()))?;
    let request = json!({"id": 0, "method": args.command[0], "params": args.command[1..]});
    stream.write_all(request.to_string().as_bytes())?;
    let mut decoder = JsonStream::new();
    let mut buf = [0u8; 8192];
    let reply = loop {
        if let Some(v) = decoder.next_value()? {
            break v;
        }
        let n = stream.read(&mut buf)?;
        anyhow::ensure!(n > 0, "connection closed before a reply");
        decoder.push(&buf[..n])?;
    };
    Ok(match (reply.get("error"), reply.get("result")) {
        (Some(Value::String(e)), _) => Err(e.clone()),
        (_, Some(Value::String(r))) => Ok(r.clone()),
        _ => Err(format!("unexpected reply: {reply}")),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(Ok(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Err(text)) => {
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            eprintln!("xennet-appctl: {}: server returned an error", args.target);
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("xennet-appctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
