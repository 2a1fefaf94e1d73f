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
//!
//! **Hits take no lock.** Every cached source has a [`SourceId`], a number the cache hands out
//! with its answers, which names that source for as long as the cache keeps it and never another
//! one (a slot number with a generation that is never reused). [`KeyCache::get_by_id`] reads the
//! source's published keys from its slot without the global lock and without writing to memory
//! another thread reads (the recency of a use is written at most once per millisecond per
//! source, the hit counter is striped), so concurrent hits do not queue. A reload by id that the
//! window throttles takes no lock either ([`KeyCache::begin_reload_by_id`]): the slot also
//! publishes the source's window (its last attempt) and whether a load is in progress, so the
//! same rule gives the same answer from it — an unknown kid inside the window costs what a hit
//! costs. Everything else — a miss, a reload the window lets through or a load in progress
//! makes wait, a completed or expired load, an eviction — takes the global lock and republishes
//! the slot; an id whose source was evicted (or replaced after idling out) answers as unknown.
//! Recency is a use's time to within [`TOUCH_GRANULARITY`]: when the cache is full, the source
//! used longest ago goes first (ties: the one the locked paths touched least recently).

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
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
    hits: Striped,
    misses: Striped,
    loads: AtomicU64,
    load_failures: AtomicU64,
    throttled: AtomicU64,
    coalesced: AtomicU64,
    stale_served: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Stripes of a counter that many threads bump at once; one cache line each.
const STRIPES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicU64);

