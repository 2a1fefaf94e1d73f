//! The public key cache: one entry per key source (a client's or identity provider's model key),
//! holding the whole key set that source last produced.
//!
//! Policy, in the words of the callers:
//! - [`KeyCache::get`] answers only with fresh keys: not past the source's own expiry, not older
//!   than the max age, not idle for longer than the max idle time.
//! - [`KeyCache::reload`] loads at most once per source per window. The window starts at each
//!   *attempt*, so a failing source is throttled like a working one and a flood of unknown kids
//!   costs one download per window; the first reload after the window is always let through, so
//!   a real rotation is picked up on its first use after it. Nobody waits for the window: a
//!   throttled caller gets the current keys (or none) at once.
//! - Concurrent reloads of one source share one load: the first caller leads — it gets a
//!   [`Permit`], loads, and reports the outcome with [`KeyCache::complete`] — and the others
//!   wait for that outcome, at most the follower wait after the load began. A permit not
//!   completed within that bound expires: its followers are answered as for a failed load, and
//!   the source's next reload after the window may lead again. The cache never runs a loader
//!   itself, so the JNI crate never calls back into Java.
//! - When a load fails, the last good keys keep serving until the stale-on-error limit past the
//!   moment they stopped being fresh; after that the failure reaches the caller.
//!
//! The global lock is never held while a loader runs, and the LRU bound counts sources.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lru::LruCache;

use crate::error::{Error, ErrorKind, Result};

/// The limits of the cache, made from the server options ([`super::settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// At most one load attempt per source within this time (Keycloak's
    /// `minTimeBetweenRequests`). Zero turns throttling off.
    pub min_time_between_requests: Duration,
    /// Sources kept; the least recently used goes first.
    pub max_entries: NonZeroUsize,
    /// A source not used for this long is dropped.
    pub max_idle: Duration,
    /// Keys older than this are not fresh, whatever the source said.
    pub max_age: Duration,
    /// How long past the end of their freshness the last good keys still serve when loads fail.
    pub stale_on_error: Duration,
    /// How long a caller waits for another caller's load of the same source.
    pub follower_wait: Duration,
}

impl Default for CachePolicy {
    /// The policy of the default options ([`super::settings::DEFAULT_OPTIONS`]).
    fn default() -> Self {
        super::Settings::default().cache
    }
}

/// Time as the cache sees it; injectable so that tests control it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic time since an arbitrary origin: windows, ages and idle times.
    fn elapsed(&self) -> Duration;
    /// Wall-clock milliseconds since the Unix epoch: only to place a source's own expiry.
    fn epoch_millis(&self) -> u64;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    fn epoch_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to, for tests. Wall-clock time starts at `epoch_start`.
#[derive(Debug)]
pub struct ManualClock {
    elapsed: Mutex<Duration>,
    epoch_start_millis: u64,
}

impl ManualClock {
    pub fn new(epoch_start_millis: u64) -> Self {
        ManualClock {
            elapsed: Mutex::new(Duration::ZERO),
            epoch_start_millis,
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut elapsed = self.elapsed.lock().unwrap_or_else(PoisonError::into_inner);
        *elapsed = elapsed.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn epoch_millis(&self) -> u64 {
        let elapsed = u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.epoch_start_millis.saturating_add(elapsed)
    }
}

/// What a loader produces: the value to cache and the source's own expiry, if it has one
/// (e.g. SAML metadata `validUntil`), in epoch milliseconds.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub value: T,
    pub expires_at_epoch_millis: Option<u64>,
}

/// Counters since the cache was created, and the current number of sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub entries: u64,
    /// `get` answered with fresh keys.
    pub hits: u64,
    /// `get` found nothing fresh.
    pub misses: u64,
    /// Loads started (one per leading reload).
    pub loads: u64,
    /// Loads that failed.
    pub load_failures: u64,
    /// Reloads refused by the window.
    pub throttled: u64,
    /// Reloads that joined another caller's load instead of starting one.
    pub coalesced: u64,
    /// Answers with keys that were not fresh, or the previous keys after a failed or unfinished
    /// load.
    pub stale_served: u64,
}

