#!/usr/bin/env bash
# A Keycloak cluster on this machine, loopback only: a PostgreSQL server (Debian's packages, see
# setup.sh) with its own data directory in a temporary directory, and Keycloak nodes running the
# production `start` on that database, clustered by Keycloak's default cache stack (`ispn`,
# jdbc-ping discovery over the database) with the provider JAR installed. The cluster tests
# (tests/e2e/cluster) drive it; it also lets one try the extension in a cluster by hand.
#
#   scripts/cluster.sh up [-- KC_OPTION...]     PostgreSQL, the build, node a, then node b
#   scripts/cluster.sh down                     every node, then PostgreSQL (its data is removed)
#   scripts/cluster.sh status
#   scripts/cluster.sh postgres start|stop
#   scripts/cluster.sh build                    the distribution with the JAR, `kc.sh build` once
#   scripts/cluster.sh node start NAME [-- KC_OPTION...]
#   scripts/cluster.sh node stop NAME           SIGTERM, SIGKILL after 30 s
#   scripts/cluster.sh node kill NAME           SIGKILL (a crash)
#
# KC_OPTIONs are added to the node's `kc.sh start` (runtime options only: the build is shared).
# Every node shares one --hostname, the address clients know the cluster by (issuer of every
# token): the first node's URL. A node keeps its ports across restarts. The bootstrap admin is
# admin / admin (everything listens on 127.0.0.1 only).
#
# State, in AWSKMS_CLUSTER_DIR (default $AWSKMS_CACHE_DIR/cluster; or --dir DIR before the
# command), read by tests/e2e/cluster/cluster_harness.py:
#   cluster.env            HOSTNAME_URL
#   postgres.env           POSTGRES_PORT, POSTGRES_DATA_ROOT, JDBC_URL, DB_USERNAME, DB_PASSWORD
#   postgres.log           the server's log (copied there when it stops)
#   dist/                  the built distribution (build.log beside it)
#   nodes/NAME/node.env    HTTP_PORT, MANAGEMENT_PORT, CLUSTER_PORT, BASE_URL, MANAGEMENT_URL
#   nodes/NAME/pid         the node's process group while it runs
#   nodes/NAME/keycloak.log, nodes/NAME/home/ (its copy of dist/)
# Environment: AWSKMS_CLUSTER_START_TIMEOUT (s, default 300), AWSKMS_CLUSTER_HEAP (default
# "-Xms128m -Xmx1g", Keycloak's JAVA_OPTS_KC_HEAP).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_DIR="${AWSKMS_CLUSTER_DIR:-$AWSKMS_CACHE_DIR/cluster}"
if [ "${1:-}" = "--dir" ]; then
    [ "$#" -ge 2 ] || die "--dir needs a directory"
    CLUSTER_DIR="$2"
    shift 2
fi
START_TIMEOUT="${AWSKMS_CLUSTER_START_TIMEOUT:-300}"
HEAP="${AWSKMS_CLUSTER_HEAP:--Xms128m -Xmx1g}"
DB_NAME=keycloak
DB_USERNAME=keycloak
# Build options: the database and the health endpoints the start-up wait polls.
BUILD_OPTIONS=(--db=postgres --health-enabled=true)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

load_setup_env() {
    [ -f "$AWSKMS_SETUP_ENV" ] || die "$AWSKMS_SETUP_ENV missing: run scripts/setup.sh"
    set -a
    # shellcheck disable=SC1090  # written by setup.sh
    . "$AWSKMS_SETUP_ENV"
    set +a
    [ -n "${POSTGRES_BIN:-}" ] || die "no POSTGRES_BIN in $AWSKMS_SETUP_ENV: run scripts/setup.sh"
}

# Holds an exclusive lock on $CLUSTER_DIR/.NAME.lock until the script exits, on a descriptor of
# its own (postgres 7, build 8, a node 9). Processes that outlive the script are started with
# 7>&- 8>&- 9>&-: they would otherwise hold the lock for as long as they run.
lock() {
    local fd
    case "$1" in
    postgres) fd=7 ;;
    build) fd=8 ;;
    *) fd=9 ;;
    esac
    eval "exec $fd>\"\$CLUSTER_DIR/.\$1.lock\""
    flock "$fd"
}

