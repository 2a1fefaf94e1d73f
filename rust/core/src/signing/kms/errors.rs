//! The mapping of every AWS SDK failure to an [`ErrorKind`], with a message an administrator can
//! act on: which key, which endpoint, which IAM action, which region.
//!
//! Whatever the endpoint answered (error codes and messages of KMS or STS, the innermost cause
//! of a failed exchange) is quoted through [`bounded_remote_text`]: the endpoint may be one an
//! administrator chose, and its words reach admin responses and the server log.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::{bounded_remote_text, Error, ErrorKind};
use crate::signing::config::{Connection, Credentials};

/// Names the endpoint in network messages: the configured URL, or the regional AWS endpoint.
fn endpoint_label(connection: &Connection) -> String {
    connection
        .endpoint_url
        .clone()
        .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", connection.region))
}

/// A connected attempt that got no (complete) answer before its timeout.
fn no_answer_in_time(operation: &str, connection: &Connection) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "KMS at {} did not answer {operation} in time",
            endpoint_label(connection)
        ),
    )
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
    if let Some(credentials) = credentials_failure(&error) {
        let cause = root_cause(credentials);
        let message = match &connection.credentials {
            Credentials::AssumeRole(role) => {
                format!("Could not assume role {}: {cause}", role.role_arn)
            }
            Credentials::Default | Credentials::AccessKey { .. } => {
                format!("No AWS credentials could be obtained: {cause}")
            }
        };
        return Error::new(classify_credentials_error(credentials), message);
    }
    match &error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = bounded_remote_text(context.err().code().unwrap_or("UnknownError"));
            let code = code.as_str();
            let detail = bounded_remote_text(context.err().message().unwrap_or(""));
            let detail = detail.as_str();
            if names_wrong_region(detail) {
                return Error::new(
                    ErrorKind::InvalidConfiguration,
                    format!(
                        "Region: KMS at {} does not serve region {} (AWS: {}); set the region of \
                         that endpoint or of the key's ARN",
                        endpoint_label(connection),
                        connection.region,
                        detail
                    ),
                );
            }
            let kind = classify_service_error(code, status);
            Error::new(
                kind,
                service_error_message(kind, code, detail, operation, key, connection, status),
            )
        }
        SdkError::TimeoutError(_) => no_answer_in_time(operation, connection),
        // Our HTTP client's exchange timing out once connected: the SDK's attempt timeout.
        SdkError::DispatchFailure(failure)
            if failure
                .as_connector_error()
                .is_some_and(super::direct_http::is_no_answer_in_time) =>
        {
            no_answer_in_time(operation, connection)
        }
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
            // A 2xx answer that could not be read was cut short (a connection reset or closed
            // mid-response) or garbled on the way: the SDKs retry every response error, and
            // so do we. An unreadable 4xx stays a refusal.
            let kind = if status >= 500 {
                ErrorKind::KmsUnavailable
            } else if (200..300).contains(&status) {
                ErrorKind::Network
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
        // The throttling codes of the SDKs' standard retry mode (STS says `Throttling`).
        "ThrottlingException"
        | "Throttling"
        | "LimitExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "PriorRequestNotComplete"
        | "EC2ThrottledException" => ErrorKind::Throttled,
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorKind::KmsUnavailable,
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
fn credentials_failure<E>(error: &SdkError<E, HttpResponse>) -> Option<&CredentialsError>
where
    E: std::error::Error + 'static,
{
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(credentials) = current.downcast_ref::<CredentialsError>() {
            return Some(credentials);
        }
        cause = current.source();
    }
    None
}

/// Whether a credentials failure is transient (a later fetch may succeed), as the SDKs treat
/// the same failure of STS or the metadata services.
pub(crate) fn credentials_error_is_transient(error: &CredentialsError) -> bool {
    classify_credentials_error(error).is_transient()
}

/// A credentials-provider failure as a kind: STS throttling, STS 5xx, timeouts and broken
/// connections (STS, IMDS, the container endpoint) are the transient kinds, retried inside the
/// call; everything else (a denied role, no provider in the chain, a bad configuration) is
/// `CredentialsUnavailable`.
pub(crate) fn classify_credentials_error(error: &CredentialsError) -> ErrorKind {
    if matches!(error, CredentialsError::ProviderTimedOut(_)) {
        return ErrorKind::Timeout;
    }
    if matches!(error, CredentialsError::InvalidConfiguration(_)) {
        return ErrorKind::CredentialsUnavailable;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(kind) = transient_kind_of(current) {
            return kind;
        }
        cause = current.source();
    }
    ErrorKind::CredentialsUnavailable
}

