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
//! - Concurrent reloads of one source share one load: the first caller leads and runs the
//!   loader on its own thread, the others wait for its result, at most the follower wait.
//! - When a load fails, the last good keys keep serving until the stale-on-error limit past the
//!   moment they stopped being fresh; after that the failure reaches the caller.
//!
//! The global lock is never held while a loader runs, and the LRU bound counts sources.

use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lru::LruCache;

use crate::error::{Error, ErrorKind, Result};

/// The limits of the cache. Defaults are the documented server option defaults.
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
    fn default() -> Self {
        CachePolicy {
            min_time_between_requests: Duration::from_secs(10),
            max_entries: NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN),
            max_idle: Duration::from_secs(3600),
            max_age: Duration::from_secs(86_400),
            stale_on_error: Duration::from_secs(3600),
            follower_wait: Duration::from_millis(5000),
        }
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

/// One load in progress, shared by the caller running it and the callers waiting for it.
struct Flight<T> {
    leader: ThreadId,
    outcome: Mutex<Option<Result<Option<T>>>>,
    finished: Condvar,
}

impl<T: Clone> Flight<T> {
    fn new() -> Self {
        Flight {
            leader: thread::current().id(),
            outcome: Mutex::new(None),
            finished: Condvar::new(),
        }
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

    /// Reloads the source's keys under the window, single-flight and stale-on-error rules (see
    /// the module documentation). `load` runs on this thread, and only if this caller leads a
    /// permitted load.
    ///
    /// Returns the keys to use now, or `None` when the window refused a load and nothing usable
    /// is cached. Fails with [`ErrorKind::PublicKeysUnavailable`] when the load failed (or
    /// another caller's load did not finish in time) and nothing usable is cached.
    pub fn reload<F>(&self, source: &str, load: F) -> Result<Option<T>>
    where
        F: FnOnce() -> Result<Loaded<T>>,
    {
        let now = self.clock.elapsed();
        let mut inner = lock(&self.inner);
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
                // The loader itself asked for this source again; waiting would wait for itself.
                let answer = entry.usable_value(now, &policy);
                drop(inner);
                count(&self.counters.throttled);
                return Ok(self.serve(answer));
            }
            drop(inner);
            count(&self.counters.coalesced);
            return self.follow(source, &flight, policy.follower_wait);
        }

        if let Some(last_attempt) = entry.last_attempt {
            if now < last_attempt.saturating_add(policy.min_time_between_requests) {
                let answer = entry.usable_value(now, &policy);
                drop(inner);
                count(&self.counters.throttled);
                return Ok(self.serve(answer));
            }
        }

        entry.last_attempt = Some(now);
        let flight = Arc::new(Flight::new());
        entry.flight = Some(Arc::clone(&flight));
        drop(inner);
        count(&self.counters.loads);

        match panic::catch_unwind(AssertUnwindSafe(load)) {
            Ok(outcome) => self.land(source, &flight, outcome),
            Err(payload) => {
                // Release the followers and the source before the panic goes on its way.
                let _ = self.land(
                    source,
                    &flight,
                    Err(Error::internal("the key loader panicked")),
                );
                panic::resume_unwind(payload)
            }
        }
    }

    /// Stores a finished load (unless the source was evicted meanwhile: those keys may predate
    /// the change that evicted it) and hands the outcome to the waiting callers.
    fn land(
        &self,
        source: &str,
        flight: &Arc<Flight<T>>,
        outcome: Result<Loaded<T>>,
    ) -> Result<Option<T>> {
        let now = self.clock.elapsed();
        let epoch_now = self.clock.epoch_millis();
        let mut inner = lock(&self.inner);
        let policy = inner.policy;
        let entry = inner.sources.peek_mut(source).filter(|entry| {
            entry
                .flight
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, flight))
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
                    None => Err(unavailable(source, error.message())),
                }
            }
        };
        drop(inner);
        flight.finish(&answer);
        answer
    }

    /// Waits for another caller's load; if it takes too long, answers like a failed load.
    fn follow(&self, source: &str, flight: &Flight<T>, wait: Duration) -> Result<Option<T>> {
        if let Some(outcome) = flight.wait(wait) {
            return outcome;
        }
        let now = self.clock.elapsed();
        let inner = lock(&self.inner);
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
