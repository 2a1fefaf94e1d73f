//! Validation on save: reach the key with the configured credentials, check that it can sign the
//! configured algorithm, and read the public material that will be stored with the component.

use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeyMetadata, KeyState, KeyUsageType};
use serde::Serialize;

use crate::algorithm::KeySpec;
use crate::certificate;
use crate::config::{ProviderConfig, StoredKey};
use crate::error::{Error, ErrorKind, Result};
use crate::kms;
use crate::public_key::PublicKeyInfo;
use crate::runtime;
use crate::signing::SigningKey;

/// Everything validation may take: an administrator gets an answer within this time even when
/// the endpoint accepts connections and never answers.
pub const VALIDATION_DEADLINE: Duration = Duration::from_secs(8);

/// What validation learnt about the key; stored in the component config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyDescription {
    pub key_arn: String,
    pub key_spec: String,
    /// Base64 (standard) of the SPKI DER.
    pub public_key: String,
    pub kid: String,
    pub signing_algorithms: Vec<String>,
    /// PEM: the uploaded certificate (checked) or one minted with the KMS key.
    pub certificate: String,
    /// Whether `certificate` was minted here rather than uploaded.
    pub certificate_minted: bool,
}

/// What the `kms:Sign` permission check signs: fixed, so nothing about it is secret.
const PERMISSION_CHECK_MESSAGE: &[u8] = b"keycloak-aws-kms: kms:Sign permission check";

impl KeyDescription {
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::internal(format!("Could not encode the key description: {e}")))
    }
}

/// Checks the configuration against KMS and returns the public material to store, in the
/// order an administrator fixes things: fields (already parsed), credentials and key, key
/// metadata, public key, certificate, and finally one real signature to prove `kms:Sign`.
pub fn describe_signing_key(config: &ProviderConfig) -> Result<KeyDescription> {
    let deadline = Instant::now() + VALIDATION_DEADLINE;
    let timed_out = || {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "KMS did not answer within {} seconds",
                VALIDATION_DEADLINE.as_secs()
            ),
        )
    };
    let read_key = async {
        let metadata = kms::describe_key(&config.connection, &config.key_id, deadline).await?;
        let (key_arn, spec) = check_metadata(config, &metadata)?;
        let der = kms::get_public_key(&config.connection, &key_arn, deadline).await?;
        Ok::<_, Error>((metadata, key_arn, spec, der))
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let (metadata, key_arn, spec, der) = runtime::block_on(async {
        tokio::time::timeout(remaining, read_key)
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    })??;

    let public_key = PublicKeyInfo::from_der(&der).map_err(|e| {
        Error::new(
            ErrorKind::KmsRejected,
            format!("KMS returned an unusable public key for {key_arn}: {e}"),
        )
    })?;
    if public_key.key_spec() != spec {
        return Err(Error::new(
            ErrorKind::KmsRejected,
            format!(
                "KMS describes {key_arn} as {} but its public key is {}",
                spec.kms_name(),
                public_key.describe()
            ),
        ));
    }
    let now = unix_now()?;
    let uploaded = config
        .certificate
        .as_deref()
        .map(|pem| certificate::check_uploaded(pem, &public_key, &key_arn, now))
        .transpose()?;

    let key = SigningKey::new(
        config.connection.clone(),
        StoredKey {
            key_arn: key_arn.clone(),
            public_key: public_key.clone(),
        },
    )?;
    let sign = |algorithm, message: &[u8]| {
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        key.sign_within(algorithm, message, deadline)
    };
    sign(config.algorithm, PERMISSION_CHECK_MESSAGE)?;
    let (certificate, certificate_minted) = match uploaded {
        Some(pem) => (pem, false),
        None => (
            certificate::mint_self_signed(&config.certificate_subject, &public_key, now, &sign)?,
            true,
        ),
    };

    Ok(KeyDescription {
        key_spec: spec.kms_name().to_owned(),
        public_key: public_key.to_base64(),
        kid: public_key.kid(),
        signing_algorithms: metadata
            .signing_algorithms()
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        certificate: certificate.as_str().to_owned(),
        certificate_minted,
        key_arn,
    })
}

fn unix_now() -> Result<i64> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Error::internal("the system clock is before 1970"))?;
    i64::try_from(since_epoch.as_secs()).map_err(|_| Error::internal("the system clock overflows"))
}

