"""Assertions shared by the end-to-end tests."""

from __future__ import annotations

import base64
from typing import Any

import kms_jws
from harness import Keycloak
from realms import Login


def issue_tokens(keycloak: Keycloak, realm: str, login: Login) -> dict[str, Any]:
    """Password grant with scope=openid; asserts success and returns the token response."""
    response = keycloak.password_grant(
        realm, login.client_id, login.client_secret, login.username, login.password
    )
    assert response.status_code == 200, (
        f"POST {keycloak.token_url(realm)} (password grant): "
        f"{response.status_code} {response.text[:2000]}"
    )
    body = response.json()
    assert {"access_token", "id_token", "refresh_token"} <= body.keys(), body.keys()
    return body


def jwks_key(keycloak: Keycloak, realm: str, kid: str) -> dict[str, Any]:
    """The one JWKS entry of the realm with this kid."""
    entries = [key for key in keycloak.certs(realm)["keys"] if key.get("kid") == kid]
    assert len(entries) == 1, f"expected one JWKS key with kid {kid} in realm {realm}, got {entries}"
    return entries[0]


def assert_signed_by(
    keycloak: Keycloak, realm: str, token: str, alg: str, spki: bytes
) -> kms_jws.Jws:
    """The token's signature verifies against (a) the SPKI that KMS's GetPublicKey returned and
    (b) the realm's JWKS entry for the token's kid; the kid is SHA-256 of that SPKI."""
    jws = kms_jws.Jws.parse(token)
    expected_kid = kms_jws.kid_of_spki(spki)
    assert jws.header.get("alg") == alg, jws.header
    assert jws.header.get("kid") == expected_kid, (
        f"header kid {jws.header.get('kid')} != base64url(SHA-256(SPKI)) {expected_kid}"
    )

    # (a) the public key from KMS
    kms_jws.verify_token(token, kms_jws.load_spki(spki), alg)

    # (b) the realm's published JWKS
    jwk = jwks_key(keycloak, realm, expected_kid)
    assert jwk.get("alg") == alg, jwk
    assert jwk.get("use") == "sig", jwk
    jwks_public_key = kms_jws.key_from_jwk(jwk)
    assert kms_jws.spki_der(jwks_public_key) == spki, "the JWKS key is not the KMS key"
    kms_jws.verify_token(token, jwks_public_key, alg)

    assert jws.claims.get("iss") == keycloak.realm_url(realm), jws.claims.get("iss")
    return jws


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def component_config(component: dict[str, Any]) -> dict[str, str]:
    """A component's config with single values (the REST API sends lists)."""
    return {key: values[0] if values else "" for key, values in component["config"].items()}


STORED_KEY_FIELDS = ("keyArn", "keySpec", "publicKey", "kid")


def stored_key_fields(component: dict[str, Any]) -> dict[str, str]:
    """The config of an aws-kms component as GET /components returns it, which must include the
    fields validation writes on save (docs/design.md)."""
    config = component_config(component)
    missing = [key for key in STORED_KEY_FIELDS if key not in config]
    assert not missing, (
        f"{missing} missing from the config of component {component.get('id')} as returned by "
        f"GET /admin/realms/{{realm}}/components/{{id}} (keys returned: {sorted(config)}). "
        "Keycloak's StripSecretsUtils drops config keys that the factory does not declare in "
        "getConfigProperties()."
    )
    return config


def key_entry(admin, realm: str, component_id: str) -> dict[str, Any]:
    """The one entry of GET /admin/realms/{realm}/keys that this component provides."""
    entries = [key for key in admin.keys(realm)["keys"] if key["providerId"] == component_id]
    assert len(entries) == 1, f"expected one key from component {component_id}, got {entries}"
    return entries[0]


def save_component(admin, realm: str, component: dict[str, Any]) -> str:
    """POSTs a component, asserts 201 and returns the new component's id."""
    response = admin.create_component(realm, component)
    assert response.status_code == 201, (
        f"POST /admin/realms/{realm}/components: {response.status_code} {response.text[:2000]}"
    )
    return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
