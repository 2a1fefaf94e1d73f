//! The command line of the `kms-emulator` binary.

use std::net::SocketAddr;

use crate::{Config, InitialKey, KeySpec, Operation, Policy, Principal, Role};

pub const USAGE: &str = "\
Usage: kms-emulator [OPTIONS]

A local AWS KMS emulator (AWS JSON 1.1, SigV4) with a control port for fault injection.
The KMS port also serves STS AssumeRole (AWS Query) for the --role roles.
On start it prints one JSON line to stdout:
  {\"kms\":\"http://…\",\"control\":\"http://…\",\"region\":\"…\",\"keys\":{\"alias/NAME\":\"arn:…\"},
   \"sts\":\"http://…\",\"roles\":[\"arn:…\"]}

Options:
  --listen ADDR              KMS port [default: 127.0.0.1:0]
  --control-listen ADDR      control port [default: 127.0.0.1:0]
  --region REGION            [default: us-east-1]
  --account-id ID            12 digits [default: 111122223333]
  --credentials AKID:SECRET[:deny=OP,OP…]
                             accepted credentials, repeatable; deny= lists operations this
                             access key may not call [default: AKIAEMULATOR00000001 /
                             emulator-secret-access-key-0001]; deny=AssumeRole keeps
                             it from assuming roles
  --role arn:aws:iam::ACCOUNT:role/NAME[:external-id=VALUE][:deny=OP,OP…]
                             a role any credentials may assume with STS AssumeRole,
                             repeatable; external-id= makes AssumeRole require that
                             ExternalId, deny= lists operations its sessions may not call
  --create-key alias/NAME=KEYSPEC
                             create a SIGN_VERIFY key (RSA_2048|RSA_3072|RSA_4096|
                             ECC_NIST_P256|ECC_NIST_P384|ECC_NIST_P521) and its alias;
                             SYMMETRIC_DEFAULT makes an ENCRYPT_DECRYPT key; repeatable
  --allow-non-loopback       allow binding addresses other than loopback
  --quiet                    no request log on stderr
  -h, --help                 print this help
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Config),
    Help,
}

/// Parses the arguments after the program name. Options take their value as the next argument
/// or after `=` (`--region=eu-west-1`).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut config = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => config.listen = parse_addr(&flag, &value()?)?,
            "--control-listen" => config.control_listen = parse_addr(&flag, &value()?)?,
            "--region" => config.region = value()?,
            "--account-id" => config.account_id = value()?,
            "--credentials" => config.principals.push(parse_credentials(&value()?)?),
            "--role" => config.roles.push(parse_role(&value()?)?),
            "--create-key" => config.keys.push(parse_initial_key(&value()?)?),
            "--allow-non-loopback" | "--quiet" | "-h" | "--help" if inline_value.is_some() => {
                return Err(format!("{flag} takes no value"));
            }
            "--allow-non-loopback" => config.allow_non_loopback = true,
            "--quiet" => config.log_requests = false,
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(format!("unknown argument '{flag}'")),
        }
    }
    Ok(Command::Run(config))
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} takes IP:PORT (e.g. 127.0.0.1:0), not '{value}'"))
}

/// `AKID:SECRET` or `AKID:SECRET:deny=Sign,GetPublicKey`.
fn parse_credentials(value: &str) -> Result<Principal, String> {
    let mut parts = value.splitn(3, ':');
    let (Some(access_key_id), Some(secret)) = (parts.next(), parts.next()) else {
        return Err("--credentials takes AKID:SECRET[:deny=OP,…]".to_owned());
    };
    if access_key_id.is_empty() || secret.is_empty() {
        return Err("--credentials needs a non-empty access key id and secret".to_owned());
    }
    let policy = match parts.next() {
        None => Policy::allow_all(),
        Some(rule) => {
            let denied = rule
                .strip_prefix("deny=")
                .ok_or_else(|| format!("--credentials for {access_key_id}: expected deny=OP,…"))?;
            parse_denied("--credentials", access_key_id, denied)?
        }
    };
    Ok(Principal::new(access_key_id, secret, policy))
}

