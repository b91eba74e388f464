//! The flow monitors of one connection (OVS `ofproto/connmgr.c`
//! `ofmonitor_*`): created by flow monitor requests, answered with the
//! initially matching flows, then fed the rule changes of the bridge
//! ([`xennet_ofproto::FlowChanges`]) as flow updates.
//!
//! Bounded as OVS bounds them: once more than [`PAUSE_BYTES`] wait to be
//! written to the peer, the connection is told updates are paused
//! (`NXT_FLOW_MONITOR_PAUSED` / `OFPFME_PAUSED`); while paused, only the
//! removals of flows that existed before the pause are sent; once
//! everything queued is written, the flows added or modified since the
//! pause are sent (as additions and modifications) and then
//! `..._RESUMED`. A connection holds at most [`MAX_MONITORS`] monitors.
//!
//! Changes reach a connection a little after they are made, so some may
//! still be on their way when the tables are read for an initial reply or
//! a refresh; their [`xennet_ofproto::tables::RuleChange::seq`] tells
//! them apart, and a flow is never reported twice.

use std::time::Instant;

use xennet_datapath::flow::MiniMatch;
use xennet_ofproto::classifier::{match_within, minimatch};
use xennet_ofproto::tables::{ChangeKind, Rule, RuleSnapshot};
use xennet_ofproto::FlowChanges;
use xennet_openflow::monitor::{
    self, flags, FlowUpdate, FlowUpdateFull, MonitorRequest, Pause, UpdateEvent, OFPFMC_ADD,
    OFPFMC_DELETE,
};
use xennet_openflow::OfError;

/// Bytes waiting for the peer beyond which monitoring pauses (OVS
/// `ofmonitor_flush`: 128 KiB).
pub const PAUSE_BYTES: usize = 128 * 1024;
/// Most monitors one connection may hold; more is
/// `OFPMOFC_INVALID_MONITOR`.
pub const MAX_MONITORS: usize = 4096;

#[derive(Debug)]
struct Monitor {
    id: u32,
    flags: u16,
    out_port: u32,
    out_group: u32,
    table_id: u8,
    matcher: MiniMatch,
    /// The last change in the snapshot taken when it was made: changes
    /// up to it came before the monitor (or are in its initial reply).
    since: u64,
}

impl Monitor {
    /// Whether `rule` is one this monitor follows (OVS `ofmonitor_report`
    /// and `ofmonitor_collect_resume_rules`); `old`, the rule before a
    /// modification, also counts for the output port.
    fn covers(&self, rule: &Rule, old: Option<&Rule>) -> bool {
        (self.table_id == 0xff || self.table_id == rule.table_id)
            && (rule.has_out_port(self.out_port)
                || old.is_some_and(|o| o.has_out_port(self.out_port)))
            && rule.has_out_group(self.out_group)
            && match_within(&rule.matcher, &self.matcher)
    }
}

/// One connection's monitors and pause state.
#[derive(Debug, Default)]
pub struct Monitors {
    list: Vec<Monitor>,
    /// Updates are paused (`Some`) after the changes of rules changed up
    /// to this time: rules changed later are in the refresh.
    paused_at: Option<Instant>,
    /// When the newest rule change seen so far was made: the pause point
    /// (changes reach connections a little after they are made, so the
    /// time of the pause itself would miss those still on their way).
    last_change: Option<Instant>,
    /// After a refresh: the pause point and the snapshot's last change.
    /// Changes up to it still on their way are treated as while paused
    /// (the refresh has them), so no flow is reported twice.
    refreshed: Option<(Instant, u64)>,
    /// Updates paused so far (for logs and tests).
    pub pauses: u64,
}

fn full(event: UpdateEvent, reason: u8, rule: &Rule, with_actions: bool) -> FlowUpdate {
    FlowUpdate::Full(Box::new(FlowUpdateFull {
        event,
        table_id: rule.table_id,
        reason,
        idle_timeout: rule.idle_timeout,
        hard_timeout: rule.hard_timeout,
        priority: rule.priority,
        cookie: rule.cookie,
        matcher: xennet_ofproto::classifier::full_match(&rule.matcher),
        instructions: with_actions.then(|| rule.instructions.clone()),
    }))
}

impl Monitors {
    /// Whether the connection has any monitor.
    pub fn active(&self) -> bool {
        !self.list.is_empty()
    }

