//! X.509 certificates for a KMS key: checking one an administrator uploaded against the KMS
//! public key, or minting a self-signed one whose signature KMS makes, so that `/certs` carries
//! `x5c` and SAML has a certificate.

use base64::Engine as _;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{quoted_input, Error, ErrorKind, Result};
use crate::signing::algorithm::{KeySpec, SigningAlgorithm};
use crate::signing::spki::{self, PublicKeyInfo};

/// How long a minted certificate is valid, like the certificates Keycloak generates itself.
const MINTED_VALIDITY_SECONDS: i64 = 3 * 365 * 24 * 60 * 60;
/// Minted certificates start slightly in the past so that clocks a little behind accept them.
const MINTED_BACKDATE_SECONDS: i64 = 5 * 60;

/// A certificate as Keycloak stores it: PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePem(String);

impl CertificatePem {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_der(der: &[u8]) -> Self {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        CertificatePem(pem)
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidCertificate, message)
}

/// Checks an uploaded PEM certificate: it parses, its public key is the KMS key's byte for byte
/// (SPKI), and it is valid at `now_unix`. Returns it re-encoded, one certificate, no extra text.
pub fn check_uploaded(
    pem: &str,
    kms_key: &PublicKeyInfo,
    key_arn: &str,
    now_unix: i64,
) -> Result<CertificatePem> {
    let trimmed = pem.trim();
    if trimmed.contains("PRIVATE KEY-----") {
        // Never echo it: the message must not carry key material into logs or responses.
        return Err(invalid(
            "'X509 certificate' contains a private key, not a certificate; paste the PEM \
             certificate (-----BEGIN CERTIFICATE-----) and keep private keys out of Keycloak",
        ));
    }
    let (_, block) = x509_parser::pem::parse_x509_pem(trimmed.as_bytes()).map_err(|_| {
        invalid("'X509 certificate' is not a PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    })?;
    if block.label != "CERTIFICATE" {
        return Err(invalid(format!(
            "'X509 certificate' holds a PEM {} block, not a CERTIFICATE",
            quoted_input(&block.label)
        )));
    }
    let (rest, certificate) = X509Certificate::from_der(&block.contents)
        .map_err(|_| invalid("'X509 certificate' does not parse as an X.509 certificate"))?;
    if !rest.is_empty() {
        return Err(invalid(
            "'X509 certificate' has trailing bytes after the certificate",
        ));
    }
    let certificate_spki = certificate.public_key().raw;
    if certificate_spki != kms_key.der() {
        let certificate_key = PublicKeyInfo::from_der(certificate_spki)
            .map(|k| k.describe().to_owned())
            .unwrap_or_else(|_| describe_foreign_key(&certificate));
        // Two keys of the same type and size read alike; their fingerprints tell them apart.
        return Err(Error::new(
            ErrorKind::CertificateMismatch,
            format!(
                "Certificate public key does not match KMS key {key_arn} (certificate: {} with \
                 SHA-256 fingerprint {}; KMS: {} with SHA-256 fingerprint {})",
                certificate_key,
                spki::kid_of(certificate_spki),
                kms_key.describe(),
                kms_key.kid()
            ),
        ));
    }
    let validity = certificate.validity();
    let (not_before, not_after) = (validity.not_before, validity.not_after);
    if now_unix < not_before.timestamp() {
        return Err(invalid(format!(
            "'X509 certificate' is not valid yet: it starts at {not_before}"
        )));
    }
    if now_unix > not_after.timestamp() {
        return Err(invalid(format!(
            "'X509 certificate' has expired: it ended at {not_after}"
        )));
    }
    Ok(CertificatePem::from_der(&block.contents))
}

/// "RSA 1024", "EC (curve OID)" and the like for keys this provider could never use.
fn describe_foreign_key(certificate: &X509Certificate<'_>) -> String {
    match certificate.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(_)) => "EC on another curve".to_owned(),
        _ => format!(
            "a {} key",
            quoted_input(&certificate.public_key().algorithm.algorithm.to_string())
        ),
    }
}

/// The certificate signature algorithm for a key spec, and the KMS algorithm that makes it.
fn minting_algorithms(spec: KeySpec) -> (&'static rcgen::SignatureAlgorithm, SigningAlgorithm) {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            (&rcgen::PKCS_RSA_SHA256, SigningAlgorithm::Rs256)
        }
        KeySpec::EccNistP256 => (&rcgen::PKCS_ECDSA_P256_SHA256, SigningAlgorithm::Es256),
        KeySpec::EccNistP384 => (&rcgen::PKCS_ECDSA_P384_SHA384, SigningAlgorithm::Es384),
        KeySpec::EccNistP521 => (&rcgen::PKCS_ECDSA_P521_SHA512, SigningAlgorithm::Es512),
    }
}

