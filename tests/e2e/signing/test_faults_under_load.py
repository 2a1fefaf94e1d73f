"""The fault matrix of signing under load: 32 clients request tokens (client credentials grant,
one KMS `Sign` each) throughout every KMS fault the emulator injects. For each fault:

- every answer is a token whose signature verifies against the KMS public key (checked here with
  PyJWT/`cryptography` for every token issued), or a clean HTTP error, each within the bound
  below; never a token signed by anything else, never a `fallback-*` key;
- once the fault clears, tokens are issued again without a restart;
- afterwards Keycloak's threads and open descriptors are back near their baseline.

Bounds (docs/design.md, RELIABILITY.md "Faults under load"): one `Sign` call takes at most its
5 s deadline (3 s per attempt, at most 3 attempts, retry budget per client); a token request adds
Keycloak's own work, which on a loaded 2-core machine takes up to a few seconds. Every request must
end within REQUEST_BOUND (8 s: a doubled deadline, 10 s, fails it); a fault that fails calls at
once (KMS down, dropped or reset connections, 5xx, a bad signature) must fail half of its requests
within FAST_FAILURE_MEDIAN.

STS faults at the refresh of assumed-role credentials, under the same load, are in
test_sts_faults_under_load.py.
"""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
import requests

import kms_jws
import realms
from harness import create_kms_key

from .test_faults import assert_kms_key_still_active

CLIENTS = 32
REQUEST_BOUND = 8.0
FAST_FAILURE_MEDIAN = 3.0
# After a fault is cleared, requests started this long afterwards must all succeed.
RECOVERY_GRACE = 1.5
# Threads and descriptors may exceed their baseline by this much once the faults are over.
THREAD_TOLERANCE = 24
DESCRIPTOR_TOLERANCE = 64

LOAD_CLIENT_ID = "load-client"


@dataclass
class Outcome:
    started: float
    elapsed: float
    status: int
    token: Optional[str]
    error: str = ""


@dataclass
class Load:
    """CLIENTS threads requesting tokens until stopped; every outcome is kept."""

    token_url: str
    client_secret: str
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = session.post(
                    self.token_url,
                    data={"grant_type": "client_credentials"},
                    auth=(LOAD_CLIENT_ID, self.client_secret),
                    timeout=3 * REQUEST_BOUND,
                )
                body = response.json() if response.headers.get("content-type", "").startswith(
                    "application/json"
                ) else {}
                outcome = Outcome(
                    started,
                    time.monotonic() - started,
                    response.status_code,
                    body.get("access_token") if isinstance(body, dict) else None,
                    "" if response.status_code == 200 else response.text[:200],
                )
            except requests.RequestException as error:
                outcome = Outcome(started, time.monotonic() - started, 0, None, repr(error)[:200])
            with self._lock:
                self.outcomes.append(outcome)

    def start(self) -> "Load":
        for index in range(CLIENTS):
            thread = threading.Thread(target=self._run, name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=4 * REQUEST_BOUND)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread hung"
        return list(self.outcomes)

    def since(self, moment: float) -> list[Outcome]:
        with self._lock:
            return [outcome for outcome in self.outcomes if outcome.started >= moment]


@dataclass
class LoadRealm:
    name: str
    alg: str
    spki: bytes
    component_id: str
    kid: str
    client_secret: str
    token_url: str
    provider_names: set[str]

    @property
    def kms_realm_like(self):
        """What test_faults.assert_kms_key_still_active reads."""
        return _RealmView(self.name, self.alg, self.kid, self.component_id)


@dataclass(frozen=True)
class _RealmView:
    name: str
    alg: str
    kid: str
    component_id: str


def make_load_realm(keycloak, admin, kms, emulator, login, name: str, alg: str, key_spec: str,
                    credentials: dict[str, str]) -> LoadRealm:
    alias = f"alias/e2e-{name}"
    _, spki = create_kms_key(kms, key_spec, alias)
    component = realms.kms_component(f"aws-kms-{name}", alg, alias, emulator.kms_url, credentials)
    representation = realms.realm(name, alg, login, key_providers=[component])
    secret = "load-" + secrets.token_urlsafe(18)
    representation["clients"].append(
        {
            "clientId": LOAD_CLIENT_ID,
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "secret": secret,
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": False,
        }
    )
    admin.create_realm(representation)
    [ours] = [c for c in admin.key_providers(name) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]
    return LoadRealm(
        name=name,
        alg=alg,
        spki=spki,
        component_id=ours["id"],
        kid=kms_jws.kid_of_spki(spki),
        client_secret=secret,
        token_url=keycloak.token_url(name),
        provider_names={c["name"] for c in admin.key_providers(name)},
    )


