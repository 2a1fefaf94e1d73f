//! The signing keys Keycloak's `aws-kms` components use, named for Java by opaque handles (plain
//! numbers, never pointers), with a lifecycle one can count:
//!
//! - a key is registered under its **component id**: the same component with the same
//!   configuration gets the same handle back (Keycloak re-creates its key providers freely), a
//!   changed configuration (a re-save, a rotated vault secret) replaces the component's entry,
//!   and the previous handle stops working;
//! - [`SigningKeys::release`] forgets a removed or updated component;
//! - a KMS client lives as long as a registered key uses it ([`ClientPool`]), so nothing that a
//!   replaced or released configuration held (credentials, connection pool) stays in memory;
//!   the configuration's secrets are wiped when it is dropped.
//!
//! A signature in progress holds its key (`Arc`), so replacing or releasing a key never cuts a
//! running `Sign` short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use once_cell::sync::Lazy;

use crate::error::{Error, ErrorKind, Result};
use crate::runtime;
use crate::signing::algorithm::SigningAlgorithm;
use crate::signing::config::{ProviderConfig, StoredKey};
use crate::signing::key::SigningKey;
use crate::signing::kms::ClientPool;
use crate::signing::policy;

struct Entry {
    handle: u64,
    /// What the key was built from, compared field by field (secrets included) on every
    /// registration; dropping it wipes the secrets.
    configuration: (ProviderConfig, StoredKey),
}

struct Registry {
    by_component: HashMap<String, Entry>,
    /// The signing path's index: handle → the key it names now.
    by_handle: HashMap<u64, Arc<SigningKey>>,
    next_handle: u64,
}

impl Registry {
    /// Takes the component's entry and key out; the caller drops them outside the lock (the
    /// last reference to a client closes its connections).
    fn remove(&mut self, component_id: &str) -> Option<(Entry, Option<Arc<SigningKey>>)> {
        let entry = self.by_component.remove(component_id)?;
        let key = self.by_handle.remove(&entry.handle);
        Some((entry, key))
    }
}

/// A registry of signing keys with its own KMS clients; the process has one ([`global`]), tests
/// make their own to count what it holds.
#[derive(Debug)]
pub struct SigningKeys {
    registry: Mutex<Registry>,
    clients: ClientPool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("keys", &self.by_component.len())
            .finish_non_exhaustive()
    }
}

impl Default for SigningKeys {
    fn default() -> Self {
        SigningKeys {
            registry: Mutex::new(Registry {
                by_component: HashMap::new(),
                by_handle: HashMap::new(),
                // 0 is what a failed native call returns to Java, so it never names a key.
                next_handle: 1,
            }),
            clients: ClientPool::default(),
        }
    }
}

/// What a registry holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryStats {
    /// Registered signing keys: at most one per component.
    pub keys: usize,
    /// KMS clients some registered key uses.
    pub clients: usize,
}

impl RegistryStats {
    /// The JSON of `signingKeyStats`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "keys": self.keys, "clients": self.clients }).to_string()
    }
}

impl SigningKeys {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Every update is a few inserts or removes: a poisoned registry is still consistent.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the signing key of component `component_id` from its stored configuration and
    /// returns its handle. No network call is made. The configuration is held to the server
    /// policy again ([`policy::current`], for the realm named in the JSON): a provider saved
    /// under a looser policy is refused with `POLICY_DENIED` and never signs.
    pub fn register(&self, component_id: &str, config_json: &str) -> Result<u64> {
        if component_id.trim().is_empty() {
            return Err(Error::invalid_argument("The component id is empty"));
        }
        let configuration = StoredKey::from_json(config_json)?;
        let realm = policy::realm_named_in(config_json)?;
        policy::current().check_use(
            realm.as_deref(),
            &configuration.0,
            &configuration.1.key_arn,
        )?;
        if let Some(entry) = self.lock().by_component.get(component_id) {
            if entry.configuration == configuration {
                return Ok(entry.handle);
            }
        }
        let (config, stored) = &configuration;
        let client = runtime::block_on(self.clients.shared(&config.connection))?;
        let key = Arc::new(SigningKey::new(
            client,
            config.connection.clone(),
            stored.clone(),
        )?);
        let mut registry = self.lock();
        if let Some(entry) = registry.by_component.get(component_id) {
            if entry.configuration == configuration {
                // Another thread registered the same configuration meanwhile.
                return Ok(entry.handle);
            }
        }
        let handle = registry.next_handle;
        registry.next_handle += 1;
        let replaced = registry.remove(component_id);
        registry.by_handle.insert(handle, key);
        registry.by_component.insert(
            component_id.to_owned(),
            Entry {
                handle,
                configuration,
            },
        );
        drop(registry);
        drop(replaced);
        Ok(handle)
    }

    /// Forgets the key of a removed or reconfigured component; its handle stops working. An
    /// unknown id is not an error (another node's component, or one that never signed).
    pub fn release(&self, component_id: &str) {
        let released = self.lock().remove(component_id);
        drop(released);
    }

    /// Signs with a registered key; `jca_algorithm` is the JCA `Signature` name Keycloak asked
    /// for.
    pub fn sign(&self, handle: u64, jca_algorithm: &str, message: &[u8]) -> Result<Vec<u8>> {
        let algorithm = SigningAlgorithm::from_jca(jca_algorithm)?;
        let key = self.lock().by_handle.get(&handle).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidHandle,
                format!(
                    "No signing key is registered as handle {handle}: its provider was saved \
                     again or removed since this key was built"
                ),
            )
        })?;
        // The lock is released: signing waits for KMS without blocking other keys.
        key.sign(algorithm, message)
    }

    /// Counts of what is registered, for tests under churn and for operators.
    pub fn stats(&self) -> RegistryStats {
        let keys = self.lock().by_component.len();
        RegistryStats {
            keys,
            clients: self.clients.live(),
        }
    }
}

static GLOBAL: Lazy<SigningKeys> = Lazy::new(SigningKeys::default);

/// The process's registry, which the JNI natives use.
pub fn global() -> &'static SigningKeys {
    &GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_without_stored_public_material_is_refused() {
        let error = SigningKeys::default()
            .register("c1", r#"{"kmsKeyId":"alias/a","region":"us-east-1"}"#)
            .expect_err("stale");
        assert_eq!(error.kind(), ErrorKind::InvalidConfiguration);
    }

    #[test]
    fn registration_without_a_component_id_is_refused() {
        let error = SigningKeys::default()
            .register(" ", "{}")
            .expect_err("no id");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn unknown_handles_are_refused() {
        let error = SigningKeys::default()
            .sign(u64::MAX, "SHA256withRSA", b"m")
            .expect_err("unknown");
        assert_eq!(error.kind(), ErrorKind::InvalidHandle);
    }
}