    /// Apply a flow monitor request (OVS `handle_flow_monitor_request`):
    /// all its monitors or none. Returns the reply's updates (flows that
    /// match monitors with `OFPFMF_INITIAL`, each once).
    ///
    /// # Errors
    /// `OFPMOFC_MONITOR_EXISTS` for an id in use, `OFPMOFC_UNKNOWN_MONITOR`
    /// for a modify or delete of an unknown id, `OFPMOFC_INVALID_MONITOR`
    /// beyond [`MAX_MONITORS`]; nothing changes then.
    pub fn request(
        &mut self,
        reqs: Vec<MonitorRequest>,
        rules: impl FnOnce() -> RuleSnapshot,
    ) -> Result<Vec<FlowUpdate>, OfError> {
        let snap = rules();
        let mut list: Vec<Monitor> = Vec::new();
        // Work on a copy of the ids so a failure changes nothing.
        let mut ids: Vec<u32> = self.list.iter().map(|m| m.id).collect();
        let mut deleted = Vec::new();
        for r in reqs {
            let exists = ids.contains(&r.id);
            match r.command {
                OFPFMC_DELETE | monitor::OFPFMC_MODIFY if !exists => {
                    return Err(OfError::UNKNOWN_MONITOR)
                }
                OFPFMC_ADD if exists => return Err(OfError::MONITOR_EXISTS),
                _ => {}
            }
            ids.retain(|i| *i != r.id);
            list.retain(|m| m.id != r.id);
            deleted.push(r.id);
            if r.command == OFPFMC_DELETE {
                continue;
            }
            ids.push(r.id);
            if ids.len() > MAX_MONITORS {
                return Err(OfError::MONITOR_INVALID);
            }
            list.push(Monitor {
                id: r.id,
                flags: r.flags,
                out_port: r.out_port,
                out_group: r.out_group,
                table_id: r.table_id,
                matcher: minimatch(&r.matcher),
                since: snap.seq,
            });
        }
        self.list.retain(|m| !deleted.contains(&m.id));
        let initial: Vec<usize> = (0..list.len())
            .filter(|i| list[*i].flags & flags::INITIAL != 0)
            .collect();
        let mut updates = Vec::new();
        if !initial.is_empty() {
            for rule in snap.rules {
                let f = initial
                    .iter()
                    .map(|i| &list[*i])
                    .filter(|m| m.covers(&rule, None))
                    .fold(0, |f, m| f | m.flags);
                if f != 0 {
                    updates.push(full(
                        UpdateEvent::Initial,
                        0,
                        &rule,
                        f & flags::INSTRUCTIONS != 0,
                    ));
                }
            }
        }
        self.list.extend(list);
        Ok(updates)
    }

    /// Cancel monitor `id` (`NXT_FLOW_MONITOR_CANCEL`).
    ///
    /// # Errors
    /// `OFPMOFC_UNKNOWN_MONITOR`.
    pub fn cancel(&mut self, id: u32) -> Result<(), OfError> {
        let n = self.list.len();
        self.list.retain(|m| m.id != id);
        if self.list.len() == n {
            return Err(OfError::UNKNOWN_MONITOR);
        }
        Ok(())
    }

    /// The updates `changes` make for the connection `conn` (OVS
    /// `ofmonitor_report`): in full, or as one abbreviation with the
    /// request's xid for the connection's own changes unless a monitor
    /// asked for them in full (`OFPFMF_ONLY_OWN`, Nicira `NXFMF_OWN`).
    /// While paused only removals of flows older than the pause.
    pub fn updates(&mut self, conn: u64, changes: &FlowChanges) -> Vec<FlowUpdate> {
        let mut out = Vec::new();
        if self.list.is_empty() {
            return out;
        }
        if let Some(t) = changes.changes.iter().map(|c| c.rule.modified).max() {
            self.last_change = Some(self.last_change.map_or(t, |l| l.max(t)));
        }
        let mut sent_abbrev = false;
        for c in &changes.changes {
            let (event, reason, want) = match c.kind {
                ChangeKind::Added => (UpdateEvent::Added, 0, flags::ADD),
                ChangeKind::Modified => (UpdateEvent::Modified, 0, flags::MODIFY),
                ChangeKind::Removed(r) => (UpdateEvent::Removed, r, flags::REMOVED),
            };
            let held_at = match self.refreshed {
                Some((p, seq)) if c.seq <= seq => Some(p),
                _ => {
                    self.refreshed = None;
                    self.paused_at
                }
            };
            if let Some(p) = held_at {
                if event != UpdateEvent::Removed || c.rule.created > p {
                    continue;
                }
            }
            let f = self
                .list
                .iter()
                .filter(|m| {
                    c.seq > m.since && m.flags & want != 0 && m.covers(&c.rule, c.old.as_deref())
                })
                .fold(0, |f, m| f | m.flags);
            if f == 0 {
                continue;
            }
            let own = changes.origin.filter(|(id, _)| *id == conn);
            match own {
                Some((_, xid)) if f & flags::ONLY_OWN == 0 && held_at.is_none() => {
                    if !sent_abbrev {
                        out.push(FlowUpdate::Abbrev(xid));
                        sent_abbrev = true;
                    }
                }
                _ => out.push(full(event, reason, &c.rule, f & flags::INSTRUCTIONS != 0)),
            }
        }
        out
    }

