#!/usr/bin/env bash
# Runs every coinop test: vet, unit, golden and end-to-end tests (on the
# embedded EVM chain, SQLite and, when available, PostgreSQL), with the race
# detector; a pure-Go (CGO_ENABLED=0) build and run of the EVM tests; and a
# short run of every fuzz target. Loopback only; bounded in time.
#
#   scripts/test.sh            # everything
#   FUZZTIME=30s scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
FUZZTIME=${FUZZTIME:-8s}

step() { printf '\n== %s\n' "$*"; }

step "go vet"
go vet ./...

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

step "go test -race (all packages)"
go test -race -count=1 ./...

step "pure-Go build (CGO_ENABLED=0) and its EVM tests"
CGO_ENABLED=0 go build -o /dev/null ./cmd/coinop
CGO_ENABLED=0 go test -count=1 ./eip3009 ./evm

step "fuzz targets, $FUZZTIME each"
while read -r pkg target; do
  echo "-- $pkg $target"
  go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg"
done <<'LIST'
./x402 FuzzDecodeHeader
./eip3009 FuzzParse
./config FuzzParse
./client FuzzOffers
LIST

step "all tests passed"
