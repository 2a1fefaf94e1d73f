"""STS faults at the refresh of assumed-role credentials, under load: 32 clients request tokens
from an `assume-role` realm while the emulator issues sessions of SESSION_SECONDS, and STS is
throttled, failing (503) or slow exactly when the background refresh falls due.

What a user relies on (docs/design.md "Credentials"): credentials are refreshed ahead of expiry in
the background, so a token request never waits for STS while the credentials in hand are valid.
Here the fault spans the refresh moment and ends before those credentials stop being usable, so
every request must get a token that verifies against the KMS key, within the load bound; and the
refresh must have been attempted during the fault and succeeded after it.

Each scenario saves its own realm with its own role session name, so that it gets a KMS client
(and a refresh task) of its own: nothing carries over from earlier scenarios or earlier faults.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import realms

from .test_faults_under_load import (
    Load,
    check_outcomes,
    make_load_realm,
    RESULTS,
)

# The emulator issues sessions this long; the refresh falls due at 3/4 of it (12 s) and requests
# stop using credentials at 9/10 of it (14.4 s): docs/design.md "Credentials".
SESSION_SECONDS = 16
REFRESH_AFTER = SESSION_SECONDS * 3 / 4
USABLE_FOR = SESSION_SECONDS * 9 / 10
# The fault starts this long before the refresh is due and ends this long before the
# credentials in hand stop being usable. STS's Expiration has whole seconds, so the held
# credentials expire up to 1 s before SESSION_SECONDS after this test sees the session begin;
# requests inside the buffer then keep the held ones until half of it is left (credentials.rs).
FAULT_LEAD = 1.5
FAULT_MARGIN = 0.9

STS_FAULTS: dict[str, dict[str, Any]] = {
    "sts-throttled": {"mode": "throttle", "operations": ["AssumeRole"]},
    "sts-5xx": {"mode": "server-error", "status": 503, "operations": ["AssumeRole"]},
    "sts-slow": {"mode": "none", "latencyMs": 1500, "operations": ["AssumeRole"]},
}


def assume_role_calls(emulator) -> int:
    return emulator.calls().get("AssumeRole", 0)


def wait_for_assume_role(emulator, above: int, bound: float) -> float:
    """Waits until more than `above` AssumeRole calls were made; returns when it saw that."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if assume_role_calls(emulator) > above:
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"no AssumeRole call within {bound}s (calls: {emulator.calls()})")


@pytest.fixture
def short_sessions(emulator, sessions_settle_after_the_module):
    emulator.set_sts_session_seconds(SESSION_SECONDS)
    yield
    emulator.set_sts_session_seconds(None)


@pytest.fixture(scope="module")
def sessions_settle_after_the_module():
    # Every scenario's client keeps its realm and refreshes its last short session once more,
    # at most REFRESH_AFTER after obtaining it: wait that out here, so that those AssumeRole
    # calls do not land in the emulator's counts of the tests that follow (which assert, e.g.,
    # that a refused save made no AWS call).
    yield
    time.sleep(REFRESH_AFTER + 2)


@pytest.mark.parametrize("fault_id", list(STS_FAULTS))
def test_under_load_an_sts_fault_at_credential_refresh_delays_no_token_and_the_refresh_catches_up(
    keycloak, admin, kms, emulator, faults, aws_identities, login, short_sessions, fault_id
):
    credentials = realms.assume_role_credentials(
        aws_identities.signer_role_arn,
        emulator.sts_url,
        external_id=aws_identities.signer_external_id,
        access_key_id=emulator.access_key_id,
        secret_access_key=emulator.secret_access_key,
        role_session_name=f"e2e-{fault_id}",
    )
    realm = make_load_realm(
        keycloak, admin, kms, emulator, login, f"load-{fault_id}", "ES256", "ECC_NIST_P256",
        credentials,
    )
    # The first token builds the realm's signing client, whose refresh task fetches its first
    # session at once: that fetch starts the clock.
    emulator.reset_stats()
    load = Load(realm.token_url, realm.client_secret).start()
    try:
        session_started = wait_for_assume_role(emulator, 0, bound=SESSION_SECONDS + 4)
        fault_at = session_started + REFRESH_AFTER - FAULT_LEAD
        clear_at = session_started + USABLE_FOR - FAULT_MARGIN
        time.sleep(max(0.0, fault_at - time.monotonic()))
        before_fault = assume_role_calls(emulator)
        faults.set_fault(STS_FAULTS[fault_id])
        time.sleep(max(0.0, clear_at - time.monotonic()))
        during_fault = assume_role_calls(emulator) - before_fault
        faults.clear_faults()
        # Load on past the first session's expiry: the tokens then need the refreshed session.
        time.sleep(max(0.0, session_started + SESSION_SECONDS + 2 - time.monotonic()))
    finally:
        faults.clear_faults()
        outcomes = load.stop()

    summary = check_outcomes(outcomes, realm, fault_id)
    summary["assume_role_during_fault"] = during_fault
    summary["assume_role_total"] = assume_role_calls(emulator)
    RESULTS[fault_id] = summary
    print(f"\n{fault_id}: {summary}")
    assert summary["errors"] == 0, f"{fault_id}: a token request failed: {summary}"
    assert during_fault >= 1, f"{fault_id}: the refresh was not attempted during the fault: {summary}"
    # The first session and the refreshed one (tried during the fault, or right after it).
    assert summary["assume_role_total"] >= 2, f"{fault_id}: {summary}"
