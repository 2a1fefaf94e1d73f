//! STS `AssumeRole` over the AWS Query protocol, served on the KMS port: a `POST /` without
//! `X-Amz-Target` whose body is a form (`application/x-www-form-urlencoded`) with
//! `Action=AssumeRole&Version=2011-06-15`. Responses and errors are STS's XML.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

use crate::principal::{is_external_id, is_name_byte, Caller, Identities};
use crate::protocol::{ErrorKind, KmsError, Operation};
use crate::sigv4::percent_decode;

/// The SigV4 service name of STS.
pub const SERVICE: &str = "sts";
/// The one STS API version there is.
pub const VERSION: &str = "2011-06-15";
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
const TARGET_HEADER: &str = "x-amz-target";
const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

const MIN_DURATION_SECONDS: u64 = 900;
const MAX_DURATION_SECONDS: u64 = 43_200;
const DEFAULT_DURATION_SECONDS: u64 = 3600;
/// A session assuming a role ("role chaining") gets at most an hour.
const MAX_CHAINED_DURATION_SECONDS: u64 = 3600;

/// Whether a request speaks STS rather than KMS: `POST /`, no `X-Amz-Target`, a form body.
pub fn is_sts_request(parts: &Parts) -> bool {
    let form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE));
    parts.method == Method::POST
        && parts.uri.path() == "/"
        && !parts.headers.contains_key(TARGET_HEADER)
        && form
}