impl CacheStats {
    /// The JSON of `publicKeyCacheStats`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "entries": self.entries,
            "hits": self.hits,
            "misses": self.misses,
            "loads": self.loads,
            "loadFailures": self.load_failures,
            "throttled": self.throttled,
            "coalesced": self.coalesced,
            "staleServed": self.stale_served,
        })
        .to_string()
    }
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    load_failures: AtomicU64,
    throttled: AtomicU64,
    coalesced: AtomicU64,
    stale_served: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The last good keys of a source, with times on the monotonic clock.
struct Good<T> {
    value: T,
    loaded_at: Duration,
    /// The source's own expiry, if any.
    expires_at: Option<Duration>,
}

impl<T> Good<T> {
    fn fresh_until(&self, policy: &CachePolicy) -> Duration {
        let by_age = self.loaded_at.saturating_add(policy.max_age);
        match self.expires_at {
            Some(expires_at) => by_age.min(expires_at),
            None => by_age,
        }
    }

    fn is_fresh(&self, now: Duration, policy: &CachePolicy) -> bool {
        now <= self.fresh_until(policy)
    }

    /// Fresh, or stale by no more than the stale-on-error limit.
    fn is_usable(&self, now: Duration, policy: &CachePolicy) -> bool {
        now <= self
            .fresh_until(policy)
            .saturating_add(policy.stale_on_error)
    }
}

/// The leader's right to load one source and its duty to report the outcome, as an opaque
/// number (never 0) that can cross JNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permit(u64);

impl Permit {
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// A permit as Java handed it back; an unknown or expired one is answered, not trusted.
    pub fn from_raw(raw: u64) -> Self {
        Permit(raw)
    }
}

/// What [`KeyCache::begin_reload`] tells its caller.
#[derive(Debug)]
pub enum ReloadStart<T> {
    /// Use these keys (fresh, current, a joined load's, or stale-on-error); `None` when the
    /// window refused a load and nothing usable is cached.
    Answer(Option<T>),
    /// Load the keys now and report with [`KeyCache::complete`], also when loading fails.
    Lead(Permit),
}

/// One load in progress, shared by the caller running it and the callers waiting for it.
struct Flight<T> {
    leader: ThreadId,
    /// On the monotonic clock; the flight expires `follower_wait` later.
    started: Duration,
    outcome: Mutex<Option<Result<Option<T>>>>,
    finished: Condvar,
}

impl<T: Clone> Flight<T> {
    fn new(started: Duration) -> Self {
        Flight {
            leader: thread::current().id(),
            started,
            outcome: Mutex::new(None),
            finished: Condvar::new(),
        }
    }

    fn expires_at(&self, policy: &CachePolicy) -> Duration {
        self.started.saturating_add(policy.follower_wait)
    }

    fn finish(&self, outcome: &Result<Option<T>>) {
        *lock(&self.outcome) = Some(outcome.clone());
        self.finished.notify_all();
    }

    /// The leader's outcome, or `None` if it did not finish within `wait`.
    fn wait(&self, wait: Duration) -> Option<Result<Option<T>>> {
        let guard = lock(&self.outcome);
        let (guard, _) = self
            .finished
            .wait_timeout_while(guard, wait, |outcome| outcome.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        guard.clone()
    }
}

struct Source<T> {
    good: Option<Good<T>>,
    last_used: Duration,
    last_attempt: Option<Duration>,
    flight: Option<Arc<Flight<T>>>,
}

impl<T: Clone> Source<T> {
    fn new(now: Duration) -> Self {
        Source {
            good: None,
            last_used: now,
            last_attempt: None,
            flight: None,
        }
    }

    /// Unused for longer than the max idle time, and not being loaded.
    fn is_idle(&self, now: Duration, policy: &CachePolicy) -> bool {
        self.flight.is_none() && now.saturating_sub(self.last_used) > policy.max_idle
    }

    fn fresh_value(&self, now: Duration, policy: &CachePolicy) -> Option<T> {
        self.good
            .as_ref()
            .filter(|good| good.is_fresh(now, policy))
            .map(|good| good.value.clone())
    }

