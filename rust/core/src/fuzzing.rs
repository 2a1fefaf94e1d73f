//! Entry points for the fuzz targets in `rust/fuzz` (`scripts/fuzz.sh`); not an API.
//!
//! Every other parser of outside bytes is public already (`parse_jwks_with`,
//! `PublicKeyInfo::from_der`, `check_uploaded`, the `from_json`s). What is not is how validation
//! reads KMS's answers: these run the very calls and checks validation runs, on a client the
//! fuzz target builds (one whose HTTP layer answers with the fuzzer's bytes).

use std::time::Instant;

use crate::error::Result;
use crate::runtime;
use crate::signing::algorithm::KeySpec;
use crate::signing::config::ProviderConfig;
use crate::signing::kms;
use crate::signing::spki::PublicKeyInfo;
use crate::signing::validation;

/// `DescribeKey` through `client` and validation's checks of the metadata it answers with: the
/// key ARN and key spec that validation goes on with.
pub fn describe_key_answer(
    client: &aws_sdk_kms::Client,
    config: &ProviderConfig,
    deadline: Instant,
) -> Result<(String, KeySpec)> {
    runtime::block_on(async {
        let client = kms::KmsClient::from_sdk(client.clone(), &config.connection);
        let metadata =
            kms::calls::describe_key(&client, &config.connection, &config.key_id, deadline).await?;
        validation::check_metadata(config, &metadata)
    })?
}

/// `GetPublicKey` through `client` and the parse of the SPKI DER it answers with.
pub fn public_key_answer(
    client: &aws_sdk_kms::Client,
    config: &ProviderConfig,
    key_arn: &str,
    deadline: Instant,
) -> Result<PublicKeyInfo> {
    let client = kms::KmsClient::from_sdk(client.clone(), &config.connection);
    let der = runtime::block_on(kms::calls::get_public_key(
        &client,
        &config.connection,
        key_arn,
        deadline,
    ))??;
    PublicKeyInfo::from_der(&der)
}

/// The realm a `signingKeyHandle` configuration names (`realm`), as the registry reads it.
pub fn realm_named_in(config_json: &str) -> Result<Option<String>> {
    crate::signing::policy::realm_named_in(config_json)
}
