//! Key metadata, key-id resolution, aliases and listings.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kms::operation::create_alias::CreateAliasError;
use aws_sdk_kms::operation::describe_key::DescribeKeyError;
use aws_sdk_kms::types::{
    EncryptionAlgorithmSpec, KeyManagerType, KeySpec, KeyState, KeyUsageType, OriginType,
    SigningAlgorithmSpec,
};
use kms_emulator::{Config, InitialKey};

use crate::support::{client, create_key, error_code, start, start_with};

fn epoch_seconds_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[tokio::test]
async fn describe_key_reports_aws_metadata() {
    let emulator = start().await;
    let client = client(&emulator);
    let created = client
        .create_key()
        .key_spec(KeySpec::Rsa3072)
        .key_usage(KeyUsageType::SignVerify)
        .description("token signing")
        .send()
        .await
        .expect("CreateKey");
    let key_id = created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();

    let described = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    let metadata = described.key_metadata().expect("metadata");
    assert_eq!(metadata.aws_account_id(), Some("111122223333"));
    assert_eq!(
        metadata.arn(),
        Some(format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}").as_str())
    );
    assert!(metadata.enabled());
    assert_eq!(metadata.description(), Some("token signing"));
    assert_eq!(metadata.key_usage(), Some(&KeyUsageType::SignVerify));
    assert_eq!(metadata.key_state(), Some(&KeyState::Enabled));
    assert_eq!(metadata.origin(), Some(&OriginType::AwsKms));
    assert_eq!(metadata.key_manager(), Some(&KeyManagerType::Customer));
    assert_eq!(metadata.key_spec(), Some(&KeySpec::Rsa3072));
    assert_eq!(metadata.multi_region(), Some(false));
    assert_eq!(metadata.deletion_date(), None);
    assert!(metadata.encryption_algorithms().is_empty());
    assert_eq!(metadata.signing_algorithms().len(), 6);
    assert!(metadata
        .signing_algorithms()
        .contains(&SigningAlgorithmSpec::RsassaPssSha512));
    let created_at = metadata
        .creation_date()
        .expect("CreationDate")
        .as_secs_f64();
    assert!((epoch_seconds_now() - created_at).abs() < 60.0);

    let public = client
        .get_public_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetPublicKey");
    assert_eq!(public.key_id(), metadata.arn());
    assert_eq!(public.key_spec(), Some(&KeySpec::Rsa3072));
    assert_eq!(public.key_usage(), Some(&KeyUsageType::SignVerify));
    assert_eq!(public.signing_algorithms().len(), 6);
    // SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING } of a 3072-bit key.
    assert!(public.public_key().expect("PublicKey").as_ref().len() > 384);
}

