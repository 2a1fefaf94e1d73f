"""The server policy and the transport and secret rules of issue 8 (sections 1 to 3), against a
real Keycloak:

- a realm other than master may not use the server's own AWS identity under the default policy,
  and may once the operator's option allows it (the session's Keycloak runs with
  `--spi-keys--aws-kms--ambient-identity-realms=*`);
- a key outside `--spi-keys--aws-kms--allowed-key-ids` is refused, one realm cannot take a key
  another realm holds, and a realm import is refused the same way;
- `http://` to a host that is not loopback is refused before any connection;
- a masked (kept) secret does not follow a changed STS endpoint, and is accepted entered again.

The default-policy cases need a Keycloak started without the session's permissive options: one
more Keycloak, for this module only, with the default policy but for a key allow-list
(`alias/e2e-policy-${realm}-*` and `alias/e2e-policy-shared-*`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

import harness
import realms
from harness import Admin, Keycloak, create_kms_key

from .checks import assert_signed_by, component_config, issue_tokens, refusal_message

MASKED = "**********"
OPTION = "--spi-keys--aws-kms--"
# As an operator writes it: Keycloak's configuration expands ${...}, so the placeholder is $${realm}.
ALLOWED_KEY_IDS = "alias/e2e-policy-$${realm}-*,alias/e2e-policy-shared-*"


class Strict:
    """The module's Keycloak under the default policy (plus a key allow-list)."""

    def __init__(self, keycloak: Keycloak):
        self.keycloak = keycloak
        self.admin = Admin(keycloak.base_url)

    def log_since(self, offset: int) -> str:
        with self.keycloak.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def strict(
    setup_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, aws_identities
) -> Iterator[Strict]:
    workdir = tmp_path_factory.mktemp("keycloak-default-policy")
    keycloak = Keycloak.start(
        Path(setup_env["KEYCLOAK_DIST_TGZ"]),
        Path(setup_env["KEYCLOAK_JAVA_HOME"]),
        workdir,
        [harness.provider_jar()],
        extra_args=(f"{OPTION}allowed-key-ids={ALLOWED_KEY_IDS}",),
        # The server's own identity exists: a refusal is the policy's, not a missing identity's.
        extra_env={
            "AWS_ACCESS_KEY_ID": aws_identities.ambient_access_key_id,
            "AWS_SECRET_ACCESS_KEY": aws_identities.ambient_secret_access_key,
        },
    )
    try:
        yield Strict(keycloak)
    finally:
        keycloak.stop()


@pytest.fixture(scope="module")
def policy_keys(kms) -> dict[str, str]:
    """alias → key ARN of the keys this module uses."""
    keys = {}
    for alias in (
        "alias/e2e-policy-policy-tenant-a",
        "alias/e2e-policy-master-a",
        "alias/e2e-policy-shared-1",
        "alias/e2e-policy-shared-2",
        "alias/e2e-outside-the-policy",
    ):
        keys[alias], _ = create_kms_key(kms, "RSA_2048", alias)
    return keys


def access_key_component(name: str, alias: str, emulator) -> dict:
    return realms.kms_component(
        name,
        "RS256",
        alias,
        emulator.kms_url,
        realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key),
    )


def tenant_realm(strict: Strict, login, name: str) -> str:
    if not strict.admin.realm_exists(name):
        strict.admin.create_realm(realms.realm(name, "RS256", login))
    return name


def aws_kms_components(admin, realm: str) -> list[dict]:
    return [c for c in admin.key_providers(realm) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]


# --- the server's own identity ----------------------------------------------------------------------


