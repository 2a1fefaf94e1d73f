//! The one error/panic policy every native method runs through: a Rust error becomes a thrown
//! `dev.awskms.keycloak.internal.NativeException(code, retryable, message)`, a panic becomes the
//! same exception with code `PANIC`, and the native returns its default value (0, null).

use std::any::Any;
use std::fmt;

use jni::errors::ErrorPolicy;
use jni::Env;
use keycloak_aws_kms_core::ErrorKind;

use crate::java_types::new_native_exception;

/// The wire code of a panic caught at the boundary.
pub const PANIC_CODE: &str = "PANIC";

/// The stable wire code of each error kind. Exhaustive on purpose: a new kind does not compile
/// until it has a code, and the Java enum is tested against [`all_codes`].
pub fn wire_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
        ErrorKind::InvalidConfiguration => "INVALID_CONFIGURATION",
        ErrorKind::CredentialsUnavailable => "CREDENTIALS_UNAVAILABLE",
        ErrorKind::AccessDenied => "ACCESS_DENIED",
        ErrorKind::KeyNotFound => "KEY_NOT_FOUND",
        ErrorKind::KeyDisabled => "KEY_DISABLED",
        ErrorKind::KeyInvalidState => "KEY_INVALID_STATE",
        ErrorKind::KeyUsageMismatch => "KEY_USAGE_MISMATCH",
        ErrorKind::KeySpecMismatch => "KEY_SPEC_MISMATCH",
        ErrorKind::KmsRejected => "KMS_REJECTED",
        ErrorKind::Throttled => "THROTTLED",
        ErrorKind::KmsUnavailable => "KMS_UNAVAILABLE",
        ErrorKind::Timeout => "TIMEOUT",
        ErrorKind::Network => "NETWORK",
        ErrorKind::InvalidSignature => "INVALID_SIGNATURE",
        ErrorKind::InvalidCertificate => "INVALID_CERTIFICATE",
        ErrorKind::CertificateMismatch => "CERTIFICATE_MISMATCH",
        ErrorKind::InvalidHandle => "INVALID_HANDLE",
        ErrorKind::PublicKeysUnavailable => "PUBLIC_KEYS_UNAVAILABLE",
        ErrorKind::JwksFetchFailed => "JWKS_FETCH_FAILED",
        ErrorKind::JwksInvalid => "JWKS_INVALID",
        ErrorKind::PolicyDenied => "POLICY_DENIED",
        ErrorKind::Internal => "INTERNAL",
    }
}

/// Every code a native call can throw.
pub fn all_codes() -> impl Iterator<Item = &'static str> {
    ErrorKind::ALL
        .into_iter()
        .map(wire_code)
        .chain(std::iter::once(PANIC_CODE))
}

/// Why a native call failed: the core said no, or the JNI plumbing itself failed.
#[derive(Debug)]
pub(crate) enum BridgeError {
    Core(keycloak_aws_kms_core::Error),
    Jni(jni::errors::Error),
}

impl From<keycloak_aws_kms_core::Error> for BridgeError {
    fn from(error: keycloak_aws_kms_core::Error) -> Self {
        BridgeError::Core(error)
    }
}

impl From<jni::errors::Error> for BridgeError {
    fn from(error: jni::errors::Error) -> Self {
        BridgeError::Jni(error)
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Core(error) => write!(f, "{error}"),
            BridgeError::Jni(error) => write!(f, "JNI: {error}"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl BridgeError {
    /// Code, transient flag and message of the exception to throw.
    fn describe(&self) -> (&'static str, bool, String) {
        match self {
            BridgeError::Core(error) => (
                wire_code(error.kind()),
                error.is_transient(),
                error.message().to_owned(),
            ),
            // A null where Java promised a value is the caller's mistake; anything else is ours.
            BridgeError::Jni(jni::errors::Error::NullPtr(what)) => (
                wire_code(ErrorKind::InvalidArgument),
                false,
                format!("A required argument was null: {what}"),
            ),
            BridgeError::Jni(error) => (
                wire_code(ErrorKind::Internal),
                false,
                format!("JNI call failed: {error}"),
            ),
        }
    }
}

/// Throws `NativeException` for errors and panics; see the module comment.
#[derive(Debug)]
pub struct ThrowNativeException;

impl<T: Default> ErrorPolicy<T, BridgeError> for ThrowNativeException {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut Self::Captures<'unowned_env_local, 'native_method>,
        error: BridgeError,
    ) -> jni::errors::Result<T> {
        if env.exception_check() {
            // A Java exception raised by a JNI call is already on its way; keep it.
            return Ok(T::default());
        }
        let (code, transient, message) = error.describe();
        throw_native_exception(env, code, transient, &message)?;
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut Self::Captures<'unowned_env_local, 'native_method>,
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let message = panic_message(payload);
        if env.exception_check() {
            env.exception_clear();
        }
        throw_native_exception(
            env,
            PANIC_CODE,
            false,
            &format!("Internal error in the native library: {message}"),
        )?;
        Ok(T::default())
    }
}

fn throw_native_exception(
    env: &mut Env<'_>,
    code: &str,
    transient: bool,
    message: &str,
) -> jni::errors::Result<()> {
    // Each step returns at its first failure: no JNI call runs while one of them left an
    // exception (an OutOfMemoryError) pending, and that exception is what Java then sees.
    let code = env.new_string(code)?;
    let message = env.new_string(message)?;
    let exception = new_native_exception(env, &code, transient, &message)?;
    match env.throw(&exception) {
        // `throw` reports the now-pending exception as an error; that is the success case.
        Ok(()) | Err(jni::errors::Error::JavaException) => Ok(()),
        Err(other) => Err(other),
    }
}

fn panic_message(payload: Box<dyn Any + Send + 'static>) -> String {
    match payload.downcast::<&'static str>() {
        Ok(text) => (*text).to_owned(),
        Err(payload) => match payload.downcast::<String>() {
            Ok(text) => *text,
            Err(payload) => {
                // Dropping an unknown payload may itself panic; leak it rather than abort.
                std::mem::forget(payload);
                "a panic without a message".to_owned()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_a_distinct_wire_code() {
        let codes: Vec<&str> = all_codes().collect();
        let unique: std::collections::HashSet<&&str> = codes.iter().collect();
        assert_eq!(codes.len(), unique.len());
        assert_eq!(codes.len(), ErrorKind::ALL.len() + 1);
        assert!(codes
            .iter()
            .all(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')));
    }

    #[test]
    fn panic_messages_are_recovered_from_both_payload_types() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(5_u8)), "a panic without a message");
    }

    #[test]
    fn null_arguments_are_reported_as_invalid_arguments() {
        let (code, transient, _) =
            BridgeError::Jni(jni::errors::Error::NullPtr("message")).describe();
        assert_eq!((code, transient), ("INVALID_ARGUMENT", false));
        let (code, transient, message) = BridgeError::Core(keycloak_aws_kms_core::Error::new(
            ErrorKind::Throttled,
            "slow down",
        ))
        .describe();
        assert_eq!(
            (code, transient, message.as_str()),
            ("THROTTLED", true, "slow down")
        );
    }
}
