//! JWKS parsing: each key type against keys made by aws-lc-rs, Keycloak's use filter, and
//! documents that are wrong or hostile.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _,
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P521_SHA512_ASN1_SIGNING,
};
use base64::Engine as _;
use keycloak_aws_kms_core::public_keys::jwks::{
    parse_jwks, parse_jwks_with, JwkKey, JwksKeys, KeyLimits, KeyUse,
};
use keycloak_aws_kms_core::ErrorKind;
use serde_json::{json, Value};

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn parse(document: Value, requested_use: KeyUse) -> JwksKeys {
    parse_jwks(document.to_string().as_bytes(), requested_use).unwrap()
}

fn only_key(parsed: &JwksKeys) -> &JwkKey {
    assert_eq!(parsed.keys.len(), 1, "{parsed:?}");
    &parsed.keys[0]
}

/// An RSA JWK and the SPKI DER aws-lc-rs writes for the same key.
fn rsa_jwk() -> (Value, Vec<u8>) {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap();
    let Ok(PublicKey::RSA(rsa)) = info.parsed() else {
        panic!("aws-lc-rs wrote an RSA SPKI that x509-parser does not read")
    };
    let jwk = json!({
        "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
        "n": b64url(rsa.modulus), "e": b64url(rsa.exponent),
    });
    (jwk, spki)
}

fn ec_jwk(algorithm: &'static EcdsaSigningAlgorithm, crv: &str) -> (Value, Vec<u8>, EcdsaKeyPair) {
    let key = EcdsaKeyPair::generate(algorithm).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let width = (point.len() - 1) / 2;
    let jwk = json!({
        "kty": "EC", "kid": format!("ec-{crv}"), "crv": crv,
        "x": b64url(&point[1..=width]), "y": b64url(&point[1 + width..]),
    });
    let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
    (jwk, spki, key)
}

#[test]
fn rsa_keys_become_the_spki_of_the_same_key() {
    let (jwk, spki) = rsa_jwk();
    let parsed = parse(json!({ "keys": [jwk] }), KeyUse::Sig);
    let key = only_key(&parsed);
    assert_eq!(key.kty, "RSA");
    assert_eq!(key.kid.as_deref(), Some("rsa-1"));
    assert_eq!(key.alg.as_deref(), Some("RS256"));
    assert_eq!(key.crv, None);
    assert_eq!(key.spki, spki);
}

#[test]
fn ec_keys_on_each_nist_curve_become_the_spki_of_the_same_key() {
    for (algorithm, crv) in [
        (&ECDSA_P256_SHA256_ASN1_SIGNING, "P-256"),
        (&ECDSA_P384_SHA384_ASN1_SIGNING, "P-384"),
        (&ECDSA_P521_SHA512_ASN1_SIGNING, "P-521"),
    ] {
        let (jwk, spki, _) = ec_jwk(algorithm, crv);
        let parsed = parse(json!({ "keys": [jwk] }), KeyUse::Sig);
        let key = only_key(&parsed);
        assert_eq!((key.kty, key.crv.as_deref()), ("EC", Some(crv)));
        assert_eq!(key.spki, spki, "{crv}");
    }
}

#[test]
fn ec_points_off_their_curve_are_skipped() {
    let (mut jwk, _, _) = ec_jwk(&ECDSA_P256_SHA256_ASN1_SIGNING, "P-256");
    let mut y = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["y"].as_str().unwrap())
        .unwrap();
    y[31] ^= 1;
    jwk["y"] = json!(b64url(&y));
    let parsed = parse(json!({ "keys": [jwk] }), KeyUse::Sig);
    assert!(parsed.keys.is_empty());
    assert!(
        parsed.skipped[0].reason.contains("not on the curve"),
        "{parsed:?}"
    );
}

#[test]
fn ed25519_keys_become_the_spki_of_the_same_key() {
    let key = Ed25519KeyPair::generate().unwrap();
    let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64url(key.public_key().as_ref()) });
    let parsed = parse(json!({ "keys": [jwk] }), KeyUse::Sig);
    let parsed_key = only_key(&parsed);
    assert_eq!(
        (parsed_key.kty, parsed_key.crv.as_deref()),
        ("OKP", Some("Ed25519"))
    );
    assert_eq!(
        parsed_key.spki,
        key.public_key().as_der().unwrap().as_ref().to_vec()
    );
}

