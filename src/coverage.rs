//! Process-wide counters of events that must not go unnoticed (OVS
//! `lib/coverage.c`): each is a relaxed atomic, shown by
//! `ovs-appctl coverage/show` as one `name total: N` line, for example
//!
//! ```text
//! emulxen_fds_truncated      total: 3
//! metrics_refused            total: 0
//! unixctl_refused            total: 0
//! xenbus_unknown_domain      total: 5000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// One named counter.
#[derive(Debug)]
pub struct Counter {
    name: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str) -> Self {
        Counter {
            name,
            value: AtomicU64::new(0),
        }
    }

    /// Count one event.
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// Events so far.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Count one event; `Some(events so far)` when `log` lets a line
    /// about it through (at most once a second).
    pub fn count(&self, log: &mut crate::ratelimit::LogLimit) -> Option<u64> {
        let n = self.value.fetch_add(1, Ordering::Relaxed) + 1;
        log.ready().then_some(n)
    }
}

/// Registrations on the emulated Xen socket refused because they carried
/// more descriptors than fit (`MSG_CTRUNC`).
pub static EMULXEN_FDS_TRUNCATED: Counter = Counter::new("emulxen_fds_truncated");
/// Connections to the emulated Xen socket closed at once because
/// [`crate::emulxen::MAX_HANDSHAKES`] handshakes were under way.
pub static EMULXEN_HANDSHAKES_REFUSED: Counter = Counter::new("emulxen_handshakes_refused");
/// Handshakes on the emulated Xen socket that did not complete within
/// [`crate::emulxen::HANDSHAKE_TIMEOUT`].
pub static EMULXEN_HANDSHAKES_TIMED_OUT: Counter = Counter::new("emulxen_handshakes_timed_out");
/// unixctl connections closed at once because
/// [`crate::unixctl::MAX_CONNECTIONS`] were open.
pub static UNIXCTL_REFUSED: Counter = Counter::new("unixctl_refused");

/// Connections to the metrics endpoint closed at once because
/// [`crate::metrics::MAX_CONNECTIONS`] were open.
pub static METRICS_REFUSED: Counter = Counter::new("metrics_refused");
/// Requests to the metrics endpoint answered with an error (malformed,
/// too long, a method other than GET or HEAD, a path other than
/// `/metrics`) or not finished within [`crate::metrics::TIMEOUT`].
pub static METRICS_BAD_REQUESTS: Counter = Counter::new("metrics_bad_requests");

/// Backend vif events ignored because their domain does not exist
/// (`crate::xenbusd::Hypervisor::domain_exists`).
pub static XENBUS_UNKNOWN_DOMAIN: Counter = Counter::new("xenbus_unknown_domain");
/// Vifs still without `hotplug-status` [`crate::xenbusd::HOTPLUG_WARN_AFTER`]
/// after their backend directory appeared, with `hotplug = "script"`
/// (no hotplug script ran: in a driver domain, no `xl devd`).
pub static XENBUS_HOTPLUG_MISSING: Counter = Counter::new("xenbus_hotplug_missing");

/// The backend's `state` writes sent without waiting for their reply
/// (Connected) that xenstored refused (`Client::write_no_wait`; each is
/// also logged, at most once a second).
pub static XENBUS_STATE_WRITE_FAILED: Counter = Counter::new("xenbus_state_write_failed");

static ALL: [&Counter; 9] = [
    &EMULXEN_FDS_TRUNCATED,
    &EMULXEN_HANDSHAKES_REFUSED,
    &EMULXEN_HANDSHAKES_TIMED_OUT,
    &METRICS_BAD_REQUESTS,
    &METRICS_REFUSED,
    &UNIXCTL_REFUSED,
    &XENBUS_HOTPLUG_MISSING,
    &XENBUS_STATE_WRITE_FAILED,
    &XENBUS_UNKNOWN_DOMAIN,
];

/// Counters the pipeline keeps (`xennet_ofproto::xlate`), in name
/// order: packets dropped at a `ct` whose interned arguments were swept
/// (`xennet_datapath::actions::CT_ARGS_STALE`), flow-mods refused for a `ct(alg=..)` the tracker cannot do,
/// `controller(...)` / `dec_ttl(ids)` extras that could not be
/// delivered, `ct` translations that failed (no recirculation id or `ct` arguments left), `learn`
/// (flows added, refreshed, refused by `limit` or the bridge's cap,
/// failed, beyond the refresh table, beyond 64 per translation),
/// recirculated packets without frozen state, `resubmit(,,ct)` skipped
/// without a tracked connection, `sample` run as a no-op, `pop` on an
/// empty stack; `NXT_RESUME`s executed and refused, and paused packet-ins
/// sent without a continuation their connection's version cannot carry.
fn ofproto_counters() -> [(&'static str, u64); 18] {
    use xennet_ofproto::ofproto::LEARN_TOTALS as L;
    use xennet_ofproto::xlate;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    [
        (
            "datapath_ct_args_stale",
            get(&xennet_datapath::actions::CT_ARGS_STALE),
        ),
        (
            "ofproto_ct_alg_refused",
            get(&xennet_ofproto::tables::CT_ALG_REFUSED),
        ),
        (
            "ofproto_resume_refused",
            get(&xennet_ofproto::ofproto::RESUME_REFUSED),
        ),
        ("ofproto_resumed", get(&xennet_ofproto::ofproto::RESUMED)),
        (
            "pin2_continuation_unencodable",
            get(&xennet_openflow::packet_in2::continuation::UNENCODABLE),
        ),
        (
            "xlate_controller_extras",
            get(&xlate::CONTROLLER_EXTRAS_DROPPED),
        ),
        ("xlate_ct_failed", get(&xlate::CT_FAILED)),
        ("xlate_learn_added", get(&L.added)),
        ("xlate_learn_cap", get(&L.cap_reached)),
        ("xlate_learn_dropped", get(&xlate::LEARNS_DROPPED)),
        ("xlate_learn_errors", get(&L.errors)),
        ("xlate_learn_limit", get(&L.limit_reached)),
        ("xlate_learn_refreshed", get(&L.refreshed)),
        ("xlate_learn_untracked", get(&L.untracked)),
        ("xlate_recirc_no_state", get(&xlate::RECIRC_NO_STATE)),
        (
            "xlate_resubmit_ct_untracked",
            get(&xlate::RESUBMIT_CT_UNTRACKED),
        ),
        ("xlate_sample_noop", get(&xlate::SAMPLE_NOOP)),
        ("xlate_stack_underflow", get(&xlate::STACK_UNDERFLOW)),
    ]
}

/// Every counter's name and value, in name order (what `coverage/show`
/// and the metrics endpoint's `xennet_coverage_total` show).
pub fn all() -> impl Iterator<Item = (&'static str, u64)> {
    let mut v: Vec<_> = ALL
        .iter()
        .map(|c| (c.name, c.get()))
        .chain(ofproto_counters())
        .collect();
    v.sort_unstable_by_key(|&(name, _)| name);
    v.into_iter()
}

/// The `coverage/show` text: one `name total: N` line per counter.
pub fn show() -> String {
    all()
        .map(|(name, n)| format!("{name:<26} total: {n}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    /// `coverage/show` lists every counter once, in name order, the
    /// datapath's and the pipeline's among the daemon's own.
    #[test]
    fn counters_are_listed_once_in_name_order() {
        let names: Vec<&str> = super::all().map(|(name, _)| name).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        for n in [
            "datapath_ct_args_stale",
            "metrics_refused",
            "xlate_ct_failed",
        ] {
            assert!(names.contains(&n), "{n} missing: {names:?}");
        }
    }
}
