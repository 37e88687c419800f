#!/usr/bin/env bash
# Load harness: nginx and Portcullis as TLS reverse proxies in front of the
# SAME backend, measured in ONE run with wrk, alternating rounds, and reported
# as ratios (portcullis / nginx). See benches/README.md.
#
#   bash benches/load.sh
#   DURATION=30s ROUNDS=3 CONNECTIONS=64 bash benches/load.sh
#
# Environment:
#   DURATION        wrk duration of each measured run        (default 10s)
#   ROUNDS          measured rounds, each = nginx then portcullis (default 2)
#   CONNECTIONS     wrk connections                           (default 64)
#   THREADS         wrk threads                               (default 2)
#   WORKERS         workers of EACH proxy (nginx worker_processes, portcullis
#                   [server] workers)                         (default: nproc)
#   WARMUP          warm-up duration per proxy                (default 2s)
#   PORTCULLIS_BIN  use this binary instead of `cargo build --release -p portcullis`
#   BASELINE_BIN    a second Portcullis binary (e.g. the previous commit's)
#                   measured in the same rounds, reported as portcullis/baseline
#   NGINX_BIN       nginx binary                              (default: nginx on PATH or /usr/sbin/nginx)
#   KEEP_TMP=1      keep the temp dir (configs, logs, raw wrk output) for inspection
#   CALLGRIND=1     instead of wrk rounds: each Portcullis binary runs under
#                   valgrind --tool=callgrind (1 worker) and serves REQUESTS
#                   keep-alive requests (default 2000) after a warm-up; the
#                   report is instructions per request, a figure machine
#                   noise does not move (needs BASELINE_BIN for a ratio)
#   AUTH=1          Portcullis with SAML on: the embedded IdP, a signed-in
#                   gateway session (bob, obtained with curl through real SSO)
#                   on every request and five injected identity headers;
#                   nginx stays a plain proxy
#   POST_AUTH=1     with AUTH=1: the portcullis under test evaluates every
#                   request's session context (post-auth, enforced, bound
#                   to ip, asn and device, an ASN database and a zone); the
#                   baseline does not. Use with BASELINE_BIN set to the same
#                   binary to read the feature's cost as portcullis/baseline
#   SHARED=1        with AUTH=1: the portcullis under test runs in [cluster]
#                   mode = "shared" on a redis-server started here (sessions,
#                   one-time ids and tokens in Redis, the node cache on); the
#                   baseline stays single. The report adds the Redis commands
#                   per proxied request (INFO commandstats over the rounds)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
OUT_DIR="$SCRIPT_DIR/out"

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
# Worker threads/processes for BOTH proxies (nginx worker_processes,
# Portcullis [server] workers). Default: one per core, as each ships.
WORKERS=${WORKERS:-$(nproc)}
WARMUP=${WARMUP:-2s}
AUTH=${AUTH:-0}
POST_AUTH=${POST_AUTH:-0}
[[ "$POST_AUTH" == 0 || "$AUTH" == 1 ]] || { printf '[load] ERROR: POST_AUTH=1 needs AUTH=1\n' >&2; exit 1; }
SHARED=${SHARED:-0}
[[ "$SHARED" == 0 || "$AUTH" == 1 ]] || { printf '[load] ERROR: SHARED=1 needs AUTH=1\n' >&2; exit 1; }
CALLGRIND=${CALLGRIND:-0}
REQUESTS=${REQUESTS:-2000}
if [[ "$CALLGRIND" == 1 ]]; then
    # One event loop: every request takes the same path through one thread.
    WORKERS=1
fi

# Recorded before anything else (build included) runs: other load on the
# machine skews both proxies; the summary shows it.
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

CERT="$REPO/certs-dev/localhost.pem"
KEY="$REPO/certs-dev/localhost-key.pem"
CA="$REPO/certs-dev/ca.pem"

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer (got '$CONNECTIONS')"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer (got '$THREADS')"
for f in "$CERT" "$KEY" "$CA"; do [[ -r "$f" ]] || die "missing dev certificate file $f"; done

