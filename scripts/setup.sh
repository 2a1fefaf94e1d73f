#!/usr/bin/env bash
# Prepares everything the tests and the demo need that is not in the repository, in a cache
# directory (default ~/.cache/keycloak-aws-kms, override with AWSKMS_CACHE_DIR):
#   - the Keycloak server distribution from Maven Central (SHA-1 checked against Central's .sha1);
#   - a Python venv with tests/requirements.txt (rebuilt only when that file or Python changes);
#   - the choice of JDK to run Keycloak with;
#   - PostgreSQL's server programs for the cluster tests (scripts/cluster.sh), from Debian's
#     packages when they are missing (needs root; no database is created or started here).
# It writes $AWSKMS_CACHE_DIR/setup.env for test.sh, demo.sh and tests/e2e. Idempotent.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAVEN_CENTRAL="${AWSKMS_MAVEN_CENTRAL:-https://repo1.maven.org/maven2}"
DIST_URL="$MAVEN_CENTRAL/org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz"
REQUIREMENTS="$AWSKMS_ROOT/tests/requirements.txt"

mkdir -p "$AWSKMS_CACHE_DIR"
# One setup at a time per cache directory (CI jobs or a demo and a test run may overlap).
exec 9>"$AWSKMS_CACHE_DIR/.setup.lock"
flock 9

sha1_of() { sha1sum "$1" | cut -d' ' -f1; }

fetch_keycloak() {
    local expected
    if [ -f "$KEYCLOAK_DIST_TGZ" ] && [ -f "$KEYCLOAK_DIST_TGZ.sha1" ] &&
        [ "$(sha1_of "$KEYCLOAK_DIST_TGZ")" = "$(cat "$KEYCLOAK_DIST_TGZ.sha1")" ]; then
        say "Keycloak $KEYCLOAK_VERSION: cached ($KEYCLOAK_DIST_TGZ)"
        return
    fi
    say "Keycloak $KEYCLOAK_VERSION: downloading $DIST_URL"
    expected="$(curl -fsSL --retry 3 "$DIST_URL.sha1" | tr -d '[:space:]' | cut -c1-40)"
    [[ "$expected" =~ ^[0-9a-f]{40}$ ]] || die "no valid SHA-1 at $DIST_URL.sha1"
    local progress=-sS
    [ -t 2 ] && progress=--progress-bar
    curl -fL --retry 3 "$progress" -o "$KEYCLOAK_DIST_TGZ.part" "$DIST_URL"
    local actual
    actual="$(sha1_of "$KEYCLOAK_DIST_TGZ.part")"
    if [ "$actual" != "$expected" ]; then
        rm -f "$KEYCLOAK_DIST_TGZ.part"
        die "SHA-1 mismatch for $DIST_URL: expected $expected, got $actual"
    fi
    tar -tzf "$KEYCLOAK_DIST_TGZ.part" "keycloak-$KEYCLOAK_VERSION/bin/kc.sh" >/dev/null ||
        die "$DIST_URL does not contain keycloak-$KEYCLOAK_VERSION/bin/kc.sh"
    printf '%s\n' "$expected" >"$KEYCLOAK_DIST_TGZ.sha1"
    mv "$KEYCLOAK_DIST_TGZ.part" "$KEYCLOAK_DIST_TGZ"
    say "Keycloak $KEYCLOAK_VERSION: SHA-1 verified ($expected)"
}

find_python() {
    local py
    for py in "${AWSKMS_PYTHON:-}" python3 python; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

make_venv() {
    local python stamp want
    python="$(find_python)" || die "Python >= 3.9 with the venv module is required (set AWSKMS_PYTHON)"
    want="$(
        {
            sha256sum <"$REQUIREMENTS"
            "$python" -c 'import sys; print(sys.version)'
        } | sha256sum | cut -d' ' -f1
    )"
    stamp="$AWSKMS_VENV/.requirements.sha256"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$AWSKMS_VENV/bin/python" ]; then
        say "Python venv: cached ($AWSKMS_VENV)"
        return
    fi
    say "Python venv: creating $AWSKMS_VENV with $("$python" --version 2>&1)"
    rm -rf "$AWSKMS_VENV"
    "$python" -m venv "$AWSKMS_VENV"
    "$AWSKMS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$AWSKMS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    printf '%s\n' "$want" >"$stamp"
    say "Python venv: installed $(grep -cE '^[A-Za-z]' "$REQUIREMENTS") pinned requirements"
}

