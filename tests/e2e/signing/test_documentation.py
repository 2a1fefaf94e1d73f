"""The IAM policies of docs/iam.md are what the provider needs: saving a provider and signing a
token in each credentials mode makes exactly the calls those policies allow, no fewer and no more
(against the KMS emulator's own request counts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import realms
from harness import create_kms_key

from .checks import assert_signed_by, issue_tokens

IAM_DOC = Path(__file__).resolve().parents[3] / "docs" / "iam.md"
POLICY_BLOCK = re.compile(r"<!-- policy: ([a-z-]+) -->\s*```json\n(.*?)```", re.S)
# Which documented policies together grant what a provider of each credentials mode does.
POLICIES_OF_MODE = {
    "default": ("signer-identity", "key-policy-statement"),
    "access-key": ("signer-identity", "key-policy-statement"),
    "assume-role": ("assuming-identity", "role-trust", "signer-identity", "key-policy-statement"),
}


def documented_policies() -> dict[str, dict]:
    return {name: json.loads(body) for name, body in POLICY_BLOCK.findall(IAM_DOC.read_text())}


def actions(policy: dict) -> set[str]:
    statements = policy.get("Statement", [policy])
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def test_every_documented_policy_is_a_well_formed_allow_policy():
    policies = documented_policies()
    assert set(policies) == {name for names in POLICIES_OF_MODE.values() for name in names}, policies.keys()
    for name, policy in policies.items():
        statements = policy.get("Statement", [policy])
        if "Statement" in policy:
            assert policy["Version"] == "2012-10-17", name
        for statement in statements:
            assert statement["Effect"] == "Allow", name
            # An identity policy names the resource; a key or trust policy names the principal.
            assert "Resource" in statement or "Principal" in statement, name
            assert all(a.startswith(("kms:", "sts:")) for a in actions({"Statement": [statement]})), name


@pytest.mark.parametrize("mode", list(POLICIES_OF_MODE))
def test_a_save_and_a_signed_token_make_exactly_the_calls_the_documented_policies_allow(
    keycloak, kms, emulator, aws_identities, make_realm, login, mode
):
    realm = f"documented-iam-{mode}"
    alias = f"alias/e2e-documented-iam-{mode}"
    _, spki = create_kms_key(kms, "RSA_2048", alias)
    credentials = {
        "default": realms.default_credentials(),
        "access-key": realms.access_key_credentials(emulator.access_key_id, emulator.secret_access_key),
        "assume-role": realms.assume_role_credentials(
            aws_identities.signer_role_arn,
            emulator.sts_url,
            external_id=aws_identities.signer_external_id,
            access_key_id=emulator.access_key_id,
            secret_access_key=emulator.secret_access_key,
        ),
    }[mode]
    emulator.reset_stats()

    make_realm(realm, "RS256", [realms.kms_component("documented", "RS256", alias, emulator.kms_url, credentials)])
    tokens = issue_tokens(keycloak, realm, login)

    assert_signed_by(keycloak, realm, tokens["access_token"], "RS256", spki)
    service = {"AssumeRole": "sts"}
    called = {f"{service.get(operation, 'kms')}:{operation}" for operation in emulator.calls()}
    policies = documented_policies()
    allowed = set().union(*(actions(policies[name]) for name in POLICIES_OF_MODE[mode]))
    assert called == allowed, f"called {sorted(called)}, docs/iam.md allows {sorted(allowed)}"


ROOT = IAM_DOC.parents[1]
DOCUMENTS = ("README.md", "BENCHMARKS.md", "RELIABILITY.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
SHELL_BLOCK = re.compile(r"```(?:sh|bash|console)\n(.*?)```", re.S)
# Each command the documentation shows (by its start) and what runs it: a file of the project and
# a text in it that shows it runs that command, or, for commands no test can run here, why not.
COMMANDS_RUN_BY = {
    "./scripts/demo.sh": ("scripts/demo.sh", "tests/tools/verify_token.py"),  # the demo itself
    "./scripts/test.sh": (".ci/run", "./scripts/test.sh"),
    "./scripts/build.sh": ("scripts/test.sh", "scripts/build.sh"),
    "cp java/target/keycloak-aws-kms-*.jar $KEYCLOAK_HOME/providers/": ("tests/e2e/harness.py", 'home / "providers"'),
    "$KEYCLOAK_HOME/bin/kc.sh build": ("tests/e2e/cluster/cluster_harness.py", 'self.run("build")'),
    "kc.sh start --spi-keys--aws-kms--": (
        "java/src/test/java/dev/awskms/keycloak/signing/SecurityPolicyTest.java", "theDocumentedExamplesAreAccepted"),
    "kc.sh start --spi-public-key-storage--provider=native-lru": (
        "tests/e2e/public_keys/server_under_test.py", "Ours is not named: once the JAR is installed it is the default"),
    "kc.sh start --spi-public-key-storage--provider=infinispan": (
        "tests/e2e/public_keys/server_under_test.py", '"--spi-public-key-storage--provider=infinispan"'),
    "~/.cache/keycloak-aws-kms/venv/bin/python -m pytest tests/e2e": ("scripts/test.sh", "-m pytest tests/e2e"),
    "set -a; . ~/.cache/keycloak-aws-kms/setup.env; set +a": ("scripts/test.sh", '. "$AWSKMS_SETUP_ENV"'),
    "scripts/fuzz.sh": ("scripts/test.sh", "stage_fuzz-smoke"),
    "cargo +nightly fuzz run": (None, "reproduces a fuzz finding by hand (RELIABILITY.md)"),
    "scripts/bench/": (None, "benchmarks are run by hand, never in tests (BENCHMARKS.md)"),
    "./scripts/bench.sh": (None, "benchmarks are run by hand, never in tests (BENCHMARKS.md)"),
    "scripts/bench.sh": (None, "benchmarks are run by hand, never in tests (BENCHMARKS.md)"),
    "scripts/soak.sh": (None, "the soak is run by hand, never in tests (RELIABILITY.md)"),
    "BENCH_": (None, "benchmarks are run by hand, never in tests (BENCHMARKS.md)"),
    "cargo install --locked cargo-audit": (None, "no advisory database is reachable from the build machines (README)"),
    "cargo audit": (None, "no advisory database is reachable from the build machines (README)"),
}


def documented_commands() -> list[tuple[str, str]]:
    """Every command line of the documents' shell blocks, continuation lines joined."""
    commands = []
    for document in DOCUMENTS:
        for block in SHELL_BLOCK.findall((ROOT / document).read_text()):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                command = " ".join(line.split("  #", 1)[0].split())
                if command and not command.startswith("#"):
                    commands.append((document, command))
    return commands


def test_every_command_in_the_docs_is_run_by_a_test_or_the_demo_or_says_why_not():
    commands = documented_commands()
    assert any(command.startswith("./scripts/demo.sh") for _, command in commands)
    for document, command in commands:
        runners = [runner for start, runner in COMMANDS_RUN_BY.items() if command.startswith(start)]
        assert runners, f"{document}: nothing runs `{command}`; add it to a test and to COMMANDS_RUN_BY"
        path, witness = runners[0]
        if path is not None:
            assert witness in (ROOT / path).read_text(), f"{path} no longer runs `{command}` ({witness!r})"
