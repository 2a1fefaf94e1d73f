"""The aws-kms key provider through Keycloak's admin console, as an administrator uses it: log in,
Realm settings → Keys → Providers → Add provider → aws-kms, fill the form for each credentials
mode, upload a certificate with the file control, save, find the key in the Keys list; see the
console's alert when a save is refused; reopen a provider and find its secrets masked.

Each step leaves a screenshot in target/e2e-artifacts/console/ (the path is printed at the end).
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives import serialization

import harness
import kms_jws
import realms
from harness import create_kms_key
from signing.checks import (
    assert_signed_by,
    certificate_for,
    certificate_pem,
    component_config,
    issue_tokens,
    refusal_message,
    throwaway_rsa_public_key,
)

from .page import AdminConsole

MASKED = "**********"
SAVED = "The provider has been saved successfully."
CREDENTIALS_MODES = ["default", "access-key", "assume-role"]
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
# Config keys of the fields an administrator enters, in form order, and the fields validation
# writes on save (shown read-only in the form).
ENTERED = [
    "kmsKeyId", "region", "endpointUrl", "credentialsMode", "accessKeyId", "secretAccessKey",
    "roleArn", "externalId", "roleSessionName", "stsEndpointUrl", "algorithm", "certificate",
]
WRITTEN_ON_SAVE = ["keyArn", "keySpec", "keyType", "curve", "kid", "publicKey"]
# The fields that only one credentials mode uses; their help must say which.
MODE_FIELDS = {
    "accessKeyId": ("'access-key'", "'assume-role'"),
    "secretAccessKey": ("'access-key'", "'assume-role'"),
    "roleArn": ("'assume-role'",),
    "externalId": ("'assume-role'",),
    "roleSessionName": ("'assume-role'",),
    "stsEndpointUrl": ("'assume-role'",),
}
LISTS = {"credentialsMode", "algorithm"}


def console_realm(admin, login, name: str, alg: str) -> str:
    """A realm signing with `alg` by default, with Keycloak's generated keys and one user."""
    if not admin.realm_exists(name):
        admin.create_realm(realms.realm(name, alg, login))
    return name


def aws_kms_components(admin, realm: str) -> list[dict[str, Any]]:
    return [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]


def write_pem(directory: Path, name: str, pem: str) -> Path:
    path = directory / name
    path.write_text(pem)
    return path


def test_an_administrator_logs_in_to_the_admin_console(browser: AdminConsole):
    browser.open_login_page()
    browser.shoot("login-page")

    browser.log_in(harness.ADMIN_USERNAME, harness.ADMIN_PASSWORD)

    browser.settle()
    browser.shoot("logged-in")


def test_the_aws_kms_form_has_a_label_and_help_for_every_field_and_lists_for_algorithm_and_credentials_mode(
    console: AdminConsole, admin, login, console_artifacts: Path
):
    realm = console_realm(admin, login, "console-form", "RS256")
    console.open_key_providers(realm)

    offered = console.add_provider_options()
    console.shoot("add-provider-choices")
    assert "aws-kms" in offered, offered
    console.choose_provider("aws-kms")
    console.shoot("add-provider-form")

    labels = console.labels()
    for expected in ("Name", "Priority", "Enabled", "Active", "KMS key", "Region", "Endpoint URL",
                     "Credentials mode", "Access key ID", "Secret access key", "Role ARN",
                     "External ID", "Role session name", "STS endpoint URL", "Algorithm",
                     "X509 Certificate", "Key ARN", "Key spec", "Key type", "Curve",
                     "Key ID (kid)", "Public key"):
        assert expected in labels, f"no field labelled {expected!r}: {labels}"
    assert console.list_value("credentialsMode") == "default"
    assert console.list_value("algorithm") == "RS256"

    assert console.list_options("credentialsMode") == CREDENTIALS_MODES
    console.shoot("credentials-mode-list")
    console.choose("credentialsMode", "default")
    assert console.list_options("algorithm") == ALGORITHMS
    console.shoot("algorithm-list")
    console.choose("algorithm", "RS256")

    # Every help text as the console shows it, with a screenshot each, for a person to read.
    help_texts: list[str] = []
    for key in ENTERED + WRITTEN_ON_SAVE:
        element_id = key if key in LISTS or key == "certificate" else f"config.{key}"
        label = console.label_of(element_id).replace("*", "").strip()
        text = console.help_text(element_id, label)
        console.shoot(f"help-{key}")
        console.close_help()
        help_texts.append(f"{label} ({key}):\n    {text}\n")
        assert len(text) > 20, f"the help of {label!r} says too little: {text!r}"
        for mode in MODE_FIELDS.get(key, ()):
            assert mode in text, f"the help of {label!r} does not say it applies to {mode}: {text!r}"
        if key in WRITTEN_ON_SAVE:
            assert text.startswith("Written when you save"), f"{label!r}: {text!r}"
    (console_artifacts / "help-texts.txt").write_text("\n".join(help_texts))


