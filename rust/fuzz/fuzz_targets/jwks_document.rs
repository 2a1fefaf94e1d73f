//! The `jwks_document` target: see `fuzz_support::targets::jwks_document` (the body is shared with the
//! seed replay that runs in `cargo test`, rust/core/tests/fuzz_smoke.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_support::targets::jwks_document::run(data));
