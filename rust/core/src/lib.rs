//! The behaviour of the Keycloak AWS KMS extension, free of JNI: one folder per feature.
//!
//! - [`signing`]: realm signing keys in AWS KMS — configuration, validation on save, signing,
//!   the KMS client and its error mapping.
//! - [`public_keys`]: the cache of client and identity-provider public keys, and JWKS downloads.
//! - [`error`]: the one error type, with a stable kind and a transient flag.
//! - [`runtime`]: the process's I/O runtime, started on first use and stopped once, with a bound.
//! - [`telemetry`]: log records, rate-limited lines, counters and signing outcomes, which Java
//!   pulls for Keycloak's logging, metrics and the status view.
//!
//! The JNI contract both sides build to is described once, in `docs/design.md` ("JNI").
#![forbid(unsafe_code)]

pub mod error;
/// Entry points for the fuzz targets in `rust/fuzz`; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod proxy_environment;
pub mod public_keys;
pub mod runtime;
pub mod signing;
pub mod telemetry;

pub use error::{Error, ErrorKind, Result};
