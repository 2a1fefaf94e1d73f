//! The KMS port: accepting connections (and refusing them while "down"), and the pipeline every
//! request runs through: route (KMS, or STS `AssumeRole`), count, fault, authenticate, authorize,
//! execute.

use std::fmt;
use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::faults::{Effect, Faults};
use crate::keys::KeyStore;
use crate::operations;
use crate::principal::Identities;
use crate::protocol::{success_response, ErrorKind, KmsError, Operation};
use crate::sigv4;
use crate::stats::Stats;
use crate::sts;

/// Largest request body accepted (KMS requests of the supported operations are a few KiB).
const MAX_BODY_LEN: usize = 1024 * 1024;
const TARGET_HEADER: &str = "x-amz-target";
/// How long a control request waits for the KMS port to go down or come back up.
const PORT_SWITCH_TIMEOUT: Duration = Duration::from_secs(5);
const REBIND_RETRY: Duration = Duration::from_millis(100);

/// Everything the KMS port serves from.
#[derive(Debug)]
pub struct Kms {
    pub store: KeyStore,
    pub identities: Identities,
    pub stats: Stats,
    pub faults: Faults,
    pub log_requests: bool,
    /// Test knob (`PUT /sts`): issued credentials last this many seconds whatever
    /// `DurationSeconds` asked for; 0 = as asked (AWS). Lets tests see credentials expire and
    /// be refreshed in seconds rather than AWS's 15-minute minimum.
    pub sts_session_seconds: std::sync::atomic::AtomicU64,
}

/// Binds a listening socket with `SO_REUSEADDR`, so the port can be bound again after `down`.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Whether the KMS port is listening, as reported by its accept loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortStatus {
    Listening,
    Closed,
    BindFailed(String),
}

/// The switch of the `down` fault: the control API asks for the KMS port up or down and waits
/// until the accept loop has done it.
#[derive(Debug)]
pub struct KmsPort {
    addr: SocketAddr,
    wanted_up: watch::Sender<bool>,
    status: watch::Sender<PortStatus>,
}

impl KmsPort {
    pub fn new(addr: SocketAddr) -> KmsPort {
        KmsPort {
            addr,
            wanted_up: watch::Sender::new(true),
            status: watch::Sender::new(PortStatus::Listening),
        }
    }

    /// Closes (`up == false`) or reopens the KMS port and waits until that has happened.
    pub async fn switch(&self, up: bool) -> Result<(), String> {
        let mut status = self.status.subscribe();
        self.wanted_up.send_replace(up);
        let reached = tokio::time::timeout(
            PORT_SWITCH_TIMEOUT,
            status.wait_for(|status| match status {
                PortStatus::Listening | PortStatus::BindFailed(_) => up,
                PortStatus::Closed => !up,
            }),
        )
        .await;
        match reached {
            Ok(Ok(status)) => match &*status {
                PortStatus::BindFailed(err) => {
                    Err(format!("could not listen on {} again: {err}", self.addr))
                }
                PortStatus::Listening | PortStatus::Closed => Ok(()),
            },
            Ok(Err(_)) => Err("the KMS port has shut down".to_owned()),
            Err(_) => Err(format!(
                "the KMS port did not switch {} within {PORT_SWITCH_TIMEOUT:?}",
                if up { "up" } else { "down" }
            )),
        }
    }
}

