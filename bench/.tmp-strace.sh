#!/usr/bin/env bash
# Side-by-side gateway benchmark on loopback, in one run, same bounded load:
#   1. the upstream directly                      (nginx `return 200`, the model stand-in)
#   2. nginx as a plain reverse proxy, no auth
#   3. fal's gateway with a valid API key         (/run/bench/ok)
#   4. nginx + auth_request to fal's key check    (/auth/verify), then proxy
# Prints requests/s and p50/p99 latency for each, and ratios to (2).
#
# Installs what it needs (nginx, wrk) from Debian's packages. Every request
# goes to 127.0.0.1 only; each run lasts DURATION seconds.
#
# Usage: bench/gateway.sh            (env: DURATION=10 CONNECTIONS=64 WORKERS=2 ROUNDS=3;
#                                     PERF_OUT=FILE profiles fal during its runs)
# Each round runs the four targets one after another; the table shows each
# target's median over the rounds, so one noisy run does not decide a ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
WORKERS="${WORKERS:-2}"           # nginx worker processes = fal worker threads
WRK_THREADS="${WRK_THREADS:-1}"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
  echo "installing nginx and wrk from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi

echo "building fal (release)" >&2
cargo build --release -q -p fal-cli
FAL="$PWD/target/release/fal"

WORK="$(mktemp -d /tmp/fal-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for conf in "$WORK"/*.conf; do
    [ -f "$conf" ] && nginx -c "$conf" -p "$WORK" -s quit 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port); PROXY_PORT=$(free_port); AUTH_PORT=$(free_port); FAL_PORT=$(free_port)

nginx_conf() { # name workers server-block
  cat > "$WORK/$1.conf" <<CONF
worker_processes $2;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream model { server 127.0.0.1:$UP_PORT; keepalive 128; }
  upstream fal { server 127.0.0.1:$FAL_PORT; keepalive 128; }
  $3
}
CONF
  nginx -c "$WORK/$1.conf" -p "$WORK"
}

# The model stand-in: one worker, a fixed small JSON answer.
nginx_conf upstream 1 "server { listen 127.0.0.1:$UP_PORT; location / { default_type application/json; return 200 '{\"ok\":true}'; } }"
# Plain reverse proxy, no authentication.
nginx_conf proxy "$WORKERS" "server { listen 127.0.0.1:$PROXY_PORT; location / {
  proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
# auth_request to fal's key check, then proxy.
nginx_conf authreq "$WORKERS" "server { listen 127.0.0.1:$AUTH_PORT;
  location / { auth_request /_fal_auth;
    proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  location = /_fal_auth { internal;
    proxy_pass http://fal/auth/verify; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_pass_request_body off; proxy_set_header Content-Length \"\"; } }"

# fal: fresh data directory, same number of worker threads, quiet logs.
RUST_LOG=warn "$FAL" serve --data-dir "$WORK/fal-data" --listen "127.0.0.1:$FAL_PORT" \
  --workers "$WORKERS" > "$WORK/fal.out" 2> "$WORK/fal.err" &
FAL_PID=$!
PIDS+=($FAL_PID)
for _ in $(seq 1 100); do grep -q "fal is listening" "$WORK/fal.out" 2>/dev/null && break; sleep 0.1; done
ADMIN_ID=$(sed -n "s/^FAL_KEY_ID='\(.*\)'/\1/p" "$WORK/fal.out")
ADMIN_SECRET=$(sed -n "s/^FAL_KEY_SECRET='\(.*\)'/\1/p" "$WORK/fal.out")
export FAL_HOST="http://127.0.0.1:$FAL_PORT"
KEYS=$(FAL_KEY="$ADMIN_ID:$ADMIN_SECRET" "$FAL" key generate --scope API --alias bench)
API_ID=$(sed -n "s/^FAL_KEY_ID='\(.*\)'/\1/p" <<<"$KEYS")
API_SECRET=$(sed -n "s/^FAL_KEY_SECRET='\(.*\)'/\1/p" <<<"$KEYS")
FAL_KEY="$ADMIN_ID:$ADMIN_SECRET" "$FAL" apps add bench/ok --upstream "http://127.0.0.1:$UP_PORT" >/dev/null
AUTH="Authorization: Key $API_ID:$API_SECRET"

PROXY_PIDS=$(pgrep -P "$(cat $WORK/proxy.pid)" | tr '\n' ',' | sed 's/,$//')
for target in "fal $FAL_PID http://127.0.0.1:$FAL_PORT/run/bench/ok" "nginx $PROXY_PIDS http://127.0.0.1:$PROXY_PORT/"; do
  set -- $target
  ( wrk -t1 -c64 -d8s -H "$AUTH" "$3" > /tmp/wrk-$1.txt ) &
  sleep 2
  timeout -s INT 4 strace -c -f $(echo "$2" | tr ',' '\n' | sed 's/^/-p /') 2> /tmp/strace-$1.txt || true
  wait
  echo "== $1"; grep "requests in" /tmp/wrk-$1.txt; head -20 /tmp/strace-$1.txt
done
