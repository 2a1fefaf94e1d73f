//! Key specs, signing algorithms and key material, implemented with RustCrypto and, for the RSA
//! private-key operation, OpenSSL (deliberately not the aws-lc-rs the product uses, so the two
//! check each other). RustCrypto's constant-time RSA signs about 200 times per second per core,
//! too slow to benchmark a signer against; OpenSSL signs several times as fast (BENCHMARKS.md).

use std::fmt;

use getrandom::SysRng;
use p256::ecdsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use p256::ecdsa::signature::SignatureEncoding;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The `KeySpec` values the emulator can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccNistP256,
    EccNistP384,
    EccNistP521,
    SymmetricDefault,
}

impl KeySpec {
    pub const ALL: [KeySpec; 7] = [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
        KeySpec::SymmetricDefault,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::EccNistP521 => "ECC_NIST_P521",
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
        }
    }

    pub fn from_name(name: &str) -> Option<KeySpec> {
        KeySpec::ALL.into_iter().find(|spec| spec.name() == name)
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    pub fn is_ecc(self) -> bool {
        matches!(
            self,
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521
        )
    }

    /// The signing algorithms KMS offers for this key spec (for `SIGN_VERIFY` keys).
    pub fn signing_algorithms(self) -> &'static [SigningAlgorithm] {
        use SigningAlgorithm as A;
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
                A::RsassaPkcs1V15Sha256,
                A::RsassaPkcs1V15Sha384,
                A::RsassaPkcs1V15Sha512,
                A::RsassaPssSha256,
                A::RsassaPssSha384,
                A::RsassaPssSha512,
            ],
            KeySpec::EccNistP256 => &[A::EcdsaSha256],
            KeySpec::EccNistP384 => &[A::EcdsaSha384],
            KeySpec::EccNistP521 => &[A::EcdsaSha512],
            KeySpec::SymmetricDefault => &[],
        }
    }

    /// The encryption algorithms KMS lists for this key spec (for `ENCRYPT_DECRYPT` keys).
    pub fn encryption_algorithms(self) -> &'static [&'static str] {
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                &["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
            }
            KeySpec::SymmetricDefault => &["SYMMETRIC_DEFAULT"],
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => &[],
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The hash functions behind the signing algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

/// Runs `$body` with the type alias `$digest` bound to the sha2 type of `$hash`.
macro_rules! with_digest {
    ($hash:expr, $digest:ident => $body:expr) => {
        match $hash {
            HashAlgorithm::Sha256 => {
                type $digest = Sha256;
                $body
            }
            HashAlgorithm::Sha384 => {
                type $digest = Sha384;
                $body
            }
            HashAlgorithm::Sha512 => {
                type $digest = Sha512;
                $body
            }
        }
    };
}

impl HashAlgorithm {
    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        with_digest!(self, D => <D as Digest>::output_size())
    }

    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        with_digest!(self, D => D::digest(message).to_vec())
    }
}

/// RSA signature padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RsaPadding {
    Pkcs1V15,
    /// RSASSA-PSS with MGF1 over the same hash and salt length = hash length.
    Pss,
}

