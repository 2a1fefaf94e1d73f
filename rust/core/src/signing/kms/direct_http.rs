//! The HTTP client of KMS calls that reach KMS directly (no proxy): HTTP/1.1 over a pool of
//! kept-alive connections, each exchange one blocking write and one blocking read on the thread
//! that makes the call: a Keycloak thread waiting for its token's signature.
//!
//! Why not the SDK's hyper client: its connections are driven by the I/O runtime's threads, so
//! every `Sign` crossed threads twice (the request to a runtime worker, the answer back), each
//! crossing a futex wake-up of a sleeping thread: about a third of the CPU of a signature and
//! all of it on the token's critical path (BENCHMARKS.md, sign path). The AWS SDK for Java's
//! Apache client does the exchange on the calling thread; so does this. The SDK keeps everything
//! above the wire: endpoints, SigV4, error mapping; retries stay ours (`calls::call`).
//!
//! What it guarantees:
//! - Bounded: connecting (DNS included) by the connect timeout, the whole exchange by the
//!   attempt timeout and by the logical call's deadline ([`CALL_DEADLINE`]), through socket
//!   timeouts re-armed before every read and write (a blocking exchange cannot be cancelled by
//!   the SDK's async timers).
//! - TLS for `https` endpoints: rustls on aws-lc-rs with the platform's trust roots, as the SDK's
//!   default client; only HTTP/1.1 is offered (ALPN).
//! - A connection serves one exchange at a time and goes back to the pool only after a complete,
//!   well-framed answer that allows reuse; one found closed or idle too long is never reused.
//!   A request written to a pooled connection the server had closed (no answer byte read) is
//!   sent once more on a new connection: every KMS operation we make is safe to repeat.
//! - Never used behind a proxy: with a proxy variable in the environment the SDK's own client
//!   (CONNECT tunnels, `NO_PROXY`) serves the calls ([`proxy_configured`]).
//! - Errors name the endpoint's failure, never the request (its headers carry the SigV4
//!   signature and, for temporary credentials, the session token).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

tokio::task_local! {
    /// The deadline of the logical KMS call an attempt belongs to (`calls::call` sets it): an
    /// attempt never outlives its call, whatever the attempt timeout.
    pub(crate) static CALL_DEADLINE: Instant;
}

/// Idle connections older than this are closed instead of reused: well under the idle timeouts
/// of AWS's endpoints (60 s and more), so the server rarely closes one under a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per endpoint; more concurrent calls than this open and close the rest.
const MAX_IDLE_PER_ENDPOINT: usize = 512;
/// Limits on an answer: KMS's are a few hundred bytes of JSON.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// Whether the environment names a proxy (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`, either
/// case), in which case KMS calls keep the SDK's default client, which routes them through it.
pub(crate) use crate::proxy_environment::proxy_configured;

/// The SDK-facing client: one pool of connections, shared by every connector the SDK asks for.
#[derive(Debug, Clone)]
pub(crate) struct DirectHttpClient {
    shared: Arc<Shared>,
}

