//! Credentials that expire (an assumed role's, the default chain's when it finds instance,
//! container or web-identity credentials), held in memory and refreshed **ahead of expiry by a
//! background task**, so that no token request waits for STS or the metadata service.
//!
//! - The task fetches the first credentials as soon as the client is built, then sleeps until
//!   [`refresh_at`] (expiry minus a margin of a quarter of the lifetime, at most
//!   [`MAX_REFRESH_MARGIN`]) and fetches new ones. A failed refresh is tried again with
//!   back-off while the credentials in hand stay valid: an STS throttle, 5xx or slow answer at
//!   refresh time is invisible to token requests.
//! - A request reads the credentials in hand while they are [`usable`] (not within
//!   [`expiry_buffer`] of expiry). Only when there are none (the first fetch failed or has not
//!   finished, or every refresh failed until expiry) does it fetch itself, one fetch at a time
//!   (single flight), bounded by the call's deadline.
//! - Credentials without an expiry (static keys from the environment) are fetched once.
//! - The task holds the state only weakly and is aborted when the client is dropped
//!   ([`RefreshTask`]): nothing outlives the last signing key using the client.

use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

/// The refresh margin for long-lived credentials: an hour-long session is refreshed five
/// minutes before it expires.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Requests stop using credentials this close to their expiry (the SDKs' default buffer),
/// less for very short lifetimes.
const MAX_EXPIRY_BUFFER: Duration = Duration::from_secs(10);
/// Back-off between failed background refreshes: doubling from the first, up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(30);

/// Credentials and when they were obtained.
#[derive(Clone, Debug)]
struct Held {
    credentials: Credentials,
    obtained: SystemTime,
}

