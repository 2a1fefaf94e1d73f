//! The `aws-kms` key provider's configuration, as Keycloak stores it in the component config and
//! hands it over as a flat JSON object of strings. Every field is checked here so that a bad value
//! is refused with a message that names the field.

use std::fmt;

use serde::Deserialize;
use zeroize::Zeroize;

use crate::error::{bounded_json_error, quoted_input, Error, Result};
use crate::signing::algorithm::{KeySpec, SigningAlgorithm};
use crate::signing::spki::PublicKeyInfo;

/// A secret string whose `Debug` output never shows the value, wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**********)")
    }
}

/// How the provider obtains AWS credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// The ambient AWS chain: environment, web identity (IRSA), ECS/EKS container credentials,
    /// EC2 instance metadata (IMDSv2). This is how an IAM service role is used.
    Default,
    /// A static access key pair stored (secret masked) in the component.
    AccessKey {
        access_key_id: String,
        secret_access_key: Secret,
    },
    /// An IAM role assumed through STS, on top of the ambient chain or of a static key pair.
    AssumeRole(AssumeRole),
}

impl Credentials {
    /// The credentials mode's name, as in [`CREDENTIALS_MODES`].
    pub fn mode(&self) -> &'static str {
        match self {
            Credentials::Default => CREDENTIALS_MODES[0].0,
            Credentials::AccessKey { .. } => CREDENTIALS_MODES[1].0,
            Credentials::AssumeRole(_) => CREDENTIALS_MODES[2].0,
        }
    }

    /// Whether these credentials are, or start from, the Keycloak server's own AWS identity (the
    /// default chain): mode `default`, and `assume-role` without an access key.
    pub fn uses_ambient_identity(&self) -> bool {
        match self {
            Credentials::Default => true,
            Credentials::AccessKey { .. } => false,
            Credentials::AssumeRole(role) => role.base.uses_ambient_identity(),
        }
    }
}

/// What `sts:AssumeRole` is called with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<Secret>,
    pub session_name: String,
    pub sts_endpoint_url: Option<String>,
    /// The identity that assumes the role: [`Credentials::Default`] or [`Credentials::AccessKey`].
    pub base: Box<Credentials>,
}

/// The session name STS records (and CloudTrail shows) when none is configured.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "keycloak-aws-kms";

/// The common name of a minted certificate when Keycloak names no realm.
pub const DEFAULT_CERTIFICATE_SUBJECT: &str = "keycloak-aws-kms";

/// The credentials modes an administrator chooses from, with the config keys each one reads;
/// fields of the other modes are ignored (the form keeps them, Java does not send them).
pub const CREDENTIALS_MODES: [(&str, &[&str]); 3] = [
    ("default", &[]),
    ("access-key", &["accessKeyId", "secretAccessKey"]),
    (
        "assume-role",
        &[
            "accessKeyId",
            "secretAccessKey",
            "roleArn",
            "externalId",
            "roleSessionName",
            "stsEndpointUrl",
        ],
    ),
];

/// Where and as whom KMS is called: one KMS client is shared by every key with the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub credentials: Credentials,
}

/// A configured `aws-kms` provider: the key to use and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The key as the administrator named it: key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    pub algorithm: SigningAlgorithm,
    pub connection: Connection,
    /// A PEM certificate the administrator uploaded for the key, if any.
    pub certificate: Option<String>,
    /// The common name of a certificate minted for the key (Keycloak passes the realm name).
    pub certificate_subject: String,
}

/// The public material validation stored with the component, needed to sign without asking KMS
/// for anything but the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key_arn: String,
    pub public_key: PublicKeyInfo,
}

/// The JSON Keycloak sends: every component config value, all strings, unknown keys ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    kms_key_id: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials_mode: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
    role_session_name: Option<String>,
    sts_endpoint_url: Option<String>,
    algorithm: Option<String>,
    certificate: Option<String>,
    certificate_subject: Option<String>,
    key_arn: Option<String>,
    key_spec: Option<String>,
    public_key: Option<String>,
}

fn parse_raw(json: &str) -> Result<RawConfig> {
    serde_json::from_str(json).map_err(|e| {
        // serde's message may quote a value or member name: bounded, hidden characters escaped.
        Error::invalid_argument(format!(
            "The provider configuration is not a JSON object of strings: {}",
            bounded_json_error(&e)
        ))
    })
}

