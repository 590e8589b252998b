#!/usr/bin/env bash
# The queue on loopback, in one run: how fast requests are accepted
# (POST /queue/bench/ok), how soon a worker calls the app after a submit,
# and what the queue path costs against a direct /run of the same app.
#
#   1. submit→upstream latency: LATENCY_N requests, one at a time (20-40 ms
#      apart, so none waits behind another), to an app whose upstream (a
#      small Python recorder, bench/queue_latency.py) notes when each
#      request's head arrived; latency = arrival − the moment just before
#      the client sent the POST, both CLOCK_REALTIME on this machine.
#      SQLite: one server submits and runs. PostgreSQL (BACKEND=postgres):
#      first the same, then "A→B": QUEUE_CONCURRENCY held requests fill all
#      of server A's slots for that app, so a request submitted on A can only
#      be run by server B, woken by A's NOTIFY.
#   2. ROUNDS interleaved rounds of wrk (a Lua script POSTing a small JSON
#      body) on server A: /queue/bench/ok (submits/s, p50/p99 of the submit)
#      and /run/bench/ok, the same app (nginx `return 200`); after each queue
#      run, the time until every submitted request completed gives the
#      queue's completed/s. On PostgreSQL both servers' workers drain.
#   3. ROUNDS interleaved rounds at a fixed offered rate (RATE, default
#      2000/s, the submit rate the issue asks for) with hey (-q per
#      connection): the submit's p50/p99 when the server is not saturated,
#      beside /run at the same rate. wrk in 2. always saturates the machine
#      (8 connections sending as fast as answers come), so its p99 is a
#      queueing delay at full load; this one is the latency at that rate.
#
# Installs what it needs (nginx, wrk) from Debian's packages; builds fal
# (release, takes minutes the first time) unless FAL_BIN is given.
#
# Usage: bench/queue.sh   (env: BACKEND=sqlite|postgres (postgres needs
#                          FAL_TEST_DATABASE_URL; a fresh database is made and
#                          dropped), DURATION=5 CONNECTIONS=8 ROUNDS=3
#                          WORKERS=2 QUEUE_CONCURRENCY=8 LATENCY_N=200
#                          QUEUE_SYNC=normal|full RATE=2000
#                          FAL_BIN=PATH BENCH_TMP=/tmp|/dev/shm)
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND="${BACKEND:-sqlite}"
DURATION="${DURATION:-5}"
CONNECTIONS="${CONNECTIONS:-8}"
ROUNDS="${ROUNDS:-3}"
WORKERS="${WORKERS:-2}"
QUEUE_CONCURRENCY="${QUEUE_CONCURRENCY:-8}"
LATENCY_N="${LATENCY_N:-200}"
RATE="${RATE:-2000}"
QUEUE_SYNC="${QUEUE_SYNC:-normal}"

. bench/lib.sh
ensure_tools hey
fal_binary

bench_workdir fal-queue-bench
DB_ARGS=()
if [ "$BACKEND" = postgres ]; then
  BASE="${FAL_TEST_DATABASE_URL:?BACKEND=postgres needs FAL_TEST_DATABASE_URL}"
  DB_NAME="fal_bench_queue_$$"
  DB_URL="${BASE%/*}/$DB_NAME"
  psql "$BASE" -qc "CREATE DATABASE $DB_NAME"
  DB_ARGS=(--database-url "$DB_URL" --pepper-file "$WORK/pepper")
  queue_cleanup() {
    bench_cleanup
    psql "$BASE" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" || true
  }
  trap queue_cleanup EXIT
elif [ "$BACKEND" != sqlite ]; then
  echo "BACKEND must be sqlite or postgres" >&2
  exit 2
fi

UP_PORT=$(free_port); FAL_PORT=$(free_port); B_PORT=$(free_port); REC_PORT=$(free_port)
start_model_stand_in
python3 bench/queue_latency.py recorder "$REC_PORT" "$WORK/arrived.txt" &
PIDS+=($!)

