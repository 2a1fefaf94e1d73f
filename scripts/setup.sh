#!/usr/bin/env bash
# Prepares everything the tests and the demo need that is not in the repository, in a cache
# directory (default ~/.cache/keycloak-aws-kms, override with AWSKMS_CACHE_DIR):
#   - the Keycloak server distribution, org.keycloak:keycloak-quarkus-dist:<keycloak.version>:tar.gz,
#     resolved by Maven itself (so the mirrors, proxies and credentials of your settings.xml apply)
#     with strict checksums, into a Maven repository of the cache directory;
#   - a Python venv with tests/requirements.txt (rebuilt only when that file or Python changes);
#   - the choice of JDK to run Keycloak with;
#   - from Debian's packages when they are missing (needs root): PostgreSQL's server programs for
#     the cluster tests (scripts/cluster.sh; no database is created or started here), and Chromium
#     with its WebDriver for the admin console tests (tests/e2e/console).
# It writes $AWSKMS_CACHE_DIR/setup.env for test.sh, demo.sh and tests/e2e. Idempotent.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIST_ARTIFACT="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:tar.gz"
# A Maven local repository of its own: the setup knows where the artefact and the checksum Maven
# verified are, and a deleted cache directory takes everything with it.
MAVEN_REPOSITORY="$AWSKMS_CACHE_DIR/maven-repository"
REQUIREMENTS="$AWSKMS_ROOT/tests/requirements.txt"

mkdir -p "$AWSKMS_CACHE_DIR"
# One setup at a time per cache directory (CI jobs or a demo and a test run may overlap).
exec 9>"$AWSKMS_CACHE_DIR/.setup.lock"
flock 9

sha1_of() { sha1sum "$1" | cut -d' ' -f1; }

