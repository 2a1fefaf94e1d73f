//! AWS Signature Version 4 verification of KMS and STS requests (`Authorization` header form).
//!
//! The canonical request, string to sign and signing key follow the published algorithm: service
//! `kms` or `sts` as the caller expects, the region taken from the request's credential scope. Like
//! a regional AWS endpoint, the KMS port refuses a scope naming another region than its own
//! ([`require_region`]).
//! `X-Amz-Security-Token` must be the session token of temporary credentials issued by
//! `AssumeRole`, and is ignored for long-term credentials. The payload hash is computed from the
//! body and, when the client sends `x-amz-content-sha256`, compared with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::principal::{Caller, Identities};
use crate::protocol::{ErrorKind, KmsError};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SCOPE_TERMINATOR: &str = "aws4_request";
const AMZ_DATE: &str = "x-amz-date";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
const SECURITY_TOKEN: &str = "x-amz-security-token";
/// How far the request time may be from the server time (AWS allows five minutes).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

type HmacSha256 = Hmac<Sha256>;

/// Checks the request's signature for `service` (`kms`, `sts`) and returns who signed it.
pub fn authenticate(
    request: &Parts,
    body: &[u8],
    service: &str,
    identities: &Identities,
    now: SystemTime,
) -> Result<Caller, KmsError> {
    let header = request.headers.get(AUTHORIZATION).ok_or_else(|| {
        KmsError::new(
            ErrorKind::MissingAuthenticationToken,
            "Request is missing Authentication Token",
        )
    })?;
    let header = header.to_str().map_err(|_| incomplete("is not ASCII"))?;
    let authorization = Authorization::parse(header)?;

    let session_token = header_text(&request.headers, SECURITY_TOKEN);
    let (secret, caller) =
        identities.credential(authorization.access_key_id, session_token.as_deref(), now)?;

    if authorization.service != service {
        return Err(invalid(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    if authorization.terminator != SCOPE_TERMINATOR {
        return Err(invalid(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{}'.",
            authorization.terminator
        )));
    }
    for required in ["host", AMZ_DATE] {
        if !authorization.signed_headers.contains(&required) {
            return Err(invalid(format!(
                "Header '{required}' must be included in SignedHeaders."
            )));
        }
    }

    let amz_date = header_text(&request.headers, AMZ_DATE)
        .ok_or_else(|| incomplete("requires an 'X-Amz-Date' header"))?;
    check_request_time(&amz_date, authorization.date, now)?;

    let payload_hash = hex::encode(Sha256::digest(body));
    if let Some(claimed) = header_text(&request.headers, CONTENT_SHA256) {
        if claimed != payload_hash {
            return Err(invalid(
                "The provided 'x-amz-content-sha256' header does not match the request body.",
            ));
        }
    }

    let canonical = canonical_request(request, &authorization.signed_headers, &payload_hash)?;
    let scope = format!(
        "{}/{}/{}/{}",
        authorization.date, authorization.region, authorization.service, authorization.terminator
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(
        &secret,
        authorization.date,
        authorization.region,
        authorization.service,
    )?;
    let provided = hex::decode(authorization.signature).map_err(|_| signature_mismatch())?;
    // `verify_slice` compares in constant time.
    hmac(&key, &string_to_sign)?
        .verify_slice(&provided)
        .map_err(|_| signature_mismatch())?;
    Ok(caller)
}

/// A regional AWS endpoint refuses requests whose credential scope names another region, with
/// AWS's own wording; clients configured with the wrong region see this, not a missing key.
pub fn require_region(request: &Parts, region: &str) -> Result<(), KmsError> {
    let header = request
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| incomplete("is not ASCII"))?;
    let authorization = Authorization::parse(header)?;
    if authorization.region == region {
        Ok(())
    } else {
        Err(invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            authorization.region
        )))
    }
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(header: &'a str) -> Result<Authorization<'a>, KmsError> {
        let params = header
            .strip_prefix(ALGORITHM)
            .filter(|rest| rest.starts_with(' '))
            .ok_or_else(|| incomplete(format!("must use the '{ALGORITHM}' algorithm")))?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for param in params.split(',') {
            let (name, value) = param.trim().split_once('=').ok_or_else(|| {
                incomplete(format!("has a malformed parameter '{}'", param.trim()))
            })?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed_headers = Some(value),
                "Signature" => signature = Some(value),
                _ => {}
            }
        }
        let credential =
            credential.ok_or_else(|| incomplete("requires a 'Credential' parameter"))?;
        let signed_headers =
            signed_headers.ok_or_else(|| incomplete("requires a 'SignedHeaders' parameter"))?;
        let signature = signature.ok_or_else(|| incomplete("requires a 'Signature' parameter"))?;

        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = scope[..] else {
            return Err(incomplete(
                "has a malformed 'Credential'; expected AKID/date/region/service/aws4_request",
            ));
        };
        Ok(Authorization {
            access_key_id,
            date,
            region,
            service,
            terminator,
            signed_headers: signed_headers.split(';').collect(),
            signature,
        })
    }
}

