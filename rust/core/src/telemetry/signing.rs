//! Per `aws-kms` key provider (component), what signing did on this node: the last success and
//! the last failure (time, error kind), for the status view; and the log of its failures, which
//! an administrator can act on: the first failure of a kind is logged at ERROR (WARN when the
//! cause is transient: throttled beyond the retries, KMS unavailable, timeouts, network) with the
//! cause, the component, realm, kid and key, then at most once per [`LOG_WINDOW`] with the count
//! of the failures in between (those at DEBUG); the first success after failures is logged at
//! INFO. Nothing here holds secrets: the provider is named by ids.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::Level;
use once_cell::sync::Lazy;

use super::logs::{self, SIGNING};
use super::rate::{suppressed_note, RateLimiter, Verdict, LOG_WINDOW};
use crate::error::{Error, ErrorKind};

/// The names a provider is logged and listed with, read from its stored configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provider {
    pub component_id: String,
    pub realm: Option<String>,
    pub kid: Option<String>,
    pub key_arn: Option<String>,
}

impl Provider {
    /// The provider of `component_id` as its handle's configuration JSON names it (`realm`,
    /// `kid`, `keyArn`); only those non-secret members are read.
    pub fn from_config_json(component_id: &str, config_json: &str) -> Provider {
        let config: serde_json::Value = serde_json::from_str(config_json).unwrap_or_default();
        let member = |name: &str| config.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        Provider {
            component_id: component_id.to_owned(),
            realm: member("realm"),
            kid: member("kid"),
            key_arn: member("keyArn"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "aws-kms key provider {} of realm {} (kid {}, key {})",
            self.component_id,
            self.realm.as_deref().unwrap_or("(unknown)"),
            self.kid.as_deref().unwrap_or("(unknown)"),
            self.key_arn.as_deref().unwrap_or("(unknown)"),
        )
    }
}

/// A signing failure as the status view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub at_epoch_millis: u64,
    pub kind: ErrorKind,
    pub message: String,
}

/// One provider's signing on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub provider: Provider,
    pub last_success_epoch_millis: Option<u64>,
    pub last_failure: Option<Failure>,
    /// Failures since the last success.
    pub failures_since_success: u64,
    handle: u64,
}

#[derive(Debug, Default)]
struct State {
    component_of_handle: HashMap<u64, String>,
    statuses: HashMap<String, Status>,
}

/// The outcomes of every provider that obtained a handle; the process has one ([`global`]).
#[derive(Debug)]
pub struct SigningOutcomes {
    state: Mutex<State>,
    limiter: RateLimiter,
}

impl Default for SigningOutcomes {
    fn default() -> Self {
        SigningOutcomes {
            state: Mutex::new(State::default()),
            limiter: RateLimiter::new(LOG_WINDOW),
        }
    }
}

/// A log line to write once the lock is released.
type Line = (Level, String);

impl SigningOutcomes {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `handle` now names `provider`'s key; a previous handle of the component is forgotten, its
    /// outcomes are kept.
    pub fn bind(&self, handle: u64, provider: Provider) {
        let mut state = self.lock();
        let component_id = provider.component_id.clone();
        if let Some(status) = state.statuses.get_mut(&component_id) {
            let previous = std::mem::replace(&mut status.handle, handle);
            status.provider = provider;
            if previous != handle {
                state.component_of_handle.remove(&previous);
            }
        } else {
            state.statuses.insert(
                component_id.clone(),
                Status {
                    provider,
                    last_success_epoch_millis: None,
                    last_failure: None,
                    failures_since_success: 0,
                    handle,
                },
            );
        }
        state.component_of_handle.insert(handle, component_id);
    }

    /// Forgets a removed or reconfigured component.
    pub fn forget(&self, component_id: &str) {
        let mut state = self.lock();
        if let Some(status) = state.statuses.remove(component_id) {
            state.component_of_handle.remove(&status.handle);
        }
    }

    /// Records one signature's outcome and logs what the module comment says. A handle nobody
    /// bound, and `INVALID_HANDLE` (Java obtains a new handle and signs again), record nothing.
    pub fn record(
        &self,
        handle: u64,
        outcome: std::result::Result<(), &Error>,
        wire_code: fn(ErrorKind) -> &'static str,
    ) {
        if matches!(outcome, Err(error) if error.kind() == ErrorKind::InvalidHandle) {
            return;
        }
        let line = self.update(handle, outcome, wire_code, Instant::now());
        if let Some((level, message)) = line {
            logs::global().push(level, SIGNING, message);
        }
    }

