//! The public key cache options JSON (`publicKeyCacheConfigure`: the `native-lru` options,
//! denied address ranges, the truststore's certificates), and the JWKS client built from them.
#![no_main]

use keycloak_aws_kms_core::public_keys::{JwksClient, Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::from_json(json) {
        Ok(settings) => {
            if let Err(error) = JwksClient::new(settings.fetch) {
                fuzz_support::check_error(&error);
            }
        }
        Err(error) => fuzz_support::check_error(&error),
    }
});
