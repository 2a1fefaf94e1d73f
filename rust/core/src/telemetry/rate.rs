//! The one rate limit of repeated log lines: the first event of a key in a window is logged (at
//! WARN or ERROR), the others of that window are counted (and logged at DEBUG only), and the
//! first event after the window is logged again with the count of the ones in between.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a logged failure silences the same failure of the same key.
pub const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Keys remembered at most; beyond that, expired ones are forgotten and, if none expired, new keys
/// are suppressed (so a flood of distinct keys cannot turn into a flood of lines).
const MAX_KEYS: usize = 10_000;

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it prominently; `suppressed` events of this key were only counted since it was last
    /// logged.
    Log { suppressed: u64 },
    /// Counted; log it at DEBUG at most.
    Suppress,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    logged_at: Instant,
    suppressed: u64,
}

/// Windows per key; see the module comment.
#[derive(Debug)]
pub struct RateLimiter {
    window: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl RateLimiter {
    pub fn new(window: Duration) -> Self {
        RateLimiter {
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict for one event of `key` at `now`.
    pub fn check(&self, key: &str, now: Instant) -> Verdict {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(key) {
            if now.saturating_duration_since(slot.logged_at) < self.window {
                slot.suppressed += 1;
                return Verdict::Suppress;
            }
            let suppressed = slot.suppressed;
            *slot = Slot {
                logged_at: now,
                suppressed: 0,
            };
            return Verdict::Log { suppressed };
        }
        if slots.len() >= MAX_KEYS {
            let window = self.window;
            slots.retain(|_, slot| now.saturating_duration_since(slot.logged_at) < window);
            if slots.len() >= MAX_KEYS {
                return Verdict::Suppress;
            }
        }
        slots.insert(
            key.to_owned(),
            Slot {
                logged_at: now,
                suppressed: 0,
            },
        );
        Verdict::Log { suppressed: 0 }
    }

    /// Forgets `key`: its next event is logged at once (a recovered provider).
    pub fn forget(&self, key: &str) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// The window this limiter uses.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// The suffix of a logged line that stands for the suppressed ones before it.
pub fn suppressed_note(suppressed: u64, window: Duration) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(
            " ({suppressed} more like it since it was last logged, at DEBUG; logged at most once \
             per {} s)",
            window.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_of_a_key_is_logged_and_the_rest_of_its_window_counted() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(limiter.check("a", start), Verdict::Log { suppressed: 0 });
        for second in 1..=5 {
            assert_eq!(
                limiter.check("a", start + Duration::from_secs(second)),
                Verdict::Suppress
            );
        }
        assert_eq!(
            limiter.check("b", start + Duration::from_secs(1)),
            Verdict::Log { suppressed: 0 },
            "another key has a window of its own"
        );
        assert_eq!(
            limiter.check("a", start + Duration::from_secs(61)),
            Verdict::Log { suppressed: 5 }
        );
        assert_eq!(
            limiter.check("a", start + Duration::from_secs(62)),
            Verdict::Suppress
        );
    }

    #[test]
    fn a_forgotten_key_is_logged_again_at_once() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(limiter.check("a", now), Verdict::Log { suppressed: 0 });
        limiter.forget("a");
        assert_eq!(limiter.check("a", now), Verdict::Log { suppressed: 0 });
    }

    #[test]
    fn a_flood_of_distinct_keys_is_bounded() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let now = Instant::now();
        let logged = (0..MAX_KEYS + 500)
            .filter(|n| matches!(limiter.check(&n.to_string(), now), Verdict::Log { .. }))
            .count();
        assert_eq!(logged, MAX_KEYS);
        assert_eq!(
            limiter.check("late", now + Duration::from_secs(61)),
            Verdict::Log { suppressed: 0 },
            "expired keys make room"
        );
    }

    #[test]
    fn the_note_names_the_count_and_the_window() {
        assert_eq!(suppressed_note(0, LOG_WINDOW), "");
        assert!(suppressed_note(7, LOG_WINDOW).contains("7 more like it"));
        assert!(suppressed_note(7, LOG_WINDOW).contains("60 s"));
    }
}
