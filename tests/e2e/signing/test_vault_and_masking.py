"""The secret fields (`secretAccessKey`, `externalId`) are masked when read back and may be
`${vault.NAME}` references to Keycloak's vault (the session's Keycloak runs the file vault): a
reference that resolves is saved and signs, one that does not is refused naming the vault secret,
and the resolved values are never shown."""

from __future__ import annotations

import secrets

import pytest

import realms
from harness import create_kms_key

from .checks import assert_signed_by, component_config, issue_tokens, refusal_message

MASKED = "**********"


@pytest.fixture(scope="module")
def rsa_key(kms):
    alias = "alias/e2e-vault-and-masking"
    key_arn, spki = create_kms_key(kms, "RSA_2048", alias)
    return alias, key_arn, spki


def aws_kms_components(admin, realm: str) -> list[dict]:
    return [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]


@pytest.fixture(scope="module")
def masked_realm(admin, emulator, aws_identities, make_realm, rsa_key) -> str:
    """A realm signing with an assume-role component that stores both secrets."""
    alias, _, _ = rsa_key
    realm = "masked-assume-role"
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=aws_identities.signer_external_id,
        access_key_id=emulator.access_key_id,
        secret_access_key=emulator.secret_access_key,
    )
    return make_realm(
        realm, "RS256", [realms.kms_component("masked", "RS256", alias, emulator.kms_url, credentials)]
    )


def test_the_secret_access_key_and_the_external_id_are_masked_when_read_back_and_exported(
    admin, emulator, aws_identities, masked_realm
):
    realm = masked_realm
    [component] = aws_kms_components(admin, realm)

    one = admin.component(realm, component["id"])
    listed = admin.checked("GET", f"/{realm}/components", 200)
    exported = admin.checked("POST", f"/{realm}/partial-export", 200)

    config = component_config(one.json())
    assert config["secretAccessKey"] == MASKED, config["secretAccessKey"]
    assert config["externalId"] == MASKED, config["externalId"]
    assert config["accessKeyId"] == emulator.access_key_id
    assert config["roleArn"] == aws_identities.signer_role_arn
    for response in (one, listed, exported):
        assert emulator.secret_access_key not in response.text, f"the secret is in {response.url}"
        assert aws_identities.signer_external_id not in response.text, f"the external ID is in {response.url}"


def test_a_masked_secret_sent_back_unchanged_keeps_the_stored_one(
    keycloak, admin, login, rsa_key, masked_realm
):
    # What the admin console does when an administrator edits another field.
    realm = masked_realm
    [component] = aws_kms_components(admin, realm)
    representation = admin.component(realm, component["id"]).json()
    representation["config"]["roleSessionName"] = ["e2e-renamed-session"]

    response = admin.update_component(realm, component["id"], representation)

    assert response.status_code == 204, f"{response.status_code} {response.text}"
    config = component_config(admin.component(realm, component["id"]).json())
    assert config["roleSessionName"] == "e2e-renamed-session"
    assert config["secretAccessKey"] == MASKED and config["externalId"] == MASKED
    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], "RS256", rsa_key[2])


@pytest.mark.parametrize("how", ["component", "realm-import"])
def test_vault_references_that_resolve_are_saved_as_references_and_the_key_signs(
    keycloak, admin, emulator, aws_identities, login, rsa_key, how
):
    alias, key_arn, spki = rsa_key
    realm = f"vault-resolves-{how}"
    secret_ref = keycloak.write_vault_secret(realm, "kms-secret", emulator.secret_access_key)
    external_id_ref = keycloak.write_vault_secret(realm, "kms-external-id", aws_identities.signer_external_id)
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=external_id_ref,
        access_key_id=emulator.access_key_id,
        secret_access_key=secret_ref,
    )
    component = realms.kms_component("from-vault", "RS256", alias, emulator.kms_url, credentials)

    if how == "component":
        admin.create_realm(realms.realm(realm, "RS256", login, key_providers=[]))
        response = admin.create_component(realm, component)
    else:
        response = admin.import_realm(realms.realm(realm, "RS256", login, key_providers=[component]))

    assert response.status_code == 201, f"{how}: {response.status_code} {response.text[:2000]}"
    [stored] = aws_kms_components(admin, realm)
    read_back = admin.component(realm, stored["id"])
    config = component_config(read_back.json())
    # Saved, a reference is in its stored form ("{stored}${vault.NAME}", so that a kept reference
    # cannot follow a changed destination), which Keycloak masks like a secret; never the values.
    assert config["secretAccessKey"] == MASKED
    assert config["externalId"] == MASKED
    assert config["keyArn"] == key_arn
    assert emulator.secret_access_key not in read_back.text
    assert aws_identities.signer_external_id not in read_back.text
    tokens = issue_tokens(keycloak, realm, login)
    for name in ("access_token", "id_token"):
        assert_signed_by(keycloak, realm, tokens[name], "RS256", spki)