struct Shared {
    /// Bound on one exchange (the SDK's operation attempt timeout, which cannot interrupt us).
    attempt_timeout: Duration,
    /// Connect timeout when the SDK's settings give none.
    connect_timeout: Duration,
    /// [`IDLE_TIMEOUT`], shorter in tests.
    idle_timeout: Duration,
    /// `None`: the platform's roots ([`PLATFORM_TLS`]); tests give their own.
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<HashMap<Endpoint, Vec<IdleConnection>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("attempt_timeout", &self.attempt_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The TLS client configuration of every client trusting the platform's roots, built on the
/// first `https` connection (loading the roots reads files; once per process, as the SDK does).
static PLATFORM_TLS: LazyLock<Result<Arc<rustls::ClientConfig>, String>> =
    LazyLock::new(platform_tls_config);

impl Shared {
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, ConnectorError> {
        match &self.tls {
            Some(config) => Ok(Arc::clone(config)),
            None => PLATFORM_TLS
                .as_ref()
                .map(Arc::clone)
                .map_err(|message| ConnectorError::user(message.clone().into())),
        }
    }
}

/// The TLS client configuration the SDK's default client has: aws-lc-rs, TLS 1.2 and 1.3, the
/// platform's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), session resumption.
fn platform_tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (valid, _invalid) = roots.add_parsable_certificates(loaded.certs);
    if valid == 0 {
        return Err(format!(
            "No trusted root certificates found on this machine to verify KMS's TLS certificate \
             ({} errors loading them)",
            loaded.errors.len()
        ));
    }
    tls_config(roots)
}

fn tls_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl DirectHttpClient {
    /// A client trusting the platform's roots for `https` endpoints.
    pub(crate) fn new(connect_timeout: Duration, attempt_timeout: Duration) -> DirectHttpClient {
        Self::with_tls(connect_timeout, attempt_timeout, None)
    }

    /// A client trusting only `roots` (tests).
    #[cfg(test)]
    fn trusting(roots: rustls::RootCertStore, timeout: Duration) -> DirectHttpClient {
        let config = tls_config(roots).expect("TLS configuration");
        Self::with_tls(timeout, timeout, Some(config))
    }

    fn with_tls(
        connect_timeout: Duration,
        attempt_timeout: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        DirectHttpClient {
            shared: Arc::new(Shared {
                attempt_timeout,
                connect_timeout,
                idle_timeout: IDLE_TIMEOUT,
                tls,
                idle: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This client with idle connections closed after `idle_timeout` (tests).
    #[cfg(test)]
    fn idle_for(mut self, idle_timeout: Duration) -> DirectHttpClient {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.idle_timeout = idle_timeout;
        }
        self
    }

    pub(crate) fn into_shared(self) -> SharedHttpClient {
        SharedHttpClient::new(self)
    }

    /// Idle connections in the pool, all endpoints.
    #[cfg(test)]
    fn idle_connections(&self) -> usize {
        self.shared.lock_idle().values().map(Vec::len).sum()
    }
}

impl HttpClient for DirectHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(DirectConnector {
            shared: Arc::clone(&self.shared),
            connect_timeout: settings
                .connect_timeout()
                .unwrap_or(self.shared.connect_timeout),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct DirectConnector {
    shared: Arc<Shared>,
    connect_timeout: Duration,
    /// The longest wait for the next bytes of the answer, when the SDK's settings give one.
    read_timeout: Option<Duration>,
}

impl HttpConnector for DirectConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        // The exchange happens here, before the future is returned: the caller's thread does the
        // I/O (module docs); the future is already complete.
        HttpConnectorFuture::ready(self.exchange(&request))
    }
}

/// Scheme, host and port: what a pooled connection can serve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
}

struct IdleConnection {
    stream: Stream,
    since: Instant,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(stream) => stream.get_ref(),
        }
    }

    /// Whether an idle connection can carry a request: open, with nothing unread (an idle
    /// HTTP/1.1 connection receives nothing but its closing, a FIN or a TLS close_notify).
    fn is_reusable(&self) -> bool {
        let socket = self.socket();
        if socket.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0_u8; 1];
        let quiet =
            matches!(socket.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        socket.set_nonblocking(false).is_ok() && quiet
    }
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buffer),
            Stream::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buffer),
            Stream::Tls(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(stream) => stream.flush(),
        }
    }
}

/// Why an exchange failed, and whether its request may have reached the server.
enum Failure {
    /// The request was written to a pooled connection and the connection turned out closed
    /// before a byte of the answer arrived: worth one more try on a new connection.
    StaleConnection(io::Error),
    Connector(ConnectorError),
}

impl DirectConnector {
    fn exchange(&self, request: &HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let mut deadline = Instant::now() + self.shared.attempt_timeout;
        if let Ok(call_deadline) = CALL_DEADLINE.try_with(|deadline| *deadline) {
            deadline = deadline.min(call_deadline);
        }
        let uri: http::Uri = request
            .uri()
            .parse()
            .map_err(|e| ConnectorError::user(format!("Invalid request URI: {e}").into()))?;
        let endpoint = endpoint_of(&uri)?;
        let bytes = serialize(request, &uri)?;
        if let Some(pooled) = self.shared.checkout(&endpoint) {
            match self.send_and_pool(&endpoint, pooled, &bytes, deadline) {
                Err(Failure::StaleConnection(_)) => {}
                Err(Failure::Connector(error)) => return Err(error),
                Ok(response) => return Ok(response),
            }
        }
        let fresh = self.connect(&endpoint, deadline)?;
        self.send_and_pool(&endpoint, fresh, &bytes, deadline)
            .map_err(|failure| match failure {
                Failure::StaleConnection(error) => io_error(error),
                Failure::Connector(error) => error,
            })
    }

