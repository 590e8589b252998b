#!/usr/bin/env bash
# Creates target/fal-client-venv: a virtualenv with fal's own Python client
# (fal-client, from PyPI), used by the compatibility test in
# crates/cli/tests/cli/python_client.rs, and Prometheus' Python client
# (prometheus-client, from PyPI), whose reference parser reads `/metrics`
# in crates/server/tests/api/metrics.rs. Idempotent; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/fal-client-venv
FAL_CLIENT_VERSION="${FAL_CLIENT_VERSION:-1.0.3}"
PROMETHEUS_CLIENT_VERSION="${PROMETHEUS_CLIENT_VERSION:-0.26.0}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import fal_client, prometheus_client" 2>/dev/null; then
  echo "fal-client and prometheus-client are ready in $VENV"
  exit 0
fi
PY="$(command -v python3 || true)"
if [ -z "$PY" ]; then
  echo "python3 is needed; installing it from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  PY="$(command -v python3)"
fi
mkdir -p target
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
  "fal-client==$FAL_CLIENT_VERSION" "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
echo "fal-client $FAL_CLIENT_VERSION and prometheus-client $PROMETHEUS_CLIENT_VERSION installed in $VENV"
