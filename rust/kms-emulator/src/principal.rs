//! The callers the emulator knows: long-term credentials (access key, secret, and what each may
//! do), the roles they may assume, and the temporary credentials STS `AssumeRole` issued.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::protocol::{ErrorKind, KmsError, Operation};

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

/// An IAM role that callers may assume with STS `AssumeRole`; its sessions may do what `policy`
/// allows.
#[derive(Clone, PartialEq, Eq)]
pub struct Role {
    arn: String,
    external_id: Option<String>,
    policy: Policy,
}

impl Role {
    /// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`; with `external_id`, `AssumeRole` must pass
    /// exactly that `ExternalId`. [`Role::validate`] (and `start`) check the values.
    pub fn new(arn: impl Into<String>, external_id: Option<String>, policy: Policy) -> Role {
        Role {
            arn: arn.into(),
            external_id,
            policy,
        }
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn requires_external_id(&self) -> bool {
        self.external_id.is_some()
    }

    /// The problem with the ARN or external id, if any.
    pub fn validate(&self) -> Result<(), String> {
        if RoleArn::parse(&self.arn).is_none() {
            return Err(format!(
                "'{}' is not an IAM role ARN such as arn:aws:iam::111122223333:role/NAME",
                self.arn
            ));
        }
        if let Some(external_id) = &self.external_id {
            if !is_external_id(external_id) {
                return Err(format!(
                    "the external id of {} must be 2 to 1224 characters of [\\w+=,.@:/-]",
                    self.arn
                ));
            }
        }
        Ok(())
    }

    fn matches_external_id(&self, given: Option<&str>) -> bool {
        match (&self.external_id, given) {
            (None, _) => true,
            (Some(expected), Some(given)) => constant_time_eq(expected, given),
            (Some(_), None) => false,
        }
    }
}

impl fmt::Debug for Role {
    /// Never prints the external id (the product treats it as a secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Role")
            .field("arn", &self.arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "<redacted>"),
            )
            .field("policy", &self.policy)
            .finish()
    }
}

/// The parts of a role ARN the assumed-role ARN is made of.
struct RoleArn<'a> {
    partition: &'a str,
    account_id: &'a str,
    /// The last path segment: assumed-role ARNs leave the path out.
    name: &'a str,
}

impl<'a> RoleArn<'a> {
    fn parse(arn: &'a str) -> Option<RoleArn<'a>> {
        let parts: Vec<&str> = arn.split(':').collect();
        let ["arn", partition, "iam", "", account_id, resource] = parts[..] else {
            return None;
        };
        let path = resource.strip_prefix("role/")?;
        let partition_ok = !partition.is_empty()
            && partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-');
        let account_ok = account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit());
        let segments_ok = path.split('/').all(|segment| {
            !segment.is_empty() && segment.len() <= 64 && segment.bytes().all(is_name_byte)
        });
        if !(partition_ok && account_ok && segments_ok && arn.len() <= 2048) {
            return None;
        }
        let name = path.rsplit('/').next()?;
        Some(RoleArn {
            partition,
            account_id,
            name,
        })
    }
}

/// `[\w+=,.@-]`: the characters of IAM names and STS role session names.
pub(crate) fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"_+=,.@-".contains(&byte)
}

/// STS's `ExternalId` constraint: 2 to 1224 characters of `[\w+=,.@:/-]`.
pub(crate) fn is_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| is_name_byte(b) || b == b':' || b == b'/')
}

/// Who signed a request, and what it may do.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub access_key_id: String,
    /// `arn:aws:iam::ACCOUNT:user/AKID` for long-term credentials (the emulator has no user
    /// names), `arn:…:sts::ACCOUNT:assumed-role/NAME/SESSION` for temporary ones.
    pub arn: String,
    pub policy: Policy,
    /// Temporary credentials from `AssumeRole`.
    pub temporary: bool,
}

/// Temporary credentials issued by `AssumeRole`, as the response shows them.
#[derive(Clone)]
pub(crate) struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: SystemTime,
    /// `AROA…:SESSION`.
    pub assumed_role_id: String,
    /// `arn:…:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    pub assumed_role_arn: String,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .finish_non_exhaustive()
    }
}

