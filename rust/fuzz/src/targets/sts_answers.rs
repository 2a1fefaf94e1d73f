//! STS's answer to `AssumeRole` (credentials mode `assume-role`) as the product meets it: the
//! SDK's credentials provider reads the XML, and a failure reaches the product's error mapping
//! (`kms/errors.rs`: the credentials failure, the role named, the remote text bounded) on the
//! `DescribeKey` that needed the credentials. KMS answers that call correctly.
//!
//! Input: `[status index][flags]` then the STS body (see `super::super::Answer`).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::super::{Answer, AnswerSlot};
use aws_credential_types::provider::SharedCredentialsProvider;
use keycloak_aws_kms_core::fuzzing;
use keycloak_aws_kms_core::signing::config::ProviderConfig;

const DEADLINE: Duration = Duration::from_millis(50);
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/fuzz";

const DESCRIBE_KEY: &str = r#"{"KeyMetadata":{"AWSAccountId":"111122223333","Arn":"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","CreationDate":1.7E9,"Enabled":true,"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","KeyManager":"CUSTOMER","KeySpec":"ECC_NIST_P256","KeyState":"Enabled","KeyUsage":"SIGN_VERIFY","Origin":"AWS_KMS","SigningAlgorithms":["ECDSA_SHA_256"]}}"#;

struct World {
    runtime: tokio::runtime::Runtime,
    sts_slot: AnswerSlot,
    kms_slot: AnswerSlot,
    config: ProviderConfig,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let kms_answer = Answer {
            status: 200,
            error_type: None,
            json: true,
            body: DESCRIBE_KEY.as_bytes().to_vec(),
        };
        let config = ProviderConfig::from_json(&format!(
            r#"{{"kmsKeyId":"alias/fuzz","region":"eu-west-1","algorithm":"ES256",
                "credentialsMode":"assume-role","roleArn":"{ROLE_ARN}",
                "externalId":"fuzz-secret-external-id"}}"#
        ))
        .expect("a fixed configuration");
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
            sts_slot: Arc::new(Mutex::new(Answer::default())),
            kms_slot: Arc::new(Mutex::new(kms_answer)),
            config,
        }
    })
}

/// One input of the `sts_answers` target.
pub fn run(data: &[u8]) {
    let world = world();
    let (answer, _) = Answer::from_fuzz(data);
    *world
        .sts_slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = answer;
    // As kms/clients.rs builds it: an AssumeRoleProvider on its own STS configuration.
    let sts = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(super::super::static_credentials())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        // What aws_config::defaults would give it (kms/clients.rs loads it that way).
        .time_source(aws_smithy_async::time::SharedTimeSource::new(
            aws_smithy_async::time::SystemTimeSource::new(),
        ))
        .sleep_impl(aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
            aws_smithy_async::rt::sleep::TokioSleep::new(),
        ))
        .http_client(super::super::answering_http_client(
            world.sts_slot.clone(),
            "text/xml",
        ))
        .build();
    let provider = world.runtime.block_on(
        aws_config::sts::AssumeRoleProvider::builder(ROLE_ARN)
            .session_name("keycloak-aws-kms")
            .external_id("fuzz-secret-external-id")
            .configure(&sts)
            .build(),
    );
    let client = super::super::kms_client(
        world.kms_slot.clone(),
        SharedCredentialsProvider::new(provider),
    );
    let deadline = Instant::now() + DEADLINE;
    if let Err(error) = fuzzing::describe_key_answer(&client, &world.config, deadline) {
        super::super::check_error(&error);
    }
}
