//! Fault injection: what the KMS port does to the requests a fault matches.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::protocol::{ErrorKind, KmsError, Operation};

/// `mode` of a fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultMode {
    /// Answer normally (after `latencyMs`, if set).
    #[default]
    None,
    /// 400 `ThrottlingException`.
    Throttle,
    /// 500 `KMSInternalException`, or 503 `ServiceUnavailableException` with `"status":503`.
    ServerError,
    /// Close the connection without answering.
    Drop,
    /// Never answer, until the faults are changed or cleared; then answer normally.
    Hang,
    /// Close the KMS listener and its connections (connection refused) until the faults are
    /// changed or cleared.
    Down,
    /// Handle the request, send the status line, headers and half of the body, then reset the
    /// connection (TCP RST): the answer is lost mid-response, after the work was done.
    Reset,
    /// `Sign` only: answer with a well-formed signature of the key over another message (one
    /// bit of `Message` flipped), which does not verify for the message sent.
    BadSignature,
}

/// The body of `PUT /faults`. Absent members take their defaults: mode `none`, no latency, all
/// operations, unlimited count.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default)]
    pub mode: FaultMode,
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub operations: Option<Vec<String>>,
    #[serde(default)]
    pub count: Option<u64>,
    /// HTTP status of `server-error`: 500 (default) or 503.
    #[serde(default)]
    pub status: Option<u16>,
}

/// A validated fault, as in effect; `GET /faults` shows it in the request's shape with `count`
/// counting down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    mode: FaultMode,
    latency: Duration,
    /// Empty means every operation.
    operations: BTreeSet<Operation>,
    /// How many more matching requests the fault applies to; `None` = unlimited.
    remaining: Option<u64>,
    server_error: ErrorKind,
}

/// `GET /faults` / `PUT /faults` response body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultView {
    mode: FaultMode,
    latency_ms: u64,
    operations: Vec<&'static str>,
    count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

impl Fault {
    /// No fault.
    pub fn none() -> Fault {
        Fault {
            mode: FaultMode::None,
            latency: Duration::ZERO,
            operations: BTreeSet::new(),
            remaining: None,
            server_error: ErrorKind::Internal,
        }
    }

    pub fn from_request(request: FaultRequest) -> Result<Fault, String> {
        let operations = request
            .operations
            .unwrap_or_default()
            .iter()
            .map(|name| {
                Operation::from_name(name).ok_or_else(|| format!("unknown operation '{name}'"))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let server_error = match (request.mode, request.status) {
            (_, None) | (FaultMode::ServerError, Some(500)) => ErrorKind::Internal,
            (FaultMode::ServerError, Some(503)) => ErrorKind::ServiceUnavailable,
            (FaultMode::ServerError, Some(status)) => {
                return Err(format!("status must be 500 or 503, not {status}"))
            }
            (_, Some(_)) => return Err("status applies to mode server-error only".to_owned()),
        };
        if request.mode == FaultMode::BadSignature
            && operations
                .iter()
                .any(|operation| *operation != Operation::Sign)
        {
            return Err("mode bad-signature applies to Sign only".to_owned());
        }
        if request.mode == FaultMode::Down
            && (!operations.is_empty() || request.count.is_some() || request.latency_ms > 0)
        {
            return Err(
                "mode down takes the whole KMS port down: operations, count and latencyMs do not apply"
                    .to_owned(),
            );
        }
        Ok(Fault {
            mode: request.mode,
            latency: Duration::from_millis(request.latency_ms),
            operations,
            remaining: request.count,
            server_error,
        })
    }

    pub fn is_down(&self) -> bool {
        self.mode == FaultMode::Down
    }

    pub fn view(&self) -> FaultView {
        FaultView {
            mode: self.mode,
            latency_ms: u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX),
            operations: self.operations.iter().map(|op| op.name()).collect(),
            count: self.remaining,
            status: (self.mode == FaultMode::ServerError)
                .then(|| self.server_error.status().as_u16()),
        }
    }

    fn is_noop(&self) -> bool {
        self.mode == FaultMode::None && self.latency.is_zero()
    }

    fn matches(&self, operation: Operation) -> bool {
        self.remaining != Some(0)
            && (self.operations.is_empty() || self.operations.contains(&operation))
            && (self.mode != FaultMode::BadSignature || operation == Operation::Sign)
    }
}

/// What to do with one request.
#[derive(Debug)]
pub struct Decision {
    /// Wait this long before the effect (cut short when the faults change).
    pub latency: Duration,
    pub effect: Effect,
    /// The faults' generation when the decision was made; see [`Faults::changed_since`].
    pub generation: u64,
}

#[derive(Debug)]
pub enum Effect {
    /// Handle the request normally.
    Proceed,
    /// Answer with this error instead.
    Fail(KmsError),
    /// Close the connection without an answer.
    Drop,
    /// Wait until the faults change, then handle the request normally.
    Hang,
    /// Handle the request, then cut the response short with a connection reset.
    Reset,
    /// Sign another message than the one sent.
    BadSignature,
}

/// The fault in effect. Every change bumps a generation that hung requests wait on.
#[derive(Debug)]
pub struct Faults {
    current: Mutex<Fault>,
    generation: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            current: Mutex::new(Fault::none()),
            generation: watch::Sender::new(0),
        }
    }
}

impl Faults {
    pub fn set(&self, fault: Fault) {
        let mut current = self.lock();
        *current = fault;
        // Bumped under the lock, so a decision's generation always matches the fault it saw.
        self.generation.send_modify(|generation| *generation += 1);
    }

    pub fn current(&self) -> Fault {
        self.lock().clone()
    }