# Prints N free TCP ports on 127.0.0.1 (held together while chosen, so they are distinct), none of
# them in $EXCLUDED_PORTS. With "cluster", ports p below 15536 whose p+50000 is free too: JGroups'
# FD_SOCK2 listens at the transport port + 50000.
free_ports() {
    python3 - "$1" "${2:-}" "${EXCLUDED_PORTS:-}" <<'EOF'
import random, socket, sys
count, kind, excluded = int(sys.argv[1]), sys.argv[2], {int(p) for p in sys.argv[3].split()}
held, ports = [], []
def hold(port):
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    held.append(sock)
    return sock.getsockname()[1]
tries = 0
while len(ports) < count and tries < 2000:
    tries += 1
    if kind == "cluster":
        port = random.randrange(7800, 15500)
        if port in excluded or port + 50000 in excluded or hold(port) is None:
            continue
        if hold(port + 50000) is None:
            continue
    else:
        port = hold(0)
        if port in excluded:
            continue
    ports.append(port)
if len(ports) < count:
    sys.exit("no free ports found")
print(" ".join(map(str, ports)))
EOF
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# --- PostgreSQL -------------------------------------------------------------------------------

# Runs a PostgreSQL program as the server's user: root may not run the server, so as root that is
# Debian's `postgres` account.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (Debian's postgresql package)"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgres_running() {
    [ -f "$CLUSTER_DIR/postgres.env" ] || return 1
    # shellcheck disable=SC1091
    (. "$CLUSTER_DIR/postgres.env" && as_postgres "$POSTGRES_BIN/pg_ctl" status -D "$POSTGRES_DATA_ROOT/data" >/dev/null 2>&1)
}

postgres_start() {
    lock postgres
    if postgres_running; then
        say "PostgreSQL: running already ($CLUSTER_DIR/postgres.env)"
        return
    fi
    local root port password
    # Outside $CLUSTER_DIR, which the server's user may not be able to reach (a pytest temp dir).
    root="$(mktemp -d "${TMPDIR:-/tmp}/keycloak-aws-kms-postgres.XXXXXX")"
    [ "$(id -u)" = 0 ] && chown postgres: "$root"
    port="$(free_ports 1)"
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
    printf '%s\n' "$password" | as_postgres tee "$root/password" >/dev/null
    as_postgres "$POSTGRES_BIN/initdb" -D "$root/data" -U postgres --pwfile="$root/password" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C >"$CLUSTER_DIR/postgres-initdb.log" 2>&1 ||
        die "initdb failed: $(tail -n 20 "$CLUSTER_DIR/postgres-initdb.log")"
    rm -f "$root/password"
    # A throwaway database on loopback: TCP only, no durability to pay for.
    as_postgres tee -a "$root/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    as_postgres "$POSTGRES_BIN/pg_ctl" start -D "$root/data" -l "$root/postgres.log" -w -t 60 \
        >/dev/null 7>&- 8>&- 9>&- ||
        die "PostgreSQL did not start: $(tail -n 20 "$root/postgres.log")"
    PGPASSWORD="$password" "$POSTGRES_BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE $DB_USERNAME LOGIN PASSWORD '$password'" \
        -c "CREATE DATABASE $DB_NAME OWNER $DB_USERNAME" >/dev/null
    (
        umask 077
        cat >"$CLUSTER_DIR/postgres.env" <<EOF
POSTGRES_PORT=$port
POSTGRES_DATA_ROOT=$root
JDBC_URL=jdbc:postgresql://127.0.0.1:$port/$DB_NAME
DB_USERNAME=$DB_USERNAME
DB_PASSWORD=$password
EOF
    )
    say "PostgreSQL: $("$POSTGRES_BIN/postgres" --version | sed 's/.*) //') on 127.0.0.1:$port, data in $root/data"
}

