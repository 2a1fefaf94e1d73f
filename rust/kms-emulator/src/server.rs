//! The KMS port: accepting connections (and refusing them while "down"), and the pipeline every
//! request runs through: route (KMS, or STS `AssumeRole`), count, fault, authenticate, authorize,
//! execute.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
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
    tokio::spawn(async move {
        let service = service_fn(move |request| {
            let kms = Arc::clone(&kms);
            async move { handle(&kms, request).await }
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
) -> Result<Response<Full<Bytes>>, ConnectionDropped> {
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
            return Ok(protocol.error_response(&err, &request_id));
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
            return Ok(protocol.error_response(&err, &request_id));
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
            return Ok(protocol.error_response(&err, &request_id));
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
    }

    let outcome = match &routed {
        Routed::Kms(operation) => authorize_and_execute(kms, *operation, &parts, &body).await,
        Routed::Sts(_, params) => assume_role(kms, &parts, &body, params, &request_id),
    };
    match outcome {
        Ok(response) => {
            log(kms, format_args!("{operation} {subject} -> ok"));
            Ok(protocol.success_response(&request_id, response))
        }
        Err(err) => {
            log(
                kms,
                format_args!("{operation} {subject} -> {}", protocol.error_name(&err)),
            );
            Ok(protocol.error_response(&err, &request_id))
        }
    }
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

async fn authorize_and_execute(
    kms: &Kms,
    operation: Operation,
    parts: &Parts,
    body: &[u8],
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
    operations::execute(&kms.store, operation, body).await
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
    sts::assume_role(&kms.identities, &caller, params, request_id, now)
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