#[tokio::test]
async fn encryption_keys_list_their_encryption_algorithms() {
    let emulator = start().await;
    let client = client(&emulator);
    let rsa = create_key(&client, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let metadata = client
        .describe_key()
        .key_id(&rsa)
        .send()
        .await
        .expect("DescribeKey");
    let metadata = metadata.key_metadata().expect("metadata");
    assert!(metadata.signing_algorithms().is_empty());
    assert!(metadata
        .encryption_algorithms()
        .contains(&EncryptionAlgorithmSpec::RsaesOaepSha256));

    // CreateKey without KeySpec or KeyUsage makes a symmetric encryption key, as in AWS.
    let default = client.create_key().send().await.expect("CreateKey");
    let metadata = default.key_metadata().expect("metadata");
    assert_eq!(metadata.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(metadata.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
}

#[tokio::test]
async fn create_key_refuses_spec_and_usage_that_do_not_go_together() {
    let emulator = start().await;
    let client = client(&emulator);
    for (spec, usage) in [
        (KeySpec::EccNistP256, KeyUsageType::EncryptDecrypt),
        (KeySpec::SymmetricDefault, KeyUsageType::SignVerify),
        (KeySpec::from("HMAC_256"), KeyUsageType::GenerateVerifyMac),
        (KeySpec::from("RSA_1024"), KeyUsageType::SignVerify),
    ] {
        let err = client
            .create_key()
            .key_spec(spec.clone())
            .key_usage(usage.clone())
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            error_code(&err).as_deref(),
            Some("ValidationException"),
            "{spec} {usage}"
        );
    }
}

#[tokio::test]
async fn key_ids_resolve_as_id_arn_alias_and_alias_arn() {
    let emulator = start_with(Config {
        keys: vec![InitialKey {
            alias: "alias/signing".to_owned(),
            spec: kms_emulator::KeySpec::EccNistP256,
        }],
        ..Config::default()
    })
    .await;
    let client = client(&emulator);
    let arn = emulator.keys()["alias/signing"].clone();
    let key_id = arn.rsplit('/').next().expect("key id").to_owned();
    for reference in [
        key_id.clone(),
        arn.clone(),
        "alias/signing".to_owned(),
        "arn:aws:kms:us-east-1:111122223333:alias/signing".to_owned(),
    ] {
        let described = client
            .describe_key()
            .key_id(&reference)
            .send()
            .await
            .unwrap_or_else(|err| panic!("{reference}: {err:?}"));
        assert_eq!(
            described.key_metadata().map(|m| m.key_id()),
            Some(key_id.as_str())
        );
    }
    for reference in [
        format!("arn:aws:kms:eu-west-1:111122223333:key/{key_id}"),
        format!("arn:aws:kms:us-east-1:444455556666:key/{key_id}"),
        "arn:aws:kms:eu-west-1:111122223333:alias/signing".to_owned(),
        "alias/missing".to_owned(),
        "1234abcd-12ab-34cd-56ef-1234567890ab".to_owned(),
    ] {
        let err = client
            .describe_key()
            .key_id(&reference)
            .send()
            .await
            .expect_err("not found");
        assert!(
            matches!(
                err.into_service_error(),
                DescribeKeyError::NotFoundException(_)
            ),
            "{reference}"
        );
    }
}

#[tokio::test]
async fn aliases_can_be_created_updated_listed_and_deleted() {
    let emulator = start().await;
    let client = client(&emulator);
    let first = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let second = create_key(&client, KeySpec::EccNistP384, KeyUsageType::SignVerify).await;
    let symmetric = create_key(
        &client,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let target = |alias: &'static str| {
        let client = client.clone();
        async move {
            client
                .describe_key()
                .key_id(alias)
                .send()
                .await
                .ok()
                .and_then(|out| out.key_metadata().map(|m| m.key_id().to_owned()))
        }
    };

    client
        .create_alias()
        .alias_name("alias/current")
        .target_key_id(&first)
        .send()
        .await
        .expect("CreateAlias");
    assert_eq!(target("alias/current").await, Some(first.clone()));

    let err = client
        .create_alias()
        .alias_name("alias/current")
        .target_key_id(&second)
        .send()
        .await
        .expect_err("duplicate");
    assert!(matches!(
        err.into_service_error(),
        CreateAliasError::AlreadyExistsException(_)
    ));
    for name in ["current", "alias/aws/reserved"] {
        let err = client
            .create_alias()
            .alias_name(name)
            .target_key_id(&second)
            .send()
            .await
            .expect_err("invalid name");
        assert!(
            matches!(
                err.into_service_error(),
                CreateAliasError::InvalidAliasNameException(_)
            ),
            "{name}"
        );
    }

    client
        .update_alias()
        .alias_name("alias/current")
        .target_key_id(&second)
        .send()
        .await
        .expect("UpdateAlias");
    assert_eq!(target("alias/current").await, Some(second.clone()));
    let err = client
        .update_alias()
        .alias_name("alias/current")
        .target_key_id(&symmetric)
        .send()
        .await
        .expect_err("a symmetric key is not the same type");
    assert_eq!(error_code(&err).as_deref(), Some("ValidationException"));

    client
        .create_alias()
        .alias_name("alias/other")
        .target_key_id(&first)
        .send()
        .await
        .expect("CreateAlias");
    let all = client.list_aliases().send().await.expect("ListAliases");
    let names: Vec<&str> = all
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert_eq!(names, ["alias/current", "alias/other"]);
    let of_first = client
        .list_aliases()
        .key_id(&first)
        .send()
        .await
        .expect("ListAliases");
    assert_eq!(of_first.aliases().len(), 1);
    let alias = &of_first.aliases()[0];
    assert_eq!(alias.alias_name(), Some("alias/other"));
    assert_eq!(alias.target_key_id(), Some(first.as_str()));
    assert_eq!(
        alias.alias_arn(),
        Some("arn:aws:kms:us-east-1:111122223333:alias/other")
    );

    client
        .delete_alias()
        .alias_name("alias/current")
        .send()
        .await
        .expect("DeleteAlias");
    assert_eq!(target("alias/current").await, None);
    let err = client
        .delete_alias()
        .alias_name("alias/current")
        .send()
        .await
        .expect_err("already deleted");
    assert_eq!(error_code(&err).as_deref(), Some("NotFoundException"));
}

#[tokio::test]
async fn list_keys_pages_through_every_key() {
    let emulator = start().await;
    let client = client(&emulator);
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(
            create_key(
                &client,
                KeySpec::SymmetricDefault,
                KeyUsageType::EncryptDecrypt,
            )
            .await,
        );
    }
    let first = client.list_keys().limit(2).send().await.expect("ListKeys");
    assert!(first.truncated());
    let second = client
        .list_keys()
        .limit(2)
        .marker(first.next_marker().expect("NextMarker"))
        .send()
        .await
        .expect("ListKeys");
    assert!(!second.truncated());
    let listed: Vec<String> = first
        .keys()
        .iter()
        .chain(second.keys())
        .filter_map(|entry| entry.key_id().map(str::to_owned))
        .collect();
    assert_eq!(listed, created);
}

#[tokio::test]
async fn schedule_key_deletion_enforces_the_pending_window() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(
        &client,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    for days in [6, 31] {
        let err = client
            .schedule_key_deletion()
            .key_id(&key)
            .pending_window_in_days(days)
            .send()
            .await
            .expect_err("outside 7..30");
        assert_eq!(
            error_code(&err).as_deref(),
            Some("ValidationException"),
            "{days}"
        );
    }
    let scheduled = client
        .schedule_key_deletion()
        .key_id(&key)
        .send()
        .await
        .expect("default window");
    assert_eq!(scheduled.pending_window_in_days(), Some(30));
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    let deletion = scheduled
        .deletion_date()
        .expect("DeletionDate")
        .as_secs_f64();
    let expected = epoch_seconds_now() + Duration::from_secs(30 * 86_400).as_secs_f64();
    assert!((deletion - expected).abs() < 60.0);

    let metadata = client
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("DescribeKey");
    let metadata = metadata.key_metadata().expect("metadata");
    assert!(!metadata.enabled());
    assert!(metadata.deletion_date().is_some());

    let err = client
        .schedule_key_deletion()
        .key_id(&key)
        .send()
        .await
        .expect_err("already pending");
    assert_eq!(
        error_code(&err).as_deref(),
        Some("KMSInvalidStateException")
    );
}