def test_a_realm_other_than_master_may_not_use_the_servers_own_identity_under_the_default_policy(
    strict, emulator, aws_identities, policy_keys, login
):
    realm = tenant_realm(strict, login, "policy-tenant")
    alias = "alias/e2e-policy-policy-tenant-a"
    default = realms.kms_component("ambient", "RS256", alias, emulator.kms_url, realms.default_credentials())
    role_as_server = realms.kms_component(
        "ambient-role", "RS256", alias, emulator.kms_url,
        realms.assume_role_credentials(aws_identities.signer_role_arn, emulator.sts_url,
                                       external_id=aws_identities.signer_external_id),
    )
    emulator.reset_stats()

    refused_default = refusal_message(strict.admin.create_component(realm, default), "default credentials")
    refused_role = refusal_message(strict.admin.create_component(realm, role_as_server), "assume-role, no key")

    assert refused_default == (
        "Credentials mode 'default' uses the Keycloak server's own AWS identity, which realm "
        "'policy-tenant' may not use (server option --spi-keys--aws-kms--ambient-identity-realms). "
        "[POLICY_DENIED]"
    ), refused_default
    assert refused_role.startswith(
        "Credentials mode 'assume-role' without an access key assumes the role with the Keycloak "
        "server's own AWS identity, which realm 'policy-tenant' may not use (server option "
        "--spi-keys--aws-kms--ambient-identity-realms)"
    ), refused_role
    assert emulator.calls() == {}, "refused before any call to AWS"
    assert not aws_kms_components(strict.admin, realm)

    # The master realm may (a passive key, so that the admin console's own tokens are unaffected).
    master = realms.kms_component(
        "master-ambient", "RS256", "alias/e2e-policy-master-a", emulator.kms_url,
        realms.default_credentials(), active=False, priority=10,
    )
    response = strict.admin.create_component("master", master)
    assert response.status_code == 201, f"{response.status_code} {response.text[:2000]}"
    strict.admin.delete_component("master", response.headers["Location"].rsplit("/", 1)[-1])


def test_the_option_lets_another_realm_use_the_servers_own_identity(
    keycloak, admin, kms, emulator, make_realm, login
):
    # The session's Keycloak runs with --spi-keys--aws-kms--ambient-identity-realms=*.
    realm = "policy-ambient-allowed"
    alias = "alias/e2e-policy-ambient-allowed"
    _, spki = create_kms_key(kms, "RSA_2048", alias)
    component = realms.kms_component("ambient", "RS256", alias, emulator.kms_url, realms.default_credentials())

    make_realm(realm, "RS256", [component])

    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], "RS256", spki)


# --- which keys -----------------------------------------------------------------------------------


def test_a_key_outside_the_allowed_patterns_is_refused_without_reading_or_using_it(
    strict, emulator, policy_keys, login
):
    realm = tenant_realm(strict, login, "policy-tenant")
    emulator.reset_stats()

    response = strict.admin.create_component(
        realm, access_key_component("outside", "alias/e2e-outside-the-policy", emulator)
    )

    message = refusal_message(response, "a key outside the allow-list")
    assert message == (
        f"KMS key 'alias/e2e-outside-the-policy' ({policy_keys['alias/e2e-outside-the-policy']}) is not "
        "allowed for realm 'policy-tenant' on this server (server option "
        "--spi-keys--aws-kms--allowed-key-ids). [POLICY_DENIED]"
    ), message
    calls = emulator.calls()
    assert "GetPublicKey" not in calls and "Sign" not in calls, calls
    # The realm's own key (alias/e2e-policy-${realm}-*) is allowed.
    own = strict.admin.create_component(
        realm, access_key_component("own", "alias/e2e-policy-policy-tenant-a", emulator)
    )
    assert own.status_code == 201, f"{own.status_code} {own.text[:2000]}"


def test_a_second_realm_is_refused_a_key_the_first_realm_holds(strict, emulator, policy_keys, login):
    first = tenant_realm(strict, login, "policy-first")
    second = tenant_realm(strict, login, "policy-second")
    alias = "alias/e2e-policy-shared-1"
    created = strict.admin.create_component(first, access_key_component("holder", alias, emulator))
    assert created.status_code == 201, f"{created.status_code} {created.text[:2000]}"
    emulator.reset_stats()

    response = strict.admin.create_component(second, access_key_component("taker", alias, emulator))

    message = refusal_message(response, "a key of another realm")
    assert message == (
        f"KMS key {policy_keys[alias]} is already in use by another realm (server option "
        "--spi-keys--aws-kms--key-shared-across-realms). [POLICY_DENIED]"
    ), message
    assert "policy-first" not in response.text, "nothing about the other realm"
    calls = emulator.calls()
    assert "GetPublicKey" not in calls and "Sign" not in calls, calls
    assert not aws_kms_components(strict.admin, second)
    # The realm that holds it may use it for a second provider (e.g. another algorithm).
    again = strict.admin.create_component(first, access_key_component("holder-2", alias, emulator))
    assert again.status_code == 201, f"{again.status_code} {again.text[:2000]}"


