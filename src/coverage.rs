//! Process-wide counters of events that must not go unnoticed (OVS
//! `lib/coverage.c`): each is a relaxed atomic, shown by
//! `ovs-appctl coverage/show` as one `name total: N` line, for example
//!
//! ```text
//! emulxen_fds_truncated      total: 3
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

/// Backend vif events ignored because their domain does not exist
/// (`crate::xenbusd::Hypervisor::domain_exists`).
pub static XENBUS_UNKNOWN_DOMAIN: Counter = Counter::new("xenbus_unknown_domain");

static ALL: [&Counter; 5] = [
    &EMULXEN_FDS_TRUNCATED,
    &EMULXEN_HANDSHAKES_REFUSED,
    &EMULXEN_HANDSHAKES_TIMED_OUT,
    &UNIXCTL_REFUSED,
    &XENBUS_UNKNOWN_DOMAIN,
];

/// Counters the pipeline keeps (`xennet_ofproto::xlate`), shown with
/// these: packets dropped at a `ct` action, `resubmit(,,ct)` skipped
/// without a tracked connection, `sample` run as a no-op, `pop` on an empty stack, and
/// `controller(...)` / `dec_ttl(ids)` extras that could not be delivered.
fn ofproto_counters() -> [(&'static str, u64); 5] {
    use xennet_ofproto::xlate;
    [
        (
            "xlate_ct_unsupported",
            xlate::CT_UNSUPPORTED.load(Ordering::Relaxed),
        ),
        (
            "xlate_resubmit_ct_untracked",
            xlate::RESUBMIT_CT_UNTRACKED.load(Ordering::Relaxed),
        ),
        (
            "xlate_sample_noop",
            xlate::SAMPLE_NOOP.load(Ordering::Relaxed),
        ),
        (
            "xlate_stack_underflow",
            xlate::STACK_UNDERFLOW.load(Ordering::Relaxed),
        ),
        (
            "xlate_controller_extras",
            xlate::CONTROLLER_EXTRAS_DROPPED.load(Ordering::Relaxed),
        ),
    ]
}

/// The `coverage/show` text: one `name total: N` line per counter.
pub fn show() -> String {
    ALL.iter()
        .map(|c| (c.name, c.get()))
        .chain(ofproto_counters())
        .map(|(name, n)| format!("{name:<26} total: {n}\n"))
        .collect()
}
