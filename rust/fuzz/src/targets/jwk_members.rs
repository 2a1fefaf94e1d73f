//! The members of one JWK, binary members given raw: the target base64url-encodes `n`, `e`, `x`,
//! `y` (and base64-encodes each `x5c` certificate), so the fuzzer works on the key bytes rather
//! than on their text. Input: records `[name length][name][value length: u16 BE][value]`; a name
//! starting with `~` puts the value in as text, unencoded (a bad encoding); `x5c` records append.

use base64::Engine as _;
use keycloak_aws_kms_core::public_keys::jwks::{parse_jwks_with, KeyLimits};
use keycloak_aws_kms_core::public_keys::KeyUse;
use serde_json::{Map, Value};

fn records(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((&name_len, rest)) = data.split_first() {
        let name_len = usize::from(name_len);
        if rest.len() < name_len + 2 {
            break;
        }
        let name = String::from_utf8_lossy(&rest[..name_len]).into_owned();
        let value_len = usize::from(u16::from_be_bytes([rest[name_len], rest[name_len + 1]]));
        let rest = &rest[name_len + 2..];
        let value_len = value_len.min(rest.len());
        out.push((name, rest[..value_len].to_vec()));
        data = &rest[value_len..];
    }
    out
}

/// One input of the `jwk_members` target.
pub fn run(data: &[u8]) {
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut jwk = Map::new();
    let mut x5c = Vec::new();
    for (name, value) in records(data) {
        if let Some(raw) = name.strip_prefix('~') {
            let text = Value::String(String::from_utf8_lossy(&value).into_owned());
            if raw == "x5c" {
                x5c.push(text);
            } else {
                jwk.insert(raw.to_owned(), text);
            }
            continue;
        }
        match name.as_str() {
            "n" | "e" | "x" | "y" | "d" | "k" => {
                jwk.insert(name, Value::String(b64url.encode(&value)));
            }
            "x5c" => x5c.push(Value::String(b64.encode(&value))),
            // Any other member: its value as JSON if it is JSON, else as a string.
            _ => {
                let parsed = serde_json::from_slice(&value).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&value).into_owned())
                });
                jwk.insert(name, parsed);
            }
        }
    }
    if !x5c.is_empty() {
        jwk.insert("x5c".to_owned(), Value::Array(x5c));
    }
    let document = serde_json::json!({ "keys": [Value::Object(jwk)] }).to_string();
    for requested_use in [KeyUse::Sig, KeyUse::Enc] {
        for min_rsa_bits in [0, 2048] {
            let limits = KeyLimits { min_rsa_bits };
            match parse_jwks_with(document.as_bytes(), requested_use, &limits) {
                Ok(keys) => {
                    assert_eq!(
                        keys.keys.len() + keys.skipped.len(),
                        1,
                        "one key in, one out"
                    );
                    for skipped in &keys.skipped {
                        assert!(
                            !skipped.reason.chars().any(char::is_control),
                            "a reason with a control character: {:?}",
                            skipped.reason
                        );
                    }
                }
                Err(error) => panic!("a document with one key is refused whole: {error}"),
            }
        }
    }
}
