#!/usr/bin/env bash
# Legitimate traffic while one address floods wrong credentials, on loopback.
#
# Two fal servers share one data directory, both with
# --trusted-proxies 127.0.0.1/32 so that X-Forwarded-For names the client:
#   on:  the default failed-auth throttling (20 refused credentials a
#        minute, then 429 held back 100 ms)
#   off: --auth-failures-per-minute 0, every wrong key verified in full
# Legitimate load: wrk with a valid API key as X-Forwarded-For: 10.0.0.1,
# paced (each connection waits PACE_MS between calls, so it measures
# latency at a steady rate rather than how much CPU is left over).
# Flood: a second wrk at full speed as X-Forwarded-For: 10.6.6.6, counting
# 401s and 429s, with FLOOD=wrong-secret (the valid key's id, a wrong
# secret: a hash per refusal) or FLOOD=unknown-id (a well-formed id that
# does not exist: a storage read per refusal).
# Control: the same flood at an nginx on the same machine that answers
# every request 429 (WORKERS workers): what the flood costs the legitimate
# load when refusing it costs next to nothing (the load generator's own
# CPU, on the same cores, included).
# Each round runs (rotated): legit alone; legit while flooding "on", "off"
# and the control. Prints medians over the rounds: the legitimate p99 and
# its ratio flooded/alone (per round, then the median), and the flood's
# answers.
#
# Usage: bench/abuse.sh     (env: FLOOD=wrong-secret DURATION=10 ROUNDS=5
#                            WORKERS=2 CONNECTIONS=8 FLOOD_CONNECTIONS=32
#                            PACE_MS=1 FAL_BIN=PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-5}"
WORKERS="${WORKERS:-2}"
CONNECTIONS="${CONNECTIONS:-8}"
FLOOD_CONNECTIONS="${FLOOD_CONNECTIONS:-32}"
PACE_MS="${PACE_MS:-1}"
FLOOD="${FLOOD:-wrong-secret}"

. bench/lib.sh
ensure_tools
fal_binary

bench_workdir fal-abuse
UP_PORT=$(free_port); ON_PORT=$(free_port); OFF_PORT=$(free_port); CONTROL_PORT=$(free_port)
FAL_PORT=$ON_PORT  # for nginx_conf's `fal` upstream (unused here)
start_model_stand_in
nginx_conf control "$WORKERS" "server { listen 127.0.0.1:$CONTROL_PORT; location / {
  default_type application/json; return 429 '{\"detail\":\"no\",\"code\":\"too_many_failed_attempts\"}'; } }"

# In sessions of their own (see gateway.sh: scheduling groups).
RUST_LOG=warn setsid "$FAL" serve --data-dir "$WORK/fal-data" --listen "127.0.0.1:$ON_PORT" \
  --workers "$WORKERS" --trusted-proxies 127.0.0.1/32 > "$WORK/on.out" 2> "$WORK/on.err" &
PIDS+=($!)
wait_listening "$WORK/on.out"
export FAL_HOST="http://127.0.0.1:$ON_PORT"
AUTH=$(bench_key_and_app "$WORK/on.out" "$UP_PORT")
RUST_LOG=warn setsid "$FAL" serve --data-dir "$WORK/fal-data" --listen "127.0.0.1:$OFF_PORT" \
  --workers "$WORKERS" --trusted-proxies 127.0.0.1/32 --auth-failures-per-minute 0 \
  > "$WORK/off.out" 2> "$WORK/off.err" &
PIDS+=($!)
wait_listening "$WORK/off.out"
# A secret of the right form that is wrong, with the valid key's id (a
# full check) or an id no key has (a storage read).
KEY_ID=$(sed 's/^Authorization: Key \([^:]*\):.*/\1/' <<<"$AUTH")
case $FLOOD in
  wrong-secret) ;;
  unknown-id) KEY_ID=$(python3 -c 'import uuid; print(uuid.uuid4())') ;;
  *) echo "FLOOD is wrong-secret or unknown-id" >&2; exit 1 ;;
esac
WRONG="Authorization: Key $KEY_ID:fal_sk_$(printf '0%.0s' $(seq 72))"

cat > "$WORK/paced.lua" <<LUA
delay = function() return $PACE_MS end
LUA
cat > "$WORK/flood.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) c401 = 0; c429 = 0; other = 0 end
function response(status, headers, body)
  if status == 429 then c429 = c429 + 1
  elseif status == 401 then c401 = c401 + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("c401"); b = b + t:get("c429"); o = o + t:get("other")
  end
  io.write(string.format("flood %d %d %d\n", a, b, o))
end
LUA

