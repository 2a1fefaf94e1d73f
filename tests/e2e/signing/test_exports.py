"""Which exports carry the secrets of an aws-kms provider (issue 8, section 5): the admin partial
export masks them (and leaves out `mintedCertificate`); `kc.sh export`, to a file or a directory,
is a full backup and writes them as stored, in clear, as it writes client secrets. Secrets are
stored in their stored form, `{stored}` + value (a `${vault.NAME}` reference too, so that a kept
reference cannot follow a changed destination): the partial export masks a reference like a
secret, `kc.sh export` writes the stored form, and a reference is never exported as the secret it
names.

A Keycloak copy of its own: `kc.sh export` runs against the stopped server's database.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

import harness
import realms
from harness import Admin, Keycloak, create_kms_key

REALM = "exported"
VAULT_SECRET_NAME = "kms-export-secret"
MASKED = "**********"


def _kms_components(realm: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """name → config of the realm representation's aws-kms components."""
    providers = realm.get("components", {}).get(harness.KEY_PROVIDER_TYPE, [])
    return {
        provider["name"]: provider.get("config", {})
        for provider in providers
        if provider.get("providerId") == realms.AWS_KMS_PROVIDER_ID
    }


class Exports:
    def __init__(self, partial: dict[str, Any], single_file: dict[str, Any], directory: dict[str, Any]):
        self.partial = partial
        self.single_file = single_file
        self.directory = directory


@pytest.fixture(scope="module")
def exports(
    setup_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    kms,
    emulator,
    aws_identities,
    login,
) -> Iterator[Exports]:
    workdir = tmp_path_factory.mktemp("keycloak-exports")
    rsa_alias, ec_alias = "alias/e2e-exported-rs256", "alias/e2e-exported-es256"
    create_kms_key(kms, "RSA_2048", rsa_alias)
    create_kms_key(kms, "ECC_NIST_P256", ec_alias)
    plain = realms.kms_component(
        "plain-secrets",
        "RS256",
        rsa_alias,
        emulator.kms_url,
        realms.assume_role_credentials(
            aws_identities.signer_role_arn,
            emulator.sts_url,
            external_id=aws_identities.signer_external_id,
            access_key_id=emulator.access_key_id,
            secret_access_key=emulator.secret_access_key,
        ),
    )
    vaulted = realms.kms_component(
        "vault-reference",
        "ES256",
        ec_alias,
        emulator.kms_url,
        realms.access_key_credentials(emulator.access_key_id, "${vault." + VAULT_SECRET_NAME + "}"),
    )
    vault_dir = workdir / "vault"
    vault_dir.mkdir()
    (vault_dir / f"{REALM}_{VAULT_SECRET_NAME}").write_text(emulator.secret_access_key)
    keycloak = Keycloak.start(
        Path(setup_env["KEYCLOAK_DIST_TGZ"]),
        Path(setup_env["KEYCLOAK_JAVA_HOME"]),
        workdir,
        [harness.provider_jar()],
        vault_dir=vault_dir,
        import_realms=(realms.realm(REALM, "RS256", login, key_providers=[plain, vaulted]),),
    )
    try:
        admin = Admin(keycloak.base_url)
        partial = admin.checked("POST", f"/{REALM}/partial-export", 200).json()
    finally:
        keycloak.stop()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KC_", "KEYCLOAK_"))}
    env["JAVA_HOME"] = setup_env["KEYCLOAK_JAVA_HOME"]
    single_file, directory = workdir / "export.json", workdir / "export-dir"
    for target in (["--file", str(single_file)], ["--dir", str(directory)]):
        done = subprocess.run(
            [str(keycloak.home / "bin" / "kc.sh"), "export", *target, "--realm", REALM],
            cwd=keycloak.home,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"kc.sh export {target}: {done.stdout[-3000:]}{done.stderr[-2000:]}"
    from_file = json.loads(single_file.read_text())
    from_file = from_file[0] if isinstance(from_file, list) else from_file
    yield Exports(partial, from_file, json.loads((directory / f"{REALM}-realm.json").read_text()))


def test_the_admin_partial_export_masks_both_secrets_and_a_vault_reference(exports, emulator, aws_identities):
    components = _kms_components(exports.partial)
    assert components["plain-secrets"]["secretAccessKey"] == [MASKED]
    assert components["plain-secrets"]["externalId"] == [MASKED]
    # Keycloak's StripSecretsUtils would show "${vault.NAME}" as it is; the stored form
    # "{stored}${vault.NAME}" is no vault expression to it, so it is masked.
    assert components["vault-reference"]["secretAccessKey"] == [MASKED]
    text = json.dumps(exports.partial)
    assert emulator.secret_access_key not in text
    assert aws_identities.signer_external_id not in text
    assert "mintedCertificate" not in text


@pytest.mark.parametrize("how", ["single_file", "directory"])
def test_kc_sh_export_writes_the_stored_secrets_in_clear_and_a_vault_reference_as_the_reference(
    exports, emulator, aws_identities, how
):
    exported = getattr(exports, how)
    components = _kms_components(exported)
    # A full export is a backup: like client secrets, stored secrets are written as stored.
    assert components["plain-secrets"]["secretAccessKey"] == ["{stored}" + emulator.secret_access_key]
    assert components["plain-secrets"]["externalId"] == ["{stored}" + aws_identities.signer_external_id]
    # A vault reference is what is stored, so that is all an export can show.
    assert components["vault-reference"]["secretAccessKey"] == ["{stored}${vault." + VAULT_SECRET_NAME + "}"]
    assert components["plain-secrets"]["kid"] and components["plain-secrets"]["publicKey"]
    assert "mintedCertificate" in components["plain-secrets"], sorted(components["plain-secrets"])
