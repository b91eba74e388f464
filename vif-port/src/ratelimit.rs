//! Rate limiting for the log lines about bad input and drops (a peer must
//! not be able to flood the log).

use std::time::{Duration, Instant};

/// Lets a log line through at most once per [`LogLimit::INTERVAL`].
#[derive(Debug, Default)]
pub struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// Shortest time between two lines.
    pub const INTERVAL: Duration = Duration::from_secs(1);

    /// A limit that lets the first line through (usable in a `static`).
    pub const fn new() -> Self {
        LogLimit {
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log now; if so, the next line waits an interval.
    pub fn ready(&mut self) -> bool {
        self.allow().is_some()
    }

    /// `Some(lines held back since the last one let through)` if a line
    /// may be logged now, else `None` (and the line is counted).
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < Self::INTERVAL => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
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
