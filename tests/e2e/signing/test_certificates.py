"""An aws-kms key publishes a certificate in the realm's JWKS (`x5c`): without an upload, one minted
on save and signed by the KMS key itself (self-signed, CN = realm name); with an upload, that
certificate, after checking that its public key is the KMS key's."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

import kms_jws
import realms
from harness import create_kms_key

from .checks import (
    assert_certificate_signed_by,
    assert_signed_by,
    certificate_for,
    certificate_pem,
    certificate_spki,
    component_config,
    issue_tokens,
    jwks_key,
    key_entry,
    x5c_certificate,
)


def common_names(name) -> list[str]:
    return [attribute.value for attribute in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


@pytest.mark.parametrize("alg", ["RS256", "ES256", "ES512"])
def test_the_jwks_carries_a_certificate_minted_for_the_kms_key_and_signed_by_it(
    keycloak, admin, make_kms_realm, alg
):
    kms_realm = make_kms_realm(alg)

    jwk = jwks_key(keycloak, kms_realm.name, kms_realm.kid)
    certificate = x5c_certificate(jwk)

    assert certificate_spki(certificate) == kms_realm.spki, "the certificate is not for the KMS key"
    assert_certificate_signed_by(certificate, kms_realm.public_key)
    assert certificate.issuer == certificate.subject
    assert common_names(certificate.subject) == [kms_realm.name]
    now = datetime.datetime.now(datetime.timezone.utc)
    assert certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
    # The same certificate in the admin key list; the form's certificate field stays empty.
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert key_entry(admin, kms_realm.name, kms_realm.component_id)["certificate"] == (
        base64.b64encode(der).decode("ascii")
    )
    config = component_config(admin.component(kms_realm.name, kms_realm.component_id).json())
    assert not config.get("certificate"), "a minted certificate must not fill the upload field"


def test_an_uploaded_certificate_of_the_kms_key_is_stored_and_published_as_it_is(
    keycloak, admin, kms, emulator, make_realm, login
):
    realm = "uploaded-certificate"
    alias = "alias/e2e-uploaded-certificate"
    _, spki = create_kms_key(kms, "ECC_NIST_P384", alias)
    # Issued by some CA (not self-signed): any valid certificate of the KMS public key will do.
    uploaded = certificate_for(kms_jws.load_spki(spki), common_name="kms key with a CA certificate")
    component = realms.kms_component(
        "with-certificate",
        "ES384",
        alias,
        emulator.kms_url,
        realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key),
        extra={"certificate": certificate_pem(uploaded)},
    )
    make_realm(realm, "ES384", [component])
    [stored] = [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]

    config = component_config(admin.component(realm, stored["id"]).json())
    assert x509.load_pem_x509_certificate(config["certificate"].encode("ascii")) == uploaded
    published = x5c_certificate(jwks_key(keycloak, realm, kms_jws.kid_of_spki(spki)))
    assert published == uploaded
    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], "ES384", spki)
