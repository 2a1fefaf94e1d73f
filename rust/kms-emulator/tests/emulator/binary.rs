//! The `kms-emulator` binary: startup line, keys from the command line, signals, refusals.

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_kms::types::KeySpec;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_kms-emulator");

fn spawn(args: &[&str]) -> Child {
    Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts")
}

async fn exit_code(child: Child) -> Option<i32> {
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits in time")
        .expect("exit status");
    output.status.code()
}

#[tokio::test]
async fn the_binary_prints_one_json_line_serves_its_keys_and_exits_on_sigterm() {
    let mut child = spawn(&[
        "--create-key",
        "alias/token-signing=ECC_NIST_P256",
        "--region=eu-central-1",
        "--credentials",
        "AKIABINARY:binary-secret",
        "--role=arn:aws:iam::111122223333:role/reader:deny=Sign",
        "--role",
        "arn:aws:iam::111122223333:role/partner:external-id=partner-id",
        "--quiet",
    ]);
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("startup line in time")
    .expect("read");
    let startup: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    assert_eq!(startup["region"], "eu-central-1");
    let kms = startup["kms"].as_str().expect("kms URL");
    assert!(kms.starts_with("http://127.0.0.1:"), "{kms}");
    assert!(startup["control"]
        .as_str()
        .expect("control URL")
        .starts_with("http://127.0.0.1:"));
    let arn = startup["keys"]["alias/token-signing"]
        .as_str()
        .expect("key ARN");
    assert!(
        arn.starts_with("arn:aws:kms:eu-central-1:111122223333:key/"),
        "{arn}"
    );
    assert_eq!(startup["sts"], startup["kms"]);
    assert_eq!(
        startup["roles"],
        serde_json::json!([
            "arn:aws:iam::111122223333:role/reader",
            "arn:aws:iam::111122223333:role/partner"
        ])
    );

    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("eu-central-1"))
        .endpoint_url(kms)
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIABINARY",
            "binary-secret",
            None,
            None,
            "test",
        ))
        .build();
    let described = aws_sdk_kms::Client::from_conf(config)
        .describe_key()
        .key_id("alias/token-signing")
        .send()
        .await
        .expect("DescribeKey");
    let metadata = described.key_metadata().expect("metadata");
    assert_eq!(metadata.arn(), Some(arn));
    assert_eq!(metadata.key_spec(), Some(&KeySpec::EccNistP256));

    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    assert_eq!(exit_code(child).await, Some(0));
}

#[tokio::test]
async fn the_binary_refuses_non_loopback_addresses_and_bad_arguments() {
    let child = spawn(&["--listen", "0.0.0.0:0"]);
    assert_eq!(exit_code(child).await, Some(1));
    let child = spawn(&["--create-key", "alias/x=RSA_1024"]);
    assert_eq!(exit_code(child).await, Some(2));
    let child = spawn(&["--role", "arn:aws:iam::111122223333:user/not-a-role"]);
    assert_eq!(exit_code(child).await, Some(2));
}
