#!/usr/bin/env bash
# Builds the native library, the KMS emulator and the provider JAR (native library inside):
#   target/release/libkeycloak_aws_kms.so, target/release/kms-emulator,
#   java/target/keycloak-aws-kms-<version>.jar
# and, for the Java unit tests only, the library with the test-only natives (cargo feature
# test-hooks): target/release/test-hooks/libkeycloak_aws_kms.so.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

# --all-targets builds with the same dependency features as `cargo test` (dev-dependencies
# included), so the test stage and this build share one compilation of the dependency tree.
# The test-hooks library first, built with the same targets as the main build so that both share
# one compilation of the dependency tree (only the JNI crate is built twice); the main build then
# puts the production library back at target/release/libkeycloak_aws_kms.so.
say "cargo build --release --workspace --all-targets --features keycloak-aws-kms-jni/test-hooks (Java unit tests only)"
cargo build --locked --release --workspace --all-targets --features keycloak-aws-kms-jni/test-hooks
mkdir -p target/release/test-hooks
cp target/release/libkeycloak_aws_kms.so target/release/test-hooks/libkeycloak_aws_kms.so
say "cargo build --release --workspace --all-targets"
cargo build --locked --release --workspace --all-targets
if grep -q NativeTestHooks target/release/libkeycloak_aws_kms.so; then
    die "target/release/libkeycloak_aws_kms.so is the test-hooks build; it must not be packaged"
fi
# The glibc floor the JAR's load-failure message and README name (NativeLibraryLoader.GLIBC_FLOOR)
# must be what the library needs: a toolchain or dependency change that moves it fails here.
loader=java/src/main/java/dev/awskms/keycloak/internal/NativeLibraryLoader.java
pinned="$(sed -n 's/.*GLIBC_FLOOR = "\([0-9.]*\)".*/\1/p' "$loader")"
[ -n "$pinned" ] || die "no GLIBC_FLOOR in $loader"
if command -v objdump >/dev/null 2>&1; then
    needed="$(objdump -T target/release/libkeycloak_aws_kms.so | grep -o 'GLIBC_[0-9][0-9.]*' | sort -Vu | tail -1 || true)"
else
    needed="$(grep -ao 'GLIBC_[0-9][0-9.]*' target/release/libkeycloak_aws_kms.so | sort -Vu | tail -1 || true)"
fi
[ "${needed#GLIBC_}" = "$pinned" ] ||
    die "libkeycloak_aws_kms.so needs ${needed:-no glibc version}, but GLIBC_FLOOR in $loader (and README) says $pinned; update both"
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
