//! Downloading a JWKS: a connect timeout and a total timeout, a cap on the response size that
//! holds however the body arrives, HTTPS trusting only the certificates Keycloak's truststore
//! hands over, the standard proxy environment variables (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `NO_PROXY`, read when the client is built), and redirects refused rather than followed.
//!
//! Destinations are checked against the [`AddressPolicy`] before any connection is made: a URL
//! whose host is an IP address is checked as it is, and a name is resolved by this module's
//! resolver, which hands the connector only the addresses that pass, so the connection goes to
//! an address that was checked (a DNS answer that changes in between cannot swap it). When a
//! proxy serves the URL, the proxy resolves the name, so only an IP-address host is checked;
//! the proxy's own name is the operator's and is not checked.
//!
//! Text the server chose (TLS alerts, what the HTTP library says about the answer) is quoted
//! through [`bounded_remote_text`].
//!
//! One client serves every download and is rebuilt only when the settings change. Requests run
//! on the process-wide runtime; the calling (Java) thread blocks on the result, never longer
//! than the total timeout.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use once_cell::sync::Lazy;
use reqwest::{redirect, StatusCode, Url};

use super::addresses::{AddressPolicy, Refusal};
use super::jwks::{parse_jwks_with, JwksKeys, KeyLimits, KeyUse};
use crate::error::{bounded_remote_text, Error, ErrorKind, Result};
use crate::runtime;

/// How downloads are made, from the server options ([`super::settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    pub connect_timeout: Duration,
    /// From the start of the connection to the last byte of the body.
    pub total_timeout: Duration,
    pub max_response_bytes: usize,
    /// DER certificates HTTPS servers may chain to. None: every HTTPS download fails.
    pub trusted_certificates: Vec<Vec<u8>>,
    /// Which addresses downloads may connect to.
    pub addresses: AddressPolicy,
    /// Which of the downloaded keys are used.
    pub key_limits: KeyLimits,
}

impl Default for FetchPolicy {
    /// The policy of the default options ([`super::settings::DEFAULT_OPTIONS`]).
    fn default() -> Self {
        super::Settings::default().fetch
    }
}

/// An HTTP client built for one [`FetchPolicy`].
#[derive(Debug)]
pub struct JwksClient {
    policy: FetchPolicy,
    client: reqwest::Client,
}

