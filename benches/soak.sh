#!/usr/bin/env bash
# Hostile-load soak: one Portcullis process (embedded IdP, a SAML app, an
# app whose upstream is down) under the attacks of issue 15, one line of
# figures per phase beside its target. Loopback only; about a minute.
# See benches/README.md.
#
#   bash benches/soak.sh
#   SCALE=2 bash benches/soak.sh        # twice the posts, clients, seconds
#
#   PORTCULLIS_BIN  use this binary instead of `cargo build --release -p portcullis`
#   SCALE           multiplies every phase's size (default 1)
#   KEEP_TMP=1      keep the temp dir (config, gateway log)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=${SCALE:-1}
HEADER_TIMEOUT=4

if [ -z "${PORTCULLIS_BIN:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p portcullis)
  PORTCULLIS_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis"
fi
[ -f "$REPO/certs-dev/localhost.pem" ] || "$PORTCULLIS_BIN" dev-certs "$REPO/certs-dev" >/dev/null

TMP=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# A port nothing listens on: the "dead" app's upstream.
dead_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
certs="$REPO/certs-dev"
cat >"$TMP/gateway.toml" <<TOML
[server]
https = ["127.0.0.1:0"]
tls_cert = "$certs/localhost.pem"
tls_key = "$certs/localhost-key.pem"
header_read_timeout = "${HEADER_TIMEOUT}s"
idle_timeout = "30s"
acs_per_minute = 100000

[log]
format = "json"
level = "info"
access_log = false

[idp]
public_url = "https://a.test/"
users_file = "$REPO/demo/users.toml"
system_log_file = "$TMP/system-log.jsonl"
signing_key = "$certs/idp-signing-key.pem"
signing_cert = "$certs/idp-signing.pem"
sign_in_per_minute = 100000

[[app]]
name = "b"
public_url = "https://b.test/"
upstream = "builtin:echo"
auth = "saml"
idp = "embedded"
sp_signing_key = "$certs/sp-signing-key.pem"
sp_signing_cert = "$certs/sp-signing.pem"
[[app.access]]
path = "/public"
policy = "public"

[[app]]
name = "dead"
public_url = "https://dead.test/"
upstream = "http://127.0.0.1:$dead_port"
TOML

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$PORTCULLIS_BIN" run --config "$TMP/gateway.toml" >"$TMP/gateway.log" 2>"$TMP/gateway.stderr" &
pid=$!
port=
for _ in $(seq 200); do
  port=$(grep -m1 -o '"https":"\[127.0.0.1:[0-9]*' "$TMP/gateway.log" 2>/dev/null | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$TMP/gateway.stderr" "$TMP/gateway.log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "gateway did not start"; cat "$TMP/gateway.log"; exit 1; }

echo "portcullis $("$PORTCULLIS_BIN" --version | awk '{print $2}') on 127.0.0.1:$port, $(nproc) cores, scale $SCALE"
python3 "$REPO/benches/soak.py" --pid "$pid" --port "$port" --log "$TMP/gateway.log" \
  --header-timeout "$HEADER_TIMEOUT" --scale "$SCALE"
kill -0 "$pid" 2>/dev/null || { echo "the gateway died"; exit 1; }
echo "gateway stderr: $(wc -l <"$TMP/gateway.stderr") lines; RSS now $(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status) MB, peak $(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status) MB"
