//! The retry budget of one KMS client: a token bucket like the AWS SDKs' retry quota
//! ("standard" retry mode), shared by every call the client makes, so that a throttling storm or
//! an outage is not amplified by our own retries.
//!
//! The bucket starts full ([`CAPACITY`] tokens). A retry takes [`RETRY_COST`] tokens (throttling,
//! server errors) or [`TIMEOUT_RETRY_COST`] (timeouts and broken connections); without enough
//! tokens the call fails with the error it got instead of retrying. A call that succeeds on a
//! retry gives back what its retries took; one that succeeds at once adds one token (up to the
//! capacity). The numbers are the SDKs' defaults.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Tokens in a full bucket.
pub const CAPACITY: u32 = 500;
/// What a retry after throttling or a server error costs.
pub const RETRY_COST: u32 = 5;
/// What a retry after a timeout or a broken connection costs.
pub const TIMEOUT_RETRY_COST: u32 = 10;

/// One client's retry tokens.
#[derive(Debug)]
pub struct RetryBudget {
    tokens: AtomicU32,
    /// Whether this client has reported that its budget ran dry under throttling (once).
    exhaustion_reported: AtomicBool,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::with_tokens(CAPACITY)
    }
}

impl RetryBudget {
    /// A budget holding `tokens` (at most [`CAPACITY`]); tests start some empty.
    pub fn with_tokens(tokens: u32) -> Self {
        RetryBudget {
            tokens: AtomicU32::new(tokens.min(CAPACITY)),
            exhaustion_reported: AtomicBool::new(false),
        }
    }

    /// Takes `cost` tokens for one retry; `false` (nothing taken) when there are not enough.
    pub fn try_acquire(&self, cost: u32) -> bool {
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                tokens.checked_sub(cost)
            })
            .is_ok()
    }

    /// A call succeeded: its retries' tokens come back, or one token is earned if it took none.
    pub fn on_success(&self, retry_tokens_taken: u32) {
        let earned = if retry_tokens_taken == 0 {
            1
        } else {
            retry_tokens_taken
        };
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                Some(tokens.saturating_add(earned).min(CAPACITY))
            });
    }

    /// Tokens left now.
    pub fn available(&self) -> u32 {
        self.tokens.load(Ordering::Acquire)
    }

    /// `true` exactly once per budget: the first time it runs dry under throttling.
    pub(crate) fn first_exhaustion(&self) -> bool {
        !self.exhaustion_reported.swap(true, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_budget_pays_for_a_hundred_throttling_retries_and_then_refuses() {
        let budget = RetryBudget::default();
        for _ in 0..CAPACITY / RETRY_COST {
            assert!(budget.try_acquire(RETRY_COST));
        }
        assert!(!budget.try_acquire(RETRY_COST));
        assert_eq!(budget.available(), 0);
    }

    #[test]
    fn a_successful_retry_gives_its_tokens_back_and_a_first_attempt_success_earns_one() {
        let budget = RetryBudget::with_tokens(100);
        assert!(budget.try_acquire(TIMEOUT_RETRY_COST));
        budget.on_success(TIMEOUT_RETRY_COST);
        assert_eq!(budget.available(), 100);
        budget.on_success(0);
        assert_eq!(budget.available(), 101);
        let full = RetryBudget::default();
        full.on_success(0);
        assert_eq!(full.available(), CAPACITY);
    }

    #[test]
    fn exhaustion_is_reported_once_per_budget() {
        let budget = RetryBudget::with_tokens(0);
        assert!(budget.first_exhaustion());
        assert!(!budget.first_exhaustion());
    }
}
