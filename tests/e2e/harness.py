"""Processes and HTTP clients for the end-to-end tests: the KMS emulator, a Keycloak distribution
started from the cached tarball, the admin REST API and the token endpoint.

Everything listens on loopback only, on ports chosen at run time.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import boto3
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
EMULATOR_BINARY = ROOT / "target" / "release" / "kms-emulator"
REGION = "us-east-1"
KEY_PROVIDER_TYPE = "org.keycloak.keys.KeyProvider"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"


def setup_env() -> dict[str, str]:
    """What scripts/setup.sh prepared: from the environment, else from its setup.env file."""
    wanted = ("KEYCLOAK_VERSION", "KEYCLOAK_DIST_TGZ", "KEYCLOAK_JAVA_HOME", "AWSKMS_VENV")
    values = {name: os.environ[name] for name in wanted if os.environ.get(name)}
    cache_dir = Path(
        os.environ.get("AWSKMS_CACHE_DIR") or Path.home() / ".cache" / "keycloak-aws-kms"
    )
    setup_file = cache_dir / "setup.env"
    if setup_file.is_file():
        for line in setup_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values.setdefault(name.strip(), value.strip())
    missing = [name for name in wanted if name not in values]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} unknown: run scripts/setup.sh first")
    return values


def provider_jar() -> Path:
    """The provider JAR built by scripts/build.sh (AWSKMS_PROVIDER_JAR overrides)."""
    if os.environ.get("AWSKMS_PROVIDER_JAR"):
        return Path(os.environ["AWSKMS_PROVIDER_JAR"])
    jars = [
        jar
        for jar in sorted((ROOT / "java" / "target").glob("keycloak-aws-kms-*.jar"))
        if not jar.name.endswith(("-sources.jar", "-javadoc.jar", "-tests.jar"))
    ]
    if len(jars) != 1:
        raise RuntimeError(
            f"expected one java/target/keycloak-aws-kms-*.jar, found {[j.name for j in jars]}: "
            "run scripts/build.sh"
        )
    return jars[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 80, start: int = 0) -> str:
    """The last `lines` lines of a file, reading from byte offset `start`."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _stop_process_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the process group, then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


# --- KMS emulator ---------------------------------------------------------------------------


