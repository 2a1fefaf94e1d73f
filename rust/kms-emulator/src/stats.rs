//! Counts of KMS requests per operation, for tests that assert how often the product called KMS.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::protocol::Operation;

/// Request counts. A request is counted once its `X-Amz-Target` names a supported operation,
/// before faults, authentication and validation: faulted and refused requests count too.
#[derive(Debug, Default)]
pub struct Stats {
    calls: Mutex<BTreeMap<Operation, u64>>,
}

/// `{"total":N,"calls":{"Sign":N,…}}`, every supported operation listed (zero if never called).
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub total: u64,
    pub calls: BTreeMap<&'static str, u64>,
}

impl Stats {
    pub fn record(&self, operation: Operation) {
        *self.lock().entry(operation).or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let calls = self.lock();
        StatsSnapshot {
            total: calls.values().sum(),
            calls: Operation::ALL
                .into_iter()
                .map(|op| (op.name(), calls.get(&op).copied().unwrap_or(0)))
                .collect(),
        }
    }

    pub fn reset(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Operation, u64>> {
        // Counters cannot be left half-updated.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_list_every_operation_and_the_total() {
        let stats = Stats::default();
        stats.record(Operation::Sign);
        stats.record(Operation::Sign);
        stats.record(Operation::DescribeKey);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.total, 3);
        assert_eq!(snapshot.calls["Sign"], 2);
        assert_eq!(snapshot.calls["GetPublicKey"], 0);
        assert_eq!(snapshot.calls.len(), Operation::ALL.len());
        stats.reset();
        assert_eq!(stats.snapshot().total, 0);
    }
}
