//! JWKS downloads against loopback servers: the happy path, the limits, and the failures Java
//! must be able to tell apart.

use std::time::Duration;

use keycloak_aws_kms_core::public_keys::addresses::AddressPolicy;
use keycloak_aws_kms_core::public_keys::fetch::{FetchPolicy, JwksClient};
use keycloak_aws_kms_core::public_keys::jwks::KeyUse;
use keycloak_aws_kms_core::ErrorKind;

use super::support::{closed_port_url, http_response, serve_once, serve_once_tls, Script};

/// One EC P-256 key, as an identity provider would publish it.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"idp-1","use":"sig","alg":"ES256",
    "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn client(policy: FetchPolicy) -> JwksClient {
    JwksClient::new(policy).unwrap()
}

fn short_timeouts() -> FetchPolicy {
    FetchPolicy {
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_millis(1500),
        ..FetchPolicy::default()
    }
}

#[test]
fn a_jwks_served_over_http_is_downloaded_and_parsed() {
    let (base, server) = serve_once(Script::Respond(http_response(
        "200 OK",
        &[("Content-Type", "application/json")],
        JWKS.as_bytes(),
    )));
    let keys = client(short_timeouts())
        .fetch(
            &format!("{base}/realms/x/protocol/openid-connect/certs"),
            KeyUse::Sig,
        )
        .unwrap();
    server.join().unwrap();
    assert_eq!(keys.kids(), [Some("idp-1")]);
}

#[test]
fn a_redirect_is_refused_and_named_not_followed() {
    let (base, server) = serve_once(Script::Respond(http_response(
        "302 Found",
        &[("Location", "http://127.0.0.1:1/elsewhere")],
        b"",
    )));
    let error = client(short_timeouts())
        .fetch(&format!("{base}/jwks"), KeyUse::Sig)
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.kind(), ErrorKind::JwksFetchFailed);
    assert!(error.message().contains("302"), "{error}");
    assert!(error.message().contains("redirect"), "{error}");
}

#[test]
fn an_error_status_fails_the_download_and_names_the_status() {
    let (base, server) = serve_once(Script::Respond(http_response(
        "404 Not Found",
        &[],
        b"no such realm",
    )));
    let error = client(short_timeouts())
        .fetch(&format!("{base}/jwks"), KeyUse::Sig)
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.kind(), ErrorKind::JwksFetchFailed);
    assert!(error.message().contains("HTTP 404"), "{error}");
}

#[test]
fn a_response_announced_larger_than_the_cap_is_refused() {
    let body = vec![b' '; 2048];
    let (base, server) = serve_once(Script::Respond(http_response("200 OK", &[], &body)));
    let error = client(FetchPolicy {
        max_response_bytes: 1024,
        ..short_timeouts()
    })
    .fetch(&format!("{base}/jwks"), KeyUse::Sig)
    .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.kind(), ErrorKind::JwksFetchFailed);
    assert!(error.message().contains("1024 bytes"), "{error}");
}

#[test]
fn a_response_without_a_length_is_cut_off_at_the_cap() {
    let (base, server) = serve_once(Script::Stream {
        head: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec(),
        body_bytes: 64 * 1024 * 1024,
    });
    let error = client(FetchPolicy {
        max_response_bytes: 100_000,
        ..short_timeouts()
    })
    .fetch(&format!("{base}/jwks"), KeyUse::Sig)
    .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.kind(), ErrorKind::JwksFetchFailed);
    assert!(error.message().contains("larger than"), "{error}");
}

#[test]
fn a_server_that_never_answers_fails_with_a_timeout() {
    let (base, server) = serve_once(Script::Stall(Duration::from_secs(3)));
    let error = client(FetchPolicy {
        total_timeout: Duration::from_millis(300),
        ..short_timeouts()
    })
    .fetch(&format!("{base}/jwks"), KeyUse::Sig)
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(error.is_transient());
    server.join().unwrap();
}

#[test]
fn a_document_that_is_not_json_is_invalid() {
    let (base, server) = serve_once(Script::Respond(http_response(
        "200 OK",
        &[("Content-Type", "text/html")],
        b"<html><body>Login</body></html>",
    )));
    let error = client(short_timeouts())
        .fetch(&format!("{base}/jwks"), KeyUse::Sig)
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.kind(), ErrorKind::JwksInvalid);
}

#[test]
fn a_refused_connection_is_a_network_failure() {
    let error = client(short_timeouts())
        .fetch(&closed_port_url(), KeyUse::Sig)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Network);
}

#[test]
fn urls_that_are_not_http_are_refused_before_any_connection() {
    for url in ["file:///etc/passwd", "ftp://example.com/jwks", "not a url"] {
        let error = client(short_timeouts())
            .fetch(url, KeyUse::Sig)
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{url}");
    }
}

#[test]
fn messages_do_not_repeat_credentials_or_query_strings_from_the_url() {
    let (base, server) = serve_once(Script::Respond(http_response(
        "500 Internal Server Error",
        &[],
        b"",
    )));
    let url = base.replace("http://", "http://user:s3cret@") + "/jwks?token=t0ps3cret";
    let error = client(short_timeouts())
        .fetch(&url, KeyUse::Sig)
        .unwrap_err();
    server.join().unwrap();
    assert!(!error.message().contains("s3cret"), "{error}");
    assert!(!error.message().contains("t0ps3cret"), "{error}");
    assert!(error.message().contains("/jwks"), "{error}");
}

