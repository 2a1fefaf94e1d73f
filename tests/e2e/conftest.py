"""Session fixtures: one KMS emulator, one Keycloak (started once), realms built on demand.

Run through scripts/test.sh, or directly after scripts/setup.sh and scripts/build.sh:
    ~/.cache/keycloak-aws-kms/venv/bin/python -m pytest tests/e2e
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

# tests/tools holds the token verification shared with the demo.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import harness  # noqa: E402
import kms_jws  # noqa: E402
import realms  # noqa: E402
from harness import Admin, Emulator, Keycloak, create_kms_key  # noqa: E402

# Key spec per algorithm: every RSA size and every curve is covered once.
KEY_SPECS = {
    "RS256": "RSA_2048",
    "RS384": "RSA_3072",
    "RS512": "RSA_4096",
    "PS256": "RSA_2048",
    "PS384": "RSA_3072",
    "PS512": "RSA_2048",
    "ES256": "ECC_NIST_P256",
    "ES384": "ECC_NIST_P384",
    "ES512": "ECC_NIST_P521",
}
ALGORITHMS = list(KEY_SPECS)

# The running processes, for the failure report hook below.
_running: dict[str, Any] = {}


# --- reporting --------------------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


_log_offset = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    keycloak: Optional[Keycloak] = _running.get("keycloak")
    item.stash[_log_offset] = keycloak.log_size() if keycloak else 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        keycloak: Optional[Keycloak] = _running.get("keycloak")
        if keycloak is not None:
            report.sections.append(
                (
                    f"Keycloak log during this test ({keycloak.log_path})",
                    harness.tail(keycloak.log_path, 120, item.stash.get(_log_offset, 0)),
                )
            )
        emulator: Optional[Emulator] = _running.get("emulator")
        if emulator is not None:
            report.sections.append(
                (f"kms-emulator log tail ({emulator.log_path})", harness.tail(emulator.log_path, 30))
            )
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _summary:
        terminalreporter.write_line(line)


# Lines for the end of the run (Keycloak startup time, log locations).
_summary: list[str] = []


# --- processes --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def setup_env() -> dict[str, str]:
    return harness.setup_env()


@dataclass(frozen=True)
class AwsIdentities:
    """The identities the emulator knows besides its main access key (all made up per session).

    - `ambient_*`: Keycloak's process environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), i.e.
      what credentials mode `default` finds; no component stores it.
    - `no_sign_*`: an access key that may DescribeKey and GetPublicKey but not Sign.
    - `signer_role_arn`: a role whose AssumeRole needs `signer_external_id`.
    - `no_sign_role_arn`: a role that anyone may assume, whose sessions may not Sign.
    - `unknown_role_arn`: a role the emulator does not have, so AssumeRole is refused.
    """

    account_id: str
    ambient_access_key_id: str
    ambient_secret_access_key: str
    no_sign_access_key_id: str
    no_sign_secret_access_key: str
    signer_role_arn: str
    signer_external_id: str
    no_sign_role_arn: str
    unknown_role_arn: str

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret here: none may ever appear in a response or in the Keycloak log."""
        return (
            self.ambient_secret_access_key,
            self.no_sign_secret_access_key,
            self.signer_external_id,
        )

    def emulator_credentials(self) -> tuple[str, ...]:
        return (
            f"{self.ambient_access_key_id}:{self.ambient_secret_access_key}",
            f"{self.no_sign_access_key_id}:{self.no_sign_secret_access_key}:deny=Sign",
        )

    def emulator_roles(self) -> tuple[str, ...]:
        return (
            f"{self.signer_role_arn}:external-id={self.signer_external_id}",
            f"{self.no_sign_role_arn}:deny=Sign",
        )