@pytest.mark.parametrize("case", ["key-held-by-another-realm", "servers-own-identity"])
def test_a_realm_import_is_refused_the_same_way_and_leaves_no_realm(
    strict, emulator, policy_keys, login, case
):
    holder = tenant_realm(strict, login, "policy-holder")
    alias = "alias/e2e-policy-shared-2"
    if not aws_kms_components(strict.admin, holder):
        created = strict.admin.create_component(holder, access_key_component("holder", alias, emulator))
        assert created.status_code == 201, f"{created.status_code} {created.text[:2000]}"
    if case == "key-held-by-another-realm":
        component = access_key_component("imported", alias, emulator)
        expected = f"KMS key {policy_keys[alias]} is already in use by another realm"
    else:
        component = realms.kms_component(
            "imported", "RS256", alias, emulator.kms_url, realms.default_credentials()
        )
        expected = "Credentials mode ''default'' uses the Keycloak server''s own AWS identity"
    realm = f"policy-imported-{case}"
    offset = strict.keycloak.log_size()

    response = strict.admin.import_realm(realms.realm(realm, "RS256", login, key_providers=[component]))

    # Keycloak answers a refused import with 500 and logs the message (test_bad_configurations.py).
    assert response.status_code == 500, f"{response.status_code} {response.text[:2000]}"
    assert not strict.admin.realm_exists(realm)
    log = strict.log_since(offset)
    assert expected in log, log[-3000:]


# --- transport ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["endpointUrl", "stsEndpointUrl"])
def test_plain_http_to_a_host_that_is_not_loopback_is_refused_before_any_connection(
    admin, emulator, aws_identities, kms, login, field
):
    realm = "policy-transport"
    if not admin.realm_exists(realm):
        admin.create_realm(realms.realm(realm, "RS256", login))
    alias = "alias/e2e-policy-transport"
    if alias not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]:
        create_kms_key(kms, "RSA_2048", alias)
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=aws_identities.signer_external_id,
        access_key_id=emulator.access_key_id,
        secret_access_key=emulator.secret_access_key,
    )
    component = realms.kms_component("plain-http", "RS256", alias, emulator.kms_url, credentials)
    component = realms.with_config(component, **{field: "http://kms.example.invalid:4566"})
    emulator.reset_stats()

    started = time.monotonic()
    response = admin.create_component(realm, component)
    elapsed = time.monotonic() - started

    message = refusal_message(response, f"{field} over plain http")
    label = {"endpointUrl": "Endpoint URL", "stsEndpointUrl": "STS endpoint URL"}[field]
    assert message.startswith(
        f"'{label}' uses plain http:// to kms.example.invalid, which is not a loopback address"
    ), message
    assert "--spi-keys--aws-kms--insecure-http-hosts" in message, message
    assert emulator.calls() == {}, "nothing was sent anywhere"
    assert elapsed < 5, f"the refusal took {elapsed:.1f}s: was a connection attempted?"


# --- a masked secret and a changed destination ------------------------------------------------------


