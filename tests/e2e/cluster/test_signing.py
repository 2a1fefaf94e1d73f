"""Two nodes sign with one aws-kms provider: each node's tokens verify against the KMS public key
and on the other node, both publish the same keys, and a provider changed through one node is
what the other signs with on its next request."""

from __future__ import annotations

import kms_jws
from signing.checks import key_entry, save_component

from .scenarios import ClusterUnderTest


def test_both_nodes_sign_with_the_one_aws_kms_provider_and_accept_each_others_tokens(
    under_test: ClusterUnderTest,
) -> None:
    realm = under_test.kms_realm("cluster-signing")
    a, b = under_test.a, under_test.b
    under_test.emulator.reset_stats()

    from_a = under_test.issue_tokens(a, realm.name)
    from_b = under_test.issue_tokens(b, realm.name)

    # Access and ID token on each node, one KMS Sign each; node b built the provider from the
    # stored key material, without asking KMS anything else.
    assert under_test.emulator.calls() == {"Sign": 4}
    for tokens in (from_a, from_b):
        for name in ("access_token", "id_token"):
            under_test.assert_kms_signed(tokens[name], realm)
    assert under_test.introspection_active(b, realm.name, from_a["access_token"])
    assert under_test.introspection_active(a, realm.name, from_b["access_token"])

    certs_a, certs_b = a.certs(realm.name), b.certs(realm.name)
    assert certs_a == certs_b, "the nodes publish different keys"
    assert realm.kid in {key["kid"] for key in certs_a["keys"]}


def test_a_provider_rotated_on_node_a_signs_node_bs_next_token_and_the_old_key_stays_published(
    under_test: ClusterUnderTest,
) -> None:
    realm = under_test.kms_realm("cluster-rotation")
    a, b, admin_a = under_test.a, under_test.b, under_test.admin_a
    before = under_test.issue_tokens(b, realm.name)
    under_test.assert_kms_signed(before["access_token"], realm)

    # The runbook, through node a: the new key active with a higher priority, the old passive.
    new_alias = "alias/e2e-cluster-rotation-new"
    new_spki = under_test.kms_key(new_alias)
    new_id = save_component(
        admin_a, realm.name, under_test.kms_component("aws-kms-new", "RS256", new_alias, 300)
    )
    old = admin_a.component(realm.name, realm.component_id).json()
    old["config"]["active"] = ["false"]
    response = admin_a.update_component(realm.name, realm.component_id, old)
    assert response.status_code == 204, response.text

    # Node b's very next request.
    after = under_test.issue_tokens(b, realm.name)
    for name in ("access_token", "id_token"):
        under_test.assert_kms_signed(after[name], realm, new_spki)
    admin_b = under_test.admin_b
    assert key_entry(admin_b, realm.name, new_id)["status"] == "ACTIVE"
    assert key_entry(admin_b, realm.name, realm.component_id)["status"] == "PASSIVE"
    published = {key["kid"] for key in b.certs(realm.name)["keys"]}
    assert {realm.kid, kms_jws.kid_of_spki(new_spki)} <= published
    assert b.certs(realm.name) == a.certs(realm.name)
    # Tokens signed before the rotation still verify on both nodes.
    assert under_test.introspection_active(b, realm.name, before["access_token"])
    assert under_test.introspection_active(a, realm.name, before["access_token"])


def test_a_provider_saved_again_on_node_a_with_another_kms_key_signs_with_that_key_on_node_b(
    under_test: ClusterUnderTest,
) -> None:
    realm = under_test.kms_realm("cluster-resave")
    a, b, admin_a = under_test.a, under_test.b, under_test.admin_a
    under_test.assert_kms_signed(under_test.issue_tokens(b, realm.name)["access_token"], realm)

    other_alias = "alias/e2e-cluster-resave-other"
    other_spki = under_test.kms_key(other_alias)
    component = admin_a.component(realm.name, realm.component_id).json()
    component["config"]["kmsKeyId"] = [other_alias]
    response = admin_a.update_component(realm.name, realm.component_id, component)
    assert response.status_code == 204, response.text

    tokens = under_test.issue_tokens(b, realm.name)
    for name in ("access_token", "id_token"):
        under_test.assert_kms_signed(tokens[name], realm, other_spki)
    published = {key["kid"] for key in b.certs(realm.name)["keys"]}
    assert kms_jws.kid_of_spki(other_spki) in published and realm.kid not in published
    assert b.certs(realm.name) == a.certs(realm.name)

