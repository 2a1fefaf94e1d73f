//! Parsing a JWKS into public keys, with Keycloak's selection rules
//! (`JWKSUtils.getKeyWrappersForUse(jwks, use, useRequestedUseWhenNull = true)`):
//!
//! - a key is taken when its `use` is the requested one or absent, and it then carries the
//!   requested use;
//! - RSA, EC (P-256, P-384, P-521) and OKP (Ed25519, Ed448) keys are understood; other types,
//!   keys that do not parse (an EC point off its curve, a short RSA modulus, wrong member
//!   types) are skipped, as Keycloak skips what it cannot load;
//! - stricter than Keycloak: keys carrying private members (`d`, `p`, `k`, ...) are skipped,
//!   when `x5c` is present its first certificate must hold the same key, and RSA keys must have
//!   a modulus of at least [`KeyLimits::min_rsa_bits`] (option `min-rsa-key-size`, default 2048)
//!   and an odd public exponent from 3 to 2^32 (a huge exponent makes every verification slow:
//!   a 3,069-bit one about 12 times);
//! - duplicate kids are all kept, in document order, as Keycloak keeps them: lookups take the
//!   first match (kid and algorithm, then kid alone).
//!
//! Every skipped key is reported with its reason, never with its key material. A document that
//! is not a JSON object with a `keys` array, or that nests deeper than serde_json's recursion
//! limit, is [`ErrorKind::JwksInvalid`].

use aws_lc_rs::signature::{
    ParsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    ECDSA_P521_SHA512_ASN1, ED25519,
};
use base64::Engine as _;
use serde_json::{Map, Value};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::settings::MIN_RSA_KEY_SIZE_OPTION;
use crate::error::{quoted_input, Error, ErrorKind, Result};

/// Limits on the keys taken from a set, from the server options ([`super::settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// Smallest RSA modulus used, in bits.
    pub min_rsa_bits: usize,
}

impl Default for KeyLimits {
    /// The limits of the default options ([`super::settings::DEFAULT_OPTIONS`]).
    fn default() -> Self {
        super::Settings::default().fetch.key_limits
    }
}

/// The largest RSA public exponent used, in bits: exponents up to 2^32 - 1 (65537 is the one
/// every key generator uses).
const MAX_RSA_EXPONENT_BITS: usize = 32;

/// The use a caller asks keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Sig,
    Enc,
}

impl KeyUse {
    /// `"sig"` or `"enc"`, as in a JWK's `use`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "sig" => Ok(KeyUse::Sig),
            "enc" => Ok(KeyUse::Enc),
            other => Err(Error::invalid_argument(format!(
                "The requested key use must be \"sig\" or \"enc\", not \"{}\"",
                quoted_input(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::Sig => "sig",
            KeyUse::Enc => "enc",
        }
    }
}

/// One usable public key of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkKey {
    pub kid: Option<String>,
    /// `RSA`, `EC` or `OKP`.
    pub kty: &'static str,
    pub alg: Option<String>,
    /// Always the requested use (a key without `use` takes it, as in Keycloak).
    pub key_use: KeyUse,
    /// The `crv` member as given, for EC and OKP keys.
    pub crv: Option<String>,
    /// SubjectPublicKeyInfo DER, built from the JWK members.
    pub spki: Vec<u8>,
    /// The `x5c` certificates, DER, in document order.
    pub x5c: Vec<Vec<u8>>,
}

/// A key that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    pub kid: Option<String>,
    pub reason: String,
}

/// The outcome of parsing: usable keys in document order, and the skipped ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwksKeys {
    pub keys: Vec<JwkKey>,
    pub skipped: Vec<SkippedKey>,
}