# Sanity: valid key 200 on both; the flood's key 401 (off) before any block.
for port in "$ON_PORT" "$OFF_PORT"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" -H "X-Forwarded-For: 10.0.0.1" \
    "http://127.0.0.1:$port/run/bench/ok")
  [ "$code" = 200 ] || { echo "sanity: $port answered $code to the valid key" >&2; exit 1; }
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$WRONG" "http://127.0.0.1:$OFF_PORT/run/bench/ok")
[ "$code" = 401 ] || { echo "sanity: the wrong key got $code" >&2; exit 1; }

to_ms() { # wrk latency like 512.00us / 1.20ms / 2.00s -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}

# legit PORT -> "rps p99_ms non2xx" of the paced legitimate load.
legit() {
  local out="$WORK/legit.txt"
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/paced.lua" \
    -H "$AUTH" -H "X-Forwarded-For: 10.0.0.1" "http://127.0.0.1:$1/run/bench/ok" > "$out"
  echo "$(awk '/Requests\/sec/ {print $2}' "$out") \
$(to_ms "$(awk '$1=="99%" {print $2}' "$out")") \
$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out" | grep . || echo 0)"
}

# flooded PORT [FLOOD_PORT] -> legit's "rps p99 non2xx" on PORT then the
# flood's (at FLOOD_PORT, default PORT) "401s 429s others refusals/s".
flooded() {
  local f="$WORK/flood.txt"
  wrk -t1 -c"$FLOOD_CONNECTIONS" -d"$((DURATION + 2))s" -s "$WORK/flood.lua" \
    -H "$WRONG" -H "X-Forwarded-For: 10.6.6.6" "http://127.0.0.1:${2:-$1}/run/bench/ok" > "$f" &
  local flood_pid=$!
  sleep 1
  local l; l=$(legit "$1")
  wait "$flood_pid"
  local secs; secs=$(awk '/requests in/ {gsub("s,","",$4); print $4}' "$f")
  read -r a b o < <(awk '$1=="flood" {print $2, $3, $4}' "$f")
  echo "$l $a $b $o $(awk -v n=$((a + b)) -v s="$secs" 'BEGIN { printf "%.0f", n / s }')"
}

echo "load: legit wrk -t1 -c$CONNECTIONS paced ${PACE_MS} ms, flood ($FLOOD) wrk -t1 -c$FLOOD_CONNECTIONS; ${DURATION}s runs, $ROUNDS rounds; $WORKERS fal workers; $(nproc) cores" >&2
: > "$WORK/rows"
for r in $(seq 1 "$ROUNDS"); do
  order=(alone on off control)
  case $((r % 4)) in
    1) order=(on off control alone) ;;
    2) order=(off control alone on) ;;
    3) order=(control alone on off) ;;
  esac
  for what in "${order[@]}"; do
    case $what in
      alone) row=$(legit "$ON_PORT") ;;
      on) row=$(flooded "$ON_PORT") ;;
      off) row=$(flooded "$OFF_PORT") ;;
      control) row=$(flooded "$ON_PORT" "$CONTROL_PORT") ;;
    esac
    echo "round $r $what: $row" >&2
    echo "$r $what $row" >> "$WORK/rows"
  done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v w="$1" -v c="$2" '$2 == w { print $c }' "$WORK/rows" | median; }
# Per-round ratios flooded/alone, then their median.
ratio() { awk -v w="$1" '$2 == "alone" { a[$1] = $4 } $2 == w { f[$1] = $4 } END { for (r in f) print f[r] / a[r] }' "$WORK/rows" | median; }

printf '\n%-34s %10s %9s %9s %9s %10s %10s %12s\n' "flood $FLOOD (median of $ROUNDS)" "legit rps" "p99 ms" "p99 ratio" "legit !2xx" "flood 401" "flood 429" "refusals/s"
printf '%-34s %10s %9s %9s %9s %10s %10s %12s\n' "alone" "$(col alone 3)" "$(col alone 4)" "1.00" "$(col alone 5)" "-" "-" "-"
printf '%-34s %10s %9s %9s %9s %10s %10s %12s\n' "flood, throttling on (default)" "$(col on 3)" "$(col on 4)" "$(ratio on)" "$(col on 5)" "$(col on 6)" "$(col on 7)" "$(col on 9)"
printf '%-34s %10s %9s %9s %9s %10s %10s %12s\n' "flood, throttling off" "$(col off 3)" "$(col off 4)" "$(ratio off)" "$(col off 5)" "$(col off 6)" "$(col off 7)" "$(col off 9)"
printf '%-34s %10s %9s %9s %9s %10s %10s %12s\n' "control: flood at nginx's 429" "$(col control 3)" "$(col control 4)" "$(ratio control)" "$(col control 5)" "$(col control 6)" "$(col control 7)" "$(col control 9)"
grep -h "blocked after refused" "$WORK/on.err" | head -1 | sed 's/^/log: /' >&2 || true
