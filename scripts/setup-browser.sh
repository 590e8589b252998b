#!/usr/bin/env bash
# Installs what the dashboard's browser test needs: Debian's Chromium, and
# playwright-core (no bundled browser) from npm in target/browser-tests.
# Idempotent. The test is crates/cli/tests/cli/browser.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null; then
  echo "installing Node.js from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
DIR=target/browser-tests
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.64.1}"
if [ ! -d "$DIR/node_modules/playwright-core" ]; then
  mkdir -p "$DIR"
  [ -f "$DIR/package.json" ] || echo '{"private": true}' > "$DIR/package.json"
  (cd "$DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund "playwright-core@$PLAYWRIGHT_VERSION")
fi
echo "browser test tools ready: $(/usr/bin/chromium --version), playwright-core in $DIR"
