"""Tokens of a realm whose active key is an aws-kms component are signed in KMS and verify
independently: against the KMS public key and against the realm's JWKS."""

from __future__ import annotations

import pytest

import kms_jws
import realms

from .checks import assert_signed_by, b64, issue_tokens, stored_key_fields


def test_access_and_id_tokens_verify_against_the_kms_public_key_and_the_realm_jwks(
    keycloak, kms_realm
):
    tokens = issue_tokens(keycloak, kms_realm.name, kms_realm.login)

    access = assert_signed_by(
        keycloak, kms_realm.name, tokens["access_token"], kms_realm.alg, kms_realm.spki
    )
    assert access.header.get("typ") == "JWT", access.header
    assert access.claims["typ"] == "Bearer"
    assert access.claims["preferred_username"] == kms_realm.login.username
    assert access.claims["azp"] == kms_realm.login.client_id

    id_token = assert_signed_by(
        keycloak, kms_realm.name, tokens["id_token"], kms_realm.alg, kms_realm.spki
    )
    assert id_token.claims["typ"] == "ID"
    assert id_token.claims["aud"] == kms_realm.login.client_id
    assert id_token.claims["sub"] == access.claims["sub"]


def test_each_signed_token_costs_exactly_one_kms_sign_call(keycloak, emulator, kms_realm):
    emulator.reset_stats()

    tokens = issue_tokens(keycloak, kms_realm.name, kms_realm.login)

    # Access and ID token are signed in KMS; the refresh token is HS512 with a generated key.
    assert emulator.calls() == {"Sign": 2}
    refresh = kms_jws.Jws.parse(tokens["refresh_token"])
    assert refresh.header["alg"] == "HS512", refresh.header


def test_the_component_stores_the_key_arn_spec_public_key_and_kid_read_from_kms(admin, kms_realm):
    config = stored_key_fields(admin.component(kms_realm.name, kms_realm.component_id).json())

    assert config["kmsKeyId"] == kms_realm.alias
    assert config["keyArn"] == kms_realm.key_arn, "the alias must be resolved to the key ARN on save"
    assert config["keySpec"] == kms_realm.key_spec
    assert config["publicKey"] == b64(kms_realm.spki)
    assert config["kid"] == kms_realm.kid


def test_the_realm_keys_show_the_kms_key_as_the_active_key_for_its_algorithm(admin, kms_realm):
    keys = admin.keys(kms_realm.name)

    assert keys["active"].get(kms_realm.alg) == kms_realm.kid, keys["active"]
    [entry] = [key for key in keys["keys"] if key["kid"] == kms_realm.kid]
    assert entry["providerId"] == kms_realm.component_id
    assert entry["providerPriority"] == realms.KMS_PROVIDER_PRIORITY
    assert entry["status"] == "ACTIVE"
    assert entry["algorithm"] == kms_realm.alg
    assert entry["type"] == ("EC" if kms_realm.alg.startswith("ES") else "RSA")
    assert entry["use"] == "SIG"
    assert entry["publicKey"] == b64(kms_realm.spki)


@pytest.mark.parametrize("alg", ["RS256", "ES512"])
def test_a_token_larger_than_4_kb_is_signed_in_kms_and_verifies(
    keycloak, admin, emulator, make_kms_realm, alg
):
    kms_realm = make_kms_realm(alg)
    big_login = realms.Login(
        client_id=f"big-token-{alg.lower()}",
        client_secret=kms_realm.login.client_secret,
        username=kms_realm.login.username,
        password=kms_realm.login.password,
    )
    filler = "x" * 6000
    admin.add_client(
        kms_realm.name,
        realms.confidential_client(
            big_login, mappers=[realms.hardcoded_claim_mapper("filler", filler)]
        ),
    )
    emulator.reset_stats()

    tokens = issue_tokens(keycloak, kms_realm.name, big_login)

    # The message is hashed locally: one Sign per token, whatever the token's size.
    assert emulator.calls() == {"Sign": 2}
    for name in ("access_token", "id_token"):
        token = tokens[name]
        assert len(token) > 6000, f"{name} is only {len(token)} bytes"
        jws = assert_signed_by(keycloak, kms_realm.name, token, alg, kms_realm.spki)
        assert jws.claims["filler"] == filler
