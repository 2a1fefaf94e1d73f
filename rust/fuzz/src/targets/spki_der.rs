//! A SubjectPublicKeyInfo as KMS `GetPublicKey` returns it, or as a stored `publicKey` holds it.

use base64::Engine as _;
use keycloak_aws_kms_core::signing::algorithm::SigningAlgorithm;
use keycloak_aws_kms_core::signing::spki::PublicKeyInfo;

/// One input of the `spki_der` target.
pub fn run(der: &[u8]) {
    match PublicKeyInfo::from_der(der) {
        Ok(key) => {
            assert_eq!(key.der(), der);
            assert_eq!(key.kid().len(), 43, "a SHA-256 kid");
            let _ = key.describe();
            for algorithm in SigningAlgorithm::ALL {
                // A verifier for every algorithm the spec supports, a clean refusal for others.
                let verifier = key.verifier(algorithm);
                assert_eq!(verifier.is_ok(), key.key_spec().supports(algorithm));
            }
            let again = PublicKeyInfo::from_base64(&key.to_base64()).expect("base64 round trip");
            assert_eq!(again, key);
        }
        Err(error) => super::super::check_error(&error),
    }
    // The same bytes as a stored base64 text.
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    if let Err(error) = PublicKeyInfo::from_base64(&text) {
        super::super::check_error(&error);
    }
    if let Ok(text) = std::str::from_utf8(der) {
        if let Err(error) = PublicKeyInfo::from_base64(text) {
            super::super::check_error(&error);
        }
    }
}
