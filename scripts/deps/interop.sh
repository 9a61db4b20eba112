#!/usr/bin/env bash
# Installs what the peer tests (go test ./interop ./evm/anvil) need: Node.js
# and npm (Debian's, when missing), then the npm packages pinned in
# interop/package-lock.json: the official x402 TypeScript packages, viem,
# the legacy v1 client x402-fetch, express, anvil
# (@foundry-rs/anvil-linux-amd64, a static binary inside the npm package),
# and playwright-core, which drives Debian's chromium (it downloads no
# browser: install scripts are not run).
#
# Safe to run again: `npm ci` runs only when the lock file changed since the
# last install. Install scripts are not run; nothing here needs them.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq nodejs npm
fi
node --version

stamp=interop/node_modules/.coinop-lock.sha256
want=$(sha256sum interop/package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  [ -x interop/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ]; then
  echo "interop: npm packages are up to date"
  exit 0
fi
npm ci --prefix interop --ignore-scripts --no-audit --no-fund
echo "$want" >"$stamp"
interop/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil --version | head -1
