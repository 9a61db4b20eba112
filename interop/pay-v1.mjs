// The legacy x402 v1 client (x402-fetch) pays for one GET and prints the
// outcome as a JSON line. v1 names networks ("base-sepolia"), so the chain
// must have one: anvil with chain id 84532.
//
//   URL=http://… PAYER_KEY=0x… RPC=http://127.0.0.1:8545 node pay-v1.mjs

import { wrapFetchWithPayment } from "x402-fetch";
import { createWalletClient, http, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { need, report } from "./lib.mjs";

const rpc = need("RPC");
const wallet = createWalletClient({
  account: privateKeyToAccount(need("PAYER_KEY")),
  chain: { ...baseSepolia, rpcUrls: { default: { http: [rpc] } } },
  transport: http(rpc),
}).extend(publicActions);
const fetchWithPayment = wrapFetchWithPayment(fetch, wallet, BigInt(process.env.MAX_AMOUNT ?? "1000"));
const res = await fetchWithPayment(need("URL"), { signal: AbortSignal.timeout(60_000) });
await report(res, "X-PAYMENT-RESPONSE");