impl JwksKeys {
    /// The JSON `fetchJwks` returns (docs/design.md): SPKI and certificates in standard base64.
    pub fn to_json(&self) -> String {
        let standard = base64::engine::general_purpose::STANDARD;
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|key| {
                serde_json::json!({
                    "kid": key.kid,
                    "kty": key.kty,
                    "alg": key.alg,
                    "use": key.key_use.as_str(),
                    "crv": key.crv,
                    "spki": standard.encode(&key.spki),
                    "x5c": key.x5c.iter().map(|der| standard.encode(der)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let skipped: Vec<Value> = self
            .skipped
            .iter()
            .map(|skipped| serde_json::json!({ "kid": skipped.kid, "reason": skipped.reason }))
            .collect();
        serde_json::json!({ "keys": keys, "skipped": skipped }).to_string()
    }

    /// The kids of the usable keys, for "Available kids" diagnostics.
    pub fn kids(&self) -> Vec<Option<&str>> {
        self.keys.iter().map(|key| key.kid.as_deref()).collect()
    }
}

/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC
/// 8037 §2). A JWKS published for verification must not carry them.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Parses a JWKS document and keeps the keys for `requested_use`, with the default limits.
pub fn parse_jwks(document: &[u8], requested_use: KeyUse) -> Result<JwksKeys> {
    parse_jwks_with(document, requested_use, &KeyLimits::default())
}

/// Parses a JWKS document and keeps the keys for `requested_use` that are within `limits`.
pub fn parse_jwks_with(
    document: &[u8],
    requested_use: KeyUse,
    limits: &KeyLimits,
) -> Result<JwksKeys> {
    let invalid = |why: String| Error::new(ErrorKind::JwksInvalid, why);
    let root: Value = serde_json::from_slice(document).map_err(|e| {
        invalid(format!(
            "The document is not JSON: {}",
            describe_json_error(&e)
        ))
    })?;
    let Value::Object(root) = root else {
        return Err(invalid("The document is not a JSON object".to_owned()));
    };
    let keys = match root.get("keys") {
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err(invalid("The member \"keys\" is not an array".to_owned())),
        None => return Err(invalid("The document has no \"keys\" member".to_owned())),
    };

    let mut parsed = JwksKeys::default();
    for jwk in keys {
        let Value::Object(jwk) = jwk else {
            parsed.skipped.push(SkippedKey {
                kid: None,
                reason: "the key is not a JSON object".to_owned(),
            });
            continue;
        };
        let kid = match optional_string(jwk, "kid") {
            Ok(kid) => kid,
            Err(reason) => {
                parsed.skipped.push(SkippedKey { kid: None, reason });
                continue;
            }
        };
        match parse_jwk(jwk, requested_use, limits) {
            Ok(key) => parsed.keys.push(JwkKey { kid, ..key }),
            Err(reason) => parsed.skipped.push(SkippedKey { kid, reason }),
        }
    }
    Ok(parsed)
}

/// serde_json's message for the error's category, without echoing document content.
fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "it could not be read",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected data",
        Category::Eof => "it ends early",
    };
    let detail = error.to_string();
    if detail.contains("recursion limit") {
        format!(
            "it nests too deeply (line {}, column {})",
            error.line(),
            error.column()
        )
    } else {
        format!("{what} at line {}, column {}", error.line(), error.column())
    }
}

/// Parses one JWK object (the kid is handled by the caller). The error is the skip reason.
fn parse_jwk(
    jwk: &Map<String, Value>,
    requested_use: KeyUse,
    limits: &KeyLimits,
) -> Result<JwkKey, String> {
    let key_use = optional_string(jwk, "use")?;
    if let Some(key_use) = &key_use {
        if key_use != requested_use.as_str() {
            return Err(format!(
                "its use is \"{}\", not {:?}",
                quoted_input(key_use),
                requested_use.as_str()
            ));
        }
    }
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(format!(
            "it contains the private member {member:?}; a published key set must hold public keys only"
        ));
    }
    let alg = optional_string(jwk, "alg")?;
    let kty = optional_string(jwk, "kty")?.ok_or("it has no \"kty\"")?;
    let (kty, crv, spki) = match kty.as_str() {
        "RSA" => ("RSA", None, rsa_spki(jwk, limits)?),
        "EC" => {
            let (crv, spki) = ec_spki(jwk)?;
            ("EC", Some(crv), spki)
        }
        "OKP" => {
            let (crv, spki) = okp_spki(jwk)?;
            ("OKP", Some(crv), spki)
        }
        other => {
            return Err(format!(
                "the key type \"{}\" is not supported",
                quoted_input(other)
            ))
        }
    };
    let x5c = certificates(jwk, &spki)?;
    Ok(JwkKey {
        kid: None,
        kty,
        alg,
        key_use: requested_use,
        crv,
        spki,
        x5c,
    })
}

fn optional_string(jwk: &Map<String, Value>, member: &str) -> Result<Option<String>, String> {
    match jwk.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("its {member:?} is not a string")),
    }
}