# --------------------------------------------------------------------------
# Dependencies
# --------------------------------------------------------------------------
# shellcheck source=benches/harness.sh
source "$SCRIPT_DIR/harness.sh"
bench_require wrk:wrk curl:curl python3:python3
if [[ "$SHARED" == 1 ]]; then bench_require redis-server:redis-server redis-cli:redis-tools; fi

if [[ -n "${PORTCULLIS_BIN:-}" ]]; then
    BIN="$PORTCULLIS_BIN"
    [[ "$BIN" == */* && "$BIN" != /* ]] && BIN="$PWD/$BIN"
    [[ "$BIN" == */* ]] || BIN=$(command -v "$BIN" || echo "$BIN")
else
    log "building portcullis (cargo build --release -p portcullis)"
    (cd "$REPO" && cargo build --release -p portcullis) || die "cargo build failed"
    target_dir=${CARGO_TARGET_DIR:-target}
    [[ "$target_dir" = /* ]] || target_dir="$REPO/$target_dir"
    BIN="$target_dir/release/portcullis"
fi
[[ -x "$BIN" ]] || die "portcullis binary not found or not executable: $BIN"

# --------------------------------------------------------------------------
# Temp dir, process tracking, cleanup
# --------------------------------------------------------------------------
bench_workdir load

# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------
if [[ -n "${BASELINE_BIN:-}" ]]; then
    [[ "$BASELINE_BIN" == /* ]] || BASELINE_BIN="$PWD/$BASELINE_BIN"
    [[ -x "$BASELINE_BIN" ]] || die "baseline binary not found or not executable: $BASELINE_BIN"
    NAMES=(nginx baseline portcullis)
else
    NAMES=(nginx portcullis)
fi

read -r BACKEND_PORT NGINX_PORT PORTCULLIS_PORT BASELINE_PORT REDIS_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)
[[ -n "$PORTCULLIS_PORT" ]] || die "could not pick free ports"

# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')
# `http2 on;` exists from nginx 1.25.1; older versions take `listen ... http2`.
if [[ "$(printf '%s\n1.25.1\n' "$NGINX_VERSION" | sort -V | head -n1)" == 1.25.1 ]]; then
    H2_LISTEN=""
    H2_DIRECTIVE="http2 on;"
else
    H2_LISTEN=" http2"
    H2_DIRECTIVE=""
fi

nginx_common() { # dir
    local d=$1
    cat <<EOF
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 16384;
EOF
}

nginx_temp_paths() { # dir
    local d=$1
    cat <<EOF
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;
EOF
}

mkdir -p "$WORK/backend" "$WORK/nginx" "$WORK/portcullis" "$WORK/baseline"
chmod 755 "$WORK/backend" "$WORK/nginx" "$WORK/portcullis" "$WORK/baseline"

{
    nginx_common "$WORK/backend"
    cat <<EOF
worker_processes 1;
events { worker_connections 8192; }
http {
    access_log off;
$(nginx_temp_paths "$WORK/backend")
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { return 200 "hello from backend\n"; }
    }
}
EOF
} >"$WORK/backend/nginx.conf"

{
    nginx_common "$WORK/nginx"
    cat <<EOF
worker_processes $WORKERS;
events { worker_connections 8192; }
http {
    access_log off;
$(nginx_temp_paths "$WORK/nginx")
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream backend_upstream {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl$H2_LISTEN backlog=4096;
        $H2_DIRECTIVE
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {
            proxy_pass http://backend_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header Forwarded "for=\$remote_addr;host=\$host;proto=\$scheme";
            proxy_set_header X-Request-Id \$request_id;
        }
    }
}
EOF
} >"$WORK/nginx/nginx.conf"

portcullis_config() { # dir port
    local d=$1 port=$2
    cat <<EOF
[server]
workers = $WORKERS
https = ["127.0.0.1:$port"]
tls_cert = "$CERT"
tls_key = "$KEY"

[log]
level = "warn"
access_log = false

[[app]]
name = "bench"
public_url = "https://127.0.0.1:$port/"
upstream = "http://127.0.0.1:$BACKEND_PORT"
EOF
    if [[ "$AUTH" == 1 ]]; then
        cat <<EOF
auth = "saml"
idp = "embedded"
sp_signing_key = "$REPO/certs-dev/sp-signing-key.pem"
sp_signing_cert = "$REPO/certs-dev/sp-signing.pem"
inject_template = "header-app"
[[app.inject]]
source = "attribute:firstName"
name = "X-Remote-First-Name"
[[app.inject]]
source = "session:amr"
name = "X-Auth-Method"

[idp]
public_url = "https://127.0.0.1:$port/idp"
users_file = "$REPO/demo/users.toml"
system_log_file = "$d/system-log.jsonl"
signing_key = "$REPO/certs-dev/idp-signing-key.pem"
signing_cert = "$REPO/certs-dev/idp-signing.pem"
EOF
        if [[ "$POST_AUTH" == 1 && "$d" == "$WORK/portcullis" ]]; then
            printf '127.0.0.0\t127.255.255.255\t64500\tZZ\tBench Loopback\n' >"$d/asn.tsv"
            cat >"$d/policy.toml" <<EOF
[[zone]]
name = "loopback"
cidrs = ["127.0.0.0/8"]

[post_auth]
mode = "enforced"
bind = ["ip", "asn", "device"]
EOF
            cat <<EOF
policy_file = "$d/policy.toml"
asn_database = "$d/asn.tsv"
EOF
        fi
        if [[ "$SHARED" == 1 && "$d" == "$WORK/portcullis" ]]; then
            printf 'bench-store-key-0123456789abcdef0123456789abcdef\n' >"$d/store-keys"
            cat <<EOF

[cluster]
mode = "shared"
node_id = "bench"
store_key_file = "$d/store-keys"

[cluster.redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
EOF
        fi
    fi
}
portcullis_config "$WORK/portcullis" "$PORTCULLIS_PORT" >"$WORK/portcullis/portcullis.toml"
portcullis_config "$WORK/baseline" "$BASELINE_PORT" >"$WORK/baseline/portcullis.toml"

# --------------------------------------------------------------------------
# Start processes
# --------------------------------------------------------------------------
start_nginx() { # name
    local d="$WORK/$1"
    "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" -e "$d/error.log" \
        || die "$1 nginx config test failed (see above)"
    (cd "$d" && exec "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log") >"$d/stdout.log" 2>&1 &
    PIDS+=($!)
}

start_portcullis() { # name binary
    local d="$WORK/$1"
    local run=("$2")
    if [[ "$CALLGRIND" == 1 ]]; then
        run=(valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.out" "$2")
    fi
    (cd "$d" && exec "${run[@]}" run --config "$d/portcullis.toml") >"$d/portcullis.log" 2>&1 &
    PIDS+=($!)
}

# Waits under valgrind are longer: start-up and argon2 run ~50x slower.
READY_TRIES=100
[[ "$CALLGRIND" == 1 ]] && READY_TRIES=1200

wait_ready() { # name pid url [curl args...]
    local name=$1 pid=$2 url=$3 i code
    shift 3
    for ((i = 0; i < READY_TRIES; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during start-up; its logs:"
            tail -n 30 "$WORK/$name"/*.log >&2 2>/dev/null || true
            die "$name failed to start"
        fi
        code=$(curl -sS -A "" -o "$WORK/$name/probe.body" -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true)
        if [[ "$code" == 200 ]]; then
            grep -qx 'hello from backend' "$WORK/$name/probe.body" \
                || die "$name answered 200 but not with the backend's body: $(head -c 200 "$WORK/$name/probe.body")"
            return 0
        fi
        sleep 0.1
    done
    log "$name logs:"
    tail -n 30 "$WORK/$name"/*.log >&2 2>/dev/null || true
    die "$name did not answer 200 on $url within $((READY_TRIES / 10))s (last status: ${code:-none})"
}

# AUTH=1: bob signs in through the real SAML flow with curl; sets SESSION_TOKEN.
sign_in_through_sso() { # name port
    local base="https://127.0.0.1:$2" jar="$WORK/$1/cookies.txt" i
    # No User-Agent, like wrk: the session's device is the load's (POST_AUTH=1
    # binds it).
    local c=(curl -sS -A "" --cacert "$CA" -c "$jar" -b "$jar" --max-time 120)
    for ((i = 0; i < READY_TRIES; i++)); do
        [[ "$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/idp/login" 2>/dev/null || true)" == 200 ]] && break
        sleep 0.1
    done
    local sso login page csrf from done_to form response relay
    sso=$("${c[@]}" -o /dev/null -w '%{redirect_url}' -H 'Accept: text/html' "$base/")
    login=$("${c[@]}" -o /dev/null -w '%{redirect_url}' "$sso")
    page=$("${c[@]}" "$login")
    csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' <<<"$page" | head -n1)
    from=$(sed -n 's/.*name="fromURI" value="\([^"]*\)".*/\1/p' <<<"$page" | head -n1 | sed -e 's/&amp;/\&/g' -e 's/&#38;/\&/g')
    [[ -n "$csrf" && -n "$from" ]] || die "AUTH=1: no sign-in form at $login"
    done_to=$("${c[@]}" -o /dev/null -w '%{redirect_url}' --data-urlencode "csrf=$csrf" \
        --data-urlencode "fromURI=$from" --data-urlencode "username=bob" \
        --data-urlencode "password=bob-demo-pass" "$base/idp/login")
    form=$("${c[@]}" "$done_to")
    response=$(sed -n 's/.*name="SAMLResponse" value="\([^"]*\)".*/\1/p' <<<"$form" | head -n1)
    relay=$(sed -n 's/.*name="RelayState" value="\([^"]*\)".*/\1/p' <<<"$form" | head -n1)
    [[ -n "$response" ]] || die "AUTH=1: the IdP did not answer with a SAMLResponse"
    "${c[@]}" -o /dev/null --data-urlencode "SAMLResponse=$response" \
        --data-urlencode "RelayState=$relay" "$base/_portcullis/saml/acs"
    SESSION_TOKEN=$(awk '$6 == "pc_bench" {print $7}' "$jar" | tail -n1)
    [[ -n "$SESSION_TOKEN" ]] || die "AUTH=1: no gateway session after the ACS"
    log "AUTH=1: $1 signed in through SSO; gateway session cookie obtained"
}

tls_info() { # url
    curl -sS -v -o /dev/null --cacert "$CA" "$1" 2>&1 \
        | sed -n 's/^\* SSL connection using \(.*\)$/\1/p' | head -n1
}

log "temp dir $WORK; backend :$BACKEND_PORT, nginx :$NGINX_PORT, portcullis :$PORTCULLIS_PORT"
start_nginx backend
BACKEND_PID=${PIDS[-1]}
wait_ready backend "$BACKEND_PID" "http://127.0.0.1:$BACKEND_PORT/"

start_nginx nginx
NGINX_PID=${PIDS[-1]}

# SHARED=1: the store the portcullis under test keeps its sessions in.
redis_commands() { # commands Redis ran, but for PING, INFO and connection set-up
    redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
        /^cmdstat_/ { name = substr($1, 9); if (name !~ /^(ping|info|hello|client\||subscribe|command\|)/) n += $3 }
        END { print n + 0 }'
}
if [[ "$SHARED" == 1 ]]; then
    mkdir -p "$WORK/redis"
    (cd "$WORK/redis" && exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$WORK/redis") >"$WORK/redis/redis.log" 2>&1 &
    PIDS+=($!)
    for ((i = 0; i < 100; i++)); do
        [[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]] && break
        sleep 0.1
    done
    [[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]] || die "redis-server did not start"
fi
wait_ready nginx "$NGINX_PID" "https://127.0.0.1:$NGINX_PORT/" --cacert "$CA"

declare -A PORT=([portcullis]=$PORTCULLIS_PORT [baseline]=$BASELINE_PORT)
declare -A BINARY=([portcullis]=$BIN [baseline]=${BASELINE_BIN:-})
declare -A COOKIE=()
for name in "${NAMES[@]:1}"; do
    start_portcullis "$name" "${BINARY[$name]}"
    printf -v "${name^^}_PID" '%s' "${PIDS[-1]}"
    headers=()
    if [[ "$AUTH" == 1 ]]; then
        sign_in_through_sso "$name" "${PORT[$name]}"
        COOKIE[$name]="pc_bench=$SESSION_TOKEN"
        headers=(-H "Cookie: ${COOKIE[$name]}")
    fi
    pid_var="${name^^}_PID"
    wait_ready "$name" "${!pid_var}" "https://127.0.0.1:${PORT[$name]}/" --cacert "$CA" "${headers[@]}"
done

NGINX_TLS=$(tls_info "https://127.0.0.1:$NGINX_PORT/")
PORTCULLIS_TLS=$(tls_info "https://127.0.0.1:$PORTCULLIS_PORT/")

# --------------------------------------------------------------------------
# CALLGRIND=1: instructions per request instead of wrk rounds
# --------------------------------------------------------------------------
# keep_alive_requests name count: `count` GETs on one HTTP/1.1 connection.
keep_alive_requests() {
    local name=$1 count=$2 list="$WORK/$1/requests.curl" i
    : >"$list"
    for ((i = 0; i < count; i++)); do
        printf 'url = "https://127.0.0.1:%s/"\noutput = "/dev/null"\n' "${PORT[$name]}" >>"$list"
    done
    local extra=()
    [[ -n "${COOKIE[$name]:-}" ]] && extra=(-H "Cookie: ${COOKIE[$name]}")
    curl -sS -A "" --http1.1 --cacert "$CA" --fail "${extra[@]}" -K "$list" || die "$name: a request failed"
}

if [[ "$CALLGRIND" == 1 ]]; then
    declare -A IR
    for name in "${NAMES[@]:1}"; do
        pid_var="${name^^}_PID"
        keep_alive_requests "$name" 50
        callgrind_control -z "${!pid_var}" >/dev/null || die "callgrind_control -z failed for $name"
        log "$name: $REQUESTS requests under callgrind"
        keep_alive_requests "$name" "$REQUESTS"
        callgrind_control -d "${!pid_var}" >/dev/null || die "callgrind_control -d failed for $name"
        dump=$(ls -t "$WORK/$name"/callgrind.out.* 2>/dev/null | head -n1)
        [[ -n "$dump" ]] || die "$name: no callgrind dump written"
        total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
        IR[$name]=$(awk -v t="$total" -v n="$REQUESTS" 'BEGIN { printf "%.0f\n", t / n }')
    done
    SUMMARY=$(
        echo "Portcullis instructions per request (valgrind --tool=callgrind, 1 worker) - $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
        echo "$REQUESTS keep-alive HTTP/1.1 GET / over TLS after 50 warm-up requests; counters zeroed between"
        [[ "$AUTH" == 1 ]] && echo "AUTH=1: a SAML gateway session checked and 5 identity headers injected per request"
        [[ "$POST_AUTH" == 1 ]] && echo "POST_AUTH=1: portcullis evaluates each request's session context (enforced; ip, asn, device bound); baseline does not"
        for name in "${NAMES[@]:1}"; do
            printf '%-12s %12s instructions/request  (%s)\n' "$name" "${IR[$name]}" "${BINARY[$name]}"
        done
        if [[ -n "${BASELINE_BIN:-}" ]]; then
            echo "ratio portcullis/baseline: $(awk -v a="${IR[portcullis]}" -v b="${IR[baseline]}" 'BEGIN { printf "%.3f", a / b }')x instructions per request"
        fi
    )
    mkdir -p "$OUT_DIR"
    printf '%s\n' "$SUMMARY" >"$OUT_DIR/callgrind-summary.txt"
    echo
    printf '%s\n' "$SUMMARY"
    exit 0
fi

# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------
ERRORS=()
RAW="$WORK/wrk-raw.txt"
: >"$RAW"

# Converts wrk latency ("812.00us", "1.23ms", "1.02s", "1.00m") to ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (match(v, /^[0-9.]+/)) { n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1) } else { print "nan"; exit }
        if (u == "us") f = 0.001; else if (u == "ms") f = 1; else if (u == "s") f = 1000;
        else if (u == "m") f = 60000; else if (u == "h") f = 3600000; else { print "nan"; exit }
        printf "%.3f\n", n * f
    }'
}

