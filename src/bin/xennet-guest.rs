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
//! `--hostile CASE` makes it misbehave once after attaching (see
//! `xennet_vif::hostile`), to test that xennetd survives it.

#[path = "../tap.rs"]
#[allow(dead_code)]
mod tap;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tap::{Tap, VnetHdr, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE};
use xennet_vif::hostile::HostileCase;
use xennet_vif::netfront::Netfront;
use xennet_vif::ring::{
    NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED,
};

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
    let mut nf = Netfront::new(args.domid, 0).context("setting up the netfront")?;
    let stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "connecting to xennetd at {} (is it running?)",
            socket.display()
        )
    })?;
    let reply = nf
        .attach(&stream, args.handle, mac)
        .context("attaching to xennetd")?;
    println!("xennet-guest: domain {} attached: {reply:?}", args.domid);

    let macs = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    ip(&["link", "set", "dev", tap.name(), "address", &macs])?;
    ip(&["link", "set", "dev", tap.name(), "up"])?;
    if let Some(addr) = &args.ip {
        ip(&["addr", "add", addr, "dev", tap.name()])?;
    }
    if let Some(case) = args.hostile {
        xennet_vif::hostile::run(case, &mut nf);
        println!("xennet-guest: sent hostile case {case}");
    }
    run(&mut tap, &mut nf, &stream)
}

/// Shuttle frames between the tap and the rings until xennetd goes away.
fn run(tap: &mut Tap, nf: &mut Netfront, stream: &UnixStream) -> anyhow::Result<()> {
    let mut pending: Option<(Vec<u8>, u16)> = None;
    let mut rx = Vec::with_capacity(65_536);
    loop {
        let timeout = if pending.is_some() { 10u16 } else { 1000 };
        let (tap_ready, evt_ready, hup) = {
            let mut fds = vec![
                PollFd::new(nf.event_fd(), PollFlags::POLLIN),
                PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            ];
            if pending.is_none() {
                fds.push(PollFd::new(tap.fd(), PollFlags::POLLIN));
            }
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
            (ready(2), ready(0), ready(1))
        };
        if hup {
            let mut b = [0u8; 64];
            if nix::unistd::read(stream.as_raw_fd(), &mut b).unwrap_or(0) == 0 {
                println!("xennet-guest: backend closed the connection; exiting");
                return Ok(());
            }
        }
        if evt_ready {
            nf.ack();
        }
        // Backend → guest: RX responses to the tap.
        while let Some(flags) = nf.recv(&mut rx) {
            let mut hdr = VnetHdr::default();
            if flags & NETRXF_CSUM_BLANK != 0 {
                if let Some((start, offset)) = xennet_datapath::csum::partial_offsets(&rx) {
                    hdr.flags = VNET_F_NEEDS_CSUM;
                    hdr.csum_start = start;
                    hdr.csum_offset = offset;
                }
            } else if flags & NETRXF_DATA_VALIDATED != 0 {
                hdr.flags = VNET_F_DATA_VALID;
            }
            tap.send(&hdr, &rx).context("writing to the tap")?;
        }
        // Guest → backend: frames from the tap to the TX ring.
        if let Some((frame, flags)) = pending.take() {
            if !nf.send(&frame, flags)? {
                pending = Some((frame, flags));
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
                    pending = Some((frame.to_vec(), flags));
                    break;
                }
            }
        }
    }
}