/// The `SigningAlgorithm` values for RSA and NIST-curve keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlgorithm {
    RsassaPkcs1V15Sha256,
    RsassaPkcs1V15Sha384,
    RsassaPkcs1V15Sha512,
    RsassaPssSha256,
    RsassaPssSha384,
    RsassaPssSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 9] = [
        SigningAlgorithm::RsassaPkcs1V15Sha256,
        SigningAlgorithm::RsassaPkcs1V15Sha384,
        SigningAlgorithm::RsassaPkcs1V15Sha512,
        SigningAlgorithm::RsassaPssSha256,
        SigningAlgorithm::RsassaPssSha384,
        SigningAlgorithm::RsassaPssSha512,
        SigningAlgorithm::EcdsaSha256,
        SigningAlgorithm::EcdsaSha384,
        SigningAlgorithm::EcdsaSha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::RsassaPkcs1V15Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
            SigningAlgorithm::RsassaPkcs1V15Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
            SigningAlgorithm::RsassaPkcs1V15Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
            SigningAlgorithm::RsassaPssSha256 => "RSASSA_PSS_SHA_256",
            SigningAlgorithm::RsassaPssSha384 => "RSASSA_PSS_SHA_384",
            SigningAlgorithm::RsassaPssSha512 => "RSASSA_PSS_SHA_512",
            SigningAlgorithm::EcdsaSha256 => "ECDSA_SHA_256",
            SigningAlgorithm::EcdsaSha384 => "ECDSA_SHA_384",
            SigningAlgorithm::EcdsaSha512 => "ECDSA_SHA_512",
        }
    }

    pub fn from_name(name: &str) -> Option<SigningAlgorithm> {
        SigningAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.name() == name)
    }

    pub fn hash(self) -> HashAlgorithm {
        match self {
            SigningAlgorithm::RsassaPkcs1V15Sha256
            | SigningAlgorithm::RsassaPssSha256
            | SigningAlgorithm::EcdsaSha256 => HashAlgorithm::Sha256,
            SigningAlgorithm::RsassaPkcs1V15Sha384
            | SigningAlgorithm::RsassaPssSha384
            | SigningAlgorithm::EcdsaSha384 => HashAlgorithm::Sha384,
            SigningAlgorithm::RsassaPkcs1V15Sha512
            | SigningAlgorithm::RsassaPssSha512
            | SigningAlgorithm::EcdsaSha512 => HashAlgorithm::Sha512,
        }
    }

    /// The RSA padding, or `None` for ECDSA.
    fn rsa_padding(self) -> Option<RsaPadding> {
        match self {
            SigningAlgorithm::RsassaPkcs1V15Sha256
            | SigningAlgorithm::RsassaPkcs1V15Sha384
            | SigningAlgorithm::RsassaPkcs1V15Sha512 => Some(RsaPadding::Pkcs1V15),
            SigningAlgorithm::RsassaPssSha256
            | SigningAlgorithm::RsassaPssSha384
            | SigningAlgorithm::RsassaPssSha512 => Some(RsaPadding::Pss),
            SigningAlgorithm::EcdsaSha256
            | SigningAlgorithm::EcdsaSha384
            | SigningAlgorithm::EcdsaSha512 => None,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure inside the cryptography (key generation, the private-key operation, encoding).
/// Never caused by client input: callers validate algorithm, key and digest length first.
#[derive(Debug)]
pub struct CryptoError(String);

impl CryptoError {
    fn new(what: &str, err: impl fmt::Display) -> CryptoError {
        CryptoError(format!("{what}: {err}"))
    }
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CryptoError {}

/// An RSA private key twice: RustCrypto's for the public key and verification, and the same key
/// loaded into OpenSSL, which signs.
pub struct RsaKey {
    key: rsa::PrivateKey,
    signer: openssl::pkey::PKey<openssl::pkey::Private>,
}

impl RsaKey {
    fn new(key: rsa::PrivateKey) -> Result<RsaKey, CryptoError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|err| CryptoError::new("PKCS#8 encoding failed", err))?;
        let signer = openssl::pkey::PKey::private_key_from_pkcs8(der.as_bytes())
            .map_err(|err| CryptoError::new("OpenSSL could not load the RSA key", err))?;
        Ok(RsaKey { key, signer })
    }

    /// PKCS#1 v1.5 or PSS (salt length = hash length, MGF1 with the same hash) over a digest.
    fn sign_digest(
        &self,
        hash: HashAlgorithm,
        padding: RsaPadding,
        digest: &[u8],
    ) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        use openssl::pkey_ctx::PkeyCtx;
        use openssl::rsa::Padding;
        use openssl::sign::RsaPssSaltlen;
        let md = match hash {
            HashAlgorithm::Sha256 => openssl::md::Md::sha256(),
            HashAlgorithm::Sha384 => openssl::md::Md::sha384(),
            HashAlgorithm::Sha512 => openssl::md::Md::sha512(),
        };
        let mut ctx = PkeyCtx::new(&self.signer)?;
        ctx.sign_init()?;
        match padding {
            RsaPadding::Pkcs1V15 => ctx.set_rsa_padding(Padding::PKCS1)?,
            RsaPadding::Pss => {
                ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                ctx.set_rsa_mgf1_md(md)?;
            }
        }
        ctx.set_signature_md(md)?;
        let mut signature = Vec::new();
        ctx.sign_to_vec(digest, &mut signature)?;
        Ok(signature)
    }
}

/// The private key of a KMS key. Symmetric keys carry no material: the emulator never encrypts.
pub enum KeyMaterial {
    Rsa(Box<RsaKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Symmetric,
}

impl fmt::Debug for KeyMaterial {
    /// Names the kind of key only; private material never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            KeyMaterial::Rsa(_) => "Rsa",
            KeyMaterial::P256(_) => "P256",
            KeyMaterial::P384(_) => "P384",
            KeyMaterial::P521(_) => "P521",
            KeyMaterial::Symmetric => "Symmetric",
        };
        write!(f, "KeyMaterial::{kind}(..)")
    }
}

