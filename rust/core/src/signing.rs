//! Signing with a KMS key: hash locally, `Sign` with `MessageType=DIGEST`, verify the answer
//! against the stored public key before anyone sees it.
//!
//! Keys in use are kept in a registry and named by opaque handles (plain numbers, never
//! pointers). Registration is idempotent: the same stored configuration always gets the same
//! handle, so Keycloak re-creating its key provider per request does not grow the registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine as _;
use once_cell::sync::Lazy;

use crate::algorithm::SigningAlgorithm;
use crate::config::{Connection, StoredKey};
use crate::error::{Error, ErrorKind, Result};
use crate::kms::{self, Timeouts};
use crate::public_key::{self, PublicKeyInfo};
use crate::runtime;

/// A KMS key ready to sign: where it lives, how to reach it, and verifiers for every algorithm
/// its spec can make, parsed once.
pub struct SigningKey {
    key_arn: String,
    public_key: PublicKeyInfo,
    connection: Connection,
    verifiers: Vec<(SigningAlgorithm, ParsedPublicKey)>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_arn", &self.key_arn)
            .field("public_key", &self.public_key)
            .field("region", &self.connection.region)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn new(connection: Connection, stored: StoredKey) -> Result<Self> {
        let spec = stored.public_key.key_spec();
        let verifiers = SigningAlgorithm::ALL
            .into_iter()
            .filter(|algorithm| spec.supports(*algorithm))
            .map(|algorithm| Ok((algorithm, stored.public_key.verifier(algorithm)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(SigningKey {
            key_arn: stored.key_arn,
            public_key: stored.public_key,
            connection,
            verifiers,
        })
    }

    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }

    /// Signs `message` (the JWS signing input, or any bytes a JCA caller hands over). RSA
    /// signatures are returned raw; ECDSA signatures as DER, which Keycloak converts to R‖S.
    pub fn sign(&self, algorithm: SigningAlgorithm, message: &[u8]) -> Result<Vec<u8>> {
        self.sign_within(
            algorithm,
            message,
            Instant::now() + Timeouts::DEFAULT.deadline,
        )
    }

    /// [`SigningKey::sign`] with a caller's deadline (validation shares one across its calls).
    pub fn sign_within(
        &self,
        algorithm: SigningAlgorithm,
        message: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>> {
        let verifier = self
            .verifiers
            .iter()
            .find_map(|(a, v)| (*a == algorithm).then_some(v))
            .ok_or_else(
                || match self.public_key.key_spec().check_supports(algorithm) {
                    Err(mismatch) => mismatch,
                    Ok(()) => Error::internal("no verifier prepared for a supported algorithm"),
                },
            )?;
        let digest = algorithm.hash().digest(message);
        let signature = runtime::block_on(kms::sign_digest(
            &self.connection,
            &self.key_arn,
            algorithm,
            digest.as_ref(),
            deadline,
        ))??;
        public_key::verify_digest(verifier, &digest, &signature)
            .map_err(|e| Error::new(e.kind(), format!("{} (key {})", e.message(), self.key_arn)))?;
        Ok(signature)
    }
}

/// The process-wide registry of signing keys by handle.
struct Registry {
    by_handle: HashMap<u64, Arc<SigningKey>>,
    by_fingerprint: HashMap<String, u64>,
    next_handle: u64,
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(|| {
    Mutex::new(Registry {
        by_handle: HashMap::new(),
        by_fingerprint: HashMap::new(),
        // 0 is what a failed native call returns to Java, so it never names a key.
        next_handle: 1,
    })
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock cannot leave the maps half-updated (each update is a
    // single insert), so a poisoned lock is safe to keep using.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers the signing key described by a stored component configuration and returns its
/// handle. No network call is made.
pub fn register(config_json: &str) -> Result<u64> {
    let fingerprint = fingerprint(config_json)?;
    if let Some(handle) = registry().by_fingerprint.get(&fingerprint) {
        return Ok(*handle);
    }
    let (config, stored) = StoredKey::from_json(config_json)?;
    let key = Arc::new(SigningKey::new(config.connection, stored)?);
    let mut registry = registry();
    if let Some(handle) = registry.by_fingerprint.get(&fingerprint) {
        return Ok(*handle);
    }
    let handle = registry.next_handle;
    registry.next_handle += 1;
    registry.by_handle.insert(handle, key);
    registry.by_fingerprint.insert(fingerprint, handle);
    Ok(handle)
}

/// Signs with a registered key; `jca_algorithm` is the JCA `Signature` name Keycloak asked for.
pub fn sign(handle: u64, jca_algorithm: &str, message: &[u8]) -> Result<Vec<u8>> {
    let algorithm = SigningAlgorithm::from_jca(jca_algorithm)?;
    let key = registry().by_handle.get(&handle).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidHandle,
            format!("No signing key is registered as handle {handle}"),
        )
    })?;
    // The lock is released: signing waits for KMS without blocking other keys.
    key.sign(algorithm, message)
}

/// A canonical digest of the configuration (keys sorted), so that the same configuration sent
/// with its fields in another order maps to the same handle.
fn fingerprint(config_json: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(config_json).map_err(|e| {
        Error::invalid_argument(format!("The provider configuration is not JSON: {e}"))
    })?;
    let canonical = value.to_string();
    let digest = crate::algorithm::Hash::Sha256.digest(canonical.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_without_stored_public_material_is_refused() {
        let error = register(r#"{"kmsKeyId":"alias/a","region":"us-east-1"}"#).expect_err("stale");
        assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
    }

    #[test]
    fn unknown_handles_are_refused() {
        let error = sign(u64::MAX, "SHA256withRSA", b"m").expect_err("unknown");
        assert_eq!(error.kind(), ErrorKind::InvalidHandle);
    }

    #[test]
    fn the_same_configuration_in_another_field_order_has_the_same_fingerprint() {
        assert_eq!(
            fingerprint(r#"{"a":"1","b":"2"}"#),
            fingerprint(r#"{"b":"2","a":"1"}"#)
        );
        assert_ne!(fingerprint(r#"{"a":"1"}"#), fingerprint(r#"{"a":"2"}"#));
    }
}
