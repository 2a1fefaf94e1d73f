"""A Keycloak process with one public key storage provider, and the clients tests make in it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import requests

from harness import Admin, Keycloak

from .client_keys import ClientKey, client_credentials, jwt_client
from .jwks_server import JwksEndpoint, JwksServer

NATIVE_LRU = "native-lru"
INFINISPAN = "infinispan"

# The window (minTimeBetweenRequests) both providers run with here, shortened from the default
# 10 s so that waiting it out stays cheap.
WINDOW_SECONDS = 2
# Waits for a window to be over add a margin: Keycloak's infinispan provider keeps the last
# request time in whole seconds, so its window may last up to a second longer; ours measures
# milliseconds on a monotonic clock.
WINDOW_MARGIN_SECONDS = {NATIVE_LRU: 0.3, INFINISPAN: 1.2}
# The JWKS fetch timeout both providers run with here (ours: fetchTimeout; Keycloak's HTTP
# client: socket-timeout-millis).
FETCH_TIMEOUT_MILLIS = 2000
# What a request may take before the test calls it hanging (not a speed assertion).
REQUEST_TIMEOUT_SECONDS = 30


def server_options(provider: str) -> tuple[str, ...]:
    """Keycloak options for a process whose public key storage is `provider`.

    Ours is not named: once the JAR is installed it is the default (order 100 beats
    infinispan's 0), which is what this proves. Keycloak's is selected as README says, with the
    storage option alone: "Clear keys cache" then still goes through the JAR's cache provider,
    which must reach Keycloak's cache too (docs/public-key-cache.md)."""
    if provider == NATIVE_LRU:
        prefix = "--spi-public-key-storage--native-lru--"
        return (
            f"{prefix}min-time-between-requests={WINDOW_SECONDS}",
            f"{prefix}fetch-timeout={FETCH_TIMEOUT_MILLIS}",
            f"{prefix}fetch-connect-timeout={FETCH_TIMEOUT_MILLIS // 2}",
        )
    if provider == INFINISPAN:
        return (
            "--spi-public-key-storage--provider=infinispan",
            f"--spi-public-key-storage--infinispan--min-time-between-requests={WINDOW_SECONDS}",
            f"--spi-connections-http-client--default--socket-timeout-millis={FETCH_TIMEOUT_MILLIS}",
            "--spi-connections-http-client--default--establish-connection-timeout-millis="
            f"{FETCH_TIMEOUT_MILLIS // 2}",
        )
    raise ValueError(f"unknown public key storage provider {provider}")


@dataclass
class ServerUnderTest:
    provider: str
    keycloak: Keycloak
    admin: Admin
    jwks_server: JwksServer

    def create_realm(self, name: str, **settings: Any) -> str:
        """A realm with Keycloak's generated keys; returns its id."""
        self.admin.create_realm({"realm": name, "enabled": True, **settings})
        return self.admin.checked("GET", f"/{name}", 200).json()["id"]

    def server_info(self) -> dict[str, Any]:
        """GET /admin/serverinfo (outside /admin/realms, hence the admin's token by hand)."""
        response = self.admin.session.get(
            f"{self.keycloak.base_url}/admin/serverinfo", headers=self.admin._auth(), timeout=60
        )
        assert response.status_code == 200, (
            f"GET /admin/serverinfo: {response.status_code} {response.text[:500]}"
        )
        return response.json()

    def token_url(self, realm: str) -> str:
        return self.keycloak.token_url(realm)

    def client_uuid(self, realm: str, client_id: str) -> str:
        found = self.admin.checked(
            "GET", f"/{realm}/clients", 200, params={"clientId": client_id}
        ).json()
        assert len(found) == 1, f"expected one client {client_id} in realm {realm}, got {found}"
        return found[0]["id"]

    def jwt_client(
        self,
        realm: str,
        name: str,
        keys: Optional[dict[str, Any]] = None,
        *,
        endpoint: Optional[JwksEndpoint] = None,
        client_uuid: Optional[str] = None,
    ) -> "JwtClient":
        """A client in `realm` whose jwks.url is `endpoint`, or a new endpoint serving `keys`."""
        if endpoint is None:
            endpoint = self.jwks_endpoint(f"{realm}-{name}")
            endpoint.serve_keys(keys or {"keys": []})
        representation = jwt_client(name, endpoint.url)
        if client_uuid:
            representation["id"] = client_uuid
        self.admin.add_client(realm, representation)
        return JwtClient(self, realm, name, endpoint)

    def jwks_endpoint(self, name: str) -> JwksEndpoint:
        """A new endpoint of the JWKS server (shared by both providers' processes)."""
        return self.jwks_server.endpoint(f"{self.provider}-{name}")

    @property
    def window_with_margin(self) -> float:
        """Seconds after a load attempt from which the next one is surely allowed."""
        return WINDOW_SECONDS + WINDOW_MARGIN_SECONDS[self.provider]

    def wait_out_window(self, endpoint: JwksEndpoint, since: Optional[float] = None) -> None:
        """Sleeps until the window that began with the endpoint's last request, or at `since`
        (time.monotonic(), for attempts that never reached the endpoint), is over."""
        starts = [start for start in (endpoint.last_request, since) if start is not None]
        if not starts:
            return
        remaining = max(starts) + self.window_with_margin - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


@dataclass
class JwtClient:
    """A client that authenticates with client assertions verified against its jwks.url."""

    server: ServerUnderTest
    realm: str
    client_id: str
    endpoint: JwksEndpoint

    @property
    def audience(self) -> str:
        return self.server.keycloak.realm_url(self.realm)

    def authenticate(
        self,
        key: ClientKey,
        kid: Optional[str] = None,
        session: Optional[requests.Session] = None,
    ) -> requests.Response:
        """client_credentials with an assertion signed by `key`, `kid` in its header."""
        assertion = key.assertion(self.client_id, self.audience, kid)
        return self.authenticate_with(assertion, session)

    def authenticate_with(
        self, assertion: str, session: Optional[requests.Session] = None
    ) -> requests.Response:
        return client_credentials(
            self.server.token_url(self.realm), assertion, session, REQUEST_TIMEOUT_SECONDS
        )

    def assert_authenticates(self, key: ClientKey, what: str = "") -> None:
        response = self.authenticate(key)
        assert response.status_code == 200 and "access_token" in response.json(), (
            f"{self.client_id} signing with {key.alg} key {key.kid} {what}: expected a token, "
            f"got {response.status_code} {response.text[:500]} "
            f"(JWKS downloads so far: {self.endpoint.requests})"
        )

    def assert_refused(self, key: ClientKey, kid: Optional[str] = None, what: str = "") -> None:
        response = self.authenticate(key, kid)
        assert_invalid_client(response, f"{self.client_id} with kid {kid or key.kid} {what}")

    def update(self, **attributes: str) -> None:
        uuid = self.server.client_uuid(self.realm, self.client_id)
        admin = self.server.admin
        representation = admin.checked("GET", f"/{self.realm}/clients/{uuid}", 200).json()
        representation["attributes"] = {**representation.get("attributes", {}), **attributes}
        admin.checked("PUT", f"/{self.realm}/clients/{uuid}", 204, json=representation)


def assert_invalid_client(response: requests.Response, what: str) -> None:
    """An OAuth error answer naming invalid_client (never a 5xx, never a token)."""
    assert response.status_code in (400, 401), (
        f"{what}: expected 400/401 invalid_client, got {response.status_code} "
        f"{response.text[:500]}"
    )
    body = response.json()
    assert body.get("error") == "invalid_client", f"{what}: {body}"
