//! Public keys of clients and identity providers, for Keycloak's public key storage.
//!
//! - [`cache`]: a bounded LRU of key *sources* (Keycloak's model keys) with freshness limits, a
//!   reload window that counts attempts, one load at a time per source, and stale-on-error. It
//!   is generic over the cached value, so the JNI crate can keep ready Java objects in it.
//! - [`jwks`]: parsing a JWKS the way Keycloak's `JWKSUtils.getKeyWrappersForUse` filters it,
//!   into SubjectPublicKeyInfo DER that Java turns into `PublicKey`s.
//! - [`fetch`]: downloading a JWKS with timeouts, a size cap, Keycloak's trust and no redirects.
//!
//! [`Settings`] is the one configuration of all three, as Java sends it.

pub mod cache;
pub mod fetch;
pub mod jwks;

use std::num::NonZeroUsize;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

pub use cache::{CachePolicy, CacheStats, KeyCache, Loaded};
pub use fetch::{FetchPolicy, JwksClient};
pub use jwks::{JwksKeys, KeyUse};

/// The cache policy and the download settings, parsed from `publicKeyCacheConfigure`'s JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub cache: CachePolicy,
    pub fetch: FetchPolicy,
}

/// The wire form: milliseconds and bytes, every member optional (a missing one keeps its default).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsJson {
    min_time_between_requests_millis: Option<u64>,
    max_entries: Option<u64>,
    max_idle_millis: Option<u64>,
    max_age_millis: Option<u64>,
    stale_on_error_millis: Option<u64>,
    fetch_connect_timeout_millis: Option<u64>,
    fetch_timeout_millis: Option<u64>,
    max_response_bytes: Option<u64>,
    trusted_certificates: Option<Vec<String>>,
}

impl Settings {
    /// Parses the settings JSON. Limits that would disable the cache or the download (zero
    /// entries, zero timeouts, zero bytes) are refused; a zero window or stale limit is allowed
    /// and turns that feature off.
    pub fn from_json(json: &str) -> Result<Self> {
        let wire: SettingsJson = serde_json::from_str(json).map_err(|e| {
            Error::invalid_argument(format!("The public key cache settings are not valid: {e}"))
        })?;
        let defaults = Settings::default();
        let millis = |value: Option<u64>, default: Duration| {
            value.map(Duration::from_millis).unwrap_or(default)
        };
        let positive = |name: &str, value: Option<u64>| -> Result<Option<u64>> {
            match value {
                Some(0) => Err(Error::invalid_argument(format!(
                    "The public key cache setting {name} must be greater than 0"
                ))),
                other => Ok(other),
            }
        };

        let max_entries = match positive("maxEntries", wire.max_entries)? {
            Some(count) => usize::try_from(count)
                .ok()
                .and_then(NonZeroUsize::new)
                .ok_or_else(|| Error::invalid_argument("maxEntries is too large"))?,
            None => defaults.cache.max_entries,
        };
        let fetch_timeout = millis(
            positive("fetchTimeoutMillis", wire.fetch_timeout_millis)?,
            defaults.fetch.total_timeout,
        );
        let fetch = FetchPolicy {
            connect_timeout: millis(
                positive(
                    "fetchConnectTimeoutMillis",
                    wire.fetch_connect_timeout_millis,
                )?,
                defaults.fetch.connect_timeout,
            ),
            total_timeout: fetch_timeout,
            max_response_bytes: match positive("maxResponseBytes", wire.max_response_bytes)? {
                Some(bytes) => usize::try_from(bytes)
                    .map_err(|_| Error::invalid_argument("maxResponseBytes is too large"))?,
                None => defaults.fetch.max_response_bytes,
            },
            trusted_certificates: decode_certificates(
                wire.trusted_certificates.unwrap_or_default(),
            )?,
        };
        let cache = CachePolicy {
            min_time_between_requests: millis(
                wire.min_time_between_requests_millis,
                defaults.cache.min_time_between_requests,
            ),
            max_entries,
            max_idle: millis(
                positive("maxIdleMillis", wire.max_idle_millis)?,
                defaults.cache.max_idle,
            ),
            max_age: millis(
                positive("maxAgeMillis", wire.max_age_millis)?,
                defaults.cache.max_age,
            ),
            stale_on_error: millis(wire.stale_on_error_millis, defaults.cache.stale_on_error),
            // A caller waiting for another caller's load waits no longer than a download may take.
            follower_wait: fetch_timeout,
        };
        Ok(Settings { cache, fetch })
    }
}

