"""An aws-kms component in a realm representation goes through the same validation as one saved on
its own: imported with `POST /admin/realms` or with `--import-realm` at startup, the component is
stored with the key fields read from KMS and the realm signs with it.

(Refused imports through the admin API are in test_bad_configurations.py. A bad component in an
`--import-realm` file makes Keycloak 26.7.3 stop its startup (exit 1, "Failed to start server"):
proving that takes a second Keycloak start of about a minute, more than the suite's time budget,
so that test runs only with AWSKMS_E2E_SLOW=1.)"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

import harness
import kms_jws
import realms
from harness import create_kms_key

from .checks import (
    assert_certificate_signed_by,
    assert_signed_by,
    certificate_spki,
    issue_tokens,
    jwks_key,
    stored_key_fields,
    x5c_certificate,
)

MASKED = "**********"


def the_aws_kms_component(admin, realm: str) -> dict:
    ours = [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]
    assert len(ours) == 1, f"expected one aws-kms component in realm {realm}, got {ours}"
    return admin.component(realm, ours[0]["id"]).json()


def test_a_realm_imported_through_the_admin_api_stores_the_key_fields_and_signs_with_the_kms_key(
    keycloak, admin, kms, emulator, aws_identities, login
):
    realm = "imported-assume-role"
    alias = "alias/e2e-imported-assume-role"
    key_arn, spki = create_kms_key(kms, "RSA_4096", alias)
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=aws_identities.signer_external_id,
        access_key_id=emulator.access_key_id,
        secret_access_key=emulator.secret_access_key,
    )
    # Fields validation writes are ignored when sent, in an import as anywhere else.
    component = realms.kms_component(
        "imported", "RS512", alias, emulator.kms_url, credentials,
        extra={"keyArn": "arn:aws:kms:us-east-1:111122223333:key/forged", "kid": "forged"},
    )

    response = admin.import_realm(realms.realm(realm, "RS512", login, key_providers=[component]))

    assert response.status_code == 201, f"POST /admin/realms: {response.status_code} {response.text}"
    config = stored_key_fields(the_aws_kms_component(admin, realm))
    assert config["keyArn"] == key_arn
    assert config["keySpec"] == "RSA_4096"
    assert config["kid"] == kms_jws.kid_of_spki(spki)
    assert config["secretAccessKey"] == MASKED and config["externalId"] == MASKED
    tokens = issue_tokens(keycloak, realm, login)
    for name in ("access_token", "id_token"):
        assert_signed_by(keycloak, realm, tokens[name], "RS512", spki)


def test_a_realm_imported_at_startup_stores_the_key_fields_and_signs_with_the_kms_key(
    keycloak, admin, startup_import
):
    realm = startup_import.realm
    assert admin.realm_exists(realm)

    config = stored_key_fields(the_aws_kms_component(admin, realm))
    assert config["kmsKeyId"] == startup_import.alias
    assert config["keyArn"] == startup_import.key_arn
    assert config["keySpec"] == startup_import.key_spec
    assert config["kid"] == startup_import.kid
    keys = admin.keys(realm)
    assert keys["active"].get(startup_import.alg) == startup_import.kid, keys["active"]

    tokens = issue_tokens(keycloak, realm, startup_import.login)
    for name in ("access_token", "id_token"):
        assert_signed_by(keycloak, realm, tokens[name], startup_import.alg, startup_import.spki)
    # The import minted a certificate too, signed by the KMS key.
    certificate = x5c_certificate(jwks_key(keycloak, realm, startup_import.kid))
    assert certificate_spki(certificate) == startup_import.spki
    assert_certificate_signed_by(certificate, kms_jws.load_spki(startup_import.spki))


def test_a_bad_aws_kms_component_in_an_import_realm_file_stops_keycloak_at_startup(
    setup_env, tmp_path, kms, emulator, login
):
    alias = "alias/e2e-bad-startup-import"
    create_kms_key(kms, "RSA_2048", alias)
    wrong_secret = "wrong-" + secrets.token_urlsafe(18)
    component = realms.aws_kms_component(
        "bad-at-startup", "RS256", alias, emulator.kms_url, emulator.access_key_id, wrong_secret
    )
    representation = realms.realm("bad-startup-import", "RS256", login, key_providers=[component])

    with pytest.raises(RuntimeError, match="exited with 1 during startup"):
        started = harness.Keycloak.start(
            Path(setup_env["KEYCLOAK_DIST_TGZ"]),
            Path(setup_env["KEYCLOAK_JAVA_HOME"]),
            tmp_path,
            [harness.provider_jar()],
            import_realms=(representation,),
        )
        started.stop()

    log = (tmp_path / "keycloak.log").read_text(errors="replace")
    assert "Failed to start server" in log
    assert "the secret access key does not belong to the access key id" in log
    assert wrong_secret not in log
