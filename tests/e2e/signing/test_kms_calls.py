"""KMS is called to sign, and for nothing else: not for other realms, not to publish or check keys."""

from __future__ import annotations

import pytest
import requests

import kms_jws
import realms

from .checks import issue_tokens, jwks_key


def test_a_realm_with_generated_keys_signs_tokens_without_a_single_kms_call(
    keycloak, admin, emulator, make_kms_realm, login
):
    # An aws-kms realm exists in the same server, so the provider is loaded and in use.
    kms_realm = make_kms_realm("RS256")
    admin.create_realm(realms.realm("generated-keys", "RS256", login))
    emulator.reset_stats()

    tokens = issue_tokens(keycloak, "generated-keys", login)

    assert emulator.calls() == {}
    for name in ("access_token", "id_token"):
        jws = kms_jws.Jws.parse(tokens[name])
        assert jws.header["alg"] == "RS256"
        assert jws.header["kid"] != kms_realm.kid
        jwk = jwks_key(keycloak, "generated-keys", jws.header["kid"])
        kms_jws.verify_token(tokens[name], kms_jws.key_from_jwk(jwk), "RS256")


@pytest.mark.parametrize("alg", ["RS256", "PS384", "ES256"])
def test_jwks_token_introspection_and_userinfo_cost_no_kms_call(
    keycloak, emulator, make_kms_realm, alg
):
    kms_realm = make_kms_realm(alg)
    login = kms_realm.login
    tokens = issue_tokens(keycloak, kms_realm.name, login)
    emulator.reset_stats()

    jwks_key(keycloak, kms_realm.name, kms_realm.kid)
    introspection = keycloak.introspect(
        kms_realm.name, login.client_id, login.client_secret, tokens["access_token"]
    )
    userinfo = requests.get(
        f"{keycloak.realm_url(kms_realm.name)}/protocol/openid-connect/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=30,
    )

    assert introspection.status_code == 200, introspection.text
    assert introspection.json().get("active") is True, introspection.text
    assert introspection.json().get("username") == login.username
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json().get("preferred_username") == login.username
    assert emulator.calls() == {}
