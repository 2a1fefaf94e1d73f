"""A bad aws-kms configuration is refused on save with HTTP 400 and one message that names the
field and the cause (the first problem found), and nothing is saved: a refused create leaves no
component behind, and a refused update leaves the previous configuration in place and signing.
A realm import (POST /admin/realms) carrying the same component is refused too and leaves no realm
behind, but Keycloak answers it with HTTP 500 and puts the message in its log only (see
test_a_realm_import_with_a_bad_configuration_is_refused_and_leaves_no_realm).

Every case starts from one good configuration (access key, an RSA_2048 key, RS256) and changes
only what it is about."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest

import kms_jws
import realms
from harness import Emulator, create_kms_key

from .checks import (
    assert_signed_by,
    certificate_for,
    certificate_pem,
    component_config,
    days_from_now,
    garbage_pem,
    issue_tokens,
    pem_body_lines,
    private_key_pem,
    refusal_message,
    throwaway_rsa_public_key,
)

CREATE_REALM = "refused-creates"
UPDATE_REALM = "refused-updates"
IMPORT_REALM_PREFIX = "refused-import"
# Validation answers within 8 s even when the endpoint never answers; allow for the round trip.
HANG_BOUND_SECONDS = 10


@dataclass(frozen=True)
class Keys:
    """The KMS keys and certificates the cases refer to (made once per module)."""

    emulator: Emulator
    identities: Any  # conftest.AwsIdentities
    rsa_alias: str
    rsa_arn: str
    rsa_key_id: str
    rsa_spki: bytes
    p256_alias: str
    encrypt_alias: str
    disabled_arn: str
    pending_deletion_arn: str
    other_key_certificate: str
    expired_certificate: str
    not_yet_valid_certificate: str
    private_key: str
    garbage: str


@dataclass(frozen=True)
class Case:
    """One bad configuration: config changes on top of the good one, and what the message must
    say. `fault` is an emulator fault in effect while saving."""

    id: str
    changes: Callable[[Keys], dict[str, Optional[str]]]
    expected: Callable[[Keys], list[str]]
    fault: Optional[str] = None
    # Values that must appear neither in the response nor in the Keycloak log.
    not_echoed: Callable[[Keys], list[str]] = lambda keys: []
    # Substrings the message must not contain (later problems are not reported).
    not_expected: tuple[str, ...] = ()


WRONG_SECRET = "wrong-secret-" + secrets.token_urlsafe(18)
WRONG_EXTERNAL_ID = "wrong-ext-" + secrets.token_hex(8)
UNKNOWN_KEY_ID = str(uuid.uuid4())


def assume_role(keys: Keys, role_arn: str, **extra: Optional[str]) -> dict[str, Optional[str]]:
    """Changes to credentials mode assume-role, assumed as the emulator's main access key."""
    return {
        "credentialsMode": "assume-role",
        "roleArn": role_arn,
        "stsEndpointUrl": keys.emulator.sts_url,
        "accessKeyId": keys.emulator.access_key_id,
        "secretAccessKey": keys.emulator.secret_access_key,
        **extra,
    }


