// The official x402 client (@x402/fetch with the exact EVM scheme of
// @x402/evm) pays for one GET and prints the outcome as a JSON line.
//
// Spend controls: by default the client pays only assets it knows (USDC on
// known chains) and at most $1. A test token on a local chain is unknown
// to it, so it is allowed explicitly, capped at MAX_AMOUNT atomic units.
//
//   URL=http://… PAYER_KEY=0x… NETWORK=eip155:31337 TOKEN=0x… MAX_AMOUNT=1000 node pay.mjs

import { x402Client } from "@x402/core/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";
import { need, report } from "./lib.mjs";

const client = new x402Client();
registerExactEvmScheme(client, { signer: privateKeyToAccount(need("PAYER_KEY")) });
client.setSpendControls({
  allowedAssets: [{ network: need("NETWORK"), asset: need("TOKEN"), maxAmountPerPayment: need("MAX_AMOUNT") }],
});
const fetchWithPayment = wrapFetchWithPayment(fetch, client);
const res = await fetchWithPayment(need("URL"), { signal: AbortSignal.timeout(60_000) });
await report(res, "PAYMENT-RESPONSE");
