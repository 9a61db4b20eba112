#!/usr/bin/env bash
# Installs what the peer tests (go test ./interop ./evm/anvil) need: Node.js
# and npm (Debian's, when missing), then the npm packages pinned in
# interop/package-lock.json: the official x402 TypeScript packages, viem,
# the legacy v1 client x402-fetch, express, anvil
# (@foundry-rs/anvil-linux-amd64, a static binary inside the npm package),
# playwright-core, which drives Debian's chromium (it downloads no
# browser: install scripts are not run), and jsqr, which reads the 402
# page's QR code off a screenshot; and, in a project of its own
# (interop/mppx: its optional peers conflict with the x402 packages'),
# mppx, the Payment scheme's SDK, with the viem it was built against.
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

# install DIR: `npm ci` in DIR unless its lock file is unchanged since the
# last install there.
install() {
  local dir=$1 stamp=$1/node_modules/.coinop-lock.sha256 want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$dir: npm packages are up to date"
    return
  fi
  npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund
  echo "$want" >"$stamp"
}
if [ ! -x interop/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ]; then
  rm -f interop/node_modules/.coinop-lock.sha256
fi
install interop
install interop/mppx
interop/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil --version | head -1
