//! The control port: health, request counts and each fault mode, seen through the SDK (which
//! does not retry here, so each fault is observed as it is).

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use tokio::net::TcpStream;

use crate::support::{
    clear_faults, client, client_with, control, create_key, error_code, set_fault, start,
};

async fn sign(
    client: &Client,
    key: &str,
) -> Result<(), SdkError<aws_sdk_kms::operation::sign::SignError>> {
    client
        .sign()
        .key_id(key)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .message(Blob::new("message"))
        .send()
        .await
        .map(|_| ())
}

#[tokio::test]
async fn health_answers_ok() {
    let emulator = start().await;
    let (status, body) = control(&emulator, "GET", "/health", "").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let (status, _) = control(&emulator, "GET", "/nothing-here", "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stats_count_every_request_that_reached_an_operation() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (status, _) = control(&emulator, "POST", "/stats/reset", "").await;
    assert_eq!(status, 200);

    sign(&client, &key).await.expect("Sign");
    set_fault(
        &emulator,
        r#"{"mode":"throttle","operations":["Sign"],"count":1}"#,
    )
    .await;
    sign(&client, &key).await.expect_err("throttled");
    let stranger = client_with(
        &emulator,
        Credentials::new("AKIASTRANGER", "secret", None, None, "test"),
        Duration::from_secs(5),
    );
    stranger
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect_err("refused");

    let (_, stats) = control(&emulator, "GET", "/stats", "").await;
    assert_eq!(stats["total"], 3, "{stats}");
    assert_eq!(stats["calls"]["Sign"], 2, "{stats}");
    assert_eq!(stats["calls"]["DescribeKey"], 1, "{stats}");
    assert_eq!(stats["calls"]["GetPublicKey"], 0, "{stats}");

    control(&emulator, "POST", "/stats/reset", "").await;
    let (_, stats) = control(&emulator, "GET", "/stats", "").await;
    assert_eq!(stats["total"], 0, "{stats}");
}

#[tokio::test]
async fn throttle_applies_to_the_listed_operations_and_count_limits_it() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    set_fault(
        &emulator,
        r#"{"mode":"throttle","operations":["Sign"],"count":2}"#,
    )
    .await;

    client
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("DescribeKey is not throttled");
    for _ in 0..2 {
        let err = sign(&client, &key).await.expect_err("throttled");
        assert_eq!(error_code(&err).as_deref(), Some("ThrottlingException"));
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    }
    sign(&client, &key).await.expect("the count is used up");
    let (_, fault) = control(&emulator, "GET", "/faults", "").await;
    assert_eq!(fault["count"], 0, "{fault}");
}

#[tokio::test]
async fn server_error_answers_500_or_503() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    for (fault, status, code) in [
        (r#"{"mode":"server-error"}"#, 500, "KMSInternalException"),
        (
            r#"{"mode":"server-error","status":503}"#,
            503,
            "ServiceUnavailableException",
        ),
    ] {
        set_fault(&emulator, fault).await;
        let err = sign(&client, &key).await.expect_err("server error");
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(status)
        );
        assert_eq!(error_code(&err).as_deref(), Some(code));
    }
    clear_faults(&emulator).await;
    sign(&client, &key).await.expect("cleared");
}