/// An issued session: its secrets, when it ends, and who it acts as.
struct Session {
    secret_access_key: String,
    session_token: String,
    expiration: SystemTime,
    caller: Caller,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("expiration", &self.expiration)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

/// Sessions that expired longer ago than this are forgotten (until then they are answered with
/// `ExpiredToken` rather than as unknown).
const EXPIRED_SESSION_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Every identity the emulator knows: the configured long-term credentials and roles, and the
/// sessions issued so far.
#[derive(Debug)]
pub struct Identities {
    account_id: String,
    principals: Vec<Principal>,
    roles: Vec<Role>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Identities {
    /// The given principals (the default credentials when none are given) and roles.
    pub fn new(account_id: &str, principals: Vec<Principal>, roles: Vec<Role>) -> Identities {
        let principals = if principals.is_empty() {
            vec![Principal::default_credentials()]
        } else {
            principals
        };
        Identities {
            account_id: account_id.to_owned(),
            principals,
            roles,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The secret to check a request's signature with, and who the caller is. Temporary
    /// credentials need their own session token (`UnrecognizedClient` without it) and must not
    /// have expired (`ExpiredToken`); long-term credentials ignore a session token.
    pub(crate) fn credential(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: SystemTime,
    ) -> Result<(String, Caller), KmsError> {
        if let Some(principal) = self
            .principals
            .iter()
            .find(|principal| principal.access_key_id == access_key_id)
        {
            let caller = Caller {
                access_key_id: principal.access_key_id.clone(),
                arn: format!("arn:aws:iam::{}:user/{}", self.account_id, access_key_id),
                policy: principal.policy.clone(),
                temporary: false,
            };
            return Ok((principal.secret_access_key.clone(), caller));
        }
        let sessions = self.sessions();
        let session = sessions
            .get(access_key_id)
            .filter(|session| {
                session_token.is_some_and(|token| constant_time_eq(&session.session_token, token))
            })
            .ok_or_else(invalid_token)?;
        if now >= session.expiration {
            return Err(KmsError::new(
                ErrorKind::ExpiredToken,
                "The security token included in the request is expired",
            ));
        }
        Ok((session.secret_access_key.clone(), session.caller.clone()))
    }

    /// Whether `caller` may assume the role `role_arn` with this `ExternalId`: the caller's
    /// policy allows `AssumeRole`, the role exists and the external id is the role's (when it
    /// has one). Unknown roles and wrong ids are refused alike, as AWS does.
    pub(crate) fn authorize_assume_role(
        &self,
        caller: &Caller,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<&Role, KmsError> {
        self.roles
            .iter()
            .find(|role| role.arn == role_arn)
            .filter(|_| caller.policy.allows(Operation::AssumeRole))
            .filter(|role| role.matches_external_id(external_id))
            .ok_or_else(|| {
                KmsError::new(
                    ErrorKind::AccessDenied,
                    format!(
                        "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                        caller.arn
                    ),
                )
            })
    }

    /// Issues temporary credentials for a session of `role`, valid for `duration` from `now`.
    pub(crate) fn issue(
        &self,
        role: &Role,
        session_name: &str,
        duration: Duration,
        now: SystemTime,
    ) -> Result<IssuedCredentials, KmsError> {
        let arn = RoleArn::parse(&role.arn).ok_or_else(|| {
            KmsError::new(ErrorKind::Internal, "a configured role ARN does not parse")
        })?;
        let assumed_role_arn = format!(
            "arn:{}:sts::{}:assumed-role/{}/{session_name}",
            arn.partition, arn.account_id, arn.name
        );
        let assumed_role_id = format!("{}:{session_name}", role_id(&role.arn));
        let mut sessions = self.sessions();
        sessions.retain(|_, session| session.expiration + EXPIRED_SESSION_RETENTION > now);
        let access_key_id = loop {
            let candidate = format!("ASIA{}", random_string(16, UPPER_ALNUM)?);
            let taken = sessions.contains_key(&candidate)
                || self
                    .principals
                    .iter()
                    .any(|principal| principal.access_key_id == candidate);
            if !taken {
                break candidate;
            }
        };
        let issued = IssuedCredentials {
            access_key_id: access_key_id.clone(),
            secret_access_key: random_string(40, SECRET_ALPHABET)?,
            session_token: random_string(356, SECRET_ALPHABET)?,
            expiration: now + duration,
            assumed_role_id,
            assumed_role_arn: assumed_role_arn.clone(),
        };
        sessions.insert(
            access_key_id.clone(),
            Session {
                secret_access_key: issued.secret_access_key.clone(),
                session_token: issued.session_token.clone(),
                expiration: issued.expiration,
                caller: Caller {
                    access_key_id,
                    arn: assumed_role_arn,
                    policy: role.policy.clone(),
                    temporary: true,
                },
            },
        );
        Ok(issued)
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // Sessions are inserted whole; a panic cannot leave one half-written.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn invalid_token() -> KmsError {
    KmsError::new(
        ErrorKind::UnrecognizedClient,
        "The security token included in the request is invalid.",
    )
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `len` characters drawn uniformly from `alphabet` (at most 256 characters long).
fn random_string(len: usize, alphabet: &[u8]) -> Result<String, KmsError> {
    // Bytes at or above the largest multiple of the alphabet length are skipped: no modulo bias.
    let limit = 256 - 256 % alphabet.len();
    let mut text = String::with_capacity(len);
    let mut buffer = [0u8; 64];
    while text.len() < len {
        getrandom::fill(&mut buffer).map_err(|err| {
            KmsError::new(
                ErrorKind::Internal,
                format!("the system random number generator failed: {err}"),
            )
        })?;
        for &byte in &buffer {
            if usize::from(byte) < limit && text.len() < len {
                text.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
            }
        }
    }
    Ok(text)
}

/// A stable role id for an ARN: `AROA` and 17 upper-case letters and digits.
fn role_id(arn: &str) -> String {
    let digest = Sha256::digest(arn.as_bytes());
    let suffix: String = digest
        .iter()
        .take(17)
        .map(|byte| char::from(UPPER_ALNUM[usize::from(*byte) % UPPER_ALNUM.len()]))
        .collect();
    format!("AROA{suffix}")
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/signer";

    #[test]
    fn debug_output_never_contains_the_secret() {
        let principal = Principal::new("AKID", "very-secret", Policy::allow_all());
        let printed = format!("{principal:?}");
        assert!(printed.contains("AKID"));
        assert!(!printed.contains("very-secret"));
        let role = Role::new(
            ROLE,
            Some("external-secret".to_owned()),
            Policy::allow_all(),
        );
        assert!(!format!("{role:?}").contains("external-secret"));
    }

    #[test]
    fn a_policy_denies_only_the_listed_operations() {
        let policy = Policy::deny([Operation::Sign]);
        assert!(!policy.allows(Operation::Sign));
        assert!(policy.allows(Operation::DescribeKey));
    }

    fn identities(roles: Vec<Role>) -> Identities {
        Identities::new("111122223333", Vec::new(), roles)
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn without_configured_credentials_the_defaults_apply() {
        let identities = identities(Vec::new());
        let (secret, caller) = identities
            .credential(DEFAULT_ACCESS_KEY_ID, Some("ignored"), now())
            .expect("default credentials");
        assert_eq!(secret, DEFAULT_SECRET_ACCESS_KEY);
        assert!(!caller.temporary);
        assert_eq!(
            caller.arn,
            format!("arn:aws:iam::111122223333:user/{DEFAULT_ACCESS_KEY_ID}")
        );
        let err = identities
            .credential("AKIAOTHER", None, now())
            .expect_err("unknown");
        assert_eq!(err.kind(), ErrorKind::UnrecognizedClient);
    }

    #[test]
    fn role_arns_are_checked_and_name_the_assumed_role_without_their_path() {
        for good in [ROLE, "arn:aws-cn:iam::111122223333:role/path/to/my.role+x"] {
            Role::new(good, None, Policy::allow_all())
                .validate()
                .expect(good);
        }
        for bad in [
            "arn:aws:iam::111122223333:user/signer",
            "arn:aws:iam::1111:role/signer",
            "arn:aws:sts::111122223333:role/signer",
            "arn:aws:iam:us-east-1:111122223333:role/signer",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::111122223333:role/a b",
        ] {
            assert!(
                Role::new(bad, None, Policy::allow_all())
                    .validate()
                    .is_err(),
                "{bad}"
            );
        }
        let bad_id = Role::new(ROLE, Some("x".to_owned()), Policy::allow_all());
        assert!(bad_id.validate().is_err());
        let role = Role::new(
            "arn:aws:iam::444455556666:role/team/signer",
            None,
            Policy::allow_all(),
        );
        let identities = identities(vec![role.clone()]);
        let issued = identities
            .issue(&role, "session", Duration::from_secs(900), now())
            .expect("issued");
        assert_eq!(
            issued.assumed_role_arn,
            "arn:aws:sts::444455556666:assumed-role/signer/session"
        );
        assert!(issued.assumed_role_id.starts_with("AROA"));
        assert!(issued.assumed_role_id.ends_with(":session"));
        assert_eq!(
            issued.assumed_role_id.len(),
            "AROA".len() + 17 + ":session".len()
        );
    }

    #[test]
    fn issued_credentials_need_their_session_token_and_expire() {
        let role = Role::new(ROLE, None, Policy::deny([Operation::Sign]));
        let identities = identities(vec![role.clone()]);
        let issued = identities
            .issue(&role, "session", Duration::from_secs(900), now())
            .expect("issued");
        assert!(issued.access_key_id.starts_with("ASIA"));
        assert_eq!(issued.access_key_id.len(), 20);
        assert!(issued.access_key_id[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(issued.secret_access_key.len(), 40);

        let token = issued.session_token.as_str();
        let (secret, caller) = identities
            .credential(&issued.access_key_id, Some(token), now())
            .expect("valid session");
        assert_eq!(secret, issued.secret_access_key);
        assert!(caller.temporary);
        assert!(!caller.policy.allows(Operation::Sign));

        for wrong in [None, Some("another-token")] {
            let err = identities
                .credential(&issued.access_key_id, wrong, now())
                .expect_err("token required");
            assert_eq!(err.kind(), ErrorKind::UnrecognizedClient);
        }
        let just_valid = now() + Duration::from_secs(899);
        identities
            .credential(&issued.access_key_id, Some(token), just_valid)
            .expect("valid until the expiration");
        let expired = now() + Duration::from_secs(900);
        let err = identities
            .credential(&issued.access_key_id, Some(token), expired)
            .expect_err("expired");
        assert_eq!(err.kind(), ErrorKind::ExpiredToken);
    }

    #[test]
    fn unknown_roles_wrong_external_ids_and_denied_callers_are_refused_alike() {
        let role = Role::new(ROLE, Some("expected-id".to_owned()), Policy::allow_all());
        let identities = identities(vec![role]);
        let (_, caller) = identities
            .credential(DEFAULT_ACCESS_KEY_ID, None, now())
            .expect("caller");
        identities
            .authorize_assume_role(&caller, ROLE, Some("expected-id"))
            .expect("authorized");
        let refused = [
            (ROLE, None),
            (ROLE, Some("other-id")),
            ("arn:aws:iam::111122223333:role/other", Some("expected-id")),
        ];
        for (arn, external_id) in refused {
            let err = identities
                .authorize_assume_role(&caller, arn, external_id)
                .expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::AccessDenied);
            assert_eq!(
                err.message(),
                format!(
                    "User: {} is not authorized to perform: sts:AssumeRole on resource: {arn}",
                    caller.arn
                )
            );
        }
        let denied = Caller {
            policy: Policy::deny([Operation::AssumeRole]),
            ..caller
        };
        let err = identities
            .authorize_assume_role(&denied, ROLE, Some("expected-id"))
            .expect_err("caller may not assume roles");
        assert_eq!(err.kind(), ErrorKind::AccessDenied);
    }
}
