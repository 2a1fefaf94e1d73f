//! Signing tokens with a key that stays in AWS KMS, and checking a provider's configuration
//! before it is saved.
//!
//! - [`config`]: the key provider's configuration as Keycloak stores it, checked field by field;
//!   the credentials modes and the fields each one uses.
//! - [`validation`]: what saving a provider checks against KMS, and the public material it stores.
//! - [`policy`]: the operator's rules for what realm administrators may configure (server options).
//! - [`destination`]: where a configuration sends its secrets; a kept secret never follows a change.
//! - [`key`]: hashing, `Sign` with `MessageType=DIGEST`, local verification of every answer.
//! - [`registry`]: the keys in use, by component, with their handles, and their lifecycle.
//! - [`kms`]: KMS clients and credentials, calls under deadlines and retries, error mapping.
//! - [`algorithm`]: the JOSE ↔ JCA ↔ KMS algorithm and key-spec rules (the one place).
//! - [`spki`]: the KMS key's SubjectPublicKeyInfo: parsing, kid, verifiers.
//! - [`certificate`]: checking an uploaded certificate against the key, or minting one via KMS.
//! - [`catalogue`]: the rules above as data, for the Java side's pinning tests.

pub mod algorithm;
pub mod catalogue;
pub mod certificate;
pub mod config;
pub mod destination;
pub mod key;
pub mod kms;
pub mod policy;
pub mod registry;
pub mod spki;
pub mod validation;