/// The KMS key as rcgen sees it: public bytes from the SPKI, signatures from `sign`.
struct RemoteKey<'a, F> {
    subject_public_key: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
    signing_algorithm: SigningAlgorithm,
    sign: &'a F,
    failure: std::cell::RefCell<Option<Error>>,
}

impl<F: Fn(SigningAlgorithm, &[u8]) -> Result<Vec<u8>>> rcgen::PublicKeyData for RemoteKey<'_, F> {
    fn der_bytes(&self) -> &[u8] {
        &self.subject_public_key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

impl<F: Fn(SigningAlgorithm, &[u8]) -> Result<Vec<u8>>> rcgen::SigningKey for RemoteKey<'_, F> {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        (self.sign)(self.signing_algorithm, message).map_err(|error| {
            // rcgen's error type cannot carry ours; keep it for the caller.
            *self.failure.borrow_mut() = Some(error);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// Mints a self-signed certificate for the KMS key, its signature made by `sign` (KMS). The
/// subject is `CN=<common_name>`; the serial number is random.
pub fn mint_self_signed<F>(
    common_name: &str,
    kms_key: &PublicKeyInfo,
    now_unix: i64,
    sign: &F,
) -> Result<CertificatePem>
where
    F: Fn(SigningAlgorithm, &[u8]) -> Result<Vec<u8>>,
{
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(kms_key.der())
        .map_err(|_| Error::internal("a checked public key no longer parses"))?;
    let (algorithm, signing_algorithm) = minting_algorithms(kms_key.key_spec());
    let key = RemoteKey {
        subject_public_key: spki.subject_public_key.data.to_vec(),
        algorithm,
        signing_algorithm,
        sign,
        failure: std::cell::RefCell::new(None),
    };
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let instant = |unix: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .map_err(|_| Error::internal("the clock is outside the certificate date range"))
    };
    params.not_before = instant(now_unix - MINTED_BACKDATE_SECONDS)?;
    params.not_after = instant(now_unix + MINTED_VALIDITY_SECONDS)?;
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial)
        .map_err(|_| Error::internal("no randomness for the certificate serial number"))?;
    serial[0] &= 0x7f; // a positive INTEGER
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let certificate = params.self_signed(&key).map_err(|error| {
        key.failure.borrow_mut().take().unwrap_or_else(|| {
            Error::internal(format!("The certificate could not be built: {error}"))
        })
    })?;
    Ok(CertificatePem::from_der(certificate.der()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    const NOW: i64 = 1_800_000_000; // 2027-01-15

    fn ec_key() -> (EcdsaKeyPair, PublicKeyInfo) {
        let pair = EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            .expect("key");
        let der = pair.public_key().as_der().expect("der").as_ref().to_vec();
        let info = PublicKeyInfo::from_der(&der).expect("info");
        (pair, info)
    }

    fn signer(pair: &EcdsaKeyPair) -> impl Fn(SigningAlgorithm, &[u8]) -> Result<Vec<u8>> + '_ {
        move |algorithm, message| {
            assert_eq!(algorithm, SigningAlgorithm::Es256);
            Ok(pair
                .sign(&SystemRandom::new(), message)
                .expect("sign")
                .as_ref()
                .to_vec())
        }
    }

    #[test]
    fn a_minted_certificate_carries_the_kms_key_and_verifies_with_it() {
        let (pair, info) = ec_key();
        let pem = mint_self_signed("my-realm", &info, NOW, &signer(&pair)).expect("minted");
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_str().as_bytes()).expect("pem");
        let (_, certificate) = X509Certificate::from_der(&block.contents).expect("x509");
        assert_eq!(certificate.public_key().raw, info.der());
        assert_eq!(certificate.subject().to_string(), "CN=my-realm");
        let verifier = info.verifier(SigningAlgorithm::Es256).expect("verifier");
        let digest = SigningAlgorithm::Es256
            .hash()
            .digest(certificate.tbs_certificate.as_ref());
        crate::signing::spki::verify_digest(&verifier, &digest, &certificate.signature_value.data)
            .expect("self-signature verifies");
        // And the uploaded-certificate check accepts what we mint.
        assert_eq!(
            check_uploaded(pem.as_str(), &info, "arn", NOW + 60),
            Ok(pem.clone())
        );
    }

    #[test]
    fn a_failing_kms_signature_fails_minting_with_the_kms_error() {
        let (_, info) = ec_key();
        let refuse = |_: SigningAlgorithm, _: &[u8]| -> Result<Vec<u8>> {
            Err(Error::new(ErrorKind::AccessDenied, "no kms:Sign"))
        };
        let error = mint_self_signed("r", &info, NOW, &refuse).expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::AccessDenied);
    }

    #[test]
    fn a_certificate_of_another_key_is_refused_naming_both_keys() {
        let (pair, info) = ec_key();
        let pem = mint_self_signed("r", &info, NOW, &signer(&pair)).expect("minted");
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
        let rsa_info = PublicKeyInfo::from_der(rsa.public_key().as_der().expect("der").as_ref())
            .expect("info");
        let error = check_uploaded(pem.as_str(), &rsa_info, "arn:aws:kms:r:1:key/k", NOW)
            .expect_err("mismatch");
        assert_eq!(error.kind(), ErrorKind::CertificateMismatch);
        assert_eq!(
            error.message(),
            format!(
                "Certificate public key does not match KMS key arn:aws:kms:r:1:key/k \
                 (certificate: EC P-256 with SHA-256 fingerprint {}; KMS: RSA 2048 with SHA-256 \
                 fingerprint {})",
                info.kid(),
                rsa_info.kid()
            )
        );
    }

    #[test]
    fn a_certificate_of_another_key_of_the_same_type_is_told_apart_by_fingerprint() {
        let (pair, info) = ec_key();
        let (_, other) = ec_key();
        let pem = mint_self_signed("r", &info, NOW, &signer(&pair)).expect("minted");
        let error = check_uploaded(pem.as_str(), &other, "arn", NOW).expect_err("mismatch");
        assert_eq!(error.kind(), ErrorKind::CertificateMismatch);
        assert!(error.message().contains(&info.kid()), "{}", error.message());
        assert!(
            error.message().contains(&other.kid()),
            "{}",
            error.message()
        );
        assert_ne!(info.kid(), other.kid());
    }

    #[test]
    fn certificates_outside_their_validity_are_refused() {
        let (pair, info) = ec_key();
        let pem = mint_self_signed("r", &info, NOW, &signer(&pair)).expect("minted");
        let error = check_uploaded(pem.as_str(), &info, "arn", NOW - 3600).expect_err("early");
        assert!(
            error.message().contains("not valid yet"),
            "{}",
            error.message()
        );
        let later = NOW + MINTED_VALIDITY_SECONDS + 3600;
        let error = check_uploaded(pem.as_str(), &info, "arn", later).expect_err("expired");
        assert!(error.message().contains("expired"), "{}", error.message());
        assert_eq!(error.kind(), ErrorKind::InvalidCertificate);
    }

    #[test]
    fn garbage_and_private_keys_are_refused_without_echoing_them() {
        let (_, info) = ec_key();
        let private = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
        let error = check_uploaded(private, &info, "arn", NOW).expect_err("private key");
        assert!(error.message().contains("contains a private key"));
        assert!(!error.message().contains("MIGHAgEAMBMG"));
        for garbage in [
            "hello",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            let error = check_uploaded(garbage, &info, "arn", NOW).expect_err("garbage");
            assert_eq!(error.kind(), ErrorKind::InvalidCertificate);
        }
    }
}
