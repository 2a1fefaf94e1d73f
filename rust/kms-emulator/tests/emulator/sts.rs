//! STS `AssumeRole` on the KMS port, driven by the real `aws-sdk-sts` and aws-config's
//! `AssumeRoleProvider` (as the product uses them), and the temporary credentials against KMS.

use std::time::{Duration, SystemTime};

use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_sts::error::ProvideErrorMetadata;
use kms_emulator::{
    Config, Emulator, Operation, Policy, Principal, Role, DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
};

use crate::support::{client, client_with, control, create_key, error_code, http, start_with};

const SIGNER: &str = "arn:aws:iam::111122223333:role/keycloak-signer";
const READER: &str = "arn:aws:iam::111122223333:role/keycloak-reader";
const PARTNER: &str = "arn:aws:iam::444455556666:role/partner/keycloak-partner";
const EXTERNAL_ID: &str = "keycloak-external-id";
const TIMEOUT: Duration = Duration::from_secs(10);

/// An emulator with three roles: one that may do everything, one that may not `Sign`, and one
/// (in another account, with a path) that requires an external id.
async fn start() -> Emulator {
    start_with(Config {
        roles: vec![
            Role::new(SIGNER, None, Policy::allow_all()),
            Role::new(READER, None, Policy::deny([Operation::Sign])),
            Role::new(PARTNER, Some(EXTERNAL_ID.to_owned()), Policy::allow_all()),
        ],
        ..Config::default()
    })
    .await
}

fn base_credentials() -> Credentials {
    Credentials::new(
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_SECRET_ACCESS_KEY,
        None,
        None,
        "base",
    )
}

fn sts_client(emulator: &Emulator, credentials: Credentials) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(emulator.region().to_owned()))
        .endpoint_url(emulator.sts_url())
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// A KMS client whose credentials come from assuming `role` with the default credentials, built
/// the way the product builds it.
async fn kms_client_assuming(
    emulator: &Emulator,
    role: &str,
    external_id: Option<&str>,
) -> aws_sdk_kms::Client {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(emulator.region().to_owned()))
        .endpoint_url(emulator.sts_url())
        .credentials_provider(base_credentials())
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let mut provider = AssumeRoleProvider::builder(role)
        .session_name("keycloak-test")
        .configure(&base);
    if let Some(external_id) = external_id {
        provider = provider.external_id(external_id);
    }
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(emulator.region().to_owned()))
        .endpoint_url(emulator.kms_url())
        .credentials_provider(provider.build().await)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

async fn sign(client: &aws_sdk_kms::Client, key: &str) -> Result<Vec<u8>, String> {
    client
        .sign()
        .key_id(key)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .message_type(MessageType::Digest)
        .message(Blob::new([7u8; 32]))
        .send()
        .await
        .map(|output| output.signature().expect("signature").as_ref().to_vec())
        .map_err(|err| error_code(&err).unwrap_or_else(|| format!("{err:?}")))
}

/// `(AssumeRole, total)` from `/stats`.
async fn assume_role_calls(emulator: &Emulator) -> (u64, u64) {
    let (_, stats) = control(emulator, "GET", "/stats", "").await;
    (
        stats["calls"]["AssumeRole"]
            .as_u64()
            .expect("AssumeRole counted"),
        stats["total"].as_u64().expect("total"),
    )
}

#[tokio::test]
async fn a_role_assumed_through_the_sdk_provider_calls_kms_with_its_temporary_credentials() {
    let emulator = start().await;
    let key = create_key(
        &client(&emulator),
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
    )
    .await;
    control(&emulator, "POST", "/stats/reset", "").await;

    let kms = kms_client_assuming(&emulator, PARTNER, Some(EXTERNAL_ID)).await;
    kms.describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("DescribeKey as the role");
    let signature = sign(&kms, &key).await.expect("Sign as the role");
    let verified = kms
        .verify()
        .key_id(&key)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .message_type(MessageType::Digest)
        .message(Blob::new([7u8; 32]))
        .signature(Blob::new(signature))
        .send()
        .await
        .expect("Verify as the role");
    assert!(verified.signature_valid());

    // The SDK caches the role's credentials: one AssumeRole for all three KMS calls.
    assert_eq!(assume_role_calls(&emulator).await, (1, 4));
}

