//! Regression tests for what the fuzz targets (`rust/fuzz`, `scripts/fuzz.sh`) and the hostile
//! argument tests found: messages that quoted a whole hostile value (10 MB back to the admin
//! console and the log) or its control characters. Every message now quotes at most a bounded
//! part of a value, with hidden characters escaped (`error::quoted_input`, `bounded_json_error`).

// Test fixtures fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keycloak_aws_kms_core::public_keys::jwks::parse_jwks;
use keycloak_aws_kms_core::public_keys::{KeyUse, Settings};
use keycloak_aws_kms_core::signing::algorithm::SigningAlgorithm;
use keycloak_aws_kms_core::signing::config::ProviderConfig;
use keycloak_aws_kms_core::signing::policy::ServerPolicy;
use keycloak_aws_kms_core::signing::validation::SaveContext;
use keycloak_aws_kms_core::{Error, ErrorKind};

const TEN_MB: usize = 10 * 1024 * 1024;

/// A message an administrator or operator may read: short, and without control characters.
fn assert_bounded(error: &Error) {
    let message = error.message();
    assert!(
        message.chars().count() < 1_000,
        "a message of {} characters: {}…",
        message.chars().count(),
        message.chars().take(200).collect::<String>()
    );
    assert!(
        !message.chars().any(char::is_control),
        "a message with a control character: {message:?}"
    );
}

fn config_error(json: &str) -> Error {
    ProviderConfig::from_json(json).expect_err("a hostile configuration")
}

#[test]
fn a_ten_megabyte_key_id_is_refused_with_a_short_message() {
    let json = format!(
        r#"{{"kmsKeyId":"alias/{}","region":"eu-west-1"}}"#,
        "a".repeat(TEN_MB)
    );
    let error = config_error(&json);
    assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
    assert!(
        error.message().starts_with("'KMS key' \"alias/aaa"),
        "{}",
        error.message()
    );
    assert_bounded(&error);
}