#[test]
fn ed448_keys_become_an_rfc_8410_spki() {
    let x = [7u8; 57];
    let jwk = json!({ "kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": b64url(&x) });
    let parsed = parse(json!({ "keys": [jwk] }), KeyUse::Sig);
    let mut expected = vec![
        0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00,
    ];
    expected.extend_from_slice(&x);
    assert_eq!(only_key(&parsed).spki, expected);
}

#[test]
fn keys_without_use_take_the_requested_use_and_keys_for_another_use_are_left_out() {
    let (sig, _) = rsa_jwk();
    let (mut enc, _) = rsa_jwk();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc-1");
    let (mut no_use, _) = rsa_jwk();
    no_use.as_object_mut().unwrap().remove("use");
    no_use["kid"] = json!("any-1");
    let document = json!({ "keys": [sig, enc, no_use] });

    let for_sig = parse(document.clone(), KeyUse::Sig);
    let kids: Vec<_> = for_sig.keys.iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, [Some("rsa-1"), Some("any-1")]);
    assert!(for_sig.keys.iter().all(|k| k.key_use == KeyUse::Sig));
    assert_eq!(for_sig.skipped[0].kid.as_deref(), Some("enc-1"));

    let for_enc = parse(document, KeyUse::Enc);
    let kids: Vec<_> = for_enc.keys.iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, [Some("enc-1"), Some("any-1")]);
    assert!(for_enc.keys.iter().all(|k| k.key_use == KeyUse::Enc));
}

#[test]
fn keys_with_private_members_are_skipped_without_echoing_them() {
    let (mut rsa, _) = rsa_jwk();
    rsa["d"] = json!("c2VjcmV0LXByaXZhdGUtZXhwb25lbnQ");
    let (mut ec, _, _) = ec_jwk(&ECDSA_P256_SHA256_ASN1_SIGNING, "P-256");
    ec["d"] = json!("c2VjcmV0LWVjLXNjYWxhcg");
    let oct = json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0LWhtYWMta2V5" });
    let parsed = parse(json!({ "keys": [rsa, ec, oct] }), KeyUse::Sig);
    assert!(parsed.keys.is_empty());
    assert_eq!(parsed.skipped.len(), 3);
    for skipped in &parsed.skipped {
        assert!(skipped.reason.contains("private member"), "{skipped:?}");
    }
    let json = parsed.to_json();
    assert!(!json.contains("c2VjcmV0"), "{json}");
}

#[test]
fn duplicate_kids_are_all_kept_in_document_order_as_keycloak_keeps_them() {
    let (mut first, first_spki) = rsa_jwk();
    let (mut second, second_spki) = rsa_jwk();
    first["kid"] = json!("same");
    second["kid"] = json!("same");
    second["alg"] = json!("PS256");
    let parsed = parse(json!({ "keys": [first, second] }), KeyUse::Sig);
    assert_eq!(parsed.keys.len(), 2);
    assert_eq!(parsed.keys[0].spki, first_spki);
    assert_eq!(parsed.keys[1].spki, second_spki);
    assert_eq!(parsed.keys[1].alg.as_deref(), Some("PS256"));
}

#[test]
fn x5c_is_kept_when_its_first_certificate_holds_the_jwk_key_and_the_key_is_skipped_otherwise() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = |key: &rcgen::KeyPair| {
        rcgen::CertificateParams::new(vec!["jwks.example".to_owned()])
            .unwrap()
            .self_signed(key)
            .unwrap()
            .der()
            .to_vec()
    };
    let point = key.public_key_raw().to_vec();
    let jwk = json!({ "kty": "EC", "crv": "P-256", "kid": "with-cert",
                      "x": b64url(&point[1..33]), "y": b64url(&point[33..]) });

    let own_certificate = certificate(&key);
    let mut matching = jwk.clone();
    matching["x5c"] = json!([b64(&own_certificate)]);
    let parsed = parse(json!({ "keys": [matching] }), KeyUse::Sig);
    assert_eq!(only_key(&parsed).x5c, vec![own_certificate]);

    let mut foreign = jwk.clone();
    foreign["x5c"] = json!([b64(&certificate(&other))]);
    let mut garbage = jwk;
    garbage["x5c"] = json!(["bm90IGEgY2VydGlmaWNhdGU="]);
    let parsed = parse(json!({ "keys": [foreign, garbage] }), KeyUse::Sig);
    assert!(parsed.keys.is_empty());
    assert!(
        parsed.skipped[0].reason.contains("another key"),
        "{parsed:?}"
    );
    assert!(parsed.skipped[1].reason.contains("x5c[0]"), "{parsed:?}");
}

