//! One logical KMS call: bounded by a deadline, attempted again for what the AWS SDKs' standard
//! retry mode treats as transient (throttling, 5xx, timeouts, broken or refused connections,
//! transient credentials failures), with jittered back-off and a retry budget per client; and
//! the three operations the extension makes. All three are safe to repeat (`Sign` has no side
//! effect), so an attempt whose answer was lost is simply made again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyMetadata, MessageType, SigningAlgorithmSpec};

use super::budget::{RetryBudget, RETRY_COST, TIMEOUT_RETRY_COST};
use super::clients::KmsClient;
use super::errors::map_sdk_error;
use crate::error::{Error, ErrorKind, Result};
use crate::signing::algorithm::SigningAlgorithm;
use crate::signing::config::Connection;

/// Time limits for KMS calls. A Keycloak token request waits for one `Sign`, so these bound how
/// long a login can hang on KMS.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Establishing a TCP (and TLS) connection.
    pub connect: Duration,
    /// One HTTP attempt, from sending the request to the last byte of the response.
    pub attempt: Duration,
    /// Everything one logical call may take, retries and back-off included.
    pub deadline: Duration,
}

impl Timeouts {
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(2),
        attempt: Duration::from_secs(3),
        deadline: Duration::from_secs(5),
    };
}

/// At most this many attempts per call (the SDKs' standard mode), and only while the deadline
/// and the client's retry budget allow.
pub const MAX_ATTEMPTS: u32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_millis(800);

/// What a retry of a failure of this kind costs from the budget (`None`: not retried).
fn retry_cost(kind: ErrorKind) -> Option<u32> {
    if !kind.is_retried_in_call() {
        return None;
    }
    Some(match kind {
        ErrorKind::Timeout | ErrorKind::Network => TIMEOUT_RETRY_COST,
        _ => RETRY_COST,
    })
}

/// One logical KMS call: attempts `operation` until it succeeds, fails for good, runs out of
/// attempts or budget, or the deadline passes. Back-off is full jitter so that many Keycloak
/// nodes do not retry in step. `what` names the operation and key for the capacity warning.
pub(crate) async fn call<T, F, Fut>(
    budget: &RetryBudget,
    what: &CallSite<'_>,
    deadline: Instant,
    operation: F,
) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    let mut taken = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // The deadline also bounds the blocking HTTP exchange, which this timer cannot interrupt.
        let bounded = super::direct_http::CALL_DEADLINE.scope(deadline, operation());
        let outcome = tokio::time::timeout(remaining, bounded)
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("KMS did not answer within {} ms", remaining.as_millis()),
                ))
            });
        crate::telemetry::metrics::kms().attempt(what.operation, &outcome);
        let error = match outcome {
            Ok(value) => {
                budget.on_success(taken);
                return Ok(value);
            }
            Err(error) => error,
        };
        let Some(cost) = retry_cost(error.kind()) else {
            return Err(error);
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(error);
        }
        let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt).min(BACKOFF_CAP);
        let pause = ceiling.mul_f64(fastrand::f64());
        // Too little time left for another attempt to be worth starting.
        if Instant::now() + pause + MIN_ATTEMPT_TIME >= deadline {
            return Err(error);
        }
        if !budget.try_acquire(cost) {
            if error.kind() == ErrorKind::Throttled && budget.first_exhaustion() {
                report_capacity_warning(&capacity_warning(what));
            }
            return Err(error);
        }
        taken += cost;
        crate::telemetry::metrics::kms().retry(error.kind());
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}

/// Below this much time left, no new attempt is started.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// Which operation on which key of which client a call is, for the capacity warning.
#[derive(Debug)]
pub(crate) struct CallSite<'a> {
    pub operation: &'static str,
    pub key: &'a str,
    pub client: &'a str,
}

