//! Every native method of `dev.awskms.keycloak.internal.NativeBridge`, each right above its Rust
//! implementation; the contract is `docs/design.md` ("JNI"). `JNI_OnLoad` registers
//! [`NATIVE_METHODS`], so a name or signature that does not match the Java declaration fails
//! when the library loads, not at the first token.
//!
//! Values cross the boundary as strings, byte arrays and numbers; behaviour lives in
//! `keycloak_aws_kms_core`. Strings that may carry secrets are wiped once parsed.

use jni::objects::{JByteArray, JClass, JLongArray, JObject, JObjectArray, JString};
use jni::sys::jlong;
use jni::{native_method, Env, EnvUnowned, NativeMethod};
use keycloak_aws_kms_core::signing::config::ProviderConfig;
use keycloak_aws_kms_core::signing::policy::{self, ServerPolicy};
use keycloak_aws_kms_core::signing::{catalogue, registry, validation};
use keycloak_aws_kms_core::{Error, ErrorKind};
use zeroize::Zeroizing;

use crate::policy::{all_codes, BridgeError, ThrowNativeException};
use crate::public_keys;
use crate::telemetry;

type NativeResult<T> = Result<T, BridgeError>;

/// The registration table; its order is irrelevant, its completeness is tested from Java.
pub const NATIVE_METHODS: [NativeMethod<'static>; 29] = [
    VERSION,
    ERROR_CODES,
    SIGNING_CATALOGUE,
    CONFIGURE_SIGNING_POLICY,
    DESCRIBE_SIGNING_KEY,
    SIGNING_KEY_HANDLE,
    SIGN,
    RELEASE_SIGNING_KEY,
    SIGNING_KEY_STATS,
    PUBLIC_KEY_CACHE_CONFIGURE,
    PUBLIC_KEY_CACHE_DEFAULTS,
    PUBLIC_KEY_CACHE_GET,
    PUBLIC_KEY_CACHE_GET_BY_ID,
    PUBLIC_KEY_CACHE_RELOAD,
    PUBLIC_KEY_CACHE_RELOAD_BY_ID,
    PUBLIC_KEY_CACHE_COMPLETE_RELOAD,
    PUBLIC_KEY_CACHE_FAIL_RELOAD,
    PUBLIC_KEY_CACHE_EVICT,
    PUBLIC_KEY_CACHE_EVICT_PREFIX,
    PUBLIC_KEY_CACHE_CLEAR,
    PUBLIC_KEY_CACHE_STATS,
    FETCH_JWKS,
    LOG_CATEGORIES,
    CONFIGURE_LOG_LEVELS,
    DRAIN_LOG_RECORDS,
    WAKE_LOG_DRAIN,
    TELEMETRY_STATS,
    SIGNING_OUTCOMES,
    UNKNOWN_KID_NOTE,
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

const SIGNING_CATALOGUE: NativeMethod = native_method! {
    static fn signing_catalogue() -> JString,
    error_policy = ThrowNativeException,
};

/// The signing rules Java keeps a copy of names from (JCA services, form lists), for its
/// pinning tests.
fn signing_catalogue<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JString<'local>> {
    Ok(env.new_string(catalogue::to_json())?)
}

const CONFIGURE_SIGNING_POLICY: NativeMethod = native_method! {
    static fn configure_signing_policy(options_json: JString),
    error_policy = ThrowNativeException,
};

/// Replaces the server policy for `aws-kms` providers with the operator's options (as written,
/// by option name); an unknown option or an unusable value is refused naming the option.
fn configure_signing_policy<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    options_json: JString<'local>,
) -> NativeResult<()> {
    let options_json = options_json.try_to_string(env)?;
    policy::configure(ServerPolicy::from_json(&options_json)?);
    Ok(())
}

const DESCRIBE_SIGNING_KEY: NativeMethod = native_method! {
    static fn describe_signing_key(config_json: JString) -> JString,
    error_policy = ThrowNativeException,
};

/// Validation on save: holds the configuration to the server policy and the kept-secrets rule,
/// checks it against KMS and returns the public material to store, as JSON.
fn describe_signing_key<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    config_json: JString<'local>,
) -> NativeResult<JString<'local>> {
    let config_json = Zeroizing::new(config_json.try_to_string(env)?);
    let config = ProviderConfig::from_json(&config_json)?;
    let context = validation::SaveContext::from_json(&config_json)?;
    let description = validation::describe_for_save(&config, &context, &policy::current())?;
    Ok(env.new_string(description.to_json()?)?)
}

const SIGNING_KEY_HANDLE: NativeMethod = native_method! {
    static fn signing_key_handle(component_id: JString, config_json: JString) -> jlong,
    error_policy = ThrowNativeException,
};

