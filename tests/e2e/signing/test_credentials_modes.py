"""Each credentials mode saves and signs: `access-key` (stored key pair), `default` (the Keycloak
server's own AWS credential chain; here the environment variables the session's Keycloak was
started with, nothing stored in the component) and `assume-role` (STS AssumeRole, with the
external ID the role requires, as a stored access key or as the default chain). A wrong external
ID is refused."""

from __future__ import annotations

from typing import Callable

import pytest

import kms_jws
import realms
from harness import create_kms_key

from .checks import (
    assert_signed_by,
    issue_tokens,
    refusal_message,
    stored_key_fields,
)

MASKED = "**********"


def main_access_key(emulator, identities) -> dict[str, str]:
    return realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key)


def ambient_chain(emulator, identities) -> dict[str, str]:
    return realms.default_credentials()


def role_as_access_key(emulator, identities) -> dict[str, str]:
    return realms.assume_role_credentials(
        identities.signer_role_arn,
        emulator.sts_url,
        external_id=identities.signer_external_id,
        access_key_id=emulator.access_key_id,
        secret_access_key=emulator.secret_access_key,
        role_session_name="e2e-assume-role",
    )


def role_as_ambient_chain(emulator, identities) -> dict[str, str]:
    return realms.assume_role_credentials(
        identities.signer_role_arn, emulator.sts_url, external_id=identities.signer_external_id
    )


MODES: dict[str, tuple[str, Callable[..., dict[str, str]]]] = {
    # id: (algorithm, credentials)
    "access-key": ("RS256", main_access_key),
    "default": ("ES256", ambient_chain),
    "assume-role-as-access-key": ("PS256", role_as_access_key),
    "assume-role-as-default-chain": ("ES384", role_as_ambient_chain),
}
KEY_SPECS = {"RS256": "RSA_2048", "ES256": "ECC_NIST_P256", "PS256": "RSA_3072", "ES384": "ECC_NIST_P384"}


@pytest.mark.parametrize("mode", list(MODES))
def test_a_component_in_each_credentials_mode_is_saved_with_its_key_fields_and_its_tokens_verify(
    keycloak, admin, kms, emulator, aws_identities, make_realm, login, mode
):
    alg, credentials = MODES[mode]
    realm = f"credentials-{mode}"
    alias = f"alias/e2e-credentials-{mode}"
    key_arn, spki = create_kms_key(kms, KEY_SPECS[alg], alias)
    config = credentials(emulator, aws_identities)
    component = realms.kms_component(f"aws-kms-{mode}", alg, alias, emulator.kms_url, config)
    emulator.reset_stats()

    make_realm(realm, alg, [component])

    calls = emulator.calls()
    assumes_role = config["credentialsMode"] == "assume-role"
    assert (calls.get("AssumeRole", 0) >= 1) == assumes_role, calls
    assert calls.get("DescribeKey", 0) >= 1 and calls.get("Sign", 0) >= 1, calls
    [stored] = [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]
    fields = stored_key_fields(admin.component(realm, stored["id"]).json())
    assert fields["keyArn"] == key_arn
    assert fields["keySpec"] == KEY_SPECS[alg]
    assert fields["kid"] == kms_jws.kid_of_spki(spki)
    assert fields["credentialsMode"] == config["credentialsMode"]
    for secret in ("secretAccessKey", "externalId"):
        if secret in config:
            assert fields[secret] == MASKED, f"{secret} is not masked: {fields[secret]!r}"

    if mode == "default":
        assert not fields.get("accessKeyId") and not fields.get("secretAccessKey"), fields
        exported = admin.checked("POST", f"/{realm}/partial-export", 200)
        assert aws_identities.ambient_access_key_id not in exported.text

    tokens = issue_tokens(keycloak, realm, login)
    for name in ("access_token", "id_token"):
        assert_signed_by(keycloak, realm, tokens[name], alg, spki)
    # Credentials (an assumed role's too) are kept: more tokens cost one Sign each, nothing else.
    emulator.reset_stats()
    tokens = issue_tokens(keycloak, realm, login)
    assert emulator.calls() == {"Sign": 2}
    assert_signed_by(keycloak, realm, tokens["access_token"], alg, spki)


@pytest.mark.parametrize("as_identity", ["access-key", "default-chain"])
def test_assume_role_with_a_wrong_external_id_is_refused_and_nothing_is_saved(
    admin, kms, emulator, aws_identities, login, as_identity
):
    realm = f"credentials-wrong-external-id-{as_identity}"
    admin.create_realm(realms.realm(realm, "RS256", login))
    alias = f"alias/e2e-wrong-external-id-{as_identity}"
    create_kms_key(kms, "RSA_2048", alias)
    wrong = "not-the-external-id-" + as_identity
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=wrong,
        access_key_id=emulator.access_key_id if as_identity == "access-key" else None,
        secret_access_key=emulator.secret_access_key if as_identity == "access-key" else None,
    )
    component = realms.kms_component("wrong-external-id", "RS256", alias, emulator.kms_url, credentials)
    emulator.reset_stats()

    response = admin.create_component(realm, component)

    message = refusal_message(response, f"POST /admin/realms/{realm}/components")
    assert f"Could not assume role {aws_identities.signer_role_arn}" in message, message
    assert "'External ID'" in message, message
    assert wrong not in response.text and aws_identities.signer_external_id not in response.text
    assert emulator.calls().get("AssumeRole", 0) >= 1, emulator.calls()
    assert "Sign" not in emulator.calls(), "nothing may be signed without the role"
    assert not [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]