impl JwksClient {
    pub fn new(policy: FetchPolicy) -> Result<Self> {
        let mut roots = Vec::with_capacity(policy.trusted_certificates.len());
        for (index, der) in policy.trusted_certificates.iter().enumerate() {
            roots.push(reqwest::Certificate::from_der(der).map_err(|_| {
                Error::invalid_argument(format!(
                    "trusted certificate {index} is not a DER X.509 certificate"
                ))
            })?);
        }
        let resolver = CheckedResolver {
            policy: Arc::new(policy.addresses.clone()),
            proxy_hosts: proxy_hosts_from_environment(),
        };
        let client = reqwest::Client::builder()
            .dns_resolver(resolver)
            .redirect(redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.total_timeout)
            .tls_certs_only(roots)
            .user_agent(concat!("keycloak-aws-kms/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::invalid_argument(format!(
                    "The JWKS HTTP client cannot be built from these settings: {}",
                    error_chain(&e)
                ))
            })?;
        Ok(JwksClient { policy, client })
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Downloads and parses a JWKS, keeping the keys for `requested_use`.
    pub fn fetch(&self, url: &str, requested_use: KeyUse) -> Result<JwksKeys> {
        let document = self.download(url)?;
        parse_jwks_with(&document, requested_use, &self.policy.key_limits)
    }

    /// Downloads `url`'s body, within the limits of the policy.
    pub fn download(&self, url: &str) -> Result<Vec<u8>> {
        let url = Url::parse(url)
            .map_err(|_| Error::invalid_argument("The JWKS URL is not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid_argument(format!(
                "The JWKS URL must be http or https, not {}",
                url.scheme()
            )));
        }
        let shown = display_url(&url);
        // A host that is an address never reaches the resolver: it is checked here.
        // (The URL parser writes every IPv4 spelling, such as 0xa9fea9fe, in dotted form.)
        let literal = url.host_str().and_then(|host| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        });
        if let Some(address) = literal {
            if let Some(refusal) = self.policy.addresses.check(address) {
                return Err(AddressRefused::new(address, &refusal).into_error(&shown));
            }
        }
        // reqwest's own timeout covers the same span; this one also bounds our body loop.
        let deadline = self.policy.total_timeout;
        runtime::block_on(async {
            match tokio::time::timeout(deadline, self.download_async(url, &shown)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(timed_out(&shown, deadline)),
            }
        })?
    }

    async fn download_async(&self, url: Url, shown: &str) -> Result<Vec<u8>> {
        let mut response = self
            .client
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| self.classify(&e, shown))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(Error::new(
                ErrorKind::JwksFetchFailed,
                format!("{shown} answered {}, a redirect; redirects are not followed, configure the final URL", describe_status(status)),
            ));
        }
        if !status.is_success() {
            return Err(Error::new(
                ErrorKind::JwksFetchFailed,
                format!("{shown} answered {}", describe_status(status)),
            ));
        }
        let limit = self.policy.max_response_bytes;
        let too_large = || {
            Error::new(
                ErrorKind::JwksFetchFailed,
                format!("The response of {shown} is larger than the limit of {limit} bytes"),
            )
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.classify(&e, shown))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Maps a reqwest failure to our kinds: TLS problems are configuration problems
    /// (JWKS_FETCH_FAILED), then timeouts, then everything on the wire is NETWORK.
    fn classify(&self, error: &reqwest::Error, shown: &str) -> Error {
        if let Some(refused) = find_in_chain::<AddressRefused>(error) {
            return refused.into_error(shown);
        }
        if let Some(tls) = find_in_chain::<rustls::Error>(error) {
            return Error::new(
                ErrorKind::JwksFetchFailed,
                format!(
                    "The TLS connection to {shown} failed: {}",
                    bounded_remote_text(&tls.to_string())
                ),
            );
        }
        if error.is_timeout() {
            return timed_out(shown, self.policy.total_timeout);
        }
        Error::new(
            ErrorKind::Network,
            format!("Downloading {shown} failed: {}", error_chain(error)),
        )
    }
}

fn timed_out(shown: &str, deadline: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "Downloading {shown} took longer than {} ms",
            deadline.as_millis()
        ),
    )
}

fn describe_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// The URL as messages may show it: no user info, no query, no fragment (they can carry
/// credentials or tokens).
pub(crate) fn display_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let shown = match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    };
    // A URL is whatever an administrator entered: messages show a bounded part of it.
    crate::error::bounded_remote_text(&shown)
}

/// The error and its causes, without the URL reqwest's own message would print; bounded, as
/// the causes may describe what the server sent.
fn error_chain(error: &reqwest::Error) -> String {
    bounded_remote_text(&full_error_chain(error))
}

fn full_error_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() {
        "the response body broke off".to_owned()
    } else if error.is_builder() {
        "invalid settings".to_owned()
    } else {
        "the HTTP exchange failed".to_owned()
    };
    let mut cause = error.source();
    // Causes repeat each other's text now and then; a few levels say everything.
    for _ in 0..6 {
        let Some(current) = cause else { break };
        let cause_text = current.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        cause = current.source();
    }
    text
}

/// An error of type `T` somewhere in the cause chain (a rustls error, our resolver's refusal).
/// tokio-rustls wraps a TLS error in an `io::Error`, which the connector wraps in another;
/// `io::Error::source` skips the wrapped error, so each one is opened with `get_ref`.
fn find_in_chain<T: std::error::Error + Clone + 'static>(error: &reqwest::Error) -> Option<T> {
    fn search<T: std::error::Error + Clone + 'static>(
        error: &(dyn std::error::Error + 'static),
        depth: usize,
    ) -> Option<T> {
        if depth > 8 {
            return None;
        }
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found.clone());
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = search(inner, depth + 1) {
                return Some(found);
            }
        }
        error.source().and_then(|cause| search(cause, depth + 1))
    }
    use std::error::Error as _;
    error.source().and_then(|cause| search(cause, 0))
}

