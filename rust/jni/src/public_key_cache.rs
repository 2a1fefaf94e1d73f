//! The public key cache as Java sees it: the core's [`KeyCache`] holding global references to
//! ready `dev.awskms.keycloak.CachedPublicKeys` objects, so a hit hands back the very object
//! Java built once (no parsing, no `KeyWrapper` rebuilt).
//!
//! Lifecycle of a held object: a global reference is created when a loader's result is stored,
//! shared (`Arc`) by the cache and any caller being answered, and deleted when the last holder
//! drops it (eviction, replacement by a newer load, `clear`). Callers get fresh local references.
//!
//! Loaders run on the calling Java thread through `NativeKeyLoader.load()`; a Java exception
//! they throw is caught and cleared here and becomes the load failure, so no exception is left
//! pending when the native returns or throws its own.

use std::sync::Arc;

use jni::objects::{Global, JObject, JThrowable};
use jni::{jni_sig, jni_str, Env};
use kms_keycloak_core::public_keys::{self, KeyCache, KeyUse, Loaded, Settings};
use kms_keycloak_core::{Error, ErrorKind};
use once_cell::sync::Lazy;

use crate::policy::BridgeError;

type CachedObject = Arc<Global<JObject<'static>>>;

/// The one cache of the process; the documented defaults apply until Java configures it.
static CACHE: Lazy<KeyCache<CachedObject>> = Lazy::new(|| KeyCache::new(Default::default()));

/// Java's messages are for logs; a runaway one should not flood them.
const MAX_LOADER_MESSAGE_CHARS: usize = 500;

/// Applies `publicKeyCacheConfigure`'s JSON to the cache and the JWKS client.
pub fn configure(policy_json: &str) -> Result<(), BridgeError> {
    let settings = Settings::from_json(policy_json)?;
    // The download settings first: if they are refused, nothing changes.
    public_keys::fetch::configure(settings.fetch)?;
    CACHE.configure(settings.cache);
    Ok(())
}

/// The fresh cached object of `source`, as a new local reference, or null.
pub fn get<'local>(env: &mut Env<'local>, source: &str) -> Result<JObject<'local>, BridgeError> {
    match CACHE.get(source) {
        Some(cached) => Ok(env.new_local_ref(cached.as_ref())?),
        None => Ok(JObject::null()),
    }
}

/// Reloads `source` under the cache policy, calling `loader.load()` on this thread if this caller
/// leads the load.
pub fn reload<'local>(
    env: &mut Env<'local>,
    source: &str,
    loader: &JObject<'_>,
) -> Result<JObject<'local>, BridgeError> {
    if loader.is_null() {
        return Err(BridgeError::Jni(jni::errors::Error::NullPtr("loader")));
    }
    let answer = CACHE.reload(source, || load_through_java(env, loader))?;
    match answer {
        Some(cached) => Ok(env.new_local_ref(cached.as_ref())?),
        None => Ok(JObject::null()),
    }
}

/// Calls `NativeKeyLoader.load()` and keeps its `CachedPublicKeys` as a global reference.
fn load_through_java(
    env: &mut Env<'_>,
    loader: &JObject<'_>,
) -> Result<Loaded<CachedObject>, Error> {
    let loaded = env.call_method(
        loader,
        jni_str!("load"),
        jni_sig!("()Ldev/awskms/keycloak/CachedPublicKeys;"),
        &[],
    );
    let loaded = match loaded.and_then(|value| value.l()) {
        Ok(object) => object,
        Err(error) => return Err(loader_failure(env, &error)),
    };
    if loaded.is_null() {
        return Err(Error::new(
            ErrorKind::PublicKeysUnavailable,
            "the key loader returned null",
        ));
    }
    let expires_at = env
        .call_method(
            &loaded,
            jni_str!("expiresAtEpochMillis"),
            jni_sig!("()J"),
            &[],
        )
        .and_then(|value| value.j());
    let expires_at = match expires_at {
        Ok(millis) => millis,
        Err(error) => return Err(loader_failure(env, &error)),
    };
    let global = env
        .new_global_ref(&loaded)
        .map_err(|error| loader_failure(env, &error))?;
    Ok(Loaded {
        value: Arc::new(global),
        // 0 (or a nonsensical negative value) means the source set no expiry.
        expires_at_epoch_millis: u64::try_from(expires_at).ok().filter(|millis| *millis > 0),
    })
}

/// Turns a failed JNI call into the load failure, taking any pending Java exception off the
/// thread first: only ExceptionOccurred and ExceptionClear are legal while one is pending.
fn loader_failure(env: &mut Env<'_>, error: &jni::errors::Error) -> Error {
    let description = match env.exception_occurred() {
        Some(throwable) => {
            env.exception_clear();
            describe_throwable(env, &throwable)
        }
        None => format!("the key loader could not be called: {error}"),
    };
    Error::new(ErrorKind::PublicKeysUnavailable, description)
}

/// `ClassName: message` of a throwable that is no longer pending; anything that fails while
/// asking (a `getMessage` that throws) is cleared and left out.
fn describe_throwable(env: &mut Env<'_>, throwable: &JThrowable<'_>) -> String {
    let class_name = env
        .get_object_class(throwable)
        .and_then(|class| class.get_name(env))
        .and_then(|name| name.try_to_string(env));
    let message = throwable.get_message(env).and_then(|message| {
        if message.is_null() {
            Ok(None)
        } else {
            message.try_to_string(env).map(Some)
        }
    });
    if env.exception_check() {
        env.exception_clear();
    }
    let class_name = class_name.unwrap_or_else(|_| "a Java exception".to_owned());
    let text = match message {
        Ok(Some(message)) => format!("{class_name}: {message}"),
        _ => class_name,
    };
    if text.chars().count() > MAX_LOADER_MESSAGE_CHARS {
        let mut shortened: String = text.chars().take(MAX_LOADER_MESSAGE_CHARS).collect();
        shortened.push('…');
        shortened
    } else {
        text
    }
}

pub fn evict(source: &str) {
    CACHE.evict(source);
}

pub fn evict_prefix(prefix: &str) {
    CACHE.evict_prefix(prefix);
}

pub fn clear() {
    CACHE.clear();
}

pub fn stats_json() -> String {
    CACHE.stats().to_json()
}

/// Downloads and parses a JWKS; the JSON of `fetchJwks`.
pub fn fetch_jwks(url: &str, requested_use: &str) -> Result<String, BridgeError> {
    let requested_use = KeyUse::parse(requested_use)?;
    Ok(public_keys::fetch::fetch_jwks(url, requested_use)?.to_json())
}