/// A trimmed, non-empty value, or None.
fn present(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// [`present`] for a secret: the untrimmed original is wiped, not just dropped.
fn present_secret(value: Option<String>) -> Option<Secret> {
    let mut value = value?;
    let secret = Secret::new(value.trim());
    value.zeroize();
    (!secret.expose().is_empty()).then_some(secret)
}

impl ProviderConfig {
    pub fn from_json(json: &str) -> Result<Self> {
        Self::from_raw(parse_raw(json)?)
    }

    fn from_raw(raw: RawConfig) -> Result<Self> {
        let key_id = present(raw.kms_key_id).ok_or_else(|| {
            Error::invalid_configuration("'KMS key' is required: a key id, key ARN or alias")
        })?;
        let arn_region = parse_key_reference(&key_id)?;
        let configured_region = present(raw.region);
        if let Some(region) = &configured_region {
            check_region(region)?;
        }
        let region = match (arn_region, configured_region) {
            (Some(from_arn), Some(configured)) if from_arn != configured => {
                return Err(Error::invalid_configuration(format!(
                    "'KMS key' is an ARN in region {from_arn} but 'Region' is {configured}; \
                     clear 'Region' or make them agree"
                )))
            }
            (Some(from_arn), _) => from_arn,
            (None, Some(configured)) => configured,
            (None, None) => {
                return Err(Error::invalid_configuration(
                    "'Region' is required when 'KMS key' is not an ARN",
                ))
            }
        };
        let endpoint_url = present(raw.endpoint_url)
            .map(|url| check_url("Endpoint URL", &url).map(|()| url))
            .transpose()?;
        let static_key = static_access_key(raw.access_key_id, raw.secret_access_key)?;
        let credentials = match present(raw.credentials_mode).as_deref() {
            None | Some("default") => Credentials::Default,
            Some("access-key") => static_key.ok_or_else(|| {
                Error::invalid_configuration(
                    "'Access key ID' and 'Secret access key' are required with credentials mode \
                     access-key",
                )
            })?,
            Some("assume-role") => {
                let role_arn = present(raw.role_arn).ok_or_else(|| {
                    Error::invalid_configuration(
                        "'Role ARN' is required with credentials mode assume-role",
                    )
                })?;
                check_role_arn(&role_arn)?;
                let external_id = present_secret(raw.external_id)
                    .map(|id| check_external_id(id.expose()).map(|()| id))
                    .transpose()?;
                let session_name = present(raw.role_session_name)
                    .unwrap_or_else(|| DEFAULT_ROLE_SESSION_NAME.to_owned());
                check_session_name(&session_name)?;
                let sts_endpoint_url = present(raw.sts_endpoint_url)
                    .map(|url| check_url("STS endpoint URL", &url).map(|()| url))
                    .transpose()?;
                Credentials::AssumeRole(AssumeRole {
                    role_arn,
                    external_id,
                    session_name,
                    sts_endpoint_url,
                    base: Box::new(static_key.unwrap_or(Credentials::Default)),
                })
            }
            Some(other) => {
                return Err(Error::invalid_configuration(format!(
                    "'Credentials mode' must be default, access-key or assume-role, not '{}'",
                    quoted_input(other)
                )))
            }
        };
        let algorithm = match present(raw.algorithm) {
            Some(name) => SigningAlgorithm::from_jose(&name)?,
            None => SigningAlgorithm::Rs256,
        };
        Ok(ProviderConfig {
            key_id,
            algorithm,
            connection: Connection {
                region,
                endpoint_url,
                credentials,
            },
            certificate: present(raw.certificate),
            certificate_subject: present(raw.certificate_subject)
                .unwrap_or_else(|| DEFAULT_CERTIFICATE_SUBJECT.to_owned()),
        })
    }
}

impl StoredKey {
    /// Reads the public material that validation stored, together with the configuration.
    pub fn from_json(json: &str) -> Result<(ProviderConfig, StoredKey)> {
        let mut raw = parse_raw(json)?;
        let stale = |what: &str| {
            Error::invalid_configuration(format!(
                "The provider has no valid stored {what}; save it again in the admin console so \
                 that it is read from KMS"
            ))
        };
        let key_arn = present(raw.key_arn.take()).ok_or_else(|| stale("key ARN"))?;
        let stored_spec = present(raw.key_spec.take()).ok_or_else(|| stale("key spec"))?;
        let encoded = present(raw.public_key.take()).ok_or_else(|| stale("public key"))?;
        let public_key = PublicKeyInfo::from_base64(&encoded).map_err(|_| stale("public key"))?;
        if KeySpec::from_kms(&stored_spec).ok() != Some(public_key.key_spec()) {
            return Err(stale("key spec matching its public key"));
        }
        let config = ProviderConfig::from_raw(raw)?;
        Ok((
            config,
            StoredKey {
                key_arn,
                public_key,
            },
        ))
    }
}

/// Checks a KMS key reference and returns the region if it is an ARN.
fn parse_key_reference(key_id: &str) -> Result<Option<String>> {
    let invalid = |why: &str| {
        Error::invalid_configuration(format!(
            "'KMS key' \"{}\" is not a key id, key ARN, alias name or alias ARN: {why}",
            quoted_input(key_id)
        ))
    };
    if key_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains white space"));
    }
    if let Some(rest) = key_id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return Err(invalid(
                "an ARN has the form arn:aws:kms:REGION:ACCOUNT:key/ID",
            ));
        };
        if !partition.starts_with("aws") {
            return Err(invalid("the partition must be aws, aws-cn or aws-us-gov"));
        }
        if service != "kms" {
            return Err(invalid("the service must be kms"));
        }
        check_region(region).map_err(|_| invalid("the region part is not a region name"))?;
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid("the account must be 12 digits"));
        }
        if let Some(id) = resource.strip_prefix("key/") {
            check_key_id(id).map_err(|_| invalid("the key id is not a KMS key id"))?;
        } else if resource.starts_with("alias/") {
            check_alias(resource).map_err(|_| invalid("the alias name is not valid"))?;
        } else {
            return Err(invalid("the resource must be key/ID or alias/NAME"));
        }
        return Ok(Some(region.to_owned()));
    }
    if key_id.starts_with("alias/") {
        check_alias(key_id).map_err(|_| {
            invalid("alias names use letters, digits, '/', '_' and '-' after alias/")
        })?;
        return Ok(None);
    }
    check_key_id(key_id)
        .map_err(|_| invalid("a key id looks like 1234abcd-12ab-34cd-56ef-1234567890ab"))?;
    Ok(None)
}

