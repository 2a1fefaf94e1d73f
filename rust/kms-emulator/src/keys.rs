//! The keys and aliases of one account in one region, their life cycle, and key-id resolution.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::crypto::{KeyMaterial, KeySpec};
use crate::protocol::{ErrorKind, KmsError, Timestamp};

const ALIAS_PREFIX: &str = "alias/";
const RESERVED_ALIAS_PREFIX: &str = "alias/aws/";
const MAX_ALIAS_NAME_LEN: usize = 256;

/// `KeyUsage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUsage {
    SignVerify,
    EncryptDecrypt,
}

impl KeyUsage {
    pub const ALL: [KeyUsage; 2] = [KeyUsage::SignVerify, KeyUsage::EncryptDecrypt];

    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::SignVerify => "SIGN_VERIFY",
            KeyUsage::EncryptDecrypt => "ENCRYPT_DECRYPT",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyUsage> {
        KeyUsage::ALL.into_iter().find(|usage| usage.name() == name)
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `KeyState` (the states this emulator's keys can be in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub fn name(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

/// A KMS key. Cloning is cheap: the private key is shared.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub arn: String,
    pub created: Timestamp,
    pub description: String,
    pub usage: KeyUsage,
    pub spec: KeySpec,
    pub state: KeyState,
    pub deletion_date: Option<Timestamp>,
    pub material: Arc<KeyMaterial>,
}

/// An alias and the key it points to.
#[derive(Clone, Debug)]
pub struct Alias {
    pub name: String,
    pub arn: String,
    pub target_key_id: String,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next_marker: Option<String>,
}

/// What a `KeyId` member names once its form is known.
#[derive(Debug, PartialEq, Eq)]
enum KeyRef<'a> {
    Key(&'a str),
    Alias(&'a str),
}

/// All keys and aliases. Locking is short and never held across an await or a private-key
/// operation.
#[derive(Debug)]
pub struct KeyStore {
    region: String,
    account_id: String,
    inventory: Mutex<Inventory>,
}

#[derive(Debug, Default)]
struct Inventory {
    /// In creation order, which is the order of `ListKeys`.
    keys: Vec<Key>,
    aliases: BTreeMap<String, Alias>,
}

impl Inventory {
    fn key(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|key| key.id == id)
    }

    fn key_mut(&mut self, id: &str) -> Option<&mut Key> {
        self.keys.iter_mut().find(|key| key.id == id)
    }
}

impl KeyStore {
    pub fn new(region: impl Into<String>, account_id: impl Into<String>) -> KeyStore {
        KeyStore {
            region: region.into(),
            account_id: account_id.into(),
            inventory: Mutex::new(Inventory::default()),
        }
    }

    /// The region this store's endpoint serves.
    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    fn arn(&self, resource: &str) -> String {
        format!("arn:aws:kms:{}:{}:{resource}", self.region, self.account_id)
    }

    fn inventory(&self) -> MutexGuard<'_, Inventory> {
        // The inventory stays consistent even if a holder panicked: every mutation is a single
        // assignment or push.
        self.inventory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a new key in state `Enabled` and returns it.
    pub fn add_key(
        &self,
        spec: KeySpec,
        usage: KeyUsage,
        description: String,
        material: KeyMaterial,
    ) -> Key {
        let id = uuid::Uuid::new_v4().to_string();
        let key = Key {
            arn: self.arn(&format!("key/{id}")),
            id,
            created: Timestamp::now(),
            description,
            usage,
            spec,
            state: KeyState::Enabled,
            deletion_date: None,
            material: Arc::new(material),
        };
        self.inventory().keys.push(key.clone());
        key
    }

    /// The key named by `key_id` (key id, key ARN, alias name or alias ARN), in any state.
    pub fn describe(&self, key_id: &str) -> Result<Key, KmsError> {
        let inventory = self.inventory();
        self.resolve(&inventory, key_id).cloned()
    }

    /// The key named by `key_id` for a cryptographic operation: it must be `Enabled`.
    pub fn usable(&self, key_id: &str) -> Result<Key, KmsError> {
        let key = self.describe(key_id)?;
        match key.state {
            KeyState::Enabled => Ok(key),
            KeyState::Disabled => Err(KmsError::new(
                ErrorKind::Disabled,
                format!("{} is disabled.", key.arn),
            )),
            KeyState::PendingDeletion => Err(pending_deletion(&key)),
        }
    }

    pub fn enable(&self, key_id: &str) -> Result<(), KmsError> {
        self.update_key(key_id, |key| match key.state {
            KeyState::Enabled | KeyState::Disabled => {
                key.state = KeyState::Enabled;
                Ok(())
            }
            KeyState::PendingDeletion => Err(pending_deletion(key)),
        })
    }

    pub fn disable(&self, key_id: &str) -> Result<(), KmsError> {
        self.update_key(key_id, |key| match key.state {
            KeyState::Enabled | KeyState::Disabled => {
                key.state = KeyState::Disabled;
                Ok(())
            }
            KeyState::PendingDeletion => Err(pending_deletion(key)),
        })
    }

    /// Puts the key in `PendingDeletion`; it stays there (the emulator never deletes keys).
    pub fn schedule_deletion(&self, key_id: &str, window_days: u32) -> Result<Key, KmsError> {
        self.update_key(key_id, |key| match key.state {
            KeyState::Enabled | KeyState::Disabled => {
                key.state = KeyState::PendingDeletion;
                key.deletion_date = Some(Timestamp::now().plus_days(window_days));
                Ok(key.clone())
            }
            KeyState::PendingDeletion => Err(pending_deletion(key)),
        })
    }

    /// Cancels a scheduled deletion; like AWS, the key is then `Disabled`.
    pub fn cancel_deletion(&self, key_id: &str) -> Result<Key, KmsError> {
        self.update_key(key_id, |key| match key.state {
            KeyState::PendingDeletion => {
                key.state = KeyState::Disabled;
                key.deletion_date = None;
                Ok(key.clone())
            }
            KeyState::Enabled | KeyState::Disabled => Err(KmsError::new(
                ErrorKind::KmsInvalidState,
                format!("{} is not pending deletion.", key.arn),
            )),
        })
    }

    fn update_key<T>(
        &self,
        key_id: &str,
        change: impl FnOnce(&mut Key) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let mut inventory = self.inventory();
        let id = self.resolve(&inventory, key_id)?.id.clone();
        let key = inventory
            .key_mut(&id)
            .ok_or_else(|| self.key_not_found(&id))?;
        change(key)
    }

    pub fn create_alias(&self, alias_name: &str, target_key_id: &str) -> Result<Alias, KmsError> {
        validate_alias_name(alias_name)?;
        let mut inventory = self.inventory();
        let target = self.resolve(&inventory, target_key_id)?;
        if target.state == KeyState::PendingDeletion {
            return Err(pending_deletion(target));
        }
        let target = target.id.clone();
        if inventory.aliases.contains_key(alias_name) {
            return Err(KmsError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "An alias with the name {} already exists",
                    self.arn(alias_name)
                ),
            ));
        }
        let now = Timestamp::now();
        let alias = Alias {
            name: alias_name.to_owned(),
            arn: self.arn(alias_name),
            target_key_id: target,
            created: now,
            updated: now,
        };
        inventory
            .aliases
            .insert(alias_name.to_owned(), alias.clone());
        Ok(alias)
    }