/// Usage SIGN_VERIFY, state Enabled, a key spec that fits the algorithm and lists it.
fn check_metadata(config: &ProviderConfig, metadata: &KeyMetadata) -> Result<(String, KeySpec)> {
    let key_arn = metadata.arn().map(str::to_owned).ok_or_else(|| {
        Error::new(
            ErrorKind::KmsRejected,
            "KMS described the key without an ARN",
        )
    })?;
    match metadata.key_usage() {
        Some(KeyUsageType::SignVerify) => {}
        other => {
            return Err(Error::new(
                ErrorKind::KeyUsageMismatch,
                format!(
                    "KMS key {key_arn} has key usage {}; token signing needs an asymmetric \
                     SIGN_VERIFY key",
                    other.map_or("unknown", |u| u.as_str())
                ),
            ))
        }
    }
    match metadata.key_state() {
        Some(KeyState::Enabled) => {}
        Some(KeyState::Disabled) => {
            return Err(Error::new(
                ErrorKind::KeyDisabled,
                format!("KMS key {key_arn} is disabled; enable it in KMS first"),
            ))
        }
        Some(KeyState::PendingDeletion) | Some(KeyState::PendingReplicaDeletion) => {
            return Err(Error::new(
                ErrorKind::KeyInvalidState,
                format!("KMS key {key_arn} is pending deletion"),
            ))
        }
        other => {
            return Err(Error::new(
                ErrorKind::KeyInvalidState,
                format!(
                    "KMS key {key_arn} is in state {} and cannot sign",
                    other.map_or("unknown", |s| s.as_str())
                ),
            ))
        }
    }
    let spec_name = metadata.key_spec().map_or("unknown", |s| s.as_str());
    let spec = KeySpec::from_kms(spec_name)
        .map_err(|e| Error::new(e.kind(), format!("KMS key {key_arn}: {}", e.message())))?;
    spec.check_supports(config.algorithm)
        .map_err(|e| Error::new(e.kind(), format!("KMS key {key_arn}: {}", e.message())))?;
    let listed = metadata
        .signing_algorithms()
        .iter()
        .any(|a| a.as_str() == config.algorithm.kms_name());
    if !listed {
        return Err(Error::new(
            ErrorKind::KeySpecMismatch,
            format!(
                "KMS key {key_arn} does not offer {} ({})",
                config.algorithm.kms_name(),
                config.algorithm.jose_name()
            ),
        ));
    }
    Ok((key_arn, spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::types::{KeySpec as KmsKeySpec, SigningAlgorithmSpec};

    fn config(algorithm: &str) -> ProviderConfig {
        ProviderConfig::from_json(
            &serde_json::json!({"kmsKeyId": "alias/k", "region": "us-east-1", "algorithm": algorithm})
                .to_string(),
        )
        .expect("valid")
    }

    fn metadata(usage: KeyUsageType, state: KeyState, spec: KmsKeySpec) -> KeyMetadata {
        let algorithms = match spec {
            KmsKeySpec::EccNistP256 => vec![SigningAlgorithmSpec::EcdsaSha256],
            _ => vec![
                SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
                SigningAlgorithmSpec::RsassaPssSha256,
            ],
        };
        KeyMetadata::builder()
            .key_id("k")
            .arn("arn:aws:kms:us-east-1:111122223333:key/k")
            .key_usage(usage)
            .key_state(state)
            .key_spec(spec)
            .set_signing_algorithms(Some(algorithms))
            .build()
            .expect("metadata")
    }

    #[test]
    fn an_enabled_sign_verify_key_of_a_fitting_spec_passes() {
        let checked = check_metadata(
            &config("PS256"),
            &metadata(
                KeyUsageType::SignVerify,
                KeyState::Enabled,
                KmsKeySpec::Rsa2048,
            ),
        );
        assert_eq!(
            checked,
            Ok((
                "arn:aws:kms:us-east-1:111122223333:key/k".to_owned(),
                KeySpec::Rsa2048
            ))
        );
    }

    #[test]
    fn each_unusable_key_is_refused_with_its_own_kind() {
        let cases = [
            (
                metadata(
                    KeyUsageType::EncryptDecrypt,
                    KeyState::Enabled,
                    KmsKeySpec::Rsa2048,
                ),
                "RS256",
                ErrorKind::KeyUsageMismatch,
            ),
            (
                metadata(
                    KeyUsageType::SignVerify,
                    KeyState::Disabled,
                    KmsKeySpec::Rsa2048,
                ),
                "RS256",
                ErrorKind::KeyDisabled,
            ),
            (
                metadata(
                    KeyUsageType::SignVerify,
                    KeyState::PendingDeletion,
                    KmsKeySpec::Rsa2048,
                ),
                "RS256",
                ErrorKind::KeyInvalidState,
            ),
            (
                metadata(
                    KeyUsageType::SignVerify,
                    KeyState::Enabled,
                    KmsKeySpec::Rsa2048,
                ),
                "ES256",
                ErrorKind::KeySpecMismatch,
            ),
            (
                metadata(
                    KeyUsageType::SignVerify,
                    KeyState::Enabled,
                    KmsKeySpec::EccNistP256,
                ),
                "ES384",
                ErrorKind::KeySpecMismatch,
            ),
            (
                // Listed algorithms lack RS512 even though the spec could make it.
                metadata(
                    KeyUsageType::SignVerify,
                    KeyState::Enabled,
                    KmsKeySpec::Rsa2048,
                ),
                "RS512",
                ErrorKind::KeySpecMismatch,
            ),
            (
                metadata(
                    KeyUsageType::SignVerify,
                    KeyState::Enabled,
                    KmsKeySpec::EccSecgP256K1,
                ),
                "ES256",
                ErrorKind::KeySpecMismatch,
            ),
        ];
        for (metadata, algorithm, kind) in cases {
            let error = check_metadata(&config(algorithm), &metadata).expect_err("refused");
            assert_eq!(error.kind(), kind, "{}", error.message());
            assert!(error
                .message()
                .contains("arn:aws:kms:us-east-1:111122223333:key/k"));
        }
    }
}