postgres_stop() {
    lock postgres
    [ -f "$CLUSTER_DIR/postgres.env" ] || return 0
    local root
    root="$(sed -n 's/^POSTGRES_DATA_ROOT=//p' "$CLUSTER_DIR/postgres.env")"
    if [ -d "$root/data" ]; then
        as_postgres "$POSTGRES_BIN/pg_ctl" stop -D "$root/data" -m fast -w -t 60 >/dev/null 2>&1 ||
            as_postgres "$POSTGRES_BIN/pg_ctl" stop -D "$root/data" -m immediate -w -t 30 >/dev/null 2>&1 || true
    fi
    [ -f "$root/postgres.log" ] && cat "$root/postgres.log" >>"$CLUSTER_DIR/postgres.log"
    case "$root" in
    */keycloak-aws-kms-postgres.*) rm -rf "$root" ;;
    esac
    rm -f "$CLUSTER_DIR/postgres.env"
    say "PostgreSQL: stopped, data removed"
}

# --- the distribution -------------------------------------------------------------------------

dist_home() { printf '%s\n' "$CLUSTER_DIR/dist/keycloak-$KEYCLOAK_VERSION"; }

build() {
    lock build
    local jar want home
    jar="$(provider_jar)" || die "expected one java/target/keycloak-aws-kms-*.jar: run scripts/build.sh"
    want="$(printf '%s %s %s\n' "$(sha256sum <"$jar")" "$(cat "$KEYCLOAK_DIST_TGZ.sha1" 2>/dev/null)" "${BUILD_OPTIONS[*]}" | sha256sum | cut -d' ' -f1)"
    home="$(dist_home)"
    if [ -f "$CLUSTER_DIR/dist/.built" ] && [ "$(cat "$CLUSTER_DIR/dist/.built")" = "$want" ]; then
        say "Keycloak build: up to date ($home)"
        return
    fi
    rm -rf "$CLUSTER_DIR/dist"
    mkdir -p "$CLUSTER_DIR/dist"
    tar -xzf "$KEYCLOAK_DIST_TGZ" -C "$CLUSTER_DIR/dist"
    [ -x "$home/bin/kc.sh" ] || die "$KEYCLOAK_DIST_TGZ did not unpack to $home"
    cp "$jar" "$home/providers/"
    say "Keycloak build: kc.sh build ${BUILD_OPTIONS[*]} with $(basename "$jar")"
    local started=$SECONDS
    env -i PATH="$PATH" HOME="$HOME" JAVA_HOME="$KEYCLOAK_JAVA_HOME" \
        "$home/bin/kc.sh" build "${BUILD_OPTIONS[@]}" >"$CLUSTER_DIR/build.log" 2>&1 ||
        die "kc.sh build failed: $(tail -n 30 "$CLUSTER_DIR/build.log")"
    printf '%s\n' "$want" >"$CLUSTER_DIR/dist/.built"
    say "Keycloak build: done in $((SECONDS - started))s"
}

# --- nodes ------------------------------------------------------------------------------------

