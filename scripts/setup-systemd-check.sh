#!/usr/bin/env bash
# Installs what the systemd unit's test needs: `systemd-analyze`, from
# Debian's systemd package (only its tools are used: no systemd needs to
# run). Idempotent. The test is crates/cli/tests/cli/systemd.rs, which
# runs `systemd-analyze verify` and `systemd-analyze security --offline`
# on contrib/fal.service.
set -euo pipefail
if ! command -v systemd-analyze >/dev/null; then
  echo "installing Debian's systemd (for systemd-analyze)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
echo "systemd unit check ready: $(systemd-analyze --version | head -n1)"