@pytest.fixture(scope="session")
def aws_identities() -> AwsIdentities:
    account = "111122223333"  # the emulator's default account
    return AwsIdentities(
        account_id=account,
        ambient_access_key_id="AKIAAMBIENT" + secrets.token_hex(4).upper(),
        ambient_secret_access_key="ambient-secret-" + secrets.token_urlsafe(24),
        no_sign_access_key_id="AKIANOSIGN" + secrets.token_hex(4).upper(),
        no_sign_secret_access_key="no-sign-secret-" + secrets.token_urlsafe(24),
        signer_role_arn=f"arn:aws:iam::{account}:role/e2e-signer",
        signer_external_id="ext-" + secrets.token_hex(12),
        no_sign_role_arn=f"arn:aws:iam::{account}:role/e2e-no-sign",
        unknown_role_arn=f"arn:aws:iam::{account}:role/e2e-nobody-has-this-role",
    )


@pytest.fixture(scope="session")
def emulator(
    tmp_path_factory: pytest.TempPathFactory, aws_identities: AwsIdentities
) -> Iterator[Emulator]:
    """The KMS emulator (and STS), with credentials and roles made up for this session."""
    workdir = tmp_path_factory.mktemp("kms-emulator")
    started = Emulator.start(
        workdir / "kms-emulator.log",
        access_key_id="AKIAE2E" + secrets.token_hex(6).upper(),
        secret_access_key="e2e-secret-" + secrets.token_urlsafe(24),
        extra_credentials=aws_identities.emulator_credentials(),
        roles=aws_identities.emulator_roles(),
    )
    _running["emulator"] = started
    _summary.append(f"kms-emulator log: {started.log_path}")
    yield started
    _running.pop("emulator", None)
    started.stop()


@pytest.fixture(scope="session")
def kms(emulator: Emulator):
    """A boto3 KMS client for the emulator."""
    return emulator.kms_client()


@dataclass(frozen=True)
class StartupImport:
    """A realm whose aws-kms key is imported by `--import-realm` when Keycloak starts."""

    realm: str
    alg: str
    key_spec: str
    alias: str
    key_arn: str
    spki: bytes
    login: realms.Login

    @property
    def kid(self) -> str:
        return kms_jws.kid_of_spki(self.spki)


STARTUP_IMPORT_REALM = "startup-import"


@pytest.fixture(scope="session")
def startup_import(kms, emulator: Emulator, login: realms.Login) -> StartupImport:
    alg = "ES384"
    alias = f"alias/e2e-{STARTUP_IMPORT_REALM}"
    key_arn, spki = create_kms_key(kms, KEY_SPECS[alg], alias)
    return StartupImport(
        realm=STARTUP_IMPORT_REALM,
        alg=alg,
        key_spec=KEY_SPECS[alg],
        alias=alias,
        key_arn=key_arn,
        spki=spki,
        login=login,
    )


# The session's Keycloak is a single-tenant server as far as the aws-kms server policy goes: the
# tests use the server's own AWS identity (credentials mode `default`) in many realms, and one KMS
# key in several realms. The default policy is tested on a Keycloak of its own
# (signing/test_security_policy.py).
SESSION_SERVER_POLICY = (
    "--spi-keys--aws-kms--ambient-identity-realms=*",
    "--spi-keys--aws-kms--key-shared-across-realms=true",
)


@pytest.fixture(scope="session")
def keycloak(
    setup_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    emulator: Emulator,
    aws_identities: AwsIdentities,
    startup_import: StartupImport,
) -> Iterator[Keycloak]:
    """One Keycloak for the whole session, with the provider JAR in providers/.

    Started with the file vault on a directory tests write secrets into, with the emulator's
    "ambient" credentials in its environment (what credentials mode `default` finds), and with
    one aws-kms realm imported at startup (`--import-realm`)."""
    jar = harness.provider_jar()
    workdir = tmp_path_factory.mktemp("keycloak")
    imported = realms.realm(
        startup_import.realm,
        startup_import.alg,
        startup_import.login,
        key_providers=[
            realms.emulator_component(
                "aws-kms-at-startup", startup_import.alg, startup_import.alias, emulator
            )
        ],
    )
    started = Keycloak.start(
        Path(setup_env["KEYCLOAK_DIST_TGZ"]),
        Path(setup_env["KEYCLOAK_JAVA_HOME"]),
        workdir,
        [jar],
        extra_env={
            "AWS_ACCESS_KEY_ID": aws_identities.ambient_access_key_id,
            "AWS_SECRET_ACCESS_KEY": aws_identities.ambient_secret_access_key,
        },
        vault_dir=workdir / "vault",
        import_realms=(imported,),
        # Keycloak's metrics endpoint, which tests/e2e/operations scrapes for the aws-kms meters.
        extra_args=(*SESSION_SERVER_POLICY, "--metrics-enabled=true"),
    )
    _summary.append(
        f"Keycloak {setup_env['KEYCLOAK_VERSION']} (JAVA_HOME {setup_env['KEYCLOAK_JAVA_HOME']}) "
        f"was ready in {started.startup_seconds:.0f}s; log: {started.log_path}"
    )
    _running["keycloak"] = started
    yield started
    _running.pop("keycloak", None)
    started.stop()