    fn update(
        &self,
        handle: u64,
        outcome: std::result::Result<(), &Error>,
        wire_code: fn(ErrorKind) -> &'static str,
        now: Instant,
    ) -> Option<Line> {
        let at = epoch_millis();
        let mut state = self.lock();
        let component_id = state.component_of_handle.get(&handle)?.clone();
        let status = state.statuses.get_mut(&component_id)?;
        match outcome {
            Ok(()) => {
                status.last_success_epoch_millis = Some(at);
                let failures = std::mem::take(&mut status.failures_since_success);
                let last = status.last_failure.as_ref().map(|failure| failure.kind);
                match last {
                    Some(kind) if failures > 0 => {
                        self.limiter
                            .forget(&limiter_key(&component_id, wire_code(kind)));
                        Some((
                            Level::Info,
                            format!(
                                "{} signs again, after {failures} failed signature(s) (the last \
                                 with {})",
                                status.provider.describe(),
                                wire_code(kind)
                            ),
                        ))
                    }
                    _ => None,
                }
            }
            Err(error) => {
                status.failures_since_success += 1;
                status.last_failure = Some(Failure {
                    at_epoch_millis: at,
                    kind: error.kind(),
                    message: error.message().to_owned(),
                });
                let code = wire_code(error.kind());
                let verdict = self.limiter.check(&limiter_key(&component_id, code), now);
                let (level, note) = match verdict {
                    Verdict::Log { suppressed } => (
                        if error.is_transient() {
                            Level::Warn
                        } else {
                            Level::Error
                        },
                        format!(
                            "{}. Tokens signed with this key fail until it is fixed; this \
                             failure is logged again at most once per {} s{}",
                            if error.is_transient() {
                                " (temporary: KMS answered so even after the retries)"
                            } else {
                                ""
                            },
                            self.limiter.window().as_secs(),
                            suppressed_note(suppressed, self.limiter.window()),
                        ),
                    ),
                    Verdict::Suppress => (Level::Debug, String::new()),
                };
                Some((
                    level,
                    format!(
                        "{}: signing failed with {code}: {}{note}",
                        status.provider.describe(),
                        error.message()
                    ),
                ))
            }
        }
    }

    /// Every provider's status, by component id.
    pub fn snapshot(&self) -> Vec<Status> {
        let mut statuses: Vec<Status> = self.lock().statuses.values().cloned().collect();
        statuses.sort_by(|a, b| a.provider.component_id.cmp(&b.provider.component_id));
        statuses
    }
}

