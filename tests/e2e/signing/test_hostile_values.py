"""Hostile values in every field of an aws-kms component through the admin REST API: a value of
1 MB (64 kB in the fields outside ONE_MB_FIELDS), control characters, NUL, bidirectional and zero-width marks, a `${vault.…}` reference that
names nothing, and JSON-looking text. Every save (create and update) is refused with HTTP 400,
nothing is saved (the realm's components are unchanged), the answer does not echo the 1 MB back,
and the Keycloak log gains no secret value, no raw control character and no stack trace.

The component's name is free text (Keycloak's, not the provider's): hostile names are accepted
or refused by Keycloak as it does for every provider; either way the server keeps answering and
logs no stack trace (test_a_hostile_name_is_keycloaks_business_and_breaks_nothing).

Each field is checked in the credentials mode that reads it (the role fields under assume-role),
because the fields of other modes are not sent to the native side (docs/design.md)."""

from __future__ import annotations

import re
import uuid
from typing import Optional

import pytest

import realms
from harness import create_kms_key

from .checks import component_config, refusal_message

REALM = "hostile-values"
ALIAS = "alias/e2e-hostile-rsa"
ONE_MB = 1_000_000
# The 1 MB value goes into these fields (one per kind: key id, secret, ARN, URL, PEM); the others
# get LONG, which every length check refuses just as well, at a fraction of the time (each
# megabyte request costs Keycloak about a second on a loaded 2-core machine). Every field's
# bound is also checked natively, for 10 MB values (rust/core/tests/hostile_bytes.rs).
ONE_MB_FIELDS = {"kmsKeyId", "secretAccessKey", "roleArn", "endpointUrl", "certificate"}
LONG = 64_000
# A refusal may quote a bounded part of a value, never the 1 MB.
MAX_ANSWER_BYTES = 20_000
ROLE_ARN = "arn:aws:iam::111122223333:role/e2e-hostile"

# Secret fields: their values must appear nowhere, not even in part.
SECRET_FIELDS = {"secretAccessKey", "externalId"}
# field -> the credentials mode in which the native side reads it (None: every mode).
FIELDS: dict[str, Optional[str]] = {
    "kmsKeyId": None,
    "region": None,
    "endpointUrl": None,
    "credentialsMode": None,
    "accessKeyId": "access-key",
    "secretAccessKey": "access-key",
    "roleArn": "assume-role",
    "externalId": "assume-role",
    "roleSessionName": "assume-role",
    "stsEndpointUrl": "assume-role",
    "algorithm": None,
    "certificate": None,
    "priority": None,
    "enabled": None,
    "active": None,
}
STACK_TRACE = re.compile(r"^\s+at [\w$.]+\(|^Caused by: ", re.MULTILINE)


def hostile_values(marker: str, field: str) -> dict[str, str]:
    """The hostile values, each carrying `marker` so that the log can be searched for it."""
    return {
        "very-long": marker + "a" * (ONE_MB if field in ONE_MB_FIELDS else LONG),
        "control-characters": marker + "\x01\x1b[31mred\r\nforged log line\t\x7f",
        "nul": marker + "\x00after-nul",
        "unicode-marks": marker + "\u202egnp.exe\u200b\ufeff\u2066\U0001F511",
        "vault-naming-nothing": "${vault.nothing-" + marker + "}",
        "json-ish": '{"kmsKeyId":"alias/' + marker + '","region":["us-east-1"],"x":null}',
    }


@pytest.fixture(scope="module")
def good(kms, emulator):
    create_kms_key(kms, "RSA_2048", ALIAS)

    def component(name: str, mode: Optional[str]) -> dict:
        credentials = realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key)
        if mode == "assume-role":
            credentials = realms.assume_role_credentials(
                ROLE_ARN, emulator.sts_url,
                access_key_id=emulator.access_key_id, secret_access_key=emulator.secret_access_key,
            )
        return realms.kms_component(name, "RS256", ALIAS, emulator.kms_url, credentials,
                                    priority=realms.KMS_PROVIDER_PRIORITY, active=True)

    return component


@pytest.fixture(scope="module")
def realm(make_realm, good) -> str:
    """A realm that signs with one good aws-kms component (the update target)."""
    return make_realm(REALM, "RS256", [good("signing-key", None)])


def components(admin) -> list[dict]:
    return sorted(admin.key_providers(REALM), key=lambda c: c["id"])