# Resolves the distribution with `mvn dependency:get`: Maven downloads it through the remote
# repositories and mirrors of the user's settings.xml and, with --strict-checksums, fails unless
# the repository's SHA-1 matches. The file is then checked once more against that SHA-1 (as Maven
# stored it beside the file) and linked into the cache, whose .sha1 later runs check it against.
fetch_keycloak() {
    if [ -f "$KEYCLOAK_DIST_TGZ" ] && [ -f "$KEYCLOAK_DIST_TGZ.sha1" ] &&
        [ "$(sha1_of "$KEYCLOAK_DIST_TGZ")" = "$(cat "$KEYCLOAK_DIST_TGZ.sha1")" ]; then
        say "Keycloak $KEYCLOAK_VERSION: cached ($KEYCLOAK_DIST_TGZ)"
        return
    fi
    command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is required to fetch $DIST_ARTIFACT"
    local dir="$MAVEN_REPOSITORY/org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION"
    local file="$dir/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz"
    local quiet=(-q --no-transfer-progress)
    [ -t 1 ] && quiet=()
    mkdir -p "$MAVEN_REPOSITORY"
    local attempt expected actual
    for attempt in 1 2; do
        say "Keycloak $KEYCLOAK_VERSION: resolving $DIST_ARTIFACT with Maven (settings.xml mirrors and proxies apply)"
        # Run outside any project, so that no pom.xml (and no .mvn/ of this repository) takes part.
        (cd "$AWSKMS_CACHE_DIR" && mvn -B "${quiet[@]}" -Dstyle.color=never --strict-checksums \
            -Dmaven.repo.local="$MAVEN_REPOSITORY" \
            "org.apache.maven.plugins:maven-dependency-plugin:$MAVEN_DEPENDENCY_PLUGIN_VERSION:get" \
            -Dartifact="$DIST_ARTIFACT" -Dtransitive=false) ||
            die "Maven could not resolve $DIST_ARTIFACT (see its output above; check settings.xml's mirrors and proxies)"
        [ -f "$file" ] || die "Maven resolved $DIST_ARTIFACT, but $file does not exist"
        expected="$(tr -d '[:space:]' <"$file.sha1" 2>/dev/null | cut -c1-40)" || expected=""
        actual="$(sha1_of "$file")"
        [[ "$expected" =~ ^[0-9a-f]{40}$ ]] && [ "$actual" = "$expected" ] && break
        # Damaged since Maven verified it (Maven does not check files it already has): fetch anew.
        rm -f "$file" "$file.sha1" "$KEYCLOAK_DIST_TGZ" "$KEYCLOAK_DIST_TGZ.sha1"
        [ "$attempt" = 1 ] ||
            die "SHA-1 mismatch for $file: the repository says '$expected', the file is $actual (both removed)"
        say "Keycloak $KEYCLOAK_VERSION: $file does not match its SHA-1 (removed), fetching it again"
    done
    tar -tzf "$file" "keycloak-$KEYCLOAK_VERSION/bin/kc.sh" >/dev/null ||
        die "$file does not contain keycloak-$KEYCLOAK_VERSION/bin/kc.sh"
    rm -f "$KEYCLOAK_DIST_TGZ"
    # A hard link costs no space; another file system gets a copy.
    ln "$file" "$KEYCLOAK_DIST_TGZ" 2>/dev/null || cp "$file" "$KEYCLOAK_DIST_TGZ"
    printf '%s\n' "$expected" >"$KEYCLOAK_DIST_TGZ.sha1"
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

# Installs Debian packages with apt-get (root only): `apt_install WHAT PACKAGE...`, WHAT naming
# them in messages. Runs apt-get update first when the lists lack the first package, and once
# more if the install fails with lists that had not just been refreshed (files the mirror no
# longer has).
apt_install() {
    local what="$1" candidate updated=""
    shift
    candidate="$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        say "$what: not in the package lists yet, running apt-get update"
        apt-get update -qq
        updated=1
    fi
    say "$what: apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
        [ -z "$updated" ] || die "apt-get install $* failed"
        say "$what: install failed, running apt-get update and trying again"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
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
    apt_install PostgreSQL postgresql
    POSTGRES_BIN="$(find_postgres_bin)" || die "apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb"
    say "PostgreSQL: installed $("$POSTGRES_BIN/postgres" --version) at $POSTGRES_BIN"
}

# The browser of the admin console tests: the system's Chromium and its WebDriver, never one that
# a test tool downloads. $AWSKMS_CHROMIUM and $AWSKMS_CHROMEDRIVER override Debian's paths.
CHROMIUM="${AWSKMS_CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${AWSKMS_CHROMEDRIVER:-/usr/bin/chromedriver}"

chromium_version() { "$CHROMIUM" --headless --no-sandbox --version 2>/dev/null | head -n1; }

install_chromium() {
    if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
        say "Chromium: $(chromium_version) at $CHROMIUM, WebDriver $CHROMEDRIVER"
        return
    fi
    [ -z "${AWSKMS_CHROMIUM:-}${AWSKMS_CHROMEDRIVER:-}" ] ||
        die "AWSKMS_CHROMIUM=$CHROMIUM or AWSKMS_CHROMEDRIVER=$CHROMEDRIVER is not an executable"
    command -v apt-get >/dev/null 2>&1 ||
        die "Chromium or chromedriver not found: install both and set AWSKMS_CHROMIUM and AWSKMS_CHROMEDRIVER"
    [ "$(id -u)" = 0 ] ||
        die "Chromium or chromedriver not found: run 'apt-get install chromium chromium-driver' as root (or set AWSKMS_CHROMIUM and AWSKMS_CHROMEDRIVER)"
    # A font, so that screenshots show text even on a machine that has none.
    apt_install Chromium chromium chromium-driver fonts-dejavu-core
    [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] ||
        die "apt-get installed chromium and chromium-driver, but $CHROMIUM or $CHROMEDRIVER is missing"
    say "Chromium: installed $(chromium_version) at $CHROMIUM, WebDriver $CHROMEDRIVER"
}

# OpenSSL's headers and pkg-config, which the KMS emulator's signer (the `openssl` crate) links
# against: an implementation of the crypto independent of the product's aws-lc.
install_openssl_headers() {
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl; then
        say "OpenSSL headers: $(pkg-config --modversion openssl)"
        return
    fi
    command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] ||
        die "OpenSSL's headers or pkg-config not found: run 'apt-get install libssl-dev pkg-config' as root"
    apt_install "OpenSSL headers" libssl-dev pkg-config
}

fetch_keycloak
make_venv
choose_java
install_postgresql
install_chromium
install_openssl_headers

cat >"$AWSKMS_SETUP_ENV.part" <<EOF
# Written by scripts/setup.sh; do not edit.
KEYCLOAK_VERSION=$KEYCLOAK_VERSION
KEYCLOAK_DIST_TGZ=$KEYCLOAK_DIST_TGZ
KEYCLOAK_JAVA_HOME=$KEYCLOAK_JAVA_HOME
AWSKMS_VENV=$AWSKMS_VENV
POSTGRES_BIN=$POSTGRES_BIN
CHROMIUM=$CHROMIUM
CHROMEDRIVER=$CHROMEDRIVER
EOF
mv "$AWSKMS_SETUP_ENV.part" "$AWSKMS_SETUP_ENV"
say "setup done: $AWSKMS_SETUP_ENV"
