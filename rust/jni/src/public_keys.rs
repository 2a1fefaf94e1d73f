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

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use jni::objects::{JLongArray, JObject};
use jni::refs::Reference;
use jni::sys::jlong;
use jni::{Env, EnvUnowned};
use keycloak_aws_kms_core::public_keys::{
    self, KeyCache, KeyUse, Loaded, Permit, ReloadStart, Settings, SourceId, DEFAULT_OPTIONS,
};
use keycloak_aws_kms_core::{Error, ErrorKind};
use once_cell::sync::Lazy;

use crate::held_refs::HeldRef;
use crate::policy::{BridgeError, ThrowNativeException};

type CachedObject = Arc<HeldRef>;

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
    out_len(env, id_out, "sourceId")?;
    let (answer, id) = CACHE.get_with_id(source);
    id_out.set_region(env, 0, &[raw_id(id)])?;
    local(env, answer)
}

/// The hit path (`publicKeyCacheGetById`): the fresh cached object of the source `id` names, as
/// a new local reference, or null (not fresh, or no cached source has this id).
///
/// It runs without an [`Env`] — `jni`'s guards cost more than the lookup itself — and makes one
/// JNI call, `NewLocalRef`, through the function table ([`raw`]). Nothing on it can fail but a
/// panic, which goes through the one policy all the same ([`rethrow`]). Should the JVM have no
/// room for the local reference, `NewLocalRef` leaves an `OutOfMemoryError` pending and this
/// returns null: Java then throws that error.
pub fn get_by_id<'local>(mut unowned: EnvUnowned<'local>, id: jlong) -> JObject<'local> {
    let env = unowned.as_raw();
    let id = source_id(id);
    let hit = panic::catch_unwind(AssertUnwindSafe(|| {
        CACHE.get_by_id(id, |held| {
            // SAFETY: `env` is the JNIEnv this native was called with (this thread, this frame),
            // no exception is pending (Java just called in, and nothing here throws), and `held`
            // is a live global reference: the cache's entry that holds it is kept by the guard
            // `get_by_id` reads it under.
            unsafe { raw::new_local_ref(env, held.global().as_raw()) }
        })
    }));
    match hit {
        Ok(Some(local)) => {
            // SAFETY: a local reference of this native's frame, just made, owned by nothing else.
            unsafe { <JObject as Reference>::kind_from_raw(local) }
        }
        Ok(None) => JObject::null(),
        Err(payload) => rethrow(&mut unowned, payload),
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
    // Checked before asking, so that an unusable array fails before a permit exists.
    let len = out_len(env, out, "permit")?;
    let (start, id) = CACHE.begin_reload_with_id(source)?;
    // SAFETY: `env.get_raw()` is this native's JNIEnv, no exception is pending (every `jni`
    // call above succeeded), and `out` is a live `long[]` of `len` elements.
    let answer = unsafe { answer_reload(env.get_raw(), out, len, start, id)? };
    // SAFETY: a local reference of this native's frame, just made, owned by nothing else.
    Ok(unsafe { <JObject as Reference>::kind_from_raw(answer) })
}

/// [`reload`] for the source `id` names (`publicKeyCacheReloadById`, the unknown-kid path).
/// When no cached source has this id, writes 0 to both `out[0]` and `out[1]` and returns null:
/// the caller asks again by key.
///
/// Like [`get_by_id`], it runs without an [`Env`] and makes at most three JNI calls
/// (`GetArrayLength`, one `SetLongArrayRegion`, `NewLocalRef`); a throttled reload takes no
/// lock either (`KeyCache::begin_reload_by_id`). Errors and panics go through the one policy
/// ([`fail_call`], [`rethrow`]).
pub fn reload_by_id<'local>(
    mut unowned: EnvUnowned<'local>,
    id: jlong,
    out: &JLongArray<'local>,
) -> JObject<'local> {
    let env = unowned.as_raw();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        if out.is_null() {
            return Err(null_array("permit"));
        }
        // SAFETY: `env` is this native's JNIEnv, no exception is pending (Java just called in),
        // and `out` is a live, non-null `long[]` (the declared parameter type).
        let len = unsafe { raw::array_length(env, out.as_raw()) };
        let len = usable_len(len, "permit")?;
        let Some((start, id)) = CACHE.begin_reload_by_id(source_id(id))? else {
            // SAFETY: as above; `len` is the array's length.
            unsafe { raw::set_long_region(env, out.as_raw(), &[0, 0][..len.min(2)]) };
            return Ok(std::ptr::null_mut());
        };
        // SAFETY: as above.
        unsafe { answer_reload(env, out, len, start, id) }
    }));
    match outcome {
        // SAFETY: a local reference of this native's frame (or null), owned by nothing else.
        Ok(Ok(answer)) => unsafe { <JObject as Reference>::kind_from_raw(answer) },
        Ok(Err(error)) => fail_call(&mut unowned, error),
        Err(payload) => rethrow(&mut unowned, payload),
    }
}

