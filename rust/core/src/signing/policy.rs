//! The server's policy for `aws-kms` providers: what a realm administrator may configure, as
//! the operator sets it with Keycloak SPI options of the provider
//! (`--spi-keys--aws-kms--<option>`). The defaults are safe for a Keycloak shared by several
//! organisations:
//!
//! - the server's own AWS identity (credentials mode `default`, and `assume-role` without an
//!   access key) serves the `master` realm only;
//! - one KMS key backs providers of one realm only;
//! - plain `http://` endpoints are refused unless the host is a loopback address.
//!
//! Every rule is checked before any call to AWS is made for a configuration it refuses, when a
//! provider is saved (admin console, REST, realm import) and again when a stored provider's key
//! is registered for signing, so that a policy tightened later stops a provider that no longer
//! fits. Refusals name the option that would allow the configuration.
//!
//! Java reads the options from Keycloak's configuration and hands them over as written
//! (`configureSigningPolicy`); their parsing, defaults and meaning are this module's.

use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use once_cell::sync::Lazy;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{bounded_json_error, quoted_input, Error, ErrorKind, Result};
use crate::signing::config::{url_host, Credentials, ProviderConfig, CREDENTIALS_MODES};

/// How Keycloak names the options of this provider on the command line.
pub const OPTION_PREFIX: &str = "--spi-keys--aws-kms--";

/// Replaced by the realm's name in key, role and host patterns.
pub const REALM_PLACEHOLDER: &str = "${realm}";

/// One server option: its name in Keycloak's configuration (and in the options JSON), its name on
/// the command line after [`OPTION_PREFIX`], and its default as the operator would write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOption {
    pub name: &'static str,
    pub option: &'static str,
    pub default: &'static str,
}

impl PolicyOption {
    /// The option as an operator writes it: `--spi-keys--aws-kms--<option>`.
    pub fn flag(&self) -> String {
        format!("{OPTION_PREFIX}{}", self.option)
    }
}

/// The credentials modes realm administrators may choose.
pub const ALLOWED_CREDENTIALS_MODES: PolicyOption = PolicyOption {
    name: "allowedCredentialsModes",
    option: "allowed-credentials-modes",
    default: "default,access-key,assume-role",
};
/// The realms that may use the Keycloak server's own AWS identity; `*` = every realm.
pub const AMBIENT_IDENTITY_REALMS: PolicyOption = PolicyOption {
    name: "ambientIdentityRealms",
    option: "ambient-identity-realms",
    default: "master",
};
/// Patterns a key must match: the configured reference or the resolved key ARN.
pub const ALLOWED_KEY_IDS: PolicyOption = PolicyOption {
    name: "allowedKeyIds",
    option: "allowed-key-ids",
    default: "*",
};
/// Patterns the role ARN of `assume-role` must match.
pub const ALLOWED_ROLE_ARNS: PolicyOption = PolicyOption {
    name: "allowedRoleArns",
    option: "allowed-role-arns",
    default: "*",
};
/// Patterns the host of a configured endpoint URL (KMS or STS) must match.
pub const ALLOWED_ENDPOINT_HOSTS: PolicyOption = PolicyOption {
    name: "allowedEndpointHosts",
    option: "allowed-endpoint-hosts",
    default: "*",
};
/// Whether one KMS key may back providers in more than one realm.
pub const KEY_SHARED_ACROSS_REALMS: PolicyOption = PolicyOption {
    name: "keySharedAcrossRealms",
    option: "key-shared-across-realms",
    default: "false",
};
/// Hosts besides loopback addresses that endpoint URLs may reach over plain `http://`.
pub const INSECURE_HTTP_HOSTS: PolicyOption = PolicyOption {
    name: "insecureHttpHosts",
    option: "insecure-http-hosts",
    default: "",
};

/// Every option, in the order the documentation lists them.
pub const OPTIONS: [PolicyOption; 7] = [
    ALLOWED_CREDENTIALS_MODES,
    AMBIENT_IDENTITY_REALMS,
    ALLOWED_KEY_IDS,
    ALLOWED_ROLE_ARNS,
    ALLOWED_ENDPOINT_HOSTS,
    KEY_SHARED_ACROSS_REALMS,
    INSECURE_HTTP_HOSTS,
];

/// One part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `*`: any run of characters, none included.
    Any,
    /// `${realm}`: the realm's name, literally (a `*` in a realm name is no wildcard).
    Realm,
}

/// A glob pattern of a list option: `*` matches any characters, `${realm}` the realm's name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    parts: Vec<Part>,
}

/// One character of a pattern with the realm filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
}