    /// Points an existing alias at another key of the same kind (both asymmetric or both
    /// symmetric) and usage, as AWS requires.
    pub fn update_alias(&self, alias_name: &str, target_key_id: &str) -> Result<(), KmsError> {
        validate_alias_name(alias_name)?;
        let mut inventory = self.inventory();
        let target = self.resolve(&inventory, target_key_id)?;
        let current = inventory
            .aliases
            .get(alias_name)
            .and_then(|alias| inventory.key(&alias.target_key_id))
            .ok_or_else(|| self.alias_not_found(alias_name))?;
        if target.state == KeyState::PendingDeletion {
            return Err(pending_deletion(target));
        }
        let is_symmetric = |key: &Key| key.spec == KeySpec::SymmetricDefault;
        if is_symmetric(current) != is_symmetric(target) || current.usage != target.usage {
            return Err(KmsError::new(
                ErrorKind::Validation,
                format!(
                    "{alias_name} must point to a key of the same type (symmetric or asymmetric) \
                     and key usage as its current key"
                ),
            ));
        }
        let target = target.id.clone();
        if let Some(alias) = inventory.aliases.get_mut(alias_name) {
            alias.target_key_id = target;
            alias.updated = Timestamp::now();
        }
        Ok(())
    }

    pub fn delete_alias(&self, alias_name: &str) -> Result<(), KmsError> {
        validate_alias_name(alias_name)?;
        self.inventory()
            .aliases
            .remove(alias_name)
            .map(|_| ())
            .ok_or_else(|| self.alias_not_found(alias_name))
    }

