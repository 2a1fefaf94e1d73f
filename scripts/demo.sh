#!/usr/bin/env bash
# The demo: Keycloak signing its tokens with a key that lives in (an emulated) AWS KMS.
#
#   1. setup (cached downloads) and build;
#   2. start the KMS emulator with an RSA_2048 signing key, alias/keycloak-demo;
#   3. start Keycloak (start-dev, loopback only) with the provider and a realm "demo" whose RS256
#      key is that KMS key (tests/fixtures/demo-realm.json, imported at startup);
#   4. request a token, print it decoded, and verify its signature against the KMS public key;
#   5. stay up until Ctrl-C, then stop both processes.
#
# Ports: AWSKMS_DEMO_HTTP_PORT (default 8080), AWSKMS_DEMO_MANAGEMENT_PORT (default 9000).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AWSKMS_ROOT"

HTTP_PORT="${AWSKMS_DEMO_HTTP_PORT:-8080}"
MANAGEMENT_PORT="${AWSKMS_DEMO_MANAGEMENT_PORT:-9000}"
DEMO_DIR="$AWSKMS_CACHE_DIR/demo"
KEY_ALIAS="alias/keycloak-demo"
REALM_URL="http://127.0.0.1:$HTTP_PORT/realms/demo"
# The emulator's default credentials (docs/design.md); only valid against the local emulator.
export AWSKMS_DEMO_ACCESS_KEY_ID=AKIAEMULATOR00000001
export AWSKMS_DEMO_SECRET_ACCESS_KEY=emulator-secret-access-key-0001
export AWSKMS_DEMO_REGION=us-east-1
export AWSKMS_DEMO_KMS_KEY_ID="$KEY_ALIAS"

bash scripts/setup.sh
bash scripts/build.sh
set -a
# shellcheck disable=SC1090  # written by setup.sh
. "$AWSKMS_SETUP_ENV"
set +a

mkdir -p "$DEMO_DIR"
exec 8>"$DEMO_DIR/.lock"
flock -n 8 || die "another demo is running (lock $DEMO_DIR/.lock)"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free "$HTTP_PORT" || die "port $HTTP_PORT is in use; set AWSKMS_DEMO_HTTP_PORT"
port_free "$MANAGEMENT_PORT" || die "port $MANAGEMENT_PORT is in use; set AWSKMS_DEMO_MANAGEMENT_PORT"