impl Pattern {
    fn parse(text: &str, option: &PolicyOption, realm_allowed: bool) -> Result<Pattern> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("${") {
                if !rest.starts_with(REALM_PLACEHOLDER) || !realm_allowed {
                    return Err(option_error(
                        option,
                        format!(
                            "'{}' has a placeholder this option does not know{}",
                            quoted_input(text),
                            if realm_allowed {
                                "; only ${realm} is replaced"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Realm);
                rest = &rest[REALM_PLACEHOLDER.len()..];
                continue;
            }
            if c == '*' {
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                if parts.last() != Some(&Part::Any) {
                    parts.push(Part::Any);
                }
            } else {
                literal.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Pattern { parts })
    }

    /// Whether `value` matches; `fold_case` compares ASCII letters case-insensitively (host
    /// names). A pattern naming the realm matches nothing when the realm is unknown.
    fn matches(&self, value: &str, realm: Option<&str>, fold_case: bool) -> bool {
        let fold = |c: char| if fold_case { c.to_ascii_lowercase() } else { c };
        let mut tokens = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => tokens.extend(text.chars().map(|c| Token::Char(fold(c)))),
                Part::Any => tokens.push(Token::Any),
                Part::Realm => match realm {
                    Some(name) => tokens.extend(name.chars().map(|c| Token::Char(fold(c)))),
                    None => return false,
                },
            }
        }
        let value: Vec<char> = value.chars().map(fold).collect();
        glob_matches(&tokens, &value)
    }
}

/// Wildcard matching with one backtracking point (the last `*`): linear in practice.
fn glob_matches(pattern: &[Token], value: &[char]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut last_any: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Token::Char(c)) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            Some(Token::Any) => {
                last_any = Some((p, v));
                p += 1;
            }
            _ => match last_any {
                Some((any, from)) => {
                    p = any + 1;
                    v = from + 1;
                    last_any = Some((any, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|token| *token == Token::Any)
}

/// A comma-separated list of patterns; empty entries are ignored, so an empty list allows nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patterns(Vec<Pattern>);

impl Patterns {
    fn parse(text: &str, option: &PolicyOption, realm_allowed: bool) -> Result<Patterns> {
        list(text)
            .map(|item| Pattern::parse(item, option, realm_allowed))
            .collect::<Result<Vec<_>>>()
            .map(Patterns)
    }

    fn any_matches(&self, value: &str, realm: Option<&str>, fold_case: bool) -> bool {
        self.0
            .iter()
            .any(|pattern| pattern.matches(value, realm, fold_case))
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn option_error(option: &PolicyOption, why: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("Server option {}: {why}", option.flag()))
}

/// A refusal by the server policy, naming the option that would allow what was refused.
fn denied(message: impl std::fmt::Display, option: &PolicyOption) -> Error {
    Error::new(
        ErrorKind::PolicyDenied,
        format!("{message} (server option {})", option.flag()),
    )
}

/// The operator's rules for `aws-kms` providers; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPolicy {
    credentials_modes: Vec<&'static str>,
    ambient_identity_realms: Patterns,
    key_ids: Patterns,
    role_arns: Patterns,
    endpoint_hosts: Patterns,
    key_shared_across_realms: bool,
    insecure_http_hosts: Patterns,
}

impl ServerPolicy {
    /// The policy of a server that sets no option.
    pub fn defaults() -> ServerPolicy {
        // The defaults always parse (a unit test says so); refuse everything if they ever did not.
        ServerPolicy::from_options(&Map::new()).unwrap_or_else(|_| ServerPolicy::refusing_all())
    }

    fn refusing_all() -> ServerPolicy {
        ServerPolicy {
            credentials_modes: Vec::new(),
            ambient_identity_realms: Patterns(Vec::new()),
            key_ids: Patterns(Vec::new()),
            role_arns: Patterns(Vec::new()),
            endpoint_hosts: Patterns(Vec::new()),
            key_shared_across_realms: false,
            insecure_http_hosts: Patterns(Vec::new()),
        }
    }

    /// Reads the options JSON: `{"<option name>": "value as written", …}`, every member optional
    /// (an absent or null one takes its default), `keySharedAcrossRealms` also as a JSON boolean.
    /// An unknown member or an unusable value is refused with `INVALID_ARGUMENT` naming the
    /// option as the operator writes it.
    pub fn from_json(json: &str) -> Result<ServerPolicy> {
        let options: Map<String, Value> = serde_json::from_str(json).map_err(|e| {
            Error::invalid_argument(format!(
                "The aws-kms server options are not a JSON object: {}",
                bounded_json_error(&e)
            ))
        })?;
        ServerPolicy::from_options(&options)
    }

    fn from_options(options: &Map<String, Value>) -> Result<ServerPolicy> {
        if let Some(unknown) = options
            .keys()
            .find(|name| !OPTIONS.iter().any(|option| option.name == name.as_str()))
        {
            return Err(Error::invalid_argument(format!(
                "Unknown aws-kms server option '{}'; the options are {}",
                quoted_input(unknown),
                OPTIONS
                    .iter()
                    .map(|option| option.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let text = |option: &PolicyOption| -> Result<String> {
            match options.get(option.name) {
                None | Some(Value::Null) => Ok(option.default.to_owned()),
                Some(Value::String(value)) => Ok(value.clone()),
                Some(Value::Bool(value)) if option == &KEY_SHARED_ACROSS_REALMS => {
                    Ok(value.to_string())
                }
                Some(other) => Err(option_error(
                    option,
                    format!("expected text, got {}", quoted_input(&other.to_string())),
                )),
            }
        };
        let modes = text(&ALLOWED_CREDENTIALS_MODES)?;
        let credentials_modes = list(&modes)
            .map(|mode| {
                CREDENTIALS_MODES
                    .iter()
                    .map(|(known, _)| *known)
                    .find(|known| *known == mode)
                    .ok_or_else(|| {
                        option_error(
                            &ALLOWED_CREDENTIALS_MODES,
                            format!(
                                "'{}' is not a credentials mode ({})",
                                quoted_input(mode),
                                CREDENTIALS_MODES
                                    .iter()
                                    .map(|(known, _)| *known)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let shared = text(&KEY_SHARED_ACROSS_REALMS)?;
        let key_shared_across_realms = match shared.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(option_error(
                    &KEY_SHARED_ACROSS_REALMS,
                    format!("'{}' is neither true nor false", quoted_input(&shared)),
                ))
            }
        };
        Ok(ServerPolicy {
            credentials_modes,
            ambient_identity_realms: Patterns::parse(
                &text(&AMBIENT_IDENTITY_REALMS)?,
                &AMBIENT_IDENTITY_REALMS,
                false,
            )?,
            key_ids: Patterns::parse(&text(&ALLOWED_KEY_IDS)?, &ALLOWED_KEY_IDS, true)?,
            role_arns: Patterns::parse(&text(&ALLOWED_ROLE_ARNS)?, &ALLOWED_ROLE_ARNS, true)?,
            endpoint_hosts: Patterns::parse(
                &text(&ALLOWED_ENDPOINT_HOSTS)?,
                &ALLOWED_ENDPOINT_HOSTS,
                true,
            )?,
            key_shared_across_realms,
            insecure_http_hosts: Patterns::parse(
                &text(&INSECURE_HTTP_HOSTS)?,
                &INSECURE_HTTP_HOSTS,
                false,
            )?,
        })
    }

    /// The rules that need nothing from AWS, in this order: the credentials mode, the server's
    /// own identity, plain HTTP, the endpoint hosts, the role ARN, and a key named by its key ARN
    /// (other references are checked once `DescribeKey` has resolved them, [`Self::check_key`]).
    /// `realm` is the realm's name; unknown (None), it is no realm the policy names.
    pub fn check_configuration(&self, realm: Option<&str>, config: &ProviderConfig) -> Result<()> {
        let realm_shown = quoted_input(realm.unwrap_or("(unknown)"));
        let credentials = &config.connection.credentials;
        let mode = credentials.mode();
        if !self.credentials_modes.contains(&mode) {
            return Err(denied(
                format_args!("Credentials mode '{mode}' is not allowed on this server"),
                &ALLOWED_CREDENTIALS_MODES,
            ));
        }
        if credentials.uses_ambient_identity()
            && !realm
                .is_some_and(|name| self.ambient_identity_realms.any_matches(name, None, false))
        {
            let what = if mode == CREDENTIALS_MODES[0].0 {
                format!("Credentials mode '{mode}' uses")
            } else {
                format!("Credentials mode '{mode}' without an access key assumes the role with")
            };
            return Err(denied(
                format_args!(
                    "{what} the Keycloak server's own AWS identity, which realm '{realm_shown}' \
                     may not use"
                ),
                &AMBIENT_IDENTITY_REALMS,
            ));
        }
        let endpoints = [
            ("Endpoint URL", config.connection.endpoint_url.as_deref()),
            (
                "STS endpoint URL",
                match credentials {
                    Credentials::AssumeRole(role) => role.sts_endpoint_url.as_deref(),
                    _ => None,
                },
            ),
        ];
        for (field, url) in endpoints {
            if let Some(url) = url {
                self.check_endpoint(field, url, realm)?;
            }
        }
        if let Credentials::AssumeRole(role) = credentials {
            if !self.role_arns.any_matches(&role.role_arn, realm, false) {
                return Err(denied(
                    format_args!(
                        "'Role ARN' {} is not allowed for realm '{realm_shown}' on this server",
                        role.role_arn
                    ),
                    &ALLOWED_ROLE_ARNS,
                ));
            }
        }
        if is_key_arn(&config.key_id) {
            self.check_key(realm, &config.key_id, &config.key_id)?;
        }
        Ok(())
    }

    /// Plain HTTP only to loopback or a host the operator names; then the host allow-list.
    fn check_endpoint(&self, field: &str, url: &str, realm: Option<&str>) -> Result<()> {
        let Some((scheme, host)) = url_host(url) else {
            return Err(Error::invalid_configuration(format!(
                "'{field}' is not an http(s) URL with a host"
            )));
        };
        if scheme == "http"
            && !is_loopback(&host)
            && !self.insecure_http_hosts.any_matches(&host, None, true)
        {
            return Err(denied(
                format_args!(
                    "'{field}' uses plain http:// to {host}, which is not a loopback address: \
                     whoever is on the network path could read the credentials' answers and \
                     forge KMS's; use https://, or the operator may allow this host"
                ),
                &INSECURE_HTTP_HOSTS,
            ));
        }
        if !self.endpoint_hosts.any_matches(&host, realm, true) {
            return Err(denied(
                format_args!("'{field}' host {host} is not allowed on this server"),
                &ALLOWED_ENDPOINT_HOSTS,
            ));
        }
        Ok(())
    }

    /// The key as configured (`reference`: key id, key ARN, alias name or alias ARN) or as
    /// resolved (`key_arn`) must match one of the allowed patterns.
    pub fn check_key(&self, realm: Option<&str>, reference: &str, key_arn: &str) -> Result<()> {
        if self.key_ids.any_matches(reference, realm, false)
            || self.key_ids.any_matches(key_arn, realm, false)
        {
            return Ok(());
        }
        let resolved = if reference == key_arn {
            String::new()
        } else {
            format!(" ({})", quoted_input(key_arn))
        };
        Err(denied(
            format_args!(
                "KMS key '{}'{resolved} is not allowed for realm '{}' on this server",
                quoted_input(reference),
                quoted_input(realm.unwrap_or("(unknown)"))
            ),
            &ALLOWED_KEY_IDS,
        ))
    }

    /// Unless the operator allows sharing, a key already stored by a provider of another realm
    /// (`keys_in_other_realms`: their key ARNs) is refused, with nothing about that realm. A
    /// multi-Region key counts as one key in every Region.
    pub fn check_not_shared(&self, key_arn: &str, keys_in_other_realms: &[String]) -> Result<()> {
        if self.key_shared_across_realms {
            return Ok(());
        }
        let identity = key_identity(key_arn);
        if keys_in_other_realms
            .iter()
            .any(|other| key_identity(other.trim()) == identity)
        {
            return Err(denied(
                format_args!(
                    "KMS key {} is already in use by another realm",
                    quoted_input(key_arn)
                ),
                &KEY_SHARED_ACROSS_REALMS,
            ));
        }
        Ok(())
    }

    /// The rules again for a stored provider whose key is registered for signing: everything of
    /// [`Self::check_configuration`] and the stored key ARN.
    pub fn check_use(
        &self,
        realm: Option<&str>,
        config: &ProviderConfig,
        key_arn: &str,
    ) -> Result<()> {
        self.check_configuration(realm, config)?;
        self.check_key(realm, &config.key_id, key_arn)
    }
}

/// `127.0.0.0/8`, `::1` (also IPv4-mapped) and the name `localhost`.
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(address)) => address.is_loopback(),
        Ok(IpAddr::V6(address)) => {
            address.is_loopback() || address.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

fn is_key_arn(reference: &str) -> bool {
    let parts: Vec<&str> = reference.splitn(6, ':').collect();
    matches!(parts[..], ["arn", _, "kms", _, _, resource] if resource.starts_with("key/"))
}

/// What makes two key ARNs the same key: the ARN, except that the replicas of a multi-Region key
/// (`mrk-…`) share their key material across Regions, so the Region does not count for them.
fn key_identity(key_arn: &str) -> String {
    let parts: Vec<&str> = key_arn.splitn(6, ':').collect();
    if let ["arn", partition, "kms", _region, account, resource] = parts[..] {
        if let Some(id) = resource.strip_prefix("key/mrk-") {
            return format!("arn:{partition}:kms:*:{account}:key/mrk-{id}");
        }
    }
    key_arn.to_owned()
}

/// The realm named in a config JSON (member `realm`), if any.
pub(crate) fn realm_named_in(config_json: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Named {
        realm: Option<String>,
    }
    let named: Named = serde_json::from_str(config_json).map_err(|e| {
        Error::invalid_argument(format!(
            "The provider configuration is not a JSON object of strings: {}",
            bounded_json_error(&e)
        ))
    })?;
    Ok(named
        .realm
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty()))
}

static CURRENT: Lazy<RwLock<Arc<ServerPolicy>>> =
    Lazy::new(|| RwLock::new(Arc::new(ServerPolicy::defaults())));

/// The process's policy: the defaults until [`configure`] replaces them.
pub fn current() -> Arc<ServerPolicy> {
    Arc::clone(&CURRENT.read().unwrap_or_else(PoisonError::into_inner))
}

/// Replaces the process's policy (`configureSigningPolicy`).
pub fn configure(policy: ServerPolicy) {
    *CURRENT.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn policy(options: Value) -> ServerPolicy {
        ServerPolicy::from_json(&options.to_string()).expect("valid options")
    }

    fn config(fields: Value) -> ProviderConfig {
        let mut all = json!({"kmsKeyId": "alias/signing", "region": "us-east-1"});
        if let (Some(all), Some(fields)) = (all.as_object_mut(), fields.as_object()) {
            all.extend(fields.clone());
        }
        ProviderConfig::from_json(&all.to_string()).expect("valid configuration")
    }

    fn access_key() -> Value {
        json!({"credentialsMode": "access-key", "accessKeyId": "AKIAEXAMPLE000000001",
               "secretAccessKey": "secret"})
    }

    fn refused(result: Result<()>) -> String {
        let error = result.expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::PolicyDenied, "{}", error.message());
        error.message().to_owned()
    }

    #[test]
    fn the_defaults_parse_and_are_the_policy_of_a_server_without_options() {
        assert_eq!(
            ServerPolicy::from_options(&Map::new()),
            Ok(ServerPolicy::defaults())
        );
        assert_ne!(ServerPolicy::defaults(), ServerPolicy::refusing_all());
        assert_eq!(policy(json!({})), ServerPolicy::defaults());
    }

    #[test]
    fn every_credentials_mode_is_allowed_by_default_and_the_option_narrows_them() {
        let defaults = ServerPolicy::defaults();
        assert_eq!(
            defaults.check_configuration(Some("acme"), &config(access_key())),
            Ok(())
        );
        assert_eq!(
            defaults.check_configuration(Some("master"), &config(json!({}))),
            Ok(())
        );
        let narrowed = policy(json!({"allowedCredentialsModes": "assume-role, default"}));
        let message = refused(narrowed.check_configuration(Some("acme"), &config(access_key())));
        assert_eq!(
            message,
            "Credentials mode 'access-key' is not allowed on this server (server option \
             --spi-keys--aws-kms--allowed-credentials-modes)"
        );
    }

    #[test]
    fn the_servers_own_identity_serves_the_master_realm_only_by_default() {
        let defaults = ServerPolicy::defaults();
        let message = refused(defaults.check_configuration(Some("acme"), &config(json!({}))));
        assert_eq!(
            message,
            "Credentials mode 'default' uses the Keycloak server's own AWS identity, which realm \
             'acme' may not use (server option --spi-keys--aws-kms--ambient-identity-realms)"
        );
        refused(defaults.check_configuration(None, &config(json!({}))));
        // A realm called "Master" is not the master realm.
        refused(defaults.check_configuration(Some("Master"), &config(json!({}))));
    }

    #[test]
    fn assume_role_without_an_access_key_counts_as_the_servers_own_identity() {
        let role = json!({"credentialsMode": "assume-role",
                          "roleArn": "arn:aws:iam::111122223333:role/signer"});
        let message =
            refused(ServerPolicy::defaults().check_configuration(Some("acme"), &config(role)));
        assert!(
            message.starts_with(
                "Credentials mode 'assume-role' without an access key assumes the role with the \
                 Keycloak server's own AWS identity, which realm 'acme' may not use"
            ),
            "{message}"
        );
        let with_key = json!({"credentialsMode": "assume-role",
                              "roleArn": "arn:aws:iam::111122223333:role/signer",
                              "accessKeyId": "AKIAEXAMPLE000000001", "secretAccessKey": "s"});
        assert_eq!(
            ServerPolicy::defaults().check_configuration(Some("acme"), &config(with_key)),
            Ok(())
        );
    }

    #[test]
    fn ambient_identity_realms_lists_realms_or_allows_all_with_a_star() {
        let listed = policy(json!({"ambientIdentityRealms": "master, tenant-a ,tenant-*"}));
        for realm in ["master", "tenant-a", "tenant-b"] {
            assert_eq!(
                listed.check_configuration(Some(realm), &config(json!({}))),
                Ok(()),
                "{realm}"
            );
        }
        refused(listed.check_configuration(Some("other"), &config(json!({}))));
        let all = policy(json!({"ambientIdentityRealms": "*"}));
        assert_eq!(
            all.check_configuration(Some("anyone"), &config(json!({}))),
            Ok(())
        );
        let none = policy(json!({"ambientIdentityRealms": ""}));
        refused(none.check_configuration(Some("master"), &config(json!({}))));
    }

    #[test]
    fn key_patterns_match_the_reference_or_the_resolved_arn_with_the_realm_filled_in() {
        let tenants = policy(json!({"allowedKeyIds": "alias/keycloak-${realm}-*"}));
        assert_eq!(
            tenants.check_key(Some("acme"), "alias/keycloak-acme-signing", ARN),
            Ok(())
        );
        let message = refused(tenants.check_key(Some("acme"), "alias/keycloak-other-signing", ARN));
        assert_eq!(
            message,
            format!(
                "KMS key 'alias/keycloak-other-signing' ({ARN}) is not allowed for realm 'acme' \
                 on this server (server option --spi-keys--aws-kms--allowed-key-ids)"
            )
        );
        // The resolved ARN may match instead of the reference.
        let by_account = policy(json!({"allowedKeyIds": "arn:aws:kms:*:111122223333:key/*"}));
        assert_eq!(
            by_account.check_key(Some("acme"), "alias/anything", ARN),
            Ok(())
        );
        refused(by_account.check_key(
            Some("acme"),
            "alias/anything",
            "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ));
        // Unknown realm: a pattern naming the realm matches nothing.
        refused(tenants.check_key(None, "alias/keycloak--signing", ARN));
    }

    #[test]
    fn a_realm_name_fills_the_placeholder_literally_never_as_a_wildcard() {
        let tenants = policy(json!({"allowedKeyIds": "alias/keycloak-${realm}-key"}));
        refused(tenants.check_key(Some("*"), "alias/keycloak-acme-key", ARN));
        assert_eq!(
            tenants.check_key(Some("*"), "alias/keycloak-*-key", ARN),
            Ok(())
        );
    }

    #[test]
    fn a_key_named_by_its_arn_is_refused_before_any_call() {
        let tenants = policy(json!({"allowedKeyIds": "alias/keycloak-${realm}-*"}));
        let mut fields = access_key();
        fields["kmsKeyId"] = ARN.into();
        fields["region"] = Value::Null;
        let message = refused(tenants.check_configuration(Some("acme"), &config(fields)));
        assert!(
            message.starts_with(&format!("KMS key '{ARN}' is not allowed")),
            "{message}"
        );
    }

    #[test]
    fn role_arns_must_match_the_allowed_patterns() {
        let tenants = policy(json!({
            "allowedRoleArns": "arn:aws:iam::111122223333:role/keycloak-${realm}"}));
        let role = |arn: &str| {
            let mut fields = access_key();
            fields["credentialsMode"] = "assume-role".into();
            fields["roleArn"] = arn.into();
            config(fields)
        };
        assert_eq!(
            tenants.check_configuration(
                Some("acme"),
                &role("arn:aws:iam::111122223333:role/keycloak-acme")
            ),
            Ok(())
        );
        let message = refused(tenants.check_configuration(
            Some("acme"),
            &role("arn:aws:iam::111122223333:role/keycloak-other"),
        ));
        assert_eq!(
            message,
            "'Role ARN' arn:aws:iam::111122223333:role/keycloak-other is not allowed for realm \
             'acme' on this server (server option --spi-keys--aws-kms--allowed-role-arns)"
        );
    }

    #[test]
    fn endpoint_hosts_must_match_the_allowed_patterns_case_insensitively() {
        let aws_only =
            policy(json!({"allowedEndpointHosts": "*.amazonaws.com,vpce-${realm}.internal"}));
        let endpoint = |url: &str| {
            let mut fields = access_key();
            fields["endpointUrl"] = url.into();
            config(fields)
        };
        for allowed in [
            "https://kms.us-east-1.amazonaws.com",
            "https://KMS-FIPS.us-east-1.AmazonAWS.com:443/",
            "https://vpce-acme.internal",
        ] {
            assert_eq!(
                aws_only.check_configuration(Some("acme"), &endpoint(allowed)),
                Ok(()),
                "{allowed}"
            );
        }
        let message = refused(
            aws_only.check_configuration(Some("acme"), &endpoint("https://kms.evil.example")),
        );
        assert_eq!(
            message,
            "'Endpoint URL' host kms.evil.example is not allowed on this server (server option \
             --spi-keys--aws-kms--allowed-endpoint-hosts)"
        );
        refused(aws_only.check_configuration(Some("acme"), &endpoint("https://amazonaws.com")));
        // The STS endpoint is held to the same list.
        let mut role = access_key();
        role["credentialsMode"] = "assume-role".into();
        role["roleArn"] = "arn:aws:iam::111122223333:role/signer".into();
        role["stsEndpointUrl"] = "https://sts.evil.example".into();
        let message = refused(aws_only.check_configuration(Some("acme"), &config(role)));
        assert!(
            message.starts_with("'STS endpoint URL' host sts.evil.example"),
            "{message}"
        );
    }

    #[test]
    fn plain_http_reaches_loopback_addresses_only() {
        let defaults = ServerPolicy::defaults();
        let endpoint = |field: &str, url: &str| {
            let mut fields = access_key();
            fields["credentialsMode"] = "assume-role".into();
            fields["roleArn"] = "arn:aws:iam::111122223333:role/signer".into();
            fields[field] = url.into();
            config(fields)
        };
        for loopback in [
            "http://127.0.0.1:4566",
            "http://127.10.20.30",
            "http://localhost:8080/",
            "http://LOCALHOST",
            "http://[::1]:4566",
            "http://[::ffff:127.0.0.1]",
        ] {
            for field in ["endpointUrl", "stsEndpointUrl"] {
                assert_eq!(
                    defaults.check_configuration(Some("acme"), &endpoint(field, loopback)),
                    Ok(()),
                    "{field} {loopback}"
                );
            }
        }
        for remote in [
            "http://kms.example.invalid",
            "http://10.0.0.5:4566",
            "http://[2001:db8::1]",
            "http://localhost.example.com",
            "http://128.0.0.1",
        ] {
            let message = refused(
                defaults.check_configuration(Some("acme"), &endpoint("endpointUrl", remote)),
            );
            assert!(
                message.starts_with("'Endpoint URL' uses plain http:// to ")
                    && message
                        .ends_with("(server option --spi-keys--aws-kms--insecure-http-hosts)"),
                "{remote}: {message}"
            );
            let message = refused(
                defaults.check_configuration(Some("acme"), &endpoint("stsEndpointUrl", remote)),
            );
            assert!(
                message.starts_with("'STS endpoint URL' uses plain http://"),
                "{message}"
            );
        }
        assert_eq!(
            defaults.check_configuration(
                Some("acme"),
                &endpoint("endpointUrl", "https://kms.example.invalid")
            ),
            Ok(())
        );
    }

    #[test]
    fn insecure_http_hosts_names_the_hosts_plain_http_may_reach_besides_loopback() {
        let emulator = policy(json!({"insecureHttpHosts": "kms-emulator.test, 10.0.0.5"}));
        let endpoint = |url: &str| {
            let mut fields = access_key();
            fields["endpointUrl"] = url.into();
            config(fields)
        };
        for allowed in [
            "http://kms-emulator.test:4566",
            "http://KMS-Emulator.test",
            "http://10.0.0.5",
        ] {
            assert_eq!(
                emulator.check_configuration(Some("acme"), &endpoint(allowed)),
                Ok(()),
                "{allowed}"
            );
        }
        refused(emulator.check_configuration(Some("acme"), &endpoint("http://other.test")));
        // Allowing plain http does not allow a host the host list refuses.
        let both = policy(json!({"insecureHttpHosts": "kms-emulator.test",
                                 "allowedEndpointHosts": "*.amazonaws.com"}));
        let message =
            refused(both.check_configuration(Some("acme"), &endpoint("http://kms-emulator.test")));
        assert!(message.contains("allowed-endpoint-hosts"), "{message}");
    }

    #[test]
    fn a_key_of_another_realm_is_refused_unless_sharing_is_allowed() {
        let others = vec![
            "arn:aws:kms:eu-west-1:111122223333:key/0000aaaa-12ab-34cd-56ef-1234567890ab"
                .to_owned(),
            ARN.to_owned(),
        ];
        let message = refused(ServerPolicy::defaults().check_not_shared(ARN, &others));
        assert_eq!(
            message,
            format!(
                "KMS key {ARN} is already in use by another realm (server option \
                 --spi-keys--aws-kms--key-shared-across-realms)"
            )
        );
        assert_eq!(ServerPolicy::defaults().check_not_shared(ARN, &[]), Ok(()));
        let other_key =
            "arn:aws:kms:us-east-1:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            ServerPolicy::defaults().check_not_shared(other_key, &others),
            Ok(())
        );
        for shared in [json!(true), json!("true"), json!("TRUE")] {
            let sharing = policy(json!({ "keySharedAcrossRealms": shared }));
            assert_eq!(sharing.check_not_shared(ARN, &others), Ok(()));
        }
    }

    #[test]
    fn the_replicas_of_a_multi_region_key_are_one_key() {
        let primary = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        let replica = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        refused(ServerPolicy::defaults().check_not_shared(replica, &[primary.to_owned()]));
        let other_account =
            "arn:aws:kms:eu-west-1:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        assert_eq!(
            ServerPolicy::defaults().check_not_shared(other_account, &[primary.to_owned()]),
            Ok(())
        );
    }

    #[test]
    fn a_stored_provider_is_held_to_the_same_rules_when_it_is_used() {
        let tenants = policy(json!({"allowedKeyIds": "alias/keycloak-${realm}-*"}));
        let stored = config(
            json!({"kmsKeyId": "alias/keycloak-acme-a", "credentialsMode": "access-key",
                                   "accessKeyId": "AKIAEXAMPLE000000001", "secretAccessKey": "s"}),
        );
        assert_eq!(tenants.check_use(Some("acme"), &stored, ARN), Ok(()));
        refused(tenants.check_use(Some("other"), &stored, ARN));
        refused(ServerPolicy::defaults().check_use(Some("acme"), &config(json!({})), ARN));
    }

    #[test]
    fn bad_options_are_refused_naming_the_option_as_the_operator_writes_it() {
        let cases = [
            (
                json!({"allowedCredentialsModes": "default,instance-role"}),
                "Server option --spi-keys--aws-kms--allowed-credentials-modes: 'instance-role' is \
                 not a credentials mode (default, access-key, assume-role)",
            ),
            (
                json!({"keySharedAcrossRealms": "sometimes"}),
                "Server option --spi-keys--aws-kms--key-shared-across-realms: 'sometimes' is \
                 neither true nor false",
            ),
            (
                json!({"allowedKeyIds": "alias/${tenant}-*"}),
                "Server option --spi-keys--aws-kms--allowed-key-ids: 'alias/${tenant}-*' has a \
                 placeholder this option does not know; only ${realm} is replaced",
            ),
            (
                json!({"ambientIdentityRealms": "${realm}"}),
                "Server option --spi-keys--aws-kms--ambient-identity-realms: '${realm}' has a \
                 placeholder this option does not know",
            ),
            (
                json!({"allowedRoleArns": 5}),
                "Server option --spi-keys--aws-kms--allowed-role-arns: expected text, got 5",
            ),
        ];
        for (options, expected) in cases {
            let error = ServerPolicy::from_json(&options.to_string()).expect_err("refused");
            assert_eq!(error.kind(), ErrorKind::InvalidArgument);
            assert_eq!(error.message(), expected);
        }
        let error = ServerPolicy::from_json(r#"{"allowedKeys":"*"}"#).expect_err("unknown");
        assert!(error
            .message()
            .starts_with("Unknown aws-kms server option 'allowedKeys'"));
        let error = ServerPolicy::from_json("[]").expect_err("not an object");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn glob_patterns_match_whole_values_with_stars_anywhere() {
        let matches = |pattern: &str, value: &str| {
            Pattern::parse(pattern, &ALLOWED_KEY_IDS, true)
                .expect("pattern")
                .matches(value, Some("r"), false)
        };
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("a*c", "abbbc"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(matches("**x", "x"));
        assert!(matches("alias/${realm}", "alias/r"));
        assert!(!matches("a*c", "abcd"));
        assert!(!matches("abc", "ab"));
        assert!(!matches("abc", "abcd"));
        assert!(!matches("", "a"));
    }

    #[test]
    fn the_realm_is_read_from_the_config_json() {
        assert_eq!(
            realm_named_in(r#"{"realm":" acme ","kmsKeyId":"k"}"#),
            Ok(Some("acme".to_owned()))
        );
        assert_eq!(realm_named_in(r#"{"realm":""}"#), Ok(None));
        assert_eq!(realm_named_in("{}"), Ok(None));
        assert!(realm_named_in("nope").is_err());
    }
}
