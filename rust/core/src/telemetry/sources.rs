//! Rate-limited lines about public key sources (clients and identity providers):
//!
//! - a failed JWKS download (refused, timed out, too large, not a JWKS) is logged at WARN with its
//!   cause and the URL without credentials, query or fragment, at most once per [`LOG_WINDOW`]
//!   per URL with the count of the failures in between (those at DEBUG), as Keycloak's own
//!   storage logs every failed download at WARN;
//! - a kid a source does not publish ("PublicKey wasn't found in the storage", Keycloak's wording,
//!   which Java writes) is logged at WARN at most once per window per source, the others at
//!   DEBUG: a flood of tokens with made-up kids must not become a flood of lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use log::Level;
use once_cell::sync::Lazy;
use reqwest::Url;

use super::logs::{self, PUBLIC_KEYS};
use super::rate::{suppressed_note, RateLimiter, Verdict, LOG_WINDOW};
use crate::error::Error;
use crate::public_keys::fetch::display_url;

static DOWNLOADS: Lazy<RateLimiter> = Lazy::new(|| RateLimiter::new(LOG_WINDOW));
static UNKNOWN_KIDS: Lazy<RateLimiter> = Lazy::new(|| RateLimiter::new(LOG_WINDOW));

/// The URL as a log line shows it: no user info, query or fragment; a URL that does not parse is
/// shown as "(an unparsable URL)".
pub fn shown_url(url: &str) -> String {
    Url::parse(url.trim()).map_or_else(
        |_| "(an unparsable URL)".to_owned(),
        |url| display_url(&url),
    )
}

static DOWNLOADS_SUCCEEDED: AtomicU64 = AtomicU64::new(0);
static DOWNLOADS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Counts a JWKS download that succeeded.
pub fn download_succeeded() {
    DOWNLOADS_SUCCEEDED.fetch_add(1, Ordering::Relaxed);
}

/// JWKS downloads since the process started: `(succeeded, failed)`.
pub fn downloads() -> (u64, u64) {
    (
        DOWNLOADS_SUCCEEDED.load(Ordering::Relaxed),
        DOWNLOADS_FAILED.load(Ordering::Relaxed),
    )
}

/// Counts and logs a failed download of the JWKS at `url` (see the module comment).
pub fn download_failed(url: &str, error: &Error) {
    DOWNLOADS_FAILED.fetch_add(1, Ordering::Relaxed);
    let (level, message) = download_failed_line(&DOWNLOADS, url, error, Instant::now());
    logs::global().push(level, PUBLIC_KEYS, message);
}

fn download_failed_line(
    limiter: &RateLimiter,
    url: &str,
    error: &Error,
    now: Instant,
) -> (Level, String) {
    let shown = shown_url(url);
    let line = |note: String| {
        format!(
            "Could not download the JWKS at {shown}: {}. Requests with keys of this source use the \
             keys last downloaded (within stale-on-error-limit) or fail{note}",
            error.message()
        )
    };
    match limiter.check(&shown, now) {
        Verdict::Log { suppressed } => (
            Level::Warn,
            line(format!(
                "; logged again at most once per {} s{}",
                limiter.window().as_secs(),
                suppressed_note(suppressed, limiter.window())
            )),
        ),
        Verdict::Suppress => (Level::Debug, line(String::new())),
    }
}

/// For Java's "PublicKey wasn't found in the storage" line of `source_key`: `Some(note)` to log
/// it at WARN followed by `note` (empty, or the count of the lines only logged at DEBUG since),
/// `None` to log it at DEBUG.
pub fn unknown_kid_note(source_key: &str) -> Option<String> {
    unknown_kid_note_with(&UNKNOWN_KIDS, source_key, Instant::now())
}

fn unknown_kid_note_with(limiter: &RateLimiter, source_key: &str, now: Instant) -> Option<String> {
    match limiter.check(source_key, now) {
        Verdict::Log { suppressed } => Some(format!(
            " (logged at WARN at most once per {} s per source{})",
            limiter.window().as_secs(),
            if suppressed == 0 {
                String::new()
            } else {
                format!("; {suppressed} more since, at DEBUG")
            }
        )),
        Verdict::Suppress => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::time::Duration;

    #[test]
    fn urls_are_shown_without_credentials_query_or_fragment() {
        assert_eq!(
            shown_url("https://user:pw@idp.example:8443/certs?token=abc#x"),
            "https://idp.example:8443/certs"
        );
        assert_eq!(shown_url("not a url ?token=abc"), "(an unparsable URL)");
    }

    #[test]
    fn a_failed_download_is_a_warning_once_per_window_per_url() {
        let limiter = RateLimiter::new(LOG_WINDOW);
        let error = Error::new(
            ErrorKind::JwksFetchFailed,
            "http://h/certs answered HTTP 500",
        );
        let now = Instant::now();
        let (level, line) =
            download_failed_line(&limiter, "http://u:secret@h/certs?k=v", &error, now);
        assert_eq!(level, Level::Warn);
        assert!(
            line.contains("http://h/certs") && line.contains("HTTP 500"),
            "{line}"
        );
        assert!(!line.contains("secret") && !line.contains("k=v"), "{line}");
        let (level, _) = download_failed_line(&limiter, "http://h/certs?other", &error, now);
        assert_eq!(
            level,
            Level::Debug,
            "the same URL without its query is the same source"
        );
        let (level, _) = download_failed_line(&limiter, "http://other/certs", &error, now);
        assert_eq!(level, Level::Warn);
        let (level, line) = download_failed_line(
            &limiter,
            "http://h/certs",
            &error,
            now + LOG_WINDOW + Duration::from_secs(1),
        );
        assert_eq!(level, Level::Warn);
        assert!(line.contains("1 more like it"), "{line}");
    }

    #[test]
    fn a_flood_of_unknown_kids_warns_once_per_window_per_source() {
        let limiter = RateLimiter::new(LOG_WINDOW);
        let now = Instant::now();
        let notes: Vec<Option<String>> = (0..1000)
            .map(|_| unknown_kid_note_with(&limiter, "realm::client", now))
            .collect();
        assert_eq!(notes.iter().filter(|note| note.is_some()).count(), 1);
        assert!(unknown_kid_note_with(&limiter, "realm::other", now).is_some());
        let later = unknown_kid_note_with(&limiter, "realm::client", now + LOG_WINDOW)
            .expect("the next window warns again");
        assert!(later.contains("999 more since"), "{later}");
    }
}
