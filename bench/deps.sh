#!/usr/bin/env bash
# Installs what the bench (go run ./bench/cmd/coinop-bench, see bench/README.md)
# measures besides coinop: nginx as a plain reverse proxy (Debian's
# nginx-light), Node.js and npm (Debian's, when missing), and the npm
# packages pinned in bench/ts/package-lock.json: the official x402
# TypeScript server and facilitator packages, express, viem, and anvil
# (@foundry-rs/anvil-linux-amd64, a static binary inside the npm package).
#
# Safe to run again: it installs only what is missing, and `npm ci` runs only
# when the lock file changed since the last install. nginx's own daemon is
# never left running: the bench starts nginx itself, on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  # Keep maintainer scripts from starting daemons (no init system here).
  policy=/usr/sbin/policy-rc.d added_policy=
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; added_policy=1; fi
  trap 'if [ -n "$added_policy" ]; then rm -f "$policy"; fi' EXIT
  echo "bench: installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  if [ -x /etc/init.d/nginx ]; then service nginx stop >/dev/null 2>&1 || true; fi
fi

stamp=bench/ts/node_modules/.coinop-lock.sha256
want=$(sha256sum bench/ts/package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  [ -x bench/ts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ]; then
  echo "bench: npm packages are up to date"
  exit 0
fi
npm ci --prefix bench/ts --ignore-scripts --no-audit --no-fund
echo "$want" >"$stamp"
echo "bench: $(nginx -v 2>&1); node $(node --version); $(bench/ts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil --version | head -1)"
