//! The core against the project's KMS emulator, in-process on loopback: real HTTP, real SigV4,
//! AWS's signing semantics, and faults injected through the emulator's control port.
//! Signatures are checked again here over the *message* (not the digest the product sent), so
//! a product that sent the wrong digest or message type could not pass.

// Test fixtures fail loudly by design.
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use keycloak_aws_kms_core::signing::config::ProviderConfig;
use keycloak_aws_kms_core::signing::registry::SigningKeys;
use keycloak_aws_kms_core::signing::validation;
use keycloak_aws_kms_core::ErrorKind;
use kms_emulator::{InitialKey, KeySpec, Operation, Policy, Principal, Role};

/// Credentials that may read keys but not sign with them.
const NO_SIGN_KEY_ID: &str = "AKIANOSIGN0000000001";
const NO_SIGN_SECRET: &str = "no-sign-secret-access-key-0001";

/// A role the default credentials may assume, with an external id.
const SIGNER_ROLE: &str = "arn:aws:iam::111122223333:role/keycloak-signer";
pub(super) const EXTERNAL_ID: &str = "keycloak-external-id-0001";

pub(super) struct Fixture {
    // Runs the emulator; the product uses its own runtime, as it does inside Keycloak.
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) emulator: kms_emulator::Emulator,
    /// A registry of the test's own, so that counts and handles are not shared between tests.
    pub(super) keys: SigningKeys,
}

impl Fixture {
    pub(super) fn start() -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let keys = [
            ("alias/rsa", KeySpec::Rsa2048),
            ("alias/p256", KeySpec::EccNistP256),
            ("alias/p384", KeySpec::EccNistP384),
            ("alias/p521", KeySpec::EccNistP521),
            ("alias/to-disable", KeySpec::EccNistP256),
        ];
        let config = kms_emulator::Config {
            keys: keys
                .iter()
                .map(|(alias, spec)| InitialKey {
                    alias: (*alias).to_owned(),
                    spec: *spec,
                })
                .collect(),
            principals: vec![
                Principal::default_credentials(),
                Principal::new(
                    NO_SIGN_KEY_ID,
                    NO_SIGN_SECRET,
                    Policy::deny([Operation::Sign]),
                ),
            ],
            roles: vec![Role::new(
                SIGNER_ROLE,
                Some(EXTERNAL_ID.to_owned()),
                Policy::allow_all(),
            )],
            log_requests: false,
            ..kms_emulator::Config::default()
        };
        let emulator = runtime
            .block_on(kms_emulator::start(config))
            .expect("emulator starts");
        Fixture {
            runtime,
            emulator,
            keys: SigningKeys::default(),
        }
    }

    pub(super) fn config(&self, alias: &str, algorithm: &str, secret: &str) -> serde_json::Value {
        serde_json::json!({
            "kmsKeyId": alias,
            "region": self.emulator.region(),
            "endpointUrl": self.emulator.kms_url(),
            "credentialsMode": "access-key",
            "accessKeyId": kms_emulator::DEFAULT_ACCESS_KEY_ID,
            "secretAccessKey": secret,
            "algorithm": algorithm,
        })
    }

    /// Validates like a save does, then adds the stored material like Keycloak would.
    pub(super) fn saved(
        &self,
        alias: &str,
        algorithm: &str,
    ) -> (serde_json::Value, validation::KeyDescription) {
        let mut config = self.config(alias, algorithm, kms_emulator::DEFAULT_SECRET_ACCESS_KEY);
        let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid config");
        let description = validation::describe_signing_key(&parsed).expect("key validates");
        config["keyArn"] = description.key_arn.clone().into();
        config["keySpec"] = description.key_spec.clone().into();
        config["publicKey"] = description.public_key.clone().into();
        config["kid"] = description.kid.clone().into();
        (config, description)
    }

    pub(super) fn control(&self, method: &str, path: &str, body: &str) {
        self.control_answer(method, path, body);
    }

    /// A control API call's JSON answer (asserting a 2xx status).
    pub(super) fn control_answer(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let authority = self
            .emulator
            .control_url()
            .strip_prefix("http://")
            .expect("http URL");
        let mut stream = TcpStream::connect(authority).expect("control port");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        assert!(
            response.starts_with("HTTP/1.1 2"),
            "{method} {path}: {response}"
        );
        let (_, body) = response.split_once("\r\n\r\n").unwrap_or_default();
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
    }

    pub(super) fn fault(&self, fault: serde_json::Value) {
        self.control("PUT", "/faults", &fault.to_string());
    }

    pub(super) fn clear_faults(&self) {
        self.control("DELETE", "/faults", "");
    }

    fn disable(&self, arn: &str) {
        let kms_url = self.emulator.kms_url().to_owned();
        let region = self.emulator.region().to_owned();
        let arn = arn.to_owned();
        self.runtime.block_on(async move {
            let credentials = aws_credential_types::Credentials::new(
                kms_emulator::DEFAULT_ACCESS_KEY_ID,
                kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
                None,
                None,
                "test",
            );
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(region))
                .endpoint_url(kms_url)
                .credentials_provider(credentials)
                .load()
                .await;
            aws_sdk_kms::Client::new(&sdk)
                .disable_key()
                .key_id(arn)
                .send()
                .await
                .expect("DisableKey");
        });
    }
}