def keycloak_java_pid(keycloak) -> int:
    """The JVM's pid: kc.sh execs java, or runs it as its child."""
    pid = keycloak.process.pid
    for _ in range(3):
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        if comm == "java":
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            break
        pid = int(children[0])
    raise AssertionError(f"no java process under kc.sh ({keycloak.process.pid})")


def resources(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "threads": int(fields["Threads"].strip()),
        "descriptors": len(os.listdir(f"/proc/{pid}/fd")),
        "rss_kib": int(fields["VmRSS"].split()[0]),
    }


def verify_tokens(outcomes: list[Outcome], realm: LoadRealm) -> int:
    """Every token issued verifies against the KMS key and carries its kid; returns how many."""
    public_key = kms_jws.load_spki(realm.spki)
    verified = 0
    for outcome in outcomes:
        if outcome.token is None:
            continue
        jws = kms_jws.verify_token(outcome.token, public_key, realm.alg)
        assert jws.header.get("kid") == realm.kid, jws.header
        verified += 1
    return verified


def check_outcomes(outcomes: list[Outcome], realm: LoadRealm, what: str) -> dict[str, Any]:
    assert outcomes, f"{what}: no request was made"
    for outcome in outcomes:
        assert outcome.elapsed < REQUEST_BOUND, (
            f"{what}: a request took {outcome.elapsed:.1f}s (status {outcome.status} "
            f"{outcome.error})"
        )
        if outcome.status == 200:
            assert outcome.token, f"{what}: 200 without an access token"
        else:
            assert 400 <= outcome.status < 600, (
                f"{what}: not a clean HTTP error: {outcome.status} {outcome.error}"
            )
            assert outcome.token is None
    verified = verify_tokens(outcomes, realm)
    failures = [o for o in outcomes if o.status != 200]
    return {
        "requests": len(outcomes),
        "tokens": verified,
        "errors": len(failures),
        "max_s": round(max(o.elapsed for o in outcomes), 2),
        "error_median_s": round(statistics.median(o.elapsed for o in failures), 2)
        if failures
        else None,
    }


# Results, printed at the end for RELIABILITY.md.
RESULTS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def load_setup(keycloak, admin, kms, emulator, login):
    started = time.monotonic()
    kms_realm = make_load_realm(
        keycloak, admin, kms, emulator, login, "load-faults-kms", "ES256", "ECC_NIST_P256",
        realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key),
    )
    pid = keycloak_java_pid(keycloak)
    # Warm up both realms with the full load, so that the baseline has Keycloak's worker
    # threads and the connection pools in it.
    for realm in (kms_realm,):
        load = Load(realm.token_url, realm.client_secret).start()
        time.sleep(4)
        outcomes = load.stop()
        summary = check_outcomes(outcomes, realm, f"warm-up {realm.name}")
        assert summary["errors"] == 0, f"warm-up failed: {summary} {outcomes[-1].error}"
    time.sleep(1)
    baseline = resources(pid)
    yield {"kms": kms_realm, "pid": pid, "baseline": baseline}
    emulator.clear_faults()
    print(f"\nfaults under load: {time.monotonic() - started:.0f}s in all")
    for name, result in RESULTS.items():
        print(f"  {name}: {result}")


def run_fault(emulator, realm: LoadRealm, fault: dict[str, Any], seconds: float,
              recovery: float = 2.5) -> tuple[list[Outcome], list[Outcome]]:
    """Load for `seconds` under `fault`, then clear it and load `recovery` seconds more;
    returns the outcomes of requests started during the fault and after the grace."""
    load = Load(realm.token_url, realm.client_secret).start()
    time.sleep(0.5)
    fault_started = time.monotonic()
    emulator.set_fault(fault)
    time.sleep(seconds)
    emulator.clear_faults()
    cleared = time.monotonic()
    time.sleep(recovery)
    outcomes = load.stop()
    during = [o for o in outcomes if fault_started <= o.started < cleared]
    after = [o for o in outcomes if o.started >= cleared + RECOVERY_GRACE]
    return during, after


