//! Signing and validation through the core's public API, against the project's KMS emulator.
//! One test binary; the tests live under `signing::` so that
//! `cargo test -p keycloak-aws-kms-core signing` selects them with the unit tests.

// Test fixtures fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The modules' files sit next to this one.
#[path = "."]
mod signing {
    mod against_emulator;
    mod lifetime;
    mod retries;
}
