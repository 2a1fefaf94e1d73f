//! Calls to AWS KMS: one client per connection (region, endpoint, credentials) shared by every key
//! that uses it, bounded timeouts, retries only for throttling and server errors, and a mapping of
//! every SDK failure to an [`ErrorKind`] with a message an administrator can act on.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyMetadata, MessageType, SigningAlgorithmSpec};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use once_cell::sync::Lazy;
use tokio::sync::Mutex;

use crate::algorithm::SigningAlgorithm;
use crate::config::{Connection, Credentials, Secret};
use crate::error::{Error, ErrorKind, Result};

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

static CLIENTS: Lazy<Mutex<HashMap<Connection, aws_sdk_kms::Client>>> =
    Lazy::new(|| Mutex::new(HashMap::new()));

/// The shared client for a connection; built once, so its connection pool and cached
/// credentials serve every later call.
pub(crate) async fn client(connection: &Connection) -> aws_sdk_kms::Client {
    let mut clients = CLIENTS.lock().await;
    if let Some(client) = clients.get(connection) {
        return client.clone();
    }
    let client = build_client(connection, Timeouts::DEFAULT).await;
    clients.insert(connection.clone(), client.clone());
    client
}

async fn build_client(connection: &Connection, timeouts: Timeouts) -> aws_sdk_kms::Client {
    let mut loader = base_loader(&connection.region, timeouts);
    if let Some(url) = &connection.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    match &connection.credentials {
        Credentials::Default => {}
        Credentials::AccessKey {
            access_key_id,
            secret_access_key,
        } => {
            loader = loader.credentials_provider(static_provider(access_key_id, secret_access_key));
        }
        Credentials::AssumeRole(role) => {
            let mut sts = base_loader(&connection.region, timeouts);
            if let Some(url) = &role.sts_endpoint_url {
                sts = sts.endpoint_url(url);
            }
            if let Credentials::AccessKey {
                access_key_id,
                secret_access_key,
            } = role.base.as_ref()
            {
                sts = sts.credentials_provider(static_provider(access_key_id, secret_access_key));
            }
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
                .session_name(&role.session_name)
                .configure(&sts.load().await);
            if let Some(external_id) = &role.external_id {
                provider = provider.external_id(external_id.expose());
            }
            // The SDK caches the assumed credentials and refreshes them before they expire.
            loader = loader.credentials_provider(provider.build().await);
        }
    }
    aws_sdk_kms::Client::new(&loader.load().await)
}

/// Region, timeouts and no SDK retries: retries are ours (see `call`), only throttling and 5xx,
/// inside one deadline.
fn base_loader(region: &str, timeouts: Timeouts) -> aws_config::ConfigLoader {
    let timeout_config = TimeoutConfig::builder()
        .connect_timeout(timeouts.connect)
        .operation_attempt_timeout(timeouts.attempt)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .timeout_config(timeout_config)
        .retry_config(RetryConfig::disabled())
}

fn static_provider(access_key_id: &str, secret: &Secret) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        access_key_id,
        secret.expose(),
        None,
        None,
        "keycloak-component",
    )
}

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

/// Names the endpoint in network messages: the configured URL, or the regional AWS endpoint.
fn endpoint_label(connection: &Connection) -> String {
    connection
        .endpoint_url
        .clone()
        .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", connection.region))
}

