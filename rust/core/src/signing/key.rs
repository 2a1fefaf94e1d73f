//! Signing with a KMS key: hash locally, `Sign` with `MessageType=DIGEST`, verify the answer
//! against the stored public key before anyone sees it.

use std::time::Instant;

use aws_lc_rs::signature::ParsedPublicKey;

use crate::error::{Error, Result};
use crate::runtime;
use crate::signing::algorithm::SigningAlgorithm;
use crate::signing::config::{Connection, StoredKey};
use crate::signing::kms::{calls, SharedClient, Timeouts};
use crate::signing::spki::{self, PublicKeyInfo};

/// A KMS key ready to sign: where it lives, how to reach it, and verifiers for every algorithm
/// its spec can make, parsed once.
pub struct SigningKey {
    client: SharedClient,
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
    pub fn new(client: SharedClient, connection: Connection, stored: StoredKey) -> Result<Self> {
        let spec = stored.public_key.key_spec();
        let verifiers = SigningAlgorithm::ALL
            .into_iter()
            .filter(|algorithm| spec.supports(*algorithm))
            .map(|algorithm| Ok((algorithm, stored.public_key.verifier(algorithm)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(SigningKey {
            client,
            key_arn: stored.key_arn,
            public_key: stored.public_key,
            connection,
            verifiers,
        })
    }

    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }

    /// Where and as whom this key calls KMS.
    pub fn connection(&self) -> &Connection {
        &self.connection
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
        let signature = runtime::block_on(calls::sign_digest(
            &self.client,
            &self.connection,
            &self.key_arn,
            algorithm,
            digest.as_ref(),
            deadline,
        ))??;
        spki::verify_digest(verifier, &digest, &signature)
            .map_err(|e| Error::new(e.kind(), format!("{} (key {})", e.message(), self.key_arn)))?;
        Ok(signature)
    }
}