def test_a_kept_vault_reference_is_not_resolved_toward_a_changed_endpoint_until_it_is_entered_again(
    keycloak, admin, emulator, make_realm, rsa_key, login
):
    alias, _, spki = rsa_key
    realm = "vault-kept-destination"
    secret_ref = keycloak.write_vault_secret(realm, "kms-secret", emulator.secret_access_key)
    credentials = realms.access_key_credentials(emulator.access_key_id, secret_ref)
    make_realm(realm, "RS256", [realms.kms_component("from-vault", "RS256", alias, emulator.kms_url, credentials)])
    [listed] = aws_kms_components(admin, realm)
    stored = admin.component(realm, listed["id"]).json()
    assert component_config(stored)["secretAccessKey"] == MASKED
    # The same emulator spelt differently: what matters is that the destination changed.
    moved = emulator.kms_url.replace("127.0.0.1", "localhost")
    emulator.reset_stats()

    kept = admin.update_component(realm, listed["id"], realms.with_config(stored, endpointUrl=moved))

    message = refusal_message(kept, "a kept vault reference toward a changed endpoint")
    assert message.startswith("'Secret access key' was saved for another destination"), message
    assert emulator.calls() == {}, "the vault secret was resolved toward no one"
    assert component_config(admin.component(realm, listed["id"]).json())["endpointUrl"] == emulator.kms_url

    entered = admin.update_component(
        realm, listed["id"], realms.with_config(stored, endpointUrl=moved, secretAccessKey=secret_ref)
    )
    assert entered.status_code == 204, f"{entered.status_code} {entered.text[:2000]}"
    assert component_config(admin.component(realm, listed["id"]).json())["endpointUrl"] == moved
    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], "RS256", spki)


@pytest.mark.parametrize(
    ("field", "label"), [("secretAccessKey", "Secret access key"), ("externalId", "External ID")]
)
def test_a_vault_reference_that_does_not_resolve_is_refused_naming_the_vault_secret(
    keycloak, admin, emulator, aws_identities, login, rsa_key, field, label
):
    alias, _, _ = rsa_key
    realm = "vault-missing"
    if not admin.realm_exists(realm):
        admin.create_realm(realms.realm(realm, "RS256", login))
    # The other secret resolves, so that only `field` is at fault.
    keycloak.write_vault_secret(realm, "present-secret", emulator.secret_access_key)
    keycloak.write_vault_secret(realm, "present-external-id", aws_identities.signer_external_id)
    missing = "absent-" + secrets.token_hex(4)
    refs = {"secretAccessKey": "${vault.present-secret}", "externalId": "${vault.present-external-id}"}
    refs[field] = "${vault." + missing + "}"
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=refs["externalId"],
        access_key_id=emulator.access_key_id,
        secret_access_key=refs["secretAccessKey"],
    )
    component = realms.kms_component(f"missing-{field}", "RS256", alias, emulator.kms_url, credentials)
    emulator.reset_stats()

    response = admin.create_component(realm, component)

    message = refusal_message(response, f"POST /admin/realms/{realm}/components")
    assert f"'{label}' refers to vault secret {missing}, which was not found" in message, message
    assert emulator.calls() == {}, "an unresolved reference must be refused before calling AWS"
    assert emulator.secret_access_key not in response.text
    assert aws_identities.signer_external_id not in response.text
    assert not aws_kms_components(admin, realm)


@pytest.mark.last
def test_no_secret_of_any_identity_appears_in_the_keycloak_log(keycloak, emulator, aws_identities):
    # Runs last, after every save, refusal and signature of the session has been logged.
    log = keycloak.log_text()

    assert "Listening on: " + keycloak.base_url in log, "not the log of the Keycloak under test"
    for secret in (emulator.secret_access_key, *aws_identities.secrets):
        assert secret not in log, f"a secret is in {keycloak.log_path}"
