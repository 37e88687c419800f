# Shared by the benchmark scripts that run nginx beside Portcullis: the
# tools they need (installed when missing), and a temp dir for one run with
# the processes it starts, all stopped (children too) and the dir removed
# on any exit. The caller defines log() and die() and sources this; then
# `bench_require` sets NGINX, `bench_workdir NAME` sets WORK, and each
# started process's pid goes into PIDS.

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

find_nginx() {
    if [[ -n "${NGINX_BIN:-}" ]]; then echo "$NGINX_BIN"; return; fi
    if command -v nginx >/dev/null 2>&1; then command -v nginx; return; fi
    if [[ -x /usr/sbin/nginx ]]; then echo /usr/sbin/nginx; return; fi
    echo ""
}

bench_require() { # command:package ...
    local missing=() pair installer="$HARNESS_DIR/../deploy/install-packages.sh"
    NGINX=$(find_nginx)
    [[ -n "$NGINX" && -x "$NGINX" ]] || missing+=(nginx-light)
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    # Newer Debian releases dropped nginx-light; fall back to nginx.
    "$installer" "${missing[@]}" || "$installer" "${missing[@]/nginx-light/nginx}" \
        || die "cannot install ${missing[*]}"
    NGINX=$(find_nginx)
    [[ -n "$NGINX" && -x "$NGINX" ]] || die "nginx still not found after install"
}

stop_pid() { # pid signal timeout_seconds
    local pid=$1 sig=$2 timeout=$3 children i
    kill -0 "$pid" 2>/dev/null || return 0
    children=$(pgrep -P "$pid" 2>/dev/null || true)
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not exit after SIG$sig within ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    # nginx workers are children of the master; make sure none outlive it.
    for c in $children; do kill -KILL "$c" 2>/dev/null || true; done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        # nginx: TERM = fast shutdown; portcullis: TERM = drain (no clients left).
        stop_pid "${PIDS[$i]}" TERM 30
    done
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "temp dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

bench_workdir() { # name
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-$1.XXXXXX")
    # nginx workers drop to an unprivileged user when started as root; let
    # them traverse the temp dir.
    chmod 755 "$WORK"
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
