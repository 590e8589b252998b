#!/usr/bin/env bash
# Creates target/fal-client-venv: a virtualenv with fal's own Python client
# (fal-client, from PyPI), used by the compatibility test in
# crates/cli/tests/cli/python_client.rs. Idempotent; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/fal-client-venv
FAL_CLIENT_VERSION="${FAL_CLIENT_VERSION:-1.0.3}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import fal_client" 2>/dev/null; then
  echo "fal-client is ready in $VENV"
  exit 0
fi
PY="$(command -v python3 || true)"
if [ -z "$PY" ]; then
  echo "python3 is needed; installing it from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  PY="$(command -v python3)"
fi
mkdir -p target
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "fal-client==$FAL_CLIENT_VERSION"
echo "fal-client $FAL_CLIENT_VERSION installed in $VENV"