    /// Whether updates are paused.
    pub fn paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Pause if `pending` bytes wait for the peer beyond [`PAUSE_BYTES`];
    /// returns whether it paused now (then send [`Pause::Paused`]).
    pub fn maybe_pause(&mut self, pending: usize) -> bool {
        if self.paused_at.is_none() && self.active() && pending > PAUSE_BYTES {
            self.paused_at = Some(self.last_change.unwrap_or_else(Instant::now));
            self.pauses = self.pauses.saturating_add(1);
            return true;
        }
        false
    }

    /// Resume (call once everything queued is written): the updates for
    /// the flows added or modified since the pause (OVS
    /// `ofmonitor_resume`), to send before [`Pause::Resumed`].
    pub fn resume(&mut self, snap: RuleSnapshot) -> Vec<FlowUpdate> {
        let Some(p) = self.paused_at.take() else {
            return Vec::new();
        };
        self.refreshed = Some((p, snap.seq));
        let mut out = Vec::new();
        for rule in snap.rules {
            let (event, want) = if rule.created > p {
                (UpdateEvent::Added, flags::ADD)
            } else if rule.modified > p {
                (UpdateEvent::Modified, flags::MODIFY)
            } else {
                continue;
            };
            let f = self
                .list
                .iter()
                .filter(|m| m.flags & want != 0 && m.covers(&rule, None))
                .fold(0, |f, m| f | m.flags);
            if f != 0 {
                out.push(full(event, 0, &rule, f & flags::INSTRUCTIONS != 0));
            }
        }
        out
    }
}

/// Append updates as a reply with `xid` (0 for asynchronous updates);
/// one that cannot be encoded is logged and not sent.
pub fn send_updates(version: u8, xid: u32, updates: &[FlowUpdate], out: &mut Vec<u8>) {
    if let Err(e) = monitor::encode_reply(version, xid, updates, out) {
        tracing::warn!("cannot encode flow monitor updates: {e}");
    }
}

/// Append a paused or resumed message.
pub fn send_pause(version: u8, p: Pause, out: &mut Vec<u8>) {
    if let Err(e) = monitor::encode_pause(version, p, out) {
        tracing::warn!("cannot encode flow monitor {p:?}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_ofproto::tables::Tables;
    use xennet_openflow::model::{FlowMod, Instructions, Match};

    fn add(t: &mut Tables, priority: u16) {
        let fm = FlowMod::add(0, priority, Match::CATCHALL, Instructions::default());
        t.apply_flow_mod(&fm, Instant::now()).unwrap();
    }

    fn changes(t: &mut Tables) -> FlowChanges {
        FlowChanges {
            origin: None,
            changes: t.take_changes(),
        }
    }

    fn watch_all() -> MonitorRequest {
        MonitorRequest {
            id: 1,
            command: OFPFMC_ADD,
            flags: flags::INITIAL | flags::ADD | flags::REMOVED | flags::MODIFY,
            out_port: u32::MAX,
            out_group: u32::MAX,
            table_id: 0xff,
            matcher: Match::CATCHALL,
        }
    }

    fn priorities(ups: &[FlowUpdate]) -> Vec<u16> {
        ups.iter()
            .map(|u| match u {
                FlowUpdate::Full(f) => f.priority,
                u => panic!("{u:?}"),
            })
            .collect()
    }

    /// Changes still on their way when the tables are read for the
    /// initial reply, or for the refresh after a pause, are in that
    /// reply: each flow is reported once, later changes as usual.
    #[test]
    fn changes_already_in_a_snapshot_are_not_reported_again() {
        let mut t = Tables::new();
        t.watch(true);
        let mut m = Monitors::default();
        add(&mut t, 1);
        let on_the_way = changes(&mut t);
        let initial = m.request(vec![watch_all()], || t.all_rules()).unwrap();
        assert_eq!(priorities(&initial), [1]);
        assert!(m.updates(7, &on_the_way).is_empty());

        // Paused; flow 2 is added; the refresh has it, and so does a
        // change that arrives after it.
        assert!(m.maybe_pause(PAUSE_BYTES + 1));
        add(&mut t, 2);
        let late = changes(&mut t);
        assert_eq!(priorities(&m.resume(t.all_rules())), [2]);
        assert!(m.updates(7, &late).is_empty());
        add(&mut t, 3);
        assert_eq!(priorities(&m.updates(7, &changes(&mut t))), [3]);
    }
}