impl Held {
    fn lifetime(&self) -> Option<Duration> {
        let expiry = self.credentials.expiry()?;
        Some(
            expiry
                .duration_since(self.obtained)
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// When credentials obtained at `obtained` and expiring at `expiry` are refreshed: at expiry
/// minus a quarter of their lifetime, at most [`MAX_REFRESH_MARGIN`] before.
pub fn refresh_at(obtained: SystemTime, expiry: SystemTime) -> SystemTime {
    let lifetime = expiry.duration_since(obtained).unwrap_or(Duration::ZERO);
    expiry - (lifetime / 4).min(MAX_REFRESH_MARGIN)
}

/// How close to expiry credentials stop being handed to requests: a tenth of their lifetime,
/// at most [`MAX_EXPIRY_BUFFER`].
pub fn expiry_buffer(lifetime: Duration) -> Duration {
    (lifetime / 10).min(MAX_EXPIRY_BUFFER)
}

fn usable(held: &Held, now: SystemTime) -> bool {
    match (held.credentials.expiry(), held.lifetime()) {
        (Some(expiry), Some(lifetime)) => now + expiry_buffer(lifetime) < expiry,
        _ => true,
    }
}

/// What a refreshing provider did, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshStats {
    /// Credentials fetched by the background task.
    pub background_fetches: u64,
    /// Credentials a request had to fetch itself (none usable in hand).
    pub request_fetches: u64,
    /// Fetches that failed (either path).
    pub failures: u64,
}

#[derive(Debug)]
struct State {
    source: SharedCredentialsProvider,
    held: RwLock<Option<Held>>,
    /// One fetch at a time; a request that waited here finds the credentials just fetched.
    fetching: tokio::sync::Mutex<()>,
    stats: std::sync::Mutex<RefreshStats>,
}

impl State {
    fn current(&self, now: SystemTime) -> Option<Credentials> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        held.as_ref()
            .filter(|held| usable(held, now))
            .map(|held| held.credentials.clone())
    }

    fn count(&self, update: impl FnOnce(&mut RefreshStats)) {
        update(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Fetches from the source and keeps the result.
    async fn fetch(&self, background: bool) -> Result<Credentials, CredentialsError> {
        match self.source.provide_credentials().await {
            Ok(credentials) => {
                let held = Held {
                    credentials: credentials.clone(),
                    obtained: SystemTime::now(),
                };
                *self.held.write().unwrap_or_else(PoisonError::into_inner) = Some(held);
                self.count(|stats| {
                    if background {
                        stats.background_fetches += 1;
                    } else {
                        stats.request_fetches += 1;
                    }
                });
                Ok(credentials)
            }
            Err(error) => {
                self.count(|stats| stats.failures += 1);
                Err(error)
            }
        }
    }

    /// The path of a request: what is in hand, else one fetch (joined if one is running).
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if let Some(credentials) = self.current(SystemTime::now()) {
            return Ok(credentials);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(credentials) = self.current(SystemTime::now()) {
            return Ok(credentials);
        }
        self.fetch(false).await
    }

    /// How long the background task sleeps before its next fetch; `None` when the credentials
    /// in hand never expire.
    fn next_refresh_in(&self, now: SystemTime) -> Option<Duration> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        let Some(held) = held.as_ref() else {
            return Some(Duration::ZERO);
        };
        let expiry = held.credentials.expiry()?;
        let at = refresh_at(held.obtained, expiry);
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// The credentials provider a KMS client is built with: what is in hand, refreshed ahead of
/// expiry by [`RefreshTask`].
#[derive(Debug, Clone)]
pub struct RefreshingCredentials {
    state: Arc<State>,
}

impl RefreshingCredentials {
    /// Wraps `source` and starts its background refresh on the current tokio runtime.
    pub fn start(source: SharedCredentialsProvider) -> (RefreshingCredentials, RefreshTask) {
        let state = Arc::new(State {
            source,
            held: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            stats: std::sync::Mutex::new(RefreshStats::default()),
        });
        let task = tokio::spawn(refresh_ahead(Arc::downgrade(&state)));
        (RefreshingCredentials { state }, RefreshTask { task })
    }

    pub fn stats(&self) -> RefreshStats {
        *self
            .state
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// When the credentials in hand expire, if they do.
    pub fn expiry(&self) -> Option<SystemTime> {
        let held = self
            .state
            .held
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        held.as_ref().and_then(|held| held.credentials.expiry())
    }
}

impl ProvideCredentials for RefreshingCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.state.credentials())
    }
}

/// The background refresh of one client's credentials; aborted when dropped (with the client).
#[derive(Debug)]
pub struct RefreshTask {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn refresh_ahead(state: Weak<State>) {
    let mut retry = RETRY_FIRST;
    loop {
        let wait = match state.upgrade() {
            Some(state) => state.next_refresh_in(SystemTime::now()),
            None => return,
        };
        match wait {
            // Credentials that never expire: nothing to refresh.
            None => return,
            Some(wait) if !wait.is_zero() => {
                tokio::time::sleep(wait).await;
                // A request may have fetched meanwhile: look again.
                continue;
            }
            Some(_) => {}
        }
        let Some(strong) = state.upgrade() else {
            return;
        };
        let fetched = {
            let _fetching = strong.fetching.lock().await;
            strong.fetch(true).await
        };
        drop(strong);
        match fetched {
            Ok(_) => retry = RETRY_FIRST,
            Err(error) => {
                // The credentials in hand (if any) keep serving requests meanwhile. A refusal
                // (a denied role) is not hammered: the next try waits the longest pause.
                if !super::errors::credentials_error_is_transient(&error) {
                    retry = RETRY_CAP;
                }
                let pause = retry.mul_f64(0.5 + fastrand::f64() / 2.0);
                tokio::time::sleep(pause).await;
                retry = (retry * 2).min(RETRY_CAP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_long_session_is_refreshed_five_minutes_before_it_expires() {
        let obtained = SystemTime::UNIX_EPOCH;
        let expiry = obtained + Duration::from_secs(3600);
        assert_eq!(
            refresh_at(obtained, expiry),
            expiry - Duration::from_secs(300)
        );
        assert_eq!(expiry_buffer(Duration::from_secs(3600)), MAX_EXPIRY_BUFFER);
    }

    #[test]
    fn a_short_session_is_refreshed_when_three_quarters_of_it_have_passed() {
        let obtained = SystemTime::UNIX_EPOCH;
        let expiry = obtained + Duration::from_secs(20);
        assert_eq!(
            refresh_at(obtained, expiry),
            obtained + Duration::from_secs(15)
        );
        assert_eq!(
            expiry_buffer(Duration::from_secs(20)),
            Duration::from_secs(2)
        );
    }
}
