//! `flowmod_stream SOCKET COUNT`: the streaming controller of
//! `scripts/bench` (`flow_mod_stream_100k_s`, `flow_mod` in
//! `scripts/lib/bench-net.sh`). Connects to a switch's OpenFlow unix
//! socket (xennetd's `RUNDIR/br0.mgmt`, ovs-vswitchd's `br0.mgmt`),
//! exchanges HELLO for OpenFlow 1.3, then sends `COUNT` distinct
//! `OFPFC_ADD` flow-mods into table 0 without waiting for anything, as
//! controllers such as ovn-controller and Faucet do, and one
//! `OFPT_BARRIER_REQUEST` after them.
//!
//! The flows are those of the bench's `flows.txt` (`ovs-ofctl add-flows`
//! form: `priority=1000+i%30000,ip,nw_dst=10.(100+i/65536).(i/256%256).(i%256),actions=output:1`),
//! encoded before the clock starts (OpenFlow 1.3.5 §7.3.4.1
//! `ofp_flow_mod`, an OXM match of `ETH_TYPE` and `IPV4_DST`, one
//! `OFPIT_APPLY_ACTIONS` with `OFPAT_OUTPUT` to port 1). A second thread
//! reads the switch's messages while the first writes, so neither side
//! blocks on a full socket: it counts `OFPT_ERROR`s and answers
//! `OFPT_ECHO_REQUEST` (through the writer, between flow-mods).
//!
//! Prints to stdout the seconds from the first flow-mod byte written to
//! the barrier reply read; to stderr the details. Then asks for the
//! aggregate statistics of all tables (`OFPMP_AGGREGATE`) and checks that
//! `flow_count` is `COUNT` (the bench empties the table first).
//! Exit status 1 if the switch sent any `OFPT_ERROR`, closed the
//! connection, or the flow count differs; 2 for bad arguments.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xennet_openflow::header::{self, Header, HEADER_LEN, OFP13_VERSION};

/// `OFPT_ECHO_REQUEST`, `OFPT_ECHO_REPLY` (OpenFlow 1.3 `ofp_type`).
const OFPT_ECHO_REQUEST: u8 = 2;
const OFPT_ECHO_REPLY: u8 = 3;
/// `OFPT_FLOW_MOD`.
const OFPT_FLOW_MOD: u8 = 14;
/// `OFPT_MULTIPART_REQUEST`, `OFPT_MULTIPART_REPLY`.
const OFPT_MULTIPART_REQUEST: u8 = 18;
const OFPT_MULTIPART_REPLY: u8 = 19;
/// `OFPT_BARRIER_REQUEST`, `OFPT_BARRIER_REPLY`.
const OFPT_BARRIER_REQUEST: u8 = 20;
const OFPT_BARRIER_REPLY: u8 = 21;
/// `OFPMP_AGGREGATE`.
const OFPMP_AGGREGATE: u16 = 2;
/// Flow-mods per `write_all` (echo replies go in between).
const CHUNK: usize = 1024;
/// How long a read or write may wait before the run is given up.
const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// Transaction ids of the barrier and the aggregate request (the
/// flow-mods use 1 to `COUNT`, at most 2^22).
const BARRIER_XID: u32 = 0xb000_0001;
const AGGREGATE_XID: u32 = 0xb000_0002;

/// Append an OpenFlow 1.3 `ofp_header` (`length` in bytes).
fn header(typ: u8, length: usize, xid: u32, out: &mut Vec<u8>) {
    Header {
        version: OFP13_VERSION,
        typ,
        length: length as u16,
        xid,
    }
    .write(out);
}