/// The accept loop of the KMS port. It closes the listener (and every open connection) when the
/// port is switched down, and binds the same address again when it is switched back up.
pub async fn serve_kms(
    kms: Arc<Kms>,
    port: Arc<KmsPort>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener = Some(listener);
    let mut wanted_up = port.wanted_up.subscribe();
    let connections_shutdown = shutdown.clone();
    loop {
        let up = *wanted_up.borrow_and_update();
        match (&listener, up) {
            (Some(_), false) => {
                if let Some(closing) = listener.take() {
                    // Closing drops only this process's reference: a child process being spawned
                    // meanwhile (by a test) holds an inherited one until it execs, and the socket
                    // would go on accepting. Shutting it down stops it listening at once.
                    let _ = socket2::SockRef::from(&closing).shutdown(std::net::Shutdown::Both);
                }
                port.status.send_replace(PortStatus::Closed);
                log(&kms, format_args!("KMS port {} is down", port.addr));
            }
            (None, true) => match bind(port.addr) {
                Ok(bound) => {
                    listener = Some(bound);
                    port.status.send_replace(PortStatus::Listening);
                    log(&kms, format_args!("KMS port {} is up again", port.addr));
                }
                Err(err) => {
                    port.status
                        .send_replace(PortStatus::BindFailed(err.to_string()));
                    tokio::select! {
                        _ = wait_until(&mut shutdown, true) => return,
                        _ = tokio::time::sleep(REBIND_RETRY) => {}
                    }
                    continue;
                }
            },
            (Some(_), true) | (None, false) => {}
        }
        tokio::select! {
            _ = wait_until(&mut shutdown, true) => return,
            changed = wanted_up.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(stream) => spawn_connection(&kms, &port, stream, &connections_shutdown),
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    log(&kms, format_args!("accept failed: {err}"));
                    tokio::time::sleep(REBIND_RETRY).await;
                }
            },
        }
    }
}

