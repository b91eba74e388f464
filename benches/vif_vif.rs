//! vif-to-vif throughput and latency through the real netif rings (issue 7,
//! `vif-vif`, `copy limit`, `latency`).
//!
//! Two emulated netfronts (guest memory in memfds, grant tables, eventfds,
//! exactly as `xennet-guest` uses them) attached to two [`Vif`]s. A
//! generator thread fills guest A's TX ring with frames for guest B, a sink
//! thread drains guest B's RX ring; in between runs either
//! - `switch`: the datapath forwarding thread (flow key, megaflow cache,
//!   NORMAL), one forwarding core, or
//! - `copy`: the copy limit: a thread moving packets from vif A straight to
//!   vif B (grant copy in, grant copy out, no switching).
//!
//! Latency: guest A sends one frame at a time, guest B echoes it, A times the
//! round trip; reported as one-way = RTT / 2.
//!
//! Run: `cargo bench --bench vif_vif -- [--quick]`; prints a table and, last,
//! one JSON line with the figures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use xennet_datapath::dpif::Datapath;
use xennet_datapath::{Packet, PacketBatch, Port, RecvStatus};
use xennet_ofproto::Normal;
use xennet_vif::{Netfront, Vif};

const MAC_A: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 1];
const MAC_B: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 2];

fn guest(domid: u16) -> (Netfront, Vif) {
    let mut nf = Netfront::new(domid, 0).expect("netfront");
    let dom = nf.emulated_domain().expect("emulated domain");
    let vif = Vif::connect(
        format!("vif{domid}.0"),
        0,
        nf.frontend_config(0),
        Box::new(dom.grants),
        Box::new(dom.evtchn),
    )
    .expect("connect");
    (nf, vif)
}

fn frame(len: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f
}

