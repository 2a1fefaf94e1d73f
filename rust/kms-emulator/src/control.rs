//! The control API, on its own port so it stays reachable while the KMS port is down:
//! health, request counts and fault injection. Plain JSON, no authentication (loopback only).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::faults::{Fault, FaultRequest};
use crate::server::{log, wait_until, Kms, KmsPort};

const MAX_BODY_LEN: usize = 64 * 1024;

/// What the control API acts on.
#[derive(Debug)]
pub struct Control {
    pub kms: Arc<Kms>,
    pub port: Arc<KmsPort>,
}

/// The accept loop of the control port.
pub async fn serve_control(
    control: Arc<Control>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = wait_until(&mut shutdown, true) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    log(&control.kms, format_args!("control accept failed: {err}"));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let control = Arc::clone(&control);
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let control = Arc::clone(&control);
                async move { Ok::<_, std::convert::Infallible>(handle(&control, request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = wait_until(&mut shutdown, true) => {}
            }
        });
    }
}

async fn handle(control: &Control, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let kms = &control.kms;
    match (parts.uri.path(), &parts.method) {
        ("/health", &Method::GET) => json_response(StatusCode::OK, &json!({"status": "ok"})),
        ("/stats", &Method::GET) => json_response(StatusCode::OK, &kms.stats.snapshot()),
        ("/stats/reset", &Method::POST) => {
            kms.stats.reset();
            json_response(StatusCode::OK, &kms.stats.snapshot())
        }
        ("/faults", &Method::GET) => json_response(StatusCode::OK, &kms.faults.current().view()),
        ("/faults", &Method::PUT) => {
            let body = match Limited::new(body, MAX_BODY_LEN).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => return error_response(StatusCode::BAD_REQUEST, err),
            };
            let fault = match serde_json::from_slice::<FaultRequest>(&body)
                .map_err(|err| err.to_string())
                .and_then(Fault::from_request)
            {
                Ok(fault) => fault,
                Err(err) => return error_response(StatusCode::BAD_REQUEST, err),
            };
            apply(control, fault).await
        }
        ("/faults", &Method::DELETE) => apply(control, Fault::none()).await,
        ("/sts", &Method::GET) => sts_view(kms),
        ("/sts", &Method::PUT) => {
            let body = match Limited::new(body, MAX_BODY_LEN).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => return error_response(StatusCode::BAD_REQUEST, err),
            };
            match serde_json::from_slice::<StsSettings>(&body) {
                Ok(StsSettings {
                    session_seconds: Some(seconds @ 1..=MAX_SESSION_SECONDS),
                }) => kms.sts_session_seconds.store(seconds, Ordering::Release),
                Ok(StsSettings {
                    session_seconds: None,
                }) => kms.sts_session_seconds.store(0, Ordering::Release),
                Ok(StsSettings {
                    session_seconds: Some(_),
                }) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        format!("sessionSeconds must be 1..={MAX_SESSION_SECONDS} or null"),
                    )
                }
                Err(err) => return error_response(StatusCode::BAD_REQUEST, err),
            }
            sts_view(kms)
        }
        ("/sts", &Method::DELETE) => {
            kms.sts_session_seconds.store(0, Ordering::Release);
            sts_view(kms)
        }
        ("/health" | "/stats" | "/stats/reset" | "/faults" | "/sts", _) => {
            error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error_response(StatusCode::NOT_FOUND, "not found"),
    }
}

/// The longest session `PUT /sts` accepts: AWS's `DurationSeconds` maximum.
const MAX_SESSION_SECONDS: u64 = 43_200;

/// The body of `PUT /sts`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StsSettings {
    session_seconds: Option<u64>,
}

fn sts_view(kms: &Kms) -> Response<Full<Bytes>> {
    let seconds = kms.sts_session_seconds.load(Ordering::Acquire);
    json_response(
        StatusCode::OK,
        &json!({"sessionSeconds": (seconds > 0).then_some(seconds)}),
    )
}

/// Puts a fault in effect and switches the KMS port down or back up to match, answering only
/// once the port has switched.
async fn apply(control: &Control, fault: Fault) -> Response<Full<Bytes>> {
    let down = fault.is_down();
    let view = fault.view();
    control.kms.faults.set(fault);
    log(
        &control.kms,
        format_args!(
            "faults set to {}",
            serde_json::to_string(&view).unwrap_or_default()
        ),
    );
    match control.port.switch(!down).await {
        Ok(()) => json_response(StatusCode::OK, &view),
        Err(err) => error_response(StatusCode::INTERNAL_SERVER_ERROR, err),
    }
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(status: StatusCode, error: impl std::fmt::Display) -> Response<Full<Bytes>> {
    json_response(status, &json!({"error": error.to_string()}))
}
