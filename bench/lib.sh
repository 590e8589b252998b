# Shared by the scripts in bench/ (sourced, not run): installing the tools,
# finding the fal binary, the work directory and its clean-up, nginx
# configurations and the model stand-in, free ports, and making the API key
# and the app that a benchmark calls. Expects to be sourced from the
# repository root.

need() { command -v "$1" >/dev/null 2>&1; }

# ensure_tools [EXTRA_PACKAGE...]: nginx and wrk (and the extra Debian
# packages, each named after the command it provides) from Debian's packages
# when any is missing. nginx-light where the release has it, nginx otherwise.
ensure_tools() {
  local missing=0 cmd
  for cmd in nginx wrk "$@"; do need "$cmd" || missing=1; done
  [ "$missing" = 0 ] && return
  echo "installing nginx, wrk $* from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk "$@" >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk "$@" >/dev/null
}

# fal_binary: sets FAL to $FAL_BIN (a binary built otherwise, say with frame
# pointers for perf) or to a fresh release build.
fal_binary() {
  if [ -n "${FAL_BIN:-}" ]; then
    FAL="$FAL_BIN"
  else
    echo "building fal (release)" >&2
    cargo build --release -q -p fal-cli
    FAL="$PWD/target/release/fal"
  fi
}

# bench_workdir PREFIX: sets WORK to a fresh directory under $BENCH_TMP
# (default /tmp; BENCH_TMP=/dev/shm puts the databases in memory, to tell
# the disk's share of a figure) and PIDS to an empty list; on exit the
# processes in PIDS are killed, every nginx started from a configuration in
# WORK is stopped, and WORK is removed.
bench_workdir() {
  WORK="$(mktemp -d "${BENCH_TMP:-/tmp}/$1.XXXXXX")"
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local p conf
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for conf in "$WORK"/*.conf; do
    [ -f "$conf" ] && nginx -c "$conf" -p "$WORK" -s quit 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# nginx_conf NAME WORKERS SERVER_BLOCK: writes $WORK/NAME.conf and starts an
# nginx from it. Upstreams `model` (UP_PORT) and `fal` (FAL_PORT) are
# declared with keep-alive connections for the server block to proxy to.
nginx_conf() {
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

# start_model_stand_in: the model every benchmark calls, an nginx with one
# worker on UP_PORT answering a fixed small JSON document.
start_model_stand_in() {
  nginx_conf upstream 1 "server { listen 127.0.0.1:$UP_PORT; location / { default_type application/json; return 200 '{\"ok\":true}'; } }"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_listening OUTPUT_FILE: until `fal serve` has said it listens (60 s at most).
wait_listening() {
  for _ in $(seq 1 600); do grep -q "fal is listening" "$1" 2>/dev/null && return; sleep 0.1; done
  echo "fal did not start; see $1" >&2
  exit 1
}

# key_value NAME < TEXT: the value of a NAME='...' line, as `fal serve` and
# `fal key generate` print them.
key_value() { sed -n "s/^$1='\(.*\)'/\1/p"; }

# bench_key_and_app SERVE_OUTPUT UPSTREAM_PORT: with the bootstrap ADMIN key
# that `fal serve` printed, makes an API key and the app bench/ok in front of
# the upstream; prints the Authorization header that calls it. FAL_HOST must
# point at the server.
bench_key_and_app() {
  local admin keys
  admin="$(key_value FAL_KEY_ID < "$1"):$(key_value FAL_KEY_SECRET < "$1")"
  keys=$(FAL_KEY="$admin" "$FAL" key generate --scope API --alias bench) || return 1
  FAL_KEY="$admin" "$FAL" apps add bench/ok --upstream "http://127.0.0.1:$2" >/dev/null || return 1
  echo "Authorization: Key $(key_value FAL_KEY_ID <<<"$keys"):$(key_value FAL_KEY_SECRET <<<"$keys")"
}

# bench_setup DATA_DIR PORT [SERVE_ARG...]: a first `fal serve` on DATA_DIR
# (output in DATA_DIR.setup) that makes the API key and the app bench/ok
# (see bench_key_and_app), then stops; prints the Authorization header. The
# measured run then starts on the same data, fresh.
bench_setup() {
  local dir=$1 port=$2 pid
  shift 2
  RUST_LOG=warn "$FAL" serve --data-dir "$dir" --listen "127.0.0.1:$port" "$@" \
    > "$dir.setup" 2>&1 &
  pid=$!
  wait_listening "$dir.setup"
  FAL_HOST="http://127.0.0.1:$port" bench_key_and_app "$dir.setup" "$UP_PORT"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# make_bench_certificate rsa|ecdsa CERT_FILE KEY_FILE: a self-signed
# certificate for 127.0.0.1 with an RSA-2048 or a P-256 key, for fal and
# nginx alike.
make_bench_certificate() {
  local key_args
  case "$1" in
    rsa) key_args=(-newkey rsa:2048) ;;
    ecdsa) key_args=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
    *) echo "CERT must be rsa or ecdsa, not $1" >&2; exit 1 ;;
  esac
  openssl req -x509 "${key_args[@]}" -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$3" -out "$2" 2>/dev/null
}
