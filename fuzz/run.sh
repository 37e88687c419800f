#!/usr/bin/env bash
# Runs every fuzz target (or FUZZ_TARGETS) for FUZZ_SECONDS each, one at a
# time, and prints one line per target: executions, executions per second,
# coverage, corpus size and the outcome. Exits 1 when a target found
# something; its artifact is under fuzz/artifacts/<target>/ and its log,
# with the panic message, under fuzz/target/logs/. See fuzz/README.md.
#
#   FUZZ_SECONDS=10          seconds per target
#   FUZZ_TARGETS="a b"       a subset (default: `cargo fuzz list`)
#   FUZZ_SANITIZER=address   or none (faster, catches panics only)
#   FUZZ_ARGS="-max_len=65536"  extra libFuzzer flags
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-10}
sanitizer=${FUZZ_SANITIZER:-address}
fuzz=(cargo +nightly fuzz)
# The fuzz crate keeps its own target directory (fuzz/target); a
# CARGO_TARGET_DIR meant for the workspace would mix nightly artifacts in.
unset CARGO_TARGET_DIR
read -r -a targets <<<"${FUZZ_TARGETS:-$("${fuzz[@]}" list | tr '\n' ' ')}"
read -r -a extra <<<"${FUZZ_ARGS:-}"

logs=fuzz/target/logs
mkdir -p "$logs"
echo "building the targets (nightly, sanitizer $sanitizer; log $logs/build.log)"
if ! "${fuzz[@]}" build -s "$sanitizer" >"$logs/build.log" 2>&1; then
  tail -20 "$logs/build.log"
  exit 2
fi

found=0
printf '%-24s %10s %8s %7s %6s  %s\n' target runs exec/s cov corpus outcome
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  mkdir -p "fuzz/corpus/$target"
  # -close_fd_mask=2 keeps xmlsec's line per failed signature out of the
  # log (libFuzzer keeps its own output); a finding is re-run below with
  # stderr open, for the panic message.
  "${fuzz[@]}" run -s "$sanitizer" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 -close_fd_mask=2 \
    "${extra[@]}" >"$log" 2>&1
  status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  outcome=ok
  if [ "$status" -ne 0 ]; then
    found=1
    artifact=$(grep -o "fuzz/artifacts/$target/[^ ]*" "$log" | tail -1)
    outcome="FOUND ${artifact:-something (exit $status)}; log $log"
    if [ -n "$artifact" ]; then
      { echo; echo "== re-run with stderr open:"; "${fuzz[@]}" run -s "$sanitizer" "$target" "$artifact" 2>&1 \
          | grep -v '^func=xmlSec' | sed -n '/panicked at\|ERROR: /,$p' | head -80; } >>"$log"
    fi
  fi
  printf '%-24s %10s %8s %7s %6s  %s\n' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" "$outcome"
done
exit "$found"