#[test]
fn control_characters_in_fields_are_shown_as_escapes() {
    let error = config_error(r#"{"kmsKeyId":"alias/a\u0000\u001b[31m","region":"eu-west-1"}"#);
    assert_bounded(&error);
    assert!(
        error.message().contains("\\u{0}\\u{1b}[31m"),
        "{}",
        error.message()
    );
    let error = config_error(r#"{"kmsKeyId":"alias/a","region":"eu-west-1\u202e"}"#);
    assert_bounded(&error);
    assert!(
        error.message().contains("eu-west-1\\u{202e}"),
        "{}",
        error.message()
    );
}

#[test]
fn every_free_text_field_is_quoted_boundedly() {
    let huge = "\u{1}".repeat(TEN_MB);
    for json in [
        format!(r#"{{"kmsKeyId":"alias/a","region":"{huge}"}}"#),
        format!(r#"{{"kmsKeyId":"alias/a","region":"eu-west-1","credentialsMode":"{huge}"}}"#),
        format!(
            r#"{{"kmsKeyId":"alias/a","region":"eu-west-1","credentialsMode":"assume-role","roleArn":"{huge}"}}"#
        ),
        format!(
            r#"{{"kmsKeyId":"alias/a","region":"eu-west-1","credentialsMode":"assume-role","roleArn":"arn:aws:iam::111122223333:role/r","roleSessionName":"{huge}"}}"#
        ),
        format!(r#"{{"kmsKeyId":"alias/a","region":"eu-west-1","algorithm":"{huge}"}}"#),
    ] {
        let json = json.replace('\u{1}', "\\u0001");
        assert_bounded(&config_error(&json));
    }
}

#[test]
fn a_mistyped_json_value_is_not_echoed_whole() {
    let huge = "x".repeat(TEN_MB);
    let error = config_error(&format!(r#"{{"kmsKeyId":["{huge}"],"region":5}}"#));
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert_bounded(&error);
    let error = SaveContext::from_json(&format!(r#"{{"keptSecrets":"{huge}"}}"#))
        .expect_err("not an array");
    assert_bounded(&error);
    let error = ServerPolicy::from_json(&format!(r#"["{huge}"]"#)).expect_err("not an object");
    assert_bounded(&error);
    let error =
        Settings::from_json(&format!(r#"{{"maxEntries":"{huge}"}}"#)).expect_err("not a number");
    assert_bounded(&error);
    let error = Settings::from_json("{\"max\\u001bEntries\":1}").expect_err("unknown");
    assert_bounded(&error);
}

#[test]
fn an_unknown_jca_algorithm_is_quoted_boundedly() {
    let error = SigningAlgorithm::from_jca(&format!("SHA256with{}\u{0}", "[".repeat(100_000)))
        .expect_err("unknown");
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert_bounded(&error);
    let error = SigningAlgorithm::from_jose(&"E".repeat(TEN_MB)).expect_err("unknown");
    assert_bounded(&error);
}

#[test]
fn hostile_server_options_are_refused_with_short_messages() {
    let huge = "d".repeat(TEN_MB);
    for json in [
        format!(r#"{{"allowedCredentialsModes":"{huge}"}}"#),
        format!(r#"{{"keySharedAcrossRealms":"{huge}"}}"#),
        format!(r#"{{"allowedKeyIds":"${{{huge}}}"}}"#),
        format!(r#"{{"{huge}":"x"}}"#),
        r#"{"allowed\u0000KeyIds":"x"}"#.to_owned(),
        r#"{"allowedCredentialsModes":"default,\u001b[2J"}"#.to_owned(),
        format!(r#"{{"allowedKeyIds":["{huge}"]}}"#),
    ] {
        let error = ServerPolicy::from_json(&json).expect_err("hostile options");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert_bounded(&error);
    }
}

#[test]
fn a_hostile_denied_address_is_quoted_boundedly() {
    for value in [
        "1".repeat(TEN_MB),
        "10.0.0.0/8,\\u0000".to_owned(),
        "10.0.0.1/8\\u001b".to_owned(),
    ] {
        let error = Settings::from_json(&format!(r#"{{"deniedAddresses":"{value}"}}"#))
            .expect_err("not a network");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert_bounded(&error);
    }
}

#[test]
fn a_key_set_with_hostile_members_is_skipped_with_short_reasons() {
    let huge = "k".repeat(1024 * 1024);
    let document = format!(
        r#"{{"keys":[{{"kty":"{huge}"}},{{"kty":"EC","crv":"P-256\u0000{huge}"}},
            {{"kty":"OKP","crv":"\u001b[31m"}},{{"kty":"RSA","use":"{huge}"}}]}}"#
    );
    let keys = parse_jwks(document.as_bytes(), KeyUse::Sig).expect("a key set");
    assert_eq!(keys.skipped.len(), 4);
    for skipped in &keys.skipped {
        assert!(
            skipped.reason.chars().count() < 300,
            "{} characters",
            skipped.reason.len()
        );
        assert!(
            !skipped.reason.chars().any(char::is_control),
            "{:?}",
            skipped.reason
        );
    }
    let error = KeyUse::parse(&"s".repeat(TEN_MB)).expect_err("not a use");
    assert_bounded(&error);
}

/// Found by the `certificate_pem` fuzz target: the PEM label was quoted raw, NULs included.
#[test]
fn a_pem_block_with_control_characters_in_its_label_is_refused_with_a_clean_message() {
    use keycloak_aws_kms_core::signing::certificate::check_uploaded;
    use keycloak_aws_kms_core::signing::spki::PublicKeyInfo;
    let kms_key = PublicKeyInfo::from_der(include_bytes!("../../fuzz/seeds/spki_der/ec-p256.der"))
        .expect("the fuzz seeds' EC key");
    for label in [
        "\"\0\0\0CERTIFICATE",
        "X\u{1b}[2J\r\nforged",
        &"L".repeat(100_000),
    ] {
        let pem =
            format!("Subject: CN=fuzz\r\n-----BEGIN {label}-----\nMAA=\n-----END {label}-----\n");
        let error = check_uploaded(
            &pem,
            &kms_key,
            "arn:aws:kms:eu-west-1:111122223333:key/k",
            0,
        )
        .expect_err("not a certificate");
        assert_eq!(error.kind(), ErrorKind::InvalidCertificate);
        assert_bounded(&error);
    }
}

/// Found by the `signing_config_json` fuzz target: the policy's refusals quoted the realm name
/// (and a key ARN, which KMS names) raw.
#[test]
fn policy_refusals_quote_the_realm_and_the_key_arn_cleanly() {
    let policy = ServerPolicy::from_json(
        r#"{"ambientIdentityRealms":"master","allowedKeyIds":"alias/allowed"}"#,
    )
    .expect("a policy");
    let config = ProviderConfig::from_json(r#"{"kmsKeyId":"alias/signing","region":"eu-west-1"}"#)
        .expect("a configuration");
    let realm = format!("tenant\n{}\u{1b}[0m", "r".repeat(100_000));
    let error = policy
        .check_configuration(Some(&realm), &config)
        .expect_err("not an ambient identity realm");
    assert_eq!(error.kind(), ErrorKind::PolicyDenied);
    assert_bounded(&error);
    let arn = format!(
        "arn:aws:kms:eu-west-1:111122223333:key/\r\n{}",
        "k".repeat(100_000)
    );
    let error = policy
        .check_key(Some(&realm), "alias/signing", &arn)
        .expect_err("not an allowed key");
    assert_bounded(&error);
    let error = policy
        .check_not_shared(&arn, std::slice::from_ref(&arn))
        .expect_err("shared");
    assert_bounded(&error);
}
