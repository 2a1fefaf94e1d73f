//! KMS clients: one per connection (region, endpoint, credentials), shared by every signing key
//! that uses it so that its connection pool and cached credentials serve them all, and dropped
//! with the last key that uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};

use super::calls::Timeouts;
use crate::signing::config::{Connection, Credentials, Secret};

/// A KMS client as signing keys hold it; the pool keeps only a weak reference.
pub type SharedClient = Arc<aws_sdk_kms::Client>;

/// The clients signing keys use now, by connection. An entry lives as long as some key holds its
/// client: re-saves, vault rotations and removed providers leave nothing behind.
#[derive(Debug, Default)]
pub struct ClientPool {
    clients: Mutex<HashMap<Connection, Weak<aws_sdk_kms::Client>>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Connection, Weak<aws_sdk_kms::Client>>> {
        // Each update is one insert or retain: a poisoned map is still consistent.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A client for one connection, not shared: validation uses one per save, so that a mistyped
/// secret leaves no client behind.
pub async fn build_client(connection: &Connection, timeouts: Timeouts) -> aws_sdk_kms::Client {
    let mut loader = base_loader(&connection.region, timeouts);
    if let Some(url) = &connection.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    match &connection.credentials {
        Credentials::Default => {}
        Credentials::AccessKey {
            access_key_id,
            secret_access_key,
        } => {
            loader = loader.credentials_provider(static_provider(access_key_id, secret_access_key));
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
            // The SDK caches the assumed credentials and refreshes them before they expire.
            loader = loader.credentials_provider(provider.build().await);
        }
    }
    aws_sdk_kms::Client::new(&loader.load().await)
}

/// Region, timeouts and no SDK retries: retries are ours (see `call`), only throttling and 5xx,
/// inside one deadline.
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
