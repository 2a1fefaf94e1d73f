"""What operators read and rely on (issue 8, section 5): the warning when a save leaves the realm's
default signature algorithm without an active aws-kms key (Keycloak then falls back to a software
key, which this test shows happening), the warning ahead of a certificate's expiry, and a minted
certificate renewed by every save."""

from __future__ import annotations

import base64
import datetime

from cryptography import x509

import harness
import kms_jws
import realms
from harness import create_kms_key

from .checks import (
    certificate_for,
    certificate_pem,
    component_config,
    days_from_now,
    issue_tokens,
    key_entry,
)

MINTED_VALIDITY = datetime.timedelta(days=3 * 365)


def _log_since(keycloak, offset: int) -> str:
    return harness.tail(keycloak.log_path, 2000, offset)


def _aws_kms_component(admin, realm: str) -> dict:
    [component] = [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]
    return component


def test_a_kms_key_that_leaves_the_default_algorithm_uncovered_warns_and_keycloak_falls_back_to_a_software_key(
    keycloak, admin, kms, emulator, make_realm, login
):
    realm = "default-rs256-only-es256-in-kms"
    alias = f"alias/e2e-{realm}"
    create_kms_key(kms, "ECC_NIST_P256", alias)
    offset = keycloak.log_size()
    make_realm(realm, "RS256", [realms.emulator_component("only-es256", "ES256", alias, emulator)])

    log = _log_since(keycloak, offset)
    warning = [line for line in log.splitlines() if "WARN" in line and f"in realm {realm}:" in line]
    assert warning, log[-3000:]
    assert (
        "no active aws-kms key signs RS256, the realm's default signature algorithm" in warning[0]
    ), warning[0]

    # What the warning is about: tokens in the default algorithm get a software key.
    tokens = issue_tokens(keycloak, realm, login)
    assert kms_jws.Jws.parse(tokens["access_token"]).header["alg"] == "RS256"
    fallback = [c for c in admin.key_providers(realm) if c["providerId"] == "rsa-generated"]
    assert [c["name"] for c in fallback] == ["fallback-RS256"], admin.key_providers(realm)


def test_making_the_only_kms_key_of_the_default_algorithm_passive_warns_and_an_active_one_does_not(
    keycloak, admin, kms, emulator, make_realm
):
    realm = "default-rs256-kms-made-passive"
    alias = f"alias/e2e-{realm}"
    create_kms_key(kms, "RSA_2048", alias)
    offset = keycloak.log_size()
    make_realm(realm, "RS256", [realms.emulator_component("rs256", "RS256", alias, emulator)])
    assert f"in realm {realm}:" not in _log_since(keycloak, offset), "warned for a covered realm"

    component = _aws_kms_component(admin, realm)
    component["config"]["active"] = ["false"]
    offset = keycloak.log_size()
    response = admin.update_component(realm, component["id"], component)
    assert response.status_code == 204, response.text[:2000]
    log = _log_since(keycloak, offset)
    assert f"rs256 ({component['id']}) saved in realm {realm}: no active aws-kms key signs RS256" in log, (
        log[-3000:]
    )


def test_an_uploaded_certificate_close_to_its_end_is_warned_about_when_the_key_is_built(
    keycloak, admin, kms, emulator, make_realm
):
    realm = "certificate-expiring-soon"
    alias = f"alias/e2e-{realm}"
    _, spki = create_kms_key(kms, "ECC_NIST_P384", alias)
    uploaded = certificate_for(kms_jws.load_spki(spki), not_after=days_from_now(10))
    component = realms.kms_component(
        "expiring",
        "ES384",
        alias,
        emulator.kms_url,
        realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key),
        extra={"certificate": certificate_pem(uploaded)},
    )
    offset = keycloak.log_size()
    make_realm(realm, "ES384", [component])
    keycloak.certs(realm)  # builds the key (create())
    keycloak.certs(realm)

    log = _log_since(keycloak, offset)
    stored = _aws_kms_component(admin, realm)
    warnings = [
        line
        for line in log.splitlines()
        if f"({stored['id']}): the uploaded certificate it publishes expires on" in line
    ]
    assert len(warnings) == 1, log[-3000:]
    assert "Upload a renewed certificate" in warnings[0], warnings[0]


def test_every_save_without_an_upload_mints_a_new_three_year_certificate(
    keycloak, admin, kms, emulator, make_realm
):
    realm = "certificate-minted-on-save"
    alias = f"alias/e2e-{realm}"
    create_kms_key(kms, "RSA_2048", alias)
    make_realm(realm, "RS256", [realms.emulator_component("minted", "RS256", alias, emulator)])
    component = _aws_kms_component(admin, realm)

    def published() -> x509.Certificate:
        entry = key_entry(admin, realm, component["id"])
        return x509.load_der_x509_certificate(base64.b64decode(entry["certificate"]))

    before = published()
    saved = admin.component(realm, component["id"]).json()
    assert not component_config(saved).get("certificate")
    response = admin.update_component(realm, component["id"], saved)  # unchanged, secret masked
    assert response.status_code == 204, response.text[:2000]
    after = published()

    assert after.serial_number != before.serial_number, "the save did not mint a new certificate"
    assert after.not_valid_after_utc >= before.not_valid_after_utc
    validity = after.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    assert MINTED_VALIDITY - datetime.timedelta(days=1) < validity <= MINTED_VALIDITY, validity
