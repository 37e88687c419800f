#!/usr/bin/env bash
# Idle-connection memory: bytes of resident memory each idle TLS connection
# costs Portcullis and nginx, HTTP/1.1 and HTTP/2, measured in ONE run on
# loopback and reported beside each other with the ratio portcullis/nginx.
# See benches/README.md.
#
#   bash benches/idle_memory.sh
#   CONNS=5000 bash benches/idle_memory.sh
#
# Environment:
#   CONNS           idle connections opened per measure       (default 2000)
#   WORKERS         workers of EACH proxy                     (default 2)
#   ROUNDS          measures per proxy and protocol; the median is reported (default 1)
#   PORTCULLIS_BIN  use this binary instead of `cargo build --release -p portcullis`
#   BASELINE_BIN    a second Portcullis binary measured the same way, reported
#                   as baseline and as portcullis/baseline
#   NGINX_BIN       nginx binary                              (default: nginx on PATH or /usr/sbin/nginx)
#   KEEP_TMP=1      keep the temp dir (configs, logs)
#
# Each measure starts the proxy afresh, opens and closes a warm-up of 50
# connections, reads VmRSS (for nginx: master + workers), opens CONNS TLS
# connections that each complete one GET / and then stay idle on
# keep-alive, waits 3 s, reads VmRSS again, checks that every connection is
# still open, and stops the proxy. bytes/conn = (after - before) / CONNS.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
OUT_DIR="$SCRIPT_DIR/out"

CONNS=${CONNS:-2000}
WORKERS=${WORKERS:-2}
ROUNDS=${ROUNDS:-1}

CERT="$REPO/certs-dev/localhost.pem"
KEY="$REPO/certs-dev/localhost-key.pem"
CA="$REPO/certs-dev/ca.pem"

