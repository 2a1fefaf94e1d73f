"""What an operator sees (issue 11): native log records in Keycloak's log under their categories,
failures logged once and then rate-limited, a kid flood without a line per request, the meters in
Keycloak's metrics endpoint moving by what the test did, and the status view of the realm's keys.

Runs on the session Keycloak (started with --metrics-enabled=true and dev.awskms at DEBUG):
    ~/.cache/keycloak-aws-kms/venv/bin/python -m pytest tests/e2e/operations -x -q
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Callable, Iterator

import pytest
import requests

import harness
from public_keys.client_keys import jwks, random_kid, rsa_key
from public_keys.jwks_server import JwksServer, Response, html_response
from public_keys.server_under_test import NATIVE_LRU, JwtClient, ServerUnderTest

SIGNING = "dev.awskms.keycloak.native.signing"
PUBLIC_KEYS = "dev.awskms.keycloak.native.publickeys"
FLOOD = 200
# The meters are read from a snapshot (1 s) and new tags registered every 5 s.
METER_WAIT_SECONDS = 20

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$")


def metrics(keycloak: harness.Keycloak) -> str:
    response = requests.get(f"{keycloak.management_url}/metrics", timeout=30)
    assert response.status_code == 200, f"GET /metrics: {response.status_code} {response.text[:300]}"
    return response.text


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(4))
    return total


def wait_for_sample(keycloak: harness.Keycloak, name: str, expected: float, **labels: str) -> float:
    deadline = time.monotonic() + METER_WAIT_SECONDS
    while True:
        value = sample(metrics(keycloak), name, **labels)
        if value >= expected or time.monotonic() > deadline:
            return value
        time.sleep(1)


def log_lines(keycloak: harness.Keycloak, since: int, level: str, category: str, containing: str) -> list[str]:
    with keycloak.log_path.open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", errors="replace")
    return [
        line
        for line in text.splitlines()
        if f" {level} " in line and f"[{category}" in line and containing in line
    ]


def wait_for_lines(
    keycloak: harness.Keycloak, since: int, level: str, category: str, containing: str, count: int = 1
) -> list[str]:
    """The native log thread writes within a second or so; wait up to 15 s for `count` lines."""
    deadline = time.monotonic() + 15
    while True:
        lines = log_lines(keycloak, since, level, category, containing)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


@pytest.fixture(scope="module")
def kms_realm(make_kms_realm):
    return make_kms_realm("RS256", name="operator-view")


def token(keycloak: harness.Keycloak, realm) -> requests.Response:
    login = realm.login
    return keycloak.password_grant(
        realm.name, login.client_id, login.client_secret, login.username, login.password
    )


def settled_metrics(keycloak: harness.Keycloak) -> str:
    """The metrics once two reads more than the snapshot interval (1 s) apart agree, so that a
    baseline does not lag behind signatures made just before (by an earlier test)."""
    deadline = time.monotonic() + METER_WAIT_SECONDS
    previous = metrics(keycloak)
    while True:
        time.sleep(1.5)
        current = metrics(keycloak)
        names = ("keycloak_aws_kms_requests_total", "keycloak_aws_kms_sign_duration_seconds_count")
        if all(sample(current, name) == sample(previous, name) for name in names) or time.monotonic() > deadline:
            return current
        previous = current


def test_signing_is_counted_in_the_metrics_endpoint_by_operation_and_outcome(keycloak, kms_realm) -> None:
    before = settled_metrics(keycloak)
    sign_ok = sample(before, "keycloak_aws_kms_requests_total", operation="Sign", outcome="success")
    timed_ok = sample(before, "keycloak_aws_kms_sign_duration_seconds_count", outcome="success")
    for _ in range(3):
        answer = token(keycloak, kms_realm)
        assert answer.status_code == 200, answer.text[:300]
    # Each password grant signs the access token and the ID token (and the refresh token is HMAC).
    signed = wait_for_sample(
        keycloak, "keycloak_aws_kms_sign_duration_seconds_count", timed_ok + 6, outcome="success"
    )
    assert signed == timed_ok + 6
    requested = wait_for_sample(
        keycloak, "keycloak_aws_kms_requests_total", sign_ok + 6, operation="Sign", outcome="success"
    )
    assert requested == sign_ok + 6
    text = metrics(keycloak)
    assert sample(text, "keycloak_aws_kms_sign_duration_seconds_bucket", outcome="success", le="+Inf") >= 6
    assert sample(text, "keycloak_aws_kms_signing_keys") >= 1


def test_throttling_is_retried_and_counted(keycloak, kms_realm, faults) -> None:
    before = metrics(keycloak)
    throttles = sample(before, "keycloak_aws_kms_throttles_total")
    retries = sample(before, "keycloak_aws_kms_retries_total", code="THROTTLED")
    faults.set_faults("throttle", operations=["Sign"], count=2)
    answer = token(keycloak, kms_realm)
    assert answer.status_code == 200, answer.text[:300]
    assert wait_for_sample(keycloak, "keycloak_aws_kms_throttles_total", throttles + 2) == throttles + 2
    assert wait_for_sample(keycloak, "keycloak_aws_kms_retries_total", retries + 2, code="THROTTLED") == retries + 2
    assert sample(metrics(keycloak), "keycloak_aws_kms_requests_total", operation="Sign", outcome="THROTTLED") >= 2


def test_a_disabled_key_is_logged_once_with_its_cause_and_provider_then_its_recovery(
    keycloak, kms, kms_realm
) -> None:
    since = keycloak.log_size()
    failed_before = sample(metrics(keycloak), "keycloak_aws_kms_requests_total", operation="Sign", outcome="KEY_DISABLED")
    kms.disable_key(KeyId=kms_realm.key_arn)
    try:
        for _ in range(5):
            assert token(keycloak, kms_realm).status_code != 200
    finally:
        kms.enable_key(KeyId=kms_realm.key_arn)
    errors = wait_for_lines(keycloak, since, "ERROR", SIGNING, "KEY_DISABLED")
    assert len(errors) == 1, "\n".join(errors)
    line = errors[0]
    assert kms_realm.component_id in line and kms_realm.name in line and kms_realm.kid in line, line
    assert "logged again at most once per 60 s" in line, line
    repeats = log_lines(keycloak, since, "DEBUG", SIGNING, "KEY_DISABLED")
    assert len(repeats) >= 3, "the repeats are logged at DEBUG"
    assert (
        wait_for_sample(
            keycloak, "keycloak_aws_kms_requests_total", failed_before + 5, operation="Sign", outcome="KEY_DISABLED"
        )
        >= failed_before + 5
    )

    answer = token(keycloak, kms_realm)
    assert answer.status_code == 200, answer.text[:300]
    recovered = wait_for_lines(keycloak, since, "INFO", SIGNING, "signs again")
    assert len(recovered) == 1 and kms_realm.component_id in recovered[0], recovered


def test_the_status_view_lists_the_provider_with_its_signing_outcomes(keycloak, admin, kms_realm) -> None:
    status = admin.checked("GET", f"/{kms_realm.name}/aws-kms", 200).json()
    assert status["realm"] == kms_realm.name
    (provider,) = status["providers"]
    assert provider["id"] == kms_realm.component_id
    assert provider["keyArn"] == kms_realm.key_arn
    assert provider["kid"] == kms_realm.kid
    assert provider["algorithm"] == "RS256"
    assert provider["enabled"] is True and provider["active"] is True
    assert provider["certificateExpires"] and provider["certificateExpires"].endswith("Z")
    assert provider["lastSigningSuccess"], provider
    failure = provider["lastSigningFailure"]
    assert failure and failure["code"] == "KEY_DISABLED", provider
    assert failure["failuresSinceSuccess"] == 0
    assert "check" not in provider
    assert status["activeSoftwareSigningKeys"] == []

    master = admin.checked("GET", "/master/aws-kms", 200).json()
    assert master["providers"] == []
    assert any(key["providerId"] == "rsa-generated" for key in master["activeSoftwareSigningKeys"]), master

    anonymous = requests.get(f"{keycloak.base_url}/admin/realms/{kms_realm.name}/aws-kms", timeout=30)
    assert anonymous.status_code == 401


def test_the_status_check_reports_a_disabled_key_and_an_alias_moved_elsewhere(
    keycloak, admin, kms, kms_realm
) -> None:
    checked = admin.checked("GET", f"/{kms_realm.name}/aws-kms", 200, params={"check": "true"}).json()
    assert checked["providers"][0]["check"]["ok"] is True, checked
    kms.disable_key(KeyId=kms_realm.key_arn)
    try:
        checked = admin.checked("GET", f"/{kms_realm.name}/aws-kms", 200, params={"check": "true"}).json()
    finally:
        kms.enable_key(KeyId=kms_realm.key_arn)
    check = checked["providers"][0]["check"]
    assert check["ok"] is False and check["drift"][0]["code"] == "KEY_DISABLED", check

    other_arn, _ = harness.create_kms_key(kms, "RSA_2048", f"alias/e2e-operator-other-{uuid.uuid4().hex[:8]}")
    kms.update_alias(AliasName=kms_realm.alias, TargetKeyId=other_arn)
    try:
        checked = admin.checked("GET", f"/{kms_realm.name}/aws-kms", 200, params={"check": "true"}).json()
    finally:
        kms.update_alias(AliasName=kms_realm.alias, TargetKeyId=kms_realm.key_arn)
    codes = [entry["code"] for entry in checked["providers"][0]["check"]["drift"]]
    assert "KEY_ARN_CHANGED" in codes, checked


# --- public key storage -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage(keycloak, admin) -> Iterator[ServerUnderTest]:
    server = JwksServer()
    under_test = ServerUnderTest(NATIVE_LRU, keycloak, admin, server)
    under_test.create_realm("operator-jwks")
    yield under_test
    server.stop()


def test_a_failed_jwks_download_is_a_warning_with_its_cause_and_the_url_without_query(keycloak, storage) -> None:
    before = metrics(keycloak)
    failures = sample(before, "keycloak_aws_kms_public_keys_downloads_total", outcome="failure")
    since = keycloak.log_size()
    key = rsa_key("op-1")
    failing = storage.jwks_endpoint("operator-failing")
    failing.serve(Response(500, "text/plain", b"down"))
    html = storage.jwks_endpoint("operator-html")
    html.serve(html_response())
    for endpoint, name in ((failing, "failing"), (html, "html")):
        representation = {
            "clientId": name,
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-jwt",
            "serviceAccountsEnabled": True,
            "attributes": {"use.jwks.url": "true", "jwks.url": f"{endpoint.url}?token=e2e-query-secret"},
        }
        storage.admin.add_client("operator-jwks", representation)
        JwtClient(storage, "operator-jwks", name, endpoint).assert_refused(key)
    warned = wait_for_lines(keycloak, since, "WARN", PUBLIC_KEYS, "Could not download the JWKS", count=2)
    assert len(warned) == 2, warned
    assert any(failing.url in line and "HTTP 500" in line for line in warned), warned
    assert any(html.url in line for line in warned), warned
    assert not any("e2e-query-secret" in line for line in warned), warned
    assert (
        wait_for_sample(keycloak, "keycloak_aws_kms_public_keys_downloads_total", failures + 2, outcome="failure")
        == failures + 2
    )
    assert sample(metrics(keycloak), "keycloak_aws_kms_public_keys_load_failures_total") >= 2


def test_a_flood_of_made_up_kids_writes_one_warning_for_the_source(keycloak, storage) -> None:
    key = rsa_key("flood-1")
    client = storage.jwt_client("operator-jwks", "flooded", jwks(key))
    client.assert_authenticates(key)
    before = metrics(keycloak)
    hits = sample(before, "keycloak_aws_kms_public_keys_hits_total")
    throttled = sample(before, "keycloak_aws_kms_public_keys_throttled_total")
    since = keycloak.log_size()
    started = time.monotonic()
    with requests.Session() as session:
        for _ in range(FLOOD):
            assert client.authenticate(key, kid=random_kid(), session=session).status_code in (400, 401)
    elapsed = time.monotonic() - started
    ours = log_lines(keycloak, since, "WARN", "dev.awskms.keycloak.publickeys", "PublicKey wasn't found")
    with keycloak.log_path.open("rb") as log:
        log.seek(since)
        warnings = [line for line in log.read().decode("utf-8", "replace").splitlines() if " WARN " in line]
    assert len(ours) == 1, ours[:5]
    assert "logged at WARN at most once per 60 s per source" in ours[0]
    # Keycloak's own line per failed client authentication (KC-SERVICES0025 / client assertion) is
    # not ours to change; it must be the only other warning per request.
    others = [line for line in warnings if "PublicKey wasn't found" not in line]
    assert len(others) <= FLOOD, f"{len(others)} other warnings in {elapsed:.1f}s: {others[:3]}"
    print(f"flood of {FLOOD} made-up kids in {elapsed:.1f}s: {len(ours)} storage warning, "
          f"{len(others)} other warnings, e.g. {others[:1]}")
    # Every made-up kid misses the cached keys and asks for a reload, which the window throttles
    # (at most one download per window).
    assert (
        wait_for_sample(keycloak, "keycloak_aws_kms_public_keys_throttled_total", throttled + FLOOD - 5)
        >= throttled + FLOOD - 5
    )
    assert sample(metrics(keycloak), "keycloak_aws_kms_public_keys_hits_total") >= hits
