//! The signing policy options JSON (`configureSigningPolicy`, the operator's server options),
//! and the policy it makes held against fixed configurations.

use keycloak_aws_kms_core::signing::config::ProviderConfig;
use keycloak_aws_kms_core::signing::policy::ServerPolicy;
use std::sync::OnceLock;

const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn configs() -> &'static [ProviderConfig] {
    static CONFIGS: OnceLock<Vec<ProviderConfig>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [
            r#"{"kmsKeyId":"alias/signing","region":"eu-west-1"}"#,
            r#"{"kmsKeyId":"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","credentialsMode":"access-key","accessKeyId":"AKIAIOSFODNN7EXAMPLE","secretAccessKey":"fuzz-secret-key"}"#,
            r#"{"kmsKeyId":"alias/signing","region":"eu-west-1","credentialsMode":"assume-role","roleArn":"arn:aws:iam::111122223333:role/signer","endpointUrl":"http://127.0.0.1:4566","stsEndpointUrl":"https://sts.eu-west-1.amazonaws.com"}"#,
        ]
        .iter()
        .map(|json| ProviderConfig::from_json(json).expect("a fixed configuration"))
        .collect()
    })
}

/// One input of the `signing_policy_json` target.
pub fn run(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    match ServerPolicy::from_json(json) {
        Ok(policy) => {
            for realm in [None, Some("master"), Some("tenant-a")] {
                for config in configs() {
                    let checks = [
                        policy.check_configuration(realm, config),
                        policy.check_key(realm, &config.key_id, KEY_ARN),
                        policy.check_not_shared(KEY_ARN, &[KEY_ARN.to_owned()]),
                        policy.check_use(realm, config, KEY_ARN),
                    ];
                    for error in checks.iter().filter_map(|c| c.as_ref().err()) {
                        super::super::check_error(error);
                    }
                }
            }
        }
        Err(error) => super::super::check_error(&error),
    }
}