    /// [`DirectConnector::send`], then the connection back to the pool if it may serve again.
    fn send_and_pool(
        &self,
        endpoint: &Endpoint,
        mut stream: Stream,
        request: &[u8],
        deadline: Instant,
    ) -> Result<HttpResponse, Failure> {
        let (response, reusable) = self.send(&mut stream, request, deadline)?;
        if reusable {
            self.shared.checkin(endpoint.clone(), stream);
        }
        Ok(response)
    }

    /// Writes the request and reads the answer; returns it and whether the connection may serve
    /// another request.
    fn send(
        &self,
        stream: &mut Stream,
        request: &[u8],
        deadline: Instant,
    ) -> Result<(HttpResponse, bool), Failure> {
        let socket = stream.socket();
        let left = time_left(deadline, None)
            .ok_or_else(|| Failure::Connector(no_answer_error("sending the request")))?;
        socket
            .set_write_timeout(Some(left))
            .map_err(|e| Failure::Connector(io_error(e)))?;
        if let Err(error) = stream.write_all(request).and_then(|()| stream.flush()) {
            return Err(match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    Failure::Connector(no_answer_error("sending the request"))
                }
                _ => Failure::StaleConnection(error),
            });
        }
        let mut reader = ResponseReader {
            stream,
            deadline,
            read_timeout: self.read_timeout,
            buffer: Vec::with_capacity(1024),
            consumed: 0,
            received_any: false,
        };
        reader.read_response()
    }

    fn connect(&self, endpoint: &Endpoint, deadline: Instant) -> Result<Stream, ConnectorError> {
        let connect_deadline = deadline.min(Instant::now() + self.connect_timeout);
        let addresses = resolve(&endpoint.host, endpoint.port, connect_deadline)?;
        let mut last_error = None;
        let mut socket = None;
        for address in addresses {
            let Some(remaining) = remaining(connect_deadline) else {
                break;
            };
            match TcpStream::connect_timeout(&address, remaining) {
                Ok(connected) => {
                    socket = Some(connected);
                    break;
                }
                Err(error) => last_error = Some(error),
            }
        }
        let socket = match (socket, last_error) {
            (Some(socket), _) => socket,
            (None, Some(error)) if error.kind() != io::ErrorKind::TimedOut => {
                return Err(io_error(error))
            }
            (None, _) => return Err(timeout_error("connecting")),
        };
        // Requests go out in one write; no reason to hold back its last segment.
        socket.set_nodelay(true).map_err(io_error)?;
        if !endpoint.tls {
            return Ok(Stream::Plain(socket));
        }
        let config = self.shared.tls_config()?;
        let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| ConnectorError::user(format!("Invalid TLS server name: {e}").into()))?;
        let mut connection = rustls::ClientConnection::new(config, name)
            .map_err(|e| ConnectorError::other(format!("TLS: {e}").into(), None))?;
        let mut socket = socket;
        while connection.is_handshaking() {
            let left = time_left(connect_deadline, None)
                .ok_or_else(|| timeout_error("the TLS handshake"))?;
            socket
                .set_read_timeout(Some(left))
                .and_then(|()| socket.set_write_timeout(Some(left)))
                .map_err(io_error)?;
            connection
                .complete_io(&mut socket)
                .map_err(|error| match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        timeout_error("the TLS handshake")
                    }
                    _ => io_error(error),
                })?;
        }
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
            connection, socket,
        ))))
    }
}

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, HashMap<Endpoint, Vec<IdleConnection>>> {
        // Each update is one push or pop: a poisoned map is still consistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection that can still serve; the others found closed or
    /// too old on the way are dropped (closed) outside the lock.
    fn checkout(&self, endpoint: &Endpoint) -> Option<Stream> {
        let mut expired = Vec::new();
        let found = loop {
            let candidate = self.lock_idle().get_mut(endpoint).and_then(Vec::pop);
            let Some(idle) = candidate else { break None };
            if idle.since.elapsed() < self.idle_timeout && idle.stream.is_reusable() {
                break Some(idle.stream);
            }
            expired.push(idle);
        };
        drop(expired);
        found
    }

    /// Pools a connection that served a complete answer. Connections idle too long are closed
    /// here too (the pool is ordered oldest first: pushes and pops happen at its end), so that a
    /// burst's surplus does not stay open once the load is over.
    fn checkin(&self, endpoint: Endpoint, stream: Stream) {
        let idle = IdleConnection {
            stream,
            since: Instant::now(),
        };
        let expired: Vec<IdleConnection> = {
            let mut pool = self.lock_idle();
            let connections = pool.entry(endpoint).or_default();
            let stale = connections
                .iter()
                .take_while(|old| old.since.elapsed() >= self.idle_timeout)
                .count();
            let expired = connections.drain(..stale).collect();
            if connections.len() < MAX_IDLE_PER_ENDPOINT {
                connections.push(idle);
            }
            expired
        };
        // Closed outside the lock.
        drop(expired);
    }
}

