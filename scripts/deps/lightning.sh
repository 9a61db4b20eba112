#!/usr/bin/env bash
# Builds the Lightning network programs the regtest tests run (lnd, lncli,
# btcd, btcctl) from the versions pinned in tools/lightning/go.mod, a module
# of its own so coinop's go.mod never requires lnd. The binaries go to a cache
# directory keyed on tools/lightning/go.sum, never into the repository:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/coinop/lightning/<sha256 of go.sum>/bin
#
# and the tests find them there (lightning/regtest.BinDir). Safe to run again:
# it is a no-op when all four binaries are there. A cold build takes about
# eight minutes on two cores and 2 GB of memory; a warm one seconds.
#
#   scripts/deps/lightning.sh          # build when missing, print the bin dir
set -euo pipefail
cd "$(dirname "$0")/../../tools/lightning"
export GOTOOLCHAIN=local

key=$(sha256sum go.sum | cut -c1-16)
bin="${XDG_CACHE_HOME:-$HOME/.cache}/coinop/lightning/$key/bin"

have=1
for b in lnd lncli btcd btcctl; do [ -x "$bin/$b" ] || have=; done
if [ -n "$have" ]; then
  echo "lightning: lnd, lncli, btcd, btcctl already built in $bin"
  exit 0
fi

# lnd's build tags as its release builds set them (dev adds the regtest
# conveniences the tests use).
tags="dev autopilotrpc chainrpc invoicesrpc peersrpc routerrpc signrpc verrpc walletrpc watchtowerrpc wtclientrpc"

tmp="$bin.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
go build -trimpath -buildvcs=false -tags="$tags" -o "$tmp/lnd" github.com/lightningnetwork/lnd/cmd/lnd
go build -trimpath -buildvcs=false -tags="$tags" -o "$tmp/lncli" github.com/lightningnetwork/lnd/cmd/lncli
go build -trimpath -buildvcs=false -o "$tmp/btcd" github.com/btcsuite/btcd
go build -trimpath -buildvcs=false -o "$tmp/btcctl" github.com/btcsuite/btcd/cmd/btcctl
rm -rf "$bin"
mv "$tmp" "$bin"
"$bin/lnd" --version
"$bin/btcd" --version
echo "lightning: built into $bin"
