#!/usr/bin/env bash
# What idle client connections cost `fal serve` in resident memory, and
# whether it gets the memory back once they close.
#
# For each case a fresh `fal serve` (an nginx `return 200` as the model):
# its VmRSS (from /proc) after one warm-up call, then COUNT keep-alive
# connections each make one model call (GET /run/bench/ok with an API key)
# and stay idle, VmRSS again after SETTLE seconds, then all close and
# after SETTLE seconds VmRSS once more. Prints KB per idle connection and
# what is kept after the close (both against the first figure).
# Cases: plain HTTP with COUNT=3000 and with COUNT=2000, then HTTPS (a
# self-signed certificate, --tls-cert) with COUNT=3000.
#
# Usage: bench/idle.sh      (env: COUNTS="3000 2000", TLS_COUNT=3000 (0: no
#                            HTTPS case), SETTLE=5, WORKERS=2, FAL_BIN=PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS="${COUNTS:-3000 2000}"
TLS_COUNT="${TLS_COUNT:-3000}"
SETTLE="${SETTLE:-5}"
WORKERS="${WORKERS:-2}"

. bench/lib.sh
ensure_tools
need openssl || { echo "openssl is needed for the HTTPS case" >&2; exit 1; }
fal_binary
# Room for every connection on both ends (fal lowers its cap to this
# limit): the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

bench_workdir fal-idle
UP_PORT=$(free_port); FAL_PORT=$(free_port) # (the stand-in's configuration names both)
start_model_stand_in
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

# one_case NAME COUNT [tls]: a fresh server, COUNT idle connections, a line
# of results.
one_case() {
  local name=$1 count=$2 tls=${3:-} port dir pid extra=() auth out
  port=$(free_port)
  dir="$WORK/$name-$count"
  if [ -n "$tls" ]; then
    extra=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  fi
  # A first run makes the key and the app; the measured run starts fresh.
  auth=$(bench_setup "$dir" "$port")
  export FAL_HOST="http://127.0.0.1:$port"
  RUST_LOG=warn setsid "$FAL" serve --data-dir "$dir" --listen "127.0.0.1:$port" \
    --workers "$WORKERS" "${extra[@]}" > "$dir.out" 2> "$dir.err" &
  pid=$!
  PIDS+=("$pid")
  wait_listening "$dir.out"
  out=$(python3 bench/idle_client.py "$pid" 127.0.0.1 "$port" "$count" /run/bench/ok \
    "$auth" "$SETTLE" $tls)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local before idle after
  before=$(sed -n 's/^before_kb=//p' <<<"$out")
  idle=$(sed -n 's/^idle_kb=//p' <<<"$out")
  after=$(sed -n 's/^after_kb=//p' <<<"$out")
  printf '%-6s %6d  %8.1f MB  %8.1f MB  %7.1f KB  %8.1f MB\n' "$name" "$count" \
    "$(bc -l <<<"$before/1024")" "$(bc -l <<<"$idle/1024")" \
    "$(bc -l <<<"($idle-$before)/$count")" "$(bc -l <<<"($after-$before)/1024")"
}

printf '%-6s %6s  %11s  %11s  %10s  %11s\n' case conns baseline idle "per conn" "kept after"
for n in $COUNTS; do one_case http "$n"; done
[ "$TLS_COUNT" = 0 ] || one_case https "$TLS_COUNT" tls