/// The parameters of a Query request body; the first of repeated names counts.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes `name=value&…` (`+` is a space, `%XX` a byte; invalid UTF-8 is replaced).
    pub fn parse(body: &[u8]) -> Params {
        let decode = |text: &str| {
            let bytes = percent_decode(&text.replace('+', " "));
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let body = String::from_utf8_lossy(body);
        Params(
            body.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(name), decode(value))
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(param, _)| param == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The operation an STS request names: only `AssumeRole` of version `2011-06-15` exists here.
pub fn operation(params: &Params) -> Result<Operation, KmsError> {
    let action = params.get("Action").unwrap_or_default();
    let version = params.get("Version").unwrap_or_default();
    if action == Operation::AssumeRole.name() && version == VERSION {
        Ok(Operation::AssumeRole)
    } else {
        Err(KmsError::new(
            ErrorKind::UnknownOperation,
            format!(
                "Could not find operation {} for version {}",
                action.escape_debug(),
                version.escape_debug()
            ),
        ))
    }
}

/// `AssumeRole` for an authenticated caller: validation (`ValidationError`), then authorization
/// (`AccessDenied`), then new temporary credentials. Returns the response XML.
pub fn assume_role(
    identities: &Identities,
    caller: &Caller,
    params: &Params,
    request_id: &str,
    now: SystemTime,
    lifetime: Option<Duration>,
) -> Result<Bytes, KmsError> {
    let request = AssumeRoleRequest::validate(params)?;
    let role = identities.authorize_assume_role(caller, request.role_arn, request.external_id)?;
    if caller.temporary && request.duration_seconds > MAX_CHAINED_DURATION_SECONDS {
        return Err(KmsError::new(
            ErrorKind::Validation,
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    let issued = identities.issue(
        role,
        request.session_name,
        lifetime.unwrap_or(Duration::from_secs(request.duration_seconds)),
        now,
    )?;
    let mut xml = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        xml,
        "<AssumeRoleResponse xmlns=\"{NAMESPACE}\">\
         <AssumeRoleResult>\
         <AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser>\
         <Credentials>\
         <AccessKeyId>{}</AccessKeyId>\
         <SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken>\
         <Expiration>{}</Expiration>\
         </Credentials>\
         </AssumeRoleResult>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>",
        xml_escape(&issued.assumed_role_id),
        xml_escape(&issued.assumed_role_arn),
        xml_escape(&issued.access_key_id),
        xml_escape(&issued.secret_access_key),
        xml_escape(&issued.session_token),
        iso8601(issued.expiration),
        xml_escape(request_id),
    );
    Ok(Bytes::from(xml))
}

/// The members `AssumeRole` acts on; the others (`Policy`, `PolicyArns`, `Tags`,
/// `SourceIdentity`, `SerialNumber`, …) are accepted and ignored.
#[derive(Debug)]
struct AssumeRoleRequest<'a> {
    role_arn: &'a str,
    session_name: &'a str,
    external_id: Option<&'a str>,
    duration_seconds: u64,
}

impl<'a> AssumeRoleRequest<'a> {
    /// Checks every member against the STS model and reports all violations at once, as AWS
    /// does ("2 validation errors detected: …; …").
    fn validate(params: &'a Params) -> Result<AssumeRoleRequest<'a>, KmsError> {
        let mut violations = Vec::new();
        let mut violated = |member: &str, value: Shown<'_>, constraint: &str| {
            let value = match value {
                Shown::Null => "Value null".to_owned(),
                Shown::Quoted(value) => format!("Value '{}'", value.escape_debug()),
                Shown::Hidden => "Value".to_owned(),
            };
            violations.push(format!(
                "{value} at '{member}' failed to satisfy constraint: Member {constraint}"
            ));
        };

        let role_arn = params.get("RoleArn");
        match role_arn {
            None => violated("roleArn", Shown::Null, "must not be null"),
            Some(arn) if arn.len() < 20 => violated(
                "roleArn",
                Shown::Quoted(arn),
                "must have length greater than or equal to 20",
            ),
            Some(arn) if arn.len() > 2048 => violated(
                "roleArn",
                Shown::Hidden,
                "must have length less than or equal to 2048",
            ),
            Some(_) => {}
        }

        let session_name = params.get("RoleSessionName");
        match session_name {
            None => violated("roleSessionName", Shown::Null, "must not be null"),
            Some(name) if name.len() < 2 => violated(
                "roleSessionName",
                Shown::Quoted(name),
                "must have length greater than or equal to 2",
            ),
            Some(name) if name.len() > 64 => violated(
                "roleSessionName",
                Shown::Quoted(name),
                "must have length less than or equal to 64",
            ),
            Some(name) if !name.bytes().all(is_name_byte) => violated(
                "roleSessionName",
                Shown::Quoted(name),
                "must satisfy regular expression pattern: [\\w+=,.@-]*",
            ),
            Some(_) => {}
        }

        // The value is never echoed: the product treats external ids as secrets.
        let external_id = params.get("ExternalId");
        if external_id.is_some_and(|id| !is_external_id(id)) {
            violated(
                "externalId",
                Shown::Hidden,
                "must have length 2 to 1224 and satisfy regular expression pattern: [\\w+=,.@:\\/-]*",
            );
        }

        let duration = params.get("DurationSeconds");
        let duration_seconds = match duration.map(|text| (text, text.parse::<i64>())) {
            None => DEFAULT_DURATION_SECONDS,
            Some((text, Err(_))) => {
                violated("durationSeconds", Shown::Quoted(text), "must be an integer");
                DEFAULT_DURATION_SECONDS
            }
            Some((text, Ok(seconds))) => match u64::try_from(seconds) {
                Ok(seconds) if seconds < MIN_DURATION_SECONDS => {
                    violated(
                        "durationSeconds",
                        Shown::Quoted(text),
                        "must have value greater than or equal to 900",
                    );
                    seconds
                }
                Ok(seconds) if seconds > MAX_DURATION_SECONDS => {
                    violated(
                        "durationSeconds",
                        Shown::Quoted(text),
                        "must have value less than or equal to 43200",
                    );
                    seconds
                }
                Ok(seconds) => seconds,
                Err(_) => {
                    violated(
                        "durationSeconds",
                        Shown::Quoted(text),
                        "must have value greater than or equal to 900",
                    );
                    DEFAULT_DURATION_SECONDS
                }
            },
        };

        match (role_arn, session_name, violations.len()) {
            (Some(role_arn), Some(session_name), 0) => Ok(AssumeRoleRequest {
                role_arn,
                session_name,
                external_id,
                duration_seconds,
            }),
            (_, _, count) => Err(KmsError::new(
                ErrorKind::Validation,
                format!(
                    "{count} validation error{} detected: {}",
                    if count == 1 { "" } else { "s" },
                    violations.join("; ")
                ),
            )),
        }
    }
}

/// How a validation message shows the offending value.
#[derive(Clone, Copy, Debug)]
enum Shown<'a> {
    Null,
    Quoted(&'a str),
    /// Too long, or secret.
    Hidden,
}

/// STS's code and HTTP status for an error kind. Faults, authentication and validation are the
/// only errors STS requests meet; the KMS-only kinds cannot occur and map to `InternalFailure`.
fn code_and_status(kind: ErrorKind) -> (&'static str, StatusCode) {
    match kind {
        ErrorKind::AccessDenied => ("AccessDenied", StatusCode::FORBIDDEN),
        ErrorKind::UnrecognizedClient => ("InvalidClientTokenId", StatusCode::FORBIDDEN),
        ErrorKind::InvalidSignature => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN),
        ErrorKind::MissingAuthenticationToken => {
            ("MissingAuthenticationToken", StatusCode::FORBIDDEN)
        }
        ErrorKind::IncompleteSignature => ("IncompleteSignature", StatusCode::BAD_REQUEST),
        ErrorKind::ExpiredToken => ("ExpiredToken", StatusCode::BAD_REQUEST),
        ErrorKind::Validation | ErrorKind::Serialization => {
            ("ValidationError", StatusCode::BAD_REQUEST)
        }
        ErrorKind::UnknownOperation => ("InvalidAction", StatusCode::BAD_REQUEST),
        ErrorKind::Throttling => ("Throttling", StatusCode::BAD_REQUEST),
        ErrorKind::ServiceUnavailable => ("ServiceUnavailable", StatusCode::SERVICE_UNAVAILABLE),
        ErrorKind::Internal
        | ErrorKind::AlreadyExists
        | ErrorKind::Disabled
        | ErrorKind::DryRunOperation
        | ErrorKind::InvalidAliasName
        | ErrorKind::InvalidKeyUsage
        | ErrorKind::InvalidMarker
        | ErrorKind::KmsInvalidSignature
        | ErrorKind::KmsInvalidState
        | ErrorKind::NotFound
        | ErrorKind::UnsupportedOperation => ("InternalFailure", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The STS code of an error kind, for the request log.
pub fn code(kind: ErrorKind) -> &'static str {
    code_and_status(kind).0
}

/// `<ErrorResponse><Error><Type>Sender|Receiver</Type><Code>…</Code><Message>…</Message></Error>
/// <RequestId>…</RequestId></ErrorResponse>` with the code's status.
pub fn error_response(err: &KmsError, request_id: &str) -> Response<Full<Bytes>> {
    let (code, status) = code_and_status(err.kind());
    let fault_type = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let body = format!(
        "<ErrorResponse xmlns=\"{NAMESPACE}\">\
         <Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{}</Message></Error>\
         <RequestId>{}</RequestId>\
         </ErrorResponse>",
        xml_escape(err.message()),
        xml_escape(request_id)
    );
    xml_response(status, request_id, Bytes::from(body))
}

/// A successful STS response.
pub fn success_response(request_id: &str, body: Bytes) -> Response<Full<Bytes>> {
    xml_response(StatusCode::OK, request_id, body)
}

fn xml_response(status: StatusCode, request_id: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn iso8601(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::principal::{Policy, Role, DEFAULT_ACCESS_KEY_ID};
    use hyper::Request;

    const ROLE: &str = "arn:aws:iam::111122223333:role/signer";

    fn parts(content_type: &str, target: Option<&str>) -> Parts {
        let mut request = Request::post("/").header(CONTENT_TYPE, content_type);
        if let Some(target) = target {
            request = request.header(TARGET_HEADER, target);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn form_requests_without_a_target_are_sts() {
        assert!(is_sts_request(&parts(
            "application/x-www-form-urlencoded; charset=utf-8",
            None
        )));
        assert!(!is_sts_request(&parts(
            "application/x-www-form-urlencoded",
            Some("TrentService.Sign")
        )));
        assert!(!is_sts_request(&parts("application/x-amz-json-1.1", None)));
    }

    #[test]
    fn query_parameters_are_form_decoded_and_name_the_operation() {
        let params = Params::parse(
            b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&RoleSessionName=a+b&Action=Other",
        );
        assert_eq!(params.get("RoleArn"), Some("arn:aws:iam::1:role/x"));
        assert_eq!(params.get("RoleSessionName"), Some("a b"));
        assert_eq!(operation(&params).ok(), Some(Operation::AssumeRole));
        for body in [
            &b"Action=GetCallerIdentity&Version=2011-06-15"[..],
            b"Action=AssumeRole&Version=2010-01-01",
            b"Action=AssumeRole",
        ] {
            let err = operation(&Params::parse(body)).expect_err("not AssumeRole");
            assert_eq!(err.kind(), ErrorKind::UnknownOperation);
        }
    }

    fn request(query: &str) -> Result<u64, KmsError> {
        let params = Params::parse(query.as_bytes());
        AssumeRoleRequest::validate(&params).map(|request| request.duration_seconds)
    }

    #[test]
    fn assume_role_members_are_validated_together() {
        let base = format!("RoleArn={ROLE}&RoleSessionName=session");
        assert_eq!(request(&base).expect("valid"), 3600);
        assert_eq!(
            request(&format!("{base}&DurationSeconds=43200")).expect("valid"),
            43_200
        );
        for invalid in [
            "RoleSessionName=session".to_owned(),
            format!("RoleArn={ROLE}"),
            format!("RoleArn={ROLE}&RoleSessionName=s"),
            format!("RoleArn={ROLE}&RoleSessionName=has space"),
            format!("RoleArn={ROLE}&RoleSessionName={}", "x".repeat(65)),
            format!("{base}&DurationSeconds=899"),
            format!("{base}&DurationSeconds=43201"),
            format!("{base}&DurationSeconds=-1"),
            format!("{base}&DurationSeconds=soon"),
            format!("{base}&ExternalId=x"),
        ] {
            let err = request(&invalid).expect_err(&invalid);
            assert_eq!(err.kind(), ErrorKind::Validation, "{invalid}");
            assert!(err.message().starts_with("1 validation error detected: "));
        }
        let err = request("DurationSeconds=1").expect_err("three problems");
        assert!(
            err.message().starts_with("3 validation errors detected: "),
            "{}",
            err.message()
        );
        let err = request(&format!("{base}&ExternalId=%3Csecret")).expect_err("bad external id");
        assert!(!err.message().contains("secret"), "{}", err.message());
    }

    #[test]
    fn a_role_session_may_chain_for_at_most_an_hour() {
        let identities = Identities::new(
            "111122223333",
            Vec::new(),
            vec![Role::new(ROLE, None, Policy::allow_all())],
        );
        let now = SystemTime::now();
        let (_, caller) = identities
            .credential(DEFAULT_ACCESS_KEY_ID, None, now)
            .expect("caller");
        let query = format!("RoleArn={ROLE}&RoleSessionName=first&DurationSeconds=7200");
        let xml = assume_role(
            &identities,
            &caller,
            &Params::parse(query.as_bytes()),
            "id",
            now,
            None,
        )
        .expect("long-term callers may ask for two hours");
        let xml = String::from_utf8(xml.to_vec()).expect("UTF-8");
        let element = |name: &str| {
            let start = xml.find(&format!("<{name}>")).expect(name) + name.len() + 2;
            let end = xml.find(&format!("</{name}>")).expect(name);
            xml[start..end].to_owned()
        };
        let (_, session) = identities
            .credential(&element("AccessKeyId"), Some(&element("SessionToken")), now)
            .expect("issued session");
        let err = assume_role(
            &identities,
            &session,
            &Params::parse(query.as_bytes()),
            "id",
            now,
            None,
        )
        .expect_err("chained sessions get an hour");
        assert_eq!(err.kind(), ErrorKind::Validation);
        let query = format!("RoleArn={ROLE}&RoleSessionName=second");
        assume_role(
            &identities,
            &session,
            &Params::parse(query.as_bytes()),
            "id",
            now,
            None,
        )
        .expect("an hour is fine");
    }

    #[test]
    fn errors_are_sts_xml_with_sender_or_receiver() {
        let err = KmsError::new(ErrorKind::AccessDenied, "User: <x> is not authorized");
        let response = error_response(&err, "rid");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/xml");
        assert_eq!(code_and_status(ErrorKind::Validation).1, 400);
        assert_eq!(code_and_status(ErrorKind::Internal).1, 500);
        assert_eq!(xml_escape("<a & 'b'>"), "&lt;a &amp; &apos;b&apos;&gt;");
    }

    #[test]
    fn expirations_are_iso_8601_utc() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(iso8601(leap_day), "2024-02-29T12:34:56Z");
        let new_year = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(iso8601(new_year), "2024-12-31T23:59:59Z");
    }
}
