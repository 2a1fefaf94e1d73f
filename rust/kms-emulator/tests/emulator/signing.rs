//! Sign, Verify and GetPublicKey, checked against aws-lc-rs (not the emulator's RustCrypto).

use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    self, RsaParameters, RsaPssSaltLength, UnparsedPublicKey, VerificationAlgorithm,
};
use aws_sdk_kms::operation::get_public_key::GetPublicKeyError;
use aws_sdk_kms::operation::sign::SignError;
use aws_sdk_kms::operation::verify::VerifyError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;

use crate::support::{client, create_key, error_code, start};

const MESSAGE: &[u8] = b"header.payload of a token";

async fn public_key(client: &Client, key_id: &str) -> Vec<u8> {
    client
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .expect("GetPublicKey")
        .public_key()
        .expect("PublicKey")
        .as_ref()
        .to_vec()
}

async fn sign(
    client: &Client,
    key_id: &str,
    algorithm: SigningAlgorithmSpec,
    message_type: MessageType,
    message: &[u8],
) -> Vec<u8> {
    let output = client
        .sign()
        .key_id(key_id)
        .signing_algorithm(algorithm.clone())
        .message_type(message_type)
        .message(Blob::new(message))
        .send()
        .await
        .expect("Sign");
    assert_eq!(output.signing_algorithm(), Some(&algorithm));
    output.signature().expect("Signature").as_ref().to_vec()
}

/// Verifies over the message (aws-lc-rs hashes it) against the SPKI from GetPublicKey.
fn independently_valid(
    algorithm: &'static dyn VerificationAlgorithm,
    spki: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    UnparsedPublicKey::new(algorithm, spki)
        .verify(message, signature)
        .is_ok()
}

#[tokio::test]
async fn rsa_pkcs1_signatures_verify_with_an_independent_implementation() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let spki = public_key(&client, &key).await;
    for (algorithm, verifier) in [
        (
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        (
            SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
    ] {
        let sig = sign(&client, &key, algorithm.clone(), MessageType::Raw, MESSAGE).await;
        assert_eq!(sig.len(), 256, "{algorithm}");
        assert!(
            independently_valid(verifier, &spki, MESSAGE, &sig),
            "{algorithm}"
        );
    }
}

#[tokio::test]
async fn sign_with_digest_message_type_does_not_hash_again() {
    let emulator = start().await;
    let client = client(&emulator);

    let rsa = create_key(&client, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let rsa_spki = public_key(&client, &rsa).await;
    let digest = digest::digest(&digest::SHA256, MESSAGE);
    let algorithm = SigningAlgorithmSpec::RsassaPkcs1V15Sha256;
    let over_digest = sign(
        &client,
        &rsa,
        algorithm.clone(),
        MessageType::Digest,
        digest.as_ref(),
    )
    .await;
    let over_raw = sign(&client, &rsa, algorithm, MessageType::Raw, MESSAGE).await;
    // PKCS#1 v1.5 is deterministic: the same hash gives the same signature.
    assert_eq!(over_digest, over_raw);
    assert!(independently_valid(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        &rsa_spki,
        MESSAGE,
        &over_digest
    ));

    let ec = create_key(&client, KeySpec::EccNistP384, KeyUsageType::SignVerify).await;
    let ec_spki = public_key(&client, &ec).await;
    let digest = digest::digest(&digest::SHA384, MESSAGE);
    let over_digest = sign(
        &client,
        &ec,
        SigningAlgorithmSpec::EcdsaSha384,
        MessageType::Digest,
        digest.as_ref(),
    )
    .await;
    assert!(independently_valid(
        &signature::ECDSA_P384_SHA384_ASN1,
        &ec_spki,
        MESSAGE,
        &over_digest
    ));
}

#[tokio::test]
async fn pss_signatures_use_a_salt_as_long_as_the_hash() {
    const SHA256_DIGEST_SALT: RsaParameters =
        signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Digest);
    const SHA384_DIGEST_SALT: RsaParameters =
        signature::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(RsaPssSaltLength::Digest);
    const SHA512_DIGEST_SALT: RsaParameters =
        signature::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(RsaPssSaltLength::Digest);
    const SHA256_MAX_SALT: RsaParameters =
        signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);

    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let spki = public_key(&client, &key).await;
    for (algorithm, verifier, digest_alg) in [
        (
            SigningAlgorithmSpec::RsassaPssSha256,
            &SHA256_DIGEST_SALT,
            &digest::SHA256,
        ),
        (
            SigningAlgorithmSpec::RsassaPssSha384,
            &SHA384_DIGEST_SALT,
            &digest::SHA384,
        ),
        (
            SigningAlgorithmSpec::RsassaPssSha512,
            &SHA512_DIGEST_SALT,
            &digest::SHA512,
        ),
    ] {
        let raw = sign(&client, &key, algorithm.clone(), MessageType::Raw, MESSAGE).await;
        assert!(
            independently_valid(verifier, &spki, MESSAGE, &raw),
            "{algorithm} RAW"
        );
        let digest = digest::digest(digest_alg, MESSAGE);
        let over_digest = sign(
            &client,
            &key,
            algorithm.clone(),
            MessageType::Digest,
            digest.as_ref(),
        )
        .await;
        assert!(
            independently_valid(verifier, &spki, MESSAGE, &over_digest),
            "{algorithm} DIGEST"
        );
    }
    // Not the maximum salt length (moto's behaviour).
    let sig = sign(
        &client,
        &key,
        SigningAlgorithmSpec::RsassaPssSha256,
        MessageType::Raw,
        MESSAGE,
    )
    .await;
    assert!(!independently_valid(&SHA256_MAX_SALT, &spki, MESSAGE, &sig));
}