/// Append flow `i` of the bench's flows file as an OpenFlow 1.3
/// `OFPFC_ADD` (96 bytes; xid `i + 1`).
fn flow_mod(i: u32, out: &mut Vec<u8>) {
    const LEN: usize = 48 + 24 + 24;
    let start = out.len();
    header(OFPT_FLOW_MOD, LEN, i + 1, out);
    out.extend_from_slice(&0u64.to_be_bytes()); // cookie
    out.extend_from_slice(&0u64.to_be_bytes()); // cookie_mask
    out.push(0); // table_id
    out.push(0); // command: OFPFC_ADD
    out.extend_from_slice(&0u16.to_be_bytes()); // idle_timeout
    out.extend_from_slice(&0u16.to_be_bytes()); // hard_timeout
    out.extend_from_slice(&((1000 + i % 30000) as u16).to_be_bytes()); // priority
    out.extend_from_slice(&header::NO_BUFFER.to_be_bytes()); // buffer_id
    out.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_port: OFPP_ANY
    out.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_group: OFPG_ANY
    out.extend_from_slice(&0u16.to_be_bytes()); // flags
    out.extend_from_slice(&[0; 2]); // pad
                                    // ofp_match: OFPMT_OXM, 4 + 6 + 8 = 18 bytes, padded to 24.
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&18u16.to_be_bytes());
    out.extend_from_slice(&0x8000_0a02u32.to_be_bytes()); // OXM_OF_ETH_TYPE
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    out.extend_from_slice(&0x8000_1804u32.to_be_bytes()); // OXM_OF_IPV4_DST
    out.extend_from_slice(&[10, (100 + (i >> 16)) as u8, (i >> 8) as u8, i as u8]);
    out.extend_from_slice(&[0; 6]);
    // OFPIT_APPLY_ACTIONS (8 bytes) with one OFPAT_OUTPUT (16 bytes).
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&24u16.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&0u16.to_be_bytes()); // OFPAT_OUTPUT
    out.extend_from_slice(&16u16.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // port 1
    out.extend_from_slice(&0u16.to_be_bytes()); // max_len
    out.extend_from_slice(&[0; 6]);
    debug_assert_eq!(out.len() - start, LEN);
}

/// Append an `OFPMP_AGGREGATE` request over every table, any match.
fn aggregate_request(out: &mut Vec<u8>) {
    header(OFPT_MULTIPART_REQUEST, 16 + 40, AGGREGATE_XID, out);
    out.extend_from_slice(&OFPMP_AGGREGATE.to_be_bytes());
    out.extend_from_slice(&[0; 6]); // flags, pad
    out.push(0xff); // table_id: OFPTT_ALL
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_port: OFPP_ANY
    out.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_group: OFPG_ANY
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0; 16]); // cookie, cookie_mask
    out.extend_from_slice(&1u16.to_be_bytes()); // OFPMT_OXM, empty
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
}

/// Reads whole messages from a stream, keeping what is left over.
#[derive(Debug)]
struct Reader {
    s: UnixStream,
    buf: Vec<u8>,
}

