//! TCP connection tracking with window and sequence checks, as OVS's
//! userspace conntrack does it (lib/conntrack-tcp.c, itself from
//! OpenBSD pf and Guido van Rooij's "Real Stateful TCP Packet Filtering
//! in IP Filter").
//!
//! Each side (peer) keeps the highest sequence number it sent (`seqlo`),
//! the highest the other side acknowledged plus its window (`seqhi`), its
//! largest window and its window scale. A segment is in-window when its
//! last byte lies below `seqhi`, it is not more than a window back, and
//! its ACK is within a window of what the other side sent; an RST must
//! also match the expected sequence number exactly (or by one). Segments
//! outside that are `+inv` and change nothing (a forged RST cannot tear a
//! connection down), except for the loose cases pf allows (shotgunned
//! SYNs, a connection picked up mid-stream, stray packets after close).

use super::key::TcpSeg;
use super::timeout::Tm;
use crate::packet::tcp::{ACK, FIN, PSH, RST, SYN, URG};

/// TCP states of one peer (OVS `enum ct_dpif_tcp_state`, the names
/// `dpctl/dump-conntrack` prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum TcpState {
    /// No packet seen from this side.
    #[default]
    Closed = 0,
    /// Unused by the userspace tracker (kept for numbering).
    Listen,
    /// This side sent a SYN (or its first packet).
    SynSent,
    /// Unused by the userspace tracker.
    SynRecv,
    /// This side's SYN was acknowledged.
    Established,
    /// Unused by the userspace tracker.
    CloseWait,
    /// Unused by the userspace tracker.
    FinWait1,
    /// This side sent a FIN.
    Closing,
    /// Unused by the userspace tracker.
    LastAck,
    /// This side's FIN was acknowledged.
    FinWait2,
    /// Reset seen.
    TimeWait,
}

impl TcpState {
    /// The name OVS prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::TimeWait => "TIME_WAIT",
        }
    }
}

const WSCALE_FLAG: u8 = 0x80;
const WSCALE_UNKNOWN: u8 = 0x40;
const WSCALE_MASK: u8 = 0x0f;
const MAX_WSCALE: u8 = 14;
/// pf's `MAXACKWINDOW`: 64 KiB plus a 1500-byte fudge factor.
const MAX_ACK_WINDOW: i64 = 0xffff + 1500;

/// One side of a TCP connection (OVS `struct tcp_peer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peer {
    /// Highest sequence number sent (+1).
    pub seqlo: u32,
    /// Highest sequence number the other side acknowledged plus its window.
    pub seqhi: u32,
    /// Largest window seen (before scaling).
    pub max_win: u16,
    /// Window scale: shift with [`WSCALE_FLAG`], or [`WSCALE_UNKNOWN`].
    pub wscale: u8,
    /// State.
    pub state: TcpState,
}

/// Both peers: `[0]` the originator, `[1]` the responder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tcp {
    /// The peers.
    pub peer: [Peer; 2],
}

/// What an update decided (OVS `enum ct_update_res`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Part of the connection.
    Valid,
    /// Still opening (UDP/other before a reply).
    ValidNew,
    /// Failed the checks; the connection is unchanged.
    Invalid,
    /// A SYN reopening a closed connection: end it and start anew.
    New,
}

fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}
fn seq_geq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// Flag combinations no stack sends (pf `pf_normalize_tcp`, OVS
/// `tcp_invalid_flags`).
pub fn invalid_flags(f: u16) -> bool {
    if f & SYN != 0 {
        if f & (RST | FIN) != 0 {
            return true;
        }
    } else if f & (ACK | RST) == 0 {
        return true;
    }
    f & ACK == 0 && f & (FIN | PSH | URG) != 0
}

/// Whether a segment may start a connection: valid flags and not a
/// SYN+ACK (OVS `tcp_valid_new`).
pub fn valid_new(seg: &TcpSeg) -> bool {
    let synack = seg.flags & (SYN | ACK) == SYN | ACK;
    !invalid_flags(seg.flags) && !synack
}

fn shl(w: u16, s: u8) -> u32 {
    u32::from(w) << s.min(MAX_WSCALE)
}

