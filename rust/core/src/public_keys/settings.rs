//! The server options of the `native-lru` public key storage
//! (`--spi-public-key-storage--native-lru--<option>`): their names, units, defaults and limits,
//! kept here and nowhere else. Java sends the options an operator set, in these names and units
//! (`publicKeyCacheConfigure`), and shows the defaults from `publicKeyCacheDefaults`.

use std::num::NonZeroUsize;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::addresses::AddressPolicy;
use super::cache::CachePolicy;
use super::fetch::FetchPolicy;
use super::jwks::KeyLimits;
use crate::error::{Error, Result};

/// The command-line spelling of the options that download and parse messages name.
pub const DENY_PRIVATE_NETWORKS_OPTION: &str =
    "--spi-public-key-storage--native-lru--deny-private-networks";
pub const DENIED_ADDRESSES_OPTION: &str = "--spi-public-key-storage--native-lru--denied-addresses";
pub const MIN_RSA_KEY_SIZE_OPTION: &str = "--spi-public-key-storage--native-lru--min-rsa-key-size";

/// The range `minRsaKeySize` may be set to: the JDK's own floor (512) to the largest modulus
/// parsed at all.
pub const MIN_RSA_KEY_SIZE_RANGE: std::ops::RangeInclusive<u64> = 512..=16384;

/// The options in their own names and units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// Seconds between two load attempts of one source; 0 turns the window off.
    pub min_time_between_requests: u64,
    /// Sources kept.
    pub max_entries: u64,
    /// Seconds after which an unused source is dropped.
    pub max_idle: u64,
    /// Seconds after which keys are loaded again on their next use.
    pub max_age: u64,
    /// Seconds past their freshness that the last good keys serve while loads fail; 0: none.
    pub stale_on_error_limit: u64,
    /// Milliseconds to connect to a JWKS URL.
    pub fetch_connect_timeout: u64,
    /// Milliseconds a whole download may take; also how long a caller waits for another's load.
    pub fetch_timeout: u64,
    /// Largest JWKS response accepted, in bytes.
    pub max_response_size: u64,
    /// Also refuse downloads from loopback, private and shared addresses (link-local and cloud
    /// metadata addresses are refused whatever this says).
    pub deny_private_networks: bool,
    /// Smallest RSA modulus, in bits, of a downloaded key that is used.
    pub min_rsa_key_size: u64,
}

/// The defaults: what an operator who sets nothing gets.
pub const DEFAULT_OPTIONS: Options = Options {
    min_time_between_requests: 10,
    max_entries: 1000,
    max_idle: 3600,
    max_age: 86_400,
    stale_on_error_limit: 3600,
    fetch_connect_timeout: 2000,
    fetch_timeout: 5000,
    max_response_size: 1_048_576,
    deny_private_networks: false,
    min_rsa_key_size: 2048,
};

/// The default of `deniedAddresses` (networks refused besides the classes): none.
pub const DEFAULT_DENIED_ADDRESSES: &str = "";

impl Options {
    /// The JSON of `publicKeyCacheDefaults`: these options and the list option
    /// `deniedAddresses` with its default.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_value(self).unwrap_or_default();
        if let Some(members) = json.as_object_mut() {
            members.insert(
                "deniedAddresses".to_owned(),
                DEFAULT_DENIED_ADDRESSES.into(),
            );
        }
        json.to_string()
    }
}

/// The wire form of `publicKeyCacheConfigure`: every member optional (a missing one keeps its
/// default), unknown members refused.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OptionsJson {
    min_time_between_requests: Option<i64>,
    max_entries: Option<i64>,
    max_idle: Option<i64>,
    max_age: Option<i64>,
    stale_on_error_limit: Option<i64>,
    fetch_connect_timeout: Option<i64>,
    fetch_timeout: Option<i64>,
    max_response_size: Option<i64>,
    deny_private_networks: Option<bool>,
    min_rsa_key_size: Option<i64>,
    /// Networks separated by commas or white space, as the server option is written.
    denied_addresses: Option<String>,
    trusted_certificates: Option<Vec<String>>,
}

/// The cache policy and the download settings the options make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub cache: CachePolicy,
    pub fetch: FetchPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_options(&DEFAULT_OPTIONS, Vec::new())
    }
}

