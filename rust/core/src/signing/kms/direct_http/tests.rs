#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use super::*;

/// What a test server does with the `index`-th request of the `connection`-th connection:
/// the bytes to answer, or `None` to close the connection without answering.
type Script = Arc<dyn Fn(usize, usize, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    /// Every request received, as bytes.
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn serve(script: Script) -> Server {
    serve_with(script, None)
}

/// A loopback server answering by `script`, over TLS when given a server configuration.
fn serve_with(script: Script, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (counted, recorded) = (Arc::clone(&connections), Arc::clone(&requests));
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            let connection = counted.fetch_add(1, Ordering::SeqCst);
            let (script, recorded, tls) = (Arc::clone(&script), Arc::clone(&recorded), tls.clone());
            thread::spawn(move || match tls {
                Some(config) => {
                    let mut session = rustls::ServerConnection::new(config).unwrap();
                    let mut stream = rustls::Stream::new(&mut session, &mut tcp);
                    converse(&mut stream, connection, &script, &recorded);
                }
                None => converse(&mut tcp, connection, &script, &recorded),
            });
        }
    });
    Server {
        port,
        connections,
        requests,
    }
}

fn converse<S: Read + Write>(
    stream: &mut S,
    connection: usize,
    script: &Script,
    recorded: &Mutex<Vec<Vec<u8>>>,
) {
    for index in 0.. {
        let Some(request) = read_request(stream) else {
            return;
        };
        recorded.lock().unwrap().push(request.clone());
        match script(connection, index, &request) {
            Some(answer) => {
                if stream
                    .write_all(&answer)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
            None => return,
        }
    }
}

/// One request: its head and a body of its Content-Length; `None` once the client closed.
fn read_request<S: Read>(stream: &mut S) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut byte = [0_u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => bytes.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .map_or(0, |value| value.trim().parse::<usize>().unwrap());
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).ok()?;
    bytes.extend_from_slice(&body);
    Some(bytes)
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn always(answer: Vec<u8>) -> Script {
    Arc::new(move |_, _, _| Some(answer.clone()))
}

fn client(timeout: Duration) -> DirectHttpClient {
    DirectHttpClient::new(timeout, timeout)
}

fn connector(client: &DirectHttpClient) -> DirectConnector {
    DirectConnector {
        shared: Arc::clone(&client.shared),
        connect_timeout: client.shared.connect_timeout,
        read_timeout: None,
    }
}

fn post(url: &str, body: &str) -> HttpRequest {
    let mut request = HttpRequest::new(SdkBody::from(body.to_owned()));
    request.set_method("POST").unwrap();
    request.set_uri(url).unwrap();
    request
        .headers_mut()
        .insert("x-amz-target", "TrentService.Sign");
    request
}

fn body_of(response: &HttpResponse) -> String {
    String::from_utf8(response.body().bytes().unwrap().to_vec()).unwrap()
}

#[test]
fn consecutive_calls_share_one_kept_alive_connection() {
    let server = serve(always(ok(r#"{"Signature":"c2ln"}"#)));
    let client = client(Duration::from_secs(5));
    let connector = connector(&client);
    let url = format!("http://127.0.0.1:{}/", server.port);
    for _ in 0..3 {
        let response = connector.exchange(&post(&url, "{}")).unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(body_of(&response), r#"{"Signature":"c2ln"}"#);
        assert_eq!(
            response.headers().get("content-type"),
            Some("application/x-amz-json-1.1")
        );
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(client.idle_connections(), 1);
}

#[test]
fn a_connection_idle_longer_than_the_idle_timeout_is_closed_not_reused() {
    let server = serve(always(ok("{}")));
    let client = client(Duration::from_secs(5)).idle_for(Duration::from_millis(100));
    let connector = connector(&client);
    let url = format!("http://127.0.0.1:{}/", server.port);
    connector.exchange(&post(&url, "{}")).unwrap();
    connector.exchange(&post(&url, "{}")).unwrap();
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "reused while fresh"
    );
    thread::sleep(Duration::from_millis(250));
    connector.exchange(&post(&url, "{}")).unwrap();
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        2,
        "a new one after the idle time"
    );
    assert_eq!(client.idle_connections(), 1, "the expired one is gone");
}

#[test]
fn the_request_carries_the_host_sigv4_signed_and_its_body_length() {
    let server = serve(always(ok("{}")));
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{}/", server.port);
    connector(&client)
        .exchange(&post(&url, r#"{"KeyId":"k"}"#))
        .unwrap();
    let request = String::from_utf8(server.requests.lock().unwrap()[0].clone()).unwrap();
    assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", server.port)),
        "{request}"
    );
    assert!(request.contains("\r\ncontent-length: 13\r\n"), "{request}");
    assert!(request.contains("\r\nx-amz-target: TrentService.Sign\r\n"));
    assert!(request.ends_with("\r\n\r\n{\"KeyId\":\"k\"}"), "{request}");
}

#[test]
fn a_default_port_is_left_out_of_the_host_header_as_sigv4_signs_it() {
    let request = post("https://kms.eu-west-1.amazonaws.com:443/", "{}");
    let uri: http::Uri = request.uri().parse().unwrap();
    let bytes = String::from_utf8(serialize(&request, &uri).unwrap()).unwrap();
    assert!(
        bytes.contains("\r\nhost: kms.eu-west-1.amazonaws.com\r\n"),
        "{bytes}"
    );
}

#[test]
fn a_pooled_connection_the_server_closed_is_replaced_without_an_error() {
    // Every connection serves one request and is closed by the server after it.
    let server = serve(Arc::new(|_, index, _| (index == 0).then(|| ok("{}"))));
    let client = client(Duration::from_secs(5));
    let connector = connector(&client);
    let url = format!("http://127.0.0.1:{}/", server.port);
    for _ in 0..3 {
        connector.exchange(&post(&url, "{}")).unwrap();
        // Let the server's close arrive before the next checkout.
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);
}

#[test]
fn a_request_the_server_drops_on_a_kept_alive_connection_is_sent_again_on_a_new_one() {
    // The first connection answers its first request, then reads the second and closes without
    // answering (a server closing an idle connection as the request arrives).
    let server = serve(Arc::new(|connection, index, _| {
        (connection > 0 || index == 0).then(|| ok(r#"{"n":1}"#))
    }));
    let client = client(Duration::from_secs(5));
    let connector = connector(&client);
    let url = format!("http://127.0.0.1:{}/", server.port);
    connector.exchange(&post(&url, "{}")).unwrap();
    let second = connector.exchange(&post(&url, "{}")).unwrap();
    assert_eq!(body_of(&second), r#"{"n":1}"#);
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    assert_eq!(server.requests.lock().unwrap().len(), 3);
}

#[test]
fn a_fresh_connection_closed_without_an_answer_is_an_io_error_sent_once() {
    let server = serve(Arc::new(|_, _, _| None));
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{}/", server.port);
    let error = connector(&client).exchange(&post(&url, "{}")).unwrap_err();
    assert!(error.is_io(), "{error:?}");
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[test]
fn an_answer_that_never_comes_times_out_by_the_call_deadline() {
    let server = serve(Arc::new(|_, _, _| {
        thread::sleep(Duration::from_secs(10));
        None
    }));
    // An attempt timeout far away: the call's deadline is what ends the wait.
    let client = client(Duration::from_secs(30));
    let url = format!("http://127.0.0.1:{}/", server.port);
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcome = runtime.block_on(
        CALL_DEADLINE.scope(started + Duration::from_millis(300), async {
            connector(&client).exchange(&post(&url, "{}"))
        }),
    );
    let error = outcome.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(is_no_answer_in_time(&error), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.idle_connections(), 0);
}

#[test]
fn an_unreachable_endpoint_fails_at_once_as_an_io_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{port}/");
    let error = connector(&client).exchange(&post(&url, "{}")).unwrap_err();
    assert!(error.is_io(), "{error:?}");
}

#[test]
fn a_host_name_is_resolved_and_served() {
    let server = serve(always(ok("{}")));
    let client = client(Duration::from_secs(5));
    let url = format!("http://localhost:{}/", server.port);
    let response = connector(&client).exchange(&post(&url, "{}"));
    // `localhost` may resolve to ::1 first where nothing listens: the next address serves.
    assert_eq!(response.unwrap().status().as_u16(), 200);
}

#[test]
fn chunked_answers_are_read_whole_and_the_connection_kept() {
    let answer = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n\
        5\r\n{\"__t\r\nf;ext=1\r\nype\":\"Validatio\r\n9\r\nnExcepti\"\r\n0\r\n\r\n"
        .to_vec();
    let server = serve(always(answer));
    let client = client(Duration::from_secs(5));
    let connector = connector(&client);
    let url = format!("http://127.0.0.1:{}/", server.port);
    for _ in 0..2 {
        let response = connector.exchange(&post(&url, "{}")).unwrap();
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(body_of(&response), r#"{"__type":"ValidationExcepti""#);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn an_answer_with_connection_close_is_not_pooled() {
    let answer =
        b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"
            .to_vec();
    let server = serve(always(answer));
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{}/", server.port);
    let response = connector(&client).exchange(&post(&url, "{}")).unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(client.idle_connections(), 0);
}

/// A server that answers one request with `answer` and closes the connection.
fn answer_once_and_close(answer: &'static [u8]) -> u16 {
    let closing = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closing.local_addr().unwrap().port();
    thread::spawn(move || {
        let (mut tcp, _) = closing.accept().unwrap();
        read_request(&mut tcp);
        tcp.write_all(answer).unwrap();
        // Dropping the socket closes it.
    });
    port
}

#[test]
fn an_answer_delimited_by_the_close_is_read_to_the_end_and_not_pooled() {
    let port = answer_once_and_close(b"HTTP/1.1 200 OK\r\n\r\n{\"a\":1}");
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{port}/");
    let response = connector(&client).exchange(&post(&url, "{}")).unwrap();
    assert_eq!(body_of(&response), r#"{"a":1}"#);
    assert_eq!(client.idle_connections(), 0);
}

#[test]
fn an_answer_cut_short_by_the_close_is_an_io_error() {
    let port = answer_once_and_close(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}");
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{port}/");
    let error = connector(&client).exchange(&post(&url, "{}")).unwrap_err();
    assert!(error.is_io(), "{error:?}");
    assert_eq!(client.idle_connections(), 0);
}

#[test]
fn malformed_or_oversized_answers_are_io_errors_and_close_the_connection() {
    let oversized = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
        MAX_BODY_BYTES + 1
    );
    for answer in [
        b"HTTP/1.1 2x0 OK\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n".to_vec(),
        oversized.into_bytes(),
    ] {
        let shown = String::from_utf8_lossy(&answer).into_owned();
        let server = serve(Arc::new(move |_, index, _| {
            (index == 0).then(|| answer.clone())
        }));
        let client = client(Duration::from_secs(5));
        let url = format!("http://127.0.0.1:{}/", server.port);
        let error = connector(&client).exchange(&post(&url, "{}")).unwrap_err();
        assert!(error.is_io(), "{shown}: {error:?}");
        assert_eq!(client.idle_connections(), 0, "{shown}");
    }
}

#[test]
fn errors_never_carry_the_request_headers() {
    let server = serve(Arc::new(|_, _, _| Some(b"garbage\r\n\r\n".to_vec())));
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{}/", server.port);
    let mut request = post(&url, "{}");
    request
        .headers_mut()
        .insert("x-amz-security-token", "SESSION-TOKEN-SECRET");
    let error = connector(&client).exchange(&request).unwrap_err();
    let shown = format!("{error:?} {error}");
    assert!(!shown.contains("SESSION-TOKEN-SECRET"), "{shown}");
}

fn tls_server_config(names: Vec<String>) -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let certificate = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    (Arc::new(config), roots)
}

#[test]
fn https_endpoints_are_verified_and_their_connections_kept_alive() {
    let (config, roots) = tls_server_config(vec!["127.0.0.1".to_owned()]);
    let server = serve_with(always(ok(r#"{"tls":true}"#)), Some(config));
    let client = DirectHttpClient::trusting(roots, Duration::from_secs(5));
    let connector = connector(&client);
    let url = format!("https://127.0.0.1:{}/", server.port);
    for _ in 0..3 {
        let response = connector.exchange(&post(&url, "{}")).unwrap();
        assert_eq!(body_of(&response), r#"{"tls":true}"#);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn an_https_endpoint_with_an_untrusted_certificate_is_refused() {
    let (config, _) = tls_server_config(vec!["127.0.0.1".to_owned()]);
    let (_, other_roots) = tls_server_config(vec!["127.0.0.1".to_owned()]);
    let server = serve_with(always(ok("{}")), Some(config));
    let client = DirectHttpClient::trusting(other_roots, Duration::from_secs(5));
    let url = format!("https://127.0.0.1:{}/", server.port);
    let error = connector(&client).exchange(&post(&url, "{}")).unwrap_err();
    assert!(error.is_io(), "{error:?}");
    assert!(server.requests.lock().unwrap().is_empty(), "nothing sent");
}

#[test]
fn concurrent_callers_each_get_a_connection_of_their_own() {
    let server = serve(Arc::new(|_, _, _| {
        thread::sleep(Duration::from_millis(20));
        Some(ok("{}"))
    }));
    let client = client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{}/", server.port);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            thread::spawn(move || {
                for _ in 0..5 {
                    connector(&client).exchange(&post(&url, "{}")).unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    let connections = server.connections.load(Ordering::SeqCst);
    assert!((2..=8).contains(&connections), "{connections}");
    assert_eq!(client.idle_connections(), connections);
    assert_eq!(server.requests.lock().unwrap().len(), 40);
}
