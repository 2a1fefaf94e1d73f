//! A local AWS KMS emulator that follows AWS's documented semantics where the product depends on
//! them: `MessageType=DIGEST` is signed as given (never hashed again), RSASSA-PSS uses a salt as
//! long as the hash, and only `Enabled` keys sign. It speaks AWS JSON 1.1 and verifies SigV4, so
//! the real AWS SDKs talk to it unchanged. The same port serves STS `AssumeRole` (AWS Query) for
//! the roles configured at startup; the temporary credentials it issues work against KMS until
//! they expire.
//!
//! Two ports: the KMS port, and a control port for health, request counts and fault injection
//! (see `docs/design.md`, section "KMS emulator"). Start it with [`start`]; the `kms-emulator`
//! binary is a thin command line around it.

#![forbid(unsafe_code)]

pub mod cli;
mod control;
mod crypto;
mod faults;
mod keys;
mod operations;
mod principal;
mod protocol;
mod server;
mod sigv4;
mod stats;
mod sts;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::crypto::KeySpec;
pub use crate::principal::{
    Policy, Principal, Role, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY,
};
pub use crate::protocol::Operation;

use crate::control::Control;
use crate::faults::Faults;
use crate::keys::KeyStore;
use crate::principal::Identities;
use crate::protocol::KmsError;
use crate::server::{Kms, KmsPort};
use crate::stats::Stats;

pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT_ID: &str = "111122223333";

/// How to run the emulator.
#[derive(Clone, Debug)]
pub struct Config {
    /// The KMS port; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The control port; port 0 picks a free one.
    pub control_listen: SocketAddr,
    pub region: String,
    pub account_id: String,
    /// Accepted credentials; empty means the defaults ([`DEFAULT_ACCESS_KEY_ID`]).
    pub principals: Vec<Principal>,
    /// Roles any accepted credentials may assume with STS `AssumeRole` (on the KMS port).
    pub roles: Vec<Role>,
    /// Keys created at startup, each with its alias.
    pub keys: Vec<InitialKey>,
    /// Without this, only loopback addresses may be bound.
    pub allow_non_loopback: bool,
    /// One line per request on stderr.
    pub log_requests: bool,
}

impl Default for Config {
    fn default() -> Config {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Config {
            listen: loopback,
            control_listen: loopback,
            region: DEFAULT_REGION.to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            principals: Vec::new(),
            roles: Vec::new(),
            keys: Vec::new(),
            allow_non_loopback: false,
            log_requests: true,
        }
    }
}

/// A key created at startup: `SIGN_VERIFY` for asymmetric specs (`ENCRYPT_DECRYPT` for
/// `SYMMETRIC_DEFAULT`), reachable under `alias`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialKey {
    pub alias: String,
    pub spec: KeySpec,
}

/// Why the emulator could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is malformed.
    InvalidConfig(String),
    /// A non-loopback address without `allow_non_loopback`.
    NonLoopback(SocketAddr),
    Bind {
        addr: SocketAddr,
        source: io::Error,
    },
    /// A startup key could not be created.
    Key {
        alias: String,
        source: String,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::InvalidConfig(problem) => write!(f, "invalid configuration: {problem}"),
            StartError::NonLoopback(addr) => write!(
                f,
                "refusing to listen on non-loopback address {addr} (use --allow-non-loopback)"
            ),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Key { alias, source } => {
                write!(f, "cannot create the key for {alias}: {source}")
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Bind { source, .. } => Some(source),
            StartError::InvalidConfig(_) | StartError::NonLoopback(_) | StartError::Key { .. } => {
                None
            }
        }
    }
}

