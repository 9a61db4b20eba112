#!/usr/bin/env bash
# Installs what the interoperability tests in examples/ run against, from
# Debian's packages: nginx and Apache httpd (coinop in front of them and
# behind them), Caddy (forward_auth to coinop), curl, Python 3 and PHP with its curl extension (the plain
# client scripts), and Chromium (the browser's HTML 402 page).
#
# Safe to run again: it installs only what is missing and runs apt-get update
# at most once. The packages' own daemons are never left running: the tests
# start nginx and Apache themselves, on free loopback ports, with generated
# configs, and a system daemon on port 80 would only get in the way.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# What is missing, as Debian packages.
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want nginx nginx
want /usr/sbin/apache2 apache2
want caddy caddy
want curl curl
want python3 python3
want /usr/bin/chromium chromium
# Chromium's screenshots need a font with Latin glyphs.
[ -e /usr/share/fonts/truetype/liberation ] || need+=(fonts-liberation)
if ! command -v php >/dev/null 2>&1; then
  need+=(php-cli php-curl)
elif ! php -r 'exit(function_exists("curl_init") ? 0 : 1);' >/dev/null 2>&1; then
  need+=(php-curl)
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "webservers: nginx, apache2, caddy, curl, python3, php (curl), chromium already installed"
  exit 0
fi

# Keep the packages' maintainer scripts from starting daemons during the
# install (there is no init system here to own them). A policy-rc.d that
# already exists is left as it is.
policy=/usr/sbin/policy-rc.d
added_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "webservers: installing ${need[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"

# Had a daemon started anyway, stop it so it holds no port.
for svc in nginx apache2 caddy; do
  if [ -x "/etc/init.d/$svc" ]; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done
echo "webservers: installed: $(nginx -v 2>&1 | tr -d '\n'); $(/usr/sbin/apache2 -v 2>/dev/null | head -1); caddy $(caddy version)"
