"""Assertions shared by the end-to-end tests."""

from __future__ import annotations

import base64
import datetime
import secrets
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

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


STORED_KEY_FIELDS = ("keyArn", "keySpec", "keyType", "publicKey", "kid")


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


def refusal_message(response, what: str) -> str:
    """Asserts HTTP 400 with a non-empty errorMessage and returns the message."""
    assert response.status_code == 400, (
        f"{what}: expected 400, got {response.status_code} {response.text[:2000]}"
    )
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{what}: 400 without a JSON body: {response.text[:2000]}") from None
    message = body.get("errorMessage", "") if isinstance(body, dict) else ""
    assert message, f"{what}: 400 without an errorMessage: {response.text[:2000]}"
    return message


def jwks_kids(keycloak: Keycloak, realm: str) -> set[str]:
    return {key["kid"] for key in keycloak.certs(realm)["keys"]}


# --- X.509 ------------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def certificate_for(
    subject_public_key: kms_jws.PublicKey,
    *,
    not_before: Optional[datetime.datetime] = None,
    not_after: Optional[datetime.datetime] = None,
    common_name: str = "e2e certificate",
) -> x509.Certificate:
    """A certificate whose subject key is `subject_public_key`, issued by a throwaway CA key
    (nobody can sign with a KMS private key from here, and no check needs a self-signature)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    not_before = not_before or _now() - datetime.timedelta(days=1)
    not_after = not_after or _now() + datetime.timedelta(days=30)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e throwaway CA")]))
        .public_key(subject_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def days_from_now(days: float) -> datetime.datetime:
    return _now() + datetime.timedelta(days=days)


def throwaway_rsa_public_key() -> rsa.RSAPublicKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


def private_key_pem() -> str:
    """A PKCS#8 PEM private key, i.e. what an administrator might paste by mistake."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def pem_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM block: none may be echoed anywhere."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def garbage_pem() -> str:
    return (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(secrets.token_bytes(96)).decode("ascii")
        + "\n-----END CERTIFICATE-----\n"
    )


def x5c_certificate(jwk: dict[str, Any]) -> x509.Certificate:
    """The first certificate of a JWKS entry's x5c (standard base64 DER, RFC 7517 §4.7)."""
    chain = jwk.get("x5c")
    assert chain, f"the JWKS entry {jwk.get('kid')} has no x5c: {jwk}"
    return x509.load_der_x509_certificate(base64.b64decode(chain[0]))


def assert_certificate_signed_by(certificate: x509.Certificate, key: kms_jws.PublicKey) -> None:
    """The certificate's own signature verifies with `key` (raises InvalidSignature if not)."""
    hash_algorithm = certificate.signature_hash_algorithm
    assert hash_algorithm is not None, certificate.signature_algorithm_oid
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            padding.PKCS1v15(),
            hash_algorithm,
        )
    else:
        key.verify(
            certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(hash_algorithm)
        )


def certificate_spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
