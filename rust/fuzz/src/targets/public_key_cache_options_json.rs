//! The public key cache options JSON (`publicKeyCacheConfigure`: the `native-lru` options,
//! denied address ranges, the truststore's certificates), and the JWKS client built from them.

use keycloak_aws_kms_core::public_keys::{JwksClient, Settings};

/// One input of the `public_key_cache_options_json` target.
pub fn run(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::from_json(json) {
        Ok(settings) => {
            if let Err(error) = JwksClient::new(settings.fetch) {
                super::super::check_error(&error);
            }
        }
        Err(error) => super::super::check_error(&error),
    }
}
