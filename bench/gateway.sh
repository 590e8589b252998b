#!/usr/bin/env bash
# Side-by-side gateway benchmark on loopback, in one run, same bounded load:
#   1. the upstream directly                      (nginx `return 200`, the model stand-in)
#   2. nginx as a plain reverse proxy, no auth
#   3. fal's gateway with a valid API key         (/run/bench/ok)
#   4. nginx + auth_request to fal's key check    (/auth/verify), then proxy
# and, over HTTPS with one certificate for both (TLS=0 leaves them out):
#   5. nginx terminating TLS, then proxying       (session tickets on, its default)
#   6. fal's gateway with --tls-cert
#   7. and 8. the same two with `Connection: close`: every request on a new
#      TLS connection, so handshakes per second are measured
# Prints requests/s and p50/p99 latency for each, and ratios to its nginx
# peer: (2) for the plain targets, (5) and (7) for the TLS ones.
#
# Installs what it needs (nginx, wrk) from Debian's packages. Every request
# goes to 127.0.0.1 only; each run lasts DURATION seconds.
#
# Usage: bench/gateway.sh            (env: DURATION=10 CONNECTIONS=64 WORKERS=2 ROUNDS=5;
#                                     TLS=1, CERT=rsa (RSA-2048) or ecdsa (P-256),
#                                     NGINX_TLS_PROTOCOLS="TLSv1.2 TLSv1.3";
#                                     ONLY="5 6 7 8" runs only those targets;
#                                     PERF_OUT=FILE profiles fal during its runs (PERF_TARGET=fal-tls: the TLS one),
#                                     PERF_NGINX_OUT=FILE nginx's plain proxy;
#                                     FAL_BIN=PATH uses that fal binary)
# Each round runs the targets one after another; the table shows each
# target's median over the rounds, so one noisy run does not decide a ratio.
# wrk (OpenSSL) keeps the session of a connection it closes and offers it on
# the next, so its new connections are resumed where the server allows it.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
WORKERS="${WORKERS:-2}"           # nginx worker processes = fal worker threads
WRK_THREADS="${WRK_THREADS:-1}"

. bench/lib.sh
ensure_tools
fal_binary

bench_workdir fal-bench
UP_PORT=$(free_port); PROXY_PORT=$(free_port); AUTH_PORT=$(free_port); FAL_PORT=$(free_port)
TLS="${TLS:-1}"
CERT="${CERT:-rsa}"
# What fal offers. nginx 1.22 (Debian 12) offers TLS 1.2 only unless told
# (1.23.4 added 1.3 to its default); a resumed TLS 1.2 handshake skips the
# key exchange a resumed TLS 1.3 one does, so "TLSv1.2" compares unlike work.
NGINX_TLS_PROTOCOLS="${NGINX_TLS_PROTOCOLS:-TLSv1.2 TLSv1.3}"
TLS_PROXY_PORT=$(free_port); FAL_TLS_PORT=$(free_port)

