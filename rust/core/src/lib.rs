//! Signing Keycloak tokens with AWS KMS: the behaviour of the extension, free of JNI.
//!
//! - [`config`]: the key provider's configuration as Keycloak stores it, checked field by field.
//! - [`validation`]: what saving a provider checks against KMS, and the public material it stores.
//! - [`signing`]: hashing, `Sign` with `MessageType=DIGEST`, local verification, key handles.
//! - [`kms`]: shared clients, timeouts, retries and the mapping of every SDK failure.
//! - [`algorithm`], [`public_key`]: JOSE/JCA/KMS algorithm rules, SPKI parsing and key ids.
//! - [`certificate`]: checking an uploaded certificate against the key, or minting one via KMS.
//! - [`public_keys`]: the cache of client and identity-provider public keys, and JWKS downloads.
//! - [`error`]: the one error type, with a stable kind and a transient flag.
#![forbid(unsafe_code)]

pub mod algorithm;
pub mod certificate;
pub mod config;
pub mod error;
pub mod kms;
pub mod public_key;
pub mod public_keys;
mod runtime;
pub mod signing;
pub mod validation;

pub use error::{Error, ErrorKind, Result};