# run_wrk NAME LABEL URL DURATION -> sets W_RPS W_P50 W_P99 W_REQS W_ERRS
run_wrk() {
    local name=$1 label=$2 url=$3 dur=$4
    local out="$WORK/wrk-$label-$name.txt"
    local pid_var="${name^^}_PID"
    kill -0 "${!pid_var}" 2>/dev/null || die "$name is no longer running before $label run"
    local extra=()
    [[ -n "${COOKIE[$name]:-}" ]] && extra=(-H "Cookie: ${COOKIE[$name]}")
    if ! wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency "${extra[@]}" "$url" >"$out" 2>&1; then
        cat "$out" >&2
        die "wrk failed against $name ($label)"
    fi
    { echo "===== $label $name ($dur) ====="; cat "$out"; } >>"$RAW"
    W_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    W_P50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    W_P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    W_REQS=$(awk '/ requests in / {print $1}' "$out")
    local sock non2xx
    sock=$(sed -n 's/^ *Socket errors: *//p' "$out")
    non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$out")
    W_ERRS=""
    if [[ -n "$sock" ]]; then W_ERRS+="socket errors: $sock; "; fi
    if [[ -n "$non2xx" && "$non2xx" != 0 ]]; then W_ERRS+="non-2xx/3xx: $non2xx; "; fi
    if [[ -z "$W_RPS" || -z "$W_REQS" || "$W_REQS" == 0 || "$W_P99" == nan || "$W_P50" == nan ]]; then
        W_ERRS+="could not parse wrk output or zero requests; "
    fi
    if ! kill -0 "${!pid_var}" 2>/dev/null; then W_ERRS+="$name died during the run; "; fi
    if [[ -n "$W_ERRS" ]]; then
        ERRORS+=("$label $name: ${W_ERRS%; }")
        log "PROBLEM in $label $name: ${W_ERRS%; }"
    fi
}