def assert_clean_log(keycloak, offset: int, markers: list[str], secret: bool, what: str) -> None:
    added = keycloak.log_text()[offset:]
    assert not STACK_TRACE.search(added), f"{what}: a stack trace in the log:\n{added[-3000:]}"
    for control in ("\x1b", "\x00", "\x01", "\x7f"):
        assert control not in added, f"{what}: a raw control character {control!r} in the log"
    assert "\nforged log line" not in added, f"{what}: a line break of the value reached the log"
    if secret:
        for marker in markers:
            # (Only the vault reference's name carries the marker without being a secret.)
            for line in added.splitlines():
                if marker in line:
                    assert f"vault.nothing-{marker}" in line or f"nothing-{marker}" in line, (
                        f"{what}: a secret value is in {keycloak.log_path}: {line[:300]}"
                    )


@pytest.mark.parametrize("field", list(FIELDS))
def test_a_hostile_value_in_any_field_is_refused_and_nothing_is_saved(keycloak, admin, good, realm, field):
    marker = "h5" + uuid.uuid4().hex[:10]
    values = hostile_values(marker, field)
    secret = field in SECRET_FIELDS
    [stored] = [c for c in components(admin) if c["name"] == "signing-key"]
    before = components(admin)
    log_offset = len(keycloak.log_text())

    for label, value in values.items():
        what = f"{field}={label}"
        # Create: a new component with the hostile value.
        component = realms.with_config(good(f"hostile-{field}-{label}", FIELDS[field]), **{field: value})
        response = admin.create_component(REALM, component)
        message = refusal_message(response, f"POST components ({what})")
        assert len(response.content) < MAX_ANSWER_BYTES, f"{what}: {len(response.content)} bytes answered"
        if secret and label == "vault-naming-nothing":
            # The vault entry's name is not a secret: the refusal names it (docs/design.md).
            assert "which was not found" in message, f"{what}: {message}"
        elif secret:
            assert marker not in response.text, f"{what}: the secret was echoed: {message}"
        # Update: the stored component with the hostile value.
        update = realms.with_config(good(stored["name"], FIELDS[field]), **{field: value})
        update["id"] = stored["id"]
        response = admin.update_component(REALM, stored["id"], update)
        refusal_message(response, f"PUT components/{stored['id']} ({what})")
        assert len(response.content) < MAX_ANSWER_BYTES, f"{what}: {len(response.content)} bytes answered"
        if secret and label != "vault-naming-nothing":
            assert marker not in response.text, f"{what}: the secret was echoed"

    after = components(admin)
    assert [c["id"] for c in after] == [c["id"] for c in before], f"{field}: a component was added"
    assert [component_config(c) for c in after] == [component_config(c) for c in before], (
        f"{field}: a refused update changed a stored configuration"
    )
    assert_clean_log(keycloak, log_offset, [marker], secret, field)


def test_a_hostile_name_is_keycloaks_business_and_breaks_nothing(keycloak, admin, good, realm):
    """The name is Keycloak's free text: hostile names up to the length of Keycloak's column
    (255) are accepted as they are for any provider (and deleted again here), and no stack trace
    is logged. A longer name is refused by Keycloak's database, not by the provider: HTTP 500
    ("unknown_error", with Keycloak's own stack trace in its log) and nothing saved."""
    marker = "h5" + uuid.uuid4().hex[:10]
    log_offset = len(keycloak.log_text())
    names = [c["name"] for c in components(admin)]
    outcomes = {}
    for label, value in hostile_values(marker, "name").items():
        if label == "very-long":
            value = (marker + "a" * 255)[:255]
        response = admin.create_component(REALM, good(value, None))
        outcomes[label] = response.status_code
        assert response.status_code in (201, 400), f"name={label}: {response.status_code} {response.text[:500]}"
        if response.status_code == 201:
            admin.delete_component(REALM, response.headers["Location"].rsplit("/", 1)[-1])
    assert [c["name"] for c in components(admin)] == names, outcomes
    assert_clean_log(keycloak, log_offset, [], False, "name")

    response = admin.create_component(REALM, good(marker + "a" * 10_000, None))
    assert response.status_code in (400, 500), f"{response.status_code} {response.text[:500]}"
    assert [c["name"] for c in components(admin)] == names, "a name longer than 255 was saved"
