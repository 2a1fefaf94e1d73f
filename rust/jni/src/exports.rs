//! Every native method of `dev.awskms.keycloak.NativeBridge`, each right above its Rust
//! implementation. `JNI_OnLoad` registers [`NATIVE_METHODS`], so a name or signature that does
//! not match the Java declaration fails when the library loads, not at the first token.
//!
//! Values cross the boundary as strings, byte arrays and numbers; behaviour lives in
//! `kms_keycloak_core`.

use jni::objects::{JByteArray, JClass, JObject, JObjectArray, JString};
use jni::sys::jlong;
use jni::{native_method, Env, NativeMethod};
use kms_keycloak_core::{signing, validation, Error, ErrorKind};

use crate::policy::{all_codes, wire_code, BridgeError, ThrowNativeException, PANIC_CODE};
use crate::public_key_cache;

type NativeResult<T> = Result<T, BridgeError>;

/// The registration table; its order is irrelevant, its completeness is tested from Java.
pub const NATIVE_METHODS: [NativeMethod<'static>; 15] = [
    VERSION,
    ERROR_CODES,
    DESCRIBE_SIGNING_KEY,
    SIGNING_KEY_HANDLE,
    SIGN,
    PANIC_FOR_TESTING,
    FAIL_FOR_TESTING,
    PUBLIC_KEY_CACHE_CONFIGURE,
    PUBLIC_KEY_CACHE_GET,
    PUBLIC_KEY_CACHE_RELOAD,
    PUBLIC_KEY_CACHE_EVICT,
    PUBLIC_KEY_CACHE_EVICT_PREFIX,
    PUBLIC_KEY_CACHE_CLEAR,
    PUBLIC_KEY_CACHE_STATS,
    FETCH_JWKS,
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

const PUBLIC_KEY_CACHE_CONFIGURE: NativeMethod = native_method! {
    static fn public_key_cache_configure(policy_json: JString),
    error_policy = ThrowNativeException,
};

/// Replaces the public key cache policy and the JWKS download settings; cached keys stay.
fn public_key_cache_configure<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    policy_json: JString<'local>,
) -> NativeResult<()> {
    let policy_json = policy_json.try_to_string(env)?;
    public_key_cache::configure(&policy_json)
}

const PUBLIC_KEY_CACHE_GET: NativeMethod = native_method! {
    static fn public_key_cache_get(source_key: JString) -> JObject,
    error_policy = ThrowNativeException,
};

/// The source's `CachedPublicKeys` if fresh, else null.
fn public_key_cache_get<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    source_key: JString<'local>,
) -> NativeResult<JObject<'local>> {
    let source_key = source_key.try_to_string(env)?;
    public_key_cache::get(env, &source_key)
}

const PUBLIC_KEY_CACHE_RELOAD: NativeMethod = native_method! {
    static fn public_key_cache_reload(
        source_key: JString,
        loader: dev.awskms.keycloak.NativeKeyLoader,
    ) -> JObject,
    error_policy = ThrowNativeException,
};

/// Reloads the source under the window, single-flight and stale-on-error rules; calls
/// `loader.load()` on this thread if this caller leads the load.
fn public_key_cache_reload<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    source_key: JString<'local>,
    loader: JObject<'local>,
) -> NativeResult<JObject<'local>> {
    let source_key = source_key.try_to_string(env)?;
    public_key_cache::reload(env, &source_key, &loader)
}

const PUBLIC_KEY_CACHE_EVICT: NativeMethod = native_method! {
    static fn public_key_cache_evict(source_key: JString),
    error_policy = ThrowNativeException,
};

/// Forgets one source.
fn public_key_cache_evict<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    source_key: JString<'local>,
) -> NativeResult<()> {
    let source_key = source_key.try_to_string(env)?;
    public_key_cache::evict(&source_key);
    Ok(())
}

const PUBLIC_KEY_CACHE_EVICT_PREFIX: NativeMethod = native_method! {
    static fn public_key_cache_evict_prefix(source_key_prefix: JString),
    error_policy = ThrowNativeException,
};

/// Forgets every source whose key starts with the prefix (a removed realm).
fn public_key_cache_evict_prefix<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    source_key_prefix: JString<'local>,
) -> NativeResult<()> {
    let prefix = source_key_prefix.try_to_string(env)?;
    public_key_cache::evict_prefix(&prefix);
    Ok(())
}

const PUBLIC_KEY_CACHE_CLEAR: NativeMethod = native_method! {
    static fn public_key_cache_clear(),
    error_policy = ThrowNativeException,
};

/// Forgets every source ("Clear keys cache").
fn public_key_cache_clear<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<()> {
    public_key_cache::clear();
    Ok(())
}

const PUBLIC_KEY_CACHE_STATS: NativeMethod = native_method! {
    static fn public_key_cache_stats() -> JString,
    error_policy = ThrowNativeException,
};

/// The cache counters as JSON.
fn public_key_cache_stats<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JString<'local>> {
    Ok(env.new_string(public_key_cache::stats_json())?)
}

const FETCH_JWKS: NativeMethod = native_method! {
    static fn fetch_jwks(url: JString, requested_use: JString) -> JString,
    error_policy = ThrowNativeException,
};

/// Downloads and parses a JWKS, keeping the keys for `requestedUse` ("sig" or "enc").
fn fetch_jwks<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    url: JString<'local>,
    requested_use: JString<'local>,
) -> NativeResult<JString<'local>> {
    let url = url.try_to_string(env)?;
    let requested_use = requested_use.try_to_string(env)?;
    Ok(env.new_string(public_key_cache::fetch_jwks(&url, &requested_use)?)?)
}