declare -A URL=(
    [nginx]="https://127.0.0.1:$NGINX_PORT/"
    [portcullis]="https://127.0.0.1:$PORTCULLIS_PORT/"
    [baseline]="https://127.0.0.1:$BASELINE_PORT/"
)
declare -A RPS P50 P99 ERR

for name in "${NAMES[@]}"; do
    log "warm-up $name ($WARMUP)"
    run_wrk "$name" warmup "${URL[$name]}" "$WARMUP"
done

# CPU time (user + system, in clock ticks) the proxy's processes have used:
# the process and its children (nginx's workers), from the kernel's own
# accounting, so the figure is what serving cost, not what wrk saw.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pid
    local pids=("$1") total=0 p
    mapfile -t -O 1 pids < <(ps -o pid= --ppid "$1" | tr -d ' ')
    for p in "${pids[@]}"; do
        [[ -r "/proc/$p/stat" ]] || continue
        # Fields after the parenthesised command: utime is 14, stime 15.
        total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}

declare -A CPU
REDIS_OPS=0
PORTCULLIS_REQS=0
for ((r = 1; r <= ROUNDS; r++)); do
    for name in "${NAMES[@]}"; do
        log "round $r/$ROUNDS: $name ($DURATION, $CONNECTIONS connections, $THREADS threads)"
        [[ "$SHARED" == 1 && "$name" == portcullis ]] && ops_before=$(redis_commands)
        pid_var="${name^^}_PID"
        ticks_before=$(cpu_ticks "${!pid_var}")
        run_wrk "$name" "round$r" "${URL[$name]}" "$DURATION"
        ticks_after=$(cpu_ticks "${!pid_var}")
        CPU[$name,$r]=$(awk -v t="$((ticks_after - ticks_before))" -v hz="$CLK_TCK" -v n="${W_REQS:-0}" \
            'BEGIN { if (n + 0 == 0) print "nan"; else printf "%.2f\n", t * 1e6 / hz / n }')
        if [[ "$SHARED" == 1 && "$name" == portcullis ]]; then
            REDIS_OPS=$((REDIS_OPS + $(redis_commands) - ops_before))
            PORTCULLIS_REQS=$((PORTCULLIS_REQS + W_REQS))
        fi
        RPS[$name,$r]=$W_RPS
        P50[$name,$r]=$W_P50
        P99[$name,$r]=$W_P99
        ERR[$name,$r]=${W_ERRS:+ERR}
    done
