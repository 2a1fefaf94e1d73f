//! KMS's answers as the product reads them: the HTTP status, `x-amzn-ErrorType` and body of a
//! `DescribeKey`, `GetPublicKey` or `Sign` answer go through the SDK's deserialisers, the
//! product's error mapping (`kms/errors.rs`) and its checks (validation's metadata checks, the
//! SPKI parse, the local verification of every signature).
//!
//! Input: `[status index][flags]` then the body (see `super::super::Answer`); flags bits 2-3
//! choose the operation (DescribeKey, GetPublicKey, Sign with the EC key, Sign with the RSA key),
//! bit 4 the algorithm configured (ES256 or RS256).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::super::{Answer, AnswerSlot};
use keycloak_aws_kms_core::fuzzing;
use keycloak_aws_kms_core::signing::algorithm::SigningAlgorithm;
use keycloak_aws_kms_core::signing::config::{ProviderConfig, StoredKey};
use keycloak_aws_kms_core::signing::key::SigningKey;
use keycloak_aws_kms_core::signing::kms::KmsClient;

/// Retried answers (throttling, 5xx) back off; a short deadline keeps an input fast.
const DEADLINE: Duration = Duration::from_millis(20);
const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

struct World {
    slot: AnswerSlot,
    client: aws_sdk_kms::Client,
    configs: [ProviderConfig; 2],
    keys: [SigningKey; 2],
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let slot: AnswerSlot = Arc::new(Mutex::new(Answer::default()));
        let client = super::super::kms_client(slot.clone(), super::super::static_credentials());
        let config = |algorithm: &str| {
            ProviderConfig::from_json(&format!(
                r#"{{"kmsKeyId":"alias/fuzz","region":"eu-west-1","algorithm":"{algorithm}"}}"#
            ))
            .expect("a fixed configuration")
        };
        let configs = [config("ES256"), config("RS256")];
        let [rsa, ec] = super::super::kms_keys().clone();
        let key = |config: &ProviderConfig, public_key| {
            SigningKey::new(
                Arc::new(KmsClient::from_sdk(client.clone(), &config.connection)),
                config.connection.clone(),
                StoredKey {
                    key_arn: KEY_ARN.to_owned(),
                    public_key,
                },
            )
            .expect("a signing key")
        };
        let keys = [key(&configs[0], ec), key(&configs[1], rsa)];
        World {
            slot,
            client,
            configs,
            keys,
        }
    })
}

/// One input of the `kms_answers` target.
pub fn run(data: &[u8]) {
    let world = world();
    let (answer, flags) = Answer::from_fuzz(data);
    *world.slot.lock().unwrap_or_else(PoisonError::into_inner) = answer;
    let config = &world.configs[usize::from(flags >> 4 & 1)];
    let deadline = Instant::now() + DEADLINE;
    let outcome = match flags >> 2 & 3 {
        0 => fuzzing::describe_key_answer(&world.client, config, deadline).map(|(arn, spec)| {
            assert!(!arn.is_empty());
            assert!(spec.supports(config.algorithm));
        }),
        1 => fuzzing::public_key_answer(&world.client, config, KEY_ARN, deadline).map(|key| {
            assert_eq!(key.kid().len(), 43);
        }),
        op => {
            let (key, algorithm) = if op == 2 {
                (&world.keys[0], SigningAlgorithm::Es256)
            } else {
                (&world.keys[1], SigningAlgorithm::Rs256)
            };
            key.sign_within(algorithm, b"fuzz", deadline).map(|_| ())
        }
    };
    if let Err(error) = outcome {
        super::super::check_error(&error);
    }
}
