"""The unknown-kid window of native-lru is per node: under a flood of assertions with made-up kids
through both nodes, each node downloads a client's JWKS at most once per window, so a cluster of
N nodes costs the JWKS endpoint at most N downloads per window (README, docs/public-key-cache.md).
The nodes run with a short window here, so that the flood spans several."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest
import requests

from public_keys.client_keys import client_credentials, jwks, random_kid, rsa_key

from .scenarios import ClusterUnderTest

WINDOW_SECONDS = 2
NODES = 2
# The flood: this many assertions with made-up kids, from this many threads, half to each node,
# paced over about FLOOD_SECONDS (several windows).
FLOOD_ASSERTIONS = 600
FLOOD_THREADS = 6
FLOOD_SECONDS = 8.0
# Downloads are timed when they reach the JWKS server, a request's latency after the node's
# clock started its window: intervals this much shorter than a window are counted.
ARRIVAL_JITTER_SECONDS = 0.5
REALM = "cluster-flood"


@pytest.fixture(scope="module")
def realm(under_test: ClusterUnderTest) -> str:
    under_test.plain_realm(REALM)
    return REALM


class DownloadClock:
    """Times each request the endpoint receives (its count, read every 10 ms)."""

    def __init__(self, endpoint) -> None:
        self._endpoint = endpoint
        self.times: list[float] = []
        self._seen = endpoint.requests
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="download-clock", daemon=True)

    def __enter__(self) -> "DownloadClock":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read()

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self._read()

    def _read(self) -> None:
        count = self._endpoint.requests
        now = time.monotonic()
        self.times.extend([now] * (count - self._seen))
        self._seen = count

    def most_in_any_window(self, window: float) -> int:
        """The most downloads within any interval of length `window`."""
        times = sorted(self.times)
        most, first = 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= window:
                first += 1
            most = max(most, last - first + 1)
        return most


def test_a_flood_of_unknown_kids_through_both_nodes_costs_at_most_one_download_per_window_per_node(
    under_test: ClusterUnderTest, realm: str
) -> None:
    nodes = (under_test.a, under_test.b)
    legitimate = rsa_key("flood-legit")
    endpoint = under_test.jwks_endpoint("flood")
    endpoint.serve_keys(jwks(legitimate))
    under_test.add_jwt_client(realm, "flooded", endpoint)
    for node in nodes:
        under_test.assert_authenticates(node, realm, "flooded", legitimate, "(warm-up)")
    issuer = under_test.cluster.realm_issuer(realm)
    bogus = [legitimate.assertion("flooded", issuer, random_kid()) for _ in range(FLOOD_ASSERTIONS)]
    # The warm-up's window over, the flood's first unknown kid on each node may download at once.
    time.sleep(WINDOW_SECONDS + ARRIVAL_JITTER_SECONDS)
    downloads_before = endpoint.requests
    statuses: list[int] = []
    legitimate_answers: list[int] = []

    def send_bogus(thread_index: int) -> list[int]:
        answers = []
        with requests.Session() as session:
            for index in range(thread_index, FLOOD_ASSERTIONS, FLOOD_THREADS):
                delay = started + FLOOD_SECONDS * index / FLOOD_ASSERTIONS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                node = nodes[index % NODES]
                response = client_credentials(node.token_url(realm), bogus[index], session)
                answers.append(response.status_code)
        return answers

    with DownloadClock(endpoint) as clock:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(FLOOD_THREADS) as pool:
            flooders = [pool.submit(send_bogus, index) for index in range(FLOOD_THREADS)]
            # A real client keeps authenticating on both nodes during the flood.
            while not all(flooder.done() for flooder in flooders) and len(legitimate_answers) < 200:
                for node in nodes:
                    legitimate_answers.append(
                        under_test.authenticate(node, realm, "flooded", legitimate).status_code
                    )
                time.sleep(0.25)
            statuses = [status for flooder in flooders for status in flooder.result()]
        elapsed = time.monotonic() - started

    downloads = endpoint.requests - downloads_before
    windows = int(elapsed // WINDOW_SECONDS) + 1
    assert len(statuses) == FLOOD_ASSERTIONS
    assert set(statuses) <= {400, 401}, f"unknown kids must fail as client errors: {set(statuses)}"
    assert legitimate_answers and set(legitimate_answers) == {200}, (
        f"legitimate assertions during the flood: {legitimate_answers}"
    )
    most = clock.most_in_any_window(WINDOW_SECONDS - ARRIVAL_JITTER_SECONDS)
    assert most <= NODES, (
        f"{most} JWKS downloads within one {WINDOW_SECONDS}s window from {NODES} nodes: "
        f"more than one per window per node (download times {clock.times})"
    )
    assert downloads <= NODES * windows, (
        f"{downloads} downloads in {elapsed:.1f}s, more than {NODES} per {WINDOW_SECONDS}s window"
    )
    print(
        f"{FLOOD_ASSERTIONS} unknown kids through {NODES} nodes in {elapsed:.1f}s "
        f"({windows} windows of {WINDOW_SECONDS}s): {downloads} JWKS downloads, at most {most} "
        f"in one window; {len(legitimate_answers)} legitimate assertions accepted"
    )
