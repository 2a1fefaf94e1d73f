//! Public keys of clients and identity providers, for Keycloak's public key storage.
//!
//! - [`cache`]: a bounded LRU of key *sources* (Keycloak's model keys) with freshness limits, a
//!   reload window that counts attempts, one load at a time per source, and stale-on-error. It
//!   is generic over the cached value, so the JNI crate can keep ready Java objects in it.
//! - [`jwks`]: parsing a JWKS the way Keycloak's `JWKSUtils.getKeyWrappersForUse` filters it,
//!   into SubjectPublicKeyInfo DER that Java turns into `PublicKey`s.
//! - [`fetch`]: downloading a JWKS with timeouts, a size cap, Keycloak's trust and no redirects.
//! - [`addresses`]: which addresses those downloads may connect to.
//! - [`settings`]: the server options of all three, their defaults and limits (the one place).

pub mod addresses;
pub mod cache;
pub mod fetch;
pub mod jwks;
pub mod settings;

pub use cache::{CachePolicy, CacheStats, KeyCache, Loaded, Permit, ReloadStart, SourceId};
pub use fetch::{FetchPolicy, JwksClient};
pub use jwks::{JwksKeys, KeyUse};
pub use settings::{Options, Settings, DEFAULT_OPTIONS};