/// A counter bumped on the lock-free hit path: each thread adds to its own stripe (threads are
/// dealt stripes in turn), so that concurrent hits do not fight over one cache line.
#[derive(Debug, Default)]
struct Striped([Stripe; STRIPES]);

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl Striped {
    fn add(&self) {
        let stripe = STRIPE.with(|stripe| {
            if stripe.get() == usize::MAX {
                stripe.set(NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES);
            }
            stripe.get()
        });
        if let Some(Stripe(counter)) = self.0.get(stripe) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sum(&self) -> u64 {
        self.0.iter().fold(0, |sum, Stripe(counter)| {
            sum.wrapping_add(counter.load(Ordering::Relaxed))
        })
    }
}

/// The last good keys of a source, with times on the monotonic clock.
#[derive(Clone)]
struct Good<T> {
    value: T,
    loaded_at: Duration,
    /// The source's own expiry, if any.
    expires_at: Option<Duration>,
}

impl<T> Good<T> {
    fn fresh_until(&self, max_age: Duration) -> Duration {
        let by_age = self.loaded_at.saturating_add(max_age);
        match self.expires_at {
            Some(expires_at) => by_age.min(expires_at),
            None => by_age,
        }
    }

    fn is_fresh(&self, now: Duration, policy: &CachePolicy) -> bool {
        now <= self.fresh_until(policy.max_age)
    }

    /// Fresh, or stale by no more than the stale-on-error limit.
    fn is_usable(&self, now: Duration, policy: &CachePolicy) -> bool {
        now <= self
            .fresh_until(policy.max_age)
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

/// A cached source's number, handed out by the cache ([`KeyCache::get_with_id`],
/// [`KeyCache::begin_reload_with_id`]) so that callers across JNI can name the source without
/// its key. It names that source for as long as the cache keeps it, and never another source:
/// a slot number and that slot's generation, which grows each time the slot is given to a
/// source and is never reused (a slot whose generation ran out is retired). Never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId(u64);

/// Bits of a [`SourceId`] that number the slot; the rest is the generation.
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// The last generation a slot is given out with.
const MAX_GENERATION: u64 = u64::MAX >> SLOT_BITS;
/// Slots are allocated in chunks of this many, as the cache grows; a chunk is never freed.
const CHUNK_BITS: u32 = 12;
const CHUNK_SLOTS: usize = 1 << CHUNK_BITS;
const CHUNKS: usize = 1 << (SLOT_BITS - CHUNK_BITS);
/// At most this many sources have ids at once; a source beyond it is served by key only.
pub const MAX_SOURCE_IDS: usize = CHUNKS * CHUNK_SLOTS;

/// A hit writes the time of its use only when the recorded one is at least this much older, so
/// that threads hitting one source do not keep writing to one cache line. Idle times and the LRU
/// order are exact to within this.
pub const TOUCH_GRANULARITY: Duration = Duration::from_millis(1);

impl SourceId {
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// An id as Java handed it back; an unknown, stale or made-up one is answered as unknown,
    /// never trusted.
    pub fn from_raw(raw: u64) -> Self {
        SourceId(raw)
    }

    fn new(slot: usize, generation: u64) -> Self {
        SourceId((generation << SLOT_BITS) | (slot as u64 & SLOT_MASK))
    }

    fn slot(self) -> usize {
        usize::try_from(self.0 & SLOT_MASK).unwrap_or(usize::MAX)
    }

    fn generation(self) -> u64 {
        self.0 >> SLOT_BITS
    }
}

/// What the lock-free paths read: the source's last good keys and its window, as of the last
/// change (a load begun, completed, failed or expired).
struct Published<T> {
    id: SourceId,
    good: Option<Good<T>>,
    /// When the source's last load attempt began: its window's start.
    last_attempt: Option<Duration>,
    /// A load is in progress: a reload must join it, under the lock.
    loading: bool,
}

struct Slot<T> {
    /// The source now in this slot; replaced (never changed in place) under the global lock.
    entry: ArcSwapOption<Published<T>>,
    /// Nanoseconds on the cache clock of the last use a hit recorded (see
    /// [`TOUCH_GRANULARITY`]); the locked paths keep their own, the later one counts.
    last_used: AtomicU64,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            entry: ArcSwapOption::empty(),
            last_used: AtomicU64::new(0),
        }
    }
}

/// The slot table, readable without the lock. Only the locked paths give out and take back
/// slots ([`Inner::allocate_slot`], [`Inner::remove`]).
struct Slots<T> {
    chunks: Box<[OnceLock<Chunk<T>>]>,
}

type Chunk<T> = Box<[Slot<T>]>;

impl<T> Slots<T> {
    fn new() -> Self {
        Slots {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The slot, if its chunk exists.
    fn get(&self, slot: usize) -> Option<&Slot<T>> {
        self.chunks
            .get(slot >> CHUNK_BITS)?
            .get()?
            .get(slot & (CHUNK_SLOTS - 1))
    }

    /// The slot, allocating its chunk when the table grows into it.
    fn get_or_grow(&self, slot: usize) -> Option<&Slot<T>> {
        self.chunks
            .get(slot >> CHUNK_BITS)?
            .get_or_init(|| (0..CHUNK_SLOTS).map(|_| Slot::default()).collect())
            .get(slot & (CHUNK_SLOTS - 1))
    }

    /// Records a use the locked paths saw, for the hits' idle check as well.
    fn touch(&self, id: Option<SourceId>, now: Duration) {
        if let Some(slot) = id.and_then(|id| self.get(id.slot())) {
            slot.last_used.fetch_max(nanos(now), Ordering::Relaxed);
        }
    }

    /// When the source was last used: the later of the locked paths' record and the hits'.
    fn used_at<V>(&self, source: &Source<V>) -> Duration {
        let by_hits = source
            .id
            .and_then(|id| self.get(id.slot()))
            .map(|slot| Duration::from_nanos(slot.last_used.load(Ordering::Relaxed)))
            .unwrap_or(Duration::ZERO);
        source.last_used.max(by_hits)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
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
    /// `None` only when every id is taken ([`MAX_SOURCE_IDS`]).
    id: Option<SourceId>,
    good: Option<Good<T>>,
    /// The last use the locked paths saw; hits record theirs in the slot.
    last_used: Duration,
    last_attempt: Option<Duration>,
    flight: Option<Arc<Flight<T>>>,
}

impl<T: Clone> Source<T> {
    fn new(now: Duration, id: Option<SourceId>) -> Self {
        Source {
            id,
            good: None,
            last_used: now,
            last_attempt: None,
            flight: None,
        }
    }

    /// Unused for longer than the max idle time, and not being loaded.
    fn is_idle(&self, now: Duration, policy: &CachePolicy, slots: &Slots<T>) -> bool {
        self.flight.is_none() && now.saturating_sub(slots.used_at(self)) > policy.max_idle
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
    /// Every cached source; the order is the locked paths' recency, which breaks ties of
    /// [`Slots::used_at`]. The bound is kept by [`Inner::make_room`], not by the map.
    sources: LruCache<Arc<str>, Source<T>>,
    /// The key of each source that has an id.
    keys_by_id: HashMap<SourceId, Arc<str>>,
    /// Slots given back, to give out again with their next generation.
    free_slots: Vec<usize>,
    /// The generation each slot was last given out with; its length is the slots ever used.
    generations: Vec<u64>,
    /// Loads in progress by permit, with their source: a source evicted meanwhile still has its
    /// flight here until the permit is completed or expires.
    flights: HashMap<Permit, (Arc<str>, Arc<Flight<T>>)>,
    next_permit: u64,
}

/// What leaves the cache under the lock, dropped after it is released (dropping the JNI
/// crate's values deletes global references).
type Removed<T> = Vec<(Option<Source<T>>, Option<Arc<Published<T>>>)>;

impl<T: Clone> Inner<T> {
    /// Gives a new source a slot and an id, or none when every id is taken.
    fn allocate_slot(&mut self, slots: &Slots<T>, now: Duration) -> Option<SourceId> {
        let (slot, generation) = match self.free_slots.pop() {
            Some(slot) => {
                let generation = self.generations.get(slot)?.checked_add(1)?;
                (slot, generation)
            }
            None if self.generations.len() < MAX_SOURCE_IDS => (self.generations.len(), 1),
            None => return None,
        };
        let cell = slots.get_or_grow(slot)?;
        match self.generations.get_mut(slot) {
            Some(last) => *last = generation,
            None => self.generations.push(generation),
        }
        let id = SourceId::new(slot, generation);
        cell.last_used.store(nanos(now), Ordering::Relaxed);
        // Nothing was published in a free slot; no old value to drop.
        cell.entry.store(Some(Arc::new(Published {
            id,
            good: None,
            last_attempt: None,
            loading: false,
        })));
        Some(id)
    }

    /// Adds a source under `key` (not cached yet), making room first.
    fn insert(&mut self, slots: &Slots<T>, key: &str, now: Duration, removed: &mut Removed<T>) {
        self.make_room(
            slots,
            self.policy.max_entries.get().saturating_sub(1),
            removed,
        );
        let key: Arc<str> = Arc::from(key);
        let id = self.allocate_slot(slots, now);
        if let Some(id) = id {
            self.keys_by_id.insert(id, Arc::clone(&key));
        }
        self.sources.push(key, Source::new(now, id));
    }

    /// Drops the least recently used sources until at most `bound` remain.
    fn make_room(&mut self, slots: &Slots<T>, bound: usize, removed: &mut Removed<T>) {
        while self.sources.len() > bound {
            // From the least to the most recently touched by the locked paths: the first of
            // equally old uses goes. A source whose load is in flight stays (unless every one
            // is): dropping it would forget its window, and its next caller would start a
            // second load beside the hanging one.
            let least_recent = |in_flight_too: bool| {
                self.sources
                    .iter()
                    .rev()
                    .filter(|(_, source)| in_flight_too || source.flight.is_none())
                    .min_by_key(|(_, source)| slots.used_at(source))
                    .map(|(key, _)| Arc::clone(key))
            };
            let victim = least_recent(false).or_else(|| least_recent(true));
            match victim {
                Some(victim) => removed.push(self.remove(slots, &victim)),
                None => break,
            }
        }
    }

    /// Forgets one source and takes back its slot.
    fn remove(
        &mut self,
        slots: &Slots<T>,
        key: &str,
    ) -> (Option<Source<T>>, Option<Arc<Published<T>>>) {
        let source = self.sources.pop(key);
        let published = source.as_ref().and_then(|source| source.id).and_then(|id| {
            self.keys_by_id.remove(&id);
            let published = slots.get(id.slot())?.entry.swap(None);
            if id.generation() < MAX_GENERATION {
                self.free_slots.push(id.slot());
            }
            published
        });
        (source, published)
    }

    /// Makes the source's current keys and window what the lock-free paths see; returns what
    /// they saw before, to be dropped after the lock.
    fn publish(&self, slots: &Slots<T>, key: &str) -> Option<Arc<Published<T>>> {
        let source = self.sources.peek(key)?;
        let id = source.id?;
        let published = Published {
            id,
            good: source.good.clone(),
            last_attempt: source.last_attempt,
            loading: source.flight.is_some(),
        };
        slots.get(id.slot())?.entry.swap(Some(Arc::new(published)))
    }

    /// Drops flights whose permit expired, answering their followers as for a failed load.
    /// Returns what the lock-free paths saw of their sources before, to be dropped after the
    /// lock.
    #[must_use]
    fn expire_flights(&mut self, slots: &Slots<T>, now: Duration) -> Vec<Arc<Published<T>>> {
        let policy = self.policy;
        let mut republished = Vec::new();
        if self.flights.is_empty() {
            return republished;
        }
        let expired: Vec<Permit> = self
            .flights
            .iter()
            .filter(|(_, (_, flight))| now > flight.expires_at(&policy))
            .map(|(permit, _)| *permit)
            .collect();
        for permit in expired {
            if let Some((source, flight)) = self.flights.remove(&permit) {
                if let Some(entry) = self.sources.peek_mut(&*source) {
                    if entry
                        .flight
                        .as_ref()
                        .is_some_and(|current| Arc::ptr_eq(current, &flight))
                    {
                        entry.flight = None;
                        republished.extend(self.publish(slots, &source));
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
        republished
    }
}

/// The cache; see the module documentation for its policy. `T` is cloned on every answer, so it
/// should be cheap to clone (the JNI crate uses an `Arc`).
pub struct KeyCache<T> {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner<T>>,
    /// What hits and throttled reloads read without the lock.
    slots: Slots<T>,
    /// The policy as the lock-free paths read it, in nanoseconds ([`LockFreePolicy`]).
    max_age_nanos: AtomicU64,
    max_idle_nanos: AtomicU64,
    min_time_between_requests_nanos: AtomicU64,
    stale_on_error_nanos: AtomicU64,
    counters: Counters,
}

/// The parts of the policy the lock-free paths apply, read field by field: a reconfiguration
/// racing a lookup may mix old and new limits in that one lookup (configuring happens once, at
/// startup, before the first lookup).
struct LockFreePolicy {
    max_age: Duration,
    max_idle_nanos: u64,
    min_time_between_requests: Duration,
    stale_on_error: Duration,
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
                sources: LruCache::unbounded(),
                keys_by_id: HashMap::new(),
                free_slots: Vec::new(),
                generations: Vec::new(),
                flights: HashMap::new(),
                // 0 is what a failed native call returns to Java, so it never names a permit.
                next_permit: 1,
            }),
            slots: Slots::new(),
            max_age_nanos: AtomicU64::new(nanos(policy.max_age)),
            max_idle_nanos: AtomicU64::new(nanos(policy.max_idle)),
            min_time_between_requests_nanos: AtomicU64::new(nanos(
                policy.min_time_between_requests,
            )),
            stale_on_error_nanos: AtomicU64::new(nanos(policy.stale_on_error)),
            counters: Counters::default(),
        }
    }

    /// Replaces the policy. Cached keys stay; a smaller bound drops the least recently used.
    pub fn configure(&self, policy: CachePolicy) {
        let mut removed = Removed::new();
        let mut inner = lock(&self.inner);
        inner.policy = policy;
        self.max_age_nanos
            .store(nanos(policy.max_age), Ordering::Relaxed);
        self.max_idle_nanos
            .store(nanos(policy.max_idle), Ordering::Relaxed);
        self.min_time_between_requests_nanos
            .store(nanos(policy.min_time_between_requests), Ordering::Relaxed);
        self.stale_on_error_nanos
            .store(nanos(policy.stale_on_error), Ordering::Relaxed);
        inner.make_room(&self.slots, policy.max_entries.get(), &mut removed);
        drop(inner);
        drop(removed);
    }

    pub fn policy(&self) -> CachePolicy {
        lock(&self.inner).policy
    }

    /// The source's keys if they are fresh. Counts as a use of the source.
    pub fn get(&self, source: &str) -> Option<T> {
        self.get_with_id(source).0
    }

    /// [`get`](Self::get), and the source's id while it is cached, for
    /// [`get_by_id`](Self::get_by_id) and [`begin_reload_by_id`](Self::begin_reload_by_id).
    pub fn get_with_id(&self, source: &str) -> (Option<T>, Option<SourceId>) {
        let now = self.clock.elapsed();
        let mut removed = Removed::new();
        let mut inner = lock(&self.inner);
        let policy = inner.policy;
        let answer = match inner.sources.get_mut(source) {
            Some(entry) if entry.is_idle(now, &policy, &self.slots) => {
                removed.push(inner.remove(&self.slots, source));
                (None, None)
            }
            Some(entry) => {
                entry.last_used = now;
                self.slots.touch(entry.id, now);
                (entry.fresh_value(now, &policy), entry.id)
            }
            None => (None, None),
        };
        drop(inner);
        drop(removed);
        if answer.0.is_some() {
            self.counters.hits.add();
        } else {
            self.counters.misses.add();
        }
        answer
    }

    /// The hit path, without the lock: calls `use_keys` with the keys of the source `id` names
    /// if they are fresh (and the source not idle), and returns what it returns. `None` is a
    /// miss: not fresh, or an id that names no cached source (evicted, idled out, or never
    /// given out) — then [`begin_reload_by_id`](Self::begin_reload_by_id) tells which.
    /// Counts as a use of the source.
    pub fn get_by_id<R>(&self, id: SourceId, use_keys: impl FnOnce(&T) -> R) -> Option<R> {
        let answer = self.fresh_by_id(id, use_keys);
        if answer.is_some() {
            self.counters.hits.add();
        } else {
            self.counters.misses.add();
        }
        answer
    }

    fn fresh_by_id<R>(&self, id: SourceId, use_keys: impl FnOnce(&T) -> R) -> Option<R> {
        let slot = self.slots.get(id.slot())?;
        let published = slot.entry.load();
        let good = published
            .as_ref()
            .filter(|published| published.id == id)?
            .good
            .as_ref()?;
        let now = nanos(self.clock.elapsed());
        let used = slot.last_used.load(Ordering::Relaxed);
        let idle = now.saturating_sub(used);
        if idle > self.max_idle_nanos.load(Ordering::Relaxed) {
            // The locked paths drop it (unless a load is running; then it is not idle there).
            return None;
        }
        let max_age = Duration::from_nanos(self.max_age_nanos.load(Ordering::Relaxed));
        if now > nanos(good.fresh_until(max_age)) {
            return None;
        }
        if idle >= nanos(TOUCH_GRANULARITY) {
            slot.last_used.fetch_max(now, Ordering::Relaxed);
        }
        Some(use_keys(&good.value))
    }

    fn lock_free_policy(&self) -> LockFreePolicy {
        let read = |limit: &AtomicU64| limit.load(Ordering::Relaxed);
        LockFreePolicy {
            max_age: Duration::from_nanos(read(&self.max_age_nanos)),
            max_idle_nanos: read(&self.max_idle_nanos),
            min_time_between_requests: Duration::from_nanos(read(
                &self.min_time_between_requests_nanos,
            )),
            stale_on_error: Duration::from_nanos(read(&self.stale_on_error_nanos)),
        }
    }

    /// The throttled reload without the lock: `Some(answer)` when the source `id` names is inside
    /// the window of its last attempt, no load of it is in progress and it is not idle — exactly
    /// when the locked path would answer "throttled" — with what that path answers then (the
    /// usable keys, or none), counted the same way; `None` when any of that does not hold, and
    /// the locked path decides. Counts as a use of the source.
    fn throttled_by_id(&self, id: SourceId) -> Option<Option<T>> {
        let slot = self.slots.get(id.slot())?;
        let published = slot.entry.load();
        let published = published
            .as_ref()
            .filter(|published| published.id == id && !published.loading)?;
        let last_attempt = published.last_attempt?;
        let policy = self.lock_free_policy();
        let now = self.clock.elapsed();
        if now >= last_attempt.saturating_add(policy.min_time_between_requests) {
            return None;
        }
        let now_nanos = nanos(now);
        let idle = now_nanos.saturating_sub(slot.last_used.load(Ordering::Relaxed));
        if idle > policy.max_idle_nanos {
            return None;
        }
        if idle >= nanos(TOUCH_GRANULARITY) {
            slot.last_used.fetch_max(now_nanos, Ordering::Relaxed);
        }
        let answer = published.good.as_ref().and_then(|good| {
            let fresh_until = good.fresh_until(policy.max_age);
            (now <= fresh_until.saturating_add(policy.stale_on_error))
                .then(|| (good.value.clone(), now <= fresh_until))
        });
        count(&self.counters.throttled);
        Some(self.serve(answer))
    }

    /// Asks to reload the source's keys under the window, single-flight and stale-on-error
    /// rules (see the module documentation): either answers at once (throttled, or after
    /// waiting for another caller's load) or makes this caller the leader.
    ///
    /// Fails with [`ErrorKind::PublicKeysUnavailable`] when a joined load failed (or did not
    /// finish in time) and nothing usable is cached.
    pub fn begin_reload(&self, source: &str) -> Result<ReloadStart<T>> {
        self.begin_reload_with_id(source).map(|(start, _)| start)
    }

    /// [`begin_reload`](Self::begin_reload), and the source's id (the reload caches the source
    /// if it was not).
    pub fn begin_reload_with_id(&self, source: &str) -> Result<(ReloadStart<T>, Option<SourceId>)> {
        let now = self.clock.elapsed();
        let inner = lock(&self.inner);
        self.begin_reload_locked(inner, source, now)
    }

    /// [`begin_reload_with_id`](Self::begin_reload_with_id) for the source `id` names; `None`
    /// when it names no cached source (the caller then asks by key). A reload the window
    /// throttles takes no lock: the source's window and keys are read from its slot, as a hit
    /// reads its keys, with the same rule and answer as the locked path.
    pub fn begin_reload_by_id(
        &self,
        id: SourceId,
    ) -> Result<Option<(ReloadStart<T>, Option<SourceId>)>> {
        if let Some(answer) = self.throttled_by_id(id) {
            return Ok(Some((ReloadStart::Answer(answer), Some(id))));
        }
        let now = self.clock.elapsed();
        let inner = lock(&self.inner);
        let Some(source) = inner.keys_by_id.get(&id).cloned() else {
            return Ok(None);
        };
        self.begin_reload_locked(inner, &source, now).map(Some)
    }

    fn begin_reload_locked(
        &self,
        mut inner: MutexGuard<'_, Inner<T>>,
        source: &str,
        now: Duration,
    ) -> Result<(ReloadStart<T>, Option<SourceId>)> {
        let mut removed = Removed::new();
        let expired = inner.expire_flights(&self.slots, now);
        let policy = inner.policy;
        let idle = inner
            .sources
            .peek(source)
            .map(|entry| entry.is_idle(now, &policy, &self.slots));
        if idle == Some(true) {
            // Unused for so long that its keys and window no longer say anything.
            removed.push(inner.remove(&self.slots, source));
        }
        if idle != Some(false) {
            inner.insert(&self.slots, source, now, &mut removed);
        }
        let Some(entry) = inner.sources.get_mut(source) else {
            return Err(Error::internal("a source just cached is missing"));
        };
        entry.last_used = now;
        let id = entry.id;
        self.slots.touch(id, now);

        if let Some(flight) = entry.flight.clone() {
            if flight.leader == thread::current().id() {
                // The leader asked for this source again while loading it (a loader that looks
                // keys up); waiting would wait for itself.
                let answer = entry.usable_value(now, &policy);
                drop(inner);
                drop((removed, expired));
                count(&self.counters.throttled);
                return Ok((ReloadStart::Answer(self.serve(answer)), id));
            }
            drop(inner);
            drop((removed, expired));
            count(&self.counters.coalesced);
            let wait = flight.expires_at(&policy).saturating_sub(now);
            return self
                .follow(source, &flight, wait)
                .map(|answer| (ReloadStart::Answer(answer), id));
        }

        if let Some(last_attempt) = entry.last_attempt {
            if now < last_attempt.saturating_add(policy.min_time_between_requests) {
                let answer = entry.usable_value(now, &policy);
                drop(inner);
                drop((removed, expired));
                count(&self.counters.throttled);
                return Ok((ReloadStart::Answer(self.serve(answer)), id));
            }
        }

        entry.last_attempt = Some(now);
        let flight = Arc::new(Flight::new(now));
        entry.flight = Some(Arc::clone(&flight));
        let permit = Permit(inner.next_permit);
        inner.next_permit = inner.next_permit.wrapping_add(1).max(1);
        inner.flights.insert(permit, (Arc::from(source), flight));
        // The window and the load in progress, for the lock-free throttle.
        let republished = inner.publish(&self.slots, source);
        drop(inner);
        drop((removed, expired, republished));
        count(&self.counters.loads);
        Ok((ReloadStart::Lead(permit), id))
    }

    /// The leader's report: stores a successful load (unless the source was evicted meanwhile —
    /// those keys may predate the change that evicted it — or the permit expired) and hands the
    /// outcome to the waiting callers. Returns the keys the leader should use now: the loaded
    /// ones; after a failure, the last usable ones; else the failure.
    pub fn complete(&self, permit: Permit, outcome: Result<Loaded<T>>) -> Result<Option<T>> {
        let now = self.clock.elapsed();
        let epoch_now = self.clock.epoch_millis();
        let mut inner = lock(&self.inner);
        let expired = inner.expire_flights(&self.slots, now);
        let policy = inner.policy;
        let mut republished = None;
        let Some((source, flight)) = inner.flights.remove(&permit) else {
            drop(inner);
            drop(expired);
            // Expired (its followers were answered already) or never issued.
            return match outcome {
                Ok(loaded) => Ok(Some(loaded.value)),
                Err(error) => {
                    count(&self.counters.load_failures);
                    Err(unavailable("this source", error.message()))
                }
            };
        };
        let entry = inner.sources.peek_mut(&*source).filter(|entry| {
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
                    republished = inner.publish(&self.slots, &source);
                }
                Ok(Some(value))
            }
            Err(error) => {
                count(&self.counters.load_failures);
                let fallback = entry.map(|entry| {
                    entry.flight = None;
                    entry.usable_value(now, &policy)
                });
                if fallback.is_some() {
                    // No load in progress any more, for the lock-free throttle.
                    republished = inner.publish(&self.slots, &source);
                }
                match fallback.flatten() {
                    Some((value, _)) => {
                        count(&self.counters.stale_served);
                        Ok(Some(value))
                    }
                    None => Err(unavailable(&source, error.message())),
                }
            }
        };
        drop(inner);
        drop((republished, expired));
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
        let expired = inner.expire_flights(&self.slots, now);
        let in_progress = inner.flights.len();
        drop(inner);
        drop(expired);
        in_progress
    }

    /// Waits for another caller's load; if it takes too long, answers like a failed load.
    fn follow(&self, source: &str, flight: &Flight<T>, wait: Duration) -> Result<Option<T>> {
        if let Some(outcome) = flight.wait(wait) {
            return outcome;
        }
        let now = self.clock.elapsed();
        let mut inner = lock(&self.inner);
        let expired = inner.expire_flights(&self.slots, now);
        let answer = inner
            .sources
            .peek(source)
            .and_then(|entry| entry.usable_value(now, &inner.policy));
        drop(inner);
        drop(expired);
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

    /// Forgets the source: keys, window, id and any result of a load now in progress.
    pub fn evict(&self, source: &str) {
        let mut inner = lock(&self.inner);
        let removed = inner.remove(&self.slots, source);
        drop(inner);
        drop(removed);
    }

    /// Forgets every source whose key starts with `prefix` (a realm: `"<realmId>::"`).
    pub fn evict_prefix(&self, prefix: &str) {
        let mut inner = lock(&self.inner);
        let doomed: Vec<Arc<str>> = inner
            .sources
            .iter()
            .filter(|(source, _)| source.starts_with(prefix))
            .map(|(source, _)| Arc::clone(source))
            .collect();
        let removed: Removed<T> = doomed
            .iter()
            .map(|source| inner.remove(&self.slots, source))
            .collect();
        drop(inner);
        drop(removed);
    }

    /// Forgets every source.
    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        let doomed: Vec<Arc<str>> = inner
            .sources
            .iter()
            .map(|(source, _)| Arc::clone(source))
            .collect();
        let removed: Removed<T> = doomed
            .iter()
            .map(|source| inner.remove(&self.slots, source))
            .collect();
        drop(inner);
        drop(removed);
    }

    /// Sources that have an id (all cached sources, unless [`MAX_SOURCE_IDS`] are taken).
    pub fn ids_in_use(&self) -> usize {
        lock(&self.inner).keys_by_id.len()
    }

    pub fn stats(&self) -> CacheStats {
        let entries = lock(&self.inner).sources.len();
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            entries: u64::try_from(entries).unwrap_or(u64::MAX),
            hits: self.counters.hits.sum(),
            misses: self.counters.misses.sum(),
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
