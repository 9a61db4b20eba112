// Helpers shared by the peer scripts that coinop's Go tests (interop_test.go)
// run against a local anvil chain. Configuration comes from environment
// variables; each script prints one line the test reads.

import { createWalletClient, defineChain, http, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { x402Facilitator } from "@x402/core/facilitator";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { registerExactEvmScheme } from "@x402/evm/exact/facilitator";

// need returns the environment variable name, or exits: the caller forgot it.
export function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

// localChain describes the anvil chain for viem.
export function localChain(id, rpc) {
  return defineChain({
    id,
    name: `anvil ${id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpc] } },
  });
}

// officialFacilitator is the x402 facilitator of @x402/core with the exact
// EVM scheme of @x402/evm, settling on the chain at rpc from key.
export function officialFacilitator({ rpc, chainId, key }) {
  const account = privateKeyToAccount(key);
  const wallet = createWalletClient({ account, chain: localChain(chainId, rpc), transport: http(rpc) }).extend(publicActions);
  const signer = toFacilitatorEvmSigner({
    address: account.address,
    readContract: (args) => wallet.readContract(args),
    verifyTypedData: (args) => wallet.verifyTypedData(args),
    writeContract: (args) => wallet.writeContract(args),
    sendTransaction: (args) => wallet.sendTransaction(args),
    waitForTransactionReceipt: (args) => wallet.waitForTransactionReceipt(args),
    getCode: (args) => wallet.getCode(args),
  });
  const facilitator = new x402Facilitator();
  registerExactEvmScheme(facilitator, { signer, networks: `eip155:${chainId}` });
  return facilitator;
}

// serve listens on a free loopback port and prints "ready <url>". The
// process exits when its standard input closes, so a test that dies takes
// its servers along.
export function serve(app) {
  const server = app.listen(0, "127.0.0.1", () => {
    console.log(`ready http://127.0.0.1:${server.address().port}`);
  });
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
  return server;
}

// report prints what a paying client got back, as one JSON line.
export async function report(res, responseHeader) {
  const body = await res.text();
  const header = res.headers.get(responseHeader);
  const settlement = header ? JSON.parse(Buffer.from(header, "base64").toString("utf8")) : null;
  console.log(JSON.stringify({ status: res.status, body, settlement }));
}