/// A KMS key id: a UUID, or `mrk-` and 32 hex digits for multi-Region keys.
fn check_key_id(id: &str) -> Result<()> {
    let is_hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    let uuid = id.len() == 36
        && id.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && is_hex(&id.replace('-', ""));
    let multi_region = id
        .strip_prefix("mrk-")
        .is_some_and(|hex| hex.len() == 32 && is_hex(hex));
    if uuid || multi_region {
        Ok(())
    } else {
        Err(Error::invalid_configuration("not a key id"))
    }
}

fn check_alias(alias: &str) -> Result<()> {
    let name = alias.strip_prefix("alias/").unwrap_or_default();
    let valid = !name.is_empty()
        && alias.len() <= 256
        && !name.starts_with("aws/")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_configuration("not an alias"))
    }
}

/// Region names look like `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
fn check_region(region: &str) -> Result<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let valid = parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_configuration(format!(
            "'Region' \"{}\" is not an AWS region name such as us-east-1",
            quoted_input(region)
        )))
    }
}

/// Both halves of a static key pair, or neither.
fn static_access_key(id: Option<String>, secret: Option<String>) -> Result<Option<Credentials>> {
    match (present(id), present_secret(secret)) {
        (None, None) => Ok(None),
        (Some(access_key_id), Some(secret_access_key)) => {
            check_access_key_id(&access_key_id)?;
            Ok(Some(Credentials::AccessKey {
                access_key_id,
                secret_access_key,
            }))
        }
        (Some(_), None) => Err(Error::invalid_configuration(
            "'Secret access key' is required when 'Access key ID' is set",
        )),
        (None, Some(_)) => Err(Error::invalid_configuration(
            "'Access key ID' is required when 'Secret access key' is set",
        )),
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
fn check_role_arn(arn: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = matches!(
        parts[..],
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
                })
    );
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_configuration(format!(
            "'Role ARN' \"{}\" is not an IAM role ARN such as arn:aws:iam::111122223333:role/keycloak-signer",
            quoted_input(arn)
        )))
    }
}

