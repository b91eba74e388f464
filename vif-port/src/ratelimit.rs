//! Rate limiting for the log lines about bad input and drops (a peer must
//! not be able to flood the log).

use std::time::{Duration, Instant};

/// Lets a log line through at most once per [`LogLimit::INTERVAL`].
#[derive(Debug, Default)]
pub struct LogLimit {
    last: Option<Instant>,
}

impl LogLimit {
    /// Shortest time between two lines.
    pub const INTERVAL: Duration = Duration::from_secs(1);

    /// A limit that lets the first line through (usable in a `static`).
    pub const fn new() -> Self {
        LogLimit { last: None }
    }

    /// Whether to log now; if so, the next line waits an interval.
    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < Self::INTERVAL => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval() {
        let mut l = LogLimit::default();
        assert!(l.ready());
        assert!(!l.ready());
        l.last = Instant::now().checked_sub(LogLimit::INTERVAL);
        assert!(l.ready());
        assert!(!l.ready());
    }
}
