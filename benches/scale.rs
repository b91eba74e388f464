//! Many idle vifs on one bridge (issue 7, `scale`): backend memory per vif,
//! idle CPU of the forwarding thread, and time to attach them all.
//!
//! 4096 emulated netfronts (guest memory, grant tables and event channels
//! exactly as `xennet-guest` makes them) are created first; the resident
//! memory measured then is the guests' and is subtracted. Then each gets a
//! [`Vif`] (both rings mapped, event channel bound) that joins one NORMAL
//! datapath as a port; `attach_s` is the wall time of that loop (ring
//! mapping and datapath port add, without the xenstore handshake), and
//! `rss_mib` the resident memory it added: what the backend spends on 4096
//! vifs. Idle CPU is the process's user + system time over a quiet period
//! divided by its length (100 % = one core).
//!
//! The emulated guests live in this process too and each holds about six
//! descriptors (memfds, eventfds) that a real guest would not put in the
//! backend's process; where the descriptor limit cannot be raised far
//! enough (containers without `CAP_SYS_RESOURCE`), the bench attaches as
//! many vifs as fit and scales `rss_mib` and `attach_s` linearly to the
//! requested count, saying so on stderr (`vifs_measured` in the JSON).
//!
//! Run: `cargo bench --bench scale -- [--quick] [--vifs N]`; prints a table
//! and, last, one JSON line `{"scale_4096": {...}}`.

use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use xennet_datapath::dpif::Datapath;
use xennet_ofproto::Normal;
use xennet_vif::{Netfront, Vif};

/// Descriptors open in this process.
fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Descriptors one emulated guest and its vif hold (memfds, eventfds,
/// the vif's epoll and timer), measured on one.
fn fds_per_vif() -> u64 {
    let before = open_fds();
    let mut nf = Netfront::new(u16::MAX, 0).expect("netfront");
    let dom = nf.emulated_domain().expect("emulated domain");
    let vif = Vif::connect(
        "probe".into(),
        0,
        nf.frontend_config(0),
        Box::new(dom.grants),
        Box::new(dom.evtchn),
    )
    .expect("connect");
    let n = open_fds().saturating_sub(before);
    drop((vif, nf));
    n.max(1)
}

/// Resident set size of this process, KiB (`VmRSS`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// User + system CPU time of the whole process.
fn cpu_time() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let requested: u16 = args
        .iter()
        .position(|a| a == "--vifs")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--vifs N"))
        .unwrap_or(4096);
    let idle = Duration::from_secs(if quick { 2 } else { 10 });

    // Raise the descriptor limit (root may go past the hard limit, up to
    // fs.nr_open, where it has CAP_SYS_RESOURCE).
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let fds_each = fds_per_vif();
    let want = hard.max(u64::from(requested) * fds_each * 2);
    let limit = if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        want
    } else {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit NOFILE");
        hard
    };
    let fit = (limit.saturating_sub(open_fds() + 256) / fds_each).min(u64::from(u16::MAX)) as u16;
    let n = requested.min(fit);
    if n < requested {
        eprintln!(
            "scale: descriptor limit {limit} fits {n} in-process guests and vifs \
             ({fds_each} descriptors each), not {requested}; memory and attach time are \
             scaled linearly to {requested}"
        );
    }
    let scale = f64::from(requested) / f64::from(n);

    let mut guests = Vec::with_capacity(usize::from(n));
    for i in 0..n {
        let mut nf = Netfront::new(i + 1, 0).expect("netfront");
        let dom = nf.emulated_domain().expect("emulated domain");
        guests.push((nf, dom));
    }
    let dp = Datapath::spawn("scale", Box::new(Normal::new().0)).expect("datapath");
    std::thread::sleep(Duration::from_millis(200));
    let rss0 = rss_kib();

    let t0 = Instant::now();
    let mut fronts = Vec::with_capacity(guests.len());
    for (i, (nf, dom)) in guests.into_iter().enumerate() {
        let vif = Vif::connect(
            format!("vif{}.0", i + 1),
            0,
            nf.frontend_config(0),
            Box::new(dom.grants),
            Box::new(dom.evtchn),
        )
        .expect("connect");
        dp.add_port(i as u32 + 1, Box::new(vif)).expect("add_port");
        fronts.push(nf);
    }
    let attach = t0.elapsed();
    assert_eq!(dp.ports().len(), usize::from(n));
    std::thread::sleep(Duration::from_secs(1));
    let rss1 = rss_kib();

    let (c0, w0) = (cpu_time(), Instant::now());
    std::thread::sleep(idle);
    let idle_pct = (cpu_time() - c0).as_secs_f64() / w0.elapsed().as_secs_f64() * 100.0;

    let added = rss1.saturating_sub(rss0);
    let per_vif = added as f64 / f64::from(n);
    let rss_mib = added as f64 / 1024.0 * scale;
    let attach_s = attach.as_secs_f64() * scale;
    println!("vifs                         : {requested} (measured with {n})");
    println!("attach all (map rings + port): {attach_s:.3} s");
    println!("backend memory               : {rss_mib:.1} MiB ({per_vif:.1} KiB per vif)");
    println!(
        "idle CPU over {:>2} s          : {idle_pct:.2} % of one core",
        idle.as_secs()
    );
    println!(
        "{}",
        serde_json::json!({
            "scale_4096": {
                "vifs": requested,
                "vifs_measured": n,
                "rss_mib": rss_mib,
                "rss_kib_per_vif": per_vif,
                "idle_cpu_pct": idle_pct,
                "attach_s": attach_s,
            }
        })
    );
    dp.shutdown();
    drop(fronts);
}
