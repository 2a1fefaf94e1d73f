//! The fuzz smoke that runs in every `cargo test`: each fuzz target's body (`rust/fuzz/src/targets`,
//! the same code libFuzzer runs in `scripts/fuzz.sh`) on every committed seed
//! (`rust/fuzz/seeds/<target>`) and on bounded, reproducible mutations of them. No sanitizer and
//! no coverage feedback here (that needs nightly and a build longer than CI's budget): this keeps
//! each target's properties (bounded clean errors, no secret, no panic, round trips) checked on
//! realistic inputs and near misses on every change. An input that fails is written to
//! `target/fuzz-smoke-failures/<target>/` so that `cargo fuzz run <target> <file>` reproduces it.

// The targets' own checks are assertions by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code, missing_debug_implementations)]
mod fuzz_support;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fuzz_support::targets;

/// Mutated inputs per target, at most, and the time each target may take for them.
const MUTATIONS: usize = 4_000;
const TIME_PER_TARGET: Duration = Duration::from_secs(3);
/// The longest input a mutation makes (libFuzzer's default -max_len for these seeds is similar).
const MAX_LEN: usize = 64 * 1024;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("seeds").join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the seeds of {target} ({}): {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(
        !seeds.is_empty(),
        "no seeds for {target} in {}",
        dir.display()
    );
    seeds
}

/// One of libFuzzer's simple mutations, chosen by `rng`.
fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, other: &[u8]) {
    match rng.u8(0..7) {
        0 if !input.is_empty() => {
            let at = rng.usize(0..input.len());
            input[at] ^= 1 << rng.u8(0..8);
        }
        1 if !input.is_empty() => {
            let at = rng.usize(0..input.len());
            input[at] = *[0u8, 0xff, b'"', b'{', b'}', b',', b'-', b'\n', 0x80]
                .get(rng.usize(0..9))
                .unwrap_or(&0);
        }
        2 => {
            let at = rng.usize(0..=input.len());
            let bytes: Vec<u8> = (0..rng.usize(1..16)).map(|_| rng.u8(..)).collect();
            input.splice(at..at, bytes);
        }
        3 if !input.is_empty() => {
            let start = rng.usize(0..input.len());
            let end = rng.usize(start..=input.len().min(start + 64));
            input.drain(start..end);
        }
        4 => input.truncate(rng.usize(0..=input.len())),
        5 if !input.is_empty() => {
            // Repeat a piece: lengths, nesting and counts beyond what the seed has.
            let start = rng.usize(0..input.len());
            let end = rng.usize(start..=input.len().min(start + 256));
            let piece = input[start..end].to_vec();
            for _ in 0..rng.usize(1..8) {
                input.splice(start..start, piece.iter().copied());
            }
        }
        _ if !other.is_empty() => {
            // Splice in a part of another seed.
            let start = rng.usize(0..other.len());
            let end = rng.usize(start..=other.len());
            let at = rng.usize(0..=input.len());
            input.splice(at..at, other[start..end].iter().copied());
        }
        _ => input.push(rng.u8(..)),
    }
    input.truncate(MAX_LEN);
}

/// Runs `run` on every seed of `target` and on mutations of them; fails naming the input.
fn smoke(target: &str, run: fn(&[u8])) {
    let seeds = seeds(target);
    let mut failures = Vec::new();
    let mut attempt = |label: String, input: &[u8]| {
        if panic::catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
            let dir = fuzz_dir()
                .join("../../target/fuzz-smoke-failures")
                .join(target);
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(&label);
            let _ = std::fs::write(&file, input);
            failures.push(format!("{label} (saved as {})", file.display()));
        }
    };
    for (name, seed) in &seeds {
        attempt(format!("seed-{name}"), seed);
    }
    // Seeded by the target's name: the same inputs on every run and machine.
    let mut rng =
        fastrand::Rng::with_seed(target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }));
    let started = Instant::now();
    let mut ran = 0;
    while ran < MUTATIONS && started.elapsed() < TIME_PER_TARGET {
        let (_, seed) = &seeds[rng.usize(0..seeds.len())];
        let (_, other) = &seeds[rng.usize(0..seeds.len())];
        let mut input = seed.clone();
        for _ in 0..rng.usize(1..5) {
            mutate(&mut rng, &mut input, other);
        }
        attempt(format!("mutation-{ran}"), &input);
        ran += 1;
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} seeds and {ran} mutations failed: {}",
        failures.len(),
        seeds.len(),
        failures.join(", ")
    );
    assert!(ran > 0, "{target}: no mutation ran");
}

#[test]
fn jwks_documents_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("jwks_document", targets::jwks_document::run);
}

#[test]
fn jwk_members_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("jwk_members", targets::jwk_members::run);
}

#[test]
fn spkis_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("spki_der", targets::spki_der::run);
}

#[test]
fn uploaded_certificates_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("certificate_pem", targets::certificate_pem::run);
}

#[test]
fn kms_answers_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("kms_answers", targets::kms_answers::run);
}

#[test]
fn sts_answers_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("sts_answers", targets::sts_answers::run);
}

#[test]
fn signing_configurations_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("signing_config_json", targets::signing_config_json::run);
}

#[test]
fn signing_policies_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke("signing_policy_json", targets::signing_policy_json::run);
}

#[test]
fn public_key_cache_options_from_the_seeds_and_their_mutations_keep_the_targets_properties() {
    smoke(
        "public_key_cache_options_json",
        targets::public_key_cache_options_json::run,
    );
}

#[test]
fn every_fuzz_target_has_a_smoke_test_here() {
    let listed = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_smoke.rs"))
            .unwrap();
    let mut lines = listed.lines();
    let mut targets = 0;
    while let Some(line) = lines.next() {
        if line.trim() != "[[bin]]" {
            continue;
        }
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("name = \""))
            .and_then(|r| r.strip_suffix('"'))
            .expect("a [[bin]] starts with its name");
        targets += 1;
        assert!(
            source.contains(&format!("targets::{name}::run")),
            "the fuzz target {name} has no smoke test in rust/core/tests/fuzz_smoke.rs"
        );
    }
    assert_eq!(targets, 9, "fuzz targets listed in rust/fuzz/Cargo.toml");
}
