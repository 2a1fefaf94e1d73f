//! The KMS operations: request and response shapes as AWS documents them, and their semantics.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::crypto::{KeyMaterial, KeySpec, SigningAlgorithm};
use crate::keys::{Alias, Key, KeyState, KeyStore, KeyUsage, Page};
use crate::protocol::{json_bytes, parse_request, Blob, ErrorKind, KmsError, Operation, Timestamp};

/// Largest `Message` of `Sign` and `Verify`.
const MAX_MESSAGE_LEN: usize = 4096;
/// Largest `Signature` of `Verify`.
const MAX_SIGNATURE_LEN: usize = 6144;
const MAX_DESCRIPTION_LEN: usize = 8192;
const DEFAULT_PENDING_WINDOW_DAYS: u32 = 30;
const PENDING_WINDOW_DAYS: std::ops::RangeInclusive<u32> = 7..=30;

/// Runs one operation on a request body and returns the response body (empty for operations
/// without output).
pub async fn execute(
    store: &KeyStore,
    operation: Operation,
    body: &[u8],
) -> Result<Bytes, KmsError> {
    match operation {
        Operation::CreateKey => output(create_key(store, parse_request(body)?).await),
        Operation::DescribeKey => output(describe_key(store, parse_request(body)?)),
        Operation::GetPublicKey => output(get_public_key(store, parse_request(body)?)),
        Operation::Sign => output(sign(store, parse_request(body)?)),
        Operation::Verify => output(verify(store, parse_request(body)?)),
        Operation::CreateAlias => no_output(create_alias(store, parse_request(body)?)),
        Operation::UpdateAlias => no_output(update_alias(store, parse_request(body)?)),
        Operation::DeleteAlias => no_output(delete_alias(store, parse_request(body)?)),
        Operation::ListAliases => output(list_aliases(store, parse_request(body)?)),
        Operation::ListKeys => output(list_keys(store, parse_request(body)?)),
        Operation::DisableKey => no_output(disable_key(store, parse_request(body)?)),
        Operation::EnableKey => no_output(enable_key(store, parse_request(body)?)),
        Operation::ScheduleKeyDeletion => {
            output(schedule_key_deletion(store, parse_request(body)?))
        }
        Operation::CancelKeyDeletion => output(cancel_key_deletion(store, parse_request(body)?)),
        // Routed to `sts`, never here.
        Operation::AssumeRole => Err(KmsError::new(
            ErrorKind::UnknownOperation,
            "AssumeRole is an STS operation.",
        )),
    }
}

fn output(response: Result<impl Serialize, KmsError>) -> Result<Bytes, KmsError> {
    response.map(|response| json_bytes(&response))
}

/// Operations without output answer with an empty body, as AWS does.
fn no_output(response: Result<(), KmsError>) -> Result<Bytes, KmsError> {
    response.map(|()| Bytes::new())
}

/// Creates a key and its alias at startup (`--create-key alias/NAME=KEYSPEC`): a `SIGN_VERIFY`
/// key for asymmetric specs, `ENCRYPT_DECRYPT` for `SYMMETRIC_DEFAULT`.
pub async fn create_key_with_alias(
    store: &KeyStore,
    alias_name: &str,
    spec: KeySpec,
) -> Result<Key, KmsError> {
    crate::keys::validate_alias_name(alias_name)?;
    let usage = if spec == KeySpec::SymmetricDefault {
        KeyUsage::EncryptDecrypt
    } else {
        KeyUsage::SignVerify
    };
    let key = generate_key(store, spec, usage, String::new()).await?;
    store.create_alias(alias_name, &key.id)?;
    Ok(key)
}

async fn generate_key(
    store: &KeyStore,
    spec: KeySpec,
    usage: KeyUsage,
    description: String,
) -> Result<Key, KmsError> {
    // RSA key generation takes up to seconds: keep it off the async workers.
    let material = tokio::task::spawn_blocking(move || KeyMaterial::generate(spec))
        .await
        .map_err(|err| internal(format!("key generation did not finish: {err}")))?
        .map_err(|err| internal(err.to_string()))?;
    Ok(store.add_key(spec, usage, description, material))
}