#[tokio::test]
async fn assume_role_answers_with_aws_shaped_temporary_credentials() {
    let emulator = start().await;
    let sts = sts_client(&emulator, base_credentials());
    let before = SystemTime::now();
    let output = sts
        .assume_role()
        .role_arn(PARTNER)
        .role_session_name("session@example.com")
        .external_id(EXTERNAL_ID)
        .duration_seconds(900)
        .send()
        .await
        .expect("AssumeRole");

    let credentials = output.credentials().expect("Credentials");
    let access_key_id = credentials.access_key_id();
    assert!(access_key_id.starts_with("ASIA"), "{access_key_id}");
    assert_eq!(access_key_id.len(), 20);
    assert!(access_key_id
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    assert_eq!(credentials.secret_access_key().len(), 40);
    assert!(!credentials.session_token().is_empty());
    let expiration = SystemTime::try_from(*credentials.expiration()).expect("a time");
    let lifetime = expiration
        .duration_since(before)
        .expect("expires in the future");
    assert!(
        lifetime > Duration::from_secs(890) && lifetime <= Duration::from_secs(901),
        "{lifetime:?}"
    );

    let user = output.assumed_role_user().expect("AssumedRoleUser");
    assert_eq!(
        user.arn(),
        "arn:aws:sts::444455556666:assumed-role/keycloak-partner/session@example.com"
    );
    let role_id = user.assumed_role_id();
    assert!(role_id.starts_with("AROA"), "{role_id}");
    assert!(role_id.ends_with(":session@example.com"), "{role_id}");
}

#[tokio::test]
async fn a_wrong_or_missing_external_id_is_access_denied() {
    let emulator = start().await;
    let sts = sts_client(&emulator, base_credentials());
    for external_id in [Some("another-external-id"), None] {
        let err = sts
            .assume_role()
            .role_arn(PARTNER)
            .role_session_name("keycloak-test")
            .set_external_id(external_id.map(str::to_owned))
            .send()
            .await
            .expect_err("refused");
        let service_err = err.as_service_error().expect("an STS error");
        assert_eq!(service_err.code(), Some("AccessDenied"), "{external_id:?}");
        assert_eq!(
            service_err.message(),
            Some(
                format!(
                    "User: arn:aws:iam::111122223333:user/{DEFAULT_ACCESS_KEY_ID} is not authorized to perform: sts:AssumeRole on resource: {PARTNER}"
                )
                .as_str()
            )
        );
        assert_eq!(err.raw_response().expect("response").status().as_u16(), 403);
    }

    // Through the provider the KMS call fails before it is sent.
    let kms = kms_client_assuming(&emulator, PARTNER, Some("another-external-id")).await;
    kms.list_keys()
        .send()
        .await
        .expect_err("no credentials for KMS");
    let (_, stats) = control(&emulator, "GET", "/stats", "").await;
    assert_eq!(stats["calls"]["AssumeRole"], 3, "{stats}");
    assert_eq!(stats["calls"]["ListKeys"], 0, "{stats}");
}

#[tokio::test]
async fn an_unknown_role_is_access_denied() {
    let emulator = start().await;
    let err = sts_client(&emulator, base_credentials())
        .assume_role()
        .role_arn("arn:aws:iam::111122223333:role/not-configured")
        .role_session_name("keycloak-test")
        .send()
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("AccessDenied"));
}

