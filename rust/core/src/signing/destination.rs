//! Where a provider's secrets go, and the rule that a secret kept from the stored configuration
//! never follows a changed destination.
//!
//! An administrator who cannot read the stored secret access key or external ID (the admin API
//! masks them, and sending the mask back keeps the stored value) could otherwise point the
//! provider at a host they control and save: validation would send the kept secret there. So when
//! any field that decides where the secrets go differs from the stored configuration, a secret
//! that was kept rather than entered in this request is refused, with a message asking to enter
//! it again. Java tells which secrets were kept (it marks stored secrets) and hands over the
//! stored configuration's fields; which fields count as the destination is decided here.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::signing::config::CREDENTIALS_MODES;

/// The fields of a configuration (entered or stored) that name a destination, as they arrive;
/// every other member of the JSON is ignored (secrets are never read into this).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationFields {
    pub kms_key_id: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub credentials_mode: Option<String>,
    pub role_arn: Option<String>,
    pub sts_endpoint_url: Option<String>,
    /// Stored by validation: the key ARN the stored configuration resolved to.
    pub key_arn: Option<String>,
}

/// Where the secrets of a configuration go. Fields of a credentials mode the configuration does
/// not use do not count (the form keeps them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Destination {
    region: Option<String>,
    endpoint_url: Option<String>,
    sts_endpoint_url: Option<String>,
    role_arn: Option<String>,
    /// The account of the key: of a key named by ARN, else of the key it resolved to (stored).
    key_account: Option<String>,
}

fn present(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Region and account of an ARN, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
fn arn_region_and_account(arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts[..] {
        ["arn", _, _, region, account, _] => Some((region.to_owned(), account.to_owned())),
        _ => None,
    }
}

impl Destination {
    fn of(fields: &DestinationFields) -> Destination {
        let assumes_role =
            present(&fields.credentials_mode).as_deref() == Some(CREDENTIALS_MODES[2].0);
        let from_key_id = present(&fields.kms_key_id)
            .as_deref()
            .and_then(arn_region_and_account);
        let from_key_arn = present(&fields.key_arn)
            .as_deref()
            .and_then(arn_region_and_account);
        let region = from_key_id
            .as_ref()
            .map(|(region, _)| region.clone())
            .or_else(|| present(&fields.region))
            .or_else(|| from_key_arn.as_ref().map(|(region, _)| region.clone()));
        Destination {
            region,
            endpoint_url: present(&fields.endpoint_url),
            sts_endpoint_url: if assumes_role {
                present(&fields.sts_endpoint_url)
            } else {
                None
            },
            role_arn: if assumes_role {
                present(&fields.role_arn)
            } else {
                None
            },
            key_account: from_key_id.or(from_key_arn).map(|(_, account)| account),
        }
    }

    /// The labels of the fields in which `self` (entered) goes elsewhere than `stored`. A key
    /// named without an ARN lives in the account of the credentials, which does not change the
    /// account the secrets go to.
    fn changes_from(&self, stored: &Destination, entered_key_is_arn: bool) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.region != stored.region {
            changed.push("Region");
        }
        if self.endpoint_url != stored.endpoint_url {
            changed.push("Endpoint URL");
        }
        if self.sts_endpoint_url != stored.sts_endpoint_url {
            changed.push("STS endpoint URL");
        }
        if self.role_arn != stored.role_arn {
            changed.push("Role ARN");
        }
        if entered_key_is_arn && self.key_account != stored.key_account {
            changed.push("KMS key account");
        }
        changed
    }
}

/// The config keys of the secret fields and their labels.
const SECRETS: [(&str, &str); 2] = [
    ("secretAccessKey", "Secret access key"),
    ("externalId", "External ID"),
];

