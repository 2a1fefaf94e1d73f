"""Keys a test client signs its `client_assertion`s with (RFC 7523), and the JWKS it publishes."""

from __future__ import annotations

import base64
import datetime
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Union

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClientKey:
    """A private key with its kid and JWS algorithm; `jwk()` is its public JWK."""

    kid: str
    alg: str
    private_key: PrivateKey
    use: str = "sig"
    with_x5c: bool = False

    def jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk.update(kid=self.kid, alg=self.alg, use=self.use)
        if self.with_x5c:
            jwk["x5c"] = [base64.b64encode(self_signed_certificate_der(self.private_key)).decode()]
        return jwk

    def assertion(self, client_id: str, audience: str, kid: Optional[str] = None) -> str:
        """A fresh client assertion (unique jti: Keycloak refuses replays), signed with this key
        and carrying `kid` in its header (this key's kid unless given)."""
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 120,
        }
        return jwt.encode(
            claims, self.private_key, algorithm=self.alg, headers={"kid": kid or self.kid}
        )


def rsa_key(kid: str, *, use: str = "sig", with_x5c: bool = False) -> ClientKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ClientKey(kid, "RS256", private, use=use, with_x5c=with_x5c)


def ec_key(kid: str) -> ClientKey:
    return ClientKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def ed25519_key(kid: str) -> ClientKey:
    return ClientKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def jwks(*keys: ClientKey) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}


def random_kid() -> str:
    return "bogus-" + secrets.token_urlsafe(12)


def self_signed_certificate_der(private_key: PrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e client key")])
    now = datetime.datetime.now(datetime.timezone.utc)
    # Ed25519 signs without a separate hash.
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(private_key, algorithm)
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def jwt_client(client_id: str, jwks_url: str) -> dict[str, Any]:
    """A confidential client that authenticates with signed JWTs checked against `jwks_url`."""
    return {
        "clientId": client_id,
        "enabled": True,
        "protocol": "openid-connect",
        "publicClient": False,
        "clientAuthenticatorType": "client-jwt",
        "serviceAccountsEnabled": True,
        "standardFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "attributes": {"use.jwks.url": "true", "jwks.url": jwks_url},
    }


def client_credentials(
    token_url: str,
    assertion: str,
    session: Optional[requests.Session] = None,
    timeout: float = 30,
) -> requests.Response:
    """The client_credentials grant, the client authenticated by `assertion` only. `timeout`
    (seconds without an answer) is generous: a request that needs longer is hanging."""
    return (session or requests).post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=timeout,
    )
