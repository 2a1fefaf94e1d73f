#!/usr/bin/env bash
# Builds the native library, the KMS emulator and the provider JAR (native library inside):
#   target/release/libkeycloak_aws_kms.so, target/release/kms-emulator,
#   java/target/keycloak-aws-kms-<version>.jar
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

# --all-targets builds with the same dependency features as `cargo test` (dev-dependencies
# included), so the test stage and this build share one compilation of the dependency tree.
say "cargo build --release --workspace --all-targets"
cargo build --release --workspace --all-targets
say "mvn package (provider JAR)"
mvn -q -B -Dstyle.color=never -f java/pom.xml -DskipTests package
jar="$(provider_jar)" || die "expected exactly one java/target/keycloak-aws-kms-*.jar after mvn package"
native=META-INF/native/linux-x86_64/libkeycloak_aws_kms.so
python3 - "$jar" "$native" <<'PY' || die "$jar has no ELF shared library at $native"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as jar:
    found = sys.argv[2] in jar.namelist() and jar.read(sys.argv[2])[:4] == b"\x7fELF"
sys.exit(0 if found else 1)
PY
say "built: target/release/kms-emulator, ${jar#"$AWSKMS_ROOT"/}"