CASES = [
    # --- the fields themselves ----------------------------------------------------------------
    Case(
        "missing-kms-key",
        lambda k: {"kmsKeyId": ""},
        lambda k: ["'KMS key' is required"],
    ),
    Case(
        "malformed-key-arn",
        lambda k: {"kmsKeyId": f"arn:aws:kms:us-east-1:12345:key/{UNKNOWN_KEY_ID}", "region": None},
        lambda k: ["'KMS key'", "is not a key id, key ARN, alias name or alias ARN",
                   "the account must be 12 digits"],
    ),
    Case(
        "region-that-is-not-a-region",
        lambda k: {"region": "moon-base"},
        lambda k: ["'Region'", "moon-base", "is not an AWS region name"],
    ),
    Case(
        "key-arn-and-region-disagree",
        lambda k: {"kmsKeyId": k.rsa_arn, "region": "eu-west-1"},
        lambda k: ["'KMS key' is an ARN in region us-east-1 but 'Region' is eu-west-1"],
    ),
    Case(
        "endpoint-url-that-is-not-http",
        lambda k: {"endpointUrl": "ftp://127.0.0.1:21/"},
        lambda k: ["'Endpoint URL' must be an http(s) URL"],
    ),
    Case(
        "bad-priority",
        lambda k: {"priority": "high"},
        lambda k: ["'Priority'", "number"],
    ),
    Case(
        "algorithm-that-is-not-offered",
        lambda k: {"algorithm": "HS256"},
        lambda k: ["'Algorithm' should be RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or ES512"],
    ),
    Case(
        "unknown-credentials-mode",
        lambda k: {"credentialsMode": "magic"},
        lambda k: ["'Credentials mode' should be default, access-key or assume-role"],
    ),
    Case(
        "access-key-without-secret",
        lambda k: {"secretAccessKey": ""},
        lambda k: ["'Secret access key' is required"],
    ),
    Case(
        "assume-role-without-role-arn",
        lambda k: {**assume_role(k, ""), "roleArn": ""},
        lambda k: ["'Role ARN' is required"],
    ),
    Case(
        "malformed-role-arn",
        lambda k: assume_role(k, "arn:aws:iam::1:user/not-a-role"),
        lambda k: ["'Role ARN'", "is not an IAM role ARN"],
    ),
    # --- the key ------------------------------------------------------------------------------
    Case(
        "unknown-key",
        lambda k: {"kmsKeyId": UNKNOWN_KEY_ID},
        lambda k: [f"KMS key {UNKNOWN_KEY_ID} was not found in region us-east-1"],
    ),
    Case(
        "key-of-another-region",
        # The endpoint serves us-east-1; like a regional AWS endpoint it refuses a request signed
        # for eu-west-1 ("Credential should be scoped to a valid region").
        # The secret is entered again: a masked one may not follow the changed region (issue 8).
        lambda k: {"kmsKeyId": k.rsa_key_id, "region": "eu-west-1",
                   "secretAccessKey": k.emulator.secret_access_key},
        lambda k: ["does not serve region eu-west-1", "scoped to a valid region"],
    ),
    Case(
        "alias-to-nothing",
        lambda k: {"kmsKeyId": "alias/e2e-points-nowhere"},
        lambda k: ["KMS key alias/e2e-points-nowhere was not found in region us-east-1"],
    ),
    Case(
        "encrypt-decrypt-key",
        lambda k: {"kmsKeyId": k.encrypt_alias},
        lambda k: ["has key usage ENCRYPT_DECRYPT", "SIGN_VERIFY"],
    ),
    Case(
        "disabled-key",
        lambda k: {"kmsKeyId": k.disabled_arn, "region": None},
        lambda k: [f"KMS key {k.disabled_arn} is disabled"],
    ),
    Case(
        "key-pending-deletion",
        lambda k: {"kmsKeyId": k.pending_deletion_arn, "region": None},
        lambda k: [f"KMS key {k.pending_deletion_arn} is pending deletion"],
    ),
    Case(
        "rsa-key-with-es256",
        lambda k: {"algorithm": "ES256"},
        lambda k: [k.rsa_arn, "Algorithm ES256 does not fit a RSA_2048 key"],
    ),
    Case(
        "p256-key-with-es384",
        lambda k: {"kmsKeyId": k.p256_alias, "algorithm": "ES384"},
        lambda k: ["Algorithm ES384 does not fit a ECC_NIST_P256 key"],
    ),
    # --- the certificate ----------------------------------------------------------------------
    Case(
        "certificate-of-another-key",
        lambda k: {"certificate": k.other_key_certificate},
        lambda k: [f"Certificate public key does not match KMS key {k.rsa_arn}"],
    ),
    Case(
        "expired-certificate",
        lambda k: {"certificate": k.expired_certificate},
        lambda k: ["'X509 certificate' has expired"],
    ),
    Case(
        "certificate-not-yet-valid",
        lambda k: {"certificate": k.not_yet_valid_certificate},
        lambda k: ["'X509 certificate' is not valid yet"],
    ),
    Case(
        "text-that-is-not-pem",
        lambda k: {"certificate": "my certificate is in the other file"},
        lambda k: ["'X509 certificate' is not a PEM certificate"],
    ),
    Case(
        "garbage-pem",
        lambda k: {"certificate": k.garbage},
        lambda k: ["'X509 certificate' does not parse as an X.509 certificate"],
        not_echoed=lambda k: pem_body_lines(k.garbage),
    ),
    Case(
        "private-key-pasted-as-certificate",
        lambda k: {"certificate": k.private_key},
        lambda k: ["'X509 certificate' contains a private key"],
        not_echoed=lambda k: pem_body_lines(k.private_key),
    ),
    # --- the credentials ----------------------------------------------------------------------
    Case(
        "wrong-secret",
        lambda k: {"secretAccessKey": WRONG_SECRET},
        lambda k: ["the secret access key does not belong to the access key id"],
        not_echoed=lambda k: [WRONG_SECRET],
    ),
    Case(
        "unknown-access-key",
        lambda k: {"accessKeyId": "AKIAUNKNOWN000000000"},
        lambda k: ["does not recognise the configured access key id"],
    ),
    Case(
        "access-key-that-cannot-sign",
        lambda k: {
            "accessKeyId": k.identities.no_sign_access_key_id,
            "secretAccessKey": k.identities.no_sign_secret_access_key,
        },
        lambda k: [f"the credentials lack kms:Sign on {k.rsa_arn}"],
    ),
    Case(
        "role-that-cannot-be-assumed",
        lambda k: assume_role(k, k.identities.unknown_role_arn),
        lambda k: [f"Could not assume role {k.identities.unknown_role_arn}"],
    ),
    Case(
        "role-that-cannot-sign",
        lambda k: assume_role(k, k.identities.no_sign_role_arn),
        lambda k: [f"the credentials lack kms:Sign on {k.rsa_arn}", "role"],
    ),
    Case(
        "wrong-external-id",
        lambda k: assume_role(k, k.identities.signer_role_arn, externalId=WRONG_EXTERNAL_ID),
        lambda k: [f"Could not assume role {k.identities.signer_role_arn}", "'External ID'"],
        not_echoed=lambda k: [WRONG_EXTERNAL_ID],
    ),
    Case(
        "missing-external-id",
        lambda k: assume_role(k, k.identities.signer_role_arn),
        lambda k: [f"Could not assume role {k.identities.signer_role_arn}"],
    ),
    # --- the endpoint -------------------------------------------------------------------------
    Case(
        "endpoint-down",
        lambda k: {},
        lambda k: [k.emulator.kms_url, "'Endpoint URL'"],
        fault="down",
    ),
    Case(
        "endpoint-that-never-answers",
        lambda k: {},
        lambda k: ["did not answer", "'Endpoint URL'"],
        fault="hang",
    ),
    # --- several problems: the first one is reported ------------------------------------------
    Case(
        "several-problems-only-the-first-reported",
        lambda k: {"kmsKeyId": UNKNOWN_KEY_ID, "certificate": k.garbage, "algorithm": "ES256"},
        lambda k: [f"KMS key {UNKNOWN_KEY_ID} was not found in region us-east-1"],
        not_expected=("X509", "certificate", "ES256"),
    ),
]