/// Resolves once the watched flag is `value` (or its sender is gone, which is shutdown).
pub async fn wait_until(flag: &mut watch::Receiver<bool>, value: bool) {
    // The guard `wait_for` returns is dropped here, before any other await.
    let _ = flag.wait_for(|current| *current == value).await;
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

fn spawn_connection(
    kms: &Arc<Kms>,
    port: &KmsPort,
    stream: TcpStream,
    shutdown: &watch::Receiver<bool>,
) {
    let kms = Arc::clone(kms);
    let mut wanted_up = port.wanted_up.subscribe();
    let mut shutdown = shutdown.clone();
    let stream = ResettableStream::new(stream);
    let reset = Arc::clone(&stream.reset);
    tokio::spawn(async move {
        let service = service_fn(move |request| {
            let kms = Arc::clone(&kms);
            let reset = Arc::clone(&reset);
            async move { handle(&kms, request, &reset).await }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        // Dropping the connection closes the socket, also mid-request.
        tokio::select! {
            _ = connection => {}
            _ = wait_until(&mut wanted_up, false) => {}
            _ = wait_until(&mut shutdown, true) => {}
        }
    });
}

/// A connection's socket that can be told to end with a reset (RST, `SO_LINGER` 0) instead of
/// an orderly close when it is dropped: the `reset` fault.
#[derive(Debug)]
struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    fn new(inner: TcpStream) -> Self {
        ResettableStream {
            inner,
            reset: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Acquire) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The body of a response the `reset` fault cuts short: announces the whole length, sends the
/// first half, pauses so that it reaches the client, then fails (hyper then drops the
/// connection, which the [`ResettableStream`] resets).
#[derive(Debug)]
pub struct Truncated {
    first_half: Option<Bytes>,
    full_length: u64,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// How long the first half of a reset response is left to reach the client.
const RESET_PAUSE: Duration = Duration::from_millis(50);

impl Truncated {
    fn new(body: Bytes) -> Self {
        let half = body.len() / 2;
        Truncated {
            full_length: body.len() as u64,
            first_half: Some(body.slice(..half)),
            pause: None,
        }
    }
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = ConnectionDropped;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ConnectionDropped>>> {
        if let Some(first_half) = self.first_half.take() {
            self.pause = Some(Box::pin(tokio::time::sleep(RESET_PAUSE)));
            return Poll::Ready(Some(Ok(Frame::data(first_half))));
        }
        match self.pause.as_mut() {
            Some(pause) => match pause.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Some(Err(ConnectionDropped))),
            },
            None => Poll::Ready(Some(Err(ConnectionDropped))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.full_length)
    }
}

/// What the KMS port answers with: a whole body, or one the `reset` fault cuts short.
pub type ResponseBody = Either<Full<Bytes>, Truncated>;

fn whole(response: Response<Full<Bytes>>) -> Response<ResponseBody> {
    response.map(Either::Left)
}

/// `Message` of a `Sign` request with its first bit flipped, for the `bad-signature` fault; the
/// body as it was when it has no readable message (the operation then refuses it as usual).
fn with_other_message(body: &[u8]) -> Bytes {
    let Ok(mut request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let flipped = request
        .get("Message")
        .and_then(|message| message.as_str())
        .and_then(|message| engine.decode(message).ok())
        .filter(|message| !message.is_empty())
        .map(|mut message| {
            message[0] ^= 0x01;
            engine.encode(message)
        });
    match flipped {
        Some(message) => {
            request["Message"] = serde_json::Value::String(message);
            Bytes::from(serde_json::to_vec(&request).unwrap_or_else(|_| body.to_vec()))
        }
        None => Bytes::copy_from_slice(body),
    }
}

/// Returned by the request handler to make hyper close the connection without a response.
#[derive(Debug)]
pub struct ConnectionDropped;

impl fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for ConnectionDropped {}

/// Which protocol a request speaks, and so how it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// AWS JSON 1.1.
    Kms,
    /// AWS Query with XML answers.
    Sts,
}

impl Protocol {
    fn error_response(self, err: &KmsError, request_id: &str) -> Response<Full<Bytes>> {
        match self {
            Protocol::Kms => err.to_response(request_id),
            Protocol::Sts => sts::error_response(err, request_id),
        }
    }

    fn success_response(self, request_id: &str, body: Bytes) -> Response<Full<Bytes>> {
        match self {
            Protocol::Kms => success_response(request_id, body),
            Protocol::Sts => sts::success_response(request_id, body),
        }
    }

    /// The error's name on the wire, for the log.
    fn error_name(self, err: &KmsError) -> &'static str {
        match self {
            Protocol::Kms => err.kind().type_name(),
            Protocol::Sts => sts::code(err.kind()),
        }
    }
}

/// A request with the operation it names.
#[derive(Debug)]
enum Routed {
    Kms(Operation),
    Sts(Operation, sts::Params),
}

impl Routed {
    fn operation(&self) -> Operation {
        match self {
            Routed::Kms(operation) | Routed::Sts(operation, _) => *operation,
        }
    }
}

async fn handle(
    kms: &Kms,
    request: Request<Incoming>,
    reset: &AtomicBool,
) -> Result<Response<ResponseBody>, ConnectionDropped> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let protocol = if sts::is_sts_request(&parts) {
        Protocol::Sts
    } else {
        Protocol::Kms
    };
    let body = match Limited::new(body, MAX_BODY_LEN).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            let err = KmsError::new(
                ErrorKind::Validation,
                format!("The request body is larger than {MAX_BODY_LEN} bytes."),
            );
            return Ok(whole(protocol.error_response(&err, &request_id)));
        }
        // The client went away mid-request.
        Err(_) => return Err(ConnectionDropped),
    };

    let routed = match route(protocol, &parts, &body) {
        Ok(routed) => routed,
        Err(err) => {
            log(
                kms,
                format_args!("{} {} -> {err}", parts.method, parts.uri.path()),
            );
            return Ok(whole(protocol.error_response(&err, &request_id)));
        }
    };
    let operation = routed.operation();
    kms.stats.record(operation);
    let subject = match &routed {
        Routed::Kms(_) => key_for_log(&body),
        Routed::Sts(_, params) => printable(params.get("RoleArn")),
    };

    let decision = kms.faults.decide(operation);
    if !decision.latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(decision.latency) => {}
            () = kms.faults.changed_since(decision.generation) => {}
        }
    }
    let mut cut_short = false;
    let mut executed_body = body.clone();
    match decision.effect {
        Effect::Proceed => {}
        Effect::Fail(err) => {
            log(
                kms,
                format_args!(
                    "{operation} {subject} -> fault {}: {}",
                    protocol.error_name(&err),
                    err.message()
                ),
            );
            return Ok(whole(protocol.error_response(&err, &request_id)));
        }
        Effect::Drop => {
            log(
                kms,
                format_args!("{operation} {subject} -> fault: connection dropped"),
            );
            return Err(ConnectionDropped);
        }
        Effect::Hang => {
            log(kms, format_args!("{operation} {subject} -> fault: hanging"));
            kms.faults.changed_since(decision.generation).await;
        }
        Effect::Reset => cut_short = true,
        Effect::BadSignature => {
            log(
                kms,
                format_args!("{operation} {subject} -> fault: signing another message"),
            );
            executed_body = with_other_message(&body);
        }
    }

    let outcome = match &routed {
        Routed::Kms(operation) => {
            authorize_and_execute(kms, *operation, &parts, &body, &executed_body).await
        }
        Routed::Sts(_, params) => assume_role(kms, &parts, &body, params, &request_id),
    };
    let response = match outcome {
        Ok(response) => {
            log(kms, format_args!("{operation} {subject} -> ok"));
            protocol.success_response(&request_id, response)
        }
        Err(err) => {
            log(
                kms,
                format_args!("{operation} {subject} -> {}", protocol.error_name(&err)),
            );
            protocol.error_response(&err, &request_id)
        }
    };
    if !cut_short {
        return Ok(whole(response));
    }
    log(
        kms,
        format_args!("{operation} {subject} -> fault: connection reset mid-response"),
    );
    reset.store(true, Ordering::Release);
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    Ok(Response::from_parts(
        parts,
        Either::Right(Truncated::new(body)),
    ))
}