fn endpoint_of(uri: &http::Uri) -> Result<Endpoint, ConnectorError> {
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => {
            return Err(ConnectorError::user(
                format!("Unsupported URI scheme {other:?} (http or https)").into(),
            ))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| ConnectorError::user("The request URI has no host".into()))?;
    // An IPv6 literal comes bracketed; sockets and TLS names take it bare.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Endpoint { tls, host, port })
}

/// The request as HTTP/1.1 bytes. `Host` as hyper writes it (no default port), which is what
/// SigV4 signed; `Content-Length` from the body when the SDK did not set it.
fn serialize(request: &HttpRequest, uri: &http::Uri) -> Result<Vec<u8>, ConnectorError> {
    let body = request.body().bytes().ok_or_else(|| {
        ConnectorError::user("Streaming request bodies are not supported for KMS calls".into())
    })?;
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    let mut bytes = Vec::with_capacity(512 + body.len());
    bytes.extend_from_slice(request.method().as_bytes());
    bytes.push(b' ');
    bytes.extend_from_slice(target.as_bytes());
    bytes.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = request.headers();
    if !headers.contains_key("host") {
        let host = uri.host().unwrap_or_default();
        bytes.extend_from_slice(b"host: ");
        bytes.extend_from_slice(host.as_bytes());
        let default_port = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        if let Some(port) = uri.port_u16().filter(|port| *port != default_port) {
            bytes.extend_from_slice(format!(":{port}").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers.iter() {
        if value.contains(['\r', '\n']) || name.contains(['\r', '\n', ':']) {
            return Err(ConnectorError::user(
                format!("Invalid value of request header {name}").into(),
            ));
        }
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key("content-length") {
        bytes.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    Ok(bytes)
}

/// Reads one answer from a connection, under the exchange's deadline.
struct ResponseReader<'a> {
    stream: &'a mut Stream,
    deadline: Instant,
    read_timeout: Option<Duration>,
    /// What has been read and not yet handed out; `consumed` bytes of it are handed out.
    buffer: Vec<u8>,
    consumed: usize,
    /// Whether any byte of the answer has arrived (before that, a closed connection is stale).
    received_any: bool,
}

/// How the answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection (which therefore cannot be reused).
    UntilClose,
}

impl ResponseReader<'_> {
    fn read_response(&mut self) -> Result<(HttpResponse, bool), Failure> {
        loop {
            let (status, headers, framing, mut reusable) = self.read_head()?;
            // 1xx answers are interim (we send no `Expect`, but a server may): the real one follows.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let body = match framing {
                _ if status == 204 || status == 304 => Vec::new(),
                Framing::Length(length) => self.take(length)?,
                Framing::Chunked => self.read_chunked()?,
                Framing::UntilClose => {
                    reusable = false;
                    self.read_to_close()?
                }
            };
            // Bytes past the answer mean the framing is not understood: do not reuse.
            reusable &= self.consumed == self.buffer.len();
            let mut response = http::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            let response = response
                .body(SdkBody::from(body))
                .map_err(|e| protocol_error(&format!("invalid answer: {e}")))?;
            let response = HttpResponse::try_from(response)
                .map_err(|e| protocol_error(&format!("invalid answer: {e}")))?;
            return Ok((response, reusable));
        }
    }

    /// Status, headers, framing and whether the connection stays open after this answer.
    #[allow(clippy::type_complexity)]
    fn read_head(&mut self) -> Result<(u16, Vec<(String, Vec<u8>)>, Framing, bool), Failure> {
        loop {
            let unread = &self.buffer[self.consumed..];
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(unread) {
                Ok(httparse::Status::Complete(length)) => {
                    let status = parsed.code.unwrap_or(0);
                    let http11 = parsed.version == Some(1);
                    let mut framing = Framing::UntilClose;
                    let mut reusable = http11;
                    let mut headers = Vec::with_capacity(parsed.headers.len());
                    for header in parsed.headers.iter() {
                        let value = header.value;
                        if header.name.eq_ignore_ascii_case("content-length") {
                            let length = std::str::from_utf8(value)
                                .ok()
                                .and_then(|text| text.trim().parse::<usize>().ok())
                                .ok_or_else(|| protocol_error("an invalid Content-Length"))?;
                            if length > MAX_BODY_BYTES {
                                return Err(protocol_error("an answer too large"));
                            }
                            if !matches!(framing, Framing::Chunked) {
                                framing = Framing::Length(length);
                            }
                        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                            // Chunked is the only coding HTTP/1.1 requires; it wins over a length.
                            if value.eq_ignore_ascii_case(b"chunked") {
                                framing = Framing::Chunked;
                            } else {
                                return Err(protocol_error("an unsupported Transfer-Encoding"));
                            }
                        } else if header.name.eq_ignore_ascii_case("connection") {
                            let value = String::from_utf8_lossy(value).to_ascii_lowercase();
                            if value.split(',').any(|token| token.trim() == "close") {
                                reusable = false;
                            }
                        }
                        headers.push((header.name.to_owned(), value.to_vec()));
                    }
                    self.consumed += length;
                    return Ok((status, headers, framing, reusable));
                }
                Ok(httparse::Status::Partial) => {
                    if unread.len() >= MAX_HEAD_BYTES {
                        return Err(protocol_error("an answer head too large"));
                    }
                    if self.fill()? == 0 {
                        // Closed before a byte of the answer: the server had dropped the
                        // connection (it was idle in our pool); after a byte, a cut answer.
                        return Err(if !self.received_any {
                            Failure::StaleConnection(io::ErrorKind::UnexpectedEof.into())
                        } else {
                            protocol_error("an answer cut short")
                        });
                    }
                }
                Err(e) => return Err(protocol_error(&format!("a malformed answer ({e})"))),
            }
        }
    }

    /// Reads more bytes into the buffer; returns how many (0: the server closed).
    fn fill(&mut self) -> Result<usize, Failure> {
        if self.consumed == self.buffer.len() {
            self.buffer.clear();
            self.consumed = 0;
        }
        let left = time_left(self.deadline, self.read_timeout)
            .ok_or_else(|| Failure::Connector(no_answer_error("waiting for the answer")))?;
        self.stream
            .socket()
            .set_read_timeout(Some(left))
            .map_err(|e| Failure::Connector(io_error(e)))?;
        let start = self.buffer.len();
        self.buffer.resize(start + 8192, 0);
        let outcome = self.stream.read(&mut self.buffer[start..]);
        let read = *outcome.as_ref().unwrap_or(&0);
        self.buffer.truncate(start + read);
        self.received_any |= read > 0;
        match outcome {
            Ok(read) => Ok(read),
            Err(error) => Err(match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    Failure::Connector(no_answer_error("waiting for the answer"))
                }
                // Reset, or closed without close_notify (rustls's UnexpectedEof), before a byte
                // of the answer arrived: the stale-connection case too.
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                    if !self.received_any =>
                {
                    Failure::StaleConnection(error)
                }
                _ => Failure::Connector(io_error(error)),
            }),
        }
    }

    /// Exactly `length` bytes.
    fn take(&mut self, length: usize) -> Result<Vec<u8>, Failure> {
        while self.buffer.len() - self.consumed < length {
            if self.fill()? == 0 {
                return Err(protocol_error("an answer cut short"));
            }
        }
        let bytes = self.buffer[self.consumed..self.consumed + length].to_vec();
        self.consumed += length;
        Ok(bytes)
    }

    /// One line (without its CRLF) of a chunked body.
    fn line(&mut self) -> Result<String, Failure> {
        loop {
            let unread = &self.buffer[self.consumed..];
            if let Some(end) = unread.windows(2).position(|pair| pair == b"\r\n") {
                let line = String::from_utf8_lossy(&unread[..end]).into_owned();
                self.consumed += end + 2;
                return Ok(line);
            }
            if unread.len() > MAX_HEAD_BYTES {
                return Err(protocol_error("a chunk line too long"));
            }
            if self.fill()? == 0 {
                return Err(protocol_error("an answer cut short"));
            }
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| protocol_error("an invalid chunk size"))?;
            if size == 0 {
                // Trailers, if any, up to the empty line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            if body.len().saturating_add(size) > MAX_BODY_BYTES {
                return Err(protocol_error("an answer too large"));
            }
            body.extend_from_slice(&self.take(size)?);
            if !self.line()?.is_empty() {
                return Err(protocol_error("a malformed chunk"));
            }
        }
    }

    fn read_to_close(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            if self.buffer.len() - self.consumed > MAX_BODY_BYTES {
                return Err(protocol_error("an answer too large"));
            }
            if self.fill()? == 0 {
                let body = self.buffer[self.consumed..].to_vec();
                self.consumed = self.buffer.len();
                return Ok(body);
            }
        }
    }
}

