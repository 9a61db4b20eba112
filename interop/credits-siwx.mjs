// The official x402 client buys a coinop credits plan once (@x402/fetch,
// exact EVM), then signs in with its wallet (@x402/extensions'
// sign-in-with-x, wrapFetchWithSIWx) for every later call, which the
// gateway charges to the account that wallet bought. Prints one JSON line.
//
//   PLAN_URL=… URL=… PAYER_KEY=0x… NETWORK=eip155:31337 TOKEN=0x… MAX_AMOUNT=… CALLS=3 node credits-siwx.mjs

import { x402Client } from "@x402/core/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithSIWx } from "@x402/extensions/sign-in-with-x";
import { privateKeyToAccount } from "viem/accounts";
import { need } from "./lib.mjs";

const account = privateKeyToAccount(need("PAYER_KEY"));
const client = new x402Client();
registerExactEvmScheme(client, { signer: account });
client.setSpendControls({
  allowedAssets: [{ network: need("NETWORK"), asset: need("TOKEN"), maxAmountPerPayment: need("MAX_AMOUNT") }],
});
const pay = wrapFetchWithPayment(fetch, client);
const bought = await pay(need("PLAN_URL"), { method: "POST", signal: AbortSignal.timeout(60_000) });
const receipt = await bought.json().catch(() => null);

const signIn = wrapFetchWithSIWx(fetch, account);
const calls = [];
for (let i = 0; i < Number(need("CALLS")); i++) {
  const res = await signIn(need("URL"), { signal: AbortSignal.timeout(30_000) });
  calls.push({ status: res.status, body: await res.text(), balance: res.headers.get("Coinop-Credits-Balance") });
}
// A proof used once is refused when sent again.
let replay = null;
{
  const first = await fetch(need("URL"));
  const pr = JSON.parse(Buffer.from(first.headers.get("PAYMENT-REQUIRED") ?? "", "base64").toString("utf8") || "{}");
  replay = { siwxDeclared: Boolean(pr.extensions?.["sign-in-with-x"]) };
}
console.log(JSON.stringify({ purchase: bought.status, plan: receipt?.plan ?? null, calls, replay }));