#[test]
fn unsupported_and_malformed_keys_are_skipped_with_a_reason_and_the_rest_are_kept() {
    let (good, _) = rsa_jwk();
    let short_rsa = json!({ "kty": "RSA", "kid": "short", "n": b64url(&[0xc5; 32]), "e": "AQAB" });
    let parsed = parse(
        json!({ "keys": [
            "not an object",
            { "kid": 42, "kty": "RSA" },
            { "kid": "no-kty" },
            { "kid": "akp", "kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA" },
            { "kid": "x25519", "kty": "OKP", "crv": "X25519", "x": b64url(&[9; 32]) },
            { "kid": "bad-b64", "kty": "RSA", "n": "***", "e": "AQAB" },
            { "kid": "wrong-type", "kty": "RSA", "n": ["array"], "e": "AQAB" },
            { "kid": "ed-short", "kty": "OKP", "crv": "Ed25519", "x": b64url(&[1; 31]) },
            { "kid": "bad-curve", "kty": "EC", "crv": "P-192", "x": "AA", "y": "AA" },
            short_rsa,
            good,
        ] }),
        KeyUse::Sig,
    );
    assert_eq!(only_key(&parsed).kid.as_deref(), Some("rsa-1"));
    assert_eq!(parsed.skipped.len(), 10, "{parsed:?}");
    assert!(parsed.skipped.iter().all(|s| !s.reason.is_empty()));
    assert_eq!(
        parsed.skipped[1].kid, None,
        "a kid that is not a string is not reported as one"
    );
    assert_eq!(parsed.skipped[9].kid.as_deref(), Some("short"));
}

#[test]
fn documents_that_are_not_a_jwks_are_invalid() {
    for document in [
        &b"<html>not json</html>"[..],
        b"",
        b"[]",
        b"{}",
        b"{\"keys\": {}}",
        b"{\"keys\": \"none\"}",
        b"\"keys\"",
        b"{\"keys\": [",
    ] {
        let error = parse_jwks(document, KeyUse::Sig).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::JwksInvalid, "{document:?}");
    }
}

#[test]
fn deeply_nested_documents_are_refused_without_exhausting_the_stack() {
    let depth = 100_000;
    let nested = format!("{{\"keys\":[{}{}]}}", "[".repeat(depth), "]".repeat(depth));
    let error = parse_jwks(nested.as_bytes(), KeyUse::Sig).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::JwksInvalid);
    assert!(error.message().contains("nests too deeply"), "{error}");
}

#[test]
fn a_large_document_of_junk_keys_is_parsed_into_skips_without_failing() {
    let junk: Vec<Value> = (0..20_000)
        .map(|i| json!({ "kid": format!("k{i}"), "kty": "RSA", "n": "AQAB", "e": "AQAB" }))
        .collect();
    let parsed = parse(json!({ "keys": junk }), KeyUse::Sig);
    assert!(parsed.keys.is_empty());
    assert_eq!(parsed.skipped.len(), 20_000);
}

#[test]
fn the_json_for_java_carries_spki_and_certificates_in_standard_base64() {
    let (jwk, spki) = rsa_jwk();
    let parsed = parse(
        json!({ "keys": [jwk, { "kid": "x", "kty": "oct" }] }),
        KeyUse::Sig,
    );
    let json: Value = serde_json::from_str(&parsed.to_json()).unwrap();
    assert_eq!(
        json,
        json!({
            "keys": [{ "kid": "rsa-1", "kty": "RSA", "alg": "RS256", "use": "sig", "crv": null,
                       "spki": b64(&spki), "x5c": [] }],
            "skipped": [{ "kid": "x", "reason": "the key type \"oct\" is not supported" }],
        })
    );
}