/// `deny=OP,OP…` without the prefix.
fn parse_denied(flag: &str, owner: &str, denied: &str) -> Result<Policy, String> {
    let operations = denied
        .split(',')
        .map(|name| {
            Operation::from_name(name)
                .ok_or_else(|| format!("{flag} for {owner}: unknown operation '{name}'"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy::deny(operations))
}

/// `ROLE_ARN[:external-id=VALUE][:deny=OP,…]`, options in any order. The ARN is its first six
/// `:`-separated fields; an external id may contain `:` as long as no part after one starts
/// with `external-id=` or `deny=`.
fn parse_role(value: &str) -> Result<Role, String> {
    const EXTERNAL_ID: &str = "external-id=";
    const DENY: &str = "deny=";
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() < 6 {
        return Err(format!(
            "--role takes arn:aws:iam::ACCOUNT:role/NAME[:external-id=VALUE][:deny=OP,…], not '{value}'"
        ));
    }
    let arn = fields[..6].join(":");
    let mut options: Vec<String> = Vec::new();
    for field in &fields[6..] {
        match options.last_mut() {
            Some(option) if !field.starts_with(EXTERNAL_ID) && !field.starts_with(DENY) => {
                option.push(':');
                option.push_str(field);
            }
            _ => options.push((*field).to_owned()),
        }
    }
    let (mut external_id, mut policy) = (None, None);
    for option in options {
        if let Some(id) = option.strip_prefix(EXTERNAL_ID) {
            if external_id.replace(id.to_owned()).is_some() {
                return Err(format!("--role {arn}: external-id= given twice"));
            }
        } else if let Some(denied) = option.strip_prefix(DENY) {
            if policy
                .replace(parse_denied("--role", &arn, denied)?)
                .is_some()
            {
                return Err(format!("--role {arn}: deny= given twice"));
            }
        } else {
            return Err(format!(
                "--role {arn}: expected external-id=VALUE or deny=OP,…, not '{option}'"
            ));
        }
    }
    let role = Role::new(arn, external_id, policy.unwrap_or_default());
    role.validate()
        .map_err(|problem| format!("--role: {problem}"))?;
    Ok(role)
}

/// `alias/NAME=KEYSPEC`.
fn parse_initial_key(value: &str) -> Result<InitialKey, String> {
    let (alias, spec) = value
        .rsplit_once('=')
        .ok_or_else(|| format!("--create-key takes alias/NAME=KEYSPEC, not '{value}'"))?;
    let spec = KeySpec::from_name(spec)
        .ok_or_else(|| format!("--create-key: unknown key spec '{spec}'"))?;
    Ok(InitialKey {
        alias: alias.to_owned(),
        spec,
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|arg| (*arg).to_owned()))
    }

    fn config(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Command::Run(config)) => config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let config = config(&[]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.account_id, "111122223333");
        assert!(config.principals.is_empty());
        assert!(config.log_requests);
    }

    #[test]
    fn every_option_is_parsed_in_both_spellings() {
        let config = config(&[
            "--listen",
            "127.0.0.1:4566",
            "--control-listen=127.0.0.1:4567",
            "--region",
            "eu-west-1",
            "--account-id=444455556666",
            "--credentials",
            "AKID1:secret1",
            "--credentials=AKID2:secret2:deny=Sign,GetPublicKey",
            "--role",
            "arn:aws:iam::111122223333:role/plain",
            "--role=arn:aws:iam::111122223333:role/path/reader:deny=Sign:external-id=a:b/c",
            "--create-key",
            "alias/rsa=RSA_2048",
            "--create-key=alias/ec=ECC_NIST_P256",
            "--quiet",
        ]);
        assert_eq!(config.listen.port(), 4566);
        assert_eq!(config.control_listen.port(), 4567);
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.account_id, "444455556666");
        assert_eq!(
            config.principals,
            vec![
                Principal::new("AKID1", "secret1", Policy::allow_all()),
                Principal::new(
                    "AKID2",
                    "secret2",
                    Policy::deny([Operation::Sign, Operation::GetPublicKey])
                ),
            ]
        );
        assert_eq!(
            config.keys,
            vec![
                InitialKey {
                    alias: "alias/rsa".to_owned(),
                    spec: KeySpec::Rsa2048
                },
                InitialKey {
                    alias: "alias/ec".to_owned(),
                    spec: KeySpec::EccNistP256
                },
            ]
        );
        assert_eq!(
            config.roles,
            vec![
                Role::new(
                    "arn:aws:iam::111122223333:role/plain",
                    None,
                    Policy::allow_all()
                ),
                Role::new(
                    "arn:aws:iam::111122223333:role/path/reader",
                    Some("a:b/c".to_owned()),
                    Policy::deny([Operation::Sign])
                ),
            ]
        );
        assert!(!config.log_requests);
    }

    #[test]
    fn malformed_arguments_are_refused() {
        for args in [
            &["--listen", "localhost"][..],
            &["--listen"],
            &["--credentials", "AKID"],
            &["--credentials", "AKID:secret:allow=Sign"],
            &["--credentials", "AKID:secret:deny=Encrypt"],
            &["--role", "arn:aws:iam::111122223333"],
            &["--role", "arn:aws:iam::111122223333:user/x"],
            &["--role", "arn:aws:iam::111122223333:role/x:allow=Sign"],
            &["--role", "arn:aws:iam::111122223333:role/x:deny=Encrypt"],
            &["--role", "arn:aws:iam::111122223333:role/x:external-id=x"],
            &[
                "--role",
                "arn:aws:iam::111122223333:role/x:deny=Sign:deny=Verify",
            ],
            &["--create-key", "alias/x"],
            &["--create-key", "alias/x=HMAC_256"],
            &["--quiet=yes"],
            &["--verbose"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn help_is_a_command() {
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
    }
}