/// Maps an SDK failure to our error. `operation` is the KMS API name (for IAM actions in
/// messages), `key` the key as configured or resolved.
pub(crate) fn map_sdk_error<E>(
    operation: &str,
    key: &str,
    connection: &Connection,
    error: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(cause) = credentials_failure(&error) {
        let message = match &connection.credentials {
            Credentials::AssumeRole(role) => {
                format!("Could not assume role {}: {cause}", role.role_arn)
            }
            Credentials::Default | Credentials::AccessKey { .. } => {
                format!("No AWS credentials could be obtained: {cause}")
            }
        };
        return Error::new(ErrorKind::CredentialsUnavailable, message);
    }
    match &error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code().unwrap_or("UnknownError");
            let detail = context.err().message().unwrap_or("");
            if names_wrong_region(detail) {
                return Error::new(
                    ErrorKind::InvalidConfiguration,
                    format!(
                        "Region: KMS at {} does not serve region {} (AWS: {}); set the region of \
                         that endpoint or of the key's ARN",
                        endpoint_label(connection),
                        connection.region,
                        detail.trim()
                    ),
                );
            }
            let kind = classify_service_error(code, status);
            Error::new(
                kind,
                service_error_message(kind, code, detail, operation, key, connection, status),
            )
        }
        SdkError::TimeoutError(_) => Error::new(
            ErrorKind::Timeout,
            format!(
                "KMS at {} did not answer {operation} in time",
                endpoint_label(connection)
            ),
        ),
        SdkError::DispatchFailure(failure) => {
            let (kind, what) = if failure.is_timeout() {
                (ErrorKind::Timeout, "timed out connecting to")
            } else if failure.is_user() {
                (
                    ErrorKind::InvalidConfiguration,
                    "could not send a request to",
                )
            } else {
                (ErrorKind::Network, "could not reach")
            };
            Error::new(
                kind,
                format!(
                    "{} {} for {operation}: {}",
                    capitalize(what),
                    endpoint_label(connection),
                    root_cause(&error)
                ),
            )
        }
        SdkError::ResponseError(context) => {
            let status = context.raw().status().as_u16();
            let kind = if status >= 500 {
                ErrorKind::KmsUnavailable
            } else {
                ErrorKind::KmsRejected
            };
            Error::new(
                kind,
                format!(
                    "KMS at {} sent an unreadable answer to {operation} (HTTP {status})",
                    endpoint_label(connection)
                ),
            )
        }
        SdkError::ConstructionFailure(_) => Error::new(
            ErrorKind::InvalidConfiguration,
            format!(
                "The {operation} request could not be built: {}",
                root_cause(&error)
            ),
        ),
        // SdkError is non-exhaustive; a variant added by a later SDK is a bug until mapped.
        _ => Error::internal(format!(
            "Unexpected failure of {operation}: {}",
            root_cause(&error)
        )),
    }
}

/// A regional endpoint refuses a signature scoped to another region with this wording (code
/// `InvalidSignatureException` or `SignatureDoesNotMatch`); it is a configuration mistake, not a
/// wrong secret.
fn names_wrong_region(detail: &str) -> bool {
    detail.contains("scoped to a valid region")
}

/// The KMS (and AWS-wide) error codes, sorted into our kinds.
fn classify_service_error(code: &str, status: u16) -> ErrorKind {
    match code {
        "NotFoundException" => ErrorKind::KeyNotFound,
        "DisabledException" => ErrorKind::KeyDisabled,
        "KMSInvalidStateException" => ErrorKind::KeyInvalidState,
        "InvalidKeyUsageException" => ErrorKind::KeyUsageMismatch,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException" => ErrorKind::AccessDenied,
        "ThrottlingException"
        | "LimitExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => ErrorKind::Throttled,
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "InternalFailure"
        | "ServiceUnavailable" => ErrorKind::KmsUnavailable,
        _ if status >= 500 => ErrorKind::KmsUnavailable,
        _ => ErrorKind::KmsRejected,
    }
}

fn service_error_message(
    kind: ErrorKind,
    code: &str,
    detail: &str,
    operation: &str,
    key: &str,
    connection: &Connection,
    status: u16,
) -> String {
    let region = &connection.region;
    let with_detail = |text: String| {
        if detail.is_empty() {
            text
        } else {
            format!("{text} ({detail})")
        }
    };
    match (kind, code) {
        (ErrorKind::AccessDenied, "UnrecognizedClientException" | "InvalidClientTokenId") => {
            "KMS does not recognise the configured access key id".to_owned()
        }
        (
            ErrorKind::AccessDenied,
            "InvalidSignatureException" | "SignatureDoesNotMatch" | "IncompleteSignature",
        ) => "KMS rejected the request signature: the secret access key does not belong to the \
              access key id"
            .to_owned(),
        (ErrorKind::AccessDenied, "ExpiredTokenException") => {
            "The AWS session credentials have expired".to_owned()
        }
        (ErrorKind::AccessDenied, _) => with_detail(format!(
            "Access denied: the credentials lack kms:{operation} on {key}"
        )),
        (ErrorKind::KeyNotFound, _) => {
            with_detail(format!("KMS key {key} was not found in region {region}"))
        }
        (ErrorKind::KeyDisabled, _) => format!("KMS key {key} is disabled"),
        (ErrorKind::KeyInvalidState, _) => {
            with_detail(format!("KMS key {key} cannot be used in its current state"))
        }
        (ErrorKind::KeyUsageMismatch, _) => {
            with_detail(format!("KMS key {key} cannot be used for signing"))
        }
        (ErrorKind::Throttled, _) => format!(
            "KMS throttled {operation} on {key}: the request quota is exhausted, try again shortly"
        ),
        (ErrorKind::KmsUnavailable, _) => {
            format!("KMS failed to process {operation} on {key} (HTTP {status}, {code})")
        }
        _ => with_detail(format!("KMS rejected {operation} on {key}: {code}")),
    }
}

