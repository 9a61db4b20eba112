#!/usr/bin/env bash
# Rebuilds contracts/build/<Contract>.{abi,bin} from <Contract>.sol, for
# CoinopUSD and CoinopBatchSettler, with the pinned solc (npm solc@0.8.37, the emscripten build: no native compiler and
# no network beyond the npm registry). The compiler settings are fixed here
# and the metadata hash is left out of the bytecode, so the same source always
# gives byte-identical artifacts; commit them alongside the source.
set -euo pipefail

SOLC_VERSION=0.8.37
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

npm install --no-save --no-audit --no-fund --silent --prefix "$tmp" "solc@$SOLC_VERSION" >/dev/null

cat >"$tmp/compile.cjs" <<'JS'
// Compiles one contract through solc's standard-JSON interface, which gives
// full control of the settings (the solcjs command line does not expose the
// metadata options).
const fs = require("fs");
const path = require("path");
const solc = require(path.join(process.env.SOLC_PREFIX, "node_modules", "solc"));

const [src, outDir, contract, want] = process.argv.slice(2);
const file = path.basename(src);
if (!solc.version().startsWith(want + "+")) {
  throw new Error(`solc ${solc.version()} loaded, want ${want}`);
}
const input = {
  language: "Solidity",
  sources: { [file]: { content: fs.readFileSync(src, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    // Cancun is supported by every chain we target (anvil, geth dev, Base).
    evmVersion: "cancun",
    metadata: { bytecodeHash: "none" },
    outputSelection: { [file]: { [contract]: ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const problems = output.errors || [];
for (const e of problems) console.error(e.formattedMessage);
if (problems.some((e) => e.severity === "error")) process.exit(1);

const c = output.contracts[file][contract];
fs.writeFileSync(path.join(outDir, contract + ".abi"), JSON.stringify(c.abi, null, 2) + "\n");
fs.writeFileSync(path.join(outDir, contract + ".bin"), c.evm.bytecode.object + "\n");
JS

mkdir -p "$here/build"
for contract in CoinopUSD CoinopBatchSettler; do
  SOLC_PREFIX="$tmp" node "$tmp/compile.cjs" "$here/$contract.sol" "$here/build" "$contract" "$SOLC_VERSION"
  echo "wrote $here/build/$contract.abi and $contract.bin (solc $SOLC_VERSION)"
done
