//! The command line of the `kms-emulator` binary.

use std::net::SocketAddr;

use crate::{Config, InitialKey, KeySpec, Operation, Policy, Principal};

pub const USAGE: &str = "\
Usage: kms-emulator [OPTIONS]

A local AWS KMS emulator (AWS JSON 1.1, SigV4) with a control port for fault injection.
On start it prints one JSON line to stdout:
  {\"kms\":\"http://…\",\"control\":\"http://…\",\"region\":\"…\",\"keys\":{\"alias/NAME\":\"arn:…\"}}

Options:
  --listen ADDR              KMS port [default: 127.0.0.1:0]
  --control-listen ADDR      control port [default: 127.0.0.1:0]
  --region REGION            [default: us-east-1]
  --account-id ID            12 digits [default: 111122223333]
  --credentials AKID:SECRET[:deny=OP,OP…]
                             accepted credentials, repeatable; deny= lists operations this
                             access key may not call [default: AKIAEMULATOR00000001 /
                             emulator-secret-access-key-0001]
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
            let operations = denied
                .split(',')
                .map(|name| {
                    Operation::from_name(name).ok_or_else(|| {
                        format!("--credentials for {access_key_id}: unknown operation '{name}'")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Policy::deny(operations)
        }
    };
    Ok(Principal::new(access_key_id, secret, policy))
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
