#!/usr/bin/env bash
# Installs PostgreSQL 15 (Debian) for the journal tests when it is missing.
# No server is left running: scripts/test.sh starts its own, on loopback.
set -euo pipefail
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql-15
fi
