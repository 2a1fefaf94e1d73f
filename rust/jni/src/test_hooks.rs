//! Natives only the Java unit tests need, registered on the test class
//! `dev.awskms.keycloak.internal.NativeTestHooks` in the `test-hooks` build; the production
//! library has neither these functions nor their registration.

use jni::objects::{JClass, JString};
use jni::{native_method, Env, NativeMethod};
use keycloak_aws_kms_core::{Error, ErrorKind};

use crate::policy::{wire_code, BridgeError, ThrowNativeException, PANIC_CODE};

pub const NATIVE_METHODS: [NativeMethod<'static>; 2] = [PANIC_FOR_TESTING, FAIL_FOR_TESTING];

const PANIC_FOR_TESTING: NativeMethod = native_method! {
    static fn panic_for_testing(),
    error_policy = ThrowNativeException,
};

/// Panics, so that tests can prove a panic reaches Java as an exception and the JVM lives on.
fn panic_for_testing<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
) -> Result<(), BridgeError> {
    panic!("panicForTesting was called");
}

const FAIL_FOR_TESTING: NativeMethod = native_method! {
    static fn fail_for_testing(code: JString),
    error_policy = ThrowNativeException,
};

/// Fails with the error kind whose wire code is `code`, so tests can check every mapping.
fn fail_for_testing<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    code: JString<'local>,
) -> Result<(), BridgeError> {
    let code = code.try_to_string(env)?;
    if code == PANIC_CODE {
        panic!("failForTesting(PANIC) was called");
    }
    let kind = ErrorKind::ALL
        .into_iter()
        .find(|kind| wire_code(*kind) == code)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("Unknown error code {code:?}"),
            )
        })?;
    Err(Error::new(kind, format!("failForTesting({code})")).into())
}