/// The JSON of `signingOutcomes`: `[{"componentId","realm","kid","keyArn","lastSuccess",
/// "lastFailure":{"at","code","message"},"failuresSinceSuccess"}…]`, times in epoch
/// milliseconds, absent members null.
pub fn to_json(statuses: &[Status], wire_code: fn(ErrorKind) -> &'static str) -> String {
    let entries: Vec<serde_json::Value> = statuses
        .iter()
        .map(|status| {
            serde_json::json!({
                "componentId": status.provider.component_id,
                "realm": status.provider.realm,
                "kid": status.provider.kid,
                "keyArn": status.provider.key_arn,
                "lastSuccess": status.last_success_epoch_millis,
                "lastFailure": status.last_failure.as_ref().map(|failure| serde_json::json!({
                    "at": failure.at_epoch_millis,
                    "code": wire_code(failure.kind),
                    "message": failure.message,
                })),
                "failuresSinceSuccess": status.failures_since_success,
            })
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
}

fn limiter_key(component_id: &str, code: &str) -> String {
    format!("{component_id}\u{0}{code}")
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

static GLOBAL: Lazy<SigningOutcomes> = Lazy::new(SigningOutcomes::default);

/// The process's outcomes, which the natives record and read.
pub fn global() -> &'static SigningOutcomes {
    &GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn code(kind: ErrorKind) -> &'static str {
        match kind {
            ErrorKind::KeyDisabled => "KEY_DISABLED",
            ErrorKind::Throttled => "THROTTLED",
            _ => "OTHER",
        }
    }

    fn outcomes_with_one_provider() -> SigningOutcomes {
        let outcomes = SigningOutcomes::default();
        outcomes.bind(
            7,
            Provider::from_config_json(
                "c1",
                r#"{"realm":"r1","kid":"k1","keyArn":"arn:aws:kms:us-east-1:1:key/x","secretAccessKey":"s3cr3t"}"#,
            ),
        );
        outcomes
    }

    #[test]
    fn a_provider_is_named_by_its_ids_and_never_by_its_secrets() {
        let outcomes = outcomes_with_one_provider();
        let disabled = Error::new(ErrorKind::KeyDisabled, "the key is disabled");
        let (level, line) = outcomes
            .update(7, Err(&disabled), code, Instant::now())
            .expect("a line");
        assert_eq!(level, Level::Error);
        assert!(line.contains("c1") && line.contains("r1") && line.contains("k1"));
        assert!(line.contains("arn:aws:kms:us-east-1:1:key/x"));
        assert!(line.contains("KEY_DISABLED: the key is disabled"));
        assert!(!line.contains("s3cr3t"));
    }

    #[test]
    fn a_repeated_failure_is_logged_once_per_window_with_the_count_of_the_others() {
        let outcomes = outcomes_with_one_provider();
        let throttled = Error::new(ErrorKind::Throttled, "Rate exceeded");
        let start = Instant::now();
        let levels: Vec<Level> = (0..5)
            .map(|n| {
                outcomes
                    .update(7, Err(&throttled), code, start + Duration::from_secs(n))
                    .expect("a line")
                    .0
            })
            .collect();
        assert_eq!(
            levels,
            [
                Level::Warn,
                Level::Debug,
                Level::Debug,
                Level::Debug,
                Level::Debug
            ]
        );
        let (level, line) = outcomes
            .update(
                7,
                Err(&throttled),
                code,
                start + LOG_WINDOW + Duration::from_secs(1),
            )
            .expect("a line");
        assert_eq!(level, Level::Warn);
        assert!(line.contains("4 more like it"), "{line}");
        let disabled = Error::new(ErrorKind::KeyDisabled, "disabled");
        assert_eq!(
            outcomes
                .update(7, Err(&disabled), code, start + Duration::from_secs(2))
                .expect("a line")
                .0,
            Level::Error,
            "another cause is logged at once"
        );
    }

    #[test]
    fn the_first_success_after_failures_is_logged_and_resets_the_window() {
        let outcomes = outcomes_with_one_provider();
        let disabled = Error::new(ErrorKind::KeyDisabled, "disabled");
        let now = Instant::now();
        let _ = outcomes.update(7, Err(&disabled), code, now);
        let _ = outcomes.update(7, Err(&disabled), code, now);
        let (level, line) = outcomes
            .update(7, Ok(()), code, now)
            .expect("recovery line");
        assert_eq!(level, Level::Info);
        assert!(line.contains("after 2 failed signature(s)"), "{line}");
        assert!(
            outcomes.update(7, Ok(()), code, now).is_none(),
            "quiet when it works"
        );
        assert_eq!(
            outcomes
                .update(7, Err(&disabled), code, now)
                .expect("a line")
                .0,
            Level::Error,
            "a new failure after recovery is logged at once"
        );
    }

    #[test]
    fn outcomes_are_kept_per_component_and_follow_a_new_handle() {
        let outcomes = outcomes_with_one_provider();
        let _ = outcomes.update(7, Ok(()), code, Instant::now());
        outcomes.bind(8, Provider::from_config_json("c1", r#"{"realm":"r1"}"#));
        assert!(outcomes.update(7, Ok(()), code, Instant::now()).is_none());
        let disabled = Error::new(ErrorKind::KeyDisabled, "disabled");
        let _ = outcomes.update(8, Err(&disabled), code, Instant::now());
        let snapshot = outcomes.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert!(snapshot[0].last_success_epoch_millis.is_some());
        assert_eq!(
            snapshot[0].last_failure.as_ref().map(|f| f.kind),
            Some(ErrorKind::KeyDisabled)
        );
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&snapshot, code)).expect("json");
        assert_eq!(json[0]["componentId"], "c1");
        assert_eq!(json[0]["lastFailure"]["code"], "KEY_DISABLED");
        assert_eq!(json[0]["failuresSinceSuccess"], 1);
        outcomes.forget("c1");
        assert!(outcomes.snapshot().is_empty());
    }

    #[test]
    fn unknown_handles_and_renewed_handles_record_nothing() {
        let outcomes = outcomes_with_one_provider();
        assert!(outcomes.update(99, Ok(()), code, Instant::now()).is_none());
        outcomes.record(7, Err(&Error::new(ErrorKind::InvalidHandle, "gone")), code);
        assert!(outcomes.snapshot()[0].last_failure.is_none());
    }
}