@pytest.fixture(scope="module")
def keys(kms, emulator, aws_identities) -> Keys:
    rsa_arn, rsa_spki = create_kms_key(kms, "RSA_2048", "alias/e2e-refused-rsa")
    create_kms_key(kms, "ECC_NIST_P256", "alias/e2e-refused-p256")
    encrypt = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")
    kms.create_alias(AliasName="alias/e2e-refused-encrypt", TargetKeyId=encrypt["KeyMetadata"]["KeyId"])
    disabled_arn, _ = create_kms_key(kms, "RSA_2048", "alias/e2e-refused-disabled")
    kms.disable_key(KeyId=disabled_arn)
    pending_arn, _ = create_kms_key(kms, "RSA_2048", "alias/e2e-refused-pending-deletion")
    kms.schedule_key_deletion(KeyId=pending_arn, PendingWindowInDays=7)

    rsa_public_key = kms_jws.load_spki(rsa_spki)
    return Keys(
        emulator=emulator,
        identities=aws_identities,
        rsa_alias="alias/e2e-refused-rsa",
        rsa_arn=rsa_arn,
        rsa_key_id=rsa_arn.rsplit("/", 1)[-1],
        rsa_spki=rsa_spki,
        p256_alias="alias/e2e-refused-p256",
        encrypt_alias="alias/e2e-refused-encrypt",
        disabled_arn=disabled_arn,
        pending_deletion_arn=pending_arn,
        other_key_certificate=certificate_pem(certificate_for(throwaway_rsa_public_key())),
        expired_certificate=certificate_pem(
            certificate_for(rsa_public_key, not_before=days_from_now(-30), not_after=days_from_now(-1))
        ),
        not_yet_valid_certificate=certificate_pem(
            certificate_for(rsa_public_key, not_before=days_from_now(1), not_after=days_from_now(30))
        ),
        private_key=private_key_pem(),
        garbage=garbage_pem(),
    )