impl Reader {
    /// The next message (header and whole body).
    fn next(&mut self) -> Result<(Header, Vec<u8>), String> {
        loop {
            if let Some(n) = header::frame_len(&self.buf) {
                if self.buf.len() >= n {
                    let msg: Vec<u8> = self.buf.drain(..n).collect();
                    let h = Header::parse(&msg).map_err(|e| format!("bad message: {e:?}"))?;
                    return Ok((h, msg));
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err("the switch closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// What the reading thread saw up to the barrier reply.
#[derive(Debug)]
struct Seen {
    barrier_at: Instant,
    errors: u64,
    first_error: Option<String>,
    other: u64,
}

/// Reads until the barrier reply: counts errors, passes echo requests'
/// xids to the writer.
fn read_until_barrier(r: &mut Reader, echo: &mpsc::Sender<u32>) -> Result<Seen, String> {
    let (mut errors, mut first_error, mut other) = (0, None, 0);
    loop {
        let (h, msg) = r.next()?;
        match h.typ {
            header::OFPT_ERROR => {
                errors += 1;
                if first_error.is_none() && msg.len() >= 12 {
                    first_error = Some(format!(
                        "type {} code {} for xid {}",
                        u16::from_be_bytes([msg[8], msg[9]]),
                        u16::from_be_bytes([msg[10], msg[11]]),
                        h.xid
                    ));
                }
            }
            OFPT_ECHO_REQUEST => {
                let _ = echo.send(h.xid);
            }
            OFPT_BARRIER_REPLY if h.xid == BARRIER_XID => {
                return Ok(Seen {
                    barrier_at: Instant::now(),
                    errors,
                    first_error,
                    other,
                });
            }
            _ => other += 1,
        }
    }
}

fn run(path: &str, count: u32) -> Result<(), String> {
    let mut msgs = Vec::with_capacity(count as usize * 96);
    let mut chunks = vec![0];
    for i in 0..count {
        flow_mod(i, &mut msgs);
        if (i as usize + 1) % CHUNK == 0 || i + 1 == count {
            chunks.push(msgs.len());
        }
    }
    let mut barrier = Vec::new();
    header(OFPT_BARRIER_REQUEST, HEADER_LEN, BARRIER_XID, &mut barrier);

    let mut s = UnixStream::connect(path).map_err(|e| format!("connect {path}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut hello = Vec::new();
    header::encode_hello(OFP13_VERSION, 1 << OFP13_VERSION, 0, &mut hello);
    s.write_all(&hello).map_err(|e| format!("write: {e}"))?;
    let mut r = Reader {
        s: s.try_clone().map_err(|e| e.to_string())?,
        buf: Vec::new(),
    };
    let (h, _) = r.next()?;
    if h.typ != header::OFPT_HELLO {
        return Err(format!("expected HELLO, got message type {}", h.typ));
    }
    if h.version < OFP13_VERSION {
        return Err(format!(
            "the switch offers version {:#x}, not 1.3",
            h.version
        ));
    }

    let (echo_tx, echo_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || read_until_barrier(&mut r, &echo_tx).map(|s| (s, r)));
    let t0 = Instant::now();
    for w in chunks.windows(2) {
        s.write_all(&msgs[w[0]..w[1]])
            .map_err(|e| format!("write: {e}"))?;
        for xid in echo_rx.try_iter() {
            let mut m = Vec::new();
            header(OFPT_ECHO_REPLY, HEADER_LEN, xid, &mut m);
            s.write_all(&m).map_err(|e| format!("write: {e}"))?;
        }
    }
    let t_sent = t0.elapsed();
    s.write_all(&barrier).map_err(|e| format!("write: {e}"))?;
    let (seen, mut r) = reader
        .join()
        .map_err(|_| "the reading thread panicked".to_string())??;
    let secs = seen.barrier_at.duration_since(t0).as_secs_f64();

    let mut agg = Vec::new();
    aggregate_request(&mut agg);
    s.write_all(&agg).map_err(|e| format!("write: {e}"))?;
    let flow_count = loop {
        let (h, msg) = r.next()?;
        if h.typ == OFPT_MULTIPART_REPLY && h.xid == AGGREGATE_XID && msg.len() >= 36 {
            break u32::from_be_bytes([msg[32], msg[33], msg[34], msg[35]]);
        }
        if h.typ == header::OFPT_ERROR {
            return Err("the switch refused the aggregate statistics request".into());
        }
    };
    eprintln!(
        "flowmod_stream: {count} flow-mods ({} bytes) written in {:.3} s, barrier reply after {secs:.3} s \
         ({:.2} µs per flow-mod); {} errors, {} other messages; flow_count={flow_count}",
        msgs.len(),
        t_sent.as_secs_f64(),
        secs * 1e6 / f64::from(count.max(1)),
        seen.errors,
        seen.other,
    );
    println!("{secs:.4}");
    if seen.errors > 0 {
        return Err(format!(
            "the switch sent {} OFPT_ERROR (first: {})",
            seen.errors,
            seen.first_error.unwrap_or_default()
        ));
    }
    if flow_count != count {
        return Err(format!("flow_count {flow_count}, expected {count}"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, path, count] => count.parse::<u32>().ok().map(|c| (path.as_str(), c)),
        _ => None,
    };
    let Some((path, count)) = parsed.filter(|&(_, c)| c > 0 && c <= 1 << 22) else {
        eprintln!("usage: flowmod_stream SOCKET COUNT (1 to 4194304 flows)");
        return ExitCode::from(2);
    };
    match run(path, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowmod_stream: {e}");
            ExitCode::FAILURE
        }
    }
}
