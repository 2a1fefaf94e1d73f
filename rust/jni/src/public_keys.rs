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
//!
//! Source ids: the answers by key also hand Java the source's id (`KeyCache::get_with_id`),
//! which Java then passes instead of the key — no string crosses on a hit, and the hit takes no
//! lock (`KeyCache::get_by_id`). An id is only a name: every call checks it, and one that names
//! no cached source any more (evicted, idled out) is answered as unknown, never as another
//! source. Ids cross as `long`s with the same 64 bits.

use std::sync::Arc;

use jni::objects::{Global, JLongArray, JObject};
use jni::sys::jlong;
use jni::Env;
use keycloak_aws_kms_core::public_keys::{
    self, KeyCache, KeyUse, Loaded, Permit, ReloadStart, Settings, SourceId, DEFAULT_OPTIONS,
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

/// The fresh cached object of `source`, as a new local reference, or null; writes the source's
/// id (0: not cached) to `id_out[0]`.
pub fn get<'local>(
    env: &mut Env<'local>,
    source: &str,
    id_out: &JLongArray<'_>,
) -> Result<JObject<'local>, BridgeError> {
    if id_out.is_null() {
        return Err(BridgeError::Jni(jni::errors::Error::NullPtr("sourceId")));
    }
    let (answer, id) = CACHE.get_with_id(source);
    id_out.set_region(env, 0, &[raw_id(id)])?;
    local(env, answer)
}

/// The hit path: the fresh cached object of the source `id` names, as a new local reference,
/// or null (not fresh, or no cached source has this id).
pub fn get_by_id<'local>(env: &mut Env<'local>, id: jlong) -> Result<JObject<'local>, BridgeError> {
    let id = SourceId::from_raw(u64::from_ne_bytes(id.to_ne_bytes()));
    match CACHE.get_by_id(id, |held| env.new_local_ref(held.as_ref())) {
        Some(local) => Ok(local?),
        None => Ok(JObject::null()),
    }
}

/// Begins a reload: writes the permit (or 0) to `out[0]` and, when `out` has room, the source's
/// id to `out[1]`; returns the answer, or null when this caller leads (and must complete or
/// fail the permit).
pub fn reload<'local>(
    env: &mut Env<'local>,
    source: &str,
    out: &JLongArray<'_>,
) -> Result<JObject<'local>, BridgeError> {
    let with_id = clear_reload_out(env, out)?;
    let start = CACHE.begin_reload_with_id(source)?;
    answer_reload(env, out, with_id, start)
}

/// [`reload`] for the source `id` names. When no cached source has this id, writes 0 to both
/// `out[0]` and `out[1]` and returns null: the caller asks again by key.
pub fn reload_by_id<'local>(
    env: &mut Env<'local>,
    id: jlong,
    out: &JLongArray<'_>,
) -> Result<JObject<'local>, BridgeError> {
    let with_id = clear_reload_out(env, out)?;
    let id = SourceId::from_raw(u64::from_ne_bytes(id.to_ne_bytes()));
    match CACHE.begin_reload_by_id(id)? {
        Some(start) => answer_reload(env, out, with_id, start),
        None => Ok(JObject::null()),
    }
}

/// Zeroes the out array before asking, so that a missing or too-short array fails before a
/// permit exists; returns whether it has room for the id.
fn clear_reload_out(env: &mut Env<'_>, out: &JLongArray<'_>) -> Result<bool, BridgeError> {
    if out.is_null() {
        return Err(BridgeError::Jni(jni::errors::Error::NullPtr("permit")));
    }
    out.set_region(env, 0, &[0])?;
    let with_id = out.len(env)? >= 2;
    if with_id {
        out.set_region(env, 1, &[0])?;
    }
    Ok(with_id)
}

fn answer_reload<'local>(
    env: &mut Env<'local>,
    out: &JLongArray<'_>,
    with_id: bool,
    (start, id): (ReloadStart<CachedObject>, Option<SourceId>),
) -> Result<JObject<'local>, BridgeError> {
    if with_id {
        if let Err(error) = out.set_region(env, 1, &[raw_id(id)]) {
            if let ReloadStart::Lead(permit) = start {
                let _ = CACHE.complete(
                    permit,
                    Err(Error::new(ErrorKind::Internal, "source id not handed over")),
                );
            }
            return Err(error.into());
        }
    }
    match start {
        ReloadStart::Answer(answer) => local(env, answer),
        ReloadStart::Lead(permit) => {
            let raw = jlong::try_from(permit.to_raw())
                .map_err(|_| Error::new(ErrorKind::Internal, "permit overflow"))
                .and_then(|raw| {
                    out.set_region(env, 0, &[raw]).map_err(|e| {
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

fn raw_id(id: Option<SourceId>) -> jlong {
    id.map_or(0, |id| jlong::from_ne_bytes(id.to_raw().to_ne_bytes()))
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
