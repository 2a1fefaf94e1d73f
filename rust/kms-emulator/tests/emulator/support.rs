//! Starting emulators, SDK clients, and plain HTTP for the control port.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_kms::Client;
use kms_emulator::{Config, Emulator, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An emulator with the default configuration and no request log.
pub async fn start() -> Emulator {
    start_with(Config::default()).await
}

pub async fn start_with(config: Config) -> Emulator {
    kms_emulator::start(Config {
        log_requests: false,
        ..config
    })
    .await
    .expect("emulator starts")
}

/// A client with the default credentials, no retries (so every fault is seen as it is) and
/// a short attempt timeout.
pub fn client(emulator: &Emulator) -> Client {
    client_with(
        emulator,
        Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ),
        Duration::from_secs(10),
    )
}

pub fn client_with(
    emulator: &Emulator,
    credentials: Credentials,
    attempt_timeout: Duration,
) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(emulator.region().to_owned()))
        .endpoint_url(emulator.kms_url())
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// Creates a key and returns its key id.
pub async fn create_key(client: &Client, spec: KeySpec, usage: KeyUsageType) -> String {
    let output = client
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .expect("CreateKey");
    output
        .key_metadata()
        .expect("KeyMetadata")
        .key_id()
        .to_owned()
}

/// The AWS error code of a failed call (`None` if there was no service response).
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<String> {
    err.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .map(str::to_owned)
}

/// A plain HTTP/1.1 exchange; returns status, lowercased headers and body.
pub async fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A control API call; returns status and JSON body.
pub async fn control(emulator: &Emulator, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = http(
        emulator.control_url(),
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    )
    .await;
    (status, serde_json::from_str(&body).expect("JSON body"))
}

/// Puts a fault in effect, asserting the control API accepted it.
pub async fn set_fault(emulator: &Emulator, fault: &str) {
    let (status, body) = control(emulator, "PUT", "/faults", fault).await;
    assert_eq!(status, 200, "PUT /faults {fault}: {body}");
}

pub async fn clear_faults(emulator: &Emulator) {
    let (status, body) = control(emulator, "DELETE", "/faults", "").await;
    assert_eq!(status, 200, "DELETE /faults: {body}");
}
