//! The signing rules the Java side must agree with, as data: Java registers JCA services and
//! lists form choices before any native code may load, so it keeps those few names itself, and
//! its tests compare them with this catalogue (`signingCatalogue`). Nothing here is a second
//! copy of a rule: every value is read from the module that owns it.

use serde_json::{json, Value};

use crate::signing::algorithm::{KeySpec, SigningAlgorithm};
use crate::signing::config::{
    CREDENTIALS_MODES, DEFAULT_CERTIFICATE_SUBJECT, DEFAULT_ROLE_SESSION_NAME,
};
use crate::signing::policy;

/// The JSON of `signingCatalogue`.
pub fn to_json() -> String {
    let algorithms: Vec<Value> = SigningAlgorithm::ALL
        .into_iter()
        .map(|algorithm| {
            let specs: Vec<KeySpec> = KeySpec::ALL
                .into_iter()
                .filter(|spec| spec.supports(algorithm))
                .collect();
            // Every spec of one algorithm has the same type and curve (see KeySpec::supports).
            let first = specs.first();
            json!({
                "jose": algorithm.jose_name(),
                "jca": algorithm.jca_name(),
                "keyType": first.map(|spec| spec.jose_key_type()),
                "curve": first.and_then(|spec| spec.jose_curve()),
                "keySpecs": specs.iter().map(|spec| spec.kms_name()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let modes: serde_json::Map<String, Value> = CREDENTIALS_MODES
        .iter()
        .map(|(mode, fields)| ((*mode).to_owned(), json!(fields)))
        .collect();
    let server_options: Vec<Value> = policy::OPTIONS
        .iter()
        .map(|option| {
            json!({
                "name": option.name,
                "option": option.flag(),
                "default": option.default,
            })
        })
        .collect();
    json!({
        "algorithms": algorithms,
        "credentialsModes": modes,
        "defaultRoleSessionName": DEFAULT_ROLE_SESSION_NAME,
        "defaultCertificateSubject": DEFAULT_CERTIFICATE_SUBJECT,
        "serverOptions": server_options,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_is_listed_with_one_key_type_for_all_its_specs() {
        let catalogue: Value = serde_json::from_str(&to_json()).expect("json");
        let algorithms = catalogue["algorithms"].as_array().expect("algorithms");
        assert_eq!(algorithms.len(), SigningAlgorithm::ALL.len());
        for algorithm in algorithms {
            let specs = algorithm["keySpecs"].as_array().expect("specs");
            assert!(!specs.is_empty(), "{algorithm}");
            for spec in specs {
                let spec = KeySpec::from_kms(spec.as_str().expect("name")).expect("spec");
                assert_eq!(algorithm["keyType"], json!(spec.jose_key_type()));
                assert_eq!(algorithm["curve"], json!(spec.jose_curve()));
            }
        }
        assert_eq!(
            catalogue["credentialsModes"]["access-key"],
            json!(["accessKeyId", "secretAccessKey"])
        );
    }

    #[test]
    fn every_server_option_is_listed_with_its_flag_and_default() {
        let catalogue: Value = serde_json::from_str(&to_json()).expect("json");
        let options = catalogue["serverOptions"].as_array().expect("options");
        assert_eq!(options.len(), policy::OPTIONS.len());
        assert_eq!(
            options[1],
            json!({"name": "ambientIdentityRealms",
                   "option": "--spi-keys--aws-kms--ambient-identity-realms", "default": "master"})
        );
    }
}
