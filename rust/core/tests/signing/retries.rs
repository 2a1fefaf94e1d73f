//! Retries, their budget and the credentials refresh, against the emulator's faults: what the
//! AWS SDKs' standard retry mode treats as transient is attempted again inside the deadline,
//! what is not fails at once, a throttling storm is not amplified, and assumed-role credentials
//! are refreshed ahead of expiry so that no signature waits for STS.

use std::time::{Duration, Instant};

use keycloak_aws_kms_core::signing::config::ProviderConfig;
use keycloak_aws_kms_core::signing::kms::{calls, Timeouts};
use keycloak_aws_kms_core::signing::validation;
use keycloak_aws_kms_core::ErrorKind;

use super::against_emulator::{assume_role_config, Fixture, EXTERNAL_ID};

const ES256: &str = "SHA256withECDSA";

/// A registered ES256 key of the fixture, and its handle.
fn registered(fixture: &Fixture) -> u64 {
    let (config, _) = fixture.saved("alias/p256", "ES256");
    fixture
        .keys
        .register("component", &config.to_string())
        .expect("registers")
}

fn calls_of(fixture: &Fixture, operation: &str) -> u64 {
    fixture.control_answer("GET", "/stats", "")["calls"][operation]
        .as_u64()
        .expect("a count")
}

fn reset_stats(fixture: &Fixture) {
    fixture.control("POST", "/stats/reset", "");
}

#[test]
fn a_connection_reset_mid_response_is_retried_and_the_signature_is_returned() {
    let fixture = Fixture::start();
    let handle = registered(&fixture);
    reset_stats(&fixture);
    fixture.fault(serde_json::json!({"mode": "reset", "operations": ["Sign"], "count": 1}));
    fixture
        .keys
        .sign(handle, ES256, b"m")
        .expect("retried after the reset");
    assert_eq!(calls_of(&fixture, "Sign"), 2);
}

#[test]
fn dropped_connections_are_retried_inside_the_deadline() {
    let fixture = Fixture::start();
    let handle = registered(&fixture);
    reset_stats(&fixture);
    fixture.fault(serde_json::json!({"mode": "drop", "operations": ["Sign"], "count": 2}));
    let started = Instant::now();
    fixture
        .keys
        .sign(handle, ES256, b"m")
        .expect("the third attempt is answered");
    assert_eq!(calls_of(&fixture, "Sign"), 3);
    assert!(started.elapsed() < Timeouts::DEFAULT.deadline);
}

#[test]
fn three_dropped_connections_fail_as_a_network_error_after_three_attempts() {
    let fixture = Fixture::start();
    let handle = registered(&fixture);
    reset_stats(&fixture);
    fixture.fault(serde_json::json!({"mode": "drop", "operations": ["Sign"]}));
    let error = fixture
        .keys
        .sign(handle, ES256, b"m")
        .expect_err("every attempt dropped");
    assert_eq!(error.kind(), ErrorKind::Network, "{}", error.message());
    assert!(error.is_transient());
    assert_eq!(calls_of(&fixture, "Sign"), u64::from(calls::MAX_ATTEMPTS));
}

#[test]
fn a_hung_attempt_is_cut_at_the_attempt_timeout_and_the_retry_answers_inside_the_deadline() {
    let fixture = Fixture::start();
    let handle = registered(&fixture);
    fixture.fault(serde_json::json!({"mode": "hang", "operations": ["Sign"], "count": 1}));
    let started = Instant::now();
    fixture
        .keys
        .sign(handle, ES256, b"m")
        .expect("the second attempt is answered");
    let elapsed = started.elapsed();
    assert!(elapsed >= Timeouts::DEFAULT.attempt, "{elapsed:?}");
    assert!(elapsed < Timeouts::DEFAULT.deadline, "{elapsed:?}");
    fixture.clear_faults();
}

