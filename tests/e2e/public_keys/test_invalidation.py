"""Cached keys are dropped when what they were loaded for changes: the client's jwks.url, the
administrator's "Clear keys cache", the realm itself."""

from __future__ import annotations

import uuid

import pytest

from .client_keys import jwks, rsa_key
from .server_under_test import ServerUnderTest

REALM = "invalidation"


@pytest.fixture(scope="module")
def realm(server: ServerUnderTest) -> str:
    server.create_realm(REALM)
    return REALM


def test_changing_a_clients_jwks_url_takes_effect_on_the_next_request(
    server: ServerUnderTest, realm: str
) -> None:
    # The same kid at both URLs, different keys: a stale cache entry would verify against
    # the old key and refuse the assertion, whatever the window.
    old = rsa_key("stable-kid")
    client = server.jwt_client(realm, "moving", jwks(old))
    client.assert_authenticates(old, "(at the first jwks.url)")

    new = rsa_key("stable-kid")
    new_endpoint = server.jwks_endpoint(f"{realm}-moving-new")
    new_endpoint.serve_keys(jwks(new))
    client.update(**{"jwks.url": new_endpoint.url})

    client.endpoint = new_endpoint
    client.assert_authenticates(new, "(right after jwks.url changed)")
    assert new_endpoint.requests == 1
    client.assert_refused(old, what="(key of the old jwks.url, same kid)")


def test_clear_keys_cache_makes_the_next_request_download_the_keys_again(
    server: ServerUnderTest, realm: str
) -> None:
    key = rsa_key("cleared")
    client = server.jwt_client(realm, "cleared", jwks(key))
    client.assert_authenticates(key, "(first use)")
    client.assert_authenticates(key, "(cached)")
    assert client.endpoint.requests == 1

    server.admin.checked("POST", f"/{realm}/clear-keys-cache", 204)

    client.assert_authenticates(key, "(after Clear keys cache)")
    assert client.endpoint.requests == 2, "Clear keys cache left the client's keys cached"


def test_a_realm_created_again_with_the_same_ids_does_not_inherit_the_removed_realms_keys(
    server: ServerUnderTest,
) -> None:
    name, realm_id, client_uuid = "removed-realm", str(uuid.uuid4()), str(uuid.uuid4())
    key = rsa_key("removed-realm-key")
    endpoint = server.jwks_endpoint(name)
    endpoint.serve_keys(jwks(key))

    server.create_realm(name, id=realm_id)
    client = server.jwt_client(name, "survivor", endpoint=endpoint, client_uuid=client_uuid)
    client.assert_authenticates(key, "(before the realm is removed)")
    assert endpoint.requests == 1

    server.admin.checked("DELETE", f"/{name}", 204)
    assert server.create_realm(name, id=realm_id) == realm_id
    client = server.jwt_client(name, "survivor", endpoint=endpoint, client_uuid=client_uuid)
    assert server.client_uuid(name, "survivor") == client_uuid

    # Same realm id, client id and kid: only a fresh download shows the old entry is gone.
    client.assert_authenticates(key, "(in the realm created again)")
    assert endpoint.requests == 2, "the removed realm's cached keys were still in use"
