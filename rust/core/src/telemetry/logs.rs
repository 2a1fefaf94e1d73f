//! Log records of the native side, for Keycloak's logging (JBoss Logging).
//!
//! Rust code logs through the `log` facade; [`install`] makes [`Records`] the facade's logger. A
//! record is formatted at once and put into a bounded in-memory queue: when the queue is full the
//! oldest record is dropped and counted, so logging never waits for the consumer and a signing
//! thread never blocks on it. One Java daemon thread drains the queue ([`drain`] waits up to a
//! timeout for records) and writes each record to the JBoss logger of its category.
//!
//! Which records are made at all is decided here, per category, from the levels Java reads from
//! Keycloak's logging configuration and hands over ([`configure_levels`], at start and whenever
//! they change); until then only WARN and ERROR are kept. The categories are
//! [`CATEGORIES`], documented in `docs/operations.md`, and set with Keycloak's own
//! `--log-level=<category>:<level>`.
//!
//! Records never carry secrets: messages are the same texts errors carry (key ids, kids, URLs
//! without credentials or query, error kinds).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};
use once_cell::sync::Lazy;

use crate::error::{Error, Result};

/// Records of signing: KMS failures of key providers, their recovery.
pub const SIGNING: &str = "dev.awskms.keycloak.native.signing";
/// Records of the public key storage `native-lru`: failed JWKS downloads.
pub const PUBLIC_KEYS: &str = "dev.awskms.keycloak.native.publickeys";
/// Everything else the native library logs (its own bridge, and the libraries it is built from).
pub const OTHER: &str = "dev.awskms.keycloak.native";

/// Every category a record can have, in the order of [`Records`]' levels.
pub const CATEGORIES: [&str; 3] = [SIGNING, PUBLIC_KEYS, OTHER];

/// Records kept at most before the oldest are dropped.
pub const QUEUE_CAPACITY: usize = 2_000;
/// The longest message passed on, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2_000;
/// The level of every category until Java says otherwise.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::Warn;

/// One record, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub level: Level,
    pub category: &'static str,
    pub message: String,
}

/// What one [`Records::drain`] hands over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub records: Vec<LogRecord>,
    /// Records dropped (queue full) since the previous drain.
    pub dropped: u64,
}

impl Drained {
    /// The JSON of `drainLogRecords`:
    /// `{"dropped":n,"records":[{"category","level","message"}…]}`.
    pub fn to_json(&self) -> String {
        let records: Vec<serde_json::Value> = self
            .records
            .iter()
            .map(|record| {
                serde_json::json!({
                    "category": record.category,
                    "level": record.level.as_str(),
                    "message": record.message,
                })
            })
            .collect();
        serde_json::json!({ "dropped": self.dropped, "records": records }).to_string()
    }
}

#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<LogRecord>,
    dropped_since_drain: u64,
    /// Set by [`Records::wake`]; the next (or current) drain returns at once.
    woken: bool,
}

/// The logger: levels per category and the queue. The process has one ([`global`]); tests make
/// their own.
#[derive(Debug)]
pub struct Records {
    levels: [AtomicU8; CATEGORIES.len()],
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    dropped_total: AtomicU64,
}

impl Default for Records {
    fn default() -> Self {
        Records::with_capacity(QUEUE_CAPACITY)
    }
}