/// The canonical request: method, canonical URI, canonical query, canonical headers, signed
/// headers and payload hash, one per line.
fn canonical_request(
    request: &Parts,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Result<String, KmsError> {
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|value| collapse_whitespace(&String::from_utf8_lossy(value.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(incomplete(format!(
                "signs header '{name}', which the request does not have"
            )));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method.as_str(),
        canonical_uri(request.uri.path()),
        canonical_query(request.uri.query().unwrap_or("")),
        canonical_headers,
        signed_headers.join(";"),
        payload_hash
    ))
}

/// Services other than S3 sign the path URI-encoded twice; the path on the wire is already
/// encoded once, so it is encoded once more here (keeping `/`).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        uri_encode(path.as_bytes(), false)
    }
}

/// Query parameters decoded, re-encoded with the SigV4 rules and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name), true),
                uri_encode(&percent_decode(value), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 encoding of everything but the unreserved characters (and `/` unless asked).
fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte));
            }
            b'/' if !encode_slash => encoded.push('/'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

pub(crate) fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    decoded
}

/// Trims a header value and collapses runs of spaces into one.
fn collapse_whitespace(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned())
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Result<Vec<u8>, KmsError> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, SCOPE_TERMINATOR] {
        key = hmac(&key, part)?.finalize().into_bytes().to_vec();
    }
    Ok(key)
}

fn hmac(key: &[u8], data: &str) -> Result<HmacSha256, KmsError> {
    // HMAC accepts keys of every length, so this error cannot happen.
    let mut mac = HmacSha256::new_from_slice(key)
        .map_err(|err| KmsError::new(ErrorKind::Internal, format!("HMAC key rejected: {err}")))?;
    mac.update(data.as_bytes());
    Ok(mac)
}

/// `X-Amz-Date` must be `YYYYMMDDTHHMMSSZ`, on the credential scope's date, and within the
/// allowed clock skew of `now`.
fn check_request_time(amz_date: &str, scope_date: &str, now: SystemTime) -> Result<(), KmsError> {
    let request_time = parse_amz_date(amz_date)
        .ok_or_else(|| incomplete(format!("has an invalid X-Amz-Date '{amz_date}'")))?;
    if !amz_date.starts_with(scope_date) || scope_date.len() != 8 {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{}'",
            amz_date.get(..8).unwrap_or(amz_date)
        )));
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    if request_time.abs_diff(now) > MAX_CLOCK_SKEW {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is more than {} minutes from the server time.",
            MAX_CLOCK_SKEW.as_secs() / 60
        )));
    }
    Ok(())
}