/// Refuses a secret kept from the stored configuration (`kept`: config keys such as
/// `secretAccessKey`) when the entered configuration sends it elsewhere than `stored` did. Kept
/// secrets the entered credentials mode does not use are ignored; without a stored configuration
/// (a new provider, a realm import) every secret counts as entered.
pub fn check_kept_secrets(
    entered: &DestinationFields,
    stored: Option<&DestinationFields>,
    kept: &[String],
) -> Result<()> {
    let mode =
        present(&entered.credentials_mode).unwrap_or_else(|| CREDENTIALS_MODES[0].0.to_owned());
    let used: &[&str] = CREDENTIALS_MODES
        .iter()
        .find(|(name, _)| *name == mode)
        .map_or(&[], |(_, fields)| *fields);
    let mut labels = Vec::new();
    for key in kept {
        let (_, label) = SECRETS
            .iter()
            .find(|(name, _)| name == key)
            .ok_or_else(|| Error::invalid_argument(format!("'{key}' is not a secret field")))?;
        if used.contains(&key.as_str()) && !labels.contains(label) {
            labels.push(*label);
        }
    }
    let Some(stored) = stored else {
        return Ok(());
    };
    if labels.is_empty() {
        return Ok(());
    }
    let entered_key_is_arn = present(&entered.kms_key_id).is_some_and(|id| id.starts_with("arn:"));
    let changed =
        Destination::of(entered).changes_from(&Destination::of(stored), entered_key_is_arn);
    if changed.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = labels.iter().map(|label| format!("'{label}'")).collect();
    let (were, it, them) = if labels.len() == 1 {
        ("was", "it", "it")
    } else {
        ("were", "them", "them")
    };
    Err(Error::invalid_configuration(format!(
        "{} {were} saved for another destination; enter {it} again to use {them} with the \
         changed {}",
        joined(&quoted),
        joined(&changed)
    )))
}

