"""Key rotation with aws-kms keys follows Keycloak's runbook: add the new KMS key as active with a
higher priority and make the old one passive; tokens issued before keep verifying against the
realm's JWKS, a passive key stays published, a disabled one is not, and a removed one is gone.
Several aws-kms providers coexist in one realm, and a client's per-client algorithms pick the
active key of each algorithm."""

from __future__ import annotations

import kms_jws
import realms
from harness import create_kms_key

from .checks import (
    assert_signed_by,
    issue_tokens,
    jwks_kids,
    key_entry,
    save_component,
)


def component(emulator, name: str, alg: str, alias: str, priority: int, active: bool = True) -> dict:
    return realms.kms_component(
        name,
        alg,
        alias,
        emulator.kms_url,
        realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key),
        priority=priority,
        active=active,
    )


def set_flags(admin, realm: str, component_id: str, **flags: bool) -> None:
    """Changes `active`/`enabled` the way the admin console does (a PUT of the whole component)."""
    representation = admin.component(realm, component_id).json()
    for flag, value in flags.items():
        representation["config"][flag] = ["true" if value else "false"]
    response = admin.update_component(realm, component_id, representation)
    assert response.status_code == 204, f"PUT component {flags}: {response.status_code} {response.text}"


def introspected_active(keycloak, realm: str, login, token: str) -> bool:
    response = keycloak.introspect(realm, login.client_id, login.client_secret, token)
    assert response.status_code == 200, response.text
    return response.json().get("active") is True


def test_the_rotation_runbook_keeps_old_tokens_verifiable_until_the_old_key_is_disabled_or_removed(
    keycloak, admin, kms, emulator, make_realm, login
):
    realm = "rotation"
    _, old_spki = create_kms_key(kms, "RSA_2048", "alias/e2e-rotation-old")
    _, new_spki = create_kms_key(kms, "RSA_3072", "alias/e2e-rotation-new")
    old_kid, new_kid = kms_jws.kid_of_spki(old_spki), kms_jws.kid_of_spki(new_spki)
    make_realm(realm, "RS256", [component(emulator, "kms-old", "RS256", "alias/e2e-rotation-old", 200)])
    [old] = [c for c in admin.key_providers(realm) if c["name"] == "kms-old"]
    issued_before = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, issued_before["access_token"], "RS256", old_spki)

    # 1. The new KMS key: active, higher priority. 2. The old one: passive.
    new_id = save_component(
        admin, realm, component(emulator, "kms-new", "RS256", "alias/e2e-rotation-new", 300)
    )
    set_flags(admin, realm, old["id"], active=False)

    keys = admin.keys(realm)
    assert keys["active"]["RS256"] == new_kid, keys["active"]
    assert key_entry(admin, realm, old["id"])["status"] == "PASSIVE"
    assert key_entry(admin, realm, new_id)["status"] == "ACTIVE"
    assert {old_kid, new_kid} <= jwks_kids(keycloak, realm)
    issued_after = issue_tokens(keycloak, realm, login)
    for name in ("access_token", "id_token"):
        assert_signed_by(keycloak, realm, issued_after[name], "RS256", new_spki)
    # Tokens issued before still verify against the published (passive) key, and Keycloak
    # itself still accepts them.
    assert_signed_by(keycloak, realm, issued_before["access_token"], "RS256", old_spki)
    assert introspected_active(keycloak, realm, login, issued_before["access_token"])

    # 3. Disabled: no longer published, and no longer accepted.
    set_flags(admin, realm, old["id"], enabled=False)
    assert old_kid not in jwks_kids(keycloak, realm)
    assert new_kid in jwks_kids(keycloak, realm)
    assert key_entry(admin, realm, old["id"])["status"] == "DISABLED"
    assert not introspected_active(keycloak, realm, login, issued_before["access_token"])

    # 4. Enabled again (passive) it is back; removed, its kid leaves /certs for good.
    set_flags(admin, realm, old["id"], enabled=True)
    assert old_kid in jwks_kids(keycloak, realm)
    admin.delete_component(realm, old["id"])
    assert old_kid not in jwks_kids(keycloak, realm)
    assert not introspected_active(keycloak, realm, login, issued_before["access_token"])
    tokens = issue_tokens(keycloak, realm, login)
    assert_signed_by(keycloak, realm, tokens["access_token"], "RS256", new_spki)
    assert introspected_active(keycloak, realm, login, tokens["access_token"])


def test_several_aws_kms_providers_coexist_and_per_client_algorithms_pick_the_matching_active_key(
    keycloak, admin, kms, emulator, make_realm, login
):
    realm = "coexisting"
    spkis = {}
    for alg, spec in (("RS256", "RSA_2048"), ("ES256", "ECC_NIST_P256"), ("PS384", "RSA_3072")):
        _, spkis[alg] = create_kms_key(kms, spec, f"alias/e2e-coexisting-{alg.lower()}")
    # A second, lower-priority ES256 key: the highest priority wins within an algorithm.
    _, low_es256_spki = create_kms_key(kms, "ECC_NIST_P256", "alias/e2e-coexisting-es256-low")
    make_realm(
        realm,
        "RS256",
        [
            component(emulator, "kms-rs256", "RS256", "alias/e2e-coexisting-rs256", 200),
            component(emulator, "kms-es256", "ES256", "alias/e2e-coexisting-es256", 200),
            component(emulator, "kms-es256-low", "ES256", "alias/e2e-coexisting-es256-low", 150),
            component(emulator, "kms-ps384", "PS384", "alias/e2e-coexisting-ps384", 200),
        ],
    )
    clients = {
        # client: (access token algorithm, ID token algorithm)
        login.client_id: ("RS256", "RS256"),
        "es256-access-ps384-id": ("ES256", "PS384"),
        "ps384-access-es256-id": ("PS384", "ES256"),
    }
    for client_id, (access_alg, id_alg) in clients.items():
        if client_id != login.client_id:
            client_login = realms.Login(client_id, login.client_secret, login.username, login.password)
            admin.add_client(realm, realms.client_with_algorithms(client_login, access_alg, id_alg))

    keys = admin.keys(realm)
    for alg, spki in spkis.items():
        assert keys["active"][alg] == kms_jws.kid_of_spki(spki), keys["active"]
    published = jwks_kids(keycloak, realm)
    assert {kms_jws.kid_of_spki(s) for s in [*spkis.values(), low_es256_spki]} <= published
    emulator.reset_stats()
    for client_id, (access_alg, id_alg) in clients.items():
        client_login = realms.Login(client_id, login.client_secret, login.username, login.password)
        tokens = issue_tokens(keycloak, realm, client_login)
        assert_signed_by(keycloak, realm, tokens["access_token"], access_alg, spkis[access_alg])
        assert_signed_by(keycloak, realm, tokens["id_token"], id_alg, spkis[id_alg])
    assert emulator.calls() == {"Sign": 2 * len(clients)}
