"""When KMS is unreachable or slow, token requests fail promptly and loudly; Keycloak does not
swap in a software fallback key, and signing works again as soon as KMS is back."""

from __future__ import annotations

import time

import pytest

from .checks import assert_signed_by, issue_tokens

# A failing token request must come back within this many seconds (no hang).
FAILURE_BOUND_SECONDS = 30


def timed_password_grant(keycloak, kms_realm):
    login = kms_realm.login
    started = time.monotonic()
    response = keycloak.password_grant(
        kms_realm.name,
        login.client_id,
        login.client_secret,
        login.username,
        login.password,
        timeout=3 * FAILURE_BOUND_SECONDS,
    )
    return response, time.monotonic() - started


def assert_failed_cleanly(response, elapsed: float) -> None:
    assert 400 <= response.status_code < 600, (
        f"expected an HTTP error, got {response.status_code} {response.text[:500]}"
    )
    assert "access_token" not in response.text
    assert elapsed < FAILURE_BOUND_SECONDS, f"the failing token request took {elapsed:.1f}s"


def assert_kms_key_still_active(admin, kms_realm, provider_names_before: set[str]) -> None:
    providers = admin.key_providers(kms_realm.name)
    names = {component["name"] for component in providers}
    fallbacks = sorted(name for name in names if name.startswith("fallback-"))
    assert not fallbacks, f"Keycloak created software fallback keys: {fallbacks}"
    assert names == provider_names_before

    keys = admin.keys(kms_realm.name)
    assert keys["active"].get(kms_realm.alg) == kms_realm.kid, keys["active"]
    [entry] = [key for key in keys["keys"] if key["kid"] == kms_realm.kid]
    assert entry["status"] == "ACTIVE"
    assert entry["providerId"] == kms_realm.component_id


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_kms_down_fails_token_requests_cleanly_without_a_fallback_key_and_signing_resumes_when_it_is_back(
    keycloak, admin, faults, make_kms_realm, alg
):
    kms_realm = make_kms_realm(alg, name=f"faults-down-{alg.lower()}")
    issue_tokens(keycloak, kms_realm.name, kms_realm.login)  # the key is loaded and works
    names_before = {component["name"] for component in admin.key_providers(kms_realm.name)}
    pid = keycloak.process.pid

    faults.set_faults("down")
    for _ in range(2):  # the first failure must not change how the next request is handled
        response, elapsed = timed_password_grant(keycloak, kms_realm)
        assert_failed_cleanly(response, elapsed)
    assert_kms_key_still_active(admin, kms_realm, names_before)

    faults.clear_faults()
    tokens = issue_tokens(keycloak, kms_realm.name, kms_realm.login)
    assert keycloak.process.poll() is None and keycloak.process.pid == pid
    for name in ("access_token", "id_token"):
        assert_signed_by(keycloak, kms_realm.name, tokens[name], alg, kms_realm.spki)
    assert_kms_key_still_active(admin, kms_realm, names_before)


def test_a_kms_sign_call_hanging_beyond_the_deadline_fails_the_token_request_within_a_bound(
    keycloak, admin, faults, make_kms_realm
):
    kms_realm = make_kms_realm("PS256", name="faults-hang-ps256")
    issue_tokens(keycloak, kms_realm.name, kms_realm.login)
    names_before = {component["name"] for component in admin.key_providers(kms_realm.name)}

    faults.set_faults("hang", latency_ms=120_000, operations=["Sign"])
    response, elapsed = timed_password_grant(keycloak, kms_realm)
    assert_failed_cleanly(response, elapsed)
    assert_kms_key_still_active(admin, kms_realm, names_before)

    faults.clear_faults()
    tokens = issue_tokens(keycloak, kms_realm.name, kms_realm.login)
    assert_signed_by(keycloak, kms_realm.name, tokens["access_token"], "PS256", kms_realm.spki)
