"""The secret access key is write-only: masked when read back, never logged."""

from __future__ import annotations

import pytest

from .checks import component_config


def test_the_secret_access_key_is_masked_when_the_component_is_read_back(
    admin, emulator, make_kms_realm
):
    kms_realm = make_kms_realm("RS256")
    secret = emulator.secret_access_key

    one = admin.component(kms_realm.name, kms_realm.component_id)
    listed = admin.checked("GET", f"/{kms_realm.name}/components", 200)
    exported = admin.checked(
        "POST", f"/{kms_realm.name}/partial-export", 200, params={"exportClients": "false"}
    )

    config = component_config(one.json())
    assert config["accessKeyId"] == emulator.access_key_id
    assert config["secretAccessKey"] not in ("", secret), "the secret must be masked, not dropped"
    assert set(config["secretAccessKey"]) == {"*"}, config["secretAccessKey"]
    for response in (one, listed, exported):
        assert secret not in response.text, f"the secret access key is in {response.url}"


@pytest.mark.last
def test_the_secret_access_key_never_appears_in_the_keycloak_log(keycloak, emulator, make_kms_realm):
    # Runs last, after the faults and validation failures have been logged too.
    make_kms_realm("RS256")
    log = keycloak.log_text()

    assert "Listening on: " + keycloak.base_url in log, "not the log of the Keycloak under test"
    assert emulator.secret_access_key not in log, f"the secret access key is in {keycloak.log_path}"