/// The handle of the component's signing key for its stored configuration; no network call.
fn signing_key_handle<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    component_id: JString<'local>,
    config_json: JString<'local>,
) -> NativeResult<jlong> {
    let component_id = component_id.try_to_string(env)?;
    let config_json = Zeroizing::new(config_json.try_to_string(env)?);
    let handle = registry::global().register(&component_id, &config_json)?;
    telemetry::bound(handle, &component_id, &config_json);
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
    let signature = registry::global().sign(handle, &jca_algorithm, &message);
    telemetry::signed(handle, &signature);
    Ok(env.byte_array_from_slice(&signature?)?)
}

const RELEASE_SIGNING_KEY: NativeMethod = native_method! {
    static fn release_signing_key(component_id: JString),
    error_policy = ThrowNativeException,
};

/// Forgets a removed or updated component's key, its client if no other key uses it, and its
/// secrets.
fn release_signing_key<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    component_id: JString<'local>,
) -> NativeResult<()> {
    let component_id = component_id.try_to_string(env)?;
    registry::global().release(&component_id);
    telemetry::released(&component_id);
    Ok(())
}

const SIGNING_KEY_STATS: NativeMethod = native_method! {
    static fn signing_key_stats() -> JString,
    error_policy = ThrowNativeException,
};

/// How many signing keys and KMS clients are held, as JSON.
fn signing_key_stats<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JString<'local>> {
    Ok(env.new_string(registry::global().stats().to_json())?)
}

const PUBLIC_KEY_CACHE_CONFIGURE: NativeMethod = native_method! {
    static fn public_key_cache_configure(options_json: JString),
    error_policy = ThrowNativeException,
};

/// Replaces the public key cache policy and the JWKS download settings; cached keys stay.
fn public_key_cache_configure<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    options_json: JString<'local>,
) -> NativeResult<()> {
    let options_json = options_json.try_to_string(env)?;
    public_keys::configure(&options_json)
}

const PUBLIC_KEY_CACHE_DEFAULTS: NativeMethod = native_method! {
    static fn public_key_cache_defaults() -> JString,
    error_policy = ThrowNativeException,
};

/// The option defaults, in the option names and units.
fn public_key_cache_defaults<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JString<'local>> {
    Ok(env.new_string(public_keys::defaults_json())?)
}

const PUBLIC_KEY_CACHE_GET: NativeMethod = native_method! {
    static fn public_key_cache_get(source_key: JString, source_id: jlong[]) -> JObject,
    error_policy = ThrowNativeException,
};

/// The source's `CachedPublicKeys` if fresh, else null; the source's id (0: not cached) in
/// `source_id[0]`.
fn public_key_cache_get<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    source_key: JString<'local>,
    source_id: JLongArray<'local>,
) -> NativeResult<JObject<'local>> {
    let source_key = source_key.try_to_string(env)?;
    public_keys::get(env, &source_key, &source_id)
}

const PUBLIC_KEY_CACHE_GET_BY_ID: NativeMethod = native_method! {
    static raw fn public_key_cache_get_by_id(source_id: jlong) -> JObject,
};

/// The hit path: the `CachedPublicKeys` of the source the id names if fresh, else null (also
/// for an id that names no cached source). Raw: it runs without an `Env`, its panics still go
/// through the one policy (`public_keys::get_by_id`).
fn public_key_cache_get_by_id<'local>(
    unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    source_id: jlong,
) -> JObject<'local> {
    public_keys::get_by_id(unowned_env, source_id)
}

const PUBLIC_KEY_CACHE_RELOAD: NativeMethod = native_method! {
    static fn public_key_cache_reload(source_key: JString, permit: jlong[]) -> JObject,
    error_policy = ThrowNativeException,
};

/// Asks to reload the source: the keys to use now, or null with a permit in `permit[0]` when
/// this caller leads the load; the source's id in `permit[1]` if the array has room.
fn public_key_cache_reload<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    source_key: JString<'local>,
    permit: JLongArray<'local>,
) -> NativeResult<JObject<'local>> {
    let source_key = source_key.try_to_string(env)?;
    public_keys::reload(env, &source_key, &permit)
}

const PUBLIC_KEY_CACHE_RELOAD_BY_ID: NativeMethod = native_method! {
    static raw fn public_key_cache_reload_by_id(source_id: jlong, permit: jlong[]) -> JObject,
};

/// `publicKeyCacheReload` for the source the id names; 0 in `permit[1]` (and null) when no
/// cached source has this id, and the caller asks again by key. Raw: it runs without an `Env`,
/// its errors and panics still go through the one policy (`public_keys::reload_by_id`).
fn public_key_cache_reload_by_id<'local>(
    unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    source_id: jlong,
    permit: JLongArray<'local>,
) -> JObject<'local> {
    public_keys::reload_by_id(unowned_env, source_id, &permit)
}