#[tokio::test]
async fn ecdsa_signatures_are_der_and_each_curve_has_its_own_hash() {
    let emulator = start().await;
    let client = client(&emulator);
    for (spec, algorithm, verifier) in [
        (
            KeySpec::EccNistP256,
            SigningAlgorithmSpec::EcdsaSha256,
            &signature::ECDSA_P256_SHA256_ASN1,
        ),
        (
            KeySpec::EccNistP384,
            SigningAlgorithmSpec::EcdsaSha384,
            &signature::ECDSA_P384_SHA384_ASN1,
        ),
        (
            KeySpec::EccNistP521,
            SigningAlgorithmSpec::EcdsaSha512,
            &signature::ECDSA_P521_SHA512_ASN1,
        ),
    ] {
        let key = create_key(&client, spec.clone(), KeyUsageType::SignVerify).await;
        let spki = public_key(&client, &key).await;
        let sig = sign(&client, &key, algorithm.clone(), MessageType::Raw, MESSAGE).await;
        assert_eq!(sig.first(), Some(&0x30), "{spec}: DER SEQUENCE");
        assert!(
            independently_valid(verifier, &spki, MESSAGE, &sig),
            "{spec}"
        );
    }
}

#[tokio::test]
async fn algorithms_and_keys_that_do_not_fit_are_invalid_key_usage() {
    let emulator = start().await;
    let client = client(&emulator);
    let p256 = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let rsa_sign = create_key(&client, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let rsa_encrypt = create_key(&client, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let symmetric = create_key(
        &client,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    for (key, algorithm) in [
        (&p256, SigningAlgorithmSpec::EcdsaSha384),
        (&p256, SigningAlgorithmSpec::RsassaPssSha256),
        (&rsa_sign, SigningAlgorithmSpec::EcdsaSha256),
        (&rsa_encrypt, SigningAlgorithmSpec::RsassaPkcs1V15Sha256),
        (&symmetric, SigningAlgorithmSpec::RsassaPkcs1V15Sha256),
    ] {
        let err = client
            .sign()
            .key_id(key)
            .signing_algorithm(algorithm.clone())
            .message(Blob::new(MESSAGE))
            .send()
            .await
            .expect_err("refused");
        assert!(
            matches!(
                err.into_service_error(),
                SignError::InvalidKeyUsageException(_)
            ),
            "{algorithm} with {key}"
        );
    }
    let err = client
        .get_public_key()
        .key_id(&symmetric)
        .send()
        .await
        .expect_err("symmetric keys have no public key");
    assert!(matches!(
        err.into_service_error(),
        GetPublicKeyError::UnsupportedOperationException(_)
    ));
}

#[tokio::test]
async fn messages_and_digests_of_the_wrong_length_are_validation_errors() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let attempt = |message: Vec<u8>, message_type: MessageType| {
        client
            .sign()
            .key_id(&key)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .message_type(message_type)
            .message(Blob::new(message))
            .send()
    };
    for (message, message_type) in [
        (vec![7; 31], MessageType::Digest),
        (vec![7; 48], MessageType::Digest),
        (vec![7; 4097], MessageType::Raw),
    ] {
        let len = message.len();
        let err = attempt(message, message_type.clone())
            .await
            .expect_err("refused");
        assert_eq!(
            error_code(&err).as_deref(),
            Some("ValidationException"),
            "{len} bytes {message_type}"
        );
    }
    attempt(vec![7; 4096], MessageType::Raw)
        .await
        .expect("4096 bytes are allowed");
    attempt(vec![7; 32], MessageType::Digest)
        .await
        .expect("a SHA-256 digest");
}

#[tokio::test]
async fn a_dry_run_checks_the_request_but_does_not_sign() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let dry_run = |algorithm: SigningAlgorithmSpec| {
        client
            .sign()
            .key_id(&key)
            .signing_algorithm(algorithm)
            .message(Blob::new(MESSAGE))
            .dry_run(true)
            .send()
    };
    let err = dry_run(SigningAlgorithmSpec::EcdsaSha256)
        .await
        .expect_err("dry run");
    assert!(matches!(
        err.into_service_error(),
        SignError::DryRunOperationException(_)
    ));
    let err = dry_run(SigningAlgorithmSpec::EcdsaSha512)
        .await
        .expect_err("wrong algorithm");
    assert!(matches!(
        err.into_service_error(),
        SignError::InvalidKeyUsageException(_)
    ));
}

#[tokio::test]
async fn verify_accepts_good_signatures_and_rejects_bad_ones() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let algorithm = SigningAlgorithmSpec::RsassaPssSha384;
    let mut sig = sign(&client, &key, algorithm.clone(), MessageType::Raw, MESSAGE).await;
    let verify = |signature: Vec<u8>| {
        client
            .verify()
            .key_id(&key)
            .signing_algorithm(algorithm.clone())
            .message(Blob::new(MESSAGE))
            .signature(Blob::new(signature))
            .send()
    };
    let output = verify(sig.clone()).await.expect("valid signature");
    assert!(output.signature_valid());
    assert_eq!(
        output.key_id(),
        Some(format!("arn:aws:kms:us-east-1:111122223333:key/{key}").as_str())
    );
    sig[10] ^= 1;
    let err = verify(sig).await.expect_err("tampered signature");
    assert!(matches!(
        err.into_service_error(),
        VerifyError::KmsInvalidSignatureException(_)
    ));
}