fn wait(nf: &Netfront, ms: u16) {
    let mut fds = [PollFd::new(nf.event_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(ms));
    nf.ack();
}

fn send_blocking(nf: &mut Netfront, f: &[u8], stop: &AtomicBool) -> bool {
    loop {
        if nf.send(f, 0).expect("send") {
            return true;
        }
        nf.reap_tx();
        if nf.send(f, 0).expect("send") {
            return true;
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        wait(nf, 1);
    }
}

/// The thing between the two vifs.
enum Middle {
    Switch(xennet_datapath::DpHandle),
    Copy(std::thread::JoinHandle<()>, Arc<AtomicBool>),
}

fn start_middle(copy: bool, va: Vif, vb: Vif) -> Middle {
    if copy {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || copy_loop(va, vb, &s));
        Middle::Copy(t, stop)
    } else {
        let (normal, _fdb) = Normal::new();
        let dp = Datapath::spawn("bench", Box::new(normal)).expect("datapath");
        dp.add_port(1, Box::new(va)).expect("port 1");
        dp.add_port(2, Box::new(vb)).expect("port 2");
        Middle::Switch(dp)
    }
}

fn stop_middle(m: Middle) {
    match m {
        Middle::Switch(dp) => dp.shutdown(),
        Middle::Copy(t, stop) => {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}

/// The copy limit: vif A's TX straight into vif B's RX.
fn copy_loop(mut va: Vif, mut vb: Vif, stop: &AtomicBool) {
    let mut batch = PacketBatch::new();
    let mut scratch = PacketBatch::new();
    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        let st = va.recv(&mut batch);
        if !batch.is_empty() {
            let refs: Vec<&Packet> = batch.packets().iter().collect();
            vb.send(&refs);
        }
        scratch.clear();
        let st_b = vb.recv(&mut scratch); // flushes B's queued RX
        if st == RecvStatus::Idle && st_b == RecvStatus::Idle && batch.is_empty() {
            let mut fds = [
                PollFd::new(va.event_fd().expect("fd"), PollFlags::POLLIN),
                PollFd::new(vb.event_fd().expect("fd"), PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, PollTimeout::from(1u16));
        }
    }
}

/// Packets/s and bits/s delivered A → B with `len`-byte frames.
fn throughput(copy: bool, len: usize, secs: f64) -> (f64, f64) {
    let (mut nfa, va) = guest(1);
    let (mut nfb, vb) = guest(2);
    let middle = start_middle(copy, va, vb);
    let stop = Arc::new(AtomicBool::new(false));
    // Let NORMAL learn both MACs.
    send_blocking(&mut nfb, &frame(60, MAC_A, MAC_B), &stop);
    send_blocking(&mut nfa, &frame(60, MAC_B, MAC_A), &stop);
    let received = Arc::new(AtomicU64::new(0));
    let sink = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(65536);
            while !stop.load(Ordering::Relaxed) {
                let mut n = 0;
                while nfb.recv(&mut buf).is_some() {
                    n += 1;
                }
                if n > 0 {
                    received.fetch_add(n, Ordering::Relaxed);
                } else {
                    wait(&nfb, 1);
                }
            }
        })
    };
    let gen = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let f = frame(len, MAC_B, MAC_A);
            while send_blocking(&mut nfa, &f, &stop) {}
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (r0, t0) = (received.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (r1, dt) = (received.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let _ = gen.join();
    let _ = sink.join();
    stop_middle(middle);
    let pps = (r1 - r0) as f64 / dt;
    (pps, pps * len as f64 * 8.0)
}

/// One-way latency percentiles (µs) = RTT/2 of `n` ping-pongs.
fn latency(n: usize) -> (f64, f64) {
    let (mut nfa, va) = guest(1);
    let (mut nfb, vb) = guest(2);
    let middle = start_middle(false, va, vb);
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(2048);
            let reply = frame(60, MAC_A, MAC_B);
            while !stop.load(Ordering::Relaxed) {
                if nfb.recv(&mut buf).is_some() {
                    send_blocking(&mut nfb, &reply, &stop);
                } else {
                    wait(&nfb, 1);
                }
            }
        })
    };
    let f = frame(60, MAC_B, MAC_A);
    let mut buf = Vec::with_capacity(2048);
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        send_blocking(&mut nfa, &f, &stop);
        loop {
            if nfa.recv(&mut buf).is_some() {
                break;
            }
            if t.elapsed() > Duration::from_secs(1) {
                break; // lost: counted as 1 s
            }
            wait(&nfa, 1);
        }
        nfa.reap_tx();
        if i >= 100 {
            rtts.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    stop_middle(middle);
    rtts.sort_by(f64::total_cmp);
    let p = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    (p(0.5), p(0.99))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 1.0 } else { 3.0 };
    let (sw64, _) = throughput(false, 60, secs);
    let (cp64, _) = throughput(true, 60, secs);
    let (_, sw1500) = throughput(false, 1514, secs);
    let (_, sw9000) = throughput(false, 9014, secs);
    let (p50, p99) = latency(if quick { 1000 } else { 5000 });
    println!(
        "vif-vif 64B (60B frames + FCS) switch : {:.3} Mpps",
        sw64 / 1e6
    );
    println!(
        "vif-vif 64B copy limit (no switch)   : {:.3} Mpps",
        cp64 / 1e6
    );
    println!("  ratio switch / copy limit          : {:.2}", sw64 / cp64);
    println!(
        "vif-vif 1500B MTU frames             : {:.2} Gbit/s",
        sw1500 / 1e9
    );
    println!(
        "vif-vif 9000B MTU frames             : {:.2} Gbit/s",
        sw9000 / 1e9
    );
    println!("latency one-way (RTT/2) p50 / p99    : {p50:.1} / {p99:.1} µs");
    println!(
        "{}",
        serde_json::json!({
            "vif_vif_64b_mpps": sw64 / 1e6,
            "copy_limit_64b_mpps": cp64 / 1e6,
            "vif_vif_1500b_gbps": sw1500 / 1e9,
            "vif_vif_9000b_gbps": sw9000 / 1e9,
            "latency_us": {"p50": p50, "p99": p99},
        })
    );
}
