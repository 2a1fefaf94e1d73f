//! AWS JSON 1.1 as KMS speaks it: operation names, error types and their HTTP form, blobs and
//! timestamps. (STS's XML form of the same errors is in `sts`.)

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of the `X-Amz-Target` header value of every KMS operation.
pub const TARGET_PREFIX: &str = "TrentService.";
/// Content type of KMS requests and responses.
pub const CONTENT_TYPE_JSON_1_1: &str = "application/x-amz-json-1.1";
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";
const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// The operations this emulator implements: KMS's, and STS `AssumeRole` (served on the same port,
/// see `sts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    CreateKey,
    DescribeKey,
    GetPublicKey,
    Sign,
    Verify,
    CreateAlias,
    UpdateAlias,
    DeleteAlias,
    ListAliases,
    ListKeys,
    DisableKey,
    EnableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    /// STS, not KMS: never reached through `X-Amz-Target`.
    AssumeRole,
}

impl Operation {
    pub const ALL: [Operation; 15] = [
        Operation::CreateKey,
        Operation::DescribeKey,
        Operation::GetPublicKey,
        Operation::Sign,
        Operation::Verify,
        Operation::CreateAlias,
        Operation::UpdateAlias,
        Operation::DeleteAlias,
        Operation::ListAliases,
        Operation::ListKeys,
        Operation::DisableKey,
        Operation::EnableKey,
        Operation::ScheduleKeyDeletion,
        Operation::CancelKeyDeletion,
        Operation::AssumeRole,
    ];

    /// The operation's name as it appears in `X-Amz-Target` after [`TARGET_PREFIX`] (or in
    /// `Action=` for STS).
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreateKey => "CreateKey",
            Operation::DescribeKey => "DescribeKey",
            Operation::GetPublicKey => "GetPublicKey",
            Operation::Sign => "Sign",
            Operation::Verify => "Verify",
            Operation::CreateAlias => "CreateAlias",
            Operation::UpdateAlias => "UpdateAlias",
            Operation::DeleteAlias => "DeleteAlias",
            Operation::ListAliases => "ListAliases",
            Operation::ListKeys => "ListKeys",
            Operation::DisableKey => "DisableKey",
            Operation::EnableKey => "EnableKey",
            Operation::ScheduleKeyDeletion => "ScheduleKeyDeletion",
            Operation::CancelKeyDeletion => "CancelKeyDeletion",
            Operation::AssumeRole => "AssumeRole",
        }
    }

    /// Whether this is a KMS operation (rather than STS `AssumeRole`).
    pub fn is_kms(self) -> bool {
        self != Operation::AssumeRole
    }

    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Parses an `X-Amz-Target` header value such as `TrentService.Sign` (KMS operations only).
    pub fn from_target(target: &str) -> Option<Operation> {
        target
            .strip_prefix(TARGET_PREFIX)
            .and_then(Operation::from_name)
            .filter(|op| op.is_kms())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every error type the emulator answers with, named as AWS names them on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    // KMS-specific client errors.
    AlreadyExists,
    Disabled,
    DryRunOperation,
    InvalidAliasName,
    InvalidKeyUsage,
    InvalidMarker,
    KmsInvalidSignature,
    KmsInvalidState,
    NotFound,
    UnsupportedOperation,
    // Client errors common to AWS JSON services (request shape, authentication, throttling).
    AccessDenied,
    ExpiredToken,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    Serialization,
    Throttling,
    UnknownOperation,
    UnrecognizedClient,
    Validation,
    // Server errors.
    Internal,
    ServiceUnavailable,
}

impl ErrorKind {
    /// The `__type` / `x-amzn-errortype` value.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::AlreadyExists => "AlreadyExistsException",
            ErrorKind::Disabled => "DisabledException",
            ErrorKind::DryRunOperation => "DryRunOperationException",
            ErrorKind::InvalidAliasName => "InvalidAliasNameException",
            ErrorKind::InvalidKeyUsage => "InvalidKeyUsageException",
            ErrorKind::InvalidMarker => "InvalidMarkerException",
            ErrorKind::KmsInvalidSignature => "KMSInvalidSignatureException",
            ErrorKind::KmsInvalidState => "KMSInvalidStateException",
            ErrorKind::NotFound => "NotFoundException",
            ErrorKind::UnsupportedOperation => "UnsupportedOperationException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::ExpiredToken => "ExpiredTokenException",
            ErrorKind::IncompleteSignature => "IncompleteSignatureException",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::UnrecognizedClient => "UnrecognizedClientException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::Internal => "KMSInternalException",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::AlreadyExists
            | ErrorKind::Disabled
            | ErrorKind::DryRunOperation
            | ErrorKind::InvalidAliasName
            | ErrorKind::InvalidKeyUsage
            | ErrorKind::InvalidMarker
            | ErrorKind::KmsInvalidSignature
            | ErrorKind::KmsInvalidState
            | ErrorKind::NotFound
            | ErrorKind::UnsupportedOperation
            | ErrorKind::AccessDenied
            | ErrorKind::ExpiredToken
            | ErrorKind::IncompleteSignature
            | ErrorKind::InvalidSignature
            | ErrorKind::MissingAuthenticationToken
            | ErrorKind::Serialization
            | ErrorKind::Throttling
            | ErrorKind::UnknownOperation
            | ErrorKind::UnrecognizedClient
            | ErrorKind::Validation => StatusCode::BAD_REQUEST,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answered to a client: an AWS error type and a human-readable message. KMS gets it as
/// JSON ([`KmsError::to_response`]), STS as XML (`sts::error_response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsError {
    kind: ErrorKind,
    message: String,
}