done

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
median() { # values...
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f\n", a / b }'; }

declare -A MRPS MP50 MP99 MCPU
for name in "${NAMES[@]}"; do
    rps=() p50=() p99=() cpu=()
    for ((r = 1; r <= ROUNDS; r++)); do
        rps+=("${RPS[$name,$r]}"); p50+=("${P50[$name,$r]}"); p99+=("${P99[$name,$r]}"); cpu+=("${CPU[$name,$r]}")
    done
    MRPS[$name]=$(median "${rps[@]}")
    MP50[$name]=$(median "${p50[@]}")
    MP99[$name]=$(median "${p99[@]}")
    MCPU[$name]=$(median "${cpu[@]}")
done

PORTCULLIS_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null || true)" ]]; then
    PORTCULLIS_REV+="-dirty"
fi
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 {print $2}')
agg="median of $ROUNDS rounds"; ((ROUNDS > 1)) || agg="single round"

SUMMARY=$(
    echo "Portcullis vs nginx load test - $(date -u '+%Y-%m-%dT%H:%M:%SZ') on $(hostname) ($(nproc) cores, load average at start: $LOADAVG_START)"
    echo "wrk $WRK_VERSION: -t$THREADS -c$CONNECTIONS -d$DURATION --latency, HTTP/1.1 over TLS, GET /, $ROUNDS round(s) alternating $(IFS=/; echo "${NAMES[*]}") after ${WARMUP} warm-up each"
    if [[ "$AUTH" == 1 ]]; then
        echo "AUTH=1: portcullis checks a SAML gateway session and injects 5 identity headers on every request; nginx is a plain proxy"
        [[ "$POST_AUTH" == 1 ]] && echo "POST_AUTH=1: portcullis also evaluates each request's session context (enforced; ip, asn, device bound); baseline does not"
        if [[ "$SHARED" == 1 ]]; then
            echo "SHARED=1: portcullis keeps its sessions in Redis ([cluster] mode = \"shared\", redis-server $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p') on loopback, node cache on); baseline stays single"
            echo "Redis commands per proxied request (portcullis rounds): $(awk -v o="$REDIS_OPS" -v n="$PORTCULLIS_REQS" 'BEGIN { if (n == 0) print "nan"; else printf "%.5f", o / n }') ($REDIS_OPS commands, $PORTCULLIS_REQS requests)"
        fi
    fi
    echo "backend: nginx $NGINX_VERSION, 1 worker, return 200 \"hello from backend\\n\""
    echo "nginx:      $NGINX_VERSION, $WORKERS workers, upstream keepalive 128    TLS: ${NGINX_TLS:-?}"
    echo "portcullis: $PORTCULLIS_REV, $WORKERS workers ($BIN)    TLS: ${PORTCULLIS_TLS:-?}"
    if [[ -n "${BASELINE_BIN:-}" ]]; then
        echo "baseline:   $WORKERS workers ($BASELINE_BIN)"
    fi
    echo
    echo "per round:"
    printf '%-7s %-12s %12s %9s %9s %11s  %s\n' round proxy req/s "p50 ms" "p99 ms" "CPU us/req" ""
    for ((r = 1; r <= ROUNDS; r++)); do
        for name in "${NAMES[@]}"; do
            printf '%-7s %-12s %12.2f %9.3f %9.3f %11s  %s\n' "$r" "$name" \
                "${RPS[$name,$r]:-0}" "${P50[$name,$r]:-0}" "${P99[$name,$r]:-0}" "${CPU[$name,$r]:-nan}" "${ERR[$name,$r]:-}"
        done
        printf '%-7s %-12s %11sx %8sx %8sx %10sx\n' "$r" "ratio" \
            "$(ratio "${RPS[portcullis,$r]}" "${RPS[nginx,$r]}")" \
            "$(ratio "${P50[portcullis,$r]}" "${P50[nginx,$r]}")" \
            "$(ratio "${P99[portcullis,$r]}" "${P99[nginx,$r]}")" \
            "$(ratio "${CPU[portcullis,$r]}" "${CPU[nginx,$r]}")"
        if [[ -n "${BASELINE_BIN:-}" ]]; then
            printf '%-7s %-12s %11sx %8sx %8sx %10sx\n' "$r" "vs baseline" \
                "$(ratio "${RPS[portcullis,$r]}" "${RPS[baseline,$r]}")" \
                "$(ratio "${P50[portcullis,$r]}" "${P50[baseline,$r]}")" \
                "$(ratio "${P99[portcullis,$r]}" "${P99[baseline,$r]}")" \
                "$(ratio "${CPU[portcullis,$r]}" "${CPU[baseline,$r]}")"
        fi
    done
    echo
    echo "$agg:"
    printf '%-12s %12s %9s %9s %11s\n' proxy req/s "p50 ms" "p99 ms" "CPU us/req"
    for name in "${NAMES[@]}"; do
        printf '%-12s %12.2f %9.3f %9.3f %11s\n' "$name" "${MRPS[$name]}" "${MP50[$name]}" "${MP99[$name]}" "${MCPU[$name]}"
    done
    echo "ratio portcullis/nginx: throughput $(ratio "${MRPS[portcullis]}" "${MRPS[nginx]}")x, p99 $(ratio "${MP99[portcullis]}" "${MP99[nginx]}")x (p50 $(ratio "${MP50[portcullis]}" "${MP50[nginx]}")x), CPU per request $(ratio "${MCPU[portcullis]}" "${MCPU[nginx]}")x"
    if [[ -n "${BASELINE_BIN:-}" ]]; then
        echo "ratio baseline/nginx: throughput $(ratio "${MRPS[baseline]}" "${MRPS[nginx]}")x, p99 $(ratio "${MP99[baseline]}" "${MP99[nginx]}")x, CPU per request $(ratio "${MCPU[baseline]}" "${MCPU[nginx]}")x"
        echo "ratio portcullis/baseline: throughput $(ratio "${MRPS[portcullis]}" "${MRPS[baseline]}")x, p99 $(ratio "${MP99[portcullis]}" "${MP99[baseline]}")x (p50 $(ratio "${MP50[portcullis]}" "${MP50[baseline]}")x), CPU per request $(ratio "${MCPU[portcullis]}" "${MCPU[baseline]}")x"
    fi
    echo "CPU us/req: the proxy's processes' user+system time over the round (/proc/<pid>/stat, nginx master and workers) / requests served; resolution 1/$CLK_TCK s"
    echo "the wrk client runs on the same $(nproc) cores, so these figures include its contention with the proxy"
    
    if ((${#ERRORS[@]})); then
        echo
        echo "FAILED: errors or non-2xx responses:"
        printf '  %s\n' "${ERRORS[@]}"
    fi
)

mkdir -p "$OUT_DIR"
printf '%s\n' "$SUMMARY" >"$OUT_DIR/load-summary.txt"
cp "$RAW" "$OUT_DIR/load-wrk-raw.txt"
echo
printf '%s\n' "$SUMMARY"
echo
log "summary written to $OUT_DIR/load-summary.txt (raw wrk output: $OUT_DIR/load-wrk-raw.txt)"

if ((${#ERRORS[@]})); then
    exit 1
fi