/// KMS takes `POST /` with the operation in `X-Amz-Target`; STS takes `POST /` with a form body
/// naming `Action` and `Version`.
fn route(protocol: Protocol, parts: &Parts, body: &[u8]) -> Result<Routed, KmsError> {
    if protocol == Protocol::Sts {
        let params = sts::Params::parse(body);
        return sts::operation(&params).map(|operation| Routed::Sts(operation, params));
    }
    if parts.method != Method::POST || parts.uri.path() != "/" {
        return Err(KmsError::new(
            ErrorKind::UnknownOperation,
            "KMS operations are POST / with an X-Amz-Target header.",
        ));
    }
    let target = parts
        .headers
        .get(TARGET_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    Operation::from_target(target)
        .map(Routed::Kms)
        .ok_or_else(|| {
            KmsError::new(
                ErrorKind::UnknownOperation,
                format!(
                    "Unknown or unsupported operation '{}'.",
                    target.escape_debug()
                ),
            )
        })
}

/// Authenticates the request as sent (`body`) and executes `executed_body` (the same, unless the
/// `bad-signature` fault changed the message).
async fn authorize_and_execute(
    kms: &Kms,
    operation: Operation,
    parts: &Parts,
    body: &[u8],
    executed_body: &[u8],
) -> Result<Bytes, KmsError> {
    let caller = sigv4::authenticate(parts, body, "kms", &kms.identities, SystemTime::now())?;
    sigv4::require_region(parts, kms.store.region())?;
    if !caller.policy.allows(operation) {
        let user = if caller.temporary {
            format!("User: {}", caller.arn)
        } else {
            format!("User with access key {}", caller.access_key_id)
        };
        return Err(KmsError::new(
            ErrorKind::AccessDenied,
            format!(
                "{user} is not authorized to perform: kms:{operation} because no identity-based policy allows the kms:{operation} action"
            ),
        ));
    }
    operations::execute(&kms.store, operation, executed_body).await
}

/// STS `AssumeRole`: SigV4 for service `sts` with the caller's own credentials, then `sts`.
fn assume_role(
    kms: &Kms,
    parts: &Parts,
    body: &[u8],
    params: &sts::Params,
    request_id: &str,
) -> Result<Bytes, KmsError> {
    let now = SystemTime::now();
    let caller = sigv4::authenticate(parts, body, sts::SERVICE, &kms.identities, now)?;
    let lifetime = match kms.sts_session_seconds.load(Ordering::Acquire) {
        0 => None,
        seconds => Some(Duration::from_secs(seconds)),
    };
    sts::assume_role(&kms.identities, &caller, params, request_id, now, lifetime)
}

/// The key a request names, for the log: `KeyId`, else `AliasName`; printable and bounded.
fn key_for_log(body: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Names {
        key_id: Option<String>,
        alias_name: Option<String>,
    }
    let name = serde_json::from_slice::<Names>(body)
        .ok()
        .and_then(|names| names.key_id.or(names.alias_name));
    printable(name.as_deref())
}

/// A name from a request, printable and bounded, or `-`.
fn printable(name: Option<&str>) -> String {
    match name {
        Some(name) => name
            .chars()
            .take(200)
            .flat_map(char::escape_debug)
            .collect(),
        None => "-".to_owned(),
    }
}

/// One line on stderr, unless request logging is off.
pub fn log(kms: &Kms, line: fmt::Arguments<'_>) {
    if kms.log_requests {
        eprintln!("kms-emulator: {line}");
    }
}
