//! The natives' side of what the operator sees (`keycloak_aws_kms_core::telemetry`): log records
//! drained by Java's one log thread, counters for Keycloak's metrics, signing outcomes per key
//! provider, and the hooks the signing and download natives call. Java pulls all of it; nothing
//! here calls Java.

use std::time::Duration;

use keycloak_aws_kms_core::signing::registry;
use keycloak_aws_kms_core::telemetry::{logs, metrics, signing, sources};
use keycloak_aws_kms_core::Error;

use crate::policy::{wire_code, BridgeError};

/// The longest a drain may wait, whatever Java asks: the log thread must notice a shutdown.
const MAX_DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Every log category, in a fixed order.
pub fn categories() -> &'static [&'static str] {
    &logs::CATEGORIES
}

pub fn configure_levels(levels_json: &str) -> Result<(), Error> {
    logs::configure_levels(levels_json)
}

/// The JSON of `drainLogRecords`, after waiting up to `wait_millis` (at most 10 s) for a record.
pub fn drain_json(wait_millis: i64) -> String {
    let wait = Duration::from_millis(u64::try_from(wait_millis).unwrap_or(0)).min(MAX_DRAIN_WAIT);
    logs::drain(wait).to_json()
}

pub fn wake() {
    logs::global().wake();
}

/// The JSON of `telemetryStats`.
pub fn stats_json() -> String {
    let signing_keys = registry::global().stats();
    let (downloaded, failed) = sources::downloads();
    serde_json::json!({
        "kms": metrics::kms().snapshot().to_json(wire_code),
        "logs": { "dropped": logs::global().dropped_total() },
        "jwks": { "downloads": downloaded, "downloadFailures": failed },
        "signingKeys": { "keys": signing_keys.keys, "clients": signing_keys.clients },
        "jni": { "globalReferences": crate::held_refs::count() },
    })
    .to_string()
}

/// The JSON of `signingOutcomes`.
pub fn outcomes_json() -> String {
    signing::to_json(&signing::global().snapshot(), wire_code)
}

/// `signingKeyHandle` registered `handle` for the component: its outcomes are recorded under
/// the ids its configuration names.
pub fn bound(handle: u64, component_id: &str, config_json: &str) {
    signing::global().bind(
        handle,
        signing::Provider::from_config_json(component_id, config_json),
    );
}

/// `sign` ended with `outcome`.
pub fn signed<T>(handle: u64, outcome: &Result<T, Error>) {
    signing::global().record(handle, outcome.as_ref().map(|_| ()), wire_code);
}

/// `releaseSigningKey` forgot the component.
pub fn released(component_id: &str) {
    signing::global().forget(component_id);
}

/// `fetchJwks` ended with `outcome`.
pub fn fetched<T>(url: &str, outcome: &Result<T, BridgeError>) {
    match outcome {
        Ok(_) => sources::download_succeeded(),
        Err(BridgeError::Core(error)) => sources::download_failed(url, error),
        Err(BridgeError::Jni(_)) => {}
    }
}

/// The note of a "PublicKey wasn't found" line, or `None` for DEBUG.
pub fn unknown_kid_note(source_key: &str) -> Option<String> {
    sources::unknown_kid_note(source_key)
}
