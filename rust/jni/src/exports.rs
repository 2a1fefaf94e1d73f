//! Every native method of `dev.awskms.keycloak.NativeBridge`, each right above its Rust
//! implementation. `JNI_OnLoad` registers [`NATIVE_METHODS`], so a name or signature that does
//! not match the Java declaration fails when the library loads, not at the first token.
//!
//! Values cross the boundary as strings, byte arrays and numbers; behaviour lives in
//! `kms_keycloak_core`.

use jni::objects::{JByteArray, JClass, JObjectArray, JString};
use jni::sys::jlong;
use jni::{native_method, Env, NativeMethod};
use kms_keycloak_core::{signing, validation, Error, ErrorKind};

use crate::policy::{all_codes, wire_code, BridgeError, ThrowNativeException, PANIC_CODE};

type NativeResult<T> = Result<T, BridgeError>;

/// The registration table; its order is irrelevant, its completeness is tested from Java.
pub const NATIVE_METHODS: [NativeMethod<'static>; 7] = [
    VERSION,
    ERROR_CODES,
    DESCRIBE_SIGNING_KEY,
    SIGNING_KEY_HANDLE,
    SIGN,
    PANIC_FOR_TESTING,
    FAIL_FOR_TESTING,
];

const VERSION: NativeMethod = native_method! {
    static fn version() -> JString,
    error_policy = ThrowNativeException,
};

/// The crate version, so a deployment can tell which native build it loaded.
fn version<'local>(env: &mut Env<'local>, _class: JClass<'local>) -> NativeResult<JString<'local>> {
    Ok(env.new_string(env!("CARGO_PKG_VERSION"))?)
}

const ERROR_CODES: NativeMethod = native_method! {
    static fn error_codes() -> JString[],
    error_policy = ThrowNativeException,
};

/// Every code a native call can throw, for the exhaustive Java-side mapping test.
fn error_codes<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JObjectArray<'local, JString<'local>>> {
    let codes: Vec<&str> = all_codes().collect();
    let array = JObjectArray::<JString>::new(env, codes.len(), JString::null())?;
    for (index, code) in codes.into_iter().enumerate() {
        let element = env.new_string(code)?;
        array.set_element(env, index, &element)?;
    }
    Ok(array)
}

const DESCRIBE_SIGNING_KEY: NativeMethod = native_method! {
    static fn describe_signing_key(config_json: JString) -> JString,
    error_policy = ThrowNativeException,
};

/// Validation on save: checks the configuration against KMS and returns the public material to
/// store, as JSON (`keyArn`, `keySpec`, `publicKey`, `kid`, `signingAlgorithms`).
fn describe_signing_key<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    config_json: JString<'local>,
) -> NativeResult<JString<'local>> {
    let config_json = config_json.try_to_string(env)?;
    let config = kms_keycloak_core::config::ProviderConfig::from_json(&config_json)?;
    let description = validation::describe_signing_key(&config)?;
    Ok(env.new_string(description.to_json()?)?)
}

const SIGNING_KEY_HANDLE: NativeMethod = native_method! {
    static fn signing_key_handle(config_json: JString) -> jlong,
    error_policy = ThrowNativeException,
};

/// The handle of the signing key a stored configuration describes; no network call.
fn signing_key_handle<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    config_json: JString<'local>,
) -> NativeResult<jlong> {
    let config_json = config_json.try_to_string(env)?;
    let handle = signing::register(&config_json)?;
    Ok(jlong::try_from(handle).map_err(|_| Error::new(ErrorKind::Internal, "handle overflow"))?)
}

const SIGN: NativeMethod = native_method! {
    static fn sign(handle: jlong, jca_algorithm: JString, message: jbyte[]) -> jbyte[],
    error_policy = ThrowNativeException,
};

/// Signs `message` with the key behind `handle`; RSA raw, ECDSA DER.
fn sign<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    handle: jlong,
    jca_algorithm: JString<'local>,
    message: JByteArray<'local>,
) -> NativeResult<JByteArray<'local>> {
    let handle = u64::try_from(handle).map_err(|_| {
        Error::new(
            ErrorKind::InvalidHandle,
            format!("{handle} is not a signing key handle"),
        )
    })?;
    let jca_algorithm = jca_algorithm.try_to_string(env)?;
    let message = env.convert_byte_array(&message)?;
    let signature = signing::sign(handle, &jca_algorithm, &message)?;
    Ok(env.byte_array_from_slice(&signature)?)
}

const PANIC_FOR_TESTING: NativeMethod = native_method! {
    static fn panic_for_testing(),
    error_policy = ThrowNativeException,
};

/// Panics, so that tests can prove a panic reaches Java as an exception and the JVM lives on.
fn panic_for_testing<'local>(_env: &mut Env<'local>, _class: JClass<'local>) -> NativeResult<()> {
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
) -> NativeResult<()> {
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
