//! Counters of the KMS requests this process made, for Keycloak's metrics endpoint: Java reads a
//! snapshot (`telemetryStats`) and exposes each count as a Micrometer `FunctionCounter`
//! (`docs/operations.md`). Counting is one relaxed atomic add; nothing here allocates on the
//! signing path.

use std::sync::atomic::{AtomicU64, Ordering};

use once_cell::sync::Lazy;

use crate::error::{ErrorKind, Result};

/// The KMS operations the extension makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsOperation {
    DescribeKey,
    GetPublicKey,
    Sign,
}

impl KmsOperation {
    pub const ALL: [KmsOperation; 3] = [
        KmsOperation::DescribeKey,
        KmsOperation::GetPublicKey,
        KmsOperation::Sign,
    ];

    /// The operation of an AWS API name.
    pub fn named(name: &str) -> Option<KmsOperation> {
        KmsOperation::ALL
            .into_iter()
            .find(|operation| operation.name() == name)
    }

    /// The AWS API name, the `operation` tag.
    pub fn name(self) -> &'static str {
        match self {
            KmsOperation::DescribeKey => "DescribeKey",
            KmsOperation::GetPublicKey => "GetPublicKey",
            KmsOperation::Sign => "Sign",
        }
    }

    fn index(self) -> usize {
        match self {
            KmsOperation::DescribeKey => 0,
            KmsOperation::GetPublicKey => 1,
            KmsOperation::Sign => 2,
        }
    }
}

const KINDS: usize = ErrorKind::ALL.len();

fn kind_index(kind: ErrorKind) -> usize {
    ErrorKind::ALL
        .iter()
        .position(|known| *known == kind)
        .unwrap_or(KINDS - 1)
}

/// Counters of the requests made to KMS (each attempt of a call is one; an attempt cut short by
/// the deadline counts as a `TIMEOUT`), the attempts that were retries, and the throttling
/// answers KMS gave.
#[derive(Debug)]
pub struct KmsCounters {
    /// Per operation: `[0]` successes, `[1 + kind]` failures of that kind.
    calls: [[AtomicU64; 1 + KINDS]; 3],
    /// Attempts made again, by the kind of the failure that caused them.
    retries: [AtomicU64; KINDS],
    /// Throttling answers (`ThrottlingException`, `LimitExceededException`), retried or not.
    throttles: AtomicU64,
}

impl Default for KmsCounters {
    fn default() -> Self {
        KmsCounters {
            calls: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            retries: std::array::from_fn(|_| AtomicU64::new(0)),
            throttles: AtomicU64::new(0),
        }
    }
}

/// A copy of the counters; only the non-zero ones are listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KmsSnapshot {
    /// `(operation, None for success or Some(kind), count)`.
    pub calls: Vec<(KmsOperation, Option<ErrorKind>, u64)>,
    pub retries: Vec<(ErrorKind, u64)>,
    pub throttles: u64,
}

impl KmsSnapshot {
    /// The `kms` member of `telemetryStats`:
    /// `{"calls":[{"operation","outcome","count"}…],"retries":[{"code","count"}…],"throttles":n}`,
    /// outcome `success` or the error's wire code.
    pub fn to_json(&self, wire_code: impl Fn(ErrorKind) -> &'static str) -> serde_json::Value {
        let calls: Vec<serde_json::Value> = self
            .calls
            .iter()
            .map(|(operation, outcome, count)| {
                serde_json::json!({
                    "operation": operation.name(),
                    "outcome": outcome.map_or("success", &wire_code),
                    "count": count,
                })
            })
            .collect();
        let retries: Vec<serde_json::Value> = self
            .retries
            .iter()
            .map(|(kind, count)| serde_json::json!({ "code": wire_code(*kind), "count": count }))
            .collect();
        serde_json::json!({ "calls": calls, "retries": retries, "throttles": self.throttles })
    }
}

impl KmsCounters {
    /// Counts one attempt of `operation` (an AWS API name; others are not counted).
    pub fn attempt<T>(&self, operation: &str, outcome: &Result<T>) {
        let Some(operation) = KmsOperation::named(operation) else {
            return;
        };
        let slot = match outcome {
            Ok(_) => 0,
            Err(error) => {
                if error.kind() == ErrorKind::Throttled {
                    self.throttles.fetch_add(1, Ordering::Relaxed);
                }
                1 + kind_index(error.kind())
            }
        };
        self.calls[operation.index()][slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one attempt made again after a failure of `kind`.
    pub fn retry(&self, kind: ErrorKind) {
        self.retries[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> KmsSnapshot {
        let mut calls = Vec::new();
        for operation in KmsOperation::ALL {
            let row = &self.calls[operation.index()];
            let successes = row[0].load(Ordering::Relaxed);
            if successes > 0 {
                calls.push((operation, None, successes));
            }
            for kind in ErrorKind::ALL {
                let count = row[1 + kind_index(kind)].load(Ordering::Relaxed);
                if count > 0 {
                    calls.push((operation, Some(kind), count));
                }
            }
        }
        let retries = ErrorKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let count = self.retries[kind_index(kind)].load(Ordering::Relaxed);
                (count > 0).then_some((kind, count))
            })
            .collect();
        KmsSnapshot {
            calls,
            retries,
            throttles: self.throttles.load(Ordering::Relaxed),
        }
    }
}

static KMS: Lazy<KmsCounters> = Lazy::new(KmsCounters::default);

/// The process's KMS counters.
pub fn kms() -> &'static KmsCounters {
    &KMS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn requests_are_counted_by_operation_and_outcome() {
        let counters = KmsCounters::default();
        counters.attempt("Sign", &Ok(()));
        counters.attempt("Sign", &Ok(()));
        counters.attempt::<()>("Sign", &Err(Error::new(ErrorKind::KeyDisabled, "disabled")));
        counters.attempt("DescribeKey", &Ok(()));
        counters.attempt("AssumeRole", &Ok(()));
        assert_eq!(
            counters.snapshot().calls,
            vec![
                (KmsOperation::DescribeKey, None, 1),
                (KmsOperation::Sign, None, 2),
                (KmsOperation::Sign, Some(ErrorKind::KeyDisabled), 1),
            ]
        );
    }

    #[test]
    fn every_throttling_answer_is_counted_and_retries_by_their_cause() {
        let counters = KmsCounters::default();
        let throttled = Err::<(), _>(Error::new(ErrorKind::Throttled, "slow down"));
        counters.attempt("Sign", &throttled);
        counters.retry(ErrorKind::Throttled);
        counters.attempt(
            "Sign",
            &Err::<(), _>(Error::new(ErrorKind::KmsUnavailable, "503")),
        );
        counters.retry(ErrorKind::KmsUnavailable);
        counters.attempt("Sign", &throttled);
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.throttles, 2);
        assert_eq!(
            snapshot.retries,
            vec![(ErrorKind::Throttled, 1), (ErrorKind::KmsUnavailable, 1)]
        );
    }

    #[test]
    fn the_snapshot_is_json_with_wire_codes() {
        let counters = KmsCounters::default();
        counters.attempt::<()>(
            "GetPublicKey",
            &Err(Error::new(ErrorKind::AccessDenied, "no")),
        );
        let json = counters.snapshot().to_json(|_| "ACCESS_DENIED");
        assert_eq!(json["calls"][0]["operation"], "GetPublicKey");
        assert_eq!(json["calls"][0]["outcome"], "ACCESS_DENIED");
        assert_eq!(json["calls"][0]["count"], 1);
        assert_eq!(json["throttles"], 0);
    }
}