/// The warning an operator reads when throttling has emptied a client's retry budget: which
/// quota KMS enforces, and that it is per account and Region and shared by key family.
fn capacity_warning(what: &CallSite<'_>) -> String {
    format!(
        "KMS keeps throttling {} on {} at {}: retries are paused until calls succeed again (retry \
         budget exhausted). KMS request quotas apply per AWS account and Region and are shared \
         by every caller there: Sign counts against \"Cryptographic operations (RSA) request \
         rate\" (default 500 per second) or \"Cryptographic operations (ECC) request rate\" \
         (default 300 per second) by key type, DescribeKey and GetPublicKey have their own \
         (default 2000 per second). Check the account's usage in Service Quotas and ask for an \
         increase, or spread the load over Regions.",
        what.operation, what.key, what.client
    )
}

static CAPACITY_WARNINGS: AtomicU64 = AtomicU64::new(0);
static LAST_CAPACITY_WARNING: Mutex<Option<String>> = Mutex::new(None);

/// The one place the capacity warning is emitted: once per client, the first time throttling
/// empties its retry budget: logged at WARN in the signing category (Keycloak's log, through the
/// native log bridge) and recorded here ([`capacity_warnings`], [`last_capacity_warning`]).
fn report_capacity_warning(message: &str) {
    CAPACITY_WARNINGS.fetch_add(1, Ordering::Relaxed);
    log::warn!(target: crate::telemetry::logs::SIGNING, "{message}");
    *LAST_CAPACITY_WARNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
}

/// How many capacity warnings this process has emitted (one per client at most).
pub fn capacity_warnings() -> u64 {
    CAPACITY_WARNINGS.load(Ordering::Relaxed)
}

/// The text of the last capacity warning, if any.
pub fn last_capacity_warning() -> Option<String> {
    LAST_CAPACITY_WARNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// `DescribeKey`: the key's metadata, aliases resolved.
pub(crate) async fn describe_key(
    client: &KmsClient,
    connection: &Connection,
    key: &str,
    deadline: Instant,
) -> Result<KeyMetadata> {
    let site = CallSite {
        operation: "DescribeKey",
        key,
        client: client.label(),
    };
    let output = call(client.budget(), &site, deadline, || async {
        client
            .sdk()
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| map_sdk_error("DescribeKey", key, connection, e))
    })
    .await?;
    output.key_metadata.ok_or_else(|| {
        Error::new(
            ErrorKind::KmsRejected,
            format!("KMS returned no metadata for {key}"),
        )
    })
}

/// `GetPublicKey`: the SPKI DER of an asymmetric key.
pub(crate) async fn get_public_key(
    client: &KmsClient,
    connection: &Connection,
    key: &str,
    deadline: Instant,
) -> Result<Vec<u8>> {
    let site = CallSite {
        operation: "GetPublicKey",
        key,
        client: client.label(),
    };
    let output = call(client.budget(), &site, deadline, || async {
        client
            .sdk()
            .get_public_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| map_sdk_error("GetPublicKey", key, connection, e))
    })
    .await?;
    output.public_key.map(Blob::into_inner).ok_or_else(|| {
        Error::new(
            ErrorKind::KmsRejected,
            format!("KMS returned no public key for {key}"),
        )
    })
}