    /// Aliases in name order, optionally only those of one key; `marker` is the name to start at.
    pub fn list_aliases(
        &self,
        key_id: Option<&str>,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<Page<Alias>, KmsError> {
        let inventory = self.inventory();
        let target = key_id
            .map(|key_id| self.resolve(&inventory, key_id))
            .transpose()?;
        let mut matching = inventory
            .aliases
            .range(marker.unwrap_or("").to_owned()..)
            .map(|(_, alias)| alias)
            .filter(|alias| target.is_none_or(|key| alias.target_key_id == key.id));
        let items: Vec<Alias> = matching.by_ref().take(limit).cloned().collect();
        let next_marker = matching.next().map(|alias| alias.name.clone());
        Ok(Page { items, next_marker })
    }

    /// Keys in creation order; `marker` is the key id to start at.
    pub fn list_keys(&self, limit: usize, marker: Option<&str>) -> Result<Page<Key>, KmsError> {
        let inventory = self.inventory();
        let start = match marker {
            None => 0,
            Some(marker) => inventory
                .keys
                .iter()
                .position(|key| key.id == marker)
                .ok_or_else(|| {
                    KmsError::new(ErrorKind::InvalidMarker, "The marker is not valid.")
                })?,
        };
        let rest = inventory.keys.get(start..).unwrap_or_default();
        let items = rest.iter().take(limit).cloned().collect();
        let next_marker = rest.get(limit).map(|key| key.id.clone());
        Ok(Page { items, next_marker })
    }

    /// Resolves any of the four `KeyId` forms to the key.
    fn resolve<'i>(&self, inventory: &'i Inventory, key_id: &str) -> Result<&'i Key, KmsError> {
        let id = match self.parse_key_ref(key_id)? {
            KeyRef::Key(id) => id,
            KeyRef::Alias(name) => inventory
                .aliases
                .get(name)
                .map(|alias| alias.target_key_id.as_str())
                .ok_or_else(|| self.alias_not_found(name))?,
        };
        inventory.key(id).ok_or_else(|| self.key_not_found(id))
    }

    fn parse_key_ref<'a>(&self, key_id: &'a str) -> Result<KeyRef<'a>, KmsError> {
        if key_id.is_empty() {
            return Err(KmsError::validation(
                "keyId",
                "Member must have length greater than or equal to 1",
            ));
        }
        if !key_id.starts_with("arn:") {
            return Ok(if key_id.starts_with(ALIAS_PREFIX) {
                KeyRef::Alias(key_id)
            } else {
                KeyRef::Key(key_id)
            });
        }
        // arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE
        let invalid_arn = || KmsError::new(ErrorKind::NotFound, format!("Invalid arn {key_id}"));
        let parts: Vec<&str> = key_id.splitn(6, ':').collect();
        let [_, partition, service, region, account, resource] = parts[..] else {
            return Err(invalid_arn());
        };
        if partition != "aws" || service != "kms" {
            return Err(invalid_arn());
        }
        if region != self.region || account != self.account_id {
            return Err(KmsError::new(
                ErrorKind::NotFound,
                format!(
                    "{key_id} does not exist in account {} region {}",
                    self.account_id, self.region
                ),
            ));
        }
        if let Some(id) = resource.strip_prefix("key/") {
            Ok(KeyRef::Key(id))
        } else if resource.starts_with(ALIAS_PREFIX) {
            Ok(KeyRef::Alias(resource))
        } else {
            Err(invalid_arn())
        }
    }

    fn key_not_found(&self, id: &str) -> KmsError {
        KmsError::new(
            ErrorKind::NotFound,
            format!("Key '{}' does not exist", self.arn(&format!("key/{id}"))),
        )
    }

    fn alias_not_found(&self, name: &str) -> KmsError {
        KmsError::new(
            ErrorKind::NotFound,
            format!("Alias {} is not found.", self.arn(name)),
        )
    }
}

fn pending_deletion(key: &Key) -> KmsError {
    KmsError::new(
        ErrorKind::KmsInvalidState,
        format!("{} is pending deletion.", key.arn),
    )
}

