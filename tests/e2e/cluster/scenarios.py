"""What the cluster tests share: the nodes' options, realms whose key is in the (emulated) KMS,
clients that authenticate with signed JWTs, and the checks a token must pass on any node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import requests

import kms_jws
import realms
from harness import Admin, Emulator, create_kms_key
from public_keys.client_keys import ClientKey, client_credentials, jwt_client
from public_keys.jwks_server import JwksEndpoint, JwksServer

from .cluster_harness import Cluster, Node

# native-lru's window (min-time-between-requests) unless a module sets WINDOW_SECONDS: long
# enough that no test could pass by waiting it out, so whatever a node sees at once it saw
# because it was told.
LONG_WINDOW_SECONDS = 3600
# A request that takes longer than this is hanging, on a busy two-core machine too.
REQUEST_TIMEOUT_SECONDS = 30
NATIVE_LRU_OPTION = "--spi-public-key-storage--native-lru--"


def node_options(window_seconds: Optional[int]) -> tuple[str, ...]:
    """Runtime options of every node (the build is shared, so nothing here is a build option)."""
    window = LONG_WINDOW_SECONDS if window_seconds is None else window_seconds
    return (
        f"{NATIVE_LRU_OPTION}min-time-between-requests={window}",
        f"{NATIVE_LRU_OPTION}fetch-timeout=2000",
        f"{NATIVE_LRU_OPTION}fetch-connect-timeout=1000",
    )


@dataclass(frozen=True)
class KmsRealm:
    name: str
    alg: str
    alias: str
    spki: bytes
    component_id: str

    @property
    def kid(self) -> str:
        return kms_jws.kid_of_spki(self.spki)


KEY_SPECS = {"RS256": "RSA_2048", "ES256": "ECC_NIST_P256", "PS256": "RSA_2048"}


@dataclass
class ClusterUnderTest:
    cluster: Cluster
    a: Node
    b: Node
    admin_a: Admin
    admin_b: Admin
    emulator: Emulator
    kms: Any
    jwks_server: JwksServer
    login: realms.Login

    # --- realms and keys ---

    def kms_key(self, alias: str, alg: str = "RS256") -> bytes:
        """A new KMS key behind `alias`; returns its SPKI (what GetPublicKey answers)."""
        _, spki = create_kms_key(self.kms, KEY_SPECS[alg], alias)
        return spki

    def kms_component(self, name: str, alg: str, alias: str, priority: int = 200) -> dict[str, Any]:
        return realms.aws_kms_component(
            name,
            alg,
            alias,
            self.emulator.kms_url,
            self.emulator.access_key_id,
            self.emulator.secret_access_key,
            priority=priority,
        )

    def kms_realm(self, name: str, alg: str = "RS256") -> KmsRealm:
        """A realm, created through node a, whose `alg` key is an aws-kms provider on a new KMS
        key."""
        alias = f"alias/e2e-cluster-{name}"
        spki = self.kms_key(alias, alg)
        component = self.kms_component(f"aws-kms-{alg.lower()}", alg, alias)
        self.admin_a.create_realm(realms.realm(name, alg, self.login, key_providers=[component]))
        [ours] = [
            c for c in self.admin_a.key_providers(name)
            if c["providerId"] == realms.AWS_KMS_PROVIDER_ID
        ]
        return KmsRealm(name, alg, alias, spki, ours["id"])

    def plain_realm(self, name: str, **settings: Any) -> str:
        """A realm with Keycloak's generated keys, created through node a; returns its id."""
        self.admin_a.create_realm({"realm": name, "enabled": True, **settings})
        return self.admin_a.checked("GET", f"/{name}", 200).json()["id"]

    # --- tokens ---

    def issue_tokens(self, node: Node, realm: str) -> dict[str, Any]:
        response = node.password_grant(
            realm,
            self.login.client_id,
            self.login.client_secret,
            self.login.username,
            self.login.password,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        assert response.status_code == 200, (
            f"password grant on node {node.name}: {response.status_code} {response.text[:1000]}"
        )
        return response.json()

    def assert_kms_signed(self, token: str, realm: KmsRealm, spki: Optional[bytes] = None) -> None:
        """Signed by the KMS key (`spki`, else the realm's first key): the kid is SHA-256 of its
        SPKI, the signature verifies against it, and the issuer is the cluster's."""
        spki = spki or realm.spki
        jws = kms_jws.Jws.parse(token)
        assert jws.header.get("kid") == kms_jws.kid_of_spki(spki), jws.header
        kms_jws.verify_token(token, kms_jws.load_spki(spki), realm.alg)
        assert jws.claims.get("iss") == self.cluster.realm_issuer(realm.name), jws.claims.get("iss")

    def introspection_active(self, node: Node, realm: str, token: str) -> bool:
        response = node.introspect(realm, self.login.client_id, self.login.client_secret, token)
        assert response.status_code == 200, (
            f"introspection on node {node.name}: {response.status_code} {response.text[:500]}"
        )
        return response.json().get("active") is True

    # --- clients authenticating with signed JWTs ---

    def jwks_endpoint(self, name: str) -> JwksEndpoint:
        return self.jwks_server.endpoint(f"cluster-{name}")

    def add_jwt_client(
        self, realm: str, client_id: str, endpoint: JwksEndpoint, uuid: Optional[str] = None
    ) -> None:
        """A client whose keys come from `endpoint`, created through node a."""
        representation = jwt_client(client_id, endpoint.url)
        if uuid:
            representation["id"] = uuid
        self.admin_a.add_client(realm, representation)

    def client_uuid(self, realm: str, client_id: str) -> str:
        [found] = self.admin_a.checked(
            "GET", f"/{realm}/clients", 200, params={"clientId": client_id}
        ).json()
        return found["id"]

    def update_client_on_a(self, realm: str, client_id: str, **attributes: str) -> None:
        """Saves the client through node a (the admin console's PUT), with `attributes` changed."""
        uuid = self.client_uuid(realm, client_id)
        representation = self.admin_a.checked("GET", f"/{realm}/clients/{uuid}", 200).json()
        representation["attributes"] = {**representation.get("attributes", {}), **attributes}
        self.admin_a.checked("PUT", f"/{realm}/clients/{uuid}", 204, json=representation)

    def authenticate(
        self,
        node: Node,
        realm: str,
        client_id: str,
        key: ClientKey,
        kid: Optional[str] = None,
        session: Optional[requests.Session] = None,
    ) -> requests.Response:
        """client_credentials on `node` with an assertion signed by `key` (`kid` in its header).
        The audience is the realm's issuer, the cluster's hostname, whichever node is asked."""
        assertion = key.assertion(client_id, self.cluster.realm_issuer(realm), kid)
        token_url = node.token_url(realm)
        return client_credentials(token_url, assertion, session, REQUEST_TIMEOUT_SECONDS)

    def assert_authenticates(
        self, node: Node, realm: str, client_id: str, key: ClientKey, what: str
    ) -> None:
        response = self.authenticate(node, realm, client_id, key)
        assert response.status_code == 200 and "access_token" in response.json(), (
            f"{client_id} on node {node.name} with kid {key.kid} {what}: expected a token, got "
            f"{response.status_code} {response.text[:500]}"
        )

    def assert_refused(
        self, node: Node, realm: str, client_id: str, key: ClientKey, what: str
    ) -> None:
        response = self.authenticate(node, realm, client_id, key)
        assert response.status_code in (400, 401), (
            f"{client_id} on node {node.name} with kid {key.kid} {what}: expected invalid_client, "
            f"got {response.status_code} {response.text[:500]}"
        )
        assert response.json().get("error") == "invalid_client", response.text[:500]