def default_mode(emulator, identities, key_arn: str, alias: str) -> dict[str, str]:
    """The server's own credential chain: no secret in the form."""
    return {
        "kmsKeyId": alias,
        "region": emulator.region,
        "endpointUrl": emulator.kms_url,
        "credentialsMode": "default",
    }


def access_key_mode(emulator, identities, key_arn: str, alias: str) -> dict[str, str]:
    """A stored access key, the key named by its ARN."""
    return {
        "kmsKeyId": key_arn,
        "region": emulator.region,
        "endpointUrl": emulator.kms_url,
        "credentialsMode": "access-key",
        "accessKeyId": emulator.access_key_id,
        "secretAccessKey": emulator.secret_access_key,
    }


def assume_role_mode(emulator, identities, key_arn: str, alias: str) -> dict[str, str]:
    """A role assumed with its external ID, as a stored access key."""
    return {
        "kmsKeyId": alias,
        "region": emulator.region,
        "endpointUrl": emulator.kms_url,
        "credentialsMode": "assume-role",
        "accessKeyId": emulator.access_key_id,
        "secretAccessKey": emulator.secret_access_key,
        "roleArn": identities.signer_role_arn,
        "externalId": identities.signer_external_id,
        "roleSessionName": "keycloak-console-e2e",
        "stsEndpointUrl": emulator.sts_url,
    }


MODES: dict[str, tuple[str, str, Callable[..., dict[str, str]]]] = {
    # credentials mode: (algorithm, key spec, the form's values)
    "default": ("ES256", "ECC_NIST_P256", default_mode),
    "access-key": ("PS256", "RSA_2048", access_key_mode),
    "assume-role": ("RS256", "RSA_2048", assume_role_mode),
}
SECRETS = ("secretAccessKey", "externalId")


def fill_form(console: AdminConsole, name: str, alg: str, values: dict[str, str]) -> None:
    console.fill("name", name)
    console.fill("priority", str(realms.KMS_PROVIDER_PRIORITY))
    for key, value in values.items():
        if key == "credentialsMode":
            console.choose(key, value)
        else:
            console.fill(key, value)
    console.choose("algorithm", alg)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_provider_saved_through_the_form_in_each_credentials_mode_shows_in_the_keys_list_with_its_kid_algorithm_and_certificate(
    console: AdminConsole, admin, keycloak, kms, emulator, aws_identities, login, tmp_path, mode
):
    alg, key_spec, form_values = MODES[mode]
    realm = console_realm(admin, login, f"console-{mode}", alg)
    alias = f"alias/e2e-console-{mode}"
    key_arn, spki = create_kms_key(kms, key_spec, alias)
    certificate = certificate_for(kms_jws.load_spki(spki), common_name=f"console {mode} key")
    pem_file = write_pem(tmp_path, f"kms-key-{mode}.pem", certificate_pem(certificate))
    values = form_values(emulator, aws_identities, key_arn, alias)
    name = f"kms-{mode}"

    console.open_key_providers(realm)
    console.add_provider_options()
    console.choose_provider("aws-kms")
    fill_form(console, name, alg, values)
    console.upload_certificate(pem_file)
    console.shoot(f"{mode}-filled")
    alert = console.save()
    console.shoot(f"{mode}-saved")

    assert (alert.kind, alert.text) == ("success", SAVED), alert
    console.wait_for_dialog_closed()
    # What the console sent is what was typed; secrets come back masked.
    [component] = [c for c in aws_kms_components(admin, realm) if c["name"] == name]
    config = component_config(admin.component(realm, component["id"]).json())
    for key, value in values.items():
        expected = MASKED if key in SECRETS else value
        assert config.get(key) == expected, f"{key}: stored {config.get(key)!r}, typed {value!r}"
    assert config["algorithm"] == alg and config["priority"] == str(realms.KMS_PROVIDER_PRIORITY)
    assert config["keyArn"] == key_arn and config["kid"] == kms_jws.kid_of_spki(spki)

    rows = [row for row in console.key_rows(realm) if row.provider == name]
    console.shoot(f"{mode}-keys-list")
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert len(rows) == 1, rows
    [row] = rows
    assert row.kid == kms_jws.kid_of_spki(spki), row
    assert row.algorithm == alg and row.use == "SIG", row
    assert row.type == ("EC" if alg.startswith("ES") else "RSA"), row
    assert row.certificate == base64.b64encode(der).decode("ascii"), "not the uploaded certificate"
    shown = console.show_certificate(row.kid)
    console.shoot(f"{mode}-certificate")
    console.close_dialog()
    assert base64.b64encode(der).decode("ascii")[:40] in shown.replace("\n", ""), shown

    # And the key the console saved signs the realm's tokens.
    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], alg, spki)