pub(super) fn spki(description: &validation::KeyDescription) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(&description.public_key)
        .expect("base64")
}

/// Verifies over the message, with a verifier that shares no state with the product.
pub(super) fn verifies(
    algorithm: &'static dyn VerificationAlgorithm,
    spki: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    UnparsedPublicKey::new(algorithm, spki)
        .verify(message, signature)
        .is_ok()
}

#[test]
fn every_algorithm_signs_through_kms_and_verifies_over_the_message() {
    let fixture = Fixture::start();
    let cases: [(&str, &str, &str, &'static dyn VerificationAlgorithm); 9] = [
        (
            "alias/rsa",
            "RS256",
            "SHA256withRSA",
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            "alias/rsa",
            "RS384",
            "SHA384withRSA",
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        (
            "alias/rsa",
            "RS512",
            "SHA512withRSA",
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        (
            "alias/rsa",
            "PS256",
            "SHA256withRSAandMGF1",
            &signature::RSA_PSS_2048_8192_SHA256,
        ),
        (
            "alias/rsa",
            "PS384",
            "SHA384withRSAandMGF1",
            &signature::RSA_PSS_2048_8192_SHA384,
        ),
        (
            "alias/rsa",
            "PS512",
            "SHA512withRSAandMGF1",
            &signature::RSA_PSS_2048_8192_SHA512,
        ),
        (
            "alias/p256",
            "ES256",
            "SHA256withECDSA",
            &signature::ECDSA_P256_SHA256_ASN1,
        ),
        (
            "alias/p384",
            "ES384",
            "SHA384withECDSA",
            &signature::ECDSA_P384_SHA384_ASN1,
        ),
        (
            "alias/p521",
            "ES512",
            "SHA512withECDSA",
            &signature::ECDSA_P521_SHA512_ASN1,
        ),
    ];
    for (alias, jose, jca, verifier) in cases {
        let (config, description) = fixture.saved(alias, jose);
        let handle = fixture
            .keys
            .register("component", &config.to_string())
            .expect("registers");
        let message = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
        let signature = fixture.keys.sign(handle, jca, message).expect(jca);
        assert!(
            verifies(verifier, &spki(&description), message, &signature),
            "{jca}"
        );
        assert!(
            !verifies(
                verifier,
                &spki(&description),
                b"another message",
                &signature
            ),
            "{jca}"
        );
    }
}

#[test]
fn a_signing_input_larger_than_the_kms_raw_limit_is_signed() {
    let fixture = Fixture::start();
    let (config, description) = fixture.saved("alias/rsa", "RS256");
    let handle = fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers");
    let message = vec![b'a'; 64 * 1024];
    let signature = fixture
        .keys
        .sign(handle, "SHA256withRSA", &message)
        .expect("signs");
    assert!(verifies(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        &spki(&description),
        &message,
        &signature
    ));
}

#[test]
fn validation_resolves_the_alias_and_computes_keycloaks_kid() {
    let fixture = Fixture::start();
    let (_, description) = fixture.saved("alias/p256", "ES256");
    assert_eq!(&description.key_arn, &fixture.emulator.keys()["alias/p256"]);
    assert_eq!(description.key_spec, "ECC_NIST_P256");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki(&description));
    assert_eq!(
        description.kid,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    );
}

#[test]
fn registering_the_same_stored_configuration_twice_gives_the_same_handle() {
    let fixture = Fixture::start();
    let (config, _) = fixture.saved("alias/p384", "ES384");
    let first = fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers");
    assert_eq!(
        fixture.keys.register("component", &config.to_string()),
        Ok(first)
    );
}

#[test]
fn a_changed_configuration_replaces_the_components_key_and_its_old_handle_stops_working() {
    let fixture = Fixture::start();
    let (rsa, _) = fixture.saved("alias/rsa", "RS256");
    let (p256, _) = fixture.saved("alias/p256", "ES256");
    let old = fixture
        .keys
        .register("component", &rsa.to_string())
        .expect("registers");
    let new = fixture
        .keys
        .register("component", &p256.to_string())
        .expect("registers");
    assert_ne!(old, new);
    let error = fixture
        .keys
        .sign(old, "SHA256withRSA", b"m")
        .expect_err("replaced");
    assert_eq!(error.kind(), ErrorKind::InvalidHandle);
    assert!(fixture.keys.sign(new, "SHA256withECDSA", b"m").is_ok());
    fixture.keys.release("component");
    let error = fixture
        .keys
        .sign(new, "SHA256withECDSA", b"m")
        .expect_err("released");
    assert_eq!(error.kind(), ErrorKind::InvalidHandle);
}

#[test]
fn keys_and_clients_stay_bounded_under_saves_secret_rotations_and_removals() {
    let fixture = Fixture::start();
    let (config, _) = fixture.saved("alias/p256", "ES256");
    let components = ["a", "b", "c"];
    for round in 0..40 {
        for component in components {
            let mut rotated = config.clone();
            // A new secret each round (a vault rotation): a new connection, a new client.
            rotated["secretAccessKey"] = format!("rotated-secret-{round}").into();
            if round % 2 == 0 {
                rotated["secretAccessKey"] = kms_emulator::DEFAULT_SECRET_ACCESS_KEY.into();
            }
            fixture
                .keys
                .register(component, &rotated.to_string())
                .expect("registers");
        }
        let stats = fixture.keys.stats();
        assert_eq!(stats.keys, components.len(), "round {round}");
        // Every component shares one connection: one client for all of them.
        assert_eq!(stats.clients, 1, "round {round}");
    }
    for component in components {
        fixture.keys.release(component);
    }
    let stats = fixture.keys.stats();
    assert_eq!((stats.keys, stats.clients), (0, 0));
}

#[test]
fn validation_refuses_keys_and_credentials_that_cannot_sign() {
    let fixture = Fixture::start();
    let refused = |config: serde_json::Value| {
        let parsed = ProviderConfig::from_json(&config.to_string()).expect("well formed");
        validation::describe_signing_key(&parsed).expect_err("refused")
    };
    let secret = kms_emulator::DEFAULT_SECRET_ACCESS_KEY;

    let error = refused(fixture.config("alias/nothing-here", "RS256", secret));
    assert_eq!(error.kind(), ErrorKind::KeyNotFound);
    assert!(
        error.message().contains("alias/nothing-here"),
        "{}",
        error.message()
    );

    let error = refused(fixture.config("alias/rsa", "ES256", secret));
    assert_eq!(error.kind(), ErrorKind::KeySpecMismatch);

    let wrong_secret = "not-the-secret-access-key-0000000000";
    let error = refused(fixture.config("alias/rsa", "RS256", wrong_secret));
    assert_eq!(error.kind(), ErrorKind::AccessDenied);
    assert!(!error.message().contains(wrong_secret));

    // A regional endpoint refuses a request signed for another region: a configuration mistake
    // named as such, not a wrong secret.
    let mut other_region = fixture.config("alias/rsa", "RS256", secret);
    other_region["region"] = "eu-west-1".into();
    let error = refused(other_region);
    assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
    assert!(
        error.message().contains("does not serve region eu-west-1"),
        "{}",
        error.message()
    );

    let (_, description) = fixture.saved("alias/to-disable", "ES256");
    fixture.disable(&description.key_arn);
    let error = refused(fixture.config("alias/to-disable", "ES256", secret));
    assert_eq!(error.kind(), ErrorKind::KeyDisabled);
}

#[test]
fn throttling_is_absorbed_by_retries_and_an_outage_fails_fast_then_recovers() {
    let fixture = Fixture::start();
    let (config, _) = fixture.saved("alias/p256", "ES256");
    let handle = fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers");

    fixture.fault(serde_json::json!({"mode": "throttle", "operations": ["Sign"], "count": 2}));
    assert!(fixture.keys.sign(handle, "SHA256withECDSA", b"m").is_ok());

    fixture.fault(serde_json::json!({"mode": "down"}));
    let error = fixture
        .keys
        .sign(handle, "SHA256withECDSA", b"m")
        .expect_err("KMS is down");
    assert_eq!(error.kind(), ErrorKind::Network, "{}", error.message());
    assert!(error.is_transient());

    fixture.clear_faults();
    assert!(fixture.keys.sign(handle, "SHA256withECDSA", b"m").is_ok());
}

#[test]
fn a_kms_that_never_answers_fails_the_signature_within_the_deadline() {
    let fixture = Fixture::start();
    let (config, _) = fixture.saved("alias/p256", "ES256");
    let handle = fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers");
    fixture.fault(serde_json::json!({"mode": "hang", "operations": ["Sign"]}));
    let started = Instant::now();
    let error = fixture
        .keys
        .sign(handle, "SHA256withECDSA", b"m")
        .expect_err("no answer");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{}", error.message());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    fixture.clear_faults();
}

#[test]
fn a_disabled_key_stops_signing_with_a_distinct_error() {
    let fixture = Fixture::start();
    let (config, description) = fixture.saved("alias/to-disable", "ES256");
    let handle = fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers");
    fixture.disable(&description.key_arn);
    let error = fixture
        .keys
        .sign(handle, "SHA256withECDSA", b"m")
        .expect_err("disabled");
    assert_eq!(error.kind(), ErrorKind::KeyDisabled);
}

#[test]
fn an_algorithm_the_key_cannot_make_is_refused_before_calling_kms() {
    let fixture = Fixture::start();
    let (config, _) = fixture.saved("alias/p256", "ES256");
    let handle = fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers");
    fixture.fault(serde_json::json!({"mode": "down"}));
    let error = fixture
        .keys
        .sign(handle, "SHA384withECDSA", b"m")
        .expect_err("mismatch");
    assert_eq!(error.kind(), ErrorKind::KeySpecMismatch);
    fixture.clear_faults();
}

fn parse_certificate(pem: &str) -> (Vec<u8>, String) {
    use x509_parser::prelude::FromDer;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    let (_, certificate) =
        x509_parser::certificate::X509Certificate::from_der(&block.contents).expect("X.509");
    (
        certificate.public_key().raw.to_vec(),
        certificate.subject().to_string(),
    )
}

#[test]
fn saving_without_a_certificate_mints_one_for_the_kms_key() {
    let fixture = Fixture::start();
    for (alias, algorithm) in [("alias/rsa", "PS256"), ("alias/p521", "ES512")] {
        let mut config = fixture.config(alias, algorithm, kms_emulator::DEFAULT_SECRET_ACCESS_KEY);
        config["certificateSubject"] = "my-realm".into();
        let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
        let description = validation::describe_signing_key(&parsed).expect("validates");
        assert!(description.certificate_minted);
        let (certificate_key, subject) = parse_certificate(&description.certificate);
        assert_eq!(certificate_key, spki(&description), "{alias}");
        assert_eq!(subject, "CN=my-realm");
    }
}

#[test]
fn an_uploaded_certificate_of_the_key_is_kept_and_one_of_another_key_is_refused() {
    let fixture = Fixture::start();
    let (_, minted) = fixture.saved("alias/p256", "ES256");

    let mut same_key = fixture.config(
        "alias/p256",
        "ES256",
        kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
    );
    same_key["certificate"] = minted.certificate.clone().into();
    let parsed = ProviderConfig::from_json(&same_key.to_string()).expect("valid");
    let kept = validation::describe_signing_key(&parsed).expect("matching certificate");
    assert!(!kept.certificate_minted);
    assert_eq!(kept.certificate, minted.certificate);

    let mut other_key = fixture.config(
        "alias/rsa",
        "RS256",
        kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
    );
    other_key["certificate"] = minted.certificate.clone().into();
    let parsed = ProviderConfig::from_json(&other_key.to_string()).expect("valid");
    let error = validation::describe_signing_key(&parsed).expect_err("mismatch");
    assert_eq!(error.kind(), ErrorKind::CertificateMismatch);
    let message = error.message();
    assert!(
        message.contains("(certificate: EC P-256 with SHA-256 fingerprint")
            && message.contains("KMS: RSA 2048 with SHA-256 fingerprint"),
        "{message}"
    );
}

#[test]
fn credentials_that_can_read_the_key_but_not_sign_are_refused_at_save() {
    let fixture = Fixture::start();
    let mut config = fixture.config("alias/rsa", "RS256", NO_SIGN_SECRET);
    config["accessKeyId"] = NO_SIGN_KEY_ID.into();
    let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
    let error = validation::describe_signing_key(&parsed).expect_err("no kms:Sign");
    assert_eq!(error.kind(), ErrorKind::AccessDenied);
    assert!(error.message().contains("kms:Sign"), "{}", error.message());
}

pub(super) fn assume_role_config(fixture: &Fixture, external_id: &str) -> serde_json::Value {
    let mut config = fixture.config(
        "alias/rsa",
        "RS256",
        kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
    );
    config["credentialsMode"] = "assume-role".into();
    config["roleArn"] = SIGNER_ROLE.into();
    config["externalId"] = external_id.into();
    config["stsEndpointUrl"] = fixture.emulator.sts_url().into();
    config
}

#[test]
fn an_assumed_role_validates_and_signs() {
    let fixture = Fixture::start();
    let mut config = assume_role_config(&fixture, EXTERNAL_ID);
    let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
    let description = validation::describe_signing_key(&parsed).expect("role assumed");
    config["keyArn"] = description.key_arn.clone().into();
    config["keySpec"] = description.key_spec.clone().into();
    config["publicKey"] = description.public_key.clone().into();
    let handle = fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers");
    let signature = fixture
        .keys
        .sign(handle, "SHA256withRSA", b"m")
        .expect("signs");
    assert!(verifies(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        &spki(&description),
        b"m",
        &signature
    ));
}

#[test]
fn a_role_that_cannot_be_assumed_is_refused_with_the_role_and_the_reason() {
    let fixture = Fixture::start();
    let wrong = "not-the-external-id";
    let config = assume_role_config(&fixture, wrong);
    let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
    let error = validation::describe_signing_key(&parsed).expect_err("wrong external id");
    assert_eq!(error.kind(), ErrorKind::CredentialsUnavailable);
    assert!(
        error.message().starts_with(&format!(
            "Could not assume role {SIGNER_ROLE}: AccessDenied: "
        )),
        "{}",
        error.message()
    );
    assert!(!error.message().contains(wrong));
}

impl Fixture {
    /// The emulator's per-operation call counts (control API `GET /stats`).
    fn calls(&self) -> serde_json::Value {
        let authority = self
            .emulator
            .control_url()
            .strip_prefix("http://")
            .expect("http URL");
        let mut stream = TcpStream::connect(authority).expect("control port");
        write!(
            stream,
            "GET /stats HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (_, body) = response.split_once("\r\n\r\n").expect("a body");
        let stats: serde_json::Value = serde_json::from_str(body.trim()).expect("stats JSON");
        stats["calls"].clone()
    }
}

/// Validation as Keycloak asks for it: `config` with the save `context` members, under the
/// server policy `policy_json`.
fn save_under(
    policy_json: serde_json::Value,
    mut config: serde_json::Value,
    context: serde_json::Value,
) -> keycloak_aws_kms_core::Result<validation::KeyDescription> {
    use keycloak_aws_kms_core::signing::policy::ServerPolicy;
    let policy = ServerPolicy::from_json(&policy_json.to_string()).expect("policy");
    if let (Some(config), Some(context)) = (config.as_object_mut(), context.as_object()) {
        config.extend(context.clone());
    }
    let json = config.to_string();
    let parsed = ProviderConfig::from_json(&json).expect("valid config");
    let context = validation::SaveContext::from_json(&json).expect("context");
    validation::describe_for_save(&parsed, &context, &policy)
}

#[test]
fn a_key_outside_the_policy_is_refused_once_describe_key_names_it_and_never_signs() {
    let fixture = Fixture::start();
    let config = fixture.config(
        "alias/rsa",
        "RS256",
        kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
    );
    let before = fixture.calls();

    let error = save_under(
        serde_json::json!({"allowedKeyIds": "alias/keycloak-${realm}-*"}),
        config.clone(),
        serde_json::json!({"realm": "acme"}),
    )
    .expect_err("not allowed");

    assert_eq!(error.kind(), ErrorKind::PolicyDenied, "{}", error.message());
    assert!(
        error.message().contains("allowed-key-ids"),
        "{}",
        error.message()
    );
    let after = fixture.calls();
    assert_eq!(
        after["DescribeKey"],
        before["DescribeKey"].as_u64().expect("n") + 1
    );
    assert_eq!(after["GetPublicKey"], before["GetPublicKey"]);
    assert_eq!(after["Sign"], before["Sign"]);

    // Allowed by the resolved ARN instead of the alias.
    let arn = fixture.emulator.keys()["alias/rsa"].clone();
    let allowed = save_under(
        serde_json::json!({"allowedKeyIds": arn}),
        config,
        serde_json::json!({"realm": "acme"}),
    )
    .expect("the resolved ARN is allowed");
    assert_eq!(allowed.key_arn, arn);
}

#[test]
fn a_key_another_realm_stores_is_refused_unless_sharing_is_allowed() {
    let fixture = Fixture::start();
    let config = fixture.config(
        "alias/p256",
        "ES256",
        kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
    );
    let arn = fixture.emulator.keys()["alias/p256"].clone();
    let context = serde_json::json!({"realm": "second", "keysInOtherRealms": [arn]});

    let error =
        save_under(serde_json::json!({}), config.clone(), context.clone()).expect_err("in use");
    assert_eq!(error.kind(), ErrorKind::PolicyDenied);
    assert_eq!(
        error.message(),
        format!(
            "KMS key {arn} is already in use by another realm (server option \
             --spi-keys--aws-kms--key-shared-across-realms)"
        )
    );
    save_under(
        serde_json::json!({"keySharedAcrossRealms": "true"}),
        config,
        context,
    )
    .expect("sharing allowed");
}

#[test]
fn a_kept_secret_sent_to_a_changed_endpoint_is_refused_before_any_call() {
    let fixture = Fixture::start();
    let (stored, _) = fixture.saved("alias/rsa", "RS256");
    let mut moved = fixture.config(
        "alias/rsa",
        "RS256",
        kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
    );
    // The same emulator, but another URL as far as the stored configuration can tell.
    moved["endpointUrl"] = format!("{}/", fixture.emulator.kms_url()).into();
    let before = fixture.calls();

    let error = save_under(
        serde_json::json!({}),
        moved.clone(),
        serde_json::json!({"realm": "acme", "previous": stored, "keptSecrets": ["secretAccessKey"]}),
    )
    .expect_err("kept secret, new destination");

    assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
    assert_eq!(
        error.message(),
        "'Secret access key' was saved for another destination; enter it again to use it with \
         the changed Endpoint URL"
    );
    assert_eq!(fixture.calls(), before, "nothing was sent");
    // Entered again, it may go there.
    save_under(
        serde_json::json!({}),
        moved,
        serde_json::json!({"realm": "acme", "previous": stored, "keptSecrets": []}),
    )
    .expect("entered in this request");
}

#[test]
fn a_stored_provider_outside_a_tightened_policy_is_not_registered() {
    use keycloak_aws_kms_core::signing::policy::{self, ServerPolicy};
    let fixture = Fixture::start();
    let (mut stored, _) = fixture.saved("alias/rsa", "RS256");
    stored["realm"] = "acme".into();
    // The process's policy is the default one in this test binary: access keys are allowed.
    assert_eq!(policy::current().as_ref(), &ServerPolicy::defaults());
    fixture
        .keys
        .register("component", &stored.to_string())
        .expect("allowed by default");

    stored["credentialsMode"] = "default".into();
    let error = fixture
        .keys
        .register("component", &stored.to_string())
        .expect_err("the server's identity is not for realm acme");
    assert_eq!(error.kind(), ErrorKind::PolicyDenied);
    assert!(
        error.message().contains("ambient-identity-realms"),
        "{}",
        error.message()
    );
}