impl Tcp {
    /// State of a new connection from its first segment (OVS
    /// `tcp_new_conn`), and its timeout class.
    pub fn new(seg: &TcpSeg) -> (Tcp, Tm) {
        let mut t = Tcp::default();
        let [src, dst] = &mut t.peer;
        src.seqlo = seg.seq;
        src.seqhi = seg.seq.wrapping_add(seg.len).wrapping_add(1);
        if seg.flags & SYN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
            src.wscale = seg.wscale;
        } else {
            src.wscale = WSCALE_UNKNOWN;
            dst.wscale = WSCALE_UNKNOWN;
        }
        src.max_win = seg.win.max(1);
        if src.wscale & WSCALE_MASK != 0 {
            let sws = src.wscale & WSCALE_MASK;
            src.max_win =
                u16::try_from(u32::from(src.max_win).div_ceil(1 << sws)).unwrap_or(u16::MAX);
        }
        if seg.flags & FIN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
        }
        dst.seqhi = 1;
        dst.max_win = 1;
        src.state = TcpState::SynSent;
        dst.state = TcpState::Closed;
        (t, Tm::TcpFirstPacket)
    }

    /// The state printed for the connection (the higher of the two,
    /// coalesced as OVS `coalesce_tcp_state`).
    pub fn display_state(&self) -> TcpState {
        match self.peer[0].state.max(self.peer[1].state) {
            TcpState::FinWait2 => TcpState::TimeWait,
            TcpState::SynRecv => TcpState::Established,
            s => s,
        }
    }

    /// Update with a segment from the originator (`reply` false) or the
    /// responder (OVS `tcp_conn_update`). Returns the verdict and, when
    /// the segment was accepted in the strict path, the new timeout class.
    /// `seq_chk` false accepts every segment whose flags are valid as
    /// in-window (OVS `dpctl/ct-disable-tcp-seq-chk`).
    pub fn update(&mut self, seg: &TcpSeg, reply: bool, seq_chk: bool) -> (Update, Option<Tm>) {
        let flags = seg.flags;
        if invalid_flags(flags) {
            return (Update::Invalid, None);
        }
        let [p0, p1] = &mut self.peer;
        let (src, dst) = if reply { (p1, p0) } else { (p0, p1) };

        if flags & (SYN | ACK) == SYN {
            if dst.state >= TcpState::FinWait2 && src.state >= TcpState::FinWait2 {
                // A new connection on a closed one's tuple.
                src.state = TcpState::Closed;
                dst.state = TcpState::Closed;
                return (Update::New, None);
            } else if src.state <= TcpState::SynSent {
                // A retransmitted SYN is still `+new`.
                src.state = TcpState::SynSent;
                return (Update::ValidNew, Some(Tm::TcpFirstPacket));
            }
        }

        let (mut sws, mut dws) = (0u8, 0u8);
        if src.wscale & WSCALE_FLAG != 0 && dst.wscale & WSCALE_FLAG != 0 && flags & SYN == 0 {
            sws = src.wscale & WSCALE_MASK;
            dws = dst.wscale & WSCALE_MASK;
        } else if src.wscale & WSCALE_UNKNOWN != 0
            && dst.wscale & WSCALE_UNKNOWN != 0
            && flags & SYN == 0
        {
            sws = MAX_WSCALE;
            dws = MAX_WSCALE;
        }

        let mut win = seg.win;
        let orig_seq = seg.seq;
        let mut seq = seg.seq;
        let mut ack = seg.ack;
        let mut end;
        let mut check_ackskew = true;
        if src.state < TcpState::SynSent {
            // First packet from this side.
            end = seq.wrapping_add(seg.len);
            if flags & SYN != 0 {
                end = end.wrapping_add(1);
                if dst.wscale & WSCALE_FLAG != 0 {
                    src.wscale = seg.wscale;
                    if src.wscale & WSCALE_FLAG != 0 {
                        sws = src.wscale & WSCALE_MASK;
                        win = u16::try_from(u32::from(win).div_ceil(1 << sws)).unwrap_or(u16::MAX);
                        dws = dst.wscale & WSCALE_MASK;
                    } else {
                        // The other side's window was scaled: undo.
                        dst.max_win = u16::try_from(shl(dst.max_win, dst.wscale & WSCALE_MASK))
                            .unwrap_or(u16::MAX);
                        dst.wscale = 0;
                    }
                }
            }
            if flags & FIN != 0 {
                end = end.wrapping_add(1);
            }
            src.seqlo = seq;
            src.state = TcpState::SynSent;
            let edge = end.wrapping_add(shl(dst.max_win, dws).max(1));
            if src.seqhi == 1 || seq_geq(edge, src.seqhi) {
                src.seqhi = edge;
                check_ackskew = false;
            }
            if win > src.max_win {
                src.max_win = win;
            }
        } else {
            end = seq.wrapping_add(seg.len);
            if flags & SYN != 0 {
                end = end.wrapping_add(1);
            }
            if flags & FIN != 0 {
                end = end.wrapping_add(1);
            }
        }

        if flags & ACK == 0 || (ack == 0 && flags & (ACK | RST) == ACK | RST) {
            ack = dst.seqlo;
        }
        if seq == end {
            // No data: ease the sequence checks.
            seq = src.seqlo;
            end = seq;
        }

        let ackskew: i64 = if check_ackskew {
            i64::from(dst.seqlo.wrapping_sub(ack) as i32)
        } else {
            0
        };
        let rst_ok = flags & RST == 0
            || orig_seq == src.seqlo
            || orig_seq == src.seqlo.wrapping_add(1)
            || orig_seq.wrapping_add(1) == src.seqlo;
        if (seq_geq(src.seqhi, end)
            && seq_geq(seq, src.seqlo.wrapping_sub(shl(dst.max_win, dws)))
            && ackskew >= -MAX_ACK_WINDOW
            && ackskew <= (MAX_ACK_WINDOW << sws)
            && rst_ok)
            || !seq_chk
        {
            if src.max_win < win {
                src.max_win = win;
            }
            if seq_gt(end, src.seqlo) {
                src.seqlo = end;
            }
            let w = shl(win, sws);
            if seq_geq(ack.wrapping_add(w), dst.seqhi) {
                dst.seqhi = ack.wrapping_add(w.max(1));
            }
            if flags & SYN != 0 && src.state < TcpState::SynSent {
                src.state = TcpState::SynSent;
            }
            if flags & FIN != 0 && src.state < TcpState::Closing {
                src.state = TcpState::Closing;
            }
            if flags & ACK != 0 {
                if dst.state == TcpState::SynSent {
                    dst.state = TcpState::Established;
                } else if dst.state == TcpState::Closing {
                    dst.state = TcpState::FinWait2;
                }
            }
            if flags & RST != 0 {
                src.state = TcpState::TimeWait;
                dst.state = TcpState::TimeWait;
            }
            let tm = if src.state >= TcpState::FinWait2 && dst.state >= TcpState::FinWait2 {
                Tm::TcpClosed
            } else if src.state >= TcpState::Closing && dst.state >= TcpState::Closing {
                Tm::TcpFinWait
            } else if src.state < TcpState::Established || dst.state < TcpState::Established {
                Tm::TcpOpening
            } else if src.state >= TcpState::Closing || dst.state >= TcpState::Closing {
                Tm::TcpClosing
            } else {
                Tm::TcpEstablished
            };
            (Update::Valid, Some(tm))
        } else if (dst.state < TcpState::SynSent
            || dst.state >= TcpState::FinWait2
            || src.state >= TcpState::FinWait2)
            && seq_geq(src.seqhi.wrapping_add(MAX_ACK_WINDOW as u32), end)
            && seq_geq(seq, src.seqlo.wrapping_sub(MAX_ACK_WINDOW as u32))
        {
            // pf's loose path: shotgunned SYNs, a connection picked up
            // after establishment, stray packets after close. The
            // timeout is not refreshed, so a flood cannot keep it alive.
            if src.max_win < win {
                src.max_win = win;
            }
            if seq_gt(end, src.seqlo) {
                src.seqlo = end;
            }
            let w = shl(win, sws);
            if seq_geq(ack.wrapping_add(w), dst.seqhi) {
                dst.seqhi = ack.wrapping_add(w.max(1));
            }
            if flags & FIN != 0 && src.state < TcpState::Closing {
                src.state = TcpState::Closing;
            }
            if flags & RST != 0 {
                src.state = TcpState::TimeWait;
                dst.state = TcpState::TimeWait;
            }
            (Update::Valid, None)
        } else {
            (Update::Invalid, None)
        }
    }
}