@pytest.fixture(scope="session")
def admin(keycloak: Keycloak) -> Admin:
    return Admin(keycloak.base_url)


@pytest.fixture(scope="session")
def login() -> realms.Login:
    return realms.Login(
        client_id="e2e-client",
        client_secret="client-" + secrets.token_urlsafe(18),
        username="alice",
        password="pw-" + secrets.token_urlsafe(12),
    )


# --- realms whose signing key lives in the emulator ---------------------------------------------


@dataclass(frozen=True)
class KmsRealm:
    name: str
    alg: str
    key_spec: str
    alias: str
    key_arn: str
    spki: bytes
    kid: str
    component_id: str
    login: realms.Login

    @property
    def public_key(self) -> kms_jws.PublicKey:
        return kms_jws.load_spki(self.spki)


@pytest.fixture(scope="session")
def make_kms_realm(
    kms, emulator: Emulator, admin: Admin, login: realms.Login
) -> Callable[..., KmsRealm]:
    """Creates (once per name) a realm whose `alg` key is an aws-kms component on a new KMS key."""
    made: dict[str, KmsRealm] = {}

    def make(alg: str, name: Optional[str] = None) -> KmsRealm:
        name = name or f"kms-{alg.lower()}"
        if name in made:
            return made[name]
        alias = f"alias/e2e-{name}"
        key_arn, spki = create_kms_key(kms, KEY_SPECS[alg], alias)
        component = realms.emulator_component(f"aws-kms-{alg.lower()}", alg, alias, emulator)
        admin.create_realm(realms.realm(name, alg, login, key_providers=[component]))
        ours = [c for c in admin.key_providers(name) if c["providerId"] == realms.AWS_KMS_PROVIDER_ID]
        assert len(ours) == 1, f"expected one aws-kms component in realm {name}, got {ours}"
        made[name] = KmsRealm(
            name=name,
            alg=alg,
            key_spec=KEY_SPECS[alg],
            alias=alias,
            key_arn=key_arn,
            spki=spki,
            kid=kms_jws.kid_of_spki(spki),
            component_id=ours[0]["id"],
            login=login,
        )
        return made[name]

    return make


@pytest.fixture(params=ALGORITHMS)
def kms_realm(request: pytest.FixtureRequest, make_kms_realm) -> KmsRealm:
    """One realm per algorithm (parametrised), created on first use and kept for the session."""
    return make_kms_realm(request.param)


@pytest.fixture(scope="session")
def make_realm(admin: Admin, login: realms.Login) -> Callable[..., str]:
    """Creates a realm (POST /admin/realms) signing with `alg` by default, whose key providers are
    `components` plus the generated HMAC and AES keys; asserts 201 and returns its name."""

    def make(name: str, alg: str, components: list[dict[str, Any]]) -> str:
        admin.create_realm(realms.realm(name, alg, login, key_providers=components))
        return name

    return make


@pytest.fixture
def faults(emulator: Emulator) -> Iterator[Emulator]:
    """The emulator, with faults cleared again after the test whatever happens."""
    yield emulator
    emulator.clear_faults()