# start_fal NAME PORT [CONCURRENCY]: a `fal serve` in a session of its own
# (see bench/gateway.sh on scheduling groups).
start_fal() {
  RUST_LOG=warn setsid "$FAL" serve --data-dir "$WORK/$1-data" --listen "127.0.0.1:$2" \
    --workers "$WORKERS" --queue-concurrency "${3:-$QUEUE_CONCURRENCY}" --queue-sync "$QUEUE_SYNC" ${DB_ARGS[@]+"${DB_ARGS[@]}"} \
    > "$WORK/$1.out" 2> "$WORK/$1.err" &
  PIDS+=($!)
  FAL_PIDS+=($!)
  wait_listening "$WORK/$1.out"
}
FAL_PIDS=()
# CPU time (user + system, clock ticks) the fal servers have used so far.
fal_cpu() {
  local t=0 p
  for p in "${FAL_PIDS[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
start_fal a "$FAL_PORT"
export FAL_HOST="http://127.0.0.1:$FAL_PORT"
AUTH=$(bench_key_and_app "$WORK/a.out" "$UP_PORT")
ADMIN="$(key_value FAL_KEY_ID < "$WORK/a.out"):$(key_value FAL_KEY_SECRET < "$WORK/a.out")"
FAL_KEY="$ADMIN" "$FAL" apps add bench/rec --upstream "http://127.0.0.1:$REC_PORT" >/dev/null
AUTH_VALUE="${AUTH#Authorization: }"

for path in queue/bench/ok run/bench/ok; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" -H 'content-type: application/json' \
    -d '{"prompt":"x"}' "http://127.0.0.1:$FAL_PORT/$path")
  [ "$code" = 200 ] || { echo "sanity check failed: /$path answered $code" >&2; exit 1; }
done

pending() { # requests not yet completed
  local q="SELECT COUNT(*) FROM queue_requests WHERE status <> 'COMPLETED' AND owner = 'bench' AND name = 'ok'"
  if [ "$BACKEND" = postgres ]; then
    psql "$DB_URL" -tAc "$q"
  else
    python3 -c 'import sqlite3, sys
print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute(sys.argv[2]).fetchone()[0])' \
      "$WORK/a-data/fal.db" "$q"
  fi
}

latency() { # label url -> prints "label|p50|p90|p99|max|arrived|missing"
  : > "$WORK/sent.txt"
  python3 bench/queue_latency.py submit "$1" "$AUTH_VALUE" "$LATENCY_N" "$WORK/sent.txt"
  sleep 0.5
  echo "$2|$(python3 bench/queue_latency.py report "$WORK/sent.txt" "$WORK/arrived.txt" | tr ' ' '|')"
}

