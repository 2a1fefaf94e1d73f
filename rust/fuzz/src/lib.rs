//! What the fuzz targets share: the fixed KMS keys, an HTTP layer that answers with the fuzzer's
//! bytes, and the properties every error must keep.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use keycloak_aws_kms_core::signing::spki::PublicKeyInfo;
use keycloak_aws_kms_core::Error;

pub mod targets;

/// SPKI DER of the RSA 2048 and EC P-256 keys the seeds were made with (seeds/spki_der).
pub const RSA_2048_SPKI: &[u8] = include_bytes!("../seeds/spki_der/rsa-2048.der");
pub const EC_P256_SPKI: &[u8] = include_bytes!("../seeds/spki_der/ec-p256.der");

/// The fixed keys, parsed once.
pub fn kms_keys() -> &'static [PublicKeyInfo; 2] {
    static KEYS: OnceLock<[PublicKeyInfo; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [RSA_2048_SPKI, EC_P256_SPKI].map(|der| match PublicKeyInfo::from_der(der) {
            Ok(key) => key,
            Err(e) => panic!("a seed key does not parse: {e}"),
        })
    })
}

/// The HTTP statuses an answer may have, by the fuzzer's index.
const STATUSES: [u16; 16] = [
    200, 400, 403, 404, 409, 413, 429, 500, 502, 503, 504, 204, 302, 418, 599, 201,
];

/// One HTTP answer, framed from fuzz input: `[status index][flags]` then the body; with flag 1
/// the body's first line (up to `\n`) is the `x-amzn-ErrorType` header and the rest the body.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub error_type: Option<Vec<u8>>,
    pub json: bool,
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer framed in `data` and the flags byte (bits above 1 are the target's own).
    pub fn from_fuzz(data: &[u8]) -> (Answer, u8) {
        let status = STATUSES[usize::from(data.first().copied().unwrap_or(0)) % STATUSES.len()];
        let flags = data.get(1).copied().unwrap_or(0);
        let mut body = data.get(2..).unwrap_or_default().to_vec();
        let mut error_type = None;
        if flags & 1 != 0 {
            if let Some(end) = body.iter().position(|b| *b == b'\n') {
                error_type = Some(body[..end].to_vec());
                body.drain(..=end);
            }
        }
        let answer = Answer {
            status,
            error_type,
            json: flags & 2 == 0,
            body,
        };
        (answer, flags)
    }

    fn response(&self, content_type: &'static str) -> HttpResponse {
        let status = StatusCode::try_from(self.status).unwrap_or_else(|_| {
            StatusCode::try_from(500).unwrap_or_else(|_| unreachable!("500 is a status"))
        });
        let mut response = HttpResponse::new(status, SdkBody::from(self.body.clone()));
        if self.json {
            let _ = response
                .headers_mut()
                .try_insert("content-type", content_type);
        }
        if let Some(value) = self
            .error_type
            .as_deref()
            .and_then(|v| String::from_utf8(v.to_vec()).ok())
        {
            // A value that is no valid header is left out, as an HTTP stack would refuse it.
            let _ = response.headers_mut().try_insert("x-amzn-ErrorType", value);
        }
        response
    }
}

/// Where the answering HTTP layer takes its next answer from.
pub type AnswerSlot = Arc<Mutex<Answer>>;

/// The HTTP layer: every request is answered at once with the answer in the slot.
#[derive(Debug)]
struct Answering {
    slot: AnswerSlot,
    content_type: &'static str,
}

impl HttpConnector for Answering {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let answer = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        HttpConnectorFuture::ready(Ok(answer.response(self.content_type)))
    }
}

/// An SDK HTTP client that answers every request with the answer in `slot`.
pub fn answering_http_client(slot: AnswerSlot, content_type: &'static str) -> SharedHttpClient {
    let connector = SharedHttpConnector::new(Answering { slot, content_type });
    http_client_fn(move |_settings, _components| connector.clone())
}

/// A KMS client as the product builds one (static credentials, no SDK retries), whose HTTP layer
/// answers with `slot`.
pub fn kms_client(
    slot: AnswerSlot,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("eu-west-1"))
        .credentials_provider(credentials)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .http_client(answering_http_client(slot, "application/x-amz-json-1.1"))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Static credentials, as `access-key` mode has them.
pub fn static_credentials() -> aws_credential_types::provider::SharedCredentialsProvider {
    aws_credential_types::provider::SharedCredentialsProvider::new(
        aws_credential_types::Credentials::new(
            "AKIAFUZZFUZZFUZZFUZZ",
            "fuzz-secret-fuzz-secret-fuzz-secret-fuzz",
            None,
            None,
            "fuzz",
        ),
    )
}

/// What every error the product makes of outside bytes keeps: a bounded message without control
/// characters (remote text is quoted through `bounded_remote_text`), and never the secret.
pub fn check_error(error: &Error) {
    let message = error.message();
    assert!(
        message.chars().count() <= 4_000,
        "an error message of {} characters",
        message.chars().count()
    );
    assert!(
        !message.chars().any(|c| c.is_control()),
        "an error message with a control character: {message:?}"
    );
    assert!(
        !message.contains("fuzz-secret"),
        "an error message with the secret: {message:?}"
    );
}
