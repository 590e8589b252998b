#!/usr/bin/env bash
# User-space instructions per model call of fal's gateway, counted by
# callgrind: repeatable for the same binary, whatever else the machine is
# doing (unlike requests/s on a shared 2-core machine). Use it to compare
# two builds of the hot path.
#
# Runs `fal serve --workers 1` under valgrind with an nginx `return 200`
# upstream, sends wrk's load to /run/bench/ok with an API key for DURATION
# seconds, and divides the instructions counted during the load by the
# requests served. Under valgrind SHA-256 runs in software (no SHA
# extensions), so the key check counts for more than on the real CPU.
#
# Usage: bench/instructions.sh       (env: DURATION=8, FAL_BIN=PATH,
#                                     CALLGRIND_OUT=FILE keeps the counts)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-8}"
. bench/lib.sh
ensure_tools valgrind
fal_binary

bench_workdir fal-instr
UP_PORT=$(free_port); FAL_PORT=$(free_port)

start_model_stand_in

# First a plain run to make the key and the app (quicker than under valgrind).
AUTH=$(bench_setup "$WORK/fal-data" "$FAL_PORT" --workers 1)
export FAL_HOST="http://127.0.0.1:$FAL_PORT"

RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
  "$FAL" serve --data-dir "$WORK/fal-data" --listen "127.0.0.1:$FAL_PORT" --workers 1 \
  > "$WORK/fal.out" 2> "$WORK/valgrind.err" &
FAL_PID=$!
PIDS+=("$FAL_PID")
wait_listening "$WORK/fal.out"
# One call to warm the caches, then count from zero.
curl -s -o /dev/null -H "$AUTH" "$FAL_HOST/run/bench/ok"
callgrind_control -z "$FAL_PID" >/dev/null 2>&1
wrk -t1 -c4 -d"${DURATION}s" -H "$AUTH" "$FAL_HOST/run/bench/ok" > "$WORK/wrk.txt"
callgrind_control -d "$FAL_PID" >/dev/null 2>&1
REQUESTS=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$WORK/wrk.txt")
[ -z "$NON2XX" ] || { echo "fal answered $NON2XX calls with an error" >&2; exit 1; }
# The dump taken after the load holds what was counted since the reset.
DUMP=$(ls -t "$WORK"/callgrind.out.* | head -1)
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "requests: $REQUESTS"
echo "user-space instructions per request: $((TOTAL / REQUESTS))"
if [ -n "${CALLGRIND_OUT:-}" ]; then
  cp "$DUMP" "$CALLGRIND_OUT"
  echo "where they go: callgrind_annotate $CALLGRIND_OUT"
fi
