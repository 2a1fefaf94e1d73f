//! A long, bounded run of what the library does all day, for a leak checker: registering,
//! signing with and releasing KMS keys against the emulator, JWKS downloads, and a public key
//! cache churning through more sources than it holds; then the I/O runtime stopped. Ignored in
//! the normal runs (it is slow under valgrind, and stops the process's runtime); run it alone
//! under valgrind or LeakSanitizer (RELIABILITY.md, "Time and lifetime"):
//!
//! ```sh
//! valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 \
//!     target/release/deps/signing-<hash> --ignored --exact \
//!     signing::lifetime::a_long_run_of_signing_downloads_and_cache_churn_then_a_stop --test-threads=1
//! ```
//!
//! `LIFETIME_ROUNDS` sets the number of rounds (default 40).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use keycloak_aws_kms_core::public_keys::{fetch, CachePolicy, KeyCache, KeyUse, Loaded};
use keycloak_aws_kms_core::runtime;

use keycloak_aws_kms_core::signing::config::ProviderConfig;
use keycloak_aws_kms_core::signing::validation;
use keycloak_aws_kms_core::ErrorKind;

use super::against_emulator::Fixture;

/// `Fixture::saved`, trying again when validation misses its deadline (a slow leak checker).
fn saved_with_retries(fixture: &Fixture, alias: &str, algorithm: &str) -> serde_json::Value {
    let mut config = fixture.config(alias, algorithm, kms_emulator::DEFAULT_SECRET_ACCESS_KEY);
    let parsed = ProviderConfig::from_json(&config.to_string()).expect("valid config");
    let mut attempts = 0;
    let description = loop {
        attempts += 1;
        match validation::describe_signing_key(&parsed) {
            Ok(description) => break description,
            Err(error) if error.kind() == ErrorKind::Timeout && attempts < 10 => {}
            Err(error) => panic!("{alias} does not validate: {error:?}"),
        }
    };
    config["keyArn"] = description.key_arn.clone().into();
    config["keySpec"] = description.key_spec.clone().into();
    config["publicKey"] = description.public_key.clone().into();
    config["kid"] = description.kid.clone().into();
    config
}

/// A JWKS with one EC key (the RFC 7517 example).
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"leak-1","use":"sig","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

/// Answers every connection with the JWKS, until the process ends.
fn jwks_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/jwks", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{JWKS}",
                JWKS.len()
            );
        }
    });
    url
}

#[test]
#[ignore = "a leak checker's workload: run alone (see the module comment)"]
fn a_long_run_of_signing_downloads_and_cache_churn_then_a_stop() {
    let rounds: usize = std::env::var("LIFETIME_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(40);
    let fixture = Fixture::start();
    let url = jwks_server();
    let p256 = saved_with_retries(&fixture, "alias/p256", "ES256");
    let rsa = saved_with_retries(&fixture, "alias/rsa", "RS256");
    let cache: KeyCache<Arc<Vec<u8>>> = KeyCache::new(CachePolicy {
        min_time_between_requests: Duration::ZERO,
        max_entries: NonZeroUsize::new(8).expect("non-zero"),
        ..CachePolicy::default()
    });
    let mut signatures = 0;
    for round in 0..rounds {
        // Keys registered, used and released, as components come, sign and go.
        for (component, config, jca) in [
            (format!("p256-{round}"), &p256, "SHA256withECDSA"),
            (format!("rsa-{round}"), &rsa, "SHA256withRSA"),
        ] {
            let handle = fixture
                .keys
                .register(&component, &config.to_string())
                .expect("registers");
            for message in 0..3 {
                fixture
                    .keys
                    .sign(
                        handle,
                        jca,
                        format!("round {round} message {message}").as_bytes(),
                    )
                    .expect("signs");
                signatures += 1;
            }
            fixture.keys.release(&component);
        }
        // A download, parsed.
        match fetch::fetch_jwks(&url, KeyUse::Sig) {
            Ok(keys) => assert!(keys.to_json().contains("leak-1")),
            Err(error) => assert_eq!(error.kind(), ErrorKind::Timeout, "{error:?}"),
        }
        // 24 sources through an LRU of 8: loads, evictions, hits, a failure, a clear.
        for source in 0..24 {
            let name = format!("realm::client-{source}");
            cache
                .reload(&name, || {
                    Ok(Loaded {
                        value: Arc::new(vec![round as u8; 512]),
                        expires_at_epoch_millis: None,
                    })
                })
                .expect("loads");
            let _ = cache.get(&name);
        }
        let _ = cache.reload("realm::failing", || {
            Err(keycloak_aws_kms_core::Error::new(
                keycloak_aws_kms_core::ErrorKind::Internal,
                "down",
            ))
        });
        if round % 10 == 9 {
            cache.evict_prefix("realm::");
        }
    }
    assert_eq!(fixture.keys.stats().keys, 0, "every key released");
    assert!(cache.stats().entries <= 8);
    cache.clear();
    assert!(signatures > 0, "some signatures within their deadline");
    // What JNI_OnUnload does last.
    assert!(runtime::stop(Duration::from_secs(2)));
}