/// `Sign` over a digest computed here (`MessageType=DIGEST`): the signing input never leaves the
/// server and its size is irrelevant to KMS's 4 KB limit for raw messages.
pub(crate) async fn sign_digest(
    client: &KmsClient,
    connection: &Connection,
    key: &str,
    algorithm: SigningAlgorithm,
    digest: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>> {
    let site = CallSite {
        operation: "Sign",
        key,
        client: client.label(),
    };
    let output = call(client.budget(), &site, deadline, || async {
        client
            .sdk()
            .sign()
            .key_id(key)
            .message(Blob::new(digest))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::from(algorithm.kms_name()))
            .send()
            .await
            .map_err(|e| map_sdk_error("Sign", key, connection, e))
    })
    .await?;
    output.signature.map(Blob::into_inner).ok_or_else(|| {
        Error::new(
            ErrorKind::KmsRejected,
            format!("KMS returned no signature for {key}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    const SITE: CallSite<'static> = CallSite {
        operation: "Sign",
        key: "alias/test",
        client: "http://127.0.0.1:1 (us-east-1)",
    };

    /// Runs `call` with a full budget of its own and a 5 s deadline; returns the outcome and
    /// how many attempts were made.
    fn attempts_of(failures: u32, kind: ErrorKind) -> (Result<u32>, u32) {
        let attempts = AtomicU32::new(0);
        let budget = RetryBudget::default();
        let result = run(call(
            &budget,
            &SITE,
            Instant::now() + Duration::from_secs(5),
            || async {
                if attempts.fetch_add(1, Ordering::SeqCst) < failures {
                    Err(Error::new(kind, "failed"))
                } else {
                    Ok(7)
                }
            },
        ));
        (result, attempts.load(Ordering::SeqCst))
    }

    #[test]
    fn throttling_is_retried_until_it_succeeds() {
        assert_eq!(attempts_of(2, ErrorKind::Throttled), (Ok(7), 3));
    }

    #[test]
    fn server_errors_are_retried_at_most_three_times() {
        let (result, attempts) = attempts_of(10, ErrorKind::KmsUnavailable);
        assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::KmsUnavailable));
        assert_eq!(attempts, MAX_ATTEMPTS);
    }

    #[test]
    fn broken_connections_and_timeouts_are_retried_like_the_sdks_standard_mode() {
        for kind in [ErrorKind::Network, ErrorKind::Timeout] {
            assert_eq!(attempts_of(2, kind), (Ok(7), 3), "{kind:?}");
        }
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        for kind in [
            ErrorKind::AccessDenied,
            ErrorKind::KeyDisabled,
            ErrorKind::CredentialsUnavailable,
            ErrorKind::InvalidSignature,
            ErrorKind::KmsRejected,
        ] {
            let (result, attempts) = attempts_of(10, kind);
            assert_eq!(result.map_err(|e| e.kind()), Err(kind));
            assert_eq!(attempts, 1, "{kind:?}");
        }
    }

    #[test]
    fn a_call_that_outlives_the_deadline_fails_as_a_timeout() {
        let started = Instant::now();
        let budget = RetryBudget::default();
        let result: Result<()> = run(call(
            &budget,
            &SITE,
            started + Duration::from_millis(100),
            || async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            },
        ));
        assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn an_empty_budget_fails_at_the_first_throttle_and_warns_of_the_quota_once() {
        let budget = RetryBudget::with_tokens(RETRY_COST - 1);
        let before = capacity_warnings();
        for _ in 0..3 {
            let attempts = AtomicU32::new(0);
            let result: Result<()> = run(call(
                &budget,
                &SITE,
                Instant::now() + Duration::from_secs(5),
                || async {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    Err(Error::new(ErrorKind::Throttled, "Rate exceeded"))
                },
            ));
            assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::Throttled));
            assert_eq!(attempts.load(Ordering::SeqCst), 1);
        }
        // Other tests' budgets may warn concurrently: at least ours, and ours only once.
        assert!(capacity_warnings() > before);
        let warning = last_capacity_warning().expect("a warning");
        assert!(
            warning.contains("Cryptographic operations (RSA) request rate"),
            "{warning}"
        );
        assert!(budget.available() < RETRY_COST);
        assert!(!budget.first_exhaustion(), "reported already");
    }

    #[test]
    fn a_successful_retry_gives_its_tokens_back() {
        let budget = RetryBudget::with_tokens(100);
        let attempts = AtomicU32::new(0);
        let result = run(call(
            &budget,
            &SITE,
            Instant::now() + Duration::from_secs(5),
            || async {
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(Error::new(ErrorKind::Network, "reset"))
                } else {
                    Ok(())
                }
            },
        ));
        assert_eq!(result, Ok(()));
        assert_eq!(budget.available(), 100);
    }
}