fn check_external_id(id: &str) -> Result<()> {
    let valid = (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
    if valid {
        Ok(())
    } else {
        // The value is a shared secret of sorts: do not echo it.
        Err(Error::invalid_configuration(
            "'External ID' must be 2 to 1224 letters, digits or +=,.@:/-_",
        ))
    }
}

fn check_session_name(name: &str) -> Result<()> {
    let valid = (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_configuration(format!(
            "'Role session name' \"{}\" must be 2 to 64 letters, digits or +=,.@-_",
            quoted_input(name)
        )))
    }
}

fn check_url(field: &str, url: &str) -> Result<()> {
    let invalid = |why: &str| {
        Error::invalid_configuration(format!(
            "'{field}' must be an http(s) URL such as https://kms.eu-west-1.amazonaws.com: {why}"
        ))
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("it must start with https:// or http://"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains white space"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("it has no host"));
    }
    if authority.contains('@') {
        // Credentials belong in the credential fields, where they are masked.
        return Err(invalid("it must not contain user information"));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid("it must not have a query or fragment"));
    }
    if url_host(url).is_none() {
        return Err(invalid(
            "its host must be a DNS name, an IPv4 address or a bracketed IPv6 address, with an \
             optional numeric port",
        ));
    }
    Ok(())
}