/// Alias names: `alias/` followed by at least one character of `[a-zA-Z0-9/_-]`, at most 256
/// characters, and not in the AWS-managed `alias/aws/` namespace.
pub fn validate_alias_name(name: &str) -> Result<(), KmsError> {
    if name.is_empty() || name.len() > MAX_ALIAS_NAME_LEN {
        return Err(KmsError::validation(
            "aliasName",
            "Member must have length between 1 and 256",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'))
    {
        return Err(KmsError::validation(
            "aliasName",
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        ));
    }
    let invalid = |why: &str| {
        KmsError::new(
            ErrorKind::InvalidAliasName,
            format!("Alias name {name} is not valid: {why}"),
        )
    };
    if name.len() <= ALIAS_PREFIX.len() || !name.starts_with(ALIAS_PREFIX) {
        return Err(invalid("it must begin with 'alias/' and name something"));
    }
    if name.starts_with(RESERVED_ALIAS_PREFIX) {
        return Err(invalid(
            "the prefix 'alias/aws/' is reserved for AWS managed keys",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn store_with_key() -> (KeyStore, Key) {
        let store = KeyStore::new("us-east-1", "111122223333");
        let key = store.add_key(
            KeySpec::SymmetricDefault,
            KeyUsage::EncryptDecrypt,
            String::new(),
            KeyMaterial::Symmetric,
        );
        (store, key)
    }

    #[test]
    fn a_key_resolves_by_id_arn_alias_and_alias_arn() {
        let (store, key) = store_with_key();
        store.create_alias("alias/test", &key.id).expect("alias");
        for key_id in [
            key.id.clone(),
            key.arn.clone(),
            "alias/test".to_owned(),
            "arn:aws:kms:us-east-1:111122223333:alias/test".to_owned(),
        ] {
            assert_eq!(
                store.describe(&key_id).expect("resolves").id,
                key.id,
                "{key_id}"
            );
        }
    }

    #[test]
    fn arns_of_another_region_or_account_are_not_found() {
        let (store, key) = store_with_key();
        for key_id in [
            format!("arn:aws:kms:eu-west-1:111122223333:key/{}", key.id),
            format!("arn:aws:kms:us-east-1:444455556666:key/{}", key.id),
            format!("arn:aws-cn:kms:us-east-1:111122223333:key/{}", key.id),
            "arn:aws:kms:us-east-1".to_owned(),
            "alias/missing".to_owned(),
            "00000000-0000-0000-0000-000000000000".to_owned(),
        ] {
            let err = store.describe(&key_id).expect_err("not found");
            assert_eq!(err.kind(), ErrorKind::NotFound, "{key_id}");
        }
    }

    #[test]
    fn alias_names_must_start_with_alias_and_not_alias_aws() {
        assert!(validate_alias_name("alias/ok_name-1/x").is_ok());
        for (name, kind) in [
            ("test", ErrorKind::InvalidAliasName),
            ("alias/", ErrorKind::InvalidAliasName),
            ("alias/aws/s3", ErrorKind::InvalidAliasName),
            ("alias/white space", ErrorKind::Validation),
            ("", ErrorKind::Validation),
        ] {
            let err = validate_alias_name(name).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}");
        }
    }

    #[test]
    fn the_key_life_cycle_follows_aws_states() {
        let (store, key) = store_with_key();
        store.disable(&key.id).expect("disable");
        assert_eq!(
            store.usable(&key.id).expect_err("disabled").kind(),
            ErrorKind::Disabled
        );
        store.schedule_deletion(&key.id, 7).expect("schedule");
        assert_eq!(
            store.usable(&key.id).expect_err("pending").kind(),
            ErrorKind::KmsInvalidState
        );
        assert_eq!(
            store.enable(&key.id).expect_err("pending").kind(),
            ErrorKind::KmsInvalidState
        );
        let described = store
            .describe(&key.id)
            .expect("describe works in every state");
        assert_eq!(described.state, KeyState::PendingDeletion);
        assert!(described.deletion_date.is_some());
        let cancelled = store.cancel_deletion(&key.id).expect("cancel");
        assert_eq!(cancelled.state, KeyState::Disabled);
        assert_eq!(
            store
                .cancel_deletion(&key.id)
                .expect_err("not pending")
                .kind(),
            ErrorKind::KmsInvalidState
        );
    }

    #[test]
    fn listings_page_with_markers() {
        let store = KeyStore::new("us-east-1", "111122223333");
        let keys: Vec<Key> = (0..3)
            .map(|_| {
                store.add_key(
                    KeySpec::SymmetricDefault,
                    KeyUsage::EncryptDecrypt,
                    String::new(),
                    KeyMaterial::Symmetric,
                )
            })
            .collect();
        let first = store.list_keys(2, None).expect("first page");
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.next_marker.as_deref(), Some(keys[2].id.as_str()));
        let second = store
            .list_keys(2, first.next_marker.as_deref())
            .expect("second page");
        assert_eq!(second.items.len(), 1);
        assert!(second.next_marker.is_none());
        assert_eq!(
            store
                .list_keys(2, Some("nope"))
                .expect_err("bad marker")
                .kind(),
            ErrorKind::InvalidMarker
        );

        for (i, key) in keys.iter().enumerate() {
            store
                .create_alias(&format!("alias/a{i}"), &key.id)
                .expect("alias");
        }
        let page = store.list_aliases(None, 2, None).expect("aliases");
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_marker.as_deref(), Some("alias/a2"));
        let only = store
            .list_aliases(Some(&keys[1].id), 10, None)
            .expect("filtered");
        assert_eq!(only.items.len(), 1);
        assert_eq!(only.items[0].name, "alias/a1");
    }
}