node_dir() {
    [[ "$1" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "node names are lowercase letters, digits and '-': '$1'"
    printf '%s\n' "$CLUSTER_DIR/nodes/$1"
}

node_pid() { cat "$(node_dir "$1")/pid" 2>/dev/null || true; }

# The nodes whose process runs.
live_nodes() {
    local dir
    for dir in "$CLUSTER_DIR"/nodes/*/; do
        [ -d "$dir" ] || continue
        pid_alive "$(cat "$dir/pid" 2>/dev/null || true)" && basename "$dir"
    done
    return 0
}

# Members in the last cluster view a node's log shows from byte $2 on (0 if none yet).
view_size() {
    tail -c +"$(($2 + 1))" "$1" 2>/dev/null |
        sed -n 's/.*ISPN000094: Received new cluster view for channel [^ ]*: \[[^]]*\] (\([0-9]*\)).*/\1/p' |
        tail -n1 | grep . || echo 0
}

node_start() {
    local name="$1"
    shift
    local dir home pid
    dir="$(node_dir "$name")"
    mkdir -p "$dir"
    lock "node-$name"
    pid="$(node_pid "$name")"
    pid_alive "$pid" && die "node $name runs already (pid $pid)"
    postgres_running || die "PostgreSQL is not running: scripts/cluster.sh postgres start"
    [ -f "$CLUSTER_DIR/dist/.built" ] || die "no build in $CLUSTER_DIR/dist: scripts/cluster.sh build"

    # Each node runs its own copy of the one build (data/ is per node); a new build replaces it.
    home="$dir/home"
    if ! cmp -s "$CLUSTER_DIR/dist/.built" "$dir/.built"; then
        rm -rf "$home"
        cp -a "$(dist_home)" "$home"
        cp "$CLUSTER_DIR/dist/.built" "$dir/.built"
    fi

    if [ ! -f "$dir/node.env" ]; then
        local ports cluster_port
        # Not the ports of another node, which may be down just now.
        EXCLUDED_PORTS="$(find "$CLUSTER_DIR/nodes" -name node.env -exec sed -n 's/^[A-Z_]*PORT=//p' {} + | tr '\n' ' ')"
        export EXCLUDED_PORTS
        read -r -a ports <<<"$(free_ports 2)"
        cluster_port="$(free_ports 1 cluster)"
        cat >"$dir/node.env" <<EOF
HTTP_PORT=${ports[0]}
MANAGEMENT_PORT=${ports[1]}
CLUSTER_PORT=$cluster_port
BASE_URL=http://127.0.0.1:${ports[0]}
MANAGEMENT_URL=http://127.0.0.1:${ports[1]}
EOF
    fi
    # shellcheck disable=SC1091
    . "$dir/node.env"
    if [ ! -f "$CLUSTER_DIR/cluster.env" ]; then
        printf 'HOSTNAME_URL=%s\n' "$BASE_URL" >"$CLUSTER_DIR/cluster.env"
    fi
    local hostname_url jdbc_url db_password
    hostname_url="$(sed -n 's/^HOSTNAME_URL=//p' "$CLUSTER_DIR/cluster.env")"
    jdbc_url="$(sed -n 's/^JDBC_URL=//p' "$CLUSTER_DIR/postgres.env")"
    db_password="$(sed -n 's/^DB_PASSWORD=//p' "$CLUSTER_DIR/postgres.env")"

    local log="$dir/keycloak.log" offset
    touch "$log"
    offset="$(stat -c %s "$log")"
    printf '\n===== scripts/cluster.sh: node %s starting %s =====\n' "$name" "$(date -u +%FT%TZ)" >>"$log"
    # A clean environment: no AWS_/KC_ variables of the caller, no instance metadata, no profile.
    # The database password travels in the environment, not on the command line.
    env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 JAVA_HOME="$KEYCLOAK_JAVA_HOME" \
        JAVA_OPTS_KC_HEAP="$HEAP" \
        KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin \
        KC_DB_PASSWORD="$db_password" \
        AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        setsid "$home/bin/kc.sh" start --optimized \
        --http-enabled=true --http-host=127.0.0.1 --http-port="$HTTP_PORT" \
        --http-management-port="$MANAGEMENT_PORT" \
        --hostname="$hostname_url" \
        --db-url="$jdbc_url" --db-username="$DB_USERNAME" \
        --cache=ispn --cache-stack=jdbc-ping \
        --cache-embedded-network-bind-address=127.0.0.1 \
        --cache-embedded-network-bind-port="$CLUSTER_PORT" \
        --spi-cache-embedded--default--node-name="$name" \
        --log-level=INFO,dev.awskms:debug \
        "$@" </dev/null >>"$log" 2>&1 7>&- 8>&- 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$dir/pid"

    local started=$SECONDS
    until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$MANAGEMENT_URL/health/ready" || true)" = 200 ]; do
        if ! pid_alive "$pid"; then
            rm -f "$dir/pid"
            die "node $name exited during start-up; log $log:
$(tail -c +"$((offset + 1))" "$log" | tail -n 40)"
        fi
        if ((SECONDS - started > START_TIMEOUT)); then
            kill -KILL -- "-$pid" 2>/dev/null || true
            rm -f "$dir/pid"
            die "node $name not ready within ${START_TIMEOUT}s; log $log:
$(tail -c +"$((offset + 1))" "$log" | tail -n 40)"
        fi
        sleep 0.5
    done
    # Ready means joined: the node's own view holds every node that runs.
    local want members
    want="$(live_nodes | wc -l)"
    until members="$(view_size "$log" "$offset")" && [ "$members" -ge "$want" ]; do
        if ((SECONDS - started > START_TIMEOUT)); then
            die "node $name is ready, but its cluster view has $members of $want nodes; log $log"
        fi
        sleep 0.5
    done
    say "node $name: ready in $((SECONDS - started))s at $BASE_URL (management $MANAGEMENT_URL), cluster view of $members"
}

# SIGTERM (or the given signal) to the node's process group; SIGKILL after 30 s.
node_signal() {
    local name="$1" signal="$2" dir pid i
    dir="$(node_dir "$name")"
    pid="$(node_pid "$name")"
    if ! pid_alive "$pid"; then
        rm -f "$dir/pid"
        return 0
    fi
    kill "-$signal" -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
    fi
    # The JVM is a child of kc.sh: wait until nothing of the group is left.
    for ((i = 0; i < 100; i++)); do
        pgrep -g "$pid" >/dev/null 2>&1 || break
        sleep 0.1
    done
    rm -f "$dir/pid"
    say "node $name: stopped ($signal)"
}

status() {
    local dir name pid
    if [ -f "$CLUSTER_DIR/postgres.env" ] && postgres_running; then
        say "PostgreSQL: running on 127.0.0.1:$(sed -n 's/^POSTGRES_PORT=//p' "$CLUSTER_DIR/postgres.env")"
    else
        say "PostgreSQL: not running"
    fi
    [ -f "$CLUSTER_DIR/cluster.env" ] && say "hostname: $(sed -n 's/^HOSTNAME_URL=//p' "$CLUSTER_DIR/cluster.env")"
    for dir in "$CLUSTER_DIR"/nodes/*; do
        [ -d "$dir" ] || continue
        name="$(basename "$dir")"
        pid="$(node_pid "$name")"
        if pid_alive "$pid"; then
            say "node $name: running (pid $pid) at $(sed -n 's/^BASE_URL=//p' "$dir/node.env"), log $dir/keycloak.log"
        else
            say "node $name: stopped"
        fi
    done
}

down() {
    local name
    for name in $(live_nodes); do
        node_signal "$name" TERM
    done
    postgres_stop
}

# --- commands ---------------------------------------------------------------------------------

[ "$#" -gt 0 ] || {
    usage
    exit 2
}
command="$1"
shift
mkdir -p "$CLUSTER_DIR"
CLUSTER_DIR="$(cd "$CLUSTER_DIR" && pwd)"
load_setup_env

# Options after `--` go to kc.sh start.
kc_options() {
    [ "$#" -eq 0 ] && return 0
    [ "$1" = "--" ] || die "unexpected '$1' (Keycloak options go after --)"
}

case "$command" in
up)
    kc_options "$@"
    [ "$#" -gt 0 ] && shift
    postgres_start
    build
    # One at a time: nodes starting together on an empty database race to create its schema.
    for node in a b; do
        pid_alive "$(node_pid "$node")" || node_start "$node" "$@"
    done
    status
    ;;
down) down ;;
status) status ;;
build) build ;;
postgres)
    case "${1:-}" in
    start) postgres_start ;;
    stop) postgres_stop ;;
    *) die "postgres start|stop" ;;
    esac
    ;;
node)
    [ "$#" -ge 2 ] || die "node start|stop|kill NAME"
    action="$1" name="$2"
    shift 2
    case "$action" in
    start)
        kc_options "$@"
        [ "$#" -gt 0 ] && shift
        node_start "$name" "$@"
        ;;
    stop) node_signal "$name" TERM ;;
    kill) node_signal "$name" KILL ;;
    *) die "node start|stop|kill NAME" ;;
    esac
    ;;
help | -h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