/// A base64url member; like Keycloak's decoder it also takes the standard alphabet and padding.
fn base64url_member(jwk: &Map<String, Value>, member: &str) -> Result<Vec<u8>, String> {
    let text = optional_string(jwk, member)?.ok_or_else(|| format!("it has no {member:?}"))?;
    let normalised: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(normalised)
        .map_err(|_| format!("its {member:?} is not base64url"))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(magnitude: &[u8]) -> usize {
    match magnitude.first() {
        Some(first) => magnitude.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// RSA: the limits the JDK's `RSAKeyFactory` applies (512 to 16384 bits), the configured
/// minimum size, and an odd exponent from 3 to 2^32.
fn rsa_spki(jwk: &Map<String, Value>, limits: &KeyLimits) -> Result<Vec<u8>, String> {
    let modulus_bytes = base64url_member(jwk, "n")?;
    let exponent_bytes = base64url_member(jwk, "e")?;
    let modulus = strip_leading_zeros(&modulus_bytes);
    let exponent = strip_leading_zeros(&exponent_bytes);
    let bits = bit_length(modulus);
    if !(512..=16384).contains(&bits) {
        return Err(format!(
            "its RSA modulus has {bits} bits; 512 to 16384 are accepted"
        ));
    }
    if bits < limits.min_rsa_bits {
        return Err(format!(
            "its RSA modulus has {bits} bits, fewer than the minimum of {} (option {MIN_RSA_KEY_SIZE_OPTION})",
            limits.min_rsa_bits
        ));
    }
    if modulus.last().is_some_and(|b| b % 2 == 0) {
        return Err("its RSA modulus is even".to_owned());
    }
    let exponent_bits = bit_length(exponent);
    if exponent_bits > MAX_RSA_EXPONENT_BITS {
        return Err(format!(
            "its RSA public exponent has {exponent_bits} bits; exponents above 2^32 are refused \
             (they make every verification slow)"
        ));
    }
    let exponent_is_odd = exponent.last().is_some_and(|b| b % 2 == 1);
    if !exponent_is_odd || exponent_bits < 2 {
        return Err("its RSA public exponent is not a usable exponent (odd, 3 or more)".to_owned());
    }
    let public_key = der::sequence(&[
        der::unsigned_integer(modulus),
        der::unsigned_integer(exponent),
    ]);
    Ok(der::spki(&der::RSA_ALGORITHM, &public_key))
}

/// EC: a named NIST curve and a point on it (checked by aws-lc). Short coordinates are padded,
/// as Keycloak's big-integer decoding accepts them.
fn ec_spki(jwk: &Map<String, Value>) -> Result<(String, Vec<u8>), String> {
    let crv = optional_string(jwk, "crv")?.ok_or("it has no \"crv\"")?;
    let (field_bytes, algorithm, verifier): (usize, &[u8], &'static dyn VerificationAlgorithm) =
        match crv.as_str() {
            "P-256" => (32, &der::EC_P256_ALGORITHM, &ECDSA_P256_SHA256_ASN1),
            "P-384" => (48, &der::EC_P384_ALGORITHM, &ECDSA_P384_SHA384_ASN1),
            "P-521" => (66, &der::EC_P521_ALGORITHM, &ECDSA_P521_SHA512_ASN1),
            other => {
                return Err(format!(
                    "the curve \"{}\" is not supported",
                    quoted_input(other)
                ))
            }
        };
    let mut point = Vec::with_capacity(1 + 2 * field_bytes);
    point.push(0x04);
    for member in ["x", "y"] {
        let bytes = base64url_member(jwk, member)?;
        let coordinate = strip_leading_zeros(&bytes);
        if coordinate.len() > field_bytes {
            return Err(format!("its {member:?} is too long for {crv}"));
        }
        point.resize(point.len() + field_bytes - coordinate.len(), 0);
        point.extend_from_slice(coordinate);
    }
    ParsedPublicKey::new(verifier, &point)
        .map_err(|_| format!("its point is not on the curve {crv}"))?;
    Ok((crv, der::spki(algorithm, &point)))
}

/// OKP: Edwards-curve signing keys, the curves Keycloak's `EdECUtils` reads.
fn okp_spki(jwk: &Map<String, Value>) -> Result<(String, Vec<u8>), String> {
    let crv = optional_string(jwk, "crv")?.ok_or("it has no \"crv\"")?;
    let x = base64url_member(jwk, "x")?;
    let algorithm: &[u8] = match crv.as_str() {
        "Ed25519" => {
            if x.len() != 32 {
                return Err("its Ed25519 \"x\" is not 32 bytes".to_owned());
            }
            ParsedPublicKey::new(&ED25519, &x)
                .map_err(|_| "its Ed25519 \"x\" is not a public key".to_owned())?;
            &der::ED25519_ALGORITHM
        }
        "Ed448" => {
            if x.len() != 57 {
                return Err("its Ed448 \"x\" is not 57 bytes".to_owned());
            }
            &der::ED448_ALGORITHM
        }
        other => {
            return Err(format!(
                "the curve \"{}\" is not supported",
                quoted_input(other)
            ))
        }
    };
    Ok((crv, der::spki(algorithm, &x)))
}

/// The `x5c` chain: standard base64 DER certificates; the first must hold `spki`'s key.
fn certificates(jwk: &Map<String, Value>, spki: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let entries = match jwk.get("x5c") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err("its \"x5c\" is not an array".to_owned()),
    };
    let mut chain = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Value::String(text) = entry else {
            return Err(format!("its x5c[{index}] is not a string"));
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| format!("its x5c[{index}] is not standard base64"))?;
        match X509Certificate::from_der(&der) {
            Ok(([], certificate)) => {
                if index == 0 && !same_key(certificate.public_key(), spki) {
                    return Err("its x5c certificate holds another key than the JWK".to_owned());
                }
            }
            _ => return Err(format!("its x5c[{index}] is not a DER X.509 certificate")),
        }
        chain.push(der);
    }
    Ok(chain)
}

/// Whether a certificate's key is the JWK's key: the same algorithm and parameters, and the
/// same key bits (RSA compared by value, so that a redundant leading zero does not matter).
fn same_key(certificate_key: &SubjectPublicKeyInfo<'_>, jwk_spki: &[u8]) -> bool {
    let Ok((_, jwk_key)) = SubjectPublicKeyInfo::from_der(jwk_spki) else {
        return false;
    };
    if certificate_key.algorithm.algorithm != jwk_key.algorithm.algorithm {
        return false;
    }
    use x509_parser::public_key::PublicKey;
    match (certificate_key.parsed(), jwk_key.parsed()) {
        (Ok(PublicKey::RSA(ours)), Ok(PublicKey::RSA(theirs))) => {
            strip_leading_zeros(ours.modulus) == strip_leading_zeros(theirs.modulus)
                && strip_leading_zeros(ours.exponent) == strip_leading_zeros(theirs.exponent)
        }
        _ => {
            let parameters = |key: &SubjectPublicKeyInfo<'_>| {
                key.algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|oid| oid.to_id_string())
            };
            parameters(certificate_key) == parameters(&jwk_key)
                && certificate_key.subject_public_key.data == jwk_key.subject_public_key.data
        }
    }
}