choose_java() {
    KEYCLOAK_JAVA_HOME="$(find_keycloak_java_home)" ||
        die "no JDK for Keycloak found: need one of Java $KEYCLOAK_JAVA_MAJORS (set KEYCLOAK_JAVA_HOME)"
    say "Keycloak JDK: Java $(java_major "$KEYCLOAK_JAVA_HOME") at $KEYCLOAK_JAVA_HOME"
}

# PostgreSQL's server programs: $AWSKMS_POSTGRES_BIN if set, else the newest Debian
# /usr/lib/postgresql/<major>/bin with initdb, pg_ctl and postgres.
find_postgres_bin() {
    local dir
    if [ -n "${AWSKMS_POSTGRES_BIN:-}" ]; then
        [ -x "$AWSKMS_POSTGRES_BIN/initdb" ] && [ -x "$AWSKMS_POSTGRES_BIN/pg_ctl" ] || return 1
        printf '%s\n' "$AWSKMS_POSTGRES_BIN"
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            printf '%s\n' "$dir"
        fi
    done | sort -V | tail -n1 | grep .
}

install_postgresql() {
    if POSTGRES_BIN="$(find_postgres_bin)"; then
        say "PostgreSQL: $("$POSTGRES_BIN/postgres" --version) at $POSTGRES_BIN"
        return
    fi
    [ -z "${AWSKMS_POSTGRES_BIN:-}" ] || die "AWSKMS_POSTGRES_BIN=$AWSKMS_POSTGRES_BIN has no initdb and pg_ctl"
    command -v apt-get >/dev/null 2>&1 ||
        die "PostgreSQL's server programs not found: install PostgreSQL and set AWSKMS_POSTGRES_BIN to its bin directory"
    [ "$(id -u)" = 0 ] ||
        die "PostgreSQL's server programs not found: run 'apt-get install postgresql' as root (or set AWSKMS_POSTGRES_BIN)"
    # Debian's package would create and start a "main" cluster on port 5432; the cluster tests
    # start a server of their own, so ask for none (postgresql-common reads createcluster.d/).
    mkdir -p /etc/postgresql-common/createcluster.d
    printf '# Written by keycloak-aws-kms scripts/setup.sh: no default cluster.\ncreate_main_cluster = false\n' \
        >/etc/postgresql-common/createcluster.d/keycloak-aws-kms.conf
    local candidate updated=""
    candidate="$(apt-cache policy postgresql 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        say "PostgreSQL: not in the package lists yet, running apt-get update"
        apt-get update -qq
        updated=1
    fi
    say "PostgreSQL: apt-get install postgresql"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
        [ -z "$updated" ] || die "apt-get install postgresql failed"
        # Stale package lists (files the mirror no longer has): refresh once and try again.
        say "PostgreSQL: install failed, running apt-get update and trying again"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    POSTGRES_BIN="$(find_postgres_bin)" || die "apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb"
    say "PostgreSQL: installed $("$POSTGRES_BIN/postgres" --version) at $POSTGRES_BIN"
}

fetch_keycloak
make_venv
choose_java
install_postgresql

cat >"$AWSKMS_SETUP_ENV.part" <<EOF
# Written by scripts/setup.sh; do not edit.
KEYCLOAK_VERSION=$KEYCLOAK_VERSION
KEYCLOAK_DIST_TGZ=$KEYCLOAK_DIST_TGZ
KEYCLOAK_JAVA_HOME=$KEYCLOAK_JAVA_HOME
AWSKMS_VENV=$AWSKMS_VENV
POSTGRES_BIN=$POSTGRES_BIN
EOF
mv "$AWSKMS_SETUP_ENV.part" "$AWSKMS_SETUP_ENV"
say "setup done: $AWSKMS_SETUP_ENV"