fn internal(message: String) -> KmsError {
    KmsError::new(ErrorKind::Internal, message)
}

/// Parses an enum member, answering an unknown value as AWS does.
fn parse_enum<T>(
    member: &str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: impl IntoIterator<Item = &'static str>,
) -> Result<T, KmsError> {
    parse(value).ok_or_else(|| {
        KmsError::validation(
            member,
            format!(
                "Member must satisfy enum value set: [{}] (value '{value}')",
                allowed.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

fn required<T>(member: &str, value: Option<T>) -> Result<T, KmsError> {
    value.ok_or_else(|| KmsError::missing(member))
}

// ---------------------------------------------------------------------------------------------
// Keys

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyRequest {
    description: Option<String>,
    key_usage: Option<String>,
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
    origin: Option<String>,
    multi_region: Option<bool>,
    custom_key_store_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyMetadataResponse {
    key_metadata: KeyMetadata,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    aws_account_id: String,
    key_id: String,
    arn: String,
    creation_date: Timestamp,
    enabled: bool,
    description: String,
    key_usage: &'static str,
    key_state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_date: Option<Timestamp>,
    origin: &'static str,
    key_manager: &'static str,
    customer_master_key_spec: &'static str,
    key_spec: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_algorithms: Option<Vec<&'static str>>,
    multi_region: bool,
}

impl KeyMetadata {
    fn new(store: &KeyStore, key: &Key) -> KeyMetadata {
        KeyMetadata {
            aws_account_id: store.account_id().to_owned(),
            key_id: key.id.clone(),
            arn: key.arn.clone(),
            creation_date: key.created,
            enabled: key.state == KeyState::Enabled,
            description: key.description.clone(),
            key_usage: key.usage.name(),
            key_state: key.state.name(),
            deletion_date: key.deletion_date,
            origin: "AWS_KMS",
            key_manager: "CUSTOMER",
            customer_master_key_spec: key.spec.name(),
            key_spec: key.spec.name(),
            encryption_algorithms: encryption_algorithms(key),
            signing_algorithms: signing_algorithms(key),
            multi_region: false,
        }
    }
}

fn signing_algorithms(key: &Key) -> Option<Vec<&'static str>> {
    (key.usage == KeyUsage::SignVerify).then(|| {
        key.spec
            .signing_algorithms()
            .iter()
            .map(|alg| alg.name())
            .collect()
    })
}

fn encryption_algorithms(key: &Key) -> Option<Vec<&'static str>> {
    (key.usage == KeyUsage::EncryptDecrypt).then(|| key.spec.encryption_algorithms().to_vec())
}

async fn create_key(
    store: &KeyStore,
    request: CreateKeyRequest,
) -> Result<KeyMetadataResponse, KmsError> {
    let spec_name = match (&request.key_spec, &request.customer_master_key_spec) {
        (Some(_), Some(_)) => {
            return Err(KmsError::new(
                ErrorKind::Validation,
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request.",
            ))
        }
        (Some(spec), None) | (None, Some(spec)) => spec.as_str(),
        (None, None) => KeySpec::SymmetricDefault.name(),
    };
    let spec = parse_enum(
        "keySpec",
        spec_name,
        KeySpec::from_name,
        KeySpec::ALL.map(KeySpec::name),
    )?;
    let usage = match &request.key_usage {
        Some(usage) => parse_enum(
            "keyUsage",
            usage,
            KeyUsage::from_name,
            KeyUsage::ALL.map(KeyUsage::name),
        )?,
        None => KeyUsage::EncryptDecrypt,
    };
    let compatible = match usage {
        KeyUsage::SignVerify => spec.is_rsa() || spec.is_ecc(),
        KeyUsage::EncryptDecrypt => spec.is_rsa() || spec == KeySpec::SymmetricDefault,
    };
    if !compatible {
        return Err(KmsError::new(
            ErrorKind::Validation,
            format!("KeyUsage {usage} is not compatible with KeySpec {spec}"),
        ));
    }
    if request
        .origin
        .as_deref()
        .is_some_and(|origin| origin != "AWS_KMS")
    {
        return Err(KmsError::new(
            ErrorKind::UnsupportedOperation,
            "The emulator only creates keys with Origin AWS_KMS.",
        ));
    }
    if request.multi_region == Some(true) || request.custom_key_store_id.is_some() {
        return Err(KmsError::new(
            ErrorKind::UnsupportedOperation,
            "The emulator does not support multi-Region keys or custom key stores.",
        ));
    }
    let description = request.description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(KmsError::validation(
            "description",
            "Member must have length less than or equal to 8192",
        ));
    }
    let key = generate_key(store, spec, usage, description).await?;
    Ok(KeyMetadataResponse {
        key_metadata: KeyMetadata::new(store, &key),
    })
}

/// Requests that name one key and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdRequest {
    key_id: Option<String>,
}

impl KeyIdRequest {
    fn key_id(&self) -> Result<&str, KmsError> {
        required("keyId", self.key_id.as_deref())
    }
}

fn describe_key(store: &KeyStore, request: KeyIdRequest) -> Result<KeyMetadataResponse, KmsError> {
    let key = store.describe(request.key_id()?)?;
    Ok(KeyMetadataResponse {
        key_metadata: KeyMetadata::new(store, &key),
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetPublicKeyResponse {
    key_id: String,
    public_key: Blob,
    customer_master_key_spec: &'static str,
    key_spec: &'static str,
    key_usage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_algorithms: Option<Vec<&'static str>>,
}

fn get_public_key(
    store: &KeyStore,
    request: KeyIdRequest,
) -> Result<GetPublicKeyResponse, KmsError> {
    let key = store.usable(request.key_id()?)?;
    let public_key = key
        .material
        .public_key_der()
        .ok_or_else(|| {
            KmsError::new(
                ErrorKind::UnsupportedOperation,
                format!("{} is a symmetric key and has no public key.", key.arn),
            )
        })?
        .map_err(|err| internal(err.to_string()))?;
    Ok(GetPublicKeyResponse {
        key_id: key.arn.clone(),
        public_key: Blob(public_key),
        customer_master_key_spec: key.spec.name(),
        key_spec: key.spec.name(),
        key_usage: key.usage.name(),
        encryption_algorithms: encryption_algorithms(&key),
        signing_algorithms: signing_algorithms(&key),
    })
}

fn enable_key(store: &KeyStore, request: KeyIdRequest) -> Result<(), KmsError> {
    store.enable(request.key_id()?)
}

fn disable_key(store: &KeyStore, request: KeyIdRequest) -> Result<(), KmsError> {
    store.disable(request.key_id()?)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleKeyDeletionRequest {
    key_id: Option<String>,
    pending_window_in_days: Option<u32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleKeyDeletionResponse {
    key_id: String,
    deletion_date: Option<Timestamp>,
    key_state: &'static str,
    pending_window_in_days: u32,
}

fn schedule_key_deletion(
    store: &KeyStore,
    request: ScheduleKeyDeletionRequest,
) -> Result<ScheduleKeyDeletionResponse, KmsError> {
    let key_id = required("keyId", request.key_id.as_deref())?;
    let window = request
        .pending_window_in_days
        .unwrap_or(DEFAULT_PENDING_WINDOW_DAYS);
    if !PENDING_WINDOW_DAYS.contains(&window) {
        return Err(KmsError::validation(
            "pendingWindowInDays",
            "Member must have value between 7 and 30",
        ));
    }
    let key = store.schedule_deletion(key_id, window)?;
    Ok(ScheduleKeyDeletionResponse {
        key_id: key.arn,
        deletion_date: key.deletion_date,
        key_state: key.state.name(),
        pending_window_in_days: window,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct CancelKeyDeletionResponse {
    key_id: String,
}

fn cancel_key_deletion(
    store: &KeyStore,
    request: KeyIdRequest,
) -> Result<CancelKeyDeletionResponse, KmsError> {
    let key = store.cancel_deletion(request.key_id()?)?;
    Ok(CancelKeyDeletionResponse { key_id: key.arn })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRequest {
    key_id: Option<String>,
    limit: Option<usize>,
    marker: Option<String>,
}

impl ListRequest {
    fn limit(&self, max: usize, default: usize) -> Result<usize, KmsError> {
        match self.limit {
            None => Ok(default),
            Some(limit) if (1..=max).contains(&limit) => Ok(limit),
            Some(_) => Err(KmsError::validation(
                "limit",
                format!("Member must have value between 1 and {max}"),
            )),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListKeysResponse {
    keys: Vec<KeyListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyListEntry {
    key_id: String,
    key_arn: String,
}

fn list_keys(store: &KeyStore, request: ListRequest) -> Result<ListKeysResponse, KmsError> {
    let Page { items, next_marker } =
        store.list_keys(request.limit(1000, 100)?, request.marker.as_deref())?;
    Ok(ListKeysResponse {
        keys: items
            .into_iter()
            .map(|key| KeyListEntry {
                key_id: key.id,
                key_arn: key.arn,
            })
            .collect(),
        truncated: next_marker.is_some(),
        next_marker,
    })
}

// ---------------------------------------------------------------------------------------------
// Aliases

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasRequest {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

impl AliasRequest {
    fn alias_name(&self) -> Result<&str, KmsError> {
        required("aliasName", self.alias_name.as_deref())
    }

    fn target_key_id(&self) -> Result<&str, KmsError> {
        required("targetKeyId", self.target_key_id.as_deref())
    }
}

fn create_alias(store: &KeyStore, request: AliasRequest) -> Result<(), KmsError> {
    store
        .create_alias(request.alias_name()?, request.target_key_id()?)
        .map(|_| ())
}

fn update_alias(store: &KeyStore, request: AliasRequest) -> Result<(), KmsError> {
    store.update_alias(request.alias_name()?, request.target_key_id()?)
}

fn delete_alias(store: &KeyStore, request: AliasRequest) -> Result<(), KmsError> {
    store.delete_alias(request.alias_name()?)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListAliasesResponse {
    aliases: Vec<AliasListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AliasListEntry {
    alias_name: String,
    alias_arn: String,
    target_key_id: String,
    creation_date: Timestamp,
    last_updated_date: Timestamp,
}

impl From<Alias> for AliasListEntry {
    fn from(alias: Alias) -> AliasListEntry {
        AliasListEntry {
            alias_name: alias.name,
            alias_arn: alias.arn,
            target_key_id: alias.target_key_id,
            creation_date: alias.created,
            last_updated_date: alias.updated,
        }
    }
}

fn list_aliases(store: &KeyStore, request: ListRequest) -> Result<ListAliasesResponse, KmsError> {
    let Page { items, next_marker } = store.list_aliases(
        request.key_id.as_deref(),
        request.limit(100, 50)?,
        request.marker.as_deref(),
    )?;
    Ok(ListAliasesResponse {
        aliases: items.into_iter().map(AliasListEntry::from).collect(),
        truncated: next_marker.is_some(),
        next_marker,
    })
}

// ---------------------------------------------------------------------------------------------
// Signing

/// The request of `Sign`, and of `Verify` (which adds `Signature`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SigningRequest {
    key_id: Option<String>,
    message: Option<Blob>,
    message_type: Option<String>,
    signing_algorithm: Option<String>,
    signature: Option<Blob>,
    dry_run: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MessageType {
    Raw,
    Digest,
}

impl MessageType {
    fn from_name(name: &str) -> Option<MessageType> {
        match name {
            "RAW" => Some(MessageType::Raw),
            "DIGEST" => Some(MessageType::Digest),
            _ => None,
        }
    }
}

/// The checked parts of a `Sign` or `Verify` request.
struct SigningInput {
    key: Key,
    algorithm: SigningAlgorithm,
    digest: Vec<u8>,
}

/// Validation shared by `Sign` and `Verify`, in AWS's order: request shape, key (exists, state),
/// key usage and algorithm, then the message against the algorithm's digest length.
fn signing_input(store: &KeyStore, request: &SigningRequest) -> Result<SigningInput, KmsError> {
    let key_id = required("keyId", request.key_id.as_deref())?;
    let message = &required("message", request.message.as_ref())?.0;
    if message.is_empty() || message.len() > MAX_MESSAGE_LEN {
        return Err(KmsError::validation(
            "message",
            format!("Member must have length between 1 and {MAX_MESSAGE_LEN}"),
        ));
    }
    let algorithm = parse_enum(
        "signingAlgorithm",
        required("signingAlgorithm", request.signing_algorithm.as_deref())?,
        SigningAlgorithm::from_name,
        SigningAlgorithm::ALL.map(SigningAlgorithm::name),
    )?;
    let message_type = match request.message_type.as_deref() {
        None => MessageType::Raw,
        Some(name) => parse_enum(
            "messageType",
            name,
            MessageType::from_name,
            ["RAW", "DIGEST"],
        )?,
    };

    let key = store.usable(key_id)?;
    if key.usage != KeyUsage::SignVerify {
        return Err(KmsError::new(
            ErrorKind::InvalidKeyUsage,
            format!("{} key usage is {}, not SIGN_VERIFY.", key.arn, key.usage),
        ));
    }
    if !key.spec.signing_algorithms().contains(&algorithm) {
        return Err(KmsError::new(
            ErrorKind::InvalidKeyUsage,
            format!(
                "Signing algorithm {algorithm} is not supported by {} ({}).",
                key.arn, key.spec
            ),
        ));
    }
    let hash = algorithm.hash();
    let digest = match message_type {
        MessageType::Raw => hash.digest(message),
        MessageType::Digest if message.len() == hash.output_len() => message.clone(),
        MessageType::Digest => {
            return Err(KmsError::new(
                ErrorKind::Validation,
                format!(
                    "Digest is invalid length for algorithm {algorithm}: {} bytes, expected {}.",
                    message.len(),
                    hash.output_len()
                ),
            ))
        }
    };
    Ok(SigningInput {
        key,
        algorithm,
        digest,
    })
}

fn dry_run(request: &SigningRequest) -> Result<(), KmsError> {
    if request.dry_run == Some(true) {
        Err(KmsError::new(
            ErrorKind::DryRunOperation,
            "The request would have succeeded, but the DryRun option is set.",
        ))
    } else {
        Ok(())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignResponse {
    key_id: String,
    signature: Blob,
    signing_algorithm: &'static str,
}

fn sign(store: &KeyStore, request: SigningRequest) -> Result<SignResponse, KmsError> {
    let input = signing_input(store, &request)?;
    dry_run(&request)?;
    let signature = input
        .key
        .material
        .sign_digest(input.algorithm, &input.digest)
        .map_err(|err| internal(err.to_string()))?;
    Ok(SignResponse {
        key_id: input.key.arn,
        signature: Blob(signature),
        signing_algorithm: input.algorithm.name(),
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyResponse {
    key_id: String,
    signature_valid: bool,
    signing_algorithm: &'static str,
}

fn verify(store: &KeyStore, request: SigningRequest) -> Result<VerifyResponse, KmsError> {
    let signature = &required("signature", request.signature.as_ref())?.0;
    if signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN {
        return Err(KmsError::validation(
            "signature",
            format!("Member must have length between 1 and {MAX_SIGNATURE_LEN}"),
        ));
    }
    let input = signing_input(store, &request)?;
    dry_run(&request)?;
    if !input
        .key
        .material
        .verify_digest(input.algorithm, &input.digest, signature)
    {
        return Err(KmsError::new(ErrorKind::KmsInvalidSignature, ""));
    }
    Ok(VerifyResponse {
        key_id: input.key.arn,
        signature_valid: true,
        signing_algorithm: input.algorithm.name(),
    })
}