/// Parses `YYYYMMDDTHHMMSSZ` into time since the epoch.
fn parse_amz_date(text: &str) -> Option<Duration> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let seconds = days * 86_400 + u64::from(hour * 3600 + minute * 60 + second);
    Some(Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn incomplete(problem: impl std::fmt::Display) -> KmsError {
    KmsError::new(
        ErrorKind::IncompleteSignature,
        format!("The Authorization header {problem}."),
    )
}

fn invalid(message: impl Into<String>) -> KmsError {
    KmsError::new(ErrorKind::InvalidSignature, message)
}

fn signature_mismatch() -> KmsError {
    invalid(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::principal::{Policy, Principal};
    use hyper::Request;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// The worked example of the AWS documentation ("Create a signed AWS API request"): IAM
    /// ListUsers on 2015-08-30.
    #[test]
    fn signing_key_and_canonical_request_match_the_aws_documentation_example() {
        let key = signing_key(SECRET, "20150830", "us-east-1", "iam").expect("signing key");
        assert_eq!(
            hex::encode(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let (parts, ()) =
            Request::get("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08")
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )
                .header("host", "iam.amazonaws.com")
                .header("x-amz-date", "20150830T123600Z")
                .body(())
                .expect("request")
                .into_parts();
        let canonical = canonical_request(
            &parts,
            &["content-type", "host", "x-amz-date"],
            &hex::encode(Sha256::digest(b"")),
        )
        .expect("canonical request");
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
    }

    #[test]
    fn authorization_headers_are_parsed_into_scope_and_signed_headers() {
        let parsed = Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=AKID/20240102/eu-west-1/kms/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abcd",
        )
        .expect("valid header");
        assert_eq!(
            parsed,
            Authorization {
                access_key_id: "AKID",
                date: "20240102",
                region: "eu-west-1",
                service: "kms",
                terminator: "aws4_request",
                signed_headers: vec!["host", "x-amz-date"],
                signature: "abcd",
            }
        );
        let err = Authorization::parse("AWS4-HMAC-SHA256 Credential=AKID/20240102/kms")
            .expect_err("short scope");
        assert_eq!(err.kind(), ErrorKind::IncompleteSignature);
        let err = Authorization::parse("Basic dXNlcjpwYXNz").expect_err("other scheme");
        assert_eq!(err.kind(), ErrorKind::IncompleteSignature);
    }

    #[test]
    fn query_strings_are_decoded_reencoded_and_sorted() {
        assert_eq!(canonical_query("b=2&a=x%20y&a=1&c"), "a=1&a=x%20y&b=2&c=");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_uri("/a b%2F"), "/a%20b%252F");
    }

    #[test]
    fn amz_dates_convert_to_epoch_seconds() {
        assert_eq!(
            parse_amz_date("19700101T000000Z"),
            Some(Duration::from_secs(0))
        );
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(Duration::from_secs(1_440_938_160))
        );
        assert_eq!(parse_amz_date("2015-08-30T12:36"), None);
        assert_eq!(parse_amz_date("20151330T123600Z"), None);
    }

    fn signed_request(secret: &str, amz_date: &str, body: &[u8]) -> Parts {
        signed_request_for("kms", secret, amz_date, body)
    }

    fn signed_request_for(service: &str, secret: &str, amz_date: &str, body: &[u8]) -> Parts {
        let (mut parts, ()) = Request::post("/")
            .header("host", "127.0.0.1:4566")
            .header("x-amz-date", amz_date)
            .header("x-amz-target", "TrentService.ListKeys")
            .body(())
            .expect("request")
            .into_parts();
        let signed = ["host", "x-amz-date", "x-amz-target"];
        let payload_hash = hex::encode(Sha256::digest(body));
        let canonical = canonical_request(&parts, &signed, &payload_hash).expect("canonical");
        let date = &amz_date[..8];
        let scope = format!("{date}/us-east-1/{service}/aws4_request");
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(secret, date, "us-east-1", service).expect("signing key");
        let signature = hex::encode(
            hmac(&key, &string_to_sign)
                .expect("HMAC")
                .finalize()
                .into_bytes(),
        );
        let header = format!(
            "{ALGORITHM} Credential=AKID/{scope}, SignedHeaders={}, Signature={signature}",
            signed.join(";")
        );
        parts
            .headers
            .insert(AUTHORIZATION, header.parse().expect("header value"));
        parts
    }

    fn principals() -> Identities {
        Identities::new(
            "111122223333",
            vec![Principal::new("AKID", "secret", Policy::allow_all())],
            Vec::new(),
        )
    }

    fn at(amz_date: &str) -> SystemTime {
        UNIX_EPOCH + parse_amz_date(amz_date).expect("valid date")
    }

    #[test]
    fn a_correctly_signed_request_authenticates_its_principal() {
        let parts = signed_request("secret", "20240102T030405Z", b"{}");
        let principals = principals();
        let caller = authenticate(&parts, b"{}", "kms", &principals, at("20240102T030405Z"))
            .expect("authenticated");
        assert_eq!(caller.access_key_id, "AKID");
    }

    #[test]
    fn a_request_signed_for_another_service_is_an_invalid_signature() {
        let parts = signed_request_for("sts", "secret", "20240102T030405Z", b"{}");
        let err = authenticate(&parts, b"{}", "kms", &principals(), at("20240102T030405Z"))
            .expect_err("scoped to sts");
        assert_eq!(err.kind(), ErrorKind::InvalidSignature);
        authenticate(&parts, b"{}", "sts", &principals(), at("20240102T030405Z"))
            .expect("scoped to sts, verified as sts");
    }

    #[test]
    fn a_changed_body_or_wrong_secret_is_an_invalid_signature() {
        let parts = signed_request("secret", "20240102T030405Z", b"{}");
        let err = authenticate(
            &parts,
            b"{\"Limit\":1}",
            "kms",
            &principals(),
            at("20240102T030405Z"),
        )
        .expect_err("body changed");
        assert_eq!(err.kind(), ErrorKind::InvalidSignature);
        let parts = signed_request("wrong", "20240102T030405Z", b"{}");
        let err = authenticate(&parts, b"{}", "kms", &principals(), at("20240102T030405Z"))
            .expect_err("wrong secret");
        assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    }

    #[test]
    fn a_request_signed_long_ago_has_expired() {
        let parts = signed_request("secret", "20240102T030405Z", b"{}");
        let err = authenticate(&parts, b"{}", "kms", &principals(), at("20240102T031100Z"))
            .expect_err("expired");
        assert_eq!(err.kind(), ErrorKind::InvalidSignature);
        assert!(err.to_string().contains("expired"));
    }

    #[test]
    fn a_content_sha256_header_must_match_the_body() {
        let mut parts = signed_request("secret", "20240102T030405Z", b"{}");
        parts.headers.insert(
            CONTENT_SHA256,
            "UNSIGNED-PAYLOAD".parse().expect("header value"),
        );
        let err = authenticate(&parts, b"{}", "kms", &principals(), at("20240102T030405Z"))
            .expect_err("hash mismatch");
        assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    }

    #[test]
    fn a_request_scoped_to_another_region_is_refused_with_aws_wording() {
        let parts = signed_request("secret", "20240102T030405Z", b"{}");
        require_region(&parts, "us-east-1").expect("signed for us-east-1");
        let err = require_region(&parts, "eu-west-1").expect_err("endpoint of eu-west-1");
        assert_eq!(err.kind(), ErrorKind::InvalidSignature);
        assert!(err.to_string().contains("scoped to a valid region"));
    }

    #[test]
    fn requests_without_authorization_are_missing_a_token() {
        let (parts, ()) = Request::post("/").body(()).expect("request").into_parts();
        let err = authenticate(&parts, b"", "kms", &principals(), SystemTime::now())
            .expect_err("unsigned");
        assert_eq!(err.kind(), ErrorKind::MissingAuthenticationToken);
    }
}
