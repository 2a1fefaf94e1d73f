"""Saving an aws-kms component validates it against KMS and records what KMS says about the key."""

from __future__ import annotations

import secrets

import pytest

import kms_jws
import realms
from harness import create_kms_key

from .checks import b64, key_entry, save_component, stored_key_fields

REALM = "validation"
# Components saved here are inactive and low priority: this realm keeps signing with its own keys.
INACTIVE = {"priority": 50, "active": False}


@pytest.fixture(scope="module")
def validation_realm(admin, login) -> str:
    admin.create_realm(realms.realm(REALM, "RS256", login))
    return REALM


def aws_kms_components(admin) -> list[dict]:
    return [
        component
        for component in admin.key_providers(REALM)
        if component["providerId"] == realms.AWS_KMS_PROVIDER_ID
    ]


def assert_rejected(admin, component: dict, secret: str) -> str:
    before = len(aws_kms_components(admin))
    response = admin.create_component(REALM, component)
    assert response.status_code == 400, f"{response.status_code} {response.text[:2000]}"
    message = response.json().get("errorMessage", "")
    assert message, response.text
    assert secret not in response.text
    assert len(aws_kms_components(admin)) == before, "a rejected component was stored"
    return message


def test_key_fields_sent_by_the_client_are_ignored_and_recomputed_from_kms_on_save(
    admin, kms, emulator, validation_realm
):
    key_arn, spki = create_kms_key(kms, "ECC_NIST_P384", "alias/validation-forged")
    _, other_spki = create_kms_key(kms, "RSA_2048", "alias/validation-other")
    forged = {
        "keyArn": "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000",
        "keySpec": "RSA_2048",
        "publicKey": b64(other_spki),
        "kid": kms_jws.kid_of_spki(other_spki),
    }
    component = realms.aws_kms_component(
        "forged-fields", "ES384", "alias/validation-forged", emulator.kms_url,
        emulator.access_key_id, emulator.secret_access_key, extra=forged, **INACTIVE,
    )

    component_id = save_component(admin, REALM, component)

    entry = key_entry(admin, REALM, component_id)
    assert entry["publicKey"] == b64(spki)
    assert entry["kid"] == kms_jws.kid_of_spki(spki)
    config = stored_key_fields(admin.component(REALM, component_id).json())
    assert config["keyArn"] == key_arn
    assert config["keySpec"] == "ECC_NIST_P384"
    assert (config["keyType"], config["curve"]) == ("EC", "P-384")
    assert config["publicKey"] == b64(spki)
    assert config["kid"] == kms_jws.kid_of_spki(spki)


def test_changing_the_kms_key_of_a_saved_component_recomputes_the_stored_key_fields(
    admin, kms, emulator, validation_realm
):
    create_kms_key(kms, "RSA_2048", "alias/validation-first")
    second_arn, second_spki = create_kms_key(kms, "RSA_3072", "alias/validation-second")
    component = realms.aws_kms_component(
        "rotated", "RS256", "alias/validation-first", emulator.kms_url,
        emulator.access_key_id, emulator.secret_access_key, **INACTIVE,
    )
    component_id = save_component(admin, REALM, component)
    stored = admin.component(REALM, component_id).json()

    stored["config"]["kmsKeyId"] = ["alias/validation-second"]
    admin.checked("PUT", f"/{REALM}/components/{component_id}", 204, json=stored)

    entry = key_entry(admin, REALM, component_id)
    assert entry["publicKey"] == b64(second_spki)
    assert entry["kid"] == kms_jws.kid_of_spki(second_spki)
    config = stored_key_fields(admin.component(REALM, component_id).json())
    assert config["keyArn"] == second_arn
    assert config["keySpec"] == "RSA_3072"
    # The EC key's curve does not linger on the RSA key that replaced it.
    assert (config["keyType"], config.get("curve") or None) == ("RSA", None)
    assert config["publicKey"] == b64(second_spki)
    assert config["kid"] == kms_jws.kid_of_spki(second_spki)


def test_saving_a_component_for_a_key_that_does_not_exist_is_rejected(
    admin, emulator, validation_realm
):
    component = realms.aws_kms_component(
        "missing-key", "RS256", "alias/does-not-exist", emulator.kms_url,
        emulator.access_key_id, emulator.secret_access_key, **INACTIVE,
    )
    assert_rejected(admin, component, emulator.secret_access_key)


@pytest.mark.parametrize(
    ("alg", "key_spec"),
    [("ES256", "RSA_2048"), ("RS256", "ECC_NIST_P256"), ("ES384", "ECC_NIST_P256")],
)
def test_saving_a_component_whose_algorithm_does_not_fit_the_key_spec_is_rejected(
    admin, kms, emulator, validation_realm, alg, key_spec
):
    alias = f"alias/validation-mismatch-{alg.lower()}-{key_spec.lower()}"
    create_kms_key(kms, key_spec, alias)
    component = realms.aws_kms_component(
        f"mismatch-{alg}", alg, alias, emulator.kms_url,
        emulator.access_key_id, emulator.secret_access_key, **INACTIVE,
    )
    assert_rejected(admin, component, emulator.secret_access_key)


def test_saving_a_component_with_a_wrong_secret_access_key_is_rejected_without_echoing_it(
    admin, kms, emulator, keycloak, validation_realm
):
    create_kms_key(kms, "RSA_2048", "alias/validation-credentials")
    wrong_secret = "wrong-" + secrets.token_urlsafe(24)
    component = realms.aws_kms_component(
        "wrong-credentials", "RS256", "alias/validation-credentials", emulator.kms_url,
        emulator.access_key_id, wrong_secret, **INACTIVE,
    )
    assert_rejected(admin, component, wrong_secret)
    assert wrong_secret not in keycloak.log_text()