/// The scheme (`http` or `https`) and the host of an endpoint URL, the host lower-cased and an
/// IPv6 address without its brackets; None unless the URL is `http(s)://HOST[:PORT][/PATH]` with
/// a host of letters, digits, `.`, `-` and `_` (or a bracketed IPv6 address).
pub fn url_host(url: &str) -> Option<(&'static str, String)> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        ("https", rest)
    } else {
        ("http", url.strip_prefix("http://")?)
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (address, after) = bracketed.split_once(']')?;
            address.parse::<std::net::Ipv6Addr>().ok()?;
            (address, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port_valid =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_valid = !host.is_empty()
        && (authority.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')));
    (port_valid && host_valid).then(|| (scheme, host.to_ascii_lowercase()))
}

/// Access key ids are upper-case letters and digits, 16 to 128 characters (AKIA…, ASIA…).
fn check_access_key_id(id: &str) -> Result<()> {
    let valid = (16..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_configuration(
            "'Access key ID' is not an AWS access key id (16 to 128 upper-case letters and digits)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn config(json: serde_json::Value) -> Result<ProviderConfig> {
        ProviderConfig::from_json(&json.to_string())
    }

    #[test]
    fn region_comes_from_the_arn_when_the_key_is_an_arn() {
        let parsed = config(serde_json::json!({
            "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        }))
        .expect("valid");
        assert_eq!(parsed.connection.region, "eu-west-1");
        assert_eq!(parsed.connection.credentials, Credentials::Default);
        assert_eq!(parsed.algorithm, SigningAlgorithm::Rs256);
    }

    #[test]
    fn alias_names_and_key_ids_need_a_region() {
        let error =
            config(serde_json::json!({"kmsKeyId": "alias/signing"})).expect_err("no region");
        assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
        assert!(error.message().contains("'Region' is required"));
        let parsed = config(serde_json::json!({
            "kmsKeyId": "mrk-1234abcd12ab34cd56ef1234567890ab", "region": "us-gov-west-1",
            "algorithm": "ES384"
        }))
        .expect("valid");
        assert_eq!(parsed.connection.region, "us-gov-west-1");
        assert_eq!(parsed.algorithm, SigningAlgorithm::Es384);
    }

    #[test]
    fn malformed_key_references_are_refused_with_the_field_name() {
        for bad in [
            "arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:s3:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111122223333:secret/x",
            "arn:aws:kms:nowhere:111122223333:alias/x",
            "alias/",
            "alias/aws/kms",
            "my key",
            "1234",
        ] {
            let error =
                config(serde_json::json!({"kmsKeyId": bad, "region": "us-east-1"})).expect_err(bad);
            assert_eq!(error.kind(), ErrorKind::InvalidConfiguration, "{bad}");
            assert!(
                error.message().starts_with("'KMS key'"),
                "{bad}: {}",
                error.message()
            );
        }
    }

    #[test]
    fn an_arn_region_that_contradicts_the_region_field_is_refused() {
        let error = config(serde_json::json!({
            "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:alias/signing", "region": "us-east-1"
        }))
        .expect_err("contradiction");
        assert!(error.message().contains("eu-west-1") && error.message().contains("us-east-1"));
    }

    #[test]
    fn access_key_mode_needs_both_parts_and_never_echoes_the_secret() {
        let error = config(serde_json::json!({
            "kmsKeyId": "alias/a", "region": "us-east-1", "credentialsMode": "access-key",
            "accessKeyId": "AKIAEXAMPLE000000001"
        }))
        .expect_err("no secret");
        assert!(error.message().contains("'Secret access key' is required"));
        let parsed = config(serde_json::json!({
            "kmsKeyId": "alias/a", "region": "us-east-1", "credentialsMode": "access-key",
            "accessKeyId": "AKIAEXAMPLE000000001", "secretAccessKey": "very-secret-value"
        }))
        .expect("valid");
        assert!(!format!("{parsed:?}").contains("very-secret-value"));
    }

    #[test]
    fn endpoint_urls_must_be_plain_http_urls() {
        for bad in [
            "kms.local",
            "ftp://x",
            "https://",
            "https://user:pw@host",
            "http://h/?q=1",
        ] {
            let error = config(serde_json::json!({
                "kmsKeyId": "alias/a", "region": "us-east-1", "endpointUrl": bad
            }))
            .expect_err(bad);
            assert!(error.message().starts_with("'Endpoint URL'"), "{bad}");
            assert!(!error.message().contains("pw@"));
        }
        let parsed = config(serde_json::json!({
            "kmsKeyId": "alias/a", "region": "us-east-1", "endpointUrl": "http://127.0.0.1:4566"
        }))
        .expect("valid");
        assert_eq!(
            parsed.connection.endpoint_url.as_deref(),
            Some("http://127.0.0.1:4566")
        );
    }

    #[test]
    fn endpoint_hosts_are_read_lower_cased_and_odd_hosts_are_refused() {
        assert_eq!(
            url_host("https://KMS.us-east-1.amazonaws.com:443/path"),
            Some(("https", "kms.us-east-1.amazonaws.com".to_owned()))
        );
        assert_eq!(
            url_host("http://[::1]:4566"),
            Some(("http", "::1".to_owned()))
        );
        assert_eq!(
            url_host("http://127.0.0.1"),
            Some(("http", "127.0.0.1".to_owned()))
        );
        for odd in [
            "http://host:port",
            "http://[not-ipv6]",
            "http://h%2fost",
            "http://host:123456",
            "http://:80",
        ] {
            assert_eq!(url_host(odd), None, "{odd}");
            let error = config(serde_json::json!({
                "kmsKeyId": "alias/a", "region": "us-east-1", "endpointUrl": odd
            }))
            .expect_err(odd);
            assert!(error.message().starts_with("'Endpoint URL'"), "{odd}");
        }
    }

    #[test]
    fn credentials_know_their_mode_and_whether_they_are_the_servers_own() {
        let default = config(serde_json::json!({"kmsKeyId": "alias/a", "region": "us-east-1"}))
            .expect("valid");
        assert_eq!(default.connection.credentials.mode(), "default");
        assert!(default.connection.credentials.uses_ambient_identity());
        let role = config(serde_json::json!({
            "kmsKeyId": "alias/a", "region": "us-east-1", "credentialsMode": "assume-role",
            "roleArn": "arn:aws:iam::111122223333:role/r"
        }))
        .expect("valid");
        assert_eq!(role.connection.credentials.mode(), "assume-role");
        assert!(role.connection.credentials.uses_ambient_identity());
        let keyed = config(serde_json::json!({
            "kmsKeyId": "alias/a", "region": "us-east-1", "credentialsMode": "assume-role",
            "roleArn": "arn:aws:iam::111122223333:role/r",
            "accessKeyId": "AKIAEXAMPLE000000001", "secretAccessKey": "s"
        }))
        .expect("valid");
        assert!(!keyed.connection.credentials.uses_ambient_identity());
    }

    #[test]
    fn non_json_input_is_an_invalid_argument() {
        let error = ProviderConfig::from_json("not json").expect_err("bad");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        let error = ProviderConfig::from_json(r#"{"kmsKeyId": 5}"#).expect_err("bad type");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn stored_material_must_be_present_and_consistent() {
        let error = StoredKey::from_json(r#"{"kmsKeyId":"alias/a","region":"us-east-1"}"#)
            .expect_err("nothing stored");
        assert!(error.message().contains("save it again"));
    }
}
