//! The public half of a KMS key: the SubjectPublicKeyInfo (SPKI) DER that `GetPublicKey` returns,
//! its Keycloak key id, and local signature verification against it.

use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine as _;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::{Error, ErrorKind, Result};
use crate::signing::algorithm::{Hash, KeySpec, SigningAlgorithm};

/// A parsed SPKI whose key type and size correspond to a KMS signing key spec.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    der: Vec<u8>,
    spec: KeySpec,
}

impl std::fmt::Debug for PublicKeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeyInfo")
            .field("spec", &self.spec)
            .field("kid", &self.kid())
            .finish()
    }
}

impl PublicKeyInfo {
    /// Parses SPKI DER and works out which KMS key spec it belongs to.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("The public key is not a usable SubjectPublicKeyInfo: {why}"),
            )
        };
        let (rest, spki) =
            SubjectPublicKeyInfo::from_der(der).map_err(|_| invalid("it is not valid DER"))?;
        if !rest.is_empty() {
            return Err(invalid("trailing bytes after the structure"));
        }
        let algorithm = &spki.algorithm.algorithm;
        let spec = if *algorithm == OID_PKCS1_RSAENCRYPTION {
            let key = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(key)) => key,
                _ => return Err(invalid("the RSA key does not parse")),
            };
            match significant_bits(key.modulus) {
                2048 => KeySpec::Rsa2048,
                3072 => KeySpec::Rsa3072,
                4096 => KeySpec::Rsa4096,
                bits => {
                    return Err(invalid(&format!(
                        "RSA keys of {bits} bits are not supported"
                    )))
                }
            }
        } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or_else(|| invalid("the EC key names no curve"))?;
            if curve == OID_EC_P256 {
                KeySpec::EccNistP256
            } else if curve == OID_NIST_EC_P384 {
                KeySpec::EccNistP384
            } else if curve == OID_NIST_EC_P521 {
                KeySpec::EccNistP521
            } else {
                return Err(invalid(&format!("the curve {curve} is not supported")));
            }
        } else {
            return Err(invalid(&format!(
                "key algorithm {algorithm} is not RSA or EC"
            )));
        };
        let info = PublicKeyInfo {
            der: der.to_vec(),
            spec,
        };
        // Reject keys the verifier cannot load now rather than at the first signature.
        let any_algorithm = SigningAlgorithm::ALL
            .into_iter()
            .find(|a| spec.supports(*a))
            .ok_or_else(|| Error::internal("a key spec without algorithms"))?;
        info.verifier(any_algorithm)?;
        Ok(info)
    }

    pub fn from_base64(encoded: &str) -> Result<Self> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "The stored public key is not valid base64; save the provider again",
                )
            })?;
        Self::from_der(&der)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }

    pub fn key_spec(&self) -> KeySpec {
        self.spec
    }

    /// Keycloak's key id for this key: base64url (no padding) of SHA-256 over the SPKI DER,
    /// the same derivation as `KeyUtils.createKeyId`, so the kid is stable and recomputable.
    pub fn kid(&self) -> String {
        kid_of(&self.der)
    }

    /// A short description for messages, e.g. "RSA 2048" or "EC P-256".
    pub fn describe(&self) -> &'static str {
        match self.spec {
            KeySpec::Rsa2048 => "RSA 2048",
            KeySpec::Rsa3072 => "RSA 3072",
            KeySpec::Rsa4096 => "RSA 4096",
            KeySpec::EccNistP256 => "EC P-256",
            KeySpec::EccNistP384 => "EC P-384",
            KeySpec::EccNistP521 => "EC P-521",
        }
    }

    /// A verifier for one algorithm, parsed once so that each verification only does the math.
    pub fn verifier(&self, algorithm: SigningAlgorithm) -> Result<ParsedPublicKey> {
        self.spec.check_supports(algorithm)?;
        ParsedPublicKey::new(algorithm.verification_algorithm(), &self.der).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "The public key cannot verify {}: {e}",
                    algorithm.jose_name()
                ),
            )
        })
    }
}