/// Writes the reload's outcome to `out` in one JNI call — `[permit or 0, id]`, as much of it as
/// `out` has room for — and returns the answer as a new local reference (null when leading, or
/// throttled with nothing usable). A permit that cannot be handed over is failed at once, so
/// that its followers do not wait for a load nobody runs.
///
/// # Safety
///
/// `env` is the current native call's JNIEnv with no exception pending, and `out` a live
/// `long[]` of `len` (≥ 1) elements.
unsafe fn answer_reload(
    env: *mut jni::sys::JNIEnv,
    out: &JLongArray<'_>,
    len: usize,
    start: ReloadStart<CachedObject>,
    id: Option<SourceId>,
) -> Result<jni::sys::jobject, BridgeError> {
    let (permit, answer) = match start {
        ReloadStart::Answer(answer) => (0, answer),
        ReloadStart::Lead(permit) => match jlong::try_from(permit.to_raw()) {
            Ok(raw) => (raw, None),
            Err(_) => {
                let overflow = Error::new(ErrorKind::Internal, "permit overflow");
                let _ = CACHE.complete(permit, Err(overflow.clone()));
                return Err(overflow.into());
            }
        },
    };
    let written = [permit, raw_id(id)];
    // SAFETY: the caller's contract; the region is within the array's `len` elements.
    unsafe { raw::set_long_region(env, out.as_raw(), &written[..len.min(2)]) };
    match answer {
        // SAFETY: the caller's contract; `held` is a live global reference, kept by `answer`.
        Some(held) => Ok(unsafe { raw::new_local_ref(env, held.global().as_raw()) }),
        None => Ok(std::ptr::null_mut()),
    }
}

/// The length of an out array Java passed, which must hold at least one element.
fn out_len(env: &Env<'_>, out: &JLongArray<'_>, what: &'static str) -> Result<usize, BridgeError> {
    if out.is_null() {
        return Err(null_array(what));
    }
    usable_len(out.len(env)?, what)
}

fn usable_len(len: impl TryInto<usize>, what: &str) -> Result<usize, BridgeError> {
    match len.try_into() {
        Ok(len) if len >= 1 => Ok(len),
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("The {what} array has no element to write the answer to"),
        )
        .into()),
    }
}

fn null_array(what: &'static str) -> BridgeError {
    BridgeError::Jni(jni::errors::Error::NullPtr(what))
}

fn source_id(raw: jlong) -> SourceId {
    SourceId::from_raw(u64::from_ne_bytes(raw.to_ne_bytes()))
}

fn raw_id(id: Option<SourceId>) -> jlong {
    id.map_or(0, |id| jlong::from_ne_bytes(id.to_raw().to_ne_bytes()))
}

/// A panic caught on a path that runs without an [`Env`], handed to the one policy (it becomes
/// a `NativeException` with code `PANIC`), as if it had happened inside `with_env`.
fn rethrow<T: Default>(unowned: &mut EnvUnowned<'_>, payload: Box<dyn Any + Send>) -> T {
    unowned
        .with_env(|_env| -> Result<T, BridgeError> { panic::resume_unwind(payload) })
        .resolve::<ThrowNativeException>()
}

/// An error on a path that runs without an [`Env`], thrown through the one policy.
fn fail_call<T: Default>(unowned: &mut EnvUnowned<'_>, error: BridgeError) -> T {
    unowned
        .with_env(|_env| -> Result<T, BridgeError> { Err(error) })
        .resolve::<ThrowNativeException>()
}

/// The three JNI functions the hot paths call without an [`Env`]: through the function table,
/// without `jni`'s per-call checks (a pending exception, the top frame), which these paths
/// guarantee by construction. Nothing else in the crate calls JNI this way.
mod raw {
    use jni::sys::{jlong, jobject, jsize, JNIEnv};

    /// `NewLocalRef(object)`: null only when the JVM is out of memory (an `OutOfMemoryError` is
    /// then pending).
    ///
    /// # Safety
    ///
    /// `env` is the current thread's JNIEnv inside a native call, with no exception pending;
    /// `object` is a live reference.
    pub(super) unsafe fn new_local_ref(env: *mut JNIEnv, object: jobject) -> jobject {
        // SAFETY: the caller's contract; a JNIEnv points to the JVM's function table, which has
        // `NewLocalRef` from JNI 1.2 on (the library asks for 1.8 when it loads).
        unsafe { ((**env).v1_2.NewLocalRef)(env, object) }
    }

    /// `GetArrayLength(array)`.
    ///
    /// # Safety
    ///
    /// As [`new_local_ref`]; `array` is a live, non-null array reference.
    pub(super) unsafe fn array_length(env: *mut JNIEnv, array: jobject) -> jsize {
        // SAFETY: the caller's contract; `GetArrayLength` is in every JNI version.
        unsafe { ((**env).v1_1.GetArrayLength)(env, array) }
    }

    /// `SetLongArrayRegion(array, 0, values)`.
    ///
    /// # Safety
    ///
    /// As [`new_local_ref`]; `array` is a live, non-null `long[]` with at least `values.len()`
    /// elements (then the call throws nothing).
    pub(super) unsafe fn set_long_region(env: *mut JNIEnv, array: jobject, values: &[jlong]) {
        let len = jsize::try_from(values.len()).unwrap_or(0);
        // SAFETY: the caller's contract; `SetLongArrayRegion` is in every JNI version and reads
        // `len` elements from `values`.
        unsafe { ((**env).v1_1.SetLongArrayRegion)(env, array, 0, len, values.as_ptr()) }
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
            value: Arc::new(HeldRef::new(global)),
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
        Some(held) => Ok(env.new_local_ref(held.global())?),
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