impl Records {
    pub fn with_capacity(capacity: usize) -> Self {
        Records {
            levels: std::array::from_fn(|_| AtomicU8::new(filter_to_u8(DEFAULT_LEVEL))),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped_total: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every update is a push or a swap: a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The level records of `category` are made at.
    pub fn level(&self, category: &str) -> LevelFilter {
        u8_to_filter(self.levels[category_index(category)].load(Ordering::Relaxed))
    }

    /// The most verbose level of any category (the facade's global filter).
    pub fn max_level(&self) -> LevelFilter {
        self.levels
            .iter()
            .map(|level| u8_to_filter(level.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(DEFAULT_LEVEL)
    }

    /// Whether a record of `level` in `category` would be kept.
    pub fn enabled(&self, category: &str, level: Level) -> bool {
        level <= self.level(category)
    }

    /// Sets the levels from `{"<category>":"OFF|ERROR|WARN|INFO|DEBUG|TRACE"…}`; categories left
    /// out keep theirs. An unknown category or level is refused and nothing changes.
    pub fn configure_levels(&self, levels_json: &str) -> Result<()> {
        let levels: std::collections::BTreeMap<String, String> = serde_json::from_str(levels_json)
            .map_err(|e| {
                Error::invalid_argument(format!(
                    "The log levels are not a JSON object of strings: {e}"
                ))
            })?;
        let mut parsed = Vec::with_capacity(levels.len());
        for (category, level) in &levels {
            let index = CATEGORIES
                .iter()
                .position(|known| known == category)
                .ok_or_else(|| {
                    Error::invalid_argument(format!("Unknown native log category {category}"))
                })?;
            let filter: LevelFilter = level.parse().map_err(|_| {
                Error::invalid_argument(format!("Unknown log level {level} for {category}"))
            })?;
            parsed.push((index, filter));
        }
        for (index, filter) in parsed {
            self.levels[index].store(filter_to_u8(filter), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues a record if its category's level allows it; never waits for the consumer.
    pub fn push(&self, level: Level, category: &'static str, message: String) {
        if !self.enabled(category, level) {
            return;
        }
        let message = bounded(message);
        let mut queue = self.lock();
        if queue.records.len() >= self.capacity {
            queue.records.pop_front();
            queue.dropped_since_drain += 1;
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
        queue.records.push_back(LogRecord {
            level,
            category,
            message,
        });
        drop(queue);
        self.ready.notify_one();
    }

    /// Takes every queued record, waiting up to `wait` for the first one (or until [`wake`]).
    ///
    /// [`wake`]: Records::wake
    pub fn drain(&self, wait: Duration) -> Drained {
        let deadline = Instant::now() + wait;
        let mut queue = self.lock();
        while queue.records.is_empty() && !queue.woken {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = self
                .ready
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        queue.woken = false;
        Drained {
            records: queue.records.drain(..).collect(),
            dropped: std::mem::take(&mut queue.dropped_since_drain),
        }
    }

    /// Ends a waiting [`drain`](Records::drain) at once (Keycloak shuts down).
    pub fn wake(&self) {
        self.lock().woken = true;
        self.ready.notify_all();
    }

    /// Records dropped since the process started.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }
}

/// The category of a record: its target when that names one, else by the Rust module it comes
/// from.
pub fn category_of(target: &str) -> &'static str {
    if let Some(known) = CATEGORIES.iter().find(|known| **known == target) {
        return known;
    }
    let module = target.strip_prefix("keycloak_aws_kms_core::").unwrap_or("");
    if module.starts_with("signing") {
        SIGNING
    } else if module.starts_with("public_keys") {
        PUBLIC_KEYS
    } else {
        OTHER
    }
}

fn category_index(category: &str) -> usize {
    CATEGORIES
        .iter()
        .position(|known| *known == category)
        .unwrap_or(CATEGORIES.len() - 1)
}

fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        message
    } else {
        let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        cut.push('…');
        cut
    }
}

fn filter_to_u8(filter: LevelFilter) -> u8 {
    filter as usize as u8
}

fn u8_to_filter(value: u8) -> LevelFilter {
    match value {
        0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// The facade's logger: [`global`] behind `log::set_logger`.
#[derive(Debug)]
struct Facade;

impl Log for Facade {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        global().enabled(category_of(metadata.target()), metadata.level())
    }

    fn log(&self, record: &Record<'_>) {
        let category = category_of(record.target());
        if global().enabled(category, record.level()) {
            global().push(record.level(), category, record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static GLOBAL: Lazy<Records> = Lazy::new(Records::default);
static FACADE: Facade = Facade;

/// The process's records, which the natives drain.
pub fn global() -> &'static Records {
    &GLOBAL
}

/// Makes the process's records the `log` facade's logger (once; later calls do nothing).
pub fn install() {
    if log::set_logger(&FACADE).is_ok() {
        log::set_max_level(global().max_level());
    }
}

/// [`Records::configure_levels`] on the process's records, and the facade's filter to match.
pub fn configure_levels(levels_json: &str) -> Result<()> {
    install();
    global().configure_levels(levels_json)?;
    log::set_max_level(global().max_level());
    Ok(())
}

/// [`Records::drain`] on the process's records.
pub fn drain(wait: Duration) -> Drained {
    global().drain(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn only_warnings_and_errors_are_kept_until_levels_are_configured() {
        let records = Records::default();
        records.push(Level::Info, SIGNING, "info".into());
        records.push(Level::Warn, SIGNING, "warn".into());
        let drained = records.drain(Duration::ZERO);
        assert_eq!(drained.records.len(), 1);
        assert_eq!(drained.records[0].message, "warn");
    }

    #[test]
    fn levels_are_honoured_per_category() {
        let records = Records::default();
        records
            .configure_levels(&format!(
                r#"{{"{SIGNING}":"DEBUG","{PUBLIC_KEYS}":"ERROR"}}"#
            ))
            .expect("levels");
        records.push(Level::Debug, SIGNING, "signing debug".into());
        records.push(Level::Warn, PUBLIC_KEYS, "public keys warn".into());
        records.push(Level::Warn, OTHER, "other warn".into());
        let messages: Vec<String> = records
            .drain(Duration::ZERO)
            .records
            .into_iter()
            .map(|record| record.message)
            .collect();
        assert_eq!(messages, ["signing debug", "other warn"]);
        assert_eq!(records.max_level(), LevelFilter::Debug);
    }

    #[test]
    fn unknown_categories_and_levels_are_refused_and_change_nothing() {
        let records = Records::default();
        for bad in [
            r#"{"dev.awskms.keycloak.native.nope":"DEBUG"}"#.to_owned(),
            format!(r#"{{"{SIGNING}":"DEBUG","{OTHER}":"LOUD"}}"#),
            "[]".to_owned(),
        ] {
            assert!(records.configure_levels(&bad).is_err(), "{bad}");
        }
        assert_eq!(records.level(SIGNING), LevelFilter::Warn);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_records_and_counts_them() {
        let records = Records::with_capacity(3);
        for n in 0..5 {
            records.push(Level::Warn, SIGNING, format!("record {n}"));
        }
        let drained = records.drain(Duration::ZERO);
        let messages: Vec<&str> = drained.records.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["record 2", "record 3", "record 4"]);
        assert_eq!(drained.dropped, 2);
        assert_eq!(records.drain(Duration::ZERO).dropped, 0, "counted once");
        assert_eq!(records.dropped_total(), 2);
    }

    #[test]
    fn a_drain_waits_for_the_first_record_and_no_longer() {
        let records = Arc::new(Records::default());
        let started = Instant::now();
        assert!(records.drain(Duration::from_millis(50)).records.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));

        let producer = Arc::clone(&records);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            producer.push(Level::Error, SIGNING, "late".into());
        });
        let started = Instant::now();
        let drained = records.drain(Duration::from_secs(10));
        assert_eq!(drained.records.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(5));
        thread.join().expect("producer");
    }

    #[test]
    fn a_wake_ends_a_waiting_drain_at_once() {
        let records = Arc::new(Records::default());
        let waker = Arc::clone(&records);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            waker.wake();
        });
        let started = Instant::now();
        assert!(records.drain(Duration::from_secs(10)).records.is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
        thread.join().expect("waker");
    }

    #[test]
    fn long_messages_are_cut() {
        let records = Records::default();
        records.push(Level::Warn, SIGNING, "x".repeat(MAX_MESSAGE_CHARS + 10));
        let message = &records.drain(Duration::ZERO).records[0].message;
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn records_are_filed_by_target_or_module() {
        assert_eq!(category_of(SIGNING), SIGNING);
        assert_eq!(
            category_of("keycloak_aws_kms_core::signing::kms::calls"),
            SIGNING
        );
        assert_eq!(
            category_of("keycloak_aws_kms_core::public_keys::fetch"),
            PUBLIC_KEYS
        );
        assert_eq!(category_of("rustls::client"), OTHER);
    }

    #[test]
    fn drained_records_are_json_for_java() {
        let drained = Drained {
            records: vec![LogRecord {
                level: Level::Warn,
                category: SIGNING,
                message: "a \"quoted\" cause".into(),
            }],
            dropped: 3,
        };
        let json: serde_json::Value = serde_json::from_str(&drained.to_json()).expect("json");
        assert_eq!(json["dropped"], 3);
        assert_eq!(json["records"][0]["level"], "WARN");
        assert_eq!(json["records"][0]["category"], SIGNING);
        assert_eq!(json["records"][0]["message"], "a \"quoted\" cause");
    }
}