impl KmsError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> KmsError {
        KmsError {
            kind,
            message: message.into(),
        }
    }

    /// `ValidationException` in AWS's wording for a model constraint on a request member.
    pub fn validation(member: &str, constraint: impl fmt::Display) -> KmsError {
        KmsError::new(
            ErrorKind::Validation,
            format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}"
            ),
        )
    }

    /// `ValidationException` for a required member that is absent.
    pub fn missing(member: &str) -> KmsError {
        KmsError::new(
            ErrorKind::Validation,
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP response: status by kind, `{"__type","message"}` body and `x-amzn-errortype`.
    pub fn to_response(&self, request_id: &str) -> Response<Full<Bytes>> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "__type")]
            error_type: &'a str,
            message: &'a str,
        }
        let body = Body {
            error_type: self.kind.type_name(),
            message: &self.message,
        };
        let mut response = json_response(self.kind.status(), request_id, json_bytes(&body));
        response.headers_mut().insert(
            ERROR_TYPE_HEADER,
            HeaderValue::from_static(self.kind.type_name()),
        );
        response
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl std::error::Error for KmsError {}

/// A successful KMS response; `body` is empty for operations without output.
pub fn success_response(request_id: &str, body: Bytes) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, request_id, body)
}

fn json_response(status: StatusCode, request_id: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE_JSON_1_1),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Serializes a response shape. The shapes are plain structs of strings, numbers and lists, for
/// which serialization cannot fail; should it ever, the client gets `{}` rather than a panic.
pub fn json_bytes(value: &impl Serialize) -> Bytes {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(b"{}"))
}

/// Parses a request body into an operation's request shape. An empty body is read as `{}`.
pub fn parse_request<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, KmsError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|err| {
        KmsError::new(
            ErrorKind::Serialization,
            format!("Could not read the request body: {err}"),
        )
    })
}

/// A `blob` member: standard base64 on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .map(Blob)
            .map_err(|err| serde::de::Error::custom(format!("invalid base64 blob: {err}")))
    }
}

/// A `timestamp` member: epoch seconds as a JSON number (AWS JSON 1.1's default format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }

    pub fn plus_days(self, days: u32) -> Timestamp {
        Timestamp(self.0 + Duration::from_secs(u64::from(days) * 24 * 60 * 60))
    }

    /// Seconds since the epoch, to the millisecond.
    pub fn epoch_seconds(self) -> f64 {
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        since_epoch.as_millis() as f64 / 1000.0
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.epoch_seconds())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_operations_after_the_trent_service_prefix() {
        assert_eq!(
            Operation::from_target("TrentService.Sign"),
            Some(Operation::Sign)
        );
        assert_eq!(Operation::from_target("Sign"), None);
        assert_eq!(Operation::from_target("TrentService.Encrypt"), None);
        assert_eq!(Operation::from_target("TrentService.AssumeRole"), None);
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
    }

    #[test]
    fn errors_carry_their_aws_type_in_body_and_header() {
        let response = KmsError::new(ErrorKind::Disabled, "key is disabled").to_response("rid");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[ERROR_TYPE_HEADER], "DisabledException");
        assert_eq!(response.headers()[CONTENT_TYPE], CONTENT_TYPE_JSON_1_1);
    }

    #[test]
    fn server_errors_are_5xx() {
        assert_eq!(ErrorKind::Internal.status(), 500);
        assert_eq!(ErrorKind::ServiceUnavailable.status(), 503);
        assert_eq!(ErrorKind::Throttling.status(), 400);
    }

    #[test]
    fn blobs_are_standard_base64_and_bad_base64_is_a_serialization_error() {
        #[derive(Deserialize)]
        struct Shape {
            #[serde(rename = "Message")]
            message: Blob,
        }
        let shape: Shape = parse_request(br#"{"Message":"aGk+Pz8/"}"#).expect("valid blob");
        assert_eq!(shape.message.0, b"hi>???");
        let err = parse_request::<Shape>(br#"{"Message":"***"}"#)
            .err()
            .expect("invalid blob");
        assert_eq!(err.kind(), ErrorKind::Serialization);
    }

    #[test]
    fn an_empty_body_reads_as_an_empty_object() {
        #[derive(Deserialize)]
        struct Shape {
            #[serde(rename = "Limit")]
            limit: Option<u32>,
        }
        let shape: Shape = parse_request(b"").expect("empty body");
        assert_eq!(shape.limit, None);
    }
}
