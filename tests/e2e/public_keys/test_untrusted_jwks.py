"""What external parties can make the native-lru storage do (issue 8, section 4): JWKS URLs that
point at link-local, cloud metadata or operator-denied addresses are refused after resolution and
before any connection; weak and huge-exponent RSA keys in a JWKS are skipped.

One Keycloak of its own (module scope): the address options are server options.
`denied-addresses` lists 127.0.0.77 (a JWKS server listens there, by IP address) and
127.0.0.1/::1 (what `localhost` resolves to: the name path, through the resolver). The JWKS
server the allowed clients use therefore listens on 127.0.0.2.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import harness
from harness import Admin, Keycloak

from .client_keys import ClientKey, client_credentials, jwks, jwt_client, rsa_key
from .jwks_server import JwksServer
from .server_under_test import NATIVE_LRU, ServerUnderTest

REALM = "untrusted-jwks"
DENIED_ADDRESSES = "127.0.0.77/32,127.0.0.1/32,::1/128"
# A request refused before connecting answers at once; this only tells "refused" from "hung".
QUICK_SECONDS = 10


class CountingListener:
    """A TCP listener on `host` that counts the connections it accepts and never answers."""

    def __init__(self, host: str) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((host, 0))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._accepted = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self._accepted += 1
            connection.close()

    @property
    def accepted(self) -> int:
        with self._lock:
            return self._accepted

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture(scope="module")
def strict_server(
    setup_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerUnderTest]:
    keycloak = Keycloak.start(
        Path(setup_env["KEYCLOAK_DIST_TGZ"]),
        Path(setup_env["KEYCLOAK_JAVA_HOME"]),
        tmp_path_factory.mktemp("keycloak-untrusted-jwks"),
        [harness.provider_jar()],
        extra_args=(f"--spi-public-key-storage--native-lru--denied-addresses={DENIED_ADDRESSES}",),
    )
    jwks_server = JwksServer(host="127.0.0.2")
    server = ServerUnderTest(NATIVE_LRU, keycloak, Admin(keycloak.base_url), jwks_server)
    server.create_realm(REALM)
    try:
        yield server
    finally:
        jwks_server.stop()
        keycloak.stop()


def _log_since(server: ServerUnderTest, offset: int) -> str:
    return harness.tail(server.keycloak.log_path, 400, offset)


def _refused_quickly(server: ServerUnderTest, client_id: str, url: str) -> str:
    """Makes a client whose jwks.url is `url`, checks that its assertion is refused at once;
    returns the Keycloak log of the attempt."""
    server.admin.add_client(REALM, jwt_client(client_id, url))
    key = rsa_key(f"{client_id}-key")
    offset = server.keycloak.log_size()
    started = time.monotonic()
    response = client_credentials(
        server.token_url(REALM),
        key.assertion(client_id, server.keycloak.realm_url(REALM)),
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert response.status_code in (400, 401), f"{response.status_code} {response.text[:300]}"
    assert response.json().get("error") == "invalid_client", response.text[:300]
    assert elapsed < QUICK_SECONDS, f"the refused download took {elapsed:.1f}s"
    return _log_since(server, offset)


def test_a_jwks_url_on_a_link_local_address_is_refused_without_a_download(
    strict_server: ServerUnderTest,
) -> None:
    log = _refused_quickly(
        strict_server, "metadata-client", "http://169.254.169.254/latest/meta-data/iam/"
    )
    assert (
        "resolves to 169.254.169.254, a link-local address; downloads there are refused" in log
    ), log[-3000:]


def test_a_jwks_url_on_a_denied_address_is_refused_and_no_connection_reaches_it(
    strict_server: ServerUnderTest,
) -> None:
    listener = CountingListener("127.0.0.77")
    try:
        url = f"http://127.0.0.77:{listener.port}/jwks"
        log = _refused_quickly(strict_server, "denied-address-client", url)
        time.sleep(0.5)
        assert listener.accepted == 0, "a connection reached the denied address"
    finally:
        listener.stop()
    assert (
        f"The JWKS URL {url} resolves to 127.0.0.77, in 127.0.0.77/32; downloads there are "
        "refused (option --spi-public-key-storage--native-lru--denied-addresses)" in log
    ), log[-3000:]


def test_a_jwks_url_whose_name_resolves_to_denied_addresses_is_refused_without_connecting(
    strict_server: ServerUnderTest,
) -> None:
    listener = CountingListener("127.0.0.1")
    try:
        url = f"http://localhost:{listener.port}/jwks"
        log = _refused_quickly(strict_server, "denied-name-client", url)
        time.sleep(0.5)
        assert listener.accepted == 0, "a connection reached an address localhost resolves to"
    finally:
        listener.stop()
    assert f"The JWKS URL {url} resolves to " in log, log[-3000:]
    assert "(option --spi-public-key-storage--native-lru--denied-addresses)" in log, log[-3000:]


def _huge_exponent_jwk(kid: str, modulus_of: ClientKey) -> dict:
    """A JWK with a real 2048-bit modulus and a 3,069-bit odd public exponent."""
    jwk = {k: v for k, v in modulus_of.jwk().items() if k in ("kty", "n", "alg", "use")}
    exponent = (0x17 << (383 * 8)) | int.from_bytes(b"\xab" * 383, "big")
    e = base64.urlsafe_b64encode(exponent.to_bytes(384, "big")).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "e": e}


@pytest.mark.filterwarnings("ignore:The RSA key is 1024 bits")
def test_weak_and_huge_exponent_rsa_keys_are_skipped_while_a_2048_bit_key_works(
    strict_server: ServerUnderTest,
) -> None:
    weak = ClientKey(
        "weak-1024", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024)
    )
    strong = rsa_key("strong-2048")
    document = {
        "keys": [weak.jwk(), _huge_exponent_jwk("huge-exponent", strong), strong.jwk()]
    }
    weak_only = strict_server.jwt_client(REALM, "weak-only", jwks(weak))
    mixed = strict_server.jwt_client(REALM, "mixed")
    mixed.endpoint.serve_keys(document)

    offset = strict_server.keycloak.log_size()
    weak_only.assert_refused(weak, what="(a 1024-bit key is below min-rsa-key-size 2048)")
    mixed.assert_refused(strong, kid="huge-exponent", what="(a 3,069-bit exponent)")
    mixed.assert_authenticates(strong, "(the 2048-bit key of the same set)")
    log = _log_since(strict_server, offset)

    assert weak_only.endpoint.requests == 1, "the weak client's JWKS was not downloaded"
    assert (
        "Ignoring JWK key 'weak-1024'" in log
        and "its RSA modulus has 1024 bits, fewer than the minimum of 2048 (option "
        "--spi-public-key-storage--native-lru--min-rsa-key-size)" in log
    ), log[-3000:]
    assert (
        "Ignoring JWK key 'huge-exponent'" in log
        and "its RSA public exponent has 3069 bits; exponents above 2^32 are refused" in log
    ), log[-3000:]
