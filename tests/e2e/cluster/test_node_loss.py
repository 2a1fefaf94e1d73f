"""A node lost without a failed login: clients request tokens through both nodes while node a is
killed (SIGKILL) and started again; a client whose request to node a fails retries on node b.
Every login succeeds, node b signs through the outage, and node a serves again once back."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import requests

import kms_jws

from .cluster_harness import Node
from .scenarios import ClusterUnderTest, node_options

# Clients, each sending one login every PACE_SECONDS (bounded by MAX_LOGINS_PER_CLIENT too).
CLIENTS = 4
PACE_SECONDS = 0.5
MAX_LOGINS_PER_CLIENT = 600
# Traffic before the kill, after it (node a down), and once node a is back.
BEFORE_KILL_SECONDS = 3.0
DOWN_SECONDS = 5.0
AFTER_RESTART_SECONDS = 4.0
# A request that fails or gets no answer within this long goes to the other node.
ATTEMPT_TIMEOUT = (3.0, 20.0)


@dataclass
class Login:
    client: int
    started: float
    first_node: str
    served_by: Optional[str] = None
    token: str = ""
    # What went wrong on each attempt that did not yield a token.
    failures: list[str] = field(default_factory=list)


class Clients:
    """CLIENTS threads of password grants; even clients ask node a first, odd ones node b.
    Clients of node a fall back to node b; node b's clients have nowhere else to go."""

    def __init__(self, under_test: ClusterUnderTest, realm: str) -> None:
        self._under_test = under_test
        self._realm = realm
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.logins: list[Login] = []
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"login-client-{i}", daemon=True)
            for i in range(CLIENTS)
        ]

    def __enter__(self) -> "Clients":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, index: int) -> None:
        a, b = self._under_test.a, self._under_test.b
        order = [a, b] if index % 2 == 0 else [b]
        with requests.Session() as session:
            for _ in range(MAX_LOGINS_PER_CLIENT):
                if self._stop.is_set():
                    return
                login = Login(index, time.monotonic(), order[0].name)
                for node in order:
                    if self._attempt(session, node, login):
                        break
                with self._lock:
                    self.logins.append(login)
                self._stop.wait(PACE_SECONDS)

    def _attempt(self, session: requests.Session, node: Node, login: Login) -> bool:
        under_test = self._under_test
        try:
            response = session.post(
                node.token_url(self._realm),
                data={
                    "grant_type": "password",
                    "client_id": under_test.login.client_id,
                    "client_secret": under_test.login.client_secret,
                    "username": under_test.login.username,
                    "password": under_test.login.password,
                },
                timeout=ATTEMPT_TIMEOUT,
            )
        except requests.RequestException as error:
            login.failures.append(f"node {node.name}: {type(error).__name__}")
            return False
        if response.status_code != 200:
            login.failures.append(f"node {node.name}: {response.status_code} {response.text[:200]}")
            return False
        login.served_by = node.name
        login.token = response.json()["access_token"]
        return True

    def since(self, moment: float) -> list[Login]:
        with self._lock:
            return [login for login in self.logins if login.started >= moment]


def test_while_node_a_is_killed_and_restarted_clients_retrying_on_node_b_see_no_failed_login(
    under_test: ClusterUnderTest,
) -> None:
    realm = under_test.kms_realm("cluster-node-loss", "ES256")
    a, b, cluster = under_test.a, under_test.b, under_test.cluster
    # Node a comes back with the suite's default options (the long window the modules after this
    # one want), whatever it ran with before.
    options = node_options(None)

    with Clients(under_test, realm.name) as clients:
        time.sleep(BEFORE_KILL_SECONDS)
        cluster.kill_node("a")
        # Taken once node a is gone: logins started while the kill was under way count as before.
        killed = time.monotonic()
        time.sleep(DOWN_SECONDS)
        restarting = time.monotonic()
        cluster.start_node("a", options)
        back = time.monotonic()
        time.sleep(AFTER_RESTART_SECONDS)

    logins = clients.logins
    failed = [login for login in logins if login.served_by is None]
    assert not failed, (
        f"{len(failed)} of {len(logins)} logins failed on every node they tried, e.g. "
        f"{[(login.first_node, login.failures) for login in failed[:3]]}"
    )
    before = [login for login in logins if login.started < killed]
    assert {login.served_by for login in before} == {"a", "b"}, "traffic went through both nodes"
    outage = [login for login in logins if killed <= login.started < back]
    retried = [login for login in outage if login.first_node == "a" and login.served_by == "b"]
    assert retried, "no request to node a failed over to node b while a was down"
    assert {login.served_by for login in outage if login.started < restarting} == {"b"}
    after = clients.since(back)
    assert any(login.served_by == "a" for login in after), "node a served nothing once back"

    # Every token, whichever node signed it, is the KMS key's and valid on both nodes.
    for login in logins:
        under_test.assert_kms_signed(login.token, realm)
    from_restarted_a = next(login.token for login in after if login.served_by == "a")
    from_b_during_outage = retried[0].token
    assert under_test.introspection_active(b, realm.name, from_restarted_a)
    assert under_test.introspection_active(a, realm.name, from_b_during_outage)
    assert kms_jws.Jws.parse(from_restarted_a).header["kid"] == realm.kid
    print(
        f"{len(logins)} logins: {len(before)} before the kill, {len(outage)} while node a was "
        f"down or starting ({len(retried)} retried on b; start took {back - restarting:.0f}s), "
        f"{len(after)} after; none failed"
    )
