//! Loopback servers that answer one connection with a scripted response, over plain TCP or TLS.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the server does with the one connection it accepts.
pub enum Script {
    /// Writes these bytes and closes.
    Respond(Vec<u8>),
    /// Writes the head, then keeps writing this many body bytes (without Content-Length).
    Stream { head: Vec<u8>, body_bytes: usize },
    /// Reads the request and says nothing for this long.
    Stall(Duration),
}

/// A plain HTTP response with an exact Content-Length.
pub fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut response = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("Connection: close\r\n\r\n");
    let mut bytes = response.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Starts a server on 127.0.0.1 for one connection; returns its base URL (`http://127.0.0.1:PORT`).
pub fn serve_once(script: Script) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        play(&mut stream, script);
    });
    (url, handle)
}

/// Starts a TLS server on 127.0.0.1 for one connection, presenting `chain` (leaf first) with
/// `key_der` (PKCS#8); returns `https://127.0.0.1:PORT`. A failed handshake just ends it.
pub fn serve_once_tls(
    chain: Vec<Vec<u8>>,
    key_der: Vec<u8>,
    script: Script,
) -> (String, JoinHandle<()>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut connection = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::Stream::new(&mut connection, &mut tcp);
        play(&mut tls, script);
    });
    (url, handle)
}

fn play<S: Read + Write>(stream: &mut S, script: Script) {
    if read_request_head(stream).is_none() {
        return; // the client gave up (e.g. a refused TLS handshake)
    }
    match script {
        Script::Respond(bytes) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
        }
        Script::Stream { head, body_bytes } => {
            let _ = stream.write_all(&head);
            let chunk = vec![b' '; 16 * 1024];
            let mut written = 0;
            while written < body_bytes {
                // The client hangs up once it has seen enough; that ends the loop.
                if stream.write_all(&chunk).is_err() {
                    return;
                }
                written += chunk.len();
            }
        }
        Script::Stall(duration) => thread::sleep(duration),
    }
}

fn read_request_head<S: Read>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A port nothing listens on (bound, then released).
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    drop(listener);
    url
}
