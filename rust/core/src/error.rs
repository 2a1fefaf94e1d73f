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
    /// The server policy set by the operator (`--spi-keys--aws-kms--…`) does not allow the
    /// configuration; the message names the option.
    PolicyDenied,
    /// A bug in this library.
    Internal,
}

impl ErrorKind {
    /// Every kind, for exhaustive cross-language checks.
    pub const ALL: [ErrorKind; 23] = [
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
        ErrorKind::PolicyDenied,
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
            | ErrorKind::PolicyDenied
            | ErrorKind::Internal => false,
        }
    }

    /// Whether the KMS call itself is retried inside the request deadline: what the AWS SDKs'
    /// standard retry mode treats as transient — throttling, server errors, timeouts and broken
    /// or refused connections (of KMS, or of STS and the metadata services while fetching
    /// credentials) — as far as the deadline, the attempt limit and the client's retry budget
    /// allow (`signing/kms/calls.rs`).
    pub fn is_retried_in_call(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::KmsUnavailable
                | ErrorKind::Timeout
                | ErrorKind::Network
        )
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

/// The most characters of remote text a message quotes.
pub const REMOTE_TEXT_MAX_CHARS: usize = 300;

/// Text that a remote endpoint chose (an AWS or STS error message or code, a TLS alert, an HTTP
/// library's account of what a server sent), as a message may quote it: every run of control
/// characters (line breaks, escape sequences, bidirectional overrides, zero-width characters)
/// becomes one space, the ends are trimmed, and at most [`REMOTE_TEXT_MAX_CHARS`] characters
/// are kept, the cut marked with `…`. An endpoint an administrator chose can then neither flood
/// an admin response or the log nor forge lines in it. The one place this rule lives.
pub fn bounded_remote_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(REMOTE_TEXT_MAX_CHARS * 4));
    let mut kept = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if is_hidden(c) || c == ' ' && out.is_empty() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            if kept == REMOTE_TEXT_MAX_CHARS {
                out.push('…');
                return out;
            }
            out.push(' ');
            kept += 1;
        }
        pending_space = false;
        if kept == REMOTE_TEXT_MAX_CHARS {
            out.push('…');
            return out;
        }
        out.push(c);
        kept += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// The most characters of an entered or received value a message quotes.
pub const QUOTED_INPUT_MAX_CHARS: usize = 100;

/// A value someone entered or sent (a configuration field, a server option, a key set's member),
/// as a message shows it: at most [`QUOTED_INPUT_MAX_CHARS`] characters of it, then `…`;
/// control and invisible characters (see [`bounded_remote_text`]) written as `\u{…}` escapes, so
/// an administrator sees that they are there. The caller puts the quotes around it.
pub fn quoted_input(text: &str) -> String {
    escaped_prefix(text, QUOTED_INPUT_MAX_CHARS)
}

/// serde_json's account of why a JSON argument does not parse, as a message quotes it: serde
/// quotes the unexpected value or member name (`invalid type: string "…"`, `unknown field `…``),
/// so it is cut to [`REMOTE_TEXT_MAX_CHARS`] characters with hidden characters escaped, and the
/// position kept.
pub fn bounded_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(reason) if error.line() > 0 => {
            format!(
                "{}{position}",
                escaped_prefix(reason, REMOTE_TEXT_MAX_CHARS)
            )
        }
        _ => escaped_prefix(&text, REMOTE_TEXT_MAX_CHARS),
    }
}

fn escaped_prefix(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    for (index, c) in text.chars().enumerate() {
        if index == max_chars {
            out.push('…');
            break;
        }
        if is_hidden(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters and the invisible formatting characters that can disguise text.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || c.is_whitespace() && c != ' '
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_error_quotes_a_bounded_part_of_the_input_and_keeps_the_position() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Options {
            limit: Option<u64>,
        }
        let huge = format!("{{\"limit\":\"{}\\u0000\"}}", "x".repeat(10 * 1024 * 1024));
        let error = serde_json::from_str::<Options>(&huge).expect_err("a string");
        let text = bounded_json_error(&error);
        assert!(
            text.chars().count() < 400,
            "{} characters",
            text.chars().count()
        );
        assert!(
            text.contains("…") && text.contains(" at line 1 column "),
            "{text}"
        );
        let error =
            serde_json::from_str::<Options>("{\"li\\u001bmit\":1}").expect_err("unknown member");
        let text = bounded_json_error(&error);
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("li\\u{1b}mit"), "{text}");
    }

    #[test]
    fn a_quoted_input_is_cut_and_shows_hidden_characters_as_escapes() {
        assert_eq!(quoted_input("alias/signing"), "alias/signing");
        assert_eq!(
            quoted_input("a\u{0}b\u{202E}c\n"),
            "a\\u{0}b\\u{202e}c\\u{a}"
        );
        let long = "é".repeat(10 * 1024 * 1024);
        let quoted = quoted_input(&long);
        assert_eq!(quoted.chars().count(), QUOTED_INPUT_MAX_CHARS + 1);
        assert!(quoted.ends_with('…'));
        assert!(
            quoted_input(&"\u{0}".repeat(1000)).chars().count() <= 6 * QUOTED_INPUT_MAX_CHARS + 1
        );
    }

    #[test]
    fn only_transient_kinds_are_retried_inside_a_call() {
        for kind in ErrorKind::ALL {
            if kind.is_retried_in_call() {
                assert!(kind.is_transient(), "{kind:?} is retried but not transient");
            }
        }
    }

    #[test]
    fn remote_text_loses_its_control_characters_and_is_cut_at_the_bound() {
        assert_eq!(
            bounded_remote_text("User: x\r\n2025-01-01 ERROR forged line\u{1b}[31m red"),
            "User: x 2025-01-01 ERROR forged line [31m red"
        );
        assert_eq!(
            bounded_remote_text("a\u{202E}b\u{200B}c\tdone  "),
            "a b c done"
        );
        assert_eq!(bounded_remote_text("\n\n  plain  \n"), "plain");
        assert_eq!(bounded_remote_text(""), "");
        let long = "é".repeat(5000);
        let bounded = bounded_remote_text(&long);
        assert_eq!(bounded.chars().count(), REMOTE_TEXT_MAX_CHARS + 1);
        assert!(bounded.ends_with('…'));
        let exact = "x".repeat(REMOTE_TEXT_MAX_CHARS);
        assert_eq!(bounded_remote_text(&exact), exact);
        let spaced = format!("{}\n\ny", "x".repeat(REMOTE_TEXT_MAX_CHARS));
        assert_eq!(
            bounded_remote_text(&spaced),
            format!("{}…", "x".repeat(REMOTE_TEXT_MAX_CHARS))
        );
    }

    #[test]
    fn every_kind_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind), "{kind:?} listed twice");
        }
    }
}