    /// The last good keys if still usable, and whether they are fresh.
    fn usable_value(&self, now: Duration, policy: &CachePolicy) -> Option<(T, bool)> {
        self.good
            .as_ref()
            .filter(|good| good.is_usable(now, policy))
            .map(|good| (good.value.clone(), good.is_fresh(now, policy)))
    }
}

struct Inner<T> {
    policy: CachePolicy,
    sources: LruCache<String, Source<T>>,
    /// Loads in progress by permit, with their source: a source evicted meanwhile still has its
    /// flight here until the permit is completed or expires.
    flights: HashMap<Permit, (String, Arc<Flight<T>>)>,
    next_permit: u64,
}

impl<T: Clone> Inner<T> {
    /// Drops flights whose permit expired, answering their followers as for a failed load.
    fn expire_flights(&mut self, now: Duration) {
        let policy = self.policy;
        let expired: Vec<Permit> = self
            .flights
            .iter()
            .filter(|(_, (_, flight))| now > flight.expires_at(&policy))
            .map(|(permit, _)| *permit)
            .collect();
        for permit in expired {
            if let Some((source, flight)) = self.flights.remove(&permit) {
                if let Some(entry) = self.sources.peek_mut(&source) {
                    if entry
                        .flight
                        .as_ref()
                        .is_some_and(|current| Arc::ptr_eq(current, &flight))
                    {
                        entry.flight = None;
                    }
                }
                flight.finish(&Err(unavailable(
                    &source,
                    &format!(
                        "the load did not finish within {} ms",
                        policy.follower_wait.as_millis()
                    ),
                )));
            }
        }
    }
}

/// The cache; see the module documentation for its policy. `T` is cloned on every answer, so it
/// should be cheap to clone (the JNI crate uses an `Arc`).
pub struct KeyCache<T> {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner<T>>,
    counters: Counters,
}

impl<T> fmt::Debug for KeyCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("clock", &self.clock)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    // No code panics while holding these locks; if one ever did, its data is still consistent
    // field by field, so carry on rather than fail every later call.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Clone + Send + Sync> KeyCache<T> {
    pub fn new(policy: CachePolicy) -> Self {
        Self::with_clock(policy, Arc::new(SystemClock::default()))
    }

    pub fn with_clock(policy: CachePolicy, clock: Arc<dyn Clock>) -> Self {
        KeyCache {
            clock,
            inner: Mutex::new(Inner {
                policy,
                sources: LruCache::new(policy.max_entries),
                flights: HashMap::new(),
                // 0 is what a failed native call returns to Java, so it never names a permit.
                next_permit: 1,
            }),
            counters: Counters::default(),
        }
    }

    /// Replaces the policy. Cached keys stay; a smaller bound drops the least recently used.
    pub fn configure(&self, policy: CachePolicy) {
        let mut inner = lock(&self.inner);
        inner.policy = policy;
        inner.sources.resize(policy.max_entries);
    }

    pub fn policy(&self) -> CachePolicy {
        lock(&self.inner).policy
    }