/// Finds a credentials-provider failure anywhere in the error's cause chain.
fn credentials_failure<E>(error: &SdkError<E, HttpResponse>) -> Option<String>
where
    E: std::error::Error + 'static,
{
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(credentials) =
            current.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
        {
            return Some(root_cause(credentials));
        }
        cause = current.source();
    }
    None
}

/// The most specific cause: an AWS error's code and message where the chain has one (as for a
/// failed `sts:AssumeRole`), else the innermost message (the SDK's outer layers only say
/// "dispatch failure").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    loop {
        if let Some(aws) = current.downcast_ref::<aws_smithy_types::error::ErrorMetadata>() {
            return match (aws.code(), aws.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, _) => aws.message().unwrap_or("unknown AWS error").to_owned(),
            };
        }
        match current.source() {
            Some(next) => current = next,
            None => return current.to_string(),
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `DescribeKey`: the key's metadata, aliases resolved.
pub(crate) async fn describe_key(
    connection: &Connection,
    key: &str,
    deadline: Instant,
) -> Result<KeyMetadata> {
    let client = client(connection).await;
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
    connection: &Connection,
    key: &str,
    deadline: Instant,
) -> Result<Vec<u8>> {
    let client = client(connection).await;
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
    connection: &Connection,
    key: &str,
    algorithm: SigningAlgorithm,
    digest: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>> {
    let client = client(connection).await;
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

    #[test]
    fn kms_error_codes_map_to_stable_kinds() {
        let cases = [
            ("NotFoundException", 400, ErrorKind::KeyNotFound),
            ("DisabledException", 400, ErrorKind::KeyDisabled),
            ("KMSInvalidStateException", 400, ErrorKind::KeyInvalidState),
            ("InvalidKeyUsageException", 400, ErrorKind::KeyUsageMismatch),
            ("AccessDeniedException", 400, ErrorKind::AccessDenied),
            ("UnrecognizedClientException", 400, ErrorKind::AccessDenied),
            ("InvalidSignatureException", 400, ErrorKind::AccessDenied),
            ("ThrottlingException", 400, ErrorKind::Throttled),
            ("LimitExceededException", 400, ErrorKind::Throttled),
            ("KMSInternalException", 500, ErrorKind::KmsUnavailable),
            ("DependencyTimeoutException", 503, ErrorKind::KmsUnavailable),
            ("SomethingNew", 502, ErrorKind::KmsUnavailable),
            ("ValidationException", 400, ErrorKind::KmsRejected),
        ];
        for (code, status, kind) in cases {
            assert_eq!(classify_service_error(code, status), kind, "{code}");
        }
    }

    #[test]
    fn error_messages_name_the_key_and_the_missing_permission() {
        let connection = Connection {
            region: "eu-west-1".into(),
            endpoint_url: None,
            credentials: Credentials::Default,
        };
        let message = service_error_message(
            ErrorKind::AccessDenied,
            "AccessDeniedException",
            "",
            "GetPublicKey",
            "arn:aws:kms:eu-west-1:111122223333:key/k",
            &connection,
            400,
        );
        assert_eq!(
            message,
            "Access denied: the credentials lack kms:GetPublicKey on arn:aws:kms:eu-west-1:111122223333:key/k"
        );
        let message = service_error_message(
            ErrorKind::KeyNotFound,
            "NotFoundException",
            "Alias is not found",
            "DescribeKey",
            "alias/x",
            &connection,
            400,
        );
        assert_eq!(
            message,
            "KMS key alias/x was not found in region eu-west-1 (Alias is not found)"
        );
    }

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
