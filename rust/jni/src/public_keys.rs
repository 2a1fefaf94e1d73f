//! The public key cache as Java sees it: the core's [`KeyCache`] holding global references to
//! ready `CachedPublicKeys` objects, so a hit hands back the very object Java built once (no
//! parsing, no `KeyWrapper` rebuilt).
//!
//! Lifecycle of a held object — the one mechanism by which Rust holds Java objects: a global
//! reference is created when the leader of a load completes its permit, shared (`Arc`) by the
//! cache and any caller being answered, and deleted when the last holder drops it (eviction,
//! replacement by a newer load, `clear`). Callers get fresh local references.
//!
//! Loads run in Java: a reload either answers, or hands the caller a permit to load with and
//! to complete or fail (see `KeyCache::begin_reload`). Rust never calls Java code here.

use std::sync::Arc;

use jni::objects::{Global, JLongArray, JObject};
use jni::sys::jlong;
use jni::Env;
use keycloak_aws_kms_core::public_keys::{
    self, KeyCache, KeyUse, Loaded, Permit, ReloadStart, Settings, DEFAULT_OPTIONS,
};
use keycloak_aws_kms_core::{Error, ErrorKind};
use once_cell::sync::Lazy;

use crate::policy::BridgeError;

type CachedObject = Arc<Global<JObject<'static>>>;

/// The one cache of the process; the default options apply until Java configures it.
static CACHE: Lazy<KeyCache<CachedObject>> = Lazy::new(|| KeyCache::new(Default::default()));

/// A loader's failure is for logs; a runaway message should not flood them.
const MAX_REASON_CHARS: usize = 500;

/// Applies `publicKeyCacheConfigure`'s JSON to the cache and the JWKS client.
pub fn configure(options_json: &str) -> Result<(), BridgeError> {
    let settings = Settings::from_json(options_json)?;
    // The download settings first: if they are refused, nothing changes.
    public_keys::fetch::configure(settings.fetch)?;
    CACHE.configure(settings.cache);
    Ok(())
}

/// The JSON of `publicKeyCacheDefaults`.
pub fn defaults_json() -> String {
    DEFAULT_OPTIONS.to_json()
}

/// The fresh cached object of `source`, as a new local reference, or null.
pub fn get<'local>(env: &mut Env<'local>, source: &str) -> Result<JObject<'local>, BridgeError> {
    local(env, CACHE.get(source))
}

/// Begins a reload: writes the permit (or 0) to `permit_out[0]`; returns the answer, or null
/// when this caller leads (and must complete or fail the permit).
pub fn reload<'local>(
    env: &mut Env<'local>,
    source: &str,
    permit_out: &JLongArray<'_>,
) -> Result<JObject<'local>, BridgeError> {
    if permit_out.is_null() {
        return Err(BridgeError::Jni(jni::errors::Error::NullPtr("permit")));
    }
    // Written before asking, so that a too-short array fails before a permit exists.
    permit_out.set_region(env, 0, &[0])?;
    match CACHE.begin_reload(source)? {
        ReloadStart::Answer(answer) => local(env, answer),
        ReloadStart::Lead(permit) => {
            let raw = jlong::try_from(permit.to_raw())
                .map_err(|_| Error::new(ErrorKind::Internal, "permit overflow"))
                .and_then(|raw| {
                    permit_out.set_region(env, 0, &[raw]).map_err(|e| {
                        Error::new(ErrorKind::Internal, format!("permit not handed over: {e}"))
                    })
                });
            if let Err(error) = raw {
                let _ = CACHE.complete(permit, Err(error.clone()));
                return Err(error.into());
            }
            Ok(JObject::null())
        }
    }
}

/// Completes a permit with the keys the leader loaded; returns the keys to use.
pub fn complete<'local>(
    env: &mut Env<'local>,
    permit: jlong,
    keys: &JObject<'_>,
    expires_at_epoch_millis: jlong,
) -> Result<JObject<'local>, BridgeError> {
    let permit = permit_of(permit)?;
    if keys.is_null() {
        let refused = Error::new(
            ErrorKind::InvalidArgument,
            "A load was completed without keys",
        );
        let _ = CACHE.complete(permit, Err(refused.clone()));
        return Err(refused.into());
    }
    let global = match env.new_global_ref(keys) {
        Ok(global) => global,
        Err(error) => {
            let _ = CACHE.complete(
                permit,
                Err(Error::new(
                    ErrorKind::Internal,
                    "the keys could not be kept",
                )),
            );
            return Err(error.into());
        }
    };
    let answer = CACHE.complete(
        permit,
        Ok(Loaded {
            value: Arc::new(global),
            // 0 (or a nonsensical negative value) means the source set no expiry.
            expires_at_epoch_millis: u64::try_from(expires_at_epoch_millis)
                .ok()
                .filter(|millis| *millis > 0),
        }),
    )?;
    local(env, answer)
}

/// Fails a permit; returns the last usable keys, or fails with the reason.
pub fn fail<'local>(
    env: &mut Env<'local>,
    permit: jlong,
    reason: &str,
) -> Result<JObject<'local>, BridgeError> {
    let permit = permit_of(permit)?;
    let answer = CACHE.complete(
        permit,
        Err(Error::new(
            ErrorKind::PublicKeysUnavailable,
            bounded(reason),
        )),
    )?;
    local(env, answer)
}

fn permit_of(raw: jlong) -> Result<Permit, BridgeError> {
    match u64::try_from(raw) {
        Ok(raw) if raw != 0 => Ok(Permit::from_raw(raw)),
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{raw} is not a load permit"),
        )
        .into()),
    }
}

fn bounded(text: &str) -> String {
    if text.chars().count() > MAX_REASON_CHARS {
        let mut shortened: String = text.chars().take(MAX_REASON_CHARS).collect();
        shortened.push('…');
        shortened
    } else {
        text.to_owned()
    }
}

/// A new local reference to a held object, or null.
fn local<'local>(
    env: &mut Env<'local>,
    held: Option<CachedObject>,
) -> Result<JObject<'local>, BridgeError> {
    match held {
        Some(held) => Ok(env.new_local_ref(held.as_ref())?),
        None => Ok(JObject::null()),
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
