#!/usr/bin/env bash
# Runs every coinop test: vet, unit, golden and end-to-end tests (on the
# embedded EVM chain, SQLite and PostgreSQL, anvil, the official x402 npm
# packages, nginx, Apache, php, python and headless Chromium), with the race
# detector; a pure-Go (CGO_ENABLED=0) build and run of the EVM tests; a short
# run of every fuzz target; and every benchmark briefly. Loopback only;
# bounded in time.
#
# First it installs the real parts the tests use, with scripts/deps/*.sh
# (Debian packages need root; npm packages go into interop/ and bench/ts/).
# Where one cannot be installed, its tests skip, unless COINOP_CI=1 (CI), where
# that is a failure.
#
#   scripts/test.sh            # everything
#   FUZZTIME=30s scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
FUZZTIME=${FUZZTIME:-8s}

step() { printf '\n== %s\n' "$*"; }

for f in scripts/deps/*.sh; do
  step "install: $f"
  if ! bash "$f"; then
    if [ -n "${COINOP_CI:-}" ]; then echo "$f failed"; exit 1; fi
    echo "warning: $f could not install everything; the tests that need it will skip"
  fi
done

step "go vet"
go vet ./...

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

# A throwaway PostgreSQL on loopback for the journal conformance suite and
# the multi-instance tests; without one they fail under COINOP_CI=1.
pgdir=""
cleanup() { [ -n "$pgdir" ] && scripts/postgres.sh stop "$pgdir" >/dev/null 2>&1; [ -n "$pgdir" ] && rm -rf "$pgdir"; }
trap cleanup EXIT
if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  step "start PostgreSQL"
  pgdir=$(mktemp -d /tmp/coinop-pg.XXXXXX)
  eval "$(scripts/postgres.sh start "$pgdir")"
  export PG_DSN
  echo "$PG_DSN"
fi
if [ -n "${COINOP_CI:-}" ]; then export COINOP_REQUIRE_POSTGRES=1; fi

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
./client FuzzCreditsOptions
./paywall FuzzRequestTarget
./paywall FuzzPageLightning
./freetier FuzzClientIP
./credits FuzzParseToken
./siwx FuzzParse
./x402 FuzzSameExactEVM
./fwdauth FuzzOriginal
./admin FuzzQuery
./lightning/bolt11 FuzzDecode
./l402 FuzzParseAuthorization
./l402 FuzzDecodeIdentifier
./l402 FuzzMacaroon
./l402 FuzzParseChallenges
./mpp FuzzParseCredential
./mpp FuzzParseChallenges
./mpp FuzzCanonicalize
./mpp FuzzAcceptPayment
./mpp/tempocharge FuzzCheck
./mpp/evmcharge FuzzDecodeRequest
./mpp/lightningcharge FuzzDecodePayload
LIST

step "benchmarks, 100 iterations each (so they keep running; numbers: bench/README.md)"
go test -run='^$' -bench=. -benchtime=100x ./...

step "all tests passed"