#[test]
fn a_kms_that_hangs_every_attempt_fails_by_the_deadline_not_later() {
    let fixture = Fixture::start();
    let handle = registered(&fixture);
    fixture.fault(serde_json::json!({"mode": "hang", "operations": ["Sign"]}));
    let started = Instant::now();
    let error = fixture
        .keys
        .sign(handle, ES256, b"m")
        .expect_err("no answer");
    let elapsed = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{}", error.message());
    assert!(elapsed >= Timeouts::DEFAULT.attempt, "{elapsed:?}");
    assert!(
        elapsed < Timeouts::DEFAULT.deadline + Duration::from_millis(500),
        "{elapsed:?}"
    );
    fixture.clear_faults();
}

#[test]
fn a_signature_that_does_not_verify_is_refused_and_not_retried() {
    let fixture = Fixture::start();
    let handle = registered(&fixture);
    reset_stats(&fixture);
    fixture.fault(serde_json::json!({"mode": "bad-signature"}));
    let error = fixture
        .keys
        .sign(handle, ES256, b"m")
        .expect_err("KMS's answer does not verify");
    assert_eq!(
        error.kind(),
        ErrorKind::InvalidSignature,
        "{}",
        error.message()
    );
    assert_eq!(calls_of(&fixture, "Sign"), 1);
    fixture.clear_faults();
    fixture.keys.sign(handle, ES256, b"m").expect("signs again");
}

#[test]
fn a_throttling_storm_is_not_amplified_once_the_retry_budget_is_spent() {
    let fixture = Fixture::start();
    let handle = registered(&fixture);
    reset_stats(&fixture);
    let warnings_before = calls::capacity_warnings();
    fixture.fault(serde_json::json!({"mode": "throttle", "operations": ["Sign"]}));
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 25;
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..PER_THREAD {
                    let error = fixture
                        .keys
                        .sign(handle, ES256, b"m")
                        .expect_err("throttled");
                    assert_eq!(error.kind(), ErrorKind::Throttled);
                }
            });
        }
    });
    let requests = THREADS * PER_THREAD;
    let attempts = calls_of(&fixture, "Sign");
    // A full budget pays for 100 throttling retries; without one every request would have
    // made three attempts.
    let budgeted_retries = u64::from(
        keycloak_aws_kms_core::signing::kms::budget::CAPACITY
            / keycloak_aws_kms_core::signing::kms::budget::RETRY_COST,
    );
    assert!(
        attempts <= requests + budgeted_retries,
        "{attempts} attempts for {requests} requests"
    );
    assert!(attempts < 2 * requests, "{attempts} attempts");
    assert!(calls::capacity_warnings() > warnings_before);
    let warning = calls::last_capacity_warning().expect("a capacity warning");
    assert!(warning.contains("request rate"), "{warning}");
    assert!(warning.contains("per AWS account and Region"), "{warning}");

    fixture.clear_faults();
    fixture
        .keys
        .sign(handle, ES256, b"m")
        .expect("signs once KMS stops throttling");
}

/// A registered assume-role RS256 key; validation assumed the role once.
fn registered_with_role(fixture: &Fixture) -> u64 {
    let mut config = assume_role_config(fixture, EXTERNAL_ID);
    let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
    let description = validation::describe_signing_key(&parsed).expect("role assumed");
    config["keyArn"] = description.key_arn.clone().into();
    config["keySpec"] = description.key_spec.clone().into();
    config["publicKey"] = description.public_key.clone().into();
    fixture
        .keys
        .register("role-component", &config.to_string())
        .expect("registers")
}

