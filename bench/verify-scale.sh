#!/usr/bin/env bash
# The verify path at scale: model calls through `fal serve` with keys
# rotating round-robin (wrk with a Lua script), a small active set (1,000
# keys) side by side with a large one (all KEYS stored, a million by
# default) on the same live server, in interleaved rounds; then calls with
# well-formed credentials whose key ids are unknown (failed-auth throttling
# is off: this measures what a refusal costs, not the throttle). Prints calls/s per
# workload, the median ratio of the large set's rate to the small set's,
# the refusal rate for unknown ids, and fal's resident memory.
#
# Usage: bench/verify-scale.sh
#   env: BACKEND=sqlite|postgres (postgres: a scratch database on
#        FAL_TEST_DATABASE_URL's server), KEYS=1000000, DURATION=10,
#        ROUNDS=3, WARMUP=60 (seconds of calls over the large set first, to
#        fill the cache), CONNECTIONS=64, WORKERS=2, FAL_BIN=PATH
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND="${BACKEND:-sqlite}"
KEYS="${KEYS:-1000000}"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-60}"
CONNECTIONS="${CONNECTIONS:-64}"
WORKERS="${WORKERS:-2}"
SMALL=1000

. bench/lib.sh
ensure_tools
fal_binary
bench_workdir fal-scale
UP_PORT=$(free_port); FAL_PORT=$(free_port)
start_model_stand_in

DB_ARGS=()
if [ "$BACKEND" = postgres ]; then
  : "${FAL_TEST_DATABASE_URL:?BACKEND=postgres needs FAL_TEST_DATABASE_URL}"
  DB_NAME="fal_scale_$$"
  psql "$FAL_TEST_DATABASE_URL" -qc "CREATE DATABASE $DB_NAME" >/dev/null
  DB_URL="${FAL_TEST_DATABASE_URL%/*}/$DB_NAME"
  DB_ARGS=(--database-url "$DB_URL")
  trap 'bench_cleanup; psql "$FAL_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
fi

serve() {
  RUST_LOG=warn setsid "$FAL" serve --data-dir "$WORK/fal-data" "${DB_ARGS[@]}" \
    --listen "127.0.0.1:$FAL_PORT" --workers "$WORKERS" --auth-failures-per-minute 0 \
    > "$WORK/$1.out" 2>&1 &
  FAL_PID=$!
  PIDS+=("$FAL_PID")
  wait_listening "$WORK/$1.out"
}

# One key and the app, through the API; then KEYS copies of that key's row
# under ids 00000000-0000-4000-8000-<12 hex digits of i>, all with its
# secret (the hash is the same work whatever the key).
AUTH=$(bench_setup "$WORK/fal-data" "$FAL_PORT" "${DB_ARGS[@]}")
KEY_ID=$(sed 's/.*Key \([^:]*\):.*/\1/' <<<"$AUTH")
SECRET=$(sed 's/.*Key [^:]*:\(.*\)/\1/' <<<"$AUTH")
echo "storing $KEYS keys ($BACKEND)" >&2
if [ "$BACKEND" = postgres ]; then
  psql "$DB_URL" -qc "INSERT INTO api_keys (key_id, user_id, scope, alias, secret_hash, created_at)
    SELECT '00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'), user_id, scope, 'scale', secret_hash, i
    FROM api_keys, generate_series(1, $KEYS) AS i WHERE key_id = '$KEY_ID'" >/dev/null
else
  python3 - "$WORK/fal-data/fal.db" "$KEY_ID" "$KEYS" <<'PY'
import sqlite3, sys
db, key_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db)
user, scope, h = c.execute("SELECT user_id, scope, secret_hash FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
rows = (("00000000-0000-4000-8000-%012x" % i, user, scope, "scale", h, i) for i in range(1, n + 1))
c.executemany("INSERT INTO api_keys (key_id, user_id, scope, alias, secret_hash, created_at) VALUES (?,?,?,?,?,?)", rows)
c.commit()
PY
fi

cat > "$WORK/rotate.lua" <<'LUA'
-- Each thread walks the ids FIRST.. FIRST+N-1 round-robin from its own offset.
local n = tonumber(os.getenv("ACTIVE"))
local first = tonumber(os.getenv("FIRST"))
local secret = os.getenv("SECRET")
local prefix = os.getenv("PREFIX")
local i = math.random(0, n - 1)
request = function()
  i = (i + 1) % n
  local id = string.format("%s%012x", prefix, first + i)
  return wrk.format("POST", "/run/bench/ok",
    { ["Authorization"] = "Key " .. id .. ":" .. secret, ["Content-Type"] = "application/json" }, "{}")
end
LUA

serve scale
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$FAL_PID/status"; }
echo "fal resident after start: $(rss_mb) MB" >&2

# load NAME ACTIVE FIRST PREFIX SECONDS: prints requests/s and non-2xx count.
load() {
  ACTIVE=$2 FIRST=$3 PREFIX=$4 SECRET="$SECRET" \
    wrk -t2 -c"$CONNECTIONS" -d"$5"s -s "$WORK/rotate.lua" "http://127.0.0.1:$FAL_PORT" \
    > "$WORK/$1.wrk" 2>&1
  local rps non2xx
  rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$WORK/$1.wrk")
  non2xx=$(awk '/Non-2xx/ { print $NF }' "$WORK/$1.wrk")
  echo "$rps ${non2xx:-0}"
}

OK=00000000-0000-4000-8000-
UNKNOWN=ffffffff-0000-4000-8000-
echo "warming up: ${WARMUP}s over all $KEYS keys" >&2
load warmup "$KEYS" 1 "$OK" "$WARMUP" >/dev/null
echo "fal resident after warm-up: $(rss_mb) MB" >&2

ratios=(); unknown_ratios=()
for r in $(seq 1 "$ROUNDS"); do
  read -r small small_bad < <(load "small$r" "$SMALL" 1 "$OK" "$DURATION")
  read -r large large_bad < <(load "large$r" "$KEYS" 1 "$OK" "$DURATION")
  read -r unknown unknown_ok < <(load "unknown$r" "$SMALL" 1 "$UNKNOWN" "$DURATION")
  ratio=$(python3 -c "print(f'{$large / $small:.2f}')")
  uratio=$(python3 -c "print(f'{$unknown / $small:.2f}')")
  ratios+=("$ratio"); unknown_ratios+=("$uratio")
  echo "  round $r: $SMALL keys $small/s (non-2xx $small_bad) | $KEYS keys $large/s (non-2xx $large_bad) | unknown ids $unknown/s refused | large/small $ratio, unknown/small $uratio"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
echo "backend $BACKEND, $KEYS keys stored, $WORKERS workers, $CONNECTIONS connections, ${DURATION}s rounds"
echo "calls/s with $KEYS active keys / with $SMALL: ${ratios[*]} (median $(median "${ratios[@]}")x)"
echo "refusals/s of unknown ids / accepted calls/s with $SMALL keys: ${unknown_ratios[*]} (median $(median "${unknown_ratios[@]}")x)"
echo "fal resident at the end: $(rss_mb) MB"