/// Just enough DER to write a SubjectPublicKeyInfo.
mod der {
    /// AlgorithmIdentifier contents: rsaEncryption (1.2.840.113549.1.1.1), NULL parameters.
    pub const RSA_ALGORITHM: [u8; 13] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    /// id-ecPublicKey (1.2.840.10045.2.1) with prime256v1 (1.2.840.10045.3.1.7).
    pub const EC_P256_ALGORITHM: [u8; 19] = [
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
        0x3d, 0x03, 0x01, 0x07,
    ];
    /// id-ecPublicKey with secp384r1 (1.3.132.0.34).
    pub const EC_P384_ALGORITHM: [u8; 16] = [
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
        0x22,
    ];
    /// id-ecPublicKey with secp521r1 (1.3.132.0.35).
    pub const EC_P521_ALGORITHM: [u8; 16] = [
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
        0x23,
    ];
    /// id-Ed25519 (1.3.101.112), no parameters (RFC 8410).
    pub const ED25519_ALGORITHM: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
    /// id-Ed448 (1.3.101.113), no parameters.
    pub const ED448_ALGORITHM: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x71];

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len() + 6);
        out.push(tag);
        let length = content.len();
        if length < 0x80 {
            out.push(length as u8);
        } else {
            let bytes = length.to_be_bytes();
            let significant = super::strip_leading_zeros(&bytes);
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
        out.extend_from_slice(content);
        out
    }

    pub fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    /// INTEGER of a non-negative big-endian magnitude without leading zeros.
    pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
        let mut content = Vec::with_capacity(magnitude.len() + 1);
        if magnitude.first().is_none_or(|b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend_from_slice(magnitude);
        tlv(0x02, &content)
    }

    pub fn spki(algorithm: &[u8], public_key: &[u8]) -> Vec<u8> {
        let mut bits = Vec::with_capacity(public_key.len() + 1);
        bits.push(0); // no unused bits
        bits.extend_from_slice(public_key);
        sequence(&[tlv(0x30, algorithm), tlv(0x03, &bits)])
    }
}