/// `a`, `a and b`, `a, b and c`.
fn joined<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    fn fields(value: serde_json::Value) -> DestinationFields {
        serde_json::from_value(value).expect("fields")
    }

    fn stored_role() -> serde_json::Value {
        json!({"kmsKeyId": "alias/signing", "region": "us-east-1", "credentialsMode": "assume-role",
               "roleArn": "arn:aws:iam::111122223333:role/signer",
               "stsEndpointUrl": "https://sts.us-east-1.amazonaws.com",
               "endpointUrl": "https://kms.us-east-1.amazonaws.com",
               "keyArn": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"})
    }

    fn with(changes: serde_json::Value) -> DestinationFields {
        let mut value = stored_role();
        if let (Some(all), Some(changes)) = (value.as_object_mut(), changes.as_object()) {
            all.extend(changes.clone());
        }
        fields(value)
    }

    fn kept(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_kept_secret_with_an_unchanged_destination_passes() {
        let stored = fields(stored_role());
        let renamed =
            with(json!({"roleSessionName": "other", "accessKeyId": "AKIAOTHER00000000001"}));
        assert_eq!(
            check_kept_secrets(
                &renamed,
                Some(&stored),
                &kept(&["secretAccessKey", "externalId"])
            ),
            Ok(())
        );
        // Spaces around a value do not make it another destination.
        let spaced = with(json!({"region": " us-east-1 "}));
        assert_eq!(
            check_kept_secrets(&spaced, Some(&stored), &kept(&["externalId"])),
            Ok(())
        );
    }

    #[test]
    fn each_destination_field_that_changes_refuses_a_kept_secret() {
        let stored = fields(stored_role());
        let cases = [
            (
                json!({"stsEndpointUrl": "https://sts.evil.example"}),
                "STS endpoint URL",
            ),
            (
                json!({"endpointUrl": "https://kms.evil.example"}),
                "Endpoint URL",
            ),
            (json!({"endpointUrl": null}), "Endpoint URL"),
            (json!({"region": "eu-west-1"}), "Region"),
            (
                json!({"roleArn": "arn:aws:iam::444455556666:role/attacker"}),
                "Role ARN",
            ),
            (
                json!({"kmsKeyId": "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                       "region": null}),
                "KMS key account",
            ),
            (
                json!({"kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:alias/signing", "region": null}),
                "Region",
            ),
        ];
        for (changes, label) in cases {
            let error = check_kept_secrets(
                &with(changes.clone()),
                Some(&stored),
                &kept(&["externalId"]),
            )
            .expect_err("refused");
            assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
            assert_eq!(
                error.message(),
                format!(
                    "'External ID' was saved for another destination; enter it again to use it \
                     with the changed {label}"
                ),
                "{changes}"
            );
        }
    }

    #[test]
    fn a_key_arn_of_the_stored_keys_account_and_region_is_no_new_destination() {
        let stored = fields(stored_role());
        let same = with(json!({"kmsKeyId":
            "arn:aws:kms:us-east-1:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab", "region": null}));
        assert_eq!(
            check_kept_secrets(&same, Some(&stored), &kept(&["secretAccessKey"])),
            Ok(())
        );
        // Another key id or alias in the credentials' own account is no new destination either.
        let other_alias = with(json!({"kmsKeyId": "alias/other"}));
        assert_eq!(
            check_kept_secrets(&other_alias, Some(&stored), &kept(&["secretAccessKey"])),
            Ok(())
        );
    }

    #[test]
    fn several_kept_secrets_and_changes_are_named_together() {
        let stored = fields(stored_role());
        let moved = with(
            json!({"region": "eu-west-1", "stsEndpointUrl": "https://sts.evil.example",
                                "endpointUrl": "https://kms.evil.example"}),
        );
        let error = check_kept_secrets(
            &moved,
            Some(&stored),
            &kept(&["secretAccessKey", "externalId"]),
        )
        .expect_err("refused");
        assert_eq!(
            error.message(),
            "'Secret access key' and 'External ID' were saved for another destination; enter them \
             again to use them with the changed Region, Endpoint URL and STS endpoint URL"
        );
    }

    #[test]
    fn entered_secrets_may_go_to_a_new_destination() {
        let stored = fields(stored_role());
        let moved = with(json!({"stsEndpointUrl": "https://sts.eu-west-1.amazonaws.com"}));
        assert_eq!(check_kept_secrets(&moved, Some(&stored), &[]), Ok(()));
        // Without a stored configuration (create, import) nothing is kept.
        assert_eq!(
            check_kept_secrets(&moved, None, &kept(&["secretAccessKey", "externalId"])),
            Ok(())
        );
    }

    #[test]
    fn kept_secrets_of_a_mode_not_in_use_do_not_count_but_fields_of_a_new_mode_do() {
        let stored = fields(stored_role());
        // access-key mode uses no external ID, nor any role or STS field.
        let access_key =
            with(json!({"credentialsMode": "access-key", "stsEndpointUrl": "https://x.example"}));
        let error = check_kept_secrets(
            &access_key,
            Some(&stored),
            &kept(&["externalId", "secretAccessKey"]),
        )
        .expect_err("the role no longer counts: the secret now goes to KMS as another identity");
        assert!(
            error.message().starts_with("'Secret access key' was saved"),
            "{}",
            error.message()
        );
        assert!(error.message().ends_with("Role ARN"), "{}", error.message());
        assert_eq!(
            check_kept_secrets(&access_key, Some(&stored), &kept(&["externalId"])),
            Ok(())
        );
        // From access-key to assume-role: the role is a new destination.
        let stored_key = with(json!({"credentialsMode": "access-key"}));
        let to_role = fields(stored_role());
        let error = check_kept_secrets(&to_role, Some(&stored_key), &kept(&["secretAccessKey"]))
            .expect_err("refused");
        assert!(
            error.message().contains("STS endpoint URL and Role ARN"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn an_unknown_secret_name_is_an_invalid_argument() {
        let error = check_kept_secrets(&fields(stored_role()), None, &kept(&["password"]))
            .expect_err("unknown");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }
}