start_model_stand_in
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
# In a session of its own, as each nginx daemonizes into one: with the
# kernel's autogroup scheduling (sched_autogroup_enabled=1) a session is a
# scheduling group, and fal left in this script's session would share one
# CPU share with wrk while the upstream nginx had a whole one to itself.
# The TLS server: its own data directory, its key and app made by a first
# start (see bench_setup), and the certificate nginx uses too.
if [ "$TLS" = 1 ]; then
  make_bench_certificate "$CERT" "$WORK/tls.pem" "$WORK/tls.key"
  nginx_conf tlsproxy "$WORKERS" "server { listen 127.0.0.1:$TLS_PROXY_PORT ssl;
    ssl_certificate $WORK/tls.pem; ssl_certificate_key $WORK/tls.key; ssl_session_tickets on;
    ssl_protocols $NGINX_TLS_PROTOCOLS;
    location / { proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  mkdir -p "$WORK/fal-tls"
  TLS_AUTH=$(bench_setup "$WORK/fal-tls/data" "$FAL_TLS_PORT")
  RUST_LOG=warn setsid "$FAL" serve --data-dir "$WORK/fal-tls/data" --listen "127.0.0.1:$FAL_TLS_PORT" \
    --workers "$WORKERS" --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key" \
    > "$WORK/fal-tls.out" 2> "$WORK/fal-tls.err" &
  FAL_TLS_PID=$!
  PIDS+=($FAL_TLS_PID)
  wait_listening "$WORK/fal-tls.out"
fi

RUST_LOG=warn setsid "$FAL" serve --data-dir "$WORK/fal-data" --listen "127.0.0.1:$FAL_PORT" \
  --workers "$WORKERS" > "$WORK/fal.out" 2> "$WORK/fal.err" &
FAL_PID=$!
PIDS+=($FAL_PID)
wait_listening "$WORK/fal.out"
export FAL_HOST="http://127.0.0.1:$FAL_PORT"
AUTH=$(bench_key_and_app "$WORK/fal.out" "$UP_PORT")

# Sanity: each target answers 200 with a valid key (and 401 without, where it checks).
for url in "http://127.0.0.1:$UP_PORT/" "http://127.0.0.1:$PROXY_PORT/" \
           "http://127.0.0.1:$FAL_PORT/run/bench/ok" "http://127.0.0.1:$AUTH_PORT/"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$url")
  [ "$code" = 200 ] || { echo "sanity check failed: $url answered $code" >&2; exit 1; }
done
for url in "http://127.0.0.1:$FAL_PORT/run/bench/ok" "http://127.0.0.1:$AUTH_PORT/"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
  [ "$code" = 401 ] || { echo "sanity check failed: $url without a key answered $code" >&2; exit 1; }
done
if [ "$TLS" = 1 ]; then
  for url in "https://127.0.0.1:$TLS_PROXY_PORT/" "https://127.0.0.1:$FAL_TLS_PORT/run/bench/ok"; do
    code=$(curl -sk -o /dev/null -w '%{http_code}' -H "$TLS_AUTH" "$url")
    [ "$code" = 200 ] || { echo "sanity check failed: $url answered $code" >&2; exit 1; }
  done
  # Both present the same certificate.
  for port in "$TLS_PROXY_PORT" "$FAL_TLS_PORT"; do
    openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256
  done | uniq | awk 'END { if (NR != 1) { print "sanity check failed: fal and nginx present different certificates" > "/dev/stderr"; exit 1 } }'
fi

to_ms() { # wrk latency like 512.00us / 1.20ms / 2.00s -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}
pids_of() { # nginx config name, "fal" or "fal-tls" -> the processes serving it
  if [ "$1" = fal ]; then echo "$FAL_PID"; return; fi
  if [ "$1" = fal-tls ]; then echo "$FAL_TLS_PID"; return; fi
  local master; master=$(cat "$WORK/$1.pid")
  echo "$master $(pgrep -P "$master" | tr '\n' ' ')"
}
cpu_ticks() { # total user+system clock ticks of the given pids
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
cpu_total_idle() { # all CPUs: "total idle" clock ticks so far
  awk '/^cpu / { t = 0; for (f = 2; f <= 9; f++) t += $f; print t, $5 + $6 }' /proc/stat
}
run() { # label url server(nginx config name | fal | fal-tls | -) auth-header [extra-header]
  # -> label|rps|p50|p99|non2xx|cpu-us-per-request|upstream-us|wrk-us|idle%
  local out="$WORK/wrk.txt" pids="" before=0 after=0 extra=()
  [ -n "${5:-}" ] && extra=(-H "$5")
  [ "$3" != - ] && pids=$(pids_of "$3")
  if [ -n "${PERF_OUT:-}" ] && [ "$3" = "${PERF_TARGET:-fal}" ]; then
    perf record -q -F 1999 -e cpu-clock -g -p "$pids" -o "$PERF_OUT" -- sleep "$DURATION" >/dev/null 2>&1 &
  fi
  if [ -n "${PERF_NGINX_OUT:-}" ] && [ "$3" = proxy ]; then
    perf record -q -F 1999 -e cpu-clock -g -p "$(tr ' ' ',' <<<"$pids" | sed 's/,*$//')" \
      -o "$PERF_NGINX_OUT" -- sleep "$DURATION" >/dev/null 2>&1 &
  fi
  local up_pids up_before up_after wrk_cpu
  up_pids=$(pids_of upstream)
  [ -n "$pids" ] && before=$(cpu_ticks $pids)
  up_before=$(cpu_ticks $up_pids)
  local sys_before sys_after
  sys_before=$(cpu_total_idle)
  wrk_cpu=$( { TIMEFORMAT='%U %S'; time wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$4" "${extra[@]}" "$2" > "$out"; } 2>&1 | awk '{print $1 + $2}')
  sys_after=$(cpu_total_idle)
  up_after=$(cpu_ticks $up_pids)
  [ -n "$pids" ] && after=$(cpu_ticks $pids)
  local rps p50 p99 errs total cpu
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$out")")
  errs=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
  total=$(awk '/requests in/ {print $1}' "$out")
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$total" -v has="$pids" \
    'BEGIN { if (has == "" || n == 0) print "-"; else printf "%.1f", t / hz * 1e6 / n }')
  local up_cpu wrk_us
  up_cpu=$(awk -v t=$((up_after - up_before)) -v hz="$HZ" -v n="$total" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  wrk_us=$(awk -v t="$wrk_cpu" -v n="$total" 'BEGIN { printf "%.1f", t * 1e6 / n }')
  local idle
  idle=$(awk -v b="$sys_before" -v a="$sys_after" 'BEGIN { split(b, x, " "); split(a, y, " ");
    printf "%.1f", 100 * (y[2] - x[2]) / (y[1] - x[1]) }')
  echo "$1|$rps|$p50|$p99|${errs:-0}|$cpu|$up_cpu|$wrk_us|$idle"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

ROUNDS="${ROUNDS:-5}"
echo "load: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s per target, $ROUNDS interleaved rounds (medians); $WORKERS nginx workers = $WORKERS fal worker threads; $(nproc) cores" >&2
# Target i: label, URL, server, Authorization header, extra header, and the
# nginx target its ratios are to.
LABELS=("upstream directly" "nginx proxy (no auth)" "fal gateway (API key)" "nginx + auth_request to fal")
URLS=("http://127.0.0.1:$UP_PORT/" "http://127.0.0.1:$PROXY_PORT/" "http://127.0.0.1:$FAL_PORT/run/bench/ok" "http://127.0.0.1:$AUTH_PORT/")
SERVERS=(upstream proxy fal authreq)
AUTHS=("$AUTH" "$AUTH" "$AUTH" "$AUTH")
EXTRA=("" "" "" "")
PEER=(1 1 1 1)
if [ "$TLS" = 1 ]; then
  CLOSE="Connection: close"
  LABELS+=("nginx TLS proxy" "fal TLS gateway" "nginx TLS, new connections" "fal TLS, new connections")
  URLS+=("https://127.0.0.1:$TLS_PROXY_PORT/" "https://127.0.0.1:$FAL_TLS_PORT/run/bench/ok"
         "https://127.0.0.1:$TLS_PROXY_PORT/" "https://127.0.0.1:$FAL_TLS_PORT/run/bench/ok")
  SERVERS+=(tlsproxy fal-tls tlsproxy fal-tls)
  AUTHS+=("$TLS_AUTH" "$TLS_AUTH" "$TLS_AUTH" "$TLS_AUTH")
  EXTRA+=("" "" "$CLOSE" "$CLOSE")
  PEER+=(4 4 6 6)
  echo "TLS: nginx offers $NGINX_TLS_PROTOCOLS; $CERT certificate ($(openssl x509 -noout -text -in "$WORK/tls.pem" | awk '/Public Key Algorithm|Public-Key/ {$1=$1; printf "%s ", $0}'))" >&2
fi
TARGETS="${ONLY:-$(seq 1 ${#LABELS[@]} | tr '\n' ' ')}"
: > "$WORK/rounds.txt"
for round in $(seq 1 "$ROUNDS"); do
  for t in $TARGETS; do
    i=$((t - 1))
    r=$(run "${LABELS[$i]}" "${URLS[$i]}" "${SERVERS[$i]}" "${AUTHS[$i]}" "${EXTRA[$i]}")
    echo "$round|$i|$r" >> "$WORK/rounds.txt"
    echo "  round $round: $r" >&2
  done
done
col() { # target-index field-number -> median over rounds
  awk -F'|' -v i="$1" -v f="$2" '$2 == i { print $f }' "$WORK/rounds.txt" | median
}
ran() { grep -q "^[0-9]*|$1|" "$WORK/rounds.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

printf '\n%-30s %11s %8s %8s %8s %10s %9s %9s %10s %10s %7s\n' "target (median of $ROUNDS)" "requests/s" "p50 ms" "p99 ms" "non-2xx" "rps/nginx" "p99/nginx" "proxy us" "upstrm us" "wrk us" "idle %"
for i in "${!LABELS[@]}"; do
  ran "$i" || continue
  RPS[$i]=$(col "$i" 4); P50[$i]=$(col "$i" 5); P99[$i]=$(col "$i" 6)
  ERRS[$i]=$(awk -F'|' -v i="$i" '$2 == i { s += $7 } END { print s + 0 }' "$WORK/rounds.txt")
  CPU[$i]=$(awk -F'|' -v i="$i" '$2 == i && $8 != "-" { print $8 }' "$WORK/rounds.txt" | median)
  UPCPU[$i]=$(col "$i" 9); WRKCPU[$i]=$(col "$i" 10); IDLE[$i]=$(col "$i" 11)
done
for i in "${!LABELS[@]}"; do
  ran "$i" || continue
  p=${PEER[$i]}
  printf '%-30s %11.0f %8.3f %8.3f %8s %10s %9s %9s %10s %10s %7s\n' "${LABELS[$i]}" "${RPS[$i]}" "${P50[$i]}" "${P99[$i]}" "${ERRS[$i]}" \
    "$(ratio "${RPS[$i]}" "${RPS[$p]:-0}")" "$(ratio "${P99[$i]}" "${P99[$p]:-0}")" \
    "${CPU[$i]:--}" "${UPCPU[$i]}" "${WRKCPU[$i]}" "${IDLE[$i]}"
done
# Rounds run the targets back to back, so a round's own ratio compares runs
# that saw the same machine; their median is less moved by a noisy round.
round_ratios() { # fal-index nginx-index label
  ran "$1" && ran "$2" || return 0
  local r
  r=$(awk -F'|' -v f="$1" -v n="$2" '$2 == n { nr[$1] = $4 } $2 == f { fr[$1] = $4 }
    END { for (r in fr) if (nr[r] > 0) printf "%.2f\n", fr[r] / nr[r] }' "$WORK/rounds.txt" | sort -g)
  printf '%s, round by round: %s (median %.2fx)\n' "$3" "$(tr '\n' ' ' <<<"$r" | sed 's/ $//')" "$(median <<<"$r")"
}
echo
round_ratios 2 1 "fal gateway / nginx proxy"
round_ratios 5 4 "fal TLS / nginx TLS, keep-alive"
round_ratios 7 6 "fal TLS / nginx TLS, new connections"
if ran 2 && ran 3; then
  printf 'fal gateway / nginx + auth_request: %.2fx requests/s\n' "$(awk -v a="${RPS[2]}" -v b="${RPS[3]}" 'BEGIN{print a/b}')"
fi
echo "(CPU time per request, in us: 'proxy' of the proxy under test (for nginx + auth_request, nginx only, not fal's /auth/verify), 'upstrm' of the model stand-in, 'wrk' of the load generator)"
echo "('idle %': share of both CPUs' time left idle during the run)"