impl KeyMaterial {
    /// Generates a fresh key. RSA generation is CPU-bound (seconds for 4096 bits): call it off
    /// the async workers.
    pub fn generate(spec: KeySpec) -> Result<KeyMaterial, CryptoError> {
        use p256::elliptic_curve::Generate as _;
        let rsa = |bits| {
            rsa::PrivateKey::new(&mut SysRng, bits)
                .map_err(|err| CryptoError::new("RSA key generation failed", err))
                .and_then(RsaKey::new)
                .map(|key| KeyMaterial::Rsa(Box::new(key)))
        };
        let rng_failed = |err| CryptoError::new("the system random number generator failed", err);
        match spec {
            KeySpec::Rsa2048 => rsa(2048),
            KeySpec::Rsa3072 => rsa(3072),
            KeySpec::Rsa4096 => rsa(4096),
            KeySpec::EccNistP256 => p256::ecdsa::SigningKey::try_generate_from_rng(&mut SysRng)
                .map(KeyMaterial::P256)
                .map_err(rng_failed),
            KeySpec::EccNistP384 => p384::ecdsa::SigningKey::try_generate_from_rng(&mut SysRng)
                .map(KeyMaterial::P384)
                .map_err(rng_failed),
            KeySpec::EccNistP521 => p521::ecdsa::SigningKey::try_generate_from_rng(&mut SysRng)
                .map(KeyMaterial::P521)
                .map_err(rng_failed),
            KeySpec::SymmetricDefault => Ok(KeyMaterial::Symmetric),
        }
    }

    /// The public key as DER `SubjectPublicKeyInfo`, or `None` for a symmetric key.
    pub fn public_key_der(&self) -> Option<Result<Vec<u8>, CryptoError>> {
        let der = match self {
            KeyMaterial::Rsa(key) => key.key.as_public_key().to_public_key_der(),
            KeyMaterial::P256(key) => key.verifying_key().to_public_key_der(),
            KeyMaterial::P384(key) => key.verifying_key().to_public_key_der(),
            KeyMaterial::P521(key) => key.verifying_key().to_public_key_der(),
            KeyMaterial::Symmetric => return None,
        };
        Some(
            der.map(|document| document.into_vec())
                .map_err(|err| CryptoError::new("SPKI encoding failed", err)),
        )
    }

    /// Signs a digest (never hashes it again). RSA: PKCS#1 v1.5 or PSS (salt length = hash
    /// length, MGF1 with the same hash); ECDSA: DER `SEQUENCE { r, s }`.
    ///
    /// The caller has checked that `algorithm` fits the key and that `digest` has the length of
    /// `algorithm.hash()`.
    pub fn sign_digest(
        &self,
        algorithm: SigningAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let signature = match (self, algorithm.rsa_padding()) {
            (KeyMaterial::Rsa(key), Some(padding)) => key
                .sign_digest(algorithm.hash(), padding, digest)
                .map_err(|err| CryptoError::new("RSA signing failed", err)),
            (KeyMaterial::P256(key), None) => {
                ecdsa_sign::<_, p256::ecdsa::DerSignature>(key, digest)
            }
            (KeyMaterial::P384(key), None) => {
                ecdsa_sign::<_, p384::ecdsa::DerSignature>(key, digest)
            }
            (KeyMaterial::P521(key), None) => {
                ecdsa_sign::<_, p521::ecdsa::DerSignature>(key, digest)
            }
            (material, _) => Err(CryptoError(format!(
                "{algorithm} does not fit key material {material:?}"
            ))),
        }?;
        Ok(signature)
    }

    /// Verifies a signature over a digest; `false` for any malformed or non-matching signature
    /// and for an algorithm that does not fit the key.
    pub fn verify_digest(
        &self,
        algorithm: SigningAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> bool {
        match (self, algorithm.rsa_padding()) {
            (KeyMaterial::Rsa(key), Some(padding)) => {
                let public = key.key.as_public_key();
                with_digest!(algorithm.hash(), D => match padding {
                    RsaPadding::Pkcs1V15 => public.pkcs1v15_verify_prehash::<D>(digest, signature),
                    RsaPadding::Pss => public.pss_verify_prehash::<D>(digest, signature),
                })
                .is_ok()
            }
            (KeyMaterial::P256(key), None) => {
                ecdsa_verify::<_, p256::ecdsa::DerSignature>(key.verifying_key(), digest, signature)
            }
            (KeyMaterial::P384(key), None) => {
                ecdsa_verify::<_, p384::ecdsa::DerSignature>(key.verifying_key(), digest, signature)
            }
            (KeyMaterial::P521(key), None) => {
                ecdsa_verify::<_, p521::ecdsa::DerSignature>(key.verifying_key(), digest, signature)
            }
            _ => false,
        }
    }
}

/// Randomized ECDSA (RFC 6979 with added entropy, like AWS's non-deterministic signatures).
fn ecdsa_sign<K, S>(key: &K, digest: &[u8]) -> Result<Vec<u8>, CryptoError>
where
    K: RandomizedPrehashSigner<S>,
    S: SignatureEncoding,
{
    key.sign_prehash_with_rng(&mut SysRng, digest)
        .map(|signature| signature.to_vec())
        .map_err(|err| CryptoError::new("ECDSA signing failed", err))
}

fn ecdsa_verify<K, S>(key: &K, digest: &[u8], signature: &[u8]) -> bool
where
    K: PrehashVerifier<S>,
    S: for<'a> TryFrom<&'a [u8]>,
{
    S::try_from(signature)
        .ok()
        .is_some_and(|signature| key.verify_prehash(digest, &signature).is_ok())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for spec in KeySpec::ALL {
            assert_eq!(KeySpec::from_name(spec.name()), Some(spec));
        }
        for alg in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(KeySpec::from_name("HMAC_256"), None);
        assert_eq!(SigningAlgorithm::from_name("ML_DSA_SHAKE_256"), None);
    }

