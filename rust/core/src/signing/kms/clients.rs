//! KMS clients: one per connection (region, endpoint, credentials), shared by every signing key
//! that uses it so that its connection pool, cached credentials and retry budget serve them
//! all, and dropped with the last key that uses it (which also stops its credentials refresh).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;

use super::budget::RetryBudget;
use super::calls::Timeouts;
use super::credentials::{RefreshStats, RefreshTask, RefreshingCredentials};
use super::direct_http::{self, DirectHttpClient};
use crate::signing::config::{Connection, Credentials, Secret};

/// A KMS client with what its calls share: the SDK client (connection pool), the retry budget,
/// and — for credentials that expire — their background refresh, stopped when this is dropped.
#[derive(Debug)]
pub struct KmsClient {
    sdk: aws_sdk_kms::Client,
    budget: RetryBudget,
    /// Where the client describes itself in messages: region and endpoint.
    label: String,
    credentials: Option<RefreshingCredentials>,
    _refresh: Option<RefreshTask>,
}

impl KmsClient {
    /// A client around an SDK client built elsewhere (the fuzz targets' answering HTTP layer),
    /// with a budget of its own and no credentials refresh.
    pub fn from_sdk(sdk: aws_sdk_kms::Client, connection: &Connection) -> KmsClient {
        KmsClient {
            sdk,
            budget: RetryBudget::default(),
            label: label(connection),
            credentials: None,
            _refresh: None,
        }
    }

    pub(crate) fn sdk(&self) -> &aws_sdk_kms::Client {
        &self.sdk
    }

    /// The retry budget every call of this client draws on.
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Region and endpoint, for messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// What the background refresh of expiring credentials did; `None` for static keys.
    pub fn credentials_refresh(&self) -> Option<RefreshStats> {
        self.credentials.as_ref().map(RefreshingCredentials::stats)
    }
}

/// A KMS client as signing keys hold it; the pool keeps only a weak reference.
pub type SharedClient = Arc<KmsClient>;

/// The clients signing keys use now, by connection. An entry lives as long as some key holds its
/// client: re-saves, vault rotations and removed providers leave nothing behind.
#[derive(Debug, Default)]
pub struct ClientPool {
    clients: Mutex<HashMap<Connection, Weak<KmsClient>>>,
}

impl ClientPool {
    /// The client of `connection`: the one a live key already uses, else a new one.
    pub async fn shared(&self, connection: &Connection) -> SharedClient {
        if let Some(client) = self.lock().get(connection).and_then(Weak::upgrade) {
            return client;
        }
        // Built outside the lock: building reads the environment (the default chain).
        let built = Arc::new(build_client(connection, Timeouts::DEFAULT).await);
        let mut clients = self.lock();
        if let Some(raced) = clients.get(connection).and_then(Weak::upgrade) {
            return raced;
        }
        clients.retain(|_, client| client.strong_count() > 0);
        clients.insert(connection.clone(), Arc::downgrade(&built));
        built
    }

    /// Clients some key still uses.
    pub fn live(&self) -> usize {
        self.lock()
            .values()
            .filter(|client| client.strong_count() > 0)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Connection, Weak<KmsClient>>> {
        // Each update is one insert or retain: a poisoned map is still consistent.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A client for one connection, not shared: validation uses one per save, so that a mistyped
/// secret leaves no client behind. Must be called on the I/O runtime (it starts the background
/// refresh of expiring credentials there).
pub async fn build_client(connection: &Connection, timeouts: Timeouts) -> KmsClient {
    let mut loader = base_loader(&connection.region, timeouts);
    if let Some(url) = &connection.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    // Static keys need no refreshing; every other source may hand out expiring credentials.
    let source: Option<SharedCredentialsProvider> = match &connection.credentials {
        Credentials::Default => None,
        Credentials::AccessKey {
            access_key_id,
            secret_access_key,
        } => {
            loader = loader.credentials_provider(static_provider(access_key_id, secret_access_key));
            None
        }
        Credentials::AssumeRole(role) => {
            let mut sts = base_loader(&connection.region, timeouts);
            if let Some(url) = &role.sts_endpoint_url {
                sts = sts.endpoint_url(url);
            }
            if let Credentials::AccessKey {
                access_key_id,
                secret_access_key,
            } = role.base.as_ref()
            {
                sts = sts.credentials_provider(static_provider(access_key_id, secret_access_key));
            }
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
                .session_name(&role.session_name)
                .configure(&sts.load().await);
            if let Some(external_id) = &role.external_id {
                provider = provider.external_id(external_id.expose());
            }
            Some(SharedCredentialsProvider::new(provider.build().await))
        }
    };
    let sdk_config = loader.load().await;
    // The default chain: whatever it finds (environment keys, web identity, container or
    // instance credentials) is held and refreshed like an assumed role's.
    let source = source.or_else(|| match connection.credentials {
        Credentials::Default => sdk_config.credentials_provider(),
        Credentials::AccessKey { .. } | Credentials::AssumeRole(_) => None,
    });
    // No stalled-stream guard: KMS's answers are a few hundred bytes, and every attempt is bounded
    // as a whole (the attempt timeout, the call's deadline), so the guard's per-call body wrappers
    // and timers would only add work to each Sign.
    let mut config = aws_sdk_kms::config::Builder::from(&sdk_config)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    // Only KMS's calls: credentials providers (STS, IMDS, containers) keep the SDK's client.
    if !direct_http::proxy_configured() {
        config = config
            .http_client(DirectHttpClient::new(timeouts.connect, timeouts.attempt).into_shared());
    }
    let (credentials, refresh) = match source {
        Some(source) => {
            let (credentials, refresh) = RefreshingCredentials::start(source);
            // Ours hold the credentials; the SDK's own cache would refresh on a request's time.
            config = config
                .credentials_provider(credentials.clone())
                .identity_cache(IdentityCache::no_cache());
            (Some(credentials), Some(refresh))
        }
        None => (None, None),
    };
    KmsClient {
        sdk: aws_sdk_kms::Client::from_conf(config.build()),
        budget: RetryBudget::default(),
        label: label(connection),
        credentials,
        _refresh: refresh,
    }
}

/// The endpoint and region of a connection, as messages name a client.
fn label(connection: &Connection) -> String {
    format!(
        "{} ({})",
        connection
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", connection.region)),
        connection.region
    )
}

/// Region, timeouts and no SDK retries: retries are ours (see `call`): what the SDKs' standard
/// mode treats as transient, inside one deadline, paid for from the client's retry budget.
fn base_loader(region: &str, timeouts: Timeouts) -> aws_config::ConfigLoader {
    let timeout_config = TimeoutConfig::builder()
        .connect_timeout(timeouts.connect)
        .operation_attempt_timeout(timeouts.attempt)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .timeout_config(timeout_config)
        .retry_config(RetryConfig::disabled())
}

fn static_provider(access_key_id: &str, secret: &Secret) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        access_key_id,
        secret.expose(),
        None,
        None,
        "keycloak-component",
    )
}