    /// Decides the fate of one request, counting it against the fault's `count`.
    pub fn decide(&self, operation: Operation) -> Decision {
        let mut fault = self.lock();
        let generation = *self.generation.borrow();
        if fault.is_noop() || !fault.matches(operation) {
            return Decision {
                latency: Duration::ZERO,
                effect: Effect::Proceed,
                generation,
            };
        }
        if let Some(remaining) = fault.remaining.as_mut() {
            *remaining -= 1;
        }
        let effect = match fault.mode {
            FaultMode::None => Effect::Proceed,
            FaultMode::Throttle => {
                Effect::Fail(KmsError::new(ErrorKind::Throttling, "Rate exceeded"))
            }
            FaultMode::ServerError => Effect::Fail(KmsError::new(
                fault.server_error,
                "Injected fault: the emulator was told to fail this request.",
            )),
            // A request that slipped in while the port was going down is cut off too.
            FaultMode::Drop | FaultMode::Down => Effect::Drop,
            FaultMode::Hang => Effect::Hang,
            FaultMode::Reset => Effect::Reset,
            FaultMode::BadSignature => Effect::BadSignature,
        };
        Decision {
            latency: fault.latency,
            effect,
            generation,
        }
    }

    /// Resolves once the faults have been set or cleared after `generation`.
    pub async fn changed_since(&self, generation: u64) {
        let mut changes = self.generation.subscribe();
        // Dropping the guard `wait_for` returns right away; the sender lives as long as `self`.
        let _ = changes.wait_for(|current| *current != generation).await;
    }

    fn lock(&self) -> MutexGuard<'_, Fault> {
        // A fault is replaced whole; a panic cannot leave it half-written.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn fault(json: &str) -> Result<Fault, String> {
        let request: FaultRequest = serde_json::from_str(json).map_err(|err| err.to_string())?;
        Fault::from_request(request)
    }

    /// The error kind a `Sign` request would be failed with, if any.
    fn failure(faults: &Faults) -> Option<ErrorKind> {
        match faults.decide(Operation::Sign).effect {
            Effect::Fail(err) => Some(err.kind()),
            Effect::Proceed
            | Effect::Drop
            | Effect::Hang
            | Effect::Reset
            | Effect::BadSignature => None,
        }
    }

    #[test]
    fn a_counted_fault_applies_to_the_next_n_matching_requests_only() {
        let faults = Faults::default();
        faults.set(fault(r#"{"mode":"throttle","operations":["Sign"],"count":2}"#).expect("valid"));
        assert!(matches!(
            faults.decide(Operation::DescribeKey).effect,
            Effect::Proceed
        ));
        for _ in 0..2 {
            assert_eq!(failure(&faults), Some(ErrorKind::Throttling));
        }
        assert!(matches!(
            faults.decide(Operation::Sign).effect,
            Effect::Proceed
        ));
        assert_eq!(faults.current().view().count, Some(0));
    }

    #[test]
    fn latency_alone_delays_without_failing() {
        let faults = Faults::default();
        faults.set(fault(r#"{"mode":"none","latencyMs":250}"#).expect("valid"));
        let decision = faults.decide(Operation::Sign);
        assert_eq!(decision.latency, Duration::from_millis(250));
        assert!(matches!(decision.effect, Effect::Proceed));
    }

    #[test]
    fn server_errors_are_500_unless_503_is_asked_for() {
        let faults = Faults::default();
        faults.set(fault(r#"{"mode":"server-error"}"#).expect("valid"));
        assert_eq!(failure(&faults), Some(ErrorKind::Internal));
        faults.set(fault(r#"{"mode":"server-error","status":503}"#).expect("valid"));
        assert_eq!(failure(&faults), Some(ErrorKind::ServiceUnavailable));
    }

    #[tokio::test]
    async fn hung_requests_are_released_by_the_next_change() {
        let faults = Faults::default();
        faults.set(fault(r#"{"mode":"hang"}"#).expect("valid"));
        let decision = faults.decide(Operation::Sign);
        assert!(matches!(decision.effect, Effect::Hang));
        let wait = Duration::from_millis(50);
        let still_hanging =
            tokio::time::timeout(wait, faults.changed_since(decision.generation)).await;
        assert!(still_hanging.is_err());
        faults.set(Fault::none());
        tokio::time::timeout(wait, faults.changed_since(decision.generation))
            .await
            .expect("released");
    }

    #[test]
    fn a_bad_signature_fault_spares_every_operation_but_sign() {
        let faults = Faults::default();
        faults.set(fault(r#"{"mode":"bad-signature","count":1}"#).expect("valid"));
        assert!(matches!(
            faults.decide(Operation::GetPublicKey).effect,
            Effect::Proceed
        ));
        assert!(matches!(
            faults.decide(Operation::Sign).effect,
            Effect::BadSignature
        ));
        assert!(matches!(
            faults.decide(Operation::Sign).effect,
            Effect::Proceed
        ));
        assert!(fault(r#"{"mode":"bad-signature","operations":["Verify"]}"#).is_err());
    }

    #[test]
    fn invalid_fault_requests_are_refused() {
        assert!(fault(r#"{"mode":"explode"}"#).is_err());
        assert!(fault(r#"{"mode":"throttle","operations":["Encrypt"]}"#).is_err());
        assert!(fault(r#"{"mode":"down","count":1}"#).is_err());
        assert!(fault(r#"{"mode":"throttle","status":503}"#).is_err());
        assert!(fault(r#"{"mode":"throttle","latency":5}"#).is_err());
        let down = fault(r#"{"mode":"down","latencyMs":0,"operations":[],"count":null}"#)
            .expect("full template with neutral values");
        assert!(down.is_down());
    }
}