#[tokio::test]
async fn a_wrong_base_secret_or_unknown_base_key_is_refused() {
    let emulator = start().await;
    let cases = [
        (
            DEFAULT_ACCESS_KEY_ID,
            "not-the-secret",
            "SignatureDoesNotMatch",
        ),
        (
            "AKIAUNKNOWN000000000",
            DEFAULT_SECRET_ACCESS_KEY,
            "InvalidClientTokenId",
        ),
    ];
    for (access_key_id, secret, code) in cases {
        let credentials = Credentials::new(access_key_id, secret, None, None, "test");
        let err = sts_client(&emulator, credentials)
            .assume_role()
            .role_arn(SIGNER)
            .role_session_name("keycloak-test")
            .send()
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Some(code));
        assert_eq!(err.raw_response().expect("response").status().as_u16(), 403);
    }
}

#[tokio::test]
async fn credentials_denied_assume_role_cannot_assume_roles() {
    let emulator = start_with(Config {
        principals: vec![Principal::new(
            "AKIANOROLES",
            "no-roles-secret",
            Policy::deny([Operation::AssumeRole]),
        )],
        roles: vec![Role::new(SIGNER, None, Policy::allow_all())],
        ..Config::default()
    })
    .await;
    let credentials = Credentials::new("AKIANOROLES", "no-roles-secret", None, None, "test");
    let err = sts_client(&emulator, credentials)
        .assume_role()
        .role_arn(SIGNER)
        .role_session_name("keycloak-test")
        .send()
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("AccessDenied"));
}

#[tokio::test]
async fn an_operation_the_role_denies_is_access_denied_while_others_work() {
    let emulator = start().await;
    let key = create_key(
        &client(&emulator),
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
    )
    .await;
    let reader = kms_client_assuming(&emulator, READER, None).await;
    reader
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("DescribeKey");
    reader
        .get_public_key()
        .key_id(&key)
        .send()
        .await
        .expect("GetPublicKey");
    let code = sign(&reader, &key).await.expect_err("Sign is denied");
    assert_eq!(code, "AccessDeniedException");
    let signer = kms_client_assuming(&emulator, SIGNER, None).await;
    sign(&signer, &key).await.expect("another role may sign");
}