log() { printf '[idle] %s\n' "$*" >&2; }
die() { printf '[idle] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$CONNS" =~ ^[1-9][0-9]*$ ]] || die "CONNS must be a positive integer (got '$CONNS')"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer (got '$WORKERS')"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
for f in "$CERT" "$KEY" "$CA"; do [[ -r "$f" ]] || die "missing dev certificate file $f (make certs)"; done

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

# --------------------------------------------------------------------------
# Dependencies: nginx, curl, python3 (standard library only)
# --------------------------------------------------------------------------
# shellcheck source=benches/harness.sh
source "$SCRIPT_DIR/harness.sh"
bench_require curl:curl python3:python3

resolve_bin() { # path
    local b=$1
    [[ "$b" == */* && "$b" != /* ]] && b="$PWD/$b"
    [[ "$b" == */* ]] || b=$(command -v "$b" || echo "$b")
    [[ -x "$b" ]] || die "portcullis binary not found or not executable: $b"
    echo "$b"
}
if [[ -n "${PORTCULLIS_BIN:-}" ]]; then
    BIN=$(resolve_bin "$PORTCULLIS_BIN")
else
    log "building portcullis (cargo build --release -p portcullis)"
    (cd "$REPO" && cargo build --release -p portcullis) || die "cargo build failed"
    target_dir=${CARGO_TARGET_DIR:-target}
    [[ "$target_dir" = /* ]] || target_dir="$REPO/$target_dir"
    BIN=$(resolve_bin "$target_dir/release/portcullis")
fi
NAMES=(nginx portcullis)
declare -A BINARY=([portcullis]=$BIN)
if [[ -n "${BASELINE_BIN:-}" ]]; then
    BINARY[baseline]=$(resolve_bin "$BASELINE_BIN")
    NAMES=(nginx baseline portcullis)
fi

# The client holds CONNS sockets; each proxy CONNS client sockets plus its
# upstream ones. Children inherit the raised limit.
want_fds=$((CONNS + 1024))
if (($(ulimit -n) < want_fds)); then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= want_fds)) || die "RLIMIT_NOFILE $(ulimit -n) is below the $want_fds that CONNS=$CONNS needs (hard limit $(ulimit -Hn))"
fi

# --------------------------------------------------------------------------
# Temp dir, process tracking, cleanup
# --------------------------------------------------------------------------
bench_workdir idle

read -r BACKEND_PORT PROXY_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)
[[ -n "$PROXY_PORT" ]] || die "could not pick free ports"

# --------------------------------------------------------------------------
# Configs: the same backend and TLS certificate for both proxies; idle
# timeouts far longer than a measure, so nothing idle is closed during it.
# --------------------------------------------------------------------------
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')
if [[ "$(printf '%s\n1.25.1\n' "$NGINX_VERSION" | sort -V | head -n1)" == 1.25.1 ]]; then
    H2_LISTEN=""
    H2_DIRECTIVE="http2 on;"
else
    H2_LISTEN=" http2"
    H2_DIRECTIVE=""
fi

nginx_head() { # dir workers
    cat <<EOF
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile $((CONNS * 2 + 1024));
worker_processes $2;
events { worker_connections $((CONNS * 2 + 1024)); }
EOF
}

nginx_temp_paths() { # dir
    cat <<EOF
    client_body_temp_path $1/client_body_temp;
    proxy_temp_path $1/proxy_temp;
    fastcgi_temp_path $1/fastcgi_temp;
    uwsgi_temp_path $1/uwsgi_temp;
    scgi_temp_path $1/scgi_temp;
EOF
}

mkdir -p "$WORK/backend" "$WORK/nginx" "$WORK/portcullis" "$WORK/baseline"
chmod 755 "$WORK"/*

{
    nginx_head "$WORK/backend" 1
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$WORK/backend")
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    default_type text/plain;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { return 200 "hello from backend\n"; }
    }
}
EOF
} >"$WORK/backend/nginx.conf"

{
    nginx_head "$WORK/nginx" "$WORKERS"
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$WORK/nginx")
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    upstream backend_upstream {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT ssl$H2_LISTEN backlog=4096;
        $H2_DIRECTIVE
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
EOF
} >"$WORK/nginx/nginx.conf"

for name in portcullis baseline; do
    cat >"$WORK/$name/portcullis.toml" <<EOF
[server]
workers = $WORKERS
https = ["127.0.0.1:$PROXY_PORT"]
tls_cert = "$CERT"
tls_key = "$KEY"
idle_timeout = "600s"
max_connections = $((CONNS + 1024))

[log]
level = "warn"
access_log = false

[[app]]
name = "bench"
public_url = "https://127.0.0.1:$PROXY_PORT/"
upstream = "http://127.0.0.1:$BACKEND_PORT"
EOF
done

# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------
wait_ready() { # name pid url [curl args...]
    local name=$1 pid=$2 url=$3 i code
    shift 3
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$WORK/$name"/*.log >&2 2>/dev/null || true; die "$name exited during start-up"; }
        code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true)
        [[ "$code" == 200 ]] && return 0
        sleep 0.1
    done
    tail -n 30 "$WORK/$name"/*.log >&2 2>/dev/null || true
    die "$name did not answer 200 on $url within 10s (last status: ${code:-none})"
}

# start NAME -> sets STARTED (the pid to stop) and RSS_PIDS (the pids whose
# memory counts: nginx's master and workers, or the one Portcullis process)
start() {
    local name=$1 d="$WORK/$1" i
    if [[ "$name" == nginx || "$name" == backend ]]; then
        "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" -e "$d/error.log" || die "$name nginx config test failed"
        (cd "$d" && exec "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log") >"$d/stdout.log" 2>&1 &
    else
        (cd "$d" && exec "${BINARY[$name]}" run --config "$d/portcullis.toml") >"$d/portcullis.log" 2>&1 &
    fi
    STARTED=$!
    PIDS+=("$STARTED")
    if [[ "$name" == backend ]]; then
        wait_ready "$name" "$STARTED" "http://127.0.0.1:$BACKEND_PORT/"
        return
    fi
    wait_ready "$name" "$STARTED" "https://127.0.0.1:$PROXY_PORT/" --cacert "$CA"
    RSS_PIDS=$STARTED
    if [[ "$name" == nginx ]]; then
        local workers=""
        for ((i = 0; i < 50; i++)); do
            workers=$(pgrep -P "$STARTED" | paste -sd, -)
            (($(tr ',' '\n' <<<"$workers" | grep -c .) >= WORKERS)) && break
            sleep 0.1
        done
        RSS_PIDS="$STARTED,$workers"
    fi
}

stop_started() {
    stop_pid "$STARTED" TERM 30
    PIDS=("${PIDS[@]:0:${#PIDS[@]}-1}")
}

start backend

# measure NAME PROTO -> sets MEASURED to the client's line
measure() {
    local name=$1 proto=$2
    start "$name"
    if ! MEASURED=$(python3 "$SCRIPT_DIR/idle_client.py" --port "$PROXY_PORT" --proto "$proto" \
        --conns "$CONNS" --cafile "$CA" --pids "$RSS_PIDS"); then
        tail -n 20 "$WORK/$name"/*.log >&2 2>/dev/null || true
        die "$name $proto: the client failed"
    fi
    kill -0 "$STARTED" 2>/dev/null || die "$name died during the $proto measure"
    stop_started
}

field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f\n", a / b }'; }

declare -A PER RAW_LINES
for proto in h1 h2; do
    for name in "${NAMES[@]}"; do
        values=()
        for ((r = 1; r <= ROUNDS; r++)); do
            log "$name $proto: $CONNS idle connections (round $r/$ROUNDS)"
            measure "$name" "$proto"
            line=$MEASURED
            log "  $line"
            RAW_LINES[$name,$proto]+="$line"$'\n'
            values+=("$(field "$line" bytes_per_conn)")
        done
        PER[$name,$proto]=$(median "${values[@]}")
    done
done

REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null || true)" ]] && REV+="-dirty"
SUMMARY=$(
    echo "Idle TLS connection memory - $(date -u '+%Y-%m-%dT%H:%M:%SZ') on $(hostname) ($(nproc) cores, load average at start: $LOADAVG_START)"
    echo "$CONNS connections per measure, each one GET / then idle on keep-alive; VmRSS delta after a 50-connection warm-up; $ROUNDS round(s), median"
    echo "nginx:      $NGINX_VERSION, $WORKERS workers (master + workers summed)"
    echo "portcullis: $REV, $WORKERS workers (${BINARY[portcullis]})"
    [[ -n "${BASELINE_BIN:-}" ]] && echo "baseline:   $WORKERS workers (${BINARY[baseline]})"
    echo
    printf '%-12s %16s %16s\n' proxy "h1 bytes/conn" "h2 bytes/conn"
    for name in "${NAMES[@]}"; do
        printf '%-12s %16s %16s\n' "$name" "${PER[$name,h1]}" "${PER[$name,h2]}"
    done
    printf '%-12s %15sx %15sx\n' "portcullis/nginx" \
        "$(ratio "${PER[portcullis,h1]}" "${PER[nginx,h1]}")" "$(ratio "${PER[portcullis,h2]}" "${PER[nginx,h2]}")"
    if [[ -n "${BASELINE_BIN:-}" ]]; then
        printf '%-12s %15sx %15sx\n' "baseline/nginx" \
            "$(ratio "${PER[baseline,h1]}" "${PER[nginx,h1]}")" "$(ratio "${PER[baseline,h2]}" "${PER[nginx,h2]}")"
        printf '%-12s %15sx %15sx\n' "portcullis/baseline" \
            "$(ratio "${PER[portcullis,h1]}" "${PER[baseline,h1]}")" "$(ratio "${PER[portcullis,h2]}" "${PER[baseline,h2]}")"
    fi
    echo
    echo "raw (RSS in KiB):"
    for proto in h1 h2; do
        for name in "${NAMES[@]}"; do
            printf '%s' "${RAW_LINES[$name,$proto]}" | sed "s/^/  $name $proto: /"
        done
    done
)
mkdir -p "$OUT_DIR"
printf '%s\n' "$SUMMARY" >"$OUT_DIR/idle-memory-summary.txt"
echo
printf '%s\n' "$SUMMARY"
echo
log "summary written to $OUT_DIR/idle-memory-summary.txt"