def check_recovered(after: list[Outcome], realm: LoadRealm, what: str) -> None:
    assert after, f"{what}: no request after the fault cleared"
    failed = [o for o in after if o.status != 200]
    assert not failed, f"{what}: {len(failed)} of {len(after)} failed after recovery: {failed[0]}"
    verify_tokens(after, realm)


# id: (fault, seconds under it, whether every request must still get a token, fails fast)
KMS_FAULTS: dict[str, tuple[dict[str, Any], float, bool, bool]] = {
    "latency-200ms": ({"mode": "none", "latencyMs": 200, "operations": ["Sign"]}, 3, True, False),
    "hang": ({"mode": "hang", "latencyMs": 120_000, "operations": ["Sign"]}, 6, False, False),
    "throttling-burst": ({"mode": "throttle", "operations": ["Sign"], "count": 40}, 3, False, True),
    "throttling-sustained": ({"mode": "throttle", "operations": ["Sign"]}, 3, False, True),
    "5xx-burst": ({"mode": "server-error", "status": 503, "operations": ["Sign"], "count": 40},
                  3, False, True),
    "5xx-sustained": ({"mode": "server-error", "operations": ["Sign"]}, 3, False, True),
    "dropped-connections": ({"mode": "drop", "operations": ["Sign"]}, 3, False, True),
    "reset-mid-response-burst": ({"mode": "reset", "operations": ["Sign"], "count": 40}, 3,
                                 False, True),
    "reset-mid-response-sustained": ({"mode": "reset", "operations": ["Sign"]}, 3, False, True),
    "endpoint-down": ({"mode": "down"}, 3, False, True),
    "signature-does-not-verify": ({"mode": "bad-signature"}, 3, False, True),
}


@pytest.mark.parametrize("fault_id", list(KMS_FAULTS))
def test_under_load_each_kms_fault_yields_verified_tokens_or_clean_errors_in_bound_and_recovers(
    keycloak, admin, faults, load_setup, fault_id
):
    realm: LoadRealm = load_setup["kms"]
    fault, seconds, all_succeed, fails_fast = KMS_FAULTS[fault_id]
    pid = keycloak.process.pid
    during, after = run_fault(faults, realm, fault, seconds)
    summary = check_outcomes(during, realm, fault_id)
    RESULTS[fault_id] = summary
    if all_succeed:
        assert summary["errors"] == 0, f"{fault_id}: {summary}"
    if fault_id.endswith("-burst"):
        # A burst the retries absorb: most requests still get their token.
        assert summary["tokens"] > summary["errors"], f"{fault_id}: {summary}"
    if fault_id in ("hang", "signature-does-not-verify", "endpoint-down", "dropped-connections",
                    "5xx-sustained", "reset-mid-response-sustained"):
        # Requests started well inside the fault window cannot have been signed.
        assert summary["errors"] > 0, f"{fault_id}: {summary}"
    if fails_fast and summary["errors"]:
        assert summary["error_median_s"] < FAST_FAILURE_MEDIAN, f"{fault_id}: {summary}"
    check_recovered(after, realm, fault_id)
    assert keycloak.process.poll() is None and keycloak.process.pid == pid
    assert_kms_key_still_active(admin, realm.kms_realm_like, realm.provider_names)


def test_after_the_fault_matrix_keycloaks_threads_and_descriptors_are_back_near_baseline(
    keycloak, load_setup
):
    pid, baseline = load_setup["pid"], load_setup["baseline"]
    deadline = time.monotonic() + 30
    while True:
        now = resources(pid)
        settled = (
            now["threads"] <= baseline["threads"] + THREAD_TOLERANCE
            and now["descriptors"] <= baseline["descriptors"] + DESCRIPTOR_TOLERANCE
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(1)
    RESULTS["resources"] = {"baseline": baseline, "after": now}
    assert now["threads"] <= baseline["threads"] + THREAD_TOLERANCE, (baseline, now)
    assert now["descriptors"] <= baseline["descriptors"] + DESCRIPTOR_TOLERANCE, (baseline, now)
