"""native-lru evictions reach every node: a change made through node a drops node b's cached keys
at once. The nodes run with a window of an hour, so nothing here passes by waiting the window
out; each test first shows that node b, left alone, keeps refusing the new kid."""

from __future__ import annotations

import time
import uuid

import pytest

import harness
from public_keys.client_keys import jwks, rsa_key

from .scenarios import LONG_WINDOW_SECONDS, ClusterUnderTest

WINDOW_SECONDS = LONG_WINDOW_SECONDS
REALM = "cluster-evictions"
# How long an eviction message may take to reach node b (it is sent when node a's transaction
# ends; in practice milliseconds).
EVICTION_DELIVERY_SECONDS = 10


@pytest.fixture(scope="module")
def realm(under_test: ClusterUnderTest) -> str:
    under_test.plain_realm(REALM)
    return REALM


def test_a_jwks_url_changed_through_node_a_is_used_by_node_b_at_once(
    under_test: ClusterUnderTest, realm: str
) -> None:
    a, b = under_test.a, under_test.b
    name = realm
    old, new = rsa_key("moving-old"), rsa_key("moving-new")
    old_endpoint = under_test.jwks_endpoint("moving-old")
    old_endpoint.serve_keys(jwks(old))
    under_test.add_jwt_client(name, "moving", old_endpoint)
    under_test.assert_authenticates(b, name, "moving", old, "(first use on node b)")
    under_test.assert_authenticates(a, name, "moving", old, "(first use on node a)")
    assert old_endpoint.requests == 2, "one download per node"

    # Left alone, node b does not see a new key at the URL it cached: the window holds it back.
    old_endpoint.serve_keys(jwks(old, new))
    under_test.assert_refused(b, name, "moving", new, "(window of an hour, nothing evicted)")
    assert old_endpoint.requests == 2

    new_endpoint = under_test.jwks_endpoint("moving-new")
    new_endpoint.serve_keys(jwks(new))
    under_test.update_client_on_a(name, "moving", **{"jwks.url": new_endpoint.url})

    under_test.assert_authenticates(b, name, "moving", new, "(right after node a changed jwks.url)")
    assert new_endpoint.requests == 1, "node b downloaded from the new URL"
    under_test.assert_refused(b, name, "moving", old, "(a key of the old URL only)")
    assert old_endpoint.requests == 2, "the old URL was not asked again"


def test_a_client_saved_through_node_a_after_its_keys_rotated_makes_node_b_download_them_at_once(
    under_test: ClusterUnderTest, realm: str
) -> None:
    b = under_test.b
    name = realm
    first, rotated = rsa_key("saved-1"), rsa_key("saved-2")
    endpoint = under_test.jwks_endpoint("saved")
    endpoint.serve_keys(jwks(first))
    under_test.add_jwt_client(name, "saved", endpoint)
    under_test.assert_authenticates(b, name, "saved", first, "(first use)")
    assert endpoint.requests == 1

    endpoint.serve_keys(jwks(rotated))
    under_test.assert_refused(b, name, "saved", rotated, "(rotated at the URL, window of an hour)")
    assert endpoint.requests == 1

    # Any save of the client evicts its keys, on every node.
    under_test.update_client_on_a(name, "saved", **{"e2e.saved": str(time.time())})

    under_test.assert_authenticates(b, name, "saved", rotated, "(right after the save on node a)")
    assert endpoint.requests == 2


def test_clear_keys_cache_on_node_a_clears_node_bs_cache_too(
    under_test: ClusterUnderTest, realm: str
) -> None:
    a, b = under_test.a, under_test.b
    name = realm
    first, rotated = rsa_key("cleared-1"), rsa_key("cleared-2")
    endpoint = under_test.jwks_endpoint("cleared")
    endpoint.serve_keys(jwks(first))
    under_test.add_jwt_client(name, "cleared", endpoint)
    under_test.assert_authenticates(a, name, "cleared", first, "(first use on node a)")
    under_test.assert_authenticates(b, name, "cleared", first, "(first use on node b)")
    assert endpoint.requests == 2

    endpoint.serve_keys(jwks(rotated))
    under_test.assert_refused(b, name, "cleared", rotated, "(window of an hour, nothing cleared)")
    assert endpoint.requests == 2

    under_test.admin_a.checked("POST", f"/{name}/clear-keys-cache", 204)

    cleared = "(after Clear keys cache on node a)"
    under_test.assert_authenticates(b, name, "cleared", rotated, cleared)
    under_test.assert_authenticates(a, name, "cleared", rotated, cleared)
    assert endpoint.requests == 4, "each node downloaded once more"


def test_a_realm_removed_through_node_a_leaves_none_of_its_keys_cached_on_node_b(
    under_test: ClusterUnderTest,
) -> None:
    b, admin_a = under_test.b, under_test.admin_a
    name, realm_id, client_uuid = "cluster-removed", str(uuid.uuid4()), str(uuid.uuid4())
    # The same kid before and after, different keys: keys node b kept would fail the signature.
    before, after = rsa_key("removed-realm-kid"), rsa_key("removed-realm-kid")
    endpoint = under_test.jwks_endpoint(name)
    endpoint.serve_keys(jwks(before))
    assert under_test.plain_realm(name, id=realm_id) == realm_id
    under_test.add_jwt_client(name, "survivor", endpoint, uuid=client_uuid)
    under_test.assert_authenticates(b, name, "survivor", before, "(before the realm is removed)")
    assert endpoint.requests == 1

    log_offset = b.log_size()
    admin_a.checked("DELETE", f"/{name}", 204)
    # Node b evicts every source of the realm (prefix "<realmId>::", logged at debug level).
    deadline = time.monotonic() + EVICTION_DELIVERY_SECONDS
    while not _evicted_realm_on(b, realm_id, log_offset) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _evicted_realm_on(b, realm_id, log_offset), (
        f"node b logged no eviction of realm {realm_id}'s sources within "
        f"{EVICTION_DELIVERY_SECONDS}s"
    )

    endpoint.serve_keys(jwks(after))
    assert under_test.plain_realm(name, id=realm_id) == realm_id
    under_test.add_jwt_client(name, "survivor", endpoint, uuid=client_uuid)
    assert under_test.client_uuid(name, "survivor") == client_uuid

    under_test.assert_authenticates(b, name, "survivor", after, "(in the realm created again)")
    assert endpoint.requests == 2, "node b served the removed realm's keys from its cache"


def _evicted_realm_on(node, realm_id: str, log_offset: int) -> bool:
    return any(
        "dev.awskms.keycloak.publickeys" in line and f"{realm_id}::" in line
        for line in harness.tail(node.log_path, 2000, log_offset).splitlines()
    )