/// What a socket timeout should be now: the time left before `deadline`, at most `cap`; `None`
/// once it has passed.
fn time_left(deadline: Instant, cap: Option<Duration>) -> Option<Duration> {
    remaining(deadline).map(|left| cap.map_or(left, |cap| left.min(cap)))
}

/// Time left before `deadline`, if any (a zero timeout means "none" to sockets).
fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (left >= Duration::from_millis(1)).then_some(left)
}

/// The endpoint's addresses. An IP literal needs no lookup; a name is looked up on the I/O
/// runtime's blocking pool so that a hung resolver costs the call only its connect timeout.
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, ConnectorError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = {
        let host = host.to_owned();
        move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect)
        }
    };
    let (sender, receiver) = std::sync::mpsc::sync_channel::<io::Result<Vec<SocketAddr>>>(1);
    let job = move || {
        // The receiver may have given up (timeout): nothing to tell then.
        let _ = sender.send(lookup());
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(job)),
        Err(_) => drop(std::thread::spawn(job)),
    }
    let Some(left) = remaining(deadline) else {
        return Err(timeout_error("resolving the endpoint's name"));
    };
    match receiver.recv_timeout(left) {
        Ok(Ok(addresses)) if !addresses.is_empty() => Ok(addresses),
        Ok(Ok(_)) => Err(io_error(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ))),
        Ok(Err(error)) => Err(io_error(error)),
        Err(_) => Err(timeout_error("resolving the endpoint's name")),
    }
}