const PUBLIC_KEY_CACHE_COMPLETE_RELOAD: NativeMethod = native_method! {
    static fn public_key_cache_complete_reload(
        permit: jlong,
        keys: dev.awskms.keycloak.internal.CachedPublicKeys,
        expires_at_epoch_millis: jlong,
    ) -> JObject,
    error_policy = ThrowNativeException,
};

/// The leader's loaded keys: stored (unless evicted meanwhile or the permit expired) and
/// handed to the waiting callers.
fn public_key_cache_complete_reload<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    permit: jlong,
    keys: JObject<'local>,
    expires_at_epoch_millis: jlong,
) -> NativeResult<JObject<'local>> {
    public_keys::complete(env, permit, &keys, expires_at_epoch_millis)
}

const PUBLIC_KEY_CACHE_FAIL_RELOAD: NativeMethod = native_method! {
    static fn public_key_cache_fail_reload(permit: jlong, reason: JString) -> JObject,
    error_policy = ThrowNativeException,
};

/// The leader's load failed: the last usable keys, or `PUBLIC_KEYS_UNAVAILABLE` with `reason`.
fn public_key_cache_fail_reload<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    permit: jlong,
    reason: JString<'local>,
) -> NativeResult<JObject<'local>> {
    let reason = if reason.is_null() {
        "the loader gave no reason".to_owned()
    } else {
        reason.try_to_string(env)?
    };
    public_keys::fail(env, permit, &reason)
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
    public_keys::evict(&source_key);
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
    public_keys::evict_prefix(&prefix);
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
    public_keys::clear();
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
    Ok(env.new_string(public_keys::stats_json())?)
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
    let jwks = public_keys::fetch_jwks(&url, &requested_use);
    telemetry::fetched(&url, &jwks);
    Ok(env.new_string(jwks?)?)
}

const LOG_CATEGORIES: NativeMethod = native_method! {
    static fn log_categories() -> JString[],
    error_policy = ThrowNativeException,
};

/// The log categories of the native side's records.
fn log_categories<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JObjectArray<'local, JString<'local>>> {
    let categories = telemetry::categories();
    let array = JObjectArray::<JString>::new(env, categories.len(), JString::null())?;
    for (index, category) in categories.iter().enumerate() {
        let element = env.new_string(category)?;
        array.set_element(env, index, &element)?;
    }
    Ok(array)
}

const CONFIGURE_LOG_LEVELS: NativeMethod = native_method! {
    static fn configure_log_levels(levels_json: JString),
    error_policy = ThrowNativeException,
};

/// Sets the level each category's records are made at, as Keycloak's logging has them.
fn configure_log_levels<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    levels_json: JString<'local>,
) -> NativeResult<()> {
    let levels_json = levels_json.try_to_string(env)?;
    Ok(telemetry::configure_levels(&levels_json)?)
}

const DRAIN_LOG_RECORDS: NativeMethod = native_method! {
    static fn drain_log_records(wait_millis: jlong) -> JString,
    error_policy = ThrowNativeException,
};

/// The queued log records, waiting up to `waitMillis` (at most 10 s) for the first; blocks only
/// the calling (log) thread.
fn drain_log_records<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    wait_millis: jlong,
) -> NativeResult<JString<'local>> {
    Ok(env.new_string(telemetry::drain_json(wait_millis))?)
}

const WAKE_LOG_DRAIN: NativeMethod = native_method! {
    static fn wake_log_drain(),
    error_policy = ThrowNativeException,
};

/// Ends a waiting `drainLogRecords` at once.
fn wake_log_drain<'local>(_env: &mut Env<'local>, _class: JClass<'local>) -> NativeResult<()> {
    telemetry::wake();
    Ok(())
}

const TELEMETRY_STATS: NativeMethod = native_method! {
    static fn telemetry_stats() -> JString,
    error_policy = ThrowNativeException,
};

/// The counters behind Keycloak's metrics, as JSON.
fn telemetry_stats<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JString<'local>> {
    Ok(env.new_string(telemetry::stats_json())?)
}

const SIGNING_OUTCOMES: NativeMethod = native_method! {
    static fn signing_outcomes() -> JString,
    error_policy = ThrowNativeException,
};

/// The last signing success and failure of each key provider on this node, as JSON.
fn signing_outcomes<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
) -> NativeResult<JString<'local>> {
    Ok(env.new_string(telemetry::outcomes_json())?)
}

const UNKNOWN_KID_NOTE: NativeMethod = native_method! {
    static fn unknown_kid_note(source_key: JString) -> JString,
    error_policy = ThrowNativeException,
};

/// Whether to log a source's unknown kid at WARN (the note to append) or at DEBUG (null).
fn unknown_kid_note<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    source_key: JString<'local>,
) -> NativeResult<JString<'local>> {
    let source_key = source_key.try_to_string(env)?;
    match telemetry::unknown_kid_note(&source_key) {
        Some(note) => Ok(env.new_string(note)?),
        None => Ok(JString::null()),
    }
}