/// A running emulator. Dropping it stops it too; [`Emulator::shutdown`] also waits for that.
#[derive(Debug)]
pub struct Emulator {
    kms_url: String,
    control_url: String,
    region: String,
    keys: BTreeMap<String, String>,
    roles: Vec<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds both ports, creates the startup keys and starts serving on the current Tokio runtime.
pub async fn start(config: Config) -> Result<Emulator, StartError> {
    validate(&config)?;
    let kms_listener = bind(config.listen)?;
    let control_listener = bind(config.control_listen)?;
    let kms_addr = local_addr(&kms_listener, config.listen)?;
    let control_addr = local_addr(&control_listener, config.control_listen)?;

    let roles = config
        .roles
        .iter()
        .map(|role| role.arn().to_owned())
        .collect();
    let kms = Arc::new(Kms {
        store: KeyStore::new(&config.region, &config.account_id),
        identities: Identities::new(&config.account_id, config.principals, config.roles),
        stats: Stats::default(),
        faults: Faults::default(),
        log_requests: config.log_requests,
        sts_session_seconds: std::sync::atomic::AtomicU64::new(0),
    });
    let mut keys = BTreeMap::new();
    for InitialKey { alias, spec } in config.keys {
        let key = operations::create_key_with_alias(&kms.store, &alias, spec)
            .await
            .map_err(|err: KmsError| StartError::Key {
                alias: alias.clone(),
                source: err.to_string(),
            })?;
        keys.insert(alias, key.arn);
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let port = Arc::new(KmsPort::new(kms_addr));
    let control = Arc::new(Control {
        kms: Arc::clone(&kms),
        port: Arc::clone(&port),
    });
    let tasks = vec![
        tokio::spawn(server::serve_kms(
            kms,
            port,
            kms_listener,
            shutdown_rx.clone(),
        )),
        tokio::spawn(control::serve_control(
            control,
            control_listener,
            shutdown_rx,
        )),
    ];
    Ok(Emulator {
        kms_url: format!("http://{kms_addr}"),
        control_url: format!("http://{control_addr}"),
        region: config.region,
        keys,
        roles,
        shutdown,
        tasks,
    })
}

fn validate(config: &Config) -> Result<(), StartError> {
    for addr in [config.listen, config.control_listen] {
        if !addr.ip().is_loopback() && !config.allow_non_loopback {
            return Err(StartError::NonLoopback(addr));
        }
    }
    let region_ok = !config.region.is_empty()
        && config
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(StartError::InvalidConfig(format!(
            "region '{}' is not a region name",
            config.region
        )));
    }
    if config.account_id.len() != 12 || !config.account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StartError::InvalidConfig(format!(
            "account id '{}' is not 12 digits",
            config.account_id
        )));
    }
    let mut arns = std::collections::BTreeSet::new();
    for role in &config.roles {
        role.validate().map_err(StartError::InvalidConfig)?;
        if !arns.insert(role.arn()) {
            return Err(StartError::InvalidConfig(format!(
                "role {} is configured twice",
                role.arn()
            )));
        }
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    server::bind(addr).map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(
    listener: &tokio::net::TcpListener,
    requested: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        addr: requested,
        source,
    })
}

impl Emulator {
    /// `http://IP:PORT` of the KMS port, for `endpoint_url`.
    pub fn kms_url(&self) -> &str {
        &self.kms_url
    }

    /// `http://IP:PORT` of STS `AssumeRole`: the KMS port.
    pub fn sts_url(&self) -> &str {
        &self.kms_url
    }

    /// The ARNs of the roles that may be assumed, as configured.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// `http://IP:PORT` of the control port.
    pub fn control_url(&self) -> &str {
        &self.control_url
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The startup keys: alias name → key ARN.
    pub fn keys(&self) -> &BTreeMap<String, String> {
        &self.keys
    }

    /// The one JSON line the binary prints on start:
    /// `{"kms":…,"control":…,"region":…,"keys":{"alias/NAME":"arn:…"},"sts":…,"roles":["arn:…"]}`.
    pub fn startup_line(&self) -> String {
        #[derive(Serialize)]
        struct StartupLine<'a> {
            kms: &'a str,
            control: &'a str,
            region: &'a str,
            keys: &'a BTreeMap<String, String>,
            sts: &'a str,
            roles: &'a [String],
        }
        let line = StartupLine {
            kms: &self.kms_url,
            control: &self.control_url,
            region: &self.region,
            keys: &self.keys,
            sts: self.sts_url(),
            roles: &self.roles,
        };
        // A struct of strings always serializes.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Stops both ports, closes every connection and waits for the accept loops to end.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            // A task that panicked has stopped as well.
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
