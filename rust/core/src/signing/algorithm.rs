//! Signature algorithms and KMS key specs, and the rules that tie them together.
//!
//! The KMS signing algorithm is always derived from the JOSE (or JCA) algorithm and checked
//! against the key spec; it is never "the first algorithm the key lists".

use aws_lc_rs::digest;
use aws_lc_rs::signature::VerificationAlgorithm;

use crate::error::{quoted_input, Error, Result};

/// The hash a signature algorithm uses; KMS `Sign` receives its output with `MessageType=DIGEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn digest(self, message: &[u8]) -> digest::Digest {
        let algorithm = match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, message)
    }

    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// A signature algorithm Keycloak can ask for, named by its JOSE name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 9] = [
        SigningAlgorithm::Rs256,
        SigningAlgorithm::Rs384,
        SigningAlgorithm::Rs512,
        SigningAlgorithm::Ps256,
        SigningAlgorithm::Ps384,
        SigningAlgorithm::Ps512,
        SigningAlgorithm::Es256,
        SigningAlgorithm::Es384,
        SigningAlgorithm::Es512,
    ];

    pub fn jose_name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Rs384 => "RS384",
            SigningAlgorithm::Rs512 => "RS512",
            SigningAlgorithm::Ps256 => "PS256",
            SigningAlgorithm::Ps384 => "PS384",
            SigningAlgorithm::Ps512 => "PS512",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Es384 => "ES384",
            SigningAlgorithm::Es512 => "ES512",
        }
    }

    /// The JCA `Signature` names Keycloak's `JavaAlgorithm` uses (PS* through BouncyCastle's
    /// `...withRSAandMGF1` alias, which is what `AsymmetricSignatureSignerContext` asks for).
    pub fn jca_name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "SHA256withRSA",
            SigningAlgorithm::Rs384 => "SHA384withRSA",
            SigningAlgorithm::Rs512 => "SHA512withRSA",
            SigningAlgorithm::Ps256 => "SHA256withRSAandMGF1",
            SigningAlgorithm::Ps384 => "SHA384withRSAandMGF1",
            SigningAlgorithm::Ps512 => "SHA512withRSAandMGF1",
            SigningAlgorithm::Es256 => "SHA256withECDSA",
            SigningAlgorithm::Es384 => "SHA384withECDSA",
            SigningAlgorithm::Es512 => "SHA512withECDSA",
        }
    }

    /// The KMS `SigningAlgorithm` value. PSS in KMS uses a salt as long as the hash, which is
    /// what RFC 7518 requires for PS*.
    pub fn kms_name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RSASSA_PKCS1_V1_5_SHA_256",
            SigningAlgorithm::Rs384 => "RSASSA_PKCS1_V1_5_SHA_384",
            SigningAlgorithm::Rs512 => "RSASSA_PKCS1_V1_5_SHA_512",
            SigningAlgorithm::Ps256 => "RSASSA_PSS_SHA_256",
            SigningAlgorithm::Ps384 => "RSASSA_PSS_SHA_384",
            SigningAlgorithm::Ps512 => "RSASSA_PSS_SHA_512",
            SigningAlgorithm::Es256 => "ECDSA_SHA_256",
            SigningAlgorithm::Es384 => "ECDSA_SHA_384",
            SigningAlgorithm::Es512 => "ECDSA_SHA_512",
        }
    }

    pub fn hash(self) -> Hash {
        match self {
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 | SigningAlgorithm::Es256 => {
                Hash::Sha256
            }
            SigningAlgorithm::Rs384 | SigningAlgorithm::Ps384 | SigningAlgorithm::Es384 => {
                Hash::Sha384
            }
            SigningAlgorithm::Rs512 | SigningAlgorithm::Ps512 | SigningAlgorithm::Es512 => {
                Hash::Sha512
            }
        }
    }

    pub fn from_jose(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.jose_name() == name)
            .ok_or_else(|| {
                Error::invalid_configuration(format!(
                    "Unsupported signature algorithm '{}'; use one of RS256, RS384, RS512, \
                     PS256, PS384, PS512, ES256, ES384, ES512",
                    quoted_input(name)
                ))
            })
    }

    pub fn from_jca(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.jca_name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "Unsupported JCA algorithm '{}'",
                    quoted_input(name)
                ))
            })
    }

    /// The local verifier for KMS's output: ECDSA signatures come back as DER (ASN.1), RSA-PSS
    /// must use a salt as long as the digest (aws-lc-rs's default for these parameters).
    pub(crate) fn verification_algorithm(self) -> &'static dyn VerificationAlgorithm {
        use aws_lc_rs::signature as s;
        match self {
            SigningAlgorithm::Rs256 => &s::RSA_PKCS1_2048_8192_SHA256,
            SigningAlgorithm::Rs384 => &s::RSA_PKCS1_2048_8192_SHA384,
            SigningAlgorithm::Rs512 => &s::RSA_PKCS1_2048_8192_SHA512,
            SigningAlgorithm::Ps256 => &s::RSA_PSS_2048_8192_SHA256,
            SigningAlgorithm::Ps384 => &s::RSA_PSS_2048_8192_SHA384,
            SigningAlgorithm::Ps512 => &s::RSA_PSS_2048_8192_SHA512,
            SigningAlgorithm::Es256 => &s::ECDSA_P256_SHA256_ASN1,
            SigningAlgorithm::Es384 => &s::ECDSA_P384_SHA384_ASN1,
            SigningAlgorithm::Es512 => &s::ECDSA_P521_SHA512_ASN1,
        }
    }
}