impl Settings {
    /// Parses `publicKeyCacheConfigure`'s JSON. Limits that would disable the cache or the
    /// download (zero entries, zero timeouts, zero bytes) are refused, naming the option; a zero
    /// window or stale limit is allowed and turns that feature off.
    pub fn from_json(json: &str) -> Result<Self> {
        let wire: OptionsJson = serde_json::from_str(json).map_err(|e| {
            Error::invalid_argument(format!(
                "The public key cache options are not valid: {}",
                crate::error::bounded_json_error(&e)
            ))
        })?;
        let d = DEFAULT_OPTIONS;
        let options = Options {
            min_time_between_requests: not_negative(
                "minTimeBetweenRequests",
                wire.min_time_between_requests,
                d.min_time_between_requests,
            )?,
            max_entries: positive("maxEntries", wire.max_entries, d.max_entries)?,
            max_idle: positive("maxIdle", wire.max_idle, d.max_idle)?,
            max_age: positive("maxAge", wire.max_age, d.max_age)?,
            stale_on_error_limit: not_negative(
                "staleOnErrorLimit",
                wire.stale_on_error_limit,
                d.stale_on_error_limit,
            )?,
            fetch_connect_timeout: positive(
                "fetchConnectTimeout",
                wire.fetch_connect_timeout,
                d.fetch_connect_timeout,
            )?,
            fetch_timeout: positive("fetchTimeout", wire.fetch_timeout, d.fetch_timeout)?,
            max_response_size: positive(
                "maxResponseSize",
                wire.max_response_size,
                d.max_response_size,
            )?,
            deny_private_networks: wire
                .deny_private_networks
                .unwrap_or(d.deny_private_networks),
            min_rsa_key_size: within(
                "minRsaKeySize",
                wire.min_rsa_key_size,
                MIN_RSA_KEY_SIZE_RANGE,
                d.min_rsa_key_size,
            )?,
        };
        let denied = AddressPolicy::parse_denied(
            wire.denied_addresses
                .as_deref()
                .unwrap_or(DEFAULT_DENIED_ADDRESSES),
        )?;
        let certificates = decode_certificates(wire.trusted_certificates.unwrap_or_default())?;
        let mut settings = Settings::from_options(&options, certificates);
        settings.fetch.addresses.denied = denied;
        Ok(settings)
    }

    /// The policies for checked options (every limit that must be positive is).
    fn from_options(options: &Options, trusted_certificates: Vec<Vec<u8>>) -> Self {
        let seconds = Duration::from_secs;
        let millis = Duration::from_millis;
        let fetch_timeout = millis(options.fetch_timeout);
        Settings {
            cache: CachePolicy {
                min_time_between_requests: seconds(options.min_time_between_requests),
                max_entries: usize::try_from(options.max_entries)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .unwrap_or(NonZeroUsize::MAX),
                max_idle: seconds(options.max_idle),
                max_age: seconds(options.max_age),
                stale_on_error: seconds(options.stale_on_error_limit),
                // A caller waiting for another caller's load waits no longer than a download may
                // take; a load permit expires after the same time.
                follower_wait: fetch_timeout,
            },
            fetch: FetchPolicy {
                connect_timeout: millis(options.fetch_connect_timeout),
                total_timeout: fetch_timeout,
                max_response_bytes: usize::try_from(options.max_response_size)
                    .unwrap_or(usize::MAX),
                trusted_certificates,
                addresses: AddressPolicy {
                    deny_private_networks: options.deny_private_networks,
                    denied: Vec::new(),
                },
                key_limits: KeyLimits {
                    min_rsa_bits: usize::try_from(options.min_rsa_key_size).unwrap_or(usize::MAX),
                },
            },
        }
    }
}

/// An option that must be above 0, or its default when unset.
fn positive(option: &str, value: Option<i64>, default: u64) -> Result<u64> {
    match value.map(u64::try_from) {
        Some(Ok(value)) if value > 0 => Ok(value),
        Some(_) => Err(Error::invalid_argument(format!(
            "{option} must be a positive number, got {}",
            value.unwrap_or_default()
        ))),
        None => Ok(default),
    }
}