/// An RSA JWK with an odd modulus of `bits` bits and exponent `e`: parsing checks sizes, not
/// primes.
fn rsa_jwk_of(kid: &str, bits: usize, e: &[u8]) -> Value {
    let mut n = vec![0xc5; bits.div_ceil(8)];
    n[0] = 0xff >> (n.len() * 8 - bits);
    json!({ "kty": "RSA", "kid": kid, "alg": "RS256", "n": b64url(&n), "e": b64url(e) })
}

#[test]
fn rsa_keys_below_the_minimum_size_are_skipped_naming_the_option() {
    let (good, _) = rsa_jwk();
    let parsed = parse(
        json!({ "keys": [
            rsa_jwk_of("rsa-512", 512, &[1, 0, 1]),
            rsa_jwk_of("rsa-1024", 1024, &[1, 0, 1]),
            rsa_jwk_of("rsa-2047", 2047, &[1, 0, 1]),
            good,
        ] }),
        KeyUse::Sig,
    );
    assert_eq!(only_key(&parsed).kid.as_deref(), Some("rsa-1"));
    let reasons: Vec<(&str, &str)> = parsed
        .skipped
        .iter()
        .map(|s| (s.kid.as_deref().unwrap_or(""), s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("rsa-512", "its RSA modulus has 512 bits, fewer than the minimum of 2048 (option --spi-public-key-storage--native-lru--min-rsa-key-size)"),
            ("rsa-1024", "its RSA modulus has 1024 bits, fewer than the minimum of 2048 (option --spi-public-key-storage--native-lru--min-rsa-key-size)"),
            ("rsa-2047", "its RSA modulus has 2047 bits, fewer than the minimum of 2048 (option --spi-public-key-storage--native-lru--min-rsa-key-size)"),
        ]
    );
}

#[test]
fn an_operator_may_lower_the_minimum_rsa_size_but_not_below_what_the_jdk_reads() {
    let document = json!({ "keys": [
        rsa_jwk_of("rsa-1024", 1024, &[1, 0, 1]),
        rsa_jwk_of("rsa-504", 504, &[1, 0, 1]),
    ] })
    .to_string();
    let parsed = parse_jwks_with(
        document.as_bytes(),
        KeyUse::Sig,
        &KeyLimits { min_rsa_bits: 1024 },
    )
    .unwrap();
    assert_eq!(only_key(&parsed).kid.as_deref(), Some("rsa-1024"));
    assert!(
        parsed.skipped[0].reason.contains("512 to 16384"),
        "{parsed:?}"
    );
}

#[test]
fn rsa_keys_with_a_huge_even_or_trivial_exponent_are_skipped() {
    let mut huge = vec![0xab; 384]; // 3,069 bits: each verification ~12 times slower
    huge[0] = 0x17;
    let just_above = [1, 0, 0, 0, 1]; // 2^32 + 1
    let parsed = parse(
        json!({ "keys": [
            rsa_jwk_of("huge-e", 2048, &huge),
            rsa_jwk_of("e-2^32+1", 2048, &just_above),
            rsa_jwk_of("e-1", 2048, &[1]),
            rsa_jwk_of("e-even", 2048, &[1, 0, 0]),
            rsa_jwk_of("e-max", 2048, &[0xff, 0xff, 0xff, 0xff]),
            rsa_jwk_of("e-3", 2048, &[3]),
        ] }),
        KeyUse::Sig,
    );
    let kept: Vec<_> = parsed.keys.iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(kept, [Some("e-max"), Some("e-3")]);
    let reasons: Vec<&str> = parsed.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(
        reasons[0],
        "its RSA public exponent has 3069 bits; exponents above 2^32 are refused (they make every verification slow)"
    );
    assert!(reasons[1].contains("33 bits"), "{reasons:?}");
    assert!(reasons[2].contains("not a usable exponent"), "{reasons:?}");
    assert!(reasons[3].contains("not a usable exponent"), "{reasons:?}");
}