    #[test]
    fn each_curve_offers_only_its_own_ecdsa_algorithm() {
        assert_eq!(
            KeySpec::EccNistP256.signing_algorithms(),
            &[SigningAlgorithm::EcdsaSha256]
        );
        assert_eq!(
            KeySpec::EccNistP384.signing_algorithms(),
            &[SigningAlgorithm::EcdsaSha384]
        );
        assert_eq!(
            KeySpec::EccNistP521.signing_algorithms(),
            &[SigningAlgorithm::EcdsaSha512]
        );
        assert_eq!(KeySpec::Rsa3072.signing_algorithms().len(), 6);
        assert!(KeySpec::SymmetricDefault.signing_algorithms().is_empty());
    }

    #[test]
    fn digest_lengths_match_the_hash() {
        assert_eq!(HashAlgorithm::Sha256.output_len(), 32);
        assert_eq!(HashAlgorithm::Sha384.output_len(), 48);
        assert_eq!(HashAlgorithm::Sha512.output_len(), 64);
        assert_eq!(HashAlgorithm::Sha384.digest(b"abc").len(), 48);
    }

    #[test]
    fn ecdsa_signatures_verify_and_tampered_ones_do_not() {
        for spec in [
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
        ] {
            let key = KeyMaterial::generate(spec).expect("key generation");
            let algorithm = spec.signing_algorithms()[0];
            let digest = algorithm.hash().digest(b"message");
            let signature = key.sign_digest(algorithm, &digest).expect("signing");
            assert!(key.verify_digest(algorithm, &digest, &signature), "{spec}");
            let other = algorithm.hash().digest(b"other message");
            assert!(!key.verify_digest(algorithm, &other, &signature), "{spec}");
            assert!(!key.verify_digest(algorithm, &digest, b"not DER"), "{spec}");
        }
    }

    #[test]
    fn rsa_signatures_verify_for_every_padding_and_hash() {
        let key = KeyMaterial::generate(KeySpec::Rsa2048).expect("key generation");
        for algorithm in KeySpec::Rsa2048.signing_algorithms() {
            let digest = algorithm.hash().digest(b"message");
            let signature = key.sign_digest(*algorithm, &digest).expect("signing");
            assert_eq!(signature.len(), 256);
            assert!(
                key.verify_digest(*algorithm, &digest, &signature),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn openssl_pkcs1_signatures_equal_rustcrypto_ones() {
        let KeyMaterial::Rsa(key) = KeyMaterial::generate(KeySpec::Rsa2048).expect("key") else {
            panic!("an RSA key spec made another kind of key");
        };
        let digest = HashAlgorithm::Sha256.digest(b"message");
        let ours = key
            .sign_digest(HashAlgorithm::Sha256, RsaPadding::Pkcs1V15, &digest)
            .expect("OpenSSL signing");
        let theirs = key
            .key
            .pkcs1v15_sign_prehash_with_rng::<Sha256, _>(&mut SysRng, &digest)
            .expect("RustCrypto signing");
        assert_eq!(ours, theirs.to_vec());
    }

    #[test]
    fn symmetric_keys_have_no_public_key_and_cannot_sign() {
        let key = KeyMaterial::generate(KeySpec::SymmetricDefault).expect("no material");
        assert!(key.public_key_der().is_none());
        let digest = HashAlgorithm::Sha256.digest(b"m");
        assert!(key
            .sign_digest(SigningAlgorithm::RsassaPssSha256, &digest)
            .is_err());
    }
}