/// A CA and a server certificate for 127.0.0.1 that it issued.
struct Pki {
    ca_der: Vec<u8>,
    server_der: Vec<u8>,
    server_key_der: Vec<u8>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut server_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    server_params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    Pki {
        ca_der: ca.der().to_vec(),
        server_der: server.der().to_vec(),
        server_key_der: server_key.serialize_der(),
    }
}

#[test]
fn https_trusts_the_certificates_handed_over_and_nothing_else() {
    let pki = pki();
    let respond = || Script::Respond(http_response("200 OK", &[], JWKS.as_bytes()));

    let (base, server) = serve_once_tls(
        vec![pki.server_der.clone()],
        pki.server_key_der.clone(),
        respond(),
    );
    let trusted = client(FetchPolicy {
        trusted_certificates: vec![pki.ca_der.clone()],
        ..short_timeouts()
    });
    let keys = trusted.fetch(&format!("{base}/jwks"), KeyUse::Sig).unwrap();
    server.join().unwrap();
    assert_eq!(keys.kids(), [Some("idp-1")]);

    // Without the CA (only another one) the handshake fails, and it is not a network blip.
    let (base, server) = serve_once_tls(
        vec![pki.server_der.clone()],
        pki.server_key_der.clone(),
        respond(),
    );
    let untrusted = client(FetchPolicy {
        trusted_certificates: vec![self::pki().ca_der],
        ..short_timeouts()
    });
    let error = untrusted
        .fetch(&format!("{base}/jwks"), KeyUse::Sig)
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(error.kind(), ErrorKind::JwksFetchFailed, "{error}");
    assert!(error.message().contains("TLS"), "{error}");
}

/// A listener nobody should reach: how many connections it accepted, without blocking.
struct Untouched(std::net::TcpListener);

impl Untouched {
    fn bind() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Untouched(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn accepted(&self) -> usize {
        let mut count = 0;
        while self.0.accept().is_ok() {
            count += 1;
        }
        count
    }
}

fn denying(networks: &str) -> FetchPolicy {
    FetchPolicy {
        addresses: AddressPolicy {
            deny_private_networks: false,
            denied: AddressPolicy::parse_denied(networks).unwrap(),
        },
        ..short_timeouts()
    }
}

#[test]
fn a_url_whose_address_is_denied_is_refused_without_connecting() {
    let server = Untouched::bind();
    let error = client(denying("127.0.0.1/32"))
        .fetch(
            &format!("http://127.0.0.1:{}/jwks", server.port()),
            KeyUse::Sig,
        )
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::JwksFetchFailed);
    assert_eq!(
        error.message(),
        format!(
            "The JWKS URL http://127.0.0.1:{}/jwks resolves to 127.0.0.1, in 127.0.0.1/32; \
             downloads there are refused (option --spi-public-key-storage--native-lru--denied-addresses)",
            server.port()
        )
    );
    assert_eq!(server.accepted(), 0, "a connection was made");
}

#[test]
fn a_name_that_resolves_only_to_denied_addresses_is_refused_without_connecting() {
    let server = Untouched::bind();
    let error = client(denying("127.0.0.0/8, ::1"))
        .fetch(
            &format!("http://localhost:{}/jwks", server.port()),
            KeyUse::Sig,
        )
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::JwksFetchFailed, "{error}");
    assert!(
        error.message().starts_with(&format!(
            "The JWKS URL http://localhost:{}/jwks resolves to ",
            server.port()
        )),
        "{error}"
    );
    assert!(error.message().contains("denied-addresses"), "{error}");
    assert_eq!(server.accepted(), 0, "a connection was made");
}

#[test]
fn link_local_and_metadata_urls_are_refused_by_default_in_every_spelling() {
    for (url, address) in [
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("http://0xa9fea9fe/latest/", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
        ("http://[fe80::1]:8080/jwks", "fe80::1"),
        ("https://[fd00:ec2::254]/latest/", "fd00:ec2::254"),
    ] {
        let started = std::time::Instant::now();
        let error = client(short_timeouts())
            .fetch(url, KeyUse::Sig)
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::JwksFetchFailed, "{url}: {error}");
        assert!(
            error
                .message()
                .contains(&format!("resolves to {address}, a ")),
            "{url}: {error}"
        );
        assert!(
            error.message().contains("refused (always"),
            "{url}: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{url} waited"
        );
    }
}

#[test]
fn deny_private_networks_refuses_loopback() {
    let server = Untouched::bind();
    let error = client(FetchPolicy {
        addresses: AddressPolicy {
            deny_private_networks: true,
            denied: Vec::new(),
        },
        ..short_timeouts()
    })
    .fetch(
        &format!("http://127.0.0.1:{}/jwks", server.port()),
        KeyUse::Sig,
    )
    .unwrap_err();
    assert!(
        error
            .message()
            .ends_with("a loopback address; downloads there are refused (option --spi-public-key-storage--native-lru--deny-private-networks)"),
        "{error}"
    );
    assert_eq!(server.accepted(), 0);
}

#[test]
fn an_allowed_name_still_downloads() {
    let (base, server) = serve_once(Script::Respond(http_response(
        "200 OK",
        &[],
        JWKS.as_bytes(),
    )));
    let port = base.rsplit(':').next().unwrap();
    let keys = client(denying("127.0.0.77/32"))
        .fetch(&format!("http://localhost:{port}/jwks"), KeyUse::Sig)
        .unwrap();
    server.join().unwrap();
    assert_eq!(keys.kids(), [Some("idp-1")]);
}
