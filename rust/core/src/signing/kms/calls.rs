//! One logical KMS call: bounded by a deadline, attempted again only for what the SDKs treat as
//! transient, with jittered back-off; and the three operations the extension makes.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyMetadata, MessageType, SigningAlgorithmSpec};

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

/// At most this many attempts per call, and only while the deadline allows.
const MAX_ATTEMPTS: u32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_millis(800);

/// One logical KMS call: attempts `operation` until it succeeds, fails for good, or the
/// deadline passes. Back-off is full jitter so that many Keycloak nodes do not retry in step.
pub(crate) async fn call<T, F, Fut>(deadline: Instant, operation: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outcome = tokio::time::timeout(remaining, operation())
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("KMS did not answer within {} ms", remaining.as_millis()),
                ))
            });
        match outcome {
            Err(error) if error.kind().is_retried_in_call() && attempt < MAX_ATTEMPTS => {
                let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt).min(BACKOFF_CAP);
                let pause = ceiling.mul_f64(fastrand::f64());
                if Instant::now() + pause >= deadline {
                    return Err(error);
                }
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// `DescribeKey`: the key's metadata, aliases resolved.
pub(crate) async fn describe_key(
    client: &aws_sdk_kms::Client,
    connection: &Connection,
    key: &str,
    deadline: Instant,
) -> Result<KeyMetadata> {
    let output = call(deadline, || async {
        client
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
    client: &aws_sdk_kms::Client,
    connection: &Connection,
    key: &str,
    deadline: Instant,
) -> Result<Vec<u8>> {
    let output = call(deadline, || async {
        client
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
    client: &aws_sdk_kms::Client,
    connection: &Connection,
    key: &str,
    algorithm: SigningAlgorithm,
    digest: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>> {
    let output = call(deadline, || async {
        client
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

    #[test]
    fn throttling_is_retried_until_it_succeeds() {
        let attempts = AtomicU32::new(0);
        let result = run(call(Instant::now() + Duration::from_secs(5), || async {
            if attempts.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Error::new(ErrorKind::Throttled, "slow down"))
            } else {
                Ok(7)
            }
        }));
        assert_eq!(result, Ok(7));
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn server_errors_are_retried_at_most_three_times() {
        let attempts = AtomicU32::new(0);
        let result: Result<()> = run(call(Instant::now() + Duration::from_secs(5), || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(Error::new(ErrorKind::KmsUnavailable, "500"))
        }));
        assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::KmsUnavailable));
        assert_eq!(attempts.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[test]
    fn permanent_failures_and_network_errors_are_not_retried() {
        for kind in [
            ErrorKind::AccessDenied,
            ErrorKind::KeyDisabled,
            ErrorKind::Network,
        ] {
            let attempts = AtomicU32::new(0);
            let result: Result<()> = run(call(Instant::now() + Duration::from_secs(5), || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(kind, "no"))
            }));
            assert_eq!(result.map_err(|e| e.kind()), Err(kind));
            assert_eq!(attempts.load(Ordering::SeqCst), 1, "{kind:?}");
        }
    }

    #[test]
    fn a_call_that_outlives_the_deadline_fails_as_a_timeout() {
        let started = Instant::now();
        let result: Result<()> = run(call(started + Duration::from_millis(100), || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        }));
        assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
