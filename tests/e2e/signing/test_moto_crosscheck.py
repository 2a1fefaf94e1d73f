"""Cross-check against a second, independent KMS implementation (moto): what the provider stores on
save equals what moto reports about the key. Saving also signs once (the kms:Sign permission check
and the minted certificate), so moto runs with its DIGEST, PSS-salt and disabled-key deviations
from AWS corrected in the harness (tests/tools/moto_server_aws_semantics.py), never in the product."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.config import Config

import harness
import kms_jws
import realms

from .checks import b64, key_entry, save_component, stored_key_fields

REALM = "moto-crosscheck"
# moto accepts any credentials.
MOTO_ACCESS_KEY_ID = "AKIAMOTO000000000001"
MOTO_SECRET_ACCESS_KEY = "moto-secret-access-key"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    launcher = Path(__file__).resolve().parents[2] / "tools" / "moto_server_aws_semantics.py"
    port = harness.free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, str(launcher), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    client = moto_client(url)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_keys()
            break
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                harness._stop_process_group(process, 5)
                raise RuntimeError(f"moto_server did not come up on {url}") from None
            time.sleep(0.3)
    yield url
    harness._stop_process_group(process, 10)


def moto_client(url: str):
    return boto3.client(
        "kms",
        endpoint_url=url,
        region_name=harness.REGION,
        aws_access_key_id=MOTO_ACCESS_KEY_ID,
        aws_secret_access_key=MOTO_SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30),
    )


@pytest.fixture(scope="module")
def moto_realm(admin, login) -> str:
    admin.create_realm(realms.realm(REALM, "RS256", login))
    return REALM


@pytest.mark.parametrize(
    ("key_spec", "alg", "refer_by"),
    [("RSA_2048", "RS256", "alias"), ("ECC_NIST_P256", "ES256", "arn"), ("RSA_3072", "PS256", "key-id")],
)
def test_the_component_saved_against_moto_stores_what_moto_describes(
    admin, moto_url, moto_realm, key_spec, alg, refer_by
):
    moto = moto_client(moto_url)
    metadata = moto.create_key(KeySpec=key_spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    alias = f"alias/crosscheck-{alg.lower()}"
    moto.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
    kms_key_id = {"alias": alias, "arn": metadata["Arn"], "key-id": metadata["KeyId"]}[refer_by]
    described = moto.describe_key(KeyId=kms_key_id)["KeyMetadata"]
    public = moto.get_public_key(KeyId=kms_key_id)

    component = realms.aws_kms_component(
        f"moto-{alg.lower()}",
        alg,
        kms_key_id,
        moto_url,
        MOTO_ACCESS_KEY_ID,
        MOTO_SECRET_ACCESS_KEY,
        # With a key ARN the region comes from the ARN.
        region=None if refer_by == "arn" else harness.REGION,
        priority=50,
        active=False,  # this realm's tokens stay with the emulator's keys
    )
    component_id = save_component(admin, REALM, component)

    # What Keycloak serves from the stored key...
    entry = key_entry(admin, REALM, component_id)
    assert entry["kid"] == kms_jws.kid_of_spki(public["PublicKey"])
    assert entry["publicKey"] == b64(public["PublicKey"])
    assert entry["status"] == "PASSIVE"

    # ...and the stored fields themselves.
    config = stored_key_fields(admin.component(REALM, component_id).json())
    # (moto's GetPublicKey returns the bare key id as KeyId where AWS returns the ARN.)
    assert config["keyArn"] == described["Arn"]
    # (moto's GetPublicKey names the spec only in the deprecated CustomerMasterKeySpec.)
    assert config["keySpec"] == described["KeySpec"] == key_spec
    assert public.get("KeySpec", public.get("CustomerMasterKeySpec")) == key_spec
    assert config["publicKey"] == b64(public["PublicKey"])
    assert config["kid"] == kms_jws.kid_of_spki(public["PublicKey"])