def good_component(keys: Keys, name: str, *, active: bool) -> dict:
    return realms.kms_component(
        name,
        "RS256",
        keys.rsa_alias,
        keys.emulator.kms_url,
        realms.access_key_credentials(keys.emulator.access_key_id, keys.emulator.secret_access_key),
        priority=realms.KMS_PROVIDER_PRIORITY if active else 50,
        active=active,
    )


def aws_kms_components(admin, realm: str) -> list[dict]:
    return [
        component
        for component in admin.key_providers(realm)
        if component["providerId"] == realms.AWS_KMS_PROVIDER_ID
    ]


def every_secret(keys: Keys) -> list[str]:
    return [keys.emulator.secret_access_key, *keys.identities.secrets]


def timed_save(faults, case: Case, save: Callable[[], object]):
    """Runs `save` with the case's fault in effect (cleared afterwards); returns the response and
    the seconds it took."""
    if case.fault:
        faults.set_faults(case.fault)
    try:
        started = time.monotonic()
        response = save()
        return response, time.monotonic() - started
    finally:
        if case.fault:
            faults.clear_faults()


def assert_message(case: Case, keys: Keys, response, message: str, elapsed: float, keycloak) -> None:
    for part in case.expected(keys):
        assert part in message, f"{case.id}: {part!r} not in the message {message!r}"
    for part in case.not_expected:
        assert part not in message, f"{case.id}: {part!r} in the message {message!r}"
    log = keycloak.log_text()
    for value in [*case.not_echoed(keys), *every_secret(keys)]:
        assert value not in response.text, f"{case.id}: a secret or key material was echoed"
        assert value not in log, f"{case.id}: a secret or key material is in {keycloak.log_path}"
    bound = HANG_BOUND_SECONDS if case.fault == "hang" else 30
    assert elapsed < bound, f"{case.id}: the refusal took {elapsed:.1f}s"


@pytest.fixture(scope="module")
def create_realm(admin, login) -> str:
    admin.create_realm(realms.realm(CREATE_REALM, "RS256", login))
    return CREATE_REALM


@pytest.fixture(scope="module")
def update_realm(make_realm, keys) -> str:
    """A realm that signs with an aws-kms component; every case tries to update that component."""
    return make_realm(UPDATE_REALM, "RS256", [good_component(keys, "signing-key", active=True)])


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_configuration_is_refused_on_create_with_a_message_naming_the_cause_and_nothing_is_saved(
    keycloak, admin, faults, keys, create_realm, case
):
    component = realms.with_config(good_component(keys, f"refused-{case.id}", active=False),
                                   **case.changes(keys))
    before = aws_kms_components(admin, CREATE_REALM)

    response, elapsed = timed_save(faults, case, lambda: admin.create_component(CREATE_REALM, component))

    message = refusal_message(response, f"POST /admin/realms/{CREATE_REALM}/components ({case.id})")
    assert_message(case, keys, response, message, elapsed, keycloak)
    after = aws_kms_components(admin, CREATE_REALM)
    assert after == before, f"{case.id}: the refused create changed the components"
    assert component["name"] not in {c["name"] for c in admin.key_providers(CREATE_REALM)}


def reset_to_the_good_configuration(admin, keys: Keys) -> dict:
    """Puts the update realm's component back to the good configuration (whatever an earlier case
    did to it) and returns it as GET returns it."""
    [component] = aws_kms_components(admin, UPDATE_REALM)
    good = good_component(keys, component["name"], active=True)
    response = admin.update_component(
        UPDATE_REALM, component["id"], {**component, "config": good["config"]}
    )
    assert response.status_code == 204, f"resetting the component: {response.status_code} {response.text}"
    return admin.component(UPDATE_REALM, component["id"]).json()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_configuration_is_refused_on_update_and_the_previous_configuration_still_signs(
    keycloak, admin, faults, keys, login, update_realm, case
):
    before = reset_to_the_good_configuration(admin, keys)
    keys_before = admin.keys(UPDATE_REALM)

    changed = realms.with_config(before, **case.changes(keys))
    response, elapsed = timed_save(
        faults, case, lambda: admin.update_component(UPDATE_REALM, before["id"], changed)
    )

    message = refusal_message(response, f"PUT /admin/realms/{UPDATE_REALM}/components/{{id}} ({case.id})")
    assert_message(case, keys, response, message, elapsed, keycloak)
    after = admin.component(UPDATE_REALM, before["id"]).json()
    assert component_config(after) == component_config(before), (
        f"{case.id}: the refused update changed the stored configuration"
    )
    assert admin.keys(UPDATE_REALM) == keys_before
    tokens = issue_tokens(keycloak, UPDATE_REALM, login)
    assert_signed_by(keycloak, UPDATE_REALM, tokens["access_token"], "RS256", keys.rsa_spki)