/// Verifies a signature over `digest` (the hash of the signing input) with a prepared verifier.
/// Base64url (no padding) SHA-256 of an SPKI DER: Keycloak's `KeyUtils.createKeyId`, also the
/// fingerprint messages show to tell two keys of the same type apart.
pub fn kid_of(spki_der: &[u8]) -> String {
    let digest = Hash::Sha256.digest(spki_der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

pub fn verify_digest(
    verifier: &ParsedPublicKey,
    digest: &aws_lc_rs::digest::Digest,
    signature: &[u8],
) -> Result<()> {
    verifier.verify_digest_sig(digest, signature).map_err(|_| {
        Error::new(
            ErrorKind::InvalidSignature,
            "KMS returned a signature that does not verify against the provider's public key",
        )
    })
}

/// The bit length of a big-endian unsigned integer, ignoring leading zero bytes and bits.
fn significant_bits(big_endian: &[u8]) -> usize {
    let trimmed: &[u8] = match big_endian.iter().position(|b| *b != 0) {
        Some(first) => &big_endian[first..],
        None => return 0,
    };
    let leading_zeros = trimmed.first().map_or(0, |b| b.leading_zeros() as usize);
    trimmed.len() * 8 - leading_zeros
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    fn rsa_spki(bits: aws_lc_rs::rsa::KeySize) -> (RsaKeyPair, Vec<u8>) {
        use aws_lc_rs::encoding::AsDer;
        let pair = RsaKeyPair::generate(bits).expect("generate RSA");
        let spki = pair
            .public_key()
            .as_der()
            .expect("SPKI DER")
            .as_ref()
            .to_vec();
        (pair, spki)
    }

    fn ec_spki(
        alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
    ) -> (EcdsaKeyPair, Vec<u8>) {
        use aws_lc_rs::encoding::AsDer;
        let pair = EcdsaKeyPair::generate(alg).expect("generate EC");
        let spki = pair
            .public_key()
            .as_der()
            .expect("SPKI DER")
            .as_ref()
            .to_vec();
        (pair, spki)
    }

    #[test]
    fn key_spec_is_read_from_the_public_key_itself() {
        let (_, rsa) = rsa_spki(aws_lc_rs::rsa::KeySize::Rsa2048);
        assert_eq!(
            PublicKeyInfo::from_der(&rsa).expect("RSA").key_spec(),
            KeySpec::Rsa2048
        );
        let (_, rsa3072) = rsa_spki(aws_lc_rs::rsa::KeySize::Rsa3072);
        assert_eq!(
            PublicKeyInfo::from_der(&rsa3072).expect("RSA").key_spec(),
            KeySpec::Rsa3072
        );
        let curves = [
            (
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                KeySpec::EccNistP256,
            ),
            (
                &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                KeySpec::EccNistP384,
            ),
            (
                &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING,
                KeySpec::EccNistP521,
            ),
        ];
        for (alg, spec) in curves {
            let (_, der) = ec_spki(alg);
            assert_eq!(PublicKeyInfo::from_der(&der).expect("EC").key_spec(), spec);
        }
    }

    #[test]
    fn kid_is_base64url_of_sha256_over_the_spki_der() {
        let (_, der) = ec_spki(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING);
        let info = PublicKeyInfo::from_der(&der).expect("EC");
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der));
        assert_eq!(info.kid(), expected);
        assert_eq!(info.kid().len(), 43);
        assert!(!info.kid().contains(['+', '/', '=']));
    }

    #[test]
    fn garbage_and_truncated_public_keys_are_refused() {
        let (_, der) = ec_spki(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING);
        for bad in [&b"not a key"[..], &der[..der.len() - 3], &[]] {
            let error = PublicKeyInfo::from_der(bad).expect_err("must be refused");
            assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(PublicKeyInfo::from_der(&trailing).is_err());
        assert!(PublicKeyInfo::from_base64("***").is_err());
    }

    #[test]
    fn local_verification_accepts_a_good_signature_and_rejects_a_corrupted_one() {
        let rng = SystemRandom::new();
        let (pair, der) = rsa_spki(aws_lc_rs::rsa::KeySize::Rsa2048);
        let info = PublicKeyInfo::from_der(&der).expect("RSA");
        let message = b"header.payload";
        for (algorithm, padding) in [
            (
                SigningAlgorithm::Rs256,
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            ),
            (
                SigningAlgorithm::Ps512,
                &aws_lc_rs::signature::RSA_PSS_SHA512,
            ),
        ] {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, message, &mut signature)
                .expect("sign");
            let verifier = info.verifier(algorithm).expect("verifier");
            let digest = algorithm.hash().digest(message);
            assert_eq!(verify_digest(&verifier, &digest, &signature), Ok(()));
            signature[10] ^= 0x01;
            let error = verify_digest(&verifier, &digest, &signature).expect_err("corrupted");
            assert_eq!(error.kind(), ErrorKind::InvalidSignature);
        }

        let (ec, ec_der) = ec_spki(&aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING);
        let ec_info = PublicKeyInfo::from_der(&ec_der).expect("EC");
        let der_signature = ec.sign(&rng, message).expect("sign");
        let verifier = ec_info.verifier(SigningAlgorithm::Es512).expect("verifier");
        let digest = SigningAlgorithm::Es512.hash().digest(message);
        assert_eq!(
            verify_digest(&verifier, &digest, der_signature.as_ref()),
            Ok(())
        );
        let other_digest = SigningAlgorithm::Es512.hash().digest(b"other");
        assert!(verify_digest(&verifier, &other_digest, der_signature.as_ref()).is_err());
    }

    #[test]
    fn a_verifier_for_an_algorithm_the_key_cannot_make_is_refused() {
        let (_, der) = ec_spki(&aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING);
        let info = PublicKeyInfo::from_der(&der).expect("EC");
        for algorithm in [SigningAlgorithm::Es256, SigningAlgorithm::Rs256] {
            let error = info.verifier(algorithm).expect_err("mismatch");
            assert_eq!(error.kind(), ErrorKind::KeySpecMismatch);
        }
    }

    #[test]
    fn significant_bits_ignores_leading_zero_bytes_and_bits() {
        assert_eq!(significant_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(significant_bits(&[0x01, 0x00]), 9);
        assert_eq!(significant_bits(&[0x00, 0x00]), 0);
    }
}
