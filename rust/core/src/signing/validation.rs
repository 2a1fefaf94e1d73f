//! Validation on save: reach the key with the configured credentials, check that it can sign the
//! configured algorithm, and read the public material that will be stored with the component.

use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeyMetadata, KeyState, KeyUsageType};
use serde::Serialize;

use std::sync::Arc;

use serde::Deserialize;

use crate::error::{bounded_json_error, quoted_input, Error, ErrorKind, Result};
use crate::runtime;
use crate::signing::algorithm::KeySpec;
use crate::signing::certificate;
use crate::signing::config::{ProviderConfig, StoredKey};
use crate::signing::destination::{self, DestinationFields};
use crate::signing::key::SigningKey;
use crate::signing::kms::{self, Timeouts};
use crate::signing::policy::ServerPolicy;
use crate::signing::spki::PublicKeyInfo;

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
    /// JOSE `kty` of the key: `RSA` or `EC`; what Keycloak's `KeyWrapper` and `KeyFactory` need.
    pub key_type: String,
    /// JOSE `crv` of an EC key (`P-256`, `P-384`, `P-521`); absent for RSA.
    pub curve: Option<String>,
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

/// What Keycloak tells about a save besides the configuration, read from the same config JSON
/// (docs/design.md, `describeSigningKey`): the realm, the keys other realms' providers store, and
/// the stored configuration being replaced with the secrets this request kept from it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveContext {
    /// The realm's name.
    pub realm: Option<String>,
    /// The `keyArn` stored by every `aws-kms` provider of every other realm.
    #[serde(default)]
    pub keys_in_other_realms: Vec<String>,
    /// The stored configuration this save replaces (absent for a new provider or an import).
    pub previous: Option<DestinationFields>,
    /// The secret fields whose value is the stored one rather than entered in this request.
    #[serde(default)]
    pub kept_secrets: Vec<String>,
    /// Where the entered configuration sends its secrets.
    #[serde(skip)]
    entered: DestinationFields,
}

impl SaveContext {
    pub fn from_json(config_json: &str) -> Result<SaveContext> {
        let invalid = |e: serde_json::Error| {
            // serde's message may quote a value or member name: bounded, hidden characters escaped.
            Error::invalid_argument(format!(
                "The save context is not as expected: {}",
                bounded_json_error(&e)
            ))
        };
        let mut context: SaveContext = serde_json::from_str(config_json).map_err(invalid)?;
        context.entered = serde_json::from_str(config_json).map_err(invalid)?;
        context.realm = context
            .realm
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        Ok(context)
    }
}

/// Validation on save as Keycloak asks for it: the server policy and the rule for kept secrets
/// first, so that nothing is sent anywhere for a configuration they refuse; then
/// [`describe_signing_key`], with the key that `DescribeKey` names held to the policy (allowed
/// key patterns, not in use by another realm) before its public key is read or it signs.
pub fn describe_for_save(
    config: &ProviderConfig,
    context: &SaveContext,
    policy: &ServerPolicy,
) -> Result<KeyDescription> {
    let realm = context.realm.as_deref();
    policy.check_configuration(realm, config)?;
    destination::check_kept_secrets(
        &context.entered,
        context.previous.as_ref(),
        &context.kept_secrets,
    )?;
    describe_checking(config, &|key_arn| {
        policy.check_key(realm, &config.key_id, key_arn)?;
        policy.check_not_shared(key_arn, &context.keys_in_other_realms)
    })
}

/// Checks the configuration against KMS and returns the public material to store, in the
/// order an administrator fixes things: fields (already parsed), credentials and key, key
/// metadata, public key, certificate, and finally one real signature to prove `kms:Sign`.
/// No server policy applies ([`describe_for_save`] is what Keycloak calls).
pub fn describe_signing_key(config: &ProviderConfig) -> Result<KeyDescription> {
    describe_checking(config, &|_| Ok(()))
}

/// [`describe_signing_key`], with `check_key` run on the key ARN as soon as `DescribeKey` names it.
fn describe_checking(
    config: &ProviderConfig,
    check_key: &(dyn Fn(&str) -> Result<()> + Sync),
) -> Result<KeyDescription> {
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
    let connection = &config.connection;
    let read_key = async {
        // A client of its own, dropped with this validation: a refused save keeps nothing.
        let client = kms::clients::build_client(connection, Timeouts::DEFAULT).await;
        let metadata =
            kms::calls::describe_key(&client, connection, &config.key_id, deadline).await?;
        // The policy first: a key the realm may not use reveals nothing about its state.
        if let Some(arn) = metadata.arn() {
            check_key(arn)?;
        }
        let (key_arn, spec) = check_metadata(config, &metadata)?;
        let der = kms::calls::get_public_key(&client, connection, &key_arn, deadline).await?;
        Ok::<_, Error>((client, metadata, key_arn, spec, der))
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let (client, metadata, key_arn, spec, der) = runtime::block_on(async {
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
        Arc::new(client),
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
        key_type: spec.jose_key_type().to_owned(),
        curve: spec.jose_curve().map(str::to_owned),
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
pub(crate) fn check_metadata(
    config: &ProviderConfig,
    metadata: &KeyMetadata,
) -> Result<(String, KeySpec)> {
    let key_arn = metadata.arn().map(str::to_owned).ok_or_else(|| {
        Error::new(
            ErrorKind::KmsRejected,
            "KMS described the key without an ARN",
        )
    })?;
    // The ARN comes from the endpoint (one an administrator may choose); it is stored and quoted
    // in messages, so anything but a plain ARN is refused.
    if key_arn.len() > 2048
        || !key_arn.starts_with("arn:")
        || !key_arn.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(Error::new(
            ErrorKind::KmsRejected,
            format!(
                "KMS described the key with an ARN that is not one: \"{}\"",
                quoted_input(&key_arn)
            ),
        ));
    }
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
