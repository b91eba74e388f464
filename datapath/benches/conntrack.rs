//! Connection-tracker cost per packet (issue 17): `execute` for packets
//! that commit a new connection (UDP and TCP SYN, each a new tuple, into
//! a table of up to 1M connections), for packets of an established UDP
//! and TCP connection, and for an established SNATed connection (lookup
//! plus rewrite with incremental checksums). Frames are 64-byte class
//! (no payload to speak of) with checksums verified, as OVS does.
//!
//! Before the benchmarks it prints the table's memory per connection
//! after committing 1M UDP connections, twice: from the structures'
//! capacities (`Conntrack::memory_bytes`: slab + key table + expiry
//! heap + ALG expectations, none here) and as the allocator saw it (bytes live in the process before
//! and after, through a counting global allocator).
//!
//! Run: `cargo bench -p xennet-datapath --bench conntrack`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use etherparse::PacketBuilder;
use xennet_datapath::conntrack::{Conntrack, CtArgs, NatArgs, NatKind};
use xennet_datapath::Packet;

const N: usize = 1 << 20;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let before = LIVE.load(std::sync::atomic::Ordering::Relaxed);
    let ct = Conntrack::new();
    let now = Instant::now();
    let args = CtArgs {
        commit: true,
        ..CtArgs::default()
    };
    for i in 0..N {
        let mut p = udp(i);
        ct.execute(&mut p, &args, now);
    }
    let n = ct.nconns() as usize;
    let live = LIVE.load(std::sync::atomic::Ordering::Relaxed) - before;
    eprintln!(
        "conntrack: {n} connections, {} bytes of table, {} bytes per connection; \
         allocator: {live} bytes live, {} per connection",
        ct.memory_bytes(),
        ct.memory_bytes() / n.max(1),
        live / n.max(1)
    );
    drop(ct);
    divan::main();
}

/// UDP packet `i`: a distinct (source address, source port) per `i`.
fn udp(i: usize) -> Packet {
    let src = (0x0a00_0000u32 + (i >> 14) as u32).to_be_bytes();
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, [10, 255, 0, 1], 64)
        .udp(1024 + (i & 0x3fff) as u16, 53)
        .write(&mut v, &[0; 18])
        .unwrap();
    Packet::from_slice(&v)
}

fn tcp(i: usize, syn: bool) -> Packet {
    let src = (0x0a00_0000u32 + (i >> 14) as u32).to_be_bytes();
    let b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, [10, 255, 0, 1], 64)
        .tcp(1024 + (i & 0x3fff) as u16, 80, 1000, 64000);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    Packet::from_slice(&v)
}

/// Packets that each commit a new connection; the table is flushed
/// (untimed) every 1M.
#[divan::bench(args = ["udp", "tcp_syn"])]
fn new_connection(bencher: divan::Bencher, proto: &str) {
    let ct = Conntrack::new();
    let args = CtArgs {
        commit: true,
        ..CtArgs::default()
    };
    let now = Instant::now();
    let mut i = 0usize;
    let tcp_syn = proto == "tcp_syn";
    bencher
        .with_inputs(|| {
            i += 1;
            if i % N == 0 {
                ct.flush(None);
            }
            if tcp_syn {
                tcp(i % N, true)
            } else {
                udp(i % N)
            }
        })
        .bench_local_refs(|p| ct.execute(p, &args, now));
}

/// Packets of one established connection (after a reply), both UDP and
/// TCP (an in-window ACK).
#[divan::bench(args = ["udp", "tcp"])]
fn established(bencher: divan::Bencher, proto: &str) {
    let ct = Conntrack::new();
    let args = CtArgs {
        commit: true,
        ..CtArgs::default()
    };
    let now = Instant::now();
    let mut p = if proto == "tcp" { tcp(7, true) } else { udp(7) };
    ct.execute(&mut p, &args, now);
    // The reply, built by swapping addresses and ports.
    let mut r = Vec::new();
    if proto == "tcp" {
        PacketBuilder::ethernet2([4; 6], [2; 6])
            .ipv4([10, 255, 0, 1], [10, 0, 0, 0], 64)
            .tcp(80, 1031, 5000, 64000)
            .syn()
            .ack(1001)
            .write(&mut r, &[])
            .unwrap();
    } else {
        PacketBuilder::ethernet2([4; 6], [2; 6])
            .ipv4([10, 255, 0, 1], [10, 0, 0, 0], 64)
            .udp(53, 1031)
            .write(&mut r, &[0; 18])
            .unwrap();
    }
    let mut r = Packet::from_slice(&r);
    ct.execute(&mut r, &args, now);
    let mut p = if proto == "tcp" {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 0], [10, 255, 0, 1], 64)
            .tcp(1031, 80, 1001, 64000)
            .ack(5001)
            .write(&mut v, &[])
            .unwrap();
        Packet::from_slice(&v)
    } else {
        udp(7)
    };
    ct.execute(&mut p, &args, now);
    assert_eq!(p.md.ct.state, 0x22, "+trk+est");
    bencher.bench_local(|| {
        p.md = Default::default();
        ct.execute(divan::black_box(&mut p), &args, now);
    });
}

/// An established SNATed UDP connection: lookup, then address rewrite
/// with incremental checksum updates.
#[divan::bench]
fn established_snat(bencher: divan::Bencher) {
    let ct = Conntrack::new();
    let args = CtArgs {
        commit: true,
        nat: Some(NatArgs {
            kind: Some(NatKind::Src),
            addr_min: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            addr_max: None,
            port_min: 0,
            port_max: 0,
            persistent: false,
            random: false,
        }),
        ..CtArgs::default()
    };
    let now = Instant::now();
    let orig = udp(7);
    let mut p = orig.clone();
    ct.execute(&mut p, &args, now);
    ct.execute(&mut orig.clone(), &args, now);
    bencher
        .with_inputs(|| orig.clone())
        .bench_local_refs(|p| ct.execute(p, &args, now));
}
