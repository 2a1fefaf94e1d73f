//! SigV4 as the SDK signs it, refused credentials, per-credential policies, and the wire format
//! of errors.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kms_emulator::{Config, Operation, Policy, Principal};

use crate::support::{client, client_with, create_key, error_code, http, start, start_with};

fn credentials(access_key_id: &str, secret: &str, session_token: Option<&str>) -> Credentials {
    Credentials::new(
        access_key_id,
        secret,
        session_token.map(str::to_owned),
        None,
        "test",
    )
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn unknown_access_keys_are_unrecognized_clients() {
    let emulator = start().await;
    let client = client_with(
        &emulator,
        credentials(
            "AKIAUNKNOWN000000000",
            "emulator-secret-access-key-0001",
            None,
        ),
        TIMEOUT,
    );
    let err = client.list_keys().send().await.expect_err("refused");
    assert_eq!(
        error_code(&err).as_deref(),
        Some("UnrecognizedClientException")
    );
}

#[tokio::test]
async fn a_wrong_secret_is_an_invalid_signature() {
    let emulator = start().await;
    let client = client_with(
        &emulator,
        credentials("AKIAEMULATOR00000001", "not-the-secret", None),
        TIMEOUT,
    );
    let err = client.list_keys().send().await.expect_err("refused");
    assert_eq!(
        error_code(&err).as_deref(),
        Some("InvalidSignatureException")
    );
}

#[tokio::test]
async fn configured_credentials_replace_the_defaults_and_session_tokens_are_accepted() {
    let emulator = start_with(Config {
        principals: vec![
            Principal::new("AKIAFIRST", "first-secret", Policy::allow_all()),
            Principal::new("ASIASECOND", "second-secret", Policy::allow_all()),
        ],
        ..Config::default()
    })
    .await;
    client_with(
        &emulator,
        credentials("AKIAFIRST", "first-secret", None),
        TIMEOUT,
    )
    .list_keys()
    .send()
    .await
    .expect("first credentials");
    client_with(
        &emulator,
        credentials("ASIASECOND", "second-secret", Some("session-token")),
        TIMEOUT,
    )
    .list_keys()
    .send()
    .await
    .expect("second credentials with a session token");
    let err = client(&emulator)
        .list_keys()
        .send()
        .await
        .expect_err("defaults are off");
    assert_eq!(
        error_code(&err).as_deref(),
        Some("UnrecognizedClientException")
    );
}

#[tokio::test]
async fn operations_a_policy_denies_are_access_denied() {
    let emulator = start_with(Config {
        principals: vec![
            Principal::new("AKIAADMIN", "admin-secret", Policy::allow_all()),
            Principal::new(
                "AKIAREADER",
                "reader-secret",
                Policy::deny([Operation::Sign, Operation::GetPublicKey]),
            ),
        ],
        ..Config::default()
    })
    .await;
    let admin = client_with(
        &emulator,
        credentials("AKIAADMIN", "admin-secret", None),
        TIMEOUT,
    );
    let reader = client_with(
        &emulator,
        credentials("AKIAREADER", "reader-secret", None),
        TIMEOUT,
    );
    let key = create_key(&admin, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;

    reader
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("DescribeKey is allowed");
    let err = reader
        .get_public_key()
        .key_id(&key)
        .send()
        .await
        .expect_err("denied");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));
    admin
        .get_public_key()
        .key_id(&key)
        .send()
        .await
        .expect("admin may");
}

#[tokio::test]
async fn errors_carry_their_type_in_the_body_and_the_errortype_header() {
    let emulator = start().await;
    let (status, headers, body) = http(
        emulator.kms_url(),
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.ListKeys"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(
        header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    assert_eq!(header("content-type"), Some("application/x-amz-json-1.1"));
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
    assert!(body["message"].is_string());

    let (status, _, body) = http(
        emulator.kms_url(),
        "POST",
        "/",
        &[("X-Amz-Target", "TrentService.Encrypt")],
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
}