emulator_pid=""
keycloak_pid=""
# shellcheck disable=SC2317  # stop_group and cleanup run from the EXIT trap
# Stops a process group started with setsid: SIGTERM, then SIGKILL after $2 seconds.
stop_group() {
    local pid="$1" grace="$2" i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
    trap - EXIT INT TERM
    printf '\n'
    if [ -n "$keycloak_pid" ]; then
        say "stopping Keycloak"
        stop_group "$keycloak_pid" 30
    fi
    if [ -n "$emulator_pid" ]; then
        say "stopping the KMS emulator"
        stop_group "$emulator_pid" 10
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- KMS emulator -----------------------------------------------------------------------------
say "starting the KMS emulator with $KEY_ALIAS (RSA_2048)"
: >"$DEMO_DIR/kms-emulator.out"
setsid target/release/kms-emulator --create-key "$KEY_ALIAS=RSA_2048" \
    >"$DEMO_DIR/kms-emulator.out" 2>"$DEMO_DIR/kms-emulator.log" </dev/null &
emulator_pid=$!
for _ in $(seq 1 300); do
    [ -s "$DEMO_DIR/kms-emulator.out" ] && break
    kill -0 "$emulator_pid" 2>/dev/null || die "kms-emulator exited: $(tail -n 20 "$DEMO_DIR/kms-emulator.log")"
    sleep 0.1
done
emulator_json="$(head -n 1 "$DEMO_DIR/kms-emulator.out")"
[ -n "$emulator_json" ] || die "kms-emulator printed nothing within 30s"
json_field() { "$AWSKMS_VENV/bin/python" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$emulator_json" "$1"; }
KMS_URL="$(json_field kms)"
export AWSKMS_DEMO_ENDPOINT_URL="$KMS_URL"
say "KMS emulator: $KMS_URL (control API $(json_field control))"

# --- Keycloak ---------------------------------------------------------------------------------
KC_HOME="$DEMO_DIR/keycloak-$KEYCLOAK_VERSION"
if [ ! -x "$KC_HOME/bin/kc.sh" ]; then
    say "unpacking Keycloak $KEYCLOAK_VERSION into $DEMO_DIR"
    rm -rf "$KC_HOME"
    tar -xzf "$KEYCLOAK_DIST_TGZ" -C "$DEMO_DIR"
fi
jar="$(provider_jar)" || die "no provider JAR in java/target"
rm -f "$KC_HOME"/providers/keycloak-aws-kms-*.jar
cp "$jar" "$KC_HOME/providers/"
# A fresh database each run: the realm points at this run's emulator.
rm -rf "$KC_HOME/data"
mkdir -p "$KC_HOME/data/import"
cp tests/fixtures/demo-realm.json "$KC_HOME/data/import/demo-realm.json"

say "starting Keycloak $KEYCLOAK_VERSION (Java $(java_major "$KEYCLOAK_JAVA_HOME")); log: $DEMO_DIR/keycloak.log"
(
    cd "$KC_HOME"
    # The provider gets its credentials from the component only.
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION
    export JAVA_HOME="$KEYCLOAK_JAVA_HOME" AWS_EC2_METADATA_DISABLED=true \
        KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin
    exec setsid bin/kc.sh start-dev --import-realm --http-host=127.0.0.1 \
        --http-port="$HTTP_PORT" --http-management-port="$MANAGEMENT_PORT" --health-enabled=true \
        >"$DEMO_DIR/keycloak.log" 2>&1 </dev/null
) &
keycloak_pid=$!
started=$SECONDS
until curl -sf "http://127.0.0.1:$MANAGEMENT_PORT/health/ready" >/dev/null 2>&1; do
    if ! kill -0 "$keycloak_pid" 2>/dev/null; then
        tail -n 40 "$DEMO_DIR/keycloak.log" >&2
        die "Keycloak exited during startup (log above: $DEMO_DIR/keycloak.log)"
    fi
    if ((SECONDS - started > 240)); then
        tail -n 40 "$DEMO_DIR/keycloak.log" >&2
        die "Keycloak was not ready within 240s (log above: $DEMO_DIR/keycloak.log)"
    fi
    sleep 1
done
say "Keycloak ready in $((SECONDS - started))s"

# --- a token, and the proof that KMS signed it --------------------------------------------------
say "POST $REALM_URL/protocol/openid-connect/token (password grant, user demo)"
token_response="$(curl -sS --max-time 60 "$REALM_URL/protocol/openid-connect/token" \
    -d grant_type=password -d client_id=demo-client -d client_secret=demo-client-secret \
    -d username=demo -d password=demo -d scope=openid)"
printf '%s' "$token_response" |
    AWS_ACCESS_KEY_ID="$AWSKMS_DEMO_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWSKMS_DEMO_SECRET_ACCESS_KEY" \
        AWS_EC2_METADATA_DISABLED=true \
        "$AWSKMS_VENV/bin/python" tests/tools/verify_token.py --kms-url "$KMS_URL" \
        --key-id "$KEY_ALIAS" --region "$AWSKMS_DEMO_REGION" \
        --jwks-url "$REALM_URL/protocol/openid-connect/certs" ||
    die "the demo token did not verify (Keycloak log: $DEMO_DIR/keycloak.log)"

cat <<EOF

Admin console:  http://127.0.0.1:$HTTP_PORT/admin/  (user admin, password admin)
                realm "demo" > Realm settings > Keys shows the aws-kms key
Demo realm:     $REALM_URL  (client demo-client / demo-client-secret, user demo / demo)
Get a token:    curl -s $REALM_URL/protocol/openid-connect/token -d grant_type=password \\
                  -d client_id=demo-client -d client_secret=demo-client-secret -d username=demo -d password=demo
KMS emulator:   $KMS_URL
Logs:           $DEMO_DIR/keycloak.log, $DEMO_DIR/kms-emulator.log

Press Ctrl-C to stop.
EOF
wait "$keycloak_pid" || true
die "Keycloak stopped unexpectedly (log: $DEMO_DIR/keycloak.log)"
