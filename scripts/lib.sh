# Shared helpers for the scripts in this directory. Source it; do not run it.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables here are used by the scripts that source this file

AWSKMS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AWSKMS_CACHE_DIR="${AWSKMS_CACHE_DIR:-$HOME/.cache/keycloak-aws-kms}"
# shellcheck source=versions.env
. "$AWSKMS_ROOT/scripts/versions.env"
# The one pin of the Keycloak version: the Maven property the provider is compiled against.
KEYCLOAK_VERSION="$(sed -n 's:.*<keycloak.version>\(.*\)</keycloak.version>.*:\1:p' "$AWSKMS_ROOT/java/pom.xml" | head -n1)"
[ -n "$KEYCLOAK_VERSION" ] || {
    printf 'ERROR: no <keycloak.version> in java/pom.xml\n' >&2
    exit 1
}

KEYCLOAK_DIST_TGZ="$AWSKMS_CACHE_DIR/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz"
AWSKMS_VENV="$AWSKMS_CACHE_DIR/venv"
# Written by setup.sh, read by test.sh, demo.sh and tests/e2e/conftest.py.
AWSKMS_SETUP_ENV="$AWSKMS_CACHE_DIR/setup.env"

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# Major version of the JDK at $1 (a JAVA_HOME), or nothing if it is not a JDK.
java_major() {
    local release="$1/release" version
    [ -x "$1/bin/java" ] || return 0
    if [ -r "$release" ]; then
        version="$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$release")"
    else
        version="$("$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    fi
    version="${version#1.}"
    printf '%s\n' "${version%%[.+-]*}"
}

# Prints the JAVA_HOME of the JDK to run Keycloak with: $KEYCLOAK_JAVA_HOME if set, else the newest
# installed JDK whose major is in KEYCLOAK_JAVA_MAJORS. Candidates: $JAVA_HOME, the `java` on PATH,
# /usr/lib/jvm/*, /opt/java/*, ~/.sdkman/candidates/java/*.
find_keycloak_java_home() {
    if [ -n "${KEYCLOAK_JAVA_HOME:-}" ]; then
        [ -n "$(java_major "$KEYCLOAK_JAVA_HOME")" ] || return 1
        printf '%s\n' "$KEYCLOAK_JAVA_HOME"
        return 0
    fi
    local candidates=() c want on_path
    [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
    if on_path="$(command -v java 2>/dev/null)"; then
        candidates+=("$(dirname "$(dirname "$(readlink -f "$on_path")")")")
    fi
    for c in /usr/lib/jvm/*/ /opt/java/*/ "$HOME"/.sdkman/candidates/java/*/; do
        [ -d "$c" ] && candidates+=("${c%/}")
    done
    for want in $KEYCLOAK_JAVA_MAJORS; do
        for c in "${candidates[@]}"; do
            if [ "$(java_major "$c")" = "$want" ]; then
                printf '%s\n' "$(readlink -f "$c")"
                return 0
            fi
        done
    done
    return 1
}

# Prints the provider JAR built by `mvn package` (not a -sources/-javadoc/-tests JAR), or fails.
provider_jar() {
    local jar found=()
    for jar in "$AWSKMS_ROOT"/java/target/keycloak-aws-kms-*.jar; do
        case "$jar" in
        *-sources.jar | *-javadoc.jar | *-tests.jar) ;;
        *) [ -f "$jar" ] && found+=("$jar") ;;
        esac
    done
    [ "${#found[@]}" -eq 1 ] || return 1
    printf '%s\n' "${found[0]}"
}