#[tokio::test]
async fn drop_closes_the_connection_without_a_response() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    set_fault(&emulator, r#"{"mode":"drop","operations":["Sign"]}"#).await;
    let err = sign(&client, &key).await.expect_err("dropped");
    assert!(err.raw_response().is_none(), "{err:?}");
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn hang_never_answers_until_the_faults_are_cleared() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    // With a latency longer than any client waits, as the end-to-end tests use it: clearing
    // the faults releases the request from the latency too.
    set_fault(
        &emulator,
        r#"{"mode":"hang","latencyMs":60000,"operations":["Sign"]}"#,
    )
    .await;

    let impatient = client_with(
        &emulator,
        Credentials::new(
            kms_emulator::DEFAULT_ACCESS_KEY_ID,
            kms_emulator::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ),
        Duration::from_millis(300),
    );
    let err = sign(&impatient, &key).await.expect_err("gave up");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");

    let patient = tokio::spawn({
        let client = client.clone();
        let key = key.clone();
        async move { sign(&client, &key).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!patient.is_finished());
    clear_faults(&emulator).await;
    patient
        .await
        .expect("task")
        .expect("answered once the faults were cleared");
}

#[tokio::test]
async fn latency_delays_the_matching_responses() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    set_fault(
        &emulator,
        r#"{"mode":"none","latencyMs":400,"operations":["Sign"]}"#,
    )
    .await;
    let started = Instant::now();
    sign(&client, &key).await.expect("delayed, then answered");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let started = Instant::now();
    client
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("DescribeKey");
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn down_refuses_connections_until_the_faults_are_cleared() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let addr = emulator.kms_url().trim_start_matches("http://").to_owned();

    set_fault(&emulator, r#"{"mode":"down"}"#).await;
    let refused = TcpStream::connect(&addr).await.expect_err("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = sign(&client, &key).await.expect_err("down");
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    let (status, _) = control(&emulator, "GET", "/health", "").await;
    assert_eq!(status, 200, "the control port stays up");

    clear_faults(&emulator).await;
    TcpStream::connect(&addr)
        .await
        .expect("listening again on the same port");
    sign(&client, &key).await.expect("up again");
}

#[tokio::test]
async fn malformed_fault_requests_are_refused() {
    let emulator = start().await;
    for body in [
        r#"{"mode":"explode"}"#,
        r#"{"mode":"throttle","operations":["Encrypt"]}"#,
        r#"{"mode":"throttle","latency":5}"#,
        r#"{"mode":"down","count":1}"#,
        "not json",
    ] {
        let (status, response) = control(&emulator, "PUT", "/faults", body).await;
        assert_eq!(status, 400, "{body}");
        assert!(response["error"].is_string(), "{body}");
    }
    let (_, fault) = control(&emulator, "GET", "/faults", "").await;
    assert_eq!(fault["mode"], "none");
}

#[tokio::test]
async fn reset_sends_half_of_the_answer_and_then_resets_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let emulator = start().await;
    set_fault(
        &emulator,
        r#"{"mode":"reset","operations":["DescribeKey"],"count":1}"#,
    )
    .await;
    let addr = emulator.kms_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let body = r#"{"KeyId":"alias/anything"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: TrentService.DescribeKey\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let ended = loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break None,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err) => break Some(err.kind()),
        }
    };
    assert_eq!(
        ended,
        Some(std::io::ErrorKind::ConnectionReset),
        "{received:?}"
    );
    let text = String::from_utf8_lossy(&received);
    let (head, partial) = text.split_once("\r\n\r\n").expect("the head was sent");
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    let announced: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|length| length.trim().parse().ok())
        .expect("Content-Length");
    assert!(
        !partial.is_empty() && partial.len() < announced,
        "{} of {announced}",
        partial.len()
    );
}

#[tokio::test]
async fn reset_cuts_off_a_sign_that_kms_completed_and_the_next_one_is_answered() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    control(&emulator, "POST", "/stats/reset", "").await;
    set_fault(
        &emulator,
        r#"{"mode":"reset","operations":["Sign"],"count":1}"#,
    )
    .await;
    let err = sign(&client, &key).await.expect_err("reset mid-response");
    assert!(err.as_service_error().is_none(), "{err:?}");
    sign(&client, &key).await.expect("the fault applied once");
    let (_, stats) = control(&emulator, "GET", "/stats", "").await;
    assert_eq!(stats["calls"]["Sign"], 2, "{stats}");
}

#[tokio::test]
async fn bad_signature_answers_with_the_keys_signature_of_another_message() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    set_fault(&emulator, r#"{"mode":"bad-signature","count":1}"#).await;
    client
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("other operations are spared and do not count");
    let signature = client
        .sign()
        .key_id(&key)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .message(Blob::new("message"))
        .send()
        .await
        .expect("a well-formed answer")
        .signature
        .expect("Signature");
    let verify = |message: &'static str| {
        client
            .verify()
            .key_id(&key)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .message(Blob::new(message))
            .signature(signature.clone())
            .send()
    };
    let err = verify("message")
        .await
        .expect_err("not a signature of the message sent");
    assert_eq!(
        error_code(&err).as_deref(),
        Some("KMSInvalidSignatureException")
    );
    // "message" with its first bit flipped is "lessage".
    let other = verify("lessage")
        .await
        .expect("a signature of another message");
    assert!(other.signature_valid);
    let (_, fault) = control(&emulator, "GET", "/faults", "").await;
    assert_eq!(fault["count"], 0, "{fault}");
}
