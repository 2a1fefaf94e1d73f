//! The signing configuration JSON crossing JNI (`describeSigningKey`, `signingKeyHandle`): the
//! provider's fields, the save context, the stored key, the realm, held to the default policy.

use keycloak_aws_kms_core::fuzzing;
use keycloak_aws_kms_core::signing::config::{ProviderConfig, StoredKey};
use keycloak_aws_kms_core::signing::policy::ServerPolicy;
use keycloak_aws_kms_core::signing::validation::SaveContext;

/// One input of the `signing_config_json` target.
pub fn run(data: &[u8]) {
    // A Java String always reaches Rust as UTF-8.
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let policy = ServerPolicy::defaults();
    let realm = match fuzzing::realm_named_in(json) {
        Ok(realm) => realm,
        Err(error) => {
            super::super::check_error(&error);
            None
        }
    };
    match ProviderConfig::from_json(json) {
        Ok(config) => {
            if let Err(error) = policy.check_configuration(realm.as_deref(), &config) {
                super::super::check_error(&error);
            }
        }
        Err(error) => super::super::check_error(&error),
    }
    if let Err(error) = SaveContext::from_json(json) {
        super::super::check_error(&error);
    }
    match StoredKey::from_json(json) {
        Ok((config, stored)) => {
            if let Err(error) = policy.check_use(realm.as_deref(), &config, &stored.key_arn) {
                super::super::check_error(&error);
            }
        }
        Err(error) => super::super::check_error(&error),
    }
}