fn io_error(error: io::Error) -> ConnectorError {
    ConnectorError::io(error.into())
}

/// A timeout before the request could be sent: resolving, connecting, the TLS handshake.
fn timeout_error(during: &str) -> ConnectorError {
    ConnectorError::timeout(
        io::Error::new(io::ErrorKind::TimedOut, format!("timed out {during}")).into(),
    )
}

/// A connection was made but the exchange on it did not finish in time: what the SDK's own
/// client reports as its attempt timing out. Its own type, so that the error mapping can tell it
/// from a timeout connecting ([`is_no_answer_in_time`]).
#[derive(Debug)]
pub(crate) struct NoAnswerInTime {
    during: &'static str,
}

impl std::fmt::Display for NoAnswerInTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timed out {}", self.during)
    }
}

impl std::error::Error for NoAnswerInTime {}

fn no_answer_error(during: &'static str) -> ConnectorError {
    ConnectorError::timeout(Box::new(NoAnswerInTime { during }))
}

/// Whether a connector error is [`NoAnswerInTime`].
pub(crate) fn is_no_answer_in_time(error: &ConnectorError) -> bool {
    std::error::Error::source(error).is_some_and(|source| source.is::<NoAnswerInTime>())
}

/// An answer that does not parse as HTTP/1.1: an I/O failure to the SDK (retried like a broken
/// connection), never a response.
fn protocol_error(what: &str) -> Failure {
    Failure::Connector(ConnectorError::io(
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("KMS's endpoint sent {what}"),
        )
        .into(),
    ))
}

#[cfg(test)]
mod tests;

/// What other modules' tests need of this one.
#[cfg(test)]
pub(crate) mod tests_support {
    use aws_smithy_runtime_api::client::result::ConnectorError;

    /// The error an exchange gives when the answer does not come in time.
    pub(crate) fn no_answer_in_time() -> ConnectorError {
        super::no_answer_error("waiting for the answer")
    }
}