/// The transient kind one link of a credentials failure's chain shows, if any.
fn transient_kind_of(link: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use aws_config::imds::client::error::ImdsError;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    if let Some(sts) = link.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
        return match sts {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let kind = classify_service_error(context.err().code().unwrap_or(""), status);
                kind.is_transient().then_some(kind)
            }
            SdkError::TimeoutError(_) => Some(ErrorKind::Timeout),
            SdkError::ResponseError(context) if context.raw().status().as_u16() >= 500 => {
                Some(ErrorKind::KmsUnavailable)
            }
            SdkError::ResponseError(_) => Some(ErrorKind::Network),
            SdkError::DispatchFailure(failure) if failure.is_timeout() => Some(ErrorKind::Timeout),
            SdkError::DispatchFailure(failure) if failure.is_io() => Some(ErrorKind::Network),
            _ => None,
        };
    }
    if let Some(imds) = link.downcast_ref::<ImdsError>() {
        return match imds {
            ImdsError::ErrorResponse(response) if response.response().status().as_u16() >= 500 => {
                Some(ErrorKind::KmsUnavailable)
            }
            ImdsError::ErrorResponse(response) if response.response().status().as_u16() == 429 => {
                Some(ErrorKind::Throttled)
            }
            ImdsError::IoError(_) => Some(ErrorKind::Network),
            _ => None,
        };
    }
    if let Some(connector) = link.downcast_ref::<ConnectorError>() {
        if connector.is_timeout() {
            return Some(ErrorKind::Timeout);
        }
        if connector.is_io() {
            return Some(ErrorKind::Network);
        }
    }
    if let Some(aws) = link.downcast_ref::<aws_smithy_types::error::ErrorMetadata>() {
        let kind = classify_service_error(aws.code().unwrap_or(""), 400);
        return kind.is_transient().then_some(kind);
    }
    if link.downcast_ref::<std::io::Error>().is_some() {
        return Some(ErrorKind::Network);
    }
    None
}

/// The most specific cause: an AWS error's code and message where the chain has one (as for a
/// failed `sts:AssumeRole`), else the innermost message (the SDK's outer layers only say
/// "dispatch failure"); bounded, as the remote end chose it.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    bounded_remote_text(&innermost_cause(error))
}

fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn what_the_endpoint_answered_is_quoted_bounded_and_without_control_characters() {
        use aws_sdk_kms::operation::sign::SignError;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;

        let connection = Connection {
            region: "eu-west-1".into(),
            endpoint_url: Some("https://kms.attacker.example".into()),
            credentials: Credentials::Default,
        };
        let chosen = format!(
            "denied\r\n2030-01-01 ERROR [org.keycloak] forged\u{1b}[0m {}",
            "x".repeat(10_000)
        );
        let service_error = |code: &str, message: &str| {
            let metadata = ErrorMetadata::builder().code(code).message(message).build();
            let response =
                HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from("{}"));
            SdkError::service_error(SignError::generic(metadata), response)
        };
        for error in [
            service_error("AccessDeniedException", &chosen),
            service_error(&chosen, &chosen),
            service_error("ValidationException", &chosen),
        ] {
            let mapped = map_sdk_error("Sign", "alias/k", &connection, error);
            let message = mapped.message();
            assert!(!message.chars().any(char::is_control), "{message:?}");
            assert!(message.contains("denied 2030-01-01 ERROR"), "{message}");
            assert!(
                message.chars().count() < 3 * crate::error::REMOTE_TEXT_MAX_CHARS,
                "{} characters",
                message.chars().count()
            );
        }
    }

    #[test]
    fn a_timeout_once_connected_reads_as_no_answer_and_one_connecting_as_such() {
        use aws_sdk_kms::operation::sign::SignError;
        use aws_smithy_runtime_api::client::result::ConnectorError;

        let connection = Connection {
            region: "eu-west-1".into(),
            endpoint_url: Some("http://127.0.0.1:1".into()),
            credentials: Credentials::Default,
        };
        let no_answer = super::super::direct_http::tests_support::no_answer_in_time();
        let connecting = ConnectorError::timeout(
            std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out connecting").into(),
        );
        let map = |connector: ConnectorError| {
            let error: SdkError<SignError, HttpResponse> = SdkError::dispatch_failure(connector);
            map_sdk_error("Sign", "alias/k", &connection, error)
        };
        let mapped = map(no_answer);
        assert_eq!(mapped.kind(), ErrorKind::Timeout);
        assert_eq!(
            mapped.message(),
            "KMS at http://127.0.0.1:1 did not answer Sign in time"
        );
        let mapped = map(connecting);
        assert_eq!(mapped.kind(), ErrorKind::Timeout);
        assert!(
            mapped
                .message()
                .starts_with("Timed out connecting to http://127.0.0.1:1 for Sign"),
            "{}",
            mapped.message()
        );
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
}
