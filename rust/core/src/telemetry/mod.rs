//! What the operator sees of the native side: log records for Keycloak's logging, rate limits
//! that keep a failure from writing a line per request, counters for Keycloak's metrics, and the
//! last signing outcome of each key provider. Nothing here calls Java: Java pulls records and
//! counters through the natives (`docs/operations.md`).
//!
//! - [`logs`]: the `log` facade's logger, a bounded queue of records drained by one Java thread,
//!   the categories and their levels.
//! - [`rate`]: "once per key per window, then a count": the one rate limit of every repeated line.
//! - [`metrics`]: counters of KMS calls (by operation and outcome), retries and throttling.
//! - [`signing`]: per key provider, the last signing success and failure on this node, and the
//!   rate-limited log of its failures.
//! - [`sources`]: the rate-limited log of failed JWKS downloads, URLs without credentials or query.

pub mod logs;
pub mod metrics;
pub mod rate;
pub mod signing;
pub mod sources;