def refused_save(console: AdminConsole, realm: str, name: str, alg: str, values: dict[str, str],
                 certificate: Path | None, shot: str):
    console.open_key_providers(realm)
    console.add_provider_options()
    console.choose_provider("aws-kms")
    fill_form(console, name, alg, values)
    if certificate is not None:
        console.upload_certificate(certificate)
    alert = console.save()
    console.settle()
    console.shoot(shot)
    return alert


def test_a_certificate_of_another_key_is_refused_and_the_console_alert_says_why(
    console: AdminConsole, admin, kms, emulator, aws_identities, login, tmp_path
):
    realm = console_realm(admin, login, "console-refusals", "RS256")
    alias = "alias/e2e-console-refusals"
    key_arn, _ = create_kms_key(kms, "RSA_2048", alias)
    other = certificate_pem(certificate_for(throwaway_rsa_public_key(), common_name="another key"))
    values = default_mode(emulator, aws_identities, key_arn, alias)

    alert = refused_save(console, realm, "kms-other-certificate", "RS256", values,
                         write_pem(tmp_path, "another-key.pem", other), "certificate-of-another-key")

    # The alert carries the message the admin REST API answers for the same configuration.
    component = realms.kms_component("kms-other-certificate", "RS256", alias, emulator.kms_url,
                                     realms.default_credentials(), extra={"certificate": other})
    message = refusal_message(admin.create_component(realm, component), "the same configuration over REST")
    assert alert.kind == "danger", alert
    assert alert.text.startswith("Error saving provider: "), alert
    assert message in alert.text, f"alert {alert.text!r} lacks {message!r}"
    assert key_arn in alert.text, alert
    # The dialog stays open with what was typed, and nothing is saved.
    assert console.field("kmsKeyId").get_attribute("value") == alias
    assert not aws_kms_components(admin, realm)


def test_an_unknown_kms_key_is_refused_and_the_console_alert_says_why(
    console: AdminConsole, admin, emulator, aws_identities, login
):
    realm = console_realm(admin, login, "console-refusals", "RS256")
    unknown = str(uuid.uuid4())
    values = default_mode(emulator, aws_identities, "", unknown)

    alert = refused_save(console, realm, "kms-unknown-key", "RS256", values, None, "unknown-kms-key")

    assert alert.kind == "danger", alert
    assert f"KMS key {unknown} was not found in region {emulator.region}" in alert.text, alert
    assert console.field("kmsKeyId").get_attribute("value") == unknown
    assert not aws_kms_components(admin, realm)


def test_a_reopened_provider_shows_its_secrets_masked_and_saving_it_unchanged_keeps_them(
    console: AdminConsole, admin, keycloak, kms, emulator, aws_identities, login
):
    realm = console_realm(admin, login, "console-masked", "RS256")
    alias = "alias/e2e-console-masked"
    _, spki = create_kms_key(kms, "RSA_2048", alias)
    name = "kms-with-secrets"
    if not [c for c in aws_kms_components(admin, realm) if c["name"] == name]:
        credentials = realms.assume_role_credentials(
            aws_identities.signer_role_arn,
            emulator.sts_url,
            external_id=aws_identities.signer_external_id,
            access_key_id=emulator.access_key_id,
            secret_access_key=emulator.secret_access_key,
        )
        created = admin.create_component(
            realm, realms.kms_component(name, "RS256", alias, emulator.kms_url, credentials)
        )
        assert created.status_code == 201, created.text

    console.open_provider(realm, name)
    console.settle()
    console.shoot("reopened-provider")

    for key in SECRETS:
        field = console.field(key)
        assert field.get_attribute("type") == "password", key
        assert field.get_attribute("value") == MASKED, f"{key} is not masked"
    page = console.driver.page_source
    for secret in (emulator.secret_access_key, aws_identities.signer_external_id):
        assert secret not in page, "a stored secret reached the browser"
    assert console.field("accessKeyId").get_attribute("value") == emulator.access_key_id
    # "Show password field in clear text" shows the mask itself: the secret is not in the browser.
    console.reveal("secretAccessKey")
    console.shoot("reopened-provider-secret-revealed")
    assert console.field("secretAccessKey").get_attribute("type") == "text"
    assert console.field("secretAccessKey").get_attribute("value") == MASKED

    alert = console.save()
    console.shoot("reopened-provider-saved")
    assert (alert.kind, alert.text) == ("success", SAVED), alert
    [component] = [c for c in aws_kms_components(admin, realm) if c["name"] == name]
    config = component_config(admin.component(realm, component["id"]).json())
    assert all(config[key] == MASKED for key in SECRETS), config
    # The kept secrets still work: the role is assumed with them and the realm's tokens sign.
    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], "RS256", spki)
