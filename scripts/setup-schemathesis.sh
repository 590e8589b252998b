#!/usr/bin/env bash
# Creates target/schemathesis-venv: a virtualenv with schemathesis (PyPI),
# which the OpenAPI conformance test in crates/cli/tests/cli/openapi.rs runs
# against a live `fal serve`. Idempotent; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/schemathesis-venv
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
if [ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "schemathesis is ready in $VENV"
  exit 0
fi
PY="$(command -v python3 || true)"
if [ -z "$PY" ] || ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "python3 with venv is needed; installing it from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  PY="$(command -v python3)"
fi
mkdir -p target
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
echo "schemathesis $SCHEMATHESIS_VERSION installed in $VENV"