@dataclass
class Emulator:
    """A running kms-emulator (contract: docs/design.md, "KMS emulator")."""

    process: subprocess.Popen
    kms_url: str
    control_url: str
    region: str
    keys: dict[str, str]
    access_key_id: str
    secret_access_key: str
    log_path: Path
    # STS AssumeRole is served on the KMS port; "" if the emulator does not announce it.
    sts_url: str = ""
    # The ARNs of the roles given with --role, as the emulator announced them.
    roles: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        log_path: Path,
        access_key_id: str,
        secret_access_key: str,
        create_keys: tuple[str, ...] = (),
        binary: Path = EMULATOR_BINARY,
        timeout: float = 30,
        extra_credentials: tuple[str, ...] = (),
        roles: tuple[str, ...] = (),
    ) -> "Emulator":
        """`extra_credentials` are more `--credentials AKID:SECRET[:deny=OP,…]` principals besides
        the main one; `roles` are `--role ARN[:external-id=X][:deny=OP,…]` values."""
        if not binary.is_file():
            raise RuntimeError(f"{binary} does not exist: run scripts/build.sh")
        args = [
            str(binary),
            "--listen", "127.0.0.1:0",
            "--control-listen", "127.0.0.1:0",
            "--region", REGION,
            "--credentials", f"{access_key_id}:{secret_access_key}",
        ]
        for principal in extra_credentials:
            args += ["--credentials", principal]
        for role in roles:
            args += ["--role", role]
        for spec in create_keys:
            args += ["--create-key", spec]
        log = log_path.open("ab")
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, start_new_session=True
        )
        log.close()
        first_line: queue.Queue[bytes] = queue.Queue()

        def pump() -> None:
            # The first line is the contract's JSON; the rest (if any) goes to the log.
            assert process.stdout is not None
            first_line.put(process.stdout.readline())
            with log_path.open("ab") as out:
                for line in process.stdout:
                    out.write(line)
                    out.flush()

        threading.Thread(target=pump, name="kms-emulator-stdout", daemon=True).start()
        try:
            line = first_line.get(timeout=timeout)
        except queue.Empty:
            _stop_process_group(process, 5)
            raise RuntimeError(
                f"kms-emulator printed no JSON line within {timeout}s\n{tail(log_path)}"
            ) from None
        try:
            info = json.loads(line)
        except ValueError:
            _stop_process_group(process, 5)
            raise RuntimeError(
                f"kms-emulator's first stdout line is not JSON: {line!r}\n{tail(log_path)}"
            ) from None
        emulator = cls(
            process=process,
            kms_url=info["kms"],
            control_url=info["control"],
            region=info["region"],
            keys=dict(info.get("keys") or {}),
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            log_path=log_path,
            sts_url=info.get("sts") or "",
            roles=list(info.get("roles") or []),
        )
        health = requests.get(f"{emulator.control_url}/health", timeout=5)
        if health.status_code != 200:
            emulator.stop()
            raise RuntimeError(f"kms-emulator GET /health: {health.status_code} {health.text}")
        return emulator

    def stop(self) -> None:
        _stop_process_group(self.process, 10)

    def kms_client(self):
        return boto3.client(
            "kms",
            endpoint_url=self.kms_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def _control(self, method: str, path: str, body: Any = None) -> requests.Response:
        response = requests.request(
            method, f"{self.control_url}{path}", json=body, timeout=10
        )
        if response.status_code >= 300:
            raise RuntimeError(
                f"kms-emulator {method} {path}: {response.status_code} {response.text}"
            )
        return response

    def stats(self) -> dict[str, Any]:
        """{"total": N, "calls": {"Sign": N, ...}} since the last reset."""
        return self._control("GET", "/stats").json()

    def calls(self) -> dict[str, int]:
        """Non-zero KMS operation counts since the last reset."""
        return {op: n for op, n in self.stats().get("calls", {}).items() if n}

    def reset_stats(self) -> None:
        self._control("POST", "/stats/reset")

    def set_faults(
        self,
        mode: str,
        latency_ms: int = 0,
        operations: Optional[list[str]] = None,
        count: Optional[int] = None,
    ) -> None:
        self._control(
            "PUT",
            "/faults",
            {"mode": mode, "latencyMs": latency_ms, "operations": operations or [], "count": count},
        )

    def clear_faults(self) -> None:
        self._control("DELETE", "/faults")

    def set_fault(self, fault: dict[str, Any]) -> None:
        """PUT /faults with a whole fault body (docs/design.md), e.g. `{"mode": "server-error",
        "status": 503, "operations": ["AssumeRole"], "count": 20}`."""
        self._control("PUT", "/faults", fault)

    def set_sts_session_seconds(self, seconds: Optional[int]) -> None:
        """Test knob: credentials AssumeRole issues from now on last `seconds` (None: as asked)."""
        if seconds is None:
            self._control("DELETE", "/sts")
        else:
            self._control("PUT", "/sts", {"sessionSeconds": seconds})


def create_kms_key(kms, key_spec: str, alias: str) -> tuple[str, bytes]:
    """Creates a SIGN_VERIFY key with an alias; returns its ARN and SPKI DER (via GetPublicKey)."""
    metadata = kms.create_key(
        KeySpec=key_spec, KeyUsage="SIGN_VERIFY", Description=f"e2e {alias}"
    )["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
    public = kms.get_public_key(KeyId=alias)
    assert public["KeyId"] == metadata["Arn"]
    assert public["KeySpec"] == key_spec
    return metadata["Arn"], public["PublicKey"]


# --- Keycloak ---------------------------------------------------------------------------------


def unpack_keycloak(dist_tgz: Path, workdir: Path, provider_jars: tuple[Path, ...] | list[Path]) -> Path:
    """Unpacks the distribution into `workdir` and copies the provider JARs into its
    `providers/`; returns the Keycloak home."""
    subprocess.run(["tar", "-xzf", str(dist_tgz), "-C", str(workdir)], check=True)
    homes = sorted(workdir.glob("keycloak-*/bin/kc.sh"))
    if len(homes) != 1:
        raise RuntimeError(f"{dist_tgz} did not unpack to one keycloak-*/bin/kc.sh")
    home = homes[0].parent.parent
    for jar in provider_jars:
        shutil.copy2(jar, home / "providers" / jar.name)
    return home


def _launch(args: list[str], home: Path, env: Optional[dict[str, str]], log_path: Path) -> subprocess.Popen:
    """Starts `kc.sh` in its own process group, appending its output to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class Keycloak:
    """A Keycloak distribution unpacked into a fresh directory and run with `kc.sh start-dev`."""

    process: subprocess.Popen
    home: Path
    base_url: str
    management_url: str
    log_path: Path
    startup_seconds: float = 0.0
    # Keycloak's files-plaintext vault (`--vault=file`), if started with one.
    vault_dir: Optional[Path] = None
    # What it was started with, for restart().
    command: tuple[str, ...] = ()
    environment: Optional[dict[str, str]] = None

    @classmethod
    def start(
        cls,
        dist_tgz: Path,
        java_home: Path,
        workdir: Path,
        provider_jars: list[Path],
        extra_args: tuple[str, ...] = (),
        timeout: float = 240,
        extra_env: Optional[dict[str, str]] = None,
        vault_dir: Optional[Path] = None,
        import_realms: tuple[dict[str, Any], ...] = (),
        log_level: str = "INFO,dev.awskms:debug",
        prebuilt_home: Optional[Path] = None,
    ) -> "Keycloak":
        """`extra_env` is added to the process environment after the AWS_/KC_ variables of this
        process are removed; `vault_dir` enables the file vault on that directory (secrets may be
        written there at any time, Keycloak reads them per lookup); `import_realms` are realm
        representations written to data/import and imported at startup (`--import-realm`);
        `log_level` is `--log-level` (benchmarks pass "INFO": no debug lines on hot paths).

        `prebuilt_home` (benchmarks): a home that `kc.sh build` already augmented with its
        providers and build options (`provider_jars` are then ignored); it is copied and run with
        `kc.sh start --optimized` over plain HTTP on loopback instead of `start-dev`, which skips
        the Quarkus build every start-dev makes."""
        if prebuilt_home is None:
            home = unpack_keycloak(dist_tgz, workdir, provider_jars)
            mode: tuple[str, ...] = ("start-dev",)
        else:
            home = workdir / prebuilt_home.name
            shutil.copytree(prebuilt_home, home, symlinks=True)
            mode = ("start", "--optimized", "--http-enabled=true", "--hostname-strict=false")
        http_port, management_port = free_port(), free_port()
        while management_port == http_port:
            management_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KC_", "KEYCLOAK_"))}
        env.update(
            JAVA_HOME=str(java_home),
            KC_BOOTSTRAP_ADMIN_USERNAME=ADMIN_USERNAME,
            KC_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
            # The provider must never reach for instance metadata or a developer's AWS profile.
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        env.update(extra_env or {})
        if import_realms:
            import_dir = home / "data" / "import"
            import_dir.mkdir(parents=True, exist_ok=True)
            for representation in import_realms:
                (import_dir / f"{representation['realm']}-realm.json").write_text(
                    json.dumps(representation, indent=2)
                )
            extra_args = (*extra_args, "--import-realm")
        if vault_dir is not None:
            vault_dir.mkdir(parents=True, exist_ok=True)
            extra_args = (*extra_args, "--vault=file", f"--vault-dir={vault_dir}")
        args = [
            str(home / "bin" / "kc.sh"),
            *mode,
            "--http-host=127.0.0.1",
            f"--http-port={http_port}",
            f"--http-management-port={management_port}",
            "--health-enabled=true",
            # Our package at DEBUG, so that the log check for secrets sees everything we log.
            f"--log-level={log_level}",
            *extra_args,
        ]
        log_path = workdir / "keycloak.log"
        keycloak = cls(
            process=_launch(args, home, env, log_path),
            home=home,
            base_url=f"http://127.0.0.1:{http_port}",
            management_url=f"http://127.0.0.1:{management_port}",
            log_path=log_path,
            vault_dir=vault_dir,
            command=tuple(args),
            environment=env,
        )
        keycloak._wait_until_ready(timeout)
        return keycloak

    def restart(self, options: dict[str, str], timeout: float = 240) -> None:
        """Stops this Keycloak and starts it again on the same home, data and ports, with each
        `--name` of `options` set to its value (replacing what it was started with, if anything)."""
        self.stop()
        kept = [a for a in self.command if a.split("=", 1)[0] not in options]
        self.command = (*kept, *(f"{name}={value}" for name, value in options.items()))
        self.process = _launch(list(self.command), self.home, self.environment, self.log_path)
        self._wait_until_ready(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Keycloak exited with {self.process.returncode} during startup; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            try:
                ready = requests.get(f"{self.management_url}/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"Keycloak not ready within {timeout}s; log {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.5)
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        _stop_process_group(self.process, 30)

    def write_vault_secret(self, realm: str, name: str, value: str) -> str:
        """Stores a secret in the file vault and returns its reference, `${vault.NAME}`.

        The default key resolver (REALM_UNDERSCORE_KEY) looks for the file REALM_NAME, with every
        `_` inside the realm and the secret name doubled."""
        if self.vault_dir is None:
            raise RuntimeError("this Keycloak was started without a vault directory")
        file_name = realm.replace("_", "__") + "_" + name.replace("_", "__")
        (self.vault_dir / file_name).write_text(value)
        return "${vault." + name + "}"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def realm_url(self, realm: str) -> str:
        return f"{self.base_url}/realms/{realm}"

    def token_url(self, realm: str) -> str:
        return f"{self.realm_url(realm)}/protocol/openid-connect/token"

    def certs(self, realm: str) -> dict[str, Any]:
        response = requests.get(f"{self.realm_url(realm)}/protocol/openid-connect/certs", timeout=30)
        response.raise_for_status()
        return response.json()

    def password_grant(
        self,
        realm: str,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        timeout: float = 90,
    ) -> requests.Response:
        return requests.post(
            self.token_url(realm),
            data={
                "grant_type": "password",
                "client_id": client_id,
                "client_secret": client_secret,
                "username": username,
                "password": password,
                "scope": "openid",
            },
            timeout=timeout,
        )

    def introspect(
        self, realm: str, client_id: str, client_secret: str, token: str
    ) -> requests.Response:
        return requests.post(
            f"{self.realm_url(realm)}/protocol/openid-connect/token/introspect",
            data={"token": token},
            auth=(client_id, client_secret),
            timeout=30,
        )


@dataclass
class Admin:
    """The admin REST API, authenticated as the bootstrap admin (token renewed before it expires)."""

    base_url: str
    _token: str = ""
    _expires: float = 0.0
    session: requests.Session = field(default_factory=requests.Session)

    def _auth(self) -> dict[str, str]:
        if time.monotonic() > self._expires:
            response = self.session.post(
                f"{self.base_url}/realms/master/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": ADMIN_USERNAME,
                    "password": ADMIN_PASSWORD,
                },
                timeout=30,
            )
            response.raise_for_status()
            body = response.json()
            self._token = body["access_token"]
            self._expires = time.monotonic() + max(5, body.get("expires_in", 60) - 20)
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(
            method, f"{self.base_url}/admin/realms{path}", headers=self._auth(), **kwargs
        )

    def checked(self, method: str, path: str, expect: int, **kwargs: Any) -> requests.Response:
        response = self.request(method, path, **kwargs)
        if response.status_code != expect:
            raise AssertionError(
                f"{method} /admin/realms{path}: expected {expect}, got "
                f"{response.status_code} {response.text[:2000]}"
            )
        return response

    def create_realm(self, representation: dict[str, Any]) -> None:
        self.checked("POST", "", 201, json=representation)

    def key_providers(self, realm: str) -> list[dict[str, Any]]:
        return self.checked(
            "GET", f"/{realm}/components", 200, params={"type": KEY_PROVIDER_TYPE}
        ).json()

    def component(self, realm: str, component_id: str) -> requests.Response:
        return self.checked("GET", f"/{realm}/components/{component_id}", 200)

    def create_component(self, realm: str, representation: dict[str, Any]) -> requests.Response:
        """POST a component; returns the raw response (201 with Location, or a 4xx)."""
        return self.request("POST", f"/{realm}/components", json=representation)

    def update_component(
        self, realm: str, component_id: str, representation: dict[str, Any]
    ) -> requests.Response:
        """PUT a component; returns the raw response (204, or a 4xx)."""
        return self.request("PUT", f"/{realm}/components/{component_id}", json=representation)

    def delete_component(self, realm: str, component_id: str) -> None:
        self.checked("DELETE", f"/{realm}/components/{component_id}", 204)

    def import_realm(self, representation: dict[str, Any]) -> requests.Response:
        """POST /admin/realms; returns the raw response (201, or a 4xx)."""
        return self.request("POST", "", json=representation)

    def realm_exists(self, realm: str) -> bool:
        response = self.request("GET", f"/{realm}")
        if response.status_code not in (200, 404):
            raise AssertionError(f"GET /admin/realms/{realm}: {response.status_code} {response.text}")
        return response.status_code == 200

    def keys(self, realm: str) -> dict[str, Any]:
        return self.checked("GET", f"/{realm}/keys", 200).json()

    def add_client(self, realm: str, representation: dict[str, Any]) -> None:
        self.checked("POST", f"/{realm}/clients", 201, json=representation)
