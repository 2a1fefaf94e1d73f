"""Clients that authenticate with signed JWTs (client-jwt) whose keys come from a jwks.url."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import replace

import pytest
import requests

import harness

from .client_keys import ec_key, ed25519_key, jwks, random_kid, rsa_key
from .jwks_server import jwks_response
from .server_under_test import WINDOW_SECONDS, ServerUnderTest

REALM = "client-jwks"

# The flood: this many assertions with made-up kids, from this many threads, paced to about
# FLOOD_SECONDS (Keycloak may take longer on a busy machine; nothing here is timed).
FLOOD_ASSERTIONS = 1000
FLOOD_THREADS = 8
FLOOD_SECONDS = 5.0
CONCURRENT_FIRST_REQUESTS = 10


@pytest.fixture(scope="module")
def realm(server: ServerUnderTest) -> str:
    server.create_realm(REALM)
    return REALM


def test_a_jwks_url_client_authenticates_and_a_rotated_kid_works_on_first_use_after_the_window(
    server: ServerUnderTest, realm: str
) -> None:
    first = rsa_key("rsa-1")
    for_encryption = rsa_key("rsa-enc", use="enc")
    client = server.jwt_client(realm, "rotating", jwks(first, for_encryption))

    client.assert_authenticates(first, "(first use: downloads the JWKS)")
    client.assert_authenticates(first, "(second use)")
    assert client.endpoint.requests == 1, "a known kid must be served from the cache"
    log_offset = server.keycloak.log_size()
    client.assert_refused(for_encryption, what="(a key published for encryption, not signing)")
    # Keycloak's diagnostic for an unknown kid names it and the kids there are.
    diagnostics = [
        line
        for line in harness.tail(server.keycloak.log_path, 500, log_offset).splitlines()
        if "Available kids" in line and "rsa-enc" in line
    ]
    assert diagnostics and "rsa-1" in diagnostics[0], "no 'Available kids' line for rsa-enc"

    # Rotation: the old key goes, three of other kinds come (x5c on one of them).
    rotated = [rsa_key("rsa-2", with_x5c=True), ec_key("ec-1"), ed25519_key("ed-1")]
    client.endpoint.serve_keys(jwks(*rotated))
    server.wait_out_window(client.endpoint)
    downloads_before = client.endpoint.requests

    client.assert_authenticates(rotated[0], "(first use of the rotated kid after the window)")
    assert client.endpoint.requests == downloads_before + 1
    for key in rotated[1:]:
        client.assert_authenticates(key, "(from the set downloaded for the rotated kid)")
    assert client.endpoint.requests == downloads_before + 1
    client.assert_refused(first, what="(no longer published)")


def test_concurrent_first_requests_of_a_client_share_one_download(
    server: ServerUnderTest, realm: str
) -> None:
    key = rsa_key("shared-1")
    client = server.jwt_client(realm, "concurrent", jwks(key))
    # Slow enough for every request to arrive while the first download is still running.
    client.endpoint.serve(replace(jwks_response(jwks(key)), delay=1.0))
    with concurrent.futures.ThreadPoolExecutor(CONCURRENT_FIRST_REQUESTS) as pool:
        answers = list(
            pool.map(lambda _: client.authenticate(key), range(CONCURRENT_FIRST_REQUESTS))
        )
    refused = [(answer.status_code, answer.text[:200]) for answer in answers
               if answer.status_code != 200]
    assert not refused, (
        f"{len(refused)} of {len(answers)} concurrent first requests failed: {refused[:3]}"
    )
    assert client.endpoint.requests == 1, f"{client.endpoint.requests} downloads for one source"


def test_a_flood_of_unknown_kids_downloads_once_per_window_and_blocks_no_real_client_or_rotation(
    server: ServerUnderTest, realm: str
) -> None:
    legitimate = rsa_key("flood-legit-1")
    client = server.jwt_client(realm, "flooded", jwks(legitimate))
    client.assert_authenticates(legitimate, "(warm-up)")

    # Signed up front so that the flood is only HTTP; the signature is never looked at.
    bogus = [legitimate.assertion(client.client_id, client.audience, random_kid())
             for _ in range(FLOOD_ASSERTIONS)]
    rotated = rsa_key("flood-legit-2")
    downloads_before = client.endpoint.requests
    started = time.monotonic()
    flood_over = threading.Event()
    legitimate_answers: list[tuple[int, str]] = []

    def send_bogus(thread_index: int) -> list[int]:
        statuses = []
        with requests.Session() as session:
            for index in range(thread_index, FLOOD_ASSERTIONS, FLOOD_THREADS):
                # Paced: assertion i goes out no earlier than i/N of FLOOD_SECONDS.
                delay = started + FLOOD_SECONDS * index / FLOOD_ASSERTIONS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                statuses.append(client.authenticate_with(bogus[index], session).status_code)
        return statuses

    def send_legitimate() -> None:
        with requests.Session() as session:
            while not flood_over.is_set():
                response = client.authenticate(legitimate, session=session)
                legitimate_answers.append((response.status_code, response.text[:300]))
                flood_over.wait(0.1)

    with concurrent.futures.ThreadPoolExecutor(FLOOD_THREADS + 1) as pool:
        legitimate_sender = pool.submit(send_legitimate)
        flooders = [pool.submit(send_bogus, index) for index in range(FLOOD_THREADS)]

        # A real rotation in the middle of the flood: its first use after a window succeeds.
        time.sleep(1.0)
        client.endpoint.serve_keys(jwks(legitimate, rotated))
        time.sleep(server.window_with_margin)
        rotation_answer = client.authenticate(rotated)

        bogus_statuses = [status for flooder in flooders for status in flooder.result()]
        flood_over.set()
        legitimate_sender.result()
    elapsed = time.monotonic() - started
    downloads = client.endpoint.requests - downloads_before

    assert rotation_answer.status_code == 200, (
        f"the rotated kid was refused during the flood: {rotation_answer.status_code} "
        f"{rotation_answer.text[:300]}"
    )
    failed_legitimate = [answer for answer in legitimate_answers if answer[0] != 200]
    assert legitimate_answers and not failed_legitimate, (
        f"{len(failed_legitimate)} of {len(legitimate_answers)} legitimate assertions failed "
        f"during the flood, e.g. {failed_legitimate[:3]}"
    )
    assert len(bogus_statuses) == FLOOD_ASSERTIONS
    unexpected = {status for status in bogus_statuses if status not in (400, 401)}
    assert not unexpected, f"unknown kids must fail as client errors, got statuses {unexpected}"
    allowed = int(elapsed // WINDOW_SECONDS) + 1
    assert downloads <= allowed, (
        f"{downloads} JWKS downloads in {elapsed:.1f}s of flood, more than one per "
        f"{WINDOW_SECONDS}s window ({allowed})"
    )
    print(
        f"[{server.provider}] {FLOOD_ASSERTIONS} unknown kids in {elapsed:.1f}s: "
        f"{downloads} JWKS downloads, {len(legitimate_answers)} legitimate assertions accepted"
    )