/// A destination the [`AddressPolicy`] refuses: the resolver's error, found again in reqwest's
/// error chain by [`JwksClient::classify`].
#[derive(Debug, Clone)]
struct AddressRefused {
    /// "169.254.169.254, a link-local address; downloads there are refused (…)".
    described: String,
}

impl AddressRefused {
    fn new(address: IpAddr, refusal: &Refusal) -> Self {
        AddressRefused {
            described: refusal.describe(address),
        }
    }

    fn into_error(self, shown: &str) -> Error {
        Error::new(
            ErrorKind::JwksFetchFailed,
            format!("The JWKS URL {shown} resolves to {}", self.described),
        )
    }
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the name resolves to {}", self.described)
    }
}

impl std::error::Error for AddressRefused {}

/// Resolves names with the system resolver (`getaddrinfo`, as Keycloak's JVM does) and keeps
/// only the addresses the policy allows; when none is left, the lookup fails with the first
/// refused address. The connector connects to exactly what this returns.
struct CheckedResolver {
    policy: Arc<AddressPolicy>,
    /// Hosts of the configured proxies (lower case): resolved as they are.
    proxy_hosts: Vec<String>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let policy = Arc::clone(&self.policy);
        let checked = !self
            .proxy_hosts
            .iter()
            .any(|proxy| proxy.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let lookup = host.clone();
            let resolved: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                    .await
                    .map_err(|_| "the name lookup did not complete")??
                    .collect();
            if !checked {
                return Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs);
            }
            let mut first_refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match policy.check(address.ip()) {
                    None => true,
                    Some(refusal) => {
                        first_refused.get_or_insert((address.ip(), refusal));
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), first_refused) {
                (true, Some((address, refusal))) => {
                    Err(Box::new(AddressRefused::new(address, &refusal)) as _)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The hosts of the proxies reqwest reads from the environment (`ALL_PROXY`, `HTTPS_PROXY`,
/// `HTTP_PROXY`, upper or lower case) when it builds the client.
fn proxy_hosts_from_environment() -> Vec<String> {
    let mut hosts = Vec::new();
    for variable in crate::proxy_environment::PROXY_VARIABLES {
        let Ok(value) = std::env::var(variable) else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let with_scheme = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        if let Some(host) = Url::parse(&with_scheme)
            .ok()
            .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// The client every download shares, with the settings it was built for.
static SHARED_CLIENT: Lazy<Mutex<Option<Arc<JwksClient>>>> = Lazy::new(|| Mutex::new(None));

/// Makes later downloads use `policy`; the client is rebuilt only if the policy changed.
pub fn configure(policy: FetchPolicy) -> Result<()> {
    let mut shared = SHARED_CLIENT.lock().unwrap_or_else(PoisonError::into_inner);
    if shared
        .as_ref()
        .is_some_and(|client| client.policy == policy)
    {
        return Ok(());
    }
    *shared = Some(Arc::new(JwksClient::new(policy)?));
    Ok(())
}

/// The shared client, built with the defaults if nothing was configured yet.
pub fn shared_client() -> Result<Arc<JwksClient>> {
    let mut shared = SHARED_CLIENT.lock().unwrap_or_else(PoisonError::into_inner);
    match shared.as_ref() {
        Some(client) => Ok(Arc::clone(client)),
        None => {
            let client = Arc::new(JwksClient::new(FetchPolicy::default())?);
            *shared = Some(Arc::clone(&client));
            Ok(client)
        }
    }
}

/// Downloads and parses a JWKS with the shared client.
pub fn fetch_jwks(url: &str, requested_use: KeyUse) -> Result<JwksKeys> {
    shared_client()?.fetch(url, requested_use)
}
