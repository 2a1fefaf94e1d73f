"""A client's jwks.url misbehaving: down, slower than the fetch timeout, 10 MB, a web page, a
redirect (never followed)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Iterator

import pytest

from .client_keys import ClientKey, jwks, random_kid, rsa_key
from .jwks_server import (
    JwksEndpoint,
    html_response,
    jwks_response,
    oversized_jwks_response,
    redirect_response,
)
from .server_under_test import (
    FETCH_TIMEOUT_MILLIS,
    INFINISPAN,
    WINDOW_SECONDS,
    JwtClient,
    ServerUnderTest,
)

REALM = "jwks-faults"

# Longer than the fetch timeout of both providers (the endpoint gives up when reprogrammed).
SLOW_SECONDS = 3 * FETCH_TIMEOUT_MILLIS / 1000


@pytest.fixture(scope="module")
def realm(server: ServerUnderTest) -> str:
    server.create_realm(REALM)
    return REALM


@pytest.fixture
def jwks_server_back_up(server: ServerUnderTest) -> Iterator[None]:
    """Whatever a test does to the JWKS server, it listens again afterwards."""
    yield
    server.jwks_server.come_up()


def _break(
    client: JwtClient, fault: str, published: ClientKey, rotated: ClientKey, elsewhere: JwksEndpoint
) -> None:
    """Makes the client's endpoint fail in the way named. The slow and the oversized answers
    do publish `rotated`, and so does `elsewhere`, where the redirect points: only the timeout,
    the size cap and not following redirects may keep it out."""
    keys = jwks(published, rotated)
    elsewhere.serve_keys(keys)
    breakers: dict[str, Callable[[], None]] = {
        "down": client.server.jwks_server.go_down,
        "slow": lambda: client.endpoint.serve(replace(jwks_response(keys), delay=SLOW_SECONDS)),
        "oversized": lambda: client.endpoint.serve(oversized_jwks_response(keys)),
        "html": lambda: client.endpoint.serve(html_response()),
        "redirect": lambda: client.endpoint.serve(redirect_response(elsewhere.url)),
    }
    breakers[fault]()


@pytest.mark.parametrize("fault", ["down", "slow", "oversized", "html", "redirect"])
@pytest.mark.usefixtures("jwks_server_back_up")
def test_while_the_jwks_url_fails_cached_keys_keep_working_and_unknown_kids_fail_as_invalid_client(
    server: ServerUnderTest, realm: str, fault: str
) -> None:
    published = rsa_key(f"{fault}-published")
    rotated = rsa_key(f"{fault}-rotated")
    client = server.jwt_client(realm, f"broken-{fault}", jwks(published))
    client.assert_authenticates(published, "(warm-up)")
    elsewhere = server.jwks_endpoint(f"{realm}-{fault}-elsewhere")

    _break(client, fault, published, rotated, elsewhere)
    server.wait_out_window(client.endpoint)
    requests_before = client.endpoint.requests
    client.assert_refused(rotated, what=f"(new kid while the endpoint is {fault})")
    if fault != "down":
        assert client.endpoint.requests > requests_before, "the unknown kid caused no fetch"
    client.assert_authenticates(published, f"(cached key while the endpoint is {fault})")
    client.assert_refused(published, kid=random_kid(), what=f"(endpoint {fault})")
    client.assert_authenticates(published, f"(cached key while the endpoint is {fault})")
    assert elsewhere.requests == 0, "a redirect was followed"
    # Attempts while it was down never reached the endpoint: the window may start at any.
    last_attempt = time.monotonic()

    # Repaired: the new kid is picked up on its first use after the window.
    server.jwks_server.come_up()
    client.endpoint.serve_keys(jwks(published, rotated))
    server.wait_out_window(client.endpoint, since=last_attempt)
    client.assert_authenticates(rotated, f"(after the endpoint stopped being {fault})")


def test_a_failing_jwks_url_is_asked_at_most_once_per_window_however_many_unknown_kids_arrive(
    server: ServerUnderTest, realm: str
) -> None:
    if server.provider == INFINISPAN:
        pytest.skip(
            "Keycloak's infinispan provider does not count failed loads against its window "
            "(it retries a failing source on every unknown kid); the window counting attempts "
            "is one of the native provider's additions"
        )
    published = rsa_key("failing-published")
    client = server.jwt_client(realm, "failing", jwks(published))
    client.assert_authenticates(published, "(warm-up)")
    client.endpoint.serve(html_response())
    server.wait_out_window(client.endpoint)

    requests_before = client.endpoint.requests
    started = time.monotonic()
    for _ in range(30):
        client.assert_refused(published, kid=random_kid(), what="(endpoint serving HTML)")
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    fetches = client.endpoint.requests - requests_before

    allowed = int(elapsed // WINDOW_SECONDS) + 1
    assert 1 <= fetches <= allowed, (
        f"{fetches} fetches of a failing endpoint in {elapsed:.1f}s of unknown kids, expected "
        f"between 1 and one per {WINDOW_SECONDS}s window ({allowed})"
    )
    client.assert_authenticates(published, "(last good keys while the endpoint fails)")
