//! An uploaded certificate (`certificate`, checked against the KMS key on save). Input:
//! `[mode][key]` then the certificate: mode even = the rest is the PEM text as uploaded; odd =
//! the rest is DER, armoured here as one PEM CERTIFICATE block. key selects the KMS key.

use base64::Engine as _;
use keycloak_aws_kms_core::signing::certificate::check_uploaded;
use keycloak_aws_kms_core::ErrorKind;

/// 2026-06-01T00:00:00Z, inside the seed certificates' validity.
const NOW: i64 = 1_780_272_000;

/// One input of the `certificate_pem` target.
pub fn run(data: &[u8]) {
    let (Some(&mode), Some(&key)) = (data.first(), data.get(1)) else {
        return;
    };
    let rest = &data[2..];
    let pem = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let body = base64::engine::general_purpose::STANDARD.encode(rest);
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    };
    let kms_key = &super::super::kms_keys()[usize::from(key) % 2];
    let arn = "arn:aws:kms:eu-west-1:111122223333:key/fuzz";
    match check_uploaded(&pem, kms_key, arn, NOW) {
        Ok(checked) => {
            // What is stored is one PEM block with the KMS key, and it checks again.
            let again = check_uploaded(checked.as_str(), kms_key, arn, NOW).expect("re-check");
            assert_eq!(again, checked);
        }
        Err(error) => {
            assert!(
                matches!(
                    error.kind(),
                    ErrorKind::InvalidCertificate | ErrorKind::CertificateMismatch
                ),
                "{:?}",
                error.kind()
            );
            super::super::check_error(&error);
        }
    }
}