#[tokio::test]
async fn temporary_credentials_without_their_session_token_are_unrecognized() {
    let emulator = start().await;
    let output = sts_client(&emulator, base_credentials())
        .assume_role()
        .role_arn(SIGNER)
        .role_session_name("keycloak-test")
        .send()
        .await
        .expect("AssumeRole");
    let issued = output.credentials().expect("Credentials");
    let with_token = |token: Option<&str>| {
        client_with(
            &emulator,
            Credentials::new(
                issued.access_key_id(),
                issued.secret_access_key(),
                token.map(str::to_owned),
                None,
                "test",
            ),
            TIMEOUT,
        )
    };
    with_token(Some(issued.session_token()))
        .list_keys()
        .send()
        .await
        .expect("with the session token");
    for token in [None, Some("not-the-session-token")] {
        let err = with_token(token)
            .list_keys()
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            error_code(&err).as_deref(),
            Some("UnrecognizedClientException"),
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn invalid_assume_role_requests_are_validation_errors() {
    let emulator = start().await;
    let sts = sts_client(&emulator, base_credentials());
    for (session_name, duration) in [("k", None), ("has space", None), ("ok-name", Some(899))] {
        let err = sts
            .assume_role()
            .role_arn(SIGNER)
            .role_session_name(session_name)
            .set_duration_seconds(duration)
            .send()
            .await
            .expect_err("invalid");
        assert_eq!(err.code(), Some("ValidationError"), "{session_name}");
        assert_eq!(err.raw_response().expect("response").status().as_u16(), 400);
    }
}

#[tokio::test]
async fn sts_errors_are_query_protocol_xml_and_faults_apply_to_assume_role() {
    let emulator = start().await;
    let (status, headers, body) = http(
        emulator.sts_url(),
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("Action=AssumeRole&Version=2011-06-15&RoleArn={SIGNER}&RoleSessionName=x1"),
    )
    .await;
    assert_eq!(status, 403);
    assert!(headers
        .iter()
        .any(|(name, value)| name == "content-type" && value == "text/xml"));
    assert!(
        body.starts_with(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code><Message>"
        ),
        "{body}"
    );
    assert!(body.contains("</Error><RequestId>"), "{body}");

    let (status, _, body) = http(
        emulator.sts_url(),
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "Action=GetFederationToken&Version=2011-06-15",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");

    let (status, body) = control(
        &emulator,
        "PUT",
        "/faults",
        r#"{"mode":"throttle","operations":["AssumeRole"],"count":1}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sts = sts_client(&emulator, base_credentials());
    let assume = || {
        sts.assume_role()
            .role_arn(SIGNER)
            .role_session_name("keycloak-test")
            .send()
    };
    let err = assume().await.expect_err("throttled");
    assert_eq!(err.code(), Some("Throttling"));
    assume().await.expect("the fault applied once");
}

#[tokio::test]
async fn the_session_knob_shortens_issued_credentials_and_kms_refuses_them_once_expired() {
    let emulator = start().await;
    for refused in [
        r#"{"sessionSeconds":0}"#,
        r#"{"sessionSeconds":43201}"#,
        r#"{"seconds":5}"#,
    ] {
        let (status, _) = control(&emulator, "PUT", "/sts", refused).await;
        assert_eq!(status, 400, "{refused}");
    }
    let (status, body) = control(&emulator, "PUT", "/sts", r#"{"sessionSeconds":2}"#).await;
    assert_eq!(
        (status, body["sessionSeconds"].as_u64()),
        (200, Some(2)),
        "{body}"
    );

    let sts = sts_client(&emulator, base_credentials());
    let before = SystemTime::now();
    let output = sts
        .assume_role()
        .role_arn(SIGNER)
        .role_session_name("short")
        .send()
        .await
        .expect("AssumeRole");
    let issued = output.credentials().expect("Credentials");
    let expiration = SystemTime::try_from(*issued.expiration()).expect("a time");
    let lifetime = expiration.duration_since(before).expect("in the future");
    assert!(lifetime <= Duration::from_secs(3), "{lifetime:?}");

    let kms = client_with(
        &emulator,
        Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            None,
            "assumed",
        ),
        TIMEOUT,
    );
    kms.list_keys()
        .send()
        .await
        .expect("valid until it expires");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let err = kms.list_keys().send().await.expect_err("expired");
    assert_eq!(error_code(&err).as_deref(), Some("ExpiredTokenException"));

    let (status, body) = control(&emulator, "DELETE", "/sts", "").await;
    assert_eq!(
        (status, body["sessionSeconds"].is_null()),
        (200, true),
        "{body}"
    );
}

#[tokio::test]
async fn server_errors_and_latency_apply_to_assume_role_in_stss_own_form() {
    let emulator = start().await;
    let sts = sts_client(&emulator, base_credentials());
    let assume = || {
        sts.assume_role()
            .role_arn(SIGNER)
            .role_session_name("keycloak-test")
            .send()
    };
    for (fault, status, code) in [
        (
            r#"{"mode":"server-error","operations":["AssumeRole"],"count":1}"#,
            500,
            "InternalFailure",
        ),
        (
            r#"{"mode":"server-error","status":503,"operations":["AssumeRole"],"count":1}"#,
            503,
            "ServiceUnavailable",
        ),
    ] {
        let (answer, body) = control(&emulator, "PUT", "/faults", fault).await;
        assert_eq!(answer, 200, "{body}");
        let err = assume().await.expect_err("server error");
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(status)
        );
        assert_eq!(err.code(), Some(code));
    }
    let (answer, body) = control(
        &emulator,
        "PUT",
        "/faults",
        r#"{"mode":"none","latencyMs":400,"operations":["AssumeRole"]}"#,
    )
    .await;
    assert_eq!(answer, 200, "{body}");
    let started = std::time::Instant::now();
    assume().await.expect("slow, then answered");
    assert!(started.elapsed() >= Duration::from_millis(400));
}
