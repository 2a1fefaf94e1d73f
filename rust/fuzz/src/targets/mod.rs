//! The body of every fuzz target, one module each: the `fuzz_targets/` binaries run them under
//! libFuzzer (nightly, sanitizers), and `rust/core/tests/fuzz_smoke.rs` runs them on the
//! committed seeds and bounded mutations of them in every `cargo test` (stable, no sanitizer).
//! Paths to the shared helpers are relative (`super::super::`) so that both crates compile them.

pub mod certificate_pem;
pub mod jwk_members;
pub mod jwks_document;
pub mod kms_answers;
pub mod public_key_cache_options_json;
pub mod signing_config_json;
pub mod signing_policy_json;
pub mod spki_der;
pub mod sts_answers;
