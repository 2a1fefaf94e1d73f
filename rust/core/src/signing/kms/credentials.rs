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
//!   (single flight), bounded by the call's deadline. If that fetch fails, credentials still in
//!   hand and not within half the buffer of expiry serve the request anyway (AWS accepts them
//!   until they expire), and for [`FAILED_FETCH_PAUSE`] after a failed fetch requests use them
//!   without asking the source again: an STS outage that spans the buffer does not fail token
//!   requests, nor does every request add a call to a throttling STS.
//! - Credentials without an expiry (static keys from the environment) are fetched once.
//! - The task holds the state only weakly and is aborted when the client is dropped
//!   ([`RefreshTask`]): nothing outlives the last signing key using the client.

use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

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
/// After a request's fetch failed, requests served by last-resort credentials do not ask the
/// source again for this long.
const FAILED_FETCH_PAUSE: Duration = Duration::from_millis(500);

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
    expires_later_than(held, now, expiry_buffer)
}

/// Usable as a last resort when no fresh credentials can be had: not within half the expiry
/// buffer of expiry (the other half is kept against clock skew with AWS).
fn unexpired(held: &Held, now: SystemTime) -> bool {
    expires_later_than(held, now, |lifetime| expiry_buffer(lifetime) / 2)
}

/// Whether `held` expires later than `now` plus the margin its lifetime gives (or never).
fn expires_later_than(held: &Held, now: SystemTime, margin: impl Fn(Duration) -> Duration) -> bool {
    match (held.credentials.expiry(), held.lifetime()) {
        (Some(expiry), Some(lifetime)) => now + margin(lifetime) < expiry,
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
    /// Requests served with credentials inside the expiry buffer because no fresh ones could be
    /// fetched.
    pub last_resort_uses: u64,
}

#[derive(Debug)]
struct State {
    source: SharedCredentialsProvider,
    held: RwLock<Option<Held>>,
    /// One fetch at a time; a request that waited here finds the credentials just fetched.
    fetching: tokio::sync::Mutex<()>,
    /// When a request's fetch last failed: for a while after, requests do not ask again.
    last_failed_fetch: std::sync::Mutex<Option<Instant>>,
    stats: std::sync::Mutex<RefreshStats>,
}

impl State {
    fn current(&self, now: SystemTime) -> Option<Credentials> {
        self.held_if(|held| usable(held, now))
    }

    fn held_if(&self, accept: impl FnOnce(&Held) -> bool) -> Option<Credentials> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        held.as_ref()
            .filter(|held| accept(held))
            .map(|held| held.credentials.clone())
    }

    /// The unexpired credentials in hand, counted as a last-resort use.
    fn last_resort(&self) -> Option<Credentials> {
        let now = SystemTime::now();
        let credentials = self.held_if(|held| unexpired(held, now))?;
        self.count(|stats| stats.last_resort_uses += 1);
        Some(credentials)
    }

    fn failed_recently(&self) -> bool {
        self.last_failed_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < FAILED_FETCH_PAUSE)
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
        if self.failed_recently() {
            if let Some(credentials) = self.last_resort() {
                return Ok(credentials);
            }
        }
        match self.fetch(false).await {
            Ok(credentials) => Ok(credentials),
            Err(error) => {
                *self
                    .last_failed_fetch
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                self.last_resort().ok_or(error)
            }
        }
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
            last_failed_fetch: std::sync::Mutex::new(None),
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
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A source that always fails as a throttling STS does, counting the calls.
    #[derive(Debug)]
    struct ThrottledSource {
        calls: Arc<AtomicU32>,
    }

    impl ProvideCredentials for ThrottledSource {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(Err(CredentialsError::provider_error("Throttling")))
        }
    }

    /// A state holding a 100 s session that expires `left` from now (its buffer is 10 s).
    fn holding_session_with(left: Duration) -> (Arc<AtomicU32>, State) {
        let now = SystemTime::now();
        let calls = Arc::new(AtomicU32::new(0));
        let held = Held {
            credentials: Credentials::new(
                "ASIAHELD",
                "held-secret",
                Some("held-token".to_owned()),
                Some(now + left),
                "test",
            ),
            obtained: now + left - Duration::from_secs(100),
        };
        let state = State {
            source: SharedCredentialsProvider::new(ThrottledSource {
                calls: Arc::clone(&calls),
            }),
            held: RwLock::new(Some(held)),
            fetching: tokio::sync::Mutex::new(()),
            last_failed_fetch: std::sync::Mutex::new(None),
            stats: std::sync::Mutex::new(RefreshStats::default()),
        };
        (calls, state)
    }

    fn request(state: &State) -> Result<Credentials, CredentialsError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(state.credentials())
    }

    #[test]
    fn a_request_inside_the_expiry_buffer_keeps_valid_credentials_when_sts_fails() {
        // 7 s left: inside the 10 s buffer, outside its last half.
        let (source, state) = holding_session_with(Duration::from_secs(7));
        let credentials = request(&state).expect("the held credentials serve the request");
        assert_eq!(credentials.access_key_id(), "ASIAHELD");
        assert_eq!(
            source.load(Ordering::SeqCst),
            1,
            "the request asked STS first"
        );
        let stats = *state.stats.lock().expect("stats");
        assert_eq!((stats.failures, stats.last_resort_uses), (1, 1));
    }

    #[test]
    fn requests_right_after_a_failed_fetch_do_not_ask_a_failing_sts_again() {
        let (source, state) = holding_session_with(Duration::from_secs(7));
        for _ in 0..5 {
            request(&state).expect("the held credentials serve the request");
        }
        assert_eq!(source.load(Ordering::SeqCst), 1);
        assert_eq!(state.stats.lock().expect("stats").last_resort_uses, 5);
    }

    #[test]
    fn after_the_pause_a_request_asks_sts_again() {
        let (source, state) = holding_session_with(Duration::from_secs(7));
        request(&state).expect("the held credentials serve the request");
        std::thread::sleep(FAILED_FETCH_PAUSE + Duration::from_millis(50));
        request(&state).expect("the held credentials serve the request");
        assert_eq!(source.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn credentials_within_half_the_buffer_of_expiry_are_not_used_when_sts_fails() {
        let (_source, state) = holding_session_with(Duration::from_secs(3));
        let error = request(&state).expect_err("nothing usable: the fetch's failure");
        assert!(format!("{error:?}").contains("Throttling"), "{error:?}");
        assert_eq!(state.stats.lock().expect("stats").last_resort_uses, 0);
    }

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
