//! The one error type of the core: a stable kind, a retryable flag and a message written for the
//! administrator who reads it in the admin console or the server log.
//!
//! Messages name keys, regions and error kinds; they never carry secrets or key material.

use std::fmt;

/// What went wrong, as a stable category. The JNI bridge maps every kind to a Java error code
/// without a catch-all arm, so adding a kind is a compile error there until it is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input from the caller (malformed JSON, unknown algorithm name).
    InvalidArgument,
    /// A configuration field is missing or ill-formed.
    InvalidConfiguration,
    /// No credentials could be resolved for the configured mode.
    CredentialsUnavailable,
    /// KMS refused the caller's identity or permissions.
    AccessDenied,
    /// KMS does not know the key (or the alias points nowhere).
    KeyNotFound,
    /// The key exists but is disabled.
    KeyDisabled,
    /// The key is in a state that cannot sign (pending deletion, pending import, ...).
    KeyInvalidState,
    /// The key is not a SIGN_VERIFY key.
    KeyUsageMismatch,
    /// The algorithm does not fit the key spec.
    KeySpecMismatch,
    /// Any other request KMS rejected as a client error.
    KmsRejected,
    /// KMS throttled the request.
    Throttled,
    /// KMS answered with a server error.
    KmsUnavailable,
    /// A connect, attempt or overall deadline passed.
    Timeout,
    /// The connection could not be made or broke.
    Network,
    /// KMS returned a signature that does not verify against the stored public key.
    InvalidSignature,
    /// The uploaded certificate does not parse, or is not valid now.
    InvalidCertificate,
    /// The uploaded certificate is for another key than the KMS key.
    CertificateMismatch,
    /// The handle does not name a registered signing key.
    InvalidHandle,
    /// A public key source could not be loaded and no usable keys of it are cached.
    PublicKeysUnavailable,
    /// A JWKS download failed: a non-2xx status, a refused redirect, a response over the size
    /// limit, or a TLS failure.
    JwksFetchFailed,
    /// A downloaded document is not a JWKS.
    JwksInvalid,
    /// A bug in this library.
    Internal,
}

impl ErrorKind {
    /// Every kind, for exhaustive cross-language checks.
    pub const ALL: [ErrorKind; 22] = [
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidConfiguration,
        ErrorKind::CredentialsUnavailable,
        ErrorKind::AccessDenied,
        ErrorKind::KeyNotFound,
        ErrorKind::KeyDisabled,
        ErrorKind::KeyInvalidState,
        ErrorKind::KeyUsageMismatch,
        ErrorKind::KeySpecMismatch,
        ErrorKind::KmsRejected,
        ErrorKind::Throttled,
        ErrorKind::KmsUnavailable,
        ErrorKind::Timeout,
        ErrorKind::Network,
        ErrorKind::InvalidSignature,
        ErrorKind::InvalidCertificate,
        ErrorKind::CertificateMismatch,
        ErrorKind::InvalidHandle,
        ErrorKind::PublicKeysUnavailable,
        ErrorKind::JwksFetchFailed,
        ErrorKind::JwksInvalid,
        ErrorKind::Internal,
    ];

    /// Whether an identical call made later may succeed (the condition is transient).
    pub fn is_transient(self) -> bool {
        match self {
            ErrorKind::Throttled
            | ErrorKind::KmsUnavailable
            | ErrorKind::Timeout
            | ErrorKind::Network
            // The source may answer again after the reload window.
            | ErrorKind::PublicKeysUnavailable => true,
            ErrorKind::InvalidArgument
            | ErrorKind::InvalidConfiguration
            | ErrorKind::CredentialsUnavailable
            | ErrorKind::AccessDenied
            | ErrorKind::KeyNotFound
            | ErrorKind::KeyDisabled
            | ErrorKind::KeyInvalidState
            | ErrorKind::KeyUsageMismatch
            | ErrorKind::KeySpecMismatch
            | ErrorKind::KmsRejected
            | ErrorKind::InvalidSignature
            | ErrorKind::InvalidCertificate
            | ErrorKind::CertificateMismatch
            | ErrorKind::InvalidHandle
            // A 503 would pass, but a 404, a redirect or an oversized document will not.
            | ErrorKind::JwksFetchFailed
            | ErrorKind::JwksInvalid
            | ErrorKind::Internal => false,
        }
    }

    /// Whether the KMS call itself is retried inside the request deadline. Only throttling and
    /// server errors are: a timeout already spent the budget, and a refused connection is an
    /// outage that retries would only prolong.
    pub fn is_retried_in_call(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::KmsUnavailable)
    }
}

/// An error with a stable kind and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn invalid_configuration(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidConfiguration, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_kinds_are_retried_inside_a_call() {
        for kind in ErrorKind::ALL {
            if kind.is_retried_in_call() {
                assert!(kind.is_transient(), "{kind:?} is retried but not transient");
            }
        }
    }

    #[test]
    fn every_kind_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind), "{kind:?} listed twice");
        }
    }
}