def test_a_masked_secret_does_not_follow_a_changed_sts_endpoint_and_is_accepted_entered_again(
    keycloak, admin, kms, emulator, aws_identities, make_realm, login
):
    realm = "policy-masked-secrets"
    alias = "alias/e2e-policy-masked-secrets"
    _, spki = create_kms_key(kms, "RSA_2048", alias)
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=aws_identities.signer_external_id,
        access_key_id=emulator.access_key_id,
        secret_access_key=emulator.secret_access_key,
    )
    make_realm(realm, "RS256", [realms.kms_component("masked", "RS256", alias, emulator.kms_url, credentials)])
    [listed] = aws_kms_components(admin, realm)
    stored = admin.component(realm, listed["id"]).json()
    assert component_config(stored)["secretAccessKey"] == MASKED
    assert component_config(stored)["externalId"] == MASKED
    # Another STS endpoint (the same emulator, spelt differently: what matters is that it changed).
    moved_endpoint = emulator.sts_url.replace("127.0.0.1", "localhost")
    assert moved_endpoint != emulator.sts_url
    emulator.reset_stats()

    # What the admin console sends: the masks back, and the new endpoint.
    response = admin.update_component(
        realm, listed["id"], realms.with_config(stored, stsEndpointUrl=moved_endpoint)
    )

    message = refusal_message(response, "masked secrets toward a changed STS endpoint")
    assert message == (
        "'Secret access key' and 'External ID' were saved for another destination; enter them again to "
        "use them with the changed STS endpoint URL. [INVALID_CONFIGURATION]"
    ), message
    assert emulator.calls() == {}, "the kept secrets were sent nowhere"
    assert component_config(admin.component(realm, listed["id"]).json())["stsEndpointUrl"] == emulator.sts_url

    # One secret entered again: the other is still refused.
    response = admin.update_component(
        realm, listed["id"],
        realms.with_config(stored, stsEndpointUrl=moved_endpoint, secretAccessKey=emulator.secret_access_key),
    )
    message = refusal_message(response, "one secret entered again")
    assert message.startswith("'External ID' was saved for another destination"), message

    # Both entered again: saved, and the realm signs through the new endpoint.
    response = admin.update_component(
        realm, listed["id"],
        realms.with_config(stored, stsEndpointUrl=moved_endpoint, secretAccessKey=emulator.secret_access_key,
                           externalId=aws_identities.signer_external_id),
    )
    assert response.status_code == 204, f"{response.status_code} {response.text[:2000]}"
    saved = component_config(admin.component(realm, listed["id"]).json())
    assert saved["stsEndpointUrl"] == moved_endpoint
    assert saved["secretAccessKey"] == MASKED and saved["externalId"] == MASKED
    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], "RS256", spki)
    assert emulator.calls().get("AssumeRole", 0) >= 1


# --- a policy tightened after the fact (last: it restarts the module's Keycloak) --------------------


def test_a_policy_tightened_after_saving_stops_signing_with_one_clear_log_line_and_no_software_key(
    strict, kms, emulator, login
):
    realm = tenant_realm(strict, login, "policy-tightened")
    alias = "alias/e2e-policy-shared-tightened"
    _, spki = create_kms_key(kms, "RSA_2048", alias)
    created = strict.admin.create_component(realm, access_key_component("shared", alias, emulator))
    assert created.status_code == 201, f"{created.status_code} {created.text[:2000]}"
    tokens = issue_tokens(strict.keycloak, realm, login)
    assert_signed_by(strict.keycloak, realm, tokens["access_token"], "RS256", spki)

    # The operator drops the shared keys from the allow-list; the stored provider stays as it is.
    strict.keycloak.restart({f"{OPTION}allowed-key-ids": "alias/e2e-policy-$${realm}-*"})
    offset = strict.keycloak.log_size()
    emulator.reset_stats()

    refused = [
        strict.keycloak.password_grant(realm, login.client_id, login.client_secret, login.username, login.password)
        for _ in range(3)
    ]

    assert [r.status_code for r in refused] == [500, 500, 500], [(r.status_code, r.text[:300]) for r in refused]
    assert "access_token" not in "".join(r.text for r in refused)
    assert emulator.calls().get("Sign", 0) == 0, "nothing was signed under a policy that refuses the key"
    log = strict.log_since(offset)
    warning = "does not fit this server's policy and will not sign"
    assert log.count(warning) == 1, log[-4000:]
    [line] = [line for line in log.splitlines() if warning in line]
    assert f"realm {realm}" in line and "--spi-keys--aws-kms--allowed-key-ids" in line, line
    providers = [c["providerId"] for c in strict.admin.key_providers(realm)]
    assert not [c for c in strict.admin.key_providers(realm) if c["name"].startswith("fallback-")], providers
    assert realms.AWS_KMS_PROVIDER_ID in providers
    # A realm's own key (alias/e2e-policy-${realm}-*) still signs under the tightened policy.
    own = tenant_realm(strict, login, "policy-tenant")
    if not [c for c in aws_kms_components(strict.admin, own) if c["name"] == "own"]:
        response = strict.admin.create_component(
            own, access_key_component("own", "alias/e2e-policy-policy-tenant-a", emulator)
        )
        assert response.status_code == 201, f"{response.status_code} {response.text[:2000]}"
    own_tokens = issue_tokens(strict.keycloak, own, login)
    assert_signed_by(
        strict.keycloak, own, own_tokens["access_token"], "RS256",
        kms.get_public_key(KeyId="alias/e2e-policy-policy-tenant-a")["PublicKey"],
    )
