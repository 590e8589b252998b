#!/usr/bin/env bash
# Installs fal's own JavaScript client (@fal-ai/client, from npm) under
# Debian's Node.js in target/js-client, used by the compatibility test in
# crates/cli/tests/cli/js_client.rs. Idempotent, and needs no network once
# installed.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=target/js-client
FAL_JS_CLIENT_VERSION="${FAL_JS_CLIENT_VERSION:-1.10.1}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing Node.js from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
installed="$(cd "$DIR" 2>/dev/null && node -p 'require("@fal-ai/client/package.json").version' 2>/dev/null || true)"
if [ "$installed" = "$FAL_JS_CLIENT_VERSION" ]; then
  echo "@fal-ai/client $installed is ready in $DIR (node $(node --version))"
  exit 0
fi
mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || echo '{"private": true}' > "$DIR/package.json"
(cd "$DIR" && npm install --silent --no-audit --no-fund "@fal-ai/client@$FAL_JS_CLIENT_VERSION")
echo "@fal-ai/client $FAL_JS_CLIENT_VERSION installed in $DIR (node $(node --version))"
