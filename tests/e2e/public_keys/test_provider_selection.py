"""Which public key storage a process runs: ours by default once the JAR is installed,
Keycloak's when selected explicitly (README)."""

from __future__ import annotations

from typing import Any

from .server_under_test import NATIVE_LRU, ServerUnderTest


def _default_by_order(providers: dict[str, Any]) -> str:
    """Keycloak's choice when no provider is named: the highest order, if above 0."""
    orders = {provider: details.get("order", 0) for provider, details in providers.items()}
    chosen = max(orders, key=orders.__getitem__)
    assert orders[chosen] > 0, f"no provider orders above 0: {orders}"
    return chosen


def test_the_process_runs_the_public_key_storage_it_was_started_with(
    server: ServerUnderTest,
) -> None:
    providers = server.server_info()["providers"]
    storage = providers["publicKeyStorage"]["providers"]
    if server.provider == NATIVE_LRU:
        assert _default_by_order(storage) == NATIVE_LRU, storage
    else:
        # A provider named explicitly is the only one Keycloak loads.
        assert set(storage) == {server.provider}, sorted(storage)
    # "Clear keys cache" goes through the JAR's provider in both processes (not named).
    assert _default_by_order(providers["publicKeyCache"]["providers"]) == NATIVE_LRU