    /// The source's keys if they are fresh. Counts as a use of the source.
    pub fn get(&self, source: &str) -> Option<T> {
        let now = self.clock.elapsed();
        let mut inner = lock(&self.inner);
        let policy = inner.policy;
        let answer = match inner.sources.get_mut(source) {
            Some(entry) if entry.is_idle(now, &policy) => {
                inner.sources.pop(source);
                None
            }
            Some(entry) => {
                entry.last_used = now;
                entry.fresh_value(now, &policy)
            }
            None => None,
        };
        drop(inner);
        count(if answer.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        });
        answer
    }

    /// Asks to reload the source's keys under the window, single-flight and stale-on-error
    /// rules (see the module documentation): either answers at once (throttled, or after
    /// waiting for another caller's load) or makes this caller the leader.
    ///
    /// Fails with [`ErrorKind::PublicKeysUnavailable`] when a joined load failed (or did not
    /// finish in time) and nothing usable is cached.
    pub fn begin_reload(&self, source: &str) -> Result<ReloadStart<T>> {
        let now = self.clock.elapsed();
        let mut inner = lock(&self.inner);
        inner.expire_flights(now);
        let policy = inner.policy;
        if inner
            .sources
            .peek(source)
            .is_some_and(|entry| entry.is_idle(now, &policy))
        {
            // Unused for so long that its keys and window no longer say anything.
            inner.sources.pop(source);
        }
        let entry = inner
            .sources
            .get_or_insert_mut(source.to_owned(), || Source::new(now));
        entry.last_used = now;

        if let Some(flight) = entry.flight.clone() {
            if flight.leader == thread::current().id() {
                // The leader asked for this source again while loading it (a loader that looks
                // keys up); waiting would wait for itself.
                let answer = entry.usable_value(now, &policy);
                drop(inner);
                count(&self.counters.throttled);
                return Ok(ReloadStart::Answer(self.serve(answer)));
            }
            drop(inner);
            count(&self.counters.coalesced);
            let wait = flight.expires_at(&policy).saturating_sub(now);
            return self.follow(source, &flight, wait).map(ReloadStart::Answer);
        }

        if let Some(last_attempt) = entry.last_attempt {
            if now < last_attempt.saturating_add(policy.min_time_between_requests) {
                let answer = entry.usable_value(now, &policy);
                drop(inner);
                count(&self.counters.throttled);
                return Ok(ReloadStart::Answer(self.serve(answer)));
            }
        }

        entry.last_attempt = Some(now);
        let permit = Permit(inner.next_permit);
        inner.next_permit = inner.next_permit.wrapping_add(1).max(1);
        let flight = Arc::new(Flight::new(now));
        if let Some(entry) = inner.sources.peek_mut(source) {
            entry.flight = Some(Arc::clone(&flight));
        }
        inner.flights.insert(permit, (source.to_owned(), flight));
        drop(inner);
        count(&self.counters.loads);
        Ok(ReloadStart::Lead(permit))
    }

    /// The leader's report: stores a successful load (unless the source was evicted meanwhile —
    /// those keys may predate the change that evicted it — or the permit expired) and hands the
    /// outcome to the waiting callers. Returns the keys the leader should use now: the loaded
    /// ones; after a failure, the last usable ones; else the failure.
    pub fn complete(&self, permit: Permit, outcome: Result<Loaded<T>>) -> Result<Option<T>> {
        let now = self.clock.elapsed();
        let epoch_now = self.clock.epoch_millis();
        let mut inner = lock(&self.inner);
        inner.expire_flights(now);
        let policy = inner.policy;
        let Some((source, flight)) = inner.flights.remove(&permit) else {
            drop(inner);
            // Expired (its followers were answered already) or never issued.
            return match outcome {
                Ok(loaded) => Ok(Some(loaded.value)),
                Err(error) => {
                    count(&self.counters.load_failures);
                    Err(unavailable("this source", error.message()))
                }
            };
        };
        let entry = inner.sources.peek_mut(&source).filter(|entry| {
            entry
                .flight
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, &flight))
        });
        let answer = match outcome {
            Ok(loaded) => {
                let value = loaded.value.clone();
                if let Some(entry) = entry {
                    entry.flight = None;
                    entry.good = Some(Good {
                        value: loaded.value,
                        loaded_at: now,
                        expires_at: loaded
                            .expires_at_epoch_millis
                            .map(|expiry| epoch_to_monotonic(expiry, epoch_now, now)),
                    });
                }
                Ok(Some(value))
            }
            Err(error) => {
                count(&self.counters.load_failures);
                let fallback = entry.and_then(|entry| {
                    entry.flight = None;
                    entry.usable_value(now, &policy)
                });
                match fallback {
                    Some((value, _)) => {
                        count(&self.counters.stale_served);
                        Ok(Some(value))
                    }
                    None => Err(unavailable(&source, error.message())),
                }
            }
        };
        drop(inner);
        flight.finish(&answer);
        answer
    }

    /// [`begin_reload`](Self::begin_reload), running `load` on this thread when this caller
    /// leads and reporting its outcome; a panicking loader still releases its followers.
    pub fn reload<F>(&self, source: &str, load: F) -> Result<Option<T>>
    where
        F: FnOnce() -> Result<Loaded<T>>,
    {
        let permit = match self.begin_reload(source)? {
            ReloadStart::Answer(answer) => return Ok(answer),
            ReloadStart::Lead(permit) => permit,
        };
        match panic::catch_unwind(AssertUnwindSafe(load)) {
            Ok(outcome) => self.complete(permit, outcome),
            Err(payload) => {
                let _ = self.complete(permit, Err(Error::internal("the key loader panicked")));
                panic::resume_unwind(payload)
            }
        }
    }

    /// Loads in progress (permits issued and neither completed nor expired).
    pub fn loads_in_progress(&self) -> usize {
        let now = self.clock.elapsed();
        let mut inner = lock(&self.inner);
        inner.expire_flights(now);
        inner.flights.len()
    }

    /// Waits for another caller's load; if it takes too long, answers like a failed load.
    fn follow(&self, source: &str, flight: &Flight<T>, wait: Duration) -> Result<Option<T>> {
        if let Some(outcome) = flight.wait(wait) {
            return outcome;
        }
        let now = self.clock.elapsed();
        let mut inner = lock(&self.inner);
        inner.expire_flights(now);
        let answer = inner
            .sources
            .peek(source)
            .and_then(|entry| entry.usable_value(now, &inner.policy));
        drop(inner);
        match answer {
            Some((value, _)) => {
                count(&self.counters.stale_served);
                Ok(Some(value))
            }
            None => Err(unavailable(
                source,
                &format!(
                    "another request has been loading them for more than {} ms",
                    wait.as_millis()
                ),
            )),
        }
    }

    fn serve(&self, answer: Option<(T, bool)>) -> Option<T> {
        answer.map(|(value, fresh)| {
            if !fresh {
                count(&self.counters.stale_served);
            }
            value
        })
    }

    /// Forgets the source: keys, window and any result of a load now in progress.
    pub fn evict(&self, source: &str) {
        let removed = lock(&self.inner).sources.pop(source);
        drop(removed);
    }

    /// Forgets every source whose key starts with `prefix` (a realm: `"<realmId>::"`).
    pub fn evict_prefix(&self, prefix: &str) {
        let mut inner = lock(&self.inner);
        let doomed: Vec<String> = inner
            .sources
            .iter()
            .filter(|(source, _)| source.starts_with(prefix))
            .map(|(source, _)| source.clone())
            .collect();
        let removed: Vec<_> = doomed
            .iter()
            .filter_map(|source| inner.sources.pop(source))
            .collect();
        drop(inner);
        drop(removed);
    }

    /// Forgets every source.
    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        let capacity = inner.policy.max_entries;
        let removed = std::mem::replace(&mut inner.sources, LruCache::new(capacity));
        drop(inner);
        drop(removed);
    }

    pub fn stats(&self) -> CacheStats {
        let entries = lock(&self.inner).sources.len();
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            entries: u64::try_from(entries).unwrap_or(u64::MAX),
            hits: read(&self.counters.hits),
            misses: read(&self.counters.misses),
            loads: read(&self.counters.loads),
            load_failures: read(&self.counters.load_failures),
            throttled: read(&self.counters.throttled),
            coalesced: read(&self.counters.coalesced),
            stale_served: read(&self.counters.stale_served),
        }
    }
}

/// Places an epoch-millisecond instant on the monotonic clock, relative to now.
fn epoch_to_monotonic(expiry_millis: u64, epoch_now_millis: u64, now: Duration) -> Duration {
    if expiry_millis >= epoch_now_millis {
        now.saturating_add(Duration::from_millis(expiry_millis - epoch_now_millis))
    } else {
        now.saturating_sub(Duration::from_millis(epoch_now_millis - expiry_millis))
    }
}

fn unavailable(source: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::PublicKeysUnavailable,
        format!("The public keys of {source} could not be loaded: {why}"),
    )
}
