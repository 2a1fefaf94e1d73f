"""Independent verification of JWS tokens against a KMS public key.

Shared by the end-to-end tests and the demo. Uses only PyJWT and cryptography: nothing here trusts
the code under test. The checks are done twice on purpose: once by PyJWT (claims and signature) and
once by hand with cryptography, so that a lenient library cannot hide a wrong signature encoding
(JWS ECDSA signatures are R||S, not DER; PS* uses a salt as long as the hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Union

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
# JWS ES* fixes the curve per algorithm (RFC 7518 §3.4).
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}

PublicKey = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey]


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def kid_of_spki(spki_der: bytes) -> str:
    """Keycloak's KeyUtils.createKeyId: base64url (no padding) of SHA-256 over the SPKI DER."""
    return b64url_encode(hashlib.sha256(spki_der).digest())


def spki_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_spki(spki: bytes) -> PublicKey:
    key = serialization.load_der_public_key(spki)
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ValueError(f"unexpected public key type {type(key).__name__}")
    return key


@dataclass(frozen=True)
class Jws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @classmethod
    def parse(cls, token: str) -> "Jws":
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError(f"a compact JWS has 3 parts, this has {len(parts)}")
        header_b64, claims_b64, signature_b64 = parts
        return cls(
            header=json.loads(b64url_decode(header_b64)),
            claims=json.loads(b64url_decode(claims_b64)),
            signing_input=f"{header_b64}.{claims_b64}".encode("ascii"),
            signature=b64url_decode(signature_b64),
        )


def verify_signature(jws: Jws, key: PublicKey, alg: str) -> None:
    """Verifies the JWS signature by hand with cryptography; raises InvalidSignature or ValueError."""
    family, bits = alg[:2], alg[2:]
    hash_alg = _HASHES[bits]()
    if family in ("RS", "PS"):
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"{alg} needs an RSA key, got {type(key).__name__}")
        if len(jws.signature) != (key.key_size + 7) // 8:
            raise InvalidSignature(
                f"{alg} signature is {len(jws.signature)} bytes, key is {key.key_size} bits"
            )
        pad = (
            padding.PKCS1v15()
            if family == "RS"
            else padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
        )
        key.verify(jws.signature, jws.signing_input, pad, hash_alg)
    elif family == "ES":
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"{alg} needs an EC key, got {type(key).__name__}")
        if not isinstance(key.curve, _CURVES[alg]):
            raise ValueError(f"{alg} needs curve {_CURVES[alg].name}, key is on {key.curve.name}")
        size = (key.curve.key_size + 7) // 8
        if len(jws.signature) != 2 * size:
            raise InvalidSignature(
                f"{alg} signature must be R||S of {2 * size} bytes, got {len(jws.signature)}"
            )
        r = int.from_bytes(jws.signature[:size], "big")
        s = int.from_bytes(jws.signature[size:], "big")
        key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hash_alg))
    else:
        raise ValueError(f"unsupported algorithm {alg}")


def verify_token(token: str, key: PublicKey, alg: str) -> Jws:
    """Verifies a token both by hand and with PyJWT (signature, exp/iat); returns it parsed.

    The audience is not checked here (access tokens may have none); callers check claims.
    """
    jws = Jws.parse(token)
    if jws.header.get("alg") != alg:
        raise ValueError(f"header alg is {jws.header.get('alg')!r}, expected {alg}")
    verify_signature(jws, key, alg)
    claims = jwt.decode(
        token,
        key=key,
        algorithms=[alg],
        options={"verify_aud": False, "require": ["exp", "iat"]},
        leeway=30,
    )
    if claims != jws.claims:
        raise ValueError("PyJWT and the manual parse disagree about the claims")
    return jws


def key_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """The public key of one JWKS entry, via PyJWT's JWK parser (independent of Keycloak)."""
    key = jwt.PyJWK(jwk).key
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ValueError(f"unexpected JWK key type {type(key).__name__}")
    return key
