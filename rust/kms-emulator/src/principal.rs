//! The callers the emulator knows: access key, secret, and what each may do.

use std::collections::BTreeSet;
use std::fmt;

use crate::protocol::Operation;

/// The access key id used when no `--credentials` are given.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIAEMULATOR00000001";
/// The secret of [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "emulator-secret-access-key-0001";

/// Which operations a principal may call. Everything is allowed unless denied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    denied: BTreeSet<Operation>,
}

impl Policy {
    pub fn allow_all() -> Policy {
        Policy::default()
    }

    pub fn deny(operations: impl IntoIterator<Item = Operation>) -> Policy {
        Policy {
            denied: operations.into_iter().collect(),
        }
    }

    pub fn allows(&self, operation: Operation) -> bool {
        !self.denied.contains(&operation)
    }
}

/// One set of credentials the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    access_key_id: String,
    secret_access_key: String,
    policy: Policy,
}

impl Principal {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        policy: Policy,
    ) -> Principal {
        Principal {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            policy,
        }
    }

    /// The built-in credentials, allowed everything.
    pub fn default_credentials() -> Principal {
        Principal::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_SECRET_ACCESS_KEY,
            Policy::allow_all(),
        )
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl fmt::Debug for Principal {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("policy", &self.policy)
            .finish()
    }
}

/// The configured principals, looked up by access key id.
#[derive(Clone, Debug)]
pub struct Principals(Vec<Principal>);

impl Principals {
    /// The given principals, or the default credentials when none are given.
    pub fn new(principals: Vec<Principal>) -> Principals {
        if principals.is_empty() {
            Principals(vec![Principal::default_credentials()])
        } else {
            Principals(principals)
        }
    }

    pub fn find(&self, access_key_id: &str) -> Option<&Principal> {
        self.0
            .iter()
            .find(|principal| principal.access_key_id == access_key_id)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let principal = Principal::new("AKID", "very-secret", Policy::allow_all());
        let printed = format!("{principal:?}");
        assert!(printed.contains("AKID"));
        assert!(!printed.contains("very-secret"));
    }

    #[test]
    fn a_policy_denies_only_the_listed_operations() {
        let policy = Policy::deny([Operation::Sign]);
        assert!(!policy.allows(Operation::Sign));
        assert!(policy.allows(Operation::DescribeKey));
    }

    #[test]
    fn without_configured_credentials_the_defaults_apply() {
        let principals = Principals::new(Vec::new());
        assert!(principals.find(DEFAULT_ACCESS_KEY_ID).is_some());
        assert!(principals.find("AKIAOTHER").is_none());
    }
}