/// Standard base64 DER certificates, each checked to parse, so that a bad truststore entry is
/// reported when Keycloak starts and names its position, not at the first HTTPS download.
fn decode_certificates(encoded: Vec<String>) -> Result<Vec<Vec<u8>>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    encoded
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| {
                    Error::invalid_argument(format!(
                        "trustedCertificates[{index}] is not standard base64"
                    ))
                })?;
            match X509Certificate::from_der(&der) {
                Ok(([], _)) => Ok(der),
                _ => Err(Error::invalid_argument(format!(
                    "trustedCertificates[{index}] is not a DER X.509 certificate"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn empty_settings_mean_the_documented_defaults() {
        let settings = Settings::from_json("{}").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(
            settings.cache.min_time_between_requests,
            Duration::from_secs(10)
        );
        assert_eq!(settings.cache.max_entries.get(), 1000);
        assert_eq!(settings.cache.max_idle, Duration::from_secs(3600));
        assert_eq!(settings.cache.max_age, Duration::from_secs(86400));
        assert_eq!(settings.cache.stale_on_error, Duration::from_secs(3600));
        assert_eq!(settings.fetch.connect_timeout, Duration::from_millis(2000));
        assert_eq!(settings.fetch.total_timeout, Duration::from_millis(5000));
        assert_eq!(settings.fetch.max_response_bytes, 1_048_576);
        assert_eq!(settings.cache.follower_wait, settings.fetch.total_timeout);
    }

    #[test]
    fn every_member_of_the_contract_is_read() {
        let settings = Settings::from_json(
            r#"{"minTimeBetweenRequestsMillis":1,"maxEntries":2,"maxIdleMillis":3,
                "maxAgeMillis":4,"staleOnErrorMillis":5,"fetchConnectTimeoutMillis":6,
                "fetchTimeoutMillis":7,"maxResponseBytes":8,"trustedCertificates":[]}"#,
        )
        .unwrap();
        assert_eq!(
            settings.cache,
            CachePolicy {
                min_time_between_requests: Duration::from_millis(1),
                max_entries: NonZeroUsize::new(2).unwrap(),
                max_idle: Duration::from_millis(3),
                max_age: Duration::from_millis(4),
                stale_on_error: Duration::from_millis(5),
                follower_wait: Duration::from_millis(7),
            }
        );
        assert_eq!(settings.fetch.connect_timeout, Duration::from_millis(6));
        assert_eq!(settings.fetch.total_timeout, Duration::from_millis(7));
        assert_eq!(settings.fetch.max_response_bytes, 8);
    }

    #[test]
    fn limits_that_would_disable_the_cache_are_refused() {
        for json in [
            r#"{"maxEntries":0}"#,
            r#"{"fetchTimeoutMillis":0}"#,
            r#"{"maxResponseBytes":0}"#,
            r#"{"maxAgeMillis":-1}"#,
            r#"{"maxEntry":5}"#,
            r#"{"trustedCertificates":["not base64!"]}"#,
            r#"{"trustedCertificates":["AAAA"]}"#,
            "[]",
        ] {
            let error = Settings::from_json(json).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{json}");
        }
        let zero_window = Settings::from_json(r#"{"minTimeBetweenRequestsMillis":0}"#).unwrap();
        assert_eq!(zero_window.cache.min_time_between_requests, Duration::ZERO);
    }
}