/// The KMS key specs this provider can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccNistP256,
    EccNistP384,
    EccNistP521,
}

impl KeySpec {
    pub const ALL: [KeySpec; 6] = [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
    ];

    pub fn kms_name(self) -> &'static str {
        match self {
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::EccNistP521 => "ECC_NIST_P521",
        }
    }

    /// Parses a KMS key spec; specs this provider cannot sign with (symmetric, HMAC, secp256k1,
    /// SM2, Ed25519, ML-DSA) are refused with the reason.
    pub fn from_kms(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.kms_name() == name)
            .ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::KeySpecMismatch,
                    format!(
                        "Key spec {name} cannot sign JOSE tokens; use RSA_2048, RSA_3072, \
                         RSA_4096, ECC_NIST_P256, ECC_NIST_P384 or ECC_NIST_P521"
                    ),
                )
            })
    }

    /// The RSA modulus size in bits, or the curve size, as KMS names it.
    pub fn bits(self) -> usize {
        match self {
            KeySpec::Rsa2048 => 2048,
            KeySpec::Rsa3072 => 3072,
            KeySpec::Rsa4096 => 4096,
            KeySpec::EccNistP256 => 256,
            KeySpec::EccNistP384 => 384,
            KeySpec::EccNistP521 => 521,
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    /// The JOSE key type (`kty`), which is also the JCA `KeyFactory` name: `RSA` or `EC`.
    pub fn jose_key_type(self) -> &'static str {
        if self.is_rsa() {
            "RSA"
        } else {
            "EC"
        }
    }

    /// The JOSE curve (`crv`) of an EC key spec; `None` for RSA.
    pub fn jose_curve(self) -> Option<&'static str> {
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => None,
            KeySpec::EccNistP256 => Some("P-256"),
            KeySpec::EccNistP384 => Some("P-384"),
            KeySpec::EccNistP521 => Some("P-521"),
        }
    }

    /// Whether a key of this spec can produce `algorithm` signatures. RSA keys sign every RS*
    /// and PS* algorithm; each NIST curve signs only with its own hash (as KMS enforces).
    pub fn supports(self, algorithm: SigningAlgorithm) -> bool {
        use SigningAlgorithm as A;
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => matches!(
                algorithm,
                A::Rs256 | A::Rs384 | A::Rs512 | A::Ps256 | A::Ps384 | A::Ps512
            ),
            KeySpec::EccNistP256 => algorithm == A::Es256,
            KeySpec::EccNistP384 => algorithm == A::Es384,
            KeySpec::EccNistP521 => algorithm == A::Es512,
        }
    }

    pub fn check_supports(self, algorithm: SigningAlgorithm) -> Result<()> {
        if self.supports(algorithm) {
            return Ok(());
        }
        let fitting = match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                "RS256, RS384, RS512, PS256, PS384 or PS512"
            }
            KeySpec::EccNistP256 => "ES256",
            KeySpec::EccNistP384 => "ES384",
            KeySpec::EccNistP521 => "ES512",
        };
        Err(Error::new(
            crate::ErrorKind::KeySpecMismatch,
            format!(
                "Algorithm {} does not fit a {} key; a key of this spec signs {}",
                algorithm.jose_name(),
                self.kms_name(),
                fitting
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn jose_algorithms_map_to_the_kms_algorithm_with_the_same_hash_and_padding() {
        let expected = [
            ("RS256", "RSASSA_PKCS1_V1_5_SHA_256", 32),
            ("RS384", "RSASSA_PKCS1_V1_5_SHA_384", 48),
            ("RS512", "RSASSA_PKCS1_V1_5_SHA_512", 64),
            ("PS256", "RSASSA_PSS_SHA_256", 32),
            ("PS384", "RSASSA_PSS_SHA_384", 48),
            ("PS512", "RSASSA_PSS_SHA_512", 64),
            ("ES256", "ECDSA_SHA_256", 32),
            ("ES384", "ECDSA_SHA_384", 48),
            ("ES512", "ECDSA_SHA_512", 64),
        ];
        for (jose, kms, digest_len) in expected {
            let algorithm = SigningAlgorithm::from_jose(jose).expect("known algorithm");
            assert_eq!(algorithm.kms_name(), kms);
            assert_eq!(algorithm.hash().output_len(), digest_len);
            assert_eq!(algorithm.hash().digest(b"x").as_ref().len(), digest_len);
        }
    }

    #[test]
    fn the_iam_guide_names_the_kms_signing_algorithm_each_provider_algorithm_signs_with() {
        // docs/iam.md tells operators which `kms:SigningAlgorithm` to allow: it must be this code's.
        let guide = include_str!("../../../../docs/iam.md");
        let table = guide
            .split("<!-- signing-algorithms -->")
            .nth(1)
            .expect("docs/iam.md marks its algorithm table");
        let rows: Vec<(String, String)> = table
            .lines()
            .skip(3)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line
                    .split('|')
                    .map(|cell| cell.trim().trim_matches('`'))
                    .collect();
                (cells[1].to_owned(), cells[2].to_owned())
            })
            .collect();
        let expected: Vec<(String, String)> = SigningAlgorithm::ALL
            .iter()
            .map(|a| (a.jose_name().to_owned(), a.kms_name().to_owned()))
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn jca_names_used_by_keycloak_resolve_to_the_same_algorithm_as_jose_names() {
        for algorithm in SigningAlgorithm::ALL {
            assert_eq!(
                SigningAlgorithm::from_jca(algorithm.jca_name()),
                Ok(algorithm)
            );
        }
        assert_eq!(
            SigningAlgorithm::from_jca("SHA256withRSAandMGF1"),
            Ok(SigningAlgorithm::Ps256)
        );
    }

    #[test]
    fn unknown_algorithm_names_are_refused_with_a_clear_message() {
        let error = SigningAlgorithm::from_jose("HS256").expect_err("HS256 is not asymmetric");
        assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
        assert!(error.message().contains("HS256"));
        assert_eq!(
            SigningAlgorithm::from_jca("SHA1withRSA").map_err(|e| e.kind()),
            Err(ErrorKind::InvalidArgument)
        );
    }

    #[test]
    fn rsa_keys_sign_every_rs_and_ps_algorithm_and_no_ecdsa() {
        for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
            for algorithm in SigningAlgorithm::ALL {
                let is_rsa_algorithm = algorithm.jose_name().starts_with('R')
                    || algorithm.jose_name().starts_with('P');
                assert_eq!(
                    spec.supports(algorithm),
                    is_rsa_algorithm,
                    "{spec:?} {algorithm:?}"
                );
            }
        }
    }

    #[test]
    fn each_curve_signs_only_with_its_own_hash() {
        let pairs = [
            (KeySpec::EccNistP256, SigningAlgorithm::Es256),
            (KeySpec::EccNistP384, SigningAlgorithm::Es384),
            (KeySpec::EccNistP521, SigningAlgorithm::Es512),
        ];
        for (spec, fitting) in pairs {
            for algorithm in SigningAlgorithm::ALL {
                assert_eq!(spec.supports(algorithm), algorithm == fitting);
            }
        }
        let error = KeySpec::EccNistP256
            .check_supports(SigningAlgorithm::Es384)
            .expect_err("P-256 cannot sign ES384");
        assert_eq!(error.kind(), ErrorKind::KeySpecMismatch);
        assert!(error.message().contains("ES384") && error.message().contains("ECC_NIST_P256"));
    }

    #[test]
    fn key_specs_that_cannot_sign_tokens_are_refused() {
        for name in [
            "SYMMETRIC_DEFAULT",
            "HMAC_256",
            "ECC_SECG_P256K1",
            "SM2",
            "RSA_1024",
        ] {
            let error = KeySpec::from_kms(name).expect_err("not a signing spec for JOSE");
            assert_eq!(error.kind(), ErrorKind::KeySpecMismatch);
        }
        for spec in KeySpec::ALL {
            assert_eq!(KeySpec::from_kms(spec.kms_name()), Ok(spec));
        }
    }
}