#[test]
fn sts_throttling_and_server_errors_at_a_credentials_fetch_are_transient_and_retried() {
    let fixture = Fixture::start();
    for (fault, kind) in [
        (
            serde_json::json!({"mode": "throttle", "operations": ["AssumeRole"]}),
            ErrorKind::Throttled,
        ),
        (
            serde_json::json!({"mode": "server-error", "status": 503, "operations": ["AssumeRole"]}),
            ErrorKind::KmsUnavailable,
        ),
    ] {
        fixture.fault(fault);
        reset_stats(&fixture);
        let config = assume_role_config(&fixture, EXTERNAL_ID);
        let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
        let error = validation::describe_signing_key(&parsed).expect_err("STS fails");
        assert_eq!(error.kind(), kind, "{}", error.message());
        assert!(error.is_transient());
        assert!(
            error.message().contains("keycloak-signer"),
            "{}",
            error.message()
        );
        // The background fetch and the call's own attempts.
        assert!(calls_of(&fixture, "AssumeRole") >= 2);
        fixture.clear_faults();
    }
    let config = assume_role_config(&fixture, EXTERNAL_ID);
    let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
    validation::describe_signing_key(&parsed).expect("STS answers again");
}

#[test]
fn a_denied_role_stays_credentials_unavailable_and_is_not_retried_in_the_call() {
    let fixture = Fixture::start();
    let config = assume_role_config(&fixture, "not-the-external-id");
    let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid");
    let error = validation::describe_signing_key(&parsed).expect_err("denied");
    assert_eq!(error.kind(), ErrorKind::CredentialsUnavailable);
    assert!(!error.is_transient());
}

#[test]
fn assumed_credentials_are_refreshed_ahead_of_expiry_and_no_signature_waits_for_a_slow_sts() {
    let fixture = Fixture::start();
    // Sessions of 12 s: refreshed 3 s before they expire, handed out until 1.2 s before.
    fixture.control("PUT", "/sts", r#"{"sessionSeconds":12}"#);
    let handle = registered_with_role(&fixture);
    fixture
        .keys
        .sign(handle, "SHA256withRSA", b"m")
        .expect("signs");
    reset_stats(&fixture);
    fixture.fault(
        serde_json::json!({"mode": "none", "latencyMs": 1000, "operations": ["AssumeRole"]}),
    );
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(14) {
        let signing = Instant::now();
        fixture
            .keys
            .sign(handle, "SHA256withRSA", b"m")
            .expect("signs while STS is slow");
        slowest = slowest.max(signing.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    fixture.clear_faults();
    fixture.control("DELETE", "/sts", "");
    assert!(
        calls_of(&fixture, "AssumeRole") >= 1,
        "the credentials were refreshed"
    );
    assert!(
        slowest < Duration::from_millis(900),
        "a signature waited {slowest:?}: it paid for the 1 s STS call"
    );
}

#[test]
fn an_sts_throttle_at_refresh_time_is_absorbed_while_the_held_credentials_are_valid() {
    let fixture = Fixture::start();
    // Sessions of 10 s: refreshed 2.5 s before they expire, handed out until 1 s before.
    fixture.control("PUT", "/sts", r#"{"sessionSeconds":10}"#);
    let handle = registered_with_role(&fixture);
    fixture
        .keys
        .sign(handle, "SHA256withRSA", b"m")
        .expect("signs");
    reset_stats(&fixture);
    fixture.fault(serde_json::json!({"mode": "throttle", "operations": ["AssumeRole"]}));
    let started = Instant::now();
    let mut signatures = 0;
    // Until the refresh has been throttled twice (or the credentials are close to expiry).
    while calls_of(&fixture, "AssumeRole") < 2 && started.elapsed() < Duration::from_secs(8) {
        fixture
            .keys
            .sign(handle, "SHA256withRSA", b"m")
            .expect("signs with the held credentials while STS throttles");
        signatures += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        calls_of(&fixture, "AssumeRole") >= 2,
        "the refresh was tried"
    );
    fixture.clear_faults();
    for _ in 0..30 {
        fixture
            .keys
            .sign(handle, "SHA256withRSA", b"m")
            .expect("signs after STS recovered");
        signatures += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    fixture.control("DELETE", "/sts", "");
    assert!(signatures > 30);
}