# Realm import takes every case through the same validation; these cover each kind of check
# (the fields, the key, the certificate, the credentials, the endpoint) without repeating all.
# (Keycloak's own field checks, such as 'Priority', log their message pattern without its
# parameters, "''{0}'' should be a number", so they are left out here.)
IMPORT_CASES = [
    case
    for case in CASES
    if case.id
    in {
        "malformed-key-arn",
        "unknown-key",
        "key-pending-deletion",
        "rsa-key-with-es256",
        "expired-certificate",
        "private-key-pasted-as-certificate",
        "wrong-secret",
        "role-that-cannot-sign",
        "wrong-external-id",
        "endpoint-down",
    }
]


def logged_form(message: str) -> str:
    """The message as Keycloak's error handler logs a ComponentValidationException: its
    MessageFormat pattern, i.e. with quotes doubled and braces quoted. AWS request ids, which
    differ from one request to the next, are blanked."""
    escaped = message.replace("'", "''").replace("{", "'{'").replace("}", "'}'")
    return without_request_ids(escaped)


def without_request_ids(text: str) -> str:
    return re.sub(r'aws_request_id: "[^"]*"', 'aws_request_id: "…"', text)


@pytest.mark.parametrize("case", IMPORT_CASES, ids=[case.id for case in IMPORT_CASES])
def test_a_realm_import_with_a_bad_configuration_is_refused_and_leaves_no_realm(
    keycloak, admin, faults, keys, login, create_realm, case
):
    """Keycloak 26.7.3's POST /admin/realms does not map a ComponentValidationException to 400
    (RealmsAdminResource.importRealm only catches ModelDuplicateException and
    PasswordPolicyNotMetException): the import is refused with HTTP 500 "unknown_error", the
    transaction is rolled back, and the message, the same as for the component saved on its own,
    is in the server log only. This test pins that behaviour."""
    component = realms.with_config(good_component(keys, f"imported-{case.id}", active=True),
                                   **case.changes(keys))
    realm_name = f"{IMPORT_REALM_PREFIX}-{case.id}"
    representation = realms.realm(realm_name, "RS256", login, key_providers=[component])
    log_offset = keycloak.log_size()

    response, elapsed = timed_save(faults, case, lambda: admin.import_realm(representation))

    assert response.status_code == 500, f"{case.id}: {response.status_code} {response.text[:2000]}"
    assert response.json().get("error") == "unknown_error", response.text
    assert not admin.realm_exists(realm_name), f"{case.id}: the refused import left realm {realm_name}"
    bound = HANG_BOUND_SECONDS if case.fault == "hang" else 30
    assert elapsed < bound, f"{case.id}: the refusal took {elapsed:.1f}s"
    for value in [*case.not_echoed(keys), *every_secret(keys)]:
        assert value not in response.text, f"{case.id}: a secret or key material was echoed"
    logged = without_request_ids(tail_of_log(keycloak, log_offset))

    # The same component saved on its own: refused with 400, and the very same message.
    response, elapsed = timed_save(faults, case, lambda: admin.create_component(CREATE_REALM, component))
    message = refusal_message(response, f"POST /admin/realms/{CREATE_REALM}/components ({case.id})")
    assert_message(case, keys, response, message, elapsed, keycloak)
    assert (
        "Uncaught server error: org.keycloak.component.ComponentValidationException: "
        + logged_form(message)
    ) in logged, f"{case.id}: the import's log does not carry the message {message!r}"


def tail_of_log(keycloak, offset: int) -> str:
    with keycloak.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", "replace")
