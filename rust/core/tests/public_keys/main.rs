//! The public key cache, JWKS parsing and JWKS downloads, through the core's public API.
//! One test binary; the tests live under `public_keys::` so that
//! `cargo test -p keycloak-aws-kms-core public_keys` selects them with the unit tests.

// Test fixtures fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The modules' files sit next to this one.
#[path = "."]
mod public_keys {
    mod cache;
    mod fetch;
    mod jwks;
    pub mod support;
}
