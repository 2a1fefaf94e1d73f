//! A JWKS document as a download returns it (`fetchJwks`, `parse_jwks_with`): any bytes.

use keycloak_aws_kms_core::public_keys::jwks::{parse_jwks_with, KeyLimits};
use keycloak_aws_kms_core::public_keys::KeyUse;
use x509_parser::prelude::FromDer;

/// One input of the `jwks_document` target.
pub fn run(document: &[u8]) {
    for requested_use in [KeyUse::Sig, KeyUse::Enc] {
        match parse_jwks_with(document, requested_use, &KeyLimits::default()) {
            Ok(keys) => {
                // What Java receives is JSON, and every key's SPKI is DER Java can read.
                let json: serde_json::Value =
                    serde_json::from_str(&keys.to_json()).expect("the keys as JSON");
                let listed = json["keys"].as_array().map_or(0, Vec::len);
                assert_eq!(listed, keys.keys.len());
                for key in &keys.keys {
                    let parsed = x509_parser::x509::SubjectPublicKeyInfo::from_der(&key.spki);
                    assert!(
                        matches!(parsed, Ok((rest, _)) if rest.is_empty()),
                        "a key's SPKI is not DER"
                    );
                }
                for skipped in &keys.skipped {
                    // Reasons reach the server log: bounded, no control characters.
                    assert!(skipped.reason.chars().count() <= 1_000, "a long reason");
                    assert!(
                        !skipped.reason.chars().any(char::is_control),
                        "a reason with a control character: {:?}",
                        skipped.reason
                    );
                }
                let _ = keys.kids();
            }
            Err(error) => super::super::check_error(&error),
        }
    }
}