/// An option that must lie in `range`, or its default when unset.
fn within(
    option: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64> {
    match value.map(u64::try_from) {
        Some(Ok(value)) if range.contains(&value) => Ok(value),
        Some(_) => Err(Error::invalid_argument(format!(
            "{option} must be between {} and {}, got {}",
            range.start(),
            range.end(),
            value.unwrap_or_default()
        ))),
        None => Ok(default),
    }
}

/// An option that may be 0 (turning its feature off), or its default when unset.
fn not_negative(option: &str, value: Option<i64>, default: u64) -> Result<u64> {
    match value.map(u64::try_from) {
        Some(Ok(value)) => Ok(value),
        Some(Err(_)) => Err(Error::invalid_argument(format!(
            "{option} must be 0 or more, got {}",
            value.unwrap_or_default()
        ))),
        None => Ok(default),
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
        assert_eq!(settings.fetch.addresses, AddressPolicy::default());
        assert_eq!(settings.fetch.key_limits.min_rsa_bits, 2048);
    }

    #[test]
    fn the_address_and_key_options_are_read() {
        let settings = Settings::from_json(
            r#"{"denyPrivateNetworks":true,"deniedAddresses":"127.0.0.77/32, 2001:db8::/32",
                "minRsaKeySize":3072}"#,
        )
        .unwrap();
        assert!(settings.fetch.addresses.deny_private_networks);
        assert_eq!(
            settings
                .fetch
                .addresses
                .denied
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["127.0.0.77/32", "2001:db8::/32"]
        );
        assert_eq!(settings.fetch.key_limits.min_rsa_bits, 3072);
        for (json, message) in [
            (
                r#"{"minRsaKeySize":256}"#,
                "minRsaKeySize must be between 512 and 16384, got 256",
            ),
            (
                r#"{"deniedAddresses":"10.0.0.1/8"}"#,
                "deniedAddresses: \"10.0.0.1/8\" has host bits set; the network is 10.0.0.0/8",
            ),
        ] {
            let error = Settings::from_json(json).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{json}");
            assert_eq!(error.message(), message);
        }
        assert!(Settings::from_json(r#"{"denyPrivateNetworks":"yes"}"#).is_err());
    }

    #[test]
    fn every_option_is_read_in_its_own_unit() {
        let settings = Settings::from_json(
            r#"{"minTimeBetweenRequests":1,"maxEntries":2,"maxIdle":3,
                "maxAge":4,"staleOnErrorLimit":5,"fetchConnectTimeout":6,
                "fetchTimeout":7,"maxResponseSize":8,"trustedCertificates":[]}"#,
        )
        .unwrap();
        assert_eq!(
            settings.cache,
            CachePolicy {
                min_time_between_requests: Duration::from_secs(1),
                max_entries: NonZeroUsize::new(2).unwrap(),
                max_idle: Duration::from_secs(3),
                max_age: Duration::from_secs(4),
                stale_on_error: Duration::from_secs(5),
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
            r#"{"fetchTimeout":0}"#,
            r#"{"maxResponseSize":0}"#,
            r#"{"maxAge":-1}"#,
            r#"{"maxEntry":5}"#,
            r#"{"trustedCertificates":["not base64!"]}"#,
            r#"{"trustedCertificates":["AAAA"]}"#,
            "[]",
        ] {
            let error = Settings::from_json(json).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{json}");
        }
        let zero_window = Settings::from_json(r#"{"minTimeBetweenRequests":0}"#).unwrap();
        assert_eq!(zero_window.cache.min_time_between_requests, Duration::ZERO);
        let refused = Settings::from_json(r#"{"maxEntries":0}"#).unwrap_err();
        assert_eq!(
            refused.message(),
            "maxEntries must be a positive number, got 0"
        );
    }

    #[test]
    fn the_defaults_are_published_in_option_names_and_units() {
        let defaults: serde_json::Value = serde_json::from_str(&DEFAULT_OPTIONS.to_json()).unwrap();
        assert_eq!(defaults["minTimeBetweenRequests"], 10);
        assert_eq!(defaults["fetchTimeout"], 5000);
        assert_eq!(defaults["denyPrivateNetworks"], false);
        assert_eq!(defaults["deniedAddresses"], "");
        assert_eq!(defaults["minRsaKeySize"], 2048);
        assert_eq!(defaults.as_object().unwrap().len(), 11);
    }
}
