//! A budget per token for answers about documents it cannot read or that do
//! not exist: such lookups are cheap for the client and cost the server a
//! lookup each, so a token scanning random ids is slowed down, then closed.

/// Budgets kept before full ones are forgotten (a bound on the map, not on tokens).
pub(crate) const MISS_BUDGETS_KEPT: usize = 10_000;

/// What to do with one more answer about an unreadable or unknown document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MissPace {
    Now,
    /// Answer after this long (the connection is not read meanwhile).
    After(std::time::Duration),
    /// The token has asked for far too many: close the connection.
    Close,
}

/// A token bucket per token: `per_minute` answers a minute, bursts up to a
/// minute's worth. Answers over it are reserved ahead, so the token's
/// connections wait in turn (each is not read meanwhile). A token slowed down
/// without a break for the close delay, or that would wait longer than it,
/// has its connections closed as they ask again.
#[derive(Debug)]
pub(crate) struct MissBudget {
    tokens: f64,
    last: std::time::Instant,
    /// When the current run of slowed-down answers began.
    slowed_since: Option<std::time::Instant>,
}

impl MissBudget {
    pub(crate) fn new(now: std::time::Instant, per_minute: u32) -> Self {
        Self { tokens: f64::from(per_minute), last: now, slowed_since: None }
    }

    fn refill(&mut self, now: std::time::Instant, per_minute: u32) {
        let per_second = f64::from(per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(per_minute));
        self.last = now;
    }

    pub(crate) fn is_full(&mut self, now: std::time::Instant, per_minute: u32) -> bool {
        self.refill(now, per_minute);
        self.tokens >= f64::from(per_minute)
    }

    pub(crate) fn charge(&mut self, now: std::time::Instant, per_minute: u32, close_after: std::time::Duration) -> MissPace {
        self.refill(now, per_minute);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.slowed_since = None;
            return MissPace::Now;
        }
        let since = *self.slowed_since.get_or_insert(now);
        let wait = std::time::Duration::from_secs_f64((1.0 - self.tokens) * 60.0 / f64::from(per_minute));
        if now.saturating_duration_since(since) >= close_after || wait > close_after {
            return MissPace::Close;
        }
        self.tokens -= 1.0;
        MissPace::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_minute_of_misses_passes_at_once_then_they_are_slowed_then_closed() {
        let start = Instant::now();
        let close_after = Duration::from_secs(3);
        let mut budget = MissBudget::new(start, 60);
        for _ in 0..60 {
            assert_eq!(budget.charge(start, 60, close_after), MissPace::Now);
        }
        // One a second after that, waited for in turn.
        assert_eq!(budget.charge(start, 60, close_after), MissPace::After(Duration::from_secs(1)));
        let mut at = start;
        let mut closed = false;
        for _ in 0..10 {
            at += Duration::from_secs(1);
            match budget.charge(at, 60, close_after) {
                MissPace::Close => {
                    closed = true;
                    break;
                }
                MissPace::After(_) => {}
                MissPace::Now => panic!("still over the budget"),
            }
        }
        assert!(closed, "slowed down without a break for the close delay: closed");
        // A quiet minute later the budget is whole again.
        at += Duration::from_secs(60);
        assert_eq!(budget.charge(at, 60, close_after), MissPace::Now);
    }
}