echo "submit→upstream latency, $LATENCY_N requests one at a time ($BACKEND)" >&2
LAT=()
LAT+=("$(latency "http://127.0.0.1:$FAL_PORT/queue/bench/rec" "same server")")
if [ "$BACKEND" = postgres ]; then
  before=$(wc -l < "$WORK/arrived.txt")
  for _ in $(seq 1 "$QUEUE_CONCURRENCY"); do
    python3 bench/queue_latency.py hold "http://127.0.0.1:$FAL_PORT/queue/bench/rec" "$AUTH_VALUE"
  done
  for _ in $(seq 1 100); do
    [ "$(wc -l < "$WORK/arrived.txt")" -ge $((before + QUEUE_CONCURRENCY)) ] && break
    sleep 0.1
  done
  [ "$(wc -l < "$WORK/arrived.txt")" -ge $((before + QUEUE_CONCURRENCY)) ] \
    || { echo "server A did not take its held requests" >&2; exit 1; }
  # An app's concurrency holds across the cluster: B runs under its own
  # default, twice A's, so it has room beside A's held requests.
  start_fal b "$B_PORT" $((QUEUE_CONCURRENCY * 2))
  sleep 1
  LAT+=("$(latency "http://127.0.0.1:$FAL_PORT/queue/bench/rec" "submit on A, run by B")")
fi
for l in "${LAT[@]}"; do echo "  $l" >&2; done

cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"prompt":"bench"}'
wrk.headers["Content-Type"] = "application/json"
LUA
to_ms() { # wrk latency like 512.00us / 1.20ms / 2.00s -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}
now_ms() { date +%s%3N; }
drain() { # until every submitted request completed (2 min at most)
  local n
  for _ in $(seq 1 1200); do
    n=$(pending)
    [ "$n" = 0 ] && return 0
    sleep 0.1
  done
  echo "the queue did not drain ($n left); the servers' last log lines:" >&2
  tail -n 20 "$WORK"/*.err >&2
  exit 1
}
run() { # label path -> label|rps|p50|p99|non2xx|total|completed/s|fal CPU µs per request
  local out="$WORK/wrk.txt" start drained=- cpu0
  start=$(now_ms)
  cpu0=$(fal_cpu)
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" -H "$AUTH" \
    "http://127.0.0.1:$FAL_PORT/$2" > "$out"
  local rps p50 p99 errs total
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$out")")
  errs=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
  total=$(awk '/requests in/ {print $1}' "$out")
  if [ "$2" = queue/bench/ok ]; then
    drain
    drained=$(awk -v t=$(( $(now_ms) - start )) -v n="$total" 'BEGIN { printf "%.0f", n * 1000 / t }')
  fi
  local cpu_us=$(( ($(fal_cpu) - cpu0) * TICK_US / total ))
  echo "$1|$rps|$p50|$p99|${errs:-0}|$total|$drained|$cpu_us"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# SQLite: the WAL file's size in MB (it only shrinks when SQLite starts it
# again and cuts it back to journal_size_limit).
wal_mb() {
  if [ "$BACKEND" = sqlite ]; then
    awk -v b="$(stat -c %s "$WORK/a-data/fal.db-wal" 2>/dev/null || echo 0)" 'BEGIN { printf "%.0f", b / 1048576 }'
  else
    echo -
  fi
}
WAL_MB=()
echo "load: wrk -t1 -c$CONNECTIONS -d${DURATION}s per target, $ROUNDS interleaved rounds (medians); $WORKERS fal worker threads, queue concurrency $QUEUE_CONCURRENCY per server; $(nproc) cores; $BACKEND" >&2
: > "$WORK/rounds.txt"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
  for i in $order; do
    if [ "$i" = 0 ]; then r=$(run "queue submit" queue/bench/ok); else r=$(run "direct /run" run/bench/ok); fi
    [ "$i" = 0 ] && WAL_MB+=("$(wal_mb)")
    echo "$round|$i|$r" >> "$WORK/rounds.txt"
    echo "  round $round: $r" >&2
  done
done
col() { awk -F'|' -v i="$1" -v f="$2" '$2 == i { print $f }' "$WORK/rounds.txt" | median; }

at_rate() { # label path -> label|offered/s|achieved/s|p50|p99|non-2xx
  local out="$WORK/hey.txt" per=$(( (RATE + CONNECTIONS - 1) / CONNECTIONS ))
  hey -z "${DURATION}s" -c "$CONNECTIONS" -q "$per" -m POST -T application/json \
    -d '{"prompt":"bench"}' -H "$AUTH" "http://127.0.0.1:$FAL_PORT/$2" > "$out"
  local rps p50 p99 ok total
  rps=$(awk '/Requests\/sec:/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" { printf "%.3f", $3 * 1000 }' "$out")
  p99=$(awk '$1 == "99%" { printf "%.3f", $3 * 1000 }' "$out")
  ok=$(awk '/\[200\]/ {print $2}' "$out")
  total=$(awk '/\[[0-9]+\]/ {s += $2} END {print s + 0}' "$out")
  [ "$2" = queue/bench/ok ] && drain
  echo "$1|$((per * CONNECTIONS))|$rps|$p50|$p99|$((total - ${ok:-0}))"
}
echo "at a fixed rate: hey -c$CONNECTIONS -q$(( (RATE + CONNECTIONS - 1) / CONNECTIONS )) (per connection) -z${DURATION}s, $ROUNDS interleaved rounds" >&2
: > "$WORK/rate.txt"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
  for i in $order; do
    if [ "$i" = 0 ]; then r=$(at_rate "queue submit" queue/bench/ok); else r=$(at_rate "direct /run" run/bench/ok); fi
    echo "$round|$i|$r" >> "$WORK/rate.txt"
    echo "  round $round: $r" >&2
  done
done

printf '\n%-34s %11s %8s %8s %8s %12s %12s\n' "target (median of $ROUNDS, $BACKEND)" "requests/s" "p50 ms" "p99 ms" "non-2xx" "completed/s" "fal CPU µs"
for i in 0 1; do
  label=$(awk -F'|' -v i="$i" '$2 == i { print $3; exit }' "$WORK/rounds.txt")
  done_s=$( [ "$i" = 0 ] && col 0 9 || echo -)
  errs=$(awk -F'|' -v i="$i" '$2 == i { s += $7 } END { print s + 0 }' "$WORK/rounds.txt")
  printf '%-34s %11.0f %8.3f %8.3f %8s %12s %12s\n' "$label" "$(col "$i" 4)" "$(col "$i" 5)" "$(col "$i" 6)" "$errs" "$done_s" "$(col "$i" 10)"
done
echo "(fal CPU µs: user + system time of the fal servers from the start of a run until its requests completed, per request)"
RATIOS=$(awk -F'|' '$2 == 0 { q[$1] = $4; d[$1] = $9 } $2 == 1 { r[$1] = $4 }
  END { for (k in q) if (r[k] > 0) printf "%.2f %.2f\n", q[k] / r[k], d[k] / r[k] }' "$WORK/rounds.txt")
printf '\nqueue submits/s ÷ /run requests/s, round by round: %s (median %.2f)\n' \
  "$(awk '{print $1}' <<<"$RATIOS" | sort -g | tr '\n' ' ')" "$(awk '{print $1}' <<<"$RATIOS" | median)"
printf 'queue completed/s ÷ /run requests/s, round by round: %s (median %.2f)\n' \
  "$(awk '{print $2}' <<<"$RATIOS" | sort -g | tr '\n' ' ')" "$(awk '{print $2}' <<<"$RATIOS" | median)"
printf '\nsubmit→upstream (ms): %-24s %7s %7s %7s %7s %8s %8s\n' "" p50 p90 p99 max arrived missing
for l in "${LAT[@]}"; do
  IFS='|' read -r label p50 p90 p99 max arrived missing <<<"$l"
  printf '                      %-24s %7s %7s %7s %7s %8s %8s\n' "$label" "$p50" "$p90" "$p99" "$max" "$arrived" "$missing"
done
echo "(completed/s: requests a queue run submitted ÷ time from its start until the last completed)"
rcol() { awk -F'|' -v i="$1" -v f="$2" '$2 == i { print $f }' "$WORK/rate.txt" | median; }
printf '\n%-34s %11s %11s %8s %8s %8s\n' "at a fixed rate (median of $ROUNDS)" "offered/s" "achieved/s" "p50 ms" "p99 ms" "non-2xx"
for i in 0 1; do
  label=$(awk -F'|' -v i="$i" '$2 == i { print $3; exit }' "$WORK/rate.txt")
  errs=$(awk -F'|' -v i="$i" '$2 == i { s += $8 } END { print s + 0 }' "$WORK/rate.txt")
  printf '%-34s %11s %11.0f %8.3f %8.3f %8s\n' "$label" "$(rcol "$i" 4)" "$(rcol "$i" 5)" "$(rcol "$i" 6)" "$(rcol "$i" 7)" "$errs"
done
if [ "$BACKEND" = sqlite ]; then
  printf '\nSQLite WAL file after each queue run above (MB): %s; at the end: %s\n' "${WAL_MB[*]}" "$(wal_mb)"
fi