#[tokio::test]
async fn disabled_and_pending_deletion_keys_cannot_sign() {
    let emulator = start().await;
    let client = client(&emulator);
    let key = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let sign = || {
        client
            .sign()
            .key_id(&key)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .message(Blob::new(MESSAGE))
            .send()
    };
    let get_public_key = || client.get_public_key().key_id(&key).send();
    let state = || async {
        client
            .describe_key()
            .key_id(&key)
            .send()
            .await
            .expect("DescribeKey works in every state")
            .key_metadata()
            .and_then(|metadata| metadata.key_state().cloned())
    };

    client
        .disable_key()
        .key_id(&key)
        .send()
        .await
        .expect("DisableKey");
    assert_eq!(state().await, Some(KeyState::Disabled));
    let err = sign().await.expect_err("disabled");
    assert!(matches!(
        err.into_service_error(),
        SignError::DisabledException(_)
    ));
    let err = get_public_key().await.expect_err("disabled");
    assert!(matches!(
        err.into_service_error(),
        GetPublicKeyError::DisabledException(_)
    ));

    client
        .enable_key()
        .key_id(&key)
        .send()
        .await
        .expect("EnableKey");
    sign().await.expect("enabled again");

    client
        .schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion");
    assert_eq!(state().await, Some(KeyState::PendingDeletion));
    let err = sign().await.expect_err("pending deletion");
    assert!(matches!(
        err.into_service_error(),
        SignError::KmsInvalidStateException(_)
    ));
    let err = get_public_key().await.expect_err("pending deletion");
    assert!(matches!(
        err.into_service_error(),
        GetPublicKeyError::KmsInvalidStateException(_)
    ));

    client
        .cancel_key_deletion()
        .key_id(&key)
        .send()
        .await
        .expect("CancelKeyDeletion");
    assert_eq!(state().await, Some(KeyState::Disabled));
}
